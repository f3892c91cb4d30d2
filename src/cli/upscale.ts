/**
 * `lowbit upscale <in.png|jpg> <out.png>`: decode, run the model tile by tile, encode PNG.
 * RGBA input keeps its alpha (the network sees RGB; alpha is resized with MATLAB bicubic).
 */
import { extname } from "node:path";
import { Upscaler } from "../engine/upscaler-api.ts";
import { planTiles } from "../tiling/tiles.ts";
import { readImage, writePng } from "../io/image.ts";
import { BACKENDS, flag, int, oneOf, parseCommand, positionals, str, UsageError } from "./args.ts";
import { parseRange, runtimeFor, seconds, type CliIO } from "./common.ts";
import { parseModelOptions, rawModelOptions, resolveModel, MODEL_OPTION_SPECS, METHOD_OPTIONS_HELP } from "./model-options.ts";
import { ProgressBar } from "./progress.ts";
import { renderBitMap } from "../adaptive/heatmap.ts";
import { LowbitError } from "../runtime/errors.ts";

export const DEFAULT_MODEL = "default-model";

export const UPSCALE_USAGE = `Usage: lowbit upscale <in.png|in.jpg> <out.png> [options]

Upscales a PNG or JPEG image and writes a PNG (RGBA input keeps its alpha).

Options:
  --model <name|path>   registered model name (see \`lowbit models\`), a model.json path or
                        its directory (default: ${DEFAULT_MODEL}, ESRGAN-slim ×2)
  --tile <N>            LR tile core size in pixels (default: from the memory budget; adaptive-bit
                        models 96, their bit-decision unit; 0 = whole image in one tile)
  --margin <N>          tile overlap in LR pixels (default: exact receptive radius for rdn
                        models, 16 for rrdn)
  --backend <b>         auto | simd | relaxed (default auto: relaxed SIMD when it works here)
  --bits <fp32|wXaY>    model configuration (default fp32)
  --method <name>       quantization method for integer --bits
  --calib <dir>         calibration images for integer --bits
  --layer-bits <l=b,…> per-layer bits: conv names or roles head|tail|upsampler = wXaY|fp32
  --residual-bits 16   integer adds keep 16-bit sums (the residual stream; convs still read 8-bit codes)
${METHOD_OPTIONS_HELP}
  --bitmap <map.png>    adaptive-bit models (--method adabm, or such a .lowbit): write the bits
                        each tile used as a heat map at the input's size (blue 2 … red 8 bits)
  --input-range <lo,hi> value range pixels 0..255 map to (default: the model's; psnr-small 0,1)
  --quiet, -q           no progress bar and no summary line
  -h, --help            this help
`;

const OPTIONS = {
  ...MODEL_OPTION_SPECS,
  tile: { type: "string" },
  margin: { type: "string" },
  backend: { type: "string" },
  bitmap: { type: "string" },
} as const;

export async function upscaleCommand(argv: string[], io: CliIO): Promise<number> {
  const cmd = "upscale";
  const p = parseCommand(argv, OPTIONS, cmd);
  if (flag(p, "help")) {
    io.stdout.write(UPSCALE_USAGE);
    return 0;
  }
  const [input, output] = positionals(p, ["in.png|in.jpg", "out.png"], cmd);
  if (extname(output).toLowerCase() !== ".png") throw new UsageError(`the output is written as PNG: name it *.png (got '${output}')`, cmd);
  const modelArg = str(p, "model", cmd) ?? DEFAULT_MODEL;
  const tileArg = int(p, "tile", 0, 1 << 16, cmd);
  const margin = int(p, "margin", 0, 4096, cmd);
  const backend = oneOf(p, "backend", BACKENDS, cmd);
  const modelOptions = parseModelOptions(rawModelOptions(p, cmd), cmd);
  const quiet = flag(p, "quiet");
  const inputRange = parseRange(str(p, "input-range", cmd), cmd);
  const bitmapPath = str(p, "bitmap", cmd);
  if (bitmapPath !== undefined && extname(bitmapPath).toLowerCase() !== ".png") throw new UsageError(`--bitmap is written as PNG: name it *.png (got '${bitmapPath}')`, cmd);

  const t0 = performance.now();
  const img = await readImage(input);
  const rt = await runtimeFor(backend);
  // Quantized without --calib: calibrate on the input image itself (static ranges, self-calibrated).
  const model = await resolveModel(modelArg, modelOptions, { fallbackImages: [img], runtime: rt, signal: io.signal, inputRange }, cmd);
  const graph = model.graph;
  // Unset: the model's own tile (adaptive bits decide per 96×96 tile), else the memory-budget default.
  const tile = tileArg === 0 ? Math.max(img.width, img.height) : tileArg;
  const up = new Upscaler(model, rt, { tile });
  const m = margin ?? up.margin;
  const tiles = planTiles(img.width, img.height, up.tile, m).tiles.length;
  const bar = new ProgressBar(quiet ? null : io.stderr, "upscale");
  const tRun = performance.now();
  let out;
  try {
    out = await up.upscale(img, {
      margin: m,
      signal: io.signal,
      onProgress: (e) => bar.update(e.fraction, `tile ${Math.min(e.tile + 1, e.tiles)}/${e.tiles}`),
    });
  } finally {
    bar.done();
    up.dispose();
  }
  const runMs = performance.now() - tRun;
  await writePng(output, out);
  if (bitmapPath !== undefined) {
    if (!out.bitMap) throw new LowbitError("E_ARGUMENT", `--bitmap: ${model.config} uses fixed bits (no bit map); use an adaptive method such as --method adabm`);
    await writePng(bitmapPath, renderBitMap(out.bitMap, img));
  }
  if (!quiet) {
    const kind = out.channels === 4 ? "RGBA" : "RGB";
    io.stdout.write(
      `${output}: ${out.width}×${out.height} ${kind} (×${up.scale} from ${img.width}×${img.height}) · ` +
        `${graph.meta.name} ${model.config} · ${seconds(runMs)} (total ${seconds(performance.now() - t0)}) · ` +
        `backend ${rt.info.backend} · tile ${up.tile} margin ${m} (${tiles} tile${tiles === 1 ? "" : "s"})` +
        (out.bitMap ? ` · FAB ${out.bitMap.fab.toFixed(2)}, BitOPs ${(100 * out.bitMap.bitops / out.bitMap.fp32Bitops).toFixed(2)} % of FP32` : "") + "\n",
    );
  }
  return 0;
}
