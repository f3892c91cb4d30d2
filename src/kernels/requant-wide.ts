// Requantized add and requantize for a 16-bit integer residual stream
// (assembly/elementwise/requant-wide.ts). Codes are unsigned and asymmetric;
// each tensor is u8 (Uint8Array, 8 bits) or u16 (Uint16Array, 16 bits):
//   add:        out = roundHalfEven(clamp(f32(ma·(a − za)) + f32(mb·(b − zb)), qmin − zo, qmax − zo)) + zo
//   requantize: y   = roundHalfEven(clamp(f32(m·(x − zx)), qmin − zy, qmax − zy)) + zy
// with ma = fround(sa/so), mb = fround(sb/so), m = fround(sx/sy) — the f32
// sequences of the 8-bit requantAdd / requantizeAt, so an all-u8 call gives
// the same codes as q8_add_nhwc / q8_requantize_nhwc. Pixel strides are in
// elements (codes) for either width.
import type { Runtime } from "../runtime/runtime.ts";
import { check, checkInt } from "../runtime/errors.ts";
import {
  binaryLayout, checkArray, checkDims, checkPositive, checkPtr, checkZeroPoint, rtOr, spanOf, strideOf, withScratch,
} from "./elementwise-common.ts";
import { addMultipliers, type AddLayout } from "./requant-add.ts";

interface Kernels {
  q16_add_nhwc(a: number, b: number, n: number, c: number, as: number, bs: number, y: number, ys: number,
    za: number, zb: number, ma: number, mb: number, zo: number, qmin: number, qmax: number, aWide: number, bWide: number, yWide: number): void;
  q16_requantize_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number,
    zx: number, m: number, zy: number, qmin: number, qmax: number, xWide: number, yWide: number): void;
}

/** Unsigned codes of the 16-bit residual stream: u8 (Uint8Array) or u16 (Uint16Array). */
export type Codes16 = Uint8Array | Uint16Array;
/** Code width: 8 (u8) or 16 (u16). */
export type CodeBits = 8 | 16;

export interface Q16TensorParams {
  scale: number;
  zeroPoint: number;
  /** Code width; default (and it must match): 16 for a Uint16Array, 8 for a Uint8Array. */
  bits?: CodeBits;
}

export interface Q16AddParams {
  a: Q16TensorParams;
  b: Q16TensorParams;
  out: Q16TensorParams;
  /** Output code range (default: the full range of the output type, [0, 255] or [0, 65535]). */
  qmin?: number;
  qmax?: number;
  /** Fused ReLU: qmin raised to the output zero point. */
  relu?: boolean;
}

export interface Q16RequantizeParams {
  x: Q16TensorParams;
  out: Q16TensorParams;
  /** Output code range (default: the full range of the output type). */
  qmin?: number;
  qmax?: number;
}

export interface Q16RequantizeLayout {
  pixels: number;
  channels: number;
  /** Pixel strides in elements (default channels). */
  xStride?: number;
  outStride?: number;
}

/** One tensor in arena-offset form: byte offset, pixel stride in elements, explicit width. */
export interface Q16TensorAt {
  ptr: number;
  stride?: number;
  scale: number;
  zeroPoint: number;
  bits: CodeBits;
}

/** Arena-offset form of q16Add. out may be a exactly (same ptr, stride, bits): in-place accumulation. */
export interface Q16AddAt {
  a: Q16TensorAt;
  b: Q16TensorAt;
  out: Q16TensorAt;
  pixels: number;
  channels: number;
  qmin: number;
  qmax: number;
  relu?: boolean;
}

/** Arena-offset form of q16Requantize. */
export interface Q16RequantizeAt {
  x: Q16TensorAt;
  out: Q16TensorAt;
  pixels: number;
  channels: number;
  qmin: number;
  qmax: number;
}

/** Largest code of a width: 255 or 65535. */
export function codeMax(bits: CodeBits): number {
  return bits === 16 ? 65535 : 255;
}

function checkBits(bits: unknown, what: string): asserts bits is CodeBits {
  check(bits === 8 || bits === 16, "E_BITS", () => `${what} must be 8 (u8 codes) or 16 (u16 codes), got ${String(bits)}`);
}

/** The width of a code array (Uint8Array → 8, Uint16Array → 16), checked against a declared one. */
function bitsOf(arr: unknown, declared: unknown, what: string): CodeBits {
  check(arr instanceof Uint8Array || arr instanceof Uint16Array, "E_ARGUMENT",
    `${what} must be a Uint8Array (u8 codes) or a Uint16Array (u16 codes)`);
  const bits: CodeBits = arr instanceof Uint16Array ? 16 : 8;
  if (declared !== undefined) {
    checkBits(declared, `${what} bits`);
    check(declared === bits, "E_ARGUMENT", `${what} is a ${arr.constructor.name} (${bits}-bit codes) but its bits is ${declared}`);
  }
  return bits;
}

/** An output range: integers 0 ≤ qmin < qmax ≤ 2^bits − 1. */
function checkQRange16(qmin: number, qmax: number, bits: CodeBits): void {
  const hi = codeMax(bits);
  checkInt(qmin, 0, hi, `qmin (u${bits} output)`, "E_RANGE");
  checkInt(qmax, 0, hi, `qmax (u${bits} output)`, "E_RANGE");
  check(qmin < qmax, "E_RANGE", `qmin ${qmin} must be < qmax ${qmax}`);
}

/** A tensor's width and zero point (inside its code type) and its bytes inside WASM memory. */
function checkTensorAt(rt: Runtime, t: Q16TensorAt, n: number, c: number, stride: number, what: string, zpRange?: [number, number]): void {
  checkBits(t.bits, `${what} bits`);
  const [lo, hi] = zpRange ?? [0, codeMax(t.bits)];
  checkZeroPoint(t.zeroPoint, lo, hi, `${what} zero point`);
  checkPositive(t.scale, `${what} scale`);
  const w = t.bits / 8;
  checkPtr(rt, t.ptr, w * spanOf(n, c, stride), what, w);
}

/** y = requantized a + b on arena offsets (u8 / u16 per tensor). */
export function q16AddAt(rt: Runtime, p: Q16AddAt): void {
  const { pixels: n, channels: c } = p;
  checkDims(n, c);
  const as = strideOf(p.a.stride, c, "a"), bs = strideOf(p.b.stride, c, "b"), ys = strideOf(p.out.stride, c, "output");
  checkBits(p.out.bits, "output bits");
  checkQRange16(p.qmin, p.qmax, p.out.bits);
  checkTensorAt(rt, p.a, n, c, as, "a");
  checkTensorAt(rt, p.b, n, c, bs, "b");
  checkTensorAt(rt, p.out, n, c, ys, "output", [p.qmin, p.qmax]);
  const qmin = p.relu ? Math.max(p.qmin, p.out.zeroPoint) : p.qmin;
  check(qmin < p.qmax, "E_RANGE", `fused ReLU leaves an empty range [${qmin}, ${p.qmax}]`);
  const [ma, mb] = addMultipliers(p.a.scale, p.b.scale, p.out.scale);
  checkPositive(ma, "a/out scale ratio");
  checkPositive(mb, "b/out scale ratio");
  rt.kernels<Kernels>().q16_add_nhwc(p.a.ptr, p.b.ptr, n, c, as, bs, p.out.ptr, ys, p.a.zeroPoint, p.b.zeroPoint, ma, mb,
    p.out.zeroPoint, qmin, p.qmax, p.a.bits === 16 ? 1 : 0, p.b.bits === 16 ? 1 : 0, p.out.bits === 16 ? 1 : 0);
}

/** y = x requantized to the output's (scale, zero point), on arena offsets (u8 / u16 per tensor). */
export function q16RequantizeAt(rt: Runtime, p: Q16RequantizeAt): void {
  const { pixels: n, channels: c } = p;
  checkDims(n, c);
  const xs = strideOf(p.x.stride, c, "input"), ys = strideOf(p.out.stride, c, "output");
  checkBits(p.out.bits, "output bits");
  checkQRange16(p.qmin, p.qmax, p.out.bits);
  checkTensorAt(rt, p.x, n, c, xs, "input");
  checkTensorAt(rt, p.out, n, c, ys, "output", [p.qmin, p.qmax]);
  const m = Math.fround(Math.fround(p.x.scale) / Math.fround(p.out.scale));
  checkPositive(m, "scale ratio");
  rt.kernels<Kernels>().q16_requantize_nhwc(p.x.ptr, n, c, xs, p.out.ptr, ys, p.x.zeroPoint, m, p.out.zeroPoint, p.qmin, p.qmax,
    p.x.bits === 16 ? 1 : 0, p.out.bits === 16 ? 1 : 0);
}

/**
 * out = requantized a + b (u8 or u16 codes each, by array type). out may be a (or b): with equal
 * pixel strides the add then runs in place in the arena.
 */
export function q16Add(rt: Runtime | undefined, out: Codes16, a: Codes16, b: Codes16, q: Q16AddParams, layout: AddLayout): void {
  const wa = bitsOf(a, q.a.bits, "a"), wb = bitsOf(b, q.b.bits, "b"), wy = bitsOf(out, q.out.bits, "out");
  const { n, c, as, bs, ys } = binaryLayout(layout, a, b, out);
  const qmin = q.qmin ?? 0, qmax = q.qmax ?? codeMax(wy);
  checkQRange16(qmin, qmax, wy);
  const r = rtOr(rt);
  withScratch(r, (s) => {
    const pa = s.put(a, spanOf(n, c, as));
    const pb = b === a && bs === as ? pa : s.put(b, spanOf(n, c, bs));
    let py: number;
    if (out === a && ys === as) py = pa;
    else if (out === b && ys === bs) py = pb;
    else py = s.out(out, spanOf(n, c, ys), ys > c);
    if (py === pa || py === pb) s.outs.push([py, out.subarray(0, spanOf(n, c, ys))]);
    q16AddAt(r, {
      a: { ...q.a, bits: wa, ptr: pa, stride: as },
      b: { ...q.b, bits: wb, ptr: pb, stride: bs },
      out: { ...q.out, bits: wy, ptr: py, stride: ys },
      pixels: n, channels: c, qmin, qmax, relu: q.relu,
    });
  });
}

/** out = x requantized to the output's (scale, zero point); u8 or u16 codes each, by array type. */
export function q16Requantize(rt: Runtime | undefined, out: Codes16, x: Codes16, q: Q16RequantizeParams, layout: Q16RequantizeLayout): void {
  const wx = bitsOf(x, q.x.bits, "x"), wy = bitsOf(out, q.out.bits, "out");
  const { pixels: n, channels: c } = layout;
  checkDims(n, c);
  const xs = strideOf(layout.xStride, c, "input"), ys = strideOf(layout.outStride, c, "output");
  checkArray(x, spanOf(n, c, xs), "x");
  checkArray(out, spanOf(n, c, ys), "out");
  const qmin = q.qmin ?? 0, qmax = q.qmax ?? codeMax(wy);
  checkQRange16(qmin, qmax, wy);
  const r = rtOr(rt);
  withScratch(r, (s) => {
    const px = s.put(x, spanOf(n, c, xs));
    let py: number;
    if (out === x && ys === xs) {
      py = px;
      s.outs.push([py, out.subarray(0, spanOf(n, c, ys))]);
    } else {
      py = s.out(out, spanOf(n, c, ys), ys > c);
    }
    q16RequantizeAt(r, {
      x: { ...q.x, bits: wx, ptr: px, stride: xs },
      out: { ...q.out, bits: wy, ptr: py, stride: ys },
      pixels: n, channels: c, qmin, qmax,
    });
  });
}
