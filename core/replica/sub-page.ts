// 512-byte logical blocks over a replicated segment, whose units read and write whole 4 KiB pages
// only (coordinator.ts): a write that covers part of a page becomes a read of the pages it
// touches, the new bytes merged in, and a write of those whole pages (read-modify-write in the
// coordinator); a partial read reads the whole pages and returns the bytes asked for. Aligned I/O
// passes straight through.
//
// Ordering contract: read-modify-writes of one segment that touch a common page run one after
// another (a page lock per segment, taken in page order, so two writes to different 512-byte
// blocks of one page never lose one another). An aligned write that covers a page under a
// read-modify-write overlaps that command, and overlapping commands in flight have no defined
// order in SCSI (SAM-5 5.2), so it takes no lock. It never changes what an aligned I/O does.
import type { IoResult } from "../volume/block-device.ts";
import { pageBytes } from "../volume/layout.ts";
import type { SegmentStore, UnitProvider } from "../volume/volume.ts";
import { assert } from "../util/assert.ts";

/** Whole pages covering [offsetBytes, offsetBytes + lengthBytes). */
export function coveringPages(offsetBytes: number, lengthBytes: number): { offsetBytes: number; lengthBytes: number } {
  assert(offsetBytes >= 0 && lengthBytes > 0, "coveringPages: empty or negative range");
  const start = Math.floor(offsetBytes / pageBytes) * pageBytes;
  const end = Math.ceil((offsetBytes + lengthBytes) / pageBytes) * pageBytes;
  return { offsetBytes: start, lengthBytes: end - start };
}

export function isPageAligned(offsetBytes: number, lengthBytes: number): boolean {
  return offsetBytes % pageBytes === 0 && lengthBytes % pageBytes === 0;
}

/** Per-page FIFO locks of one segment. */
export class PageLocks {
  private readonly tails = new Map<number, Promise<void>>();

  /** Runs `fn` holding every page of [firstPage, firstPage + pages): queued behind earlier holders. */
  async with<T>(firstPage: number, pages: number, fn: () => Promise<T>): Promise<T> {
    assert(pages > 0, "PageLocks: no page");
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const waits: Array<Promise<void>> = [];
    for (let p = firstPage; p < firstPage + pages; p++) {
      const before = this.tails.get(p);
      if (before !== undefined) waits.push(before);
      this.tails.set(p, held);
    }
    await Promise.all(waits);
    try {
      return await fn();
    } finally {
      release();
      for (let p = firstPage; p < firstPage + pages; p++) if (this.tails.get(p) === held) this.tails.delete(p);
    }
  }

  /** Pages with a holder or a waiter (for tests: empty when idle). */
  get busyPages(): number {
    return this.tails.size;
  }
}

/** A SegmentStore that accepts 512-byte-aligned I/O over one that accepts whole pages only. */
export function subPageStore(inner: SegmentStore, locks: PageLocks): SegmentStore {
  const readAll = async (offsetBytes: number, lengthBytes: number): Promise<IoResult<Uint8Array>> => inner.read(offsetBytes, lengthBytes, new Uint8Array(lengthBytes));
  const merge = async (offsetBytes: number, data: Uint8Array): Promise<IoResult<void>> => {
    const span = coveringPages(offsetBytes, data.length);
    return locks.with(span.offsetBytes / pageBytes, span.lengthBytes / pageBytes, async () => {
      const old = await readAll(span.offsetBytes, span.lengthBytes);
      if (!old.ok) return old;
      const pages = old.value;
      pages.set(data, offsetBytes - span.offsetBytes);
      return inner.write(span.offsetBytes, pages);
    });
  };
  return {
    read: async (offsetBytes, lengthBytes, into) => {
      if (isPageAligned(offsetBytes, lengthBytes)) return inner.read(offsetBytes, lengthBytes, into);
      const span = coveringPages(offsetBytes, lengthBytes);
      const got = await readAll(span.offsetBytes, span.lengthBytes);
      if (!got.ok) return got;
      const start = offsetBytes - span.offsetBytes;
      into.set(got.value.subarray(start, start + lengthBytes));
      return { ok: true, value: into };
    },
    write: (offsetBytes, data) => {
      if (isPageAligned(offsetBytes, data.length)) return inner.write(offsetBytes, data);
      // `data` is valid only during the call: the merge runs later.
      return merge(offsetBytes, data.slice());
    },
    unmap: (offsetBytes, lengthBytes) => {
      if (isPageAligned(offsetBytes, lengthBytes)) return inner.unmap(offsetBytes, lengthBytes);
      return merge(offsetBytes, new Uint8Array(lengthBytes));
    },
  };
}

/** A UnitProvider whose segment stores take 512-byte-aligned I/O (one PageLocks per segment). */
export function subPageProvider(inner: UnitProvider): UnitProvider {
  const locks = new Map<string, PageLocks>();
  const wrapped = new WeakMap<SegmentStore, SegmentStore>();
  const wrap = (volumeId: string, segment: number, store: SegmentStore): SegmentStore => {
    let w = wrapped.get(store);
    if (w === undefined) {
      const key = `${volumeId}/${segment}`;
      let l = locks.get(key);
      if (l === undefined) {
        l = new PageLocks();
        locks.set(key, l);
      }
      w = subPageStore(store, l);
      wrapped.set(store, w);
    }
    return w;
  };
  return {
    find: (volumeId, segment) => {
      const s = inner.find(volumeId, segment);
      return s === undefined ? undefined : wrap(volumeId, segment, s);
    },
    allocate: (volumeId, segment, sizeBytes) => {
      const r = inner.allocate(volumeId, segment, sizeBytes);
      return r.ok ? { ok: true, value: wrap(volumeId, segment, r.value) } : r;
    },
    flush: (volumeId) => inner.flush(volumeId),
  };
}
