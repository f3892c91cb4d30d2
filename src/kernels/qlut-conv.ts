// LUT-decoded int16 conv: the fast path of the dynamically quantized convs (DAQ §6 B, DFSQ §7 (a)).
// u8 activation codes → per-image, per-input-channel int16 table lut[c·K + code] = round(x̂_c(code)/S) →
// int16 × int16 weights (OHWI, real ŵ = wscale[o]·w) → exact int32 → y = clamp(f32(acc)·mult[o] + bias[o])
// in f32, mult[o] = S·wscale[o]. Stride 1, 'same' padding (exact: x̂ = 0 is integer 0), odd k.
//
// API layers as in ./qs8-conv.ts:
//   packQlutConv     once per layer: weights → kernel layout, Σ|w[o]| for the overflow proof.
//   qlutLutLimit     the largest |lut| the layer allows: callers size S with it (S ≥ max|x̂| / limit).
//   qlutConvRun      the engine's call on arena offsets (validated scalars, LUT and epilogue constants).
//   qlutConv         typed-array convenience (also validates every code < K).
//   qlutDecodeAt / qlutDecode   plain u8 code → int16 decode (input of the exact path).
// Kernel: assembly/conv/qlut-qc16w-conv-nhwc.ts. Reference: ./ref/qlut-conv.ts.
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { type F32ConvOutput, type PackedConvLayer, checkConvGeometry, checkConvShape, checkImageSize, f32Clamp, ohwiTap, packI16Blocks } from "./qs8-conv.ts";
import { MAX_I32, checkArray, checkDims, checkPtr, rtOr, spanOf, strideOf, withScratch } from "./elementwise-common.ts";

interface Kernels {
  qlut_qc16w_conv_nhwc_f32(codes: number, inStride: number, H: number, W: number, Cin: number, lut: number, K: number,
    k: number, packed: number, Cout: number, mult: number, bias: number, output: number, outStride: number,
    outMin: number, outMax: number, scratch: number, bandRows: number): void;
  qlut_decode_nhwc(codes: number, n: number, c: number, inStride: number, lut: number, K: number, out: number, outStride: number): void;
}

const TWO31 = 2 ** 31;

/** A layer packed for qlut_qc16w_conv_nhwc_f32. */
export interface PackedQlutConv extends PackedConvLayer {
  /**
   * Kernel layout (CoutP = cout↑8, Cin2 = cin↑2, padding weights 0) — the qs8 layout up to its i16 section:
   * 8·CoutP zero bytes (int32 accumulator start 0; the bias is added in f32), then per block of 8 output
   * channels, per kh, kw, input-channel pair c: i16 w(o0,c) w(o0,c+1) w(o1,c) … w(o7,c+1) (32 bytes).
   */
  readonly bytes: Uint8Array;
  /** Σ_taps |w[o]| per output channel. */
  readonly absWeightSum: Float64Array;
  /** max_o Σ_taps |w[o]|: the overflow contract is max|lut| · maxAbsWeightSum < 2^31. */
  readonly maxAbsWeightSum: number;
}

export interface QlutPackArgs {
  cout: number;
  k: number;
  cin: number;
}

/** Bytes of the packed blob. */
export function packedQlutConvBytes(cout: number, k: number, cin: number): number {
  const coutP = (cout + 7) & ~7;
  return coutP * 8 + coutP * k * k * ((cin + 1) & ~1) * 2;
}

/**
 * Packs int16 weights in OHWI order (`weights[((o·k + kh)·k + kw)·cin + c]`, the order of packQs8Qc8wConv),
 * |w| ≤ 32767 (−32768 is refused: with it a dot_i16x8 pair could reach 2^31).
 */
export function packQlutConv(weights: Int16Array, a: QlutPackArgs): PackedQlutConv {
  checkConvShape(a);
  check(weights instanceof Int16Array, "E_ARGUMENT", "weights must be an Int16Array (OHWI)");
  const { cout, k, cin } = a;
  const taps = k * k * cin;
  check(weights.length === cout * taps, "E_SHAPE", `weights have ${weights.length} values, cout·k·k·cin = ${cout * taps}`);
  const coutP = (cout + 7) & ~7;
  const cin2 = (cin + 1) & ~1;
  const bytes = new Uint8Array(packedQlutConvBytes(cout, k, cin));
  const absWeightSum = new Float64Array(cout);
  let maxAbsWeightSum = 0;
  for (let o = 0; o < cout; o++) {
    let s = 0;
    for (let i = o * taps; i < (o + 1) * taps; i++) {
      const w = weights[i];
      if (w === -32768) throw new LowbitError("E_RANGE", `weight −32768 at index ${i}: int16 weights must lie in [−32767, 32767]`);
      s += Math.abs(w);
    }
    absWeightSum[o] = s;
    maxAbsWeightSum = Math.max(maxAbsWeightSum, s);
  }
  // 8·coutP zero bytes (int32 accumulator start 0, unused Σw slots), then the i16 blocks of the qs8 layout.
  packI16Blocks(new DataView(bytes.buffer), coutP * 8, ohwiTap(weights, cout, k, cin), coutP, k, cin2);
  return { k, cin, cout, coutPadded: coutP, bytes, absWeightSum, maxAbsWeightSum };
}

/**
 * The largest L ≤ 32767 with L · maxAbsWeightSum < 2^31: every |lut| ≤ L keeps all accumulators exact in int32.
 * Callers pick S ≥ max_c,code |x̂_c(code)| / L (and round the table to nearest, so |lut| ≤ L).
 */
export function qlutLutLimit(maxAbsWeightSum: number): number {
  check(Number.isFinite(maxAbsWeightSum) && maxAbsWeightSum >= 0, "E_ARGUMENT", `maxAbsWeightSum must be finite and ≥ 0, got ${maxAbsWeightSum}`);
  if (maxAbsWeightSum === 0) return 32767;
  return Math.min(32767, Math.ceil(TWO31 / maxAbsWeightSum) - 1);
}

/** Default rows per band: the decoded band (i16, padded) stays around 384 KiB, in L2. */
export function qlutConvBandRows(W: number, cin: number, k: number): number {
  const p = (k - 1) >> 1;
  const rowBytes = (Math.max(W, 4) + 2 * p) * ((cin + 1) & ~1) * 2;
  return Math.max(1, Math.min(1 << 16, Math.floor((384 * 1024) / rowBytes) - 2 * p));
}

/** Scratch bytes for images of width W (any height) with bands of `bandRows` output rows (default qlutConvBandRows). */
export function qlutConvScratchBytes(W: number, cin: number, k: number, bandRows = qlutConvBandRows(W, cin, k)): number {
  const p = (k - 1) >> 1;
  return (bandRows + 2 * p) * (Math.max(W, 4) + 2 * p) * ((cin + 1) & ~1) * 2;
}

/** One conv call on arena offsets (the engine's entry). */
export interface QlutConvCall extends F32ConvOutput {
  layer: PackedQlutConv;
  /** Offset of layer.bytes (2-aligned). */
  packed: number;
  H: number;
  W: number;
  /** u8 codes, pixel p at codes + p·inStride; every code < K (the caller's guarantee: codes come from a quantizer). */
  codes: number;
  inStride: number;
  /** Offset of the int16 table [cin][K] (2-aligned). */
  lut: number;
  /** Codes per channel, 1..256. */
  K: number;
  /** Offsets of f32[layer.coutPadded] multipliers S·wscale[o] and biases (4-aligned; entries past cout are read, unused). */
  mult: number;
  bias: number;
  /** Offset of ≥ qlutConvScratchBytes(W, cin, k, bandRows) bytes (4-aligned). */
  scratch: number;
  /** Rows per band (default qlutConvBandRows(W, cin, k)). */
  bandRows?: number;
}

/** E_RANGE unless max|lut| · max_o Σ|w[o]| < 2^31 (every int32 accumulator is exact). */
export function checkLutOverflow(layer: PackedQlutConv, maxAbsLut: number): void {
  if (maxAbsLut * layer.maxAbsWeightSum >= TWO31) {
    throw new LowbitError("E_RANGE", `int32 accumulator may overflow: max|lut| ${maxAbsLut} · max Σ|w| ${layer.maxAbsWeightSum} ≥ 2^31 ` +
      `(lower the LUT scale: |lut| ≤ qlutLutLimit = ${qlutLutLimit(layer.maxAbsWeightSum)})`);
  }
}

/**
 * LUT conv on arena offsets. Validates the scalars, the pointers against linear memory, the overflow bound
 * (it scans the cin·K LUT entries: negligible next to the conv) and the finiteness of the cout multipliers and
 * biases. Codes < K is the caller's guarantee (a larger code reads another channel's entry).
 */
export function qlutConvRun(rt: Runtime, c: QlutConvCall): void {
  const L = c.layer;
  check(L && L.bytes instanceof Uint8Array && L.absWeightSum instanceof Float64Array, "E_ARGUMENT", "layer must come from packQlutConv");
  checkConvGeometry(L, c.H, c.W, c.inStride, c.outStride);
  checkInt(c.K, 1, 256, "K (codes per channel)", "E_BITS");
  const [outMin, outMax] = f32Clamp(c.outMin, c.outMax);
  const band = c.bandRows ?? qlutConvBandRows(c.W, L.cin, L.k);
  checkInt(band, 1, 1 << 16, "bandRows");
  const px = c.H * c.W;
  check(px * Math.max(c.inStride, c.outStride * 4) < TWO31, "E_MEMORY", `${c.H}×${c.W} image too large for 32-bit offsets`);
  checkPtr(rt, c.packed, L.bytes.length, "packed weights", 2);
  checkPtr(rt, c.codes, spanOf(px, L.cin, c.inStride), "codes");
  checkPtr(rt, c.lut, 2 * L.cin * c.K, "lut", 2);
  checkPtr(rt, c.mult, 4 * L.coutPadded, "mult", 4);
  checkPtr(rt, c.bias, 4 * L.coutPadded, "bias", 4);
  checkPtr(rt, c.output, 4 * spanOf(px, L.cout, c.outStride), "output", 4);
  checkPtr(rt, c.scratch, qlutConvScratchBytes(c.W, L.cin, L.k, Math.min(band, c.H)), "scratch", 4);
  const lut = rt.arena.i16.subarray(c.lut >> 1, (c.lut >> 1) + L.cin * c.K);
  let maxAbs = 0;
  for (let i = 0; i < lut.length; i++) maxAbs = Math.max(maxAbs, Math.abs(lut[i]));
  checkLutOverflow(L, maxAbs);
  const f = rt.arena.f32;
  for (let o = 0; o < L.cout; o++) {
    const m = f[(c.mult >> 2) + o], b = f[(c.bias >> 2) + o];
    check(Number.isFinite(m) && Number.isFinite(b), "E_RANGE", () => `mult[${o}] = ${m}, bias[${o}] = ${b} must be finite`);
  }
  rt.kernels<Kernels>().qlut_qc16w_conv_nhwc_f32(c.codes, c.inStride, c.H, c.W, L.cin, c.lut, c.K, L.k, c.packed, L.cout,
    c.mult, c.bias, c.output, c.outStride, Math.fround(outMin), Math.fround(outMax), c.scratch, Math.min(band, c.H));
}

/** Typed-array form of the conv's data. */
export interface QlutConvArrays {
  H: number;
  W: number;
  /** Codes per channel (1..256); every code < K. */
  K: number;
  /** u8 codes (NHWC, pixel stride inStride). */
  codes: Uint8Array;
  /** int16 [cin][K]. */
  lut: Int16Array;
  /** f32 per output channel (length cout): S·wscale[o]. */
  mult: Float32Array;
  /** f32 per output channel (length cout), or absent for 0. */
  bias?: Float32Array | null;
  inStride?: number;
  /** Elements between output pixels (default cout); other channels of `out` are left untouched. */
  outStride?: number;
  outMin?: number;
  outMax?: number;
}

/** out = LUT conv of the codes (typed arrays, copied through arena scratch); validates every code < K. */
export function qlutConv(rt: Runtime, out: Float32Array, layer: PackedQlutConv, a: QlutConvArrays): Float32Array {
  check(layer && layer.bytes instanceof Uint8Array, "E_ARGUMENT", "layer must come from packQlutConv");
  check(out instanceof Float32Array, "E_ARGUMENT", "out must be a Float32Array");
  check(a.codes instanceof Uint8Array, "E_ARGUMENT", "codes must be a Uint8Array");
  check(a.lut instanceof Int16Array, "E_ARGUMENT", "lut must be an Int16Array");
  check(a.mult instanceof Float32Array && a.mult.length === layer.cout, "E_SHAPE", `mult must be a Float32Array of ${layer.cout}`);
  if (a.bias != null) check(a.bias instanceof Float32Array && a.bias.length === layer.cout, "E_SHAPE", `bias must be a Float32Array of ${layer.cout}`);
  checkImageSize(a.H, a.W);
  checkInt(a.K, 1, 256, "K (codes per channel)", "E_BITS");
  const inStride = strideOf(a.inStride, layer.cin, "input");
  const outStride = strideOf(a.outStride, layer.cout, "output");
  const px = a.H * a.W;
  checkArray(a.codes, spanOf(px, layer.cin, inStride), "codes");
  checkArray(out, spanOf(px, layer.cout, outStride), "out");
  check(a.lut.length === layer.cin * a.K, "E_SHAPE", `lut has ${a.lut.length} entries, cin·K = ${layer.cin * a.K}`);
  for (let p = 0; p < px; p++) {
    for (let i = p * inStride, e = i + layer.cin; i < e; i++) {
      if (a.codes[i] >= a.K) throw new LowbitError("E_RANGE", `code ${a.codes[i]} at pixel ${p} channel ${i - p * inStride} ≥ K = ${a.K}`);
    }
  }
  withScratch(rt, (s) => {
    const m = new Float32Array(layer.coutPadded);
    m.set(a.mult);
    const b = new Float32Array(layer.coutPadded);
    if (a.bias) b.set(a.bias);
    const band = qlutConvBandRows(a.W, layer.cin, layer.k);
    qlutConvRun(rt, {
      layer, packed: s.put(layer.bytes), H: a.H, W: a.W, codes: s.put(a.codes, spanOf(px, layer.cin, inStride)), inStride,
      lut: s.put(a.lut), K: a.K, mult: s.put(m), bias: s.put(b),
      output: s.out(out, spanOf(px, layer.cout, outStride), outStride !== layer.cout), outStride,
      outMin: a.outMin, outMax: a.outMax,
      scratch: s.alloc(qlutConvScratchBytes(a.W, layer.cin, layer.k, Math.min(band, a.H))), bandRows: band,
    });
  });
  return out;
}

// --------------------------------------------------------------------------------------------------------

/** Plain decode on arena offsets: out[p·outStride + c] = lut[c·K + codes[p·inStride + c]] (int16). */
export interface QlutDecodeAt {
  codes: number;
  pixels: number;
  channels: number;
  inStride?: number;
  /** Offset of int16 [channels][K] (2-aligned). */
  lut: number;
  K: number;
  /** Offset of the int16 output (2-aligned); stride in elements. */
  out: number;
  outStride?: number;
}

/** Validated decode on arena offsets. Codes < K is the caller's guarantee. */
export function qlutDecodeAt(rt: Runtime, a: QlutDecodeAt): void {
  checkDims(a.pixels, a.channels);
  checkInt(a.K, 1, 256, "K (codes per channel)", "E_BITS");
  const is = strideOf(a.inStride, a.channels, "input");
  const os = strideOf(a.outStride, a.channels, "output");
  check(spanOf(a.pixels, a.channels, Math.max(is, os)) * 2 <= MAX_I32, "E_MEMORY", "tensor too large for 32-bit offsets");
  checkPtr(rt, a.codes, spanOf(a.pixels, a.channels, is), "codes");
  checkPtr(rt, a.lut, 2 * a.channels * a.K, "lut", 2);
  checkPtr(rt, a.out, 2 * spanOf(a.pixels, a.channels, os), "output", 2);
  rt.kernels<Kernels>().qlut_decode_nhwc(a.codes, a.pixels, a.channels, is, a.lut, a.K, a.out, os);
}

/** out (int16) = lut-decoded codes, typed arrays; validates every code < K. */
export function qlutDecode(out: Int16Array, codes: Uint8Array, lut: Int16Array,
  layout: { pixels: number; channels: number; K: number; inStride?: number; outStride?: number }, rt?: Runtime): Int16Array {
  check(out instanceof Int16Array, "E_ARGUMENT", "out must be an Int16Array");
  check(codes instanceof Uint8Array, "E_ARGUMENT", "codes must be a Uint8Array");
  check(lut instanceof Int16Array, "E_ARGUMENT", "lut must be an Int16Array");
  const { pixels: n, channels: c, K } = layout;
  checkDims(n, c);
  checkInt(K, 1, 256, "K (codes per channel)", "E_BITS");
  const is = strideOf(layout.inStride, c, "input");
  const os = strideOf(layout.outStride, c, "output");
  checkArray(codes, spanOf(n, c, is), "codes");
  checkArray(out, spanOf(n, c, os), "out");
  check(lut.length === c * K, "E_SHAPE", `lut has ${lut.length} entries, channels·K = ${c * K}`);
  for (let p = 0; p < n; p++) {
    for (let i = p * is, e = i + c; i < e; i++) {
      if (codes[i] >= K) throw new LowbitError("E_RANGE", `code ${codes[i]} at pixel ${p} channel ${i - p * is} ≥ K = ${K}`);
    }
  }
  if (n === 0) return out;
  const r = rtOr(rt);
  withScratch(r, (s) => {
    qlutDecodeAt(r, { codes: s.put(codes, spanOf(n, c, is)), pixels: n, channels: c, inStride: is, lut: s.put(lut), K,
      out: s.out(out, spanOf(n, c, os), os !== c), outStride: os });
  });
  return out;
}
