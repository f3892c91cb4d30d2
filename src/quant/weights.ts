/**
 * Weight quantization: per-output-channel symmetric codes for HWIO float32 conv kernels.
 *
 *     w[kh, kw, i, o] ≈ s_w[o] · q[kh, kw, i, o],   q ∈ [−(2^(b−1) − 1), 2^(b−1) − 1]  (narrow)
 *
 * Symmetric (zero point 0) because a weight zero point would add a Σx term per output pixel
 * to every conv; narrow range (int8 → ±127, int4 → ±7, int2 → {−1, 0, 1}) so the grid is
 * symmetric and −128·−128 products cannot occur in pairwise i16 sums. In HWIO the output
 * channel is the fastest axis, so element i belongs to channel i mod cout: the quantizer only
 * needs cout, and the codes keep the kernel's HWIO layout (the conv wrappers re-pack them).
 *
 * Bias: the int32 accumulator of output channel o counts in units of s_x·s_w[o], so
 * b_q[o] = round(b[o] / (s_x·s_w[o])) (half to even). With an asymmetric input
 * (x = s_x·(x_q − z_x)) the zero point folds into the same constant:
 *
 *     y_o = s_x·s_w[o]·(Σ q_w·(x_q − z_x) + b_q[o]) = s_x·s_w[o]·(Σ q_w·x_q + (b_q[o] − z_x·Σ q_w))
 *
 * exact at borders too, since the ABI pads with the zero-point code (real 0).
 */
import { LowbitError, checkInt } from "../runtime/errors.ts";
import {
  MAX_WEIGHT_BITS,
  MIN_WEIGHT_BITS,
  affineParams,
  checkBits,
  quantInvScale,
  quantizeScalar,
  type ChannelQuantParams,
} from "./params.ts";

export interface WeightQuantOptions {
  /** Per-channel clipping: observed max|w| ("minmax", default) or the MSE-optimal clip ("mse"). */
  method?: "minmax" | "mse";
  /** Narrow range (default true): codes in ±(2^(b−1) − 1). false adds the code −2^(b−1). */
  narrowRange?: boolean;
  /** MSE grid: candidate clips max|w|·k/steps, k = 1..steps. Default 200. */
  steps?: number;
}

/** Per-channel quantized kernel: codes in the input's (HWIO) layout + per-output-channel params. */
export interface QuantizedWeights {
  /** One code per weight, same index as the float kernel. */
  codes: Int8Array;
  /** Symmetric: zeroPoint all 0, axis 3 (O of HWIO), one scale per output channel. */
  params: ChannelQuantParams;
  cout: number;
}

function checkKernel(weights: Float32Array, cout: number): void {
  if (!(weights instanceof Float32Array)) throw new LowbitError("E_ARGUMENT", "weights must be a Float32Array");
  checkInt(cout, 1, 1 << 16, "cout", "E_SHAPE");
  if (weights.length === 0 || weights.length % cout !== 0) {
    throw new LowbitError("E_SHAPE", `weights length ${weights.length} is not a positive multiple of cout ${cout}`);
  }
}

/** out[o] = max_i |w[i·cout + o]|. E_RANGE on NaN/Inf. */
export function channelAbsMax(out: Float64Array, weights: Float32Array, cout: number): Float64Array {
  checkKernel(weights, cout);
  if (out.length !== cout) throw new LowbitError("E_SHAPE", `out has ${out.length} elements, need cout = ${cout}`);
  out.fill(0);
  let bad = false;
  for (let i = 0, o = 0; i < weights.length; i++) {
    const a = Math.abs(weights[i]);
    if (a > out[o]) out[o] = a;
    bad ||= !(a < Infinity);
    if (++o === cout) o = 0;
  }
  if (bad) throw new LowbitError("E_RANGE", "weights contain NaN or ±Inf");
  return out;
}

/**
 * MSE-optimal symmetric clip of one channel's weights, exactly over the values (no histogram):
 * for a = A·k/steps (A = max|w|, k = steps..1) the scale is the one affineParams derives, and
 * Σ (w − s·clamp(round(w/s)))² is evaluated in f64 (ties are immaterial to the search).
 * Ties go to the wider clip. Returns A for an all-zero channel.
 */
export function mseWeightClip(values: ArrayLike<number>, bits: number, opts: { narrowRange?: boolean; steps?: number } = {}): number {
  checkBits(bits, "weight bits", MIN_WEIGHT_BITS, MAX_WEIGHT_BITS);
  const steps = opts.steps ?? 200;
  checkInt(steps, 1, 1 << 16, "mse steps");
  const narrow = opts.narrowRange ?? true;
  let A = 0;
  for (let i = 0; i < values.length; i++) A = Math.max(A, Math.abs(values[i]));
  if (A === 0) return 0;
  const qmax = (1 << (bits - 1)) - 1;
  const qmin = narrow ? -qmax : -qmax - 1;
  let best = A, bestErr = Infinity;
  for (let k = steps; k >= 1; k--) {
    const a = (A * k) / steps;
    const s = affineParams(-a, a, bits, { symmetric: true, signed: true, narrowRange: narrow }).scale;
    const inv = 1 / s;
    let e = 0;
    for (let i = 0; i < values.length; i++) {
      const w = values[i];
      let q = Math.round(w * inv);
      if (q > qmax) q = qmax;
      else if (q < qmin) q = qmin;
      const r = w - q * s;
      e += r * r;
      if (e >= bestErr) break;
    }
    if (e < bestErr) (bestErr = e), (best = a);
  }
  return best;
}

/**
 * Per-output-channel symmetric quantization of a kernel whose output channel is the fastest
 * axis (HWIO, or any [..., cout] layout). bits 2..8 (E_BITS), NaN/Inf → E_RANGE.
 * An all-zero channel gets scale 1 and all-zero codes (TFLite convention).
 */
export function quantizeWeights(weights: Float32Array, cout: number, bits: number, opts: WeightQuantOptions = {}): QuantizedWeights {
  checkBits(bits, "weight bits", MIN_WEIGHT_BITS, MAX_WEIGHT_BITS);
  const method = opts.method ?? "minmax";
  if (method !== "minmax" && method !== "mse") throw new LowbitError("E_ARGUMENT", `unknown weight range method '${method}'`);
  const narrow = opts.narrowRange ?? true;
  const amax = channelAbsMax(new Float64Array(cout), weights, cout);
  if (method === "mse") {
    const per = weights.length / cout;
    const buf = new Float64Array(per);
    for (let o = 0; o < cout; o++) {
      for (let j = 0; j < per; j++) buf[j] = weights[j * cout + o];
      amax[o] = mseWeightClip(buf, bits, { narrowRange: narrow, steps: opts.steps });
    }
  }
  const aff = { symmetric: true, signed: true, narrowRange: narrow };
  const scale = new Float32Array(cout);
  let qmin = 0, qmax = 0;
  for (let o = 0; o < cout; o++) {
    const p = affineParams(-amax[o], amax[o], bits, aff);
    scale[o] = p.scale;
    qmin = p.qmin;
    qmax = p.qmax;
  }
  const inv = new Float32Array(cout);
  for (let o = 0; o < cout; o++) inv[o] = quantInvScale(scale[o]);
  const codes = new Int8Array(weights.length);
  for (let i = 0, o = 0; i < weights.length; i++) {
    codes[i] = quantizeScalar(weights[i], inv[o], 0, qmin, qmax);
    if (++o === cout) o = 0;
  }
  return {
    codes,
    params: { bits, signed: true, scale, zeroPoint: new Int32Array(cout), qmin, qmax, axis: 3 },
    cout,
  };
}

/** out[i] = s_w[i mod cout] · codes[i] (f32): the fake-quant weights a float simulation uses. */
export function dequantizeWeights(out: Float32Array, q: QuantizedWeights): Float32Array {
  const { codes, cout } = q;
  const s = q.params.scale, zp = q.params.zeroPoint;
  if (out.length !== codes.length) throw new LowbitError("E_SHAPE", `out has ${out.length} elements, codes ${codes.length}`);
  for (let i = 0, o = 0; i < codes.length; i++) {
    out[i] = Math.fround(codes[i] - zp[o]) * s[o];
    if (++o === cout) o = 0;
  }
  return out;
}

/** quantizeWeights then dequantizeWeights: float weights carrying the quantization error. */
export function fakeQuantizeWeights(weights: Float32Array, cout: number, bits: number, opts: WeightQuantOptions = {}): Float32Array {
  return dequantizeWeights(new Float32Array(weights.length), quantizeWeights(weights, cout, bits, opts));
}




const I32_MAX = 2147483647;



/**
 * Folds an input zero point into the quantized bias: out[o] = biasQ[o] − z_x·Σ_i codes[i·cout + o]
 * (see the file comment). out may alias biasQ. Overflow of int32 → E_RANGE.
 */
export function foldInputZeroPoint(out: Int32Array, biasQ: Int32Array, codes: Int8Array, cout: number, inputZeroPoint: number): Int32Array {
  checkInt(cout, 1, 1 << 16, "cout", "E_SHAPE");
  if (out.length !== cout || biasQ.length !== cout || codes.length % cout !== 0) {
    throw new LowbitError("E_SHAPE", `foldInputZeroPoint: out ${out.length}, bias ${biasQ.length}, codes ${codes.length} do not fit cout ${cout}`);
  }
  checkInt(inputZeroPoint, -(1 << 16), 1 << 16, "input zero point", "E_RANGE");
  const sums = new Float64Array(cout);
  for (let i = 0, o = 0; i < codes.length; i++) {
    sums[o] += codes[i];
    if (++o === cout) o = 0;
  }
  for (let o = 0; o < cout; o++) {
    const v = biasQ[o] - inputZeroPoint * sums[o];
    if (Math.abs(v) > I32_MAX) throw new LowbitError("E_RANGE", `channel ${o}: bias with folded zero point (${v}) does not fit int32`);
    out[o] = v;
  }
  return out;
}

// The int4 storage format and bias quantization live with the kernels that consume them.
export { int4PackedBytes, packInt4, unpackInt4, quantizeBias } from "../kernels/requant.ts";
