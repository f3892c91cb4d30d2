// Kernels of the space_to_depth, shift and squeeze_excite IR ops (assembly/elementwise/channel-gate.ts):
// space-to-depth and shift (8-bit codes or f32, pure data movement), per-channel f64 window sums of an f32
// tensor (an SE block's global average pool) and per-channel scaling y = x·g[c] (its gate).
// Each has a TS reference in src/kernels/ref/channel-gate.ts; all three are bit-exact against it.
import type { Runtime } from "../runtime/runtime.ts";
import { check, checkInt } from "../runtime/errors.ts";
import { type Tensor, checkArray, checkDims, checkF32, checkPtr, rtOr, spanOf, strideOf, withScratch, MAX_I32 } from "./elementwise-common.ts";
import { checkSpatialGeometry, elemBytesOf, type SpatialLayout } from "./depth-to-space.ts";
import type { PixelLayout } from "./quantize.ts";

export interface ChannelGateExports {
  x8_space_to_depth_phased_nhwc(x: number, h: number, w: number, c: number, b: number, phase: number, xs: number, y: number, ys: number, fill: number): void;
  x32_space_to_depth_phased_nhwc(x: number, h: number, w: number, c: number, b: number, phase: number, xs: number, y: number, ys: number): void;
  x8_shift_nhwc(x: number, h: number, w: number, c: number, by: number, xs: number, y: number, ys: number, fill: number): void;
  x32_shift_nhwc(x: number, h: number, w: number, c: number, by: number, xs: number, y: number, ys: number): void;
  f32_channel_window_sum_nhwc(x: number, w: number, c: number, xs: number, y0: number, y1: number, x0: number, x1: number, out: number): void;
  f32_scale_channels_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, g: number): void;
}

/**
 * Arena form: x [height·block, width·block, channels] → y [height, width, channels·block²]; `height`,
 * `width` are the output's size, `channels` the input's.
 */
export function spaceToDepthAt(rt: Runtime, a: { x: number; y: number; height: number; width: number; channels: number; block: number; phase?: number;
  fill?: number; xStride?: number; yStride?: number; elemBytes: 1 | 4 }): void {
  checkSpatialGeometry(a.height, a.width, a.channels, a.block, "block");
  const ph = a.phase ?? 0, fill = a.fill ?? 0;
  checkInt(ph, 0, a.block - 1, "phase", "E_ARGUMENT");
  checkInt(fill, -128, 255, "fill", "E_ARGUMENT");
  check(a.elemBytes === 1 || fill === 0, "E_ARGUMENT", "fill must be 0 for f32 tensors");
  check(a.elemBytes === 1 || a.elemBytes === 4, "E_ARGUMENT", `elemBytes must be 1 or 4, got ${a.elemBytes}`);
  const cout = a.channels * a.block * a.block;
  const xs = strideOf(a.xStride, a.channels, "input"), ys = strideOf(a.yStride, cout, "output");
  const nOut = a.height * a.width, nIn = nOut * a.block * a.block;
  checkPtr(rt, a.x, a.elemBytes * spanOf(nIn, a.channels, xs), "input", a.elemBytes);
  checkPtr(rt, a.y, a.elemBytes * spanOf(nOut, cout, ys), "output", a.elemBytes);
  const k = rt.kernels<ChannelGateExports>();
  if (a.elemBytes === 1) k.x8_space_to_depth_phased_nhwc(a.x, a.height, a.width, a.channels, a.block, ph, xs, a.y, ys, fill);
  else k.x32_space_to_depth_phased_nhwc(a.x, a.height, a.width, a.channels, a.block, ph, xs, a.y, ys);
}

/**
 * out = spaceToDepth(x, block): layout.height/width are the OUTPUT's size, layout.channels the
 * input's (the output has channels·block²); x: [height·block, width·block, channels]. `phase` shifts
 * the blocks by that many pixels (those beyond x read as `fill`: 0 for f32, a code for 8-bit).
 */
export function spaceToDepth<T extends Tensor>(out: T, x: T, layout: SpatialLayout, block: number, o: { phase?: number; fill?: number } = {}, rt?: Runtime): void {
  const es = elemBytesOf(out, x);
  const { height: h, width: w, channels: c } = layout;
  checkSpatialGeometry(h, w, c, block, "block");
  const cout = c * block * block;
  const xs = strideOf(layout.inStride, c, "input"), ys = strideOf(layout.outStride, cout, "output");
  const xSpan = spanOf(h * w * block * block, c, xs), ySpan = spanOf(h * w, cout, ys);
  checkArray(x, xSpan, "x");
  checkArray(out, ySpan, "out");
  const r = rtOr(rt);
  withScratch(r, (s) => {
    spaceToDepthAt(r, { x: s.put(x, xSpan), y: s.out(out, ySpan, ys > cout), height: h, width: w, channels: c, block, phase: o.phase, fill: o.fill,
      xStride: xs, yStride: ys, elemBytes: es });
  });
}

/** Arena form of the shift: y[r, q] = x[r + by, q + by] on a height×width tensor, `fill` outside x. */
export function shiftAt(rt: Runtime, a: { x: number; y: number; height: number; width: number; channels: number; by: number; fill?: number;
  xStride?: number; yStride?: number; elemBytes: 1 | 4 }): void {
  checkSpatialGeometry(a.height, a.width, a.channels, 1, "block");
  checkInt(a.by, -MAX_I32, MAX_I32, "by", "E_ARGUMENT");
  check(a.by !== 0, "E_ARGUMENT", "shift by 0 is a copy");
  const fill = a.fill ?? 0;
  checkInt(fill, -128, 255, "fill", "E_ARGUMENT");
  check(a.elemBytes === 1 || fill === 0, "E_ARGUMENT", "fill must be 0 for f32 tensors");
  const xs = strideOf(a.xStride, a.channels, "input"), ys = strideOf(a.yStride, a.channels, "output");
  const n = a.height * a.width;
  checkPtr(rt, a.x, a.elemBytes * spanOf(n, a.channels, xs), "input", a.elemBytes);
  checkPtr(rt, a.y, a.elemBytes * spanOf(n, a.channels, ys), "output", a.elemBytes);
  const k = rt.kernels<ChannelGateExports>();
  if (a.elemBytes === 1) k.x8_shift_nhwc(a.x, a.height, a.width, a.channels, a.by, xs, a.y, ys, fill);
  else k.x32_shift_nhwc(a.x, a.height, a.width, a.channels, a.by, xs, a.y, ys);
}

/** out[r, q] = x[r + by, q + by] (both [height, width, channels]), `fill` (0 for f32) outside x. */
export function shift<T extends Tensor>(out: T, x: T, layout: SpatialLayout, by: number, o: { fill?: number } = {}, rt?: Runtime): void {
  const es = elemBytesOf(out, x);
  const { height: h, width: w, channels: c } = layout;
  checkSpatialGeometry(h, w, c, 1, "block");
  const xs = strideOf(layout.inStride, c, "input"), ys = strideOf(layout.outStride, c, "output");
  const xSpan = spanOf(h * w, c, xs), ySpan = spanOf(h * w, c, ys);
  checkArray(x, xSpan, "x");
  checkArray(out, ySpan, "out");
  const r = rtOr(rt);
  withScratch(r, (s) => {
    shiftAt(r, { x: s.put(x, xSpan), y: s.out(out, ySpan, ys > c), height: h, width: w, channels: c, by, fill: o.fill, xStride: xs, yStride: ys, elemBytes: es });
  });
}

export interface WindowLayout {
  /** Tensor width (pixels per row) and height. */
  width: number;
  height: number;
  channels: number;
  inStride?: number;
  /** Window rows [y0, y1) and columns [x0, x1) inside the tensor. */
  y0: number;
  y1: number;
  x0: number;
  x1: number;
}

function checkWindow(l: WindowLayout): number {
  checkInt(l.width, 1, MAX_I32, "width", "E_SHAPE");
  checkInt(l.height, 1, MAX_I32, "height", "E_SHAPE");
  checkInt(l.channels, 1, MAX_I32, "channels", "E_SHAPE");
  checkInt(l.y0, 0, l.height, "y0", "E_ARGUMENT");
  checkInt(l.y1, l.y0, l.height, "y1", "E_ARGUMENT");
  checkInt(l.x0, 0, l.width, "x0", "E_ARGUMENT");
  checkInt(l.x1, l.x0, l.width, "x1", "E_ARGUMENT");
  check(l.width * l.height <= MAX_I32, "E_SHAPE", "tensor too large");
  return strideOf(l.inStride, l.channels, "input");
}

/** Arena form: `out` = offset of channels f64 values (8-byte aligned). */
export function channelWindowSumAt(rt: Runtime, a: WindowLayout & { x: number; out: number }): void {
  const xs = checkWindow(a);
  checkPtr(rt, a.x, 4 * spanOf(a.width * a.height, a.channels, xs), "input", 4);
  checkPtr(rt, a.out, 8 * a.channels, "output", 8);
  rt.kernels<ChannelGateExports>().f32_channel_window_sum_nhwc(a.x, a.width, a.channels, xs, a.y0, a.y1, a.x0, a.x1, a.out);
}

/** out[c] = Σ x over the window (f64 accumulation, row-major pixel order). */
export function channelWindowSum(out: Float64Array, x: Float32Array, layout: WindowLayout, rt?: Runtime): void {
  checkF32(x, "x");
  check(out instanceof Float64Array, "E_ARGUMENT", "out must be a Float64Array");
  const xs = checkWindow(layout);
  const span = spanOf(layout.width * layout.height, layout.channels, xs);
  checkArray(x, span, "x");
  checkArray(out, layout.channels, "out");
  const r = rtOr(rt);
  withScratch(r, (s) => {
    const o = s.alloc(8 * layout.channels + 8);
    const o8 = (o + 7) & ~7;
    channelWindowSumAt(r, { ...layout, x: s.put(x, span), out: o8 });
    r.arena.read(o8, out.subarray(0, layout.channels));
  });
}

/** Arena form: `g` = offset of channels f32 values. */
export function scaleChannelsAt(rt: Runtime, a: { x: number; y: number; pixels: number; channels: number; xStride?: number; yStride?: number; g: number }): void {
  const { pixels: n, channels: c } = a;
  checkDims(n, c);
  const xs = strideOf(a.xStride, c, "input"), ys = strideOf(a.yStride, c, "output");
  checkPtr(rt, a.x, 4 * spanOf(n, c, xs), "input", 4);
  checkPtr(rt, a.y, 4 * spanOf(n, c, ys), "output", 4);
  checkPtr(rt, a.g, 4 * c, "gate", 4);
  rt.kernels<ChannelGateExports>().f32_scale_channels_nhwc(a.x, n, c, xs, a.y, ys, a.g);
}

/** out = x · g[channel] (f32). */
export function scaleChannels(out: Float32Array, x: Float32Array, layout: PixelLayout, g: Float32Array, rt?: Runtime): void {
  checkF32(out, "out");
  checkF32(x, "x");
  checkF32(g, "g");
  const { pixels: n, channels: c } = layout;
  checkDims(n, c);
  check(g.length === c, "E_SHAPE", `g has ${g.length} values for ${c} channels`);
  const xs = strideOf(layout.inStride, c, "input"), ys = strideOf(layout.outStride, c, "output");
  checkArray(x, spanOf(n, c, xs), "x");
  checkArray(out, spanOf(n, c, ys), "out");
  const r = rtOr(rt);
  withScratch(r, (s) => scaleChannelsAt(r, { x: s.put(x, spanOf(n, c, xs)), y: s.out(out, spanOf(n, c, ys), ys > c), pixels: n, channels: c,
    xStride: xs, yStride: ys, g: s.put(g) }));
}
