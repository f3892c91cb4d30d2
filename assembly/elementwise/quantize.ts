// f32 ⇄ 8-bit code conversion, per tensor and per channel, NHWC with pixel strides.
//
// Quantize (the ABI requantization sequence applied to a float):
//   v = f32(x · invScale)                       one f32 multiply (invScale = fround(1/scale),
//                                               computed once by the wrapper, as XNNPACK does)
//   v = clamp(v, qmin - zp, qmax - zp)          in f32; NaN → qmin - zp (pmax semantics)
//   q = roundHalfEven(v) + zp                   magic number 1.5·2^23
// Clamping before rounding is the same as after (the bounds are integers and
// rounding is monotonic) and keeps |v| < 2^22 for the magic trick. Any bit-width
// 2..8 is just its [qmin, qmax]. The code is stored as its low byte (u8 or i8).
//
// Dequantize: y = f32(q - zp) · scale — q - zp is an exact small integer, so
// the result is the correctly rounded product, identical to Math.fround in TS.
import { MAGIC, MAGIC_BITS, outBias, inFlip, loadCode, clampF, roundMagic, packRound16, widen0, widen1, widen2, widen3 } from "./common";

/**
 * Per-tensor quantize. x: f32 [n pixels × c] with pixel stride xStride (elements);
 * y: 8-bit codes, pixel stride yStride (bytes). qmin/qmax: a u8 (0..255) or i8
 * (-128..127) sub-range; zp inside it.
 */
export function f32_q8_quantize_nhwc(
  x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32,
  invScale: f32, zp: i32, qmin: i32, qmax: i32
): void {
  let runs = n, len = c;
  if (xStride == c && yStride == c) { runs = 1; len = n * c; }
  const bias = outBias(qmin);
  const lo = <f32>(qmin - zp), hi = <f32>(qmax - zp);
  const sub = MAGIC_BITS - zp + bias;
  const vs = f32x4.splat(invScale), vlo = f32x4.splat(lo), vhi = f32x4.splat(hi);
  const vmagic = f32x4.splat(MAGIC), vsub = i32x4.splat(sub), vflip = i8x16.splat(<i8>(bias));
  for (let p = 0; p < runs; p++) {
    const xp = x + (<usize>p * <usize>xStride << 2);
    const yp = y + <usize>p * <usize>yStride;
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const a = xp + (<usize>i << 2);
      const v0 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(v128.load(a), vs)));
      const v1 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(v128.load(a, 16), vs)));
      const v2 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(v128.load(a, 32), vs)));
      const v3 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(v128.load(a, 48), vs)));
      v128.store(yp + i, packRound16(v0, v1, v2, v3, vmagic, vsub, vflip));
    }
    for (; i < len; i++) {
      const v = clampF(load<f32>(xp + (<usize>i << 2)) * invScale, lo, hi);
      store<u8>(yp + i, <u8>(roundMagic(v) + zp));
    }
  }
}

/**
 * Per-channel quantize: invScales f32[c], zps i32[c] (one per channel), shared
 * [qmin, qmax]. Same arithmetic per element with its channel's constants.
 */
export function f32_q8_quantize_pc_nhwc(
  x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32,
  invScales: usize, zps: usize, qmin: i32, qmax: i32
): void {
  const bias = outBias(qmin);
  const vqmin = i32x4.splat(qmin), vqmax = i32x4.splat(qmax);
  const vmagic = f32x4.splat(MAGIC), vmb = i32x4.splat(MAGIC_BITS + bias), vflip = i8x16.splat(<i8>(bias));
  for (let p = 0; p < n; p++) {
    const xp = x + (<usize>p * <usize>xStride << 2);
    const yp = y + <usize>p * <usize>yStride;
    let i = 0;
    for (; i + 16 <= c; i += 16) {
      const a = xp + (<usize>i << 2), s = invScales + (<usize>i << 2), z = zps + (<usize>i << 2);
      const z0 = v128.load(z), z1 = v128.load(z, 16), z2 = v128.load(z, 32), z3 = v128.load(z, 48);
      const v0 = clamp4(f32x4.mul(v128.load(a), v128.load(s)), vqmin, vqmax, z0);
      const v1 = clamp4(f32x4.mul(v128.load(a, 16), v128.load(s, 16)), vqmin, vqmax, z1);
      const v2 = clamp4(f32x4.mul(v128.load(a, 32), v128.load(s, 32)), vqmin, vqmax, z2);
      const v3 = clamp4(f32x4.mul(v128.load(a, 48), v128.load(s, 48)), vqmin, vqmax, z3);
      const q0 = i32x4.sub(f32x4.add(v0, vmagic), i32x4.sub(vmb, z0));
      const q1 = i32x4.sub(f32x4.add(v1, vmagic), i32x4.sub(vmb, z1));
      const q2 = i32x4.sub(f32x4.add(v2, vmagic), i32x4.sub(vmb, z2));
      const q3 = i32x4.sub(f32x4.add(v3, vmagic), i32x4.sub(vmb, z3));
      const w = i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3));
      v128.store(yp + i, v128.xor(w, vflip));
    }
    for (; i < c; i++) {
      const zp = load<i32>(zps + (<usize>i << 2));
      const v = clampF(load<f32>(xp + (<usize>i << 2)) * load<f32>(invScales + (<usize>i << 2)), <f32>(qmin - zp), <f32>(qmax - zp));
      store<u8>(yp + i, <u8>(roundMagic(v) + zp));
    }
  }
}

@inline function clamp4(v: v128, vqmin: v128, vqmax: v128, vzp: v128): v128 {
  const lo = f32x4.convert_i32x4_s(i32x4.sub(vqmin, vzp));
  const hi = f32x4.convert_i32x4_s(i32x4.sub(vqmax, vzp));
  return f32x4.pmin(hi, f32x4.pmax(lo, v));
}

/**
 * Per-tensor dequantize: x 8-bit codes (signed != 0: i8, else u8), pixel stride
 * xStride bytes; y f32, pixel stride yStride elements. y = f32(q - zp) · scale.
 */
export function q8_f32_dequantize_nhwc(
  x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32,
  scale: f32, zp: i32, signed: i32
): void {
  let runs = n, len = c;
  if (xStride == c && yStride == c) { runs = 1; len = n * c; }
  const flip = inFlip(signed);
  const vflip = i8x16.splat(<i8>flip), vzp = i32x4.splat(zp - flip), vs = f32x4.splat(scale);
  for (let p = 0; p < runs; p++) {
    const xp = x + <usize>p * <usize>xStride;
    const yp = y + (<usize>p * <usize>yStride << 2);
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const b = v128.xor(v128.load(xp + i), vflip);
      const o = yp + (<usize>i << 2);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen0(b), vzp)), vs));
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen1(b), vzp)), vs), 16);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen2(b), vzp)), vs), 32);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen3(b), vzp)), vs), 48);
    }
    for (; i < len; i++) store<f32>(yp + (<usize>i << 2), <f32>(loadCode(xp + i, signed) - zp) * scale);
  }
}

/** Per-channel dequantize: scales f32[c], zps i32[c]. */
export function q8_f32_dequantize_pc_nhwc(
  x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32,
  scales: usize, zps: usize, signed: i32
): void {
  const flip = inFlip(signed);
  const vflip = i8x16.splat(<i8>flip), vf = i32x4.splat(flip);
  for (let p = 0; p < n; p++) {
    const xp = x + <usize>p * <usize>xStride;
    const yp = y + (<usize>p * <usize>yStride << 2);
    let i = 0;
    for (; i + 16 <= c; i += 16) {
      const b = v128.xor(v128.load(xp + i), vflip);
      const o = yp + (<usize>i << 2), s = scales + (<usize>i << 2), z = zps + (<usize>i << 2);
      // q - zp = (q' + flip) - zp with q' the flipped code: subtract (zp - flip).
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen0(b), i32x4.sub(v128.load(z), vf))), v128.load(s)));
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen1(b), i32x4.sub(v128.load(z, 16), vf))), v128.load(s, 16)), 16);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen2(b), i32x4.sub(v128.load(z, 32), vf))), v128.load(s, 32)), 32);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen3(b), i32x4.sub(v128.load(z, 48), vf))), v128.load(s, 48)), 48);
    }
    for (; i < c; i++) {
      const q = loadCode(xp + i, signed);
      store<f32>(yp + (<usize>i << 2), <f32>(q - load<i32>(zps + (<usize>i << 2))) * load<f32>(scales + (<usize>i << 2)));
    }
  }
}
