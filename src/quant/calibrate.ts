/**
 * Calibration: run the FP32 model over LR images (or patches) and observe
 * every tensor of the optimized graph right after the step that produces it.
 *
 * Observed per tensor: exact min/max (MinMaxObserver), a histogram
 * (HistogramObserver, for percentile and MSE clipping), and per-channel
 * min/max/mean/std from the WASM one-pass statistics kernel. Node ids refer to
 * `optimizeGraph(graph)` — the graph the quantized compiler lowers — so the
 * statistics line up with the tensors that will be quantized.
 *
 * Images larger than `tile` are cut into tiles with the model's margin, the
 * same way inference sees them; every tile's full region is observed.
 */
import type { Graph } from "../graph/ir.ts";
import { optimizeGraph } from "../graph/passes.ts";
import { F32Plan } from "../graph/compile-f32.ts";
import { planTiles } from "../tiling/tiles.ts";
import { imageChannels, type ImageLike } from "../engine/image.ts";
import { defaultMargin } from "../engine/upscaler-api.ts";
import { LowbitError, throwIfAborted } from "../runtime/errors.ts";
import { init, type Runtime } from "../runtime/runtime.ts";
import { HistogramObserver, MinMaxObserver, PerChannelMinMaxObserver } from "./observers.ts";
import { ArenaRegion } from "../runtime/arena.ts";

interface StatsExports {
  channel_stats_acc_bytes(c: number): number;
  f32_channel_stats_nhwc(x: number, n: number, c: number, xStride: number, acc: number, out: number): void;
}

export interface CalibrationOptions {
  runtime?: Runtime;
  /** Tile size for large images (default 96). */
  tile?: number;
  /** Histogram bins per tensor (default 2048). */
  bins?: number;
  onProgress?: (fraction: number) => void;
  signal?: AbortSignal;
}

export interface TensorStats {
  minmax: MinMaxObserver;
  histogram: HistogramObserver;
  /** Per-channel min/max (from the WASM one-pass channel statistics kernel). */
  perChannel: PerChannelMinMaxObserver;
  /**
   * Per-channel mean and std (population) of each tile, averaged over tiles: the per-image
   * channel statistics the distribution-aware methods (DAQ, DFSQ) reason about.
   */
  channelMean: Float64Array;
  channelStd: Float64Array;
  /** Tiles averaged into channelMean/channelStd. */
  tiles: number;
}

export interface Calibration {
  /** The optimized graph the statistics refer to. */
  graph: Graph;
  /** Per node id of `graph`. */
  tensors: TensorStats[];
  /** Number of images and pixels observed. */
  images: number;
  pixels: number;
}

/** Runs the FP32 model over `images` (8-bit RGB/RGBA LR images) and returns per-tensor statistics. */
export async function calibrate(model: Graph, images: ImageLike[], o: CalibrationOptions = {}): Promise<Calibration> {
  if (!Array.isArray(images) || images.length === 0) throw new LowbitError("E_ARGUMENT", "calibrate needs at least one image");
  const rt = o.runtime ?? (await init());
  const g = optimizeGraph(model);
  const tensors: TensorStats[] = g.nodes.map((n) => ({
    minmax: new MinMaxObserver(),
    histogram: new HistogramObserver(o.bins ?? 2048),
    perChannel: new PerChannelMinMaxObserver(n.channels),
    channelMean: new Float64Array(n.channels),
    channelStd: new Float64Array(n.channels),
    tiles: 0,
  }));
  const maxC = Math.max(...g.nodes.map((n) => n.channels));
  const tile = o.tile ?? 96;
  const margin = defaultMargin(g);
  const grids = images.map((img) => {
    imageChannels(img, 2 ** 26);
    return planTiles(img.width, img.height, tile, margin, g.meta.borderPad ?? 0, g.meta.tileAlign ?? 1);
  });
  const maxW = Math.max(...grids.map((gr) => gr.maxW));
  const maxH = Math.max(...grids.map((gr) => gr.maxH));
  const stats = rt.kernels<StatsExports>();
  // All or nothing: an E_MEMORY while setting up leaves no blocks behind (Arena.atomic).
  const { plan, region, acc, out5 } = rt.arena.atomic(() => {
    const plan = new F32Plan(rt, g, maxW, maxH);
    const region = new ArenaRegion(rt.arena);
    return { plan, region, acc: region.alloc(stats.channel_stats_acc_bytes(maxC)), out5: region.alloc(5 * 4 * maxC) };
  });
  if (plan.info.graph.nodes.length !== g.nodes.length) throw new LowbitError("E_ARGUMENT", "internal: calibration graph changed under optimization");
  const [lo, hi] = g.meta.inputRange;
  const k = (hi - lo) / 255;
  const total = grids.reduce((a, gr) => a + gr.tiles.length, 0);
  let done = 0;
  let pixels = 0;
  try {
    for (let i = 0; i < images.length; i++) {
      const img = images[i];
      const C = img.data.length / (img.width * img.height);
      for (const t of grids[i].tiles) {
        throwIfAborted(o.signal);
        const x = plan.inputView(t.rw, t.rh);
        let d = 0;
        for (let yy = t.ry; yy < t.ry + t.rh; yy++) {
          for (let xx = t.rx; xx < t.rx + t.rw; xx++) {
            // clamped: regions reach beyond the image for nets with a border pad (replicate padding)
            const p = (Math.min(Math.max(yy, 0), img.height - 1) * img.width + Math.min(Math.max(xx, 0), img.width - 1)) * C;
            x[d++] = lo + img.data[p] * k;
            x[d++] = lo + img.data[p + 1] * k;
            x[d++] = lo + img.data[p + 2] * k;
          }
        }
        for (let id = 0; id < g.nodes.length; id++) {
          const [a, b] = plan.nodeSteps[id];
          plan.runSteps(t.rw, t.rh, a, b);
          const v = plan.tensorView(id, t.rw, t.rh);
          const ts = tensors[id];
          ts.minmax.observe(v.data, v.pixels, v.channels, v.stride, v.offset);
          ts.histogram.observe(v.data, v.pixels, v.channels, v.stride, v.offset);
          // min, max, mean, std, max|x−μ| per channel in one WASM pass (planar f32 [5][c]).
          stats.f32_channel_stats_nhwc(v.offset * 4, v.pixels, v.channels, v.stride, acc, out5);
          const c = v.channels;
          const st = rt.arena.f32.subarray(out5 / 4, out5 / 4 + 5 * c);
          ts.perChannel.observeChannelRanges(st.subarray(0, c), st.subarray(c, 2 * c));
          for (let ch = 0; ch < c; ch++) {
            ts.channelMean[ch] += (st[2 * c + ch] - ts.channelMean[ch]) / (ts.tiles + 1);
            ts.channelStd[ch] += (st[3 * c + ch] - ts.channelStd[ch]) / (ts.tiles + 1);
          }
          ts.tiles++;
        }
        pixels += t.rw * t.rh;
        o.onProgress?.(++done / total);
        await new Promise((r) => setTimeout(r, 0));
      }
    }
  } finally {
    region.free();
    plan.dispose();
  }
  return { graph: g, tensors, images: images.length, pixels };
}
