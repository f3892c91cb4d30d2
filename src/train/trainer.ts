/**
 * The training engine: forward, reverse-mode backward and parameter updates over a TrainGraph,
 * one sample at a time, every tensor in the WASM arena.
 *
 * Memory (one arena region, sized once for the largest patch maxW×maxH):
 *   [forward tensors | gradient tensors | fake-quant buffers | packed weights | temps | scratch]
 * - Forward tensors use the inference layout (src/graph/memory-plan.ts: a concat's inputs are
 *   channel slices of its buffer) but every buffer stays live: backward reads conv inputs (for
 *   ∂W), ReLU outputs (for the mask) and fake-quant inputs (STE mask, range gradients).
 * - Gradient tensors mirror the forward layout exactly, so the gradient of a concat's input IS its
 *   channel slice of the concat's gradient: the backward of an aliased concat is free, and every
 *   consumer of a tensor accumulates into the same slice.
 * Memory is therefore bounded by one sample (≈ 2× the activations of a patch); a batch is a loop
 * of forward/backward calls accumulating into the same GradBuffers.
 *
 * Backward order is reverse topological. Gradient buffers are zeroed before each backward pass;
 * a kernel that can only write (the input-gradient conv, ReLU/STE masks, space-to-depth,
 * upsample backward) writes straight into its destination when that memory has not been touched
 * yet in this pass (decided statically per seed set), else into a temp that is added.
 *
 * The step-level API lets a caller run several backward passes after one forward — e.g. ODM's
 * reconstruction loss and its regularizer into two GradBuffers — and combine the per-tensor
 * gradients (`gradients()`) before `step()`.
 */
import type { Graph, Node } from "../graph/ir.ts";
import { planMemory, assignOffsets, type MemoryPlan } from "../graph/memory-plan.ts";
import { lowerF32Node, type Step } from "../graph/compile-f32.ts";
import { ArenaRegion } from "../runtime/arena.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import { f32ConvPackedLength, f32ConvScratchBytes, packF32Conv } from "../kernels/f32-conv.ts";
import { packF32ConvBackwardInput } from "../kernels/grad-conv.ts";
import { paramName, type ParamKind, type TrainConvLayer, type TrainGraph } from "./graph.ts";
import { Adam, type AdamOptions, type Param } from "./adam.ts";
import { fakeQuantStep, type TrainExports } from "./kernels.ts";
import { fakeQuantWeightsOdd, fakeQuantWeightsOddBackward, percentile } from "./quant-math.ts";
import { fakeQuantizeWeights } from "../quant/weights.ts";
import { affineParams } from "../quant/params.ts";

/** A tensor of the current sample in the arena: element (p, c) at f32 index ptr/4 + p·stride + c. */
export interface TensorRef {
  ptr: number;
  stride: number;
  w: number;
  h: number;
  pixels: number;
  channels: number;
}

/** Where a backward pass starts: a node's output (by name or id), or the fake-quantized input of a conv. */
export type SeedTarget = string | number | { quantized: string };

export interface Seed {
  at: SeedTarget;
  /** ∂L/∂tensor: a dense Float32Array (pixels × channels) or a strided arena tensor. */
  grad: Float32Array | { ptr: number; stride: number };
  /** Multiplier (default 1). Seeds at the same target add. */
  weight?: number;
}

/**
 * A caller-defined activation quantizer on a conv input (CADyQ's bit selector, src/methods/cadyq/train.ts),
 * for methods whose quantizer is not the engine's uniform [l, u] grid. It owns its parameters and their
 * gradient accumulators; the trainer only gives it the conv input and the gradient at the conv's input.
 * Arena byte offsets; x is strided (pixel stride in floats), x̂ and ∂L/∂x̂ are dense (stride = channels).
 */
export interface ActQuantHook {
  /** Writes x̂ = q(x) (dense) for one sample of w×h pixels at the conv's resolution. */
  forward(x: number, xStride: number, out: number, pixels: number, channels: number, w: number, h: number): void;
  /**
   * Given ∂L/∂x̂ (dense), accumulates the hook's own parameter gradients and, when dx ≠ 0, WRITES
   * ∂L/∂x (stride dxStride; not accumulated: the trainer adds it where needed).
   */
  backward(x: number, xStride: number, dOut: number, dx: number, dxStride: number, pixels: number, channels: number): void;
}

export interface TrainerOptions {
  /** Largest LR patch the trainer runs (buffers are sized for it). */
  maxW: number;
  maxH: number;
  /** Adam settings (lr, groups, schedule). */
  optimizer?: AdamOptions;
  /**
   * Compute weight/bias gradients (default true). false trains only quantizer parameters (ranges,
   * offsets, γ): ∂W is then skipped except on weight-quantized layers, whose γ needs it.
   */
  trainWeights?: boolean;
  /** Forward only (a teacher): no gradient buffers. */
  forwardOnly?: boolean;
  /** Custom activation quantizers by conv name (layers without the graph's own act fake-quant). */
  actHooks?: ReadonlyMap<string, ActQuantHook>;
  /**
   * Weight λ of the tensor quantizers' calibration loss, λ·Σ_tensors mean|x − x̂| (FQSR: 0.3,
   * fqsr.md §2), added in every backward pass; default 0. Its value is GradBuffers.quantLoss.
   */
  quantLoss?: number;
}

/** Raw gradient accumulators of one or more backward passes (arena + f64 scalars). */
export class GradBuffers {
  readonly base: number;
  readonly bytes: number;
  /** Per act-quant layer: [Σ∂L/∂l, Σ∂L/∂u, Σ∂L/∂b] (b = log2 of the levels, trainer.bitGradient). */
  readonly scalars: Float64Array;
  /** Backward passes accumulated since the last zero(). */
  passes = 0;
  /** Σ of the tensor quantizers' calibration loss (TrainerOptions.quantLoss) over those passes. */
  quantLoss = 0;
  private readonly rt: Runtime;
  private readonly region: ArenaRegion;

  constructor(rt: Runtime, bytes: number, scalars: number) {
    this.rt = rt;
    this.region = new ArenaRegion(rt.arena);
    this.bytes = bytes;
    this.base = this.region.alloc(Math.max(bytes, 64));
    this.scalars = new Float64Array(scalars);
    this.zero();
  }

  zero(): void {
    this.rt.arena.f32.fill(0, this.base >> 2, (this.base + this.bytes) >> 2);
    this.scalars.fill(0);
    this.passes = 0;
    this.quantLoss = 0;
  }

  dispose(): void {
    this.region.free();
  }
}

interface ConvSlots {
  layer: TrainConvLayer;
  node: Extract<Node, { op: "conv2d" }>;
  /** Parameters. */
  w: Param;
  b: Param | null;
  range: Param | null;
  gamma: Param | null;
  scale: Param | null;
  shift: Param | null;
  /** Arena: packed forward / backward-input weights. */
  packed: number;
  packedBwd: number;
  /** Fake-quant buffers (dense, cin): XQ, or Z, ZQ, XH with offsets. */
  xq: number;
  z: number;
  zq: number;
  /** Offsets in the arena: α, β, 1/α, −β/α (cin each). */
  offA: number;
  /** Byte offsets inside GradBuffers. */
  gW: number;
  gB: number;
  gOff: number;
  /** Index of [dl, du, db] in GradBuffers.scalars (−1: none). */
  sIdx: number;
  /** Activation levels 2^b, read when a step runs (setActBits changes it between samples). */
  levels: number;
  /** Custom activation quantizer (TrainerOptions.actHooks), or null. */
  hook: ActQuantHook | null;
}

/** A tensor quantizer (TrainGraph.tensorQuant) in the arena. */
interface TensorQuantSlots {
  /** The clip parameter: [α] (full / half grid) or [l, u] (asymmetric). */
  clip: Param;
  grid: "full" | "half" | "asymmetric";
  levels: number;
  ids: number[];
  /** Index of [Σ∂L/∂l, Σ∂L/∂u] in GradBuffers.scalars. */
  sIdx: number;
  /** Fake-quantize on the deployed (nudged) grid. */
  nudge: boolean;
}

/** The clip [l, u] of a clip parameter. */
function clipRange(t: TensorQuantSlots): [number, number] {
  const v = t.clip.value;
  return t.grid === "asymmetric" ? [v[0], v[1]] : [t.grid === "full" ? -v[0] : 0, v[0]];
}

/**
 * The grid the fake quant runs on: the clip itself, or (nudge) the integer model's grid
 * affineParams(l, u) = [−z·s, (n − z)·s] with s = (max(u, 0) − min(l, 0))/n and the integer zero
 * point z. With z held constant (piecewise constant in l, u), the grid ends are linear in the clip:
 * ∂s/∂l = −[l < 0]/n, ∂s/∂u = [u > 0]/n, and J = [[∂l′/∂l, ∂l′/∂u], [∂u′/∂l, ∂u′/∂u]] maps the grid-end
 * gradients back to the clip (gradients()).
 */
function gridOf(t: TensorQuantSlots): { l: number; u: number; s: number; J: [number, number, number, number] } {
  const [l, u] = clipRange(t);
  if (!t.nudge) return { l, u, s: fakeQuantStep(l, u, t.levels), J: [1, 0, 0, 1] };
  const n = t.levels - 1;
  const p = affineParams(l, u, Math.log2(t.levels), { signed: false });
  const z = p.zeroPoint - p.qmin;
  const dsl = l < 0 ? -1 / n : 0, dsu = u > 0 ? 1 / n : 0;
  // The kernel gets the integer model's own step, and l′ = −z·s rounds like the kernel's z·s: the
  // zero code dequantizes to exactly 0 (ReLU masks downstream see a true zero).
  const s = p.scale, lo = -Math.fround(z * s);
  return { l: lo, u: Math.fround(lo + Math.fround(n * s)), s, J: [-z * dsl, -z * dsu, (n - z) * dsl, (n - z) * dsu] };
}

function dense(ptr: number, channels: number): { ptr: number; stride: number; channels: number } {
  return { ptr, stride: channels, channels };
}

export class Trainer {
  readonly rt: Runtime;
  readonly tg: TrainGraph;
  readonly graph: Graph;
  readonly maxW: number;
  readonly maxH: number;
  readonly params: Param[];
  readonly optimizer: Adam | null;
  readonly trainWeights: boolean;
  readonly forwardOnly: boolean;
  /** Sample size of the last forward. */
  private w = 0;
  private h = 0;
  private readonly k: TrainExports;
  private readonly region: ArenaRegion;
  private readonly mem: MemoryPlan;
  private readonly fwdBase: number;
  private readonly gradBase: number;
  private readonly tensorBytes: number;
  private readonly t1: number;
  private readonly t2: number;
  private readonly scratch: number;
  private readonly convs = new Map<number, ConvSlots>();
  /** Tensor quantizers, and per quantized node: its quantizer and the arena copy of x (dense, pre-quant). */
  private readonly tq: TensorQuantSlots[] = [];
  private readonly tqNode = new Map<number, { t: TensorQuantSlots; raw: number }>();
  private readonly quantLossWeight: number;
  private readonly paramIndex = new Map<string, Param>();
  private readonly quantSteps: Step[] = [];
  private readonly fpSteps: Step[] = [];
  private readonly gradBytes: number;
  private readonly scalarCount: number;
  private readonly reqGrad: Uint8Array;
  private readonly consumers: number[][];
  private readonly backwardCache = new Map<string, Array<(w: number, h: number, gb: GradBuffers) => void>>();
  private readonly seedBufs = new Map<number, number>();
  private readonly extra = new Map<string, number>();
  /**
   * Whether backward computes conv weight/bias gradients (default true). A caller training only
   * activation-side parameters for a while (AdaBM's range and bit epochs) turns it off: ∂W is
   * about a third of a backward pass. Weight-side gradients (∂W, ∂γ) then read as zero.
   */
  weightGrads = true;
  /** Which weights are packed: "quant", "fp", or null (stale). */
  private packedMode: "quant" | "fp" | null = null;
  private disposed = false;
  private forwardDone = false;

  constructor(rt: Runtime, tg: TrainGraph, o: TrainerOptions) {
    checkInt(o.maxW, 1, 1 << 14, "trainer maxW", "E_SHAPE");
    checkInt(o.maxH, 1, 1 << 14, "trainer maxH", "E_SHAPE");
    this.rt = rt;
    this.tg = tg;
    const g = (this.graph = tg.graph);
    this.maxW = o.maxW;
    this.maxH = o.maxH;
    this.trainWeights = o.trainWeights ?? true;
    this.forwardOnly = o.forwardOnly ?? false;
    this.k = rt.kernels<TrainExports>();
    check(typeof this.k.f32_conv_backward_weights_nhwc === "function", "E_NOT_INITIALIZED", "this WASM build has no gradient kernels");
    const N = g.nodes.length;
    const n0 = g.nodes[g.input], nOut = g.nodes[g.output];
    check(n0.channels === 3 && nOut.channels === 3, "E_SHAPE", `training needs an RGB → RGB model, got ${n0.channels} → ${nOut.channels} channels`);
    this.consumers = g.nodes.map(() => []);
    for (const n of g.nodes) for (const i of n.inputs) this.consumers[i].push(n.id);

    // Parameters (master copies in JS).
    this.params = [];
    const addParam = (layer: string, kind: ParamKind): Param | null => {
      const v = tg.init.get(paramName(layer, kind));
      if (!v) return null;
      const p: Param = { name: paramName(layer, kind), layer, kind, value: Float32Array.from(v) };
      this.params.push(p);
      this.paramIndex.set(p.name, p);
      return p;
    };

    // Memory plan: inference layout, every buffer live for the whole pass.
    // Tensor quantizers rewrite a tensor in place: no tensor may be a slice of another's buffer
    // (a concat quantized in place would re-round its inputs under their readers' feet).
    const mem = (this.mem = planMemory(g, { tileW: this.maxW, tileH: this.maxH, elemBytes: () => 4, pinned: new Set([g.input, g.output]), noConcatAlias: tg.tensorQuant.length > 0 }));
    for (const b of mem.buffers) {
      b.first = 0;
      b.last = N;
    }
    this.tensorBytes = assignOffsets(mem.buffers);
    this.region = new ArenaRegion(rt.arena);
    this.fwdBase = this.region.alloc(this.tensorBytes);
    this.gradBase = this.forwardOnly ? 0 : this.region.alloc(this.tensorBytes);

    const pix = (n: Node): number => this.maxW * n.spatial * this.maxH * n.spatial;
    let tempElems = 0;
    let scratchBytes = 512;
    let gradBytes = 0;
    let scalars = 0;
    const galloc = (floats: number): number => {
      const at = gradBytes;
      gradBytes += Math.ceil((floats * 4) / 64) * 64;
      return at;
    };
    for (const n of g.nodes) {
      tempElems = Math.max(tempElems, pix(n) * n.channels);
      if (n.op !== "conv2d") continue;
      const layer = tg.convs.get(n.id)!;
      const q = layer.quant;
      const W = this.maxW * n.spatial;
      const w = addParam(n.name, "weight")!;
      const b = addParam(n.name, "bias");
      const range = q && q.actLevels > 0 ? addParam(n.name, "act_range") : null;
      const gamma = q && q.weightLevels > 0 ? addParam(n.name, "gamma") : null;
      const scale = q?.offsets ? addParam(n.name, "offset_scale") : null;
      const shift = q?.offsets ? addParam(n.name, "offset_shift") : null;
      if (q && q.actLevels > 0 && !range) {
        // Placeholder until calibrateActRanges (forward refuses to run before).
        const p: Param = { name: paramName(n.name, "act_range"), layer: n.name, kind: "act_range", value: Float32Array.of(NaN, NaN) };
        this.params.push(p);
        this.paramIndex.set(p.name, p);
      }
      const P = pix(n);
      const slots: ConvSlots = {
        layer, node: n as Extract<Node, { op: "conv2d" }>, w, b, range: range ?? this.paramIndex.get(paramName(n.name, "act_range")) ?? null,
        gamma, scale, shift,
        packed: this.region.alloc(4 * f32ConvPackedLength(n.k, layer.cin, layer.cout)),
        packedBwd: this.forwardOnly ? 0 : this.region.alloc(4 * f32ConvPackedLength(n.k, layer.cout, layer.cin)),
        xq: 0, z: 0, zq: 0, offA: 0, gW: -1, gB: -1, gOff: -1, sIdx: -1, levels: q?.actLevels ?? 0, hook: o.actHooks?.get(n.name) ?? null,
      };
      if (slots.hook) {
        check(!(q && q.actLevels > 0), "E_ARGUMENT", `layer '${n.name}' has both an activation fake-quant and a custom quantizer hook`);
        slots.xq = this.region.alloc(4 * P * layer.cin);
      }
      if (q && q.actLevels > 0) {
        if (q.offsets) {
          slots.z = this.region.alloc(4 * P * layer.cin);
          slots.zq = this.region.alloc(4 * P * layer.cin);
          slots.xq = this.region.alloc(4 * P * layer.cin);
          slots.offA = this.region.alloc(16 * layer.cin);
        } else {
          slots.xq = this.region.alloc(4 * P * layer.cin);
        }
        if (!this.forwardOnly) slots.sIdx = (scalars += 3) - 3;
      }
      if (!this.forwardOnly) {
        // ∂L/∂(quantized W) also feeds γ, so a weight-quantized layer keeps it when weights are frozen.
        if (this.trainWeights || gamma) slots.gW = galloc(n.k * n.k * layer.cin * layer.cout);
        if (this.trainWeights && b) slots.gB = galloc(layer.cout);
        if (q?.offsets) slots.gOff = galloc(4 * layer.cin);
      }
      scratchBytes = Math.max(scratchBytes, f32ConvScratchBytes(W, layer.cin, n.k));
      if (!this.forwardOnly) {
        scratchBytes = Math.max(scratchBytes, f32ConvScratchBytes(W, layer.cout, n.k));
        if (slots.gW >= 0) scratchBytes = Math.max(scratchBytes, this.k.f32_conv_backward_weights_scratch_bytes(W, layer.cin, layer.cout, n.k));
      }
      this.convs.set(n.id, slots);
    }
    for (const t of tg.tensorQuant) {
      const v = tg.init.get(t.name);
      const clip: Param = { name: t.name, layer: g.nodes[t.ids[0]].name, kind: "act_clip", value: v ? Float32Array.from(v) : new Float32Array(t.grid === "asymmetric" ? 2 : 1).fill(NaN) };
      this.params.push(clip);
      this.paramIndex.set(clip.name, clip);
      const slots: TensorQuantSlots = { clip, grid: t.grid, levels: t.levels, ids: t.ids, sIdx: this.forwardOnly ? -1 : (scalars += 2) - 2, nudge: t.nudge };
      this.tq.push(slots);
      for (const id of t.ids) this.tqNode.set(id, { t: slots, raw: this.region.alloc(4 * pix(g.nodes[id]) * g.nodes[id].channels) });
    }
    this.quantLossWeight = o.quantLoss ?? 0;
    check(Number.isFinite(this.quantLossWeight) && this.quantLossWeight >= 0, "E_ARGUMENT", `quantLoss must be a non-negative number, got ${o.quantLoss}`);
    this.gradBytes = gradBytes;
    this.scalarCount = scalars;
    this.t1 = this.region.alloc(4 * tempElems);
    this.t2 = this.forwardOnly ? 0 : this.region.alloc(4 * tempElems);
    this.scratch = this.region.alloc(scratchBytes);

    // requires-grad: some conv at or above the node.
    this.reqGrad = new Uint8Array(N);
    for (const n of g.nodes) {
      if (n.op === "conv2d" || n.inputs.some((i) => this.reqGrad[i])) this.reqGrad[n.id] = 1;
    }

    this.buildForward(this.quantSteps, true);
    this.buildForward(this.fpSteps, false);
    this.optimizer = this.forwardOnly ? null : new Adam(this.params, o.optimizer);
  }

  // ---------------------------------------------------------------- layout helpers

  private fptr(id: number): number {
    const p = this.mem.placement[id];
    return this.fwdBase + this.mem.buffers[p.buffer].offset + 4 * p.channelOffset;
  }

  private gptr(id: number): number {
    const p = this.mem.placement[id];
    return this.gradBase + this.mem.buffers[p.buffer].offset + 4 * p.channelOffset;
  }

  private stride(id: number): number {
    return this.mem.placement[id].pixelStride;
  }

  private buildForward(steps: Step[], quant: boolean): void {
    const g = this.graph, k = this.k;
    const ctx = {
      g, k, ptr: (id: number) => this.fptr(id), stride: (id: number) => this.stride(id), scratch: this.scratch,
      packedAt: new Map<number, number>(), steps, concatCopies: this.mem.concatCopies,
    };
    for (const n of g.nodes) {
      this.lowerNode(ctx, steps, n, quant);
      const tq = quant ? this.tqNode.get(n.id) : undefined;
      if (!tq) continue;
      // Keep x (backward needs it), then x̂ = q(x) in place: every reader sees x̂.
      const y = this.fptr(n.id), ys = this.stride(n.id), C = n.channels, s = n.spatial, { t, raw } = tq;
      steps.push((w, h) => {
        const P = w * s * h * s;
        const { l, u, s: step } = gridOf(t);
        k.x32_copy_nhwc(y, P, C, ys, raw, C);
        k.f32_fake_quant_nhwc(raw, C, y, ys, P, C, l, u, step);
      });
    }
  }

  private lowerNode(ctx: Parameters<typeof lowerF32Node>[0], steps: Step[], n: Node, quant: boolean): void {
    const k = this.k;
    if (n.op !== "conv2d") {
      lowerF32Node(ctx, n);
      return;
    }
    const c = this.convs.get(n.id)!;
    const s = n.spatial, cin = c.layer.cin, cout = c.layer.cout, kk = n.k;
    const x = n.inputs[0];
    let xp = this.fptr(x), xs = this.stride(x);
    const q = quant ? c.layer.quant : null;
    if (quant && c.hook) {
      const hook = c.hook, src = xp, ss = xs;
      steps.push((w, h) => hook.forward(src, ss, c.xq, w * s * h * s, cin, w * s, h * s));
      xp = c.xq;
      xs = cin;
    } else if (q && q.actLevels > 0) {
      const range = c.range!.value;
      if (q.offsets) {
        const A = c.offA, B = A + 4 * cin, Ai = B + 4 * cin, Bi = Ai + 4 * cin;
        const src = xp, ss = xs;
        steps.push((w, h) => {
          const P = w * s * h * s;
          const l = range[0], u = range[1];
          k.f32_channel_affine_nhwc(src, ss, c.z, cin, P, cin, A, B);
          k.f32_fake_quant_nhwc(c.z, cin, c.zq, cin, P, cin, l, u, fakeQuantStep(l, u, c.levels));
          k.f32_channel_affine_nhwc(c.zq, cin, c.xq, cin, P, cin, Ai, Bi);
        });
      } else {
        const src = xp, ss = xs;
        steps.push((w, h) => {
          const l = range[0], u = range[1];
          k.f32_fake_quant_nhwc(src, ss, c.xq, cin, w * s * h * s, cin, l, u, fakeQuantStep(l, u, c.levels));
        });
      }
      xp = c.xq;
      xs = cin;
    }
    const y = this.fptr(n.id), ys = this.stride(n.id), wp = c.packed, lo = c.layer.relu ? 0 : -Infinity, scr = this.scratch;
    const inP = xp, inS = xs;
    steps.push((w, h) => k.f32_conv_nhwc(inP, inS, y, ys, h * s, w * s, cin, cout, kk, wp, lo, Infinity, scr));
  }

  // ---------------------------------------------------------------- parameters

  /** A parameter by name (`${layer}/${kind}`). */
  param(name: string): Param {
    const p = this.paramIndex.get(name);
    check(p !== undefined, "E_ARGUMENT", `no parameter '${name}'`);
    return p;
  }

  /** Conv layers of the graph (with their quantization). */
  get layers(): TrainConvLayer[] {
    return [...this.tg.convs.values()];
  }

  /** The weight clip u_w = f·γ of a weight-quantized layer. */
  weightClip(layer: string): number {
    const c = this.slotsByName(layer);
    check(c.gamma !== null, "E_ARGUMENT", `layer '${layer}' has no weight quantizer`);
    return c.layer.quant!.weightF * c.gamma.value[0];
  }

  private slotsByName(layer: string): ConvSlots {
    const l = this.tg.byName.get(layer);
    check(l !== undefined, "E_ARGUMENT", `no conv layer '${layer}'`);
    return this.convs.get(l.id)!;
  }

  /** Sets the activation bit-width of a quantized conv for the following forward/backward passes. */
  setActBits(layer: string, bits: number): void {
    const c = this.slotsByName(layer);
    check(c.xq !== 0, "E_ARGUMENT", `layer '${layer}' has no activation quantizer`);
    checkInt(bits, 1, 16, "activation bits", "E_BITS");
    c.levels = 2 ** bits;
  }

  /** Σ∂L/∂b of a conv's activation bit-width accumulated in `gb` (0 when it has no quantizer). */
  bitGradient(gb: GradBuffers, layer: string): number {
    const c = this.slotsByName(layer);
    return c.sIdx >= 0 ? gb.scalars[c.sIdx + 2] : 0;
  }

  /** Marks packed weights stale (call after editing parameter values directly). */
  invalidate(): void {
    this.packedMode = null;
  }

  /** Sets parameter values (copies; lengths must match). */
  setParams(values: ReadonlyMap<string, ArrayLike<number>> | Readonly<Record<string, ArrayLike<number>>>): void {
    const entries = values instanceof Map ? [...values.entries()] : Object.entries(values);
    for (const [name, v] of entries) {
      const p = this.param(name);
      check(v.length === p.value.length, "E_SHAPE", `parameter '${name}' has ${p.value.length} values, got ${v.length}`);
      p.value.set(v);
    }
    this.constrain();
    this.invalidate();
  }

  /** Keeps quantizer parameters valid after an update: l < u, γ > 0, |α| > 0. */
  constrain(): void {
    for (const p of this.params) {
      const v = p.value;
      if (p.kind === "act_range" && !Number.isNaN(v[0])) {
        const eps = 1e-6 * Math.max(1, Math.abs(v[0]), Math.abs(v[1]));
        if (!(v[1] - v[0] >= eps)) {
          const mid = (v[0] + v[1]) / 2;
          v[0] = mid - eps;
          v[1] = mid + eps;
        }
      } else if (p.kind === "gamma") {
        if (!(v[0] >= 1e-6)) v[0] = 1e-6;
      } else if (p.kind === "act_clip" && !Number.isNaN(v[0])) {
        // α > 0 (fqsr.md §5: guard α ≤ 0); an asymmetric clip keeps l < u.
        if (v.length === 1) v[0] = Math.max(v[0], 1e-6);
        else if (!(v[1] - v[0] >= 1e-6 * Math.max(1, Math.abs(v[0]), Math.abs(v[1])))) {
          const mid = (v[0] + v[1]) / 2, eps = 1e-6 * Math.max(1, Math.abs(mid));
          v[0] = mid - eps;
          v[1] = mid + eps;
        }
      } else if (p.kind === "offset_scale") {
        for (let i = 0; i < v.length; i++) if (Math.abs(v[i]) < 1e-6) v[i] = v[i] < 0 ? -1e-6 : 1e-6;
      }
    }
  }

  private sync(mode: "quant" | "fp"): void {
    if (this.packedMode === mode) return;
    const a = this.rt.arena;
    for (const c of this.convs.values()) {
      const { k, cin, cout } = c.layer;
      let w = c.w.value;
      const q = c.layer.quant;
      if (mode === "quant" && c.gamma) {
        w = fakeQuantWeightsOdd(new Float32Array(w.length), w, q!.weightF * c.gamma.value[0], q!.weightLevels);
      } else if (mode === "quant" && q && q.weightLevels > 0 && q.weightGrid === "channel") {
        w = fakeQuantizeWeights(w, cout, Math.log2(q.weightLevels));
      }
      a.write(c.packed, packF32Conv(w, k, cin, cout, c.b?.value ?? null));
      if (!this.forwardOnly) a.write(c.packedBwd, packF32ConvBackwardInput(w, k, cin, cout));
      if (c.scale) {
        const f = a.f32, A = c.offA >> 2;
        for (let i = 0; i < cin; i++) {
          const al = c.scale.value[i], be = c.shift!.value[i];
          f[A + i] = al;
          f[A + cin + i] = be;
          f[A + 2 * cin + i] = 1 / al;
          f[A + 3 * cin + i] = -be / al;
        }
      }
    }
    this.packedMode = mode;
  }

  // ---------------------------------------------------------------- forward

  private checkSample(input: Float32Array, w: number, h: number): void {
    check(!this.disposed, "E_ARGUMENT", "trainer was disposed");
    checkInt(w, 1, this.maxW, `sample width (trainer maxW ${this.maxW})`, "E_SHAPE");
    checkInt(h, 1, this.maxH, `sample height (trainer maxH ${this.maxH})`, "E_SHAPE");
    check(input instanceof Float32Array && input.length === w * h * 3, "E_SHAPE", () => `sample must be a Float32Array of ${w}×${h}×3 = ${w * h * 3} values, got ${input?.length}`);
    for (let i = 0; i < input.length; i++) if (!Number.isFinite(input[i])) throw new LowbitError("E_RANGE", `sample value ${i} is ${input[i]}`);
  }

  /**
   * Runs the (fake-quantized) forward pass on one LR sample (dense NHWC RGB in the model's input
   * range) and keeps every tensor backward needs. `fp` = true runs the FP32 model instead (no
   * fake-quant, unquantized weights): calibration, reference outputs.
   */
  forward(input: Float32Array, w: number, h: number, o: { fp?: boolean } = {}): void {
    this.checkSample(input, w, h);
    if (!o.fp) {
      for (const c of this.convs.values()) {
        if (c.range && !(c.range.value[0] < c.range.value[1])) {
          throw new LowbitError("E_ARGUMENT", `layer '${c.layer.name}': activation range not initialized (pass quant.actRanges or call calibrateActRanges)`);
        }
      }
      for (const t of this.tq) {
        if (Number.isNaN(t.clip.value[0])) throw new LowbitError("E_ARGUMENT", `tensor quantizer '${t.clip.name}': clip not initialized (pass quant.tensors[].init or call warmupClips)`);
      }
    }
    this.sync(o.fp ? "fp" : "quant");
    this.rt.arena.f32.set(input, this.fptr(this.graph.input) >> 2);
    const steps = o.fp ? this.fpSteps : this.quantSteps;
    for (const s of steps) s(w, h);
    this.w = w;
    this.h = h;
    this.forwardDone = !o.fp;
  }

  private resolve(at: SeedTarget): { id: number; quantized: boolean } {
    if (typeof at === "object" && at !== null && "quantized" in at) {
      const c = this.slotsByName(at.quantized);
      check(c.xq !== 0, "E_ARGUMENT", `layer '${at.quantized}' has no activation quantizer`);
      return { id: c.layer.id, quantized: true };
    }
    if (typeof at === "number") {
      checkInt(at, 0, this.graph.nodes.length - 1, "node id");
      return { id: at, quantized: false };
    }
    const n = this.graph.nodes.find((m) => m.name === at);
    check(n !== undefined, "E_ARGUMENT", `no node named '${String(at)}'`);
    return { id: n.id, quantized: false };
  }

  /**
   * A tensor of the last forward: a node's output, or `{ quantized: layer }` — the conv's actual
   * (fake-quantized, offsets undone) input. Valid until the next forward.
   */
  tensor(at: SeedTarget): TensorRef {
    const { id, quantized } = this.resolve(at);
    const n = this.graph.nodes[id];
    const s = n.spatial, w = this.w * s, h = this.h * s;
    if (quantized) {
      const c = this.convs.get(id)!;
      return { ptr: c.xq, stride: c.layer.cin, w, h, pixels: w * h, channels: c.layer.cin };
    }
    return { ptr: this.fptr(id), stride: this.stride(id), w, h, pixels: w * h, channels: n.channels };
  }

  /** Copy of a tensor as dense pixels × channels. */
  read(at: SeedTarget | TensorRef): Float32Array {
    const t = typeof at === "object" && at !== null && "ptr" in at ? at : this.tensor(at);
    const f = this.rt.arena.f32, out = new Float32Array(t.pixels * t.channels);
    for (let p = 0; p < t.pixels; p++) {
      const src = (t.ptr >> 2) + p * t.stride;
      out.set(f.subarray(src, src + t.channels), p * t.channels);
    }
    return out;
  }

  /** The graph output of the last forward (HR, dense RGB). */
  output(): TensorRef {
    return this.tensor(this.graph.output);
  }

  /**
   * Initializes activation ranges from P_low / P_high (default 1 / 99, odm.md §2) of each quantized
   * conv's input in the FP32 model, averaged over `samples`. Only layers still uninitialized unless
   * `all`. Returns the ranges set.
   */
  calibrateActRanges(samples: ReadonlyArray<{ data: Float32Array; w: number; h: number }>,
    o: { low?: number; high?: number; all?: boolean } = {}): Map<string, [number, number]> {
    check(samples.length > 0, "E_ARGUMENT", "calibration needs at least one sample");
    const lo = o.low ?? 1, hi = o.high ?? 99;
    check(lo >= 0 && hi <= 100 && lo < hi, "E_ARGUMENT", `calibration percentiles must satisfy 0 ≤ low < high ≤ 100, got ${lo}, ${hi}`);
    const todo = [...this.convs.values()].filter((c) => c.range && (o.all || !(c.range.value[0] < c.range.value[1])));
    const sums = todo.map(() => [0, 0]);
    for (const s of samples) {
      this.forward(s.data, s.w, s.h, { fp: true });
      todo.forEach((c, i) => {
        const v = this.read(c.node.inputs[0]);
        sums[i][0] += percentile(v, lo);
        sums[i][1] += percentile(v, hi);
      });
    }
    const out = new Map<string, [number, number]>();
    todo.forEach((c, i) => {
      c.range!.value[0] = sums[i][0] / samples.length;
      c.range!.value[1] = sums[i][1] / samples.length;
      out.set(c.layer.name, [c.range!.value[0], c.range!.value[1]]);
    });
    this.constrain();
    this.invalidate();
    return out;
  }

  /**
   * Initializes tensor-quantizer clips from the FP32 model (FQSR's warm-up, fqsr.md §2: α tracks the
   * mean of max|x| over the unquantized iterations): α = mean over `samples` of max|x| over the
   * quantizer's tensors (half grid: max x, floored at a tiny positive value); asymmetric: [l, u] = the
   * means of min x and max x. Only clips still uninitialized unless `all`. Returns the clips set.
   */
  warmupClips(samples: ReadonlyArray<{ data: Float32Array; w: number; h: number }>, o: { all?: boolean } = {}): Map<string, number[]> {
    check(samples.length > 0, "E_ARGUMENT", "warm-up needs at least one sample");
    const todo = this.tq.filter((t) => o.all || Number.isNaN(t.clip.value[0]));
    const sums = todo.map(() => [0, 0]);
    for (const s of samples) {
      this.forward(s.data, s.w, s.h, { fp: true });
      todo.forEach((t, i) => {
        let lo = Infinity, hi = -Infinity;
        for (const id of t.ids) {
          const v = this.read(id);
          for (let j = 0; j < v.length; j++) {
            if (v[j] < lo) lo = v[j];
            if (v[j] > hi) hi = v[j];
          }
        }
        sums[i][0] += lo;
        sums[i][1] += t.grid === "full" ? Math.max(-lo, hi) : hi;
      });
    }
    const out = new Map<string, number[]>();
    todo.forEach((t, i) => {
      const lo = sums[i][0] / samples.length, hi = sums[i][1] / samples.length;
      if (t.grid === "asymmetric") t.clip.value.set([lo, hi]);
      else t.clip.value[0] = hi;
      this.constrain();
      out.set(t.clip.name, [...t.clip.value]);
    });
    this.invalidate();
    return out;
  }

  /** The clip parameters' grids [l, u] by parameter name. */
  clips(): Map<string, [number, number]> {
    return new Map(this.tq.map((t) => [t.clip.name, clipRange(t)]));
  }

  // ---------------------------------------------------------------- backward

  /** Fresh zeroed gradient accumulators for this trainer. */
  createGrads(): GradBuffers {
    check(!this.forwardOnly, "E_ARGUMENT", "a forward-only trainer has no gradients");
    return new GradBuffers(this.rt, this.gradBytes, this.scalarCount);
  }

  /**
   * An arena buffer owned by the trainer for a caller's per-sample data (loss targets, seeds):
   * the same `key` returns the same buffer (grown if needed: the pointer may change).
   */
  buffer(key: string, bytes: number): number {
    const have = this.extra.get(key);
    if (have !== undefined && (this.extraSize.get(key) ?? 0) >= bytes) return have;
    const p = this.region.alloc(Math.max(bytes, 64));
    this.extra.set(key, p);
    this.extraSize.set(key, bytes);
    return p;
  }
  private readonly extraSize = new Map<string, number>();

  /**
   * Backpropagates the seeds through the last forward, ACCUMULATING ∂L/∂parameters into `gb`
   * (raw: conv weight gradients are w.r.t. the fake-quantized weights until gradients()).
   */
  backward(seeds: readonly Seed[], gb: GradBuffers): void {
    check(!this.forwardOnly, "E_ARGUMENT", "a forward-only trainer cannot run backward");
    check(this.forwardDone, "E_ARGUMENT", "backward needs a (quantized) forward first");
    check(gb instanceof GradBuffers && gb.bytes === this.gradBytes && gb.scalars.length === this.scalarCount, "E_ARGUMENT", "GradBuffers of another trainer");
    check(seeds.length > 0, "E_ARGUMENT", "backward needs at least one seed");
    const resolved = seeds.map((s) => ({ ...this.resolve(s.at), seed: s }));
    const a = this.rt.arena, k = this.k;
    a.f32.fill(0, this.gradBase >> 2, (this.gradBase + this.tensorBytes) >> 2);
    const nodeSeeds = new Set<number>(), quantSeeds = new Set<number>();
    for (const r of resolved) {
      const n = this.graph.nodes[r.id];
      const s = n.spatial, P = this.w * s * this.h * s;
      const C = r.quantized ? this.convs.get(r.id)!.layer.cin : n.channels;
      let dst: number, ds: number;
      if (r.quantized) {
        let sb = this.seedBufs.get(r.id);
        if (sb === undefined) {
          sb = this.region.alloc(4 * this.maxW * s * this.maxH * s * C);
          this.seedBufs.set(r.id, sb);
        }
        if (!quantSeeds.has(r.id)) a.f32.fill(0, sb >> 2, (sb >> 2) + P * C);
        quantSeeds.add(r.id);
        dst = sb;
        ds = C;
      } else {
        check(this.reqGrad[r.id], "E_ARGUMENT", `node '${n.name}' does not depend on any parameter`);
        nodeSeeds.add(r.id);
        dst = this.gptr(r.id);
        ds = this.stride(r.id);
      }
      let src: number, ss: number;
      const g = r.seed.grad;
      if (g instanceof Float32Array) {
        check(g.length === P * C, "E_SHAPE", () => `seed at '${n.name}' has ${g.length} values, expected ${P}×${C}`);
        a.f32.set(g, this.t1 >> 2);
        src = this.t1;
        ss = C;
      } else {
        check(Number.isInteger(g.ptr) && g.ptr % 4 === 0 && g.stride >= C && g.ptr + 4 * ((P - 1) * g.stride + C) <= a.capacity, "E_SHAPE", `seed at '${n.name}': bad arena tensor`);
        src = g.ptr;
        ss = g.stride;
      }
      const wgt = r.seed.weight ?? 1;
      check(Number.isFinite(wgt), "E_ARGUMENT", `seed weight must be finite, got ${wgt}`);
      k.f32_add_nhwc(dst, src, P, C, ds, ss, dst, ds, wgt);
    }
    const key = `${[...nodeSeeds].sort((x, y) => x - y).join(",")}|${[...quantSeeds].sort((x, y) => x - y).join(",")}`;
    let steps = this.backwardCache.get(key);
    if (!steps) {
      steps = this.buildBackward(nodeSeeds, quantSeeds);
      this.backwardCache.set(key, steps);
    }
    for (const st of steps) st(this.w, this.h, gb);
    gb.passes++;
  }

  private buildBackward(nodeSeeds: Set<number>, quantSeeds: Set<number>): Array<(w: number, h: number, gb: GradBuffers) => void> {
    const g = this.graph, k = this.k, N = g.nodes.length;
    const live = new Uint8Array(N);
    for (const id of nodeSeeds) live[id] = 1;
    for (let id = N - 1; id >= 0; id--) {
      if (!live[id] && !quantSeeds.has(id)) continue;
      for (const i of g.nodes[id].inputs) if (this.reqGrad[i]) live[i] = 1;
    }
    // Static first-touch analysis over the gradient memory: (root buffer, channel interval) touched so far.
    const touched: Array<Array<[number, number]>> = this.mem.buffers.map(() => []);
    const region = (id: number): [number, number, number] => {
      const p = this.mem.placement[id];
      return [p.buffer, p.channelOffset, p.channelOffset + g.nodes[id].channels];
    };
    const claim = (id: number): boolean => {
      const [b, lo, hi] = region(id);
      const first = !touched[b].some(([a0, a1]) => a0 < hi && lo < a1);
      touched[b].push([lo, hi]);
      return first;
    };
    for (const id of nodeSeeds) claim(id);

    type BStep = (w: number, h: number, gb: GradBuffers) => void;
    const steps: BStep[] = [];
    const t1 = this.t1, t2 = this.t2;
    /** Writes via `write(dst, dstStride)` into G(j): directly when untouched, else through t2 and an add. */
    const into = (j: number, P: (w: number, h: number) => number, write: (dst: number, ds: number, w: number, h: number, gb: GradBuffers) => void): BStep => {
      const gj = this.gptr(j), sj = this.stride(j), C = g.nodes[j].channels;
      if (claim(j)) return (w, h, gb) => write(gj, sj, w, h, gb);
      return (w, h, gb) => {
        write(t2, C, w, h, gb);
        k.f32_add_nhwc(gj, t2, P(w, h), C, sj, C, gj, sj, 1);
      };
    };
    for (let id = N - 1; id >= 0; id--) {
      const n = g.nodes[id];
      const isLive = live[id] === 1;
      if (!isLive && !quantSeeds.has(id)) continue;
      const s = n.spatial;
      const Pn = (w: number, h: number): number => w * s * h * s;
      const gy = this.gptr(id), sy = this.stride(id), C = n.channels;
      const tqn = this.tqNode.get(id);
      // The node's output as its own backward needs it (ReLU masks): x before the tensor quantizer.
      const yOwn = tqn ? tqn.raw : this.fptr(id), yOwnS = tqn ? C : sy;
      if (tqn && isLive) steps.push(this.tensorQuantBackward(tqn.t, tqn.raw, id, gy, sy, Pn));
      switch (n.op) {
        case "input":
          break;
        case "conv2d": {
          const c = this.convs.get(id)!;
          const { cin, cout, k: kk, relu } = c.layer;
          const x = n.inputs[0];
          const q = c.layer.quant;
          const hasAct = (q !== null && q.actLevels > 0) || c.hook !== null;
          // Conv input as the conv saw it.
          const xin = hasAct ? c.xq : this.fptr(x), xinS = hasAct ? cin : this.stride(x);
          const scr = this.scratch;
          if (isLive) {
            if (relu) steps.push((w, h) => k.f32_relu_backward_nhwc(gy, sy, yOwn, yOwnS, gy, sy, Pn(w, h), cout));
            if (c.gW >= 0) {
              const gW = c.gW, gB = c.gB;
              steps.push((w, h, gb) => this.weightGrads && k.f32_conv_backward_weights_nhwc(xin, xinS, gy, sy, h * s, w * s, cin, cout, kk,
                gb.base + gW, gB >= 0 ? gb.base + gB : 0, scr));
            }
          }
          const needDx = live[x] === 1;
          if (!hasAct) {
            if (!needDx) break;
            const pb = c.packedBwd;
            steps.push(into(x, Pn, (dst, ds, w, h) => k.f32_conv_nhwc(gy, sy, dst, ds, h * s, w * s, cout, cin, kk, pb, -Infinity, Infinity, scr)));
            break;
          }
          // d(conv input) → t1 (dense cin), plus a seed on the quantized input.
          const pb = c.packedBwd, sb = this.seedBufs.get(id);
          const seeded = quantSeeds.has(id);
          steps.push((w, h) => {
            const P = Pn(w, h);
            if (isLive) {
              k.f32_conv_nhwc(gy, sy, t1, cin, h * s, w * s, cout, cin, kk, pb, -Infinity, Infinity, scr);
              if (seeded) k.f32_add_nhwc(t1, sb!, P, cin, cin, cin, t1, cin, 1);
            } else {
              k.x32_copy_nhwc(sb!, P, cin, cin, t1, cin);
            }
          });
          if (c.hook) {
            const hook = c.hook, xp = this.fptr(x), xs = this.stride(x);
            if (needDx) steps.push(into(x, Pn, (dst, ds, w, h) => hook.backward(xp, xs, t1, dst, ds, Pn(w, h), cin)));
            else steps.push((w, h) => hook.backward(xp, xs, t1, 0, 0, Pn(w, h), cin));
            break;
          }
          const range = c.range!.value, sIdx = c.sIdx;
          // With t = (clip(x) − l)/s, R = round(t), s = (u − l)/n, n = 2^b − 1 and A = Σ g·(R − t) over
          // unclipped elements (the kernel's return): ∂x̂/∂l = (t − R)/n, ∂x̂/∂u = (R − t)/n (+ the
          // clipped sums), and through n = 2^b − 1 (AdaBM's bit gradient, STE on the round):
          // ∂x̂/∂b = (u − l)·2^b·ln2·(t − R)/n², so Σ g·∂x̂/∂b = −(u − l)·2^b·ln2·A/n².
          const fqBack = (xp: number, xs: number, dx: number, dxs: number, P: number, gb: GradBuffers): void => {
            const l = range[0], u = range[1], levels = c.levels, n1 = levels - 1;
            const A = k.f32_fake_quant_backward_nhwc(xp, xs, t1, cin, dx, dxs, P, cin, l, u, fakeQuantStep(l, u, levels));
            gb.scalars[sIdx] += k.f32_fake_quant_below() - A / n1;
            gb.scalars[sIdx + 1] += k.f32_fake_quant_above() + A / n1;
            gb.scalars[sIdx + 2] -= ((u - l) * levels * Math.LN2 * A) / (n1 * n1);
          };
          if (!q!.offsets) {
            const xp = this.fptr(x), xs = this.stride(x);
            if (needDx) steps.push(into(x, Pn, (dst, ds, w, h, gb) => fqBack(xp, xs, dst, ds, Pn(w, h), gb)));
            else steps.push((w, h, gb) => fqBack(xp, xs, 0, 0, Pn(w, h), gb));
          } else {
            // x̂ = zq·(1/α) + (−β/α), zq = q(z), z = x·α + β.
            const A = c.offA, Ai = A + 8 * cin, gOff = c.gOff;
            const xp = this.fptr(x), xs = this.stride(x);
            steps.push((w, h, gb) => {
              const P = Pn(w, h);
              k.f32_channel_affine_backward_nhwc(c.zq, cin, t1, cin, t1, cin, P, cin, Ai, gb.base + gOff + 8 * cin, gb.base + gOff + 12 * cin);
              fqBack(c.z, cin, t1, cin, P, gb);
            });
            const aff = (dst: number, ds: number, w: number, h: number, gb: GradBuffers): void =>
              k.f32_channel_affine_backward_nhwc(xp, xs, t1, cin, dst, ds, Pn(w, h), cin, A, gb.base + gOff, gb.base + gOff + 4 * cin);
            if (needDx) steps.push(into(x, Pn, aff));
            else steps.push((w, h, gb) => aff(0, 0, w, h, gb));
          }
          break;
        }
        case "activation": {
          const x = n.inputs[0];
          if (!live[x]) break;
          if (n.activation.kind === "linear") {
            steps.push(into(x, Pn, (dst, ds, w, h) => k.x32_copy_nhwc(gy, Pn(w, h), C, sy, dst, ds)));
          } else {
            steps.push(into(x, Pn, (dst, ds, w, h) => k.f32_relu_backward_nhwc(gy, sy, yOwn, yOwnS, dst, ds, Pn(w, h), C)));
          }
          break;
        }
        case "add":
        case "scale": {
          const coeffs = n.op === "scale" ? [n.factor] : n.coeffs ?? n.inputs.map(() => 1);
          n.inputs.forEach((x, j) => {
            if (!live[x]) return;
            const gx = this.gptr(x), sx = this.stride(x), beta = coeffs[j];
            if (claim(x)) steps.push((w, h) => k.f32_scale_nhwc(gy, Pn(w, h), C, sy, gx, sx, beta));
            else steps.push((w, h) => k.f32_add_nhwc(gx, gy, Pn(w, h), C, sx, sy, gx, sx, beta));
          });
          break;
        }
        case "concat": {
          const copies = new Set(this.mem.concatCopies.get(id) ?? []);
          let off = 0;
          for (const x of n.inputs) {
            const cx = g.nodes[x].channels, src = gy + 4 * off;
            if (copies.has(off) && live[x]) {
              const gx = this.gptr(x), sx = this.stride(x);
              if (claim(x)) steps.push((w, h) => k.x32_copy_nhwc(src, Pn(w, h), cx, sy, gx, sx));
              else steps.push((w, h) => k.f32_add_nhwc(gx, src, Pn(w, h), cx, sx, sy, gx, sx, 1));
            }
            // Aliased inputs: their gradient already is this slice (claimed with the concat's region).
            off += cx;
          }
          break;
        }
        case "upsample_nearest": {
          const x = n.inputs[0];
          if (!live[x]) break;
          const si = g.nodes[x].spatial, f = n.factor;
          const Px = (w: number, h: number): number => w * si * h * si;
          steps.push(into(x, Px, (dst, ds, w, h) => k.f32_upsample_nearest_backward_nhwc(gy, h * si, w * si, C, f, sy, dst, ds)));
          break;
        }
        case "depth_to_space": {
          const x = n.inputs[0];
          if (!live[x]) break;
          const si = g.nodes[x].spatial, b = n.block;
          const Px = (w: number, h: number): number => w * si * h * si;
          steps.push(into(x, Px, (dst, ds, w, h) => k.x32_space_to_depth_nhwc(gy, h * si, w * si, C, b, sy, dst, ds)));
          break;
        }
        default:
          throw new LowbitError("E_UNSUPPORTED_LAYER", `layer '${(n as Node).name}': op '${(n as Node).op}' has no backward`);
      }
    }
    return steps;
  }

  /**
   * Backward of a tensor quantizer, in place on the node's output gradient g = ∂L/∂x̂:
   * - STE and LSQ clip sums (the conv-input quantizer's derivation above): g ← g·[l ≤ x ≤ u],
   *   Σ∂L/∂l = B − A/n, Σ∂L/∂u = C + A/n;
   * - the calibration loss λ·mean|x − x̂| (fqsr.md §2) with d = x − x̂ and k = λ/(P·C): through the
   *   STE, x − x̂ has ∂/∂x = 0 inside the clip and 1 outside, so ∂/∂x = k·sign(d) on clipped elements;
   *   inside, x̂ − x = (R − t)·s gives ∂x̂/∂u = −d/(u − l), ∂x̂/∂l = d/(u − l), hence
   *   ∂/∂u = k|d|/(u − l), ∂/∂l = −k|d|/(u − l); above u: ∂/∂u = −k; below l: ∂/∂l = +k.
   * The clip parameter's gradient is formed in gradients(): α of a full grid moves l = −α and u = α
   * (∂/∂α = ∂/∂u − ∂/∂l), of a half grid only u.
   */
  private tensorQuantBackward(t: TensorQuantSlots, raw: number, id: number, gy: number, sy: number, Pn: (w: number, h: number) => number): (w: number, h: number, gb: GradBuffers) => void {
    const k = this.k, f = this.rt.arena.f32, C = this.graph.nodes[id].channels, y = this.fptr(id), ys = this.stride(id);
    const lam = this.quantLossWeight;
    return (w, h, gb) => {
      const P = Pn(w, h), { l, u, s: step } = gridOf(t), n1 = t.levels - 1;
      const A = k.f32_fake_quant_backward_nhwc(raw, C, gy, sy, gy, sy, P, C, l, u, step);
      let dl = k.f32_fake_quant_below() - A / n1, du = k.f32_fake_quant_above() + A / n1;
      if (lam > 0) {
        const kk = lam / (P * C), inv = 1 / (u - l), r0 = raw >> 2, y0 = y >> 2, g0 = gy >> 2;
        let sum = 0, inside = 0, nAbove = 0, nBelow = 0;
        for (let p = 0; p < P; p++) {
          const rp = r0 + p * C, yp = y0 + p * ys, gp = g0 + p * sy;
          for (let c = 0; c < C; c++) {
            const x = f[rp + c], d = x - f[yp + c];
            sum += Math.abs(d);
            if (x > u) {
              nAbove++;
              f[gp + c] += kk;
            } else if (x < l) {
              nBelow++;
              f[gp + c] -= kk;
            } else inside += Math.abs(d);
          }
        }
        gb.quantLoss += kk * sum;
        du += kk * (inside * inv - nAbove);
        dl += kk * (nBelow - inside * inv);
      }
      gb.scalars[t.sIdx] += dl;
      gb.scalars[t.sIdx + 1] += du;
    };
  }

  /**
   * Parameter-space gradients from raw accumulators, times `scale` (e.g. 1/batch):
   * weights through the weight quantizer's STE (and ∂L/∂γ), offsets through both affines.
   * Returns fresh arrays by parameter name.
   */
  gradients(gb: GradBuffers, scale = 1): Map<string, Float32Array> {
    check(gb instanceof GradBuffers && gb.bytes === this.gradBytes, "E_ARGUMENT", "GradBuffers of another trainer");
    const f = this.rt.arena.f32, out = new Map<string, Float32Array>();
    for (const c of this.convs.values()) {
      const { k, cin, cout } = c.layer;
      const q = c.layer.quant;
      if (c.gW >= 0) {
        const n = k * k * cin * cout, at = (gb.base + c.gW) >> 2;
        const raw = f.subarray(at, at + n);
        const dw = new Float32Array(n);
        if (c.gamma) {
          const u = q!.weightF * c.gamma.value[0];
          const du = fakeQuantWeightsOddBackward(dw, raw, c.w.value, u, q!.weightLevels);
          out.set(c.gamma.name, Float32Array.of(scale * q!.weightF * du));
        } else {
          dw.set(raw);
        }
        if (this.trainWeights) {
          if (scale !== 1) for (let i = 0; i < n; i++) dw[i] *= scale;
          out.set(c.w.name, dw);
        }
        if (c.b && c.gB >= 0) {
          const bt = (gb.base + c.gB) >> 2;
          out.set(c.b.name, Float32Array.from(f.subarray(bt, bt + cout), (v) => v * scale));
        }
      } else if (c.gamma) {
        out.set(c.gamma.name, new Float32Array(1));
      }
      if (c.sIdx >= 0) out.set(c.range!.name, Float32Array.of(scale * gb.scalars[c.sIdx], scale * gb.scalars[c.sIdx + 1]));
      if (c.scale) {
        const o = (gb.base + c.gOff) >> 2;
        const da = new Float32Array(cin), db = new Float32Array(cin);
        for (let i = 0; i < cin; i++) {
          const al = c.scale.value[i], be = c.shift!.value[i];
          const dA1 = f[o + i], dB1 = f[o + cin + i], dA2 = f[o + 2 * cin + i], dB2 = f[o + 3 * cin + i];
          // A' = 1/α, B' = −β/α: ∂A'/∂α = −1/α², ∂B'/∂α = β/α², ∂B'/∂β = −1/α.
          da[i] = scale * (dA1 - dA2 / (al * al) + (dB2 * be) / (al * al));
          db[i] = scale * (dB1 - dB2 / al);
        }
        out.set(c.scale.name, da);
        out.set(c.shift!.name, db);
      }
    }
    for (const t of this.tq) {
      // Grid-end sums → clip [l, u] (through the nudge, gridOf) → the parameter ([α] or [l, u]).
      const gl = gb.scalars[t.sIdx], gu = gb.scalars[t.sIdx + 1], J = gridOf(t).J;
      const dl = gl * J[0] + gu * J[2], du = gl * J[1] + gu * J[3];
      out.set(t.clip.name, t.grid === "asymmetric" ? Float32Array.of(scale * dl, scale * du) : Float32Array.of(scale * (t.grid === "full" ? du - dl : du)));
    }
    return out;
  }

  /** One optimizer step with parameter-space gradients; then constrain and repack. */
  step(grads: ReadonlyMap<string, ArrayLike<number>>): void {
    check(this.optimizer !== null, "E_ARGUMENT", "a forward-only trainer has no optimizer");
    this.optimizer.step(grads);
    this.constrain();
    this.invalidate();
  }

  /** Frees the trainer's arena memory. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.region.free();
  }
}
