// The replication drivers on real I/O: three storage nodes in this process, each with its own
// archive file and its own Peers on its own loopback address, and a client node hosting the
// coordinators and the failover manager. Writes go coordinator -> primary -> secondaries over
// the authenticated transport; the copies are compared page by page in the archives.
import { afterAll, describe, expect, test } from "bun:test";
import { pageBytes } from "../archive/format.ts";
import { FailoverDriver } from "../cluster/failover-driver.ts";
import { defaultManagerConfig } from "../cluster/failover.ts";
import type { IoResult } from "../volume/block-device.ts";
import { createLayout } from "../volume/layout.ts";
import { Volume, type UnitProvider } from "../volume/volume.ts";
import { ReplicatedSegment } from "./coordinator.ts";
import type { Membership } from "./types.ts";
import { TestReplicaCluster, type SegmentPlan } from "./test-cluster.ts";
import { until } from "../../test/helpers/wait.ts";

const segmentBytes = 4 << 20;
const pages = segmentBytes / pageBytes;
const r3: SegmentPlan = { segment: "lun/s0", index: 0, policy: "replica:3", dataNodes: [0, 1, 2], arbiterNode: null, sizeBytes: segmentBytes };
const r2: SegmentPlan = { segment: "lun/s1", index: 1, policy: "replica:2", dataNodes: [1, 2], arbiterNode: 0, sizeBytes: segmentBytes };

/** A page whose bytes say which write put it there. */
function pageOf(tag: number, n = 1): Uint8Array {
  const b = new Uint8Array(n * pageBytes);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < b.length; i += 4) dv.setUint32(i, (tag * 2654435761 + i) >>> 0);
  return b;
}

function unwrap<T>(r: { ok: true; value: T } | { ok: false; message: string }): T {
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

/** Every data copy of a segment holds the same pages (contents and sequence numbers). */
function copiesDiffer(c: TestReplicaCluster, plan: SegmentPlan): string | null {
  const units = plan.dataNodes.map((n) => c.nodes[n]?.unitOf(plan.index));
  const first = units[0];
  if (first === undefined) return "the first copy's node is down";
  for (let p = 0; p < pages; p++) {
    const a = unwrap(first.read(p * pageBytes, pageBytes));
    for (let i = 1; i < units.length; i++) {
      const u = units[i];
      if (u === undefined) return `copy ${i} is down`;
      const b = unwrap(u.read(p * pageBytes, pageBytes));
      if (Buffer.compare(a, b) !== 0) return `page ${p} differs between copy 0 and copy ${i}`;
      if (first.pageSeq(p) !== u.pageSeq(p)) return `page ${p} has seq ${first.pageSeq(p)} on copy 0, ${u.pageSeq(p)} on copy ${i}`;
    }
  }
  return null;
}

/** Something to do once `afterAcks` writes of a writeMany() were acknowledged (a node killed). */
type Midway = { afterAcks: number; run: () => void };

/**
 * Writes `count` pages at queue depth `qd`; returns the longest a write took (ms). `midway` runs
 * after so many acknowledgements, so that the rest of the writes meet what it did however fast
 * the first ones went (a fixed sleep lets a fast machine finish them all first).
 */
async function writeMany(seg: ReplicatedSegment, from: number, count: number, acked: Map<number, number>, qd = 8, midway?: Midway): Promise<number> {
  let next = from;
  let longestMs = 0;
  let acks = 0;
  const worker = async () => {
    while (next < from + count) {
      const tag = next++;
      const page = (tag * 7919) % 256;
      const t = performance.now();
      const r = await seg.write(page * pageBytes, pageOf(tag));
      longestMs = Math.max(longestMs, performance.now() - t);
      expect(r).toEqual({ ok: true, value: undefined });
      // The last acknowledged write of a page is what it must read back (writes to one page never overlap in time here).
      acked.set(page, tag);
      if (++acks === midway?.afterAcks) midway.run();
    }
  };
  await Promise.all(Array.from({ length: qd }, worker));
  return longestMs;
}

async function expectReadsBack(seg: ReplicatedSegment, acked: Map<number, number>): Promise<void> {
  for (const [page, tag] of acked) {
    const r = unwrap(await seg.read(page * pageBytes, pageBytes));
    if (Buffer.compare(r, pageOf(tag)) !== 0) throw new Error(`page ${page} does not read back write ${tag}`);
  }
}

/** Every segment has all its copies active (no catch-up or failover under way). */
async function allHealthy(c: TestReplicaCluster): Promise<void> {
  await until("every copy active", () => [r3, r2].every((p) => {
    const m = c.store.records.get(p.segment);
    return m !== undefined && m.inactive.length === 0 && m.secondaries.length === p.dataNodes.length - 1;
  }), 40_000);
}

/** A node holding a secondary of `plan` and no segment's primary: killing it loses no primary. */
function secondaryOnlyNode(c: TestReplicaCluster, plan: SegmentPlan) {
  const primaries = new Set([r3, r2].map((p) => c.nodeOfUnit(c.store.records.get(p.segment)?.primary as string)));
  const m = c.store.records.get(plan.segment);
  const node = m?.secondaries.map((u) => c.nodeOfUnit(u)).find((n) => !primaries.has(n));
  if (node === undefined) throw new Error(`no node holds only a secondary of ${plan.segment}`);
  return node;
}

describe("replication drivers on loopback with real archives", () => {
  const c = new TestReplicaCluster(3, [r3, r2], undefined, defaultManagerConfig);
  afterAll(() => c.close());

  test("replica:3 and replica:2+arbiter: writes are acknowledged, read back from the primary, and the copies are identical after a flush", async () => {
    for (const plan of [r3, r2]) {
      const seg = c.coordinator(plan.segment);
      const acked = new Map<number, number>();
      await writeMany(seg, 1, 200, acked);
      // A multi-page write (one log entry) and its read.
      expect(await seg.write(300 * pageBytes, pageOf(9999, 16))).toEqual({ ok: true, value: undefined });
      expect(Buffer.compare(unwrap(await seg.read(300 * pageBytes, 16 * pageBytes)), pageOf(9999, 16))).toBe(0);
      await expectReadsBack(seg, acked);
      expect(await seg.flush()).toEqual({ ok: true, value: undefined });
      expect(copiesDiffer(c, plan)).toBeNull();
    }
  }, 60_000);

  test("a coordinator started again at the same address (its node restarted) is served: its request ids start above the last incarnation's", async () => {
    const address = `client:test/${r3.segment}/restarted`;
    const acked = new Map<number, number>();
    await writeMany(c.coordinator(r3.segment, undefined, address), 400, 50, acked);
    await Bun.sleep(2);
    const again = c.coordinator(r3.segment, { requestTimeoutMs: 2_000, opTimeoutMs: 5_000 }, address);
    await writeMany(again, 450, 50, acked);
    await expectReadsBack(again, acked);
  }, 60_000);

  test("a Volume over the two replicated segments: a write striped over both reads back, and a flush reaches every copy", async () => {
    const segs = [c.coordinator(r3.segment), c.coordinator(r2.segment)];
    const provider: UnitProvider = {
      find: (_volume, segment) => segs[segment],
      allocate: () => ({ ok: false, code: "NO_SPACE", message: "replicated segments are created by placement" }),
      flush: async () => {
        for (const s of segs) {
          const r = await s.flush();
          if (!r.ok) return r;
        }
        return { ok: true, value: undefined };
      },
    };
    const sizeBytes = 2 * segmentBytes;
    const v = new Volume({ uuid: "v", name: "v", sizeBytes, blockBytes: 4096, layout: createLayout({ sizeBytes, stripeBytes: 1 << 20, segmentBytes }), writeCache: true }, provider);
    const data = pageOf(777, 768); // 3 MiB from 512 KiB: stripes on segment 0, 1 and 0 again
    expect(await v.write(512 << 10, data, { fua: true })).toEqual({ ok: true, value: undefined });
    const back = (await v.read(512 << 10, data.length)) as IoResult<Uint8Array>;
    expect(back.ok && Buffer.compare(back.value, data)).toBe(0);
    expect(copiesDiffer(c, r3)).toBeNull();
    expect(copiesDiffer(c, r2)).toBeNull();
    // The check can fail: one copy changed behind the replication's back differs.
    const u = c.nodes[2]?.unitOf(r3.index);
    expect(u?.write(0, pageOf(1)).ok).toBe(true);
    expect(copiesDiffer(c, r3)).toContain("page 0 differs");
    expect(await segs[0]?.write(0, pageOf(2))).toEqual({ ok: true, value: undefined });
    expect(await segs[0]?.flush()).toEqual({ ok: true, value: undefined });
    expect(copiesDiffer(c, r3)).toBeNull();
  }, 60_000);

  test("the metadata store unreachable stops no I/O on healthy segments", async () => {
    await allHealthy(c);
    // Coordinators that read their membership before the store went away (a coordinator that
    // never read one waits for the store: it knows no primary).
    const segs = [c.coordinator(r3.segment), c.coordinator(r2.segment)];
    for (const seg of segs) expect(await seg.write(0, pageOf(1))).toEqual({ ok: true, value: undefined });
    c.store.reachable = false;
    try {
      for (const [i, plan] of [r3, r2].entries()) {
        const seg = segs[i] as ReplicatedSegment;
        const acked = new Map<number, number>();
        await writeMany(seg, 50_000, 100, acked, 4);
        await Bun.sleep(600); // past the units' periodic record fetches
        await writeMany(seg, 60_000, 100, acked, 4);
        expect(await seg.flush()).toEqual({ ok: true, value: undefined });
        await expectReadsBack(seg, acked);
        expect(copiesDiffer(c, plan)).toBeNull();
      }
    } finally {
      c.store.reachable = true;
    }
  }, 60_000);

  test("a secondary's node killed mid-writes: writes go on per policy, and the node catches up when it returns", async () => {
    for (const plan of [r3, r2]) {
      const seg = c.coordinator(plan.segment);
      const acked = new Map<number, number>();
      await allHealthy(c);
      const victim = secondaryOnlyNode(c, plan);
      const lost = c.store.records.get(plan.segment)?.secondaries.find((u) => c.nodeOfUnit(u) === victim) as string;
      const writing = writeMany(seg, 10_000, 300, acked, 4, { afterAcks: 20, run: () => victim.kill() });
      console.log(`${plan.policy}: longest write across the secondary's loss ${Math.round(await writing)} ms`);
      await expectReadsBack(seg, acked);
      // replica:2 could only go on by recording the degradation under a new epoch; replica:3
      // records it once the secondary has left a write unanswered for degradeAfterMs.
      await until(`${plan.segment}'s secondary recorded inactive`, () => c.store.records.get(plan.segment)?.inactive.includes(lost) === true, 20_000);
      victim.start();
      await until(`${plan.segment}'s secondary rejoining`, () => (c.store.records.get(plan.segment)?.inactive.length ?? 1) === 0, 30_000);
      await writeMany(seg, 20_000, 50, acked, 4);
      expect(await seg.flush()).toEqual({ ok: true, value: undefined });
      await expectReadsBack(seg, acked);
      expect(copiesDiffer(c, plan)).toBeNull();
    }
  }, 120_000);

  test("the primary's node killed: after the manager's failover every acknowledged write reads back, and the old primary rejoins", async () => {
    for (const plan of [r3, r2]) {
      await allHealthy(c);
      const seg = c.coordinator(plan.segment);
      const acked = new Map<number, number>();
      await writeMany(seg, 30_000, 100, acked, 4);
      const before = c.store.records.get(plan.segment);
      const primary = before?.primary as string;
      const victim = c.nodeOfUnit(primary);
      const writing = writeMany(seg, 40_000, 200, acked, 4, { afterAcks: 20, run: () => victim.kill() });
      const pauseMs = await writing;
      console.log(`${plan.policy}: longest write across the primary's failover ${Math.round(pauseMs)} ms`);
      const after = c.store.records.get(plan.segment);
      expect(after?.primary).not.toBe(primary);
      expect(after?.epoch ?? 0).toBeGreaterThan(before?.epoch ?? 0);
      await expectReadsBack(seg, acked);
      victim.start();
      await until(`${plan.segment}'s old primary rejoining`, () => {
        const m = c.store.records.get(plan.segment);
        return m !== undefined && m.inactive.length === 0 && m.secondaries.length === plan.dataNodes.length - 1;
      }, 40_000);
      expect(await seg.flush()).toEqual({ ok: true, value: undefined });
      await expectReadsBack(seg, acked);
      expect(copiesDiffer(c, plan)).toBeNull();
      expect(c.client.manager?.status(plan.segment).state).toBe("serving");
    }
  }, 180_000);

  test("the manager paused (its role lapsed): it fails nothing over; resumed, it replaces a silent primary without waiting its failover delay again", async () => {
    const plan = r3;
    await allHealthy(c);
    const manager = c.client.manager as FailoverDriver;
    const before = c.store.records.get(plan.segment);
    const victim = c.nodeOfUnit(before?.primary as string);
    manager.pause();
    victim.kill();
    await Bun.sleep(defaultManagerConfig.failoverAfterMs + 1_000);
    expect(c.store.records.get(plan.segment)?.epoch).toBe(before?.epoch);
    expect(manager.pausedForMs() ?? 0).toBeGreaterThan(defaultManagerConfig.failoverAfterMs);
    // The secondaries' heartbeats were stepped while paused: they count as heard, the primary as silent.
    const resumed = performance.now();
    manager.resume();
    await until("a new primary recorded", () => (c.store.records.get(plan.segment)?.epoch ?? 0) > (before?.epoch ?? 0), 10_000);
    const tookMs = performance.now() - resumed;
    console.log(`failover ${Math.round(tookMs)} ms after the manager resumed`);
    expect(tookMs).toBeLessThan(defaultManagerConfig.failoverAfterMs);
    expect(c.store.records.get(plan.segment)?.primary).not.toBe(before?.primary);
    victim.start();
    await allHealthy(c);
  }, 120_000);

  test("the LUN given to another coordinator node: the manager re-elects the serving segment under it; the old coordinator is turned away, every acknowledged write reads back through the new one", async () => {
    const plan = r3;
    await allHealthy(c);
    // The LUN's coordinator node as its record would say; the membership names it, or (older records) node x placed it.
    let lunNode = "x";
    const recorded = (m: Membership): string => m.coordinator ?? "x";
    const standing = (node: string) => (m: Membership) => (recorded(m) === node ? "send" : lunNode === node ? "wait" : "moved");
    const segOn = (node: string) => new ReplicatedSegment({ router: c.client.router, store: c.store, segment: plan.segment, client: `client:${node}/${plan.segment}`, standing: standing(node), limits: { opTimeoutMs: 20_000 } });
    c.client.manager?.stop();
    c.client.manager = new FailoverDriver({
      router: c.client.router,
      store: c.store,
      segments: [r3.segment, r2.segment],
      coordinatorOf: (segment) => {
        const m = c.store.records.get(segment);
        return segment === plan.segment && m !== undefined && recorded(m) !== lunNode ? lunNode : null;
      },
    });
    const old = segOn("x");
    const next = segOn("y");
    const acked = new Map<number, number>();
    await writeMany(old, 50_000, 100, acked, 4);
    const before = c.store.records.get(plan.segment);
    // The LUN record names y now: y's writes wait until the manager records an epoch naming y.
    const moved = performance.now();
    lunNode = "y";
    const pauseMs = await writeMany(next, 60_000, 40, acked, 4);
    console.log(`move of ${plan.segment} to node y: recorded, and y's first writes through, within ${Math.round(performance.now() - moved)} ms; longest write ${Math.round(pauseMs)} ms`);
    const after = c.store.records.get(plan.segment);
    expect(after?.coordinator).toBe("y");
    expect(after?.epoch ?? 0).toBeGreaterThan(before?.epoch ?? 0);
    // Equal logs: the election kept the primary.
    expect(after?.primary).toBe(before?.primary);
    const refused = await old.write(0, pageOf(1));
    expect(refused.ok === false && refused.code).toBe("MOVED");
    await expectReadsBack(next, acked);
    await allHealthy(c);
    expect(await next.flush()).toEqual({ ok: true, value: undefined });
    expect(copiesDiffer(c, plan)).toBeNull();
  }, 120_000);
});
