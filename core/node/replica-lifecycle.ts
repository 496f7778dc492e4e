// The life of a replicated LUN's records beyond its first write: which pool's archives its
// segments may use, and what its deletion removes. The decisions (which archives a pool holds,
// which hosted units are orphans) are pure functions; the two store operations say their
// ordering in their comments.
//
// Ordering contract of a deletion: the LUN record, its placement and membership records go and
// its tombstone comes, in one transaction (NodeService.dropLun); a node drops a hosted
// unit only when a read made after it noticed the placement missing finds the tombstone and
// neither the placement record nor the LUN record. So a unit is never dropped while its LUN
// exists, whatever the order in which a node's reads come back, nor on mere absence of records.
import type { MetaStore } from "../meta/store.ts";
import { defaultPoolName, poolHolds, type PoolDef } from "../cluster/membership.ts";
import { QstoraError } from "../util/errors.ts";
import { keys, mediaOfRecord, type ArchiveRecord, type PoolRecord } from "./records.ts";

/** Where the membership records live (record-store.ts's MetaMembershipStore). */
export const membershipPrefix = "/qstora/replica/membership/";

/**
 * Tombstones of deleted replicated LUNs: a node that was down when one was deleted removes its
 * units at start only on this positive evidence, never because records are missing (a store
 * member that lags could miss records of a LUN that exists).
 */
export const deletedLunsPrefix = "/qstora/v1/deleted-luns/";

/** The pool named by `lun create --pool` (absent: default, every archive); NOT_FOUND when it does not exist. */
export async function readPool(meta: MetaStore, name: string | undefined): Promise<PoolDef> {
  if (name === undefined || name === defaultPoolName) return { name: defaultPoolName, media: [] };
  const kv = await meta.get(keys.pool(name));
  if (kv === undefined) throw new QstoraError("NOT_FOUND", `no pool ${name}`, "List them with `qstora pool list`, or create it with `qstora pool create NAME --media M`.");
  const rec = JSON.parse(kv.value) as PoolRecord;
  return { name: rec.name, media: rec.media };
}

/** The archives a pool holds (by media); placement sees only these. */
export function archivesInPool<A extends Pick<ArchiveRecord, "media" | "kind">>(archives: readonly A[], pool: PoolDef): A[] {
  return archives.filter((a) => poolHolds(pool, mediaOfRecord(a)));
}

/**
 * Deletes a replicated LUN's record and every placement and membership record of its segments
 * and leaves its tombstone, in one transaction (so a failure leaves all of it, never a LUN
 * without records or records without a tombstone): each node's ReplicaHost then drops the units
 * it hosted for them and frees their space.
 */
export async function deleteReplicaRecords(meta: MetaStore, lunUuid: string, now: Date): Promise<void> {
  await meta.txn({
    compare: [],
    success: [
      { delete: { key: keys.lun(lunUuid) } },
      { delete: { key: keys.lunSegments(lunUuid), prefix: true } },
      { delete: { key: `${membershipPrefix}${lunUuid}/`, prefix: true } },
      { put: { key: `${deletedLunsPrefix}${lunUuid}`, value: JSON.stringify({ uuid: lunUuid, deletedAt: now.toISOString() }) } },
    ],
  });
}

/**
 * Segments this node knew that are no longer listed, and whose LUN is among `gone` (LUN uuids
 * whose record a fresh read did not find): their units are to be dropped.
 */
export function vanishedSegments(known: Iterable<{ segment: string; volumeId: string }>, listed: ReadonlySet<string>, gone: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const p of known) if (!listed.has(p.segment) && gone.has(p.volumeId)) out.push(p.segment);
  return out.sort();
}

/**
 * Archive units left by a replicated LUN deleted while this node was down: units of volumes with
 * a tombstone and neither a LUN record nor a placement record (the last two only as a second
 * guard: a tombstone is written after both are gone).
 */
export function orphanVolumes(unitVolumes: Iterable<string>, deleted: ReadonlySet<string>, lunUuids: ReadonlySet<string>, placedVolumes: ReadonlySet<string>): string[] {
  const out = new Set<string>();
  for (const v of unitVolumes) if (deleted.has(v) && !lunUuids.has(v) && !placedVolumes.has(v)) out.add(v);
  return [...out].sort();
}
