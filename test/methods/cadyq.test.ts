// CADyQ (cadyq.md): Sobel feature on a ramp, selector logits/argmax vs a float reference, PAMS grids,
// the engine's lut/exact paths vs the f64 oracle path, patch-mode bits per tile (FAB by definition,
// bits recomputed independently), .lowbit round trip, bad inputs, training gradients vs finite
// differences of an f64 straight-through surrogate.
import test from "tape";
import { GraphBuilder } from "../../src/graph/builder.ts";
import { optimizeGraph } from "../../src/graph/passes.ts";
import type { Graph } from "../../src/graph/ir.ts";
import { gradientFeature } from "../../src/adaptive/gradient-feature.ts";
import { DynamicPlan } from "../../src/graph/compile-dynamic.ts";
import { DynamicQuantizedModel } from "../../src/methods/dynamic/model.ts";
import { createUpscaler } from "../../src/engine/upscaler-api.ts";
import { loadLowbit, saveLowbit } from "../../src/io/lowbit-file.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import { CadyqActQuantizer } from "../../src/methods/cadyq/act-quantizer.ts";
import { argmaxFirst, pamsLevels, pamsQuantize, selectorLogits, unbiasedStd } from "../../src/methods/cadyq/selector.ts";
import { buildCadyqModel, cadyqLayers, cadyqQuantizeWeights, quantizeCadyq, type CadyqLayerParams } from "../../src/methods/cadyq/quantize.ts";
import { CadyqTrainLayer } from "../../src/methods/cadyq/train.ts";
import { buildTrainGraph } from "../../src/train/graph.ts";
import { Trainer } from "../../src/train/trainer.ts";
import type { CadyqActSpec } from "../../src/methods/dynamic/model.ts";
import { convF64, evalGraphNodes, type F64Tensor } from "../util/eval-graph.ts";
import { evalCrop } from "../util/eval-data.ts";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";

function expectErr(t: test.Test, f: () => unknown, code: string, msg: string): void {
  try {
    f();
    t.fail(`${msg}: no error`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${msg}: ${e instanceof LowbitError ? e.code : String(e)} (${(e as Error).message.slice(0, 90)})`);
  }
}

async function expectErrAsync(t: test.Test, f: () => Promise<unknown>, code: string, msg: string): Promise<void> {
  try {
    await f();
    t.fail(`${msg}: no error`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${msg}: ${e instanceof LowbitError ? e.code : String(e)}`);
  }
}

/** RGB → RGB ×2 toy RDB: F_1_1 reads the image (signed grid, σ known), LFF_1 the concat; both get selectors. */
function toyGraph(seed: number): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input();
  const c1 = b.conv2d(x, 8, 3, { activation: "relu", name: "F_1_1" });
  const cat = b.concat(x, c1);
  const l = b.conv2d(cat, 6, 1, { name: "LFF_1" });
  const y = b.conv2d(l, 12, 3, { name: "tail" });
  return b.build(b.depthToSpace(y, 2), { name: "toy", inputRange: [0, 255] });
}

function spec(rng: Rng, C: number, cands: number[], alpha: number, sel?: { A: Float32Array; a: Float32Array }): CadyqActSpec {
  const K = cands.length;
  return {
    kind: "cadyq", postRelu: false, candidates: Int32Array.from(cands), alpha: Float32Array.from(cands, () => alpha * rng.uniform(0.6, 1.2)),
    selectorWeight: sel?.A ?? Float32Array.from({ length: K * (C + 2) }, () => rng.uniform(-0.05, 0.05)),
    selectorBias: sel?.a ?? Float32Array.from({ length: K }, () => rng.uniform(-1, 1)),
  };
}

test("cadyq: Sobel on a ramp gives g = 1000·[a(W−1)/W, 0] (replicate edges give a/2; f32 input: 1e-6 relative), also on a sub-rectangle", (t) => {
  for (const [W, H, a] of [[5, 3, 0.01], [16, 9, 0.002], [2, 2, 0.1], [33, 1, 0.004]] as const) {
    const rgb = new Float32Array(W * H * 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) rgb.fill(a * x * 255, (y * W + x) * 3, (y * W + x) * 3 + 3);
    const g = gradientFeature(new Float64Array(2), rgb, W, H, 3, 0, 255);
    const want = (1000 * a * (W - 1)) / W;
    t.ok(Math.abs(g[0] - want) < 1e-6 * want && Math.abs(g[1]) < 1e-12, `${W}×${H} a=${a}: g = [${g[0].toFixed(9)}, ${g[1]}], want [${want.toFixed(9)}, 0]`);
  }
  // A 6-wide rectangle inside a 20-wide ramp: the rectangle's own edges are replicated.
  const W = 20, H = 4, a = 0.003;
  const rgb = new Float32Array(W * H * 4);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) rgb.fill(a * x, (y * W + x) * 4, (y * W + x) * 4 + 3);
  const g = gradientFeature(new Float64Array(2), rgb, W, H, 4, 0, 1, { x: 7, y: 1, w: 6, h: 2 });
  t.ok(Math.abs(g[0] - (1000 * a * 5) / 6) < 1e-6 * g[0] && Math.abs(g[1]) < 1e-12, `rectangle: g_x ${g[0].toFixed(9)} = 1000·a·5/6`);
  t.end();
});

test("cadyq: selector logits and argmax vs a float reference (ties → first maximum), σ unbiased, HW = 1 → σ = 0", (t) => {
  const rng = new Rng(11);
  let worst = 0;
  for (let it = 0; it < 200; it++) {
    const C = rng.int(1, 70), K = rng.int(1, 4);
    const A = Float32Array.from({ length: K * (C + 2) }, () => rng.uniform(-1, 1));
    const a = Float32Array.from({ length: K }, () => rng.uniform(-2, 2));
    const f = [rng.uniform(0, 80), rng.uniform(0, 80)], s = Array.from({ length: C }, () => rng.uniform(0, 30));
    const z = selectorLogits(new Float64Array(K), A, a, f, s);
    for (let k = 0; k < K; k++) {
      // Written out as the PyTorch Linear: bias + weight row · concat(grad, std).
      const e = [...f, ...s];
      let r = a[k];
      for (let j = 0; j < C + 2; j++) r += A[k * (C + 2) + j] * e[j];
      worst = Math.max(worst, Math.abs(z[k] - r) / Math.max(1, Math.abs(r)));
    }
    let best = 0;
    for (let k = 1; k < K; k++) if (z[k] > z[best]) best = k;
    if (argmaxFirst(z) !== best) t.fail(`argmax mismatch at ${it}`);
  }
  t.ok(worst < 1e-12, `logits match the float reference (worst rel ${worst.toExponential(2)}) over 200 random selectors`);
  t.equal(argmaxFirst([1, 3, 3]), 1, "tie between 2nd and 3rd → the 2nd (first maximum)");
  t.equal(argmaxFirst([2, 2, 2]), 0, "all equal → the first");
  t.equal(argmaxFirst([NaN, 0, -1]), 1, "NaN never wins");
  t.equal(unbiasedStd(2, 4), 2 * Math.sqrt(4 / 3), "population → unbiased std: ×√(N/(N−1))");
  t.equal(unbiasedStd(5, 1), 0, "HW = 1 → σ = 0");
  // The quantizer: identical A rows and biases → every logit ties → the first candidate.
  const C = 3;
  const q = new CadyqActQuantizer({ kind: "cadyq", postRelu: false, candidates: Int32Array.of(4, 6, 8), alpha: Float32Array.of(1, 2, 3), selectorWeight: new Float32Array(3 * 5).fill(1), selectorBias: new Float32Array(3) }, C);
  const stats = { pixels: 1, min: new Float32Array(C), max: new Float32Array(C), mean: new Float32Array(C), std: Float32Array.of(1, 2, 3), maxAbsDev: new Float32Array(C), countPositive: null };
  q.prepare(stats, new Float32Array(C), new Float32Array(C));
  t.equal(q.activeBits(), 4, "tied logits in the engine quantizer → candidates[0]");
  t.deepEqual(Array.from(q.sigma), [0, 0, 0], "a 1-pixel tile has σ = 0");
  // Selector reads σ·√(N/(N−1)) from the plan's population std.
  const q2 = new CadyqActQuantizer({ kind: "cadyq", postRelu: false, candidates: Int32Array.of(4, 8), alpha: Float32Array.of(1, 1),
    selectorWeight: Float32Array.of(0, 0, 1, 0, 0, 0, 0, 0), selectorBias: Float32Array.of(0, 2) }, 2);
  const st2 = { ...stats, pixels: 4, std: Float32Array.of(1.8, 0), mean: new Float32Array(2), min: new Float32Array(2), max: new Float32Array(2), maxAbsDev: new Float32Array(2) };
  q2.prepare(st2, new Float32Array(2), new Float32Array(2));
  t.equal(q2.activeBits(), 4, "σ_0 = 1.8·√(4/3) = 2.08 > 2 → the 4-bit row wins (with the population std 1.8 it would not)");
  t.end();
});

test("cadyq: PAMS grid levels ±(2^(b−1) − 1)·α/(2^(b−1) − 1); engine codes/levels/integer form equal the f64 grid; α ≤ 0 guarded", (t) => {
  const rng = new Rng(5);
  for (const b of [2, 3, 4, 6, 8]) {
    const alpha = rng.uniform(0.5, 40), m = 2 ** (b - 1) - 1, s = alpha / m;
    const lv = pamsLevels(alpha, b);
    t.ok(lv.length === 2 ** b - 1 && Math.abs(lv[0] + alpha) < 1e-12 && Math.abs(lv[lv.length - 1] - alpha) < 1e-12 && lv.every((v, i) => Math.abs(v - (i - m) * s) < 1e-12),
      `b=${b}: ${lv.length} levels from −α to α on step α/${m}`);
    const C = 5;
    const q = new CadyqActQuantizer({ kind: "cadyq", postRelu: false, candidates: Int32Array.of(b), alpha: Float32Array.of(b === 6 ? -alpha : alpha), selectorWeight: new Float32Array(C + 2), selectorBias: new Float32Array(1) }, C);
    const mu = new Float32Array(C), inv = new Float32Array(C);
    q.prepare({ pixels: 10, min: new Float32Array(C), max: new Float32Array(C), mean: new Float32Array(C), std: new Float32Array(C), maxAbsDev: new Float32Array(C), countPositive: null }, mu, inv);
    const P = 400, x = Float32Array.from({ length: P * C }, () => rng.uniform(-1.3 * alpha, 1.3 * alpha));
    // The code kernel's signed branch with half = 0 (act-codes.ts): k = clamp(⌊f32(f32(x − μ)·inv)⌋, 0, kmax = 2m).
    let bad = 0, badInt = 0, maxK = 0;
    const a = new Float32Array(C), m2 = new Float32Array(C);
    q.intAffine(a, m2);
    for (let i = 0; i < P * C; i++) {
      const k = Math.min(2 * m, Math.max(0, Math.floor(Math.fround(Math.fround(x[i] - mu[i % C]) * inv[i % C]))));
      maxK = Math.max(maxK, k);
      const want = pamsQuantize(x[i], alpha, b);
      if (Math.abs(q.level(i % C, k) - want) > 1e-6 * alpha) bad++;
      if (Math.abs(a[i % C] * q.intLevel(i % C, k) + m2[i % C] - want) > 1e-5 * alpha) badInt++;
    }
    t.ok(bad <= 2 && badInt <= 2 && maxK === 2 * m, `b=${b}${b === 6 ? " (α < 0 → |α|)" : ""}: kernel codes → level = pamsQuantize (${bad} tie flips), integer form a·g + μ (${badInt}), top code 2m = ${maxK}`);
    const out = new Float32Array(P * C);
    q.reference(out, x, 0, C, P);
    t.ok(out.every((v, i) => Math.abs(v - pamsQuantize(x[i], alpha, b)) < 1e-5 * alpha), `b=${b}: oracle reference = pamsQuantize`);
  }
  const q0 = new CadyqActQuantizer({ kind: "cadyq", postRelu: true, candidates: Int32Array.of(4), alpha: Float32Array.of(0), selectorWeight: new Float32Array(3), selectorBias: new Float32Array(1) }, 1);
  const mu = new Float32Array(1), inv = new Float32Array(1);
  q0.prepare({ pixels: 4, min: new Float32Array(1), max: new Float32Array(1), mean: new Float32Array(1), std: new Float32Array(1), maxAbsDev: new Float32Array(1), countPositive: null }, mu, inv);
  t.ok(inv[0] === 0 && q0.level(0, 0) === 0 && pamsQuantize(3, 0, 4) === 0, "α = 0: inv 0 → code 0 → the single level 0");
  t.end();
});

function randomParams(g: Graph, rng: Rng, cands: number[]): Map<number, CadyqLayerParams> {
  const params = new Map<number, CadyqLayerParams>();
  for (const id of cadyqLayers(g, "reference").ids) {
    const n = g.nodes[id] as Extract<Graph["nodes"][number], { op: "conv2d" }>;
    const s = spec(rng, n.cin, cands, n.name === "F_1_1" ? 200 : 60);
    params.set(id, { alpha: s.alpha, A: s.selectorWeight, a: s.selectorBias });
  }
  return params;
}

test("cadyq: engine lut and exact paths equal the f64 oracle path (same bits per layer), weights 8-bit per tensor", async (t) => {
  const rt = await testRuntime();
  const img = evalCrop("lr_x2", "butterfly", 30, 20, 40, 36);
  const x = Float32Array.from(img.data);
  for (const seed of [1, 2, 3]) {
    const g = optimizeGraph(toyGraph(seed));
    const rng = new Rng(100 + seed);
    const qm = buildCadyqModel(g, randomParams(g, rng, [4, 6, 8]), { candidates: [4, 6, 8], scope: "reference" });
    const res: Record<string, { out: Float32Array; bits: number[] }> = {};
    for (const path of ["oracle", "lut", "exact"] as const) {
      qm.path = path;
      const plan = new DynamicPlan(rt, qm, img.width, img.height);
      res[path] = { out: plan.run(x, img.width, img.height), bits: Array.from(plan.tileBits()!.bits) };
      plan.dispose();
    }
    let ref = 0;
    for (const v of res.oracle.out) ref = Math.max(ref, Math.abs(v));
    for (const path of ["lut", "exact"] as const) {
      let d = 0;
      res[path].out.forEach((v, i) => (d = Math.max(d, Math.abs(v - res.oracle.out[i]))));
      t.ok(d <= 5e-5 * ref, `seed ${seed} ${path}: max |Δ| vs oracle ${d.toExponential(2)} (≤ 5e-5·max|y| = ${(5e-5 * ref).toExponential(2)}), bits ${res[path].bits} = ${res.oracle.bits}`);
      t.deepEqual(res[path].bits, res.oracle.bits, `seed ${seed} ${path}: same selected bits as the oracle`);
    }
    const l = [...qm.layers.values()][0];
    const n = g.nodes[l.id] as Extract<Graph["nodes"][number], { op: "conv2d" }>;
    let mx = 0;
    for (const w of n.weights) mx = Math.max(mx, Math.abs(w));
    const codes = cadyqQuantizeWeights(n.weights, n.k, n.cin, n.cout).codes;
    t.ok(l.wscale.every((s) => Math.abs(s - mx / 127) < 1e-9 * mx) && l.weights.every((c, i) => c === codes[i]) && Math.max(...Array.from(l.weights, Math.abs)) === 127,
      `seed ${seed}: weights round(W·127/max|W|), one scale max|W|/127 for every output channel`);
  }
  t.end();
});

test("cadyq: patch mode — bits per tile from each tile's own g (core) and σ (region), FAB by definition, seams stitched", async (t) => {
  const rt = await testRuntime();
  const g = optimizeGraph(toyGraph(4));
  const rng = new Rng(9);
  const params = randomParams(g, rng, [4, 6, 8]);
  // F_1_1 decides on g_x alone: 4 bits below 20, 8 above 40, 6 between (row k: bias + slope·g_x).
  const first = g.nodes.find((n) => n.name === "F_1_1")!;
  const D = first.op === "conv2d" ? first.cin + 2 : 0;
  const A = new Float32Array(3 * D);
  A[0] = -1;
  A[2 * D] = 1;
  params.set(first.id, { alpha: [200, 200, 200], A, a: Float32Array.of(20, 0, -40) });
  const qm = buildCadyqModel(g, params, { candidates: [4, 6, 8], scope: "reference" });
  const img = evalCrop("lr_x2", "butterfly", 0, 0, 120, 90);
  const up = await createUpscaler(qm, { tile: 30, margin: 3, runtime: rt });
  const out = await up.upscale(img);
  const bm = out.bitMap!;
  t.ok(bm && bm.tiles.length === 12 && bm.layers.join() === "F_1_1,LFF_1" && bm.counted.every(Boolean), `bit map: ${bm.tiles.length} tiles, layers ${bm.layers}`);
  let fabOk = true, bitsOk = true;
  const seen = new Set<number>();
  const f = Float32Array.from(img.data);
  for (const tile of bm.tiles) {
    const fab = (tile.bits[0] + tile.bits[1]) / 2;
    if (Math.abs(tile.fab - fab) > 1e-12) fabOk = false;
    // Independent: g over the core, σ (unbiased) of the image over the region, then the selector.
    const gf = gradientFeature(new Float64Array(2), f, 120, 90, 3, 0, 255, { x: tile.x, y: tile.y, w: tile.w, h: tile.h });
    const rx = Math.max(0, tile.x - 3), ry = Math.max(0, tile.y - 3), rw = Math.min(120, tile.x + tile.w + 3) - rx, rh = Math.min(90, tile.y + tile.h + 3) - ry;
    const z = [20 - gf[0], 0, gf[0] - 40];
    const want = [4, 6, 8][argmaxFirst(z)];
    if (tile.bits[0] !== want || Math.abs(tile.feature[0] - gf[0]) > 1e-9) bitsOk = false;
    seen.add(tile.bits[0]);
    void rw; void rh; void rx; void ry;
  }
  t.ok(fabOk, "each tile's FAB = mean of its counted layers' bits");
  t.ok(Math.abs(bm.fab - bm.tiles.reduce((s, x) => s + x.fab, 0) / bm.tiles.length) < 1e-12, `image FAB ${bm.fab.toFixed(3)} = mean over tiles`);
  t.ok(bitsOk && seen.size >= 2, `F_1_1's bits follow each tile's core g_x (seen ${[...seen].sort()})`);
  // σ of the region: LFF's bit recomputed from a plan run on the tile's region alone.
  const tile = bm.tiles[5];
  const rx = Math.max(0, tile.x - 3), ry = Math.max(0, tile.y - 3), rw = Math.min(120, tile.x + tile.w + 3) - rx, rh = Math.min(90, tile.y + tile.h + 3) - ry;
  const plan = new DynamicPlan(rt, qm, rw, rh);
  const sub = new Float32Array(rw * rh * 3);
  for (let y = 0; y < rh; y++) sub.set(f.subarray(((ry + y) * 120 + rx) * 3, ((ry + y) * 120 + rx + rw) * 3), y * rw * 3);
  plan.setCore(tile.x - rx, tile.y - ry, tile.w, tile.h);
  plan.run(sub, rw, rh);
  t.deepEqual(Array.from(plan.tileBits()!.bits), Array.from(tile.bits), `tile 5 re-run alone on its region: bits ${Array.from(tile.bits)}`);
  plan.dispose();
  const bo = tile.bitopsPerPixel, n1 = g.nodes.find((n) => n.name === "F_1_1")!, n2 = g.nodes.find((n) => n.name === "LFF_1")!;
  let want = 0;
  for (const n of g.nodes) {
    if (n.op !== "conv2d") continue;
    const macs = n.k * n.k * n.cin * n.cout * n.spatial * n.spatial;
    want += n === n1 ? macs * 8 * tile.bits[0] : n === n2 ? macs * 8 * tile.bits[1] : macs * 1024;
  }
  t.equal(bo, want, "BitOPs per pixel: Σ MACs·8·b_a on selector layers + 32·32 on FP32 layers");
  up.dispose();
  t.end();
});

test("cadyq: .lowbit round trip is bit-identical (output and bit map); corrupted files fail with codes", async (t) => {
  const rt = await testRuntime();
  const g = optimizeGraph(toyGraph(6));
  const qm = buildCadyqModel(g, randomParams(g, new Rng(3), [4, 6, 8]), { candidates: [4, 6, 8], scope: "reference", options: { steps: 0 } });
  const bytes = saveLowbit(qm);
  const back = loadLowbit(bytes) as DynamicQuantizedModel;
  t.ok(back instanceof DynamicQuantizedModel && back.info.method === "cadyq" && back.config === qm.config, `loaded: ${back.config}`);
  const img = evalCrop("lr_x2", "baboon", 10, 10, 64, 48);
  const u1 = await createUpscaler(qm, { tile: 32, margin: 3, runtime: rt });
  const u2 = await createUpscaler(back, { tile: 32, margin: 3, runtime: rt });
  const o1 = await u1.upscale(img), o2 = await u2.upscale(img);
  t.ok(o1.data.every((v, i) => v === o2.data[i]), "outputs identical byte for byte");
  t.deepEqual(o2.bitMap!.tiles.map((x) => Array.from(x.bits)), o1.bitMap!.tiles.map((x) => Array.from(x.bits)), "same bits in every tile");
  u1.dispose();
  u2.dispose();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const data = bytes.slice(8 + n);
  const rebuild = (mut: (doc: any, header: any) => void): Uint8Array => {
    const h = JSON.parse(JSON.stringify(header));
    const doc = JSON.parse(h.__metadata__.lowbit);
    mut(doc, h);
    h.__metadata__.lowbit = JSON.stringify(doc);
    const hb = new TextEncoder().encode(JSON.stringify(h));
    const out = new Uint8Array(8 + hb.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
    out.set(hb, 8);
    out.set(data, 8 + hb.length);
    return out;
  };
  expectErr(t, () => loadLowbit(rebuild((d) => (d.dynamic.layers[0].act.candidates = [4, 9, 8]))), "E_BITS", "candidate 9 bits");
  expectErr(t, () => loadLowbit(rebuild((d) => (d.dynamic.layers[0].act.candidates = [4, 4, 8]))), "E_BITS", "duplicate candidate");
  expectErr(t, () => loadLowbit(rebuild((d) => (d.dynamic.layers[0].act.candidates = [4, 6]))), "E_MODEL_FORMAT", "2 candidates but 3 clips stored");
  expectErr(t, () => loadLowbit(rebuild((d) => (d.dynamic.layers[0].act.candidates = []))), "E_BITS", "no candidates");
  expectErr(t, () => loadLowbit(rebuild((_d, h) => {
    const name = Object.keys(h).find((k) => k.endsWith(".cadyq_selector_weight"))!;
    h[name].shape = [3, 4];
  })), "E_MODEL_FORMAT", "selector tensor of the wrong shape");
  expectErr(t, () => loadLowbit(rebuild((d) => (d.dynamic.method = "cadyqq"))), "E_MODEL_FORMAT", "unknown method");
  t.end();
});

test("cadyq: bad arguments throw LowbitError codes before any WASM call", async (t) => {
  const rng = new Rng(2);
  const ok = spec(rng, 4, [4, 6, 8], 1);
  expectErr(t, () => new CadyqActQuantizer({ ...ok, candidates: Int32Array.of(4, 6, 9) }, 4), "E_BITS", "candidate 9");
  expectErr(t, () => new CadyqActQuantizer({ ...ok, candidates: Int32Array.of(1, 6, 8) }, 4), "E_BITS", "candidate 1");
  expectErr(t, () => new CadyqActQuantizer({ ...ok, candidates: Int32Array.of(6, 6, 8) }, 4), "E_BITS", "duplicate candidate");
  expectErr(t, () => new CadyqActQuantizer({ ...ok, selectorWeight: new Float32Array(17) }, 4), "E_SHAPE", "selector weight K×(C+2) wrong");
  expectErr(t, () => new CadyqActQuantizer({ ...ok, alpha: Float32Array.of(1, 2) }, 4), "E_SHAPE", "2 clips for 3 candidates");
  expectErr(t, () => new CadyqActQuantizer({ ...ok, alpha: Float32Array.of(1, NaN, 2) }, 4), "E_RANGE", "NaN clip");
  expectErr(t, () => new CadyqActQuantizer({ ...ok, selectorBias: Float32Array.of(0, Infinity, 0) }, 4), "E_RANGE", "infinite selector bias");
  const g = toyGraph(1);
  const img = evalCrop("lr_x2", "baboon", 0, 0, 32, 32);
  const rt = await testRuntime();
  await expectErrAsync(t, () => quantizeCadyq(g, [img], { scope: "full", runtime: rt }), "E_ARGUMENT", "scope full");
  await expectErrAsync(t, () => quantizeCadyq(g, [img], { candidates: [4, 10], runtime: rt }), "E_BITS", "candidate 10 bits");
  await expectErrAsync(t, () => quantizeCadyq(g, [img], { steps: -1, runtime: rt }), "E_ARGUMENT", "negative steps");
  await expectErrAsync(t, () => quantizeCadyq(g, [img], { lambdaBit: NaN, runtime: rt }), "E_ARGUMENT", "NaN λ_b");
  await expectErrAsync(t, () => quantizeCadyq(g, [], { runtime: rt }), "E_ARGUMENT", "no images");
  const og = optimizeGraph(g);
  expectErr(t, () => buildCadyqModel(og, new Map([[og.input, { alpha: [1], A: [0, 0, 0, 0, 0], a: [0] }]]), { candidates: [8], scope: "reference" }), "E_ARGUMENT", "parameters on a non-conv node");
  t.end();
});

/**
 * f64 surrogate of the hooked training graph at parameters θ: each hooked conv sees
 * x̂ = hard₀ + Σ_k p_k(θ)·q̃_k(x; α_k) − Σ_k p_k(θ₀)·q̃_k(x; α_k⁰), q̃_k = clip(x, ±α_k) + s_k·e*_k with the
 * rounding residuals e* frozen at θ₀ — the value of the hard forward with exactly the STE gradients
 * of the soft mixture. Loss = Σ r·y + λ·Σ_l (b_hard + Σ p_k b_k − Σ p⁰_k b_k)/E₀.
 */
function surrogateLoss(g: Graph, input: Float32Array, w: number, h: number, theta: Map<string, { alpha: Float64Array; A: Float64Array; a: Float64Array; cands: number[] }>,
  base: Map<string, { hard: Float64Array; soft: Float64Array; e: Float64Array[]; k: number; E: number; Esoft: number; emb: Float64Array }>, fill: boolean, r: Float64Array, lambda: number): number {
  let bitLoss = 0;
  const vals = evalGraphNodes(g, input, h, w, (n, a) => {
    const th = theta.get(n.name);
    let x: F64Tensor = a;
    if (th) {
      const K = th.cands.length, C = a.c, P = a.h * a.w;
      let b = base.get(n.name);
      if (fill) {
        const emb = new Float64Array(C + 2);
        const f = gradientFeature(new Float64Array(2), input, w, h, 3, 0, 255);
        emb[0] = f[0];
        emb[1] = f[1];
        for (let c = 0; c < C; c++) {
          let s1 = 0, s2 = 0;
          for (let p = 0; p < P; p++) s1 += a.data[p * C + c];
          const mu = s1 / P;
          for (let p = 0; p < P; p++) s2 += (a.data[p * C + c] - mu) ** 2;
          emb[2 + c] = Math.sqrt(s2 / (P - 1));
        }
        b = { hard: new Float64Array(P * C), soft: new Float64Array(P * C), e: [], k: 0, E: 0, Esoft: 0, emb };
        base.set(n.name, b);
      }
      const z = selectorLogits(new Float64Array(K), th.A, th.a, b!.emb, b!.emb.subarray(2));
      let mx = -Infinity;
      for (const v of z) mx = Math.max(mx, v);
      const p = Array.from(z, (v) => Math.exp(v - mx));
      const sp = p.reduce((s, v) => s + v, 0);
      for (let k = 0; k < K; k++) p[k] /= sp;
      if (fill) {
        b!.k = argmaxFirst(z);
        for (let k = 0; k < K; k++) {
          const al = Math.abs(th.alpha[k]), m = 2 ** (th.cands[k] - 1) - 1, s = al / m;
          const e = new Float64Array(P * C);
          for (let i = 0; i < P * C; i++) {
            const c = Math.min(al, Math.max(-al, a.data[i]));
            e[i] = Math.floor(c / s + 0.5) - c / s;
          }
          b!.e.push(e);
        }
      }
      const soft = new Float64Array(P * C);
      let Es = 0;
      for (let k = 0; k < K; k++) {
        const al = Math.abs(th.alpha[k]), m = 2 ** (th.cands[k] - 1) - 1, s = al / m, e = b!.e[k];
        Es += p[k] * th.cands[k];
        for (let i = 0; i < P * C; i++) soft[i] += p[k] * (Math.min(al, Math.max(-al, a.data[i])) + s * e[i]);
      }
      if (fill) {
        const k = b!.k, al = Math.abs(th.alpha[k]), m = 2 ** (th.cands[k] - 1) - 1, s = al / m;
        for (let i = 0; i < P * C; i++) b!.hard[i] = Math.min(al, Math.max(-al, a.data[i])) + s * b!.e[k][i];
        b!.soft = soft;
        b!.E = Es;
        b!.Esoft = Es;
      }
      const d = new Float64Array(P * C);
      for (let i = 0; i < P * C; i++) d[i] = b!.hard[i] + soft[i] - b!.soft[i];
      x = { data: d, h: a.h, w: a.w, c: C };
      bitLoss += (lambda * (th.cands[b!.k] + Es - b!.Esoft)) / b!.E;
    }
    return convF64(x, n.weights, n.bias, n.k, n.cout, (v) => (n.activation.kind === "relu" ? Math.max(0, v) : v));
  });
  const y = vals[g.output].data;
  let L = bitLoss;
  for (let i = 0; i < y.length; i++) L += r[i] * y[i];
  return L;
}

test("cadyq: training gradients of α and the selectors (through a second hooked layer) vs finite differences of the STE surrogate", async (t) => {
  const rt = await testRuntime();
  const src = toyGraph(7);
  const tg = buildTrainGraph(src, null);
  const g = tg.graph;
  const w = 9, h = 7, cands = [4, 6, 8], lambda = 0.3;
  const rng = new Rng(77);
  const input = new Float32Array(w * h * 3).map(() => rng.uniform(0, 255));
  const hooks = new Map<string, CadyqTrainLayer>();
  for (const name of ["F_1_1", "LFF_1"]) {
    const C = tg.byName.get(name)!.cin, K = 3;
    const al = name === "F_1_1" ? [150, 120, 200] : [40, 25, 60];
    hooks.set(name, new CadyqTrainLayer(rt, name, C, cands, al, {
      A: Float32Array.from({ length: K * (C + 2) }, () => rng.uniform(-0.02, 0.02)), a: Float32Array.from({ length: K }, () => rng.uniform(-0.5, 0.5)),
    }));
  }
  const tr = new Trainer(rt, tg, { maxW: w, maxH: h, trainWeights: false, actHooks: hooks });
  const f = gradientFeature(new Float64Array(2), input, w, h, 3, 0, 255);
  for (const hk of hooks.values()) {
    hk.feature.set(f);
    hk.zeroGrad();
  }
  tr.forward(input, w, h);
  const out = tr.output();
  const r = Float64Array.from({ length: out.pixels * 3 }, () => rng.uniform(-1, 1));
  for (const hk of hooks.values()) hk.addBitLoss(lambda);
  const gb = tr.createGrads();
  tr.backward([{ at: g.output, grad: Float32Array.from(r) }], gb);
  const theta = new Map([...hooks].map(([k, v]) => [k, { alpha: Float64Array.from(v.alpha), A: Float64Array.from(v.A), a: Float64Array.from(v.a), cands }]));
  const base = new Map();
  const L0 = surrogateLoss(g, input, w, h, theta, base, true, r, lambda);
  t.ok(Number.isFinite(L0), `surrogate loss at θ₀ ${L0.toFixed(4)}; selected bits ${[...hooks.values()].map((x) => x.bits().hard)} (surrogate ${[...base.values()].map((b) => cands[b.k])})`);
  let worst = 0, checked = 0, worstAt = "";
  for (const [name, hk] of hooks) {
    const th = theta.get(name)!;
    const groups: [string, Float64Array, Float64Array][] = [["alpha", th.alpha, hk.gAlpha], ["a", th.a, hk.ga], ["A", th.A, hk.gA]];
    for (const [what, vec, eng] of groups) {
      const idx = vec.length <= 12 ? [...vec.keys()] : [0, 1, 2, 3, vec.length - 1, vec.length - 2, Math.floor(vec.length / 2), 5 + (vec.length >> 2)];
      for (const i of idx) {
        const v0 = vec[i], hh = 1e-6 * Math.max(Math.abs(v0), 1);
        vec[i] = v0 + hh;
        const Lp = surrogateLoss(g, input, w, h, theta, base, false, r, lambda);
        vec[i] = v0 - hh;
        const Lm = surrogateLoss(g, input, w, h, theta, base, false, r, lambda);
        vec[i] = v0;
        const fd = (Lp - Lm) / (2 * hh);
        const err = Math.abs(fd - eng[i]) / Math.max(Math.abs(fd), Math.abs(eng[i]), 1e-3);
        checked++;
        if (err > worst) {
          worst = err;
          worstAt = `${name}.${what}[${i}] engine ${eng[i].toExponential(4)} fd ${fd.toExponential(4)}`;
        }
      }
    }
  }
  t.ok(worst < 2e-3, `${checked} gradients (α, a, A of both layers, the first through the second's ∂x): worst rel err ${worst.toExponential(2)} at ${worstAt}`);
  gb.dispose();
  tr.dispose();
  t.end();
});

test("cadyq: quantizeCadyq end to end on the toy model — FAB falls under the bit loss, model runs, calibration-only stays at the top bit", async (t) => {
  const rt = await testRuntime();
  const g = toyGraph(8);
  const imgs = [evalCrop("lr_x2", "baboon", 0, 0, 48, 48), evalCrop("lr_x2", "building", 20, 20, 48, 48)];
  const m0 = await quantizeCadyq(g, imgs, { steps: 0, calibPatches: 4, patch: 24, runtime: rt });
  const up0 = await createUpscaler(m0, { tile: 24, margin: 3, runtime: rt });
  const o0 = await up0.upscale(imgs[0]);
  t.equal(o0.bitMap!.fab, 8, "steps 0: the reference init (highest-bit bias 1) selects 8 bits everywhere");
  up0.dispose();
  const m1 = await quantizeCadyq(g, imgs, { steps: 30, batch: 2, patch: 24, calibPatches: 4, lambdaBit: 0.05, runtime: rt });
  const up1 = await createUpscaler(m1, { tile: 24, margin: 3, runtime: rt });
  const o1 = await up1.upscale(imgs[0]);
  t.ok(o1.bitMap!.fab < 8 && o1.data.length === 96 * 96 * 3, `30 steps with a strong bit loss: FAB ${o1.bitMap!.fab.toFixed(2)} < 8 (${m1.config})`);
  up1.dispose();
  t.end();
});
