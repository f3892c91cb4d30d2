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

interface StatsExports {
  channel_stats_acc_bytes(c: number): number;
  f32_channel_stats_nhwc(x: number, n: number, c: number, xStride: number, acc: number, out: number): void;
}

/**
 * Per-image statistics of the quantized convs' inputs over calibration images (each image one
 * tile, as inference sees it), accumulated for channel sensitivity (sensitivity.ts).
 */
async function collectDaqStats(rt: Runtime, g: Graph, inputs: number[], images: ImageLike[], o: { signal?: AbortSignal; onProgress?: (f: number) => void }): Promise<Map<number, DaqLayerStats>> {
  const ids = [...new Set(inputs)];
  const acc = new Map(ids.map((id) => [id, new DaqSensitivityAccumulator(g.nodes[id].channels, isPostRelu(g, id))]));
  const plan = new F32Plan(rt, g, Math.max(...images.map((i) => i.width)), Math.max(...images.map((i) => i.height)));
  const region = new ArenaRegion(rt.arena);
  const k = rt.kernels<StatsExports>();
  const maxC = Math.max(...ids.map((id) => g.nodes[id].channels));
  const accBuf = region.alloc(k.channel_stats_acc_bytes(maxC)), st = region.alloc(20 * maxC);
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
        acc.get(id)!.add({ pixels: v.pixels, mean: f.slice(s0 + 2 * c, s0 + 3 * c), std: f.slice(s0 + 3 * c, s0 + 4 * c), countPositive });
      }
      o.onProgress?.((i + 1) / images.length);
      await new Promise((r) => setTimeout(r, 0));
    }
  } finally {
    region.free();
    plan.dispose();
  }
  return new Map([...acc].map(([id, a]) => [id, a.result()]));
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
  /** Calibration images (needed when `sensitive` > 0). */
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
  const g = optimizeGraph(graph);
  const { ids, resolved } = selectLayers(g, "daq", o.scope ?? "reference");
  let calib: Map<number, DaqLayerStats> | null = null;
  if (sensitive > 0) {
    if (!o.images?.length) throw new LowbitError("E_ARGUMENT", "DAQ channel sensitivity needs calibration images");
    const inputs = g.nodes.filter((n) => n.op === "conv2d" && ids.has(n.id)).map((n) => n.inputs[0]);
    calib = await collectDaqStats(o.runtime ?? (await init()), g, inputs, o.images, o);
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
    const mask = o.branch === "channel" && !post ? reluChannelMask(g, n.inputs[0]) : null;
    const act = { kind: "daq" as const, bits, stepTable, qq, mode, postRelu: post, ...(mask && mask.some((v) => v) ? { reluMask: mask } : {}) };
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
  return new DynamicQuantizedModel(g, layers, { method: "daq", weightBits: o.weightBits, actBits: o.actBits, scope: resolved, options }, path);
}
