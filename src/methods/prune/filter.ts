/**
 * Structured filter pruning: remove conv output channels and the matching input channels of
 * every consumer, on any lowbit graph (bn-filter-pruning.md §3–§5).
 *
 * **Channel classes.** Every (node, channel) is an element of a union-find. Channel-wise ops tie
 * their output channel to the same input channel (activation, scale, nearest upsample); an add
 * ties channel c of every operand and of its output (a residual chain therefore becomes one class
 * spanning all its convs: the whole RDN residual stream F_0 → LRL_1 … LRL_10 is one set of 64
 * classes, pruned together or kept); a concat ties its output slice to each input (RDN dense
 * blocks, the GFF concat of all block outputs). Conv outputs start fresh classes. Removing a
 * class removes that channel from every tensor in it: the producing convs' output filters (and
 * bias), each concat's slice, and the input channel of every conv that reads a tensor of the class.
 * Classes touching the graph input, the output, or a depth-to-space (pixel shuffle needs s²·C
 * channels; spec §5 "don't prune upsampler convs") are fixed.
 *
 * **Groups and budget.** Classes with the same set of producing convs form a group (one conv's
 * filters, or a tied residual stream). Every group keeps the same fraction r of its classes
 * (at least one; spec §3 default "per-layer ratio"), the best-scoring ones, and r is found by
 * bisection so the pruned graph's conv MACs are ≤ budget × dense.
 *
 * **Criteria** (score = importance; higher is kept):
 * - `l1`: Σ over the producing convs of the L1 norm of the filter (Li et al.'s baseline).
 * - `data`: the expected squared change of every consumer's output when the channel is replaced
 *   by its calibration mean, to first order: Σ_consumers Var[x_c]·‖W[:, :, c, :]‖² (cross-channel
 *   terms ignored). With `compensate` (default for data), the mean is folded into each consumer's
 *   bias (b_o += Σ_t W[t, c, o]·E[x_c]), exact for interior pixels in expectation, so the removal
 *   error is the variance term the score ranks by. `absmean` (E|x_c|·‖W_c‖₁) is an option.
 * - `bn`: the BN closed form of the producing conv's folded BatchNormalization (criteria.ts),
 *   E[ReLU(z)] by default; needs every producer to carry `batchNorm`.
 */
import type { Graph, Node } from "../../graph/ir.ts";
import { validateGraph } from "../../graph/validate.ts";
import { foldBatchNorm, fuseActivations } from "../../graph/passes.ts";
import { LowbitError, check } from "../../runtime/errors.ts";
import { bnChannelScore, type BnScore, type InputStats } from "./criteria.ts";

type Conv = Extract<Node, { op: "conv2d" }>;

export type FilterCriterion = "l1" | "data" | "absmean" | "bn";
export const FILTER_CRITERIA: readonly FilterCriterion[] = ["l1", "data", "absmean", "bn"];

export interface ChannelClass {
  /** Members: (node id, channel). */
  members: Array<[number, number]>;
  /** Conv node ids whose output channel is in the class. */
  producers: number[];
  fixed: boolean;
}

export interface ChannelGroup {
  /** Producer conv names (sorted), the group's identity. */
  key: string;
  classes: number[];
}

export interface ChannelAnalysis {
  classes: ChannelClass[];
  /** classOf[node][channel]. */
  classOf: Int32Array[];
  /** Prunable groups. */
  groups: ChannelGroup[];
}

/** Union-find over every (node, channel) of `g` (see the file comment). */
export function analyzeChannels(g: Graph): ChannelAnalysis {
  validateGraph(g);
  const off: number[] = [];
  let total = 0;
  for (const n of g.nodes) {
    off.push(total);
    total += n.channels;
  }
  const parent = new Int32Array(total);
  for (let i = 0; i < total; i++) parent[i] = i;
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  };
  const union = (a: number, b: number): void => {
    const ra = find(a), rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  const fixedEl = new Uint8Array(total);
  const fixNode = (id: number) => fixedEl.fill(1, off[id], off[id] + g.nodes[id].channels);
  fixNode(g.input);
  fixNode(g.output);
  for (const n of g.nodes) {
    switch (n.op) {
      case "activation":
      case "scale":
      case "upsample_nearest":
      case "upsample_bilinear":
        for (let c = 0; c < n.channels; c++) union(off[n.id] + c, off[n.inputs[0]] + c);
        break;
      case "add":
        for (const i of n.inputs) for (let c = 0; c < n.channels; c++) union(off[n.id] + c, off[i] + c);
        break;
      case "concat": {
        let o = 0;
        for (const i of n.inputs) {
          const ci = g.nodes[i].channels;
          for (let c = 0; c < ci; c++) union(off[n.id] + o + c, off[i] + c);
          o += ci;
        }
        break;
      }
      case "depth_to_space":
        fixNode(n.id);
        fixNode(n.inputs[0]);
        break;
      default:
        break;
    }
  }
  const rootClass = new Map<number, number>();
  const classes: ChannelClass[] = [];
  const classOf = g.nodes.map((n) => new Int32Array(n.channels));
  for (const n of g.nodes) {
    for (let c = 0; c < n.channels; c++) {
      const r = find(off[n.id] + c);
      let k = rootClass.get(r);
      if (k === undefined) {
        k = classes.length;
        rootClass.set(r, k);
        classes.push({ members: [], producers: [], fixed: false });
      }
      const cl = classes[k];
      cl.members.push([n.id, c]);
      if (n.op === "conv2d") cl.producers.push(n.id);
      if (fixedEl[off[n.id] + c]) cl.fixed = true;
      classOf[n.id][c] = k;
    }
  }
  const groupsByKey = new Map<string, ChannelGroup>();
  classes.forEach((cl, k) => {
    if (cl.fixed || cl.producers.length === 0) {
      cl.fixed = true;
      return;
    }
    const key = cl.producers.map((id) => g.nodes[id].name).sort().join("+");
    let gr = groupsByKey.get(key);
    if (!gr) groupsByKey.set(key, (gr = { key, classes: [] }));
    gr.classes.push(k);
  });
  return { classes, classOf, groups: [...groupsByKey.values()] };
}

/** Conv MACs per LR pixel of `g` when each node keeps `kept[node]` channels. */
function macsWith(g: Graph, kept: ArrayLike<number>): number {
  let m = 0;
  for (const n of g.nodes) if (n.op === "conv2d") m += n.k * n.k * kept[n.inputs[0]] * kept[n.id] * n.spatial * n.spatial;
  return m;
}

export interface FilterPruneOptions {
  criterion: FilterCriterion;
  /** Fraction of the dense conv MACs to keep, in (0, 1]. */
  budget: number;
  /** Per-conv input statistics (criteria.ts convInputStats): needed by data/absmean and by compensation. */
  stats?: ReadonlyMap<string, InputStats>;
  /** Fold removed channels' calibration means into consumer biases (default: true when stats are given). */
  compensate?: boolean;
  /** BN score variant (default "mean" = E[ReLU(z)]). */
  bnScore?: BnScore;
  /** Conv names whose output channels must not be pruned. */
  keep?: readonly string[];
}

export interface FilterPruneResult {
  graph: Graph;
  /** Kept fraction of every group's classes. */
  ratio: number;
  /** Dense and pruned conv MACs per LR pixel. */
  macs: { dense: number; pruned: number };
  /** Per group: producer names, channels before → after. */
  groups: Array<{ key: string; before: number; after: number }>;
}

/** Importance of every class under `criterion` (higher = keep). */
export function classScores(g: Graph, a: ChannelAnalysis, o: Pick<FilterPruneOptions, "criterion" | "stats" | "bnScore">): Float64Array {
  const scores = new Float64Array(a.classes.length);
  const convs = g.nodes.filter((n): n is Conv => n.op === "conv2d");
  if (o.criterion === "l1" || o.criterion === "bn") {
    for (const cv of convs) {
      const { k, cin, cout, weights: w } = cv;
      for (let oc = 0; oc < cout; oc++) {
        const cl = a.classOf[cv.id][oc];
        if (a.classes[cl].fixed) continue;
        if (o.criterion === "l1") {
          let s = 0;
          for (let i = 0; i < k * k * cin; i++) s += Math.abs(w[i * cout + oc]);
          scores[cl] += s;
        } else {
          const bn = cv.batchNorm;
          if (!bn) throw new LowbitError("E_ARGUMENT", `filter-bn: conv '${cv.name}' has no BatchNormalization (the criterion needs BN parameters; use filter-data or filter-l1)`);
          scores[cl] += bnChannelScore(bn.gamma[oc], bn.beta[oc], cv.activation.kind === "relu", o.bnScore ?? "mean");
        }
      }
    }
    return scores;
  }
  check(o.stats !== undefined, "E_ARGUMENT", `filter criterion '${o.criterion}' needs calibration statistics`);
  for (const cv of convs) {
    const st = o.stats.get(cv.name);
    check(st !== undefined && st.mean.length === cv.cin, "E_ARGUMENT", `no calibration statistics for conv '${cv.name}'`);
    const { k, cin, cout, weights: w } = cv;
    const src = cv.inputs[0];
    for (let c = 0; c < cin; c++) {
      const cl = a.classOf[src][c];
      if (a.classes[cl].fixed) continue;
      let s2 = 0, s1 = 0;
      for (let t = 0; t < k * k; t++) {
        for (let oc = 0; oc < cout; oc++) {
          const v = w[(t * cin + c) * cout + oc];
          s2 += v * v;
          s1 += Math.abs(v);
        }
      }
      if (o.criterion === "data") scores[cl] += Math.max(0, st.meanSq[c] - st.mean[c] * st.mean[c]) * s2;
      else scores[cl] += st.meanAbs[c] * s1;
    }
  }
  return scores;
}

/** Filter-prunes `g` to `budget` of its conv MACs (see the file comment). */
export function filterPrune(g0: Graph, o: FilterPruneOptions): FilterPruneResult {
  // BN folded into its conv (keeping γ, β), ReLUs fused: a conv's output is then what consumers read.
  const g = fuseActivations(foldBatchNorm(g0));
  check(Number.isFinite(o.budget) && o.budget > 0 && o.budget <= 1, "E_ARGUMENT", `budget must be in (0, 1], got ${o.budget}`);
  check(FILTER_CRITERIA.includes(o.criterion), "E_ARGUMENT", `unknown filter criterion '${o.criterion}' (${FILTER_CRITERIA.join(", ")})`);
  for (const n of g.nodes) {
    if (n.op === "conv2d" && n.sparsity) throw new LowbitError("E_ARGUMENT", `conv '${n.name}' is N:M sparse: filter-prune before applying N:M (removing input channels would break its groups)`);
  }
  const a = analyzeChannels(g);
  const keepNames = new Set(o.keep ?? []);
  const groups = a.groups.filter((gr) => !gr.key.split("+").some((nm) => keepNames.has(nm)));
  const scores = classScores(g, a, o);
  // Order each group's classes by score (descending; ties → lower class index, i.e. lower channel).
  const order = groups.map((gr) => [...gr.classes].sort((x, y) => scores[y] - scores[x] || x - y));
  const dense = macsWith(g, g.nodes.map((n) => n.channels));
  const removedFor = (r: number): Uint8Array => {
    const removed = new Uint8Array(a.classes.length);
    order.forEach((cls) => {
      const keep = Math.max(1, Math.round(r * cls.length));
      for (let i = keep; i < cls.length; i++) removed[cls[i]] = 1;
    });
    return removed;
  };
  const keptCounts = (removed: Uint8Array): number[] => g.nodes.map((n) => {
    let c = 0;
    for (let ch = 0; ch < n.channels; ch++) if (!removed[a.classOf[n.id][ch]]) c++;
    return c;
  });
  const macsAt = (r: number) => macsWith(g, keptCounts(removedFor(r)));
  let lo = 0, hi = 1;
  if (macsAt(1) <= o.budget * dense) lo = 1;
  else {
    for (let it = 0; it < 40; it++) {
      const mid = (lo + hi) / 2;
      if (macsAt(mid) <= o.budget * dense) lo = mid;
      else hi = mid;
    }
  }
  const removed = removedFor(lo);
  const compensate = o.compensate ?? o.stats !== undefined;
  if (compensate) check(o.stats !== undefined, "E_ARGUMENT", "bias compensation needs calibration statistics");
  const graph = pruneChannels(g, a, removed, compensate ? o.stats! : null);
  const pruned = macsWith(graph, graph.nodes.map((n) => n.channels));
  return {
    graph, ratio: lo, macs: { dense, pruned },
    groups: groups.map((gr) => ({ key: gr.key, before: gr.classes.length, after: gr.classes.filter((k) => !removed[k]).length })),
  };
}

/**
 * The surgery: a new graph without the channels of the removed classes. With `stats`, each
 * consumer conv's bias absorbs Σ_t W[t, c, o]·E[x_c] of every removed input channel c.
 */
export function pruneChannels(g: Graph, a: ChannelAnalysis, removed: Uint8Array, stats: ReadonlyMap<string, InputStats> | null): Graph {
  const kept = g.nodes.map((n) => {
    const idx: number[] = [];
    for (let c = 0; c < n.channels; c++) if (!removed[a.classOf[n.id][c]]) idx.push(c);
    return idx;
  });
  for (const cl of a.classes) {
    if (!cl.fixed) continue;
    for (const [id, c] of cl.members) if (removed[a.classOf[id][c]]) throw new LowbitError("E_ARGUMENT", "internal: a fixed channel class was removed");
  }
  const nodes = g.nodes.map((n): Node => {
    const ko = kept[n.id];
    if (n.op !== "conv2d") return { ...n, channels: ko.length } as Node;
    const ki = kept[n.inputs[0]];
    if (ko.length === n.cout && ki.length === n.cin) return n;
    const { k, cin, cout, weights: w } = n;
    const cin2 = ki.length, cout2 = ko.length;
    const w2 = new Float32Array(k * k * cin2 * cout2);
    for (let t = 0; t < k * k; t++) {
      for (let i = 0; i < cin2; i++) {
        const src = (t * cin + ki[i]) * cout, dst = (t * cin2 + i) * cout2;
        for (let o = 0; o < cout2; o++) w2[dst + o] = w[src + ko[o]];
      }
    }
    let b2: Float32Array | null = n.bias ? Float32Array.from(ko, (o) => n.bias![o]) : null;
    const st = stats?.get(n.name);
    if (stats && ki.length < cin) {
      check(st !== undefined, "E_ARGUMENT", `no calibration statistics for conv '${n.name}'`);
      const add = new Float64Array(cout2);
      const keptSet = new Uint8Array(cin);
      for (const c of ki) keptSet[c] = 1;
      for (let c = 0; c < cin; c++) {
        if (keptSet[c] || st.mean[c] === 0) continue;
        for (let t = 0; t < k * k; t++) for (let o = 0; o < cout2; o++) add[o] += w[(t * cin + c) * cout + ko[o]] * st.mean[c];
      }
      b2 ??= new Float32Array(cout2);
      for (let o = 0; o < cout2; o++) b2[o] += add[o];
    }
    const { subpixelOf: _s, sourceQuant: _q, sparsity: _sp, ...rest } = n;
    const bn = n.batchNorm ? { gamma: Float32Array.from(ko, (o) => n.batchNorm!.gamma[o]), beta: Float32Array.from(ko, (o) => n.batchNorm!.beta[o]) } : undefined;
    return { ...rest, cin: cin2, cout: cout2, weights: w2, bias: b2, channels: cout2, ...(bn ? { batchNorm: bn } : {}) } as Node;
  });
  const out: Graph = { ...g, nodes };
  validateGraph(out);
  return out;
}
