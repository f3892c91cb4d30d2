/**
 * The WASM exports the training engine calls directly (arena byte offsets, pixel strides).
 *
 * Like the FP32 plan compiler (src/graph/compile-f32.ts) the trainer validates every geometry and
 * buffer once when it lays out its arena, then calls the raw exports from precomputed closures:
 * the per-call wrappers in src/kernels/ (f32-conv.ts, grad-*.ts) reject operands that share a root
 * buffer, which the concat-by-slices layout does on purpose (disjoint channel slices).
 * Semantics: src/kernels/f32-conv.ts, src/kernels/grad-*.ts (their TS references in src/kernels/ref/).
 */
import type { F32Exports } from "../graph/compile-f32.ts";

export interface TrainExports extends F32Exports {
  /** dw[ky][kx][ci][o] += Σ x·dy, db[o] += Σ dy (db = 0: skipped). */
  f32_conv_backward_weights_nhwc(x: number, xStride: number, dy: number, dyStride: number, h: number, w: number,
    cin: number, cout: number, k: number, dw: number, db: number, scratch: number): void;
  f32_conv_backward_weights_scratch_bytes(w: number, cin: number, cout: number, k: number): number;
  /** dx = dy·[y > 0] (in place allowed). */
  f32_relu_backward_nhwc(dy: number, dyStride: number, y: number, yStride: number, dx: number, dxStride: number, pixels: number, channels: number): void;
  /** y = clip(round((clip(x, l, u) − l)/s)·s + l, l, u), half away from zero. */
  f32_fake_quant_nhwc(x: number, xStride: number, y: number, yStride: number, pixels: number, channels: number, l: number, u: number, s: number): void;
  /** dx = dy·[l ≤ x ≤ u] (dx = 0: not written); returns Σ_inside dy·(r − t); below/above: Σ dy outside. */
  f32_fake_quant_backward_nhwc(x: number, xStride: number, dy: number, dyStride: number, dx: number, dxStride: number,
    pixels: number, channels: number, l: number, u: number, s: number): number;
  f32_fake_quant_below(): number;
  f32_fake_quant_above(): number;
  /** y = x·a[c] + b[c]. */
  f32_channel_affine_nhwc(x: number, xStride: number, y: number, yStride: number, pixels: number, channels: number, a: number, b: number): void;
  /** da[c] += Σ dy·x, db[c] += Σ dy, then dx = dy·a[c] (dx = 0: not written). */
  f32_channel_affine_backward_nhwc(x: number, xStride: number, dy: number, dyStride: number, dx: number, dxStride: number,
    pixels: number, channels: number, a: number, da: number, db: number): void;
  /** Backward of depth_to_space (x: HR [h·b, w·b, c] → y: LR [h, w, c·b²]). */
  x32_space_to_depth_nhwc(x: number, h: number, w: number, c: number, b: number, xStride: number, y: number, yStride: number): void;
  /** dx[h, w] = Σ over the f×f block of dy (dy: [h·f, w·f, c]). */
  f32_upsample_nearest_backward_nhwc(dy: number, h: number, w: number, c: number, f: number, dyStride: number, dx: number, dxStride: number): void;
  /** Σ|p − t|, grad = sign(p − t)·k (g = 0: loss only). */
  f32_l1_loss_nhwc(p: number, pStride: number, t: number, tStride: number, g: number, gStride: number, pixels: number, channels: number, k: number): number;
  /** Σ(p − t)², grad = (p − t)·k. */
  f32_mse_loss_nhwc(p: number, pStride: number, t: number, tStride: number, g: number, gStride: number, pixels: number, channels: number, k: number): number;
}

export { fakeQuantStep } from "../kernels/grad-elementwise.ts";
