// `qstora start`: the daemon in the background; a stale lock after a crash needs nothing (flock).
import { defineCommand } from "citty";
import { consola } from "consola";
import { startBackground } from "../../core/node/lifecycle.ts";
import { commonArgs, pathsFrom, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "start", description: "Start the daemon in the background and wait until it serves" },
  args: { ...commonArgs },
  async run({ args }) {
    const status = await startBackground(pathsFrom(args));
    if (args.json) printJson(status);
    else consola.success(`qstora started (pid ${status.node.pid}), portal ${status.portal}`);
  },
});
