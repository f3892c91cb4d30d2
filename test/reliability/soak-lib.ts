// The soak loop shared by soak.test.ts (CI length) and scripts/fuzz.ts (1,000 runs).
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createHash } from "node:crypto";
import type { Runtime } from "../../src/runtime/runtime.ts";
import { createUpscaler } from "../../src/engine/upscaler-api.ts";
import { loadModel } from "../../src/models/registry.ts";
import { calibrate } from "../../src/quant/calibrate.ts";
import { quantizeModel } from "../../src/quant/quantize-model.ts";
import { Rng } from "../util/rng.ts";
import { smallImage } from "./fixtures.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
export const hash = (b: Uint8Array) => createHash("sha256").update(b).digest("hex").slice(0, 16);

export interface SoakResult {
  runs: number;
  wasmBytes: [number, number];
  heapMiB: [number, number];
  arenaUsed: [number, number];
  identical: boolean;
  ms: number;
}

/** N upscales of one image on one engine; memory measured after warm-up and at the end (after GC). */
export async function soak(rt: Runtime, n: number, warm = 20): Promise<SoakResult> {
  const g = await loadModel("esrgan-slim-x2");
  const calib = await calibrate(g, [smallImage(new Rng(1), 24, 24, 3)], { runtime: rt });
  const models = [g, quantizeModel(calib, "w8a8")];
  const ups = await Promise.all(models.map((m) => createUpscaler(m, { runtime: rt, tile: 16 })));
  const img = smallImage(new Rng(2), 24, 20, 4); // RGBA: alpha path too, 2×2 tiles
  const want = await Promise.all(ups.map(async (u) => hash((await u.upscale(img)).data)));
  let identical = true;
  let w0 = 0, h0 = 0, a0 = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const k = i % ups.length;
    const out = await ups[k].upscale(img);
    if (hash(out.data) !== want[k]) identical = false;
    if (i === warm) {
      gc();
      [w0, h0, a0] = [rt.arena.capacity, process.memoryUsage().heapUsed, rt.arena.used];
    }
  }
  const ms = performance.now() - t0;
  gc();
  const res: SoakResult = {
    runs: n, identical, ms,
    wasmBytes: [w0, rt.arena.capacity], heapMiB: [h0 / 2 ** 20, process.memoryUsage().heapUsed / 2 ** 20], arenaUsed: [a0, rt.arena.used],
  };
  for (const u of ups) u.dispose();
  return res;
}

