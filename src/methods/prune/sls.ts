/**
 * SLS: layer-wise N:M sparsity learned under a MAC budget (Oh et al., CVPR 2022;
 * sls-nm-sparsity.md), on lowbit's gradient engine.
 *
 * Per sparse layer l (nmEligible: not head/tail, cin ≥ M):
 * - **Units.** From the current master weights W, rank every group of M input channels
 *   (nm-mask.ts groupRanks): unit U_i holds the weights of rank i − 1 (i = 1..M). Re-ranked every
 *   "epoch" (`epochSteps` optimizer steps), as the code re-ranks each epoch.
 * - **Scores.** k_1..k_{M−1} (init 1.0), p_j = Π_{i≤j} clamp(k_i, 0, 1.03), b_j = [p_j > 0.5].
 *   The mask is U_1 + Σ_j b_j·U_{j+1}; b is a prefix of ones, so N_l = 1 + Σ_j b_j.
 * - **Forward.** W̃ = W ⊙ mask (binary), written into the trainer as the conv's weights.
 * - **Pairs** (`pairs`, lowbit's extension for the int8 pair kernel, N:Mp): the units are the M/2 aligned
 *   channel pairs of a group ranked by Σ w² (pairGroupRanks), with M/2 − 1 scores; N_l = 2·(1 + Σ_j b_j).
 *   Everything below holds with "unit" read as "pair" and the cost of a unit doubled.
 *
 * **Gradients** (what autograd computes in the released SparseConv, with the STE
 * b_j := b_j − sg(p_j) + p_j). With G = ∂L/∂W̃ from the trainer's backward:
 *   ∂L/∂W   = G ⊙ mask                 (pruned weights get no gradient: not SR-STE)
 *   ∂L/∂b_j = Σ_{w ∈ U_{j+1}} G_w·W_w   (W̃ = Σ_i b_i·(W ⊙ U_i) is linear in b_j)
 *   ∂L/∂p_j = ∂L/∂b_j                  (STE)
 *   ∂p_j/∂k_i = Π_{i'≤j, i'≠i} k̂_{i'}   for i ≤ j and 0 ≤ k_i ≤ 1.03 (clamp passes the gradient
 *                                         inside its closed range), else 0 — computed as a product
 *                                         of the others, not p_j/k̂_i, so k̂_i = 0 is exact.
 * **Cost.** C = Σ_l (N_l/M)·MACs_l per LR pixel (MACs_l = k²·Cin·Cout·s²: the spec's
 *   k²·Cin·Cout·H·W on a training patch divided by its area, so C and the budget do not depend on
 *   the patch); the loss adds λ·a·C/C_dense (lowbit normalises by the dense cost, so λ is
 *   dimensionless: the paper's λ = 1e-10 on CARN's MAC count at its 48² LR patch and 0–255 L1 is
 *   ≈ 1.4e-3 here [derived]: 1e-10 × 3.65e9 MACs / 255). lowbit's default is λ = 0.1: measured on
 *   esrgan-medium ×2, ∂L1/∂b_j is 1e-5…1e-3 while the paper-equivalent cost gradient is ~1e-6, so
 *   only the annealing (×1.2 per 2 epochs over 300 epochs) makes the paper's λ bite; a schedule of
 *   a few hundred steps needs the larger start (it reaches 25 % in ~15–40 steps at λ 0.1–0.3).
 *   ∂C/∂p_j = MACs_l/M through the STE of N_l.
 *   Non-sparse convs count at their dense MACs in C and in the budget (the budget is a fraction of
 *   the whole model's conv MACs).
 * **Annealing.** Every 2 epochs, if the compression ratio C_dense/C grew by less than `annealThr`
 *   (relative), a ← 1.2·a (spec §2.5).
 * **Stop.** When C ≤ budget·C_dense the scores freeze (N fixed), the cost term is dropped and
 *   training continues as fine-tuning with fixed N (weights still re-ranked every epoch).
 *
 * lowbit's schedule choices (not the paper's 300 epochs × 1000 iterations; the machine runs
 * minutes): `steps` optimizer steps in total, of which at most `searchSteps` search for N; the
 * scores use their own Adam rate (`scoreLr`, default 2e-3: at 1e-4 a score cannot leave 1.0 in a
 * few hundred steps). If the search phase ends above the budget, lowbit completes it greedily —
 * repeatedly lowering N by one in the layer whose next unit has the smallest p, the order the
 * scores themselves rank — and says so in the result (`forced`).
 *
 * Export: the final mask is the one trained (the reference's get_fixed_mask uses the pruning
 * units of the last re-ranking, not a re-ranking of the final W); weights outside it are zeros and
 * the conv carries `sparsity: { n: N_l, m: M }` (N_l = M leaves it dense).
 */
import type { Graph, Node } from "../../graph/ir.ts";
import { buildTrainGraph, paramName } from "../../train/graph.ts";
import { Trainer } from "../../train/trainer.ts";
import { Adam, type Param } from "../../train/adam.ts";
import { l1Loss } from "../../train/losses.ts";
import { PatchSampler, checkTrainData, type TrainData } from "../../train/data.ts";
import { init, type Runtime } from "../../runtime/runtime.ts";
import { check, checkInt, throwIfAborted } from "../../runtime/errors.ts";
import { groupRanks, nmEligible, pairGroupRanks } from "./nm-mask.ts";

type Conv = Extract<Node, { op: "conv2d" }>;

export interface SlsOptions {
  /** Target fraction of the dense conv MACs (default 0.25). */
  budget?: number;
  /** Group size M (default 32). */
  m?: number;
  /** Total optimizer steps: search + fine-tuning (default 300). */
  steps?: number;
  /** At most this many steps search N (default steps / 2). */
  searchSteps?: number;
  /** Steps per "epoch": re-ranking and annealing period (default 10). */
  epochSteps?: number;
  /** Cost weight λ on C/C_dense (default 0.1, see the file comment). */
  lambda?: number;
  /** Annealing threshold on the relative growth of the compression ratio per 2 epochs (default 0.05). */
  annealThr?: number;
  /** Weight learning rate (default 1e-4, the CARN recipe). */
  lr?: number;
  /** Score learning rate (default 2e-3). */
  scoreLr?: number;
  /** Samples per step (default 4). */
  batch?: number;
  /** LR patch side (default 48). */
  patch?: number;
  seed?: number;
  /** Loss: "teacher" (L1 to the FP32 model, no HR needed) or "hr" (default: hr when data.hr is given). */
  target?: "teacher" | "hr";
  /** Sparse layers by name (default nmEligible). */
  layers?: readonly string[];
  /**
   * Skip the search: every sparse layer keeps this N (uniform N:M) and the run is pure fine-tuning
   * with re-ranking — the "one-shot N:M + fine-tuning" baseline on the same machinery.
   */
  fixedN?: number;
  /**
   * Pair-structured N:M ("N:Mp", M even): masks keep the N/2 aligned channel pairs of largest Σ w² per group
   * (nm-mask.ts pairGroupRanks), re-ranked like the plain masks — the pattern of the faster int8 kernel.
   * The search then learns N in steps of 2: its units are pairs (M/2 per group, M/2 − 1 scores), N = 2·N_pairs.
   * With fixedN, N must be even.
   */
  pairs?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: SlsProgress) => void;
  runtime?: Runtime;
}

export interface SlsProgress {
  step: number;
  steps: number;
  phase: "search" | "finetune";
  loss: number;
  /** Current effective MACs / dense. */
  ratio: number;
  /** Annealing factor a. */
  anneal: number;
  elapsedMs: number;
}

export interface SlsResult {
  graph: Graph;
  /** N per sparse layer. */
  n: Map<string, number>;
  /** Effective / dense MACs of the result. */
  ratio: number;
  /** Step at which the budget was reached (−1: never; then `forced`). */
  reachedAt: number;
  /** The greedy completion ran (the search did not reach the budget). */
  forced: boolean;
  losses: number[];
  ms: number;
}

const CLAMP_HI = 1.03;

/** N = 1 + #{j : Π_{i≤j} clamp(k_i, 0, 1.03) > 0.5} (spec §2.3). */
export function slsN(k: ArrayLike<number>): number {
  let p = 1, n = 1;
  for (let j = 0; j < k.length; j++) {
    p *= Math.min(CLAMP_HI, Math.max(0, k[j]));
    if (p > 0.5) n++;
    else break;
  }
  return n;
}

/** p_j = Π_{i≤j} clamp(k_i). */
export function slsProbs(k: ArrayLike<number>): Float64Array {
  const p = new Float64Array(k.length);
  let acc = 1;
  for (let j = 0; j < k.length; j++) {
    acc *= Math.min(CLAMP_HI, Math.max(0, k[j]));
    p[j] = acc;
  }
  return p;
}

/**
 * ∂L/∂k from ∂L/∂p through p_j = Π_{i≤j} clamp(k_i): out[i] = Σ_{j≥i} dp[j]·Π_{i'≤j, i'≠i} k̂_{i'},
 * zero where k_i is outside [0, 1.03].
 */
export function slsScoreGrad(out: Float64Array, k: ArrayLike<number>, dp: ArrayLike<number>): Float64Array {
  const M1 = k.length;
  const kh = Float64Array.from({ length: M1 }, (_, i) => Math.min(CLAMP_HI, Math.max(0, k[i])));
  // prefix[i] = Π_{i'<i} k̂; suffix sums S[i] = Σ_{j≥i} dp[j]·Π_{i<i'≤j} k̂  (so Π over i' ≤ j without i = prefix[i]·that).
  const prefix = new Float64Array(M1 + 1);
  prefix[0] = 1;
  for (let i = 0; i < M1; i++) prefix[i + 1] = prefix[i] * kh[i];
  let S = 0;
  for (let i = M1 - 1; i >= 0; i--) {
    // S_i = dp[i] + k̂_{i+1}·S_{i+1}
    S = dp[i] + (i + 1 < M1 ? kh[i + 1] * S : 0);
    const inside = k[i] >= 0 && k[i] <= CLAMP_HI;
    out[i] = inside ? prefix[i] * S : 0;
  }
  return out;
}

interface SparseLayer {
  name: string;
  conv: Conv;
  macs: number;
  w: Param;
  b: Param | null;
  k: Param;
  ranks: Uint8Array;
  mask: Uint8Array;
  n: number;
}

/** Trains layer-wise N (search) and the weights (fine-tuning with fixed N); see the file comment. */
export async function slsPrune(g: Graph, data: TrainData, o: SlsOptions = {}): Promise<SlsResult> {
  const t0 = Date.now();
  const budget = o.budget ?? 0.25, M = o.m ?? 32;
  const steps = o.steps ?? 300, searchSteps = o.searchSteps ?? Math.floor(steps / 2), epoch = o.epochSteps ?? 10;
  const batch = o.batch ?? 4, patch = o.patch ?? 48, lambda = o.lambda ?? 0.1, annealThr = o.annealThr ?? 0.05;
  check(Number.isFinite(budget) && budget > 0 && budget <= 1, "E_ARGUMENT", `budget must be in (0, 1], got ${budget}`);
  checkInt(M, 2, 256, "M");
  checkInt(steps, 0, 1e9, "steps");
  checkInt(searchSteps, 0, steps, "searchSteps");
  checkInt(epoch, 1, 1e9, "epochSteps");
  checkInt(batch, 1, 1 << 16, "batch");
  checkInt(patch, 4, 4096, "patch");
  check(Number.isFinite(lambda) && lambda >= 0, "E_ARGUMENT", `lambda must be ≥ 0, got ${lambda}`);
  checkTrainData(data, g.meta.scale);
  const target = o.target ?? (data.hr ? "hr" : "teacher");
  check(target === "teacher" || data.hr !== undefined, "E_ARGUMENT", "target 'hr' needs data.hr");
  throwIfAborted(o.signal);

  // Pruning unit: one input channel, or (pairs) one aligned channel pair; N counts channels either way.
  const u = o.pairs ? 2 : 1;
  check(!o.pairs || M % 2 === 0, "E_ARGUMENT", `pair-structured masks need an even M, got ${M}`);
  const Mu = M / u;
  const rt = o.runtime ?? (await init());
  const tg = buildTrainGraph(g, null);
  const convs = tg.graph.nodes.filter((n): n is Conv => n.op === "conv2d");
  let eligible: Set<number>;
  if (o.layers) {
    eligible = new Set();
    for (const nm of o.layers) {
      const c = convs.find((n) => n.name === nm);
      check(c !== undefined, "E_ARGUMENT", `sls layers: no conv named '${nm}'`);
      check(c.cin >= M, "E_ARGUMENT", `sls layers: conv '${nm}' has cin ${c.cin} < M = ${M}`);
      eligible.add(c.id);
    }
  } else eligible = nmEligible(tg.graph, { m: M });
  check(eligible.size > 0, "E_ARGUMENT", "SLS: no conv has cin ≥ M");

  const maxSide = Math.min(patch, Math.max(...data.lr.map((im) => Math.min(im.width, im.height))));
  const sampler = new PatchSampler(data, { patch, scale: g.meta.scale, inputRange: g.meta.inputRange, outputRange: g.meta.outputRange, seed: o.seed ?? 1 });
  const { trainer, teacher, gb } = rt.arena.atomic(() => {
    const trainer = new Trainer(rt, tg, { maxW: maxSide, maxH: maxSide });
    const teacher = target === "teacher" ? new Trainer(rt, buildTrainGraph(g, null), { maxW: maxSide, maxH: maxSide, forwardOnly: true }) : null;
    return { trainer, teacher, gb: trainer.createGrads() };
  });
  try {
    // Master parameters (the trainer's weight params hold W̃ = W ⊙ mask).
    const wParams: Param[] = [], sParams: Param[] = [];
    const layers: SparseLayer[] = [];
    let denseMacs = 0, fixedMacs = 0;
    for (const c of convs) {
      const macs = c.k * c.k * c.cin * c.cout * c.spatial * c.spatial;
      denseMacs += macs;
      const w: Param = { name: paramName(c.name, "weight"), layer: c.name, kind: "weight", value: Float32Array.from(c.weights) };
      wParams.push(w);
      const b: Param | null = c.bias ? { name: paramName(c.name, "bias"), layer: c.name, kind: "bias", value: Float32Array.from(c.bias) } : null;
      if (b) wParams.push(b);
      if (!eligible.has(c.id)) {
        fixedMacs += macs;
        continue;
      }
      const k: Param = { name: `${c.name}/sls_scores`, layer: c.name, kind: "gamma", value: new Float32Array(Mu - 1).fill(1) };
      sParams.push(k);
      const n = w.value.length;
      layers.push({ name: c.name, conv: c, macs, w, b, k, ranks: new Uint8Array(n), mask: new Uint8Array(n), n: M });
    }
    const denseFull = wParams.filter((p) => p.kind === "weight");
    const byLayer = new Map(denseFull.map((p) => [p.layer, p]));
    const optW = new Adam(wParams, { lr: o.lr ?? 1e-4 });
    // Pairs keep the default rate although a pair score must travel about twice as far for the same N (N/M = 1/4: Π
    // of 4 scores ≤ 0.5, k ≈ 0.84, instead of Π of 8, k ≈ 0.92), so the search takes longer (esrgan-medium ×2, 300
    // steps: budget reached at step 128 vs 46 without pairs). Doubling the rate (step 63) ended 0.29 dB lower on the
    // eval set; at ×4 (120 steps, greedy completion either way) 0.18 dB higher — no consistent gain, so no special case.
    const optS = new Adam(sParams, { lr: o.scoreLr ?? 2e-3 });

    const cost = (): number => fixedMacs + layers.reduce((s, l) => s + (l.n / M) * l.macs, 0);
    const rerank = (): void => {
      for (const l of layers) (o.pairs ? pairGroupRanks : groupRanks)(l.ranks, l.w.value, l.conv.k, l.conv.cin, l.conv.cout, M);
    };
    const refreshN = (): void => {
      for (const l of layers) l.n = u * slsN(l.k.value);
    };
    const pushWeights = (): void => {
      const vals = new Map<string, Float32Array>();
      for (const p of wParams) if (!layers.some((l) => l.w === p)) vals.set(p.name, p.value);
      for (const l of layers) {
        const wt = new Float32Array(l.w.value.length);
        for (let i = 0; i < wt.length; i++) {
          const keep = l.ranks[i] < l.n ? 1 : 0;
          l.mask[i] = keep;
          wt[i] = keep ? l.w.value[i] : 0;
        }
        vals.set(l.w.name, wt);
      }
      trainer.setParams(vals);
    };

    if (o.fixedN !== undefined) checkInt(o.fixedN, 1, M, `fixedN (M = ${M})`);
    if (o.pairs) check(o.fixedN === undefined || o.fixedN % 2 === 0, "E_ARGUMENT", `pair-structured masks need an even N, got ${o.fixedN}`);
    let searching = searchSteps > 0 && budget < 1 && o.fixedN === undefined;
    let anneal = 1, reachedAt = -1, forced = false;
    let lastRatio = denseMacs / cost(), epochsSinceAnneal = 0;
    const history: number[] = [];
    rerank();
    if (o.fixedN !== undefined) for (const l of layers) l.n = o.fixedN;
    else refreshN();
    if (o.fixedN === undefined && cost() <= budget * denseMacs) {
      searching = false;
      reachedAt = 0;
    }
    const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

    for (let step = 0; step < steps; step++) {
      throwIfAborted(o.signal);
      if (step > 0 && step % epoch === 0) {
        rerank();
        if (searching && ++epochsSinceAnneal >= 2) {
          epochsSinceAnneal = 0;
          const ratio = denseMacs / cost();
          if ((ratio - lastRatio) / lastRatio < annealThr) anneal *= 1.2;
          lastRatio = ratio;
        }
      }
      if (searching && step >= searchSteps) {
        // The search phase is over without reaching the budget: complete it greedily.
        forced = greedyComplete(layers, M, u, denseMacs, fixedMacs, budget);
        searching = false;
      }
      pushWeights();
      gb.zero();
      let sum = 0;
      for (let b = 0; b < batch; b++) {
        const s = sampler.next();
        teacher?.forward(s.lr, s.w, s.h, { fp: true });
        trainer.forward(s.lr, s.w, s.h);
        const r = target === "hr" ? l1Loss(trainer, s.hr!, { key: "hr" }) : l1Loss(trainer, teacher!.output(), { key: "teacher" });
        sum += r.loss;
        trainer.backward(r.seeds, gb);
      }
      const G = trainer.gradients(gb, 1 / batch);
      const grads = new Map<string, ArrayLike<number>>();
      for (const p of wParams) {
        const gp = G.get(p.name);
        if (gp) grads.set(p.name, gp);
      }
      for (const l of layers) {
        const gw = G.get(l.w.name)!;
        const dw = new Float32Array(gw.length);
        const db = searching ? new Float64Array(Mu - 1) : null;
        const W = l.w.value;
        for (let i = 0; i < gw.length; i++) {
          if (l.mask[i]) dw[i] = gw[i];
          const r = u === 1 ? l.ranks[i] : l.ranks[i] >> 1; // the weight's unit (pair ranks are 2·r + parity)
          if (db && r > 0) db[r - 1] += gw[i] * W[i];
        }
        grads.set(l.w.name, dw);
        if (db) {
          // Cost term: ∂(λ·a·C/C_dense)/∂b_j = λ·a·u·MACs_l/(M·C_dense) for every j (N = u·(1 + Σ b)).
          const dc = (lambda * anneal * u * l.macs) / (M * denseMacs);
          for (let j = 0; j < Mu - 1; j++) db[j] += dc;
          const dk = slsScoreGrad(new Float64Array(Mu - 1), l.k.value, db);
          optS.step(new Map([[l.k.name, Float32Array.from(dk)]]));
        }
      }
      optW.step(grads);
      const loss = sum / batch + (searching ? (lambda * anneal * cost()) / denseMacs : 0);
      history.push(loss);
      if (searching) {
        refreshN();
        if (cost() <= budget * denseMacs) {
          searching = false;
          reachedAt = step + 1;
        }
      }
      o.onProgress?.({ step: step + 1, steps, phase: searching ? "search" : "finetune", loss, ratio: cost() / denseMacs, anneal, elapsedMs: Date.now() - t0 });
      await tick();
    }
    if (o.fixedN === undefined && cost() > budget * denseMacs) forced = greedyComplete(layers, M, u, denseMacs, fixedMacs, budget) || forced;
    // Final masks: the last ranking (what was trained) at the final N.
    const nByName = new Map<string, number>();
    const out: Node[] = g.nodes.map((n) => {
      if (n.op !== "conv2d") return n;
      const w = byLayer.get(n.name)!.value;
      const l = layers.find((x) => x.name === n.name);
      const bias = wParams.find((p) => p.layer === n.name && p.kind === "bias")?.value ?? null;
      const { subpixelOf: _s, sourceQuant: _q, sparsity: _sp, ...rest } = n;
      if (!l) return { ...rest, weights: Float32Array.from(w), bias: bias ? Float32Array.from(bias) : null } as Node;
      nByName.set(n.name, l.n);
      const wt = new Float32Array(w.length);
      for (let i = 0; i < wt.length; i++) wt[i] = l.ranks[i] < l.n ? w[i] : 0;
      return { ...rest, weights: wt, bias: bias ? Float32Array.from(bias) : null, ...(l.n < M ? { sparsity: { n: l.n, m: M, ...(o.pairs ? { pairs: true } : {}) } } : {}) } as Node;
    });
    const graph: Graph = { ...g, nodes: out };
    return { graph, n: nByName, ratio: cost() / denseMacs, reachedAt, forced, losses: history, ms: Date.now() - t0 };
  } finally {
    gb.dispose();
    trainer.dispose();
    teacher?.dispose();
  }
}

/**
 * Lowers N one unit at a time, always in the layer whose next-to-drop unit has the smallest
 * priority p (ties: the larger MAC saving), until the cost meets the budget. Returns whether it
 * changed anything.
 */
function greedyComplete(layers: SparseLayer[], M: number, u: number, dense: number, fixed: number, budget: number): boolean {
  let changed = false;
  const cost = () => fixed + layers.reduce((s, l) => s + (l.n / M) * l.macs, 0);
  while (cost() > budget * dense) {
    let best: SparseLayer | null = null, bestP = Infinity;
    for (const l of layers) {
      if (l.n <= u) continue;
      const p = slsProbs(l.k.value)[l.n / u - 2];
      if (p < bestP || (p === bestP && best && l.macs > best.macs)) {
        best = l;
        bestP = p;
      }
    }
    if (!best) break;
    best.n -= u;
    // Keep the scores consistent with N: the dropped unit's cumulative product falls to 0.5.
    const k = best.k.value;
    const pr = slsProbs(k);
    const j = best.n / u - 1;
    if (pr[j] > 0.5) k[j] = Math.min(k[j], CLAMP_HI) * (0.5 / pr[j]) * (1 - 1e-6);
    changed = true;
  }
  return changed;
}
