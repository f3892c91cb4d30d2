import test from "tape";
import { LowbitError } from "../src/runtime/errors.ts";
import { GraphBuilder } from "../src/graph/builder.ts";
import {
  HistogramObserver,
  MAGIC,
  MIN_SCALE,
  MinMaxObserver,
  PerChannelMinMaxObserver,
  UniformQuantizer,
  affineParams,
  affineParamsPerChannel,
  channelAbsMax,
  channelParams,
  codeRange,
  dequantize,
  dequantizeArray,
  dequantizeWeights,
  fakeQuantize,
  fakeQuantizeArray,
  fakeQuantizeWeights,
  foldInputZeroPoint,
  formatBits,
  histogramMse,
  int4PackedBytes,
  layerBits,
  layerRoles,
  minmaxRange,
  mseRange,
  mseWeightClip,
  packInt4,
  parseBits,
  percentileRange,
  quantConfig,
  quantize,
  quantizeArray,
  quantizeBias,
  quantizeWeights,
  representableRange,
  resolveLayers,
  roundHalfEven,
  uniformQuantizer,
  unpackInt4,
  type QuantParams,
} from "../src/quant/index.ts";
import { Rng } from "./util/rng.ts";

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof LowbitError ? e.code : `non-LowbitError: ${String(e)}`;
  }
  return "no error";
}

const f = Math.fround;

/** A random range end of varied magnitude (incl. exact zeros, tiny and huge values). */
function randEnd(rng: Rng): number {
  const r = rng.next();
  if (r < 0.1) return 0;
  const mag = 10 ** rng.uniform(-8, 6);
  return (rng.next() < 0.5 ? -1 : 1) * mag * rng.next();
}

function laplace(rng: Rng, b: number): number {
  const u = rng.next() - 0.5;
  return -b * Math.sign(u) * Math.log(1 - 2 * Math.abs(u) + 1e-300);
}

/** Empirical mean squared error of fake-quantizing xs with p. */
function empiricalMse(xs: Float32Array, p: QuantParams): number {
  const out = fakeQuantizeArray(new Float32Array(xs.length), xs, p);
  let e = 0;
  for (let i = 0; i < xs.length; i++) e += (out[i] - xs[i]) ** 2;
  return e / xs.length;
}

function histOf(xs: Float32Array, bins = 2048): HistogramObserver {
  const h = new HistogramObserver(bins);
  h.observe(xs, xs.length, 1);
  return h;
}

// ───────────────────────────── params ─────────────────────────────

test("quant/params: codeRange", (t) => {
  t.deepEqual(codeRange(8, true), [-128, 127]);
  t.deepEqual(codeRange(8, true, true), [-127, 127]);
  t.deepEqual(codeRange(8, false), [0, 255]);
  t.deepEqual(codeRange(8, false, true), [1, 255]);
  t.deepEqual(codeRange(4, true), [-8, 7]);
  t.deepEqual(codeRange(2, true, true), [-1, 1]);
  t.deepEqual(codeRange(2, false), [0, 3]);
  t.end();
});

test("quant/params: affineParams invariants over random ranges (all bits, modes)", (t) => {
  const rng = new Rng(0x51a7);
  let bad = 0;
  let cases = 0;
  const fails: string[] = [];
  for (let it = 0; it < 6000; it++) {
    let a = randEnd(rng), b = randEnd(rng);
    if (a > b) [a, b] = [b, a];
    const bits = rng.int(2, 8);
    const symmetric = rng.next() < 0.4;
    const signed = rng.next() < 0.5;
    const narrowRange = symmetric ? rng.next() < 0.7 : false;
    const p = affineParams(a, b, bits, { symmetric, signed, narrowRange });
    cases++;
    const lo = Math.min(a, 0), hi = Math.max(b, 0);
    const [qmin, qmax] = codeRange(bits, signed, narrowRange);
    const s = p.scale;
    const ok =
      p.qmin === qmin && p.qmax === qmax &&
      Number.isInteger(p.zeroPoint) && p.zeroPoint >= qmin && p.zeroPoint <= qmax &&
      f(s) === s && s > 0 && Number.isFinite(s) &&
      // 0 exactly representable: quantize(0) = zp, dequantize(zp) = 0.
      quantize(0, p) === p.zeroPoint && dequantize(p.zeroPoint, p) === 0 &&
      // symmetric → zp 0 (signed) or mid (unsigned)
      (!symmetric || p.zeroPoint === (signed ? 0 : 1 << (bits - 1))) &&
      // the represented range covers [lo, hi] up to half a step (the nudge) — unless the range is below MIN_SCALE resolution
      (s === MIN_SCALE || s === 1 && lo === hi ||
        ((qmin - p.zeroPoint) * s <= lo + s * 0.5000001 + 1e-300 && (qmax - p.zeroPoint) * s >= hi - s * 0.5000001 - 1e-300)) &&
      // the scale is not wasteful: within f32 rounding of (hi − lo)/levels or amax/qpos
      (s === MIN_SCALE || lo === hi ||
        (symmetric
          ? Math.abs(s - Math.max(-lo, hi) / ((1 << (bits - 1)) - 1)) <= s * 1e-6
          : Math.abs(s - (hi - lo) / (qmax - qmin)) <= s * 1e-6));
    if (!ok) {
      bad++;
      if (fails.length < 5) fails.push(JSON.stringify({ a, b, bits, symmetric, signed, narrowRange, p }));
    }
  }
  t.equal(bad, 0, `${cases} random ranges: zp integer in range, 0 exact, f32 scale, range covered ±s/2 ${fails.join(" ")}`);
  t.end();
});

test("quant/params: gemmlowp/TFLite reference values and nudging", (t) => {
  // [-1, 3] uint8: s = f32(4/255), z = 0 + 1/s = 63.75 → 64; the range moves down by 0.25·s.
  let p = affineParams(-1, 3, 8);
  t.equal(p.scale, f(4 / 255), "scale 4/255 as f32");
  t.equal(p.zeroPoint, 64, "zp 63.75 nudged to 64");
  const [rlo, rhi] = representableRange(p);
  t.ok(Math.abs(rlo - (-1 - 0.25 * p.scale)) < 1e-6 && Math.abs(rhi - (3 - 0.25 * p.scale)) < 1e-6, `nudge shifts [-1, 3] to [${rlo}, ${rhi}]`);
  // [-1, 1]: 2/255 rounds up in f32, so 1/s = 127.49999… and z = 127 (TFLite's float math gives the same).
  p = affineParams(-1, 1, 8);
  t.equal(p.zeroPoint, 127, "z from the f32 scale");
  // ReLU output [0, 6] uint8: zp exactly 0, scale 6/255.
  p = affineParams(0, 6, 8);
  t.equal(p.zeroPoint, 0);
  t.equal(p.scale, f(6 / 255));
  // Range excluding 0 is widened: [2, 5] → [0, 5].
  p = affineParams(2, 5, 8);
  t.equal(p.zeroPoint, 0);
  t.equal(p.scale, f(5 / 255));
  p = affineParams(-5, -2, 8);
  t.equal(p.zeroPoint, 255);
  // Signed asymmetric int8 ([-128, 127]): [-1, 3] → s = 4/255, z = -128 + 63.75 → -64.
  p = affineParams(-1, 3, 8, { signed: true });
  t.equal(p.zeroPoint, -64);
  // Symmetric int8 narrow: s = amax/127, zp 0; unsigned symmetric: zp 128.
  p = affineParams(-3, 2, 8, { symmetric: true });
  t.deepEqual([p.scale, p.zeroPoint, p.qmin, p.qmax], [f(3 / 127), 0, -127, 127]);
  p = affineParams(-3, 2, 8, { symmetric: true, signed: false });
  t.deepEqual([p.scale, p.zeroPoint, p.qmin, p.qmax], [f(3 / 127), 128, 1, 255]);
  p = affineParams(-3, 2, 4, { symmetric: true, narrowRange: false });
  t.deepEqual([p.scale, p.zeroPoint, p.qmin, p.qmax], [f(3 / 7), 0, -8, 7]);
  t.end();
});

test("quant/params: degenerate ranges", (t) => {
  let p = affineParams(0, 0, 8);
  t.deepEqual([p.scale, p.zeroPoint], [1, 0], "all-zero unsigned: scale 1, zp 0");
  p = affineParams(0, 0, 8, { signed: true });
  t.deepEqual([p.scale, p.zeroPoint], [1, 0], "all-zero signed: zp 0");
  p = affineParams(0, 0, 4, { symmetric: true, signed: false });
  t.deepEqual([p.scale, p.zeroPoint], [1, 8], "all-zero symmetric unsigned: zp mid");
  p = affineParams(1e-30, 2e-30, 8);
  t.equal(p.scale, MIN_SCALE, "tiny range: scale floored at MIN_SCALE");
  t.equal(p.zeroPoint, 0);
  p = affineParams(-1e-40, 1e-40, 8);
  t.equal(p.scale, MIN_SCALE, "denormal range");
  t.ok(p.zeroPoint >= 0 && p.zeroPoint <= 255 && Number.isInteger(p.zeroPoint));
  p = affineParams(-3e38, 3e38, 8);
  t.ok(Number.isFinite(p.scale) && p.zeroPoint === 128, "huge range stays finite");
  t.end();
});

test("quant/params: errors", (t) => {
  t.equal(code(() => affineParams(NaN, 1, 8)), "E_RANGE", "NaN min");
  t.equal(code(() => affineParams(0, Infinity, 8)), "E_RANGE", "Inf max");
  t.equal(code(() => affineParams(-Infinity, 0, 8)), "E_RANGE", "-Inf min");
  t.equal(code(() => affineParams(-1e39, 0, 8)), "E_RANGE", "beyond f32");
  t.equal(code(() => affineParams(2, 1, 8)), "E_ARGUMENT", "min > max");
  for (const b of [0, 1, 9, 15, 17, 32, 2.5, NaN, -4]) t.equal(code(() => affineParams(-1, 1, b)), "E_BITS", `bits ${b}`);
  const p16 = affineParams(-2, 6, 16);
  t.ok(p16.qmin === 0 && p16.qmax === 65535 && p16.zeroPoint === 16384 && Math.abs(p16.scale - 8 / 65535) < 1e-9, "16 bits: the residual-stream grid, 0..65535");
  for (const b of [2, 3, 4, 5, 6, 7, 8]) t.equal(code(() => affineParams(-1, 1, b)), "no error", `bits ${b} ok`);
  t.equal(code(() => affineParamsPerChannel([0, 1], [1], 8)), "E_SHAPE");
  t.equal(code(() => affineParamsPerChannel([0, NaN], [1, 1], 8)), "E_RANGE");
  t.end();
});

test("quant/params: quantize = f32 ABI arithmetic, round half to even, clamp, NaN → zp", (t) => {
  const p: QuantParams = { bits: 8, signed: true, scale: 1, zeroPoint: 0, qmin: -128, qmax: 127 };
  const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, 0], [-1.5, -2], [-2.5, -2], [0.49999997, 0], [126.5, 126], [127.5, 127], [1000, 127], [-1000, -128], [-128.5, -128]];
  for (const [x, q] of cases) t.equal(quantize(x, p), q, `quantize(${x}) = ${q}`);
  t.equal(quantize(NaN, { ...p, zeroPoint: 3 }), 3, "NaN → zero point");
  t.equal(quantize(Infinity, p), 127);
  t.equal(quantize(-Infinity, p), -128);
  t.equal(roundHalfEven(2.5), 2);
  t.equal(roundHalfEven(-3.5), -4);
  t.equal(roundHalfEven(7.2), 7);
  t.equal(MAGIC, 1.5 * 2 ** 23);

  // Independent reference: the nearest code to t = f32(f32(x)·f32(1/s)) (ties even), then clamp.
  const rng = new Rng(77);
  let bad = 0;
  for (let i = 0; i < 20000; i++) {
    const bits = rng.int(2, 8);
    const pp = affineParams(rng.uniform(-10, 0), rng.uniform(0, 10), bits, { signed: rng.next() < 0.5 });
    const x = f(rng.uniform(-12, 12));
    const tt = f(x * f(1 / pp.scale));
    const fl = Math.floor(tt), fr = tt - fl;
    let r = fr > 0.5 ? fl + 1 : fr < 0.5 ? fl : fl % 2 === 0 ? fl : fl + 1;
    r = Math.min(Math.max(r + pp.zeroPoint, pp.qmin), pp.qmax);
    if (quantize(x, pp) !== r) bad++;
  }
  t.equal(bad, 0, "20000 random quantize calls match the rounding/clamping reference");
  t.end();
});

test("quant/params: round trip error ≤ scale/2 inside the range, clamps outside", (t) => {
  const rng = new Rng(4242);
  let worst = 0;
  let clampBad = 0;
  for (let it = 0; it < 300; it++) {
    const bits = rng.int(2, 8);
    const sym = rng.next() < 0.5;
    const p = affineParams(-rng.uniform(0, 50), rng.uniform(0, 50), bits, { symmetric: sym, signed: rng.next() < 0.5 });
    const [lo, hi] = representableRange(p);
    for (let k = 0; k < 200; k++) {
      const x = f(rng.uniform(lo, hi));
      const e = Math.abs(fakeQuantize(x, p) - x) / p.scale;
      worst = Math.max(worst, e);
    }
    if (fakeQuantize(hi + 10 * p.scale, p) !== hi || fakeQuantize(lo - 10 * p.scale, p) !== lo) clampBad++;
  }
  t.ok(worst <= 0.5 + 2 ** -16, `worst round-trip error ${worst} steps ≤ 1/2 (+f32 slack 2^-16)`);
  t.equal(clampBad, 0, "values beyond the range clamp to the ends");

  const p = affineParams(-1, 2, 8);
  const xs = Float32Array.from([-1, -0.3, 0, 0.25, 1.9, 5]);
  const q = quantizeArray(new Uint8Array(6), xs, p);
  const d = dequantizeArray(new Float32Array(6), q, p);
  const fq = fakeQuantizeArray(new Float32Array(6), xs, p);
  t.deepEqual(Array.from(q), Array.from(xs, (x) => quantize(x, p)), "quantizeArray = scalar");
  t.deepEqual(Array.from(d), Array.from(fq), "dequantize∘quantize = fakeQuantizeArray");
  t.equal(code(() => quantizeArray(new Uint8Array(5), xs, p)), "E_SHAPE");
  const pc = affineParamsPerChannel([-1, 0, 0], [1, 4, 0], 8);
  t.deepEqual(channelParams(pc, 1), affineParams(0, 4, 8));
  t.equal(pc.scale[2], 1);
  t.end();
});

// ───────────────────────────── observers ─────────────────────────────

test("quant/observers: min/max over strided channel slices; fast path agrees", (t) => {
  const rng = new Rng(9);
  const pixels = 37, stride = 11, c0 = 3, c = 5;
  const buf = rng.fillF32(new Float32Array(pixels * stride + 4), -2, 2);
  // Poison everything outside the slice: it must not be read.
  for (let p = 0; p < pixels; p++) for (let j = 0; j < stride; j++) if (j < c0 || j >= c0 + c) buf[p * stride + j] = 1e9;
  const mm = new MinMaxObserver();
  mm.observe(buf, pixels, c, stride, c0);
  const pc = new PerChannelMinMaxObserver(c);
  pc.observe(buf, pixels, c, stride, c0);
  let mn = Infinity, mx = -Infinity;
  const cmin = new Float64Array(c).fill(Infinity), cmax = new Float64Array(c).fill(-Infinity);
  for (let p = 0; p < pixels; p++) for (let j = 0; j < c; j++) {
    const x = buf[p * stride + c0 + j];
    mn = Math.min(mn, x); mx = Math.max(mx, x);
    cmin[j] = Math.min(cmin[j], x); cmax[j] = Math.max(cmax[j], x);
  }
  t.deepEqual([mm.min, mm.max, mm.count], [mn, mx, pixels * c], "per-tensor min/max of the slice");
  t.deepEqual([Array.from(pc.min), Array.from(pc.max)], [Array.from(cmin), Array.from(cmax)], "per-channel");
  const fast = new MinMaxObserver();
  fast.observeChannelRanges(cmin, cmax);
  t.deepEqual([fast.min, fast.max], [mn, mx], "fast path (precomputed per-channel ranges) = full pass");
  const pcf = new PerChannelMinMaxObserver(c);
  pcf.observeChannelRanges(Float32Array.from(cmin), Float32Array.from(cmax));
  t.deepEqual(Array.from(pcf.max), Array.from(cmax));
  // Second image grows the range.
  const buf2 = Float32Array.from({ length: c }, (_, j) => (j === 2 ? 7 : -7));
  mm.observe(buf2, 1, c);
  t.deepEqual([mm.min, mm.max], [-7, 7]);

  t.equal(code(() => mm.observe(buf, pixels, c, stride, stride)), "E_SHAPE", "view past the buffer end");
  t.equal(code(() => mm.observe(buf, pixels, c, c - 1)), "E_SHAPE", "stride < channels");
  t.equal(code(() => mm.observe(Float32Array.of(1, NaN), 2, 1)), "E_RANGE", "NaN");
  t.equal(code(() => mm.observe(Float32Array.of(1, -Infinity), 1, 2)), "E_RANGE", "-Inf");
  t.equal(code(() => pc.observe(Float32Array.of(1, Infinity, 0, 0, 0), 1, 5)), "E_RANGE", "per-channel Inf");
  t.equal(code(() => pc.observe(buf, 1, 4)), "E_SHAPE", "channel count mismatch");
  t.equal(code(() => fast.observeChannelRanges([0, 1], [1])), "E_SHAPE");
  t.equal(code(() => fast.observeChannelRanges([2], [1])), "E_ARGUMENT");
  t.equal(code(() => minmaxRange(new MinMaxObserver())), "E_ARGUMENT", "no data");
  t.end();
});

test("quant/observers: histogram re-binning by doubling keeps counts exactly", (t) => {
  const rng = new Rng(31337);
  const batches: Float32Array[] = [
    new Float32Array(500), // all zeros: pending until a range exists
    rng.fillF32(new Float32Array(4000), 0, 1),
    rng.fillF32(new Float32Array(3000), -5, 3),
    rng.fillF32(new Float32Array(3000), 0, 100),
    Float32Array.of(1e-3, -250, 0),
  ];
  const h = new HistogramObserver(256);
  let n = 0;
  for (const b of batches) {
    h.observe(b, b.length, 1);
    n += b.length;
    t.equal(h.total(), n, `total ${n} after a batch (regrows so far ${h.regrows})`);
  }
  t.ok(h.regrows > 0, "range grew");
  t.ok(h.lo <= -250 && h.hi >= 100 && h.lo <= 0 && h.hi >= 0, `range [${h.lo}, ${h.hi}] covers the data and 0`);
  t.deepEqual([h.min, h.max, h.count], [-250, 100 * 0 + Math.max(...batches[3]), n].map((v, i) => (i === 1 ? Math.max(...batches.map((b) => Math.max(...b))) : v)));
  // A histogram fixed to the final range up front (two-pass) bins the same data identically,
  // up to values on a bin edge within f64 rounding.
  const g = new HistogramObserver(256);
  g.reserve(h.lo, h.hi);
  t.deepEqual([g.lo, g.hi], [h.lo, h.hi]);
  for (const b of batches) g.observe(b, b.length, 1);
  let diff = 0;
  for (let i = 0; i < 256; i++) diff += Math.abs(g.counts[i] - h.counts[i]);
  t.ok(diff <= 4, `re-binned counts = direct binning on the final range (L1 diff ${diff})`);
  t.equal(g.regrows, 0, "reserve() avoids re-binning");
  // Every count sits in the bin of a value, verified directly: recount each bin from the data.
  const direct = new Float64Array(256);
  for (const b of batches) for (const x of b) direct[g.binOf(x)]++;
  t.deepEqual(Array.from(g.counts), Array.from(direct), "binOf consistent with observe");
  t.equal(code(() => new HistogramObserver(7)), "E_ARGUMENT", "odd bin count");
  t.equal(code(() => h.observe(Float32Array.of(NaN), 1, 1)), "E_RANGE");
  t.equal(code(() => percentileRange(new HistogramObserver())), "E_ARGUMENT", "empty histogram");
  t.end();
});

// ───────────────────────────── range selection ─────────────────────────────

test("quant/range: percentile on known distributions", (t) => {
  const rng = new Rng(2024);
  const N = 400000;
  const uni = rng.fillF32(new Float32Array(N), 0, 1);
  let [lo, hi] = percentileRange(histOf(uni), { upper: 99 });
  t.ok(Math.abs(hi - 0.99) < 0.004, `uniform[0,1) p99 = ${hi} ≈ 0.99`);
  t.equal(lo, uni.reduce((a, b) => Math.min(a, b)), "non-negative → upper tail only, lo = observed min");
  [lo, hi] = percentileRange(histOf(uni), { upper: 99, tails: "both" });
  t.ok(Math.abs(lo - 0.01) < 0.004, `both tails: p1 = ${lo}`);

  const gauss = Float32Array.from({ length: N }, () => rng.normal());
  [lo, hi] = percentileRange(histOf(gauss), { upper: 99.9 });
  t.ok(Math.abs(hi - 3.0902) < 0.06 && Math.abs(lo + 3.0902) < 0.06, `N(0,1) 0.1/99.9 % = [${lo}, ${hi}] ≈ ±3.09`);
  const hg = histOf(gauss);
  [lo, hi] = percentileRange(hg, { upper: 99.9 });
  const sg = Float64Array.from(gauss).sort();
  const tol = 2 * hg.width;
  t.ok(Math.abs(lo - sg[Math.floor(0.001 * N)]) < tol && Math.abs(hi - sg[Math.floor(0.999 * N)]) < tol, `histogram quantiles within 2 bins of the exact sample quantiles`);
  [lo, hi] = percentileRange(histOf(gauss), { upper: 97.5, lower: 2.5 });
  t.ok(Math.abs(hi - 1.96) < 0.03 && Math.abs(lo + 1.96) < 0.03, `2.5/97.5 % = [${lo}, ${hi}] ≈ ±1.96`);

  const expo = Float32Array.from({ length: N }, () => -Math.log(1 - rng.next()));
  [lo, hi] = percentileRange(histOf(expo), { upper: 99 });
  t.ok(Math.abs(hi - Math.log(100)) < 0.05, `Exp(1) p99 = ${hi} ≈ ln 100`);
  [lo, hi] = percentileRange(histOf(expo), { upper: 100 });
  t.equal(hi, expo.reduce((a, b) => Math.max(a, b)), "100 % = observed max");
  t.equal(code(() => percentileRange(histOf(expo), { upper: 0 })), "E_ARGUMENT");
  t.equal(code(() => percentileRange(histOf(expo), { upper: 90, lower: 95 })), "E_ARGUMENT");
  // Doubling growth: data arriving in increasing magnitude still gives the right quantile.
  const h = new HistogramObserver();
  for (let k = 0; k < 8; k++) h.observe(gauss.subarray(k * 50000, (k + 1) * 50000), 50000, 1);
  [lo, hi] = percentileRange(h, { upper: 99.9 });
  t.ok(Math.abs(hi - 3.09) < 0.06, `batched: p99.9 = ${hi}`);
  t.end();
});

test("quant/range: MSE beats or equals min-max on heavy tails (4 bit), ≈ full range at 8 bit uniform", (t) => {
  const rng = new Rng(555);
  const N = 200000;
  const lap = Float32Array.from({ length: N }, () => laplace(rng, 1));
  const gau = Float32Array.from({ length: N }, () => rng.normal() + 0.5);
  const relu = Float32Array.from({ length: N }, () => Math.max(0, laplace(rng, 2)));
  for (const [name, xs] of [["laplace", lap], ["gauss+0.5", gau], ["relu(laplace)", relu]] as const) {
    const h = histOf(xs);
    for (const symmetric of [false, true]) {
      const opts = { symmetric };
      const [a, b] = minmaxRange(h);
      const pm = affineParams(a, b, 4, opts);
      const [lo, hi] = mseRange(h, 4, opts);
      const pe = affineParams(lo, hi, 4, opts);
      const em = empiricalMse(xs, pm), ee = empiricalMse(xs, pe);
      t.ok(ee <= em, `${name} ${symmetric ? "sym" : "asym"} 4-bit: mse-range MSE ${ee.toExponential(3)} ≤ minmax ${em.toExponential(3)} (range [${lo.toFixed(3)}, ${hi.toFixed(3)}] vs [${a.toFixed(3)}, ${b.toFixed(3)}])`);
      t.ok(ee < 0.8 * em, `${name}: clearly better on heavy tails (${(ee / em).toFixed(3)})`);
      // The histogram model predicts the empirical error.
      const model = histogramMse(h, pe);
      t.ok(Math.abs(model - ee) < 0.05 * ee, `${name}: model MSE ${model.toExponential(3)} ≈ empirical ${ee.toExponential(3)}`);
      if (symmetric) t.equal(lo, -hi, "symmetric range");
    }
  }
  // Uniform data at 8 bits: no tails, the optimum is (almost) the full range.
  const uni = rng.fillF32(new Float32Array(N), -1, 3);
  const hu = histOf(uni);
  const [lo, hi] = mseRange(hu, 8);
  t.ok(lo <= -0.99 * 1 && hi >= 0.99 * 3 * 0.999, `uniform 8-bit: [${lo}, ${hi}] ≈ [-1, 3]`);
  const [slo, shi] = mseRange(hu, 8, { symmetric: true });
  t.ok(shi >= 0.99 * 3 && slo === -shi, `uniform 8-bit symmetric: ±${shi} ≈ ±3`);
  const [plo, phi] = mseRange(histOf(rng.fillF32(new Float32Array(N), 0, 5)), 8);
  t.ok(plo === 0 && phi >= 0.99 * 5, `non-negative uniform 8-bit: [${plo}, ${phi}]`);
  // All zeros → [0, 0].
  t.deepEqual(mseRange(histOf(new Float32Array(100)), 4), [0, 0]);
  t.equal(code(() => mseRange(hu, 9)), "E_BITS");
  t.end();
});

test("quant/range: MSE search is optimal over its grid (brute force on a small grid)", (t) => {
  const rng = new Rng(8);
  const xs = Float32Array.from({ length: 20000 }, () => laplace(rng, 0.5) + (rng.next() < 0.01 ? 8 : 0));
  const h = histOf(xs, 512);
  for (const bits of [2, 3, 4]) {
    const steps = 24;
    const [lo, hi] = mseRange(h, bits, { steps });
    const best = histogramMse(h, affineParams(lo, hi, bits));
    let brute = Infinity;
    for (let i = 1; i <= steps; i++) for (let j = 1; j <= steps; j++) {
      brute = Math.min(brute, histogramMse(h, affineParams((h.min * i) / steps, (h.max * j) / steps, bits)));
    }
    t.ok(best <= brute * (1 + 1e-12), `${bits}-bit: search ${best.toExponential(4)} ≤ brute-force grid ${brute.toExponential(4)}`);
  }
  t.end();
});

// ───────────────────────────── weights ─────────────────────────────

test("quant/weights: per-output-channel symmetric quantization (incl. an all-zero channel)", (t) => {
  const rng = new Rng(1234);
  for (const bits of [2, 3, 4, 5, 6, 7, 8]) {
    const k = 3, cin = 4, cout = 6;
    const w = new Float32Array(k * k * cin * cout);
    for (let i = 0; i < w.length; i++) {
      const o = i % cout;
      w[i] = o === 2 ? 0 : rng.normal() * (o + 1) * 0.1;
    }
    const q = quantizeWeights(w, cout, bits);
    const qmax = (1 << (bits - 1)) - 1;
    t.deepEqual([q.params.qmin, q.params.qmax, q.params.axis], [-qmax, qmax, 3], `${bits}-bit: narrow code range, axis O`);
    const amax = channelAbsMax(new Float64Array(cout), w, cout);
    let inRange = true, maxHit = true, errOk = true;
    const codeMax = new Int32Array(cout);
    const deq = dequantizeWeights(new Float32Array(w.length), q);
    for (let i = 0; i < w.length; i++) {
      const o = i % cout;
      if (q.codes[i] < -qmax || q.codes[i] > qmax) inRange = false;
      codeMax[o] = Math.max(codeMax[o], Math.abs(q.codes[i]));
      if (Math.abs(deq[i] - w[i]) > q.params.scale[o] * (0.5 + 2 ** -16)) errOk = false;
    }
    for (let o = 0; o < cout; o++) {
      if (o === 2) continue;
      if (codeMax[o] !== qmax) maxHit = false;
      if (q.params.scale[o] !== f(amax[o] / qmax)) maxHit = false;
    }
    t.ok(inRange && maxHit && errOk, `${bits}-bit: codes in ±${qmax}, max|w| ↦ ±qmax, s = f32(max|w|/qmax), |w − ŵ| ≤ s/2`);
    t.ok(q.params.scale[2] === 1 && codeMax[2] === 0, `${bits}-bit: all-zero channel → scale 1, codes 0`);
    t.ok(q.params.zeroPoint.every((z) => z === 0), "zero points 0");
    t.deepEqual(Array.from(fakeQuantizeWeights(w, cout, bits)), Array.from(deq), "fakeQuantizeWeights = dequantize(quantize)");
  }
  t.equal(code(() => quantizeWeights(new Float32Array(10), 3, 8)), "E_SHAPE", "length not a multiple of cout");
  t.equal(code(() => quantizeWeights(new Float32Array(9), 3, 1)), "E_BITS");
  t.equal(code(() => quantizeWeights(new Float32Array(9), 3, 9)), "E_BITS");
  t.equal(code(() => quantizeWeights(Float32Array.of(1, NaN, 0), 3, 8)), "E_RANGE");
  t.equal(code(() => quantizeWeights(Float32Array.of(1, Infinity, 0), 3, 8)), "E_RANGE");
  t.equal(code(() => quantizeWeights(new Float32Array(9), 3, 8, { method: "bogus" as "mse" })), "E_ARGUMENT");
  const wide = quantizeWeights(Float32Array.of(-1, 1), 1, 4, { narrowRange: false });
  t.deepEqual([wide.params.qmin, wide.params.qmax, wide.codes[0], wide.codes[1]], [-8, 7, -7, 7]);
  t.end();
});

test("quant/weights: per-channel MSE clipping is exact and never worse than max|w|", (t) => {
  const rng = new Rng(99);
  const cout = 8, per = 3 * 3 * 16;
  const w = new Float32Array(per * cout);
  for (let i = 0; i < w.length; i++) w[i] = laplace(rng, 0.05 * ((i % cout) + 1));
  for (let i = 0; i < cout; i++) w[i] = i === 5 ? 0 : w[i];
  for (const bits of [2, 3, 4, 8]) {
    const a = quantizeWeights(w, cout, bits);
    const b = quantizeWeights(w, cout, bits, { method: "mse" });
    const da = dequantizeWeights(new Float32Array(w.length), a), db = dequantizeWeights(new Float32Array(w.length), b);
    const ea = new Float64Array(cout), eb = new Float64Array(cout);
    for (let i = 0; i < w.length; i++) {
      ea[i % cout] += (da[i] - w[i]) ** 2;
      eb[i % cout] += (db[i] - w[i]) ** 2;
    }
    let ok = true;
    for (let o = 0; o < cout; o++) if (eb[o] > ea[o] * (1 + 1e-6) + 1e-30) ok = false;
    const sa = ea.reduce((x, y) => x + y), sb = eb.reduce((x, y) => x + y);
    t.ok(ok, `${bits}-bit: every channel's MSE-clip error ≤ minmax error (total ${sb.toExponential(3)} vs ${sa.toExponential(3)})`);
    if (bits <= 4) t.ok(sb < 0.9 * sa, `${bits}-bit Laplacian weights: MSE clipping clearly better`);
  }
  // Exactness: the clip is the best of its grid, by brute force.
  const vals = Array.from({ length: 200 }, () => rng.normal());
  const steps = 50;
  const clip = mseWeightClip(vals, 3, { steps });
  const A = Math.max(...vals.map(Math.abs));
  const err = (a: number) => {
    const s = affineParams(-a, a, 3, { symmetric: true }).scale;
    return vals.reduce((e, x) => e + (x - s * Math.min(3, Math.max(-3, Math.round(x / s)))) ** 2, 0);
  };
  let brute = Infinity;
  for (let k = 1; k <= steps; k++) brute = Math.min(brute, err((A * k) / steps));
  t.ok(err(clip) <= brute * (1 + 1e-12), `mseWeightClip = brute-force optimum (${err(clip)} vs ${brute})`);
  t.equal(mseWeightClip([0, 0, 0], 4), 0, "all-zero channel");
  t.end();
});

test("quant/weights: int4 nibble packing round trip (all 16 values, low nibble first)", (t) => {
  const all = Int8Array.from({ length: 16 }, (_, i) => i - 8);
  // Every ordered pair of values, plus odd lengths.
  const pairs = new Int8Array(512);
  for (let a = 0; a < 16; a++) for (let b = 0; b < 16; b++) (pairs[2 * (a * 16 + b)] = a - 8), (pairs[2 * (a * 16 + b) + 1] = b - 8);
  for (const codes of [all, pairs, all.subarray(0, 15), Int8Array.of(-3), new Int8Array(0)]) {
    const packed = packInt4(new Uint8Array(int4PackedBytes(codes.length)), codes);
    const back = unpackInt4(new Int8Array(codes.length), packed);
    t.deepEqual(Array.from(back), Array.from(codes), `round trip, n = ${codes.length}`);
  }
  t.deepEqual(Array.from(packInt4(new Uint8Array(1), Int8Array.of(1, -1))), [0xf1], "[1, −1] → 0xF1 (element 0 in the low nibble)");
  t.deepEqual(Array.from(packInt4(new Uint8Array(2), Int8Array.of(-8, 7, 5))), [0x78, 0x05], "odd length: last high nibble 0");
  t.deepEqual(Array.from(unpackInt4(new Int8Array(2), Uint8Array.of(0x8f))), [-1, -8]);
  t.equal(code(() => packInt4(new Uint8Array(1), Int8Array.of(8, 0))), "E_RANGE", "8 does not fit int4");
  t.equal(code(() => packInt4(new Uint8Array(1), Int8Array.of(0, -9))), "E_RANGE");
  t.equal(code(() => packInt4(new Uint8Array(2), Int8Array.of(0, 1))), "E_SHAPE");
  t.equal(code(() => unpackInt4(new Int8Array(5), new Uint8Array(2))), "E_SHAPE");
  // 4-bit weights pack losslessly.
  const q = quantizeWeights(new Rng(3).fillF32(new Float32Array(3 * 3 * 5 * 7)), 7, 4);
  const rt = unpackInt4(new Int8Array(q.codes.length), packInt4(new Uint8Array(int4PackedBytes(q.codes.length)), q.codes));
  t.deepEqual(Array.from(rt), Array.from(q.codes), "quantized 4-bit kernel round trip");
  t.end();
});

test("quant/weights: bias to int32 (half even), zero-point folding, overflow → E_RANGE", (t) => {
  const ws = Float32Array.of(0.5, 0.25, 1);
  const out = quantizeBias(new Int32Array(3), Float32Array.of(1.25, -0.375, 3), 0.5, ws);
  // b/(s_x s_w): 1.25/0.25 = 5; −0.375/0.125 = −3; 3/0.5 = 6.
  t.deepEqual(Array.from(out), [5, -3, 6]);
  const half = quantizeBias(new Int32Array(3), Float32Array.of(0.625, 0.1875, -1.25), 0.5, ws);
  // 0.625/0.25 = 2.5 → 2; 0.1875/0.125 = 1.5 → 2; −1.25/0.5 = −2.5 → −2.
  t.deepEqual(Array.from(half), [2, 2, -2], "ties to even");
  t.deepEqual(Array.from(quantizeBias(new Int32Array(3), null, 0.5, ws)), [0, 0, 0], "null bias → zeros");
  t.equal(code(() => quantizeBias(new Int32Array(1), Float32Array.of(1e4), 1e-3, Float32Array.of(1e-3))), "E_RANGE", "1e4/(1e-6) = 1e10 overflows int32");
  // 2048 − 2^−12 in units of 2^−20 is 2^31 − 256: fits; 2048 → 2^31: does not.
  const edge = quantizeBias(new Int32Array(1), Float32Array.of(2048 - 2 ** -12), 2 ** -10, Float32Array.of(2 ** -10));
  t.equal(edge[0], 2 ** 31 - 256, "just below 2^31 fits");
  t.equal(code(() => quantizeBias(new Int32Array(1), Float32Array.of(2048), 2 ** -10, Float32Array.of(2 ** -10))), "E_RANGE", "2^31 overflows");
  t.equal(code(() => quantizeBias(new Int32Array(1), Float32Array.of(1), 0, Float32Array.of(1))), "E_RANGE", "zero input scale");
  t.equal(code(() => quantizeBias(new Int32Array(1), Float32Array.of(NaN), 1, Float32Array.of(1))), "E_RANGE");
  t.equal(code(() => quantizeBias(new Int32Array(2), Float32Array.of(1), 1, Float32Array.of(1))), "E_SHAPE");

  // Folding: the integer conv with folded bias equals the float affine result.
  const rng = new Rng(17);
  const cout = 4, taps = 27;
  const codes = rng.fillInt8(new Int8Array(taps * cout), -127, 127);
  const x = rng.fillUint8(new Uint8Array(taps));
  const zx = 113;
  const bq = Int32Array.of(100, -5, 0, 77);
  const folded = foldInputZeroPoint(new Int32Array(cout), bq, codes, cout, zx);
  for (let o = 0; o < cout; o++) {
    let a = 0, r = 0;
    for (let i = 0; i < taps; i++) {
      a += codes[i * cout + o] * x[i];
      r += codes[i * cout + o] * (x[i] - zx);
    }
    t.equal(a + folded[o], r + bq[o], `channel ${o}: Σq_w·x_q + b' = Σq_w·(x_q − z_x) + b_q`);
  }
  t.equal(code(() => foldInputZeroPoint(new Int32Array(1), Int32Array.of(2147483000), Int8Array.of(-100), 1, 100)), "E_RANGE", "fold overflow");
  t.end();
});

// ───────────────────────────── config ─────────────────────────────

test("quant/config: parsing bit specs and configs, error codes", (t) => {
  t.deepEqual(parseBits("w8a8"), { weightBits: 8, actBits: 8 });
  t.deepEqual(parseBits("w4a8"), { weightBits: 4, actBits: 8 });
  t.deepEqual(parseBits("W4A4"), { weightBits: 4, actBits: 4 });
  t.deepEqual(parseBits(" w2a2 "), { weightBits: 2, actBits: 2 });
  t.deepEqual(parseBits("a6w3"), { weightBits: 3, actBits: 6 });
  t.equal(parseBits("fp32"), "fp32");
  t.equal(parseBits("FLOAT32"), "fp32");
  t.equal(formatBits(parseBits("a8w4")), "w4a8");
  for (const s of ["w1a8", "w9a8", "w4a1", "w4a16", "w0a0"]) t.equal(code(() => parseBits(s)), "E_BITS", `'${s}' → E_BITS`);
  for (const s of ["", "w4", "a8", "int8", "w4a8o8", "w-4a8", "w4.5a8", "fp16", "w4 a8", "banana"]) t.equal(code(() => parseBits(s)), "E_ARGUMENT", `'${s}' → E_ARGUMENT`);
  t.equal(code(() => parseBits(8 as unknown as string)), "E_ARGUMENT");

  const c = quantConfig("w4a8");
  t.deepEqual([c.weightBits, c.actBits, c.method, c.weightMethod], [4, 8, "minmax", "minmax"]);
  const d = quantConfig({ bits: "w4a4", actBits: 6, method: "percentile", percentile: 99.9, perLayer: { conv_3: "fp32", conv_4: { actBits: 8 } } });
  t.deepEqual([d.weightBits, d.actBits, d.percentile], [4, 6, 99.9]);
  t.equal(code(() => quantConfig("fp32")), "E_ARGUMENT", "top-level fp32");
  t.equal(code(() => quantConfig({ weightBits: 10 })), "E_BITS");
  t.equal(code(() => quantConfig({ actBits: 1 })), "E_BITS");
  t.equal(code(() => quantConfig({ weightBits: 4.5 })), "E_ARGUMENT");
  t.equal(code(() => quantConfig({ method: "kl" as "mse" })), "E_ARGUMENT");
  t.equal(code(() => quantConfig({ percentile: 120 })), "E_ARGUMENT");
  t.equal(code(() => quantConfig({ perLayer: { a: "w9a8" } })), "E_BITS");
  t.equal(code(() => quantConfig({ perLayer: { a: { bits: 4 } as unknown as { actBits: number } } })), "E_ARGUMENT");
  t.equal(code(() => quantConfig({ keepFp32: "head" as unknown as string[] })), "E_ARGUMENT");
  t.end();
});

/** head conv → 2 body convs + skip → conv(12) → relu → d2s ×2 → tail conv at ×2. */
function srGraph() {
  const b = new GraphBuilder({ seed: 5 });
  const x = b.input();
  const h = b.conv2d(x, 8, 3, { name: "head", activation: "relu" });
  const r = b.conv2d(b.conv2d(h, 8, 3, { name: "body1", activation: "relu" }), 8, 3, { name: "body2" });
  const s = b.add(r, h);
  const u = b.relu(b.conv2d(s, 32, 3, { name: "up" }));
  const d = b.depthToSpace(u, 2);
  const y = b.conv2d(d, 3, 3, { name: "tail" });
  return b.build(y);
}

test("quant/config: SR roles from a graph and per-layer resolution", (t) => {
  const g = srGraph();
  const byName = (name: string) => g.nodes.find((n) => n.name === name)!.id;
  const roles = layerRoles(g);
  const r = (n: string) => [...roles.get(byName(n))!].sort();
  t.deepEqual(r("head"), ["head"]);
  t.deepEqual(r("body1"), []);
  t.deepEqual(r("body2"), []);
  t.deepEqual(r("up"), ["upsampler"], "conv feeding depth_to_space through an activation");
  t.deepEqual(r("tail"), ["tail", "upsampler"], "last conv, at spatial factor 2");

  // ESPCN-like: conv → d2s is the output; one conv that is head, tail and upsampler.
  const b = new GraphBuilder();
  const x = b.input();
  const g2 = b.build(b.depthToSpace(b.conv2d(x, 12, 3, { name: "only" }), 2));
  t.deepEqual([...layerRoles(g2).get(1)!].sort(), ["head", "tail", "upsampler"]);

  // Upsample-nearest net with a dead branch: the dead conv is not a tail.
  const b3 = new GraphBuilder();
  const x3 = b3.input();
  const c1 = b3.conv2d(x3, 4, 3, { name: "c1" });
  b3.conv2d(c1, 4, 3, { name: "dead" });
  const up = b3.upsampleNearest(b3.conv2d(c1, 4, 3, { name: "pre_up" }), 2);
  const g3 = b3.build(b3.conv2d(up, 3, 1, { name: "last" }));
  const r3 = layerRoles(g3);
  const get3 = (n: string) => [...r3.get(g3.nodes.find((m) => m.name === n)!.id)!].sort();
  t.deepEqual(get3("c1"), ["head"]);
  t.deepEqual(get3("dead"), [], "dead branch has no role");
  t.deepEqual(get3("pre_up"), ["upsampler"]);
  t.deepEqual(get3("last"), ["tail", "upsampler"]);

  const cfg = quantConfig({ bits: "w4a8", keepFp32: ["head", "tail"], perLayer: { body2: "w8a8", up: { weightBits: 2 } } });
  const res = resolveLayers(cfg, g);
  t.deepEqual(res.map((l) => [l.name, formatBits(l.bits)]), [
    ["head", "fp32"],
    ["body1", "w4a8"],
    ["body2", "w8a8"],
    ["up", "w2a8"],
    ["tail", "fp32"],
  ]);
  t.equal(formatBits(layerBits(quantConfig({ bits: "w4a4", keepFp32: ["upsampler"] }), g, "up")), "fp32");
  t.equal(formatBits(layerBits(quantConfig({ bits: "w4a4", keepFp32: ["body1"], perLayer: { tail: "fp32" } }), g, "body1")), "fp32", "keepFp32 by name");
  t.equal(formatBits(layerBits(quantConfig({ bits: "w4a4", keepFp32: ["head"], perLayer: { head: "w8a8" } }), g, "head")), "w8a8", "perLayer beats keepFp32");
  t.equal(code(() => resolveLayers(quantConfig({ keepFp32: ["nope"] }), g)), "E_ARGUMENT", "unknown keepFp32 entry");
  t.equal(code(() => resolveLayers(quantConfig({ perLayer: { nope: "w8a8" } }), g)), "E_ARGUMENT", "unknown perLayer name");
  t.equal(code(() => layerBits(cfg, g, "input")), "E_ARGUMENT", "not a conv");
  t.end();
});

// ───────────────────────────── Quantizer seam ─────────────────────────────

test("quant/quantizer: uniform quantizers over strided samples and the ranges fast path", (t) => {
  const rng = new Rng(66);
  const pixels = 64, c = 6, stride = 10;
  const imgs = [0, 1, 2].map(() => rng.fillF32(new Float32Array(pixels * stride), -3, 5));
  const q = uniformQuantizer("minmax");
  const fast = uniformQuantizer("minmax");
  const pc = new UniformQuantizer({ method: "minmax", perChannel: true });
  for (const data of imgs) {
    q.observe({ data, pixels, channels: c, stride, offset: 2 });
    const mn = new Float32Array(c).fill(Infinity), mx = new Float32Array(c).fill(-Infinity);
    for (let p = 0; p < pixels; p++) for (let j = 0; j < c; j++) {
      const v = data[p * stride + 2 + j];
      mn[j] = Math.min(mn[j], v); mx[j] = Math.max(mx[j], v);
    }
    fast.observe({ min: mn, max: mx });
    pc.observe({ data, pixels, channels: c, stride, offset: 2 });
  }
  t.equal(q.dynamic, false);
  t.deepEqual(q.params(8), fast.params(8), "tensor pass = precomputed per-channel ranges");
  t.deepEqual(q.params(4), affineParams(...q.range(4), 4), "params = affineParams(range)");
  const pp = pc.params(8);
  t.ok("axis" in pp && pp.scale.length === c && pc.granularity === "channel", "per-channel params");

  const all = new Float32Array(imgs.length * pixels * c);
  let k = 0;
  for (const data of imgs) for (let p = 0; p < pixels; p++) for (let j = 0; j < c; j++) all[k++] = data[p * stride + 2 + j];
  const pq = uniformQuantizer("percentile", { percentile: { upper: 99 } });
  const mq = uniformQuantizer("mse");
  for (const data of imgs) {
    pq.observe({ data, pixels, channels: c, stride, offset: 2 });
    mq.observe({ data, pixels, channels: c, stride, offset: 2 });
  }
  const ref = new HistogramObserver();
  for (const data of imgs) ref.observe(data, pixels, c, stride, 2);
  t.deepEqual(pq.range(8), percentileRange(ref, { upper: 99 }), "percentile quantizer = percentileRange of the same histogram");
  t.deepEqual(mq.range(3), mseRange(ref, 3), "mse quantizer = mseRange of the same histogram");
  const [plo, phi] = pq.range(8);
  const sorted = Float64Array.from(all).sort();
  const exact = sorted[Math.floor(0.99 * sorted.length)];
  t.ok(Math.abs(phi - exact) < 0.05 && plo < -2.8, `p99 ${phi} ≈ exact sample quantile ${exact}`);
  t.equal(code(() => pq.observe({ min: [0], max: [1] })), "E_ARGUMENT", "histogram methods need values");
  t.equal(code(() => new UniformQuantizer({ method: "mse", perChannel: true })), "E_ARGUMENT");
  t.equal(code(() => new UniformQuantizer({ method: "kl" as "mse" })), "E_ARGUMENT");
  t.equal(code(() => q.params(9)), "E_BITS");
  t.equal(code(() => uniformQuantizer("minmax").params(8)), "E_ARGUMENT", "params before observe");
  q.reset();
  t.equal(code(() => q.params(8)), "E_ARGUMENT", "reset clears statistics");
  t.end();
});
