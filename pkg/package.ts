// npm run package: release zips for linux x64 (AVX2), x64-baseline and arm64, each holding the
// qstora executable, README.md, LICENSE and the systemd unit template, plus sha256sums.txt and
// install.sh in dist/. Cross-compiling needs the target's Bun runtime: it comes from the npm
// registry (@oven/bun-linux-*, the same version as the bun package), fetched with `npm pack` into
// dist/.cache, so no other download is needed. `--only x64` builds one variant (tests use it).
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import packageJson from "../package.json" with { type: "json" };
import { compile } from "./build.ts";

const root = resolve(import.meta.dir, "..");
const dist = join(root, "dist");
const cache = join(dist, ".cache");

export const variants = {
  x64: { target: "bun-linux-x64", npm: "@oven/bun-linux-x64" },
  "x64-baseline": { target: "bun-linux-x64-baseline", npm: "@oven/bun-linux-x64-baseline" },
  arm64: { target: "bun-linux-arm64", npm: "@oven/bun-linux-aarch64" },
} as const;
export type Variant = keyof typeof variants;

function bunVersion(): string {
  return (JSON.parse(readFileSync(join(root, "node_modules/bun/package.json"), "utf8")) as { version: string }).version;
}

/** The Bun runtime for a variant: this very bun for x64 on x64, else from the npm registry. */
function runtimeFor(variant: Variant): string {
  if (variant === "x64" && process.arch === "x64") return process.execPath;
  const spec = `${variants[variant].npm}@${bunVersion()}`;
  const dir = join(cache, spec.replace(/[@/]/g, "_"));
  const bin = join(dir, "package/bin/bun");
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const pack = Bun.spawnSync(["npm", "pack", spec, "--pack-destination", dir, "--silent"], { cwd: dir, stderr: "pipe" });
  if (pack.exitCode !== 0) throw new Error(`npm pack ${spec} failed: ${pack.stderr.toString()}`);
  const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (tgz === undefined) throw new Error(`npm pack ${spec} produced no tarball`);
  const untar = Bun.spawnSync(["tar", "xzf", join(dir, tgz), "-C", dir]);
  if (untar.exitCode !== 0 || !existsSync(bin)) throw new Error(`cannot unpack ${tgz}`);
  return bin;
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

export function packageVariant(variant: Variant): string {
  const version = packageJson.version;
  const stage = join(dist, "stage", variant, `qstora-${version}-linux-${variant}`);
  rmSync(join(dist, "stage", variant), { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  compile({ outfile: join(stage, "qstora"), target: variants[variant].target, executablePath: runtimeFor(variant) });
  copyFileSync(join(root, "README.md"), join(stage, "README.md"));
  copyFileSync(join(root, "LICENSE"), join(stage, "LICENSE"));
  copyFileSync(join(root, "pkg/qstora.service"), join(stage, "qstora.service"));
  const zipName = `qstora-${version}-linux-${variant}.zip`;
  rmSync(join(dist, zipName), { force: true });
  // -X: no extra file attributes, so the same input gives the same zip.
  const zip = Bun.spawnSync(["zip", "-q", "-r", "-X", join(dist, zipName), `qstora-${version}-linux-${variant}`], { cwd: join(dist, "stage", variant), stderr: "pipe" });
  if (zip.exitCode !== 0) throw new Error(`zip failed (Debian package zip): ${zip.stderr.toString()}`);
  return zipName;
}

if (import.meta.main) {
  const onlyIdx = process.argv.indexOf("--only");
  const only = onlyIdx >= 0 ? process.argv[onlyIdx + 1] : undefined;
  if (only !== undefined && !(only in variants)) {
    console.error(`--only takes one of ${Object.keys(variants).join(", ")}`);
    process.exit(2);
  }
  mkdirSync(dist, { recursive: true });
  const chosen = only === undefined ? (Object.keys(variants) as Variant[]) : [only as Variant];
  const zips = chosen.map((v) => {
    const z = packageVariant(v);
    console.log(`packaged dist/${z}`);
    return z;
  });
  // sha256sums.txt lists every zip present in dist/ (sha256sum's format: hash, two spaces, name).
  const all = readdirSync(dist).filter((f) => /^qstora-.*-linux-.*\.zip$/.test(f)).sort();
  writeFileSync(join(dist, "sha256sums.txt"), all.map((f) => `${sha256(join(dist, f))}  ${f}\n`).join(""));
  copyFileSync(join(root, "install.sh"), join(dist, "install.sh"));
  console.log(`wrote dist/sha256sums.txt (${all.length} zips) and dist/install.sh; built ${zips.length}`);
}
