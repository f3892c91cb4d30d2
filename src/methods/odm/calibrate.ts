/**
 * ODM calibration (odm.md §2 "Activation range"): run the FP32 model over calibration patches and,
 * per conv input tensor, take the P1 and P99 percentiles of the whole tensor on each patch (a
 * "batch" of one patch), averaged over patches. Percentiles interpolate linearly between order
 * statistics (grid.ts quantileSelect, O(N) selection). Alongside, the per-patch channel means and stds (WASM
 * channel-stats kernel) feed the mismatch report and the v1 offsets (offsets.ts).
 *
 * With `offsets` for a tensor the percentiles are those of x·a + b — the tensor the quantizer
 * sees — while the channel statistics stay those of x. With `measure` (an ODM activation spec per
 * tensor) the pass also accumulates the quantizer's relative error Σ(x − x̂)²/Σx² there.
 */
import type { Graph } from "../../graph/ir.ts";
import { F32Plan } from "../../graph/compile-f32.ts";
import type { ImageLike } from "../../engine/image.ts";
import { ArenaRegion } from "../../runtime/arena.ts";
import { LowbitError, throwIfAborted } from "../../runtime/errors.ts";
import type { Runtime } from "../../runtime/runtime.ts";
import type { OdmActSpec } from "../dynamic/model.ts";
import { OdmActQuantizer } from "./act-quantizer.ts";
import { quantileSelect } from "./grid.ts";
import type { ChannelImageStats, ChannelOffsets } from "./offsets.ts";

interface StatsExports {
  channel_stats_acc_bytes(c: number): number;
  f32_channel_stats_nhwc(x: number, n: number, c: number, xStride: number, acc: number, out: number): void;
}

export interface OdmTensorCalibration {
  tensor: number;
  channels: number;
  /** Mean over patches of the low / high percentile of the (offset) tensor. */
  lo: number;
  hi: number;
  /** Per-patch channel statistics of x (without offsets). */
  stats: ChannelImageStats;
  /** Σ(x − x̂)²/Σx² of the `measure` quantizer over all patches (NaN when not measured). */
  relError: number;
}

export interface OdmCalibrationOptions {
  /** Percentiles in percent (defaults 1 and 99). */
  low?: number;
  high?: number;
  offsets?: ReadonlyMap<number, ChannelOffsets>;
  measure?: ReadonlyMap<number, OdmActSpec>;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

/** Fills the f32 input of `plan` from 8-bit RGB (the model's input range). */
export function setPlanInput(plan: Pick<F32Plan, "inputView">, g: Graph, img: ImageLike): void {
  const [lo, hi] = g.meta.inputRange;
  const scale = (hi - lo) / 255;
  const C = img.data.length / (img.width * img.height);
  const x = plan.inputView(img.width, img.height);
  for (let j = 0, d = 0; j < img.width * img.height; j++) {
    x[d++] = lo + img.data[j * C] * scale;
    x[d++] = lo + img.data[j * C + 1] * scale;
    x[d++] = lo + img.data[j * C + 2] * scale;
  }
}

export async function calibrateOdm(rt: Runtime, g: Graph, tensorIds: readonly number[], patches: readonly ImageLike[], o: OdmCalibrationOptions = {}): Promise<Map<number, OdmTensorCalibration>> {
  if (patches.length === 0) throw new LowbitError("E_ARGUMENT", "ODM calibration needs at least one patch");
  const low = (o.low ?? 1) / 100, high = (o.high ?? 99) / 100;
  if (!(low >= 0 && low < high && high <= 1)) throw new LowbitError("E_ARGUMENT", `ODM percentiles must satisfy 0 ≤ low < high ≤ 100, got ${o.low ?? 1}, ${o.high ?? 99}`);
  const ids = [...new Set(tensorIds)];
  const maxW = Math.max(...patches.map((p) => p.width)), maxH = Math.max(...patches.map((p) => p.height));
  const plan = new F32Plan(rt, g, maxW, maxH);
  const region = new ArenaRegion(rt.arena);
  const k = rt.kernels<StatsExports>();
  const maxC = Math.max(...ids.map((id) => g.nodes[id].channels));
  const acc = region.alloc(k.channel_stats_acc_bytes(maxC));
  const st = region.alloc(5 * 4 * maxC);
  const P = patches.length;
  const res = new Map<number, OdmTensorCalibration>();
  const errs = new Map<number, { e: number; s: number; q: OdmActQuantizer | null }>();
  for (const id of ids) {
    const C = g.nodes[id].channels;
    res.set(id, { tensor: id, channels: C, lo: 0, hi: 0, stats: { images: P, channels: C, mean: new Float64Array(P * C), std: new Float64Array(P * C) }, relError: NaN });
    const spec = o.measure?.get(id);
    errs.set(id, { e: 0, s: 0, q: spec ? new OdmActQuantizer(spec, C) : null });
  }
  const watch = new Set(ids);
  let buf = new Float32Array(0), deq = new Float32Array(0);
  try {
    for (let i = 0; i < P; i++) {
      throwIfAborted(o.signal);
      const p = patches[i];
      setPlanInput(plan, g, p);
      for (let id = 0; id < g.nodes.length; id++) {
        const [a, b] = plan.nodeSteps[id];
        plan.runSteps(p.width, p.height, a, b);
        if (!watch.has(id)) continue;
        const v = plan.tensorView(id, p.width, p.height);
        const C = v.channels, N = v.pixels * C;
        const r = res.get(id)!;
        k.f32_channel_stats_nhwc(v.offset * 4, v.pixels, C, v.stride, acc, st);
        const f = rt.arena.f32, s0 = st / 4;
        for (let c = 0; c < C; c++) {
          r.stats.mean[i * C + c] = f[s0 + 2 * C + c];
          r.stats.std[i * C + c] = f[s0 + 3 * C + c];
        }
        if (buf.length < N) buf = new Float32Array(N);
        const x = buf.subarray(0, N);
        const off = o.offsets?.get(id);
        for (let q = 0; q < v.pixels; q++) {
          const base = v.offset + q * v.stride;
          if (off) for (let c = 0; c < C; c++) x[q * C + c] = f[base + c] * off.scale[c] + off.shift[c];
          else for (let c = 0; c < C; c++) x[q * C + c] = f[base + c];
        }
        const er = errs.get(id)!;
        if (er.q) {
          if (deq.length < N) deq = new Float32Array(N);
          er.q.reference(deq, f, v.offset, v.stride, v.pixels);
          for (let q = 0; q < v.pixels; q++) {
            for (let c = 0; c < C; c++) {
              const xv = f[v.offset + q * v.stride + c];
              er.e += (xv - deq[q * C + c]) ** 2;
              er.s += xv * xv;
            }
          }
        }
        for (let q = 0; q < N; q++) if (Number.isNaN(x[q])) throw new LowbitError("E_RANGE", `ODM calibration: tensor '${g.nodes[id].name}' holds NaN`);
        r.lo += quantileSelect(x, low) / P;
        r.hi += quantileSelect(x, high) / P;
      }
      o.onProgress?.((i + 1) / P);
      await new Promise((r) => setTimeout(r, 0));
    }
  } finally {
    region.free();
    plan.dispose();
  }
  for (const [id, er] of errs) if (er.q) res.get(id)!.relError = er.s > 0 ? er.e / er.s : 0;
  return res;
}
