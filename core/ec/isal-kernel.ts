// The optional fast path: Intel ISA-L (Debian's libisal2) through bun:ffi, when the host has it.
// Same matrix, same tables layout, same parity as the other kernels (ISA-L is the reference they
// are held to). It must never be required: when the library is absent, loading returns null.

import { dlopen, FFIType, ptr } from "bun:ffi";
import { assert } from "../util/assert.ts";
import { nibbleTablesBytes } from "./gf256.ts";
import type { EcKernel, MultiplyPlan } from "./kernel.ts";

/** Library names tried, in order (Debian's libisal2 ships the first). */
const isalLibraryNames = ["libisal.so.2", "libisal.so"];
/** Inputs and outputs per multiply: the codec's K and M limits. */
const sourcesMax = 32;
const targetsMax = 8;

const isalSymbols = {
  // void ec_init_tables(int k, int rows, unsigned char *a, unsigned char *gftbls)   (erasure_code.h)
  ec_init_tables: { args: [FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.void },
  // void ec_encode_data(int len, int k, int rows, unsigned char *gftbls, unsigned char **data, unsigned char **coding)
  ec_encode_data: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.void },
  // void gf_gen_cauchy1_matrix(unsigned char *a, int m, int k)
  gf_gen_cauchy1_matrix: { args: [FFIType.ptr, FFIType.i32, FFIType.i32], returns: FFIType.void },
  // int gf_invert_matrix(unsigned char *in, unsigned char *out, const int n)
  gf_invert_matrix: { args: [FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
} as const;

type IsalLibrary = ReturnType<typeof dlopen<typeof isalSymbols>>;

export function openIsal(): IsalLibrary | null {
  for (const name of isalLibraryNames) {
    try {
      return dlopen(name, isalSymbols);
    } catch {
      // Not installed under this name: try the next, then fall back to the wasm kernel.
    }
  }
  return null;
}

class IsalPlan implements MultiplyPlan {
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly tables: Uint8Array,
  ) {}
  release(): void {}
}

export function createIsalKernel(): EcKernel | null {
  const lib = openIsal();
  if (lib === null) return null;
  const { ec_init_tables, ec_encode_data } = lib.symbols;
  const sourcePointers = new BigUint64Array(sourcesMax);
  const targetPointers = new BigUint64Array(targetsMax);
  const sourcePointersAddress = ptr(sourcePointers);
  const targetPointersAddress = ptr(targetPointers);
  return {
    name: "isal",
    plan(coefficients, { rows, cols }) {
      assert(coefficients.length === rows * cols);
      const tables = new Uint8Array(rows * cols * nibbleTablesBytes);
      ec_init_tables(cols, rows, ptr(coefficients), ptr(tables));
      return new IsalPlan(rows, cols, tables);
    },
    multiply(plan, inputs, outputs) {
      assert(plan instanceof IsalPlan, "plan from another kernel");
      assert(inputs.length === plan.cols);
      assert(outputs.length === plan.rows);
      const len = inputs[0]!.length;
      assert(plan.cols <= sourcesMax && plan.rows <= targetsMax);
      for (let j = 0; j < plan.cols; j++) sourcePointers[j] = BigInt(ptr(inputs[j]!));
      for (let r = 0; r < plan.rows; r++) targetPointers[r] = BigInt(ptr(outputs[r]!));
      ec_encode_data(len, plan.cols, plan.rows, ptr(plan.tables), sourcePointersAddress, targetPointersAddress);
    },
    allocShard(bytes) {
      return new Uint8Array(bytes);
    },
    freeShard() {},
  };
}
