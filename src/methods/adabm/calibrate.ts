/**
 * AdaBM calibration (adabm.md §2–§6 "Epoch 0" and BaC): forward passes of the FP32 model only.
 *
 * Over `patches` LR patches in batches of `batch` (16, ≈ 7 batches for 100 patches), per quantized
 * layer input x:
 * - activation range [l_a, u_a] (`minmax`): the batch min and max; the first batch sets them,
 *   later batches update new = 0.9·old + 0.1·batch;
 * - layer statistic s_l: mean over batches of (the batch mean of the per-sample std of x over C,H,W,
 *   unbiased as torch.std) — computed exactly from the WASM per-channel mean/std pass:
 *   E[x] = mean_c μ_c, E[x²] = mean_c (σ_c² + μ_c²), std² = (E[x²] − E[x]²)·N/(N − 1);
 * - image thresholds: per batch l_img = P10(g), u_img = P90(g) of the patches' gradient feature
 *   (torch.quantile, linear), the first batch sets them, then 0.9/0.1.
 * Then Δb_layer = −1 below P30 of {s_l} over the image-adaptive layers, +1 above P70, else 0, and the
 * weight clip u_w by OMSE (weights.ts).
 *
 * BaC (adabm.md §4, `--bac`): once, on the first quantized training batch (2 patches), every layer
 * that is not 8-bit searches (1 − 0.01i)·(l, u), i = 0..99, at b_base + Δb_layer (no image bit) for
 * the lowest activation MSE and blends 0.5·old + 0.5·best. lowbit runs it at the end of
 * calibration on two further patches, through the quantized network as the reference does (layer
 * by layer: each layer searches on its input as produced by the already-BaC'd quantized layers
 * before it), with two compiled plans run in lockstep. [choice] The MSE of each candidate is
 * evaluated on a 4096-bin histogram of the layer input (bin means), not element by element.
 */
import type { Graph } from "../../graph/ir.ts";
import { F32Plan } from "../../graph/compile-f32.ts";
import type { DynamicPlan } from "../../graph/compile-dynamic.ts";
import type { ImageLike } from "../../engine/image.ts";
import { ArenaRegion } from "../../runtime/arena.ts";
import { LowbitError, throwIfAborted } from "../../runtime/errors.ts";
import type { Runtime } from "../../runtime/runtime.ts";
import { gradientFeature } from "../../adaptive/gradient-feature.ts";
import { quantileOfSorted } from "../odm/grid.ts";
import { setPlanInput } from "../odm/calibrate.ts";
import type { AdabmActQuantizer } from "./act-quantizer.ts";

interface StatsExports {
  channel_stats_acc_bytes(c: number): number;
  f32_channel_stats_nhwc(x: number, n: number, c: number, xStride: number, acc: number, out: number): void;
}

export interface AdabmTensorCalibration {
  /** EMA of the batch min / max. */
  lo: number;
  hi: number;
  /** s_l: mean over batches of the batch-mean per-sample std. */
  std: number;
}

export interface AdabmCalibrationResult {
  /** Per conv-input tensor id. */
  tensors: Map<number, AdabmTensorCalibration>;
  /** EMA of the per-batch P10 / P90 of g. */
  imageBits: { lower: number; upper: number };
  /** g of every calibration patch. */
  g: Float64Array;
}

/** g = 1000·½(mean|∂x| + mean|∂y|) of an 8-bit patch (adabm.md §2). */
export function patchComplexity(p: ImageLike): number {
  const C = p.data.length / (p.width * p.height);
  const f = Float32Array.from(p.data as ArrayLike<number>);
  const out = gradientFeature(new Float64Array(2), f, p.width, p.height, C, 0, 255);
  return (out[0] + out[1]) / 2;
}

/** numpy/torch linear quantile of unsorted values (copies). */
function quantile(values: ArrayLike<number>, q: number): number {
  return quantileOfSorted(Float64Array.from(values).sort(), q);
}

export async function calibrateAdabm(rt: Runtime, g: Graph, tensorIds: readonly number[], patches: readonly ImageLike[],
  o: { batch?: number; imagePercentile?: number; ema?: number; signal?: AbortSignal; onProgress?: (f: number) => void } = {}): Promise<AdabmCalibrationResult> {
  if (patches.length === 0) throw new LowbitError("E_ARGUMENT", "AdaBM calibration needs at least one patch");
  const B = o.batch ?? 16, pct = (o.imagePercentile ?? 10) / 100, beta = o.ema ?? 0.9;
  const ids = [...new Set(tensorIds)];
  const maxW = Math.max(...patches.map((p) => p.width)), maxH = Math.max(...patches.map((p) => p.height));
  const plan = new F32Plan(rt, g, maxW, maxH);
  const region = new ArenaRegion(rt.arena);
  const k = rt.kernels<StatsExports>();
  const maxC = Math.max(...ids.map((id) => g.nodes[id].channels));
  const acc = region.alloc(k.channel_stats_acc_bytes(maxC));
  const st = region.alloc(6 * 4 * maxC);
  const res = new Map<number, AdabmTensorCalibration>();
  const stdSum = new Map<number, number>();
  for (const id of ids) {
    res.set(id, { lo: 0, hi: 0, std: 0 });
    stdSum.set(id, 0);
  }
  const watch = new Set(ids);
  const gAll = new Float64Array(patches.length);
  let lower = 0, upper = 0, batches = 0;
  try {
    for (let b0 = 0; b0 < patches.length; b0 += B) {
      const batch = patches.slice(b0, b0 + B);
      const bmin = new Map<number, number>(), bmax = new Map<number, number>(), bstd = new Map<number, number>();
      for (const id of ids) {
        bmin.set(id, Infinity);
        bmax.set(id, -Infinity);
        bstd.set(id, 0);
      }
      for (let i = 0; i < batch.length; i++) {
        throwIfAborted(o.signal);
        const p = batch[i];
        gAll[b0 + i] = patchComplexity(p);
        setPlanInput(plan, g, p);
        for (let id = 0; id < g.nodes.length; id++) {
          const [a, b] = plan.nodeSteps[id];
          plan.runSteps(p.width, p.height, a, b);
          if (!watch.has(id)) continue;
          const v = plan.tensorView(id, p.width, p.height);
          const C = v.channels;
          k.f32_channel_stats_nhwc(v.offset * 4, v.pixels, C, v.stride, acc, st);
          const f = rt.arena.f32, s0 = st / 4;
          let mn = Infinity, mx = -Infinity, m1 = 0, m2 = 0;
          for (let c = 0; c < C; c++) {
            const cmin = f[s0 + c], cmax = f[s0 + C + c], mu = f[s0 + 2 * C + c], sd = f[s0 + 3 * C + c];
            if (!(Number.isFinite(cmin) && Number.isFinite(cmax))) throw new LowbitError("E_RANGE", `AdaBM calibration: tensor '${g.nodes[id].name}' holds NaN or Inf`);
            mn = Math.min(mn, cmin);
            mx = Math.max(mx, cmax);
            m1 += mu;
            m2 += sd * sd + mu * mu;
          }
          m1 /= C;
          m2 /= C;
          const N = v.pixels * C;
          const sdev = Math.sqrt(Math.max(0, m2 - m1 * m1) * (N > 1 ? N / (N - 1) : 0));
          bmin.set(id, Math.min(bmin.get(id)!, mn));
          bmax.set(id, Math.max(bmax.get(id)!, mx));
          bstd.set(id, bstd.get(id)! + sdev / batch.length);
        }
        o.onProgress?.((b0 + i + 1) / patches.length);
        await new Promise((r) => setTimeout(r, 0));
      }
      const gb = gAll.subarray(b0, b0 + batch.length);
      const lq = quantile(gb, pct), uq = quantile(gb, 1 - pct);
      for (const id of ids) {
        const r = res.get(id)!;
        if (batches === 0) {
          r.lo = bmin.get(id)!;
          r.hi = bmax.get(id)!;
        } else {
          r.lo = beta * r.lo + (1 - beta) * bmin.get(id)!;
          r.hi = beta * r.hi + (1 - beta) * bmax.get(id)!;
        }
        stdSum.set(id, stdSum.get(id)! + bstd.get(id)!);
      }
      if (batches === 0) {
        lower = lq;
        upper = uq;
      } else {
        lower = beta * lower + (1 - beta) * lq;
        upper = beta * upper + (1 - beta) * uq;
      }
      batches++;
    }
  } finally {
    region.free();
    plan.dispose();
  }
  for (const id of ids) res.get(id)!.std = stdSum.get(id)! / batches;
  return { tensors: res, imageBits: { lower, upper }, g: gAll };
}

/**
 * Δb_layer per layer from s_l (adabm.md §3): −1 below the P`p` of all s_l, +1 above P(100 − p), 0 otherwise.
 */
export function layerBitDeltas(stds: readonly number[], p = 30): number[] {
  if (stds.length === 0) return [];
  const lo = quantile(stds, p / 100), hi = quantile(stds, 1 - p / 100);
  return stds.map((s) => (s < lo ? -1 : s > hi ? 1 : 0));
}

/**
 * Bit-aware clipping search on one tensor (adabm.md §4 BaC): the candidate (1 − 0.01i)·(l, u),
 * i = 0..candidates − 1, with the lowest MSE of the b-bit grid, evaluated on a histogram of `x`.
 * Returns the best [l, u] (not yet blended).
 */
export function bacSearch(x: ArrayLike<number>, lo: number, hi: number, bits: number, candidates = 100, bins = 4096): [number, number] {
  let mn = Infinity, mx = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  if (!(mx > mn)) return [lo, hi];
  const cnt = new Float64Array(bins), sum = new Float64Array(bins);
  const k = bins / (mx - mn);
  for (let i = 0; i < x.length; i++) {
    const j = Math.min(bins - 1, Math.floor((x[i] - mn) * k));
    cnt[j]++;
    sum[j] += x[i];
  }
  const n = 2 ** bits - 1;
  let best = Infinity, bl = lo, bu = hi;
  for (let i = 0; i < candidates; i++) {
    const l = lo * (1 - 0.01 * i), u = hi * (1 - 0.01 * i);
    if (!(u > l)) continue;
    const s = (u - l) / n;
    let e = 0;
    for (let j = 0; j < bins; j++) {
      if (cnt[j] === 0) continue;
      const v = sum[j] / cnt[j];
      const c = Math.min(u, Math.max(l, v));
      const q = l + Math.min(n, Math.floor((c - l) / s + 0.5)) * s;
      e += cnt[j] * (v - q) ** 2;
    }
    if (e < best) {
      best = e;
      bl = l;
      bu = u;
    }
  }
  return [bl, bu];
}

/**
 * BaC through the quantized network: `plans` (one per patch, compiled from the calibrated model)
 * run node by node in lockstep; before each quantized conv in `targets` runs, its input on all
 * patches is searched (bacSearch at the quantizer's bits without the image offset) and the range
 * becomes 0.5·old + 0.5·best on every plan. Returns the new ranges by conv id.
 */
export function bitAwareClipping(rt: Runtime, plans: readonly DynamicPlan[], patches: readonly ImageLike[], g: Graph, targets: ReadonlySet<number>,
  blend = 0.5): Map<number, [number, number]> {
  const out = new Map<number, [number, number]>();
  plans.forEach((p, i) => {
    const img = patches[i];
    setPlanInput(p, g, img);
    p.runSteps(img.width, img.height, 0, p.nodeSteps[0][0]);
  });
  for (let id = 0; id < g.nodes.length; id++) {
    const n = g.nodes[id];
    if (n.op === "conv2d" && targets.has(id)) {
      const qs = plans.map((p) => p.quantizers.get(id) as AdabmActQuantizer);
      const q0 = qs[0];
      let total = 0;
      const views = plans.map((p, i) => p.tensorView(n.inputs[0], patches[i].width, patches[i].height));
      for (const v of views) total += v.pixels * v.channels;
      const x = new Float32Array(total);
      let o = 0;
      for (const v of views) {
        for (let q = 0; q < v.pixels; q++) {
          const b = v.offset + q * v.stride;
          x.set(v.data.subarray(b, b + v.channels), o);
          o += v.channels;
        }
      }
      const bits = Math.min(8, Math.max(2, q0.spec.baseBits + q0.spec.layerDelta));
      const [bl, bu] = bacSearch(x, q0.spec.lo, q0.spec.hi, bits);
      const lo = blend * q0.spec.lo + (1 - blend) * bl, hi = blend * q0.spec.hi + (1 - blend) * bu;
      for (const q of qs) q.setRange(lo, hi);
      out.set(id, [lo, hi]);
    }
    plans.forEach((p, i) => {
      const [a, b] = p.nodeSteps[id];
      p.runSteps(patches[i].width, patches[i].height, a, b);
    });
  }
  return out;
}
