// Helpers for the tests of replicated LUNs on real daemons (test/replicated-lun.test.ts,
// test/replica-faults.test.ts): a cluster of TestNodes formed with init and join, the LUN view
// that `lun list --json` prints, where each segment's units are, and qemu-io checks of a pattern.
// Like node.ts, nothing here imports the daemon's code.
import { expect } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { iscsiLoadBin, qstoraBin, run, TestNode } from "./node.ts";

export interface SegmentView {
  index: number;
  /** "role:unit@node" as placed (role primary, secondary or arbiter). */
  units: string[];
  state: string;
  epoch: number;
  primary: string | null;
  inactive: string[];
  reason: string | null;
}

export interface LunView {
  target: string;
  lun: number;
  redundancy: string;
  segments?: SegmentView[];
}

export const MiB = 1 << 20;

/**
 * Forms a cluster: the first node inits (one archive of `archiveSize`, default 256M, and
 * `initArgs`, e.g. --etcd URL), every other joins it. Returns the nodes by node id.
 */
export function formCluster(nodes: Array<{ node: TestNode; name: string; archiveSize?: string }>, options: { archiveSize?: string; initArgs?: string[] } = {}): Map<string, TestNode> {
  const sizeOf = (n: { archiveSize?: string }): string => n.archiveSize ?? options.archiveSize ?? "256M";
  const [first, ...rest] = nodes;
  if (first === undefined) throw new Error("a cluster needs a node");
  const init = first.node.init([`${first.node.dir}/a1.img:${sizeOf(first)}`], options.initArgs ?? [], first.name);
  if (init.code !== 0) throw new Error(`init failed: ${init.stderr}${init.stdout}`);
  const token = first.node.ok("token", "create", "--ttl", "1h").stdout.trim();
  for (const n of rest) {
    const { node, name } = n;
    const r = run([...node.wrap, qstoraBin, "join", first.node.address, "--token", token, "--archive", `${node.dir}/a1.img:${sizeOf(n)}`, "--address", node.address, "--name", name, "--data-dir", node.dataDir]);
    if (r.code !== 0) throw new Error(`join of ${name} failed: ${r.stderr}${r.stdout}`);
  }
  const byName = new Map(nodes.map((n) => [n.name, n.node]));
  const byId = new Map<string, TestNode>();
  for (const n of first.node.qJson<Array<{ id: string; name: string }>>("node", "list")) {
    const t = byName.get(n.name);
    if (t !== undefined) byId.set(n.id, t);
  }
  return byId;
}

/** The segments of one LUN as `node` lists them. */
export function segmentsOf(node: TestNode, target: string, lun = 0): SegmentView[] {
  return node.qJson<LunView[]>("lun", "list").find((l) => l.target === target && l.lun === lun)?.segments ?? [];
}

/** Node id of the unit placed with `role`. */
export function nodeOfRole(s: SegmentView, role: "primary" | "secondary" | "arbiter"): string {
  return (s.units.find((u) => u.startsWith(`${role}:`)) ?? "").split("@")[1] ?? "";
}

/** Node id of the segment's current primary (the recorded membership's). */
export function nodeOfPrimary(s: SegmentView): string {
  return (s.units.find((u) => s.primary !== null && u.includes(`:${s.primary}@`)) ?? "").split("@")[1] ?? "";
}

/** Node id of every data unit that is not the current primary (the secondaries, active or not). */
export function nodesOfSecondaries(s: SegmentView): string[] {
  return s.units.filter((u) => !u.startsWith("arbiter:") && !(s.primary !== null && u.includes(`:${s.primary}@`))).map((u) => u.split("@")[1] ?? "");
}

export function qemu(url: string, cmds: string[], options: { wrap?: string[] } = {}): { code: number; out: string } {
  // Generous: a 64 MiB write to three copies takes minutes on the shared machine at its worst.
  const r = run([...(options.wrap ?? []), "qemu-io", "-f", "raw", ...cmds.flatMap((c) => ["-c", c]), url], { timeoutMs: 240_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

/** qemu-io in the background (for an I/O that is expected to wait). */
export function qemuAsync(url: string, cmds: string[], options: { wrap?: string[] } = {}): { done: Promise<{ code: number; out: string }>; finished(): boolean } {
  const p = Bun.spawn([...(options.wrap ?? []), "qemu-io", "-f", "raw", ...cmds.flatMap((c) => ["-c", c]), url], { stdout: "pipe", stderr: "pipe" });
  let over = false;
  const done = (async () => {
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    const code = await p.exited;
    over = true;
    return { code, out: `${out}${err}` };
  })();
  return { done, finished: () => over };
}

/** The write succeeded: exit 0 and no error printed. */
export function expectWritten(r: { code: number; out: string }): void {
  expect(r.out).not.toContain("error");
  expect(r.out).not.toContain("failed");
  expect(r.code).toBe(0);
}

export function expectPattern(url: string, pattern: number, offset: number, length: number, options: { wrap?: string[] } = {}): void {
  const r = qemu(url, [`read -P 0x${pattern.toString(16)} ${offset} ${length}`], options);
  expect(r.out).not.toContain("Pattern verification failed");
  expect(r.out).not.toContain("error");
  expect(r.code).toBe(0);
}

/** iscsi-load's JSON line. */
export interface LoadResult {
  iops: number;
  ios: number;
  errors: number;
  verify_failures: number;
  checked: number;
  flushes: number;
  p99_us: number;
  p999_us: number;
}

export function loadResult(output: string): LoadResult {
  const line = output.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  if (line === undefined) throw new Error(`iscsi-load printed no result: ${output}`);
  return JSON.parse(line) as LoadResult;
}

/**
 * Reads every block of the range once and checks it against the write history iscsi-load saved
 * (-S): every acknowledged write must be there, nothing corrupt or of another offset.
 */
export function verifyEveryBlock(url: string, history: string, rangeBytes: number, seed: number, options: { wrap?: string[] } = {}): LoadResult {
  const r = run([...(options.wrap ?? []), iscsiLoadBin, "-m", "verify", "-L", history, "-R", String(rangeBytes), "-s", String(seed), "-q", "16", url], { timeoutMs: 300_000 });
  const res = loadResult(r.stdout);
  expect(`${res.errors} errors, ${res.verify_failures} verify failures`).toBe("0 errors, 0 verify failures");
  expect(res.checked).toBe(rangeBytes / 4096);
  expect(r.code).toBe(0);
  return res;
}

export interface Pauses {
  longestPauseMs: number;
  /** Pauses of a second or more: `at` the wall clock (ms) of the last progress before it. */
  pauses: Array<{ atMs: number; at: number; ms: number }>;
}

/** Starts progress-sampler.ts on process `pid` (an iscsi-load); its result once that exited. */
export function samplePauses(pid: number, out: string, options: { wrap?: string[] } = {}): () => Promise<Pauses> {
  const p = Bun.spawn([process.execPath, join(import.meta.dir, "progress-sampler.ts"), String(pid), out, "100", "256", ...(options.wrap ?? [])], { stdout: "ignore", stderr: "inherit" });
  return async () => {
    await p.exited;
    return JSON.parse(readFileSync(out, "utf8")) as Pauses;
  };
}

export function describePauses(p: Pauses): string {
  return `longest pause ${p.longestPauseMs} ms; pauses of 1 s or more (s from the start + ms): ${p.pauses.map((x) => `${(x.atMs / 1000).toFixed(1)}+${x.ms}`).join(" ") || "none"}`;
}
