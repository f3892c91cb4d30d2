// Post-training quantization accuracy of the bundled models on the shared eval set.
//
//   node --import tsx bench/quant-accuracy.ts [--models a,b] [--scales 2,4] [--images x,y]
//        [--configs fp32,w8a8-minmax,…] [--data DIR] [--calib DIR] [--tile N] [--json out.json]
//   node --import tsx bench/quant-accuracy.ts --report out1.json,out2.json   (README tables)
//   node --import tsx bench/quant-accuracy.ts --layers --models M --configs w8a8-mse [--images a,b] [--crop 96]
//        (per-tensor error of the quantized plan against the FP32 plan, see layerReport)
//
// Same protocol as `lowbit eval` (src/cli/eval.ts): PSNR-Y / SSIM-Y with shave = scale on the
// uint8 output, fidelity = PSNR-Y of the quantized output against the same model's FP32 output
// (same tiling), calibration exactly as the CLI does it (loadCalibImages + calibrate on the
// default runtime's backend). What it saves over running `lowbit eval` once per configuration:
// per model × scale the FP32 outputs are computed once (they serve as the FP32 row and as the
// fidelity reference) and the model is calibrated once for all configurations.
//
// --models takes registered names (esrgan-slim-x2) or families (esrgan-slim), which expand to
// every --scales entry the registry has. Results are written to --json after every
// configuration, so a long run that is stopped keeps what finished.
import { writeFileSync, readFileSync, existsSync } from "node:fs";
import { resolve, join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createRuntime, type Runtime } from "../src/runtime/runtime.ts";
import { loadModel, getModelInfo, listModels } from "../src/models/registry.ts";
import { fp32Model, Upscaler, defaultMargin, type CompilableModel } from "../src/engine/upscaler-api.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { buildDynamicModel, loadCalibImages, type DynamicMethod } from "../src/cli/model-options.ts";
import type { DynamicQuantizedModel } from "../src/methods/dynamic/model.ts";
import { listEvalSet, loadEvalPair } from "../src/metrics/evalset.ts";
import { scoreSR } from "../src/metrics/score.ts";
import { psnrY } from "../src/metrics/psnr.ts";
import { bicubicUp } from "../src/metrics/bicubic.ts";
import { planTiles } from "../src/tiling/tiles.ts";
import type { Graph } from "../src/graph/ir.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { Q8Plan } from "../src/graph/compile-q8.ts";
import { fakeQuantize } from "../src/quant/params.ts";
import type { RgbImage } from "../src/engine/image.ts";
import type { ImageU8 } from "../src/metrics/color.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The configurations of the README table, in order. */
const ALL_CONFIGS = [
  "fp32",
  "w8a8 minmax", "w8a8 percentile", "w8a8 mse",
  "w4a8 minmax", "w4a8 mse",
  "w4a4 minmax", "w4a4 mse",
] as const;

const DEFAULT_MODELS = ["esrgan-slim", "esrgan-medium", "psnr-small-x2", "legacy-div2k", "esrgan-thick"];

interface ImageResult {
  name: string;
  psnr: number;
  ssim: number;
  /** PSNR-Y against the FP32 output (null: identical, or the FP32 row itself). */
  fidelity: number | null;
  /** psnr − FP32 psnr of the same image. */
  dPsnr: number;
  ms: number;
  /** Adaptive-bit models: FAB and BitOPs / FP32 BitOPs. */
  fab?: number;
  bitops?: number;
}

interface ConfigResult {
  config: string;
  bits: string;
  method: string | null;
  /** Weights as stored: FP32 4 B per parameter (incl. biases); quantized = QuantizedModel.weightBytes. */
  bytes: number;
  compileMs: number;
  images: ImageResult[];
  mean: { psnr: number; ssim: number; fidelity: number | null; dPsnr: number; ms: number; fab?: number; bitops?: number };
  /** Calibration (+ fine-tuning) wall time of methods that quantize themselves. */
  quantizeSeconds?: number;
}

interface ModelResult {
  model: string;
  scale: number;
  inputRange: [number, number];
  params: number;
  tiling: { tile: number; margin: number };
  calib: { dir: string; images: number; pixels: number; seconds: number } | null;
  bicubic: { images: { name: string; psnr: number; ssim: number }[]; mean: { psnr: number; ssim: number } };
  configs: ConfigResult[];
}

interface BenchResult {
  tool: "bench/quant-accuracy.ts";
  lowbit: string;
  node: string;
  backend: string;
  date: string;
  data: string;
  protocol: string;
  runs: ModelResult[];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

function resolveModels(names: string[], scales: number[] | null): string[] {
  const out: string[] = [];
  for (const n of names) {
    if (getModelInfo(n)) {
      out.push(n);
      continue;
    }
    const hits = (scales ?? [2, 3, 4, 8]).map((s) => `${n}-x${s}`).filter((m) => getModelInfo(m));
    if (hits.length === 0) {
      throw new Error(`unknown model or family '${n}' for scales ${scales?.join(",") ?? "any"}; known: ${listModels().map((m) => m.name).join(", ")}`);
    }
    out.push(...hits);
  }
  return out;
}

type Method = "minmax" | "percentile" | "mse" | "daq" | "dfsq" | "odm" | "adabm";

/**
 * "w8a8-minmax", "w4a4 daq", "w4a4-dfsq-scope=full-path=exact": bits, method, then the method's
 * --method-options as key=value tokens (DAQ/DFSQ only).
 */
function parseConfig(c: string): { bits: string; method: Method | null; options: Record<string, string> } {
  const [bits, method, ...rest] = c.replace(/-/g, " ").trim().toLowerCase().split(/\s+/);
  if (bits === "fp32") return { bits, method: null, options: {} };
  if (!/^w\da\d$/.test(bits) || !["minmax", "percentile", "mse", "daq", "dfsq", "odm", "adabm"].includes(method)) throw new Error(`bad config '${c}' (e.g. w8a8-minmax, w4a4-dfsq)`);
  const options: Record<string, string> = {};
  for (const kv of rest) {
    const m = /^([a-z]+)=(\S+)$/.exec(kv);
    // Static methods take p=<upper percentile> for `percentile` (e.g. w8a8-percentile-p=99.999) and r=16 (16-bit
    // residual sums, QuantConfig.residualBits).
    const isStatic = method === "minmax" || method === "percentile" || method === "mse";
    const ok = method === "daq" || method === "dfsq" || method === "odm" || method === "adabm" || (method === "percentile" && m?.[1] === "p") ||
      (isStatic && m?.[1] === "r" && m[2] === "16");
    if (!m || !ok) throw new Error(`bad option '${kv}' in config '${c}'`);
    options[m[1]] = m[2];
  }
  return { bits, method: method as Method, options };
}

const configName = (p: ReturnType<typeof parseConfig>) =>
  p.method ? [p.bits, p.method, ...Object.entries(p.options).map(([k, v]) => `${k}=${v}`)].join(" ") : "fp32";

/** FP32 storage: 4 bytes per conv weight and bias (the only parameters of these nets). */
function fp32Params(g: Graph): number {
  let p = 0;
  for (const n of g.nodes) if (n.op === "conv2d") p += n.weights.length + n.cout;
  return p;
}

async function runModel(name: string, o: { data: string; calib: string; tile: number; images?: string[]; configs: string[] }, rt: Runtime, save: (m: ModelResult) => void): Promise<ModelResult> {
  const graph = await loadModel(name);
  const scale = graph.meta.scale;
  let pairs = await listEvalSet(o.data, scale);
  if (o.images) {
    const missing = o.images.filter((n) => !pairs.some((p) => p.name === n));
    if (missing.length) throw new Error(`no image ${missing.join(", ")} in ${o.data}`);
    pairs = pairs.filter((p) => o.images!.includes(p.name));
  }
  const loaded: { name: string; hr: ImageU8; lr: ImageU8 }[] = [];
  for (const p of pairs) loaded.push(await loadEvalPair(p, { channels: 3 }));
  const margin = defaultMargin(graph);
  let maxW = 0, maxH = 0;
  for (const p of pairs) {
    const g = planTiles(p.width / scale, p.height / scale, o.tile, margin);
    maxW = Math.max(maxW, g.maxW);
    maxH = Math.max(maxH, g.maxH);
  }
  const params = fp32Params(graph);
  const res: ModelResult = {
    model: name, scale, inputRange: [...graph.meta.inputRange], params, tiling: { tile: o.tile, margin }, calib: null,
    bicubic: { images: [], mean: { psnr: 0, ssim: 0 } }, configs: [],
  };
  for (const { name: n, hr, lr } of loaded) {
    const b = scoreSR(bicubicUp(lr, scale), hr, scale);
    res.bicubic.images.push({ name: n, psnr: b.psnrY, ssim: b.ssimY });
  }
  res.bicubic.mean = { psnr: mean(res.bicubic.images.map((x) => x.psnr)), ssim: mean(res.bicubic.images.map((x) => x.ssim)) };

  /** Upscales every image with `model` (plan compiled first, as `lowbit eval` does) and scores it. */
  const runConfig = async (config: string, method: string | null, model: CompilableModel, bytes: number, ref: RgbImage[] | null, refScores: ImageResult[] | null) => {
    // Per-image statistics (DAQ, DFSQ): the whole image in one tile, as `lowbit eval` runs them.
    const whole = (model as { wholeImage?: boolean }).wholeImage === true;
    const wholeSide = Math.max(...pairs.map((p) => Math.max(p.width, p.height) / scale));
    const up = new Upscaler(model, rt, { tile: whole ? wholeSide : o.tile, margin });
    const tc = performance.now();
    if (whole) up.planFor(Math.max(...pairs.map((p) => p.width / scale)), Math.max(...pairs.map((p) => p.height / scale)));
    else up.planFor(maxW, maxH);
    const compileMs = performance.now() - tc;
    const outs: RgbImage[] = [];
    const images: ImageResult[] = [];
    try {
      for (const [i, { name: n, hr, lr }] of loaded.entries()) {
        const t = performance.now();
        const sr = await up.upscale(lr);
        const ms = performance.now() - t;
        const s = scoreSR(sr, hr, scale);
        const fid = ref ? psnrY(sr, ref[i], scale) : Infinity;
        const r: ImageResult = {
          name: n, psnr: s.psnrY, ssim: s.ssimY, fidelity: Number.isFinite(fid) ? fid : null,
          dPsnr: refScores ? s.psnrY - refScores[i].psnr : 0, ms,
          ...(sr.bitMap ? { fab: sr.bitMap.fab, bitops: sr.bitMap.bitops / sr.bitMap.fp32Bitops } : {}),
        };
        images.push(r);
        outs.push(sr);
        log(`${name} ${config} ${i + 1}/${loaded.length} ${n}: ${r.psnr.toFixed(4)} dB Δ${r.dPsnr >= 0 ? "+" : ""}${r.dPsnr.toFixed(4)} fid ${r.fidelity?.toFixed(2) ?? "inf"} ${Math.round(ms)} ms`);
      }
    } finally {
      up.dispose();
    }
    const fids = images.map((x) => x.fidelity ?? Infinity);
    const mf = mean(fids);
    const c: ConfigResult = {
      config, bits: config.split(" ")[0], method, bytes, compileMs, images,
      mean: {
        psnr: mean(images.map((x) => x.psnr)), ssim: mean(images.map((x) => x.ssim)),
        fidelity: ref && Number.isFinite(mf) ? mf : null, dPsnr: mean(images.map((x) => x.dPsnr)), ms: mean(images.map((x) => x.ms)),
        ...(images.every((x) => x.fab !== undefined) ? { fab: mean(images.map((x) => x.fab!)), bitops: mean(images.map((x) => x.bitops!)) } : {}),
      },
    };
    res.configs.push(c);
    save(res);
    log(`${name} ${config}: mean ${c.mean.psnr.toFixed(4)} / ${c.mean.ssim.toFixed(4)} Δ${c.mean.dPsnr.toFixed(4)} fid ${c.mean.fidelity?.toFixed(2) ?? "–"} ${Math.round(c.mean.ms)} ms/img` +
      (c.mean.fab !== undefined ? ` FAB ${c.mean.fab.toFixed(3)} BitOPs ${(100 * c.mean.bitops!).toFixed(2)}%` : ""));
    return { outs, images };
  };

  // FP32 once: the FP32 row and the fidelity reference of every quantized configuration.
  const fp = await runConfig("fp32", null, fp32Model(graph), 4 * params, null, null);
  const quantized = o.configs.filter((c) => c !== "fp32");
  if (quantized.length === 0) return res;
  const isDynamic = (c: string) => { const m = parseConfig(c).method; return m === "daq" || m === "dfsq" || m === "odm" || m === "adabm"; };

  // Dynamic methods first (they calibrate themselves, as the CLI does: buildDynamicModel).
  for (const config of quantized.filter(isDynamic)) {
    const p = parseConfig(config);
    const tq = performance.now();
    // Exactly what `lowbit eval --method daq|dfsq --method-options …` builds (src/cli/model-options.ts).
    const qm = await buildDynamicModel(graph, {
      bits: { kind: "int", w: Number(p.bits[1]), a: Number(p.bits[3]) }, method: p.method!, calib: o.calib, methodOptions: p.options,
    }, p.method as DynamicMethod, { runtime: rt }) as DynamicQuantizedModel;
    const qs = (performance.now() - tq) / 1000;
    log(`${name} ${configName(p)}: quantized in ${qs.toFixed(1)} s (${qm.config})`);
    await runConfig(configName(p), p.method, qm, qm.weightBytes, fp.outs, fp.images);
    res.configs[res.configs.length - 1].quantizeSeconds = qs;
    save(res); // runConfig saved before the time was known
  }
  if (quantized.every(isDynamic)) return res;

  // Calibrate once, as the CLI does (src/cli/model-options.ts buildModel): 12 LR images, centre 128² patches.
  const calibImages = await loadCalibImages(o.calib, scale);
  const t0 = performance.now();
  const cal = await calibrate(graph, calibImages, { runtime: rt });
  const seconds = (performance.now() - t0) / 1000;
  res.calib = { dir: o.calib, images: cal.images, pixels: cal.pixels, seconds };
  log(`${name}: calibrated on ${cal.images} images (${cal.pixels} LR px) in ${seconds.toFixed(1)} s`);

  for (const config of quantized.filter((c) => !isDynamic(c))) {
    const p = parseConfig(config);
    const qm = quantizeModel(cal, { bits: p.bits, method: p.method as "minmax" | "percentile" | "mse", percentile: p.options.p ? Number(p.options.p) : undefined,
      residualBits: p.options.r === "16" ? 16 : undefined });
    await runConfig(configName(p), p.method, qm, qm.weightBytes, fp.outs, fp.images);
  }
  return res;
}

// ---------------------------------------------------------------- README tables from JSON files

function report(files: string[]): string {
  const runs: ModelResult[] = files.flatMap((f) => (JSON.parse(readFileSync(f, "utf8")) as BenchResult).runs);
  const scales = [...new Set(runs.map((r) => r.scale))].sort((a, b) => a - b);
  const f4 = (v: number) => v.toFixed(4);
  const sd = (v: number, d = 3) => (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(d);
  const full = (r: ModelResult) => (r.configs[0]?.images.length ?? 0) >= 8;
  const lines: string[] = [];
  for (const s of scales) {
    const at = runs.filter((x) => x.scale === s);
    lines.push(`**×${s}**`, "", "| model | config | PSNR-Y | SSIM-Y | ΔPSNR vs FP32 | fidelity (dB) | size (bytes) |", "|---|---|---:|---:|---:|---:|---:|");
    const ref = at.find(full);
    if (ref) lines.push(`| bicubic | – | ${f4(ref.bicubic.mean.psnr)} | ${f4(ref.bicubic.mean.ssim)} | | | |`);
    for (const r of at) {
      const n = r.configs[0]?.images.length ?? 0;
      const label = full(r) ? r.model : `${r.model} (${n} img)`;
      if (!full(r)) lines.push(`| ${label} | bicubic | ${f4(r.bicubic.mean.psnr)} | ${f4(r.bicubic.mean.ssim)} | | | |`);
      for (const c of r.configs) {
        const fid = c.config === "fp32" ? "" : c.mean.fidelity === null ? "∞" : c.mean.fidelity.toFixed(2);
        const d = c.config === "fp32" ? "" : sd(c.mean.dPsnr);
        const cfg = c.config === "fp32" ? "FP32" : c.config.replace(/^w(\d)a(\d)/, "W$1A$2");
        lines.push(`| ${label} | ${cfg} | ${f4(c.mean.psnr)} | ${f4(c.mean.ssim)} | ${d} | ${fid} | ${c.bytes.toLocaleString("en-US")} |`);
      }
    }
    for (const r of at.filter((x) => !full(x))) {
      lines.push("", `${r.model} (${r.configs[0].images.length} img): only ${r.configs[0].images.map((x) => x.name).join(", ")}, with their own bicubic row.`);
    }
    lines.push("");
  }
  // Adaptive-bit models (issue 7's table): FAB, BitOPs, calibration time and ms per image beside the scores.
  const adaptive = runs.filter((r) => r.configs.some((c) => c.mean.fab !== undefined));
  if (adaptive.length) {
    lines.push("**Bit-width models** (FAB = feature average bit-width; BitOPs = Σ MACs·b_w·b_a over FP32's; quantize = calibration + fine-tuning wall time):", "",
      "| model | config | PSNR-Y | SSIM-Y | ΔPSNR vs FP32 | FAB | BitOPs vs FP32 | quantize (s) | ms / image |", "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (const r of adaptive) {
      const label = full(r) ? r.model : `${r.model} (${r.configs[0]?.images.length ?? 0} img)`;
      for (const c of r.configs) {
        const cfg = c.config === "fp32" ? "FP32" : c.config.replace(/^w(\d)a(\d)/, "W$1A$2");
        const fab = c.mean.fab === undefined ? (c.config === "fp32" ? "32" : "–") : c.mean.fab.toFixed(2);
        const bo = c.mean.bitops === undefined ? (c.config === "fp32" ? "100 %" : "–") : `${(100 * c.mean.bitops).toFixed(1)} %`;
        const qs = c.quantizeSeconds === undefined ? "–" : c.quantizeSeconds.toFixed(0);
        lines.push(`| ${label} | ${cfg} | ${f4(c.mean.psnr)} | ${f4(c.mean.ssim)} | ${c.config === "fp32" ? "" : sd(c.mean.dPsnr)} | ${fab} | ${bo} | ${qs} | ${Math.round(c.mean.ms)} |`);
      }
    }
    lines.push("");
  }
  // Per-image ΔPSNR of the best W8A8 method (by mean ΔPSNR), protocol §7.3, and the W8A8 target.
  lines.push("Per-image ΔPSNR-Y (dB) of the best W8A8 method (largest mean ΔPSNR) per model:", "");
  for (const r of runs) {
    const w8 = r.configs.filter((c) => c.bits === "w8a8" && ["minmax", "percentile", "mse"].includes(c.method ?? ""));
    if (!w8.length) continue;
    const best = w8.reduce((a, b) => (b.mean.dPsnr > a.mean.dPsnr ? b : a));
    const neg = best.images.filter((x) => x.dPsnr < 0).length;
    const minFid = Math.min(...best.images.map((x) => x.fidelity ?? Infinity));
    const meets = w8.filter((c) => c.mean.dPsnr >= -0.05 && (c.mean.fidelity ?? Infinity) >= 40).map((c) => c.method);
    lines.push(`- ${r.model}, ${best.method}: ${best.images.map((x) => `${x.name} ${sd(x.dPsnr, 4)}`).join(", ")} — ` +
      `${neg}/${best.images.length} below FP32; per-image fidelity ≥ ${minFid.toFixed(1)} dB; ` +
      `target (mean Δ ≥ −0.05 dB, fidelity ≥ 40 dB) met by: ${meets.length ? meets.join(", ") : "none"}`);
  }
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------- per-tensor error

/**
 * Where a quantized model loses accuracy: the FP32 plan and the quantized plan run side by side
 * on LR centre crops, node by node (each on its own runtime), and every tensor the quantized plan
 * holds as codes is compared with the FP32 tensor of the same node of the optimized graph:
 * - acc SQNR: dequantized codes vs FP32 — the error accumulated up to this tensor;
 * - iso SQNR: the FP32 tensor fake-quantized on the tensor's own grid vs FP32 — what this grid
 *   alone costs (rounding + clipping), independent of upstream error;
 * - clip %: FP32 values outside the grid's representable range.
 * SQNR = 10·log10(Σ f² / Σ (q − f)²) over all pixels and channels of all crops.
 */
async function layerReport(name: string, config: string, o: { data: string; calib: string; images?: string[]; crop: number }) {
  const graph = await loadModel(name);
  const scale = graph.meta.scale;
  const { bits, method, options } = parseConfig(config);
  if (!method || method === "daq" || method === "dfsq") throw new Error("--layers needs a static quantized --configs entry (minmax | percentile | mse)");
  const cal = await calibrate(graph, await loadCalibImages(o.calib, scale), { runtime: await createRuntime({ backend: "simd" }) });
  const qm = quantizeModel(cal, { bits, method: method as "minmax" | "percentile" | "mse", percentile: options.p ? Number(options.p) : undefined,
    residualBits: options.r === "16" ? 16 : undefined });
  const g = cal.graph;
  const pairs = (await listEvalSet(o.data, scale)).filter((p) => !o.images || o.images.includes(p.name));
  const crops = [];
  for (const p of pairs) {
    const { lr } = await loadEvalPair(p, { channels: 3 });
    const w = Math.min(o.crop, lr.width), h = Math.min(o.crop, lr.height);
    const x0 = (lr.width - w) >> 1, y0 = (lr.height - h) >> 1;
    crops.push({ lr, w, h, x0, y0 });
  }
  const W = Math.max(...crops.map((c) => c.w)), H = Math.max(...crops.map((c) => c.h));
  const rtF = await createRuntime({ backend: "simd" }), rtQ = await createRuntime({ backend: "simd" });
  const fp = new F32Plan(rtF, g, W, H);
  // Unfused: every lowered node's tensor must exist to be read after its steps.
  const qp = new Q8Plan(rtQ, qm, W, H, { ...qm.planOptions, fuse: false });
  if (fp.info.graph.nodes.length !== g.nodes.length) throw new Error("internal: optimized graph changed");
  const acc = g.nodes.map(() => ({ sig: 0, err: 0, iso: 0, clip: 0, n: 0 }));
  const [lo, hi] = g.meta.inputRange;
  const k = (hi - lo) / 255;
  const lnodes = qp.info.nodes;
  for (const c of crops) {
    for (const plan of [fp, qp] as const) {
      const x = plan.inputView(c.w, c.h);
      let d = 0;
      for (let y = c.y0; y < c.y0 + c.h; y++) for (let xx = c.x0; xx < c.x0 + c.w; xx++) {
        const p = (y * c.lr.width + xx) * 3;
        x[d++] = lo + c.lr.data[p] * k;
        x[d++] = lo + c.lr.data[p + 1] * k;
        x[d++] = lo + c.lr.data[p + 2] * k;
      }
    }
    let li = 0;
    for (const n of g.nodes) {
      fp.runSteps(c.w, c.h, fp.nodeSteps[n.id][0], fp.nodeSteps[n.id][1]);
      let at = -1;
      while (at < 0 && li < lnodes.length) {
        qp.runSteps(c.w, c.h, qp.nodeSteps[li][0], qp.nodeSteps[li][1]);
        if (lnodes[li].src === n.id) at = li;
        li++;
      }
      if (at < 0 || lnodes[at].domain !== "q8") continue;
      const grid = qp.info.grids[at]!;
      const v = fp.tensorView(n.id, c.w, c.h);
      const { ptr, stride } = qp.tensorAt(at);
      const u8 = rtQ.arena.u8, f32 = rtF.arena.f32;
      const rlo = grid.scale * (grid.qmin - grid.zeroPoint), rhi = grid.scale * (grid.qmax - grid.zeroPoint);
      const a = acc[n.id];
      for (let p = 0; p < v.pixels; p++) for (let ch = 0; ch < v.channels; ch++) {
        const f = f32[v.offset + p * v.stride + ch];
        const q = grid.scale * (u8[ptr + p * stride + ch] - grid.zeroPoint);
        const fq = fakeQuantize(f, grid);
        a.sig += f * f;
        a.err += (q - f) ** 2;
        a.iso += (fq - f) ** 2;
        if (f < rlo || f > rhi) a.clip++;
        a.n++;
      }
    }
  }
  fp.dispose();
  qp.dispose();
  const db = (s: number, e: number) => (e === 0 ? Infinity : 10 * Math.log10(s / e));
  const rows = g.nodes.filter((n) => acc[n.id].n > 0).map((n) => {
    const a = acc[n.id], t = qm.tensors[n.id];
    const desc = n.op === "conv2d" ? `conv${n.k} ${n.cin}→${n.cout}${n.activation.kind !== "linear" ? " " + n.activation.kind : ""}` : n.op;
    return { id: n.id, name: n.name, op: desc, bits: t.bits, range: t.range, acc: db(a.sig, a.err), iso: db(a.sig, a.iso), clip: (100 * a.clip) / a.n };
  });
  const f2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : "inf");
  const line = (r: (typeof rows)[number]) =>
    `${String(r.id).padStart(4)}  ${r.name.padEnd(34)} ${r.op.padEnd(22)} a${r.bits} [${r.range[0].toPrecision(4)}, ${r.range[1].toPrecision(4)}]`.padEnd(100) +
    ` acc ${f2(r.acc).padStart(6)} dB  iso ${f2(r.iso).padStart(6)} dB  clip ${r.clip.toFixed(3)} %`;
  const out = [`# ${name} ${bits} ${method}: per-tensor SQNR vs FP32 on ${crops.length} LR centre crop(s) ≤ ${o.crop}² (${pairs.map((p) => p.name).join(", ")})`, ...rows.map(line)];
  out.push("", "# lowest isolated SQNR (the coarsest grids):", ...[...rows].sort((x, y) => x.iso - y.iso).slice(0, 8).map(line));
  out.push("", "# largest accumulated-SQNR drop from the tensor's lowest-SQNR input:");
  const byId = new Map(rows.map((r) => [r.id, r]));
  const drops = rows.map((r) => {
    const ins = g.nodes[r.id].inputs.map((i) => byId.get(i)?.acc).filter((x): x is number => x !== undefined);
    return { r, drop: ins.length ? Math.min(...ins) - r.acc : 0 };
  }).sort((x, y) => y.drop - x.drop).slice(0, 8);
  out.push(...drops.map((d) => `${line(d.r)}  drop ${f2(d.drop)} dB`));
  process.stdout.write(out.join("\n") + "\n");
  return rows;
}

// ---------------------------------------------------------------- main

const { values: a } = parseArgs({
  options: {
    models: { type: "string" }, scales: { type: "string" }, images: { type: "string" }, configs: { type: "string" },
    data: { type: "string" }, calib: { type: "string" }, tile: { type: "string" }, json: { type: "string" },
    report: { type: "string" }, layers: { type: "boolean" }, crop: { type: "string" },
  },
});

if (a.layers) {
  const data = resolve(a.data ?? process.env.LOWBIT_EVAL_DIR ?? join(ROOT, "..", "..", "shared", "data", "eval"));
  const calib = resolve(a.calib ?? join(ROOT, "data", "calib"));
  const rows = [];
  for (const m of resolveModels((a.models ?? "esrgan-slim-x2").split(","), a.scales ? a.scales.split(",").map(Number) : null)) {
    for (const c of (a.configs ?? "w8a8-minmax").split(",")) {
      rows.push({ model: m, config: c, tensors: await layerReport(m, c, { data, calib, images: a.images?.split(","), crop: a.crop ? Number(a.crop) : 96 }) });
    }
  }
  if (a.json) writeFileSync(a.json, JSON.stringify(rows, null, 1));
} else if (a.report) {
  process.stdout.write(report(a.report.split(",")));
} else {
  const scales = a.scales ? a.scales.split(",").map(Number) : null;
  const models = resolveModels(a.models ? a.models.split(",") : DEFAULT_MODELS, scales);
  const configs = a.configs ? a.configs.split(",").map((c) => configName(parseConfig(c))) : [...ALL_CONFIGS];
  if (!configs.includes("fp32")) configs.unshift("fp32"); // the fidelity reference
  const data = resolve(a.data ?? process.env.LOWBIT_EVAL_DIR ?? join(ROOT, "..", "..", "shared", "data", "eval"));
  if (!existsSync(join(data, "hr"))) throw new Error(`eval set not found at ${data} (pass --data)`);
  const calib = resolve(a.calib ?? join(ROOT, "data", "calib"));
  const tile = a.tile ? Number(a.tile) : 128;
  const rt = await createRuntime({ backend: "simd" });
  const out: BenchResult = {
    tool: "bench/quant-accuracy.ts",
    lowbit: JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version,
    node: process.versions.node, backend: rt.info.backend, date: new Date().toISOString(), data,
    protocol: "PSNR-Y/SSIM-Y (BT.601 Y, shave = scale) on the uint8 output vs HR; fidelity = PSNR-Y vs the same model's FP32 output, same tiling",
    runs: [],
  };
  const save = () => {
    if (a.json) writeFileSync(a.json, JSON.stringify(out, null, 1));
  };
  log(`models ${models.join(", ")} · configs ${configs.join(", ")} · tile ${tile} · backend ${rt.info.backend} · data ${data} · calib ${calib}`);
  for (const m of models) {
    let slot = -1;
    await runModel(m, { data, calib, tile, images: a.images?.split(","), configs }, rt, (r) => {
      if (slot < 0) slot = out.runs.push(r) - 1;
      else out.runs[slot] = r;
      save();
    });
  }
  save();
  if (!a.json) process.stdout.write(JSON.stringify(out) + "\n");
}
