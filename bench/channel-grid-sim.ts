// Channel grids, simulated: would per-channel activation scales close the W8A8 gap of a static model?
// (Not a lowbit feature yet: this measures the idea before it is built.)
//
// The model runs on the FP32 plan node by node; after every node the integer plan quantizes, its f32 tensor is
// fake-quantized in place on
//   pt — the integer plan's own per-tensor grid (scale s, zero point z, [qmin, qmax]), or
//   pc — that grid shrunk per channel around z to hold the channel's calibrated [min, max]: s_c = f_c·s with
//        f_c = max(min_c/lo, max_c/hi) ≤ 1 (a shared zero point keeps zero padding exact). Only tensors read
//        solely by convs, adds and concats get channel grids (not the tensors feeding depth_to_space / output);
//        a concat of channel grids is a copy. A conv then reads channel-scaled codes through weights w·f_c,
//        quantized per output channel (8-bit symmetric max|w|) and divided by f_c again: the weight-precision
//        price of folding the channel scales into the next conv.
// Both rows use the same weight rounding and empirical bias correction (b_o −= Σ ΔW·E[x_c], as quantizeModel).
// Scores on centre crops of the eval set: PSNR-Y vs HR and fidelity vs FP32, beside the real integer plan (q8).
// Read pc against q8, not against pt: the FP32 plan writes a concat's operands straight into the concat buffer,
// so pt's in-place rounding of a concat onto its (wider) grid also coarsens an operand that something else reads
// later (the trunk tensor a residual add reads), where the integer plan requantizes a copy. pt therefore matches
// the integer plan tensor for tensor only up to the first such concat (`--layers` beside `bench/quant-accuracy.ts
// --layers`: identical to 0.01 dB on esrgan-slim-x2 up to LFF_1, then 2.4 dB low at LRL_1) and is a pessimistic
// per-tensor row. pc has no such error: a concat of channel grids is a copy, which is what the simulation does.
// With --no-alias every concat copies its operands and pt follows the integer plan (esrgan-thick-x2, the 8 crops:
// fidelity 48.53 vs 48.52 dB, ΔPSNR −0.083 vs −0.082 dB). --exact-adds (thick ×2: 50.87 dB, −0.043 dB) is what led to
// the 16-bit residual stream (QuantConfig.residualBits).
//
//   node --import tsx bench/channel-grid-sim.ts --model esrgan-thick-x2 [--crop 128] [--method percentile]
//        [--no-add] [--float-weights] [--no-bias-correction]
//   --no-add: adds and their operands stay per tensor (what works without a per-channel add kernel)
//   --float-weights: weights unquantized in pt and pc (activation grids alone)
//   --no-alias: concats copy their operands (no aliasing): pt then follows the integer plan tensor for tensor
//   --exact-adds: (implies --no-alias; pt only) add outputs stay f32, convs read them rounded on their grid
//   --layers: also print each quantized tensor's accumulated SQNR vs FP32 (compare bench/quant-accuracy.ts --layers)
import { parseArgs } from "node:util";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { loadCalibImages } from "../src/cli/model-options.ts";
import { listEvalSet, loadEvalPair } from "../src/metrics/evalset.ts";
import { psnrY } from "../src/metrics/psnr.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { Q8Plan } from "../src/graph/compile-q8.ts";
import { createUpscaler } from "../src/engine/upscaler-api.ts";
import type { Graph } from "../src/graph/ir.ts";
import type { QuantParams } from "../src/quant/params.ts";
import { centreCropPair } from "./util.ts";

const { values: a } = parseArgs({
  options: {
    model: { type: "string", default: "esrgan-thick-x2" }, crop: { type: "string", default: "128" },
    method: { type: "string", default: "percentile" }, calib: { type: "string", default: "data/calib" },
    data: { type: "string", default: "../shared/data/eval" }, "no-add": { type: "boolean", default: false },
    "float-weights": { type: "boolean", default: false }, "no-bias-correction": { type: "boolean", default: false },
    layers: { type: "boolean", default: false }, "no-alias": { type: "boolean", default: false },
    "exact-adds": { type: "boolean", default: false },
  },
});
const model = a.model!, crop = Number(a.crop), method = a.method as "minmax" | "percentile" | "mse";
const rt = await createRuntime({ backend: "simd" });
const g0 = await loadModel(model);
const scale = g0.meta.scale;
const t0 = Date.now();
const cal = await calibrate(g0, await loadCalibImages(a.calib!, scale), { runtime: rt });
console.log(`calibrated in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
const qm = quantizeModel(cal, { bits: "w8a8", method });
const g = cal.graph;
const qp = new Q8Plan(await createRuntime({ backend: "simd" }), qm, 16, 16, { ...qm.planOptions, fuse: false });
const grid: (QuantParams | null)[] = g.nodes.map(() => null);
qp.info.nodes.forEach((l, i) => { if (l.src >= 0 && l.domain === "q8" && !grid[l.src]) grid[l.src] = qp.info.grids[i]; });
qp.dispose();
const consumers = g.nodes.map(() => [] as number[]);
for (const n of g.nodes) for (const i of n.inputs) consumers[i].push(n.id);
const pcOk = g.nodes.map((n) => n.id !== g.output && n.op !== "input" && grid[n.id] !== null &&
  consumers[n.id].every((c) => ["conv2d", "add", "concat"].includes(g.nodes[c].op)) &&
  !(a["no-add"] && (n.op === "add" || consumers[n.id].some((c) => g.nodes[c].op === "add"))));
// per-channel factor f_c ≤ 1: the tensor grid shrunk around its zero point to hold channel c's calibrated range
const fac = g.nodes.map((n) => {
  const p = grid[n.id];
  if (!p || !pcOk[n.id]) return null;
  const st = cal.tensors[n.id].perChannel;
  const lo = p.scale * (p.qmin - p.zeroPoint), hi = p.scale * (p.qmax - p.zeroPoint);
  return Float64Array.from({ length: n.channels }, (_, c) => {
    const a = lo < 0 ? Math.min(0, st.min[c]) / lo : 0, b = hi > 0 ? Math.max(0, st.max[c]) / hi : 0;
    return Math.min(1, Math.max(a, b, 1e-3));
  });
});
console.log(`${fac.filter(Boolean).length} of ${grid.filter(Boolean).length} quantized tensors per channel`);

function quantWeights(gr: Graph, perChannel: boolean): Graph {
  if (a["float-weights"]) return gr;
  return {
    ...gr, nodes: gr.nodes.map((n) => {
      if (n.op !== "conv2d") return n;
      const f = perChannel ? fac[n.inputs[0]] : null;
      const { k, cin, cout } = n;
      const w = n.weights, out = new Float32Array(w.length);
      for (let o = 0; o < cout; o++) {
        let m = 0;
        for (let t = 0; t < k * k; t++) for (let c = 0; c < cin; c++) m = Math.max(m, Math.abs(w[(t * cin + c) * cout + o] * (f ? f[c] : 1)));
        const d = m / 127 || 1;
        for (let t = 0; t < k * k; t++) for (let c = 0; c < cin; c++) {
          const j = (t * cin + c) * cout + o, fc = f ? f[c] : 1;
          out[j] = (Math.round((w[j] * fc) / d) * d) / fc;
        }
      }
      let bias = n.bias;
      if (!a["no-bias-correction"]) {
        const mean = cal.tensors[n.inputs[0]].channelMean;
        bias = Float32Array.from({ length: cout }, (_, o) => {
          let d = 0;
          for (let t = 0; t < k * k; t++) for (let c = 0; c < cin; c++) { const j = (t * cin + c) * cout + o; d += (out[j] - w[j]) * mean[c]; }
          return (n.bias ? n.bias[o] : 0) - d;
        });
      }
      return { ...n, weights: out, bias };
    }),
  } as Graph;
}

const pairs = await listEvalSet(a.data!, scale);
const [lo, hi] = g.meta.inputRange;
const gPT = quantWeights(g, false), gPC = quantWeights(g, true);
// One runtime (WASM memory) per plan: they run interleaved.
const po = { noConcatAlias: a["no-alias"] || a["exact-adds"] };
const plans = {
  fp: new F32Plan(rt, g, crop, crop, po),
  pt: new F32Plan(await createRuntime({ backend: "simd" }), gPT, crop, crop, po),
  pc: new F32Plan(await createRuntime({ backend: "simd" }), gPC, crop, crop, po),
};
// --exact-adds (pt only): add outputs keep their f32 values (a wide integer residual stream); a conv reading one
// reads it rounded onto its own 8-bit grid (the copy such a design would requantize for the conv).
const exact = (id: number) => a["exact-adds"] && g.nodes[id].op === "add";
function fakeQuant(v: ReturnType<F32Plan["tensorView"]>, p: QuantParams, f: Float64Array | null): void {
  for (let c = 0; c < v.channels; c++) {
    const s = p.scale * (f ? f[c] : 1), inv = 1 / s;
    for (let q = 0; q < v.pixels; q++) {
      const j = v.offset + q * v.stride + c;
      const code = Math.min(p.qmax, Math.max(p.qmin, Math.round(v.data[j] * inv) + p.zeroPoint));
      v.data[j] = (code - p.zeroPoint) * s;
    }
  }
}
const layerAcc = g.nodes.map(() => ({ sig: 0, pt: 0, pc: 0 }));
const up = await createUpscaler(qm, { runtime: rt });
const sums: Record<string, number[]> = { fp: [], pt: [], pc: [], q8: [], fidpt: [], fidpc: [], fidq8: [] };
for (const pair of pairs) {
  const { lr, hr } = await loadEvalPair(pair, { channels: 3 });
  const { lr: lrc, hr: hrc, w, h } = centreCropPair(lr, hr, crop, scale);
  // The three plans step together, node by node, so each quantized tensor can be compared with FP32's.
  const outs: Record<string, Uint8Array> = {};
  const entries = Object.entries(plans);
  for (const [, plan] of entries) {
    const x = plan.inputView(w, h);
    for (let i = 0; i < w * h * 3; i++) x[i] = lo + (lrc.data[i] * (hi - lo)) / 255;
  }
  for (const n of g.nodes) {
    for (const [name, plan] of entries) {
      const [s0, s1] = plan.nodeSteps[n.id];
      const saved: [ReturnType<F32Plan["tensorView"]>, Float32Array][] = [];
      if (name === "pt" && n.op === "conv2d") {
        for (const i of n.inputs) {
          if (!exact(i)) continue;
          const v = plan.tensorView(i, w, h);
          saved.push([v, v.data.slice(v.offset, v.offset + v.pixels * v.stride)]);
          fakeQuant(v, grid[i]!, null);
        }
      }
      if (s1 > s0) plan.runSteps(w, h, s0, s1);
      for (const [v, d] of saved) v.data.set(d, v.offset);
      const p = grid[n.id];
      if (name === "fp" || !p) continue;
      if (name === "pc" && n.op === "concat" && fac[n.id]) continue; // per-channel concat: a copy
      if (name === "pt" && exact(n.id)) continue;
      fakeQuant(plan.tensorView(n.id, w, h), p, name === "pc" ? fac[n.id] : null);
    }
    if (!a.layers || !grid[n.id]) continue;
    const vf = plans.fp.tensorView(n.id, w, h), vt = plans.pt.tensorView(n.id, w, h), vc = plans.pc.tensorView(n.id, w, h);
    const L = layerAcc[n.id];
    for (let q = 0; q < vf.pixels; q++) {
      for (let c = 0; c < vf.channels; c++) {
        const f = vf.data[vf.offset + q * vf.stride + c];
        L.sig += f * f;
        L.pt += (vt.data[vt.offset + q * vt.stride + c] - f) ** 2;
        L.pc += (vc.data[vc.offset + q * vc.stride + c] - f) ** 2;
      }
    }
  }
  for (const [name, plan] of entries) {
    const o = plan.tensorView(g.output, w, h), img = new Uint8Array(o.pixels * 3);
    for (let q = 0; q < o.pixels; q++) for (let c = 0; c < 3; c++) img[q * 3 + c] = Math.min(255, Math.max(0, Math.round(((o.data[o.offset + q * o.stride + c] - lo) / (hi - lo)) * 255)));
    outs[name] = img;
  }
  outs.q8 = (await up.upscale(lrc)).data as Uint8Array;
  const im = (d: Uint8Array) => ({ width: w * scale, height: h * scale, channels: 3, data: d });
  const row: string[] = [];
  for (const k of ["fp", "pt", "pc", "q8"]) { const v = psnrY(im(outs[k]), hrc, scale); sums[k].push(v); row.push(`${k} ${v.toFixed(4)}`); }
  for (const k of ["pt", "pc", "q8"]) { const v = psnrY(im(outs[k]), im(outs.fp), scale); sums["fid" + k].push(v); row.push(`fid-${k} ${v.toFixed(2)}`); }
  console.log(pair.name.padEnd(10), row.join("  "));
}
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
console.log("mean      ", Object.entries(sums).map(([k, v]) => `${k} ${mean(v).toFixed(4)}`).join("  "));
console.log("Δ vs fp:   pt", (mean(sums.pt) - mean(sums.fp)).toFixed(4), " pc", (mean(sums.pc) - mean(sums.fp)).toFixed(4), " q8", (mean(sums.q8) - mean(sums.fp)).toFixed(4));
if (a.layers) {
  console.log("\n# accumulated SQNR vs FP32 per quantized tensor (dB), all crops: per-tensor grid (pt) / channel grids (pc)");
  const db = (x: number, e: number) => (e === 0 ? "inf" : (10 * Math.log10(x / e)).toFixed(2));
  for (const n of g.nodes) {
    const L = layerAcc[n.id];
    if (grid[n.id]) console.log(`${String(n.id).padStart(4)} ${n.name.padEnd(30)} ${n.op.padEnd(14)} pt ${db(L.sig, L.pt).padStart(6)}  pc ${db(L.sig, L.pc).padStart(6)}${fac[n.id] ? "" : "  (per tensor)"}`);
  }
}
