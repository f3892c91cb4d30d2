import test from "tape";
import { GraphBuilder } from "../src/graph/builder.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { planMemory } from "../src/graph/memory-plan.ts";
import { foldScales, fuseActivations } from "../src/graph/passes.ts";
import { planTiles } from "../src/tiling/tiles.ts";
import { createUpscaler } from "../src/engine/upscaler-api.ts";
import { loadModel } from "../src/models/registry.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import { evalGraph } from "./util/eval-graph.ts";
import { evalCrop } from "./util/eval-data.ts";
import { Rng } from "./util/rng.ts";
import { testRuntime } from "./util/runtime.ts";
import type { Graph } from "../src/graph/ir.ts";

/** A random SR-like graph: head conv, dense blocks with nested concats, residual adds with β, an upsampler. */
function randomGraph(seed: number): Graph {
  const r = new Rng(seed);
  const b = new GraphBuilder({ seed });
  const x = b.input(3);
  const c0 = r.int(3, 12);
  const head = b.conv2d(x, c0, r.pick([1, 3, 5]));
  let feat = head;
  const blockOuts = [];
  for (let blk = 0; blk < r.int(1, 3); blk++) {
    let cat = feat;
    for (let l = 0; l < r.int(1, 3); l++) {
      const y = b.conv2d(cat, r.int(1, 9), r.pick([1, 3]), { activation: r.pick(["relu", "linear", "relu6", "leaky_relu"] as const) });
      cat = b.concat(cat, y);
    }
    const lff = b.conv2d(cat, c0, r.pick([1, 3]));
    feat = r.next() < 0.5 ? b.add(feat, b.scale(lff, 0.2)) : b.add(feat, lff);
    blockOuts.push(feat);
  }
  if (blockOuts.length > 1 && r.next() < 0.7) feat = b.conv2d(b.concat(...blockOuts), c0, 1);
  feat = b.add(feat, r.next() < 0.5 ? head : b.scale(head, 0.5));
  const s = r.pick([1, 2, 3]);
  let up;
  if (r.next() < 0.5) up = b.depthToSpace(b.conv2d(feat, 3 * s * s, 3), s);
  else up = b.conv2d(b.upsampleNearest(b.conv2d(feat, 4, 3, { activation: "relu" }), s), 3, 3);
  return b.build(up, { scale: s });
}

test("engine: compiled FP32 plan equals the f64 graph semantics on random SR-like graphs", async (t) => {
  const rt = await testRuntime();
  let worst = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const g = randomGraph(seed);
    const r = new Rng(seed * 31);
    const h = r.int(1, 9), w = r.int(1, 11);
    const x = r.fillF32(new Float32Array(h * w * 3), 0, 1);
    const want = evalGraph(g, x, h, w).data;
    const plan = new F32Plan(rt, g, w + r.int(0, 3), h + r.int(0, 3));
    const got = plan.run(x, w, h);
    plan.dispose();
    let err = 0, mag = 1e-3;
    for (let i = 0; i < want.length; i++) {
      err = Math.max(err, Math.abs(got[i] - want[i]));
      mag = Math.max(mag, Math.abs(want[i]));
    }
    worst = Math.max(worst, err / mag);
    if (got.length !== want.length || !(err / mag < 2e-5)) t.fail(`seed ${seed}: ${h}×${w}, rel err ${err / mag}`);
  }
  t.ok(worst < 2e-5, `40 random graphs, worst relative error ${worst.toExponential(2)} < 2e-5`);
});

test("engine: concat by channel slices, copies only where a tensor is already aliased", async (t) => {
  const b = new GraphBuilder({ seed: 3 });
  const x = b.input(3);
  const a = b.conv2d(x, 4, 3);
  const y1 = b.conv2d(a, 2, 3);
  const inner = b.concat(a, y1); // a aliased into the outer concat first (reverse order) → this one copies a
  const y2 = b.conv2d(inner, 2, 3);
  const outer = b.concat(a, y2, x); // x is the graph input → copied
  const g = b.build(b.conv2d(outer, 3, 1));
  const mem = planMemory(g, { tileW: 8, tileH: 8, elemBytes: () => 4, pinned: new Set([g.input, g.output]) });
  t.deepEqual(mem.concatCopies.get(outer), [6], "outer concat copies only the graph input (channel offset 6)");
  t.deepEqual(mem.concatCopies.get(inner), [0], "inner concat copies `a`, which lives in the outer concat");
  t.equal(mem.placement[y2].buffer, mem.placement[outer].buffer, "y2 written in place into the outer concat");
  t.equal(mem.placement[y2].channelOffset, 4);
  t.equal(mem.placement[y1].buffer, mem.placement[inner].buffer, "y1 written in place into the inner concat");
  // liveness: no two simultaneously live buffers overlap in memory
  let overlap = 0;
  for (const p of mem.buffers) for (const q of mem.buffers) {
    if (p === q || p.last < q.first || q.last < p.first) continue;
    if (p.offset < q.offset + q.bytes && q.offset < p.offset + p.bytes) overlap++;
  }
  t.equal(overlap, 0, "live buffers never overlap");
});

test("engine: passes fold MultiplyBeta into convs and adds, fuse activations", async (t) => {
  const b = new GraphBuilder({ seed: 5 });
  const x = b.input(3);
  const c = b.conv2d(x, 4, 3);
  const r = b.relu(b.conv2d(c, 4, 3));
  const s1 = b.scale(b.conv2d(r, 4, 3), 0.2); // folds into the conv
  const a1 = b.add(c, s1);
  const a2 = b.add(c, b.scale(a1, 0.2)); // folds into the add's coefficients
  const g = b.build(b.conv2d(a2, 3, 3));
  const g2 = fuseActivations(foldScales(g));
  t.equal(g2.nodes.filter((n) => n.op === "scale").length, 0, "no scale nodes left");
  t.equal(g2.nodes.filter((n) => n.op === "activation").length, 0, "relu fused");
  const adds = g2.nodes.filter((n) => n.op === "add");
  t.deepEqual(adds.map((n) => (n.op === "add" ? n.coeffs ?? null : null)), [null, [1, 0.2]]);
  const x0 = new Rng(1).fillF32(new Float32Array(5 * 6 * 3));
  const want = evalGraph(g, x0, 5, 6).data;
  const got = evalGraph(g2, x0, 5, 6).data;
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(want[i] - got[i]));
  t.ok(err < 1e-5, `rewritten graph computes the same function (max err ${err.toExponential(2)})`);
});

test("tiling: balanced cores cover the image once; regions clipped to it", async (t) => {
  for (const [W, H, tile, m] of [[1, 1, 128, 10], [130, 50, 64, 18], [97, 203, 32, 5], [64, 64, 64, 0]]) {
    const { tiles, maxW, maxH } = planTiles(W, H, tile, m);
    const cover = new Uint8Array(W * H);
    for (const tl of tiles) {
      for (let y = tl.y; y < tl.y + tl.h; y++) for (let x = tl.x; x < tl.x + tl.w; x++) cover[y * W + x]++;
      if (tl.rx < 0 || tl.ry < 0 || tl.rx + tl.rw > W || tl.ry + tl.rh > H || tl.w > tile || tl.h > tile) t.fail("tile out of bounds");
    }
    t.ok(cover.every((c) => c === 1), `${W}×${H} tile ${tile}: every pixel owned by exactly one tile (${tiles.length} tiles)`);
    t.ok(maxW <= Math.min(W, tile + 2 * m) && maxH <= Math.min(H, tile + 2 * m), "max region bounded by tile + 2·margin");
  }
  t.throws(() => planTiles(0, 5, 8, 1), /E_ARGUMENT/);
  t.throws(() => planTiles(5, 5, 8, -1), /E_ARGUMENT/);
});

const lrCrop = (scale: number, name: string, x0: number, y0: number, w: number, h: number) => evalCrop(`lr_x${scale}`, name, x0, y0, w, h);

test("engine: tiled output equals untiled output (exact margin) on a real model and image", async (t) => {
  const rt = await testRuntime();
  const up = await createUpscaler("esrgan-slim-x2", { runtime: rt });
  const img = lrCrop(2, "butterfly", 40, 30, 70, 53);
  const whole = await up.upscale(img, { tile: 256 });
  const tiled = await up.upscale(img, { tile: 24 });
  let diff = 0;
  for (let i = 0; i < whole.data.length; i++) diff = Math.max(diff, Math.abs(whole.data[i] - tiled.data[i]));
  t.equal(diff, 0, `70×53 in 24-px tiles with margin ${up.margin}: identical 8-bit output`);
  t.equal(whole.width, 140);
  t.equal(whole.height, 106);
  up.dispose();
});

test("engine: RGBA keeps its alpha; progress is monotone; abort rejects and leaves the engine usable", async (t) => {
  const rt = await testRuntime();
  const up = await createUpscaler("esrgan-slim-x2", { runtime: rt, tile: 16 });
  const rgb = lrCrop(2, "fruits", 10, 10, 40, 32);
  const rgba = new Uint8Array(40 * 32 * 4);
  for (let i = 0; i < 40 * 32; i++) {
    rgba.set(rgb.data.subarray(i * 3, i * 3 + 3), i * 4);
    rgba[i * 4 + 3] = (i * 37) % 256;
  }
  const fracs: number[] = [];
  const a = await up.upscale({ data: rgba, width: 40, height: 32 }, { onProgress: (p) => fracs.push(p.fraction) });
  const b = await up.upscale(rgb);
  t.equal(a.channels, 4);
  let same = true;
  for (let i = 0; i < 80 * 64; i++) for (let c = 0; c < 3; c++) if (a.data[i * 4 + c] !== b.data[i * 3 + c]) same = false;
  t.ok(same, "RGB channels of RGBA output equal the RGB run");
  t.ok(fracs.length >= 2 && fracs.every((f, i) => i === 0 || f >= fracs[i - 1]) && Math.abs(fracs.at(-1)! - 1) < 1e-9, `progress monotone to 1 (${fracs.length} events)`);
  t.ok(a.data[3] !== undefined && new Set(Array.from({ length: 200 }, (_, i) => a.data[i * 4 + 3])).size > 10, "alpha upscaled, not flattened");

  const ac = new AbortController();
  const p = up.upscale(rgb, { signal: ac.signal, onProgress: () => ac.abort(new Error("user cancel")) });
  try {
    await p;
    t.fail("aborted run resolved");
  } catch (e) {
    t.equal((e as LowbitError).code, "E_ABORTED", "aborted run rejects with E_ABORTED");
    t.equal(((e as LowbitError).cause as Error).message, "user cancel", "abort reason carried as cause");
  }
  const c = await up.upscale(rgb);
  t.deepEqual(c.data, b.data, "next run after an abort is identical to a clean run");
  const pre = new AbortController();
  pre.abort();
  await up.upscale(rgb, { signal: pre.signal }).then(() => t.fail("should reject"), (e) => t.equal(e.code, "E_ABORTED", "pre-aborted signal rejects"));
  up.dispose();
});

test("engine: bad images get typed errors before any WASM call", async (t) => {
  const rt = await testRuntime();
  const up = await createUpscaler("esrgan-slim-x2", { runtime: rt, maxPixels: 1000 });
  const cases: [unknown, string][] = [
    [{ data: new Uint8Array(10), width: 2, height: 2 }, "E_SHAPE"],
    [{ data: new Uint8Array(12), width: 0, height: 2 }, "E_SHAPE"],
    [{ data: new Float32Array(12), width: 2, height: 2 }, "E_ARGUMENT"],
    [{ data: new Uint8Array(100 * 100 * 3), width: 100, height: 100 }, "E_MEMORY"],
    [null, "E_ARGUMENT"],
  ];
  for (const [img, code] of cases) {
    await up.upscale(img as never).then(() => t.fail("should reject"), (e) => t.equal((e as LowbitError).code, code, `${code}: ${(e as Error).message}`));
  }
  const p = new F32Plan(rt, await loadModel("esrgan-slim-x2"), 8, 8);
  t.throws(() => p.runSteps(9, 8, 0, 1), /E_SHAPE/, "tile larger than the plan");
  p.dispose();
});

test("engine: plans on one runtime are independent — disposing one never frees another's memory", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const x = new Rng(9).fillF32(new Float32Array(12 * 10 * 3), 0, 255);
  const want = new F32Plan(rt, g, 12, 10);
  const ref = want.run(x, 12, 10);
  const a = new F32Plan(rt, g, 40, 40);
  const b = new F32Plan(rt, g, 12, 10);
  a.dispose(); // created before b: its memory is freed, b's stays
  const c = new F32Plan(rt, g, 16, 16); // reuses a's gap
  const rb = b.run(x, 12, 10);
  const rc = c.run(x, 12, 10);
  const rb2 = b.run(x, 12, 10);
  t.deepEqual(Array.from(rb), Array.from(ref), "plan b intact after a was disposed and c was compiled");
  t.deepEqual(Array.from(rc), Array.from(ref), "plan c correct in the reused gap");
  t.deepEqual(Array.from(rb2), Array.from(ref), "b still correct after c ran");
  want.dispose();
  b.dispose();
  c.dispose();
  t.throws(() => rt.arena.freeBlock(12345), /E_ARGUMENT/, "freeing a non-block is an error");
});

test("passes: sub-pixel rewrite of upsample → conv is the same function (k 1/3/5, s 2/3/4, borders)", async (t) => {
  const { subpixelTail } = await import("../src/graph/passes.ts");
  for (const [k, s, act] of [[3, 2, "linear"], [3, 4, "relu"], [5, 2, "linear"], [5, 3, "linear"], [1, 3, "linear"], [3, 3, "relu6"]] as const) {
    const b = new GraphBuilder({ seed: k * 10 + s });
    const x = b.input(3);
    const f = b.conv2d(x, 5, 3);
    const g = b.build(b.conv2d(b.upsampleNearest(f, s), 3, k, { activation: act }), { scale: s });
    const g2 = subpixelTail(g);
    const conv = g2.nodes.find((n) => n.op === "conv2d" && n.spatial === 1 && n.cout === 3 * s * s);
    t.ok(conv && g2.nodes.some((n) => n.op === "depth_to_space") && !g2.nodes.some((n) => n.op === "upsample_nearest"),
      `k${k} s${s}: rewritten to a ${conv?.op === "conv2d" ? conv.k : "?"}×${conv?.op === "conv2d" ? conv.k : "?"} LR conv + depth-to-space`);
    const x0 = new Rng(k + s).fillF32(new Float32Array(7 * 5 * 3));
    const a = evalGraph(g, x0, 7, 5).data, c = evalGraph(g2, x0, 7, 5).data;
    let err = 0;
    for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - c[i]));
    t.ok(a.length === c.length && err < 1e-5, `k${k} s${s} ${act}: max |Δ| ${err.toExponential(2)}`);
  }
});
