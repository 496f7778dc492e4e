import { expect, test } from "bun:test";
import type { Membership, UnitReport } from "../replica/types.ts";
import { decideFailover, initManager, segmentStatus, stepManager, type ManagerEffect, type ManagerState } from "./failover.ts";

const record = (over: Partial<Membership> = {}): Membership => ({ segment: "s", epoch: 7, policy: "replica:3", primary: "p", secondaries: ["a", "b"], inactive: [], arbiter: null, ...over });
const report = (unit: string, lastLsn: number, over: Partial<UnitReport> = {}): UnitReport => ({ segment: "s", unit, epoch: 7, fence: 8, lastLsn, consistent: true, serving: false, needsEpoch: false, ...over });
const replies = (...rs: UnitReport[]) => new Map(rs.map((r) => [r.unit, r]));

test("decideFailover() for replica:3 with every active secondary answering elects the one with the highest lsn", () => {
  const d = decideFailover(record(), replies(report("a", 40), report("b", 42)));
  expect(d).toEqual({ kind: "elect", chosenLsn: 42, membership: record({ epoch: 8, primary: "b", secondaries: [], inactive: ["p", "a"] }) });
});

test("decideFailover() for replica:3 stays unavailable while an active secondary is silent: the other may lack an acknowledged write", () => {
  const d = decideFailover(record(), replies(report("a", 40)));
  expect(d.kind).toBe("unavailable");
  if (d.kind === "unavailable") {
    expect(d.reason.code).toBe("NO_COMPLETE_COPY");
    expect(d.reason.waitingFor).toEqual(["p", "b"]);
    expect(d.reason.message).toContain("may lack an acknowledged write");
  }
});

test("decideFailover() for replica:2 elects the active secondary, and keeps the arbiter", () => {
  const m = record({ policy: "replica:2", secondaries: ["a"], arbiter: "z" });
  const d = decideFailover(m, replies(report("a", 10), report("z", 0)));
  expect(d.kind === "elect" && d.membership).toEqual({ ...m, epoch: 8, primary: "a", secondaries: [], inactive: ["p"] });
});

test("decideFailover() never elects an inactive unit, however long its log", () => {
  const m = record({ policy: "replica:2", secondaries: [], inactive: ["a"], arbiter: "z" });
  const d = decideFailover(m, replies(report("a", 999), report("z", 0)));
  expect(d.kind).toBe("unavailable");
  if (d.kind === "unavailable") {
    expect(d.reason.waitingFor).toEqual(["p"]);
    expect(d.reason.message).toContain("only the primary p holds every acknowledged write");
  }
});

test("decideFailover() re-elects a restarted primary that answers, even with every secondary silent", () => {
  const d = decideFailover(record(), replies(report("p", 50, { needsEpoch: true })));
  expect(d.kind === "elect" && d.membership.primary).toBe("p");
});

test("decideFailover() ignores a unit in the middle of a catch-up and reloads when a unit knows a newer epoch", () => {
  const m = record({ policy: "replica:3-ha", secondaries: ["a"], inactive: ["b"] });
  expect(decideFailover(m, replies(report("a", 5, { consistent: false }))).kind).toBe("unavailable");
  expect(decideFailover(m, replies(report("a", 5, { epoch: 9 })))).toEqual({ kind: "stale", epoch: 9 });
});

// ---- the manager's state machine ----

test("the manager fences and asks the units when the primary falls silent, then records the new epoch and tells every unit", () => {
  const m = record({ policy: "replica:2", secondaries: ["a"], arbiter: "z" });
  let { state: st } = initManager(["s"], 0, { failoverAfterMs: 1000, probeTimeoutMs: 100, retryMs: 100, pushEveryMs: 100 });
  st = stepManager(st, { kind: "membership-loaded", membership: m }, 0).state;
  for (const u of ["p", "a", "z"]) st = stepManager(st, { kind: "message", from: u, msg: { type: "heartbeat", epoch: 7, report: report(u, 3, { fence: 0, serving: u === "p" }) } }, 500).state;
  // p goes silent; a and z keep beating.
  let probes: ManagerEffect[] = [];
  for (let t = 600; t <= 2600; t += 100) {
    for (const u of ["a", "z"]) st = stepManager(st, { kind: "message", from: u, msg: { type: "heartbeat", epoch: 7, report: report(u, 3, { fence: 0 }) } }, t).state;
    const r = stepManager(st, { kind: "tick" }, t);
    st = r.state;
    probes = probes.concat(r.effects.filter((e) => e.kind === "send" && e.msg.type === "probe"));
    if (probes.length > 0) break;
  }
  expect(probes.map((e) => e.kind === "send" && e.to).sort()).toEqual(["a", "p", "z"]);
  const probe = probes[0];
  if (probe?.kind !== "send" || probe.msg.type !== "probe") throw new Error("no probe");
  expect(probe.msg.fence).toBe(8);
  const round = probe.msg.round;
  for (const u of ["a", "z"]) st = stepManager(st, { kind: "message", from: u, msg: { type: "probe-reply", epoch: 7, round, report: report(u, 3) } }, 2700).state;
  const r = stepManager(st, { kind: "tick" }, 2900);
  const rec = r.effects.find((e) => e.kind === "record");
  expect(rec?.kind === "record" && rec.membership.primary).toBe("a");
  expect(segmentStatus(r.state, "s").state).toBe("failing-over");
  if (rec?.kind !== "record") throw new Error("no record");
  const done = stepManager(r.state, { kind: "record-done", token: rec.token, outcome: "applied" }, 2950);
  expect(done.effects.filter((e) => e.kind === "send" && e.msg.type === "membership").map((e) => e.kind === "send" && e.to).sort()).toEqual(["a", "p", "z"]);
  expect(segmentStatus(done.state, "s")).toMatchObject({ state: "serving", epoch: 8, primary: "a" });
});

test("the manager does not fence anything when no answering unit could replace the silent primary, and says why", () => {
  const m = record({ policy: "replica:2", secondaries: [], inactive: ["a"], arbiter: "z" });
  let { state: st } = initManager(["s"], 0, { failoverAfterMs: 1000, probeTimeoutMs: 100, retryMs: 100, pushEveryMs: 100 });
  st = stepManager(st, { kind: "membership-loaded", membership: m }, 0).state;
  const all: ManagerEffect[] = [];
  for (let t = 100; t <= 3000; t += 100) {
    for (const u of ["a", "z"]) st = stepManager(st, { kind: "message", from: u, msg: { type: "heartbeat", epoch: 7, report: report(u, 3, { fence: 0 }) } }, t).state;
    const r = stepManager(st, { kind: "tick" }, t);
    st = r.state;
    all.push(...r.effects);
  }
  expect(all.some((e) => e.kind === "send" && e.msg.type === "probe")).toBe(false);
  const s = segmentStatus(st, "s");
  expect(s.state).toBe("unavailable");
  expect(s.reason?.waitingFor).toEqual(["p"]);
});

test("a hold keeps a silent primary in place (COORDINATOR_DOWN, nothing fenced); lifted, the failover runs; a restarted primary is re-elected even while held", () => {
  const m = record();
  const cfg = { failoverAfterMs: 1000, probeTimeoutMs: 100, retryMs: 100, pushEveryMs: 100 };
  let { state: st } = initManager(["s"], 0, cfg);
  st = stepManager(st, { kind: "membership-loaded", membership: m }, 0).state;
  st = stepManager(st, { kind: "hold", segment: "s", reason: "coordinator node n1 is down" }, 0).state;
  const beat = (u: string, t: number, over: Partial<UnitReport> = {}) => (st = stepManager(st, { kind: "message", from: u, msg: { type: "heartbeat", epoch: 7, report: report(u, 3, { fence: 0, ...over }) } }, t).state);
  const effects: ManagerEffect[] = [];
  for (let t = 100; t <= 4000; t += 100) {
    beat("a", t);
    beat("b", t);
    const r = stepManager(st, { kind: "tick" }, t);
    st = r.state;
    effects.push(...r.effects);
  }
  expect(effects.some((e) => e.kind === "send" && e.msg.type === "probe")).toBe(false);
  expect(segmentStatus(st, "s")).toMatchObject({ state: "unavailable", primary: "p", reason: { code: "COORDINATOR_DOWN", message: "coordinator node n1 is down", waitingFor: ["p"] } });
  // The primary's node returns, restarted: its unit asks for a new epoch, which is not held.
  beat("p", 4100, { needsEpoch: true });
  let probe: ManagerEffect | undefined;
  for (let t = 4100; t <= 5000 && probe === undefined; t += 100) {
    beat("p", t, { needsEpoch: true });
    const r = stepManager(st, { kind: "tick" }, t);
    st = r.state;
    probe = r.effects.find((e) => e.kind === "send" && e.msg.type === "probe");
  }
  if (probe?.kind !== "send" || probe.msg.type !== "probe") throw new Error("no probe for the restarted primary");
  const round = probe.msg.round;
  // Equal logs: the election keeps the primary where it was (on the coordinator's node).
  for (const u of ["p", "a", "b"]) st = stepManager(st, { kind: "message", from: u, msg: { type: "probe-reply", epoch: 7, round, report: report(u, 3, { needsEpoch: u === "p" }) } }, 5100).state;
  const rec = stepManager(st, { kind: "tick" }, 5300).effects.find((e) => e.kind === "record");
  expect(rec?.kind === "record" && rec.membership.primary).toBe("p");
});

const quick = { failoverAfterMs: 1000, probeTimeoutMs: 100, retryMs: 100, pushEveryMs: 100 };

/** A manager of segment "s" (the quick timings) that has loaded `m`. */
function managerWith(m: Membership = record()): ManagerState {
  return stepManager(initManager(["s"], 0, quick).state, { kind: "membership-loaded", membership: m }, 0).state;
}

const heartbeat = (st: ManagerState, u: string, t: number, over: Partial<UnitReport> = {}): ManagerState =>
  stepManager(st, { kind: "message", from: u, msg: { type: "heartbeat", epoch: 7, report: report(u, 3, { fence: 0, ...over }) } }, t).state;

/** Ticks every 100 ms from `from` to `to`, each tick after `feed`'s inputs, until a probe goes out: when, and its round. */
function untilProbe(st: ManagerState, from: number, to: number, feed: (st: ManagerState, t: number) => ManagerState): { st: ManagerState; t?: number; round?: number } {
  for (let t = from; t <= to; t += 100) {
    const r = stepManager(feed(st, t), { kind: "tick" }, t);
    st = r.state;
    const probe = r.effects.find((e) => e.kind === "send" && e.msg.type === "probe");
    if (probe?.kind === "send" && probe.msg.type === "probe") return { st, t, round: probe.msg.round };
  }
  return { st };
}

test("a hold lifted while the primary is still silent lets the failover run, after the failover delay for the returning node's units", () => {
  const held = stepManager(managerWith(), { kind: "hold", segment: "s", reason: "held" }, 0).state;
  const { t } = untilProbe(held, 100, 6000, (st, at) => {
    if (at === 3000) st = stepManager(st, { kind: "hold", segment: "s", reason: null }, at).state;
    return heartbeat(heartbeat(st, "a", at), "b", at);
  });
  expect(t).toBeGreaterThanOrEqual(3000 + quick.failoverAfterMs);
});

test("a restarted primary whose probe reply is lost is elected from its heartbeat (its log is frozen), not replaced by an equal secondary", () => {
  const cfg = { failoverAfterMs: 1000, probeTimeoutMs: 100, retryMs: 100, pushEveryMs: 100 };
  let { state: st } = initManager(["s"], 0, cfg);
  st = stepManager(st, { kind: "membership-loaded", membership: record() }, 0).state;
  let probe: ManagerEffect | undefined;
  for (let t = 1100; t <= 3000 && probe === undefined; t += 100) {
    for (const u of ["p", "a", "b"]) st = stepManager(st, { kind: "message", from: u, msg: { type: "heartbeat", epoch: 7, report: report(u, 5, { fence: 0, needsEpoch: u === "p" }) } }, t).state;
    const r = stepManager(st, { kind: "tick" }, t);
    st = r.state;
    probe = r.effects.find((e) => e.kind === "send" && e.msg.type === "probe");
  }
  if (probe?.kind !== "send" || probe.msg.type !== "probe") throw new Error("no probe");
  const round = probe.msg.round;
  // p's probe is lost (the transport to its node still reconnecting), its heartbeats still come; a and b answer.
  st = stepManager(st, { kind: "message", from: "p", msg: { type: "heartbeat", epoch: 7, report: report("p", 5, { fence: 0, needsEpoch: true }) } }, 3000).state;
  for (const u of ["a", "b"]) st = stepManager(st, { kind: "message", from: u, msg: { type: "probe-reply", epoch: 7, round, report: report(u, 5) } }, 3100).state;
  const rec = stepManager(st, { kind: "tick" }, 3300).effects.find((e) => e.kind === "record");
  expect(rec?.kind === "record" && rec.membership.primary).toBe("p");
});

test("a primary that reports just after its hold is lifted (its daemon heartbeats before its units speak) stays the primary", () => {
  const held = stepManager(managerWith(), { kind: "hold", segment: "s", reason: "held" }, 0).state;
  const { st, t, round } = untilProbe(held, 100, 6000, (st, at) => {
    if (at === 3000) st = stepManager(st, { kind: "hold", segment: "s", reason: null }, at).state;
    st = heartbeat(heartbeat(st, "a", at), "b", at);
    return at >= 3600 ? heartbeat(st, "p", at, { needsEpoch: true }) : st; // 600 ms after its node came back
  });
  expect(t).toBeGreaterThanOrEqual(3600);
  if (round === undefined) throw new Error("no probe");
  let after = st;
  for (const u of ["p", "a", "b"]) after = stepManager(after, { kind: "message", from: u, msg: { type: "probe-reply", epoch: 7, round, report: report(u, 3, { needsEpoch: u === "p" }) } }, 6100).state;
  const rec = stepManager(after, { kind: "tick" }, 6300).effects.find((e) => e.kind === "record");
  expect(rec?.kind === "record" && rec.membership.primary).toBe("p");
});

test("a new manager replaces a primary whose node is known down without first waiting the failover delay; a stale node-down (another primary) changes nothing", () => {
  const firstProbeAt = (downOf: string | null): number | undefined => {
    const st = stepManager(managerWith(), { kind: "node-down", segment: "s", primary: downOf }, 0).state;
    return untilProbe(st, 100, 3000, (s2, at) => heartbeat(heartbeat(s2, "a", at), "b", at)).t;
  };
  expect(firstProbeAt("p")).toBe(100);
  expect(firstProbeAt("a")).toBeGreaterThanOrEqual(quick.failoverAfterMs);
  expect(firstProbeAt(null)).toBeGreaterThanOrEqual(quick.failoverAfterMs);
});

test("a move fences a serving primary's epoch and records one naming the new coordinator, keeping the primary on equal logs; held or not", () => {
  for (const held of [false, true]) {
    let st = managerWith(record({ coordinator: "n1" }));
    if (held) st = stepManager(st, { kind: "hold", segment: "s", reason: "coordinator node n1 is down" }, 0).state;
    st = stepManager(st, { kind: "move", segment: "s", to: "n2" }, 0).state;
    const beatAll = (s: ManagerState, at: number) => ["p", "a", "b"].reduce((x, u) => heartbeat(x, u, at, { serving: u === "p" }), s);
    // No failover delay to wait: the primary serves, and the move goes ahead at once.
    const probed = untilProbe(st, 100, 3000, beatAll);
    expect(probed.t).toBe(100);
    st = probed.st;
    for (const u of ["p", "a", "b"]) st = stepManager(st, { kind: "message", from: u, msg: { type: "probe-reply", epoch: 7, round: probed.round ?? 0, report: report(u, 3) } }, 150).state;
    const rec = stepManager(st, { kind: "tick" }, 200).effects.find((e) => e.kind === "record");
    expect(rec?.kind === "record" && rec.membership).toEqual(record({ epoch: 8, primary: "p", secondaries: [], inactive: ["a", "b"], coordinator: "n2" }));
  }
});

test("a move already recorded (or none wanted) fences nothing while the primary serves", () => {
  for (const [recorded, to] of [["n2", "n2"], ["n1", null]] as const) {
    const st = stepManager(managerWith(record({ coordinator: recorded })), { kind: "move", segment: "s", to }, 0).state;
    const { t } = untilProbe(st, 100, 3000, (s, at) => ["p", "a", "b"].reduce((x, u) => heartbeat(x, u, at, { serving: u === "p" }), s));
    expect(t).toBeUndefined();
  }
});
