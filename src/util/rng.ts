/**
 * The library's seeded PRNG: mulberry32 (the same generator as test/util/rng.ts), so graph-builder
 * weights, calibration patches and DFSQ codebooks are reproducible from a seed on every platform
 * (integer ops only).
 */
export class Mulberry32 {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1), 32 bits of entropy. */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
