/**
 * What browser code has in hand, in and out: `ImageData` / `{ data, width, height }` RGBA,
 * `ImageBitmap`s, `<img>` elements, canvases and Blobs; and a fetch that reports download progress.
 * Everything here is optional sugar over the engine, which already accepts `ImageData` as is
 * (RGBA → RGBA, alpha upscaled with bicubic). No function here touches the DOM at import time,
 * so the module loads in Node and in workers too.
 */
import { LowbitError } from "../runtime/errors.ts";
import type { ImageLike, RgbImage } from "./image.ts";

/** A drawable the canvas helpers accept (whatever `drawImage` takes) or an encoded image Blob. */
export type ImageSourceLike = CanvasImageSource | Blob;

/** An RGBA image with ImageData's shape: `ImageData` itself in browsers. */
export interface RgbaImage {
  data: Uint8ClampedArray;
  width: number;
  height: number;
}

/**
 * 8-bit RGB or RGBA (an upscaler result, a decoded PNG) → RGBA with ImageData's shape, alpha 255
 * for RGB. Returns a real `ImageData` where the constructor exists (browsers, workers).
 */
export function toImageData(img: ImageLike | RgbImage): RgbaImage {
  const { width: w, height: h } = img;
  const c = img.channels ?? img.data.length / (w * h);
  if ((c !== 3 && c !== 4) || img.data.length !== w * h * c) {
    throw new LowbitError("E_SHAPE", `image data has ${img.data.length} bytes, not ${w}×${h} RGB or RGBA`);
  }
  const out = new Uint8ClampedArray(w * h * 4);
  if (c === 4) out.set(img.data);
  else {
    const s = img.data;
    for (let i = 0, j = 0; i < s.length; i += 3, j += 4) {
      out[j] = s[i];
      out[j + 1] = s[i + 1];
      out[j + 2] = s[i + 2];
      out[j + 3] = 255;
    }
  }
  const ID = (globalThis as { ImageData?: new (d: Uint8ClampedArray, w: number, h: number) => RgbaImage }).ImageData;
  return ID ? new ID(out, w, h) : { data: out, width: w, height: h };
}

/** Drops alpha: RGBA (or RGB, copied) → packed RGB. */
export function toRgb(img: ImageLike): RgbImage {
  const { width: w, height: h } = img;
  const c = img.channels ?? img.data.length / (w * h);
  if ((c !== 3 && c !== 4) || img.data.length !== w * h * c) {
    throw new LowbitError("E_SHAPE", `image data has ${img.data.length} bytes, not ${w}×${h} RGB or RGBA`);
  }
  const out = new Uint8Array(w * h * 3);
  for (let i = 0, j = 0; j < out.length; i += c, j += 3) {
    out[j] = img.data[i];
    out[j + 1] = img.data[i + 1];
    out[j + 2] = img.data[i + 2];
  }
  return { data: out, width: w, height: h, channels: 3 };
}

interface Canvas2D {
  getContext(id: "2d", o?: object): {
    drawImage(s: CanvasImageSource, x: number, y: number): void;
    getImageData(x: number, y: number, w: number, h: number): RgbaImage;
    putImageData(d: RgbaImage, x: number, y: number): void;
  } | null;
  width: number;
  height: number;
}

function canvas(w: number, h: number): Canvas2D {
  const g = globalThis as { OffscreenCanvas?: new (w: number, h: number) => Canvas2D; document?: { createElement(t: "canvas"): Canvas2D } };
  if (g.OffscreenCanvas) return new g.OffscreenCanvas(w, h);
  if (g.document) {
    const c = g.document.createElement("canvas");
    c.width = w;
    c.height = h;
    return c;
  }
  throw new LowbitError("E_ARGUMENT", "no canvas in this environment (OffscreenCanvas or document): decode images another way (Node: the CLI's PNG/JPEG reader)");
}

function sizeOf(s: CanvasImageSource): [number, number] {
  const o = s as { naturalWidth?: number; naturalHeight?: number; videoWidth?: number; videoHeight?: number; width?: number | { baseVal: { value: number } }; height?: number | { baseVal: { value: number } } };
  const w = o.naturalWidth || o.videoWidth || (typeof o.width === "number" ? o.width : o.width?.baseVal.value ?? 0);
  const h = o.naturalHeight || o.videoHeight || (typeof o.height === "number" ? o.height : o.height?.baseVal.value ?? 0);
  return [w, h];
}

/**
 * Pixels of an image source as RGBA ImageData: an `ImageBitmap`, `<img>` (loaded), `<canvas>`,
 * `OffscreenCanvas`, `VideoFrame`, or an encoded image `Blob` (decoded with createImageBitmap,
 * no colour-space conversion and no premultiplication, so opaque PNGs come back byte-exact).
 * Browsers and workers only. Canvases store premultiplied alpha: semi-transparent pixels may
 * lose precision in their colour channels (a browser property, not lowbit's).
 */
export async function imageDataFrom(src: ImageSourceLike): Promise<RgbaImage> {
  let source: CanvasImageSource;
  let bitmap: ImageBitmap | null = null;
  if (typeof Blob !== "undefined" && src instanceof Blob) {
    if (typeof createImageBitmap !== "function") throw new LowbitError("E_ARGUMENT", "createImageBitmap is not available to decode a Blob here");
    try {
      bitmap = await createImageBitmap(src, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    } catch (e) {
      throw new LowbitError("E_IO", `cannot decode the image: ${(e as Error).message}`, { cause: e });
    }
    source = bitmap;
  } else source = src as CanvasImageSource;
  const [w, h] = sizeOf(source);
  if (!w || !h) throw new LowbitError("E_SHAPE", "the image source has no size (not loaded yet?)");
  const c = canvas(w, h);
  const ctx = c.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new LowbitError("E_ARGUMENT", "no 2D canvas context");
  ctx.drawImage(source, 0, 0);
  bitmap?.close();
  return ctx.getImageData(0, 0, w, h);
}

/** Draws an upscaled (or any RGB/RGBA) image into a canvas, resizing the canvas to fit. */
export function drawToCanvas(target: Canvas2D | HTMLCanvasElement | OffscreenCanvas, img: ImageLike | RgbImage): void {
  const t = target as Canvas2D;
  t.width = img.width;
  t.height = img.height;
  const ctx = t.getContext("2d");
  if (!ctx) throw new LowbitError("E_ARGUMENT", "no 2D canvas context");
  ctx.putImageData(toImageData(img), 0, 0);
}

/** An ImageBitmap of an RGB/RGBA image (for drawImage / transfer to another thread). */
export async function toImageBitmap(img: ImageLike | RgbImage): Promise<ImageBitmap> {
  if (typeof createImageBitmap !== "function") throw new LowbitError("E_ARGUMENT", "createImageBitmap is not available here");
  return createImageBitmap(toImageData(img) as ImageData);
}

/**
 * A fetch that reports download progress: `onProgress(loaded, total)` after every chunk of every
 * response it returns, `loaded` summed over all responses so far (model.json and its shards) and
 * `total` the sum of their Content-Length headers (null while any response has none). Pass it
 * as the `fetch` option of loadModel / loadAnyModel / createUpscaler's `load`.
 */
export function progressFetch(onProgress: (loaded: number, total: number | null) => void, base: typeof fetch = globalThis.fetch): typeof fetch {
  if (typeof base !== "function") throw new LowbitError("E_IO", "no fetch() to wrap");
  let loaded = 0;
  let total: number | null = 0;
  const wrapped = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const res = await base(input, init);
    if (!res.ok || !res.body || typeof ReadableStream === "undefined") return res;
    const len = Number(res.headers.get("content-length") ?? NaN);
    if (total !== null) total = Number.isFinite(len) ? total + len : null;
    const reader = res.body.getReader();
    const counted = new ReadableStream<Uint8Array>({
      async pull(ctrl) {
        const { done, value } = await reader.read();
        if (done) {
          ctrl.close();
          return;
        }
        loaded += value.byteLength;
        onProgress(loaded, total);
        ctrl.enqueue(value);
      },
      cancel: (r) => reader.cancel(r),
    });
    return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  return wrapped as typeof fetch;
}
