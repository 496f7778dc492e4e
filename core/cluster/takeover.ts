// Coordinator takeover: when the node that coordinates a replicated LUN (runs its logical unit
// and its segments' coordinators) stops heartbeating, the manager gives the LUN to another node.
// Pure: the caller (core/node/replica-host.ts) reads the heartbeats and records the choice by a
// compare-and-swap of the LUN record; the failover machine then fences the old coordinator
// segment by segment ("move", core/cluster/failover.ts).

/** A node that could take a LUN over. */
export interface TakeoverCandidate {
  readonly id: string;
  /** Its heartbeat is current. */
  readonly live: boolean;
  readonly draining: boolean;
  /** Whether its records carry a peer address (the other portals forward to it). */
  readonly reachable: boolean;
  /** Data units of this LUN on the node: its primaries can then be local after a failover. */
  readonly lunUnits: number;
  /** LUNs the node coordinates already. */
  readonly coordinated: number;
}

/**
 * The node to take a LUN over: a live, reachable node, not draining, with the most of the LUN's
 * data units, then the fewest LUNs coordinated, then the lowest id (so that two managers in a row
 * choose alike). Null: no node qualifies, the LUN waits for its node.
 */
export function chooseCoordinator(candidates: readonly TakeoverCandidate[]): string | null {
  const usable = candidates.filter((c) => c.live && c.reachable && !c.draining);
  usable.sort((a, b) => b.lunUnits - a.lunUnits || a.coordinated - b.coordinated || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return usable[0]?.id ?? null;
}

/**
 * Whether a LUN's coordinator node is gone long enough to give its LUNs away: silent for
 * `afterMs` (Infinity: no heartbeat at all while a member; null: not known, never taken over) and
 * watched for that long by this node (a daemon that just started, as when a whole cluster starts
 * again, gives every node the full delay to come back).
 */
export function takeoverDue(o: { silentMs: number | null; watchedMs: number; afterMs: number }): boolean {
  return o.silentMs !== null && o.silentMs >= o.afterMs && o.watchedMs >= o.afterMs;
}
