/**
 * DFSQ calibration (dfsq.md §1, §4): record the input of every quantized conv
 * on the calibration patches, each patch normalised with its own per-channel
 * statistics, and choose one codebook per (input tensor, channel).
 *
 * Record. The reference keeps the raw normalised values (73,728 per channel
 * at ×4). Keeping them for every channel of esrgan-medium would take ~0.8 GB,
 * so lowbit records each channel as a histogram over the normalised range
 * [−1, 1] (`bins` bins, default 4096: a bin is 1/2048 wide, half the finest
 * spacing of U, so snapping to U sees the same data up to ±1/4096), built by
 * the WASM per-channel histogram kernel. K-means then runs on the weighted bin
 * centres — the same Lloyd iteration on the same distribution, up to the bin
 * width. Convs that read the same tensor share its codebooks (their inputs
 * are identical).
 */
import type { Graph } from "../../graph/ir.ts";
import { F32Plan } from "../../graph/compile-f32.ts";
import type { ImageLike } from "../../engine/image.ts";
import { ArenaRegion } from "../../runtime/arena.ts";
import { LowbitError, throwIfAborted } from "../../runtime/errors.ts";
import type { Runtime } from "../../runtime/runtime.ts";
import { isPostRelu } from "../scope.ts";
import { exhaustiveCodebook, selectCodebook, SortedPoints } from "./codebook.ts";
import { universalSet } from "./universal-set.ts";

interface CalibExports {
  channel_stats_acc_bytes(c: number): number;
  f32_channel_stats_nhwc(x: number, n: number, c: number, xStride: number, acc: number, out: number): void;
  f32_histogram_pc_nhwc(x: number, n: number, c: number, xStride: number, los: number, his: number, bins: number, hist: number): void;
}

export interface DfsqCalibrationOptions {
  bits: number;
  /** Histogram bins per channel over [−1, 1] (default 4096, fewer when memory would exceed ~256 MB). */
  bins?: number;
  restarts?: number;
  maxIter?: number;
  seed?: number;
  selection?: "kmeans" | "optimal";
  onProgress?: (fraction: number) => void;
  signal?: AbortSignal;
}

export interface TensorCodebooks {
  postRelu: boolean;
  /** [C][2^b] codebook points in 1/1024 units (as selected: duplicates kept). */
  codebooks: Int16Array;
  /** Weighted SSE of each channel's kept codebook (normalised units). */
  sse: Float64Array;
}

/** The FP32 runs over the patches; returns codebooks per input tensor id of the optimized graph `g`. */
export async function calibrateDfsq(rt: Runtime, g: Graph, tensorIds: number[], patches: readonly ImageLike[], o: DfsqCalibrationOptions): Promise<Map<number, TensorCodebooks>> {
  if (patches.length === 0) throw new LowbitError("E_ARGUMENT", "DFSQ calibration needs at least one patch");
  const ids = [...new Set(tensorIds)];
  const totalC = ids.reduce((a, id) => a + g.nodes[id].channels, 0);
  const bins = o.bins ?? Math.max(512, Math.min(4096, Math.floor((256 << 20) / (4 * Math.max(1, totalC)))));
  const maxW = Math.max(...patches.map((p) => p.width)), maxH = Math.max(...patches.map((p) => p.height));
  const plan = new F32Plan(rt, g, maxW, maxH);
  const region = new ArenaRegion(rt.arena);
  const k = rt.kernels<CalibExports>();
  const maxC = Math.max(...ids.map((id) => g.nodes[id].channels));
  const acc = region.alloc(k.channel_stats_acc_bytes(maxC));
  const st = region.alloc(5 * 4 * maxC);
  const los = region.alloc(4 * maxC), his = region.alloc(4 * maxC);
  const histAt = new Map<number, number>();
  for (const id of ids) histAt.set(id, region.alloc(4 * bins * g.nodes[id].channels));
  for (const id of ids) rt.arena.u8.fill(0, histAt.get(id)!, histAt.get(id)! + 4 * bins * g.nodes[id].channels);
  const post = new Map(ids.map((id) => [id, isPostRelu(g, id)]));
  const watch = new Set(ids);
  const [lo, hi] = g.meta.inputRange;
  const scale = (hi - lo) / 255;
  try {
    for (let i = 0; i < patches.length; i++) {
      throwIfAborted(o.signal);
      const p = patches[i];
      const C = p.data.length / (p.width * p.height);
      const x = plan.inputView(p.width, p.height);
      for (let j = 0, d = 0; j < p.width * p.height; j++) {
        x[d++] = lo + p.data[j * C] * scale;
        x[d++] = lo + p.data[j * C + 1] * scale;
        x[d++] = lo + p.data[j * C + 2] * scale;
      }
      for (let id = 0; id < g.nodes.length; id++) {
        const [a, b] = plan.nodeSteps[id];
        plan.runSteps(p.width, p.height, a, b);
        if (!watch.has(id)) continue;
        const v = plan.tensorView(id, p.width, p.height);
        const c = v.channels;
        k.f32_channel_stats_nhwc(v.offset * 4, v.pixels, c, v.stride, acc, st);
        const f = rt.arena.f32, s0 = st / 4;
        // Normalised range: x_n = (x − μ)/(m + 1e-8) ∈ [−1, 1] ⇔ x ∈ [μ − m', μ + m'] (μ = 0, m = max|x| after ReLU).
        for (let ch = 0; ch < c; ch++) {
          const mu = post.get(id) ? 0 : f[s0 + 2 * c + ch];
          const m = post.get(id) ? Math.max(Math.abs(f[s0 + ch]), Math.abs(f[s0 + c + ch])) : f[s0 + 4 * c + ch];
          let l = Math.fround(mu - (m + 1e-8)), h = Math.fround(mu + (m + 1e-8));
          // A constant channel normalises to 0: any range centred on μ puts it in the centre bin.
          if (!(h > l)) { l = mu - 1; h = mu + 1; }
          f[los / 4 + ch] = l;
          f[his / 4 + ch] = h;
        }
        k.f32_histogram_pc_nhwc(v.offset * 4, v.pixels, c, v.stride, los, his, bins, histAt.get(id)!);
      }
      o.onProgress?.(((i + 1) / patches.length) * 0.5);
      await new Promise((r) => setTimeout(r, 0));
    }
    // Codebooks per channel, from the weighted bin centres.
    const centres = new Float64Array(bins);
    for (let b = 0; b < bins; b++) centres[b] = -1 + ((b + 0.5) * 2) / bins;
    const out = new Map<number, TensorCodebooks>();
    const K = 1 << o.bits;
    const universe = universalSet();
    let done = 0;
    for (const id of ids) {
      const c = g.nodes[id].channels;
      const hist = rt.arena.i32.slice(histAt.get(id)! / 4, histAt.get(id)! / 4 + bins * c);
      const codebooks = new Int16Array(c * K);
      const sse = new Float64Array(c);
      for (let ch = 0; ch < c; ch++) {
        // Non-empty bins only (a post-ReLU channel's bins below 0 are empty by construction).
        const row = hist.subarray(ch * bins, (ch + 1) * bins);
        let nz = 0;
        for (let b = 0; b < bins; b++) if (row[b] > 0) nz++;
        const xs = new Float64Array(Math.max(nz, 1)), ws = new Float64Array(Math.max(nz, 1));
        if (nz === 0) ws[0] = 1; // a tensor never observed non-zero: all mass at 0
        for (let b = 0, j = 0; b < bins; b++) if (row[b] > 0) { xs[j] = post.get(id) ? Math.max(0, centres[b]) : centres[b]; ws[j++] = row[b]; }
        const points = SortedPoints.from(xs, ws);
        const r = o.selection === "optimal"
          ? exhaustiveCodebook(points, null, o.bits, universe, { postRelu: post.get(id) })
          : selectCodebook(points, null, o.bits, { restarts: o.restarts, maxIter: o.maxIter, seed: (o.seed ?? 1) * 7919 + id * 131 + ch, postRelu: post.get(id) });
        codebooks.set(r.codebook, ch * K);
        sse[ch] = r.sse;
      }
      out.set(id, { postRelu: post.get(id)!, codebooks, sse });
      throwIfAborted(o.signal);
      o.onProgress?.(0.5 + (++done / ids.length) * 0.5);
      await new Promise((r) => setTimeout(r, 0));
    }
    return out;
  } finally {
    region.free();
    plan.dispose();
  }
}
