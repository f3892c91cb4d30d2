/**
 * A bit map as a picture: each tile core coloured by the bits it ran with (FAB), blended over the
 * image's luminance so the content stays recognisable. Pure RGB bytes: the CLI encodes the PNG
 * (`lowbit upscale --bitmap map.png`).
 */
import type { BitMap } from "./context.ts";
import { check } from "../runtime/errors.ts";

/** Blue (lo bits) → cyan → green → yellow → red (hi bits). */
export function heatColor(out: Uint8Array, at: number, v: number, lo: number, hi: number): void {
  const t = hi > lo ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : 0.5;
  const stops = [[0, 0, 255], [0, 200, 255], [0, 200, 0], [255, 220, 0], [230, 0, 0]];
  const x = t * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
  for (let c = 0; c < 3; c++) out[at + c] = Math.round(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]));
}

/**
 * RGB heat map of `map` at the LR size of `image` (8-bit RGB/RGBA): 60 % the tile's FAB colour
 * on [lo, hi] bits (default 2..8), 40 % the pixel's luminance.
 */
export function renderBitMap(map: BitMap, image: { data: ArrayLike<number>; width: number; height: number; channels?: number }, lo = 2, hi = 8): { data: Uint8Array; width: number; height: number; channels: 3 } {
  const { width: W, height: H } = image;
  const C = image.channels ?? image.data.length / (W * H);
  check(C === 3 || C === 4, "E_SHAPE", `image must be RGB or RGBA, got ${C} channels`);
  const out = new Uint8Array(W * H * 3);
  const col = new Uint8Array(3);
  for (const t of map.tiles) {
    check(t.x >= 0 && t.y >= 0 && t.x + t.w <= W && t.y + t.h <= H, "E_SHAPE", `bit-map tile ${t.x},${t.y} ${t.w}×${t.h} is outside the ${W}×${H} image`);
    heatColor(col, 0, t.fab, lo, hi);
    for (let y = t.y; y < t.y + t.h; y++) {
      for (let x = t.x; x < t.x + t.w; x++) {
        const i = (y * W + x) * C, o = (y * W + x) * 3;
        const yv = 0.299 * image.data[i] + 0.587 * image.data[i + 1] + 0.114 * image.data[i + 2];
        for (let c = 0; c < 3; c++) out[o + c] = Math.round(0.6 * col[c] + 0.4 * yv);
      }
    }
  }
  return { data: out, width: W, height: H, channels: 3 };
}
