// Dead and frozen initiators against the real daemon: an initiator SIGSTOPped in the middle of
// 1 MiB writes (so the target holds R2T buffers for it) stops answering the target's NOP-In pings
// and is dropped after portal.nop_timeout_s; a SIGKILLed one is dropped when its socket closes.
// Either way the LUN serves the next initiator on the same blocks, with verified data.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestNode, iscsiLoadBin, run } from "./helpers/node.ts";

const iqn = "iqn.2026-11.org.qstora:dead";
/** Short ping settings so that the test takes seconds: ping after 1 s of silence, drop after 3 s more. */
const pingSettings = "nop_interval_s = 1\nnop_timeout_s = 3\n";

interface LoadResult {
  ios: number;
  errors: number;
  verify_failures: number;
}

describe("dead initiators", () => {
  const node = new TestNode("qstora-dead-");
  let url = "";

  beforeAll(() => {
    url = node.initWithLun("256M", iqn);
    node.ok("stop");
    const path = join(node.dataDir, "qstora.toml");
    const text = readFileSync(path, "utf8").replace(/^nop_interval_s = .*\n/m, "").replace(/^nop_timeout_s = .*\n/m, "");
    writeFileSync(path, text.replace("[portal]\n", `[portal]\n${pingSettings}`));
    node.ok("start");
  });
  afterAll(() => node.cleanup());

  const sessions = (): number => node.qJson<{ targets: Array<{ iqn: string; sessions: number }> }>("status").targets.find((t) => t.iqn === iqn)?.sessions ?? -1;
  const waitFor = async (what: () => boolean, ms: number): Promise<number> => {
    const start = Date.now();
    while (!what()) {
      if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
      await Bun.sleep(100);
    }
    return Date.now() - start;
  };
  /**
   * Connected sockets on the portal that the daemon still holds open, as the kernel lists them
   * (ss, iproute2). One it has closed may linger in FIN-WAIT-2 without an owner until the kernel
   * reaps it; that one is no longer the daemon's.
   */
  const portalSockets = (): number =>
    run(["ss", "-Htanp"]).stdout.split("\n").filter((l) => {
      const f = l.trim().split(/\s+/);
      return f[0] !== "LISTEN" && f[3] === node.portal && l.includes(`pid=${node.pid()},`);
    }).length;
  const spawn = (args: string[]) => Bun.spawn([iscsiLoadBin, ...args, url], { stdin: "ignore", stdout: "pipe", stderr: "ignore" });

  test("a SIGSTOPped initiator stops answering NOP-In pings and its session is dropped", async () => {
    const load = spawn(["-m", "write", "-b", "1M", "-q", "8", "-t", "60", "-R", "64M", "-x", "0"]);
    try {
      await waitFor(() => sessions() === 1, 10_000);
      expect(portalSockets()).toBe(1);
      await Bun.sleep(1000); // writes in flight, some waiting for Data-Out
      process.kill(load.pid, "SIGSTOP");
      const stoppedAt = Date.now();
      await waitFor(() => sessions() === 0, 15_000);
      const droppedAfterMs = Date.now() - stoppedAt;
      console.log(`frozen initiator dropped after ${droppedAfterMs} ms (ping after 1 s idle, timeout 3 s)`);
      // Not before a ping could have gone unanswered for the whole timeout.
      expect(droppedAfterMs).toBeGreaterThanOrEqual(3000);
      const log = readFileSync(join(node.dataDir, "qstora.log"), "utf8");
      expect(log).toContain("initiator did not answer a NOP-In ping");
      // The daemon lets go of the socket too (not kept half-closed while the frozen peer holds its end).
      const ms = await waitFor(() => portalSockets() === 0, 10_000);
      console.log(`the daemon's socket closed ${ms} ms after the drop`);
    } finally {
      load.kill("SIGKILL");
      process.kill(load.pid, "SIGCONT");
      await load.exited;
    }
    // The blocks the frozen writer had in flight are free for the next one, and read back right.
    // A seed of its own: the frozen writer stamped these blocks with seed 1.
    const r = run([iscsiLoadBin, "-m", "randrw", "-V", "-s", "7", "-b", "64k", "-q", "8", "-t", "3", "-R", "64M", url], { timeoutMs: 60_000 });
    const res = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as LoadResult;
    expect(res.errors).toBe(0);
    expect(res.verify_failures).toBe(0);
    expect(res.ios).toBeGreaterThan(10);
  }, 60_000);

  test("a SIGKILLed initiator's session ends when its connection closes", async () => {
    const load = spawn(["-m", "randwrite", "-b", "4k", "-q", "16", "-t", "60", "-R", "64M"]);
    await waitFor(() => sessions() === 1, 10_000);
    await Bun.sleep(500);
    load.kill("SIGKILL");
    await load.exited;
    const ms = await waitFor(() => sessions() === 0, 10_000);
    console.log(`killed initiator's session gone after ${ms} ms`);
    expect(run(["iscsi-inq", url]).code).toBe(0);
  }, 60_000);
});
