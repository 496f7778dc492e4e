// pkg/build.ts: the release executable runs without Bun or node_modules, reports its version and
// commit, and ignores the .env and bunfig.toml of whatever directory it is started in.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import packageJson from "../package.json" with { type: "json" };
import { buildCommit, compile, compileArgs, repoRoot } from "./build.ts";

const work = mkdtempSync(join(tmpdir(), "qstora-build-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs a program with an empty environment but a PATH holding no bun or node. */
function bare(args: string[], cwd: string) {
  const r = Bun.spawnSync(args, { cwd, env: { PATH: "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** A directory holding a .env and a bunfig.toml that would change a program that read them. */
function hostileDir(): string {
  const dir = mkdtempSync(join(work, "cwd-"));
  writeFileSync(join(dir, ".env"), "QSTORA_PROBE=from-dotenv\n");
  writeFileSync(join(dir, "preload.ts"), "(globalThis as { qstoraProbePreloaded?: boolean }).qstoraProbePreloaded = true;\n");
  writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./preload.ts"]\n');
  return dir;
}

describe("pkg/build.ts", () => {
  test("the executable ignores .env and bunfig.toml in its working directory", () => {
    const probe = join(work, "probe");
    const r = compile({ outfile: probe, entry: join(import.meta.dir, "testdata/env-probe.ts"), commit: "test" });
    expect(r).toMatchObject({ ok: true });
    const out = bare([probe], hostileDir());
    expect(out.stderr).toBe("");
    expect(JSON.parse(out.stdout)).toEqual({ fromDotenv: null, preloaded: false });
  });

  test("the probe does see .env and bunfig.toml when compiled without those options (so the test above can fail)", () => {
    const outfile = join(work, "probe-default");
    const args = compileArgs(process.execPath, { outfile, entry: join(import.meta.dir, "testdata/env-probe.ts"), commit: "test" }).filter(
      (a) => !a.startsWith("--no-compile-autoload-"),
    );
    expect(Bun.spawnSync(args, { cwd: repoRoot, stdout: "pipe", stderr: "pipe" }).exitCode).toBe(0);
    expect(JSON.parse(bare([outfile], hostileDir()).stdout)).toEqual({ fromDotenv: "from-dotenv", preloaded: true });
  });

  test("qstora --version prints package.json's version and the commit, run from / with no bun on PATH", () => {
    const outfile = join(work, "qstora");
    const r = compile({ outfile });
    expect(r).toMatchObject({ ok: true });
    const v = bare([outfile, "--version"], "/");
    expect(v.stderr).toBe("");
    expect(v.stdout.trim()).toBe(`qstora ${packageJson.version} (${buildCommit()})`);
    expect(buildCommit()).toMatch(/^[0-9a-f]{4,40}(\+dirty)?$/);
  });

  test("a failed compile leaves no file behind and says why", () => {
    const outfile = join(work, "broken");
    const entry = join(work, "broken.ts");
    writeFileSync(entry, 'import "./does-not-exist.ts";\n');
    const r = compile({ outfile, entry });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain("does-not-exist");
    expect(Bun.file(outfile).size).toBe(0);
    expect(Bun.spawnSync(["sh", "-c", `ls -A ${work} | grep -c build-`]).stdout.toString().trim()).toBe("0");
  });
});
