// The WebAssembly SIMD128 kernel: instantiates the checked-in module (relaxed swizzle when the
// runtime validates it, the standard form otherwise) over a memory of fixed size that holds the
// shard pointer arrays, a copy area, and an arena for tables and for shard buffers handed out by
// allocShard, so that stripes built there are encoded in place with no copy.
// The memory never grows after creation: views handed out stay valid for the kernel's lifetime.
// It must never let a multiply touch memory outside the shards and tables it was given.

import { assert } from "../util/assert.ts";
import { nibbleTablesBytes, writeNibbleTables } from "./gf256.ts";
import type { EcKernel, MultiplyPlan } from "./kernel.ts";
import { kernelExportName, kernelRowsMax } from "./wasm/kernel-source.ts";
import { kernelRelaxedBase64, kernelStandardBase64 } from "./wasm/kernel.generated.ts";

/** WebAssembly page size (Core Specification 2.0, 2.3.8 "Memory Types"). */
const wasmPageBytes = 65536;
/** Inputs per multiply: the codec's K limit (32). */
const kernelColsMax = 32;
/** Address of the i32 array of input shard addresses. */
const sourcePointersAt = 0;
/** Address of the i32 array of output shard addresses. */
const targetPointersAt = sourcePointersAt + 4 * kernelColsMax;
/** Shards outside the memory are copied through slots of this size, one per input and output. */
const copySlotBytes = 16 * 1024;
const copyAreaAt = 1024;
const arenaAt = copyAreaAt + (kernelColsMax + kernelRowsMax) * copySlotBytes;
/** Arena granularity: a cache line, and the shard length quantum. */
const arenaAlignBytes = 64;
/** Live arena allocations (tables and shards) at most. */
export const arenaAllocationsMax = 4096;
/** Default arena: 64 MiB (a 16+4 stripe of 1 MiB shards uses 20 MiB). */
export const defaultArenaBytes = 64 * 1024 * 1024;

export type WasmSwizzle = "relaxed" | "standard";

type MultiplyExport = (len: number, k: number, tables: number, sources: number, targets: number) => void;

function decodeBase64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "base64"));
}

/** Which module forms this runtime validates (SIMD128; relaxed SIMD is off by default in JavaScriptCore). */
export function wasmKernelSupport(): { readonly standard: boolean; readonly relaxed: boolean } {
  return { standard: WebAssembly.validate(decodeBase64(kernelStandardBase64)), relaxed: WebAssembly.validate(decodeBase64(kernelRelaxedBase64)) };
}

/** First-fit allocator over [start, end) with coalescing; addresses and sizes multiples of 64. */
class Arena {
  /** Free extents sorted by address. */
  private free: { at: number; bytes: number }[];
  private readonly live = new Map<number, number>();

  constructor(start: number, end: number) {
    assert(start % arenaAlignBytes === 0 && end > start);
    this.free = [{ at: start, bytes: end - start - ((end - start) % arenaAlignBytes) }];
  }

  alloc(requested: number): number | null {
    assert(requested > 0);
    if (this.live.size >= arenaAllocationsMax) return null;
    const bytes = Math.ceil(requested / arenaAlignBytes) * arenaAlignBytes;
    const index = this.free.findIndex((e) => e.bytes >= bytes);
    if (index < 0) return null;
    const extent = this.free[index]!;
    const at = extent.at;
    if (extent.bytes === bytes) this.free.splice(index, 1);
    else this.free[index] = { at: at + bytes, bytes: extent.bytes - bytes };
    this.live.set(at, bytes);
    return at;
  }

  release(at: number): void {
    const bytes = this.live.get(at);
    assert(bytes !== undefined, "arena: freeing an address that is not allocated");
    this.live.delete(at);
    let index = this.free.findIndex((e) => e.at > at);
    if (index < 0) index = this.free.length;
    this.free.splice(index, 0, { at, bytes });
    // Merge with the next extent, then with the previous one.
    const next = this.free[index + 1];
    if (next && at + bytes === next.at) {
      this.free[index] = { at, bytes: bytes + next.bytes };
      this.free.splice(index + 1, 1);
    }
    const prev = this.free[index - 1];
    const self = this.free[index]!;
    if (prev && prev.at + prev.bytes === self.at) {
      this.free[index - 1] = { at: prev.at, bytes: prev.bytes + self.bytes };
      this.free.splice(index, 1);
    }
  }
}

class WasmPlan implements MultiplyPlan {
  released = false;
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly tablesAt: number,
    private readonly arena: Arena,
  ) {}
  release(): void {
    assert(!this.released, "plan released twice");
    this.released = true;
    this.arena.release(this.tablesAt);
  }
}

export interface WasmKernelOptions {
  readonly swizzle: WasmSwizzle;
  /** Bytes of arena for tables and shard buffers; the memory is this plus about 700 KiB. */
  readonly arenaBytes?: number;
}

/** The kernel, or null when the runtime does not validate the requested module form. */
export function createWasmKernel(options: WasmKernelOptions): EcKernel | null {
  const bytes = decodeBase64(options.swizzle === "relaxed" ? kernelRelaxedBase64 : kernelStandardBase64);
  if (!WebAssembly.validate(bytes)) return null;
  const arenaBytes = options.arenaBytes ?? defaultArenaBytes;
  assert(Number.isSafeInteger(arenaBytes) && arenaBytes > 0);
  const pages = Math.ceil((arenaAt + arenaBytes) / wasmPageBytes);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
  const functions: MultiplyExport[] = [];
  for (let rows = 1; rows <= kernelRowsMax; rows++) {
    const f = instance.exports[kernelExportName(rows)];
    assert(typeof f === "function", `kernel module lacks ${kernelExportName(rows)}`);
    functions.push(f as MultiplyExport);
  }
  const buffer = memory.buffer;
  const heap = new Uint8Array(buffer);
  const pointers = new Uint32Array(buffer, 0, targetPointersAt / 4 + kernelRowsMax);
  const arena = new Arena(arenaAt, pages * wasmPageBytes);

  const inMemory = (shard: Uint8Array): boolean => shard.buffer === buffer;

  const kernel: EcKernel = {
    name: options.swizzle === "relaxed" ? "wasm-relaxed-simd" : "wasm-simd",
    plan(coefficients, { rows, cols }) {
      assert(rows >= 1 && rows <= kernelRowsMax);
      assert(cols >= 1 && cols <= kernelColsMax);
      assert(coefficients.length === rows * cols);
      const tablesAt = arena.alloc(rows * cols * nibbleTablesBytes);
      assert(tablesAt !== null, "erasure-coding arena exhausted by tables (arenaAllocationsMax or arenaBytes too small)");
      // Layout the kernel reads: per input j, per row r, 32 bytes (kernel-source.ts header).
      for (let j = 0; j < cols; j++) {
        for (let r = 0; r < rows; r++) writeNibbleTables(coefficients[r * cols + j]!, heap, tablesAt + nibbleTablesBytes * (rows * j + r));
      }
      return new WasmPlan(rows, cols, tablesAt, arena);
    },
    multiply(plan, inputs, outputs) {
      assert(plan instanceof WasmPlan, "plan from another kernel");
      assert(!plan.released);
      assert(inputs.length === plan.cols);
      assert(outputs.length === plan.rows);
      const len = inputs[0]!.length;
      assert(len > 0 && len % 64 === 0);
      const f = functions[plan.rows - 1]!;
      let direct = true;
      for (const s of inputs) direct &&= inMemory(s);
      for (const s of outputs) direct &&= inMemory(s);
      if (direct) {
        // The hot path: every shard already lives in the memory; nothing is copied.
        for (let j = 0; j < plan.cols; j++) pointers[sourcePointersAt / 4 + j] = inputs[j]!.byteOffset;
        for (let r = 0; r < plan.rows; r++) pointers[targetPointersAt / 4 + r] = outputs[r]!.byteOffset;
        f(len, plan.cols, plan.tablesAt, sourcePointersAt, targetPointersAt);
        return;
      }
      // Some shard lives elsewhere: go piece by piece through the copy slots.
      for (let piece = 0; piece < len; piece += copySlotBytes) {
        const n = Math.min(copySlotBytes, len - piece);
        for (let j = 0; j < plan.cols; j++) {
          const s = inputs[j]!;
          if (inMemory(s)) pointers[sourcePointersAt / 4 + j] = s.byteOffset + piece;
          else {
            const slot = copyAreaAt + j * copySlotBytes;
            heap.set(s.subarray(piece, piece + n), slot);
            pointers[sourcePointersAt / 4 + j] = slot;
          }
        }
        for (let r = 0; r < plan.rows; r++) {
          const s = outputs[r]!;
          pointers[targetPointersAt / 4 + r] = inMemory(s) ? s.byteOffset + piece : copyAreaAt + (kernelColsMax + r) * copySlotBytes;
        }
        f(n, plan.cols, plan.tablesAt, sourcePointersAt, targetPointersAt);
        for (let r = 0; r < plan.rows; r++) {
          const s = outputs[r]!;
          if (!inMemory(s)) {
            const slot = copyAreaAt + (kernelColsMax + r) * copySlotBytes;
            s.set(heap.subarray(slot, slot + n), piece);
          }
        }
      }
    },
    allocShard(bytes) {
      const at = arena.alloc(bytes);
      if (at === null) return null;
      const view = new Uint8Array(buffer, at, bytes);
      view.fill(0);
      return view;
    },
    freeShard(shard) {
      assert(inMemory(shard), "freeShard: not a shard of this kernel");
      arena.release(shard.byteOffset);
    },
  };
  return kernel;
}
