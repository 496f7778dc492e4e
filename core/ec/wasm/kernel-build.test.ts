// Tests that the checked-in wasm kernel is a fresh build of its source, and the emitter's LEB128.
import { expect, test } from "bun:test";
import { kernelRelaxedBase64, kernelStandardBase64 } from "./kernel.generated.ts";
import { buildKernelModule, checkedInVariant } from "./kernel-source.ts";
import { renderGeneratedKernelFile } from "./render.ts";
import { signedLeb128, unsignedLeb128 } from "./emitter.ts";

test("the checked-in kernel.generated.ts equals a fresh build (run `bun core/ec/wasm/build.ts`)", async () => {
  const checkedIn = await Bun.file(new URL("./kernel.generated.ts", import.meta.url).pathname).text();
  expect(checkedIn).toBe(renderGeneratedKernelFile());
  expect(kernelStandardBase64).toBe(Buffer.from(buildKernelModule(checkedInVariant("standard"))).toString("base64"));
  expect(kernelRelaxedBase64).toBe(Buffer.from(buildKernelModule(checkedInVariant("relaxed"))).toString("base64"));
});

test("the standard kernel module is valid WebAssembly SIMD128", () => {
  expect(WebAssembly.validate(buildKernelModule(checkedInVariant("standard")))).toBe(true);
});

test("LEB128 encodings match the specification's examples", () => {
  expect(unsignedLeb128(0)).toEqual([0]);
  expect(unsignedLeb128(624485)).toEqual([0xe5, 0x8e, 0x26]);
  expect(unsignedLeb128(0x100)).toEqual([0x80, 0x02]);
  expect(signedLeb128(-123456)).toEqual([0xc0, 0xbb, 0x78]);
  expect(signedLeb128(63)).toEqual([0x3f]);
  expect(signedLeb128(64)).toEqual([0xc0, 0x00]);
  expect(signedLeb128(-1)).toEqual([0x7f]);
});
