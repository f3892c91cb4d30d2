// Parity of lowbit's FP32 engine with @tensorflow/tfjs (wasm backend, the reference; devDependency only)
// on every bundled model, on a crop of a real image from the shared eval set.
import test from "tape";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createUpscaler } from "../src/engine/upscaler-api.ts";
import { listModels } from "../src/models/registry.ts";
import { decodeImage } from "../src/io/image.ts";
import { psnrY } from "../src/metrics/psnr.ts";
import { loadTfjsReference } from "./util/tfjs-reference.ts";
import { evalDir } from "./util/eval-data.ts";
import { testRuntime } from "./util/runtime.ts";

const toU8 = (v: number, lo: number, hi: number) => Math.floor((Math.min(hi, Math.max(lo, v)) - lo) * (255 / (hi - lo)) + 0.5);

test("parity: lowbit FP32 = tfjs within 0.05 (0–255 scale) on every bundled model, real image crop", async (t) => {
  const rt = await testRuntime();
  for (const info of listModels()) {
    const s = info.scale;
    const side = info.arch === "rrdn" ? 20 : 32;
    const lr = decodeImage(readFileSync(join(evalDir(), `lr_x${Math.min(s, 4)}`, "butterfly.png")));
    const hr = decodeImage(readFileSync(join(evalDir(), "hr", "butterfly.png")));
    const x0 = 24, y0 = 16;
    const [lo, hi] = info.inputRange;
    const x = new Float32Array(side * side * 3);
    for (let y = 0; y < side; y++) for (let xx = 0; xx < side; xx++) for (let c = 0; c < 3; c++) {
      x[(y * side + xx) * 3 + c] = lo + (hi - lo) * lr.data[((y0 + y) * lr.width + x0 + xx) * lr.channels + c] / 255;
    }
    const up = await createUpscaler(info.name, { runtime: rt });
    const ours = up.runFloat(x, side, side);
    up.dispose();
    const ref = await loadTfjsReference(info.name, { backend: "wasm" });
    const theirs = ref.predict(x, side, side).data;
    ref.dispose();
    const k = 255 / (info.outputRange[1] - info.outputRange[0]);
    let maxd = 0;
    for (let i = 0; i < ours.length; i++) maxd = Math.max(maxd, Math.abs(ours[i] - theirs[i]) * k);
    t.ok(ours.length === theirs.length && maxd < 0.05, `${info.name}: max |lowbit − tfjs| = ${maxd.toExponential(2)} on the 0–255 scale`);
    if (s <= 4) {
      // PSNR-Y against the HR crop (meaningful only where LR and HR align: lr_xS for S ≤ 4)
      const S = side * s;
      const a = new Uint8Array(S * S * 3), b = new Uint8Array(S * S * 3), h = new Uint8Array(S * S * 3);
      for (let i = 0; i < a.length; i++) {
        a[i] = toU8(ours[i], info.outputRange[0], info.outputRange[1]);
        b[i] = toU8(theirs[i], info.outputRange[0], info.outputRange[1]);
      }
      for (let y = 0; y < S; y++) for (let xx = 0; xx < S; xx++) for (let c = 0; c < 3; c++) {
        h[(y * S + xx) * 3 + c] = hr.data[((y0 * s + y) * hr.width + x0 * s + xx) * hr.channels + c];
      }
      const pa = psnrY({ data: a, width: S, height: S, channels: 3 }, { data: h, width: S, height: S, channels: 3 }, s);
      const pb = psnrY({ data: b, width: S, height: S, channels: 3 }, { data: h, width: S, height: S, channels: 3 }, s);
      t.ok(Math.abs(pa - pb) < 0.01, `${info.name}: PSNR-Y vs HR ${pa.toFixed(4)} (lowbit) vs ${pb.toFixed(4)} (tfjs)`);
    }
  }
});
