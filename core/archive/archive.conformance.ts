// The archive conformance suite: every behaviour an Archive promises, run against every backend
// (archive.test.ts calls it for a sparse file and a loop block device). Test code only.
import { describe, expect, test } from "bun:test";
import { Archive } from "./archive.ts";
import { backupSuperblockOffset, metaBytesFor, pageBytes, pageMetaBytes, superblockBytes } from "./format.ts";
import { pattern, rawRead, rawWrite, seededRandom, unwrap, type ArchiveTarget, type TargetMaker } from "./test-targets.ts";
import { QstoraError } from "../util/errors.ts";

export const clusterId = "11111111-2222-4333-8444-555555555555";
export const otherClusterId = "99999999-2222-4333-8444-555555555555";
export const volumeId = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const MiB = 1 << 20;
const archiveBytes = 64 * MiB;

function create(t: ArchiveTarget, checksum: "crc32c" | "crc32" = "crc32c"): Archive {
  return Archive.create({ path: t.path, clusterId, checksum, ...(t.sizeBytes === undefined ? {} : { sizeBytes: t.sizeBytes }) });
}

function withTarget(make: TargetMaker, body: (t: ArchiveTarget) => void): () => void {
  return () => {
    const t = make(archiveBytes);
    try {
      body(t);
    } finally {
      t.cleanup();
    }
  };
}

function thrown(f: () => unknown): QstoraError {
  try {
    f();
  } catch (e) {
    if (e instanceof QstoraError) return e;
    throw e;
  }
  throw new Error("expected a QstoraError, nothing was thrown");
}

/** Where page p of a unit's data and metadata live, in raw archive bytes. */
function where(info: { extentOffset: number; sizeBytes: number }, p: number): { data: number; meta: number } {
  return { meta: info.extentOffset + p * pageMetaBytes, data: info.extentOffset + metaBytesFor(info.sizeBytes) + p * pageBytes };
}

export function archiveConformance(name: string, make: TargetMaker): void {
  describe(`archive conformance: ${name}`, () => {
    for (const checksum of ["crc32c", "crc32"] as const) {
      test(
        `a unit reads back what was written and zeros elsewhere, across reopen (${checksum})`,
        withTarget(make, (t) => {
          const a = create(t, checksum);
          const u = unwrap(a.createUnit({ volumeId, segmentIndex: 3, sizeBytes: 8 * MiB, role: "ec-parity", replicaIndex: 2 }));
          const data = pattern(3 * pageBytes, 1);
          unwrap(u.write(pageBytes, data));
          unwrap(u.write(512 * 3, pattern(512, 2))); // inside one page: read-modify-write
          unwrap(u.write(5 * pageBytes - 1024, pattern(2048, 3))); // across a page boundary
          const want = new Uint8Array(6 * pageBytes);
          want.set(data, pageBytes);
          want.set(pattern(512, 2), 1536);
          want.set(pattern(2048, 3), 5 * pageBytes - 1024);
          expect(unwrap(u.read(0, 6 * pageBytes))).toEqual(want);
          expect(unwrap(u.read(1536, 512))).toEqual(pattern(512, 2));
          expect(unwrap(u.read(5 * pageBytes - 512, 1024))).toEqual(pattern(2048, 3).subarray(512, 1536));
          expect(unwrap(u.read(6 * MiB, 8192))).toEqual(new Uint8Array(8192));
          const into = new Uint8Array(pageBytes);
          expect(unwrap(u.read(pageBytes, pageBytes, into))).toBe(into);
          expect(a.info().writtenBytes).toBe(6 * pageBytes);
          unwrap(a.flush());
          a.close();
          const b = Archive.open(t.path, { clusterId });
          expect(b.checksum).toBe(checksum);
          expect(b.openReport.resolvedPages).toBe(0);
          const [ui] = b.listUnits();
          expect(ui).toMatchObject({ volumeId, segmentIndex: 3, role: "ec-parity", replicaIndex: 2, state: "active", sizeBytes: 8 * MiB, writtenBytes: 6 * pageBytes });
          const u2 = b.openUnit(ui!.unitId)!;
          expect(unwrap(u2.read(0, 6 * pageBytes))).toEqual(want);
          b.close();
        }),
      );
    }

    test(
      "random writes, unmaps and reads agree with a model, before and after reopen",
      withTarget(make, (t) => {
        const seed = 424242;
        const rnd = seededRandom(seed);
        const unitBytes = 256 * 1024;
        const model = new Uint8Array(unitBytes);
        let a = create(t);
        let u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: unitBytes }));
        for (let i = 0; i < 400; i++) {
          const off = Math.floor(rnd() * (unitBytes / 512)) * 512;
          const len = Math.min(unitBytes - off, (1 + Math.floor(rnd() * 24)) * 512);
          const op = rnd();
          if (op < 0.6) {
            const d = pattern(len, i);
            unwrap(u.write(off, d));
            model.set(d, off);
          } else if (op < 0.7) {
            unwrap(u.unmap(off, len));
            model.fill(0, off, off + len);
          } else if (op < 0.95) {
            const got = unwrap(u.read(off, len));
            if (!Buffer.from(got).equals(Buffer.from(model.subarray(off, off + len)))) throw new Error(`seed ${seed} step ${i}: read of ${len} at ${off} differs from the model`);
          } else {
            a.close();
            a = Archive.open(t.path, { clusterId });
            u = a.openUnit(0)!;
          }
        }
        expect(unwrap(u.read(0, unitBytes))).toEqual(model);
        a.close();
      }),
    );

    test(
      "page sequence numbers record the caller's seq, or the write stamp, and survive reopen",
      withTarget(make, (t) => {
        const a = create(t);
        const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
        expect(u.pageSeq(0)).toBe(0);
        expect(u.pageState(0)).toBe("unwritten");
        unwrap(u.write(0, pattern(2 * pageBytes, 1), 1000n));
        unwrap(u.write(2 * pageBytes, pattern(pageBytes, 2), 2 ** 40));
        unwrap(u.write(3 * pageBytes, pattern(pageBytes, 3)));
        expect([u.pageSeq(0), u.pageSeq(1), u.pageSeq(2)]).toEqual([1000, 1000, 2 ** 40]);
        expect(u.pageSeq(3)).toBe(3); // the unit's third write
        unwrap(u.unmap(0, pageBytes, 1001));
        expect(u.pageState(0)).toBe("deallocated");
        expect(u.pageSeq(0)).toBe(1001);
        a.close();
        const b = Archive.open(t.path, { clusterId });
        const u2 = b.openUnit(0)!;
        expect([u2.pageSeq(0), u2.pageSeq(1), u2.pageSeq(2), u2.pageSeq(3)]).toEqual([1001, 1000, 2 ** 40, 3]);
        expect([u2.pageState(0), u2.pageState(1)]).toEqual(["deallocated", "written"]);
        b.close();
      }),
    );

    test(
      "unmap makes pages read as zeros, zeroes partial pages, and gives the written bytes back",
      withTarget(make, (t) => {
        const a = create(t);
        const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
        unwrap(u.write(0, pattern(16 * pageBytes, 3)));
        expect(a.info().writtenBytes).toBe(16 * pageBytes);
        unwrap(u.unmap(pageBytes - 512, 2 * pageBytes + 1024));
        const want = pattern(16 * pageBytes, 3);
        want.fill(0, pageBytes - 512, 3 * pageBytes + 512);
        expect(unwrap(u.read(0, 16 * pageBytes))).toEqual(want);
        expect(a.info().writtenBytes).toBe(14 * pageBytes); // pages 1 and 2 deallocated; 0 and 3 rewritten
        unwrap(u.unmap(512, 1024)); // inside one page
        want.fill(0, 512, 1536);
        expect(unwrap(u.read(0, 16 * pageBytes))).toEqual(want);
        a.close();
        const b = Archive.open(t.path, { clusterId });
        expect(unwrap(b.openUnit(0)!.read(0, 16 * pageBytes))).toEqual(want);
        b.close();
      }),
    );

    test(
      "a flipped byte in a data page is a medium error for that page only, with its offset",
      withTarget(make, (t) => {
        const a = create(t);
        const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
        const data = pattern(4 * pageBytes, 4);
        unwrap(u.write(0, data));
        const at = where(u.info, 2).data + 100;
        a.close();
        rawWrite(t.path, at, new Uint8Array([(data[2 * pageBytes + 100] as number) ^ 0xff]));
        const b = Archive.open(t.path, { clusterId });
        const u2 = b.openUnit(0)!;
        const r = u2.read(0, 4 * pageBytes);
        expect(r.ok).toBe(false);
        if (!r.ok) {
          expect(r.code).toBe("MEDIUM_ERROR");
          expect(r.offsetBytes).toBe(2 * pageBytes);
        }
        expect(unwrap(u2.read(0, 2 * pageBytes))).toEqual(data.subarray(0, 2 * pageBytes));
        expect(unwrap(u2.read(3 * pageBytes, pageBytes))).toEqual(data.subarray(3 * pageBytes));
        // A partial write needs the old page, so it fails too; a whole-page write heals it.
        const partial = u2.write(2 * pageBytes, new Uint8Array(512));
        expect(partial.ok ? "ok" : partial.code).toBe("MEDIUM_ERROR");
        unwrap(u2.write(2 * pageBytes, pattern(pageBytes, 5)));
        expect(unwrap(u2.read(2 * pageBytes, pageBytes))).toEqual(pattern(pageBytes, 5));
        b.close();
      }),
    );

    test(
      "a page written to another page's place (misdirected) fails its checksum there",
      withTarget(make, (t) => {
        const a = create(t);
        const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
        const data = pattern(8 * pageBytes, 6);
        unwrap(u.write(0, data));
        const info = u.info;
        a.close();
        // Page 1's bytes and page 1's metadata entry, both copied over page 5: contents and
        // checksum agree, but the checksum is bound to page 1's place.
        rawWrite(t.path, where(info, 5).data, rawRead(t.path, where(info, 1).data, pageBytes));
        rawWrite(t.path, where(info, 5).meta, rawRead(t.path, where(info, 1).meta, pageMetaBytes));
        const b = Archive.open(t.path, { clusterId });
        const r = b.openUnit(0)!.read(5 * pageBytes, pageBytes);
        expect(r.ok ? "ok" : r.code).toBe("MEDIUM_ERROR");
        expect(unwrap(b.openUnit(0)!.read(pageBytes, pageBytes))).toEqual(data.subarray(pageBytes, 2 * pageBytes));
        b.close();
      }),
    );

    test(
      "a damaged page-metadata entry makes its page a medium error, never zeros",
      withTarget(make, (t) => {
        const a = create(t);
        const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
        unwrap(u.write(0, pattern(4 * pageBytes, 7)));
        const info = u.info;
        a.close();
        rawWrite(t.path, where(info, 1).meta + 26, new Uint8Array([0])); // state byte: "unwritten"
        const b = Archive.open(t.path, { clusterId });
        expect(b.openReport.damagedPageEntries).toBe(1);
        const r = b.openUnit(0)!.read(pageBytes, pageBytes);
        expect(r.ok ? "ok" : r.code).toBe("MEDIUM_ERROR");
        expect(unwrap(b.openUnit(0)!.read(2 * pageBytes, pageBytes))).toEqual(pattern(4 * pageBytes, 7).subarray(2 * pageBytes, 3 * pageBytes));
        b.close();
      }),
    );

    test(
      "a damaged superblock is repaired from a backup; all copies damaged is refused and nothing changes",
      withTarget(make, (t) => {
        create(t).close();
        rawWrite(t.path, 20, new Uint8Array(16).fill(0x41));
        const a = Archive.open(t.path, { clusterId });
        expect(a.openReport.repairedSuperblocks).toBe(1);
        a.close();
        const clean = Archive.open(t.path, { clusterId });
        expect(clean.openReport.repairedSuperblocks).toBe(0);
        clean.close();
        // Primary and front backup gone: the tail copy still finds it.
        rawWrite(t.path, 20, new Uint8Array(16).fill(0x41));
        rawWrite(t.path, superblockBytes + 20, new Uint8Array(16).fill(0x41));
        expect(Archive.probe(t.path)?.clusterId).toBe(clusterId);
        const b = Archive.open(t.path, { clusterId });
        expect(b.openReport.repairedSuperblocks).toBe(2);
        const archiveSize = b.info().sizeBytes;
        b.close();
        for (const off of [20, superblockBytes + 20, backupSuperblockOffset(archiveSize) + 20]) rawWrite(t.path, off, new Uint8Array(16).fill(0x41));
        const before = rawRead(t.path, 0, 1 << 20);
        const e = thrown(() => Archive.open(t.path, { clusterId }));
        expect(e.code).toBe("ARCHIVE_INVALID");
        expect(e.message).toMatch(/damaged/);
        expect(thrown(() => create(t)).code).toBe("ARCHIVE_INVALID");
        expect(Archive.probe(t.path)).toBeNull();
        expect(rawRead(t.path, 0, 1 << 20)).toEqual(before);
      }),
    );

    test(
      "an archive of another cluster is refused by create and open, and left as it was",
      withTarget(make, (t) => {
        const a = create(t);
        unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
        a.close();
        const before = rawRead(t.path, 0, 2 << 20);
        const e1 = thrown(() => Archive.create({ path: t.path, clusterId: otherClusterId }));
        expect(e1.code).toBe("ARCHIVE_INVALID");
        expect(e1.message).toMatch(/another cluster/);
        expect(thrown(() => Archive.create({ path: t.path, clusterId })).message).toMatch(/already archive/);
        const e2 = thrown(() => Archive.open(t.path, { clusterId: otherClusterId }));
        expect(e2.code).toBe("ARCHIVE_INVALID");
        expect(rawRead(t.path, 0, 2 << 20)).toEqual(before);
        expect(Archive.probe(t.path)).toEqual({ clusterId, archiveId: expect.any(String) });
      }),
    );

    test(
      "a damaged unit-table entry is refused: qstora does not guess where a unit lives",
      withTarget(make, (t) => {
        const a = create(t);
        unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
        a.close();
        rawWrite(t.path, 65536 + 40, new Uint8Array([0x7f]));
        const e = thrown(() => Archive.open(t.path, { clusterId }));
        expect(e.code).toBe("ARCHIVE_INVALID");
        expect(e.message).toMatch(/entry 0 is damaged/);
      }),
    );

    test(
      "units fill the archive without overlapping, report NO_SPACE, and removal gives space back",
      withTarget(make, (t) => {
        const a = create(t);
        const ids: number[] = [];
        for (;;) {
          const r = a.createUnit({ volumeId, segmentIndex: ids.length, sizeBytes: 8 * MiB });
          if (!r.ok) {
            expect(r.code).toBe("NO_SPACE");
            break;
          }
          unwrap(r.value.write(8 * MiB - pageBytes, pattern(pageBytes, ids.length)));
          ids.push(r.value.info.unitId);
        }
        expect(ids.length).toBeGreaterThan(3);
        const extents = a.listUnits().map((u) => [u.extentOffset, u.extentOffset + u.extentBytes] as const).sort((x, y) => x[0] - y[0]);
        for (let i = 1; i < extents.length; i++) expect(extents[i]![0]).toBeGreaterThanOrEqual(extents[i - 1]![1]);
        const full = a.info();
        expect(full.reservedBytes + full.freeBytes).toBeLessThanOrEqual(full.sizeBytes);
        a.removeUnit(ids[1]!);
        expect(a.info().unitCount).toBe(ids.length - 1);
        const again = unwrap(a.createUnit({ volumeId, segmentIndex: 99, sizeBytes: 8 * MiB }));
        // A new unit on a reused extent starts empty.
        expect(unwrap(again.read(8 * MiB - pageBytes, pageBytes))).toEqual(new Uint8Array(pageBytes));
        a.close();
        const b = Archive.open(t.path, { clusterId });
        expect(b.info().unitCount).toBe(ids.length);
        for (const info of b.listUnits()) {
          const want = info.segmentIndex === 99 ? new Uint8Array(pageBytes) : pattern(pageBytes, info.segmentIndex);
          expect(unwrap(b.openUnit(info.unitId)!.read(8 * MiB - pageBytes, pageBytes))).toEqual(want);
        }
        b.close();
      }),
    );

    test(
      "updateUnit records state, epoch and generation durably",
      withTarget(make, (t) => {
        const a = create(t);
        const u = unwrap(a.createUnit({ volumeId, segmentIndex: 1, sizeBytes: MiB, state: "building", epoch: 3 }));
        expect(u.info).toMatchObject({ state: "building", epoch: 3, generation: 0 });
        unwrap(a.updateUnit(u.info.unitId, { state: "active", epoch: 4, generation: 9 }));
        a.abandon();
        const b = Archive.open(t.path, { clusterId });
        expect(b.listUnits()[0]).toMatchObject({ state: "active", epoch: 4, generation: 9 });
        b.close();
      }),
    );

    describe("recovery of writes cut short by a crash", () => {
      test(
        "a page whose new data never landed reads as its old contents and old seq",
        withTarget(make, (t) => {
          const a = create(t);
          const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
          unwrap(u.write(0, pattern(pageBytes, 1), 10));
          unwrap(a.flush());
          const old = rawRead(t.path, where(u.info, 0).data, pageBytes);
          unwrap(u.write(0, pattern(pageBytes, 2), 11));
          const info = u.info;
          a.abandon();
          rawWrite(t.path, where(info, 0).data, old); // the data pwrite "did not happen"
          const b = Archive.open(t.path, { clusterId });
          expect(b.openReport.resolvedPages).toBe(1);
          const u2 = b.openUnit(0)!;
          expect(unwrap(u2.read(0, pageBytes))).toEqual(pattern(pageBytes, 1));
          expect(u2.pageSeq(0)).toBe(10);
          // And the next write builds on the recovered state.
          unwrap(u2.write(0, pattern(pageBytes, 3), 12));
          b.abandon();
          const c = Archive.open(t.path, { clusterId });
          expect(unwrap(c.openUnit(0)!.read(0, pageBytes))).toEqual(pattern(pageBytes, 3));
          c.close();
        }),
      );

      test(
        "a first write that never landed leaves the page unwritten (zeros), whatever the disk held",
        withTarget(make, (t) => {
          const a = create(t);
          const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
          unwrap(u.write(pageBytes, pattern(pageBytes, 1)));
          const info = u.info;
          a.abandon();
          rawWrite(t.path, where(info, 1).data, pattern(pageBytes, 77)); // stale garbage
          const b = Archive.open(t.path, { clusterId });
          const u2 = b.openUnit(0)!;
          expect(unwrap(u2.read(pageBytes, pageBytes))).toEqual(new Uint8Array(pageBytes));
          expect(u2.pageState(1)).toBe("unwritten");
          expect(b.info().writtenBytes).toBe(0);
          b.close();
        }),
      );

      test(
        "after unmap, flush and a lost write, the page is deallocated again, not a checksum error",
        withTarget(make, (t) => {
          const a = create(t);
          const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
          unwrap(u.write(0, pattern(pageBytes, 1)));
          unwrap(a.flush());
          unwrap(u.unmap(0, pageBytes));
          a.close();
          const b = Archive.open(t.path, { clusterId });
          const u2 = b.openUnit(0)!;
          unwrap(u2.write(0, pattern(pageBytes, 2)));
          const info = u2.info;
          b.abandon();
          rawWrite(t.path, where(info, 0).data, pattern(pageBytes, 1)); // the old bytes, as if the write was lost
          const c = Archive.open(t.path, { clusterId });
          expect(unwrap(c.openUnit(0)!.read(0, pageBytes))).toEqual(new Uint8Array(pageBytes));
          expect(c.openUnit(0)!.pageState(0)).toBe("deallocated");
          c.close();
        }),
      );

      test(
        "a page matching neither checksum (torn) reads as a medium error",
        withTarget(make, (t) => {
          const a = create(t);
          const u = unwrap(a.createUnit({ volumeId, segmentIndex: 0, sizeBytes: MiB }));
          unwrap(u.write(0, pattern(pageBytes, 1)));
          unwrap(a.flush());
          unwrap(u.write(0, pattern(pageBytes, 2)));
          const info = u.info;
          a.abandon();
          const torn = pattern(pageBytes, 2);
          torn.set(pattern(pageBytes, 1).subarray(0, 512));
          rawWrite(t.path, where(info, 0).data, torn);
          const b = Archive.open(t.path, { clusterId });
          const r = b.openUnit(0)!.read(0, pageBytes);
          expect(r.ok ? "ok" : r.code).toBe("MEDIUM_ERROR");
          expect(b.openUnit(0)!.pageState(0)).toBe("bad");
          b.close();
        }),
      );
    });
  });
}
