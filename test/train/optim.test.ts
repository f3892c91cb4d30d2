// Adam, parameter groups, the step schedule, the weight odd grid and percentiles.
import test from "tape";
import { Rng } from "../util/rng.ts";
import { Adam, type Param } from "../../src/train/adam.ts";
import { fakeQuantWeightsOdd, fakeQuantWeightsOddBackward, oddGridCodes, percentile } from "../../src/train/quant-math.ts";
import { weightScaleOf } from "../../src/train/graph.ts";
import { LowbitError } from "../../src/runtime/errors.ts";

const code = (f: () => unknown): string => {
  try {
    f();
    return "none";
  } catch (e) {
    return e instanceof LowbitError ? e.code : `not LowbitError: ${String(e)}`;
  }
};

test("train: Adam minimizes a quadratic and matches the reference update rule step by step", (t) => {
  const rng = new Rng(3);
  const n = 37;
  const a = Float64Array.from({ length: n }, () => rng.uniform(0.1, 10)); // curvature spread 100×
  const c = Float64Array.from({ length: n }, () => rng.uniform(-3, 3));
  const x0 = Float32Array.from({ length: n }, () => rng.uniform(-3, 3));
  const p: Param = { name: "q/weight", layer: "q", kind: "weight", value: Float32Array.from(x0) };
  const opt = new Adam([p], { lr: 0.05 });
  // Reference: Kingma & Ba with bias correction, in f64 (then f32 storage like the engine).
  const ref = Float32Array.from(x0), m = new Float64Array(n), v = new Float64Array(n);
  let worst = 0;
  for (let step = 1; step <= 60; step++) {
    const g = Float32Array.from(p.value, (x, i) => 2 * a[i] * (x - c[i]));
    const gr = Float32Array.from(ref, (x, i) => 2 * a[i] * (x - c[i]));
    opt.step(new Map([[p.name, g]]));
    for (let i = 0; i < n; i++) {
      m[i] = 0.9 * m[i] + 0.1 * gr[i];
      v[i] = 0.999 * v[i] + 0.001 * gr[i] * gr[i];
      ref[i] -= (0.05 * (m[i] / (1 - 0.9 ** step))) / (Math.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8);
    }
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(p.value[i] - ref[i]));
  }
  t.ok(worst < 1e-5, `60 steps track the f64 reference (worst |Δx| ${worst.toExponential(2)})`);
  for (let step = 0; step < 1500; step++) opt.step(new Map([[p.name, Float32Array.from(p.value, (x, i) => 2 * a[i] * (x - c[i]))]]));
  let err = 0;
  for (let i = 0; i < n; i++) err = Math.max(err, Math.abs(p.value[i] - c[i]));
  t.ok(err < 1e-3, `converges to the minimum (max |x − c| ${err.toExponential(2)} after 1560 steps)`);
  t.equal(opt.t, 1560, "step counter");
  t.end();
});

test("train: Adam parameter groups (act ranges 10×, explicit groups, frozen tensors) and step schedule", (t) => {
  const mk = (layer: string, kind: Param["kind"]): Param => ({ name: `${layer}/${kind}`, layer, kind, value: new Float32Array(2) });
  const ps = [mk("a", "weight"), mk("a", "act_range"), mk("b", "weight"), mk("b", "gamma"), mk("c", "bias")];
  const opt = new Adam(ps, {
    lr: 1e-3, schedule: { every: 3 },
    groups: [{ layers: ["b"], kinds: ["gamma"], lr: 5e-3 }, { layers: /^c$/, lrMult: 0 }],
  });
  t.equal(opt.paramLr("a/weight"), 1e-3, "weights at the base rate");
  t.equal(opt.paramLr("a/act_range"), 1e-2, "activation ranges at 10× (odm.md §2)");
  t.equal(opt.paramLr("b/weight"), 1e-3, "group does not match b/weight");
  t.ok(Math.abs(opt.paramLr("b/gamma") - 5e-3) < 1e-15, "explicit group lr");
  t.equal(opt.paramLr("c/bias"), 0, "frozen group");
  const g = new Map(ps.map((p) => [p.name, Float32Array.of(1, -1)]));
  // First Adam step moves every unfrozen element by exactly lr (m̂/√v̂ = ±1).
  opt.step(g);
  t.ok(Math.abs(ps[0].value[0] + 1e-3) < 1e-9 && Math.abs(ps[0].value[1] - 1e-3) < 1e-9, "first step = −lr·sign(g)");
  t.ok(Math.abs(ps[1].value[0] + 1e-2) < 1e-8, "act range moves 10×");
  t.deepEqual([...ps[4].value], [0, 0], "frozen tensor unchanged");
  t.deepEqual([0, 1, 2, 3, 5, 6, 9].map((s) => opt.lrAt(s)), [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 1.25e-4], "halved every 3 steps");
  const before = Float32Array.from(ps[2].value);
  opt.step(new Map([["a/weight", Float32Array.of(1, 1)]]));
  t.deepEqual([...ps[2].value], [...before], "a tensor without a gradient this step is untouched");
  t.equal(code(() => opt.step(new Map([["zz", Float32Array.of(1)]]))), "E_ARGUMENT", "unknown parameter");
  t.equal(code(() => opt.step(new Map([["a/weight", Float32Array.of(1)]]))), "E_SHAPE", "gradient length");
  t.equal(code(() => opt.step(new Map([["a/weight", Float32Array.of(NaN, 1)]]))), "E_RANGE", "NaN gradient");
  t.equal(code(() => new Adam(ps, { lr: -1 })), "E_ARGUMENT", "negative lr");
  t.equal(code(() => new Adam(ps, { beta1: 1 })), "E_ARGUMENT", "beta1 = 1");
  t.equal(code(() => new Adam(ps, { schedule: { every: 0 } })), "E_ARGUMENT", "schedule every 0");
  t.equal(code(() => new Adam(ps, { lrMult: { nope: 1 } as never })), "E_ARGUMENT", "unknown kind");
  t.end();
});

test("train: ODM odd weight grid — 2^b levels, odd multiples of u/n, no zero, STE and ∂q/∂u", (t) => {
  const rng = new Rng(5);
  for (const bits of [1, 2, 3, 4, 8]) {
    const L = 2 ** bits, n = L - 1, u = rng.uniform(0.05, 2);
    const w = Float32Array.from({ length: 4000 }, () => rng.uniform(-1.5 * u, 1.5 * u));
    const q = fakeQuantWeightsOdd(new Float32Array(w.length), w, u, L);
    const codes = oddGridCodes(new Int16Array(w.length), w, u, L);
    const levels = new Set<number>();
    let ok = true;
    for (let i = 0; i < w.length; i++) {
      levels.add(codes[i]);
      ok &&= Math.abs(codes[i]) % 2 === 1 && Math.abs(codes[i]) <= n && q[i] === Math.fround((codes[i] * u) / n);
      // Nearest level (ties away from zero in t, i.e. upward).
      const c = Math.min(u, Math.max(-u, w[i]));
      ok &&= Math.abs(c - (codes[i] * u) / n) <= u / n + 1e-12;
    }
    t.ok(ok, `W${bits}: codes odd in ±${n}, values m·u/n, nearest level`);
    t.equal(levels.size, L, `W${bits}: all ${L} levels used, 0 is not one of them`);
    // Backward: STE mask and ∂q/∂u vs finite differences with frozen rounding.
    const dq = Float32Array.from(w, () => rng.normal());
    const dw = new Float32Array(w.length);
    const du = fakeQuantWeightsOddBackward(dw, dq, w, u, L);
    let fd = 0;
    for (let i = 0; i < w.length; i++) {
      const inside = Math.abs(w[i]) <= u;
      if ((inside ? dq[i] : 0) !== dw[i]) ok = false;
      const tt = (Math.min(u, Math.max(-u, w[i])) + u) / ((2 * u) / n);
      const e = Math.min(n, Math.floor(tt + 0.5)) - tt;
      // q̃(u) = clip(w, −u, u) + (2u/n)·e: ∂/∂u = [w > u] − [w < −u] + 2e/n.
      fd += dq[i] * ((w[i] > u ? 1 : w[i] < -u ? -1 : 0) + (2 * e) / n);
    }
    t.ok(ok, `W${bits}: STE passes the gradient inside [−u, u] only`);
    t.ok(Math.abs(du - fd) <= 1e-9 * (Math.abs(fd) + 1), `W${bits}: Σ dq·∂q/∂u = ${du.toFixed(6)} (independent ${fd.toFixed(6)})`);
  }
  t.end();
});

test("train: percentiles (numpy linear interpolation) and the WCC scale f = P99(|W|)", (t) => {
  t.equal(percentile([3, 1, 2], 50), 2, "median");
  t.equal(percentile([1, 2, 3, 4], 50), 2.5, "interpolated median");
  t.ok(Math.abs(percentile([0, 10], 99) - 9.9) < 1e-12, "P99 of [0, 10] = 9.9");
  t.equal(percentile([5], 1), 5, "single value");
  t.equal(percentile([], 50), 0, "empty → 0");
  const w = Float32Array.from({ length: 101 }, (_, i) => (i % 2 ? -1 : 1) * i);
  t.ok(Math.abs(weightScaleOf(w) - 99) < 1e-12, "P99 of |W| = {0..100} is 99");
  const sparse = new Float32Array(1000);
  sparse[3] = -0.5;
  t.equal(weightScaleOf(sparse), 0.5, "P99(|W|) = 0 falls back to max|W| (odm.md §5)");
  t.equal(weightScaleOf(new Float32Array(9)), 1, "all-zero weights → 1");
  t.end();
});
