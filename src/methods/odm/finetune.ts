/**
 * ODM fine-tuning (odm.md §1–§3) on lowbit's gradient engine (src/train): quantization-aware
 * training of the fake-quantized model from a few images or patches, then export to a deployable
 * static integer model (quantize.ts buildOdmModel).
 *
 * Starting point: ODM-init PTQ (P1/P99 ranges over calibration patches, u_w = P99(|W|), γ_w = 1;
 * with `offsets`, the statistics-based v1 offsets of the most mismatched layers and the ranges of
 * x·a + b). Trained: conv weights and biases, activation ranges [l, u] (10× lr, odm.md §2), and the
 * switchable components of both versions:
 *
 * - reconstruction L_R: L1 to HR when the data has HR, else L1 to the FP32 teacher (no ground truth);
 * - v2 mismatch regularizer (`mismatch`): L_M = Σ_layers ‖X − q(X)‖₂ over each quantized conv input
 *   (X the FP tensor, q(X) its fake-quantized value with offsets undone). ∂L_M/∂X = d/‖d‖ and
 *   ∂L_M/∂q(X) = −d/‖d‖ with d = X − q(X), seeded at both; through the STE the two cancel inside
 *   [l, u] and leave the clipping error and the LSQ range gradients. Cooperative update per
 *   parameter tensor (odm.md §2: per tensor is the default reading [unverified]):
 *       g = ∇L_R + λ_M·sim·∇L_M,   sim = (cos(∇L_R, ∇L_M) + 1)/2,   λ_M default 1e-5;
 *   `cooperative: false` is the "naive MR" row of the ablation (sim = 1).
 * - v2 WCC (`wcc`): γ_w learned through L_R (the engine's weight fake-quant u_w = f·γ); off = γ frozen at 1.
 * - v1 variance regularizer (`variance`): the formula is unpublished [choice]: per quantized conv
 *   input, the mean per-channel spatial variance normalised by the squared range,
 *       L_V = Σ_layers (1/C) Σ_c Var_p(X[p, c]) / (u − l)²,   ∂L_V/∂X[p,c] = 2(X[p,c] − μ_c)/(P·C·(u − l)²),
 *   and the v1 cooperation rule: the regularizer's gradient is kept only where its sign agrees with
 *   the reconstruction gradient, elementwise: g = ∇L_R + λ_V·∇L_V·[sign ∇L_V = sign ∇L_R]
 *   (`cooperative: false`: always kept). λ_V default 1e-3 [choice].
 * - v1 offsets (`offsets`): the fraction of quantized layers (largest channel mismatch) whose inputs
 *   get learnable per-channel scale/shift, initialised from statistics (offsets.ts).
 *
 * Export: the trained float weights, ranges, γ and offsets become a DynamicQuantizedModel. The weight
 * clip is carried as u_w / P99(|W_trained|), so graph rewrites that scale a conv's weights
 * (MultiplyBeta folding) scale u_w with them. Offsets are exported unfolded (x̂ = (q(x·a + b) − b)/a in
 * the per-channel affine of the static quantizer, free at inference): training fake-quantized W, not
 * W/a, so folding the scale before weight quantization would change the trained grid.
 */
import type { Graph } from "../../graph/ir.ts";
import { optimizeGraph } from "../../graph/passes.ts";
import type { ImageLike } from "../../engine/image.ts";
import { LowbitError, check } from "../../runtime/errors.ts";
import { init as initRuntime, type Runtime } from "../../runtime/runtime.ts";
import type { DynamicPath } from "../../graph/compile-dynamic.ts";
import type { DynamicQuantizedModel } from "../dynamic/model.ts";
import type { LayerScope } from "../scope.ts";
import { finetune, mismatchLoss, type FinetuneProgress, type FinetuneStepContext, type GradBuffers, type Seed, type TrainData, type TrainState, type Trainer } from "../../train/index.ts";
import { buildOdmModel, odmInitPtq, type OdmInitResult, type OdmLayerParams } from "./quantize.ts";
import { odmWeightScaleBase } from "./grid.ts";
import { ChannelOffsets } from "./offsets.ts";

export interface OdmRegularizer {
  /** Weight λ (mismatch: default 1e-5; variance: default 1e-3). */
  lambda?: number;
  /** Cooperative combination (mismatch: (cos + 1)/2 per tensor; variance: sign agreement). Default true. */
  cooperative?: boolean;
}

export interface OdmFinetuneOptions {
  weightBits: number;
  actBits: number;
  /** Quantized layers (default "body"). */
  scope?: LayerScope;
  /** Optimizer steps (default 500), samples per step (default 4), LR patch side (default 48). */
  steps?: number;
  batch?: number;
  patch?: number;
  /** Base learning rate (default 1e-4; activation ranges 10×). */
  lr?: number;
  /** Halve the learning rate every N steps (default: never). */
  halveEvery?: number;
  seed?: number;
  /** v2 mismatch regularizer (default off; `true` = defaults). */
  mismatch?: boolean | OdmRegularizer;
  /** v2 weight-clipping correction: learn γ_w (default true). */
  wcc?: boolean;
  /** v1 variance regularizer (default off). */
  variance?: boolean | OdmRegularizer;
  /** v1 offsets: fraction of quantized layers with learnable channel offsets (default 0). */
  offsets?: number;
  /** Train conv weights and biases (default true). */
  trainWeights?: boolean;
  /** Calibration patches for the ODM-init ranges (default 32). */
  calibrationPatches?: number;
  path?: DynamicPath;
  runtime?: Runtime;
  signal?: AbortSignal;
  onProgress?: (p: FinetuneProgress) => void;
}

export interface OdmFinetuneResult {
  /** The deployable fine-tuned model ("odm", variant=finetuned). */
  model: DynamicQuantizedModel;
  /** The ODM-init PTQ starting point (its model is the calibration-only baseline). */
  init: OdmInitResult;
  state: TrainState;
  /** Mean loss per step (L_R plus the active regularizers, weighted). */
  losses: number[];
  /** Fine-tuning wall time (excluding the init calibration). */
  ms: number;
}

function reg(v: boolean | OdmRegularizer | undefined, lambda: number): { lambda: number; cooperative: boolean } | null {
  if (!v) return null;
  const o = v === true ? {} : v;
  const l = o.lambda ?? lambda;
  check(Number.isFinite(l) && l >= 0, "E_ARGUMENT", `regularizer weight λ must be a non-negative number, got ${l}`);
  return { lambda: l, cooperative: o.cooperative ?? true };
}

/** Images of `data` for calibration (LR only). */
function lrImages(data: TrainData): readonly ImageLike[] {
  check(data && Array.isArray(data.lr) && data.lr.length > 0, "E_ARGUMENT", "ODM fine-tuning needs at least one LR image");
  return data.lr;
}

export async function odmFinetune(graph: Graph, data: TrainData, o: OdmFinetuneOptions): Promise<OdmFinetuneResult> {
  const rt = o.runtime ?? (await initRuntime());
  const patch = o.patch ?? 48;
  const mis = reg(o.mismatch, 1e-5);
  const vr = reg(o.variance, 1e-3);
  const wcc = o.wcc ?? true;
  // 1. ODM-init: ranges (of x·a + b on offset layers), statistics-based offsets.
  const init = await odmInitPtq(graph, lrImages(data), {
    weightBits: o.weightBits, actBits: o.actBits, scope: o.scope, patches: o.calibrationPatches ?? 32, patchSize: patch, seed: o.seed,
    offsets: o.offsets ?? 0, fold: false, runtime: rt, signal: o.signal, path: o.path,
  });
  const g = init.graph;
  const names = [...init.params.keys()].map((id) => g.nodes[id].name);
  const actRanges: Record<string, [number, number]> = {};
  const offsetNames: string[] = [];
  const stateLayers: TrainState["layers"] = [];
  const srcConv = (name: string) => {
    const n = graph.nodes.find((m) => m.name === name && m.op === "conv2d");
    if (!n || n.op !== "conv2d") throw new LowbitError("E_ARGUMENT", `internal: conv '${name}' not in the source graph`);
    return n;
  };
  for (const [id, p] of init.params) {
    const name = g.nodes[id].name;
    actRanges[name] = [p.lo, p.hi > p.lo ? p.hi : p.lo + 1e-6];
    if (p.offsets) {
      offsetNames.push(name);
      const n = srcConv(name);
      stateLayers.push({
        name, k: n.k, cin: n.cin, cout: n.cout, relu: false, weights: n.weights, bias: n.bias,
        act: { l: actRanges[name][0], u: actRanges[name][1], levels: 2 ** o.actBits }, weight: null,
        offsets: { scale: Float32Array.from(p.offsets.scale), shift: Float32Array.from(p.offsets.shift) },
      });
    }
  }

  // 2. Fine-tuning on the engine, with the regularizers as a custom step.
  let gM: GradBuffers | null = null, gV: GradBuffers | null = null;
  const quantLayers = names.map((name) => ({ name, x: g.nodes[g.nodes.find((n) => n.name === name)!.inputs[0]].name }));
  const stepFn = mis || vr ? (ctx: FinetuneStepContext) => odmStep(ctx, quantLayers, mis, vr, () => (gM ??= mis ? ctx.trainer.createGrads() : null), () => (gV ??= vr ? ctx.trainer.createGrads() : null)) : undefined;
  const t0 = Date.now();
  let res;
  try {
    res = await finetune(graph, data, {
      quant: { weightBits: o.weightBits, actBits: o.actBits, layers: names, offsets: offsetNames, actRanges },
      steps: o.steps, batch: o.batch, patch, seed: o.seed, trainWeights: o.trainWeights,
      optimizer: { lr: o.lr ?? 1e-4, lrMult: { act_range: 10, gamma: wcc ? 1 : 0 }, ...(o.halveEvery ? { schedule: { every: o.halveEvery, factor: 0.5 } } : {}) },
      ...(offsetNames.length ? { init: { model: graph.meta.name, step: 0, layers: stateLayers } } : {}),
      stepFn, signal: o.signal, onProgress: o.onProgress, runtime: rt,
    });
  } finally {
    (gM as GradBuffers | null)?.dispose();
    (gV as GradBuffers | null)?.dispose();
  }
  const ms = Date.now() - t0;

  // 3. Export: trained weights into the optimized graph, quantizer parameters by layer name.
  const tg = optimizeGraph(res.graph);
  const params = new Map<number, OdmLayerParams>();
  for (const l of res.state.layers) {
    if (!l.act && !l.weight) continue;
    const n = tg.nodes.find((m) => m.op === "conv2d" && m.name === l.name);
    if (!n || n.op !== "conv2d") throw new LowbitError("E_ARGUMENT", `internal: trained layer '${l.name}' is not a conv of the optimized graph`);
    // u_w relative to P99 of the trained weights: invariant under the weight scaling of graph rewrites.
    const f = odmWeightScaleBase(l.weights);
    const gamma = l.weight ? l.weight.u / f : 1;
    const off = l.offsets ? new ChannelOffsets(n.inputs[0], tg.nodes[n.inputs[0]].name, l.offsets.shift, l.offsets.scale) : undefined;
    params.set(n.id, { lo: l.act ? l.act.l : 0, hi: l.act ? l.act.u : 0, gamma, ...(off ? { offsets: off } : {}) });
  }
  const opts: Record<string, string | number | boolean> = { variant: "finetuned", steps: o.steps ?? 500, wcc: wcc ? 1 : 0 };
  if (mis) Object.assign(opts, { mr: mis.cooperative ? "cos" : "naive", lambdaM: mis.lambda });
  if (vr) Object.assign(opts, { vr: vr.cooperative ? "sign" : "naive", lambdaV: vr.lambda });
  if (offsetNames.length) opts.offsets = offsetNames.length;
  const model = buildOdmModel(tg, params, { weightBits: o.weightBits, actBits: o.actBits, scope: init.model.info.scope, fold: false, path: o.path, options: opts });
  return { model, init, state: res.state, losses: res.losses, ms };
}

/** Dense pixels × channels copy of an arena tensor. */
function dense(tr: Trainer, at: Parameters<Trainer["tensor"]>[0]): Float32Array {
  return tr.read(at);
}

/**
 * One ODM step: per sample, forward, L_R backward into ctx.grads, each regularizer's backward into
 * its own accumulator; then the per-tensor combination.
 */
function odmStep(ctx: FinetuneStepContext, layers: { name: string; x: string }[], mis: { lambda: number; cooperative: boolean } | null,
  vr: { lambda: number; cooperative: boolean } | null, getM: () => GradBuffers | null, getV: () => GradBuffers | null): { loss: number; grads: ReadonlyMap<string, ArrayLike<number>> } {
  const tr = ctx.trainer;
  const gM = getM(), gV = getV();
  gM?.zero();
  gV?.zero();
  const B = ctx.batch.length;
  let lossSum = 0;
  const inputName = tr.graph.nodes[tr.graph.input].name;
  for (const s of ctx.batch) {
    if (ctx.signal?.aborted) break;
    // The FP32 teacher is the target only without HR (finetune's default losses).
    if (!s.hr) ctx.teacher?.forward(s.lr, s.w, s.h, { fp: true });
    tr.forward(s.lr, s.w, s.h);
    const r = ctx.losses(s);
    lossSum += r.loss;
    tr.backward(r.seeds, ctx.grads);
    if (gM) {
      const seeds: Seed[] = [];
      for (const l of layers) {
        // ‖X − X̂‖₂ and its seeds, in the arena (train/losses.ts mismatchLoss: the derivation above).
        const m = mismatchLoss(tr, l.name);
        lossSum += mis!.lambda * m.loss;
        seeds.push(...m.seeds);
      }
      if (seeds.length) tr.backward(seeds, gM);
    }
    if (gV) {
      const seeds: Seed[] = [];
      for (const l of layers) {
        if (l.x === inputName) continue; // the image has no parameters upstream
        const t = tr.tensor(l.x), x = dense(tr, l.x);
        const C = t.channels, P = t.pixels;
        const range = tr.param(`${l.name}/act_range`).value;
        const span2 = Math.max((range[1] - range[0]) ** 2, 1e-12);
        const mean = new Float64Array(C);
        for (let p = 0; p < P; p++) for (let c = 0; c < C; c++) mean[c] += x[p * C + c] / P;
        let v = 0;
        const k = 2 / (P * C * span2);
        for (let p = 0; p < P; p++) {
          for (let c = 0; c < C; c++) {
            const d = x[p * C + c] - mean[c];
            v += d * d;
            x[p * C + c] = k * d;
          }
        }
        lossSum += vr!.lambda * (v / (P * C * span2));
        seeds.push({ at: l.x, grad: x });
      }
      if (seeds.length) tr.backward(seeds, gV);
    }
  }
  const gR = tr.gradients(ctx.grads, 1 / B);
  const out = new Map<string, Float32Array>([...gR].map(([k, v]) => [k, Float32Array.from(v)]));
  if (gM) {
    for (const [name, m] of tr.gradients(gM, 1 / B)) {
      const rr = out.get(name);
      if (!rr) continue;
      let sim = 1;
      if (mis!.cooperative) {
        let dot = 0, nr = 0, nm = 0;
        for (let i = 0; i < m.length; i++) {
          dot += rr[i] * m[i];
          nr += rr[i] * rr[i];
          nm += m[i] * m[i];
        }
        sim = nr > 0 && nm > 0 ? (dot / Math.sqrt(nr * nm) + 1) / 2 : 0.5;
      }
      const w = mis!.lambda * sim;
      for (let i = 0; i < m.length; i++) rr[i] += w * m[i];
    }
  }
  if (gV) {
    for (const [name, v] of tr.gradients(gV, 1 / B)) {
      const rr = out.get(name);
      if (!rr) continue;
      const base = gR.get(name)!;
      for (let i = 0; i < v.length; i++) {
        if (!vr!.cooperative || Math.sign(v[i]) === Math.sign(base[i])) rr[i] += vr!.lambda * v[i];
      }
    }
  }
  return { loss: lossSum / B, grads: out };
}
