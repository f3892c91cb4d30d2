/**
 * Quantization parameters and their arithmetic (gemmlowp / TFLite conventions).
 *
 * A b-bit affine quantizer maps a real value r to an integer code q:
 *
 *     r = scale · (q − zeroPoint),      q ∈ [qmin, qmax]
 *
 * with qmin/qmax = 0 / 2^b − 1 (unsigned codes) or −2^(b−1) / 2^(b−1) − 1 (signed codes).
 * Two properties every lowbit kernel relies on:
 *
 * 1. **Real 0 is exactly representable**: zeroPoint is an integer in [qmin, qmax]. The ABI pads
 *    convs with the zero-point code and expects padding to mean the real value 0 (and ReLU to be
 *    `qmin = zeroPoint`), so any error in 0 would be a systematic bias on every border pixel.
 * 2. **scale is an f32**: kernels hold scales as f32 (one per output channel in the requant
 *    multiplier s_in·s_w[o]/s_out), so we round the scale to f32 once here and every later
 *    computation (zero-point, range, fake-quant) uses that same f32 value.
 *
 * quantize/dequantize follow assembly/ABI.md: f32 arithmetic with `Math.fround` at every step,
 * clamp in f32, round half to even with the magic number 1.5·2^23 — bit-identical to a WASM
 * `f32x4` implementation.
 */
import { LowbitError, checkInt } from "../runtime/errors.ts";

/** Supported bit-widths (inclusive). Activations and weights share the same 2..8 range. */
export const MIN_ACT_BITS = 2;
export const MAX_ACT_BITS = 8;
export const MIN_WEIGHT_BITS = 2;
export const MAX_WEIGHT_BITS = 8;
/** The one grid wider than 8 bits: the 16-bit residual stream (QuantConfig.residualBits). */
export const RESIDUAL_BITS = 16;

/**
 * Smallest scale affineParams produces for a non-empty range: 2^−32. A range narrower than
 * (qmax − qmin)·2^−32 gets this step (its values then round to a few codes around the zero
 * point). The floor keeps 1/scale, s_in·s_w and requant multipliers finite normal f32 numbers.
 */
export const MIN_SCALE = 2 ** -32;

/** Largest |value| accepted as a range end (f32 max): anything larger is not representable. */
const F32_MAX = 3.4028234663852886e38;

/** f32 magic number 1.5·2^23: for |t| < 2^22, fround(fround(t + M) − M) = t rounded half to even. */
export const MAGIC = 12582912;

/** Per-tensor affine quantization parameters. */
export interface QuantParams {
  bits: number;
  /** Codes stored as signed (int8 container) or unsigned (uint8 container) integers. */
  signed: boolean;
  /** Step size, an f32 value > 0. */
  scale: number;
  /** Integer code of the real value 0, in [qmin, qmax]. */
  zeroPoint: number;
  qmin: number;
  qmax: number;
}

/** Per-channel affine parameters: channel c along `axis` uses scale[c], zeroPoint[c]. */
export interface ChannelQuantParams {
  bits: number;
  signed: boolean;
  scale: Float32Array;
  zeroPoint: Int32Array;
  qmin: number;
  qmax: number;
  /** Tensor axis the channels run along (3 = O of an HWIO kernel, 3 = C of NHWC activations). */
  axis: number;
}

export interface AffineOptions {
  /**
   * Symmetric quantizer: range [−a, a] with a = max(|min|, |max|); zeroPoint = 0 (signed codes)
   * or 2^(b−1) (unsigned codes, "mid"). Default false (asymmetric).
   */
  symmetric?: boolean;
  /** Signed codes. Default: true when symmetric, false otherwise. */
  signed?: boolean;
  /**
   * Narrow range: drop the most negative code (int8 → [−127, 127], uint8-mid → [1, 255]) so the
   * grid is symmetric around the zero point. Default: true when symmetric, false otherwise
   * (TFLite's weight/activation conventions). Meaningful only for symmetric quantizers.
   */
  narrowRange?: boolean;
}

/** The code range [qmin, qmax] for the given bits / signedness / narrow range. */
export function codeRange(bits: number, signed: boolean, narrowRange = false): [number, number] {
  checkGridBits(bits);
  const half = 1 << (bits - 1);
  if (signed) return [narrowRange ? -half + 1 : -half, half - 1];
  return [narrowRange ? 1 : 0, 2 * half - 1];
}

/** Throws E_BITS unless bits is an integer in [lo, hi] (default 2..8). */
export function checkBits(bits: number, what = "bits", lo = MIN_ACT_BITS, hi = MAX_ACT_BITS): void {
  checkInt(bits, lo, hi, what, "E_BITS");
}

/** Bits of a code grid: 2..8, or 16 (the residual stream). E_BITS otherwise. */
function checkGridBits(bits: number): void {
  if (bits !== RESIDUAL_BITS) checkBits(bits, "bits (2..8 or 16)");
}

function checkRangeEnd(v: number, what: string): void {
  if (typeof v !== "number" || !Number.isFinite(v) || Math.abs(v) > F32_MAX) {
    throw new LowbitError("E_RANGE", `${what} must be a finite f32 value, got ${v}`);
  }
}

/**
 * Chooses (scale, zeroPoint) for a real range [min, max] at `bits` bits.
 *
 * Derivation (gemmlowp `ChooseQuantizationParams`, TFLite `GetAsymmetricQuantizationParams`):
 *
 * - Widen: min ← min(min, 0), max ← max(max, 0). A quantized tensor must represent 0 exactly
 *   (padding, ReLU), and a range that excludes 0 could not place an integer zero point inside
 *   [qmin, qmax].
 * - Asymmetric: scale = f32((max − min)/(qmax − qmin)). The real-valued zero point is
 *   z = qmin − min/scale (equivalently qmax − max/scale; gemmlowp picks whichever of the two has
 *   the smaller floating-point error term |q| + |r/scale|). z is then **nudged**: rounded to the
 *   nearest integer (ties away from zero, std::round) and clamped to [qmin, qmax]. Keeping the
 *   scale and moving the zero point shifts the represented range [(qmin−z)s, (qmax−z)s] by less
 *   than s/2 relative to [min, max] — the same nudge as TFLite's FakeQuant `Nudge()`. Neither
 *   end moves by more than s/2, so at most half a step of clipping is introduced at one end.
 * - Symmetric: a = max(|min|, |max|); scale = f32(a / qpos) with qpos = 2^(b−1) − 1 codes on
 *   the positive side; zeroPoint = 0 (signed) or 2^(b−1) (unsigned). The range is
 *   [−a, a] (narrow) or [−a − s, a] (full: one extra code on the negative side).
 * - Degenerate ranges: min = max = 0 (an all-zero tensor or channel) → scale = 1, zeroPoint =
 *   the code nearest 0 (0 if signed, qmin if unsigned asymmetric, mid if symmetric), as TFLite
 *   does for all-zero channels; a benign scale keeps bias scales s_x·s_w finite. A non-zero but
 *   tiny range gets scale max(f32(range/levels), MIN_SCALE).
 *
 * Throws E_RANGE on NaN/±Inf (or |v| > f32 max), E_ARGUMENT when min > max, E_BITS when bits is
 * not an integer in 2..8.
 */
export function affineParams(min: number, max: number, bits: number, opts: AffineOptions = {}): QuantParams {
  checkGridBits(bits);
  checkRangeEnd(min, "range min");
  checkRangeEnd(max, "range max");
  if (min > max) throw new LowbitError("E_ARGUMENT", `range min ${min} > max ${max}`);
  const symmetric = opts.symmetric ?? false;
  const signed = opts.signed ?? symmetric;
  const narrow = symmetric ? (opts.narrowRange ?? true) : (opts.narrowRange ?? false);
  const [qmin, qmax] = codeRange(bits, signed, narrow);
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);

  if (symmetric) {
    const zeroPoint = signed ? 0 : 1 << (bits - 1);
    const qpos = (1 << (bits - 1)) - 1;
    const a = Math.max(-lo, hi);
    const scale = a === 0 ? 1 : Math.max(Math.fround(a / qpos), MIN_SCALE);
    return { bits, signed, scale, zeroPoint, qmin, qmax };
  }

  if (lo === hi) {
    // Both 0: any scale represents the tensor exactly; take the code nearest to 0.
    return { bits, signed, scale: 1, zeroPoint: Math.min(Math.max(0, qmin), qmax), qmin, qmax };
  }
  const levels = qmax - qmin;
  const scale = Math.max(Math.fround((hi - lo) / levels), MIN_SCALE);
  const zFromMin = qmin - lo / scale;
  const zFromMax = qmax - hi / scale;
  const errMin = Math.abs(qmin) + Math.abs(lo / scale);
  const errMax = Math.abs(qmax) + Math.abs(hi / scale);
  const z = errMin < errMax ? zFromMin : zFromMax;
  // std::round: ties away from zero.
  const zr = z < 0 ? -Math.round(-z) : Math.round(z);
  const zeroPoint = Math.min(Math.max(zr, qmin), qmax);
  return { bits, signed, scale, zeroPoint, qmin, qmax };
}

/**
 * Per-channel affineParams: channel c gets affineParams(mins[c], maxs[c], bits, opts).
 * mins/maxs must have equal length ≥ 1 (E_SHAPE otherwise).
 */
export function affineParamsPerChannel(
  mins: ArrayLike<number>,
  maxs: ArrayLike<number>,
  bits: number,
  opts: AffineOptions = {},
  axis = 3,
): ChannelQuantParams {
  if (mins.length !== maxs.length || mins.length < 1) {
    throw new LowbitError("E_SHAPE", `per-channel ranges need equal non-empty min/max arrays, got ${mins.length} and ${maxs.length}`);
  }
  checkInt(axis, 0, 3, "axis");
  const n = mins.length;
  const scale = new Float32Array(n);
  const zeroPoint = new Int32Array(n);
  let p: QuantParams | undefined;
  for (let c = 0; c < n; c++) {
    try {
      p = affineParams(mins[c], maxs[c], bits, opts);
    } catch (e) {
      if (e instanceof LowbitError) throw new LowbitError(e.code, `channel ${c}: ${e.message}`, { cause: e });
      throw e;
    }
    scale[c] = p.scale;
    zeroPoint[c] = p.zeroPoint;
  }
  return { bits, signed: p!.signed, scale, zeroPoint, qmin: p!.qmin, qmax: p!.qmax, axis };
}

/** Real range [(qmin − zp)·s, (qmax − zp)·s] the parameters represent (f32 arithmetic). */
export function representableRange(p: QuantParams): [number, number] {
  return [Math.fround((p.qmin - p.zeroPoint) * p.scale), Math.fround((p.qmax - p.zeroPoint) * p.scale)];
}

export { roundHalfEven } from "../kernels/requant.ts";

/**
 * One f32 quantization step, exactly as the ABI's kernels compute it:
 *
 *     t = f32(f32(x) · f32(1/scale))                       (XNNPACK: multiply by the inverse scale)
 *     t = clamp(t, qmin − zp, qmax − zp)                    (in f32; values are small integers)
 *     q = f32(f32(t + 1.5·2^23) − 1.5·2^23) + zp            (round half to even; |t| ≤ 2^8 ≪ 2^22)
 *
 * Clamping before rounding keeps the magic-number trick valid for any input. NaN maps to the
 * zero point (the code of real 0). `invScale` must be f32(1/scale) — see quantInvScale.
 */
export function quantizeScalar(x: number, invScale: number, zeroPoint: number, qmin: number, qmax: number): number {
  let t = Math.fround(Math.fround(x) * invScale);
  if (t !== t) return zeroPoint;
  const lo = qmin - zeroPoint;
  const hi = qmax - zeroPoint;
  if (t < lo) t = lo;
  else if (t > hi) t = hi;
  return Math.fround(Math.fround(t + MAGIC) - MAGIC) + zeroPoint;
}

/** f32(1/scale), the multiplier quantize uses. */
export function quantInvScale(scale: number): number {
  return Math.fround(1 / Math.fround(scale));
}

/** Code of x under p (f32 ABI arithmetic; NaN → zeroPoint). */
export function quantize(x: number, p: QuantParams): number {
  return quantizeScalar(x, quantInvScale(p.scale), p.zeroPoint, p.qmin, p.qmax);
}

/** Real value of code q under p: f32(f32(q − zp) · scale). */
export function dequantize(q: number, p: QuantParams): number {
  return Math.fround(Math.fround(q - p.zeroPoint) * Math.fround(p.scale));
}

/** dequantize(quantize(x)): the value a quantized pipeline sees instead of x. */
export function fakeQuantize(x: number, p: QuantParams): number {
  return dequantize(quantize(x, p), p);
}

type CodeArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array;

/** out[i] = quantize(x[i], p). out must have x.length elements and a container that holds [qmin, qmax]. */
export function quantizeArray<T extends CodeArray>(out: T, x: ArrayLike<number>, p: QuantParams): T {
  if (out.length !== x.length) throw new LowbitError("E_SHAPE", `quantizeArray: out has ${out.length} elements, x has ${x.length}`);
  const inv = quantInvScale(p.scale);
  const zp = p.zeroPoint, lo = p.qmin, hi = p.qmax;
  for (let i = 0; i < x.length; i++) out[i] = quantizeScalar(x[i], inv, zp, lo, hi);
  return out;
}

/** out[i] = dequantize(q[i], p). */
export function dequantizeArray(out: Float32Array, q: ArrayLike<number>, p: QuantParams): Float32Array {
  if (out.length !== q.length) throw new LowbitError("E_SHAPE", `dequantizeArray: out has ${out.length} elements, q has ${q.length}`);
  const s = Math.fround(p.scale), zp = p.zeroPoint;
  for (let i = 0; i < q.length; i++) out[i] = Math.fround(q[i] - zp) * s;
  return out;
}

/** out[i] = fakeQuantize(x[i], p); out may alias x. */
export function fakeQuantizeArray(out: Float32Array, x: ArrayLike<number>, p: QuantParams): Float32Array {
  if (out.length !== x.length) throw new LowbitError("E_SHAPE", `fakeQuantizeArray: out has ${out.length} elements, x has ${x.length}`);
  const inv = quantInvScale(p.scale);
  const s = Math.fround(p.scale), zp = p.zeroPoint, lo = p.qmin, hi = p.qmax;
  for (let i = 0; i < x.length; i++) out[i] = Math.fround(quantizeScalar(x[i], inv, zp, lo, hi) - zp) * s;
  return out;
}

/** The per-tensor parameters of channel c of a per-channel set. */
export function channelParams(p: ChannelQuantParams, c: number): QuantParams {
  checkInt(c, 0, p.scale.length - 1, "channel");
  return { bits: p.bits, signed: p.signed, scale: p.scale[c], zeroPoint: p.zeroPoint[c], qmin: p.qmin, qmax: p.qmax };
}
