// Shared benchmark plumbing (benchmark.js): one place that turns a timed
// function into GMAC/s, ms per megapixel and "% of peak" lines.
import Benchmark from "benchmark";
import type { Runtime } from "../src/runtime/runtime.ts";

export interface Timing {
  /** Mean seconds per call. */
  mean: number;
  /** Relative margin of error (%). */
  rme: number;
  samples: number;
  /** Fastest sample, seconds per call: the least disturbed estimate when other processes share the CPU. */
  min: number;
  /** Seconds per call of every sample. */
  sample: number[];
}

/** Runs fn under benchmark.js until `maxTime` seconds and `minSamples` samples (default 5) are collected. */
export function time(
  name: string, fn: () => void, maxTime = Number(process.env.LOWBIT_BENCH_TIME ?? 1.5), minSamples = 5,
): Timing {
  let result: Timing | null = null;
  const b = new Benchmark(name, fn, { maxTime, minSamples, initCount: 1, async: false });
  b.on("complete", () => {
    result = { mean: b.stats.mean, rme: b.stats.rme, samples: b.stats.sample.length, min: Math.min(...b.stats.sample), sample: [...b.stats.sample] };
  });
  b.on("error", (e: unknown) => {
    throw (e as { target?: { error?: unknown } }).target?.error ?? e;
  });
  b.run();
  if (!result) throw new Error(`benchmark ${name} produced no result`);
  return result;
}

/**
 * Like {@link time} for a function returning a promise (benchmark.js `defer`): each sample is one
 * awaited call. For slow calls (≥ 50 ms) one call is one sample.
 */
export function timeAsync(name: string, fn: () => Promise<unknown>, maxTime = 1.5, minSamples = 5): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const b = new Benchmark(name, {
      defer: true,
      maxTime,
      minSamples,
      initCount: 1,
      fn: (deferred: { resolve(): void }) => {
        fn().then(() => deferred.resolve(), reject);
      },
    });
    b.on("complete", () => {
      if (b.error) reject(b.error);
      else resolve({ mean: b.stats.mean, rme: b.stats.rme, samples: b.stats.sample.length, min: Math.min(...b.stats.sample), sample: [...b.stats.sample] });
    });
    b.on("error", () => reject(b.error));
    b.run({ async: true });
  });
}

/** Two-sided 95 % Student t critical values by degrees of freedom (as benchmark.js computes rme). */
const T95 = [NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179];

/** Merges timings of the same function taken in several rounds into one (all samples pooled). */
export function pool(ts: Timing[]): Timing {
  const sample = ts.flatMap((t) => t.sample);
  const n = sample.length;
  const mean = sample.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(sample.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : NaN;
  const t = n - 1 < T95.length ? T95[n - 1] : n - 1 <= 20 ? 2.1 : n - 1 <= 30 ? 2.05 : 1.96;
  return { mean, rme: (100 * t * sd) / Math.sqrt(n) / mean, samples: n, min: Math.min(...sample), sample };
}

export interface Peak {
  /** GMAC/s of register-resident i32x4.dot_i16x8_s + add. */
  dotI16: number;
  /** GMAC/s of register-resident f32x4 mul + add. */
  f32: number;
  /** GMAC/s of relaxed_dot_i8x16_i7x16_add_s, or null when the runtime is not relaxed. */
  relaxedDot: number | null;
}

interface ProbeExports {
  peak_dot_i16x8(src: number, iters: number): number;
  peak_f32x4_muladd(src: number, iters: number): number;
  peak_relaxed_dot_i8i7(src: number, iters: number): number;
}

/**
 * Measures this machine's SIMD ceilings in the same process as the kernels. `stat` "min" uses the
 * fastest sample (a ceiling is what the core does undisturbed; robust when other processes share the CPU).
 */
export function measurePeak(rt: Runtime, stat: "mean" | "min" = "mean"): Peak {
  const k = rt.kernels<ProbeExports>();
  const m = rt.arena.mark();
  const src = rt.arena.alloc(32);
  const f = rt.arena.f32;
  for (let i = 0; i < 8; i++) f[src / 4 + i] = 1 + i * 1e-7;
  const iters = 1_000_000;
  const dot = time("peak dot_i16x8", () => k.peak_dot_i16x8(src, iters));
  const fl = time("peak f32x4 mul+add", () => k.peak_f32x4_muladd(src, iters));
  let relaxedDot: number | null = null;
  if (rt.info.backend === "relaxed") {
    const r = time("peak relaxed dot i8i7", () => k.peak_relaxed_dot_i8i7(src, iters));
    relaxedDot = (192 * iters) / r[stat] / 1e9;
  }
  rt.arena.release(m);
  return { dotI16: (96 * iters) / dot[stat] / 1e9, f32: (48 * iters) / fl[stat] / 1e9, relaxedDot };
}

/** GMAC/s from a MAC count and a timing. */
export function gmacs(macs: number, t: Timing): number {
  return macs / t.mean / 1e9;
}

export function fmt(x: number, d = 1): string {
  return x.toFixed(d);
}

/**
 * The centre side×side LR crop of an eval pair (smaller images kept whole) and the HR crop aligned with it
 * (origin and size × scale), both RGB: what the simulation scripts score on.
 */
export function centreCropPair(lr: { width: number; height: number; data: Uint8Array }, hr: { width: number; data: Uint8Array }, side: number, scale: number) {
  const w = Math.min(side, lr.width), h = Math.min(side, lr.height), x0 = (lr.width - w) >> 1, y0 = (lr.height - h) >> 1;
  const lrc = { width: w, height: h, channels: 3, data: new Uint8Array(w * h * 3) };
  for (let y = 0; y < h; y++) lrc.data.set(lr.data.subarray(((y0 + y) * lr.width + x0) * 3, ((y0 + y) * lr.width + x0 + w) * 3), y * w * 3);
  const hrc = { width: w * scale, height: h * scale, channels: 3, data: new Uint8Array(w * h * scale * scale * 3) };
  for (let y = 0; y < h * scale; y++) {
    const s = ((y0 * scale + y) * hr.width + x0 * scale) * 3;
    hrc.data.set(hr.data.subarray(s, s + w * scale * 3), y * w * scale * 3);
  }
  return { lr: lrc, hr: hrc, w, h };
}
