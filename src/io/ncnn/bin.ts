/**
 * ncnn `.bin` reader: the weights of every layer, in layer order, as ncnn's ModelBinFromDataReader
 * reads them (src/modelbin.cpp). Each layer's load_model asks for tensors of known length and type:
 * - type 1 (biases, PReLU slopes, Scale data): raw little-endian float32, no header;
 * - type 0 (conv / deconv / inner-product weights): a 4-byte header first —
 *     tag 0x01306B47: float16, length·2 bytes padded to a multiple of 4;
 *     tag 0x000D4B38: int8 codes (needs the int8 scale tables; not supported here);
 *     tag 0x0002C056: raw float32 (legacy "raw with scaling" tag; the data are plain floats);
 *     bytes f0..f3 with f0+f1+f2+f3 ≠ 0 otherwise: 256-entry float32 table, then length uint8 indices
 *       padded to 4 (ncnn's quantize-table storage);
 *     all zero: raw float32.
 * A short file, an unknown tag or trailing bytes are E_MODEL_FORMAT naming the layer and tensor.
 */
import { LowbitError } from "../../runtime/errors.ts";
import type { NcnnLayer } from "./param.ts";

export const TAG_FP16 = 0x01306b47;
export const TAG_INT8 = 0x000d4b38;
export const TAG_RAW_SCALED = 0x0002c056;

/** IEEE binary16 → number (exact). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

export class NcnnBinReader {
  private off = 0;
  private readonly dv: DataView;
  constructor(private readonly bytes: Uint8Array) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.off;
  }
  get remaining(): number {
    return this.bytes.byteLength - this.off;
  }

  private need(n: number, what: string): void {
    if (this.off + n > this.bytes.byteLength) {
      throw new LowbitError("E_MODEL_FORMAT", `ncnn .bin: truncated at ${what}: needs ${n} bytes at offset ${this.off}, file has ${this.bytes.byteLength}`);
    }
  }

  /** Reads `n` values of load type 0 (tagged) or 1 (raw float32). */
  load(n: number, type: 0 | 1, what: string): Float32Array {
    if (!Number.isInteger(n) || n < 0 || n > 1 << 28) throw new LowbitError("E_MODEL_FORMAT", `ncnn .bin: ${what}: bad length ${n}`);
    const out = new Float32Array(n);
    if (type === 1) return this.raw(out, what);
    this.need(4, `${what} (storage tag)`);
    const tag = this.dv.getUint32(this.off, true);
    const f = [0, 1, 2, 3].map((i) => this.bytes[this.off + i]);
    this.off += 4;
    if (tag === TAG_FP16) {
      const bytes = (n * 2 + 3) & ~3;
      this.need(bytes, `${what} (float16 data)`);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(this.dv.getUint16(this.off + 2 * i, true));
      this.off += bytes;
      return out;
    }
    if (tag === TAG_INT8) {
      throw new LowbitError("E_UNSUPPORTED_LAYER", `ncnn .bin: ${what}: int8-stored weights (tag 0x000D4B38) are not supported; use the float/fp16 model`);
    }
    if (tag === TAG_RAW_SCALED) return this.raw(out, what);
    if (f[0] + f[1] + f[2] + f[3] !== 0) {
      this.need(1024, `${what} (quantize table)`);
      const table = new Float32Array(256);
      for (let i = 0; i < 256; i++) table[i] = this.dv.getFloat32(this.off + 4 * i, true);
      this.off += 1024;
      const bytes = (n + 3) & ~3;
      this.need(bytes, `${what} (table indices)`);
      for (let i = 0; i < n; i++) out[i] = table[this.bytes[this.off + i]];
      this.off += bytes;
      return out;
    }
    return this.raw(out, what);
  }

  private raw(out: Float32Array, what: string): Float32Array {
    this.need(out.length * 4, `${what} (float32 data)`);
    for (let i = 0; i < out.length; i++) out[i] = this.dv.getFloat32(this.off + 4 * i, true);
    this.off += out.length * 4;
    return out;
  }
}

function nonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

/**
 * Reads every layer's weights into `layer.weights` (mutates the layers), in ncnn's load order.
 * Throws E_MODEL_FORMAT when the file is short, has trailing bytes, or a weight is NaN/Inf.
 */
export function readNcnnWeights(layers: NcnnLayer[], bin: Uint8Array): void {
  const r = new NcnnBinReader(bin);
  for (const l of layers) {
    const what = (t: string) => `layer '${l.name}' (${l.type})${t ? " " + t : ""}`;
    const p = l.p;
    const load = (key: string, n: number, type: 0 | 1) => {
      const a = r.load(n, type, what(key));
      const j = nonFinite(a);
      if (j >= 0) throw new LowbitError("E_MODEL_FORMAT", `ncnn .bin: ${what(key)}[${j}] = ${a[j]} is not finite`);
      l.weights[key] = a;
    };
    switch (l.type) {
      case "Convolution":
      case "Deconvolution":
      case "InnerProduct": {
        const size = l.type === "InnerProduct" ? p.weightDataSize : p.weightDataSize;
        if (p.dynamicWeight) throw new LowbitError("E_UNSUPPORTED_LAYER", `ncnn ${what("")}: dynamic weights (param ${l.type === "Deconvolution" ? 28 : 19}) are not supported`);
        if (!(size > 0)) throw new LowbitError("E_MODEL_FORMAT", `ncnn ${what("")}: weight_data_size (param ${l.type === "InnerProduct" ? 2 : 6}) must be > 0, got ${size}`);
        load("weight", size, 0);
        if (p.biasTerm) load("bias", p.numOutput, 1);
        if (p.int8ScaleTerm) throw new LowbitError("E_UNSUPPORTED_LAYER", `ncnn ${what("")}: int8 scale tables (param 8 int8_scale_term) are not supported`);
        break;
      }
      case "PReLU":
        if (!(p.numSlope > 0)) throw new LowbitError("E_MODEL_FORMAT", `ncnn ${what("")}: num_slope (param 0) must be > 0, got ${p.numSlope}`);
        load("slope", p.numSlope, 1);
        break;
      case "Scale":
        if (p.scaleDataSize === -233) {
          // Scale from a second blob (an SE gate): no scale weights; a bias would have an unknown size.
          if (p.biasTerm) throw new LowbitError("E_UNSUPPORTED_LAYER", `ncnn ${what("")}: bias_term with scale_data_size -233 (scale from a second blob) is not supported`);
          break;
        }
        if (!(p.scaleDataSize > 0)) throw new LowbitError("E_MODEL_FORMAT", `ncnn ${what("")}: scale_data_size (param 0) must be > 0`);
        load("scale", p.scaleDataSize, 1);
        if (p.biasTerm) load("bias", p.scaleDataSize, 1);
        break;
      default:
        break;
    }
  }
  if (r.remaining !== 0) {
    throw new LowbitError("E_MODEL_FORMAT", `ncnn .bin: ${r.remaining} trailing bytes after the last layer's weights (read ${r.offset} of ${bin.byteLength}): the .bin does not match the .param`);
  }
}
