// Reference of assembly/elementwise/depth-to-space.ts (TF DCR order).
type Data = Uint8Array | Int8Array | Float32Array;

/** out[(h·b+i), (w·b+j), ch] = in[h, w, (i·b+j)·c + ch]; strides in elements. */
export function depthToSpaceRef<T extends Data>(out: T, x: T, h: number, w: number, c: number, b: number, xStride: number, yStride: number): void {
  const wo = w * b;
  for (let hh = 0; hh < h; hh++)
    for (let ww = 0; ww < w; ww++)
      for (let i = 0; i < b; i++)
        for (let j = 0; j < b; j++)
          for (let ch = 0; ch < c; ch++)
            out[((hh * b + i) * wo + ww * b + j) * yStride + ch] = x[(hh * w + ww) * xStride + (i * b + j) * c + ch];
}
