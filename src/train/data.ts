/**
 * Training samples: seeded random LR crops (and the aligned HR crops when ground truth is given)
 * with the EDSR augmentation (horizontal flip, vertical flip, transpose: the 8 dihedral
 * variants, the same transform on LR and HR), mapped from 8-bit pixels to the model's ranges.
 */
import type { ImageLike } from "../engine/image.ts";
import { imageChannels } from "../engine/image.ts";
import type { ValueRange } from "../graph/ir.ts";
import { LowbitError, check } from "../runtime/errors.ts";
import { Mulberry32 } from "../util/rng.ts";

/** LR images (patches or whole images), optionally with their HR counterparts (scale× larger). */
export interface TrainData {
  lr: readonly ImageLike[];
  hr?: readonly ImageLike[];
}

export interface Sample {
  /** LR, dense NHWC RGB in the model's input range. */
  lr: Float32Array;
  /** HR ground truth, dense NHWC RGB in the output range, or null. */
  hr: Float32Array | null;
  w: number;
  h: number;
}

const MAX_PIXELS = 2 ** 28;

/** Validates data against a model scale: equal counts, HR = scale × LR exactly. */
export function checkTrainData(data: TrainData, scale: number): void {
  check(data && Array.isArray(data.lr) && data.lr.length > 0, "E_ARGUMENT", "training data needs at least one LR image");
  for (const im of data.lr) imageChannels(im, MAX_PIXELS);
  if (data.hr !== undefined) {
    check(Array.isArray(data.hr) && data.hr.length === data.lr.length, "E_ARGUMENT", `training data has ${data.lr.length} LR and ${data.hr?.length} HR images`);
    data.hr.forEach((hr, i) => {
      imageChannels(hr, MAX_PIXELS);
      const lr = data.lr[i];
      if (hr.width !== lr.width * scale || hr.height !== lr.height * scale) {
        throw new LowbitError("E_SHAPE", `HR image ${i} is ${hr.width}×${hr.height}, expected ${scale}× its LR ${lr.width}×${lr.height}`);
      }
    });
  }
}

export interface SamplerOptions {
  /** Side of a square LR patch (clipped to the image). */
  patch: number;
  scale: number;
  inputRange: ValueRange;
  outputRange: ValueRange;
  seed?: number;
  /** Random dihedral transform (default true). */
  augment?: boolean;
}

/** Deterministic stream of samples: image i, i+1, … round-robin, random crop position and transform. */
export class PatchSampler {
  private readonly data: TrainData;
  private readonly o: SamplerOptions;
  private readonly rng: Mulberry32;
  private i = 0;

  constructor(data: TrainData, o: SamplerOptions) {
    check(Number.isInteger(o.patch) && o.patch >= 1, "E_ARGUMENT", `patch size must be a positive integer, got ${o.patch}`);
    checkTrainData(data, o.scale);
    this.data = data;
    this.o = o;
    this.rng = new Mulberry32(o.seed ?? 1);
  }

  next(): Sample {
    const idx = this.i++ % this.data.lr.length;
    const lr = this.data.lr[idx], hr = this.data.hr?.[idx] ?? null;
    const side = Math.min(this.o.patch, lr.width, lr.height);
    const x0 = Math.floor(this.rng.next() * (lr.width - side + 1));
    const y0 = Math.floor(this.rng.next() * (lr.height - side + 1));
    const aug = this.o.augment === false ? 0 : Math.floor(this.rng.next() * 8);
    const s = this.o.scale;
    return {
      lr: crop(lr, x0, y0, side, aug, this.o.inputRange),
      hr: hr ? crop(hr, x0 * s, y0 * s, side * s, aug, this.o.outputRange) : null,
      w: side,
      h: side,
    };
  }
}

/** side×side crop at (x0, y0) under dihedral transform `aug` (bit 0 hflip, 1 vflip, 2 transpose), mapped to `range`. */
function crop(img: ImageLike, x0: number, y0: number, side: number, aug: number, range: ValueRange): Float32Array {
  const C = img.channels ?? img.data.length / (img.width * img.height);
  const out = new Float32Array(side * side * 3);
  const [lo, hi] = range, k = (hi - lo) / 255;
  const hflip = aug & 1, vflip = aug & 2, transpose = aug & 4;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      let sx = transpose ? y : x, sy = transpose ? x : y;
      if (hflip) sx = side - 1 - sx;
      if (vflip) sy = side - 1 - sy;
      const src = ((y0 + sy) * img.width + x0 + sx) * C, d = (y * side + x) * 3;
      out[d] = lo + img.data[src] * k;
      out[d + 1] = lo + img.data[src + 1] * k;
      out[d + 2] = lo + img.data[src + 2] * k;
    }
  }
  return out;
}
