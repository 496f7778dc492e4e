// The contract between the codec and its multiplication kernels (ISA-L through bun:ffi,
// WebAssembly SIMD, plain TypeScript): given a rows x cols matrix over GF(2^8), turn cols input
// shards into rows output shards. Every kernel gives the same bytes for the same matrix.
// Kernels know nothing of Reed-Solomon (which matrix, which shards are lost): that is codec.ts.
// A kernel must never keep a reference to a caller's shard after multiply returns.

export type EcKernelName = "isal" | "wasm-relaxed-simd" | "wasm-simd" | "typescript";

/** Tables built once for one coefficient matrix; valid until release(). */
export interface MultiplyPlan {
  readonly rows: number;
  readonly cols: number;
  /** Gives back the memory of the tables; the plan must not be used afterwards. */
  release(): void;
}

export interface EcKernel {
  readonly name: EcKernelName;
  /** Builds the tables of the rows x cols row-major matrix `coefficients`. */
  plan(coefficients: Uint8Array, shape: { readonly rows: number; readonly cols: number }): MultiplyPlan;
  /**
   * outputs[r] = xor over j of coefficients[r][j] * inputs[j], byte by byte. All shards have the
   * same length, a non-zero multiple of 64 (the codec checks before calling). Outputs must not
   * overlap inputs.
   */
  multiply(plan: MultiplyPlan, inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): void;
  /**
   * A zeroed shard buffer that the kernel reads and writes without a copy (for the wasm kernel,
   * a view of its own memory), or null when the kernel's arena is full: push back, or use an
   * ordinary Uint8Array and pay a copy.
   */
  allocShard(bytes: number): Uint8Array | null;
  /** Returns a buffer from allocShard; the view must not be used afterwards. */
  freeShard(shard: Uint8Array): void;
}
