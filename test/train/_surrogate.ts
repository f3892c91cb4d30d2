// f64 evaluator of a training graph — the oracle of the gradient tests. Fake-quant nodes are
// evaluated as their straight-through surrogate: with e* = round(t) − t FROZEN per element at the
// base point (and which side of the clip each element is on), q̃(z) = l, u or z + s·e* has the
// quantizer's value at the base point and exactly the STE/LSQ derivatives (∂/∂z = [l ≤ z ≤ u],
// ∂/∂u = e*/n inside, 1 above; ∂/∂l = −e*/n inside, 1 below), so central finite differences of the surrogate check the engine's gradients of every
// parameter, quantizer ranges, γ and offsets included. Weights: w̃ = clip(w, −u, u) + (2u/n)·e*.
import type { TrainGraph } from "../../src/train/graph.ts";
import { paramName } from "../../src/train/graph.ts";
import { convF64, evalGraphNodes } from "../util/eval-graph.ts";
import { fakeQuantizeWeights } from "../../src/quant/weights.ts";
import { fakeQuantStepRef, fakeQuantT } from "../../src/kernels/ref/grad-elementwise.ts";
import { affineParams } from "../../src/quant/params.ts";

type Params = Map<string, Float64Array>;

/** Frozen rounding residuals, filled by the first evaluation (the base point). */
export type Frozen = Map<string, Float64Array>;

const round = (t: number): number => Math.floor(t + 0.5);

function fq(z: Float64Array, l: number, u: number, levels: number, key: string, frozen: Frozen, f32Rounding = false): Float64Array {
  const n = levels - 1, s = (u - l) / n;
  let e = frozen.get(key), m = frozen.get(`${key}/region`);
  const fill = !e;
  if (!e || !m) {
    e = new Float64Array(z.length);
    m = new Float64Array(z.length);
    frozen.set(key, e);
    frozen.set(`${key}/region`, m);
  }
  // The region (below / inside / above) is frozen at the base point too: a value ON the clip (a level
  // of a previous quantizer on the same grid) counts as inside, as in the engine (l ≤ x ≤ u), instead
  // of sitting on clip()'s kink where central differences would average the two sides.
  const tol = 1e-9 * (u - l);
  const out = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) {
    if (fill) {
      m[i] = z[i] < l - tol ? -1 : z[i] > u + tol ? 1 : 0;
      const c = Math.min(u, Math.max(l, z[i]));
      const t = (c - l) / s;
      // Activation levels as the f32 kernel picks them (ties such as a ReLU zero on a full grid with an
      // odd level count, t = n/2, must round the same way), weights as the f64 TS quantizer.
      const r = f32Rounding ? fakeQuantT(Math.fround(z[i]), l, u, fakeQuantStepRef(l, u, levels))[1] : round(t);
      e[i] = Math.min(n, r) - t;
    }
    out[i] = m[i] < 0 ? l : m[i] > 0 ? u : z[i] + s * e[i];
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
  /** Per tensor-quantized node: x and x̂ (the calibration loss's operands). */
  tq: Array<{ x: Float64Array; xh: Float64Array }>;
}

/** All tensors (dense, f64) of the train graph under the STE surrogate; `quant` false = FP32 model. */
export function evalSurrogate(tg: TrainGraph, params: Params, input: Float32Array, w: number, h: number, frozen: Frozen, quant = true): SurrogateValues {
  const qin = new Map<string, Float64Array>();
  const tq: SurrogateValues["tq"] = [];
  const tqOf = new Map(tg.tensorQuant.flatMap((t) => t.ids.map((id) => [id, t] as const)));
  // Tensor quantizers: x̂ = q̃(x) on [l, u] from the clip (full [−α, α], half [0, α], asymmetric [l, u]).
  // ReLU with its mask frozen at the base point ([x > 0], the engine's subgradient at 0): a level at
  // exactly 0 (a nudged grid) added to a ReLU zero would otherwise sit on the kink.
  const relu = (key: string, v: Float64Array): Float64Array => {
    let m = frozen.get(key);
    // |x| ≤ 1e-9: a zero level computed in f64 (x + s·e*, not exactly 0) is the engine's exact 0.
    if (!m) frozen.set(key, (m = v.map((x) => (x > 1e-9 ? 1 : 0))));
    return v.map((x, i) => (m![i] ? x : 0));
  };
  type T = { data: Float64Array; h: number; w: number; c: number };
  const post = (n: { id: number; name: string; op: string; activation?: { kind: string } }, r0: T, ins: T[]) => {
    let r = r0;
    if (n.op === "activation" && n.activation?.kind === "relu") r = { ...r, data: relu(`relu:${n.name}`, ins[0].data) };
    const t = quant ? tqOf.get(n.id) : undefined;
    if (!t) return r;
    const v = params.get(t.name)!;
    let [l, u] = t.grid === "asymmetric" ? [v[0], v[1]] : [t.grid === "full" ? -v[0] : 0, v[0]];
    if (t.nudge) {
      // The deployed grid in f64: s = (max(u, 0) − min(l, 0))/n and the integer zero point of
      // affineParams, frozen at the base point (piecewise constant).
      const n1 = t.levels - 1, zk = `z:${t.name}`;
      if (!frozen.has(zk)) {
        const p = affineParams(l, u, Math.log2(t.levels), { signed: false });
        frozen.set(zk, Float64Array.of(p.zeroPoint - p.qmin));
      }
      const z = frozen.get(zk)![0], s = (Math.max(u, 0) - Math.min(l, 0)) / n1;
      [l, u] = [-z * s, (n1 - z) * s];
    }
    const xh = fq(r.data, l, u, t.levels, `t:${n.name}`, frozen, true);
    tq.push({ x: r.data, xh });
    return { ...r, data: xh };
  };
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
    if (q && q.weightLevels > 0 && q.weightGrid === "channel") {
      // Straight-through: w̃ = w + (q(w₀) − w₀), the rounding offset frozen at the base point.
      const key = `wc:${n.name}`;
      if (!frozen.has(key)) {
        const w0 = Float32Array.from(wts);
        const q0 = fakeQuantizeWeights(w0, L.cout, Math.log2(q.weightLevels));
        frozen.set(key, Float64Array.from(q0, (v, i) => v - w0[i]));
      }
      const e = frozen.get(key)!;
      wts = wts.map((v, i) => v + e[i]);
    } else if (q && q.weightLevels > 0) {
      const u = q.weightF * params.get(paramName(n.name, "gamma"))![0];
      wts = fq(wts, -u, u, q.weightLevels, `w:${n.name}`, frozen);
    }
    const y = convF64(x, wts, params.get(paramName(n.name, "bias")) ?? null, L.k, L.cout, (v) => v);
    return L.relu ? { ...y, data: relu(`relu:${n.name}`, y.data) } : y;
  }, post);
  return { nodes: vals.map((v) => v.data), qin, tq };
}
