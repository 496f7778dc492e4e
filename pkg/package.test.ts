// pkg/package.ts: `npm run package` leaves in dist/ one zip per variant with the executable for
// the right CPU, README, LICENSE and the unit, a sha256sums.txt that matches, and install.sh; and
// packaging the same commit twice gives the same bytes.
import { beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import packageJson from "../package.json" with { type: "json" };
import { repoRoot } from "./build.ts";
import { distDir, elfMachine, runtimeFor, sha256sums, variantNames, zipName, type Variant } from "./package.ts";

function run(args: string[], cwd = repoRoot) {
  const r = Bun.spawnSync(args, { cwd, stdout: "pipe", stderr: "pipe", timeout: 600_000 });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

describe("elfMachine()", () => {
  test("reads e_machine of 64-bit little-endian ELF files and rejects anything else", () => {
    const header = new Uint8Array(64);
    header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    header[18] = 183;
    expect(elfMachine(header)).toBe(183);
    header[18] = 62;
    expect(elfMachine(header)).toBe(62);
    expect(elfMachine(header.subarray(0, 19))).toBeUndefined();
    expect(elfMachine(new TextEncoder().encode("#!/bin/sh\necho not an ELF file at all\n"))).toBeUndefined();
    header[4] = 1; // 32-bit
    expect(elfMachine(header)).toBeUndefined();
  });
});

describe("sha256sums()", () => {
  test("writes sha256sum's format sorted by name, which `sha256sum -c` accepts", () => {
    const text = sha256sums(new Map([["b.zip", "b".repeat(64)], ["a.zip", "a".repeat(64)]]));
    expect(text).toBe(`${"a".repeat(64)}  a.zip\n${"b".repeat(64)}  b.zip\n`);
  });

  test("refuses a name with a path or a space, and a malformed hash", () => {
    expect(() => sha256sums(new Map([["../a.zip", "a".repeat(64)]]))).toThrow();
    expect(() => sha256sums(new Map([["a b.zip", "a".repeat(64)]]))).toThrow();
    expect(() => sha256sums(new Map([["a.zip", "xyz"]]))).toThrow();
  });
});

describe("npm run package", () => {
  let first = "";
  beforeAll(() => {
    const r = run([process.execPath, "pkg/package.ts"]);
    if (r.code !== 0) throw new Error(`packaging failed: ${r.stderr}${r.stdout}`);
    first = readFileSync(join(distDir, "sha256sums.txt"), "utf8");
  }, 600_000);

  test("sha256sums.txt lists the three zips and sha256sum -c agrees", () => {
    const names = first.split("\n").filter((l) => l !== "").map((l) => l.slice(66));
    expect(names.sort()).toEqual(variantNames.map((v) => zipName(packageJson.version, v)).sort());
    const check = run(["sha256sum", "-c", "sha256sums.txt"], distDir);
    expect(check.stderr).toBe("");
    expect(check.code).toBe(0);
  });

  test("each zip holds qstora for its CPU, README.md, LICENSE and qstora.service under one directory", () => {
    const machines = { x64: 62, "x64-baseline": 62, arm64: 183 } as const;
    const executables: Record<string, string> = {};
    for (const v of variantNames) {
      const top = `qstora-${packageJson.version}-linux-${v}`;
      const dest = mkdtempSync(join(tmpdir(), "qstora-pkg-"));
      try {
        const r = run(["unzip", "-q", join(distDir, zipName(packageJson.version, v)), "-d", dest]);
        expect(r.code).toBe(0);
        expect(run(["find", ".", "-mindepth", "1"], dest).stdout.split("\n").filter((l) => l !== "").sort()).toEqual(
          [`./${top}`, `./${top}/LICENSE`, `./${top}/README.md`, `./${top}/qstora`, `./${top}/qstora.service`].sort(),
        );
        const bin = readFileSync(join(dest, top, "qstora"));
        expect(elfMachine(bin.subarray(0, 64))).toBe(machines[v]);
        executables[v] = createHash("sha256").update(bin).digest("hex");
        expect(readFileSync(join(dest, top, "LICENSE"), "utf8")).toContain("Apache License");
        expect(readFileSync(join(dest, top, "qstora.service"), "utf8")).toContain("ExecStart=/usr/local/bin/qstora serve");
        if (v !== "arm64") {
          const ver = run([join(dest, top, "qstora"), "--version"], "/");
          expect(ver.stdout).toStartWith(`qstora ${packageJson.version} (`);
        }
      } finally {
        rmSync(dest, { recursive: true, force: true });
      }
    }
    // The baseline build carries its own runtime (the npm package for CPUs without AVX2), not a
    // copy of the x64 one: the executables differ exactly when the runtimes do. Since Bun 1.4
    // both packages hold one binary that runs on either kind of CPU.
    const runtimeHash = (v: Variant): string => {
      const r = runtimeFor(v);
      if (!r.ok) throw new Error(r.reason);
      return createHash("sha256").update(readFileSync(r.path)).digest("hex");
    };
    const sameRuntime = runtimeHash("x64") === runtimeHash("x64-baseline");
    expect(executables.x64 === executables["x64-baseline"]).toBe(sameRuntime);
  });

  test("dist/install.sh is the repository's install.sh", () => {
    expect(readFileSync(join(distDir, "install.sh"), "utf8")).toBe(readFileSync(join(repoRoot, "install.sh"), "utf8"));
  });

  test("packaging again from scratch gives byte-identical zips", () => {
    rmSync(join(distDir, "stage"), { recursive: true, force: true });
    const r = run([process.execPath, "pkg/package.ts"]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("unchanged");
    expect(readFileSync(join(distDir, "sha256sums.txt"), "utf8")).toBe(first);
  }, 600_000);
});
