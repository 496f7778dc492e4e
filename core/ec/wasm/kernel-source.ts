// The erasure-coding kernel, written as WebAssembly SIMD128 through the emitter: for rows = 1..8
// one specialised function mulR(len, k, tables, srcs, dsts) computing
//   dst[r][i] = xor over j < k of coef[r][j] * src[j][i]      for r < rows, i < len
// by the split-nibble method (ISA-L, GF-Complete): each source byte b is split into b & 15 and
// b >> 4, each selects one entry of a 16-byte table with i8x16.swizzle, and the two are xored.
// Each source vector is loaded and split once for all rows; the rows' accumulators live in locals.
// srcs and dsts are addresses of arrays of i32 shard addresses; tables holds, for source j and
// row r, 32 bytes at tables + 32*(rows*j + r): 16 for the low nibble then 16 for the high nibble.
// Pure: it only computes bytes. It must never read or write outside the buffers it is handed; the
// caller guarantees len is a non-zero multiple of 64 and all shards lie in the memory.

import { assert } from "../../util/assert.ts";
import { Code, emitModule, op, simd, valI32, valV128, type FunctionSpec, type ValueType } from "./emitter.ts";

/** Parity rows are at most 8 (the M limit), so one function per row count 1..8. */
export const kernelRowsMax = 8;
/** Shard lengths are multiples of this; it bounds the vectors processed per loop turn. */
export const kernelLengthQuantumBytes = 64;
/** Bytes of one SIMD128 vector. */
const vectorBytes = 16;

export type SwizzleForm = "standard" | "relaxed";

export interface KernelVariant {
  readonly swizzle: SwizzleForm;
  /**
   * Vectors per shard per loop turn (1, 2 or 4): more amortises table loads and loop overhead,
   * fewer keeps rows*vectors accumulators within the 16 registers of x86-64.
   */
  readonly vectorsPerTurn: (rows: number) => 1 | 2 | 4;
  /**
   * How the high nibble is isolated: i8x16.shr_u by 4, or i16x8.shr_u by 4 then and 0x0f (x86 has
   * no byte shift, so engines lower the first to the second plus extra work).
   */
  readonly highNibble: "i8x16-shr" | "i16x8-shr-and";
}

/** The variant the build checks in (chosen by measurement: see docs/PERFORMANCE.md). */
export const checkedInVariant = (swizzle: SwizzleForm): KernelVariant => ({
  swizzle,
  vectorsPerTurn: (rows) => (rows <= 4 ? 2 : 1),
  highNibble: "i16x8-shr-and",
});

export function kernelExportName(rows: number): string {
  return `mul${rows}`;
}

/** The whole module for one swizzle form. */
export function buildKernelModule(variant: KernelVariant): Uint8Array {
  const functions: FunctionSpec[] = [];
  for (let rows = 1; rows <= kernelRowsMax; rows++) functions.push(buildMultiply(rows, variant.vectorsPerTurn(rows), variant));
  return emitModule(functions, 1);
}

function buildMultiply(rows: number, vectors: number, variant: KernelVariant): FunctionSpec {
  assert(rows >= 1 && rows <= kernelRowsMax);
  assert(vectors === 1 || vectors === 2 || vectors === 4);
  assert(kernelLengthQuantumBytes % (vectors * vectorBytes) === 0);
  const swizzleOp = variant.swizzle === "relaxed" ? simd.i8x16RelaxedSwizzle : simd.i8x16Swizzle;

  // Parameters.
  const len = 0;
  const k = 1;
  const tables = 2;
  const srcs = 3;
  const dsts = 4;
  const params: ValueType[] = [valI32, valI32, valI32, valI32, valI32];
  // Locals.
  const locals: ValueType[] = [];
  const local = (t: ValueType): number => {
    locals.push(t);
    return params.length + locals.length - 1;
  };
  const off = local(valI32);
  const j = local(valI32);
  const sp = local(valI32);
  const tp = local(valI32);
  const dp = local(valI32);
  const mask = local(valV128);
  const loTab = local(valV128);
  const hiTab = local(valV128);
  const lo: number[] = [];
  const hi: number[] = [];
  for (let v = 0; v < vectors; v++) lo.push(local(valV128));
  for (let v = 0; v < vectors; v++) hi.push(local(valV128));
  const acc: number[] = [];
  for (let a = 0; a < rows * vectors; a++) acc.push(local(valV128));
  const accOf = (r: number, v: number): number => acc[r * vectors + v]!;

  const c = new Code();
  c.v128ConstSplat(0x0f).localSet(mask);
  c.i32Const(0).localSet(off);
  c.emit(op.loop, op.blockEmpty); // chunk loop: one turn per vectors*16 bytes of every shard
  {
    // Source 0 sets the accumulators (no zeroing, no xor); sources 1..k-1 xor into them.
    const sourceStep = (first: boolean): void => {
      // sp = srcs[j] + off
      if (first) c.localGet(srcs).i32Load(0).localGet(off).emit(op.i32Add).localSet(sp);
      else c.localGet(srcs).localGet(j).i32Const(2).emit(op.i32Shl, op.i32Add).i32Load(0).localGet(off).emit(op.i32Add).localSet(sp);
      for (let v = 0; v < vectors; v++) {
        c.localGet(sp).v128Load(v * vectorBytes).localTee(hi[v]!);
        c.localGet(mask).simd(simd.v128And).localSet(lo[v]!);
        if (variant.highNibble === "i8x16-shr") c.localGet(hi[v]!).i32Const(4).simd(simd.i8x16ShrU).localSet(hi[v]!);
        else c.localGet(hi[v]!).i32Const(4).simd(simd.i16x8ShrU).localGet(mask).simd(simd.v128And).localSet(hi[v]!);
      }
      for (let r = 0; r < rows; r++) {
        c.localGet(tp).v128Load(32 * r).localSet(loTab);
        c.localGet(tp).v128Load(32 * r + 16).localSet(hiTab);
        for (let v = 0; v < vectors; v++) {
          if (!first) c.localGet(accOf(r, v));
          c.localGet(loTab).localGet(lo[v]!).simd(swizzleOp);
          c.localGet(hiTab).localGet(hi[v]!).simd(swizzleOp);
          c.simd(simd.v128Xor);
          if (!first) c.simd(simd.v128Xor);
          c.localSet(accOf(r, v));
        }
      }
      c.localGet(tp).i32Const(32 * rows).emit(op.i32Add).localSet(tp);
    };
    c.localGet(tables).localSet(tp);
    sourceStep(true);
    c.i32Const(1).localSet(j);
    c.emit(op.block, op.blockEmpty); // skipped when k = 1
    c.i32Const(1).localGet(k).emit(op.i32LtU, op.i32Eqz, op.brIf, 0);
    c.emit(op.loop, op.blockEmpty); // sources 1..k-1
    {
      sourceStep(false);
      c.localGet(j).i32Const(1).emit(op.i32Add).localTee(j).localGet(k).emit(op.i32LtU, op.brIf, 0);
    }
    c.emit(op.end);
    c.emit(op.end);
    for (let r = 0; r < rows; r++) {
      c.localGet(dsts).i32Load(4 * r).localGet(off).emit(op.i32Add).localSet(dp);
      for (let v = 0; v < vectors; v++) c.localGet(dp).localGet(accOf(r, v)).v128Store(v * vectorBytes);
    }
    c.localGet(off).i32Const(vectors * vectorBytes).emit(op.i32Add).localTee(off).localGet(len).emit(op.i32LtU, op.brIf, 0);
  }
  c.emit(op.end);
  return { exportName: kernelExportName(rows), params, locals, body: c };
}
