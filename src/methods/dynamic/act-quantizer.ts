/**
 * The seam between a distribution-aware activation quantizer (DAQ, DFSQ) and
 * the engine (src/graph/compile-dynamic.ts).
 *
 * Both methods quantize each input channel of a conv with parameters computed
 * from that channel's statistics over the whole image, at inference. The
 * engine runs one statistics pass, asks the quantizer for the per-image
 * parameters (C numbers, TypeScript), maps x → b-bit codes in WASM, and feeds
 * the codes to an integer conv through a per-image table:
 *
 *   x̂[p, c] = level_c(code[p, c])                       (real value of a code)
 *           = a_c · g_c(code) + μ_c                      (its integer form)
 *
 * with g_c an image-independent integer table (DAQ: odd midrise codes or k;
 * DFSQ: the 12-bit codebook ints) and a_c, μ_c per image.
 */

import type { AdaptiveContext } from "../../adaptive/context.ts";

/** Per-channel statistics of one tensor over the image (planar views, f32). */
export interface ChannelStatsView {
  pixels: number;
  min: Float32Array;
  max: Float32Array;
  mean: Float32Array;
  /** Population std (divide by HW). */
  std: Float32Array;
  maxAbsDev: Float32Array;
  /** #(x > 0) per channel, when the quantizer asked for it. */
  countPositive: Float32Array | null;
}

export interface DynamicActQuantizer {
  readonly method: "daq" | "dfsq" | "odm" | "adabm" | "cadyq";
  /**
   * Image-independent parameters (ODM): the plan calls prepare once at compile time (with empty
   * statistics) and runs no statistics pass.
   */
  readonly isStatic?: boolean;
  /**
   * Whether prepare() reads the per-channel statistics (default: every non-static quantizer).
   * AdaBM's grid depends on the image only through the gradient feature: no statistics pass.
   */
  readonly needsStats?: boolean;
  /**
   * Adaptive bit-width (AdaBM, CADyQ): the plan binds its AdaptiveContext (the tile's gradient
   * feature and image-level bit offset, set before any layer runs) and reads the bits each tile used.
   */
  bind?(ctx: AdaptiveContext): void;
  /** Activation bits of the last prepare() (adaptive quantizers; else the fixed width). */
  activeBits?(): number;
  /** Whether this layer counts for FAB (adabm.md §5: the quantized layers that are not fixed 8-bit). */
  readonly countsForFab?: boolean;
  readonly channels: number;
  /** Row length of the per-channel tables: the largest number of codes of any channel. */
  readonly levels: number;
  /** The conv input comes straight out of a ReLU. */
  readonly postRelu: boolean;
  readonly needsCountPositive: boolean;
  /** Which WASM code kernel maps x → codes (see src/kernels/act-codes.ts). */
  readonly codeKernel: "daq" | "subset";
  /** DAQ code kernel: 2^(b_c − 1) and 2^(b_c) − 1 per channel. */
  readonly half?: Int32Array;
  readonly kmax?: Int32Array;
  /** Subset code kernel: per-channel count tables (C × countTableStride bytes). */
  readonly countTable?: Uint8Array;
  readonly countTableStride?: number;
  /** Per image: fills the code kernel's μ_c and 1/scale_c, and the levels. */
  prepare(stats: ChannelStatsView, mu: Float32Array, inv: Float32Array): void;
  /** After prepare: real value of code k of channel c. */
  level(c: number, k: number): number;
  /** Integer form: g_c(k) (image independent, |g| ≤ 32767). */
  intLevel(c: number, k: number): number;
  /** After prepare: a_c and μ_c of the integer form (level = a_c·g_c(k) + μ_c). */
  intAffine(a: Float32Array, mu: Float32Array): void;
  /**
   * The method's own f64 quantizer applied to a whole tensor (the oracle path): x̂ of the
   * tensor at data[offset + p·stride + c], written densely to out[p·C + c].
   */
  reference(out: Float32Array, data: Float32Array, offset: number, stride: number, pixels: number): void;
  /** A short description for config strings. */
  describe(): string;
}
