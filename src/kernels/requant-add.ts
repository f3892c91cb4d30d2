// Requantized add of two 8-bit tensors (assembly/elementwise/requant-add.ts):
//   out = clamp(roundHalfEven(f32(ma·(a − za)) + f32(mb·(b − zb))) + zo, qmin, qmax),
//   ma = fround(sa/so), mb = fround(sb/so).
// When sa, sb and so are the same f32, ma = mb = 1 and the sum is an exact
// integer, so the wrapper dispatches to the pure-integer kernel
// (y = clamp(a + b + zo − za − zb)) — same result, about 3× less work.
import type { Runtime } from "../runtime/runtime.ts";
import { check } from "../runtime/errors.ts";
import {
  type Codes, binaryLayout, checkCodes, checkDims, checkInputZeroPoint, checkPositive, checkPtr, checkQRange, checkZeroPoint,
  isSigned, rtOr, spanOf, strideOf, withScratch,
} from "./elementwise-common.ts";

interface Kernels {
  q8_add_nhwc(a: number, b: number, n: number, c: number, as: number, bs: number, y: number, ys: number,
    za: number, zb: number, ma: number, mb: number, zo: number, qmin: number, qmax: number, signed: number): void;
  q8_add_same_scale_nhwc(a: number, b: number, n: number, c: number, as: number, bs: number, y: number, ys: number,
    k: number, qmin: number, qmax: number, signed: number): void;
}

export interface QTensorParams {
  scale: number;
  zeroPoint: number;
}

export interface AddLayout {
  pixels: number;
  channels: number;
  aStride?: number;
  bStride?: number;
  outStride?: number;
}

export interface RequantAddParams {
  a: QTensorParams;
  b: QTensorParams;
  out: QTensorParams;
  /** Output code range (default: the full range of the output type). */
  qmin?: number;
  qmax?: number;
  /** Fused ReLU: qmin raised to the output zero point. */
  relu?: boolean;
}

/** Arena-offset form. `signed`: a and b are i8 (else u8); the output type follows [qmin, qmax]. */
export interface RequantAddAt extends RequantAddParams {
  a: QTensorParams & { ptr: number; stride?: number };
  b: QTensorParams & { ptr: number; stride?: number };
  out: QTensorParams & { ptr: number; stride?: number };
  pixels: number;
  channels: number;
  signed: boolean;
  qmin: number;
  qmax: number;
}

/** The f32 multipliers fround(sa/so), fround(sb/so) the kernel uses. */
export function addMultipliers(sa: number, sb: number, so: number): [number, number] {
  const f = Math.fround;
  return [f(f(sa) / f(so)), f(f(sb) / f(so))];
}

export function requantAddAt(rt: Runtime, p: RequantAddAt): void {
  const { pixels: n, channels: c } = p;
  checkDims(n, c);
  const as = strideOf(p.a.stride, c, "a"), bs = strideOf(p.b.stride, c, "b"), ys = strideOf(p.out.stride, c, "output");
  checkQRange(p.qmin, p.qmax);
  checkZeroPoint(p.out.zeroPoint, p.qmin, p.qmax, "output zero point");
  const qmin = p.relu ? Math.max(p.qmin, p.out.zeroPoint) : p.qmin;
  check(qmin < p.qmax, "E_RANGE", `fused ReLU leaves an empty range [${qmin}, ${p.qmax}]`);
  checkInputZeroPoint(p.a.zeroPoint, p.signed, "a zero point");
  checkInputZeroPoint(p.b.zeroPoint, p.signed, "b zero point");
  checkPositive(p.a.scale, "a scale");
  checkPositive(p.b.scale, "b scale");
  checkPositive(p.out.scale, "output scale");
  const [ma, mb] = addMultipliers(p.a.scale, p.b.scale, p.out.scale);
  checkPositive(ma, "a/out scale ratio");
  checkPositive(mb, "b/out scale ratio");
  checkPtr(rt, p.a.ptr, spanOf(n, c, as), "a");
  checkPtr(rt, p.b.ptr, spanOf(n, c, bs), "b");
  checkPtr(rt, p.out.ptr, spanOf(n, c, ys), "output");
  const k = rt.kernels<Kernels>();
  const sgn = p.signed ? 1 : 0;
  if (ma === 1 && mb === 1) {
    k.q8_add_same_scale_nhwc(p.a.ptr, p.b.ptr, n, c, as, bs, p.out.ptr, ys, p.out.zeroPoint - p.a.zeroPoint - p.b.zeroPoint, qmin, p.qmax, sgn);
  } else {
    k.q8_add_nhwc(p.a.ptr, p.b.ptr, n, c, as, bs, p.out.ptr, ys, p.a.zeroPoint, p.b.zeroPoint, ma, mb, p.out.zeroPoint, qmin, p.qmax, sgn);
  }
}

/**
 * out = requantized a + b. a and b share a type (Uint8Array or Int8Array); out's
 * type may differ and bounds the default [qmin, qmax].
 */
export function requantAdd(out: Codes, a: Codes, b: Codes, layout: AddLayout, q: RequantAddParams, rt?: Runtime): void {
  checkCodes(out, "out");
  checkCodes(a, "a");
  checkCodes(b, "b");
  check(isSigned(a) === isSigned(b), "E_ARGUMENT", "a and b must both be Uint8Array or both Int8Array");
  const { n, c, as, bs, ys } = binaryLayout(layout, a, b, out);
  const so = isSigned(out);
  const qmin = q.qmin ?? (so ? -128 : 0), qmax = q.qmax ?? (so ? 127 : 255);
  checkQRange(qmin, qmax, so);
  const r = rtOr(rt);
  withScratch(r, (s) => {
    requantAddAt(r, {
      a: { ...q.a, ptr: s.put(a, spanOf(n, c, as)), stride: as },
      b: { ...q.b, ptr: s.put(b, spanOf(n, c, bs)), stride: bs },
      out: { ...q.out, ptr: s.out(out, spanOf(n, c, ys), ys > c), stride: ys },
      pixels: n, channels: c, signed: isSigned(a), qmin, qmax, relu: q.relu,
    });
  });
}
