// A segment unit: a region of an archive holding one replica or shard of one segment, with a
// checksum and sequence number per 4 KiB page kept in the unit's page-metadata area (never in the
// page). Synchronous and inline; one pread per read, one pwrite of metadata then the data (one
// pwrite per 64 KiB, see dataPwriteBytesMax) per aligned write. Never returns data that fails its checksum: such reads return MEDIUM_ERROR.
//
// Ordering contract (crash consistency when the process is killed at any instant and the kernel
// keeps every completed pwrite; docs/ARCHIVE-FORMAT.md gives the full argument):
// 1. A write stamps each page's metadata entry {crcNew = crc(new), crcPrev = crc(current),
//    seq, prevSeq, stamp, state, prevState}, writes those entries, and only then the pages.
// 2. Writes to a unit are serial: the next write's metadata is written only after the previous
//    write's data pwrite returned (the calls are synchronous, and a Unit is used from one thread).
//    So "current contents" in rule 1 is always what the page holds or will hold if the crash
//    comes now, never a write still in flight.
// 3. At open, every written page stamped after the unit's last recorded flush is read and
//    resolved: matches crcNew (landed), crcPrev (did not land: back to the previous state and
//    seq) or neither (torn: state bad, reads fail). After that, crcNew always describes the page.
import type { IoFailure, IoResult } from "../volume/block-device.ts";
import { assert } from "../util/assert.ts";
import { errnoText, preadFull, pwriteFull } from "./file-io.ts";
import {
  PM,
  get48,
  pageBytes,
  pageMetaBytes,
  pageMetaIntact,
  pageSeed,
  pageStates,
  sealPageMeta,
  sectorBytes,
  seqMax,
  set48,
  type PageState,
  type UnitEntry,
  type UnitRole,
  type UnitState,
} from "./format.ts";
import { punchHole } from "./libc.ts";

export interface SegmentUnitInfo {
  unitId: number;
  volumeId: string;
  segmentIndex: number;
  role: UnitRole;
  /** Replica or erasure-coded shard index within the segment. */
  replicaIndex: number;
  state: UnitState;
  epoch: number;
  generation: number;
  sizeBytes: number;
  extentOffset: number;
  extentBytes: number;
  writtenBytes: number;
}

export type PageStateName = "unwritten" | "written" | "deallocated" | "bad";

export interface SegmentUnit {
  readonly info: SegmentUnitInfo;
  /** Reads [offsetBytes, +lengthBytes) (512-aligned) into `into` (exactly lengthBytes) or a new buffer. */
  read(offsetBytes: number, lengthBytes: number, into?: Uint8Array): IoResult<Uint8Array>;
  /** Writes `data` at `offsetBytes` (512-aligned). `seq` (< 2^48) is recorded per page; default: the unit's write stamp. */
  write(offsetBytes: number, data: Uint8Array, seq?: bigint | number): IoResult<void>;
  /** Deallocates whole pages (they read as zeros); partial pages at the edges are written with zeros. */
  unmap(offsetBytes: number, lengthBytes: number, seq?: bigint | number): IoResult<void>;
  /** The sequence number of the page's last write or unmap (0: never written). */
  pageSeq(pageIndex: number): number;
  pageState(pageIndex: number): PageStateName;
}

/** What a unit needs from its archive: the descriptor, shared scratch pages, the checksum. */
export interface UnitHost {
  readonly fd: number;
  readonly path: string;
  readonly kind: "file" | "block";
  /** Two pages of scratch for read-modify-write at the edges; shared, as units are used serially. */
  readonly scratchHead: Uint8Array;
  readonly scratchTail: Uint8Array;
  /** The page checksum algorithm the superblock names (before the location seed is XORed in). */
  checksum(page: Uint8Array): number;
}

const stateNames: readonly PageStateName[] = ["unwritten", "written", "deallocated", "bad"];

function ioFailure(code: "IO_ERROR" | "MEDIUM_ERROR", message: string, offsetBytes: number): IoFailure {
  return { ok: false, code, message, offsetBytes };
}

const OK_VOID: IoResult<void> = { ok: true, value: undefined };
/**
 * The most data one pwrite carries. Linux (6.16+ on ext4, earlier on XFS) sizes a page-cache
 * folio by the write that creates it, so one 1 MiB pwrite leaves a 1 MiB folio, and every later
 * 4 KiB write into it walks all of the folio's 256 block buffers: measured here (kernel 6.18,
 * ext4) a 4 KiB overwrite costs ~25-55 µs in a region written in 1 MiB pieces and ~6-10 µs in one
 * written in 64 KiB pieces, while a 1 MiB write in 64 KiB pieces costs ~25% more than in one
 * and a 4 KiB read from a 64 KiB folio ~0.5 µs more (1.6 against 1.2 µs) than from a 1 MiB one.
 * Random 4 KiB overwrites of sequentially written data are the common VM disk pattern.
 */
export const dataPwriteBytesMax = 64 << 10;
const dataPwritePagesMax = dataPwriteBytesMax / pageBytes;

export class Unit implements SegmentUnit {
  /** The page metadata area, mirrored in memory; on-disk entries are byte ranges of it. */
  private readonly meta: Uint8Array;
  private readonly metaView: DataView;
  readonly pages: number;
  /** The highest write stamp used in this unit (persisted in page entries). */
  stamp = 0;
  writtenPages = 0;

  constructor(
    private readonly host: UnitHost,
    readonly unitId: number,
    public entry: UnitEntry,
  ) {
    assert(entry.sizeBytes % pageBytes === 0, "unit size not whole pages");
    this.pages = entry.sizeBytes / pageBytes;
    this.meta = new Uint8Array(entry.metaBytes);
    this.metaView = new DataView(this.meta.buffer);
    // A fresh stamp must be above every stamp the flushed-stamp mark covers, even if the pages
    // carrying them were later unmapped or reverted: otherwise a later unflushed write could be
    // taken for a flushed one and skipped by recovery.
    this.stamp = entry.flushedStamp;
  }

  get info(): SegmentUnitInfo {
    const e = this.entry;
    return {
      unitId: this.unitId,
      volumeId: e.volumeId,
      segmentIndex: e.segmentIndex,
      role: e.role,
      replicaIndex: e.shardIndex,
      state: e.state,
      epoch: e.epoch,
      generation: e.generation,
      sizeBytes: e.sizeBytes,
      extentOffset: e.extentOffset,
      extentBytes: e.extentBytes,
      writtenBytes: this.writtenPages * pageBytes,
    };
  }

  private get dataStart(): number {
    return this.entry.extentOffset + this.entry.metaBytes;
  }

  private pageChecksum(page: Uint8Array, pageIndex: number): number {
    return (this.host.checksum(page) ^ pageSeed(this.unitId, pageIndex)) >>> 0;
  }

  /**
   * Loads the metadata area and resolves the pages written since the last flush (rule 3).
   * Returns how many pages recovery changed. Throws only on I/O errors (the archive refuses to open).
   */
  load(): { resolvedPages: number; damagedEntries: number } {
    const fd = this.host.fd;
    preadFull(fd, this.meta, this.entry.extentOffset);
    let damagedEntries = 0;
    for (let p = 0; p < this.pages; p++) {
      const at = p * pageMetaBytes;
      if (!pageMetaIntact(this.meta, this.metaView, at, pageSeed(this.unitId, p))) {
        // A damaged entry can't say what the page holds: the page reads as a medium error.
        damagedEntries++;
        this.meta.fill(0, at, at + pageMetaBytes);
        this.meta[at + PM.state] = pageStates.bad;
        this.meta[at + PM.prevState] = pageStates.bad;
        sealPageMeta(this.meta, this.metaView, at, pageSeed(this.unitId, p));
        continue;
      }
      const state = this.meta[at + PM.state];
      if (state === pageStates.written) this.writtenPages++;
      const stamp = get48(this.metaView, at + PM.stamp);
      if (stamp > this.stamp) this.stamp = stamp;
    }
    let resolvedPages = 0;
    const page = this.host.scratchHead;
    for (let p = 0; p < this.pages; p++) {
      const at = p * pageMetaBytes;
      if (this.meta[at + PM.state] !== pageStates.written) continue;
      if (get48(this.metaView, at + PM.stamp) <= this.entry.flushedStamp) continue;
      if (this.resolvePage(p, page)) resolvedPages++;
    }
    if (resolvedPages > 0 || damagedEntries > 0) pwriteFull(fd, this.meta, this.entry.extentOffset);
    return { resolvedPages, damagedEntries };
  }

  /** Rule 3 for one written page: makes crcNew describe what the page holds. True if it changed. */
  private resolvePage(p: number, page: Uint8Array): boolean {
    const at = p * pageMetaBytes;
    const dv = this.metaView;
    let crc: number;
    try {
      preadFull(this.host.fd, page, this.dataStart + p * pageBytes);
      crc = this.pageChecksum(page, p);
    } catch {
      crc = (dv.getUint32(at + PM.crcNew, true) ^ 1) >>> 0; // unreadable: matches neither
    }
    if (crc === dv.getUint32(at + PM.crcNew, true)) return false;
    const prevState = this.meta[at + PM.prevState] as PageState;
    if (prevState === pageStates.written && crc === dv.getUint32(at + PM.crcPrev, true)) {
      dv.setUint32(at + PM.crcNew, crc, true);
      set48(dv, at + PM.seq, get48(dv, at + PM.prevSeq));
    } else if (prevState === pageStates.unwritten || prevState === pageStates.deallocated) {
      // The page's first write since it was empty never landed: empty again, whatever it holds.
      dv.setUint32(at + PM.crcNew, 0, true);
      set48(dv, at + PM.seq, get48(dv, at + PM.prevSeq));
      this.meta[at + PM.state] = prevState;
      this.writtenPages--;
    } else {
      this.meta[at + PM.state] = pageStates.bad;
      this.writtenPages--;
    }
    sealPageMeta(this.meta, dv, at, pageSeed(this.unitId, p));
    return true;
  }

  pageSeq(pageIndex: number): number {
    assert(Number.isInteger(pageIndex) && pageIndex >= 0 && pageIndex < this.pages, "page index out of range");
    return get48(this.metaView, pageIndex * pageMetaBytes + PM.seq);
  }

  pageState(pageIndex: number): PageStateName {
    assert(Number.isInteger(pageIndex) && pageIndex >= 0 && pageIndex < this.pages, "page index out of range");
    return stateNames[this.meta[pageIndex * pageMetaBytes + PM.state] as number] as PageStateName;
  }

  private checkRange(offsetBytes: number, lengthBytes: number): void {
    assert(Number.isInteger(offsetBytes) && offsetBytes >= 0, "unit I/O offset must be a non-negative integer");
    assert(offsetBytes % sectorBytes === 0, "unit I/O offset must be 512-byte aligned");
    assert(lengthBytes % sectorBytes === 0, "unit I/O length must be 512-byte aligned");
    assert(offsetBytes + lengthBytes <= this.entry.sizeBytes, "unit I/O beyond the unit's end");
  }

  /** Verifies page p held in `page` against its metadata; zeros it if the page holds no data. */
  private verifyPage(p: number, page: Uint8Array): IoFailure | null {
    const at = p * pageMetaBytes;
    const state = this.meta[at + PM.state];
    if (state === pageStates.written) {
      if (this.pageChecksum(page, p) === this.metaView.getUint32(at + PM.crcNew, true)) return null;
    } else if (state !== pageStates.bad) {
      page.fill(0);
      return null;
    }
    return ioFailure("MEDIUM_ERROR", `page ${p} of segment unit ${this.unitId} in ${this.host.path} failed its checksum`, p * pageBytes);
  }

  /** Reads and verifies whole pages [p0, p0 + buf.length / pageBytes) into `buf`. */
  private readPages(p0: number, buf: Uint8Array): IoFailure | null {
    const n = buf.length / pageBytes;
    let anyData = false;
    for (let i = 0; i < n && !anyData; i++) anyData = this.meta[(p0 + i) * pageMetaBytes + PM.state] === pageStates.written;
    if (anyData) {
      try {
        preadFull(this.host.fd, buf, this.dataStart + p0 * pageBytes);
      } catch (e) {
        return ioFailure("IO_ERROR", `read of ${this.host.path} failed: ${errnoText(e)}`, p0 * pageBytes);
      }
    }
    if (n === 1) return this.verifyPage(p0, buf); // the common 4 KiB case: no view to allocate
    for (let i = 0; i < n; i++) {
      const failure = this.verifyPage(p0 + i, buf.subarray(i * pageBytes, (i + 1) * pageBytes));
      if (failure !== null) return failure;
    }
    return null;
  }

  read(offsetBytes: number, lengthBytes: number, into?: Uint8Array): IoResult<Uint8Array> {
    this.checkRange(offsetBytes, lengthBytes);
    const out = into ?? new Uint8Array(lengthBytes);
    assert(out.length === lengthBytes, "read buffer of the wrong size");
    const endBytes = offsetBytes + lengthBytes;
    let pos = offsetBytes;
    while (pos < endBytes) {
      const p = Math.floor(pos / pageBytes);
      const pageStart = p * pageBytes;
      if (pos === pageStart && endBytes - pos >= pageBytes) {
        // Whole pages straight into the caller's buffer.
        const n = Math.floor((endBytes - pos) / pageBytes);
        const failure = this.readPages(p, out.subarray(pos - offsetBytes, pos - offsetBytes + n * pageBytes));
        if (failure !== null) return failure;
        pos += n * pageBytes;
      } else {
        // A partial page: read and verify all of it, copy the part asked for.
        const page = this.host.scratchHead;
        const failure = this.readPages(p, page);
        if (failure !== null) return failure;
        const to = Math.min(endBytes, pageStart + pageBytes);
        out.set(page.subarray(pos - pageStart, to - pageStart), pos - offsetBytes);
        pos = to;
      }
    }
    return { ok: true, value: out };
  }

  private nextSeq(seq: bigint | number | undefined, stamp: number): number {
    if (seq === undefined) return stamp;
    const n = typeof seq === "bigint" ? Number(seq) : seq;
    assert(Number.isInteger(n) && n >= 0 && n <= seqMax, "page sequence number out of range");
    return n;
  }

  /** Rule 1 for page p: the metadata entry of a write whose new contents are `page`. */
  private stampWrite(p: number, page: Uint8Array, seq: number, stamp: number): void {
    const at = p * pageMetaBytes;
    const dv = this.metaView;
    const state = this.meta[at + PM.state] as PageState;
    dv.setUint32(at + PM.crcPrev, state === pageStates.written ? dv.getUint32(at + PM.crcNew, true) : 0, true);
    dv.setUint32(at + PM.crcNew, this.pageChecksum(page, p), true);
    set48(dv, at + PM.prevSeq, get48(dv, at + PM.seq));
    set48(dv, at + PM.seq, seq);
    set48(dv, at + PM.stamp, stamp);
    this.meta[at + PM.prevState] = state;
    this.meta[at + PM.state] = pageStates.written;
    sealPageMeta(this.meta, dv, at, pageSeed(this.unitId, p));
    if (state !== pageStates.written) this.writtenPages++;
  }

  write(offsetBytes: number, data: Uint8Array, seq?: bigint | number): IoResult<void> {
    this.checkRange(offsetBytes, data.length);
    if (data.length === 0) return OK_VOID;
    const endBytes = offsetBytes + data.length;
    const p0 = Math.floor(offsetBytes / pageBytes);
    const p1 = Math.ceil(endBytes / pageBytes);
    const headPartial = offsetBytes % pageBytes !== 0 || endBytes < (p0 + 1) * pageBytes;
    const tailPartial = p1 - 1 > p0 && endBytes % pageBytes !== 0;
    // Read-modify-write of partial pages at the edges, verified like any read (the old contents
    // must be right before they are merged into the new page).
    const head = this.host.scratchHead;
    const tail = this.host.scratchTail;
    if (headPartial) {
      const failure = this.readPages(p0, head);
      if (failure !== null) return failure;
      const to = Math.min(endBytes, (p0 + 1) * pageBytes);
      head.set(data.subarray(0, to - offsetBytes), offsetBytes - p0 * pageBytes);
    }
    if (tailPartial) {
      const failure = this.readPages(p1 - 1, tail);
      if (failure !== null) return failure;
      tail.set(data.subarray((p1 - 1) * pageBytes - offsetBytes), 0);
    }
    const fullFirst = headPartial ? p0 + 1 : p0;
    const fullEnd = tailPartial ? p1 - 1 : p1;
    const stamp = ++this.stamp;
    assert(stamp <= seqMax, "write stamp overflow");
    const pageSeqValue = this.nextSeq(seq, stamp);
    if (headPartial) this.stampWrite(p0, head, pageSeqValue, stamp);
    for (let p = fullFirst; p < fullEnd; p++) {
      const from = p * pageBytes - offsetBytes;
      this.stampWrite(p, data.subarray(from, from + pageBytes), pageSeqValue, stamp);
    }
    if (tailPartial) this.stampWrite(p1 - 1, tail, pageSeqValue, stamp);
    const fd = this.host.fd;
    try {
      pwriteFull(fd, this.meta.subarray(p0 * pageMetaBytes, p1 * pageMetaBytes), this.entry.extentOffset + p0 * pageMetaBytes);
      if (headPartial) pwriteFull(fd, head, this.dataStart + p0 * pageBytes);
      for (let p = fullFirst; p < fullEnd; p += dataPwritePagesMax) {
        const q = Math.min(fullEnd, p + dataPwritePagesMax);
        pwriteFull(fd, data.subarray(p * pageBytes - offsetBytes, q * pageBytes - offsetBytes), this.dataStart + p * pageBytes);
      }
      if (tailPartial) pwriteFull(fd, tail, this.dataStart + (p1 - 1) * pageBytes);
    } catch (e) {
      // Some of it may have landed: resolve each page as recovery would, so the unit keeps
      // answering old or new contents (or a medium error for a page that can't be read back).
      this.resolveAfterFailure(p0, p1);
      return ioFailure("IO_ERROR", `write to ${this.host.path} failed: ${errnoText(e)}`, offsetBytes);
    }
    return OK_VOID;
  }

  private resolveAfterFailure(p0: number, p1: number): void {
    const page = this.host.scratchHead;
    for (let p = p0; p < p1; p++) {
      if (this.meta[p * pageMetaBytes + PM.state] === pageStates.written) this.resolvePage(p, page);
    }
    try {
      pwriteFull(this.host.fd, this.meta.subarray(p0 * pageMetaBytes, p1 * pageMetaBytes), this.entry.extentOffset + p0 * pageMetaBytes);
    } catch {
      // The disk copy still follows rule 1; recovery at the next open resolves the same way.
    }
  }

  unmap(offsetBytes: number, lengthBytes: number, seq?: bigint | number): IoResult<void> {
    this.checkRange(offsetBytes, lengthBytes);
    const endBytes = offsetBytes + lengthBytes;
    const first = Math.ceil(offsetBytes / pageBytes);
    const last = Math.floor(endBytes / pageBytes);
    if (last <= first) {
      // Inside one page (or two partial pages with no whole page between): zeros.
      return lengthBytes === 0 ? OK_VOID : this.write(offsetBytes, new Uint8Array(lengthBytes), seq);
    }
    if (offsetBytes < first * pageBytes) {
      const r = this.write(offsetBytes, new Uint8Array(first * pageBytes - offsetBytes), seq);
      if (!r.ok) return r;
    }
    const stamp = ++this.stamp;
    const seqValue = this.nextSeq(seq, stamp);
    const dv = this.metaView;
    for (let p = first; p < last; p++) {
      const at = p * pageMetaBytes;
      const state = this.meta[at + PM.state] as PageState;
      if (state === pageStates.written) this.writtenPages--;
      dv.setUint32(at + PM.crcPrev, state === pageStates.written ? dv.getUint32(at + PM.crcNew, true) : 0, true);
      dv.setUint32(at + PM.crcNew, 0, true);
      set48(dv, at + PM.prevSeq, get48(dv, at + PM.seq));
      set48(dv, at + PM.seq, seqValue);
      set48(dv, at + PM.stamp, stamp);
      this.meta[at + PM.prevState] = state;
      this.meta[at + PM.state] = pageStates.deallocated;
      sealPageMeta(this.meta, dv, at, pageSeed(this.unitId, p));
    }
    try {
      // Metadata first: once it says "deallocated" the page reads as zeros whatever the data holds,
      // so the hole can be punched (or not, on a block device) at leisure.
      pwriteFull(this.host.fd, this.meta.subarray(first * pageMetaBytes, last * pageMetaBytes), this.entry.extentOffset + first * pageMetaBytes);
      if (this.host.kind === "file") punchHole(this.host.fd, this.dataStart + first * pageBytes, (last - first) * pageBytes);
    } catch (e) {
      return ioFailure("IO_ERROR", `unmap in ${this.host.path} failed: ${errnoText(e)}`, first * pageBytes);
    }
    if (endBytes > last * pageBytes) return this.write(last * pageBytes, new Uint8Array(endBytes - last * pageBytes), seq);
    return OK_VOID;
  }
}
