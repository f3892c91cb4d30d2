/**
 * Calibrated DAQ step multipliers (lowbit option `calibrateStep`, beyond the paper).
 *
 * DAQ sets each channel's step from that image's σ: Δ_c = G[b]·σ'_c, with G the step that
 * minimises the quantization MSE of a *Gaussian* (daq.md §3, table "mse"). SR activations are
 * not Gaussian (heavy tails, skew), so the best step for channel c is κ_c·G[b]·σ'_c with a κ_c
 * that depends on the channel's *shape*, not on its scale. The shape is stable across images
 * while the scale is not, so κ_c can be calibrated once on a few images and DAQ still adapts Δ_c
 * to each image through σ'_c — training-free, like DAQ's channel sensitivity.
 *
 * Calibration. On each calibration image the channel's values are normalised by that image's
 * own statistics, z = (x − μ_c)/σ'_c (signed branch; post-ReLU branch z = x/σ'_c), and added
 * to a per-channel histogram over z weighted by σ'_c², so that
 *
 *     Σ_images Σ_x (x − x̂_κ(x))² = Σ_bins w_bin·(z_bin − ẑ_κ(z_bin))²      (up to the bin width)
 *
 * is the absolute squared error of the whole calibration set for any κ (x̂ and ẑ are the same
 * quantizer in x and z units: Δ_z = κ·G[b]). κ_c = argmin over a grid 0.40…3.00 (step 0.05),
 * refined to 0.01 around the best point. The histogram does not depend on the bit-width, so one
 * pass serves every b (channel sensitivity decides b first). The quantizers are the engine's
 * int-mode rules (activation.ts): signed midrise k = clamp(⌊z/Δ_z⌋ + 2^(b−1), 0, 2^b − 1),
 * ẑ = (k − (2^b − 1)/2)·Δ_z; post-ReLU k = clamp(round(z/Δ_z), 0, 2^b − 1), ẑ = k·Δ_z.
 *
 * Histogram ranges: signed z ∈ [−Z, Z], post-ReLU z ∈ [0, 2Z], Z = 16 (at 2 bits and κ = 3 the
 * clip point is 3·0.996·1.5 ≈ 4.5σ; values beyond Z fall in the edge bins, which then count as
 * clipped whatever κ is — an error < (x − Zσ)² that no grid point could remove anyway).
 */
import { check } from "../../runtime/errors.ts";
import { daqStepMultiplier, type DaqStepTable } from "./step-table.ts";

export const STEP_CALIB_Z = 16;
export const STEP_CALIB_BINS = 2048;

/** Accumulates the σ'²-weighted histograms of one tensor's channels (f64). */
export class DaqStepHistogram {
  readonly channels: number;
  readonly bins: number;
  /** Per channel: 1 = post-ReLU rule (z ∈ [0, 2Z]), 0 = signed midrise (z ∈ [−Z, Z]). */
  readonly relu: Uint8Array;
  /** [C][bins] Σ σ'² · count. */
  readonly weights: Float64Array;

  constructor(channels: number, relu: Uint8Array, bins = STEP_CALIB_BINS) {
    check(relu.length >= channels, "E_SHAPE", `branch mask has ${relu.length} entries, need ${channels}`);
    this.channels = channels;
    this.bins = bins;
    this.relu = relu.slice(0, channels);
    this.weights = new Float64Array(channels * bins);
  }

  /** Range of channel c in x units for one image: [lo, hi] from its μ and σ'. */
  range(c: number, mean: number, sigma: number): [number, number] {
    return this.relu[c] ? [0, 2 * STEP_CALIB_Z * sigma] : [mean - STEP_CALIB_Z * sigma, mean + STEP_CALIB_Z * sigma];
  }

  /** Adds one image's histogram of channel c (counts over range(c, …)) with weight σ'². σ' = 0: nothing to learn. */
  add(c: number, sigma: number, counts: ArrayLike<number>): void {
    if (!(sigma > 0)) return;
    const w = sigma * sigma, row = c * this.bins;
    for (let b = 0; b < this.bins; b++) if (counts[b] !== 0) this.weights[row + b] += w * counts[b];
  }

  /** z at the centre of bin b of channel c. */
  centre(c: number, b: number): number {
    const lo = this.relu[c] ? 0 : -STEP_CALIB_Z;
    return lo + ((b + 0.5) * 2 * STEP_CALIB_Z) / this.bins;
  }
}

/** Σ w·(z − ẑ)² of one channel's non-empty bins for step dz. */
function sse(z: Float64Array, w: Float64Array, n: number, dz: number, bits: number, relu: boolean): number {
  const kmax = 2 ** bits - 1, half = 2 ** (bits - 1);
  let s = 0;
  for (let i = 0; i < n; i++) {
    let k: number, zh: number;
    if (relu) {
      k = Math.min(kmax, Math.max(0, Math.round(z[i] / dz)));
      zh = k * dz;
    } else {
      k = Math.min(kmax, Math.max(0, Math.floor(z[i] / dz) + half));
      zh = (k - kmax / 2) * dz;
    }
    const e = z[i] - zh;
    s += w[i] * e * e;
  }
  return s;
}

/**
 * κ_c per channel for bit-widths `bits` (scalar or per channel) and step table `table`;
 * channels never observed with σ' > 0 keep κ = 1.
 */
export function chooseStepScale(h: DaqStepHistogram, bits: number | Int32Array, table: DaqStepTable): Float32Array {
  const C = h.channels;
  const out = new Float32Array(C).fill(1);
  const z = new Float64Array(h.bins), w = new Float64Array(h.bins);
  for (let c = 0; c < C; c++) {
    let n = 0;
    for (let b = 0; b < h.bins; b++) {
      const v = h.weights[c * h.bins + b];
      if (v > 0) { z[n] = h.centre(c, b); w[n++] = v; }
    }
    if (n === 0) continue;
    const bc = typeof bits === "number" ? bits : bits[c];
    const g = daqStepMultiplier(bc, table), relu = h.relu[c] === 1;
    let best = 1, bestE = sse(z, w, n, g, bc, relu);
    for (let k = 40; k <= 300; k += 5) {
      const e = sse(z, w, n, (k / 100) * g, bc, relu);
      if (e < bestE) { bestE = e; best = k / 100; }
    }
    const coarse = best;
    for (let k = Math.round(coarse * 100) - 4; k <= Math.round(coarse * 100) + 4; k++) {
      if (k <= 0) continue;
      const e = sse(z, w, n, (k / 100) * g, bc, relu);
      if (e < bestE) { bestE = e; best = k / 100; }
    }
    out[c] = best;
  }
  return out;
}
