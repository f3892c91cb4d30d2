// FP32 vs W8A8 (static, percentile) wall time of the ncnn models on one 128×128 LR tile, same process,
// interleaved runs, median of N. Run: "$(which node)" --import tsx scripts/ncnn-speed.ts [N] [model…]
// Calibration: 96² crops of two eval LR images (speed does not depend on the ranges).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { init } from "../src/runtime/runtime.ts";
import { loadModel, listNcnnModels } from "../src/models/registry.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { decodeImage } from "../src/io/image.ts";

const N = Number(process.argv[2] ?? 5);
const names = process.argv.length > 3 ? process.argv.slice(3) : listNcnnModels().filter((m) => !m.name.includes("noise")).map((m) => m.name);
const evalDir = process.env.LOWBIT_EVAL_DIR ?? "/work/shared/data/eval";
const rt = await init();
const S = 128;
const img = decodeImage(readFileSync(join(evalDir, "lr_x2", "butterfly.png")));
const x = new Float32Array(S * S * 3);
for (let y = 0; y < S; y++) for (let xx = 0; xx < S; xx++) for (let c = 0; c < 3; c++) x[(y * S + xx) * 3 + c] = img.data[((y % img.height) * img.width + (xx % img.width)) * img.channels + c] / 255;
const median = (a: number[]) => a.sort((p, q) => p - q)[a.length >> 1];
console.log(`| model | MMAC/LR px | FP32 ms | W8A8 ms | speed-up |\n|---|---:|---:|---:|---:|`);
for (const name of names) {
  const g = await loadModel(name);
  const calib = ["baboon", "building"].map((im) => {
    const d = decodeImage(readFileSync(join(evalDir, "lr_x4", `${im}.png`)));
    const data = new Uint8Array(96 * 96 * 3);
    for (let y = 0; y < 96; y++) for (let xx = 0; xx < 96; xx++) for (let c = 0; c < 3; c++) data[(y * 96 + xx) * 3 + c] = d.data[(y * d.width + xx) * d.channels + c];
    return { data, width: 96, height: 96, channels: 3 };
  });
  const qm = quantizeModel(await calibrate(g, calib, { runtime: rt }), { bits: "w8a8", method: "percentile" });
  const f = new F32Plan(rt, g, S, S), q = qm.compile(rt, S, S);
  f.run(x, S, S);
  q.run(x, S, S);
  const tf: number[] = [], tq: number[] = [];
  for (let i = 0; i < N; i++) {
    let t = performance.now();
    f.run(x, S, S);
    tf.push(performance.now() - t);
    t = performance.now();
    q.run(x, S, S);
    tq.push(performance.now() - t);
  }
  const mf = median(tf), mq = median(tq);
  console.log(`| ${name} | ${(f.info.macsPerPixel / 1e6).toFixed(2)} | ${mf.toFixed(0)} | ${mq.toFixed(0)} | ${(mf / mq).toFixed(2)}× |`);
  f.dispose();
  q.dispose();
}
