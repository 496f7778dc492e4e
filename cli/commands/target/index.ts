import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "target", description: "Manage iSCSI targets" },
  subCommands: {
    create: () => import("./create.ts").then((m) => m.default),
    list: () => import("./list.ts").then((m) => m.default),
    delete: () => import("./delete.ts").then((m) => m.default),
    chap: () => import("./chap/index.ts").then((m) => m.default),
    acl: () => import("./acl/index.ts").then((m) => m.default),
  },
});
