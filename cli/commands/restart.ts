// `qstora restart`: stop (if running), then start.
import { defineCommand } from "citty";
import { consola } from "consola";
import { startBackground, stopDaemon } from "../../core/node/lifecycle.ts";
import { commonArgs, pathsFrom, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "restart", description: "Stop the daemon if it runs, then start it (reloads qstora.toml)" },
  args: { ...commonArgs },
  async run({ args }) {
    const paths = pathsFrom(args);
    await stopDaemon(paths);
    const status = await startBackground(paths);
    if (args.json) printJson(status);
    else consola.success(`qstora restarted (pid ${status.node.pid}), portal ${status.portal}`);
  },
});
