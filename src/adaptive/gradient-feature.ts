/**
 * The image-complexity statistic both bit-adaptation methods start from (adabm.md §2, cadyq.md §2):
 *
 *   gray = 0.299·R + 0.587·G + 0.114·B          of the LR image scaled to [0, 1] (LR/255, kornia)
 *   ∂x = gray ⊛ K_x/8,  ∂y = gray ⊛ K_y/8,       K_x = [[−1,0,1],[−2,0,2],[−1,0,1]], K_y = K_xᵀ
 *        with replicate padding (kornia.filters.spatial_gradient, normalized)
 *   g = 1000·[mean|∂x|, mean|∂y|]               (CADyQ keeps both values)
 *   g_AdaBM = ½(g_x + g_y) = 1000·mean over both directions of |∂|
 *
 * Computed in f64 in TypeScript: one pass over the tile's pixels (≈ 20 flops each) costs well under
 * a millisecond on a 96×96 patch — a negligible share of any network's run, measured in
 * bench/adaptive-cost.ts. The region may be a sub-rectangle of a larger buffer (a tile's core
 * inside its margin region): padding replicates the rectangle's own edge, as kornia does on a patch.
 */
import { check, checkInt } from "../runtime/errors.ts";

export interface FeatureRect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * out[0] = 1000·mean|∂x|, out[1] = 1000·mean|∂y| of the `rect` of an interleaved RGB float image
 * (`width` pixels per row, `stride` floats per pixel, RGB first), whose values map to [0, 1]
 * as (v − lo)/(hi − lo) (the model's input range). Returns `out`.
 */
export function gradientFeature(
  out: Float64Array, rgb: Float32Array, width: number, height: number, stride: number, lo: number, hi: number, rect?: FeatureRect,
): Float64Array {
  check(out.length >= 2, "E_ARGUMENT", "gradient feature output needs 2 values");
  checkInt(width, 1, 1 << 20, "image width", "E_SHAPE");
  checkInt(height, 1, 1 << 20, "image height", "E_SHAPE");
  checkInt(stride, 3, 1 << 16, "pixel stride", "E_SHAPE");
  check(rgb.length >= ((height - 1) * width + width - 1) * stride + 3, "E_SHAPE", `image buffer holds ${rgb.length} floats, ${width}×${height}×${stride} needs more`);
  check(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo, "E_RANGE", `input range [${lo}, ${hi}] is empty`);
  const r = rect ?? { x: 0, y: 0, w: width, h: height };
  check(Number.isInteger(r.x) && Number.isInteger(r.y) && Number.isInteger(r.w) && Number.isInteger(r.h) && r.x >= 0 && r.y >= 0 && r.w >= 1 && r.h >= 1 &&
    r.x + r.w <= width && r.y + r.h <= height, "E_SHAPE", () => `feature rectangle ${JSON.stringify(r)} is not inside ${width}×${height}`);
  const W = r.w, H = r.h, k = 1 / (hi - lo);
  // Grayscale rows of the rectangle, padded by one replicated pixel on each side.
  const PW = W + 2;
  const gray = new Float64Array(PW * (H + 2));
  for (let y = 0; y < H; y++) {
    let i = ((r.y + y) * width + r.x) * stride;
    const row = (y + 1) * PW + 1;
    for (let x = 0; x < W; x++, i += stride) {
      gray[row + x] = 0.299 * (rgb[i] - lo) * k + 0.587 * (rgb[i + 1] - lo) * k + 0.114 * (rgb[i + 2] - lo) * k;
    }
    gray[row - 1] = gray[row];
    gray[row + W] = gray[row + W - 1];
  }
  gray.copyWithin(0, PW, 2 * PW);
  gray.copyWithin((H + 1) * PW, H * PW, (H + 1) * PW);
  let sx = 0, sy = 0;
  for (let y = 1; y <= H; y++) {
    const u = (y - 1) * PW, m = y * PW, d = (y + 1) * PW;
    for (let x = 1; x <= W; x++) {
      const gx = (gray[u + x + 1] - gray[u + x - 1]) + 2 * (gray[m + x + 1] - gray[m + x - 1]) + (gray[d + x + 1] - gray[d + x - 1]);
      const gy = (gray[d + x - 1] - gray[u + x - 1]) + 2 * (gray[d + x] - gray[u + x]) + (gray[d + x + 1] - gray[u + x + 1]);
      sx += Math.abs(gx);
      sy += Math.abs(gy);
    }
  }
  const n = W * H * 8;
  out[0] = (1000 * sx) / n;
  out[1] = (1000 * sy) / n;
  return out;
}

/** AdaBM's scalar: 1000·½(mean|∂x| + mean|∂y|) of an 8-bit RGB(A) image. */
export function imageComplexity(img: { data: ArrayLike<number>; width: number; height: number; channels?: number }): number {
  const C = img.channels ?? Math.round(img.data.length / (img.width * img.height));
  check(C === 3 || C === 4, "E_SHAPE", `image must be RGB or RGBA, got ${C} channels`);
  const f = Float32Array.from(img.data as ArrayLike<number>);
  const g = gradientFeature(new Float64Array(2), f, img.width, img.height, C, 0, 255);
  return (g[0] + g[1]) / 2;
}
