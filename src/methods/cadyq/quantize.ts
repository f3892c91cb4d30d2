/**
 * CADyQ models (cadyq.md): `quantizeCadyq` calibrates and trains the per-layer bit selectors and
 * PAMS clips on LR images (FP32 model as teacher, no HR needed), then `buildCadyqModel` turns them
 * into a DynamicQuantizedModel whose layers pick their activation bits per tile at run time.
 *
 * Placement on the ISR RDN / RRDN graphs (cadyq.md §4 maps EDSR's ResBlock) [choice]:
 * - EDSR quantizes both convs of every ResBlock: BitSel₁ on the block input x before conv1, BitSel₂ on
 *   the ReLU output t before conv2. The RDN analogue is the residual dense block x → F_d_1 (conv+ReLU)
 *   → … → concat(x, F_d_1, …) → LFF_d (1×1) → + x: its first dense conv reads the block input (BitSel₁),
 *   and LFF — the block's last conv, like conv2 — reads the ReLU outputs (with x beside them in the
 *   concat). So every conv of every RDB (dense convs and LFF, RDN and RRDN names) gets a selector.
 *   Their inputs are signed or post-ReLU exactly where the reference's are.
 * - EDSR's fixed 8-bit quantizer of the residual-branch output (quant_act3, out = Q8(r) + xq) has no
 *   conv behind it: it rounds a tensor that is added to the skip. The RDN analogue would be the LFF
 *   output before the block's add; lowbit keeps the residual stream in f32 (cadyq.md §7 "keep the
 *   residual stream in f32"), so there is nothing to quantize there, and LFF, GFF, head, upsampler
 *   and tail stay FP32, as EDSR's head, body-final conv, upsampler and tail do. FAB counts exactly the
 *   selector layers (quant_act3 is not counted in the reference either).
 * - scope "body" puts selectors on every conv that is not head, tail or upsampler (GFF too). "full" is
 *   not offered: the sub-pixel tail would need a merged HR kernel the trainer does not run.
 *
 * Weights: 8-bit per tensor, q = round(W·127/max|W|) (quant_weight; round half away from zero, the
 * reference adds 1e-8 to max|W| — immaterial), one wscale for every output channel; biases FP32.
 *
 * α initialisation [choice]: the reference sets α to the batch mean of per-sample max|x| in every
 * step of epoch 1 (its `_ema` assigns instead of averaging while epoch == 1, so the decay 0.9997 never
 * acts); lowbit uses the mean of per-sample max|x| over `calibPatches` calibration patches — the
 * value that EMA estimates, with less variance than one batch. Every candidate starts at the same α.
 *
 * Training schedule [choice, measured]: the reference's 300 epochs × DIV2K are far beyond this
 * machine; the default is 300 steps of 4 LR patches (48 px), α lr 1e-2, selector lr 1e-4, weights
 * frozen (lrWeights = 0; 1e-4 is an option) — see the README for the measurements behind it. λ_b:
 * lowbit's L1 is in units of the output range (÷255 for 0–255 models) and sees ~10³× fewer steps, so
 * the reference's λ_b = 1e-4 (+1e-6·epoch, on a 0–255 L1) would leave the selectors at 8 bits; the
 * default λ_b is larger and reported in the model's options.
 */
import type { Graph } from "../../graph/ir.ts";
import { optimizeGraph } from "../../graph/passes.ts";
import type { ImageLike } from "../../engine/image.ts";
import { LowbitError, check, checkInt } from "../../runtime/errors.ts";
import { init, type Runtime } from "../../runtime/runtime.ts";
import { DYNAMIC_PATHS, type DynamicPath } from "../../graph/compile-dynamic.ts";
import { DynamicQuantizedModel, type CadyqActSpec, type DynamicLayer } from "../dynamic/model.ts";
import { actQuantizerFactory } from "../dynamic/factory.ts";
import { isPostRelu, selectLayers, type LayerScope } from "../scope.ts";
import type { TrainData } from "../../train/data.ts";
import { checkCandidates } from "./selector.ts";
import { trainCadyq, type CadyqTrainResult } from "./train.ts";

export const CADYQ_DEFAULT_CANDIDATES: readonly number[] = [4, 6, 8];
export const CADYQ_DEFAULT_LAMBDA = 2e-4;

/** 8-bit per-tensor weights of a conv: OHWI codes q = round(W·127/max|W|) and the one scale max|W|/127. */
export function cadyqQuantizeWeights(hwio: ArrayLike<number>, k: number, cin: number, cout: number): { codes: Int16Array; scale: number } {
  let mx = 0;
  for (let i = 0; i < hwio.length; i++) mx = Math.max(mx, Math.abs(hwio[i]));
  const inv = mx > 0 ? 127 / mx : 0;
  const codes = new Int16Array(hwio.length);
  for (let o = 0; o < cout; o++) {
    for (let t = 0; t < k * k; t++) {
      for (let c = 0; c < cin; c++) {
        const w = hwio[(t * cin + c) * cout + o];
        codes[(o * k * k + t) * cin + c] = Math.sign(w) * Math.floor(Math.abs(w) * inv + 0.5);
      }
    }
  }
  return { codes, scale: mx / 127 };
}

const RDB_CONV = /^(F_\d+_\d+(_\d+)?|LFF_\d+(_\d+)?)$/;

/**
 * The convs that get a selector: "reference" = every residual-dense-block conv (dense convs F_… and
 * the block's LFF, RDN and RRDN names), falling back to "body" on graphs without ISR names.
 */
export function cadyqLayers(g: Graph, scope: LayerScope): { ids: Set<number>; resolved: LayerScope } {
  if (scope === "reference") {
    const ids = new Set(g.nodes.filter((n) => n.op === "conv2d" && RDB_CONV.test(n.name)).map((n) => n.id));
    if (ids.size > 0) return { ids, resolved: "reference" };
    scope = "body";
  }
  return selectLayers(g, "daq", scope);
}

/** CADyQ parameters of one quantized conv. */
export interface CadyqLayerParams {
  alpha: ArrayLike<number>;
  /** Selector weight K × (C + 2) and bias K. */
  A: ArrayLike<number>;
  a: ArrayLike<number>;
}

export interface CadyqBuildOptions {
  candidates: readonly number[];
  scope: LayerScope;
  path?: DynamicPath;
  options?: Record<string, string | number | boolean>;
}

/** The deployable model: `g` optimized, `params` keyed by conv node id. */
export function buildCadyqModel(g: Graph, params: ReadonlyMap<number, CadyqLayerParams>, o: CadyqBuildOptions): DynamicQuantizedModel {
  checkCandidates(o.candidates);
  const path = o.path ?? "lut";
  if (!DYNAMIC_PATHS.includes(path)) throw new LowbitError("E_ARGUMENT", `unknown path '${String(path)}' (${DYNAMIC_PATHS.join(" | ")})`);
  const layers = new Map<number, DynamicLayer>();
  const bmax = Math.max(...o.candidates);
  for (const [id, p] of params) {
    const n = g.nodes[id];
    if (!n || n.op !== "conv2d") throw new LowbitError("E_ARGUMENT", `CADyQ parameters for node ${id}, which is not a conv`);
    if (n.subpixelOf) throw new LowbitError("E_ARGUMENT", `layer '${n.name}': CADyQ does not quantize the sub-pixel tail`);
    const act: CadyqActSpec = {
      kind: "cadyq", postRelu: isPostRelu(g, n.inputs[0]), candidates: Int32Array.from(o.candidates),
      alpha: Float32Array.from(p.alpha), selectorWeight: Float32Array.from(p.A), selectorBias: Float32Array.from(p.a),
    };
    const createQuantizer = actQuantizerFactory(act, n.cin); // validates
    const wq = cadyqQuantizeWeights(n.weights, n.k, n.cin, n.cout);
    layers.set(id, {
      id, name: n.name, weightBits: 8, actBits: bmax, weights: wq.codes, wscale: new Float32Array(n.cout).fill(wq.scale), act, createQuantizer,
    });
  }
  const options = { candidates: o.candidates.join("/"), ...(o.options ?? {}) };
  return new DynamicQuantizedModel(g, layers, { method: "cadyq", weightBits: 8, actBits: bmax, scope: o.scope, options }, path);
}

export interface CadyqOptions {
  /** Candidate activation bits (default [4, 6, 8]). */
  candidates?: readonly number[];
  /** "reference" (default: every RDB conv — dense convs and LFF) or "body" (every non-head/tail/upsampler conv). */
  scope?: LayerScope;
  /** Training steps (default 300; 0 = calibration only: α = max|x|, the initial selector → the top candidate). */
  steps?: number;
  batch?: number;
  /** LR patch side for training (default 48). */
  patch?: number;
  /** λ_b of the bit loss (default CADYQ_DEFAULT_LAMBDA). */
  lambdaBit?: number;
  /** Adam learning rates: α (default 1e-2), selector (1e-4), weights (default 0 = frozen; the reference: 1e-4). */
  lrAlpha?: number;
  lrSelector?: number;
  lrWeights?: number;
  /** Calibration patches for α (default 16). */
  calibPatches?: number;
  seed?: number;
  path?: DynamicPath;
  runtime?: Runtime;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export interface CadyqResult {
  model: DynamicQuantizedModel;
  train: CadyqTrainResult;
}

function nonNeg(v: number, what: string): number {
  check(Number.isFinite(v) && v >= 0, "E_ARGUMENT", `${what} must be a non-negative finite number, got ${v}`);
  return v;
}

/** Calibration + training, returning the model and the training record. */
export async function quantizeCadyqDetailed(graph: Graph, data: readonly ImageLike[] | TrainData, o: CadyqOptions = {}): Promise<CadyqResult> {
  const candidates = [...(o.candidates ?? CADYQ_DEFAULT_CANDIDATES)];
  checkCandidates(candidates);
  candidates.sort((x, y) => x - y);
  const scope = o.scope ?? "reference";
  check(scope === "reference" || scope === "body", "E_ARGUMENT", `CADyQ scope must be reference or body, got '${String(scope)}'`);
  const steps = o.steps ?? 300, batch = o.batch ?? 4, patch = o.patch ?? 48, calibPatches = o.calibPatches ?? 16;
  checkInt(steps, 0, 1e7, "CADyQ steps");
  checkInt(batch, 1, 4096, "CADyQ batch");
  checkInt(patch, 4, 4096, "CADyQ patch");
  checkInt(calibPatches, 1, 1e6, "CADyQ calibration patches");
  const lambdaBit = nonNeg(o.lambdaBit ?? CADYQ_DEFAULT_LAMBDA, "lambdaBit");
  const lrAlpha = nonNeg(o.lrAlpha ?? 1e-2, "lrAlpha"), lrSelector = nonNeg(o.lrSelector ?? 1e-4, "lrSelector"), lrWeights = nonNeg(o.lrWeights ?? 0, "lrWeights");
  const path = o.path ?? "lut";
  if (!DYNAMIC_PATHS.includes(path)) throw new LowbitError("E_ARGUMENT", `unknown path '${String(path)}' (${DYNAMIC_PATHS.join(" | ")})`);
  const td: TrainData = Array.isArray(data) ? { lr: data as readonly ImageLike[] } : (data as TrainData);
  check(td && Array.isArray(td.lr) && td.lr.length > 0, "E_ARGUMENT", "CADyQ needs at least one calibration image");
  const rt = o.runtime ?? (await init());
  const g0 = optimizeGraph(graph);
  const { ids, resolved } = cadyqLayers(g0, scope);
  if (ids.size === 0) throw new LowbitError("E_ARGUMENT", `scope '${scope}' selects no conv of this model`);
  const names = g0.nodes.filter((n) => ids.has(n.id)).map((n) => n.name);
  const tr = await trainCadyq(graph, td, {
    layers: names, candidates, steps, batch, patch, lambdaBit, lrAlpha, lrSelector, lrWeights, calibPatches, seed: o.seed ?? 1, runtime: rt,
    signal: o.signal, onProgress: o.onProgress ? (p) => o.onProgress!(p.step / Math.max(1, p.steps)) : undefined,
  });
  // Trained weights (if any) into the source graph, then the same optimization passes.
  let g = g0;
  if (tr.weights) {
    const w = tr.weights;
    g = optimizeGraph({
      ...graph,
      nodes: graph.nodes.map((n) => (n.op === "conv2d" && w.has(n.name) ? { ...n, weights: w.get(n.name)!.weights, bias: w.get(n.name)!.bias ?? n.bias } : n)),
    });
  }
  const params = new Map<number, CadyqLayerParams>();
  for (const n of g.nodes) {
    const p = tr.layers.get(n.name);
    if (n.op === "conv2d" && p) params.set(n.id, p);
  }
  const options: Record<string, string | number | boolean> = { steps, lambdaBit, trainWeights: lrWeights > 0 ? 1 : 0 };
  if (steps > 0) options.ms = tr.ms;
  const model = buildCadyqModel(g, params, { candidates, scope: resolved, path, options });
  return { model, train: tr };
}

/** `quantizeCadyqDetailed(…).model`. */
export async function quantizeCadyq(graph: Graph, data: readonly ImageLike[] | TrainData, o: CadyqOptions = {}): Promise<DynamicQuantizedModel> {
  return (await quantizeCadyqDetailed(graph, data, o)).model;
}
