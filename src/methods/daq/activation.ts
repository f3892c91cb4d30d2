/**
 * DAQ activation quantizer parameters (spec daq.md §3, §6): per image and per input channel,
 * from the statistics pass, for the engine's code / LUT / exact paths.
 *
 * Dequantization convention used by every function here (both branches, one formula each):
 *
 *     signed:    x̂_c(k) = mu_c + (k − (2^b − 1)/2)·delta_c        k ∈ [0, 2^b − 1]   (midrise)
 *     post-ReLU: x̂_c(k) = mu_c + k·delta_c                          k ∈ [0, 2^b − 1]   (int mode)
 *
 * `mu` is the dequantization *offset*, not always the statistic: signed → μ_c (the mean);
 * post-ReLU → 0 (the code's post-ReLU μ never enters the quantizer). A channel that the code
 * makes constant has delta = 0 and mu = that constant (σ' ≤ 0 guard, §3 table):
 *
 *     σ' = 0:               signed μ_c,          post-ReLU 0
 *     σ' < 0 (reference):   signed μ_c + |T_c|,  post-ReLU T_c (< 0)      T_c = (2^(b−1) − ½)·G·σ'
 *     σ' < 0 (int mode):    σ' is clamped to 0 first, so as σ' = 0
 *
 * With delta = 0 every code decodes to mu, and the code rule with invΔ = 0 (daqInvDelta) is
 * well defined, so the engine needs no special case (the μ term of path A carries the
 * constant, including on the zero-padded border, exactly like the reference).
 *
 * Arithmetic: all parameter math in f64, results stored as f32 (what the kernels consume).
 */
import { LowbitError, check, checkInt } from "../../runtime/errors.ts";
import {
  type DaqStepTable, DAQ_QQ_OFF, checkDaqBits, checkStepTable, daqSigmaStepMultiplier, daqStepMultiplier, roundHalfEven,
} from "./step-table.ts";

/** Per-channel statistics of one image (the stats pass; population std as the kernel gives it). */
export interface DaqChannelStats {
  /** H·W of the image (≥ 1). */
  pixels: number;
  mean: ArrayLike<number>;
  /** Population std (divide by H·W). */
  std: ArrayLike<number>;
  /** #(x > 0) per channel; required for the post-ReLU branch. */
  countPositive?: ArrayLike<number>;
  /** Σx per channel (f64). When given, overrides mean·pixels (post-ReLU branch). */
  sum?: ArrayLike<number>;
  /** Σx² per channel (f64). When given, overrides (std² + mean²)·pixels (post-ReLU branch). */
  sumSq?: ArrayLike<number>;
}

export interface DaqActivationOptions {
  /** Activation bits 1..8: one value, or one per channel (mixed precision). */
  bits: number | Int32Array;
  /** "code" (default): Δ = G[b−1]σ; "mse": Δ = G[b]σ. */
  stepTable?: DaqStepTable;
  /** `--finetune`: step 1.596, σ step 0.057. */
  finetune?: boolean;
  /** σ codebook bits 1..8, or 32 to disable σ quantization. */
  qq: number;
  /** "reference": the code's σ' < 0 guard; "int": σ' clamped at 0 (and, downstream, codes ≤ 2^b − 1). */
  mode: "reference" | "int";
  postRelu: boolean;
  /**
   * Per-channel step multipliers κ_c (lowbit option, step-calibration.ts): Δ_c = κ_c·G·σ'_c.
   * Absent = 1 (the paper's step).
   */
  stepScale?: ArrayLike<number>;
}

/** Output of daqActivationParams (caller-allocated, length ≥ channels). */
export interface DaqActivationParams {
  /** Dequantization offset (see the module comment). */
  mu: Float32Array;
  /** Step Δ_c = G[b_c − 1]·σ'_c, or 0 for a constant channel. */
  delta: Float32Array;
  /** Optional: 1 where the channel is constant (delta = 0), else 0. */
  constant?: Uint8Array;
  /** Optional: σ'_c after σ quantization (before the ≤ 0 guard), f64 math. */
  sigma?: Float32Array | Float64Array;
}

/** Bits of channel c. */
export function bitsAt(bits: number | Int32Array, c: number): number {
  return typeof bits === "number" ? bits : bits[c];
}

/** Largest per-channel bit-width (the LUT row length is 2^maxBits). */
export function daqMaxBits(bits: number | Int32Array, channels: number): number {
  if (typeof bits === "number") return bits;
  let m = 0;
  for (let c = 0; c < channels; c++) if (bits[c] > m) m = bits[c];
  return m;
}

/** Validates a scalar or per-channel bit-width (E_BITS / E_SHAPE). */
export function checkBitsArg(bits: number | Int32Array, channels: number, what = "bits"): void {
  if (typeof bits === "number") {
    checkDaqBits(bits, what);
    return;
  }
  check(bits instanceof Int32Array, "E_ARGUMENT", `${what} must be a number or an Int32Array`);
  check(bits.length >= channels, "E_SHAPE", `${what} has ${bits.length} entries, need ${channels} channels`);
  for (let c = 0; c < channels; c++) checkDaqBits(bits[c], `${what}[${c}]`);
}

export function checkQq(qq: number): void {
  if (qq !== DAQ_QQ_OFF) checkInt(qq, 1, 8, "qq (σ bits, or 32 = off)", "E_BITS");
}

function checkMode(mode: unknown): void {
  check(mode === "reference" || mode === "int", "E_ARGUMENT", `mode must be 'reference' or 'int', got ${String(mode)}`);
}

function checkVec(v: ArrayLike<number> | undefined, n: number, what: string): void {
  check(v !== undefined && typeof v === "object" && typeof v.length === "number", "E_ARGUMENT", `${what} must be an array`);
  check(v.length >= n, "E_SHAPE", `${what} has ${v.length} entries, need ${n}`);
  for (let i = 0; i < n; i++) check(Number.isFinite(v[i]), "E_RANGE", () => `${what}[${i}] = ${v[i]} is not finite`);
}

/**
 * The σ codebook (§3), in place on sigma[0..C): m_σ = mean_c σ_c, d_σ = unbiased std_c σ_c
 * (d_σ = 0 when C = 1: torch would give NaN there), step = G_σ·d_σ, midrise-quantize σ_c − m_σ
 * with half-even rounding, clip to ±(2^(qq−1) − ½)·step, add m_σ back; d_σ = 0 → σ' = m_σ.
 * At most 2^qq distinct values. Exactly the reference's op sequence (f64).
 */
export function daqQuantizeSigma(sigma: Float64Array, channels: number, qq: number, table: DaqStepTable = "code", finetune = false): void {
  if (qq === DAQ_QQ_OFF) return;
  const g = daqSigmaStepMultiplier(qq, table, finetune);
  let s = 0;
  for (let c = 0; c < channels; c++) s += sigma[c];
  const m = s / channels;
  let v = 0;
  for (let c = 0; c < channels; c++) v += (sigma[c] - m) * (sigma[c] - m);
  const d = channels > 1 ? Math.sqrt(v / (channels - 1)) : 0;
  const step = g * d;
  const thr = (2 ** qq / 2 - 0.5) * step;
  for (let c = 0; c < channels; c++) {
    let y = 0;
    if (step > 0) {
      y = (roundHalfEven((sigma[c] - m) / step + 0.5) - 0.5) * step;
      y = Math.max(Math.min(y, thr), -thr);
    }
    sigma[c] = y + m;
  }
}

/**
 * σ_c of the code's branch from one image's statistics (no σ quantization), f64; see
 * daqActivationParams for the formulas and their rounding. Validates stats for `channels`.
 */
export function daqChannelSigma(out: Float64Array, stats: DaqChannelStats, postRelu: boolean, channels = stats.mean.length): Float64Array {
  const C = channels, N = stats.pixels;
  checkInt(N, 1, 2 ** 40, "stats.pixels", "E_SHAPE");
  checkVec(stats.mean, C, "stats.mean");
  checkVec(stats.std, C, "stats.std");
  check(out.length >= C, "E_SHAPE", `sigma output needs ≥ ${C} entries`);
  if (postRelu) {
    checkVec(stats.countPositive, C, "stats.countPositive");
    if (stats.sum) checkVec(stats.sum, C, "stats.sum");
    if (stats.sumSq) checkVec(stats.sumSq, C, "stats.sumSq");
  }
  for (let c = 0; c < C; c++) {
    const sd = stats.std[c];
    check(sd >= 0, "E_RANGE", () => `stats.std[${c}] = ${sd} is negative`);
    if (!postRelu) {
      out[c] = N > 1 ? sd * Math.sqrt(N / (N - 1)) : 0;
    } else {
      const cp = stats.countPositive![c];
      check(Number.isInteger(cp) && cp >= 0 && cp <= N, "E_RANGE", () => `countPositive[${c}] = ${cp} outside 0..${N}`);
      const mean = stats.mean[c];
      const sx = stats.sum ? stats.sum[c] : mean * N;
      const sxx = stats.sumSq ? stats.sumSq[c] : (sd * sd + mean * mean) * N;
      const n = cp + 1;
      const mu = sx / n;
      out[c] = Math.sqrt(Math.max(0, sxx / n - mu * mu));
    }
  }
  return out;
}

/**
 * Per-image per-channel DAQ parameters from the statistics pass. Writes out.mu / out.delta
 * (and out.constant / out.sigma when present) for channels 0..C−1, C = stats.mean.length.
 *
 * σ per branch (§3), from f32 statistics in f64:
 *  - signed: σ_c = std_pop·sqrt(N/(N−1)) (unbiased; N = 1 → 0).
 *  - post-ReLU: n_c = countPositive + 1, Σx = mean·N, Σx² = (std² + mean²)·N (unless sum/sumSq
 *    are given), μ = Σx/n_c, σ = sqrt(max(0, Σx²/n_c − μ²)). Rounding: mean and std arrive
 *    rounded to f32 (rel. error ≤ 2^−24 each), so Σx and Σx² carry ≈ 1e−7 relative error;
 *    the radicand loses accuracy by cancellation when σ ≪ μ (positive values nearly equal),
 *    where σ has relative error ≈ 1e−7·μ²/σ². Pass exact f64 sum/sumSq to avoid it.
 */
export function daqActivationParams(out: DaqActivationParams, stats: DaqChannelStats, opts: DaqActivationOptions): DaqActivationParams {
  check(stats !== null && typeof stats === "object", "E_ARGUMENT", "stats must be an object");
  check(opts !== null && typeof opts === "object", "E_ARGUMENT", "opts must be an object");
  const C = stats.mean?.length ?? 0;
  check(C >= 1, "E_SHAPE", "stats.mean must have at least one channel");
  checkBitsArg(opts.bits, C);
  checkQq(opts.qq);
  checkMode(opts.mode);
  const table = opts.stepTable ?? "code";
  checkStepTable(table);
  check(typeof opts.postRelu === "boolean", "E_ARGUMENT", "postRelu must be a boolean");
  check(out.mu instanceof Float32Array && out.mu.length >= C, "E_SHAPE", `out.mu must be a Float32Array of ≥ ${C}`);
  check(out.delta instanceof Float32Array && out.delta.length >= C, "E_SHAPE", `out.delta must be a Float32Array of ≥ ${C}`);
  if (out.constant) check(out.constant instanceof Uint8Array && out.constant.length >= C, "E_SHAPE", `out.constant must be a Uint8Array of ≥ ${C}`);
  if (opts.stepScale) {
    check(opts.stepScale.length >= C, "E_SHAPE", `stepScale has ${opts.stepScale.length} entries, need ${C}`);
    for (let c = 0; c < C; c++) check(opts.stepScale[c] > 0 && Number.isFinite(opts.stepScale[c]), "E_RANGE", () => `stepScale[${c}] = ${opts.stepScale![c]} must be positive and finite`);
  }
  if (out.sigma) check((out.sigma instanceof Float32Array || out.sigma instanceof Float64Array) && out.sigma.length >= C, "E_SHAPE", `out.sigma must hold ≥ ${C}`);
  const finetune = opts.finetune ?? false;

  const sigma = daqChannelSigma(new Float64Array(C), stats, opts.postRelu, C);
  daqQuantizeSigma(sigma, C, opts.qq, table, finetune);

  for (let c = 0; c < C; c++) {
    const b = bitsAt(opts.bits, c);
    const s = opts.mode === "int" ? Math.max(sigma[c], 0) : sigma[c];
    const step = daqStepMultiplier(b, table, finetune) * s * (opts.stepScale ? opts.stepScale[c] : 1);
    const thr = (2 ** b / 2 - 0.5) * step;
    const base = opts.postRelu ? 0 : stats.mean[c];
    let mu: number, delta: number;
    if (step > 0) [mu, delta] = [base, step];
    else if (step === 0) [mu, delta] = [base, 0];
    else [mu, delta] = opts.postRelu ? [thr, 0] : [base - thr, 0]; // reference-mode guard: μ + |T|, or T
    out.mu[c] = mu;
    out.delta[c] = delta;
    // A step that underflows f32 is a constant channel too (x̂ would not depend on k).
    if (out.delta[c] === 0) out.delta[c] = 0;
    if (out.constant) out.constant[c] = out.delta[c] === 0 ? 1 : 0;
    if (out.sigma) out.sigma[c] = sigma[c];
  }
  return out;
}

/** out[c] = fround(1/delta[c]), or 0 when delta is 0 or 1/delta is not finite (constant channel). */
export function daqInvDelta(out: Float32Array, delta: Float32Array, channels = delta.length): Float32Array {
  check(out.length >= channels && delta.length >= channels, "E_SHAPE", `need ≥ ${channels} entries`);
  for (let c = 0; c < channels; c++) {
    const d = delta[c];
    const inv = d > 0 ? Math.fround(1 / d) : 0;
    out[c] = Number.isFinite(inv) ? inv : 0;
  }
  return out;
}

/** x̂ of one code (f64): signed mu + (code − (2^b − 1)/2)·delta, post-ReLU mu + code·delta. */
export function daqLevelValue(mu: number, delta: number, code: number, bits: number, postRelu: boolean): number {
  return postRelu ? mu + code * delta : mu + (code - (2 ** bits - 1) / 2) * delta;
}

function checkParams(params: DaqActivationParams, channels: number): void {
  check(params !== null && typeof params === "object", "E_ARGUMENT", "params must be an object");
  check(params.mu instanceof Float32Array && params.delta instanceof Float32Array, "E_ARGUMENT", "params.mu/delta must be Float32Array");
  check(params.mu.length >= channels && params.delta.length >= channels, "E_SHAPE", `params need ≥ ${channels} channels`);
}

/**
 * max over channels and codes k ∈ [0, 2^b_c − 1] of |x̂_c(k)| (levels are monotone in k, so the
 * two end codes suffice). Sizes the LUT scale S (see daqLutScale).
 */
export function daqMaxAbsLevel(params: DaqActivationParams, bits: number | Int32Array, postRelu: boolean, channels = params.mu.length): number {
  checkParams(params, channels);
  checkBitsArg(bits, channels);
  let m = 0;
  for (let c = 0; c < channels; c++) {
    const b = bitsAt(bits, c);
    const lo = Math.abs(daqLevelValue(params.mu[c], params.delta[c], 0, b, postRelu));
    const hi = Math.abs(daqLevelValue(params.mu[c], params.delta[c], 2 ** b - 1, b, postRelu));
    m = Math.max(m, lo, hi);
  }
  return m;
}

/**
 * A LUT scale S with max|lut| ≤ 32767 and, when maxWeightAbsSum (max_o Σ|w_int[o]|) is given,
 * max|lut|·maxWeightAbsSum < 2^31 (ISSUE5 overflow contract). Since |round(v/S)| ≤ L when
 * |v| ≤ L·S, S = maxAbs/L with L = min(32767, ⌊(2^31 − 1)/W⌋). maxAbs = 0 → S = 1.
 * E_RANGE when W ≥ 2^31 (no int16 level fits).
 */
export function daqLutScale(maxAbsLevel: number, maxWeightAbsSum = 1): number {
  check(Number.isFinite(maxAbsLevel) && maxAbsLevel >= 0, "E_RANGE", `max |level| ${maxAbsLevel}`);
  check(Number.isFinite(maxWeightAbsSum) && maxWeightAbsSum >= 0, "E_RANGE", `max weight |sum| ${maxWeightAbsSum}`);
  const L = Math.min(32767, Math.floor((2 ** 31 - 1) / Math.max(maxWeightAbsSum, 1)));
  check(L >= 1, "E_RANGE", `weight |sum| ${maxWeightAbsSum} leaves no int16 LUT range below 2^31`);
  if (maxAbsLevel === 0) return 1;
  // Round S up by one f32 ulp so fround(S)·L ≥ maxAbs even after the caller stores S as f32.
  let S = Math.fround(maxAbsLevel / L);
  while (S * L < maxAbsLevel) S = Math.fround(S * (1 + 2 ** -23));
  return S;
}

/**
 * lut[c·K + k] = round_half_even(x̂_c(k)/S) for k < 2^b_c, padded with the last value up to
 * K = 2^maxBits (ISSUE5 LUT format). x̂ in f64 from the f32 params; error ≤ S/2 per level.
 * Post-ReLU uses the int-mode form (codes ≤ 2^b − 1). E_RANGE when a value leaves int16.
 */
export function daqInt16Lut(out: Int16Array, params: DaqActivationParams, bits: number | Int32Array, S: number, postRelu: boolean,
  channels = params.mu.length): Int16Array {
  checkParams(params, channels);
  checkBitsArg(bits, channels);
  check(Number.isFinite(S) && S > 0, "E_RANGE", `LUT scale S = ${S} must be positive and finite`);
  const K = 2 ** daqMaxBits(bits, channels);
  check(out instanceof Int16Array && out.length >= channels * K, "E_SHAPE", `LUT needs an Int16Array of ≥ ${channels}·${K}`);
  for (let c = 0; c < channels; c++) {
    const b = bitsAt(bits, c);
    const Kc = 2 ** b;
    let v = 0;
    for (let k = 0; k < K; k++) {
      if (k < Kc) {
        v = roundHalfEven(daqLevelValue(params.mu[c], params.delta[c], k, b, postRelu) / S);
        if (!(Math.abs(v) <= 32767)) throw new LowbitError("E_RANGE", `LUT value ${v} (channel ${c}, code ${k}) exceeds int16; raise S`);
      }
      out[c * K + k] = v;
    }
  }
  return out;
}

/** Integer form of path A: x̂_c(k) = mu_c + a[c]·g[c·K + k]. */
export interface DaqIntegerCodes {
  /** [C][K] image-independent integers: signed v = 2k − (2^b − 1) (odd), post-ReLU k; padded. */
  g: Int16Array;
  /** Per-channel real step of g: signed Δ_c/2, post-ReLU Δ_c (f32). */
  a: Float32Array;
}

/**
 * Writes the integer decode table g (rows padded with their last value up to K = 2^maxBits)
 * and a_c. Exact: Δ/2 is exact in f32, so mu + a·g equals daqLevelValue up to one f64 rounding.
 */
export function daqIntegerCodes(out: DaqIntegerCodes, params: DaqActivationParams, bits: number | Int32Array, postRelu: boolean,
  channels = params.mu.length): DaqIntegerCodes {
  checkParams(params, channels);
  checkBitsArg(bits, channels);
  const K = 2 ** daqMaxBits(bits, channels);
  check(out.g instanceof Int16Array && out.g.length >= channels * K, "E_SHAPE", `g needs an Int16Array of ≥ ${channels}·${K}`);
  check(out.a instanceof Float32Array && out.a.length >= channels, "E_SHAPE", `a needs a Float32Array of ≥ ${channels}`);
  for (let c = 0; c < channels; c++) {
    const b = bitsAt(bits, c);
    const Kc = 2 ** b;
    for (let k = 0; k < K; k++) {
      const kk = Math.min(k, Kc - 1);
      out.g[c * K + k] = postRelu ? kk : 2 * kk - (Kc - 1);
    }
    out.a[c] = postRelu ? params.delta[c] : params.delta[c] / 2;
  }
  return out;
}

/**
 * TS model of the engine's f32 → code rule (the WASM quantizer's contract), per element:
 *
 *     signed:    k = clamp(⌊fround(fround(x − μ)·invΔ)⌋ + 2^(b−1), 0, 2^b − 1)
 *     post-ReLU: k = clamp(round_half_even(fround(x·invΔ)), 0, 2^b − 1)
 *
 * ⌊t⌋ + 2^(b−1) is the midrise cell index: the reference's round(t + ½) − ½ (cell centre t ∈
 * (n, n+1) → n + ½) equals ⌊t⌋ + ½ except at an exact boundary t = n with n even (torch's
 * half-even sends it one level lower), and invΔ = fround(1/Δ) moves boundaries by ≤ 1 ulp.
 * x NHWC with pixel stride xStride (default channels); out packed [pixels][channels].
 */
export function daqQuantizeCodes(out: Uint8Array, x: Float32Array, pixels: number, channels: number,
  params: { mu: Float32Array; invDelta: Float32Array }, bits: number | Int32Array, postRelu: boolean, xStride = channels): Uint8Array {
  checkInt(pixels, 1, 2 ** 31, "pixels", "E_SHAPE");
  checkInt(channels, 1, 1 << 16, "channels", "E_SHAPE");
  checkInt(xStride, channels, 2 ** 31, "xStride", "E_SHAPE");
  checkBitsArg(bits, channels);
  check(x instanceof Float32Array && x.length >= (pixels - 1) * xStride + channels, "E_SHAPE", "x too short");
  check(out instanceof Uint8Array && out.length >= pixels * channels, "E_SHAPE", "out too short");
  check(params.mu.length >= channels && params.invDelta.length >= channels, "E_SHAPE", "params too short");
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < channels; c++) {
      const b = bitsAt(bits, c);
      const kmax = 2 ** b - 1;
      const v = x[p * xStride + c];
      let k: number;
      if (postRelu) k = roundHalfEven(Math.fround(v * params.invDelta[c]));
      else k = Math.floor(Math.fround(Math.fround(v - params.mu[c]) * params.invDelta[c])) + 2 ** (b - 1);
      out[p * channels + c] = k < 0 ? 0 : k > kmax ? kmax : k; // x must be finite (NaN would store 0)
    }
  }
  return out;
}
