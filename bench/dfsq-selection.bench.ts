// `npm run bench:dfsq`: DFSQ codebook selection (pure TS, single thread).
//  1. Small universes (24 / 40 points of U), 2–3 bits: exact selection (DP) vs fixed-zero K-means
//     (5 restarts, spec §4) vs brute force over all subsets — SSE and time, Laplacian (signed) and
//     half-normal (post-ReLU) channels.
//  2. Per-channel calibration cost on 73,728 samples (one ×4 channel: 32 patches of 48×48) at 4/6/8
//     bits: preparation (radix sort / O(N) grid) + K-means, and DP over the full U for comparison.
// Times are the fastest benchmark.js sample (least disturbed on a shared machine).
import { time, fmt } from "./util.ts";
import { Mulberry32 } from "../src/util/rng.ts";
import {
  SortedPoints, bruteForceCodebook, exhaustiveCodebook, selectCodebook, universalSet, universalSubset,
} from "../src/methods/dfsq/index.ts";

const rng = new Mulberry32(2305);
function normal(): number {
  const u = Math.max(rng.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}
function channel(n: number, kind: "laplace" | "halfnormal"): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (kind === "laplace") {
      const u = rng.next() - 0.5;
      a[i] = -Math.sign(u) * Math.log(Math.max(1 - 2 * Math.abs(u), 1e-300));
    } else a[i] = Math.abs(normal());
  }
  let mean = 0;
  if (kind === "laplace") { for (const v of a) mean += v; mean /= n; }
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v - mean));
  for (let i = 0; i < n; i++) a[i] = (a[i] - mean) / (m + 1e-8);
  return a;
}
const ms = (s: number) => fmt(s * 1e3, 3);

console.log(`# DFSQ codebook selection — Node ${process.versions.node}, single thread`);
console.log("\n## Small universes: exact (DP) vs K-means vs brute force, 73,728 samples (pre-sorted once)\n");
console.log("| channel | |U'| | bits | brute-force subsets | SSE DP | SSE K-means | K-means / DP | ms DP | ms K-means | ms brute force |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const kind of ["laplace", "halfnormal"] as const) {
  const postRelu = kind === "halfnormal";
  const pts = SortedPoints.from(channel(73728, kind), null);
  for (const size of [24, 40]) {
    const U = universalSubset(size, { nonNegative: postRelu });
    for (const bits of [2, 3]) {
      const K = 1 << bits;
      let subsets = 1;
      for (let i = 0; i < K - 1; i++) subsets = (subsets * (size - 1 - i)) / (i + 1);
      const dp = exhaustiveCodebook(pts, null, bits, U, { postRelu });
      const km = selectCodebook(pts, null, bits, { universe: U, postRelu });
      const tDp = time("dp", () => exhaustiveCodebook(pts, null, bits, U, { postRelu }), 0.5);
      const tKm = time("km", () => selectCodebook(pts, null, bits, { universe: U, postRelu }), 0.5);
      let bfMs = "–";
      if (subsets <= 2e5) {
        const t0 = performance.now();
        const bf = bruteForceCodebook(pts, null, bits, U, { postRelu, maxSubsets: 2e5 });
        bfMs = fmt(performance.now() - t0, 1);
        if (Math.abs(bf.sse - dp.sse) > 1e-9 * dp.sse) throw new Error("DP ≠ brute force");
      }
      console.log(`| ${kind} | ${size} | ${bits} | ${subsets} | ${dp.sse.toExponential(4)} | ${km.sse.toExponential(4)} | ${fmt(km.sse / dp.sse, 4)} | ${ms(tDp.min)} | ${ms(tKm.min)} | ${bfMs} |`);
    }
  }
}

console.log("\n## Per-channel cost on 73,728 samples, full U (377 points)\n");
console.log("| channel | bits | prep sort ms | prep grid ms (points) | K-means ms (sorted) | K-means ms (grid) | DP ms (grid) | SSE K-means | SSE K-means grid | SSE DP | K-means / DP |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|");
const U = universalSet();
for (const kind of ["laplace", "halfnormal"] as const) {
  const postRelu = kind === "halfnormal";
  const x = channel(73728, kind);
  const tSort = time("sort", () => SortedPoints.from(x, null), 0.5);
  const tGrid = time("grid", () => SortedPoints.fromGrid(x, null), 0.5);
  const sorted = SortedPoints.from(x, null), grid = SortedPoints.fromGrid(x, null);
  for (const bits of [4, 6, 8]) {
    const km = selectCodebook(sorted, null, bits, { postRelu });
    const kg = selectCodebook(grid, null, bits, { postRelu });
    const dp = exhaustiveCodebook(grid, null, bits, U, { postRelu });
    const tKm = time("km", () => selectCodebook(sorted, null, bits, { postRelu }), 0.6);
    const tKg = time("kg", () => selectCodebook(grid, null, bits, { postRelu }), 0.6);
    const tDp = time("dp", () => exhaustiveCodebook(grid, null, bits, U, { postRelu }), 0.6);
    console.log(`| ${kind} | ${bits} | ${ms(tSort.min)} | ${ms(tGrid.min)} (${grid.n}) | ${ms(tKm.min)} | ${ms(tKg.min)} | ${ms(tDp.min)} | ${km.sse.toExponential(4)} | ${kg.sse.toExponential(4)} | ${dp.sse.toExponential(4)} | ${fmt(km.sse / dp.sse, 3)} |`);
  }
}
