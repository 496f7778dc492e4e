// Systematic Reed-Solomon over GF(2^8) with ISA-L's Cauchy matrix (gf_gen_cauchy1_matrix), so
// parity is byte-identical to ISA-L's ec_encode_data and either can decode the other's stripes.
// encode: K data shards -> M parity shards; reconstruct: any missing shards from the first K
// survivors; verify: recompute parity and name the shards that disagree.
// Decode plans (inverted matrix and its tables) are cached by the set of missing shards.
// Pure computation over the caller's buffers: no I/O. It must never pad or resize a shard on its
// own: lengths are the caller's to choose (shardBytesFor pads explicitly).

import { assert } from "../util/assert.ts";
import { QstoraError } from "../util/errors.ts";
import { cauchyMatrix, invertMatrix, multiplyMatrices } from "./gf256.ts";
import type { EcKernel, EcKernelName, MultiplyPlan } from "./kernel.ts";

/** Data shards per stripe: at most 32 (the limit; ISA-L's own is 255 - M). */
export const ecDataShardsMax = 32;
/** Parity shards per stripe: at most 8, one kernel function per count (wasm/kernel-source.ts). */
export const ecParityShardsMax = 8;
/** Shard lengths are multiples of 64 bytes, the kernels' loop quantum and a cache line. */
export const ecShardQuantumBytes = 64;
/** The largest shard a codec accepts: 64 MiB (wasm addresses are 32-bit; stripes are far smaller). */
export const ecShardBytesMax = 64 * 1024 * 1024;
/** Decode plans cached per codec: one per erasure pattern in use, oldest dropped first. */
export const decodePlansMax = 64;

export interface EcShape {
  readonly k: number;
  readonly m: number;
}

export type ReconstructResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: "too-few-survivors"; readonly survivors: number; readonly needed: number; readonly message: string };

export type VerifyResult = { readonly ok: true } | { readonly ok: false; readonly badParity: readonly number[] };

/** The shard length for `dataBytes` of stripe data over k shards: rounded up to 64 bytes. */
export function shardBytesFor(dataBytes: number, k: number): number {
  assert(Number.isSafeInteger(dataBytes) && dataBytes > 0);
  assert(Number.isInteger(k) && k >= 1);
  const perShard = Math.ceil(dataBytes / k);
  return Math.ceil(perShard / ecShardQuantumBytes) * ecShardQuantumBytes;
}

/** Throws INVALID_ARGUMENT unless 1 <= k <= 32 and 1 <= m <= 8. */
export function checkShape(shape: EcShape): void {
  const { k, m } = shape;
  if (!Number.isInteger(k) || k < 1 || k > ecDataShardsMax) {
    throw new QstoraError("INVALID_ARGUMENT", `erasure coding: K=${k} data shards is out of range`, `Use K from 1 to ${ecDataShardsMax}.`);
  }
  if (!Number.isInteger(m) || m < 1 || m > ecParityShardsMax) {
    throw new QstoraError("INVALID_ARGUMENT", `erasure coding: M=${m} parity shards is out of range`, `Use M from 1 to ${ecParityShardsMax}.`);
  }
}

interface DecodePlan {
  /** Indices of the k shards read, ascending. */
  readonly survivors: readonly number[];
  /** Indices of the shards rebuilt, ascending; plan row r writes missing[r]. */
  readonly missing: readonly number[];
  readonly multiply: MultiplyPlan;
}

export class EcCodec {
  readonly k: number;
  readonly m: number;
  /** (k+m) x k, row-major: identity then Cauchy rows. */
  readonly matrix: Uint8Array;
  private readonly encodePlan: MultiplyPlan;
  private readonly decodePlans = new Map<number, DecodePlan>();
  private verifyScratch: Uint8Array[] = [];

  constructor(
    private readonly kernel: EcKernel,
    shape: EcShape,
  ) {
    checkShape(shape);
    this.k = shape.k;
    this.m = shape.m;
    this.matrix = cauchyMatrix(this.k, this.m);
    this.encodePlan = kernel.plan(this.matrix.subarray(this.k * this.k), { rows: this.m, cols: this.k });
  }

  get kernelName(): EcKernelName {
    return this.kernel.name;
  }

  /** Computes the m parity shards of the k data shards into `parity`. */
  encode(data: readonly Uint8Array[], parity: readonly Uint8Array[]): void {
    this.checkCount(data, this.k, "data");
    this.checkCount(parity, this.m, "parity");
    const bytes = checkLengths([...data, ...parity]);
    assert(bytes > 0);
    this.kernel.multiply(this.encodePlan, data, parity);
  }

  /**
   * Rebuilds shards[i] for every i in `missing` from the first k shards not in `missing`.
   * `shards` holds all k+m buffers, data first; the missing ones are overwritten. Returns
   * too-few-survivors (nothing written) when more than m are missing.
   */
  reconstruct(shards: readonly Uint8Array[], missing: readonly number[]): ReconstructResult {
    this.checkCount(shards, this.k + this.m, "stripe");
    checkLengths(shards);
    let mask = 0;
    for (const i of missing) {
      if (!Number.isInteger(i) || i < 0 || i >= this.k + this.m) {
        throw new QstoraError("INVALID_ARGUMENT", `erasure coding: missing shard index ${i} is not in 0..${this.k + this.m - 1}`);
      }
      mask += (mask / 2 ** i) % 2 >= 1 ? 0 : 2 ** i; // k+m <= 40: a bit set beyond 32 bits, in a double
    }
    const missingCount = popCount(mask, this.k + this.m);
    if (missingCount === 0) return { ok: true };
    const survivors = this.k + this.m - missingCount;
    if (survivors < this.k) {
      return {
        ok: false,
        reason: "too-few-survivors",
        survivors,
        needed: this.k,
        message: `${missingCount} of ${this.k + this.m} shards are missing; ${this.k}+${this.m} needs ${this.k} survivors and has ${survivors}`,
      };
    }
    const plan = this.decodePlan(mask);
    this.kernel.multiply(
      plan.multiply,
      plan.survivors.map((i) => shards[i]!),
      plan.missing.map((i) => shards[i]!),
    );
    return { ok: true };
  }

  /** Recomputes parity from the data shards and names the parity shards (0-based) that differ. */
  verify(shards: readonly Uint8Array[]): VerifyResult {
    this.checkCount(shards, this.k + this.m, "stripe");
    const bytes = checkLengths(shards);
    const scratch = this.scratchFor(bytes);
    this.kernel.multiply(this.encodePlan, shards.slice(0, this.k), scratch);
    const badParity: number[] = [];
    for (let p = 0; p < this.m; p++) if (!equalBytes(scratch[p]!, shards[this.k + p]!)) badParity.push(p);
    return badParity.length === 0 ? { ok: true } : { ok: false, badParity };
  }

  /** Gives back the tables of every plan; the codec must not be used afterwards. */
  release(): void {
    this.encodePlan.release();
    for (const plan of this.decodePlans.values()) plan.multiply.release();
    this.decodePlans.clear();
    for (const s of this.verifyScratch) this.kernel.freeShard(s);
    this.verifyScratch = [];
  }

  private decodePlan(mask: number): DecodePlan {
    const cached = this.decodePlans.get(mask);
    if (cached) {
      // Refresh its place so that the least recently used plan is dropped first.
      this.decodePlans.delete(mask);
      this.decodePlans.set(mask, cached);
      return cached;
    }
    const { k, m } = this;
    const survivors: number[] = [];
    const missing: number[] = [];
    for (let i = 0; i < k + m; i++) {
      if ((mask / 2 ** i) % 2 >= 1) missing.push(i);
      else if (survivors.length < k) survivors.push(i);
    }
    assert(survivors.length === k);
    // The survivors' rows of the encoding matrix map data to survivors; its inverse maps back.
    const survivorRows = new Uint8Array(k * k);
    survivors.forEach((s, r) => survivorRows.set(this.matrix.subarray(s * k, s * k + k), r * k));
    const inverse = invertMatrix(survivorRows, k);
    assert(inverse !== null, "a Cauchy code's survivor matrix is always invertible");
    // Row for a missing shard i: (row i of the encoding matrix) x inverse. For a data shard this
    // is row i of the inverse itself.
    const wanted = new Uint8Array(missing.length * k);
    missing.forEach((i, r) => wanted.set(this.matrix.subarray(i * k, i * k + k), r * k));
    const coefficients = multiplyMatrices(wanted, inverse, { rows: missing.length, inner: k, cols: k });
    const plan: DecodePlan = { survivors, missing, multiply: this.kernel.plan(coefficients, { rows: missing.length, cols: k }) };
    if (this.decodePlans.size >= decodePlansMax) {
      const oldest = this.decodePlans.keys().next();
      assert(oldest.done !== true);
      this.decodePlans.get(oldest.value)?.multiply.release();
      this.decodePlans.delete(oldest.value);
    }
    this.decodePlans.set(mask, plan);
    assert(this.decodePlans.size <= decodePlansMax);
    return plan;
  }

  private scratchFor(bytes: number): Uint8Array[] {
    if (this.verifyScratch.length === this.m && this.verifyScratch[0]!.length === bytes) return this.verifyScratch;
    for (const s of this.verifyScratch) this.kernel.freeShard(s);
    this.verifyScratch = [];
    for (let p = 0; p < this.m; p++) this.verifyScratch.push(this.kernel.allocShard(bytes) ?? new Uint8Array(bytes));
    return this.verifyScratch;
  }

  private checkCount(shards: readonly Uint8Array[], expected: number, what: string): void {
    if (shards.length !== expected) {
      throw new QstoraError("INVALID_ARGUMENT", `erasure coding ${this.k}+${this.m}: ${shards.length} ${what} shards given, ${expected} expected`);
    }
  }
}

/** Checks that all shards have one length, a non-zero multiple of 64 up to the maximum; returns it. */
function checkLengths(shards: readonly Uint8Array[]): number {
  const bytes = shards[0]!.length;
  for (const [i, s] of shards.entries()) {
    if (s.length !== bytes) {
      throw new QstoraError("INVALID_ARGUMENT", `erasure coding: shard ${i} is ${s.length} bytes, shard 0 is ${bytes}`, "Every shard of a stripe must have the same length.");
    }
  }
  if (bytes === 0 || bytes % ecShardQuantumBytes !== 0 || bytes > ecShardBytesMax) {
    throw new QstoraError(
      "INVALID_ARGUMENT",
      `erasure coding: shard length ${bytes} is not a non-zero multiple of ${ecShardQuantumBytes} up to ${ecShardBytesMax}`,
      "Pad the stripe explicitly (shardBytesFor gives the padded shard length).",
    );
  }
  return bytes;
}

function popCount(mask: number, bits: number): number {
  let n = 0;
  for (let i = 0; i < bits; i++) if ((mask / 2 ** i) % 2 >= 1) n++;
  return n;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.compare(a, b) === 0;
}
