import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import {
  channelStats, channelStatsAccBytes, channelStatsResetAt, channelStatsAccumulateAt, channelStatsFinalizeAt,
  STAT_MIN, STAT_MAX, STAT_MEAN, STAT_STD, STAT_MAX_ABS_DEV,
} from "../../src/kernels/channel-stats.ts";
import { channelStatsRef } from "../../src/kernels/ref/channel-stats.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";

/** Independent two-pass f64 statistics (no shift), for the accuracy check. */
function twoPass(x: ArrayLike<number>, n: number, c: number, s: number, ch: number, scale = 1, zp = 0): number[] {
  let mn = Infinity, mx = -Infinity, sum = 0;
  for (let p = 0; p < n; p++) { const v = scale * (x[p * s + ch] - zp); mn = Math.min(mn, v); mx = Math.max(mx, v); sum += v; }
  const mean = sum / n;
  let ss = 0;
  for (let p = 0; p < n; p++) { const d = scale * (x[p * s + ch] - zp) - mean; ss += d * d; }
  return [mn, mx, mean, Math.sqrt(ss / n), Math.max(mx - mean, mean - mn)];
}

test("channel stats (f32): WASM = reference bit for bit; accurate vs two-pass f64 even far from 0", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(21);
  let bad = 0, inaccurate = 0, cases = 0;
  for (let k = 0; k < 150; k++) {
    const c = rng.pick(CHANNELS), n = rng.pick([1, 2, 5, 31, 32, 33, 100, 500]);
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0);
    const offset = rng.pick([0, 0, 1e4, -3e5]), spread = rng.pick([1, 1e-2, 100]);
    const x = new Float32Array((n - 1) * xs + c);
    for (let i = 0; i < x.length; i++) x[i] = offset + spread * rng.normal();
    const got = new Float32Array(5 * c), want = new Float32Array(5 * c);
    channelStats(got, x, { pixels: n, channels: c, inStride: xs }, undefined, rt);
    channelStatsRef(want, x, n, c, xs);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} c=${c} n=${n}: at ${d} got ${got[d]} want ${want[d]}`);
    for (let ch = 0; ch < c; ch++) {
      const tp = twoPass(x, n, c, xs, ch);
      for (let r = 0; r < 5; r++) {
        const tol = r === STAT_STD || r === STAT_MAX_ABS_DEV ? 1e-5 * tp[3] + 2e-7 * Math.abs(tp[2]) : 2e-7 * Math.abs(tp[r]) + 1e-30;
        if (!(Math.abs(got[r * c + ch] - tp[r]) <= tol + 1e-12)) inaccurate++;
      }
    }
  }
  t.equal(bad, 0, `${cases} cases bit-exact`);
  t.equal(inaccurate, 0, "every statistic within f32 rounding of the two-pass f64 result (std to 1e-5 relative at mean/std up to 3e7)");
  const one = new Float32Array(5 * 3);
  channelStats(one, Float32Array.of(2, -1, 7), { pixels: 1, channels: 3 }, undefined, rt);
  t.deepEqual([...one], [2, -1, 7, 2, -1, 7, 2, -1, 7, 0, 0, 0, 0, 0, 0], "1×1 image: min = max = mean, std = dev = 0");
});

test("channel stats (8-bit): WASM = reference bit for bit, real units, exact integer sums", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(22);
  let bad = 0, inaccurate = 0, cases = 0;
  for (let k = 0; k < 300; k++) {
    const c = rng.pick(CHANNELS), n = rng.pick([1, 2, 7, 32, 33, 100, 1000]);
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0);
    const signed = rng.next() < 0.5;
    const T = signed ? Int8Array : Uint8Array;
    const lo = signed ? -128 : 0, hi = signed ? 127 : 255;
    const x = new T((n - 1) * xs + c);
    const mode = rng.int(0, 2);
    for (let i = 0; i < x.length; i++) x[i] = mode === 0 ? rng.int(lo, hi) : mode === 1 ? rng.pick([lo, hi]) : rng.int(hi - 3, hi);
    const scale = Math.fround(rng.uniform(0.001, 0.5)), zp = rng.int(lo, hi);
    const got = new Float32Array(5 * c), want = new Float32Array(5 * c);
    channelStats(got, x, { pixels: n, channels: c, inStride: xs }, { scale, zeroPoint: zp }, rt);
    channelStatsRef(want, x, n, c, xs, scale, zp);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} signed=${signed} c=${c} n=${n}: at ${d} got ${got[d]} want ${want[d]}`);
    for (let ch = 0; ch < c; ch++) {
      const tp = twoPass(x, n, c, xs, ch, scale, zp);
      for (let r = 0; r < 5; r++) if (!(Math.abs(got[r * c + ch] - tp[r]) <= 3e-7 * Math.abs(tp[r]) + 1e-6 * scale)) inaccurate++;
    }
  }
  t.equal(bad, 0, `${cases} cases bit-exact`);
  t.equal(inaccurate, 0, "within f32 rounding of the two-pass f64 statistics");
});

test("channel stats: accumulating tiles equals one pass over the whole image", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(23);
  for (const input of ["f32", "u8", "i8"] as const) {
    const c = 13, n = 257;
    const es = input === "f32" ? 4 : 1;
    const x = input === "f32" ? rng.fillF32(new Float32Array(n * c), -3, 5) : input === "u8" ? rng.fillUint8(new Uint8Array(n * c)) : rng.fillInt8(new Int8Array(n * c));
    const a = rt.arena, m = a.mark();
    const px = a.put(x), acc = a.alloc(channelStatsAccBytes(c)), po = a.alloc(20 * c);
    channelStatsResetAt(rt, acc, c);
    for (const [p0, p1] of [[0, 1], [1, 100], [100, 101], [101, 257]]) {
      channelStatsAccumulateAt(rt, { x: px + p0 * c * es, pixels: p1 - p0, channels: c, acc, input });
    }
    channelStatsFinalizeAt(rt, { acc, channels: c, out: po });
    const tiled = new Float32Array(a.memory.buffer, po, 5 * c).slice();
    a.release(m);
    const whole = new Float32Array(5 * c);
    channelStats(whole, x, { pixels: n, channels: c }, undefined, rt);
    t.equal(firstDiff(tiled, whole), -1, `${input}: 4 tiles = one pass (bit-exact)`);
    t.ok(whole[STAT_MIN * c] <= whole[STAT_MEAN * c] && whole[STAT_MEAN * c] <= whole[STAT_MAX * c], `${input}: min ≤ mean ≤ max`);
  }
});

test("channel stats: bad arguments throw LowbitError", async (t) => {
  const rt = await testRuntime();
  throwsCode(t, () => channelStats(new Float32Array(15), new Float32Array(0), { pixels: 0, channels: 3 }, undefined, rt), "E_SHAPE", "zero pixels");
  throwsCode(t, () => channelStats(new Float32Array(14), new Float32Array(6), { pixels: 2, channels: 3 }, undefined, rt), "E_SHAPE", "out shorter than 5·c");
  throwsCode(t, () => channelStats(new Float32Array(15), new Float32Array(6), { pixels: 2, channels: 3 }, { scale: 1, zeroPoint: 0 }, rt), "E_ARGUMENT", "scale on f32 input");
  throwsCode(t, () => channelStats(new Float32Array(15), new Uint8Array(6), { pixels: 2, channels: 3 }, { scale: -1, zeroPoint: 0 }, rt), "E_RANGE", "negative scale");
  throwsCode(t, () => channelStats(new Float32Array(15), new Int8Array(6), { pixels: 2, channels: 3 }, { scale: 1, zeroPoint: 128 }, rt), "E_RANGE", "i8 zero point 128");
  const a = rt.arena, m = a.mark();
  const acc = a.alloc(channelStatsAccBytes(3));
  channelStatsResetAt(rt, acc, 3);
  throwsCode(t, () => channelStatsFinalizeAt(rt, { acc, channels: 3, out: a.alloc(60) }), "E_ARGUMENT", "finalize with no pixels");
  throwsCode(t, () => channelStatsAccumulateAt(rt, { x: 0, pixels: 1, channels: 3, acc: acc + 4, input: "f32" }), "E_ARGUMENT", "misaligned accumulator");
  a.release(m);
});
