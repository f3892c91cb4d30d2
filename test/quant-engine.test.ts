// Quantized inference end to end: calibrate → quantizeModel → Q8Plan, on a real model and real images.
import test from "tape";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { Q8Plan } from "../src/graph/compile-q8.ts";
import { createUpscaler } from "../src/engine/upscaler-api.ts";
import { psnrY } from "../src/metrics/psnr.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import { evalCrop } from "./util/eval-data.ts";
import { testRuntime } from "./util/runtime.ts";

const crop = (scale: number, name: string, x0: number, y0: number, w: number, h: number) => evalCrop(`lr_x${scale}`, name, x0, y0, w, h);

const calibImages = () => [crop(2, "aero1", 20, 20, 64, 64), crop(2, "building", 100, 60, 64, 64)];
const testImage = () => crop(2, "butterfly", 30, 20, 56, 44);

test("quantized: a fully quantized plan has no float tensor between the image quantize and the output dequantize", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const cal = await calibrate(g, calibImages(), { runtime: rt });
  for (const bits of ["w8a8", "w4a4"]) {
    const qm = quantizeModel(cal, bits);
    const plan = new Q8Plan(rt, qm, 32, 32);
    const ops = plan.info.stepOps;
    t.equal(ops[0], "quantize q8", `${bits}: first step quantizes the image`);
    t.equal(ops.at(-1), "dequantize f32", `${bits}: last step dequantizes the output`);
    const f32Inside = ops.slice(1, -1).filter((o) => o.endsWith("f32"));
    t.deepEqual(f32Inside, [], `${bits}: ${ops.length - 2} integer steps in between, none float`);
    const convs = plan.info.nodes.filter((n) => n.op === "conv2d");
    t.ok(convs.length === 12 && convs.every((n) => n.domain === "q8"), `${bits}: all 12 convs (head, tail, upsampler included) run on codes`);
    const inner = plan.info.nodes.filter((n) => n.op !== "input" && n.op !== "dequantize");
    t.ok(inner.every((n) => n.domain === "q8"), `${bits}: every add, concat, upsample runs on codes`);
    plan.dispose();
  }
  const keep = quantizeModel(cal, { bits: "w8a8", keepFp32: ["head", "tail"] });
  const plan = new Q8Plan(rt, keep, 16, 16);
  const f32Convs = plan.info.nodes.filter((n) => n.op === "conv2d" && n.domain === "f32").map((n) => n.name);
  t.equal(f32Convs.length, 2, `keepFp32 head+tail: FP32 islands ${f32Convs.join(", ")}`);
  t.ok(plan.info.stepOps.filter((o) => o.startsWith("quantize")).length >= 1 && plan.info.stepOps.filter((o) => o.startsWith("dequantize")).length >= 1, "with conversions at the island borders");
  plan.dispose();
});

test("quantized: W8A8 is faithful to FP32 on a held-out image; lower bits degrade gracefully", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const cal = await calibrate(g, calibImages(), { runtime: rt });
  const img = testImage();
  const fp = await (await createUpscaler(g, { runtime: rt })).upscale(img);
  const fid: Record<string, number> = {};
  for (const [bits, method] of [["w8a8", "percentile"], ["w8a8", "minmax"], ["w4a8", "mse"], ["w4a4", "mse"]] as const) {
    const up = await createUpscaler(quantizeModel(cal, { bits, method }), { runtime: rt });
    const out = await up.upscale(img);
    up.dispose();
    fid[`${bits}/${method}`] = psnrY(out, fp, 2);
  }
  t.ok(fid["w8a8/percentile"] >= 40, `W8A8 percentile fidelity ${fid["w8a8/percentile"].toFixed(2)} dB ≥ 40`);
  t.ok(fid["w8a8/minmax"] >= 40, `W8A8 minmax fidelity ${fid["w8a8/minmax"].toFixed(2)} dB ≥ 40`);
  t.ok(fid["w4a8/mse"] < fid["w8a8/percentile"] && fid["w4a4/mse"] < fid["w4a8/mse"], `fidelity falls with bits: w4a8 ${fid["w4a8/mse"].toFixed(2)}, w4a4 ${fid["w4a4/mse"].toFixed(2)}`);
  t.ok(fid["w4a4/mse"] > 20, "W4A4 still a recognisable image (fidelity > 20 dB)");
  const shared = quantizeModel(cal, { bits: "w8a8", method: "percentile" });
  shared.planOptions = { concatGrids: "shared" };
  const up = await createUpscaler(shared, { runtime: rt });
  const fs = psnrY(await up.upscale(img), fp, 2);
  up.dispose();
  t.ok(fs >= 40 && fs <= fid["w8a8/percentile"] + 0.5, `W8A8 with shared concat grids: fidelity ${fs.toFixed(2)} dB (per-tensor grids ${fid["w8a8/percentile"].toFixed(2)})`);
});

test("quantized: concat inputs read only by the concat share its grid (joinGrids), one rounding instead of two", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const cal = await calibrate(g, calibImages(), { runtime: rt });
  const og = cal.graph;
  const users = og.nodes.map(() => 0);
  for (const n of og.nodes) for (const i of n.inputs) users[i]++;
  const joined = quantizeModel(cal, { bits: "w8a8", method: "percentile" });
  const own = quantizeModel(cal, { bits: "w8a8", method: "percentile", joinGrids: false });
  t.equal(joined.quantConfig.joinGrids, true, "joinGrids defaults to true");
  const pj = new Q8Plan(rt, joined, 24, 24), po = new Q8Plan(rt, own, 24, 24);
  const lowered = (p: Q8Plan, src: number) => p.info.nodes.findIndex((n) => n.src === src);
  let pairs = 0, differedBefore = 0;
  for (const c of og.nodes) {
    if (c.op !== "concat") continue;
    for (const i of c.inputs) {
      const gi = pj.info.grids[lowered(pj, i)], gc = pj.info.grids[lowered(pj, c.id)];
      if (og.nodes[i].op === "concat" || (og.nodes[i].op === "conv2d" && users[i] === 1)) {
        pairs++;
        t.deepEqual(gi, gc, `'${og.nodes[i].name}' is on the grid of '${c.name}'`);
        const oi = po.info.grids[lowered(po, i)], oc = po.info.grids[lowered(po, c.id)];
        if (oi!.scale !== oc!.scale || oi!.zeroPoint !== oc!.zeroPoint) differedBefore++;
        const [lo, hi] = joined.tensors[c.id].range;
        t.ok(lo <= own.tensors[i].range[0] && hi >= own.tensors[i].range[1] && lo <= own.tensors[c.id].range[0] && hi >= own.tensors[c.id].range[1], "the joined range covers both members' own ranges");
      } else {
        t.deepEqual(joined.tensors[i].range, own.tensors[i].range, `'${og.nodes[i].name}' (${og.nodes[i].op}, ${users[i]} reader(s)) keeps its own range`);
      }
    }
  }
  t.ok(pairs >= 2 && differedBefore >= 2, `${pairs} joined concat inputs, ${differedBefore} on a different grid without joinGrids`);
  pj.dispose();
  po.dispose();
  const img = testImage();
  const fp = await (await createUpscaler(g, { runtime: rt })).upscale(img);
  const fid = async (m: typeof joined) => {
    const up = await createUpscaler(m, { runtime: rt });
    const f = psnrY(await up.upscale(img), fp, 2);
    up.dispose();
    return f;
  };
  const [fj, fo] = [await fid(joined), await fid(own)];
  t.ok(fj >= 40 && fj >= fo - 0.3, `fidelity with joined grids ${fj.toFixed(2)} dB, own grids ${fo.toFixed(2)} dB`);
  t.throws(() => quantizeModel(cal, { bits: "w8a8", joinGrids: "yes" as unknown as boolean }), /E_ARGUMENT/, "joinGrids must be a boolean");
});

test("quantized: tiled output is bit-identical to untiled (static ranges)", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const cal = await calibrate(g, calibImages(), { runtime: rt });
  for (const bits of ["w8a8", "w4a4"]) {
    const up = await createUpscaler(quantizeModel(cal, { bits, method: "mse" }), { runtime: rt });
    const img = testImage();
    const a = await up.upscale(img, { tile: 256 });
    const b = await up.upscale(img, { tile: 20 });
    let d = 0;
    for (let i = 0; i < a.data.length; i++) d += a.data[i] !== b.data[i] ? 1 : 0;
    t.equal(d, 0, `${bits}: 20-px tiles (margin ${up.margin}) = whole image, byte for byte`);
    up.dispose();
  }
});

test("quantized: simd and relaxed builds give identical bytes (where relaxed runs)", async (t) => {
  const major = Number(process.versions.node.split(".")[0]);
  if (major < 22) {
    t.pass(`Node ${major}: relaxed SIMD is not trusted here; this comparison runs in the Node 22 pass`);
    return;
  }
  const simd = await createRuntime({ backend: "simd" });
  const relaxed = await createRuntime({ backend: "relaxed" });
  const g = await loadModel("esrgan-slim-x2");
  const cal = await calibrate(g, calibImages(), { runtime: simd });
  for (const bits of ["w8a8", "w4a7", "w4a4", "w8a4"]) {
    const qm = quantizeModel(cal, { bits, method: "mse" });
    const img = testImage();
    const a = await (await createUpscaler(qm, { runtime: simd })).upscale(img);
    const b = await (await createUpscaler(qm, { runtime: relaxed })).upscale(img);
    t.deepEqual(b.data, a.data, `${bits}: relaxed build output = simd build output`);
  }
});

test("quantized: bad configurations are typed errors", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  await calibrate(g, [], { runtime: rt }).then(() => t.fail("no images"), (e) => t.equal((e as LowbitError).code, "E_ARGUMENT", "calibrate([]) → E_ARGUMENT"));
  const cal = await calibrate(g, [crop(2, "aero1", 0, 0, 24, 24)], { runtime: rt });
  for (const [cfg, code] of [["w9a8", "E_BITS"], ["w8a1", "E_BITS"], ["banana", "E_ARGUMENT"]] as const) {
    t.throws(() => quantizeModel(cal, cfg), (e: unknown) => (e as LowbitError).code === code, `'${cfg}' → ${code}`);
  }
  t.throws(() => quantizeModel(cal, { bits: "w8a8", keepFp32: ["no-such-layer"] }), /E_ARGUMENT/, "unknown layer in keepFp32");
});

test("calibrate: per-tensor and per-channel statistics agree with a direct FP32 run", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const img = crop(2, "aero1", 30, 40, 20, 16);
  const cal = await calibrate(g, [img], { runtime: rt });
  const { F32Plan } = await import("../src/graph/compile-f32.ts");
  const plan = new F32Plan(rt, cal.graph, 20, 16);
  const x = plan.inputView(20, 16);
  for (let i = 0; i < x.length; i++) x[i] = img.data[i];
  let worst = 0, checked = 0;
  for (let id = 0; id < cal.graph.nodes.length; id++) {
    const [a, b] = plan.nodeSteps[id];
    plan.runSteps(20, 16, a, b);
    const v = plan.tensorView(id, 20, 16);
    const c = v.channels, ts = cal.tensors[id];
    for (let ch = 0; ch < c; ch++) {
      let mn = Infinity, mx = -Infinity, sum = 0;
      for (let p = 0; p < v.pixels; p++) {
        const val = v.data[v.offset + p * v.stride + ch];
        mn = Math.min(mn, val); mx = Math.max(mx, val); sum += val;
      }
      const scale = Math.max(1, Math.abs(mx), Math.abs(mn));
      worst = Math.max(worst, Math.abs(ts.perChannel.min[ch] - mn) / scale, Math.abs(ts.perChannel.max[ch] - mx) / scale,
        Math.abs(ts.channelMean[ch] - sum / v.pixels) / scale);
      checked++;
    }
    if (Math.abs(ts.minmax.min - Math.min(...ts.perChannel.min)) > 0 || Math.abs(ts.minmax.max - Math.max(...ts.perChannel.max)) > 0) t.fail(`node ${id}: per-tensor ≠ per-channel extremes`);
  }
  plan.dispose();
  t.ok(worst < 1e-5, `${checked} channels over ${cal.graph.nodes.length} tensors: per-channel min/max/mean match (rel err ${worst.toExponential(1)})`);
});

test("quantized: the sub-pixel tail keeps the original kernel's b-bit weights (merged integer codes)", async (t) => {
  const rt = await testRuntime();
  const { GraphBuilder } = await import("../src/graph/builder.ts");
  const { subpixelMerge } = await import("../src/graph/passes.ts");
  const { quantizeWeights } = await import("../src/quant/weights.ts");
  const b = new GraphBuilder({ seed: 11 });
  const x = b.input(3);
  const f = b.conv2d(x, 6, 3, { activation: "relu" });
  const g = b.build(b.conv2d(b.upsampleNearest(f, 2), 3, 3), { scale: 2 });
  const cal = await calibrate(g, [crop(2, "home", 10, 10, 16, 12)], { runtime: rt });
  const conv = cal.graph.nodes.find((n) => n.op === "conv2d" && n.subpixelOf)!;
  t.ok(conv && conv.op === "conv2d", "the tail was rewritten");
  if (conv.op !== "conv2d" || !conv.subpixelOf) return;
  for (const wb of [4, 6]) {
    const qm = quantizeModel(cal, { bits: `w${wb}a8` });
    const qw = qm.weights[conv.id]!;
    const orig = quantizeWeights(conv.subpixelOf.weights, 3, wb);
    const want = subpixelMerge(new Int16Array(qw.codes.length), orig.codes, 3, 2, conv.cin, 3);
    t.ok(qw.bits === 8 && qw.codes.every((v, i) => v === want[i]), `w${wb}: merged codes = Σ of the original ${wb}-bit codes, stored as int8`);
    t.ok(qw.scales.every((v, i) => v === orig.params.scale[i % 3]), `w${wb}: each phase keeps its output channel's scale`);
  }
  const q8 = quantizeModel(cal, "w8a8").weights[conv.id]!;
  t.equal(q8.bits, 8, "w8: the merged kernel is quantized directly (sums of 8-bit codes would not fit int8)");
});

test("quant config: roles as perLayer keys (mixed precision: W4 body, 8-bit head/tail/upsampler)", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const cal = await calibrate(g, calibImages(), { runtime: rt });
  const qm = quantizeModel(cal, { bits: "w4a8", perLayer: { head: "w8a8", tail: "w8a8", upsampler: "w8a8", F_0: "w6a8" } });
  const bits = Object.fromEntries(cal.graph.nodes.filter((n) => n.op === "conv2d").map((n) => [n.name, qm.weights[n.id]!.bits]));
  t.equal(bits.F_m1, 8, "head at 8 bits");
  t.equal(bits["SR/subpixel"], 8, "tail at 8 bits");
  t.equal(bits.F_0, 6, "a name beats a role");
  t.equal(bits.F_1_1, 4, "body at the default 4 bits");
  t.ok(/layers:head=w8a8/.test(qm.config), `config says so: ${qm.config}`);
  const img = testImage();
  const fp = await (await createUpscaler(g, { runtime: rt })).upscale(img);
  const mixed = psnrY(await (await createUpscaler(qm, { runtime: rt })).upscale(img), fp, 2);
  const plain = psnrY(await (await createUpscaler(quantizeModel(cal, "w4a8"), { runtime: rt })).upscale(img), fp, 2);
  t.ok(mixed > plain, `8-bit head/tail/upsampler raise W4A8 fidelity: ${plain.toFixed(2)} → ${mixed.toFixed(2)} dB`);
});

test("quantized: bias correction removes the DC shift of weight rounding (W4A8) and is stored in .lowbit files", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const cal = await calibrate(g, calibImages(), { runtime: rt });
  const img = testImage();
  const fp = await (await createUpscaler(g, { runtime: rt })).upscale(img);
  const fid = async (bc: boolean) => psnrY(await (await createUpscaler(quantizeModel(cal, { bits: "w4a8", biasCorrection: bc }), { runtime: rt })).upscale(img), fp, 2);
  const off = await fid(false), on = await fid(true);
  t.ok(on > off, `W4A8 fidelity ${off.toFixed(2)} → ${on.toFixed(2)} dB with bias correction`);
  const { saveLowbit, loadLowbit } = await import("../src/io/lowbit-file.ts");
  const qm = quantizeModel(cal, "w4a8");
  const back = loadLowbit(saveLowbit(qm));
  const a = await (await createUpscaler(qm, { runtime: rt })).upscale(img);
  const b = await (await createUpscaler(back as never, { runtime: rt })).upscale(img);
  t.deepEqual(b.data, a.data, "a saved and reloaded bias-corrected model gives the same bytes");
});
