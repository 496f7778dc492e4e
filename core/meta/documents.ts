// Typed JSON documents in the metadata store: read with a decoder, write, and update by
// compare-and-swap with a bounded number of retries. Never retries without bound, and never
// writes a document it did not build from the latest version it read.
import { assert } from "../util/assert.ts";
import { QstoraError } from "../util/errors.ts";
import type { MetaStore } from "./store.ts";

/** Turns parsed JSON into a typed value; throws (any error) when the shape is wrong. */
export type Decoder<T> = (json: unknown) => T;

/** A compare-and-swap that loses this many races in a row reports contention instead. */
export const updateAttemptsMax = 16;

export interface Document<T> {
  readonly value: T;
  readonly modRevision: number;
}

function decodeText<T>(key: string, text: string, decode: Decoder<T>): T {
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch {
    throw new QstoraError("INTERNAL", `metadata key ${key} does not hold JSON`, "The metadata store was written by something else than qstora, or is damaged.");
  }
  try {
    return decode(json);
  } catch (e) {
    throw new QstoraError("INTERNAL", `metadata key ${key} holds a document of the wrong shape: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export async function getJson<T>(store: MetaStore, key: string, decode: Decoder<T>): Promise<Document<T> | undefined> {
  const kv = await store.get(key);
  if (kv === undefined) return undefined;
  return { value: decodeText(key, kv.value, decode), modRevision: kv.modRevision };
}

export async function listJson<T>(store: MetaStore, prefix: string, decode: Decoder<T>): Promise<Array<Document<T> & { key: string }>> {
  const kvs = await store.list(prefix);
  return kvs.map((kv) => ({ key: kv.key, value: decodeText(kv.key, kv.value, decode), modRevision: kv.modRevision }));
}

export async function putJson<T>(store: MetaStore, key: string, value: T, options: { lease?: string } = {}): Promise<{ revision: number }> {
  return store.put(key, JSON.stringify(value), options);
}

/** What an update function wants done with the document it was shown. */
export type Change<T> = { readonly kind: "put"; readonly value: T } | { readonly kind: "delete" } | { readonly kind: "keep" };

export type UpdateOutcome<T> =
  | { readonly outcome: "written"; readonly value: T; readonly revision: number }
  | { readonly outcome: "deleted"; readonly revision: number }
  | { readonly outcome: "kept"; readonly value: T | undefined }
  | { readonly outcome: "contended"; readonly attempts: number };

/**
 * Reads the document, asks `change` what to do with it (absent: undefined), and applies that only
 * if nobody changed the key meanwhile; on a lost race, reads again and asks again. `change` must
 * be pure: it may run several times. Contention past updateAttemptsMax is an expected outcome.
 */
export async function updateJson<T>(store: MetaStore, key: string, decode: Decoder<T>, change: (current: T | undefined) => Change<T>): Promise<UpdateOutcome<T>> {
  for (let attempt = 1; attempt <= updateAttemptsMax; attempt++) {
    const current = await getJson(store, key, decode);
    const wanted = change(current?.value);
    if (wanted.kind === "keep") return { outcome: "kept", value: current?.value };
    if (wanted.kind === "delete" && current === undefined) return { outcome: "kept", value: undefined };
    const guard = current === undefined
      ? ({ key, target: "VERSION", result: "EQUAL", value: 0 } as const)
      : ({ key, target: "MOD", result: "EQUAL", value: current.modRevision } as const);
    const op = wanted.kind === "put" ? { put: { key, value: JSON.stringify(wanted.value) } } : { delete: { key } };
    const r = await store.txn({ compare: [guard], success: [op] });
    if (r.succeeded) {
      return wanted.kind === "put" ? { outcome: "written", value: wanted.value, revision: r.revision } : { outcome: "deleted", revision: r.revision };
    }
  }
  return { outcome: "contended", attempts: updateAttemptsMax };
}

/**
 * Keeps a lease alive: renews it every third of its TTL until stopped, and reports its loss once
 * (expired, revoked, or the store unreachable for longer than the TTL). The keys attached to it
 * vanish with it: liveness, never configuration.
 */
export function keepLeaseAlive(store: MetaStore, lease: { id: string; ttlSeconds: number }, onLost: (reason: string) => void): { stop(): void } {
  assert(lease.ttlSeconds > 0);
  const intervalMs = Math.max(100, Math.floor((lease.ttlSeconds * 1000) / 3));
  let lastRenewedMs = Date.now();
  let stopped = false;
  let busy = false;
  const lose = (reason: string): void => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    onLost(reason);
  };
  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    store.leaseKeepAlive(lease.id).then(
      (ttl) => {
        busy = false;
        if (ttl <= 0) lose("the lease expired or was revoked");
        else lastRenewedMs = Date.now();
      },
      (e: unknown) => {
        busy = false;
        if (Date.now() - lastRenewedMs > lease.ttlSeconds * 1000) lose(`the lease could not be renewed within its TTL: ${e instanceof Error ? e.message : String(e)}`);
      },
    );
  }, intervalMs);
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
