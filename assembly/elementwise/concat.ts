// Channel concat, one input at a time: the wrapper calls one of these per
// input with y pointing at that input's channel offset inside the output, so
// the output is written in place (no gather buffer), and a producer that
// already wrote into its slice needs no call at all.
//
// - x8_copy_nhwc / x32_copy_nhwc: the input's codes already use the output's
//   (scale, zero point) — or it is f32 — so a slice copy suffices. Dense on
//   both sides → one memory.copy; otherwise one short copy per pixel.
// - q8_requantize_nhwc: the input has its own (sx, zx): per element
//     t = f32(m · f32(x - zx)),  m = fround(sx/sy)
//     y = roundHalfEven(clamp(t, qmin - zy, qmax - zy)) + zy
//   (the ABI epilogue; one rounding before the epilogue, so the code is the
//   exactly-rounded real value except within 2^-15 of a tie).
import { MAGIC, MAGIC_BITS, outBias, inFlip, loadCode, clampF, roundMagic, packRound16, widen0, widen1, widen2, widen3, copyBytes } from "./common";

@inline function copyRows(x: usize, n: i32, rowBytes: usize, xPitch: usize, y: usize, yPitch: usize): void {
  if (xPitch == rowBytes && yPitch == rowBytes) {
    memory.copy(y, x, <usize>n * rowBytes);
    return;
  }
  for (let p = 0; p < n; p++) copyBytes(y + <usize>p * yPitch, x + <usize>p * xPitch, rowBytes);
}

/** Copies c bytes per pixel: x (pixel stride xStride bytes) → y (yStride bytes). */
export function x8_copy_nhwc(x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32): void {
  copyRows(x, n, <usize>c, <usize>xStride, y, <usize>yStride);
}

/** Copies c 32-bit elements per pixel (f32 / i32 tensors); strides in elements. */
export function x32_copy_nhwc(x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32): void {
  copyRows(x, n, <usize>c << 2, <usize>xStride << 2, y, <usize>yStride << 2);
}

/**
 * Requantizes 8-bit codes (signed != 0: i8 input) of scale sx, zero point zx
 * to the output's (sy, zy): m = sx/sy. Output range [qmin, qmax] (u8 or i8).
 */
export function q8_requantize_nhwc(
  x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32,
  zx: i32, m: f32, zy: i32, qmin: i32, qmax: i32, signed: i32
): void {
  let runs = n, len = c;
  if (xStride == c && yStride == c) { runs = 1; len = n * c; }
  const flip = inFlip(signed), bias = outBias(qmin);
  const lo = <f32>(qmin - zy), hi = <f32>(qmax - zy);
  const vin = i8x16.splat(<i8>flip), vzx = i32x4.splat(zx - flip), vm = f32x4.splat(m);
  const vlo = f32x4.splat(lo), vhi = f32x4.splat(hi);
  const vmagic = f32x4.splat(MAGIC), vsub = i32x4.splat(MAGIC_BITS - zy + bias), vflip = i8x16.splat(<i8>bias);
  for (let p = 0; p < runs; p++) {
    const xp = x + <usize>p * <usize>xStride, yp = y + <usize>p * <usize>yStride;
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const b = v128.xor(v128.load(xp + i), vin);
      const t0 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen0(b), vzx)), vm)));
      const t1 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen1(b), vzx)), vm)));
      const t2 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen2(b), vzx)), vm)));
      const t3 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen3(b), vzx)), vm)));
      v128.store(yp + i, packRound16(t0, t1, t2, t3, vmagic, vsub, vflip));
    }
    for (; i < len; i++) {
      const t = clampF(<f32>(loadCode(xp + i, signed) - zx) * m, lo, hi);
      store<u8>(yp + i, <u8>(roundMagic(t) + zy));
    }
  }
}
