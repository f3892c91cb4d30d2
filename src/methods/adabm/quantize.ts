/**
 * AdaBM models in the engine (adabm.md): per quantized conv an odd-grid weight quantizer with an
 * OMSE clip u_w (the grid is ODM's, src/methods/odm/grid.ts), an activation range [l, u] shared by
 * every bit-width, and a bit rule b = b_base + Δb_img + Δb_layer evaluated per tile.
 *
 * Layer roles (adabm.md §5, mapped onto the ISR RDN / RRDN graphs of the npm models):
 * - "reference" (the paper's default for RDN): the RDB convs (F_d_c) and both GFF convs are
 *   adaptive; LFF is quantized at b_base (it ignores Δb_img and has no Δb_layer); SFENet/UPNet FP32.
 *   RRDN (not in AdaBM's code) maps the same way: dense convs adaptive, its 3×3 LFF at b_base [choice].
 * - "full" (`--fq`): as reference, plus head, upsampler and tail at W8A8 (not counted in FAB).
 * - "body": every conv that is not head/tail/upsampler is adaptive (graphs without ISR names).
 *
 * `quantizeAdabm` is the calibration-only variant, labelled "AdaBM-calib" (adabm.md §6 scope):
 * epoch 0 + OMSE + BaC, no gradient steps. Fine-tuning lives in finetune.ts.
 */
import type { Graph, Node } from "../../graph/ir.ts";
import { optimizeGraph } from "../../graph/passes.ts";
import type { ImageLike } from "../../engine/image.ts";
import { LowbitError, check, checkInt } from "../../runtime/errors.ts";
import { init, type Runtime } from "../../runtime/runtime.ts";
import { DYNAMIC_PATHS, DynamicPlan, type DynamicPath } from "../../graph/compile-dynamic.ts";
import { DynamicQuantizedModel, type AdabmActSpec, type DynamicLayer } from "../dynamic/model.ts";
import { actQuantizerFactory } from "../dynamic/factory.ts";
import { isPostRelu, selectLayers, type LayerScope } from "../scope.ts";
import { layerRoles } from "../../quant/config.ts";
import { samplePatches } from "../patches.ts";
import { odmQuantizeWeights } from "../odm/grid.ts";
import { mergeSubpixelCodes } from "../odm/quantize.ts";
import { bitAwareClipping, calibrateAdabm, layerBitDeltas } from "./calibrate.ts";
import { checkAdabmSpec } from "./act-quantizer.ts";
import type { ImageBitThresholds } from "../../adaptive/context.ts";

export type AdabmRole = "adaptive" | "fixed" | "w8a8";

const DENSE = /^F_\d+_\d+(_\d+)?$/;
const LFF = /^LFF_\d+(_\d+)?$/;
const GFF = /^GFF_\d+$/;

/** Which convs AdaBM quantizes and how (see the file comment). */
export function adabmLayerRoles(g: Graph, scope: LayerScope = "reference"): { roles: Map<number, AdabmRole>; resolved: LayerScope } {
  const convs = g.nodes.filter((n): n is Extract<Node, { op: "conv2d" }> => n.op === "conv2d");
  const roles = new Map<number, AdabmRole>();
  if (scope !== "body" && convs.some((n) => DENSE.test(n.name))) {
    for (const n of convs) {
      if (DENSE.test(n.name) || GFF.test(n.name)) roles.set(n.id, "adaptive");
      else if (LFF.test(n.name)) roles.set(n.id, "fixed");
    }
    if (scope === "full") {
      const r = layerRoles(g);
      for (const n of convs) if (!roles.has(n.id) && r.get(n.id)!.size > 0) roles.set(n.id, "w8a8");
    }
    return { roles, resolved: scope };
  }
  const { ids } = selectLayers(g, "daq", "body");
  for (const id of ids) roles.set(id, "adaptive");
  if (scope === "full") {
    const r = layerRoles(g);
    for (const n of convs) if (!roles.has(n.id) && r.get(n.id)!.size > 0) roles.set(n.id, "w8a8");
    return { roles, resolved: "full" };
  }
  return { roles, resolved: "body" };
}

/**
 * OMSE weight clip (adabm.md §4, `omse`): start from u = max(W) — the signed max, as coded — and
 * keep the u·(1 − 0.01i), i = 0..candidates − 1, with the lowest MSE on the odd 2^w-level grid.
 * [choice] max(W) ≤ 0 (an all-negative tensor, §8) starts from max|W| instead; an all-zero tensor gets u = 0.
 */
export function omseWeightClip(w: Float32Array, bits: number, candidates = 50): number {
  let mx = -Infinity, ma = 0;
  for (let i = 0; i < w.length; i++) {
    check(Number.isFinite(w[i]), "E_RANGE", () => `weight ${i} = ${w[i]} is not finite`);
    mx = Math.max(mx, w[i]);
    ma = Math.max(ma, Math.abs(w[i]));
  }
  const u0 = mx > 0 ? mx : ma;
  if (!(u0 > 0)) return 0;
  const n = 2 ** bits - 1;
  let best = Infinity, bu = u0;
  for (let i = 0; i < candidates; i++) {
    const u = u0 * (1 - 0.01 * i);
    const s = (2 * u) / n;
    let e = 0;
    for (let j = 0; j < w.length; j++) {
      const c = Math.min(u, Math.max(-u, w[j]));
      const q = -u + Math.min(n, Math.floor((c + u) / s + 0.5)) * s;
      e += (w[j] - q) ** 2;
    }
    if (e < best) {
      best = e;
      bu = u;
    }
  }
  return bu;
}

/** AdaBM parameters of one quantized conv. */
export interface AdabmLayerParams {
  role: AdabmRole;
  lo: number;
  hi: number;
  /** Weight clip u_w (OMSE, then learned). */
  uw: number;
  /** Δb_layer ∈ {−1, 0, +1} (0 for fixed and 8-bit layers). */
  layerDelta: number;
}

export interface AdabmBuildOptions {
  weightBits: number;
  /** b_base. */
  actBits: number;
  scope: LayerScope;
  imageBits: ImageBitThresholds | null;
  path?: DynamicPath;
  options?: Record<string, string | number | boolean>;
}

/** The deployable model from per-layer parameters (`g` optimized; keys are conv ids). */
export function buildAdabmModel(g: Graph, params: ReadonlyMap<number, AdabmLayerParams>, o: AdabmBuildOptions): DynamicQuantizedModel {
  checkInt(o.weightBits, 2, 8, "AdaBM weight bits", "E_BITS");
  checkInt(o.actBits, 2, 8, "AdaBM base activation bits", "E_BITS");
  const path = o.path ?? "lut";
  if (!DYNAMIC_PATHS.includes(path)) throw new LowbitError("E_ARGUMENT", `unknown path '${String(path)}' (${DYNAMIC_PATHS.join(" | ")})`);
  if (o.imageBits) check(Number.isFinite(o.imageBits.lower) && Number.isFinite(o.imageBits.upper) && o.imageBits.upper >= o.imageBits.lower, "E_RANGE",
    `image thresholds [${o.imageBits.lower}, ${o.imageBits.upper}] are not finite with lower ≤ upper`);
  const layers = new Map<number, DynamicLayer>();
  for (const [id, p] of params) {
    const n = g.nodes[id];
    if (!n || n.op !== "conv2d") throw new LowbitError("E_ARGUMENT", `AdaBM parameters for node ${id}, which is not a conv`);
    const w8 = p.role === "w8a8";
    const wbits = w8 ? 8 : o.weightBits;
    const act: AdabmActSpec = {
      kind: "adabm", postRelu: isPostRelu(g, n.inputs[0]), lo: p.lo, hi: p.hi, baseBits: w8 ? 8 : o.actBits,
      layerDelta: p.role === "adaptive" ? p.layerDelta : 0, imageAdaptive: p.role === "adaptive", counted: !w8,
    };
    checkAdabmSpec(act);
    const sp = n.subpixelOf;
    const src = sp ? { w: sp.weights, k: sp.k, cout: n.cout / (sp.block * sp.block) } : { w: n.weights, k: n.k, cout: n.cout };
    const wq = odmQuantizeWeights(src.w, { k: src.k, cin: n.cin, cout: src.cout }, { bits: wbits, clip: p.uw });
    if (sp) wq.codes = mergeSubpixelCodes(wq.codes, sp.k, sp.block, n.cin, src.cout, n.k);
    layers.set(id, {
      id, name: n.name, weightBits: wbits, actBits: Math.min(8, act.baseBits + act.layerDelta + (act.imageAdaptive ? 1 : 0)), weights: wq.codes,
      wscale: new Float32Array(n.cout).fill(wq.wscale), act, createQuantizer: actQuantizerFactory(act, n.cin),
    });
  }
  return new DynamicQuantizedModel(g, layers, { method: "adabm", weightBits: o.weightBits, actBits: o.actBits, scope: o.scope, options: { ...(o.options ?? {}) } }, path, o.imageBits);
}

export interface AdabmOptions {
  weightBits: number;
  /** b_base (run.sh: 6 with W8, 4 with W4). */
  actBits: number;
  scope?: LayerScope;
  path?: DynamicPath;
  /** Calibration patches (default 100, adabm.md §6: 100 images, one patch each), LR side (default 48), seed. */
  patches?: number;
  patchSize?: number;
  seed?: number;
  /** Batch of the EMA updates (default 16). */
  batch?: number;
  /** Image-threshold percentile (default 10 → P10/P90) and layer percentile (default 30 → P30/P70). */
  imagePercentile?: number;
  layerPercentile?: number;
  /** Image-to-bit and layer-to-bit mapping (defaults on; off = the fixed-bit ablations). */
  imageAdaptive?: boolean;
  layerAdaptive?: boolean;
  /** Bit-aware clipping (default on). */
  bac?: boolean;
  runtime?: Runtime;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export interface AdabmResult {
  model: DynamicQuantizedModel;
  graph: Graph;
  params: Map<number, AdabmLayerParams>;
  imageBits: ImageBitThresholds | null;
  /** Per-layer s_l, by conv id. */
  layerStd: Map<number, number>;
  /** Wall time of calibration (ms). */
  ms: number;
}

/** AdaBM-calib: epoch-0 calibration, OMSE weights, Δb_layer, BaC (no fine-tuning). */
export async function adabmCalibrate(graph: Graph, images: readonly ImageLike[], o: AdabmOptions): Promise<AdabmResult> {
  const t0 = performance.now();
  checkInt(o.weightBits, 2, 8, "AdaBM weight bits", "E_BITS");
  checkInt(o.actBits, 2, 8, "AdaBM base activation bits", "E_BITS");
  const rt = o.runtime ?? (await init());
  const g = optimizeGraph(graph);
  const { roles, resolved } = adabmLayerRoles(g, o.scope ?? "reference");
  if (roles.size === 0) throw new LowbitError("E_ARGUMENT", `scope '${o.scope ?? "reference"}' selects no conv of this model`);
  const size = o.patchSize ?? 48, count = o.patches ?? 100, seed = o.seed ?? 1;
  const patches = samplePatches(images, { count, size, seed });
  const convIds = [...roles.keys()];
  const bac = o.bac !== false;
  const cal = await calibrateAdabm(rt, g, convIds.map((id) => g.nodes[id].inputs[0]), patches, {
    batch: o.batch, imagePercentile: o.imagePercentile, signal: o.signal, onProgress: (f) => o.onProgress?.(bac ? 0.9 * f : f),
  });
  const adaptiveIds = convIds.filter((id) => roles.get(id) === "adaptive");
  const deltas = o.layerAdaptive === false ? adaptiveIds.map(() => 0) : layerBitDeltas(adaptiveIds.map((id) => cal.tensors.get(g.nodes[id].inputs[0])!.std), o.layerPercentile ?? 30);
  const params = new Map<number, AdabmLayerParams>();
  const layerStd = new Map<number, number>();
  for (const id of convIds) {
    const n = g.nodes[id] as Extract<Node, { op: "conv2d" }>;
    const c = cal.tensors.get(n.inputs[0])!;
    const role = roles.get(id)!;
    const wsrc = n.subpixelOf ? n.subpixelOf.weights : n.weights;
    params.set(id, { role, lo: c.lo, hi: c.hi, uw: omseWeightClip(wsrc, role === "w8a8" ? 8 : o.weightBits), layerDelta: role === "adaptive" ? deltas[adaptiveIds.indexOf(id)] : 0 });
    layerStd.set(id, c.std);
  }
  const imageBits = o.imageAdaptive === false ? null : cal.imageBits;
  const options: Record<string, string | number | boolean> = { variant: "calib" };
  if (o.imageAdaptive === false) options.image = 0;
  if (o.layerAdaptive === false) options.layer = 0;
  const build = () => buildAdabmModel(g, params, { weightBits: o.weightBits, actBits: o.actBits, scope: resolved, imageBits, path: o.path, options: { ...options, ...(bac ? {} : { bac: 0 }) } });
  if (bac) {
    // Two further patches (the first quantized training batch), through the quantized network.
    const two = samplePatches(images, { count: 2, size, seed: seed + 7919 });
    const m = build();
    const plans = two.map((p) => new DynamicPlan(rt, m, p.width, p.height));
    try {
      const targets = new Set(convIds.filter((id) => roles.get(id) !== "w8a8"));
      const ranges = bitAwareClipping(rt, plans, two, g, targets);
      for (const [id, [lo, hi]] of ranges) {
        const p = params.get(id)!;
        p.lo = lo;
        p.hi = hi;
      }
    } finally {
      for (const p of plans) p.dispose();
    }
    o.onProgress?.(1);
  }
  return { model: build(), graph: g, params, imageBits, layerStd, ms: performance.now() - t0 };
}

/** `adabmCalibrate(…).model`. */
export async function quantizeAdabm(graph: Graph, images: readonly ImageLike[], o: AdabmOptions): Promise<DynamicQuantizedModel> {
  return (await adabmCalibrate(graph, images, o)).model;
}
