// Error budget of a W8A8 model: which tensors cost how much fidelity, and what more precision
// would buy. Fake quantization inside the FP32 plan (no integer kernels), on LR centre crops:
//
//   node --import tsx bench/quant-budget.ts [--model psnr-small-x2] [--images fruits,messi5,aero1,building] [--crop 96]
//
// The FP32 plan runs node by node; after each node its tensor is rounded onto the grid the
// quantized model gives it (fakeQuantize = quantize→dequantize, the same f32 ABI arithmetic),
// optionally only for a group of tensors, or at more bits on the same range. Conv weights are
// either FP32 or the model's dequantized int8 codes (+ corrected biases). Metric: fidelity =
// PSNR-Y (peak 255, uint8 output, shave = scale) against the FP32 output, per crop. The
// simulation tracks the real Q8Plan closely (psnr-small ×2: 44.93 vs 45.06 dB mean); its
// concats round each input onto the concat grid like compile-q8's per-tensor concats.
//
// Residual stream: "stream@B" keeps every add output read by another add (the RDN trunk
// LRL_d = LFF_d + LRL_{d−1}) at B bits for the add chain, while its other readers (convs,
// concats) read an 8-bit copy — an int16 residual stream when B = 16. A scale(1) "read" node
// inserted after each such add carries the 8-bit copy.
//
// Independent error sources add in power, so the per-group lines show the budget: a target
// fidelity F needs Σ_g 10^(−F_g/10) ≤ 10^(−F/10).
import { parseArgs } from "node:util";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { loadCalibImages } from "../src/cli/model-options.ts";
import { listEvalSet, loadEvalPair } from "../src/metrics/evalset.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { affineParams, fakeQuantize, type QuantParams } from "../src/quant/params.ts";
import type { Graph, Node } from "../src/graph/ir.ts";
import { resolve, join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: a } = parseArgs({ options: { model: { type: "string" }, images: { type: "string" }, crop: { type: "string" }, data: { type: "string" }, calib: { type: "string" }, method: { type: "string" } } });
const CROP = Number(a.crop ?? 96);
const data = resolve(a.data ?? process.env.LOWBIT_EVAL_DIR ?? join(ROOT, "..", "..", "shared", "data", "eval"));
const rt = await createRuntime({ backend: "simd" });
const graph = await loadModel(a.model ?? "psnr-small-x2");
const S = graph.meta.scale;
const cal = await calibrate(graph, await loadCalibImages(resolve(a.calib ?? join(ROOT, "data", "calib")), S), { runtime: rt });
const g0 = cal.graph;
const qm = quantizeModel(cal, { bits: "w8a8", method: (a.method ?? "percentile") as "percentile" });
const names = (a.images ?? "fruits,messi5,aero1,building").split(",");
const [ilo, ihi] = g0.meta.inputRange, [olo, ohi] = g0.meta.outputRange;
const crops: { name: string; x: Float32Array; w: number; h: number }[] = [];
for (const p of (await listEvalSet(data, S)).filter((p) => names.includes(p.name))) {
  const { lr } = await loadEvalPair(p, { channels: 3 });
  const w = Math.min(CROP, lr.width), h = Math.min(CROP, lr.height), x0 = (lr.width - w) >> 1, y0 = (lr.height - h) >> 1;
  const x = new Float32Array(w * h * 3);
  let d = 0;
  for (let y = y0; y < y0 + h; y++) for (let xx = x0; xx < x0 + w; xx++) for (let c = 0; c < 3; c++) x[d++] = ilo + (lr.data[(y * lr.width + xx) * 3 + c] * (ihi - ilo)) / 255;
  crops.push({ name: p.name, x, w, h });
}

// Graph with a scale(1) "read" node after each stream add; non-add readers read it.
const users = g0.nodes.map(() => [] as Node[]);
for (const n of g0.nodes) for (const i of n.inputs) users[i].push(n);
const isStream = (n: Node) => n.op === "add" && users[n.id].some((u) => u.op === "add");
const nodes: Node[] = [], orig: number[] = [], readOf = new Map<number, number>(), newId = new Map<number, number>();
for (const n of g0.nodes) {
  const inputs = n.inputs.map((i) => (n.op !== "add" && readOf.has(i) ? readOf.get(i)! : newId.get(i)!));
  const id = nodes.length;
  nodes.push({ ...n, id, inputs } as Node);
  orig.push(n.id);
  newId.set(n.id, id);
  if (isStream(n)) {
    const r = nodes.length;
    nodes.push({ id: r, name: `${n.name}/read`, op: "scale", factor: 1, inputs: [id], channels: n.channels, spatial: n.spatial } as unknown as Node);
    orig.push(n.id);
    readOf.set(n.id, r);
  }
}
const withWeights = (q: boolean): Graph => ({
  ...g0, input: newId.get(g0.input)!, output: newId.get(g0.output)!,
  nodes: nodes.map((n) => {
    const qw = qm.weights[orig[n.id]];
    if (!q || n.op !== "conv2d" || !qw) return n;
    const w = new Float32Array(n.weights.length);
    for (let i = 0; i < w.length; i++) w[i] = qw.codes[i] * qw.scales[i % n.cout];
    return { ...n, weights: w, bias: qw.bias ?? n.bias } as Node;
  }),
});
const ref0 = new F32Plan(rt, g0, CROP, CROP);
const toY = (o: Float32Array, n: number) => {
  const y = new Float64Array(n);
  const u = (v: number) => Math.round(Math.min(Math.max((v - olo) / (ohi - olo), 0), 1) * 255);
  for (let i = 0; i < n; i++) y[i] = 16 + (65.481 * u(o[3 * i]) + 128.553 * u(o[3 * i + 1]) + 24.966 * u(o[3 * i + 2])) / 255;
  return y;
};
const ref = crops.map((c) => toY(ref0.run(c.x, c.w, c.h), S * S * c.w * c.h));
ref0.dispose();
const plans = { fp: new F32Plan(rt, withWeights(false), CROP, CROP), q: new F32Plan(rt, withWeights(true), CROP, CROP) };

/** A grid at `bits` on the model's range of the tensor (bits > 8: same range, finer step). */
function gridAt(id: number, bits: number): QuantParams {
  const t = qm.tensors[id];
  if (bits <= 8 || id === g0.output) return affineParams(t.range[0], t.range[1], t.bits);
  const lo = Math.min(t.range[0], 0), hi = Math.max(t.range[1], 0), qmax = 2 ** bits - 1, scale = Math.fround((hi - lo) / qmax);
  return { bits, signed: false, scale, zeroPoint: Math.round(-lo / scale), qmin: 0, qmax };
}
interface Sim { weights: boolean; only?: RegExp; actBits?: number; streamBits?: number; perChannel?: RegExp }
function run(s: Sim): number[] {
  const plan = s.weights ? plans.q : plans.fp;
  const gg = plan.info.graph;
  return crops.map((c, ci) => {
    plan.inputView(c.w, c.h).set(c.x);
    for (const n of gg.nodes) {
      plan.runSteps(c.w, c.h, plan.nodeSteps[n.id][0], plan.nodeSteps[n.id][1]);
      const o = orig[n.id];
      if (n.id === gg.input || qm.tensors[o].domain !== "q8" || (s.only && !s.only.test(g0.nodes[o].name))) continue;
      const v = plan.tensorView(n.id, c.w, c.h);
      let ps: QuantParams[];
      if (s.perChannel?.test(g0.nodes[o].name)) {
        const pc = cal.tensors[o].perChannel;
        ps = Array.from({ length: v.channels }, (_, ch) => affineParams(Math.min(0, pc.min[ch]), Math.max(0, pc.max[ch]), 8));
      } else {
        const stream = isStream(g0.nodes[o]) && gg.nodes[n.id].op === "add" && s.streamBits !== undefined;
        if (stream && s.streamBits! >= 32) continue;
        ps = [gridAt(o, stream ? s.streamBits! : (s.actBits ?? 8))];
      }
      for (let i = 0; i < v.pixels; i++) for (let ch = 0; ch < v.channels; ch++) {
        const k = v.offset + i * v.stride + ch;
        v.data[k] = fakeQuantize(v.data[k], ps[ps.length === 1 ? 0 : ch]);
      }
    }
    const y = toY(plan.outputView(c.w, c.h), S * S * c.w * c.h);
    const W2 = S * c.w;
    let se = 0, cnt = 0;
    for (let yy = S; yy < S * c.h - S; yy++) for (let xx = S; xx < W2 - S; xx++) (se += (y[yy * W2 + xx] - ref[ci][yy * W2 + xx]) ** 2), cnt++;
    return se === 0 ? Infinity : 10 * Math.log10((255 * 255) / (se / cnt));
  });
}
const NONE = /^$/;
const exps: [string, Sim][] = [
  ["W8A8 (weights + activations)", { weights: true }],
  ["int8 weights only", { weights: true, only: NONE }],
  ["8-bit activations only", { weights: false }],
  ["  head conv output (F_m1)", { weights: false, only: /^F_m1$/ }],
  ["  F_0", { weights: false, only: /^F_0$/ }],
  ["  trunk adds (LRL_d)", { weights: false, only: /^LRL_\d+$/ }],
  ["  LFF_d", { weights: false, only: /^LFF_/ }],
  ["  dense ReLU convs F_d_k", { weights: false, only: /^F_\d+_\d+$/ }],
  ["  RDB concats", { weights: false, only: /^RDB_Concat/ }],
  ["  LRLs_Concat", { weights: false, only: /^LRLs_Concat$/ }],
  ["  GFF_1, GFF_2", { weights: false, only: /^GFF_/ }],
  ["  FDF", { weights: false, only: /^FDF$/ }],
  ["  UPN1, UPN2", { weights: false, only: /^UPN[12]$/ }],
  ["  UPN3", { weights: false, only: /^UPN3$/ }],
  ["activations at 9 bits", { weights: false, actBits: 9 }],
  ["activations at 10 bits", { weights: false, actBits: 10 }],
  ["activations, per-channel min-max grids", { weights: false, perChannel: /./ }],
  ["  F_m1 alone, per-channel grid", { weights: false, only: /^F_m1$/, perChannel: /./ }],
  ["W8A8 + int16 residual stream", { weights: true, streamBits: 16 }],
  ["  trunk adds alone, 16-bit stream", { weights: false, only: /^LRL_\d+$/, streamBits: 16 }],
];
const mean = (r: number[]) => r.reduce((x, y) => x + y, 0) / r.length;
process.stdout.write(`# ${g0.meta.name} W8A8 ${a.method ?? "percentile"}: fidelity (dB) on ${CROP}² LR centre crops: ${crops.map((c) => c.name).join(", ")}\n`);
for (const [name, s] of exps) {
  const r = run(s);
  process.stdout.write(`${name.padEnd(40)} ${r.map((x) => x.toFixed(2).padStart(6)).join(" ")}   mean ${mean(r).toFixed(2)}\n`);
}
plans.fp.dispose();
plans.q.dispose();
