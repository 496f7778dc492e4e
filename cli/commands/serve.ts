// `qstora serve`: the daemon in the foreground (for systemd and containers).
import { defineCommand } from "citty";
import { consola } from "consola";
import { execWithAllocatorEnv } from "../../core/node/allocator.ts";
import { runDaemon } from "../../core/node/daemon.ts";
import { selfCommand } from "../../core/node/lifecycle.ts";
import { dataDirArg, markLongRunning, pathsFrom } from "./_shared.ts";

export default defineCommand({
  meta: { name: "serve", description: "Run the daemon in the foreground (logs to stderr and qstora.log); SIGTERM stops it cleanly" },
  args: { ...dataDirArg },
  async run({ args }) {
    // Before anything is opened: comes back only if the allocator's settings were there already.
    const failed = execWithAllocatorEnv([...selfCommand(), ...process.argv.slice(2)], process.env);
    if (failed !== null) consola.warn(failed);
    // Started by `start`/`init`, stderr already goes to qstora.log: don't write lines twice.
    await runDaemon({ dataDir: pathsFrom(args).root, foreground: process.env["QSTORA_BACKGROUND"] !== "1" });
    markLongRunning();
  },
});
