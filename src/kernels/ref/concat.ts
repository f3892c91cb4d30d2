// Reference of assembly/elementwise/concat.ts.
import { clampNanLo, roundMagic } from "./quantize.ts";

type Codes = Uint8Array | Int8Array;

/** Copies c elements per pixel (any element type). */
export function copyRef<T extends Uint8Array | Int8Array | Float32Array>(out: T, x: T, n: number, c: number, xStride: number, yStride: number): void {
  for (let p = 0; p < n; p++) for (let i = 0; i < c; i++) out[p * yStride + i] = x[p * xStride + i];
}

/** y = roundHalfEven(clamp(f32(m·(x − zx)), qmin − zy, qmax − zy)) + zy. */
export function requantizeRef(out: Codes, x: Codes, n: number, c: number, xStride: number, yStride: number,
  zx: number, m: number, zy: number, qmin: number, qmax: number): void {
  const fm = Math.fround(m);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < c; i++) {
      const t = clampNanLo(Math.fround((x[p * xStride + i] - zx) * fm), qmin - zy, qmax - zy);
      out[p * yStride + i] = roundMagic(t) + zy;
    }
  }
}

export interface ConcatInputRef {
  data: Codes;
  channels: number;
  stride: number;
  scale: number;
  zeroPoint: number;
}

/**
 * Channel concat with requantization to (scale, zp). An input is copied only when requantizing it is the
 * identity: its (scale, zp) match and [qmin, qmax] covers every code of its type. Otherwise (a sub-range
 * output such as a ReLU slice, or i8 codes into u8 and back) the codes are requantized, i.e. clamped.
 */
export function concatRef(out: Codes, inputs: ConcatInputRef[], n: number, yStride: number,
  scale: number, zp: number, qmin: number, qmax: number): void {
  let off = 0;
  for (const inp of inputs) {
    const view = out.subarray(off) as Codes;
    const inLo = inp.data instanceof Int8Array ? -128 : 0;
    if (Math.fround(inp.scale) === Math.fround(scale) && inp.zeroPoint === zp && qmin <= inLo && qmax >= inLo + 255) {
      copyRef(view, inp.data, n, inp.channels, inp.stride, yStride);
    } else {
      requantizeRef(view, inp.data, n, inp.channels, inp.stride, yStride, inp.zeroPoint, Math.fround(Math.fround(inp.scale) / Math.fround(scale)), zp, qmin, qmax);
    }
    off += inp.channels;
  }
}
