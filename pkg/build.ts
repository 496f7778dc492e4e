// npm run build: compiles cli/main.ts into dist/qstora, one executable that runs with no
// node_modules and no Bun installed. The version comes from package.json and the commit from git
// ("+dirty" when tracked files have changes), both baked in with --define (see core/version.ts).
// It writes only the output file it is given and must never touch node_modules or the sources.
//
// A build takes about 0.4 s (bundle ~0.1 s, then the runtime is copied with the bundle appended),
// so the test suite simply builds every time instead of guessing whether dist/qstora is stale.
import { mkdirSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import packageJson from "../package.json" with { type: "json" };
import { assert } from "../core/util/assert.ts";

export const repoRoot = resolve(import.meta.dir, "..");

/** The product's entry point. */
export const entryPoint = join(repoRoot, "cli/main.ts");

// A hung git or bundler should fail the build rather than hang the test suite.
const gitTimeoutMs = 10_000;
const compileTimeoutMs = 120_000;

function git(args: string[]): string | undefined {
  const r = Bun.spawnSync(["git", ...args], { cwd: repoRoot, stdout: "pipe", stderr: "pipe", timeout: gitTimeoutMs });
  return r.exitCode === 0 ? r.stdout.toString().trim() : undefined;
}

/** `git rev-parse --short HEAD`, with "+dirty" when tracked files differ from it. */
export function buildCommit(): string {
  const rev = git(["rev-parse", "--short", "HEAD"]);
  if (rev === undefined) return "unknown";
  // Untracked files are not part of a release, and other engineers' scratch files would mark
  // every build dirty.
  const status = git(["status", "--porcelain", "--untracked-files=no"]);
  return status === "" ? rev : `${rev}+dirty`;
}

/** Seconds since 1970 of the HEAD commit: the timestamp inside release zips. */
export function commitTimeSeconds(): number {
  const t = Number(git(["log", "-1", "--format=%ct"]) ?? "NaN");
  // Outside a git checkout there is no commit time: fall back to a fixed date, not the clock,
  // so that packaging stays reproducible.
  return Number.isInteger(t) && t > 0 ? t : Date.UTC(2026, 0, 1) / 1000;
}

export interface CompileOptions {
  readonly outfile: string;
  /** Bun's cross-compile target, e.g. "bun-linux-arm64"; the host when absent. */
  readonly target?: string;
  /** The Bun runtime of the target (Bun would otherwise download it; there is no network). */
  readonly executablePath?: string;
  /** Defaults to cli/main.ts; tests compile a probe with the same options. */
  readonly entry?: string;
  readonly version?: string;
  readonly commit?: string;
}

/** The `bun build` command line for a compile: pure, so that tests can read it. */
export function compileArgs(bun: string, options: CompileOptions): string[] {
  assert(options.outfile.length > 0, "outfile given");
  const args = [
    bun,
    "build",
    "--compile",
    options.entry ?? entryPoint,
    "--outfile",
    options.outfile,
    "--define",
    `QSTORA_BUILD_VERSION=${JSON.stringify(options.version ?? packageJson.version)}`,
    "--define",
    `QSTORA_BUILD_COMMIT=${JSON.stringify(options.commit ?? buildCommit())}`,
    // A compiled Bun executable reads .env and bunfig.toml from its working directory unless
    // told not to: a stray .env would then change QSTORA_DATA_DIR, and a bunfig.toml could
    // preload code. The product's settings come only from its flags, its environment and its
    // own config file.
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    "--no-compile-autoload-tsconfig",
    "--no-compile-autoload-package-json",
    // antietcd loads etcd3 (and grpc) only in its etcd-proxy mode, which qstora never uses.
    "--external",
    "etcd3",
  ];
  if (options.target !== undefined) args.push(`--target=${options.target}`);
  if (options.executablePath !== undefined) args.push(`--compile-executable-path=${options.executablePath}`);
  return args;
}

export type CompileResult = { ok: true; ms: number } | { ok: false; reason: string };

/**
 * Compiles into a temporary directory beside `outfile` and renames the result into place, so
 * that a failed or interrupted build never leaves a truncated executable where a good one was.
 * The temporary file keeps the final name: Bun embeds it (as /$bunfs/root/NAME, seen in stack
 * traces), and a varying name would make every build differ.
 */
export function compile(options: CompileOptions): CompileResult {
  const temporaryDir = join(dirname(options.outfile), `.build-${process.pid}`);
  rmSync(temporaryDir, { recursive: true, force: true });
  mkdirSync(temporaryDir, { recursive: true });
  const temporary = join(temporaryDir, basename(options.outfile));
  const started = performance.now();
  const r = Bun.spawnSync(compileArgs(process.execPath, { ...options, outfile: temporary }), {
    cwd: repoRoot,
    stdout: "pipe",
    stderr: "pipe",
    timeout: compileTimeoutMs,
  });
  if (r.exitCode !== 0) {
    rmSync(temporaryDir, { recursive: true, force: true });
    const why = r.exitCode === null ? `timed out after ${compileTimeoutMs} ms` : `exit ${r.exitCode}`;
    return { ok: false, reason: `bun build of ${options.outfile} failed (${why}):\n${r.stderr.toString()}${r.stdout.toString()}` };
  }
  renameSync(temporary, options.outfile);
  rmSync(temporaryDir, { recursive: true, force: true });
  return { ok: true, ms: performance.now() - started };
}

if (import.meta.main) {
  const outfile = join(repoRoot, "dist/qstora");
  const commit = buildCommit();
  const r = compile({ outfile, commit });
  if (!r.ok) {
    console.error(r.reason);
    process.exit(1);
  }
  // The executable must run and report what was baked in: catches a bundle that compiles but
  // cannot load (a missing asset, a module that needs node_modules at run time).
  const expected = `qstora ${packageJson.version} (${commit})`;
  const v = Bun.spawnSync([outfile, "--version"], { stdout: "pipe", stderr: "pipe", timeout: 30_000, cwd: "/" });
  if (v.exitCode !== 0 || v.stdout.toString().trim() !== expected) {
    console.error(`dist/qstora --version printed ${JSON.stringify(v.stdout.toString())}, expected "${expected}":\n${v.stderr.toString()}`);
    process.exit(1);
  }
  console.log(`built ${outfile} (${expected}) in ${r.ms.toFixed(0)} ms`);
}
