/**
 * `lowbit finetune`: quantization-aware fine-tuning of an FP32 model with ODM (src/methods/odm) or FQSR
 * (src/methods/fqsr) on a few LR images (FP32 teacher as the target) or LR/HR pairs (L1 to HR), saved as a static integer
 * `.lowbit` model that `lowbit eval --model model.lowbit` and `lowbit upscale` run.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { UsageError, flag, int, parseCommand, positionals, str } from "./args.ts";
import { loadModelArg, parseRange, seconds, type CliIO } from "./common.ts";
import { writeLowbitFile } from "../io/lowbit-file.ts";
import { readImage } from "../io/image.ts";
import { listEvalSet, loadEvalPair } from "../metrics/evalset.ts";
import { parseBits } from "../quant/config.ts";
import { LowbitError } from "../runtime/errors.ts";
import type { ImageLike } from "../engine/image.ts";
import type { LayerScope } from "../methods/scope.ts";
import type { DynamicPath } from "../graph/compile-dynamic.ts";
import { odmFinetune, type OdmFinetuneOptions } from "../methods/odm/finetune.ts";
import { fqsrFinetune, type FqsrOptions } from "../methods/fqsr/finetune.ts";
import { fqsrOptionsFrom } from "../methods/fqsr/options.ts";
import type { FinetuneProgress } from "../train/finetune.ts";

export const FINETUNE_USAGE = `usage: lowbit finetune --model <name|model.json> --method odm|fqsr --bits wXaY --data <dir>
                      [--scale S] [--steps N] -o <out.lowbit>

Fine-tunes a quantized model (fake quantization, straight-through gradients, lowbit's own WASM
gradient engine) on the images in --data and writes a static integer .lowbit model.

  --model <m>        registered name (lowbit models), model.json path or its folder
  --method odm       ODM (odm.md): learned activation ranges from P1/P99, odd weight grid u_w = P99|W|·γ
  --method fqsr      FQSR (fqsr.md): every tensor of the fully quantized static model on a learnable clip α,
                     calibration loss 0.3·mean|x − x̂|; the output runs on the same plan as \`quantize\`
  --bits <wXaY>      weight / activation bits, X and Y in 2..8 (e.g. w4a4, w2a2)
  --data <dir>       LR images (target: the FP32 model's output), or a dir with hr/ and lr_x<S>/ (L1 to HR);
                     never the images you evaluate on
  --scale <S>        the model's scale (checked; selects lr_x<S>/)
  --steps <N>        optimizer steps (default 500)
  --batch <B>        samples per step (default 4)
  --patch <P>        LR patch side (default 48)
  --lr <x>           base learning rate (default 1e-4; activation ranges 10×)
  --seed <n>         sampling seed (default 1)
  --method-options <k=v,…>  ODM components (ablation switches):
                       mr=cos|naive|0 (v2 mismatch regularizer, default cos), lm=<λ_M, 1e-5>,
                       wcc=1|0 (v2 weight-clipping correction, default 1),
                       vr=sign|naive|0 (v1 variance regularizer, default 0), lv=<λ_V, 1e-3>,
                       offsets=<fraction of layers with v1 channel offsets, default 0>,
                       scope=body|full|reference, path=lut|exact|oracle, weights=1|0 (train conv weights)
                     FQSR: init=warmup|percentile|mse|minmax (clip start, default warmup),
                       grid=fqsr|asymmetric (default fqsr), lq=<calibration-loss weight, 0.3>,
                       clr=<clip lr multiplier, 1>, halve=<halve the lr every N steps>
  --input-range <lo,hi> value range pixels 0..255 map to (default: the model's; psnr-small 0,1)
  -o, --output <f>   the .lowbit file to write
  -q, --quiet        no progress
  -h, --help         this help
`;

const OPTIONS = {
  model: { type: "string" },
  method: { type: "string" },
  bits: { type: "string" },
  data: { type: "string" },
  scale: { type: "string" },
  steps: { type: "string" },
  batch: { type: "string" },
  patch: { type: "string" },
  lr: { type: "string" },
  seed: { type: "string" },
  "method-options": { type: "string" },
  "input-range": { type: "string" },
  output: { type: "string", short: "o" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const;

const KEYS = ["mr", "lm", "wcc", "vr", "lv", "offsets", "scope", "path", "weights"];
const MAX_IMAGES = 256;

/**
 * Training data from a directory: `hr/` + `lr_x<scale>/` pairs (matched by name, HR = scale × LR),
 * or the PNG/JPEG files of `dir` itself (or of `dir/lr_x<scale>/`) as LR-only images.
 */
export async function loadTrainData(dir: string, scale: number): Promise<{ lr: ImageLike[]; hr?: ImageLike[] }> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new LowbitError("E_IO", `--data ${dir} is not a directory`);
  if (existsSync(join(dir, "hr")) && existsSync(join(dir, `lr_x${scale}`))) {
    const pairs = (await listEvalSet(dir, scale)).slice(0, MAX_IMAGES);
    const lr: ImageLike[] = [], hr: ImageLike[] = [];
    for (const p of pairs) {
      const r = await loadEvalPair(p, { channels: 3 });
      lr.push(r.lr);
      hr.push(r.hr);
    }
    return { lr, hr };
  }
  const sub = join(dir, `lr_x${scale}`);
  const from = existsSync(sub) && statSync(sub).isDirectory() ? sub : dir;
  const files = readdirSync(from).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().slice(0, MAX_IMAGES);
  if (files.length === 0) throw new LowbitError("E_IO", `--data ${dir}: no PNG/JPEG images (looked in ${from})`);
  const lr: ImageLike[] = [];
  for (const f of files) lr.push(await readImage(join(from, f), { channels: 3 }));
  return { lr };
}

function numOpt(s: string | undefined, what: string, cmd: string, lo: number, hi: number): number | undefined {
  if (s === undefined) return undefined;
  const v = Number(s);
  if (!Number.isFinite(v) || v < lo || v > hi) throw new UsageError(`${what} must be a number in [${lo}, ${hi}], got '${s}'`, cmd);
  return v;
}

/** --method-options for ODM fine-tuning → OdmFinetuneOptions fields. */
export function parseOdmFinetuneOptions(s: string | undefined, cmd = "finetune"): Partial<OdmFinetuneOptions> {
  const o: Record<string, string> = {};
  if (s !== undefined) {
    for (const part of s.split(",")) {
      const m = /^\s*([a-z]+)\s*=\s*(\S+)\s*$/.exec(part);
      if (!m) throw new UsageError(`--method-options takes key=value pairs (e.g. mr=cos,wcc=1), got '${part}'`, cmd);
      if (!KEYS.includes(m[1])) throw new UsageError(`--method-options: '${m[1]}' is not an ODM fine-tuning option (${KEYS.join(", ")})`, cmd);
      o[m[1]] = m[2];
    }
  }
  const bool = (k: string, d: boolean): boolean => {
    if (o[k] === undefined) return d;
    if (o[k] === "1" || o[k] === "true") return true;
    if (o[k] === "0" || o[k] === "false") return false;
    throw new UsageError(`--method-options ${k}=${o[k]}: expected 1 or 0`, cmd);
  };
  const mode = (k: string, d: string, coop: string, naive: string): false | { cooperative: boolean } => {
    const v = o[k] ?? d;
    if (v === "0" || v === "off") return false;
    if (v === coop) return { cooperative: true };
    if (v === naive) return { cooperative: false };
    throw new UsageError(`--method-options ${k}=${v}: expected ${coop}, ${naive} or 0`, cmd);
  };
  const mr = mode("mr", "cos", "cos", "naive"), vr = mode("vr", "0", "sign", "naive");
  const lm = numOpt(o.lm, "lm (λ_M)", cmd, 0, 1e6), lv = numOpt(o.lv, "lv (λ_V)", cmd, 0, 1e6);
  return {
    mismatch: mr ? { ...mr, ...(lm !== undefined ? { lambda: lm } : {}) } : false,
    variance: vr ? { ...vr, ...(lv !== undefined ? { lambda: lv } : {}) } : false,
    wcc: bool("wcc", true), trainWeights: bool("weights", true),
    offsets: numOpt(o.offsets, "offsets", cmd, 0, 1) ?? 0,
    ...(o.scope ? { scope: o.scope as LayerScope } : {}), ...(o.path ? { path: o.path as DynamicPath } : {}),
  };
}

/** --method-options for FQSR fine-tuning → FqsrOptions fields (the training flags stay flags here). */
export function parseFqsrOptions(s: string | undefined, cmd = "finetune"): Partial<FqsrOptions> {
  const o: Record<string, string> = {};
  for (const part of s === undefined ? [] : s.split(",")) {
    const m = /^\s*([a-z]+)\s*=\s*(\S+)\s*$/.exec(part);
    if (!m) throw new UsageError(`--method-options takes key=value pairs (e.g. init=percentile,lq=0.3), got '${part}'`, cmd);
    if (["steps", "batch", "patch", "lr", "seed"].includes(m[1])) throw new UsageError(`--method-options ${m[1]}: use --${m[1]}`, cmd);
    o[m[1]] = m[2];
  }
  try {
    return fqsrOptionsFrom(o);
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^E_[A-Z_]+: /, ""), cmd);
  }
}

export async function finetuneCommand(argv: string[], io: CliIO): Promise<number> {
  const cmd = "finetune";
  const p = parseCommand(argv, OPTIONS, cmd);
  if (flag(p, "help")) {
    io.stdout.write(FINETUNE_USAGE);
    return 0;
  }
  positionals(p, [], cmd);
  const modelArg = str(p, "model", cmd), output = str(p, "output", cmd), bitsArg = str(p, "bits", cmd), dataDir = str(p, "data", cmd);
  if (!modelArg) throw new UsageError("--model is required", cmd);
  if (!output) throw new UsageError("-o <out.lowbit> is required", cmd);
  if (!bitsArg) throw new UsageError("--bits wXaY is required (e.g. --bits w4a4)", cmd);
  if (!dataDir) throw new UsageError("--data <dir> is required (LR images, or hr/ + lr_x<S>/)", cmd);
  const method = (str(p, "method", cmd) ?? "odm").toLowerCase();
  if (method !== "odm" && method !== "fqsr") throw new UsageError(`--method ${method}: fine-tuning implements odm and fqsr`, cmd);
  let bits;
  try {
    bits = parseBits(bitsArg);
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^E_[A-Z_]+: /, ""), cmd);
  }
  if (bits === "fp32") throw new UsageError("--bits fp32 has nothing to quantize", cmd);
  const steps = int(p, "steps", 0, 1e7, cmd), batch = int(p, "batch", 1, 4096, cmd), patch = int(p, "patch", 4, 1024, cmd), seed = int(p, "seed", 0, 2 ** 31, cmd);
  const lr = numOpt(str(p, "lr", cmd), "--lr", cmd, 0, 1);
  const mo = str(p, "method-options", cmd);
  const components = method === "odm" ? parseOdmFinetuneOptions(mo, cmd) : {};
  const fqsrOpts = method === "fqsr" ? parseFqsrOptions(mo, cmd) : {};
  const inputRange = parseRange(str(p, "input-range", cmd), cmd);
  const graph = await loadModelArg(modelArg, io.signal, inputRange);
  const scale = int(p, "scale", 1, 16, cmd) ?? graph.meta.scale;
  if (scale !== graph.meta.scale) throw new UsageError(`--scale ${scale} does not match the model's ×${graph.meta.scale}`, cmd);
  const data = await loadTrainData(dataDir, scale);
  const quiet = flag(p, "quiet");
  const t0 = performance.now();
  let last = 0;
  const onProgress = quiet ? undefined : (pr: FinetuneProgress) => {
    const now = performance.now();
    if (now - last < 1000 && pr.step !== pr.steps) return;
    last = now;
    io.stderr.write(`finetune: step ${pr.step}/${pr.steps} loss ${pr.loss.toExponential(3)} lr ${pr.lr.toExponential(1)} · ${seconds(pr.elapsedMs)}\n`);
  };
  const common = { weightBits: bits.weightBits, actBits: bits.actBits, steps, batch, patch, seed, lr, signal: io.signal, onProgress };
  const r = method === "odm" ? await odmFinetune(graph, data, { ...common, ...components }) : await fqsrFinetune(graph, data, { ...common, ...fqsrOpts });
  await writeLowbitFile(output, r.model);
  if (!quiet) {
    io.stdout.write(`${output}: ${graph.meta.name} ${r.model.config} · ${data.lr.length} ${data.hr ? "LR/HR pairs" : "LR images (FP32 teacher)"} · fine-tuned in ${seconds(r.ms)} · total ${seconds(performance.now() - t0)}\n`);
  }
  return 0;
}
