// The metadata store's membership: who holds the embedded antietcd group, as recorded at
// /qstora/v1/metadata/members, and the decisions that change it (a joiner's role, removing a
// member, promoting a client). Pure: documents in, documents out; the daemon's metadata role
// (core/node/metadata-role.ts) carries them out.
//
// How the group grows from one node to three, and why it is safe:
// - The first node runs antietcd alone ("embedded-single"). Its data file holds everything.
// - The second joiner becomes a member, but the first node switches to a group of two only when
//   the joiner's store already answers (the doc names it `pending` until then): a group of two
//   needs both, so switching earlier would stall the cluster on a joiner that never started.
//   The switching node raises its stored term to 1 first; the joiner starts empty with term 0.
//   antietcd's leader, after each election, takes the state of the followers with the highest
//   stored term, so the seed wins whichever of the two leads.
// - The third joiner is added directly ("embedded-raft", three members): the two old members are
//   a majority of the new group by themselves, so the group never waits for the joiner.
// - One member is added or removed at a time. Every majority of the old group then shares a node
//   with every majority of the new one (Raft's single-server change), so no two leaders can act
//   in one term, and every majority of the new group holds a node with every acknowledged write
//   and the highest stored term (antietcd writes to all of a leader's followers before answering).
//   A new member starts empty (term 0), below every old member, so it never seeds anything.
// - Later joiners are clients with every member's URL as an endpoint.
// It must never produce a membership of zero, or a change of more than one member at a time.
import { assert } from "../util/assert.ts";

export type MetadataMode = "embedded-single" | "embedded-raft" | "external";

export interface MetadataMember {
  /** The node's id (also its id in the Raft group). */
  readonly id: string;
  readonly name: string;
  /** Client URL of the node's metadata gate, https://ADDRESS:7327. */
  readonly url: string;
}

export interface MetadataMembers {
  readonly mode: MetadataMode;
  /** The embedded group's members, or empty for an external etcd. */
  readonly members: readonly MetadataMember[];
  /** A second member whose store is starting (embedded-single only); ISO time it was named. */
  readonly pending?: MetadataMember & { readonly since: string };
  /** The external etcd's client URLs. */
  readonly endpoints?: readonly string[];
}

/** The embedded group grows to this many members; later nodes are clients. */
export const metadataGroupSize = 3;
/** A pending member that has not come up in this long may be replaced by another joiner. */
export const pendingTimeoutMs = 120_000;

export function majority(members: number): number {
  assert(Number.isInteger(members) && members > 0, "a group has at least one member");
  return Math.floor(members / 2) + 1;
}

export function singleMembers(member: MetadataMember): MetadataMembers {
  return { mode: "embedded-single", members: [member] };
}

export function externalMembers(endpoints: readonly string[]): MetadataMembers {
  assert(endpoints.length > 0, "an external etcd has endpoints");
  return { mode: "external", members: [], endpoints: [...endpoints] };
}

/** Checks a document read from the store; a malformed one is a bug or a foreign writer. */
export function checkMembers(doc: MetadataMembers): MetadataMembers {
  assert(doc.mode === "embedded-single" || doc.mode === "embedded-raft" || doc.mode === "external", `unknown metadata mode ${String(doc.mode)}`);
  if (doc.mode === "external") {
    assert(doc.members.length === 0, "an external store has no embedded members");
    assert((doc.endpoints ?? []).length > 0, "an external store has endpoints");
  } else {
    assert(doc.members.length >= 1, "the embedded group has at least one member");
    assert(new Set(doc.members.map((m) => m.id)).size === doc.members.length, "a member appears twice");
  }
  if (doc.mode === "embedded-single") assert(doc.members.length === 1, "a single store has one member");
  if (doc.pending !== undefined) assert(doc.mode === "embedded-single", "only a single store waits for a pending member");
  return doc;
}

/** The URLs a client of this store uses. */
export function clientEndpoints(doc: MetadataMembers): string[] {
  if (doc.mode === "external") return [...(doc.endpoints ?? [])];
  return doc.members.map((m) => m.url);
}

export type JoinPlacement =
  | { readonly role: "member"; readonly next: MetadataMembers; readonly group: readonly MetadataMember[] }
  | { readonly role: "client"; readonly endpoints: readonly string[] }
  | { readonly role: "busy"; readonly reason: string };

/** Decides what a joining node becomes in the metadata store, and the document that records it. */
export function placeJoiner(doc: MetadataMembers, joiner: MetadataMember, now: Date): JoinPlacement {
  checkMembers(doc);
  assert(!doc.members.some((m) => m.id === joiner.id), "the joiner is already a member");
  if (doc.mode === "external") return { role: "client", endpoints: clientEndpoints(doc) };
  if (doc.mode === "embedded-single") {
    const pending = doc.pending;
    if (pending !== undefined && now.getTime() - Date.parse(pending.since) < pendingTimeoutMs) {
      return { role: "busy", reason: `node ${pending.name} is becoming a metadata member` };
    }
    const next: MetadataMembers = { mode: "embedded-single", members: doc.members, pending: { ...joiner, since: now.toISOString() } };
    return { role: "member", next, group: [...doc.members, joiner] };
  }
  if (doc.members.length < metadataGroupSize) {
    const next: MetadataMembers = { mode: "embedded-raft", members: [...doc.members, joiner] };
    return { role: "member", next, group: next.members };
  }
  return { role: "client", endpoints: clientEndpoints(doc) };
}

/** The single store's pending member answers: the group of two it switches to. */
export function completePending(doc: MetadataMembers): MetadataMembers {
  checkMembers(doc);
  assert(doc.mode === "embedded-single" && doc.pending !== undefined, "no pending member to complete");
  const { since: _since, ...member } = doc.pending;
  return { mode: "embedded-raft", members: [...doc.members, member] };
}

export type RemovalPlan =
  | { readonly ok: true; readonly changed: boolean; readonly next: MetadataMembers }
  | { readonly ok: false; readonly reason: "last-member" | "quorum"; readonly message: string };

/**
 * Removing node `nodeId` from the metadata group. Refused for the last member (the data would go
 * with it) and when the members left that are up (`upIds`) are not a majority of the smaller
 * group (it could not elect a leader, so the change could not even be recorded safely).
 */
export function planMemberRemoval(doc: MetadataMembers, nodeId: string, upIds: ReadonlySet<string>): RemovalPlan {
  checkMembers(doc);
  const dropPending = doc.pending?.id === nodeId;
  if (!doc.members.some((m) => m.id === nodeId)) {
    if (!dropPending) return { ok: true, changed: false, next: doc };
    const { pending: _p, ...rest } = doc;
    return { ok: true, changed: true, next: rest };
  }
  if (doc.members.length === 1) {
    return { ok: false, reason: "last-member", message: "this node holds the only copy of the cluster's metadata; it cannot be removed" };
  }
  const remaining = doc.members.filter((m) => m.id !== nodeId);
  const up = remaining.filter((m) => upIds.has(m.id)).length;
  if (up < majority(remaining.length)) {
    return { ok: false, reason: "quorum", message: `removing it would leave ${remaining.length} metadata members of which only ${up} are up, less than a majority` };
  }
  return { ok: true, changed: true, next: { mode: "embedded-raft", members: remaining } };
}

/**
 * Brings a group that lost a member back towards three: adds the first candidate (a client node
 * that is up) as a new, empty member. One member at a time; null when nothing is to be done.
 * Returns the new document and the index in `candidates` of the one it chose.
 */
export function planPromotion(doc: MetadataMembers, candidates: readonly MetadataMember[]): { next: MetadataMembers; chosen: number } | null {
  checkMembers(doc);
  if (doc.mode !== "embedded-raft" || doc.members.length >= metadataGroupSize) return null;
  const chosen = candidates.findIndex((c) => !doc.members.some((m) => m.id === c.id));
  if (chosen < 0) return null;
  return { next: { mode: "embedded-raft", members: [...doc.members, candidates[chosen] as MetadataMember] }, chosen };
}

/** True when the two documents name the same members (order aside) with the same URLs. */
export function sameGroup(a: readonly MetadataMember[], b: readonly MetadataMember[]): boolean {
  if (a.length !== b.length) return false;
  const urls = new Map(a.map((m) => [m.id, m.url]));
  return b.every((m) => urls.get(m.id) === m.url);
}
