import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "archive", description: "Manage the archives (files or block devices) that store data" },
  subCommands: {
    add: () => import("./add.ts").then((m) => m.default),
    list: () => import("./list.ts").then((m) => m.default),
    remove: () => import("./remove.ts").then((m) => m.default),
  },
});
