/**
 * The `.lowbit` model file: a quantized (or FP32) lowbit model in one self-describing file that
 * loads without TF.js or the original model.
 *
 * Container: safetensors, exactly (https://github.com/huggingface/safetensors):
 *
 *   [0, 8)          u64 little-endian N: byte length of the header
 *   [8, 8 + N)      UTF-8 JSON object, padded with spaces so that 8 + N ≡ 0 (mod 8)
 *   [8 + N, end)    the tensor bytes, little-endian, every byte owned by exactly one tensor
 *
 * The header maps each tensor name to { dtype, shape, data_offsets: [begin, end) } (offsets
 * relative to the start of the data section) plus `__metadata__`, a string→string map. lowbit's
 * own description is the JSON string `__metadata__.lowbit` (safetensors metadata values must be
 * strings):
 *
 *   { format: "lowbit", formatVersion: 1, lowbitVersion, model: "quantized" | "fp32",
 *     meta: { name, scale, inputRange, outputRange, arch?, receptiveRadius?, borderPad?, tileAlign?, globalContext? },
 *     graph: { input, output, nodes: [{ op, name, inputs, channels, spatial, …op attributes,
 *              conv2d: k, cin, cout, activation, bias: bool, sparsity?: { n, m, pairs?: true } (N:M pattern,
 *                      "N:Mp" with pairs, checked on load; a reader that ignores `pairs` still gets a valid N:M),
 *                      weight: { storage: "f32" | "int8" | "int4", bits?, shape: [k,k,cin,cout] } }] },
 *     quant?: { config: QuantConfig (perLayer as [name, override] pairs),
 *               tensors: [{ domain, bits, range, narrow?: { bits, range } }] (one per node, by node id;
 *               bits 16 + narrow: a 16-bit residual-stream add, config.residualBits 16, format version 3) } }
 *
 * Tensors, per conv node `<name>`:
 *   `<name>.weight`        F32 [k,k,cin,cout] (HWIO)               storage "f32"
 *                          I8  [k,k,cin,cout] symmetric codes      storage "int8"
 *                          U8  [ceil(n/2)] packInt4 of the codes   storage "int4" (bits ≤ 4)
 *   `<name>.weight_scale`  F32 [cout] per-output-channel scale     quantized storages only
 *   `<name>.bias`          F32 [cout]                              when the conv has a bias
 * and per prelu node `<name>`:
 *   `<name>.slopes`        F32 [channels] per-channel negative slope (every model kind)
 * and per squeeze_excite node `<name>` (ncnn cunet / Real-CUGAN SE blocks), FC layer i:
 *   `<name>.fc<i>.weight`  F32 [cout, cin];  `<name>.fc<i>.bias`  F32 [cout] when present
 * (space_to_depth / shift nodes carry only JSON attributes; `spatial` may then be a fraction.)
 * (Node names are unique and no suffix is a suffix of another, so tensor names never collide.)
 *
 * Alignment. The safetensors format forbids holes in the data section (the reference loader
 * rejects a file whose offsets are not contiguous), so lowbit does not pad between tensors.
 * Instead, like the reference writer, it orders tensors by element size (all F32 first, then the
 * 1-byte I8/U8 ones) and pads the header so the data starts 8-byte aligned in the file: every
 * tensor then starts at a multiple of its element size — the alignment a typed-array view needs.
 * The reader does not rely on alignment (it copies every tensor), so files from other writers
 * load too.
 *
 * Loading rebuilds the Graph (quantized convs get weights codes·scale, so the graph stays valid
 * for FP32 simulation, while the QuantizedModel keeps the exact codes) and checks everything a
 * hostile or corrupted file could get wrong before allocating by any claimed size: header and
 * data bounds, dtype/shape vs byte counts, contiguity, missing and extra tensors, NaN/Inf,
 * bit-widths and code ranges, domains, format name and version. Errors are LowbitError
 * E_MODEL_FORMAT (E_BITS for bit-widths, E_RANGE for non-finite values and out-of-range codes)
 * naming the tensor or field.
 *
 * Versioning: `formatVersion` is bumped on any change an older reader would misread; a reader
 * refuses newer versions with an "upgrade lowbit" message. Unknown JSON fields are ignored.
 * Not stored: TF.js `sourceQuant` codes of affine-quantized source files (their decoded f32
 * values are stored instead).
 */
import type { Activation, Graph, GraphMeta, Node, NodeOp, ValueRange } from "../graph/ir.ts";
import { MAX_CHANNELS, MAX_KERNEL, MAX_SPATIAL_FACTOR, denominatorOf, receptiveRadius, spatialAlign, validateGraph } from "../graph/validate.ts";
import { QuantizedModel, type QuantConvWeights, type QuantTensor } from "../quant/quantize-model.ts";
import { quantConfig, resolveLayers, type LayerOverride, type QuantConfig, type QuantConfigInput } from "../quant/config.ts";
import { int4PackedBytes, packInt4, unpackInt4 } from "../quant/weights.ts";
import { MAX_ACT_BITS, MAX_WEIGHT_BITS, MIN_ACT_BITS, MIN_WEIGHT_BITS } from "../quant/params.ts";
import { LowbitError, type LowbitErrorCode } from "../runtime/errors.ts";
import { NM_MAX_M, checkNmSparsity, nmPatternName } from "../kernels/nm-conv.ts";
import { get, isObject, sanitizeJson, type Json, type JsonObject } from "./tfjs/json.ts";
import { DynamicQuantizedModel, type DynamicActSpec, type DynamicLayer } from "../methods/dynamic/model.ts";
import { actQuantizerFactory } from "../methods/dynamic/factory.ts";
import { LAYER_SCOPES, type LayerScope } from "../methods/scope.ts";
import { DYNAMIC_PATHS, type DynamicPath } from "../graph/compile-dynamic.ts";
import type { ImageBitThresholds } from "../adaptive/context.ts";

/** lowbit's package version, written into every file (tests check it against package.json). */
export const LOWBIT_VERSION = "0.1.0";
/**
 * The `.lowbit` format version: the newest this build reads. Static and FP32 models are written
 * as version 1 (unchanged); models of the dynamic methods (DAQ, DFSQ) as version 2, static models
 * with a 16-bit residual stream as version 3, so older readers say "upgrade lowbit" instead of
 * misreading them.
 */
export const LOWBIT_FORMAT_VERSION = 3;
const STATIC_FORMAT_VERSION = 1;
const DYNAMIC_FORMAT_VERSION = 2;
const RESIDUAL16_FORMAT_VERSION = 3;
/** Largest accepted safetensors header (the reference implementation's limit is also 100 MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

type Dtype = "F32" | "I32" | "I16" | "I8" | "U8";
const ITEM_BYTES: ReadonlyMap<string, number> = new Map([["F32", 4], ["I32", 4], ["I16", 2], ["I8", 1], ["U8", 1]]);
const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);
const PWL = new Set(["linear", "relu", "relu6"]);
const F32_MAX = 3.4028234663852886e38;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(msg: string, code: LowbitErrorCode = "E_MODEL_FORMAT"): never {
  throw new LowbitError(code, `.lowbit: ${msg}`);
}

// ---------------------------------------------------------------------------------------------
// Byte helpers (little-endian on any host; the reader always copies, so alignment is irrelevant).

function f32Bytes(a: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.byteLength);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) dv.setFloat32(4 * i, a[i], true);
  return out;
}

function bytesF32(b: Uint8Array): Float32Array {
  if (LITTLE_ENDIAN) {
    const c = new Uint8Array(b.length); // a fresh, 4-aligned copy (never Buffer#slice, which is a view)
    c.set(b);
    return new Float32Array(c.buffer);
  }
  const out = new Float32Array(b.length >> 2);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
  return out;
}

/** A plain Uint8Array view (a Node Buffer becomes one too: its slice() does not copy). */
function toBytes(b: Uint8Array | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (b instanceof ArrayBuffer) return new Uint8Array(b);
  if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  throw new LowbitError("E_ARGUMENT", "loadLowbit: expected a Uint8Array or ArrayBuffer");
}

// ---------------------------------------------------------------------------------------------
// JSON: strict parse (prototype-pollution keys are an error, not silently dropped).

const MAX_DEPTH = 64;

function rejectForbidden(v: unknown, where: string, path: string, depth: number): void {
  if (depth > MAX_DEPTH) fail(`${where}: nested deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) rejectForbidden(v[i], where, `${path}[${i}]`, depth + 1);
  } else if (typeof v === "object" && v !== null) {
    for (const k of Object.keys(v)) {
      if (FORBIDDEN.has(k)) fail(`${where}: forbidden key '${k}' at ${path || "top level"} (prototype pollution attempt?)`);
      rejectForbidden((v as Record<string, unknown>)[k], where, `${path}.${k}`, depth + 1);
    }
  }
}

function strictJson(text: string, where: string): Json {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new LowbitError("E_MODEL_FORMAT", `.lowbit: ${where} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  rejectForbidden(raw, where, "", 0);
  return sanitizeJson(raw, where);
}

// ---------------------------------------------------------------------------------------------
// safetensors container

interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

interface Container {
  metadata: Map<string, string>;
  tensors: Map<string, TensorEntry>;
  data: Uint8Array;
}

function parseContainer(bytes: Uint8Array): Container {
  const len = bytes.length;
  if (len < 8) fail(`file is ${len} bytes; a safetensors file starts with an 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(4, true) * 2 ** 32 + dv.getUint32(0, true);
  if (n > MAX_HEADER_BYTES) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt file or not a safetensors file)`);
  if (8 + n > len) fail(`header length ${n} extends beyond the file (${len} bytes): truncated or not a safetensors file`);
  if (n < 2) fail(`header length ${n} is too small for a JSON object`);
  const hb = bytes.subarray(8, 8 + n);
  if (hb[0] !== 0x7b) fail("safetensors header does not start with '{'");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(hb);
  } catch (e) {
    throw new LowbitError("E_MODEL_FORMAT", ".lowbit: safetensors header is not valid UTF-8", { cause: e });
  }
  const doc = strictJson(text, "safetensors header");
  if (!isObject(doc)) fail("safetensors header is not a JSON object");
  const data = bytes.subarray(8 + n);
  const dataLen = data.length;

  const metadata = new Map<string, string>();
  const md = get(doc, "__metadata__");
  if (md !== undefined) {
    if (!isObject(md)) fail("__metadata__ is not an object");
    for (const k of Object.keys(md)) {
      const v = md[k];
      if (typeof v !== "string") fail(`__metadata__['${k}'] is not a string (safetensors metadata is string → string)`);
      metadata.set(k, v);
    }
  }

  const tensors = new Map<string, TensorEntry>();
  for (const name of Object.keys(doc)) {
    if (name === "__metadata__") continue;
    const e = doc[name];
    const w = `tensor '${name}'`;
    if (!isObject(e)) fail(`${w}: entry is not an object`);
    const dtype = get(e, "dtype");
    if (typeof dtype !== "string") fail(`${w}: dtype is missing`);
    const item = ITEM_BYTES.get(dtype);
    if (item === undefined) fail(`${w}: unsupported dtype '${dtype}' (lowbit files use ${[...ITEM_BYTES.keys()].join(", ")})`);
    const shape = get(e, "shape");
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)) {
      fail(`${w}: shape must be an array of at most 8 non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const dims = shape as number[];
    // A float product: a claim like [1e6, 1e6] becomes 1e12, compared with the bytes that exist
    // before anything is allocated.
    const count = dims.reduce((a, d) => a * d, 1);
    if (!(count * item <= dataLen)) fail(`${w}: shape [${dims.join(", ")}] claims ${count} ${dtype} elements, more than the ${dataLen} data bytes hold`);
    const off = get(e, "data_offsets");
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)) {
      fail(`${w}: data_offsets must be [begin, end] with non-negative integers, got ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as number[];
    if (begin > end) fail(`${w}: data_offsets [${begin}, ${end}) are reversed`);
    if (end > dataLen) fail(`${w}: data_offsets [${begin}, ${end}) run past the end of the data (${dataLen} bytes): truncated file?`);
    if (end - begin !== count * item) {
      fail(`${w}: ${dtype} × [${dims.join(", ")}] is ${count * item} bytes but data_offsets [${begin}, ${end}) span ${end - begin}`);
    }
    tensors.set(name, { name, dtype: dtype as Dtype, shape: dims, begin, end });
  }
  // Every data byte belongs to exactly one tensor (no overlap, no gap, nothing trailing).
  const order = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev = "(start of data)";
  for (const t of order) {
    if (t.begin < at) fail(`tensor '${t.name}' [${t.begin}, ${t.end}) overlaps ${prev} (ends at ${at})`);
    if (t.begin > at) fail(`gap of ${t.begin - at} bytes before tensor '${t.name}' (safetensors data must be contiguous)`);
    at = t.end;
    prev = `tensor '${t.name}'`;
  }
  if (at !== dataLen) fail(`${dataLen - at} trailing data bytes after the last tensor (${prev})`);
  return { metadata, tensors, data };
}

// ---------------------------------------------------------------------------------------------
// Field readers for the lowbit JSON

function str(v: Json | undefined, what: string): string {
  if (typeof v !== "string") fail(`${what} must be a string, got ${JSON.stringify(v) ?? "nothing"}`);
  return v;
}

function int(v: Json | undefined, lo: number, hi: number, what: string, code: LowbitErrorCode = "E_MODEL_FORMAT"): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
    fail(`${what} must be an integer in [${lo}, ${hi}], got ${JSON.stringify(v) ?? "nothing"}`, code);
  }
  return v;
}

function finite(v: Json | undefined, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) fail(`${what} must be a finite number, got ${JSON.stringify(v) ?? "nothing"}`);
  return v;
}

function obj(v: Json | undefined, what: string): JsonObject {
  if (!isObject(v)) fail(`${what} must be an object`);
  return v;
}

function arr(v: Json | undefined, what: string, maxLen = Infinity): Json[] {
  if (!Array.isArray(v)) fail(`${what} must be an array`);
  if (v.length > maxLen) fail(`${what} has ${v.length} items, at most ${maxLen} allowed`);
  return v;
}

/** A wrapped error's message without its "E_CODE: " prefix. */
function bare(e: LowbitError): string {
  return e.message.slice(e.code.length + 2);
}

function range(v: Json | undefined, what: string, strict: boolean): ValueRange {
  const a = arr(v, what);
  if (a.length !== 2) fail(`${what} must be [lo, hi]`);
  const lo = finite(a[0], `${what}[0]`), hi = finite(a[1], `${what}[1]`);
  if (strict ? !(lo < hi) : !(lo <= hi)) fail(`${what} = [${lo}, ${hi}] must have lo ${strict ? "<" : "≤"} hi`);
  if (Math.abs(lo) > F32_MAX || Math.abs(hi) > F32_MAX) fail(`${what} = [${lo}, ${hi}] exceeds the float32 range`, "E_RANGE");
  return [lo, hi];
}

// ---------------------------------------------------------------------------------------------
// Save

/** A model `saveLowbit` accepts: a QuantizedModel, an FP32 graph, or `fp32Model(graph)`. */
export type LowbitSavable = QuantizedModel | DynamicQuantizedModel | Graph | { readonly graph: Graph; readonly config: string };

function isQuantized(m: unknown): m is QuantizedModel {
  if (m instanceof QuantizedModel) return true;
  const q = m as QuantizedModel;
  return typeof q === "object" && q !== null && "graph" in q && Array.isArray(q.tensors) && Array.isArray(q.weights) && typeof q.quantConfig === "object";
}

function graphOf(m: LowbitSavable): { g: Graph; q: QuantizedModel | null } {
  if (isQuantized(m)) return { g: m.graph, q: m };
  if (typeof m === "object" && m !== null && Array.isArray((m as Graph).nodes)) return { g: m as Graph, q: null };
  if (typeof m === "object" && m !== null && "graph" in m && (m as { config?: unknown }).config === "fp32") return { g: m.graph, q: null };
  throw new LowbitError("E_ARGUMENT", "saveLowbit: expected a QuantizedModel, a Graph or an fp32Model()");
}

interface OutTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
  bytes: Uint8Array;
}

function nodeJson(n: Node): JsonObject {
  const j: Record<string, unknown> = { op: n.op, name: n.name, inputs: [...n.inputs], channels: n.channels, spatial: n.spatial };
  switch (n.op) {
    case "conv2d":
      Object.assign(j, { k: n.k, cin: n.cin, cout: n.cout, activation: activationJson(n.activation), bias: n.bias !== null });
      if (n.sparsity) j.sparsity = { n: n.sparsity.n, m: n.sparsity.m, ...(n.sparsity.pairs ? { pairs: true } : {}) };
      break;
    case "activation":
      j.activation = activationJson(n.activation);
      break;
    case "add":
      if (n.coeffs !== undefined) j.coeffs = [...n.coeffs];
      break;
    case "scale":
    case "upsample_nearest":
      j.factor = n.factor;
      break;
    case "upsample_bilinear":
      j.factor = n.factor;
      j.mode = n.mode;
      break;
    case "depth_to_space":
      j.block = n.block;
      break;
    case "space_to_depth":
      j.block = n.block;
      if (n.phase) j.phase = n.phase;
      break;
    case "shift":
      j.by = n.by;
      break;
    case "squeeze_excite":
      j.inset = [...n.inset];
      j.fc = n.fc.map((l) => ({ cin: l.cin, cout: l.cout, bias: l.bias !== null, activation: l.activation }));
      break;
  }
  return j as JsonObject;
}

function activationJson(a: Activation): JsonObject {
  const j = { kind: a.kind } as Record<string, Json>;
  if (a.alpha !== undefined) j.alpha = a.alpha;
  return j as JsonObject;
}

function configJson(c: QuantConfig): JsonObject {
  const j: Record<string, unknown> = {
    weightBits: c.weightBits,
    actBits: c.actBits,
    method: c.method,
    weightMethod: c.weightMethod ?? "minmax",
    perLayer: Object.entries(c.perLayer ?? {}).map(([k, v]) => [k, typeof v === "string" ? v : { ...v }]),
    keepFp32: [...(c.keepFp32 ?? [])],
  };
  if (c.percentile !== undefined) j.percentile = c.percentile;
  if (c.trained !== undefined) j.trained = c.trained;
  if (c.residualBits === 16) j.residualBits = 16;
  return j as JsonObject;
}

/**
 * Serializes a model to `.lowbit` bytes (see the file comment for the layout). The result is
 * loaded back before it is returned, so saveLowbit never produces a file loadLowbit rejects: an
 * inconsistent model fails here (E_ARGUMENT, or E_BITS / E_RANGE).
 */
export function saveLowbit(model: LowbitSavable): Uint8Array {
  if (model instanceof DynamicQuantizedModel) return saveDynamic(model);
  const { g, q } = graphOf(model);
  validateForSave(g);
  const tensors: OutTensor[] = [];
  const nodes: JsonObject[] = [];
  for (const n of g.nodes) {
    const j = nodeJson(n);
    if (n.op === "conv2d" && q?.weights[n.id]?.bias) j.bias = true;
    nodes.push(j);
    pushSlopes(tensors, n);
    if (n.op !== "conv2d") continue;
    const shape = [n.k, n.k, n.cin, n.cout];
    const qw = q ? q.weights[n.id] : null;
    if (qw) {
      const count = n.k * n.k * n.cin * n.cout;
      if (!(qw.codes instanceof Int8Array) || qw.codes.length !== count || !(qw.scales instanceof Float32Array) || qw.scales.length !== n.cout) {
        throw new LowbitError("E_ARGUMENT", `saveLowbit: conv '${n.name}': quantized weights need ${count} Int8Array codes and ${n.cout} Float32Array scales`);
      }
      const int4 = qw.bits <= 4;
      (j as Record<string, Json>).weight = { storage: int4 ? "int4" : "int8", bits: qw.bits, shape } as JsonObject;
      const bytes = int4
        ? packInt4(new Uint8Array(int4PackedBytes(count)), qw.codes)
        : new Uint8Array(qw.codes.buffer, qw.codes.byteOffset, qw.codes.byteLength);
      tensors.push({ name: `${n.name}.weight`, dtype: int4 ? "U8" : "I8", shape: int4 ? [bytes.length] : shape, bytes });
      tensors.push({ name: `${n.name}.weight_scale`, dtype: "F32", shape: [n.cout], bytes: f32Bytes(qw.scales) });
    } else {
      (j as Record<string, Json>).weight = { storage: "f32", shape } as JsonObject;
      tensors.push({ name: `${n.name}.weight`, dtype: "F32", shape, bytes: f32Bytes(n.weights) });
    }
    // A quantized conv stores its (bias-corrected) bias: the one its integer plan uses.
    const bias = (q ? q.weights[n.id]?.bias : undefined) ?? n.bias;
    if (bias) tensors.push({ name: `${n.name}.bias`, dtype: "F32", shape: [n.cout], bytes: f32Bytes(bias) });
  }
  const doc: Record<string, unknown> = {
    format: "lowbit",
    formatVersion: q?.quantConfig.residualBits === 16 ? RESIDUAL16_FORMAT_VERSION : STATIC_FORMAT_VERSION,
    lowbitVersion: LOWBIT_VERSION,
    model: q ? "quantized" : "fp32",
    meta: metaJson(g.meta),
    graph: { input: g.input, output: g.output, nodes },
  };
  if (q) {
    if (q.tensors.length !== g.nodes.length || q.weights.length !== g.nodes.length) {
      throw new LowbitError("E_ARGUMENT", `saveLowbit: QuantizedModel has ${q.tensors.length} tensor and ${q.weights.length} weight entries for ${g.nodes.length} nodes`);
    }
    doc.quant = {
      config: configJson(q.quantConfig),
      tensors: q.tensors.map((t) => ({ domain: t.domain, bits: t.bits, range: [t.range[0], t.range[1]],
        ...(t.narrow ? { narrow: { bits: t.narrow.bits, range: [t.narrow.range[0], t.narrow.range[1]] } } : {}) })),
    };
  }

  return writeContainer(doc, tensors);
}

/**
 * A prelu node's slopes are a tensor (`<name>.slopes`, F32 [channels]) in every model kind; so are a
 * squeeze_excite node's FC layers (`<name>.fc<i>.weight` F32 [cout, cin], `<name>.fc<i>.bias` F32 [cout]).
 */
function pushSlopes(tensors: OutTensor[], n: Node): void {
  if (n.op === "prelu") tensors.push({ name: `${n.name}.slopes`, dtype: "F32", shape: [n.channels], bytes: f32Bytes(n.slopes) });
  if (n.op === "squeeze_excite") {
    n.fc.forEach((l, i) => {
      tensors.push({ name: `${n.name}.fc${i}.weight`, dtype: "F32", shape: [l.cout, l.cin], bytes: f32Bytes(l.weights) });
      if (l.bias) tensors.push({ name: `${n.name}.fc${i}.bias`, dtype: "F32", shape: [l.cout], bytes: f32Bytes(l.bias) });
    });
  }
}

function validateForSave(g: Graph): void {
  try {
    validateGraph(g);
  } catch (e) {
    if (e instanceof LowbitError) throw new LowbitError(e.code, `saveLowbit: ${bare(e)}`, { cause: e });
    throw e;
  }
}

function metaJson(m: GraphMeta): Record<string, unknown> {
  const meta: Record<string, unknown> = { name: m.name, scale: m.scale, inputRange: [...m.inputRange], outputRange: [...m.outputRange] };
  if (m.arch !== undefined) meta.arch = m.arch;
  if (m.receptiveRadius !== undefined) meta.receptiveRadius = m.receptiveRadius;
  if (m.borderPad !== undefined && m.borderPad > 0) meta.borderPad = m.borderPad;
  if (m.tileAlign !== undefined && m.tileAlign > 1) meta.tileAlign = m.tileAlign;
  if (m.globalContext) meta.globalContext = true;
  return meta;
}

/**
 * A dynamic-method model (format version 2): the optimized graph; FP32 convs as in version 1;
 * each quantized conv stores its integer weights OHWI (`<name>.weight`, I8 when every code fits,
 * else I16; `weight.storage` "int-ohwi") and per-output scales; per-channel activation bits
 * (`<name>.act_bits`, I32 [cin], DAQ channel sensitivity) or codebooks (`<name>.codebooks`,
 * I16 [cin, 2^b], DFSQ); `dynamic` in the JSON holds the method, scope, options and per-layer
 * activation specs.
 */
function saveDynamic(model: DynamicQuantizedModel): Uint8Array {
  const g = model.graph;
  validateForSave(g);
  const tensors: OutTensor[] = [];
  const nodes: JsonObject[] = [];
  const layers: JsonObject[] = [];
  for (const n of g.nodes) {
    const j = nodeJson(n) as Record<string, Json>;
    nodes.push(j as JsonObject);
    pushSlopes(tensors, n);
    if (n.op !== "conv2d") continue;
    const l = model.layers.get(n.id);
    if (!l) {
      j.weight = { storage: "f32", shape: [n.k, n.k, n.cin, n.cout] } as JsonObject;
      tensors.push({ name: `${n.name}.weight`, dtype: "F32", shape: [n.k, n.k, n.cin, n.cout], bytes: f32Bytes(n.weights) });
    } else {
      const fits8 = l.weights.every((v) => v >= -128 && v <= 127);
      const shape = [n.cout, n.k, n.k, n.cin];
      j.weight = { storage: "int-ohwi", bits: l.weightBits, shape } as JsonObject;
      const codes = fits8 ? Int8Array.from(l.weights) : l.weights;
      tensors.push({ name: `${n.name}.weight`, dtype: fits8 ? "I8" : "I16", shape, bytes: new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength) });
      tensors.push({ name: `${n.name}.weight_scale`, dtype: "F32", shape: [n.cout], bytes: f32Bytes(l.wscale) });
      const a = l.act;
      const aj: Record<string, Json> = { kind: a.kind, postRelu: a.postRelu };
      if (a.kind === "daq") {
        Object.assign(aj, { stepTable: a.stepTable, qq: a.qq, mode: a.mode });
        if (a.reluMask) {
          aj.reluMask = true;
          tensors.push({ name: `${n.name}.relu_mask`, dtype: "U8", shape: [n.cin], bytes: Uint8Array.from(a.reluMask) });
        }
        if (a.stepScale) {
          aj.stepScale = true;
          tensors.push({ name: `${n.name}.step_scale`, dtype: "F32", shape: [n.cin], bytes: f32Bytes(a.stepScale) });
        }
        if (typeof a.bits === "number") aj.bits = a.bits;
        else {
          aj.bits = "per-channel";
          tensors.push({ name: `${n.name}.act_bits`, dtype: "I32", shape: [n.cin], bytes: new Uint8Array(a.bits.buffer, a.bits.byteOffset, a.bits.byteLength) });
        }
      } else if (a.kind === "odm") {
        Object.assign(aj, { bits: a.bits, lo: a.lo, hi: a.hi });
        if (a.shift) {
          aj.shift = true;
          tensors.push({ name: `${n.name}.act_shift`, dtype: "F32", shape: [n.cin], bytes: f32Bytes(a.shift) });
        }
        if (a.scale) {
          aj.scale = true;
          aj.scaleFolded = a.scaleFolded === true;
          tensors.push({ name: `${n.name}.act_scale`, dtype: "F32", shape: [n.cin], bytes: f32Bytes(a.scale) });
        }
      } else if (a.kind === "adabm") {
        Object.assign(aj, { lo: a.lo, hi: a.hi, baseBits: a.baseBits, layerDelta: a.layerDelta, imageAdaptive: a.imageAdaptive, counted: a.counted !== false });
      } else if (a.kind === "cadyq") {
        // Candidates in the JSON; clips and the selector as f32 tensors (bit-exact round trip).
        const K = a.candidates.length;
        aj.candidates = Array.from(a.candidates);
        tensors.push({ name: `${n.name}.cadyq_alpha`, dtype: "F32", shape: [K], bytes: f32Bytes(a.alpha) });
        tensors.push({ name: `${n.name}.cadyq_selector_weight`, dtype: "F32", shape: [K, n.cin + 2], bytes: f32Bytes(a.selectorWeight) });
        tensors.push({ name: `${n.name}.cadyq_selector_bias`, dtype: "F32", shape: [K], bytes: f32Bytes(a.selectorBias) });
      } else {
        aj.bits = a.bits;
        tensors.push({ name: `${n.name}.codebooks`, dtype: "I16", shape: [n.cin, 1 << a.bits], bytes: new Uint8Array(a.codebooks.buffer, a.codebooks.byteOffset, a.codebooks.byteLength) });
      }
      const lj: Record<string, Json> = { node: n.id, weightBits: l.weightBits, actBits: l.actBits, act: aj as JsonObject };
      // Codes beyond ±2^w (an exactly merged sub-pixel tail: sums of up to k² HR-kernel codes) declare their bound.
      let maxCode = 0;
      for (const c of l.weights) maxCode = Math.max(maxCode, Math.abs(c));
      if (maxCode > 1 << l.weightBits) lj.codeBound = maxCode;
      if (l.weightError) {
        lj.weightError = true;
        tensors.push({ name: `${n.name}.weight_error`, dtype: "F32", shape: [n.cout, n.cin], bytes: f32Bytes(l.weightError) });
      }
      layers.push(lj as JsonObject);
    }
    if (n.bias) tensors.push({ name: `${n.name}.bias`, dtype: "F32", shape: [n.cout], bytes: f32Bytes(n.bias) });
  }
  const info = model.info;
  const doc: Record<string, unknown> = {
    format: "lowbit",
    formatVersion: DYNAMIC_FORMAT_VERSION,
    lowbitVersion: LOWBIT_VERSION,
    model: "dynamic",
    meta: metaJson(g.meta),
    graph: { input: g.input, output: g.output, nodes },
    dynamic: {
      method: info.method, weightBits: info.weightBits, actBits: info.actBits, scope: info.scope, options: { ...info.options }, path: model.path, layers,
      ...(model.imageBits ? { imageBits: { lower: model.imageBits.lower, upper: model.imageBits.upper } } : {}),
    },
  };
  return writeContainer(doc, tensors);
}

/** Lays out header + data (see the file comment) and proves the result loads. */
function writeContainer(doc: Record<string, unknown>, tensors: OutTensor[]): Uint8Array {
  // F32 first, then 1-byte dtypes: with an 8-aligned data start every tensor is aligned to its
  // element size, with no holes (which safetensors forbids). Stable sort keeps node order.
  tensors.sort((a, b) => ITEM_BYTES.get(b.dtype)! - ITEM_BYTES.get(a.dtype)!);
  const header: Record<string, unknown> = { __metadata__: { lowbit: JSON.stringify(doc) } };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  const hjson = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + hjson.length) / 8) * 8 - 8;
  const out = new Uint8Array(8 + padded + off);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, padded, true);
  dv.setUint32(4, 0, true);
  out.set(hjson, 8);
  out.fill(0x20, 8 + hjson.length, 8 + padded);
  let at = 8 + padded;
  for (const t of tensors) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  try {
    loadLowbit(out);
  } catch (e) {
    if (!(e instanceof LowbitError)) throw e;
    const code = e.code === "E_BITS" || e.code === "E_RANGE" ? e.code : "E_ARGUMENT";
    throw new LowbitError(code, `saveLowbit: the model cannot be stored: ${bare(e)}`, { cause: e });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Load

interface ConvStore {
  storage: "f32" | "int8" | "int4" | "int-ohwi";
  bits: number;
}

class TensorReader {
  private readonly used = new Set<string>();
  constructor(private readonly c: Container) {}

  /** The bytes of tensor `name`, which must have exactly this dtype and shape. */
  take(name: string, dtype: Dtype, shape: number[], why: string): Uint8Array {
    const t = this.c.tensors.get(name);
    if (t === undefined) fail(`tensor '${name}' (${why}) is missing`);
    if (t.dtype !== dtype || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      fail(`tensor '${name}' (${why}) is ${t.dtype} [${t.shape.join(", ")}], expected ${dtype} [${shape.join(", ")}]`);
    }
    this.used.add(name);
    return this.c.data.subarray(t.begin, t.end);
  }

  f32(name: string, shape: number[], why: string): Float32Array {
    const a = bytesF32(this.take(name, "F32", shape, why));
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i])) fail(`tensor '${name}' (${why}): element ${i} is ${a[i]}`, "E_RANGE");
    }
    return a;
  }

  /** Extra tensors are an error: a file lowbit did not write, or a node that lost its tensors. */
  checkAllUsed(): void {
    for (const name of this.c.tensors.keys()) if (!this.used.has(name)) fail(`unexpected tensor '${name}' (no node of the graph uses it)`);
  }
}

function parseActivation(v: Json | undefined, what: string): Activation {
  const o = obj(v, what);
  const a: Activation = { kind: str(get(o, "kind"), `${what}.kind`) as Activation["kind"] };
  const alpha = get(o, "alpha");
  if (alpha !== undefined) a.alpha = finite(alpha, `${what}.alpha`);
  return a;
}

const OPS = new Set(["input", "conv2d", "activation", "add", "concat", "scale", "upsample_nearest", "upsample_bilinear", "depth_to_space", "prelu", "space_to_depth", "shift", "squeeze_excite"]);
const SE_ACTIVATIONS = new Set(["linear", "relu", "sigmoid"]);
/** Largest accepted meta.borderPad (LR pixels; waifu2x needs 7). */
const MAX_BORDER_PAD = 1024;

function parseNode(v: Json, i: number, nNodes: number, writer: string): { node: Node; store: ConvStore | null; hasBias: boolean } {
  const o = obj(v, `graph.nodes[${i}]`);
  const name = str(get(o, "name"), `graph.nodes[${i}].name`);
  const w = `node '${name}'`;
  const op = str(get(o, "op"), `${w}.op`);
  if (!OPS.has(op)) {
    throw new LowbitError("E_UNSUPPORTED_LAYER", `.lowbit: ${w} has op '${op}', which this lowbit (${LOWBIT_VERSION}) does not know (file written by lowbit ${writer})`);
  }
  const inputs = arr(get(o, "inputs"), `${w}.inputs`, nNodes).map((x, j) => int(x, 0, nNodes - 1, `${w}.inputs[${j}]`));
  const channels = int(get(o, "channels"), 1, MAX_CHANNELS, `${w}.channels`);
  // Spatial factors are whole, or fractions after space_to_depth (½, ¾, …: denominators ≤ 64).
  const spatial = finite(get(o, "spatial"), `${w}.spatial`);
  if (!(spatial > 0 && spatial <= MAX_SPATIAL_FACTOR) || denominatorOf(spatial) === 0) fail(`${w}.spatial ${spatial} is not a factor in (0, ${MAX_SPATIAL_FACTOR}] with a denominator ≤ ${MAX_SPATIAL_FACTOR}`);
  let p: NodeOp;
  let store: ConvStore | null = null;
  let hasBias = false;
  switch (op) {
    case "conv2d": {
      const k = int(get(o, "k"), 1, MAX_KERNEL, `${w}.k`);
      const cin = int(get(o, "cin"), 1, MAX_CHANNELS, `${w}.cin`);
      const cout = int(get(o, "cout"), 1, MAX_CHANNELS, `${w}.cout`);
      const b = get(o, "bias");
      if (typeof b !== "boolean") fail(`${w}.bias must be true or false`);
      hasBias = b;
      const wj = obj(get(o, "weight"), `${w}.weight`);
      const storage = str(get(wj, "storage"), `${w}.weight.storage`);
      if (storage !== "f32" && storage !== "int8" && storage !== "int4" && storage !== "int-ohwi") fail(`${w}.weight.storage '${storage}' is not f32, int8, int4 or int-ohwi`);
      const bits = storage === "f32" ? 32 : int(get(wj, "bits"), MIN_WEIGHT_BITS, MAX_WEIGHT_BITS, `${w}.weight.bits`, "E_BITS");
      if (storage === "int4" && bits > 4) fail(`${w}.weight: int4 storage cannot hold ${bits}-bit codes`, "E_BITS");
      const shape = arr(get(wj, "shape"), `${w}.weight.shape`);
      const want = storage === "int-ohwi" ? [cout, k, k, cin] : [k, k, cin, cout];
      if (shape.length !== 4 || shape.some((d, j) => d !== want[j])) fail(`${w}.weight.shape ${JSON.stringify(shape)} is not ${storage === "int-ohwi" ? "[cout, k, k, cin]" : "[k, k, cin, cout]"} = [${want.join(", ")}]`);
      store = { storage, bits };
      p = { op, k, cin, cout, weights: new Float32Array(0), bias: null, activation: parseActivation(get(o, "activation"), `${w}.activation`) };
      const sp = get(o, "sparsity");
      if (sp !== undefined) {
        const so = obj(sp, `${w}.sparsity`);
        const m = int(get(so, "m"), 1, NM_MAX_M, `${w}.sparsity.m`);
        p.sparsity = { n: int(get(so, "n"), 1, m, `${w}.sparsity.n`), m };
        const pairs = get(so, "pairs");
        if (pairs !== undefined && typeof pairs !== "boolean") fail(`${w}.sparsity.pairs must be a boolean`);
        if (pairs === true) {
          if (p.sparsity.n % 2 !== 0 || m % 2 !== 0) fail(`${w}.sparsity: pair-structured N:M needs even n and m, got ${p.sparsity.n}:${m}`);
          p.sparsity.pairs = true;
        }
      }
      break;
    }
    case "activation":
      p = { op, activation: parseActivation(get(o, "activation"), `${w}.activation`) };
      break;
    case "add": {
      const c = get(o, "coeffs");
      if (c === undefined) p = { op };
      else {
        const coeffs = arr(c, `${w}.coeffs`).map((x, j) => finite(x, `${w}.coeffs[${j}]`));
        if (coeffs.length !== inputs.length) fail(`${w}.coeffs has ${coeffs.length} values for ${inputs.length} inputs`);
        p = { op, coeffs };
      }
      break;
    }
    case "scale":
      p = { op, factor: finite(get(o, "factor"), `${w}.factor`) };
      break;
    case "upsample_nearest":
      p = { op, factor: int(get(o, "factor"), 1, MAX_SPATIAL_FACTOR, `${w}.factor`) };
      break;
    case "upsample_bilinear": {
      const mode = get(o, "mode");
      if (mode !== "half_pixel" && mode !== "asymmetric") fail(`${w}.mode must be "half_pixel" or "asymmetric", got ${JSON.stringify(mode)}`);
      p = { op, factor: int(get(o, "factor"), 1, MAX_SPATIAL_FACTOR, `${w}.factor`), mode };
      break;
    }
    case "depth_to_space":
      p = { op, block: int(get(o, "block"), 1, MAX_SPATIAL_FACTOR, `${w}.block`) };
      break;
    case "prelu":
      p = { op, slopes: new Float32Array(0) }; // read from `<name>.slopes` once the tensors are parsed
      break;
    case "space_to_depth": {
      const block = int(get(o, "block"), 1, 16, `${w}.block`);
      const ph = get(o, "phase");
      p = ph === undefined ? { op, block } : { op, block, phase: int(ph, 0, block - 1, `${w}.phase`) };
      break;
    }
    case "shift": {
      const by = int(get(o, "by"), -1024, 1024, `${w}.by`);
      if (by === 0) fail(`${w}.by must not be 0`);
      p = { op, by };
      break;
    }
    case "squeeze_excite": {
      const inset = arr(get(o, "inset"), `${w}.inset`).map((x, j) => int(x, 0, 1 << 20, `${w}.inset[${j}]`));
      if (inset.length !== 2) fail(`${w}.inset must have 2 values`);
      const fc = arr(get(o, "fc"), `${w}.fc`, 16).map((x, j) => {
        const fo = obj(x, `${w}.fc[${j}]`);
        const b = get(fo, "bias");
        if (typeof b !== "boolean") fail(`${w}.fc[${j}].bias must be true or false`);
        const act = str(get(fo, "activation"), `${w}.fc[${j}].activation`);
        if (!SE_ACTIVATIONS.has(act)) fail(`${w}.fc[${j}].activation '${act}' is not linear, relu or sigmoid`);
        return { cin: int(get(fo, "cin"), 1, MAX_CHANNELS, `${w}.fc[${j}].cin`), cout: int(get(fo, "cout"), 1, MAX_CHANNELS, `${w}.fc[${j}].cout`),
          weights: new Float32Array(0), bias: b ? new Float32Array(0) : null, activation: act as "linear" | "relu" | "sigmoid" };
      });
      if (fc.length === 0) fail(`${w}.fc is empty`);
      p = { op, inset: [inset[0], inset[1]], fc }; // weights read from `<name>.fc<i>.*` once the tensors are parsed
      break;
    }
    default:
      p = { op: op as "input" | "concat" };
  }
  return { node: { ...p, id: i, name, inputs, channels, spatial } as Node, store, hasBias };
}

function parseMeta(v: Json | undefined): GraphMeta {
  const o = obj(v, "meta");
  const meta: GraphMeta = {
    name: str(get(o, "name"), "meta.name"),
    scale: int(get(o, "scale"), 1, MAX_SPATIAL_FACTOR, "meta.scale"),
    inputRange: range(get(o, "inputRange"), "meta.inputRange", true),
    outputRange: range(get(o, "outputRange"), "meta.outputRange", true),
  };
  const arch = get(o, "arch");
  if (arch !== undefined) meta.arch = str(arch, "meta.arch");
  const r = get(o, "receptiveRadius");
  if (r !== undefined) {
    meta.receptiveRadius = finite(r, "meta.receptiveRadius");
    if (meta.receptiveRadius < 0) fail(`meta.receptiveRadius ${r} is negative`);
  }
  const bp = get(o, "borderPad");
  if (bp !== undefined) meta.borderPad = int(bp, 0, MAX_BORDER_PAD, "meta.borderPad");
  const ta = get(o, "tileAlign");
  if (ta !== undefined) meta.tileAlign = int(ta, 1, MAX_SPATIAL_FACTOR, "meta.tileAlign");
  const gc = get(o, "globalContext");
  if (gc !== undefined) {
    if (typeof gc !== "boolean") fail("meta.globalContext must be true or false");
    meta.globalContext = gc;
  }
  return meta;
}

function parseConfig(v: Json | undefined, g: Graph): QuantConfig {
  const o = obj(v, "quant.config");
  const input: QuantConfigInput & Record<string, unknown> = {};
  for (const key of ["weightBits", "actBits", "percentile", "residualBits"] as const) {
    const x = get(o, key);
    if (x !== undefined) (input as Record<string, unknown>)[key] = finite(x, `quant.config.${key}`);
  }
  for (const key of ["method", "weightMethod", "trained"] as const) {
    const x = get(o, key);
    if (x !== undefined) (input as Record<string, unknown>)[key] = str(x, `quant.config.${key}`);
  }
  const pl = get(o, "perLayer");
  if (pl !== undefined) {
    const perLayer: Record<string, LayerOverride> = Object.create(null);
    arr(pl, "quant.config.perLayer").forEach((e, i) => {
      const pair = arr(e, `quant.config.perLayer[${i}]`);
      if (pair.length !== 2) fail(`quant.config.perLayer[${i}] must be [layer, bits]`);
      const name = str(pair[0], `quant.config.perLayer[${i}][0]`);
      if (FORBIDDEN.has(name)) fail(`quant.config.perLayer[${i}]: forbidden layer name '${name}'`);
      const b = pair[1];
      if (typeof b === "string") perLayer[name] = b;
      else {
        const bo = obj(b, `quant.config.perLayer[${i}][1]`);
        const ov: Record<string, number> = {};
        for (const k of Object.keys(bo)) ov[k] = finite(bo[k], `quant.config.perLayer[${i}][1].${k}`);
        perLayer[name] = ov;
      }
    });
    input.perLayer = perLayer;
  }
  const kf = get(o, "keepFp32");
  if (kf !== undefined) input.keepFp32 = arr(kf, "quant.config.keepFp32").map((x, i) => str(x, `quant.config.keepFp32[${i}]`));
  try {
    const cfg = quantConfig(input);
    resolveLayers(cfg, g);
    return cfg;
  } catch (e) {
    if (!(e instanceof LowbitError)) throw e;
    throw new LowbitError(e.code === "E_BITS" ? "E_BITS" : "E_MODEL_FORMAT", `.lowbit: quant.config: ${bare(e)}`, { cause: e });
  }
}

function parseQuantTensor(v: Json, n: Node): QuantTensor {
  const w = `quant.tensors[${n.id}] (node '${n.name}')`;
  const o = obj(v, w);
  const domain = str(get(o, "domain"), `${w}.domain`);
  if (domain !== "q8" && domain !== "f32") fail(`${w}.domain '${domain}' is not q8 or f32`);
  const nj = get(o, "narrow");
  if (nj !== undefined) {
    // A 16-bit residual-stream tensor (checked against the config and its readers by the caller).
    if (int(get(o, "bits"), 16, 16, `${w}.bits (a tensor with 'narrow')`, "E_BITS") !== 16 || domain !== "q8") fail(`${w}: only q8 tensors have 'narrow'`);
    const no = obj(nj, `${w}.narrow`);
    const narrow = { bits: int(get(no, "bits"), MIN_ACT_BITS, MAX_ACT_BITS, `${w}.narrow.bits`, "E_BITS"), range: range(get(no, "range"), `${w}.narrow.range`, false) };
    return { domain, bits: 16, range: range(get(o, "range"), `${w}.range`, false), narrow };
  }
  const bits = int(get(o, "bits"), MIN_ACT_BITS, MAX_ACT_BITS, `${w}.bits`, "E_BITS");
  return { domain, bits, range: range(get(o, "range"), `${w}.range`, false) };
}

/** Reads the `dynamic` section and the integer tensors of a version-2 model. */
function readDynamic(r: TensorReader, dj: JsonObject, g: Graph, stores: (ConvStore | null)[], codes: Map<number, Int16Array>): DynamicQuantizedModel {
  const method = str(get(dj, "method"), "dynamic.method");
  if (method !== "daq" && method !== "dfsq" && method !== "odm" && method !== "adabm" && method !== "cadyq") fail(`dynamic.method '${method}' is not daq, dfsq, odm, adabm or cadyq`);
  const weightBits = int(get(dj, "weightBits"), 2, 8, "dynamic.weightBits", "E_BITS");
  const actBits = int(get(dj, "actBits"), 2, 8, "dynamic.actBits", "E_BITS");
  const scope = str(get(dj, "scope"), "dynamic.scope");
  if (!(LAYER_SCOPES as readonly string[]).includes(scope)) fail(`dynamic.scope '${scope}' is not one of ${LAYER_SCOPES.join(", ")}`);
  const path = str(get(dj, "path"), "dynamic.path");
  if (!(DYNAMIC_PATHS as readonly string[]).includes(path)) fail(`dynamic.path '${path}' is not one of ${DYNAMIC_PATHS.join(", ")}`);
  const oj = obj(get(dj, "options"), "dynamic.options");
  const options: Record<string, string | number | boolean> = {};
  for (const k of Object.keys(oj)) {
    const v = oj[k];
    if (FORBIDDEN.has(k)) fail(`dynamic.options: forbidden key '${k}'`);
    if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") fail(`dynamic.options.${k} is not a string, number or boolean`);
    options[k] = v;
  }
  const layers = new Map<number, DynamicLayer>();
  arr(get(dj, "layers"), "dynamic.layers", g.nodes.length).forEach((v, i) => {
    const w = `dynamic.layers[${i}]`;
    const lj = obj(v, w);
    const id = int(get(lj, "node"), 0, g.nodes.length - 1, `${w}.node`);
    const n = g.nodes[id];
    if (n.op !== "conv2d") fail(`${w}: node ${id} ('${n.name}') is not a conv`);
    if (layers.has(id)) fail(`${w}: conv '${n.name}' is listed twice`);
    const wc = codes.get(id);
    if (!wc) fail(`${w}: conv '${n.name}' stores f32 weights, not integer codes`);
    const wb = int(get(lj, "weightBits"), 2, 8, `${w}.weightBits`, "E_BITS");
    if (wb !== stores[id]!.bits) fail(`${w}.weightBits ${wb} differs from conv '${n.name}'s weight.bits ${stores[id]!.bits}`, "E_BITS");
    // A merged sub-pixel tail stores sums of up to k² HR-kernel codes (≤ 25 for 5×5) and says so (codeBound).
    const lim = get(lj, "codeBound") === undefined ? 1 << wb : int(get(lj, "codeBound"), (1 << wb) + 1, 32 << wb, `${w}.codeBound`, "E_RANGE");
    for (let q = 0; q < wc.length; q++) if (Math.abs(wc[q]) > lim) fail(`tensor '${n.name}.weight': code ${wc[q]} at ${q} is outside ±${lim} for ${wb}-bit weights`, "E_RANGE");
    const wscale = r.f32(`${n.name}.weight_scale`, [n.cout], `weight scales of conv '${n.name}'`);
    for (let o = 0; o < n.cout; o++) if (!(wscale[o] >= 0)) fail(`tensor '${n.name}.weight_scale': scale ${wscale[o]} of channel ${o} is negative`, "E_RANGE");
    const aj = obj(get(lj, "act"), `${w}.act`);
    const kind = str(get(aj, "kind"), `${w}.act.kind`);
    const postRelu = get(aj, "postRelu");
    if (typeof postRelu !== "boolean") fail(`${w}.act.postRelu must be true or false`);
    let act: DynamicActSpec;
    if (kind === "daq") {
      const stepTable = str(get(aj, "stepTable"), `${w}.act.stepTable`);
      if (stepTable !== "code" && stepTable !== "mse") fail(`${w}.act.stepTable '${stepTable}' is not code or mse`);
      const qq = int(get(aj, "qq"), 2, 32, `${w}.act.qq`, "E_BITS");
      const mode = str(get(aj, "mode"), `${w}.act.mode`);
      if (mode !== "int" && mode !== "reference") fail(`${w}.act.mode '${mode}' is not int or reference`);
      let bits: number | Int32Array;
      if (get(aj, "bits") === "per-channel") {
        const b = r.take(`${n.name}.act_bits`, "I32", [n.cin], `activation bits of conv '${n.name}'`);
        bits = new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
        bits.forEach((x, c) => { if (x < 2 || x > 8) fail(`tensor '${n.name}.act_bits': channel ${c} has ${x} bits (2..8)`, "E_BITS"); });
      } else bits = int(get(aj, "bits"), 2, 8, `${w}.act.bits`, "E_BITS");
      act = { kind, postRelu, bits, stepTable, qq, mode };
      if (get(aj, "reluMask") === true) {
        const b = r.take(`${n.name}.relu_mask`, "U8", [n.cin], `branch mask of conv '${n.name}'`);
        if (b.some((v) => v > 1)) fail(`tensor '${n.name}.relu_mask' holds values other than 0 and 1`, "E_RANGE");
        act.reluMask = Uint8Array.from(b);
      }
      if (get(aj, "stepScale") === true) {
        if (mode !== "int") fail(`${w}: calibrated DAQ steps are an int-mode option, the file says mode '${mode}'`);
        const b = r.take(`${n.name}.step_scale`, "F32", [n.cin], `step scales of conv '${n.name}'`);
        const stepScale = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
        stepScale.forEach((x, c) => { if (!(x > 0 && Number.isFinite(x))) fail(`tensor '${n.name}.step_scale': channel ${c} has κ = ${x} (must be positive and finite)`, "E_RANGE"); });
        act.stepScale = stepScale;
      }
    } else if (kind === "dfsq") {
      const bits = int(get(aj, "bits"), 2, 8, `${w}.act.bits`, "E_BITS");
      const b = r.take(`${n.name}.codebooks`, "I16", [n.cin, 1 << bits], `codebooks of conv '${n.name}'`);
      const codebooks = new Int16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      codebooks.forEach((x, q) => { if (x < -1024 || x > 1024) fail(`tensor '${n.name}.codebooks': point ${x} at ${q} is outside [−1024, 1024]`, "E_RANGE"); });
      act = { kind, postRelu, bits, codebooks };
    } else if (kind === "odm") {
      const bits = int(get(aj, "bits"), 2, 8, `${w}.act.bits`, "E_BITS");
      const lo = get(aj, "lo"), hi = get(aj, "hi");
      if (typeof lo !== "number" || typeof hi !== "number" || !Number.isFinite(lo) || !Number.isFinite(hi) || !(hi >= lo)) fail(`${w}.act: range [${String(lo)}, ${String(hi)}] is not a finite non-empty interval`, "E_RANGE");
      act = { kind, postRelu, bits, lo: lo as number, hi: hi as number };
      const sh = get(aj, "shift"), sc = get(aj, "scale"), sf = get(aj, "scaleFolded");
      if (sh !== undefined && typeof sh !== "boolean") fail(`${w}.act.shift must be true or false`);
      if (sc !== undefined && typeof sc !== "boolean") fail(`${w}.act.scale must be true or false`);
      if (sf !== undefined && typeof sf !== "boolean") fail(`${w}.act.scaleFolded must be true or false`);
      if (sh) act.shift = r.f32(`${n.name}.act_shift`, [n.cin], `channel shifts of conv '${n.name}'`);
      if (sc) {
        act.scale = r.f32(`${n.name}.act_scale`, [n.cin], `channel scales of conv '${n.name}'`);
        act.scaleFolded = sf === true;
      }
    } else if (kind === "adabm") {
      const lo = get(aj, "lo"), hi = get(aj, "hi"), ia = get(aj, "imageAdaptive");
      if (typeof lo !== "number" || typeof hi !== "number" || !Number.isFinite(lo) || !Number.isFinite(hi) || !(hi >= lo)) fail(`${w}.act: range [${String(lo)}, ${String(hi)}] is not a finite non-empty interval`, "E_RANGE");
      if (typeof ia !== "boolean") fail(`${w}.act.imageAdaptive must be true or false`);
      const baseBits = int(get(aj, "baseBits"), 2, 8, `${w}.act.baseBits`, "E_BITS");
      const layerDelta = int(get(aj, "layerDelta"), -1, 1, `${w}.act.layerDelta`, "E_RANGE");
      const counted = get(aj, "counted");
      if (counted !== undefined && typeof counted !== "boolean") fail(`${w}.act.counted must be true or false`);
      act = { kind, postRelu, lo: lo as number, hi: hi as number, baseBits, layerDelta, imageAdaptive: ia as boolean, counted: counted !== false };
    } else if (kind === "cadyq") {
      const cj = arr(get(aj, "candidates"), `${w}.act.candidates`, 7);
      if (cj.length === 0) fail(`${w}.act.candidates is empty`, "E_BITS");
      const candidates = Int32Array.from(cj.map((v, i) => int(v, 2, 8, `${w}.act.candidates[${i}]`, "E_BITS")));
      const K = candidates.length;
      act = {
        kind, postRelu, candidates,
        alpha: r.f32(`${n.name}.cadyq_alpha`, [K], `CADyQ clips of conv '${n.name}'`),
        selectorWeight: r.f32(`${n.name}.cadyq_selector_weight`, [K, n.cin + 2], `CADyQ selector weight of conv '${n.name}'`),
        selectorBias: r.f32(`${n.name}.cadyq_selector_bias`, [K], `CADyQ selector bias of conv '${n.name}'`),
      };
    } else fail(`${w}.act.kind '${kind}' is not daq, dfsq, odm, adabm or cadyq`);
    if (act.kind !== method) fail(`${w}: a ${act.kind} layer in a ${method} model`);
    if (method === "daq" && mode0(act) === "reference" && path !== "oracle") fail(`${w}: DAQ reference mode runs on the oracle path only, the file says '${path}'`);
    let createQuantizer;
    try {
      createQuantizer = actQuantizerFactory(act, n.cin);
      createQuantizer();
    } catch (e) {
      if (!(e instanceof LowbitError)) throw e;
      fail(`${w}: ${bare(e)}`, e.code === "E_BITS" || e.code === "E_RANGE" ? e.code : "E_MODEL_FORMAT");
    }
    const we = get(lj, "weightError");
    if (we !== undefined && typeof we !== "boolean") fail(`${w}.weightError must be true or false`);
    const weightError = we ? r.f32(`${n.name}.weight_error`, [n.cout, n.cin], `weight rounding error of conv '${n.name}'`) : undefined;
    layers.set(id, {
      id, name: n.name, weightBits: wb, actBits: int(get(lj, "actBits"), 2, 8, `${w}.actBits`, "E_BITS"), weights: wc, wscale, act, createQuantizer,
      ...(weightError ? { weightError } : {}),
    });
  });
  for (const id of codes.keys()) if (!layers.has(id)) fail(`conv '${g.nodes[id].name}' stores integer codes but dynamic.layers does not describe it`);
  let imageBits: ImageBitThresholds | null = null;
  const ib = get(dj, "imageBits");
  if (ib !== undefined) {
    if (method !== "adabm") fail(`dynamic.imageBits: image-to-bit thresholds in a ${method} model`);
    const ibo = obj(ib, "dynamic.imageBits");
    const lower = get(ibo, "lower"), upper = get(ibo, "upper");
    if (typeof lower !== "number" || typeof upper !== "number" || !Number.isFinite(lower) || !Number.isFinite(upper) || !(upper >= lower)) {
      fail(`dynamic.imageBits: thresholds [${String(lower)}, ${String(upper)}] are not finite with lower ≤ upper`, "E_RANGE");
    }
    imageBits = { lower: lower as number, upper: upper as number };
  }
  return new DynamicQuantizedModel(g, layers, { method, weightBits, actBits, scope: scope as LayerScope, options }, path as DynamicPath, imageBits);
}

function mode0(a: DynamicActSpec): string {
  return a.kind === "daq" ? a.mode : "int";
}

/** Reads one quantized kernel: codes (checked against the bit range) and per-channel scales. */
function readCodes(r: TensorReader, n: Extract<Node, { op: "conv2d" }>, st: ConvStore): QuantConvWeights {
  const count = n.k * n.k * n.cin * n.cout;
  const name = `${n.name}.weight`;
  let codes: Int8Array;
  if (st.storage === "int4") {
    const packed = r.take(name, "U8", [int4PackedBytes(count)], `int4 codes of conv '${n.name}'`);
    codes = unpackInt4(new Int8Array(count), packed);
    if (count & 1 && packed[packed.length - 1] >> 4 !== 0) fail(`tensor '${name}': the padding nibble after the last int4 code is not 0`);
  } else {
    const b = r.take(name, "I8", [n.k, n.k, n.cin, n.cout], `int8 codes of conv '${n.name}'`);
    codes = new Int8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  const qmax = (1 << (st.bits - 1)) - 1;
  for (let i = 0; i < count; i++) {
    const c = codes[i];
    if (c < -qmax - 1 || c > qmax) fail(`tensor '${name}': code ${c} at ${i} is outside the ${st.bits}-bit range [${-qmax - 1}, ${qmax}]`, "E_RANGE");
  }
  const scales = r.f32(`${n.name}.weight_scale`, [n.cout], `weight scales of conv '${n.name}'`);
  for (let o = 0; o < n.cout; o++) {
    if (!(scales[o] > 0)) fail(`tensor '${n.name}.weight_scale': scale ${scales[o]} of channel ${o} is not positive`, "E_RANGE");
  }
  return { bits: st.bits, codes, scales };
}

/**
 * Parses `.lowbit` bytes: a QuantizedModel, or a Graph when the file holds an FP32 model. Every
 * inconsistency is a LowbitError (see the file comment); nothing is allocated by a size the file
 * claims before that size was checked against the bytes that exist.
 */
export function loadLowbit(bytes: Uint8Array | ArrayBuffer): QuantizedModel | DynamicQuantizedModel | Graph {
  const c = parseContainer(toBytes(bytes));
  const text = c.metadata.get("lowbit");
  if (text === undefined) fail("a safetensors file without lowbit metadata (__metadata__.lowbit): not a .lowbit model");
  const doc = strictJson(text, "__metadata__.lowbit");
  if (!isObject(doc)) fail("__metadata__.lowbit is not a JSON object");
  if (get(doc, "format") !== "lowbit") fail(`__metadata__.lowbit.format is ${JSON.stringify(get(doc, "format")) ?? "missing"}, expected "lowbit"`);
  const version = get(doc, "formatVersion");
  const writer = typeof get(doc, "lowbitVersion") === "string" ? (get(doc, "lowbitVersion") as string) : "(unknown version)";
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1) fail(`formatVersion ${JSON.stringify(version) ?? "is missing"}: not a valid .lowbit format version`);
  if (version > LOWBIT_FORMAT_VERSION) {
    fail(`this file uses .lowbit format version ${version} (written by lowbit ${writer}); this lowbit (${LOWBIT_VERSION}) reads up to version ${LOWBIT_FORMAT_VERSION}: upgrade lowbit to load it`);
  }
  const kind = get(doc, "model");
  if (kind !== "quantized" && kind !== "fp32" && kind !== "dynamic") fail(`model kind ${JSON.stringify(kind) ?? "is missing"}: expected "quantized", "dynamic" or "fp32"`);
  if (kind === "dynamic" && version < 2) fail(`a dynamic model needs format version 2, the file says ${version}`);

  const meta = parseMeta(get(doc, "meta"));
  const gj = obj(get(doc, "graph"), "graph");
  const nj = arr(get(gj, "nodes"), "graph.nodes");
  if (nj.length === 0) fail("graph.nodes is empty");
  const nNodes = nj.length;
  const parsed = nj.map((v, i) => parseNode(v, i, nNodes, writer));
  const g: Graph = {
    nodes: parsed.map((p) => p.node),
    input: int(get(gj, "input"), 0, nNodes - 1, "graph.input"),
    output: int(get(gj, "output"), 0, nNodes - 1, "graph.output"),
    meta,
  };

  // Tensors: f32 kernels, quantized codes + scales, biases.
  const r = new TensorReader(c);
  const weights: (QuantConvWeights | null)[] = g.nodes.map(() => null);
  const intCodes = new Map<number, Int16Array>();
  for (const { node: n, store, hasBias } of parsed) {
    if (n.op === "prelu") {
      // Stored shape = the node's stored channel count; validateGraph checks it against the input.
      n.slopes = r.f32(`${n.name}.slopes`, [n.channels], `slopes of prelu '${n.name}'`);
      continue;
    }
    if (n.op === "squeeze_excite") {
      n.fc.forEach((l, i) => {
        l.weights = r.f32(`${n.name}.fc${i}.weight`, [l.cout, l.cin], `SE fc ${i} of '${n.name}'`);
        if (l.bias) l.bias = r.f32(`${n.name}.fc${i}.bias`, [l.cout], `SE fc ${i} bias of '${n.name}'`);
      });
      continue;
    }
    if (n.op !== "conv2d") continue;
    const why = `conv '${n.name}'`;
    if ((store!.storage === "int-ohwi") !== (kind === "dynamic") && store!.storage !== "f32") {
      fail(`conv '${n.name}' stores ${store!.storage} weights in a ${kind} model`);
    }
    if (store!.storage === "int-ohwi") {
      const shape = [n.cout, n.k, n.k, n.cin];
      const t = c.tensors.get(`${n.name}.weight`);
      const dt = t?.dtype === "I8" ? "I8" : "I16";
      const b = r.take(`${n.name}.weight`, dt, shape, `integer weights of ${why}`);
      const wc = dt === "I8" ? Int16Array.from(new Int8Array(b.buffer, b.byteOffset, b.byteLength)) : new Int16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      intCodes.set(n.id, wc);
      n.weights = new Float32Array(n.k * n.k * n.cin * n.cout); // filled below from codes·scale
    } else if (store!.storage === "f32") {
      n.weights = r.f32(`${n.name}.weight`, [n.k, n.k, n.cin, n.cout], `f32 kernel of ${why}`);
    } else {
      if (kind === "fp32") fail(`conv '${n.name}' stores ${store!.storage} codes in an fp32 model`);
      const qw = readCodes(r, n, store!);
      // The graph keeps valid float weights (codes·scale, as dequantizeWeights computes them).
      const wf = new Float32Array(qw.codes.length);
      for (let i = 0, o = 0; i < wf.length; i++) {
        wf[i] = Math.fround(qw.codes[i]) * qw.scales[o];
        if (++o === n.cout) o = 0;
      }
      n.weights = wf;
      weights[n.id] = qw;
    }
    if (hasBias) n.bias = r.f32(`${n.name}.bias`, [n.cout], `bias of ${why}`);
    // A quantized conv's stored bias is the one its plan uses (bias-corrected when it was).
    if (weights[n.id] && n.bias) weights[n.id]!.bias = n.bias;
  }
  let dyn: DynamicQuantizedModel | null = null;
  if (kind === "dynamic") {
    dyn = readDynamic(r, obj(get(doc, "dynamic"), "dynamic"), g, parsed.map((p) => p.store), intCodes);
    // The graph keeps valid float weights (wscale[o]·w), HWIO.
    for (const [id, l] of dyn.layers) {
      const n = g.nodes[id] as Extract<Node, { op: "conv2d" }>;
      for (let o = 0; o < n.cout; o++) for (let t = 0; t < n.k * n.k; t++) for (let ci = 0; ci < n.cin; ci++) {
        n.weights[(t * n.cin + ci) * n.cout + o] = l.wscale[o] * l.weights[(o * n.k * n.k + t) * n.cin + ci];
      }
    }
  }
  r.checkAllUsed();
  // A declared N:M pattern must hold for the weights the graph carries (the compilers rely on it).
  for (const n of g.nodes) {
    if (n.op === "conv2d" && n.sparsity && !checkNmSparsity(n.weights, n.k, n.cin, n.cout, n.sparsity.n, n.sparsity.m, n.sparsity.pairs === true)) {
      fail(`conv '${n.name}' declares ${nmPatternName(n.sparsity)} sparsity, but its weights have more nonzeros ${n.sparsity.pairs ? "(or nonzero channel pairs) " : ""}in a group`);
    }
  }

  // Structure and shapes, then the stored shapes must be the inferred ones.
  const stored = g.nodes.map((n) => [n.channels, n.spatial]);
  try {
    validateGraph(g);
  } catch (e) {
    if (!(e instanceof LowbitError)) throw e;
    const code = e.code === "E_RANGE" || e.code === "E_UNSUPPORTED_LAYER" ? e.code : "E_MODEL_FORMAT";
    throw new LowbitError(code, `.lowbit: graph: ${bare(e)}`, { cause: e });
  }
  for (const n of g.nodes) {
    const [ch, sp] = stored[n.id];
    if (ch !== n.channels || sp !== n.spatial) fail(`node '${n.name}' stores ${ch} channels ×${sp} but its inputs give ${n.channels} ×${n.spatial}`);
  }
  if (meta.receptiveRadius !== undefined) {
    const rr = receptiveRadius(g);
    if (Math.abs(rr - meta.receptiveRadius) > 1e-9 * Math.max(1, rr)) fail(`meta.receptiveRadius ${meta.receptiveRadius} differs from the graph's ${rr}`);
  }
  // Tile alignment and global context follow from the graph: a file cannot loosen them.
  const align = spatialAlign(g);
  if ((meta.tileAlign ?? 1) !== align) fail(`meta.tileAlign ${meta.tileAlign ?? 1} differs from the graph's ${align}`);
  if (g.nodes.some((n) => n.op === "squeeze_excite") && !meta.globalContext) fail("meta.globalContext must be true for a graph with squeeze_excite");
  if (kind === "fp32") {
    if (get(doc, "quant") !== undefined) fail("an fp32 model has a quant section");
    return g;
  }
  if (dyn) return dyn;

  const qj = obj(get(doc, "quant"), "quant");
  const tj = arr(get(qj, "tensors"), "quant.tensors");
  if (tj.length !== nNodes) fail(`quant.tensors has ${tj.length} entries for ${nNodes} nodes`);
  const tensors = g.nodes.map((n) => parseQuantTensor(tj[n.id], n));
  // Domains the Q8 compiler can lower (quantizeModel's rules): the image enters as f32, a q8
  // conv has codes and a piecewise-linear activation, an f32 conv has float weights, a q8
  // activation is a clamp.
  if (tensors[g.input].domain !== "f32") fail(`quant.tensors[${g.input}]: the input image must be in the f32 domain`);
  for (const n of g.nodes) {
    const d = tensors[n.id].domain;
    if (n.op === "conv2d") {
      const q = weights[n.id] !== null;
      if (d === "q8" && !q) fail(`conv '${n.name}' is in the q8 domain but stores f32 weights`);
      if (d === "f32" && q) fail(`conv '${n.name}' is in the f32 domain but stores quantized codes`);
      if (d === "q8" && !PWL.has(n.activation.kind)) fail(`conv '${n.name}' in the q8 domain has activation '${n.activation.kind}' (only linear, relu, relu6 run on codes)`);
    }
    if (n.op === "activation" && d === "q8" && !PWL.has(n.activation.kind)) fail(`activation '${n.name}' in the q8 domain is '${n.activation.kind}' (only linear, relu, relu6 run on codes)`);
  }
  const cfg = parseConfig(get(qj, "config"), g);
  // 16-bit residual tensors: only integer adds, all of whose readers are integer ops, of a residualBits-16 model.
  const readers = g.nodes.map(() => [] as number[]);
  for (const n of g.nodes) for (const i of n.inputs) readers[i].push(n.id);
  for (const n of g.nodes) {
    if (!tensors[n.id].narrow) continue;
    if (cfg.residualBits !== 16) fail(`quant.tensors[${n.id}] (node '${n.name}') is 16-bit but quant.config.residualBits is not 16`, "E_BITS");
    if (n.op !== "add") fail(`quant.tensors[${n.id}]: node '${n.name}' is a ${n.op}; only adds hold 16-bit codes`);
    if (n.id === g.output || readers[n.id].some((r) => tensors[r].domain !== "q8")) fail(`quant.tensors[${n.id}]: 16-bit add '${n.name}' has a float reader`);
  }
  return new QuantizedModel(g, tensors, weights, cfg);
}

// ---------------------------------------------------------------------------------------------
// Node helpers (node:fs imported lazily: this module stays browser-safe)

/** Writes `saveLowbit(model)` to `path` (Node). Failures → E_IO. */
export async function writeLowbitFile(path: string, model: LowbitSavable): Promise<void> {
  const bytes = saveLowbit(model);
  const fs = await import("node:fs/promises");
  try {
    await fs.writeFile(path, bytes);
  } catch (e) {
    throw new LowbitError("E_IO", `cannot write '${path}': ${(e as Error).message}`, { cause: e });
  }
}

/** Reads and parses a `.lowbit` file (Node). Read failures → E_IO. */
export async function readLowbitFile(path: string): Promise<QuantizedModel | DynamicQuantizedModel | Graph> {
  const fs = await import("node:fs/promises");
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (e) {
    throw new LowbitError("E_IO", `cannot read '${path}': ${(e as Error).message}`, { cause: e });
  }
  return loadLowbit(bytes);
}

/**
 * True when `head` (the first bytes of a file, at least 9) starts like a safetensors file:
 * a plausible header length within `fileSize` followed by '{'. TF.js model.json files start
 * with '{' themselves, whose bytes read as an implausibly large length.
 */
export function looksLikeSafetensors(head: Uint8Array, fileSize: number): boolean {
  if (head.length < 9) return false;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const n = dv.getUint32(4, true) * 2 ** 32 + dv.getUint32(0, true);
  return n >= 2 && n <= MAX_HEADER_BYTES && 8 + n <= fileSize && head[8] === 0x7b;
}
