/**
 * ODM v1 channel offsets (odm.md §3) as a first-class object: per conv input tensor, per channel a
 * scale a_c > 0 and a shift b_c applied before the (per-tensor, static) quantizer and undone after,
 *
 *   x̂ = (q(x·a + b) − b)/a,
 *
 * so channels whose distributions do not match the tensor's common grid are moved onto it.
 *
 * Measuring the mismatch (v1 words only: "shift where the means mismatch, scale where the
 * deviations mismatch"; the formula is unpublished, these are lowbit's definitions [choice]).
 * From per-image (per calibration patch) channel means μ_ic and population stds σ_ic:
 *   tensor mean μ̄ = mean_{i,c} μ_ic,  tensor std σ̄ = sqrt(mean_{i,c}(σ_ic² + μ_ic²) − μ̄²)
 *   channel mean μ̄_c = mean_i μ_ic,     channel std σ̄_c = sqrt(mean_i σ_ic²)
 *   channelMean  = sqrt(mean_c (μ̄_c − μ̄)²)/σ̄      (channel means spread, in tensor stds)
 *   channelStd   = sqrt(mean_c ln²(σ̄_c/σ̄))         (channel deviations spread, log ratio)
 *   imageMean    = sqrt(mean_{i,c} (μ_ic − μ̄_c)²)/σ̄ (inter-image variation of channel means)
 *   imageStd     = sqrt(mean_{i,c} ln²(σ_ic/σ̄_c))   (inter-image variation of channel deviations)
 * The first two are what static offsets can remove; the last two (inter-image) they cannot — a
 * static quantizer sees every image through the same grid. All four are reported before/after.
 *
 * Initial offsets of a selected tensor [choice]: scale a_c = clamp(σ̄/σ̄_c, 1/8, 8) (1 for a dead
 * channel, σ̄_c = 0) and shift b_c = μ̄ − a_c·μ̄_c, which maps the channel's mean and deviation onto
 * the tensor's: x' = a_c(x − μ̄_c) + μ̄. "shift" only: a = 1, b_c = μ̄ − μ̄_c; "scale" only: b = 0.
 *
 * Folding (odm.md §3): with x' = x·a + b quantized and y = bias + Σ W·x̂,
 *   Σ_taps W[t,c,o]·(q(x')[p+t,c] − b_c)/a_c = Σ W'[t,c,o]·q(x')[p+t,c] − Σ_{in-bounds t} W'[t,c,o]·b_c,
 * W' = W/a_c per input channel (before weight quantization), and the shift term is a bias in the
 * interior that loses the out-of-bounds taps on the border ring ('same' zero padding pads x̂, not
 * x'). The engine carries it exactly as the per-channel μ_c of the quantizer's integer form
 * (act-quantizer.ts, scaleFolded); `foldChannelOffsetsF32` is the explicit float form (bias +
 * border term) for FP32 graphs and as the test's second derivation.
 */
import { check, LowbitError } from "../../runtime/errors.ts";

/** Per-image per-channel statistics of one tensor over the calibration patches. */
export interface ChannelImageStats {
  images: number;
  channels: number;
  /** [image][channel] means and population stds. */
  mean: Float64Array;
  std: Float64Array;
}

export interface ChannelMismatch {
  channelMean: number;
  channelStd: number;
  imageMean: number;
  imageStd: number;
  tensorMean: number;
  tensorStd: number;
}

export type OffsetKind = "both" | "shift" | "scale";

export class ChannelOffsets {
  /** The conv input tensor (node id of the optimized graph) the offsets apply to. */
  readonly tensor: number;
  readonly name: string;
  readonly shift: Float32Array;
  readonly scale: Float32Array;

  constructor(tensor: number, name: string, shift: Float32Array, scale: Float32Array) {
    check(shift.length === scale.length, "E_SHAPE", `channel offsets: ${shift.length} shifts, ${scale.length} scales`);
    for (let c = 0; c < scale.length; c++) {
      check(Number.isFinite(scale[c]) && scale[c] > 0, "E_RANGE", () => `channel offsets '${name}': scale ${scale[c]} of channel ${c} is not positive and finite`);
      check(Number.isFinite(shift[c]), "E_RANGE", () => `channel offsets '${name}': shift ${shift[c]} of channel ${c} is not finite`);
    }
    this.tensor = tensor;
    this.name = name;
    this.shift = shift;
    this.scale = scale;
  }

  get channels(): number {
    return this.scale.length;
  }

  /** Offsets that change nothing. */
  static identity(tensor: number, name: string, channels: number): ChannelOffsets {
    return new ChannelOffsets(tensor, name, new Float32Array(channels), new Float32Array(channels).fill(1));
  }

  /** Initial offsets from calibration statistics (see the file comment). */
  static fromStats(tensor: number, name: string, st: ChannelImageStats, kind: OffsetKind = "both"): ChannelOffsets {
    const { channels: C } = st;
    const m = channelMoments(st);
    const shift = new Float32Array(C), scale = new Float32Array(C).fill(1);
    for (let c = 0; c < C; c++) {
      const a = kind === "shift" || !(m.chStd[c] > 0) || !(m.std > 0) ? 1 : Math.min(8, Math.max(1 / 8, m.std / m.chStd[c]));
      scale[c] = a;
      shift[c] = kind === "scale" ? 0 : m.mean - a * m.chMean[c];
    }
    return new ChannelOffsets(tensor, name, shift, scale);
  }

  /** Statistics of x·a + b given those of x (exact: the map is affine per channel). */
  transformStats(st: ChannelImageStats): ChannelImageStats {
    check(st.channels === this.channels, "E_SHAPE", `offsets for ${this.channels} channels, statistics of ${st.channels}`);
    const mean = new Float64Array(st.mean.length), std = new Float64Array(st.std.length);
    for (let i = 0; i < st.images; i++) {
      for (let c = 0; c < st.channels; c++) {
        const j = i * st.channels + c;
        mean[j] = st.mean[j] * this.scale[c] + this.shift[c];
        std[j] = st.std[j] * this.scale[c];
      }
    }
    return { images: st.images, channels: st.channels, mean, std };
  }
}

function channelMoments(st: ChannelImageStats): { mean: number; std: number; chMean: Float64Array; chStd: Float64Array } {
  const { images: I, channels: C } = st;
  check(I > 0 && C > 0, "E_ARGUMENT", "channel statistics of no images");
  const chMean = new Float64Array(C), chStd = new Float64Array(C);
  let sm = 0, s2 = 0;
  for (let i = 0; i < I; i++) {
    for (let c = 0; c < C; c++) {
      const mu = st.mean[i * C + c], sd = st.std[i * C + c];
      chMean[c] += mu / I;
      chStd[c] += (sd * sd) / I;
      sm += mu;
      s2 += sd * sd + mu * mu;
    }
  }
  for (let c = 0; c < C; c++) chStd[c] = Math.sqrt(chStd[c]);
  const mean = sm / (I * C);
  return { mean, std: Math.sqrt(Math.max(0, s2 / (I * C) - mean * mean)), chMean, chStd };
}

/** The four mismatch measures of one tensor (file comment). Dead channels (σ = 0) are left out of the log terms. */
export function channelMismatch(st: ChannelImageStats): ChannelMismatch {
  const { images: I, channels: C } = st;
  const m = channelMoments(st);
  const sd = m.std > 0 ? m.std : 1;
  let cm = 0, cs = 0, ncs = 0, im = 0, is = 0, nis = 0;
  for (let c = 0; c < C; c++) {
    cm += (m.chMean[c] - m.mean) ** 2;
    if (m.chStd[c] > 0 && m.std > 0) {
      cs += Math.log(m.chStd[c] / m.std) ** 2;
      ncs++;
    }
    for (let i = 0; i < I; i++) {
      im += (st.mean[i * C + c] - m.chMean[c]) ** 2;
      const s = st.std[i * C + c];
      if (s > 0 && m.chStd[c] > 0) {
        is += Math.log(s / m.chStd[c]) ** 2;
        nis++;
      }
    }
  }
  return {
    channelMean: Math.sqrt(cm / C) / sd, channelStd: ncs ? Math.sqrt(cs / ncs) : 0,
    imageMean: Math.sqrt(im / (I * C)) / sd, imageStd: nis ? Math.sqrt(is / nis) : 0,
    tensorMean: m.mean, tensorStd: m.std,
  };
}

export interface FoldedConvF32 {
  /** W' = W/a_c (HWIO). */
  weights: Float32Array;
  /** bias − Σ_all taps W'·b: the interior bias. */
  bias: Float32Array;
  /**
   * Border term: out[(y·w + x)·cout + o] += Σ_{taps outside the image} W'[t,c,o]·b_c — add to
   * the interior result for the exact 'same'-padded output (0 in the interior).
   */
  border(out: Float32Array, h: number, w: number): Float32Array;
}

/** Folds offsets into a conv consuming x̂ (float form; see the file comment). */
export function foldChannelOffsetsF32(conv: { weights: Float32Array; bias: Float32Array | null; k: number; cin: number; cout: number }, off: ChannelOffsets): FoldedConvF32 {
  const { k, cin, cout } = conv;
  if (off.channels !== cin) throw new LowbitError("E_SHAPE", `offsets '${off.name}' cover ${off.channels} channels, the conv reads ${cin}`);
  check(conv.weights.length === k * k * cin * cout, "E_SHAPE", "conv weights do not match k·k·cin·cout");
  const weights = new Float32Array(conv.weights.length);
  // tapShift[t·cout + o] = Σ_c W'[t,c,o]·b_c
  const tapShift = new Float64Array(k * k * cout);
  for (let t = 0; t < k * k; t++) {
    for (let c = 0; c < cin; c++) {
      for (let o = 0; o < cout; o++) {
        const i = (t * cin + c) * cout + o;
        weights[i] = conv.weights[i] / off.scale[c];
        tapShift[t * cout + o] += weights[i] * off.shift[c];
      }
    }
  }
  const bias = new Float32Array(cout);
  for (let o = 0; o < cout; o++) {
    let s = conv.bias ? conv.bias[o] : 0;
    for (let t = 0; t < k * k; t++) s -= tapShift[t * cout + o];
    bias[o] = s;
  }
  const r = (k - 1) >> 1;
  const border = (out: Float32Array, h: number, w: number): Float32Array => {
    check(out.length === h * w * cout, "E_SHAPE", "border term output has the wrong size");
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (y >= r && y < h - r && x >= r && x < w - r) continue;
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const sy = y + ky - r, sx = x + kx - r;
            if (sy >= 0 && sy < h && sx >= 0 && sx < w) continue;
            const t = ky * k + kx;
            for (let o = 0; o < cout; o++) out[(y * w + x) * cout + o] += tapShift[t * cout + o];
          }
        }
      }
    }
    return out;
  };
  return { weights, bias, border };
}
