// Replicated LUNs across real daemons (issue 5): three nodes on loopback, a replica:3 LUN created
// on node a (its coordinators live there, its portal serves it), segments placed on first write
// over the three nodes' archives, primaries on a; a node killed under writes and restarted; the
// node holding a segment's primary (one placed while a was drained) killed: the manager fails
// over and every written block reads back.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { TestNode, qstoraBin, run, saveLogs, spawnLoad } from "./helpers/node.ts";
import { expectPattern, MiB, nodeOfPrimary, nodeOfRole, qemu, type LunView, type SegmentView } from "./helpers/replica.ts";

const iqn = "iqn.2026-11.org.qstora:replicated";

describe("a replica:3 LUN on three daemons", () => {
  const a = new TestNode("qstora-repl-a-");
  const b = new TestNode("qstora-repl-b-");
  const c = new TestNode("qstora-repl-c-");
  const names = new Map<string, TestNode>();
  const segments = (): SegmentView[] => a.qJson<LunView[]>("lun", "list")[0]?.segments ?? [];
  beforeAll(() => {
    expect(a.init([`${a.dir}/a1.img:256M`], [], "repl-a").code).toBe(0);
    const token = a.ok("token", "create", "--ttl", "1h").stdout.trim();
    for (const [n, name] of [[b, "repl-b"], [c, "repl-c"]] as const) {
      const r = run([qstoraBin, "join", a.address, "--token", token, "--archive", `${n.dir}/a1.img:256M`, "--address", n.address, "--name", name, "--data-dir", n.dataDir]);
      expect(`${r.code} ${r.stderr}`).toBe("0 ");
    }
    for (const n of a.qJson<Array<{ id: string; name: string }>>("node", "list")) names.set(n.id, n.name === "repl-a" ? a : n.name === "repl-b" ? b : c);
  }, 60_000);
  // Three daemons to stop, each given seconds: more than the hook's default 5 s.
  afterAll(() => {
    saveLogs([a, b, c]);
    for (const n of [c, b, a]) n.cleanup();
    // Each stop waits for its daemon (60 s at most); the last one has no metadata quorum left.
  }, 120_000);

  test("created with --redundancy replica:3 (the output says so); writes read back; each segment has a copy on every node", () => {
    a.ok("target", "create", iqn);
    const out = a.ok("lun", "create", "--target", iqn, "--size", "32M", "--segment-size", "8M", "--stripe", "1M", "--redundancy", "replica:3").stdout;
    expect(out).toContain("redundancy replica:3");
    expect(a.qJson<LunView[]>("lun", "list")[0]?.redundancy).toBe("replica:3");
    expect(segments()).toEqual([]);
    const w = qemu(a.url(iqn), ["write -P 0x11 0 32M"]);
    expect(w.out).not.toContain("error");
    expect(w.code).toBe(0);
    expectPattern(a.url(iqn), 0x11, 0, 32 * MiB);
    const segs = segments();
    expect(segs.map((s) => s.index)).toEqual([0, 1, 2, 3]);
    for (const s of segs) {
      const nodes = new Set(s.units.map((u) => u.split("@")[1]));
      expect(nodes.size).toBe(3);
    }
    // Each primary is on a, the LUN's coordinator (placement.ts: a copy is there).
    expect(segs.every((s) => names.get(nodeOfRole(s, "primary")) === a)).toBe(true);
  }, 120_000);

  test("a node killed under writes: writes go on, read back; restarted, it serves again", async () => {
    // Eight passes over the LUN; b is killed once the first has been acknowledged (qemu-io
    // reports each command as it ends, line-buffered by stdbuf), so under writes, not after them.
    const passes = Array.from({ length: 8 }, () => ["-c", "write -P 0x22 0 32M"]).flat();
    const load = Bun.spawn(["stdbuf", "-oL", "qemu-io", "-f", "raw", ...passes, a.url(iqn)], { stdout: "pipe", stderr: "pipe" });
    const reader = load.stdout.getReader();
    const decoder = new TextDecoder();
    let out = "";
    while (!out.includes("wrote ")) {
      const chunk = await reader.read();
      if (chunk.done) break;
      out += decoder.decode(chunk.value, { stream: true });
    }
    expect(out).toContain("wrote 33554432/33554432 bytes");
    expect(load.exitCode).toBeNull();
    b.kill9();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) out += decoder.decode(chunk.value, { stream: true });
    const code = await load.exited;
    out += await new Response(load.stderr).text();
    expect(out.match(/wrote 33554432\/33554432 bytes/g)?.length).toBe(8);
    expect(out).not.toContain("error");
    expect(code).toBe(0);
    expectPattern(a.url(iqn), 0x22, 0, 32 * MiB);
    // While b was down its units were recorded inactive (writes went on without them).
    expect(segments().some((s) => s.inactive.length > 0)).toBe(true);
    b.ok("start");
    const w = qemu(a.url(iqn), ["write -P 0x33 0 16M"]);
    expect(w.code).toBe(0);
    expectPattern(a.url(iqn), 0x33, 0, 16 * MiB);
    expectPattern(a.url(iqn), 0x22, 16 * MiB, 16 * MiB);
    // b caught up (the pages it missed) and rejoined every segment.
    for (let i = 0; i < 60 && segments().some((s) => s.inactive.length > 0); i++) await Bun.sleep(500);
    expect(segments().map((s) => s.inactive)).toEqual([[], [], [], []]);
  }, 180_000);

  test("the node of a segment's primary killed (placed while a was drained, so on b or c): the manager fails over, every written block reads back", async () => {
    // A LUN coordinated by a whose one segment was placed while a took nothing new: its primary
    // is on b or c, which can then die while the coordinator lives. replica:2 on the two nodes
    // left: the arbiter shares the secondary's node, which survives.
    const iqnF = "iqn.2026-11.org.qstora:replicated-failover";
    a.ok("target", "create", iqnF);
    a.ok("lun", "create", "--target", iqnF, "--size", "8M", "--segment-size", "8M", "--stripe", "1M", "--redundancy", "replica:2");
    a.ok("node", "drain", "repl-a");
    expect(qemu(a.url(iqnF), ["write -P 0x44 0 8M", "flush"]).code).toBe(0);
    a.ok("node", "drain", "repl-a", "--undo");
    const segsF = (): SegmentView[] => a.qJson<Array<LunView & { target: string }>>("lun", "list").find((l) => l.target === iqnF)?.segments ?? [];
    const s0 = segsF()[0];
    expect(s0).toBeDefined();
    const victim = names.get(nodeOfPrimary(s0 as SegmentView));
    expect(victim === b || victim === c).toBe(true);
    const before = (s0 as SegmentView).epoch;
    (victim as TestNode).kill9();
    const started = Date.now();
    const w = qemu(a.url(iqnF), ["write -P 0x55 0 4M"]);
    const pauseMs = Date.now() - started;
    expect(w.out).not.toContain("error");
    expect(w.code).toBe(0);
    expectPattern(a.url(iqnF), 0x55, 0, 4 * MiB);
    expectPattern(a.url(iqnF), 0x44, 4 * MiB, 4 * MiB);
    let after: SegmentView | undefined;
    for (let i = 0; i < 40; i++) {
      after = segsF().find((s) => s.index === (s0 as SegmentView).index);
      if (after !== undefined && after.epoch > before && after.primary !== (s0 as SegmentView).primary) break;
      await Bun.sleep(500);
    }
    expect(after?.epoch).toBeGreaterThan(before);
    expect(after?.primary).not.toBe((s0 as SegmentView).primary);
    console.log(`failover: the first write after the kill took ${pauseMs} ms`);
    (victim as TestNode).ok("start");
    expectPattern(a.url(iqnF), 0x55, 0, 4 * MiB);
  }, 180_000);

  test("replica:2 gets an arbiter on the third node; an unknown policy is refused; no --redundancy is replica:3 on three fault domains", () => {
    const iqn2 = "iqn.2026-11.org.qstora:replica2";
    a.ok("target", "create", iqn2);
    const bad = a.q("lun", "create", "--target", iqn2, "--size", "8M", "--redundancy", "replica:7");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("redundancy must be");
    const byDefault = a.ok("lun", "create", "--target", iqn2, "--size", "8M").stdout;
    expect(byDefault).toContain("redundancy replica:3");
    expect(byDefault).toContain("default: replica:3 on 3 fault domain(s)");
    a.ok("lun", "create", "--target", iqn2, "--lun", "1", "--size", "8M", "--segment-size", "8M", "--redundancy", "replica:2");
    const w = qemu(a.url(iqn2, 1), ["write -P 0x66 0 8M", "flush"]);
    expect(w.code).toBe(0);
    expectPattern(a.url(iqn2, 1), 0x66, 0, 8 * MiB);
    const lun = a.qJson<Array<LunView & { target: string; lun: number }>>("lun", "list").find((l) => l.target === iqn2 && l.lun === 1);
    expect(lun?.redundancy).toBe("replica:2");
    const roles = (lun?.segments?.[0]?.units ?? []).map((u) => u.split(":")[0]).sort();
    expect(roles).toEqual(["arbiter", "primary", "secondary"]);
    expect(new Set((lun?.segments?.[0]?.units ?? []).map((u) => u.split("@")[1])).size).toBe(3);
  }, 60_000);

  test("iscsi-load -V at queue depth 16 while a node is SIGKILLed and restarted: no I/O error, no verify failure", async () => {
    const load = spawnLoad(["-m", "randrw", "-V", "-q", "16", "-F", "1", "-t", "25", "-R", "32M", "-s", "5", a.url(iqn)], join(a.dir, "repl-load.json"));
    await Bun.sleep(5000);
    c.kill9();
    await Bun.sleep(7000);
    c.ok("start");
    await load.finished();
    const line = load.output().trim().split("\n").filter((l) => l.startsWith("{")).pop() ?? "{}";
    console.log(`load across a kill and restart: ${line}`);
    const res = JSON.parse(line) as { ios?: number; errors?: number; verify_failures?: number; p999_us?: number };
    expect(res.errors).toBe(0);
    expect(res.verify_failures).toBe(0);
    expect(res.ios ?? 0).toBeGreaterThan(0);
  }, 120_000);

  test("every node stopped and started again: every flushed write reads back", async () => {
    const iqn2 = "iqn.2026-11.org.qstora:replica2";
    expect(qemu(a.url(iqn), ["write -P 0x77 0 32M", "flush"]).code).toBe(0);
    for (const n of [c, b, a]) n.ok("stop");
    const starts = [a, b, c].map((n) => Bun.spawn([qstoraBin, "start", "--data-dir", n.dataDir], { stdout: "ignore", stderr: "ignore" }));
    expect(await Promise.all(starts.map((p) => p.exited))).toEqual([0, 0, 0]);
    expectPattern(a.url(iqn2, 1), 0x66, 0, 8 * MiB);
    expectPattern(a.url(iqn), 0x77, 0, 32 * MiB);
  }, 120_000);
});
