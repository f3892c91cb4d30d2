// qlut_qc16w_conv_nhwc_f32: the "fast path" (DAQ §6 B / DFSQ §7 (a)) of a dynamically quantized conv —
// u8 activation codes decoded through a per-image, per-input-channel int16 LUT, × int16 weights, exact int32
// accumulation, f32 epilogue. Stride 1, 'same' padding, odd k, NHWC with pixel strides. Wrapper + validation:
// src/kernels/qlut-conv.ts; reference: src/kernels/ref/qlut-conv.ts.
//
// Arithmetic. The caller picks a per-image scalar S and writes lut[c·K + code] = round(x̂_c(code)/S) (int16);
// weights are integers w[o] with a per-output scale wscale[o] (real ŵ = wscale[o]·w). Then
//
//   y[o] = Σ_taps x̂·ŵ[o] + b[o] ≈ S·wscale[o] · Σ_taps lut·w[o] + b[o]
//   acc[o] = Σ_taps lut_c[code]·w[o]                                     (exact int32: the wrapper proves
//                                                                         max|lut|·Σ_taps|w[o]| < 2^31)
//   y[o]  = clamp(f32(f32(f32(acc)·mult[o]) + bias[o]), outMin, outMax),  mult[o] = f32(S·wscale[o])
//
// (no FMA: two separately rounded f32 ops, so the TS reference with Math.fround matches bit for bit; the clamp
// is f32x4.max/min, i.e. Math.max/min semantics, −0 < +0: epilogueF32 in ./qs8-conv-common.ts.)
//
// 'same' padding: the reference zero-pads the *dequantized* tensor, i.e. with x̂ = 0, which is integer 0 in the
// LUT domain whatever μ_c is — so the padded ring is plain 0 (exact). The decode happens once per input
// element in the prepare stage (per band: the 2p overlap rows are decoded twice), against k²·Cout MACs per
// element in the accumulate stage, so a scalar table load is cheap enough. The decoded rows have the geometry
// of the qs8 conv's i16 rows, and the accumulate + epilogue stage *is* the qs8 conv's i16 direct path
// (accumulateI16 of ./qs8-conv-common.ts in its OUT_F32 mode: i32x4.dot_i16x8_s on input-channel pairs,
// 4 pixels × 8 output channels, 8 v128 accumulators).
//
// The packed weight blob (packQlutConv) is the qs8 layout up to its w16 section: 8·CoutP zero bytes (the int32
// accumulator start bias_q = 0 — the bias is added in f32 — and the unused Σw slots), then per block of 8
// output channels (CoutP = Cout↑8), per kh, per kw, per input-channel pair c (Cin2 = Cin↑2), 32 bytes =
//   i16 [w(o0,c) w(o0,c+1) w(o1,c) w(o1,c+1) w(o2,c) … w(o3,c+1)] [w(o4,c) w(o4,c+1) … w(o7,c+1)]
// (padding weights 0). |w| ≤ 32767 and |lut| ≤ 32768 keep every i16 pair sum of the dot inside int32
// (2·32768·32767 < 2^31); partial sums of the accumulators are exact modulo 2^32 anyway and the final value
// is proven to lie in int32.

import { accumulateI16, OUT_F32, ringRow } from "./qs8-conv-common";

/**
 * Decoded, padded input rows y0−p … y0−p+nRows−1 into dst as i16 — the geometry of prepareI16 in
 * ./qs8-conv-common.ts: each row p ring pixels, Wc image pixels (Wc ≥ W; columns W..Wc−1 are ring too, so a
 * 4-pixel block always has data to read), p ring pixels; each pixel Cin2 i16 (channel padding 0). Ring = 0 (the
 * real value 0). Rows outside the image are all ring.
 */
function prepareLut(codes: usize, inStride: i32, H: i32, W: i32, Cin: i32, lut: usize, K: i32,
  y0: i32, nRows: i32, p: i32, Wc: i32, Cin2: i32, dst: usize): void {
  const pxBytes = <usize>Cin2 << 1;
  const rowBytes = <usize>(Wc + 2 * p) * pxBytes;
  for (let r = 0; r < nRows; r++) {
    const y = y0 - p + r;
    const d = dst + <usize>r * rowBytes;
    if (!ringRow(d, y, H, W, p, Wc, pxBytes, 0)) continue;
    // The odd channel's u32 store also writes the padding channel's 0.
    decodeRows(codes + <usize>y * <usize>W * <usize>inStride, W, Cin, inStride, lut, K, d + <usize>p * pxBytes, pxBytes, true);
  }
}

/**
 * n pixels × c channels: q[c'] = lut[c'·K + s[c']] (i16), two channels per u32 store; pixels inStride bytes /
 * outPx bytes apart. `padPair`: an odd last channel is stored as a u32 with a 0 partner, else as one i16.
 */
@inline function decodeRows(s: usize, n: i32, c: i32, inStride: i32, lut: usize, K: i32, q: usize, outPx: usize,
  padPair: bool): void {
  const lutRow = <usize>K << 1;
  for (let i = 0; i < n; i++) {
    let l = lut;
    let j = 0;
    for (; j + 2 <= c; j += 2) {
      const v0 = <u32>load<u16>(l + (<usize>load<u8>(s + j) << 1));
      const v1 = <u32>load<u16>(l + lutRow + (<usize>load<u8>(s + j, 1) << 1));
      store<u32>(q + (<usize>j << 1), v0 | (v1 << 16));
      l += lutRow << 1;
    }
    if (j < c) {
      const v = load<u16>(l + (<usize>load<u8>(s + j) << 1));
      if (padPair) store<u32>(q + (<usize>j << 1), <u32>v);
      else store<u16>(q + (<usize>j << 1), v);
    }
    s += <usize>inStride;
    q += outPx;
  }
}

/**
 * The whole conv. codes: u8 [H·W pixels, stride inStride bytes] with every code < K; lut: i16 [Cin][K];
 * packed: packQlutConv bytes; mult, bias: f32 [Cout↑8]; output: f32, stride outStride elements (only channels
 * 0..Cout−1 of each pixel are written). Bands of `bandRows` output rows are decoded into `scratch`
 * (qlutConvScratchBytes in the wrapper) and accumulated by the i16 direct path of the qs8 conv (OUT_F32).
 */
export function qlut_qc16w_conv_nhwc_f32(codes: usize, inStride: i32, H: i32, W: i32, Cin: i32, lut: usize, K: i32,
  k: i32, packed: usize, Cout: i32, mult: usize, bias: usize, output: usize, outStride: i32,
  outMin: f32, outMax: f32, scratch: usize, bandRows: i32): void {
  const p = (k - 1) >> 1;
  const Wc = W < 4 ? 4 : W;
  const Cin2 = (Cin + 1) & ~1;
  const outPx = <usize>outStride << 2;
  for (let y0 = 0; y0 < H; y0 += bandRows) {
    const n = min(bandRows, H - y0);
    prepareLut(codes, inStride, H, W, Cin, lut, K, y0, n + 2 * p, p, Wc, Cin2, scratch);
    accumulateI16(scratch, W, Wc, p, Cin2, k, n, packed, Cout, mult, bias,
      output + <usize>y0 * <usize>W * outPx, outStride, OUT_F32, 0, outMin, outMax);
  }
}

/**
 * Plain decode: out[p·outStride + c] = lut[c·K + codes[p·inStride + c]] (int16), n pixels × c channels — the
 * int16 activation tensor the exact path (per-input-channel partial sums) consumes. Every code < K.
 */
export function qlut_decode_nhwc(codes: usize, n: i32, c: i32, inStride: i32, lut: usize, K: i32,
  out: usize, outStride: i32): void {
  decodeRows(codes, n, c, inStride, lut, K, out, <usize>outStride << 1, false);
}
