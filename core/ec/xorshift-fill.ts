// The data generator of ../shared/tools/isal-bench.c, so that tests and the benchmark encode the
// very bytes ISA-L's anchor encodes and can compare parity fingerprints: xorshift32 seeded
// 0x12345678, continued across shards, each 32-bit word stored little-endian; and FNV-1a (32-bit)
// over the parity shards in order. Pure; it must never change, or the fingerprints stop matching.

import { assert } from "../util/assert.ts";

export const isalBenchSeed = 0x12345678;

/** Fills each shard in turn, continuing one xorshift32 stream; returns the final state. */
export function fillXorshift(shards: readonly Uint8Array[], seed = isalBenchSeed): number {
  let s = seed >>> 0;
  for (const shard of shards) {
    assert(shard.length % 4 === 0);
    const view = new DataView(shard.buffer, shard.byteOffset, shard.length);
    for (let i = 0; i < shard.length; i += 4) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      view.setUint32(i, s, true);
    }
  }
  return s;
}

/** 32-bit FNV-1a over the shards in order, as eight lowercase hex digits. */
export function fnv1aHex(shards: readonly Uint8Array[]): string {
  let h = 0x811c9dc5;
  for (const shard of shards) for (let i = 0; i < shard.length; i++) h = Math.imul(h ^ shard[i]!, 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}
