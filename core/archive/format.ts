// The on-disk format of an archive: named constants, and pure encoders/decoders of the superblock,
// the segment-unit table entries and the page-metadata entries (docs/ARCHIVE-FORMAT.md is the
// prose version of this file; keep the two in step). No I/O here, and no policy: callers decide
// what a decoded failure means.
//
// Archive layout (byte offsets; every integer little-endian):
//   0                    superblock (4 KiB)
//   4096                 backup superblock #1 (identical)
//   65536                segment-unit table: unitTableEntries x 128-byte entries
//   dataOffset           first extent (1 MiB aligned, after the table)
//   ...                  extents; each holds one segment unit:
//                          [page metadata: 32 bytes per page, rounded up to 4 KiB][data pages]
//   sizeBytes - 1 MiB    reserved tail: backup superblock #2 in its first 4 KiB, the rest unused
import { assert } from "../util/assert.ts";
import { crc32c } from "../util/crc32c.ts";

/** The page: the unit of checksums, sequence numbers and allocation inside a segment unit. */
export const pageBytes = 4096;
/** SCSI logical blocks can be 512 bytes; unit I/O must be aligned to this. */
export const sectorBytes = 512;
export const superblockBytes = 4096;
/** Primary and first backup, at the start; the second backup sits at the archive's end. */
export const superblockFrontOffsets = [0, 4096] as const;
export const unitTableOffset = 65536;
export const unitEntryBytes = 128;
/** The table grows with the archive: one entry per 16 MiB, within these bounds. */
export const unitTableEntriesMin = 256;
export const unitTableEntriesMax = 65536;
const unitTableBytesPerEntry = 16 << 20;
/** Extents start and end on 1 MiB boundaries: aligned for every disk and simple to reason about. */
export const extentAlignBytes = 1 << 20;
/** The last MiB of an archive holds nothing but the second backup superblock. */
export const tailReservedBytes = 1 << 20;
export const pageMetaBytes = 32;
export const archiveBytesMin = 16 << 20;
/** A u64 on disk, kept below 2^53 so it round-trips through a JS number. */
const safeU64Max = Number.MAX_SAFE_INTEGER;
/** Page sequence numbers and write stamps are 48-bit on disk (2.8e14 writes: years at 1M IOPS). */
export const seqMax = 2 ** 48 - 1;
export const formatVersion = 1;

const superMagic = new TextEncoder().encode("QSTORAAR"); // 8 ASCII bytes
const unitMagic = 0x31555351; // "QSU1" read as a little-endian u32

export const checksumIds = { crc32c: 1, crc32: 2 } as const;
export type ChecksumName = keyof typeof checksumIds;

export function tableEntriesFor(sizeBytes: number): number {
  const n = Math.ceil(sizeBytes / unitTableBytesPerEntry);
  const clamped = Math.min(unitTableEntriesMax, Math.max(unitTableEntriesMin, n));
  return Math.ceil(clamped / (pageBytes / unitEntryBytes)) * (pageBytes / unitEntryBytes);
}

export function dataOffsetFor(tableEntries: number): number {
  return Math.ceil((unitTableOffset + tableEntries * unitEntryBytes) / extentAlignBytes) * extentAlignBytes;
}

/**
 * The tail copy sits at the start of the archive's last MiB, not in its last 4 KiB: a GPT written
 * over the device by mistake takes its first 17 KiB and its last 17 KiB, and misses this copy.
 */
export function backupSuperblockOffset(sizeBytes: number): number {
  return sizeBytes - tailReservedBytes;
}


// ---- uuids ----

export function isUuid(s: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);
}

export function uuidToBytes(uuid: string, into: Uint8Array, at: number): void {
  assert(isUuid(uuid), `not a uuid: ${uuid}`);
  const hex = uuid.replace(/-/g, "");
  for (let i = 0; i < 16; i++) into[at + i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
}

export function bytesToUuid(from: Uint8Array, at: number): string {
  let hex = "";
  for (let i = 0; i < 16; i++) hex += (from[at + i] as number).toString(16).padStart(2, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function setU64(dv: DataView, at: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, `u64 field out of range: ${value}`);
  dv.setBigUint64(at, BigInt(value), true);
}

/** A u64 field, or -1 if it exceeds 2^53 (a decoder then rejects the record). */
function getU64(dv: DataView, at: number): number {
  const v = dv.getBigUint64(at, true);
  return v > BigInt(safeU64Max) ? -1 : Number(v);
}

// ---- superblock ----

export interface Superblock {
  formatVersion: number;
  pageBytes: number;
  clusterId: string;
  archiveId: string;
  sizeBytes: number;
  unitTableOffset: number;
  unitTableEntries: number;
  unitEntryBytes: number;
  pageMetaBytes: number;
  dataOffset: number;
  extentAlignBytes: number;
  checksum: ChecksumName;
  createdAtMs: number;
}

/** Superblock field offsets (bytes from the start of the 4 KiB block). */
const SB = {
  magic: 0, // 8 bytes "QSTORAAR"
  version: 8, // u32
  pageBytes: 12, // u32
  clusterId: 16, // 16-byte uuid
  archiveId: 32, // 16-byte uuid
  sizeBytes: 48, // u64
  tableOffset: 56, // u64
  tableEntries: 64, // u32
  entryBytes: 68, // u32
  checksum: 72, // u32: checksumIds
  pageMetaBytes: 76, // u32
  dataOffset: 80, // u64
  extentAlign: 88, // u64
  createdAt: 96, // u64, ms since the epoch
  crc: superblockBytes - 4, // u32: crc32c of bytes [0, 4092)
} as const;

export function encodeSuperblock(sb: Superblock): Uint8Array {
  const buf = new Uint8Array(superblockBytes);
  const dv = new DataView(buf.buffer);
  buf.set(superMagic, SB.magic);
  dv.setUint32(SB.version, sb.formatVersion, true);
  dv.setUint32(SB.pageBytes, sb.pageBytes, true);
  uuidToBytes(sb.clusterId, buf, SB.clusterId);
  uuidToBytes(sb.archiveId, buf, SB.archiveId);
  setU64(dv, SB.sizeBytes, sb.sizeBytes);
  setU64(dv, SB.tableOffset, sb.unitTableOffset);
  dv.setUint32(SB.tableEntries, sb.unitTableEntries, true);
  dv.setUint32(SB.entryBytes, sb.unitEntryBytes, true);
  dv.setUint32(SB.checksum, checksumIds[sb.checksum], true);
  dv.setUint32(SB.pageMetaBytes, sb.pageMetaBytes, true);
  setU64(dv, SB.dataOffset, sb.dataOffset);
  setU64(dv, SB.extentAlign, sb.extentAlignBytes);
  setU64(dv, SB.createdAt, sb.createdAtMs);
  dv.setUint32(SB.crc, crc32c(buf.subarray(0, SB.crc)), true);
  return buf;
}

export function hasSuperblockMagic(buf: Uint8Array): boolean {
  if (buf.length < superMagic.length) return false;
  for (let i = 0; i < superMagic.length; i++) if (buf[i] !== superMagic[i]) return false;
  return true;
}

export type SuperblockFailure = "no-magic" | "checksum" | "version" | "fields";
export type SuperblockResult = { ok: true; superblock: Superblock } | { ok: false; reason: SuperblockFailure };

/** Decodes and validates a superblock; every field is range-checked, nothing is trusted. */
export function decodeSuperblock(buf: Uint8Array): SuperblockResult {
  if (buf.length < superblockBytes || !hasSuperblockMagic(buf)) return { ok: false, reason: "no-magic" };
  const dv = new DataView(buf.buffer, buf.byteOffset, superblockBytes);
  if (dv.getUint32(SB.crc, true) !== crc32c(buf.subarray(0, SB.crc))) return { ok: false, reason: "checksum" };
  const version = dv.getUint32(SB.version, true);
  if (version !== formatVersion) return { ok: false, reason: "version" };
  const checksumId = dv.getUint32(SB.checksum, true);
  const checksum = (Object.keys(checksumIds) as ChecksumName[]).find((k) => checksumIds[k] === checksumId);
  if (checksum === undefined) return { ok: false, reason: "fields" };
  const sb: Superblock = {
    formatVersion: version,
    pageBytes: dv.getUint32(SB.pageBytes, true),
    clusterId: bytesToUuid(buf, SB.clusterId),
    archiveId: bytesToUuid(buf, SB.archiveId),
    sizeBytes: getU64(dv, SB.sizeBytes),
    unitTableOffset: getU64(dv, SB.tableOffset),
    unitTableEntries: dv.getUint32(SB.tableEntries, true),
    unitEntryBytes: dv.getUint32(SB.entryBytes, true),
    pageMetaBytes: dv.getUint32(SB.pageMetaBytes, true),
    dataOffset: getU64(dv, SB.dataOffset),
    extentAlignBytes: getU64(dv, SB.extentAlign),
    checksum,
    createdAtMs: getU64(dv, SB.createdAt),
  };
  // Version 1 has exactly one layout: anything else is damage or a future writer.
  const fieldsOk =
    sb.pageBytes === pageBytes &&
    sb.unitEntryBytes === unitEntryBytes &&
    sb.pageMetaBytes === pageMetaBytes &&
    sb.extentAlignBytes === extentAlignBytes &&
    sb.unitTableOffset === unitTableOffset &&
    sb.unitTableEntries >= unitTableEntriesMin &&
    sb.unitTableEntries <= unitTableEntriesMax &&
    sb.dataOffset === dataOffsetFor(sb.unitTableEntries) &&
    sb.sizeBytes >= archiveBytesMin &&
    sb.sizeBytes % extentAlignBytes === 0 &&
    sb.dataOffset + tailReservedBytes < sb.sizeBytes &&
    sb.createdAtMs >= 0;
  if (!fieldsOk) return { ok: false, reason: "fields" };
  return { ok: true, superblock: sb };
}

// ---- segment-unit table ----

/** What a unit holds: a full replica, an erasure-coded data or parity shard, or an arbiter's stub. */
export const unitRoles = { replica: 1, "ec-data": 2, "ec-parity": 3, arbiter: 4 } as const;
export type UnitRole = keyof typeof unitRoles;
/** Life cycle of a unit: `building` while a rebuild fills it (not a valid copy yet). */
export const unitStates = { active: 1, building: 2 } as const;
export type UnitState = keyof typeof unitStates;

export interface UnitEntry {
  state: UnitState;
  role: UnitRole;
  /** Replica or erasure-coded shard index within its segment. */
  shardIndex: number;
  volumeId: string;
  segmentIndex: number;
  extentOffset: number;
  extentBytes: number;
  sizeBytes: number;
  metaBytes: number;
  /** Write stamp covered by the unit's last completed flush: pages stamped later are checked at open. */
  flushedStamp: number;
  /** Membership epoch and generation, for replication (fencing, rebuild catch-up). */
  epoch: number;
  generation: number;
  createdAtMs: number;
}

const UE = {
  magic: 0, // u32 "QSU1"
  state: 4, // u8 unitStates
  role: 5, // u8 unitRoles
  shardIndex: 6, // u16
  volumeId: 8, // 16-byte uuid
  segmentIndex: 24, // u32
  metaBytes: 28, // u32
  extentOffset: 32, // u64
  extentBytes: 40, // u64
  sizeBytes: 48, // u64
  flushedStamp: 56, // u64
  epoch: 64, // u64
  generation: 72, // u64
  createdAt: 80, // u64
  crc: unitEntryBytes - 4, // u32: crc32c of bytes [0, 124) seeded with the entry's index
} as const;

function nameOf<T extends Record<string, number>>(table: T, id: number): keyof T | undefined {
  return (Object.keys(table) as (keyof T)[]).find((k) => table[k] === id);
}

/** The entry's index seeds its checksum, so an entry written to the wrong slot is detected. */
export function encodeUnitEntry(e: UnitEntry, index: number, into?: Uint8Array): Uint8Array {
  const buf = into ?? new Uint8Array(unitEntryBytes);
  assert(buf.length === unitEntryBytes, "unit entry buffer size");
  assert(e.shardIndex >= 0 && e.shardIndex <= 0xffff, "shard index out of range");
  assert(e.segmentIndex >= 0 && e.segmentIndex <= 0xffffffff, "segment index out of range");
  buf.fill(0);
  const dv = new DataView(buf.buffer, buf.byteOffset, unitEntryBytes);
  dv.setUint32(UE.magic, unitMagic, true);
  dv.setUint8(UE.state, unitStates[e.state]);
  dv.setUint8(UE.role, unitRoles[e.role]);
  dv.setUint16(UE.shardIndex, e.shardIndex, true);
  uuidToBytes(e.volumeId, buf, UE.volumeId);
  dv.setUint32(UE.segmentIndex, e.segmentIndex, true);
  dv.setUint32(UE.metaBytes, e.metaBytes, true);
  setU64(dv, UE.extentOffset, e.extentOffset);
  setU64(dv, UE.extentBytes, e.extentBytes);
  setU64(dv, UE.sizeBytes, e.sizeBytes);
  setU64(dv, UE.flushedStamp, e.flushedStamp);
  setU64(dv, UE.epoch, e.epoch);
  setU64(dv, UE.generation, e.generation);
  setU64(dv, UE.createdAt, e.createdAtMs);
  dv.setUint32(UE.crc, crc32c(buf.subarray(0, UE.crc), index), true);
  return buf;
}

export type UnitEntryResult = { kind: "free" } | { kind: "used"; entry: UnitEntry } | { kind: "corrupt"; why: string };

export function decodeUnitEntry(buf: Uint8Array, index: number): UnitEntryResult {
  assert(buf.length === unitEntryBytes, "unit entry buffer size");
  const dv = new DataView(buf.buffer, buf.byteOffset, unitEntryBytes);
  const magic = dv.getUint32(UE.magic, true);
  if (magic === 0) return { kind: "free" };
  if (magic !== unitMagic) return { kind: "corrupt", why: "bad magic" };
  if (dv.getUint32(UE.crc, true) !== crc32c(buf.subarray(0, UE.crc), index)) return { kind: "corrupt", why: "checksum" };
  const state = nameOf(unitStates, dv.getUint8(UE.state));
  const role = nameOf(unitRoles, dv.getUint8(UE.role));
  if (state === undefined || role === undefined) return { kind: "corrupt", why: "unknown state or role" };
  const entry: UnitEntry = {
    state,
    role,
    shardIndex: dv.getUint16(UE.shardIndex, true),
    volumeId: bytesToUuid(buf, UE.volumeId),
    segmentIndex: dv.getUint32(UE.segmentIndex, true),
    metaBytes: dv.getUint32(UE.metaBytes, true),
    extentOffset: getU64(dv, UE.extentOffset),
    extentBytes: getU64(dv, UE.extentBytes),
    sizeBytes: getU64(dv, UE.sizeBytes),
    flushedStamp: getU64(dv, UE.flushedStamp),
    epoch: getU64(dv, UE.epoch),
    generation: getU64(dv, UE.generation),
    createdAtMs: getU64(dv, UE.createdAt),
  };
  const shapeOk =
    entry.sizeBytes > 0 &&
    entry.sizeBytes % pageBytes === 0 &&
    entry.metaBytes === metaBytesFor(entry.sizeBytes) &&
    entry.extentBytes === extentBytesFor(entry.sizeBytes) &&
    entry.extentOffset % extentAlignBytes === 0 &&
    entry.flushedStamp >= 0 &&
    entry.flushedStamp <= seqMax &&
    entry.epoch >= 0 &&
    entry.generation >= 0 &&
    entry.createdAtMs >= 0;
  if (!shapeOk) return { kind: "corrupt", why: "sizes or offsets inconsistent" };
  return { kind: "used", entry };
}

// ---- page metadata ----

/**
 * Page metadata entry (32 bytes, one per page, in the unit's metadata area; never inside the page):
 *   0  u32 crcNew     checksum of the page's latest write (state written)
 *   4  u32 crcPrev    checksum of the contents before that write (prevState written)
 *   8  u48 seq        sequence number of the latest write or unmap (caller's, or the stamp)
 *   14 u48 prevSeq    sequence number before it
 *   20 u48 stamp      unit-local write counter of the latest change (recovery: stamp > flushedStamp)
 *   26 u8  state      pageStates
 *   27 u8  prevState  pageStates
 *   28 u32 entryCrc   crc32c of bytes [0, 28) seeded with the page's location seed
 */
export const PM = { crcNew: 0, crcPrev: 4, seq: 8, prevSeq: 14, stamp: 20, state: 26, prevState: 27, entryCrc: 28 } as const;
export const pageStates = {
  /** Never written (or recovered to never written): reads as zeros. */
  unwritten: 0,
  /** Holds data whose checksum is crcNew. */
  written: 1,
  /** Given back by UNMAP: reads as zeros; seq records when. */
  deallocated: 2,
  /** Its contents match no checksum it ever had (a torn write or damage): reads fail. */
  bad: 3,
} as const;
export type PageState = (typeof pageStates)[keyof typeof pageStates];

export function get48(dv: DataView, at: number): number {
  return dv.getUint32(at, true) + dv.getUint16(at + 4, true) * 0x1_0000_0000;
}

export function set48(dv: DataView, at: number, value: number): void {
  dv.setUint32(at, value % 0x1_0000_0000, true);
  dv.setUint16(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

export function metaBytesFor(sizeBytes: number): number {
  const pages = sizeBytes / pageBytes;
  return Math.ceil((pages * pageMetaBytes) / pageBytes) * pageBytes;
}

export function extentBytesFor(sizeBytes: number): number {
  return Math.ceil((metaBytesFor(sizeBytes) + sizeBytes) / extentAlignBytes) * extentAlignBytes;
}

/**
 * The location seed of a page: every page checksum is XORed with it, so a page written to the
 * wrong unit or the wrong index (a misdirected write) fails its checksum where it lands.
 * XOR after the CRC keeps the scheme identical for crc32c and Bun's crc32.
 */
export function pageSeed(unitId: number, pageIndex: number): number {
  return (Math.imul(unitId + 1, 0x9e3779b1) ^ Math.imul(pageIndex + 1, 0x85ebca6b) ^ 0x51a7c0de) >>> 0;
}

/** Seals a page-metadata entry with its checksum (bytes [0, 28) seeded with the page's seed). */
export function sealPageMeta(meta: Uint8Array, dv: DataView, at: number, seed: number): void {
  dv.setUint32(at + PM.entryCrc, crc32c(meta.subarray(at, at + PM.entryCrc), seed), true);
}

/** True if the entry is all zeros (never touched) or its checksum holds. */
export function pageMetaIntact(meta: Uint8Array, dv: DataView, at: number, seed: number): boolean {
  const crc = dv.getUint32(at + PM.entryCrc, true);
  if (crc === crc32c(meta.subarray(at, at + PM.entryCrc), seed)) return true;
  for (let i = at; i < at + pageMetaBytes; i++) if (meta[i] !== 0) return false;
  return true;
}
