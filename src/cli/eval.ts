/**
 * The evaluation harness (protocol.md): every (HR, LR×s) pair of an eval directory is upscaled
 * by the model and by MATLAB bicubic, and scored with PSNR-Y / SSIM-Y, shave = s. For any
 * configuration other than FP32 the same graph also runs in FP32 (on its own runtime) and each
 * output gets `fidelity` = PSNR-Y against the FP32 output — the number that isolates what
 * quantization changed (models.md, last section).
 *
 * `evaluate()` is the library form (tests, scripts); `evalCommand()` the `lowbit eval` CLI.
 */
import { realpathSync } from "node:fs";
import { relative, resolve, isAbsolute, sep } from "node:path";
import type { Graph } from "../graph/ir.ts";
import { fp32Model, Upscaler, type CompilableModel } from "../engine/upscaler-api.ts";
import { planTiles } from "../tiling/tiles.ts";
import { LowbitError, throwIfAborted } from "../runtime/errors.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { listEvalSet, loadEvalPair } from "../metrics/evalset.ts";
import { bicubicUp } from "../metrics/bicubic.ts";
import { psnrY } from "../metrics/psnr.ts";
import { scoreSR } from "../metrics/score.ts";
import { BACKENDS, flag, int, oneOf, parseCommand, positionals, str, UsageError, type BackendChoice } from "./args.ts";
import { defaultEvalDir, parseRange, rangeText, runtimeFor, type CliIO } from "./common.ts";
import { buildModel, defaultCalibDir, isLowbitPath, parseModelOptions, rawModelOptions, resolveModel, type ModelOptions, type RawModelOptions, MODEL_OPTION_SPECS, METHOD_OPTIONS_HELP } from "./model-options.ts";
import { getModelInfo, loadModel } from "../models/registry.ts";
import { ProgressBar } from "./progress.ts";
import { graphMacs } from "../methods/prune/nm-mask.ts";

/**
 * Options of `evaluate`: the model, the data and the run; the configuration fields (RawModelOptions: bits, method,
 * calib, layerBits, methodOptions, residualBits) are validated as on the command line and ignored for a CompilableModel.
 */
export interface EvaluateOptions extends RawModelOptions {
  /** Registered name, model.json path (or its directory), a loaded Graph, or a ready CompilableModel. */
  model: string | Graph | CompilableModel;
  /** Directory with hr/ and lr_x<scale>/. */
  data: string;
  /** Set internally when `model` named a .lowbit file (its FP32 reference is the registered original). */
  fromFile?: boolean;
  /** Upscale factor; default (and required to match) the model's. */
  scale?: number;
  /** --input-range override for a model loaded by name/path. */
  inputRange?: [number, number];
  /** LR tile core size (default 128, adaptive-bit models 96; 0 = whole image). */
  tile?: number;
  /** Tile overlap in LR pixels (default: the engine's per-model default). */
  margin?: number;
  /** Only these images (names without extension), in the set's order. */
  images?: string[];
  /** Backend for new runtimes (ignored when `runtime` is given). */
  backend?: BackendChoice;
  /** Runtime for the evaluated model (the FP32 reference always gets its own). */
  runtime?: Runtime;
  signal?: AbortSignal;
  /** Called after each image. */
  onImage?: (r: EvalImage, index: number, total: number) => void;
  /** Called during each image's upscale (fraction over that image's tiles). */
  onProgress?: (name: string, index: number, total: number, fraction: number) => void;
}

export interface Score {
  psnr: number;
  ssim: number;
}

export interface EvalImage extends Score {
  name: string;
  /** HR size. */
  width: number;
  height: number;
  /** Wall time of the model's upscale of this image (plan compiled beforehand). */
  ms: number;
  /** PSNR-Y against the same model's FP32 output (non-FP32 configurations only); null = identical. */
  fidelity?: number | null;
  /** MATLAB-bicubic upscale of the same LR image. */
  bicubic: Score;
  /** Adaptive-bit models (AdaBM, CADyQ): feature average bit-width and BitOPs / FP32 BitOPs of this image. */
  fab?: number;
  bitops?: number;
  /** Conv GMACs of this image's upscale, untiled (N:M layers at their effective share; graphMacs). */
  gmacs?: number;
}

export interface EvalResult {
  model: string;
  scale: number;
  config: string;
  images: EvalImage[];
  mean: Score & { fidelity?: number | null; fab?: number; bitops?: number; gmacs?: number };
  bicubic: Score;
  /** Everything protocol.md §7 asks to state besides the numbers. */
  shave: number;
  inputRange: [number, number];
  tiling: { tile: number | "whole"; margin: number };
  backend: string;
  data: string;
  calib?: string;
  /** One-off plan compilation, not included in per-image ms. */
  compileMs: number;
}

function isCompilable(x: unknown): x is CompilableModel {
  return typeof x === "object" && x !== null && typeof (x as CompilableModel).compile === "function" && "graph" in x;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Infinite PSNR (identical images) is reported as null: JSON has no Infinity. */
const finiteOrNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

/** True when `inner` is `outer` or inside it (after resolving symlinks). */
function within(inner: string, outer: string): boolean {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const rel = relative(real(outer), real(inner));
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel) && rel.split(sep)[0] !== "..");
}

/** Runs the protocol on an eval directory and returns the JSON-able result (see EvalResult). */
export async function evaluate(o: EvaluateOptions): Promise<EvalResult> {
  throwIfAborted(o.signal);
  let model: CompilableModel;
  let opts: ModelOptions | null = null;
  if (isCompilable(o.model)) {
    if (o.bits !== undefined || o.method !== undefined || o.calib !== undefined) {
      throw new LowbitError("E_ARGUMENT", "evaluate: bits/method/calib apply to a graph or model name, not to a ready CompilableModel");
    }
    model = o.model;
  } else {
    opts = parseModelOptions(o, "eval");
    if (opts.calib && within(opts.calib, o.data)) {
      throw new LowbitError("E_ARGUMENT", `--calib ${opts.calib} is inside the eval data ${o.data}: never calibrate on the eval images (protocol.md §7)`);
    }
    const ctx = { defaultCalibDir: defaultCalibDir(), signal: o.signal, inputRange: o.inputRange };
    model = typeof o.model === "string" ? await resolveModel(o.model, opts, ctx, "eval") : await buildModel(o.model, opts, ctx);
    if (typeof o.model === "string" && isLowbitPath(o.model)) o = { ...o, fromFile: true };
  }
  const graph = model.graph;
  const scale = o.scale ?? graph.meta.scale;
  if (scale !== graph.meta.scale) {
    throw new LowbitError("E_ARGUMENT", `model ${graph.meta.name} upscales ×${graph.meta.scale}, not ×${scale}`);
  }
  let pairs = await listEvalSet(o.data, scale);
  if (o.images !== undefined) {
    const want = new Set(o.images);
    const names = new Set(pairs.map((p) => p.name));
    const missing = [...want].filter((n) => !names.has(n));
    if (missing.length) throw new LowbitError("E_ARGUMENT", `no image ${missing.map((n) => `'${n}'`).join(", ")} in ${o.data}; available: ${[...names].join(", ")}`);
    pairs = pairs.filter((p) => want.has(p.name));
    if (pairs.length === 0) throw new LowbitError("E_ARGUMENT", "images: the list is empty");
  }

  const rt = o.runtime ?? (await runtimeFor(o.backend));
  // Per-image statistics (DAQ, DFSQ) are defined on the whole image: one tile unless --tile is given.
  const whole = o.tile === 0 || (o.tile === undefined && (model as { wholeImage?: boolean }).wholeImage === true);
  const maxLr = Math.max(...pairs.map((p) => Math.max(p.width, p.height) / scale));
  const tile = whole ? maxLr : (o.tile ?? (model as { defaultTile?: number }).defaultTile ?? 128);
  const up = new Upscaler(model, rt, { tile, margin: o.margin });
  const margin = up.margin;
  const isFp32 = model.config === "fp32";
  // The FP32 reference runs on its own runtime: two plans in one arena would free each other's memory.
  // A model read from a .lowbit file carries dequantized weights only: its FP32 reference is the
  // original registered model when lowbit knows it by name.
  const refGraph = !isFp32 && o.fromFile && getModelInfo(graph.meta.name)
    ? await loadModel(graph.meta.name, { inputRange: graph.meta.inputRange, signal: o.signal })
    : graph;
  const ref = isFp32 ? null : new Upscaler(fp32Model(refGraph), await runtimeFor(rt.info.backend), { tile, margin });

  // Compile once for the largest tile region of the set, so per-image times are inference only.
  let maxW = 0, maxH = 0;
  for (const p of pairs) {
    const g = planTiles(p.width / scale, p.height / scale, tile, margin, graph.meta.borderPad ?? 0, graph.meta.tileAlign ?? 1);
    maxW = Math.max(maxW, g.maxW);
    maxH = Math.max(maxH, g.maxH);
  }
  const tc = performance.now();
  up.planFor(maxW, maxH);
  const compileMs = performance.now() - tc;
  ref?.planFor(maxW, maxH);

  // Effective conv MACs per LR pixel (pruned / N:M models count what their sparsity leaves).
  const macsPerPixel = graphMacs(model.graph).effective;
  const images: EvalImage[] = [];
  try {
    for (const [i, pair] of pairs.entries()) {
      throwIfAborted(o.signal);
      const { hr, lr } = await loadEvalPair(pair, { channels: 3 });
      const t = performance.now();
      const sr = await up.upscale(lr, {
        signal: o.signal,
        onProgress: o.onProgress && ((e) => o.onProgress!(pair.name, i, pairs.length, e.fraction)),
      });
      const ms = performance.now() - t;
      const s = scoreSR(sr, hr, scale);
      const b = scoreSR(bicubicUp(lr, scale), hr, scale);
      const r: EvalImage = { name: pair.name, width: hr.width, height: hr.height, psnr: s.psnrY, ssim: s.ssimY, ms, bicubic: { psnr: b.psnrY, ssim: b.ssimY },
        gmacs: (macsPerPixel * lr.width * lr.height) / 1e9 };
      if (sr.bitMap) {
        r.fab = sr.bitMap.fab;
        r.bitops = sr.bitMap.bitops / sr.bitMap.fp32Bitops;
      }
      if (ref) {
        const f = await ref.upscale(lr, { signal: o.signal });
        r.fidelity = finiteOrNull(psnrY(sr, f, scale));
      }
      images.push(r);
      o.onImage?.(r, i, pairs.length);
    }
  } finally {
    up.dispose();
    ref?.dispose();
  }

  const result: EvalResult = {
    model: graph.meta.name,
    scale,
    config: model.config,
    images,
    mean: { psnr: mean(images.map((r) => r.psnr)), ssim: mean(images.map((r) => r.ssim)), gmacs: mean(images.map((r) => r.gmacs!)) },
    bicubic: { psnr: mean(images.map((r) => r.bicubic.psnr)), ssim: mean(images.map((r) => r.bicubic.ssim)) },
    shave: scale,
    inputRange: [...graph.meta.inputRange],
    tiling: { tile: whole ? "whole" : tile, margin },
    backend: rt.info.backend,
    data: resolve(o.data),
    compileMs,
  };
  if (opts?.calib) result.calib = opts.calib;
  if (ref) result.mean.fidelity = finiteOrNull(mean(images.map((r) => r.fidelity ?? Infinity)));
  if (images.length && images.every((r) => r.fab !== undefined)) {
    result.mean.fab = mean(images.map((r) => r.fab!));
    result.mean.bitops = mean(images.map((r) => r.bitops!));
  }
  return result;
}

export const EVAL_USAGE = `Usage: lowbit eval --model <name|path> [--data <dir>] [--scale S] [options]

Scores a model on an SR eval set (protocol.md): PSNR-Y / SSIM-Y on BT.601 Y, shave = scale,
per image and mean, beside MATLAB bicubic on the same LR images.

Options:
  --model <name|path>   registered model name (see \`lowbit models\`), a model.json path or
                        its directory (required)
  --data <dir>          directory with hr/ and lr_x<S>/ (default: $LOWBIT_EVAL_DIR, else
                        ../shared/data/eval beside the repository when present)
  --scale <S>           upscale factor (default: the model's; must match it)
  --images <a,b,...>    only these images (file names without extension)
  --tile <N>            LR tile core size (default 128; adaptive-bit models 96, their bit-decision
                        unit; 0 = whole image in one tile)
  --margin <N>          tile overlap in LR pixels (default: exact for rdn, 16 for rrdn)
  --backend <b>         auto | simd | relaxed (default auto)
  --bits <fp32|wXaY>    configuration (default fp32; X, Y in 2..8)
  --method <name>       quantization method for integer --bits (default minmax)
  --calib <dir>         calibration images (never the eval images)
  --layer-bits <l=b,…> per-layer bits: conv names or roles head|tail|upsampler = wXaY|fp32
  --residual-bits 16   integer adds keep 16-bit sums (the residual stream; convs still read 8-bit codes)
${METHOD_OPTIONS_HELP}
  --input-range <lo,hi> value range pixels 0..255 map to (default: the model's; psnr-small 0,1)
  --json                print one JSON object instead of the table:
                        {model, scale, config, images: [{name, psnr, ssim, ms, bicubic}],
                         mean: {psnr, ssim}, bicubic: {psnr, ssim}, tiling, backend, ...};
                        adaptive-bit models add fab (feature average bit-width) and bitops
                        (BitOPs / FP32 BitOPs) per image and in the mean;
                        non-FP32 configurations add fidelity (PSNR-Y vs the FP32 output,
                        null = identical) per image and in the mean
  --quiet, -q           no progress on stderr
  -h, --help            this help
`;

const OPTIONS = {
  ...MODEL_OPTION_SPECS,
  data: { type: "string" },
  scale: { type: "string" },
  images: { type: "string" },
  tile: { type: "string" },
  margin: { type: "string" },
  backend: { type: "string" },
  json: { type: "boolean" },
} as const;

export async function evalCommand(argv: string[], io: CliIO): Promise<number> {
  const cmd = "eval";
  const p = parseCommand(argv, OPTIONS, cmd);
  if (flag(p, "help")) {
    io.stdout.write(EVAL_USAGE);
    return 0;
  }
  positionals(p, [], cmd);
  const modelArg = str(p, "model", cmd);
  if (modelArg === undefined) throw new UsageError("--model is required (a name from `lowbit models`, or a model.json path)", cmd);
  // Every option is validated before the model is loaded or the data is read.
  const raw = rawModelOptions(p, cmd);
  parseModelOptions(raw, cmd);
  const scale = int(p, "scale", 1, 64, cmd);
  const tile = int(p, "tile", 0, 1 << 16, cmd);
  const margin = int(p, "margin", 0, 4096, cmd);
  const backend = oneOf(p, "backend", BACKENDS, cmd);
  const imagesArg = str(p, "images", cmd);
  const images = imagesArg?.split(",").map((s) => s.trim());
  if (images && images.some((s) => s === "")) throw new UsageError(`--images: empty name in '${imagesArg}'`, cmd);
  const data = str(p, "data", cmd) ?? defaultEvalDir(io.env);
  if (data === null) throw new UsageError("--data is required: no eval set found at $LOWBIT_EVAL_DIR or ../shared/data/eval beside the repository", cmd);
  const json = flag(p, "json");
  const quiet = flag(p, "quiet");
  const bar = new ProgressBar(quiet ? null : io.stderr, "eval");
  const result = await evaluate({
    model: modelArg,
    data,
    scale,
    ...raw,
    inputRange: parseRange(str(p, "input-range", cmd), cmd),
    tile,
    margin,
    images,
    backend,
    signal: io.signal,
    onProgress: bar.tty ? (name, i, n, f) => bar.update((i + f) / n, `${i + 1}/${n} ${name}`) : undefined,
    onImage: (r, i, n) => {
      if (bar.tty) bar.update((i + 1) / n);
      else if (!quiet) io.stderr.write(`eval: ${i + 1}/${n} ${r.name} ${r.psnr.toFixed(4)} dB ${Math.round(r.ms)} ms\n`);
    },
  });
  bar.done();
  io.stdout.write(json ? `${JSON.stringify(result)}\n` : formatTable(result));
  return 0;
}

/** The human-readable table: per image, mean, with the bicubic columns beside the model's. */
export function formatTable(r: EvalResult): string {
  const fid = r.images.some((x) => x.fidelity !== undefined);
  const f4 = (v: number) => v.toFixed(4);
  const fd = (v: number | null | undefined) => (v === null ? "inf" : v === undefined ? "" : v.toFixed(2));
  const d = (v: number) => (v >= 0 ? "+" : "") + v.toFixed(2);
  const ad = r.mean.fab !== undefined;
  const head = ["image", "HR size", "PSNR-Y", "SSIM-Y", "bicubic", "SSIM-Y", "Δ dB", ...(fid ? ["fidelity"] : []), ...(ad ? ["FAB", "BitOPs"] : []), "ms"];
  const adc = (x: { fab?: number; bitops?: number }) => (ad ? [x.fab!.toFixed(2), `${(100 * x.bitops!).toFixed(2)}%`] : []);
  const rows = r.images.map((x) => [
    x.name, `${x.width}×${x.height}`, f4(x.psnr), f4(x.ssim), f4(x.bicubic.psnr), f4(x.bicubic.ssim), d(x.psnr - x.bicubic.psnr),
    ...(fid ? [fd(x.fidelity)] : []), ...adc(x), String(Math.round(x.ms)),
  ]);
  const totalMs = r.images.reduce((a, x) => a + x.ms, 0);
  rows.push([
    "mean", "", f4(r.mean.psnr), f4(r.mean.ssim), f4(r.bicubic.psnr), f4(r.bicubic.ssim), d(r.mean.psnr - r.bicubic.psnr),
    ...(fid ? [fd(r.mean.fidelity)] : []), ...adc(r.mean), String(Math.round(totalMs / r.images.length)),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ").trimEnd();
  const tileText = r.tiling.tile === "whole" ? "whole image" : `tile ${r.tiling.tile}`;
  const out = [
    `${r.model} ×${r.scale} ${r.config} · input ${rangeText(r.inputRange)} · ${tileText}, margin ${r.tiling.margin} · backend ${r.backend}`,
    `PSNR-Y / SSIM-Y, shave ${r.shave} (protocol.md) · data ${r.data}`,
    "",
    line(head),
    line(w.map((n) => "-".repeat(n))),
    ...rows.slice(0, -1).map(line),
    line(w.map((n) => "-".repeat(n))),
    line(rows[rows.length - 1]),
  ];
  return out.join("\n") + "\n";
}
