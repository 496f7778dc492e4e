// The reconnect schedule of a peer client: exponential backoff with "equal jitter" (half the
// delay fixed, half random) so that nodes that lost the same peer at the same moment don't all
// knock on its door again in step. Pure: randomness arrives as a function, time as arguments.
import { assert } from "../util/assert.ts";

export interface BackoffPolicy {
  /** The first retry's delay ceiling. */
  baseMs: number;
  /** No delay is ever longer than this. */
  maxMs: number;
  /** Each failed attempt multiplies the ceiling by this. */
  factor: number;
}

export const peerBackoffDefault: BackoffPolicy = { baseMs: 100, maxMs: 10_000, factor: 2 };

/**
 * The delay before retry number `attempt` (0 for the first retry after a failure), given a
 * random number in [0, 1). Always within [ceiling/2, ceiling], ceiling = min(max, base·factor^attempt).
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random01: number): number {
  assert(policy.baseMs > 0);
  assert(policy.maxMs >= policy.baseMs);
  assert(policy.factor >= 1);
  assert(Number.isInteger(attempt) && attempt >= 0);
  assert(random01 >= 0 && random01 < 1, "random number in [0, 1)");
  // Exponent capped so that the power can't overflow to Infinity on a long outage.
  const ceiling = Math.min(policy.maxMs, policy.baseMs * policy.factor ** Math.min(attempt, 64));
  const delay = ceiling / 2 + (ceiling / 2) * random01;
  assert(delay >= policy.baseMs / 2 && delay <= policy.maxMs);
  return Math.round(delay);
}
