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

/**
 * The centre side×side crop of an image as RGB (alpha dropped; a smaller image is kept whole): the
 * calibration protocol's patch (one per calibration photo).
 */
export function centreCrop(img: ImageLike, side: number): ImageLike {
  const C = imageChannels(img, Number.MAX_SAFE_INTEGER);
  const w = Math.min(side, img.width), h = Math.min(side, img.height);
  const x0 = (img.width - w) >> 1, y0 = (img.height - h) >> 1;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    data[(y * w + x) * 3 + c] = img.data[((y0 + y) * img.width + x0 + x) * C + c];
  }
  return { data, width: w, height: h, channels: 3 };
}
