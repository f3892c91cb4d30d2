/**
 * Tile planning for upscaling images of any size with memory bounded by the
 * tile, not the image.
 *
 * The image (LR) is cut into cores of at most `tile`×`tile` pixels. Each core
 * is computed on a *region* = core grown by `margin` on every side, clipped to
 * the image. Inside the image, the margin replaces the network's zero padding
 * with real neighbours; at the true image border the region stops, so the
 * network sees the same zero padding as on the whole image. With
 * margin ≥ ⌈receptive radius⌉ (models.md §6) each core's output is exactly the
 * untiled output; smaller margins trade exactness for speed.
 *
 * `pad` > 0 (GraphMeta.borderPad: nets that expect a replicated border, e.g. waifu2x) lets regions
 * reach up to min(pad, margin) pixels beyond the image; the tile loop fills those from the nearest
 * edge pixel (replicate padding), and the core still covers only the image.
 *
 * `align` > 1 (GraphMeta.tileAlign: nets with stride-2 stages, Real-CUGAN / cunet) rounds every region's
 * sides up to a multiple of it, extending right and bottom (beyond the image: replicated pixels).
 */
import { LowbitError } from "../runtime/errors.ts";

export interface Tile {
  /** Core, in LR pixels: the part of the output this tile owns. */
  x: number;
  y: number;
  w: number;
  h: number;
  /** Region computed (core + margin, clipped to the image grown by the border pad), in LR pixels. */
  rx: number;
  ry: number;
  rw: number;
  rh: number;
}

export interface TileGrid {
  tiles: Tile[];
  /** Largest region (the plan is compiled for it). */
  maxW: number;
  maxH: number;
}

/**
 * Splits W×H into near-equal cores of at most `tile` pixels per side (balanced,
 * so no sliver tile at the edge), each with its margin region.
 */
export function planTiles(width: number, height: number, tile: number, margin: number, pad = 0, align = 1): TileGrid {
  for (const [v, n] of [[width, "width"], [height, "height"], [tile, "tile"]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new LowbitError("E_ARGUMENT", `${n} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(margin) || margin < 0) throw new LowbitError("E_ARGUMENT", `margin must be an integer ≥ 0, got ${margin}`);
  if (!Number.isInteger(pad) || pad < 0) throw new LowbitError("E_ARGUMENT", `border pad must be an integer ≥ 0, got ${pad}`);
  if (!Number.isInteger(align) || align < 1 || align > 64) throw new LowbitError("E_ARGUMENT", `tile alignment must be an integer in 1..64, got ${align}`);
  const nx = Math.ceil(width / tile);
  const ny = Math.ceil(height / tile);
  const xs = split(width, nx);
  const ys = split(height, ny);
  const tiles: Tile[] = [];
  let maxW = 0;
  let maxH = 0;
  for (const [y, h] of ys) {
    for (const [x, w] of xs) {
      const rx = Math.max(-pad, x - margin);
      const ry = Math.max(-pad, y - margin);
      // Regions of models that downsample internally (GraphMeta.tileAlign) grow right/bottom to a multiple
      // of the alignment — into the image, else beyond it (replicated), as realcugan-ncnn-vulkan pads.
      const rw = Math.ceil((Math.min(width + pad, x + w + margin) - rx) / align) * align;
      const rh = Math.ceil((Math.min(height + pad, y + h + margin) - ry) / align) * align;
      tiles.push({ x, y, w, h, rx, ry, rw, rh });
      maxW = Math.max(maxW, rw);
      maxH = Math.max(maxH, rh);
    }
  }
  return { tiles, maxW, maxH };
}

/** n near-equal [start, length] segments covering [0, len). */
function split(len: number, n: number): [number, number][] {
  const out: [number, number][] = [];
  let s = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.round(((i + 1) * len) / n);
    out.push([s, e - s]);
    s = e;
  }
  return out;
}
