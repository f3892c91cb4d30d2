// Helpers of the ONNX tests: run a model in onnxruntime-web (single thread, WASM) and in lowbit on the
// same NHWC input, and build ONNX models by hand with lowbit's protobuf writer (independent of
// exportOnnx: NCHW tensors written directly).
import * as ort from "onnxruntime-web";
import { createUpscaler, type CompilableModel } from "../../src/engine/upscaler-api.ts";
import type { Graph } from "../../src/graph/ir.ts";
import { DT, encodeModel, type AttrValue, type NodeInit, type TensorInit } from "../../src/io/onnx/onnx-schema.ts";
import { testRuntime } from "./runtime.ts";
import { Rng } from "./rng.ts";

ort.env.wasm.numThreads = 1;
ort.env.logLevel = "error";

/** NHWC → NCHW (batch 1). */
export function toNchw(x: Float32Array, w: number, h: number, c: number): Float32Array {
  const o = new Float32Array(x.length);
  for (let p = 0; p < w * h; p++) for (let k = 0; k < c; k++) o[k * w * h + p] = x[p * c + k];
  return o;
}

/** NCHW → NHWC (batch 1). */
export function toNhwc(x: Float32Array, w: number, h: number, c: number): Float32Array {
  const o = new Float32Array(x.length);
  for (let p = 0; p < w * h; p++) for (let k = 0; k < c; k++) o[p * c + k] = x[k * w * h + p];
  return o;
}

/** Runs ONNX bytes in onnxruntime-web on an NHWC RGB input; returns the NHWC output. */
export async function ortRun(bytes: Uint8Array, x: Float32Array, w: number, h: number, scale: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: "all" });
  try {
    const feeds = { [s.inputNames[0]]: new ort.Tensor("float32", toNchw(x, w, h, 3), [1, 3, h, w]) };
    const r = await s.run(feeds);
    const o = r[s.outputNames[0]];
    const want = [1, 3, h * scale, w * scale];
    if (o.dims.join() !== want.join()) throw new Error(`onnxruntime output dims [${o.dims}], expected [${want}]`);
    return toNhwc(o.data as Float32Array, w * scale, h * scale, 3);
  } finally {
    await s.release();
  }
}

/** lowbit's raw float output (runFloat: no tiling, no clipping) on the test runtime. */
export async function lowbitRun(model: Graph | CompilableModel, x: Float32Array, w: number, h: number): Promise<Float32Array> {
  const up = await createUpscaler(model, { runtime: await testRuntime() });
  try {
    return up.runFloat(x, w, h);
  } finally {
    up.dispose();
  }
}

/** A seeded NHWC test input spanning `range`. */
export function testInput(rng: Rng, w: number, h: number, range: [number, number]): Float32Array {
  const x = new Float32Array(w * h * 3);
  for (let i = 0; i < x.length; i++) x[i] = range[0] + (range[1] - range[0]) * rng.next();
  return x;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Hand-built ONNX graphs (NCHW, opset given), seeded weights. */
export class OnnxBuilder {
  nodes: NodeInit[] = [];
  inits: TensorInit[] = [];
  private n = 0;
  constructor(readonly rng: Rng, readonly opset = 13) {}

  private fresh(base: string): string {
    return `${base}_${this.n++}`;
  }
  init(base: string, dims: number[], data: Float32Array | number[], dataType: number = DT.FLOAT): string {
    const name = this.fresh(base);
    this.inits.push({ name, dims, dataType, data });
    return name;
  }
  rand(base: string, dims: number[], a: number): string {
    const n = dims.reduce((p, d) => p * d, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = (2 * this.rng.next() - 1) * a;
    return this.init(base, dims, d);
  }
  op(opType: string, inputs: string[], attrs?: Record<string, AttrValue>, nOut = 1): string {
    const outs = Array.from({ length: nOut }, () => this.fresh(opType.toLowerCase()));
    this.nodes.push({ opType, inputs, outputs: outs, name: outs[0], ...(attrs ? { attrs } : {}) });
    return outs[0];
  }
  /** Conv with 'same' pads, seeded He-uniform weights, bias ±0.1. */
  conv(x: string, cin: number, cout: number, kh: number, kw = kh, o: { bias?: boolean; gain?: number } = {}): string {
    const w = this.rand("w", [cout, cin, kh, kw], (o.gain ?? 1) * Math.sqrt(3 / (cin * kh * kw)));
    const inputs = [x, w];
    if (o.bias !== false) inputs.push(this.rand("b", [cout], 0.1));
    const ph = (kh - 1) / 2, pw = (kw - 1) / 2;
    return this.op("Conv", inputs, { kernel_shape: { ints: [kh, kw] }, pads: { ints: [ph, pw, ph, pw] }, strides: { ints: [1, 1] } });
  }
  scalar(v: number): string {
    return this.init("c", [], [v]);
  }
  finish(output: string, extra: { metadata?: Record<string, string>; inputName?: string } = {}): Uint8Array {
    return encodeModel({
      graphName: "test",
      nodes: this.nodes,
      initializers: this.inits,
      inputs: [{ name: extra.inputName ?? "x", elemType: DT.FLOAT, shape: [1, 3, "h", "w"] }],
      outputs: [{ name: output, elemType: DT.FLOAT, shape: null }],
      opset: this.opset,
      ...(extra.metadata ? { metadata: extra.metadata } : {}),
    });
  }
}
