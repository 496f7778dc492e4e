// Micro-benchmark: 4 KiB writes through coordinator -> primary -> two secondaries (replica:3,
// three in-process nodes with their own archives and Peers on loopback) beside the same writes
// into one local archive unit, in one run: queue-depth-1 latency and queue-depth-32 IOPS.
//   node_modules/.bin/bun core/replica/replication.bench.ts [seconds per phase, default 3] [--remote]
// The coordinator runs on the primary's node, as the daemon places it (placement.ts); --remote
// puts it on a node of its own, one more network round trip per write.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Archive } from "../archive/archive.ts";
import { pageBytes } from "../archive/format.ts";
import { ReplicatedSegment } from "./coordinator.ts";
import { TestReplicaCluster, testClusterId, testVolumeId, type SegmentPlan } from "./test-cluster.ts";

const seconds = Number(process.argv.slice(2).find((a) => !a.startsWith("--")) ?? 3);
const remote = process.argv.includes("--remote");
const segmentBytes = 16 << 20;
const pages = segmentBytes / pageBytes;
const plan: SegmentPlan = { segment: "bench/s0", index: 0, policy: "replica:3", dataNodes: [0, 1, 2], arbiterNode: null, sizeBytes: segmentBytes };

let seed = 12345;
function nextPage(): number {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed % pages;
}
const data = new Uint8Array(pageBytes).fill(0x5a);

type Write = (offsetBytes: number) => Promise<void> | void;

async function qd1(write: Write): Promise<{ medianUs: number; p99Us: number; ops: number }> {
  const lat: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    await write(nextPage() * pageBytes);
    lat.push((performance.now() - t) * 1000);
  }
  lat.sort((a, b) => a - b);
  return { medianUs: lat[Math.floor(lat.length / 2)] ?? 0, p99Us: lat[Math.floor(lat.length * 0.99)] ?? 0, ops: lat.length };
}

async function qd32(write: Write): Promise<number> {
  let ops = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      await write(nextPage() * pageBytes);
      ops++;
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  return ops / ((performance.now() - start) / 1000);
}

// The local baseline: one archive unit, written synchronously as LocalUnits does.
const dir = mkdtempSync(join(tmpdir(), "qstora-replbench-"));
const archive = Archive.create({ path: join(dir, "local.img"), sizeBytes: 64 << 20, clusterId: testClusterId });
const created = archive.createUnit({ volumeId: testVolumeId, segmentIndex: 0, sizeBytes: segmentBytes });
if (!created.ok) throw new Error(created.message);
const local = created.value;
const localWrite: Write = (o) => {
  const r = local.write(o, data);
  if (!r.ok) throw new Error(r.message);
};

const cluster = new TestReplicaCluster(3, [plan]);
const primaryNode = cluster.nodes[0]?.running;
if (primaryNode === null || primaryNode === undefined) throw new Error("node 0 not running");
const seg = remote ? cluster.coordinator(plan.segment) : new ReplicatedSegment({ router: primaryNode.router, store: cluster.store, segment: plan.segment, client: `client:n0/${plan.segment}` });
const replWrite: Write = async (o) => {
  const r = await seg.write(o, data);
  if (!r.ok) throw new Error(r.message);
};
// Warm up: connections, the primary's lease, the page cache of both.
for (let i = 0; i < 200; i++) {
  await replWrite(nextPage() * pageBytes);
  localWrite(nextPage() * pageBytes);
}

const l1 = await qd1(localWrite);
const r1 = await qd1(replWrite);
const l32 = await qd32(localWrite);
const r32 = await qd32(replWrite);
const f = (n: number) => n.toFixed(0).padStart(9);
console.log(`4 KiB random writes, ${seconds} s per phase, coordinator ${remote ? "on a node of its own" : "on the primary's node"}`);
console.log(`                                          local archive   replica:3 (loopback)   ratio`);
console.log(`QD1 latency median (µs)                        ${f(l1.medianUs)}   ${f(r1.medianUs)}              ${(r1.medianUs / l1.medianUs).toFixed(1)}x`);
console.log(`QD1 latency p99 (µs)                           ${f(l1.p99Us)}   ${f(r1.p99Us)}              ${(r1.p99Us / l1.p99Us).toFixed(1)}x`);
console.log(`QD32 IOPS                                      ${f(l32)}   ${f(r32)}              ${(r32 / l32).toFixed(2)}x`);
cluster.close();
archive.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
