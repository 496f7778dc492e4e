import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "chap", description: "CHAP authentication of a target's initiators (one-way or mutual)" },
  subCommands: {
    set: () => import("./set.ts").then((m) => m.default),
    clear: () => import("./clear.ts").then((m) => m.default),
  },
});
