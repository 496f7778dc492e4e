import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "lun", description: "Manage LUNs (logical units) of targets" },
  subCommands: {
    create: () => import("./create.ts").then((m) => m.default),
    list: () => import("./list.ts").then((m) => m.default),
    delete: () => import("./delete.ts").then((m) => m.default),
    resize: () => import("./resize.ts").then((m) => m.default),
    set: () => import("./set.ts").then((m) => m.default),
  },
});
