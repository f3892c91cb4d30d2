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
// is f32x4.max/min, i.e. Math.max/min semantics, −0 < +0.)
//
// 'same' padding: the reference zero-pads the *dequantized* tensor, i.e. with x̂ = 0, which is integer 0 in the
// LUT domain whatever μ_c is — so the padded ring is plain 0 (exact). The decode happens once per input
// element in the prepare stage (per band: the 2p overlap rows are decoded twice), against k²·Cout MACs per
// element in the accumulate stage, so a scalar table load is cheap enough; the inner loop is the i16 loop
// of ./qs8-conv-common.ts (i32x4.dot_i16x8_s on input-channel pairs, 4 pixels × 8 output channels,
// 8 v128 accumulators).
//
// The packed weight blob (packQlutConv) is the w16 section of the qs8 layout and nothing else: per block of 8
// output channels (CoutP = Cout↑8), per kh, per kw, per input-channel pair c (Cin2 = Cin↑2), 32 bytes =
//   i16 [w(o0,c) w(o0,c+1) w(o1,c) w(o1,c+1) w(o2,c) … w(o3,c+1)] [w(o4,c) w(o4,c+1) … w(o7,c+1)]
// (padding weights 0). |w| ≤ 32767 and |lut| ≤ 32768 keep every i16 pair sum of the dot inside int32
// (2·32768·32767 < 2^31); partial sums of the accumulators are exact modulo 2^32 anyway and the final value
// is proven to lie in int32.

/** 32 bytes of static data for partial (channel-tail) stores. */
const TAIL: usize = memory.data(32, 16);

/**
 * Decoded, padded input rows y0−p … y0−p+nRows−1 into dst as i16: each row p ring pixels, Wc image pixels
 * (Wc ≥ W; columns W..Wc−1 are ring too, so a 4-pixel block always has data to read), p ring pixels; each
 * pixel Cin2 i16 (channel padding 0). Ring = 0 (the real value 0). Rows outside the image are all ring.
 */
function prepareLut(codes: usize, inStride: i32, H: i32, W: i32, Cin: i32, lut: usize, K: i32,
  y0: i32, nRows: i32, p: i32, Wc: i32, Cin2: i32, dst: usize): void {
  const pxBytes = <usize>Cin2 << 1;
  const rowBytes = <usize>(Wc + 2 * p) * pxBytes;
  const lutRow = <usize>K << 1;
  for (let r = 0; r < nRows; r++) {
    const y = y0 - p + r;
    const d = dst + <usize>r * rowBytes;
    if (y < 0 || y >= H) {
      memory.fill(d, 0, rowBytes);
      continue;
    }
    memory.fill(d, 0, <usize>p * pxBytes);
    memory.fill(d + <usize>(p + W) * pxBytes, 0, <usize>(Wc - W + p) * pxBytes);
    let s = codes + <usize>y * <usize>W * <usize>inStride;
    let q = d + <usize>p * pxBytes;
    for (let x = 0; x < W; x++) {
      let l = lut;
      let c = 0;
      for (; c + 2 <= Cin; c += 2) {
        const v0 = <u32>load<u16>(l + (<usize>load<u8>(s + c) << 1));
        const v1 = <u32>load<u16>(l + lutRow + (<usize>load<u8>(s + c, 1) << 1));
        store<u32>(q + (<usize>c << 1), v0 | (v1 << 16));
        l += lutRow << 1;
      }
      if (c < Cin) {
        store<u32>(q + (<usize>c << 1), <u32>load<u16>(l + (<usize>load<u8>(s + c) << 1)));
      }
      s += <usize>inStride;
      q += pxBytes;
    }
  }
}

/** y = clamp(f32(f32(f32(acc)·m) + b), lo, hi) for 4 lanes. */
@inline function epilogue(acc: v128, m: v128, b: v128, lo: v128, hi: v128): v128 {
  const v = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(acc), m), b);
  return f32x4.min(f32x4.max(v, lo), hi);
}

/** Stores one pixel's 8 output channels (accumulators a = o0..3, c = o4..7), nValid ≤ 8 of them. */
@inline function storePixel(a: v128, c: v128, dst: usize, nValid: i32,
  m0: v128, m1: v128, b0: v128, b1: v128, lo: v128, hi: v128): void {
  const y0 = epilogue(a, m0, b0, lo, hi);
  const y1 = epilogue(c, m1, b1, lo, hi);
  if (nValid == 8) {
    v128.store(dst, y0);
    v128.store(dst, y1, 16);
  } else {
    v128.store(TAIL, y0);
    v128.store(TAIL, y1, 16);
    for (let i = 0; i < nValid; i++) store<u32>(dst + (<usize>i << 2), load<u32>(TAIL + (<usize>i << 2)));
  }
}

/**
 * Output rows of one band from the prepared rows: per row, per block of 8 output channels (its weights stay in
 * L1 across the row), per block of 4 pixels (the last block overlaps the previous one when W % 4 ≠ 0).
 */
function accumulate(src: usize, W: i32, Wc: i32, p: i32, Cin2: i32, k: i32, nRows: i32,
  packed: usize, Cout: i32, mult: usize, bias: usize, out: usize, outStride: i32, outMin: f32, outMax: f32): void {
  const CoutP = (Cout + 7) & ~7;
  const pxBytes = <usize>Cin2 << 1;
  const px2 = pxBytes << 1;
  const px3 = px2 + pxBytes;
  const rowBytes = <usize>(Wc + 2 * p) * pxBytes;
  const runBytes = <usize>k * pxBytes;
  const wBlock = <usize>(k * k * Cin2) << 4;
  const outPx = <usize>outStride << 2;
  const nPix = W < 4 ? W : 4;
  const lastX = W < 4 ? 0 : W - 4;
  const lo = f32x4.splat(outMin);
  const hi = f32x4.splat(outMax);
  const zero = i32x4.splat(0);
  for (let r = 0; r < nRows; r++) {
    const rowIn = src + <usize>r * rowBytes;
    const rowOut = out + <usize>r * <usize>W * outPx;
    for (let ob = 0; ob < CoutP; ob += 8) {
      const m0 = v128.load(mult + (<usize>ob << 2));
      const m1 = v128.load(mult + (<usize>ob << 2), 16);
      const b0 = v128.load(bias + (<usize>ob << 2));
      const b1 = v128.load(bias + (<usize>ob << 2), 16);
      const wb = packed + <usize>(ob >> 3) * wBlock;
      const nValid = min(8, Cout - ob);
      for (let x = 0; x < W; x += 4) {
        const xs = x > lastX ? lastX : x;
        let c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero, c30 = zero, c31 = zero;
        let pw = wb;
        let pi = rowIn + <usize>xs * pxBytes;
        for (let kh = 0; kh < k; kh++) {
          let pa = pi;
          const end = pa + runBytes;
          do {
            const w0 = v128.load(pw);
            const w1 = v128.load(pw, 16);
            const a0 = v128.load32_splat(pa);
            const a1 = v128.load32_splat(pa + pxBytes);
            const a2 = v128.load32_splat(pa + px2);
            const a3 = v128.load32_splat(pa + px3);
            c00 = i32x4.add(c00, i32x4.dot_i16x8_s(a0, w0));
            c01 = i32x4.add(c01, i32x4.dot_i16x8_s(a0, w1));
            c10 = i32x4.add(c10, i32x4.dot_i16x8_s(a1, w0));
            c11 = i32x4.add(c11, i32x4.dot_i16x8_s(a1, w1));
            c20 = i32x4.add(c20, i32x4.dot_i16x8_s(a2, w0));
            c21 = i32x4.add(c21, i32x4.dot_i16x8_s(a2, w1));
            c30 = i32x4.add(c30, i32x4.dot_i16x8_s(a3, w0));
            c31 = i32x4.add(c31, i32x4.dot_i16x8_s(a3, w1));
            pa += 4;
            pw += 32;
          } while (pa < end);
          pi += rowBytes;
        }
        const d = rowOut + <usize>xs * outPx + (<usize>ob << 2);
        storePixel(c00, c01, d, nValid, m0, m1, b0, b1, lo, hi);
        if (nPix > 1) storePixel(c10, c11, d + outPx, nValid, m0, m1, b0, b1, lo, hi);
        if (nPix > 2) storePixel(c20, c21, d + 2 * outPx, nValid, m0, m1, b0, b1, lo, hi);
        if (nPix > 3) storePixel(c30, c31, d + 3 * outPx, nValid, m0, m1, b0, b1, lo, hi);
      }
    }
  }
}

/**
 * The whole conv. codes: u8 [H·W pixels, stride inStride bytes] with every code < K; lut: i16 [Cin][K];
 * packed: packQlutConv bytes; mult, bias: f32 [Cout↑8]; output: f32, stride outStride elements (only channels
 * 0..Cout−1 of each pixel are written). Bands of `bandRows` output rows are decoded into `scratch`
 * (qlutConvScratchBytes in the wrapper) and accumulated.
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
    accumulate(scratch, W, Wc, p, Cin2, k, n, packed, Cout, mult, bias,
      output + <usize>y0 * <usize>W * outPx, outStride, outMin, outMax);
  }
}

/**
 * Plain decode: out[p·outStride + c] = lut[c·K + codes[p·inStride + c]] (int16), n pixels × c channels — the
 * int16 activation tensor the exact path (per-input-channel partial sums) consumes. Every code < K.
 */
export function qlut_decode_nhwc(codes: usize, n: i32, c: i32, inStride: i32, lut: usize, K: i32,
  out: usize, outStride: i32): void {
  const lutRow = <usize>K << 1;
  let s = codes, q = out;
  const outPx = <usize>outStride << 1;
  for (let i = 0; i < n; i++) {
    let l = lut;
    let j = 0;
    for (; j + 2 <= c; j += 2) {
      const v0 = <u32>load<u16>(l + (<usize>load<u8>(s + j) << 1));
      const v1 = <u32>load<u16>(l + lutRow + (<usize>load<u8>(s + j, 1) << 1));
      store<u32>(q + (<usize>j << 1), v0 | (v1 << 16));
      l += lutRow << 1;
    }
    if (j < c) store<u16>(q + (<usize>j << 1), load<u16>(l + (<usize>load<u8>(s + j) << 1)));
    s += <usize>inStride;
    q += outPx;
  }
}
