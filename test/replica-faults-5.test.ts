// Issue 5's fault tests 4 and 5 on five real daemons: node a runs in a network namespace of its
// own (test/helpers/netns.ts, as the partition test of issue 4), b to e on the host's end of the
// link; the embedded metadata group is a, b and c. a creates the LUNs, so their coordinators live
// there, and the initiators run in a's namespace too: cutting the link cuts a (the coordinator,
// and the primary of its share of the segments) off from every other node while the client
// still reaches it. It must stop acknowledging within its lease; after healing, no block may hold
// a value other than its last acknowledged write, and the copies of every segment must be
// identical (read from the archives of the stopped nodes). Then every node is stopped and
// started: every flushed write reads back. Namespaces and links are named replica5-* / r5*, and
// removed whatever happens.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { compareCopies } from "./helpers/archive-copies.ts";
import { NetnsLink } from "./helpers/netns.ts";
import { TestNode, qstoraBin, saveLogs, spawnLoad } from "./helpers/node.ts";
import { describePauses, expectPattern, expectWritten, formCluster, loadResult, MiB, nodeOfPrimary, qemu, qemuAsync, samplePauses, segmentsOf, verifyEveryBlock, type SegmentView } from "./helpers/replica.ts";

const iqn = "iqn.2026-12.org.qstora:faults5";
const lunBytes = 32 * MiB;
const segmentBytes = 4 * MiB;
const seed = 7;
/** The units' lease (core/replica/unit.ts defaultUnitConfig.leaseMs). */
const leaseMs = 2_000;
const link = new NetnsLink({ nsPrefix: "replica5-cut", linkPrefix: "r5", hostAddresses: 4 });

describe("a replica:3 LUN on five daemons, its coordinators' node in a network namespace", () => {
  const a = new TestNode("qstora-f5x-a-", { address: link.nsAddress, wrap: link.wrap });
  const others = link.hostAddresses.map((address, i) => new TestNode(`qstora-f5x-${"bcde"[i]}-`, { address }));
  const all = [a, ...others];
  const inNs = { wrap: link.wrap };
  let byId = new Map<string, TestNode>();
  const url = a.url(iqn);
  const url1 = a.url(iqn, 1);
  const history = join(a.dir, "cut.hist");
  const segments = (lun = 0): SegmentView[] => segmentsOf(a, iqn, lun);
  const volumeOf = (lun: number): string => (segments(lun)[0]?.units[0] ?? "").split(":")[1]?.split("/")[0] ?? "";
  const settled = async (lun: number, ms = 90_000) => {
    const t0 = Date.now();
    while (segments(lun).some((s) => s.inactive.length > 0)) {
      if (Date.now() - t0 > ms) throw new Error(`copies not caught up after ${ms} ms: ${JSON.stringify(segments(lun).map((s) => [s.index, s.state, s.inactive]))}`);
      await Bun.sleep(500);
    }
  };
  /** Stops every node, compares every segment's copies on the archives, starts every node. */
  const stopCompareStart = async (luns: number[]): Promise<void> => {
    const volumes = luns.map(volumeOf);
    for (const n of [...others].reverse()) n.ok("stop");
    a.ok("stop");
    for (const v of volumes) {
      const r = compareCopies(all.map((n) => join(n.dir, "a1.img")), v);
      console.log(`copies of ${v}: ${r.segments} segments compared, ${r.differences.length} differ`);
      expect(r.differences).toEqual([]);
      expect([...r.copies.values()].every((n) => n === 3)).toBe(true);
    }
    const starts = all.map((n) => Bun.spawn([...n.wrap, qstoraBin, "start", "--data-dir", n.dataDir], { stdout: "ignore", stderr: "ignore" }));
    const codes = await Promise.all(starts.map((p) => p.exited));
    // Five daemons starting at once on the shared 2-core machine: `start` gives up waiting for
    // one after 30 s (exit 16) while it is still coming up. Such a node must answer within 90 s.
    for (const [i, n] of all.entries()) {
      if (codes[i] === 0) continue;
      console.log(`start of ${"abcde"[i]} exited ${codes[i]}; waiting for it to answer`);
      const t0 = Date.now();
      while (n.q("status").code !== 0) {
        if (Date.now() - t0 > 90_000) throw new Error(`node ${"abcde"[i]} did not answer within 90 s of its start (exit ${codes[i]})`);
        await Bun.sleep(1_000);
      }
    }
  };

  beforeAll(() => {
    link.setup();
    byId = formCluster(all.map((node, i) => ({ node, name: `f5x-${"abcde"[i]}` })));
    a.ok("target", "create", iqn);
    a.ok("lun", "create", "--target", iqn, "--size", "32M", "--segment-size", "4M", "--stripe", "1M", "--redundancy", "replica:3");
    expectWritten(qemu(url, ["write -P 0x5a 0 32M", "flush"], inNs));
    expect(segments().length).toBe(lunBytes / segmentBytes);
  }, 300_000);
  afterAll(() => {
    try {
      saveLogs(all);
      for (const n of [...others].reverse()) n.cleanup();
      a.cleanup();
    } finally {
      link.teardown();
    }
  });

  test("the primary's node cut off while the client still reaches it: it stops acknowledging within its lease; after healing every block holds its last acknowledged write and the copies are identical", async () => {
    // A segment whose primary is a's: read from it once a's lease must be over.
    const probeSeg = segments().find((s) => byId.get(nodeOfPrimary(s)) === a);
    if (probeSeg === undefined) throw new Error(`no segment has its primary on a: ${JSON.stringify(segments().map((s) => s.primary))}`);
    const load = spawnLoad(["-m", "randrw", "-V", "-x", "20", "-q", "16", "-F", "1", "-t", "40", "-R", String(lunBytes), "-s", String(seed), "-S", history, url], join(a.dir, "load4.json"), inNs);
    const pauses = samplePauses(load.pid, join(a.dir, "pauses4.json"), inNs);
    await Bun.sleep(8_000);
    link.cut();
    const cutAt = Date.now();
    await Bun.sleep(leaseMs + 1_000);
    const probe = qemuAsync(url, [`read ${probeSeg.index * segmentBytes} 4k`], inNs);
    await Bun.sleep(9_000);
    // 12 s after the cut: a, alone, must have answered nothing that needs its lease.
    const probeAnsweredWhileCut = probe.finished();
    link.heal();
    const healAt = Date.now();
    await load.finished();
    const res = loadResult(load.output());
    const p = await pauses();
    const r = await probe.done;
    // The pause that spans the heal began at the initiator's last completion after the cut.
    const cutPause = p.pauses.find((x) => x.at < healAt && x.at + x.ms > healAt - 1_000);
    console.log(`cut of a for ${healAt - cutAt} ms: last completion ${cutPause === undefined ? "?" : cutPause.at - cutAt} ms after the cut, I/O again ${cutPause === undefined ? "?" : cutPause.at + cutPause.ms - healAt} ms after healing; the probe read (primary on a, sent ${leaseMs + 1_000} ms after the cut) ${probeAnsweredWhileCut ? "was ANSWERED while cut" : "waited"} and then exited ${r.code}; load: ${res.ios} I/Os, ${res.errors} errors, ${res.verify_failures} verify failures, ${res.checked} reads checked; ${describePauses(p)}`);
    if (res.errors !== 0) console.log(`iscsi-load's failed I/Os: ${load.stderr()}`);
    expect(probeAnsweredWhileCut).toBe(false);
    expect(r.code).toBe(0);
    expect(res.errors).toBe(0);
    expect(res.verify_failures).toBe(0);
    // Nothing completed later than a lease after the cut.
    expect(cutPause).toBeDefined();
    expect((cutPause as { at: number }).at - cutAt).toBeLessThan(leaseMs + 500);
    await settled(0);
    verifyEveryBlock(url, history, lunBytes, seed, inNs);
    await stopCompareStart([0]);
    verifyEveryBlock(url, history, lunBytes, seed, inNs);
  }, 300_000);

  test("every node stopped and started: every flushed write reads back, and the copies are identical", async () => {
    a.ok("lun", "create", "--target", iqn, "--lun", "1", "--size", "32M", "--segment-size", "4M", "--stripe", "1M", "--redundancy", "replica:3-ha");
    expectWritten(qemu(url1, ["write -P 0x61 0 32M", "write -P 0x62 4M 8M", "flush"], inNs));
    await settled(1);
    await stopCompareStart([0, 1]);
    expectPattern(url1, 0x61, 0, 4 * MiB, inNs);
    expectPattern(url1, 0x62, 4 * MiB, 8 * MiB, inNs);
    expectPattern(url1, 0x61, 12 * MiB, 20 * MiB, inNs);
    verifyEveryBlock(url, history, lunBytes, seed, inNs);
  }, 240_000);
});
