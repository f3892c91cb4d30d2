// Per-channel statistics over H×W (assembly/stats/channel-stats.ts): min, max,
// mean, population std and max|x − mean|, in one streaming pass with shifted
// f64 sums (exact integer sums for 8-bit codes). Output: planar f32 [5][c]
// (rows STAT_MIN … STAT_MAX_ABS_DEV), each row a per-channel vector.
// For a tiled image: channelStatsResetAt once, AccumulateAt per tile, FinalizeAt.
import type { Runtime } from "../runtime/runtime.ts";
import { check } from "../runtime/errors.ts";
import {
  type Codes, checkArray, checkCodes, checkDims, checkF32, checkInputZeroPoint, checkPositive, checkPtr, isSigned, rtOr,
  spanOf, strideOf, withScratch,
} from "./elementwise-common.ts";

interface Kernels {
  channel_stats_acc_bytes(c: number): number;
  channel_stats_reset(acc: number, c: number): void;
  f32_channel_stats_accumulate_nhwc(x: number, n: number, c: number, xs: number, acc: number): void;
  q8_channel_stats_accumulate_nhwc(x: number, n: number, c: number, xs: number, signed: number, acc: number): void;
  channel_stats_finalize(acc: number, c: number, scale: number, zp: number, out: number): void;
}

/** Row indices of the [5][c] output. */
export const STAT_MIN = 0, STAT_MAX = 1, STAT_MEAN = 2, STAT_STD = 3, STAT_MAX_ABS_DEV = 4;

/** Accumulator bytes for c channels (32 + 34·c, allocate 8-aligned). */
export function channelStatsAccBytes(c: number): number {
  return 32 + 34 * c;
}

export function channelStatsResetAt(rt: Runtime, acc: number, channels: number): void {
  checkDims(0, channels);
  checkPtr(rt, acc, channelStatsAccBytes(channels), "stats accumulator", 8);
  rt.kernels<Kernels>().channel_stats_reset(acc, channels);
}

/** Adds pixels to an accumulator; `input` says the element type (8-bit: signed or not). */
export function channelStatsAccumulateAt(rt: Runtime, a: { x: number; pixels: number; channels: number; xStride?: number; acc: number; input: "f32" | "u8" | "i8" }): void {
  checkDims(a.pixels, a.channels);
  const xs = strideOf(a.xStride, a.channels, "input");
  const es = a.input === "f32" ? 4 : 1;
  check(a.input === "f32" || a.input === "u8" || a.input === "i8", "E_ARGUMENT", `input must be 'f32', 'u8' or 'i8'`);
  checkPtr(rt, a.x, es * spanOf(a.pixels, a.channels, xs), "input", es);
  checkPtr(rt, a.acc, channelStatsAccBytes(a.channels), "stats accumulator", 8);
  const k = rt.kernels<Kernels>();
  if (a.input === "f32") k.f32_channel_stats_accumulate_nhwc(a.x, a.pixels, a.channels, xs, a.acc);
  else k.q8_channel_stats_accumulate_nhwc(a.x, a.pixels, a.channels, xs, a.input === "i8" ? 1 : 0, a.acc);
}

/** Writes [5][c] f32 at `out`, values mapped v ↦ scale·(v − zeroPoint) (defaults 1, 0). */
export function channelStatsFinalizeAt(rt: Runtime, a: { acc: number; channels: number; out: number; scale?: number; zeroPoint?: number }): void {
  checkDims(0, a.channels);
  checkPtr(rt, a.acc, channelStatsAccBytes(a.channels), "stats accumulator", 8);
  checkPtr(rt, a.out, 20 * a.channels, "stats output", 4);
  const scale = a.scale ?? 1, zp = a.zeroPoint ?? 0;
  checkPositive(scale, "scale");
  check(Number.isInteger(zp) && Math.abs(zp) <= 255, "E_RANGE", `zero point ${zp}`);
  check(new Float64Array(rt.arena.memory.buffer, a.acc, 1)[0] > 0, "E_ARGUMENT", "stats accumulator holds no pixels");
  rt.kernels<Kernels>().channel_stats_finalize(a.acc, a.channels, scale, zp, a.out);
}

/**
 * out (length ≥ 5·channels) = planar stats of x: f32, or 8-bit codes in real units
 * scale·(code − zeroPoint) when q is given (else code units). pixels ≥ 1.
 */
export function channelStats(out: Float32Array, x: Float32Array | Codes, layout: { pixels: number; channels: number; inStride?: number },
  q?: { scale: number; zeroPoint: number }, rt?: Runtime): void {
  checkF32(out, "out");
  const f32 = x instanceof Float32Array;
  if (!f32) checkCodes(x, "x");
  check(!(f32 && q), "E_ARGUMENT", "scale/zero point apply to 8-bit input only");
  const { pixels: n, channels: c } = layout;
  checkDims(n, c, 1);
  const xs = strideOf(layout.inStride, c, "input");
  checkArray(x, spanOf(n, c, xs), "x");
  checkArray(out, 5 * c, "out");
  if (q) {
    checkPositive(q.scale, "scale");
    checkInputZeroPoint(q.zeroPoint, isSigned(x as Codes), "zero point");
  }
  const r = rtOr(rt);
  withScratch(r, (s) => {
    const acc = s.alloc(channelStatsAccBytes(c));
    const o = s.out(out, 5 * c, false);
    channelStatsResetAt(r, acc, c);
    channelStatsAccumulateAt(r, { x: s.put(x, spanOf(n, c, xs)), pixels: n, channels: c, xStride: xs, acc, input: f32 ? "f32" : isSigned(x as Codes) ? "i8" : "u8" });
    channelStatsFinalizeAt(r, { acc, channels: c, out: o, scale: q?.scale ?? 1, zeroPoint: q?.zeroPoint ?? 0 });
  });
}
