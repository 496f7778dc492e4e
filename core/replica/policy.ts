// When a write counts as acknowledged, per redundancy policy (the ZettaStor volume types), and
// when a primary may record a secondary as inactive. Pure arithmetic on log positions; the
// membership it is applied to is always the recorded one, so "one copy" is only ever enough
// after the degradation is in the metadata store under a new epoch.

import { assert, unreachable } from "../util/assert.ts";
import type { Policy } from "./types.ts";

export interface AckRule {
  /** Every active secondary must hold the write (replica:2, replica:3-ha). */
  readonly allSecondaries: boolean;
  /** At least this many active secondaries must hold it (replica:3: one). */
  readonly secondariesMin: number;
}

export function ackRuleOf(policy: Policy): AckRule {
  switch (policy) {
    case "replica:2":
    case "replica:3-ha":
      return { allSecondaries: true, secondariesMin: 0 };
    case "replica:3":
      return { allSecondaries: false, secondariesMin: 1 };
    default:
      return unreachable(policy);
  }
}

/** The active secondaries a policy may not drop below (recording one more inactive). */
export function mayDegrade(policy: Policy, activeSecondaries: number): boolean {
  assert(activeSecondaries >= 0);
  return activeSecondaries > ackRuleOf(policy).secondariesMin;
}

/**
 * The new commit point: the highest lsn the primary holds and the policy's copies hold. Acks are
 * cumulative (each unit persists in lsn order), so the answer is a minimum over positions.
 * `required` are units that must hold every acknowledged write without counting towards the
 * minimum (a joiner about to be recorded active).
 */
export function advanceCommit(opts: { rule: AckRule; commitLsn: number; primaryLsn: number; secondaries: readonly number[]; required: readonly number[] }): number {
  const { rule } = opts;
  let lsn = opts.primaryLsn;
  for (const r of opts.required) lsn = Math.min(lsn, r);
  if (rule.allSecondaries) for (const s of opts.secondaries) lsn = Math.min(lsn, s);
  if (rule.secondariesMin > 0) {
    const sorted = [...opts.secondaries].sort((a, b) => b - a);
    const kth = sorted[rule.secondariesMin - 1];
    lsn = kth === undefined ? opts.commitLsn : Math.min(lsn, kth);
  }
  const next = Math.max(opts.commitLsn, lsn);
  assert(next >= opts.commitLsn);
  return next;
}
