import { Mulberry32 } from "../../src/util/rng.ts";

/** Seeded PRNG (the library's mulberry32) so every randomized test case is reproducible from its seed. */
export class Rng extends Mulberry32 {
  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  fillInt8(a: Int8Array, lo = -128, hi = 127): Int8Array {
    for (let i = 0; i < a.length; i++) a[i] = this.int(lo, hi);
    return a;
  }
  fillUint8(a: Uint8Array, lo = 0, hi = 255): Uint8Array {
    for (let i = 0; i < a.length; i++) a[i] = this.int(lo, hi);
    return a;
  }
  fillF32(a: Float32Array, lo = -1, hi = 1): Float32Array {
    for (let i = 0; i < a.length; i++) a[i] = this.uniform(lo, hi);
    return a;
  }
}
