// Plain-TS ground truth for f32_conv_nhwc: the definition, written for
// readability, not speed. Accumulates in float64 (JS numbers) and rounds once
// to f32 at the store, so it is at least as accurate as any f32 kernel; the
// WASM kernel is compared to it within a stated rounding tolerance
// (test/kernels/f32-conv.test.ts), never bit for bit.

export interface F32ConvRefArgs {
  /** NHWC input, pixel (y, x) channel c at inOffset + (y·w + x)·inStride + c. */
  input: Float32Array;
  inOffset?: number;
  inStride?: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  /** Odd kernel size; 'same' zero padding of (k-1)/2. */
  k: number;
  /** HWIO weights: W[ky][kx][ci][o] at ((ky·k + kx)·cin + ci)·cout + o. */
  weights: Float32Array;
  bias?: Float32Array | null;
  outMin?: number;
  outMax?: number;
  /** Output, written at outOffset + (y·w + x)·outStride + o (other elements untouched). */
  out: Float32Array;
  outOffset?: number;
  outStride?: number;
}

/** out = clamp(bias + conv(input, W), outMin, outMax), stride 1, 'same' zero padding. */
export function f32ConvRef(a: F32ConvRefArgs): void {
  const { input, h, w, cin, cout, k, weights, out } = a;
  const inOffset = a.inOffset ?? 0;
  const inStride = a.inStride ?? cin;
  const outOffset = a.outOffset ?? 0;
  const outStride = a.outStride ?? cout;
  const lo = a.outMin ?? -Infinity;
  const hi = a.outMax ?? Infinity;
  const p = (k - 1) / 2;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let o = 0; o < cout; o++) {
        let s = a.bias ? a.bias[o] : 0;
        for (let ky = 0; ky < k; ky++) {
          const iy = y + ky - p;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < k; kx++) {
            const ix = x + kx - p;
            if (ix < 0 || ix >= w) continue;
            const ip = inOffset + (iy * w + ix) * inStride;
            const wp = (ky * k + kx) * cin * cout + o;
            for (let ci = 0; ci < cin; ci++) s += input[ip + ci] * weights[wp + ci * cout];
          }
        }
        out[outOffset + (y * w + x) * outStride + o] = Math.min(Math.max(s, lo), hi);
      }
    }
  }
}

/**
 * Σ|bias| + Σ|w·x| per output element (same indexing as out): the scale of
 * the rounding error an f32 accumulation of that sum can make.
 */
export function f32ConvAbsSum(a: F32ConvRefArgs, mag: Float64Array): void {
  const { input, h, w, cin, cout, k, weights } = a;
  const inOffset = a.inOffset ?? 0;
  const inStride = a.inStride ?? cin;
  const p = (k - 1) / 2;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let o = 0; o < cout; o++) {
        let s = a.bias ? Math.abs(a.bias[o]) : 0;
        for (let ky = 0; ky < k; ky++) {
          const iy = y + ky - p;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < k; kx++) {
            const ix = x + kx - p;
            if (ix < 0 || ix >= w) continue;
            const ip = inOffset + (iy * w + ix) * inStride;
            const wp = (ky * k + kx) * cin * cout + o;
            for (let ci = 0; ci < cin; ci++) s += Math.abs(input[ip + ci] * weights[wp + ci * cout]);
          }
        }
        mag[(y * w + x) * cout + o] = s;
      }
    }
  }
}
