// Bilinear upsampling by an integer factor f (ONNX Resize linear, ncnn Interp resize_type 2, Keras
// UpSampling2D 'bilinear'), NHWC, channels vectorised.
//
// Source coordinate of output index o along an axis of n input samples, as an exact fraction num/den:
//   mode 0, half_pixel (ONNX half_pixel / pytorch_half_pixel, ncnn align_corner=0, TF2):
//     s = (o + ½)/f − ½ = (2o + 1 − f) / (2f)
//   mode 1, asymmetric (TF1 resize_bilinear, tfjs-layers UpSampling2D): s = o / f
// i0 = ⌊s⌋, t = s − i0 ∈ [0, 1); out = (1 − t)·in[i0] + t·in[i0 + 1]. Outside the samples the coordinate
// is clamped (s < 0 → in[0]; i0 ≥ n − 1 → in[n − 1]), as ONNX Runtime, ncnn and TF do.
// Both modes are translation-equivariant for integer f (output o + f·r reads input i0 + r with the same
// t), so tiles with a margin ≥ 1 input pixel stitch exactly.
//
// f32: t = f32(num − i0·den) / f32(den), weights (1 − t, t); out = wy0·(wx0·a + wx1·b) + wy1·(wx0·c + wx1·d)
// in that order, without FMA, so the TS reference reproduces it bit for bit.
//
// 8-bit codes (any affine grid: Σ weights = 1, so s·(Σ w·q − z) = Σ w·s·(q − z) and the output keeps the
// input's grid): weights in 11-bit fixed point, w1 = round(t·2048) = ⌊(r·2048 + den/2)/den⌋, w0 = 2048 − w1;
//   out = (wy0·(wx0·a + wx1·b) + wy1·(wx0·c + wx1·d) + 2^21) >> 22,
// ≤ 255·2^22 < 2^31, so i32 lanes never overflow; rounding is half-up, exact integer arithmetic.

const ONE: i32 = 2048;

/** ⌊num/den⌋ for den > 0 and any sign of num. */
@inline function floorDiv(num: i32, den: i32): i32 {
  const q = num / den;
  return q * den > num ? q - 1 : q;
}

/** Lower source index for output o (clamped; see the header). */
@inline function src0(o: i32, n: i32, f: i32, mode: i32): i32 {
  const num = mode == 0 ? 2 * o + 1 - f : o;
  if (num < 0) return 0;
  const i0 = floorDiv(num, mode == 0 ? 2 * f : f);
  return i0 >= n - 1 ? n - 1 : i0;
}

/** Remainder r of the source coordinate (t = r/den), 0 where the coordinate is clamped. */
@inline function srcRem(o: i32, n: i32, f: i32, mode: i32): i32 {
  const num = mode == 0 ? 2 * o + 1 - f : o;
  const den = mode == 0 ? 2 * f : f;
  if (num < 0) return 0;
  const i0 = floorDiv(num, den);
  return i0 >= n - 1 ? 0 : num - i0 * den;
}

@inline function den(f: i32, mode: i32): i32 {
  return mode == 0 ? 2 * f : f;
}

/** 11-bit fixed-point weight of the upper sample. */
@inline function fixedW1(o: i32, n: i32, f: i32, mode: i32): i32 {
  const d = den(f, mode);
  return (srcRem(o, n, f, mode) * ONE + (d >> 1)) / d;
}

/**
 * 8-bit bilinear upsample: x [h, w, c] codes (stride xStride bytes per pixel) → y [h·f, w·f, c]
 * (stride yStride). mode 0 = half_pixel, 1 = asymmetric.
 */
export function x8_upsample_bilinear_nhwc(x: usize, h: i32, w: i32, c: i32, f: i32, mode: i32, xStride: i32, y: usize, yStride: i32): void {
  const ho = h * f, wo = w * f;
  const half = i32x4.splat(1 << 21);
  for (let oy = 0; oy < ho; oy++) {
    const y0 = src0(oy, h, f, mode);
    const y1 = y0 + 1 < h ? y0 + 1 : h - 1;
    const wy1 = fixedW1(oy, h, f, mode), wy0 = ONE - wy1;
    const vy0 = i32x4.splat(wy0), vy1 = i32x4.splat(wy1);
    const r0 = x + <usize>y0 * <usize>w * <usize>xStride;
    const r1 = x + <usize>y1 * <usize>w * <usize>xStride;
    const dstRow = y + <usize>oy * <usize>wo * <usize>yStride;
    for (let ox = 0; ox < wo; ox++) {
      const x0 = src0(ox, w, f, mode);
      const x1 = x0 + 1 < w ? x0 + 1 : w - 1;
      const wx1 = fixedW1(ox, w, f, mode), wx0 = ONE - wx1;
      const vx0 = i32x4.splat(wx0), vx1 = i32x4.splat(wx1);
      const pa = r0 + <usize>x0 * <usize>xStride, pb = r0 + <usize>x1 * <usize>xStride;
      const pc = r1 + <usize>x0 * <usize>xStride, pd = r1 + <usize>x1 * <usize>xStride;
      const dst = dstRow + <usize>ox * <usize>yStride;
      let ch = 0;
      for (; ch + 4 <= c; ch += 4) {
        const o = <usize>ch;
        const a = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(pa + o)));
        const b = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(pb + o)));
        const cc = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(pc + o)));
        const d = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(pd + o)));
        const top = i32x4.add(i32x4.mul(vx0, a), i32x4.mul(vx1, b));
        const bot = i32x4.add(i32x4.mul(vx0, cc), i32x4.mul(vx1, d));
        const acc = i32x4.add(i32x4.add(i32x4.mul(vy0, top), i32x4.mul(vy1, bot)), half);
        const q = i32x4.shr_s(acc, 22);
        const q8 = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(q, q), i16x8.narrow_i32x4_u(q, q));
        v128.store32_lane(dst + o, q8, 0);
      }
      for (; ch < c; ch++) {
        const o = <usize>ch;
        const top = wx0 * <i32>load<u8>(pa + o) + wx1 * <i32>load<u8>(pb + o);
        const bot = wx0 * <i32>load<u8>(pc + o) + wx1 * <i32>load<u8>(pd + o);
        store<u8>(dst + o, <u8>((wy0 * top + wy1 * bot + (1 << 21)) >> 22));
      }
    }
  }
}

/** f32 bilinear upsample; strides in elements. mode 0 = half_pixel, 1 = asymmetric. */
export function f32_upsample_bilinear_nhwc(x: usize, h: i32, w: i32, c: i32, f: i32, mode: i32, xStride: i32, y: usize, yStride: i32): void {
  const ho = h * f, wo = w * f;
  const d = <f32>den(f, mode);
  const xPix = <usize>xStride << 2, yPix = <usize>yStride << 2;
  for (let oy = 0; oy < ho; oy++) {
    const y0 = src0(oy, h, f, mode);
    const y1 = y0 + 1 < h ? y0 + 1 : h - 1;
    const wy1 = <f32>srcRem(oy, h, f, mode) / d, wy0 = <f32>1 - wy1;
    const vy0 = f32x4.splat(wy0), vy1 = f32x4.splat(wy1);
    const r0 = x + <usize>y0 * <usize>w * xPix;
    const r1 = x + <usize>y1 * <usize>w * xPix;
    const dstRow = y + <usize>oy * <usize>wo * yPix;
    for (let ox = 0; ox < wo; ox++) {
      const x0 = src0(ox, w, f, mode);
      const x1 = x0 + 1 < w ? x0 + 1 : w - 1;
      const wx1 = <f32>srcRem(ox, w, f, mode) / d, wx0 = <f32>1 - wx1;
      const vx0 = f32x4.splat(wx0), vx1 = f32x4.splat(wx1);
      const pa = r0 + <usize>x0 * xPix, pb = r0 + <usize>x1 * xPix;
      const pc = r1 + <usize>x0 * xPix, pd = r1 + <usize>x1 * xPix;
      const dst = dstRow + <usize>ox * yPix;
      let ch = 0;
      for (; ch + 4 <= c; ch += 4) {
        const o = <usize>ch << 2;
        const top = f32x4.add(f32x4.mul(vx0, v128.load(pa + o)), f32x4.mul(vx1, v128.load(pb + o)));
        const bot = f32x4.add(f32x4.mul(vx0, v128.load(pc + o)), f32x4.mul(vx1, v128.load(pd + o)));
        v128.store(dst + o, f32x4.add(f32x4.mul(vy0, top), f32x4.mul(vy1, bot)));
      }
      for (; ch < c; ch++) {
        const o = <usize>ch << 2;
        const top = wx0 * load<f32>(pa + o) + wx1 * load<f32>(pb + o);
        const bot = wx0 * load<f32>(pc + o) + wx1 * load<f32>(pd + o);
        store<f32>(dst + o, wy0 * top + wy1 * bot);
      }
    }
  }
}
