// The cluster manager's failover logic as a pure state machine: it watches each segment's
// recorded membership and its units' heartbeats, and when a primary stops answering (or comes
// back without its volatile log) it fences the units, asks what they hold, picks a new primary
// among the units that hold every acknowledged write, and records the new epoch in the
// metadata store. Only recorded memberships are sent to units, so a new primary serves only
// after the record completed. When no such unit answers, the segment stays unavailable with a
// reason `qstora status` can show; it is never brought back from units that might lack an
// acknowledged write. docs/REPLICATION.md argues why this is safe.
//
// No sockets, store client or clock here: time is `now`, the store is reached through
// "record"/"fetch-membership" effects and their completions. The state is updated in place and
// returned (the caller keeps only the returned reference); a manager restart starts afresh from
// initManager(), which is safe because nothing here is needed for safety, only for progress.

import { assert, unreachable } from "../util/assert.ts";
import { ackRuleOf } from "../replica/policy.ts";
import type { Address, Membership, Message, RecordOutcome, UnitId, UnitReport } from "../replica/types.ts";
import { dataMembersOf, membersOf, sameMembership } from "../replica/types.ts";

export interface ManagerConfig {
  /** A primary silent (or not serving) this long is failed over. Longer than a unit's lease. */
  readonly failoverAfterMs: number;
  readonly probeTimeoutMs: number;
  readonly retryMs: number;
  readonly pushEveryMs: number;
}

export const defaultManagerConfig: ManagerConfig = { failoverAfterMs: 3000, probeTimeoutMs: 500, retryMs: 500, pushEveryMs: 500 };

/**
 * Why a segment can't be served; `qstora status` shows `message`. Stable `code` for scripts:
 * NO_COMPLETE_COPY (no answering unit holds every acknowledged write) or COORDINATOR_DOWN (the
 * primary's node is its LUN's coordinator's and that node is down: nothing could serve the
 * segment anyway, so its primary is kept there for the node's return; see "hold" below).
 */
export interface Unavailable {
  readonly code: "NO_COMPLETE_COPY" | "COORDINATOR_DOWN";
  readonly segment: string;
  readonly message: string;
  /** Units whose return would let the segment serve again. */
  readonly waitingFor: readonly UnitId[];
}

export type FailoverDecision =
  | { readonly kind: "elect"; readonly membership: Membership; readonly chosenLsn: number }
  | { readonly kind: "unavailable"; readonly reason: Unavailable }
  /** A unit knows a newer record than we do: reload before deciding. */
  | { readonly kind: "stale"; readonly epoch: number };

/**
 * Choose a new primary for `record` from the units' reports (probe replies, each given after
 * the unit promised to accept nothing of `record.epoch` any more).
 *
 * Every unit recorded active holds a prefix of the one history of `record.epoch` (it applies its
 * primary's writes in lsn order), so of any set of them the one with the highest lsn holds all
 * that any of them holds. The set holds every acknowledged write when it contains the primary
 * (it acknowledges only what it persisted), or, for replica:2 and replica:3-ha, any active
 * secondary (each acknowledged write is on all of them), or, for replica:3, all of them (each
 * acknowledged write is on one at least). Inactive units never count: they missed writes.
 */
export function decideFailover(record: Membership, replies: ReadonlyMap<UnitId, UnitReport>, coordinator?: string): FailoverDecision {
  for (const r of replies.values()) if (r.epoch > record.epoch) return { kind: "stale", epoch: r.epoch };
  const holders = [record.primary, ...record.secondaries];
  const answered = holders.filter((u) => {
    const r = replies.get(u);
    return r !== undefined && r.consistent;
  });
  const rule = ackRuleOf(record.policy);
  const a = record.secondaries;
  const covered = answered.includes(record.primary) || (rule.allSecondaries ? a.some((u) => answered.includes(u)) : a.length > 0 && a.every((u) => answered.includes(u)));
  if (!covered) return { kind: "unavailable", reason: unavailableReason(record, answered) };
  let chosen = answered[0];
  assert(chosen !== undefined);
  for (const u of answered) if ((replies.get(u)?.lastLsn ?? -1) > (replies.get(chosen)?.lastLsn ?? -1)) chosen = u;
  const membership: Membership = {
    ...record,
    epoch: record.epoch + 1,
    primary: chosen,
    // The others rejoin by catch-up: they may hold writes of the losing tail of the history.
    secondaries: [],
    inactive: dataMembersOf(record).filter((u) => u !== chosen),
    ...(coordinator === undefined ? {} : { coordinator }),
  };
  return { kind: "elect", membership, chosenLsn: replies.get(chosen)?.lastLsn ?? 0 };
}

function unavailableReason(record: Membership, answered: readonly UnitId[]): Unavailable {
  const a = record.secondaries;
  const missing = a.filter((u) => !answered.includes(u));
  const rule = ackRuleOf(record.policy);
  let message: string;
  let waitingFor: UnitId[];
  if (a.length === 0) {
    const inactive = record.inactive.length === 0 ? "" : ` (${record.inactive.join(", ")} missed writes and can't replace it)`;
    message = `segment ${record.segment}: only the primary ${record.primary} holds every acknowledged write and it does not answer${inactive}; bring its node back`;
    waitingFor = [record.primary];
  } else if (rule.allSecondaries) {
    message = `segment ${record.segment}: neither the primary ${record.primary} nor an active secondary (${a.join(", ")}) answers; any of them holds every acknowledged write`;
    waitingFor = [record.primary, ...a];
  } else {
    message = `segment ${record.segment}: the primary ${record.primary} does not answer and ${missing.join(", ")} neither; without all active secondaries, the ones that answer may lack an acknowledged write`;
    waitingFor = [record.primary, ...missing];
  }
  return { code: "NO_COMPLETE_COPY", segment: record.segment, message, waitingFor };
}

// ---- the manager's state machine ----

type Phase =
  | { readonly kind: "idle"; readonly nextTryAt: number }
  | { readonly kind: "probing"; readonly round: number; readonly fence: number; readonly startedAt: number; readonly replies: Map<UnitId, UnitReport> }
  | { readonly kind: "recording"; readonly token: number; readonly expectEpoch: number; readonly membership: Membership; retryAt: number | null };

interface Watch {
  record: Membership | null;
  recordAt: number;
  lastFetchAt: number;
  readonly heard: Map<UnitId, { at: number; report: UnitReport }>;
  phase: Phase;
  notServingSince: number | null;
  unavailable: Unavailable | null;
  readonly pushedAt: Map<UnitId, number>;
  /** Failover of a silent primary held, and why (a "hold" input); null: not held. */
  held: string | null;
  /** When the last hold was lifted (its node is back): its units get failoverAfterMs to report. */
  liftedAt: number | null;
  /** A primary whose node has not heartbeated for failoverAfterMs (a "node-down" input), or null. */
  nodeDownOf: UnitId | null;
  /** The node the segment's coordination moves to (a "move" input), or null. */
  moveTo: string | null;
}

export interface ManagerState {
  readonly cfg: ManagerConfig;
  readonly startedAt: number;
  readonly segments: Map<string, Watch>;
  nextRound: number;
  nextToken: number;
  readonly tokens: Map<number, string>;
}

export type ManagerEffect =
  | { readonly kind: "send"; readonly to: Address; readonly msg: Message }
  | { readonly kind: "record"; readonly token: number; readonly expectEpoch: number; readonly membership: Membership }
  | { readonly kind: "fetch-membership"; readonly segment: string };

export type ManagerInput =
  | { readonly kind: "message"; readonly from: Address; readonly msg: Message }
  | ({ readonly kind: "record-done"; readonly token: number } & RecordOutcome)
  | { readonly kind: "membership-loaded"; readonly membership: Membership }
  /**
   * The driver's judgement that a silent primary should not be replaced now, with the reason
   * status shows (null lifts it): its node is the coordinator's of its LUN and that node is
   * down, so no initiator reaches the segment until the node returns, and a failover would
   * only move the primary off the coordinator's node for good (nothing moves it back). Holding
   * never risks an acknowledged write; a primary that comes back restarted still gets its new
   * epoch (needsEpoch is not held), and the election prefers it on equal logs. Once lifted, the
   * failover still waits failoverAfterMs for the returning node's units to report.
   */
  | { readonly kind: "hold"; readonly segment: string; readonly reason: string | null }
  /**
   * The driver's judgement that the node of the unit `primary` has not heartbeated (its
   * node-level heartbeat in the metadata store) for failoverAfterMs or longer (null: no primary
   * of the segment is known to be on such a node). A manager that has just started, or a
   * record that has just changed, waits failoverAfterMs for the units' own heartbeats before
   * it replaces a silent primary; for a primary whose node is
   * known down that wait is spent already (a new manager elected because the old one's node
   * died, with the primaries there). Only the wait is skipped: the primary must still be silent
   * to the manager, and the election is the same. Never risks an acknowledged write.
   */
  | { readonly kind: "node-down"; readonly segment: string; readonly primary: UnitId | null }
  /**
   * The segment's LUN is coordinated by node `to` now (null: no move wanted). While the record
   * names another coordinator, the manager elects a new epoch that names `to`, as for a failover
   * but whether or not the primary serves (the election keeps the primary on equal logs): the
   * units then turn away the old coordinator's epoch, and the old coordinator never acts on a
   * record naming another node (ReplicatedSegment), so it can acknowledge nothing more. Held or
   * not, a move goes ahead: a hold exists for the coordinator's own node.
   */
  | { readonly kind: "move"; readonly segment: string; readonly to: string | null }
  | { readonly kind: "tick" };

export interface ManagerStep {
  readonly state: ManagerState;
  readonly effects: ManagerEffect[];
}

export function initManager(segments: readonly string[], now: number, cfg: ManagerConfig = defaultManagerConfig): ManagerStep {
  const st: ManagerState = { cfg, startedAt: now, segments: new Map(), nextRound: 1, nextToken: 1, tokens: new Map() };
  const effects: ManagerEffect[] = [];
  for (const s of segments) {
    st.segments.set(s, { record: null, recordAt: now, lastFetchAt: now, heard: new Map(), phase: { kind: "idle", nextTryAt: now }, notServingSince: null, unavailable: null, pushedAt: new Map(), held: null, liftedAt: null, nodeDownOf: null, moveTo: null });
    effects.push({ kind: "fetch-membership", segment: s });
  }
  return { state: st, effects };
}

/** What `qstora status` shows for a segment. */
export interface SegmentStatus {
  readonly segment: string;
  readonly epoch: number;
  readonly primary: UnitId | null;
  readonly state: "serving" | "failing-over" | "unavailable" | "unknown";
  readonly reason: Unavailable | null;
}

export function segmentStatus(st: ManagerState, segment: string): SegmentStatus {
  const w = st.segments.get(segment);
  if (w === undefined || w.record === null) return { segment, epoch: 0, primary: null, state: "unknown", reason: null };
  const state = w.unavailable !== null ? "unavailable" : w.phase.kind === "idle" ? "serving" : "failing-over";
  return { segment, epoch: w.record.epoch, primary: w.record.primary, state, reason: w.unavailable };
}

export function stepManager(st: ManagerState, input: ManagerInput, now: number): ManagerStep {
  const effects: ManagerEffect[] = [];
  switch (input.kind) {
    case "message":
      onMessage(st, input.msg, now, effects);
      break;
    case "record-done":
      onRecordDone(st, input.token, input, now, effects);
      break;
    case "membership-loaded": {
      const w = st.segments.get(input.membership.segment);
      if (w !== undefined) learn(w, input.membership, now);
      break;
    }
    case "hold": {
      const w = st.segments.get(input.segment);
      if (w === undefined) break;
      if (w.held !== null && input.reason === null) w.liftedAt = now;
      w.held = input.reason;
      break;
    }
    case "node-down": {
      const w = st.segments.get(input.segment);
      if (w !== undefined) w.nodeDownOf = input.primary;
      break;
    }
    case "move": {
      const w = st.segments.get(input.segment);
      if (w !== undefined) w.moveTo = input.to;
      break;
    }
    case "tick":
      for (const [segment, w] of st.segments) tickSegment(st, segment, w, now, effects);
      break;
    default:
      unreachable(input);
  }
  return { state: st, effects };
}

function learn(w: Watch, m: Membership, now: number): void {
  if (w.record !== null && m.epoch <= w.record.epoch) return;
  w.record = m;
  w.recordAt = now;
  w.notServingSince = null;
  if (w.phase.kind === "probing") w.phase = { kind: "idle", nextTryAt: now };
}

function onMessage(st: ManagerState, msg: Message, now: number, effects: ManagerEffect[]): void {
  if (msg.type !== "heartbeat" && msg.type !== "probe-reply") return;
  const r = msg.report;
  const w = st.segments.get(r.segment);
  if (w === undefined) return;
  w.heard.set(r.unit, { at: now, report: r });
  if (w.record !== null && r.epoch > w.record.epoch && now - w.lastFetchAt >= st.cfg.retryMs) {
    w.lastFetchAt = now;
    effects.push({ kind: "fetch-membership", segment: r.segment });
  }
  if (w.record !== null && r.unit === w.record.primary && r.epoch === w.record.epoch) {
    if (r.serving) w.notServingSince = null;
    else if (w.notServingSince === null) w.notServingSince = now;
  }
  if (msg.type === "probe-reply" && w.phase.kind === "probing" && msg.round === w.phase.round) w.phase.replies.set(r.unit, r);
}

function onRecordDone(st: ManagerState, t: number, result: RecordOutcome, now: number, effects: ManagerEffect[]): void {
  const segment = st.tokens.get(t);
  if (segment === undefined) return; // a retried record answered twice
  const w = st.segments.get(segment);
  assert(w !== undefined);
  const ph = w.phase;
  if (ph.kind !== "recording" || ph.token !== t) {
    if (result.outcome !== "unknown") st.tokens.delete(t);
    return;
  }
  if (result.outcome === "unknown") {
    ph.retryAt = now + st.cfg.retryMs;
    return;
  }
  st.tokens.delete(t);
  w.phase = { kind: "idle", nextTryAt: now };
  // A retry whose first attempt went through comes back as a conflict with our own record.
  const mine = result.outcome === "applied" || sameMembership(result.current, ph.membership);
  const current = result.outcome === "applied" ? ph.membership : result.current;
  learn(w, mine ? ph.membership : current, now);
  if (mine) {
    w.unavailable = null;
    for (const u of membersOf(ph.membership)) send(w, u, ph.membership, now, effects);
  }
}

function send(w: Watch, u: UnitId, m: Membership, now: number, effects: ManagerEffect[]): void {
  w.pushedAt.set(u, now);
  effects.push({ kind: "send", to: u, msg: { type: "membership", epoch: m.epoch, membership: m } });
}

function recentReports(st: ManagerState, w: Watch, now: number): Map<UnitId, UnitReport> {
  const out = new Map<UnitId, UnitReport>();
  for (const [u, h] of w.heard) if (now - h.at <= st.cfg.failoverAfterMs) out.set(u, h.report);
  return out;
}

/**
 * The probe replies, plus the recorded primary's last heartbeat when it restarted (needsEpoch)
 * and its probe reply is missing. A restarted primary serves nothing of its old epoch and takes
 * no forwards (it is that epoch's primary), so its log stays as its heartbeat reported it: as
 * good as a reply. Without it, a primary whose node just came back (the manager's transport to
 * it still reconnecting, so the probe is lost) lost the election to a secondary with the same
 * log, and with it the place on its LUN's coordinator node.
 */
function withRestartedPrimary(st: ManagerState, w: Watch, m: Membership, replies: ReadonlyMap<UnitId, UnitReport>, now: number): ReadonlyMap<UnitId, UnitReport> {
  if (replies.has(m.primary)) return replies;
  const h = w.heard.get(m.primary);
  if (h === undefined || now - h.at > st.cfg.failoverAfterMs || !h.report.needsEpoch || h.report.epoch !== m.epoch) return replies;
  return new Map([...replies, [m.primary, h.report]]);
}

function tickSegment(st: ManagerState, segment: string, w: Watch, now: number, effects: ManagerEffect[]): void {
  const m = w.record;
  if (m === null) {
    if (now - w.lastFetchAt >= st.cfg.retryMs) {
      w.lastFetchAt = now;
      effects.push({ kind: "fetch-membership", segment });
    }
    return;
  }
  // Units that don't know the record yet hear it again (pushes can be lost).
  for (const u of membersOf(m)) {
    const h = w.heard.get(u);
    if (h !== undefined && h.report.epoch < m.epoch && now - (w.pushedAt.get(u) ?? -Infinity) >= st.cfg.pushEveryMs) send(w, u, m, now, effects);
  }
  const ph = w.phase;
  switch (ph.kind) {
    case "recording":
      if (ph.retryAt !== null && now >= ph.retryAt) {
        ph.retryAt = null;
        effects.push({ kind: "record", token: ph.token, expectEpoch: ph.expectEpoch, membership: ph.membership });
      }
      return;
    case "probing": {
      const all = membersOf(m).every((u) => ph.replies.has(u));
      if (!all && now - ph.startedAt < st.cfg.probeTimeoutMs) return;
      const d = decideFailover(m, withRestartedPrimary(st, w, m, ph.replies, now), movingTo(w, m) ?? undefined);
      if (d.kind === "stale") {
        w.phase = { kind: "idle", nextTryAt: now + st.cfg.retryMs };
        w.lastFetchAt = now;
        effects.push({ kind: "fetch-membership", segment });
        return;
      }
      if (d.kind === "unavailable") {
        w.unavailable = d.reason;
        w.phase = { kind: "idle", nextTryAt: now + st.cfg.retryMs };
        return;
      }
      const t = st.nextToken++;
      st.tokens.set(t, segment);
      w.phase = { kind: "recording", token: t, expectEpoch: m.epoch, membership: d.membership, retryAt: null };
      effects.push({ kind: "record", token: t, expectEpoch: m.epoch, membership: d.membership });
      return;
    }
    case "idle":
      break;
    default:
      unreachable(ph);
  }
  if (now < ph.nextTryAt) return;
  const moving = movingTo(w, m) !== null;
  // Give a new record's primary (and a restarted manager's heartbeats) time to show up, unless
  // its node is known down (the "node-down" input) or the coordination moves.
  if (!moving && w.nodeDownOf !== m.primary && (now - w.recordAt < st.cfg.failoverAfterMs || now - st.startedAt < st.cfg.failoverAfterMs)) return;
  const p = w.heard.get(m.primary);
  const silent = p === undefined || now - p.at > st.cfg.failoverAfterMs;
  const needsEpoch = p !== undefined && !silent && p.report.needsEpoch && p.report.epoch === m.epoch;
  const notServing = w.notServingSince !== null && now - w.notServingSince > st.cfg.failoverAfterMs;
  if (!silent && !needsEpoch && !notServing && !moving) {
    w.unavailable = null;
    return;
  }
  if (w.held !== null && !needsEpoch && !moving) {
    w.unavailable = { code: "COORDINATOR_DOWN", segment, message: w.held, waitingFor: [m.primary] };
    return;
  }
  // The hold was lifted (the coordinator's node heartbeats again) but its primary has not spoken
  // yet: a daemon heartbeats before its units report, so wait for them as long as for any silent
  // primary. Failing over at once would move the primary off the coordinator's node for good.
  if (w.liftedAt !== null && now - w.liftedAt < st.cfg.failoverAfterMs && !needsEpoch && !moving) return;
  // Probing fences the units; don't fence a primary that may still be serving (silent to us
  // only) when no answering unit could replace it anyway.
  const pre = decideFailover(m, recentReports(st, w, now));
  if (pre.kind === "unavailable" && silent) {
    w.unavailable = pre.reason;
    w.phase = { kind: "idle", nextTryAt: now + st.cfg.retryMs };
    return;
  }
  const round = st.nextRound++;
  w.phase = { kind: "probing", round, fence: m.epoch + 1, startedAt: now, replies: new Map() };
  for (const u of membersOf(m)) effects.push({ kind: "send", to: u, msg: { type: "probe", epoch: m.epoch, fence: m.epoch + 1, round } });
}

/** The node the segment's coordination should move to while its record names another, else null. */
function movingTo(w: Watch, m: Membership): string | null {
  return w.moveTo !== null && m.coordinator !== w.moveTo ? w.moveTo : null;
}
