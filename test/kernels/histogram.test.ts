import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { histogram } from "../../src/kernels/histogram.ts";
import { histogramRef } from "../../src/kernels/ref/histogram.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";

test("histogram: WASM = reference (per tensor and per channel, strides, out-of-range, NaN, accumulation)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(41);
  let bad = 0, countBad = 0;
  for (let k = 0; k < 120; k++) {
    const c = rng.pick(CHANNELS), n = rng.pick([1, 3, 50, 300]);
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0);
    const bins = rng.pick([1, 2, 7, 64, 256, 2048]);
    const x = new Float32Array((n - 1) * xs + c);
    for (let i = 0; i < x.length; i++) x[i] = rng.next() < 0.03 ? rng.pick([NaN, Infinity, -Infinity, 1e30, -1e30]) : rng.uniform(-3, 3);
    const pc = rng.next() < 0.5;
    const lo = pc ? Float32Array.from({ length: c }, () => rng.uniform(-2, 0)) : rng.uniform(-2, 0);
    const hi = pc ? Float32Array.from({ length: c }, () => rng.uniform(0.1, 2)) : rng.uniform(0.1, 2);
    const len = pc ? c * bins : bins;
    const got = new Uint32Array(len), want = new Uint32Array(len);
    for (let rep = 0; rep < 2; rep++) { // counts accumulate across calls
      histogram(got, x, { pixels: n, channels: c, inStride: xs }, lo, hi, bins, rt);
      histogramRef(want, x, n, c, xs, lo, hi, bins);
    }
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} pc=${pc} bins=${bins}: bin ${d} got ${got[d]} want ${want[d]}`);
    let nan = 0;
    for (let p = 0; p < n; p++) for (let i = 0; i < c; i++) if (Number.isNaN(x[p * xs + i])) nan++;
    if (got.reduce((s, v) => s + v, 0) !== 2 * (n * c - nan)) countBad++;
  }
  t.equal(bad, 0, "120 histograms equal the reference");
  t.equal(countBad, 0, "every non-NaN value counted exactly once per call");
  const h = new Uint32Array(4);
  histogram(h, Float32Array.of(0, 0.24, 0.25, 0.99, 1, -5, 5), { pixels: 7, channels: 1 }, 0, 1, 4, rt);
  t.deepEqual([...h], [3, 1, 0, 3], "bins [0,.25) [.25,.5) [.5,.75) [.75,1] with edge clamping");
});

test("histogram: bad arguments throw LowbitError", async (t) => {
  const rt = await testRuntime();
  const x = new Float32Array(6);
  const L = { pixels: 2, channels: 3 };
  throwsCode(t, () => histogram(new Uint32Array(4), x, L, 1, 1, 4, rt), "E_RANGE", "empty range");
  throwsCode(t, () => histogram(new Uint32Array(4), x, L, 0, Infinity, 4, rt), "E_RANGE", "infinite hi");
  throwsCode(t, () => histogram(new Uint32Array(4), x, L, 0, 1, 0, rt), "E_ARGUMENT", "0 bins");
  throwsCode(t, () => histogram(new Uint32Array(3), x, L, 0, 1, 4, rt), "E_SHAPE", "hist too short");
  throwsCode(t, () => histogram(new Uint32Array(11), x, L, new Float32Array(3), new Float32Array(3).fill(1), 4, rt), "E_SHAPE", "per-channel hist too short");
  throwsCode(t, () => histogram(new Uint32Array(12), x, L, new Float32Array(2), new Float32Array(2), 4, rt), "E_SHAPE", "per-channel ranges of the wrong length");
  throwsCode(t, () => histogram(new Uint32Array(12), x, L, 0, new Float32Array(3), 4, rt), "E_ARGUMENT", "mixed range kinds");
  throwsCode(t, () => histogram(new Int32Array(4) as unknown as Uint32Array, x, L, 0, 1, 4, rt), "E_ARGUMENT", "Int32Array hist");
});
