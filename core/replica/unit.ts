// One segment unit's replication logic as a pure state machine: `stepUnit(state, input, now)`
// returns the state and the effects its driver must carry out (messages, page persists, reads,
// flushes, metadata records). The same machine plays every role its membership gives it:
// primary (orders writes by log sequence number, replicates, acknowledges by policy, holds a
// lease, serves reads), active secondary (applies forwarded writes in order), inactive
// secondary (catches up from the primary while new writes flow to it, then asks to rejoin) and
// arbiter (votes for leases, stores nothing). docs/REPLICATION.md gives the protocol and the
// argument for its safety.
//
// It never touches a socket, a file, a timer or Math.random: time arrives as `now` (the unit's
// own clock; only differences of it are used), everything else as inputs. The state object is
// owned by the machine: stepUnit updates it in place and returns it, so a driver keeps only the
// returned reference. A crash is modelled by throwing the state away and calling initUnit()
// with what was persisted.
//
// Driver contract (every driver, the simulation included, must keep it):
// - effects of one step are carried out in the order given;
// - "persist-meta" is durable before any later effect of the same list is carried out;
// - "persist", "read" and "flush" of one unit run in the order emitted (a read sees every
//   persist emitted before it), each answered by one input; a crash may lose queued ones.

import { assert, unreachable } from "../util/assert.ts";
import { advanceCommit, ackRuleOf, mayDegrade, type AckRule } from "./policy.ts";
import type {
  Address,
  ClientRequest,
  LogMark,
  Membership,
  Message,
  PeerMessage,
  Policy,
  Recovered,
  RecordOutcome,
  UnitEffect,
  UnitId,
  UnitInput,
  UnitMeta,
  UnitReport,
} from "./types.ts";
import { majorityOf, managerAddress, membersOf, sameMembership } from "./types.ts";

/** Pages one write or read may span (a 1 MiB stripe of 4 KiB pages). */
export const writePagesMax = 256;

/** The epoch of a segment's first record, made when it is created: every unit's log is empty. */
export const createEpoch = 1;

export interface UnitConfig {
  /** How long a voter's grant binds it; a primary's lease is shorter by `leaseMarginMs`. */
  readonly leaseMs: number;
  /** Covers clock-rate drift between primary and voters over one lease. */
  readonly leaseMarginMs: number;
  readonly leaseRenewMs: number;
  readonly retransmitMs: number;
  /** An active secondary that leaves a write (or flush) unanswered this long is recorded inactive. */
  readonly degradeAfterMs: number;
  /** A catch-up session without progress (no copy, no forward) this long starts over. */
  readonly catchupTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly fetchEveryMs: number;
  /** Log entries kept for retransmission; beyond it, writes are refused with "busy". */
  readonly inflightWritesMax: number;
  readonly readsWaitingMax: number;
  readonly readWaitMaxMs: number;
  readonly flushesMax: number;
  /** Forwards buffered out of order on a secondary. */
  readonly reorderMax: number;
  readonly retransmitBatchMax: number;
  /** Catch-up page reads in flight on the primary per joiner. */
  readonly catchupWindow: number;
  /** Request ids remembered per coordinator for deduplication. */
  readonly dedupPerClientMax: number;
  /** Tests only: a deliberately wrong acknowledgement rule, to prove the simulation catches it. */
  readonly ackRuleForTest?: (policy: Policy) => AckRule;
}

export const defaultUnitConfig: UnitConfig = {
  leaseMs: 2000,
  leaseMarginMs: 200,
  leaseRenewMs: 500,
  retransmitMs: 100,
  degradeAfterMs: 1000,
  catchupTimeoutMs: 1000,
  heartbeatMs: 250,
  fetchEveryMs: 500,
  inflightWritesMax: 1024,
  readsWaitingMax: 256,
  readWaitMaxMs: 2000,
  flushesMax: 64,
  reorderMax: 256,
  retransmitBatchMax: 64,
  catchupWindow: 32,
  dedupPerClientMax: 1024,
};

type PeerMode = "active" | "promoting" | "joining" | "idle";

interface Peer {
  mode: PeerMode;
  /** Log writes persisted there, cumulative (for joiners: counted from the session's fromLsn). */
  ackedLsn: number;
  durableLsn: number;
  lastSentAt: number;
  /** When the oldest write it has not acknowledged was forwarded (for degradation). */
  session: number;
  sessionFromLsn: number;
  pagesToSend: number[];
  pageCount: number;
  readsInFlight: number;
  caughtUpLsn: number;
  flushReqAt: number;
}

interface LogEntry {
  readonly page: number;
  readonly pages: number;
  readonly data: Uint8Array;
  readonly at: number;
}

interface Waiter {
  readonly client: Address;
  readonly reqId: number;
}

interface PendingFlush extends Waiter {
  readonly target: number;
  readonly at: number;
}

interface WaitingRead extends Waiter {
  readonly page: number;
  readonly pages: number;
  readonly at: number;
}

interface PrimaryState {
  /** The first epoch of this unbroken tenure: acks from any epoch since then speak of one history. */
  readonly since: number;
  /** Persist streams of this history: our own writes, and the forwards we were still persisting
   * as a secondary of it when we took over. Persists of any other stream are another history. */
  readonly streams: ReadonlySet<number>;
  readonly stream: number;
  nextLsn: number;
  persistedLsn: number;
  commitLsn: number;
  durableLsn: number;
  ownFlushLsn: number | null;
  readonly log: Map<number, LogEntry>;
  /** Pages with a write not yet committed, and that write's lsn: reads of them wait. */
  readonly uncommitted: Map<number, number>;
  readonly peers: Map<UnitId, Peer>;
  readonly writers: Map<number, Waiter[]>;
  readonly dedup: Map<Address, { floor: number; ids: Map<number, number> }>;
  readonly readsWaiting: WaitingRead[];
  readonly flushes: PendingFlush[];
  readonly grants: Map<UnitId, number>;
  leaseUntil: number;
  lastLeaseReqAt: number;
  record: { token: number; expectEpoch: number; membership: Membership; retryAt: number | null } | null;
  flushPeersAt: number;
}

interface Session {
  readonly id: number;
  /** Last time the session moved (a copy or a forward arrived): a stalled one starts over. */
  progressAt: number;
  started: boolean;
  fromLsn: number;
  pageCount: number;
  readonly got: Set<number>;
  /** Seq of each page as this session left it: a catch-up copy older than a forwarded write loses. */
  readonly seqs: Map<number, number>;
  maxSeq: number;
  done: boolean;
}

interface SecondaryState {
  /** The primary whose history the stream follows. */
  primary: UnitId;
  /** Persists of an earlier stream (another history) must not count as acks of this one. */
  stream: number;
  expectLsn: number;
  ackLsn: number;
  readonly buffer: Map<number, { page: number; pages: number; data: Uint8Array }>;
  primaryCommit: number;
  /** Does the stream extend a consistent history (active, or joiner caught up)? */
  consistent: boolean;
  session: Session | null;
  flushUpTo: number;
  flushInFlight: boolean;
}

type Tag =
  | { readonly kind: "log"; readonly lsn: number; readonly stream: number; readonly mark: LogMark }
  | { readonly kind: "page"; readonly mark: LogMark | null }
  | { readonly kind: "mark"; readonly mark: LogMark; readonly then: "caught-up" | null; readonly session: number }
  | { readonly kind: "client-read"; readonly client: Address; readonly reqId: number; readonly epoch: number }
  | { readonly kind: "catchup-read"; readonly peer: UnitId; readonly session: number; readonly page: number; readonly seq: number }
  | { readonly kind: "own-flush"; readonly lsn: number }
  | { readonly kind: "sec-flush"; readonly lsn: number }
  | { readonly kind: "record" };

export interface UnitState {
  readonly self: UnitId;
  readonly segment: string;
  readonly cfg: UnitConfig;
  meta: UnitMeta;
  /** The log marker as the disk holds it now (what reports tell the manager). */
  persistedMark: LogMark;
  /** Serve as primary only for epochs at or above this (a restart forgets the volatile log). */
  eligibleFrom: number;
  grantsBlockedUntil: number;
  /** The log marker as the disk will hold it once every queued persist is done. */
  mark: LogMark;
  readonly pageSeq: Map<number, number>;
  nextToken: number;
  readonly tags: Map<number, Tag>;
  promise: { epoch: number; primary: UnitId; until: number } | null;
  pri: PrimaryState | null;
  sec: SecondaryState | null;
  lastHeartbeatAt: number;
  lastFetchAt: number;
  wantFetch: boolean;
}

export interface StepResult {
  readonly state: UnitState;
  readonly effects: UnitEffect[];
}

export function initUnit(opts: { self: UnitId; segment: string; cfg?: UnitConfig }, recovered: Recovered, now: number): StepResult {
  const meta = recovered.meta ?? { membership: null, fence: 0, proposed: 0 };
  const knownEpoch = meta.membership?.epoch ?? 0;
  const st: UnitState = {
    self: opts.self,
    segment: opts.segment,
    cfg: opts.cfg ?? defaultUnitConfig,
    meta,
    // Epochs we knew (we may have served them) or asked to record are closed to us. A fence says
    // only that we answered a probe, not that we served: an epoch recorded after it is open.
    eligibleFrom: Math.max(knownEpoch, meta.proposed) + 1,
    // Grants made before the crash are forgotten: honour them by granting nothing for a lease.
    grantsBlockedUntil: now + (opts.cfg ?? defaultUnitConfig).leaseMs,
    mark: recovered.log,
    persistedMark: recovered.log,
    pageSeq: new Map(recovered.pageSeqs),
    nextToken: 1,
    tags: new Map(),
    promise: null,
    pri: null,
    sec: null,
    lastHeartbeatAt: -Infinity,
    lastFetchAt: -Infinity,
    wantFetch: meta.membership === null,
  };
  const effects: UnitEffect[] = [];
  if (meta.membership !== null) enterRole(st, meta.membership, null, now, effects);
  return { state: st, effects };
}

export function stepUnit(st: UnitState, input: UnitInput, now: number): StepResult {
  const effects: UnitEffect[] = [];
  switch (input.kind) {
    case "message":
      onMessage(st, input.from, input.msg, now, effects);
      break;
    case "persisted":
      onPersisted(st, input.token, now, effects);
      break;
    case "read-done":
      onReadDone(st, input.token, input.data, now, effects);
      break;
    case "flushed":
      onFlushed(st, input.token, now, effects);
      break;
    case "record-done":
      onRecordDone(st, input.token, input, now, effects);
      break;
    case "membership-loaded":
      adopt(st, input.membership, now, effects);
      break;
    case "tick":
      onTick(st, now, effects);
      break;
    default:
      unreachable(input);
  }
  checkInvariants(st);
  return { state: st, effects };
}

// ---- queries ----

export function knownEpoch(st: UnitState): number {
  return st.meta.membership?.epoch ?? 0;
}

/** Serving: primary of the epoch it knows, not fenced off it, lease valid. */
export function isServing(st: UnitState, now: number): boolean {
  const m = st.meta.membership;
  if (st.pri === null || m === null) return false;
  if (m.primary !== st.self) return false;
  if (st.meta.fence > m.epoch) return false;
  return now < st.pri.leaseUntil;
}

export function reportOf(st: UnitState, now: number): UnitReport {
  const m = st.meta.membership;
  return {
    segment: st.segment,
    unit: st.self,
    epoch: knownEpoch(st),
    fence: st.meta.fence,
    lastLsn: st.persistedMark.lastLsn,
    consistent: st.persistedMark.consistent,
    serving: isServing(st, now),
    needsEpoch: m !== null && m.primary === st.self && st.pri === null,
  };
}

/** The commit point of a primary (for tests and status), or null. */
export function commitLsnOf(st: UnitState): number | null {
  return st.pri?.commitLsn ?? null;
}

// ---- helpers ----

function token(st: UnitState, tag: Tag): number {
  const t = st.nextToken++;
  st.tags.set(t, tag);
  return t;
}

function send(effects: UnitEffect[], to: Address, msg: Message): void {
  effects.push({ kind: "send", to, msg });
}

function persistMeta(st: UnitState, meta: UnitMeta, effects: UnitEffect[]): void {
  st.meta = meta;
  effects.push({ kind: "persist-meta", meta });
}

function membership(st: UnitState): Membership {
  const m = st.meta.membership;
  assert(m !== null, "unit has no membership");
  return m;
}

// ---- roles ----

/** Adopt a recorded membership newer than the one known. */
function adopt(st: UnitState, m: Membership, now: number, effects: UnitEffect[]): void {
  assert(m.segment === st.segment, "membership of another segment");
  const previous = st.meta.membership;
  if (previous !== null && m.epoch <= previous.epoch) return;
  persistMeta(st, { ...st.meta, membership: m }, effects);
  st.wantFetch = false;
  enterRole(st, m, previous, now, effects);
}

function enterRole(st: UnitState, m: Membership, previous: Membership | null, now: number, effects: UnitEffect[]): void {
  const self = st.self;
  const isMember = membersOf(m).includes(self);
  if (m.primary === self) {
    if (st.pri !== null) continuePrimary(st, m);
    else if (m.epoch >= st.eligibleFrom) takeOver(st, m, now, effects);
    st.sec = null;
    return;
  }
  st.pri = null;
  if (!isMember || m.arbiter === self) {
    st.sec = null;
    return;
  }
  const active = m.secondaries.includes(self);
  const sec = st.sec;
  const samePrimary = sec !== null && sec.primary === m.primary && previous !== null && previous.primary === m.primary;
  if (active) {
    if (sec !== null && samePrimary && sec.consistent) return; // promoted, or unchanged: keep the stream
    if (sec !== null && samePrimary && sec.session !== null && sec.session.done) {
      sec.consistent = true;
      return;
    }
    // A fresh stream (restart, or first sight): it continues the persisted, consistent log.
    assert(st.mark.consistent, "recorded active but holds a half-done catch-up");
    st.sec = freshStream(st, m.primary, true);
    return;
  }
  // Inactive: keep a catch-up session with the same primary, else start over.
  if (sec !== null && samePrimary && sec.session !== null) {
    sec.consistent = sec.session.done;
    return;
  }
  st.sec = freshStream(st, m.primary, false);
}

function freshStream(st: UnitState, primary: UnitId, consistent: boolean): SecondaryState {
  return {
    primary,
    stream: st.nextToken++,
    expectLsn: st.mark.lastLsn + 1,
    ackLsn: st.persistedMark.lastLsn,
    buffer: new Map(),
    primaryCommit: st.mark.commitKnown,
    consistent,
    session: null,
    flushUpTo: 0,
    flushInFlight: false,
  };
}

function newPeer(mode: PeerMode): Peer {
  return { mode, ackedLsn: 0, durableLsn: 0, lastSentAt: -Infinity, session: 0, sessionFromLsn: 0, pagesToSend: [], pageCount: 0, readsInFlight: 0, caughtUpLsn: -1, flushReqAt: -Infinity };
}

/** Become primary of a new epoch after a failover (or after a restart): the log is what persisted. */
function takeOver(st: UnitState, m: Membership, now: number, effects: UnitEffect[]): void {
  assert(st.mark.consistent, "a unit holding a half-done catch-up was made primary");
  // Failover records make every other data unit inactive: they rejoin by catch-up. So no peer
  // of a fresh primary is active, and no ack from another history can be mistaken for ours.
  // The one exception is the segment's creation record (epoch 1): every log is empty then.
  assert(m.secondaries.length === 0 || m.epoch === createEpoch, "a fresh primary with active secondaries");
  assert(m.epoch !== createEpoch || st.mark.lastLsn === 0, "a new segment's primary with a log");
  const commitLsn = st.mark.commitKnown;
  const uncommitted = new Map<number, number>();
  for (const [page, seq] of st.pageSeq) if (seq > commitLsn) uncommitted.set(page, seq);
  const peers = new Map<UnitId, Peer>();
  for (const u of m.inactive) peers.set(u, newPeer("idle"));
  for (const u of m.secondaries) peers.set(u, newPeer("active"));
  const stream = st.nextToken++;
  const streams = new Set([stream]);
  if (st.sec !== null && st.sec.consistent) streams.add(st.sec.stream);
  st.pri = {
    since: m.epoch,
    streams,
    stream,
    nextLsn: st.mark.lastLsn + 1,
    persistedLsn: st.persistedMark.lastLsn,
    commitLsn,
    durableLsn: 0,
    ownFlushLsn: null,
    log: new Map(),
    uncommitted,
    peers,
    writers: new Map(),
    dedup: new Map(),
    readsWaiting: [],
    flushes: [],
    grants: new Map(),
    leaseUntil: -Infinity,
    lastLeaseReqAt: -Infinity,
    record: null,
    flushPeersAt: -Infinity,
  };
  advance(st, now, effects);
  requestLease(st, now, effects);
}

/** Our own record (degradation, promotion) or a bump: same tenure, new peer roles. */
function continuePrimary(st: UnitState, m: Membership): void {
  const pri = st.pri;
  assert(pri !== null);
  // A record still pending is settled by any membership at or past its epoch.
  if (pri.record !== null && m.epoch >= pri.record.membership.epoch) pri.record = null;
  for (const u of m.secondaries) {
    const p = pri.peers.get(u);
    if (p === undefined) pri.peers.set(u, newPeer("active"));
    else p.mode = "active";
  }
  for (const u of m.inactive) {
    const p = pri.peers.get(u);
    if (p === undefined) pri.peers.set(u, newPeer("idle"));
    else if (p.mode === "active" || p.mode === "promoting") p.mode = "idle";
  }
  for (const u of [...pri.peers.keys()]) if (!m.secondaries.includes(u) && !m.inactive.includes(u)) pri.peers.delete(u);
  for (const u of [...pri.grants.keys()]) if (!membersOf(m).includes(u)) pri.grants.delete(u);
}

// ---- inputs ----

function onMessage(st: UnitState, from: Address, msg: Message, now: number, effects: UnitEffect[]): void {
  switch (msg.type) {
    case "write":
    case "read":
    case "flush":
      onClientRequest(st, from, msg, now, effects);
      return;
    case "write-done":
    case "read-done":
    case "flush-done":
    case "rejected":
    case "probe-reply":
    case "heartbeat":
      return; // not for units
    case "membership":
      adopt(st, msg.membership, now, effects);
      return;
    case "probe":
      onProbe(st, from, msg.fence, msg.round, now, effects);
      return;
    case "stale":
      if (msg.membership !== null) adopt(st, msg.membership, now, effects);
      else if (msg.epoch > knownEpoch(st)) st.wantFetch = true;
      return;
    default:
      onPeerMessage(st, from, msg, now, effects);
  }
}

/** Fencing for unit-to-unit messages: older than we accept → tell the sender; newer → learn it. */
function admit(st: UnitState, from: Address, epoch: number, effects: UnitEffect[]): boolean {
  const known = knownEpoch(st);
  if (epoch < known || epoch < st.meta.fence) {
    send(effects, from, { type: "stale", epoch: Math.max(known, st.meta.fence), membership: st.meta.membership });
    return false;
  }
  if (epoch > known) {
    st.wantFetch = true;
    return false;
  }
  return true;
}

function onPeerMessage(st: UnitState, from: Address, msg: PeerMessage, now: number, effects: UnitEffect[]): void {
  if (msg.type === "lease-req") {
    // The membership rides along: recorded, hence safe to adopt.
    if (msg.epoch > knownEpoch(st) && msg.epoch >= st.meta.fence) adopt(st, msg.membership, now, effects);
    if (!admit(st, from, msg.epoch, effects)) return;
    onLeaseRequest(st, from, msg.sentAt, msg.commitLsn, now, effects);
    return;
  }
  if (msg.type === "forward-ack" || msg.type === "flush-ack" || msg.type === "lease-grant" || msg.type === "caught-up" || msg.type === "catchup-req") {
    onReplyToPrimary(st, from, msg, now, effects);
    return;
  }
  if (!admit(st, from, msg.epoch, effects)) return;
  const m = membership(st);
  const sec = st.sec;
  if (from !== m.primary || sec === null || sec.primary !== from) return;
  switch (msg.type) {
    case "forward":
      if (sec.session !== null) sec.session.progressAt = now;
      onForward(st, sec, msg, effects);
      return;
    case "flush-req":
      sec.flushUpTo = Math.max(sec.flushUpTo, msg.upToLsn);
      maybeSecondaryFlush(st, sec, effects);
      return;
    case "catchup-start":
      startSession(st, sec, msg.session, msg.fromLsn, msg.pageCount, now, effects);
      return;
    case "catchup-page": {
      startSession(st, sec, msg.session, msg.fromLsn, msg.pageCount, now, effects);
      const s = sec.session;
      if (s === null || s.id !== msg.session || !s.started || s.got.has(msg.page)) return;
      s.got.add(msg.page);
      s.progressAt = now;
      s.maxSeq = Math.max(s.maxSeq, msg.seq);
      const seen = s.seqs.get(msg.page);
      if (seen === undefined || seen < msg.seq) {
        s.seqs.set(msg.page, msg.seq);
        st.pageSeq.set(msg.page, msg.seq);
        effects.push({ kind: "persist", token: token(st, { kind: "page", mark: null }), write: { page: msg.page, pages: 1, seq: msg.seq, data: msg.data }, log: null });
      }
      maybeCaughtUp(st, sec, effects);
      return;
    }
    default:
      unreachable(msg as never);
  }
}

function startSession(st: UnitState, sec: SecondaryState, session: number, fromLsn: number, pageCount: number, now: number, effects: UnitEffect[]): void {
  const s = sec.session;
  if (s === null || s.id !== session || s.started) return;
  s.started = true;
  s.progressAt = now;
  s.fromLsn = fromLsn;
  s.pageCount = pageCount;
  sec.stream = st.nextToken++;
  sec.expectLsn = fromLsn + 1;
  sec.ackLsn = fromLsn;
  for (const lsn of [...sec.buffer.keys()]) if (lsn <= fromLsn) sec.buffer.delete(lsn);
  // From here the pages mix two histories until the session completes: say so on disk first.
  st.mark = { ...st.mark, consistent: false };
  effects.push({ kind: "persist", token: token(st, { kind: "page", mark: st.mark }), write: null, log: st.mark });
  drain(st, sec, effects);
  maybeCaughtUp(st, sec, effects);
}

function onForward(st: UnitState, sec: SecondaryState, f: Extract<PeerMessage, { type: "forward" }>, effects: UnitEffect[]): void {
  const { lsn, commitLsn } = f;
  const inSession = sec.session !== null && sec.session.started;
  if (!sec.consistent && !inSession) return; // an inactive unit before its catch-up has gaps
  sec.primaryCommit = Math.max(sec.primaryCommit, commitLsn);
  if (lsn < sec.expectLsn) {
    if (knownEpoch(st) >= st.meta.fence) send(effects, sec.primary, { type: "forward-ack", epoch: knownEpoch(st), lsn: sec.ackLsn });
    return;
  }
  if (lsn !== sec.expectLsn && sec.buffer.size >= st.cfg.reorderMax) return; // the primary retransmits
  sec.buffer.set(lsn, { page: f.page, pages: f.pages, data: f.data });
  drain(st, sec, effects);
}

/** Persist buffered forwards in lsn order. */
function drain(st: UnitState, sec: SecondaryState, effects: UnitEffect[]): void {
  for (;;) {
    const f = sec.buffer.get(sec.expectLsn);
    if (f === undefined) return;
    sec.buffer.delete(sec.expectLsn);
    const lsn = sec.expectLsn++;
    for (let p = f.page; p < f.page + f.pages; p++) {
      st.pageSeq.set(p, lsn);
      sec.session?.seqs.set(p, lsn);
    }
    const mark: LogMark = sec.consistent ? { lastLsn: lsn, commitKnown: Math.min(sec.primaryCommit, lsn), consistent: true } : { ...st.mark, lastLsn: lsn };
    st.mark = mark;
    effects.push({ kind: "persist", token: token(st, { kind: "log", lsn, stream: sec.stream, mark }), write: { page: f.page, pages: f.pages, seq: lsn, data: f.data }, log: mark });
  }
}

function maybeCaughtUp(st: UnitState, sec: SecondaryState, effects: UnitEffect[]): void {
  const s = sec.session;
  if (s === null || !s.started || s.done) return;
  if (s.got.size < s.pageCount) return;
  // Every catch-up copy is in; forwards up to the newest copy's seq must be too, so that a page
  // whose copy was read after a write also has that write (and everything before it) here.
  const through = Math.max(s.fromLsn, s.maxSeq);
  if (sec.ackLsn < through || sec.expectLsn - 1 !== sec.ackLsn) return;
  s.done = true;
  sec.consistent = true;
  const mark: LogMark = { lastLsn: sec.ackLsn, commitKnown: Math.min(sec.primaryCommit, sec.ackLsn), consistent: true };
  st.mark = mark;
  effects.push({ kind: "persist", token: token(st, { kind: "mark", mark, then: "caught-up", session: s.id }), write: null, log: mark });
}

function maybeSecondaryFlush(st: UnitState, sec: SecondaryState, effects: UnitEffect[]): void {
  if (sec.flushInFlight || sec.flushUpTo === 0 || sec.ackLsn < sec.flushUpTo || !sec.consistent) return;
  sec.flushInFlight = true;
  effects.push({ kind: "flush", token: token(st, { kind: "sec-flush", lsn: sec.ackLsn }) });
}

function onPersisted(st: UnitState, t: number, now: number, effects: UnitEffect[]): void {
  const tag = st.tags.get(t);
  assert(tag !== undefined, "persisted: unknown token");
  st.tags.delete(t);
  if (tag.kind === "log" || tag.kind === "page" || tag.kind === "mark") {
    if (tag.mark !== null) st.persistedMark = tag.mark;
  }
  switch (tag.kind) {
    case "log": {
      const pri = st.pri;
      if (pri !== null) {
        if (!pri.streams.has(tag.stream)) return;
        pri.persistedLsn = Math.max(pri.persistedLsn, tag.lsn);
        advance(st, now, effects);
        return;
      }
      const sec = st.sec;
      if (sec === null || tag.stream !== sec.stream) return;
      if (tag.lsn <= sec.ackLsn || tag.lsn >= sec.expectLsn) return;
      sec.ackLsn = tag.lsn;
      // Fenced units acknowledge nothing of the fenced epoch: the manager counts on it.
      if (knownEpoch(st) >= st.meta.fence) send(effects, sec.primary, { type: "forward-ack", epoch: knownEpoch(st), lsn: sec.ackLsn });
      maybeSecondaryFlush(st, sec, effects);
      maybeCaughtUp(st, sec, effects);
      return;
    }
    case "page":
      return;
    case "mark": {
      const sec = st.sec;
      if (tag.then !== "caught-up" || sec === null || sec.session === null || sec.session.id !== tag.session) return;
      if (knownEpoch(st) >= st.meta.fence) send(effects, sec.primary, { type: "caught-up", epoch: knownEpoch(st), session: tag.session, lsn: tag.mark.lastLsn });
      return;
    }
    default:
      assert(false, `persisted: token of a ${tag.kind}`);
  }
}

function onReadDone(st: UnitState, t: number, data: Uint8Array, now: number, effects: UnitEffect[]): void {
  const tag = st.tags.get(t);
  assert(tag !== undefined, "read-done: unknown token");
  st.tags.delete(t);
  if (tag.kind === "client-read") {
    // The read happened after its effect and before now: valid if the lease covers now.
    if (isServing(st, now) && knownEpoch(st) === tag.epoch) send(effects, tag.client, { type: "read-done", epoch: tag.epoch, reqId: tag.reqId, data });
    else send(effects, tag.client, { type: "rejected", epoch: knownEpoch(st), reqId: tag.reqId, reason: "no-lease", membership: st.meta.membership });
    return;
  }
  assert(tag.kind === "catchup-read", "read-done: token of another kind");
  const pri = st.pri;
  if (pri === null) return;
  const peer = pri.peers.get(tag.peer);
  if (peer === undefined || peer.mode !== "joining" || peer.session !== tag.session) return;
  peer.readsInFlight--;
  send(effects, tag.peer, { type: "catchup-page", epoch: knownEpoch(st), session: tag.session, fromLsn: peer.sessionFromLsn, pageCount: peer.pageCount, page: tag.page, seq: tag.seq, data });
  pumpCatchup(st, tag.peer, peer, effects);
}

function onFlushed(st: UnitState, t: number, now: number, effects: UnitEffect[]): void {
  const tag = st.tags.get(t);
  assert(tag !== undefined, "flushed: unknown token");
  st.tags.delete(t);
  if (tag.kind === "own-flush") {
    const pri = st.pri;
    if (pri === null) return;
    pri.ownFlushLsn = null;
    pri.durableLsn = Math.max(pri.durableLsn, tag.lsn);
    checkFlushes(st, now, effects);
    return;
  }
  assert(tag.kind === "sec-flush", "flushed: token of another kind");
  const sec = st.sec;
  if (sec === null) return;
  sec.flushInFlight = false;
  if (knownEpoch(st) >= st.meta.fence) send(effects, sec.primary, { type: "flush-ack", epoch: knownEpoch(st), durableLsn: tag.lsn });
  if (sec.flushUpTo > tag.lsn) maybeSecondaryFlush(st, sec, effects);
}

function onRecordDone(st: UnitState, t: number, result: RecordOutcome, now: number, effects: UnitEffect[]): void {
  // A retried record may be answered twice: the first final answer settles it.
  const tag = st.tags.get(t);
  if (tag === undefined) return;
  assert(tag.kind === "record", "record-done: token of another kind");
  const pri = st.pri;
  if (pri === null || pri.record === null || pri.record.token !== t) {
    st.tags.delete(t);
    return;
  }
  const proposed = pri.record.membership;
  if (result.outcome === "unknown") {
    pri.record.retryAt = now + st.cfg.retransmitMs;
    return;
  }
  st.tags.delete(t);
  pri.record = null;
  // A retry whose first attempt went through comes back as a conflict with our own record.
  const applied = result.outcome === "applied" || sameMembership(result.current, proposed);
  const current = result.outcome === "applied" ? proposed : result.current;
  adopt(st, applied ? proposed : current, now, effects);
  if (applied && st.pri !== null) {
    for (const u of membersOf(proposed)) if (u !== st.self) send(effects, u, { type: "membership", epoch: proposed.epoch, membership: proposed });
    advance(st, now, effects);
  }
}


// ---- manager ----

function onProbe(st: UnitState, from: Address, fence: number, round: number, now: number, effects: UnitEffect[]): void {
  if (fence > st.meta.fence) persistMeta(st, { ...st.meta, fence }, effects);
  // Persisted before the reply leaves (driver contract), so a restart keeps the promise.
  send(effects, from, { type: "probe-reply", epoch: knownEpoch(st), round, report: reportOf(st, now) });
}

// ---- voting ----

function mayGrant(st: UnitState, primary: UnitId, now: number): boolean {
  if (now < st.grantsBlockedUntil) return false;
  const p = st.promise;
  if (p !== null && p.primary !== primary && now < p.until) return false;
  return true;
}

function grant(st: UnitState, primary: UnitId, now: number): void {
  st.promise = { epoch: knownEpoch(st), primary, until: now + st.cfg.leaseMs };
}

function onLeaseRequest(st: UnitState, from: Address, sentAt: number, commitLsn: number, now: number, effects: UnitEffect[]): void {
  const m = membership(st);
  if (from !== m.primary) return;
  if (st.sec !== null && st.sec.primary === from && st.sec.consistent) st.sec.primaryCommit = Math.max(st.sec.primaryCommit, Math.min(commitLsn, st.sec.ackLsn));
  if (!mayGrant(st, from, now)) return;
  grant(st, from, now);
  send(effects, from, { type: "lease-grant", epoch: m.epoch, sentAt });
}

function requestLease(st: UnitState, now: number, effects: UnitEffect[]): void {
  const pri = st.pri;
  assert(pri !== null);
  const m = membership(st);
  if (st.meta.fence > m.epoch) return;
  pri.lastLeaseReqAt = now;
  if (mayGrant(st, st.self, now)) {
    grant(st, st.self, now);
    pri.grants.set(st.self, now);
  }
  for (const u of membersOf(m)) {
    if (u !== st.self) send(effects, u, { type: "lease-req", epoch: m.epoch, sentAt: now, membership: m, commitLsn: pri.commitLsn });
  }
  recomputeLease(st);
}

function recomputeLease(st: UnitState): void {
  const pri = st.pri;
  assert(pri !== null);
  const m = membership(st);
  const sent = membersOf(m)
    .map((u) => pri.grants.get(u))
    .filter((t): t is number => t !== undefined)
    .sort((a, b) => b - a);
  const k = majorityOf(m);
  const kth = sent[k - 1];
  // The lease runs from when the request left, never from when grants came back: every voter
  // started its promise after that instant.
  pri.leaseUntil = kth === undefined ? -Infinity : kth + st.cfg.leaseMs - st.cfg.leaseMarginMs;
}

// ---- the primary ----

function reject(st: UnitState, to: Address, reqId: number, reason: "stale-epoch" | "not-primary" | "no-lease" | "busy", effects: UnitEffect[]): void {
  send(effects, to, { type: "rejected", epoch: knownEpoch(st), reqId, reason, membership: st.meta.membership });
}

function onClientRequest(st: UnitState, from: Address, req: ClientRequest, now: number, effects: UnitEffect[]): void {
  const known = knownEpoch(st);
  if (req.epoch < known) return reject(st, from, req.reqId, "stale-epoch", effects);
  if (req.epoch > known) {
    st.wantFetch = true;
    return reject(st, from, req.reqId, "not-primary", effects);
  }
  const pri = st.pri;
  if (pri === null) return reject(st, from, req.reqId, "not-primary", effects);
  if (!isServing(st, now)) return reject(st, from, req.reqId, "no-lease", effects);
  let d = pri.dedup.get(from);
  if (d === undefined) {
    d = { floor: 0, ids: new Map() };
    pri.dedup.set(from, d);
  }
  if (req.completeBelow > d.floor) {
    d.floor = req.completeBelow;
    for (const id of [...d.ids.keys()]) if (id < d.floor) d.ids.delete(id);
  }
  if (req.reqId < d.floor) return; // a late duplicate of a request already answered
  if (req.type !== "flush" && (req.pages < 1 || req.pages > writePagesMax)) return reject(st, from, req.reqId, "busy", effects);
  switch (req.type) {
    case "write": {
      const lsnSeen = d.ids.get(req.reqId);
      if (lsnSeen !== undefined) {
        if (lsnSeen <= pri.commitLsn) send(effects, from, { type: "write-done", epoch: known, reqId: req.reqId });
        return; // else its answer comes with the commit
      }
      if (pri.log.size >= st.cfg.inflightWritesMax || d.ids.size >= st.cfg.dedupPerClientMax) return reject(st, from, req.reqId, "busy", effects);
      const lsn = pri.nextLsn++;
      d.ids.set(req.reqId, lsn);
      pri.writers.set(lsn, [{ client: from, reqId: req.reqId }]);
      pri.log.set(lsn, { page: req.page, pages: req.pages, data: req.data, at: now });
      for (let p = req.page; p < req.page + req.pages; p++) {
        pri.uncommitted.set(p, lsn);
        st.pageSeq.set(p, lsn);
      }
        st.mark = { lastLsn: lsn, commitKnown: pri.commitLsn, consistent: true };
      effects.push({ kind: "persist", token: token(st, { kind: "log", lsn, stream: pri.stream, mark: st.mark }), write: { page: req.page, pages: req.pages, seq: lsn, data: req.data }, log: st.mark });
      for (const [u, peer] of pri.peers) {
        if (peer.mode === "idle") continue;
        send(effects, u, { type: "forward", epoch: known, lsn, page: req.page, pages: req.pages, data: req.data, commitLsn: pri.commitLsn });
        peer.lastSentAt = now;
      }
      return;
    }
    case "read": {
      if (anyUncommitted(pri, req.page, req.pages)) {
        if (pri.readsWaiting.length >= st.cfg.readsWaitingMax) return reject(st, from, req.reqId, "busy", effects);
        pri.readsWaiting.push({ client: from, reqId: req.reqId, page: req.page, pages: req.pages, at: now });
        return;
      }
      effects.push({ kind: "read", token: token(st, { kind: "client-read", client: from, reqId: req.reqId, epoch: known }), page: req.page, pages: req.pages });
      return;
    }
    case "flush": {
      if (pri.flushes.length >= st.cfg.flushesMax) return reject(st, from, req.reqId, "busy", effects);
      // Every write acknowledged before the flush arrived is in our log: by us (up to commitLsn)
      // or, after a failover, by the primary before us (anywhere in what we took over). So the
      // flush covers the whole log as it stands.
      pri.flushes.push({ client: from, reqId: req.reqId, target: pri.nextLsn - 1, at: now });
      checkFlushes(st, now, effects);
      return;
    }
    default:
      unreachable(req);
  }
}

function onReplyToPrimary(st: UnitState, from: Address, msg: PeerMessage, now: number, effects: UnitEffect[]): void {
  const pri = st.pri;
  const m = st.meta.membership;
  if (pri === null || m === null) return;
  // Replies from any epoch of this tenure speak of this primary's one history.
  if (msg.epoch < pri.since || msg.epoch > m.epoch) {
    if (msg.epoch > m.epoch) st.wantFetch = true;
    return;
  }
  const peer = pri.peers.get(from);
  switch (msg.type) {
    case "lease-grant":
      if (!membersOf(m).includes(from)) return;
      pri.grants.set(from, Math.max(pri.grants.get(from) ?? -Infinity, msg.sentAt));
      recomputeLease(st);
      return;
    case "forward-ack":
      if (peer === undefined || peer.mode === "idle") return;
      if (peer.mode === "joining" && msg.lsn < peer.sessionFromLsn) return;
      peer.ackedLsn = Math.max(peer.ackedLsn, msg.lsn);
      advance(st, now, effects);
      return;
    case "flush-ack":
      if (peer === undefined) return;
      peer.durableLsn = Math.max(peer.durableLsn, msg.durableLsn);
      checkFlushes(st, now, effects);
      return;
    case "catchup-req": {
      if (peer === undefined || !m.inactive.includes(from) || msg.epoch !== m.epoch) return;
      if (peer.mode === "joining" && peer.session === msg.session) return;
      if (peer.mode === "promoting") return;
      const pages = new Set<number>(msg.changedPages);
      for (const [page, seq] of st.pageSeq) if (seq > msg.commitLsn) pages.add(page);
      peer.mode = "joining";
      peer.session = msg.session;
      peer.sessionFromLsn = pri.nextLsn - 1;
      peer.ackedLsn = pri.nextLsn - 1;
      peer.durableLsn = 0;
      peer.caughtUpLsn = -1;
      peer.lastSentAt = now;
      peer.readsInFlight = 0;
      peer.pagesToSend = [...pages].sort((a, b) => a - b);
      peer.pageCount = pages.size;
      send(effects, from, { type: "catchup-start", epoch: m.epoch, session: msg.session, fromLsn: peer.sessionFromLsn, pageCount: pages.size });
      pumpCatchup(st, from, peer, effects);
      return;
    }
    case "caught-up":
      if (peer === undefined || peer.mode !== "joining" || peer.session !== msg.session) return;
      // From now on its acks hold commits back (it must hold all we acknowledge) until it is
      // recorded active; it is recorded once it holds everything acknowledged so far.
      peer.mode = "promoting";
      peer.caughtUpLsn = msg.lsn;
      peer.ackedLsn = Math.max(peer.ackedLsn, msg.lsn);
      advance(st, now, effects);
      return;
    default:
      assert(false, `reply of type ${msg.type}`);
  }
}

function anyUncommitted(pri: PrimaryState, page: number, pages: number): boolean {
  for (let p = page; p < page + pages; p++) if (pri.uncommitted.has(p)) return true;
  return false;
}

function pumpCatchup(st: UnitState, u: UnitId, peer: Peer, effects: UnitEffect[]): void {
  while (peer.readsInFlight < st.cfg.catchupWindow) {
    const page = peer.pagesToSend.shift();
    if (page === undefined) return;
    peer.readsInFlight++;
    effects.push({ kind: "read", token: token(st, { kind: "catchup-read", peer: u, session: peer.session, page, seq: st.pageSeq.get(page) ?? 0 }), page, pages: 1 });
  }
}

const noUnits: readonly UnitId[] = [];

/** The peers being promoted to secondary (they must hold what is acknowledged); mostly none. */
function promotingUnits(pri: PrimaryState): readonly UnitId[] {
  let out: UnitId[] | null = null;
  for (const [u, p] of pri.peers) if (p.mode === "promoting") (out ??= []).push(u);
  return out ?? noUnits;
}

/** Advance the commit point by the policy; answer writes, waiting reads and flushes it covers. */
function advance(st: UnitState, now: number, effects: UnitEffect[]): void {
  const pri = st.pri;
  if (pri === null) return;
  const m = membership(st);
  const commitUnder = (x: Membership) => commitBy(st, pri, m.policy, x.secondaries, pri.commitLsn);
  // While a record is pending either membership may be the one in force (now or after a
  // failover that reads the store): a write is acknowledged only when both rules hold. So
  // replica:3 never counts a secondary it is dropping, and no policy counts a dropped one early.
  const commit = pri.record === null ? commitUnder(m) : Math.min(commitUnder(m), commitUnder(pri.record.membership));
  assert(commit >= pri.commitLsn, "commit point went back");
  assert(commit < pri.nextLsn, "commit point beyond the log");
  if (commit > pri.commitLsn) {
    for (let lsn = pri.commitLsn + 1; lsn <= commit; lsn++) {
      for (const w of pri.writers.get(lsn) ?? []) send(effects, w.client, { type: "write-done", epoch: m.epoch, reqId: w.reqId });
      pri.writers.delete(lsn);
    }
    pri.commitLsn = commit;
    for (const [page, lsn] of pri.uncommitted) if (lsn <= commit) pri.uncommitted.delete(page); // deleting while iterating a Map is defined
    const still: WaitingRead[] = [];
    for (const r of pri.readsWaiting) {
      if (anyUncommitted(pri, r.page, r.pages)) still.push(r);
      else effects.push({ kind: "read", token: token(st, { kind: "client-read", client: r.client, reqId: r.reqId, epoch: m.epoch }), page: r.page, pages: r.pages });
    }
    pri.readsWaiting.length = 0;
    pri.readsWaiting.push(...still);
  }
  if (pri.flushes.length > 0) checkFlushes(st, now, effects);
  // Drop log entries every forwarding target holds.
  let keepFrom = pri.commitLsn;
  for (const p of pri.peers.values()) if (p.mode !== "idle") keepFrom = Math.min(keepFrom, p.ackedLsn);
  for (const lsn of pri.log.keys()) {
    if (lsn > keepFrom) break;
    pri.log.delete(lsn);
  }
  maybePromote(st, now, effects);
}

function maybePromote(st: UnitState, now: number, effects: UnitEffect[]): void {
  const pri = st.pri;
  assert(pri !== null);
  if (pri.record !== null) return;
  const m = membership(st);
  for (const [u, p] of pri.peers) {
    if (p.mode !== "promoting" || p.ackedLsn < pri.commitLsn) continue;
    if (propose(st, { ...m, epoch: m.epoch + 1, secondaries: [...m.secondaries, u], inactive: m.inactive.filter((x) => x !== u) }, effects)) return;
  }
}

/** The commit point the rule of `m` allows from scratch: what its copies hold of our log. */
function commitHeldUnder(st: UnitState, m: Membership): number {
  const pri = st.pri;
  assert(pri !== null);
  return commitBy(st, pri, m.policy, m.secondaries, 0);
}

/** The commit point `policy`'s rule allows from `commitLsn`, counting `secondaries` and every peer being promoted. */
function commitBy(st: UnitState, pri: PrimaryState, policy: Policy, secondaries: readonly UnitId[], commitLsn: number): number {
  const rule = (st.cfg.ackRuleForTest ?? ackRuleOf)(policy);
  const acked = (u: UnitId) => pri.peers.get(u)?.ackedLsn ?? 0;
  return advanceCommit({ rule, commitLsn, primaryLsn: pri.persistedLsn, secondaries: secondaries.map(acked), required: promotingUnits(pri).map(acked) });
}

function propose(st: UnitState, next: Membership, effects: UnitEffect[]): boolean {
  const pri = st.pri;
  assert(pri !== null);
  const m = membership(st);
  assert(next.epoch === m.epoch + 1, "records go one epoch at a time");
  if (st.meta.fence > m.epoch) return false; // a failover is under way: it decides
  // The new record must not hide an acknowledged write: under its rule, its copies must hold
  // everything acknowledged already (replica:3 may not drop the one secondary that has it).
  if (commitHeldUnder(st, next) < pri.commitLsn) return false;
  // Persisted first: after a restart this unit never serves the epoch it may have recorded.
  if (st.meta.proposed < next.epoch) persistMeta(st, { ...st.meta, proposed: next.epoch }, effects);
  const t = token(st, { kind: "record" });
  pri.record = { token: t, expectEpoch: m.epoch, membership: next, retryAt: null };
  effects.push({ kind: "record", token: t, expectEpoch: m.epoch, membership: next });
  return true;
}

function checkFlushes(st: UnitState, now: number, effects: UnitEffect[]): void {
  const pri = st.pri;
  if (pri === null || pri.flushes.length === 0) return; // every tick of every primary comes here
  const m = membership(st);
  const holders = [...m.secondaries, ...promotingUnits(pri)];
  const remaining: PendingFlush[] = [];
  let need = 0;
  for (const f of pri.flushes) {
    const done = pri.durableLsn >= f.target && holders.every((u) => (pri.peers.get(u)?.durableLsn ?? 0) >= f.target);
    if (done) send(effects, f.client, { type: "flush-done", epoch: m.epoch, reqId: f.reqId });
    else {
      remaining.push(f);
      need = Math.max(need, f.target);
    }
  }
  pri.flushes.length = 0;
  pri.flushes.push(...remaining);
  if (need === 0) return;
  if (pri.durableLsn < need && pri.ownFlushLsn === null && pri.persistedLsn >= need) {
    pri.ownFlushLsn = pri.persistedLsn;
    effects.push({ kind: "flush", token: token(st, { kind: "own-flush", lsn: pri.persistedLsn }) });
  }
  for (const u of holders) {
    const p = pri.peers.get(u);
    if (p === undefined || p.durableLsn >= need || now - p.flushReqAt < st.cfg.retransmitMs) continue;
    p.flushReqAt = now;
    send(effects, u, { type: "flush-req", epoch: m.epoch, upToLsn: need });
  }
}

// ---- time ----

function onTick(st: UnitState, now: number, effects: UnitEffect[]): void {
  const m = st.meta.membership;
  if (st.wantFetch && now - st.lastFetchAt >= st.cfg.fetchEveryMs) {
    st.lastFetchAt = now;
    effects.push({ kind: "fetch-membership", segment: st.segment });
  }
  if (now - st.lastHeartbeatAt >= st.cfg.heartbeatMs) {
    st.lastHeartbeatAt = now;
    send(effects, managerAddress, { type: "heartbeat", epoch: knownEpoch(st), report: reportOf(st, now) });
  }
  if (m === null) return;
  if (st.pri !== null) primaryTick(st, m, now, effects);
  else if (st.sec !== null) secondaryTick(st, st.sec, m, now, effects);
}

function secondaryTick(st: UnitState, sec: SecondaryState, m: Membership, now: number, effects: UnitEffect[]): void {
  if (!m.inactive.includes(st.self) || st.meta.fence > m.epoch) return;
  const s = sec.session;
  // A done session waits for the primary's record; if that never comes (the primary let us go),
  // it starts over like a stalled one.
  // A request (or its answer) lost is asked again soon; a started session only once it stalls.
  const patienceMs = s !== null && !s.started ? 4 * st.cfg.retransmitMs : st.cfg.catchupTimeoutMs;
  if (s !== null && now - s.progressAt < patienceMs) return;
  // (Re)start: our common point with any later primary is the last commit we heard of while
  // consistent; every page we changed after it may hold a losing history's write.
  const c = st.mark.commitKnown;
  const changedPages: number[] = [];
  for (const [page, seq] of st.pageSeq) if (seq > c) changedPages.push(page);
  const id = st.nextToken++;
  sec.session = { id, progressAt: now, started: false, fromLsn: 0, pageCount: 0, got: new Set(), seqs: new Map(), maxSeq: 0, done: false };
  sec.consistent = false;
  sec.buffer.clear();
  send(effects, m.primary, { type: "catchup-req", epoch: m.epoch, session: id, commitLsn: c, changedPages });
}

function primaryTick(st: UnitState, m: Membership, now: number, effects: UnitEffect[]): void {
  const pri = st.pri;
  assert(pri !== null);
  if (now - pri.lastLeaseReqAt >= st.cfg.leaseRenewMs) requestLease(st, now, effects);
  if (pri.record !== null && pri.record.retryAt !== null && now >= pri.record.retryAt) {
    pri.record.retryAt = null;
    effects.push({ kind: "record", token: pri.record.token, expectEpoch: pri.record.expectEpoch, membership: pri.record.membership });
  }
  const last = pri.nextLsn - 1;
  for (const [u, peer] of pri.peers) {
    if (peer.mode === "idle") continue;
    if (peer.ackedLsn < last && now - peer.lastSentAt >= st.cfg.retransmitMs) {
      peer.lastSentAt = now;
      const upTo = Math.min(last, peer.ackedLsn + st.cfg.retransmitBatchMax);
      for (let lsn = peer.ackedLsn + 1; lsn <= upTo; lsn++) {
        const e = pri.log.get(lsn);
        assert(e !== undefined, "retransmit: log entry dropped too early");
        send(effects, u, { type: "forward", epoch: m.epoch, lsn, page: e.page, pages: e.pages, data: e.data, commitLsn: pri.commitLsn });
      }
    }
    const oldest = pri.log.get(peer.ackedLsn + 1);
    const writeLate = oldest !== undefined && now - oldest.at >= st.cfg.degradeAfterMs;
    const holder = peer.mode === "active" || peer.mode === "promoting";
    const flushLate = holder && pri.flushes.some((f) => now - f.at >= st.cfg.degradeAfterMs && peer.durableLsn < f.target);
    if (!writeLate && !flushLate) continue;
    if (peer.mode === "joining" || (peer.mode === "promoting" && pri.record === null)) {
      peer.mode = "idle"; // it starts over with a new catch-up
      continue;
    }
    if (peer.mode === "active" && pri.record === null && mayDegrade(m.policy, m.secondaries.length)) {
      propose(st, { ...m, epoch: m.epoch + 1, secondaries: m.secondaries.filter((x) => x !== u), inactive: [...m.inactive, u] }, effects);
    }
  }
  // Too many log entries held for a slow joiner: let it go rather than refuse writes.
  if (pri.log.size >= st.cfg.inflightWritesMax) {
    for (const p of pri.peers.values()) if (p.mode === "joining") p.mode = "idle";
  }
  const expired = pri.readsWaiting.filter((r) => now - r.at >= st.cfg.readWaitMaxMs);
  if (expired.length > 0) {
    for (const r of expired) reject(st, r.client, r.reqId, "busy", effects);
    const keep = pri.readsWaiting.filter((r) => now - r.at < st.cfg.readWaitMaxMs);
    pri.readsWaiting.length = 0;
    pri.readsWaiting.push(...keep);
  }
  checkFlushes(st, now, effects);
  advance(st, now, effects);
}

// ---- invariants ----

function checkInvariants(st: UnitState): void {
  const pri = st.pri;
  if (pri !== null) {
    assert(st.sec === null, "primary and secondary at once");
    assert(pri.commitLsn < pri.nextLsn, "commit beyond the log");
    assert(pri.persistedLsn < pri.nextLsn, "persisted beyond the log");
    assert(pri.log.size <= st.cfg.inflightWritesMax, "log beyond its limit");
    assert(pri.readsWaiting.length <= st.cfg.readsWaitingMax, "waiting reads beyond their limit");
  }
  const sec = st.sec;
  if (sec !== null) {
    assert(sec.ackLsn < sec.expectLsn, "acknowledged beyond what was received");
    assert(sec.buffer.size <= st.cfg.reorderMax + 1, "reorder buffer beyond its limit");
  }
}
