/**
 * AdaBM (adabm.md §9): the bit rule, the gradient feature, OMSE / BaC searches, epoch-0
 * calibration (EMA, percentiles), the engine (integer paths = oracle, bits per tile, FAB),
 * .lowbit round trip, the trainer's bit gradient and the fine-tuning loop.
 */
import test from "tape";
import { GraphBuilder } from "../../src/graph/builder.ts";
import { optimizeGraph } from "../../src/graph/passes.ts";
import { F32Plan } from "../../src/graph/compile-f32.ts";
import { DynamicPlan } from "../../src/graph/compile-dynamic.ts";
import { DynamicQuantizedModel } from "../../src/methods/dynamic/model.ts";
import { loadLowbit, saveLowbit } from "../../src/io/lowbit-file.ts";
import { createUpscaler } from "../../src/engine/upscaler-api.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import { gradientFeature } from "../../src/adaptive/gradient-feature.ts";
import { imageBitDelta } from "../../src/adaptive/context.ts";
import { adabmBits } from "../../src/methods/adabm/act-quantizer.ts";
import { bacSearch, calibrateAdabm, layerBitDeltas, patchComplexity } from "../../src/methods/adabm/calibrate.ts";
import { adabmCalibrate, adabmLayerRoles, buildAdabmModel, omseWeightClip } from "../../src/methods/adabm/quantize.ts";
import { adabmFinetune } from "../../src/methods/adabm/finetune.ts";
import { buildTrainGraph, Trainer } from "../../src/train/index.ts";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import type { Graph } from "../../src/graph/ir.ts";
import type { ImageLike } from "../../src/engine/image.ts";

function throwsCode(t: test.Test, f: () => unknown, code: string, what: string): void {
  try {
    f();
    t.fail(`${what}: no error`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${what}: ${e instanceof LowbitError ? e.code + " " + e.message : String(e)}`);
  }
}

/** An RDN-shaped net with ISR layer names: head, one dense conv, LFF + residual (a block), GFF, tail ×2. */
function rdnNet(seed = 1): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input();
  const h = b.conv2d(x, 8, 3, { name: "F_m1" });
  const d = b.conv2d(h, 4, 3, { activation: "relu", name: "F_1_1" });
  const l = b.conv2d(b.concat(h, d), 8, 1, { name: "LFF_1" });
  const r = b.add(l, h);
  const gf = b.conv2d(r, 8, 3, { name: "GFF_1" });
  const t = b.conv2d(gf, 12, 3, { name: "UPN3" });
  return b.build(b.depthToSpace(t, 2), { inputRange: [0, 1] });
}

function randomImage(rng: Rng, w: number, h: number, noise = 40): ImageLike {
  const data = new Uint8Array(w * h * 3);
  const fx = 0.05 + 0.3 * rng.next(), fy = 0.05 + 0.3 * rng.next(), base = rng.int(0, 120);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, base + 60 * Math.sin(fx * x + c) + 50 * Math.cos(fy * y) + rng.int(0, noise)));
    }
  }
  return { data, width: w, height: h, channels: 3 };
}

test("adabm/bits: b = b_base + Δb_img + Δb_layer, inclusive middle band, clamped to [2, 8]", (t) => {
  const thr = { lower: 10, upper: 20 };
  t.deepEqual([9.999, 10, 15, 20, 20.001].map((g) => imageBitDelta(g, thr)), [-1, 0, 0, 0, 1], "band edges belong to the middle band");
  t.equal(adabmBits(4, -1, -1), 2, "4 − 2 = 2");
  t.equal(adabmBits(4, 1, 1), 6, "4 + 2 = 6");
  t.equal(adabmBits(2, -1, -1), 2, "clamped at 2");
  t.equal(adabmBits(8, 1, 0), 8, "clamped at 8");
  t.deepEqual(layerBitDeltas([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), [-1, -1, -1, 0, 0, 0, 0, 1, 1, 1], "P30 / P70 of s_l (linear, numpy)");
  t.end();
});

test("adabm/feature: kornia-normalised Sobel on a ramp = a(W − 1)/W (replicate edges give a/2), 0 across; sub-rectangles pad their own edge", (t) => {
  const W = 9, H = 5, a = 0.01;
  const rgb = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) rgb[(y * W + x) * 3 + c] = 255 * a * x;
  const g = gradientFeature(new Float64Array(2), rgb, W, H, 3, 0, 255);
  t.ok(Math.abs(g[0] - (1000 * a * (W - 1)) / W) < 1e-4 && Math.abs(g[1]) < 1e-9, `g = [${g[0].toFixed(6)}, ${g[1]}] = [${((1000 * a * (W - 1)) / W).toFixed(6)}, 0]`);
  const g01 = gradientFeature(new Float64Array(2), Float32Array.from(rgb, (v) => v / 255), W, H, 3, 0, 1);
  t.ok(Math.abs(g01[0] - g[0]) < 1e-6, "input range [0, 1] gives the same g as [0, 255]");
  const sub = gradientFeature(new Float64Array(2), rgb, W, H, 3, 0, 255, { x: 2, y: 1, w: 4, h: 3 });
  t.ok(Math.abs(sub[0] - (1000 * a * 3) / 4) < 1e-4, `4-wide sub-rectangle: a·3/4 (its own replicate border), got ${sub[0].toFixed(6)}`);
  throwsCode(t, () => gradientFeature(new Float64Array(2), rgb, W, H, 3, 0, 255, { x: 6, y: 0, w: 4, h: 2 }), "E_SHAPE", "rectangle outside the image");
  throwsCode(t, () => gradientFeature(new Float64Array(2), rgb, W, H, 3, 1, 1), "E_RANGE", "empty input range");
  t.equal(patchComplexity({ data: new Uint8Array(W * H * 3).fill(7), width: W, height: H, channels: 3 }), 0, "flat patch: g = 0");
  t.end();
});

test("adabm/searches: OMSE picks the best of its 50 candidates from the signed max; BaC's histogram search lands on the exact MSE minimum", (t) => {
  const rng = new Rng(3);
  const w = Float32Array.from({ length: 500 }, () => rng.normal() * 0.1);
  for (const bits of [4, 8]) {
    const u = omseWeightClip(w, bits);
    let mx = -Infinity;
    for (const v of w) mx = Math.max(mx, v);
    const n = 2 ** bits - 1;
    const mse = (uu: number) => w.reduce((s, v) => {
      const c = Math.min(uu, Math.max(-uu, v)), st = (2 * uu) / n;
      return s + (v - (-uu + Math.min(n, Math.floor((c + uu) / st + 0.5)) * st)) ** 2;
    }, 0);
    let best = Infinity, bu = 0;
    for (let i = 0; i < 50; i++) if (mse(mx * (1 - 0.01 * i)) < best) { best = mse(mx * (1 - 0.01 * i)); bu = mx * (1 - 0.01 * i); }
    t.ok(Math.abs(u - bu) < 1e-12, `W${bits}: OMSE u = ${u.toFixed(5)} (brute force ${bu.toFixed(5)}, start max(W) = ${mx.toFixed(5)})`);
  }
  t.ok(omseWeightClip(Float32Array.of(-0.5, -0.2), 4) > 0, "all-negative tensor: starts from max|W| (documented)");
  t.equal(omseWeightClip(new Float32Array(4), 4), 0, "all-zero tensor: u = 0");
  const x = Float32Array.from({ length: 20000 }, () => Math.max(0, rng.normal() * 2 + (rng.next() < 0.01 ? 30 : 0)));
  let lo = Infinity, hi = -Infinity;
  for (const v of x) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const [bl, bu] = bacSearch(x, lo, hi, 4);
  const exact = (l: number, u: number) => {
    const s = (u - l) / 15;
    let e = 0;
    for (const v of x) { const c = Math.min(u, Math.max(l, v)); e += (v - (l + Math.min(15, Math.floor((c - l) / s + 0.5)) * s)) ** 2; }
    return e;
  };
  let be = Infinity;
  for (let i = 0; i < 100; i++) be = Math.min(be, exact(lo * (1 - 0.01 * i), hi * (1 - 0.01 * i)));
  const got = exact(bl, bu);
  t.ok(got <= be * 1.01, `BaC (4096-bin histogram) MSE ${got.toFixed(1)} within 1 % of the exact best ${be.toFixed(1)} over 100 candidates; range ×${(bu / hi).toFixed(2)}`);
  t.end();
});

test("adabm/calibration: first batch sets [l, u] and the image thresholds, later batches 0.9/0.1; s_l = mean of per-sample unbiased std", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(5);
  const g = optimizeGraph(rdnNet(2));
  const patches = Array.from({ length: 3 }, (_, i) => randomImage(rng, 12, 12, 10 + 60 * i));
  const conv = g.nodes.find((n) => n.name === "GFF_1")!;
  const x = conv.inputs[0];
  const res = await calibrateAdabm(rt, g, [x], patches, { batch: 1 });
  // Reference per patch: min, max, unbiased std over C·H·W, g.
  const plan = new F32Plan(rt, g, 12, 12);
  const mins: number[] = [], maxs: number[] = [], stds: number[] = [], gs: number[] = [];
  for (const p of patches) {
    const xin = plan.inputView(12, 12);
    for (let i = 0; i < p.data.length; i++) xin[i] = (p.data[i] * 1) / 255;
    plan.runSteps(12, 12, 0, plan.nodeSteps[x][1]); // buffers are reused later in the plan
    const v = plan.tensorView(x, 12, 12);
    const vals: number[] = [];
    for (let q = 0; q < v.pixels; q++) for (let c = 0; c < v.channels; c++) vals.push(v.data[v.offset + q * v.stride + c]);
    mins.push(Math.min(...vals));
    maxs.push(Math.max(...vals));
    const m = vals.reduce((a, b) => a + b, 0) / vals.length;
    stds.push(Math.sqrt(vals.reduce((a, b) => a + (b - m) ** 2, 0) / (vals.length - 1)));
    gs.push(patchComplexity(p));
  }
  plan.dispose();
  const ema = (v: number[]) => v.slice(1).reduce((o, n) => 0.9 * o + 0.1 * n, v[0]);
  const c = res.tensors.get(x)!;
  t.ok(Math.abs(c.lo - ema(mins)) < 1e-5 && Math.abs(c.hi - ema(maxs)) < 1e-5, `[l, u] = [${c.lo.toFixed(5)}, ${c.hi.toFixed(5)}] = EMA of batch min/max [${ema(mins).toFixed(5)}, ${ema(maxs).toFixed(5)}]`);
  const sm = stds.reduce((a, b) => a + b, 0) / 3;
  t.ok(Math.abs(c.std - sm) < 1e-4 * sm, `s_l ${c.std.toFixed(6)} = mean unbiased std ${sm.toFixed(6)} (from channel statistics)`);
  t.ok(Math.abs(res.imageBits.lower - ema(gs)) < 1e-9 && Math.abs(res.imageBits.upper - ema(gs)) < 1e-9, "batch of one: P10 = P90 = g, EMA across batches");
  const res2 = await calibrateAdabm(rt, g, [x], patches, { batch: 3 });
  const sorted = [...gs].sort((a, b) => a - b);
  t.ok(Math.abs(res2.imageBits.lower - (sorted[0] + 0.2 * (sorted[1] - sorted[0]))) < 1e-9, "one batch of three: l_img = P10 (linear)");
});

test("adabm/engine: integer paths = oracle; bits follow each tile's content; FAB and BitOPs as defined; roles", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(7);
  const graph = rdnNet(4);
  const imgs = Array.from({ length: 4 }, () => randomImage(rng, 24, 24));
  const r = await adabmCalibrate(graph, imgs, { weightBits: 4, actBits: 4, scope: "full", patches: 8, patchSize: 16, batch: 4, runtime: rt });
  const roles = adabmLayerRoles(r.graph, "full").roles;
  const byName = (n: string) => roles.get(r.graph.nodes.find((m) => m.name === n)!.id);
  t.deepEqual(["F_m1", "F_1_1", "LFF_1", "GFF_1"].map(byName), ["w8a8", "adaptive", "fixed", "adaptive"], "roles: head W8A8, dense + GFF adaptive, LFF fixed at b_base");
  t.ok([...r.model.layers.values()].some((l) => l.name.includes("subpixel") || l.name === "UPN3"), "tail quantized (scope full)");
  const img = randomImage(rng, 20, 14);
  const outs: Record<string, Uint8Array> = {};
  for (const path of ["oracle", "exact", "lut"] as const) {
    r.model.path = path;
    const up = await createUpscaler(r.model, { runtime: rt, tile: 64 });
    outs[path] = (await up.upscale(img)).data;
    up.dispose();
  }
  const cmp = (a: Uint8Array, b: Uint8Array) => { let d = 0; for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i])); return d; };
  t.ok(cmp(outs.exact, outs.oracle) <= 1 && cmp(outs.lut, outs.oracle) <= 1, `exact / LUT vs oracle: max |Δ| ${cmp(outs.exact, outs.oracle)} / ${cmp(outs.lut, outs.oracle)} (of 255)`);
  // A flat half and a busy half, thresholds between them: −1 and +1 tiles.
  const W = 32, H = 16;
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) data[(y * W + x) * 3 + c] = x < 16 ? 120 : rng.int(0, 255);
  const m = buildAdabmModel(r.graph, r.params, { weightBits: 4, actBits: 4, scope: "full", imageBits: { lower: 1, upper: 50 }, path: "lut" });
  const up = await createUpscaler(m, { runtime: rt, tile: 16, margin: 4 });
  const out = await up.upscale({ data, width: W, height: H, channels: 3 });
  up.dispose();
  const bm = out.bitMap!;
  t.ok(bm && bm.tiles.length === 2, `bit map with ${bm?.tiles.length} tiles`);
  t.deepEqual(bm.tiles.map((x) => x.imageDelta), [-1, 1], `flat tile −1 (g ${bm.tiles[0].feature[0].toFixed(1)}), busy tile +1 (g ${bm.tiles[1].feature[0].toFixed(1)}): the decision looks at the core`);
  const names = bm.layers;
  const ad = names.map((n) => roles.get(m.graph.nodes.find((q) => q.name === n)!.id));
  const expect = (d: number) => ad.map((role, i) => role === "w8a8" ? 8 : role === "fixed" ? 4 : adabmBits(4, d, (m.layers.get(m.graph.nodes.find((q) => q.name === names[i])!.id)!.act as { layerDelta: number }).layerDelta));
  t.deepEqual([...bm.tiles[0].bits], expect(-1), `flat tile bits ${[...bm.tiles[0].bits].join(",")}`);
  t.deepEqual([...bm.tiles[1].bits], expect(1), `busy tile bits ${[...bm.tiles[1].bits].join(",")}`);
  const fab = (bits: number[]) => { const c = bits.filter((_, i) => bm.counted[i]); return c.reduce((a, b) => a + b, 0) / c.length; };
  t.ok(Math.abs(bm.tiles[0].fab - fab(expect(-1))) < 1e-12 && bm.counted.filter((c) => !c).length === 2, `FAB excludes the 8-bit head/tail: ${bm.tiles[0].fab.toFixed(3)}, ${bm.tiles[1].fab.toFixed(3)}; image ${bm.fab.toFixed(3)}`);
  t.ok(bm.bitops < bm.fp32Bitops && bm.bitops > 0, `BitOPs ${(bm.bitops / bm.fp32Bitops).toFixed(4)} of FP32`);
  // .lowbit round trip: thresholds, roles and output survive.
  const back = loadLowbit(saveLowbit(m)) as DynamicQuantizedModel;
  t.deepEqual(back.imageBits, m.imageBits, "image thresholds round-trip");
  const up2 = await createUpscaler(back, { runtime: rt, tile: 16, margin: 4 });
  const out2 = await up2.upscale({ data, width: W, height: H, channels: 3 });
  up2.dispose();
  t.ok(out2.data.every((v, i) => v === out.data[i]) && out2.bitMap!.fab === bm.fab, "reloaded: identical output and bits");
  throwsCode(t, () => buildAdabmModel(r.graph, r.params, { weightBits: 4, actBits: 9, scope: "full", imageBits: null }), "E_BITS", "base bits 9");
  throwsCode(t, () => buildAdabmModel(r.graph, r.params, { weightBits: 4, actBits: 4, scope: "full", imageBits: { lower: 5, upper: 1 } }), "E_RANGE", "thresholds lower > upper");
  const bytes = saveLowbit(m);
  // Patch the header bytes in place (same length): the first "layerDelta":0|1 becomes 7.
  const key = new TextEncoder().encode('layerDelta\\":'); // the graph JSON is a string inside the safetensors header
  let at = -1;
  for (let i = 0; i + key.length < bytes.length && at < 0; i++) if (key.every((b, j) => bytes[i + j] === b)) at = i + key.length;
  t.ok(at > 0, "found layerDelta in the header");
  const bad = bytes.slice();
  bad[at] = 0x37;
  throwsCode(t, () => loadLowbit(bad), "E_RANGE", ".lowbit with layerDelta 7");
});

test("adabm/train: the fake-quant backward's bit gradient = Σ g·∂x̂/∂b = −(u − l)·2^b·ln2·Σ g·(R − t)/n²", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(9);
  const graph = rdnNet(6);
  const tg = buildTrainGraph(graph, { weightBits: 4, actBits: 4, layers: ["GFF_1"], actRanges: { GFF_1: [-0.3, 0.4] } });
  const tr = new Trainer(rt, tg, { maxW: 10, maxH: 10, trainWeights: false });
  const x = Float32Array.from({ length: 300 }, () => rng.next());
  for (const bits of [3, 5]) {
    tr.setActBits("GFF_1", bits);
    tr.forward(x, 10, 10);
    const n = tg.graph.nodes.find((q) => q.name === "GFF_1")!;
    const xin = tr.read(n.inputs[0]);
    const G = Float32Array.from({ length: xin.length }, () => rng.normal());
    const gb = tr.createGrads();
    tr.backward([{ at: { quantized: "GFF_1" }, grad: G }], gb);
    const l = -0.3, u = 0.4, nn = 2 ** bits - 1, s = (u - l) / nn;
    let ref = 0;
    for (let i = 0; i < xin.length; i++) {
      const c = Math.min(u, Math.max(l, xin[i]));
      const tt = (c - l) / s;
      ref += G[i] * (u - l) * 2 ** bits * Math.LN2 * (tt - Math.floor(tt + 0.5)) / (nn * nn);
    }
    const got = tr.bitGradient(gb, "GFF_1");
    t.ok(Math.abs(got - ref) <= 1e-3 * Math.max(1, Math.abs(ref)), `b = ${bits}: ${got.toFixed(6)} vs ${ref.toFixed(6)}`);
    gb.dispose();
  }
  tr.dispose();
});

/** A small 0–1 RDN, three random images, a W4A4 fine-tuning schedule of `epochs` × 2 steps, and its calibration. */
async function finetuneSetup(rngSeed: number, graphSeed: number, epochs: number) {
  const rt = await testRuntime();
  const rng = new Rng(rngSeed);
  const graph = rdnNet(graphSeed);
  const imgs = Array.from({ length: 3 }, () => randomImage(rng, 24, 24));
  const o = { weightBits: 4, actBits: 4, patches: 6, patchSize: 16, batch: 3, epochs, stepsPerEpoch: 2, finetunePatch: 12, runtime: rt } as const;
  return { rt, rng, graph, imgs, o, cal: await adabmCalibrate(graph, imgs, o) };
}

test("adabm/finetune: round-robin groups move u_w, ranges and measures; deterministic; deploys with variant=finetuned", async (t) => {
  const { rt, rng, graph, imgs, o, cal } = await finetuneSetup(11, 8, 3);
  const a = await adabmFinetune(graph, imgs, o);
  const b = await adabmFinetune(graph, imgs, o);
  t.equal(a.losses.length, 6, "3 epochs × 2 steps");
  t.ok(a.losses.every(Number.isFinite), `finite losses ${a.losses.map((v) => v.toFixed(3)).join(" ")}`);
  t.deepEqual(a.losses, b.losses, "same seed: identical losses");
  const moved = (f: (p: { lo: number; hi: number; uw: number }) => number) => [...a.params].some(([id, p]) => f(p) !== f(cal.params.get(id)!));
  t.ok(moved((p) => p.uw) && moved((p) => p.lo + p.hi), "u_w and [l, u] trained");
  t.ok(a.model.config.includes("variant=finetuned"), a.model.config);
  t.ok(a.calibrationMs > 0 && a.finetuneMs > 0, `calibration ${a.calibrationMs.toFixed(0)} ms, fine-tuning ${a.finetuneMs.toFixed(0)} ms`);
  const up = await createUpscaler(a.model, { runtime: rt, tile: 16 });
  const out = await up.upscale(randomImage(rng, 20, 20));
  up.dispose();
  t.ok(out.bitMap && out.bitMap.fab >= 2 && out.bitMap.fab <= 6, `runs; FAB ${out.bitMap?.fab.toFixed(2)}`);
});

test("adabm/finetune: rangeLr / weightClipLr set the Adam steps of the activation ranges and weight clips (default the spec's 0.01)", async (t) => {
  const { graph, imgs, o, cal } = await finetuneSetup(12, 9, 2);
  // Epoch 1 trains u_w, epoch 2 the ranges: two Adam steps each, the first exactly lr in size, each at most ~lr.
  type R = Awaited<ReturnType<typeof adabmFinetune>>;
  const rangeMove = (r: R) => Math.max(...[...r.params].map(([id, p]) => Math.max(Math.abs(p.lo - cal.params.get(id)!.lo), Math.abs(p.hi - cal.params.get(id)!.hi))));
  const clipMove = (r: R) => Math.max(...[...r.params].map(([id, p]) => Math.abs(p.uw - cal.params.get(id)!.uw)));
  const def = await adabmFinetune(graph, imgs, o);
  const small = await adabmFinetune(graph, imgs, { ...o, rangeLr: 1e-4, weightClipLr: 1e-4 });
  for (const [what, lr, m] of [["ranges", 0.01, rangeMove(def)], ["ranges", 1e-4, rangeMove(small)], ["u_w", 0.01, clipMove(def)], ["u_w", 1e-4, clipMove(small)]] as const) {
    t.ok(m >= 0.99 * lr && m <= 2.1 * lr, `${what}, lr ${lr}: moved by at most ${m.toExponential(3)} (one step = lr, two ≤ 2.1·lr)`);
  }
  for (const bad of [{ rangeLr: 0 }, { weightClipLr: -1 }]) {
    const err = await adabmFinetune(graph, imgs, { ...o, ...bad }).then(() => null, (e: unknown) => e);
    t.ok(err instanceof LowbitError && err.code === "E_ARGUMENT", `${JSON.stringify(bad)}: ${err instanceof LowbitError ? err.code + " " + err.message : String(err)}`);
  }
});

test("adabm/cli: quantize --method adabm → .lowbit; eval reports FAB/BitOPs; upscale --bitmap writes the heat map; usage errors", async (t) => {
  const { run } = await import("../../src/cli/main.ts");
  const { existsSync, writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { readImage, encodePng } = await import("../../src/io/image.ts");
  const { findEvalDir } = await import("../util/eval-data.ts");
  const { cliIo: io, pngFolder } = await import("../util/cli.ts");
  const rng = new Rng(23);
  const { root: dir, dir: calib } = pngFolder("adabm-cli-", "calib", [randomImage(rng, 40, 40, 20), randomImage(rng, 40, 40, 100)]);
  const out = join(dir, "m.lowbit");
  const a = io();
  const code = await run(["quantize", "--model", "esrgan-slim-x2", "--method", "adabm", "--bits", "w4a4", "--calib", calib, "-o", out, "--method-options", "patches=4,patch=24,steps=0"], a);
  t.equal(code, 0, `quantize exit 0: ${a.stdout.text.trim().slice(0, 160)}${a.stderr.text.includes("lowbit:") ? a.stderr.text : ""}`);
  const evalDir = findEvalDir();
  const b = io();
  const code2 = await run(["eval", "--model", out, "--data", evalDir ?? "missing", "--images", "butterfly", "--json"], b);
  const res = code2 === 0 ? JSON.parse(b.stdout.text) : null;
  t.ok(res && res.mean.fab >= 2 && res.mean.fab <= 6 && res.mean.bitops > 0 && res.mean.bitops < 1 && res.images[0].fab === res.mean.fab,
    `eval --json: FAB ${res?.mean.fab?.toFixed(3)}, BitOPs ${res?.mean.bitops?.toFixed(4)} of FP32 ${code2 !== 0 ? b.stderr.text : ""}`);
  t.equal(res?.tiling.tile, 96, "adaptive-bit model: default tile 96 (the bit-decision unit)");
  const img = join(dir, "in.png");
  writeFileSync(img, encodePng({ data: Uint8Array.from(randomImage(rng, 30, 20).data), width: 30, height: 20, channels: 3 }));
  const map = join(dir, "map.png");
  const c = io();
  const code3 = await run(["upscale", img, join(dir, "out.png"), "--model", out, "--tile", "16", "--bitmap", map], c);
  t.ok(code3 === 0 && existsSync(map) && /FAB/.test(c.stdout.text), `upscale --bitmap: ${c.stdout.text.trim().slice(-60)}`);
  if (existsSync(map)) {
    const m = await readImage(map);
    t.ok(m.width === 30 && m.height === 20, "heat map at the input's size");
  }
  t.equal(await run(["upscale", img, join(dir, "o2.png"), "--bitmap", join(dir, "m.png")], io()), 1, "--bitmap with a fixed-bit model: E_ARGUMENT (exit 1)");
  t.equal(await run(["upscale", img, join(dir, "o3.png"), "--model", out, "--bitmap", join(dir, "m.jpg")], io()), 2, "--bitmap not .png: usage error");
  t.equal(await run(["quantize", "--model", "esrgan-slim-x2", "--method", "adabm", "--bits", "w4a4", "--calib", calib, "-o", out, "--method-options", "bogus=1"], io()), 2, "unknown AdaBM option: usage error");
});

test("adabm/mapping: the bit-mapping object inspects, predicts a tile's bits, round-trips JSON and re-applies to a model", async (t) => {
  const rt = await testRuntime();
  const { AdabmBitMapping } = await import("../../src/methods/adabm/mapping.ts");
  const rng = new Rng(31);
  const graph = rdnNet(12);
  const imgs = Array.from({ length: 3 }, () => randomImage(rng, 24, 24));
  const r = await adabmCalibrate(graph, imgs, { weightBits: 4, actBits: 4, patches: 6, patchSize: 16, batch: 3, runtime: rt });
  const map = AdabmBitMapping.of(r.model);
  t.deepEqual(map.image, r.imageBits, "thresholds");
  t.deepEqual(map.layers.map((l) => l.name), [...r.model.layers.values()].map((l) => l.name), "one entry per quantized layer");
  const back = AdabmBitMapping.fromJSON(JSON.parse(JSON.stringify(map)));
  t.deepEqual(back.toJSON(), map.toJSON(), "JSON round trip");
  const flat = { data: new Uint8Array(16 * 16 * 3).fill(90), width: 16, height: 16, channels: 3 as const };
  const edited = new AdabmBitMapping({ lower: 1, upper: 2 }, map.layers.map((l) => ({ ...l, delta: l.imageAdaptive ? 1 : 0 })));
  const bits = edited.bitsFor(flat);
  t.ok([...bits.entries()].every(([n, b]) => (edited.layers.find((l) => l.name === n)!.imageAdaptive ? b === 4 : b === 4)), `flat image: Δimg −1 and Δlayer +1 cancel → ${[...bits.values()].join(",")}`);
  const m2 = edited.apply(r.model);
  const up = await createUpscaler(m2, { runtime: rt, tile: 64 });
  const out = await up.upscale(flat);
  up.dispose();
  t.deepEqual([...out.bitMap!.tiles[0].bits], [...bits.values()], "the engine runs the predicted bits");
  throwsCode(t, () => new AdabmBitMapping(null, [{ name: "x", delta: 2, imageAdaptive: true, baseBits: 4 }]), "E_ARGUMENT", "Δb_layer 2");
  throwsCode(t, () => edited.apply(new DynamicQuantizedModel(r.model.graph, new Map(), { ...r.model.info, method: "odm" })), "E_ARGUMENT", "an ODM model");
});
