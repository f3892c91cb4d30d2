/**
 * Shape inference and structural validation shared by every graph producer (the TF.js importer,
 * the code builder, future importers). A graph that passes `validateGraph` is safe to lower:
 * ids are dense and topological, every tensor has a known channel count and spatial factor,
 * every conv's weights have exactly k·k·cin·cout finite values.
 */
import { LowbitError, type LowbitErrorCode } from "../runtime/errors.ts";
import type { Activation, Graph, Node, NodeOp } from "./ir.ts";

/** Largest channel count / kernel size / spatial factor accepted (sanity bounds, not limits of the math). */
export const MAX_CHANNELS = 1 << 16;
export const MAX_KERNEL = 63;
export const MAX_SPATIAL_FACTOR = 64;

const ACTIVATIONS = new Set([
  "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid",
  "tanh", "softplus", "softsign", "swish", "exponential",
]);

function what(n: { name: string; op: string }): string {
  return `layer '${n.name}' (${n.op})`;
}

function checkActivation(a: Activation, n: { name: string; op: string }): void {
  if (!a || !ACTIVATIONS.has(a.kind)) {
    throw new LowbitError("E_UNSUPPORTED_LAYER", `${what(n)}: unknown activation '${a?.kind}'`);
  }
  if (a.alpha !== undefined && !Number.isFinite(a.alpha)) {
    throw new LowbitError("E_RANGE", `${what(n)}: activation alpha must be finite, got ${a.alpha}`);
  }
}

/**
 * Computes (channels, spatial) of one node from its producers, checking that the op accepts
 * them. `inputs` are the producers' already-inferred shapes. For an `input` node the channel
 * count is taken from `n.channels`. Throws E_SHAPE naming the layer on a mismatch.
 */
export function inferNodeShape(
  n: NodeOp & { name: string; channels?: number },
  inputs: readonly { channels: number; spatial: number; name: string }[],
): { channels: number; spatial: number } {
  const arity = (lo: number, hi: number) => {
    if (inputs.length < lo || inputs.length > hi) {
      const want = lo === hi ? `${lo}` : hi === Infinity ? `at least ${lo}` : `${lo}..${hi}`;
      throw new LowbitError("E_SHAPE", `${what(n)} takes ${want} input(s), got ${inputs.length}`);
    }
  };
  switch (n.op) {
    case "input": {
      arity(0, 0);
      const c = n.channels ?? 0;
      if (!Number.isInteger(c) || c < 1 || c > MAX_CHANNELS) {
        throw new LowbitError("E_SHAPE", `${what(n)}: channel count must be a positive integer, got ${c}`);
      }
      return { channels: c, spatial: 1 };
    }
    case "conv2d": {
      arity(1, 1);
      const x = inputs[0];
      if (!Number.isInteger(n.k) || n.k < 1 || n.k % 2 === 0 || n.k > MAX_KERNEL) {
        throw new LowbitError("E_SHAPE", `${what(n)}: kernel size must be odd in 1..${MAX_KERNEL}, got ${n.k}`);
      }
      if (!Number.isInteger(n.cout) || n.cout < 1 || n.cout > MAX_CHANNELS) {
        throw new LowbitError("E_SHAPE", `${what(n)}: cout must be a positive integer, got ${n.cout}`);
      }
      if (n.cin !== x.channels) {
        throw new LowbitError(
          "E_SHAPE",
          `${what(n)}: kernel expects cin=${n.cin} but its input '${x.name}' has ${x.channels} channels`,
        );
      }
      const want = n.k * n.k * n.cin * n.cout;
      if (!(n.weights instanceof Float32Array) || n.weights.length !== want) {
        throw new LowbitError(
          "E_SHAPE",
          `${what(n)}: kernel must be a Float32Array of ${n.k}·${n.k}·${n.cin}·${n.cout} = ${want} values, got ${n.weights?.length}`,
        );
      }
      if (n.bias !== null && (!(n.bias instanceof Float32Array) || n.bias.length !== n.cout)) {
        throw new LowbitError("E_SHAPE", `${what(n)}: bias must be a Float32Array of ${n.cout} values, got ${n.bias?.length}`);
      }
      checkActivation(n.activation, n);
      return { channels: n.cout, spatial: x.spatial };
    }
    case "activation":
      arity(1, 1);
      checkActivation(n.activation, n);
      return { channels: inputs[0].channels, spatial: inputs[0].spatial };
    case "add": {
      arity(2, Infinity);
      const a = inputs[0];
      for (const b of inputs) {
        if (b.channels !== a.channels || b.spatial !== a.spatial) {
          throw new LowbitError(
            "E_SHAPE",
            `${what(n)}: inputs differ: '${a.name}' has ${a.channels} ch at ×${a.spatial}, '${b.name}' has ${b.channels} ch at ×${b.spatial}`,
          );
        }
      }
      return { channels: a.channels, spatial: a.spatial };
    }
    case "concat": {
      arity(1, Infinity);
      let c = 0;
      for (const b of inputs) {
        if (b.spatial !== inputs[0].spatial) {
          throw new LowbitError(
            "E_SHAPE",
            `${what(n)}: inputs at different resolutions: '${inputs[0].name}' ×${inputs[0].spatial}, '${b.name}' ×${b.spatial}`,
          );
        }
        c += b.channels;
      }
      if (c > MAX_CHANNELS) throw new LowbitError("E_SHAPE", `${what(n)}: ${c} channels exceed ${MAX_CHANNELS}`);
      return { channels: c, spatial: inputs[0].spatial };
    }
    case "scale":
      arity(1, 1);
      if (!Number.isFinite(n.factor)) throw new LowbitError("E_RANGE", `${what(n)}: factor must be finite, got ${n.factor}`);
      return { channels: inputs[0].channels, spatial: inputs[0].spatial };
    case "upsample_bilinear":
    case "upsample_nearest":
    case "depth_to_space": {
      arity(1, 1);
      if (n.op === "upsample_bilinear" && n.mode !== "half_pixel" && n.mode !== "asymmetric") {
        throw new LowbitError("E_UNSUPPORTED_LAYER", `${what(n)}: bilinear mode must be half_pixel or asymmetric, got ${String(n.mode)}`);
      }
      const f = n.op === "depth_to_space" ? n.block : n.factor;
      const s = inputs[0].spatial * f;
      if (!Number.isInteger(f) || f < 1 || s > MAX_SPATIAL_FACTOR) {
        throw new LowbitError("E_SHAPE", `${what(n)}: factor must be a positive integer (total ≤ ×${MAX_SPATIAL_FACTOR}), got ${f}`);
      }
      if (n.op !== "depth_to_space") return { channels: inputs[0].channels, spatial: s };
      const c = inputs[0].channels;
      if (c % (f * f) !== 0) {
        throw new LowbitError("E_SHAPE", `${what(n)}: ${c} input channels are not divisible by block² = ${f * f}`);
      }
      return { channels: c / (f * f), spatial: s };
    }
    case "prelu": {
      arity(1, 1);
      const c = inputs[0].channels;
      if (!(n.slopes instanceof Float32Array) || n.slopes.length !== c) {
        throw new LowbitError("E_SHAPE", `${what(n)}: slopes must be a Float32Array of ${c} values (one per channel), got ${n.slopes?.length}`);
      }
      const j = firstNonFinite(n.slopes);
      if (j >= 0) throw new LowbitError("E_RANGE", `${what(n)}: slopes[${j}] = ${n.slopes[j]} is not finite`);
      return { channels: c, spatial: inputs[0].spatial };
    }
    case "space_to_depth": {
      arity(1, 1);
      const b = n.block, x = inputs[0];
      if (!Number.isInteger(b) || b < 1 || b > 16) throw new LowbitError("E_SHAPE", `${what(n)}: block must be an integer in 1..16, got ${b}`);
      const ph = n.phase ?? 0;
      if (!Number.isInteger(ph) || ph < 0 || ph >= b) throw new LowbitError("E_SHAPE", `${what(n)}: phase must be an integer in 0..${b - 1}, got ${ph}`);
      if (x.channels * b * b > MAX_CHANNELS) throw new LowbitError("E_SHAPE", `${what(n)}: ${x.channels * b * b} channels exceed ${MAX_CHANNELS}`);
      const s = x.spatial / b;
      if (denominatorOf(s) === 0) throw new LowbitError("E_SHAPE", `${what(n)}: spatial factor ×${x.spatial}/${b} is not a ratio with a denominator ≤ ${MAX_SPATIAL_FACTOR}`);
      return { channels: x.channels * b * b, spatial: s };
    }
    case "shift":
      arity(1, 1);
      if (!Number.isInteger(n.by) || n.by === 0 || Math.abs(n.by) > 1024) throw new LowbitError("E_SHAPE", `${what(n)}: by must be a nonzero integer in −1024..1024, got ${n.by}`);
      return { channels: inputs[0].channels, spatial: inputs[0].spatial };
    case "squeeze_excite": {
      arity(1, 1);
      const c = inputs[0].channels;
      if (!Array.isArray(n.inset) || n.inset.length !== 2 || !n.inset.every((v) => Number.isInteger(v) && v >= 0)) {
        throw new LowbitError("E_SHAPE", `${what(n)}: inset must be two integers ≥ 0, got ${n.inset}`);
      }
      if (!Array.isArray(n.fc) || n.fc.length === 0) throw new LowbitError("E_SHAPE", `${what(n)}: needs at least one fully connected layer`);
      let cin = c;
      n.fc.forEach((l, i) => {
        if (l.cin !== cin || !Number.isInteger(l.cout) || l.cout < 1 || l.cout > MAX_CHANNELS) {
          throw new LowbitError("E_SHAPE", `${what(n)}: fc[${i}] maps ${l.cin} → ${l.cout}, its input has ${cin} values`);
        }
        if (!(l.weights instanceof Float32Array) || l.weights.length !== l.cin * l.cout) throw new LowbitError("E_SHAPE", `${what(n)}: fc[${i}] weights must be a Float32Array of ${l.cin}·${l.cout} values`);
        if (l.bias !== null && (!(l.bias instanceof Float32Array) || l.bias.length !== l.cout)) throw new LowbitError("E_SHAPE", `${what(n)}: fc[${i}] bias must be a Float32Array of ${l.cout} values`);
        if (!["linear", "relu", "sigmoid"].includes(l.activation)) throw new LowbitError("E_UNSUPPORTED_LAYER", `${what(n)}: fc[${i}] activation '${l.activation}'`);
        for (const a of [l.weights, l.bias]) {
          const j = a ? firstNonFinite(a) : -1;
          if (j >= 0) throw new LowbitError("E_RANGE", `${what(n)}: fc[${i}] value ${a![j]} is not finite`);
        }
        cin = l.cout;
      });
      if (cin !== c) throw new LowbitError("E_SHAPE", `${what(n)}: the gate has ${cin} values for ${c} channels`);
      return { channels: c, spatial: inputs[0].spatial };
    }
    default:
      throw new LowbitError("E_UNSUPPORTED_LAYER", `${what(n as Node)}: unknown op`);
  }
}

/** Smallest d ≤ MAX_SPATIAL_FACTOR with s·d an integer (0: none). */
export function denominatorOf(s: number): number {
  for (let d = 1; d <= MAX_SPATIAL_FACTOR; d++) if (Math.abs(s * d - Math.round(s * d)) < 1e-9) return d;
  return 0;
}

/**
 * Tile sides a graph needs (every tensor's size h·spatial must be whole): the lcm of the spatial
 * factors' denominators; 1 for graphs without space_to_depth.
 */
export function spatialAlign(g: Graph): number {
  let a = 1;
  const gcd = (x: number, y: number): number => (y ? gcd(y, x % y) : x);
  for (const n of g.nodes) {
    const d = denominatorOf(n.spatial) || 1;
    a = (a * d) / gcd(a, d);
  }
  return a;
}

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

export interface ValidateOptions {
  /** Required channel count of the graph input and output (default 3, RGB). null: any. */
  imageChannels?: number | null;
  /** Skip the NaN/Inf scan of weights (the importer already did it per tensor). */
  skipFiniteCheck?: boolean;
}

/**
 * Checks a whole graph and (re)computes every node's `channels`/`spatial` in place.
 * Structural faults (ids, order, references, names) → E_MODEL_FORMAT; shape faults → E_SHAPE;
 * non-finite weights → E_RANGE. Returns the graph for chaining.
 */
export function validateGraph(g: Graph, opts: ValidateOptions = {}): Graph {
  const fmt = (m: string, code: LowbitErrorCode = "E_MODEL_FORMAT") => new LowbitError(code, m);
  if (!g || !Array.isArray(g.nodes) || g.nodes.length === 0) throw fmt("graph has no nodes");
  const names = new Set<string>();
  let inputs = 0;
  for (let i = 0; i < g.nodes.length; i++) {
    const n = g.nodes[i];
    if (n.id !== i) throw fmt(`node '${n.name}' has id ${n.id} at index ${i}`);
    if (typeof n.name !== "string" || n.name === "") throw fmt(`node ${i} has no name`);
    if (names.has(n.name)) throw fmt(`duplicate node name '${n.name}'`);
    names.add(n.name);
    if (!Array.isArray(n.inputs)) throw fmt(`${what(n)}: inputs must be an array`);
    for (const p of n.inputs) {
      if (!Number.isInteger(p) || p < 0 || p >= i) {
        throw fmt(`${what(n)}: input ${p} is not an earlier node (graph must be topologically ordered and acyclic)`);
      }
    }
    if (n.op === "input") {
      inputs++;
      if (i !== g.input) throw fmt(`${what(n)} is an input node but graph.input is ${g.input}`);
    }
    const shape = inferNodeShape(n, n.inputs.map((p) => g.nodes[p]));
    n.channels = shape.channels;
    n.spatial = shape.spatial;
    if (n.op === "conv2d" && !opts.skipFiniteCheck) {
      for (const [t, a] of [["kernel", n.weights], ["bias", n.bias]] as const) {
        const j = a ? firstNonFinite(a) : -1;
        if (j >= 0) throw fmt(`${what(n)}: ${t}[${j}] = ${a![j]} is not finite`, "E_RANGE");
      }
    }
  }
  if (inputs !== 1) throw fmt(`graph must have exactly one input node, found ${inputs}`);
  if (!Number.isInteger(g.output) || g.output < 0 || g.output >= g.nodes.length) throw fmt(`graph.output ${g.output} is not a node`);
  const inC = g.nodes[g.input].channels;
  const out = g.nodes[g.output];
  const want = opts.imageChannels === undefined ? 3 : opts.imageChannels;
  if (want !== null && (inC !== want || out.channels !== want)) {
    throw fmt(`graph maps ${inC} → ${out.channels} channels; an image model must map ${want} → ${want}`, "E_SHAPE");
  }
  if (g.meta && g.meta.scale !== undefined && g.meta.scale !== out.spatial) {
    throw fmt(`meta.scale ${g.meta.scale} differs from the output's spatial factor ×${out.spatial}`, "E_SHAPE");
  }
  return g;
}

/**
 * Receptive-field radius of the output in LR pixels: the largest Σ (k−1)/2 over paths from the
 * input to the output, where a conv running at spatial factor s contributes (k−1)/(2s) (its
 * taps are HR pixels). Nearest upsampling / depth-to-space add nothing: HR pixel (i, j) reads
 * exactly LR pixel (⌊i/s⌋, ⌊j/s⌋); bilinear upsampling reads input pixels less than one input
 * pixel away, 1/s LR pixels at input factor s. Tiling with a margin of ⌈radius⌉ LR pixels is exact —
 * except for graphs with squeeze_excite (global pooling), whose radius here is that of the local part only.
 */
export function receptiveRadius(g: Graph): number {
  const r = new Float64Array(g.nodes.length);
  for (const n of g.nodes) {
    let m = 0;
    for (const p of n.inputs) m = Math.max(m, r[p]);
    if (n.op === "conv2d") m += (n.k - 1) / 2 / g.nodes[n.inputs[0]].spatial;
    else if (n.op === "upsample_bilinear") m += 1 / g.nodes[n.inputs[0]].spatial;
    // A block reads up to block − 1 input pixels beyond its first one (conservative on the other side).
    if (n.op === "space_to_depth") m += (n.block - 1 + (n.phase ?? 0)) / g.nodes[n.inputs[0]].spatial;
    if (n.op === "shift") m += Math.abs(n.by) / g.nodes[n.inputs[0]].spatial;
    // squeeze_excite reads the whole tile: not a local radius (GraphMeta.globalContext); counted as 0 here.
    r[n.id] = m;
  }
  return r[g.output];
}

/** Ids of the nodes the output depends on (incl. the output), ascending. */
export function liveNodes(g: Graph): number[] {
  const live = new Uint8Array(g.nodes.length);
  live[g.output] = 1;
  for (let i = g.nodes.length - 1; i >= 0; i--) if (live[i]) for (const p of g.nodes[i].inputs) live[p] = 1;
  const ids: number[] = [];
  live.forEach((v, i) => v && ids.push(i));
  return ids;
}
