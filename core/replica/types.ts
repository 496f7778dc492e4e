// The vocabulary of segment replication: memberships, the messages units, coordinators and the
// manager exchange, the effects a unit asks its driver to carry out and the inputs it is fed.
// Plain data only (no classes, no functions), so that a driver can encode every message with
// cbor-x and carry it over core/net, and a simulation can copy, drop, delay and reorder it.
// This file must never import I/O, and nothing here may hold a socket, a file or a timer.

/** A segment unit, named by whoever places it (core/cluster/placement.ts): unique in the cluster. */
export type UnitId = string;
/** Where a message goes: a unit id, a coordinator ("client:<name>") or the cluster manager. */
export type Address = string;
export const managerAddress: Address = "manager";

/** The LUN's redundancy for replicated segments (erasure-coded segments are not handled here). */
export type Policy = "replica:2" | "replica:3" | "replica:3-ha";
export const policies: readonly Policy[] = ["replica:2", "replica:3", "replica:3-ha"];

/**
 * A segment's membership as recorded in the metadata store. Each record has a higher epoch than
 * the one before; only recorded memberships are ever acted on, so a membership carried in a
 * message is as good as one read from the store.
 * - `secondaries` are the active secondaries: each holds every write the primary acknowledged
 *   that the policy requires of it (replica:2 and 3-ha: every acknowledged write).
 * - `inactive` secondaries missed writes; they catch up from the primary and rejoin by a new record.
 * - `arbiter` votes (leases) and stores no data (replica:2 only).
 */
export interface Membership {
  readonly segment: string;
  readonly epoch: number;
  readonly policy: Policy;
  readonly primary: UnitId;
  readonly secondaries: readonly UnitId[];
  readonly inactive: readonly UnitId[];
  readonly arbiter: UnitId | null;
  /**
   * The node whose coordinators may send this segment requests (its LUN's coordinator when
   * the record was made). Units ignore it; a coordinator on another node does not act on the
   * record (ReplicatedSegment), so recording a new epoch that names another node fences the old
   * coordinator: the units turn away its older epoch, and it never uses the newer one. Absent
   * in records made before 2026-12-02: the node of the segment's placement record.
   */
  readonly coordinator?: string;
}

/** Every unit of a membership, primary first: the voters of its leases. */
export function membersOf(m: Membership): UnitId[] {
  const all = [m.primary, ...m.secondaries, ...m.inactive];
  if (m.arbiter !== null) all.push(m.arbiter);
  return all;
}

export function dataMembersOf(m: Membership): UnitId[] {
  return [m.primary, ...m.secondaries, ...m.inactive];
}

export function sameMembership(a: Membership, b: Membership): boolean {
  return (
    a.segment === b.segment &&
    a.epoch === b.epoch &&
    a.policy === b.policy &&
    a.primary === b.primary &&
    a.arbiter === b.arbiter &&
    a.coordinator === b.coordinator &&
    a.secondaries.join() === b.secondaries.join() &&
    a.inactive.join() === b.inactive.join()
  );
}

/** Votes needed for a lease: a majority of all members (the primary votes for itself). */
export function majorityOf(m: Membership): number {
  return Math.floor(membersOf(m).length / 2) + 1;
}

/** Why a request was turned away; the coordinator retries elsewhere or later. */
export type RejectReason =
  | "stale-epoch" // the request's epoch is older than the unit's: here is the newer membership
  | "not-primary" // this unit is not the primary of the epoch it knows
  | "no-lease" // the primary's lease lapsed (or is not yet granted): retry shortly
  | "busy"; // a named limit is reached: retry later (push-back, not queue growth)

// ---- messages ----
// Every message carries the segment's membership epoch as its sender knows it (fencing).

/** Coordinator → primary. `completeBelow`: every request id below it has its answer (dedup window). */
export type ClientRequest =
  // `pages` consecutive pages from `page`; a write's data holds them all, whole pages.
  | { readonly type: "write"; readonly epoch: number; readonly reqId: number; readonly completeBelow: number; readonly page: number; readonly pages: number; readonly data: Uint8Array }
  | { readonly type: "read"; readonly epoch: number; readonly reqId: number; readonly completeBelow: number; readonly page: number; readonly pages: number }
  | { readonly type: "flush"; readonly epoch: number; readonly reqId: number; readonly completeBelow: number };

/** Primary → coordinator. */
export type ClientReply =
  | { readonly type: "write-done"; readonly epoch: number; readonly reqId: number }
  | { readonly type: "read-done"; readonly epoch: number; readonly reqId: number; readonly data: Uint8Array }
  | { readonly type: "flush-done"; readonly epoch: number; readonly reqId: number }
  | { readonly type: "rejected"; readonly epoch: number; readonly reqId: number; readonly reason: RejectReason; readonly membership: Membership | null };

/** Between the units of one segment. */
export type PeerMessage =
  // primary → secondaries: the write with log sequence number `lsn`, full page contents.
  | { readonly type: "forward"; readonly epoch: number; readonly lsn: number; readonly page: number; readonly pages: number; readonly data: Uint8Array; readonly commitLsn: number }
  // secondary → primary: every log write up to `lsn` is persisted here (cumulative).
  | { readonly type: "forward-ack"; readonly epoch: number; readonly lsn: number }
  // primary → secondaries: make everything up to `upToLsn` durable (SYNCHRONIZE CACHE / FUA).
  | { readonly type: "flush-req"; readonly epoch: number; readonly upToLsn: number }
  | { readonly type: "flush-ack"; readonly epoch: number; readonly durableLsn: number }
  // primary → voters: grant me a lease; `sentAt` is on the primary's clock, echoed back.
  | { readonly type: "lease-req"; readonly epoch: number; readonly sentAt: number; readonly membership: Membership; readonly commitLsn: number }
  | { readonly type: "lease-grant"; readonly epoch: number; readonly sentAt: number }
  // inactive secondary → primary: I hold the committed history up to `commitLsn`; these pages
  // of mine were written after it (maybe by a history that lost), send them too.
  | { readonly type: "catchup-req"; readonly epoch: number; readonly session: number; readonly commitLsn: number; readonly changedPages: readonly number[] }
  // primary → joiner: `pageCount` pages follow; log writes from `fromLsn + 1` are forwarded to you.
  | { readonly type: "catchup-start"; readonly epoch: number; readonly session: number; readonly fromLsn: number; readonly pageCount: number }
  // A copy carries the session's start too: whichever arrives first starts it (links reorder).
  | { readonly type: "catchup-page"; readonly epoch: number; readonly session: number; readonly fromLsn: number; readonly pageCount: number; readonly page: number; readonly seq: number; readonly data: Uint8Array }
  // joiner → primary: I hold your history through `lsn`, page for page.
  | { readonly type: "caught-up"; readonly epoch: number; readonly session: number; readonly lsn: number }
  // anyone → anyone: the sender knows a newer epoch (or a fence) than the message it answers.
  | { readonly type: "stale"; readonly epoch: number; readonly membership: Membership | null };

/** Manager ↔ units. */
export type ManagerMessage =
  // manager → units: promise to accept nothing below epoch `fence`, then tell me what you hold.
  | { readonly type: "probe"; readonly epoch: number; readonly fence: number; readonly round: number }
  | { readonly type: "probe-reply"; readonly epoch: number; readonly round: number; readonly report: UnitReport }
  // manager or a primary → units: a membership was recorded.
  | { readonly type: "membership"; readonly epoch: number; readonly membership: Membership }
  // unit → manager, periodically: what I am doing.
  | { readonly type: "heartbeat"; readonly epoch: number; readonly report: UnitReport };

export type Message = ClientRequest | ClientReply | PeerMessage | ManagerMessage;

/** What a unit tells the manager about itself (heartbeats, probe replies). */
export interface UnitReport {
  readonly segment: string;
  readonly unit: UnitId;
  /** The highest membership epoch the unit knows. */
  readonly epoch: number;
  /** The lowest epoch the unit still accepts messages from. */
  readonly fence: number;
  /** Persisted log position; meaningful only while `consistent`. */
  readonly lastLsn: number;
  /** False while a catch-up is half done: the unit's pages are a mix of two histories. */
  readonly consistent: boolean;
  /** True while the unit serves as primary of `epoch` with a valid lease. */
  readonly serving: boolean;
  /** A unit restarted since it was last primary can't serve that epoch again (its volatile log is gone). */
  readonly needsEpoch: boolean;
}

// ---- what a unit persists ----

/** Written synchronously, before any later effect of the same step (the unit's archive entry). */
export interface UnitMeta {
  readonly membership: Membership | null;
  /** Accept nothing below this epoch (set by the manager's probe). */
  readonly fence: number;
  /** The highest epoch this unit asked the store to record: it never serves that one after a restart. */
  readonly proposed: number;
}

/** The log marker kept with the pages, updated in order with them. */
export interface LogMark {
  readonly lastLsn: number;
  readonly commitKnown: number;
  readonly consistent: boolean;
}

/** What a driver hands a unit at start: its meta, its log marker and every written page's seq. */
export interface Recovered {
  readonly meta: UnitMeta | null;
  readonly log: LogMark;
  readonly pageSeqs: ReadonlyMap<number, number>;
}

// ---- effects and inputs ----

export type UnitEffect =
  | { readonly kind: "send"; readonly to: Address; readonly msg: Message }
  /** Synchronous: done before the next effect of this list is carried out. */
  | { readonly kind: "persist-meta"; readonly meta: UnitMeta }
  /**
   * Queued in order with reads and flushes of this unit, completed by a "persisted" input: write
   * the page (with its seq) if any, then the log marker if any. A crash may drop queued ones;
   * it never reorders them.
   */
  | { readonly kind: "persist"; readonly token: number; readonly write: { readonly page: number; readonly pages: number; readonly seq: number; readonly data: Uint8Array } | null; readonly log: LogMark | null }
  /** Queued in order: read the pages as every persist queued before it left them. */
  | { readonly kind: "read"; readonly token: number; readonly page: number; readonly pages: number }
  /** Queued in order: make everything persisted so far durable (fdatasync). */
  | { readonly kind: "flush"; readonly token: number }
  /** Compare-and-swap in the metadata store: replace the record of epoch `expectEpoch`. */
  | { readonly kind: "record"; readonly token: number; readonly expectEpoch: number; readonly membership: Membership }
  /** Read the segment's record from the metadata store; answered by "membership-loaded". */
  | { readonly kind: "fetch-membership"; readonly segment: string };

export type RecordOutcome =
  | { readonly outcome: "applied" }
  | { readonly outcome: "conflict"; readonly current: Membership }
  /** The store did not answer: the record may or may not have been applied. */
  | { readonly outcome: "unknown" };

export type UnitInput =
  | { readonly kind: "message"; readonly from: Address; readonly msg: Message }
  | { readonly kind: "persisted"; readonly token: number }
  | { readonly kind: "read-done"; readonly token: number; readonly data: Uint8Array }
  | { readonly kind: "flushed"; readonly token: number }
  | ({ readonly kind: "record-done"; readonly token: number } & RecordOutcome)
  | { readonly kind: "membership-loaded"; readonly membership: Membership }
  | { readonly kind: "tick" };
