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
}

/** Runs fn under benchmark.js until `maxTime` seconds and `minSamples` samples (default 5) are collected. */
export function time(
  name: string, fn: () => void, maxTime = Number(process.env.LOWBIT_BENCH_TIME ?? 1.5), minSamples = 5,
): Timing {
  let result: Timing | null = null;
  const b = new Benchmark(name, fn, { maxTime, minSamples, initCount: 1, async: false });
  b.on("complete", () => {
    result = { mean: b.stats.mean, rme: b.stats.rme, samples: b.stats.sample.length, min: Math.min(...b.stats.sample) };
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
      else resolve({ mean: b.stats.mean, rme: b.stats.rme, samples: b.stats.sample.length, min: Math.min(...b.stats.sample) });
    });
    b.on("error", () => reject(b.error));
    b.run({ async: true });
  });
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

/** Measures this machine's SIMD ceilings in the same process as the kernels. */
export function measurePeak(rt: Runtime): Peak {
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
    relaxedDot = (192 * iters) / r.mean / 1e9;
  }
  rt.arena.release(m);
  return { dotI16: (96 * iters) / dot.mean / 1e9, f32: (48 * iters) / fl.mean / 1e9, relaxedDot };
}

/** GMAC/s from a MAC count and a timing. */
export function gmacs(macs: number, t: Timing): number {
  return macs / t.mean / 1e9;
}

export function fmt(x: number, d = 1): string {
  return x.toFixed(d);
}
