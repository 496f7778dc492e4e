// Tests of the kernel choice at start, the warm-up check and the wasm arena's bounds.
import { expect, test } from "bun:test";
import { QstoraError } from "../util/errors.ts";
import { availableEcKernels, loadEcKernel } from "./engine.ts";
import { createWasmKernel } from "./wasm-kernel.ts";

test("loadEcKernel() with auto takes ISA-L when libisal is installed, else the best wasm form", () => {
  const available = availableEcKernels();
  expect(available).toContain("typescript");
  expect(available).toContain("wasm-simd");
  expect(loadEcKernel({ warmUp: false }).name).toBe(available[0]!);
});

test("loadEcKernel() warms up a named kernel and checks it against the reference", () => {
  expect(loadEcKernel({ kernel: "wasm-simd", arenaBytes: 4 << 20 }).name).toBe("wasm-simd");
  expect(loadEcKernel({ kernel: "typescript" }).name).toBe("typescript");
});

test("loadEcKernel() names the missing kernel when it is unavailable", () => {
  if (availableEcKernels().includes("wasm-relaxed-simd")) return; // only when the runtime lacks relaxed SIMD
  try {
    loadEcKernel({ kernel: "wasm-relaxed-simd" });
    throw new Error("no error");
  } catch (e: unknown) {
    expect(e).toBeInstanceOf(QstoraError);
    expect((e as QstoraError).code).toBe("INVALID_ARGUMENT");
    expect((e as QstoraError).message).toContain('"wasm-relaxed-simd" is not available');
  }
});

test("the wasm kernel's arena returns null when full and takes freed space back", () => {
  const kernel = createWasmKernel({ swizzle: "standard", arenaBytes: 1 << 20 })!;
  const shards: Uint8Array[] = [];
  for (;;) {
    const s = kernel.allocShard(64 * 1024);
    if (s === null) break;
    shards.push(s);
  }
  expect(shards.length).toBeGreaterThanOrEqual(16);
  // What is left after the last 64 KiB is smaller than 64 KiB: fill it, then nothing more fits.
  let small = 0;
  while (kernel.allocShard(64) !== null) expect(++small).toBeLessThan(1024);
  expect(kernel.allocShard(64)).toBeNull();
  kernel.freeShard(shards[3]!);
  kernel.freeShard(shards[4]!);
  const joined = kernel.allocShard(128 * 1024);
  expect(joined).not.toBeNull();
  expect(joined!.byteOffset).toBe(shards[3]!.byteOffset);
  expect(joined!.every((b) => b === 0)).toBe(true);
});
