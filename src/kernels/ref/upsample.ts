// Reference of assembly/elementwise/upsample.ts.
type Data = Uint8Array | Int8Array | Float32Array;

/** out[h·f+i, w·f+j, ch] = in[h, w, ch]; strides in elements. */
export function upsampleNearestRef<T extends Data>(out: T, x: T, h: number, w: number, c: number, f: number, xStride: number, yStride: number): void {
  const wo = w * f;
  for (let oh = 0; oh < h * f; oh++)
    for (let ow = 0; ow < wo; ow++)
      for (let ch = 0; ch < c; ch++)
        out[(oh * wo + ow) * yStride + ch] = x[(Math.floor(oh / f) * w + Math.floor(ow / f)) * xStride + ch];
}

/** Bilinear source-coordinate modes (assembly/elementwise/upsample-bilinear.ts). */
export const BILINEAR_MODES = ["half_pixel", "asymmetric"] as const;
export type BilinearMode = (typeof BILINEAR_MODES)[number];

/**
 * Source of output index o along an axis of n samples, upsampled by f: [i0, i1, r, den] with the
 * coordinate i0 + r/den (clamped to the samples; r = 0 where clamped). Mode 0 = half_pixel
 * ((2o + 1 − f)/(2f)), 1 = asymmetric (o/f).
 */
export function bilinearSource(o: number, n: number, f: number, mode: 0 | 1): [number, number, number, number] {
  const num = mode === 0 ? 2 * o + 1 - f : o;
  const den = mode === 0 ? 2 * f : f;
  if (num < 0) return [0, Math.min(1, n - 1), 0, den];
  const i0 = Math.floor(num / den);
  if (i0 >= n - 1) return [n - 1, n - 1, 0, den];
  return [i0, i0 + 1, num - i0 * den, den];
}

/**
 * Bilinear upsample by f (the kernel's arithmetic exactly): f32 with weights (1 − t, t), t = f32(r)/f32(den),
 * out = wy0·(wx0·a + wx1·b) + wy1·(wx0·c + wx1·d) rounded to f32 after every operation; 8-bit codes with
 * 11-bit weights w1 = ⌊(2048·r + den/2)/den⌋ and (Σ + 2^21) >> 22.
 */
export function upsampleBilinearRef<T extends Uint8Array | Float32Array>(out: T, x: T, h: number, w: number, c: number, f: number, mode: 0 | 1, xStride: number, yStride: number): void {
  const wo = w * f, ho = h * f;
  const isF32 = x instanceof Float32Array;
  const fr = Math.fround;
  for (let oy = 0; oy < ho; oy++) {
    const [y0, y1, ry, dy] = bilinearSource(oy, h, f, mode);
    for (let ox = 0; ox < wo; ox++) {
      const [x0, x1, rx, dx] = bilinearSource(ox, w, f, mode);
      const pa = (y0 * w + x0) * xStride, pb = (y0 * w + x1) * xStride, pc = (y1 * w + x0) * xStride, pd = (y1 * w + x1) * xStride;
      const dst = (oy * wo + ox) * yStride;
      if (isF32) {
        const wy1 = fr(ry / dy), wy0 = fr(1 - wy1), wx1 = fr(rx / dx), wx0 = fr(1 - wx1);
        for (let ch = 0; ch < c; ch++) {
          const top = fr(fr(wx0 * x[pa + ch]) + fr(wx1 * x[pb + ch]));
          const bot = fr(fr(wx0 * x[pc + ch]) + fr(wx1 * x[pd + ch]));
          out[dst + ch] = fr(fr(wy0 * top) + fr(wy1 * bot));
        }
      } else {
        const wy1 = Math.floor((ry * 2048 + (dy >> 1)) / dy), wy0 = 2048 - wy1;
        const wx1 = Math.floor((rx * 2048 + (dx >> 1)) / dx), wx0 = 2048 - wx1;
        for (let ch = 0; ch < c; ch++) {
          const top = wx0 * x[pa + ch] + wx1 * x[pb + ch];
          const bot = wx0 * x[pc + ch] + wx1 * x[pd + ch];
          out[dst + ch] = (wy0 * top + wy1 * bot + (1 << 21)) >> 22;
        }
      }
    }
  }
}
