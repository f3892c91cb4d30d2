/**
 * Scalar quantization arithmetic of the training engine that runs on the TS side: percentiles for
 * range initialization and ODM's odd-grid weight fake-quant with its gradients. Weights are small
 * (≤ a few M floats) and live as f32 master copies in JS; activations are fake-quantized in WASM.
 *
 * Weight quantizer (odm.md §2, WCC): q(w) = round((clip(w, −u, u) + u)/s)·s − u with s = 2u/n,
 * n = 2^b − 1 levels − 1, rounding half away from zero (t ≥ 0, so ⌊t + ½⌋ — the same rule as the
 * activation kernel). With r = round(t) the level is (2r − n)·u/n: odd multiples of u/n, 0 is not
 * a level. Computed in f64, stored as f32.
 *
 * Gradients (LSQ-style STE, round treated as identity for ∂/∂w, as a constant for the grid): with
 * l = −u both ends move with u, so ∂q/∂u = ∂q/∂u|_l + ∂q/∂l·(−1):
 *   inside:  ∂q/∂u = (r − t)/n − (t − r)/n = 2(r − t)/n,   ∂q/∂w = 1
 *   w < −u:  q = −u  → ∂q/∂u = −1,  ∂q/∂w = 0
 *   w >  u:  q =  u  → ∂q/∂u = +1,  ∂q/∂w = 0
 * and u = f·γ gives ∂L/∂γ = f·Σ ∂L/∂q·∂q/∂u.
 */

/** P_p of values (linear interpolation between order statistics, numpy's default; p in [0, 100]). */
export function percentile(values: ArrayLike<number>, p: number): number {
  const n = values.length;
  if (n === 0) return 0;
  const s = Float64Array.from(values as ArrayLike<number>).sort();
  const pos = (p / 100) * (n - 1);
  const lo = Math.floor(pos), hi = Math.min(n - 1, lo + 1);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/** out[i] = q(w[i]) on the odd grid with clip u > 0 and `levels` = 2^b. Returns out. */
export function fakeQuantWeightsOdd(out: Float32Array, w: ArrayLike<number>, u: number, levels: number): Float32Array {
  const n = levels - 1;
  const s = (2 * u) / n, step = u / n;
  for (let i = 0; i < out.length; i++) {
    const x = Math.min(u, Math.max(-u, w[i]));
    const r = Math.floor((x + u) / s + 0.5);
    out[i] = (2 * Math.min(r, n) - n) * step;
  }
  return out;
}

/** The odd integer codes m = 2r − n ∈ ±{1, 3, …, n} of fakeQuantWeightsOdd (value = m·u/n). */
export function oddGridCodes(out: Int16Array, w: ArrayLike<number>, u: number, levels: number): Int16Array {
  const n = levels - 1;
  const s = (2 * u) / n;
  for (let i = 0; i < out.length; i++) {
    const x = Math.min(u, Math.max(-u, w[i]));
    out[i] = 2 * Math.min(n, Math.floor((x + u) / s + 0.5)) - n;
  }
  return out;
}

/**
 * Backward of fakeQuantWeightsOdd: dw[i] = dq[i]·[−u ≤ w ≤ u] (STE) written into dw, and the
 * returned Σ dq·∂q/∂u (multiply by f for ∂L/∂γ). f64 accumulation.
 */
export function fakeQuantWeightsOddBackward(dw: Float32Array, dq: ArrayLike<number>, w: ArrayLike<number>, u: number, levels: number): number {
  const n = levels - 1;
  const s = (2 * u) / n;
  let du = 0;
  for (let i = 0; i < dw.length; i++) {
    const x = w[i], g = dq[i];
    if (x < -u) {
      dw[i] = 0;
      du -= g;
    } else if (x > u) {
      dw[i] = 0;
      du += g;
    } else {
      dw[i] = g;
      const t = (x + u) / s;
      const r = Math.min(n, Math.floor(t + 0.5));
      du += (g * 2 * (r - t)) / n;
    }
  }
  return du;
}
