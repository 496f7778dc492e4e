import { expect, test } from "bun:test";
import { crc32c, crc32cImplementation, crc32cPortable, crc32cStreamBytes } from "./crc32c.ts";

test("crc32c() gives the standard check value for 123456789", () => {
  const data = new TextEncoder().encode("123456789");
  expect(crc32cPortable(data)).toBe(0xe3069283);
  expect(crc32c(data)).toBe(0xe3069283);
});

test("crc32c() matches the portable oracle at every length and alignment", () => {
  const buf = new Uint8Array(300).map((_, i) => (i * 131 + 17) & 0xff);
  for (let off = 0; off < 9; off++) for (let len = 0; len < 200; len += 7) expect(crc32c(buf.subarray(off, off + len), 99)).toBe(crc32cPortable(buf.subarray(off, off + len), 99));
});

test("crc32c() matches the oracle where the three interleaved streams begin, join and end", () => {
  const three = 3 * crc32cStreamBytes;
  const buf = new Uint8Array(4 * three + 200).map((_, i) => (i * 197 + 3) & 0xff);
  for (const len of [three - 8, three - 1, three, three + 1, three + 64, 2 * three, 2 * three + 99, 4096, 1 << 16, 4 * three + 191])
    for (const off of [0, 5]) expect(crc32c(buf.subarray(off, off + len), 7)).toBe(crc32cPortable(buf.subarray(off, off + len), 7));
});

test("crc32c() continues a CRC across chunks", () => {
  const buf = new Uint8Array(4096).map((_, i) => i & 0xff);
  expect(crc32c(buf.subarray(1000), crc32c(buf.subarray(0, 1000)))).toBe(crc32c(buf));
});

test("crc32c() takes every seed, with its top bit set or not, at any heat of the call site", () => {
  // Bun's FFI passed a u32 argument of 2^31 or more as 0 (and at times smaller ones): half of
  // the frame and page-metadata checksums came out as if unseeded, depending on the JIT tier.
  const buf = new Uint8Array(5000).map((_, i) => (i * 89 + 11) & 0xff);
  let x = 0x2545f491;
  let mismatches = 0;
  for (let i = 0; i < 60_000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const seed = i % 5 === 0 ? i % 3 : x;
    const v = buf.subarray(i % 13, (i % 13) + (x % 4500));
    if (crc32c(v, seed) !== crc32cPortable(v, seed)) mismatches++;
  }
  expect(mismatches).toBe(0);
  for (const seed of [1, 0x7fffffff, 0x80000000, 0xffffffff]) expect(crc32c(buf, seed)).toBe(crc32cPortable(buf, seed));
});

test("the SSE4.2 path is used on this machine", () => {
  // The machines qstora runs on here have SSE4.2; the portable path is the fallback only.
  expect(crc32cImplementation()).toBe("sse4.2");
});
