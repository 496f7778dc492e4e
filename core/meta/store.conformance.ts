// The conformance suite of MetaStore, exported as a function and run against every backend
// (test/meta-conformance.test.ts: embedded antietcd and a real etcd). Each test works under a
// prefix of its own, so tests never see each other's keys. It must never depend on behaviour
// that only one backend has (see the list in store.ts): that is what it is here to catch.
import { afterAll, describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:net";
import { QstoraError } from "../util/errors.ts";
import { EtcdClient } from "./etcd-client.ts";
import type { MetaStore, WatchEvent } from "./store.ts";

export interface MetaBackendUnderTest {
  /** Client URLs of the running backend. */
  urls(): string[];
  /** Restarts the backend on the same data and address (etcd: SIGKILL; antietcd: stop/start). */
  restart(): Promise<void>;
  /** Makes revisions up to now unavailable to watches. */
  compact(store: MetaStore): Promise<void>;
}

let prefixCounter = 0;
function freshPrefix(name: string): string {
  prefixCounter++;
  return `/qstora/test/${name}-${prefixCounter}-${Math.random().toString(36).slice(2, 8)}/`;
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(25);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function applyEvents(state: Map<string, string>, events: readonly WatchEvent[]): void {
  for (const e of events) {
    if (e.type === "PUT") state.set(e.key, e.value);
    else state.delete(e.key);
  }
}

/** A TCP server that accepts and never answers: the worst kind of dead endpoint. */
async function blackHole(): Promise<{ url: string; close(): void }> {
  const server: Server = createServer(() => undefined);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const addr = server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : 0;
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

/** A port nobody listens on (bound and released). */
async function deadUrl(): Promise<string> {
  const hole = await blackHole();
  hole.close();
  await Bun.sleep(10);
  return hole.url;
}

export function metaStoreConformance(name: string, backend: () => MetaBackendUnderTest): void {
  describe(`MetaStore conformance: ${name}`, () => {
    const clients: MetaStore[] = [];
    const open = (requestTimeoutMs = 3_000): MetaStore => {
      const c = new EtcdClient({ endpoints: backend().urls(), requestTimeoutMs });
      clients.push(c);
      return c;
    };
    afterAll(async () => {
      for (const c of clients) await c.close();
    });

    test("put() then get() returns the value and the put's revision; a missing key is undefined", async () => {
      const s = open();
      const p = freshPrefix("get");
      const { revision } = await s.put(`${p}a`, '{"x":1}');
      const kv = await s.get(`${p}a`);
      expect(kv).toEqual({ key: `${p}a`, value: '{"x":1}', modRevision: revision });
      expect(await s.get(`${p}missing`)).toBeUndefined();
      const again = await s.put(`${p}a`, "unicode: é ✓");
      expect(again.revision).toBeGreaterThan(revision);
      expect((await s.get(`${p}a`))?.value).toBe("unicode: é ✓");
    });

    test("list() returns the keys under a directory, sorted, and nothing beside it", async () => {
      const s = open();
      const p = freshPrefix("list");
      for (const k of ["dir/b", "dir/a", "dir/sub/c", "dirx", "dir0", "di"]) await s.put(`${p}${k}`, k);
      const kvs = await s.list(`${p}dir/`);
      expect(kvs.map((kv) => kv.key)).toEqual([`${p}dir/a`, `${p}dir/b`, `${p}dir/sub/c`]);
      expect(kvs.map((kv) => kv.value)).toEqual(["dir/a", "dir/b", "dir/sub/c"]);
      expect(await s.list(`${p}empty/`)).toEqual([]);
    });

    test("delete() removes one key or a directory and counts what it removed", async () => {
      const s = open();
      const p = freshPrefix("delete");
      for (const k of ["a", "d/1", "d/2", "d/3/x", "dz"]) await s.put(`${p}${k}`, "v");
      expect(await s.delete(`${p}a`)).toEqual({ deleted: 1 });
      expect(await s.delete(`${p}a`)).toEqual({ deleted: 0 });
      expect(await s.delete(`${p}d/`, { prefix: true })).toEqual({ deleted: 3 });
      expect((await s.list(p)).map((kv) => kv.key)).toEqual([`${p}dz`]);
    });

    test("txn() creates only if absent (VERSION = 0), and the failure branch reads", async () => {
      const s = open();
      const p = freshPrefix("create");
      const create = (value: string) =>
        s.txn({
          compare: [{ key: `${p}k`, target: "VERSION", result: "EQUAL", value: 0 }],
          success: [{ put: { key: `${p}k`, value } }],
          failure: [{ range: { key: `${p}k` } }],
        });
      const first = await create("one");
      expect(first.succeeded).toBe(true);
      expect(first.responses).toEqual([{ kind: "put" }]);
      const second = await create("two");
      expect(second.succeeded).toBe(false);
      expect(second.responses).toEqual([{ kind: "range", kvs: [{ key: `${p}k`, value: "one", modRevision: first.revision }] }]);
      expect((await s.get(`${p}k`))?.value).toBe("one");
    });

    test("txn() compare-and-swap on MOD succeeds only against the current revision", async () => {
      const s = open();
      const p = freshPrefix("cas");
      const { revision } = await s.put(`${p}k`, "v1");
      const swap = (expected: number, value: string) =>
        s.txn({ compare: [{ key: `${p}k`, target: "MOD", result: "EQUAL", value: expected }], success: [{ put: { key: `${p}k`, value } }] });
      const ok = await swap(revision, "v2");
      expect(ok.succeeded).toBe(true);
      expect(ok.revision).toBeGreaterThan(revision);
      const stale = await swap(revision, "v3");
      expect(stale.succeeded).toBe(false);
      expect(stale.responses).toEqual([]);
      expect((await s.get(`${p}k`))?.value).toBe("v2");
      // "MOD = 0" means absent, also for a key that existed and was deleted.
      await s.delete(`${p}k`);
      expect((await swap(0, "v4")).succeeded).toBe(true);
      expect((await s.get(`${p}k`))?.value).toBe("v4");
    });

    test("txn() compares VALUE and LESS, and applies all of its operations at one revision", async () => {
      const s = open();
      const p = freshPrefix("txn");
      await s.put(`${p}k`, "hello");
      const byValue = await s.txn({ compare: [{ key: `${p}k`, target: "VALUE", result: "EQUAL", value: "hello" }], success: [{ put: { key: `${p}a`, value: "1" } }, { put: { key: `${p}b`, value: "2" } }, { delete: { key: `${p}k` } }] });
      expect(byValue.succeeded).toBe(true);
      expect(byValue.responses).toEqual([{ kind: "put" }, { kind: "put" }, { kind: "delete", deleted: 1 }]);
      const a = await s.get(`${p}a`);
      const b = await s.get(`${p}b`);
      expect(a?.modRevision).toBe(byValue.revision);
      expect(b?.modRevision).toBe(byValue.revision);
      expect((await s.txn({ compare: [{ key: `${p}a`, target: "VALUE", result: "EQUAL", value: "nope" }], success: [] })).succeeded).toBe(false);
      expect((await s.txn({ compare: [{ key: `${p}a`, target: "VERSION", result: "LESS", value: 2 }], success: [] })).succeeded).toBe(true);
      expect((await s.txn({ compare: [{ key: `${p}a`, target: "VERSION", result: "LESS", value: 1 }], success: [] })).succeeded).toBe(false);
      const listed = await s.txn({ compare: [], success: [{ range: { key: p, prefix: true } }] });
      expect(listed.responses).toEqual([{ kind: "range", kvs: [a, b].filter((x) => x !== undefined) }]);
    });

    test("a lease that is not kept alive expires and takes its keys with it", async () => {
      const s = open();
      const p = freshPrefix("lease-expiry");
      // etcd raises TTLs below its minimum (about 2 s with default timing) to that minimum.
      const lease = await s.leaseGrant(2);
      await s.put(`${p}alive`, "1", { lease });
      expect((await s.get(`${p}alive`))?.lease).toBe(lease);
      await waitFor("the leased key to expire", async () => (await s.get(`${p}alive`)) === undefined, 10_000);
      expect(await s.leaseKeepAlive(lease)).toBe(0);
    });

    test("keepalive keeps a lease's keys; revoke removes them at once and is idempotent", async () => {
      const s = open();
      const p = freshPrefix("lease-keep");
      const lease = await s.leaseGrant(2);
      await s.put(`${p}alive`, "1", { lease });
      const until = Date.now() + 4_000;
      while (Date.now() < until) {
        expect(await s.leaseKeepAlive(lease)).toBeGreaterThanOrEqual(2);
        await Bun.sleep(400);
      }
      expect((await s.get(`${p}alive`))?.value).toBe("1");
      await s.leaseRevoke(lease);
      expect(await s.get(`${p}alive`)).toBeUndefined();
      await s.leaseRevoke(lease);
      expect(await s.leaseKeepAlive(lease)).toBe(0);
    });

    test("a put with an unknown lease is refused with NOT_FOUND", async () => {
      const s = open();
      const p = freshPrefix("lease-unknown");
      const lease = await s.leaseGrant(5);
      await s.leaseRevoke(lease);
      const e = await s.put(`${p}k`, "v", { lease }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(QstoraError);
      expect((e as QstoraError).code).toBe("NOT_FOUND");
    });

    test("watch() delivers the changes under its prefix in revision order, and nothing else", async () => {
      const s = open();
      const p = freshPrefix("watch");
      const seen: WatchEvent[] = [];
      const w = s.watch(`${p}w/`, { onCompacted: () => seen.push({ type: "DELETE", key: "COMPACTED", modRevision: 0 }) }, (events) => seen.push(...events));
      await waitFor("the watch to be created", () => w.nextRevision !== undefined);
      const r1 = await s.put(`${p}w/a`, "1");
      await s.put(`${p}other`, "x");
      await s.put(`${p}w0`, "x");
      const r2 = await s.put(`${p}w/b`, "2");
      const r3 = await s.delete(`${p}w/a`);
      const r4 = await s.txn({ compare: [], success: [{ put: { key: `${p}w/c`, value: "3" } }, { put: { key: `${p}w/d/e`, value: "4" } }] });
      await waitFor("four changes", () => seen.length >= 5);
      await Bun.sleep(100);
      w.cancel();
      expect(seen.map((e) => [e.type, e.key.slice(p.length), e.type === "PUT" ? e.value : null])).toEqual([
        ["PUT", "w/a", "1"],
        ["PUT", "w/b", "2"],
        ["DELETE", "w/a", null],
        ["PUT", "w/c", "3"],
        ["PUT", "w/d/e", "4"],
      ]);
      expect(seen[0]?.modRevision).toBe(r1.revision);
      expect(seen[1]?.modRevision).toBe(r2.revision);
      expect(r3.deleted).toBe(1);
      expect(seen[3]?.modRevision).toBe(r4.revision);
      // Nothing arrives after cancel().
      const before = seen.length;
      await s.put(`${p}w/late`, "x");
      await Bun.sleep(200);
      expect(seen.length).toBe(before);
    });

    test("watch() from a past revision brings the watcher to the current state, then follows", async () => {
      const s = open();
      const p = freshPrefix("resume");
      const { revision: start } = await s.put(`${p}a`, "1");
      await s.put(`${p}b`, "2");
      await s.put(`${p}a`, "3");
      await s.put(`${p}c`, "4");
      await s.delete(`${p}b`);
      const state = new Map<string, string>([[`${p}b`, "stale"]]);
      let last = 0;
      const w = s.watch(p, { fromRevision: start, onCompacted: () => state.set("COMPACTED", "") }, (events) => {
        for (const e of events) {
          expect(e.modRevision).toBeGreaterThanOrEqual(Math.max(last, start));
          last = e.modRevision;
        }
        applyEvents(state, events);
      });
      await waitFor("the resumed state", () => state.get(`${p}c`) === "4" && !state.has(`${p}b`));
      expect(Object.fromEntries(state)).toEqual({ [`${p}a`]: "3", [`${p}c`]: "4" });
      await s.put(`${p}d`, "5");
      await waitFor("a live change after the resume", () => state.get(`${p}d`) === "5");
      w.cancel();
    });

    test("a watch whose revisions are compacted away is told so and stops", async () => {
      const s = open();
      const p = freshPrefix("compact");
      const { revision } = await s.put(`${p}a`, "1");
      await s.put(`${p}a`, "2");
      await backend().compact(s);
      let compacted: number | undefined;
      const w = s.watch(p, { fromRevision: revision, onCompacted: (r) => (compacted = r) }, () => undefined);
      await waitFor("the compaction notice", () => compacted !== undefined);
      expect(compacted).toBeGreaterThan(revision);
      w.cancel();
    });

    test("a failed endpoint is skipped: the next one answers", async () => {
      const dead = await deadUrl();
      const s = new EtcdClient({ endpoints: [dead, ...backend().urls()], requestTimeoutMs: 2_000 });
      clients.push(s);
      const p = freshPrefix("failover");
      await s.put(`${p}k`, "v");
      expect((await s.get(`${p}k`))?.value).toBe("v");
    });

    test("persisted writes survive a restart, and a watch reconnects without losing a change", async () => {
      const s = open();
      const p = freshPrefix("restart");
      await s.put(`${p}before`, "1");
      const state = new Map<string, string>();
      let compactedAt: number | undefined;
      const w = s.watch(p, { onCompacted: (r) => (compactedAt = r) }, (events) => applyEvents(state, events));
      await waitFor("the watch to be created", () => w.nextRevision !== undefined);
      await s.put(`${p}seen`, "2");
      await waitFor("the first event", () => state.has(`${p}seen`));
      // Lease traffic consumes revisions that antietcd does not persist.
      const lease = await s.leaseGrant(30);
      await s.leaseKeepAlive(lease);
      await s.leaseKeepAlive(lease);
      await backend().restart();
      expect((await s.get(`${p}before`))?.value).toBe("1");
      expect((await s.get(`${p}seen`))?.value).toBe("2");
      await s.put(`${p}after`, "3");
      // Either the change arrives, or the watcher is told to re-read: never silence.
      await waitFor("the change after the restart, or a re-read notice", () => state.has(`${p}after`) || compactedAt !== undefined, 15_000);
      w.cancel();
    }, 30_000);

    test("put latency (sequential, one client)", async () => {
      const s = open();
      const p = freshPrefix("latency");
      const samples: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t0 = performance.now();
        await s.put(`${p}k${i % 10}`, JSON.stringify({ i, pad: "x".repeat(200) }));
        samples.push(performance.now() - t0);
      }
      samples.sort((a, b) => a - b);
      const q = (f: number): string => (samples[Math.min(samples.length - 1, Math.floor(f * samples.length))] ?? 0).toFixed(2);
      console.log(`[meta] ${name}: put latency ms p50=${q(0.5)} p90=${q(0.9)} p99=${q(0.99)} max=${q(1)} (n=${samples.length})`);
      expect(samples.length).toBe(200);
    });
  });
}

/** Client-side failure behaviour that needs no backend: unreachable endpoints time out in bounds. */
export function unreachableConformance(): void {
  describe("EtcdClient with no reachable endpoint", () => {
    test("connection refused on every endpoint → METADATA_UNAVAILABLE at once", async () => {
      const s = new EtcdClient({ endpoints: [await deadUrl(), await deadUrl()], requestTimeoutMs: 1_000 });
      const t0 = performance.now();
      const e = await s.get("/qstora/x").catch((x: unknown) => x);
      expect(e).toBeInstanceOf(QstoraError);
      expect((e as QstoraError).code).toBe("METADATA_UNAVAILABLE");
      expect(performance.now() - t0).toBeLessThan(1_000);
      await s.close();
    });

    test("an endpoint that accepts and never answers → METADATA_UNAVAILABLE within the timeout", async () => {
      const hole = await blackHole();
      const s = new EtcdClient({ endpoints: [hole.url], requestTimeoutMs: 500 });
      try {
        const t0 = performance.now();
        const e = await s.list("/qstora/").catch((x: unknown) => x);
        const elapsed = performance.now() - t0;
        expect((e as QstoraError).code).toBe("METADATA_UNAVAILABLE");
        expect(elapsed).toBeGreaterThanOrEqual(450);
        expect(elapsed).toBeLessThan(1_500);
        // A transaction whose outcome is unknown is not replayed; the message says so.
        const t = await s.txn({ compare: [], success: [{ put: { key: "/qstora/x", value: "1" } }] }).catch((x: unknown) => x);
        expect((t as QstoraError).code).toBe("METADATA_UNAVAILABLE");
        expect((t as QstoraError).message).toContain("may or may not");
      } finally {
        hole.close();
        await s.close();
      }
    });
  });
}
