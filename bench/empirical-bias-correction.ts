// Sequential empirical bias correction, measured on the real integer plan (not a lowbit feature: this measures the idea).
//
// quantizeModel's bias correction removes the mean output shift of *weight* rounding (b −= ΣΔW·E[x]). Empirical bias
// correction (Finkelstein et al. 2019, "Fighting quantization bias with bias"; Nagel et al. 2019, DFQ §4.2) also
// removes the shift that activation rounding and clipping cause upstream: the FP32 and integer plans run a mosaic of the
// calibration patches (centre crop² of each) side by side, conv by conv in graph order; after each integer conv the
// per-channel mean of (dequantized output − FP32 output) is subtracted from its bias (the int32 bias is patched in
// the plan, Q8Plan.convBiasAt, and the conv re-run), so every later layer is corrected on already-corrected inputs.
// With a fused ReLU only pixels where both outputs are positive count (there the difference is the pre-activation's).
// Scores: W8A8 (--method) with and without the correction on centre crops of the eval set (ΔPSNR-Y vs FP32, fidelity).
//
//   node --import tsx bench/empirical-bias-correction.ts --model esrgan-thick-x2 [--crop 96] [--ecrop 128] [--iters 1] [--only <conv name regex>]
import { parseArgs } from "node:util";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel, QuantizedModel } from "../src/quant/quantize-model.ts";
import { loadCalibImages } from "../src/cli/model-options.ts";
import { listEvalSet, loadEvalPair } from "../src/metrics/evalset.ts";
import { psnrY } from "../src/metrics/psnr.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { Q8Plan } from "../src/graph/compile-q8.ts";
import { createUpscaler } from "../src/engine/upscaler-api.ts";
import { quantizeBias } from "../src/kernels/requant.ts";
import { centreCropPair } from "./util.ts";

const { values: a } = parseArgs({ options: {
  model: { type: "string", default: "esrgan-slim-x2" }, crop: { type: "string", default: "64" }, ecrop: { type: "string", default: "128" },
  method: { type: "string", default: "percentile" }, iters: { type: "string", default: "1" }, only: { type: "string", default: "all" },
  images: { type: "string" }, calib: { type: "string", default: "data/calib" }, data: { type: "string", default: "../shared/data/eval" },
} });
const model = a.model!, crop = Number(a.crop);
const rt = await createRuntime({ backend: "simd" });
const g0 = await loadModel(model);
const scale = g0.meta.scale;
let t0 = Date.now();
const calImgs = await loadCalibImages(a.calib!, scale);
const cal = await calibrate(g0, calImgs, { runtime: rt });
console.log(`calibrated in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
const qm = quantizeModel(cal, { bits: "w8a8", method: a.method as "percentile" });
const g = cal.graph;
// a mosaic of centre crops of the calibration patches: one plan pass corrects each conv on all of them
const cols = 4, rows = Math.ceil(calImgs.length / cols);
const W = cols * crop, H = rows * crop;
const mosaic = new Uint8Array(W * H * 3);
calImgs.forEach((im, i) => {
  const x0 = (im.width - crop) >> 1, y0 = (im.height - crop) >> 1, ox = (i % cols) * crop, oy = Math.floor(i / cols) * crop;
  for (let y = 0; y < crop; y++) for (let x = 0; x < crop; x++) for (let c = 0; c < 3; c++)
    mosaic[((oy + y) * W + ox + x) * 3 + c] = im.data[((y0 + y) * im.width + x0 + x) * 3 + c];
});
t0 = Date.now();
const rtF = await createRuntime({ backend: "simd" }), rtQ = await createRuntime({ backend: "simd" });
const fp = new F32Plan(rtF, g, W, H);
const qp = new Q8Plan(rtQ, qm, W, H, { ...qm.planOptions, fuse: false });
const [lo, hi] = g.meta.inputRange;
for (const plan of [fp, qp]) { const x = plan.inputView(W, H); for (let i = 0; i < W * H * 3; i++) x[i] = lo + (mosaic[i] * (hi - lo)) / 255; }
const newBias = new Map<number, Float32Array>();
const lnodes = qp.info.nodes;
let li = 0, nCorr = 0;
for (const n of g.nodes) {
  fp.runSteps(W, H, fp.nodeSteps[n.id][0], fp.nodeSteps[n.id][1]);
  let at = -1;
  while (at < 0 && li < lnodes.length) {
    qp.runSteps(W, H, qp.nodeSteps[li][0], qp.nodeSteps[li][1]);
    if (lnodes[li].src === n.id) at = li;
    li++;
  }
  if (at < 0 || n.op !== "conv2d" || lnodes[at].domain !== "q8") continue;
  const bp = qp.convBiasAt(at);
  if (bp === null) continue;
  if (a.only !== "all" && !new RegExp(a.only!).test(n.name)) continue;
  const qw = qm.weights[n.id]!;
  const gy = qp.info.grids[at]!, gx = qp.info.grids[lnodes[at].inputs[0]]!;
  const relu = n.activation.kind !== "linear";
  let bias = Float32Array.from(qw.bias ?? n.bias ?? new Float32Array(n.cout));
  for (let it = 0; it < Number(a.iters); it++) {
    const v = fp.tensorView(n.id, W, H);
    const { ptr, stride } = qp.tensorAt(at);
    const u8 = rtQ.arena.u8, f32 = rtF.arena.f32;
    const sum = new Float64Array(n.cout), cnt = new Float64Array(n.cout);
    for (let p = 0; p < v.pixels; p++) for (let c = 0; c < n.cout; c++) {
      const f = f32[v.offset + p * v.stride + c];
      const q = gy.scale * (u8[ptr + p * stride + c] - gy.zeroPoint);
      if (relu && (f <= 0 || q <= 0)) continue;
      sum[c] += q - f; cnt[c]++;
    }
    for (let c = 0; c < n.cout; c++) if (cnt[c] > 0) bias[c] -= sum[c] / cnt[c];
    const bq = quantizeBias(new Int32Array(n.cout), bias, gx.scale, qw.scales);
    const i32 = new Int32Array(rtQ.arena.u8.buffer, bp, n.cout);
    i32.set(bq);
    qp.runSteps(W, H, qp.nodeSteps[at][0], qp.nodeSteps[at][1]);
  }
  newBias.set(n.id, bias);
  nCorr++;
}
console.log(`corrected ${nCorr} convs in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
fp.dispose(); qp.dispose();
// the corrected f32 biases, so a recompiled plan quantizes them to the same int32 values
const qm2 = new QuantizedModel(g, qm.tensors, qm.weights.map((w, id) => (w && newBias.has(id) ? { ...w, bias: newBias.get(id)! } : w)), qm.quantConfig);
qm2.planOptions = qm.planOptions;

// score on centre crops of the eval images
const ec = Number(a.ecrop);
const pairs = (await listEvalSet(a.data!, scale)).filter((p) => !a.images || a.images.split(",").includes(p.name));
const upF = await createUpscaler(g, { runtime: rt });
const up1 = await createUpscaler(qm, { runtime: rt });
const up2 = await createUpscaler(qm2, { runtime: rt });
const S = { fp: 0, q: 0, e: 0, fq: 0, fe: 0 };
for (const pair of pairs) {
  const { lr, hr } = await loadEvalPair(pair, { channels: 3 });
  const { lr: lrc, hr: hrc } = centreCropPair(lr, hr, ec, scale);
  const oF = await upF.upscale(lrc), o1 = await up1.upscale(lrc), o2 = await up2.upscale(lrc);
  const r = { fp: psnrY(oF, hrc, scale), q: psnrY(o1, hrc, scale), e: psnrY(o2, hrc, scale), fq: psnrY(o1, oF, scale), fe: psnrY(o2, oF, scale) };
  for (const k of Object.keys(S) as (keyof typeof S)[]) S[k] += r[k] / pairs.length;
  console.log(pair.name.padEnd(10), `fp ${r.fp.toFixed(4)} q8 ${(r.q - r.fp).toFixed(4)} (${r.fq.toFixed(2)})  ebc ${(r.e - r.fp).toFixed(4)} (${r.fe.toFixed(2)})`);
}
console.log("mean      ", `fp ${S.fp.toFixed(4)} q8 ${(S.q - S.fp).toFixed(4)} (${S.fq.toFixed(2)})  ebc ${(S.e - S.fp).toFixed(4)} (${S.fe.toFixed(2)})`);
