import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "token", description: "Manage join tokens (QS1<CA hash>::<id>.<secret>) that let new nodes join the cluster" },
  subCommands: {
    create: () => import("./create.ts").then((m) => m.default),
    list: () => import("./list.ts").then((m) => m.default),
    revoke: () => import("./revoke.ts").then((m) => m.default),
  },
});
