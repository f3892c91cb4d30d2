/**
 * ODM quantizer grids (odm.md §2, §4) and the percentiles they are initialised from.
 *
 * One quantizer for activations and weights (odm.md §2):
 *
 *   q(x; l, u) = round((clip(x, l, u) − l)/s)·s + l,   s = (u − l)/(2^b − 1)
 *
 * Rounding is half away from zero; since clip(x) − l ≥ 0 that is ⌊t + ½⌋ (ties up), the rule of
 * the engine's code kernel (DAQ's signed kernel with half = 0, μ = l − s/2: ⌊(x − l)/s + ½⌋) and of
 * the training fake-quant (ISSUE6 contract). PyTorch's round is half-even; the spec's formula does
 * not say, so lowbit takes the rule its integer kernel computes [choice].
 *
 * Activations: 2^b levels l + k·s, k ∈ [0, 2^b − 1]. l is **not** nudged by default: ODM's grid
 * need not contain 0 (odm.md §4 "not faithful"); `nudge: true` moves l TFLite-style so that 0 is a
 * level (the zero point z = round(−l/s) is an integer), an option whose effect the bench measures.
 *
 * Weights: per layer, l = −u_w, u = u_w = f(W)·γ_w with f = P99(|W|) (the natural reading of the
 * spec's "99th percentile", odm.md §2 [unverified]) and γ_w the WCC scalar (1 at init). With
 * n = 2^w − 1 (odd) and j = round((clip(w) + u_w)/s), s = 2u_w/n:
 *
 *   ŵ = −u_w + j·2u_w/n = (2j − n)·u_w/n = m·Δ_w,   m = 2j − n odd, |m| ≤ n,   Δ_w = u_w/n
 *
 * so 0 is never a level. At W8 m ∈ ±255 does not fit int8: codes are Int16 (the .lowbit file
 * stores I8 whenever every code fits, I16 otherwise), the same representation as DAQ's weights.
 *
 * Edge cases (odm.md §5) [choices]:
 * - u_a = l_a: s = 0, every value maps to l (the clip); the engine's code kernel gets 1/s = 0,
 *   so every code is 0 and its level is l.
 * - u_a < l_a or non-finite: E_RANGE.
 * - P99(|W|) = 0 (≥ 99 % zero weights): f falls back to max|W| so the non-zero weights keep a
 *   grid; an all-zero kernel gets Δ_w = 0 with codes +1 (any odd code decodes to 0).
 */
import { check, checkInt, LowbitError } from "../../runtime/errors.ts";

export interface OdmActGrid {
  bits: number;
  /** The grid's first and last level (after nudging, if asked). */
  lo: number;
  hi: number;
  /** s = (hi − lo)/(2^b − 1). */
  step: number;
  nudged: boolean;
}

export function checkOdmBits(bits: number, what: string): void {
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) throw new LowbitError("E_BITS", `ODM ${what} bits must be an integer in 2..8, got ${bits}`);
}

/** The activation grid on [lo, hi] with 2^bits levels; `nudge` moves it so 0 is a level. */
export function odmActGrid(lo: number, hi: number, bits: number, o: { nudge?: boolean } = {}): OdmActGrid {
  checkOdmBits(bits, "activation");
  check(Number.isFinite(lo) && Number.isFinite(hi), "E_RANGE", `activation range [${lo}, ${hi}] is not finite`);
  check(hi >= lo, "E_RANGE", `activation range [${lo}, ${hi}] is empty (u < l)`);
  const n = 2 ** bits - 1;
  if (!o.nudge || hi === lo) return { bits, lo, hi, step: (hi - lo) / n, nudged: false };
  // TFLite nudging: extend the range to contain 0, then round the zero point to an integer code.
  const l0 = Math.min(lo, 0), h0 = Math.max(hi, 0);
  const s = (h0 - l0) / n;
  const z = Math.min(n, Math.max(0, Math.round(-l0 / s)));
  return { bits, lo: z === 0 ? 0 : -z * s, hi: (n - z) * s, step: s, nudged: true };
}

/** q(x) on the grid, f64 (the oracle; ties up). */
export function odmFakeQuant(x: number, lo: number, hi: number, bits: number): number {
  const n = 2 ** bits - 1, s = (hi - lo) / n;
  if (!(s > 0)) return lo;
  const v = Math.min(hi, Math.max(lo, Number.isNaN(x) ? lo : x));
  return lo + Math.min(n, Math.floor((v - lo) / s + 0.5)) * s;
}

/**
 * The q-quantile of `values` with linear interpolation between order statistics at q·(N − 1)
 * (numpy's and torch.quantile's default). Sorts `values` in place. NaN → E_RANGE.
 */
export function percentileInPlace(values: Float32Array | Float64Array, q: number): number {
  check(values.length > 0, "E_ARGUMENT", "percentile of an empty set");
  check(q >= 0 && q <= 1, "E_ARGUMENT", `quantile ${q} is outside [0, 1]`);
  values.sort();
  check(!Number.isNaN(values[values.length - 1]), "E_RANGE", "percentile of values containing NaN");
  return quantileOfSorted(values, q);
}

/**
 * The q-quantile (linear interpolation at q·(N − 1)) by selection, O(N): reorders `v` in place
 * (Hoare partition around a median-of-3 pivot, then the next order statistic is the minimum of the
 * upper part). Same value as sorting and quantileOfSorted. NaN-free input.
 */
export function quantileSelect(v: Float32Array | Float64Array, q: number): number {
  const n = v.length;
  const pos = q * (n - 1);
  const i = Math.floor(pos), f = pos - i;
  const a = selectInPlace(v, i);
  if (f === 0 || i + 1 >= n) return a;
  let b = Infinity;
  for (let j = i + 1; j < n; j++) if (v[j] < b) b = v[j];
  return a + f * (b - a);
}

/** Places the k-th smallest at v[k] with v[< k] ≤ v[k] ≤ v[> k]; returns it. */
function selectInPlace(v: Float32Array | Float64Array, k: number): number {
  let lo = 0, hi = v.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >> 1;
    // median of three → v[mid]
    if (v[mid] < v[lo]) swap(v, mid, lo);
    if (v[hi] < v[lo]) swap(v, hi, lo);
    if (v[hi] < v[mid]) swap(v, hi, mid);
    const pivot = v[mid];
    let i = lo, j = hi;
    while (i <= j) {
      while (v[i] < pivot) i++;
      while (v[j] > pivot) j--;
      if (i <= j) {
        swap(v, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return v[k];
  }
  return v[k];
}

function swap(v: Float32Array | Float64Array, i: number, j: number): void {
  const t = v[i];
  v[i] = v[j];
  v[j] = t;
}

/** The q-quantile of ascending `sorted` (linear interpolation at q·(N − 1)). */
export function quantileOfSorted(sorted: ArrayLike<number>, q: number): number {
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos), f = pos - i;
  return i + 1 < sorted.length ? sorted[i] + f * (sorted[i + 1] - sorted[i]) : sorted[i];
}

export interface OdmConvShape {
  k: number;
  cin: number;
  cout: number;
}

export interface OdmWeightOptions {
  bits: number;
  /** WCC scalar γ_w (default 1). */
  gamma?: number;
  /** Percentile of |W| for f(W), in percent (default 99). */
  percentile?: number;
  /** u_w given directly (AdaBM's OMSE clip, adabm.md §4): replaces f(W)·γ. */
  clip?: number;
}

export interface OdmQuantizedWeights {
  /** OHWI odd codes m ∈ ±{1, 3, …, 2^w − 1}: codes[((o·k + kh)·k + kw)·cin + c]. */
  codes: Int16Array;
  /** Δ_w = fround(u_w/(2^w − 1)): real weight = wscale·m (the same for every output channel). */
  wscale: number;
  /** f(W) = P99(|W|) (or its fallback) and u_w = f·γ. */
  f: number;
  uw: number;
  /** fround(wscale·m) in the input's HWIO layout (the oracle's weights). */
  dequantHWIO: Float32Array;
  /** Fraction of weights clipped (|w| > u_w). */
  clipped: number;
}

/** f(W): P99(|W|) (percent `p`), max|W| when that is 0. E_RANGE on NaN/Inf. */
export function odmWeightScaleBase(w: Float32Array, p = 99): number {
  const a = new Float32Array(w.length);
  let max = 0;
  for (let i = 0; i < w.length; i++) {
    const v = w[i];
    check(Number.isFinite(v), "E_RANGE", () => `weight ${i} = ${v} is not finite`);
    a[i] = Math.abs(v);
    max = Math.max(max, a[i]);
  }
  const f = percentileInPlace(a, p / 100);
  return f > 0 ? f : max;
}

/** Quantizes HWIO float weights [k][k][cin][cout] on ODM's odd per-layer grid. */
export function odmQuantizeWeights(hwio: Float32Array, shape: OdmConvShape, o: OdmWeightOptions): OdmQuantizedWeights {
  check(hwio instanceof Float32Array, "E_ARGUMENT", "weights must be a Float32Array");
  const { k, cin, cout } = shape;
  checkInt(k, 1, 64, "kernel size", "E_SHAPE");
  checkInt(cin, 1, 1 << 16, "cin", "E_SHAPE");
  checkInt(cout, 1, 1 << 16, "cout", "E_SHAPE");
  const N = k * k * cin * cout;
  check(hwio.length === N, "E_SHAPE", `weights have ${hwio.length} elements, HWIO ${k}×${k}×${cin}×${cout} needs ${N}`);
  checkOdmBits(o.bits, "weight");
  const gamma = o.gamma ?? 1;
  check(Number.isFinite(gamma) && gamma > 0, "E_RANGE", `weight clip scale γ must be positive and finite, got ${gamma}`);
  const pct = o.percentile ?? 99;
  check(pct > 0 && pct <= 100, "E_ARGUMENT", `weight percentile must be in (0, 100], got ${pct}`);
  if (o.clip !== undefined) check(Number.isFinite(o.clip) && o.clip >= 0, "E_RANGE", `weight clip u_w must be finite and ≥ 0, got ${o.clip}`);
  const f = o.clip ?? odmWeightScaleBase(hwio, pct);
  const n = 2 ** o.bits - 1;
  const uw = o.clip ?? f * gamma;
  const wscale = Math.fround(uw / n);
  const codes = new Int16Array(N);
  const dequantHWIO = new Float32Array(N);
  let clipped = 0;
  for (let kh = 0, i = 0; kh < k; kh++) {
    for (let kw = 0; kw < k; kw++) {
      for (let c = 0; c < cin; c++) {
        for (let oc = 0; oc < cout; oc++, i++) {
          let m = 1;
          if (wscale > 0) {
            const v = hwio[i];
            if (Math.abs(v) > uw) clipped++;
            // j = ⌊(clip(v) + u)/(2Δ) + ½⌋ on the grid of the f32 step the engine multiplies by.
            const j = Math.min(n, Math.max(0, Math.floor((Math.min(uw, Math.max(-uw, v)) + n * wscale) / (2 * wscale) + 0.5)));
            m = 2 * j - n;
          }
          codes[((oc * k + kh) * k + kw) * cin + c] = m;
          dequantHWIO[i] = wscale * m;
        }
      }
    }
  }
  return { codes, wscale, f, uw, dequantHWIO, clipped: clipped / N };
}
