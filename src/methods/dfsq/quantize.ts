/**
 * `quantizeDfsq(graph, images, options)`: DFSQ post-training quantization
 * (dfsq.md). Calibration: 32 seeded random LR patches of (192/scale)² with
 * the EDSR flips (patches.ts), every quantized conv's input normalised per
 * patch and channel, one codebook of 2^b points of U per (input, channel) by
 * K-means with a fixed 0 and 5 restarts (calibrate.ts, codebook.ts). Weights:
 * per-output-channel asymmetric min-max (weights.ts). No fine-tuning.
 */
import type { Graph } from "../../graph/ir.ts";
import { optimizeGraph } from "../../graph/passes.ts";
import type { ImageLike } from "../../engine/image.ts";
import { LowbitError } from "../../runtime/errors.ts";
import { init, type Runtime } from "../../runtime/runtime.ts";
import { DYNAMIC_PATHS, type DynamicPath } from "../../graph/compile-dynamic.ts";
import { DynamicQuantizedModel, type DynamicLayer } from "../dynamic/model.ts";
import { selectLayers, type LayerScope } from "../scope.ts";
import { samplePatches } from "../patches.ts";
import { calibrateDfsq } from "./calibrate.ts";
import { actQuantizerFactory } from "../dynamic/factory.ts";
import { mseClipPerChannel, weightErrorSums } from "../dynamic/weight-tools.ts";
import { quantizeDfsqWeights } from "./weights.ts";

export interface DfsqOptions {
  weightBits: number;
  actBits: number;
  scope?: LayerScope;
  path?: DynamicPath;
  /** Calibration patches (default 32) and their LR side (default round(192 / scale)). */
  patches?: number;
  patchSize?: number;
  seed?: number;
  restarts?: number;
  bins?: number;
  /**
   * Codebook selection: "kmeans" (the reference, dfsq.md §4) or "optimal" — the exact minimum-SSE
   * subset of U containing 0, by dynamic programming over the sorted universe (codebook.ts
   * exhaustiveCodebook). The spec assumes exhaustive search is infeasible (C(377, 2^b)); in 1-D
   * it is a DP. Not the released method: an option, off by default.
   */
  selection?: "kmeans" | "optimal";
  /**
   * Weight range per output channel: "minmax" (the reference, dfsq.md §5) or "mse" (the range
   * shrunk per channel to the MSE-optimal α·[min, max], weight-tools.ts). lowbit option.
   */
  weightRange?: "minmax" | "mse";
  /** Per-image bias correction of the weight rounding (lowbit option, default false; weight-tools.ts). */
  biasCorrection?: boolean;
  runtime?: Runtime;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export async function quantizeDfsq(graph: Graph, images: readonly ImageLike[], o: DfsqOptions): Promise<DynamicQuantizedModel> {
  for (const [v, what] of [[o.weightBits, "weight"], [o.actBits, "activation"]] as const) {
    if (!Number.isInteger(v) || v < 2 || v > 8) throw new LowbitError("E_BITS", `DFSQ ${what} bits must be an integer in 2..8, got ${v}`);
  }
  const path = o.path ?? "lut";
  if (!DYNAMIC_PATHS.includes(path)) throw new LowbitError("E_ARGUMENT", `unknown path '${String(path)}' (${DYNAMIC_PATHS.join(" | ")})`);
  if (!images.length) throw new LowbitError("E_ARGUMENT", "DFSQ needs calibration images");
  const rt = o.runtime ?? (await init());
  const g = optimizeGraph(graph);
  const { ids, resolved } = selectLayers(g, "dfsq", o.scope ?? "reference");
  const seed = o.seed ?? 1;
  const patches = samplePatches(images, { count: o.patches ?? 32, size: o.patchSize ?? Math.round(192 / g.meta.scale), seed });
  const convs = g.nodes.filter((n) => n.op === "conv2d" && ids.has(n.id));
  const books = await calibrateDfsq(rt, g, convs.map((n) => n.inputs[0]), patches, {
    bits: o.actBits, restarts: o.restarts, bins: o.bins, seed, selection: o.selection, signal: o.signal, onProgress: o.onProgress,
  });
  const layers = new Map<number, DynamicLayer>();
  for (const n of convs) {
    if (n.op !== "conv2d") continue;
    const b = books.get(n.inputs[0])!;
    const act = { kind: "dfsq" as const, bits: o.actBits, postRelu: b.postRelu, codebooks: b.codebooks };
    const src = o.weightRange === "mse" ? mseClipPerChannel(n.weights, n.k, n.cin, n.cout, o.weightBits) : n.weights;
    const wq = quantizeDfsqWeights(src, n.k, n.cin, n.cout, o.weightBits);
    layers.set(n.id, {
      id: n.id, name: n.name, weightBits: o.weightBits, actBits: o.actBits,
      weights: wq.codes, wscale: wq.wscale, act, createQuantizer: actQuantizerFactory(act, n.cin),
      ...(o.biasCorrection ? { weightError: weightErrorSums(n.weights, wq.codes, wq.wscale, n.k, n.cin, n.cout) } : {}),
    });
  }
  if (o.selection !== undefined && o.selection !== "kmeans" && o.selection !== "optimal") throw new LowbitError("E_ARGUMENT", `DFSQ selection must be "kmeans" or "optimal", got '${String(o.selection)}'`);
  const options: Record<string, string | number> = { patches: patches.length, patchSize: patches[0].width, seed };
  if (o.selection === "optimal") options.selection = "optimal";
  if (o.weightRange !== undefined && o.weightRange !== "minmax" && o.weightRange !== "mse") throw new LowbitError("E_ARGUMENT", `DFSQ weightRange must be "minmax" or "mse", got '${String(o.weightRange)}'`);
  if (o.weightRange === "mse") options.weights = "mse";
  if (o.biasCorrection) options.bc = 1;
  return new DynamicQuantizedModel(g, layers, { method: "dfsq", weightBits: o.weightBits, actBits: o.actBits, scope: resolved, options }, path);
}
