// Channel concat (assembly/elementwise/concat.ts). Each input lands in its
// channel slice of the output (offset = Σ earlier channel counts, output pixel
// stride ≥ total channels). An 8-bit input whose (scale, zero point) equal the
// output's (as f32 / integer) and whose code range lies inside the output's
// [qmin, qmax] is copied (requantization is the identity); any other is requantized:
//   y = roundHalfEven(clamp(f32(fround(sx/sy)·(x − zx)), qmin − zy, qmax − zy)) + zy.
import type { Runtime } from "../runtime/runtime.ts";
import { check } from "../runtime/errors.ts";
import {
  type Codes, checkArray, checkCodes, checkDims, checkF32, checkInputZeroPoint, checkPositive, checkPtr, checkQRange,
  checkZeroPoint, isSigned, rtOr, spanOf, strideOf, withScratch, MAX_I32,
} from "./elementwise-common.ts";
import { checkInt } from "../runtime/errors.ts";

interface Kernels {
  x8_copy_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number): void;
  x32_copy_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number): void;
  q8_requantize_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number,
    zx: number, m: number, zy: number, qmin: number, qmax: number, signed: number): void;
}

export interface RequantizeAt {
  x: number; y: number; pixels: number; channels: number; xStride?: number; yStride?: number;
  /** Input codes are i8 (else u8). */
  signed: boolean;
  inScale: number; inZeroPoint: number; outScale: number; outZeroPoint: number; qmin: number; qmax: number;
}

/** Requantizes one 8-bit tensor into another (scale, zero point); copies when they are equal. */
export function requantizeAt(rt: Runtime, a: RequantizeAt): void {
  const { pixels: n, channels: c } = a;
  checkDims(n, c);
  const xs = strideOf(a.xStride, c, "input"), ys = strideOf(a.yStride, c, "output");
  checkQRange(a.qmin, a.qmax);
  checkZeroPoint(a.outZeroPoint, a.qmin, a.qmax, "output zero point");
  checkInputZeroPoint(a.inZeroPoint, a.signed, "input zero point");
  checkPositive(a.inScale, "input scale");
  checkPositive(a.outScale, "output scale");
  const m = Math.fround(Math.fround(a.inScale) / Math.fround(a.outScale));
  checkPositive(m, "scale ratio");
  checkPtr(rt, a.x, spanOf(n, c, xs), "input");
  checkPtr(rt, a.y, spanOf(n, c, ys), "output");
  const k = rt.kernels<Kernels>();
  const inLo = a.signed ? -128 : 0, inHi = a.signed ? 127 : 255;
  // Identity requantization (equal params, range covering every input code) is a copy.
  if (m === 1 && a.inZeroPoint === a.outZeroPoint && a.qmin <= inLo && a.qmax >= inHi) k.x8_copy_nhwc(a.x, n, c, xs, a.y, ys);
  else k.q8_requantize_nhwc(a.x, n, c, xs, a.y, ys, a.inZeroPoint, m, a.outZeroPoint, a.qmin, a.qmax, a.signed ? 1 : 0);
}

/** Copies c elements per pixel between strided tensors of 1- or 4-byte elements. */
export function copyAt(rt: Runtime, a: { x: number; y: number; pixels: number; channels: number; xStride?: number; yStride?: number; elemBytes: 1 | 4 }): void {
  const { pixels: n, channels: c } = a;
  checkDims(n, c);
  check(a.elemBytes === 1 || a.elemBytes === 4, "E_ARGUMENT", `elemBytes must be 1 or 4, got ${a.elemBytes}`);
  const xs = strideOf(a.xStride, c, "input"), ys = strideOf(a.yStride, c, "output");
  checkPtr(rt, a.x, a.elemBytes * spanOf(n, c, xs), "input", a.elemBytes);
  checkPtr(rt, a.y, a.elemBytes * spanOf(n, c, ys), "output", a.elemBytes);
  const k = rt.kernels<Kernels>();
  if (a.elemBytes === 1) k.x8_copy_nhwc(a.x, n, c, xs, a.y, ys);
  else k.x32_copy_nhwc(a.x, n, c, xs, a.y, ys);
}

export interface ConcatInput<T> {
  data: T;
  channels: number;
  /** Pixel stride in elements (default channels). */
  stride?: number;
}

export interface QConcatInput extends ConcatInput<Codes> {
  scale: number;
  zeroPoint: number;
}

export interface QConcatOutput {
  scale: number;
  zeroPoint: number;
  /** Default: the full range of the output type. */
  qmin?: number;
  qmax?: number;
  /** Output pixel stride (default Σ channels). */
  stride?: number;
}

function totalChannels(inputs: ConcatInput<unknown>[]): number {
  check(Array.isArray(inputs) && inputs.length >= 1, "E_ARGUMENT", "concat needs at least one input");
  let t = 0;
  for (const [i, inp] of inputs.entries()) {
    checkInt(inp.channels, 1, MAX_I32, `input ${i} channels`, "E_SHAPE");
    t += inp.channels;
  }
  return t;
}

/** 8-bit concat with requantization to the output's (scale, zero point). */
export function concat(out: Codes, inputs: QConcatInput[], pixels: number, q: QConcatOutput, rt?: Runtime): void {
  checkCodes(out, "out");
  const ct = totalChannels(inputs);
  checkDims(pixels, ct);
  const ys = strideOf(q.stride, ct, "output");
  checkArray(out, spanOf(pixels, ct, ys), "out");
  const so = isSigned(out);
  const qmin = q.qmin ?? (so ? -128 : 0), qmax = q.qmax ?? (so ? 127 : 255);
  checkQRange(qmin, qmax, so);
  const strides = inputs.map((inp, i) => {
    checkCodes(inp.data, `input ${i}`);
    const s = strideOf(inp.stride, inp.channels, `input ${i}`);
    checkArray(inp.data, spanOf(pixels, inp.channels, s), `input ${i}`);
    return s;
  });
  const r = rtOr(rt);
  withScratch(r, (s) => {
    const py = s.out(out, spanOf(pixels, ct, ys), ys > ct || inputs.length > 1);
    let off = 0;
    inputs.forEach((inp, i) => {
      requantizeAt(r, {
        x: s.put(inp.data, spanOf(pixels, inp.channels, strides[i])), y: py + off, pixels, channels: inp.channels,
        xStride: strides[i], yStride: ys, signed: isSigned(inp.data), inScale: inp.scale, inZeroPoint: inp.zeroPoint,
        outScale: q.scale, outZeroPoint: q.zeroPoint, qmin, qmax,
      });
      off += inp.channels;
    });
  });
}

/** f32 concat (pure copies). */
export function concatF32(out: Float32Array, inputs: ConcatInput<Float32Array>[], pixels: number, outStride?: number, rt?: Runtime): void {
  checkF32(out, "out");
  const ct = totalChannels(inputs);
  checkDims(pixels, ct);
  const ys = strideOf(outStride, ct, "output");
  checkArray(out, spanOf(pixels, ct, ys), "out");
  const strides = inputs.map((inp, i) => {
    checkF32(inp.data, `input ${i}`);
    const s = strideOf(inp.stride, inp.channels, `input ${i}`);
    checkArray(inp.data, spanOf(pixels, inp.channels, s), `input ${i}`);
    return s;
  });
  const r = rtOr(rt);
  withScratch(r, (s) => {
    const py = s.out(out, spanOf(pixels, ct, ys), ys > ct);
    let off = 0;
    inputs.forEach((inp, i) => {
      copyAt(r, { x: s.put(inp.data, spanOf(pixels, inp.channels, strides[i])), y: py + 4 * off, pixels, channels: inp.channels, xStride: strides[i], yStride: ys, elemBytes: 4 });
      off += inp.channels;
    });
  });
}
