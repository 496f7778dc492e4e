// Seeded pseudo-random numbers (xorshift32): the same seed gives the same sequence. For state
// machines and simulations that must not read Math.random (house style: randomness arrives as a
// seeded generator), for reconnect jitter, and for fuzz tests. Not for secrets.

/** Whole numbers in [1, 2^32): seed 0 is taken as 1 (xorshift never leaves 0). */
export function seededRng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Numbers in [0, 1) from the same generator. */
export function seededRandom01(seed: number): () => number {
  const next = seededRng(seed);
  return () => next() / 2 ** 32;
}
