import { describe, expect, test } from "bun:test";
import type { IoResult } from "../volume/block-device.ts";
import type { SegmentStore } from "../volume/volume.ts";
import { PageLocks, coveringPages, subPageStore } from "./sub-page.ts";

const page = 4096;

/**
 * A segment store with the coordinator's contract (whole 4 KiB pages only, answers later, copies
 * what it is given), over memory; it counts what reached it.
 */
function pageStore(pages: number): SegmentStore & { bytes: Uint8Array; ops: string[] } {
  const bytes = new Uint8Array(pages * page);
  const ops: string[] = [];
  const later = <T>(v: T): Promise<T> => new Promise((r) => setTimeout(() => r(v), Math.random() * 3));
  const aligned = (o: number, l: number): IoResult<never> | null => (o % page === 0 && l % page === 0 ? null : { ok: false, code: "INVALID_ARGUMENT", message: `unaligned ${o}+${l}` });
  return {
    bytes,
    ops,
    read: (o, l, into) => {
      ops.push(`read ${o}+${l}`);
      const bad = aligned(o, l);
      if (bad !== null) return bad;
      const copy = bytes.slice(o, o + l);
      return later(copy).then((c) => (into.set(c), { ok: true, value: into }));
    },
    write: (o, d) => {
      ops.push(`write ${o}+${d.length}`);
      const bad = aligned(o, d.length);
      if (bad !== null) return bad;
      const copy = d.slice();
      return later(null).then(() => (bytes.set(copy, o), { ok: true, value: undefined }));
    },
    unmap: (o, l) => {
      ops.push(`unmap ${o}+${l}`);
      return aligned(o, l) ?? later(null).then(() => (bytes.fill(0, o, o + l), { ok: true, value: undefined }));
    },
  };
}

describe("sub-page I/O over a page-only segment store", () => {
  test("coveringPages() widens a range to whole pages", () => {
    expect(coveringPages(512, 1024)).toEqual({ offsetBytes: 0, lengthBytes: page });
    expect(coveringPages(3584, 1024)).toEqual({ offsetBytes: 0, lengthBytes: 2 * page });
    expect(coveringPages(page, page)).toEqual({ offsetBytes: page, lengthBytes: page });
  });

  test("aligned I/O passes straight through", async () => {
    const inner = pageStore(4);
    const s = subPageStore(inner, new PageLocks());
    expect((await s.write(page, new Uint8Array(page).fill(7))).ok).toBe(true);
    const r = await s.read(page, page, new Uint8Array(page));
    expect(r.ok && r.value.every((b) => b === 7)).toBe(true);
    expect(inner.ops).toEqual([`write ${page}+${page}`, `read ${page}+${page}`]);
  });

  test("a 512-byte write is a read-modify-write of its page; the rest of the page is kept", async () => {
    const inner = pageStore(2);
    inner.bytes.fill(0xaa);
    const s = subPageStore(inner, new PageLocks());
    const r = await s.write(512, new Uint8Array(512).fill(0x11));
    expect(r.ok).toBe(true);
    expect(inner.ops).toEqual(["read 0+4096", "write 0+4096"]);
    expect(inner.bytes.subarray(0, 512).every((b) => b === 0xaa)).toBe(true);
    expect(inner.bytes.subarray(512, 1024).every((b) => b === 0x11)).toBe(true);
    expect(inner.bytes.subarray(1024).every((b) => b === 0xaa)).toBe(true);
    const back = await s.read(256, 1024, new Uint8Array(1024));
    expect(back.ok).toBe(true);
    if (back.ok) expect([...back.value.subarray(0, 256)].every((b) => b === 0xaa) && [...back.value.subarray(256, 768)].every((b) => b === 0x11)).toBe(true);
  });

  test("a write across a page boundary rewrites both pages; unmap of part of a page writes zeros there only", async () => {
    const inner = pageStore(3);
    inner.bytes.fill(0x55);
    const s = subPageStore(inner, new PageLocks());
    expect((await s.write(page - 512, new Uint8Array(1024).fill(1))).ok).toBe(true);
    expect(inner.ops.slice(-2)).toEqual([`read 0+${2 * page}`, `write 0+${2 * page}`]);
    expect([...inner.bytes.subarray(page - 512, page + 512)].every((b) => b === 1)).toBe(true);
    expect((await s.unmap(2 * page + 512, 512)).ok).toBe(true);
    expect([...inner.bytes.subarray(2 * page + 512, 2 * page + 1024)].every((b) => b === 0)).toBe(true);
    expect(inner.bytes[2 * page + 1024]).toBe(0x55);
  });

  test("concurrent writes to the eight 512-byte blocks of one page all land (the page lock), many times over", async () => {
    for (let round = 0; round < 20; round++) {
      const inner = pageStore(2);
      const locks = new PageLocks();
      const s = subPageStore(inner, locks);
      const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => s.write(i * 512 + (round % 2) * page, new Uint8Array(512).fill(i + 1))));
      expect(rs.every((r) => r.ok)).toBe(true);
      for (let i = 0; i < 8; i++) expect(inner.bytes[(round % 2) * page + i * 512]).toBe(i + 1);
      expect(locks.busyPages).toBe(0);
    }
  });

  test("a failed read of the page fails the write and writes nothing", async () => {
    const inner = pageStore(1);
    const failing: SegmentStore = { ...inner, read: () => ({ ok: false, code: "IO_ERROR", message: "primary gone" }) };
    const locks = new PageLocks();
    const r = await subPageStore(failing, locks).write(512, new Uint8Array(512).fill(9));
    expect(r).toEqual({ ok: false, code: "IO_ERROR", message: "primary gone" });
    expect(inner.ops.filter((o) => o.startsWith("write"))).toEqual([]);
    expect(locks.busyPages).toBe(0);
  });
});
