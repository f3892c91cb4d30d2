// Nearest-neighbour upsampling by an integer factor f (Keras UpSampling2D
// 'nearest'): out[h·f + i, w·f + j, ch] = in[h, w, ch].
// Per input row: write output row h·f by replicating each pixel f times, then
// copy that finished row f-1 times (one memory.copy per row when the output is
// dense; pixel runs otherwise). Data movement only: 8-bit and f32 share it.
import { copyBytes } from "./common";

@inline function up(x: usize, h: i32, w: i32, c: i32, f: i32, xStride: i32, y: usize, yStride: i32, es: usize): void {
  const run = <usize>c * es;
  const xPix = <usize>xStride * es;
  const yPix = <usize>yStride * es;
  const wo = <usize>w * <usize>f;
  const rowPitch = wo * yPix;
  const dense = yStride == c;
  for (let hh = 0; hh < h; hh++) {
    const row0 = y + <usize>(hh * f) * rowPitch;
    const src0 = x + <usize>hh * <usize>w * xPix;
    for (let ww = 0; ww < w; ww++) {
      const src = src0 + <usize>ww * xPix;
      const dst = row0 + <usize>(ww * f) * yPix;
      for (let j = 0; j < f; j++) copyBytes(dst + <usize>j * yPix, src, run);
    }
    for (let i = 1; i < f; i++) {
      const rowi = row0 + <usize>i * rowPitch;
      if (dense) memory.copy(rowi, row0, rowPitch);
      else for (let q: usize = 0; q < wo; q++) copyBytes(rowi + q * yPix, row0 + q * yPix, run);
    }
  }
}

/** 8-bit nearest upsample: x [h, w, c] (stride xStride) → y [h·f, w·f, c] (stride yStride). */
export function x8_upsample_nearest_nhwc(x: usize, h: i32, w: i32, c: i32, factor: i32, xStride: i32, y: usize, yStride: i32): void {
  up(x, h, w, c, factor, xStride, y, yStride, 1);
}

/** f32 (any 32-bit element) nearest upsample; strides in elements. */
export function x32_upsample_nearest_nhwc(x: usize, h: i32, w: i32, c: i32, factor: i32, xStride: i32, y: usize, yStride: i32): void {
  up(x, h, w, c, factor, xStride, y, yStride, 4);
}
