// `qstora stop`: SIGTERM to the daemon, then wait until it has flushed and exited.
import { defineCommand } from "citty";
import { consola } from "consola";
import { stopDaemon } from "../../core/node/lifecycle.ts";
import { commonArgs, pathsFrom, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "stop", description: "Stop the daemon: finish in-flight I/O, flush, exit" },
  args: { ...commonArgs },
  async run({ args }) {
    const r = await stopDaemon(pathsFrom(args));
    if (args.json) printJson(r);
    else consola.success(r.wasRunning ? "qstora stopped" : "qstora was not running");
  },
});
