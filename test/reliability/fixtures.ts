// Small, valid inputs for the reliability tests and the fuzzers: random TF.js layers models
// (model.json + one weight buffer, every weight encoding tfjs writes), small lowbit graphs, images,
// and hand-built PNG/JPEG headers. Everything is derived from a seeded Rng.
import jpeg from "jpeg-js";
import { deflateSync } from "node:zlib";
import { GraphBuilder } from "../../src/graph/builder.ts";
import type { Graph } from "../../src/graph/ir.ts";
import type { TfjsModelBuffers } from "../../src/io/tfjs/index.ts";
import { Rng } from "../util/rng.ts";

type L = Record<string, unknown>;
const inb = (...names: string[]) => [names.map((n) => [n, 0, 0, {}])];

interface Tensor { name: string; shape: number[]; enc: "f32" | "uint8" | "uint16" | "float16"; bytes: Uint8Array; scale?: number; min?: number }

/** A tensor of small random values in one of the four encodings tfjs writes. */
function tensor(r: Rng, name: string, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const enc = r.pick(["f32", "f32", "uint8", "uint16", "float16"] as const);
  if (enc === "f32") {
    const v = r.fillF32(new Float32Array(n), -0.4, 0.4);
    return { name, shape, enc, bytes: new Uint8Array(v.buffer) };
  }
  if (enc === "float16") {
    const h = new Uint16Array(n);
    // sign, exponent 5..14 (|x| in [2^-10, 1)), random mantissa: always finite
    for (let i = 0; i < n; i++) h[i] = (r.int(0, 1) << 15) | (r.int(5, 14) << 10) | r.int(0, 1023);
    return { name, shape, enc, bytes: new Uint8Array(h.buffer) };
  }
  const max = enc === "uint8" ? 255 : 65535;
  const scale = 0.8 / max;
  const min = -Math.round(max / 2) * scale;
  const codes = enc === "uint8" ? new Uint8Array(n) : new Uint16Array(n);
  for (let i = 0; i < n; i++) codes[i] = r.int(0, max);
  return { name, shape, enc, bytes: new Uint8Array(codes.buffer), scale, min };
}

/**
 * A random valid Keras-2 functional model: input → conv (relu?) → [dense block: conv, concat] →
 * conv (+ skip add) → ×s upsampler (PixelShuffle or UpSampling2D + conv) → conv to 3 channels.
 * 4–8 convs, 2–12 channels, k 1/3/5, every weight encoding.
 */
export function makeTfjsModel(r: Rng): TfjsModelBuffers & { modelJson: L; weights: ArrayBuffer } {
  const layers: L[] = [{ class_name: "InputLayer", name: "in", config: { batch_input_shape: [null, null, null, 3], dtype: "float32", name: "in" }, inbound_nodes: [] }];
  const tensors: Tensor[] = [];
  const conv = (name: string, from: string, cin: number, filters: number, k: number, act = "linear") => {
    const bias = r.next() < 0.85;
    layers.push({
      class_name: "Conv2D", name, inbound_nodes: inb(from),
      config: { name, filters, kernel_size: [k, k], strides: [1, 1], padding: k === 1 && r.next() < 0.5 ? "valid" : "same", data_format: "channels_last", dilation_rate: [1, 1], groups: 1, activation: act, use_bias: bias },
    });
    tensors.push(tensor(r, `${name}/kernel`, [k, k, cin, filters]));
    if (bias) tensors.push(tensor(r, `${name}/bias`, [filters]));
    return name;
  };
  const c0 = r.int(2, 10);
  let x = conv("head", "in", 3, c0, r.pick([1, 3, 5]), r.pick(["linear", "relu"]));
  const head = x;
  let ch = c0;
  if (r.next() < 0.7) {
    const g = r.int(1, 6);
    const y = conv("dense1", x, ch, g, r.pick([1, 3]), "relu");
    layers.push({ class_name: "Concatenate", name: "cat1", config: { name: "cat1", axis: -1 }, inbound_nodes: inb(x, y) });
    x = "cat1";
    ch += g;
    x = conv("lff", x, ch, c0, 1);
    ch = c0;
    layers.push({ class_name: "Add", name: "skip", config: { name: "skip" }, inbound_nodes: inb(x, head) });
    x = "skip";
  }
  const s = r.pick([1, 2, 2, 3]);
  if (r.next() < 0.5) {
    x = conv("pre", x, ch, 3 * s * s, 3);
    layers.push({ class_name: `PixelShuffle${s}x`, name: "ps", config: { name: "ps", scale: s }, inbound_nodes: inb(x) });
    x = "ps";
    ch = 3;
  } else {
    layers.push({ class_name: "UpSampling2D", name: "up", config: { name: "up", size: [s, s], interpolation: "nearest", data_format: "channels_last" }, inbound_nodes: inb(x) });
    x = "up";
  }
  x = conv("out", x, ch, 3, 3);
  // Shuffle the manifest order (the reader must not depend on it).
  for (let i = tensors.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [tensors[i], tensors[j]] = [tensors[j], tensors[i]];
  }
  const total = tensors.reduce((a, t) => a + t.bytes.length, 0);
  const buf = new Uint8Array(total);
  let o = 0;
  for (const t of tensors) {
    buf.set(t.bytes, o);
    o += t.bytes.length;
  }
  const spec = (t: Tensor) => ({
    name: t.name, shape: t.shape, dtype: "float32",
    ...(t.enc === "f32" ? {} : { quantization: t.enc === "float16" ? { dtype: "float16" } : { dtype: t.enc, scale: t.scale, min: t.min } }),
  });
  return {
    modelJson: {
      format: "layers-model", generatedBy: "keras v2.10.0", convertedBy: "TensorFlow.js Converter v3.18.0",
      modelTopology: { keras_version: "2.10.0", backend: "tensorflow", model_config: { class_name: "Functional", config: { name: "fuzz", layers, input_layers: [["in", 0, 0]], output_layers: [[x, 0, 0]] } } },
      weightsManifest: [{ paths: ["group1-shard1of1.bin"], weights: tensors.map(spec) }],
    },
    weights: buf.buffer,
  };
}

/** A small random SR graph (RDN-like: head, dense block, residual add, ×s tail). */
export function smallGraph(seed: number): Graph {
  const r = new Rng(seed);
  const b = new GraphBuilder({ seed });
  const x = b.input(3);
  const c0 = r.int(3, 8);
  const head = b.conv2d(x, c0, r.pick([1, 3]));
  const y = b.conv2d(head, r.int(2, 6), 3, { activation: "relu" });
  const cat = b.concat(head, y);
  const lff = b.conv2d(cat, c0, 1);
  const f = b.add(head, r.next() < 0.5 ? b.scale(lff, 0.2) : lff);
  const s = r.pick([2, 3]);
  const up = r.next() < 0.5
    ? b.depthToSpace(b.conv2d(f, 3 * s * s, 3), s)
    : b.conv2d(b.upsampleNearest(b.conv2d(f, 4, 3, { activation: "relu" }), s), 3, 3);
  return b.build(up, { scale: s, name: `small-${seed}` });
}

/** Random 8-bit image with some structure (gradients + noise), RGB or RGBA. */
export function smallImage(r: Rng, width: number, height: number, channels: 3 | 4) {
  const data = new Uint8Array(width * height * channels);
  const fx = r.uniform(0.05, 0.5), fy = r.uniform(0.05, 0.5);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < channels; c++) {
    const v = 128 + 100 * Math.sin(fx * x * (c + 1) + fy * y) + r.int(-20, 20);
    data[(y * width + x) * channels + c] = Math.max(0, Math.min(255, Math.round(v)));
  }
  return { data, width, height, channels };
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 as PNG chunks use it. */
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A PNG chunk with a correct CRC. */
export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A structurally valid PNG whose IHDR claims width×height (8-bit RGB) with a tiny IDAT. */
export function pngWithHeader(width: number, height: number): Uint8Array {
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const parts = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk("IHDR", ihdr), pngChunk("IDAT", deflateSync(new Uint8Array(16))), pngChunk("IEND", new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Offset of the SOF0 segment's height field in a jpeg-js encoded file. */
export function jpegSofOffset(b: Uint8Array): number {
  let p = 2;
  while (p + 4 < b.length) {
    const m = b[p + 1];
    if (m >= 0xc0 && m <= 0xc2) return p + 5;
    p += 2 + ((b[p + 2] << 8) | b[p + 3]);
  }
  throw new Error("no SOF");
}

/** A real 8×8 baseline JPEG whose frame header is patched to claim width×height. */
export function jpegWithSize(width: number, height: number): Uint8Array {
  const img = smallImage(new Rng(2), 8, 8, 4);
  const b = new Uint8Array(jpeg.encode({ data: img.data, width: 8, height: 8 }, 80).data);
  const p = jpegSofOffset(b);
  b[p] = height >> 8; b[p + 1] = height & 255; b[p + 2] = width >> 8; b[p + 3] = width & 255;
  return b;
}
