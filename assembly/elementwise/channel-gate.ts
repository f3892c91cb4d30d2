// Kernels of the `space_to_depth` and `squeeze_excite` IR ops (ncnn Real-CUGAN / waifu2x cunet):
//
// - x8/x32_space_to_depth_phased_nhwc: the inverse of depth_to_space (TF DCR order), NHWC:
//     out[h, w, (i·b + j)·C + ch] = in[h·b + i + p, w·b + j + p, ch]   (phase p ∈ [0, b), 0 = TF's)
//   A k×k stride-k conv (Real-CUGAN's 2×2/2) is space_to_depth(k) followed by a 1×1 conv. Pure data
//   movement: the same byte copies serve 8-bit codes and f32.
// - f32_channel_window_sum_nhwc: per-channel f64 sums over a pixel window of an f32 NHWC tensor (the
//   global average pool of an SE block). f64 accumulation in pixel order: exact to the last bit
//   against the TS reference, and the mean of ~10^6 f32 values keeps ~15 significant digits.
// - f32_scale_channels_nhwc: y = x · g[ch] (the SE gate), one correctly rounded f32 multiply.
import { copyBytes } from "./common";

@inline function s2d(x: usize, h: i32, w: i32, c: i32, b: i32, ph: i32, xStride: i32, y: usize, yStride: i32, es: usize, fill: u8): void {
  // h, w: OUTPUT size; the input is h·b × w·b. Input pixels at row or column ≥ h·b / w·b (only when
  // ph > 0) are not read: their channels are filled with `fill` bytes (0 for f32, the zero point for codes).
  const run = <usize>c * es;
  const xPix = <usize>xStride * es;
  const yPix = <usize>yStride * es;
  const hi = h * b, wi = w * b;
  for (let hh = 0; hh < h; hh++) {
    for (let i = 0; i < b; i++) {
      const r = hh * b + i + ph;
      const srcRow = x + (<usize>r * <usize>wi) * xPix;
      for (let ww = 0; ww < w; ww++) {
        const dst = y + (<usize>hh * <usize>w + <usize>ww) * yPix + <usize>(i * b) * run;
        const c0 = ww * b + ph;
        for (let j = 0; j < b; j++) {
          if (r < hi && c0 + j < wi) copyBytes(dst + <usize>j * run, srcRow + <usize>(c0 + j) * xPix, run);
          else memory.fill(dst + <usize>j * run, fill, run);
        }
      }
    }
  }
}

/**
 * 8-bit space-to-depth with block phase `phase` (see the file comment). x: [h·b, w·b, c] codes, pixel
 * stride xStride ≥ c; y: [h, w, c·b²], pixel stride yStride ≥ c·b² (strides in elements = bytes); h, w
 * are the output's size; pixels beyond the input read as `fill` (the zero point's byte).
 */
export function x8_space_to_depth_phased_nhwc(x: usize, h: i32, w: i32, c: i32, block: i32, phase: i32, xStride: i32, y: usize, yStride: i32, fill: i32): void {
  s2d(x, h, w, c, block, phase, xStride, y, yStride, 1, <u8>fill);
}

/** 32-bit space-to-depth; strides in elements; pixels beyond the input read as +0.0. */
export function x32_space_to_depth_phased_nhwc(x: usize, h: i32, w: i32, c: i32, block: i32, phase: i32, xStride: i32, y: usize, yStride: i32): void {
  s2d(x, h, w, c, block, phase, xStride, y, yStride, 4, 0);
}

/**
 * out[ch] = Σ x[py, px, ch] (f64) over rows [y0, y1) and columns [x0, x1) of a w-wide f32 NHWC
 * tensor with pixel stride xStride; `out` = c f64 values (overwritten). Pixels in row-major order.
 */
export function f32_channel_window_sum_nhwc(x: usize, w: i32, c: i32, xStride: i32, y0: i32, y1: i32, x0: i32, x1: i32, out: usize): void {
  const end = <usize>c << 3;
  memory.fill(out, 0, end);
  for (let py = y0; py < y1; py++) {
    for (let px = x0; px < x1; px++) {
      const xp = x + (<usize>py * <usize>w + <usize>px) * (<usize>xStride << 2);
      let i: usize = 0, o: usize = 0;
      for (; o + 16 <= end; i += 8, o += 16) {
        v128.store(out + o, f64x2.add(v128.load(out + o), f64x2.promote_low_f32x4(v128.load64_zero(xp + i))));
      }
      for (; o < end; i += 4, o += 8) store<f64>(out + o, load<f64>(out + o) + <f64>load<f32>(xp + i));
    }
  }
}

/** y[p, ch] = x[p, ch] · g[ch] (f32; `g` = c f32 values). In place (x == y) is allowed. */
export function f32_scale_channels_nhwc(x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32, g: usize): void {
  const end = <usize>c << 2;
  for (let p = 0; p < n; p++) {
    const xp = x + <usize>p * (<usize>xStride << 2), yp = y + <usize>p * (<usize>yStride << 2);
    let i: usize = 0;
    for (; i + 16 <= end; i += 16) v128.store(yp + i, f32x4.mul(v128.load(xp + i), v128.load(g + i)));
    for (; i < end; i += 4) store<f32>(yp + i, load<f32>(xp + i) * load<f32>(g + i));
  }
}

@inline function shiftPx(x: usize, h: i32, w: i32, c: i32, by: i32, xStride: i32, y: usize, yStride: i32, es: usize, fill: u8): void {
  const run = <usize>c * es;
  const xPix = <usize>xStride * es;
  const yPix = <usize>yStride * es;
  for (let r = 0; r < h; r++) {
    const sr = r + by;
    const dstRow = y + <usize>r * <usize>w * yPix;
    if (sr < 0 || sr >= h) {
      for (let q = 0; q < w; q++) memory.fill(dstRow + <usize>q * yPix, fill, run);
      continue;
    }
    const srcRow = x + <usize>sr * <usize>w * xPix;
    for (let q = 0; q < w; q++) {
      const sq = q + by;
      if (sq < 0 || sq >= w) memory.fill(dstRow + <usize>q * yPix, fill, run);
      else copyBytes(dstRow + <usize>q * yPix, srcRow + <usize>sq * xPix, run);
    }
  }
}

/**
 * 8-bit shift: y[r, q] = x[r + by, q + by] for an h×w tensor (either sign of `by`), `fill` bytes (the
 * zero point) where that lies outside x. x and y must not overlap.
 */
export function x8_shift_nhwc(x: usize, h: i32, w: i32, c: i32, by: i32, xStride: i32, y: usize, yStride: i32, fill: i32): void {
  shiftPx(x, h, w, c, by, xStride, y, yStride, 1, <u8>fill);
}

/** 32-bit shift; +0.0 outside x. */
export function x32_shift_nhwc(x: usize, h: i32, w: i32, c: i32, by: i32, xStride: i32, y: usize, yStride: i32): void {
  shiftPx(x, h, w, c, by, xStride, y, yStride, 4, 0);
}
