// Post-training quantization accuracy of the bundled models on the shared eval set.
//
//   node --import tsx bench/quant-accuracy.ts [--models a,b] [--scales 2,4] [--images x,y]
//        [--configs fp32,w8a8-minmax,…] [--data DIR] [--calib DIR] [--tile N] [--json out.json]
//   node --import tsx bench/quant-accuracy.ts --report out1.json,out2.json   (README tables)
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
import { loadCalibImages } from "../src/cli/model-options.ts";
import { listEvalSet, loadEvalPair } from "../src/metrics/evalset.ts";
import { scoreSR } from "../src/metrics/score.ts";
import { psnrY } from "../src/metrics/psnr.ts";
import { bicubicUp } from "../src/metrics/bicubic.ts";
import { planTiles } from "../src/tiling/tiles.ts";
import type { Graph } from "../src/graph/ir.ts";
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
}

interface ConfigResult {
  config: string;
  bits: string;
  method: string | null;
  /** Weights as stored: FP32 4 B per parameter (incl. biases); quantized = QuantizedModel.weightBytes. */
  bytes: number;
  compileMs: number;
  images: ImageResult[];
  mean: { psnr: number; ssim: number; fidelity: number | null; dPsnr: number; ms: number };
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

function parseConfig(c: string): { bits: string; method: "minmax" | "percentile" | "mse" | null } {
  const [bits, method] = c.replace("-", " ").trim().toLowerCase().split(/\s+/);
  if (bits === "fp32") return { bits, method: null };
  if (!/^w\da\d$/.test(bits) || !["minmax", "percentile", "mse"].includes(method)) throw new Error(`bad config '${c}' (e.g. w8a8-minmax)`);
  return { bits, method: method as "minmax" | "percentile" | "mse" };
}

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
    const up = new Upscaler(model, rt, { tile: o.tile, margin });
    const tc = performance.now();
    up.planFor(maxW, maxH);
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
      },
    };
    res.configs.push(c);
    save(res);
    log(`${name} ${config}: mean ${c.mean.psnr.toFixed(4)} / ${c.mean.ssim.toFixed(4)} Δ${c.mean.dPsnr.toFixed(4)} fid ${c.mean.fidelity?.toFixed(2) ?? "–"} ${Math.round(c.mean.ms)} ms/img`);
    return { outs, images };
  };

  // FP32 once: the FP32 row and the fidelity reference of every quantized configuration.
  const fp = await runConfig("fp32", null, fp32Model(graph), 4 * params, null, null);
  const quantized = o.configs.filter((c) => c !== "fp32");
  if (quantized.length === 0) return res;

  // Calibrate once, as the CLI does (src/cli/model-options.ts buildModel): 12 LR images, centre 128² patches.
  const calibImages = await loadCalibImages(o.calib, scale);
  const t0 = performance.now();
  const cal = await calibrate(graph, calibImages, { runtime: rt });
  const seconds = (performance.now() - t0) / 1000;
  res.calib = { dir: o.calib, images: cal.images, pixels: cal.pixels, seconds };
  log(`${name}: calibrated on ${cal.images} images (${cal.pixels} LR px) in ${seconds.toFixed(1)} s`);

  for (const config of quantized) {
    const { bits, method } = parseConfig(config);
    const qm = quantizeModel(cal, { bits, method: method! });
    await runConfig(`${bits} ${method}`, method, qm, qm.weightBytes, fp.outs, fp.images);
  }
  return res;
}

// ---------------------------------------------------------------- README tables from JSON files

function report(files: string[]): string {
  const runs: ModelResult[] = files.flatMap((f) => (JSON.parse(readFileSync(f, "utf8")) as BenchResult).runs);
  const scales = [...new Set(runs.map((r) => r.scale))].sort((a, b) => a - b);
  const f4 = (v: number) => v.toFixed(4);
  const sd = (v: number, d = 3) => (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(d);
  const lines: string[] = [];
  for (const s of scales) {
    lines.push(`**×${s}**`, "", "| model | config | PSNR-Y | SSIM-Y | ΔPSNR vs FP32 | fidelity (dB) | size (bytes) |", "|---|---|---:|---:|---:|---:|---:|");
    for (const r of runs.filter((x) => x.scale === s)) {
      const n = r.configs[0]?.images.length ?? 0;
      const label = `${r.model}${n < 8 ? ` (${n} img)` : ""}`;
      lines.push(`| ${label} | bicubic | ${f4(r.bicubic.mean.psnr)} | ${f4(r.bicubic.mean.ssim)} | | | |`);
      for (const c of r.configs) {
        const fid = c.config === "fp32" ? "" : c.mean.fidelity === null ? "∞" : c.mean.fidelity.toFixed(2);
        const d = c.config === "fp32" ? "" : sd(c.mean.dPsnr);
        lines.push(`| ${label} | ${c.config} | ${f4(c.mean.psnr)} | ${f4(c.mean.ssim)} | ${d} | ${fid} | ${c.bytes.toLocaleString("en-US")} |`);
      }
    }
    lines.push("");
  }
  // Per-image ΔPSNR of the best W8A8 method (by mean ΔPSNR), protocol §7.3.
  lines.push("Per-image ΔPSNR-Y (dB) of the best W8A8 method per model:", "");
  for (const r of runs) {
    const w8 = r.configs.filter((c) => c.bits === "w8a8");
    if (!w8.length) continue;
    const best = w8.reduce((a, b) => (b.mean.dPsnr > a.mean.dPsnr ? b : a));
    const neg = best.images.filter((x) => x.dPsnr < 0).length;
    const worst = Math.min(...best.images.map((x) => x.dPsnr));
    const minFid = Math.min(...best.images.map((x) => x.fidelity ?? Infinity));
    lines.push(`- ${r.model} ${best.config}: ${best.images.map((x) => `${x.name} ${sd(x.dPsnr)}`).join(", ")} — ` +
      `${neg}/${best.images.length} negative, worst ${sd(worst)}, min fidelity ${minFid.toFixed(2)} dB`);
  }
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------- main

const { values: a } = parseArgs({
  options: {
    models: { type: "string" }, scales: { type: "string" }, images: { type: "string" }, configs: { type: "string" },
    data: { type: "string" }, calib: { type: "string" }, tile: { type: "string" }, json: { type: "string" },
    report: { type: "string" },
  },
});

if (a.report) {
  process.stdout.write(report(a.report.split(",")));
} else {
  const scales = a.scales ? a.scales.split(",").map(Number) : null;
  const models = resolveModels(a.models ? a.models.split(",") : DEFAULT_MODELS, scales);
  const configs = a.configs ? a.configs.split(",").map((c) => { const p = parseConfig(c); return p.method ? `${p.bits} ${p.method}` : "fp32"; }) : [...ALL_CONFIGS];
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
