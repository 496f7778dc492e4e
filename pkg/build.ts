// npm run build: compiles cli/main.ts into dist/qstora, one executable that runs with no
// node_modules and no Bun installed. The version comes from package.json and the commit from
// git ("+dirty" when the work tree has changes), both baked in with --define.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import packageJson from "../package.json" with { type: "json" };

const root = resolve(import.meta.dir, "..");

export function buildCommit(): string {
  const rev = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: root });
  if (rev.exitCode !== 0) return "unknown";
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--untracked-files=no"], { cwd: root }).stdout.toString().trim() !== "";
  return `${rev.stdout.toString().trim()}${dirty ? "+dirty" : ""}`;
}

export function compile(options: { outfile: string; target?: string; executablePath?: string }): void {
  const args = [
    process.execPath,
    "build",
    "--compile",
    join(root, "cli/main.ts"),
    "--outfile",
    options.outfile,
    "--define",
    `QSTORA_BUILD_VERSION=${JSON.stringify(packageJson.version)}`,
    "--define",
    `QSTORA_BUILD_COMMIT=${JSON.stringify(buildCommit())}`,
    // antietcd loads etcd3 (and grpc) only in its etcd-proxy mode, which qstora never uses.
    "--external",
    "etcd3",
  ];
  if (options.target !== undefined) args.push(`--target=${options.target}`);
  if (options.executablePath !== undefined) args.push("--compile-executable-path", options.executablePath);
  const r = Bun.spawnSync(args, { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error(`bun build failed for ${options.outfile}`);
}

if (import.meta.main) {
  mkdirSync(join(root, "dist"), { recursive: true });
  const outfile = join(root, "dist/qstora");
  compile({ outfile });
  console.log(`built ${outfile} (qstora ${packageJson.version}, ${buildCommit()})`);
}
