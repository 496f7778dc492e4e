// `qstora serve`: the daemon in the foreground (for systemd and containers).
import { defineCommand } from "citty";
import { runDaemon } from "../../core/node/daemon.ts";
import { dataDirArg, markLongRunning, pathsFrom } from "./_shared.ts";

export default defineCommand({
  meta: { name: "serve", description: "Run the daemon in the foreground (logs to stderr and qstora.log); SIGTERM stops it cleanly" },
  args: { ...dataDirArg },
  async run({ args }) {
    // Started by `start`/`init`, stderr already goes to qstora.log: don't write lines twice.
    await runDaemon({ dataDir: pathsFrom(args).root, foreground: process.env["QSTORA_BACKGROUND"] !== "1" });
    markLongRunning();
  },
});
