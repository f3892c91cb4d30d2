/**
 * Calibration patches: seeded random LR crops with the EDSR augmentation
 * (horizontal flip, vertical flip, transpose — the 8 dihedral variants), as
 * the DFSQ reference samples its 32 calibration patches (dfsq.md §1).
 */
import type { ImageLike } from "../engine/image.ts";
import { imageChannels } from "../engine/image.ts";
import { LowbitError } from "../runtime/errors.ts";
import { Mulberry32 } from "../util/rng.ts";

export interface PatchOptions {
  /** Number of patches (default 32). */
  count?: number;
  /** Side of a square LR patch (clipped to the smallest image). */
  size: number;
  seed?: number;
  /** Random flips / transpose (default true). */
  augment?: boolean;
}

/** `count` random size×size RGB crops, round-robin over `images` (image i gets patches i, i + n, …). */
export function samplePatches(images: readonly ImageLike[], o: PatchOptions): ImageLike[] {
  if (images.length === 0) throw new LowbitError("E_ARGUMENT", "calibration needs at least one image");
  const count = o.count ?? 32;
  if (!Number.isInteger(count) || count < 1) throw new LowbitError("E_ARGUMENT", `patch count must be a positive integer, got ${count}`);
  if (!Number.isInteger(o.size) || o.size < 1) throw new LowbitError("E_ARGUMENT", `patch size must be a positive integer, got ${o.size}`);
  const rng = new Mulberry32(o.seed ?? 1);
  const rnd = () => rng.next();
  const out: ImageLike[] = [];
  for (let i = 0; i < count; i++) {
    const img = images[i % images.length];
    const C = imageChannels(img, 2 ** 28);
    const side = Math.min(o.size, img.width, img.height);
    const x0 = Math.floor(rnd() * (img.width - side + 1));
    const y0 = Math.floor(rnd() * (img.height - side + 1));
    const aug = o.augment === false ? 0 : Math.floor(rnd() * 8);
    const hflip = aug & 1, vflip = aug & 2, transpose = aug & 4;
    const data = new Uint8Array(side * side * 3);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        let sx = transpose ? y : x, sy = transpose ? x : y;
        if (hflip) sx = side - 1 - sx;
        if (vflip) sy = side - 1 - sy;
        const s = ((y0 + sy) * img.width + x0 + sx) * C, d = (y * side + x) * 3;
        data[d] = img.data[s];
        data[d + 1] = img.data[s + 1];
        data[d + 2] = img.data[s + 2];
      }
    }
    out.push({ data, width: side, height: side, channels: 3 });
  }
  return out;
}
