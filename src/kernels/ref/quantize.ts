// Plain-TS references of assembly/elementwise/quantize.ts, step for step in f32
// (Math.fround after every operation), so integer outputs match bit for bit.
export const MAGIC = 12582912; // 1.5·2^23

/** Round half to even of an f32 |v| < 2^22, the way the kernels do it (magic number). */
export function roundMagic(v: number): number {
  return Math.fround(v + MAGIC) - MAGIC;
}

/** Clamp with NaN → lo (wasm f32x4.pmax/pmin order). */
export function clampNanLo(v: number, lo: number, hi: number): number {
  v = lo < v ? v : lo;
  return v < hi ? v : hi;
}

/** One code: roundHalfEven(clamp(f32(x·invScale), qmin − zp, qmax − zp)) + zp. */
export function quantizeOne(x: number, invScale: number, zp: number, qmin: number, qmax: number): number {
  const v = clampNanLo(Math.fround(x * Math.fround(invScale)), qmin - zp, qmax - zp);
  return roundMagic(v) + zp;
}

type Codes = Uint8Array | Int8Array;

export function quantizeRef(out: Codes, x: Float32Array, n: number, c: number, xStride: number, yStride: number,
  invScale: number | Float32Array, zp: number | Int32Array, qmin: number, qmax: number): void {
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < c; i++) {
      const s = typeof invScale === "number" ? invScale : invScale[i];
      const z = typeof zp === "number" ? zp : zp[i];
      out[p * yStride + i] = quantizeOne(x[p * xStride + i], s, z, qmin, qmax);
    }
  }
}

/** y = f32(q − zp) · scale (q − zp exact, one rounding). */
export function dequantizeRef(out: Float32Array, x: Codes, n: number, c: number, xStride: number, yStride: number,
  scale: number | Float32Array, zp: number | Int32Array): void {
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < c; i++) {
      const s = typeof scale === "number" ? Math.fround(scale) : scale[i];
      const z = typeof zp === "number" ? zp : zp[i];
      out[p * yStride + i] = Math.fround((x[p * xStride + i] - z) * s);
    }
  }
}
