/**
 * `lowbit quantize`: calibrate an FP32 model on LR images, quantize it, and save a `.lowbit`
 * file that `upscale`/`eval --model model.lowbit` (and the library's loadAnyModel) run without
 * the original model or TF.js.
 */
import { statSync } from "node:fs";
import { UsageError, flag, parseCommand, positionals, str } from "./args.ts";
import { parseRange, seconds, type CliIO } from "./common.ts";
import { defaultCalibDir, parseModelOptions, rawModelOptions, resolveModel, MODEL_OPTION_SPECS, METHOD_OPTIONS_HELP } from "./model-options.ts";
import { ProgressBar } from "./progress.ts";
import { writeLowbitFile } from "../io/lowbit-file.ts";
import { QuantizedModel } from "../quant/quantize-model.ts";
import { DynamicQuantizedModel } from "../methods/dynamic/model.ts";

export const QUANTIZE_USAGE = `usage: lowbit quantize --model <name|model.json> --bits wXaY [--method minmax|percentile|mse]
                      --calib <dir> -o <out.lowbit>

Calibrates the FP32 model on the LR images in --calib (or <dir>/lr_x<scale>/; at most 32
images, a centre patch of up to 128×128 each; default data/calib from \`npm run calib-data\`),
quantizes every conv, add, concat and upsampler to integers, and writes a .lowbit file.

  --model <m>        registered name (lowbit models), model.json path or its folder
  --bits <wXaY>      weight / activation bits, X and Y in 2..8 (e.g. w8a8, w4a8, w4a4)
  --method <m>       activation range: minmax (default), percentile (99.99), mse; or daq, dfsq, odm, cadyq
  --calib <dir>      calibration LR images (never the images you evaluate on)
  --layer-bits <l=b,…> per-layer bits: conv names or roles head|tail|upsampler = wXaY|fp32
  --residual-bits 16   integer adds keep 16-bit sums (the residual stream; convs still read 8-bit codes)
${METHOD_OPTIONS_HELP}
  --input-range <lo,hi> value range pixels 0..255 map to (default: the model's; psnr-small 0,1)
  -o, --output <f>   the .lowbit file to write
  -q, --quiet        no progress
  -h, --help         this help
`;

const OPTIONS = {
  ...MODEL_OPTION_SPECS,
  output: { type: "string", short: "o" },
} as const;

export async function quantizeCommand(argv: string[], io: CliIO): Promise<number> {
  const cmd = "quantize";
  const p = parseCommand(argv, OPTIONS, cmd);
  if (flag(p, "help")) {
    io.stdout.write(QUANTIZE_USAGE);
    return 0;
  }
  positionals(p, [], cmd);
  const modelArg = str(p, "model", cmd);
  const output = str(p, "output", cmd);
  if (!modelArg) throw new UsageError("--model is required", cmd);
  if (!output) throw new UsageError("-o <out.lowbit> is required", cmd);
  const bits = str(p, "bits", cmd);
  if (!bits) throw new UsageError("--bits wXaY is required (e.g. --bits w8a8)", cmd);
  const opts = parseModelOptions({ ...rawModelOptions(p, cmd), bits }, cmd);
  if (opts.bits.kind === "fp32") throw new UsageError("--bits fp32 has nothing to quantize", cmd);
  const inputRange = parseRange(str(p, "input-range", cmd), cmd);
  const bar = new ProgressBar(flag(p, "quiet") ? null : io.stderr, "calibrate");
  const t0 = performance.now();
  let model;
  try {
    model = await resolveModel(modelArg, opts, { defaultCalibDir: defaultCalibDir(), signal: io.signal, onProgress: (f) => bar.update(f, ""), inputRange }, cmd);
  } finally {
    bar.done();
  }
  if (!(model instanceof QuantizedModel) && !(model instanceof DynamicQuantizedModel)) throw new UsageError(`${modelArg}: nothing to quantize`, cmd);
  await writeLowbitFile(output, model);
  if (!flag(p, "quiet")) {
    io.stdout.write(`${output}: ${model.graph.meta.name} ${model.config} · ${statSync(output).size} bytes · ${seconds(performance.now() - t0)}\n`);
  }
  return 0;
}
