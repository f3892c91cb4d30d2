// Quantized NHWC convolution (stride 1, 'same' padding, odd k): uint8/int8 activations of 2..8 bits with a
// per-tensor zero point × int8 (qc8w) or int4 (qc4w) weights with per-output-channel scales.
//
// Three layers of API, gemmlowp/XNNPACK style:
//   pack…            once per layer: weights → the kernel's block layout (PackedQs8Conv.bytes), Σ|w| for the
//                    overflow proof.
//   qs8ConvRun       the engine's call: every tensor is an arena offset, validated scalars, no copies.
//   qs8Conv / …Acc32 typed-array convenience: validates the data too, copies through arena scratch.
// Arithmetic and kernel design: assembly/conv/qs8-conv-common.ts. Reference: ./ref/qs8-conv.ts.
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { unpackInt4 } from "./requant.ts";

type ConvFn = (input: number, inStride: number, H: number, W: number, Cin: number, inZp: number, inSigned: number,
  k: number, packed: number, Cout: number, mult: number,
  output: number, outStride: number, outZp: number, qmin: number, qmax: number, outSigned: number,
  scratch: number, bandRows: number, relaxed: number, inBits: number) => void;
type ConvAcc32Fn = (input: number, inStride: number, H: number, W: number, Cin: number, inZp: number, inSigned: number,
  k: number, packed: number, Cout: number,
  output: number, outStride: number, scratch: number, bandRows: number, relaxed: number, inBits: number) => void;

type Wino2dFn = (input: number, inStride: number, H: number, W: number, Cin: number, inZp: number, inSigned: number,
  packed: number, Cout: number, mult: number,
  output: number, outStride: number, outZp: number, qmin: number, qmax: number, outSigned: number, scratch: number) => void;
type Wino2dAcc32Fn = (input: number, inStride: number, H: number, W: number, Cin: number, inZp: number, inSigned: number,
  packed: number, Cout: number, output: number, outStride: number, scratch: number) => void;

interface QConvExports {
  qs8_qc8w_conv3x3_winograd2d_nhwc: Wino2dFn;
  qs8_qc8w_conv3x3_winograd2d_nhwc_acc32: Wino2dAcc32Fn;
  qs8_qc8w_conv5x5_winograd2d_nhwc: Wino2dFn;
  qs8_qc8w_conv5x5_winograd2d_nhwc_acc32: Wino2dAcc32Fn;
  qs8_qc8w_conv_nhwc: ConvFn;
  qs8_qc8w_conv_nhwc_acc32: ConvAcc32Fn;
  qs8_qc4w_conv_nhwc: ConvFn;
  qs8_qc4w_conv_nhwc_acc32: ConvAcc32Fn;
}

const I32_MAX = 2147483647;

/**
 * A conv layer packed for an integer kernel (this file's, ./qlut-conv.ts, ./qs16-conv-pcs.ts): `bytes` goes into
 * the arena once; the rest is metadata for validation.
 */
export interface PackedConvLayer {
  readonly k: number;
  readonly cin: number;
  readonly cout: number;
  /** cout rounded up to 8: the length of the per-output-channel arrays (multipliers, scales, biases) the kernel reads. */
  readonly coutPadded: number;
  /** The kernel's weight layout (see each kernel). */
  readonly bytes: Uint8Array;
}

/** A layer packed for the qs8 kernels. */
export interface PackedQs8Conv extends PackedConvLayer {
  readonly weightFormat: "qc8w" | "qc4w";
  /**
   * Kernel layout (CoutP = cout↑8, Cin2 = cin↑2, Cin4 = cin↑4, padding weights 0):
   *   int32 bias_q[CoutP] | int32 Σ_taps w[o] [CoutP] |
   *   i16 block layout: per 8 output channels, per kh, kw, input-channel pair: w(o0,c) w(o0,c+1) … w(o7,c+1) |
   *   i8 block layout:  per 8 output channels, per kh, kw, input-channel quad: w(o0,c..c+3) … w(o7,c..c+3) |
   *   k = 3, 5: Winograd F(2,3) weights: per 8 output channels, per component j, kh, (group,) input-channel
   *   pair, as the i16 layout, of U_j = [2·w(kw=0), w0+w1+w2, w0−w1+w2, 2·w(kw=2)] (k = 5: two groups) |
   *   k = 3, 5: Winograd F(2×2,3×3) weights: per 8 output channels, per component j = 4a + b (16), (k = 5: per
   *   nonzero sub-filter run AA, BA, AB, BB — 49 in all), input-channel pair, as the i16 layout, of
   *   U[a][b] = (G' h G'ᵀ)[a][b], G' = [[2,0,0],[1,1,1],[1,−1,1],[0,0,2]], h the 3×3 filter or sub-filter
   * (exact byte order: assembly/conv/qs8-conv-common.ts).
   */
  readonly bytes: Uint8Array;
  /** Σ_taps |w[o]| per output channel. */
  readonly absWeightSum: Float64Array;
  /** |bias_q[o]|. */
  readonly absBias: Float64Array;
  /** max |w| over the layer (bounds the i16 partial sums of the relaxed-i7-acc16 path). */
  readonly maxAbsWeight: number;
}

export interface QConvPackArgs {
  /** Output channels, kernel size (odd), input channels. */
  cout: number;
  k: number;
  cin: number;
  /** int32 quantized bias per output channel (see quantizeBias in ./requant.ts), or null/absent for 0. */
  bias?: Int32Array | null;
}

/** Bytes of the packed blob of a layer. */
export function packedQs8ConvBytes(cout: number, k: number, cin: number): number {
  const coutP = (cout + 7) & ~7;
  const cin2 = (cin + 1) & ~1;
  const cin4 = (cin + 3) & ~3;
  return coutP * 8 + coutP * k * k * cin2 * 2 + coutP * k * k * cin4 + coutP * (winoRows(k) + wino2dRuns(k)) * cin2 * 2;
}

/** Component runs per output channel in the F(2×2,3×3) section: 16 (k = 3), 49 (k = 5: four nested sub-filters), else 0. */
function wino2dRuns(k: number): number {
  return k === 3 ? 16 : k === 5 ? 49 : 0;
}

/** Rows of input-channel pairs per output channel in the Winograd section (0: none for this k). */
function winoRows(k: number): number {
  return k === 3 ? 12 : k === 5 ? 35 : 0;
}

// ---- validation shared by the integer conv wrappers (also ./qlut-conv.ts and ./qs16-conv-pcs.ts) ----

/** E_ARGUMENT / E_SHAPE unless {cout, k, cin} is a layer shape: cout, cin in 1..2^16, odd k in 1..maxK. */
export function checkConvShape(a: { cout: number; k: number; cin: number }, maxK = 63): void {
  check(a && typeof a === "object", "E_ARGUMENT", "layer shape {cout, k, cin} missing");
  checkInt(a.cout, 1, 1 << 16, "cout", "E_SHAPE");
  checkInt(a.cin, 1, 1 << 16, "cin", "E_SHAPE");
  checkInt(a.k, 1, maxK, "k");
  check(a.k % 2 === 1, "E_ARGUMENT", `k must be odd ('same' padding of (k−1)/2), got ${a.k}`);
}

/** E_SHAPE unless H, W lie in 1..2^16 and the pixel strides hold the layer's channels (inStride ≥ cin, outStride ≥ cout). */
export function checkConvGeometry(L: { cin: number; cout: number }, H: number, W: number, inStride: number, outStride: number): void {
  checkImageSize(H, W);
  checkInt(inStride, L.cin, 1 << 20, "inStride (≥ cin)", "E_SHAPE");
  checkInt(outStride, L.cout, 1 << 20, "outStride (≥ cout)", "E_SHAPE");
}

/** E_SHAPE unless H and W lie in 1..2^16. */
export function checkImageSize(H: number, W: number): void {
  checkInt(H, 1, 1 << 16, "H", "E_SHAPE");
  checkInt(W, 1, 1 << 16, "W", "E_SHAPE");
}

/** The f32 output of the f32-output integer convs (./qlut-conv.ts, ./qs16-conv-pcs.ts) on arena offsets. */
export interface F32ConvOutput {
  /** Offset of the f32 output (4-aligned); pixel p at output + 4·p·outStride, channels 0..cout−1 written. */
  output: number;
  outStride: number;
  /** Output clamp (default −∞ / +∞; ReLU: outMin = 0). */
  outMin?: number;
  outMax?: number;
}

/**
 * The f32 output clamp [outMin, outMax] of the f32-output convs (absent: −∞ / +∞; ReLU: outMin = 0). E_RANGE
 * unless both are numbers, not NaN, and outMin ≤ outMax.
 */
export function f32Clamp(outMin?: number | null, outMax?: number | null): [number, number] {
  const lo = outMin ?? -Infinity, hi = outMax ?? Infinity;
  check(typeof lo === "number" && typeof hi === "number" && !Number.isNaN(lo) && !Number.isNaN(hi) && lo <= hi, "E_RANGE",
    `clamp bounds [${lo}, ${hi}] must be ordered numbers, not NaN (±Infinity allowed)`);
  return [lo, hi];
}

function checkLayerShape(a: QConvPackArgs): void {
  checkConvShape(a);
  if (a.bias) check(a.bias.length === a.cout, "E_SHAPE", `bias has ${a.bias.length} entries, cout is ${a.cout}`);
}

/**
 * Packs int8 weights, OHWI (`weights[((o·k + kh)·k + kw)·cin + c]`, the TFLite order), symmetric per output
 * channel, and the int32 bias into the kernel layout.
 */
export function packQs8Qc8wConv(weights: Int8Array, args: QConvPackArgs): PackedQs8Conv {
  checkLayerShape(args);
  check(weights instanceof Int8Array, "E_ARGUMENT", "qc8w weights must be an Int8Array");
  const n = args.cout * args.k * args.k * args.cin;
  check(weights.length === n, "E_SHAPE", `weights have ${weights.length} values, cout·k·k·cin = ${n}`);
  return packBlocks(weights, args, "qc8w");
}

/**
 * Packs int4 weights given in the public nibble format (OHWI order as qc8w, flattened; two signed nibbles per
 * byte, element 2i in the low nibble — see packInt4 in ./requant.ts) into the kernel layout. The kernels
 * read them widened (i16 / i8), so packing decodes each nibble once.
 */
export function packQs8Qc4wConv(weights: Uint8Array, args: QConvPackArgs): PackedQs8Conv {
  checkLayerShape(args);
  check(weights instanceof Uint8Array, "E_ARGUMENT", "qc4w weights must be a Uint8Array of nibble pairs");
  const n = args.cout * args.k * args.k * args.cin;
  check(weights.length === (n + 1) >> 1, "E_SHAPE", `int4 weights have ${weights.length} bytes, ceil(cout·k·k·cin/2) = ${(n + 1) >> 1}`);
  return packBlocks(unpackInt4(new Int8Array(n), weights), args, "qc4w");
}

/** Tap accessor of OHWI weights (`w[((o·k + kh)·k + kw)·cin + c]`): 0 for padding channels o ≥ cout, c ≥ cin. */
export function ohwiTap(w: ArrayLike<number>, cout: number, k: number, cin: number): (o: number, kh: number, kw: number, c: number) => number {
  return (o, kh, kw, c) => (o < cout && c < cin ? w[((o * k + kh) * k + kw) * cin + c] : 0);
}

/**
 * Writes the i16 block section of the kernel layout from byte `off` of dv: per 8 output channels (coutP of
 * them), per kh, kw, input-channel pair c < cin2: 8 × [W(o, kh, kw, c), W(o, kh, kw, c+1)] little-endian i16
 * (32 bytes). Shared with the LUT conv (../kernels/qlut-conv.ts), whose kernel runs the same i16 loop.
 * Returns the offset past the section.
 */
export function packI16Blocks(dv: DataView, off: number, W: (o: number, kh: number, kw: number, c: number) => number,
  coutP: number, k: number, cin2: number): number {
  for (let ob = 0; ob < coutP; ob += 8) {
    for (let kh = 0; kh < k; kh++) {
      for (let kw = 0; kw < k; kw++) {
        for (let c = 0; c < cin2; c += 2) {
          for (let j = 0; j < 8; j++) {
            dv.setInt16(off, W(ob + j, kh, kw, c), true);
            dv.setInt16(off + 2, W(ob + j, kh, kw, c + 1), true);
            off += 4;
          }
        }
      }
    }
  }
  return off;
}

function packBlocks(w: Int8Array, a: QConvPackArgs, weightFormat: "qc8w" | "qc4w"): PackedQs8Conv {
  const { cout, k, cin } = a;
  const coutP = (cout + 7) & ~7;
  const cin2 = (cin + 1) & ~1;
  const cin4 = (cin + 3) & ~3;
  const bytes = new Uint8Array(packedQs8ConvBytes(cout, k, cin));
  const dv = new DataView(bytes.buffer);
  const absWeightSum = new Float64Array(cout);
  const absBias = new Float64Array(cout);
  let maxAbsWeight = 0;
  for (let i = 0; i < w.length; i++) maxAbsWeight = Math.max(maxAbsWeight, Math.abs(w[i]));
  for (let o = 0; o < cout; o++) {
    const b = a.bias ? a.bias[o] : 0;
    let sum = 0, abs = 0;
    for (let i = o * k * k * cin; i < (o + 1) * k * k * cin; i++) {
      sum += w[i];
      abs += Math.abs(w[i]);
    }
    dv.setInt32(o * 4, b, true);
    dv.setInt32((coutP + o) * 4, sum, true);
    absWeightSum[o] = abs;
    absBias[o] = Math.abs(b);
  }
  const W = ohwiTap(w, cout, k, cin);
  let off = packI16Blocks(dv, coutP * 8, W, coutP, k, cin2);
  // i8 blocks: 8 output channels × (kh, kw, quad) × 4 consecutive input channels.
  for (let ob = 0; ob < coutP; ob += 8) {
    for (let kh = 0; kh < k; kh++) {
      for (let kw = 0; kw < k; kw++) {
        for (let c = 0; c < cin4; c += 4) {
          for (let j = 0; j < 8; j++) {
            for (let q = 0; q < 4; q++) dv.setInt8(off++, W(ob + j, kh, kw, c + q));
          }
        }
      }
    }
  }
  // Winograd F(2,3) blocks (k = 3, 5): 8 output channels × (j, kh, group, pair) × (c, c+1) of U_j. A group is a
  // 3-tap filter (g0, g1, g2) at kernel column kw0: k = 3 has one (kw0 = 0); k = 5 has A = (w0, w1, 0) and
  // B = (w2, w3, w4) at kw0 = 2, and no A entries for j = 3 (U^A_3 = 2·0).
  if (k === 3 || k === 5) {
    const tap = (o: number, kh: number, kw: number, c: number): number => (kw < k ? W(o, kh, kw, c) : 0);
    const U = (j: number, o: number, kh: number, kw0: number, c: number, last: boolean): number => {
      const g0 = tap(o, kh, kw0, c), g1 = tap(o, kh, kw0 + 1, c), g2 = last ? tap(o, kh, kw0 + 2, c) : 0;
      return j === 0 ? 2 * g0 : j === 1 ? g0 + g1 + g2 : j === 2 ? g0 - g1 + g2 : 2 * g2;
    };
    const groups: Array<[number, boolean]> = k === 3 ? [[0, true]] : [[0, false], [2, true]];
    for (let ob = 0; ob < coutP; ob += 8) {
      for (let j = 0; j < 4; j++) {
        for (let kh = 0; kh < k; kh++) {
          for (const [kw0, last] of groups) {
            if (k === 5 && j === 3 && !last) continue;
            for (let c = 0; c < cin2; c += 2) {
              for (let q = 0; q < 8; q++) {
                dv.setInt16(off, U(j, ob + q, kh, kw0, c, last), true);
                dv.setInt16(off + 2, U(j, ob + q, kh, kw0, c + 1, last), true);
                off += 4;
              }
            }
          }
        }
      }
    }
  }
  // Winograd F(2×2,3×3) blocks (k = 3, 5): 8 output channels × (j = 4a + b, sub-filter run, pair) × (c, c+1) of
  // U[a][b] = Σ_{r,s} G'[a][r]·h[r][s]·G'[b][s] (assembly/conv/qs8-conv-winograd2d-common.ts). k = 3: h = g, one run.
  // k = 5: h = the sub-filter (gy, gx) ∈ {A, B}² with h[r][s] = g[2·gy + r][2·gx + s], 0 in an A-group's third
  // row/column; runs in the order AA, BA, AB, BB, leaving out those that are zero (A rows at a = 3, A columns at b = 3).
  if (k === 3 || k === 5) {
    const G = [[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]];
    const U = (a: number, b: number, gy: number, gx: number, o: number, c: number): number => {
      let u = 0;
      for (let r = 0; r < 3; r++) {
        for (let t = 0; t < 3; t++) {
          if (k === 5 && ((gy === 0 && r === 2) || (gx === 0 && t === 2))) continue;
          u += G[a][r] * W(o, 2 * gy + r, 2 * gx + t, c) * G[b][t];
        }
      }
      return u;
    };
    const groups = k === 3 ? [[0, 0]] : [[0, 0], [1, 0], [0, 1], [1, 1]]; // [gy, gx]: AA, BA, AB, BB
    for (let ob = 0; ob < coutP; ob += 8) {
      for (let j = 0; j < 16; j++) {
        const a = j >> 2, b = j & 3;
        for (const [gy, gx] of groups) {
          if (k === 5 && ((gy === 0 && a === 3) || (gx === 0 && b === 3))) continue;
          for (let c = 0; c < cin2; c += 2) {
            for (let q = 0; q < 8; q++) {
              dv.setInt16(off, U(a, b, gy, gx, ob + q, c), true);
              dv.setInt16(off + 2, U(a, b, gy, gx, ob + q, c + 1), true);
              off += 4;
            }
          }
        }
      }
    }
  }
  if (off !== bytes.length) throw new LowbitError("E_ARGUMENT", `internal: packed ${off} of ${bytes.length} bytes`);
  return { weightFormat, k, cin, cout, coutPadded: coutP, bytes, absWeightSum, absBias, maxAbsWeight };
}

// --------------------------------------------------------------------------------------------------------

/** An activation tensor's code format: b-bit codes, unsigned 0..2^b−1 or signed −2^(b−1)..2^(b−1)−1. */
export interface QActivation {
  bits: number;
  signed: boolean;
  zeroPoint: number;
}

/** Requantized 8-bit output: codes uint8 or int8, clamped to [qmin, qmax] (ReLU: qmin = zeroPoint). */
export interface QOutput {
  signed: boolean;
  zeroPoint: number;
  qmin: number;
  qmax: number;
}

/**
 * Which inner loop runs:
 *   "i16"              simd build, or 8-bit activations: i32x4.dot_i16x8_s on (x − z) pre-widened to i16.
 *   "i16-wino"         as "i16" for 3×3 and 5×5 layers with ≥ WINO_MIN_CIN input channels: Winograd F(2,3) along x
 *                      (4 i16 dots per 2 outputs and kernel row instead of 6; exact, see qs8-conv-common.ts).
 *   "i16-wino2d"       as "i16" for 3×3 and 5×5 layers with ≥ WINO2D_MIN_CIN input channels: Winograd F(2×2,3×3)
 *                      (5×5: four nested), 16 i16 dots per 2×2 outputs instead of 36 (24 for "i16-wino"); 5×5: 49
 *                      instead of 100 (70); exact, see qs8-conv-winograd2d-common.ts — when 4·max|x − z|·Σ|w[o]| < 2^31.
 *   "relaxed-i7"       relaxed build, ≤7-bit activations: i32x4.relaxed_dot_i8x16_i7x16_add_s on raw codes.
 *   "relaxed-i7-acc16" relaxed build, ≤7-bit activations with small products (2·max x·max|w| ≤ 16383):
 *                      i16x8.relaxed_dot_i8x16_i7x16_s summed in i16 for `chunk` steps, then widened.
 * All three give bit-identical results.
 */
export type QConvPath = "i16" | "i16-wino" | "i16-wino2d" | "relaxed-i7" | "relaxed-i7-acc16";

/**
 * Which of the i16 Winograd paths a call may take (default: both; the fastest applicable one runs). Turning them
 * off selects the older kernels — for benchmarks and for tests that compare paths; the results are identical.
 */
export interface QConvPathOptions {
  /** F(2,3) along x and F(2×2,3×3) (false: the direct i16 loop). Default true. */
  winograd?: boolean;
  /** F(2×2,3×3) for 3×3 and 5×5 layers (false: F(2,3) along x there). Default true. */
  winograd2d?: boolean;
}

/**
 * Fewest input channels for the Winograd path: its GEMM runs are Cin long per kernel row (3·Cin direct), so
 * tiny Cin spends the time in loop overhead and transforms.
 */
export const WINO_MIN_CIN = 8;

/**
 * Fewest input channels for the 2-D Winograd path: each of its 16 GEMMs is a single run of Cin (a quarter of the
 * 1-D path's 3·Cin runs), so per-call overhead and the transforms weigh 4× more per multiply.
 */
export const WINO2D_MIN_CIN = 8;

/** The path (and the kernel's `relaxed` argument: 0, 1, or the i16 chunk length) for a layer and activations. */
export function qs8ConvPlan(rt: Runtime, layer: PackedQs8Conv, act: QActivation, opts: QConvPathOptions = {}): { path: QConvPath; relaxedArg: number } {
  if (rt.info.backend !== "relaxed" || act.bits > 7) {
    if (opts.winograd === false) return { path: "i16", relaxedArg: 0 };
    if (opts.winograd2d !== false && wino2dOk(layer, act)) return { path: "i16-wino2d", relaxedArg: 0 };
    return winoOk(layer, act) ? { path: "i16-wino", relaxedArg: -1 } : { path: "i16", relaxedArg: 0 };
  }
  // i7 operand ≤ 2^b − 1 (signed codes are shifted by 2^(b−1)); one i16 lane gains ≤ 2·xmax·wmax per step.
  const step = 2 * (2 ** act.bits - 1) * Math.max(layer.maxAbsWeight, 1);
  const chunk = Math.min(Math.floor(32767 / step), 1 << 16);
  return chunk >= 2 ? { path: "relaxed-i7-acc16", relaxedArg: chunk } : { path: "relaxed-i7", relaxedArg: 1 };
}

/**
 * Winograd applies to 3×3 and 5×5 layers with ≥ WINO_MIN_CIN channels whose doubled accumulator (without bias) provably
 * fits int32: 2·max|x − z|·Σ|w[o]| < 2^31 (the kernel halves 2·y exactly only then).
 */
function winoOk(layer: PackedQs8Conv, act: QActivation): boolean {
  if ((layer.k !== 3 && layer.k !== 5) || layer.cin < WINO_MIN_CIN || layer.bytes.length !== packedQs8ConvBytes(layer.cout, layer.k, layer.cin)) return false;
  const [lo, hi] = codeRange(act.bits, act.signed);
  const maxDx = Math.max(act.zeroPoint - lo, hi - act.zeroPoint);
  for (let o = 0; o < layer.cout; o++) if (2 * maxDx * layer.absWeightSum[o] > I32_MAX) return false;
  return true;
}

/**
 * F(2×2,3×3) applies to 3×3 and 5×5 layers with ≥ WINO2D_MIN_CIN channels whose 4× accumulator (without bias) provably fits
 * int32: 4·max|x − z|·Σ|w[o]| < 2^31 (the kernel shifts 4·y right by 2, exact only then; see its header).
 */
function wino2dOk(layer: PackedQs8Conv, act: QActivation): boolean {
  if ((layer.k !== 3 && layer.k !== 5) || layer.cin < WINO2D_MIN_CIN || layer.bytes.length !== packedQs8ConvBytes(layer.cout, layer.k, layer.cin)) return false;
  const [lo, hi] = codeRange(act.bits, act.signed);
  const maxDx = Math.max(act.zeroPoint - lo, hi - act.zeroPoint);
  for (let o = 0; o < layer.cout; o++) if (4 * maxDx * layer.absWeightSum[o] > I32_MAX) return false;
  return true;
}

/** The inner loop the kernels take on this runtime for this layer and these activations. */
export function qs8ConvPath(rt: Runtime, layer: PackedQs8Conv, act: QActivation, opts: QConvPathOptions = {}): QConvPath {
  return qs8ConvPlan(rt, layer, act, opts).path;
}

export function codeRange(bits: number, signed: boolean): [number, number] {
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

/** Rows per band of the prepared (widened, padded) input: about 384 KiB of scratch, so it stays in L2. */
export function bandRows(H: number, W: number, cin: number, k: number): number {
  const p = (k - 1) >> 1;
  const rowBytes = (Math.max(W, 4) + 2 * p) * ((cin + 1) & ~1) * 2;
  return Math.max(1, Math.min(H, Math.floor((384 * 1024) / rowBytes) - 2 * p));
}

/** Tiles per Winograd-prepared row: max(⌈W/2⌉, 4), +1 for k = 5 (group B reads tile t + 1). */
function winoTiles(W: number, k: number): number {
  return Math.max((W + 1) >> 1, 4) + (k === 5 ? 1 : 0);
}

/** Bytes of one Winograd-prepared row: 4 components × Tc tiles × cin↑2 i16. */
function winoRowBytes(W: number, cin: number, k: number): number {
  return 4 * winoTiles(W, k) * ((cin + 1) & ~1) * 2;
}

/** Rows per band on the Winograd path (same L2 budget). */
function winoBandRows(H: number, W: number, cin: number, k: number): number {
  return Math.max(1, Math.min(H, Math.floor((384 * 1024) / winoRowBytes(W, cin, k)) - (k - 1)));
}

/** Scratch bytes the kernels need for an H×W input of `cin` channels and kernel size k (any path). */
export function qs8ConvScratchBytes(H: number, W: number, cin: number, k: number): number {
  const p = (k - 1) >> 1;
  // The i16 band is the larger of the two direct preparations (u8 rows of cin↑4 bytes ≤ i16 rows of cin↑2 × 2).
  const direct = (bandRows(H, W, cin, k) + 2 * p) * (Math.max(W, 4) + 2 * p) * ((cin + 1) & ~1) * 2;
  if (k !== 3 && k !== 5) return direct;
  // Winograd: the band plus one padded i16 line (2·Tc + 2 pixels) that the transform reads from.
  const line = (2 * winoTiles(W, k) + 2) * ((cin + 1) & ~1) * 2;
  const wino = Math.max(direct, (winoBandRows(H, W, cin, k) + k - 1) * winoRowBytes(W, cin, k) + line);
  return Math.max(wino, wino2dScratchBytes(W, cin, k));
}

/**
 * F(2×2,3×3) scratch: one transformed tile row (16 components × Tc tiles; k = 5: two tile rows, Tc + 1 tiles)
 * + the k + 1 padded i16 rows of 2·Tc + 2 pixels it is computed from.
 */
function wino2dScratchBytes(W: number, cin: number, k: number): number {
  const Tc = Math.max((W + 1) >> 1, 4) + (k === 5 ? 1 : 0), px = ((cin + 1) & ~1) * 2;
  return (k === 5 ? 32 : 16) * Tc * px + (k + 1) * (2 * Tc + 2) * px;
}

function bandRowsFor(relaxedArg: number, H: number, W: number, L: PackedQs8Conv): number {
  return relaxedArg < 0 ? winoBandRows(H, W, L.cin, L.k) : bandRows(H, W, L.cin, L.k);
}

/** Throws E_BITS / E_RANGE unless `act` is a valid code format with its zero point inside the code range. */
export function checkActivation(act: QActivation, what = "input"): void {
  check(act && typeof act === "object", "E_ARGUMENT", `${what} activation format missing`);
  checkInt(act.bits, 2, 8, `${what} bits`, "E_BITS");
  const [lo, hi] = codeRange(act.bits, act.signed);
  checkInt(act.zeroPoint, lo, hi, `${what} zero point (${act.bits}-bit ${act.signed ? "signed" : "unsigned"} codes)`, "E_RANGE");
}

export function checkOutput(q: QOutput): void {
  check(q && typeof q === "object", "E_ARGUMENT", "output format missing");
  const [lo, hi] = codeRange(8, q.signed);
  checkInt(q.zeroPoint, lo, hi, "output zero point", "E_RANGE");
  checkInt(q.qmin, lo, hi, "qmin", "E_RANGE");
  checkInt(q.qmax, q.qmin, hi, "qmax (≥ qmin)", "E_RANGE");
}

/**
 * E_RANGE unless every accumulator provably fits int32:
 * max|x − z_x| · Σ|w[o]| + |bias_q[o]| < 2^31 for each output channel o.
 */
export function checkAccumulatorRange(layer: PackedQs8Conv, act: QActivation): void {
  const [lo, hi] = codeRange(act.bits, act.signed);
  const maxDx = Math.max(act.zeroPoint - lo, hi - act.zeroPoint);
  for (let o = 0; o < layer.cout; o++) {
    const bound = maxDx * layer.absWeightSum[o] + layer.absBias[o];
    if (bound > I32_MAX) {
      throw new LowbitError("E_RANGE", `int32 accumulator may overflow at output channel ${o}: ` +
        `max|x−z|·Σ|w| + |bias| = ${maxDx}·${layer.absWeightSum[o]} + ${layer.absBias[o]} ≥ 2^31`);
    }
  }
}

/** One conv call on arena offsets (the engine's entry). */
export interface QConvCall {
  layer: PackedQs8Conv;
  /** Arena offset of layer.bytes. */
  packed: number;
  H: number;
  W: number;
  /** Offset of the input codes; pixel p's channels start at input + p·inStride. */
  input: number;
  inStride: number;
  act: QActivation;
  /** Offset of the output; elements (bytes, or int32 for acc32) between pixels. */
  output: number;
  outStride: number;
  /** Offset of ≥ qs8ConvScratchBytes(H, W, cin, k) bytes. */
  scratch: number;
  /** Restricts the Winograd paths (default: the fastest applicable). */
  paths?: QConvPathOptions;
}

export interface QConvRequantCall extends QConvCall {
  /** Offset of layer.coutPadded f32 multipliers s_x·s_w[o]/s_y (entries past cout are read, not used). */
  multipliers: number;
  out: QOutput;
}

function checkPathOptions(p: QConvPathOptions | undefined): void {
  if (p === undefined) return;
  check(p !== null && typeof p === "object", "E_ARGUMENT", "paths must be an object {winograd?, winograd2d?}");
  for (const key of ["winograd", "winograd2d"] as const) {
    check(p[key] === undefined || typeof p[key] === "boolean", "E_ARGUMENT", `paths.${key} must be a boolean`);
  }
}

function checkCall(c: QConvCall): void {
  const L = c.layer;
  check(L && L.bytes instanceof Uint8Array, "E_ARGUMENT", "layer must come from packQs8Qc8wConv / packQs8Qc4wConv");
  checkConvGeometry(L, c.H, c.W, c.inStride, c.outStride);
  checkActivation(c.act);
  checkAccumulatorRange(L, c.act);
  checkPathOptions(c.paths);
  for (const [name, v] of [["packed", c.packed], ["input", c.input], ["output", c.output], ["scratch", c.scratch]] as const) {
    checkInt(v, 0, 2 ** 32 - 1, `${name} offset`);
  }
}

/**
 * Requantized conv on arena offsets. Validates every scalar argument and the overflow bound; the caller
 * guarantees the input codes lie in the declared `act.bits` range (the relaxed path relies on it).
 */
export function qs8ConvRun(rt: Runtime, c: QConvRequantCall): void {
  checkCall(c);
  checkOutput(c.out);
  checkInt(c.multipliers, 0, 2 ** 32 - 1, "multipliers offset");
  const L = c.layer;
  const k = rt.kernels<QConvExports>();
  const plan = qs8ConvPlan(rt, L, c.act, c.paths);
  if (plan.path === "i16-wino2d") {
    // int4 layers too: packQs8Qc4wConv writes the same widened layout.
    (L.k === 3 ? k.qs8_qc8w_conv3x3_winograd2d_nhwc : k.qs8_qc8w_conv5x5_winograd2d_nhwc)(c.input, c.inStride, c.H, c.W, L.cin, c.act.zeroPoint, c.act.signed ? 1 : 0, c.packed, L.cout,
      c.multipliers, c.output, c.outStride, c.out.zeroPoint, c.out.qmin, c.out.qmax, c.out.signed ? 1 : 0, c.scratch);
    return;
  }
  const fn = L.weightFormat === "qc4w" ? k.qs8_qc4w_conv_nhwc : k.qs8_qc8w_conv_nhwc;
  const ra = plan.relaxedArg;
  fn(c.input, c.inStride, c.H, c.W, L.cin, c.act.zeroPoint, c.act.signed ? 1 : 0, L.k, c.packed, L.cout, c.multipliers,
    c.output, c.outStride, c.out.zeroPoint, c.out.qmin, c.out.qmax, c.out.signed ? 1 : 0,
    c.scratch, bandRowsFor(ra, c.H, c.W, L), ra, c.act.bits);
}

/** int32-output conv on arena offsets: out = Σ(x − z_x)·w + bias_q, no requantization. */
export function qs8ConvAcc32Run(rt: Runtime, c: QConvCall): void {
  checkCall(c);
  const L = c.layer;
  const k = rt.kernels<QConvExports>();
  const plan = qs8ConvPlan(rt, L, c.act, c.paths);
  if (plan.path === "i16-wino2d") {
    (L.k === 3 ? k.qs8_qc8w_conv3x3_winograd2d_nhwc_acc32 : k.qs8_qc8w_conv5x5_winograd2d_nhwc_acc32)(c.input, c.inStride, c.H, c.W, L.cin, c.act.zeroPoint, c.act.signed ? 1 : 0, c.packed, L.cout,
      c.output, c.outStride, c.scratch);
    return;
  }
  const fn = L.weightFormat === "qc4w" ? k.qs8_qc4w_conv_nhwc_acc32 : k.qs8_qc8w_conv_nhwc_acc32;
  const ra = plan.relaxedArg;
  fn(c.input, c.inStride, c.H, c.W, L.cin, c.act.zeroPoint, c.act.signed ? 1 : 0, L.k, c.packed, L.cout,
    c.output, c.outStride, c.scratch, bandRowsFor(ra, c.H, c.W, L), ra, c.act.bits);
}

// --------------------------------------------------------------------------------------------------------

export interface QConvArrays {
  H: number;
  W: number;
  /** Activation codes: Uint8Array for unsigned, Int8Array for signed formats. */
  input: Uint8Array | Int8Array;
  /** Elements between pixels (default cin). */
  inStride?: number;
  act: QActivation;
  /** Elements between output pixels (default cout); other channels of `out` are left untouched. */
  outStride?: number;
  /** Restricts the Winograd paths (default: the fastest applicable). */
  paths?: QConvPathOptions;
}

function checkArrays(layer: PackedQs8Conv, a: QConvArrays, out: ArrayBufferView & { length: number }, cout: number): [number, number] {
  check(layer && layer.bytes instanceof Uint8Array, "E_ARGUMENT", "layer must come from packQs8Qc8wConv / packQs8Qc4wConv");
  checkActivation(a.act);
  check(a.act.signed ? a.input instanceof Int8Array : a.input instanceof Uint8Array, "E_ARGUMENT",
    `${a.act.signed ? "signed" : "unsigned"} activations need an ${a.act.signed ? "Int8Array" : "Uint8Array"}`);
  const inStride = a.inStride ?? layer.cin;
  const outStride = a.outStride ?? cout;
  checkConvGeometry({ cin: layer.cin, cout }, a.H, a.W, inStride, outStride);
  const px = a.H * a.W;
  const needIn = (px - 1) * inStride + layer.cin;
  const needOut = (px - 1) * outStride + cout;
  check(a.input.length >= needIn, "E_SHAPE", `input holds ${a.input.length} codes, ${a.H}×${a.W} at stride ${inStride} needs ${needIn}`);
  check(out.length >= needOut, "E_SHAPE", `output holds ${out.length} elements, ${a.H}×${a.W}×${cout} at stride ${outStride} needs ${needOut}`);
  const [lo, hi] = codeRange(a.act.bits, a.act.signed);
  if (a.act.bits < 8) {
    for (let p = 0; p < px; p++) {
      for (let c = p * inStride, e = c + layer.cin; c < e; c++) {
        const v = a.input[c];
        if (v < lo || v > hi) throw new LowbitError("E_RANGE", `input code ${v} at pixel ${p} outside the ${a.act.bits}-bit range [${lo}, ${hi}]`);
      }
    }
  }
  return [inStride, outStride];
}

function stage(rt: Runtime, layer: PackedQs8Conv, a: QConvArrays, out: ArrayBufferView, multipliers: Float32Array | null) {
  const ar = rt.arena;
  const packed = ar.put(layer.bytes);
  const input = ar.put(a.input);
  let mult = 0;
  if (multipliers) {
    const m = new Float32Array(layer.coutPadded);
    m.set(multipliers.subarray(0, layer.cout));
    mult = ar.put(m);
  }
  const output = ar.put(out); // keeps the channels of a wider buffer that this conv does not write
  const scratch = ar.alloc(qs8ConvScratchBytes(a.H, a.W, layer.cin, layer.k));
  return { packed, input, mult, output, scratch };
}

/**
 * out = requantized conv(input) as typed arrays (copied through arena scratch). `multipliers[o]` =
 * s_x·s_w[o]/s_y (requantMultipliers in ./requant.ts). `out` is Uint8Array for unsigned, Int8Array for signed output.
 */
export function qs8Conv(rt: Runtime, out: Uint8Array | Int8Array, layer: PackedQs8Conv, a: QConvArrays,
  multipliers: Float32Array, q: QOutput): Uint8Array | Int8Array {
  const [inStride, outStride] = checkArrays(layer, a, out, layer.cout);
  checkOutput(q);
  check(q.signed ? out instanceof Int8Array : out instanceof Uint8Array, "E_ARGUMENT",
    `${q.signed ? "signed" : "unsigned"} output needs an ${q.signed ? "Int8Array" : "Uint8Array"}`);
  check(multipliers instanceof Float32Array && multipliers.length === layer.cout, "E_SHAPE",
    `multipliers must be a Float32Array of ${layer.cout}`);
  for (let o = 0; o < layer.cout; o++) {
    check(Number.isFinite(multipliers[o]) && multipliers[o] > 0, "E_RANGE", () => `multiplier [${o}] = ${multipliers[o]} must be finite and > 0`);
  }
  checkAccumulatorRange(layer, a.act);
  const m = rt.arena.mark();
  try {
    const s = stage(rt, layer, a, out, multipliers);
    qs8ConvRun(rt, { layer, packed: s.packed, H: a.H, W: a.W, input: s.input, inStride, act: a.act,
      output: s.output, outStride, scratch: s.scratch, multipliers: s.mult, out: q, paths: a.paths });
    rt.arena.read(s.output, out);
  } finally {
    rt.arena.release(m);
  }
  return out;
}

/** out = Σ(x − z_x)·w + bias_q as int32 (no requantization), typed arrays. */
export function qs8ConvAcc32(rt: Runtime, out: Int32Array, layer: PackedQs8Conv, a: QConvArrays): Int32Array {
  const [inStride, outStride] = checkArrays(layer, a, out, layer.cout);
  check(out instanceof Int32Array, "E_ARGUMENT", "int32 output needs an Int32Array");
  checkAccumulatorRange(layer, a.act);
  const m = rt.arena.mark();
  try {
    const s = stage(rt, layer, a, out, null);
    qs8ConvAcc32Run(rt, { layer, packed: s.packed, H: a.H, W: a.W, input: s.input, inStride, act: a.act,
      output: s.output, outStride, scratch: s.scratch, paths: a.paths });
    rt.arena.read(s.output, out);
  } finally {
    rt.arena.release(m);
  }
  return out;
}
