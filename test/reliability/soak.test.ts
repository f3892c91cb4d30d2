// Soak, abort and concurrency: many consecutive upscales with flat WASM memory and JS heap; aborts
// at random points (mid-tile, inside calibrate() and finetune()) reject with E_ABORTED and leave
// the runtime usable with outputs identical to a fresh engine's; several engines and a worker pool
// in parallel produce the same bytes as one engine. `LOWBIT_SOAK_N` sets the soak length (CI 200;
// `npm run fuzz` runs 1,000).
import test from "tape";
import { createRuntime } from "../../src/runtime/runtime.ts";
import { createUpscaler } from "../../src/engine/upscaler-api.ts";
import { planTiles } from "../../src/tiling/tiles.ts";
import { loadModel } from "../../src/models/registry.ts";
import { calibrate } from "../../src/quant/calibrate.ts";
import { quantizeModel } from "../../src/quant/quantize-model.ts";
import { saveLowbit } from "../../src/io/lowbit-file.ts";
import { finetune } from "../../src/train/finetune.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import { createWorkerPool } from "../../src/worker/pool.ts";
import { testBackend, testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { smallGraph, smallImage } from "./fixtures.ts";
import { hash, soak } from "./soak-lib.ts";

const SOAK_N = Number(process.env.LOWBIT_SOAK_N ?? 200);

test(`soak: ${SOAK_N} consecutive upscales (FP32 and W8A8, RGBA, tiled): WASM memory and JS heap flat, outputs identical`, async (t) => {
  const rt = await createRuntime({ backend: testBackend() });
  const s = await soak(rt, SOAK_N);
  t.ok(s.identical, `${s.runs} runs in ${(s.ms / 1000).toFixed(1)} s, every output identical to the first`);
  t.equal(s.wasmBytes[1], s.wasmBytes[0], `WASM memory flat after warm-up: ${s.wasmBytes[0]} → ${s.wasmBytes[1]} bytes`);
  t.equal(s.arenaUsed[1], s.arenaUsed[0], `arena in use flat: ${s.arenaUsed[0]} → ${s.arenaUsed[1]} bytes`);
  t.ok(s.heapMiB[1] - s.heapMiB[0] < 8, `JS heap after GC: ${s.heapMiB[0].toFixed(1)} → ${s.heapMiB[1].toFixed(1)} MiB (bound: +8 MiB)`);
  rt.dispose();
});

async function rejection(p: Promise<unknown>): Promise<LowbitError | null> {
  try {
    await p;
    return null;
  } catch (e) {
    if (e instanceof LowbitError) return e;
    throw e;
  }
}

test("abort at random points of upscale (between steps, mid-tile, between tiles): E_ABORTED with the reason; the next output equals a fresh engine's", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const img = smallImage(new Rng(4), 200, 88, 3);
  const fresh = await createUpscaler(g, { runtime: await createRuntime({ backend: testBackend() }), tile: 100 });
  const want = hash((await fresh.upscale(img)).data);
  fresh.dispose();
  const up = await createUpscaler(g, { runtime: rt, tile: 100 });
  // Progress fractions at tile boundaries (the loop reports done/work after each tile; events
  // between steps report fractional tile progress): anything else is a mid-tile event.
  const grid = planTiles(img.width, img.height, 100, up.margin);
  const work = grid.tiles.reduce((a, x) => a + x.rw * x.rh, 0);
  const boundaries = new Set<number>([0]);
  let acc = 0;
  for (const x of grid.tiles) boundaries.add((acc += x.rw * x.rh) / work);
  const t0 = performance.now();
  await up.upscale(img);
  const full = performance.now() - t0;
  const r = new Rng(77);
  let aborted = 0, midTile = 0, completed = 0;
  const blocks = rt.arena.liveBlocks;
  const RUNS = 10;
  for (let i = 0; i < RUNS; i++) {
    const ac = new AbortController();
    const reason = new Error(`stop ${i}`);
    let lastFraction = 0;
    // Even runs abort from a progress event: the k-th one inside a tile (the loop yields every
    // 30 ms between plan steps, so a ~100 ms tile reports a few); odd runs at a random time.
    const byEvent = i % 2 === 0;
    const atMid = r.int(0, 2);
    let mids = 0;
    const timer = byEvent ? null : setTimeout(() => ac.abort(reason), r.uniform(0, full));
    const e = await rejection(up.upscale(img, {
      signal: ac.signal,
      onProgress: (p) => {
        lastFraction = p.fraction;
        if (byEvent && !boundaries.has(p.fraction) && mids++ === atMid) ac.abort(reason);
        if (byEvent && p.fraction === 1) ac.abort(reason);
      },
    }));
    if (timer) clearTimeout(timer);
    if (e) {
      aborted++;
      if (e.code !== "E_ABORTED" || e.cause !== reason) t.fail(`run ${i}: ${e.code} ${e.message}`);
      // Mid-tile: the last progress event was inside a tile (fraction not on a tile boundary).
      if (!boundaries.has(lastFraction)) midTile++;
    } else completed++;
    const next = hash((await up.upscale(img)).data);
    if (next !== want) t.fail(`run ${i}: the run after the abort differs from a fresh engine's output`);
  }
  t.ok(aborted >= RUNS / 2, `${aborted} of ${RUNS} runs aborted (${completed} finished before the abort), ${midTile} of them mid-tile`);
  t.ok(midTile >= 1, "at least one abort landed inside a tile");
  t.equal(rt.arena.liveBlocks, blocks, "no arena blocks leaked by aborted runs");
  t.pass("every run after an abort produced the fresh engine's bytes");
  up.dispose();
});

test("abort inside calibrate() and finetune(): E_ABORTED, nothing leaked, the next run equals an uninterrupted one", async (t) => {
  const rt = await testRuntime();
  const g = smallGraph(7);
  const imgs = [smallImage(new Rng(1), 40, 32, 3), smallImage(new Rng(2), 36, 36, 3), smallImage(new Rng(3), 30, 44, 3)];
  const ref = saveLowbit(quantizeModel(await calibrate(g, imgs, { runtime: await createRuntime({ backend: testBackend() }), tile: 16 }), "w8a8"));
  const blocks = rt.arena.liveBlocks;
  const r = new Rng(5);
  let calAborts = 0;
  for (let i = 0; i < 5; i++) {
    const ac = new AbortController();
    const at = r.uniform(0, 0.9);
    const e = await rejection(calibrate(g, imgs, { runtime: rt, tile: 16, signal: ac.signal, onProgress: (f) => { if (f >= at) ac.abort("calibration stopped"); } }));
    if (e) {
      calAborts++;
      if (e.code !== "E_ABORTED") t.fail(`calibrate abort ${i}: ${e.code}`);
    }
  }
  t.ok(calAborts >= 4, `${calAborts} of 5 calibrations aborted at random fractions`);
  t.equal(rt.arena.liveBlocks, blocks, "calibrate: no arena blocks leaked");
  const after = saveLowbit(quantizeModel(await calibrate(g, imgs, { runtime: rt, tile: 16 }), "w8a8"));
  t.deepEqual(after, ref, "calibration after aborts: the quantized model is byte-identical to one from a fresh runtime");

  const ft = (signal?: AbortSignal, onStep?: (s: number) => void) => finetune(g, { lr: imgs }, {
    quant: { weightBits: 4, actBits: 4, layers: "full" }, steps: 6, batch: 2, patch: 12, seed: 3, runtime: rt,
    calibration: { samples: 2 }, signal, onProgress: (p) => onStep?.(p.step),
  });
  const base = await ft();
  let ftAborts = 0;
  for (const stopAt of [1, 3, 5]) {
    const ac = new AbortController();
    const e = await rejection(ft(ac.signal, (s) => { if (s === stopAt) ac.abort(new Error("finetune stopped")); }));
    if (e?.code === "E_ABORTED") ftAborts++;
    else t.fail(`finetune abort at step ${stopAt}: ${e ? e.code : "resolved"}`);
  }
  t.equal(ftAborts, 3, "finetune aborted at steps 1, 3, 5");
  t.equal(rt.arena.liveBlocks, blocks, "finetune: no arena blocks leaked");
  const again = await ft();
  t.deepEqual(again.losses, base.losses, "finetune after aborts: bit-identical losses to the uninterrupted run");
  t.ok(again.state.layers.every((l, i) => l.weights.every((v, j) => v === base.state.layers[i].weights[j])), "…and bit-identical weights");
});

test("concurrency: engines on one runtime, on separate runtimes and in a worker pool produce the same bytes, run to run", async (t) => {
  const rt = await testRuntime();
  const imgs = [0, 1, 2, 3, 4, 5].map((i) => smallImage(new Rng(100 + i), 30 + 3 * i, 26 + 2 * i, 3));
  const one = await createUpscaler("esrgan-slim-x2", { runtime: rt, tile: 24 });
  const want: string[] = [];
  for (const im of imgs) want.push(hash((await one.upscale(im)).data));
  // Engines sharing a runtime (their plans interleave in one arena) and engines on their own runtimes, all at once.
  const shared = await Promise.all([0, 1, 2].map(() => createUpscaler("esrgan-slim-x2", { runtime: rt, tile: 24 })));
  const own = await Promise.all([0, 1].map(async () => createUpscaler("esrgan-slim-x2", { runtime: await createRuntime({ backend: testBackend() }), tile: 24 })));
  const engines = [...shared, ...own];
  // Every engine works through its share of the images in order; the engines run concurrently.
  const parallel = async (shift: number) => {
    const got: string[] = new Array(imgs.length);
    await Promise.all(engines.map(async (e, k) => {
      for (let i = 0; i < imgs.length; i++) if ((i + shift) % engines.length === k) got[i] = hash((await e.upscale(imgs[i])).data);
    }));
    return got;
  };
  t.deepEqual(await parallel(0), want, `${engines.length} engines in parallel (3 sharing a runtime, 2 on their own) = one engine`);
  t.deepEqual(await parallel(1), want, "run to run and engine to engine: the same bytes");
  await one.upscale(imgs[0]).then(() => undefined);
  t.equal(await rejection(Promise.all([one.upscale(imgs[0]), one.upscale(imgs[1])])).then((e) => e?.code), "E_ARGUMENT", "one engine refuses overlapping calls (E_ARGUMENT), it never interleaves them");
  for (const e of engines) e.dispose();

  // A worker pool (src/worker): two workers, each image's tiles dealt to whichever is free.
  const pool = await createWorkerPool({ model: "esrgan-slim-x2", size: 2, backend: testBackend(), tile: 24 });
  const viaPool = await Promise.all(imgs.map(async (im) => hash((await pool.upscale(im)).data)));
  t.deepEqual(viaPool, want, "a 2-worker pool (all images at once) = one engine on the main thread");
  pool.dispose();
  one.dispose();
});
