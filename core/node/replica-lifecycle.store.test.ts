// replica-lifecycle.ts and record-watch.ts against the embedded metadata store (antietcd): what a
// LUN's deletion removes, and the watch that makes every node re-read the records.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomLoopback } from "../../test/helpers/node.ts";
import { startEmbeddedMeta, type EmbeddedMeta } from "../meta/embedded.ts";
import { EtcdClient } from "../meta/etcd-client.ts";
import { keys } from "./records.ts";
import { watchPrefixes } from "./record-watch.ts";
import { deleteReplicaRecords, deletedLunsPrefix, membershipPrefix, readPool } from "./replica-lifecycle.ts";
import { QstoraError } from "../util/errors.ts";

let dir = "";
let embedded: EmbeddedMeta | undefined;
let client: EtcdClient;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "qstora-lifecycle-"));
  embedded = await startEmbeddedMeta({ dir, host: randomLoopback(), port: 0 });
  client = new EtcdClient([embedded.url]);
});
afterAll(async () => {
  await client.close();
  await embedded?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("on the embedded metadata store", () => {
  test("deleteReplicaRecords() removes one LUN's record, placements and memberships and leaves its tombstone, nothing of another LUN's", async () => {
    const mine = "11111111-1111-4111-8111-111111111111";
    const other = "22222222-2222-4222-8222-222222222222";
    for (const lun of [mine, other]) {
      await client.put(keys.lun(lun), JSON.stringify({ uuid: lun }));
      for (const i of [0, 1, 10]) {
        await client.put(keys.segment(lun, i), JSON.stringify({ segment: `${lun}/${i}` }));
        await client.put(`${membershipPrefix}${lun}/${i}`, JSON.stringify({ segment: `${lun}/${i}`, epoch: 1 }));
      }
    }
    await deleteReplicaRecords(client, mine, new Date("2026-12-01T10:00:00Z"));
    expect(await client.get(keys.lun(mine))).toBeUndefined();
    expect(await client.get(keys.lun(other))).toBeDefined();
    expect((await client.list(keys.lunSegments(mine))).length).toBe(0);
    expect((await client.list(`${membershipPrefix}${mine}/`)).length).toBe(0);
    expect((await client.list(keys.lunSegments(other))).map((kv) => kv.key)).toEqual([keys.segment(other, 0), keys.segment(other, 1), keys.segment(other, 10)]);
    expect((await client.list(`${membershipPrefix}${other}/`)).length).toBe(3);
    expect((await client.list(deletedLunsPrefix)).map((kv) => [kv.key, JSON.parse(kv.value)])).toEqual([[`${deletedLunsPrefix}${mine}`, { uuid: mine, deletedAt: "2026-12-01T10:00:00.000Z" }]]);
  });

  test("readPool(): default without a record, a created pool's media, NOT_FOUND with a hint otherwise", async () => {
    expect(await readPool(client, undefined)).toEqual({ name: "default", media: [] });
    await client.put(keys.pool("fast"), JSON.stringify({ name: "fast", media: ["ssd"], createdAt: "" }));
    expect(await readPool(client, "fast")).toEqual({ name: "fast", media: ["ssd"] });
    const e = await readPool(client, "nope").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(QstoraError);
    expect((e as QstoraError).code).toBe("NOT_FOUND");
    expect((e as QstoraError).hint).toContain("qstora pool create");
  });

  test("watchPrefixes() calls back on a change under any watched directory, not elsewhere, and never after cancel", async () => {
    let changes = 0;
    const w = watchPrefixes(client, ["/qstora/v1/lifecycle-a/", "/qstora/v1/lifecycle-b/"], () => changes++);
    await Bun.sleep(300);
    await client.put("/qstora/v1/lifecycle-c/x", "1");
    await Bun.sleep(300);
    expect(changes).toBe(0);
    await client.put("/qstora/v1/lifecycle-a/x", "1");
    await client.put("/qstora/v1/lifecycle-b/y", "1");
    for (let i = 0; i < 40 && changes < 2; i++) await Bun.sleep(50);
    expect(changes).toBeGreaterThanOrEqual(1);
    w.cancel();
    const seen = changes;
    await client.put("/qstora/v1/lifecycle-a/z", "1");
    await Bun.sleep(300);
    expect(changes).toBe(seen);
  });
});
