// Worker and pool (src/worker): a model upscaled in one worker, in a 2-worker pool and in-process
// gives the same bytes (FP32, a W8A8 .lowbit, RGBA, the pool's own grid and the in-process grid);
// progress and AbortSignal cross the boundary; worker errors arrive as LowbitError with the same
// code; a worker whose thread dies fails its call with E_WORKER and the pool stays usable; the
// main thread keeps running timers during a long upscale. Also the missing-SIMD error.
import test from "tape";
import { Worker } from "node:worker_threads";
import { createUpscaler, type CompilableModel } from "../src/engine/upscaler-api.ts";
import { loadModel } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { saveLowbit } from "../src/io/lowbit-file.ts";
import { loadAnyModel } from "../src/io/load-any.ts";
import { createRuntime } from "../src/runtime/runtime.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import { createUpscalerWorker, createWorkerPool, planPoolTiles, type WorkerPool } from "../src/worker/pool.ts";
import { toImageData, toRgb } from "../src/engine/browser.ts";
import type { ImageLike } from "../src/engine/image.ts";
import { testBackend, testRuntime } from "./util/runtime.ts";
import { Rng } from "./util/rng.ts";

const backend = testBackend();

/** A smooth random image (a few gradients plus noise) so the networks see image-like input. */
function image(r: Rng, w: number, h: number, c: 3 | 4): ImageLike & { data: Uint8Array } {
  const d = new Uint8Array(w * h * c);
  const f = [r.uniform(0.02, 0.2), r.uniform(0.02, 0.2), r.uniform(0, 6)];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * c;
      for (let k = 0; k < 3; k++) d[i + k] = Math.max(0, Math.min(255, Math.round(128 + 90 * Math.sin(f[0] * x * (k + 1) + f[1] * y + f[2]) + r.int(-20, 20))));
      if (c === 4) d[i + 3] = r.int(0, 255);
    }
  }
  return { data: d, width: w, height: h, channels: c };
}

async function rejection(p: Promise<unknown>): Promise<LowbitError | null> {
  try {
    await p;
    return null;
  } catch (e) {
    if (e instanceof LowbitError) return e;
    throw e;
  }
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

async function inProcess(model: CompilableModel | string, img: ImageLike, tile?: number): Promise<Uint8Array> {
  const up = await createUpscaler(model, { runtime: await testRuntime(), tile });
  const r = await up.upscale(img);
  up.dispose();
  return r.data;
}

test("planPoolTiles: at least one tile per worker, cores cover the image once, cut along the longer side", (t) => {
  const r = new Rng(3);
  for (let i = 0; i < 300; i++) {
    const W = r.int(1, 300), H = r.int(1, 300), tile = r.int(1, 400), m = r.int(0, 20), n = r.int(1, 8);
    const g = planPoolTiles(W, H, tile, m, n);
    const cover = new Uint8Array(W * H);
    for (const x of g.tiles) {
      for (let y = x.y; y < x.y + x.h; y++) for (let k = x.x; k < x.x + x.w; k++) cover[y * W + k]++;
      if (x.w > tile || x.h > tile || x.rx !== Math.max(0, x.x - m) || x.rw !== Math.min(W, x.x + x.w + m) - x.rx) {
        t.fail(`${W}×${H} tile ${tile} m ${m}: bad tile ${JSON.stringify(x)}`);
        return t.end();
      }
    }
    if (!cover.every((c) => c === 1)) {
      t.fail(`${W}×${H} tile ${tile} n ${n}: cores do not cover the image exactly once`);
      return t.end();
    }
    if (g.tiles.length < Math.min(n, W * H)) {
      t.fail(`${W}×${H} n ${n}: only ${g.tiles.length} tiles`);
      return t.end();
    }
  }
  const two = planPoolTiles(256, 256, 1000, 18, 2);
  t.deepEqual(two.tiles.map((x) => [x.x, x.y, x.w, x.h]), [[0, 0, 256, 128], [0, 128, 256, 128]], "256² for 2 workers: two 256×128 strips");
  t.pass("300 random grids: cores cover every pixel once, none larger than the tile, regions are core+margin clipped");
  t.end();
});

test("worker pool = one worker = in-process, bit for bit: FP32 esrgan-slim-x2 (RGB and RGBA, pool grid and in-process grid)", async (t) => {
  const r = new Rng(11);
  const rgb = image(r, 61, 47, 3);
  const rgba = image(r, 40, 33, 4);
  const pool = await createWorkerPool({ model: "esrgan-slim-x2", size: 2, backend });
  t.equal(pool.info.backend.backend, backend, `workers run the ${backend} build`);
  t.ok(pool.info.exactTiling, `FP32 rdn tiles exactly (margin ${pool.info.margin})`);
  const one = await createUpscalerWorker({ model: "esrgan-slim-x2", backend });
  for (const [name, img] of [["RGB 61×47", rgb], ["RGBA 40×33", rgba]] as const) {
    const want = await inProcess("esrgan-slim-x2", img);
    const a = await pool.upscale(img);
    t.equal(a.channels, img.channels, `${name}: channels kept`);
    t.ok(same(a.data, want), `${name}: 2-worker pool (its own ${pool.size}-tile grid) = in-process`);
    t.ok(same((await pool.upscale(img, { tile: 16 })).data, await inProcess("esrgan-slim-x2", img, 16)), `${name}: pool with tile 16 = in-process with tile 16`);
    t.ok(same((await one.upscale(img)).data, want), `${name}: UpscalerWorker.upscale = in-process`);
  }
  // A margin below the receptive radius does not tile exactly: the pool must use the in-process grid.
  const inexact = await createWorkerPool({ model: "esrgan-slim-x2", size: 2, backend, margin: 3, tile: 20 });
  t.notOk(inexact.info.exactTiling, "margin 3 < radius: the workers report inexact tiling");
  const up = await createUpscaler("esrgan-slim-x2", { runtime: await testRuntime(), margin: 3, tile: 20 });
  const wantInexact = (await up.upscale(rgb)).data;
  up.dispose();
  const whole = await inProcess("esrgan-slim-x2", rgb);
  t.notOk(same(wantInexact, whole), "(margin 3 really changes the output)");
  t.ok(same((await inexact.upscale(rgb)).data, wantInexact), "inexact model: the pool keeps the in-process 20² grid and margin 3, bit for bit");
  inexact.dispose();
  // Transfer moves the caller's buffer to the worker.
  const moved = image(r, 20, 20, 3);
  const want = await inProcess("esrgan-slim-x2", moved);
  const p = one.upscale(moved, { transfer: true });
  t.equal(moved.data.byteLength, 0, "transfer: true detaches the caller's input buffer");
  t.ok(same((await p).data, want), "…and the result is the same");
  one.dispose();
  pool.dispose();
});

test("worker pool with a W8A8 .lowbit (integer model): bit-identical to in-process, via bytes", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-slim-x2");
  const r = new Rng(5);
  const calib = [image(r, 48, 40, 3), image(r, 40, 48, 3)];
  const bytes = saveLowbit(quantizeModel(await calibrate(g, calib, { runtime: rt }), "w8a8"));
  const img = image(r, 70, 52, 4);
  const want = await inProcess(await loadAnyModel(bytes), img);
  const pool = await createWorkerPool({ model: bytes, size: 2, backend });
  t.match(pool.info.config, /w8a8/, `workers run ${pool.info.config}`);
  t.ok(same((await pool.upscale(img)).data, want), "2-worker pool = in-process (RGBA 70×52)");
  t.ok(same((await pool.upscale(img, { tile: 20 })).data, await inProcess(await loadAnyModel(bytes), img, 20)), "tile 20: pool = in-process");
  // Calls may overlap: both finish with their own bytes.
  const [x, y] = await Promise.all([pool.upscale(img), pool.upscale(img, { tile: 20 })]);
  t.ok(same(x.data, want) && y.data.length === want.length, "two overlapping calls on one pool both complete correctly");
  pool.dispose();
});

test("worker pool halo exchange: full-width strips swap halo rows instead of recomputing margins — = in-process, FP32 and W8A8, 2 and 3 workers; abort wakes every strip", async (t) => {
  const r = new Rng(21);
  const g = await loadModel("esrgan-slim-x2");
  const wq = await loadAnyModel(saveLowbit(quantizeModel(await calibrate(g, [image(r, 48, 40, 3)], { runtime: await testRuntime() }), "w8a8")));
  const img = image(r, 61, 47, 3);
  for (const [name, model, ref] of [["FP32", "esrgan-slim-x2", "esrgan-slim-x2"], ["W8A8", saveLowbit(wq as never), wq]] as const) {
    const want = await inProcess(ref as CompilableModel | string, img);
    for (const size of [2, 3]) {
      const pool = await createWorkerPool({ model, size, backend });
      t.ok(pool.info.halo && pool.info.halo.margin >= 1 && pool.info.halo.bytesPerColumn > 0, `${name}: workers report halo sizes ${JSON.stringify(pool.info.halo)}`);
      const a = await pool.upscale(img);
      const b = await pool.upscale(img, { haloExchange: false });
      t.ok(same(a.data, want), `${name}, ${size} workers: ${size} exchanging strips of 61×47 = in-process`);
      t.ok(same(b.data, want), `${name}, ${size} workers: haloExchange false (margin grid, trimmed rows) = in-process`);
      if (size === 2) {
        const [x, y] = await Promise.all([pool.upscale(img), pool.upscale(img), pool.upscale(img, { tile: 20 })]);
        t.ok(same(x.data, want) && same(y.data, want), `${name}: overlapping calls (strip gangs queue behind each other) both correct`);
        const ac = new AbortController();
        const e = await rejection(pool.upscale(image(r, 200, 160, 3), { signal: ac.signal, onProgress: (p) => { if (p.fraction > 0.1) ac.abort(); } }));
        t.equal(e?.code, "E_ABORTED", `${name}: abort while strips exchange → E_ABORTED (no strip left waiting)`);
        t.ok(same((await pool.upscale(img)).data, want), `${name}: the next run after the abort is correct`);
      }
      pool.dispose();
    }
  }
  // A model that does not tile exactly (margin 3 < radius) but whose in-process run takes the image as one tile:
  // exchanging strips still reproduce that whole-image output exactly.
  const inexact = await createWorkerPool({ model: "esrgan-slim-x2", size: 2, backend, margin: 3 });
  t.ok(!inexact.info.exactTiling && inexact.info.halo, "margin 3: inexact tiling, halo exchange still possible");
  const up = await createUpscaler("esrgan-slim-x2", { runtime: await testRuntime(), margin: 3 });
  const wantWhole = (await up.upscale(img)).data;
  up.dispose();
  t.ok(same((await inexact.upscale(img)).data, wantWhole), "inexact model, image in one in-process tile: 2 exchanging strips = in-process");
  t.ok(same((await inexact.upscale(img, { tile: 20 })).data, await (async () => {
    const u = await createUpscaler("esrgan-slim-x2", { runtime: await testRuntime(), margin: 3, tile: 20 });
    const d = (await u.upscale(img)).data;
    u.dispose();
    return d;
  })()), "…and with several in-process tiles (tile 20) the pool keeps that grid, bit for bit");
  inexact.dispose();
});

test("worker: progress events and AbortSignal cross the boundary; the pool stays usable after an abort", async (t) => {
  const r = new Rng(8);
  const img = image(r, 120, 96, 3);
  const pool = await createWorkerPool({ model: "esrgan-medium-x2", size: 2, backend });
  const want = await inProcess("esrgan-medium-x2", img);
  const fr: number[] = [];
  const out = await pool.upscale(img, { onProgress: (p) => fr.push(p.fraction) });
  t.ok(same(out.data, want), "esrgan-medium-x2 120×96: pool = in-process");
  t.ok(fr.length >= 3 && fr[fr.length - 1] === 1 && fr.every((f) => f >= 0 && f <= 1), `${fr.length} progress events in [0, 1], the last is 1`);
  t.ok(fr.some((f) => f > 0 && f < 1), "events inside tiles (fractional progress from the workers)");
  for (const at of [0.05, 0.5]) {
    const ac = new AbortController();
    const reason = new Error("user cancelled");
    const e = await rejection(pool.upscale(img, { signal: ac.signal, onProgress: (p) => { if (p.fraction >= at) ac.abort(reason); } }));
    t.equal(e?.code, "E_ABORTED", `abort at ${at * 100} %: E_ABORTED`);
    t.equal(e?.cause, reason, "…carrying the signal's reason");
  }
  const already = new AbortController();
  already.abort();
  t.equal((await rejection(pool.upscale(img, { signal: already.signal })))?.code, "E_ABORTED", "an already-aborted signal rejects at once");
  t.ok(same((await pool.upscale(img)).data, want), "the next upscale after the aborts: same bytes");
  const one = await createUpscalerWorker({ model: "esrgan-medium-x2", backend });
  const ac = new AbortController();
  const e = await rejection(one.upscale(img, { signal: ac.signal, onProgress: (p) => { if (p.fraction > 0.2) ac.abort(); } }));
  t.equal(e?.code, "E_ABORTED", "UpscalerWorker: abort mid-run → E_ABORTED");
  t.ok(same((await one.upscale(img)).data, want), "UpscalerWorker: usable after the abort, same bytes");
  one.dispose();
  pool.dispose();
});

test("worker: the main thread keeps running during a long pool upscale (timer gaps stay short)", async (t) => {
  const pool = await createWorkerPool({ model: "esrgan-medium-x2", size: 2, backend });
  const img = image(new Rng(2), 192, 160, 3);
  let last = performance.now(), maxGap = 0, ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
  }, 5);
  const t0 = performance.now();
  await pool.upscale(img);
  const ms = performance.now() - t0;
  clearInterval(timer);
  t.ok(maxGap < Math.max(100, ms / 10), `upscale took ${ms.toFixed(0)} ms; ${ticks} timer ticks on the main thread, longest gap ${maxGap.toFixed(1)} ms`);
  pool.dispose();
});

test("worker errors arrive as LowbitError with the worker's code", async (t) => {
  const e1 = await rejection(createUpscalerWorker({ model: "no-such-model", backend }));
  t.equal(e1?.code, "E_ARGUMENT", `unknown model name → ${e1?.code}: ${e1?.message.slice(0, 70)}…`);
  t.ok(e1 && (e1.cause as Error)?.stack?.includes("registry"), "the worker's stack is kept as the cause");
  const bad = new Uint8Array(64).fill(7);
  const e2 = await rejection(createWorkerPool({ model: bad, size: 2, backend }));
  t.equal(e2?.code, "E_MODEL_FORMAT", `corrupt .lowbit bytes → ${e2?.code}`);
  const e3 = await rejection(createUpscalerWorker({ model: "esrgan-slim-x2", backend, maxMemoryBytes: 0 }).then((w) => w.dispose()));
  t.equal(e3?.code, "E_ARGUMENT", `maxMemoryBytes 0 → ${e3?.code} (checked by createRuntime inside the worker)`);
  const w = await createUpscalerWorker({ model: "esrgan-slim-x2", backend, maxMemoryBytes: 64 << 20, tile: 2000 });
  const e4 = await rejection(w.upscale(image(new Rng(1), 700, 600, 3)));
  t.equal(e4?.code, "E_MEMORY", `a tile over the worker's memory cap → ${e4?.code} from inside the worker`);
  const e5 = await rejection(w.upscale({ data: new Uint8Array(10), width: 3, height: 3 }));
  t.equal(e5?.code, "E_SHAPE", "a malformed image is refused before posting (E_SHAPE)");
  w.dispose();
  t.equal((await rejection(w.upscale(image(new Rng(1), 8, 8, 3))))?.code, "E_NOT_INITIALIZED", "a disposed worker rejects with E_NOT_INITIALIZED");
});

test("worker crash: the call fails with E_WORKER, the pool replaces the worker and stays correct", async (t) => {
  const pool: WorkerPool = await createWorkerPool({
    model: "esrgan-slim-x2", size: 2, backend,
    createWorker: () => new Worker(new URL("./worker-crash-entry.mjs", import.meta.url)),
  });
  const r = new Rng(21);
  const ok = image(r, 50, 30, 3);
  const want = await inProcess("esrgan-slim-x2", ok);
  // 13 px wide with tile 13 and margin 0: every region is 13 wide → the worker thread exits.
  const e = await rejection(pool.upscale(image(r, 13, 40, 3), { tile: 13, margin: 0 }));
  t.equal(e?.code, "E_WORKER", `a worker thread died mid-call → ${e?.code}: ${e?.message}`);
  for (let i = 0; i < 50 && pool.alive < 2; i++) await new Promise((res) => setTimeout(res, 100));
  t.equal(pool.alive, 2, `the pool replaced it (${pool.restarts} restart(s)), ${pool.alive} workers alive`);
  t.ok(same((await pool.upscale(ok)).data, want), "the next upscale on the pool: correct bytes");
  pool.dispose();
});

test("browser helpers in Node: toImageData/toRgb round trip; no SIMD → E_WASM_UNSUPPORTED before any instantiation", async (t) => {
  const img = image(new Rng(4), 9, 7, 3);
  const rgba = toImageData(img);
  t.equal(rgba.data.length, 9 * 7 * 4, "RGB → RGBA");
  t.ok(rgba.data.every((v, i) => (i % 4 === 3 ? v === 255 : v === img.data[(i >> 2) * 3 + (i % 4)])), "colour kept, alpha 255");
  t.ok(same(toRgb(rgba).data, img.data), "RGBA → RGB gives the input back");
  t.equal((() => { try { toImageData({ data: new Uint8Array(5), width: 2, height: 2 }); } catch (e) { return (e as LowbitError).code; } })(), "E_SHAPE", "bad sizes → E_SHAPE");
  const validate = WebAssembly.validate;
  let e: LowbitError | null;
  try {
    (WebAssembly as { validate: unknown }).validate = () => false;
    e = await rejection(createRuntime({ backend: "simd" }));
  } finally {
    (WebAssembly as { validate: unknown }).validate = validate;
  }
  t.equal(e?.code, "E_WASM_UNSUPPORTED", `WebAssembly.validate stubbed to false: ${e?.message}`);
  t.ok((await createRuntime({ backend })).info.backend === backend, "restored: runtimes start again");
});
