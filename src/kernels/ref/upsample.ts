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
