// Helpers for the release tests (test/install.test.ts, test/green.test.ts): they run commands as
// a throwaway unprivileged user (created with useradd when missing, so the tests need root) with
// a fresh HOME and a PATH holding basic tools but no bun, node or npm. They never change anything
// for other users and never remove the user. Never imported by the product.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (or its timeout: code -1) and collects its output. */
export function run(cmd: string[], options: { timeoutMs?: number; cwd?: string } = {}): RunResult {
  const p = Bun.spawnSync(cmd, { cwd: options.cwd ?? "/", stdout: "pipe", stderr: "pipe", timeout: options.timeoutMs ?? 120_000 });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

export const testUser = "qstoratest";

// The commands install.sh and the tests' scripts use; no bun, node or npm among them.
const barePathTools = [
  "sh", "dash", "env", "curl", "wget", "sha256sum", "unzip", "mktemp", "rm", "mkdir", "cp", "mv", "chmod", "grep", "sed",
  "awk", "sort", "tail", "head", "cut", "uname", "id", "cat", "tr", "ls", "sleep", "dirname", "touch", "printf", "test",
];

/** A directory of symlinks to the basic tools, for use as the whole PATH. */
export function barePath(dir: string, tools: readonly string[] = barePathTools): string {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  for (const t of tools) {
    const where = Bun.which(t, { PATH: "/usr/local/bin:/usr/bin:/bin" });
    if (where === null) throw new Error(`the install tests need ${t} on this machine (Debian: see test/setup.sh)`);
    if (!existsSync(join(dir, t))) symlinkSync(where, join(dir, t));
  }
  return dir;
}

/** Creates the test user if missing. */
export function ensureTestUser(): void {
  if (process.getuid?.() !== 0) throw new Error("these tests run commands as a throwaway user: run them as root (CI does)");
  if (run(["id", testUser]).code === 0) return;
  const r = run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", testUser]);
  if (r.code !== 0) throw new Error(`useradd ${testUser} failed: ${r.stderr}`);
}

/** A fresh home directory owned by the test user. */
export function freshHome(prefix: string): string {
  const home = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(home, 0o755);
  const r = run(["chown", `${testUser}:`, home]);
  if (r.code !== 0) throw new Error(`chown ${home} failed: ${r.stderr}`);
  return home;
}

/** Runs a shell script as the test user with only HOME and PATH in its environment. */
export function asTestUser(script: string, options: { home: string; path: string; env?: Record<string, string>; timeoutMs?: number }): RunResult {
  const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
  return run(["runuser", "-u", testUser, "--", "env", "-i", `HOME=${options.home}`, `PATH=${options.path}`, ...env, "sh", "-c", script], {
    timeoutMs: options.timeoutMs ?? 300_000,
    cwd: options.home,
  });
}
