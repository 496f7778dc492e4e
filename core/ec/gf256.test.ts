// Tests of GF(2^8) arithmetic and matrices against their definitions; pure, no I/O.
import { describe, expect, test } from "bun:test";
import { cauchyMatrix, gfInv, gfMul, invertMatrix, multiplyMatrices, writeNibbleTables } from "./gf256.ts";

describe("GF(2^8) under 0x11d", () => {
  test("gfMul() reduces by 0x11d: 0x80 * 2 = 0x1d", () => {
    expect(gfMul(0x80, 2)).toBe(0x1d);
    expect(gfMul(0, 0x53)).toBe(0);
    expect(gfMul(1, 0x53)).toBe(0x53);
  });

  test("gfInv() gives a * inv(a) = 1 for every non-zero a", () => {
    for (let a = 1; a < 256; a++) expect(gfMul(a, gfInv(a))).toBe(1);
  });

  test("cauchyMatrix() is the identity over 1/(i xor j), as ISA-L's gf_gen_cauchy1_matrix", () => {
    const a = cauchyMatrix(3, 2);
    expect(Array.from(a.subarray(0, 9))).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    expect(a[3 * 3 + 0]).toBe(gfInv(3));
    expect(a[3 * 3 + 2]).toBe(gfInv(3 ^ 2));
    expect(a[4 * 3 + 1]).toBe(gfInv(4 ^ 1));
  });

  test("invertMatrix() inverts every k x k choice of rows of a 5+3 Cauchy matrix", () => {
    const k = 5;
    const a = cauchyMatrix(k, 3);
    const identity = cauchyMatrix(k, 1).subarray(0, k * k);
    let checked = 0;
    for (let mask = 0; mask < 1 << 8; mask++) {
      const rows = [...Array(8).keys()].filter((i) => mask & (1 << i));
      if (rows.length !== k) continue;
      const sub = new Uint8Array(k * k);
      rows.forEach((r, i) => sub.set(a.subarray(r * k, r * k + k), i * k));
      const inv = invertMatrix(sub, k);
      expect(inv).not.toBeNull();
      expect(Array.from(multiplyMatrices(sub, inv!, { rows: k, inner: k, cols: k }))).toEqual(Array.from(identity));
      checked++;
    }
    expect(checked).toBe(56);
  });

  test("invertMatrix() returns null for a singular matrix", () => {
    expect(invertMatrix(new Uint8Array([1, 2, 1, 2]), 2)).toBeNull();
  });

  test("writeNibbleTables() splits c*b into lo[b & 15] ^ hi[b >> 4]", () => {
    const t = new Uint8Array(32);
    for (const c of [0, 1, 2, 0x8e, 0xff]) {
      writeNibbleTables(c, t, 0);
      for (let b = 0; b < 256; b++) expect(t[b & 15]! ^ t[16 + (b >> 4)]!).toBe(gfMul(c, b));
    }
  });
});
