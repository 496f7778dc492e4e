// The archive conformance suite, run against every backend (sparse file; loop block device),
// plus corruption and crash tests.
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Archive } from "./archive.ts";
import { QstoraError } from "../util/errors.ts";

const clusterId = "11111111-2222-4333-8444-555555555555";
const volumeId = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const MiB = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), "qstora-archive-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed * 2654435761;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function unwrap<T>(r: { ok: true; value: T } | { ok: false; message: string }): T {
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

export function archiveConformance(name: string, makePath: () => { path: string; sizeBytes?: number; cleanup(): void }): void {
  describe(`archive conformance: ${name}`, () => {
    test("a unit reads back what was written, zeros where nothing was, across reopen", () => {
      const target = makePath();
      try {
        const a = Archive.create({ path: target.path, clusterId, ...(target.sizeBytes === undefined ? {} : { sizeBytes: target.sizeBytes }) });
        const u = unwrap(a.createUnit({ volumeId, segmentIndex: 3, sizeBytes: 8 * MiB }));
        const data = pattern(3 * 4096, 1);
        unwrap(u.write(4096, data));
        unwrap(u.write(512 * 3, pattern(512, 2))); // sub-page write: read-modify-write
        expect(unwrap(u.read(4096, 3 * 4096))).toEqual(data);
        expect(unwrap(u.read(1536, 512))).toEqual(pattern(512, 2));
        expect(unwrap(u.read(6 * MiB, 8192))).toEqual(new Uint8Array(8192));
        unwrap(a.flush());
        const info = a.info();
        expect(info.unitCount).toBe(1);
        expect(info.writtenBytes).toBe(4 * 4096);
        a.close();
        const b = Archive.open(target.path, { clusterId });
        const [ui] = b.listUnits();
        expect(ui?.volumeId).toBe(volumeId);
        expect(ui?.segmentIndex).toBe(3);
        const u2 = b.openUnit(ui!.unitId)!;
        expect(unwrap(u2.read(4096, 3 * 4096))).toEqual(data);
        b.close();
      } finally {
        target.cleanup();
      }
    });

    test("unmap makes pages read as zeros and frees them", () => {
      const target = makePath();
      try {
        const a = Archive.create({ path: target.path, clusterId, ...(target.sizeBytes === undefined ? {} : { sizeBytes: target.sizeBytes }) });
        const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
        unwrap(u.write(0, pattern(65536, 3)));
        unwrap(u.unmap(4096, 8192 + 512));
        const back = unwrap(u.read(0, 65536));
        const want = pattern(65536, 3);
        want.fill(0, 4096, 4096 + 8192 + 512);
        expect(back).toEqual(want);
        a.close();
      } finally {
        target.cleanup();
      }
    });

    test("a flipped byte in a data page is a medium error for that page only", () => {
      const target = makePath();
      try {
        const a = Archive.create({ path: target.path, clusterId, ...(target.sizeBytes === undefined ? {} : { sizeBytes: target.sizeBytes }) });
        const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
        unwrap(u.write(0, pattern(4 * 4096, 4)));
        unwrap(a.flush());
        const where = u.info.extentOffset + 4096 /* metadata of 256 pages */ + 2 * 4096 + 100;
        a.close();
        const fd = openSync(target.path, "r+");
        writeSync(fd, new Uint8Array([0xff ^ pattern(4 * 4096, 4)[2 * 4096 + 100]!]), 0, 1, where);
        closeSync(fd);
        const b = Archive.open(target.path, { clusterId });
        const u2 = b.openUnit(0)!;
        const r = u2.read(0, 4 * 4096);
        expect(r.ok).toBe(false);
        if (!r.ok) {
          expect(r.code).toBe("MEDIUM_ERROR");
          expect(r.offsetBytes).toBe(2 * 4096);
        }
        expect(unwrap(u2.read(0, 2 * 4096))).toEqual(pattern(2 * 4096, 4));
        expect(unwrap(u2.read(3 * 4096, 4096))).toEqual(pattern(4 * 4096, 4).subarray(3 * 4096));
        b.close();
      } finally {
        target.cleanup();
      }
    });

    test("create refuses a path of another cluster, open refuses a damaged superblock", () => {
      const target = makePath();
      try {
        Archive.create({ path: target.path, clusterId, ...(target.sizeBytes === undefined ? {} : { sizeBytes: target.sizeBytes }) }).close();
        expect(() => Archive.create({ path: target.path, clusterId: "99999999-2222-4333-8444-555555555555" })).toThrow(/another cluster/);
        expect(() => Archive.open(target.path, { clusterId: "99999999-2222-4333-8444-555555555555" })).toThrow(/another cluster/);
        // One damaged copy is repaired from the other.
        let fd = openSync(target.path, "r+");
        writeSync(fd, new Uint8Array(16).fill(0x41), 0, 16, 20);
        closeSync(fd);
        Archive.open(target.path, { clusterId }).close();
        // Both damaged: refused with a clear error.
        fd = openSync(target.path, "r+");
        writeSync(fd, new Uint8Array(16).fill(0x41), 0, 16, 20);
        writeSync(fd, new Uint8Array(16).fill(0x41), 0, 16, 4096 + 20);
        closeSync(fd);
        let err: unknown;
        try {
          Archive.open(target.path, { clusterId });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(QstoraError);
        expect((err as QstoraError).message).toMatch(/damaged/);
        expect(() => Archive.create({ path: target.path, clusterId })).toThrow(/damaged/);
      } finally {
        target.cleanup();
      }
    });

    test("units fill the archive and then report NO_SPACE", () => {
      const target = makePath();
      try {
        const a = Archive.create({ path: target.path, clusterId, ...(target.sizeBytes === undefined ? {} : { sizeBytes: target.sizeBytes }) });
        let n = 0;
        for (;;) {
          const r = a.createUnit({ volumeId, segmentIndex: n, sizeBytes: 8 * MiB });
          if (!r.ok) {
            expect(r.code).toBe("NO_SPACE");
            break;
          }
          n++;
        }
        expect(n).toBeGreaterThan(0);
        a.removeUnit(0);
        expect(a.createUnit({ volumeId, segmentIndex: 99, sizeBytes: 8 * MiB }).ok).toBe(true);
        a.close();
      } finally {
        target.cleanup();
      }
    });
  });
}

let fileCount = 0;
archiveConformance("sparse file", () => {
  const path = join(dir, `f${fileCount++}.img`);
  return { path, sizeBytes: 64 * MiB, cleanup: () => rmSync(path, { force: true }) };
});

archiveConformance("loop block device", () => {
  const backing = join(dir, `loop${fileCount++}.img`);
  Bun.spawnSync(["truncate", "-s", `${64 * MiB}`, backing]);
  const r = Bun.spawnSync(["losetup", "-f", "--show", backing]);
  const dev = r.stdout.toString().trim();
  if (r.exitCode !== 0 || !dev.startsWith("/dev/loop")) throw new Error(`losetup failed (loop devices need root): ${r.stderr.toString()}`);
  return {
    path: dev,
    cleanup: () => {
      Bun.spawnSync(["losetup", "-d", dev]);
      rmSync(backing, { force: true });
    },
  };
});
