// An Archive: a file (sparse) or a raw block device holding segment units, self-describing
// through its superblock (three copies) and segment-unit table (format.ts). All I/O is synchronous
// on a kept-open descriptor: the data path runs inline on the event loop (design: "the data path
// on Bun"). Must never format or repair an archive of another cluster, and never hand out an
// extent that overlaps another unit's.
//
// Ordering contract (docs/ARCHIVE-FORMAT.md; page writes in segment-unit.ts):
// - create: unit table zeroed and synced, then the superblocks (tail copy, backup, primary),
//   synced. A crash before any superblock lands leaves "not an archive", never a half one.
// - createUnit: the extent's metadata area is zeroed before the table entry names the extent.
// - removeUnit: the table entry is cleared and synced before the extent's space is punched.
// - flush: fdatasync, then each unit's flushed stamp is recorded in its table entry (made durable
//   by the next flush or close; recovery only needs it to be no later than the truth).
// Errors at the edges (create, open, remove) are QstoraError ARCHIVE_INVALID / IO_ERROR; data
// path and unit creation outcomes are returned as IoResult.
import { closeSync, constants, existsSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, rmSync, statSync, type Stats } from "node:fs";
import type { IoFailure, IoResult } from "../volume/block-device.ts";
import { assert } from "../util/assert.ts";
import { crc32c } from "../util/crc32c.ts";
import { QstoraError } from "../util/errors.ts";
import { findExtent, findOverlap } from "./extent-allocator.ts";
import { blockDeviceBytes, errnoText, preadFull, pwriteFull } from "./file-io.ts";
import {
  archiveBytesMin,
  backupSuperblockOffset,
  dataOffsetFor,
  decodeSuperblock,
  decodeUnitEntry,
  encodeSuperblock,
  encodeUnitEntry,
  extentAlignBytes,
  extentBytesFor,
  formatVersion,
  hasSuperblockMagic,
  isUuid,
  metaBytesFor,
  pageBytes,
  pageMetaBytes,
  superblockBytes,
  superblockFrontOffsets,
  tableEntriesFor,
  tailReservedBytes,
  unitEntryBytes,
  unitTableOffset,
  type ChecksumName,
  type Superblock,
  type SuperblockResult,
  type UnitEntry,
  type UnitRole,
  type UnitState,
} from "./format.ts";
import { punchHole } from "./libc.ts";
import { Unit, type SegmentUnit, type SegmentUnitInfo, type UnitHost } from "./segment-unit.ts";

export type { SegmentUnit, SegmentUnitInfo, PageStateName } from "./segment-unit.ts";
export type { ChecksumName, UnitRole, UnitState } from "./format.ts";

export interface ArchiveInfo {
  id: string;
  clusterId: string;
  path: string;
  kind: "file" | "block";
  sizeBytes: number;
  /** Bytes of the extents reserved by segment units (metadata areas included). */
  reservedBytes: number;
  /** Bytes of pages holding data. */
  writtenBytes: number;
  /** Bytes not reserved by any unit (not necessarily one contiguous extent). */
  freeBytes: number;
  unitCount: number;
}

/** What open() found and fixed, for the log. */
export interface OpenReport {
  repairedSuperblocks: number;
  resolvedPages: number;
  damagedPageEntries: number;
}

/** Zeroing buffer bound: metadata areas are zeroed in chunks of at most this. */
const zeroChunkBytes = 1 << 20;

const OK_VOID: IoResult<void> = { ok: true, value: undefined };

function ioFailure(code: "IO_ERROR" | "NO_SPACE", message: string): IoFailure {
  return { ok: false, code, message };
}

function kindOf(st: Stats): "file" | "block" | null {
  return st.isBlockDevice() ? "block" : st.isFile() ? "file" : null;
}

/** Block devices are opened O_EXCL: Linux then refuses a device that is mounted or held by another opener. */
function openFlags(kind: "file" | "block"): number {
  return kind === "block" ? constants.O_RDWR | constants.O_EXCL : constants.O_RDWR;
}

function deviceBytes(fd: number): number {
  const st = fstatSync(fd);
  return st.isBlockDevice() ? blockDeviceBytes(st) : st.size;
}

/** The archive size a device or file of `bytes` gives: whole MiB. */
function usableBytes(bytes: number): number {
  return Math.floor(bytes / extentAlignBytes) * extentAlignBytes;
}

/** Reads the three superblock copies: primary, front backup, tail backup (where the device size puts it). */
function readSuperblocks(fd: number): { primary: SuperblockResult; copies: SuperblockResult[]; anyMagic: boolean } {
  const buf = new Uint8Array(superblockBytes);
  const copies: SuperblockResult[] = [];
  let anyMagic = false;
  for (const off of superblockFrontOffsets) {
    preadFull(fd, buf, off);
    anyMagic ||= hasSuperblockMagic(buf);
    copies.push(decodeSuperblock(buf));
  }
  const size = usableBytes(deviceBytes(fd));
  if (size >= archiveBytesMin) {
    preadFull(fd, buf, backupSuperblockOffset(size));
    anyMagic ||= hasSuperblockMagic(buf);
    copies.push(decodeSuperblock(buf));
  }
  return { primary: copies[0] as SuperblockResult, copies, anyMagic };
}

function firstGood(copies: SuperblockResult[]): Superblock | null {
  for (const c of copies) if (c.ok) return c.superblock;
  return null;
}

export class Archive {
  private readonly units = new Map<number, Unit>();
  private readonly host: UnitHost;
  private closed = false;
  /** What open() repaired or recovered (all zeros for a fresh archive). */
  readonly openReport: OpenReport;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly sb: Superblock,
    readonly kind: "file" | "block",
    report: OpenReport,
  ) {
    const checksum = sb.checksum === "crc32c" ? (page: Uint8Array) => crc32c(page) : (page: Uint8Array) => Bun.hash.crc32(page);
    this.host = { fd, path, kind, scratchHead: new Uint8Array(pageBytes), scratchTail: new Uint8Array(pageBytes), checksum };
    this.openReport = report;
  }

  get id(): string {
    return this.sb.archiveId;
  }
  get clusterId(): string {
    return this.sb.clusterId;
  }
  get checksum(): ChecksumName {
    return this.sb.checksum;
  }

  /** Who owns `path`, from any intact superblock copy, without writing anything; null if no archive. */
  static probe(path: string): { clusterId: string; archiveId: string } | null {
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch {
      return null;
    }
    try {
      const sb = firstGood(readSuperblocks(fd).copies);
      return sb === null ? null : { clusterId: sb.clusterId, archiveId: sb.archiveId };
    } catch {
      return null;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Forgets the archive at `path`: zeroes every superblock copy (front and tail), so the path is no
   * longer an archive and can be formatted again. Refuses an archive of another cluster when
   * `clusterId` is given. Data is left in place (not erased).
   */
  static wipe(path: string, options: { clusterId?: string } = {}): void {
    let fd: number;
    try {
      const kind = kindOf(statSync(path));
      if (kind === null) throw new Error("neither a regular file nor a block device");
      fd = openSync(path, openFlags(kind));
    } catch (e) {
      throw new QstoraError("ARCHIVE_INVALID", `cannot open ${path} to wipe it: ${errnoText(e)}`);
    }
    try {
      const sb = firstGood(readSuperblocks(fd).copies);
      if (sb !== null && options.clusterId !== undefined && sb.clusterId !== options.clusterId) {
        throw new QstoraError("ARCHIVE_INVALID", `${path} is archive ${sb.archiveId} of another cluster (${sb.clusterId}); not wiped`);
      }
      const zeros = new Uint8Array(superblockBytes);
      const offsets = new Set<number>(superblockFrontOffsets);
      const size = usableBytes(deviceBytes(fd));
      if (size >= archiveBytesMin) offsets.add(backupSuperblockOffset(size));
      if (sb !== null) offsets.add(backupSuperblockOffset(sb.sizeBytes));
      for (const off of offsets) pwriteFull(fd, zeros, off);
      fdatasyncSync(fd);
    } catch (e) {
      if (e instanceof QstoraError) throw e;
      throw new QstoraError("IO_ERROR", `cannot wipe ${path}: ${errnoText(e)}`);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Formats `path` as a new archive of `clusterId`: a new sparse file of `sizeBytes`, an existing
   * file (its size, or grown to `sizeBytes`), or a block device (its size). Refuses a path that holds
   * an archive already, even a damaged one; on refusal nothing is changed.
   */
  static create(spec: { path: string; sizeBytes?: number; clusterId: string; archiveId?: string; checksum?: ChecksumName }): Archive {
    if (!isUuid(spec.clusterId)) throw new QstoraError("INVALID_ARGUMENT", `cluster id ${JSON.stringify(spec.clusterId)} is not a uuid`);
    if (spec.archiveId !== undefined && !isUuid(spec.archiveId)) throw new QstoraError("INVALID_ARGUMENT", `archive id ${JSON.stringify(spec.archiveId)} is not a uuid`);
    if (spec.sizeBytes !== undefined && (!Number.isSafeInteger(spec.sizeBytes) || spec.sizeBytes <= 0)) {
      throw new QstoraError("INVALID_ARGUMENT", `archive size ${spec.sizeBytes} is not a positive whole number of bytes`);
    }
    let st: Stats | null = null;
    try {
      st = statSync(spec.path);
    } catch {
      st = null;
    }
    const existed = st !== null;
    const kind = st === null ? "file" : kindOf(st);
    if (kind === null) throw new QstoraError("ARCHIVE_INVALID", `${spec.path} is neither a regular file nor a block device`, "Give a file path (PATH:SIZE to create it) or a block device.");
    let fd: number;
    try {
      fd = existed ? openSync(spec.path, openFlags(kind)) : openSync(spec.path, "wx+", 0o600);
    } catch (e) {
      throw new QstoraError("ARCHIVE_INVALID", `cannot open ${spec.path} for writing: ${errnoText(e)}`, "Choose a path this user can write on a local file system, or a block device that is not mounted or in use.");
    }
    let createdFile = !existed;
    try {
      if (existed) {
        const found = readSuperblocks(fd);
        const sb = firstGood(found.copies);
        if (sb !== null && sb.clusterId !== spec.clusterId) {
          throw new QstoraError("ARCHIVE_INVALID", `${spec.path} is archive ${sb.archiveId} of another cluster (${sb.clusterId})`, "Use another path; to reuse this one, remove it from that cluster first, or wipe it if that cluster is gone.");
        }
        if (sb !== null) throw new QstoraError("ARCHIVE_INVALID", `${spec.path} is already archive ${sb.archiveId} of this cluster`, "Open it instead of formatting it.");
        if (found.anyMagic) {
          throw new QstoraError("ARCHIVE_INVALID", `${spec.path} holds a qstora archive whose superblocks are all damaged`, "It may still hold data: inspect it, or wipe its first 8 KiB and last MiB to reuse the path.");
        }
      }
      const present = deviceBytes(fd);
      let sizeBytes: number;
      if (kind === "block") {
        if (spec.sizeBytes !== undefined && spec.sizeBytes > present) throw new QstoraError("INVALID_ARGUMENT", `${spec.path} has ${present} bytes, fewer than the ${spec.sizeBytes} asked for`);
        sizeBytes = spec.sizeBytes ?? present;
      } else if (spec.sizeBytes !== undefined) {
        if (existed && present > spec.sizeBytes) throw new QstoraError("INVALID_ARGUMENT", `${spec.path} is larger (${present} bytes) than the size asked for`, "Leave out :SIZE to use the file's size.");
        sizeBytes = spec.sizeBytes;
      } else {
        if (!existed) throw new QstoraError("INVALID_ARGUMENT", `${spec.path} does not exist and no size was given`, "Give PATH:SIZE to create a sparse file.");
        sizeBytes = present;
      }
      sizeBytes = usableBytes(sizeBytes);
      if (sizeBytes < archiveBytesMin) throw new QstoraError("INVALID_ARGUMENT", `archive ${spec.path} would be ${sizeBytes} bytes; the least is ${archiveBytesMin >> 20} MiB`);
      // Sparse: set the length without allocating blocks.
      if (kind === "file" && present < sizeBytes) ftruncateSync(fd, sizeBytes);
      const unitTableEntries = tableEntriesFor(sizeBytes);
      const sb: Superblock = {
        formatVersion,
        pageBytes,
        clusterId: spec.clusterId,
        archiveId: spec.archiveId ?? crypto.randomUUID(),
        sizeBytes,
        unitTableOffset,
        unitTableEntries,
        unitEntryBytes,
        pageMetaBytes,
        dataOffset: dataOffsetFor(unitTableEntries),
        extentAlignBytes,
        checksum: spec.checksum ?? "crc32c",
        createdAtMs: Date.now(),
      };
      pwriteFull(fd, new Uint8Array(unitTableEntries * unitEntryBytes), unitTableOffset);
      fdatasyncSync(fd);
      const sbBytes = encodeSuperblock(sb);
      pwriteFull(fd, sbBytes, backupSuperblockOffset(sizeBytes));
      for (let i = superblockFrontOffsets.length - 1; i >= 0; i--) pwriteFull(fd, sbBytes, superblockFrontOffsets[i] as number);
      fdatasyncSync(fd);
      createdFile = false;
      return new Archive(spec.path, fd, sb, kind, { repairedSuperblocks: 0, resolvedPages: 0, damagedPageEntries: 0 });
    } catch (e) {
      closeSync(fd);
      if (createdFile) rmSync(spec.path, { force: true });
      if (e instanceof QstoraError) throw e;
      throw new QstoraError("ARCHIVE_INVALID", `cannot format ${spec.path}: ${errnoText(e)}`);
    }
  }

  /**
   * Opens an archive: validates a superblock (primary, else a backup), its owner and size, repairs
   * damaged superblock copies, loads the unit table and recovers pages written since each unit's
   * last flush. Refuses (ARCHIVE_INVALID, nothing written) a foreign, damaged or truncated archive.
   */
  static open(path: string, options: { clusterId?: string } = {}): Archive {
    let kind: "file" | "block" | null;
    try {
      kind = kindOf(statSync(path));
    } catch (e) {
      throw new QstoraError("ARCHIVE_INVALID", `cannot open archive ${path}: ${errnoText(e)}`, "Check that the file or device exists.");
    }
    if (kind === null) throw new QstoraError("ARCHIVE_INVALID", `${path} is neither a regular file nor a block device`);
    let fd: number;
    try {
      fd = openSync(path, openFlags(kind));
    } catch (e) {
      throw new QstoraError("ARCHIVE_INVALID", `cannot open archive ${path}: ${errnoText(e)}`, "Check that this user can write it, and that a block device is not mounted or in use.");
    }
    try {
      const found = readSuperblocks(fd);
      const sb = firstGood(found.copies);
      if (sb === null) {
        const reason = found.primary.ok ? "unknown" : found.primary.reason;
        if (!found.anyMagic) throw new QstoraError("ARCHIVE_INVALID", `${path} is not a qstora archive`, "Format it with 'qstora archive add' first.");
        throw new QstoraError("ARCHIVE_INVALID", `the superblocks of ${path} are damaged (${reason}) in every copy`, "Restore the device or file; qstora will not guess its layout.");
      }
      if (options.clusterId !== undefined && sb.clusterId !== options.clusterId) {
        throw new QstoraError("ARCHIVE_INVALID", `${path} is archive ${sb.archiveId} of another cluster (${sb.clusterId})`, "Attach it to the node of its own cluster.");
      }
      const present = deviceBytes(fd);
      if (present < sb.sizeBytes) {
        throw new QstoraError("ARCHIVE_INVALID", `${path} has ${present} bytes but its archive is ${sb.sizeBytes}: truncated, or the wrong device`, "Restore the file's size or attach the right device.");
      }
      const table = Archive.readTable(fd, sb, path);
      // Only now, with the owner and the table known good, repair superblock copies.
      const good = encodeSuperblock(sb);
      const offsets = [...superblockFrontOffsets, backupSuperblockOffset(sb.sizeBytes)];
      const buf = new Uint8Array(superblockBytes);
      let repaired = 0;
      for (const off of offsets) {
        preadFull(fd, buf, off);
        if (!buf.every((b, i) => b === good[i])) {
          pwriteFull(fd, good, off);
          repaired++;
        }
      }
      if (repaired > 0) fdatasyncSync(fd);
      const archive = new Archive(path, fd, sb, kind, { repairedSuperblocks: repaired, resolvedPages: 0, damagedPageEntries: 0 });
      for (const [unitId, entry] of table) {
        const unit = new Unit(archive.host, unitId, entry);
        const r = unit.load();
        archive.openReport.resolvedPages += r.resolvedPages;
        archive.openReport.damagedPageEntries += r.damagedEntries;
        archive.units.set(unitId, unit);
      }
      return archive;
    } catch (e) {
      closeSync(fd);
      if (e instanceof QstoraError) throw e;
      throw new QstoraError("ARCHIVE_INVALID", `cannot open archive ${path}: ${errnoText(e)}`);
    }
  }

  private static readTable(fd: number, sb: Superblock, path: string): Map<number, UnitEntry> {
    const bytes = new Uint8Array(sb.unitTableEntries * unitEntryBytes);
    preadFull(fd, bytes, sb.unitTableOffset);
    const table = new Map<number, UnitEntry>();
    const extentEnd = sb.sizeBytes - tailReservedBytes;
    for (let i = 0; i < sb.unitTableEntries; i++) {
      const r = decodeUnitEntry(bytes.subarray(i * unitEntryBytes, (i + 1) * unitEntryBytes), i);
      if (r.kind === "corrupt") throw new QstoraError("ARCHIVE_INVALID", `${path}: segment-unit table entry ${i} is damaged (${r.why})`, "Restore the device or file; qstora will not guess where that unit's data is.");
      if (r.kind === "free") continue;
      const e = r.entry;
      if (e.extentOffset < sb.dataOffset || e.extentOffset + e.extentBytes > extentEnd) {
        throw new QstoraError("ARCHIVE_INVALID", `${path}: segment unit ${i} claims an extent outside the archive`);
      }
      table.set(i, e);
    }
    const overlap = findOverlap([...table.values()].map((e) => ({ offsetBytes: e.extentOffset, lengthBytes: e.extentBytes })));
    if (overlap !== null) throw new QstoraError("ARCHIVE_INVALID", `${path}: two segment units claim the extent at ${overlap[1].offsetBytes}`);
    return table;
  }

  private writeEntry(unitId: number, entry: UnitEntry | null): void {
    const bytes = entry === null ? new Uint8Array(unitEntryBytes) : encodeUnitEntry(entry, unitId);
    pwriteFull(this.fd, bytes, this.sb.unitTableOffset + unitId * unitEntryBytes);
  }

  info(): ArchiveInfo {
    let reserved = 0;
    let written = 0;
    for (const u of this.units.values()) {
      reserved += u.entry.extentBytes;
      written += u.writtenPages * pageBytes;
    }
    const capacity = this.sb.sizeBytes - tailReservedBytes - this.sb.dataOffset;
    return {
      id: this.id,
      clusterId: this.clusterId,
      path: this.path,
      kind: this.kind,
      sizeBytes: this.sb.sizeBytes,
      reservedBytes: reserved,
      writtenBytes: written,
      freeBytes: capacity - reserved,
      unitCount: this.units.size,
    };
  }

  listUnits(): SegmentUnitInfo[] {
    return [...this.units.values()].map((u) => u.info);
  }

  /** Reserves an extent for a new unit (thin: pages take space when written). NO_SPACE if none fits. */
  createUnit(spec: { volumeId: string; segmentIndex: number; sizeBytes: number; role?: UnitRole; replicaIndex?: number; epoch?: number; generation?: number; state?: UnitState }): IoResult<SegmentUnit> {
    assert(!this.closed, "archive closed");
    assert(isUuid(spec.volumeId), "volume id must be a uuid");
    assert(Number.isInteger(spec.segmentIndex) && spec.segmentIndex >= 0 && spec.segmentIndex <= 0xffffffff, "segment index out of range");
    assert(Number.isSafeInteger(spec.sizeBytes) && spec.sizeBytes > 0 && spec.sizeBytes % pageBytes === 0, "unit size must be whole pages");
    let unitId = -1;
    for (let i = 0; i < this.sb.unitTableEntries; i++) {
      if (!this.units.has(i)) {
        unitId = i;
        break;
      }
    }
    if (unitId < 0) return ioFailure("NO_SPACE", `archive ${this.path} has no free segment-unit slot (${this.sb.unitTableEntries} units)`);
    const extentBytes = extentBytesFor(spec.sizeBytes);
    const used = [...this.units.values()].map((u) => ({ offsetBytes: u.entry.extentOffset, lengthBytes: u.entry.extentBytes }));
    const extentOffset = findExtent(used, extentBytes, { startBytes: this.sb.dataOffset, endBytes: this.sb.sizeBytes - tailReservedBytes, alignBytes: extentAlignBytes });
    if (extentOffset === null) return ioFailure("NO_SPACE", `archive ${this.path} has no free extent of ${extentBytes} bytes`);
    const metaBytes = metaBytesFor(spec.sizeBytes);
    const entry: UnitEntry = {
      state: spec.state ?? "active",
      role: spec.role ?? "replica",
      shardIndex: spec.replicaIndex ?? 0,
      volumeId: spec.volumeId,
      segmentIndex: spec.segmentIndex,
      extentOffset,
      extentBytes,
      sizeBytes: spec.sizeBytes,
      metaBytes,
      flushedStamp: 0,
      epoch: spec.epoch ?? 0,
      generation: spec.generation ?? 0,
      createdAtMs: Date.now(),
    };
    try {
      // The metadata area must read as zeros ("never written") before the entry names it. On a
      // file, punching the whole extent also frees what an earlier unit left there.
      const punched = this.kind === "file" && punchHole(this.fd, extentOffset, extentBytes);
      if (!punched) {
        const zeros = new Uint8Array(Math.min(metaBytes, zeroChunkBytes));
        for (let off = 0; off < metaBytes; off += zeros.length) pwriteFull(this.fd, zeros.subarray(0, Math.min(zeros.length, metaBytes - off)), extentOffset + off);
      }
      this.writeEntry(unitId, entry);
    } catch (e) {
      return ioFailure("IO_ERROR", `cannot create a segment unit in ${this.path}: ${errnoText(e)}`);
    }
    const unit = new Unit(this.host, unitId, entry);
    this.units.set(unitId, unit);
    return { ok: true, value: unit };
  }

  openUnit(unitId: number): SegmentUnit | undefined {
    return this.units.get(unitId);
  }

  /** Changes a unit's replication fields (state, epoch, generation); durable when it returns. */
  updateUnit(unitId: number, changes: { state?: UnitState; epoch?: number; generation?: number }): IoResult<void> {
    assert(!this.closed, "archive closed");
    const unit = this.units.get(unitId);
    assert(unit !== undefined, "no such unit");
    const entry: UnitEntry = { ...unit.entry };
    if (changes.state !== undefined) entry.state = changes.state;
    if (changes.epoch !== undefined) entry.epoch = changes.epoch;
    if (changes.generation !== undefined) entry.generation = changes.generation;
    try {
      this.writeEntry(unitId, entry);
      fdatasyncSync(this.fd);
    } catch (e) {
      return ioFailure("IO_ERROR", `cannot update segment unit ${unitId} in ${this.path}: ${errnoText(e)}`);
    }
    unit.entry = entry;
    return OK_VOID;
  }

  /** Forgets a unit and gives its space back (punched on files; on devices the extent is just free). */
  removeUnit(unitId: number): void {
    assert(!this.closed, "archive closed");
    const unit = this.units.get(unitId);
    if (unit === undefined) return;
    try {
      this.writeEntry(unitId, null);
      fdatasyncSync(this.fd);
    } catch (e) {
      throw new QstoraError("IO_ERROR", `cannot remove segment unit ${unitId} from ${this.path}: ${errnoText(e)}`);
    }
    this.units.delete(unitId);
    if (this.kind === "file") punchHole(this.fd, unit.entry.extentOffset, unit.entry.extentBytes);
  }

  /** Makes every completed write durable (fdatasync), then records each unit's flushed stamp. */
  flush(): IoResult<void> {
    assert(!this.closed, "archive closed");
    return this.syncAndMark();
  }

  private syncAndMark(): IoResult<void> {
    const marks: [Unit, number][] = [];
    for (const u of this.units.values()) if (u.stamp > u.entry.flushedStamp) marks.push([u, u.stamp]);
    try {
      fdatasyncSync(this.fd);
      for (const [u, stamp] of marks) {
        const entry: UnitEntry = { ...u.entry, flushedStamp: stamp };
        this.writeEntry(u.unitId, entry);
        u.entry = entry;
      }
    } catch (e) {
      return ioFailure("IO_ERROR", `flush of ${this.path} failed: ${errnoText(e)}`);
    }
    return OK_VOID;
  }

  /**
   * Closes the descriptor without flushing or recording anything, as a killed process would leave
   * it (the kernel keeps every completed pwrite). For crash tests; the daemon calls close().
   */
  abandon(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  /** Flushes, makes the flushed stamps durable too (a clean reopen has nothing to recover), closes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      const r = this.syncAndMark();
      if (!r.ok) throw new QstoraError("IO_ERROR", r.message);
      fdatasyncSync(this.fd);
    } finally {
      closeSync(this.fd);
    }
  }
}
