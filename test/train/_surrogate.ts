// f64 evaluator of a training graph — the oracle of the gradient tests. Fake-quant nodes are
// evaluated as their straight-through surrogate: with e* = round(t) − t FROZEN per element at the
// base point, q̃(z) = clip(z, l, u) + s·e* has the quantizer's value at the base point and exactly
// the STE/LSQ derivatives (∂/∂z = [l ≤ z ≤ u], ∂/∂u = e*/n inside, 1 above; ∂/∂l = −e*/n inside,
// 1 below), so central finite differences of the surrogate check the engine's gradients of every
// parameter, quantizer ranges, γ and offsets included. Weights: w̃ = clip(w, −u, u) + (2u/n)·e*.
import type { TrainGraph } from "../../src/train/graph.ts";
import { paramName } from "../../src/train/graph.ts";
import { convF64, evalGraphNodes } from "../util/eval-graph.ts";

type Params = Map<string, Float64Array>;

/** Frozen rounding residuals, filled by the first evaluation (the base point). */
export type Frozen = Map<string, Float64Array>;

const round = (t: number): number => Math.floor(t + 0.5);

function fq(z: Float64Array, l: number, u: number, levels: number, key: string, frozen: Frozen): Float64Array {
  const n = levels - 1, s = (u - l) / n;
  let e = frozen.get(key);
  const fill = !e;
  if (!e) {
    e = new Float64Array(z.length);
    frozen.set(key, e);
  }
  const out = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const c = Math.min(u, Math.max(l, z[i]));
    if (fill) {
      const t = (c - l) / s;
      e[i] = Math.min(n, round(t)) - t;
    }
    out[i] = c + s * e[i];
  }
  return out;
}

/** Parameters of a trainer as f64 maps (copies). */
export function paramsOf(list: ReadonlyArray<{ name: string; value: Float32Array }>): Params {
  return new Map(list.map((p) => [p.name, Float64Array.from(p.value)]));
}

export interface SurrogateValues {
  /** Every node's output (dense). */
  nodes: Float64Array[];
  /** Each activation-quantized conv's actual input x̂, by layer name. */
  qin: Map<string, Float64Array>;
}

/** All tensors (dense, f64) of the train graph under the STE surrogate; `quant` false = FP32 model. */
export function evalSurrogate(tg: TrainGraph, params: Params, input: Float32Array, w: number, h: number, frozen: Frozen, quant = true): SurrogateValues {
  const qin = new Map<string, Float64Array>();
  const vals = evalGraphNodes(tg.graph, input, h, w, (n, a) => {
    const L = tg.convs.get(n.id)!;
    const q = quant ? L.quant : null;
    let x = a;
    if (q && q.actLevels > 0) {
      const [l, u] = params.get(paramName(n.name, "act_range"))!;
      let z = a.data;
      const al = q.offsets ? params.get(paramName(n.name, "offset_scale"))! : null;
      const be = q.offsets ? params.get(paramName(n.name, "offset_shift"))! : null;
      if (al) z = z.map((v, i) => v * al[i % a.c] + be![i % a.c]);
      let zq = fq(z, l, u, q.actLevels, `a:${n.name}`, frozen);
      if (al) zq = zq.map((v, i) => (v - be![i % a.c]) / al[i % a.c]);
      x = { ...a, data: zq };
      qin.set(n.name, zq);
    }
    let wts = params.get(paramName(n.name, "weight"))!;
    if (q && q.weightLevels > 0) {
      const u = q.weightF * params.get(paramName(n.name, "gamma"))![0];
      wts = fq(wts, -u, u, q.weightLevels, `w:${n.name}`, frozen);
    }
    return convF64(x, wts, params.get(paramName(n.name, "bias")) ?? null, L.k, L.cout, L.relu ? (v) => Math.max(0, v) : (v) => v);
  });
  return { nodes: vals.map((v) => v.data), qin };
}
