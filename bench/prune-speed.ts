/**
 * Filter pruning speed: FP32 upscale time of dense vs filter-pruned esrgan-medium (thinner dense
 * convs on the existing kernels), interleaved in one process, best of R per model.
 *
 *   node --import tsx bench/prune-speed.ts [--model esrgan-medium-x4] [--image butterfly] [--reps 5]
 *
 * N:M-pruned models (one-shot masks or a pruned .lowbit): bench/nm-model.ts.
 */
import { parseArgs } from "node:util";
import { createRuntime, init } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { Upscaler, fp32Model } from "../src/engine/upscaler-api.ts";
import { loadTrainData } from "../src/cli/finetune.ts";
import { readImage } from "../src/io/image.ts";
import { graphMacs } from "../src/methods/prune/nm-mask.ts";
import { filterPrune } from "../src/methods/prune/filter.ts";
import { convInputStats } from "../src/methods/prune/criteria.ts";
import type { Graph } from "../src/graph/ir.ts";

const { values } = parseArgs({ options: { model: { type: "string", default: "esrgan-medium-x4" }, image: { type: "string", default: "butterfly" }, reps: { type: "string", default: "5" } } });
await init();
const g = await loadModel(values.model!);
const s = g.meta.scale;
const lr = await readImage(`/work/shared/data/eval/lr_x${s}/${values.image}.png`, { channels: 3 });
const stats = convInputStats(g, { lr: (await loadTrainData("data/calib", s)).lr });
const models: [string, Graph][] = [["dense", g]];
for (const b of [0.5, 0.25]) models.push([`filter-data ${b * 100} %`, filterPrune(g, { criterion: "data", budget: b, stats }).graph]);
// One runtime per model: two plans in one arena would free each other's memory (as eval does).
const ups: Upscaler[] = [];
for (const [, m] of models) ups.push(new Upscaler(fp32Model(m), await createRuntime({ backend: "simd" }), { tile: Math.max(lr.width, lr.height) }));
const best = models.map(() => Infinity);
for (let r = 0; r < Number(values.reps); r++) {
  for (let i = 0; i < ups.length; i++) {
    const t = performance.now();
    await ups[i].upscale(lr);
    best[i] = Math.min(best[i], performance.now() - t);
  }
}
const d = graphMacs(g).effective;
console.log(`${values.model} ${values.image} (${lr.width}×${lr.height} LR), whole image, best of ${values.reps}, interleaved`);
console.log("| model | MACs | ms | speed-up |");
console.log("|---|---:|---:|---:|");
models.forEach(([name, m], i) => console.log(`| ${name} | ${(100 * graphMacs(m).effective / d).toFixed(1)} % | ${best[i].toFixed(0)} | ${(best[0] / best[i]).toFixed(2)}× |`));
for (const u of ups) u.dispose();
