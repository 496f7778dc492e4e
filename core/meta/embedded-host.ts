// A process that hosts the embedded metadata store and nothing else: the SIGKILL durability test
// spawns it, and `bun build --compile` of this file proves antietcd bundles into one executable.
// Usage: embedded-host --dir DIR [--host 127.0.0.1] [--port 0]
// Prints one JSON line {"url": ...} on stdout once it answers; stops cleanly on SIGTERM/SIGINT.
// It must never print anything else on stdout (the parent reads that line).
import { parseArgs } from "node:util";
import { startEmbeddedMeta } from "./embedded.ts";

const { values } = parseArgs({
  options: { dir: { type: "string" }, host: { type: "string" }, port: { type: "string" } },
  strict: true,
});
if (values.dir === undefined) {
  process.stderr.write("usage: embedded-host --dir DIR [--host 127.0.0.1] [--port 0]\n");
  process.exit(2);
}
const embedded = await startEmbeddedMeta({ dir: values.dir, host: values.host ?? "127.0.0.1", port: Number(values.port ?? "0") });
process.stdout.write(`${JSON.stringify({ url: embedded.url })}\n`);
const stop = (): void => {
  void embedded.stop().then(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
