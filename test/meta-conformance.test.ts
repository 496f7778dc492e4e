// Runs the MetaStore conformance suite against both backends: embedded antietcd (in this process,
// persistent in a temporary directory) and a real etcd started from /usr/bin/etcd. Then the one
// durability check that needs a process to die: antietcd hosted by a child, writes acknowledged,
// SIGKILL, restarted on the same directory, every acknowledged write present.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { EtcdClient } from "../core/meta/etcd-client.ts";
import { startEmbeddedMeta, type EmbeddedMeta } from "../core/meta/embedded.ts";
import { metaStoreConformance, unreachableConformance } from "../core/meta/store.conformance.ts";
import type { MetaStore } from "../core/meta/store.ts";
import { startEtcd, type EtcdFixture } from "./etcd-fixture.ts";

const repoRoot = resolve(import.meta.dir, "..");
const bun = process.execPath;

// Small enough that the suite's compaction test can outrun it with a few hundred writes.
const compactRevisions = 50;

async function fillRevisions(store: MetaStore, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await store.put(`/qstora/test/filler/k${i % 8}`, String(i));
}

describe("embedded antietcd", () => {
  let dir = "";
  let embedded: EmbeddedMeta | undefined;
  let port = 0;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "qstora-meta-"));
    embedded = await startEmbeddedMeta({ dir, port: 0, compactRevisions });
    port = embedded.port;
  });
  afterAll(async () => {
    await embedded?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  metaStoreConformance("embedded antietcd", () => ({
    urls: () => [embedded?.url ?? "http://127.0.0.1:1"],
    restart: async () => {
      await embedded?.stop();
      embedded = await startEmbeddedMeta({ dir, port, compactRevisions });
    },
    // antietcd compacts by itself once the revision runs compactRevisions*2 past the last compaction.
    compact: (store) => fillRevisions(store, compactRevisions * 3),
  }));

  test("port 0 picks a free loopback port; a taken port is IN_USE; a non-loopback address is refused", async () => {
    expect(embedded?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const other = mkdtempSync(join(tmpdir(), "qstora-meta-"));
    try {
      const e = await startEmbeddedMeta({ dir: other, port }).catch((x: unknown) => x);
      expect((e as { code?: string }).code).toBe("IN_USE");
      const f = await startEmbeddedMeta({ dir: other, host: "0.0.0.0", port: 0 }).catch((x: unknown) => x);
      expect((f as { code?: string }).code).toBe("CONFIG_INVALID");
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe("real etcd", () => {
  let etcd: EtcdFixture | undefined;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  metaStoreConformance("etcd 3.4", () => ({
    urls: () => [etcd?.url ?? "http://127.0.0.1:1"],
    restart: async () => {
      await etcd?.restart();
    },
    compact: async () => {
      await etcd?.compact();
    },
  }));
});

unreachableConformance();

describe("embedded antietcd in a process killed with SIGKILL", () => {
  async function host(dir: string): Promise<{ url: string; proc: ReturnType<typeof Bun.spawn> }> {
    const proc = Bun.spawn([bun, join(repoRoot, "core/meta/embedded-host.ts"), "--dir", dir, "--port", "0"], { stdout: "pipe", stderr: "inherit", cwd: repoRoot });
    const reader = proc.stdout.getReader();
    let text = "";
    const deadline = Date.now() + 15_000;
    while (!text.includes("\n")) {
      if (Date.now() > deadline) throw new Error("the metadata host did not start within 15 s");
      const { done, value } = await reader.read();
      if (done) throw new Error(`the metadata host exited before answering: ${text}`);
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    const line = text.split("\n")[0] ?? "";
    return { url: (JSON.parse(line) as { url: string }).url, proc };
  }

  test("every acknowledged write survives SIGKILL of the hosting process", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qstora-meta-kill-"));
    try {
      const first = await host(dir);
      const client = new EtcdClient({ endpoints: [first.url], requestTimeoutMs: 3_000 });
      const acknowledged: string[] = [];
      // Writes in flight when the kill lands may or may not persist; acknowledged ones must.
      // Eight writers at once, so that writes share dumps (group commit) when the kill lands.
      let stop = false;
      const writers = Array.from({ length: 8 }, (_, w) =>
        (async () => {
          for (let i = 0; !stop; i++) {
            try {
              await client.put(`/qstora/test/kill/w${w}-${i}`, String(i));
              acknowledged.push(`/qstora/test/kill/w${w}-${i}`);
            } catch {
              return;
            }
          }
        })(),
      );
      await Bun.sleep(500);
      first.proc.kill("SIGKILL");
      await first.proc.exited;
      stop = true;
      await Promise.all(writers);
      await client.close();
      expect(acknowledged.length).toBeGreaterThan(10);

      const second = await host(dir);
      const again = new EtcdClient({ endpoints: [second.url], requestTimeoutMs: 3_000 });
      const present = new Set((await again.list("/qstora/test/kill/")).map((kv) => kv.key));
      const lost = acknowledged.filter((k) => !present.has(k));
      console.log(`[meta] SIGKILL: ${acknowledged.length} acknowledged writes, ${lost.length} lost, ${present.size} present`);
      expect(lost).toEqual([]);
      await again.close();
      second.proc.kill("SIGTERM");
      await second.proc.exited;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
