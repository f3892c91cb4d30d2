// Reference of assembly/elementwise/requant-wide.ts (bit-exact f32 sequence). Codes are unsigned:
// a Uint16Array holds u16 codes, a Uint8Array u8 codes (the kernels' *Wide flags); strides in elements.
import { clampNanLo, roundMagic } from "./quantize.ts";

type Codes16 = Uint8Array | Uint16Array;
const f = Math.fround;

/**
 * out = roundHalfEven(clamp(f32(ma·(a−za)) + f32(mb·(b−zb)), qmin−zo, qmax−zo)) + zo.
 * Pixel strides (elements) come last and default to c (dense tensors).
 */
export function q16AddRef(out: Codes16, a: Codes16, b: Codes16, n: number, c: number,
  za: number, zb: number, ma: number, mb: number, zo: number, qmin: number, qmax: number,
  aStride = c, bStride = c, yStride = c): void {
  const fma = f(ma), fmb = f(mb);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < c; i++) {
      // Each f32 op = the f64 op then fround: the products are exact in f64 (17-bit × 24-bit), and
      // rounding the f64 sum of two f32s to f32 gives the f32 sum (53 ≥ 2·24 + 2: no double rounding).
      const t = f(f((a[p * aStride + i] - za) * fma) + f((b[p * bStride + i] - zb) * fmb));
      out[p * yStride + i] = roundMagic(clampNanLo(t, qmin - zo, qmax - zo)) + zo;
    }
  }
}

/** y = roundHalfEven(clamp(f32(m·(x − zx)), qmin − zy, qmax − zy)) + zy. Strides last, default c. */
export function q16RequantizeRef(out: Codes16, x: Codes16, n: number, c: number,
  zx: number, m: number, zy: number, qmin: number, qmax: number, xStride = c, yStride = c): void {
  const fm = f(m);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < c; i++) {
      const t = clampNanLo(f((x[p * xStride + i] - zx) * fm), qmin - zy, qmax - zy);
      out[p * yStride + i] = roundMagic(t) + zy;
    }
  }
}
