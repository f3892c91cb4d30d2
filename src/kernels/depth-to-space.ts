// Depth-to-space, TF DCR order (assembly/elementwise/depth-to-space.ts):
//   out[h·b + i, w·b + j, ch] = in[h, w, (i·b + j)·C + ch],  in: [H, W, C·b²] → out: [H·b, W·b, C].
import type { Runtime } from "../runtime/runtime.ts";
import { check, checkInt } from "../runtime/errors.ts";
import { type Tensor, checkArray, checkPtr, rtOr, spanOf, strideOf, withScratch, MAX_I32 } from "./elementwise-common.ts";

interface Kernels {
  x8_depth_to_space_nhwc(x: number, h: number, w: number, c: number, b: number, xs: number, y: number, ys: number): void;
  x32_depth_to_space_nhwc(x: number, h: number, w: number, c: number, b: number, xs: number, y: number, ys: number): void;
}

export interface SpatialLayout {
  height: number;
  width: number;
  /** Output channels C (input has C·b²). */
  channels: number;
  inStride?: number;
  outStride?: number;
}

/** Largest supported block (the SR nets use 2, 3, 4, 8). */
export const MAX_BLOCK = 16;

function checkGeom(height: number, width: number, channels: number, f: number, what: string): void {
  checkInt(height, 0, MAX_I32, "height", "E_SHAPE");
  checkInt(width, 0, MAX_I32, "width", "E_SHAPE");
  checkInt(channels, 1, MAX_I32, "channels", "E_SHAPE");
  checkInt(f, 1, MAX_BLOCK, what, "E_ARGUMENT");
  check(height * width * f * f * channels <= MAX_I32, "E_SHAPE", "tensor too large");
}

export function depthToSpaceAt(rt: Runtime, a: { x: number; y: number; height: number; width: number; channels: number; block: number; xStride?: number; yStride?: number; elemBytes: 1 | 4 }): void {
  checkGeom(a.height, a.width, a.channels, a.block, "block");
  check(a.elemBytes === 1 || a.elemBytes === 4, "E_ARGUMENT", `elemBytes must be 1 or 4, got ${a.elemBytes}`);
  const cin = a.channels * a.block * a.block;
  const xs = strideOf(a.xStride, cin, "input"), ys = strideOf(a.yStride, a.channels, "output");
  const nIn = a.height * a.width, nOut = nIn * a.block * a.block;
  checkPtr(rt, a.x, a.elemBytes * spanOf(nIn, cin, xs), "input", a.elemBytes);
  checkPtr(rt, a.y, a.elemBytes * spanOf(nOut, a.channels, ys), "output", a.elemBytes);
  const k = rt.kernels<Kernels>();
  (a.elemBytes === 1 ? k.x8_depth_to_space_nhwc : k.x32_depth_to_space_nhwc)(a.x, a.height, a.width, a.channels, a.block, xs, a.y, ys);
}

function elemBytesOf(a: Tensor, b: Tensor): 1 | 4 {
  check(a.constructor === b.constructor && (a instanceof Uint8Array || a instanceof Int8Array || a instanceof Float32Array),
    "E_ARGUMENT", "out and x must be the same type: Uint8Array, Int8Array or Float32Array");
  return a instanceof Float32Array ? 4 : 1;
}

/** Arena placement of one spatial op's operands (what the `…At` entry points take). */
export interface SpatialArgs {
  x: number;
  y: number;
  height: number;
  width: number;
  channels: number;
  xStride: number;
  yStride: number;
  elemBytes: 1 | 4;
}

/**
 * The typed-array form shared by depth-to-space and the upsamplers: checks geometry, strides and
 * array lengths for an op that maps x [h, w, c·inPerOut] to out [h·f, w·f, c], copies x into
 * scratch, runs `at` on the arena pointers and copies the result out.
 */
export function runSpatial<T extends Tensor>(out: T, x: T, layout: SpatialLayout, factor: number, what: "block" | "factor", inPerOut: number, rt: Runtime | undefined, at: (r: Runtime, a: SpatialArgs) => void): void {
  const es = elemBytesOf(out, x);
  const { height: h, width: w, channels: c } = layout;
  checkGeom(h, w, c, factor, what);
  const cin = c * inPerOut;
  const xs = strideOf(layout.inStride, cin, "input"), ys = strideOf(layout.outStride, c, "output");
  const xSpan = spanOf(h * w, cin, xs), ySpan = spanOf(h * w * factor * factor, c, ys);
  checkArray(x, xSpan, "x");
  checkArray(out, ySpan, "out");
  const r = rtOr(rt);
  withScratch(r, (s) => {
    at(r, { x: s.put(x, xSpan), y: s.out(out, ySpan, ys > c), height: h, width: w, channels: c, xStride: xs, yStride: ys, elemBytes: es });
  });
}

/** out = depthToSpace(x, block); x: [height, width, channels·block²]. */
export function depthToSpace<T extends Tensor>(out: T, x: T, layout: SpatialLayout, block: number, rt?: Runtime): void {
  runSpatial(out, x, layout, block, "block", block * block, rt, (r, a) => depthToSpaceAt(r, { ...a, block }));
}

export { checkGeom as checkSpatialGeometry, elemBytesOf };
