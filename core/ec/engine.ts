// Chooses the erasure-coding kernel once, at start: ISA-L through bun:ffi when the host has
// libisal, else WebAssembly with relaxed SIMD when the runtime validates it, else standard
// SIMD128, else plain TypeScript; then warms it up so that the first real stripe does not pay for
// compilation tiers. The chosen name is what `qstora status` reports.
// It must never pick a kernel that fails the warm-up's parity check against the reference.

import { assert } from "../util/assert.ts";
import { QstoraError } from "../util/errors.ts";
import { EcCodec } from "./codec.ts";
import { createIsalKernel } from "./isal-kernel.ts";
import type { EcKernel, EcKernelName } from "./kernel.ts";
import { createTypeScriptKernel } from "./ts-kernel.ts";
import { createWasmKernel } from "./wasm-kernel.ts";
import { fillXorshift, fnv1aHex } from "./xorshift-fill.ts";

export type EcKernelChoice = "auto" | EcKernelName;

export interface EcEngineOptions {
  /** "auto" (default) takes the fastest available; a name insists on that kernel. */
  readonly kernel?: EcKernelChoice;
  /** Arena of the wasm kernel (tables and shard buffers). */
  readonly arenaBytes?: number;
  /** Skip the warm-up (tests that load many kernels). */
  readonly warmUp?: boolean;
}

/** Order of preference for "auto". */
export const kernelPreference: readonly EcKernelName[] = ["isal", "wasm-relaxed-simd", "wasm-simd", "typescript"];

/** Warm-up: a 4+2 stripe of 8 KiB per row count, repeated so that JIT tiers settle. */
const warmUpShardBytes = 8192;
const warmUpRounds = 200;

function create(name: EcKernelName, arenaBytes: number | undefined): EcKernel | null {
  switch (name) {
    case "isal":
      return createIsalKernel();
    case "wasm-relaxed-simd":
      return createWasmKernel(arenaBytes === undefined ? { swizzle: "relaxed" } : { swizzle: "relaxed", arenaBytes });
    case "wasm-simd":
      return createWasmKernel(arenaBytes === undefined ? { swizzle: "standard" } : { swizzle: "standard", arenaBytes });
    case "typescript":
      return createTypeScriptKernel();
  }
}

/** The kernel, chosen and warmed up. Throws INVALID_ARGUMENT when a named kernel is unavailable. */
export function loadEcKernel(options: EcEngineOptions = {}): EcKernel {
  const choice = options.kernel ?? "auto";
  const names = choice === "auto" ? kernelPreference : [choice];
  for (const name of names) {
    const kernel = create(name, options.arenaBytes);
    if (kernel === null) continue;
    if (options.warmUp !== false) warmUp(kernel);
    return kernel;
  }
  throw new QstoraError(
    "INVALID_ARGUMENT",
    `erasure-coding kernel "${choice}" is not available on this host`,
    choice === "isal" ? "Install Debian's libisal2 (apt-get install libisal2), or use kernel auto." : "Use kernel auto.",
  );
}

/** Which kernels this host and runtime can load, for `qstora status`. */
export function availableEcKernels(): EcKernelName[] {
  return kernelPreference.filter((name) => create(name, 1 << 20) !== null);
}

/**
 * Runs every row count through the kernel and checks the parity against the reference kernel:
 * JIT tiers settle before real stripes arrive, and a kernel that is wrong on this runtime is
 * caught at start rather than on a customer's data.
 */
export function warmUp(kernel: EcKernel): void {
  const reference = createTypeScriptKernel();
  const k = 4;
  for (let m = 1; m <= 8; m++) {
    const codec = new EcCodec(kernel, { k, m });
    const referenceCodec = new EcCodec(reference, { k, m });
    const shards: Uint8Array[] = [];
    for (let i = 0; i < k + m; i++) shards.push(kernel.allocShard(warmUpShardBytes) ?? new Uint8Array(warmUpShardBytes));
    fillXorshift(shards.slice(0, k));
    const rounds = kernel.name === "typescript" ? 1 : warmUpRounds;
    for (let round = 0; round < rounds; round++) codec.encode(shards.slice(0, k), shards.slice(k));
    const expected = shards.map((s) => s.slice());
    referenceCodec.encode(expected.slice(0, k), expected.slice(k));
    assert(fnv1aHex(shards.slice(k)) === fnv1aHex(expected.slice(k)), `erasure-coding kernel ${kernel.name} disagrees with the reference at ${k}+${m}`);
    for (const s of shards) kernel.freeShard(s);
    codec.release();
    referenceCodec.release();
  }
}
