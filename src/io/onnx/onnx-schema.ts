/**
 * The part of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto, IR version 3–10)
 * lowbit reads and writes: field numbers, plain-object forms of the messages, and their
 * decoding / encoding on top of protobuf.ts.
 *
 * Decoding is strict where it matters for correctness (tensor byte counts against dims and data
 * type, one of raw_data / typed fields, no external data) and lenient where ONNX allows growth
 * (unknown fields are skipped, as protobuf requires). Every count is bounded by the bytes that
 * hold it, so memory use is bounded by the file size.
 */
import { LowbitError } from "../../runtime/errors.ts";
import { ProtoReader, ProtoWriter, WIRE_LEN, type Field } from "./protobuf.ts";

/** TensorProto.DataType values. */
export const DT = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16,
} as const;

const DT_NAMES: Record<number, string> = Object.fromEntries(Object.entries(DT).map(([k, v]) => [v, k]));

export function dataTypeName(t: number): string {
  return DT_NAMES[t] ?? `data type ${t}`;
}

/** AttributeProto.AttributeType values. */
export const AT = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

/** A decoded tensor. Numeric data are widened to float64 / plain numbers for the importer. */
export interface OnnxTensor {
  name: string;
  dims: number[];
  dataType: number;
  /** Element values (FLOAT/FLOAT16/DOUBLE as floats; integer types as integers). */
  data: Float64Array | Float32Array | Int32Array | number[];
}

export interface OnnxAttribute {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: string;
  t?: OnnxTensor;
  floats?: number[];
  ints?: number[];
  /** Set when the attribute holds a graph (If/Loop bodies): lowbit never executes those. */
  hasGraph?: boolean;
}

export interface OnnxNode {
  inputs: string[];
  outputs: string[];
  name: string;
  opType: string;
  domain: string;
  attributes: OnnxAttribute[];
}

/** dim_value (number) or dim_param (string), or null when neither is set. */
export type OnnxDim = number | string | null;

export interface OnnxValueInfo {
  name: string;
  elemType: number;
  /** null = shape unknown. */
  shape: OnnxDim[] | null;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

export interface OnnxModel {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  /** domain ("" = ai.onnx) → version. */
  opsets: Map<string, number>;
  graph: OnnxGraph;
  metadata: Map<string, string>;
}

function fmt(msg: string): LowbitError {
  return new LowbitError("E_MODEL_FORMAT", msg);
}

// ------------------------------------------------------------------------------------------------
// decoding

/** Bytes per element of the numeric data types lowbit decodes. */
const ELEM_BYTES: Record<number, number> = {
  [DT.FLOAT]: 4, [DT.UINT8]: 1, [DT.INT8]: 1, [DT.UINT16]: 2, [DT.INT16]: 2, [DT.INT32]: 4, [DT.INT64]: 8,
  [DT.BOOL]: 1, [DT.FLOAT16]: 2, [DT.DOUBLE]: 8, [DT.UINT32]: 4, [DT.UINT64]: 8,
};

/** IEEE half → number. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function decodeTensor(r: ProtoReader, where: string): OnnxTensor {
  const dims: number[] = [];
  let dataType = 0, name = "";
  let raw: Uint8Array | null = null;
  let external = false, segment = false;
  const floatData: number[] = [], int32Data: number[] = [], int64Data: number[] = [], doubleData: number[] = [], uint64Data: number[] = [];
  let typedFields = 0;
  for (let f: Field | null; (f = r.next()); ) {
    switch (f.no) {
      case 1: r.int64s(f, dims, "dims", 64); break;
      case 2: dataType = r.int64(f, "data_type"); break;
      case 3: segment = true; break;
      case 4: r.floats(f, floatData, "float_data"); typedFields |= 1; break;
      case 5: r.int64s(f, int32Data, "int32_data"); typedFields |= 2; break;
      case 6: throw fmt(`${where}: string tensors are not supported`);
      case 7: r.int64s(f, int64Data, "int64_data"); typedFields |= 4; break;
      case 8: name = r.string(f, "name"); break;
      case 9: raw = r.bytes(f, "raw_data"); break;
      case 10: r.doubles(f, doubleData, "double_data"); typedFields |= 8; break;
      case 11: r.int64s(f, uint64Data, "uint64_data"); typedFields |= 16; break;
      case 13: external = true; break;
      case 14: if (r.int64(f, "data_location") === 1) external = true; break;
      default: break;
    }
  }
  const label = `${where}${name ? ` '${name}'` : ""}`;
  if (external) {
    throw new LowbitError("E_UNSUPPORTED_LAYER", `${label}: external data (weights in a separate file) is not supported; save the model with all tensors inside the .onnx file (onnx.save(..., save_as_external_data=False))`);
  }
  if (segment) throw new LowbitError("E_UNSUPPORTED_LAYER", `${label}: segmented tensors are not supported`);
  for (const d of dims) if (!(d >= 0)) throw fmt(`${label}: negative dimension ${d}`);
  let count = 1;
  for (const d of dims) count *= d;
  if (!Number.isSafeInteger(count)) throw fmt(`${label}: element count overflows`);
  const eb = ELEM_BYTES[dataType];
  if (eb === undefined) {
    throw new LowbitError("E_UNSUPPORTED_LAYER", `${label}: tensor data type ${dataTypeName(dataType)} is not supported`);
  }
  if (raw && typedFields) throw fmt(`${label}: both raw_data and typed data fields are set`);
  let data: OnnxTensor["data"];
  if (raw) {
    if (raw.length !== count * eb) {
      throw fmt(`${label}: raw_data has ${raw.length} bytes, dims [${dims.join(",")}] of ${dataTypeName(dataType)} need ${count * eb}`);
    }
    data = decodeRaw(raw, dataType, count);
  } else {
    // Typed fields (onnx.proto: FLOAT in float_data; INT32/INT16/INT8/UINT16/UINT8/BOOL/FLOAT16 in
    // int32_data (FLOAT16 as bit patterns); INT64 in int64_data; DOUBLE in double_data; UINT32/UINT64 in uint64_data).
    let src: number[];
    switch (dataType) {
      case DT.FLOAT: src = floatData; break;
      case DT.DOUBLE: src = doubleData; break;
      case DT.INT64: src = int64Data; break;
      case DT.UINT32: case DT.UINT64: src = uint64Data; break;
      default: src = int32Data;
    }
    if (src.length !== count) throw fmt(`${label}: holds ${src.length} values, dims [${dims.join(",")}] need ${count}`);
    if (dataType === DT.FLOAT16) data = Float64Array.from(src, (h) => halfToFloat(h & 0xffff));
    else if (dataType === DT.FLOAT) data = Float32Array.from(src);
    else data = src;
  }
  return { name, dims, dataType, data };
}

function decodeRaw(b: Uint8Array, t: number, n: number): OnnxTensor["data"] {
  // Copy to an aligned buffer: raw_data sits at any byte offset inside the file.
  const c = b.slice();
  const dv = new DataView(c.buffer);
  switch (t) {
    case DT.FLOAT: return new Float32Array(c.buffer, 0, n);
    case DT.DOUBLE: return new Float64Array(c.buffer, 0, n);
    case DT.FLOAT16: { const o = new Float64Array(n); for (let i = 0; i < n; i++) o[i] = halfToFloat(dv.getUint16(2 * i, true)); return o; }
    case DT.UINT8: case DT.BOOL: return Int32Array.from(c);
    case DT.INT8: return Int32Array.from(new Int8Array(c.buffer, 0, n));
    case DT.UINT16: return Int32Array.from(new Uint16Array(c.buffer, 0, n));
    case DT.INT16: return Int32Array.from(new Int16Array(c.buffer, 0, n));
    case DT.INT32: return new Int32Array(c.buffer, 0, n);
    case DT.UINT32: { const o: number[] = new Array(n); for (let i = 0; i < n; i++) o[i] = dv.getUint32(4 * i, true); return o; }
    case DT.INT64: case DT.UINT64: {
      const o: number[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const lo = dv.getUint32(8 * i, true), hi = t === DT.INT64 ? dv.getInt32(8 * i + 4, true) : dv.getUint32(8 * i + 4, true);
        const v = hi * 4294967296 + lo;
        if (!Number.isSafeInteger(v)) throw fmt(`int64 value at ${i} exceeds 2^53`);
        o[i] = v;
      }
      return o;
    }
    default: throw new LowbitError("E_UNSUPPORTED_LAYER", `tensor data type ${dataTypeName(t)} is not supported`);
  }
}

function decodeAttribute(r: ProtoReader, where: string): OnnxAttribute {
  const a: OnnxAttribute = { name: "", type: 0 };
  for (let f: Field | null; (f = r.next()); ) {
    switch (f.no) {
      case 1: a.name = r.string(f, "name"); break;
      case 2: a.f = r.float(f, "f"); break;
      case 3: a.i = r.int64(f, "i"); break;
      case 4: a.s = r.string(f, "s"); break;
      case 5: a.t = decodeTensor(r.sub(f, `${where}.t`), `${where}.t`); break;
      case 6: case 11: a.hasGraph = true; break;
      case 7: r.floats(f, (a.floats ??= []), "floats"); break;
      case 8: r.int64s(f, (a.ints ??= []), "ints"); break;
      case 20: a.type = r.int64(f, "type"); break;
      case 21: throw new LowbitError("E_UNSUPPORTED_LAYER", `${where}: attribute references (functions) are not supported`);
      default: break;
    }
  }
  return a;
}

function decodeNode(r: ProtoReader, where: string): OnnxNode {
  const n: OnnxNode = { inputs: [], outputs: [], name: "", opType: "", domain: "", attributes: [] };
  for (let f: Field | null; (f = r.next()); ) {
    switch (f.no) {
      case 1: n.inputs.push(r.string(f, "input")); break;
      case 2: n.outputs.push(r.string(f, "output")); break;
      case 3: n.name = r.string(f, "name"); break;
      case 4: n.opType = r.string(f, "op_type"); break;
      case 5: n.attributes.push(decodeAttribute(r.sub(f, `${where}.attribute`), `${where}.attribute`)); break;
      case 7: n.domain = r.string(f, "domain"); break;
      default: break;
    }
  }
  return n;
}

function decodeValueInfo(r: ProtoReader, where: string): OnnxValueInfo {
  const v: OnnxValueInfo = { name: "", elemType: 0, shape: null };
  for (let f: Field | null; (f = r.next()); ) {
    if (f.no === 1) v.name = r.string(f, "name");
    else if (f.no === 2) {
      // TypeProto { tensor_type = 1: Tensor { elem_type = 1, shape = 2: TensorShapeProto { dim = 1 } } }
      const tr = r.sub(f, `${where}.type`);
      for (let g: Field | null; (g = tr.next()); ) {
        if (g.no !== 1 || g.wire !== WIRE_LEN) continue;
        const tt = tr.sub(g, `${where}.type.tensor_type`);
        for (let h: Field | null; (h = tt.next()); ) {
          if (h.no === 1) v.elemType = tt.int64(h, "elem_type");
          else if (h.no === 2) {
            v.shape = [];
            const sr = tt.sub(h, `${where}.shape`);
            for (let d: Field | null; (d = sr.next()); ) {
              if (d.no !== 1) continue;
              const dr = sr.sub(d, `${where}.shape.dim`);
              let dim: OnnxDim = null;
              for (let e: Field | null; (e = dr.next()); ) {
                if (e.no === 1) dim = dr.int64(e, "dim_value");
                else if (e.no === 2) dim = dr.string(e, "dim_param");
              }
              v.shape.push(dim);
              if (v.shape.length > 64) throw fmt(`${where}: more than 64 dimensions`);
            }
          }
        }
      }
    }
  }
  return v;
}

function decodeGraph(r: ProtoReader): OnnxGraph {
  const g: OnnxGraph = { name: "", nodes: [], initializers: [], inputs: [], outputs: [] };
  for (let f: Field | null; (f = r.next()); ) {
    switch (f.no) {
      case 1: g.nodes.push(decodeNode(r.sub(f, `graph.node[${g.nodes.length}]`), `graph.node[${g.nodes.length}]`)); break;
      case 2: g.name = r.string(f, "name"); break;
      case 5: g.initializers.push(decodeTensor(r.sub(f, `graph.initializer[${g.initializers.length}]`), `graph.initializer[${g.initializers.length}]`)); break;
      case 11: g.inputs.push(decodeValueInfo(r.sub(f, "graph.input"), "graph.input")); break;
      case 12: g.outputs.push(decodeValueInfo(r.sub(f, "graph.output"), "graph.output")); break;
      case 15: throw new LowbitError("E_UNSUPPORTED_LAYER", "graph.sparse_initializer: sparse tensors are not supported");
      default: break;
    }
  }
  return g;
}

/** Decodes a ModelProto. */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  const r = new ProtoReader(bytes, 0, bytes.length, "ModelProto");
  const m: OnnxModel = { irVersion: 0, producerName: "", producerVersion: "", opsets: new Map(), graph: null as unknown as OnnxGraph, metadata: new Map() };
  let graphs = 0;
  for (let f: Field | null; (f = r.next()); ) {
    switch (f.no) {
      case 1: m.irVersion = r.int64(f, "ir_version"); break;
      case 2: m.producerName = r.string(f, "producer_name"); break;
      case 3: m.producerVersion = r.string(f, "producer_version"); break;
      case 7: m.graph = decodeGraph(r.sub(f, "ModelProto.graph")); graphs++; break;
      case 8: {
        const o = r.sub(f, "ModelProto.opset_import");
        let domain = "", version = 0;
        for (let g: Field | null; (g = o.next()); ) {
          if (g.no === 1) domain = o.string(g, "domain");
          else if (g.no === 2) version = o.int64(g, "version");
        }
        m.opsets.set(domain === "ai.onnx" ? "" : domain, version);
        break;
      }
      case 14: {
        const o = r.sub(f, "ModelProto.metadata_props");
        let k = "", v = "";
        for (let g: Field | null; (g = o.next()); ) {
          if (g.no === 1) k = o.string(g, "key");
          else if (g.no === 2) v = o.string(g, "value");
        }
        m.metadata.set(k, v);
        break;
      }
      case 25: throw new LowbitError("E_UNSUPPORTED_LAYER", "ModelProto.functions: model-local functions are not supported");
      default: break;
    }
  }
  if (graphs !== 1 || !m.graph) throw fmt(`not an ONNX model: ${graphs === 0 ? "no graph" : "several graphs"} (truncated, corrupt, or not an .onnx file)`);
  if (!m.irVersion) throw fmt("not an ONNX model: ir_version missing");
  return m;
}

// ------------------------------------------------------------------------------------------------
// encoding

/** A tensor to encode: float32 / int8 / uint8 / int32 / int64 data with dims. */
export interface TensorInit {
  name: string;
  dims: number[];
  dataType: number;
  data: Float32Array | Int8Array | Uint8Array | Int32Array | number[];
}

/** Raw tensor data is little-endian; on such hosts (all current JS engines' targets) typed arrays copy straight in. */
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

export function encodeTensor(t: TensorInit): Uint8Array {
  const w = new ProtoWriter();
  if (t.dims.length) w.packedInt64(1, t.dims);
  w.int64(2, t.dataType);
  w.string(8, t.name);
  let raw: Uint8Array;
  const n = t.data.length;
  switch (t.dataType) {
    case DT.FLOAT: {
      if (LITTLE_ENDIAN) raw = new Uint8Array((t.data instanceof Float32Array ? t.data.slice() : Float32Array.from(t.data)).buffer);
      else { raw = new Uint8Array(n * 4); const dv = new DataView(raw.buffer); for (let i = 0; i < n; i++) dv.setFloat32(4 * i, t.data[i], true); }
      break;
    }
    case DT.INT8: case DT.UINT8: { raw = new Uint8Array(n); for (let i = 0; i < n; i++) raw[i] = t.data[i] & 255; break; }
    case DT.INT32: { raw = new Uint8Array(n * 4); const dv = new DataView(raw.buffer); for (let i = 0; i < n; i++) dv.setInt32(4 * i, t.data[i], true); break; }
    case DT.INT64: {
      raw = new Uint8Array(n * 8);
      const dv = new DataView(raw.buffer);
      for (let i = 0; i < n; i++) {
        const v = t.data[i];
        dv.setUint32(8 * i, v >>> 0, true);
        dv.setInt32(8 * i + 4, Math.floor(v / 4294967296), true);
      }
      break;
    }
    default: throw new LowbitError("E_ARGUMENT", `cannot encode tensor data type ${dataTypeName(t.dataType)}`);
  }
  w.bytes(9, raw);
  return w.finish();
}

export type AttrValue =
  | { f: number }
  | { i: number }
  | { s: string }
  | { t: TensorInit }
  | { floats: number[] }
  | { ints: number[] };

export function encodeAttribute(name: string, v: AttrValue): Uint8Array {
  const w = new ProtoWriter().string(1, name);
  if ("f" in v) w.float(2, v.f).int64(20, AT.FLOAT);
  else if ("i" in v) w.int64(3, v.i).int64(20, AT.INT);
  else if ("s" in v) w.string(4, v.s).int64(20, AT.STRING);
  else if ("t" in v) w.bytes(5, encodeTensor(v.t)).int64(20, AT.TENSOR);
  else if ("floats" in v) w.packedFloat(7, v.floats).int64(20, AT.FLOATS);
  else w.packedInt64(8, v.ints).int64(20, AT.INTS);
  return w.finish();
}

export interface NodeInit {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

export function encodeNode(n: NodeInit): Uint8Array {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.bytes(5, encodeAttribute(k, v));
  if (n.domain) w.string(7, n.domain);
  return w.finish();
}

export function encodeValueInfo(name: string, elemType: number, shape: OnnxDim[] | null): Uint8Array {
  const tt = new ProtoWriter().int64(1, elemType);
  if (shape) {
    const s = new ProtoWriter();
    for (const d of shape) {
      const dw = new ProtoWriter();
      if (typeof d === "number") dw.int64(1, d);
      else if (typeof d === "string") dw.string(2, d);
      s.bytes(1, dw.finish());
    }
    tt.bytes(2, s.finish());
  }
  const type = new ProtoWriter().bytes(1, tt.finish()).finish();
  return new ProtoWriter().string(1, name).bytes(2, type).finish();
}

export interface ModelInit {
  graphName: string;
  nodes: NodeInit[];
  initializers: TensorInit[];
  inputs: { name: string; elemType: number; shape: OnnxDim[] | null }[];
  outputs: { name: string; elemType: number; shape: OnnxDim[] | null }[];
  /** Default-domain opset version. */
  opset: number;
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  metadata?: Record<string, string>;
}

export function encodeModel(m: ModelInit): Uint8Array {
  const g = new ProtoWriter();
  for (const n of m.nodes) g.bytes(1, encodeNode(n));
  g.string(2, m.graphName);
  for (const t of m.initializers) g.bytes(5, encodeTensor(t));
  for (const i of m.inputs) g.bytes(11, encodeValueInfo(i.name, i.elemType, i.shape));
  for (const o of m.outputs) g.bytes(12, encodeValueInfo(o.name, o.elemType, o.shape));
  const w = new ProtoWriter();
  // IR version for the opset (onnx/helper.py VERSION_TABLE: opsets 15–18 ↔ IR 8, 19–20 ↔ 9, 21 ↔ 10);
  // never below 8, which every onnxruntime ≥ 1.10 reads.
  w.int64(1, m.irVersion ?? (m.opset >= 21 ? 10 : m.opset >= 19 ? 9 : 8));
  w.string(2, m.producerName ?? "lowbit");
  if (m.producerVersion) w.string(3, m.producerVersion);
  if (m.docString) w.string(6, m.docString);
  w.bytes(7, g.finish());
  w.bytes(8, new ProtoWriter().string(1, "").int64(2, m.opset).finish());
  for (const [k, v] of Object.entries(m.metadata ?? {})) w.bytes(14, new ProtoWriter().string(1, k).string(2, v).finish());
  return w.finish();
}
