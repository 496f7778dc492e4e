// Runs the erasure-coding conformance suite against every kernel: the TypeScript reference, the
// wasm kernel in each form the runtime validates, and ISA-L through bun:ffi. libisal is installed
// by test/setup.sh (Debian libisal-dev); if it is still missing here the ISA-L test fails and says so.
import { expect, test } from "bun:test";
import { ecKernelConformance } from "./codec-conformance.ts";
import { createIsalKernel } from "./isal-kernel.ts";
import { createTypeScriptKernel } from "./ts-kernel.ts";
import { createWasmKernel, wasmKernelSupport } from "./wasm-kernel.ts";

ecKernelConformance("typescript", createTypeScriptKernel);

test("the runtime validates the standard SIMD128 kernel module", () => {
  expect(wasmKernelSupport().standard).toBe(true);
});

ecKernelConformance("wasm-simd", () => {
  const kernel = createWasmKernel({ swizzle: "standard", arenaBytes: 32 << 20 });
  if (kernel === null) throw new Error("WebAssembly SIMD128 is not validated by this runtime");
  return kernel;
});

// JavaScriptCore keeps relaxed SIMD behind an option (BUN_JSC_useWasmRelaxedSIMD=1 with
// BUN_JSC_useWasmIPIntSIMD=0); the suite runs for that form whenever the runtime validates it.
if (wasmKernelSupport().relaxed) {
  ecKernelConformance("wasm-relaxed-simd", () => createWasmKernel({ swizzle: "relaxed", arenaBytes: 32 << 20 })!);
}

test("ISA-L (libisal2) loads through bun:ffi", () => {
  if (createIsalKernel() === null) throw new Error("libisal.so.2 not found: install it with `apt-get install -y libisal-dev` (test/setup.sh does, as root)");
});

const isal = createIsalKernel();
if (isal !== null) ecKernelConformance("isal", () => isal);
