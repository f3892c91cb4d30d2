// ONNX upsamplers beyond nearest/DepthToSpace: Resize/Upsample linear (bilinear, the `upsample_bilinear`
// IR op) and ConvTranspose (lowered to a sub-pixel conv + depth_to_space), each against onnxruntime-web on
// seeded graphs; W8A8 of such a graph runs on integer kernels and tiles exactly; export round trip.
import test from "tape";
import { parseOnnx } from "../src/io/onnx/import.ts";
import { exportOnnx } from "../src/io/onnx/export.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { createUpscaler } from "../src/engine/upscaler-api.ts";
import { loadLowbit, saveLowbit } from "../src/io/lowbit-file.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import type { Graph } from "../src/graph/ir.ts";
import { testRuntime } from "./util/runtime.ts";
import { Rng } from "./util/rng.ts";
import { lowbitRun, maxAbs, maxAbsDiff, OnnxBuilder, ortRun, testInput } from "./util/onnx.ts";

const count = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).length;

function convT(b: OnnxBuilder, x: string, cin: number, cout: number, K: number, S: number, pad: number, opad = 0): string {
  const w = b.rand("wt", [cin, cout, K, K], Math.sqrt(3 / (cin * K * K)) * S);
  const attrs: Record<string, { ints: number[] }> = { kernel_shape: { ints: [K, K] }, strides: { ints: [S, S] }, pads: { ints: [pad, pad, pad, pad] } };
  if (opad) attrs.output_padding = { ints: [opad, opad] };
  return b.op("ConvTranspose", [x, w, b.rand("bt", [cout], 0.1)], attrs);
}

const resizeLinear = (b: OnnxBuilder, x: string, s: number, coord?: string) =>
  b.op("Resize", [x, "", b.init("sc", [4], [1, 1, s, s])], { mode: { s: "linear" }, ...(coord ? { coordinate_transformation_mode: { s: coord } } : {}) });

const GRAPHS: [string, (seed: number) => { bytes: Uint8Array; scale: number }][] = [
  ["Resize linear half_pixel ×2 + ConvTranspose 4×4/2 pad 1", (seed) => {
    const b = new OnnxBuilder(new Rng(seed), 13);
    const u = resizeLinear(b, b.conv("x", 3, 8, 3), 2);
    const t = b.op("Relu", [convT(b, b.op("Relu", [b.conv(u, 8, 8, 3)]), 8, 8, 4, 2, 1)]);
    return { bytes: b.finish(b.conv(t, 8, 3, 3)), scale: 4 };
  }],
  ["Resize linear pytorch_half_pixel ×3 + ConvTranspose 3×3/2 pad 1 output_padding 1", (seed) => {
    const b = new OnnxBuilder(new Rng(seed), 13);
    const u = resizeLinear(b, b.conv("x", 3, 6, 3), 3, "pytorch_half_pixel");
    const t = convT(b, u, 6, 5, 3, 2, 1, 1);
    return { bytes: b.finish(b.conv(t, 5, 3, 3)), scale: 6 };
  }],
  ["Upsample linear (opset 9, asymmetric) ×2 + ConvTranspose 2×2/2", (seed) => {
    const b = new OnnxBuilder(new Rng(seed), 9);
    const u = b.op("Upsample", [b.conv("x", 3, 8, 3), b.init("scales", [4], [1, 1, 2, 2])], { mode: { s: "linear" } });
    const t = convT(b, u, 8, 4, 2, 2, 0);
    return { bytes: b.finish(b.conv(t, 4, 3, 3)), scale: 4 };
  }],
  ["Resize linear asymmetric ×4 at the output (bilinear residual)", (seed) => {
    const b = new OnnxBuilder(new Rng(seed), 13);
    const body = b.op("DepthToSpace", [b.conv(b.op("Relu", [b.conv("x", 3, 16, 3)]), 16, 48, 3)], { blocksize: { i: 4 }, mode: { s: "DCR" } });
    return { bytes: b.finish(b.op("Add", [body, resizeLinear(b, "x", 4, "asymmetric")])), scale: 4 };
  }],
];

test("importOnnx: bilinear Resize / Upsample and ConvTranspose upsamplers match onnxruntime-web", async (t) => {
  const rng = new Rng(31);
  for (const [name, make] of GRAPHS) {
    for (const seed of [1, 2]) {
      const { bytes, scale } = make(seed);
      const g = parseOnnx(bytes);
      const W = 11, H = 9;
      const x = testInput(rng, W, H, [0, 1]);
      const o = await ortRun(bytes, x, W, H, scale);
      const l = await lowbitRun(g, x, W, H);
      const d = maxAbsDiff(o, l), m = maxAbs(o);
      t.ok(g.meta.scale === scale && d <= 2e-5 * Math.max(1, m),
        `${name} seed ${seed}: ×${g.meta.scale}, ${count(g, "upsample_bilinear")} bilinear, ${count(g, "depth_to_space")} depth_to_space; max |ort − lowbit| ${d.toExponential(2)} (|y| ≤ ${m.toFixed(2)})`);
      if (seed === 1) {
        const back = exportOnnx(g);
        const d2 = maxAbsDiff(await ortRun(back, x, W, H, scale), l);
        t.ok(d2 <= 2e-5 * Math.max(1, m), `${name}: exportOnnx round trip in onnxruntime-web (${d2.toExponential(2)})`);
      }
    }
  }
});

test("bilinear + ConvTranspose graph: W8A8 runs on integer codes, tiled = untiled, close to FP32", async (t) => {
  const rt = await testRuntime();
  const g = parseOnnx(GRAPHS[0][1](3).bytes);
  const rng = new Rng(5);
  const img = (w: number, h: number) => ({ data: Uint8Array.from({ length: w * h * 3 }, () => rng.int(0, 255)), width: w, height: h, channels: 3 as const });
  const cal = await calibrate(g, [img(24, 24), img(20, 28)], { runtime: rt });
  const q = quantizeModel(cal, "w8a8");
  t.ok(q.tensors.filter((x, i) => cal.graph.nodes[i].op === "upsample_bilinear").every((x) => x.domain === "q8"), "the bilinear upsample runs on 8-bit codes");
  const input = img(37, 29);
  const whole = await createUpscaler(q, { runtime: rt, tile: 64 });
  const tiled = await createUpscaler(q, { runtime: rt, tile: 12 });
  const fp = await createUpscaler(g, { runtime: rt, tile: 64 });
  try {
    const a = await whole.upscale(input), b = await tiled.upscale(input), f = await fp.upscale(input);
    t.equal(Buffer.compare(Buffer.from(a.data), Buffer.from(b.data)), 0, `12-px tiles (margin ${tiled.margin}) give the whole-image bytes`);
    let mse = 0;
    for (let i = 0; i < f.data.length; i++) mse += (f.data[i] - a.data[i]) ** 2;
    const psnr = 10 * Math.log10((255 * 255) / (mse / f.data.length));
    t.ok(psnr > 35, `W8A8 vs FP32 output: ${psnr.toFixed(1)} dB`);
    const back = await createUpscaler(loadLowbit(saveLowbit(q)) as typeof q, { runtime: rt, tile: 64 });
    const c = await back.upscale(input);
    back.dispose();
    t.equal(Buffer.compare(Buffer.from(a.data), Buffer.from(c.data)), 0, ".lowbit save/load keeps the bilinear op (same bytes)");
  } finally {
    whole.dispose();
    tiled.dispose();
    fp.dispose();
  }
});

test("importOnnx: upsamplers lowbit cannot express fail with E_UNSUPPORTED_LAYER naming them", (t) => {
  const throws = (bytes: () => Uint8Array, re: RegExp, what: string) => {
    try {
      parseOnnx(bytes());
      t.fail(`${what}: should throw`);
    } catch (e) {
      t.ok(e instanceof LowbitError && e.code === "E_UNSUPPORTED_LAYER" && re.test(e.message), `${what}: ${(e as Error).message}`);
    }
  };
  const one = (f: (b: OnnxBuilder, x: string) => string, opset = 13) => () => {
    const b = new OnnxBuilder(new Rng(1), opset);
    return b.finish(b.conv(f(b, b.conv("x", 3, 4, 3)), 4, 3, 3));
  };
  throws(one((b, x) => resizeLinear(b, x, 2, "align_corners")), /\(Resize\).*align_corners/, "bilinear align_corners");
  throws(one((b, x) => b.op("Resize", [x, "", b.init("sc", [4], [1, 1, 2, 2])], { mode: { s: "cubic" } })), /\(Resize\).*mode=cubic/, "bicubic Resize");
  throws(one((b, x) => convT(b, x, 4, 4, 4, 2, 0)), /\(ConvTranspose\).*not exactly 2×/, "ConvTranspose 4×4/2 without padding (2·in + 2)");
  throws(one((b, x) => b.op("ConvTranspose", [x, b.rand("w", [4, 2, 3, 3], 0.1)], { strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] }, output_padding: { ints: [1, 1] }, group: { i: 2 } })), /group=2/, "grouped ConvTranspose");
  t.end();
});

test("TF.js UpSampling2D 'bilinear' imports as asymmetric bilinear and matches tfjs", async (t) => {
  const tf = await import("@tensorflow/tfjs");
  await tf.setBackend("cpu");
  const { loadModel } = await import("../src/models/registry.ts");
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [null, null, 3] as unknown as number[], filters: 6, kernelSize: 3, padding: "same", activation: "relu", kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }), biasInitializer: "ones" }));
  m.add(tf.layers.upSampling2d({ size: [3, 3], interpolation: "bilinear" }));
  m.add(tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: "same", kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }));
  let saved: { modelJson: object; weights: Uint8Array } | null = null;
  await m.save(tf.io.withSaveHandler(async (a) => {
    saved = { modelJson: { format: "layers-model", modelTopology: a.modelTopology, weightsManifest: [{ paths: ["w.bin"], weights: a.weightSpecs }] }, weights: new Uint8Array(a.weightData as ArrayBuffer) };
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
  }));
  const g = await loadModel(saved!, { inputRange: [0, 1] });
  t.ok(g.nodes.some((n) => n.op === "upsample_bilinear" && n.mode === "asymmetric" && n.factor === 3), "UpSampling2D bilinear → upsample_bilinear ×3 asymmetric");
  const W = 10, H = 7;
  const x = testInput(new Rng(8), W, H, [0, 1]);
  const want = (m.predict(tf.tensor4d(x, [1, H, W, 3])) as import("@tensorflow/tfjs").Tensor).dataSync() as Float32Array;
  const got = await lowbitRun(g, x, W, H);
  const d = maxAbsDiff(Float32Array.from(want), got);
  t.ok(d <= 2e-5 * Math.max(1, maxAbs(Float32Array.from(want))), `lowbit = tfjs within ${d.toExponential(2)}`);
  m.dispose();
});
