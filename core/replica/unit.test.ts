import { expect, test } from "bun:test";
import type { Membership, Message, Recovered, UnitEffect, UnitInput } from "./types.ts";
import { defaultUnitConfig, initUnit, isServing, reportOf, stepUnit, type UnitState } from "./unit.ts";

// A hand-driven cluster of units: the test decides what arrives, when. Persists complete only
// when the test says so, which is how "not yet persisted" is shown.

const cfg = defaultUnitConfig;
const created = (over: Partial<Membership> = {}): Membership => ({ segment: "s", epoch: 1, policy: "replica:2", primary: "p", secondaries: ["a"], inactive: [], arbiter: "z", ...over });
const data = (n: number) => new Uint8Array([n, 0, 0, 0]);

class Node {
  st: UnitState;
  out: UnitEffect[] = [];
  constructor(
    readonly id: string,
    m: Membership,
    recovered: Recovered = { meta: null, log: { lastLsn: 0, commitKnown: 0, consistent: true }, pageSeqs: new Map() },
  ) {
    const r = initUnit({ self: id, segment: "s" }, recovered, 0);
    this.st = r.state;
    this.out.push(...r.effects);
    this.feed({ kind: "membership-loaded", membership: m }, 0);
  }
  feed(input: UnitInput, now: number): UnitEffect[] {
    const r = stepUnit(this.st, input, now);
    this.st = r.state;
    this.out.push(...r.effects);
    return r.effects;
  }
  take(): UnitEffect[] {
    const o = this.out;
    this.out = [];
    return o;
  }
  /** Complete every queued persist and flush, in order. */
  settleDisk(now: number): void {
    for (let guard = 0; guard < 100; guard++) {
      const pending = this.out.filter((e) => e.kind === "persist" || e.kind === "flush");
      if (pending.length === 0) return;
      this.out = this.out.filter((e) => e.kind !== "persist" && e.kind !== "flush");
      for (const e of pending) this.feed(e.kind === "persist" ? { kind: "persisted", token: e.token } : { kind: "flushed", token: e.kind === "flush" ? e.token : 0 }, now);
    }
  }
}

const sent = (effects: UnitEffect[], type: Message["type"]) => effects.filter((e): e is Extract<UnitEffect, { kind: "send" }> => e.kind === "send" && e.msg.type === type);

/** Deliver every message from `from`'s outbox to the nodes given (others are dropped). */
function deliver(from: Node, nodes: Node[], now: number): Message[] {
  const toClient: Message[] = [];
  const keep: UnitEffect[] = [];
  for (const e of from.take()) {
    if (e.kind !== "send") {
      keep.push(e);
      continue;
    }
    const to = nodes.find((n) => n.id === e.to);
    if (to !== undefined) to.feed({ kind: "message", from: from.id, msg: e.msg }, now);
    else if (e.to.startsWith("client:")) toClient.push(e.msg);
  }
  from.out.push(...keep);
  return toClient;
}

/** p primary of a new replica:2 segment with secondary a and arbiter z, lease granted. */
function leasedTrio(t = cfg.leaseMs + 1): { p: Node; a: Node; z: Node; now: number } {
  const m = created();
  const p = new Node("p", m);
  const a = new Node("a", m);
  const z = new Node("z", m);
  // Voters grant nothing for a lease after their start; then p asks again.
  p.feed({ kind: "tick" }, t);
  deliver(p, [a, z], t);
  deliver(a, [p], t);
  deliver(z, [p], t);
  p.settleDisk(t);
  a.settleDisk(t);
  for (const n of [p, a, z]) n.take();
  return { p, a, z, now: t };
}

const write = (reqId: number, page: number, value: number, epoch = 1): Message => ({ type: "write", epoch, reqId, completeBelow: 1, page, pages: 1, data: data(value) });

test("a primary without a lease refuses writes and reads (no-lease), and serves once a majority granted it", () => {
  const m = created();
  const p = new Node("p", m);
  p.feed({ kind: "message", from: "client:c", msg: write(1, 0, 1) }, 10);
  expect(sent(p.take(), "rejected")[0]?.msg).toMatchObject({ reason: "no-lease" });
  const { p: leased, now } = leasedTrio();
  expect(isServing(leased.st, now)).toBe(true);
  // The lease runs from the request, shorter by the margin.
  expect(isServing(leased.st, now + cfg.leaseMs - cfg.leaseMarginMs)).toBe(false);
});

test("replica:2 acknowledges a write only once the secondary persisted it too", () => {
  const { p, a, now } = leasedTrio();
  p.feed({ kind: "message", from: "client:c", msg: write(1, 3, 42) }, now);
  p.settleDisk(now); // the primary's own copy is persisted
  deliver(p, [a], now); // the forward reaches a, not yet persisted there
  expect(sent(p.out, "write-done")).toHaveLength(0);
  a.settleDisk(now);
  deliver(a, [p], now); // the ack
  expect(sent(p.take(), "write-done").map((e) => e.msg)).toEqual([{ type: "write-done", epoch: 1, reqId: 1 }]);
});

test("replica:2 with a silent secondary records the degradation first and acknowledges with one copy only after the record applied", () => {
  const { p, now } = leasedTrio();
  p.feed({ kind: "message", from: "client:c", msg: write(1, 0, 7) }, now);
  p.settleDisk(now);
  p.take();
  const later = now + cfg.degradeAfterMs;
  p.feed({ kind: "tick" }, later);
  const effects = p.take();
  const record = effects.find((e) => e.kind === "record");
  expect(record?.kind === "record" && record.membership).toMatchObject({ epoch: 2, secondaries: [], inactive: ["a"] });
  // Persisted before the record leaves: a restart never serves the epoch it may have recorded.
  expect(effects.findIndex((e) => e.kind === "persist-meta")).toBeLessThan(effects.findIndex((e) => e.kind === "record"));
  expect(sent(effects, "write-done")).toHaveLength(0);
  if (record?.kind !== "record") throw new Error("no record");
  p.feed({ kind: "record-done", token: record.token, outcome: "unknown" }, later + 1);
  expect(sent(p.take(), "write-done")).toHaveLength(0); // the store did not say: still not
  p.feed({ kind: "record-done", token: record.token, outcome: "applied" }, later + 2);
  expect(sent(p.take(), "write-done").map((e) => e.msg.type === "write-done" && e.msg.reqId)).toEqual([1]);
});

test("a unit fenced by the manager's probe acknowledges nothing of the old epoch, even writes it persists afterwards", () => {
  const { p, a, now } = leasedTrio();
  p.feed({ kind: "message", from: "client:c", msg: write(1, 0, 9) }, now);
  deliver(p, [a], now); // a has the forward queued to disk
  a.feed({ kind: "message", from: "manager", msg: { type: "probe", epoch: 1, fence: 2, round: 1 } }, now);
  const reply = sent(a.out, "probe-reply")[0];
  expect(reply?.msg.type === "probe-reply" && reply.msg.report).toMatchObject({ fence: 2, lastLsn: 0 });
  a.take();
  a.settleDisk(now);
  expect(sent(a.take(), "forward-ack")).toHaveLength(0);
  // And it turns away the old epoch's forwards, saying why.
  a.feed({ kind: "message", from: "p", msg: { type: "forward", epoch: 1, lsn: 2, page: 1, pages: 1, data: data(1), commitLsn: 0 } }, now);
  expect(sent(a.take(), "stale")[0]?.msg).toMatchObject({ epoch: 2 });
});

test("a voter grants no lease to a new primary while its promise to the old one runs", () => {
  const { z, now } = leasedTrio();
  const next: Membership = { ...created(), epoch: 2, primary: "a", secondaries: [], inactive: ["p"] };
  const ask = (t: number) => {
    z.feed({ kind: "message", from: "a", msg: { type: "lease-req", epoch: 2, sentAt: t, membership: next, commitLsn: 0 } }, t);
    return sent(z.take(), "lease-grant");
  };
  expect(ask(now + 10)).toHaveLength(0);
  expect(ask(now + cfg.leaseMs + 1)).toHaveLength(1);
});

test("a primary restarted from its disk does not serve its old epoch: it asks for a new one", () => {
  const m = created();
  const r = initUnit({ self: "p", segment: "s" }, { meta: { membership: m, fence: 0, proposed: 0 }, log: { lastLsn: 5, commitKnown: 5, consistent: true }, pageSeqs: new Map([[0, 5]]) }, 0);
  expect(r.state.pri).toBeNull();
  expect(reportOf(r.state, 0)).toMatchObject({ needsEpoch: true, serving: false, lastLsn: 5 });
});

test("reads of a page with a write not yet acknowledged wait for it, then see it", () => {
  const { p, a, now } = leasedTrio();
  p.feed({ kind: "message", from: "client:c", msg: write(1, 2, 5) }, now);
  p.feed({ kind: "message", from: "client:c", msg: { type: "read", epoch: 1, reqId: 2, completeBelow: 1, page: 2, pages: 1 } }, now);
  expect(p.out.filter((e) => e.kind === "read")).toHaveLength(0);
  p.settleDisk(now);
  deliver(p, [a], now);
  a.settleDisk(now);
  deliver(a, [p], now);
  const read = p.out.find((e) => e.kind === "read");
  expect(read?.kind === "read" && read.page).toBe(2);
});

test("a secondary applies forwards in lsn order whatever order they arrive in", () => {
  const m = created();
  const a = new Node("a", m);
  a.take();
  const fwd = (lsn: number): UnitInput => ({ kind: "message", from: "p", msg: { type: "forward", epoch: 1, lsn, page: lsn, pages: 1, data: data(lsn), commitLsn: 0 } });
  a.feed(fwd(3), 0);
  a.feed(fwd(2), 0);
  expect(a.out.filter((e) => e.kind === "persist")).toHaveLength(0);
  a.feed(fwd(1), 0);
  const order = a.take().flatMap((e) => (e.kind === "persist" && e.write !== null ? [e.write.seq] : []));
  expect(order).toEqual([1, 2, 3]);
});

test("a rejoining unit gets back exactly the pages changed since its common point, its own losing writes included", () => {
  const m: Membership = { segment: "s", epoch: 2, policy: "replica:2", primary: "p", secondaries: [], inactive: ["a"], arbiter: "z" };
  const start = (id: string, lastLsn: number, seqs: [number, number][]) => {
    const n = new Node(id, m, { meta: null, log: { lastLsn, commitKnown: 8, consistent: true }, pageSeqs: new Map(seqs) });
    n.take();
    return n;
  };
  // Both hold the history up to lsn 8. p (the new primary) wrote page 3 at 9; a holds a write
  // of the old primary's that lost (page 5 at lsn 10) that p never had.
  const p = start("p", 9, [[1, 4], [3, 9]]);
  const a = start("a", 10, [[1, 4], [5, 10]]);
  a.feed({ kind: "tick" }, 10);
  const req = sent(a.out, "catchup-req")[0];
  expect(req?.msg).toMatchObject({ commitLsn: 8, changedPages: [5] });
  deliver(a, [p], 10);
  const reads = p.out.filter((e): e is Extract<UnitEffect, { kind: "read" }> => e.kind === "read");
  expect(reads.map((r) => r.page)).toEqual([3, 5]);
  for (const r of reads) p.feed({ kind: "read-done", token: r.token, data: data(r.page) }, 11);
  p.out = p.out.filter((e) => e.kind !== "read");
  deliver(p, [a], 12);
  const copies = a.out.flatMap((e) => (e.kind === "persist" && e.write !== null ? [[e.write.page, e.write.seq]] : []));
  expect(copies).toEqual([
    [3, 9],
    [5, 0], // p never wrote page 5: it is copied as p has it, unwritten
  ]);
  a.settleDisk(12);
  expect(sent(a.take(), "caught-up")[0]?.msg).toMatchObject({ lsn: 9 });
});
