/**
 * DFSQ weight quantization (spec dfsq.md §5): per output channel o, asymmetric min/max, b bits.
 *
 *     Δ_o  = (max_o − min_o)/(2^b − 1)
 *     zp_o = round(min_o/Δ_o) + 2^(b−1)
 *     q    = clamp(round(w/Δ_o) − zp_o, −2^(b−1), 2^(b−1) − 1)
 *     ŵ    = (q + zp_o)·Δ_o = n·Δ_o,   n = q + zp_o   (stored)
 *
 * Arithmetic mirrors the f32 reference op by op (f32 subtract, f32 divide, round half to even like
 * torch.round). The integer kernels use n directly (int16 × int16 against the activation LUT), so the
 * weight zero point never needs a correction term: ŵ = Δ_o·n exactly.
 *
 * Range of n: with min ≤ 0 ≤ max, round(min/Δ) ≥ −(2^b − 1) and round(max/Δ) ≤ 2^b − 1, so
 * |n| ≤ 2^b − 1: ±127 at b ≤ 7 but ±255 at W8 — that is why n is stored as Int16.
 *
 * Guards (choices, [derived]):
 * - All-one-sign channel (min > 0 or max < 0): by default ("widen") the range is widened to include
 *   0, min ← min(min, 0), max ← max(max, 0), which keeps |n| ≤ 2^b − 1 and so the accumulator bound
 *   max|lut|·Σ|n| predictable. With range "exact" the reference's min/max are kept; n then grows like
 *   max/Δ (unbounded for a narrow range far from 0) and is checked against int16 (E_RANGE).
 * - Δ = 0 (constant channel w ≡ a): a = 0 gives n = 0, zp = 2^(b−1), Δ := 1 (any scale is exact
 *   since n = 0; 1 avoids divisions by 0 downstream). a ≠ 0 ("exact" only) uses Δ := |a|, so
 *   n = sign(a) and ŵ = a exactly.
 */
import { LowbitError, checkInt } from "../../runtime/errors.ts";

export interface DfsqWeights {
  /** n = q + zp_o, OHWI: codes[((o·k + kh)·k + kw)·cin + c]. */
  codes: Int16Array;
  /** Δ_o (f32), real ŵ = wscale[o]·n. */
  wscale: Float32Array;
  /** zp_o; q = n − zp_o ∈ [−2^(b−1), 2^(b−1) − 1]. */
  zp: Int32Array;
  k: number;
  cin: number;
  cout: number;
  bits: number;
}

export interface DfsqWeightOptions {
  /** "widen" (default): include 0 in every channel's range. "exact": the reference's raw min/max. */
  range?: "widen" | "exact";
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function checkShape(weights: Float32Array, k: number, cin: number, cout: number): void {
  if (!(weights instanceof Float32Array)) throw new LowbitError("E_ARGUMENT", "weights must be a Float32Array");
  checkInt(k, 1, 64, "k", "E_SHAPE");
  checkInt(cin, 1, 1 << 16, "cin", "E_SHAPE");
  checkInt(cout, 1, 1 << 16, "cout", "E_SHAPE");
  if (weights.length !== k * k * cin * cout) {
    throw new LowbitError("E_SHAPE", `weights length ${weights.length} ≠ k·k·cin·cout = ${k * k * cin * cout}`);
  }
}

/** Quantizes an HWIO float32 kernel [k][k][cin][cout] per output channel (spec §5). */
export function quantizeDfsqWeights(
  weights: Float32Array, k: number, cin: number, cout: number, bits: number, opts: DfsqWeightOptions = {},
): DfsqWeights {
  checkShape(weights, k, cin, cout);
  checkInt(bits, 2, 8, "bits", "E_BITS");
  const mode = opts.range ?? "widen";
  if (mode !== "widen" && mode !== "exact") throw new LowbitError("E_ARGUMENT", `range must be "widen" or "exact", got ${String(mode)}`);
  const taps = k * k * cin;
  const lo = new Float64Array(cout).fill(Infinity), hi = new Float64Array(cout).fill(-Infinity);
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    if (!Number.isFinite(w)) throw new LowbitError("E_RANGE", `weights[${i}] = ${w} is not finite`);
    const o = i % cout;
    if (w < lo[o]) lo[o] = w;
    if (w > hi[o]) hi[o] = w;
  }
  const half = 1 << (bits - 1);
  const levels = (1 << bits) - 1;
  const wscale = new Float32Array(cout), zp = new Int32Array(cout);
  const codes = new Int16Array(taps * cout);
  for (let o = 0; o < cout; o++) {
    let mn = lo[o], mx = hi[o];
    if (mode === "widen") {
      mn = Math.min(mn, 0);
      mx = Math.max(mx, 0);
    }
    let delta = Math.fround(Math.fround(mx - mn) / levels);
    if (delta === 0) delta = mn === 0 ? 1 : Math.abs(mn); // constant channel (see header)
    if (!Number.isFinite(delta)) throw new LowbitError("E_RANGE", `output channel ${o}: weight range overflows f32`);
    const z = roundHalfEven(Math.fround(mn / delta)) + half;
    wscale[o] = delta;
    zp[o] = z;
    // HWIO index ((kh·k + kw)·cin + c)·cout + o  →  OHWI index o·taps + (kh·k + kw)·cin + c.
    for (let t = 0; t < taps; t++) {
      let q = roundHalfEven(Math.fround(weights[t * cout + o] / delta)) - z;
      if (q < -half) q = -half;
      else if (q > half - 1) q = half - 1;
      const n = q + z;
      if (n < -32768 || n > 32767) throw new LowbitError("E_RANGE", `output channel ${o}: code ${n} exceeds int16 (use range "widen")`);
      codes[o * taps + t] = n;
    }
  }
  return { codes, wscale, zp, k, cin, cout, bits };
}

/** ŵ back in HWIO float32: out[((kh·k + kw)·cin + c)·cout + o] = f32(n·Δ_o). */
export function dequantizeDfsqWeights(out: Float32Array, qw: DfsqWeights): Float32Array {
  const { k, cin, cout } = qw;
  const taps = k * k * cin;
  if (!(out instanceof Float32Array) || out.length !== taps * cout) throw new LowbitError("E_SHAPE", `out must be a Float32Array of ${taps * cout}`);
  for (let o = 0; o < cout; o++) {
    for (let t = 0; t < taps; t++) out[t * cout + o] = Math.fround(qw.codes[o * taps + t] * qw.wscale[o]);
  }
  return out;
}

/** Σ_taps |n| per output channel — the weight side of the int32 accumulator bound max|lut|·Σ|n| < 2^31. */
export function dfsqWeightAbsSums(qw: DfsqWeights): Float64Array {
  const taps = qw.k * qw.k * qw.cin;
  const out = new Float64Array(qw.cout);
  for (let o = 0; o < qw.cout; o++) {
    let s = 0;
    for (let t = 0; t < taps; t++) s += Math.abs(qw.codes[o * taps + t]);
    out[o] = s;
  }
  return out;
}
