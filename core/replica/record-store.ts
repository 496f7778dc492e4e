// Where segment memberships are recorded: the compare-and-swap register the unit and manager
// drivers carry their "record" and "fetch-membership" effects to. One implementation over the
// cluster's MetaStore (a transaction comparing the key's mod revision), one in memory for tests
// of one process. Never decides anything: a CAS whose answer is lost reports "unknown", and a
// conflict whose current record is the one proposed reports "applied" (the contract's rule for a
// retried record that the store had applied).
import { assert } from "../util/assert.ts";
import type { MetaStore } from "../meta/store.ts";
import type { Membership, RecordOutcome } from "./types.ts";
import { sameMembership } from "./types.ts";
import { isMembership } from "./wire.ts";
import { parseJson } from "../util/json.ts";

export interface MembershipStore {
  load(segment: string): Promise<Membership | null>;
  /** Replaces the record of epoch `expectEpoch` (or creates it when expectEpoch is 0). */
  cas(expectEpoch: number, membership: Membership): Promise<RecordOutcome>;
}

/** Key of a segment's membership record. */
export function membershipKey(segment: string): string {
  assert(segment.length > 0 && !segment.includes("\n"));
  return `/qstora/replica/membership/${segment}`;
}

function decodeRecord(value: string): Membership | null {
  const raw = parseJson(value);
  return isMembership(raw) ? raw : null;
}

export class MetaMembershipStore implements MembershipStore {
  constructor(private readonly meta: MetaStore) {}

  async load(segment: string): Promise<Membership | null> {
    const kv = await this.meta.get(membershipKey(segment));
    return kv === undefined ? null : decodeRecord(kv.value);
  }

  async cas(expectEpoch: number, membership: Membership): Promise<RecordOutcome> {
    assert(membership.epoch > expectEpoch, "a record moves to a higher epoch");
    const key = membershipKey(membership.segment);
    try {
      const kv = await this.meta.get(key);
      const current = kv === undefined ? null : decodeRecord(kv.value);
      if ((current?.epoch ?? 0) !== expectEpoch) {
        if (current === null) return { outcome: "unknown" };
        return sameMembership(current, membership) ? { outcome: "applied" } : { outcome: "conflict", current };
      }
      const compare = kv === undefined ? { key, target: "VERSION" as const, result: "EQUAL" as const, value: 0 } : { key, target: "MOD" as const, result: "EQUAL" as const, value: kv.modRevision };
      const r = await this.meta.txn({ compare: [compare], success: [{ put: { key, value: JSON.stringify(membership) } }] });
      if (r.succeeded) return { outcome: "applied" };
      const now = await this.load(membership.segment);
      if (now === null) return { outcome: "unknown" };
      return sameMembership(now, membership) ? { outcome: "applied" } : { outcome: "conflict", current: now };
    } catch {
      return { outcome: "unknown" };
    }
  }
}

/** A linearizable register per segment in this process (tests, benchmarks). */
export class MemoryMembershipStore implements MembershipStore {
  readonly records = new Map<string, Membership>();
  /** While false, every request fails as unreachable (tests of a lost metadata store). */
  reachable = true;

  async load(segment: string): Promise<Membership | null> {
    if (!this.reachable) throw new Error("metadata store unreachable");
    return this.records.get(segment) ?? null;
  }

  async cas(expectEpoch: number, membership: Membership): Promise<RecordOutcome> {
    if (!this.reachable) return { outcome: "unknown" };
    const current = this.records.get(membership.segment) ?? null;
    if ((current?.epoch ?? 0) !== expectEpoch) {
      if (current === null) return { outcome: "unknown" };
      return sameMembership(current, membership) ? { outcome: "applied" } : { outcome: "conflict", current };
    }
    this.records.set(membership.segment, membership);
    return { outcome: "applied" };
  }
}
