/**
 * `lowbit export-onnx`: a model (registered name, model.json, .lowbit or .onnx) → an ONNX file for
 * onnxruntime and other runtimes: FP32, or with --bits (static methods) the QDQ form onnxruntime
 * runs as QLinearConv. See docs/ONNX.md for the I/O contract.
 */
import { statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { UsageError, flag, parseCommand, positionals, str } from "./args.ts";
import { parseRange, seconds, type CliIO } from "./common.ts";
import { defaultCalibDir, parseModelOptions, rawModelOptions, resolveModel, MODEL_OPTION_SPECS } from "./model-options.ts";
import { ProgressBar } from "./progress.ts";
import { exportOnnx } from "../io/onnx/export.ts";
import { QuantizedModel } from "../quant/quantize-model.ts";
import { LowbitError } from "../runtime/errors.ts";

export const EXPORT_ONNX_USAGE = `usage: lowbit export-onnx --model <name|model.json|file.lowbit|file.onnx> [--bits w8a8 --calib <dir>]
                         [--io model|pixels] [--opset 13] -o <out.onnx>

Writes the model as ONNX (NCHW, dynamic H/W). Without --bits: FP32. With --bits (static methods
minmax/percentile/mse/odm): calibrated and quantized by lowbit, exported in QDQ form (uint8
activations, per-channel int8 weights, int32 bias) that onnxruntime fuses into QLinearConv.
A quantized .lowbit file exports as is.

  --model <m>        registered name, model.json path or folder, .lowbit or .onnx file
  --bits <wXaY>      quantize first (activations must be 8-bit for an exact QDQ form: w8a8, w4a8)
  --method <m>       activation range: minmax (default), percentile, mse, odm
  --calib <dir>      calibration LR images
  --io <model|pixels> model (default): input in the model's input range, raw output;
                     pixels: 0..255 float in, 0..255 float out (clipped)
  --opset <n>        ONNX opset, 13..21 (default 13)
  --input-range <lo,hi> value range pixels 0..255 map to (TF.js models)
  -o, --output <f>   the .onnx file to write
  -q, --quiet        no progress
  -h, --help         this help
`;

const OPTIONS = {
  ...MODEL_OPTION_SPECS,
  output: { type: "string", short: "o" },
  io: { type: "string" },
  opset: { type: "string" },
} as const;

export async function exportOnnxCommand(argv: string[], io: CliIO): Promise<number> {
  const cmd = "export-onnx";
  const p = parseCommand(argv, OPTIONS, cmd);
  if (flag(p, "help")) {
    io.stdout.write(EXPORT_ONNX_USAGE);
    return 0;
  }
  positionals(p, [], cmd);
  const modelArg = str(p, "model", cmd);
  const output = str(p, "output", cmd);
  if (!modelArg) throw new UsageError("--model is required", cmd);
  if (!output) throw new UsageError("-o <out.onnx> is required", cmd);
  const ioMode = str(p, "io", cmd) ?? "model";
  if (ioMode !== "model" && ioMode !== "pixels") throw new UsageError(`--io must be model or pixels, got '${ioMode}'`, cmd);
  const opsetStr = str(p, "opset", cmd);
  const opset = opsetStr === undefined ? 13 : Number(opsetStr);
  if (!Number.isInteger(opset)) throw new UsageError(`--opset must be an integer, got '${opsetStr}'`, cmd);
  const opts = parseModelOptions(rawModelOptions(p, cmd), cmd);
  const inputRange = parseRange(str(p, "input-range", cmd), cmd);
  const bar = new ProgressBar(flag(p, "quiet") ? null : io.stderr, "calibrate");
  const t0 = performance.now();
  let model;
  try {
    model = await resolveModel(modelArg, opts, { defaultCalibDir: defaultCalibDir(), signal: io.signal, onProgress: (f) => bar.update(f, ""), inputRange }, cmd);
  } finally {
    bar.done();
  }
  if (!(model instanceof QuantizedModel) && model.config !== "fp32") {
    throw new LowbitError("E_ARGUMENT", `${modelArg}: '${model.config}' (dynamic / adaptive quantization) has no static ONNX form; use a static method (minmax, percentile, mse, odm)`);
  }
  const bytes = exportOnnx(model, { io: ioMode, opset });
  await writeFile(output, bytes);
  if (!flag(p, "quiet")) {
    io.stdout.write(`${output}: ${model.graph.meta.name} ${model.config} · opset ${opset} · io=${ioMode} · ${statSync(output).size} bytes · ${seconds(performance.now() - t0)}\n`);
  }
  return 0;
}
