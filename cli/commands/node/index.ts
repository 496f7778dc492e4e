// `qstora node ...`: the cluster's nodes.
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "node", description: "The cluster's nodes: list, remove, drain, label" },
  subCommands: {
    list: () => import("./list.ts").then((m) => m.default),
    remove: () => import("./remove.ts").then((m) => m.default),
    drain: () => import("./drain.ts").then((m) => m.default),
    label: () => import("./label.ts").then((m) => m.default),
  },
});
