/**
 * Training graph: the graph IR plus what quantization-aware training adds to it.
 *
 * Per quantized conv (the layer set comes from a scope, src/methods/scope.ts, or explicit names):
 * - an **activation fake-quant** on the conv's input, uniform with 2^a levels on a learnable
 *   [l, u] (odm.md §2), optionally wrapped in per-input-channel **offsets** (ODM v1):
 *   x̂ = (q(x·α + β) − β)/α, so the quantizer sees a shifted/scaled distribution while the conv
 *   still sees values on the original scale (α = 1, β = 0 is the identity);
 * - a **weight fake-quant** on ODM's odd grid: levels ±u_w·{1, 3, …, 2^w − 1}/(2^w − 1),
 *   u_w = f·γ with f = P99(|W|) fixed at build time and γ a learnable scalar (WCC, init 1).
 *
 * - optionally (FQSR, fqsr.md §2–3) **tensor fake-quants** on node outputs: one learnable clip per
 *   tensor (or per group of tensors that share one grid), full range [−α, α] or half range [0, α]
 *   with 2^b levels — the "fm"/"ot" quantizers — applied in place so every reader sees x̂; and the
 *   weight grid of the deployed static model (`weightGrid: "channel"`, symmetric per output channel).
 *
 * The graph runs un-optimized except for activation fusion (conv → ReLU becomes one node): the
 * sub-pixel rewrite and MultiplyBeta folding change which tensors exist and what a layer's weights
 * mean, and the trained state must map 1:1 onto the source model's layers by name. The nearest
 * upsample + HR conv tail costs < 1 % of the MACs of the bundled models at HR resolution.
 */
import type { Graph, Node } from "../graph/ir.ts";
import { fuseActivations } from "../graph/passes.ts";
import { validateGraph } from "../graph/validate.ts";
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import { selectLayers, LAYER_SCOPES, type LayerScope } from "../methods/scope.ts";
import { percentile } from "./quant-math.ts";

/** What to fake-quantize. `null` bits = that operand stays FP32. */
export interface TrainQuantSpec {
  /** Weight bits 1..8 (odd grid, 2^w levels), or null for FP32 weights. */
  weightBits: number | null;
  /** Activation bits 1..16 (2^a levels on [l, u]), or null for FP32 activations. */
  actBits: number | null;
  /**
   * Which convs are quantized: a scope ("body" = not head/tail/upsampler — ODM's baselines;
   * "full" = every conv; "reference" = the DAQ reference set), or explicit layer names.
   * Default "body".
   */
  layers?: LayerScope | readonly string[];
  /** Quantized convs whose input gets learnable per-channel offsets (needs actBits). Default none. */
  offsets?: readonly string[];
  /** Initial activation ranges [l, u] by layer name (else: Trainer.calibrateActRanges). */
  actRanges?: Readonly<Record<string, readonly [number, number]>>;
  /** Initial γ by layer name (default 1). */
  gamma?: Readonly<Record<string, number>>;
  /** Percentile of |W| for f (default 99). */
  weightPercentile?: number;
  /** f by layer name, replacing P_p(|W|) (AdaBM's OMSE clip: u_w = f·γ with γ = 1 at the start). */
  weightClip?: Readonly<Record<string, number>>;
  /**
   * Weight grid: "odd" (default; ODM's odd grid, u_w = f·γ per tensor, learnable γ) or "channel"
   * (the static integer model's grid, src/quant/weights.ts: symmetric per output channel, scale
   * max|W_o|/(2^(w−1) − 1), no learnable clip; straight-through gradient).
   */
  weightGrid?: "odd" | "channel";
  /** Quantizers on node outputs (FQSR's fm/ot; see TensorQuantSpec). */
  tensors?: readonly TensorQuantSpec[];
}

/**
 * One learnable-clip quantizer on the outputs of some nodes (fqsr.md §2), applied in place after the
 * node runs: every reader sees x̂, backward passes ∂L/∂x̂ straight through inside the clip (STE) and
 * the LSQ-style clip gradient. Nodes listed together share the one clip (one grid).
 */
export interface TensorQuantSpec {
  /** Node names (outputs quantized). The first one names the parameter (`${nodes[0]}/act_clip`). */
  nodes: readonly string[];
  /** Bits 1..16 (2^b levels). */
  bits: number;
  /**
   * Grid: "full" = [−α, α] (FQSR's signed grid: odd multiples of α/(L − 1), no zero level),
   * "half" = [0, α] (unsigned, post-ReLU), "asymmetric" = a learnable [l, u] (lowbit's own grid,
   * not FQSR's). Parameter value: [α] or [l, u].
   */
  grid: "full" | "half" | "asymmetric";
  /** Initial clip ([α] or [l, u]); absent = set before the first quantized forward (Trainer.warmupClips). */
  init?: readonly number[];
  /**
   * Train on the grid the static integer model deploys (bits 2..8): the clip [l, u] becomes
   * affineParams(l, u) — range widened to include 0, zero point nudged to an integer code — so
   * the levels are those the integer kernels use. Default false (the clip's own grid).
   */
  nudge?: boolean;
}

/** A resolved tensor quantizer of the training graph. */
export interface TrainTensorQuant {
  /** Parameter name. */
  name: string;
  ids: number[];
  levels: number;
  grid: TensorQuantSpec["grid"];
  nudge: boolean;
}

/** Quantization attached to one conv of the training graph. */
export interface TrainQuantLayer {
  /** Activation fake-quant on the input: levels = 2^actBits, or 0 = none. */
  actLevels: number;
  /** Weight fake-quant: levels = 2^weightBits, or 0 = none. */
  weightLevels: number;
  /** f = P_p(|W|) of the initial weights (fixed; u_w = f·γ). */
  weightF: number;
  /** Whether the input has learnable per-channel offsets. */
  offsets: boolean;
  /** Weight grid (TrainQuantSpec.weightGrid). */
  weightGrid: "odd" | "channel";
}

export interface TrainConvLayer {
  /** Node id in TrainGraph.graph. */
  id: number;
  name: string;
  k: number;
  cin: number;
  cout: number;
  relu: boolean;
  hasBias: boolean;
  quant: TrainQuantLayer | null;
}

export interface TrainGraph {
  /** The graph that runs (activations fused; node names kept from the source). */
  graph: Graph;
  /** Every conv, by node id. */
  convs: Map<number, TrainConvLayer>;
  /** Conv layers by name. */
  byName: Map<string, TrainConvLayer>;
  /** The spec as resolved (null = FP32 graph). */
  spec: TrainQuantSpec | null;
  /** Initial parameter values by parameter name (see paramName). */
  init: Map<string, Float32Array>;
  /** Tensor quantizers (TrainQuantSpec.tensors), in order. */
  tensorQuant: TrainTensorQuant[];
}

export type ParamKind = "weight" | "bias" | "act_range" | "gamma" | "offset_scale" | "offset_shift" | "act_clip";
export const PARAM_KINDS: readonly ParamKind[] = ["weight", "bias", "act_range", "gamma", "offset_scale", "offset_shift", "act_clip"];

/** Parameter tensor names: `${layer}/${kind}`. */
export function paramName(layer: string, kind: ParamKind): string {
  return `${layer}/${kind}`;
}

function checkBits(b: number | null, hi: number, what: string): number {
  if (b === null) return 0;
  checkInt(b, 1, hi, what, "E_BITS");
  return 2 ** b;
}

/**
 * Builds the training graph of `graph` under `quant` (null = plain FP32 training / teacher).
 * Throws E_UNSUPPORTED_LAYER naming the layer for activations the engine has no backward for
 * (anything but linear and ReLU), E_ARGUMENT for unknown layer names.
 */
export function buildTrainGraph(graph: Graph, quant: TrainQuantSpec | null = null): TrainGraph {
  validateGraph(graph);
  const g = fuseActivations(graph);
  for (const n of g.nodes) {
    if (n.op === "conv2d" || n.op === "activation") {
      const kind = n.activation.kind;
      if (kind !== "linear" && kind !== "relu") {
        throw new LowbitError("E_UNSUPPORTED_LAYER", `layer '${n.name}': activation '${kind}' has no backward in the training engine (linear, relu)`);
      }
    }
  }
  const convNodes = g.nodes.filter((n): n is Extract<Node, { op: "conv2d" }> => n.op === "conv2d");
  let picked = new Set<number>();
  let spec: TrainQuantSpec | null = null;
  const aLevels = quant ? checkBits(quant.actBits, 16, "activation bits") : 0;
  const wLevels = quant ? checkBits(quant.weightBits, 8, "weight bits") : 0;
  if (quant) {
    const layers = quant.layers ?? "body";
    if (typeof layers === "string") {
      check(LAYER_SCOPES.includes(layers), "E_ARGUMENT", `unknown layer scope '${layers}' (${LAYER_SCOPES.join(" | ")})`);
      picked = selectLayers(g, "daq", layers).ids;
    } else {
      check(Array.isArray(layers), "E_ARGUMENT", "quant.layers must be a scope or an array of layer names");
      for (const name of layers) {
        const n = convNodes.find((c) => c.name === name);
        check(n !== undefined, "E_ARGUMENT", `quant.layers: no conv named '${name}'`);
        picked.add(n.id);
      }
    }
    const pct = quant.weightPercentile ?? 99;
    check(Number.isFinite(pct) && pct > 0 && pct <= 100, "E_ARGUMENT", `weightPercentile must be in (0, 100], got ${pct}`);
    for (const name of quant.offsets ?? []) {
      const n = convNodes.find((c) => c.name === name);
      check(n !== undefined && picked.has(n.id), "E_ARGUMENT", `quant.offsets: '${name}' is not a quantized conv`);
      check(aLevels > 0, "E_ARGUMENT", `quant.offsets: '${name}' needs activation quantization (actBits)`);
    }
    check(quant.weightGrid === undefined || quant.weightGrid === "odd" || quant.weightGrid === "channel", "E_ARGUMENT", `weightGrid must be "odd" or "channel", got '${String(quant.weightGrid)}'`);
    check(quant.weightGrid !== "channel" || wLevels === 0 || quant.weightBits! >= 2, "E_BITS", "weightGrid \"channel\" needs weight bits 2..8");
    spec = { ...quant, layers: Array.isArray(layers) ? [...layers] : layers, weightPercentile: pct };
  }

  const convs = new Map<number, TrainConvLayer>();
  const byName = new Map<string, TrainConvLayer>();
  const init = new Map<string, Float32Array>();
  const offsetSet = new Set(quant?.offsets ?? []);
  for (const n of convNodes) {
    let q: TrainQuantLayer | null = null;
    if (picked.has(n.id) && (aLevels > 0 || wLevels > 0)) {
      q = { actLevels: aLevels, weightLevels: wLevels, weightF: 0, offsets: offsetSet.has(n.name), weightGrid: quant!.weightGrid ?? "odd" };
      if (wLevels > 0 && q.weightGrid === "odd") {
        const f = quant!.weightClip?.[n.name];
        if (f !== undefined) check(Number.isFinite(f) && f > 0, "E_RANGE", `weightClip['${n.name}'] must be a positive number, got ${f}`);
        q.weightF = f ?? weightScaleOf(n.weights, spec!.weightPercentile!);
      }
    }
    const layer: TrainConvLayer = {
      id: n.id, name: n.name, k: n.k, cin: n.cin, cout: n.cout, relu: n.activation.kind === "relu", hasBias: n.bias !== null, quant: q,
    };
    convs.set(n.id, layer);
    byName.set(n.name, layer);
    init.set(paramName(n.name, "weight"), Float32Array.from(n.weights));
    if (n.bias) init.set(paramName(n.name, "bias"), Float32Array.from(n.bias));
    if (q && q.actLevels > 0) {
      const r = quant!.actRanges?.[n.name];
      if (r) {
        check(Number.isFinite(r[0]) && Number.isFinite(r[1]) && r[0] < r[1], "E_RANGE", `actRanges['${n.name}'] = [${r[0]}, ${r[1]}] is not an interval l < u`);
        init.set(paramName(n.name, "act_range"), Float32Array.of(r[0], r[1]));
      }
    }
    if (q && q.weightLevels > 0 && q.weightGrid === "odd") {
      const gm = quant!.gamma?.[n.name] ?? 1;
      check(Number.isFinite(gm) && gm > 0, "E_RANGE", `gamma['${n.name}'] must be a positive number, got ${gm}`);
      init.set(paramName(n.name, "gamma"), Float32Array.of(gm));
    }
    if (q?.offsets) {
      init.set(paramName(n.name, "offset_scale"), new Float32Array(n.cin).fill(1));
      init.set(paramName(n.name, "offset_shift"), new Float32Array(n.cin));
    }
  }
  for (const name of Object.keys(quant?.actRanges ?? {})) {
    const l = byName.get(name);
    check(l?.quant && l.quant.actLevels > 0, "E_ARGUMENT", `actRanges: '${name}' is not a conv with an activation quantizer`);
  }
  const tensorQuant = resolveTensorQuant(g, quant?.tensors ?? [], init);
  return { graph: g, convs, byName, spec, init, tensorQuant };
}

function resolveTensorQuant(g: Graph, specs: readonly TensorQuantSpec[], init: Map<string, Float32Array>): TrainTensorQuant[] {
  check(Array.isArray(specs), "E_ARGUMENT", "quant.tensors must be an array");
  const byName = new Map(g.nodes.map((n) => [n.name, n]));
  const taken = new Set<number>();
  return specs.map((t, i) => {
    check(t !== null && typeof t === "object" && Array.isArray(t.nodes) && t.nodes.length > 0, "E_ARGUMENT", `quant.tensors[${i}]: needs a non-empty list of node names`);
    check(t.grid === "full" || t.grid === "half" || t.grid === "asymmetric", "E_ARGUMENT", `quant.tensors[${i}]: grid must be "full", "half" or "asymmetric", got '${String(t.grid)}'`);
    const levels = checkBits(t.bits, 16, `quant.tensors[${i}] bits`);
    check(levels > 0, "E_BITS", `quant.tensors[${i}]: bits must be 1..16`);
    const ids = t.nodes.map((name: string) => {
      const n = byName.get(name);
      check(n !== undefined, "E_ARGUMENT", `quant.tensors[${i}]: no node named '${name}'`);
      check(n.op !== "input", "E_ARGUMENT", `quant.tensors[${i}]: the graph input '${name}' is not quantized here (it is exact 8-bit data)`);
      check(!taken.has(n.id), "E_ARGUMENT", `quant.tensors[${i}]: node '${name}' already has a quantizer`);
      taken.add(n.id);
      return n.id;
    });
    const name = paramName(t.nodes[0], "act_clip");
    check(t.nudge === undefined || typeof t.nudge === "boolean", "E_ARGUMENT", `quant.tensors[${i}]: nudge must be a boolean`);
    check(!t.nudge || (t.bits >= 2 && t.bits <= 8), "E_BITS", `quant.tensors[${i}]: the deployed (nudged) grid needs bits 2..8, got ${t.bits}`);
    if (t.init !== undefined) {
      const v = t.init;
      if (t.grid === "asymmetric") {
        check(v.length === 2 && Number.isFinite(v[0]) && Number.isFinite(v[1]) && v[0] < v[1], "E_RANGE", `quant.tensors[${i}]: init must be [l, u] with l < u, got [${[...v].join(", ")}]`);
      } else {
        check(v.length === 1 && Number.isFinite(v[0]) && v[0] > 0, "E_RANGE", `quant.tensors[${i}]: init must be [α] with α > 0, got [${[...v].join(", ")}]`);
      }
      init.set(name, Float32Array.from(v));
    }
    return { name, ids, levels, grid: t.grid, nudge: t.nudge ?? false };
  });
}

/**
 * f = P_p(|W|) (linear interpolation between order statistics, numpy's default), the fixed part
 * of ODM's weight clip u_w = f·γ. Degenerate tensors (P_p(|W|) = 0, odm.md §5) fall back to
 * max|W|, and an all-zero tensor to 1 (any grid represents it up to ±u_w/(2^w − 1)).
 */
export function weightScaleOf(weights: Float32Array, p = 99): number {
  const abs = new Float64Array(weights.length);
  let max = 0;
  for (let i = 0; i < weights.length; i++) {
    abs[i] = Math.abs(weights[i]);
    max = Math.max(max, abs[i]);
  }
  const f = percentile(abs, p);
  return f > 0 ? f : max > 0 ? max : 1;
}
