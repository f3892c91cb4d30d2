/**
 * f64 oracle of the released DAQ activation quantizer (DAQ-pytorch `Quantization.forward`,
 * spec daq.md §3) on one NHWC image (batch 1). The engine is tested against this.
 *
 * Ported op by op, in f64, with torch.round's half-to-even rounding:
 *
 *   signed:    x_c = x − μ; y = (round(x_c/step + ½) − ½)·step·[step > 0];
 *              y = max(min(y, thr), −thr); x̂ = y + μ
 *   post-ReLU: x_c = x − thr; y = (round(x_c/step + ½) − ½)·step·[step > 0]; x̂ = y + thr
 *              (no clamp: the code's clamps are commented out; algebraically x̂ = round'(x/Δ)·Δ)
 *
 * with step = G[b−1]·σ', thr = (2^b/2 − ½)·step, and the code's `step == 0 → −1` trick folded
 * into the [step > 0] mask (so σ' = 0 → x̂ = μ / 0; σ' < 0 → μ + |thr| / thr).
 *
 * Deviations from the code, all on inputs where torch yields NaN: H·W = 1 → σ = 0 (torch's
 * unbiased std is NaN); C = 1 with σ quantization → d_σ = 0; a negative post-ReLU radicand is
 * clamped at 0. Statistics: f64 sums (the code's are f32 on the GPU); std is two-pass.
 *
 * Note on ties (post-ReLU): the code rounds x/Δ − (2^(b−1) − 1) half to even; for b ≥ 2 that
 * shift is odd, so an exact tie x/Δ = n + ½ goes *up* when n is even — the opposite of
 * round_half_even(x/Δ). Measure-zero in real data, reproduced here as coded.
 *
 * `int` mode: σ' clamped at 0, and post-ReLU codes clamped to [0, 2^b − 1].
 */
import { check, checkInt } from "../../runtime/errors.ts";
import { type DaqStepTable, checkStepTable, daqStepMultiplier, roundHalfEven } from "./step-table.ts";
import { bitsAt, checkBitsArg, checkQq, daqQuantizeSigma } from "./activation.ts";

export interface DaqReferenceOptions {
  /** 1..8, or per channel (mixed precision). */
  bits: number | Int32Array;
  /** σ codebook bits 1..8, or 32 = off. */
  qq: number;
  mode: "reference" | "int";
  /** Branch: static, or "auto" = the code's rule min(x) == 0. */
  postRelu: boolean | "auto";
  stepTable?: DaqStepTable;
  finetune?: boolean;
}

/** Optional per-channel side outputs of the oracle (caller-allocated, length ≥ channels / pixels·channels). */
export interface DaqReferenceInfo {
  /** Statistic μ_c (signed: mean; post-ReLU: Σx/n_c). */
  mean?: Float64Array;
  /** σ_c before σ quantization. */
  sigma?: Float64Array;
  /** σ'_c after σ quantization (before the int-mode clamp). */
  sigmaQ?: Float64Array;
  /** step G·σ' used (after the int-mode clamp; may be ≤ 0 in reference mode). */
  step?: Float64Array;
  /**
   * Code per element, packed [pixels][channels]: signed k = r + 2^(b−1) − 1 clamped to
   * [0, 2^b − 1]; post-ReLU k = r + 2^(b−1) − 1 (unclamped in reference mode), r the rounded
   * value. Constant channels (step ≤ 0): signed 2^(b−1), post-ReLU 0 (what the code rule
   * gives with invΔ = 0).
   */
  codes?: Int32Array;
  /** The branch taken. */
  postRelu?: boolean;
}

/**
 * out[p·C + c] = x̂ for x NHWC (pixel stride xStride, default C), one image. Returns the branch
 * taken (true = post-ReLU). out may be f32 or f64 (f64 keeps the oracle's own rounding).
 */
export function daqQuantizeReference(out: Float32Array | Float64Array, x: ArrayLike<number>, pixels: number, channels: number,
  opts: DaqReferenceOptions, info?: DaqReferenceInfo, xStride = channels): boolean {
  checkInt(pixels, 1, 2 ** 31, "pixels", "E_SHAPE");
  checkInt(channels, 1, 1 << 16, "channels", "E_SHAPE");
  checkInt(xStride, channels, 2 ** 31, "xStride", "E_SHAPE");
  check(x !== null && typeof x === "object" && x.length >= (pixels - 1) * xStride + channels, "E_SHAPE", "x too short");
  check((out instanceof Float32Array || out instanceof Float64Array) && out.length >= pixels * channels, "E_SHAPE", "out too short");
  checkBitsArg(opts.bits, channels);
  checkQq(opts.qq);
  check(opts.mode === "reference" || opts.mode === "int", "E_ARGUMENT", `mode must be 'reference' or 'int'`);
  check(typeof opts.postRelu === "boolean" || opts.postRelu === "auto", "E_ARGUMENT", "postRelu must be a boolean or 'auto'");
  const table = opts.stepTable ?? "code";
  checkStepTable(table);
  const finetune = opts.finetune ?? false;
  const C = channels, N = pixels;
  if (info?.codes) check(info.codes.length >= N * C, "E_SHAPE", "info.codes too short");

  let min = Infinity;
  for (let p = 0; p < N; p++) {
    for (let c = 0; c < C; c++) {
      const v = x[p * xStride + c];
      check(Number.isFinite(v), "E_RANGE", () => `x[${p * xStride + c}] = ${v} is not finite`);
      if (v < min) min = v;
    }
  }
  const postRelu = opts.postRelu === "auto" ? min === 0 : opts.postRelu;

  const mean = new Float64Array(C), sigma = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    if (postRelu) {
      let s2 = 0, n = 1;
      for (let p = 0; p < N; p++) {
        const v = x[p * xStride + c];
        s += v;
        s2 += v * v;
        if (v > 0) n++;
      }
      const mu = s / n;
      mean[c] = mu;
      sigma[c] = Math.sqrt(Math.max(0, s2 / n - mu * mu));
    } else {
      for (let p = 0; p < N; p++) s += x[p * xStride + c];
      const mu = s / N;
      let v2 = 0;
      for (let p = 0; p < N; p++) {
        const d = x[p * xStride + c] - mu;
        v2 += d * d;
      }
      mean[c] = mu;
      sigma[c] = N > 1 ? Math.sqrt(v2 / (N - 1)) : 0;
    }
  }
  if (info?.sigma) info.sigma.set(sigma.subarray(0, C));
  if (info?.mean) info.mean.set(mean.subarray(0, C));
  daqQuantizeSigma(sigma, C, opts.qq, table, finetune);
  if (info?.sigmaQ) info.sigmaQ.set(sigma.subarray(0, C));

  for (let c = 0; c < C; c++) {
    const b = bitsAt(opts.bits, c);
    const K = 2 ** b, lvls = K / 2;
    const s = opts.mode === "int" ? Math.max(sigma[c], 0) : sigma[c];
    const step = daqStepMultiplier(b, table, finetune) * s;
    const thr = (lvls - 0.5) * step;
    if (info?.step) info.step[c] = step;
    const mu = mean[c];
    for (let p = 0; p < N; p++) {
      const v = x[p * xStride + c];
      let xq: number, k: number;
      if (!postRelu) {
        let y = 0;
        k = lvls;
        if (step > 0) {
          const r = roundHalfEven((v - mu) / step + 0.5);
          y = (r - 0.5) * step;
          k = Math.min(Math.max(r + lvls - 1, 0), K - 1);
        }
        y = Math.max(Math.min(y, thr), -thr);
        xq = y + mu;
      } else {
        let y = 0;
        k = 0;
        if (step > 0) {
          let r = roundHalfEven((v - thr) / step + 0.5);
          if (opts.mode === "int") r = Math.min(Math.max(r, 1 - lvls), K - lvls); // k = r + lvls − 1 ∈ [0, K − 1]
          y = (r - 0.5) * step;
          k = r + lvls - 1;
        }
        xq = y + thr;
      }
      out[p * C + c] = xq;
      if (info?.codes) info.codes[p * C + c] = k;
    }
  }
  if (info) info.postRelu = postRelu;
  return postRelu;
}
