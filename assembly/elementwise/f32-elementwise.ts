// f32 elementwise kernels: add (y = a + β·b), scale (y = β·x), clamp, the Keras
// activations, and the 8-bit clamp. NHWC with pixel strides in elements; when
// every stride equals c the tensor is one contiguous run.
//
// Arithmetic: add/scale/clamp and the piecewise-linear activations (linear,
// relu, relu6, leaky_relu, hard_sigmoid, softsign) are SIMD and bit-identical
// to their TS references (each step one correctly rounded f32 op; min/max
// propagate NaN like Math.min/max; no FMA in either build). The transcendental
// activations (elu, selu, sigmoid, tanh, softplus, swish, exponential) run a
// scalar loop over AssemblyScript's Mathf (musl-derived single-precision
// exp/expm1/log1p/tanh, ≤ 1 ulp each); they agree with the f64 references
// rounded to f32 within a few ulp (bound asserted in the tests).
import { copyBytes } from "./common";

// Activation codes: ActivationKind of src/graph/ir.ts in declaration order
// (ACTIVATION_CODES in src/kernels/f32-elementwise.ts).
const ACT_LINEAR = 0;
const ACT_RELU = 1;
const ACT_RELU6 = 2;
const ACT_LEAKY_RELU = 3;
const ACT_ELU = 4;
const ACT_SELU = 5;
const ACT_SIGMOID = 6;
const ACT_HARD_SIGMOID = 7;
const ACT_TANH = 8;
const ACT_SOFTPLUS = 9;
const ACT_SOFTSIGN = 10;
const ACT_SWISH = 11;
const ACT_EXPONENTIAL = 12;

// SELU constants (Klambauer et al. 2017, as in Keras), rounded to f32.
const SELU_ALPHA: f32 = 1.6732632423543772;
const SELU_SCALE: f32 = 1.0507009873554805;
// tfjs-layers hardSigmoid: clip(0.2·x + 0.5, 0, 1) (the @upscalerjs models are tfjs layers models;
// Keras 3 changed it to relu6(x + 3)/6).
const HS_SLOPE: f32 = 0.2;

/** y = a + β·b (β = 1: a plain residual add; covers MultiplyBeta + Add fused). */
export function f32_add_nhwc(a: usize, b: usize, n: i32, c: i32, aStride: i32, bStride: i32, y: usize, yStride: i32, beta: f32): void {
  let runs = n, len = c;
  if (aStride == c && bStride == c && yStride == c) { runs = 1; len = n * c; }
  const vb = f32x4.splat(beta);
  const end = <usize>len << 2;
  for (let p = 0; p < runs; p++) {
    const ap = a + <usize>p * (<usize>aStride << 2), bp = b + <usize>p * (<usize>bStride << 2), yp = y + <usize>p * (<usize>yStride << 2);
    let i: usize = 0;
    for (; i + 32 <= end; i += 32) {
      v128.store(yp + i, f32x4.add(v128.load(ap + i), f32x4.mul(vb, v128.load(bp + i))));
      v128.store(yp + i, f32x4.add(v128.load(ap + i, 16), f32x4.mul(vb, v128.load(bp + i, 16))), 16);
    }
    for (; i < end; i += 4) store<f32>(yp + i, load<f32>(ap + i) + beta * load<f32>(bp + i));
  }
}

/** y = β·x. */
export function f32_scale_nhwc(x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32, beta: f32): void {
  let runs = n, len = c;
  if (xStride == c && yStride == c) { runs = 1; len = n * c; }
  const vb = f32x4.splat(beta);
  const end = <usize>len << 2;
  for (let p = 0; p < runs; p++) {
    const xp = x + <usize>p * (<usize>xStride << 2), yp = y + <usize>p * (<usize>yStride << 2);
    let i: usize = 0;
    for (; i + 32 <= end; i += 32) {
      v128.store(yp + i, f32x4.mul(vb, v128.load(xp + i)));
      v128.store(yp + i, f32x4.mul(vb, v128.load(xp + i, 16)), 16);
    }
    for (; i < end; i += 4) store<f32>(yp + i, beta * load<f32>(xp + i));
  }
}

/** y = min(max(x, lo), hi) (NaN propagates, as Math.min/max). */
export function f32_clamp_nhwc(x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32, lo: f32, hi: f32): void {
  let runs = n, len = c;
  if (xStride == c && yStride == c) { runs = 1; len = n * c; }
  const vlo = f32x4.splat(lo), vhi = f32x4.splat(hi);
  const end = <usize>len << 2;
  for (let p = 0; p < runs; p++) {
    const xp = x + <usize>p * (<usize>xStride << 2), yp = y + <usize>p * (<usize>yStride << 2);
    let i: usize = 0;
    for (; i + 32 <= end; i += 32) {
      v128.store(yp + i, f32x4.min(f32x4.max(v128.load(xp + i), vlo), vhi));
      v128.store(yp + i, f32x4.min(f32x4.max(v128.load(xp + i, 16), vlo), vhi), 16);
    }
    for (; i < end; i += 4) store<f32>(yp + i, min<f32>(max<f32>(load<f32>(xp + i), lo), hi));
  }
}

/**
 * 8-bit clamp: y = min(max(x, lo), hi) on codes (signed != 0: i8, else u8).
 * u8 runs through the i8 min/max via the xor-0x80 mirror (order-preserving).
 */
export function q8_clamp_nhwc(x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32, lo: i32, hi: i32, signed: i32): void {
  let runs = n, len = c;
  if (xStride == c && yStride == c) { runs = 1; len = n * c; }
  const flip = signed ? 0 : 0x80;
  const vf = i8x16.splat(<i8>flip), vlo = i8x16.splat(<i8>(lo - flip)), vhi = i8x16.splat(<i8>(hi - flip));
  for (let p = 0; p < runs; p++) {
    const xp = x + <usize>p * <usize>xStride, yp = y + <usize>p * <usize>yStride;
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const v = v128.xor(v128.load(xp + i), vf);
      v128.store(yp + i, v128.xor(i8x16.min_s(i8x16.max_s(v, vlo), vhi), vf));
    }
    for (; i < len; i++) {
      const v = signed ? <i32>load<i8>(xp + i) : <i32>load<u8>(xp + i);
      store<u8>(yp + i, <u8>(v < lo ? lo : v > hi ? hi : v));
    }
  }
}

/** One element of activation `kind` (the scalar path and the SIMD tails). */
@inline function actScalar(kind: i32, alpha: f32, v: f32): f32 {
  switch (kind) {
    case ACT_RELU: return max<f32>(v, 0);
    case ACT_RELU6: return min<f32>(max<f32>(v, 0), 6);
    case ACT_LEAKY_RELU: return v < 0 ? alpha * v : v;
    case ACT_ELU: return v > 0 ? v : alpha * Mathf.expm1(v);
    case ACT_SELU: return SELU_SCALE * (v > 0 ? v : SELU_ALPHA * Mathf.expm1(v));
    case ACT_SIGMOID: return <f32>1 / (<f32>1 + Mathf.exp(-v));
    case ACT_HARD_SIGMOID: return min<f32>(max<f32>(HS_SLOPE * v + <f32>0.5, 0), 1);
    case ACT_TANH: return Mathf.tanh(v);
    // log(1 + e^v) = max(v, 0) + log1p(e^-|v|): no overflow, no cancellation.
    case ACT_SOFTPLUS: return max<f32>(v, 0) + Mathf.log1p(Mathf.exp(-Mathf.abs(v)));
    case ACT_SOFTSIGN: return v / (<f32>1 + Mathf.abs(v));
    // v·σ(v). Below −88, e^−v overflows f32 and v/∞ would give −0 although |swish| stays a normal f32 down
    // to ≈ −89.7; there 1 + e^v rounds to 1, so swish = v·e^v (e^v subnormal: absolute error < 1e−43).
    case ACT_SWISH: return v < -88 ? v * Mathf.exp(v) : v / (<f32>1 + Mathf.exp(-v));
    case ACT_EXPONENTIAL: return Mathf.exp(v);
    default: return v;
  }
}

@inline function actVec(kind: i32, v: v128, va: v128): v128 {
  const zero = f32x4.splat(0), one = f32x4.splat(1);
  switch (kind) {
    case ACT_RELU: return f32x4.max(v, zero);
    case ACT_RELU6: return f32x4.min(f32x4.max(v, zero), f32x4.splat(6));
    case ACT_LEAKY_RELU: return v128.bitselect(f32x4.mul(va, v), v, f32x4.lt(v, zero));
    case ACT_HARD_SIGMOID: return f32x4.min(f32x4.max(f32x4.add(f32x4.mul(f32x4.splat(HS_SLOPE), v), f32x4.splat(0.5)), zero), one);
    case ACT_SOFTSIGN: return f32x4.div(v, f32x4.add(one, f32x4.abs(v)));
    default: return v;
  }
}

// Each call site passes a constant kind, so the switches inside fold away and
// every activation gets its own straight loop.
@inline function actRunVec(kind: i32, xp: usize, yp: usize, end: usize, alpha: f32): void {
  const va = f32x4.splat(alpha);
  let i: usize = 0;
  for (; i + 32 <= end; i += 32) {
    v128.store(yp + i, actVec(kind, v128.load(xp + i), va));
    v128.store(yp + i, actVec(kind, v128.load(xp + i, 16), va), 16);
  }
  for (; i < end; i += 4) store<f32>(yp + i, actScalar(kind, alpha, load<f32>(xp + i)));
}

@inline function actRunScalar(kind: i32, xp: usize, yp: usize, end: usize, alpha: f32): void {
  for (let i: usize = 0; i < end; i += 4) store<f32>(yp + i, actScalar(kind, alpha, load<f32>(xp + i)));
}

/**
 * y = act(x), act = `kind` (codes: ActivationKind order, linear = 0 … exponential = 12);
 * alpha: leaky_relu slope / elu alpha (ignored otherwise). In place (x == y) is allowed.
 */
export function f32_activation_nhwc(x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32, kind: i32, alpha: f32): void {
  let runs = n, len = c;
  if (xStride == c && yStride == c) { runs = 1; len = n * c; }
  const end = <usize>len << 2;
  for (let p = 0; p < runs; p++) {
    const xp = x + <usize>p * (<usize>xStride << 2), yp = y + <usize>p * (<usize>yStride << 2);
    switch (kind) {
      case ACT_LINEAR: if (xp != yp) copyBytes(yp, xp, end); break;
      case ACT_RELU: actRunVec(ACT_RELU, xp, yp, end, alpha); break;
      case ACT_RELU6: actRunVec(ACT_RELU6, xp, yp, end, alpha); break;
      case ACT_LEAKY_RELU: actRunVec(ACT_LEAKY_RELU, xp, yp, end, alpha); break;
      case ACT_HARD_SIGMOID: actRunVec(ACT_HARD_SIGMOID, xp, yp, end, alpha); break;
      case ACT_SOFTSIGN: actRunVec(ACT_SOFTSIGN, xp, yp, end, alpha); break;
      case ACT_ELU: actRunScalar(ACT_ELU, xp, yp, end, alpha); break;
      case ACT_SELU: actRunScalar(ACT_SELU, xp, yp, end, alpha); break;
      case ACT_SIGMOID: actRunScalar(ACT_SIGMOID, xp, yp, end, alpha); break;
      case ACT_TANH: actRunScalar(ACT_TANH, xp, yp, end, alpha); break;
      case ACT_SOFTPLUS: actRunScalar(ACT_SOFTPLUS, xp, yp, end, alpha); break;
      case ACT_SWISH: actRunScalar(ACT_SWISH, xp, yp, end, alpha); break;
      case ACT_EXPONENTIAL: actRunScalar(ACT_EXPONENTIAL, xp, yp, end, alpha); break;
      default: break;
    }
  }
}
