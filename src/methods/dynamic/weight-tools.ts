/**
 * Weight-side helpers shared by the dynamic methods (lowbit options, off by default — not part of the
 * released DAQ / DFSQ code):
 *
 * - `weightErrorSums`: ΔW[o][c] = Σ_taps (ŵ − w), the per-(output, input channel) weight rounding
 *   error. With it the engine applies **per-image bias correction**: the expected output shift of
 *   weight rounding, Σ_c ΔW[o][c]·E[x_c], is removed from the bias using the image's own channel
 *   means E[x_c] (known exactly from the statistics pass these methods run anyway). This is the
 *   empirical bias correction of Nagel et al. (ICCV 2019, §4.2), made exact per image instead of
 *   calibrated; it ignores the border (taps outside the image see 0, not E[x]).
 * - `mseClipPerChannel`: per-output-channel clipping of the weight range by the MSE of the
 *   quantized weights (the range [α·min, α·max], α on a grid in [0.5, 1]), for quantizers that
 *   take their range from min/max (DFSQ's per-channel asymmetric min-max).
 */
/** ΔW[o·cin + c] = Σ_taps (wscale[o]·w_int[o, tap, c] − w_hwio[tap, c, o]). */
export function weightErrorSums(hwio: Float32Array, codes: Int16Array, wscale: Float32Array, k: number, cin: number, cout: number): Float32Array {
  const out = new Float32Array(cout * cin);
  for (let o = 0; o < cout; o++) {
    for (let c = 0; c < cin; c++) {
      let s = 0;
      for (let t = 0; t < k * k; t++) s += wscale[o] * codes[(o * k * k + t) * cin + c] - hwio[(t * cin + c) * cout + o];
      out[o * cin + c] = s;
    }
  }
  return out;
}

/**
 * Returns a copy of HWIO weights with each output channel clamped to [α·min_o, α·max_o], α chosen
 * per channel to minimise Σ (w − Q(w))² for a `bits`-bit asymmetric min-max grid over the clamped
 * range (Q rounds to the grid; clamping is part of Q).
 */
export function mseClipPerChannel(hwio: Float32Array, k: number, cin: number, cout: number, bits: number): Float32Array {
  const taps = k * k * cin;
  const out = Float32Array.from(hwio);
  const levels = (1 << bits) - 1;
  const w = new Float64Array(taps);
  for (let o = 0; o < cout; o++) {
    let lo = Infinity, hi = -Infinity;
    for (let t = 0; t < taps; t++) {
      w[t] = hwio[t * cout + o];
      lo = Math.min(lo, w[t]);
      hi = Math.max(hi, w[t]);
    }
    lo = Math.min(lo, 0);
    hi = Math.max(hi, 0);
    if (!(hi > lo)) continue;
    let best = Infinity, bestA = 1;
    for (let a = 1; a >= 0.5 - 1e-9; a -= 0.025) {
      const l = a * lo, h = a * hi, d = (h - l) / levels;
      let e = 0;
      for (let t = 0; t < taps; t++) {
        const v = Math.min(h, Math.max(l, w[t]));
        const q = l + Math.round((v - l) / d) * d;
        e += (w[t] - q) ** 2;
      }
      if (e < best) {
        best = e;
        bestA = a;
      }
    }
    const l = bestA * lo, h = bestA * hi;
    for (let t = 0; t < taps; t++) out[t * cout + o] = Math.min(h, Math.max(l, w[t]));
  }
  return out;
}

