// The on-disk format of an archive: constants, and pure encoders/decoders of the superblock,
// the segment-unit table entries and the page-metadata entries. No I/O here.
//
// Archive layout (offsets in bytes; all integers little-endian):
//   0        superblock (4 KiB)
//   4096     backup superblock (4 KiB, identical)
//   65536    segment-unit table: unitTableEntries x 128-byte entries
//   1 MiB    first extent; extents are 1 MiB aligned, each holds one segment unit:
//              [page metadata: 16 bytes per page, rounded up to 4 KiB][data pages, 4 KiB each]
// See docs/ARCHITECTURE.md "On-disk format" for the crash-consistency argument.
import { assert } from "../util/assert.ts";
import { crc32c } from "../util/crc32c.ts";

export const pageBytes = 4096;
export const superblockBytes = 4096;
export const superblockOffsets = [0, 4096] as const;
export const unitTableOffset = 65536;
export const unitEntryBytes = 128;
export const unitTableEntries = 4096;
export const dataOffset = 1 << 20;
export const extentAlignBytes = 1 << 20;
export const pageMetaBytes = 16;
export const archiveBytesMin = 16 << 20;
export const formatVersion = 1;

const superMagic = "QSTORAAR"; // 8 ASCII bytes
const unitMagic = 0x31555351; // "QSU1" little-endian

export const checksumIds = { crc32c: 1, crc32: 2 } as const;
export type ChecksumName = keyof typeof checksumIds;

export interface Superblock {
  formatVersion: number;
  pageBytes: number;
  clusterId: string;
  archiveId: string;
  sizeBytes: number;
  unitTableOffset: number;
  unitTableEntries: number;
  dataOffset: number;
  checksum: ChecksumName;
  createdAtMs: number;
}

export function uuidToBytes(uuid: string, into: Uint8Array, at: number): void {
  const hex = uuid.replace(/-/g, "");
  assert(/^[0-9a-f]{32}$/i.test(hex), `not a uuid: ${uuid}`);
  for (let i = 0; i < 16; i++) into[at + i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
}

export function bytesToUuid(from: Uint8Array, at: number): string {
  let hex = "";
  for (let i = 0; i < 16; i++) hex += (from[at + i] as number).toString(16).padStart(2, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Superblock field offsets.
const SB = { magic: 0, version: 8, pageBytes: 12, clusterId: 16, archiveId: 32, sizeBytes: 48, tableOffset: 56, tableEntries: 64, checksum: 68, dataOffset: 72, createdAt: 80, crc: superblockBytes - 4 } as const;

export function encodeSuperblock(sb: Superblock): Uint8Array {
  const buf = new Uint8Array(superblockBytes);
  const dv = new DataView(buf.buffer);
  buf.set(new TextEncoder().encode(superMagic), SB.magic);
  dv.setUint32(SB.version, sb.formatVersion, true);
  dv.setUint32(SB.pageBytes, sb.pageBytes, true);
  uuidToBytes(sb.clusterId, buf, SB.clusterId);
  uuidToBytes(sb.archiveId, buf, SB.archiveId);
  dv.setBigUint64(SB.sizeBytes, BigInt(sb.sizeBytes), true);
  dv.setBigUint64(SB.tableOffset, BigInt(sb.unitTableOffset), true);
  dv.setUint32(SB.tableEntries, sb.unitTableEntries, true);
  dv.setUint32(SB.checksum, checksumIds[sb.checksum], true);
  dv.setBigUint64(SB.dataOffset, BigInt(sb.dataOffset), true);
  dv.setBigUint64(SB.createdAt, BigInt(sb.createdAtMs), true);
  dv.setUint32(SB.crc, crc32c(buf.subarray(0, SB.crc)), true);
  return buf;
}

export function hasSuperblockMagic(buf: Uint8Array): boolean {
  return new TextDecoder().decode(buf.subarray(0, 8)) === superMagic;
}

export type SuperblockResult = { ok: true; superblock: Superblock } | { ok: false; reason: "no-magic" | "checksum" | "version" | "fields" };

export function decodeSuperblock(buf: Uint8Array): SuperblockResult {
  if (buf.length < superblockBytes || !hasSuperblockMagic(buf)) return { ok: false, reason: "no-magic" };
  const dv = new DataView(buf.buffer, buf.byteOffset, superblockBytes);
  if (dv.getUint32(SB.crc, true) !== crc32c(buf.subarray(0, SB.crc))) return { ok: false, reason: "checksum" };
  const version = dv.getUint32(SB.version, true);
  if (version !== formatVersion) return { ok: false, reason: "version" };
  const checksumId = dv.getUint32(SB.checksum, true);
  const checksum = (Object.keys(checksumIds) as ChecksumName[]).find((k) => checksumIds[k] === checksumId);
  const sb: Superblock = {
    formatVersion: version,
    pageBytes: dv.getUint32(SB.pageBytes, true),
    clusterId: bytesToUuid(buf, SB.clusterId),
    archiveId: bytesToUuid(buf, SB.archiveId),
    sizeBytes: Number(dv.getBigUint64(SB.sizeBytes, true)),
    unitTableOffset: Number(dv.getBigUint64(SB.tableOffset, true)),
    unitTableEntries: dv.getUint32(SB.tableEntries, true),
    dataOffset: Number(dv.getBigUint64(SB.dataOffset, true)),
    checksum: checksum ?? "crc32c",
    createdAtMs: Number(dv.getBigUint64(SB.createdAt, true)),
  };
  if (checksum === undefined || sb.pageBytes !== pageBytes || sb.unitTableEntries > 1 << 20 || sb.dataOffset > sb.sizeBytes) return { ok: false, reason: "fields" };
  return { ok: true, superblock: sb };
}

export interface UnitEntry {
  volumeId: string;
  segmentIndex: number;
  role: number;
  replicaIndex: number;
  extentOffset: number;
  sizeBytes: number;
  metaBytes: number;
  flushedSeq: number;
  epoch: number;
  createdAtMs: number;
}

const UE = { magic: 0, flags: 4, volumeId: 8, segmentIndex: 24, role: 28, replicaIndex: 29, extentOffset: 32, sizeBytes: 40, metaBytes: 48, flushedSeq: 52, epoch: 56, createdAt: 64, crc: unitEntryBytes - 4 } as const;

export function encodeUnitEntry(e: UnitEntry): Uint8Array {
  const buf = new Uint8Array(unitEntryBytes);
  const dv = new DataView(buf.buffer);
  dv.setUint32(UE.magic, unitMagic, true);
  uuidToBytes(e.volumeId, buf, UE.volumeId);
  dv.setUint32(UE.segmentIndex, e.segmentIndex, true);
  dv.setUint8(UE.role, e.role);
  dv.setUint8(UE.replicaIndex, e.replicaIndex);
  dv.setBigUint64(UE.extentOffset, BigInt(e.extentOffset), true);
  dv.setBigUint64(UE.sizeBytes, BigInt(e.sizeBytes), true);
  dv.setUint32(UE.metaBytes, e.metaBytes, true);
  dv.setUint32(UE.flushedSeq, e.flushedSeq, true);
  dv.setBigUint64(UE.epoch, BigInt(e.epoch), true);
  dv.setBigUint64(UE.createdAt, BigInt(e.createdAtMs), true);
  dv.setUint32(UE.crc, crc32c(buf.subarray(0, UE.crc)), true);
  return buf;
}

export type UnitEntryResult = { kind: "free" } | { kind: "used"; entry: UnitEntry } | { kind: "corrupt" };

export function decodeUnitEntry(buf: Uint8Array): UnitEntryResult {
  const dv = new DataView(buf.buffer, buf.byteOffset, unitEntryBytes);
  const magic = dv.getUint32(UE.magic, true);
  if (magic === 0) return { kind: "free" };
  if (magic !== unitMagic || dv.getUint32(UE.crc, true) !== crc32c(buf.subarray(0, UE.crc))) return { kind: "corrupt" };
  return {
    kind: "used",
    entry: {
      volumeId: bytesToUuid(buf, UE.volumeId),
      segmentIndex: dv.getUint32(UE.segmentIndex, true),
      role: dv.getUint8(UE.role),
      replicaIndex: dv.getUint8(UE.replicaIndex),
      extentOffset: Number(dv.getBigUint64(UE.extentOffset, true)),
      sizeBytes: Number(dv.getBigUint64(UE.sizeBytes, true)),
      metaBytes: dv.getUint32(UE.metaBytes, true),
      flushedSeq: dv.getUint32(UE.flushedSeq, true),
      epoch: Number(dv.getBigUint64(UE.epoch, true)),
      createdAtMs: Number(dv.getBigUint64(UE.createdAt, true)),
    },
  };
}

// Page metadata entry (16 bytes): the checksum of the latest write (P), the checksum of the
// contents before it (A), the unit-local sequence number of the latest write, and flags.
export const PM = { crcNew: 0, crcPrev: 4, seq: 8, flags: 12 } as const;
export const pageFlags = {
  /** The page holds data (P is valid). Without it the page reads as zeros. */
  written: 1,
  /** A is the checksum of real previous contents; without it the previous state was "unwritten". */
  prevWritten: 2,
  /** Recovery found contents matching neither P nor A (a torn page): reads fail. */
  bad: 4,
} as const;

export function metaBytesFor(sizeBytes: number): number {
  const pages = sizeBytes / pageBytes;
  return Math.ceil((pages * pageMetaBytes) / pageBytes) * pageBytes;
}

export function extentBytesFor(sizeBytes: number): number {
  return Math.ceil((metaBytesFor(sizeBytes) + sizeBytes) / extentAlignBytes) * extentAlignBytes;
}

/** The checksum seed of a page: binds the checksum to the page's place (misdirected writes fail). */
export function pageSeed(unitId: number, pageIndex: number): number {
  return (Math.imul(unitId + 1, 0x9e3779b1) ^ Math.imul(pageIndex + 1, 0x85ebca6b)) >>> 0;
}
