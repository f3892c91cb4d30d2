// FQSR (fqsr.md): quantization-aware training of the fully quantized static model — tensor
// quantizers on every integer tensor of the plan, trained clips exported as the model's ranges.
import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { randomImage, smallNet } from "../util/small-net.ts";
import { loadModel } from "../../src/models/registry.ts";
import { Q8Plan } from "../../src/graph/compile-q8.ts";
import { fqsrFinetune } from "../../src/methods/fqsr/index.ts";
import { Trainer, buildTrainGraph, loadState } from "../../src/train/index.ts";
import { saveLowbit, loadLowbit } from "../../src/io/lowbit-file.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import { isGridPreserving } from "../../src/quant/quantize-model.ts";
import type { ImageLike } from "../../src/engine/image.ts";
import { cliIo, pngFolder } from "../util/cli.ts";

const runPlan = (plan: Q8Plan, x: Float32Array, w: number, h: number): Float32Array => plan.run(x, w, h);

const psnr = (a: ArrayLike<number>, b: ArrayLike<number>, peak: number): number => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e += (a[i] - b[i]) ** 2;
  return 10 * Math.log10((peak * peak) / (e / a.length));
};

test("fqsr: every integer tensor of the static plan gets a trained clip; the export runs fully quantized and matches the training forward", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(41);
  const graph = await loadModel("esrgan-slim-x2");
  const lr = Array.from({ length: 3 }, () => randomImage(rng, 24, 24));
  const r = await fqsrFinetune(graph, { lr }, { weightBits: 4, actBits: 4, steps: 5, batch: 1, patch: 12, warmup: 3, lr: 1e-3, runtime: rt });
  t.equal(r.model.config, "w4a4 fqsr", `config: ${r.model.config}`);
  t.equal(r.losses.length, 5, "5 steps");
  t.ok(r.losses.every(Number.isFinite), `finite losses ${r.losses[0].toFixed(3)} … ${r.losses[4].toFixed(3)}`);
  // The quantizers cover exactly the plan's integer tensors (minus the image and the output chain).
  const g = r.model.graph, covered = new Set(r.quantizers.flatMap((q) => q.nodes));
  const expected = g.nodes.filter((n) => r.model.tensors[n.id].domain === "q8" && n.op !== "input" && !isGridPreserving(n) &&
    !(r.model.tensors[n.id].range[0] === g.meta.outputRange[0] && r.model.tensors[n.id].range[1] === g.meta.outputRange[1] && r.model.tensors[n.id].bits === 8));
  t.deepEqual([...covered].sort(), expected.map((n) => n.name).sort(), `${covered.size} tensors in ${r.quantizers.length} quantizers (concat groups share one)`);
  t.ok(r.quantizers.some((q) => q.nodes.length > 1), "a dense block's conv outputs share their concat's clip");
  // Grids: ReLU outputs half range [0, α], trunk adds full range [−α, α]; the model's ranges are the trained clips.
  const byName = new Map(g.nodes.map((n) => [n.name, n]));
  let half = 0, full = 0, same = 0;
  for (const q of r.quantizers) {
    if (q.grid === "half") half += q.range[0] === 0 ? 1 : 0;
    if (q.grid === "full") full += q.range[0] === -q.range[1] ? 1 : 0;
    for (const name of q.nodes) {
      const rg = r.model.tensors[byName.get(name)!.id].range;
      if (rg[0] === q.range[0] && rg[1] === q.range[1]) same++;
    }
  }
  t.equal(half + full, r.quantizers.length, `${half} half-range, ${full} full-range clips`);
  t.ok(half > 0 && full > 0, "both grids occur (ReLU convs, residual adds)");
  t.equal(same, covered.size, "every tensor's range is its trained clip");
  // Fully quantized: no float step between the image quantize and the output dequantize.
  const plan = new Q8Plan(rt, r.model, 16, 16);
  const ops = plan.info.stepOps;
  t.ok(ops[0] === "quantize q8" && ops.at(-1) === "dequantize f32" && ops.slice(1, -1).every((o) => !o.endsWith("f32")), `${ops.length - 2} integer steps, none float`);
  // The deployed model against the training engine's fake-quantized forward (same grids, trained weights).
  const tr = new Trainer(rt, buildTrainGraph(r.trained.graph, r.trained.quant), { maxW: 16, maxH: 16 });
  loadState(tr, r.state);
  const img = randomImage(rng, 16, 16);
  const x = Float32Array.from(img.data);
  tr.forward(x, 16, 16);
  const ref = tr.read(tr.output());
  const fpTr = new Trainer(rt, buildTrainGraph(graph, null), { maxW: 16, maxH: 16, forwardOnly: true });
  fpTr.forward(x, 16, 16, { fp: true });
  const fp = fpTr.read(fpTr.output());
  tr.dispose();
  fpTr.dispose();
  const out = runPlan(plan, x, 16, 16);
  plan.dispose();
  const clamp = (v: Float32Array) => v.map((u) => Math.min(255, Math.max(0, u)));
  const dep = psnr(out, clamp(ref), 255), vsFp = psnr(clamp(fp), clamp(ref), 255);
  // Not bit-exact: integer requantization rounds a few values near level boundaries the other way,
  // and at 4 bits one flip is 1/15 of a tensor's range.
  t.ok(dep > 30 && dep > vsFp + 10, `W4A4: deployed vs training forward ${dep.toFixed(1)} dB (the FP32 model vs the training forward: ${vsFp.toFixed(1)} dB)`);
  // Save / load keeps the label, the ranges and the output.
  const back = loadLowbit(saveLowbit(r.model));
  t.equal((back as typeof r.model).config, "w4a4 fqsr", "the file says fqsr");
  const p2 = new Q8Plan(rt, back as typeof r.model, 16, 16);
  const out2 = runPlan(p2, x, 16, 16);
  p2.dispose();
  t.ok(out2.every((v, i) => v === out[i]), "loaded model: identical output");
});

test("fqsr: training lowers the loss; init from a post-training method; asymmetric clips; FQSR's own grid", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(42);
  const graph = smallNet(5);
  const lr = Array.from({ length: 2 }, () => randomImage(rng, 20, 20));
  const hr = lr.map((im) => randomImage(rng, im.width * 2, im.height * 2));
  const a = await fqsrFinetune(graph, { lr }, { weightBits: 4, actBits: 3, steps: 30, batch: 2, patch: 12, warmup: 2, lr: 3e-3, runtime: rt });
  const first = a.losses.slice(0, 5).reduce((s, v) => s + v, 0), last = a.losses.slice(-5).reduce((s, v) => s + v, 0);
  t.ok(last < 0.9 * first, `teacher + calibration loss falls: first 5 steps ${(first / 5).toFixed(4)} → last 5 ${(last / 5).toFixed(4)}`);
  const p = await fqsrFinetune(graph, { lr, hr }, { weightBits: 8, actBits: 8, steps: 2, batch: 1, patch: 12, init: "percentile", runtime: rt });
  t.ok(p.ptq !== null && p.ptq.config.startsWith("w8a8 percentile"), `post-training start: ${p.ptq?.config}`);
  const q0 = p.quantizers[0], ptqRange = p.ptq!.tensors[p.model.graph.nodes.find((n) => n.name === q0.nodes[0])!.id].range;
  t.ok(Math.abs(q0.range[1] - Math.max(Math.abs(ptqRange[0]), ptqRange[1])) < 0.05 * Math.abs(ptqRange[1] - ptqRange[0]), `clip starts at the percentile range (${q0.range.map((v) => v.toFixed(3))} vs ${ptqRange.map((v) => v.toFixed(3))})`);
  const s = await fqsrFinetune(graph, { lr }, { weightBits: 8, actBits: 6, steps: 2, batch: 1, patch: 12, warmup: 2, grid: "asymmetric", runtime: rt });
  t.ok(s.quantizers.every((q) => q.grid === "asymmetric") && s.quantizers.some((q) => q.range[0] !== 0 && q.range[0] !== -q.range[1]), "asymmetric: free [l, u] per tensor");
  const f = await fqsrFinetune(graph, { lr }, { weightBits: 8, actBits: 8, steps: 1, batch: 1, patch: 12, warmup: 2, deployedGrid: false, runtime: rt });
  t.ok(f.trained.quant.tensors!.every((q) => !q.nudge), "deployedGrid: false trains FQSR's own (un-nudged) grid");
  t.ok(a.trained.quant.tensors!.every((q) => q.nudge), "default: the deployed (nudged) grid");
});

test("fqsr: bad options and aborts throw typed errors", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(43);
  const graph = smallNet(6);
  const lr = [randomImage(rng, 16, 16)];
  const code = async (o: Record<string, unknown>, data: unknown = { lr }): Promise<string> => {
    try {
      await fqsrFinetune(graph, data as { lr: ImageLike[] }, { weightBits: 8, actBits: 8, steps: 1, batch: 1, patch: 8, warmup: 1, runtime: rt, ...o });
      return "none";
    } catch (e) {
      return e instanceof LowbitError ? e.code : `not LowbitError: ${String(e)}`;
    }
  };
  t.equal(await code({ actBits: 9 }), "E_BITS", "actBits 9: E_BITS");
  t.equal(await code({ weightBits: 1 }), "E_BITS", "weightBits 1: E_BITS");
  t.equal(await code({ grid: "odd" }), "E_ARGUMENT", "unknown grid: E_ARGUMENT");
  t.equal(await code({ init: "kl" }), "E_ARGUMENT", "unknown init: E_ARGUMENT");
  t.equal(await code({ quantLoss: -1 }), "E_ARGUMENT", "negative calibration-loss weight: E_ARGUMENT");
  t.equal(await code({}, { lr: [] }), "E_ARGUMENT", "no images: E_ARGUMENT");
  const ac = new AbortController();
  ac.abort();
  t.equal(await code({ signal: ac.signal }), "E_ABORTED", "aborted: E_ABORTED");
  // The tensor-quantizer spec itself.
  const bad = (tensors: unknown): string => {
    try {
      buildTrainGraph(graph, { weightBits: null, actBits: null, tensors: tensors as never });
      return "none";
    } catch (e) {
      return e instanceof LowbitError ? e.code : String(e);
    }
  };
  t.equal(bad([{ nodes: ["nope"], bits: 8, grid: "full" }]), "E_ARGUMENT", "unknown node: E_ARGUMENT");
  t.equal(bad([{ nodes: ["head"], bits: 8, grid: "full" }, { nodes: ["head"], bits: 8, grid: "half" }]), "E_ARGUMENT", "a node in two quantizers: E_ARGUMENT");
  t.equal(bad([{ nodes: [graph.nodes[graph.input].name], bits: 8, grid: "full" }]), "E_ARGUMENT", "the graph input: E_ARGUMENT");
  t.equal(bad([{ nodes: ["head"], bits: 17, grid: "full" }]), "E_BITS", "17 bits: E_BITS");
  t.equal(bad([{ nodes: ["head"], bits: 12, grid: "full", nudge: true }]), "E_BITS", "a nudged grid above 8 bits: E_BITS");
  t.equal(bad([{ nodes: ["head"], bits: 8, grid: "full", init: [-1] }]), "E_RANGE", "α ≤ 0: E_RANGE");
  t.equal(bad([{ nodes: ["head"], bits: 8, grid: "asymmetric", init: [1, 0] }]), "E_RANGE", "l ≥ u: E_RANGE");
  // A quantized forward before the clips are set.
  const tr = new Trainer(rt, buildTrainGraph(graph, { weightBits: null, actBits: null, tensors: [{ nodes: ["head"], bits: 8, grid: "full" }] }), { maxW: 8, maxH: 8 });
  let c = "none";
  try {
    tr.forward(new Float32Array(8 * 8 * 3), 8, 8);
  } catch (e) {
    c = e instanceof LowbitError ? e.code : String(e);
  }
  tr.dispose();
  t.equal(c, "E_ARGUMENT", "forward with an uninitialized clip: E_ARGUMENT");
});

test("fqsr/cli: lowbit finetune --method fqsr writes a .lowbit that eval runs; usage errors", async (t) => {
  const { run } = await import("../../src/cli/main.ts");
  const { join } = await import("node:path");
  const io = cliIo;
  const rng = new Rng(44);
  const { root: dir, dir: data } = pngFolder("fqsr-ft-", "lr", [randomImage(rng, 24, 24), randomImage(rng, 24, 24)]);
  const out = join(dir, "m.lowbit");
  const a = io();
  const code = await run(["finetune", "--model", "esrgan-slim-x2", "--method", "fqsr", "--bits", "w8a8", "--data", data, "--steps", "2", "--batch", "1", "--patch", "12", "-o", out, "--method-options", "init=percentile,lq=0.3,clr=2"], a);
  t.equal(code, 0, `finetune exit 0: ${a.stdout.text.trim().slice(0, 160)}${a.stderr.text.includes("lowbit:") ? a.stderr.text : ""}`);
  t.ok(/w8a8 fqsr/.test(a.stdout.text), "reports the fqsr config");
  const b = io();
  t.equal(await run(["upscale", join(data, "p0.png"), join(dir, "up.png"), "--model", out], b), 0, `lowbit upscale --model m.lowbit runs it${b.stderr.text}`);
  // eval / quantize train on --calib (quantize on the fly) and report the config.
  const { findEvalDir } = await import("../util/eval-data.ts");
  const c = io();
  const ce = await run(["eval", "--model", "esrgan-slim-x2", "--data", findEvalDir() ?? "missing", "--images", "butterfly", "--bits", "w8a8", "--method", "fqsr",
    "--calib", data, "--method-options", "steps=2,batch=1,patch=12,init=warmup", "--json"], c);
  const j = ce === 0 ? JSON.parse(c.stdout.text) : null;
  t.ok(j && j.config === "w8a8 fqsr" && Number.isFinite(j.mean.psnr) && Number.isFinite(j.mean.fidelity), `eval --method fqsr: ${j ? `${j.config}, PSNR ${j.mean.psnr.toFixed(2)}, fidelity ${j.mean.fidelity.toFixed(1)}` : c.stderr.text}`);
  t.equal(await run(["eval", "--model", "esrgan-slim-x2", "--data", findEvalDir() ?? "missing", "--bits", "w8a8", "--method", "fqsr", "--calib", data, "--layer-bits", "head=w8a8"], io()), 1, "--layer-bits with fqsr: E_ARGUMENT");
  t.equal(await run(["eval", "--model", "esrgan-slim-x2", "--data", findEvalDir() ?? "missing", "--bits", "w8a8", "--method", "fqsr", "--calib", data, "--method-options", "steps=x"], io()), 1, "steps=x: E_ARGUMENT");
  t.equal(await run(["finetune", "--model", "esrgan-slim-x2", "--method", "fqsr", "--bits", "w8a8", "--data", data, "--method-options", "steps=3", "-o", out], io()), 2, "finetune: steps belongs to --steps, usage error");
  t.equal(await run(["finetune", "--model", "esrgan-slim-x2", "--method", "fqsr", "--bits", "w8a8", "--data", data, "--method-options", "mr=cos", "-o", out], io()), 2, "an ODM option with fqsr: usage error");
  t.equal(await run(["finetune", "--model", "esrgan-slim-x2", "--method", "fqsr", "--bits", "w8a8", "--data", data, "--method-options", "init=kl", "-o", out], io()), 2, "init=kl: usage error");
  t.equal(await run(["finetune", "--model", "esrgan-slim-x2", "--method", "fqsr", "--bits", "w8a8", "--data", data, "--method-options", "halve=1.5", "-o", out], io()), 2, "halve=1.5: usage error");
});
