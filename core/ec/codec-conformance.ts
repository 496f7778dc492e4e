// The conformance suite every erasure-coding kernel passes (house style: one suite per interface,
// run against every implementation): ISA-L's parity fingerprints, every erasure pattern of every
// shape up to 6+3, random shapes up to 32+8 against the TypeScript reference, verify, and the
// errors for wrong inputs. Test code only; it must never be imported by the product.

import { describe, expect, test } from "bun:test";
import { QstoraError } from "../util/errors.ts";
import { EcCodec } from "./codec.ts";
import type { EcKernel } from "./kernel.ts";
import { createTypeScriptKernel } from "./ts-kernel.ts";
import { fillXorshift, fnv1aHex } from "./xorshift-fill.ts";

/**
 * Parity fingerprints printed by ../shared/tools/isal-bench.c (Debian libisal 2.30) for its data
 * generator at 262144-byte shards: `isal-bench K M` -> parity_fnv1a.
 */
export const isalParityFingerprints: readonly { k: number; m: number; fnv1a: string }[] = [
  { k: 4, m: 2, fnv1a: "722289ce" },
  { k: 8, m: 3, fnv1a: "ea86d438" },
  { k: 16, m: 4, fnv1a: "b1eb3095" },
];
export const isalFingerprintShardBytes = 262144;

/** Seeded generator for shapes and patterns (house style: no Math.random in tests). */
export function seededRandom(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

export function makeStripe(kernel: EcKernel, k: number, m: number, bytes: number, seed: number): Uint8Array[] {
  const shards: Uint8Array[] = [];
  for (let i = 0; i < k + m; i++) shards.push(kernel.allocShard(bytes) ?? new Uint8Array(bytes));
  fillXorshift(shards.slice(0, k), seed);
  return shards;
}

export function freeStripe(kernel: EcKernel, shards: readonly Uint8Array[]): void {
  for (const s of shards) kernel.freeShard(s);
}

/** Every subset of 0..n-1 with at most `most` members, in a fixed order. */
export function subsetsUpTo(n: number, most: number): number[][] {
  const out: number[][] = [[]];
  const walk = (start: number, chosen: number[]): void => {
    for (let i = start; i < n; i++) {
      const next = [...chosen, i];
      out.push(next);
      if (next.length < most) walk(i + 1, next);
    }
  };
  walk(0, []);
  return out;
}

export function ecKernelConformance(name: string, makeKernel: () => EcKernel): void {
  describe(`erasure coding with the ${name} kernel`, () => {
    const kernel = makeKernel();
    const reference = createTypeScriptKernel();

    for (const { k, m, fnv1a } of isalParityFingerprints) {
      test(`encode ${k}+${m} gives ISA-L's parity fingerprint ${fnv1a}`, () => {
        const codec = new EcCodec(kernel, { k, m });
        const shards = makeStripe(kernel, k, m, isalFingerprintShardBytes, 0x12345678);
        codec.encode(shards.slice(0, k), shards.slice(k));
        expect(fnv1aHex(shards.slice(k))).toBe(fnv1a);
        freeStripe(kernel, shards);
        codec.release();
      });
    }

    test("every erasure pattern of every shape up to 6+3 decodes to the original", () => {
      let patterns = 0;
      for (let k = 1; k <= 6; k++) {
        for (let m = 1; m <= 3; m++) {
          const codec = new EcCodec(kernel, { k, m });
          const shards = makeStripe(kernel, k, m, 128, 1000 * k + m);
          codec.encode(shards.slice(0, k), shards.slice(k));
          const original = shards.map((s) => s.slice());
          for (const missing of subsetsUpTo(k + m, m)) {
            for (const i of missing) shards[i]!.fill(0xa5);
            const result = codec.reconstruct(shards, missing);
            expect(result).toEqual({ ok: true });
            for (let i = 0; i < k + m; i++) if (!Buffer.from(shards[i]!).equals(original[i]!)) throw new Error(`${k}+${m} missing [${missing}]: shard ${i} differs`);
            patterns++;
          }
          freeStripe(kernel, shards);
          codec.release();
        }
      }
      expect(patterns).toBe(525); // sum over shapes of C(k+m, 0..m), counted independently
    });

    test("random shapes up to 32+8 give the reference kernel's parity and decode any m losses", () => {
      const random = seededRandom(0xec0de);
      for (let round = 0; round < 24; round++) {
        const k = 1 + random(32);
        const m = 1 + random(8);
        const bytes = 64 * (1 + random(40));
        const codec = new EcCodec(kernel, { k, m });
        const referenceCodec = new EcCodec(reference, { k, m });
        const shards = makeStripe(kernel, k, m, bytes, round + 1);
        codec.encode(shards.slice(0, k), shards.slice(k));
        const expected = shards.slice(0, k).map((s) => s.slice());
        for (let p = 0; p < m; p++) expected.push(new Uint8Array(bytes));
        referenceCodec.encode(expected.slice(0, k), expected.slice(k));
        for (let i = 0; i < k + m; i++) expect(Buffer.from(shards[i]!).equals(expected[i]!)).toBe(true);
        const missing = new Set<number>();
        const losses = 1 + random(m);
        while (missing.size < losses) missing.add(random(k + m));
        for (const i of missing) shards[i]!.fill(0);
        expect(codec.reconstruct(shards, [...missing])).toEqual({ ok: true });
        for (let i = 0; i < k + m; i++) if (!Buffer.from(shards[i]!).equals(expected[i]!)) throw new Error(`${k}+${m} len ${bytes} missing [${[...missing]}]: shard ${i} differs`);
        freeStripe(kernel, shards);
        codec.release();
        referenceCodec.release();
      }
    });

    test("shards outside the kernel's own memory give the same parity (copy path)", () => {
      const k = 5;
      const m = 3;
      const bytes = 64 * 1024 + 192;
      const codec = new EcCodec(kernel, { k, m });
      const referenceCodec = new EcCodec(reference, { k, m });
      const plain: Uint8Array[] = [];
      for (let i = 0; i < k + m; i++) plain.push(new Uint8Array(bytes));
      fillXorshift(plain.slice(0, k), 7);
      const expected = plain.map((s) => s.slice());
      codec.encode(plain.slice(0, k), plain.slice(k));
      referenceCodec.encode(expected.slice(0, k), expected.slice(k));
      expect(fnv1aHex(plain.slice(k))).toBe(fnv1aHex(expected.slice(k)));
      plain[1]!.fill(0);
      plain[6]!.fill(0);
      expect(codec.reconstruct(plain, [6, 1])).toEqual({ ok: true });
      expect(fnv1aHex(plain)).toBe(fnv1aHex(expected));
      codec.release();
      referenceCodec.release();
    });

    test("verify() names the parity shards that disagree with the data", () => {
      const codec = new EcCodec(kernel, { k: 4, m: 3 });
      const shards = makeStripe(kernel, 4, 3, 256, 3);
      codec.encode(shards.slice(0, 4), shards.slice(4));
      expect(codec.verify(shards)).toEqual({ ok: true });
      shards[5]![17] = shards[5]![17]! ^ 1;
      expect(codec.verify(shards)).toEqual({ ok: false, badParity: [1] });
      shards[0]![0] = shards[0]![0]! ^ 0x80;
      expect(codec.verify(shards)).toEqual({ ok: false, badParity: [0, 1, 2] });
      freeStripe(kernel, shards);
      codec.release();
    });

    test("reconstruct() with more than m shards missing reports too few survivors and writes nothing", () => {
      const codec = new EcCodec(kernel, { k: 4, m: 2 });
      const shards = makeStripe(kernel, 4, 2, 64, 9);
      codec.encode(shards.slice(0, 4), shards.slice(4));
      const before = shards.map((s) => s.slice());
      const result = codec.reconstruct(shards, [0, 2, 5]);
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.reason).toBe("too-few-survivors");
        expect(result.survivors).toBe(3);
        expect(result.needed).toBe(4);
        expect(result.message).toContain("needs 4 survivors and has 3");
      }
      for (let i = 0; i < 6; i++) expect(Buffer.from(shards[i]!).equals(before[i]!)).toBe(true);
      freeStripe(kernel, shards);
      codec.release();
    });

    test("wrong inputs get INVALID_ARGUMENT errors that say what is wrong", () => {
      const expectInvalid = (f: () => unknown, text: string): void => {
        try {
          f();
        } catch (e: unknown) {
          expect(e).toBeInstanceOf(QstoraError);
          expect((e as QstoraError).code).toBe("INVALID_ARGUMENT");
          expect((e as QstoraError).message).toContain(text);
          return;
        }
        throw new Error(`no error for: ${text}`);
      };
      expectInvalid(() => new EcCodec(kernel, { k: 33, m: 2 }), "K=33");
      expectInvalid(() => new EcCodec(kernel, { k: 0, m: 2 }), "K=0");
      expectInvalid(() => new EcCodec(kernel, { k: 32, m: 9 }), "M=9");
      const codec = new EcCodec(kernel, { k: 3, m: 2 });
      const a = (n: number): Uint8Array => new Uint8Array(n);
      expectInvalid(() => codec.encode([a(64), a(128), a(64)], [a(64), a(64)]), "shard 1 is 128 bytes, shard 0 is 64");
      expectInvalid(() => codec.encode([a(100), a(100), a(100)], [a(100), a(100)]), "not a non-zero multiple of 64");
      expectInvalid(() => codec.encode([a(64), a(64)], [a(64), a(64)]), "2 data shards given, 3 expected");
      expectInvalid(() => codec.reconstruct([a(64), a(64), a(64), a(64), a(64)], [7]), "missing shard index 7");
      codec.release();
    });
  });
}
