// Per-channel PReLU (ncnn PReLU, ONNX PRelu; leaky ReLU is the uniform-slope case):
//   y = x ≥ 0 ? x : slope[c]·x
// NHWC with pixel strides in elements; the slope table has c entries (the channel index restarts
// every pixel, so the loops run per pixel over channels).
//
// - f32_prelu_nhwc: one correctly rounded f32 multiply on the negative side, bit-identical to the
//   TS reference (src/kernels/ref/prelu.ts). −0 stays −0 and NaN propagates (NaN < 0 is false).
// - q8_prelu_nhwc: 8-bit codes in, 8-bit codes on the output's own grid out (PReLU shrinks the
//   negative side, so the output grid is finer there than the input's). With d = x − zx:
//     t = f32(d · (d < 0 ? mNeg[c] : mPos)),  mPos = fround(sx/sy), mNeg[c] = fround(slope[c]·sx/sy)
//     y = roundHalfEven(clamp(t, qmin − zy, qmax − zy)) + zy
//   i.e. the requantize epilogue of concat.ts with a per-channel, sign-selected multiplier: one
//   rounding, so the code is the exactly rounded real value except within 2^-15 of a tie.
import { MAGIC, MAGIC_BITS, outBias, inFlip, loadCode, clampF, roundMagic, packRound16, widen0, widen1, widen2, widen3 } from "./common";

/** y = x < 0 ? slopes[ch]·x : x (f32, `slopes` = c f32 values). In place (x == y) is allowed. */
export function f32_prelu_nhwc(x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32, slopes: usize): void {
  const zero = f32x4.splat(0);
  const end = <usize>c << 2;
  for (let p = 0; p < n; p++) {
    const xp = x + <usize>p * (<usize>xStride << 2), yp = y + <usize>p * (<usize>yStride << 2);
    let i: usize = 0;
    for (; i + 16 <= end; i += 16) {
      const v = v128.load(xp + i);
      v128.store(yp + i, v128.bitselect(f32x4.mul(v128.load(slopes + i), v), v, f32x4.lt(v, zero)));
    }
    for (; i < end; i += 4) {
      const v = load<f32>(xp + i);
      store<f32>(yp + i, v < 0 ? load<f32>(slopes + i) * v : v);
    }
  }
}

/**
 * 8-bit PReLU with requantization (see the file comment). signed != 0: i8 input codes, else u8;
 * output range [qmin, qmax] (u8 or i8 by qmin's sign); mNeg = c f32 multipliers.
 */
export function q8_prelu_nhwc(
  x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32,
  zx: i32, mPos: f32, mNeg: usize, zy: i32, qmin: i32, qmax: i32, signed: i32
): void {
  const flip = inFlip(signed), bias = outBias(qmin);
  const lo = <f32>(qmin - zy), hi = <f32>(qmax - zy);
  const vin = i8x16.splat(<i8>flip), vzx = i32x4.splat(zx - flip), vp = f32x4.splat(mPos), zero = i32x4.splat(0);
  const vlo = f32x4.splat(lo), vhi = f32x4.splat(hi);
  const vmagic = f32x4.splat(MAGIC), vsub = i32x4.splat(MAGIC_BITS - zy + bias), vflip = i8x16.splat(<i8>bias);
  for (let p = 0; p < n; p++) {
    const xp = x + <usize>p * <usize>xStride, yp = y + <usize>p * <usize>yStride;
    let i = 0;
    for (; i + 16 <= c; i += 16) {
      const b = v128.xor(v128.load(xp + i), vin);
      const mp = mNeg + (<usize>i << 2);
      const d0 = i32x4.sub(widen0(b), vzx), d1 = i32x4.sub(widen1(b), vzx);
      const d2 = i32x4.sub(widen2(b), vzx), d3 = i32x4.sub(widen3(b), vzx);
      const m0 = v128.bitselect(v128.load(mp), vp, i32x4.lt_s(d0, zero));
      const m1 = v128.bitselect(v128.load(mp, 16), vp, i32x4.lt_s(d1, zero));
      const m2 = v128.bitselect(v128.load(mp, 32), vp, i32x4.lt_s(d2, zero));
      const m3 = v128.bitselect(v128.load(mp, 48), vp, i32x4.lt_s(d3, zero));
      const t0 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(d0), m0)));
      const t1 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(d1), m1)));
      const t2 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(d2), m2)));
      const t3 = f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(d3), m3)));
      v128.store(yp + i, packRound16(t0, t1, t2, t3, vmagic, vsub, vflip));
    }
    for (; i < c; i++) {
      const d = loadCode(xp + i, signed) - zx;
      const m = d < 0 ? load<f32>(mNeg + (<usize>i << 2)) : mPos;
      const t = clampF(<f32>d * m, lo, hi);
      store<u8>(yp + i, <u8>(roundMagic(t) + zy));
    }
  }
}
