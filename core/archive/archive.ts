// An Archive: a file (sparse) or a raw block device holding segment units, self-describing
// through its superblock and unit table (format.ts). All I/O is synchronous on a kept-open
// descriptor: the data path runs inline on the event loop (see docs/ARCHITECTURE.md).
//
// Ordering contract (crash consistency under SIGKILL, where every completed pwrite survives):
// - A page write first writes the page's metadata entry {P = crc(new), A = crc(old), seq}, then
//   the page. A crash between the two leaves a page matching A; recovery at open resolves every
//   page written since the unit's last flush to P (landed), A (did not land) or "unwritten".
//   So a page always reads as its old or its new contents, never as a checksum failure.
// - flush() fdatasyncs, then records the unit's flushed sequence number (made durable by the
//   next flush; recovery only needs it to be no later than the truth).
// - A unit's table entry is written after its metadata area is zeroed, and cleared before its
//   extent is punched: a crash never leaves an entry pointing at another unit's metadata.
// Never returns data whose checksum fails: such reads return MEDIUM_ERROR.
import { closeSync, existsSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync, rmSync, writeSync, type Stats } from "node:fs";
import type { IoFailure, IoResult } from "../volume/block-device.ts";
import { assert } from "../util/assert.ts";
import { crc32c } from "../util/crc32c.ts";
import { QstoraError } from "../util/errors.ts";
import { punchHole } from "./libc.ts";
import {
  PM,
  archiveBytesMin,
  dataOffset,
  decodeSuperblock,
  decodeUnitEntry,
  encodeSuperblock,
  encodeUnitEntry,
  extentAlignBytes,
  extentBytesFor,
  formatVersion,
  hasSuperblockMagic,
  metaBytesFor,
  pageBytes,
  pageFlags,
  pageMetaBytes,
  pageSeed,
  superblockBytes,
  superblockOffsets,
  unitEntryBytes,
  unitTableEntries,
  unitTableOffset,
  type ChecksumName,
  type Superblock,
  type UnitEntry,
} from "./format.ts";

export interface SegmentUnitInfo {
  unitId: number;
  volumeId: string;
  segmentIndex: number;
  role: number;
  replicaIndex: number;
  sizeBytes: number;
  extentOffset: number;
  writtenBytes: number;
}

export interface ArchiveInfo {
  id: string;
  clusterId: string;
  path: string;
  kind: "file" | "block";
  sizeBytes: number;
  reservedBytes: number;
  writtenBytes: number;
  freeBytes: number;
  unitCount: number;
}

const OK_VOID: IoResult<void> = { ok: true, value: undefined };

function ioFailure(code: "IO_ERROR" | "MEDIUM_ERROR" | "NO_SPACE", message: string, offsetBytes?: number): IoFailure {
  return offsetBytes === undefined ? { ok: false, code, message } : { ok: false, code, message, offsetBytes };
}

function errnoText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Size of a block device, from sysfs (in 512-byte sectors whatever the device's block size). */
function blockDeviceBytes(st: Stats): number {
  const major = Math.floor(st.rdev / 256) & 0xfff;
  const minor = (st.rdev & 0xff) | ((st.rdev >>> 12) & 0xfff00);
  const sectors = Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, "utf8").trim());
  return sectors * 512;
}

function preadFull(fd: number, buf: Uint8Array, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  if (done < buf.length) buf.fill(0, done); // beyond the end of a file: zeros
  return done;
}

function pwriteFull(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, position + done);
}

export class Archive {
  private readonly units = new Map<number, Unit>();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly sb: Superblock,
    readonly kind: "file" | "block",
  ) {}

  get id(): string {
    return this.sb.archiveId;
  }
  get clusterId(): string {
    return this.sb.clusterId;
  }

  /** Reads the superblock(s) without opening for write: who owns this path, if anyone. */
  static probe(path: string): { clusterId: string; archiveId: string } | null {
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch {
      return null;
    }
    try {
      for (const off of superblockOffsets) {
        const buf = new Uint8Array(superblockBytes);
        preadFull(fd, buf, off);
        const r = decodeSuperblock(buf);
        if (r.ok) return { clusterId: r.superblock.clusterId, archiveId: r.superblock.archiveId };
      }
      return null;
    } finally {
      closeSync(fd);
    }
  }

  /** Formats `path` as a new archive of `clusterId`. Refuses a path that holds an archive already. */
  static create(spec: { path: string; sizeBytes?: number; clusterId: string; archiveId?: string; checksum?: ChecksumName }): Archive {
    const existed = existsSync(spec.path);
    let fd: number;
    try {
      fd = openSync(spec.path, existed ? "r+" : "wx+", 0o600);
    } catch (e) {
      throw new QstoraError("ARCHIVE_INVALID", `cannot open ${spec.path} for writing: ${errnoText(e)}`, "Choose a path in a directory this user can write, on a local file system.");
    }
    try {
      const st = fstatSync(fd);
      const kind = st.isBlockDevice() ? "block" : st.isFile() ? "file" : null;
      if (kind === null) throw new QstoraError("ARCHIVE_INVALID", `${spec.path} is neither a regular file nor a block device`);
      if (existed) {
        for (const off of superblockOffsets) {
          const buf = new Uint8Array(superblockBytes);
          preadFull(fd, buf, off);
          if (!hasSuperblockMagic(buf)) continue;
          const r = decodeSuperblock(buf);
          if (r.ok && r.superblock.clusterId !== spec.clusterId) {
            throw new QstoraError("ARCHIVE_INVALID", `${spec.path} belongs to another cluster (${r.superblock.clusterId})`, "Use another path; to reuse it, remove it from that cluster first, or wipe it if that cluster is gone.");
          }
          if (r.ok) throw new QstoraError("ARCHIVE_INVALID", `${spec.path} is already archive ${r.superblock.archiveId} of this cluster`);
          throw new QstoraError("ARCHIVE_INVALID", `${spec.path} holds a qstora archive whose superblock is damaged (${r.reason})`, "It may hold data: inspect it, or wipe the first 8 KiB to reuse the path.");
        }
      }
      let sizeBytes: number;
      if (kind === "block") {
        sizeBytes = blockDeviceBytes(st);
      } else if (spec.sizeBytes !== undefined) {
        sizeBytes = spec.sizeBytes;
        if (existed && st.size > sizeBytes) throw new QstoraError("ARCHIVE_INVALID", `${spec.path} is larger (${st.size} bytes) than the size asked for`, "Leave out :SIZE to use the file's size.");
      } else {
        sizeBytes = st.size;
      }
      sizeBytes = Math.floor(sizeBytes / extentAlignBytes) * extentAlignBytes;
      if (sizeBytes < archiveBytesMin) throw new QstoraError("INVALID_ARGUMENT", `archive ${spec.path} would be ${sizeBytes} bytes; the least is ${archiveBytesMin >> 20} MiB`);
      if (kind === "file") {
        try {
          // Sparse: set the length without allocating blocks.
          if (st.size < sizeBytes) ftruncateSync(fd, sizeBytes);
        } catch (e) {
          throw new QstoraError("ARCHIVE_INVALID", `cannot size ${spec.path}: ${errnoText(e)}`);
        }
      }
      const sb: Superblock = {
        formatVersion,
        pageBytes,
        clusterId: spec.clusterId,
        archiveId: spec.archiveId ?? crypto.randomUUID(),
        sizeBytes,
        unitTableOffset,
        unitTableEntries,
        dataOffset,
        checksum: spec.checksum ?? "crc32c",
        createdAtMs: Date.now(),
      };
      // The table first (all free), then the superblocks: a crash mid-format leaves no valid
      // superblock, so the path is simply not an archive yet.
      const table = new Uint8Array(unitTableEntries * unitEntryBytes);
      pwriteFull(fd, table, unitTableOffset);
      const sbBytes = encodeSuperblock(sb);
      for (const off of superblockOffsets) pwriteFull(fd, sbBytes, off);
      fdatasyncSync(fd);
      return new Archive(spec.path, fd, sb, kind);
    } catch (e) {
      closeSync(fd);
      if (!existed) rmSync(spec.path, { force: true });
      if (e instanceof QstoraError) throw e;
      throw new QstoraError("ARCHIVE_INVALID", `cannot format ${spec.path}: ${errnoText(e)}`);
    }
  }

  /** Opens an existing archive, checks its superblock (falling back to the backup) and owner. */
  static open(path: string, options: { clusterId?: string } = {}): Archive {
    let fd: number;
    try {
      fd = openSync(path, "r+");
    } catch (e) {
      throw new QstoraError("ARCHIVE_INVALID", `cannot open archive ${path}: ${errnoText(e)}`, "Check that the file or device exists and this user can write it.");
    }
    try {
      const st = fstatSync(fd);
      const kind = st.isBlockDevice() ? "block" : "file";
      const copies = superblockOffsets.map((off) => {
        const buf = new Uint8Array(superblockBytes);
        preadFull(fd, buf, off);
        return decodeSuperblock(buf);
      });
      const good = copies.find((c) => c.ok);
      if (good === undefined || !good.ok) {
        const reason = copies[0]?.ok === false ? copies[0].reason : "unknown";
        throw new QstoraError("ARCHIVE_INVALID", reason === "no-magic" ? `${path} is not a qstora archive` : `the superblock of ${path} is damaged (${reason}) in both copies`, "Restore the device or file; qstora will not guess its layout.");
      }
      const sb = good.superblock;
      if (options.clusterId !== undefined && sb.clusterId !== options.clusterId) {
        throw new QstoraError("ARCHIVE_INVALID", `${path} belongs to another cluster (${sb.clusterId})`);
      }
      if (!copies.every((c) => c.ok)) {
        // Repair the damaged copy from the good one.
        const bytes = encodeSuperblock(sb);
        for (const off of superblockOffsets) pwriteFull(fd, bytes, off);
        fdatasyncSync(fd);
      }
      const archive = new Archive(path, fd, sb, kind);
      archive.loadUnits();
      return archive;
    } catch (e) {
      closeSync(fd);
      if (e instanceof QstoraError) throw e;
      throw new QstoraError("ARCHIVE_INVALID", `cannot open archive ${path}: ${errnoText(e)}`);
    }
  }

  private loadUnits(): void {
    const table = new Uint8Array(this.sb.unitTableEntries * unitEntryBytes);
    preadFull(this.fd, table, this.sb.unitTableOffset);
    for (let i = 0; i < this.sb.unitTableEntries; i++) {
      const r = decodeUnitEntry(table.subarray(i * unitEntryBytes, (i + 1) * unitEntryBytes));
      if (r.kind === "corrupt") throw new QstoraError("ARCHIVE_INVALID", `${this.path}: segment unit table entry ${i} is damaged`);
      if (r.kind === "used") this.units.set(i, new Unit(this, i, r.entry));
    }
    for (const u of this.units.values()) u.recover();
  }

  /** @internal for Unit */
  get descriptor(): number {
    return this.fd;
  }
  /** @internal for Unit */
  writeEntry(unitId: number, entry: UnitEntry | null): void {
    const bytes = entry === null ? new Uint8Array(unitEntryBytes) : encodeUnitEntry(entry);
    pwriteFull(this.fd, bytes, this.sb.unitTableOffset + unitId * unitEntryBytes);
  }

  info(): ArchiveInfo {
    let reserved = 0;
    let written = 0;
    for (const u of this.units.values()) {
      reserved += extentBytesFor(u.entry.sizeBytes);
      written += u.writtenPages * pageBytes;
    }
    return {
      id: this.id,
      clusterId: this.clusterId,
      path: this.path,
      kind: this.kind,
      sizeBytes: this.sb.sizeBytes,
      reservedBytes: reserved,
      writtenBytes: written,
      freeBytes: this.sb.sizeBytes - this.sb.dataOffset - reserved,
      unitCount: this.units.size,
    };
  }

  listUnits(): SegmentUnitInfo[] {
    return [...this.units.values()].map((u) => u.info);
  }

  /** First fit over the gaps between used extents. */
  private findExtent(bytes: number): number | null {
    const used = [...this.units.values()].map((u) => [u.entry.extentOffset, u.entry.extentOffset + extentBytesFor(u.entry.sizeBytes)] as const).sort((a, b) => a[0] - b[0]);
    let cursor = this.sb.dataOffset;
    for (const [start, end] of used) {
      if (start - cursor >= bytes) return cursor;
      cursor = Math.max(cursor, end);
    }
    return this.sb.sizeBytes - cursor >= bytes ? cursor : null;
  }

  createUnit(spec: { volumeId: string; segmentIndex: number; sizeBytes: number; role?: number; replicaIndex?: number; epoch?: number }): IoResult<SegmentUnit> {
    assert(!this.closed, "archive closed");
    assert(spec.sizeBytes > 0 && spec.sizeBytes % pageBytes === 0, "unit size must be whole pages");
    let unitId = -1;
    for (let i = 0; i < this.sb.unitTableEntries; i++) {
      if (!this.units.has(i)) {
        unitId = i;
        break;
      }
    }
    if (unitId < 0) return ioFailure("NO_SPACE", `archive ${this.path} has no free segment-unit slot`);
    const extentBytes = extentBytesFor(spec.sizeBytes);
    const extentOffset = this.findExtent(extentBytes);
    if (extentOffset === null) return ioFailure("NO_SPACE", `archive ${this.path} has no free extent of ${extentBytes} bytes`);
    const metaBytes = metaBytesFor(spec.sizeBytes);
    try {
      // A fresh extent must read as zeros (metadata "never written"). Punch it on files (also
      // frees space of a unit that lived there before); write zeros where punching fails.
      if (!punchHole(this.fd, extentOffset, extentBytes)) {
        const zeros = new Uint8Array(Math.min(metaBytes, 1 << 20));
        for (let off = 0; off < metaBytes; off += zeros.length) pwriteFull(this.fd, zeros.subarray(0, Math.min(zeros.length, metaBytes - off)), extentOffset + off);
      }
      const entry: UnitEntry = {
        volumeId: spec.volumeId,
        segmentIndex: spec.segmentIndex,
        role: spec.role ?? 0,
        replicaIndex: spec.replicaIndex ?? 0,
        extentOffset,
        sizeBytes: spec.sizeBytes,
        metaBytes,
        flushedSeq: 0,
        epoch: spec.epoch ?? 0,
        createdAtMs: Date.now(),
      };
      this.writeEntry(unitId, entry);
      const unit = new Unit(this, unitId, entry);
      this.units.set(unitId, unit);
      return { ok: true, value: unit };
    } catch (e) {
      return ioFailure("IO_ERROR", `cannot create a segment unit in ${this.path}: ${errnoText(e)}`);
    }
  }

  openUnit(unitId: number): SegmentUnit | undefined {
    return this.units.get(unitId);
  }

  removeUnit(unitId: number): void {
    const unit = this.units.get(unitId);
    if (unit === undefined) return;
    this.writeEntry(unitId, null);
    this.units.delete(unitId);
    punchHole(this.fd, unit.entry.extentOffset, extentBytesFor(unit.entry.sizeBytes));
  }

  flush(): IoResult<void> {
    assert(!this.closed, "archive closed");
    const marks = [...this.units.values()].filter((u) => u.seq > u.entry.flushedSeq).map((u) => [u, u.seq] as const);
    try {
      fdatasyncSync(this.fd);
      for (const [u, seq] of marks) {
        u.entry = { ...u.entry, flushedSeq: seq };
        this.writeEntry(u.unitId, u.entry);
      }
    } catch (e) {
      return ioFailure("IO_ERROR", `flush of ${this.path} failed: ${errnoText(e)}`);
    }
    return OK_VOID;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      fdatasyncSync(this.fd);
    } finally {
      closeSync(this.fd);
    }
  }
}

export interface SegmentUnit {
  readonly info: SegmentUnitInfo;
  read(offsetBytes: number, lengthBytes: number, into?: Uint8Array): IoResult<Uint8Array>;
  write(offsetBytes: number, data: Uint8Array): IoResult<void>;
  unmap(offsetBytes: number, lengthBytes: number): IoResult<void>;
  pageSeq(pageIndex: number): number;
}

class Unit implements SegmentUnit {
  /** Page metadata, mirrored in memory (16 bytes per page). */
  private readonly meta: Uint8Array;
  private readonly metaView: DataView;
  private readonly pages: number;
  seq = 0;
  writtenPages = 0;
  private scratch = new Uint8Array(0);

  constructor(
    private readonly archive: Archive,
    readonly unitId: number,
    public entry: UnitEntry,
  ) {
    this.pages = entry.sizeBytes / pageBytes;
    this.meta = new Uint8Array(entry.metaBytes);
    this.metaView = new DataView(this.meta.buffer);
    preadFull(archive.descriptor, this.meta, entry.extentOffset);
    for (let p = 0; p < this.pages; p++) {
      const flags = this.metaView.getUint32(p * pageMetaBytes + PM.flags, true);
      if (flags & pageFlags.written) this.writtenPages++;
      this.seq = Math.max(this.seq, this.metaView.getUint32(p * pageMetaBytes + PM.seq, true));
    }
  }

  get info(): SegmentUnitInfo {
    return {
      unitId: this.unitId,
      volumeId: this.entry.volumeId,
      segmentIndex: this.entry.segmentIndex,
      role: this.entry.role,
      replicaIndex: this.entry.replicaIndex,
      sizeBytes: this.entry.sizeBytes,
      extentOffset: this.entry.extentOffset,
      writtenBytes: this.writtenPages * pageBytes,
    };
  }

  private get dataStart(): number {
    return this.entry.extentOffset + this.entry.metaBytes;
  }

  private crcOf(page: Uint8Array, pageIndex: number): number {
    return crc32c(page, pageSeed(this.unitId, pageIndex));
  }

  /** Resolves pages written after the last recorded flush (see the ordering contract). */
  recover(): void {
    const fd = this.archive.descriptor;
    const page = new Uint8Array(pageBytes);
    let changed = false;
    for (let p = 0; p < this.pages; p++) {
      const at = p * pageMetaBytes;
      const seq = this.metaView.getUint32(at + PM.seq, true);
      const flags = this.metaView.getUint32(at + PM.flags, true);
      if (seq <= this.entry.flushedSeq || !(flags & pageFlags.written) || flags & pageFlags.bad) continue;
      preadFull(fd, page, this.dataStart + p * pageBytes);
      const crc = this.crcOf(page, p);
      if (crc === this.metaView.getUint32(at + PM.crcNew, true)) continue; // the write landed
      changed = true;
      if (!(flags & pageFlags.prevWritten)) {
        this.meta.fill(0, at, at + pageMetaBytes); // first write never landed: unwritten again
        this.writtenPages--;
      } else if (crc === this.metaView.getUint32(at + PM.crcPrev, true)) {
        this.metaView.setUint32(at + PM.crcNew, crc, true); // it did not land: the old contents stand
      } else {
        this.metaView.setUint32(at + PM.flags, flags | pageFlags.bad, true); // torn
      }
    }
    if (changed) pwriteFull(fd, this.meta, this.entry.extentOffset);
  }

  pageSeq(pageIndex: number): number {
    return this.metaView.getUint32(pageIndex * pageMetaBytes + PM.seq, true);
  }

  private check(offsetBytes: number, lengthBytes: number): void {
    assert(offsetBytes % 512 === 0 && lengthBytes % 512 === 0, "unit I/O must be 512-byte aligned");
    assert(offsetBytes >= 0 && offsetBytes + lengthBytes <= this.entry.sizeBytes, "unit I/O out of range");
  }

  /** Reads and verifies whole pages [p0, p0+n) into `buf` (n pages long). */
  private readPages(p0: number, n: number, buf: Uint8Array): IoFailure | null {
    try {
      preadFull(this.archive.descriptor, buf, this.dataStart + p0 * pageBytes);
    } catch (e) {
      return ioFailure("IO_ERROR", `read failed: ${errnoText(e)}`, p0 * pageBytes);
    }
    for (let i = 0; i < n; i++) {
      const p = p0 + i;
      const at = p * pageMetaBytes;
      const flags = this.metaView.getUint32(at + PM.flags, true);
      const page = buf.subarray(i * pageBytes, (i + 1) * pageBytes);
      if (!(flags & pageFlags.written)) {
        page.fill(0);
        continue;
      }
      if (flags & pageFlags.bad || this.crcOf(page, p) !== this.metaView.getUint32(at + PM.crcNew, true)) {
        return ioFailure("MEDIUM_ERROR", `page ${p} of segment unit ${this.unitId} in ${this.archive.path} failed its checksum`, p * pageBytes);
      }
    }
    return null;
  }

  private scratchOf(bytes: number): Uint8Array {
    if (this.scratch.length < bytes) this.scratch = new Uint8Array(Math.max(bytes, 2 * this.scratch.length));
    return this.scratch.subarray(0, bytes);
  }

  read(offsetBytes: number, lengthBytes: number, into?: Uint8Array): IoResult<Uint8Array> {
    this.check(offsetBytes, lengthBytes);
    const out = into ?? new Uint8Array(lengthBytes);
    assert(out.length === lengthBytes, "read buffer of the wrong size");
    const p0 = Math.floor(offsetBytes / pageBytes);
    const p1 = Math.ceil((offsetBytes + lengthBytes) / pageBytes);
    const aligned = offsetBytes % pageBytes === 0 && lengthBytes % pageBytes === 0;
    const buf = aligned ? out : this.scratchOf((p1 - p0) * pageBytes);
    const failure = this.readPages(p0, p1 - p0, buf);
    if (failure !== null) return failure;
    if (!aligned) out.set(buf.subarray(offsetBytes - p0 * pageBytes, offsetBytes - p0 * pageBytes + lengthBytes));
    return { ok: true, value: out };
  }

  write(offsetBytes: number, data: Uint8Array): IoResult<void> {
    this.check(offsetBytes, data.length);
    const p0 = Math.floor(offsetBytes / pageBytes);
    const p1 = Math.ceil((offsetBytes + data.length) / pageBytes);
    let pagesBuf = data;
    if (offsetBytes % pageBytes !== 0 || data.length % pageBytes !== 0) {
      // Read-modify-write of the partial pages at the edges, under the same rules.
      pagesBuf = new Uint8Array((p1 - p0) * pageBytes);
      const head = this.readPages(p0, 1, pagesBuf.subarray(0, pageBytes));
      if (head !== null) return head;
      if (p1 - 1 > p0) {
        const tail = this.readPages(p1 - 1, 1, pagesBuf.subarray(pagesBuf.length - pageBytes));
        if (tail !== null) return tail;
      }
      pagesBuf.set(data, offsetBytes - p0 * pageBytes);
    }
    const seq = ++this.seq;
    const metaStart = p0 * pageMetaBytes;
    for (let i = 0; i < p1 - p0; i++) {
      const p = p0 + i;
      const at = p * pageMetaBytes;
      const flags = this.metaView.getUint32(at + PM.flags, true);
      const wasWritten = (flags & pageFlags.written) !== 0 && (flags & pageFlags.bad) === 0;
      this.metaView.setUint32(at + PM.crcPrev, wasWritten ? this.metaView.getUint32(at + PM.crcNew, true) : 0, true);
      this.metaView.setUint32(at + PM.crcNew, this.crcOf(pagesBuf.subarray(i * pageBytes, (i + 1) * pageBytes), p), true);
      this.metaView.setUint32(at + PM.seq, seq, true);
      this.metaView.setUint32(at + PM.flags, pageFlags.written | (wasWritten ? pageFlags.prevWritten : 0), true);
      if (!(flags & pageFlags.written)) this.writtenPages++;
    }
    try {
      pwriteFull(this.archive.descriptor, this.meta.subarray(metaStart, p1 * pageMetaBytes), this.entry.extentOffset + metaStart);
      pwriteFull(this.archive.descriptor, pagesBuf, this.dataStart + p0 * pageBytes);
    } catch (e) {
      return ioFailure("IO_ERROR", `write to ${this.archive.path} failed: ${errnoText(e)}`, offsetBytes);
    }
    return OK_VOID;
  }

  unmap(offsetBytes: number, lengthBytes: number): IoResult<void> {
    this.check(offsetBytes, lengthBytes);
    // Only whole pages are deallocated; partial pages at the edges are written with zeros.
    const first = Math.ceil(offsetBytes / pageBytes);
    const last = Math.floor((offsetBytes + lengthBytes) / pageBytes);
    if (offsetBytes < first * pageBytes) {
      const end = Math.min(first * pageBytes, offsetBytes + lengthBytes);
      const r = this.write(offsetBytes, new Uint8Array(end - offsetBytes));
      if (!r.ok) return r;
    }
    if (last > first) {
      for (let p = first; p < last; p++) {
        const at = p * pageMetaBytes;
        if (this.metaView.getUint32(at + PM.flags, true) & pageFlags.written) this.writtenPages--;
        this.meta.fill(0, at, at + pageMetaBytes);
      }
      try {
        // Metadata first: once it says "unwritten" the page reads as zeros whatever the data holds.
        pwriteFull(this.archive.descriptor, this.meta.subarray(first * pageMetaBytes, last * pageMetaBytes), this.entry.extentOffset + first * pageMetaBytes);
        punchHole(this.archive.descriptor, this.dataStart + first * pageBytes, (last - first) * pageBytes);
      } catch (e) {
        return ioFailure("IO_ERROR", `unmap in ${this.archive.path} failed: ${errnoText(e)}`, offsetBytes);
      }
    }
    const tailStart = Math.max(last * pageBytes, offsetBytes);
    if (tailStart < offsetBytes + lengthBytes && last >= first) {
      const r = this.write(tailStart, new Uint8Array(offsetBytes + lengthBytes - tailStart));
      if (!r.ok) return r;
    }
    return OK_VOID;
  }
}

