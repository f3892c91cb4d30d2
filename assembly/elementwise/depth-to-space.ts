// Depth-to-space (pixel shuffle), TF DCR order, NHWC:
//   out[h·b + i, w·b + j, ch] = in[h, w, (i·b + j)·C + ch]
// For one input pixel and one i, channels [i·b·C, (i+1)·b·C) are the b output
// pixels (h·b+i, w·b .. w·b+b-1) back to back — one contiguous run of b·C
// elements when the output is dense, else b runs of C. Pure data movement:
// the same byte copies serve 8-bit codes and f32.
import { copyBytes } from "./common";

@inline function d2s(x: usize, h: i32, w: i32, c: i32, b: i32, xStride: i32, y: usize, yStride: i32, es: usize): void {
  const run = <usize>c * es;               // bytes of one output pixel
  const xPix = <usize>xStride * es;        // input pixel pitch, bytes
  const yPix = <usize>yStride * es;        // output pixel pitch, bytes
  const wo = <usize>w * <usize>b;
  const dense = yStride == c;
  for (let hh = 0; hh < h; hh++) {
    for (let i = 0; i < b; i++) {
      const row = y + (<usize>(hh * b + i) * wo) * yPix;
      const src0 = x + <usize>hh * <usize>w * xPix + <usize>(i * b) * run;
      for (let ww = 0; ww < w; ww++) {
        const src = src0 + <usize>ww * xPix;
        const dst = row + <usize>(ww * b) * yPix;
        if (dense) copyBytes(dst, src, <usize>b * run);
        else for (let j = 0; j < b; j++) copyBytes(dst + <usize>j * yPix, src + <usize>j * run, run);
      }
    }
  }
}

/**
 * 8-bit depth-to-space. x: [h, w, c·b²] codes, pixel stride xStride ≥ c·b²;
 * y: [h·b, w·b, c], pixel stride yStride ≥ c (strides in elements = bytes).
 */
export function x8_depth_to_space_nhwc(x: usize, h: i32, w: i32, c: i32, block: i32, xStride: i32, y: usize, yStride: i32): void {
  d2s(x, h, w, c, block, xStride, y, yStride, 1);
}

/** f32 (any 32-bit element) depth-to-space; strides in elements. */
export function x32_depth_to_space_nhwc(x: usize, h: i32, w: i32, c: i32, block: i32, xStride: i32, y: usize, yStride: i32): void {
  d2s(x, h, w, c, block, xStride, y, yStride, 4);
}
