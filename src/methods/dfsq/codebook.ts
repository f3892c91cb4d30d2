/**
 * DFSQ codebook selection (spec dfsq.md §4) on weighted 1-D points.
 *
 * Input is a set of normalised calibration values x_i with weights w_i ≥ 0: raw samples (w = 1) or
 * histogram bin centres with their counts. The objective of a codebook qp (points of U, in 1/1024
 * units u = 1024·qp) is the weighted quantization error
 *
 *     SSE(qp) = Σ_i w_i · min_j (x_i − qp_j)².
 *
 * Everything runs on the points sorted once, with prefix sums W, WX, WXX of w, w·x, w·x². In 1-D the
 * nearest-centroid cells of sorted centroids c_0 ≤ … ≤ c_{K−1} are the intervals between consecutive
 * midpoints, so a cell [s, e) of the sorted points is found by two binary searches and
 *
 *     Σ_{i∈[s,e)} w_i (x_i − q)² = (WXX_e − WXX_s) − 2q(WX_e − WX_s) + q²(W_e − W_s),
 *     mean of the cell           = (WX_e − WX_s) / (W_e − W_s).
 *
 * One Lloyd iteration and one SSE evaluation are therefore O(K log N) instead of O(N·K); Lloyd
 * iterations further start each boundary search from the previous iteration's boundary (galloping),
 * which is O(log shift) once the centroids settle.
 *
 * Cell convention: a point exactly on a midpoint belongs to the lower centroid (the argmin-first-index
 * rule on a sorted codebook; for the SSE it does not matter, both centroids are equally near).
 */
import { LowbitError, checkInt } from "../../runtime/errors.ts";
import { Mulberry32 } from "../../util/rng.ts";
import { radixSortF64 } from "./radix-sort.ts";
import { universalSet } from "./universal-set.ts";

/** Calibration points sorted ascending, with inclusive prefix sums (length N + 1, index 0 = 0). */
export class SortedPoints {
  readonly x: Float64Array;
  /** Prefix sums interleaved [W_i, WX_i, WXX_i] at 3i, i = 0..N (one cache line per lookup). */
  readonly prefix: Float64Array;
  readonly n: number;
  readonly totalWeight: number;
  /** True when every x ≥ 0. */
  readonly nonNegative: boolean;

  /** Set by {@link SortedPoints.fromGrid}: the grid step, else 0 (exact points). */
  readonly gridStep: number;

  private constructor(x: Float64Array, w: Float64Array | null, sumWxx: Float64Array | null = null, gridStep = 0) {
    this.gridStep = gridStep;
    const n = x.length;
    this.x = x;
    this.n = n;
    const p = (this.prefix = new Float64Array(3 * (n + 1)));
    let a = 0, b = 0, c = 0;
    for (let i = 0; i < n; i++) {
      const wi = w === null ? 1 : w[i];
      const xi = x[i];
      a += wi;
      b += wi * xi;
      c += sumWxx === null ? wi * xi * xi : sumWxx[i];
      p[3 * i + 3] = a;
      p[3 * i + 4] = b;
      p[3 * i + 5] = c;
    }
    this.totalWeight = a;
    this.nonNegative = n === 0 || x[0] >= 0;
  }

  /**
   * Validates and sorts (value, weight) pairs. values: finite; weights: null (all 1) or finite ≥ 0 with
   * a positive total. Already-sorted input (e.g. histogram bin centres) skips the sort.
   */
  static from(values: Float64Array | Float32Array, weights: Float64Array | Float32Array | null = null): SortedPoints {
    const sorted = validatePoints(values, weights);
    const n = values.length;
    if (weights === null) {
      const x = Float64Array.from(values);
      if (!sorted) radixSortF64(x);
      return new SortedPoints(x, null);
    }
    if (sorted) return new SortedPoints(Float64Array.from(values), Float64Array.from(weights));
    const idx = new Uint32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    idx.sort((a, b) => values[a] - values[b] || a - b);
    const x = new Float64Array(n), w = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      x[i] = values[idx[i]];
      w[i] = weights[idx[i]];
    }
    return new SortedPoints(x, w);
  }

  /**
   * O(N) preparation without a sort: points are pooled into bins of width `step` (default 2^−14,
   * 16× finer than U's finest spacing 2^−10); each bin becomes one point at its members' weighted
   * mean, with the members' exact Σw, Σw·x and Σw·x². Cell sums over whole bins are then exact —
   * K-means means and SSEs equal the raw-sample ones except that a bin straddling a cell boundary
   * goes to one side as a whole (an error below the bin width). Falls back to {@link from} when the
   * value range would need more than max(4N, 65536) bins.
   */
  static fromGrid(
    values: Float64Array | Float32Array, weights: Float64Array | Float32Array | null = null, step = 2 ** -14,
  ): SortedPoints {
    if (!(step > 0) || !Number.isFinite(step)) throw new LowbitError("E_ARGUMENT", `step must be finite and > 0, got ${step}`);
    validatePoints(values, weights);
    const n = values.length;
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const b0 = Math.round(lo / step);
    const nb = Math.round(hi / step) - b0 + 1;
    if (nb > Math.max(4 * n, 65536)) return SortedPoints.from(values, weights);
    const W = new Float64Array(nb), WX = new Float64Array(nb), WXX = new Float64Array(nb);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      const wi = weights === null ? 1 : weights[i];
      const b = Math.round(v / step) - b0;
      W[b] += wi;
      WX[b] += wi * v;
      WXX[b] += wi * v * v;
    }
    let m = 0;
    for (let b = 0; b < nb; b++) if (W[b] > 0) m++;
    const x = new Float64Array(m), w = new Float64Array(m), sxx = new Float64Array(m);
    for (let b = 0, k = 0; b < nb; b++) {
      if (!(W[b] > 0)) continue;
      // The mean of a bin's members lies inside the bin, so the bin order is the point order.
      let mean = WX[b] / W[b];
      const bl = (b + b0 - 0.5) * step, bh = (b + b0 + 0.5) * step;
      if (mean < bl) mean = bl;
      if (mean > bh) mean = bh;
      x[k] = mean;
      w[k] = W[b];
      sxx[k] = WXX[b];
      k++;
    }
    return new SortedPoints(x, w, sxx, step);
  }

  /** Number of points with x ≤ t (upper bound), plain binary search. */
  countLe(t: number): number {
    const x = this.x;
    let lo = 0, hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (x[mid] <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** countLe(t), galloping outwards from a previous answer `hint` (exact same result, O(log |shift|)). */
  countLeFrom(t: number, hint: number): number {
    const x = this.x, n = this.n;
    let lo: number, hi: number;
    if (hint > 0 && hint <= n && x[hint - 1] > t) {
      // Answer < hint: gallop down.
      hi = hint - 1;
      let step = 1;
      lo = hi - step;
      while (lo > 0 && x[lo - 1] > t) {
        hi = lo - 1;
        step <<= 1;
        lo = hi - step;
      }
      if (lo < 0) lo = 0;
    } else {
      // x[hint-1] ≤ t (or hint = 0): answer ≥ hint, gallop up.
      lo = hint < 0 ? 0 : hint > n ? n : hint;
      let step = 1;
      hi = lo + step;
      while (hi < n && x[hi - 1] <= t) {
        lo = hi;
        step <<= 1;
        hi = lo + step;
      }
      if (hi > n) hi = n;
    }
    // Invariant: answer ∈ [lo, hi].
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (x[mid] <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Σ_{i∈[s,e)} w_i (x_i − q)², clamped at 0 against prefix-sum cancellation. */
  rangeCost(s: number, e: number, q: number): number {
    if (e <= s) return 0;
    const p = this.prefix;
    const W = p[3 * e] - p[3 * s];
    const WX = p[3 * e + 1] - p[3 * s + 1];
    const WXX = p[3 * e + 2] - p[3 * s + 2];
    const c = WXX - 2 * q * WX + q * q * W;
    return c > 0 ? c : 0;
  }

  /** Index of the point reached by cumulative weight r ∈ [0, totalWeight): first i with W_{i+1} > r. */
  sampleIndex(r: number): number {
    const p = this.prefix;
    let lo = 0, hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (p[3 * mid + 3] > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/** Checks values/weights; returns whether values are already ascending. */
function validatePoints(values: Float64Array | Float32Array, weights: Float64Array | Float32Array | null): boolean {
  if (!(values instanceof Float64Array || values instanceof Float32Array)) {
    throw new LowbitError("E_ARGUMENT", "values must be a Float64Array or Float32Array");
  }
  const n = values.length;
  if (n === 0) throw new LowbitError("E_SHAPE", "values is empty");
  if (weights !== null) {
    if (!(weights instanceof Float64Array || weights instanceof Float32Array)) {
      throw new LowbitError("E_ARGUMENT", "weights must be null, a Float64Array or a Float32Array");
    }
    if (weights.length !== n) throw new LowbitError("E_SHAPE", `weights has ${weights.length} entries, values ${n}`);
  }
  let sorted = true, total = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) throw new LowbitError("E_RANGE", `values[${i}] = ${v} is not finite`);
    if (i > 0 && v < values[i - 1]) sorted = false;
    if (weights !== null) {
      const w = weights[i];
      if (!Number.isFinite(w) || w < 0) throw new LowbitError("E_RANGE", `weights[${i}] = ${w} must be finite and ≥ 0`);
      total += w;
    }
  }
  if (weights !== null && !(total > 0)) throw new LowbitError("E_RANGE", "weights sum to 0");
  return sorted;
}

/**
 * SSE of a codebook in real units: Σ_i w_i min_j (x_i − qp_j)². `qp` must be sorted ascending
 * (duplicates allowed). O(K log N).
 */
export function sortedCodebookSse(points: SortedPoints, qp: ArrayLike<number>): number {
  const K = qp.length;
  let sse = 0, s = 0;
  for (let j = 0; j < K; j++) {
    const e = j + 1 < K ? points.countLe(0.5 * (qp[j] + qp[j + 1])) : points.n;
    sse += points.rangeCost(s, e, qp[j]);
    if (e > s) s = e;
  }
  return sse;
}

/** Sorts a copy of an integer codebook (1/1024 units) and returns it in real units. */
function toSortedReal(codebook: ArrayLike<number>): Float64Array {
  const q = new Float64Array(codebook.length);
  for (let i = 0; i < q.length; i++) q[i] = codebook[i] / 1024;
  return q.sort();
}

/**
 * Weighted SSE of an integer codebook (1/1024 units, any order, duplicates allowed) on raw values:
 * Σ_i w_i · min_j (x_i − u_j/1024)².
 */
export function codebookSse(
  values: Float64Array | Float32Array | SortedPoints, weights: Float64Array | Float32Array | null, codebook: ArrayLike<number>,
): number {
  const pts = values instanceof SortedPoints ? values : SortedPoints.from(values, weights);
  if (codebook.length === 0) throw new LowbitError("E_SHAPE", "codebook is empty");
  return sortedCodebookSse(pts, toSortedReal(codebook));
}

export interface SelectCodebookOptions {
  /** Candidate points, 1/1024 units, sorted ascending, must contain 0. Default: U (377 points). */
  universe?: Int16Array;
  /** K-means restarts; the one with the lowest snapped SSE is kept. Default 5. */
  restarts?: number;
  /** Lloyd iterations per restart. Default 100. */
  maxIter?: number;
  /** Stop when the largest centroid move is below tol (normalised units). Default 1e-3. */
  tol?: number;
  /** RNG seed (uint32). Default 0x0df5. */
  seed?: number;
  /** Post-ReLU input: values must be ≥ 0 and only the non-negative points of the universe are used. */
  postRelu?: boolean;
}

export interface CodebookResult {
  /** 2^b points, 1/1024 units, ascending; duplicates kept (fewer distinct points than 2^b possible). Always contains 0. */
  codebook: Int16Array;
  /** Σ w·min_j (x − qp_j)² of `codebook` (real units). */
  sse: number;
  /** Lloyd iterations the kept restart ran. */
  iterations: number;
  /** Snapped SSE of every restart, in order; sse = min(restartSse). */
  restartSse: number[];
}

export const DEFAULT_DFSQ_SEED = 0x0df5;

function checkUniverse(universe: Int16Array, postRelu: boolean): Float64Array {
  if (!(universe instanceof Int16Array)) throw new LowbitError("E_ARGUMENT", "universe must be an Int16Array");
  let hasZero = false;
  for (let i = 0; i < universe.length; i++) {
    const u = universe[i];
    if (u < -1024 || u > 1024) throw new LowbitError("E_RANGE", `universe[${i}] = ${u} outside [−1024, 1024]`);
    if (i > 0 && u <= universe[i - 1]) throw new LowbitError("E_ARGUMENT", "universe must be strictly ascending");
    if (u === 0) hasZero = true;
  }
  if (!hasZero) throw new LowbitError("E_ARGUMENT", "universe must contain 0 (the fixed centroid)");
  const kept = postRelu ? universe.filter((u) => u >= 0) : universe;
  const out = new Float64Array(kept.length);
  for (let i = 0; i < kept.length; i++) out[i] = kept[i] / 1024;
  return out;
}

/** Nearest point of the sorted real universe `uq`; on a tie the lower point wins. Returns its index. */
function snapIndex(uq: Float64Array, v: number): number {
  let lo = 0, hi = uq.length; // first index with uq[i] ≥ v
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (uq[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0) return 0;
  if (lo === uq.length) return uq.length - 1;
  return v - uq[lo - 1] <= uq[lo] - v ? lo - 1 : lo;
}

function checkBitsDfsq(bits: number): void {
  checkInt(bits, 1, 8, "bits", "E_BITS");
}

/**
 * One K-means run (spec §4 step 1): K − 1 free centroids seeded from samples drawn by weight, one
 * centroid fixed at 0 that takes part in the assignment but is reset to 0 after each update, empty
 * cells re-seeded from a fresh weighted sample. Writes the final K centroids (sorted, 0 included) to
 * `out` and returns the number of iterations run.
 */
function kmeansFixedZero(
  pts: SortedPoints, K: number, rng: Mulberry32, maxIter: number, tol: number, out: Float64Array,
  free: Float64Array, next: Float64Array, ends: Int32Array,
): number {
  const F = K - 1;
  const total = pts.totalWeight;
  const pre = pts.prefix;
  for (let i = 0; i < F; i++) free[i] = pts.x[pts.sampleIndex(rng.next() * total)];
  free.subarray(0, F).sort();
  for (let j = 0; j < K - 1; j++) ends[j] = 0;
  let iter = 0;
  while (iter < maxIter) {
    iter++;
    // Merge the fixed 0 into the sorted free centroids: c = free[0..z) ∪ {0} ∪ free[z..F).
    let z = 0;
    while (z < F && free[z] < 0) z++;
    const c = out;
    for (let j = 0; j < z; j++) c[j] = free[j];
    c[z] = 0;
    for (let j = z; j < F; j++) c[j + 1] = free[j];
    let maxMove = 0, s = 0;
    for (let j = 0; j < K; j++) {
      const e = j + 1 < K ? pts.countLeFrom(0.5 * (c[j] + c[j + 1]), ends[j]) : pts.n;
      if (j + 1 < K) ends[j] = e;
      if (j !== z) {
        const fi = j < z ? j : j - 1;
        const W = e > s ? pre[3 * e] - pre[3 * s] : 0;
        const v = W > 0 ? (pre[3 * e + 1] - pre[3 * s + 1]) / W : pts.x[pts.sampleIndex(rng.next() * total)];
        next[fi] = v;
        const mv = Math.abs(v - free[fi]);
        if (mv > maxMove) maxMove = mv;
      }
      if (e > s) s = e;
    }
    // Means of ordered cells stay ordered; only re-seeded centroids can break the order.
    for (let i = 1; i < F; i++) {
      const v = next[i];
      let k = i - 1;
      while (k >= 0 && next[k] > v) {
        next[k + 1] = next[k];
        k--;
      }
      next[k + 1] = v;
    }
    free.set(next.subarray(0, F));
    if (maxMove < tol) break;
  }
  let z = 0;
  while (z < F && free[z] < 0) z++;
  for (let j = 0; j < z; j++) out[j] = free[j];
  out[z] = 0;
  for (let j = z; j < F; j++) out[j + 1] = free[j];
  return iter;
}

/**
 * Selects one channel's DFSQ codebook (spec §4): `restarts` runs of fixed-zero K-means (K = 2^bits),
 * each snapped point by point to the nearest universe point (ties → lower point; duplicates kept),
 * and keeps the run with the lowest snapped SSE (first run on ties). Deterministic for a given seed.
 *
 * values/weights as in {@link SortedPoints.from}; pass a prepared SortedPoints to reuse one sort
 * across bit-widths.
 */
export function selectCodebook(
  values: Float64Array | Float32Array | SortedPoints, weights: Float64Array | Float32Array | null, bits: number,
  opts: SelectCodebookOptions = {},
): CodebookResult {
  checkBitsDfsq(bits);
  const postRelu = opts.postRelu ?? false;
  const restarts = opts.restarts ?? 5;
  const maxIter = opts.maxIter ?? 100;
  const tol = opts.tol ?? 1e-3;
  const seed = opts.seed ?? DEFAULT_DFSQ_SEED;
  checkInt(restarts, 1, 1000, "restarts");
  checkInt(maxIter, 1, 1_000_000, "maxIter");
  if (!(tol >= 0) || !Number.isFinite(tol)) throw new LowbitError("E_ARGUMENT", `tol must be finite and ≥ 0, got ${tol}`);
  checkInt(seed, -(2 ** 31), 2 ** 32 - 1, "seed");
  const uq = checkUniverse(opts.universe ?? universalSet(), postRelu);
  const pts = values instanceof SortedPoints ? values : SortedPoints.from(values, weights);
  if (postRelu && !pts.nonNegative) {
    throw new LowbitError("E_ARGUMENT", "postRelu codebook selection needs values ≥ 0 (normalised post-ReLU inputs lie in [0, 1])");
  }
  const K = 1 << bits;
  const rng = new Mulberry32(seed);
  const cent = new Float64Array(K), free = new Float64Array(K), next = new Float64Array(K), ends = new Int32Array(K);
  const snapped = new Float64Array(K);
  const best = new Int16Array(K);
  const restartSse: number[] = [];
  let bestSse = Infinity, bestIter = 0;
  for (let r = 0; r < restarts; r++) {
    const iters = kmeansFixedZero(pts, K, rng, maxIter, tol, cent, free, next, ends);
    // Snapping is monotone, so sorted centroids give a sorted codebook.
    for (let j = 0; j < K; j++) snapped[j] = uq[snapIndex(uq, cent[j])];
    const sse = sortedCodebookSse(pts, snapped);
    restartSse.push(sse);
    if (sse < bestSse) {
      bestSse = sse;
      bestIter = iters;
      for (let j = 0; j < K; j++) best[j] = Math.round(snapped[j] * 1024);
    }
  }
  return { codebook: best, sse: bestSse, iterations: bestIter, restartSse };
}

export interface ExhaustiveResult {
  /** 2^b points, 1/1024 units, ascending, contains 0; padded with the largest point when the universe has < 2^b points. */
  codebook: Int16Array;
  sse: number;
}

function checkUniverseArg(universe: Int16Array): void {
  if (universe === undefined || universe === null) throw new LowbitError("E_ARGUMENT", "universe is required");
}

/**
 * The exact best codebook: the subset of `universe` of size min(2^b, |universe|) that contains 0 and
 * minimises the weighted SSE.
 *
 * Method: dynamic programming over the sorted universe (optimal 1-D quantization with a fixed
 * candidate set). In 1-D, once the chosen points p_1 < … < p_k are sorted, every x is served by one
 * of its two chosen neighbours, so the SSE is a sum of independent terms: the points below p_1, the
 * points between each consecutive chosen pair (split at their midpoint), and the points above p_k.
 *
 *     D[1][i] = cost(x ≤ u_i → u_i)
 *     D[j][i] = min_{l<i} D[j−1][l] + pair(l, i),   pair(l, i) = cost(u_l < x ≤ u_i → nearer of u_l, u_i)
 *     best    = min_i D[k][i] + cost(x > u_i → u_i)
 *
 * "Contains 0" forbids a pair (l, i) that skips over 0, a first point above 0 and a last point
 * below 0. Each cost is O(log N) by prefix sums: O(n² log N + k·n²) in total (n = |universe|) —
 * 377 points at 8 bits is ~36 M steps, while brute force is C(376, 255) subsets. Choosing more points
 * never raises the SSE, so size exactly min(2^b, n) is also optimal among all smaller subsets.
 */
export function exhaustiveCodebook(
  values: Float64Array | Float32Array | SortedPoints, weights: Float64Array | Float32Array | null, bits: number,
  universe: Int16Array, opts: { postRelu?: boolean } = {},
): ExhaustiveResult {
  checkBitsDfsq(bits);
  checkUniverseArg(universe);
  const postRelu = opts.postRelu ?? false;
  const uq = checkUniverse(universe, postRelu);
  const pts = values instanceof SortedPoints ? values : SortedPoints.from(values, weights);
  const n = uq.length;
  const K = 1 << bits;
  const k = Math.min(K, n);
  let z = 0;
  while (uq[z] !== 0) z++;
  // le[i] = #points ≤ u_i, mid[i] = #points ≤ (u_i + u_{i+1})/2 is not enough for arbitrary pairs: computed per pair.
  const le = new Int32Array(n);
  for (let i = 0; i < n; i++) le[i] = pts.countLe(uq[i]);
  const pair = new Float64Array(n * n); // pair[l·n + i], l < i
  for (let l = 0; l < n; l++) {
    for (let i = l + 1; i < n; i++) {
      const m = pts.countLe(0.5 * (uq[l] + uq[i]));
      pair[l * n + i] = pts.rangeCost(le[l], m, uq[l]) + pts.rangeCost(m, le[i], uq[i]);
    }
  }
  const INF = Infinity;
  let prev = new Float64Array(n).fill(INF);
  let cur = new Float64Array(n);
  const from = new Int32Array(k * n).fill(-1);
  for (let i = 0; i <= z; i++) prev[i] = pts.rangeCost(0, le[i], uq[i]);
  for (let j = 2; j <= k; j++) {
    cur.fill(INF);
    for (let i = 1; i < n; i++) {
      let bestV = INF, bestL = -1;
      // A pair (l, i) must not skip over 0: l ≥ z when i > z.
      const l0 = i > z ? z : 0;
      for (let l = l0; l < i; l++) {
        const p = prev[l];
        if (p === INF) continue;
        const v = p + pair[l * n + i];
        if (v < bestV) { bestV = v; bestL = l; }
      }
      cur[i] = bestV;
      from[(j - 1) * n + i] = bestL;
    }
    const t = prev; prev = cur; cur = t;
  }
  let bestV = INF, last = -1;
  for (let i = z; i < n; i++) {
    if (prev[i] === INF) continue;
    const v = prev[i] + pts.rangeCost(le[i], pts.n, uq[i]);
    if (v < bestV) { bestV = v; last = i; }
  }
  if (last < 0) throw new LowbitError("E_ARGUMENT", "no feasible codebook"); // unreachable: k ≤ n and 0 ∈ universe
  const chosen: number[] = [];
  for (let j = k, i = last; j >= 1; j--) {
    chosen.push(i);
    i = from[(j - 1) * n + i];
  }
  chosen.reverse();
  const codebook = new Int16Array(K);
  for (let j = 0; j < K; j++) codebook[j] = Math.round(uq[chosen[Math.min(j, k - 1)]] * 1024);
  return { codebook, sse: sortedCodebookSse(pts, toSortedReal(codebook)) };
}

/**
 * Brute force over every subset of size min(2^b, n) containing 0 — the definition the DP must match.
 * Only for tiny universes (E_ARGUMENT above `maxSubsets` candidates, default 5e6).
 */
export function bruteForceCodebook(
  values: Float64Array | Float32Array | SortedPoints, weights: Float64Array | Float32Array | null, bits: number,
  universe: Int16Array, opts: { postRelu?: boolean; maxSubsets?: number } = {},
): ExhaustiveResult {
  checkBitsDfsq(bits);
  checkUniverseArg(universe);
  const uq = checkUniverse(universe, opts.postRelu ?? false);
  const pts = values instanceof SortedPoints ? values : SortedPoints.from(values, weights);
  const n = uq.length, K = 1 << bits, k = Math.min(K, n);
  let z = 0;
  while (uq[z] !== 0) z++;
  const others: number[] = [];
  for (let i = 0; i < n; i++) if (i !== z) others.push(i);
  let count = 1;
  for (let i = 0; i < k - 1; i++) count = (count * (others.length - i)) / (i + 1);
  if (count > (opts.maxSubsets ?? 5e6)) throw new LowbitError("E_ARGUMENT", `brute force would try ${count} subsets`);
  const pick = new Int32Array(k - 1);
  const qp = new Float64Array(k);
  let bestSse = Infinity;
  let bestQp = new Float64Array(k);
  const rec = (start: number, depth: number): void => {
    if (depth === k - 1) {
      let a = 0, placed = false;
      for (let t = 0; t < k - 1; t++) {
        const i = others[pick[t]];
        if (!placed && i > z) { qp[a++] = 0; placed = true; }
        qp[a++] = uq[i];
      }
      if (!placed) qp[a++] = 0;
      const sse = sortedCodebookSse(pts, qp);
      if (sse < bestSse) { bestSse = sse; bestQp = qp.slice(); }
      return;
    }
    for (let t = start; t <= others.length - (k - 1 - depth); t++) {
      pick[depth] = t;
      rec(t + 1, depth + 1);
    }
  };
  rec(0, 0);
  const codebook = new Int16Array(K);
  for (let j = 0; j < K; j++) codebook[j] = Math.round(bestQp[Math.min(j, k - 1)] * 1024);
  return { codebook, sse: bestSse };
}
