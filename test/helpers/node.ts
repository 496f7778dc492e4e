// Test helpers that drive the real executable (dist/qstora) the way an operator would: a data
// directory in /tmp, a loopback address of its own (127.x.y.z) so that every node uses the
// standard ports, and real clients. Nothing here imports the daemon's code.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";

import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { until } from "./wait.ts";

export const repoRoot = resolve(import.meta.dir, "../..");
export const qstoraBin = join(repoRoot, "dist/qstora");
export const sharedTools = [resolve(repoRoot, "../shared/tools"), "/work/shared/tools"].find((d) => existsSync(join(d, "iscsi-load.c"))) ?? resolve(repoRoot, "../shared/tools");
export const iscsiLoadBin = join(repoRoot, "test/.cache/iscsi-load");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string[], options: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): RunResult {
  const p = Bun.spawnSync(cmd, {
    env: { ...process.env, ...options.env },
    cwd: options.cwd ?? repoRoot,
    stdout: "pipe",
    stderr: "pipe",
    timeout: options.timeoutMs ?? 120_000,
  });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/**
 * Reads until `ok` holds; throws, with the last reading, after `timeoutMs`. Each node's status is
 * as old as its last heartbeat read (an interval), so a view of other nodes is awaited, never
 * asserted at once.
 */
export async function waitFor<T>(what: string, read: () => T, ok: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  let v: T | undefined;
  try {
    await until(what, () => ok((v = read())), timeoutMs, 300); // reads at once, then every 300 ms
  } catch {
    throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v).slice(0, 2000)}`);
  }
  return v as T;
}

/** A loopback address no other test file is likely to use at the same time. */
export function randomLoopback(): string {
  const b = () => 1 + Math.floor(Math.random() * 250);
  return `127.${b()}.${b()}.${b()}`;
}

/**
 * Starts iscsi-load in the background with SIGPIPE ignored: when the target goes away under
 * load, libiscsi's next write would otherwise kill it before it saves its write history.
 */
const loadEndGraceMs = 15_000;

export function spawnLoad(args: string[], outFile: string, options: { wrap?: string[] } = {}): { pid: number; finished(): Promise<void>; output(): string; stderr(): string } {
  const quoted = [...(options.wrap ?? []), iscsiLoadBin, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  // Output and stderr go to files: a stalled target makes iscsi-load print a line per failed I/O
  // (at most 20), and an unread pipe would block it.
  const p = Bun.spawn(["sh", "-c", `trap '' PIPE; exec ${quoted} > '${outFile}' 2>'${outFile}.err'`], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  // When the run is due to end (-t SECS, default 10): the grace below counts from then, so that
  // finished() may be called before it.
  const t = args.indexOf("-t");
  const dueAt = Date.now() + 1000 * (t >= 0 ? Number(args[t + 1] ?? "10") : 10);
  return {
    // sh execs iscsi-load (through `wrap`, ip netns exec, which execs it too): the same process.
    pid: p.pid,
    // iscsi-load saves its history as soon as its connection is lost, but its final logout can
    // hang on a target that is gone: give it 15 s, then stop it (the history is on disk by then).
    finished: async () => {
      const guard = setTimeout(() => p.kill(9), Math.max(0, dueAt - Date.now()) + loadEndGraceMs);
      await p.exited;
      clearTimeout(guard);
    },
    output: () => readFileSync(outFile, "utf8"),
    /** What it printed of its failed I/Os. */
    stderr: () => {
      try {
        return readFileSync(`${outFile}.err`, "utf8");
      } catch {
        return "";
      }
    },
  };
}

export class TestNode {
  readonly dir: string;
  readonly dataDir: string;
  readonly address: string;

  /** Prefix of every command run for this node, e.g. ["ip", "netns", "exec", NAME] for a namespace. */
  readonly wrap: string[];

  constructor(prefix = "qstora-test-", options: { address?: string; wrap?: string[] } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
    this.dataDir = join(this.dir, "data");
    this.address = options.address ?? randomLoopback();
    this.wrap = options.wrap ?? [];
  }

  get portal(): string {
    return `${this.address}:3260`;
  }

  url(iqn: string, lun = 0): string {
    return `iscsi://${this.portal}/${iqn}/${lun}`;
  }

  /** Runs `qstora ARGS --data-dir DIR`. */
  q(...args: string[]): RunResult {
    return run([...this.wrap, qstoraBin, ...args, "--data-dir", this.dataDir]);
  }

  qJson<T>(...args: string[]): T {
    const r = this.q(...args, "--json");
    if (r.code !== 0) throw new Error(`qstora ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return JSON.parse(r.stdout) as T;
  }

  init(archives: string[] = [`${this.dir}/a1.img:2G`], extra: string[] = [], name = "test"): RunResult {
    return run([...this.wrap, qstoraBin, "init", ...archives.flatMap((a) => ["--archive", a]), "--address", this.address, "--name", name, "--data-dir", this.dataDir, ...extra]);
  }

  /** init + a target + a LUN; returns the LUN's URL. */
  initWithLun(size = "1G", iqn = "iqn.2026-11.org.qstora:test"): string {
    const r = this.init();
    if (r.code !== 0) throw new Error(`init failed: ${r.stderr}${r.stdout}`);
    this.ok("target", "create", iqn);
    this.ok("lun", "create", "--target", iqn, "--size", size);
    return this.url(iqn, 0);
  }

  ok(...args: string[]): RunResult {
    const r = this.q(...args);
    if (r.code !== 0) throw new Error(`qstora ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r;
  }

  pid(): number | null {
    try {
      const pid = Number.parseInt(readFileSync(join(this.dataDir, "qstora.pid"), "utf8"), 10);
      return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** The daemon log's last `max` lines that match `pattern`: for a failed wait's message. */
  logLines(pattern: RegExp, max = 30): string {
    let text = "";
    try {
      text = readFileSync(join(this.dataDir, "qstora.log"), "utf8");
    } catch {
      return "(no log)";
    }
    return text.split("\n").filter((l) => pattern.test(l)).slice(-max).map((l) => l.slice(0, 400)).join("\n");
  }

  kill9(): void {
    this.signal("SIGKILL");
  }

  /** Sends the daemon a signal (SIGKILL, SIGSTOP, SIGCONT); nothing if it is not running. */
  signal(name: "SIGKILL" | "SIGSTOP" | "SIGCONT"): void {
    const pid = this.pid();
    if (pid !== null) {
      try {
        process.kill(pid, name);
      } catch {
        // Already gone.
      }
    }
  }

  /** Stops the daemon (kill -9 if stop fails) and removes every file. */
  cleanup(): void {
    if (existsSync(this.dataDir)) {
      const r = this.q("stop");
      if (r.code !== 0) this.kill9();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * With QSTORA_TEST_LOGS=DIR, copies each node's qstora.log to DIR/<its temporary directory>.log
 * (call it before cleanup, in afterAll): the daemons' side of a failed run, kept for reading.
 */
export function saveLogs(nodes: TestNode[]): void {
  const dir = process.env.QSTORA_TEST_LOGS;
  if (dir === undefined || dir === "") return;
  mkdirSync(dir, { recursive: true });
  for (const n of nodes) {
    const log = join(n.dataDir, "qstora.log");
    if (existsSync(log)) copyFileSync(log, join(dir, `${basename(n.dir)}.log`));
  }
}
