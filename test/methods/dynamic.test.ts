// DAQ / DFSQ in the engine: layer scopes, calibration patches, the dynamic plan's three paths
// (lut, exact, oracle) against each other and against the methods' f64 references, per-image
// statistics (whole image = one tile), errors.
import test from "tape";
import { loadModel } from "../../src/models/registry.ts";
import { optimizeGraph } from "../../src/graph/passes.ts";
import { selectLayers, isPostRelu, reluChannelMask } from "../../src/methods/scope.ts";
import { DaqActQuantizer } from "../../src/methods/daq/act-quantizer.ts";
import { samplePatches } from "../../src/methods/patches.ts";
import { quantizeDaq } from "../../src/methods/daq/quantize.ts";
import { quantizeDfsq } from "../../src/methods/dfsq/quantize.ts";
import { DynamicPlan } from "../../src/graph/compile-dynamic.ts";
import { DynamicQuantizedModel } from "../../src/methods/dynamic/model.ts";
import { loadLowbit, saveLowbit } from "../../src/io/lowbit-file.ts";
import { mseClipPerChannel, weightErrorSums } from "../../src/methods/dynamic/weight-tools.ts";
import { createUpscaler, fp32Model } from "../../src/engine/upscaler-api.ts";
import { psnrY } from "../../src/metrics/psnr.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import { evalCrop } from "../util/eval-data.ts";
import { testRuntime } from "../util/runtime.ts";
import type { Graph } from "../../src/graph/ir.ts";

const crop = (scale: number, name: string, x0: number, y0: number, w: number, h: number) => evalCrop(`lr_x${scale}`, name, x0, y0, w, h);
const calibImages = () => [crop(2, "aero1", 20, 20, 96, 96), crop(2, "building", 100, 60, 96, 96)];
const testImage = () => crop(2, "butterfly", 30, 20, 40, 36);

async function rejects(t: test.Test, p: () => Promise<unknown>, code: string, what: string): Promise<void> {
  try {
    await p();
    t.fail(`${what}: no error`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${what}: ${e instanceof LowbitError ? e.code : String(e)} (${(e as Error).message.slice(0, 90)})`);
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test("methods/scope: reference scopes map the released code's layers onto ISR RDN and RRDN", async (t) => {
  const small = optimizeGraph(await loadModel("psnr-small-x2"));
  const names = (g: Graph, ids: Set<number>) => g.nodes.filter((n) => ids.has(n.id)).map((n) => n.name);
  const daq = selectLayers(small, "daq", "reference");
  t.equal(daq.ids.size, 30, "psnr-small DAQ: the 30 RDB convs");
  t.ok(names(small, daq.ids).every((n) => /^F_\d+_\d+$/.test(n)), "only F_d_c");
  const dfsq = selectLayers(small, "dfsq", "reference");
  t.equal(dfsq.ids.size, 42, "psnr-small DFSQ: 30 RDB convs + 10 LFF + 2 GFF");
  t.ok(!names(small, dfsq.ids).some((n) => /^(F_m1|F_0|UPN|SR)/.test(n)), "SFENet, UPNet and the tail stay FP32");
  const thick = optimizeGraph(await loadModel("esrgan-thick-x4"));
  t.equal(selectLayers(thick, "dfsq", "reference").ids.size, 150, "esrgan-thick DFSQ: 5 convs × 30 dense blocks");
  t.equal(selectLayers(thick, "daq", "reference").ids.size, 120, "esrgan-thick DAQ: 4 dense convs × 30");
  const convs = small.nodes.filter((n) => n.op === "conv2d").length;
  t.equal(selectLayers(small, "daq", "full").ids.size, convs, "full: every conv");
  const body = selectLayers(small, "daq", "body");
  t.ok(body.ids.size < convs && body.ids.size >= 42, `body: ${body.ids.size} of ${convs} convs (no head/tail/upsampler)`);
  const renamed: Graph = { ...small, nodes: small.nodes.map((n) => ({ ...n, name: `layer${n.id}` })) };
  const fb = selectLayers(renamed, "dfsq", "reference");
  t.equal(fb.resolved, "body", "without ISR names, reference falls back to body");
  t.throws(() => selectLayers(small, "daq", "most" as never), /scope/, "unknown scope");
  const upn2 = small.nodes.find((n) => n.name === "UPN2")!;
  t.ok(isPostRelu(small, upn2.inputs[0]), "UPN2 reads a ReLU output (post-ReLU)");
  const f12 = small.nodes.find((n) => n.name === "F_1_2")!;
  t.notOk(isPostRelu(small, f12.inputs[0]), "an RDB concat is signed");
});

test("methods/patches: seeded, in-image, augmented crops", (t) => {
  const img = crop(2, "aero1", 0, 0, 60, 50);
  const a = samplePatches([img], { count: 5, size: 24, seed: 3 });
  const b = samplePatches([img], { count: 5, size: 24, seed: 3 });
  t.deepEqual(a.map((p) => Array.from(p.data.subarray(0, 12))), b.map((p) => Array.from(p.data.subarray(0, 12))), "same seed, same patches");
  t.ok(a.every((p) => p.width === 24 && p.height === 24 && p.data.length === 24 * 24 * 3), "5 patches of 24²");
  const c = samplePatches([img], { count: 2, size: 100, seed: 3 });
  t.equal(c[0].width, 50, "patch clipped to the image");
  const hist = (d: ArrayLike<number>) => Array.from(d).reduce((s, v) => s + v, 0);
  const plain = samplePatches([img], { count: 1, size: 50, seed: 9, augment: false })[0];
  t.ok(a.length === 5 && hist(plain.data) > 0, "non-empty data");
  t.throws(() => samplePatches([], { size: 8 }), /at least one image/, "no images");
  t.end();
});

/**
 * Runs `qm` on every path and returns, per path, the network output and the first quantized
 * conv's output (its input is the image itself, so its codes are identical on every path: the
 * paths differ only by their arithmetic there; deeper layers also see code flips at level
 * boundaries, which 4-bit quantizers amplify).
 */
async function runPaths(rt: Awaited<ReturnType<typeof testRuntime>>, qm: DynamicQuantizedModel, img: ReturnType<typeof testImage>) {
  const res: Record<string, { out: Float32Array; first: Float32Array }> = {};
  const x = Float32Array.from(img.data);
  for (const path of ["lut", "exact", "oracle"] as const) {
    qm.path = path;
    const plan = new DynamicPlan(rt, qm, img.width, img.height);
    const id = plan.info.quantized[0];
    plan.inputView(img.width, img.height).set(x);
    plan.runSteps(img.width, img.height, 0, plan.nodeSteps[id][1]);
    const v = plan.tensorView(id, img.width, img.height);
    const first = new Float32Array(v.pixels * v.channels);
    for (let p = 0; p < v.pixels; p++) for (let c = 0; c < v.channels; c++) first[p * v.channels + c] = v.data[v.offset + p * v.stride + c];
    plan.runSteps(img.width, img.height, plan.nodeSteps[id][1], plan.stepCount);
    res[path] = { out: plan.outputView(img.width, img.height).slice(), first };
    plan.dispose();
  }
  qm.path = "lut";
  return res;
}

function psnr255(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e += (a[i] - b[i]) ** 2;
  return 10 * Math.log10((255 * 255) / (e / a.length));
}

test("methods/dynamic: DAQ — the three paths agree on a layer and end to end; W8A8 is faithful to FP32", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const img = testImage();
  const qm = await quantizeDaq(g, { weightBits: 4, actBits: 4, scope: "full", runtime: rt });
  const plan = new DynamicPlan(rt, qm, 8, 8);
  t.equal(plan.info.quantized.length, 12, "scope full: all 12 convs quantized");
  for (const op of ["stats", "params", "codes", "conv lut"]) t.ok(plan.info.stepOps.includes(op), `plan has '${op}' steps`);
  plan.dispose();
  const r = await runPaths(rt, qm, img);
  const scaleOf = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const dE = maxAbsDiff(r.exact.first, r.oracle.first), dL = maxAbsDiff(r.lut.first, r.oracle.first), ref = scaleOf(r.oracle.first);
  t.ok(dE <= 1e-5 * ref, `first layer: exact vs oracle max |Δ| ${dE.toExponential(2)} (f32 rounding; |y| ≤ ${ref.toFixed(1)})`);
  t.ok(dL <= 1e-4 * ref && dL > 0, `first layer: lut vs oracle max |Δ| ${dL.toExponential(2)} (≤ S/2·Σ|ŵ|, S ≈ max|x̂|/2^15)`);
  const pe = psnr255(r.exact.out, r.oracle.out), pl = psnr255(r.lut.out, r.oracle.out);
  t.ok(pe > 30 && pl > 30, `end to end (W4A4, 12 layers): exact ${pe.toFixed(1)} dB, lut ${pl.toFixed(1)} dB from the oracle`);
  const fpUp = await createUpscaler(fp32Model(g), { runtime: rt, tile: 64 });
  const fp = await fpUp.upscale(img);
  fpUp.dispose();
  const w8 = await quantizeDaq(g, { weightBits: 8, actBits: 8, runtime: rt });
  const up = await createUpscaler(w8, { runtime: rt, tile: 64 });
  const fid = psnrY(await up.upscale(img), fp, 2);
  up.dispose();
  t.ok(fid > 40, `DAQ W8A8 (reference scope) fidelity to FP32 ${fid.toFixed(2)} dB > 40`);
});

test("methods/dynamic: DFSQ — calibrated codebooks; the paths agree; W8A8 faithful; saved and loaded bit-exact", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const img = testImage();
  const q4 = await quantizeDfsq(g, calibImages(), { weightBits: 4, actBits: 4, scope: "full", patches: 8, runtime: rt });
  const r = await runPaths(rt, q4, img);
  const ref = r.oracle.first.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  // The oracle recomputes μ, m in f64 (the engine's statistics are f32): rare code flips at thresholds.
  const agree = (a: Float32Array) => a.filter((v, i) => Math.abs(v - r.oracle.first[i]) <= 1e-4 * ref).length / a.length;
  t.ok(agree(r.exact.first) > 0.999, `first layer: exact = oracle on ${(100 * agree(r.exact.first)).toFixed(3)} % of outputs`);
  t.ok(agree(r.lut.first) > 0.999, `first layer: lut = oracle on ${(100 * agree(r.lut.first)).toFixed(3)} % of outputs`);
  t.ok(psnr255(r.lut.out, r.oracle.out) > 30, `end to end: lut ${psnr255(r.lut.out, r.oracle.out).toFixed(1)} dB from the oracle`);
  const fpUp = await createUpscaler(fp32Model(g), { runtime: rt, tile: 64 });
  const fp = await fpUp.upscale(img);
  fpUp.dispose();
  const q8 = await quantizeDfsq(g, calibImages(), { weightBits: 8, actBits: 8, patches: 8, runtime: rt });
  t.ok(q8.config.startsWith("w8a8 dfsq scope=reference"), `config '${q8.config}'`);
  const up = await createUpscaler(q8, { runtime: rt, tile: 64 });
  const out8 = await up.upscale(img);
  up.dispose();
  const fid = psnrY(out8, fp, 2);
  t.ok(fid > 40, `DFSQ W8A8 fidelity to FP32 ${fid.toFixed(2)} dB > 40`);
  const loaded = loadLowbit(saveLowbit(q4));
  t.ok(loaded instanceof DynamicQuantizedModel && loaded.config === q4.config, `.lowbit round trip: '${(loaded as DynamicQuantizedModel).config}'`);
  const a = await createUpscaler(q4, { runtime: rt, tile: 64 }), b = await createUpscaler(loaded as DynamicQuantizedModel, { runtime: rt, tile: 64 });
  t.deepEqual(Array.from((await b.upscale(img)).data), Array.from((await a.upscale(img)).data), "the loaded model's output is bit-identical");
  a.dispose();
  b.dispose();
});

test("methods/dynamic: DAQ channel sensitivity and σ quantization run; the file keeps per-channel bits", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const qm = await quantizeDaq(g, { weightBits: 4, actBits: 3, qq: 4, sensitive: 0.25, images: calibImages(), runtime: rt });
  const l = [...qm.layers.values()][0];
  t.ok(l.act.kind === "daq" && l.act.bits instanceof Int32Array, "per-channel bits");
  if (l.act.kind === "daq" && l.act.bits instanceof Int32Array) {
    const bits = l.act.bits;
    t.ok(bits.every((b) => b === 3 || b === 4) && bits.some((b) => b === 4), `channels at 3 or 4 bits (${bits.filter((b) => b === 4).length} of ${bits.length} promoted)`);
  }
  const loaded = loadLowbit(saveLowbit(qm)) as DynamicQuantizedModel;
  const l2 = loaded.layers.get(l.id)!;
  t.deepEqual(l2.act, l.act, "activation spec round-trips");
  const img = testImage();
  const up = await createUpscaler(loaded, { runtime: rt, tile: 64 });
  const out = await up.upscale(img);
  up.dispose();
  t.equal(out.width, img.width * 2, "runs");
});

test("methods/dynamic: weight tools — rounding-error sums, MSE clipping; bias correction is stored and applied", async (t) => {
  const k = 3, cin = 5, cout = 4;
  const hwio = new Float32Array(k * k * cin * cout);
  let s = 7;
  for (let i = 0; i < hwio.length; i++) hwio[i] = Math.fround(Math.sin((s = (s * 48271) % 2147483647)) * (i % 11 === 0 ? 3 : 0.4));
  const codes = new Int16Array(hwio.length), wscale = Float32Array.from([0.05, 0.1, 0.2, 0.025]);
  for (let o = 0; o < cout; o++) for (let tap = 0; tap < k * k; tap++) for (let c = 0; c < cin; c++) codes[(o * k * k + tap) * cin + c] = Math.round(hwio[(tap * cin + c) * cout + o] / wscale[o]);
  const e = weightErrorSums(hwio, codes, wscale, k, cin, cout);
  let worst = 0;
  for (let o = 0; o < cout; o++) for (let c = 0; c < cin; c++) {
    let want = 0;
    for (let tap = 0; tap < k * k; tap++) want += wscale[o] * codes[(o * k * k + tap) * cin + c] - hwio[(tap * cin + c) * cout + o];
    worst = Math.max(worst, Math.abs(want - e[o * cin + c]));
  }
  t.ok(worst < 1e-5, `ΔW sums = brute force (max |Δ| ${worst.toExponential(1)})`);
  const mseOf = (w: Float32Array, o: number, bits: number) => {
    let lo = 0, hi = 0;
    for (let i = 0; i < k * k * cin; i++) { lo = Math.min(lo, w[i * cout + o]); hi = Math.max(hi, w[i * cout + o]); }
    const d = (hi - lo) / ((1 << bits) - 1);
    let err = 0;
    for (let i = 0; i < k * k * cin; i++) { const v = hwio[i * cout + o]; const q = lo + Math.round((Math.min(hi, Math.max(lo, v)) - lo) / d) * d; err += (v - q) ** 2; }
    return err;
  };
  const clipped = mseClipPerChannel(hwio, k, cin, cout, 4);
  t.ok([0, 1, 2, 3].every((o) => mseOf(clipped, o, 4) <= mseOf(hwio, o, 4) + 1e-12), "MSE-clipped range never quantizes worse than min-max");
  t.ok([0, 1, 2, 3].some((o) => mseOf(clipped, o, 4) < 0.9 * mseOf(hwio, o, 4)), "and clips the outlier channels");
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const img = testImage();
  const base = await quantizeDaq(g, { weightBits: 4, actBits: 8, runtime: rt });
  const bc = await quantizeDaq(g, { weightBits: 4, actBits: 8, biasCorrection: true, runtime: rt });
  t.ok(bc.config.includes("bc=1") && [...bc.layers.values()].every((l) => { const n = bc.graph.nodes[l.id]; return n.op === "conv2d" && l.weightError?.length === n.cout * n.cin; }), `config '${bc.config}', ΔW per layer`);
  const fpUp = await createUpscaler(fp32Model(g), { runtime: rt, tile: 64 });
  const fp = await fpUp.upscale(img);
  fpUp.dispose();
  const fid: number[] = [];
  for (const m of [base, bc, loadLowbit(saveLowbit(bc)) as DynamicQuantizedModel]) {
    const up = await createUpscaler(m, { runtime: rt, tile: 64 });
    fid.push(psnrY(await up.upscale(img), fp, 2));
    up.dispose();
  }
  t.ok(fid[1] !== fid[0], `bias correction changes the output (W4A8 fidelity ${fid[0].toFixed(2)} → ${fid[1].toFixed(2)} dB)`);
  t.equal(fid[2], fid[1], "and survives the .lowbit round trip");
});

test("methods/dynamic: DAQ per-channel branch — ReLU channels of a concat take the post-ReLU quantizer on the signed kernel", async (t) => {
  const small = optimizeGraph(await loadModel("psnr-small-x2"));
  const f13 = small.nodes.find((n) => n.name === "F_1_3")!;
  const mask = reluChannelMask(small, f13.inputs[0]);
  t.ok(mask.length === 192 && mask.subarray(0, 64).every((v) => v === 0) && mask.subarray(64).every((v) => v === 1), "F_1_3 reads 64 signed (block input) + 128 ReLU channels");
  // Two channels: a signed one and a ReLU one; the mixed quantizer's ReLU channel must equal the post-ReLU quantizer.
  const pixels = 400, C = 2;
  const x = new Float32Array(pixels * C);
  let s = 3;
  const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647);
  for (let p = 0; p < pixels; p++) {
    x[p * 2] = (rnd() - 0.5) * 4;
    x[p * 2 + 1] = Math.max(0, (rnd() - 0.4) * 3);
  }
  const stats = (ch: number[]) => {
    const mean = new Float32Array(ch.length), std = new Float32Array(ch.length), pos = new Float32Array(ch.length);
    ch.forEach((c, j) => {
      let m = 0, q = 0, n = 0;
      for (let p = 0; p < pixels; p++) { const v = x[p * 2 + c]; m += v; q += v * v; if (v > 0) n++; }
      mean[j] = m / pixels; std[j] = Math.sqrt(Math.max(0, q / pixels - (m / pixels) ** 2)); pos[j] = n;
    });
    return { pixels, min: new Float32Array(ch.length), max: new Float32Array(ch.length), mean, std, maxAbsDev: new Float32Array(ch.length), countPositive: pos };
  };
  const opts = { bits: 4, stepTable: "mse" as const, qq: 32, mode: "int" as const, postRelu: false };
  const mixed = new DaqActQuantizer(2, false, opts, Uint8Array.from([0, 1]));
  const relu = new DaqActQuantizer(1, true, { ...opts, postRelu: true });
  const mu = new Float32Array(2), inv = new Float32Array(2), mu1 = new Float32Array(1), inv1 = new Float32Array(1);
  mixed.prepare(stats([0, 1]), mu, inv);
  relu.prepare(stats([1]), mu1, inv1);
  t.ok(mixed.needsCountPositive, "asks for #(x > 0)");
  let same = 0;
  for (let k = 0; k < 16; k++) if (Math.abs(mixed.level(1, k) - relu.level(0, k)) <= 1e-6 * Math.abs(relu.level(0, 15))) same++;
  t.equal(same, 16, "the ReLU channel's 16 levels are k·Δ of the post-ReLU quantizer");
  let agree = 0;
  for (let p = 0; p < pixels; p++) {
    const v = x[p * 2 + 1];
    const kMixed = Math.min(15, Math.max(0, Math.floor(Math.fround(Math.fround(v - mu[1]) * inv[1])) + 8));
    const kRelu = Math.min(15, Math.max(0, Math.round(Math.fround(v * inv1[0]))));
    if (kMixed === kRelu) agree++;
  }
  t.ok(agree >= pixels - 2, `signed code rule with μ' = 7.5·Δ gives the post-ReLU codes (${agree}/${pixels}; ties differ)`);
  const g = await loadModel("esrgan-slim-x2");
  const rt = await testRuntime();
  const qm = await quantizeDaq(g, { weightBits: 4, actBits: 4, branch: "channel", scope: "full", runtime: rt });
  const masked = [...qm.layers.values()].filter((l) => l.act.kind === "daq" && l.act.reluMask);
  t.ok(masked.length > 0, `${masked.length} layers with mixed branches (${qm.config})`);
  const back = loadLowbit(saveLowbit(qm)) as DynamicQuantizedModel;
  t.deepEqual(back.layers.get(masked[0].id)!.act, masked[0].act, "mask survives the .lowbit round trip");
});

test("methods/dynamic: bad options are typed errors", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  await rejects(t, () => quantizeDaq(g, { weightBits: 9, actBits: 4, runtime: rt }), "E_BITS", "DAQ w9");
  await rejects(t, () => quantizeDaq(g, { weightBits: 4, actBits: 1, runtime: rt }), "E_BITS", "DAQ a1");
  await rejects(t, () => quantizeDaq(g, { weightBits: 4, actBits: 4, qq: 1, runtime: rt }), "E_BITS", "DAQ qq 1");
  await rejects(t, () => quantizeDaq(g, { weightBits: 4, actBits: 4, mode: "reference", path: "lut", runtime: rt }), "E_ARGUMENT", "DAQ reference mode on the lut path");
  await rejects(t, () => quantizeDaq(g, { weightBits: 4, actBits: 4, stepTable: "gauss" as never, runtime: rt }), "E_ARGUMENT", "unknown step table");
  await rejects(t, () => quantizeDaq(g, { weightBits: 4, actBits: 4, sensitive: 0.1, runtime: rt }), "E_ARGUMENT", "sensitivity without images");
  await rejects(t, () => quantizeDfsq(g, [], { weightBits: 4, actBits: 4, runtime: rt }), "E_ARGUMENT", "DFSQ without images");
  await rejects(t, () => quantizeDfsq(g, calibImages(), { weightBits: 4, actBits: 4, path: "fast" as never, runtime: rt }), "E_ARGUMENT", "unknown path");
});

test("methods/dynamic: DAQ calibrated steps — κ ≈ 1 on a Gaussian, > 1 on a Laplacian; stored, round-tripped, paths agree", async (t) => {
  // Histograms built the way collectDaqStats builds them: z = (x − μ)/σ counted over [−Z, Z], weight σ².
  const { DaqStepHistogram, chooseStepScale, STEP_CALIB_Z } = await import("../../src/methods/daq/step-calibration.ts");
  let s = 11;
  const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647);
  const gauss = () => Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
  const laplace = () => (rnd() < 0.5 ? -1 : 1) * Math.log(rnd()) / Math.SQRT2; // unit variance
  const h = new DaqStepHistogram(3, Uint8Array.from([0, 0, 1]));
  const counts = (draw: () => number, relu: boolean) => {
    const c = new Float64Array(h.bins);
    for (let i = 0; i < 200000; i++) {
      const z = relu ? Math.abs(draw()) : draw();
      const b = Math.floor(((z - (relu ? 0 : -STEP_CALIB_Z)) / (2 * STEP_CALIB_Z)) * h.bins);
      c[Math.min(h.bins - 1, Math.max(0, b))]++;
    }
    return c;
  };
  h.add(0, 2.5, counts(gauss, false));
  h.add(1, 0.5, counts(laplace, false));
  h.add(2, 1.0, counts(gauss, true));
  const k4 = chooseStepScale(h, 4, "mse");
  t.ok(Math.abs(k4[0] - 1) <= 0.05, `Gaussian, 4 bits, MSE table: κ = ${k4[0]} (the table is already MSE-optimal)`);
  t.ok(k4[1] > 1.15 && k4[1] < 1.6, `Laplacian, 4 bits: κ = ${k4[1]} (heavier tails want a wider step; Max: 0.4455/0.3352 ≈ 1.33)`);
  t.ok(k4[2] > 0.4 && k4[2] <= 3, `post-ReLU rule channel: κ = ${k4[2]}`);
  const kCode = chooseStepScale(h, 4, "code");
  t.ok(kCode[0] < 0.7, `Gaussian with the code table (G[3] = 0.586, too wide): κ = ${kCode[0]} shrinks it`);
  const empty = new DaqStepHistogram(2, new Uint8Array(2));
  empty.add(0, 0, new Float64Array(empty.bins).fill(5));
  t.deepEqual(Array.from(chooseStepScale(empty, 4, "mse")), [1, 1], "σ' = 0 or no data: κ = 1");

  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  await rejects(t, () => quantizeDaq(g, { weightBits: 4, actBits: 4, calibrateStep: true, runtime: rt }), "E_ARGUMENT", "step calibration without images");
  await rejects(t, () => quantizeDaq(g, { weightBits: 4, actBits: 4, calibrateStep: true, qq: 4, images: calibImages(), runtime: rt }), "E_ARGUMENT", "step calibration with σ quantization");
  const qm = await quantizeDaq(g, { weightBits: 4, actBits: 4, stepTable: "mse", calibrateStep: true, scope: "full", images: calibImages(), runtime: rt });
  const layers = [...qm.layers.values()];
  const ks = layers.flatMap((l) => (l.act.kind === "daq" && l.act.stepScale ? Array.from(l.act.stepScale) : []));
  const cins = layers.reduce((a, l) => { const n = qm.graph.nodes[l.id]; return a + (n.op === "conv2d" ? n.cin : 0); }, 0);
  t.equal(ks.length, cins, "one κ per input channel of every quantized conv");
  t.ok(ks.every((k) => k >= 0.4 && k <= 3.04) && ks.some((k) => k !== 1), `κ in [0.40, 3.04], not all 1 (median ${[...ks].sort((a, b) => a - b)[ks.length >> 1]})`);
  t.ok(qm.config.includes("stepcal=1"), `config says so: ${qm.config}`);
  const back = loadLowbit(saveLowbit(qm)) as DynamicQuantizedModel;
  t.deepEqual(back.layers.get(layers[0].id)!.act, layers[0].act, "κ survives the .lowbit round trip");
  const r = await runPaths(rt, qm, testImage());
  const pl = psnr255(r.lut.out, r.oracle.out), pe = psnr255(r.exact.out, r.oracle.out);
  t.ok(pl > 30 && pe > 30, `lut ${pl.toFixed(1)} dB, exact ${pe.toFixed(1)} dB from the f64 oracle with κ`);
});
