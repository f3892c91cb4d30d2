// Requantized add of two 8-bit tensors (XNNPACK qu8/qs8 vadd, "fp32" scheme).
//
// Real values a_r = sa·(a - za), b_r = sb·(b - zb); the output code is
//   out = clamp(round((a_r + b_r)/so) + zo) = clamp(round(ma·(a - za) + mb·(b - zb)) + zo),
// with ma = fround(sa/so), mb = fround(sb/so) computed once by the wrapper. Per element:
//   t = f32(ma·f32(a - za)) + f32(mb·f32(b - zb))      two f32 products, one f32 add (no FMA,
//                                                     so both builds give the same bits)
//   t = clamp(t, qmin - zo, qmax - zo); out = roundHalfEven(t) + zo   (ABI epilogue)
// Exactness: a - za, b - zb are exact integers (|·| ≤ 255); the f32 sequence
// differs from the exact rational only through three roundings (≤ 1.5 ulp of
// |t| ≤ 2^9, i.e. ≤ 2^-14 absolute), so the code can differ from the exact-
// arithmetic result only when the true value is within 2^-14 of a .5 tie.
// The kernel is *defined* by the f32 sequence; the TS reference repeats it
// with Math.fround and matches bit for bit. Fused ReLU = qmin ≥ zo.
import { MAGIC, MAGIC_BITS, outBias, inFlip, loadCode, clampF, roundMagic, packRound16, widen0, widen1, widen2, widen3 } from "./common";

/**
 * y = requantized a + b. a, b, y: 8-bit codes with pixel strides (bytes);
 * signed != 0 → a and b are i8, else u8; the output range is [qmin, qmax]
 * (u8 or i8 sub-range, as for every 8-bit output).
 */
export function q8_add_nhwc(
  a: usize, b: usize, n: i32, c: i32, aStride: i32, bStride: i32, y: usize, yStride: i32,
  za: i32, zb: i32, ma: f32, mb: f32, zo: i32, qmin: i32, qmax: i32, signed: i32
): void {
  let runs = n, len = c;
  if (aStride == c && bStride == c && yStride == c) { runs = 1; len = n * c; }
  const flip = inFlip(signed), bias = outBias(qmin);
  const lo = <f32>(qmin - zo), hi = <f32>(qmax - zo);
  const vin = i8x16.splat(<i8>flip), vza = i32x4.splat(za - flip), vzb = i32x4.splat(zb - flip);
  const vma = f32x4.splat(ma), vmb = f32x4.splat(mb), vlo = f32x4.splat(lo), vhi = f32x4.splat(hi);
  const vmagic = f32x4.splat(MAGIC), vsub = i32x4.splat(MAGIC_BITS - zo + bias), vflip = i8x16.splat(<i8>bias);
  for (let p = 0; p < runs; p++) {
    const ap = a + <usize>p * <usize>aStride, bp = b + <usize>p * <usize>bStride, yp = y + <usize>p * <usize>yStride;
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const xa = v128.xor(v128.load(ap + i), vin), xb = v128.xor(v128.load(bp + i), vin);
      const t0 = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen0(xa), vza)), vma), f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen0(xb), vzb)), vmb));
      const t1 = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen1(xa), vza)), vma), f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen1(xb), vzb)), vmb));
      const t2 = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen2(xa), vza)), vma), f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen2(xb), vzb)), vmb));
      const t3 = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen3(xa), vza)), vma), f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen3(xb), vzb)), vmb));
      v128.store(yp + i, packRound16(
        f32x4.pmin(vhi, f32x4.pmax(vlo, t0)), f32x4.pmin(vhi, f32x4.pmax(vlo, t1)),
        f32x4.pmin(vhi, f32x4.pmax(vlo, t2)), f32x4.pmin(vhi, f32x4.pmax(vlo, t3)),
        vmagic, vsub, vflip));
    }
    for (; i < len; i++) {
      const ta = <f32>(loadCode(ap + i, signed) - za) * ma;
      const tb = <f32>(loadCode(bp + i, signed) - zb) * mb;
      store<u8>(yp + i, <u8>(roundMagic(clampF(ta + tb, lo, hi)) + zo));
    }
  }
}

/**
 * Integer add when a, b and y share one scale s: s(a - za) + s(b - zb) = s(y - zo)
 * ⇒ y = clamp(a + b + (zo - za - zb), qmin, qmax), exact, no rounding (FQSR's
 * shared-α residual). Computed in i16 (|a + b + k| ≤ 510 + 765 fits), saturated
 * to [qmin, qmax]. k = zo - za - zb.
 */
export function q8_add_same_scale_nhwc(
  a: usize, b: usize, n: i32, c: i32, aStride: i32, bStride: i32, y: usize, yStride: i32,
  k: i32, qmin: i32, qmax: i32, signed: i32
): void {
  let runs = n, len = c;
  if (aStride == c && bStride == c && yStride == c) { runs = 1; len = n * c; }
  const flip = inFlip(signed), bias = outBias(qmin);
  // a = a' + flip, b = b' + flip  ⇒  y - bias = a' + b' + (k + 2·flip - bias).
  const vin = i8x16.splat(<i8>flip), vk = i16x8.splat(<i16>(k + 2 * flip - bias));
  const vlo = i16x8.splat(<i16>(qmin - bias)), vhi = i16x8.splat(<i16>(qmax - bias)), vflip = i8x16.splat(<i8>bias);
  for (let p = 0; p < runs; p++) {
    const ap = a + <usize>p * <usize>aStride, bp = b + <usize>p * <usize>bStride, yp = y + <usize>p * <usize>yStride;
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const xa = v128.xor(v128.load(ap + i), vin), xb = v128.xor(v128.load(bp + i), vin);
      let s0 = i16x8.add(i16x8.add(i16x8.extend_low_i8x16_s(xa), i16x8.extend_low_i8x16_s(xb)), vk);
      let s1 = i16x8.add(i16x8.add(i16x8.extend_high_i8x16_s(xa), i16x8.extend_high_i8x16_s(xb)), vk);
      s0 = i16x8.min_s(i16x8.max_s(s0, vlo), vhi);
      s1 = i16x8.min_s(i16x8.max_s(s1, vlo), vhi);
      v128.store(yp + i, v128.xor(i8x16.narrow_i16x8_s(s0, s1), vflip));
    }
    for (; i < len; i++) {
      let s = loadCode(ap + i, signed) + loadCode(bp + i, signed) + k;
      s = s < qmin ? qmin : s > qmax ? qmax : s;
      store<u8>(yp + i, <u8>s);
    }
  }
}
