// What adaptive bit-widths cost and save at run time, measured in one process (bench-only).
//
//   "$(which node)" --import tsx bench/adaptive-cost.ts [--model esrgan-medium-x2] [--side 240] [--tile 96] [--reps 5] [--relaxed]
//
// 1. The bit decision: the tile gradient feature (gradient-feature.ts) on a tile and on a whole
//    image, with benchmark.js (ops/s → µs), against the model's FP32 time on the same pixels.
// 2. Plans on a side×side LR crop of an eval image, tile by tile (96×96 cores + the model's
//    margin): FP32, AdaBM fixed W4A4 (image and layer mapping off: the same quantizer at 4 bits),
//    AdaBM W4A4 (bits per tile) and the fixed model rebuilt at 2, 4, 6 and 8 activation bits. Step times (min of --reps) split into "feature", "params" (per-tile grid
//    and LUT build in TS), "codes" (x → codes) and the quantized convs. Whether lower bits run
//    faster is a property of the kernel path: the LUT conv (int16 × int16 after a per-code table
//    lookup) costs the same at every activation width — reported, not assumed.
import Benchmark from "benchmark";
import { performance } from "node:perf_hooks";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel, getModelInfo } from "../src/models/registry.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { DynamicPlan } from "../src/graph/compile-dynamic.ts";
import type { StepPlan } from "../src/graph/step-plan.ts";
import { planTiles } from "../src/tiling/tiles.ts";
import { defaultMargin } from "../src/engine/upscaler-api.ts";
import { gradientFeature } from "../src/adaptive/gradient-feature.ts";
import { adabmCalibrate, buildAdabmModel } from "../src/methods/adabm/quantize.ts";
import { evalCentreCrop } from "../test/util/eval-data.ts";
import { loadCalibImages, DFSQ_CALIB_SIDE } from "../src/cli/model-options.ts";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const MODEL = arg("model", "esrgan-medium-x2");
const SIDE = Number(arg("side", "240"));
const TILE = Number(arg("tile", "96"));
const REPS = Number(arg("reps", "5"));

const rt = await createRuntime({ backend: process.argv.includes("--relaxed") ? "relaxed" : "simd" });
console.log(`# adaptive-bit cost — ${MODEL}@${SIDE}², tile ${TILE}, backend ${rt.info.backend}, Node ${process.versions.node}, ${new Date().toISOString()}`);
const graph = await loadModel(MODEL);
const [lo, hi] = getModelInfo(MODEL)!.inputRange;
const img = { data: evalCentreCrop("hr", "baboon", SIDE), width: SIDE, height: SIDE, channels: 3 as const };
const f32img = Float32Array.from(img.data, (v) => lo + (v * (hi - lo)) / 255);

// 1. The feature.
const out = new Float64Array(2);
const tileRgb = f32img.subarray(0, TILE * TILE * 3);
const suite = new Benchmark.Suite();
suite.add(`feature ${TILE}×${TILE}`, () => gradientFeature(out, f32img, SIDE, SIDE, 3, lo, hi, { x: 0, y: 0, w: TILE, h: TILE }), { minSamples: 20 });
suite.add(`feature ${SIDE}×${SIDE}`, () => gradientFeature(out, f32img, SIDE, SIDE, 3, lo, hi), { minSamples: 20 });
const featUs = new Map<string, number>();
suite.on("cycle", (e: { target: Benchmark }) => featUs.set(String(e.target.name), 1e6 / e.target.hz!));
suite.run();
void tileRgb;

// 2. Plans, tile by tile.
const margin = defaultMargin(graph);
const grid = planTiles(SIDE, SIDE, TILE, margin);
interface Timed { name: string; ms: number; split: Map<string, number>; fab: number }

function timePlan(name: string, plan: StepPlan & { setCore?: DynamicPlan["setCore"]; tileBits?: DynamicPlan["tileBits"] }, ops: (i: number) => string): Timed {
  const split = new Map<string, number>();
  let ms = 0, fab = 0;
  for (const t of grid.tiles) {
    const x = plan.inputView(t.rw, t.rh);
    for (let y = 0; y < t.rh; y++) x.set(f32img.subarray(((t.ry + y) * SIDE + t.rx) * 3, ((t.ry + y) * SIDE + t.rx + t.rw) * 3), y * t.rw * 3);
    const n = plan.stepCount;
    const per = new Float64Array(n).fill(Infinity);
    for (let r = 0; r < REPS; r++) {
      plan.setCore?.(t.x - t.rx, t.y - t.ry, t.w, t.h);
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        plan.runSteps(t.rw, t.rh, i, i + 1);
        per[i] = Math.min(per[i], performance.now() - t0);
      }
    }
    fab += plan.tileBits?.()?.fab ?? 32;
    for (let i = 0; i < n; i++) {
      ms += per[i];
      split.set(ops(i), (split.get(ops(i)) ?? 0) + per[i]);
    }
  }
  plan.dispose();
  return { name, ms, split, fab: fab / grid.tiles.length };
}

const calib = await loadCalibImages("data/calib", graph.meta.scale, DFSQ_CALIB_SIDE);
const rows: Timed[] = [timePlan("fp32", new F32Plan(rt, graph, grid.maxW, grid.maxH), () => "other")];
const fixed = await adabmCalibrate(graph, calib, { weightBits: 4, actBits: 4, imageAdaptive: false, layerAdaptive: false, runtime: rt });
const ada = await adabmCalibrate(graph, calib, { weightBits: 4, actBits: 4, runtime: rt });
const opsOf = (p: DynamicPlan) => (i: number) => {
  const o = p.info.stepOps[i];
  return ["feature", "params", "codes", "conv lut"].includes(o) ? o : "other";
};
for (const [name, m] of [["adabm w4a4 fixed bits", fixed.model], ["adabm w4a4 adaptive", ada.model]] as const) {
  const p = new DynamicPlan(rt, m, grid.maxW, grid.maxH);
  rows.push(timePlan(name, p, opsOf(p)));
}
for (const b of [2, 4, 6, 8]) {
  // The fixed model's ranges and weights at base b (same grids as AdaBM at b bits).
  const m = buildAdabmModel(fixed.graph, fixed.params, { weightBits: 4, actBits: b, scope: fixed.model.info.scope, imageBits: null });
  const p = new DynamicPlan(rt, m, grid.maxW, grid.maxH);
  rows.push(timePlan(`fixed a${b}`, p, opsOf(p)));
}

const mpx = (SIDE * SIDE) / 1e6;
const fp = rows[0].ms;
console.log(`\nbit decision: feature on a ${TILE}×${TILE} tile ${featUs.get(`feature ${TILE}×${TILE}`)!.toFixed(1)} µs, on the ${SIDE}×${SIDE} image ${featUs.get(`feature ${SIDE}×${SIDE}`)!.toFixed(1)} µs; FP32 network on the image ${fp.toFixed(0)} ms → ${((100 * featUs.get(`feature ${SIDE}×${SIDE}`)! / 1000) / fp).toFixed(4)} %`);
console.log(`\n| plan | FAB | ms / image | ms / LR MPx | vs FP32 | feature | params (TS) | codes | quantized convs |`);
console.log(`|---|---:|---:|---:|---:|---:|---:|---:|---:|`);
for (const r of rows) {
  const s = (k: string) => r.split.get(k) ?? 0;
  const q = r.split.has("conv lut");
  console.log(`| ${r.name} | ${r.fab.toFixed(2)} | ${r.ms.toFixed(1)} | ${(r.ms / mpx).toFixed(0)} | ${(fp / r.ms).toFixed(2)}× | ${q ? s("feature").toFixed(2) : "–"} | ${q ? s("params").toFixed(2) : "–"} | ${q ? s("codes").toFixed(1) : "–"} | ${q ? s("conv lut").toFixed(1) : "–"} |`);
}
