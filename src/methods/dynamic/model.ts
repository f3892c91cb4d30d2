/**
 * A model quantized by a dynamic (per-image statistics) method — DAQ or DFSQ:
 * integer weights per quantized conv, an activation quantizer per conv input,
 * everything else FP32. Compiles to a DynamicPlan (src/graph/compile-dynamic.ts).
 *
 * Statistics are per image, so results depend on the tile: the engine runs
 * the whole image as one tile when it fits the memory budget (the eval set
 * always does); otherwise the tile used is part of the configuration
 * (`tileNote`), as daq.md §6 / dfsq.md §7.4 ask.
 */
import type { Graph } from "../../graph/ir.ts";
import { DynamicPlan, type DynamicConvSpec, type DynamicPath, type DynamicPlanSource } from "../../graph/compile-dynamic.ts";
import { activationBytesPerPixel, type CompilableModel } from "../../engine/upscaler-api.ts";
import type { Runtime } from "../../runtime/runtime.ts";
import type { LayerScope } from "../scope.ts";
import type { ImageBitThresholds } from "../../adaptive/context.ts";

/** What defines a layer's activation quantizer (serializable: saved in .lowbit files). */
export type DynamicActSpec =
  | { kind: "daq"; postRelu: boolean; bits: number | Int32Array; stepTable: "code" | "mse"; qq: number; mode: "int" | "reference"; /** Per-channel branch (DaqOptions.branch "channel"). */ reluMask?: Uint8Array; /** Calibrated κ_c (DaqOptions.calibrateStep). */ stepScale?: Float32Array }
  | { kind: "dfsq"; postRelu: boolean; bits: number; /** [C][2^b] codebook points, 1/1024 units. */ codebooks: Int16Array }
  | OdmActSpec
  | AdabmActSpec
  | CadyqActSpec;

/**
 * CADyQ's activation quantizer (src/methods/cadyq/act-quantizer.ts): a bit selector per layer,
 * b = candidates[argmax(selectorWeight·[g_x, g_y, σ_0 … σ_{C−1}] + selectorBias)] per tile, and a
 * symmetric PAMS grid per candidate (2^b − 1 levels on [−|α_k|, |α_k|]).
 */
export interface CadyqActSpec {
  kind: "cadyq";
  /** The input comes straight out of a ReLU (recorded; the grid stays symmetric as in the reference). */
  postRelu: boolean;
  /** Candidate activation bits (K values in 2..8, distinct). */
  candidates: Int32Array;
  /** PAMS clip α per candidate (K). */
  alpha: Float32Array;
  /** A: K × (C + 2), row-major; row k weighs [g_x, g_y, σ_0 … σ_{C−1}]. */
  selectorWeight: Float32Array;
  /** a: K. */
  selectorBias: Float32Array;
}

/**
 * AdaBM's activation quantizer (src/methods/adabm/act-quantizer.ts): one range [lo, hi] for every
 * bit-width; b = clamp(baseBits + Δb_img + layerDelta, 2, 8) per tile.
 */
export interface AdabmActSpec {
  kind: "adabm";
  postRelu: boolean;
  lo: number;
  hi: number;
  baseBits: number;
  /** Δb_layer ∈ {−1, 0, +1}. */
  layerDelta: number;
  /** false: the layer ignores Δb_img (fixed at baseBits + layerDelta; RDN's LFF, adabm.md §5). */
  imageAdaptive: boolean;
  /** false: a fixed 8-bit layer (`--fq` head/tail/upsampler) that FAB does not count (default true). */
  counted?: boolean;
}

/**
 * ODM's static activation quantizer (src/methods/odm/act-quantizer.ts): 2^b levels on [lo, hi],
 * with optional per-channel offsets (x̂ = (q(x·a_c + b_c) − b_c)/a_c). `scaleFolded`: the scales
 * a_c were folded into the conv's input-channel weights (the stored weights are Q(W/a)), so the
 * dequantized level is q(·) − b_c.
 */
export interface OdmActSpec {
  kind: "odm";
  postRelu: boolean;
  bits: number;
  lo: number;
  hi: number;
  /** Per-channel shift b_c (absent: 0). */
  shift?: Float32Array;
  /** Per-channel scale a_c > 0 (absent: 1). */
  scale?: Float32Array;
  scaleFolded?: boolean;
}

export interface DynamicLayer extends DynamicConvSpec {
  id: number;
  name: string;
  weightBits: number;
  /** Activation bits (the largest, when channels differ). */
  actBits: number;
  act: DynamicActSpec;
}

export interface DynamicModelInfo {
  method: "daq" | "dfsq" | "odm" | "adabm" | "cadyq";
  weightBits: number;
  actBits: number;
  scope: LayerScope;
  /** Method options as reported in configs and saved in files. */
  options: Record<string, string | number | boolean>;
}

export class DynamicQuantizedModel implements CompilableModel, DynamicPlanSource {
  readonly graph: Graph;
  readonly layers: ReadonlyMap<number, DynamicLayer>;
  readonly info: DynamicModelInfo;
  /** Which integer path the plans use (see DynamicPath). */
  path: DynamicPath;
  /** Dynamic statistics are per image: prefer one tile per image (static quantizers — ODM — tile freely). */
  readonly wholeImage: boolean;
  /** AdaBM: image-to-bit thresholds on the tile's gradient feature. */
  readonly imageBits: ImageBitThresholds | null;
  /**
   * Adaptive-bit models decide bits per tile: 96×96 LR cores by default, the patch size of both
   * references' evaluations (adabm.md §2, cadyq.md §6), unless the caller sets a tile.
   */
  get defaultTile(): number | undefined {
    return this.info.method === "adabm" || this.info.method === "cadyq" ? 96 : undefined;
  }

  constructor(graph: Graph, layers: Map<number, DynamicLayer>, info: DynamicModelInfo, path: DynamicPath = "lut", imageBits: ImageBitThresholds | null = null) {
    this.graph = graph;
    this.layers = layers;
    this.info = info;
    this.path = path;
    // Adaptive models pick bits per tile: they tile like static ones (the tile is the bit unit).
    this.wholeImage = info.method === "daq" || info.method === "dfsq";
    this.imageBits = imageBits;
  }

  get config(): string {
    const opts = Object.entries(this.info.options).map(([k, v]) => `${k}=${v}`).join(" ");
    return `w${this.info.weightBits}a${this.info.actBits} ${this.info.method} scope=${this.info.scope}${opts ? " " + opts : ""} path=${this.path}`;
  }

  compile(rt: Runtime, maxW: number, maxH: number): DynamicPlan {
    return new DynamicPlan(rt, this, maxW, maxH);
  }

  /** Activation bytes per LR pixel: the f32 tensors plus the largest layer's codes. */
  bytesPerPixel(): number {
    if (!this.bpp) {
      let codes = 0;
      for (const n of this.graph.nodes) if (n.op === "conv2d" && this.layers.has(n.id)) codes = Math.max(codes, n.cin * n.spatial * n.spatial * (this.path === "lut" ? 1 : this.path === "exact" ? 3 : 4));
      this.bpp = activationBytesPerPixel(this.graph, () => 4) + codes;
    }
    return this.bpp;
  }
  private bpp = 0;

  /** Stored size: integer weights at their bit-width, scales, biases, FP32 layers, codebooks. */
  get weightBytes(): number {
    let b = 0;
    for (const n of this.graph.nodes) {
      if (n.op !== "conv2d") continue;
      const l = this.layers.get(n.id);
      // An FP32 sub-pixel tail is stored as its original HR kernel (subpixelOf), not the merged one.
      b += l ? Math.ceil((l.weights.length * l.weightBits) / 8) + 4 * l.wscale.length + 4 * n.cout : 4 * ((n.subpixelOf?.weights.length ?? n.weights.length) + (n.subpixelOf ? n.subpixelOf.weights.length / (n.k * n.k * n.cin) : n.cout));
    }
    return b;
  }
}
