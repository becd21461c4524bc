/**
 * A small seeded pseudo-random generator for fuzz and property tests, so every failure reproduces
 * from its seed (noble's habit). sfc32, seeded through splitmix32; not for cryptography.
 *
 * `Prng.forIteration(seed, i)` gives iteration `i` its own generator, so an input depends only on
 * the seed and its iteration number, not on what earlier iterations drew.
 *
 * @module
 */

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** sfc32: 128 bits of state, a 32-bit output per step. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    const next = splitmix32(seed);
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** The generator of iteration `iteration` of a run seeded with `seed`. */
  static forIteration(seed: number, iteration: number): Prng {
    const mix = splitmix32((seed ^ Math.imul(iteration + 1, 0x27d4eb2d)) >>> 0);
    return new Prng(mix() ^ iteration);
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 2 ** 32;
  }

  /** An integer in [0, n), for 0 < n <= 2^32. */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** An integer in [min, max], both included. */
  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** `length` random bytes. */
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i += 4) {
      const word = this.u32();
      for (let j = 0; j < 4 && i + j < length; j++) out[i + j] = (word >>> (8 * j)) & 0xff;
    }
    return out;
  }

  /** A length with a bias towards small values and powers of two (where the bugs live). */
  length(max: number): number {
    switch (this.int(4)) {
      case 0:
        return this.int(Math.min(max, 16) + 1);
      case 1: {
        const power = 2 ** this.int(Math.floor(Math.log2(Math.max(1, max))) + 1);
        return Math.min(max, Math.max(0, power + this.between(-1, 1)));
      }
      default:
        return this.int(max + 1);
    }
  }
}
