import { expect, test } from "bun:test";
import {
  dataOffsetFor,
  decodeSuperblock,
  decodeUnitEntry,
  encodeSuperblock,
  encodeUnitEntry,
  extentBytesFor,
  get48,
  metaBytesFor,
  pageMetaIntact,
  pageSeed,
  sealPageMeta,
  set48,
  tableEntriesFor,
  unitTableEntriesMax,
  unitTableEntriesMin,
  type Superblock,
  type UnitEntry,
} from "./format.ts";

const MiB = 1 << 20;
const entries = tableEntriesFor(64 * MiB);
const sb: Superblock = {
  formatVersion: 1,
  pageBytes: 4096,
  clusterId: "11111111-2222-4333-8444-555555555555",
  archiveId: "66666666-7777-4888-9999-aaaaaaaaaaaa",
  sizeBytes: 64 * MiB,
  unitTableOffset: 65536,
  unitTableEntries: entries,
  unitEntryBytes: 128,
  pageMetaBytes: 32,
  dataOffset: dataOffsetFor(entries),
  extentAlignBytes: MiB,
  checksum: "crc32",
  createdAtMs: 1_700_000_000_000,
};
const entry: UnitEntry = {
  state: "building",
  role: "ec-data",
  shardIndex: 5,
  volumeId: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
  segmentIndex: 77,
  extentOffset: 3 * MiB,
  extentBytes: extentBytesFor(8 * MiB),
  sizeBytes: 8 * MiB,
  metaBytes: metaBytesFor(8 * MiB),
  flushedStamp: 2 ** 40,
  epoch: 9,
  generation: 4,
  createdAtMs: 1_700_000_000_000,
};

test("decodeSuperblock() returns what encodeSuperblock() wrote", () => {
  expect(decodeSuperblock(encodeSuperblock(sb))).toEqual({ ok: true, superblock: sb });
});

test("decodeSuperblock() rejects a flipped bit anywhere in the block", () => {
  const good = encodeSuperblock(sb);
  for (let i = 0; i < good.length; i++) {
    const bad = good.slice();
    bad[i] = (bad[i] as number) ^ 0x10;
    expect(decodeSuperblock(bad).ok).toBe(false);
  }
});

test("decodeSuperblock() rejects a short buffer, zeros, and fields of another layout", () => {
  expect(decodeSuperblock(encodeSuperblock(sb).subarray(0, 100))).toEqual({ ok: false, reason: "no-magic" });
  expect(decodeSuperblock(new Uint8Array(4096))).toEqual({ ok: false, reason: "no-magic" });
  expect(decodeSuperblock(encodeSuperblock({ ...sb, formatVersion: 2 }))).toEqual({ ok: false, reason: "version" });
  expect(decodeSuperblock(encodeSuperblock({ ...sb, pageBytes: 8192 }))).toEqual({ ok: false, reason: "fields" });
  expect(decodeSuperblock(encodeSuperblock({ ...sb, dataOffset: sb.dataOffset + MiB }))).toEqual({ ok: false, reason: "fields" });
  expect(decodeSuperblock(encodeSuperblock({ ...sb, sizeBytes: 64 * MiB + 4096 }))).toEqual({ ok: false, reason: "fields" });
});

test("decodeUnitEntry() returns what encodeUnitEntry() wrote, and zeros as a free slot", () => {
  expect(decodeUnitEntry(encodeUnitEntry(entry, 12), 12)).toEqual({ kind: "used", entry });
  expect(decodeUnitEntry(new Uint8Array(128), 12)).toEqual({ kind: "free" });
});

test("decodeUnitEntry() rejects a flipped bit anywhere, and an entry read at another index", () => {
  const good = encodeUnitEntry(entry, 12);
  for (let i = 0; i < good.length; i++) {
    const bad = good.slice();
    bad[i] = (bad[i] as number) ^ 0x01;
    expect(decodeUnitEntry(bad, 12).kind).toBe("corrupt");
  }
  expect(decodeUnitEntry(good, 13).kind).toBe("corrupt");
});

test("decodeUnitEntry() rejects sizes that disagree with each other", () => {
  expect(decodeUnitEntry(encodeUnitEntry({ ...entry, metaBytes: 4096 }, 1), 1).kind).toBe("corrupt");
  expect(decodeUnitEntry(encodeUnitEntry({ ...entry, extentOffset: 3 * MiB + 4096 }, 1), 1).kind).toBe("corrupt");
});

test("page-metadata entries: sealed ones are intact, zeros are intact, any flip or other place is not", () => {
  const meta = new Uint8Array(64);
  const dv = new DataView(meta.buffer);
  expect(pageMetaIntact(meta, dv, 32, pageSeed(0, 1))).toBe(true);
  set48(dv, 32 + 8, 2 ** 47 + 5);
  meta[32 + 26] = 1;
  sealPageMeta(meta, dv, 32, pageSeed(0, 1));
  expect(get48(dv, 32 + 8)).toBe(2 ** 47 + 5);
  expect(pageMetaIntact(meta, dv, 32, pageSeed(0, 1))).toBe(true);
  expect(pageMetaIntact(meta, dv, 32, pageSeed(0, 2))).toBe(false);
  expect(pageMetaIntact(meta, dv, 32, pageSeed(1, 1))).toBe(false);
  for (let i = 32; i < 64; i++) {
    meta[i] = (meta[i] as number) ^ 4;
    expect(pageMetaIntact(meta, dv, 32, pageSeed(0, 1))).toBe(false);
    meta[i] = (meta[i] as number) ^ 4;
  }
});

test("the unit table grows with the archive within its bounds, in whole 4 KiB pages", () => {
  expect(tableEntriesFor(16 * MiB)).toBe(unitTableEntriesMin);
  expect(tableEntriesFor(2 ** 50)).toBe(unitTableEntriesMax);
  expect(tableEntriesFor(100 * 1024 * MiB) % 32).toBe(0);
  expect(dataOffsetFor(unitTableEntriesMax) % MiB).toBe(0);
});
