// Exact integer conv with per-image, per-input-channel activation scales (DAQ §6 path A, DFSQ §7 (b)):
// int16 activations g with x̂ = a_c·g + μ_c, int16 weights with per-output scales, f32 output
//   y[o,p] = clamp(b_o + s_o · Σ_c (a_c·P[o,c,p] + μ_c·Z[o,c,p]), outMin, outMax)
// with P an exact int32 sum per input channel and Z the in-bounds weight sum (border term).
//
// API layers as ./qs8-conv.ts:
//   packQs16ConvPcs       once per layer: weights → the kernel's pair layout; Σ|w| per (o, c) for the overflow proof.
//   qs16ConvPcsRun        the engine's call on arena offsets, validated scalars, no copies.
//   qs16ConvPcs           typed-array convenience: validates the data too, copies through arena scratch.
// Arithmetic, f32 combine order and kernel design: assembly/conv/qs16-qc16w-conv-nhwc-pcs.ts.
// Reference: ./ref/qs16-conv-pcs.ts.
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { type F32ConvOutput, type PackedConvLayer, checkConvGeometry, checkConvShape, f32Clamp } from "./qs8-conv.ts";

type PcsFn = (input: number, inStride: number, H: number, W: number, Cin: number, chScale: number, chMean: number,
  k: number, packed: number, Cout: number, wscale: number, bias: number, output: number, outStride: number,
  outMin: number, outMax: number, scratch: number, bandRows: number) => void;

interface PcsExports {
  qs16_qc16w_conv_nhwc_pcs_f32: PcsFn;
}

const I32_MAX = 2147483647;
/** Largest kernel size accepted (the border table holds (2p+1)² windows; |Z| ≤ k²·32767 stays in int32). */
export const QS16_PCS_MAX_K = 31;

/** A layer packed for the kernel. */
export interface PackedQs16ConvPcs extends PackedConvLayer {
  /**
   * Kernel layout (NP = (k²+1)/2 tap pairs in flattened order, see the kernel header): per block of 8 output
   * channels, per input channel c, per pair (t0, t1): i16 [w(o0,t0) w(o0,t1) w(o1,t0) … w(o7,t1)] (32 bytes);
   * the partner of the last tap and padding output channels are 0.
   */
  readonly bytes: Uint8Array;
  /** max over (o, c) of Σ_taps |w[o,t,c]|: the overflow bound is max|g| · this < 2^31. */
  readonly maxTapAbsSum: number;
}

export interface Qs16PcsPackArgs {
  cout: number;
  k: number;
  cin: number;
}

/** The tap pairs in the kernel's order: [t0, t1] with t = kh·k + kw; t1 = −1 for the last, unpaired tap. */
export function qs16PcsTapPairs(k: number): Array<[number, number]> {
  const pairs: Array<[number, number]> = [];
  for (let kh = 0; kh < k; kh++) {
    let kw = kh & 1;
    for (; kw + 1 < k; kw += 2) pairs.push([kh * k + kw, kh * k + kw + 1]);
    if (kw === k - 1) pairs.push([kh * k + kw, kh < k - 1 ? (kh + 1) * k : -1]);
  }
  return pairs;
}

/** Bytes of the packed blob. */
export function packedQs16ConvPcsBytes(cout: number, k: number, cin: number): number {
  return ((cout + 7) & ~7) * cin * ((k * k + 1) >> 1) * 4;
}

/**
 * Packs int16 weights, OHWI (`weights[((o·k + kh)·k + kw)·cin + c]`, the issue-5 integer weight format),
 * |w| ≤ 32767 (so a dot_i16x8 pair sum 2·32768·32767 stays below 2^31), into the kernel's pair layout.
 */
export function packQs16ConvPcs(weights: Int16Array, args: Qs16PcsPackArgs): PackedQs16ConvPcs {
  checkConvShape(args, QS16_PCS_MAX_K);
  check(weights instanceof Int16Array, "E_ARGUMENT", "weights must be an Int16Array");
  const { cout, k, cin } = args;
  const n = cout * k * k * cin;
  check(weights.length === n, "E_SHAPE", `weights have ${weights.length} values, cout·k·k·cin = ${n}`);
  for (let i = 0; i < n; i++) {
    if (weights[i] === -32768) throw new LowbitError("E_RANGE", `weight ${i} is −32768; the kernel needs |w| ≤ 32767`);
  }
  const coutP = (cout + 7) & ~7;
  const pairs = qs16PcsTapPairs(k);
  const bytes = new Uint8Array(packedQs16ConvPcsBytes(cout, k, cin));
  const dv = new DataView(bytes.buffer);
  let maxTapAbsSum = 0;
  for (let o = 0; o < cout; o++) {
    for (let c = 0; c < cin; c++) {
      let s = 0;
      for (let t = 0; t < k * k; t++) s += Math.abs(weights[(o * k * k + t) * cin + c]);
      maxTapAbsSum = Math.max(maxTapAbsSum, s);
    }
  }
  const w = (o: number, t: number, c: number): number => (o < cout && t >= 0 ? weights[(o * k * k + t) * cin + c] : 0);
  let off = 0;
  for (let ob = 0; ob < coutP; ob += 8) {
    for (let c = 0; c < cin; c++) {
      for (const [t0, t1] of pairs) {
        for (let j = 0; j < 8; j++) {
          dv.setInt16(off, w(ob + j, t0, c), true);
          dv.setInt16(off + 2, w(ob + j, t1, c), true);
          off += 4;
        }
      }
    }
  }
  return { k, cin, cout, coutPadded: coutP, bytes, maxTapAbsSum };
}

// --------------------------------------------------------------------------------------------------------

/** Geometry of the kernel's planar band records (mirrors wpA / wpB in the kernel). */
function recordBytes(W: number, k: number): number {
  const p = (k - 1) >> 1;
  const Wc = Math.max(W, 4);
  const wpA = (Wc + 2 * p + 8) & ~7;
  const wpB = k > 1 ? (Wc + 7) & ~7 : 0;
  return 2 * wpA + 4 * wpB;
}

/** Output rows per band: the band's planar records take about 512 KiB (L2-resident). */
export function qs16ConvPcsBandRows(H: number, W: number, cin: number, k: number): number {
  const p = (k - 1) >> 1;
  return Math.max(1, Math.min(H, Math.floor((512 * 1024) / (cin * recordBytes(W, k))) - 2 * p));
}

const align16 = (n: number): number => (n + 15) & ~15;

/** Scratch bytes of one call: pair table, border table ((2p+1)² windows × cout↑8 f32) and the band. */
export function qs16ConvPcsScratchBytes(H: number, W: number, cin: number, cout: number, k: number): number {
  const p = (k - 1) >> 1;
  const np = (k * k + 1) >> 1;
  const windows = Math.min(H, 2 * p + 1) * Math.min(W, 2 * p + 1);
  const band = (qs16ConvPcsBandRows(H, W, cin, k) + 2 * p) * cin * recordBytes(W, k);
  return align16(np * 16) + align16(windows * ((cout + 7) & ~7) * 4) + band;
}

/**
 * E_RANGE unless every per-input-channel partial sum provably fits int32:
 * maxAbsInput · max_{o,c} Σ_taps |w[o,t,c]| < 2^31.
 */
export function checkQs16PcsRange(layer: PackedQs16ConvPcs, maxAbsInput: number): void {
  checkInt(maxAbsInput, 0, 32768, "maxAbsInput (bound on |g|)", "E_RANGE");
  const bound = maxAbsInput * layer.maxTapAbsSum;
  if (bound > I32_MAX) {
    throw new LowbitError("E_RANGE", `int32 partial sum may overflow: max|g|·max Σ_taps|w| = ` +
      `${maxAbsInput}·${layer.maxTapAbsSum} ≥ 2^31`);
  }
}

/** One conv call on arena offsets (the engine's entry). */
export interface Qs16ConvPcsCall extends F32ConvOutput {
  layer: PackedQs16ConvPcs;
  /** Arena offset of layer.bytes. */
  packed: number;
  H: number;
  W: number;
  /** Offset of the int16 activations; pixel p's channels start at input + 2·p·inStride. */
  input: number;
  inStride: number;
  /** Caller's bound on |g| (e.g. 2^b − 1 for odd DAQ codes, 2048 for DFSQ's u): the overflow proof uses it. */
  maxAbsInput: number;
  /** Offsets of cin f32 a_c and cin f32 μ_c. */
  chScale: number;
  chMean: number;
  /** Offsets of layer.coutPadded f32 s_o and b_o (entries past cout are read, not used). */
  wscale: number;
  bias: number;
  /** Offset of ≥ qs16ConvPcsScratchBytes(H, W, cin, cout, k) bytes. */
  scratch: number;
}

/**
 * Conv on arena offsets. Validates every scalar and the overflow bound; the caller guarantees the input
 * integers respect `maxAbsInput` and the scale / mean / wscale / bias values are finite.
 */
export function qs16ConvPcsRun(rt: Runtime, c: Qs16ConvPcsCall): void {
  const L = c.layer;
  check(L && L.bytes instanceof Uint8Array && typeof L.maxTapAbsSum === "number", "E_ARGUMENT", "layer must come from packQs16ConvPcs");
  checkConvGeometry(L, c.H, c.W, c.inStride, c.outStride);
  const [outMin, outMax] = f32Clamp(c.outMin, c.outMax);
  checkQs16PcsRange(L, c.maxAbsInput);
  for (const [name, v] of [["packed", c.packed], ["input", c.input], ["chScale", c.chScale], ["chMean", c.chMean],
    ["wscale", c.wscale], ["bias", c.bias], ["output", c.output], ["scratch", c.scratch]] as const) {
    checkInt(v, 0, 2 ** 32 - 1, `${name} offset`);
  }
  rt.kernels<PcsExports>().qs16_qc16w_conv_nhwc_pcs_f32(c.input, c.inStride, c.H, c.W, L.cin, c.chScale, c.chMean,
    L.k, c.packed, L.cout, c.wscale, c.bias, c.output, c.outStride, outMin, outMax, c.scratch,
    qs16ConvPcsBandRows(c.H, c.W, L.cin, L.k));
}

// --------------------------------------------------------------------------------------------------------

export interface Qs16ConvPcsArgs {
  H: number;
  W: number;
  /** Elements between input pixels (default cin). */
  inStride?: number;
  /** Per-input-channel a_c and μ_c (cin each, finite). */
  chScale: Float32Array;
  chMean: Float32Array;
  /** Per-output-channel s_o (cout, finite) and bias b_o (cout, finite; null/absent = 0). */
  wscale: Float32Array;
  bias?: Float32Array | null;
  /** Elements between output pixels (default cout); other channels of `out` are left untouched. */
  outStride?: number;
  outMin?: number;
  outMax?: number;
  /** Declared bound on |g| (default: the input's actual max); the data are checked against it. */
  maxAbsInput?: number;
}

function checkFinite(a: Float32Array, n: number, what: string): void {
  check(a instanceof Float32Array && a.length === n, "E_SHAPE", `${what} must be a Float32Array of ${n}`);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(a[i])) throw new LowbitError("E_RANGE", `${what}[${i}] = ${a[i]} must be finite`);
  }
}

/**
 * out = conv(input) as typed arrays (copied through arena scratch): int16 activations, f32 output.
 */
export function qs16ConvPcs(rt: Runtime, out: Float32Array, input: Int16Array, layer: PackedQs16ConvPcs,
  a: Qs16ConvPcsArgs): Float32Array {
  check(layer && layer.bytes instanceof Uint8Array && typeof layer.maxTapAbsSum === "number", "E_ARGUMENT", "layer must come from packQs16ConvPcs");
  check(a && typeof a === "object", "E_ARGUMENT", "arguments missing");
  check(input instanceof Int16Array, "E_ARGUMENT", "input must be an Int16Array");
  check(out instanceof Float32Array, "E_ARGUMENT", "out must be a Float32Array");
  const { cin, cout } = layer;
  const inStride = a.inStride ?? cin, outStride = a.outStride ?? cout;
  checkConvGeometry(layer, a.H, a.W, inStride, outStride);
  const px = a.H * a.W;
  const needIn = (px - 1) * inStride + cin, needOut = (px - 1) * outStride + cout;
  check(input.length >= needIn, "E_SHAPE", `input holds ${input.length} values, ${a.H}×${a.W} at stride ${inStride} needs ${needIn}`);
  check(out.length >= needOut, "E_SHAPE", `output holds ${out.length} values, ${a.H}×${a.W}×${cout} at stride ${outStride} needs ${needOut}`);
  checkFinite(a.chScale, cin, "chScale");
  checkFinite(a.chMean, cin, "chMean");
  checkFinite(a.wscale, cout, "wscale");
  if (a.bias) checkFinite(a.bias, cout, "bias");
  const [outMin, outMax] = f32Clamp(a.outMin, a.outMax);
  let maxAbs = 0;
  for (let p = 0; p < px; p++) {
    for (let i = p * inStride, e = i + cin; i < e; i++) maxAbs = Math.max(maxAbs, Math.abs(input[i]));
  }
  const bound = a.maxAbsInput ?? maxAbs;
  check(maxAbs <= bound, "E_RANGE", `input holds |g| = ${maxAbs} above the declared maxAbsInput ${bound}`);
  checkQs16PcsRange(layer, bound);
  const ar = rt.arena, m = ar.mark();
  try {
    const pad = (v: Float32Array | null | undefined): Float32Array => {
      const r = new Float32Array(layer.coutPadded);
      if (v) r.set(v.subarray(0, cout));
      return r;
    };
    const packed = ar.put(layer.bytes);
    const inp = ar.put(input.subarray(0, needIn));
    const chScale = ar.put(a.chScale);
    const chMean = ar.put(a.chMean);
    const wscale = ar.put(pad(a.wscale));
    const bias = ar.put(pad(a.bias));
    const output = ar.put(out.subarray(0, needOut)); // keeps the channels of a wider buffer this conv does not write
    const scratch = ar.alloc(qs16ConvPcsScratchBytes(a.H, a.W, cin, cout, layer.k));
    qs16ConvPcsRun(rt, { layer, packed, H: a.H, W: a.W, input: inp, inStride, maxAbsInput: bound, chScale, chMean,
      wscale, bias, output, outStride, outMin, outMax, scratch });
    ar.read(output, out.subarray(0, needOut));
  } finally {
    ar.release(m);
  }
  return out;
}
