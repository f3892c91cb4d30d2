// W8A8 percentile with 8-bit vs 16-bit residual sums (QuantConfig.residualBits): activation bytes of the compiled plan and
// wall time on one T×T LR tile, same process, interleaved runs, median of N. Calibration: two calibration patches.
// Run: node --import tsx scripts/residual16-cost.ts [model] [T] [N]
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { loadCalibImages } from "../src/cli/model-options.ts";
import { Q8Plan } from "../src/graph/compile-q8.ts";
const model = process.argv[2] ?? "esrgan-medium-x2", T = Number(process.argv[3] ?? 128), reps = Number(process.argv[4] ?? 5);
const rt = await createRuntime({ backend: "simd" });
const g = await loadModel(model);
const imgs = (await loadCalibImages("data/calib", g.meta.scale)).slice(0, 2);
const cal = await calibrate(g, imgs, { runtime: rt });
const qs = { r8: quantizeModel(cal, { bits: "w8a8", method: "percentile" }), r16: quantizeModel(cal, { bits: "w8a8", method: "percentile", residualBits: 16 }) };
const plans = Object.fromEntries(Object.entries(qs).map(([k, q]) => [k, new Q8Plan(rt, q, T, T, q.planOptions)]));
for (const [k, q] of Object.entries(qs)) console.log(k, "bytes/px", q.bytesPerPixel(), "tensor bytes", plans[k].info.tensorBytes, "steps", plans[k].info.stepOps.length);
const ms: Record<string, number[]> = { r8: [], r16: [] };
for (let r = 0; r < reps; r++) for (const k of ["r8", "r16"]) {
  const p = plans[k]; const x = Float32Array.from({ length: T * T * 3 }, (_, i) => ((i % 251) / 251) * g.meta.inputRange[1]);
  const t0 = performance.now(); p.run(x, T, T); ms[k].push(performance.now() - t0);
}
const med = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1];
console.log(`${model} ${T}² median of ${reps}: r8 ${med(ms.r8).toFixed(0)} ms, r16 ${med(ms.r16).toFixed(0)} ms, ratio ${(med(ms.r16) / med(ms.r8)).toFixed(3)}`);
