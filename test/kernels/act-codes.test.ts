import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import {
  SUBSET_TABLE_STRIDE, countPositive, daqCodeParams, daqCodes, subsetCodeTable, subsetCodes, subsetCodesCmp, subsetSortedUnique,
  subsetThresholds,
} from "../../src/kernels/act-codes.ts";
import { countPositiveRef, daqCodesRef, subsetCodesRef, subsetNearestRef } from "../../src/kernels/ref/act-codes.ts";

function throwsCode(t: test.Test, fn: () => unknown, code: string, msg: string): void {
  try {
    fn();
    t.fail(`${msg}: did not throw`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${msg} → ${code}${e instanceof LowbitError ? "" : ` (got ${String(e)})`}`);
  }
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): string {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return `first diff at ${i}: got ${a[i]}, want ${b[i]}`;
  return a.length === b.length ? "equal" : "length differs";
}

const CHANNELS = [1, 2, 3, 4, 5, 7, 12, 15, 16, 17, 20, 33, 64, 67];
const SPECIALS = [NaN, Infinity, -Infinity, -0, 0, 1e-45, -1e-45, 3.4e38, -3.4e38];

/** x values for channel c: Gaussian around μ at a scale of a few Δ, grid points (exact boundaries), specials. */
function fillX(r: Rng, x: Float32Array, pixels: number, c: number, xs: number, mu: Float32Array, delta: (j: number) => number): void {
  const kind = r.int(0, 3);
  for (let p = 0; p < pixels; p++) {
    for (let j = 0; j < c; j++) {
      let v: number;
      const u = r.next();
      if (u < 0.03) v = r.pick(SPECIALS);
      else if (kind === 0 || u < 0.3) v = mu[j] + delta(j) * r.int(-140, 140) / 2; // on a half-step grid: ties and exact edges
      else v = mu[j] + delta(j) * r.normal() * 2 ** r.int(-1, 7);
      x[p * xs + j] = v;
    }
  }
}

test("DAQ codes: bit-exact vs the reference (signed / post-ReLU, per-channel bits, boundaries, NaN/∞, Δ = 0)", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(4242);
  let bad = 0, cases = 0, elems = 0;
  for (let i = 0; i < 300; i++) {
    const pixels = r.pick([1, 2, 3, 5, 16, 31]), c = r.pick(CHANNELS);
    const xs = c + (r.next() < 0.3 ? r.int(1, 5) : 0), os = c + (r.next() < 0.3 ? r.int(1, 5) : 0);
    const postRelu = r.next() < 0.4;
    const bits = Uint8Array.from({ length: c }, () => (r.next() < 0.5 ? r.pick([2, 4, 8]) : r.int(1, 8)));
    const mu = Float32Array.from({ length: c }, () => (postRelu ? 0 : r.next() < 0.2 ? 0 : r.normal() * 2 ** r.int(-6, 6)));
    // Power-of-two steps make grid values exact boundaries; others random; some 0 (constant channel).
    const invDelta = Float32Array.from({ length: c }, () => {
      const u = r.next();
      return u < 0.1 ? 0 : u < 0.5 ? 2 ** r.int(-4, 8) : 2 ** r.uniform(-6, 10);
    });
    const x = new Float32Array((pixels - 1) * xs + c);
    fillX(r, x, pixels, c, xs, mu, (j) => (invDelta[j] > 0 ? 1 / invDelta[j] : 1));
    const got = new Uint8Array((pixels - 1) * os + c).fill(201), want = got.slice();
    daqCodes(got, x, { pixels, channels: c, xStride: xs, outStride: os, mu, invDelta, bits, postRelu }, rt);
    daqCodesRef(want, x, pixels, c, xs, mu, invDelta, bits, postRelu, os);
    cases++;
    elems += pixels * c;
    const d = firstDiff(got, want);
    if (d !== "equal" && bad++ < 5) t.fail(`${pixels}×${c} strides ${xs}/${os} ${postRelu ? "post-ReLU" : "signed"}: ${d}`);
  }
  t.equal(bad, 0, `${cases} random cases (${elems} elements) bit-exact, stride gaps untouched`);
});

test("DAQ codes: the defined corner cases and the midrise / half-even semantics", async (t) => {
  const rt = await testRuntime();
  const x = Float32Array.of(NaN, 0, 1e30, -1e30, Infinity, -Infinity, 2.5, 3.5, -0.5, 0.49999997, 0.5);
  const n = x.length;
  const signed = daqCodes(new Uint8Array(n), x, { pixels: n, channels: 1, mu: Float32Array.of(0), invDelta: Float32Array.of(1), bits: 4, postRelu: false }, rt);
  // ⌊x⌋ + 8 clamped to [0, 15].
  t.deepEqual(Array.from(signed), [8, 8, 15, 0, 15, 0, 10, 11, 7, 8, 8], "signed, Δ = 1, b = 4: ⌊x⌋ + 8, NaN → 8 (= x of μ), ±∞ clamp");
  const relu = daqCodes(new Uint8Array(n), x, { pixels: n, channels: 1, invDelta: Float32Array.of(1), bits: 4, postRelu: true }, rt);
  t.deepEqual(Array.from(relu), [0, 0, 15, 0, 15, 0, 2, 4, 0, 0, 0], "post-ReLU: round half to even (2.5 → 2, 3.5 → 4, 0.5 → 0), NaN → 0");
  const flat = daqCodes(new Uint8Array(n), x, { pixels: n, channels: 1, mu: Float32Array.of(5), invDelta: Float32Array.of(0), bits: 3, postRelu: false }, rt);
  t.deepEqual(Array.from(flat), new Array(n).fill(4), "invΔ = 0: every value (∞·0 = NaN included) → middle code 2^(b−1)");
  const flatR = daqCodes(new Uint8Array(n), x, { pixels: n, channels: 1, invDelta: Float32Array.of(0), bits: 3, postRelu: true }, rt);
  t.deepEqual(Array.from(flatR), new Array(n).fill(0), "post-ReLU invΔ = 0 → 0");
  // Midrise reconstruction: x̂ = μ + (k − (2^b − 1)/2)·Δ is within Δ/2 of x inside the clip range ±T = ±(2^(b−1) − ½)Δ.
  const r = new Rng(8);
  let worst = 0;
  for (const b of [2, 3, 4, 8]) {
    const mu = 0.75, delta = 0.3, T = (2 ** (b - 1) - 0.5) * delta;
    const xs = Float32Array.from({ length: 2000 }, () => mu + r.uniform(-T, T));
    const k = daqCodes(new Uint8Array(2000), xs, { pixels: 2000, channels: 1, mu: Float32Array.of(mu), invDelta: Float32Array.of(1 / delta), bits: b, postRelu: false }, rt);
    for (let i = 0; i < 2000; i++) worst = Math.max(worst, Math.abs(xs[i] - (mu + (k[i] - (2 ** b - 1) / 2) * delta)) / delta);
  }
  t.ok(worst <= 0.5 + 1e-5, `|x − x̂| ≤ Δ/2 inside the clip range (worst ${worst.toFixed(6)}·Δ)`);
  const half = new Int32Array(3), kmax = new Int32Array(3);
  daqCodeParams(half, kmax, [1, 4, 8], 3);
  t.deepEqual([Array.from(half), Array.from(kmax)], [[1, 8, 128], [1, 15, 255]], "daqCodeParams: 2^(b−1), 2^b − 1");
});

/** A random strictly increasing codebook in [−1024, 1024] of 1..maxN points, often with ±1024, 0 and neighbours. */
function randomCodebook(r: Rng, maxN: number, postRelu: boolean): Int32Array {
  const n = r.int(1, maxN);
  const pts = new Set<number>();
  if (r.next() < 0.5) pts.add(0);
  if (r.next() < 0.3) pts.add(1024);
  if (!postRelu && r.next() < 0.3) pts.add(-1024);
  const dense = n <= 60 && r.next() < 0.3;
  while (pts.size < n) {
    const v = dense ? r.int(-40, 40) : r.int(postRelu ? 0 : -1024, 1024);
    pts.add(v);
    if (r.next() < 0.2 && pts.size < n && v < 1024) pts.add(v + 1);
  }
  return subsetSortedUnique([...pts]);
}

test("DFSQ subset codes: count table = direct threshold count at every integer index", async (t) => {
  const r = new Rng(31);
  let bad = 0;
  const books = Array.from({ length: 60 }, (_, i) => randomCodebook(r, i < 20 ? 16 : 256, r.next() < 0.3));
  books.push(Int32Array.of(0), Int32Array.of(-1024, 1024), Int32Array.of(1023, 1024), Int32Array.of(-1024, -1023));
  const table = subsetCodeTable(new Uint8Array(books.length * SUBSET_TABLE_STRIDE), books);
  for (let c = 0; c < books.length; c++) {
    const u = books[c];
    for (let i = 0; i < SUBSET_TABLE_STRIDE; i++) {
      let cnt = 0;
      for (let j = 0; j + 1 < u.length; j++) if (u[j] + u[j + 1] < i - 2048) cnt++;
      if (table[c * SUBSET_TABLE_STRIDE + i] !== cnt && bad++ < 3) t.fail(`book ${c} index ${i}: ${table[c * SUBSET_TABLE_STRIDE + i]} ≠ ${cnt}`);
    }
    if (table[c * SUBSET_TABLE_STRIDE] !== 0 || table[c * SUBSET_TABLE_STRIDE + 4097] !== u.length - 1) bad++;
  }
  t.equal(bad, 0, `${books.length} tables × ${SUBSET_TABLE_STRIDE} indices equal the direct count; ends 0 and n − 1`);
});

test("DFSQ subset codes: WASM = direct compare count = nearest point (random, exact midpoints, ±1 ulp, NaN/∞)", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(777);
  let bad = 0, badCmp = 0, badNearest = 0, cases = 0, elems = 0, ties = 0;
  const f = new Float32Array(1), u32 = new Uint32Array(f.buffer);
  const nudge = (v: number, d: number): number => { f[0] = v; if (v !== 0 && Number.isFinite(v)) u32[0] += d; return f[0]; };
  for (let i = 0; i < 300; i++) {
    const pixels = r.pick([1, 2, 3, 7, 20]), c = r.pick(CHANNELS);
    const xs = c + (r.next() < 0.3 ? r.int(1, 5) : 0), os = c + (r.next() < 0.3 ? r.int(1, 5) : 0);
    const postRelu = r.next() < 0.3;
    const maxN = r.pick([2, 4, 16, 64, 256]);
    const books = Array.from({ length: c }, () => randomCodebook(r, maxN, postRelu));
    const mu = Float32Array.from({ length: c }, () => (postRelu || r.next() < 0.3 ? 0 : r.normal() * 4));
    // Power-of-two 1/m keeps x − μ → v exact, so x = μ + T'/2048·m lands exactly on a midpoint.
    const invM = Float32Array.from({ length: c }, () => (r.next() < 0.05 ? 0 : r.next() < 0.6 ? 2 ** r.int(-3, 6) : 2 ** r.uniform(-4, 8)));
    const x = new Float32Array((pixels - 1) * xs + c);
    for (let p = 0; p < pixels; p++) {
      for (let j = 0; j < c; j++) {
        const u = books[j], m = invM[j] > 0 ? 1 / invM[j] : 1;
        const w = r.next();
        let v: number;
        if (w < 0.03) v = r.pick(SPECIALS);
        else if (w < 0.45 && u.length > 1) {
          const jj = r.int(0, u.length - 2);
          v = Math.fround(mu[j] + ((u[jj] + u[jj + 1]) / 2048) * m); // a midpoint …
          if (r.next() < 0.5) v = nudge(v, r.pick([-1, 1])); // … or one ulp off
        } else if (w < 0.6) v = Math.fround(mu[j] + (r.int(-1030, 1030) / 1024) * m);
        else v = mu[j] + r.uniform(-1.2, 1.2) * m * (r.next() < 0.1 ? 100 : 1);
        x[p * xs + j] = v;
      }
    }
    const table = subsetCodeTable(new Uint8Array(c * SUBSET_TABLE_STRIDE), books);
    const got = new Uint8Array((pixels - 1) * os + c).fill(250), want = got.slice();
    subsetCodes(got, x, { pixels, channels: c, xStride: xs, outStride: os, mu, invM, table }, rt);
    subsetCodesRef(want, x, pixels, c, xs, mu, invM, books, os);
    cases++;
    elems += pixels * c;
    const d = firstDiff(got, want);
    if (d !== "equal" && bad++ < 5) t.fail(`${pixels}×${c} strides ${xs}/${os}: ${d}`);
    const { thresholds, nThr } = subsetThresholds(books);
    const gotCmp = new Uint8Array(got.length).fill(250);
    subsetCodesCmp(gotCmp, x, { pixels, channels: c, xStride: xs, outStride: os, mu, invM, thresholds, nThr }, rt);
    const dc = firstDiff(gotCmp, want);
    if (dc !== "equal" && badCmp++ < 5) t.fail(`compare-count ${pixels}×${c} nThr ${nThr} strides ${xs}/${os}: ${dc}`);
    // Independent: the threshold count is the nearest sorted point with ties to the lower one.
    for (let p = 0; p < pixels; p++) {
      for (let j = 0; j < c; j++) {
        let v = Math.fround(Math.fround(x[p * xs + j] - mu[j]) * invM[j]) * 2048;
        if (Number.isNaN(v)) v = 0;
        const near = subsetNearestRef(v, books[j]);
        const code = want[p * os + j];
        if (books[j].length > 1 && code + 1 < books[j].length && v === books[j][code] + books[j][code + 1]) ties++;
        if (near !== code && badNearest++ < 3) t.fail(`nearest point ${near} ≠ threshold code ${code} at v = ${v}`);
      }
    }
  }
  t.equal(bad, 0, `${cases} random cases (${elems} elements) bit-exact vs the direct compare count`);
  t.equal(badCmp, 0, `${cases} random cases: the SIMD compare-count kernel gives the same codes`);
  t.equal(badNearest, 0, "the compare count equals argmin |v − 2u_j| with ties to the lower point");
  t.ok(ties > 500, `exact midpoints exercised (${ties} ties, all resolved to the lower point)`);
});

test("count positive: bit-exact, accumulates across calls", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(55);
  let bad = 0;
  for (let i = 0; i < 200; i++) {
    const pixels = r.pick([1, 2, 3, 9, 40, 129]), c = r.pick(CHANNELS);
    const xs = c + (r.next() < 0.3 ? r.int(1, 5) : 0);
    const x = Float32Array.from({ length: (pixels - 1) * xs + c }, () => (r.next() < 0.1 ? r.pick(SPECIALS) : r.next() < 0.3 ? 0 : r.normal()));
    const start = Float32Array.from({ length: c }, () => r.int(0, 1000));
    const got = countPositive(start.slice(), x, { pixels, channels: c, xStride: xs }, rt);
    countPositive(got, x, { pixels, channels: c, xStride: xs }, rt);
    const want = countPositiveRef(countPositiveRef(start.slice(), x, pixels, c, xs), x, pixels, c, xs);
    const d = firstDiff(got, want);
    if (d !== "equal" && bad++ < 5) t.fail(`${pixels}×${c} stride ${xs}: ${d}`);
  }
  t.equal(bad, 0, "200 random cases bit-exact (two calls each)");
  const x = Float32Array.of(NaN, -0, 0, 1e-45, -1e-45, Infinity, -Infinity, 2);
  t.deepEqual(Array.from(countPositive(new Float32Array(1), x, { pixels: 8, channels: 1 }, rt)), [3], "NaN, ±0, negatives are not > 0");
});

test("act codes: bad arguments throw", async (t) => {
  const rt = await testRuntime();
  const x = new Float32Array(6), out = new Uint8Array(6);
  const ok = { pixels: 2, channels: 3, mu: new Float32Array(3), invDelta: new Float32Array(3).fill(1), bits: 4, postRelu: false };
  t.equal(daqCodes(out, x, ok, rt).length, 6, "valid DAQ call runs");
  throwsCode(t, () => daqCodes(out, x, { ...ok, bits: 9 }, rt), "E_BITS", "bits 9");
  throwsCode(t, () => daqCodes(out, x, { ...ok, bits: [4, 0, 4] }, rt), "E_BITS", "bits 0 in one channel");
  throwsCode(t, () => daqCodes(out, x, { ...ok, invDelta: Float32Array.of(1, -1, 1) }, rt), "E_RANGE", "negative invΔ");
  throwsCode(t, () => daqCodes(out, x, { ...ok, invDelta: Float32Array.of(1, Infinity, 1) }, rt), "E_RANGE", "infinite invΔ");
  throwsCode(t, () => daqCodes(out, x, { ...ok, mu: Float32Array.of(NaN, 0, 0) }, rt), "E_RANGE", "NaN μ");
  throwsCode(t, () => daqCodes(out, x, { ...ok, mu: null }, rt), "E_ARGUMENT", "signed branch without μ");
  throwsCode(t, () => daqCodes(out, x, { ...ok, invDelta: new Float32Array(2) }, rt), "E_SHAPE", "short invΔ");
  throwsCode(t, () => daqCodes(new Uint8Array(5), x, ok, rt), "E_SHAPE", "short output");
  throwsCode(t, () => daqCodes(out, x, { ...ok, xStride: 2 }, rt), "E_SHAPE", "stride < channels");
  throwsCode(t, () => subsetSortedUnique([0, 1025]), "E_RANGE", "codebook point out of [−1024, 1024]");
  throwsCode(t, () => subsetSortedUnique([0.5]), "E_RANGE", "non-integer codebook point");
  throwsCode(t, () => subsetCodeTable(new Uint8Array(SUBSET_TABLE_STRIDE), [[0, 0]]), "E_ARGUMENT", "duplicate points in a table codebook");
  throwsCode(t, () => subsetCodeTable(new Uint8Array(SUBSET_TABLE_STRIDE), [[3, 1]]), "E_ARGUMENT", "unsorted codebook");
  throwsCode(t, () => subsetCodeTable(new Uint8Array(SUBSET_TABLE_STRIDE), [[0], [1]]), "E_SHAPE", "table too short");
  throwsCode(t, () => subsetCodeTable(new Uint8Array(2 * 4000), [[0]], 4000), "E_SHAPE", "tableStride < 4098");
  const table = subsetCodeTable(new Uint8Array(3 * SUBSET_TABLE_STRIDE), [[0, 10], [0], [-5, 5]]);
  const sok = { pixels: 2, channels: 3, mu: new Float32Array(3), invM: new Float32Array(3).fill(1), table };
  t.equal(subsetCodes(out, x, sok, rt).length, 6, "valid subset call runs");
  throwsCode(t, () => subsetCodes(out, x, { ...sok, table: table.subarray(1) }, rt), "E_SHAPE", "short table");
  throwsCode(t, () => subsetCodes(out, x, { ...sok, invM: Float32Array.of(1, NaN, 1) }, rt), "E_RANGE", "NaN 1/m");
  const th = subsetThresholds([[0, 10], [0], [-5, 5]]);
  t.deepEqual([th.nThr, Array.from(th.thresholds.subarray(0, 4))], [1, [10, 32767, 0, 32767]], "threshold layout: T' per lane, padded with 32767");
  t.equal(subsetCodesCmp(out, x, { ...sok, thresholds: th.thresholds, nThr: th.nThr }, rt).length, 6, "valid compare-count call runs");
  throwsCode(t, () => subsetCodesCmp(out, x, { ...sok, thresholds: th.thresholds.subarray(1), nThr: 1 }, rt), "E_SHAPE", "short thresholds");
  throwsCode(t, () => subsetCodesCmp(out, x, { ...sok, thresholds: th.thresholds, nThr: 256 }, rt), "E_SHAPE", "nThr 256");
  throwsCode(t, () => countPositive(Float32Array.of(2 ** 24, 0, 0), x, { pixels: 2, channels: 3 }, rt), "E_RANGE", "count past 2^24");
  throwsCode(t, () => countPositive(new Float32Array(2), x, { pixels: 2, channels: 3 }, rt), "E_SHAPE", "short count vector");
});
