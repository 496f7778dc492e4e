// Builds the erasure-coding kernel modules from core/ec/wasm/kernel-source.ts and writes them,
// base64-encoded, to core/ec/wasm/kernel.generated.ts so that `bun build --compile` carries them
// inside dist/qstora. Run after changing the kernel source:
//   node_modules/.bin/bun core/ec/wasm/build.ts
// (kernel-build.test.ts fails when the checked-in file differs from a fresh build).
// It must never write anything but that one file.

import { renderGeneratedKernelFile } from "./render.ts";

const target = new URL("./kernel.generated.ts", import.meta.url).pathname;
await Bun.write(target, renderGeneratedKernelFile());
console.log(`wrote ${target}`);
