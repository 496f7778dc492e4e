// The heartbeat driver against a real (embedded) store: beats counted and read back, a lost
// lease granted again, a removed node's beats stopped, the lease revoked on stop.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedMeta, type EmbeddedMeta } from "../meta/embedded.ts";
import { EtcdClient } from "../meta/etcd-client.ts";
import type { HeartbeatRecord } from "../cluster/liveness.ts";
import { silentLogger } from "../util/log.ts";
import { keys } from "./records.ts";
import { startHeartbeat } from "./heartbeat.ts";
import { until } from "../../test/helpers/wait.ts";

let dir = "";
let embedded: EmbeddedMeta | undefined;
let store: EtcdClient;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "qstora-heartbeat-"));
  embedded = await startEmbeddedMeta({ dir, port: 0 });
  store = new EtcdClient([embedded.url]);
});
afterAll(async () => {
  await store.close();
  await embedded?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function driver(nodeId: string, seen: HeartbeatRecord[][], removed: { yes: boolean }) {
  return startHeartbeat({
    store,
    nodeId,
    intervalMs: 100,
    leaseTtlSeconds: 2,
    startedAt: "t0",
    archives: () => [{ id: "a1", state: "online", sizeBytes: 100, writtenBytes: 10, freeBytes: 90 }],
    onBeats: (beats) => seen.push(beats),
    onRemoved: () => (removed.yes = true),
    logger: silentLogger,
  });
}

test("startHeartbeat() writes a beat each interval with a growing seq and the archives, and reads all back", async () => {
  await store.put(keys.node("n1"), "{}");
  const seen: HeartbeatRecord[][] = [];
  const hb = driver("n1", seen, { yes: false });
  await hb.beatNow();
  await until("three beats", () => seen.length >= 3);
  const mine = seen.map((beats) => beats.find((b) => b.nodeId === "n1")?.seq);
  expect(mine.slice(0, 3)).toEqual([1, 2, 3]);
  expect(seen[0]?.[0]?.archives).toEqual([{ id: "a1", state: "online", sizeBytes: 100, writtenBytes: 10, freeBytes: 90 }]);
  await hb.stop();
  // Stopped cleanly: the lease is revoked, so the beat is gone at once.
  expect(await store.get(keys.aliveNode("n1"))).toBeUndefined();
});

test("startHeartbeat() grants a new lease when its lease is lost, and beats on", async () => {
  await store.put(keys.node("n2"), "{}");
  const seen: HeartbeatRecord[][] = [];
  const hb = driver("n2", seen, { yes: false });
  await hb.beatNow();
  const kv = await store.get(keys.aliveNode("n2"));
  expect(kv?.lease).toBeDefined();
  await store.leaseRevoke(kv?.lease as string);
  await until("a beat under a new lease", async () => {
    const now = await store.get(keys.aliveNode("n2"));
    return now?.lease !== undefined && now.lease !== kv?.lease;
  });
  await hb.stop();
});

test("startHeartbeat() stops and reports when the node's record is gone", async () => {
  await store.put(keys.node("n3"), "{}");
  const removed = { yes: false };
  const hb = driver("n3", [], removed);
  await hb.beatNow();
  await store.delete(keys.node("n3"));
  await until("the removal noticed", () => removed.yes);
  expect(await store.get(keys.aliveNode("n3"))).toBeUndefined();
  await hb.stop();
});
