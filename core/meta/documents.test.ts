import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedMeta, type EmbeddedMeta } from "./embedded.ts";
import { EtcdClient } from "./etcd-client.ts";
import { getJson, keepLeaseAlive, listJson, putJson, updateJson, updateAttemptsMax, type Decoder } from "./documents.ts";
import type { MetaStore, TxnRequest, TxnResponse } from "./store.ts";

interface Counter {
  n: number;
}
const decodeCounter: Decoder<Counter> = (json) => {
  if (typeof json !== "object" || json === null || typeof (json as { n?: unknown }).n !== "number") throw new Error("not a counter");
  return { n: (json as { n: number }).n };
};

let dir = "";
let embedded: EmbeddedMeta;
let store: EtcdClient;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "qstora-docs-"));
  embedded = await startEmbeddedMeta({ dir, port: 0 });
  store = new EtcdClient([embedded.url]);
});
afterAll(async () => {
  await store.close();
  await embedded.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("JSON documents", () => {
  test("putJson() then getJson()/listJson() decode; a wrong shape is an INTERNAL error naming the key", async () => {
    await putJson(store, "/qstora/test/docs/a", { n: 1 });
    await store.put("/qstora/test/docs/bad", '{"m":1}');
    expect((await getJson(store, "/qstora/test/docs/a", decodeCounter))?.value).toEqual({ n: 1 });
    expect(await getJson(store, "/qstora/test/docs/none", decodeCounter)).toBeUndefined();
    const e = await getJson(store, "/qstora/test/docs/bad", decodeCounter).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: "INTERNAL" });
    expect(String((e as Error).message)).toContain("/qstora/test/docs/bad");
    await store.delete("/qstora/test/docs/bad");
    expect((await listJson(store, "/qstora/test/docs/", decodeCounter)).map((d) => d.value)).toEqual([{ n: 1 }]);
  });

  test("updateJson() increments concurrently without losing an update", async () => {
    const key = "/qstora/test/docs/counter";
    const inc = () => updateJson(store, key, decodeCounter, (c) => ({ kind: "put", value: { n: (c?.n ?? 0) + 1 } }));
    const results = await Promise.all(Array.from({ length: 8 }, inc));
    expect(results.every((r) => r.outcome === "written")).toBe(true);
    expect((await getJson(store, key, decodeCounter))?.value).toEqual({ n: 8 });
    expect((await updateJson(store, key, decodeCounter, () => ({ kind: "keep" }))).outcome).toBe("kept");
    expect((await updateJson(store, key, decodeCounter, () => ({ kind: "delete" }))).outcome).toBe("deleted");
    expect(await store.get(key)).toBeUndefined();
  });

  test("updateJson() reports contention after updateAttemptsMax lost races", async () => {
    let txns = 0;
    const losing: MetaStore = Object.assign(Object.create(store) as EtcdClient, {
      txn: async (_request: TxnRequest): Promise<TxnResponse> => {
        txns++;
        return { succeeded: false, revision: 0, responses: [] };
      },
    });
    const r = await updateJson(losing, "/qstora/test/docs/x", decodeCounter, () => ({ kind: "put", value: { n: 1 } }));
    expect(r).toEqual({ outcome: "contended", attempts: updateAttemptsMax });
    expect(txns).toBe(updateAttemptsMax);
  });

  test("keepLeaseAlive() holds a leased key past its TTL and reports a revoked lease", async () => {
    const id = await store.leaseGrant(1);
    await store.put("/qstora/test/docs/alive", "1", { lease: id });
    let lost = "";
    const keeper = keepLeaseAlive(store, { id, ttlSeconds: 1 }, (reason) => (lost = reason));
    await Bun.sleep(2_500);
    expect((await store.get("/qstora/test/docs/alive"))?.value).toBe("1");
    await store.leaseRevoke(id);
    const deadline = Date.now() + 3_000;
    while (lost === "" && Date.now() < deadline) await Bun.sleep(50);
    expect(lost).toContain("expired or was revoked");
    keeper.stop();
  });
});
