// Reference of assembly/elementwise/channel-gate.ts (space-to-depth, channel window sums, channel scaling).
type Data = Uint8Array | Int8Array | Float32Array;

/**
 * out[h, w, (i·b+j)·c + ch] = x[h·b+i+ph, w·b+j+ph, ch], `fill` beyond the input (h·b × w·b); h, w = the
 * output's size; strides in elements.
 */
export function spaceToDepthRef<T extends Data>(out: T, x: T, h: number, w: number, c: number, b: number, ph: number, xStride: number, yStride: number, fill = 0): void {
  const wi = w * b, hi = h * b;
  for (let hh = 0; hh < h; hh++)
    for (let ww = 0; ww < w; ww++)
      for (let i = 0; i < b; i++)
        for (let j = 0; j < b; j++) {
          const r = hh * b + i + ph, q = ww * b + j + ph;
          for (let ch = 0; ch < c; ch++) {
            out[(hh * w + ww) * yStride + (i * b + j) * c + ch] = r < hi && q < wi ? x[(r * wi + q) * xStride + ch] : fill;
          }
        }
}

/** out[ch] = Σ (f64, row-major pixel order) x over rows [y0, y1), columns [x0, x1) of a w-wide tensor. */
export function channelWindowSumRef(out: Float64Array, x: Float32Array, w: number, c: number, xStride: number, y0: number, y1: number, x0: number, x1: number): void {
  out.fill(0, 0, c);
  for (let py = y0; py < y1; py++) for (let px = x0; px < x1; px++) {
    const b = (py * w + px) * xStride;
    for (let ch = 0; ch < c; ch++) out[ch] += x[b + ch];
  }
}

/** y[p, ch] = fround(x[p, ch] · g[ch]). */
export function scaleChannelsRef(out: Float32Array, x: Float32Array, n: number, c: number, xStride: number, yStride: number, g: Float32Array): void {
  for (let p = 0; p < n; p++) for (let ch = 0; ch < c; ch++) out[p * yStride + ch] = Math.fround(x[p * xStride + ch] * g[ch]);
}

/** out[r, q] = x[r + by, q + by] (h×w), `fill` outside x; strides in elements. */
export function shiftRef<T extends Data>(out: T, x: T, h: number, w: number, c: number, by: number, xStride: number, yStride: number, fill = 0): void {
  for (let r = 0; r < h; r++) for (let q = 0; q < w; q++) {
    const sr = r + by, sq = q + by, inside = sr >= 0 && sr < h && sq >= 0 && sq < w;
    for (let ch = 0; ch < c; ch++) out[(r * w + q) * yStride + ch] = inside ? x[(sr * w + sq) * xStride + ch] : fill;
  }
}
