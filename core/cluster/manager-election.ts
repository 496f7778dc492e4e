// Election of the cluster manager: exactly one node at a time runs the manager role, the one whose
// lease holds the key /qstora/v1/manager/leader. A pure state machine: step(state, input, now)
// returns the next state and the effects for the driver (core/node/manager.ts) to carry out. It
// never reads the clock or touches the store.
//
// Why at most one manager runs: a node starts the role only after its transaction created the
// key under its own lease (the store lets one create win), and stops it before that lease can have
// expired in the store. The store counts a lease's TTL from when it received the last keep-alive,
// which is after we sent it; so counting from our send time, minus a margin for clock rate
// differences, the role always stops first. When the leader's node dies, its lease lapses within
// `managerLeaseTtlSeconds`, the key goes, and the others (watching it, and trying every
// `campaignIntervalMs` anyway) create it again: a new manager within TTL + interval + one request.
//
// It must never emit role-start while another node may still hold the key under a live lease.
import { assert } from "../util/assert.ts";

/** Lease of the manager key; a dead manager is replaced within this plus a campaign interval. */
export const managerLeaseTtlSeconds = 5;
/** The lease is renewed this often (several renewals fit in one TTL). */
export const renewIntervalMs = 1_000;
/** The role stops this long before the lease could lapse in the store. */
export const stepDownMarginMs = 1_000;
/** A candidate tries to take the key this often even without a watch event. */
export const campaignIntervalMs = 1_000;
/** After a failed request, wait this long before the next one. */
export const retryIntervalMs = 1_000;

export type ElectionPhase = "idle" | "granting" | "candidate" | "leader" | "stopped";

export interface ElectionState {
  readonly nodeId: string;
  readonly phase: ElectionPhase;
  readonly leaseId: string | undefined;
  /** Send time of the grant or of the last renewal the store confirmed: the lease outlives it by its TTL. */
  readonly leaseBaseMs: number;
  readonly ttlSeconds: number;
  /** A request is out (grant, campaign or renew); one at a time. */
  readonly busy: boolean;
  /** Send time of the request out. */
  readonly sentAtMs: number;
  readonly nextCampaignAtMs: number;
  readonly nextRenewAtMs: number;
  /** Not before this time (after a failure). */
  readonly retryAtMs: number;
  /** The holder last seen (node id), null when the key is absent, undefined when unknown. */
  readonly holder: string | null | undefined;
}

export type ElectionInput =
  | { readonly type: "tick" }
  | { readonly type: "lease-granted"; readonly leaseId: string; readonly ttlSeconds: number }
  | { readonly type: "request-failed" }
  | { readonly type: "campaign-done"; readonly won: boolean; readonly holder: string | null }
  | { readonly type: "renew-done"; readonly ttlSeconds: number }
  | { readonly type: "holder-changed"; readonly holder: string | null }
  | { readonly type: "stop" };

export type ElectionEffect =
  | { readonly type: "grant-lease"; readonly ttlSeconds: number }
  | { readonly type: "campaign"; readonly leaseId: string }
  | { readonly type: "renew"; readonly leaseId: string }
  | { readonly type: "revoke"; readonly leaseId: string }
  | { readonly type: "role-start" }
  | { readonly type: "role-stop" };

export interface StepResult {
  readonly state: ElectionState;
  readonly effects: readonly ElectionEffect[];
}

export function initialElection(nodeId: string): ElectionState {
  assert(nodeId.length > 0, "a node id");
  return { nodeId, phase: "idle", leaseId: undefined, leaseBaseMs: 0, ttlSeconds: 0, busy: false, sentAtMs: 0, nextCampaignAtMs: 0, nextRenewAtMs: 0, retryAtMs: 0, holder: undefined };
}

/** Until when the role may run: the lease's lower bound in the store, less the margin. */
export function validUntilMs(s: ElectionState): number {
  return s.leaseBaseMs + s.ttlSeconds * 1000 - stepDownMarginMs;
}

function checkState(s: ElectionState): void {
  assert((s.phase === "candidate" || s.phase === "leader") === (s.leaseId !== undefined), "a lease is held exactly as candidate or leader");
  assert(s.phase !== "granting" || s.busy, "granting means a grant is out");
  assert(s.phase !== "idle" || !s.busy, "idle sends nothing");
}

/** Drops the lease (it lapsed or was refused): back to idle, the role stopped if it ran. */
function lose(s: ElectionState, now: number, effects: ElectionEffect[]): ElectionState {
  if (s.phase === "leader") effects.push({ type: "role-stop" });
  if (s.leaseId !== undefined) effects.push({ type: "revoke", leaseId: s.leaseId });
  return { ...s, phase: "idle", leaseId: undefined, leaseBaseMs: 0, busy: false, retryAtMs: now + retryIntervalMs };
}

export function step(state: ElectionState, input: ElectionInput, now: number): StepResult {
  checkState(state);
  const effects: ElectionEffect[] = [];
  let s = state;
  if (s.phase === "stopped") return { state: s, effects };
  switch (input.type) {
    case "stop": {
      if (s.phase === "leader") effects.push({ type: "role-stop" });
      if (s.leaseId !== undefined) effects.push({ type: "revoke", leaseId: s.leaseId });
      return { state: { ...s, phase: "stopped", leaseId: undefined, busy: false }, effects };
    }
    case "lease-granted": {
      assert(s.phase === "granting", "a lease arrives only when asked for");
      assert(input.ttlSeconds > 0, "a granted lease has a TTL");
      s = { ...s, phase: "candidate", leaseId: input.leaseId, leaseBaseMs: s.sentAtMs, ttlSeconds: input.ttlSeconds, busy: false, nextCampaignAtMs: now, nextRenewAtMs: s.sentAtMs + renewIntervalMs };
      break;
    }
    case "request-failed": {
      assert(s.busy, "a failure answers a request");
      s = { ...s, busy: false, retryAtMs: now + retryIntervalMs };
      if (s.phase === "granting") s = { ...s, phase: "idle" };
      break;
    }
    case "campaign-done": {
      assert(s.phase === "candidate" && s.busy, "a campaign answers a candidate");
      s = { ...s, busy: false, holder: input.won ? s.nodeId : input.holder, nextCampaignAtMs: now + campaignIntervalMs };
      if (input.won) {
        // The store took the key under our live lease; that lease lasts at least TTL past
        // leaseBaseMs. The role starts only if that is still ahead, with the margin.
        s = { ...s, phase: "leader" };
        if (validUntilMs(s) > now) effects.push({ type: "role-start" });
        else s = { ...s, phase: "candidate", nextRenewAtMs: now };
      }
      break;
    }
    case "renew-done": {
      assert((s.phase === "candidate" || s.phase === "leader") && s.busy, "a renewal answers a lease holder");
      if (input.ttlSeconds <= 0) {
        s = lose(s, now, effects);
        break;
      }
      s = { ...s, busy: false, leaseBaseMs: s.sentAtMs, ttlSeconds: input.ttlSeconds, nextRenewAtMs: s.sentAtMs + renewIntervalMs };
      break;
    }
    case "holder-changed": {
      s = { ...s, holder: input.holder };
      // As leader, a key that is gone or someone else's means our lease lapsed in the store.
      if (s.phase === "leader" && input.holder !== s.nodeId) s = lose(s, now, effects);
      else if (s.phase === "candidate" && input.holder === null) s = { ...s, nextCampaignAtMs: now };
      break;
    }
    case "tick":
      break;
  }
  // Time-driven transitions, after every input.
  if (s.phase === "leader" && validUntilMs(s) <= now) {
    // The lease may lapse in the store any moment now: stop the role before it can. The key
    // may still be ours; a renewal that the store confirms makes this node leader again.
    effects.push({ type: "role-stop" });
    s = { ...s, phase: "candidate", nextCampaignAtMs: now };
  }
  if (!s.busy && now >= s.retryAtMs) {
    if (s.phase === "idle") {
      s = { ...s, phase: "granting", busy: true, sentAtMs: now };
      effects.push({ type: "grant-lease", ttlSeconds: managerLeaseTtlSeconds });
    } else if ((s.phase === "candidate" || s.phase === "leader") && now >= s.nextRenewAtMs) {
      const leaseId = s.leaseId;
      assert(leaseId !== undefined);
      s = { ...s, busy: true, sentAtMs: now };
      effects.push({ type: "renew", leaseId });
    } else if (s.phase === "candidate" && now >= s.nextCampaignAtMs && validUntilMs(s) > now) {
      const leaseId = s.leaseId;
      assert(leaseId !== undefined);
      s = { ...s, busy: true, sentAtMs: now };
      effects.push({ type: "campaign", leaseId });
    }
  }
  checkState(s);
  return { state: s, effects };
}
