/**
 * N:M structured sparsity on HWIO conv weights (sls-nm-sparsity.md §2, §4).
 *
 * A **group** is the M consecutive input channels [g·M, g·M + M) ∩ [0, cin) at one (kh, kw, o):
 * in HWIO memory the elements (t·cin + c)·cout + o for c in the chunk (t = kh·k + kw). The last
 * chunk of a layer whose cin is not a multiple of M is shorter; SLS's code zero-pads it to M, and
 * padded zeros rank below every real weight, so a short chunk keeps min(N, len) real weights —
 * which is what this module does without materialising the padding.
 *
 * **Ranking** within a group: descending |w|, ties broken by the lower channel index (spec §4,
 * a fixed rule so masks are reproducible). rank 0 is the largest magnitude; "keep N" keeps ranks
 * 0..N−1. SLS's pruning unit Ŵ_i (the i-th largest weight of each group, 1-based) is rank i − 1.
 *
 * **Pair-structured N:M** ("N:Mp", `pairs: true`, N and M even): a group's nonzeros lie in at most N/2
 * aligned channel pairs (2j, 2j+1) — the pattern the int8 pair kernel runs without shuffles
 * (assembly/conv/qs8-nm-conv-nhwc.ts). Pairs are ranked by their **sum of squares** w_{2j}² + w_{2j+1}²,
 * descending, ties → the lower pair: dropping a set of weights costs Σ w² of the weight tensor's
 * Frobenius error, which plain magnitude pruning minimises one weight at a time (keeping the N largest
 * |w| = dropping the smallest w²); keeping the N/2 pairs of largest Σ w² minimises the same error under
 * the pair constraint (an |w| sum would not: |w| = (1, 0) then ties with (0.5, 0.5), which removes less
 * energy). In an odd short last group the last channel pairs with a phantom zero channel.
 *
 * **MACs** are counted per LR pixel (k²·cin·cout·s², s = the conv's spatial factor), dense and
 * effective; a sparse layer's effective MACs are its allowed nonzeros per output pixel,
 * k²·cout·Σ_chunks min(N, len) (= N/M of dense when M divides cin). Zeros a dense layer happens
 * to have are not subtracted: effective MACs are what an N:M kernel executes.
 */
import type { Graph, Node } from "../../graph/ir.ts";
import { LowbitError, check, checkInt } from "../../runtime/errors.ts";
import { layerRoles } from "../../quant/config.ts";
import { checkNmPattern, checkNmSparsity } from "../../kernels/nm-conv.ts";

export interface NMPattern {
  n: number;
  m: number;
  /** Pair-structured ("N:Mp"): ≤ N/2 aligned channel pairs per group (N, M even). */
  pairs?: boolean;
}

type Conv = Extract<Node, { op: "conv2d" }>;

/** Parses "N:M" (1 ≤ N ≤ M ≤ 256), or "N:Mp" for the pair-structured pattern (N, M even). */
export function parsePattern(s: string): NMPattern {
  const r = /^\s*(\d+)\s*:\s*(\d+)\s*(p?)\s*$/.exec(s);
  if (!r) throw new LowbitError("E_ARGUMENT", `N:M pattern must look like 8:32, 2:4 or 8:32p (channel pairs), got '${s}'`);
  const p: NMPattern = r[3] ? { n: Number(r[1]), m: Number(r[2]), pairs: true } : { n: Number(r[1]), m: Number(r[2]) };
  checkPattern(p);
  return p;
}

export function checkPattern(p: NMPattern): void {
  checkInt(p.m, 1, 256, "N:M pattern M");
  checkInt(p.n, 1, p.m, `N:M pattern N (M = ${p.m})`);
  checkNmPattern(p);
}

/** `{n, m}`, with `pairs: true` only when set (the IR's `sparsity` field). */
export function patternField(p: NMPattern): NMPattern {
  return p.pairs ? { n: p.n, m: p.m, pairs: true } : { n: p.n, m: p.m };
}

function checkShape(w: ArrayLike<number>, k: number, cin: number, cout: number): void {
  checkInt(k, 1, 31, "kernel size");
  checkInt(cin, 1, 1 << 16, "cin");
  checkInt(cout, 1, 1 << 16, "cout");
  check(w.length === k * k * cin * cout, "E_SHAPE", `weights have ${w.length} values, k·k·cin·cout = ${k * k * cin * cout}`);
}

/**
 * out[i] = rank of weight i within its group (0 = largest |w|, ties → lower channel first).
 * `out` has k·k·cin·cout entries (Uint8Array suffices for M ≤ 256).
 */
export function groupRanks(out: Uint8Array, w: ArrayLike<number>, k: number, cin: number, cout: number, m: number): Uint8Array {
  return rankUnits(out, w, k, cin, cout, m, 1);
}

/**
 * Pair ranks: out[i] = 2·r + (c & 1) for weight i of input channel c in the aligned pair of rank r within
 * its group (0 = largest w_{2j}² + w_{2j+1}², ties → lower pair first), so "rank < N" keeps the N/2 best
 * pairs (N even) — the same test as groupRanks' for plain N:M. M even.
 */
export function pairGroupRanks(out: Uint8Array, w: ArrayLike<number>, k: number, cin: number, cout: number, m: number): Uint8Array {
  check(m % 2 === 0, "E_ARGUMENT", `pair ranks need an even M, got ${m}`);
  return rankUnits(out, w, k, cin, cout, m, 2);
}

/** Ranks units of u consecutive channels (u = 1: |w|; u = 2: aligned pairs by Σ w²) within every group. */
function rankUnits(out: Uint8Array, w: ArrayLike<number>, k: number, cin: number, cout: number, m: number, u: 1 | 2): Uint8Array {
  checkShape(w, k, cin, cout);
  checkInt(m, 1, 256, "M");
  check(out.length === w.length, "E_SHAPE", `ranks need ${w.length} entries, got ${out.length}`);
  const idx = new Int32Array(m), mag = new Float64Array(m);
  for (let t = 0; t < k * k; t++) {
    for (let o = 0; o < cout; o++) {
      for (let c0 = 0; c0 < cin; c0 += m) {
        const len = Math.ceil(Math.min(m, cin - c0) / u), end = Math.min(cin, c0 + m);
        for (let j = 0; j < len; j++) {
          idx[j] = j;
          if (u === 1) mag[j] = Math.abs(w[(t * cin + c0 + j) * cout + o]);
          else {
            const a = w[(t * cin + c0 + 2 * j) * cout + o], b = c0 + 2 * j + 1 < end ? w[(t * cin + c0 + 2 * j + 1) * cout + o] : 0;
            mag[j] = a * a + b * b;
          }
        }
        // Insertion sort (groups are ≤ 256): descending magnitude, stable → lower channel wins ties.
        for (let a = 1; a < len; a++) {
          const v = idx[a];
          let b = a - 1;
          while (b >= 0 && mag[idx[b]] < mag[v]) {
            idx[b + 1] = idx[b];
            b--;
          }
          idx[b + 1] = v;
        }
        for (let r = 0; r < len; r++) {
          for (let c = c0 + idx[r] * u, e = Math.min(end, c + u); c < e; c++) out[(t * cin + c) * cout + o] = r * u + (c - c0) % u;
        }
      }
    }
  }
  return out;
}

/**
 * Magnitude one-shot N:M mask: out[i] = 1 for the N largest |w| of each group, else 0 (pairs: both channels
 * of the N/2 pairs of largest Σ w²).
 */
export function nmMask(out: Uint8Array, w: ArrayLike<number>, k: number, cin: number, cout: number, p: NMPattern): Uint8Array {
  checkPattern(p);
  (p.pairs ? pairGroupRanks : groupRanks)(out, w, k, cin, cout, p.m);
  for (let i = 0; i < out.length; i++) out[i] = out[i] < p.n ? 1 : 0;
  return out;
}

/** out = w with every weight outside the N:M magnitude mask set to 0 (out may alias w). */
export function applyNm(out: Float32Array, w: ArrayLike<number>, k: number, cin: number, cout: number, p: NMPattern): Float32Array {
  check(out.length === w.length, "E_SHAPE", `out has ${out.length} values, weights ${w.length}`);
  const mask = nmMask(new Uint8Array(w.length), w, k, cin, cout, p);
  for (let i = 0; i < out.length; i++) out[i] = mask[i] ? w[i] : 0;
  return out;
}

/** Whether HWIO weights satisfy N:M (at most N nonzeros in every group). */
export function satisfiesNm(w: ArrayLike<number>, k: number, cin: number, cout: number, p: NMPattern): boolean {
  checkShape(w, k, cin, cout);
  checkPattern(p);
  // One definition of the pattern for the whole library: the sparse kernels' own check.
  return checkNmSparsity(w, k, cin, cout, p.n, p.m, p.pairs === true);
}

/** Nonzeros an N:M layer may have per (kh, kw, o): Σ over the cin chunks of min(N, len). */
export function keptPerColumn(cin: number, p: NMPattern): number {
  let s = 0;
  for (let c0 = 0; c0 < cin; c0 += p.m) s += Math.min(p.n, cin - c0);
  return s;
}

/**
 * Which convs N:M sparsity applies to by default: every conv except the head (reads the image)
 * and the tail (writes the image), as SLS's CARN recipe keeps its 3↔64 entry and exit convs
 * dense (spec §2.8), and any conv with cin < M (spec §4: nothing to group).
 */
export function nmEligible(g: Graph, p: Pick<NMPattern, "m">): Set<number> {
  const roles = layerRoles(g);
  const out = new Set<number>();
  for (const n of g.nodes) {
    if (n.op !== "conv2d") continue;
    const r = roles.get(n.id)!;
    if (r.has("head") || r.has("tail")) continue;
    if (n.cin < p.m) continue;
    out.add(n.id);
  }
  return out;
}

export interface LayerMacs {
  name: string;
  /** Dense MACs per LR pixel. */
  dense: number;
  /** Executed MACs per LR pixel (N:M layers: the allowed nonzeros). */
  effective: number;
  sparsity: NMPattern | null;
}

export interface GraphMacs {
  /** Dense MACs per LR pixel. */
  dense: number;
  /** Effective MACs per LR pixel. */
  effective: number;
  /** effective / dense. */
  ratio: number;
  layers: LayerMacs[];
}

/** Conv MACs of a graph per LR input pixel, dense and effective (N:M layers by their `sparsity`). */
export function graphMacs(g: Graph): GraphMacs {
  const layers: LayerMacs[] = [];
  let dense = 0, eff = 0;
  for (const n of g.nodes) {
    if (n.op !== "conv2d") continue;
    const s2 = n.spatial * n.spatial;
    const d = n.k * n.k * n.cin * n.cout * s2;
    const sp = n.sparsity ?? null;
    const e = sp ? n.k * n.k * n.cout * keptPerColumn(n.cin, sp) * s2 : d;
    layers.push({ name: n.name, dense: d, effective: e, sparsity: sp ? patternField(sp) : null });
    dense += d;
    eff += e;
  }
  return { dense, effective: eff, ratio: dense > 0 ? eff / dense : 1, layers };
}

/**
 * A new graph where each conv named in `patterns` (or by node id) has its weights masked to its
 * N:M pattern by magnitude and `sparsity` set; N = M leaves the layer dense (no field). Layers
 * with cin < M are rejected (E_ARGUMENT): use nmEligible to choose layers. Other nodes are shared.
 */
export function sparsifyGraph(g: Graph, patterns: ReadonlyMap<string | number, NMPattern>): Graph {
  const byName = new Map<string, Conv>();
  for (const n of g.nodes) if (n.op === "conv2d") byName.set(n.name, n);
  const want = new Map<number, NMPattern>();
  for (const [key, p] of patterns) {
    checkPattern(p);
    const n = typeof key === "number" ? g.nodes[key] : byName.get(key);
    check(n !== undefined && n.op === "conv2d", "E_ARGUMENT", `sparsifyGraph: no conv ${typeof key === "number" ? `with id ${key}` : `named '${key}'`}`);
    check(n.cin >= p.m || p.n === p.m, "E_ARGUMENT", `sparsifyGraph: conv '${n.name}' has cin ${n.cin} < M = ${p.m}`);
    want.set(n.id, p);
  }
  const nodes = g.nodes.map((n): Node => {
    const p = want.get(n.id);
    if (!p || n.op !== "conv2d") return n;
    const { sparsity: _old, subpixelOf: _sp, ...rest } = n;
    if (p.n >= p.m) return { ...rest, weights: Float32Array.from(n.weights) } as Node;
    return { ...rest, weights: applyNm(new Float32Array(n.weights.length), n.weights, n.k, n.cin, n.cout, p), sparsity: patternField(p) } as Node;
  });
  return { ...g, nodes };
}

/** Uniform magnitude N:M over the eligible convs (nmEligible) — the one-shot baseline. */
export function oneShotNm(g: Graph, p: NMPattern): Graph {
  checkPattern(p);
  const pats = new Map<number, NMPattern>();
  for (const id of nmEligible(g, p)) pats.set(id, p);
  return sparsifyGraph(g, pats);
}
