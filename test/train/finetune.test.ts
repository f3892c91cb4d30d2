// finetune(): learning, determinism, abort, data validation, losses, custom step functions.
import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { GraphBuilder } from "../../src/graph/builder.ts";
import type { Graph } from "../../src/graph/ir.ts";
import { loadModel } from "../../src/models/registry.ts";
import { finetune, loadState } from "../../src/train/finetune.ts";
import { buildTrainGraph } from "../../src/train/graph.ts";
import { Trainer } from "../../src/train/trainer.ts";
import { PatchSampler } from "../../src/train/data.ts";
import { l1Loss } from "../../src/train/losses.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import { evalSurrogate, paramsOf } from "./_surrogate.ts";
import type { ImageLike } from "../../src/engine/image.ts";

function smallNet(seed: number): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input();
  const f = b.conv2d(x, 8, 3, { activation: "relu", name: "head" });
  const r = b.conv2d(b.conv2d(f, 8, 3, { activation: "relu", name: "b1" }), 8, 3, { name: "b2" });
  const y = b.conv2d(b.add(r, f), 12, 3, { name: "tail" });
  return b.build(b.depthToSpace(y, 2), { name: "small", inputRange: [0, 1], outputRange: [0, 1] });
}

/** Smooth random images (sums of a few sinusoids) and their 2× "HR" renderings. */
function images(rng: Rng, count: number, w: number, h: number, s: number): { lr: ImageLike[]; hr: ImageLike[] } {
  const lr: ImageLike[] = [], hr: ImageLike[] = [];
  for (let i = 0; i < count; i++) {
    const f = Array.from({ length: 9 }, () => [rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4), rng.uniform(0, 6)]);
    const render = (W: number, H: number, k: number): ImageLike => {
      const d = new Uint8Array(W * H * 3);
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) {
        const [fx, fy, ph] = f[c * 3], [gx, gy, qh] = f[c * 3 + 1];
        d[(y * W + x) * 3 + c] = Math.round(127.5 + 60 * Math.sin(fx * x / k + fy * y / k + ph) + 60 * Math.sin(2 * gx * x / k - gy * y / k + qh));
      }
      return { data: d, width: W, height: H };
    };
    lr.push(render(w, h, 1));
    hr.push(render(w * s, h * s, s));
  }
  return { lr, hr };
}

const codeOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return "none";
  } catch (e) {
    return e instanceof LowbitError ? e.code : `not LowbitError: ${String(e)}`;
  }
};

test("train: finetune W4A4 esrgan-slim-x2 to its FP32 teacher lowers the loss; deterministic per seed", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const data = images(new Rng(1), 3, 40, 40, 2);
  const run = (seed: number) => finetune(g, { lr: data.lr }, {
    quant: { weightBits: 4, actBits: 4, layers: "body" }, steps: 12, batch: 2, patch: 16, seed, runtime: rt,
    optimizer: { lr: 5e-4 }, calibration: { samples: 4 },
  });
  const a = await run(7);
  const first = a.losses.slice(0, 3).reduce((x, y) => x + y) / 3, last = a.losses.slice(-3).reduce((x, y) => x + y) / 3;
  t.ok(last < 0.85 * first, `teacher L1 falls from ${first.toFixed(5)} to ${last.toFixed(5)} in 12 steps`);
  t.ok(a.calibrated.size > 0 && [...a.calibrated.values()].every(([l, u]) => l < u), `${a.calibrated.size} activation ranges calibrated (P1/P99)`);
  const b = await run(7);
  let same = a.losses.every((v, i) => v === b.losses[i]);
  for (let i = 0; i < a.state.layers.length; i++) {
    const x = a.state.layers[i], y = b.state.layers[i];
    same &&= x.weights.every((v, j) => v === y.weights[j]) && x.act?.l === y.act?.l && x.act?.u === y.act?.u && x.weight?.gamma === y.weight?.gamma;
  }
  t.ok(same, "same seed → bit-identical losses, weights, ranges and γ");
  const c = await run(8);
  t.ok(c.losses.some((v, i) => v !== a.losses[i]), "another seed → another run");
  t.ok(a.state.layers.some((l) => l.weight !== null && l.weight.gamma !== 1), "γ (WCC) is learned");
  // The exported FP32 graph carries the trained weights.
  const l0 = a.state.layers.find((l) => l.name === "F_0")!;
  const n0 = a.graph.nodes.find((n) => n.name === "F_0")! as Extract<Graph["nodes"][number], { op: "conv2d" }>;
  t.ok(n0.weights.every((v, i) => v === l0.weights[i]), "applyState writes the trained weights by layer name");
  t.end();
});

test("train: finetune with HR on a small net learns; the state reloads into a trainer with the same output", async (t) => {
  const rt = await testRuntime();
  const g = smallNet(3);
  const data = images(new Rng(2), 2, 24, 24, 2);
  const r = await finetune(g, data, {
    quant: { weightBits: 4, actBits: 8, layers: ["b1", "b2"], offsets: ["b2"] }, steps: 30, batch: 2, patch: 12, runtime: rt,
    optimizer: { lr: 3e-3 }, losses: { hr: 1, features: [{ at: "b1", weight: 0.1 }] },
  });
  const first = (r.losses[0] + r.losses[1]) / 2, last = (r.losses[28] + r.losses[29]) / 2;
  t.ok(last < 0.8 * first, `HR L1 + feature loss falls from ${first.toFixed(4)} to ${last.toFixed(4)}`);
  const b2 = r.state.layers.find((l) => l.name === "b2")!;
  t.ok(b2.offsets !== null && b2.offsets.scale.some((v) => v !== 1) && b2.offsets.shift.some((v) => v !== 0), "offsets are learned");
  // Reload: a fresh trainer with the state computes the same forward as the surrogate of the state.
  const tg = buildTrainGraph(g, r.trainGraph.spec);
  const tr = new Trainer(rt, tg, { maxW: 8, maxH: 8 });
  loadState(tr, r.state);
  const x = new Float32Array(8 * 8 * 3).map((_, i) => ((i * 37) % 101) / 100);
  tr.forward(x, 8, 8);
  const out = tr.read(tg.graph.output);
  const ref = evalSurrogate(tg, paramsOf(tr.params), x, 8, 8, new Map()).nodes[tg.graph.output];
  let worst = 0;
  for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i] - ref[i]));
  t.ok(worst < 1e-4, `reloaded state runs (|Δ| vs f64 ${worst.toExponential(2)})`);
  t.ok(Math.abs(tr.param("b1/act_range").value[1] - r.state.layers.find((l) => l.name === "b1")!.act!.u) === 0, "ranges restored");
  tr.dispose();
  t.end();
});

test("train: finetune honours AbortSignal and reports progress", async (t) => {
  const rt = await testRuntime();
  const g = smallNet(4);
  const data = images(new Rng(3), 1, 16, 16, 2);
  const ac = new AbortController();
  const seen: number[] = [];
  const code = await codeOf(finetune(g, data, {
    quant: null, steps: 50, batch: 1, patch: 8, runtime: rt, signal: ac.signal,
    onProgress: (p) => {
      seen.push(p.step);
      if (p.step === 3) ac.abort("stop");
    },
  }));
  t.equal(code, "E_ABORTED", "abort during training → E_ABORTED");
  t.deepEqual(seen, [1, 2, 3], "stops right after the step that aborted");
  const pre = new AbortController();
  pre.abort();
  t.equal(await codeOf(finetune(g, data, { quant: null, steps: 5, runtime: rt, signal: pre.signal })), "E_ABORTED", "already aborted → E_ABORTED");
  // Abort from a timer while the loop runs (the loop yields to the event loop).
  const tc = new AbortController();
  setTimeout(() => tc.abort(), 30);
  const t0 = Date.now();
  t.equal(await codeOf(finetune(await loadModel("esrgan-slim-x2"), data, { quant: null, steps: 10000, batch: 1, patch: 16, runtime: rt, signal: tc.signal })),
    "E_ABORTED", "a timer's abort interrupts a long run");
  t.ok(Date.now() - t0 < 5000, `within ${Date.now() - t0} ms`);
  t.end();
});

test("train: finetune validates data and options", async (t) => {
  const rt = await testRuntime();
  const g = smallNet(5);
  const data = images(new Rng(4), 2, 16, 16, 2);
  t.equal(await codeOf(finetune(g, { lr: [] }, { quant: null, runtime: rt })), "E_ARGUMENT", "no images");
  t.equal(await codeOf(finetune(g, { lr: data.lr, hr: [data.hr[0]] }, { quant: null, runtime: rt })), "E_ARGUMENT", "HR count");
  t.equal(await codeOf(finetune(g, { lr: data.lr, hr: [data.hr[0], data.lr[0]] }, { quant: null, runtime: rt })), "E_SHAPE", "HR not scale× LR");
  t.equal(await codeOf(finetune(g, { lr: data.lr }, { quant: null, runtime: rt, losses: { hr: 1 } })), "E_ARGUMENT", "HR loss without HR");
  t.equal(await codeOf(finetune(g, data, { quant: null, runtime: rt, steps: -1 })), "E_ARGUMENT", "negative steps");
  t.equal(await codeOf(finetune(g, data, { quant: null, runtime: rt, batch: 0 })), "E_ARGUMENT", "batch 0");
  t.equal(await codeOf(finetune(g, data, { quant: null, runtime: rt, losses: { hr: 0, teacher: 0 } })), "E_ARGUMENT", "no loss");
  t.equal(await codeOf(finetune(g, data, { quant: { weightBits: 4, actBits: 4, layers: ["zz"] }, runtime: rt })), "E_ARGUMENT", "unknown layer");
  t.equal(await codeOf(finetune(g, { lr: [{ data: new Uint8Array(5), width: 2, height: 2 }] }, { quant: null, runtime: rt })), "E_SHAPE", "bad image");
  t.end();
});

test("train: custom step function (two backward passes combined per tensor) and the sampler", async (t) => {
  const rt = await testRuntime();
  const g = smallNet(6);
  const data = images(new Rng(5), 2, 20, 20, 2);
  const spec = { weightBits: 4, actBits: 4, layers: ["b1", "b2", "tail"] } as const;
  let calls = 0;
  const r = await finetune(g, data, {
    quant: { ...spec, layers: [...spec.layers] }, steps: 4, batch: 2, patch: 10, runtime: rt,
    stepFn: ({ trainer, batch, grads, losses }) => {
      calls++;
      const other = trainer.createGrads();
      let loss = 0;
      for (const s of batch) {
        trainer.forward(s.lr, s.w, s.h);
        const L = losses(s);
        loss += L.loss;
        trainer.backward(L.seeds, grads);
        // A regularizer on the quantized input of b2: ½‖x̂‖² → seed x̂.
        const xq = trainer.read({ quantized: "b2" });
        trainer.backward([{ at: { quantized: "b2" }, grad: xq, weight: 1e-3 }], other);
      }
      const gR = trainer.gradients(grads, 1 / batch.length), gM = trainer.gradients(other, 1 / batch.length);
      other.dispose();
      const out = new Map<string, Float32Array>();
      for (const [name, v] of gR) out.set(name, v.map((x, i) => x + gM.get(name)![i]));
      return { loss: loss / batch.length, grads: out };
    },
  });
  t.equal(calls, 4, "stepFn called once per step");
  t.equal(r.losses.length, 4, "its losses are recorded");
  t.ok(r.losses.every((v) => Number.isFinite(v) && v > 0), "finite losses");
  // Sampler: aligned LR/HR crops with the same dihedral transform (HR = LR nearest-upsampled ×2, so
  // every 2×2 HR block of a correctly aligned crop equals its LR pixel; an odd offset or a transform
  // applied differently breaks it).
  const rng = new Rng(6);
  const lrImg = { data: new Uint8Array(13 * 11 * 3).map(() => rng.int(0, 255)), width: 13, height: 11 };
  const hrImg = { data: new Uint8Array(26 * 22 * 3), width: 26, height: 22 };
  for (let y = 0; y < 22; y++) for (let x = 0; x < 26; x++) for (let c = 0; c < 3; c++) hrImg.data[(y * 26 + x) * 3 + c] = lrImg.data[((y >> 1) * 13 + (x >> 1)) * 3 + c];
  const sp = new PatchSampler({ lr: [lrImg], hr: [hrImg] }, { patch: 6, scale: 2, inputRange: [0, 255], outputRange: [0, 255], seed: 9 });
  let aligned = true;
  for (let i = 0; i < 40; i++) {
    const s = sp.next();
    for (let y = 0; y < 12; y++) for (let x = 0; x < 12; x++) for (let c = 0; c < 3; c++) {
      if (s.hr![(y * 12 + x) * 3 + c] !== s.lr[((y >> 1) * 6 + (x >> 1)) * 3 + c]) aligned = false;
    }
  }
  t.ok(aligned, "HR crops align with LR crops under every transform");
  // l1Loss units: normalized by the output range span.
  const tg = buildTrainGraph(g, null);
  const tr = new Trainer(rt, tg, { maxW: 4, maxH: 4 });
  tr.forward(new Float32Array(48).fill(0.5), 4, 4);
  const out = tr.read(tg.graph.output);
  const L = l1Loss(tr, out.map((v) => v + 0.25));
  t.ok(Math.abs(L.loss - 0.25) < 1e-6, `L1 of a constant 0.25 offset = ${L.loss}`);
  tr.dispose();
  t.end();
});
