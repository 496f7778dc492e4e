// A small zip writer for the release archives (PKWARE APPNOTE.TXT 6.3.x): deflated or stored
// entries with Unix modes, one fixed timestamp for every entry so that the same inputs always give
// the same bytes, no zip64. It is pure: it takes bytes and returns bytes, and must never touch the
// file system, the clock or the environment (pkg/package.ts does the I/O).
import { deflateRawSync } from "node:zlib";
import { assert } from "../core/util/assert.ts";

// APPNOTE 4.3.7: local file header, fixed part.
const localHeaderSignature = 0x04034b50;
const localHeaderBytes = 30;
// APPNOTE 4.3.12: central directory file header, fixed part.
const centralHeaderSignature = 0x02014b50;
const centralHeaderBytes = 46;
// APPNOTE 4.3.16: end of central directory record (no comment).
const endOfCentralSignature = 0x06054b50;
const endOfCentralBytes = 22;
// APPNOTE 4.4.3: version needed to extract: 1.0 for stored, 2.0 for deflate and directories.
const versionNeededStored = 10;
const versionNeededDeflate = 20;
// APPNOTE 4.4.2: "version made by": upper byte 3 = UNIX (so external attributes hold st_mode),
// lower byte the spec version 2.0.
const versionMadeByUnix = (3 << 8) | 20;
// APPNOTE 4.4.4 general purpose bit 11: names are UTF-8.
const flagUtf8Names = 1 << 11;
// APPNOTE 4.4.5: compression methods.
const methodStored = 0;
const methodDeflate = 8;
// MS-DOS attribute bit for directories, in the low byte of the external attributes.
const dosDirectoryAttribute = 0x10;
// Unix st_mode file type bits (POSIX <sys/stat.h>): regular file and directory.
const unixRegularFile = 0o100000;
const unixDirectory = 0o040000;
// Without zip64 (APPNOTE 4.3.14) sizes and offsets are 32-bit and the entry count 16-bit.
const zip32BytesMax = 0xffffffff;
const zip32EntriesMax = 0xffff;
// APPNOTE 4.4.6: MS-DOS dates count years from 1980; 1980-01-01 is the earliest.
const dosEpochYear = 1980;
const dosYearMax = 2107;
// APPNOTE 4.4.10: names are at most 65535 bytes.
const nameBytesMax = 0xffff;
// zlib's default trade-off: level 9 is twice as slow on the executable for 0.2% less.
const deflateLevel = 6;

export interface ZipEntry {
  /** Path inside the archive with "/" separators; a directory ends with "/". */
  readonly name: string;
  /** File contents; empty for a directory. */
  readonly data: Uint8Array;
  /** Unix permission bits (0o755 for executables, 0o644 for the rest). */
  readonly mode: number;
}

export interface ZipOptions {
  /** The timestamp of every entry, in seconds since 1970 (UTC); see dosDateTime. */
  readonly mtimeSeconds: number;
  /** Store instead of deflate (for tests and already-compressed data). */
  readonly store?: boolean;
}

/** MS-DOS date and time (APPNOTE 4.4.6), in UTC, with 2-second resolution. */
export function dosDateTime(mtimeSeconds: number): { date: number; time: number } {
  assert(Number.isInteger(mtimeSeconds), "mtime is whole seconds");
  const d = new Date(mtimeSeconds * 1000);
  const year = Math.min(Math.max(d.getUTCFullYear(), dosEpochYear), dosYearMax);
  if (year !== d.getUTCFullYear()) {
    // Outside the DOS range: clamp to its first day rather than write a wrapped date.
    return { date: ((year - dosEpochYear) << 9) | (1 << 5) | 1, time: 0 };
  }
  const date = ((year - dosEpochYear) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate();
  const time = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1);
  return { date, time };
}

interface Prepared {
  readonly name: Uint8Array;
  readonly body: Uint8Array;
  readonly method: number;
  readonly crc: number;
  readonly size: number;
  readonly externalAttributes: number;
  readonly versionNeeded: number;
}

function prepare(entry: ZipEntry, store: boolean): Prepared {
  assert(entry.name.length > 0, "zip entry has a name");
  assert(!entry.name.startsWith("/"), "zip entry names are relative");
  assert(!entry.name.split("/").includes(".."), "zip entry names do not climb out");
  assert((entry.mode & ~0o7777) === 0, "mode holds permission bits only");
  const name = new TextEncoder().encode(entry.name);
  assert(name.length <= nameBytesMax, "zip entry name fits");
  const isDirectory = entry.name.endsWith("/");
  if (isDirectory) {
    assert(entry.data.length === 0, "a directory entry has no data");
    return {
      name,
      body: new Uint8Array(0),
      method: methodStored,
      crc: 0,
      size: 0,
      externalAttributes: (((unixDirectory | entry.mode) << 16) | dosDirectoryAttribute) >>> 0,
      versionNeeded: versionNeededDeflate,
    };
  }
  assert(entry.data.length <= zip32BytesMax, "zip entry fits without zip64");
  const deflated = store ? undefined : deflateRawSync(entry.data, { level: deflateLevel });
  // Keep whichever is smaller: deflate can grow incompressible data.
  const useDeflate = deflated !== undefined && deflated.length < entry.data.length;
  return {
    name,
    body: useDeflate ? deflated : entry.data,
    method: useDeflate ? methodDeflate : methodStored,
    crc: Bun.hash.crc32(entry.data) >>> 0,
    size: entry.data.length,
    externalAttributes: ((unixRegularFile | entry.mode) << 16) >>> 0,
    versionNeeded: useDeflate ? versionNeededDeflate : versionNeededStored,
  };
}

/** The bytes of a zip archive holding `entries` in the order given. */
export function zipArchive(entries: readonly ZipEntry[], options: ZipOptions): Uint8Array {
  assert(entries.length > 0, "a zip holds at least one entry");
  assert(entries.length <= zip32EntriesMax, "entry count fits without zip64");
  assert(new Set(entries.map((e) => e.name)).size === entries.length, "entry names are unique");
  const { date, time } = dosDateTime(options.mtimeSeconds);
  const prepared = entries.map((e) => prepare(e, options.store === true));

  let localBytes = 0;
  let centralBytes = 0;
  for (const p of prepared) {
    localBytes += localHeaderBytes + p.name.length + p.body.length;
    centralBytes += centralHeaderBytes + p.name.length;
  }
  assert(localBytes + centralBytes <= zip32BytesMax, "archive fits without zip64");
  const out = new Uint8Array(localBytes + centralBytes + endOfCentralBytes);
  const view = new DataView(out.buffer);

  let at = 0;
  const offsets: number[] = [];
  for (const p of prepared) {
    offsets.push(at);
    view.setUint32(at, localHeaderSignature, true);
    view.setUint16(at + 4, p.versionNeeded, true);
    view.setUint16(at + 6, flagUtf8Names, true);
    view.setUint16(at + 8, p.method, true);
    view.setUint16(at + 10, time, true);
    view.setUint16(at + 12, date, true);
    view.setUint32(at + 14, p.crc, true);
    view.setUint32(at + 18, p.body.length, true);
    view.setUint32(at + 22, p.size, true);
    view.setUint16(at + 26, p.name.length, true);
    view.setUint16(at + 28, 0, true); // no extra field
    out.set(p.name, at + localHeaderBytes);
    out.set(p.body, at + localHeaderBytes + p.name.length);
    at += localHeaderBytes + p.name.length + p.body.length;
  }
  assert(at === localBytes, "local section has the computed length");

  const centralOffset = at;
  prepared.forEach((p, i) => {
    view.setUint32(at, centralHeaderSignature, true);
    view.setUint16(at + 4, versionMadeByUnix, true);
    view.setUint16(at + 6, p.versionNeeded, true);
    view.setUint16(at + 8, flagUtf8Names, true);
    view.setUint16(at + 10, p.method, true);
    view.setUint16(at + 12, time, true);
    view.setUint16(at + 14, date, true);
    view.setUint32(at + 16, p.crc, true);
    view.setUint32(at + 20, p.body.length, true);
    view.setUint32(at + 24, p.size, true);
    view.setUint16(at + 28, p.name.length, true);
    view.setUint16(at + 30, 0, true); // extra field length
    view.setUint16(at + 32, 0, true); // comment length
    view.setUint16(at + 34, 0, true); // disk number start
    view.setUint16(at + 36, 0, true); // internal attributes
    view.setUint32(at + 38, p.externalAttributes, true);
    view.setUint32(at + 42, offsets[i] as number, true);
    out.set(p.name, at + centralHeaderBytes);
    at += centralHeaderBytes + p.name.length;
  });
  assert(at - centralOffset === centralBytes, "central directory has the computed length");

  view.setUint32(at, endOfCentralSignature, true);
  view.setUint16(at + 4, 0, true); // this disk
  view.setUint16(at + 6, 0, true); // disk holding the central directory
  view.setUint16(at + 8, prepared.length, true);
  view.setUint16(at + 10, prepared.length, true);
  view.setUint32(at + 12, centralBytes, true);
  view.setUint32(at + 16, centralOffset, true);
  view.setUint16(at + 20, 0, true); // comment length
  at += endOfCentralBytes;
  assert(at === out.length, "archive filled exactly");
  return out;
}
