// npm run package: the release files in dist/: qstora-<version>-linux-{x64,x64-baseline,arm64}.zip,
// each holding qstora-<version>-linux-<variant>/ with the qstora executable, README.md, LICENSE and
// the systemd unit template; sha256sums.txt for them; and install.sh. `--only VARIANT` builds one.
// It writes only under dist/ and must never download anything but Bun's runtimes from the npm
// registry (through npm itself, which checks the registry's integrity hashes).
//
// Cross-compiling needs the target's Bun runtime, and `bun build --compile --target=...` would
// download it from GitHub, which is not reachable from the build machines. The same runtimes are
// the npm packages @oven/bun-linux-* (the platform packages of the `bun` npm package): they are
// taken from node_modules when npm installed them, else fetched once with `npm pack` into
// dist/.cache, and handed to Bun with --compile-executable-path.
//
// The zips are reproducible: the executable is (Bun's compile is deterministic), every entry
// carries the commit's timestamp, and pkg/zip.ts writes no other variable field. A variant
// whose inputs are unchanged keeps its zip (deflating 100 MB takes about 2 s).
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import packageJson from "../package.json" with { type: "json" };
import { assert } from "../core/util/assert.ts";
import { buildCommit, commitTimeSeconds, compile, repoRoot } from "./build.ts";
import { zipArchive } from "./zip.ts";

export const distDir = join(repoRoot, "dist");
const cacheDir = join(distDir, ".cache");
const stageDir = join(distDir, "stage");

// ELF header e_machine values (System V ABI, "Machine" in the ELF specification's table).
const elfMachineX86_64 = 62;
const elfMachineAarch64 = 183;
// ELF identification: "\x7fELF", class 2 = 64-bit, data 1 = little-endian; e_machine at 18.
const elfMagic = [0x7f, 0x45, 0x4c, 0x46];
const elfClass64 = 2;
const elfDataLittleEndian = 1;
const elfMachineOffset = 18;

// npm pack downloads about 40 MB per runtime; a stalled registry must not hang the build.
const npmPackTimeoutMs = 300_000;
const tarTimeoutMs = 60_000;
const versionCheckTimeoutMs = 30_000;

export const variants = {
  x64: { target: "bun-linux-x64", npm: "@oven/bun-linux-x64", elfMachine: elfMachineX86_64 },
  "x64-baseline": { target: "bun-linux-x64-baseline", npm: "@oven/bun-linux-x64-baseline", elfMachine: elfMachineX86_64 },
  arm64: { target: "bun-linux-arm64", npm: "@oven/bun-linux-aarch64", elfMachine: elfMachineAarch64 },
} as const;
export type Variant = keyof typeof variants;
export const variantNames = Object.keys(variants) as Variant[];

export function isVariant(name: string): name is Variant {
  return Object.hasOwn(variants, name);
}

export function zipName(version: string, variant: Variant): string {
  return `qstora-${version}-linux-${variant}.zip`;
}

/** The ELF e_machine of a 64-bit little-endian executable, or undefined when it is not one. */
export function elfMachine(header: Uint8Array): number | undefined {
  if (header.length < elfMachineOffset + 2) return undefined;
  if (!elfMagic.every((b, i) => header[i] === b)) return undefined;
  if (header[4] !== elfClass64 || header[5] !== elfDataLittleEndian) return undefined;
  return new DataView(header.buffer, header.byteOffset, header.length).getUint16(elfMachineOffset, true);
}

/** sha256sum's format: the hash, two spaces, the name; sorted by name. */
export function sha256sums(files: ReadonlyMap<string, string>): string {
  return [...files.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, hash]) => {
      assert(/^[0-9a-f]{64}$/.test(hash), "a sha256 is 64 hex digits");
      assert(!/[\s/]/.test(name), "listed names are plain file names");
      return `${hash}  ${name}\n`;
    })
    .join("");
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function bunVersion(): string {
  const p = JSON.parse(readFileSync(join(repoRoot, "node_modules/bun/package.json"), "utf8")) as { version: string };
  return p.version;
}

function runtimeVersion(packageDir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

type Runtime = { ok: true; path: string; source: string } | { ok: false; reason: string };

/** The Bun runtime of a variant, of the same version as the Bun that builds. */
export function runtimeFor(variant: Variant): Runtime {
  const { npm } = variants[variant];
  const version = bunVersion();
  const installed = join(repoRoot, "node_modules", npm);
  if (runtimeVersion(installed) === version && existsSync(join(installed, "bin/bun"))) {
    return { ok: true, path: join(installed, "bin/bun"), source: `node_modules/${npm}` };
  }
  const spec = `${npm}@${version}`;
  const dir = join(cacheDir, spec.replace(/[@/]/g, "_"));
  const bin = join(dir, "package/bin/bun");
  if (runtimeVersion(join(dir, "package")) === version && existsSync(bin)) return { ok: true, path: bin, source: `${spec} (cached)` };
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const pack = Bun.spawnSync(["npm", "pack", spec, "--pack-destination", dir, "--silent"], { cwd: dir, stdout: "pipe", stderr: "pipe", timeout: npmPackTimeoutMs });
  if (pack.exitCode !== 0) return { ok: false, reason: `npm pack ${spec} failed (is the npm registry reachable?): ${pack.stderr.toString()}` };
  const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (tgz === undefined) return { ok: false, reason: `npm pack ${spec} produced no tarball` };
  const untar = Bun.spawnSync(["tar", "xzf", join(dir, tgz), "-C", dir], { stdout: "pipe", stderr: "pipe", timeout: tarTimeoutMs });
  rmSync(join(dir, tgz), { force: true });
  if (untar.exitCode !== 0 || !existsSync(bin)) return { ok: false, reason: `cannot unpack ${tgz}: ${untar.stderr.toString()}` };
  return { ok: true, path: bin, source: `${spec} (npm pack)` };
}

export type PackageResult = { ok: true; zip: string; sha256: string; reused: boolean; runtime: string } | { ok: false; reason: string };

/** Builds one variant's executable and zip in dist/. */
export function packageVariant(variant: Variant, options: { version: string; commit: string; mtimeSeconds: number }): PackageResult {
  const runtime = runtimeFor(variant);
  if (!runtime.ok) return runtime;
  const top = `qstora-${options.version}-linux-${variant}`;
  const stage = join(stageDir, variant);
  mkdirSync(stage, { recursive: true });
  const executable = join(stage, "qstora");
  const built = compile({ outfile: executable, target: variants[variant].target, executablePath: runtime.path, version: options.version, commit: options.commit });
  if (!built.ok) return built;

  const binary = readFileSync(executable);
  const machine = elfMachine(binary.subarray(0, 64));
  if (machine !== variants[variant].elfMachine) {
    return { ok: false, reason: `${variant}: the executable's ELF machine is ${machine}, expected ${variants[variant].elfMachine} (wrong runtime ${runtime.path}?)` };
  }
  if (machine === elfMachineX86_64 && process.arch === "x64") {
    // This host can run it: a bundle that compiles but cannot start fails here, not at a user's.
    const expected = `qstora ${options.version} (${options.commit})`;
    const v = Bun.spawnSync([executable, "--version"], { cwd: "/", env: { PATH: "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe", timeout: versionCheckTimeoutMs });
    if (v.stdout.toString().trim() !== expected) {
      return { ok: false, reason: `${variant}: qstora --version printed ${JSON.stringify(v.stdout.toString())}, expected "${expected}": ${v.stderr.toString()}` };
    }
  }

  const entries = [
    { name: `${top}/`, data: new Uint8Array(0), mode: 0o755 },
    { name: `${top}/qstora`, data: binary, mode: 0o755 },
    { name: `${top}/README.md`, data: readFileSync(join(repoRoot, "README.md")), mode: 0o644 },
    { name: `${top}/LICENSE`, data: readFileSync(join(repoRoot, "LICENSE")), mode: 0o644 },
    { name: `${top}/qstora.service`, data: readFileSync(join(repoRoot, "pkg/qstora.service")), mode: 0o644 },
  ];
  const inputs = createHash("sha256");
  inputs.update(`${options.mtimeSeconds}\n`);
  for (const e of entries) inputs.update(`${e.name} ${e.mode} ${sha256(e.data)}\n`);
  const inputsHash = inputs.digest("hex");

  const name = zipName(options.version, variant);
  const zipPath = join(distDir, name);
  const stamp = join(stage, "inputs.sha256");
  if (existsSync(zipPath) && existsSync(stamp) && readFileSync(stamp, "utf8") === inputsHash) {
    return { ok: true, zip: name, sha256: sha256(readFileSync(zipPath)), reused: true, runtime: runtime.source };
  }
  const zip = zipArchive(entries, { mtimeSeconds: options.mtimeSeconds });
  // Written beside and renamed, so that a served dist/ never holds half a zip.
  const temporary = `${zipPath}.tmp-${process.pid}`;
  writeFileSync(temporary, zip);
  renameSync(temporary, zipPath);
  writeFileSync(stamp, inputsHash);
  return { ok: true, zip: name, sha256: sha256(zip), reused: false, runtime: runtime.source };
}

/** Writes sha256sums.txt for this version's zips present in dist/, and copies install.sh. */
export function writeIndex(version: string): string[] {
  const listed = new Map<string, string>();
  for (const v of variantNames) {
    const name = zipName(version, v);
    if (existsSync(join(distDir, name))) listed.set(name, sha256(readFileSync(join(distDir, name))));
  }
  writeFileSync(join(distDir, "sha256sums.txt.tmp"), sha256sums(listed));
  renameSync(join(distDir, "sha256sums.txt.tmp"), join(distDir, "sha256sums.txt"));
  copyFileSync(join(repoRoot, "install.sh"), join(distDir, "install.sh.tmp"));
  chmodSync(join(distDir, "install.sh.tmp"), 0o755);
  renameSync(join(distDir, "install.sh.tmp"), join(distDir, "install.sh"));
  return [...listed.keys()];
}

if (import.meta.main) {
  const onlyAt = process.argv.indexOf("--only");
  const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : undefined;
  if (only !== undefined && !isVariant(only)) {
    console.error(`--only takes one of ${variantNames.join(", ")}`);
    process.exit(2);
  }
  const version = packageJson.version;
  const commit = buildCommit();
  const mtimeSeconds = commitTimeSeconds();
  mkdirSync(distDir, { recursive: true });
  for (const v of only === undefined ? variantNames : [only]) {
    const started = performance.now();
    const r = packageVariant(v, { version, commit, mtimeSeconds });
    if (!r.ok) {
      console.error(`packaging ${v} failed: ${r.reason}`);
      process.exit(1);
    }
    const ms = (performance.now() - started).toFixed(0);
    console.log(`${r.reused ? "unchanged" : "packaged"} dist/${r.zip} (runtime ${r.runtime}) in ${ms} ms`);
  }
  const listed = writeIndex(version);
  console.log(`wrote dist/sha256sums.txt (${listed.join(", ")}) and dist/install.sh for qstora ${version} (${commit})`);
}
