// Runs the erasure-coding conformance suite against every kernel this runtime can load.
import { ecKernelConformance } from "./codec-conformance.ts";
import { createTypeScriptKernel } from "./ts-kernel.ts";

ecKernelConformance("typescript", createTypeScriptKernel);
