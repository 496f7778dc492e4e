// A static file server for tests: serves the plain files of one directory on 127.0.0.1, on a port
// the kernel picks, from a child process (the tests block in spawnSync, so a server in the test's
// own event loop would never answer), and logs every request path to a file. It serves nothing
// outside that directory, never listens beyond loopback, and never writes anywhere but its log.
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// A server that has not said where it listens by then is broken: fail the test, don't hang it.
const startTimeoutMs = 10_000;

export interface StaticServer {
  readonly url: string;
  /** Request paths seen so far, in order (e.g. "/sha256sums.txt"). */
  requests(): string[];
  stop(): Promise<void>;
}

// The child: Bun.serve on port 0 (the kernel's choice), printing the port once listening.
const childSource = `
const root = process.env.QSTORA_HTTP_ROOT;
const log = process.env.QSTORA_HTTP_LOG;
const { appendFileSync } = require("node:fs");
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const path = new URL(req.url).pathname;
    appendFileSync(log, path + "\\n");
    const name = decodeURIComponent(path.slice(1));
    if (name === "" || name.includes("/") || name.startsWith(".")) return new Response("not found\\n", { status: 404 });
    const file = Bun.file(root + "/" + name);
    return (await file.exists()) ? new Response(file) : new Response("not found\\n", { status: 404 });
  },
});
console.log(String(server.port));
`;

export async function serveStatic(dir: string): Promise<StaticServer> {
  const work = mkdtempSync(join(tmpdir(), "qstora-http-"));
  const log = join(work, "requests.log");
  appendFileSync(log, "");
  const child = Bun.spawn([process.execPath, "-e", childSource], {
    env: { ...process.env, QSTORA_HTTP_ROOT: dir, QSTORA_HTTP_LOG: log },
    stdout: "pipe", stderr: "inherit", stdin: "ignore" });
  const reader = child.stdout.getReader();
  let text = "";
  const deadline = Date.now() + startTimeoutMs;
  while (!text.includes("\n")) {
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now())));
    const chunk = await Promise.race([reader.read(), timeout]);
    if (chunk === "timeout" || chunk.done) {
      child.kill(9);
      rmSync(work, { recursive: true, force: true });
      throw new Error(`static server for ${dir} did not start within ${startTimeoutMs} ms`);
    }
    text += new TextDecoder().decode(chunk.value);
  }
  reader.releaseLock();
  const port = Number.parseInt(text, 10);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`static server printed ${JSON.stringify(text)}, not a port`);
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => readFileSync(log, "utf8").split("\n").filter((l) => l !== ""),
    stop: async () => {
      child.kill(9);
      await child.exited;
      rmSync(work, { recursive: true, force: true });
    },
  };
}
