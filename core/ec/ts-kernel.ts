// The plain TypeScript kernel: the reference every faster kernel is tested against, and the last
// resort where WebAssembly SIMD is missing. One 256-byte product row per coefficient, one lookup
// per byte. Pure; it must never be clever: its job is to be obviously right.

import { assert } from "../util/assert.ts";
import { gfMulTable } from "./gf256.ts";
import type { EcKernel, MultiplyPlan } from "./kernel.ts";

class TypeScriptPlan implements MultiplyPlan {
  constructor(
    readonly rows: number,
    readonly cols: number,
    /** Per row r and input j, the product row of coefficient [r][j] in gfMulTable. */
    readonly productRows: readonly Uint8Array[],
  ) {}
  release(): void {}
}

export function createTypeScriptKernel(): EcKernel {
  return {
    name: "typescript",
    plan(coefficients, { rows, cols }) {
      assert(coefficients.length === rows * cols);
      const productRows: Uint8Array[] = [];
      for (let i = 0; i < rows * cols; i++) {
        const c = coefficients[i]!;
        productRows.push(gfMulTable.subarray(c * 256, c * 256 + 256));
      }
      return new TypeScriptPlan(rows, cols, productRows);
    },
    multiply(plan, inputs, outputs) {
      assert(plan instanceof TypeScriptPlan, "plan from another kernel");
      assert(inputs.length === plan.cols);
      assert(outputs.length === plan.rows);
      for (let r = 0; r < plan.rows; r++) {
        const out = outputs[r]!;
        out.fill(0);
        for (let j = 0; j < plan.cols; j++) {
          const product = plan.productRows[r * plan.cols + j]!;
          const input = inputs[j]!;
          assert(input.length === out.length);
          for (let i = 0; i < out.length; i++) out[i] = out[i]! ^ product[input[i]!]!;
        }
      }
    },
    allocShard(bytes) {
      return new Uint8Array(bytes);
    },
    freeShard() {},
  };
}
