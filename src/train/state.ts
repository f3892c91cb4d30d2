/**
 * The trained state as plain data: per conv layer its float weights/bias and quantizer parameters,
 * enough to export a deployable integer model (the ODM exporter) or an FP32 graph (applyState).
 */
import type { Graph, Node } from "../graph/ir.ts";
import { check } from "../runtime/errors.ts";
import { paramName } from "./graph.ts";
import type { Trainer } from "./trainer.ts";

export interface TrainLayerState {
  name: string;
  k: number;
  cin: number;
  cout: number;
  relu: boolean;
  /** HWIO float weights (the master copy, before weight fake-quant). */
  weights: Float32Array;
  bias: Float32Array | null;
  /** Activation quantizer on the input: 2^bits = levels on [l, u]. */
  act: { l: number; u: number; levels: number } | null;
  /** Weight quantizer: odd grid with clip u = f·γ (null also for the per-channel grid, which has no parameter). */
  weight: { f: number; gamma: number; u: number; levels: number } | null;
  /** Per-input-channel offsets: the quantizer sees x·scale + shift (x̂ = (q(x·α + β) − β)/α). */
  offsets: { scale: Float32Array; shift: Float32Array } | null;
}

export interface TrainState {
  /** Model name (graph meta). */
  model: string;
  /** Optimizer steps taken. */
  step: number;
  layers: TrainLayerState[];
}

/** Snapshot of a trainer's parameters (copies). */
export function trainState(tr: Trainer): TrainState {
  const get = (layer: string, kind: Parameters<typeof paramName>[1]): Float32Array | null => {
    try {
      return Float32Array.from(tr.param(paramName(layer, kind)).value);
    } catch {
      return null;
    }
  };
  const layers: TrainLayerState[] = tr.layers.map((l) => {
    const q = l.quant;
    const range = q && q.actLevels > 0 ? get(l.name, "act_range") : null;
    const odd = q !== null && q.weightLevels > 0 && q.weightGrid === "odd";
    const gamma = odd ? get(l.name, "gamma")![0] : 0;
    const scale = q?.offsets ? get(l.name, "offset_scale") : null;
    return {
      name: l.name, k: l.k, cin: l.cin, cout: l.cout, relu: l.relu,
      weights: get(l.name, "weight")!, bias: get(l.name, "bias"),
      act: range ? { l: range[0], u: range[1], levels: q!.actLevels } : null,
      weight: odd ? { f: q.weightF, gamma, u: q.weightF * gamma, levels: q.weightLevels } : null,
      offsets: scale ? { scale, shift: get(l.name, "offset_shift")! } : null,
    };
  });
  return { model: tr.graph.meta.name, step: tr.optimizer?.t ?? 0, layers };
}

/**
 * `graph` with the state's float weights and biases (by layer name; quantizer parameters are not
 * applied — that is the exporter's job). Throws E_ARGUMENT when a layer is missing or differs in shape.
 */
export function applyState(graph: Graph, state: TrainState): Graph {
  const byName = new Map(state.layers.map((l) => [l.name, l]));
  const nodes = graph.nodes.map((n): Node => {
    if (n.op !== "conv2d") return n;
    const l = byName.get(n.name);
    check(l !== undefined, "E_ARGUMENT", `train state has no layer '${n.name}'`);
    check(l.k === n.k && l.cin === n.cin && l.cout === n.cout, "E_SHAPE", `layer '${n.name}': state is ${l.k}×${l.k}×${l.cin}→${l.cout}, graph ${n.k}×${n.k}×${n.cin}→${n.cout}`);
    check((l.bias === null) === (n.bias === null), "E_SHAPE", `layer '${n.name}': bias presence differs`);
    const { subpixelOf: _drop, sourceQuant: _src, ...rest } = n;
    return { ...rest, weights: Float32Array.from(l.weights), bias: l.bias ? Float32Array.from(l.bias) : null };
  });
  return { ...graph, nodes };
}
