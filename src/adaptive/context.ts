/**
 * The run-time seam of adaptive bit-widths (DESIGN "bit policy"): per tile, the plan computes the
 * input's gradient feature once (gradient-feature.ts), derives the image-level bit offset, and
 * every adaptive activation quantizer reads both when it sets its bits for the tile. Weights never
 * change: only the activation grid (step, code range, LUT) is rebuilt, C × 2^b numbers per layer.
 *
 * After a tile ran, the plan reports what it used (TileBits): the bits of every quantized layer,
 * the feature, and BitOPs — the caller (the tile loop) turns them into a bit map.
 */

/** Image-to-bit mapping of AdaBM (adabm.md §2): Δb = −1 below `lower`, +1 above `upper`, else 0 (inclusive band). */
export interface ImageBitThresholds {
  lower: number;
  upper: number;
}

/** Δb_img for the scalar g (adabm.md §2: the middle band is inclusive). */
export function imageBitDelta(g: number, t: ImageBitThresholds): number {
  return g < t.lower ? -1 : g > t.upper ? 1 : 0;
}

/** Shared by the plan and its adaptive quantizers; rewritten at the start of every tile. */
export interface AdaptiveContext {
  /** 1000·[mean|∂x|, mean|∂y|] of the tile (its core when the caller set one). */
  readonly feature: Float64Array;
  /** ½(g_x + g_y), AdaBM's scalar. */
  g: number;
  /** Δb_img of the tile (0 without image thresholds). */
  imageDelta: number;
}

export function createAdaptiveContext(): AdaptiveContext {
  return { feature: new Float64Array(2), g: 0, imageDelta: 0 };
}

/** What one tile ran with (ExecutablePlan.tileBits). */
export interface TileBits {
  /** Activation bits per quantized layer, in plan order (`BitMap.layers`). */
  bits: Uint8Array;
  /** Weight bits per quantized layer. */
  weightBits: Uint8Array;
  /** Mean activation bits over the layers that count for FAB (adabm.md §5, cadyq.md §4). */
  fab: number;
  /** BitOPs per LR pixel: Σ_layers MACs·b_w·b_a (FP32 layers 32·32). */
  bitopsPerPixel: number;
  /** The same for the FP32 model (Σ MACs·32·32). */
  fp32BitopsPerPixel: number;
  /** g = 1000·[mean|∂x|, mean|∂y|] of the tile. */
  feature: [number, number];
  imageDelta: number;
}

/** One tile of a bit map: its core in LR pixels and what it ran with. */
export interface BitMapTile extends TileBits {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The bits an adaptive model used on one image (returned by the upscaler, rendered by the CLI). */
export interface BitMap {
  /** Quantized layer names, in the order of TileBits.bits. */
  layers: string[];
  /** Which layers count for FAB. */
  counted: boolean[];
  tiles: BitMapTile[];
  /** FAB averaged over tiles (adabm.md §5: over patches, then images). */
  fab: number;
  /** BitOPs of the whole image and of the FP32 model on it. */
  bitops: number;
  fp32Bitops: number;
}

/** Assembles the per-tile reports of one image. */
export function bitMapOf(layers: string[], counted: boolean[], tiles: BitMapTile[]): BitMap {
  let fab = 0, bitops = 0, fp = 0;
  for (const t of tiles) {
    fab += t.fab;
    bitops += t.bitopsPerPixel * t.w * t.h;
    fp += t.fp32BitopsPerPixel * t.w * t.h;
  }
  return { layers, counted, tiles, fab: tiles.length ? fab / tiles.length : NaN, bitops, fp32Bitops: fp };
}
