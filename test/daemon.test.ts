// The daemon's lifecycle as an operator meets it: files and their modes in the data directory,
// one daemon per data directory, configuration errors that name the key, restart after a crash,
// and a clean stop under load that loses no acknowledged write.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestNode, iscsiLoadBin, qstoraBin, run } from "./helpers/node.ts";

const iqn = "iqn.2026-11.org.qstora:daemon";

describe("daemon lifecycle", () => {
  const node = new TestNode("qstora-daemon-");
  let url = "";
  beforeAll(() => {
    url = node.initWithLun("256M", iqn);
  });
  afterAll(() => node.cleanup());

  test("the data directory holds the secret (0600), pid, log and config", () => {
    expect(statSync(join(node.dataDir, "control.secret")).mode & 0o777).toBe(0o600);
    expect(statSync(node.dataDir).mode & 0o077).toBe(0);
    expect(node.pid()).toBeGreaterThan(0);
    expect(readFileSync(join(node.dataDir, "qstora.log"), "utf8")).toContain(" ready ");
    expect(readFileSync(join(node.dataDir, "qstora.toml"), "utf8")).toContain(`listen = "${node.address}:3260"`);
  });

  test("a second daemon on the same data directory is refused", () => {
    const r = run([qstoraBin, "serve", "--data-dir", node.dataDir]);
    expect(r.code).toBe(13);
    expect(r.stderr + r.stdout).toContain("another qstora daemon is running");
    expect(node.q("start").code).toBe(4);
  });

  test("the control API refuses a request without the secret", async () => {
    const res = await fetch(`http://${node.address}:7325/v1/status`);
    expect(res.status).toBe(401);
  });

  test("SIGTERM under load finishes in-flight I/O: every acknowledged write is there after", async () => {
    const history = join(node.dir, "term-history.bin");
    // The load runs 8 s; the daemon stops (SIGTERM) after 3 s and starts again right away, so
    // an initiator that retries finds the target again and the load ends on its own time.
    const load = Bun.spawn([iscsiLoadBin, "-m", "randwrite", "-V", "-t", "8", "-R", "64M", "-s", "11", "-S", history, url], { stdout: "pipe", stderr: "pipe" });
    await Bun.sleep(3000);
    node.ok("stop");
    node.ok("start");
    const guard = setTimeout(() => load.kill(9), 60_000);
    await load.exited;
    clearTimeout(guard);
    const r = run([iscsiLoadBin, "-m", "verify", "-L", history, "-C", "acked", "-R", "64M", "-s", "11", url], { timeoutMs: 120_000 });
    const res = JSON.parse(r.stdout.trim().split("\n").pop() as string) as { verify_failures: number; checked: number };
    console.log(`verify after SIGTERM: ${r.stdout.trim()}`);
    expect(res.verify_failures).toBe(0);
    expect(res.checked).toBeGreaterThan(0);
  }, 120_000);

  test("a bad qstora.toml stops the start with an error naming the key", () => {
    node.ok("stop");
    const path = join(node.dataDir, "qstora.toml");
    const good = readFileSync(path, "utf8");
    writeFileSync(path, good.replace('level = "info"', 'level = "chatty"'));
    const r = node.q("start");
    expect(r.code).toBe(11);
    expect(r.stderr + r.stdout).toContain('"log.level"');
    writeFileSync(path, good);
    node.ok("start");
  });
});
