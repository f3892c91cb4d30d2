// `npm run bench:peers`: lowbit against the JavaScript peers a user would otherwise pick, on the same
// @upscalerjs model and the same input, in one run (`npm run bench` = this + `--write`: updates the
// generated section of bench/RESULTS.md).
//
// Contenders, each in its own worker thread (own WASM instance and runtime flags; the orchestrator only
// sends commands and waits, so it does not compete for the CPU):
//   tfjs-wasm 1T   @tensorflow/tfjs-backend-wasm, XNNPACK fp32 SIMD, one thread (verified) — the baseline
//   tfjs-wasm 2T   its threaded-SIMD build, which tfjs disables in Node: run through the patches in
//                  peers/tfjs-threaded.ts (thread count verified)
//   tfjs-cpu       @tensorflow/tfjs cpu backend, one run (slow: by default only configs ≤ 12 GMAC;
//                  LOWBIT_BENCH_CPU=all|none)
//   ort-web 1T/2T  onnxruntime-web (wasm), lowbit's exportOnnx(): fp32, and QDQ w8a8 (uint8 activations,
//                  per-channel int8 weights → QLinearConv) from the *same* quantized model lowbit runs
//   ort-node 1T/2T onnxruntime-node (native CPU, the out-of-browser ceiling), same two ONNX files
//   lowbit         fp32, w8a8 (percentile), w4a4 (mse) on the simd build and, on Node ≥ 22, the relaxed build;
//                  and the worker pool (2 workers, 8-bit image in/out, exact tile margins) — "all cores"
//
// Rounds are interleaved (every contender once per round, samples pooled), so load from other processes
// hits all alike. Per row: ms/image, GMAC/s (the model's dense MACs / time), ms per output megapixel,
// speed-up vs tfjs-wasm 1T and vs onnxruntime-web 1T at the same precision (w4a4 has no 4-bit peer: it is
// compared with ort-web's w8a8), PSNR-Y vs the HR ground truth (shave = scale) and, for float rows,
// max |Δ| vs tfjs. The input is real: an eval photo mirrored to size, bicubic-downscaled (peers/input.ts).
// Quantized models are calibrated on four *other* eval images (not the input).
//
// Last: one `ratio <precision> <model>@<side> tfjs-wasm=<x> ort-web=<y> …` line per configuration.
//
//   npm run bench:peers                          # all configurations (~15–25 min on 2 vCPUs)
//   LOWBIT_BENCH_ONLY=esrgan-medium-x2@256 npm run bench:peers
//   LOWBIT_BENCH_QUICK=1 npm run bench:peers     # one round
//   npm run bench                                # full run + write bench/RESULTS.md
import os from "node:os";
import { readFileSync, writeFileSync } from "node:fs";
import { execSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { createRuntime } from "../src/runtime/runtime.ts";
import { fp32Model, Upscaler } from "../src/engine/upscaler-api.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { getModelInfo, loadModel } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel, type QuantizedModel } from "../src/quant/quantize-model.ts";
import { saveLowbit } from "../src/io/lowbit-file.ts";
import { exportOnnx } from "../src/io/onnx/index.ts";
import { psnrY } from "../src/metrics/index.ts";
import type { Graph } from "../src/graph/ir.ts";
import { evalCrop } from "../test/util/eval-data.ts";
import { fmt, measurePeak, pool, type Timing } from "./util.ts";
import { peerInput, toFloat, toU8 } from "./peers/input.ts";
import type { ContenderSpec } from "./peers/contender.ts";

const QUICK = process.env.LOWBIT_BENCH_QUICK === "1";
const WRITE = process.argv.includes("--write");
const ROUNDS = QUICK ? 1 : 3;
/** benchmark.js budget per contender and round (calls take 0.1–15 s: one or two samples per round). */
const MAX_TIME = 0.05;
const MIN_SAMPLES = 1;
/** fp32 rows must agree with tfjs within this (0–255 scale), else MISMATCH and exit 1. */
const TOL_FLOAT = 0.25;
/** W8A8 rows must stay within this many dB PSNR-Y of the FP32 (tfjs) output's PSNR-Y, else MISMATCH (W4A4: marked LOSSY). */
const TOL_QUANT_DB = 1.5;
const CPU_POLICY = process.env.LOWBIT_BENCH_CPU ?? "small";
const CPU_SMALL_GMAC = 12;

const CONFIGS: Array<{ model: string; side: number }> = [
  { model: "esrgan-slim-x4", side: 128 },
  { model: "esrgan-slim-x4", side: 256 },
  { model: "esrgan-medium-x2", side: 128 },
  { model: "esrgan-medium-x2", side: 256 },
  { model: "esrgan-thick-x4", side: 64 },
  { model: "esrgan-thick-x4", side: 128 },
  { model: "legacy-div2k-x4", side: 128 },
];
const CALIB_IMAGES = ["building", "fruits", "home", "aero1"];

type Precision = "fp32" | "w8a8" | "w4a4";

interface Contender {
  label: string;
  precision: Precision;
  /** Peer family for the ratio columns. */
  family: "tfjs-wasm" | "tfjs-cpu" | "ort-web" | "ort-node" | "lowbit";
  threads: number;
  /** Built on relaxed SIMD (lowbit). */
  relaxed?: boolean;
  once?: boolean;
  /** Output is the 8-bit image (the pool's user path): compared in 8-bit levels. */
  u8?: boolean;
  spec: ContenderSpec;
}

interface Live {
  c: Contender;
  w: Worker;
  out: Float32Array;
  setupMs: number;
  info: string;
  runs: Timing[];
}

interface Row {
  config: string;
  label: string;
  precision: Precision;
  family: Contender["family"];
  relaxed: boolean;
  threads: number;
  t: Timing | null;
  note?: string;
  gmacs?: number;
  msPerMpix?: number;
  vsTfjs?: number;
  vsOrtWeb?: number;
  psnr?: number;
  diff?: number;
  ok?: boolean;
  /** A W4A4 row more than TOL_QUANT_DB below FP32 (uniform 4-bit's known loss; not a failure). */
  lossy?: boolean;
}

let nextId = 1;
function call<T>(w: Worker, msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<T> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const onMsg = (m: { id?: number; error?: string }) => {
      if (m.id !== id) return;
      w.off("message", onMsg);
      w.off("error", onErr);
      if (m.error) reject(new Error(m.error));
      else resolve(m as T);
    };
    const onErr = (e: Error) => {
      w.off("message", onMsg);
      reject(e);
    };
    w.on("message", onMsg);
    w.once("error", onErr);
    w.postMessage({ id, ...msg }, transfer);
  });
}

async function start(c: Contender, x: Float32Array, u8: Uint8Array): Promise<Live | string> {
  const w = new Worker(new URL("./peers/contender.mjs", import.meta.url), { workerData: c.spec });
  try {
    await new Promise<void>((res, rej) => {
      w.once("message", () => res());
      w.once("error", rej);
    });
    const r = await call<{ out: Float32Array; setupMs: number; info: string }>(w, { cmd: "setup", x: x.slice(), u8: u8.slice() });
    return { c, w, out: r.out, setupMs: r.setupMs, info: r.info, runs: [] };
  } catch (e) {
    await w.terminate();
    return `skipped: ${(e as Error).message.split("\n")[0]}`;
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array, k: number): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]) * k;
    if (Number.isNaN(d)) return NaN;
    if (d > m) m = d;
  }
  return m;
}

// ---------------------------------------------------------------------------------------------------------

const t0 = performance.now();
const major = Number(process.versions.node.split(".")[0]);
const hasRelaxed = major >= 22;
const rt = await createRuntime({ backend: "simd" });
const relaxedRt = hasRelaxed ? await createRuntime({ backend: "relaxed" }).catch(() => null) : null;
const load = () => os.loadavg().map((v) => v.toFixed(2)).join(" ");
let commit = "?";
try {
  commit = execSync("git rev-parse --short HEAD", { encoding: "utf8" }).trim();
} catch { /* not a checkout */ }

const header: string[] = [];
const log = (s: string) => {
  console.log(s);
};
header.push(`# lowbit vs JavaScript peers — Node ${process.versions.node}, ${new Date().toISOString()}, commit ${commit}${QUICK ? ", QUICK" : ""}`);
header.push(`# machine: ${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} logical CPUs; load average at start ${load()}`);
const peak = measurePeak(relaxedRt ?? rt, "min");
header.push(`# WASM SIMD peak (kernel probe, this process): i32x4.dot_i16x8_s+add ${fmt(peak.dotI16, 1)} GMAC/s, f32x4 mul+add ${fmt(peak.f32, 1)} GMAC/s` +
  (peak.relaxedDot !== null ? `, relaxed dot i8×i7 ${fmt(peak.relaxedDot, 1)} GMAC/s` : ""));
header.push(`# lowbit build ${rt.info.buildId}: simd${relaxedRt ? " + relaxed" : ` only (relaxed needs Node ≥ 22)`}`);
header.push(`# ${ROUNDS} interleaved round(s), benchmark.js maxTime ${MAX_TIME} s / minSamples ${MIN_SAMPLES} per contender and round; tfjs-cpu: ${CPU_POLICY}`);
for (const h of header) log(h);

const rows: Row[] = [];
const ratios: string[] = [];
const setupLines: string[] = [];
let failures = 0;
const graphs = new Map<string, Graph>();
const ONLY = process.env.LOWBIT_BENCH_ONLY?.split(",");

for (const { model, side } of CONFIGS.filter((c) => !ONLY || ONLY.includes(`${c.model}@${c.side}`))) {
  const info = getModelInfo(model)!;
  const s = info.scale;
  const cfg = `${model}@${side}`;
  if (!graphs.has(model)) graphs.set(model, await loadModel(model));
  const graph = graphs.get(model)!;
  const [ilo, ihi] = info.inputRange;
  const [olo, ohi] = info.outputRange;
  const { lr, hr } = peerInput(side, s);
  const x = toFloat(lr.data, ilo, ihi);
  const outMpix = (side * s) ** 2 / 1e6;

  const up = new Upscaler(fp32Model(graph), rt);
  const plan = up.planFor(side, side);
  if (!(plan instanceof F32Plan)) throw new Error("expected an F32Plan");
  const macs = plan.info.macsPerPixel * side * side;
  up.dispose();

  // The quantized models every integer contender runs (lowbit and onnxruntime alike).
  const calImgs = CALIB_IMAGES.map((n) => evalCrop(`lr_x${s}`, n, 0, 0, 480 / s, 480 / s >= 96 ? 96 : 480 / s));
  const cal = await calibrate(graph, calImgs, { runtime: rt });
  const q: Record<"w8a8" | "w4a4", QuantizedModel> = {
    w8a8: quantizeModel(cal, { bits: "w8a8", method: "percentile" }),
    w4a4: quantizeModel(cal, { bits: "w4a4", method: "mse" }),
  };
  const bytes = { fp32: saveLowbit(graph), w8a8: saveLowbit(q.w8a8), w4a4: saveLowbit(q.w4a4) };
  // onnxruntime runs lowbit's own export: the same graph, and for w8a8 the same grids (QDQ, uint8
  // activations, per-channel int8 weights → QLinearConv after onnxruntime's graph optimization).
  const onnx: Partial<Record<Precision, Uint8Array>> = { fp32: exportOnnx(graph), w8a8: exportOnnx(q.w8a8) };

  const cs: Contender[] = [];
  for (const th of [1, 2]) cs.push({ label: `tfjs-wasm fp32 ${th}T`, precision: "fp32", family: "tfjs-wasm", threads: th, spec: { kind: "tfjs-wasm", model, side, threads: th } });
  const runCpu = CPU_POLICY === "all" || (CPU_POLICY === "small" && macs / 1e9 <= CPU_SMALL_GMAC);
  if (runCpu) cs.push({ label: "tfjs-cpu fp32", precision: "fp32", family: "tfjs-cpu", threads: 1, once: true, spec: { kind: "tfjs-cpu", model, side } });
  for (const p of ["fp32", "w8a8"] as const) {
    if (!onnx[p]) continue;
    for (const th of [1, 2]) cs.push({ label: `ort-web ${p} ${th}T`, precision: p, family: "ort-web", threads: th, spec: { kind: "ort-web", onnx: onnx[p]!, threads: th, side } });
    for (const th of [1, 2]) cs.push({ label: `ort-node ${p} ${th}T`, precision: p, family: "ort-node", threads: th, spec: { kind: "ort-node", onnx: onnx[p]!, threads: th, side } });
  }
  for (const p of ["fp32", "w8a8", "w4a4"] as const) {
    for (const backend of relaxedRt ? (["simd", "relaxed"] as const) : (["simd"] as const)) {
      cs.push({ label: `lowbit ${p} ${backend} 1T`, precision: p, family: "lowbit", threads: 1, relaxed: backend === "relaxed", spec: { kind: "lowbit", backend, lowbit: bytes[p], side } });
    }
    // All cores: the worker pool (8-bit in/out, tiles with exact margins, i.e. some overlap work).
    const pb = relaxedRt ? "relaxed" : "simd";
    cs.push({ label: `lowbit ${p} ${pb} pool 2 workers`, precision: p, family: "lowbit", threads: 2, relaxed: pb === "relaxed", u8: true, spec: { kind: "lowbit-pool", backend: pb, lowbit: bytes[p], side, workers: 2 } });
  }

  log(`\n## ${cfg}: ${fmt(macs / 1e9, 2)} GMAC, output ${side * s}×${side * s}; ${cs.length} contenders`);
  const live: Live[] = [];
  const skipped: Array<[Contender, string]> = [];
  for (const c of cs) {
    const l = await start(c, x, lr.data);
    if (typeof l === "string") {
      skipped.push([c, l]);
      log(`${c.label}: ${l}`);
    } else {
      live.push(l);
      setupLines.push(`${cfg} ${c.label}: set-up + first run ${fmt(l.setupMs, 0)} ms (${l.info})`);
    }
  }

  for (let round = 0; round < ROUNDS; round++) {
    for (const l of live) {
      if (l.c.once && round > 0) continue;
      const r = await call<{ timing: Timing }>(l.w, l.c.once ? { cmd: "once" } : { cmd: "time", maxTime: MAX_TIME, minSamples: MIN_SAMPLES });
      l.runs.push(r.timing);
    }
    log(`round ${round + 1}/${ROUNDS} done (load ${load()})`);
  }
  await Promise.all(live.map((l) => l.w.terminate()));

  const ref = live.find((l) => l.c.family === "tfjs-wasm" && l.c.threads === 1);
  if (!ref) throw new Error(`${cfg}: tfjs-wasm failed — no baseline`);
  const k255 = 255 / (ohi - olo);
  const score = (out: Float32Array) => psnrY(hr, { data: toU8(out, olo, ohi), width: side * s, height: side * s, channels: 3 }, s);
  const refPsnr = score(ref.out);
  const toU8f = (v: Float32Array) => Float32Array.from(toU8(v, olo, ohi));
  const tRef = pool(ref.runs);
  const ortWeb1 = (p: Precision) => live.find((l) => l.c.family === "ort-web" && l.c.threads === 1 && l.c.precision === (p === "w4a4" ? "w8a8" : p));
  for (const l of live) {
    const t = pool(l.runs);
    const psnr = score(l.out);
    const r: Row = {
      config: cfg, label: l.c.label, precision: l.c.precision, family: l.c.family, relaxed: !!l.c.relaxed, threads: l.c.threads, t,
      gmacs: macs / t.mean / 1e9, msPerMpix: (t.mean * 1e3) / outMpix, vsTfjs: tRef.mean / t.mean, psnr, ok: true,
    };
    const ow = ortWeb1(l.c.precision);
    if (ow) r.vsOrtWeb = pool(ow.runs).mean / t.mean;
    if (l.c.precision === "fp32") {
      r.diff = l.c.u8 ? maxAbsDiff(toU8f(l.out), toU8f(ref.out), 1) : maxAbsDiff(l.out, ref.out, k255);
      r.ok = r.diff <= (l.c.u8 ? 1 : TOL_FLOAT);
    } else if (l.c.precision === "w8a8") {
      r.ok = psnr >= refPsnr - TOL_QUANT_DB;
    } else {
      // W4A4 uniform is the known lossy baseline (README: −1 to −12 dB, worst on thick): shown, not failed.
      r.lossy = psnr < refPsnr - TOL_QUANT_DB;
    }
    if (!r.ok) failures++;
    rows.push(r);
  }
  for (const [c, note] of skipped) rows.push({ config: cfg, label: c.label, precision: c.precision, family: c.family, relaxed: !!c.relaxed, threads: c.threads, t: null, note });

  for (const p of ["fp32", "w8a8", "w4a4"] as const) {
    for (const relaxed of relaxedRt ? [false, true] : [false]) {
      const r = rows.find((x) => x.config === cfg && x.family === "lowbit" && x.threads === 1 && x.precision === p && x.relaxed === relaxed && x.t);
      if (!r) continue;
      const ortNode = rows.find((x) => x.config === cfg && x.family === "ort-node" && x.threads === 1 && x.precision === (p === "w4a4" ? "w8a8" : p) && x.t);
      const ortWeb2 = rows.find((x) => x.config === cfg && x.family === "ort-web" && x.threads === 2 && x.precision === (p === "w4a4" ? "w8a8" : p) && x.t);
      const tf2 = rows.find((x) => x.config === cfg && x.family === "tfjs-wasm" && x.threads === 2 && x.t);
      ratios.push(`ratio ${p}${relaxed ? "-relaxed" : ""} ${cfg} tfjs-wasm=${fmt(r.vsTfjs!, 2)} ort-web=${r.vsOrtWeb === undefined ? "n/a" : fmt(r.vsOrtWeb, 2)}` +
        (tf2 ? ` tfjs-wasm-2t=${fmt(tf2.t!.mean / r.t!.mean, 2)}` : "") +
        (ortWeb2 ? ` ort-web-2t=${fmt(ortWeb2.t!.mean / r.t!.mean, 2)}` : "") + (ortNode ? ` ort-node=${fmt(ortNode.t!.mean / r.t!.mean, 2)}` : "") +
        ` psnr=${fmt(r.psnr!, 2)}`);
      const pool2 = rows.find((x) => x.config === cfg && x.family === "lowbit" && x.threads === 2 && x.precision === p && x.relaxed === relaxed && x.t);
      if (pool2) ratios.push(`ratio ${p}${relaxed ? "-relaxed" : ""}-2workers ${cfg} tfjs-wasm=${fmt(pool2.vsTfjs!, 2)} ort-web-2t=${ortWeb2 ? fmt(ortWeb2.t!.mean / pool2.t!.mean, 2) : "n/a"} tfjs-wasm-2t=${tf2 ? fmt(tf2.t!.mean / pool2.t!.mean, 2) : "n/a"} vs-1-thread=${fmt(r.t!.mean / pool2.t!.mean, 2)} psnr=${fmt(pool2.psnr!, 2)}`);
    }
  }
  for (const r of rows.filter((x) => x.config === cfg)) log(rowLine(r));
}

function rowLine(r: Row): string {
  if (!r.t) return `| ${r.config} | ${r.label} | – | – | – | – | – | – | – | ${r.note} |`;
  const ms = r.t.mean * 1e3;
  const d = r.diff !== undefined ? `${r.diff.toExponential(1)}` : "";
  return `| ${r.config} | ${r.label} | ${fmt(ms, 0)} ±${Number.isNaN(r.t.rme) ? "–" : fmt(r.t.rme, 0)}% (n=${r.t.samples}) | ${fmt(r.t.min * 1e3, 0)} | ` +
    `${fmt(r.gmacs!, 2)} | ${fmt(r.msPerMpix!, 0)} | ${fmt(r.vsTfjs!, 2)} | ${r.vsOrtWeb === undefined ? "–" : fmt(r.vsOrtWeb, 2)} | ${fmt(r.psnr!, 2)} | ${d}${r.ok ? "" : " MISMATCH"}${r.lossy ? " LOSSY (uniform W4A4)" : ""} |`;
}

const TABLE_HEAD = [
  "| config | contender | ms/image (mean ±rme, n) | min ms | GMAC/s | ms/MPix out | × vs tfjs-wasm 1T | × vs ort-web 1T (same precision; w4a4 vs w8a8) | PSNR-Y vs HR (dB) | max abs Δ vs tfjs (fp32, 0–255) |",
  "|---|---|---|---|---|---|---|---|---|---|",
];
const table = [...TABLE_HEAD, ...rows.map(rowLine)];
console.log("\n" + table.join("\n"));
console.log("\n# set-up (load, compile/session creation, first run):");
for (const l of setupLines) console.log(`#   ${l}`);
const tail = `# total ${fmt((performance.now() - t0) / 1e3, 0)} s; load average at end ${load()}${failures ? `; ${failures} MISMATCH row(s)` : ""}`;
console.log("");
for (const l of ratios) console.log(l);
console.log(tail);

if (WRITE) {
  const path = new URL("./RESULTS.md", import.meta.url);
  const md = readFileSync(path, "utf8");
  const begin = "<!-- bench:peers:begin (generated by `npm run bench`; do not edit by hand) -->";
  const end = "<!-- bench:peers:end -->";
  const body = [
    begin,
    "",
    "Command: `npm run bench` (= `node --import tsx bench/peers.ts --write`, Node from node_modules/.bin = Node 22).",
    "",
    "```",
    ...header,
    tail,
    "```",
    "",
    ...table,
    "",
    "```",
    ...ratios,
    "```",
    "",
    "<details><summary>set-up times</summary>",
    "",
    "```",
    ...setupLines,
    "```",
    "</details>",
    "",
    end,
  ].join("\n");
  const a = md.indexOf(begin.slice(0, 22));
  const b = md.indexOf(end);
  const out = a >= 0 && b > a ? md.slice(0, a) + body + md.slice(b + end.length) : md.trimEnd() + "\n\n## Peers (generated)\n\n" + body + "\n";
  writeFileSync(path, out);
  console.log(`# wrote ${path.pathname}`);
}
if (failures) process.exitCode = 1;
