// f64 evaluator of a training graph — the oracle of the gradient tests. Fake-quant nodes are
// evaluated as their straight-through surrogate: with e* = round(t) − t FROZEN per element at the
// base point, q̃(z) = clip(z, l, u) + s·e* has the quantizer's value at the base point and exactly
// the STE/LSQ derivatives (∂/∂z = [l ≤ z ≤ u], ∂/∂u = e*/n inside, 1 above; ∂/∂l = −e*/n inside,
// 1 below), so central finite differences of the surrogate check the engine's gradients of every
// parameter, quantizer ranges, γ and offsets included. Weights: w̃ = clip(w, −u, u) + (2u/n)·e*.
import type { TrainGraph } from "../../src/train/graph.ts";
import { paramName } from "../../src/train/graph.ts";

type Params = Map<string, Float64Array>;
interface T { d: Float64Array; h: number; w: number; c: number }

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

function conv(x: T, wts: Float64Array, bias: Float64Array | null, k: number, cout: number, relu: boolean): T {
  const p = (k - 1) / 2, cin = x.c;
  const out = new Float64Array(x.h * x.w * cout);
  for (let y = 0; y < x.h; y++) for (let xx = 0; xx < x.w; xx++) {
    const o = (y * x.w + xx) * cout;
    for (let co = 0; co < cout; co++) out[o + co] = bias ? bias[co] : 0;
    for (let ky = 0; ky < k; ky++) {
      const iy = y + ky - p;
      if (iy < 0 || iy >= x.h) continue;
      for (let kx = 0; kx < k; kx++) {
        const ix = xx + kx - p;
        if (ix < 0 || ix >= x.w) continue;
        const ib = (iy * x.w + ix) * cin, wb = (ky * k + kx) * cin * cout;
        for (let ci = 0; ci < cin; ci++) {
          const v = x.d[ib + ci];
          if (v === 0) continue;
          const wr = wb + ci * cout;
          for (let co = 0; co < cout; co++) out[o + co] += v * wts[wr + co];
        }
      }
    }
    if (relu) for (let co = 0; co < cout; co++) out[o + co] = Math.max(0, out[o + co]);
  }
  return { d: out, h: x.h, w: x.w, c: cout };
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
  const g = tg.graph;
  const vals: T[] = [];
  const qin = new Map<string, Float64Array>();
  for (const n of g.nodes) {
    const ins = n.inputs.map((i) => vals[i]);
    const a = ins[0];
    let r: T;
    switch (n.op) {
      case "input":
        r = { d: Float64Array.from(input), h, w, c: 3 };
        break;
      case "conv2d": {
        const L = tg.convs.get(n.id)!;
        const q = quant ? L.quant : null;
        let x = a;
        if (q && q.actLevels > 0) {
          const [l, u] = params.get(paramName(n.name, "act_range"))!;
          let z = a.d;
          const al = q.offsets ? params.get(paramName(n.name, "offset_scale"))! : null;
          const be = q.offsets ? params.get(paramName(n.name, "offset_shift"))! : null;
          if (al) z = z.map((v, i) => v * al[i % a.c] + be![i % a.c]);
          let zq = fq(z, l, u, q.actLevels, `a:${n.name}`, frozen);
          if (al) zq = zq.map((v, i) => (v - be![i % a.c]) / al[i % a.c]);
          x = { ...a, d: zq };
          qin.set(n.name, zq);
        }
        let wts = params.get(paramName(n.name, "weight"))!;
        if (q && q.weightLevels > 0) {
          const u = q.weightF * params.get(paramName(n.name, "gamma"))![0];
          wts = fq(wts, -u, u, q.weightLevels, `w:${n.name}`, frozen);
        }
        r = conv(x, wts, params.get(paramName(n.name, "bias")) ?? null, L.k, L.cout, L.relu);
        break;
      }
      case "activation":
        r = { ...a, d: n.activation.kind === "relu" ? a.d.map((v) => Math.max(0, v)) : Float64Array.from(a.d) };
        break;
      case "add": {
        const out = new Float64Array(a.d.length);
        ins.forEach((b, j) => {
          const k = n.coeffs ? n.coeffs[j] : 1;
          for (let i = 0; i < out.length; i++) out[i] += k * b.d[i];
        });
        r = { ...a, d: out };
        break;
      }
      case "scale":
        r = { ...a, d: a.d.map((v) => v * n.factor) };
        break;
      case "concat": {
        const c = ins.reduce((s, b) => s + b.c, 0);
        const out = new Float64Array(a.h * a.w * c);
        for (let i = 0; i < a.h * a.w; i++) {
          let o = i * c;
          for (const b of ins) for (let j = 0; j < b.c; j++) out[o++] = b.d[i * b.c + j];
        }
        r = { d: out, h: a.h, w: a.w, c };
        break;
      }
      case "upsample_nearest":
      case "depth_to_space": {
        const s = n.op === "upsample_nearest" ? n.factor : n.block;
        const c = n.op === "upsample_nearest" ? a.c : a.c / (s * s);
        const H = a.h * s, W = a.w * s;
        const out = new Float64Array(H * W * c);
        for (let Y = 0; Y < H; Y++) for (let X = 0; X < W; X++) for (let ch = 0; ch < c; ch++) {
          const src = n.op === "upsample_nearest" ? ch : ((Y % s) * s + (X % s)) * c + ch;
          out[(Y * W + X) * c + ch] = a.d[(Math.floor(Y / s) * a.w + Math.floor(X / s)) * a.c + src];
        }
        r = { d: out, h: H, w: W, c };
        break;
      }
    }
    vals.push(r!);
  }
  return { nodes: vals.map((v) => v.d), qin };
}
