// Plan-level fusion (src/graph/compile-q8.ts, Q8PlanOptions.fuse): concats read in place by their 1×1 conv and adds
// done in the store of the 1×1 conv before them. The fused plan must give the unfused plan's codes bit for bit —
// whole images, odd sizes, trimmed row windows — with less tensor memory and fewer steps.
import test from "tape";
import { GraphBuilder } from "../src/graph/builder.ts";
import { Q8Plan } from "../src/graph/compile-q8.ts";
import type { Graph } from "../src/graph/ir.ts";
import { loadModel } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { testRuntime } from "./util/runtime.ts";
import { Rng } from "./util/rng.ts";

/** Two RDN-style blocks (conv → concat with the block input → 1×1 → add) and a global concat → 1×1 → 3×3 → add. */
function rdnGraph(seed: number): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input();
  const head = b.conv2d(x, 16, 3);
  let h = head;
  const outs = [];
  for (let i = 0; i < 2; i++) {
    const c1 = b.conv2d(h, 16, 3, { activation: "relu" });
    const c2 = b.conv2d(b.concat(h, c1), 5, 3, { activation: "relu" }); // a 3×3 consumer: this concat stays
    const lff = b.conv2d(b.concat(h, c1, c2), 16, 1);                  // 37 channels: tails everywhere
    h = i === 0 ? b.add(lff, h) : b.add(h, lff);                      // the conv first, then second
    outs.push(h);
  }
  const gff = b.conv2d(b.conv2d(b.concat(...outs), 16, 1), 16, 3);
  const t = b.add(head, gff);
  const g = b.build(b.depthToSpace(b.conv2d(t, 12, 3), 2));
  // Weighted adds (as ONNX Sub / ncnn Eltwise coefficients import): the fused store must apply each input's own.
  const adds = g.nodes.filter((n) => n.op === "add") as Extract<Graph["nodes"][number], { op: "add" }>[];
  adds[0].coeffs = [0.25, 1];
  adds[1].coeffs = [1, -0.5];
  return g;
}

function randomImage(rng: Rng, w: number, h: number) {
  return { data: new Uint8Array(w * h * 3).map(() => rng.int(0, 255)), width: w, height: h, channels: 3 as const };
}

test("fusion: concat-in / add-out plans equal the unfused plans bit for bit (builder RDN graph, W8A8 and W4A4, trimmed rows)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(31);
  const g = rdnGraph(3);
  const cal = await calibrate(g, [randomImage(rng, 24, 20), randomImage(rng, 20, 24)], { runtime: rt });
  for (const bits of ["w8a8", "w4a4"]) {
    const qm = quantizeModel(cal, bits);
    const fused = new Q8Plan(rt, qm, 26, 26), plain = new Q8Plan(rt, qm, 26, 26, { fuse: false });
    t.equal(fused.info.fused.gathered.size, 3, `${bits}: 3 concats gathered (the two 37-channel LFF inputs and the global one; not the one feeding a 3×3)`);
    t.equal(fused.info.fused.adds.size, 2, `${bits}: 2 adds in a 1×1 store (the global add follows a 3×3)`);
    t.equal(plain.info.fused.gathered.size + plain.info.fused.adds.size, 0, `${bits}: fuse: false fuses nothing`);
    t.ok(fused.info.tensorBytes < plain.info.tensorBytes && fused.stepCount < plain.stepCount,
      `${bits}: ${plain.info.tensorBytes} → ${fused.info.tensorBytes} tensor bytes, ${plain.stepCount} → ${fused.stepCount} steps`);
    let same = 0, trials = 0;
    for (const [w, h] of [[26, 26], [1, 1], [3, 7], [13, 5], [25, 19]]) {
      for (const trim of [false, true]) {
        const x = new Float32Array(w * h * 3).map(() => rng.next());
        const ref = plain.run(x, w, h);
        const top = trim ? rng.int(0, h >> 1) : 0, bottom = trim ? rng.int(0, Math.max(0, h - top - 1)) : 0;
        fused.trimRows(top, bottom);
        fused.inputView(w, h).set(x);
        fused.runSteps(w, h, 0, fused.stepCount);
        const out = fused.outputView(w, h);
        const rowLen = w * 2 * 3;
        let ok = true;
        for (let i = top * 2 * rowLen; i < (h - bottom) * 2 * rowLen; i++) if (!Object.is(out[i], ref[i])) ok = false;
        fused.trimRows(0, 0);
        trials++;
        if (ok) same++;
      }
    }
    t.equal(same, trials, `${bits}: ${same}/${trials} runs (sizes 1×1 … 26×26, half of them with trimmed rows) bit-identical`);
    fused.dispose();
    plain.dispose();
  }
});

test("fusion: esrgan-slim x2 — every dense-block concat and local add fused, output unchanged", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(8);
  const g = await loadModel("esrgan-slim-x2");
  const img = randomImage(rng, 30, 22);
  const qm = quantizeModel(await calibrate(g, [img], { runtime: rt }), "w8a8");
  const fused = new Q8Plan(rt, qm, 30, 22), plain = new Q8Plan(rt, qm, 30, 22, { fuse: false });
  const concats = fused.info.nodes.filter((n) => n.op === "concat").length;
  t.ok(fused.info.fused.gathered.size > 0 && fused.info.fused.adds.size > 0,
    `${fused.info.fused.gathered.size} of ${concats} concats gathered, ${fused.info.fused.adds.size} adds fused`);
  const x = new Float32Array(30 * 22 * 3).map(() => rng.next() * 255);
  const a = fused.run(x, 30, 22), b = plain.run(x, 30, 22);
  t.ok(a.every((v, i) => Object.is(v, b[i])), "fused = unfused, bit for bit");
  for (const [only, label] of [[{ concat: false }, "adds only"], [{ add: false }, "concats only"]] as const) {
    const p = new Q8Plan(rt, qm, 30, 22, { fuse: only });
    const c = p.run(x, 30, 22);
    t.ok(c.every((v, i) => Object.is(v, b[i])) && (only.concat === false ? p.info.fused.gathered.size === 0 : p.info.fused.adds.size === 0), `${label}: same output`);
    p.dispose();
  }
  fused.dispose();
  plain.dispose();
});
