/**
 * `quantizeDaq(graph, options)`: DAQ post-training quantization (daq.md) of an
 * imported model. Training-free and, without channel sensitivity, data-free:
 * weights are quantized offline (per-tensor σ, odd midrise grid, weights.ts),
 * activations at inference from each image's per-channel μ and σ.
 *
 * Options follow the spec: `stepTable` "code" (the released code's G[b−1]
 * indexing, default) or "mse" (G[b]); `qq` σ-quantization bits (32 = off,
 * the default; test.sh uses 4 for EDSR-baseline); `mode` "int" (post-ReLU
 * codes clamped to 2^b − 1, σ' clamped to 0: what an integer engine runs,
 * default) or "reference" (the released code exactly; oracle path only);
 * `scope` (src/methods/scope.ts). Channel sensitivity (sensitivity.ts) gives
 * the most sensitive input channels `extraBits` more bits, keeping the
 * layer's average activation bits within `budget`; it needs calibration
 * images.
 */
import type { Graph } from "../../graph/ir.ts";
import { optimizeGraph } from "../../graph/passes.ts";
import type { ImageLike } from "../../engine/image.ts";
import { LowbitError } from "../../runtime/errors.ts";
import { init, type Runtime } from "../../runtime/runtime.ts";
import { F32Plan } from "../../graph/compile-f32.ts";
import { ArenaRegion } from "../../runtime/arena.ts";
import { throwIfAborted } from "../../runtime/errors.ts";
import { DYNAMIC_PATHS, type DynamicPath } from "../../graph/compile-dynamic.ts";
import { DynamicQuantizedModel, type DynamicLayer } from "../dynamic/model.ts";
import { isPostRelu, reluChannelMask, selectLayers, type LayerScope } from "../scope.ts";
import { actQuantizerFactory } from "../dynamic/factory.ts";
import { weightErrorSums } from "../dynamic/weight-tools.ts";
import { daqQuantizeWeights } from "./weights.ts";
import { daqChannelBits, DaqSensitivityAccumulator, type DaqLayerStats } from "./sensitivity.ts";
import { daqChannelSigma } from "./activation.ts";
import { chooseStepScale, DaqStepHistogram, STEP_CALIB_BINS } from "./step-calibration.ts";

interface StatsExports {
  channel_stats_acc_bytes(c: number): number;
  f32_channel_stats_nhwc(x: number, n: number, c: number, xStride: number, acc: number, out: number): void;
  f32_histogram_pc_nhwc(x: number, n: number, c: number, xStride: number, los: number, his: number, bins: number, hist: number): void;
}

/**
 * Per-image statistics of the quantized convs' inputs over calibration images (each image one
 * tile, as inference sees it), accumulated for channel sensitivity (sensitivity.ts) and, when
 * `stepBranches` is given (tensor id → per-channel post-ReLU rule mask), the σ'²-weighted
 * normalised histograms of the step calibration (step-calibration.ts).
 */
async function collectDaqStats(rt: Runtime, g: Graph, inputs: number[], images: ImageLike[], o: { signal?: AbortSignal; onProgress?: (f: number) => void },
  stepBranches: Map<number, Uint8Array> | null): Promise<{ stats: Map<number, DaqLayerStats>; steps: Map<number, DaqStepHistogram> }> {
  const ids = [...new Set(inputs)];
  const acc = new Map(ids.map((id) => [id, new DaqSensitivityAccumulator(g.nodes[id].channels, isPostRelu(g, id))]));
  const steps = new Map<number, DaqStepHistogram>();
  if (stepBranches) for (const id of ids) steps.set(id, new DaqStepHistogram(g.nodes[id].channels, stepBranches.get(id)!));
  const plan = new F32Plan(rt, g, Math.max(...images.map((i) => i.width)), Math.max(...images.map((i) => i.height)));
  const region = new ArenaRegion(rt.arena);
  const k = rt.kernels<StatsExports>();
  const maxC = Math.max(...ids.map((id) => g.nodes[id].channels));
  const accBuf = region.alloc(k.channel_stats_acc_bytes(maxC)), st = region.alloc(20 * maxC);
  const bins = STEP_CALIB_BINS;
  const hist = stepBranches ? region.alloc(4 * bins * maxC) : 0, los = stepBranches ? region.alloc(4 * maxC) : 0, his = stepBranches ? region.alloc(4 * maxC) : 0;
  const watch = new Set(ids);
  const [lo, hi] = g.meta.inputRange;
  try {
    for (let i = 0; i < images.length; i++) {
      throwIfAborted(o.signal);
      const img = images[i];
      const C = img.data.length / (img.width * img.height);
      const x = plan.inputView(img.width, img.height);
      for (let p = 0, d = 0; p < img.width * img.height; p++) for (let ch = 0; ch < 3; ch++) x[d++] = lo + (img.data[p * C + ch] * (hi - lo)) / 255;
      for (let id = 0; id < g.nodes.length; id++) {
        plan.runSteps(img.width, img.height, plan.nodeSteps[id][0], plan.nodeSteps[id][1]);
        if (!watch.has(id)) continue;
        const v = plan.tensorView(id, img.width, img.height);
        const c = v.channels;
        k.f32_channel_stats_nhwc(v.offset * 4, v.pixels, c, v.stride, accBuf, st);
        const f = rt.arena.f32, s0 = st / 4;
        const countPositive = new Float64Array(c);
        for (let p = 0; p < v.pixels; p++) for (let ch = 0; ch < c; ch++) if (f[v.offset + p * v.stride + ch] > 0) countPositive[ch]++;
        const stats = { pixels: v.pixels, mean: f.slice(s0 + 2 * c, s0 + 3 * c), std: f.slice(s0 + 3 * c, s0 + 4 * c), countPositive };
        acc.get(id)!.add(stats);
        const h = steps.get(id);
        if (h) {
          // σ' of each channel's branch (activation.ts), then one histogram per channel over its z range.
          const sSigned = daqChannelSigma(new Float64Array(c), stats, false, c), sRelu = daqChannelSigma(new Float64Array(c), stats, true, c);
          const sigma = new Float64Array(c);
          for (let ch = 0; ch < c; ch++) {
            sigma[ch] = h.relu[ch] ? sRelu[ch] : sSigned[ch];
            const [l, u] = sigma[ch] > 0 ? h.range(ch, stats.mean[ch], sigma[ch]) : [-1, 1];
            // The kernel needs hi > lo in f32 (σ' far below |μ| can round the range away; h.add skips σ' = 0).
            const fl = Math.fround(l), fu = Math.fround(u);
            rt.arena.f32[los / 4 + ch] = fl;
            rt.arena.f32[his / 4 + ch] = fu > fl ? fu : fl + Math.max(Math.abs(fl) * 2 ** -20, 1e-30);
          }
          rt.arena.u8.fill(0, hist, hist + 4 * bins * c);
          k.f32_histogram_pc_nhwc(v.offset * 4, v.pixels, c, v.stride, los, his, bins, hist);
          const counts = rt.arena.i32;
          for (let ch = 0; ch < c; ch++) h.add(ch, sigma[ch], counts.subarray(hist / 4 + ch * bins, hist / 4 + (ch + 1) * bins));
        }
      }
      o.onProgress?.((i + 1) / images.length);
      await new Promise((r) => setTimeout(r, 0));
    }
  } finally {
    region.free();
    plan.dispose();
  }
  return { stats: new Map([...acc].map(([id, a]) => [id, a.result()])), steps };
}

export interface DaqOptions {
  weightBits: number;
  actBits: number;
  stepTable?: "code" | "mse";
  qq?: number;
  mode?: "int" | "reference";
  scope?: LayerScope;
  path?: DynamicPath;
  /**
   * Channel-sensitivity mixed precision: a fraction of input channels promoted by `extraBits`
   * (0 = off; the layer's average bits rise), or "balanced": the same average bits as `actBits`,
   * the most sensitive channels promoted and the least sensitive demoted while that lowers the
   * modelled error (sensitivity.ts, budget { averageBits }, demote).
   */
  sensitive?: number | "balanced";
  /** Bits added to promoted channels (default 1). */
  extraBits?: number;
  /**
   * Post-ReLU branch per tensor ("tensor", the released code: a tensor straight out of a ReLU) or per
   * channel ("channel", lowbit option: channels of a concat that come out of a ReLU take the
   * post-ReLU branch, the others the signed one; scope.ts reluChannelMask). int mode only.
   */
  branch?: "tensor" | "channel";
  /** Per-image bias correction of the weight rounding (lowbit option, default false; weight-tools.ts). */
  biasCorrection?: boolean;
  /**
   * Calibrated step multipliers κ_c (lowbit option, step-calibration.ts): Δ_c = κ_c·G·σ'_c with κ_c
   * fitted per input channel on the calibration images' normalised distributions. int mode, qq off.
   */
  calibrateStep?: boolean;
  /** Calibration images (needed when `sensitive` > 0 or `calibrateStep`). */
  images?: ImageLike[];
  runtime?: Runtime;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

function checkBits(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 2 || v > 8) throw new LowbitError("E_BITS", `DAQ ${what} bits must be an integer in 2..8, got ${v}`);
}

export async function quantizeDaq(graph: Graph, o: DaqOptions): Promise<DynamicQuantizedModel> {
  checkBits(o.weightBits, "weight");
  checkBits(o.actBits, "activation");
  const stepTable = o.stepTable ?? "code";
  const qq = o.qq ?? 32;
  const mode = o.mode ?? "int";
  const path = o.path ?? (mode === "reference" ? "oracle" : "lut");
  if (stepTable !== "code" && stepTable !== "mse") throw new LowbitError("E_ARGUMENT", `DAQ step table must be "code" or "mse", got '${String(stepTable)}'`);
  if (!(Number.isInteger(qq) && qq >= 2 && qq <= 32)) throw new LowbitError("E_BITS", `DAQ σ-quantization bits (qq) must be an integer in 2..32 (32 = off), got ${qq}`);
  if (mode !== "int" && mode !== "reference") throw new LowbitError("E_ARGUMENT", `DAQ mode must be "int" or "reference", got '${String(mode)}'`);
  if (!DYNAMIC_PATHS.includes(path)) throw new LowbitError("E_ARGUMENT", `unknown path '${String(path)}' (${DYNAMIC_PATHS.join(" | ")})`);
  if (mode === "reference" && path !== "oracle") {
    throw new LowbitError("E_ARGUMENT", "DAQ reference mode has unbounded post-ReLU codes: it runs on the oracle path only (path: \"oracle\")");
  }
  const balanced = o.sensitive === "balanced";
  const sensitive = balanced ? 1 : ((o.sensitive as number | undefined) ?? 0);
  const extraBits = o.extraBits ?? 1;
  if (!balanced && !(typeof sensitive === "number" && sensitive >= 0 && sensitive < 1)) throw new LowbitError("E_ARGUMENT", `sensitive must be a fraction in [0, 1) or "balanced", got ${String(o.sensitive)}`);
  if (sensitive > 0 && o.actBits + extraBits > 8) throw new LowbitError("E_BITS", `channel sensitivity: a${o.actBits} + ${extraBits} exceeds 8 bits`);
  if (balanced && o.actBits - extraBits < 2) throw new LowbitError("E_BITS", `balanced channel sensitivity: a${o.actBits} − ${extraBits} is below 2 bits`);
  if (o.branch !== undefined && o.branch !== "tensor" && o.branch !== "channel") throw new LowbitError("E_ARGUMENT", `DAQ branch must be "tensor" or "channel", got '${String(o.branch)}'`);
  if (o.branch === "channel" && mode === "reference") throw new LowbitError("E_ARGUMENT", "DAQ per-channel branches are an int-mode option (reference mode reproduces the released code)");
  if (o.calibrateStep && mode !== "int") throw new LowbitError("E_ARGUMENT", "DAQ calibrated steps are an int-mode option (reference mode reproduces the released code)");
  if (o.calibrateStep && qq !== 32) throw new LowbitError("E_ARGUMENT", `DAQ calibrated steps are fitted on unquantized σ: they need qq = 32 (off), got ${qq}`);
  const g = optimizeGraph(graph);
  const { ids, resolved } = selectLayers(g, "daq", o.scope ?? "reference");
  const branchMask = (inputId: number): Uint8Array | null => (o.branch === "channel" && !isPostRelu(g, inputId) ? reluChannelMask(g, inputId) : null);
  let calib: Map<number, DaqLayerStats> | null = null;
  let stepHist: Map<number, DaqStepHistogram> | null = null;
  if (sensitive > 0 || o.calibrateStep) {
    if (!o.images?.length) throw new LowbitError("E_ARGUMENT", `DAQ ${sensitive > 0 ? "channel sensitivity" : "step calibration"} needs calibration images`);
    const inputs = g.nodes.filter((n) => n.op === "conv2d" && ids.has(n.id)).map((n) => n.inputs[0]);
    const branches = o.calibrateStep
      ? new Map(inputs.map((id) => [id, isPostRelu(g, id) ? new Uint8Array(g.nodes[id].channels).fill(1) : (branchMask(id) ?? new Uint8Array(g.nodes[id].channels))]))
      : null;
    const r = await collectDaqStats(o.runtime ?? (await init()), g, inputs, o.images, o, branches);
    if (sensitive > 0) calib = r.stats;
    if (o.calibrateStep) stepHist = r.steps;
  }
  const layers = new Map<number, DynamicLayer>();
  for (const n of g.nodes) {
    if (n.op !== "conv2d" || !ids.has(n.id)) continue;
    const wq = daqQuantizeWeights(n.weights, { k: n.k, cin: n.cin, cout: n.cout }, { bits: o.weightBits, stepTable });
    const wscale = new Float32Array(n.cout).fill(wq.wscale);
    const post = isPostRelu(g, n.inputs[0]);
    let bits: number | Int32Array = o.actBits;
    if (calib) {
      bits = daqChannelBits(calib.get(n.inputs[0])!, n.weights, { k: n.k, cin: n.cin, cout: n.cout }, {
        bits: o.actBits, extraBits: extraBits as 1 | 2, stepTable,
        ...(balanced ? { budget: { averageBits: o.actBits }, demote: true } : { budget: { fraction: sensitive } }),
      });
    }
    const mask = branchMask(n.inputs[0]);
    const stepScale = stepHist ? chooseStepScale(stepHist.get(n.inputs[0])!, bits, stepTable) : null;
    const act = { kind: "daq" as const, bits, stepTable, qq, mode, postRelu: post, ...(mask && mask.some((v) => v) ? { reluMask: mask } : {}), ...(stepScale ? { stepScale } : {}) };
    layers.set(n.id, {
      id: n.id, name: n.name, weightBits: o.weightBits, actBits: o.actBits + (calib ? extraBits : 0), // the widest channel
      weights: wq.codes, wscale, act, createQuantizer: actQuantizerFactory(act, n.cin),
      ...(o.biasCorrection ? { weightError: weightErrorSums(n.weights, wq.codes, wscale, n.k, n.cin, n.cout) } : {}),
    });
  }
  const options: Record<string, string | number | boolean> = { step: stepTable, qq, mode };
  if (sensitive > 0) Object.assign(options, { sensitive: balanced ? "balanced" : sensitive, extraBits });
  if (o.biasCorrection) options.bc = 1;
  if (o.branch === "channel") options.branch = "channel";
  if (o.calibrateStep) options.stepcal = 1;
  return new DynamicQuantizedModel(g, layers, { method: "daq", weightBits: o.weightBits, actBits: o.actBits, scope: resolved, options }, path);
}
