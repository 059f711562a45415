/**
 * A small seeded generator for shuffling and splitting: reproducible across machines and Node versions
 * (Math.random is neither seedable nor specified). A Weyl sequence (step 0x9E3779B9, the 32-bit golden
 * ratio) passed through MurmurHash3's 32-bit finalizer: each output is a bijective mix of a counter, so
 * streams for different (seed, epoch) pairs are independent enough for shuffling data.
 */

/** MurmurHash3's fmix32: a bijection on 32-bit integers with full avalanche. */
export function mix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A 32-bit stream seed from a user seed (any safe integer) and further integers such as the epoch. */
export function deriveSeed(seed: number, ...salts: number[]): number {
  // Both halves of a seed above 2^32 matter.
  let h = mix32(mix32(seed >>> 0) ^ Math.floor(seed / 2 ** 32));
  for (const s of salts) h = mix32(h ^ mix32((s >>> 0) + 0x9e3779b9));
  return h;
}

/** A seeded stream of pseudo-random numbers. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next integer in [0, 2^32). */
  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    return mix32(this.state);
  }

  /** An integer in [0, n); the bias of n / 2^32 is far below anything shuffling can notice. */
  below(n: number): number {
    return Math.floor((this.nextUint32() / 2 ** 32) * n);
  }
}

/** The numbers 0..n-1 in an order fixed by `seed` (Fisher–Yates). */
export function permutation(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const random = new SeededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = random.below(i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}
