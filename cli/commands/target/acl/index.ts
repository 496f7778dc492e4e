import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "acl", description: "A target's initiator access list: once it has one, other initiators neither log in nor see the target in discovery" },
  subCommands: {
    add: () => import("./change.ts").then((m) => m.addCommand),
    remove: () => import("./change.ts").then((m) => m.removeCommand),
    list: () => import("./list.ts").then((m) => m.default),
  },
});
