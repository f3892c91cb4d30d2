// The direct quantized conv with its graph neighbours fused in (kernel: assembly/conv/qs8-qc8w-conv-fused-nhwc.ts):
//
//   concat in     The conv reads a concat of 8-bit tensors that never exists in memory: each segment is
//                 requantized onto the concat's grid while the conv prepares its input rows (q8_requantize_nhwc's
//                 arithmetic), instead of a requantize-copy pass per input followed by the conv's own read.
//   residual out  y = add(conv(x), r) in the conv's store: the conv's codes are requantized in registers and
//                 added to the residual as q8_add_nhwc does, instead of storing the conv and running the add pass.
//
// Both are bit-identical to the unfused sequence requantize-copies → qs8_qc8w_conv_nhwc → q8_add_nhwc; the plan
// compiler (src/graph/compile-q8.ts) fuses where it applies. Direct loops only: the Winograd paths prepare their
// input differently, so a layer that would take one keeps the unfused sequence.
//
// Two API layers, as ./qs8-conv.ts: qs8ConvFusedRun on arena offsets (the engine), qs8ConvFused on typed arrays.
// Reference: ./ref/qs8-conv-fused.ts.
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import type { Runtime } from "../runtime/runtime.ts";
import {
  bandRows, checkAccumulatorRange, checkActivation, checkConvGeometry, checkOutput, codeRange, qs8ConvPlan, qs8ConvScratchBytes,
  type PackedQs8Conv, type QActivation, type QOutput,
} from "./qs8-conv.ts";

type FusedFn = (segs: number, nSeg: number, inSigned: number, H: number, W: number, Cin: number,
  inZp: number, inQmin: number, inQmax: number, k: number, packed: number, Cout: number, mult: number,
  output: number, outStride: number, outZp: number, qmin: number, qmax: number,
  res: number, resZp: number, mConv: number, mRes: number, addZp: number, addQmin: number, addQmax: number, signed: number,
  scratch: number, bandRows: number, relaxed: number, inBits: number) => void;

/** i32 words per segment record (GATHER_WORDS in assembly/conv/qs8-conv-common.ts). */
export const GATHER_WORDS = 6;

/** The grid the concat's codes would have: the conv's input format plus its code range [qmin, qmax]. */
export interface QConcatGrid extends QActivation {
  qmin: number;
  qmax: number;
}

/** One input of the gathered concat, in channel order. */
export interface QConvSegment {
  /** Arena offset of the segment's codes: pixel p's channels start at input + p·stride. */
  input: number;
  /** Bytes between pixels (≥ channels). */
  stride: number;
  channels: number;
  /** Zero point of the segment's own grid. */
  zeroPoint: number;
  /** fround(s_segment/s_concat): the requantization multiplier onto the concat's grid. */
  multiplier: number;
  /** The segment's codes already use the concat's grid (a plain copy; multiplier and zeroPoint are not read). */
  identity?: boolean;
}

/** A residual add fused into the store: y = requantized m_conv·(l − z_l) + m_res·(r − z_r) (q8_add_nhwc). */
export interface QResidualAdd {
  /** Arena offset of the residual codes; they use the output's pixel stride and signedness. */
  input: number;
  zeroPoint: number;
  /** fround(c·s_l/s_y) for the conv's term and fround(c·s_r/s_y) for the residual's (c: the add's coefficients). */
  mConv: number;
  mRes: number;
  /** The add's output grid (its `signed` must equal the conv output's). */
  out: QOutput;
}

export interface QConvFusedCall {
  layer: PackedQs8Conv;
  /** Arena offset of layer.bytes. */
  packed: number;
  H: number;
  W: number;
  /** The concat, in channel order: the channels sum to layer.cin. A plain input is one identity segment. */
  segments: readonly QConvSegment[];
  /** Arena offset of ≥ GATHER_WORDS·4·segments.length bytes; the call writes the segment records there. */
  segTable: number;
  /** The concat's grid (the conv's input codes). */
  act: QConcatGrid;
  /** Offset of the output codes; bytes between pixels. */
  output: number;
  outStride: number;
  /** Offset of ≥ qs8ConvScratchBytes(H, W, cin, k) bytes. */
  scratch: number;
  /** Offset of layer.coutPadded f32 multipliers s_x·s_w[o]/s_y (s_y: the conv's own output grid). */
  multipliers: number;
  /** The conv's own output grid (with add: the grid of the un-materialized conv codes). */
  out: QOutput;
  add?: QResidualAdd;
}

function checkFinitePositive(v: number, what: string): void {
  check(typeof v === "number" && Number.isFinite(v) && v > 0, "E_RANGE", () => `${what} = ${v} must be finite and > 0`);
}

function checkFusedCall(c: QConvFusedCall): void {
  const L = c.layer;
  check(L && L.bytes instanceof Uint8Array, "E_ARGUMENT", "layer must come from packQs8Qc8wConv / packQs8Qc4wConv");
  checkActivation(c.act);
  const [lo, hi] = codeRange(c.act.bits, c.act.signed);
  checkInt(c.act.qmin, lo, hi, "concat qmin", "E_RANGE");
  checkInt(c.act.qmax, c.act.qmin, hi, "concat qmax (≥ qmin)", "E_RANGE");
  check(c.act.zeroPoint >= c.act.qmin && c.act.zeroPoint <= c.act.qmax, "E_RANGE", "concat zero point outside [qmin, qmax]");
  checkConvGeometry(L, c.H, c.W, L.cin, c.outStride);
  checkAccumulatorRange(L, c.act);
  checkOutput(c.out);
  check(Array.isArray(c.segments) && c.segments.length >= 1, "E_ARGUMENT", "segments must be a non-empty array");
  let cin = 0;
  c.segments.forEach((s, j) => {
    checkInt(s.channels, 1, L.cin, `segment ${j} channels`, "E_SHAPE");
    checkInt(s.stride, s.channels, 2 ** 31 - 1, `segment ${j} stride (≥ its channels)`, "E_SHAPE");
    checkInt(s.input, 0, 2 ** 32 - 1, `segment ${j} input offset`);
    if (!s.identity) {
      // A segment's own codes are 8-bit (of the concat's signedness); the requantization clamps them onto its grid.
      checkInt(s.zeroPoint, ...codeRange(8, c.act.signed), `segment ${j} zero point`, "E_RANGE");
      checkFinitePositive(s.multiplier, `segment ${j} multiplier`);
    }
    cin += s.channels;
  });
  check(cin === L.cin, "E_SHAPE", () => `segments hold ${cin} channels, the layer takes ${L.cin}`);
  if (c.add) {
    const a = c.add;
    checkOutput(a.out);
    check(a.out.signed === c.out.signed, "E_ARGUMENT", "the residual add's output must have the conv output's signedness");
    const [rlo, rhi] = codeRange(8, c.out.signed);
    checkInt(a.zeroPoint, rlo, rhi, "residual zero point", "E_RANGE");
    checkInt(a.input, 0, 2 ** 32 - 1, "residual offset");
    for (const [v, what] of [[a.mConv, "mConv"], [a.mRes, "mRes"]] as const) {
      check(typeof v === "number" && Number.isFinite(v), "E_RANGE", `${what} must be finite`);
    }
  }
  for (const [name, v] of [["packed", c.packed], ["output", c.output], ["scratch", c.scratch], ["segTable", c.segTable], ["multipliers", c.multipliers]] as const) {
    checkInt(v, 0, 2 ** 32 - 1, `${name} offset`);
  }
}

/**
 * Fused conv on arena offsets (see the file header). Validates every scalar argument; the caller guarantees that
 * identity segments hold codes of `act.bits` (the relaxed path relies on it) and that the output does not overlap
 * the segments or the residual (the conv reads its input band by band while it writes).
 */
export function qs8ConvFusedRun(rt: Runtime, c: QConvFusedCall): void {
  checkFusedCall(c);
  const L = c.layer, ar = rt.arena;
  const i32 = ar.i32, f32 = ar.f32;
  let w = c.segTable >> 2;
  check((c.segTable & 3) === 0, "E_ARGUMENT", "segTable must be 4-byte aligned");
  for (const s of c.segments) {
    i32[w] = s.input;
    i32[w + 1] = s.stride;
    i32[w + 2] = s.channels;
    i32[w + 3] = s.identity ? 0 : s.zeroPoint;
    f32[w + 4] = s.identity ? 1 : s.multiplier;
    i32[w + 5] = s.identity ? 1 : 0;
    w += GATHER_WORDS;
  }
  // Direct loops: the i16 path, or the relaxed ≤7-bit paths.
  const plan = qs8ConvPlan(rt, L, c.act, { winograd: false });
  const a = c.add;
  const fn = rt.kernels<{ qs8_qc8w_conv_fused_nhwc: FusedFn }>().qs8_qc8w_conv_fused_nhwc;
  fn(c.segTable, c.segments.length, c.act.signed ? 1 : 0, c.H, c.W, L.cin, c.act.zeroPoint, c.act.qmin, c.act.qmax,
    L.k, c.packed, L.cout, c.multipliers, c.output, c.outStride, c.out.zeroPoint, c.out.qmin, c.out.qmax,
    a ? a.input : 0, a ? a.zeroPoint : 0, a ? a.mConv : 0, a ? a.mRes : 0, a ? a.out.zeroPoint : 0, a ? a.out.qmin : 0, a ? a.out.qmax : 0,
    c.out.signed ? 1 : 0, c.scratch, bandRows(c.H, c.W, L.cin, L.k), plan.relaxedArg, c.act.bits);
}

// --------------------------------------------------------------------------------------------------------

/** A segment as a typed array (Uint8Array for unsigned, Int8Array for signed codes). */
export interface QSegmentArray extends Omit<QConvSegment, "input" | "stride"> {
  data: Uint8Array | Int8Array;
  /** Elements between pixels (default channels). */
  stride?: number;
}

/**
 * out = [add(residual,] conv(concat(segments))[)] as typed arrays (copied through arena scratch). `multipliers[o]` =
 * s_cat·s_w[o]/s_y; `q` the conv's own output grid; `add.residual` uses the output's layout (outStride = cout).
 */
export function qs8ConvFused(rt: Runtime, out: Uint8Array | Int8Array, layer: PackedQs8Conv,
  a: { H: number; W: number; segments: readonly QSegmentArray[]; act: QConcatGrid },
  multipliers: Float32Array, q: QOutput, add?: Omit<QResidualAdd, "input"> & { residual: Uint8Array | Int8Array }): Uint8Array | Int8Array {
  const px = a.H * a.W;
  checkConvGeometry(layer, a.H, a.W, layer.cin, layer.cout);
  check(multipliers instanceof Float32Array && multipliers.length === layer.cout, "E_SHAPE", `multipliers must be a Float32Array of ${layer.cout}`);
  for (let o = 0; o < layer.cout; o++) checkFinitePositive(multipliers[o], `multiplier [${o}]`);
  check(q && (q.signed ? out instanceof Int8Array : out instanceof Uint8Array), "E_ARGUMENT", "output array type must match q.signed");
  check(out.length >= px * layer.cout, "E_SHAPE", `output holds ${out.length} codes, needs ${px * layer.cout}`);
  check(Array.isArray(a.segments), "E_ARGUMENT", "segments must be an array");
  checkActivation(a.act);
  const [lo, hi] = codeRange(a.act.bits, a.act.signed);
  for (const [j, s] of a.segments.entries()) {
    check(s && (a.act.signed ? s.data instanceof Int8Array : s.data instanceof Uint8Array), "E_ARGUMENT",
      `segment ${j}: ${a.act.signed ? "signed" : "unsigned"} codes need an ${a.act.signed ? "Int8Array" : "Uint8Array"}`);
    const st = s.stride ?? s.channels;
    check(s.data.length >= (px - 1) * st + s.channels, "E_SHAPE", `segment ${j} holds ${s.data.length} codes, ${a.H}×${a.W} at stride ${st} needs ${(px - 1) * st + s.channels}`);
    if (s.identity && a.act.bits < 8) {
      for (let p = 0; p < px; p++) for (let c = p * st, e = c + s.channels; c < e; c++) {
        if (s.data[c] < lo || s.data[c] > hi) throw new LowbitError("E_RANGE", `segment ${j}: code ${s.data[c]} outside the ${a.act.bits}-bit range`);
      }
    }
  }
  if (add) {
    check(q.signed ? add.residual instanceof Int8Array : add.residual instanceof Uint8Array, "E_ARGUMENT", "residual array type must match q.signed");
    check(add.residual.length >= px * layer.cout, "E_SHAPE", `residual holds ${add.residual.length} codes, needs ${px * layer.cout}`);
  }
  const ar = rt.arena, m = ar.mark();
  try {
    const packed = ar.put(layer.bytes);
    const mult = new Float32Array(layer.coutPadded);
    mult.set(multipliers);
    const multAt = ar.put(mult);
    const segments = a.segments.map((s) => ({ ...s, input: ar.put(s.data), stride: s.stride ?? s.channels }));
    const segTable = ar.alloc(GATHER_WORDS * 4 * Math.max(1, segments.length));
    const res = add ? ar.put(add.residual) : 0;
    const output = ar.put(out);
    const scratch = ar.alloc(qs8ConvScratchBytes(a.H, a.W, layer.cin, layer.k));
    qs8ConvFusedRun(rt, { layer, packed, H: a.H, W: a.W, segments, segTable, act: a.act, output, outStride: layer.cout, scratch,
      multipliers: multAt, out: q, add: add ? { ...add, input: res } : undefined });
    ar.read(output, out);
  } finally {
    ar.release(m);
  }
  return out;
}
