// DFSQ (spec dfsq.md §9 items 1–3, 5): universal set, codebook selection (K-means, DP exhaustive,
// brute force), SubsetLUT encoders and tables, per-output-channel weights, f64 reference quantizer.
import test from "tape";
import { LowbitError } from "../../src/runtime/errors.ts";
import { Rng } from "../util/rng.ts";
import {
  SortedPoints,
  bruteForceCodebook,
  codebookSse,
  dequantizeDfsqWeights,
  dfsqQuantizeReference,
  dfsqStats,
  dfsqWeightAbsSums,
  exhaustiveCodebook,
  inUniversalSet,
  quantizeDfsqWeights,
  radixSortF64,
  selectCodebook,
  universalNonNegative,
  universalSet,
  universalSubset,
} from "../../src/methods/dfsq/index.ts";
import { SubsetLUT } from "../../src/quant/index.ts";

function throwsCode(t: test.Test, fn: () => unknown, code: string, msg: string): void {
  try {
    fn();
    t.fail(`${msg}: did not throw`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${msg}: ${e instanceof LowbitError ? e.code : String(e)}`);
  }
}

/** Laplacian samples normalised to max|x| = 1 (signed channel) or half-normal normalised (post-ReLU). */
function channel(rng: Rng, n: number, kind: "laplace" | "halfnormal" | "uniform", scale = 0.1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (kind === "laplace") {
      const u = rng.next() - 0.5;
      a[i] = -Math.sign(u) * Math.log(Math.max(1 - 2 * Math.abs(u), 1e-300)) * scale;
    } else if (kind === "halfnormal") a[i] = Math.abs(rng.normal()) * scale;
    else a[i] = rng.uniform(-1, 1);
  }
  let mean = 0;
  if (kind === "laplace") {
    for (const v of a) mean += v;
    mean /= n;
  }
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(a[i] - mean));
  for (let i = 0; i < n; i++) a[i] = (a[i] - mean) / (m + 1e-8);
  return a;
}

/** Direct O(N·K) objective: Σ w·min_j (x − u_j/1024)². */
function naiveSse(x: ArrayLike<number>, w: ArrayLike<number> | null, cb: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    let best = Infinity;
    for (let j = 0; j < cb.length; j++) best = Math.min(best, (x[i] - cb[j] / 1024) ** 2);
    s += (w === null ? 1 : w[i]) * best;
  }
  return s;
}

const close = (a: number, b: number, rel = 1e-9) => Math.abs(a - b) <= rel * Math.max(1e-12, Math.abs(a), Math.abs(b));

test("dfsq: universal set U (§2, §9.1)", (t) => {
  const U = universalSet();
  t.equal(U.length, 377, "|U| = 377");
  const nonneg = U.filter((u) => u >= 0);
  t.equal(nonneg.length, 189, "189 points ≥ 0");
  t.deepEqual(Array.from(universalNonNegative()), Array.from(nonneg), "universalNonNegative");
  let ok = true;
  for (let i = 0; i < U.length; i++) {
    if (!Number.isInteger(U[i]) || U[i] < -1024 || U[i] > 1024) ok = false;
    if (i > 0 && U[i] <= U[i - 1]) ok = false;
    if (U[i] !== -U[U.length - 1 - i]) ok = false;
  }
  t.ok(ok, "integers in [−1024, 1024], strictly ascending, symmetric");
  t.equal(U[188], 0, "0 in the middle");
  // Interval counts of non-zero points, in 1/1024 units: [1,4) [4,16) [16,64) [64,256) [256,512) [512,1024) {1024}.
  const edges = [1, 4, 16, 64, 256, 512, 1024, 1025];
  const counts = edges.slice(0, -1).map((lo, i) => nonneg.filter((u) => u >= lo && u < edges[i + 1]).length);
  t.deepEqual(counts, [3, 12, 20, 45, 65, 42, 1], "interval counts 3 12 20 45 65 42 1");
  // Independent enumeration: minimal number of non-zero words per value → 1, 9, 33, 65, 81.
  const words = [1, 2, 3, 4].map((k) => [0, 256, 256 / 2 ** k, 256 / 2 ** (k + 4)]);
  const minWords = new Map<number, number>();
  for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) for (let c = 0; c < 4; c++) for (let d = 0; d < 4; d++) {
    const v = words[0][a] + words[1][b] + words[2][c] + words[3][d];
    const nz = [a, b, c, d].filter((x) => x !== 0).length;
    minWords.set(v, Math.min(minWords.get(v) ?? 9, nz));
  }
  const byWords = [0, 0, 0, 0, 0];
  for (const nz of minWords.values()) byWords[nz]++;
  t.deepEqual(byWords, [1, 9, 33, 65, 81], "by non-zero words: 1 9 33 65 81");
  t.deepEqual([...minWords.keys()].sort((x, y) => x - y), Array.from(nonneg), "independent enumeration = U≥0");
  const has = (u: number) => inUniversalSet(u) && inUniversalSet(-u);
  let spots = true;
  for (let u = 0; u <= 16; u++) spots &&= has(u);
  for (let u = 18; u <= 32; u += 2) spots &&= has(u);
  for (let u = 128; u <= 135; u++) spots &&= has(u);
  for (let u = 256; u <= 270; u++) spots &&= has(u);
  t.ok(spots, "0..16, 18..32 step 2, 128..135, 256..270 present");
  t.notOk(inUniversalSet(17) || inUniversalSet(1023), "17 and 1023 absent");
  t.deepEqual(Array.from(U.slice(-10)), [768, 769, 770, 772, 776, 784, 800, 832, 896, 1024], "top ten");
  U[0] = 5;
  t.equal(universalSet()[0], -1024, "universalSet returns a copy");
  for (const [n, nonNegative] of [[5, false], [24, false], [40, false], [8, true], [33, true]] as const) {
    const s = universalSubset(n, { nonNegative });
    const okSub = s.length === n && s.includes(0) && Array.from(s).every((u, i) => inUniversalSet(u) && (i === 0 || u > s[i - 1]) && (!nonNegative || u >= 0));
    t.ok(okSub, `universalSubset(${n}${nonNegative ? ", ≥ 0" : ""}) = ${n} sorted points of U incl. 0`);
  }
  throwsCode(t, () => universalSubset(1), "E_ARGUMENT", "universalSubset(1)");
  t.end();
});

test("dfsq: selectCodebook invariants, objective and determinism (§4, §9.2)", (t) => {
  const rng = new Rng(501);
  let cases = 0, bad: string[] = [];
  const Uset = new Set(universalSet());
  for (let trial = 0; trial < 48; trial++) {
    const bits = 1 + (trial % 8);
    const kind = (["laplace", "halfnormal", "uniform"] as const)[trial % 3];
    const postRelu = kind === "halfnormal";
    const n = rng.int(1, 3000);
    const x = channel(rng, n, kind, rng.uniform(0.02, 0.5));
    const w = trial % 2 ? null : Float64Array.from({ length: n }, () => rng.uniform(0, 3));
    const seed = rng.int(0, 2 ** 31);
    const r = selectCodebook(x, w, bits, { seed, postRelu });
    const K = 1 << bits;
    const cb = Array.from(r.codebook);
    const tag = `trial ${trial} b=${bits} ${kind} n=${n}`;
    if (cb.length !== K) bad.push(`${tag}: length ${cb.length}`);
    if (!cb.includes(0)) bad.push(`${tag}: no 0`);
    if (!cb.every((u, i) => Uset.has(u) && (i === 0 || u >= cb[i - 1]))) bad.push(`${tag}: not sorted points of U`);
    if (postRelu && cb.some((u) => u < 0)) bad.push(`${tag}: negative point post-ReLU`);
    if (new Set(cb).size > K) bad.push(`${tag}: > 2^b distinct`);
    if (r.restartSse.length !== 5 || r.sse !== Math.min(...r.restartSse)) bad.push(`${tag}: kept restart not the min`);
    if (!close(r.sse, naiveSse(x, w, cb), 1e-8)) bad.push(`${tag}: sse ${r.sse} vs naive ${naiveSse(x, w, cb)}`);
    if (!(r.iterations >= 1 && r.iterations <= 100)) bad.push(`${tag}: iterations ${r.iterations}`);
    const again = selectCodebook(x, w, bits, { seed, postRelu });
    if (Array.from(again.codebook).join() !== cb.join() || again.restartSse.join() !== r.restartSse.join()) bad.push(`${tag}: not deterministic`);
    cases++;
  }
  t.deepEqual(bad, [], `${cases} random channels: 2^b sorted points of U, contains 0, min-SSE restart, SSE = direct Σ w·min, deterministic`);
  // The restart selection itself: each restart's SSE is its own snapped codebook's (restarts=1 replays restart 0).
  const x = channel(rng, 5000, "laplace");
  const full = selectCodebook(x, null, 4, { seed: 7 });
  const one = selectCodebook(x, null, 4, { seed: 7, restarts: 1 });
  t.equal(one.restartSse[0], full.restartSse[0], "restart 0 reproduces with restarts: 1");
  t.ok(full.sse <= one.sse, "5 restarts never worse than 1");
  const other = selectCodebook(x, null, 4, { seed: 8 });
  t.notDeepEqual(other.restartSse, full.restartSse, "another seed explores other restarts");
  // Degenerate data: all zeros (m = 0 channel) and a single value.
  const z = selectCodebook(new Float64Array(100), null, 3);
  t.deepEqual(Array.from(z.codebook), new Array(8).fill(0), "all-zero channel → codebook of zeros");
  t.equal(z.sse, 0, "all-zero SSE 0");
  const single = selectCodebook(Float64Array.of(0.25), null, 2);
  t.ok(single.codebook.includes(256) && single.codebook.includes(0) && single.sse === 0, "single value 0.25 → {0, 256}, SSE 0");
  t.end();
});

test("dfsq: weighted K-means equals K-means on the expanded samples", (t) => {
  const rng = new Rng(502);
  const bad: string[] = [];
  for (let trial = 0; trial < 24; trial++) {
    const bits = 1 + (trial % 6);
    const m = rng.int(3, 400);
    // Dyadic values (k/1024) and integer weights: every prefix sum is exact, so both forms must agree bit for bit.
    const vals = new Float64Array(m), wts = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      vals[i] = Math.round(Math.max(-1, Math.min(1, channel(rng, 1, "uniform")[0] * rng.next() ** 2)) * 1024) / 1024;
      wts[i] = rng.int(0, 5);
    }
    wts[0] = 1;
    const expanded: number[] = [];
    for (let i = 0; i < m; i++) for (let k = 0; k < wts[i]; k++) expanded.push(vals[i]);
    // Shuffle the expansion: the result must not depend on input order either.
    for (let i = expanded.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [expanded[i], expanded[j]] = [expanded[j], expanded[i]];
    }
    const seed = rng.int(0, 1e9);
    const a = selectCodebook(vals, wts, bits, { seed });
    const b = selectCodebook(Float64Array.from(expanded), null, bits, { seed });
    if (Array.from(a.codebook).join() !== Array.from(b.codebook).join() || a.restartSse.join() !== b.restartSse.join() || a.iterations !== b.iterations) {
      bad.push(`trial ${trial}: ${Array.from(a.codebook)} vs ${Array.from(b.codebook)}`);
    }
  }
  t.deepEqual(bad, [], "24 cases: identical codebooks, restart SSEs and iterations");
  t.end();
});

test("dfsq: exhaustive DP = brute force; DP ≤ K-means; K-means near optimal", (t) => {
  const rng = new Rng(503);
  const bad: string[] = [];
  let n = 0;
  for (let trial = 0; trial < 30; trial++) {
    const bits = 1 + (trial % 3);
    const postRelu = trial % 4 === 3;
    const U = universalSubset(rng.int(postRelu ? 4 : 5, 14), { nonNegative: postRelu });
    const x = channel(rng, rng.int(1, 400), postRelu ? "halfnormal" : "laplace", rng.uniform(0.05, 0.4));
    const w = trial % 2 ? Float64Array.from(x, () => rng.uniform(0, 2)) : null;
    const dp = exhaustiveCodebook(x, w, bits, U, { postRelu });
    const bf = bruteForceCodebook(x, w, bits, U, { postRelu });
    if (!close(dp.sse, bf.sse, 1e-9)) bad.push(`trial ${trial}: dp ${dp.sse} bf ${bf.sse}`);
    if (!close(dp.sse, naiveSse(x, w, dp.codebook), 1e-8)) bad.push(`trial ${trial}: dp sse not its codebook's`);
    if (!dp.codebook.includes(0) || !Array.from(dp.codebook).every((u) => U.includes(u))) bad.push(`trial ${trial}: dp codebook not ⊂ U with 0`);
    const km = selectCodebook(x, w, bits, { universe: U, postRelu, seed: trial });
    if (dp.sse > km.sse * (1 + 1e-9) + 1e-15) bad.push(`trial ${trial}: dp ${dp.sse} > kmeans ${km.sse}`);
    n++;
  }
  t.deepEqual(bad, [], `${n} tiny universes (5–14 points, 1–3 bits): DP optimum = brute force over all subsets, DP ≤ K-means`);
  // Realistic channels on 24–40-point universes: K-means within a few % of the optimum.
  const ratios: number[] = [];
  for (const [kind, postRelu] of [["laplace", false], ["halfnormal", true]] as const) {
    for (const bits of [2, 3]) {
      for (const size of [24, 40]) {
        const U = universalSubset(size, { nonNegative: postRelu });
        const x = channel(rng, 20000, kind, 0.1);
        const dp = exhaustiveCodebook(x, null, bits, U, { postRelu });
        const km = selectCodebook(x, null, bits, { universe: U, postRelu });
        ratios.push(km.sse / dp.sse);
      }
    }
  }
  t.ok(ratios.every((r) => r >= 1 - 1e-12), "DP ≤ K-means on every realistic channel");
  t.ok(ratios.every((r) => r <= 1.1), `K-means within 10 % of the optimum: ratios ${ratios.map((r) => r.toFixed(4)).join(" ")}`);
  // Full U (377 points) is affordable for the DP; it must still beat (or tie) K-means.
  const x = channel(rng, 20000, "laplace", 0.1);
  const U = universalSet();
  for (const bits of [4, 6]) {
    const dp = exhaustiveCodebook(x, null, bits, U);
    const km = selectCodebook(x, null, bits);
    t.ok(dp.sse <= km.sse * (1 + 1e-12), `full U, ${bits} bits: DP ${dp.sse.toExponential(4)} ≤ K-means ${km.sse.toExponential(4)}`);
  }
  t.end();
});

test("dfsq: SortedPoints preparation (radix sort, grid) and argument errors", (t) => {
  const rng = new Rng(504);
  let ok = true;
  for (let trial = 0; trial < 20; trial++) {
    const n = rng.int(1, 5000);
    const a = Float64Array.from({ length: n }, () => (rng.next() - 0.5) * Math.exp(rng.uniform(-30, 30)) * (trial % 2 ? 1 : Math.fround(1)));
    if (n > 3) { a[0] = 0; a[1] = -0; a[2] = a[3]; }
    if (trial % 3 === 0) for (let i = 0; i < n; i++) a[i] = Math.fround(a[i]);
    const ref = a.slice().sort();
    const got = radixSortF64(a.slice());
    for (let i = 0; i < n; i++) if (!Object.is(got[i], ref[i])) ok = false;
  }
  t.ok(ok, "radixSortF64 = TypedArray sort (incl. ±0, duplicates, 60 decades, f32-exact inputs)");
  const x = channel(rng, 50000, "laplace", 0.1);
  const g = SortedPoints.fromGrid(x, null);
  t.ok(g.n < x.length && g.totalWeight === x.length, `grid pools ${x.length} samples into ${g.n} points`);
  const exact = selectCodebook(x, null, 4, { seed: 3 });
  const grid = selectCodebook(g, null, 4, { seed: 3 });
  const rawOfGrid = naiveSse(x, null, grid.codebook);
  t.ok(grid.sse >= rawOfGrid * (1 - 1e-12) && grid.sse <= rawOfGrid * (1 + 1e-4),
    `grid SSE = exact raw SSE of its codebook up to straddling bins (${grid.sse} vs ${rawOfGrid})`);
  t.ok(Math.abs(grid.sse / exact.sse - 1) < 0.03, `grid K-means within 3 % of raw K-means (${(grid.sse / exact.sse).toFixed(4)})`);
  t.ok(close(codebookSse(x, null, exact.codebook), exact.sse, 1e-12), "codebookSse agrees");

  throwsCode(t, () => selectCodebook(x, null, 0), "E_BITS", "bits 0");
  throwsCode(t, () => selectCodebook(x, null, 9), "E_BITS", "bits 9");
  throwsCode(t, () => selectCodebook(new Float64Array(0), null, 2), "E_SHAPE", "empty values");
  throwsCode(t, () => selectCodebook(Float64Array.of(0, NaN), null, 2), "E_RANGE", "NaN value");
  throwsCode(t, () => selectCodebook(Float64Array.of(0, 1), Float64Array.of(1), 2), "E_SHAPE", "weights length");
  throwsCode(t, () => selectCodebook(Float64Array.of(0, 1), Float64Array.of(1, -1), 2), "E_RANGE", "negative weight");
  throwsCode(t, () => selectCodebook(Float64Array.of(0, 1), Float64Array.of(0, 0), 2), "E_RANGE", "zero total weight");
  throwsCode(t, () => selectCodebook(Float64Array.of(-0.5, 1), null, 2, { postRelu: true }), "E_ARGUMENT", "negative value post-ReLU");
  throwsCode(t, () => selectCodebook(x, null, 2, { universe: Int16Array.of(-3, 5) }), "E_ARGUMENT", "universe without 0");
  throwsCode(t, () => selectCodebook(x, null, 2, { universe: Int16Array.of(0, 5, 5) }), "E_ARGUMENT", "universe not ascending");
  throwsCode(t, () => selectCodebook(x, null, 2, { universe: Int16Array.of(0, 2000) }), "E_RANGE", "universe point > 1024");
  throwsCode(t, () => selectCodebook(x, null, 2, { restarts: 0 }), "E_ARGUMENT", "restarts 0");
  throwsCode(t, () => selectCodebook(x, null, 2, { tol: -1 }), "E_ARGUMENT", "tol < 0");
  throwsCode(t, () => bruteForceCodebook(x, null, 8, universalSet()), "E_ARGUMENT", "brute force too large");
  t.end();
});

test("dfsq: SubsetLUT threshold encoder = argmin encoder except at exact midpoints (§9.3)", (t) => {
  const rng = new Rng(505);
  const bad: string[] = [];
  let checks = 0, midpointChecks = 0;
  const U = universalSet();
  for (let trial = 0; trial < 40; trial++) {
    const bits = 1 + (trial % 8), K = 1 << bits;
    const postRelu = trial % 5 === 4;
    const C = rng.int(1, 5);
    const pool = postRelu ? universalNonNegative() : U;
    const cb = new Int16Array(C * K);
    for (let i = 0; i < cb.length; i++) {
      // Few distinct points so duplicates are common; rows stay unsorted (codebook order matters for ties).
      cb[i] = trial % 3 === 0 ? pool[rng.int(0, pool.length - 1)] : pool[rng.int(0, Math.min(pool.length - 1, 6 + 3 * bits))] * (postRelu || rng.next() < 0.5 ? 1 : -1);
    }
    const lut = new SubsetLUT(cb, bits, postRelu);
    for (let c = 0; c < C; c++) {
      const uniq = lut.sortedUnique(c);
      const row = Array.from(cb.subarray(c * K, c * K + K));
      if (Array.from(uniq).join() !== [...new Set(row)].sort((a, b) => a - b).join()) bad.push(`trial ${trial} c ${c}: sortedUnique`);
      for (let j = 0; j < K; j++) if (lut.decodeLevel(c, lut.codeToLevel[c * K + j]) !== row[j] / 1024) bad.push(`codeToLevel ${trial}`);
      const mids = new Set<number>();
      for (let j = 0; j + 1 < uniq.length; j++) mids.add((uniq[j] + uniq[j + 1]) / 2048);
      for (let s = 0; s < 300; s++) {
        const r = rng.next();
        const xn = r < 0.15 ? [...mids][rng.int(0, Math.max(0, mids.size - 1))] ?? 0 : r < 0.25 ? uniq[rng.int(0, uniq.length - 1)] / 1024 : rng.uniform(-1.2, 1.2);
        if (xn === undefined) continue;
        const arg = lut.decode(c, lut.encode(c, xn));
        const lvl = lut.encodeLevel(c, xn);
        const thr = lut.decodeLevel(c, lvl);
        // Reference argmin: direct, first index on ties.
        let best = 0;
        for (let j = 1; j < K; j++) if (Math.abs(xn - row[j] / 1024) < Math.abs(xn - row[best] / 1024)) best = j;
        if (lut.encode(c, xn) !== best) bad.push(`trial ${trial}: encode ≠ first-index argmin at ${xn}`);
        if (mids.has(xn)) {
          midpointChecks++;
          const lower = uniq[uniq.findIndex((u) => u / 1024 > xn) - 1] / 1024;
          if (thr !== lower) bad.push(`trial ${trial}: midpoint ${xn} → ${thr}, want lower ${lower}`);
          if (Math.abs(arg - xn) !== Math.abs(thr - xn)) bad.push(`trial ${trial}: midpoint not equidistant`);
        } else if (arg !== thr) bad.push(`trial ${trial} c ${c}: x ${xn} argmin ${arg} threshold ${thr}`);
        checks++;
      }
    }
  }
  t.deepEqual(bad.slice(0, 5), [], `${checks} values (${midpointChecks} exact midpoints → lower point, equidistant)`);
  // A sorted codebook makes the two agree at midpoints too.
  const sorted = new SubsetLUT(Int16Array.of(-256, 0, 0, 512), 2);
  t.equal(sorted.decode(0, sorted.encode(0, 0.25)), 0, "sorted row: argmin picks the lower point at the midpoint");
  t.equal(sorted.decodeLevel(0, sorted.encodeLevel(0, 0.25)), 0, "threshold picks the lower point at the midpoint");
  t.equal(sorted.encode(0, 0), 1, "duplicate 0: first index wins");
  const unsorted = new SubsetLUT(Int16Array.of(512, 0, -256, 0), 2);
  t.equal(unsorted.decode(0, unsorted.encode(0, 0.25)), 0.5, "unsorted row: argmin first index (0.5) at the midpoint…");
  t.equal(unsorted.decodeLevel(0, unsorted.encodeLevel(0, 0.25)), 0, "…threshold the lower point (the one documented exception)");
  t.end();
});

test("dfsq: SubsetLUT tables, JSON and errors", (t) => {
  const rng = new Rng(506);
  const bits = 3, K = 8, C = 5;
  const cb = new Int16Array(C * K);
  const U = universalSet();
  for (let c = 0; c < C; c++) {
    for (let j = 0; j < K; j++) cb[c * K + j] = U[rng.int(100, 276)];
    cb[c * K + rng.int(0, K - 1)] = 0;
  }
  cb.fill(64, 4 * K, 4 * K + 6); // channel 4: many duplicates
  const lut = new SubsetLUT(cb, bits);
  const mean = Float32Array.from({ length: C }, () => rng.uniform(-2, 2));
  const maxDev = Float32Array.from({ length: C }, () => rng.uniform(0, 5));
  maxDev[2] = 0; // m = 0 channel
  const mx = lut.maxAbsValue(mean, maxDev);
  let direct = 0;
  for (let c = 0; c < C; c++) for (let j = 0; j < K; j++) direct = Math.max(direct, Math.abs((cb[c * K + j] * (maxDev[c] + 1e-8)) / 1024 + mean[c]));
  t.ok(close(mx, direct, 1e-12), "maxAbsValue = max |x̂| over all points");
  const S = mx / 32767;
  const tab = lut.int16Table(new Int16Array(C * K), mean, maxDev, S);
  let ok = true, maxAbs = 0;
  for (let c = 0; c < C; c++) {
    const L = lut.levelCount[c];
    for (let l = 0; l < K; l++) {
      const v = lut.levelTable[c * K + Math.min(l, L - 1)];
      const want = ((v * (maxDev[c] + 1e-8)) / 1024 + mean[c]) / S;
      if (Math.abs(tab[c * K + l] - want) > 0.5 + 1e-9) ok = false;
      if (l >= L && tab[c * K + l] !== tab[c * K + L - 1]) ok = false;
      maxAbs = Math.max(maxAbs, Math.abs(tab[c * K + l]));
      if (l > 0 && tab[c * K + l] < tab[c * K + l - 1]) ok = false;
    }
  }
  t.ok(ok, "int16Table: round(x̂/S) per level, monotone, padded rows repeat their last value");
  t.equal(maxAbs, 32767, "S = max|x̂|/32767 uses the full int16 range");
  t.equal(lut.levelCount[4], 3, "channel 4 has 3 distinct points");
  t.ok([...Array(K).keys()].every((l) => tab[2 * K + l] === Math.round(mean[2] / S) || Math.abs(tab[2 * K + l] - mean[2] / S) < 1), "m = 0: every level decodes to μ");
  throwsCode(t, () => lut.int16Table(new Int16Array(C * K), mean, maxDev, S / 2), "E_RANGE", "S too small → int16 overflow");
  const thr = lut.thresholdTable(new Float32Array(C * (K - 1)), mean, maxDev);
  // Raw-x threshold encoder agrees with the normalised one away from thresholds.
  let agree = 0, total = 0;
  for (let c = 0; c < C; c++) {
    // m = 0: f32 thresholds μ + t·1e-8 collapse onto μ (all x equal μ there; decoded error ≤ 1e-8).
    if (c === 2) continue;
    for (let s = 0; s < 200; s++) {
      const x = Math.fround(mean[c] + rng.uniform(-1, 1) * maxDev[c]);
      let level = 0;
      for (let j = 0; j < K - 1; j++) if (thr[c * (K - 1) + j] < x) level++;
      const ref = lut.encodeLevel(c, (x - mean[c]) / (maxDev[c] + 1e-8));
      total++;
      if (level === ref) agree++;
    }
  }
  t.ok(agree >= total - 2, `thresholdTable(raw x) = encodeLevel(x_n) on ${agree}/${total} random x (ulp ties allowed)`);
  // Post-ReLU: μ ignored, negative points rejected.
  const pr = new SubsetLUT(Int16Array.of(0, 16, 256, 1024), 2, true);
  const prTab = pr.int16Table(new Int16Array(4), null, Float32Array.of(2), 2 / 32767);
  t.deepEqual(Array.from(prTab), [0, 512, 8192, 32767], "post-ReLU table: μ = 0");
  throwsCode(t, () => new SubsetLUT(Int16Array.of(-16, 0, 16, 32), 2, true), "E_RANGE", "negative point in a post-ReLU LUT");
  // JSON round trip.
  const back = SubsetLUT.fromJSON(JSON.parse(JSON.stringify(lut)));
  t.deepEqual(Array.from(back.codebooks), Array.from(cb), "toJSON/fromJSON round-trips codebooks");
  t.equal(back.bits, 3, "bits preserved");
  t.equal(SubsetLUT.fromJSON(pr.toJSON()).postRelu, true, "postRelu preserved");
  throwsCode(t, () => SubsetLUT.fromJSON({ type: "subset-lut", version: 1, bits: 3, channels: 2, postRelu: false, codebooks: [1, 2] }), "E_MODEL_FORMAT", "fromJSON wrong length");
  throwsCode(t, () => SubsetLUT.fromJSON({ type: "x" }), "E_MODEL_FORMAT", "fromJSON wrong type");
  throwsCode(t, () => SubsetLUT.fromJSON({ ...pr.toJSON(), codebooks: [0, 0.5, 1, 2] }), "E_MODEL_FORMAT", "fromJSON non-integer");
  throwsCode(t, () => SubsetLUT.fromJSON({ ...pr.toJSON(), codebooks: [-1, 0, 1, 2] }), "E_MODEL_FORMAT", "fromJSON negative post-ReLU");
  throwsCode(t, () => new SubsetLUT(new Int16Array(8), 0), "E_BITS", "bits 0");
  throwsCode(t, () => new SubsetLUT(new Int16Array(8), 9), "E_BITS", "bits 9");
  throwsCode(t, () => new SubsetLUT(new Int16Array(6), 2), "E_SHAPE", "length not a multiple of 2^b");
  throwsCode(t, () => new SubsetLUT(Int16Array.of(0, 0, 0, 1100), 2), "E_RANGE", "point > 1024");
  throwsCode(t, () => lut.encode(C, 0), "E_ARGUMENT", "channel out of range");
  throwsCode(t, () => lut.encode(0, NaN), "E_RANGE", "NaN input");
  throwsCode(t, () => lut.decode(0, K), "E_ARGUMENT", "code out of range");
  throwsCode(t, () => lut.int16Table(new Int16Array(3), mean, maxDev, 1), "E_SHAPE", "table length");
  throwsCode(t, () => lut.int16Table(new Int16Array(C * K), null, maxDev, 1), "E_SHAPE", "signed LUT needs mean");
  throwsCode(t, () => lut.maxAbsValue(mean, Float32Array.of(1, 1, -1, 1, 1)), "E_RANGE", "negative maxDev");
  t.end();
});

test("dfsq: per-output-channel asymmetric weights (§5, §9.5)", (t) => {
  const rng = new Rng(507);
  const bad: string[] = [];
  let cases = 0;
  for (let trial = 0; trial < 40; trial++) {
    const k = rng.pick([1, 3, 5]), cin = rng.int(1, 12), cout = rng.int(1, 9), bits = rng.int(2, 8);
    const taps = k * k * cin;
    const w = new Float32Array(taps * cout);
    for (let i = 0; i < w.length; i++) w[i] = rng.normal() * 0.1 + (i % cout === 0 && trial % 4 === 1 ? 0.5 : 0); // o = 0 all positive sometimes
    if (trial % 5 === 2) for (let t2 = 0; t2 < taps; t2++) w[t2 * cout + (cout - 1)] = 0; // an all-zero channel
    const qw = quantizeDfsqWeights(w, k, cin, cout, bits);
    const half = 1 << (bits - 1);
    const deq = dequantizeDfsqWeights(new Float32Array(w.length), qw);
    for (let o = 0; o < cout; o++) {
      let mn = 0, mx = 0;
      for (let t2 = 0; t2 < taps; t2++) { mn = Math.min(mn, w[t2 * cout + o]); mx = Math.max(mx, w[t2 * cout + o]); }
      const delta = qw.wscale[o];
      if (mx > mn && Math.abs(delta - (mx - mn) / ((1 << bits) - 1)) > 1e-6 * delta) bad.push(`trial ${trial} o ${o}: Δ`);
      for (let t2 = 0; t2 < taps; t2++) {
        const n = qw.codes[o * taps + t2];
        const q = n - qw.zp[o];
        if (q < -half || q > half - 1) bad.push(`trial ${trial}: q ${q} out of range`);
        if (q + qw.zp[o] !== n) bad.push("q ↔ n");
        if (Math.abs(n) > (1 << bits) - 1) bad.push(`trial ${trial}: |n| ${n} > 2^b − 1`);
        const wv = w[t2 * cout + o];
        // Inside [min, max] the error is ≤ Δ/2 (+ f32 rounding of Δ and of w/Δ).
        if (Math.abs(deq[t2 * cout + o] - wv) > delta * 0.5 * (1 + 1e-5) + 1e-7 * Math.abs(wv)) bad.push(`trial ${trial}: |ŵ − w| > Δ/2`);
        if (deq[t2 * cout + o] !== Math.fround(n * delta)) bad.push("OHWI ↔ HWIO layout");
      }
    }
    cases++;
  }
  t.deepEqual(bad.slice(0, 5), [], `${cases} random kernels (k 1/3/5, W2–W8): q = n − zp in range, |n| ≤ 2^b − 1, |ŵ − w| ≤ Δ/2, OHWI layout`);
  // Layout spot check: a known HWIO position lands at the OHWI index ((o·k + kh)·k + kw)·cin + c.
  const k = 3, cin = 2, cout = 4;
  const w = new Float32Array(k * k * cin * cout);
  for (let i = 0; i < w.length; i++) w[i] = -0.01 * (i % 7);
  const [kh, kw, c, o] = [2, 1, 1, 3];
  w[((kh * k + kw) * cin + c) * cout + o] = 1;
  const qw = quantizeDfsqWeights(w, k, cin, cout, 8);
  const d3 = qw.wscale[3];
  t.equal(qw.codes[((o * k + kh) * k + kw) * cin + c], Math.round(Math.fround(1 / d3)), "channel 3's max weight sits at OHWI ((o·k + kh)·k + kw)·cin + c with n = round(max/Δ)");
  t.ok(Math.abs(d3 - 1.06 / 255) < 1e-7, "Δ_3 = (max − min)/255");
  const w8 = quantizeDfsqWeights(Float32Array.of(0, 0.25, 0.5, 1), 1, 4, 1, 8);
  t.equal(Math.max(...w8.codes), 255, "W8, min = 0: n reaches 255 (beyond int8) → Int16 storage");
  const sums = dfsqWeightAbsSums(qw);
  t.equal(sums.length, cout, "abs sums per output channel");
  t.equal(sums[o], Array.from(qw.codes.subarray(o * 18, o * 18 + 18)).reduce((a, b) => a + Math.abs(b), 0), "abs sum of channel 3");
  // Guards.
  const pos = Float32Array.of(0.9, 1.0, 1.1, 0.95); // k=1, cin=4, cout=1, all positive
  const widen = quantizeDfsqWeights(pos, 1, 4, 1, 4);
  t.ok(Math.max(...widen.codes) <= 15 && widen.wscale[0] === Math.fround(Math.fround(1.1) / 15), "all-positive channel (widen): range [0, max], |n| ≤ 15");
  const exact = quantizeDfsqWeights(pos, 1, 4, 1, 4, { range: "exact" });
  t.ok(Math.max(...exact.codes) > 15, `all-positive channel (exact): reference grid, n up to ${Math.max(...exact.codes)}`);
  const deqE = dequantizeDfsqWeights(new Float32Array(4), exact);
  t.ok(deqE.every((v, i) => Math.abs(v - pos[i]) <= exact.wscale[0] / 2 + 1e-6), "exact range: error ≤ Δ/2");
  const constant = quantizeDfsqWeights(Float32Array.of(0.3, 0.3), 1, 2, 1, 4, { range: "exact" });
  t.deepEqual([Array.from(constant.codes), constant.wscale[0]], [[1, 1], Math.fround(0.3)], "constant channel (exact): Δ = |a|, n = 1, ŵ = a");
  const zero = quantizeDfsqWeights(new Float32Array(2), 1, 2, 1, 4);
  t.deepEqual([Array.from(zero.codes), zero.wscale[0], zero.zp[0]], [[0, 0], 1, 8], "all-zero channel: n = 0, Δ = 1, zp = 2^(b−1)");
  throwsCode(t, () => quantizeDfsqWeights(new Float32Array(5), 1, 2, 2, 4), "E_SHAPE", "length ≠ k·k·cin·cout");
  throwsCode(t, () => quantizeDfsqWeights(new Float32Array(4), 1, 2, 2, 9), "E_BITS", "bits 9");
  throwsCode(t, () => quantizeDfsqWeights(Float32Array.of(0, NaN), 1, 2, 1, 4), "E_RANGE", "NaN weight");
  throwsCode(t, () => quantizeDfsqWeights(new Float32Array(4), 1, 2, 2, 4, { range: "x" as "exact" }), "E_ARGUMENT", "bad range mode");
  t.end();
});

test("dfsq: f64 NHWC reference quantizer (§3, §8)", (t) => {
  const rng = new Rng(508);
  const bad: string[] = [];
  for (let trial = 0; trial < 20; trial++) {
    const postRelu = trial % 2 === 1;
    const H = rng.int(1, 9), W = rng.int(1, 9), C = rng.pick([1, 3, 5, 12]), N = rng.int(1, 2);
    const stride = C + (trial % 3 === 0 ? 3 : 0);
    const bits = rng.int(2, 6), K = 1 << bits;
    const x = new Float32Array(((N * H * W - 1) * stride + C) + 0);
    for (let i = 0; i < x.length; i++) x[i] = postRelu ? Math.max(0, rng.normal()) : rng.normal() * 2 + 1;
    const constC = C > 1 ? 1 : -1;
    if (constC >= 0) for (let p = 0; p < N * H * W; p++) x[p * stride + constC] = 0.75; // m = 0 channel
    // Codebooks from the data itself (normalised per channel).
    const stats0 = dfsqStats(x, { batch: N, height: H, width: W, channels: C, pixelStride: stride }, postRelu);
    const cb = new Int16Array(C * K);
    for (let c = 0; c < C; c++) {
      const xs = new Float64Array(N * H * W);
      for (let p = 0; p < xs.length; p++) {
        const n = Math.floor(p / (H * W));
        xs[p] = (x[p * stride + c] - stats0.mean[n * C + c]) / (stats0.maxDev[n * C + c] + 1e-8);
      }
      cb.set(selectCodebook(xs, null, bits, { postRelu, seed: c }).codebook, c * K);
    }
    const lut = new SubsetLUT(cb, bits, postRelu);
    const shape = { batch: N, height: H, width: W, channels: C, pixelStride: stride };
    const out = new Float64Array(x.length).fill(-7);
    const codes = new Uint8Array(x.length);
    const st = dfsqQuantizeReference(out, x, shape, lut, { codes });
    const out2 = new Float64Array(x.length).fill(-7);
    dfsqQuantizeReference(out2, x, shape, lut, { threshold: true });
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const mu = st.mean[n * C + c], m = st.maxDev[n * C + c];
        if (postRelu && mu !== 0) bad.push("post-ReLU μ ≠ 0");
        for (let p = 0; p < H * W; p++) {
          const i = (n * H * W + p) * stride + c;
          const xn = (x[i] - mu) / (m + 1e-8);
          // Brute-force oracle: nearest point, first index.
          let best = 0;
          for (let j = 1; j < K; j++) if (Math.abs(xn - cb[c * K + j] / 1024) < Math.abs(xn - cb[c * K + best] / 1024)) best = j;
          const want = (cb[c * K + best] / 1024) * (m + 1e-8) + mu;
          if (out[i] !== want || codes[i] !== best) bad.push(`trial ${trial}: element ${i}`);
          if (out2[i] !== out[i]) bad.push(`trial ${trial}: threshold path differs at ${i}`); // sorted codebooks
          if (postRelu && out[i] < 0) bad.push("negative output post-ReLU");
          if (c === constC && Math.abs(out[i] - 0.75) > 2e-8) bad.push(`m = 0 channel → ${out[i]}`);
        }
      }
    }
    for (let p = 0; p < N * H * W - 1; p++) for (let g = C; g < stride; g++) if (out[p * stride + g] !== -7) bad.push("stride gap written");
  }
  t.deepEqual(bad.slice(0, 5), [], "20 tensors (batch, stride gaps, post-ReLU, m = 0 channels): reference = brute-force argmin oracle; threshold path equal on sorted codebooks");
  const lut = new SubsetLUT(new Int16Array(4), 2);
  throwsCode(t, () => dfsqQuantizeReference(new Float64Array(6), new Float32Array(6), { height: 1, width: 3, channels: 2 }, lut), "E_SHAPE", "channel mismatch");
  throwsCode(t, () => dfsqQuantizeReference(new Float64Array(2), new Float32Array(3), { height: 1, width: 3, channels: 1 }, lut), "E_SHAPE", "out too short");
  throwsCode(t, () => dfsqStats(Float32Array.of(1, Infinity), { height: 1, width: 2, channels: 1 }, false), "E_RANGE", "Inf input");
  t.end();
});
