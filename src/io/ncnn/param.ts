/**
 * ncnn `.param` (text) parser → typed layer records.
 *
 * Format (ncnn wiki "param and model file structure"):
 *   7767517                                 magic
 *   <layer count> <blob count>
 *   <type> <name> <#bottoms> <#tops> <bottom blob names…> <top blob names…> <id=value …>
 * A value is an int, a float (has '.', 'e' or is nan/inf), or — when the key is −23300 − id — an
 * array "n,v1,…,vn" for param `id`. Every layer type lowbit reads has its accepted param ids and
 * defaults listed below (the defaults of ncnn's load_param); an id outside that list, or a value of
 * the wrong kind, is an E_UNSUPPORTED_LAYER / E_MODEL_FORMAT naming the layer and the param, so a
 * model never loads with an option silently ignored.
 */
import { LowbitError } from "../../runtime/errors.ts";

export const NCNN_PARAM_MAGIC = 7767517;

/** Limits on what a .param may declare (sanity bounds, far above real models). */
export const MAX_NCNN_LAYERS = 100_000;
const MAX_ARRAY = 1 << 16;

export type ParamValue = number | number[];

/** A raw layer line: params by id (arrays stored under their param id, not the −233xx key). */
export interface RawLayer {
  type: string;
  name: string;
  bottoms: string[];
  tops: string[];
  params: Map<number, ParamValue>;
  /** 1-based line number in the .param text (for error messages). */
  line: number;
}

/** Parameter schema of one layer type: id → [field name, default, kind]. */
type Kind = "int" | "float" | "array";
type Schema = Record<number, [string, number | number[] | ((p: Record<string, ParamValue>) => number), Kind]>;

const same = (f: string) => (p: Record<string, ParamValue>) => p[f] as number;

const CONV_SCHEMA: Schema = {
  0: ["numOutput", 0, "int"],
  1: ["kernelW", 0, "int"],
  11: ["kernelH", same("kernelW"), "int"],
  2: ["dilationW", 1, "int"],
  12: ["dilationH", same("dilationW"), "int"],
  3: ["strideW", 1, "int"],
  13: ["strideH", same("strideW"), "int"],
  4: ["padLeft", 0, "int"],
  15: ["padRight", same("padLeft"), "int"],
  14: ["padTop", same("padLeft"), "int"],
  16: ["padBottom", same("padTop"), "int"],
  18: ["padValue", 0, "float"],
  5: ["biasTerm", 0, "int"],
  6: ["weightDataSize", 0, "int"],
  8: ["int8ScaleTerm", 0, "int"],
  9: ["activationType", 0, "int"],
  10: ["activationParams", [], "array"],
  17: ["implType", 0, "int"],
  19: ["dynamicWeight", 0, "int"],
};

const DECONV_SCHEMA: Schema = {
  0: ["numOutput", 0, "int"],
  1: ["kernelW", 0, "int"],
  11: ["kernelH", same("kernelW"), "int"],
  2: ["dilationW", 1, "int"],
  12: ["dilationH", same("dilationW"), "int"],
  3: ["strideW", 1, "int"],
  13: ["strideH", same("strideW"), "int"],
  4: ["padLeft", 0, "int"],
  15: ["padRight", same("padLeft"), "int"],
  14: ["padTop", same("padLeft"), "int"],
  16: ["padBottom", same("padTop"), "int"],
  18: ["outputPadRight", 0, "int"],
  19: ["outputPadBottom", same("outputPadRight"), "int"],
  20: ["outputW", 0, "int"],
  21: ["outputH", same("outputW"), "int"],
  5: ["biasTerm", 0, "int"],
  6: ["weightDataSize", 0, "int"],
  9: ["activationType", 0, "int"],
  10: ["activationParams", [], "array"],
  28: ["dynamicWeight", 0, "int"],
};

const SCHEMAS: Record<string, Schema> = {
  Input: { 0: ["w", 0, "int"], 1: ["h", 0, "int"], 11: ["d", 0, "int"], 2: ["c", 0, "int"] },
  Split: {},
  Noop: {},
  Convolution: CONV_SCHEMA,
  Deconvolution: DECONV_SCHEMA,
  PReLU: { 0: ["numSlope", 0, "int"] },
  ReLU: { 0: ["slope", 0, "float"] },
  Sigmoid: {},
  Clip: { 0: ["min", -Infinity, "float"], 1: ["max", Infinity, "float"] },
  BinaryOp: { 0: ["opType", 0, "int"], 1: ["withScalar", 0, "int"], 2: ["b", 0, "float"] },
  Eltwise: { 0: ["opType", 0, "int"], 1: ["coeffs", [], "array"] },
  Concat: { 0: ["axis", 0, "int"] },
  Crop: {
    0: ["woffset", 0, "int"], 1: ["hoffset", 0, "int"], 13: ["doffset", 0, "int"], 2: ["coffset", 0, "int"],
    3: ["outw", 0, "int"], 4: ["outh", 0, "int"], 14: ["outd", 0, "int"], 5: ["outc", 0, "int"],
    6: ["woffset2", 0, "int"], 7: ["hoffset2", 0, "int"], 15: ["doffset2", 0, "int"], 8: ["coffset2", 0, "int"],
    9: ["starts", [], "array"], 10: ["ends", [], "array"], 11: ["axes", [], "array"],
  },
  PixelShuffle: { 0: ["upscaleFactor", 1, "int"], 1: ["mode", 0, "int"] },
  Interp: {
    0: ["resizeType", 0, "int"], 1: ["heightScale", 1, "float"], 2: ["widthScale", 1, "float"],
    3: ["outputHeight", 0, "int"], 4: ["outputWidth", 0, "int"], 5: ["dynamicTargetSize", 0, "int"],
    6: ["alignCorner", 0, "int"],
  },
  Pooling: {
    0: ["poolingType", 0, "int"], 1: ["kernelW", 0, "int"], 11: ["kernelH", same("kernelW"), "int"],
    2: ["strideW", 1, "int"], 12: ["strideH", same("strideW"), "int"], 3: ["padLeft", 0, "int"],
    14: ["padRight", same("padLeft"), "int"], 13: ["padTop", same("padLeft"), "int"], 15: ["padBottom", same("padTop"), "int"],
    4: ["globalPooling", 0, "int"], 5: ["padMode", 0, "int"], 6: ["avgpoolCountIncludePad", 0, "int"],
    7: ["adaptivePooling", 0, "int"], 8: ["outW", 0, "int"], 18: ["outH", same("outW"), "int"],
  },
  InnerProduct: {
    0: ["numOutput", 0, "int"], 1: ["biasTerm", 0, "int"], 2: ["weightDataSize", 0, "int"],
    8: ["int8ScaleTerm", 0, "int"], 9: ["activationType", 0, "int"], 10: ["activationParams", [], "array"],
  },
  Scale: { 0: ["scaleDataSize", 0, "int"], 1: ["biasTerm", 0, "int"] },
};

/** Layer types the parser accepts (others: E_UNSUPPORTED_LAYER naming the type and layer). */
export const NCNN_LAYER_TYPES: readonly string[] = Object.keys(SCHEMAS);

/** A parsed layer: the raw line plus its params resolved against the type's schema (defaults filled). */
export interface NcnnLayer extends RawLayer {
  /** Named params (see SCHEMAS; ints/floats as numbers, arrays as number[]). */
  p: Record<string, number> & { activationParams?: number[]; coeffs?: number[]; starts?: number[]; ends?: number[]; axes?: number[] };
  /** Filled by the weight reader (bin.ts): named float32 tensors in load order. */
  weights: Record<string, Float32Array>;
}

export interface NcnnParam {
  layers: NcnnLayer[];
  blobCount: number;
}

function fmt(msg: string): LowbitError {
  return new LowbitError("E_MODEL_FORMAT", `ncnn .param: ${msg}`);
}

function parseNumber(s: string, where: string): number {
  if (!/^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf|infinity)$/i.test(s)) throw fmt(`${where}: '${s}' is not a number`);
  const l = s.toLowerCase().replace(/^\+/, "");
  if (l === "nan" || l === "-nan") return NaN;
  if (l === "inf" || l === "infinity") return Infinity;
  if (l === "-inf" || l === "-infinity") return -Infinity;
  return Number(s);
}

/** Parses the text of a .param file (string or UTF-8 bytes). */
export function parseNcnnParam(text: string | Uint8Array): NcnnParam {
  if (text instanceof Uint8Array) {
    if (text.length >= 4 && new DataView(text.buffer, text.byteOffset, 4).getInt32(0, true) === NCNN_PARAM_MAGIC) {
      throw new LowbitError("E_UNSUPPORTED_LAYER", "ncnn .param: binary .param.bin files are not supported; pass the text .param");
    }
    text = new TextDecoder("utf-8", { fatal: false }).decode(text);
  }
  if (typeof text !== "string") throw new LowbitError("E_ARGUMENT", "ncnn .param must be a string or bytes");
  const lines = text.split(/\r?\n/);
  let li = 0;
  const next = (): { toks: string[]; line: number } | null => {
    while (li < lines.length) {
      const t = lines[li++].trim();
      if (t !== "") return { toks: t.split(/\s+/), line: li };
    }
    return null;
  };
  const magic = next();
  if (!magic || magic.toks.length !== 1 || Number(magic.toks[0]) !== NCNN_PARAM_MAGIC) {
    throw fmt(`line 1 must be the magic ${NCNN_PARAM_MAGIC}, got '${magic?.toks.join(" ") ?? "(empty file)"}'`);
  }
  const counts = next();
  if (!counts || counts.toks.length !== 2 || !counts.toks.every((t) => /^\d+$/.test(t))) {
    throw fmt(`line ${counts?.line ?? 2} must be '<layer count> <blob count>'`);
  }
  const layerCount = Number(counts.toks[0]), blobCount = Number(counts.toks[1]);
  if (layerCount < 1 || layerCount > MAX_NCNN_LAYERS) throw fmt(`layer count ${layerCount} outside 1..${MAX_NCNN_LAYERS}`);
  const layers: NcnnLayer[] = [];
  const names = new Set<string>();
  for (let i = 0; i < layerCount; i++) {
    const l = next();
    if (!l) throw fmt(`truncated: declares ${layerCount} layers, found ${i}`);
    const { toks, line } = l;
    if (toks.length < 4) throw fmt(`line ${line}: a layer line needs '<type> <name> <#bottoms> <#tops> …'`);
    const [type, name, nb, nt] = toks;
    if (!/^\d+$/.test(nb) || !/^\d+$/.test(nt)) throw fmt(`line ${line} (layer '${name}'): bottom/top counts must be integers`);
    const nBottom = Number(nb), nTop = Number(nt);
    if (toks.length < 4 + nBottom + nTop) throw fmt(`line ${line} (layer '${name}'): declares ${nBottom} bottoms and ${nTop} tops, has ${toks.length - 4} names`);
    if (names.has(name)) throw fmt(`line ${line}: duplicate layer name '${name}'`);
    names.add(name);
    const bottoms = toks.slice(4, 4 + nBottom), tops = toks.slice(4 + nBottom, 4 + nBottom + nTop);
    const params = new Map<number, ParamValue>();
    for (const kv of toks.slice(4 + nBottom + nTop)) {
      const eq = kv.indexOf("=");
      if (eq <= 0 || !/^-?\d+$/.test(kv.slice(0, eq))) throw fmt(`line ${line} (layer '${name}'): '${kv}' is not 'id=value'`);
      const key = Number(kv.slice(0, eq)), val = kv.slice(eq + 1);
      const where = `line ${line} (layer '${name}') param ${key}`;
      if (key <= -23300) {
        const id = -23300 - key;
        const parts = val.split(",");
        const n = parseNumber(parts[0], where);
        if (!Number.isInteger(n) || n < 0 || n > MAX_ARRAY || parts.length !== n + 1) throw fmt(`${where}: array must be 'n,v1,…,vn' with n = ${parts.length - 1}`);
        params.set(id, parts.slice(1).map((s) => parseNumber(s, where)));
      } else {
        if (key < 0) throw fmt(`${where}: negative param id`);
        params.set(key, parseNumber(val, where));
      }
    }
    layers.push(resolveLayer({ type, name, bottoms, tops, params, line }));
  }
  return { layers, blobCount };
}

function resolveLayer(raw: RawLayer): NcnnLayer {
  const schema = SCHEMAS[raw.type];
  const what = `layer '${raw.name}' (${raw.type}, line ${raw.line})`;
  if (!schema) {
    throw new LowbitError("E_UNSUPPORTED_LAYER", `ncnn ${what}: layer type '${raw.type}' is not supported (supported: ${NCNN_LAYER_TYPES.join(", ")})`);
  }
  for (const id of raw.params.keys()) {
    if (!(id in schema)) throw new LowbitError("E_UNSUPPORTED_LAYER", `ncnn ${what}: param ${id} is not supported for ${raw.type}`);
  }
  const p: Record<string, ParamValue> = {};
  // Ids in ascending order of dependency: a default that refers to another field needs that field first.
  const ids = Object.keys(schema).map(Number);
  const resolved = new Set<number>();
  for (let pass = 0; pass < 3 && resolved.size < ids.length; pass++) {
    for (const id of ids) {
      if (resolved.has(id)) continue;
      const [field, def, kind] = schema[id];
      if (raw.params.has(id)) {
        const v = raw.params.get(id)!;
        if (kind === "array" && !Array.isArray(v)) throw fmt(`${what}: param ${id} (${field}) must be an array`);
        if (kind !== "array" && Array.isArray(v)) throw fmt(`${what}: param ${id} (${field}) must be a scalar`);
        if (kind === "int" && !Number.isInteger(v)) throw fmt(`${what}: param ${id} (${field}) must be an integer, got ${v}`);
        p[field] = v;
      } else if (typeof def === "function") {
        const dep = def(p);
        if (dep === undefined) continue;
        p[field] = dep;
      } else {
        p[field] = Array.isArray(def) ? [...def] : def;
      }
      resolved.add(id);
    }
  }
  return { ...raw, p: p as NcnnLayer["p"], weights: {} };
}
