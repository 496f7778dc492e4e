import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "node", description: "The cluster's nodes" },
  subCommands: {
    list: () => import("./list.ts").then((m) => m.default),
  },
});
