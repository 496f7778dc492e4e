// For tests: a real embedded store in a temporary directory for one test file (or describe
// block), started before its tests and removed after them, with a client on it. Never used by
// the daemon.
import { afterAll, beforeAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedMeta, type EmbeddedMeta } from "./embedded.ts";
import { EtcdClient } from "./etcd-client.ts";

/** Registers the store's start and removal; `client()` is valid inside the tests. */
export function scratchStore(prefix: string): { client(): EtcdClient } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let store: EmbeddedMeta | undefined;
  let client: EtcdClient | undefined;
  beforeAll(async () => {
    store = await startEmbeddedMeta({ dir, port: 0 });
    client = new EtcdClient([store.url]);
  });
  afterAll(async () => {
    await client?.close();
    await store?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    client: () => {
      if (client === undefined) throw new Error("scratchStore: the store is not started (use client() inside a test)");
      return client;
    },
  };
}
