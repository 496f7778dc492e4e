// Arithmetic in GF(2^8) with the polynomial x^8+x^4+x^3+x^2+1 (0x11d), the field of ISA-L and of
// most Reed-Solomon storage codes, plus the matrices the codec needs: ISA-L's systematic Cauchy
// encoding matrix, Gauss-Jordan inversion and the split-nibble multiplication tables.
// Pure: no I/O, no allocation on any per-byte path. It must never change a matrix's layout or
// values, because stored parity depends on them byte for byte (ISA-L interoperability).

import { assert } from "../util/assert.ts";

/** The field's reduction polynomial with its x^8 bit (ISA-L erasure_code/ec_base.c uses 0x11d). */
export const gfPolynomial = 0x11d;
/** 2 generates the multiplicative group of GF(2^8) under 0x11d. */
const gfGenerator = 2;
/** Order of the multiplicative group: 2^8 - 1. */
const gfGroupOrder = 255;

/** exp[i] = 2^i for i in 0..509 (doubled so that exp[log a + log b] needs no modulo). */
const expTable = new Uint8Array(2 * gfGroupOrder);
/** log[a] for a in 1..255; log[0] is unused. */
const logTable = new Uint8Array(256);

{
  let x = 1;
  for (let i = 0; i < gfGroupOrder; i++) {
    expTable[i] = x;
    expTable[i + gfGroupOrder] = x;
    logTable[x] = i;
    x = x * gfGenerator;
    if (x & 0x100) x ^= gfPolynomial;
  }
  assert(x === 1, "2 must generate GF(2^8)* under 0x11d");
}

export function gfMul(a: number, b: number): number {
  if (a === 0 || b === 0) return 0;
  return expTable[logTable[a]! + logTable[b]!]!;
}

export function gfInv(a: number): number {
  assert(a > 0 && a < 256, "gfInv: zero has no inverse");
  return expTable[gfGroupOrder - logTable[a]!]!;
}

/** The full 256x256 product table, row c at offset 256*c: the TypeScript kernel's lookup. */
export const gfMulTable: Uint8Array = (() => {
  const t = new Uint8Array(256 * 256);
  for (let a = 1; a < 256; a++) for (let b = 1; b < 256; b++) t[a * 256 + b] = gfMul(a, b);
  return t;
})();

/**
 * ISA-L's gf_gen_cauchy1_matrix(a, k+m, k): (k+m) rows of k bytes, row-major. Rows 0..k-1 are the
 * identity (the code is systematic); row i >= k, column j holds 1/(i xor j). Every square
 * submatrix of the Cauchy part is invertible because the sets {i >= k} and {j < k} are disjoint,
 * which makes the code MDS for k+m <= 256.
 */
export function cauchyMatrix(k: number, m: number): Uint8Array {
  assert(Number.isInteger(k) && k >= 1);
  assert(Number.isInteger(m) && m >= 1);
  assert(k + m <= 256, "Cauchy matrix needs k+m <= 256");
  const a = new Uint8Array((k + m) * k);
  for (let i = 0; i < k; i++) a[i * k + i] = 1;
  for (let i = k; i < k + m; i++) for (let j = 0; j < k; j++) a[i * k + j] = gfInv(i ^ j);
  return a;
}

/**
 * Inverts the n x n row-major matrix `input` (left unchanged) by Gauss-Jordan elimination.
 * Returns null when it is singular (never for a square submatrix of a Cauchy code's matrix).
 * The inverse is unique, so the result equals ISA-L's gf_invert_matrix byte for byte.
 */
export function invertMatrix(input: Uint8Array, n: number): Uint8Array | null {
  assert(input.length === n * n);
  const a = input.slice();
  const inv = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    while (pivot < n && a[pivot * n + col] === 0) pivot++;
    if (pivot === n) return null;
    if (pivot !== col) {
      swapRows(a, n, pivot, col);
      swapRows(inv, n, pivot, col);
    }
    const scale = gfInv(a[col * n + col]!);
    scaleRow(a, n, col, scale);
    scaleRow(inv, n, col, scale);
    for (let row = 0; row < n; row++) {
      const factor = row === col ? 0 : a[row * n + col]!;
      if (factor === 0) continue;
      addScaledRow(a, n, row, col, factor);
      addScaledRow(inv, n, row, col, factor);
    }
  }
  return inv;
}

/** out (rows x cols) = left (rows x inner) times right (inner x cols), all row-major. */
export function multiplyMatrices(left: Uint8Array, right: Uint8Array, shape: { rows: number; inner: number; cols: number }): Uint8Array {
  const { rows, inner, cols } = shape;
  assert(left.length === rows * inner);
  assert(right.length === inner * cols);
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let sum = 0;
      for (let i = 0; i < inner; i++) sum ^= gfMul(left[r * inner + i]!, right[i * cols + c]!);
      out[r * cols + c] = sum;
    }
  }
  return out;
}

/** Bytes of the two 16-entry split-nibble tables of one coefficient. */
export const nibbleTablesBytes = 32;

/**
 * Writes the split-nibble tables of coefficient c at out[at..at+32): bytes 0..15 are c*x for
 * x = 0..15 (the low nibble), bytes 16..31 are c*(x<<4) (the high nibble). Since multiplication
 * distributes over xor, c*b = lo[b & 15] ^ hi[b >> 4]: two 16-byte shuffles per 16 bytes of data
 * (ISA-L's gf_vect_mul_init layout, so one coefficient's 32 bytes are the same in both).
 */
export function writeNibbleTables(c: number, out: Uint8Array, at: number): void {
  assert(c >= 0 && c < 256);
  assert(at >= 0 && at + nibbleTablesBytes <= out.length);
  for (let x = 0; x < 16; x++) {
    out[at + x] = gfMul(c, x);
    out[at + 16 + x] = gfMul(c, x << 4);
  }
}

function swapRows(a: Uint8Array, n: number, r1: number, r2: number): void {
  for (let c = 0; c < n; c++) {
    const t = a[r1 * n + c]!;
    a[r1 * n + c] = a[r2 * n + c]!;
    a[r2 * n + c] = t;
  }
}

function scaleRow(a: Uint8Array, n: number, row: number, factor: number): void {
  for (let c = 0; c < n; c++) a[row * n + c] = gfMul(a[row * n + c]!, factor);
}

/** a[target] ^= factor * a[source]. */
function addScaledRow(a: Uint8Array, n: number, target: number, source: number, factor: number): void {
  for (let c = 0; c < n; c++) a[target * n + c] = a[target * n + c]! ^ gfMul(a[source * n + c]!, factor);
}
