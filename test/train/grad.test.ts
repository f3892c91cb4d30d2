// Gradient engine vs central finite differences of an independent f64 evaluator (test/train/_surrogate.ts).
//
// Tolerance: for every checked element, |g − fd| ≤ 1e-3·(|fd| + rms(g over the tensor)), where g is
// the engine's gradient (f32 kernels, f64-accumulated range sums) and fd = (L(θ+h) − L(θ−h))/2h in
// f64 with h = 1e-6·max(|θ|, 0.1) (truncation O(h²) and f64 round-off ≈ 1e-9 relative: negligible).
// The slack covers the f32 forward (≈ 1e-6 relative per layer) — a wrong term is off by O(1).
import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { GraphBuilder } from "../../src/graph/builder.ts";
import type { Graph } from "../../src/graph/ir.ts";
import { loadModel } from "../../src/models/registry.ts";
import { buildTrainGraph, paramName, type TrainGraph, type TrainQuantSpec } from "../../src/train/graph.ts";
import { Trainer, type Seed } from "../../src/train/trainer.ts";
import { evalSurrogate, paramsOf, type Frozen } from "./_surrogate.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import { F32Plan } from "../../src/graph/compile-f32.ts";
import { mismatchLoss } from "../../src/train/losses.ts";

/** A small graph with every op the engine differentiates (names are the layer names). */
function everyOpGraph(seed: number): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input();
  const c1 = b.conv2d(x, 8, 3, { activation: "relu", name: "c1" });
  const c2 = b.conv2d(c1, 4, 1, { name: "c2" });
  const cat1 = b.concat(c1, c2); // c1 aliased into cat1 …
  const c3 = b.conv2d(cat1, 6, 3, { activation: "relu", name: "c3" });
  const cat2 = b.concat(x, c3, c1); // … so here c1 (and the graph input) are copied
  const c4 = b.conv2d(cat2, 8, 5, { name: "c4" });
  const a1 = b.add(c4, c1);
  const s1 = b.scale(a1, 0.5, "s1");
  const r1 = b.relu(s1, "r1"); // a ReLU node (its producer is not a conv: not fused)
  const c6 = b.conv2d(r1, 12, 3, { name: "c6" });
  const d1 = b.depthToSpace(c6, 2, "d2s");
  const u1 = b.upsampleNearest(r1, 2, "up");
  const c5 = b.conv2d(u1, 3, 3, { name: "c5" });
  const out = b.add(c5, d1);
  const g = b.build(out, { name: "every-op", inputRange: [0, 1], outputRange: [0, 1] });
  // Weighted add (a folded MultiplyBeta): y = c4 + 0.2·c1.
  const addNode = g.nodes.find((n) => n.op === "add" && n.inputs.includes(c4))! as Extract<Graph["nodes"][number], { op: "add" }>;
  addNode.coeffs = [1, 0.2];
  return g;
}

interface CheckOpts {
  quant: TrainQuantSpec | null;
  w: number;
  h: number;
  seed: number;
  /** Elements checked per tensor (all when smaller). */
  perTensor: number;
  /** Extra seeds besides the output (node names / quantized inputs). */
  extraSeeds?: Array<Seed["at"]>;
  /** Randomize γ / offsets to exercise clipping and offsets. */
  perturbQuant?: boolean;
  /** Seed only extraSeeds (not the output). */
  noOutputSeed?: boolean;
  /** Only these parameter tensors (default all). */
  filter?: (name: string) => boolean;
  /** Tensor quantizers' calibration-loss weight (TrainerOptions.quantLoss). */
  quantLoss?: number;
}

interface CheckResult { checked: number; worst: number; worstAt: string; tensors: number }

async function gradCheck(graph: Graph, o: CheckOpts): Promise<CheckResult> {
  const rt = await testRuntime();
  const rng = new Rng(o.seed);
  const tg: TrainGraph = buildTrainGraph(graph, o.quant);
  const tr = new Trainer(rt, tg, { maxW: o.w, maxH: o.h, quantLoss: o.quantLoss });
  try {
    const [ilo, ihi] = graph.meta.inputRange;
    const input = new Float32Array(o.w * o.h * 3).map(() => rng.uniform(ilo, ihi));
    if (o.quant) {
      if (tg.convs.size && [...tg.convs.values()].some((c) => c.quant && c.quant.actLevels > 0)) tr.calibrateActRanges([{ data: input, w: o.w, h: o.h }], { low: 2, high: 98 });
      if (tg.tensorQuant.length) tr.warmupClips([{ data: input, w: o.w, h: o.h }]);
      if (o.perturbQuant) {
        const vals = new Map<string, Float32Array>();
        for (const p of tr.params) {
          if (p.kind === "gamma") vals.set(p.name, Float32Array.of(rng.uniform(0.7, 1.1)));
          // Off any data value: a post-ReLU range starts at l = P2 = 0 = many inputs, a kink of the surrogate.
          if (p.kind === "act_range") {
            const d = p.value[1] - p.value[0];
            vals.set(p.name, Float32Array.of(p.value[0] + d * rng.uniform(-0.05, 0.05), p.value[1] + d * rng.uniform(-0.05, 0.05)));
          }
          if (p.kind === "offset_scale") vals.set(p.name, p.value.map(() => rng.uniform(0.7, 1.3)));
          if (p.kind === "offset_shift") vals.set(p.name, p.value.map(() => rng.uniform(-0.1, 0.1) * (ihi - ilo)));
          // Clips inside the data range, so some values are clipped at each end.
          if (p.kind === "act_clip") {
            if (p.value.length === 1) vals.set(p.name, Float32Array.of(p.value[0] * rng.uniform(0.5, 0.8)));
            else {
              const d = p.value[1] - p.value[0];
              vals.set(p.name, Float32Array.of(p.value[0] + d * rng.uniform(0.1, 0.2), p.value[1] - d * rng.uniform(0.1, 0.2)));
            }
          }
        }
        tr.setParams(vals);
      }
    }
    tr.forward(input, o.w, o.h);
    const seeds: Seed[] = [];
    const seedVals: Array<{ at: Seed["at"]; r: Float64Array }> = [];
    for (const at of [...(o.noOutputSeed ? [] : [tg.graph.output as Seed["at"]]), ...(o.extraSeeds ?? [])]) {
      const ref = tr.tensor(at);
      const r = new Float32Array(ref.pixels * ref.channels).map(() => rng.normal() / ref.pixels);
      seeds.push({ at, grad: r });
      seedVals.push({ at, r: Float64Array.from(r) });
    }
    const gb = tr.createGrads();
    tr.backward(seeds, gb);
    const grads = tr.gradients(gb);
    gb.dispose();

    const base = paramsOf(tr.params);
    const frozen: Frozen = new Map();
    const loss = (P: Map<string, Float64Array>): number => {
      const v = evalSurrogate(tg, P, input, o.w, o.h, frozen, o.quant !== null);
      let L = 0;
      // The calibration loss λ·Σ_tensors mean|x − x̂| (the engine adds it in every backward pass).
      if (o.quantLoss) for (const { x, xh } of v.tq) {
        let s = 0;
        for (let i = 0; i < x.length; i++) s += Math.abs(x[i] - xh[i]);
        L += (o.quantLoss * s) / x.length;
      }
      for (const s of seedVals) {
        let t: Float64Array;
        if (typeof s.at === "object") t = v.qin.get(s.at.quantized)!;
        else t = v.nodes[typeof s.at === "number" ? s.at : tg.graph.nodes.find((n) => n.name === s.at)!.id];
        for (let i = 0; i < t.length; i++) L += s.r[i] * t[i];
      }
      return L;
    };
    loss(base); // fills the frozen rounding residuals at the base point
    let checked = 0, worst = 0, worstAt = "", tensors = 0;
    for (const p of tr.params) {
      if (o.filter && !o.filter(p.name)) continue;
      const g = grads.get(p.name);
      if (!g) throw new Error(`no gradient for ${p.name}`);
      tensors++;
      let rms = 0;
      for (const v of g) rms += v * v;
      rms = Math.sqrt(rms / g.length);
      const idx = g.length <= o.perTensor ? [...g.keys()] : Array.from({ length: o.perTensor }, () => rng.int(0, g.length - 1));
      for (const i of idx) {
        const P = new Map(base);
        const v = Float64Array.from(base.get(p.name)!);
        P.set(p.name, v);
        const h = 1e-6 * Math.max(Math.abs(v[i]), 0.1);
        const v0 = v[i];
        v[i] = v0 + h;
        const lp = loss(P);
        v[i] = v0 - h;
        const lm = loss(P);
        const fd = (lp - lm) / (2 * h);
        const err = Math.abs(g[i] - fd) / (Math.abs(fd) + rms + 1e-30);
        checked++;
        if (err > worst) {
          worst = err;
          worstAt = `${p.name}[${i}]: engine ${g[i]}, fd ${fd}, rms ${rms}`;
        }
      }
    }
    return { checked, worst, worstAt, tensors };
  } finally {
    tr.dispose();
  }
}

const TOL = 1e-3;

const code = (f: () => unknown): string => {
  try {
    f();
    return "none";
  } catch (e) {
    return e instanceof LowbitError ? e.code : `not LowbitError: ${String(e)}`;
  }
};

test("train: every-op graph, FP32 gradients of all weights and biases vs central differences", async (t) => {
  for (const seed of [1, 2, 3]) {
    const r = await gradCheck(everyOpGraph(seed), {
      quant: null, w: 5 + seed, h: 4 + (seed % 2), seed, perTensor: 12, extraSeeds: ["c3", "s1"],
    });
    t.ok(r.worst < TOL, `seed ${seed}: ${r.checked} elements of ${r.tensors} tensors, worst rel err ${r.worst.toExponential(2)} (${r.worstAt})`);
  }
  t.end();
});

test("train: every-op graph, W4A4 fake-quant (STE) gradients incl. act ranges, γ and offsets vs the surrogate's differences", async (t) => {
  for (const seed of [4, 5]) {
    const quant: TrainQuantSpec = {
      weightBits: 4, actBits: 4, layers: ["c1", "c3", "c4", "c5", "c6"], offsets: ["c3", "c4"],
    };
    const r = await gradCheck(everyOpGraph(seed), {
      quant, w: 6, h: 5, seed, perTensor: 10, perturbQuant: true, extraSeeds: [{ quantized: "c4" }, "c2"],
    });
    t.ok(r.worst < TOL, `seed ${seed}: ${r.checked} elements of ${r.tensors} tensors, worst rel err ${r.worst.toExponential(2)} (${r.worstAt})`);
  }
  // Seeds only on internal tensors (regularizer-style passes): a quantized input whose conv output
  // gets no gradient, and a feature.
  const r = await gradCheck(everyOpGraph(6), {
    quant: { weightBits: 4, actBits: 4, layers: ["c1", "c3", "c4"], offsets: ["c4"] }, w: 6, h: 6, seed: 6, perTensor: 10, perturbQuant: true,
    noOutputSeed: true, extraSeeds: [{ quantized: "c4" }, { quantized: "c3" }, "c2"],
  });
  t.ok(r.worst < TOL, `internal seeds only: ${r.checked} elements of ${r.tensors} tensors, worst rel err ${r.worst.toExponential(2)} (${r.worstAt})`);
  // Low bit widths (W2A2, W3A3) put most values at clip boundaries and coarse steps.
  for (const bits of [2, 3]) {
    const r = await gradCheck(everyOpGraph(7 + bits), {
      quant: { weightBits: bits, actBits: bits, layers: "full", offsets: ["c4"] }, w: 5, h: 5, seed: bits, perTensor: 8, perturbQuant: true,
    });
    t.ok(r.worst < TOL, `W${bits}A${bits}: ${r.checked} elements of ${r.tensors} tensors, worst rel err ${r.worst.toExponential(2)} (${r.worstAt})`);
  }
  t.end();
});

test("train: esrgan-slim-x2 on a 6×6 crop, FP32 and W4A4 gradients vs central differences", async (t) => {
  const g = await loadModel("esrgan-slim-x2");
  const fp = await gradCheck(g, { quant: null, w: 6, h: 6, seed: 11, perTensor: 2, filter: (n) => /^(F_m1|F_0|F_1_1|LFF_2|GFF_1|UPN1|UPN3|SR)\//.test(n) });
  t.ok(fp.worst < TOL, `FP32: ${fp.checked} elements of ${fp.tensors} tensors, worst rel err ${fp.worst.toExponential(2)} (${fp.worstAt})`);
  const q = await gradCheck(g, {
    quant: { weightBits: 4, actBits: 4, layers: "body", offsets: ["LFF_1"] }, w: 6, h: 6, seed: 12, perTensor: 2, perturbQuant: true,
    filter: (n) => /\/(act_range|gamma|offset_scale|offset_shift)$/.test(n) || /^(F_1_1|LFF_1|GFF_2)\//.test(n),
  });
  t.ok(q.worst < TOL, `W4A4 body + offsets: ${q.checked} elements of ${q.tensors} tensors, worst rel err ${q.worst.toExponential(2)} (${q.worstAt})`);
  t.end();
});

test("train: tensor quantizers (FQSR) — clips of full, half and asymmetric grids, a shared clip, the calibration loss and the per-channel weight grid vs the surrogate", async (t) => {
  for (const seed of [31, 32]) {
    const g = everyOpGraph(seed);
    const cat1 = g.nodes.filter((n) => n.op === "concat")[0].name, a1 = g.nodes.filter((n) => n.op === "add")[0].name;
    const quant: TrainQuantSpec = {
      weightBits: 4, actBits: null, layers: "full", weightGrid: "channel", tensors: [
        { nodes: ["c1"], bits: 4, grid: "half" },
        { nodes: ["c2", cat1], bits: 3, grid: "full" },
        { nodes: ["c4"], bits: 4, grid: "asymmetric" },
        { nodes: [a1], bits: 5, grid: "full" },
        { nodes: ["r1"], bits: 4, grid: "half" },
        { nodes: ["c6"], bits: 2, grid: "full" },
      ],
    };
    // The same quantizers on the deployed (nudged) grid.
    const nudged: TrainQuantSpec = { ...quant, tensors: quant.tensors!.map((q) => ({ ...q, nudge: true })) };
    for (const [what, q, quantLoss] of [["clip grids", quant, 0], ["clip grids", quant, 0.3], ["nudged grids", nudged, 0.3]] as const) {
      const r = await gradCheck(g, { quant: q, w: 6, h: 5, seed, perTensor: 10, perturbQuant: true, quantLoss, extraSeeds: ["c3"] });
      t.ok(r.worst < TOL, `seed ${seed}, ${what}, λ = ${quantLoss}: ${r.checked} elements of ${r.tensors} tensors, worst rel err ${r.worst.toExponential(2)} (${r.worstAt})`);
    }
  }
  t.end();
});

test("train: backward passes accumulate linearly (two passes = one pass with both seeds; batch = sum of samples)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(21);
  const tg = buildTrainGraph(everyOpGraph(21), { weightBits: 4, actBits: 6, layers: "full", offsets: ["c4"] });
  const tr = new Trainer(rt, tg, { maxW: 7, maxH: 6 });
  const x1 = new Float32Array(7 * 6 * 3).map(() => rng.next());
  const x2 = new Float32Array(5 * 4 * 3).map(() => rng.next());
  tr.calibrateActRanges([{ data: x1, w: 7, h: 6 }]);
  const rand = (n: number): Float32Array => new Float32Array(n).map(() => rng.normal());
  tr.forward(x1, 7, 6);
  const sA: Seed = { at: tg.graph.output, grad: rand(14 * 12 * 3) };
  const sB: Seed = { at: "c3", grad: rand(7 * 6 * 6), weight: 0.5 };
  const gA = tr.createGrads(), gB = tr.createGrads(), gAB = tr.createGrads();
  tr.backward([sA], gA);
  tr.backward([sB], gB);
  tr.backward([sA, sB], gAB);
  const a = tr.gradients(gA), b = tr.gradients(gB), ab = tr.gradients(gAB);
  let worst = 0;
  for (const [name, v] of ab) {
    const va = a.get(name)!, vb = b.get(name)!;
    let m = 0;
    for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]));
    for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i] - va[i] - vb[i]) / (m + 1e-30));
  }
  t.ok(worst < 1e-5, `pass A + pass B = pass (A, B): worst ${worst.toExponential(2)} of the tensor max`);
  // Batch: accumulating two samples = the sum of their separate gradients; gradients(gb, ½) halves.
  const g1 = tr.createGrads(), g2 = tr.createGrads(), g12 = tr.createGrads();
  const s1: Seed = { at: tg.graph.output, grad: rand(14 * 12 * 3) };
  const s2: Seed = { at: tg.graph.output, grad: rand(10 * 8 * 3) };
  tr.forward(x1, 7, 6);
  tr.backward([s1], g1);
  tr.backward([s1], g12);
  tr.forward(x2, 5, 4);
  tr.backward([s2], g2);
  tr.backward([s2], g12);
  t.equal(g12.passes, 2, "two passes counted");
  const r1 = tr.gradients(g1), r2 = tr.gradients(g2), r12 = tr.gradients(g12, 0.5);
  worst = 0;
  for (const [name, v] of r12) {
    const v1 = r1.get(name)!, v2 = r2.get(name)!;
    let m = 0;
    for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v1[i] + v2[i]));
    for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i] - 0.5 * (v1[i] + v2[i])) / (m + 1e-30));
  }
  t.ok(worst < 1e-5, `batch of 2 (7×6 and 5×4) = mean of the samples: worst ${worst.toExponential(2)}`);
  // Zeroing restores a clean accumulator.
  g12.zero();
  const z = tr.gradients(g12);
  t.ok([...z.values()].every((v) => v.every((e) => e === 0)), "zero() clears every gradient");
  for (const gg of [gA, gB, gAB, g1, g2, g12]) gg.dispose();
  tr.dispose();
  t.end();
});

test("train: trainWeights false — only quantizer gradients (γ still exact), the same values as a full backward", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(41);
  const tg = buildTrainGraph(everyOpGraph(41), { weightBits: 3, actBits: 4, layers: ["c3", "c4"], offsets: ["c4"] });
  const x = new Float32Array(6 * 6 * 3).map(() => rng.next());
  const seed = new Float32Array(12 * 12 * 3).map(() => rng.normal());
  const run = (trainWeights: boolean): Map<string, Float32Array> => {
    const tr = new Trainer(rt, tg, { maxW: 6, maxH: 6, trainWeights });
    tr.calibrateActRanges([{ data: x, w: 6, h: 6 }]);
    tr.forward(x, 6, 6);
    const gb = tr.createGrads();
    tr.backward([{ at: tg.graph.output, grad: seed }], gb);
    const g = tr.gradients(gb);
    gb.dispose();
    tr.dispose();
    return g;
  };
  const full = run(true), quantOnly = run(false);
  const names = [...quantOnly.keys()].sort();
  t.deepEqual(names, ["c3/act_range", "c3/gamma", "c4/act_range", "c4/gamma", "c4/offset_scale", "c4/offset_shift"], "only quantizer parameters");
  t.ok(names.every((n) => quantOnly.get(n)!.every((v, i) => v === full.get(n)![i])), "bit-identical to the full backward's");
  t.end();
});

test("train: mismatchLoss (ODM v2 ‖X − X̂‖₂) = the same seeds built in JS; zero mismatch gives no seeds", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(51);
  const tg = buildTrainGraph(everyOpGraph(51), { weightBits: 4, actBits: 3, layers: ["c1", "c3", "c4"], offsets: ["c4"] });
  const tr = new Trainer(rt, tg, { maxW: 6, maxH: 5 });
  const x = new Float32Array(6 * 5 * 3).map(() => rng.next());
  tr.calibrateActRanges([{ data: x, w: 6, h: 5 }]);
  tr.forward(x, 6, 5);
  const layers = ["c1", "c3", "c4"];
  const gA = tr.createGrads(), gB = tr.createGrads();
  let lossA = 0, lossB = 0;
  const seedsA: Seed[] = [];
  for (const l of layers) {
    const r = mismatchLoss(tr, l, { weight: 0.5 });
    lossA += r.loss;
    seedsA.push(...r.seeds);
  }
  tr.backward(seedsA, gA);
  const seedsB: Seed[] = [];
  for (const l of layers) {
    const xNode = tg.graph.nodes[tg.byName.get(l)!.id].inputs[0];
    const X = tr.read(xNode), Xq = tr.read({ quantized: l });
    let n2 = 0;
    const d = X.map((v, i) => v - Xq[i]);
    for (const v of d) n2 += v * v;
    const norm = Math.sqrt(n2);
    lossB += 0.5 * norm;
    const gr = d.map((v) => v / norm);
    if (xNode !== tg.graph.input) seedsB.push({ at: xNode, grad: gr, weight: 0.5 });
    seedsB.push({ at: { quantized: l }, grad: gr, weight: -0.5 });
  }
  tr.backward(seedsB, gB);
  t.ok(Math.abs(lossA - lossB) <= 1e-6 * lossB, `loss ${lossA} = ${lossB}`);
  const a = tr.gradients(gA), b = tr.gradients(gB);
  let worst = 0, nonzero = 0;
  for (const [name, v] of a) {
    const w = b.get(name)!;
    let m = 0;
    for (const e of w) m = Math.max(m, Math.abs(e));
    if (m > 0) nonzero++;
    for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i] - w[i]) / (m + 1e-30));
  }
  t.ok(worst < 1e-5 && nonzero > 6, `gradients agree (worst ${worst.toExponential(2)}, ${nonzero} non-zero tensors)`);
  t.ok(a.get("c3/act_range")!.some((v) => v !== 0), "the range gets a mismatch gradient");
  // A grid that holds X exactly: 8 bits on [0, 255] and an integer input (the graph input) → no mismatch.
  const g2 = buildTrainGraph(everyOpGraph(52), { weightBits: null, actBits: 8, layers: ["c1"], actRanges: { c1: [0, 255] } });
  const t2 = new Trainer(rt, g2, { maxW: 3, maxH: 3 });
  t2.forward(new Float32Array(27).map((_, i) => (i * 29) % 256), 3, 3);
  const z = mismatchLoss(t2, "c1");
  t.ok(z.loss === 0 && z.seeds.length === 0, "X on the grid → M = 0, no seeds");
  t.equal(code(() => mismatchLoss(t2, "c2")), "E_ARGUMENT", "unquantized layer");
  for (const gg of [gA, gB]) gg.dispose();
  tr.dispose();
  t2.dispose();
  t.end();
});

test("train: forward matches the FP32 plan semantics and the fake-quant forward matches the surrogate", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(31);
  const g = everyOpGraph(31);
  for (const quant of [null, { weightBits: 3, actBits: 4, layers: "full", offsets: ["c3"] } as TrainQuantSpec]) {
    const tg = buildTrainGraph(g, quant);
    const tr = new Trainer(rt, tg, { maxW: 9, maxH: 7 });
    const x = new Float32Array(9 * 7 * 3).map(() => rng.next());
    if (quant) tr.calibrateActRanges([{ data: x, w: 9, h: 7 }]);
    tr.forward(x, 9, 7);
    const out = tr.read(tg.graph.output);
    const ref = evalSurrogate(tg, paramsOf(tr.params), x, 9, 7, new Map(), quant !== null).nodes[tg.graph.output];
    let worst = 0, m = 0;
    for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(ref[i]));
    let flips = 0;
    for (let i = 0; i < ref.length; i++) {
      const e = Math.abs(out[i] - ref[i]) / m;
      if (e > 1e-4) flips++;
      else worst = Math.max(worst, e);
    }
    t.ok(worst < 1e-5 && flips <= (quant ? 3 : 0), `${quant ? "W3A4" : "FP32"} forward vs f64: worst ${worst.toExponential(2)} of max|y| (${flips} outputs off by a rounding flip)`);
    tr.dispose();
  }
  t.end();
});

test("train: bundled models (×2/×3/×4, RDN) — training forward = the FP32 inference plan; W4A4 backward runs with finite gradients", async (t) => {
  const rt = await testRuntime();
  for (const name of ["esrgan-slim-x4", "esrgan-medium-x3", "psnr-small-x2"]) {
    const g = await loadModel(name);
    const W = 7, H = 5;
    const x = new Float32Array(W * H * 3).map((_, i) => g.meta.inputRange[1] * (((i * 37) % 101) / 100));
    const tr = new Trainer(rt, buildTrainGraph(g, null), { maxW: W, maxH: H });
    tr.forward(x, W, H);
    const out = tr.read(tr.graph.output);
    const plan = new F32Plan(rt, g, W, H);
    const ref = plan.run(x, W, H);
    plan.dispose();
    tr.dispose();
    let worst = 0, m = 0;
    for (let i = 0; i < ref.length; i++) {
      worst = Math.max(worst, Math.abs(ref[i] - out[i]));
      m = Math.max(m, Math.abs(ref[i]));
    }
    t.ok(worst <= 1e-5 * m, `${name}: forward vs F32Plan ${(worst / m).toExponential(2)} of max|y|`);
    const tg = buildTrainGraph(g, { weightBits: 4, actBits: 4, layers: "body" });
    const q = new Trainer(rt, tg, { maxW: W, maxH: H });
    q.calibrateActRanges([{ data: x, w: W, h: H }]);
    q.forward(x, W, H);
    const gb = q.createGrads();
    q.backward([{ at: tg.graph.output, grad: new Float32Array(out.length).map((_, i) => (i % 7) - 3) }], gb);
    const grads = q.gradients(gb);
    let finite = true, nonzero = 0;
    for (const v of grads.values()) {
      for (const e of v) finite &&= Number.isFinite(e);
      if (v.some((e) => e !== 0)) nonzero++;
    }
    t.ok(finite && nonzero >= grads.size - 1, `${name}: ${grads.size} gradient tensors, ${nonzero} non-zero, all finite`);
    gb.dispose();
    q.dispose();
  }
  t.end();
});

test("train: bad arguments throw LowbitError codes before any kernel call", async (t) => {
  const rt = await testRuntime();
  const b = new GraphBuilder({ seed: 1 });
  const x = b.input();
  const tanh = b.build(b.conv2d(b.conv2d(x, 4, 3, { activation: "tanh", name: "bad" }), 3, 3));
  t.equal(code(() => buildTrainGraph(tanh)), "E_UNSUPPORTED_LAYER", "tanh conv → E_UNSUPPORTED_LAYER");
  try {
    buildTrainGraph(tanh);
  } catch (e) {
    t.ok(String(e).includes("'bad'"), "the message names the layer");
  }
  const g = everyOpGraph(1);
  t.equal(code(() => buildTrainGraph(g, { weightBits: 9, actBits: 4 })), "E_BITS", "9 weight bits");
  t.equal(code(() => buildTrainGraph(g, { weightBits: 4, actBits: 0 })), "E_BITS", "0 act bits");
  t.equal(code(() => buildTrainGraph(g, { weightBits: 4, actBits: 4, layers: ["nope"] })), "E_ARGUMENT", "unknown layer");
  t.equal(code(() => buildTrainGraph(g, { weightBits: 4, actBits: 4, layers: ["c1"], offsets: ["c3"] })), "E_ARGUMENT", "offsets on an unquantized layer");
  t.equal(code(() => buildTrainGraph(g, { weightBits: 4, actBits: null, layers: ["c1"], offsets: ["c1"] })), "E_ARGUMENT", "offsets without act quant");
  t.equal(code(() => buildTrainGraph(g, { weightBits: 4, actBits: 4, layers: ["c1"], actRanges: { c1: [1, 0] } })), "E_RANGE", "inverted act range");
  const tg = buildTrainGraph(g, { weightBits: 4, actBits: 4, layers: ["c1"] });
  const tr = new Trainer(rt, tg, { maxW: 4, maxH: 4 });
  const x16 = new Float32Array(4 * 4 * 3);
  t.equal(code(() => tr.forward(x16, 4, 4)), "E_ARGUMENT", "forward before range calibration");
  tr.setParams({ [paramName("c1", "act_range")]: [0, 1] });
  t.equal(code(() => tr.forward(new Float32Array(5 * 4 * 3), 5, 4)), "E_SHAPE", "sample wider than maxW");
  t.equal(code(() => tr.forward(new Float32Array(7), 4, 4)), "E_SHAPE", "wrong sample length");
  t.equal(code(() => tr.forward(x16.map(() => NaN), 4, 4)), "E_RANGE", "NaN sample");
  const gb = tr.createGrads();
  t.equal(code(() => tr.backward([{ at: tg.graph.output, grad: new Float32Array(1) }], gb)), "E_ARGUMENT", "backward before forward");
  tr.forward(x16, 4, 4);
  t.equal(code(() => tr.backward([{ at: tg.graph.output, grad: new Float32Array(1) }], gb)), "E_SHAPE", "seed of the wrong size");
  t.equal(code(() => tr.backward([{ at: "nope", grad: new Float32Array(1) }], gb)), "E_ARGUMENT", "seed at an unknown node");
  t.equal(code(() => tr.backward([{ at: { quantized: "c2" }, grad: new Float32Array(1) }], gb)), "E_ARGUMENT", "quantized seed on an unquantized layer");
  t.equal(code(() => tr.backward([], gb)), "E_ARGUMENT", "no seeds");
  t.equal(code(() => tr.setParams({ "c1/weight": [1] })), "E_SHAPE", "parameter of the wrong length");
  t.equal(code(() => tr.param("c9/weight")), "E_ARGUMENT", "unknown parameter");
  gb.dispose();
  tr.dispose();
  t.end();
});
