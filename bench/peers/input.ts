// Inputs for the peers benchmark: a real photo at any LR size, with its HR ground truth, so every
// contender's output gets a PSNR-Y (speed must never hide an accuracy loss).
//
// The eval photos are 480×480 HR at most, smaller than 256·4 = 1024, so the HR canvas is the photo
// mirrored (reflect, period 2·480) up to side·scale, and the LR input is its MATLAB-bicubic downscale —
// exactly how the eval set's LR images were made (the resizer reproduces them bit for bit, see the
// metrics tests). A mirror seam is ordinary image content for an SR net; every contender sees the same.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeImage } from "../../src/io/image.ts";
import { bicubicDown, type ImageU8 } from "../../src/metrics/index.ts";
import { evalDir } from "../../test/util/eval-data.ts";

/** Reflect index i into [0, n): 0 1 … n−1 n−1 … 0 0 1 … (period 2n). */
function reflect(i: number, n: number): number {
  const p = i % (2 * n);
  return p < n ? p : 2 * n - 1 - p;
}

export interface PeerInput {
  /** LR RGB, side×side, 8-bit (what a user hands to upscale()). */
  lr: ImageU8;
  /** HR RGB ground truth, (side·scale)², 8-bit. */
  hr: ImageU8;
}

/** LR side×side and its HR (side·scale)² from the eval photo `name` (default baboon, detailed texture). */
export function peerInput(side: number, scale: number, name = "baboon"): PeerInput {
  const src = decodeImage(readFileSync(join(evalDir(), "hr", `${name}.png`)));
  const n = side * scale;
  const data = new Uint8Array(n * n * 3);
  for (let y = 0; y < n; y++) {
    const sy = reflect(y, src.height);
    for (let x = 0; x < n; x++) {
      const sx = reflect(x, src.width);
      for (let c = 0; c < 3; c++) data[(y * n + x) * 3 + c] = src.data[(sy * src.width + sx) * src.channels + c];
    }
  }
  const hr: ImageU8 = { data, width: n, height: n, channels: 3 };
  return { lr: bicubicDown(hr, scale), hr };
}

/** The float input exactly as upscale() builds it from 8-bit pixels: lo + p·(hi − lo)/255. */
export function toFloat(u8: Uint8Array, lo: number, hi: number): Float32Array {
  const k = (hi - lo) / 255;
  const x = new Float32Array(u8.length);
  for (let i = 0; i < u8.length; i++) x[i] = lo + u8[i] * k;
  return x;
}

/** The 8-bit image upscale() would write for a float output in [lo, hi] (clip, map, round half up). */
export function toU8(v: Float32Array, lo: number, hi: number): Uint8Array {
  const k = 255 / (hi - lo);
  const out = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const c = v[i] < lo ? lo : v[i] > hi ? hi : v[i];
    out[i] = Math.floor((c - lo) * k + 0.5);
  }
  return out;
}

/** NHWC (batch 1) → NCHW. */
export function nhwcToNchw(x: Float32Array, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) for (let k = 0; k < c; k++) out[(k * h + y) * w + xx] = x[(y * w + xx) * c + k];
  return out;
}

/** NCHW (batch 1) → NHWC. */
export function nchwToNhwc(x: Float32Array, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let k = 0; k < c; k++) for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) out[(y * w + xx) * c + k] = x[(k * h + y) * w + xx];
  return out;
}
