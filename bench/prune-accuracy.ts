/**
 * Pruning accuracy: PSNR/SSIM-Y vs conv MACs on the shared eval set (held out) for one-shot N:M,
 * SLS, filter pruning (data, L1), with and without fine-tuning, and with W8A8 on top.
 * Training/calibration data: data/calib (hr/ + lr_x<S>/, never the eval images).
 *
 *   node --import tsx bench/prune-accuracy.ts --model esrgan-medium-x2 [--steps 150] [--batch 4] [--patch 48]
 *        [--only dense,denseft,nm,nmpairs,sls,slspairs,filter] [--pair-n 8,4] [--budgets 0.5,0.25] [--criteria data,l1] [--images a,b]
 *        [--json out.jsonl] [--save DIR] [--score-lr X] [--lambda X]   (SLS options; defaults: the library's)
 *
 * `slspairs` is SLS with pair-structured masks (N learned in steps of 2, the int8 pair kernel's pattern); --save writes
 * the SLS models as FP32 .lowbit files (DIR/<model>-sls[-pairs].lowbit) for speed runs (bench/nm-model.ts --model-file).
 *
 * Every row states its training steps and wall time; ms is the mean per-image upscale time of the
 * evaluated model in this process (same run as the dense row).
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeLowbitFile } from "../src/io/lowbit-file.ts";
import { parseArgs } from "node:util";
import { init } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { evaluate } from "../src/cli/eval.ts";
import { loadTrainData } from "../src/cli/finetune.ts";
import { finetune } from "../src/train/finetune.ts";
import type { Graph } from "../src/graph/ir.ts";
import { graphMacs, oneShotNm } from "../src/methods/prune/nm-mask.ts";
import { nmPatternName } from "../src/kernels/nm-conv.ts";
import { slsPrune } from "../src/methods/prune/sls.ts";
import { filterPrune } from "../src/methods/prune/filter.ts";
import { convInputStats } from "../src/methods/prune/criteria.ts";

const { values } = parseArgs({ options: {
  model: { type: "string", default: "esrgan-medium-x2" }, steps: { type: "string", default: "150" }, batch: { type: "string", default: "4" },
  patch: { type: "string", default: "48" }, only: { type: "string" }, images: { type: "string" }, json: { type: "string" },
  data: { type: "string", default: "/work/shared/data/eval" }, budgets: { type: "string" }, criteria: { type: "string" }, "pair-n": { type: "string" }, calib: { type: "string", default: "data/calib" },
  save: { type: "string" }, "score-lr": { type: "string" }, lambda: { type: "string" },
} });
await init();
const name = values.model!;
const steps = Number(values.steps), batch = Number(values.batch), patch = Number(values.patch);
const only = values.only ? new Set(values.only.split(",")) : null;
const images = values.images ? values.images.split(",") : undefined;
const g = await loadModel(name);
const data = await loadTrainData(values.calib!, g.meta.scale);
const dense = graphMacs(g).effective;

const rows: string[] = [];
async function row(label: string, m: Graph, trainMs: number, stepsUsed: number, w8a8 = false): Promise<void> {
  const r = await evaluate({ model: m, data: values.data!, images, ...(w8a8 ? { bits: "w8a8", calib: values.calib } : {}) });
  const msMean = r.images.reduce((a, x) => a + x.ms, 0) / r.images.length;
  const macs = graphMacs(m).effective / dense;
  const line = `| ${label}${w8a8 ? " + W8A8" : ""} | ${(100 * macs).toFixed(1)} % | ${r.mean.gmacs!.toFixed(2)} | ${r.mean.psnr.toFixed(4)} | ${r.mean.ssim.toFixed(4)} | ${stepsUsed} | ${(trainMs / 1000).toFixed(0)} s | ${msMean.toFixed(0)} |`;
  rows.push(line);
  console.log(line);
  if (values.json) appendFileSync(values.json, JSON.stringify({ model: name, label, w8a8, macs, gmacs: r.mean.gmacs, psnr: r.mean.psnr, ssim: r.mean.ssim, steps: stepsUsed, trainMs, ms: msMean }) + "\n");
}
const want = (k: string) => !only || only.has(k);
const ft = async (m: Graph): Promise<{ graph: Graph; ms: number }> => {
  const r = await finetune(m, data, { quant: null, steps, batch, patch, seed: 1 });
  return { graph: r.graph, ms: r.ms };
};

console.log(`${name}: ${steps} steps × batch ${batch} × ${patch}² LR patches (L1 to HR, data/calib); eval ${values.data}`);
console.log("| config | MACs | GMACs/img | PSNR-Y | SSIM-Y | steps | train | ms/img |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
if (want("dense")) {
  await row("dense FP32", g, 0, 0);
  await row("dense", g, 0, 0, true);
}
if (only?.has("denseft")) {
  // Control: the same fine-tuning without pruning (fine-tuning alone moves PSNR on these models).
  const f = await ft(g);
  await row("dense + fine-tune (control)", f.graph, f.ms, steps);
}
if (only?.has("nmpairs")) {
  // Plain vs pair-structured N:M ("N:Mp", the int8 pair kernel's pattern) at the same N: one-shot (FP32 and
  // W8A8), then the same fine-tune for both when --steps > 0.
  for (const n of (values["pair-n"] ?? "8,4").split(",").map(Number)) {
    for (const pairs of [false, true]) {
      const p = { n, m: 32, ...(pairs ? { pairs: true } : {}) };
      const one = oneShotNm(g, p);
      await row(`N:M ${nmPatternName(p)} one-shot`, one, 0, 0);
      await row(`N:M ${nmPatternName(p)} one-shot`, one, 0, 0, true);
      if (steps > 0) {
        const t = Date.now();
        const r = await slsPrune(g, data, { fixedN: n, m: 32, pairs, steps, searchSteps: 0, budget: 1, batch, patch });
        await row(`N:M ${nmPatternName(p)} + fine-tune`, r.graph, Date.now() - t, steps);
        await row(`N:M ${nmPatternName(p)} + fine-tune`, r.graph, Date.now() - t, steps, true);
      }
    }
  }
}
if (want("nm")) {
  for (const [n, m] of [[8, 32], [2, 4]]) {
    const one = oneShotNm(g, { n, m });
    await row(`N:M ${n}:${m} one-shot`, one, 0, 0);
    const t = Date.now();
    const r = await slsPrune(g, data, { fixedN: n, m, steps, searchSteps: 0, budget: 1, batch, patch });
    await row(`N:M ${n}:${m} + fine-tune`, r.graph, Date.now() - t, steps);
    await row(`N:M ${n}:${m} + fine-tune`, r.graph, Date.now() - t, steps, true);
  }
}
for (const pairs of [false, true]) {
  if (pairs ? !only?.has("slspairs") : !want("sls")) continue;
  const t = Date.now();
  const r = await slsPrune(g, data, { budget: 0.25, steps, batch, patch, pairs,
    ...(values["score-lr"] ? { scoreLr: Number(values["score-lr"]) } : {}), ...(values.lambda ? { lambda: Number(values.lambda) } : {}) });
  const ms = Date.now() - t;
  console.log(`SLS${pairs ? " pairs" : ""}: N = ${[...r.n.entries()].map(([k, v]) => `${k}:${v}`).join(" ")}; reached at step ${r.reachedAt}${r.forced ? " (greedy completion)" : ""}`);
  if (values.save) {
    mkdirSync(values.save, { recursive: true });
    await writeLowbitFile(join(values.save, `${name}-sls${pairs ? "-pairs" : ""}.lowbit`), r.graph);
  }
  const label = `SLS 25 %${pairs ? " (pairs, N:Mp)" : ""}`;
  await row(label, r.graph, ms, steps);
  await row(label, r.graph, ms, steps, true);
}
if (want("filter")) {
  const budgets = (values.budgets ?? "0.5,0.25").split(",").map(Number);
  const crits = (values.criteria ?? "data,l1").split(",") as ("data" | "l1")[];
  const ts = Date.now();
  const stats = convInputStats(g, { lr: data.lr });
  const statsMs = Date.now() - ts;
  for (const budget of budgets) {
    for (const crit of crits) {
      const p = filterPrune(g, { criterion: crit, budget, stats: crit === "data" ? stats : undefined });
      await row(`filter-${crit} ${budget * 100} % one-shot`, p.graph, crit === "data" ? statsMs : 0, 0);
      const f = await ft(p.graph);
      await row(`filter-${crit} ${budget * 100} % + fine-tune`, f.graph, f.ms + (crit === "data" ? statsMs : 0), steps);
      if (crit === "data") await row(`filter-${crit} ${budget * 100} % + fine-tune`, f.graph, f.ms + statsMs, steps, true);
    }
  }
}
console.log("\n" + rows.join("\n"));
