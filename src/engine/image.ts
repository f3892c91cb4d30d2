/**
 * The image shapes lowbit accepts and returns: interleaved 8-bit RGB or RGBA,
 * which covers browser `ImageData` ({ data, width, height }, RGBA) and decoded
 * PNG/JPEG buffers in Node.
 */
import { LowbitError } from "../runtime/errors.ts";

export interface ImageLike {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  /** 3 (RGB) or 4 (RGBA); inferred from data.length when absent. */
  channels?: number;
}

export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3 | 4;
}

/** Validates an ImageLike and returns its channel count. */
export function imageChannels(img: ImageLike, maxPixels: number): 3 | 4 {
  if (!img || typeof img !== "object" || !(img.data instanceof Uint8Array || img.data instanceof Uint8ClampedArray)) {
    throw new LowbitError("E_ARGUMENT", "image must be { data: Uint8Array | Uint8ClampedArray, width, height }");
  }
  const { width: w, height: h } = img;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new LowbitError("E_SHAPE", `image size must be positive integers, got ${w}×${h}`);
  }
  if (w * h > maxPixels) {
    throw new LowbitError("E_MEMORY", `image ${w}×${h} has ${w * h} pixels, over the limit of ${maxPixels} (option maxPixels)`);
  }
  const c = img.channels ?? img.data.length / (w * h);
  if (c !== 3 && c !== 4) throw new LowbitError("E_SHAPE", `image must be RGB or RGBA: ${img.data.length} bytes for ${w}×${h} is ${c} channels`);
  if (img.data.length !== w * h * c) {
    throw new LowbitError("E_SHAPE", `image data has ${img.data.length} bytes, expected ${w}×${h}×${c} = ${w * h * c}`);
  }
  return c;
}
