/**
 * TF.js weights manifest parsing and decoding.
 *
 * Layout (tfjs io): a manifest is a list of groups; a group's shard files are concatenated in
 * `paths` order and its tensors are packed back to back in `weights` order, each taking
 * numel × element-size bytes, little-endian, no padding. We are stricter than tfjs: every group
 * must hold *exactly* the bytes its tensors need (tfjs silently ignores trailing bytes and
 * throws a bare RangeError on short ones).
 *
 * Decoding matches tfjs-core `io.decodeWeights` bit for bit:
 * - float32: the bytes as is.
 * - uint8 / uint16 affine: tfjs evaluates `q * scale + min` in doubles and stores the result
 *   into a Float32Array, i.e. one round-to-nearest-even to f32 at the end. `Math.fround` of the
 *   same double expression is that very operation.
 * - float16: every binary16 value is exactly representable in binary32, so any correct widening
 *   is bit-identical to tfjs's table decoder (NaN payloads aside, and NaN is rejected anyway).
 */
import { LowbitError } from "../../runtime/errors.ts";
import type { AffineQuantized } from "../../graph/ir.ts";
import { get, isObject, type Json } from "./json.ts";

export type QuantDtype = "uint8" | "uint16" | "float16";

export interface WeightSpec {
  name: string;
  shape: number[];
  /** Logical dtype; only float32 tensors feed conv layers. */
  dtype: "float32";
  quantization?: { dtype: QuantDtype; scale?: number; min?: number };
}

export interface WeightGroup {
  /** Shard paths as written in the manifest (relative to model.json). */
  paths: string[];
  weights: WeightSpec[];
}

export interface DecodedTensor {
  name: string;
  shape: number[];
  values: Float32Array;
  /** Present for uint8/uint16 affine-quantized tensors: the stored codes and their map. */
  quant?: AffineQuantized;
}

const QUANT_BYTES: Record<QuantDtype, number> = { uint8: 1, uint16: 2, float16: 2 };
/** A tensor larger than this is certainly a corrupt manifest (prevents absurd allocations). */
const MAX_TENSOR_ELEMENTS = 2 ** 30;

/**
 * 'string' or a JSON rendering, for an error message. Never `String(v)` or `${v}`: sanitized objects have a null
 * prototype, and converting one to a primitive throws a TypeError instead of the intended error.
 */
function shown(v: Json | undefined): string {
  return typeof v === "string" ? `'${v}'` : (JSON.stringify(v) ?? "undefined").slice(0, 120);
}

function fmt(m: string): LowbitError {
  return new LowbitError("E_MODEL_FORMAT", m);
}

/** Validates the `weightsManifest` JSON into typed groups (shapes, dtypes, quantization). */
export function parseManifest(m: Json | undefined): WeightGroup[] {
  if (!Array.isArray(m)) throw fmt("model.json has no weightsManifest array");
  const seen = new Set<string>();
  return m.map((g, gi) => {
    if (!isObject(g)) throw fmt(`weightsManifest[${gi}] is not an object`);
    const paths = get(g, "paths");
    const weights = get(g, "weights");
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === "string" && p.length > 0)) {
      throw fmt(`weightsManifest[${gi}].paths must be a list of non-empty strings`);
    }
    if (!Array.isArray(weights)) throw fmt(`weightsManifest[${gi}].weights must be a list`);
    const specs = weights.map((w, wi): WeightSpec => {
      const where = `weightsManifest[${gi}].weights[${wi}]`;
      if (!isObject(w)) throw fmt(`${where} is not an object`);
      const name = get(w, "name");
      if (typeof name !== "string" || name === "") throw fmt(`${where} has no name`);
      if (seen.has(name)) throw fmt(`weight '${name}' appears twice in the manifest`);
      seen.add(name);
      const shape = get(w, "shape");
      if (!Array.isArray(shape) || !shape.every((d) => typeof d === "number" && Number.isInteger(d) && d >= 0)) {
        throw fmt(`weight '${name}': shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
      }
      const numel = (shape as number[]).reduce((a, b) => a * b, 1);
      if (numel > MAX_TENSOR_ELEMENTS) throw fmt(`weight '${name}': ${numel} elements is implausibly large`);
      const dtype = get(w, "dtype");
      if (dtype !== "float32") {
        throw fmt(`weight '${name}': dtype ${shown(dtype)} is not supported (conv weights are float32)`);
      }
      const spec: WeightSpec = { name, shape: shape as number[], dtype };
      const q = get(w, "quantization");
      if (q !== undefined && q !== null) {
        if (!isObject(q)) throw fmt(`weight '${name}': quantization is not an object`);
        const qd = get(q, "dtype");
        if (qd !== "uint8" && qd !== "uint16" && qd !== "float16") {
          throw fmt(`weight '${name}': quantization dtype ${shown(qd)} is not supported (uint8, uint16, float16)`);
        }
        spec.quantization = { dtype: qd };
        if (qd !== "float16") {
          const scale = get(q, "scale");
          const min = get(q, "min");
          if (typeof scale !== "number" || typeof min !== "number" || !Number.isFinite(scale) || !Number.isFinite(min)) {
            throw fmt(`weight '${name}': ${qd} quantization needs finite 'scale' and 'min', got ${shown(scale)} / ${shown(min)}`);
          }
          spec.quantization.scale = scale;
          spec.quantization.min = min;
        }
      }
      return spec;
    });
    return { paths: paths as string[], weights: specs };
  });
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function byteSize(s: WeightSpec): number {
  return numel(s.shape) * (s.quantization ? QUANT_BYTES[s.quantization.dtype] : 4);
}

/** Bytes a group's shards must hold in total. */
export function groupByteSize(g: WeightGroup): number {
  let n = 0;
  for (const w of g.weights) n += byteSize(w);
  return n;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** binary16 → number (exact). */
export function float16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24; // subnormal (or ±0)
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1024 + f) * 2 ** (e - 25);
}

/**
 * Zero point of an affine map: −min/scale when it is an integer code. The converter nudges min
 * so that 0 is representable whenever the tensor's range spans 0; the double division then
 * lands within an ulp or two of the integer (e.g. 125.00000000000001), hence the tolerance.
 */
export function affineZeroPoint(scale: number, min: number, maxCode: number): number | null {
  if (!(scale > 0)) return null;
  const z = -min / scale;
  const r = Math.round(z);
  return Math.abs(z - r) <= 1e-9 * Math.max(1, Math.abs(r)) && r >= 0 && r <= maxCode ? r : null;
}

/** Decodes one tensor from `bytes` (exactly byteSize(spec) long). */
export function decodeTensor(spec: WeightSpec, bytes: Uint8Array, keepCodes = true): DecodedTensor {
  const n = numel(spec.shape);
  const out = new Float32Array(n);
  const q = spec.quantization;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let quant: AffineQuantized | undefined;
  if (!q) {
    if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
    else for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  } else if (q.dtype === "float16") {
    for (let i = 0; i < n; i++) out[i] = float16ToNumber(dv.getUint16(2 * i, true));
  } else {
    const scale = q.scale!;
    const min = q.min!;
    let codes: Uint8Array | Uint16Array;
    if (q.dtype === "uint8") codes = bytes.slice();
    else {
      codes = new Uint16Array(n);
      for (let i = 0; i < n; i++) codes[i] = dv.getUint16(2 * i, true);
    }
    // tfjs: values[i] = v * quantization.scale + quantization.min, into a Float32Array.
    for (let i = 0; i < n; i++) out[i] = codes[i] * scale + min;
    if (keepCodes) {
      quant = { dtype: q.dtype, scale, min, zeroPoint: affineZeroPoint(scale, min, q.dtype === "uint8" ? 255 : 65535), q: codes };
    }
  }
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(out[i])) {
      const layer = spec.name.includes("/") ? spec.name.slice(0, spec.name.lastIndexOf("/")) : spec.name;
      throw fmt(`weight '${spec.name}' of layer '${layer}': element ${i} is ${out[i]} (weights must be finite)`);
    }
  }
  return { name: spec.name, shape: [...spec.shape], values: out, ...(quant ? { quant } : {}) };
}

/**
 * Decodes all groups. `shards[g][i]` holds the bytes of `groups[g].paths[i]`. Byte counts are
 * checked per group before any tensor is decoded; a short group names the first tensor that
 * does not fit, a long one the surplus. Returns tensors by name.
 */
export function decodeGroups(groups: WeightGroup[], shards: Uint8Array[][]): Map<string, DecodedTensor> {
  if (shards.length !== groups.length) throw fmt(`expected shard data for ${groups.length} weight group(s), got ${shards.length}`);
  const out = new Map<string, DecodedTensor>();
  groups.forEach((g, gi) => {
    const parts = shards[gi];
    if (parts.length !== g.paths.length) {
      throw fmt(`weight group ${gi + 1} lists ${g.paths.length} shard(s) (${g.paths.join(", ")}) but ${parts.length} were provided`);
    }
    const have = parts.reduce((a, p) => a + p.byteLength, 0);
    const need = groupByteSize(g);
    const last = g.paths[g.paths.length - 1] ?? "(none)";
    const shardList = g.paths.length === 1 ? `shard '${g.paths[0]}' holds` : `shards '${g.paths[0]}' … '${last}' hold`;
    if (have < need) {
      let off = 0;
      for (const w of g.weights) {
        const end = off + byteSize(w);
        if (end > have) {
          throw fmt(
            `weight '${w.name}' needs bytes [${off}, ${end}) of group ${gi + 1} but ${shardList} only ${have} bytes ` +
              `(expected ${need}): a shard is truncated or missing`,
          );
        }
        off = end;
      }
    }
    if (have > need) {
      const lw = g.weights[g.weights.length - 1];
      throw fmt(
        `group ${gi + 1}: ${shardList} ${have} bytes but the manifest's tensors need ${need} ` +
          `(${have - need} extra bytes after '${lw?.name ?? "nothing"}'): wrong or corrupt shard '${last}'`,
      );
    }
    let buf: Uint8Array;
    if (parts.length === 1) buf = parts[0];
    else {
      buf = new Uint8Array(have);
      let o = 0;
      for (const p of parts) {
        buf.set(p, o);
        o += p.byteLength;
      }
    }
    let off = 0;
    for (const w of g.weights) {
      const n = byteSize(w);
      out.set(w.name, decodeTensor(w, buf.subarray(off, off + n)));
      off += n;
    }
  });
  return out;
}
