// Row windows (src/graph/row-windows.ts): a plan told that a region's top/bottom rows are margin computes
// each layer only on the rows the core depends on, and the core's output stays bit-identical.
import test from "tape";
import { GraphBuilder } from "../src/graph/builder.ts";
import { computeRowWindows, haloMarginLR, rowWindowsSupported } from "../src/graph/row-windows.ts";
import { copyRows } from "../src/worker/halo.ts";
import type { HaloExchange } from "../src/graph/step-plan.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { Q8Plan } from "../src/graph/compile-q8.ts";
import type { StepPlan } from "../src/graph/step-plan.ts";
import { parseOnnx } from "../src/io/onnx/import.ts";
import { loadModel } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { createUpscaler } from "../src/engine/upscaler-api.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import type { Graph } from "../src/graph/ir.ts";
import { testRuntime } from "./util/runtime.ts";
import { Rng } from "./util/rng.ts";
import { OnnxBuilder } from "./util/onnx.ts";

test("computeRowWindows: conv radii grow the needed rows backwards, upsamplers map them to input rows", (t) => {
  const b = new GraphBuilder({ seed: 1 });
  const x = b.input();
  const c3 = b.conv2d(x, 8, 3);
  const c5 = b.conv2d(c3, 8, 5);
  const c1 = b.conv2d(c5, 12, 1);
  const g = b.build(b.depthToSpace(c1, 2));
  t.ok(rowWindowsSupported(g), "conv / depth_to_space graph is trimmable");
  const N = g.nodes.length;
  const w = computeRowWindows(new Int32Array(2 * N), new Int32Array(2 * N), g, 20, 6, 4);
  const win = (id: number) => [w[2 * id], w[2 * id + 1]];
  // Output ×2 rows [12, 32) ← depth_to_space walks input rows [6, 16); 1×1 computes [6, 16);
  // 5×5 computes [4, 18) (its output needed on [6, 16)); 3×3 computes [3, 19) (needed [4, 18), ± 1).
  t.deepEqual(win(g.output), [6, 16], "depth_to_space walks its input rows of the core");
  t.deepEqual(win(c1), [6, 16], "1×1 conv: the needed rows");
  t.deepEqual(win(c5), [4, 18], "5×5 conv: needed ± 2");
  t.deepEqual(win(c3), [3, 19], "3×3 conv: needed ± 1");
  const low = computeRowWindows(new Int32Array(2 * N), new Int32Array(2 * N), g, 20, 1, 2);
  t.deepEqual([low[2 * c5], low[2 * c5 + 1], low[2 * c3], low[2 * c3 + 1]], [0, 20, 0, 20], "windows clip at the region's edges");
  const full = computeRowWindows(new Int32Array(2 * N), new Int32Array(2 * N), g, 20, 0, 0);
  t.deepEqual([full[2 * c3], full[2 * c3 + 1], full[2 * g.output], full[2 * g.output + 1]], [0, 20, 0, 20], "no trim: whole region");
  t.end();
});

/** Random region: run untrimmed, then trimmed; the core rows of the output must be identical. */
function checkTrim(t: test.Test, plan: StepPlan, name: string, rng: Rng, trials: number): void {
  let fewer = 0;
  for (let trial = 0; trial < trials; trial++) {
    const w = rng.int(3, plan.maxW), h = rng.int(6, plan.maxH);
    const top = rng.int(0, Math.floor(h / 2)), bottom = rng.int(0, h - top - 1);
    const x = new Float32Array(w * h * 3);
    for (let i = 0; i < x.length; i++) x[i] = rng.next();
    const ref = plan.run(x, w, h);
    const full = plan.rowWindows(w, h);
    plan.trimRows(top, bottom);
    plan.inputView(w, h).set(x);
    plan.runSteps(w, h, 0, plan.stepCount);
    const out = plan.outputView(w, h);
    const win = plan.rowWindows(w, h);
    plan.trimRows(0, 0);
    const rowLen = w * plan.scale * 3;
    let same = true;
    for (let i = top * plan.scale * rowLen; i < (h - bottom) * plan.scale * rowLen; i++) {
      if (!Object.is(out[i], ref[i])) same = false;
    }
    let rowsFull = 0, rowsTrim = 0;
    for (let i = 0; i < win.length; i += 2) {
      rowsFull += full[i + 1] - full[i];
      rowsTrim += win[i + 1] - win[i];
    }
    if (rowsTrim < rowsFull) fewer++;
    if (!same || (top + bottom > 0 && rowsTrim >= rowsFull)) {
      t.fail(`${name}: ${w}×${h} trim ${top}/${bottom}: core identical ${same}, rows ${rowsTrim} of ${rowsFull}`);
      return;
    }
  }
  t.pass(`${name}: ${trials} random regions and trims, core rows bit-identical; fewer rows computed in ${fewer}`);
}

function randomGraph(seed: number): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input();
  const h = b.conv2d(x, 8, 3, { activation: "relu" });
  const a = b.conv2d(h, 8, 5, { activation: { kind: "leaky_relu", alpha: 0.2 } });
  const c = b.concat(b.conv2d(a, 4, 1), h);
  const r = b.add(b.scale(b.conv2d(c, 8, 3), 0.2), h);
  const u = b.conv2d(b.upsampleNearest(r, 2), 12, 3, { activation: "relu" });
  return b.build(b.depthToSpace(b.conv2d(u, 12, 3), 2));
}

/** ONNX graph with PRelu, bilinear Resize (half_pixel) and a nearest-free ×2 sub-pixel tail. */
function onnxGraph(seed: number): Graph {
  const b = new OnnxBuilder(new Rng(seed), 13);
  const f = b.conv("x", 3, 8, 3);
  const p = b.op("PRelu", [f, b.rand("slope", [8, 1, 1], 0.3)]);
  const u = b.op("Resize", [b.conv(p, 8, 8, 3), "", b.init("sc", [4], [1, 1, 2, 2])], { mode: { s: "linear" } });
  return parseOnnx(b.finish(b.conv(b.op("Relu", [b.conv(u, 8, 8, 3)]), 8, 3, 3)));
}

test("trimRows: FP32 and W8A8 plans keep the core bit-identical on random graphs (conv 1/3/5, add, concat, scale, prelu, nearest, bilinear, depth_to_space)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(77);
  for (const [name, g] of [["builder graph", randomGraph(3)], ["onnx graph (prelu, bilinear)", onnxGraph(4)]] as const) {
    t.ok(rowWindowsSupported(g), `${name}: trimmable`);
    const f32 = new F32Plan(rt, g, 24, 24);
    t.ok(f32.trimsRows, `${name}: the FP32 plan trims`);
    checkTrim(t, f32, `${name} FP32`, rng, 25);
    f32.dispose();
    const imgs = [0, 1].map(() => {
      const d = new Uint8Array(20 * 20 * 3);
      for (let i = 0; i < d.length; i++) d[i] = rng.int(0, 255);
      return { data: d, width: 20, height: 20, channels: 3 as const };
    });
    const cal = await calibrate(g, imgs, { runtime: rt });
    for (const bits of ["w8a8", "w4a4"]) {
      const q = new Q8Plan(rt, quantizeModel(cal, bits), 24, 24);
      checkTrim(t, q, `${name} ${bits}`, rng, 25);
      q.dispose();
    }
  }
});

test("trimRows: real model (esrgan-slim x4) FP32 and W8A8; tiled upscale still equals untiled", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(5);
  const g = await loadModel("esrgan-slim-x4");
  const plan = new F32Plan(rt, g, 40, 40);
  checkTrim(t, plan, "esrgan-slim-x4 FP32", rng, 4);
  plan.dispose();
  const img = { data: new Uint8Array(36 * 30 * 3).map(() => rng.int(0, 255)), width: 36, height: 30, channels: 3 as const };
  const cal = await calibrate(g, [img], { runtime: rt });
  const qm = quantizeModel(cal, "w8a8");
  const q = new Q8Plan(rt, qm, 40, 40);
  checkTrim(t, q, "esrgan-slim-x4 W8A8", rng, 4);
  q.dispose();
  const up = await createUpscaler(qm, { runtime: rt });
  const whole = await up.upscale(img, { tile: 64 });
  const tiled = await up.upscale(img, { tile: 11 });
  t.ok(Buffer.compare(Buffer.from(whole.data), Buffer.from(tiled.data)) === 0, "W8A8 upscale with 11-pixel tiles (trimmed rows) = one tile, byte for byte");
  up.dispose?.();
});

/**
 * Strips in one thread: each swap publishes its rows at once and defers its receives to `flush`,
 * which the harness calls after every strip ran the same step (the exchange step of a node) — the
 * same data flow as the SharedArrayBuffer exchange, without blocking.
 */
class Board {
  rows = new Map<string, Uint8Array>();
  pending: (() => void)[] = [];
  flush(): void {
    for (const f of this.pending.splice(0)) f();
  }
}
class LocalExchange implements HaloExchange {
  private seq = 0;
  constructor(private readonly board: Board, private readonly index: number, private readonly strips: number) {}
  swap(mem: Uint8Array, ptr: number, W: number, px: number, stride: number, c0: number, c1: number, R: number): void {
    const seq = ++this.seq, len = R * W * px, b = this.board, i = this.index;
    const send = (key: string, y0: number) => {
      const buf = new Uint8Array(len);
      copyRows(mem, ptr, W, px, stride, y0, R, buf, false);
      b.rows.set(key, buf);
    };
    if (i > 0) send(`${seq}:${i}:up`, c0);
    if (i < this.strips - 1) send(`${seq}:${i}:down`, c1 - R);
    b.pending.push(() => {
      if (i > 0) copyRows(mem, ptr, W, px, stride, c0 - R, R, b.rows.get(`${seq}:${i - 1}:down`)!, true);
      if (i < this.strips - 1) copyRows(mem, ptr, W, px, stride, c1, R, b.rows.get(`${seq}:${i + 1}:up`)!, true);
    });
  }
}

/** Runs `plans` as `n` exchanging strips of a w×H image; each strip's core rows must equal the untiled output. */
function checkStrips(t: test.Test, plans: StepPlan[], name: string, rng: Rng, g: Graph, w: number, H: number): void {
  const n = plans.length, s = plans[0].scale;
  const x = new Float32Array(w * H * 3);
  for (let i = 0; i < x.length; i++) x[i] = rng.next();
  const ref = plans[0].run(x, w, H);
  const m = haloMarginLR(g) + rng.int(0, 2);
  const board = new Board();
  const strips = Array.from({ length: n }, (_, i) => {
    const y = Math.round((i * H) / n), e = Math.round(((i + 1) * H) / n);
    const ry = Math.max(0, y - m), re = Math.min(H, e + m);
    plans[i].inputView(w, re - ry).set(x.subarray(ry * w * 3, re * w * 3));
    plans[i].setHalo(new LocalExchange(board, i, n), y - ry, re - e);
    return { y, e, ry, rh: re - ry };
  });
  for (let step = 0; step < plans[0].stepCount; step++) {
    strips.forEach((st, i) => plans[i].runSteps(w, st.rh, step, step + 1));
    board.flush();
  }
  let bad = 0;
  strips.forEach((st, i) => {
    const out = plans[i].outputView(w, st.rh), row = w * s * 3;
    for (let r = st.y * s; r < st.e * s; r++) {
      for (let j = 0; j < row; j++) if (!Object.is(out[(r - st.ry * s) * row + j], ref[r * row + j])) bad++;
    }
    plans[i].setHalo(null);
  });
  t.equal(bad, 0, `${name}: ${n} strips of a ${w}×${H} image with halo exchange (region margin ${m}) = untiled, bit for bit`);
}

test("halo exchange: strips computing only their own rows, swapping halos, equal the untiled run (FP32, W8A8, W4A4)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(9);
  for (const [name, g] of [["builder graph", randomGraph(5)], ["onnx graph (prelu, bilinear)", onnxGraph(6)]] as const) {
    for (const n of [2, 3]) {
      const f32 = Array.from({ length: n }, () => new F32Plan(rt, g, 20, 30));
      checkStrips(t, f32, `${name} FP32`, rng, g, 20, 30);
      f32.forEach((p) => p.dispose());
    }
    const imgs = [{ data: new Uint8Array(20 * 20 * 3).map(() => rng.int(0, 255)), width: 20, height: 20, channels: 3 as const }];
    const cal = await calibrate(g, imgs, { runtime: rt });
    for (const bits of ["w8a8", "w4a4"]) {
      const qs = [0, 1].map(() => new Q8Plan(rt, quantizeModel(cal, bits), 17, 26));
      checkStrips(t, qs, `${name} ${bits}`, rng, g, 17, 26);
      qs.forEach((p) => p.dispose());
    }
  }
  const g = await loadModel("esrgan-slim-x4");
  const real = [0, 1].map(() => new F32Plan(rt, g, 24, 40));
  checkStrips(t, real, "esrgan-slim-x4 FP32", rng, g, 24, 40);
  real.forEach((p) => p.dispose());
});

test("trimRows: bad trims throw E_ARGUMENT; graphs with global or misaligned ops are not trimmed", async (t) => {
  const rt = await testRuntime();
  const plan = new F32Plan(rt, randomGraph(1), 16, 16);
  for (const [a, b] of [[-1, 0], [0, 1.5], [NaN, 0]]) {
    t.throws(() => plan.trimRows(a, b), (e: unknown) => e instanceof LowbitError && e.code === "E_ARGUMENT", `trimRows(${a}, ${b})`);
  }
  plan.trimRows(8, 8);
  t.throws(() => plan.runSteps(16, 16, 0, 1), (e: unknown) => e instanceof LowbitError && e.code === "E_ARGUMENT", "trimming every row of a region");
  plan.dispose();
  const b = new GraphBuilder({ seed: 2 });
  const g = b.build(b.conv2d(b.input(), 3, 3));
  t.ok(rowWindowsSupported(g), "plain conv graph trimmable");
  const se = { ...g, nodes: [...g.nodes, { ...g.nodes[1], id: 2, op: "shift", by: 1, inputs: [1], name: "s" }] } as unknown as Graph;
  t.notOk(rowWindowsSupported(se), "a graph with a shift node is not");
});
