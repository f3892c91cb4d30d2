// Per-channel PReLU (assembly/elementwise/prelu.ts): y = x ≥ 0 ? x : slope[c]·x, on f32 tensors
// (bit-identical to src/kernels/ref/prelu.ts) and on 8-bit codes with requantization onto the
// output's grid (bit-exact):
//   d = x − zx;  y = zy + roundHalfEven(clamp(f32(d·m), qmin − zy, qmax − zy)),
//   m = fround(sx/sy) for d ≥ 0, fround(slope[c]·sx/sy) for d < 0.
// Derivation: real x = sx·d, real y = x or slope·x, code y = zy + y/sy = zy + d·(sx/sy)·(1 or slope).
import type { Runtime } from "../runtime/runtime.ts";
import { check } from "../runtime/errors.ts";
import {
  type Codes, checkArray, checkCodes, checkDims, checkF32, checkInputZeroPoint, checkPositive, checkPtr, checkQRange,
  checkZeroPoint, isSigned, rtOr, spanOf, strideOf, withScratch,
} from "./elementwise-common.ts";
import type { PixelLayout } from "./quantize.ts";

interface Kernels {
  f32_prelu_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, slopes: number): void;
  q8_prelu_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, zx: number, mPos: number, mNeg: number,
    zy: number, qmin: number, qmax: number, signed: number): void;
}

function checkSlopes(s: unknown, c: number): asserts s is Float32Array {
  check(s instanceof Float32Array, "E_ARGUMENT", "slopes must be a Float32Array");
  check(s.length === c, "E_SHAPE", `slopes has ${s.length} values for ${c} channels`);
  for (let i = 0; i < c; i++) check(Number.isFinite(s[i]), "E_RANGE", `slopes[${i}] = ${s[i]} is not finite`);
}

/** Arena-offset form (the plans' call): `slopes` is the offset of c f32 values. */
export function preluAt(rt: Runtime, a: { x: number; y: number; pixels: number; channels: number; xStride?: number; yStride?: number; slopes: number }): void {
  const { pixels: n, channels: c } = a;
  checkDims(n, c);
  const xs = strideOf(a.xStride, c, "input"), ys = strideOf(a.yStride, c, "output");
  checkPtr(rt, a.x, 4 * spanOf(n, c, xs), "input", 4);
  checkPtr(rt, a.y, 4 * spanOf(n, c, ys), "output", 4);
  checkPtr(rt, a.slopes, 4 * c, "slopes", 4);
  rt.kernels<Kernels>().f32_prelu_nhwc(a.x, n, c, xs, a.y, ys, a.slopes);
}

/** out = prelu(x) per channel (f32). */
export function prelu(out: Float32Array, x: Float32Array, layout: PixelLayout, slopes: Float32Array, rt?: Runtime): void {
  checkF32(out, "out");
  checkF32(x, "x");
  const { pixels: n, channels: c } = layout;
  checkDims(n, c);
  checkSlopes(slopes, c);
  const xs = strideOf(layout.inStride, c, "input"), ys = strideOf(layout.outStride, c, "output");
  checkArray(x, spanOf(n, c, xs), "x");
  checkArray(out, spanOf(n, c, ys), "out");
  const r = rtOr(rt);
  withScratch(r, (s) => preluAt(r, { x: s.put(x, spanOf(n, c, xs)), y: s.out(out, spanOf(n, c, ys), ys > c), pixels: n, channels: c,
    xStride: xs, yStride: ys, slopes: s.put(slopes) }));
}

/** Multipliers of the 8-bit PReLU: [fround(sx/sy), fround(slope[c]·sx/sy) per channel]. */
export function preluMultipliers(out: Float32Array, slopes: ArrayLike<number>, inScale: number, outScale: number): number {
  const r = Math.fround(inScale) / Math.fround(outScale);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(slopes[i] * r);
  return Math.fround(r);
}

export interface PreluQ8Params {
  inScale: number; inZeroPoint: number; outScale: number; outZeroPoint: number; qmin: number; qmax: number;
}

/** Arena-offset form: `mNeg` = offset of c f32 multipliers (preluMultipliers). */
export function preluQ8At(rt: Runtime, a: { x: number; y: number; pixels: number; channels: number; xStride?: number; yStride?: number;
  signed: boolean; zx: number; mPos: number; mNeg: number; zy: number; qmin: number; qmax: number }): void {
  const { pixels: n, channels: c } = a;
  checkDims(n, c);
  const xs = strideOf(a.xStride, c, "input"), ys = strideOf(a.yStride, c, "output");
  checkQRange(a.qmin, a.qmax);
  checkZeroPoint(a.zy, a.qmin, a.qmax, "output zero point");
  checkInputZeroPoint(a.zx, a.signed, "input zero point");
  check(Number.isFinite(a.mPos), "E_RANGE", `mPos = ${a.mPos} is not finite`);
  checkPtr(rt, a.x, spanOf(n, c, xs), "input");
  checkPtr(rt, a.y, spanOf(n, c, ys), "output");
  checkPtr(rt, a.mNeg, 4 * c, "mNeg", 4);
  rt.kernels<Kernels>().q8_prelu_nhwc(a.x, n, c, xs, a.y, ys, a.zx, a.mPos, a.mNeg, a.zy, a.qmin, a.qmax, a.signed ? 1 : 0);
}

/** out = requantized prelu(x) on 8-bit codes (x: u8 or i8; out: u8 when qmin ≥ 0, else i8). */
export function preluQ8(out: Codes, x: Codes, layout: PixelLayout, slopes: Float32Array, p: PreluQ8Params, rt?: Runtime): void {
  checkCodes(x, "x");
  checkCodes(out, "out");
  const { pixels: n, channels: c } = layout;
  checkDims(n, c);
  checkSlopes(slopes, c);
  checkPositive(p.inScale, "input scale");
  checkPositive(p.outScale, "output scale");
  check((p.qmin < 0) === isSigned(out), "E_ARGUMENT", `out must be ${p.qmin < 0 ? "an Int8Array" : "a Uint8Array"} for qmin ${p.qmin}`);
  const xs = strideOf(layout.inStride, c, "input"), ys = strideOf(layout.outStride, c, "output");
  checkArray(x, spanOf(n, c, xs), "x");
  checkArray(out, spanOf(n, c, ys), "out");
  const mNeg = new Float32Array(c);
  const mPos = preluMultipliers(mNeg, slopes, p.inScale, p.outScale);
  const r = rtOr(rt);
  withScratch(r, (s) => preluQ8At(r, { x: s.put(x, spanOf(n, c, xs)), y: s.out(out, spanOf(n, c, ys), ys > c), pixels: n, channels: c,
    xStride: xs, yStride: ys, signed: isSigned(x), zx: p.inZeroPoint, mPos, mNeg: s.put(mNeg), zy: p.outZeroPoint, qmin: p.qmin, qmax: p.qmax }));
}
