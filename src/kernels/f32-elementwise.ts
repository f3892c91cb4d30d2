// f32 elementwise ops and the 8-bit clamp (assembly/elementwise/f32-elementwise.ts).
//   add:        y = a + β·b   (β = 1 plain residual; β = 0.2 fuses MultiplyBeta + Add)
//   scale:      y = β·x
//   clamp:      y = min(max(x, lo), hi) (f32 or 8-bit codes)
//   activation: the Keras activations of ActivationKind.
// Exact (bit-identical to src/kernels/ref/f32-elementwise.ts): add, scale, clamp,
// linear, relu, relu6, leaky_relu, hard_sigmoid (tfjs form clip(0.2x + 0.5, 0, 1)),
// softsign. Transcendental (elu, selu, sigmoid, tanh, softplus, swish,
// exponential): single-precision libm, within ACTIVATION_TOLERANCE of the f64
// reference. In-place (x == y, same strides) is allowed for every op.
import type { Runtime } from "../runtime/runtime.ts";
import { check } from "../runtime/errors.ts";
import type { Activation, ActivationKind } from "../graph/ir.ts";
import {
  type Codes, type Tensor, binaryLayout, checkArray, checkCodes, checkDims, checkF32, checkFinite, checkPtr, isSigned, rtOr, spanOf,
  strideOf, withScratch,
} from "./elementwise-common.ts";
import { checkInt } from "../runtime/errors.ts";
import type { AddLayout } from "./requant-add.ts";
import type { PixelLayout } from "./quantize.ts";

interface Kernels {
  f32_add_nhwc(a: number, b: number, n: number, c: number, as: number, bs: number, y: number, ys: number, beta: number): void;
  f32_scale_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, beta: number): void;
  f32_clamp_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, lo: number, hi: number): void;
  q8_clamp_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, lo: number, hi: number, signed: number): void;
  f32_activation_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, kind: number, alpha: number): void;
}

/** Kernel codes of the activations (the `kind` argument of f32_activation_nhwc). */
export const ACTIVATION_CODES: Readonly<Record<ActivationKind, number>> = Object.freeze({
  linear: 0, relu: 1, relu6: 2, leaky_relu: 3, elu: 4, selu: 5, sigmoid: 6, hard_sigmoid: 7,
  tanh: 8, softplus: 9, softsign: 10, swish: 11, exponential: 12,
});

/** Activations computed exactly (bit-identical to the reference). */
export const EXACT_ACTIVATIONS: ReadonlySet<ActivationKind> = new Set(["linear", "relu", "relu6", "leaky_relu", "hard_sigmoid", "softsign"]);

/**
 * |wasm − ref| ≤ rel·|ref| + abs for the transcendental activations (≈ 2 ulp; the
 * measured worst case is ≈ 1.3 ulp; abs only covers f32 underflow to 0 / subnormals).
 */
export const ACTIVATION_TOLERANCE = { rel: 2.5e-7, abs: 1e-37 } as const;

/** Keras defaults: LeakyReLU alpha 0.3, ELU alpha 1. */
export function activationAlpha(act: Activation): number {
  if (act.alpha !== undefined) return act.alpha;
  return act.kind === "leaky_relu" ? 0.3 : 1;
}

interface UnaryAt { x: number; y: number; pixels: number; channels: number; xStride?: number; yStride?: number }

function unaryGeom(rt: Runtime, a: UnaryAt, es: number): [number, number] {
  checkDims(a.pixels, a.channels);
  const xs = strideOf(a.xStride, a.channels, "input"), ys = strideOf(a.yStride, a.channels, "output");
  checkPtr(rt, a.x, es * spanOf(a.pixels, a.channels, xs), "input", es);
  checkPtr(rt, a.y, es * spanOf(a.pixels, a.channels, ys), "output", es);
  return [xs, ys];
}

export function addAt(rt: Runtime, a: { a: number; b: number; y: number; pixels: number; channels: number; aStride?: number; bStride?: number; yStride?: number; beta?: number }): void {
  const { pixels: n, channels: c } = a;
  checkDims(n, c);
  const as = strideOf(a.aStride, c, "a"), bs = strideOf(a.bStride, c, "b"), ys = strideOf(a.yStride, c, "output");
  const beta = a.beta ?? 1;
  checkFinite(beta, "beta");
  checkPtr(rt, a.a, 4 * spanOf(n, c, as), "a", 4);
  checkPtr(rt, a.b, 4 * spanOf(n, c, bs), "b", 4);
  checkPtr(rt, a.y, 4 * spanOf(n, c, ys), "output", 4);
  rt.kernels<Kernels>().f32_add_nhwc(a.a, a.b, n, c, as, bs, a.y, ys, beta);
}

export function scaleAt(rt: Runtime, a: UnaryAt & { beta: number }): void {
  const [xs, ys] = unaryGeom(rt, a, 4);
  checkFinite(a.beta, "beta");
  rt.kernels<Kernels>().f32_scale_nhwc(a.x, a.pixels, a.channels, xs, a.y, ys, a.beta);
}

export function clampAt(rt: Runtime, a: UnaryAt & { lo: number; hi: number }): void {
  const [xs, ys] = unaryGeom(rt, a, 4);
  check(!Number.isNaN(a.lo) && !Number.isNaN(a.hi) && Math.fround(a.lo) <= Math.fround(a.hi), "E_RANGE", `clamp bounds [${a.lo}, ${a.hi}]`);
  rt.kernels<Kernels>().f32_clamp_nhwc(a.x, a.pixels, a.channels, xs, a.y, ys, a.lo, a.hi);
}

export function clampCodesAt(rt: Runtime, a: UnaryAt & { lo: number; hi: number; signed: boolean }): void {
  const [xs, ys] = unaryGeom(rt, a, 1);
  const tmin = a.signed ? -128 : 0, tmax = a.signed ? 127 : 255;
  checkInt(a.lo, tmin, tmax, "clamp lo", "E_RANGE");
  checkInt(a.hi, a.lo, tmax, "clamp hi", "E_RANGE");
  rt.kernels<Kernels>().q8_clamp_nhwc(a.x, a.pixels, a.channels, xs, a.y, ys, a.lo, a.hi, a.signed ? 1 : 0);
}

export function activationAt(rt: Runtime, a: UnaryAt & { activation: Activation }): void {
  const [xs, ys] = unaryGeom(rt, a, 4);
  const code = ACTIVATION_CODES[a.activation?.kind];
  check(code !== undefined, "E_UNSUPPORTED_LAYER", `activation '${String(a.activation?.kind)}' is not supported`);
  const alpha = activationAlpha(a.activation);
  checkFinite(alpha, "activation alpha");
  rt.kernels<Kernels>().f32_activation_nhwc(a.x, a.pixels, a.channels, xs, a.y, ys, code, alpha);
}

function unaryTyped<T extends Tensor>(out: T, x: T, layout: PixelLayout, rt: Runtime | undefined,
  run: (r: Runtime, a: UnaryAt) => void): void {
  const { pixels: n, channels: c } = layout;
  checkDims(n, c);
  const xs = strideOf(layout.inStride, c, "input"), ys = strideOf(layout.outStride, c, "output");
  checkArray(x, spanOf(n, c, xs), "x");
  checkArray(out, spanOf(n, c, ys), "out");
  const r = rtOr(rt);
  withScratch(r, (s) => run(r, { x: s.put(x, spanOf(n, c, xs)), y: s.out(out, spanOf(n, c, ys), ys > c), pixels: n, channels: c, xStride: xs, yStride: ys }));
}

/** out = a + β·b (f32). */
export function add(out: Float32Array, a: Float32Array, b: Float32Array, layout: AddLayout, beta = 1, rt?: Runtime): void {
  checkF32(out, "out");
  checkF32(a, "a");
  checkF32(b, "b");
  const { n, c, as, bs, ys } = binaryLayout(layout, a, b, out);
  checkFinite(beta, "beta");
  const r = rtOr(rt);
  withScratch(r, (s) => addAt(r, {
    a: s.put(a, spanOf(n, c, as)), b: s.put(b, spanOf(n, c, bs)), y: s.out(out, spanOf(n, c, ys), ys > c),
    pixels: n, channels: c, aStride: as, bStride: bs, yStride: ys, beta,
  }));
}

/** out = β·x (f32). */
export function scale(out: Float32Array, x: Float32Array, layout: PixelLayout, beta: number, rt?: Runtime): void {
  checkF32(out, "out");
  checkF32(x, "x");
  checkFinite(beta, "beta");
  unaryTyped(out, x, layout, rt, (r, a) => scaleAt(r, { ...a, beta }));
}

/** out = clamp(x, lo, hi): f32, or 8-bit codes (out and x the same code type, integer bounds). */
export function clamp<T extends Float32Array | Codes>(out: T, x: T, layout: PixelLayout, lo: number, hi: number, rt?: Runtime): void {
  if (x instanceof Float32Array) {
    checkF32(out, "out");
    check(!Number.isNaN(lo) && !Number.isNaN(hi) && Math.fround(lo) <= Math.fround(hi), "E_RANGE", `clamp bounds [${lo}, ${hi}]`);
    unaryTyped(out, x, layout, rt, (r, a) => clampAt(r, { ...a, lo, hi }));
    return;
  }
  checkCodes(x, "x");
  checkCodes(out, "out");
  check(isSigned(out) === isSigned(x), "E_ARGUMENT", "out and x must be the same code type");
  const signed = isSigned(x);
  checkInt(lo, signed ? -128 : 0, signed ? 127 : 255, "clamp lo", "E_RANGE");
  checkInt(hi, lo, signed ? 127 : 255, "clamp hi", "E_RANGE");
  unaryTyped(out, x, layout, rt, (r, a) => clampCodesAt(r, { ...a, lo, hi, signed }));
}

/** out = act(x) (f32). */
export function activation(out: Float32Array, x: Float32Array, layout: PixelLayout, act: Activation, rt?: Runtime): void {
  checkF32(out, "out");
  checkF32(x, "x");
  check(ACTIVATION_CODES[act?.kind] !== undefined, "E_UNSUPPORTED_LAYER", `activation '${String(act?.kind)}' is not supported`);
  checkFinite(activationAlpha(act), "activation alpha");
  unaryTyped(out, x, layout, rt, (r, a) => activationAt(r, { ...a, activation: act }));
}
