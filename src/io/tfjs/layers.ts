/**
 * Keras layer → lowbit IR node conversion, and assembly of the whole graph.
 *
 * Every supported option is checked explicitly; anything else throws E_UNSUPPORTED_LAYER with
 * the layer's name, class and the offending option, so an unsupported model never loads into a
 * silently different network. Initializers, regularizers, constraints, `trainable` and `dtype`
 * do not affect inference and are ignored.
 */
import { LowbitError } from "../../runtime/errors.ts";
import type { Activation, ActivationKind, Graph, Node, NodeOp } from "../../graph/ir.ts";
import { inferNodeShape, receptiveRadius, validateGraph } from "../../graph/validate.ts";
import { get, type Json } from "./json.ts";
import type { LayerDesc, LayerRef, ModelTopology } from "./model-json.ts";
import type { DecodedTensor } from "./weights.ts";

/** MultiplyBeta's factor: hard-coded BETA in idealo ISR and in UpscalerJS's JS layer. */
export const MULTIPLY_BETA = 0.2;

/** Keras activation names → IR kinds (aliases included). Anything absent is unsupported. */
const KERAS_ACTIVATIONS: Record<string, Activation> = {
  linear: { kind: "linear" },
  relu: { kind: "relu" },
  relu6: { kind: "relu6" },
  // Keras 3 `activations.leaky_relu` default negative_slope.
  leaky_relu: { kind: "leaky_relu", alpha: 0.2 },
  elu: { kind: "elu", alpha: 1 },
  selu: { kind: "selu" },
  sigmoid: { kind: "sigmoid" },
  hard_sigmoid: { kind: "hard_sigmoid" },
  tanh: { kind: "tanh" },
  softplus: { kind: "softplus" },
  softsign: { kind: "softsign" },
  swish: { kind: "swish" },
  silu: { kind: "swish" },
  exponential: { kind: "exponential" },
};

function unsupported(l: LayerDesc, what: string): LowbitError {
  return new LowbitError("E_UNSUPPORTED_LAYER", `layer '${l.name}' (${l.className}): ${what}`);
}

function fmt(m: string): LowbitError {
  return new LowbitError("E_MODEL_FORMAT", m);
}

function show(v: Json | undefined): string {
  return JSON.stringify(v) ?? "undefined";
}

/**
 * 'string' or a JSON rendering, for messages. Never String(v) / `${v}` on file data: sanitized
 * objects have a null prototype, and converting one to a primitive throws a TypeError.
 */
function quoted(v: Json | undefined): string {
  return typeof v === "string" ? `'${v}'` : (JSON.stringify(v) ?? "undefined").slice(0, 120);
}

/** A 2-D option given as int or [a, b]; returns [a, b] or throws. */
function pair(l: LayerDesc, key: string, dflt: number): [number, number] {
  const v = get(l.config, key);
  if (v === undefined || v === null) return [dflt, dflt];
  if (typeof v === "number") return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "number" && Number.isInteger(x))) {
    return [v[0] as number, v[1] as number];
  }
  throw unsupported(l, `${key} ${show(v)} is not an integer pair`);
}

function channelsLast(l: LayerDesc): void {
  const df = get(l.config, "data_format");
  if (df !== undefined && df !== null && df !== "channels_last") throw unsupported(l, `data_format ${quoted(df)} (only channels_last)`);
}

function activationOf(l: LayerDesc, key = "activation"): Activation {
  const a = get(l.config, key);
  if (a === undefined || a === null) return { kind: "linear" };
  if (typeof a !== "string") throw unsupported(l, `${key} ${show(a).slice(0, 120)} (only named Keras activations)`);
  const act = Object.prototype.hasOwnProperty.call(KERAS_ACTIVATIONS, a) ? KERAS_ACTIVATIONS[a] : undefined;
  if (!act) throw unsupported(l, `${key} '${a}'`);
  return { ...act };
}

function num(l: LayerDesc, key: string, dflt: number | null): number | null {
  const v = get(l.config, key);
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v)) throw unsupported(l, `${key} ${show(v)} is not a finite number`);
  return v;
}

interface Converted {
  op: NodeOp;
  channels?: number;
  /** Weight names this layer consumed. */
  uses: string[];
}

/** Converts one layer (shapes are checked by the caller's inference). */
function convertLayer(l: LayerDesc, tensors: Map<string, DecodedTensor>, inputShape?: Json): Converted {
  const c = l.config;
  switch (l.className) {
    case "InputLayer": {
      const s = inputShape ?? get(c, "batch_input_shape") ?? get(c, "batch_shape");
      if (!Array.isArray(s) || s.length !== 4) throw unsupported(l, `input shape ${show(s)} (need [batch, H, W, C] images)`);
      const ch = s[3];
      if (typeof ch !== "number") throw unsupported(l, `input channel count ${show(ch)} (must be fixed)`);
      const dt = get(c, "dtype");
      if (dt !== undefined && dt !== null && dt !== "float32") throw unsupported(l, `input dtype ${quoted(dt)} (only float32)`);
      return { op: { op: "input" }, channels: ch, uses: [] };
    }
    case "Conv2D": {
      channelsLast(l);
      const [kh, kw] = pair(l, "kernel_size", NaN);
      const strides = pair(l, "strides", 1);
      const dil = pair(l, "dilation_rate", 1);
      const groups = num(l, "groups", 1);
      const padding = get(c, "padding") ?? "valid";
      const filters = get(c, "filters");
      if (kh !== kw) throw unsupported(l, `kernel_size [${kh}, ${kw}] (only square kernels)`);
      if (!(kh >= 1) || kh % 2 === 0) throw unsupported(l, `kernel_size ${kh} (only odd sizes; even kernels pad asymmetrically)`);
      if (strides[0] !== 1 || strides[1] !== 1) throw unsupported(l, `strides [${strides}] (only 1)`);
      if (dil[0] !== 1 || dil[1] !== 1) throw unsupported(l, `dilation_rate [${dil}] (only 1)`);
      if (groups !== 1) throw unsupported(l, `groups ${groups} (only 1)`);
      if (padding !== "same" && !(padding === "valid" && kh === 1)) {
        throw unsupported(l, `padding ${quoted(padding)} with kernel ${kh} (only 'same'; 'valid' only for 1×1)`);
      }
      if (typeof filters !== "number" || !Number.isInteger(filters) || filters < 1) throw unsupported(l, `filters ${show(filters)}`);
      const useBias = get(c, "use_bias") ?? true;
      if (typeof useBias !== "boolean") throw unsupported(l, `use_bias ${show(useBias)}`);
      const activation = activationOf(l);
      const kName = `${l.name}/kernel`;
      const kt = tensors.get(kName);
      if (!kt) throw fmt(`layer '${l.name}' (Conv2D): weight '${kName}' is missing from the weights manifest`);
      const ks = kt.shape;
      if (ks.length !== 4 || ks[0] !== kh || ks[1] !== kw || ks[3] !== filters) {
        throw fmt(`layer '${l.name}' (Conv2D): weight '${kName}' has shape [${ks}], config says [${kh}, ${kw}, cin, ${filters}]`);
      }
      const uses = [kName];
      let bias: Float32Array | null = null;
      if (useBias) {
        const bName = `${l.name}/bias`;
        const bt = tensors.get(bName);
        if (!bt) throw fmt(`layer '${l.name}' (Conv2D): weight '${bName}' is missing from the weights manifest`);
        if (bt.shape.length !== 1 || bt.shape[0] !== filters) {
          throw fmt(`layer '${l.name}' (Conv2D): weight '${bName}' has shape [${bt.shape}], expected [${filters}]`);
        }
        bias = bt.values;
        uses.push(bName);
      }
      const op: NodeOp = { op: "conv2d", k: kh, cin: ks[2], cout: filters, weights: kt.values, bias, activation };
      const bq = useBias ? tensors.get(`${l.name}/bias`)?.quant : undefined;
      if (kt.quant || bq) op.sourceQuant = { ...(kt.quant ? { kernel: kt.quant } : {}), ...(bq ? { bias: bq } : {}) };
      return { op, uses };
    }
    case "BatchNormalization": {
      // Inference form y = γ·(x − μ)/√(σ² + ε) + β, imported as a 1×1 conv with the diagonal kernel
      // s = γ/√(σ² + ε) and bias β − μ·s (every engine runs it as is), tagged with γ and β for
      // BN-based filter pruning; graph/batchnorm.ts foldBatchNorm folds it into a preceding conv.
      const axis = get(c, "axis") ?? -1;
      const ax = Array.isArray(axis) && axis.length === 1 ? axis[0] : axis;
      if (ax !== -1 && ax !== 3) throw unsupported(l, `axis ${show(axis)} (only the channel axis, -1 or 3)`);
      const eps = num(l, "epsilon", 1e-3)!;
      if (!(eps >= 0)) throw unsupported(l, `epsilon ${eps}`);
      const center = get(c, "center") ?? true, scale = get(c, "scale") ?? true;
      if (typeof center !== "boolean" || typeof scale !== "boolean") throw unsupported(l, `center ${show(center)} / scale ${show(scale)}`);
      const uses: string[] = [];
      const take = (w: string): Float32Array => {
        const key = `${l.name}/${w}`;
        const t = tensors.get(key);
        if (!t) throw fmt(`layer '${l.name}' (BatchNormalization): weight '${key}' is missing from the weights manifest`);
        if (t.shape.length !== 1) throw fmt(`layer '${l.name}' (BatchNormalization): weight '${key}' has shape [${t.shape}], expected [channels]`);
        uses.push(key);
        return t.values;
      };
      const mean = take("moving_mean"), variance = take("moving_variance");
      const C = mean.length;
      const gamma = scale ? take("gamma") : new Float32Array(C).fill(1);
      const beta = center ? take("beta") : new Float32Array(C);
      if (variance.length !== C || gamma.length !== C || beta.length !== C) throw fmt(`layer '${l.name}' (BatchNormalization): gamma/beta/mean/variance lengths differ`);
      const w = new Float32Array(C * C), b = new Float32Array(C);
      for (let i = 0; i < C; i++) {
        if (!(variance[i] + eps > 0)) throw new LowbitError("E_RANGE", `layer '${l.name}' (BatchNormalization): variance + epsilon of channel ${i} is ${variance[i] + eps}`);
        // Same operation order as tfjs' batchNorm: (x − μ)·(γ/√(σ² + ε)) + β, here s·x + (β − μ·s).
        const sc = Math.fround(gamma[i] / Math.sqrt(variance[i] + eps));
        w[i * C + i] = sc;
        b[i] = Math.fround(beta[i] - mean[i] * sc);
      }
      const op: NodeOp = { op: "conv2d", k: 1, cin: C, cout: C, weights: w, bias: b, activation: { kind: "linear" },
        batchNorm: { gamma: Float32Array.from(gamma), beta: Float32Array.from(beta) } };
      return { op, uses };
    }
    case "Activation":
      return { op: { op: "activation", activation: activationOf(l) }, uses: [] };
    case "ReLU": {
      const maxValue = num(l, "max_value", null);
      const slope = num(l, "negative_slope", 0)!;
      const threshold = num(l, "threshold", 0)!;
      if (threshold !== 0) throw unsupported(l, `threshold ${threshold} (only 0)`);
      if (maxValue === null && slope === 0) return { op: { op: "activation", activation: { kind: "relu" } }, uses: [] };
      if (maxValue === 6 && slope === 0) return { op: { op: "activation", activation: { kind: "relu6" } }, uses: [] };
      if (maxValue === null) return { op: { op: "activation", activation: { kind: "leaky_relu", alpha: slope } }, uses: [] };
      throw unsupported(l, `max_value ${maxValue} with negative_slope ${slope} (only relu, relu6, leaky)`);
    }
    case "LeakyReLU": {
      // Keras 2 calls the slope `alpha`, Keras 3 `negative_slope`; both default to 0.3.
      const alpha = num(l, "negative_slope", null) ?? num(l, "alpha", 0.3)!;
      return { op: { op: "activation", activation: { kind: "leaky_relu", alpha } }, uses: [] };
    }
    case "ELU":
      return { op: { op: "activation", activation: { kind: "elu", alpha: num(l, "alpha", 1)! } }, uses: [] };
    case "Add":
      return { op: { op: "add" }, uses: [] };
    case "Concatenate": {
      const axis = get(c, "axis") ?? -1;
      if (axis !== -1 && axis !== 3) throw unsupported(l, `axis ${show(axis)} (only the channel axis, -1 or 3)`);
      return { op: { op: "concat" }, uses: [] };
    }
    case "MultiplyBeta": {
      // The JS layer ignores its config and multiplies by 0.2; a config that says otherwise
      // would make the file and the reference runtime disagree, so refuse it.
      const beta = num(l, "beta", MULTIPLY_BETA);
      if (beta !== MULTIPLY_BETA) throw unsupported(l, `beta ${beta} (the MultiplyBeta layer hard-codes ${MULTIPLY_BETA})`);
      return { op: { op: "scale", factor: MULTIPLY_BETA }, uses: [] };
    }
    case "UpSampling2D": {
      channelsLast(l);
      const [a, b] = pair(l, "size", 2);
      const interp = get(c, "interpolation") ?? "nearest";
      if (interp !== "nearest" && interp !== "bilinear") throw unsupported(l, `interpolation ${quoted(interp)} (only nearest and bilinear)`);
      if (a !== b || a < 1) throw unsupported(l, `size [${a}, ${b}] (only equal positive factors)`);
      // tfjs-layers runs 'bilinear' as tf.image.resizeBilinear(x, size) with alignCorners and
      // halfPixelCenters false: the asymmetric rule x_in = x_out / s.
      if (interp === "bilinear") return { op: { op: "upsample_bilinear", factor: a, mode: "asymmetric" }, uses: [] };
      return { op: { op: "upsample_nearest", factor: a }, uses: [] };
    }
    default: {
      const m = /^PixelShuffle(\d+)x$/.exec(l.className);
      if (m) {
        const s = Number(m[1]);
        const cs = num(l, "scale", s);
        if (cs !== s) throw unsupported(l, `config scale ${cs} contradicts the class name (×${s})`);
        if (s < 1) throw unsupported(l, `scale ${s}`);
        return { op: { op: "depth_to_space", block: s }, uses: [] };
      }
      if (l.className === "Lambda") throw unsupported(l, "Lambda layers carry Python code and cannot be imported");
      throw unsupported(l, "layer class is not supported");
    }
  }
}

function refKey(r: LayerRef, user: string, byName: Map<string, LayerDesc>): LayerDesc {
  const d = byName.get(r.layer);
  if (!d) throw fmt(`layer '${user}' takes its input from '${r.layer}', which is not a layer of this model`);
  if (r.nodeIndex !== 0) {
    throw new LowbitError("E_UNSUPPORTED_LAYER", `layer '${user}' uses call #${r.nodeIndex} of '${r.layer}' (shared layers are not supported)`);
  }
  if (r.tensorIndex !== 0) throw fmt(`layer '${user}' uses output #${r.tensorIndex} of single-output layer '${r.layer}'`);
  return d;
}

export interface TopologyToGraphOptions {
  name?: string;
}

/**
 * Builds the IR graph from a parsed topology and decoded tensors. Only layers the output depends
 * on become nodes; they keep the file's layer order when that order is topological (it is for
 * Keras files), else a depth-first topological order. Every manifest tensor must be consumed.
 */
export function topologyToGraph(t: ModelTopology, tensors: Map<string, DecodedTensor>, opts: TopologyToGraphOptions = {}): Graph {
  const byName = new Map<string, LayerDesc>();
  for (const l of t.layers) {
    if (byName.has(l.name)) throw fmt(`two layers are named '${l.name}'`);
    byName.set(l.name, l);
  }
  // Sequential models without an explicit InputLayer: synthesize one.
  if (t.sequentialInputShape) {
    const inL: LayerDesc = { index: -1, name: t.inputs[0].layer, className: "InputLayer", config: Object.create(null), inbound: [] };
    if (byName.has(inL.name)) throw fmt(`layer name '${inL.name}' is reserved for the synthesized input`);
    byName.set(inL.name, inL);
  }
  if (t.outputs.length !== 1) throw new LowbitError("E_UNSUPPORTED_LAYER", `model has ${t.outputs.length} outputs (only single-output image models)`);
  if (t.inputs.length !== 1) throw new LowbitError("E_UNSUPPORTED_LAYER", `model has ${t.inputs.length} inputs (only single-input image models)`);
  const inputLayer = refKey(t.inputs[0], "input_layers", byName);
  const outputLayer = refKey(t.outputs[0], "output_layers", byName);

  // Depth-first from the output: reachability, dangling refs, cycles (grey = on the stack).
  const state = new Map<string, 1 | 2>();
  const post: LayerDesc[] = [];
  const stack: { l: LayerDesc; i: number }[] = [{ l: outputLayer, i: 0 }];
  state.set(outputLayer.name, 1);
  while (stack.length) {
    const top = stack[stack.length - 1];
    if (top.i < top.l.inbound.length) {
      const p = refKey(top.l.inbound[top.i++], top.l.name, byName);
      const s = state.get(p.name);
      if (s === 1) {
        const cyc = stack.slice(stack.findIndex((f) => f.l === p)).map((f) => f.l.name);
        throw fmt(`the layer graph has a cycle: ${[...cyc, p.name].join(" ← ")} (A ← B: B feeds A)`);
      }
      if (s === undefined) {
        state.set(p.name, 1);
        stack.push({ l: p, i: 0 });
      }
    } else {
      state.set(top.l.name, 2);
      post.push(top.l);
      stack.pop();
    }
  }
  let order = [...post].sort((a, b) => a.index - b.index);
  const pos = new Map(order.map((l, i) => [l.name, i]));
  if (!order.every((l, i) => l.inbound.every((r) => pos.get(r.layer)! < i))) order = post;

  const ids = new Map<string, number>();
  const nodes: Node[] = [];
  const used = new Set<string>();
  for (const l of order) {
    if (l.className === "InputLayer" && l !== inputLayer) {
      throw fmt(`the output depends on InputLayer '${l.name}', which is not the model's declared input '${inputLayer.name}'`);
    }
    if (l.className !== "InputLayer" && l.inbound.length === 0) throw fmt(`layer '${l.name}' (${l.className}) has no inputs`);
    if (l.className === "InputLayer" && l.inbound.length) throw fmt(`InputLayer '${l.name}' has inbound nodes`);
    const inputs = l.inbound.map((r) => ids.get(r.layer)!);
    const inNodes = inputs.map((i) => nodes[i]);
    const cv = convertLayer(
      l,
      tensors,
      l.index === -1 && t.sequentialInputShape ? (t.sequentialInputShape as Json) : undefined,
    );
    for (const u of cv.uses) used.add(u);
    const shape = inferNodeShape({ ...cv.op, name: l.name, channels: cv.channels }, inNodes);
    const id = nodes.length;
    nodes.push({ ...cv.op, id, name: l.name, inputs, ...shape } as Node);
    ids.set(l.name, id);
  }
  if (!ids.has(inputLayer.name)) throw fmt(`the output '${outputLayer.name}' does not depend on the input '${inputLayer.name}'`);
  for (const name of tensors.keys()) {
    if (!used.has(name)) {
      const layer = name.includes("/") ? name.slice(0, name.lastIndexOf("/")) : name;
      throw fmt(
        byName.has(layer)
          ? `weight '${name}' belongs to layer '${layer}', which does not use it (or is not on the path to the output)`
          : `weight '${name}' matches no layer of the model`,
      );
    }
  }
  const out = ids.get(outputLayer.name)!;
  const g: Graph = {
    nodes,
    input: ids.get(inputLayer.name)!,
    output: out,
    meta: { name: opts.name ?? t.modelName ?? "model", scale: nodes[out].spatial, inputRange: [0, 255], outputRange: [0, 255] },
  };
  validateGraph(g, { skipFiniteCheck: true });
  g.meta.receptiveRadius = receptiveRadius(g);
  return g;
}

/** Kinds of activations the importer can produce (for docs/tests). */
export const SUPPORTED_KERAS_ACTIVATIONS: readonly string[] = Object.keys(KERAS_ACTIVATIONS);
export type { ActivationKind };
