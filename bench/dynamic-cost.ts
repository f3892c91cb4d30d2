// What the per-image statistics of DAQ / DFSQ cost, measured in one process (bench-only).
//
//   "$(which node)" --import tsx bench/dynamic-cost.ts [--model esrgan-medium-x2] [--side 240] [--reps 5] [--relaxed]
//
// Compiles, for the same side×side LR image (240 = an eval-set ×2 image): the FP32 plan, static
// W8A8 / W4A4 plans (quantizeModel, percentile / mse) and dynamic plans — DAQ W4A4 and DFSQ W4A4 on
// the reference scope and on the full scope, each on the "lut" path, DAQ also on the "exact" path.
// Every plan runs whole (min of --reps, the compute is deterministic) and step by step; the dynamic
// plans' steps are split into statistics ("stats", "params": the WASM statistics pass and the
// per-image parameter/table build in TS), "codes" (x → b-bit codes), "decode" and the quantized
// convs, vs everything else (FP32 layers, adds, concats). The "extra per-image cost" is
// stats + params + codes (+ decode on the exact path): what a static quantizer does not pay.
import { performance } from "node:perf_hooks";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel, getModelInfo } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { quantizeDaq } from "../src/methods/daq/quantize.ts";
import { quantizeDfsq } from "../src/methods/dfsq/quantize.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import type { DynamicPlan } from "../src/graph/compile-dynamic.ts";
import type { StepPlan } from "../src/graph/step-plan.ts";
import { evalCentreCrop } from "../test/util/eval-data.ts";
import { loadCalibImages, DFSQ_CALIB_SIDE } from "../src/cli/model-options.ts";
import { existsSync } from "node:fs";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const MODEL = arg("model", "esrgan-medium-x2");
const SIDE = Number(arg("side", "240"));
const REPS = Number(arg("reps", "5"));

const rt = await createRuntime({ backend: process.argv.includes("--relaxed") ? "relaxed" : "simd" });
console.log(`# dynamic-quantization cost — ${MODEL}@${SIDE}², backend ${rt.info.backend}, Node ${process.versions.node}, ${new Date().toISOString()}`);
const graph = await loadModel(MODEL);
const scale = graph.meta.scale;
const img = { data: evalCentreCrop("hr", "baboon", SIDE), width: SIDE, height: SIDE, channels: 3 as const };
const calibDir = existsSync("data/calib") ? "data/calib" : null;
const calibImgs = calibDir ? await loadCalibImages(calibDir, scale, DFSQ_CALIB_SIDE) : [img];
const [lo, hi] = getModelInfo(MODEL)!.inputRange;

interface Timed { name: string; whole: number; split: Map<string, number> }

function time(name: string, plan: StepPlan, stepOps: (i: number) => string): Timed {
  const x = plan.inputView(SIDE, SIDE);
  for (let i = 0; i < img.data.length; i++) x[i] = lo + (img.data[i] * (hi - lo)) / 255;
  const n = plan.stepCount;
  plan.runSteps(SIDE, SIDE, 0, n);
  let whole = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    plan.runSteps(SIDE, SIDE, 0, n);
    whole = Math.min(whole, performance.now() - t0);
  }
  const per = new Float64Array(n).fill(Infinity);
  for (let r = 0; r < REPS; r++) {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      plan.runSteps(SIDE, SIDE, i, i + 1);
      per[i] = Math.min(per[i], performance.now() - t0);
    }
  }
  const split = new Map<string, number>();
  for (let i = 0; i < n; i++) split.set(stepOps(i), (split.get(stepOps(i)) ?? 0) + per[i]);
  plan.dispose();
  return { name, whole, split };
}

const rows: Timed[] = [];
rows.push(time("fp32", new F32Plan(rt, graph, SIDE, SIDE), () => "fp32"));
const cal = await calibrate(graph, [img], { runtime: rt });
for (const [bits, method] of [["w8a8", "percentile"], ["w4a4", "mse"]] as const) {
  rows.push(time(`static ${bits} ${method}`, quantizeModel(cal, { bits, method }).compile(rt, SIDE, SIDE), () => "static"));
}
const dyn: [string, () => Promise<{ compile: (r: typeof rt, w: number, h: number) => DynamicPlan }>][] = [
  ["daq w4a4 reference lut", () => quantizeDaq(graph, { weightBits: 4, actBits: 4, runtime: rt })],
  ["daq w4a4 reference exact", () => quantizeDaq(graph, { weightBits: 4, actBits: 4, path: "exact", runtime: rt })],
  ["daq w4a4 full lut", () => quantizeDaq(graph, { weightBits: 4, actBits: 4, scope: "full", runtime: rt })],
  ["dfsq w4a4 reference lut", () => quantizeDfsq(graph, calibImgs, { weightBits: 4, actBits: 4, runtime: rt })],
  ["dfsq w4a4 full lut", () => quantizeDfsq(graph, calibImgs, { weightBits: 4, actBits: 4, scope: "full", runtime: rt })],
];
for (const [name, make] of dyn) {
  const plan = (await make()).compile(rt, SIDE, SIDE);
  const ops = plan.info.stepOps;
  rows.push(time(name, plan, (i) => (/^conv (f32|lut|exact|oracle)$/.test(ops[i]) || ["stats", "params", "codes", "decode"].includes(ops[i]) ? ops[i] : "other")));
}

const mpx = (SIDE * SIDE) / 1e6;
const fp = rows[0].whole;
console.log(`\n| plan | ms / image | ms / LR MPx | vs FP32 | stats + params | codes (+decode) | extra vs its convs |`);
console.log(`|---|---:|---:|---:|---:|---:|---:|`);
for (const r of rows) {
  const s = (k: string) => r.split.get(k) ?? 0;
  const statsMs = s("stats") + s("params"), codesMs = s("codes") + s("decode");
  const convMs = s("conv lut") + s("conv exact");
  const dynamic = r.split.has("stats");
  console.log(`| ${r.name} | ${r.whole.toFixed(1)} | ${(r.whole / mpx).toFixed(0)} | ${(fp / r.whole).toFixed(2)}× | ${dynamic ? `${statsMs.toFixed(1)} (${s("params").toFixed(1)} TS)` : "–"} | ${dynamic ? codesMs.toFixed(1) : "–"} | ${dynamic ? `${((100 * (statsMs + codesMs)) / convMs).toFixed(1)} %` : "–"} |`);
}
