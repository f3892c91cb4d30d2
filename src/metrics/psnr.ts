import { LowbitError, checkInt } from "../runtime/errors.ts";
import { checkImage, rgbToY, type ImageView } from "./color.ts";

/**
 * PSNR as SR papers report it (protocol.md §4): on the unrounded BT.601 Y plane, with `shave`
 * pixels cut from every side of both images (crop_border = scale), 10·log10(255² / MSE).
 * Identical inputs give +Infinity. The set score is the mean of per-image values (not the PSNR
 * of the pooled MSE).
 */

/** Checks a shave against a width × height plane; the remaining area must be non-empty. */
export function checkShave(shave: number, width: number, height: number, minSide = 1): void {
  checkInt(shave, 0, 1 << 20, "shave");
  if (width - 2 * shave < minSide || height - 2 * shave < minSide) {
    throw new LowbitError(
      "E_SHAPE",
      `shave ${shave} leaves ${width - 2 * shave}×${height - 2 * shave} of a ${width}×${height} image; need at least ${minSide}×${minSide}`,
    );
  }
}

function checkPlanes(a: ArrayLike<number>, b: ArrayLike<number>, width: number, height: number): void {
  checkInt(width, 1, 1 << 20, "width");
  checkInt(height, 1, 1 << 20, "height");
  const n = width * height;
  if (a.length !== n || b.length !== n) {
    throw new LowbitError("E_SHAPE", `planes have ${a.length} and ${b.length} values, expected ${width}×${height} = ${n}`);
  }
}

function checkSameSize(a: ImageView, b: ImageView): void {
  checkImage(a, "a");
  checkImage(b, "b");
  if (a.width !== b.width || a.height !== b.height || a.channels !== b.channels) {
    throw new LowbitError(
      "E_SHAPE",
      `images differ in size: ${a.width}×${a.height}×${a.channels} vs ${b.width}×${b.height}×${b.channels}`,
    );
  }
}

/** Mean squared error of two single-channel planes over the window left after shaving. */
export function msePlane(a: ArrayLike<number>, b: ArrayLike<number>, width: number, height: number, shave = 0): number {
  checkPlanes(a, b, width, height);
  checkShave(shave, width, height);
  let sum = 0;
  for (let y = shave; y < height - shave; y++) {
    const row = y * width;
    for (let x = row + shave, end = row + width - shave; x < end; x++) {
      const d = a[x] - b[x];
      sum += d * d;
    }
  }
  return sum / ((width - 2 * shave) * (height - 2 * shave));
}

/** 10·log10(peak² / mse); +Infinity for mse = 0. */
export function psnrFromMse(mse: number, peak = 255): number {
  return mse === 0 ? Infinity : 10 * Math.log10((peak * peak) / mse);
}

/** PSNR of two single-channel planes (e.g. Y from {@link rgbToY}) after shaving. */
export function psnrPlane(a: ArrayLike<number>, b: ArrayLike<number>, width: number, height: number, shave = 0, peak = 255): number {
  return psnrFromMse(msePlane(a, b, width, height, shave), peak);
}

/** The primary metric: PSNR on BT.601 Y (float, unrounded) of two RGB/RGBA images, `shave` px cut per side. */
export function psnrY(a: ImageView, b: ImageView, shave = 0): number {
  checkSameSize(a, b);
  checkShave(shave, a.width, a.height);
  return psnrPlane(rgbToY(null, a), rgbToY(null, b), a.width, a.height, shave);
}

/**
 * Secondary metric: PSNR over the R, G, B samples together (one MSE over all three channels;
 * alpha ignored), `shave` px cut per side. Single-channel images are scored as they are.
 */
export function psnrRgb(a: ImageView, b: ImageView, shave = 0): number {
  checkSameSize(a, b);
  const { width, height, channels: c } = a;
  checkShave(shave, width, height);
  const used = c >= 3 ? 3 : c === 1 ? 1 : 0;
  if (used === 0) throw new LowbitError("E_ARGUMENT", `psnrRgb needs 1, 3 or 4+ channels, got ${c}`);
  const da = a.data;
  const db = b.data;
  let sum = 0;
  for (let y = shave; y < height - shave; y++) {
    for (let x = shave; x < width - shave; x++) {
      const p = (y * width + x) * c;
      for (let k = 0; k < used; k++) {
        const d = da[p + k] - db[p + k];
        sum += d * d;
      }
    }
  }
  return psnrFromMse(sum / ((width - 2 * shave) * (height - 2 * shave) * used));
}
