/**
 * Static post-training quantization of a whole SR network (the FQSR scope:
 * every conv incl. head, tail and upsampler, every skip add, concat,
 * MultiplyBeta, upsampling and pixel shuffle run on integer codes).
 *
 * A QuantizedModel holds what is decided offline:
 * - per tensor (node of the optimized graph): its domain (8-bit codes or
 *   f32), its activation bit-width and its clipping range [lo, hi] from the
 *   calibration statistics and the range method;
 * - per quantized conv: symmetric per-output-channel weight codes.
 * Scales, zero-points, int32 biases and requantization multipliers follow
 * from these at compile time (compile-q8.ts), where tensors that share a
 * buffer (concat by slices) also share one grid.
 *
 * Choices (documented here because the methods leave them open):
 * - The image input is quantized at 8 bits whatever `actBits` is: pixels are
 *   8-bit, so this is lossless (FQSR also leaves the input image unquantized).
 * - The network output is dequantized from 8-bit codes on exactly the model's
 *   output range (the result is clipped to it and rounded to 8 bits anyway).
 * - A tensor's bit-width is the largest `actBits` among the quantized convs
 *   that read it (per-layer configs can differ), else the global `actBits`.
 * - Activations are asymmetric unsigned codes (0..2^b−1, zero-point exact);
 *   weights are symmetric signed codes per output channel.
 * - Convs with a non-piecewise-linear fused activation (sigmoid, tanh…) stay
 *   FP32 (no integer LUT activation yet); so do layers the config keeps.
 * - Residual stream (QuantConfig.residualBits = 16, off by default): on deep
 *   residual nets the trunk is rounded onto an 8-bit grid at every add, and
 *   the error accumulates (esrgan-thick: 41 adds; accumulated SQNR of the trunk
 *   falls block by block). With 16 bits every integer add whose readers are all
 *   integer ops stores its sum as u16 codes; adds and concats read them
 *   directly (one rounding, onto their own grid), other readers — the convs —
 *   read one 8-bit copy on the grid `method` gives the tensor at 8 bits. Every
 *   conv still reads 8-bit codes (A8) with 8-bit weights; only the sums are
 *   wider. Simulated first (bench/channel-grid-sim.ts --exact-adds).
 */
import type { Graph, Node } from "../graph/ir.ts";
import { subpixelMerge } from "../graph/passes.ts";
import { LowbitError, check } from "../runtime/errors.ts";
import type { Calibration } from "./calibrate.ts";
import { quantConfig, resolveLayers, formatBits, type QuantConfig, type QuantConfigInput } from "./config.ts";
import { minmaxRange, mseRange, percentileRange, type ValueRange } from "./range.ts";
import { quantizeWeights } from "./weights.ts";
import { activationBytesPerPixel, type CompilableModel } from "../engine/upscaler-api.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { Q8Plan, type Q8PlanOptions } from "../graph/compile-q8.ts";

export type Domain = "q8" | "f32";

export interface QuantTensor {
  domain: Domain;
  /** Activation bits of the codes (q8 domain; for f32 tensors: bits if a consumer quantizes it). */
  bits: number;
  /** Clipping range (real values) the codes cover. */
  range: ValueRange;
  /**
   * A 16-bit residual-stream tensor (bits 16, QuantConfig.residualBits): the bits and range of the 8-bit copy that
   * its readers other than adds and concats get (the range `method` would have given the tensor at 8 bits).
   */
  narrow?: { bits: number; range: ValueRange };
}

export interface QuantConvWeights {
  /** Corrected f32 bias (bias correction); absent = the graph node's bias. */
  bias?: Float32Array;
  bits: number;
  /** Symmetric codes, HWIO like the float kernel. */
  codes: Int8Array;
  /** Per output channel. */
  scales: Float32Array;
}

export class QuantizedModel implements CompilableModel {
  readonly graph: Graph;
  readonly tensors: QuantTensor[];
  readonly weights: (QuantConvWeights | null)[];
  readonly config: string;
  readonly quantConfig: QuantConfig;

  constructor(graph: Graph, tensors: QuantTensor[], weights: (QuantConvWeights | null)[], cfg: QuantConfig) {
    this.graph = graph;
    this.tensors = tensors;
    this.weights = weights;
    this.quantConfig = cfg;
    const keep = cfg.keepFp32?.length ? ` keep-fp32:${cfg.keepFp32.join(",")}` : "";
    const per = Object.entries(cfg.perLayer ?? {});
    const layers = per.length ? ` layers:${per.map(([k, v]) => `${k}=${typeof v === "string" ? v : formatBits({ weightBits: v.weightBits ?? cfg.weightBits, actBits: v.actBits ?? cfg.actBits })}`).join(",")}` : "";
    const res = cfg.residualBits === 16 ? " residual:16" : "";
    this.config = `${formatBits({ weightBits: cfg.weightBits, actBits: cfg.actBits })} ${cfg.trained ?? cfg.method}${keep}${layers}${res}`;
  }

  /** Options every compiled plan gets (see Q8PlanOptions). */
  planOptions: Q8PlanOptions = {};

  compile(rt: Runtime, maxW: number, maxH: number): Q8Plan {
    return new Q8Plan(rt, this, maxW, maxH, this.planOptions);
  }

  /** Activation bytes per LR pixel (codes 1 byte, FP32 islands 4; conversions not counted). */
  bytesPerPixel(): number {
    return (this.bpp ||= activationBytesPerPixel(this.graph, (id) => (this.tensors[id].domain === "q8" ? (this.tensors[id].bits > 8 ? 2 : 1) : 4)));
  }
  private bpp = 0;

  /** Bytes of the quantized weights as stored (int4 packed two per byte) plus f32 layers and biases. */
  get weightBytes(): number {
    let b = 0;
    for (const n of this.graph.nodes) {
      if (n.op !== "conv2d") continue;
      const q = this.weights[n.id];
      b += q ? Math.ceil((q.codes.length * (q.bits <= 4 ? 4 : 8)) / 8) + 4 * q.scales.length + 4 * n.cout : 4 * (n.weights.length + n.cout);
    }
    return b;
  }
}

const PWL = new Set(["linear", "relu", "relu6"]);

/**
 * Which tensors of an optimized graph a static model quantizes, and how (shared by quantizeModel and
 * the trained methods that learn ranges for exactly these tensors, src/methods/fqsr).
 */
export interface TensorPlan {
  domain: Domain[];
  /** Activation bits per tensor (8 for the input and the output chain). */
  bits: number[];
  /** The output chain: pinned to the model's output range at 8 bits (no range to choose). */
  pinned: Set<number>;
  /** Grid groups (joinConcatGrids): tensors with the same root share one grid. Root = own id when alone. */
  root: number[];
  /** Adds whose sums are stored as 16-bit codes (QuantConfig.residualBits 16); `bits` holds their 8-bit copies' bits. */
  residual: Set<number>;
}

/** The tensor plan of `cfg` on the optimized graph `g`. */
export function planTensors(g: Graph, config: QuantConfig): TensorPlan {
  const cfg = config;
  const layers = new Map(resolveLayers(cfg, g).map((l) => [l.id, l]));
  const n = g.nodes.length;
  const domain: Domain[] = new Array(n);
  for (const node of g.nodes) domain[node.id] = nodeDomain(node, domain, layers);
  // Bits per tensor: the largest actBits among quantized convs reading it, else the global actBits.
  const bits = new Array<number>(n).fill(0);
  for (const node of g.nodes) {
    if (node.op !== "conv2d") continue;
    const l = layers.get(node.id)!;
    if (l.bits === "fp32" || domain[node.id] !== "q8") continue;
    const x = node.inputs[0];
    bits[x] = Math.max(bits[x], l.bits.actBits);
  }
  for (const node of g.nodes) {
    bits[node.id] ||= cfg.actBits;
    if (node.id === g.output || node.id === g.input) bits[node.id] = 8;
  }
  // Data movement and clamps keep their input's grid: give them their input's bits.
  for (const node of g.nodes) {
    if (isGridPreserving(node) && domain[node.id] === "q8") bits[node.id] = bits[node.inputs[0]];
  }
  // The output is clipped to the model's output range and rounded to 8 bits anyway: an 8-bit grid
  // on exactly that range loses nothing beyond that rounding, while a calibrated range would be
  // coarser (raw outputs overshoot, e.g. −83..335 for legacy div2k) or clip highlights the
  // calibration images never reached.
  // Through a trailing pixel shuffle / upsample (grid-preserving), that is their producer's grid.
  const users = g.nodes.map(() => 0);
  for (const node of g.nodes) for (const i of node.inputs) users[i]++;
  const chain = [g.output];
  for (let id = g.output; isGridPreserving(g.nodes[id]) && users[g.nodes[id].inputs[0]] === 1; ) chain.push((id = g.nodes[id].inputs[0]));
  for (const id of chain) bits[id] = 8;
  const pinned = new Set(chain);
  const root = cfg.joinGrids !== false ? concatGridGroups(g, domain, bits, pinned) : g.nodes.map((node) => node.id);
  const residual = new Set<number>();
  if (cfg.residualBits === 16) {
    const readers = g.nodes.map(() => [] as number[]);
    for (const node of g.nodes) for (const i of node.inputs) readers[i].push(node.id);
    for (const node of g.nodes) {
      if (node.op !== "add" || domain[node.id] !== "q8" || pinned.has(node.id) || root[node.id] !== node.id) continue;
      if (readers[node.id].length > 0 && readers[node.id].every((r) => domain[r] === "q8")) residual.add(node.id);
    }
  }
  return { domain, bits, pinned, root, residual };
}

export interface QuantizeModelOptions {
  /**
   * Ranges by tensor id that replace the calibrated range method (e.g. clips learned by QAT). Tensors
   * absent here take `calib`'s statistics; grid-preserving ops take their input's range.
   */
  ranges?: ReadonlyMap<number, ValueRange>;
}

/** Quantizes the calibrated model with `config` ("w8a8", or options). */
export function quantizeModel(calib: Calibration, config: string | QuantConfigInput | QuantConfig, o: QuantizeModelOptions = {}): QuantizedModel {
  const cfg = typeof config === "object" && "weightBits" in config && "method" in config ? (config as QuantConfig) : quantConfig(config as string | QuantConfigInput);
  const g = calib.graph;
  const layers = new Map(resolveLayers(cfg, g).map((l) => [l.id, l]));
  const plan = planTensors(g, cfg);
  const domain = plan.domain;
  const tensors: QuantTensor[] = g.nodes.map((node) => ({ domain: domain[node.id], bits: plan.bits[node.id], range: [0, 0] }));
  for (const node of g.nodes) {
    const r = o.ranges?.get(node.id);
    if (r) {
      check(Number.isFinite(r[0]) && Number.isFinite(r[1]) && r[0] <= r[1], "E_RANGE", `range of '${node.name}' is [${r[0]}, ${r[1]}]`);
      tensors[node.id].range = [r[0], r[1]];
    } else tensors[node.id].range = chooseRange(calib, node.id, tensors[node.id].bits, cfg);
  }
  if (o.ranges) for (const node of g.nodes) if (isGridPreserving(node) && !o.ranges.has(node.id)) tensors[node.id].range = [...tensors[node.inputs[0]].range];
  const [ilo, ihi] = g.meta.inputRange;
  tensors[g.input].range = [ilo, ihi];
  for (const id of plan.pinned) tensors[id].range = [...g.meta.outputRange];
  // Members of a grid group share the union of their ranges (nothing representable is clipped).
  const lo = new Map<number, number>(), hi = new Map<number, number>(), size = new Map<number, number>();
  for (const node of g.nodes) {
    const r = plan.root[node.id], [a, b] = tensors[node.id].range;
    lo.set(r, Math.min(lo.get(r) ?? 0, a));
    hi.set(r, Math.max(hi.get(r) ?? 0, b));
    size.set(r, (size.get(r) ?? 0) + 1);
  }
  for (const node of g.nodes) {
    const r = plan.root[node.id];
    if (size.get(r)! > 1) tensors[node.id].range = [lo.get(r)!, hi.get(r)!];
  }
  // Residual stream at 16 bits: the sum keeps the calibrated min–max range with 2× headroom (no clipping needed:
  // the 16-bit step on it is still 65535 / 255 / 2 ≈ 128× finer than an 8-bit step on the min–max range), and the 8-bit copy that
  // convs read keeps the range `method` chose above.
  for (const id of plan.residual) {
    const t = tensors[id], mm = calib.tensors[id]?.minmax;
    const wide: ValueRange = mm && mm.count > 0 ? [2 * Math.min(0, mm.min), 2 * Math.max(0, mm.max)] : [...t.range];
    tensors[id] = { domain: "q8", bits: 16, range: o.ranges?.get(id) ?? wide, narrow: { bits: t.bits, range: t.range } };
  }

  const weights: (QuantConvWeights | null)[] = g.nodes.map((node) => {
    if (node.op !== "conv2d" || domain[node.id] !== "q8") return null;
    const l = layers.get(node.id)!;
    if (l.bits === "fp32") return null;
    const wb = l.bits.weightBits;
    const sp = node.subpixelOf;
    if (sp && wb < 8) {
      // Quantize the original HR kernel, then merge its codes exactly (integer sums of the taps
      // that land on one LR tap). When every sum fits int8 the layer keeps the original kernel's
      // b-bit error; quantizing the merged float kernel instead measured −0.73 dB on
      // esrgan-slim ×2 W4A8 (sums of up to 4 taps widen each channel's range).
      const cout0 = node.cout / (sp.block * sp.block);
      const q = quantizeWeights(sp.weights, cout0, wb, { method: cfg.weightMethod ?? "minmax" });
      const sums = subpixelMerge(new Int16Array(node.weights.length), q.codes, sp.k, sp.block, node.cin, cout0);
      if (sums.every((v) => v >= -127 && v <= 127)) {
        const scales = new Float32Array(node.cout);
        for (let ph = 0; ph < sp.block * sp.block; ph++) scales.set(q.params.scale, ph * cout0);
        return { bits: 8, codes: Int8Array.from(sums), scales };
      }
    }
    const q = quantizeWeights(node.weights, node.cout, wb, { method: cfg.weightMethod ?? "minmax" });
    return { bits: wb, codes: q.codes, scales: q.params.scale };
  });
  if (cfg.biasCorrection !== false) {
    for (const node of g.nodes) {
      const qw = weights[node.id];
      if (node.op === "conv2d" && qw) qw.bias = correctedBias(node, qw, calib.tensors[node.inputs[0]]?.channelMean);
    }
  }
  return new QuantizedModel(g, tensors, weights, cfg);
}

/**
 * b'[o] = b[o] − Σ_{taps, c} (ŵ − w)[tap, c, o]·E[x_c]: the bias absorbs the mean output shift the
 * weight rounding causes (SR activations are mostly post-ReLU, E[x] > 0, so rounding errors of one
 * output channel add up instead of cancelling: psnr-small ×2 W4A8 showed +18…+38 levels of DC shift).
 * Borders, where taps fall on padding, are ignored (the interior dominates).
 */
function correctedBias(node: Extract<Node, { op: "conv2d" }>, qw: QuantConvWeights, mean: Float64Array | undefined): Float32Array {
  const { cin, cout, weights } = node;
  const out = new Float32Array(cout);
  if (node.bias) out.set(node.bias);
  if (!mean) return out;
  const corr = new Float64Array(cout);
  for (let i = 0; i < weights.length; i++) {
    const o = i % cout;
    const c = Math.floor(i / cout) % cin;
    corr[o] += (Math.fround(qw.codes[i]) * qw.scales[o] - weights[i]) * mean[c];
  }
  for (let o = 0; o < cout; o++) out[o] = out[o] - corr[o];
  return out;
}

/**
 * Concat joins without double rounding. A concat's codes live on its own grid, so each input is
 * requantized into it (compile-q8 "per-tensor" concats): y = z_c + round((s_i/s_c)·(x_i − z_i)).
 * Two cases pay that second rounding for nothing, and here their tensors get one grid (the union
 * of the members' ranges, so nothing that was representable is clipped):
 * - a conv output whose only reader is a concat (a dense block's convs, RDN F_d_k): the conv
 *   then requantizes its int32 accumulators straight onto the concat's grid, and the copy into
 *   the concat is a byte copy — one rounding instead of two;
 * - a concat feeding a concat (RDN RDB_Concat_d_1 ⊂ _d_2 ⊂ _d_3): with one grid the nested copies
 *   are byte copies; without, the block input was rounded once per nesting level (4 times for
 *   the trunk in a 3-conv RDB: own grid, then three concat grids).
 * The price is a slightly wider step for a member whose own range is narrower than the union
 * (the nested concat, read by its own conv). Add outputs read only by a concat are not joined:
 * the last RDB output LRL_10 has a wider range than the 640-channel LRLs_Concat, and the union
 * coarsened all ten slices (measured 45.28 → 45.15 dB below). Measured on 96² LR centre crops
 * (aero1, building, fruits, messi5; fidelity to FP32, W8A8 percentile): psnr-small ×2
 * 45.06 → 45.28 dB, esrgan-slim ×2 51.11 → 51.30 dB. Members must share domain (q8) and bits; tensors of the
 * output chain (pinned to the output range) and grid-preserving ops (their grid is their input's)
 * are never joined. Returns each tensor's group root.
 */
function concatGridGroups(g: Graph, domain: readonly Domain[], bits: readonly number[], pinned: Set<number>): number[] {
  const users = g.nodes.map(() => 0);
  for (const node of g.nodes) for (const i of node.inputs) users[i]++;
  const parent = g.nodes.map((n) => n.id);
  const find = (x: number): number => {
    while (parent[x] !== x) x = parent[x] = parent[parent[x]];
    return x;
  };
  const joinable = (id: number) => domain[id] === "q8" && !pinned.has(id) && !isGridPreserving(g.nodes[id]) && g.nodes[id].op !== "input";
  for (const node of g.nodes) {
    if (node.op !== "concat" || !joinable(node.id)) continue;
    for (const i of node.inputs) {
      const src = g.nodes[i];
      if (!joinable(i) || bits[i] !== bits[node.id]) continue;
      if (src.op === "concat" || (src.op === "conv2d" && users[i] === 1)) parent[find(i)] = find(node.id);
    }
  }
  return g.nodes.map((n) => find(n.id));
}

/**
 * Ops whose output codes live on their input's grid: moved or clamped, or (bilinear) convex
 * combinations of input codes, rounded on the same grid.
 */
export function isGridPreserving(node: Node): boolean {
  return node.op === "upsample_nearest" || node.op === "upsample_bilinear" || node.op === "depth_to_space" || node.op === "space_to_depth" || node.op === "shift" || node.op === "activation";
}

function nodeDomain(node: Node, domain: Domain[], layers: Map<number, { bits: unknown }>): Domain {
  switch (node.op) {
    case "input":
      return "f32";
    case "conv2d":
      return layers.get(node.id)!.bits === "fp32" || !PWL.has(node.activation.kind) ? "f32" : "q8";
    case "activation":
      return PWL.has(node.activation.kind) && domain[node.inputs[0]] === "q8" ? "q8" : "f32";
    case "upsample_nearest":
    case "upsample_bilinear":
    case "depth_to_space":
    case "space_to_depth":
    case "shift":
    case "prelu":
      return domain[node.inputs[0]];
    case "squeeze_excite":
      // FP32 island: mean → FC → sigmoid → per-channel gate (compile-q8.ts); the conv after it quantizes.
      return "f32";
    case "add":
    case "concat":
    case "scale":
      return node.inputs.every((i) => domain[i] === "f32") ? "f32" : "q8";
    default:
      throw new LowbitError("E_UNSUPPORTED_LAYER", `layer '${(node as Node).name}': no quantized lowering for '${(node as Node).op}'`);
  }
}

function chooseRange(calib: Calibration, id: number, bits: number, cfg: QuantConfig): ValueRange {
  const t = calib.tensors[id];
  if (!t || t.minmax.count === 0) return [0, 0];
  switch (cfg.method) {
    case "minmax":
      return minmaxRange(t.minmax);
    case "percentile":
      return percentileRange(t.histogram, { upper: cfg.percentile ?? 99.99 });
    case "mse":
      return mseRange(t.histogram, bits);
    default:
      throw new LowbitError("E_ARGUMENT", `unknown range method '${String(cfg.method)}'`);
  }
}
