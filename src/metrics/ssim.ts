import { LowbitError } from "../runtime/errors.ts";
import { checkImage, rgbToY, type ImageView } from "./color.ts";
import { checkShave } from "./psnr.ts";

/**
 * SSIM exactly as Wang et al. 2004 `ssim_index.m` (protocol.md §5), the variant SR papers use:
 * 11×11 Gaussian window σ = 1.5 normalised to sum 1, K1 = 0.01, K2 = 0.03, L = 255, 'valid'
 * filtering (the map is 10 px smaller per axis), score = mean of the map, no downsampling
 * (Wang's later `ssim.m` downsamples by max(1, round(min(M,N)/256)) — not this).
 *
 *   μx = w⋆x,  σx² = w⋆x² − μx²,  σxy = w⋆xy − μxμy
 *   SSIM = ((2μxμy + C1)(2σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2)),  C1 = (K1·L)², C2 = (K2·L)²
 *
 * The 2-D Gaussian is the outer product of the normalised 1-D Gaussian, so the five filtered
 * planes (x, y, x², y², xy) are computed separably (22 instead of 121 multiply-adds per sample),
 * all in float64.
 * Against the 2-D `filter2` of the reference this changes only the summation order: ~1e-13.
 */

export const SSIM_WINDOW = 11;
export const SSIM_SIGMA = 1.5;
export const SSIM_K1 = 0.01;
export const SSIM_K2 = 0.03;
export const SSIM_L = 255;

/** Normalised 1-D Gaussian: g[i] ∝ exp(−(i − (n−1)/2)² / 2σ²), Σg = 1 (= cv2.getGaussianKernel(n, σ)). */
export function gaussianWindow1d(size = SSIM_WINDOW, sigma = SSIM_SIGMA): Float64Array {
  const g = new Float64Array(size);
  const c = (size - 1) / 2;
  let s = 0;
  for (let i = 0; i < size; i++) s += g[i] = Math.exp(-((i - c) * (i - c)) / (2 * sigma * sigma));
  for (let i = 0; i < size; i++) g[i] /= s;
  return g;
}

const G = gaussianWindow1d();

/**
 * SSIM of two single-channel planes (0..255 scale) after shaving `shave` px per side.
 * The shaved plane must be at least 11×11. With `map` given (length (w'−10)·(h'−10), where
 * w' = width − 2·shave) the SSIM map is written there as well.
 */
export function ssimPlane(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  width: number,
  height: number,
  shave = 0,
  map?: Float64Array,
): number {
  const n = width * height;
  if (a.length !== n || b.length !== n) {
    throw new LowbitError("E_SHAPE", `planes have ${a.length} and ${b.length} values, expected ${width}×${height} = ${n}`);
  }
  checkShave(shave, width, height, SSIM_WINDOW);
  const K = SSIM_WINDOW;
  const w = width - 2 * shave; // analysed window
  const h = height - 2 * shave;
  const mw = w - K + 1; // 'valid' map size
  const mh = h - K + 1;
  if (map !== undefined && map.length !== mw * mh) {
    throw new LowbitError("E_SHAPE", `ssim map has ${map.length} values, expected ${mw}×${mh}`);
  }
  const C1 = (SSIM_K1 * SSIM_L) ** 2;
  const C2 = (SSIM_K2 * SSIM_L) ** 2;

  // One map row at a time: the vertical pass streams K image rows into five row sums (contiguous
  // reads), the horizontal pass filters those and evaluates the map. Scratch is five rows.
  const fa = a instanceof Float64Array ? a : Float64Array.from(a);
  const fb = b instanceof Float64Array ? b : Float64Array.from(b);
  const vx = new Float64Array(w);
  const vy = new Float64Array(w);
  const vxx = new Float64Array(w);
  const vyy = new Float64Array(w);
  const vxy = new Float64Array(w);
  let total = 0;
  for (let r = 0; r < mh; r++) {
    for (let k = 0; k < K; k++) {
      const g = G[k];
      const off = (r + k + shave) * width + shave;
      if (k === 0) {
        for (let j = 0; j < w; j++) {
          const x = fa[off + j];
          const y = fb[off + j];
          const gx = g * x;
          const gy = g * y;
          vx[j] = gx;
          vy[j] = gy;
          vxx[j] = gx * x;
          vyy[j] = gy * y;
          vxy[j] = gx * y;
        }
      } else {
        for (let j = 0; j < w; j++) {
          const x = fa[off + j];
          const y = fb[off + j];
          const gx = g * x;
          const gy = g * y;
          vx[j] += gx;
          vy[j] += gy;
          vxx[j] += gx * x;
          vyy[j] += gy * y;
          vxy[j] += gx * y;
        }
      }
    }
    let rowSum = 0;
    for (let c = 0; c < mw; c++) {
      let ux = 0, uy = 0, exx = 0, eyy = 0, exy = 0;
      for (let k = 0; k < K; k++) {
        const g = G[k];
        const p = c + k;
        ux += g * vx[p];
        uy += g * vy[p];
        exx += g * vxx[p];
        eyy += g * vyy[p];
        exy += g * vxy[p];
      }
      const uxx = ux * ux;
      const uyy = uy * uy;
      const uxy = ux * uy;
      // σx² + σy² summed as (exx − uxx) + (eyy − uyy) and σxy doubled after the subtraction, so
      // x = y gives numerator = denominator bit for bit: SSIM(x, x) is exactly 1.
      const s = ((2 * uxy + C1) * (2 * (exy - uxy) + C2)) / ((uxx + uyy + C1) * (exx - uxx + (eyy - uyy) + C2));
      if (map !== undefined) map[r * mw + c] = s;
      rowSum += s;
    }
    total += rowSum;
  }
  return total / (mw * mh);
}

/** The primary structural metric: SSIM on BT.601 Y (float, unrounded) of two RGB/RGBA images, `shave` px cut per side. */
export function ssimY(a: ImageView, b: ImageView, shave = 0): number {
  checkImage(a, "a");
  checkImage(b, "b");
  if (a.width !== b.width || a.height !== b.height || a.channels !== b.channels) {
    throw new LowbitError(
      "E_SHAPE",
      `images differ in size: ${a.width}×${a.height}×${a.channels} vs ${b.width}×${b.height}×${b.channels}`,
    );
  }
  checkShave(shave, a.width, a.height, SSIM_WINDOW);
  return ssimPlane(rgbToY(null, a), rgbToY(null, b), a.width, a.height, shave);
}
