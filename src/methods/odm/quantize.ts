/**
 * ODM models in the engine: `buildOdmModel` turns per-layer ODM parameters (activation range
 * [l, u], WCC γ_w, channel offsets) and the graph's float weights into a deployable
 * DynamicQuantizedModel with static quantizers (act-quantizer.ts), which `.lowbit` files store
 * and `lowbit eval` runs. `odmInitPtq` is the calibration-only variant (odm.md §4 "Scope"): P1/P99
 * activation ranges averaged over calibration patches, u_w = P99(|W|), γ_w = 1 — ODM's
 * initialisation, labelled "ODM-init PTQ" (the config says `variant=init-ptq`), never "ODM".
 *
 * Layer set (odm.md §2 "Which layers" [unverified]): the baselines quantize the body only, so the
 * default scope is "body" (head, tail and upsampler FP32); "full" and "reference" (DAQ's layer
 * set, the RDB convs of the ISR models) are options.
 */
import type { Graph } from "../../graph/ir.ts";
import { optimizeGraph, subpixelMerge } from "../../graph/passes.ts";
import type { ImageLike } from "../../engine/image.ts";
import { LowbitError } from "../../runtime/errors.ts";
import { init, type Runtime } from "../../runtime/runtime.ts";
import { DYNAMIC_PATHS, type DynamicPath } from "../../graph/compile-dynamic.ts";
import { DynamicQuantizedModel, type DynamicLayer, type OdmActSpec } from "../dynamic/model.ts";
import { actQuantizerFactory } from "../dynamic/factory.ts";
import { isPostRelu, selectLayers, type LayerScope } from "../scope.ts";
import { samplePatches } from "../patches.ts";
import { checkOdmBits, odmActGrid, odmQuantizeWeights } from "./grid.ts";
import { calibrateOdm, type OdmTensorCalibration } from "./calibrate.ts";
import { ChannelOffsets, channelMismatch, type ChannelMismatch, type OffsetKind } from "./offsets.ts";

/** ODM parameters of one quantized conv. */
export interface OdmLayerParams {
  /** Activation range of the conv input (of x·a + b when offsets are set). */
  lo: number;
  hi: number;
  /** WCC γ_w (1 = ODM-init). */
  gamma: number;
  offsets?: ChannelOffsets;
}

export interface OdmBuildOptions {
  weightBits: number;
  actBits: number;
  scope: LayerScope;
  /** TFLite-style nudging of l_a so that 0 is a level (default false: not faithful, odm.md §4). */
  nudge?: boolean;
  /** Fold the channel scales into the conv's input-channel weights before weight quantization (default true). */
  fold?: boolean;
  /** Percentile of |W| for u_w (default 99). */
  weightPercentile?: number;
  path?: DynamicPath;
  /** Reported in the config and saved (e.g. variant=init-ptq | finetuned). */
  options?: Record<string, string | number | boolean>;
}

/**
 * Builds the deployable model. `g` is an optimized graph whose conv weights are the (possibly
 * fine-tuned) float weights; `params` keys are conv node ids.
 */
export function buildOdmModel(g: Graph, params: ReadonlyMap<number, OdmLayerParams>, o: OdmBuildOptions): DynamicQuantizedModel {
  checkOdmBits(o.weightBits, "weight");
  checkOdmBits(o.actBits, "activation");
  const path = o.path ?? "lut";
  if (!DYNAMIC_PATHS.includes(path)) throw new LowbitError("E_ARGUMENT", `unknown path '${String(path)}' (${DYNAMIC_PATHS.join(" | ")})`);
  const fold = o.fold ?? true;
  const layers = new Map<number, DynamicLayer>();
  for (const [id, p] of params) {
    const n = g.nodes[id];
    if (!n || n.op !== "conv2d") throw new LowbitError("E_ARGUMENT", `ODM parameters for node ${id}, which is not a conv`);
    const x = n.inputs[0];
    const grid = odmActGrid(p.lo, p.hi, o.actBits, { nudge: o.nudge });
    const off = p.offsets;
    if (off && off.channels !== n.cin) throw new LowbitError("E_SHAPE", `layer '${n.name}': offsets cover ${off.channels} channels, the conv reads ${n.cin}`);
    // A sub-pixel tail (passes.ts subpixelTail) is quantized as the model's own HR kernel and its
    // integer codes merged (sums of odd codes, exact in int16), so the grid is the trained one.
    const sp = n.subpixelOf;
    const src = sp ? { w: sp.weights, k: sp.k, cout: n.cout / (sp.block * sp.block) } : { w: n.weights, k: n.k, cout: n.cout };
    let w = src.w;
    if (off && fold) {
      // W' = W/a_c per input channel, before weight quantization (odm.md §3).
      w = new Float32Array(src.w.length);
      for (let i = 0; i < w.length; i++) w[i] = src.w[i] / off.scale[Math.floor(i / src.cout) % n.cin];
    }
    const wq = odmQuantizeWeights(w, { k: src.k, cin: n.cin, cout: src.cout }, { bits: o.weightBits, gamma: p.gamma, percentile: o.weightPercentile });
    if (sp) wq.codes = mergeSubpixelCodes(wq.codes, sp.k, sp.block, n.cin, src.cout, n.k);
    const act: OdmActSpec = {
      kind: "odm", postRelu: isPostRelu(g, x), bits: o.actBits, lo: grid.lo, hi: grid.hi,
      ...(off ? { shift: Float32Array.from(off.shift), scale: Float32Array.from(off.scale), scaleFolded: fold } : {}),
    };
    layers.set(id, {
      id, name: n.name, weightBits: o.weightBits, actBits: o.actBits, weights: wq.codes, wscale: new Float32Array(n.cout).fill(wq.wscale),
      act, createQuantizer: actQuantizerFactory(act, n.cin),
    });
  }
  const options: Record<string, string | number | boolean> = { ...(o.options ?? {}) };
  if (o.nudge) options.nudge = 1;
  if ([...params.values()].some((p) => p.offsets)) options.fold = fold ? 1 : 0;
  return new DynamicQuantizedModel(g, layers, { method: "odm", weightBits: o.weightBits, actBits: o.actBits, scope: o.scope, options }, path);
}

/** OHWI codes of a k×k kernel → OHWI codes of its k2×k2 sub-pixel kernel (block s). */
export function mergeSubpixelCodes(codes: Int16Array, k: number, s: number, cin: number, cout: number, k2: number): Int16Array {
  const hwio = new Int16Array(codes.length);
  for (let o = 0; o < cout; o++) for (let t = 0; t < k * k; t++) for (let c = 0; c < cin; c++) hwio[(t * cin + c) * cout + o] = codes[(o * k * k + t) * cin + c];
  const cout2 = s * s * cout;
  const merged = subpixelMerge(new Int16Array(k2 * k2 * cin * cout2), hwio, k, s, cin, cout);
  const out = new Int16Array(merged.length);
  for (let t = 0; t < k2 * k2; t++) for (let c = 0; c < cin; c++) for (let o = 0; o < cout2; o++) out[(o * k2 * k2 + t) * cin + c] = merged[(t * cin + c) * cout2 + o];
  return out;
}

export interface OdmInitOptions {
  weightBits: number;
  actBits: number;
  scope?: LayerScope;
  path?: DynamicPath;
  /** Calibration patches: count (default 32), LR side (default 48), seed (default 1). */
  patches?: number;
  patchSize?: number;
  seed?: number;
  /** Activation percentiles in percent (defaults 1, 99). */
  low?: number;
  high?: number;
  weightPercentile?: number;
  nudge?: boolean;
  /**
   * v1 channel offsets at initialisation: the fraction (0..1] of quantized input tensors with the
   * largest channel mismatch that get offsets (default 0: none). Offsets are normally learned in
   * fine-tuning; this is their statistics-based initial value, measurable without training.
   */
  offsets?: number;
  offsetKind?: OffsetKind;
  fold?: boolean;
  /** Measure the quantizers' relative error before/after offsets (one or two extra FP32 passes). */
  report?: boolean;
  runtime?: Runtime;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

/** One row of the mismatch report: a quantized conv's input tensor. */
export interface OdmLayerReport {
  conv: string;
  tensor: number;
  lo: number;
  hi: number;
  offsets: boolean;
  before: ChannelMismatch;
  after: ChannelMismatch;
  /** Σ(x − x̂)²/Σx² of the activation quantizer without / with the offsets (NaN unless `report`). */
  relErrorBefore: number;
  relErrorAfter: number;
}

export interface OdmInitResult {
  model: DynamicQuantizedModel;
  /** The optimized graph the model runs (node ids index `params`). */
  graph: Graph;
  params: Map<number, OdmLayerParams>;
  report: OdmLayerReport[];
  calibration: Map<number, OdmTensorCalibration>;
}

/** Selects tensors by channel mismatch (channelMean + channelStd), largest first. */
export function selectOffsetTensors(calib: ReadonlyMap<number, OdmTensorCalibration>, fraction: number): number[] {
  if (!(fraction >= 0 && fraction <= 1)) throw new LowbitError("E_ARGUMENT", `offset layer fraction must be in [0, 1], got ${fraction}`);
  const scored = [...calib.values()].map((c) => {
    const m = channelMismatch(c.stats);
    return { id: c.tensor, s: m.channelMean + m.channelStd };
  });
  scored.sort((a, b) => b.s - a.s || a.id - b.id);
  return scored.slice(0, Math.ceil(fraction * scored.length)).map((x) => x.id);
}

export async function odmInitPtq(graph: Graph, images: readonly ImageLike[], o: OdmInitOptions): Promise<OdmInitResult> {
  checkOdmBits(o.weightBits, "weight");
  checkOdmBits(o.actBits, "activation");
  const scope = o.scope ?? "body";
  const rt = o.runtime ?? (await init());
  const g = optimizeGraph(graph);
  const { ids, resolved } = selectLayers(g, "daq", scope);
  if (ids.size === 0) throw new LowbitError("E_ARGUMENT", `scope '${scope}' selects no conv of this model`);
  const convs = g.nodes.filter((n) => n.op === "conv2d" && ids.has(n.id));
  const tensors = [...new Set(convs.map((n) => n.inputs[0]))];
  const patches = samplePatches(images, { count: o.patches ?? 32, size: o.patchSize ?? 48, seed: o.seed ?? 1 });
  const fracOff = o.offsets ?? 0;
  const passes = 1 + (fracOff > 0 ? 1 : 0) + (o.report && fracOff > 0 ? 1 : 0) + (o.report && !(fracOff > 0) ? 1 : 0);
  let pass = 0;
  const prog = (f: number) => o.onProgress?.((pass + f) / passes);
  const common = { low: o.low, high: o.high, signal: o.signal, onProgress: prog };
  const specOf = (id: number, lo: number, hi: number, off?: ChannelOffsets): OdmActSpec => {
    const grid = odmActGrid(lo, hi, o.actBits, { nudge: o.nudge });
    return { kind: "odm", postRelu: false, bits: o.actBits, lo: grid.lo, hi: grid.hi, ...(off ? { shift: off.shift, scale: off.scale } : {}) };
  };
  // Pass 1: ranges and channel statistics of the raw tensors.
  const raw = await calibrateOdm(rt, g, tensors, patches, common);
  pass++;
  const offsets = new Map<number, ChannelOffsets>();
  for (const id of selectOffsetTensors(raw, fracOff)) offsets.set(id, ChannelOffsets.fromStats(id, g.nodes[id].name, raw.get(id)!.stats, o.offsetKind ?? "both"));
  let final = raw;
  const before = new Map<number, number>();
  if (offsets.size > 0) {
    // Pass 2: ranges of x·a + b on the offset tensors (and the error without offsets).
    const measure = o.report ? new Map(tensors.map((id) => [id, specOf(id, raw.get(id)!.lo, raw.get(id)!.hi)])) : undefined;
    final = await calibrateOdm(rt, g, tensors, patches, { ...common, offsets, measure });
    pass++;
    for (const id of tensors) before.set(id, final.get(id)!.relError);
  }
  if (o.report) {
    const measure = new Map(tensors.map((id) => [id, specOf(id, final.get(id)!.lo, final.get(id)!.hi, offsets.get(id))]));
    const m = await calibrateOdm(rt, g, tensors, patches, { ...common, offsets, measure });
    pass++;
    for (const id of tensors) {
      final.get(id)!.relError = m.get(id)!.relError;
      if (!before.has(id)) before.set(id, m.get(id)!.relError);
    }
  }
  const params = new Map<number, OdmLayerParams>();
  for (const n of convs) {
    const c = final.get(n.inputs[0])!;
    const off = offsets.get(n.inputs[0]);
    params.set(n.id, { lo: c.lo, hi: c.hi, gamma: 1, ...(off ? { offsets: off } : {}) });
  }
  const report: OdmLayerReport[] = convs.map((n) => {
    const id = n.inputs[0], c = final.get(id)!, off = offsets.get(id);
    const st = raw.get(id)!.stats;
    return {
      conv: n.name, tensor: id, lo: c.lo, hi: c.hi, offsets: !!off,
      before: channelMismatch(st), after: channelMismatch(off ? off.transformStats(st) : st),
      relErrorBefore: before.get(id) ?? NaN, relErrorAfter: c.relError,
    };
  });
  const options: Record<string, string | number | boolean> = { variant: "init-ptq" };
  if (offsets.size > 0) Object.assign(options, { offsets: offsets.size, offsetKind: o.offsetKind ?? "both" });
  const model = buildOdmModel(g, params, { weightBits: o.weightBits, actBits: o.actBits, scope: resolved, nudge: o.nudge, fold: o.fold, weightPercentile: o.weightPercentile, path: o.path, options });
  return { model, graph: g, params, report, calibration: final };
}

/** `odmInitPtq(…).model`: "ODM-init PTQ" (P1/P99 ranges, γ_w = 1). */
export async function quantizeOdmInit(graph: Graph, images: readonly ImageLike[], o: OdmInitOptions): Promise<DynamicQuantizedModel> {
  return (await odmInitPtq(graph, images, o)).model;
}

/** A fixed-width text table of the mismatch report (before → after offsets). */
export function formatMismatchReport(rows: readonly OdmLayerReport[]): string {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : "–");
  const lines = ["conv                 offs  range                 chMean        chStd         imgMean       imgStd        relErr (before → after)"];
  for (const r of rows) {
    lines.push(`${r.conv.padEnd(20)} ${r.offsets ? "yes " : "no  "}  [${r.lo.toFixed(3)}, ${r.hi.toFixed(3)}]`.padEnd(49) +
      ` ${f(r.before.channelMean)}→${f(r.after.channelMean)}  ${f(r.before.channelStd)}→${f(r.after.channelStd)}  ${f(r.before.imageMean)}→${f(r.after.imageMean)}  ${f(r.before.imageStd)}→${f(r.after.imageStd)}  ${f(r.relErrorBefore)} → ${f(r.relErrorAfter)}`);
  }
  return lines.join("\n");
}
