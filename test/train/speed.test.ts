// Throughput of the gradient engine (not part of `npm test`; run directly):
//   node --import tsx test/train/speed.test.ts [--backend relaxed] [--model esrgan-slim-x2] [--steps 20]
// Forward+backward GMAC/s on a 48×48 LR patch, and the time of 500 steps of batch 4 extrapolated
// from `steps` timed steps of finetune() (W4A4 body scope, teacher loss; ODM's setting).
import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { loadModel } from "../../src/models/registry.ts";
import { buildTrainGraph } from "../../src/train/graph.ts";
import { Trainer } from "../../src/train/trainer.ts";
import { l1Loss } from "../../src/train/losses.ts";
import { finetune } from "../../src/train/finetune.ts";

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};

test("train speed: forward+backward GMAC/s and 500×4 steps at 48×48", async (t) => {
  const rt = await testRuntime();
  const model = arg("model", "esrgan-slim-x2");
  const P = 48;
  const g = await loadModel(model);
  const tg = buildTrainGraph(g, { weightBits: 4, actBits: 4, layers: "body" });
  let fwdMacs = 0, bwdInMacs = 0;
  for (const n of tg.graph.nodes) {
    if (n.op !== "conv2d") continue;
    const m = n.k * n.k * n.cin * n.cout * P * P * n.spatial * n.spatial;
    fwdMacs += m;
    if (n.inputs[0] !== tg.graph.input || tg.convs.get(n.id)!.quant) bwdInMacs += m;
  }
  const tr = new Trainer(rt, tg, { maxW: P, maxH: P });
  const teacher = new Trainer(rt, buildTrainGraph(g, null), { maxW: P, maxH: P, forwardOnly: true });
  const rng = new Rng(1);
  const [lo, hi] = g.meta.inputRange;
  const x = new Float32Array(P * P * 3).map(() => lo + (hi - lo) * rng.next());
  tr.calibrateActRanges([{ data: x, w: P, h: P }]);
  const gb = tr.createGrads();
  // Wall time and CPU time (the machine is shared: CPU time is what the process got).
  let cpuFwd = Infinity, cpuFb = Infinity;
  const run = (n: number, what: "fwd" | "fwdbwd"): number => {
    const t0 = performance.now(), c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      tr.forward(x, P, P);
      if (what === "fwdbwd") tr.backward(l1Loss(tr, teacher.output()).seeds, gb);
    }
    const c = process.cpuUsage(c0), cpu = (c.user + c.system) / 1000 / n;
    if (what === "fwd") cpuFwd = Math.min(cpuFwd, cpu);
    else cpuFb = Math.min(cpuFb, cpu);
    return (performance.now() - t0) / n;
  };
  teacher.forward(x, P, P, { fp: true });
  run(2, "fwdbwd");
  const reps = 3;
  let fwd = Infinity, fb = Infinity;
  for (let r = 0; r < reps; r++) {
    fwd = Math.min(fwd, run(5, "fwd"));
    fb = Math.min(fb, run(5, "fwdbwd"));
  }
  const macs = fwdMacs * 2 + bwdInMacs;
  console.log(`${model} ${P}×${P}: forward ${(fwdMacs / 1e9).toFixed(3)} GMAC in ${fwd.toFixed(1)} ms = ${(fwdMacs / fwd / 1e6).toFixed(2)} GMAC/s`);
  console.log(`  CPU time: forward ${cpuFwd.toFixed(1)} ms = ${(fwdMacs / cpuFwd / 1e6).toFixed(2)} GMAC/s, forward+backward ${cpuFb.toFixed(1)} ms = ${(macs / cpuFb / 1e6).toFixed(2)} GMAC/s`);
  console.log(`  forward+backward ${(macs / 1e9).toFixed(3)} GMAC (fwd + ∂W + ∂x) in ${fb.toFixed(1)} ms = ${(macs / fb / 1e6).toFixed(2)} GMAC/s; backward alone ${(fb - fwd).toFixed(1)} ms = ${((macs - fwdMacs) / (fb - fwd) / 1e6).toFixed(2)} GMAC/s`);
  gb.dispose();
  tr.dispose();
  teacher.dispose();

  // finetune(): steps × batch 4 at 48×48 on random-texture images, extrapolated to 500 steps; with HR
  // (L1 to HR, ODM's L_R) and without (L1 to the FP32 teacher: one more forward per sample).
  const steps = Number(arg("steps", "20"));
  const s = g.meta.scale;
  const lr = Array.from({ length: 4 }, () => ({ data: new Uint8Array(96 * 96 * 3).map(() => rng.int(0, 255)), width: 96, height: 96 }));
  const hr = Array.from({ length: 4 }, () => ({ data: new Uint8Array(96 * s * 96 * s * 3).map(() => rng.int(0, 255)), width: 96 * s, height: 96 * s }));
  let perStep = 0;
  for (const withHr of [true, false]) {
    let firstStepAt = 0, cpuAtFirst = 0;
    const c0 = process.cpuUsage();
    const r = await finetune(g, withHr ? { lr, hr } : { lr }, {
      quant: { weightBits: 4, actBits: 4, layers: "body" }, steps: steps + 1, batch: 4, patch: P, runtime: rt,
      onProgress: (p) => {
        if (p.step !== 1) return;
        firstStepAt = p.elapsedMs;
        const c = process.cpuUsage(c0);
        cpuAtFirst = (c.user + c.system) / 1000;
      },
    });
    const c = process.cpuUsage(c0);
    const cpuStep = ((c.user + c.system) / 1000 - cpuAtFirst) / steps;
    perStep = (r.ms - firstStepAt) / steps;
    console.log(`  finetune (${withHr ? "L1 to HR" : "L1 to FP32 teacher"}): ${steps} steps of batch 4 in ${(r.ms - firstStepAt).toFixed(0)} ms (${perStep.toFixed(0)} ms/step) → 500 steps ≈ ${(perStep * 500 / 60000).toFixed(2)} min (+ ${(firstStepAt / 1000).toFixed(1)} s calibration and first step); CPU ${cpuStep.toFixed(0)} ms/step → ${(cpuStep * 500 / 60000).toFixed(2)} min`);
  }
  t.ok(perStep > 0 && Number.isFinite(perStep), "measured");
  t.end();
});
