// CADyQ on the held-out eval set: trains on data/calib (never the eval images), then scores PSNR-Y / SSIM-Y,
// FAB and BitOPs per image in patch mode (LR tile core 90 + margin 3 → 96×96 regions, cadyq.md §6) and
// whole-image mode, beside fixed-bit PAMS rows (single-candidate CADyQ: the same layers, grid and training).
//
//   node --import tsx bench/cadyq-accuracy.ts --model esrgan-slim-x2 [--configs fp32,cadyq,w8a8,w8a6,w8a4]
//        [--cand 4,6,8] [--steps 300] [--lambda 2e-4] [--lrw 0] [--patch 48] [--batch 4] [--images a,b] [--json out.json] [--save dir]
import { writeFileSync, mkdirSync } from "node:fs";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { evalDir } from "../test/util/eval-data.ts";
import { loadModel } from "../src/models/registry.ts";
import { Upscaler, fp32Model, type CompilableModel } from "../src/engine/upscaler-api.ts";
import { listEvalSet, loadEvalPair } from "../src/metrics/evalset.ts";
import { scoreSR } from "../src/metrics/score.ts";
import { init } from "../src/runtime/runtime.ts";
import { loadCalibImages } from "../src/cli/model-options.ts";
import { quantizeCadyqDetailed } from "../src/methods/cadyq/quantize.ts";
import { saveLowbit } from "../src/io/lowbit-file.ts";
import { DynamicQuantizedModel } from "../src/methods/dynamic/model.ts";

const { values: a } = parseArgs({
  options: {
    model: { type: "string", default: "esrgan-slim-x2" }, configs: { type: "string", default: "cadyq,w8a8,w8a6,w8a4" },
    steps: { type: "string", default: "300" }, lambda: { type: "string" }, lrw: { type: "string", default: "0" }, patch: { type: "string", default: "48" },
    batch: { type: "string", default: "4" }, images: { type: "string" }, json: { type: "string" }, save: { type: "string" },
    data: { type: "string" }, calib: { type: "string" }, modes: { type: "string", default: "patch,whole" },
    lralpha: { type: "string" }, lrsel: { type: "string" }, cand: { type: "string", default: "4,6,8" },
  },
});
// Defaults: the shared eval set found beside the checkout, and this checkout's data/calib.
a.data ??= evalDir();
a.calib ??= fileURLToPath(new URL("../data/calib", import.meta.url));
const rt = await init();
const graph = await loadModel(a.model!);
const scale = graph.meta.scale;
const calib = await loadCalibImages(a.calib!, scale, 512);
let pairs = await listEvalSet(a.data!, scale);
if (a.images) pairs = pairs.filter((p) => a.images!.split(",").includes(p.name));
const evalImgs = await Promise.all(pairs.map((p) => loadEvalPair(p, { channels: 3 })));
const out: Record<string, unknown>[] = [];

for (const cfg of a.configs!.split(",")) {
  // "fp32": the same tiling without quantization (the time and score reference; FAB 32, BitOPs 100 %).
  let model: CompilableModel, trainMs = 0;
  if (cfg === "fp32") model = fp32Model(graph);
  else {
    const candidates = cfg === "cadyq" ? a.cand!.split(",").map(Number) : [Number(/^w8a(\d)$/.exec(cfg)![1])];
    const t0 = performance.now();
    const res = await quantizeCadyqDetailed(graph, calib, {
      candidates, steps: Number(a.steps), lambdaBit: a.lambda ? Number(a.lambda) : undefined, lrWeights: Number(a.lrw), patch: Number(a.patch), batch: Number(a.batch),
      lrAlpha: a.lralpha ? Number(a.lralpha) : undefined, lrSelector: a.lrsel ? Number(a.lrsel) : undefined, runtime: rt,
    });
    trainMs = performance.now() - t0;
    model = res.model;
    if (a.save) {
      mkdirSync(a.save, { recursive: true });
      writeFileSync(`${a.save}/${a.model}-${cfg}.lowbit`, saveLowbit(res.model));
    }
    const tr = res.train;
    const tail = (v: number[]) => v.slice(-20).reduce((s, x) => s + x, 0) / Math.max(1, Math.min(20, v.length));
    console.log(`${a.model} ${cfg}: trained in ${(trainMs / 1000).toFixed(1)} s (loop ${(tr.ms / 1000).toFixed(1)} s), last-20 loss ${tail(tr.losses).toExponential(3)} train FAB ${tail(tr.fab).toFixed(2)}`);
  }
  for (const mode of a.modes!.split(",")) {
    const whole = mode === "whole";
    const maxLr = Math.max(...evalImgs.map((e) => Math.max(e.lr.width, e.lr.height)));
    const up = new Upscaler(model, rt, whole ? { tile: maxLr, margin: 0 } : { tile: 90, margin: 3 });
    const rows: { name: string; psnr: number; ssim: number; fab: number; bitops: number; fp32: number; ms: number }[] = [];
    // Mean bits per layer over every tile of every image: does the selector learn a layer allocation?
    let layerNames: string[] = [];
    let layerBits: number[] = [];
    let tiles = 0;
    for (const e of evalImgs) {
      const t = performance.now();
      const sr = await up.upscale(e.lr);
      const ms = performance.now() - t;
      const s = scoreSR(sr, e.hr, scale);
      const bm = sr.bitMap;
      if (bm && !layerNames.length) { layerNames = bm.layers; layerBits = bm.layers.map(() => 0); }
      for (const t of bm?.tiles ?? []) { t.bits.forEach((b, i) => (layerBits[i] += b)); tiles++; }
      rows.push({ name: e.name, psnr: s.psnrY, ssim: s.ssimY, fab: bm?.fab ?? 32, bitops: bm?.bitops ?? 1, fp32: bm?.fp32Bitops ?? 1, ms });
    }
    up.dispose();
    const m = (f: (r: (typeof rows)[number]) => number) => rows.reduce((s, r) => s + f(r), 0) / rows.length;
    const bitopsRatio = rows.reduce((s, r) => s + r.bitops, 0) / rows.reduce((s, r) => s + r.fp32, 0);
    console.log(`  ${mode.padEnd(5)} PSNR-Y ${m((r) => r.psnr).toFixed(4)} SSIM-Y ${m((r) => r.ssim).toFixed(4)} FAB ${m((r) => r.fab).toFixed(3)} BitOPs/FP32 ${bitopsRatio.toFixed(4)} ms/img ${m((r) => r.ms).toFixed(0)}`);
    console.log("        " + rows.map((r) => `${r.name} ${r.psnr.toFixed(3)}/${r.fab.toFixed(2)}`).join("  "));
    console.log("        bits per layer: " + layerNames.map((n, i) => `${n} ${(layerBits[i] / tiles).toFixed(2)}`).join("  "));
    out.push({ model: a.model, config: cfg, mode, trainS: trainMs / 1000, psnr: m((r) => r.psnr), ssim: m((r) => r.ssim), fab: m((r) => r.fab), bitopsRatio, images: rows, options: model instanceof DynamicQuantizedModel ? model.info.options : null });
  }
}
if (a.json) writeFileSync(a.json, JSON.stringify(out, null, 1));
