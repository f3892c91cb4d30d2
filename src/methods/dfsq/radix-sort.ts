/**
 * LSD radix sort of a Float64Array in place (ascending, −0 before +0, no NaN expected).
 *
 * Why: codebook selection sorts every (layer, channel)'s 73,728 calibration values once; V8's
 * comparison sort costs ~9 ms per channel there, which alone would be > 60 s on a 7,000-channel
 * model. Radix: the IEEE-754 bit pattern becomes an order-preserving unsigned key (negative → flip
 * all bits, non-negative → flip the sign bit), sorted by six 11-bit digits (2048 buckets keep the scatter in cache). A digit shared by every
 * key is skipped — values that came from float32 have constant low mantissa digits, so they take two
 * passes instead of four.
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

let scratch: { n: number; hi: Uint32Array; lo: Uint32Array; hi2: Uint32Array; lo2: Uint32Array } | null = null;
const BITS = 11;
const RADIX = 1 << BITS;
const MASK = RADIX - 1;
const PASSES = 6; // ceil(64 / 11)
const counts = new Uint32Array(PASSES * RADIX);

/** Digit d (11 bits, least significant first) of the 64-bit key (hi, lo). */
function digit(hi: number, lo: number, d: number): number {
  const s = d * BITS;
  if (s + BITS <= 32) return (lo >>> s) & MASK;
  if (s >= 32) return (hi >>> (s - 32)) & MASK;
  return ((lo >>> s) | (hi << (32 - s))) & MASK;
}

export function radixSortF64(a: Float64Array): Float64Array {
  const n = a.length;
  if (n < 512 || !LITTLE_ENDIAN) return a.sort();
  if (scratch === null || scratch.n < n) {
    scratch = { n, hi: new Uint32Array(n), lo: new Uint32Array(n), hi2: new Uint32Array(n), lo2: new Uint32Array(n) };
  }
  let { hi, lo, hi2, lo2 } = scratch;
  const w = new Uint32Array(a.buffer, a.byteOffset, 2 * n);
  counts.fill(0);
  for (let i = 0; i < n; i++) {
    let l = w[2 * i], h = w[2 * i + 1];
    if (h & 0x80000000) {
      h = ~h >>> 0;
      l = ~l >>> 0;
    } else {
      h = (h | 0x80000000) >>> 0;
    }
    hi[i] = h;
    lo[i] = l;
    counts[l & MASK]++;
    counts[RADIX + ((l >>> 11) & MASK)]++;
    counts[2 * RADIX + (((l >>> 22) | (h << 10)) & MASK)]++;
    counts[3 * RADIX + ((h >>> 1) & MASK)]++;
    counts[4 * RADIX + ((h >>> 12) & MASK)]++;
    counts[5 * RADIX + (h >>> 23)]++;
  }
  for (let d = 0; d < PASSES; d++) {
    const base = d * RADIX;
    if (counts[base + digit(hi[0], lo[0], d)] === n) continue; // every key shares this digit: identity pass
    let sum = 0;
    for (let b = 0; b < RADIX; b++) {
      const c = counts[base + b];
      counts[base + b] = sum;
      sum += c;
    }
    const sh = d * BITS;
    if (sh + BITS <= 32) {
      for (let i = 0; i < n; i++) {
        const l = lo[i];
        const p = counts[base + ((l >>> sh) & MASK)]++;
        hi2[p] = hi[i];
        lo2[p] = l;
      }
    } else if (sh >= 32) {
      const s2 = sh - 32;
      for (let i = 0; i < n; i++) {
        const h = hi[i];
        const p = counts[base + ((h >>> s2) & MASK)]++;
        hi2[p] = h;
        lo2[p] = lo[i];
      }
    } else {
      const s2 = 32 - sh;
      for (let i = 0; i < n; i++) {
        const h = hi[i], l = lo[i];
        const p = counts[base + (((l >>> sh) | (h << s2)) & MASK)]++;
        hi2[p] = h;
        lo2[p] = l;
      }
    }
    let t = hi; hi = hi2; hi2 = t;
    t = lo; lo = lo2; lo2 = t;
  }
  for (let i = 0; i < n; i++) {
    let h = hi[i], l = lo[i];
    if (h & 0x80000000) {
      h = (h & 0x7fffffff) >>> 0;
    } else {
      h = ~h >>> 0;
      l = ~l >>> 0;
    }
    w[2 * i] = l;
    w[2 * i + 1] = h;
  }
  return a;
}
