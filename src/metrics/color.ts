import { LowbitError, checkInt } from "../runtime/errors.ts";

/**
 * Pixel containers the metrics accept. Integer arrays hold 0..255 codes; float arrays hold
 * values on the same 0..255 scale (not 0..1), so one formula serves both.
 */
export type PixelArray = Uint8Array | Uint8ClampedArray | Float32Array | Float64Array;

/** An interleaved image (row-major, `channels` samples per pixel, no row padding). */
export interface ImageView {
  data: PixelArray;
  width: number;
  height: number;
  channels: number;
}

/** An 8-bit interleaved image, as produced by the resizer and by `readImage`. */
export interface ImageU8 extends ImageView {
  data: Uint8Array;
}

/** Largest side / pixel count the metrics accept: keeps every index inside int32 and typed-array limits. */
const MAX_SIDE = 1 << 20;
const MAX_SAMPLES = 2 ** 31 - 1;

/** Validates an ImageView (positive integer sizes, data length = w·h·c); E_ARGUMENT / E_SHAPE. */
export function checkImage(img: ImageView, what = "image"): void {
  if (img === null || typeof img !== "object") throw new LowbitError("E_ARGUMENT", `${what} must be an image object`);
  const d = img.data as unknown;
  if (
    !(d instanceof Uint8Array || d instanceof Uint8ClampedArray || d instanceof Float32Array || d instanceof Float64Array)
  ) {
    throw new LowbitError("E_ARGUMENT", `${what}.data must be a Uint8Array, Uint8ClampedArray, Float32Array or Float64Array`);
  }
  checkInt(img.width, 1, MAX_SIDE, `${what}.width`);
  checkInt(img.height, 1, MAX_SIDE, `${what}.height`);
  checkInt(img.channels, 1, 64, `${what}.channels`);
  const n = img.width * img.height * img.channels;
  if (n > MAX_SAMPLES) throw new LowbitError("E_MEMORY", `${what} has ${n} samples, more than ${MAX_SAMPLES}`);
  if (img.data.length !== n) {
    throw new LowbitError(
      "E_SHAPE",
      `${what}.data has ${img.data.length} samples, expected ${img.width}×${img.height}×${img.channels} = ${n}`,
    );
  }
}

/**
 * Luma Y of BT.601 "studio swing" YCbCr exactly as MATLAB `rgb2ycbcr` computes it on doubles
 * (which is what the SR literature scores): Y = 16 + (65.481·R + 128.553·G + 24.966·B) / 255
 * with R, G, B on 0..255, so Y ∈ [16, 235]. Y stays a float — rounding it to uint8 (as
 * `rgb2ycbcr` on uint8 input would) moves PSNR in the 3rd decimal.
 *
 * `img` must have 3 or 4 channels (R, G, B first; a 4th alpha channel is ignored).
 * `out` receives width·height values, row-major; pass null to allocate.
 */
export function rgbToY(out: Float64Array | null, img: ImageView): Float64Array {
  checkImage(img);
  const { width, height, channels: c, data } = img;
  if (c !== 3 && c !== 4) throw new LowbitError("E_ARGUMENT", `rgbToY needs 3 (RGB) or 4 (RGBA) channels, got ${c}`);
  const n = width * height;
  if (out === null) out = new Float64Array(n);
  else if (out.length !== n) throw new LowbitError("E_SHAPE", `rgbToY: out has ${out.length} values, expected ${n}`);
  for (let i = 0, j = 0; i < n; i++, j += c) {
    // Same operation order as MATLAB's matrix product (T * rgb) / 255 + offset.
    out[i] = 16 + (65.481 * data[j] + 128.553 * data[j + 1] + 24.966 * data[j + 2]) / 255;
  }
  return out;
}

/**
 * Float (0..255 scale) → uint8 with the protocol's one rounding: half away from zero
 * (MATLAB `uint8()`, `im2uint8`), saturated to 0..255; NaN → 0. `out` may be null.
 * For v ≥ 0.5 `Math.round` is exact half-up, which equals half-away-from-zero there; below
 * 0.5 the answer is 0 whatever the sign, so negative ties need no special case.
 */
export function toUint8(out: Uint8Array | null, src: ArrayLike<number>): Uint8Array {
  const n = src.length;
  if (out === null) out = new Uint8Array(n);
  else if (out.length !== n) throw new LowbitError("E_SHAPE", `toUint8: out has ${out.length} values, expected ${n}`);
  for (let i = 0; i < n; i++) out[i] = roundU8(src[i]);
  return out;
}

/** One sample of {@link toUint8}. */
export function roundU8(v: number): number {
  return v >= 0.5 ? (v >= 254.5 ? 255 : Math.round(v)) : 0;
}
