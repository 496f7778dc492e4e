// Node liveness: up, suspect or down, decided from the heartbeats a node has seen. Pure: the
// caller reads the heartbeat records from the metadata store and passes the time in; this file
// never reads a clock, a socket or the store.
//
// How a heartbeat's age is measured: every heartbeat carries a sequence number that its sender
// increments each interval. The observer remembers when (on its own clock) it last saw each
// node's number change, so clock skew between hosts never makes a node look alive or dead. Only
// for a node seen for the first time (the observer just started) is the sender's own timestamp
// used, never placed in the observer's future, so that a node cut off before the observer
// started is not shown up for a whole limit.
import { assert } from "../util/assert.ts";

export type NodeState = "up" | "suspect" | "down";

/** The value of /qstora/v1/alive/<node-id>, written by the node every heartbeat interval. */
export interface HeartbeatRecord {
  nodeId: string;
  /** Increments by one per heartbeat from the daemon's start; a restart starts again at 1. */
  seq: number;
  /** The sender's wall clock at sending, ISO 8601 (used only for a node seen the first time). */
  sentAt: string;
  /** How often the sender beats, so that observers can tell a slow sender from a silent one. */
  intervalMs: number;
  /** The daemon's start (distinguishes a restart, whose seq starts again). */
  startedAt: string;
  /** What status and health need of the node's archives, carried so that any node can show them. */
  archives: ArchiveBeat[];
}

export interface ArchiveBeat {
  id: string;
  state: "online" | "missing" | "error";
  sizeBytes: number;
  writtenBytes: number;
  freeBytes: number;
  error?: string;
}

export interface LivenessLimits {
  /** Silent this long: suspect (a warning; nothing moves yet). */
  suspectAfterMs: number;
  /** Silent this long: down (its primaries move, once replication exists). */
  downAfterMs: number;
}

export const defaultLivenessLimits: LivenessLimits = { suspectAfterMs: 3_000, downAfterMs: 10_000 };
export const defaultHeartbeatIntervalMs = 1_000;

/** What the observer remembers of one node. */
export interface Sighting {
  seq: number;
  startedAt: string;
  /** Observer's clock when the heartbeat last changed (or the sender's, on first sight; see above). */
  changedAtMs: number;
  beat: HeartbeatRecord;
}

export type LivenessState = ReadonlyMap<string, Sighting>;

export function checkLimits(limits: LivenessLimits): void {
  assert(Number.isFinite(limits.suspectAfterMs) && limits.suspectAfterMs > 0, "suspectAfterMs must be positive");
  assert(limits.downAfterMs > limits.suspectAfterMs, "downAfterMs must exceed suspectAfterMs");
}

/**
 * Folds one reading of every heartbeat key into the state. `beats` is the whole directory: a
 * node missing from it has no heartbeat (stopped cleanly, removed, or its lease lapsed) and is
 * forgotten, which judges it down.
 */
export function observeHeartbeats(state: LivenessState, beats: readonly HeartbeatRecord[], nowMs: number): LivenessState {
  assert(Number.isFinite(nowMs));
  const next = new Map<string, Sighting>();
  for (const beat of beats) {
    assert(Number.isSafeInteger(beat.seq) && beat.seq >= 0, `heartbeat seq of ${beat.nodeId} is not a count`);
    const prev = state.get(beat.nodeId);
    if (prev !== undefined && prev.seq === beat.seq && prev.startedAt === beat.startedAt) {
      next.set(beat.nodeId, { ...prev, beat });
      continue;
    }
    let changedAtMs = nowMs;
    if (prev === undefined) {
      const sentMs = Date.parse(beat.sentAt);
      if (Number.isFinite(sentMs)) changedAtMs = Math.min(nowMs, sentMs);
    }
    next.set(beat.nodeId, { seq: beat.seq, startedAt: beat.startedAt, changedAtMs, beat });
  }
  assert(next.size <= beats.length);
  return next;
}

/** Milliseconds since the node's heartbeat last changed; null when it has none. */
export function heartbeatAgeMs(state: LivenessState, nodeId: string, nowMs: number): number | null {
  const s = state.get(nodeId);
  return s === undefined ? null : Math.max(0, nowMs - s.changedAtMs);
}

/**
 * The limits applied to one node: never tighter than its own interval allows (a node that beats
 * every 5 s is not late after 3 s): suspect after at least two of its intervals, down at least
 * one interval after that.
 */
export function limitsFor(limits: LivenessLimits, intervalMs: number): LivenessLimits {
  const interval = Number.isFinite(intervalMs) && intervalMs > 0 ? intervalMs : 0;
  const suspectAfterMs = Math.max(limits.suspectAfterMs, 2 * interval);
  return { suspectAfterMs, downAfterMs: Math.max(limits.downAfterMs, suspectAfterMs + interval) };
}

export function judgeNode(state: LivenessState, nodeId: string, nowMs: number, limits: LivenessLimits): NodeState {
  checkLimits(limits);
  const age = heartbeatAgeMs(state, nodeId, nowMs);
  if (age === null) return "down";
  const own = limitsFor(limits, state.get(nodeId)?.beat.intervalMs ?? 0);
  assert(own.downAfterMs > own.suspectAfterMs);
  if (age >= own.downAfterMs) return "down";
  if (age >= own.suspectAfterMs) return "suspect";
  return "up";
}
