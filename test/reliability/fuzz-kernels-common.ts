// Shared pieces of the differential kernel fuzz (fuzz-kernels.ts is the driver and the registry).
import type { Runtime } from "../../src/runtime/runtime.ts";
import type { Rng } from "../util/rng.ts";

/** A case: returns null when WASM = reference, else what differs. */
export type Case = (rt: Runtime, r: Rng) => string | null;

/** Channel counts: 1, odd, around the 4/8/16-lane boundaries. */
export const CH = [1, 2, 3, 4, 5, 7, 8, 12, 15, 16, 17, 31, 32, 33, 48];

/** f32 values that break naive code: NaN, ±∞, ±0, subnormals, the f32 extremes. */
export const F32_SPECIALS = [NaN, Infinity, -Infinity, 0, -0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38];

/** First index where a and b differ (Object.is: −0 ≠ +0, NaN = NaN), or −1. */
export function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

/** "at i got x want y" for the first difference, or null. */
export function diffMsg(a: ArrayLike<number>, b: ArrayLike<number>, what = ""): string | null {
  const d = firstDiff(a, b);
  return d < 0 ? null : `${what}at ${d} got ${a[d]} want ${b[d]}`;
}

/** Extreme-heavy integer fill: all-min, all-max, alternating extremes, or uniform. */
export function fillCodes(r: Rng, a: Int8Array | Uint8Array | Uint16Array, lo: number, hi: number): void {
  const k = r.int(0, 4);
  for (let i = 0; i < a.length; i++) a[i] = k === 0 ? lo : k === 1 ? hi : k === 2 ? (r.next() < 0.5 ? lo : hi) : r.int(lo, hi);
}

/** A pixel stride ≥ c: dense 70 % of the time, else a few elements of gap. */
export function strideFor(r: Rng, c: number): number {
  return c + (r.next() < 0.3 ? r.int(1, 7) : 0);
}

/** Elements spanned by n pixels of c channels at stride s. */
export const span = (n: number, c: number, s: number): number => (n === 0 ? 0 : (n - 1) * s + c);

/**
 * Random f32 data at a random magnitude (2^±mag), `special` of the values from F32_SPECIALS (0 for
 * kernels whose reductions are compared within a tolerance), some exact zeros and repeats.
 */
export function fillF32(r: Rng, a: Float32Array, special = 0.03, mag = 12): Float32Array {
  const m = 2 ** r.uniform(-mag, mag);
  for (let i = 0; i < a.length; i++) {
    const u = r.next();
    a[i] = u < special ? r.pick(F32_SPECIALS) : u < special + 0.03 ? 0 : u < special + 0.06 && i > 0 ? a[i - 1] : r.uniform(-m, m);
  }
  return a;
}

/** Runs fn with the arena's scratch top restored afterwards (the driver checks nothing leaks). */
export function inArena<T>(rt: Runtime, fn: () => T): T {
  const m = rt.arena.mark();
  try {
    return fn();
  } finally {
    rt.arena.release(m);
  }
}

/** Reads `len` f32 at arena offset p. */
export function readF32(rt: Runtime, p: number, len: number): Float32Array {
  const out = new Float32Array(len);
  rt.arena.read(p, out);
  return out;
}
