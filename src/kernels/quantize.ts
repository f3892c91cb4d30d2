// f32 ⇄ 8-bit codes (assembly/elementwise/quantize.ts). Quantize:
//   q = clamp(roundHalfEven(f32(x · fround(1/scale))), qmin, qmax) with zero point zp,
// i.e. the ABI requantization epilogue; any bit-width 2..8 via [qmin, qmax]
// (quantRange). Dequantize: x = f32(q − zp) · scale. Per tensor or per channel.
import type { Runtime } from "../runtime/runtime.ts";
import { check } from "../runtime/errors.ts";
import {
  type Codes, checkArray, checkCodes, checkDims, checkF32, checkFinite, checkInputZeroPoint, checkPositive, checkPtr,
  checkQRange, checkZeroPoint, isSigned, rtOr, spanOf, strideOf, withScratch,
} from "./elementwise-common.ts";

export { quantRange } from "./elementwise-common.ts";

interface Kernels {
  f32_q8_quantize_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, invScale: number, zp: number, qmin: number, qmax: number): void;
  f32_q8_quantize_pc_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, invScales: number, zps: number, qmin: number, qmax: number): void;
  q8_f32_dequantize_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, scale: number, zp: number, signed: number): void;
  q8_f32_dequantize_pc_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, scales: number, zps: number, signed: number): void;
}

/** Tensor geometry for one-input kernels: `pixels` (H·W) × `channels`, pixel strides in elements. */
export interface PixelLayout {
  pixels: number;
  channels: number;
  /** Elements between input pixels (default channels). */
  inStride?: number;
  /** Elements between output pixels (default channels). */
  outStride?: number;
}

/** Quantization of a tensor: per tensor (numbers) or per channel (arrays of length channels). */
export interface QuantParams {
  scale: number | Float32Array;
  zeroPoint: number | Int32Array;
  /** Code range, e.g. quantRange(bits, signed). */
  qmin: number;
  qmax: number;
}

/** Arena-offset form (engine): x f32, y codes; per tensor. */
export interface QuantizeAt {
  x: number; y: number; pixels: number; channels: number; xStride?: number; yStride?: number;
  /** fround(1/scale) — precompute once per tensor. */
  invScale: number; zeroPoint: number; qmin: number; qmax: number;
}

/** Arena-offset form, per channel: invScales f32[c] and zeroPoints i32[c] are arena offsets. */
export interface QuantizePerChannelAt {
  x: number; y: number; pixels: number; channels: number; xStride?: number; yStride?: number;
  invScales: number; zeroPoints: number; qmin: number; qmax: number;
}

export interface DequantizeAt {
  x: number; y: number; pixels: number; channels: number; xStride?: number; yStride?: number;
  scale: number; zeroPoint: number; signed: boolean;
}

export interface DequantizePerChannelAt {
  x: number; y: number; pixels: number; channels: number; xStride?: number; yStride?: number;
  /** Arena offsets of f32[c] scales and i32[c] zero points. */
  scales: number; zeroPoints: number; signed: boolean;
}

function checkPcArrays(rt: Runtime, scales: number, zps: number, c: number, zpLo: number, zpHi: number, what: string): void {
  checkPtr(rt, scales, 4 * c, `${what} scales`, 4);
  checkPtr(rt, zps, 4 * c, `${what} zero points`, 4);
  const f = rt.arena.f32, z = rt.arena.i32;
  for (let i = 0; i < c; i++) {
    checkPositive(f[scales / 4 + i], `${what} scale[${i}]`);
    checkZeroPoint(z[zps / 4 + i], zpLo, zpHi, `${what} zero point[${i}]`);
  }
}

export function quantizeAt(rt: Runtime, a: QuantizeAt): void {
  checkDims(a.pixels, a.channels);
  const xs = strideOf(a.xStride, a.channels, "input"), ys = strideOf(a.yStride, a.channels, "output");
  checkQRange(a.qmin, a.qmax);
  checkZeroPoint(a.zeroPoint, a.qmin, a.qmax);
  checkPositive(a.invScale, "invScale");
  checkPtr(rt, a.x, 4 * spanOf(a.pixels, a.channels, xs), "input", 4);
  checkPtr(rt, a.y, spanOf(a.pixels, a.channels, ys), "output");
  rt.kernels<Kernels>().f32_q8_quantize_nhwc(a.x, a.pixels, a.channels, xs, a.y, ys, Math.fround(a.invScale), a.zeroPoint, a.qmin, a.qmax);
}

export function quantizePerChannelAt(rt: Runtime, a: QuantizePerChannelAt): void {
  checkDims(a.pixels, a.channels);
  const xs = strideOf(a.xStride, a.channels, "input"), ys = strideOf(a.yStride, a.channels, "output");
  checkQRange(a.qmin, a.qmax);
  checkPcArrays(rt, a.invScales, a.zeroPoints, a.channels, a.qmin, a.qmax, "quantize");
  checkPtr(rt, a.x, 4 * spanOf(a.pixels, a.channels, xs), "input", 4);
  checkPtr(rt, a.y, spanOf(a.pixels, a.channels, ys), "output");
  rt.kernels<Kernels>().f32_q8_quantize_pc_nhwc(a.x, a.pixels, a.channels, xs, a.y, ys, a.invScales, a.zeroPoints, a.qmin, a.qmax);
}

export function dequantizeAt(rt: Runtime, a: DequantizeAt): void {
  checkDims(a.pixels, a.channels);
  const xs = strideOf(a.xStride, a.channels, "input"), ys = strideOf(a.yStride, a.channels, "output");
  checkInputZeroPoint(a.zeroPoint, a.signed, "zero point");
  checkPositive(a.scale, "scale");
  checkPtr(rt, a.x, spanOf(a.pixels, a.channels, xs), "input");
  checkPtr(rt, a.y, 4 * spanOf(a.pixels, a.channels, ys), "output", 4);
  rt.kernels<Kernels>().q8_f32_dequantize_nhwc(a.x, a.pixels, a.channels, xs, a.y, ys, Math.fround(a.scale), a.zeroPoint, a.signed ? 1 : 0);
}

export function dequantizePerChannelAt(rt: Runtime, a: DequantizePerChannelAt): void {
  checkDims(a.pixels, a.channels);
  const xs = strideOf(a.xStride, a.channels, "input"), ys = strideOf(a.yStride, a.channels, "output");
  checkPcArrays(rt, a.scales, a.zeroPoints, a.channels, a.signed ? -128 : 0, a.signed ? 127 : 255, "dequantize");
  checkPtr(rt, a.x, spanOf(a.pixels, a.channels, xs), "input");
  checkPtr(rt, a.y, 4 * spanOf(a.pixels, a.channels, ys), "output", 4);
  rt.kernels<Kernels>().q8_f32_dequantize_pc_nhwc(a.x, a.pixels, a.channels, xs, a.y, ys, a.scales, a.zeroPoints, a.signed ? 1 : 0);
}

function perChannel(q: { scale: number | Float32Array; zeroPoint: number | Int32Array }, c: number): boolean {
  const pc = typeof q.scale !== "number";
  check(pc === (typeof q.zeroPoint !== "number"), "E_ARGUMENT", "scale and zeroPoint must both be numbers (per tensor) or both arrays (per channel)");
  if (pc) {
    check(q.scale instanceof Float32Array && q.scale.length === c, "E_SHAPE", `per-channel scale must be a Float32Array of length ${c}`);
    check(q.zeroPoint instanceof Int32Array && q.zeroPoint.length === c, "E_SHAPE", `per-channel zeroPoint must be an Int32Array of length ${c}`);
  }
  return pc;
}

/**
 * out = quantize(x): codes in out's type (Uint8Array → u8 range, Int8Array → i8),
 * [qmin, qmax] inside that type. Copies through arena scratch.
 */
export function quantize(out: Codes, x: Float32Array, layout: PixelLayout, q: QuantParams, rt?: Runtime): void {
  checkCodes(out, "out");
  checkF32(x, "x");
  const { pixels: n, channels: c } = layout;
  checkDims(n, c);
  const xs = strideOf(layout.inStride, c, "input"), ys = strideOf(layout.outStride, c, "output");
  checkArray(x, spanOf(n, c, xs), "x");
  checkArray(out, spanOf(n, c, ys), "out");
  checkQRange(q.qmin, q.qmax, isSigned(out));
  const pc = perChannel(q, c);
  if (!pc) {
    checkPositive(q.scale as number, "scale");
    checkZeroPoint(q.zeroPoint as number, q.qmin, q.qmax);
  } else {
    (q.scale as Float32Array).forEach((s, i) => checkPositive(s, `scale[${i}]`));
    (q.zeroPoint as Int32Array).forEach((z, i) => checkZeroPoint(z, q.qmin, q.qmax, `zero point[${i}]`));
  }
  const r = rtOr(rt);
  withScratch(r, (s) => {
    const px = s.put(x, spanOf(n, c, xs));
    const py = s.out(out, spanOf(n, c, ys), ys > c);
    if (!pc) {
      checkFinite(1 / Math.fround(q.scale as number), "1/scale");
      quantizeAt(r, { x: px, y: py, pixels: n, channels: c, xStride: xs, yStride: ys, invScale: Math.fround(1 / Math.fround(q.scale as number)), zeroPoint: q.zeroPoint as number, qmin: q.qmin, qmax: q.qmax });
    } else {
      const inv = (q.scale as Float32Array).map((v) => 1 / v);
      inv.forEach((v, i) => checkPositive(v, `1/scale[${i}]`));
      quantizePerChannelAt(r, { x: px, y: py, pixels: n, channels: c, xStride: xs, yStride: ys, invScales: s.put(inv), zeroPoints: s.put(q.zeroPoint as Int32Array), qmin: q.qmin, qmax: q.qmax });
    }
  });
}

/** out = f32(q − zp) · scale; x's type (Uint8Array / Int8Array) gives the code signedness. */
export function dequantize(out: Float32Array, x: Codes, layout: PixelLayout, q: { scale: number | Float32Array; zeroPoint: number | Int32Array }, rt?: Runtime): void {
  checkF32(out, "out");
  checkCodes(x, "x");
  const { pixels: n, channels: c } = layout;
  checkDims(n, c);
  const xs = strideOf(layout.inStride, c, "input"), ys = strideOf(layout.outStride, c, "output");
  checkArray(x, spanOf(n, c, xs), "x");
  checkArray(out, spanOf(n, c, ys), "out");
  const signed = isSigned(x);
  const pc = perChannel(q, c);
  const r = rtOr(rt);
  if (!pc) {
    checkPositive(q.scale as number, "scale");
    checkInputZeroPoint(q.zeroPoint as number, signed, "zero point");
  }
  withScratch(r, (s) => {
    const px = s.put(x, spanOf(n, c, xs));
    const py = s.out(out, spanOf(n, c, ys), ys > c);
    if (!pc) dequantizeAt(r, { x: px, y: py, pixels: n, channels: c, xStride: xs, yStride: ys, scale: q.scale as number, zeroPoint: q.zeroPoint as number, signed });
    else dequantizePerChannelAt(r, { x: px, y: py, pixels: n, channels: c, xStride: xs, yStride: ys, scales: s.put(q.scale as Float32Array), zeroPoints: s.put(q.zeroPoint as Int32Array), signed });
  });
}
