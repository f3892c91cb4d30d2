/**
 * The one seam between the command line and model configurations: `--bits`, `--method` and
 * `--calib` are validated here into ModelOptions, and `buildModel(graph, options)` turns a
 * loaded FP32 graph into the CompilableModel the engine runs. Every command (upscale, eval)
 * goes through it, so a new quantization method plugs in by extending `buildModel` alone.
 */
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { centreCrop, type ImageLike } from "../engine/image.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { readImage } from "../io/image.ts";
import { calibrate } from "../quant/calibrate.ts";
import { loadModelArg, packageRoot } from "./common.ts";
import { looksLikeSafetensors, readLowbitFile } from "../io/lowbit-file.ts";
import { loadOnnxModel } from "../io/onnx/quantized.ts";
import { QuantizedModel, quantizeModel } from "../quant/quantize-model.ts";
import type { Graph } from "../graph/ir.ts";
import { fp32Model, type CompilableModel } from "../engine/upscaler-api.ts";
import { LowbitError } from "../runtime/errors.ts";
import { UsageError, str, type Parsed } from "./args.ts";
import { quantizeDaq } from "../methods/daq/quantize.ts";
import { DynamicQuantizedModel } from "../methods/dynamic/model.ts";
import { quantizeDfsq } from "../methods/dfsq/quantize.ts";
import { ODM_OPTION_KEYS, odmInitFromOptions } from "../methods/odm/options.ts";
import { ADABM_OPTION_KEYS, adabmFromOptions } from "../methods/adabm/options.ts";
import { boolOption, numberOption } from "../methods/options.ts";
import { CADYQ_OPTION_KEYS, cadyqFromOptions } from "../methods/cadyq/options.ts";
import { FQSR_OPTION_KEYS, fqsrOptionsFrom } from "../methods/fqsr/options.ts";
import { fqsrFinetune } from "../methods/fqsr/finetune.ts";
import { loadTrainData } from "./finetune.ts";
import type { LayerScope } from "../methods/scope.ts";
import type { DynamicPath } from "../graph/compile-dynamic.ts";

/** Weight / activation bit widths, or full precision. */
export type Bits = { kind: "fp32" } | { kind: "int"; w: number; a: number };

/** Options every command that loads a model shares (parseArgs specs): the model and its configuration. */
export const MODEL_OPTION_SPECS = {
  model: { type: "string" },
  bits: { type: "string" },
  method: { type: "string" },
  calib: { type: "string" },
  "layer-bits": { type: "string" },
  "method-options": { type: "string" },
  "residual-bits": { type: "string" },
  "input-range": { type: "string" },
  quiet: { type: "boolean", short: "q" },
} as const;

/**
 * Quantization methods the CLI accepts (shared/methods/*.md and DESIGN.md's quant/ list):
 * uniform PTQ observers (minmax, percentile, mse) and the SR-specific methods.
 */
export const METHODS = ["minmax", "percentile", "mse", "daq", "dfsq", "odm", "adabm", "cadyq", "fqsr"] as const;
export type Method = (typeof METHODS)[number];

/** Bits the kernels can hold: int8 down to int2 codes for weights and activations. */
export const MIN_BITS = 2;
export const MAX_BITS = 8;

export interface ModelOptions {
  bits: Bits;
  /** Per-layer bits from --layer-bits: conv names or roles (head, tail, upsampler) → wXaY | fp32. */
  perLayer?: Record<string, string>;
  /** Set iff bits is integer (default "minmax"). */
  method?: Method;
  /** Calibration image directory (absolute path), when given. */
  calib?: string;
  /**
   * Method knobs from --method-options k=v,… (DAQ: scope, path, step, qq, mode, sensitive, extra;
   * DFSQ: scope, path, patches, patch, seed, restarts). Validated by the method.
   */
  methodOptions?: Record<string, string>;
  /** --residual-bits 16: integer adds store 16-bit sums (QuantConfig.residualBits; static methods only). */
  residualBits?: 16;
}

/** The raw model options of a parsed command line (validated by parseModelOptions). */
export interface RawModelOptions {
  bits?: string;
  method?: string;
  calib?: string;
  layerBits?: string;
  methodOptions?: string;
  residualBits?: string;
}

/** Reads the MODEL_OPTION_SPECS strings of a parsed command line. */
export function rawModelOptions(p: Parsed, command: string): RawModelOptions {
  return {
    bits: str(p, "bits", command), method: str(p, "method", command), calib: str(p, "calib", command), layerBits: str(p, "layer-bits", command),
    methodOptions: str(p, "method-options", command), residualBits: str(p, "residual-bits", command),
  };
}

/** `fp32` or `wXaY` (X, Y in 2..8), case-insensitive. */
export function parseBits(s: string, command = ""): Bits {
  const v = s.trim().toLowerCase();
  if (v === "fp32" || v === "f32" || v === "float32") return { kind: "fp32" };
  const m = /^w(\d+)a(\d+)$/.exec(v);
  if (!m) throw new UsageError(`--bits must be fp32 or wXaY (e.g. w8a8, w4a8), got '${s}'`, command, "E_BITS");
  const w = Number(m[1]);
  const a = Number(m[2]);
  for (const [n, what] of [[w, "weight"], [a, "activation"]] as const) {
    if (n < MIN_BITS || n > MAX_BITS) {
      throw new UsageError(`--bits ${s}: ${what} bits must be in ${MIN_BITS}..${MAX_BITS}, got ${n}`, command, "E_BITS");
    }
  }
  return { kind: "int", w, a };
}

export function bitsName(b: Bits): string {
  return b.kind === "fp32" ? "fp32" : `w${b.w}a${b.a}`;
}

/** What JSON/table output calls a configuration: "fp32", or e.g. "w8a8 minmax". */
export function configName(o: ModelOptions): string {
  if (o.bits.kind === "fp32") return "fp32";
  const layers = o.perLayer ? ` layers:${Object.entries(o.perLayer).map(([k, v]) => `${k}=${v}`).join(",")}` : "";
  return `${bitsName(o.bits)} ${o.method}${layers}${o.residualBits === 16 ? " residual:16" : ""}`;
}

/**
 * Validates the raw option strings. Usage errors (exit 2): malformed bits, unknown method,
 * --method/--calib without integer bits. E_IO (exit 1): --calib is not a readable directory.
 */
export function parseModelOptions(raw: RawModelOptions, command = ""): ModelOptions {
  const bits = raw.bits === undefined ? ({ kind: "fp32" } as Bits) : parseBits(raw.bits, command);
  if (raw.residualBits !== undefined && raw.residualBits !== "8" && raw.residualBits !== "16") {
    throw new UsageError(`--residual-bits must be 8 or 16, got '${raw.residualBits}'`, command, "E_BITS");
  }
  const residualBits = raw.residualBits === "16" ? { residualBits: 16 as const } : {};
  if (raw.residualBits === "16" && (bits.kind === "fp32" || !(PTQ_METHODS as readonly string[]).includes((raw.method ?? "minmax").toLowerCase()))) {
    throw new UsageError(`--residual-bits 16 applies to static quantization (--bits wXaY --method ${PTQ_METHODS.join(" | ")})`, command);
  }
  if (bits.kind === "fp32") {
    if (raw.method !== undefined) throw new UsageError(`--method ${raw.method} needs quantized --bits (e.g. --bits w8a8); fp32 has no method`, command);
    if (raw.calib !== undefined) throw new UsageError("--calib needs quantized --bits (e.g. --bits w8a8); fp32 is not calibrated", command);
    if (raw.layerBits !== undefined) throw new UsageError("--layer-bits needs quantized --bits (e.g. --bits w4a8)", command);
    if (raw.methodOptions !== undefined) throw new UsageError("--method-options needs quantized --bits and a --method", command);
    return { bits };
  }
  const method = (raw.method ?? "minmax").toLowerCase();
  if (!(METHODS as readonly string[]).includes(method)) {
    throw new UsageError(`unknown --method '${raw.method}'; known: ${METHODS.join(", ")}`, command);
  }
  let calib: string | undefined;
  if (raw.calib !== undefined) {
    calib = resolve(raw.calib);
    if (!existsSync(calib) || !statSync(calib).isDirectory()) {
      throw new LowbitError("E_IO", `--calib ${raw.calib}: not a directory`);
    }
  }
  let perLayer: Record<string, string> | undefined;
  if (raw.layerBits !== undefined) {
    perLayer = {};
    for (const part of raw.layerBits.split(",")) {
      const m = /^\s*([^=\s]+)\s*=\s*(\S+)\s*$/.exec(part);
      if (!m) throw new UsageError(`--layer-bits takes name=bits pairs (e.g. head=w8a8,tail=w8a8,upsampler=fp32), got '${part}'`, command);
      parseBits(m[2], command);
      perLayer[m[1]] = m[2].toLowerCase();
    }
  }
  let methodOptions: Record<string, string> | undefined;
  if (raw.methodOptions !== undefined) {
    if (!(DYNAMIC_METHODS as readonly string[]).includes(method) && method !== "fqsr") throw new UsageError(`--method-options applies to --method ${DYNAMIC_METHODS.join(" | ")} | fqsr, not ${method}`, command);
    methodOptions = {};
    for (const part of raw.methodOptions.split(",")) {
      const m = /^\s*([a-z][a-z-]*)\s*=\s*([^=\s]+)\s*$/i.exec(part);
      if (!m) throw new UsageError(`--method-options takes key=value pairs (e.g. scope=full,qq=4), got '${part}'`, command);
      const allowed = method === "fqsr" ? FQSR_OPTION_KEYS : DYNAMIC_METHOD_KEYS[method as DynamicMethod];
      if (!allowed.includes(m[1])) throw new UsageError(`--method-options: '${m[1]}' is not an option of ${method} (${allowed.join(", ")})`, command);
      methodOptions[m[1]] = m[2];
    }
  }
  return { bits, method: method as Method, calib, ...(perLayer ? { perLayer } : {}), ...(methodOptions ? { methodOptions } : {}), ...residualBits };
}

/** Methods with per-image (dynamic) activation statistics, and their --method-options keys. */
export const DYNAMIC_METHODS = ["daq", "dfsq", "odm", "adabm", "cadyq"] as const;
/** The --method-options lines of the eval / quantize / upscale help texts. */
export const METHOD_OPTIONS_HELP = `  --method-options <k=v,…>  daq|dfsq|odm knobs: scope=reference|body|full, path=lut|exact|oracle;
                       daq: step=code|mse, qq=<σ bits, 32 off>, mode=int|reference, sensitive=<fraction>|balanced, extra=<bits>,
                            branch=tensor|channel, stepcal=1 (per-channel step multipliers fitted on --calib);
                       dfsq: patches=32, patch=<LR side>, seed=1, restarts=5, selection=kmeans|optimal, weights=minmax|mse;
                       both: bc=1 (per-image bias correction of the weight rounding);
                       odm (ODM-init PTQ: static P1/P99 ranges, odd weight grid u_w = P99|W|): scope, path, patches=32, patch=48, seed=1,
                       low=1, high=99, wp=99, nudge=0|1, offsets=<fraction of layers with v1 channel offsets>, kind=both|shift|scale, fold=1|0;
                       adabm (bits per tile: --bits wXaY sets W bits and the base A bits): scope, path, patches=100, patch=48, seed=1,
                       batch=16, image=1|0, layer=1|0, bac=1|0, steps=<fine-tuning steps per epoch, 0 = AdaBM-calib>, epochs=10, ftpatch=<LR side>,
                            mlr=<measure lr scale>, alr=<activation-range lr, 0.01>, wlr=<weight-clip lr, 0.01>;
                       cadyq (--bits w8aB, B = the largest candidate; trains selectors on --calib): cand=4:6:8, scope=reference|body, path,
                            steps=300, batch=4, patch=48, lambda=<bit-loss λ_b>, lrw=0 (weights lr; 0 frozen), lra=1e-2, lrs=1e-4, seed=1;
                       fqsr (quantization-aware training on --calib: LR images, or hr/ + lr_x<S>/ for L1 to HR): steps=300, batch=4,
                            patch=48, lr=1e-4, init=warmup|percentile|mse|minmax, grid=fqsr|asymmetric, lq=0.3, clr=1, halve=<N>, seed=1`;

export type DynamicMethod = (typeof DYNAMIC_METHODS)[number];
export const DYNAMIC_METHOD_KEYS: Record<DynamicMethod, readonly string[]> = {
  daq: ["scope", "path", "step", "qq", "mode", "sensitive", "extra", "bc", "branch", "stepcal"],
  dfsq: ["scope", "path", "patches", "patch", "seed", "restarts", "selection", "weights", "bc"],
  odm: ODM_OPTION_KEYS,
  adabm: ADABM_OPTION_KEYS,
  cadyq: CADYQ_OPTION_KEYS,
};

/** Range methods implemented for static post-training quantization; the others are later methods. */
export const PTQ_METHODS = ["minmax", "percentile", "mse"] as const;

export interface BuildContext {
  /** --input-range override for models loaded by name/path (a .lowbit file's range is fixed). */
  inputRange?: [number, number];
  /** Images to calibrate on when --calib is absent (upscale: the input itself). */
  fallbackImages?: ImageLike[];
  /** Directory tried when neither --calib nor fallback images are given (eval: data/calib beside the package). */
  defaultCalibDir?: string | null;
  runtime?: Runtime;
  signal?: AbortSignal;
  /** Calibration progress 0..1. */
  onProgress?: (fraction: number) => void;
}

/** Largest LR patch taken from each calibration image (a centre crop), and the image count cap. */
export const CALIB_PATCH = 128;
export const CALIB_MAX_IMAGES = 32;

/**
 * Calibration images for a ×scale model: `<dir>/lr_x<scale>/` when it exists, else the images
 * in `<dir>` itself (PNG/JPEG, sorted, at most CALIB_MAX_IMAGES), each centre-cropped to at
 * most CALIB_PATCH² LR pixels so calibration costs a bounded number of FP32 runs.
 */
export async function loadCalibImages(dir: string, scale: number, side = CALIB_PATCH): Promise<ImageLike[]> {
  const sub = join(dir, `lr_x${scale}`);
  const from = existsSync(sub) && statSync(sub).isDirectory() ? sub : dir;
  const files = readdirSync(from).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().slice(0, CALIB_MAX_IMAGES);
  if (files.length === 0) throw new LowbitError("E_IO", `--calib ${dir}: no PNG/JPEG images (looked in ${from})`);
  const out: ImageLike[] = [];
  for (const f of files) {
    const img = await readImage(join(from, f), { channels: 3 });
    out.push(centreCrop(img, side));
  }
  return out;
}

/**
 * The model a configuration runs. FP32 is the graph as imported; `wXaY` with a range method
 * (minmax | percentile | mse) calibrates the FP32 model on --calib images (else on the
 * context's fallback images, else on the default calibration directory) and quantizes it
 * fully (src/quant/quantize-model.ts). `fqsr` trains on --calib (quantization-aware, src/methods/fqsr)
 * and returns the same kind of static model.
 */
export async function buildModel(graph: Graph, options: ModelOptions, ctx: BuildContext = {}): Promise<CompilableModel> {
  if (options.bits.kind === "fp32") return fp32Model(graph);
  const method = options.method ?? "minmax";
  if ((DYNAMIC_METHODS as readonly string[]).includes(method)) return buildDynamicModel(graph, options, method as DynamicMethod, ctx);
  if (method === "fqsr") {
    // FQSR (src/methods/fqsr): quantization-aware training on --calib, exported as a static model.
    if (options.perLayer) throw new LowbitError("E_ARGUMENT", "--layer-bits is not supported with --method fqsr (every tensor is trained at --bits)");
    const fo = fqsrOptionsFrom(options.methodOptions ?? {});
    const dir = options.calib ?? (ctx.defaultCalibDir && existsSync(ctx.defaultCalibDir) ? ctx.defaultCalibDir : undefined);
    if (!dir) throw new LowbitError("E_ARGUMENT", "--method fqsr trains on --calib <dir> (LR images, or hr/ + lr_x<S>/ pairs; e.g. the set made by `npm run calib-data`)");
    const data = await loadTrainData(dir, graph.meta.scale);
    const r = await fqsrFinetune(graph, data, { weightBits: options.bits.w, actBits: options.bits.a, ...fo, runtime: ctx.runtime, signal: ctx.signal });
    return r.model;
  }
  if (!(PTQ_METHODS as readonly string[]).includes(method)) {
    throw new LowbitError("E_ARGUMENT", `--method ${method} is not implemented in this version of lowbit (available: ${PTQ_METHODS.join(", ")})`);
  }
  let images: ImageLike[];
  if (options.calib) images = await loadCalibImages(options.calib, graph.meta.scale);
  else if (ctx.fallbackImages?.length) images = ctx.fallbackImages;
  else if (ctx.defaultCalibDir && existsSync(ctx.defaultCalibDir)) images = await loadCalibImages(ctx.defaultCalibDir, graph.meta.scale);
  else throw new LowbitError("E_ARGUMENT", `${configName(options)} needs calibration images: pass --calib <dir of LR images> (e.g. the set made by \`npm run calib-data\`)`);
  const cal = await calibrate(graph, images, { runtime: ctx.runtime, signal: ctx.signal, onProgress: ctx.onProgress });
  // Weights keep their full per-channel range: MSE-optimal weight clipping measured worse here
  // (esrgan-slim ×2 W4A8 mse, 2 eval images: −1.59 dB vs −0.60 dB with the full range).
  return quantizeModel(cal, {
    weightBits: options.bits.w, actBits: options.bits.a, method: method as "minmax" | "percentile" | "mse", perLayer: options.perLayer,
    residualBits: options.residualBits,
  });
}

/** DAQ / DFSQ (src/methods/): per-image statistics, the whole image per tile when it fits. */
export async function buildDynamicModel(graph: Graph, options: ModelOptions, method: DynamicMethod, ctx: BuildContext): Promise<CompilableModel> {
  if (options.bits.kind !== "int") throw new LowbitError("E_ARGUMENT", `${method} needs integer --bits`);
  if (options.perLayer) throw new LowbitError("E_ARGUMENT", `--layer-bits is not supported with --method ${method}; choose its layers with --method-options scope=reference|body|full`);
  const mo = options.methodOptions ?? {};
  const common = {
    weightBits: options.bits.w, actBits: options.bits.a, scope: mo.scope as LayerScope | undefined, path: mo.path as DynamicPath | undefined,
    runtime: ctx.runtime, signal: ctx.signal, onProgress: ctx.onProgress,
  };
  const images = async (side: number): Promise<ImageLike[]> => {
    if (options.calib) return loadCalibImages(options.calib, graph.meta.scale, side);
    if (ctx.defaultCalibDir && existsSync(ctx.defaultCalibDir)) return loadCalibImages(ctx.defaultCalibDir, graph.meta.scale, side);
    if (ctx.fallbackImages?.length) return ctx.fallbackImages;
    throw new LowbitError("E_ARGUMENT", `${configName(options)} needs calibration images: pass --calib <dir of LR images> (e.g. the set made by \`npm run calib-data\`)`);
  };
  if (method === "odm") {
    // ODM-init PTQ (src/methods/odm): P1/P99 ranges on calibration patches; fine-tuning is `lowbit finetune`.
    return odmInitFromOptions(graph, await images(DFSQ_CALIB_SIDE), options.bits, mo, { runtime: ctx.runtime, signal: ctx.signal, onProgress: ctx.onProgress });
  }
  if (method === "adabm") {
    return adabmFromOptions(graph, await images(DFSQ_CALIB_SIDE), options.bits, mo, { runtime: ctx.runtime, signal: ctx.signal, onProgress: ctx.onProgress });
  }
  if (method === "cadyq") {
    // CADyQ (src/methods/cadyq): calibrates α and trains the bit selectors on --calib (FP32 model as teacher).
    return cadyqFromOptions(graph, await images(DFSQ_CALIB_SIDE), options.bits, mo, { runtime: ctx.runtime, signal: ctx.signal, onProgress: ctx.onProgress });
  }
  if (method === "daq") {
    const sensitive = mo.sensitive === "balanced" ? "balanced" : (numberOption(mo, "sensitive") ?? 0);
    const calibrateStep = boolOption(mo, "stepcal");
    return quantizeDaq(graph, {
      ...common, stepTable: mo.step as "code" | "mse" | undefined, qq: numberOption(mo, "qq"), mode: mo.mode as "int" | "reference" | undefined,
      sensitive, extraBits: numberOption(mo, "extra"), branch: mo.branch as "tensor" | "channel" | undefined, calibrateStep,
      images: sensitive === "balanced" || sensitive > 0 || calibrateStep ? await images(CALIB_PATCH) : undefined, biasCorrection: boolOption(mo, "bc"),
    });
  }
  return quantizeDfsq(graph, await images(DFSQ_CALIB_SIDE), {
    ...common, patches: numberOption(mo, "patches"), patchSize: numberOption(mo, "patch"), seed: numberOption(mo, "seed"), restarts: numberOption(mo, "restarts"),
    selection: mo.selection as "kmeans" | "optimal" | undefined, weightRange: mo.weights as "minmax" | "mse" | undefined, biasCorrection: boolOption(mo, "bc"),
  });
}

/** DFSQ samples random patches: keep up to this much of each calibration image. */
export const DFSQ_CALIB_SIDE = 512;

/** `data/calib` beside the package (made by `npm run calib-data`), or null. */
export function defaultCalibDir(): string | null {
  const root = packageRoot();
  if (!root) return null;
  const d = resolve(root, "data", "calib");
  return existsSync(d) ? d : null;
}

/**
 * The model an upscale/eval command runs: a `.lowbit` file as saved (its configuration is
 * fixed: combining it with --bits/--method/--calib is a usage error), or an FP32 model
 * (name, model.json, folder) turned into `options`' configuration by buildModel.
 */
export async function resolveModel(arg: string, options: ModelOptions, ctx: BuildContext = {}, command = ""): Promise<CompilableModel> {
  if (isLowbitPath(arg)) {
    if (ctx.inputRange) throw new UsageError(`${arg}: a .lowbit file fixes its input range; --input-range applies to TF.js models`, command);
    const m = await readLowbitFile(arg);
    if (!(m instanceof QuantizedModel) && !(m instanceof DynamicQuantizedModel)) return buildModel(m, options, ctx);
    if (options.bits.kind !== "fp32" || options.calib !== undefined) {
      throw new UsageError(`${arg} is already quantized (${m.config}); --bits/--method/--calib apply to FP32 models`, command);
    }
    return m;
  }
  if (/\.onnx$/i.test(arg) && existsSync(arg)) {
    // ONNX: QDQ files load as quantized models with their own scales, float ones as graphs.
    const m = await loadOnnxModel(arg, ctx.inputRange ? { inputRange: ctx.inputRange } : {});
    if (!(m instanceof QuantizedModel)) return buildModel(m.graph, options, ctx);
    if (options.bits.kind !== "fp32" || options.calib !== undefined) {
      throw new UsageError(`${arg} is a quantized (QDQ) ONNX model; --bits/--method/--calib apply to FP32 models`, command);
    }
    return m;
  }
  return buildModel(await loadModelArg(arg, ctx.signal, ctx.inputRange), options, ctx);
}

/** A path to an existing `.lowbit` file (by extension, or by its safetensors header). */
export function isLowbitPath(arg: string): boolean {
  if (!existsSync(arg) || !statSync(arg).isFile()) return false;
  if (arg.toLowerCase().endsWith(".lowbit")) return true;
  const fd = openSync(arg, "r");
  try {
    const head = Buffer.alloc(9);
    const n = readSync(fd, head, 0, 9, 0);
    return n === 9 && looksLikeSafetensors(new Uint8Array(head), statSync(arg).size);
  } finally {
    closeSync(fd);
  }
}
