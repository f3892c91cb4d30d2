/**
 * importOnnx: an ONNX super-resolution model → lowbit's graph IR.
 *
 * Supported (default domain, opset 7..21): Conv (odd kernels — non-square ones are embedded in a
 * square kernel —, stride 1, dilation 1, group 1, symmetric 'same' pads), Relu, LeakyRelu, PRelu
 * (per-channel slope tensors [C,1,1] / [1,C,1,1] → the `prelu` op; a one-element slope = leaky ReLU), Clip
 * (as ReLU / ReLU6, or the model's final output clamp), Sigmoid, Tanh, Elu, Selu, HardSigmoid,
 * Softplus, Softsign, Exp, Add / Sub of two tensors (weighted add), Sum, Add / Sub / Mul / Div by
 * constants that are scalars or per-channel ([C,1,1] / [1,C,1,1]), BatchNormalization (inference
 * mode), Concat on the channel axis, DepthToSpace (DCR and CRD), Resize / Upsample nearest or linear
 * (bilinear: half_pixel, pytorch_half_pixel, asymmetric) with an integer factor (nearest: coordinate
 * modes that equal floor(y/s) for integer factors; fixed output
 * 'sizes' when the model's input size is fixed), Constant,
 * initializers, Identity, Dropout, and QuantizeLinear → DequantizeLinear pairs (QDQ graphs: the
 * weights are dequantized and activation fake-quantization is dropped here; onnxToModel turns them
 * into a lowbit QuantizedModel).
 *
 * Per-channel affine maps (constant Add/Sub/Mul/Div, BatchNormalization) are kept as pending
 * "affine" nodes and folded, exactly:
 * - into the producing conv (linear activation, no other reader): W·a, b·a + c;
 * - at the graph input / output when uniform over channels (a > 0): into meta.inputRange /
 *   meta.outputRange (mean-shift and 0..1 ↔ 0..255 scalings cost nothing);
 * - a pure scale (no shift) into every consuming conv's input channels (zero padding stays zero);
 * - otherwise as a 1×1 conv with a diagonal kernel (exact; a per-channel shift cannot fold into a
 *   following conv exactly because the shift would also apply to the zero padding).
 * CRD DepthToSpace (PyTorch PixelShuffle) permutes the producing conv's output channels into DCR
 * order (or a 1×1 permutation conv when the producer is not a conv).
 *
 * A leaky ReLU (LeakyRelu, or PRelu with one shared slope) stays an activation when it reads a
 * conv it can fuse into (linear activation, no other reader: optimizeGraph fuses it); anywhere
 * else it becomes a uniform-slope `prelu`, which the int8 path runs on codes instead of in f32.
 * lowbit's border-pad contract as exportOnnx writes it — Pad(mode "edge", p on H and W) as the
 * only reader of the image input and a Slice cropping p·s from each side as the last op (only
 * Identity may follow) — imports as meta.borderPad = p; any other Pad or Slice is rejected.
 *
 * Rejected with E_UNSUPPORTED_LAYER naming node and op/attribute: ops needing IR ops lowbit does
 * not have (bicubic Resize, ConvTranspose whose output is not exactly S× its input, grouped/depthwise/strided/dilated Conv,
 * Reshape/Transpose pixel shuffles from opset < 11, shape arithmetic), external data.
 * Malformed bytes are E_MODEL_FORMAT; allocations are bounded by the tensors' byte sizes in the file.
 */
import type { Activation, Graph, GraphMeta, Node, NodeOp, ValueRange } from "../../graph/ir.ts";
import { inferNodeShape, MAX_KERNEL, receptiveRadius, validateGraph } from "../../graph/validate.ts";
import { LowbitError } from "../../runtime/errors.ts";
import { deconvToSubpixel } from "../ncnn/lower.ts";
import { decodeModel, dataTypeName, DT, type OnnxAttribute, type OnnxModel, type OnnxNode, type OnnxTensor } from "./onnx-schema.ts";

export interface ImportOnnxOptions {
  /** meta.name (default: the graph name, else "onnx"). */
  name?: string;
  /**
   * Value range of the ONNX model's input that pixels 0..255 map to. Default: the range a lowbit
   * export stored in its metadata, else [0, 1] (the PyTorch convention; EDSR-family models trained
   * with rgb_range 255 need [0, 255]).
   */
  inputRange?: ValueRange;
  /** Range of the ONNX model's output that maps to pixels 0..255. Default: metadata, else a final Clip's range, else inputRange. */
  outputRange?: ValueRange;
  /** Fail when the model holds more than this many bytes (default 1 GiB). */
  maxModelBytes?: number;
}

/** Activation quantization of a tensor in a QDQ graph (uint8/int8 per-tensor). */
export interface OnnxActQuant {
  scale: number;
  zeroPoint: number;
  signed: boolean;
  /** Activation bits when a code clamp narrows the grid to [0, 2^bits − 1] (uint8 Clip between Q and DQ); else 8. */
  bits?: number;
}

/** Weight quantization of a conv read from a QDQ graph (DequantizeLinear of an int8 initializer). */
export interface OnnxWeightQuant {
  /** HWIO codes (after embedding / permutation), as the IR weights. */
  codes: Int8Array;
  /** Per output channel. */
  scales: Float32Array;
}

/** What importOnnxDetailed returns besides the graph: the QDQ annotations by IR node name. */
export interface OnnxImport {
  graph: Graph;
  /** Activation grids of tensors that were QuantizeLinear → DequantizeLinear'd, by IR node name. */
  actQuant: Map<string, OnnxActQuant>;
  /** Conv weight codes from DequantizeLinear'd int8 initializers, by IR conv name. */
  weightQuant: Map<string, OnnxWeightQuant>;
  /** Convs whose int8 weights were changed by a fold (BN, constant scale): only their floats are exact. */
  foldedConvs: Set<string>;
  /** The opset and producer, for messages. */
  opset: number;
  producer: string;
}

// ------------------------------------------------------------------------------------------------
// internal graph

type Pseudo =
  | { op: "affine"; a: Float64Array; b: Float64Array }
  | { op: "perm"; perm: Int32Array }
  | { op: "clip"; lo: number; hi: number };

type INode = (NodeOp | Pseudo) & {
  id: number;
  name: string;
  inputs: number[];
  channels: number;
  spatial: number;
  dead?: boolean;
  /** QDQ grid of this node's output (from a QuantizeLinear → DequantizeLinear on it). */
  q?: OnnxActQuant;
  /** Conv weight codes (HWIO like the IR weights) + per-output-channel scales. */
  wq?: { codes: Int8Array; scales: Float32Array };
  /** The conv had codes, but an affine fold changed its weights. */
  wqFolded?: boolean;
};
type IConv = Extract<INode, { op: "conv2d" }>;

interface Const {
  kind: "const";
  dims: number[];
  data: Float64Array;
  /** Set when produced by DequantizeLinear of an integer initializer. */
  quant?: { codes: Int32Array; scale: Float64Array; zeroPoint: Float64Array; axis: number; dataType: number };
}
interface Dyn {
  kind: "dyn";
  id: number;
  /** Output of a QuantizeLinear (integer codes): only a DequantizeLinear may read it. */
  quantized?: OnnxActQuant;
  /** Output of the border crop (Slice of c output pixels per side): only Identity may read it. */
  cropped?: number;
}
type Value = Const | Dyn;

function unsupported(n: OnnxNode, msg: string): LowbitError {
  return new LowbitError("E_UNSUPPORTED_LAYER", `node '${n.name || n.outputs[0]}' (${n.opType}): ${msg}`);
}
function badModel(n: OnnxNode, msg: string): LowbitError {
  return new LowbitError("E_MODEL_FORMAT", `node '${n.name || n.outputs[0]}' (${n.opType}): ${msg}`);
}

function numel(dims: number[]): number {
  let c = 1;
  for (const d of dims) c *= d;
  return c;
}

function toConst(t: OnnxTensor): Const {
  const n = numel(t.dims);
  if (t.data.length !== n) throw new LowbitError("E_MODEL_FORMAT", `tensor '${t.name}': ${t.data.length} values for dims [${t.dims}]`);
  return { kind: "const", dims: t.dims, data: Float64Array.from(t.data as ArrayLike<number>) };
}

const attr = (n: OnnxNode, name: string): OnnxAttribute | undefined => n.attributes.find((a) => a.name === name);
const attrI = (n: OnnxNode, name: string, d: number): number => attr(n, name)?.i ?? d;
const attrF = (n: OnnxNode, name: string, d: number): number => attr(n, name)?.f ?? d;
const attrS = (n: OnnxNode, name: string, d: string): string => attr(n, name)?.s ?? d;
const attrInts = (n: OnnxNode, name: string): number[] | undefined => attr(n, name)?.ints;

/**
 * Whether ONNX nearest Resize with integer scale s maps output index y to input ⌊y/s⌋ (the IR's
 * upsample) for the given coordinate transformation and rounding modes. Evaluated on lengths
 * 1..16. Only align_corners depends on the length n; at ×2 with round_prefer_floor it is floor(y/2)
 * for every n (y = 2m + r maps to (m + r/2)·(1 − 1/(2n−1)), less than ½ below m + r/2), at ×3 and
 * up it already fails for small n. The other modes are length-independent (pytorch_half_pixel
 * differs from half_pixel only for an output of length 1, i.e. ×1).
 */
export function nearestIsFloor(s: number, coord: string, nearest: string): boolean {
  const round = (x: number): number => {
    switch (nearest) {
      case "round_prefer_floor": return x - Math.floor(x) === 0.5 ? Math.floor(x) : Math.round(x);
      case "round_prefer_ceil": return x - Math.floor(x) === 0.5 ? Math.ceil(x) : Math.round(x);
      case "floor": return Math.floor(x);
      case "ceil": return Math.ceil(x);
      default: return NaN;
    }
  };
  for (let len = 1; len <= 16; len++) {
    const out = len * s;
    for (let y = 0; y < out; y++) {
      let x: number;
      switch (coord) {
        case "half_pixel": x = (y + 0.5) / s - 0.5; break;
        case "pytorch_half_pixel": x = out > 1 ? (y + 0.5) / s - 0.5 : 0; break;
        case "align_corners": x = out > 1 ? (y * (len - 1)) / (out - 1) : 0; break;
        case "asymmetric": x = y / s; break;
        case "tf_half_pixel_for_nn": x = (y + 0.5) / s; break;
        default: return false;
      }
      const i = Math.min(Math.max(round(x), 0), len - 1);
      if (i !== Math.floor(y / s)) return false;
    }
  }
  return true;
}

const ACT_OPS: Record<string, (n: OnnxNode) => Activation> = {
  Relu: () => ({ kind: "relu" }),
  LeakyRelu: (n) => ({ kind: "leaky_relu", alpha: attrF(n, "alpha", 0.01) }),
  Sigmoid: () => ({ kind: "sigmoid" }),
  Tanh: () => ({ kind: "tanh" }),
  Elu: (n) => ({ kind: "elu", alpha: attrF(n, "alpha", 1) }),
  Softplus: () => ({ kind: "softplus" }),
  Softsign: () => ({ kind: "softsign" }),
  Exp: () => ({ kind: "exponential" }),
  Selu: (n) => {
    const a = attrF(n, "alpha", 1.67326319217681884765625), g = attrF(n, "gamma", 1.05070102214813232421875);
    if (Math.fround(a) !== Math.fround(1.6732632423543772) || Math.fround(g) !== Math.fround(1.0507009873554805)) {
      throw unsupported(n, `Selu with alpha=${a}, gamma=${g} (only the standard constants are supported)`);
    }
    return { kind: "selu" };
  },
  HardSigmoid: (n) => {
    const a = attrF(n, "alpha", 0.2), b = attrF(n, "beta", 0.5);
    if (Math.fround(a) !== Math.fround(0.2) || b !== 0.5) throw unsupported(n, `HardSigmoid with alpha=${a}, beta=${b} (only alpha 0.2, beta 0.5)`);
    return { kind: "hard_sigmoid" };
  },
};

const NEEDS_IR_OP: Record<string, string> = {
  Reshape: "Reshape is not supported (PixelShuffle exported at opset < 11 becomes Reshape/Transpose: export with opset ≥ 11 to get DepthToSpace)",
  Transpose: "Transpose is not supported (PixelShuffle exported at opset < 11 becomes Reshape/Transpose: export with opset ≥ 11 to get DepthToSpace)",
  Shape: "shape arithmetic is not supported (export with constant scale factors and dynamic axes on H/W)",
  Gather: "shape arithmetic is not supported (export with constant scale factors and dynamic axes on H/W)",
  InstanceNormalization: "InstanceNormalization is not supported (no IR op)",
  Pad: "explicit Pad is not supported (use the conv's own padding)",
  MaxPool: "pooling is not supported", AveragePool: "pooling is not supported", GlobalAveragePool: "pooling is not supported",
};

// ------------------------------------------------------------------------------------------------

class Importer {
  nodes: INode[] = [];
  values = new Map<string, Value>();
  names = new Set<string>();
  opset: number;
  /** The input's H and W when the model was exported with a fixed size (resolves Resize 'sizes'). */
  staticHW: [number, number] | null = null;
  /** meta.borderPad from an edge Pad of the input (0: none). */
  borderPad = 0;
  private inputName = "";
  private inputId = -1;

  constructor(private m: OnnxModel) {
    this.opset = m.opsets.get("") ?? 0;
  }

  uniqueName(base: string): string {
    let n = base || "node", i = 1;
    while (this.names.has(n)) n = `${base}_${i++}`;
    this.names.add(n);
    return n;
  }

  add(op: NodeOp | Pseudo, inputs: number[], name: string, extra: Partial<INode> = {}): number {
    const id = this.nodes.length;
    let shape: { channels: number; spatial: number };
    if (op.op === "input") {
      shape = { channels: 3, spatial: 1 };
    } else if (op.op === "affine" || op.op === "perm" || op.op === "clip") {
      const x = this.nodes[inputs[0]];
      shape = { channels: x.channels, spatial: x.spatial };
    } else {
      shape = inferNodeShape({ ...op, name } as NodeOp & { name: string }, inputs.map((i) => this.nodes[i]));
    }
    this.nodes.push({ ...op, id, name: this.uniqueName(name), inputs, ...shape, ...extra } as INode);
    return id;
  }

  value(n: OnnxNode, i: number, what = `input ${i}`): Value {
    const name = n.inputs[i];
    if (name === undefined || name === "") throw badModel(n, `${what} is missing`);
    const v = this.values.get(name);
    if (!v) throw badModel(n, `reads '${name}', which no earlier node or initializer produces (graph not topologically sorted, or a missing input)`);
    if (v.kind === "dyn" && v.cropped !== undefined && n.opType !== "Identity") {
      throw unsupported(n, `reads the border crop ('${name}'); that Slice must be the graph's last op`);
    }
    if (v.kind === "dyn" && v.quantized && n.opType !== "DequantizeLinear") {
      throw unsupported(n, `reads the integer output of a QuantizeLinear ('${name}'); only DequantizeLinear may consume it`);
    }
    return v;
  }
  dyn(n: OnnxNode, i: number, what?: string): number {
    const v = this.value(n, i, what);
    if (v.kind !== "dyn") throw unsupported(n, `${what ?? `input ${i}`} must be a tensor computed from the image, got a constant`);
    return v.id;
  }
  konst(n: OnnxNode, i: number, what: string): Const {
    const v = this.value(n, i, what);
    if (v.kind !== "const") throw unsupported(n, `${what} must be a constant (initializer or Constant), got a computed tensor`);
    return v;
  }
  optConst(n: OnnxNode, i: number, what: string): Const | null {
    return n.inputs[i] ? this.konst(n, i, what) : null;
  }
  out(n: OnnxNode, v: Value, k = 0): void {
    const name = n.outputs[k];
    if (name === undefined || name === "") throw badModel(n, "has no output");
    if (this.values.has(name)) throw badModel(n, `output '${name}' is produced twice`);
    this.values.set(name, v);
  }
  nodeName(n: OnnxNode): string {
    return n.name || n.outputs[0] || n.opType;
  }

  /** Per-channel vector of a broadcastable constant for a tensor with C channels (NCHW), or null. */
  channelVector(n: OnnxNode, c: Const, C: number, what: string): Float64Array {
    const total = c.data.length;
    if (total === 1) return new Float64Array(C).fill(c.data[0]);
    // Broadcast against [N, C, H, W]: right-aligned dims; only the channel axis (rank−3 from the end) may be > 1.
    const d = c.dims;
    if (d.length >= 3 && d.length <= 4 && d[d.length - 3] === C && total === C) return Float64Array.from(c.data);
    throw unsupported(n, `${what} of shape [${d}] does not broadcast per channel over ${C} channels (need a scalar, [${C},1,1] or [1,${C},1,1])`);
  }

  affine(n: OnnxNode, x: number, a: Float64Array, b: Float64Array): Dyn {
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) throw new LowbitError("E_RANGE", `node '${this.nodeName(n)}' (${n.opType}): non-finite constant`);
    }
    return { kind: "dyn", id: this.add({ op: "affine", a, b }, [x], this.nodeName(n)) };
  }

  binary(n: OnnxNode): void {
    const A = this.value(n, 0), B = this.value(n, 1);
    const op = n.opType;
    if (A.kind === "const" && B.kind === "const") {
      this.out(n, constBinary(n, A, B));
      return;
    }
    if (A.kind === "dyn" && B.kind === "dyn") {
      if (op === "Add" || op === "Sub") {
        const id = this.add({ op: "add", ...(op === "Sub" ? { coeffs: [1, -1] } : {}) }, [A.id, B.id], this.nodeName(n));
        this.out(n, { kind: "dyn", id });
        return;
      }
      // x · Sigmoid(x) is swish / SiLU.
      if (op === "Mul") {
        for (const [u, v] of [[A.id, B.id], [B.id, A.id]]) {
          const s = this.nodes[v];
          if (s.op === "activation" && s.activation.kind === "sigmoid" && s.inputs[0] === u) {
            this.out(n, { kind: "dyn", id: this.add({ op: "activation", activation: { kind: "swish" } }, [u], this.nodeName(n)) });
            return;
          }
        }
      }
      throw unsupported(n, `${op} of two computed tensors is not supported (only Add / Sub, and x·Sigmoid(x))`);
    }
    const [x, c, constFirst] = A.kind === "dyn" ? [A.id, B as Const, false] : [(B as Dyn).id, A as Const, true];
    const C = this.nodes[x].channels;
    const v = this.channelVector(n, c, C, "constant operand");
    const one = new Float64Array(C).fill(1), zero = new Float64Array(C);
    switch (op) {
      case "Add": this.out(n, this.affine(n, x, one, v)); return;
      case "Sub": this.out(n, constFirst ? this.affine(n, x, one.map(() => -1), v) : this.affine(n, x, one, v.map((t) => -t))); return;
      case "Mul": this.out(n, this.affine(n, x, v, zero)); return;
      case "Div":
        if (constFirst) throw unsupported(n, "division of a constant by a computed tensor is not supported");
        this.out(n, this.affine(n, x, v.map((t) => 1 / t), zero));
        return;
    }
  }

  conv(n: OnnxNode): void {
    const x = this.dyn(n, 0, "input X");
    const W = this.konst(n, 1, "weight W");
    const B = this.optConst(n, 2, "bias B");
    const name = this.nodeName(n);
    if (W.dims.length !== 4) throw unsupported(n, `only 2-D convolutions are supported (weight rank ${W.dims.length})`);
    const [cout, cinG, kh, kw] = W.dims;
    const group = attrI(n, "group", 1);
    if (group !== 1) throw unsupported(n, `attribute group=${group}: grouped / depthwise convolution is not supported`);
    const strides = attrInts(n, "strides") ?? [1, 1];
    if (strides.some((s) => s !== 1)) throw unsupported(n, `attribute strides=[${strides}]: only stride 1 is supported`);
    const dil = attrInts(n, "dilations") ?? [1, 1];
    if (dil.some((s) => s !== 1)) throw unsupported(n, `attribute dilations=[${dil}]: only dilation 1 is supported`);
    const ks = attrInts(n, "kernel_shape");
    if (ks && (ks.length !== 2 || ks[0] !== kh || ks[1] !== kw)) throw badModel(n, `kernel_shape [${ks}] differs from the weight's [${kh},${kw}]`);
    if (kh % 2 === 0 || kw % 2 === 0) throw unsupported(n, `kernel ${kh}×${kw}: only odd kernel sizes are supported`);
    if (kh > MAX_KERNEL || kw > MAX_KERNEL) throw unsupported(n, `kernel ${kh}×${kw}: larger than ${MAX_KERNEL}×${MAX_KERNEL}`);
    const ph = (kh - 1) / 2, pw = (kw - 1) / 2;
    const autoPad = attrS(n, "auto_pad", "NOTSET");
    if (autoPad === "NOTSET") {
      const pads = attrInts(n, "pads") ?? [0, 0, 0, 0];
      if (pads.length !== 4 || pads[0] !== ph || pads[2] !== ph || pads[1] !== pw || pads[3] !== pw) {
        throw unsupported(n, `attribute pads=[${pads}]: only 'same' padding [${ph},${pw},${ph},${pw}] is supported for a ${kh}×${kw} kernel`);
      }
    } else if (autoPad === "VALID") {
      if (kh !== 1 || kw !== 1) throw unsupported(n, `auto_pad=VALID with a ${kh}×${kw} kernel changes the spatial size (only 'same' padding is supported)`);
    } else if (autoPad !== "SAME_UPPER" && autoPad !== "SAME_LOWER") {
      throw unsupported(n, `auto_pad=${autoPad}`);
    }
    const cin = this.nodes[x].channels;
    if (cinG !== cin) throw new LowbitError("E_SHAPE", `node '${name}' (Conv): weight expects ${cinG} input channels, its input has ${cin}`);
    if (B && B.data.length !== cout) throw new LowbitError("E_SHAPE", `node '${name}' (Conv): bias has ${B.data.length} values, weight has ${cout} output channels`);
    const k = Math.max(kh, kw);
    const oy = (k - kh) / 2, ox = (k - kw) / 2;
    const w = new Float32Array(k * k * cin * cout);
    for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) for (let y = 0; y < kh; y++) for (let xx = 0; xx < kw; xx++) {
      w[(((y + oy) * k + (xx + ox)) * cin + i) * cout + o] = W.data[((o * cin + i) * kh + y) * kw + xx];
    }
    const bias = B ? Float32Array.from(B.data) : null;
    let wq: INode["wq"];
    if (W.quant && W.quant.dataType === DT.INT8 && W.quant.zeroPoint.every((z) => z === 0) && (W.quant.scale.length === 1 || (W.quant.axis === 0 && W.quant.scale.length === cout))) {
      const codes = new Int8Array(k * k * cin * cout);
      for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) for (let y = 0; y < kh; y++) for (let xx = 0; xx < kw; xx++) {
        codes[(((y + oy) * k + (xx + ox)) * cin + i) * cout + o] = W.quant.codes[((o * cin + i) * kh + y) * kw + xx];
      }
      const scales = new Float32Array(cout);
      for (let o = 0; o < cout; o++) scales[o] = W.quant.scale[W.quant.scale.length === 1 ? 0 : o];
      wq = { codes, scales };
    }
    const id = this.add({ op: "conv2d", k, cin, cout, weights: w, bias, activation: { kind: "linear" } }, [x], name, wq ? { wq } : {});
    this.out(n, { kind: "dyn", id });
  }

  /**
   * ConvTranspose as a sub-pixel conv + depth_to_space (src/io/ncnn/lower.ts deconvToSubpixel: the
   * scatter form out[i·S + t·D − pad] += x[i]·w[t] is ncnn's Deconvolution with c0 = pad). Only
   * upsamplers whose output is exactly S× the input (SR's 4×4/2 pad 1, 3×3/2 pad 1 + output_padding 1,
   * S×S/S pad 0 …), which is what lowbit's spatial factors can express.
   */
  convTranspose(n: OnnxNode): void {
    const x = this.dyn(n, 0, "input X");
    const W = this.konst(n, 1, "weight W");
    const B = this.optConst(n, 2, "bias B");
    const name = this.nodeName(n);
    if (W.dims.length !== 4) throw unsupported(n, `only 2-D transposed convolutions are supported (weight rank ${W.dims.length})`);
    const [cinW, cout, kh, kw] = W.dims;
    const group = attrI(n, "group", 1);
    if (group !== 1) throw unsupported(n, `attribute group=${group}: grouped transposed convolution is not supported`);
    const cin = this.nodes[x].channels;
    if (cinW !== cin) throw new LowbitError("E_SHAPE", `node '${name}' (ConvTranspose): weight expects ${cinW} input channels, its input has ${cin}`);
    if (kh !== kw) throw unsupported(n, `kernel ${kh}×${kw}: only square kernels are supported`);
    const st = attrInts(n, "strides") ?? [1, 1], dil = attrInts(n, "dilations") ?? [1, 1];
    if (st.length !== 2 || st[0] !== st[1] || dil.length !== 2 || dil[0] !== dil[1]) throw unsupported(n, `strides=[${st}] dilations=[${dil}]: only equal strides and dilations on H and W`);
    const K = kh, S = st[0], D = dil[0];
    if (!(S >= 1 && S <= MAX_KERNEL && D >= 1 && K >= 1 && K <= MAX_KERNEL)) throw unsupported(n, `kernel ${K}, stride ${S}, dilation ${D} out of range`);
    if (attrInts(n, "output_shape")) throw unsupported(n, "attribute output_shape (export with pads / output_padding instead)");
    const autoPad = attrS(n, "auto_pad", "NOTSET");
    if (autoPad !== "NOTSET") throw unsupported(n, `auto_pad=${autoPad}`);
    const pads = attrInts(n, "pads") ?? [0, 0, 0, 0], opad = attrInts(n, "output_padding") ?? [0, 0];
    if (pads.length !== 4 || opad.length !== 2 || pads[0] !== pads[1] || pads[2] !== pads[3] || opad[0] !== opad[1]) {
      throw unsupported(n, `pads=[${pads}] output_padding=[${opad}]: H and W must be padded alike`);
    }
    // out = (in − 1)·S − pad_begin − pad_end + D(K − 1) + 1 + output_padding must equal S·in.
    const extra = -S - pads[0] - pads[2] + D * (K - 1) + 1 + opad[0];
    if (extra !== 0 || pads[0] < 0) {
      throw unsupported(n, `kernel ${K}, stride ${S}, pads=[${pads}], output_padding=[${opad}] give an output of ${S}·in ${extra >= 0 ? "+" : "−"} ${Math.abs(extra)}, not exactly ${S}× the input`);
    }
    if (B && B.data.length !== cout) throw new LowbitError("E_SHAPE", `node '${name}' (ConvTranspose): bias has ${B.data.length} values, weight has ${cout} output channels`);
    // ONNX [cin][cout][K][K] → the [cout][cin][K][K] order deconvToSubpixel reads.
    const w = new Float32Array(cout * cin * K * K);
    for (let i = 0; i < cin; i++) for (let o = 0; o < cout; o++) for (let t = 0; t < K * K; t++) w[(o * cin + i) * K * K + t] = W.data[(i * cout + o) * K * K + t];
    const sp = deconvToSubpixel(w, cout, cin, K, S, D, pads[0]);
    if (sp.k > MAX_KERNEL) throw unsupported(n, `its sub-pixel form needs a ${sp.k}×${sp.k} kernel (larger than ${MAX_KERNEL}×${MAX_KERNEL})`);
    let bias: Float32Array | null = null;
    if (B) {
      bias = new Float32Array(S * S * cout);
      for (let ph = 0; ph < S * S; ph++) bias.set(B.data, ph * cout);
    }
    const conv = this.add({ op: "conv2d", k: sp.k, cin, cout: S * S * cout, weights: sp.weights, bias, activation: { kind: "linear" } }, [x], S === 1 ? name : `${name}/subpixel`);
    const id = S === 1 ? conv : this.add({ op: "depth_to_space", block: S }, [conv], name);
    this.out(n, { kind: "dyn", id });
  }

  resize(n: OnnxNode): void {
    const x = this.dyn(n, 0, "input X");
    const mode = attrS(n, "mode", "nearest");
    if (mode !== "nearest" && mode !== "linear") throw unsupported(n, `mode=${mode}: only nearest and linear (bilinear) resizing map to the IR`);
    let scales: number[] | null = null;
    if (n.opType === "Upsample" && attr(n, "scales")) scales = attr(n, "scales")!.floats ?? null;
    else {
      // Upsample (opset 9): X, scales. Resize opset 10: X, scales. Resize ≥ 11: X, roi, scales, sizes.
      const si = n.opType === "Upsample" || this.opset < 11 ? 1 : 2;
      const sc = n.inputs[si] ? this.konst(n, si, "scales") : null;
      if (sc && sc.data.length) scales = Array.from(sc.data);
      if (n.opType === "Resize" && this.opset >= 11 && n.inputs[3]) {
        const sz = this.konst(n, 3, "sizes");
        if (sz.data.length) {
          // Fixed output sizes are a scale factor only when the model's input size is fixed too
          // (an export without dynamic axes); lowbit then runs it at any size.
          const hw = this.staticHW;
          const sp = this.nodes[x].spatial;
          if (!hw || sz.data.length !== 4) throw unsupported(n, "Resize with fixed output 'sizes' on a model with dynamic input size (export with scale_factor instead of size)");
          scales = [sz.data[0] === 1 ? 1 : NaN, sz.data[1] === this.nodes[x].channels ? 1 : NaN, sz.data[2] / (hw[0] * sp), sz.data[3] / (hw[1] * sp)];
        }
      }
    }
    if (!scales || scales.length !== 4) throw unsupported(n, `needs constant scales [1, 1, s, s], got ${scales ? `[${scales}]` : "none"}`);
    const s = scales[2];
    if (scales[0] !== 1 || scales[1] !== 1 || scales[3] !== s || !Number.isInteger(s) || s < 1) {
      throw unsupported(n, `scales [${scales}]: only equal integer factors on H and W are supported`);
    }
    if (mode === "linear") {
      // Upsample (opset 7–9) and Resize opset 10 are asymmetric (x_in = x_out / s); Resize ≥ 11
      // defaults to half_pixel. pytorch_half_pixel equals half_pixel whenever the output has more
      // than one sample, and a 1-sample output reads the single input sample either way.
      const coord = n.opType === "Resize" && this.opset >= 11 ? attrS(n, "coordinate_transformation_mode", "half_pixel") : "asymmetric";
      const m = coord === "pytorch_half_pixel" ? "half_pixel" : coord;
      if (m !== "half_pixel" && m !== "asymmetric") {
        throw unsupported(n, `linear resize with coordinate_transformation_mode=${coord} (supported: half_pixel, pytorch_half_pixel, asymmetric; align_corners depends on the image size, so tiles could not stitch)`);
      }
      const id = s === 1 ? x : this.add({ op: "upsample_bilinear", factor: s, mode: m }, [x], this.nodeName(n));
      this.out(n, { kind: "dyn", id });
      return;
    }
    if (n.opType === "Resize" && this.opset >= 11) {
      const coord = attrS(n, "coordinate_transformation_mode", "half_pixel");
      const nearest = attrS(n, "nearest_mode", "round_prefer_floor");
      if (!nearestIsFloor(s, coord, nearest)) {
        throw unsupported(n, `coordinate_transformation_mode=${coord} with nearest_mode=${nearest} at ×${s} is not plain nearest-neighbour replication`);
      }
    }
    const id = s === 1 ? x : this.add({ op: "upsample_nearest", factor: s }, [x], this.nodeName(n));
    this.out(n, { kind: "dyn", id });
  }

  run(): { output: number; input: number; clipOut: [number, number] | null } {
    const g = this.m.graph;
    const inits = new Set<string>();
    for (const t of g.initializers) {
      inits.add(t.name);
      this.values.set(t.name, toConst(t));
    }
    const real = g.inputs.filter((v) => !inits.has(v.name));
    if (real.length !== 1) throw new LowbitError("E_UNSUPPORTED_LAYER", `an SR model has exactly one image input; this graph has ${real.length} (${real.map((v) => v.name).join(", ")})`);
    const iv = real[0];
    if (iv.elemType !== DT.FLOAT && iv.elemType !== 0) throw new LowbitError("E_UNSUPPORTED_LAYER", `input '${iv.name}' is ${dataTypeName(iv.elemType)}; only float32 image inputs are supported`);
    if (iv.shape) {
      if (iv.shape.length !== 4) throw new LowbitError("E_SHAPE", `input '${iv.name}' has rank ${iv.shape.length}; an image model takes NCHW [1, 3, H, W]`);
      if (typeof iv.shape[1] === "number" && iv.shape[1] !== 3) throw new LowbitError("E_SHAPE", `input '${iv.name}' has ${iv.shape[1]} channels; an image model takes 3 (RGB)`);
      if (typeof iv.shape[0] === "number" && iv.shape[0] !== 1) throw new LowbitError("E_SHAPE", `input '${iv.name}' has batch ${iv.shape[0]}; lowbit runs batch 1`);
    }
    if (iv.shape && typeof iv.shape[2] === "number" && typeof iv.shape[3] === "number" && iv.shape[2] > 0 && iv.shape[3] > 0) this.staticHW = [iv.shape[2], iv.shape[3]];
    const input = this.add({ op: "input" }, [], iv.name);
    this.inputName = iv.name;
    this.inputId = input;
    this.values.set(iv.name, { kind: "dyn", id: input });
    if (g.outputs.length !== 1) throw new LowbitError("E_UNSUPPORTED_LAYER", `an SR model has exactly one output; this graph has ${g.outputs.length}`);

    for (const n of g.nodes) this.node(n);

    const ov = this.values.get(g.outputs[0].name);
    if (!ov) throw new LowbitError("E_MODEL_FORMAT", `graph output '${g.outputs[0].name}' is not produced by any node`);
    if (ov.kind !== "dyn") throw new LowbitError("E_UNSUPPORTED_LAYER", `graph output '${g.outputs[0].name}' is a constant`);
    if (ov.quantized) throw new LowbitError("E_UNSUPPORTED_LAYER", `graph output '${g.outputs[0].name}' is integer codes (QuantizeLinear); end the graph with DequantizeLinear`);
    // A final Clip is the model's output clamp: lowbit clips to the output range anyway.
    if (this.borderPad > 0 && ov.cropped !== this.borderPad * this.nodes[ov.id].spatial) {
      throw new LowbitError("E_UNSUPPORTED_LAYER", `the input is edge-padded by ${this.borderPad} but the output is not cropped by ${this.borderPad}·${this.nodes[ov.id].spatial} (a final Slice)`);
    }
    let output = ov.id;
    let clipOut: [number, number] | null = null;
    for (;;) {
      const c = this.nodes[output];
      let lo: number, hi: number;
      if (c.op === "clip") [lo, hi] = [c.lo, c.hi];
      else break;
      clipOut = clipOut ? [Math.max(clipOut[0], lo), Math.min(clipOut[1], hi)] : [lo, hi];
      c.dead = true;
      output = c.inputs[0];
    }
    return { output, input, clipOut };
  }

  /** Pad(mode "edge", [0,0,p,p,0,0,p,p]) of the image input: lowbit's meta.borderPad = p. */
  borderPadOp(n: OnnxNode): void {
    const x = this.dyn(n, 0, "input data");
    const why = " (only lowbit's border pad imports: an edge Pad of the image input by p on H and W)";
    if (x !== this.inputId || this.borderPad > 0) throw unsupported(n, NEEDS_IR_OP.Pad + why);
    if (attrS(n, "mode", "constant") !== "edge") throw unsupported(n, `mode '${attrS(n, "mode", "constant")}'${why}`);
    if (this.m.graph.nodes.filter((k) => k.inputs.includes(this.inputName)).length !== 1) throw unsupported(n, `the image input has readers besides this Pad${why}`);
    const pads = this.opset >= 11 ? [...this.konst(n, 1, "pads").data] : attrInts(n, "pads") ?? [];
    if (n.inputs.length > 3 && n.inputs[3]) throw unsupported(n, `an axes input${why}`);
    const p = pads[2];
    if (pads.length !== 8 || !Number.isInteger(p) || p < 1 || p > 1024 || pads.some((v, i) => v !== (i % 4 >= 2 ? p : 0))) {
      throw unsupported(n, `pads [${pads.join(", ")}]${why}`);
    }
    this.borderPad = p;
    this.out(n, { kind: "dyn", id: x });
  }

  /** Slice of c pixels from each side of H and W (axes 2, 3), the border pad's crop at the end. */
  borderCrop(n: OnnxNode): void {
    const x = this.dyn(n, 0, "input data");
    const why = " (only the border crop imports: a final Slice of c = borderPad·scale pixels per side on axes 2, 3)";
    if (this.borderPad === 0 || this.opset < 10) throw unsupported(n, `Slice is not supported${why}`);
    const st = [...this.konst(n, 1, "starts").data], en = [...this.konst(n, 2, "ends").data];
    const ax = this.optConst(n, 3, "axes"), sp = this.optConst(n, 4, "steps");
    const c = st[0];
    const ok = ax !== null && [...ax.data].join() === "2,3" && st.length === 2 && en.length === 2 && c >= 1 && st[1] === c && en[0] === -c && en[1] === -c && (sp === null || sp.data.every((v) => v === 1));
    if (!ok) throw unsupported(n, `starts [${st}], ends [${en}], axes [${ax ? [...ax.data] : "(all)"}]${why}`);
    this.out(n, { kind: "dyn", id: x, cropped: c });
  }

  node(n: OnnxNode): void {
    if (n.domain !== "" && n.domain !== "ai.onnx") throw unsupported(n, `operator domain '${n.domain}' is not supported (only the default ONNX domain)`);
    const op = n.opType;
    const act = ACT_OPS[op];
    if (act) {
      const x = this.dyn(n, 0, "input X");
      this.out(n, { kind: "dyn", id: this.add({ op: "activation", activation: act(n) }, [x], this.nodeName(n)) });
      return;
    }
    switch (op) {
      case "Constant": {
        const a = n.attributes[0];
        if (!a || n.attributes.length !== 1) throw badModel(n, "needs exactly one value attribute");
        let c: Const;
        if (a.name === "value" && a.t) c = toConst(a.t);
        else if (a.name === "value_float" && a.f !== undefined) c = { kind: "const", dims: [], data: Float64Array.of(a.f) };
        else if (a.name === "value_floats" && a.floats) c = { kind: "const", dims: [a.floats.length], data: Float64Array.from(a.floats) };
        else if (a.name === "value_int" && a.i !== undefined) c = { kind: "const", dims: [], data: Float64Array.of(a.i) };
        else if (a.name === "value_ints" && a.ints) c = { kind: "const", dims: [a.ints.length], data: Float64Array.from(a.ints) };
        else throw unsupported(n, `Constant attribute '${a.name}' is not supported`);
        this.out(n, c);
        return;
      }
      case "PRelu": {
        // One shared slope (nn.PReLU() default, SRResNet) is a leaky ReLU; per-channel slopes
        // (broadcast along C of NCHW: [C,1,1] or [1,C,1,1]) are the prelu op.
        const x = this.dyn(n, 0, "input X");
        const sl = this.konst(n, 1, "slope");
        if (sl.data.length === 0) throw badModel(n, "slope is empty");
        // Decided by the slope's shape, not its values: a per-channel slope tensor stays a prelu even
        // when its values are equal (exportOnnx's prelu round-trips to prelu, and stays on codes in int8).
        if (sl.data.length === 1) {
          this.out(n, { kind: "dyn", id: this.add({ op: "activation", activation: { kind: "leaky_relu", alpha: sl.data[0] } }, [x], this.nodeName(n)) });
          return;
        }
        const C = this.nodes[x].channels, d = sl.dims;
        // Unidirectional broadcasting aligns dims right: the channel axis is rank−3 from the end.
        const perChannel = sl.data.length === C && (d.length === 3 || d.length === 4) && d.every((v, i) => (i === d.length - 3 ? v === C : v === 1));
        if (!perChannel) throw unsupported(n, `PRelu slope of shape [${d.join(", ")}] (only one shared slope or one per channel: [${C}, 1, 1] or [1, ${C}, 1, 1])`);
        const slopes = Float32Array.from(sl.data);
        this.out(n, { kind: "dyn", id: this.add({ op: "prelu", slopes }, [x], this.nodeName(n)) });
        return;
      }
      case "Pad":
        this.borderPadOp(n);
        return;
      case "Slice":
        this.borderCrop(n);
        return;
      case "Identity":
      case "Dropout":
        this.out(n, this.value(n, 0));
        return;
      case "Conv":
        this.conv(n);
        return;
      case "ConvTranspose":
        this.convTranspose(n);
        return;
      case "Add": case "Sub": case "Mul": case "Div":
        this.binary(n);
        return;
      case "Sum": {
        if (n.inputs.length === 1) {
          this.out(n, this.value(n, 0));
          return;
        }
        const xs = n.inputs.map((_, i) => this.dyn(n, i));
        this.out(n, { kind: "dyn", id: this.add({ op: "add" }, xs, this.nodeName(n)) });
        return;
      }
      case "Clip": {
        const qv = this.values.get(n.inputs[0]);
        if (qv?.kind === "dyn" && qv.quantized) {
          this.codeClamp(n, qv.id, qv.quantized);
          return;
        }
        const x = this.dyn(n, 0, "input");
        let lo = -Infinity, hi = Infinity;
        if (this.opset >= 11) {
          const a = this.optConst(n, 1, "min"), b = this.optConst(n, 2, "max");
          if (a) lo = a.data[0];
          if (b) hi = b.data[0];
        } else {
          lo = attrF(n, "min", -Infinity);
          hi = attrF(n, "max", Infinity);
        }
        if (lo <= -3.4e38) lo = -Infinity;
        if (hi >= 3.4e38) hi = Infinity;
        if (!(lo <= hi)) throw badModel(n, `min ${lo} > max ${hi}`);
        let id: number;
        if (lo === -Infinity && hi === Infinity) id = x;
        else if (lo === 0 && hi === Infinity) id = this.add({ op: "activation", activation: { kind: "relu" } }, [x], this.nodeName(n));
        else if (lo === 0 && hi === 6) id = this.add({ op: "activation", activation: { kind: "relu6" } }, [x], this.nodeName(n));
        else id = this.add({ op: "clip", lo, hi }, [x], this.nodeName(n));
        this.out(n, { kind: "dyn", id });
        return;
      }
      case "BatchNormalization": {
        const x = this.dyn(n, 0, "input X");
        if (attrI(n, "training_mode", 0) !== 0) throw unsupported(n, "training_mode=1 is not supported");
        if (n.outputs.length > 1 && n.outputs.slice(1).some((o) => o)) throw unsupported(n, "training outputs (running mean/var) are not supported");
        const C = this.nodes[x].channels;
        const get = (i: number, w: string) => {
          const c = this.konst(n, i, w);
          if (c.data.length !== C) throw new LowbitError("E_SHAPE", `node '${this.nodeName(n)}' (BatchNormalization): ${w} has ${c.data.length} values for ${C} channels`);
          return c.data;
        };
        const sc = get(1, "scale"), bb = get(2, "B"), mean = get(3, "mean"), v = get(4, "var");
        const eps = attrF(n, "epsilon", 1e-5);
        const a = new Float64Array(C), b = new Float64Array(C);
        for (let c = 0; c < C; c++) {
          a[c] = sc[c] / Math.sqrt(v[c] + eps);
          b[c] = bb[c] - mean[c] * a[c];
        }
        this.out(n, this.affine(n, x, a, b));
        return;
      }
      case "Concat": {
        const rank = 4;
        let axis = attrI(n, "axis", 1);
        if (axis < 0) axis += rank;
        if (axis !== 1) throw unsupported(n, `axis=${attr(n, "axis")?.i}: only channel concatenation (axis 1) is supported`);
        const xs = n.inputs.map((_, i) => this.dyn(n, i));
        this.out(n, { kind: "dyn", id: this.add({ op: "concat" }, xs, this.nodeName(n)) });
        return;
      }
      case "DepthToSpace": {
        let x = this.dyn(n, 0, "input");
        const bsz = attrI(n, "blocksize", 0);
        const mode = attrS(n, "mode", "DCR");
        if (!(bsz >= 1)) throw badModel(n, `blocksize ${bsz}`);
        const C = this.nodes[x].channels;
        if (C % (bsz * bsz) !== 0) throw new LowbitError("E_SHAPE", `node '${this.nodeName(n)}' (DepthToSpace): ${C} channels not divisible by ${bsz}²`);
        if (mode === "CRD") {
          // CRD reads channel c·b² + i·b + j for output channel c at phase (i, j); DCR reads (i·b + j)·C' + c.
          const Cp = C / (bsz * bsz);
          const perm = new Int32Array(C);
          for (let c = 0; c < Cp; c++) for (let ph = 0; ph < bsz * bsz; ph++) perm[ph * Cp + c] = c * bsz * bsz + ph;
          x = this.add({ op: "perm", perm }, [x], `${this.nodeName(n)}/crd_to_dcr`);
        } else if (mode !== "DCR") throw unsupported(n, `mode=${mode}`);
        this.out(n, { kind: "dyn", id: this.add({ op: "depth_to_space", block: bsz }, [x], this.nodeName(n)) });
        return;
      }
      case "Resize":
      case "Upsample":
        this.resize(n);
        return;
      case "QuantizeLinear": {
        const x = this.value(n, 0);
        const s = this.konst(n, 1, "y_scale");
        const z = this.optConst(n, 2, "y_zero_point");
        if (x.kind !== "dyn") throw unsupported(n, "quantizing a constant is not supported (store weights as int8 initializers with DequantizeLinear)");
        if (s.data.length !== 1 || (z && z.data.length !== 1)) throw unsupported(n, "per-axis quantization of activations is not supported");
        const zt = z ? this.zeroPointType(n, 2) : DT.UINT8;
        if (zt !== DT.UINT8 && zt !== DT.INT8) throw unsupported(n, `zero point type ${dataTypeName(zt)} (only uint8 / int8 activations)`);
        if (!(s.data[0] > 0) || !Number.isFinite(s.data[0])) throw new LowbitError("E_RANGE", `node '${this.nodeName(n)}': scale ${s.data[0]} is not a positive finite number`);
        this.out(n, { kind: "dyn", id: x.id, quantized: { scale: s.data[0], zeroPoint: z ? z.data[0] : 0, signed: zt === DT.INT8 } });
        return;
      }
      case "DequantizeLinear": {
        const x = this.value(n, 0);
        if (x.kind === "dyn") {
          if (!x.quantized) throw unsupported(n, "dequantizes a float tensor (expected the output of a QuantizeLinear)");
          const s = this.konst(n, 1, "x_scale"), z = this.optConst(n, 2, "x_zero_point");
          const q = x.quantized;
          if (s.data.length !== 1 || Math.fround(s.data[0]) !== Math.fround(q.scale) || (z ? z.data[0] : 0) !== q.zeroPoint) {
            throw unsupported(n, "DequantizeLinear's scale / zero point differ from its QuantizeLinear's (requantization between them is not supported)");
          }
          const node = this.nodes[x.id];
          if (!node.q) node.q = { ...q };
          this.out(n, { kind: "dyn", id: x.id });
          return;
        }
        this.out(n, this.dequantizeConst(n, x));
        return;
      }
      default:
        throw unsupported(n, NEEDS_IR_OP[op] ?? `op '${op}' is not supported by lowbit's ONNX importer`);
    }
  }

  /**
   * Clip on integer codes between QuantizeLinear and DequantizeLinear (lowbit's own export form):
   * lower bound = zero point is a ReLU; an upper bound of z + round(6/s) a ReLU6; a code range
   * [0, 2^b − 1] on unsigned codes is a b-bit grid. Anything else has no IR meaning.
   */
  codeClamp(n: OnnxNode, x: number, q: OnnxActQuant): void {
    const [tmin, tmax] = q.signed ? [-128, 127] : [0, 255];
    const a = this.optConst(n, 1, "min"), c = this.optConst(n, 2, "max");
    const lo = a ? a.data[0] : tmin, hi = c ? c.data[0] : tmax;
    const z = q.zeroPoint;
    let bits = 8;
    let act: Activation | null = null;
    if (lo === z && hi === Math.min(tmax, z + Math.round(6 / q.scale)) && hi < tmax) act = { kind: "relu6" };
    else if (lo === z || (lo === tmin && hi === tmax)) act = lo === z && z > tmin ? { kind: "relu" } : null;
    else if (!q.signed && lo === 0) act = null;
    else throw unsupported(n, `clamp of codes to [${lo}, ${hi}] (zero point ${z}) is neither a ReLU, a ReLU6 nor a narrower grid`);
    if (act?.kind !== "relu6" && hi !== tmax) {
      const b = Math.log2(hi + 1);
      if (q.signed || (lo !== 0 && lo !== z) || !Number.isInteger(b) || b < 2) throw unsupported(n, `clamp of codes to [${lo}, ${hi}] is not a 2..7-bit grid`);
      bits = b;
    }
    const id = act ? this.add({ op: "activation", activation: act }, [x], this.nodeName(n)) : x;
    this.out(n, { kind: "dyn", id, quantized: { ...q, ...(bits < 8 ? { bits } : {}) } });
  }

  zeroPointType(n: OnnxNode, i: number): number {
    const name = n.inputs[i];
    const t = this.m.graph.initializers.find((x) => x.name === name);
    if (t) return t.dataType;
    const c = this.m.graph.nodes.find((x) => x.opType === "Constant" && x.outputs[0] === name);
    return c?.attributes[0]?.t?.dataType ?? DT.UINT8;
  }

  /** DequantizeLinear of a constant: folded, keeping the codes (conv weights of QDQ graphs). */
  dequantizeConst(n: OnnxNode, x: Const): Const {
    const s = this.konst(n, 1, "x_scale"), z = this.optConst(n, 2, "x_zero_point");
    const dt = this.m.graph.initializers.find((t) => t.name === n.inputs[0])?.dataType ?? DT.INT32;
    let axis = attrI(n, "axis", 1);
    if (axis < 0) axis += x.dims.length;
    const perAxis = s.data.length > 1;
    if (perAxis && (axis < 0 || axis >= x.dims.length || x.dims[axis] !== s.data.length)) {
      throw new LowbitError("E_SHAPE", `node '${this.nodeName(n)}' (DequantizeLinear): ${s.data.length} scales along axis ${axis} of [${x.dims}]`);
    }
    if (z && z.data.length !== s.data.length) throw new LowbitError("E_SHAPE", `node '${this.nodeName(n)}' (DequantizeLinear): ${z.data.length} zero points for ${s.data.length} scales`);
    const inner = perAxis ? numel(x.dims.slice(axis + 1)) : 1;
    const C = s.data.length;
    const out = new Float64Array(x.data.length);
    for (let i = 0; i < out.length; i++) {
      const c = perAxis ? Math.floor(i / inner) % C : 0;
      out[i] = Math.fround(Math.fround(x.data[i] - (z ? z.data[c] : 0)) * Math.fround(s.data[c]));
    }
    return { kind: "const", dims: x.dims, data: out, quant: { codes: Int32Array.from(x.data), scale: s.data, zeroPoint: z ? z.data : new Float64Array(C), axis, dataType: dt } };
  }
}

function constBinary(n: OnnxNode, A: Const, B: Const): Const {
  const f = { Add: (a: number, b: number) => a + b, Sub: (a: number, b: number) => a - b, Mul: (a: number, b: number) => a * b, Div: (a: number, b: number) => a / b }[n.opType as "Add"]!;
  if (A.data.length === B.data.length) return { kind: "const", dims: A.dims.length >= B.dims.length ? A.dims : B.dims, data: A.data.map((a, i) => f(a, B.data[i])) };
  if (B.data.length === 1) return { kind: "const", dims: A.dims, data: A.data.map((a) => f(a, B.data[0])) };
  if (A.data.length === 1) return { kind: "const", dims: B.dims, data: B.data.map((b) => f(A.data[0], b)) };
  throw unsupported(n, `constant broadcasting of [${A.dims}] and [${B.dims}] is not supported`);
}

// ------------------------------------------------------------------------------------------------
// folding of pseudo nodes

function consumers(nodes: INode[]): number[][] {
  const c: number[][] = nodes.map(() => []);
  for (const n of nodes) if (!n.dead) for (const i of n.inputs) c[i].push(n.id);
  return c;
}

const uniform = (v: Float64Array) => v.every((t) => t === v[0]);

/** Rewrites uses of node `from` to `to` (consumers and the output). */
function redirect(nodes: INode[], from: number, to: number, st: { output: number; input: number }): void {
  for (const n of nodes) if (!n.dead) n.inputs = n.inputs.map((i) => (i === from ? to : i));
  if (st.output === from) st.output = to;
  nodes[from].dead = true;
}

interface FoldState {
  output: number;
  input: number;
  inRange: [number, number];
  outRange: [number, number];
}

function foldPseudo(imp: Importer, st: FoldState): void {
  const nodes = imp.nodes;
  // Only what the output depends on matters (unused branches may hold anything).
  const live = new Uint8Array(nodes.length);
  live[st.output] = 1;
  for (let i = nodes.length - 1; i >= 0; i--) if (live[i] && !nodes[i].dead) for (const p of nodes[i].inputs) live[p] = 1;
  for (const n of nodes) if (!live[n.id]) n.dead = true;
  for (let changed = true; changed; ) {
    changed = false;
    const cons = consumers(nodes);
    for (const A of nodes) {
      if (A.dead || (A.op !== "affine" && A.op !== "perm")) continue;
      const P = nodes[A.inputs[0]];
      const single = cons[P.id].length === 1 && st.output !== P.id;
      if (A.op === "perm") {
        if (P.op === "conv2d" && single) {
          permuteConvOutputs(P, A.perm);
          redirect(nodes, A.id, P.id, st);
          changed = true;
          break;
        }
        continue;
      }
      const { a, b } = A;
      const noShift = b.every((t) => t === 0);
      // affine ∘ affine
      if (P.op === "affine" && single) {
        for (let c = 0; c < a.length; c++) {
          b[c] = a[c] * P.b[c] + b[c];
          a[c] = a[c] * P.a[c];
        }
        A.inputs = [P.inputs[0]];
        P.dead = true;
        changed = true;
        break;
      }
      if (a.every((t) => t === 1) && noShift) {
        redirect(nodes, A.id, P.id, st);
        changed = true;
        break;
      }
      if (P.op === "conv2d" && P.activation.kind === "linear" && single) {
        scaleConvOutputs(P, a, b);
        redirect(nodes, A.id, P.id, st);
        changed = true;
        break;
      }
      if (P.id === st.input && cons[P.id].length === 1 && uniform(a) && uniform(b) && a[0] > 0) {
        st.inRange = [a[0] * st.inRange[0] + b[0], a[0] * st.inRange[1] + b[0]];
        redirect(nodes, A.id, P.id, st);
        changed = true;
        break;
      }
      if (A.id === st.output && uniform(a) && uniform(b) && a[0] > 0) {
        // out = a·y + b, clipped to R ⇔ y clipped to (R − b)/a, with the same pixel mapping.
        st.outRange = [(st.outRange[0] - b[0]) / a[0], (st.outRange[1] - b[0]) / a[0]];
        redirect(nodes, A.id, P.id, st);
        changed = true;
        break;
      }
      if (noShift && A.id !== st.output && cons[A.id].length > 0 && cons[A.id].every((c) => nodes[c].op === "conv2d")) {
        for (const c of cons[A.id]) scaleConvInputs(nodes[c] as IConv, a);
        redirect(nodes, A.id, P.id, st);
        changed = true;
        break;
      }
    }
  }
  // What is left: scalar scales → IR scale op; anything else → an exact 1×1 conv.
  for (const A of nodes) {
    if (A.dead) continue;
    const base = { id: A.id, name: A.name, inputs: A.inputs, channels: A.channels, spatial: A.spatial, ...(A.q ? { q: A.q } : {}) };
    const C = A.channels;
    if (A.op === "affine") {
      if (uniform(A.a) && A.b.every((t) => t === 0)) {
        nodes[A.id] = { ...base, op: "scale", factor: A.a[0] };
      } else {
        const w = new Float32Array(C * C);
        for (let c = 0; c < C; c++) w[c * C + c] = A.a[c];
        nodes[A.id] = { ...base, op: "conv2d", k: 1, cin: C, cout: C, weights: w, bias: Float32Array.from(A.b), activation: { kind: "linear" } };
      }
    } else if (A.op === "perm") {
      const w = new Float32Array(C * C);
      for (let j = 0; j < C; j++) w[A.perm[j] * C + j] = 1; // HWIO [1,1,C,C]: output j reads input perm[j]
      nodes[A.id] = { ...base, op: "conv2d", k: 1, cin: C, cout: C, weights: w, bias: null, activation: { kind: "linear" } };
    } else if (A.op === "clip") {
      throw new LowbitError("E_UNSUPPORTED_LAYER", `node '${A.name}' (Clip): clamp to [${A.lo}, ${A.hi}] inside the network is not supported (only ReLU, ReLU6 and the final output clamp)`);
    }
  }
}

function scaleConvOutputs(P: IConv, a: Float64Array, b: Float64Array): void {
  const w = new Float32Array(P.weights.length);
  for (let i = 0; i < w.length; i++) w[i] = P.weights[i] * a[i % P.cout];
  const bias = new Float32Array(P.cout);
  for (let o = 0; o < P.cout; o++) bias[o] = (P.bias ? P.bias[o] : 0) * a[o] + b[o];
  P.weights = w;
  P.bias = bias;
  if (P.wq) P.wqFolded = true;
  delete P.wq; // the codes no longer describe these weights
}

function scaleConvInputs(P: IConv, a: Float64Array): void {
  const w = new Float32Array(P.weights.length);
  for (let i = 0; i < w.length; i++) w[i] = P.weights[i] * a[Math.floor(i / P.cout) % P.cin];
  P.weights = w;
  if (P.wq) P.wqFolded = true;
  delete P.wq;
}

function permuteConvOutputs(P: IConv, perm: Int32Array): void {
  const w = new Float32Array(P.weights.length);
  const C = P.cout;
  for (let i = 0; i < w.length; i += C) for (let j = 0; j < C; j++) w[i + j] = P.weights[i + perm[j]];
  P.weights = w;
  if (P.bias) P.bias = Float32Array.from(perm, (p) => P.bias![p]);
  if (P.wq) {
    const codes = new Int8Array(P.wq.codes.length);
    for (let i = 0; i < codes.length; i += C) for (let j = 0; j < C; j++) codes[i + j] = P.wq.codes[i + perm[j]];
    P.wq = { codes, scales: Float32Array.from(perm, (p) => P.wq!.scales[p]) };
  }
}

// ------------------------------------------------------------------------------------------------

function checkRange(r: unknown, what: string): [number, number] {
  if (!Array.isArray(r) || r.length !== 2 || !r.every((v) => typeof v === "number" && Number.isFinite(v)) || !(r[1] > r[0])) {
    throw new LowbitError("E_ARGUMENT", `${what} must be [lo, hi] with finite lo < hi, got ${JSON.stringify(r)}`);
  }
  return [r[0], r[1]];
}

function metaRange(m: OnnxModel, key: string): [number, number] | undefined {
  const io = m.metadata.get("lowbit.io");
  if (io === "pixels") return [0, 255];
  const s = m.metadata.get(key);
  if (s === undefined) return undefined;
  try {
    return checkRange(JSON.parse(s), `metadata ${key}`);
  } catch {
    throw new LowbitError("E_MODEL_FORMAT", `metadata ${key} = '${s.slice(0, 60)}' is not a [lo, hi] range`);
  }
}

/** Decodes and converts, returning the graph and the QDQ annotations. */
export function importOnnxDetailed(bytes: Uint8Array | ArrayBuffer | ArrayBufferView, opts: ImportOnnxOptions = {}): OnnxImport {
  const buf = bytes instanceof Uint8Array ? bytes : ArrayBuffer.isView(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : null;
  if (!buf) throw new LowbitError("E_ARGUMENT", "importOnnx needs the model bytes (Uint8Array / ArrayBuffer) or a path");
  const limit = opts.maxModelBytes ?? 2 ** 30;
  if (buf.length > limit) throw new LowbitError("E_MEMORY", `ONNX model: ${buf.length} bytes, above the model size limit of ${limit} bytes (option maxModelBytes)`);
  const m = decodeModel(buf);
  const opset = m.opsets.get("") ?? 0;
  if (opset < 7 || opset > 23) throw new LowbitError("E_UNSUPPORTED_LAYER", `default-domain opset ${opset || "(missing)"} is not supported (7..23)`);
  const imp = new Importer(m);
  const r = imp.run();

  const inRange = opts.inputRange ? checkRange(opts.inputRange, "inputRange") : metaRange(m, "lowbit.input_range") ?? [0, 1];
  let outRange: [number, number];
  if (opts.outputRange) outRange = checkRange(opts.outputRange, "outputRange");
  else outRange = metaRange(m, "lowbit.output_range") ?? (r.clipOut && Number.isFinite(r.clipOut[0]) && Number.isFinite(r.clipOut[1]) && r.clipOut[1] > r.clipOut[0] ? r.clipOut : inRange);
  if (r.clipOut && (outRange[0] < r.clipOut[0] || outRange[1] > r.clipOut[1])) {
    throw new LowbitError("E_ARGUMENT", `the model clamps its output to [${r.clipOut}], which does not contain outputRange [${outRange}]; pass an outputRange inside the clamp`);
  }
  const st: FoldState = { output: r.output, input: r.input, inRange, outRange };
  foldPseudo(imp, st);
  // Folded scales are f32 constants (1/255 → 0.0039215688…): snap range ends to 7 significant
  // digits when that moves them by less than an f32 ulp, so [0, 1.0000000591] reads [0, 1].
  const snap = (v: number) => {
    const r7 = Number(v.toPrecision(7));
    return Math.abs(r7 - v) <= 2 ** -23 * Math.max(1, Math.abs(v)) ? r7 : v;
  };
  st.inRange = [snap(st.inRange[0]), snap(st.inRange[1])];
  st.outRange = [snap(st.outRange[0]), snap(st.outRange[1])];
  return toGraph(imp, st, m, opts, opset);
}

/**
 * A leaky ReLU that optimizeGraph cannot fuse into its producer (not a linear conv read only by
 * it) becomes a uniform-slope prelu: the same function, but one the int8 path runs on codes.
 */
function leakyToPrelu(nodes: Node[]): void {
  const readers = new Uint32Array(nodes.length);
  for (const n of nodes) for (const i of n.inputs) readers[i]++;
  for (const n of nodes) {
    if (n.op !== "activation" || n.activation.kind !== "leaky_relu") continue;
    const p = nodes[n.inputs[0]];
    if (p.op === "conv2d" && p.activation.kind === "linear" && readers[p.id] === 1) continue;
    const slopes = new Float32Array(p.channels).fill(n.activation.alpha ?? 0.01);
    nodes[n.id] = { op: "prelu", slopes, id: n.id, name: n.name, inputs: n.inputs, channels: n.channels, spatial: n.spatial };
  }
}

function toGraph(imp: Importer, st: FoldState, m: OnnxModel, opts: ImportOnnxOptions, opset: number): OnnxImport {
  // Live nodes only, renumbered densely (ids are in topological order already).
  const live = new Uint8Array(imp.nodes.length);
  live[st.output] = 1;
  for (let i = imp.nodes.length - 1; i >= 0; i--) if (live[i]) for (const p of imp.nodes[i].inputs) live[p] = 1;
  if (!live[st.input]) throw new LowbitError("E_UNSUPPORTED_LAYER", "the output does not depend on the input image");
  const newId = new Map<number, number>();
  const nodes: Node[] = [];
  const actQuant = new Map<string, OnnxActQuant>();
  const weightQuant = new Map<string, OnnxWeightQuant>();
  const foldedConvs = new Set<string>();
  for (const n of imp.nodes) {
    if (!live[n.id]) continue;
    const id = nodes.length;
    newId.set(n.id, id);
    const { dead: _d, q, wq, wqFolded, ...rest } = n;
    if (wqFolded) foldedConvs.add(n.name);
    nodes.push({ ...rest, id, inputs: n.inputs.map((i) => newId.get(i)!) } as Node);
    if (q) actQuant.set(n.name, q);
    if (wq && n.op === "conv2d") weightQuant.set(n.name, wq);
  }
  leakyToPrelu(nodes);
  const out = nodes[newId.get(st.output)!];
  const meta: GraphMeta = {
    name: opts.name ?? (m.metadata.get("lowbit.name") || m.graph.name || "onnx"),
    scale: out.spatial,
    inputRange: st.inRange,
    outputRange: st.outRange,
  };
  const arch = m.metadata.get("lowbit.arch");
  if (arch) meta.arch = arch;
  if (imp.borderPad > 0) meta.borderPad = imp.borderPad;
  const g: Graph = { nodes, input: newId.get(st.input)!, output: out.id, meta };
  validateGraph(g);
  g.meta.receptiveRadius = receptiveRadius(g);
  return { graph: g, actQuant, weightQuant, foldedConvs, opset, producer: `${m.producerName} ${m.producerVersion}`.trim() };
}

/**
 * Converts ONNX model bytes into a lowbit graph (FP32; QDQ graphs are dequantized — use
 * onnxToModel for a quantized model). See the file comment for the supported ops.
 */
export function parseOnnx(bytes: Uint8Array | ArrayBuffer | ArrayBufferView, opts: ImportOnnxOptions = {}): Graph {
  return importOnnxDetailed(bytes, opts).graph;
}

/** Reads an ONNX model from bytes, a file path or a file: URL (Node) and converts it (see parseOnnx). */
export async function importOnnx(src: Uint8Array | ArrayBuffer | ArrayBufferView | string | URL, opts: ImportOnnxOptions = {}): Promise<Graph> {
  return parseOnnx(await readOnnxBytes(src, opts), opts);
}

export async function readOnnxBytes(src: Uint8Array | ArrayBuffer | ArrayBufferView | string | URL, opts: ImportOnnxOptions = {}): Promise<Uint8Array | ArrayBuffer | ArrayBufferView> {
  if (typeof src !== "string" && !(src instanceof URL)) return src;
  const fs = await import("node:fs/promises");
  const path = src instanceof URL ? (await import("node:url")).fileURLToPath(src) : src;
  const limit = opts.maxModelBytes ?? 2 ** 30;
  let size: number;
  try {
    size = (await fs.stat(path)).size;
  } catch (e) {
    throw new LowbitError("E_IO", `cannot read ONNX model '${path}': ${(e as Error).message}`, { cause: e });
  }
  if (size > limit) throw new LowbitError("E_MEMORY", `ONNX model '${path}': ${size} bytes, above the model size limit of ${limit} bytes (option maxModelBytes)`);
  try {
    return new Uint8Array(await fs.readFile(path));
  } catch (e) {
    throw new LowbitError("E_IO", `cannot read ONNX model '${path}': ${(e as Error).message}`, { cause: e });
  }
}
