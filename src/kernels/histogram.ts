// Histograms of f32 activations for calibration (assembly/stats/histogram.ts).
// Counts are added (u32) into `hist`; values outside [lo, hi] land in the edge
// bins, NaN is skipped. Bin arithmetic (f32): k = B/(hi − lo), t = (x − lo)·k,
// bin = clamp(trunc(t), 0, B − 1). Per tensor: hist[B]; per channel (lo/hi
// arrays): hist[c][B], channel-major.
import type { Runtime } from "../runtime/runtime.ts";
import { check, checkInt } from "../runtime/errors.ts";
import { checkArray, checkDims, checkF32, checkPtr, rtOr, spanOf, strideOf, withScratch } from "./elementwise-common.ts";
import type { PixelLayout } from "./quantize.ts";

interface Kernels {
  f32_histogram_nhwc(x: number, n: number, c: number, xs: number, lo: number, hi: number, bins: number, hist: number): void;
  f32_histogram_pc_nhwc(x: number, n: number, c: number, xs: number, los: number, his: number, bins: number, hist: number): void;
}

export const MAX_BINS = 1 << 20;

function checkRange(lo: number, hi: number, what: string): void {
  const l = Math.fround(lo), h = Math.fround(hi);
  check(Number.isFinite(l) && Number.isFinite(h) && h > l && Number.isFinite(Math.fround(h - l)), "E_RANGE", `${what} [${lo}, ${hi}] must be finite with hi > lo`);
}

/** Per tensor when lo/hi are numbers; per channel when they are arena offsets of f32[c] (`perChannel: true`). */
export function histogramAt(rt: Runtime, a: { x: number; pixels: number; channels: number; xStride?: number; bins: number; hist: number } &
  ({ perChannel?: false; lo: number; hi: number } | { perChannel: true; los: number; his: number })): void {
  checkDims(a.pixels, a.channels);
  checkInt(a.bins, 1, MAX_BINS, "bins", "E_ARGUMENT");
  const xs = strideOf(a.xStride, a.channels, "input");
  checkPtr(rt, a.x, 4 * spanOf(a.pixels, a.channels, xs), "input", 4);
  const k = rt.kernels<Kernels>();
  if (a.perChannel) {
    checkPtr(rt, a.hist, 4 * a.bins * a.channels, "histogram", 4);
    checkPtr(rt, a.los, 4 * a.channels, "lo", 4);
    checkPtr(rt, a.his, 4 * a.channels, "hi", 4);
    const f = rt.arena.f32;
    for (let i = 0; i < a.channels; i++) checkRange(f[a.los / 4 + i], f[a.his / 4 + i], `channel ${i} range`);
    k.f32_histogram_pc_nhwc(a.x, a.pixels, a.channels, xs, a.los, a.his, a.bins, a.hist);
  } else {
    checkPtr(rt, a.hist, 4 * a.bins, "histogram", 4);
    checkRange(a.lo, a.hi, "range");
    k.f32_histogram_nhwc(a.x, a.pixels, a.channels, xs, a.lo, a.hi, a.bins, a.hist);
  }
}

/**
 * Adds x's values into hist. lo/hi numbers: per tensor, hist.length ≥ bins;
 * Float32Array[c]: per channel, hist.length ≥ c·bins.
 */
export function histogram(hist: Uint32Array, x: Float32Array, layout: Omit<PixelLayout, "outStride">, lo: number | Float32Array, hi: number | Float32Array, bins: number, rt?: Runtime): void {
  check(hist instanceof Uint32Array, "E_ARGUMENT", "hist must be a Uint32Array");
  checkF32(x, "x");
  const { pixels: n, channels: c } = layout;
  checkDims(n, c);
  checkInt(bins, 1, MAX_BINS, "bins", "E_ARGUMENT");
  const xs = strideOf(layout.inStride, c, "input");
  checkArray(x, spanOf(n, c, xs), "x");
  const pc = typeof lo !== "number";
  check(pc === (typeof hi !== "number"), "E_ARGUMENT", "lo and hi must both be numbers or both Float32Arrays");
  if (pc) {
    check(lo instanceof Float32Array && lo.length === c && hi instanceof Float32Array && hi.length === c, "E_SHAPE", `per-channel lo/hi must be Float32Arrays of length ${c}`);
    for (let i = 0; i < c; i++) checkRange(lo[i], (hi as Float32Array)[i], `channel ${i} range`);
  } else checkRange(lo, hi as number, "range");
  const hb = pc ? c * bins : bins;
  checkArray(hist, hb, "hist");
  const r = rtOr(rt);
  withScratch(r, (s) => {
    const px = s.put(x, spanOf(n, c, xs));
    const ph = s.out(hist, hb, true);
    if (pc) histogramAt(r, { x: px, pixels: n, channels: c, xStride: xs, bins, hist: ph, perChannel: true, los: s.put(lo as Float32Array), his: s.put(hi as Float32Array) });
    else histogramAt(r, { x: px, pixels: n, channels: c, xStride: xs, bins, hist: ph, lo: lo as number, hi: hi as number });
  });
}
