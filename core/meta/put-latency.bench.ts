// Put latency of the embedded store as its database grows: antietcd rewrites and fsyncs the whole
// database on every change, so latency grows with size. Run: bun core/meta/put-latency.bench.ts
// Writes only under a temporary directory; never touches a data directory in use.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedMeta } from "./embedded.ts";
import { EtcdClient } from "./etcd-client.ts";

const dir = mkdtempSync(join(tmpdir(), "qstora-meta-bench-"));
const embedded = await startEmbeddedMeta({ dir, port: 0 });
const store = new EtcdClient({ endpoints: [embedded.url], requestTimeoutMs: 30_000 });
const value = JSON.stringify({ pad: "x".repeat(300) });
let loaded = 0;
for (const size of [0, 1_000, 3_000]) {
  while (loaded < size) {
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.put(`/qstora/bench/fill/k${loaded + i}`, value)));
    loaded += 50;
  }
  const samples: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t0 = performance.now();
    await store.put(`/qstora/bench/hot/k${i % 10}`, JSON.stringify({ i, pad: "y".repeat(200) }));
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  const q = (f: number): string => (samples[Math.min(samples.length - 1, Math.floor(f * samples.length))] ?? 0).toFixed(2);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 50 }, (_, i) => store.put(`/qstora/bench/hot/c${i}`, `${size}:${i}`)));
  const concurrentMs = performance.now() - t0;
  console.log(`keys=${size} put ms p50=${q(0.5)} p90=${q(0.9)} p99=${q(0.99)}; 50 concurrent puts in ${concurrentMs.toFixed(0)} ms`);
}
await store.close();
await embedded.stop();
rmSync(dir, { recursive: true, force: true });
