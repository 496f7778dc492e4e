// `qstora serve`: the daemon in the foreground (for systemd and containers).
import { defineCommand } from "citty";
import { runDaemon } from "../../core/node/daemon.ts";
import { dataDirArg, markLongRunning, pathsFrom } from "./_shared.ts";

export default defineCommand({
  meta: { name: "serve", description: "Run the daemon in the foreground (logs to stderr and qstora.log); SIGTERM stops it cleanly" },
  args: { ...dataDirArg },
  async run({ args }) {
    await runDaemon({ dataDir: pathsFrom(args).root, foreground: true });
    markLongRunning();
  },
});
