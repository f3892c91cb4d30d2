/**
 * Filter-importance criteria (bn-filter-pruning.md §2) and the calibration statistics the
 * data-driven criterion uses.
 *
 * BN closed forms [derived in the spec]: a BN channel outputs z = γ·x̂ + β, x̂ ~ N(0, 1), so
 * z ~ N(β, γ²). With s = |γ|, t = β/s, φ/Φ the standard normal pdf/cdf and a = max(0, z):
 *   P(a > 0) = Φ(t),  E[a] = β·Φ(t) + s·φ(t),  E[a²] = (β² + s²)·Φ(t) + β·s·φ(t),
 *   Var[a] = E[a²] − E[a]².
 * γ = 0 degenerates to z = β: E[a] = max(β, 0), P(a > 0) = [β > 0], Var = 0. A channel with no
 * ReLU after the BN (e.g. one feeding an add) is scored by E[z²] = β² + γ² (spec §2).
 */
import type { Graph } from "../../graph/ir.ts";
import { buildTrainGraph } from "../../train/graph.ts";
import { Trainer } from "../../train/trainer.ts";
import { PatchSampler, type TrainData } from "../../train/data.ts";
import { runtime as defaultRuntime, type Runtime } from "../../runtime/runtime.ts";
import { check, checkInt, throwIfAborted } from "../../runtime/errors.ts";

export type BnScore = "mean" | "prob" | "var";
export const BN_SCORES: readonly BnScore[] = ["mean", "prob", "var"];

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Standard normal pdf. */
export function normPdf(t: number): number {
  return INV_SQRT_2PI * Math.exp(-0.5 * t * t);
}

/**
 * Standard normal cdf Φ(t) = erfc(−t/√2)/2 via the W. J. Cody rational erfc (as in Numerical
 * Recipes' erfcc, relative error < 1.2e-7 everywhere): good to f32 precision, which is all a
 * ranking needs.
 */
export function normCdf(t: number): number {
  const x = -t / Math.SQRT2;
  const z = Math.abs(x);
  const u = 1 / (1 + 0.5 * z);
  const r = u * Math.exp(-z * z - 1.26551223 + u * (1.00002368 + u * (0.37409196 + u * (0.09678418 + u * (-0.18628806 +
    u * (0.27886807 + u * (-1.13520398 + u * (1.48851587 + u * (-0.82215223 + u * 0.17087277)))))))));
  const erfc = x >= 0 ? r : 2 - r;
  return 0.5 * erfc;
}

/** Moments of a = ReLU(z), z ~ N(β, γ²). */
export function reluMoments(gamma: number, beta: number): { prob: number; mean: number; meanSq: number; var: number } {
  const s = Math.abs(gamma);
  if (s === 0 || !Number.isFinite(beta / s)) {
    const a = Math.max(beta, 0);
    return { prob: beta > 0 ? 1 : 0, mean: a, meanSq: a * a, var: 0 };
  }
  const t = beta / s, P = normCdf(t), p = normPdf(t);
  const mean = beta * P + s * p;
  const meanSq = (beta * beta + s * s) * P + beta * s * p;
  return { prob: P, mean, meanSq, var: Math.max(0, meanSq - mean * mean) };
}

/** BN filter score of one channel; `relu` = the BN output goes through a ReLU. */
export function bnChannelScore(gamma: number, beta: number, relu: boolean, score: BnScore = "mean"): number {
  if (!relu) return beta * beta + gamma * gamma;
  const m = reluMoments(gamma, beta);
  return score === "mean" ? m.mean : score === "prob" ? m.prob : m.var;
}

/** Per-channel input statistics of every conv (by conv name), from calibration patches. */
export interface InputStats {
  /** E[x_c] of the conv's input channel c. */
  mean: Float64Array;
  /** E[x_c²]. */
  meanSq: Float64Array;
  /** E[|x_c|]. */
  meanAbs: Float64Array;
}

export interface StatsOptions {
  /** Number of calibration patches (default 16). */
  samples?: number;
  /** LR patch side (default 64). */
  patch?: number;
  seed?: number;
  runtime?: Runtime;
  signal?: AbortSignal;
}

/**
 * Runs the FP32 model (lowbit's training-engine forward, WASM) on seeded calibration patches and
 * returns, per conv name, the per-input-channel mean, mean square and mean |x| of what the conv
 * reads (pixel-weighted over all patches). Only LR images are needed.
 */
export function convInputStats(g: Graph, data: TrainData, o: StatsOptions = {}): Map<string, InputStats> {
  const n = o.samples ?? 16, patch = o.patch ?? 64;
  checkInt(n, 1, 1 << 16, "calibration samples");
  checkInt(patch, 4, 4096, "calibration patch");
  const rt = o.runtime ?? defaultRuntime();
  const tg = buildTrainGraph(g, null);
  const maxSide = Math.min(patch, Math.max(...data.lr.map((im) => Math.min(im.width, im.height))));
  const sampler = new PatchSampler(data, { patch, scale: g.meta.scale, inputRange: g.meta.inputRange, outputRange: g.meta.outputRange, seed: o.seed ?? 7, augment: false });
  const tr = new Trainer(rt, tg, { maxW: maxSide, maxH: maxSide, forwardOnly: true });
  try {
    const acc = new Map<string, { s: Float64Array; s2: Float64Array; a: Float64Array; count: number }>();
    const convs = [...tg.convs.values()];
    for (const c of convs) acc.set(c.name, { s: new Float64Array(c.cin), s2: new Float64Array(c.cin), a: new Float64Array(c.cin), count: 0 });
    for (let i = 0; i < n; i++) {
      throwIfAborted(o.signal);
      const s = sampler.next();
      tr.forward(s.lr, s.w, s.h, { fp: true });
      for (const c of convs) {
        const x = tr.read(tg.graph.nodes[c.id].inputs[0]);
        const a = acc.get(c.name)!, C = c.cin;
        for (let p = 0; p < x.length; p += C) {
          for (let ch = 0; ch < C; ch++) {
            const v = x[p + ch];
            a.s[ch] += v;
            a.s2[ch] += v * v;
            a.a[ch] += Math.abs(v);
          }
        }
        a.count += x.length / C;
      }
    }
    const out = new Map<string, InputStats>();
    for (const [name, a] of acc) {
      check(a.count > 0, "E_ARGUMENT", "calibration produced no pixels");
      out.set(name, { mean: a.s.map((v) => v / a.count), meanSq: a.s2.map((v) => v / a.count), meanAbs: a.a.map((v) => v / a.count) });
    }
    return out;
  } finally {
    tr.dispose();
  }
}
