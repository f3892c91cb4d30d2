/**
 * The user-facing engine: a model (graph, short name, path or URL) plus a
 * runtime, compiled to a plan on first use and driven tile by tile.
 *
 *   const up = await createUpscaler("esrgan-slim-x4");
 *   const out = await up.upscale({ data, width, height }, { onProgress, signal });
 *
 * One plan is kept, sized for the largest tile region seen so far; a larger
 * region recompiles it (weights are re-packed: a few ms to ~0.5 s for thick).
 */
import type { Graph } from "../graph/ir.ts";
import { F32Plan } from "../graph/compile-f32.ts";
import { optimizeGraph } from "../graph/passes.ts";
import { planMemory } from "../graph/memory-plan.ts";
import { LowbitError, throwIfAborted } from "../runtime/errors.ts";
import { DEFAULT_MAX_PIXELS, DEFAULT_MEMORY_BUDGET, limitOption } from "../runtime/limits.ts";
import { init, type Runtime } from "../runtime/runtime.ts";
import { loadModel, type LoadModelOptions } from "../models/registry.ts";
import type { TfjsModelBuffers } from "../io/tfjs/index.ts";
import { imresize } from "../metrics/bicubic.ts";
import { upscaleTiled, type ExecutablePlan, type UpscaleOptions, type UpscaledImage } from "./upscaler.ts";
import type { ImageLike, RgbImage } from "./image.ts";

/** Something the engine can compile: FP32 graphs and quantized models. */
export interface CompilableModel {
  readonly graph: Graph;
  /** Short description for logs/JSON, e.g. "fp32" or "w8a8 minmax". */
  readonly config: string;
  compile(rt: Runtime, maxW: number, maxH: number): ExecutablePlan & { dispose(): void };
  /** Arena bytes of activations per LR pixel of a tile (for choosing tile sizes by memory). */
  bytesPerPixel?(): number;
  /** A tile the model's method prescribes when the caller sets none (adaptive bits: the bit-decision unit). */
  readonly defaultTile?: number;
}

/** The full-precision model: the graph as imported. */
export function fp32Model(graph: Graph): CompilableModel {
  let bpp = 0;
  return {
    graph,
    config: "fp32",
    compile: (rt, w, h) => new F32Plan(rt, graph, w, h),
    bytesPerPixel: () => (bpp ||= activationBytesPerPixel(optimizeGraph(graph), () => 4)),
  };
}

/** Tensor-arena bytes per LR pixel from the memory planner (a 32×32 plan, exact up to alignment). */
export function activationBytesPerPixel(g: Graph, elemBytes: (id: number) => number): number {
  const n = 32;
  return planMemory(g, { tileW: n, tileH: n, elemBytes, pinned: new Set([g.input, g.output]) }).totalBytes / (n * n);
}

/** Default activation-memory budget of a plan: tiles are as large as this allows. */
export { DEFAULT_MEMORY_BUDGET };

/**
 * The largest tile core whose region (tile + 2·margin)² fits `budget` bytes of activations,
 * between 32 and 2048 LR pixels. Large tiles waste less work on overlap (the margin is
 * recomputed by every tile) and speed per pixel does not depend on tile size otherwise.
 */
export function tileForBudget(bytesPerPixel: number, margin: number, budget = DEFAULT_MEMORY_BUDGET): number {
  const side = Math.floor(Math.sqrt(budget / Math.max(bytesPerPixel, 1)));
  return Math.max(32, Math.min(2048, side - 2 * margin));
}

export interface UpscalerOptions {
  /**
   * LR tile core size. Default: the largest tile whose activations fit `memoryBudget`
   * (tileForBudget). Memory grows with (tile + 2·margin)².
   */
  tile?: number;
  /** Activation memory a plan may use when the tile size is chosen automatically (default 512 MiB). */
  memoryBudget?: number;
  /** Overlap in LR pixels (default: exact margin ⌈receptive radius⌉ for rdn models, 16 for rrdn). */
  margin?: number;
  /** Runtime to run on (default: the process default from `init()`). */
  runtime?: Runtime;
  /** Largest accepted input image, pixels (default 2^26 = 64 MPix); larger → E_MEMORY. */
  maxPixels?: number;
  /** Model loading options when `model` is a name/path/URL. */
  load?: LoadModelOptions;
}

export interface RunOptions extends UpscaleOptions {
  tile?: number;
  margin?: number;
}

/**
 * Default overlap: exact for rdn (≤ 38 px), a measured practical margin for rrdn (radius 153). Models
 * with global context (SE blocks: no margin is exact) get their border pad, i.e. the ncnn front-ends'
 * own tiling (each tile = core + prepadding), so tiled output equals theirs tile for tile.
 */
export function defaultMargin(g: Graph): number {
  if (g.meta.globalContext && g.meta.borderPad !== undefined) return g.meta.borderPad;
  const r = g.meta.receptiveRadius;
  if (r === undefined) return 16;
  return r <= 40 ? Math.ceil(r) : 16;
}

export class Upscaler {
  readonly model: CompilableModel;
  readonly rt: Runtime;
  readonly tile: number;
  readonly margin: number;
  private readonly maxPixels: number;
  private plan: (ExecutablePlan & { dispose(): void }) | null = null;
  private busy = false;

  constructor(model: CompilableModel, rt: Runtime, o: UpscalerOptions = {}) {
    this.model = model;
    this.rt = rt;
    this.margin = o.margin ?? defaultMargin(model.graph);
    const budget = limitOption(o.memoryBudget, DEFAULT_MEMORY_BUDGET, "memoryBudget");
    this.maxPixels = limitOption(o.maxPixels, DEFAULT_MAX_PIXELS, "maxPixels");
    const bpp = model.bytesPerPixel?.();
    this.tile = o.tile ?? model.defaultTile ?? (bpp ? tileForBudget(bpp, this.margin, budget) : 128);
  }

  get scale(): number {
    return this.model.graph.meta.scale;
  }

  /** A plan holding at least maxW×maxH (reuses the current one when it fits). */
  planFor(maxW: number, maxH: number): ExecutablePlan {
    const p = this.plan;
    if (p && p.maxW >= maxW && p.maxH >= maxH) return p;
    const w = Math.max(maxW, p?.maxW ?? 0);
    const h = Math.max(maxH, p?.maxH ?? 0);
    p?.dispose();
    this.plan = null;
    // A compile that fails half-way (E_MEMORY for a tile too large for maxMemoryBytes) must not
    // leave its packed weights behind in the arena: the upscaler stays usable with smaller tiles.
    this.plan = this.rt.arena.atomic(() => this.model.compile(this.rt, w, h));
    return this.plan;
  }

  /** Upscales an 8-bit RGB/RGBA image (alpha is upscaled separately with bicubic). */
  async upscale(img: ImageLike, o: RunOptions = {}): Promise<UpscaledImage> {
    if (this.rt.isDisposed) throw new LowbitError("E_NOT_INITIALIZED", "upscaler was disposed");
    if (this.busy) throw new LowbitError("E_ARGUMENT", "this upscaler is already running; await the previous call or create another");
    throwIfAborted(o.signal);
    this.busy = true;
    try {
      const m = this.model.graph.meta;
      return await upscaleTiled((w, h) => this.planFor(w, h), img, {
        tile: o.tile ?? this.tile,
        margin: o.margin ?? this.margin,
        inputRange: m.inputRange,
        outputRange: m.outputRange,
        maxPixels: this.maxPixels,
        borderPad: m.borderPad,
        tileAlign: m.tileAlign,
        upscaleAlpha: (a, w, h, s) => imresize({ data: a, width: w, height: h, channels: 1 }, { scale: s }).data as Uint8Array,
      }, o);
    } finally {
      this.busy = false;
    }
  }

  /**
   * Runs the network once on a float NHWC RGB input already in the model's
   * input range (no tiling, no clipping): the raw output, for parity tests and
   * research use.
   */
  runFloat(input: Float32Array, w: number, h: number): Float32Array {
    if (input.length !== w * h * 3) throw new LowbitError("E_SHAPE", `input has ${input.length} values, expected ${w}×${h}×3`);
    const p = this.planFor(w, h);
    p.inputView(w, h).set(input);
    p.runSteps(w, h, 0, p.stepCount);
    return p.outputView(w, h).slice();
  }

  dispose(): void {
    this.plan?.dispose();
    this.plan = null;
  }
}

/**
 * Creates an upscaler. `model` is a CompilableModel, a Graph (run in FP32), a
 * short name (`esrgan-slim-x4`, see listModels()), a model.json path/URL, or
 * in-memory TF.js buffers.
 */
export async function createUpscaler(
  model: CompilableModel | Graph | string | URL | TfjsModelBuffers,
  o: UpscalerOptions = {},
): Promise<Upscaler> {
  const rt = o.runtime ?? (await init());
  let m: CompilableModel;
  if (isCompilable(model)) m = model;
  else if (isGraph(model)) m = fp32Model(model);
  else m = fp32Model(await loadModel(model, o.load));
  return new Upscaler(m, rt, o);
}

function isCompilable(x: unknown): x is CompilableModel {
  return typeof x === "object" && x !== null && typeof (x as CompilableModel).compile === "function" && "graph" in x;
}

function isGraph(x: unknown): x is Graph {
  return typeof x === "object" && x !== null && Array.isArray((x as Graph).nodes) && "meta" in x;
}
