/**
 * CADyQ's arithmetic (cadyq.md §2–§3), shared by the engine quantizer, the trainer hook and the tests.
 *
 * PAMS grid of candidate b with clip α > 0 (symmetric, per tensor):
 *
 *   m = 2^(b−1) − 1,   s = α/m,   x̂ = round(clamp(x, −α, α)/s)·s          (2m + 1 = 2^b − 1 levels)
 *
 * On the engine's DAQ code kernel (half = 0, signed branch) with μ = −α − s/2 and inv = 1/s:
 *
 *   k = clamp(⌊(x − μ)·inv⌋, 0, 2m) = clamp(⌊(x + α)/s + ½⌋, 0, 2m),   level(k) = (k − m)·s,
 *
 * i.e. the code is the rounded grid index shifted by m. Ties round up (⌊t + ½⌋); PyTorch's
 * torch.round rounds half to even — a difference only on exact ties of x/s [documented choice].
 * Integer form (exact path): g(k) = k, level = s·k − m·s (a_c = s, μ_c = −m·s for every channel).
 * α ≤ 0 is guarded as |α| (cadyq.md §8); α = 0 gives the single level 0.
 *
 * Selector (model/cadyq.py BitSelector): the embedding is e = [g_x, g_y, σ_0 … σ_{C−1}] with g the
 * tile's gradient feature (1000·mean|∂|, gradient-feature.ts) and σ_c the UNBIASED std of channel c
 * over the tile's H×W (torch.std), σ = 0 when H·W = 1; logits z = A·e + a (A is K×(C+2), row-major);
 * the bit is candidates[argmax z], the FIRST maximum on ties (torch.argmax).
 */
import { check, checkInt, LowbitError } from "../../runtime/errors.ts";

export const CADYQ_MIN_BITS = 2;
export const CADYQ_MAX_BITS = 8;

/** m = 2^(b−1) − 1: the largest code magnitude of candidate b. */
export function pamsHalfRange(bits: number): number {
  return (1 << (bits - 1)) - 1;
}

/** Step s = |α|/m of candidate b. */
export function pamsStep(alpha: number, bits: number): number {
  return Math.abs(alpha) / pamsHalfRange(bits);
}

/** The 2^b − 1 levels of candidate b, ascending: (k − m)·s for k = 0 … 2m. */
export function pamsLevels(alpha: number, bits: number): Float64Array {
  const m = pamsHalfRange(bits), s = pamsStep(alpha, bits);
  return Float64Array.from({ length: 2 * m + 1 }, (_, k) => (k - m) * s);
}

/** f64 PAMS fake-quant of one value (ties up; NaN → −|α|, the bottom code as the code kernel clamps). */
export function pamsQuantize(x: number, alpha: number, bits: number): number {
  const a = Math.abs(alpha), m = pamsHalfRange(bits);
  if (!(a > 0)) return 0;
  const s = a / m;
  if (Number.isNaN(x)) return -a;
  const t = Math.min(a, Math.max(-a, x)) / s;
  return Math.min(m, Math.max(-m, Math.floor(t + 0.5))) * s;
}

/** Unbiased std from the population std over n pixels: σ·√(n/(n−1)); 0 for n ≤ 1 or a non-finite σ. */
export function unbiasedStd(populationStd: number, n: number): number {
  if (!(n > 1) || !Number.isFinite(populationStd)) return 0;
  return populationStd * Math.sqrt(n / (n - 1));
}

/** logits[k] = a[k] + Σ_j A[k·(C+2) + j]·e_j with e = [g_0, g_1, σ…] (f64). Returns `out`. */
export function selectorLogits(out: Float64Array, A: ArrayLike<number>, a: ArrayLike<number>, feature: ArrayLike<number>, sigma: ArrayLike<number>): Float64Array {
  const K = a.length, C = sigma.length, D = C + 2;
  for (let k = 0; k < K; k++) {
    const r = k * D;
    let z = a[k] + A[r] * feature[0] + A[r + 1] * feature[1];
    for (let c = 0; c < C; c++) z += A[r + 2 + c] * sigma[c];
    out[k] = z;
  }
  return out;
}

/** Index of the first maximum (torch.argmax); NaN logits never win over a number. */
export function argmaxFirst(z: ArrayLike<number>, n = z.length): number {
  let best = 0;
  for (let k = 1; k < n; k++) if (z[k] > z[best] || (Number.isNaN(z[best]) && !Number.isNaN(z[k]))) best = k;
  return best;
}

/** Softmax of z[0..n) into out (max-shifted, f64). */
export function softmax(out: Float64Array, z: ArrayLike<number>, n = z.length): Float64Array {
  let mx = -Infinity;
  for (let k = 0; k < n; k++) mx = Math.max(mx, z[k]);
  let sum = 0;
  for (let k = 0; k < n; k++) sum += out[k] = Math.exp(z[k] - mx);
  for (let k = 0; k < n; k++) out[k] /= sum;
  return out;
}

/** Validates a candidate list: 1..8 distinct integer widths in 2..8. */
export function checkCandidates(c: ArrayLike<number>): void {
  check(c.length >= 1 && c.length <= 7, "E_BITS", `CADyQ needs 1 to 7 candidate bit-widths, got ${c.length}`);
  const seen = new Set<number>();
  for (let i = 0; i < c.length; i++) {
    checkInt(c[i], CADYQ_MIN_BITS, CADYQ_MAX_BITS, `CADyQ candidate bits [${i}]`, "E_BITS");
    if (seen.has(c[i])) throw new LowbitError("E_BITS", `CADyQ candidate bit-width ${c[i]} is listed twice`);
    seen.add(c[i]);
  }
}

/** Validates the selector and clips of one layer (C input channels). */
export function checkCadyqParams(candidates: ArrayLike<number>, alpha: ArrayLike<number>, A: ArrayLike<number>, a: ArrayLike<number>, channels: number): void {
  checkCandidates(candidates);
  const K = candidates.length;
  check(alpha.length === K, "E_SHAPE", `CADyQ has ${K} candidates but ${alpha.length} clips α`);
  check(a.length === K, "E_SHAPE", `CADyQ selector bias has ${a.length} values, expected ${K}`);
  check(A.length === K * (channels + 2), "E_SHAPE", `CADyQ selector weight has ${A.length} values, expected ${K}×(${channels}+2) = ${K * (channels + 2)}`);
  for (let i = 0; i < K; i++) check(Number.isFinite(alpha[i]), "E_RANGE", () => `CADyQ clip α[${i}] = ${alpha[i]} is not finite`);
  for (let i = 0; i < A.length; i++) if (!Number.isFinite(A[i])) throw new LowbitError("E_RANGE", `CADyQ selector weight ${i} is ${A[i]}`);
  for (let i = 0; i < K; i++) check(Number.isFinite(a[i]), "E_RANGE", () => `CADyQ selector bias ${i} is ${a[i]}`);
}

/** The reference initialisation (cadyq.py): A = 1, a = 0 except the last (highest-bit) bias = 1. */
export function initialSelector(K: number, channels: number): { A: Float32Array; a: Float32Array } {
  const a = new Float32Array(K);
  a[K - 1] = 1;
  return { A: new Float32Array(K * (channels + 2)).fill(1), a };
}
