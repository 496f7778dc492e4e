// Erasure-coding benchmark, the twin of ../shared/tools/isal-bench.c: same data generator, same
// measure (MB of data per second, median of 7 runs of 0.2 s after a 0.4 s warm-up), same decode
// (lose data shards 0..min(m,k)-1, rebuild them from the next k survivors), same JSON fields.
//   bun bench/ec.bench.ts [--json] [--kernel=auto|wasm|isal|wasm-simd|wasm-relaxed-simd|typescript]
//                         [--workers=N] [--shapes=4+2,8+3,16+4] [--len=262144]
// --workers=N runs one Bun Worker per stripe stream (N = cores for "one worker per core"), each
// with its own kernel and stripe, all measuring at once; the figures are their sum.
// A benchmark, not a test: it must never be run by `bun test`.

import { assert } from "../core/util/assert.ts";
import { EcCodec } from "../core/ec/codec.ts";
import { loadEcKernel, type EcKernelChoice } from "../core/ec/engine.ts";
import type { EcKernel } from "../core/ec/kernel.ts";
import { fillXorshift, fnv1aHex } from "../core/ec/xorshift-fill.ts";
import { wasmKernelSupport } from "../core/ec/wasm-kernel.ts";

interface Job {
  readonly k: number;
  readonly m: number;
  readonly len: number;
  readonly kernel: EcKernelChoice;
}

interface Figures {
  readonly k: number;
  readonly m: number;
  readonly len: number;
  readonly encode_mbps: number;
  readonly decode_mbps: number;
  readonly parity_fnv1a: string;
}

const warmUpSeconds = 0.4;
const runSeconds = 0.2;
const runs = 7;

function measure(k: number, len: number, step: () => void): number {
  const t0 = performance.now();
  while (performance.now() - t0 < warmUpSeconds * 1000) step();
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) {
    let n = 0;
    const s = performance.now();
    let e: number;
    do {
      step();
      n++;
      e = performance.now();
    } while (e - s < runSeconds * 1000);
    rates.push((k * len * n) / ((e - s) / 1000) / 1e6);
  }
  rates.sort((a, b) => a - b);
  return rates[runs >> 1]!;
}

function alloc(kernel: EcKernel, bytes: number): Uint8Array {
  const s = kernel.allocShard(bytes);
  assert(s !== null, "benchmark stripe does not fit the kernel's arena");
  return s;
}

/** One shape on this thread. `ready` runs after set-up and before timing (worker barrier). */
async function runShape(job: Job, ready: () => Promise<void>): Promise<Figures> {
  const { k, m, len } = job;
  const kernel = loadEcKernel({ kernel: job.kernel, arenaBytes: (k + 2 * m + 2) * len + (8 << 20) });
  const codec = new EcCodec(kernel, { k, m });
  const shards: Uint8Array[] = [];
  for (let i = 0; i < k + m; i++) shards.push(alloc(kernel, len));
  fillXorshift(shards.slice(0, k));
  const data = shards.slice(0, k);
  const parity = shards.slice(k);
  codec.encode(data, parity);
  const fingerprint = fnv1aHex(parity);

  const lost = Math.min(m, k);
  const missing = [...Array(lost).keys()];
  const stripe = [...shards];
  for (const i of missing) stripe[i] = alloc(kernel, len);
  const result = codec.reconstruct(stripe, missing);
  assert(result.ok);
  for (const i of missing) assert(Buffer.from(stripe[i]!).equals(shards[i]!), "decode mismatch");

  await ready();
  const encodeMbps = measure(k, len, () => codec.encode(data, parity));
  const decodeMbps = measure(k, len, () => codec.reconstruct(stripe, missing));
  codec.release();
  return { k, m, len, encode_mbps: Math.round(encodeMbps), decode_mbps: Math.round(decodeMbps), parity_fnv1a: fingerprint };
}

type ToWorker = { type: "job"; job: Job } | { type: "go" };
type FromWorker = { type: "ready" } | { type: "done"; figures: Figures };

async function runWorkers(job: Job, count: number): Promise<Figures> {
  const workers = Array.from({ length: count }, () => new Worker(new URL(import.meta.url).href));
  const ready: Promise<void>[] = [];
  const done: Promise<Figures>[] = [];
  for (const w of workers) {
    let onReady!: () => void;
    let onDone!: (f: Figures) => void;
    ready.push(new Promise<void>((r) => (onReady = r)));
    done.push(new Promise<Figures>((r) => (onDone = r)));
    w.onmessage = (e: MessageEvent<FromWorker>) => {
      if (e.data.type === "ready") onReady();
      else onDone(e.data.figures);
    };
    w.postMessage({ type: "job", job } satisfies ToWorker);
  }
  await Promise.all(ready);
  for (const w of workers) w.postMessage({ type: "go" } satisfies ToWorker);
  const all = await Promise.all(done);
  for (const w of workers) w.terminate();
  const sum = (f: (x: Figures) => number): number => all.reduce((a, x) => a + f(x), 0);
  return { ...all[0]!, encode_mbps: sum((x) => x.encode_mbps), decode_mbps: sum((x) => x.decode_mbps) };
}

// Inside a Bun Worker the global scope is the worker's side of the channel (Bun's worker docs).
declare const self: Worker;

function workerMain(): void {
  let go!: () => void;
  const started = new Promise<void>((r) => (go = r));
  self.onmessage = async (e: MessageEvent<ToWorker>) => {
    if (e.data.type === "go") return go();
    const figures = await runShape(e.data.job, async () => {
      postMessage({ type: "ready" } satisfies FromWorker);
      await started;
    });
    postMessage({ type: "done", figures } satisfies FromWorker);
  };
}

async function main(): Promise<void> {
  const args = new Map<string, string>();
  for (const a of process.argv.slice(2)) {
    const [key, value] = a.replace(/^--/, "").split("=", 2);
    args.set(key!, value ?? "true");
  }
  const json = args.has("json");
  const workers = Number(args.get("workers") ?? "0");
  const len = Number(args.get("len") ?? "262144");
  let kernel = (args.get("kernel") ?? "wasm") as EcKernelChoice | "wasm";
  // "wasm" (the default): the best wasm form this runtime validates, the figure the issue asks for.
  if (kernel === "wasm") kernel = wasmKernelSupport().relaxed ? "wasm-relaxed-simd" : "wasm-simd";
  const shapes = (args.get("shapes") ?? "4+2,8+3,16+4").split(",").map((s) => s.split("+").map(Number) as [number, number]);
  if (!json) console.log(`kernel ${kernel}, ${workers > 0 ? `${workers} workers` : "main thread"}, ${len}-byte shards`);
  for (const [k, m] of shapes) {
    const job: Job = { k, m, len, kernel };
    const figures = workers > 0 ? await runWorkers(job, workers) : await runShape(job, async () => {});
    if (json) console.log(JSON.stringify(figures));
    else console.log(`${k}+${m}: encode ${figures.encode_mbps} MB/s, decode ${figures.decode_mbps} MB/s, parity ${figures.parity_fnv1a}`);
  }
}

if (Bun.isMainThread) await main();
else workerMain();
