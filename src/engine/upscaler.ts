/**
 * Tiled upscaling of 8-bit images on a compiled plan: the user-facing loop.
 *
 * Per tile: pixels (0..255) → the model's input range → plan → clip to the
 * output range → 0..255, rounded half away from zero (protocol.md §3) → the
 * tile's core is written into the output. Memory is bounded by the largest
 * tile region, not by the image. Between plan steps the loop yields to the
 * event loop every `yieldMs`, so progress is reported and an AbortSignal
 * stops a run promptly even inside one large tile; an aborted run leaves the
 * plan reusable (every run rewrites all the buffers it reads).
 */
import { LowbitError, throwIfAborted } from "../runtime/errors.ts";
import { DEFAULT_MAX_PIXELS } from "../runtime/limits.ts";
import { planTiles, type Tile } from "../tiling/tiles.ts";
import { imageChannels, type ImageLike, type RgbImage } from "./image.ts";
import type { ValueRange } from "../graph/ir.ts";
import type { HaloExchange } from "../graph/step-plan.ts";
import { bitMapOf, type BitMap, type BitMapTile, type TileBits } from "../adaptive/context.ts";

/** A compiled model the upscaler can drive (FP32 or quantized plans implement it). */
export interface ExecutablePlan {
  readonly scale: number;
  /** Largest region (LR pixels) the plan was compiled for. */
  readonly maxW: number;
  readonly maxH: number;
  /** Number of steps `runSteps` walks through. */
  readonly stepCount: number;
  /** f32 NHWC view of the input region (h·w·3) in the plan's arena; valid until memory grows. */
  inputView(w: number, h: number): Float32Array;
  /** Runs steps [from, to) on a w×h region. */
  runSteps(w: number, h: number, from: number, to: number): void;
  /** f32 NHWC view of the output (h·s · w·s · 3). */
  outputView(w: number, h: number): Float32Array;
  /**
   * Plans that can: compute each layer only on the rows the region's core rows depend on (top / bottom:
   * margin rows of the region), until reset with (0, 0). Core outputs are unchanged, bit for bit.
   */
  trimRows?(top: number, bottom: number): void;
  /** Plans that can: run the next tiles as one strip of a halo-exchanging split (StepPlan.setHalo); null resets. */
  setHalo?(ex: HaloExchange | null, top?: number, bottom?: number): void;
  /** Adaptive plans: the next tile's core inside its region (the bit decision looks at the core). */
  setCore?(x: number, y: number, w: number, h: number): void;
  /** Adaptive plans: what the last tile ran with. */
  tileBits?(): TileBits | null;
  bitLayerNames?(): { layers: string[]; counted: boolean[] };
}

/** An upscaled image; adaptive models also return the bits each tile used. */
export interface UpscaledImage extends RgbImage {
  bitMap?: BitMap;
}

export interface UpscaleProgress {
  /** 0..1 over the whole image. */
  fraction: number;
  tile: number;
  tiles: number;
}

export interface UpscaleOptions {
  onProgress?: (p: UpscaleProgress) => void;
  signal?: AbortSignal;
}

export interface TileLoopOptions {
  tile: number;
  margin: number;
  inputRange: ValueRange;
  outputRange: ValueRange;
  /** Upscales the alpha plane of RGBA input (the network sees RGB only). */
  upscaleAlpha?: (alpha: Uint8Array, w: number, h: number, scale: number) => Uint8Array;
  /** Yield to the event loop at least this often (ms) during a run. */
  yieldMs?: number;
  maxPixels?: number;
  /** Replicated border the model expects (GraphMeta.borderPad): border tiles read clamped pixels. */
  borderPad?: number;
  /** Region sides must be multiples of this (GraphMeta.tileAlign). */
  tileAlign?: number;
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

/** Runs `plan` over `img` tile by tile. */
export async function upscaleTiled(
  plan: (maxW: number, maxH: number) => ExecutablePlan,
  img: ImageLike,
  o: TileLoopOptions,
  run: UpscaleOptions = {},
): Promise<UpscaledImage> {
  const channels = imageChannels(img, o.maxPixels ?? DEFAULT_MAX_PIXELS);
  throwIfAborted(run.signal);
  const { width: W, height: H } = img;
  const grid = planTiles(W, H, o.tile, o.margin, o.borderPad ?? 0, o.tileAlign ?? 1);
  const p = plan(grid.maxW, grid.maxH);
  const s = p.scale;
  const out = new Uint8Array(W * s * H * s * channels);
  const [ilo, ihi] = o.inputRange;
  const [olo, ohi] = o.outputRange;
  const inScale = (ihi - ilo) / 255;
  const outScale = 255 / (ohi - olo);
  const yieldMs = o.yieldMs ?? 30;
  let last = Date.now();
  const work = grid.tiles.reduce((a, t) => a + t.rw * t.rh, 0);
  let done = 0;
  const bitTiles: BitMapTile[] = [];

  for (let ti = 0; ti < grid.tiles.length; ti++) {
    const t = grid.tiles[ti];
    fillInput(p.inputView(t.rw, t.rh), img.data, W, H, channels, t, ilo, inScale);
    p.setCore?.(t.x - t.rx, t.y - t.ry, t.w, t.h);
    p.trimRows?.(t.y - t.ry, t.ry + t.rh - t.y - t.h);
    try {
      for (let step = 0; step < p.stepCount; step++) {
        p.runSteps(t.rw, t.rh, step, step + 1);
        if (Date.now() - last >= yieldMs) {
          await tick();
          last = Date.now();
          throwIfAborted(run.signal);
          run.onProgress?.({ fraction: (done + (t.rw * t.rh * (step + 1)) / p.stepCount) / work, tile: ti, tiles: grid.tiles.length });
        }
      }
    } finally {
      p.trimRows?.(0, 0);
    }
    writeCore(out, W * s, channels, p.outputView(t.rw, t.rh), t, s, olo, ohi, outScale);
    const tb = p.tileBits?.();
    if (tb) bitTiles.push({ ...tb, x: t.x, y: t.y, w: t.w, h: t.h });
    done += t.rw * t.rh;
    run.onProgress?.({ fraction: done / work, tile: ti + 1, tiles: grid.tiles.length });
    throwIfAborted(run.signal);
  }

  if (channels === 4) {
    if (!o.upscaleAlpha) throw new LowbitError("E_ARGUMENT", "RGBA input needs an alpha upscaler");
    const a = new Uint8Array(W * H);
    for (let i = 0; i < W * H; i++) a[i] = img.data[i * 4 + 3];
    const A = o.upscaleAlpha(a, W, H, s);
    for (let i = 0; i < A.length; i++) out[i * 4 + 3] = A[i];
  }
  const result: UpscaledImage = { data: out, width: W * s, height: H * s, channels };
  if (bitTiles.length) {
    const names = p.bitLayerNames?.() ?? { layers: [], counted: [] };
    result.bitMap = bitMapOf(names.layers, names.counted, bitTiles);
  }
  return result;
}

/**
 * Tile region of `src` (W×H, C channels) → the plan's f32 input, mapped to the input range; a region
 * reaching beyond the image (a model's border pad) replicates the edge. Shared with the worker pool.
 */
export function fillInput(dst: Float32Array, src: ArrayLike<number>, W: number, H: number, C: number, t: Tile, lo: number, k: number): void {
  let d = 0;
  if (t.rx < 0 || t.ry < 0 || t.rx + t.rw > W || t.ry + t.rh > H) {
    // A region beyond the image (border pad): replicate the nearest edge pixel.
    for (let y = t.ry; y < t.ry + t.rh; y++) {
      const yy = y < 0 ? 0 : y >= H ? H - 1 : y;
      for (let x = t.rx; x < t.rx + t.rw; x++) {
        const i = (yy * W + (x < 0 ? 0 : x >= W ? W - 1 : x)) * C;
        dst[d++] = lo + src[i] * k;
        dst[d++] = lo + src[i + 1] * k;
        dst[d++] = lo + src[i + 2] * k;
      }
    }
    return;
  }
  for (let y = t.ry; y < t.ry + t.rh; y++) {
    let i = (y * W + t.rx) * C;
    for (let x = 0; x < t.rw; x++, i += C) {
      dst[d++] = lo + src[i] * k;
      dst[d++] = lo + src[i + 1] * k;
      dst[d++] = lo + src[i + 2] * k;
    }
  }
}

/** Clip to the output range, map to 0..255, round half away from zero (values are ≥ 0 here). Shared with the worker pool. */
export function writeCore(out: Uint8Array, OW: number, C: number, src: Float32Array, t: Tile, s: number, lo: number, hi: number, k: number): void {
  const rw = t.rw * s;
  const ox = (t.x - t.rx) * s;
  const oy = (t.y - t.ry) * s;
  for (let y = 0; y < t.h * s; y++) {
    let si = ((oy + y) * rw + ox) * 3;
    let di = ((t.y * s + y) * OW + t.x * s) * C;
    for (let x = 0; x < t.w * s; x++, si += 3, di += C) {
      for (let c = 0; c < 3; c++) {
        let v = src[si + c];
        v = v < lo ? lo : v > hi ? hi : v; // NaN stays NaN → 0 below
        out[di + c] = Math.floor((v - lo) * k + 0.5);
      }
    }
  }
}
