// Test support for the archive suites: the backends an archive can live on (a sparse file, a loop
// block device over a sparse file), raw byte access that bypasses the archive, and data patterns.
// Test code only: never imported by the daemon.
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ArchiveTarget {
  path: string;
  /** The size to pass to Archive.create (files); undefined for devices, which have their own. */
  sizeBytes?: number;
  cleanup(): void;
}

export type TargetMaker = (sizeBytes: number) => ArchiveTarget;

let counter = 0;
const baseDir = mkdtempSync(join(tmpdir(), "qstora-archive-"));
process.on("exit", () => rmSync(baseDir, { recursive: true, force: true }));

export function tempPath(name: string): string {
  return join(baseDir, `${counter++}-${name}`);
}

export const sparseFileTarget: TargetMaker = (sizeBytes) => {
  const path = tempPath("archive.img");
  return { path, sizeBytes, cleanup: () => rmSync(path, { force: true }) };
};

/** A loop device over a sparse file (needs root and losetup; fails loudly, never skips). */
export const loopDeviceTarget: TargetMaker = (sizeBytes) => {
  const backing = tempPath("loop.img");
  const t = Bun.spawnSync(["truncate", "-s", String(sizeBytes), backing]);
  if (t.exitCode !== 0) throw new Error(`truncate failed: ${t.stderr.toString()}`);
  const r = Bun.spawnSync(["losetup", "-f", "--show", backing]);
  const dev = r.stdout.toString().trim();
  if (r.exitCode !== 0 || !dev.startsWith("/dev/loop")) {
    rmSync(backing, { force: true });
    throw new Error(`losetup failed (loop devices need root and util-linux's losetup): ${r.stderr.toString()}`);
  }
  return {
    path: dev,
    cleanup: () => {
      Bun.spawnSync(["losetup", "-d", dev]);
      rmSync(backing, { force: true });
    },
  };
};

export function rawRead(path: string, offsetBytes: number, lengthBytes: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(lengthBytes);
    readSync(fd, buf, 0, lengthBytes, offsetBytes);
    return buf;
  } finally {
    closeSync(fd);
  }
}

export function rawWrite(path: string, offsetBytes: number, data: Uint8Array): void {
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, data, 0, data.length, offsetBytes);
  } finally {
    closeSync(fd);
  }
}

/** Deterministic pseudo-random bytes for (length, seed). */
export function pattern(lengthBytes: number, seed: number): Uint8Array {
  const b = new Uint8Array(lengthBytes);
  let x = (seed * 2654435761 + 0x9e3779b9) >>> 0;
  for (let i = 0; i < lengthBytes; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A seeded generator (mulberry32), so a failing run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function unwrap<T>(r: { ok: true; value: T } | { ok: false; code: string; message: string }): T {
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  return r.value;
}
