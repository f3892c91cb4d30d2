// Nearest-neighbour (assembly/elementwise/upsample.ts) and bilinear (upsample-bilinear.ts) upsampling by an integer factor; nearest:
//   out[h·f + i, w·f + j, ch] = in[h, w, ch].
import type { Runtime } from "../runtime/runtime.ts";
import { check } from "../runtime/errors.ts";
import { type Tensor, checkPtr, spanOf, strideOf } from "./elementwise-common.ts";
import { checkSpatialGeometry, runSpatial, type SpatialLayout } from "./depth-to-space.ts";
import { BILINEAR_MODES, type BilinearMode } from "./ref/upsample.ts";
export { BILINEAR_MODES, type BilinearMode };

interface Kernels {
  x8_upsample_nearest_nhwc(x: number, h: number, w: number, c: number, f: number, xs: number, y: number, ys: number): void;
  x32_upsample_nearest_nhwc(x: number, h: number, w: number, c: number, f: number, xs: number, y: number, ys: number): void;
}

export function upsampleNearestAt(rt: Runtime, a: { x: number; y: number; height: number; width: number; channels: number; factor: number; xStride?: number; yStride?: number; elemBytes: 1 | 4 }): void {
  checkSpatialGeometry(a.height, a.width, a.channels, a.factor, "factor");
  check(a.elemBytes === 1 || a.elemBytes === 4, "E_ARGUMENT", `elemBytes must be 1 or 4, got ${a.elemBytes}`);
  const xs = strideOf(a.xStride, a.channels, "input"), ys = strideOf(a.yStride, a.channels, "output");
  const nIn = a.height * a.width;
  checkPtr(rt, a.x, a.elemBytes * spanOf(nIn, a.channels, xs), "input", a.elemBytes);
  checkPtr(rt, a.y, a.elemBytes * spanOf(nIn * a.factor * a.factor, a.channels, ys), "output", a.elemBytes);
  const k = rt.kernels<Kernels>();
  (a.elemBytes === 1 ? k.x8_upsample_nearest_nhwc : k.x32_upsample_nearest_nhwc)(a.x, a.height, a.width, a.channels, a.factor, xs, a.y, ys);
}

/** out = nearest upsample of x ([height, width, channels]) by `factor` (1..16). */
export function upsampleNearest<T extends Tensor>(out: T, x: T, layout: SpatialLayout, factor: number, rt?: Runtime): void {
  runSpatial(out, x, layout, factor, "factor", 1, rt, (r, a) => upsampleNearestAt(r, { ...a, factor }));
}

interface BilinearKernels {
  x8_upsample_bilinear_nhwc(x: number, h: number, w: number, c: number, f: number, mode: number, xs: number, y: number, ys: number): void;
  f32_upsample_bilinear_nhwc(x: number, h: number, w: number, c: number, f: number, mode: number, xs: number, y: number, ys: number): void;
}

/**
 * Bilinear upsampling by an integer factor (assembly/elementwise/upsample-bilinear.ts): `half_pixel`
 * (ONNX Resize linear default, PyTorch align_corners=False, ncnn Interp 2) or `asymmetric` (TF1 /
 * tfjs-layers UpSampling2D 'bilinear'). 8-bit codes keep their grid (weights sum to 1; 11-bit
 * fixed-point weights, exact integer rounding); f32 matches the reference bit for bit.
 */
export function upsampleBilinearAt(rt: Runtime, a: { x: number; y: number; height: number; width: number; channels: number; factor: number; mode: BilinearMode; xStride?: number; yStride?: number; elemBytes: 1 | 4 }): void {
  checkSpatialGeometry(a.height, a.width, a.channels, a.factor, "factor");
  check(a.elemBytes === 1 || a.elemBytes === 4, "E_ARGUMENT", `elemBytes must be 1 or 4, got ${a.elemBytes}`);
  const mode = BILINEAR_MODES.indexOf(a.mode);
  check(mode >= 0, "E_ARGUMENT", () => `bilinear mode must be one of ${BILINEAR_MODES.join(", ")}, got ${String(a.mode)}`);
  const xs = strideOf(a.xStride, a.channels, "input"), ys = strideOf(a.yStride, a.channels, "output");
  const nIn = a.height * a.width;
  checkPtr(rt, a.x, a.elemBytes * spanOf(nIn, a.channels, xs), "input", a.elemBytes);
  checkPtr(rt, a.y, a.elemBytes * spanOf(nIn * a.factor * a.factor, a.channels, ys), "output", a.elemBytes);
  const k = rt.kernels<BilinearKernels>();
  (a.elemBytes === 1 ? k.x8_upsample_bilinear_nhwc : k.f32_upsample_bilinear_nhwc)(a.x, a.height, a.width, a.channels, a.factor, mode, xs, a.y, ys);
}

/** out = bilinear upsample of x ([height, width, channels], 8-bit codes or f32) by `factor` (1..16). */
export function upsampleBilinear<T extends Uint8Array | Float32Array>(out: T, x: T, layout: SpatialLayout, factor: number, mode: BilinearMode = "half_pixel", rt?: Runtime): void {
  check(!(x instanceof Int8Array && out instanceof Int8Array), "E_ARGUMENT", "bilinear upsampling of 8-bit codes takes unsigned codes (Uint8Array)");
  runSpatial(out, x, layout, factor, "factor", 1, rt, (r, a) => upsampleBilinearAt(r, { ...a, factor, mode }));
}
