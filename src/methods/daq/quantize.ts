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
import { calibrate } from "../../quant/calibrate.ts";
import { DYNAMIC_PATHS, type DynamicPath } from "../../graph/compile-dynamic.ts";
import { DynamicQuantizedModel, type DynamicLayer } from "../dynamic/model.ts";
import { isPostRelu, selectLayers, type LayerScope } from "../scope.ts";
import { actQuantizerFactory } from "../dynamic/factory.ts";
import { daqQuantizeWeights } from "./weights.ts";
import { daqChannelBits } from "./sensitivity.ts";

export interface DaqOptions {
  weightBits: number;
  actBits: number;
  stepTable?: "code" | "mse";
  qq?: number;
  mode?: "int" | "reference";
  scope?: LayerScope;
  path?: DynamicPath;
  /** Channel-sensitivity mixed precision: the fraction of input channels promoted (0 = off). */
  sensitive?: number;
  /** Bits added to promoted channels (default 1). */
  extraBits?: number;
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
  const sensitive = o.sensitive ?? 0;
  const extraBits = o.extraBits ?? 1;
  if (!(sensitive >= 0 && sensitive < 1)) throw new LowbitError("E_ARGUMENT", `sensitive must be a fraction in [0, 1), got ${sensitive}`);
  if (sensitive > 0 && o.actBits + extraBits > 8) throw new LowbitError("E_BITS", `channel sensitivity: a${o.actBits} + ${extraBits} exceeds 8 bits`);
  const g = optimizeGraph(graph);
  const { ids, resolved } = selectLayers(g, "daq", o.scope ?? "reference");
  let calib: Awaited<ReturnType<typeof calibrate>> | null = null;
  if (sensitive > 0) {
    if (!o.images?.length) throw new LowbitError("E_ARGUMENT", "DAQ channel sensitivity needs calibration images");
    calib = await calibrate(graph, o.images, { runtime: o.runtime ?? (await init()), signal: o.signal, onProgress: o.onProgress });
  }
  const layers = new Map<number, DynamicLayer>();
  for (const n of g.nodes) {
    if (n.op !== "conv2d" || !ids.has(n.id)) continue;
    const wq = daqQuantizeWeights(n.weights, { k: n.k, cin: n.cin, cout: n.cout, bits: o.weightBits, stepTable });
    const wscale = new Float32Array(n.cout).fill(wq.wscale);
    const post = isPostRelu(g, n.inputs[0]);
    let bits: number | Int32Array = o.actBits;
    if (calib) {
      const ts = calib.tensors[n.inputs[0]];
      bits = daqChannelBits({ mean: ts.channelMean, std: ts.channelStd }, n.weights, { k: n.k, cin: n.cin, cout: n.cout, bits: o.actBits, fraction: sensitive, extraBits });
    }
    const act = { kind: "daq" as const, bits, stepTable, qq, mode, postRelu: post };
    layers.set(n.id, {
      id: n.id, name: n.name, weightBits: o.weightBits, actBits: o.actBits + (calib ? extraBits : 0),
      weights: wq.codes, wscale, act, createQuantizer: actQuantizerFactory(act, n.cin),
    });
  }
  const options: Record<string, string | number | boolean> = { step: stepTable, qq, mode };
  if (sensitive > 0) Object.assign(options, { sensitive, extraBits });
  return new DynamicQuantizedModel(g, layers, { method: "daq", weightBits: o.weightBits, actBits: o.actBits, scope: resolved, options }, path);
}
