/**
 * exportOnnx: a lowbit model → an ONNX ModelProto (bytes), for onnxruntime and other runtimes.
 *
 * Layout. ONNX is NCHW: the graph input is `input` float32 [1, 3, "height", "width"] (dynamic
 * spatial dims), the output `output` float32 [1, 3, "height·s", "width·s"]. Conv kernels are
 * transposed HWIO → OIHW; all convs are stride 1 with symmetric 'same' pads (k−1)/2.
 *
 * I/O contract (`io` option):
 * - "model" (default): exactly lowbit's network I/O (Upscaler.runFloat): the input is in
 *   meta.inputRange, the output is the raw network output on meta.outputRange's scale, *not*
 *   clipped. To display: clip to outputRange, map to 0..255, round.
 * - "pixels": the model takes 0..255 float pixels and returns 0..255 float pixels clipped to
 *   [0, 255] (not rounded): the input mapping p → lo + p·(hi−lo)/255 and the output mapping
 *   y → (y − lo')·255/(hi'−lo') plus Clip are part of the graph.
 * The ranges are also stored in metadata_props (lowbit.input_range, lowbit.output_range,
 * lowbit.io), which importOnnx reads back.
 *
 * FP32 graphs are exported after optimizeGraph (fused activations, folded MultiplyBeta,
 * sub-pixel tail): the graph lowbit's FP32 plan runs. `optimize: false` exports the graph as is.
 *
 * Quantized models (QuantizedModel from quantizeModel) export in QDQ form, the form onnxruntime
 * fuses into QLinearConv / QLinearAdd / QLinearConcat:
 * - every 8-bit tensor is QuantizeLinear → DequantizeLinear with a **uint8** zero point. lowbit's
 *   activations already are unsigned asymmetric codes (q ∈ [0, 2^b−1], r = s·(q − z)), so scale and
 *   zero point are copied unchanged — no +128 shift is needed. (Had the codes been int8 with zero
 *   point z, the same reals are represented by q' = q + 128 with z' = z + 128.)
 * - conv weights: int8 initializer [cout, cin, k, k] (OIHW) + DequantizeLinear with per-output-
 *   channel scales (axis 0) and zero points 0. int4 / int2 codes are stored as int8 values (same
 *   reals; onnxruntime then runs them as int8).
 * - conv bias: int32 initializer b_q = round(b / (s_x·s_w[o])) — exactly the accumulator bias lowbit
 *   adds — with DequantizeLinear scale f32(s_x·s_w[o]), zero point 0, axis 0.
 * - a fused ReLU is Conv → Relu → QuantizeLinear when the output zero point is 0 (onnxruntime drops
 *   the Relu and fuses QLinearConv); otherwise — and for ReLU6 and activation grids with fewer than
 *   8 bits, whose code range is narrower than uint8 saturation — the clamp is a uint8 Clip on the
 *   codes between QuantizeLinear and DequantizeLinear (qdqClamped below: exact, one uint8 pass, and
 *   the conv still fuses into QLinearConv).
 * - the grids are exactly the ones lowbit's Q8 plan uses (same lowering: domain conversions, the
 *   plan's concat-grid option, grid-preserving ops inherit their input's grid), so differences
 *   come only from rounding inside onnxruntime's requantization (measured in test/io-onnx.test.ts).
 * - FP32 islands (layers kept in float) are plain float ops between a DequantizeLinear and a
 *   QuantizeLinear.
 * - prelu: PRelu(x, slope [C,1,1]) between DequantizeLinear and QuantizeLinear. onnxruntime has
 *   QLinearLeakyRelu only for a scalar alpha, so a per-channel PRelu runs in float on the
 *   dequantized codes and is requantized onto lowbit's output grid; lowbit's int8 kernel computes
 *   the same y = zy + round((x − zx)·m) with m = s_x/s_y or slope·s_x/s_y, so the two differ only
 *   by rounding (measured in test/io-onnx-prelu.test.ts).
 * meta.borderPad p > 0: Pad(mode "edge", p on H and W) after the input and a final Slice cropping
 * p·s from each side, so the ONNX model has lowbit's contract (metadata lowbit.border_pad = p).
 * Opset 13 by default (per-axis DequantizeLinear needs ≥ 13).
 */
import type { Activation, Graph, Node } from "../../graph/ir.ts";
import { optimizeGraph } from "../../graph/passes.ts";
import { planMemory } from "../../graph/memory-plan.ts";
import { LowbitError } from "../../runtime/errors.ts";
import { QuantizedModel, isGridPreserving } from "../../quant/quantize-model.ts";
import { affineParams, type QuantParams } from "../../quant/params.ts";
import { quantizeBias } from "../../kernels/requant.ts";
import { activationAlpha } from "../../kernels/f32-elementwise.ts";
import type { CompilableModel } from "../../engine/upscaler-api.ts";
import { DT, encodeModel, type AttrValue, type NodeInit, type TensorInit } from "./onnx-schema.ts";

export interface ExportOnnxOptions {
  /** Default-domain opset, 13..21 (default 13). */
  opset?: number;
  /** I/O contract (see the file comment). Default "model". */
  io?: "model" | "pixels";
  /** FP32 graphs: run optimizeGraph first (default true). Ignored for quantized models (already optimized). */
  optimize?: boolean;
  /** Graph name (default meta.name). */
  name?: string;
}

type ConvNode = Extract<Node, { op: "conv2d" }>;

/** HWIO [k,k,cin,cout] → OIHW [cout,cin,k,k]. */
export function hwioToOihw<T extends Float32Array | Int8Array>(out: T, w: ArrayLike<number>, k: number, cin: number, cout: number): T {
  for (let y = 0; y < k; y++) for (let x = 0; x < k; x++) for (let i = 0; i < cin; i++) {
    const src = ((y * k + x) * cin + i) * cout;
    for (let o = 0; o < cout; o++) out[((o * cin + i) * k + y) * k + x] = w[src + o];
  }
  return out;
}

/** Collects nodes and initializers with unique names. */
class OnnxBuilder {
  nodes: NodeInit[] = [];
  inits: TensorInit[] = [];
  private used = new Set<string>();
  private scalars = new Map<string, string>();

  constructor(reserved: string[]) {
    for (const r of reserved) this.used.add(r);
  }

  /** A fresh value name based on `base`. */
  name(base: string): string {
    let n = base, i = 1;
    while (this.used.has(n)) n = `${base}_${i++}`;
    this.used.add(n);
    return n;
  }

  init(base: string, dataType: number, dims: number[], data: TensorInit["data"]): string {
    const name = this.name(base);
    this.inits.push({ name, dims, dataType, data });
    return name;
  }

  /** A shared scalar initializer. */
  scalar(v: number, dataType: number = DT.FLOAT): string {
    const key = `${dataType}:${Object.is(v, -0) ? "-0" : v}`;
    let n = this.scalars.get(key);
    if (!n) {
      n = this.init(`const_${this.scalars.size}`, dataType, [], dataType === DT.FLOAT ? new Float32Array([v]) : [v]);
      this.scalars.set(key, n);
    }
    return n;
  }

  op(opType: string, inputs: string[], outBase: string, attrs?: Record<string, AttrValue>, outName?: string): string {
    const out = outName ?? this.name(outBase);
    this.nodes.push({ opType, inputs, outputs: [out], name: out, ...(attrs ? { attrs } : {}) });
    return out;
  }
}

function emitActivation(b: OnnxBuilder, x: string, a: Activation, base: string): string {
  switch (a.kind) {
    case "linear": return x;
    case "relu": return b.op("Relu", [x], `${base}/relu`);
    case "relu6": return b.op("Clip", [x, b.scalar(0), b.scalar(6)], `${base}/relu6`);
    case "leaky_relu": return b.op("LeakyRelu", [x], `${base}/leaky_relu`, { alpha: { f: activationAlpha(a) } });
    case "elu": return b.op("Elu", [x], `${base}/elu`, { alpha: { f: activationAlpha(a) } });
    case "selu": return b.op("Selu", [x], `${base}/selu`);
    case "sigmoid": return b.op("Sigmoid", [x], `${base}/sigmoid`);
    case "hard_sigmoid": return b.op("HardSigmoid", [x], `${base}/hard_sigmoid`, { alpha: { f: 0.2 }, beta: { f: 0.5 } });
    case "tanh": return b.op("Tanh", [x], `${base}/tanh`);
    case "softplus": return b.op("Softplus", [x], `${base}/softplus`);
    case "softsign": return b.op("Softsign", [x], `${base}/softsign`);
    case "swish": return b.op("Mul", [x, b.op("Sigmoid", [x], `${base}/sigmoid`)], `${base}/swish`);
    case "exponential": return b.op("Exp", [x], `${base}/exp`);
    default: throw new LowbitError("E_UNSUPPORTED_LAYER", `activation '${(a as Activation).kind}' has no ONNX export`);
  }
}

function convAttrs(k: number): Record<string, AttrValue> {
  const p = (k - 1) >> 1;
  return { kernel_shape: { ints: [k, k] }, pads: { ints: [p, p, p, p] }, strides: { ints: [1, 1] }, dilations: { ints: [1, 1] }, group: { i: 1 } };
}

/** Float ops of one IR node (everything but conv weights is shared by the FP32 and QDQ paths). */
function emitFloatOp(b: OnnxBuilder, n: Node, xs: string[], weight: () => [string, string | null],
  scaledTerm: (x: string, c: number, base: string) => string | null = () => null): string {
  switch (n.op) {
    case "conv2d": {
      const [w, bias] = weight();
      const y = b.op("Conv", bias ? [xs[0], w, bias] : [xs[0], w], n.activation.kind === "linear" ? n.name : `${n.name}/conv`, convAttrs(n.k));
      return emitActivation(b, y, n.activation, n.name);
    }
    case "activation":
      if (n.activation.kind === "linear") return b.op("Identity", [xs[0]], n.name);
      return emitActivation(b, xs[0], n.activation, n.name);
    case "add": {
      const c = n.coeffs ?? xs.map(() => 1);
      const terms = xs.map((x, i) => (c[i] === 1 ? x : scaledTerm(x, c[i], `${n.name}/scaled${i}`) ?? b.op("Mul", [x, b.scalar(c[i])], `${n.name}/mul${i}`)));
      let acc = terms[0];
      for (let i = 1; i < terms.length; i++) acc = b.op("Add", [acc, terms[i]], i === terms.length - 1 ? n.name : `${n.name}/add${i}`);
      return acc;
    }
    case "concat":
      return b.op("Concat", xs, n.name, { axis: { i: 1 } });
    case "scale":
      return b.op("Mul", [xs[0], b.scalar(n.factor)], n.name);
    case "upsample_nearest": {
      const scales = b.init(`${n.name}/scales`, DT.FLOAT, [4], new Float32Array([1, 1, n.factor, n.factor]));
      return b.op("Resize", [xs[0], "", scales], n.name, {
        mode: { s: "nearest" }, coordinate_transformation_mode: { s: "asymmetric" }, nearest_mode: { s: "floor" },
      });
    }
    case "upsample_bilinear": {
      const scales = b.init(`${n.name}/scales`, DT.FLOAT, [4], new Float32Array([1, 1, n.factor, n.factor]));
      return b.op("Resize", [xs[0], "", scales], n.name, { mode: { s: "linear" }, coordinate_transformation_mode: { s: n.mode } });
    }
    case "depth_to_space":
      // lowbit's depth_to_space is TF's DCR order; ONNX DepthToSpace mode DCR is the same permutation in NCHW.
      return b.op("DepthToSpace", [xs[0]], n.name, { blocksize: { i: n.block }, mode: { s: "DCR" } });
    case "prelu": {
      // Slope [C,1,1]: ONNX broadcasting aligns right, so it lines up with C of NCHW.
      const slope = b.init(`${n.name}.slope`, DT.FLOAT, [n.slopes.length, 1, 1], Float32Array.from(n.slopes));
      return b.op("PRelu", [xs[0], slope], n.name);
    }
    default:
      throw new LowbitError("E_UNSUPPORTED_LAYER", `layer '${n.name}': no ONNX export for '${n.op}'`);
  }
}

function floatWeights(b: OnnxBuilder, n: ConvNode): [string, string | null] {
  const w = b.init(`${n.name}.weight`, DT.FLOAT, [n.cout, n.cin, n.k, n.k], hwioToOihw(new Float32Array(n.weights.length), n.weights, n.k, n.cin, n.cout));
  const bias = n.bias ? b.init(`${n.name}.bias`, DT.FLOAT, [n.cout], n.bias) : null;
  return [w, bias];
}

function checkOptions(o: ExportOnnxOptions): { opset: number; io: "model" | "pixels" } {
  const opset = o.opset ?? 13;
  if (!Number.isInteger(opset) || opset < 13 || opset > 21) throw new LowbitError("E_ARGUMENT", `opset must be an integer in 13..21, got ${opset}`);
  const io = o.io ?? "model";
  if (io !== "model" && io !== "pixels") throw new LowbitError("E_ARGUMENT", `io must be "model" or "pixels", got ${String(io)}`);
  return { opset, io };
}

function checkRange(r: unknown, what: string): [number, number] {
  if (!Array.isArray(r) || r.length !== 2 || !r.every((v) => Number.isFinite(v)) || !(r[1] > r[0])) {
    throw new LowbitError("E_ARGUMENT", `${what} must be [lo, hi] with lo < hi, got ${JSON.stringify(r)}`);
  }
  return [r[0], r[1]];
}

/**
 * meta.borderPad > 0 (ncnn nets built from valid convs, e.g. waifu2x): lowbit runs such a net on the
 * image replicate-padded by p LR pixels and crops p·s from every side of the output. The export
 * carries that contract in the graph: Pad(mode "edge") right after the input, Slice at the end.
 */
function emitBorderPad(b: OnnxBuilder, x: string, p: number): string {
  const pads = b.init("border_pad/pads", DT.INT64, [8], [0, 0, p, p, 0, 0, p, p]);
  return b.op("Pad", [x, pads], "border_pad", { mode: { s: "edge" } });
}
function emitBorderCrop(b: OnnxBuilder, y: string, p: number, s: number): string {
  const starts = b.init("border_crop/starts", DT.INT64, [2], [p * s, p * s]);
  const ends = b.init("border_crop/ends", DT.INT64, [2], [-p * s, -p * s]);
  const axes = b.init("border_crop/axes", DT.INT64, [2], [2, 3]);
  return b.op("Slice", [y, starts, ends, axes], "border_crop");
}
function borderPadOf(g: Graph): number {
  const p = g.meta.borderPad ?? 0;
  if (!Number.isInteger(p) || p < 0) throw new LowbitError("E_ARGUMENT", `meta.borderPad must be a non-negative integer, got ${p}`);
  return p;
}

/** Input mapping (pixels mode): p ∈ 0..255 → lo + p·(hi − lo)/255. */
function emitInputMap(b: OnnxBuilder, x: string, r: [number, number]): string {
  const a = (r[1] - r[0]) / 255;
  let y = a === 1 ? x : b.op("Mul", [x, b.scalar(a)], "input/scaled");
  if (r[0] !== 0) y = b.op("Add", [y, b.scalar(r[0])], "input/shifted");
  return y;
}

/** Output mapping (pixels mode): y → clip((y − lo)·255/(hi − lo), 0, 255). */
function emitOutputMap(b: OnnxBuilder, y: string, r: [number, number]): string {
  let z = r[0] !== 0 ? b.op("Sub", [y, b.scalar(r[0])], "output/shifted") : y;
  const a = 255 / (r[1] - r[0]);
  if (a !== 1) z = b.op("Mul", [z, b.scalar(a)], "output/scaled");
  return b.op("Clip", [z, b.scalar(0), b.scalar(255)], "output/clipped");
}

function finish(b: OnnxBuilder, g: Graph, outVal: string, o: ExportOnnxOptions, opset: number, io: "model" | "pixels", config: string): Uint8Array {
  const inRange = checkRange(g.meta.inputRange, "meta.inputRange"), outRange = checkRange(g.meta.outputRange, "meta.outputRange");
  let y = outVal;
  if (io === "pixels") y = emitOutputMap(b, y, outRange);
  const bp = borderPadOf(g);
  if (bp > 0) y = emitBorderCrop(b, y, bp, g.meta.scale); // last, so importOnnx finds the crop at the output
  b.op("Identity", [y], "output", undefined, "output");
  const s = g.meta.scale;
  const inC = g.nodes[g.input].channels, outC = g.nodes[g.output].channels;
  const contract = io === "model"
    ? `input: float32 NCHW in [${inRange}]; output: raw network output on the scale of [${outRange}] (not clipped)`
    : "input: float32 NCHW pixels 0..255; output: float32 NCHW pixels 0..255 (clipped, not rounded)";
  return encodeModel({
    graphName: o.name ?? g.meta.name,
    nodes: b.nodes,
    initializers: b.inits,
    inputs: [{ name: "input", elemType: DT.FLOAT, shape: [1, inC, "height", "width"] }],
    outputs: [{ name: "output", elemType: DT.FLOAT, shape: [1, outC, s === 1 ? "height" : `height*${s}`, s === 1 ? "width" : `width*${s}`] }],
    opset,
    docString: `lowbit export of ${g.meta.name} (${config}), ×${s}. ${contract}.`,
    metadata: {
      "lowbit.name": g.meta.name,
      "lowbit.config": config,
      "lowbit.scale": String(s),
      "lowbit.io": io,
      "lowbit.input_range": JSON.stringify(inRange),
      "lowbit.output_range": JSON.stringify(outRange),
      ...(g.meta.arch ? { "lowbit.arch": g.meta.arch } : {}),
      ...(bp > 0 ? { "lowbit.border_pad": String(bp) } : {}),
    },
  });
}

/**
 * Exports a model to ONNX bytes: an FP32 graph (Graph or fp32Model(graph)) or a static quantized
 * model (QuantizedModel). See the file comment for layout, I/O contract and the QDQ form.
 */
export function exportOnnx(model: Graph | CompilableModel | QuantizedModel, options: ExportOnnxOptions = {}): Uint8Array {
  const { opset, io } = checkOptions(options);
  if (model instanceof QuantizedModel) {
    if (model.quantConfig.residualBits === 16) {
      throw new LowbitError("E_UNSUPPORTED_LAYER", `exportOnnx: '${model.config}' keeps 16-bit residual sums, which the uint8 QDQ form cannot hold; export the 8-bit model (residualBits 8)`);
    }
    return exportQuantized(model, options, opset, io);
  }
  let g: Graph;
  if (typeof model === "object" && model !== null && Array.isArray((model as Graph).nodes)) g = model as Graph;
  else if (typeof model === "object" && model !== null && "graph" in model && (model as CompilableModel).config === "fp32") g = (model as CompilableModel).graph;
  else {
    const cfg = typeof model === "object" && model !== null && "config" in model ? ` ('${(model as CompilableModel).config}')` : "";
    throw new LowbitError("E_ARGUMENT", `exportOnnx exports a Graph, fp32Model(graph) or a QuantizedModel from quantizeModel; got another model type${cfg} (dynamic / adaptive quantization has no static ONNX form)`);
  }
  if (options.optimize !== false) g = optimizeGraph(g);
  const b = new OnnxBuilder(["input", "output"]);
  const val: string[] = new Array(g.nodes.length);
  for (const n of g.nodes) {
    if (n.op === "input") {
      // The pad first (edge replication commutes with the pixel mapping): importOnnx finds it on the input.
      const x = borderPadOf(g) > 0 ? emitBorderPad(b, "input", borderPadOf(g)) : "input";
      val[n.id] = io === "pixels" ? emitInputMap(b, x, checkRange(g.meta.inputRange, "meta.inputRange")) : x;
      continue;
    }
    val[n.id] = emitFloatOp(b, n, n.inputs.map((i) => val[i]), () => floatWeights(b, n as ConvNode));
  }
  return finish(b, g, val[g.output], options, opset, io, "fp32");
}

// ------------------------------------------------------------------------------------------------
// quantized

/** A lowered node (compile-q8.ts LNode without the Node payload we do not need). */
interface LNode {
  id: number;
  /** Model graph node id, or −1 for a domain conversion. */
  src: number;
  op: Node["op"] | "quantize" | "dequantize";
  inputs: number[];
  domain: "q8" | "f32";
}

/**
 * The lowered graph and activation grids of a QuantizedModel, computed exactly as Q8Plan does
 * (compile-q8.ts steps 1–3): one quantize/dequantize per producer and direction, grids from each
 * tensor's range and bits, shared per memory-plan buffer, grid-preserving ops inheriting their
 * input's grid, the image quantize on the 8-bit grid of the input range. test/io-onnx.test.ts
 * checks these grids against a compiled Q8Plan's `info.grids`.
 */
export function quantizedGrids(qm: QuantizedModel): { nodes: LNode[]; grids: (QuantParams | null)[]; output: number } {
  const g = qm.graph;
  const nodes: LNode[] = [];
  const mapped = new Array<number>(g.nodes.length);
  const conv = new Map<string, number>();
  const want = (src: number, d: "q8" | "f32"): number => {
    const id = mapped[src];
    if (nodes[id].domain === d) return id;
    const key = `${src}:${d}`;
    let c = conv.get(key);
    if (c === undefined) {
      c = nodes.length;
      nodes.push({ id: c, src: -1, op: d === "q8" ? "quantize" : "dequantize", inputs: [id], domain: d });
      conv.set(key, c);
    }
    return c;
  };
  for (const n of g.nodes) {
    const d = qm.tensors[n.id].domain;
    const inputs = n.inputs.map((i) => want(i, d));
    nodes.push({ id: nodes.length, src: n.id, op: n.op, inputs, domain: d });
    mapped[n.id] = nodes.length - 1;
  }
  const outId = want(g.output, "f32");
  const inId = mapped[g.input];
  const shapeOf = (ln: LNode) => g.nodes[ln.src >= 0 ? ln.src : srcOf(ln)];
  const srcOf = (ln: LNode): number => (ln.src >= 0 ? ln.src : srcOf(nodes[ln.inputs[0]]));
  const lg = {
    ...g,
    nodes: nodes.map((ln) => ({ ...shapeOf(ln), id: ln.id, op: ln.op, inputs: ln.inputs })) as unknown as Node[],
    input: inId, output: outId,
  } as Graph;
  const gp = (ln: LNode) => ln.src >= 0 && isGridPreserving(g.nodes[ln.src]);
  const mem = planMemory(lg, {
    tileW: 8, tileH: 8, elemBytes: (id) => (nodes[id].domain === "q8" ? 1 : 4), pinned: new Set([inId, outId]),
    noConcatAlias: (qm.planOptions.concatGrids ?? "per-tensor") === "per-tensor",
    canWriteStrided: (id) => !(nodes[id].domain === "q8" && gp(nodes[id])),
  });
  const rangeOf = (ln: LNode): [number, number, number] => {
    const t = qm.tensors[ln.src >= 0 ? ln.src : nodes[ln.inputs[0]].src];
    return [t.range[0], t.range[1], t.bits];
  };
  const grids: (QuantParams | null)[] = nodes.map(() => null);
  const byBuffer = new Map<number, number[]>();
  for (const ln of nodes) {
    if (ln.domain !== "q8") continue;
    const buf = mem.placement[ln.id].buffer;
    if (!byBuffer.has(buf)) byBuffer.set(buf, []);
    byBuffer.get(buf)!.push(ln.id);
  }
  for (const ids of byBuffer.values()) {
    let lo = 0, hi = 0, bits = 2;
    for (const id of ids) {
      const [a, c, nb] = rangeOf(nodes[id]);
      lo = Math.min(lo, a);
      hi = Math.max(hi, c);
      bits = Math.max(bits, nb);
    }
    const p = affineParams(lo, hi, bits, { signed: false });
    for (const id of ids) grids[id] = p;
  }
  for (const ln of nodes) if (ln.op === "quantize" && ln.inputs[0] === inId) grids[ln.id] = affineParams(g.meta.inputRange[0], g.meta.inputRange[1], 8, { signed: false });
  for (const ln of nodes) if (ln.domain === "q8" && gp(ln)) grids[ln.id] = grids[ln.inputs[0]];
  return { nodes, grids, output: outId };
}

function exportQuantized(qm: QuantizedModel, o: ExportOnnxOptions, opset: number, io: "model" | "pixels"): Uint8Array {
  const g = qm.graph;
  const { nodes, grids, output } = quantizedGrids(qm);
  const b = new OnnxBuilder(["input", "output"]);
  const val: string[] = new Array(nodes.length);
  const gridConsts = new Map<string, [string, string]>();
  const qparams = (p: QuantParams): [string, string] => {
    const key = `${p.scale}:${p.zeroPoint}`;
    let c = gridConsts.get(key);
    if (!c) {
      c = [b.init(`grid${gridConsts.size}.scale`, DT.FLOAT, [], new Float32Array([p.scale])), b.init(`grid${gridConsts.size}.zero_point`, DT.UINT8, [], [p.zeroPoint])];
      gridConsts.set(key, c);
    }
    return c;
  };
  /** DequantizeLinear outputs → the codes they read and their grid (for weighted adds). */
  const codesOf = new Map<string, { q: string; p: QuantParams }>();
  const dq = (q: string, p: QuantParams, base: string): string => {
    const [s, z] = qparams(p);
    const y = b.op("DequantizeLinear", [q, s, z], `${base}/dq`);
    codesOf.set(y, { q, p });
    return y;
  };
  /** Float value `x` onto grid p: QuantizeLinear → DequantizeLinear; returns the dequantized value. */
  const qdq = (x: string, p: QuantParams, base: string): string => {
    if (p.signed) throw new LowbitError("E_ARGUMENT", `tensor '${base}': signed activation codes have no uint8 QDQ form`);
    const [s, z] = qparams(p);
    return dq(b.op("QuantizeLinear", [x, s, z], `${base}/q`), p, base);
  };
  /**
   * c·x for a weighted add's term x on codes: a second DequantizeLinear of the same codes with scale
   * f32(c·s) (c > 0), so onnxruntime still fuses the add into QLinearAdd (with a Mul between DQ and
   * Add it would run in float). lowbit's multiplier is f32(c·s_x/s_y), onnxruntime's f32(f32(c·s_x)/s_y).
   */
  const scaledTerm = (x: string, c: number, base: string): string | null => {
    const src = codesOf.get(x);
    if (!src || !(c > 0)) return null;
    const s = Math.fround(c * src.p.scale);
    if (!(s > 0) || !Number.isFinite(s)) return null;
    return b.op("DequantizeLinear", [src.q, b.scalar(s), qparams(src.p)[1]], base);
  };
  /**
   * `x` onto grid p with lowbit's code clamp [lo, hi] (the grid's code range, narrowed by a fused
   * ReLU to lo = z, by ReLU6 to hi = z + round(6/s)). A clamp of codes is a uint8 Clip between
   * QuantizeLinear and DequantizeLinear (opset ≥ 12 Clip takes uint8): the exact codes of lowbit's
   * requantization epilogue, one uint8 pass in onnxruntime, and DQ→Conv→Q still fuses into
   * QLinearConv (onnxruntime fuses DQ→Conv→Relu→Q only when the zero point is 0, where it drops the
   * Relu itself — that case keeps the float Relu, the plain form every QDQ tool writes).
   */
  const qdqClamped = (x: string, p: QuantParams, base: string, act: Activation): string => {
    if (p.signed) throw new LowbitError("E_ARGUMENT", `tensor '${base}': signed activation codes have no uint8 QDQ form`);
    const full = p.qmin === 0 && p.qmax === 255;
    if (act.kind === "relu" && full && p.zeroPoint === 0) return qdq(emitActivation(b, x, act, base), p, base);
    let lo = p.qmin, hi = p.qmax;
    if (act.kind === "relu" || act.kind === "relu6") lo = Math.max(lo, p.zeroPoint);
    if (act.kind === "relu6") hi = Math.min(hi, p.zeroPoint + Math.round(6 / p.scale));
    if (lo === 0 && hi === 255) return qdq(x, p, base);
    const [s, z] = qparams(p);
    const q = b.op("QuantizeLinear", [x, s, z], `${base}/q`);
    const c = b.op("Clip", [q, b.scalar(lo, DT.UINT8), b.scalar(hi, DT.UINT8)], `${base}/clamp`);
    return dq(c, p, base);
  };
  const inRange = checkRange(g.meta.inputRange, "meta.inputRange");
  for (const ln of nodes) {
    const xs = ln.inputs.map((i) => val[i]);
    if (ln.op === "quantize") {
      const base = g.nodes[nodes[ln.inputs[0]].src]?.name ?? "input";
      val[ln.id] = qdqClamped(xs[0], grids[ln.id]!, base, { kind: "linear" }); // f32 → codes clamps to [qmin, qmax]
      continue;
    }
    if (ln.op === "dequantize") {
      // q8 values already are dequantized floats in the QDQ graph.
      val[ln.id] = xs[0];
      continue;
    }
    const n = g.nodes[ln.src];
    if (n.op === "input") {
      const x = borderPadOf(g) > 0 ? emitBorderPad(b, "input", borderPadOf(g)) : "input";
      val[ln.id] = io === "pixels" ? emitInputMap(b, x, inRange) : x;
      continue;
    }
    if (ln.domain === "f32") {
      val[ln.id] = emitFloatOp(b, n, xs, () => floatWeights(b, n as ConvNode));
      continue;
    }
    const gy = grids[ln.id]!;
    const act: Activation = n.op === "conv2d" ? n.activation : { kind: "linear" };
    const y = emitFloatOp(b, n.op === "conv2d" ? ({ ...n, activation: { kind: "linear" } } as Node) : n, xs, () => {
      const c = n as ConvNode;
      const qw = qm.weights[n.id];
      if (!qw) throw new LowbitError("E_ARGUMENT", `internal: quantized conv '${n.name}' has no weights`);
      const gx = grids[ln.inputs[0]]!;
      const wq = b.init(`${n.name}.weight_q`, DT.INT8, [c.cout, c.cin, c.k, c.k], hwioToOihw(new Int8Array(qw.codes.length), qw.codes, c.k, c.cin, c.cout));
      const ws = b.init(`${n.name}.weight_scale`, DT.FLOAT, [c.cout], Float32Array.from(qw.scales));
      const wz = b.init(`${n.name}.weight_zero_point`, DT.INT8, [c.cout], new Int8Array(c.cout));
      const w = b.op("DequantizeLinear", [wq, ws, wz], `${n.name}.weight`, { axis: { i: 0 } });
      const bias = qw.bias ?? c.bias;
      if (!bias) return [w, null];
      const bq = quantizeBias(new Int32Array(c.cout), bias, gx.scale, qw.scales);
      const bs = new Float32Array(c.cout);
      for (let i = 0; i < c.cout; i++) bs[i] = gx.scale * qw.scales[i];
      const bqn = b.init(`${n.name}.bias_q`, DT.INT32, [c.cout], bq);
      const bsn = b.init(`${n.name}.bias_scale`, DT.FLOAT, [c.cout], bs);
      const bzn = b.init(`${n.name}.bias_zero_point`, DT.INT32, [c.cout], new Int32Array(c.cout));
      return [w, b.op("DequantizeLinear", [bqn, bsn, bzn], `${n.name}.bias`, { axis: { i: 0 } })];
    }, scaledTerm);
    val[ln.id] = qdqClamped(y, gy, n.name, act);
  }
  return finish(b, g, val[output], o, opset, io, qm.config);
}
