// zipArchive() against Info-ZIP's unzip and zipinfo (Debian unzip, installed by test/setup.sh):
// what it writes must extract byte for byte with modes and timestamps, the same way every time.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dosDateTime, type ZipEntry, zipArchive } from "./zip.ts";

const work = mkdtempSync(join(tmpdir(), "qstora-zip-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function sh(args: string[], cwd = work): { code: number; stdout: string; stderr: string } {
  const r = Bun.spawnSync(args, { cwd, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

function random(bytes: number, seed: number): Uint8Array {
  // xorshift32: incompressible, yet the same for a seed.
  const out = new Uint8Array(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const mtime = Date.UTC(2026, 10, 22, 13, 45, 30) / 1000;
const entries: ZipEntry[] = [
  { name: "qstora-0.1.0-linux-x64/", data: new Uint8Array(0), mode: 0o755 },
  { name: "qstora-0.1.0-linux-x64/qstora", data: new TextEncoder().encode("#!/bin/sh\necho hello\n".repeat(1000)), mode: 0o755 },
  { name: "qstora-0.1.0-linux-x64/random.bin", data: random(100_000, 7), mode: 0o644 },
  { name: "qstora-0.1.0-linux-x64/empty", data: new Uint8Array(0), mode: 0o600 },
  { name: "qstora-0.1.0-linux-x64/ünïcode.txt", data: new TextEncoder().encode("names are UTF-8\n"), mode: 0o644 },
];

describe("zipArchive()", () => {
  for (const store of [false, true]) {
    test(`${store ? "stored" : "deflated"} entries extract with unzip byte for byte, with their modes`, () => {
      const zip = join(work, `t-${store}.zip`);
      writeFileSync(zip, zipArchive(entries, { mtimeSeconds: mtime, store }));
      expect(sh(["unzip", "-tq", zip]).code).toBe(0);
      const dest = join(work, `x-${store}`);
      const r = sh(["unzip", "-q", zip, "-d", dest]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      for (const e of entries) {
        const st = statSync(join(dest, e.name));
        expect(st.mode & 0o777).toBe(e.mode);
        if (e.name.endsWith("/")) {
          expect(st.isDirectory()).toBe(true);
        } else {
          expect(Buffer.from(readFileSync(join(dest, e.name))).equals(Buffer.from(e.data))).toBe(true);
        }
      }
    });
  }

  test("every entry carries the given timestamp (UTC, 2-second resolution)", () => {
    const zip = join(work, "time.zip");
    writeFileSync(zip, zipArchive(entries, { mtimeSeconds: mtime }));
    // zipinfo -T prints the DOS time as yyyymmdd.hhmmss, with no time-zone conversion.
    const lines = sh(["zipinfo", "-T", zip]).stdout.split("\n").filter((l) => l.includes("qstora-0.1.0"));
    expect(lines.length).toBe(entries.length);
    for (const l of lines) expect(l).toContain("20261122.134530");
  });

  test("compressible data is deflated, incompressible data is stored", () => {
    const zip = join(work, "methods.zip");
    writeFileSync(zip, zipArchive(entries, { mtimeSeconds: mtime }));
    const listing = sh(["zipinfo", zip]).stdout;
    expect(listing).toMatch(/defN.*qstora-0\.1\.0-linux-x64\/qstora\n/);
    expect(listing).toMatch(/stor.*qstora-0\.1\.0-linux-x64\/random\.bin\n/);
  });

  test("the same inputs give the same bytes", () => {
    const a = zipArchive(entries, { mtimeSeconds: mtime });
    const b = zipArchive(entries, { mtimeSeconds: mtime });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    const c = zipArchive(entries, { mtimeSeconds: mtime + 2 });
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
  });

  test("refuses names that would extract outside the target directory", () => {
    expect(() => zipArchive([{ name: "../evil", data: new Uint8Array(1), mode: 0o644 }], { mtimeSeconds: mtime })).toThrow();
    expect(() => zipArchive([{ name: "/etc/evil", data: new Uint8Array(1), mode: 0o644 }], { mtimeSeconds: mtime })).toThrow();
  });

  test("refuses duplicate names and mode bits beyond the permissions", () => {
    const e = { name: "a", data: new Uint8Array(1), mode: 0o644 };
    expect(() => zipArchive([e, e], { mtimeSeconds: mtime })).toThrow();
    expect(() => zipArchive([{ ...e, mode: 0o100644 }], { mtimeSeconds: mtime })).toThrow();
  });
});

describe("dosDateTime()", () => {
  test("encodes year from 1980, month, day, hours, minutes and seconds / 2", () => {
    const { date, time } = dosDateTime(Date.UTC(2026, 10, 22, 13, 45, 31) / 1000);
    expect(date).toBe(((2026 - 1980) << 9) | (11 << 5) | 22);
    expect(time).toBe((13 << 11) | (45 << 5) | 15);
  });

  test("clamps dates before 1980 to 1980-01-01", () => {
    expect(dosDateTime(0)).toEqual({ date: (1 << 5) | 1, time: 0 });
  });
});
