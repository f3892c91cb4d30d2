/**
 * Training-free channel-sensitivity mixed precision for DAQ activations (the abstract's idea,
 * absent from the released code — spec daq.md §1; the score below is our own [derived] design).
 *
 * Model. Quantizing input channel c of a conv adds noise e_c with variance V_c(b) per pixel.
 * Treating the errors as zero-mean and uncorrelated across pixels and channels (the usual
 * additive-noise model of fine quantization), the conv passes them to the output with power
 *
 *     E‖Δy‖² ≈ Σ_c V_c(b_c) · E_c,     E_c = Σ_{kh,kw,o} w[kh,kw,c,o]²     (weight energy of c)
 *
 * DAQ's step is proportional to the channel's own σ_c, so V_c(b) = P_c·D(b): a channel factor
 * P_c times a bit factor D(b) that is the same for every channel of the layer:
 *  - signed branch: x_c ≈ N(μ_c, σ_c²), D(b) = E[(z − Q_b(z))²] for z ~ N(0, 1) and the b-bit
 *    DAQ midrise quantizer with its table step (granular + clip error, computed exactly by
 *    quadrature), P_c = σ_c²;
 *  - post-ReLU branch: zeros are exact and the code does not clip, so only the positive
 *    fraction p_c carries uniform rounding noise: D(b) = G_b²/12, P_c = p_c·σ_c².
 * P_c is averaged over calibration images (E_img[σ_c²], since σ is per image).
 *
 * Allocation. With s_c = P_c·E_c the objective Σ_c s_c·D(b_c) is separable; moving channel c
 * from b to b+e gains s_c·(D(b) − D(b+e)), from b to b−e costs s_c·(D(b−e) − D(b)). Both are
 * proportional to s_c, so the optimum under a bit budget promotes the top-s channels and
 * (optionally) demotes the bottom-s ones; daqChannelBits does the greedy exchange, which is
 * exact here because the marginal gains are monotone in the sorted order. Ties: lower index
 * first, so the result is deterministic.
 */
import { check, checkInt } from "../../runtime/errors.ts";
import { type DaqStepTable, checkDaqBits, checkStepTable, daqStepMultiplier } from "./step-table.ts";
import { type DaqChannelStats, daqChannelSigma } from "./activation.ts";
import type { DaqConvShape } from "./weights.ts";

/** Per-channel noise power of one layer's input, averaged over calibration images. */
export interface DaqLayerStats {
  postRelu: boolean;
  /** P_c = mean over images of σ_c² (signed) or p_c·σ_c² (post-ReLU). */
  power: Float64Array;
  images: number;
}

/** Accumulates DaqLayerStats from per-image statistics (the same ones the engine computes). */
export class DaqSensitivityAccumulator {
  private readonly sum: Float64Array;
  private readonly sigma: Float64Array;
  private n = 0;
  constructor(readonly channels: number, readonly postRelu: boolean) {
    checkInt(channels, 1, 1 << 16, "channels", "E_SHAPE");
    this.sum = new Float64Array(channels);
    this.sigma = new Float64Array(channels);
  }
  /** Adds one image (stats of this layer's input over H×W). */
  add(stats: DaqChannelStats): this {
    const C = this.channels;
    check(stats.mean?.length >= C, "E_SHAPE", `stats need ${C} channels`);
    daqChannelSigma(this.sigma, stats, this.postRelu, C);
    for (let c = 0; c < C; c++) {
      const p = this.postRelu ? stats.countPositive![c] / stats.pixels : 1;
      this.sum[c] += p * this.sigma[c] * this.sigma[c];
    }
    this.n++;
    return this;
  }
  result(): DaqLayerStats {
    check(this.n > 0, "E_ARGUMENT", "no calibration image added");
    const power = new Float64Array(this.channels);
    for (let c = 0; c < this.channels; c++) power[c] = this.sum[c] / this.n;
    return { postRelu: this.postRelu, power, images: this.n };
  }
}

// 16-point Gauss–Legendre nodes/weights on [−1, 1] (positive half; symmetric).
const GL_X = [0.0950125098376374, 0.2816035507792589, 0.4580167776572274, 0.6178762444026438,
  0.7554044083550030, 0.8656312023878318, 0.9445750230732326, 0.9894009349916499];
const GL_W = [0.1894506104550685, 0.1826034150449236, 0.1691565193950025, 0.1495959888165767,
  0.1246289712555339, 0.0951585116824928, 0.0622535239386479, 0.0271524594117541];
const INV_SQRT_2PI = 0.3989422804014327;

/** ∫_l^u (z − r)² φ(z) dz by 16-point Gauss–Legendre on sub-intervals of width ≤ h (smooth integrand). */
function cellError(l: number, u: number, r: number, h = 0.25): number {
  const parts = Math.max(1, Math.ceil((u - l) / h));
  const w = (u - l) / parts;
  let s = 0;
  for (let i = 0; i < parts; i++) {
    const m = l + (i + 0.5) * w, hw = w / 2;
    for (let j = 0; j < 8; j++) {
      for (const z of [m - hw * GL_X[j], m + hw * GL_X[j]]) s += GL_W[j] * hw * (z - r) * (z - r) * INV_SQRT_2PI * Math.exp(-z * z / 2);
    }
  }
  return s;
}

/**
 * D(b): quantization MSE per unit noise power of the b-bit DAQ quantizer (see module comment).
 * Signed: E[(z − Q(z))²], z ~ N(0, 1), Q midrise with step g = table step, 2^b levels at
 * (j + ½)g, outer cells to ±∞ (the clip error); "mse" table, b = 1 → 1 − 2/π. Post-ReLU: g²/12.
 */
export function daqDistortion(bits: number, postRelu: boolean, table: DaqStepTable = "code", finetune = false): number {
  const g = daqStepMultiplier(bits, table, finetune);
  if (postRelu) return (g * g) / 12;
  const half = 2 ** (bits - 1);
  // Symmetric: twice the positive side. Cells [j·g, (j+1)·g) → (j + ½)g, j < half − 1; last to ∞.
  let s = 0;
  for (let j = 0; j < half; j++) {
    const l = j * g, r = (j + 0.5) * g;
    const u = j === half - 1 ? Math.max(l, 0) + 16 : (j + 1) * g;
    s += cellError(l, u, r);
  }
  return 2 * s;
}

/** out[c] = E_c = Σ_{kh,kw,o} w[kh][kw][c][o]² (HWIO), f64. */
export function daqWeightEnergy(out: Float64Array, weightsHWIO: Float32Array, shape: DaqConvShape): Float64Array {
  const { k, cin, cout } = shape;
  checkInt(k, 1, 64, "kernel size", "E_SHAPE");
  checkInt(cin, 1, 1 << 16, "cin", "E_SHAPE");
  checkInt(cout, 1, 1 << 16, "cout", "E_SHAPE");
  check(weightsHWIO instanceof Float32Array && weightsHWIO.length === k * k * cin * cout, "E_SHAPE",
    `weights must be a Float32Array of ${k}·${k}·${cin}·${cout}`);
  check(out.length >= cin, "E_SHAPE", `out needs ≥ ${cin} entries`);
  out.fill(0, 0, cin);
  for (let t = 0, i = 0; t < k * k; t++) {
    for (let c = 0; c < cin; c++) {
      let e = 0;
      for (let o = 0; o < cout; o++, i++) {
        const w = weightsHWIO[i];
        check(Number.isFinite(w), "E_RANGE", () => `weight ${i} = ${w} is not finite`);
        e += w * w;
      }
      out[c] += e;
    }
  }
  return out;
}

/** out[c] = s_c = P_c·E_c: the channel's share of the layer's output quantization noise (÷ D(b)). */
export function daqChannelSensitivity(out: Float64Array, layerStats: DaqLayerStats, weightsHWIO: Float32Array, shape: DaqConvShape): Float64Array {
  const C = shape.cin;
  check(layerStats.power instanceof Float64Array && layerStats.power.length === C, "E_SHAPE", `layer stats must have cin = ${C} channels`);
  daqWeightEnergy(out, weightsHWIO, shape);
  for (let c = 0; c < C; c++) {
    const p = layerStats.power[c];
    check(Number.isFinite(p) && p >= 0, "E_RANGE", () => `power[${c}] = ${p}`);
    out[c] *= p;
  }
  return out;
}

export interface DaqChannelBitsOptions {
  /** Base activation bits (every channel's default). */
  bits: number;
  /** Bits added to a promoted channel (and removed from a demoted one). */
  extraBits: 1 | 2;
  /**
   * { fraction }: promote ⌊fraction·C⌋ channels (average = bits + extra·⌊fC⌋/C).
   * { averageBits }: the resulting average is ≤ averageBits (promotion count ⌊(A − bits)·C/extra⌋,
   * plus exchanges when demote is set; A < bits requires demote).
   */
  budget: { fraction: number } | { averageBits: number };
  /** Allow channels to drop to bits − extraBits when that buys a larger gain elsewhere. Default false. */
  demote?: boolean;
  stepTable?: DaqStepTable;
  finetune?: boolean;
}

/**
 * Per-input-channel activation bits (Int32Array, length cin) for one DAQ conv. The average
 * never exceeds the stated budget. See the module comment for the score and the optimality.
 */
export function daqChannelBits(layerStats: DaqLayerStats, weightsHWIO: Float32Array, shape: DaqConvShape, opts: DaqChannelBitsOptions): Int32Array {
  const C = shape.cin;
  const { bits: b, extraBits: e } = opts;
  checkDaqBits(b);
  check(e === 1 || e === 2, "E_ARGUMENT", `extraBits must be 1 or 2, got ${e}`);
  const table = opts.stepTable ?? "code";
  checkStepTable(table);
  const demote = opts.demote ?? false;
  const budget = opts.budget as { fraction?: number; averageBits?: number };
  check(budget !== null && typeof budget === "object", "E_ARGUMENT", "budget must be { fraction } or { averageBits }");
  let q: number; // allowed promotions minus demotions
  if (budget.fraction !== undefined) {
    check(budget.averageBits === undefined, "E_ARGUMENT", "give either budget.fraction or budget.averageBits");
    check(Number.isFinite(budget.fraction) && budget.fraction >= 0 && budget.fraction <= 1, "E_ARGUMENT", `budget.fraction ${budget.fraction} outside [0, 1]`);
    q = Math.floor(budget.fraction * C + 1e-9);
  } else {
    const A = budget.averageBits;
    check(typeof A === "number" && Number.isFinite(A) && A >= 1 && A <= 8, "E_ARGUMENT", `budget.averageBits ${A} outside [1, 8]`);
    q = Math.floor(((A - b) * C) / e + 1e-9);
    check(q >= 0 || demote, "E_ARGUMENT", `averageBits ${A} < bits ${b} needs demote: true`);
    q = Math.max(-C, Math.min(C, q));
  }
  if (q > 0 || demote) checkDaqBits(b + e, "bits + extraBits");
  if (q < 0 || demote) checkDaqBits(b - e, "bits − extraBits");

  const s = daqChannelSensitivity(new Float64Array(C), layerStats, weightsHWIO, shape);
  const order = Array.from({ length: C }, (_, i) => i).sort((i, j) => s[j] - s[i] || i - j);
  const out = new Int32Array(C).fill(b);
  let np = Math.max(q, 0), nd = Math.max(-q, 0);
  if (demote) {
    const gain = daqDistortion(b, layerStats.postRelu, table, opts.finetune) - daqDistortion(b + e, layerStats.postRelu, table, opts.finetune);
    const loss = daqDistortion(b - e, layerStats.postRelu, table, opts.finetune) - daqDistortion(b, layerStats.postRelu, table, opts.finetune);
    // Exchange: promote the next most sensitive, demote the next least, while it lowers Σ s·D.
    while (np + nd + 2 <= C && s[order[np]] * gain > s[order[C - 1 - nd]] * loss) {
      np++;
      nd++;
    }
  }
  np = Math.min(np, C);
  nd = Math.min(nd, C - np);
  for (let i = 0; i < np; i++) out[order[i]] = b + e;
  for (let i = 0; i < nd; i++) out[order[C - 1 - i]] = b - e;
  return out;
}
