// Plain-TS references of assembly/elementwise/prelu.ts (f32 step for step, so both match bit for bit).
import { clampNanLo, roundMagic } from "./quantize.ts";

type Codes = Uint8Array | Int8Array;

/** y = x < 0 ? slope[c]·x : x (one f32 multiply). */
export function preluRef(out: Float32Array, x: Float32Array, n: number, c: number, xStride: number, yStride: number, slopes: Float32Array): void {
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < c; i++) {
      const v = x[p * xStride + i];
      out[p * yStride + i] = v < 0 ? Math.fround(slopes[i] * v) : v;
    }
  }
}

/** d = x − zx; y = roundHalfEven(clamp(f32(d·(d < 0 ? mNeg[c] : mPos)), qmin − zy, qmax − zy)) + zy. */
export function preluQ8Ref(out: Codes, x: Codes, n: number, c: number, xStride: number, yStride: number,
  zx: number, mPos: number, mNeg: Float32Array, zy: number, qmin: number, qmax: number): void {
  const mp = Math.fround(mPos);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < c; i++) {
      const d = x[p * xStride + i] - zx;
      const t = clampNanLo(Math.fround(d * (d < 0 ? mNeg[i] : mp)), qmin - zy, qmax - zy);
      out[p * yStride + i] = roundMagic(t) + zy;
    }
  }
}
