// Reference of assembly/elementwise/requant-add.ts (bit-exact f32 sequence).
import { clampNanLo, roundMagic } from "./quantize.ts";

type Codes = Uint8Array | Int8Array;
const f = Math.fround;

/** out = roundHalfEven(clamp(f32(ma·(a−za)) + f32(mb·(b−zb)), qmin−zo, qmax−zo)) + zo. */
export function requantAddRef(out: Codes, a: Codes, b: Codes, n: number, c: number,
  aStride: number, bStride: number, yStride: number,
  za: number, zb: number, ma: number, mb: number, zo: number, qmin: number, qmax: number): void {
  const fma = f(ma), fmb = f(mb);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < c; i++) {
      const t = f(f((a[p * aStride + i] - za) * fma) + f((b[p * bStride + i] - zb) * fmb));
      out[p * yStride + i] = roundMagic(clampNanLo(t, qmin - zo, qmax - zo)) + zo;
    }
  }
}

/** Shared-scale integer add: out = clamp(a + b + k, qmin, qmax), k = zo − za − zb. */
export function addSameScaleRef(out: Codes, a: Codes, b: Codes, n: number, c: number,
  aStride: number, bStride: number, yStride: number, k: number, qmin: number, qmax: number): void {
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < c; i++) {
      const s = a[p * aStride + i] + b[p * bStride + i] + k;
      out[p * yStride + i] = s < qmin ? qmin : s > qmax ? qmax : s;
    }
  }
}
