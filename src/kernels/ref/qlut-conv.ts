// Plain scalar reference of the LUT-decoded int16 conv (qlut_qc16w_conv_nhwc_f32) and of the plain decode
// (qlut_decode_nhwc). Ground truth for the WASM kernels, bit for bit; it reads like the math:
//
//   decoded activation:  a = lut[c·K + code]                      (int16; taps outside the image: a = 0)
//   accumulator:         acc[o] = Σ_{kh,kw,c} a·w[o,kh,kw,c]       (exact integer; must lie in int32)
//   epilogue:            y = clamp(f32(f32(f32(acc)·mult[o]) + bias[o]), outMin, outMax)
//
// f32 steps via Math.fround: the double product of two f32 is exact, and a double sum of two f32 rounded once
// to f32 is the correctly rounded f32 sum (53 ≥ 2·24 + 2), so each step equals the WASM f32 op.
import { convAccRef, type ConvRefShape } from "./qs8-conv.ts";

export interface QlutConvRefArgs extends ConvRefShape {
  /** u8 codes, pixel p channel c at p·inStride + c. */
  codes: Uint8Array;
  inStride: number;
  /** int16 [Cin][K]. */
  lut: Int16Array;
  K: number;
  /** OHWI integer weights w[((o·k + kh)·k + kw)·Cin + c]. */
  weights: ArrayLike<number>;
}

/** acc[(y·W + x)·Cout + o] as exact integers (the dequantized tensor is padded with 0); throws RangeError when one leaves int32. */
export function qlutConvAccRef(a: QlutConvRefArgs): Float64Array {
  const { codes, lut, K } = a;
  const acc = convAccRef(a, (ib, c) => lut[c * K + codes[ib + c]], null);
  for (const s of acc) if (s !== (s | 0)) throw new RangeError(`accumulator ${s} leaves int32`);
  return acc;
}

/** The f32 epilogue of one accumulator (see the header). */
export function qlutEpilogueRef(acc: number, mult: number, bias: number, outMin: number, outMax: number): number {
  const v = Math.fround(Math.fround(Math.fround(acc) * Math.fround(mult)) + Math.fround(bias));
  return Math.min(Math.max(v, Math.fround(outMin)), Math.fround(outMax));
}

/** out[p·outStride + o] = epilogue(acc); other channels of out untouched. */
export function qlutConvRef(out: Float32Array, outStride: number, a: QlutConvRefArgs, mult: ArrayLike<number>,
  bias: ArrayLike<number> | null, outMin = -Infinity, outMax = Infinity): Float32Array {
  const acc = qlutConvAccRef(a);
  for (let i = 0; i < a.H * a.W; i++) {
    for (let o = 0; o < a.Cout; o++) {
      out[i * outStride + o] = qlutEpilogueRef(acc[i * a.Cout + o], mult[o], bias ? bias[o] : 0, outMin, outMax);
    }
  }
  return out;
}

/** out[p·outStride + c] = lut[c·K + codes[p·inStride + c]]. */
export function qlutDecodeRef(out: Int16Array, codes: Uint8Array, pixels: number, channels: number, inStride: number,
  lut: Int16Array, K: number, outStride: number): Int16Array {
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < channels; c++) out[p * outStride + c] = lut[c * K + codes[p * inStride + c]];
  }
  return out;
}
