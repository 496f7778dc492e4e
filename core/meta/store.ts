// The metadata store as the rest of qstora sees it: a small key-value interface shaped after the
// etcd v3 API (ranges, transactions, leases, watches), implemented by `etcd-client.ts` against
// both embedded antietcd and a real etcd cluster.
// It must never offer what only one backend can do: every operation here is one that both
// answer the same way, and the conformance suite (`store.conformance.ts`) proves it.
//
// Differences between the backends that shaped this interface (antietcd 1.3.1 vs etcd 3.4):
// - antietcd lists only "directories": a range must name a prefix ending in '/'. So `list()`
//   takes such a prefix, and a name in the key layout is either a leaf or a directory, never
//   both (antietcd would return `/a/b` in a listing of `/a/b/`; the client filters it out).
// - antietcd reports neither create_revision nor version in a range, so a KeyValue carries only
//   the mod revision. Compare on VERSION = 0 to test absence, on MOD to compare-and-swap.
// - antietcd compares only EQUAL and LESS; so does this interface.
// - antietcd does not bump the revision when a put writes the value and lease a key already has;
//   callers must not depend on such a put producing a new revision or a watch event.
// - A watch that resumes from an old revision receives, on antietcd, the latest state of every
//   key changed since then (a consistent snapshot), not every intermediate event. Consumers treat
//   events as "the key now holds this", never as a log of every change.
// - Keys attached to a lease are not persisted by antietcd: they vanish with a restart of the
//   embedded store (etcd keeps them until the lease expires). Leased keys are liveness only.
import { assert } from "../util/assert.ts";

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** Revision of the last change of this key. */
  readonly modRevision: number;
  /** Lease the key is attached to (opaque: decimal on etcd, hex on antietcd). */
  readonly lease?: string;
}

/** A condition of a transaction. VERSION 0 means "absent". */
export type Compare =
  | { readonly key: string; readonly target: "VERSION" | "MOD" | "CREATE"; readonly result: "EQUAL" | "LESS"; readonly value: number }
  | { readonly key: string; readonly target: "VALUE"; readonly result: "EQUAL"; readonly value: string };

export type Op =
  | { readonly put: { readonly key: string; readonly value: string; readonly lease?: string } }
  | { readonly delete: { readonly key: string; readonly prefix?: boolean } }
  | { readonly range: { readonly key: string; readonly prefix?: boolean } };

export type OpResponse =
  | { readonly kind: "put" }
  | { readonly kind: "delete"; readonly deleted: number }
  | { readonly kind: "range"; readonly kvs: readonly KeyValue[] };

export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly Op[];
  readonly failure?: readonly Op[];
}

export interface TxnResponse {
  readonly succeeded: boolean;
  /** Store revision after the transaction. */
  readonly revision: number;
  /** One response per operation of the branch that ran. */
  readonly responses: readonly OpResponse[];
}

export type WatchEvent =
  | { readonly type: "PUT"; readonly key: string; readonly value: string; readonly modRevision: number; readonly lease?: string }
  | { readonly type: "DELETE"; readonly key: string; readonly modRevision: number };

export interface WatchOptions {
  /** First revision of interest; absent: changes after the watch is created. */
  readonly fromRevision?: number;
  /**
   * The revisions asked for are compacted away (an expected outcome, not an error): the watch has
   * stopped, and the caller must re-read the prefix and watch again from the revision it read at.
   * Also called when the store's revision went backwards (antietcd restarted without the
   * revisions its leases consumed), for the same remedy.
   */
  readonly onCompacted: (compactRevision: number) => void;
}

export interface Watch {
  /** Stops the watch; no callback runs after this returns. Idempotent. */
  cancel(): void;
  /** Next revision the watch will deliver (advances as events arrive). */
  readonly nextRevision: number | undefined;
}

export interface MetaStore {
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key under `prefix` (which must end with '/'), sorted by key. */
  list(prefix: string): Promise<KeyValue[]>;
  put(key: string, value: string, options?: { lease?: string }): Promise<{ revision: number }>;
  delete(key: string, options?: { prefix?: boolean }): Promise<{ deleted: number }>;
  txn(request: TxnRequest): Promise<TxnResponse>;
  /** Grants a lease; returns its id. */
  leaseGrant(ttlSeconds: number): Promise<string>;
  /** Renews a lease; returns its TTL in seconds, or 0 when the lease no longer exists. */
  leaseKeepAlive(id: string): Promise<number>;
  /** Revokes a lease and deletes its keys; revoking an unknown lease is not an error. */
  leaseRevoke(id: string): Promise<void>;
  /** Watches every key under `prefix` (which must end with '/'). Events arrive in revision order. */
  watch(prefix: string, options: WatchOptions, onEvents: (events: readonly WatchEvent[]) => void): Watch;
  /** Cancels watches and drops connections. The store is unusable afterwards. */
  close(): Promise<void>;
}

/** Every key qstora writes starts with this (see schema.ts). */
export const keyPrefixRoot = "/qstora/";

/** Keys are short paths: antietcd keeps its whole tree in memory and rewrites it on each change. */
export const keyBytesMax = 1024;

/** Values are small configuration documents, never data (design.md, "Metadata"). */
export const valueBytesMax = 1024 * 1024;

/**
 * Checks a key's shape. antietcd splits keys on '/', collapses '//' and drops a trailing '/', so
 * such keys would alias others there: they are refused for both backends. Keys are built by
 * schema.ts from checked names, so a bad key here is a bug (assert).
 */
export function checkKey(key: string): void {
  assert(key.length > 0, "metadata key is empty");
  assert(key.length <= keyBytesMax, `metadata key longer than ${keyBytesMax}: ${key.slice(0, 64)}...`);
  assert(key.startsWith("/"), `metadata key "${key}" does not start with '/'`);
  assert(!key.endsWith("/"), `metadata key "${key}" ends with '/' (that names a directory)`);
  assert(!key.includes("//"), `metadata key "${key}" contains an empty path segment`);
}

/** Checks a directory prefix: like a key, but ending in '/'. */
export function checkPrefix(prefix: string): void {
  assert(prefix.endsWith("/"), `metadata prefix "${prefix}" must end with '/' (antietcd lists only directories)`);
  if (prefix !== "/") checkKey(prefix.slice(0, -1));
}

/**
 * The etcd range end of a directory prefix: the prefix with its last byte incremented. For a
 * prefix ending in '/' (0x2f) that is the same string ending in '0' (0x30), which is exactly the
 * form antietcd demands of a directory range.
 */
export function prefixRangeEnd(prefix: string): string {
  checkPrefix(prefix);
  return `${prefix.slice(0, -1)}0`;
}
