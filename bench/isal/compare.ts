// Runs ISA-L's anchor (../shared/tools/isal-bench.c, built here with gcc -O2 -lisal) beside
// bench/ec.bench.ts, alternating, three rounds, and prints the median figures and the ratios as
// the Markdown table of docs/PERFORMANCE.md. Needs gcc and Debian's libisal-dev.
//   bun bench/isal/compare.ts [--rounds=3] [--workers=2] [--shapes=4+2,8+3,16+4]
// "ISA-L x2" runs two isal-bench processes at once (one per core) and sums them: the fair
// partner of our one-worker-per-core figure. It must never be run by `bun test`: it takes minutes.

import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Figures {
  k: number;
  m: number;
  encode_mbps: number;
  decode_mbps: number;
  parity_fnv1a: string;
}

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, "").split("=", 2) as [string, string]));
const rounds = Number(args.get("rounds") ?? "3");
const workers = Number(args.get("workers") ?? "2");
const shapes = (args.get("shapes") ?? "4+2,8+3,16+4").split(",");
const len = 262144;
const root = new URL("../..", import.meta.url).pathname;
const bun = process.execPath;

function findSource(): string {
  for (const dir of [join(root, "../shared/tools"), join(root, "../../shared/tools")]) {
    if (existsSync(join(dir, "isal-bench.c"))) return join(dir, "isal-bench.c");
  }
  throw new Error("isal-bench.c not found in ../shared/tools");
}

function buildIsalBench(): string {
  const dir = join(tmpdir(), "qstora-isal-bench");
  mkdirSync(dir, { recursive: true });
  const binary = join(dir, "isal-bench");
  const r = Bun.spawnSync(["gcc", "-O2", "-o", binary, findSource(), "-lisal"], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`building isal-bench failed (install gcc and libisal-dev): ${r.stderr.toString()}`);
  return binary;
}

function jsonLines(text: string): Figures[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Figures);
}

async function runAll(commands: string[][]): Promise<Figures[][]> {
  const procs = commands.map((cmd) => Bun.spawn(cmd, { cwd: root, stdout: "pipe", stderr: "inherit" }));
  return Promise.all(procs.map(async (p) => jsonLines(await new Response(p.stdout).text())));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const isal = buildIsalBench();
const series = ["isal", "isal2", "ours", "oursWorkers"] as const;
const samples = new Map<string, { encode: number[]; decode: number[]; fnv: Set<string> }>();
const record = (series: string, f: Figures, scale = 1): void => {
  const key = `${series} ${f.k}+${f.m}`;
  const s = samples.get(key) ?? { encode: [], decode: [], fnv: new Set<string>() };
  s.encode.push(f.encode_mbps * scale);
  s.decode.push(f.decode_mbps * scale);
  s.fnv.add(f.parity_fnv1a);
  samples.set(key, s);
};

for (let round = 0; round < rounds; round++) {
  for (const shape of shapes) {
    const [k, m] = shape.split("+");
    const isalCmd = [isal, k!, m!, String(len)];
    for (const f of (await runAll([isalCmd]))[0]!) record("isal", f);
    const pair = await runAll([isalCmd, isalCmd]);
    const a = pair[0]![0]!;
    const b = pair[1]![0]!;
    record("isal2", { ...a, encode_mbps: a.encode_mbps + b.encode_mbps, decode_mbps: a.decode_mbps + b.decode_mbps });
  }
  const shapesArg = `--shapes=${shapes.join(",")}`;
  for (const f of (await runAll([[bun, "bench/ec.bench.ts", "--json", shapesArg, `--len=${len}`]]))[0]!) record("ours", f);
  for (const f of (await runAll([[bun, "bench/ec.bench.ts", "--json", shapesArg, `--len=${len}`, `--workers=${workers}`]]))[0]!) record("oursWorkers", f);
  console.error(`round ${round + 1}/${rounds} done`);
}

const mb = (x: number): string => (x / 1000).toFixed(1);
console.log(`| shape | ISA-L enc | ours enc (1 thread) | ratio | ISA-L dec | ours dec | ratio | ours enc (${workers} workers) | vs ISA-L 1 thread | ISA-L x${workers} enc | vs ISA-L x${workers} | parity |`);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const shape of shapes) {
  const get = (s: (typeof series)[number]) => samples.get(`${s} ${shape}`)!;
  const i = get("isal");
  const i2 = get("isal2");
  const o = get("ours");
  const w = get("oursWorkers");
  const same = i.fnv.size === 1 && o.fnv.size === 1 && [...i.fnv][0] === [...o.fnv][0] ? `identical (${[...i.fnv][0]})` : "DIFFERENT";
  const ie = median(i.encode);
  const oe = median(o.encode);
  const we = median(w.encode);
  const i2e = median(i2.encode);
  console.log(
    `| ${shape} | ${mb(ie)} | ${mb(oe)} | ${(oe / ie).toFixed(2)}x | ${mb(median(i.decode))} | ${mb(median(o.decode))} | ${(median(o.decode) / median(i.decode)).toFixed(2)}x | ${mb(we)} | ${(we / ie).toFixed(2)}x | ${mb(i2e)} | ${(we / i2e).toFixed(2)}x | ${same} |`,
  );
}
console.log(`\nGB/s of data (10^9 bytes), ${len}-byte shards, median of ${rounds} alternating rounds (each figure itself a median of 7 runs).`);
