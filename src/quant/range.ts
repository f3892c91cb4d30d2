/**
 * Range selection: turn an observer's statistics into a clipping range [lo, hi] that
 * affineParams then maps to (scale, zeroPoint).
 *
 * - `minmaxRange`: the observed extremes. Never clips, wastes resolution on outliers.
 * - `percentileRange`: quantiles of the histogram (e.g. 0.01 % / 99.99 %), both tails, or the
 *   upper tail only for non-negative tensors (post-ReLU: clipping the lower tail would only move
 *   the range away from the 0 it must include anyway).
 * - `mseRange`: the clip minimizing the expected squared error of quantize→dequantize for the
 *   given bit-width, searched over a grid (TensorRT / pytorch-quantization "mse" calibrator,
 *   PyTorch HistogramObserver's search). See `mseRange` for the exact error model.
 */
import type { ValueRange } from "../graph/ir.ts";
import { LowbitError, checkInt } from "../runtime/errors.ts";
import type { HistogramObserver } from "./observers.ts";
import { affineParams, checkBits, type AffineOptions, type QuantParams } from "./params.ts";

export type { ValueRange };

/** Anything with observed extremes (MinMaxObserver, HistogramObserver). */
export interface ExtremesStats {
  min: number;
  max: number;
  count: number;
}

/** Observed [min, max]. E_ARGUMENT for an observer that has seen no data. */
export function minmaxRange(obs: ExtremesStats): ValueRange {
  if (obs.count === 0) throw new LowbitError("E_ARGUMENT", "range selection on an observer that has seen no data");
  return [obs.min, obs.max];
}

/**
 * The histogram as a piecewise-uniform density, with O(1) cumulative moments
 *     F_k(t) = ∫_{−∞}^{t} x^k dF(x),  k = 0, 1, 2.
 * Each bin's mass is spread uniformly over the bin intersected with the observed [min, max]
 * (so the outermost occupied bins do not leak mass beyond the true extremes). A bin reduced to
 * a point (min = max inside it) is a point mass.
 */
export class HistogramDensity {
  readonly n: number;
  readonly lo: number;
  readonly w: number;
  readonly min: number;
  readonly max: number;
  readonly total: number;
  /** Effective interval [a_i, b_i] and count of each bin. */
  private readonly a: Float64Array;
  private readonly b: Float64Array;
  private readonly c: Float64Array;
  /** Prefix moments at bin starts: P_k[i] = Σ_{j<i} ∫_bin_j x^k. Length n + 1. */
  private readonly p0: Float64Array;
  private readonly p1: Float64Array;
  private readonly p2: Float64Array;

  constructor(h: HistogramObserver) {
    if (h.count === 0) throw new LowbitError("E_ARGUMENT", "range selection on a histogram that has seen no data");
    this.min = h.min;
    this.max = h.max;
    if (!h.hasRange) {
      // Only zeros so far: a point mass at 0 in one pseudo-bin.
      this.n = 1;
      this.lo = 0;
      this.w = 1;
      this.a = Float64Array.of(0);
      this.b = Float64Array.of(0);
      this.c = Float64Array.of(h.count);
    } else {
      this.n = h.bins;
      this.lo = h.lo;
      this.w = h.width;
      this.a = new Float64Array(this.n);
      this.b = new Float64Array(this.n);
      this.c = Float64Array.from(h.counts);
      for (let i = 0; i < this.n; i++) {
        const e0 = this.lo + i * this.w, e1 = this.lo + (i + 1) * this.w;
        let a = Math.max(e0, this.min), b = Math.min(e1, this.max);
        if (b < a) a = b = Math.min(Math.max(e0, this.min), this.max); // empty in theory; keep ordered
        this.a[i] = a;
        this.b[i] = b;
      }
    }
    this.p0 = new Float64Array(this.n + 1);
    this.p1 = new Float64Array(this.n + 1);
    this.p2 = new Float64Array(this.n + 1);
    for (let i = 0; i < this.n; i++) {
      this.binMoments(i, Infinity);
      this.p0[i + 1] = this.p0[i] + this.m0;
      this.p1[i + 1] = this.p1[i] + this.m1;
      this.p2[i + 1] = this.p2[i] + this.m2;
    }
    this.total = this.p0[this.n];
  }

  /** Moments of bin i's mass lying in (−∞, t], written to m0..m2 (no allocation: hot in the MSE search). */
  private m0 = 0;
  private m1 = 0;
  private m2 = 0;
  private binMoments(i: number, t: number): void {
    const c = this.c[i];
    const a = this.a[i], b = this.b[i];
    if (c === 0 || t < a) {
      this.m0 = this.m1 = this.m2 = 0;
    } else if (b === a) {
      // point mass
      this.m0 = c;
      this.m1 = c * a;
      this.m2 = c * a * a;
    } else {
      const u = t >= b ? b : t;
      const d = c / (b - a);
      this.m0 = d * (u - a);
      this.m1 = (d * (u * u - a * a)) / 2;
      this.m2 = (d * (u * u * u - a * a * a)) / 3;
    }
  }

  /** Cumulative moments F_0..F_2 at t, written to m0..m2. */
  private cum(t: number): void {
    const n = this.n;
    let i = t === Infinity ? n : t === -Infinity ? -1 : Math.floor((t - this.lo) / this.w);
    if (i < 0) {
      this.m0 = this.m1 = this.m2 = 0;
    } else if (i >= n) {
      this.m0 = this.p0[n];
      this.m1 = this.p1[n];
      this.m2 = this.p2[n];
    } else {
      this.binMoments(i, t);
      this.m0 += this.p0[i];
      this.m1 += this.p1[i];
      this.m2 += this.p2[i];
    }
  }

  /** Cumulative moments [F_0, F_1, F_2] at t. */
  cumulative(t: number): [number, number, number] {
    this.cum(t);
    return [this.m0, this.m1, this.m2];
  }

  /**
   * The value below which a fraction `q` ∈ [0, 1] of the mass lies (inverse CDF, linear within
   * a bin's effective interval). q = 0 → min, q = 1 → max.
   */
  quantile(q: number): number {
    if (q <= 0) return this.min;
    if (q >= 1) return this.max;
    const target = q * this.total;
    // Binary search the first bin whose prefix end reaches target.
    let lo = 0, hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.p0[mid + 1] >= target) hi = mid;
      else lo = mid + 1;
    }
    const c = this.c[lo];
    const f = c > 0 ? (target - this.p0[lo]) / c : 0;
    const v = this.a[lo] + Math.min(Math.max(f, 0), 1) * (this.b[lo] - this.a[lo]);
    return Math.min(Math.max(v, this.min), this.max);
  }

  /**
   * Expected squared error Σ over the observed mass of (x − Q(x))², where Q is the actual
   * quantize→dequantize map of p (levels r_q = (q − zp)·s, clamping to [qmin, qmax] included):
   * the real line splits at the decision boundaries (r_q + r_{q+1})/2 into one interval per
   * code, and on the interval of code q the error is ∫(x − r_q)² dF = ΔF_2 − 2·r_q·ΔF_1 +
   * r_q²·ΔF_0. The two outermost intervals extend to ∓∞, which is the clipping error. Cost
   * O(2^bits), independent of the bin count. Returns the sum (divide by `total` for the mean).
   */
  error(p: QuantParams): number {
    const s = p.scale, zp = p.zeroPoint;
    let q0 = 0, q1 = 0, q2 = 0;
    let err = 0;
    for (let q = p.qmin; q <= p.qmax; q++) {
      const r = (q - zp) * s;
      this.cum(q === p.qmax ? Infinity : r + s / 2);
      const d0 = this.m0 - q0, d1 = this.m1 - q1, d2 = this.m2 - q2;
      if (d0 > 0) err += Math.max(0, d2 - 2 * r * d1 + r * r * d0);
      q0 = this.m0;
      q1 = this.m1;
      q2 = this.m2;
    }
    return err;
  }
}

export interface PercentileOptions {
  /** Upper percentile in (0, 100]. Default 99.99. */
  upper?: number;
  /** Lower percentile in [0, 100). Default 100 − upper. */
  lower?: number;
  /**
   * "both" clips both tails; "upper" clips only the upper tail (lo = observed min); "auto"
   * (default) is "upper" when the tensor is non-negative (min ≥ 0), else "both".
   */
  tails?: "auto" | "both" | "upper";
}

/** [lower, upper] percentiles of the histogram (see PercentileOptions). */
export function percentileRange(h: HistogramObserver, opts: PercentileOptions = {}): ValueRange {
  const upper = opts.upper ?? 99.99;
  const lower = opts.lower ?? 100 - upper;
  if (!(upper > 0 && upper <= 100)) throw new LowbitError("E_ARGUMENT", `upper percentile must be in (0, 100], got ${upper}`);
  if (!(lower >= 0 && lower < 100) || lower > upper) {
    throw new LowbitError("E_ARGUMENT", `lower percentile must be in [0, upper], got ${lower}`);
  }
  const tails = opts.tails ?? "auto";
  if (tails !== "auto" && tails !== "both" && tails !== "upper") throw new LowbitError("E_ARGUMENT", `unknown tails '${tails}'`);
  const d = new HistogramDensity(h);
  const oneSided = tails === "upper" || (tails === "auto" && d.min >= 0);
  const lo = oneSided ? d.min : d.quantile(lower / 100);
  const hi = d.quantile(upper / 100);
  return [Math.min(lo, hi), hi];
}

export interface MseOptions extends AffineOptions {
  /**
   * Grid resolution: candidate clips are k/steps of the observed extreme(s), k = 1..steps.
   * Default 512 for one-dimensional searches; mixed-sign asymmetric searches run a coarse
   * 2-D grid of min(steps, 48)² and then refine each end on the full grid (2 rounds).
   */
  steps?: number;
}

/**
 * MSE-optimal clipping range for `bits`-bit quantization of the histogram's distribution.
 *
 * Algorithm (grid search, as TensorRT's / pytorch-quantization's "mse" calibrator): for each
 * candidate clip, build the parameters affineParams would produce (so the nudged zero point and
 * f32 scale that will actually be used are the ones scored), and compute the expected squared
 * error of quantize→dequantize over the histogram — rounding error inside the range plus
 * clipping error outside — with `HistogramDensity.error` (exact integration against the
 * piecewise-uniform density; unlike pytorch-quantization we do not approximate each bin by its
 * center). The candidate set always contains the full observed range, so the result's error is
 * never above min-max's under this model.
 *
 * - Symmetric: a ∈ {A·k/steps}, A = max(|min|, |max|); returns [−a, a].
 * - Asymmetric, one-signed tensor (min ≥ 0 or max ≤ 0): the 0 end is fixed (the range must
 *   contain 0 anyway), 1-D search of the other end.
 * - Asymmetric, mixed sign: lo ∈ {min·i/K}, hi ∈ {max·j/K}, a K×K grid (K = min(steps, 48)),
 *   then two rounds of coordinate refinement: hi over {max·j/steps} with lo fixed, then lo over
 *   {min·i/steps} with hi fixed.
 *
 * Ties go to the wider range (scanning from the widest candidate down, keeping strict
 * improvements), so on distributions without tails (uniform) it returns ≈ the full range.
 * Because of zero-point nudging, different ranges can give the same grid (a plateau), so the
 * returned [lo, hi] is one minimizer; affineParams(lo, hi) gives the grid that was scored.
 *
 * Cost: O(candidates · 2^bits), independent of the bin count; a 200k-sample N(0,1) histogram
 * takes ≈ 25 ms at 8 bits asymmetric, ≈ 5 ms symmetric, < 5 ms at 4 bits (Node 20, Zen 4).
 */
export function mseRange(h: HistogramObserver, bits: number, opts: MseOptions = {}): ValueRange {
  checkBits(bits);
  const steps = opts.steps ?? 512;
  checkInt(steps, 1, 1 << 16, "mse steps");
  const d = new HistogramDensity(h);
  const aff: AffineOptions = { symmetric: opts.symmetric, signed: opts.signed, narrowRange: opts.narrowRange };
  const mn = Math.min(d.min, 0), mx = Math.max(d.max, 0);
  if (mn === 0 && mx === 0) return [0, 0];
  const score = (lo: number, hi: number) => d.error(affineParams(lo, hi, bits, aff));

  if (opts.symmetric) {
    const A = Math.max(-mn, mx);
    let best = A, bestErr = score(-A, A);
    for (let k = steps - 1; k >= 1; k--) {
      const a = (A * k) / steps;
      const e = score(-a, a);
      if (e < bestErr) (bestErr = e), (best = a);
    }
    return [-best, best];
  }

  const searchHi = (lo: number, n: number): [number, number] => {
    let best = mx, bestErr = score(lo, mx);
    for (let j = n - 1; j >= 1; j--) {
      const hi = (mx * j) / n;
      const e = score(lo, hi);
      if (e < bestErr) (bestErr = e), (best = hi);
    }
    return [best, bestErr];
  };
  const searchLo = (hi: number, n: number): [number, number] => {
    let best = mn, bestErr = score(mn, hi);
    for (let i = n - 1; i >= 1; i--) {
      const lo = (mn * i) / n;
      const e = score(lo, hi);
      if (e < bestErr) (bestErr = e), (best = lo);
    }
    return [best, bestErr];
  };

  if (mn === 0) return [0, searchHi(0, steps)[0]];
  if (mx === 0) return [searchLo(0, steps)[0], 0];

  const K = Math.min(steps, 48);
  let bestLo = mn, bestHi = mx, bestErr = score(mn, mx);
  for (let i = K; i >= 1; i--) {
    const lo = (mn * i) / K;
    for (let j = K; j >= 1; j--) {
      const hi = (mx * j) / K;
      const e = score(lo, hi);
      if (e < bestErr) (bestErr = e), (bestLo = lo), (bestHi = hi);
    }
  }
  if (steps > K) {
    for (let round = 0; round < 2; round++) {
      const [hi, eh] = searchHi(bestLo, steps);
      if (eh < bestErr) (bestErr = eh), (bestHi = hi);
      const [lo, el] = searchLo(bestHi, steps);
      if (el < bestErr) (bestErr = el), (bestLo = lo);
    }
  }
  return [bestLo, bestHi];
}

/** Expected mean squared quantization error of p over the histogram (the quantity mseRange minimizes). */
export function histogramMse(h: HistogramObserver, p: QuantParams): number {
  const d = new HistogramDensity(h);
  return d.error(p) / d.total;
}

export type RangeMethod = "minmax" | "percentile" | "mse";
