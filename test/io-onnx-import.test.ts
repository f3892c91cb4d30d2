// importOnnx: EDSR-baseline-, RDN- and SRResNet-shaped ONNX graphs with seeded weights, written in the
// tests with lowbit's protobuf writer (NCHW tensors, independent of exportOnnx), run in onnxruntime-web
// and in lowbit; unsupported ops named in the error; truncated / corrupted files → LowbitError.
import test from "tape";
import { parseOnnx, importOnnx, importOnnxDetailed, nearestIsFloor } from "../src/io/onnx/import.ts";
import { exportOnnx } from "../src/io/onnx/export.ts";
import { DT, encodeModel, type AttrValue } from "../src/io/onnx/onnx-schema.ts";
import { ProtoWriter } from "../src/io/onnx/protobuf.ts";
import { loadModel } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { QuantizedModel, quantizeModel } from "../src/quant/quantize-model.ts";
import { onnxToModel } from "../src/io/onnx/quantized.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import type { Graph } from "../src/graph/ir.ts";
import { evalCrop } from "./util/eval-data.ts";
import { testRuntime } from "./util/runtime.ts";
import { Rng } from "./util/rng.ts";
import { lowbitRun, maxAbs, maxAbsDiff, OnnxBuilder, ortRun, testInput } from "./util/onnx.ts";

function throwsCode(t: test.Test, f: () => unknown, code: string, re: RegExp | null, label: string): void {
  try {
    f();
    t.fail(`${label}: should throw ${code}`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code && (re === null || re.test(e.message)), `${label}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

const count = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).length;

/**
 * lowbit's output on ONNX-side values: the ONNX input x ∈ onnxIn ↔ pixel p ↔ lowbit input in
 * meta.inputRange; lowbit's output in meta.outputRange ↔ pixel ↔ the ONNX output in onnxOut.
 */
async function lowbitRunMapped(g: Graph, x: Float32Array, w: number, h: number, clip = false, onnxIn: [number, number] = [0, 1], onnxOut: [number, number] = [0, 1]): Promise<Float32Array> {
  const [a, b] = g.meta.inputRange, [c, d] = g.meta.outputRange;
  const xi = x.map((v) => a + ((v - onnxIn[0]) / (onnxIn[1] - onnxIn[0])) * (b - a));
  // A model ending in a Clip: lowbit applies it as its output-range clip (the engine clips there).
  const cl = (v: number) => (clip ? Math.min(d, Math.max(c, v)) : v);
  return (await lowbitRun(g, xi, w, h)).map((v) => onnxOut[0] + ((cl(v) - c) / (d - c)) * (onnxOut[1] - onnxOut[0]));
}

/** EDSR-baseline ×2: rgb_range 255 scaling + mean shift (Sub), res blocks with res_scale Mul, PixelShuffle (CRD), add_mean, /255, Clip. */
function edsr(seed: number): { bytes: Uint8Array; scale: number } {
  const b = new OnnxBuilder(new Rng(seed), 13);
  const F = 16;
  const mean = [0.4488, 0.4371, 0.404].map((m) => m * 255);
  let s = b.op("Mul", ["x", b.scalar(255)]);
  s = b.op("Sub", [s, b.init("mean", [1, 3, 1, 1], mean)]);
  const h = b.conv(s, 3, F, 3, 3, { gain: 1 / 64 });
  let r = h;
  for (let i = 0; i < 3; i++) {
    let t = b.op("Relu", [b.conv(r, F, F, 3)]);
    t = b.op("Mul", [b.conv(t, F, F, 3), b.scalar(0.1)]);
    r = b.op("Add", [t, r]);
  }
  r = b.op("Add", [b.conv(r, F, F, 3), h]);
  const u = b.op("DepthToSpace", [b.conv(r, F, 4 * F, 3)], { blocksize: { i: 2 }, mode: { s: "CRD" } });
  let y = b.conv(u, F, 3, 3, 3, { gain: 40 });
  y = b.op("Add", [y, b.init("mean", [1, 3, 1, 1], mean)]);
  y = b.op("Div", [y, b.scalar(255)]);
  y = b.op("Clip", [y, b.scalar(0), b.scalar(1)]);
  return { bytes: b.finish(y), scale: 2 };
}

/** RDN ×2: dense blocks (LeakyReLU convs + Concat), 1×1 local fusion, global fusion Concat, Resize nearest (opset-11 defaults) + conv. */
function rdn(seed: number): { bytes: Uint8Array; scale: number } {
  const b = new OnnxBuilder(new Rng(seed), 11);
  const G0 = 16, G = 8, D = 2, C = 3;
  const f1 = b.conv("x", 3, G0, 3);
  const f0 = b.conv(f1, G0, G0, 3);
  let cur = f0;
  const outs: string[] = [];
  for (let d = 0; d < D; d++) {
    let feats = cur, cin = G0;
    for (let c = 0; c < C; c++) {
      const t = b.op("LeakyRelu", [b.conv(feats, cin, G, 3)], { alpha: { f: 0.2 } });
      feats = b.op("Concat", [feats, t], { axis: { i: 1 } });
      cin += G;
    }
    cur = b.op("Add", [b.conv(feats, cin, G0, 1), cur]);
    outs.push(cur);
  }
  let g = b.conv(b.op("Concat", outs, { axis: { i: -3 } }), D * G0, G0, 1);
  g = b.op("Add", [b.conv(g, G0, G0, 3), f1]);
  const roi = b.init("roi", [0], []);
  const u = b.op("Resize", [g, roi, b.init("scales", [4], [1, 1, 2, 2])], { mode: { s: "nearest" } });
  const y = b.conv(b.op("Relu", [b.conv(u, G0, G0, 3)]), G0, 3, 3);
  return { bytes: b.finish(y), scale: 2 };
}

/** SRResNet ×4 (opset 9): 9×9 head + PReLU (one slope), res blocks conv-BN-ReLU-conv-BN + skip, conv-BN + long skip, 2× (conv, DepthToSpace, ReLU), 9×9 tail. */
function srresnet(seed: number): { bytes: Uint8Array; scale: number } {
  const rng = new Rng(seed);
  const b = new OnnxBuilder(rng, 9);
  const F = 16;
  const bn = (x: string) => {
    const v = (lo: number, hi: number) => Array.from({ length: F }, () => lo + (hi - lo) * rng.next());
    return b.op("BatchNormalization", [x, b.init("g", [F], v(0.5, 1.5)), b.init("be", [F], v(-0.2, 0.2)), b.init("m", [F], v(-0.3, 0.3)), b.init("v", [F], v(0.5, 2))], { epsilon: { f: 1e-5 } });
  };
  const h = b.op("PRelu", [b.conv("x", 3, F, 9), b.init("slope", [1], [0.25])]); // nn.PReLU(): one shared slope
  let r = h;
  for (let i = 0; i < 2; i++) {
    const t = bn(b.conv(b.op("Relu", [bn(b.conv(r, F, F, 3))]), F, F, 3));
    r = b.op("Add", [r, t]);
  }
  r = b.op("Add", [bn(b.conv(r, F, F, 3)), h]);
  for (let i = 0; i < 2; i++) r = b.op("Relu", [b.op("DepthToSpace", [b.conv(r, F, 4 * F, 3)], { blocksize: { i: 2 } })]);
  const y = b.op("Tanh", [b.conv(r, F, 3, 9)]);
  return { bytes: b.finish(y), scale: 4 };
}

/** Odd ops (opset 9): Upsample, a 1×3 kernel, x·Sigmoid(x), Clip(0,6) by attributes, BN after an add, Sub of two tensors, HardSigmoid. */
function oddOps(seed: number): { bytes: Uint8Array; scale: number } {
  const b = new OnnxBuilder(new Rng(seed), 9);
  const a = b.conv("x", 3, 8, 1, 3);
  const sw = b.op("Mul", [a, b.op("Sigmoid", [a])]);
  const c = b.op("Clip", [b.conv(sw, 8, 8, 3, 1)], { min: { f: 0 }, max: { f: 6 } });
  const d = b.op("Sub", [b.conv(c, 8, 8, 3), a]);
  const bnx = b.op("BatchNormalization", [d, b.init("g", [8], Array(8).fill(0.8)), b.init("be", [8], Array.from({ length: 8 }, (_, i) => i / 10)), b.init("m", [8], Array(8).fill(0.1)), b.init("v", [8], Array(8).fill(1.2))]);
  const u = b.op("Upsample", [bnx, b.init("scales", [4], [1, 1, 3, 3])], { mode: { s: "nearest" } });
  const y = b.op("HardSigmoid", [b.conv(u, 8, 3, 5)]);
  return { bytes: b.finish(y), scale: 3 };
}

test("importOnnx: EDSR-baseline, RDN, SRResNet and odd-op graphs match onnxruntime-web", async (t) => {
  const rng = new Rng(17);
  for (const [name, make, expect] of [
    ["EDSR-baseline", edsr, (g: Graph) => `${count(g, "conv2d")} convs (mean shift as a 1×1 conv, res_scale / add_mean / ÷255 folded), output range [${g.meta.outputRange}]`],
    ["RDN", rdn, (g: Graph) => `${count(g, "conv2d")} convs, ${count(g, "concat")} concats, ${count(g, "upsample_nearest")} upsample`],
    ["SRResNet", srresnet, (g: Graph) => `${count(g, "conv2d")} convs (BN folded), ${count(g, "depth_to_space")} pixel shuffles`],
    ["odd ops", oddOps, (g: Graph) => `${count(g, "conv2d")} convs, ${g.nodes.filter((n) => n.op === "activation").map((n) => n.op === "activation" && n.activation.kind).join(",")}`],
  ] as const) {
    for (const seed of [1, 2]) {
      const { bytes, scale } = make(seed);
      const g = parseOnnx(bytes);
      const W = 13, H = 10;
      const x = testInput(rng, W, H, [0, 1]);
      const o = await ortRun(bytes, x, W, H, scale);
      const l = await lowbitRunMapped(g, x, W, H, name === "EDSR-baseline");
      const d = maxAbsDiff(o, l), m = maxAbs(o);
      t.ok(g.meta.scale === scale && d <= 2e-5 * Math.max(1, m), `${name} seed ${seed} ×${scale}: ${expect(g)}; max |ort − lowbit| ${d.toExponential(2)} (|y| ≤ ${m.toFixed(2)})`);
    }
  }
  const e = parseOnnx(edsr(1).bytes);
  t.deepEqual([e.meta.inputRange, e.meta.outputRange], [[0, 255], [0, 1]], "EDSR: ONNX input [0,1] ×255 folds into the input range [0,255]; the final Clip(0,1) becomes the output range");
  t.equal(count(e, "conv2d"), 1 + 1 + 6 + 1 + 1 + 1, "EDSR: 1×1 mean-shift conv + head + 6 block convs + body + upsampler + tail (no extra node for Mul 0.1, add_mean, ÷255)");
  t.equal(count(e, "scale"), 0, "EDSR: res_scale folded into the block's second conv");
  t.end();
});

test("importOnnx: range options, mean-shift folding into the input range, Resize coordinate modes", async (t) => {
  // x·255 − 127.5 (uniform) at the input folds into the input range; ÷255 + 0.5 at the output into the output range.
  const b = new OnnxBuilder(new Rng(4), 13);
  const s = b.op("Sub", [b.op("Mul", ["x", b.scalar(255)]), b.scalar(127.5)]);
  const y = b.op("Add", [b.op("Div", [b.op("Relu", [b.conv(b.op("Relu", [b.conv(s, 3, 8, 3)]), 8, 3, 3)]), b.scalar(255)]), b.scalar(0.5)]);
  const bytes = b.finish(y);
  const g = parseOnnx(bytes);
  t.deepEqual(g.meta.inputRange, [-127.5, 127.5], `input range after x·255 − 127.5: [${g.meta.inputRange}]`);
  t.deepEqual(g.meta.outputRange, [-127.5, 127.5], `output range after y/255 + 0.5 with outputRange [0,1]: [${g.meta.outputRange}]`);
  t.equal(count(g, "conv2d"), 2, "no extra nodes");
  const g2 = parseOnnx(bytes, { inputRange: [0, 255], outputRange: [0, 255] });
  t.deepEqual([g2.meta.inputRange, g2.meta.outputRange], [[-127.5, 65025 - 127.5], [-127.5, 254.5 * 255]], "explicit ranges map through the same folds");
  const x = testInput(new Rng(1), 9, 8, [0, 1]);
  const o = await ortRun(bytes, x, 9, 8, 1);
  const l = (await lowbitRun(g, x.map((v) => v * 255 - 127.5), 9, 8)).map((v) => v / 255 + 0.5);
  t.ok(maxAbsDiff(o, l) <= 1e-5, `folded ranges reproduce the ONNX output (${maxAbsDiff(o, l).toExponential(2)})`);
  // Resize modes: which (coordinate mode, nearest mode) equal floor(y/s) for integer s.
  const ok = ["half_pixel/round_prefer_floor", "half_pixel/round_prefer_ceil", "asymmetric/floor", "tf_half_pixel_for_nn/floor", "pytorch_half_pixel/round_prefer_floor"];
  const bad = ["asymmetric/round_prefer_floor", "align_corners/round_prefer_floor", "half_pixel/floor", "asymmetric/ceil"];
  // At ×2, asymmetric + round_prefer_floor (y/2 = m or m + ½ → m) and align_corners + round_prefer_floor
  // (y(n−1)/(2n−1) stays within ½ below m + ½) are floor(y/2) too.
  t.ok(nearestIsFloor(2, "asymmetric", "round_prefer_floor") && nearestIsFloor(2, "align_corners", "round_prefer_floor"), "×2: asymmetric and align_corners with round_prefer_floor are plain replication");
  for (const s2 of [3, 4]) {
    t.ok(ok.every((m) => nearestIsFloor(s2, ...(m.split("/") as [string, string]))) && bad.every((m) => !nearestIsFloor(s2, ...(m.split("/") as [string, string]))),
      `×${s2}: accepted ${ok.join(", ")}; rejected ${bad.join(", ")}`);
  }
  throwsCode(t, () => parseOnnx(bytes, { inputRange: [1, 0] }), "E_ARGUMENT", /inputRange/, "inverted input range");
  throwsCode(t, () => parseOnnx(edsr(1).bytes, { outputRange: [0, 255] }), "E_ARGUMENT", /clamps its output/, "output range outside the model's final Clip");
  t.end();
});

/** A minimal model with one special node between two convs. */
function withNode(op: string, attrs: Record<string, AttrValue>, extra: (b: OnnxBuilder, x: string) => string[] = () => [], opset = 13): Uint8Array {
  const b = new OnnxBuilder(new Rng(1), opset);
  const x = b.conv("x", 3, 4, 3);
  const y = b.op(op, [x, ...extra(b, x)], attrs);
  return b.finish(b.conv(y, op === "DepthToSpace" ? 1 : 4, 3, 3));
}

test("importOnnx: a fixed-size export (Resize with 'sizes', Sum) runs at any size", async (t) => {
  const b = new OnnxBuilder(new Rng(9), 13);
  const a = b.conv("x", 3, 8, 3);
  const s = b.op("Sum", [a, b.op("Relu", [b.conv(a, 8, 8, 3)]), b.conv(a, 8, 8, 1)]);
  const u = b.op("Resize", [s, "", "", b.init("sizes", [4], [1, 8, 24, 30], DT.INT64)], { mode: { s: "nearest" }, coordinate_transformation_mode: { s: "asymmetric" }, nearest_mode: { s: "floor" } });
  const out = b.conv(u, 8, 3, 3);
  const fixed = encodeModel({ graphName: "fixed", nodes: b.nodes, initializers: b.inits, opset: 13,
    inputs: [{ name: "x", elemType: DT.FLOAT, shape: [1, 3, 8, 10] }], outputs: [{ name: out, elemType: DT.FLOAT, shape: null }] });
  const g = parseOnnx(fixed);
  t.ok(g.meta.scale === 3 && count(g, "add") === 1 && g.nodes.find((n) => n.op === "add")!.inputs.length === 3, `sizes [24, 30] for an 8×10 input → ×3; Sum of 3 → one 3-input add`);
  const x = testInput(new Rng(3), 10, 8, [0, 1]);
  const d = maxAbsDiff(await ortRun(fixed, x, 10, 8, 3), await lowbitRun(g, x, 10, 8));
  t.ok(d < 1e-5, `matches onnxruntime-web at the exported size (${d.toExponential(2)})`);
  const y = await lowbitRun(g, testInput(new Rng(4), 17, 5, [0, 1]), 17, 5);
  t.equal(y.length, 17 * 3 * 5 * 3 * 3, "and runs at another size (17×5 → 51×15)");
  const dyn = new OnnxBuilder(new Rng(9), 13);
  const r = dyn.op("Resize", [dyn.conv("x", 3, 3, 3), "", "", dyn.init("sizes", [4], [1, 3, 24, 30], DT.INT64)], { mode: { s: "nearest" } });
  throwsCode(t, () => parseOnnx(dyn.finish(r)), "E_UNSUPPORTED_LAYER", /dynamic input size/, "'sizes' with a dynamic input size");
  t.end();
});

test("importOnnx: unsupported ops and attributes fail with E_UNSUPPORTED_LAYER naming node and op", (t) => {
  const conv = (attrs: Record<string, AttrValue>, w = [4, 3, 3, 3]) => {
    const b = new OnnxBuilder(new Rng(1), 13);
    const y = b.op("Conv", ["x", b.rand("w", w, 0.1)], attrs);
    return b.finish(b.conv(y, w[0], 3, 3));
  };
  throwsCode(t, () => parseOnnx(conv({ pads: { ints: [1, 1, 1, 1] }, group: { i: 3 } }, [3, 1, 3, 3])), "E_UNSUPPORTED_LAYER", /\(Conv\).*group=3/, "depthwise conv");
  throwsCode(t, () => parseOnnx(conv({ pads: { ints: [1, 1, 1, 1] }, strides: { ints: [2, 2] } })), "E_UNSUPPORTED_LAYER", /strides=\[2,2\]/, "stride 2");
  throwsCode(t, () => parseOnnx(conv({ pads: { ints: [1, 1, 1, 1] }, dilations: { ints: [2, 2] } })), "E_UNSUPPORTED_LAYER", /dilations/, "dilation 2");
  throwsCode(t, () => parseOnnx(conv({ pads: { ints: [0, 0, 0, 0] } })), "E_UNSUPPORTED_LAYER", /pads=\[0,0,0,0\]/, "valid padding of a 3×3");
  throwsCode(t, () => parseOnnx(conv({ pads: { ints: [1, 1, 1, 1] } }, [4, 3, 2, 2])), "E_UNSUPPORTED_LAYER", /odd kernel/, "2×2 kernel");
  throwsCode(t, () => parseOnnx(withNode("PRelu", {}, (b) => [b.init("slope", [4], [0.1, 0.2, 0.3, 0.4])])), "E_UNSUPPORTED_LAYER", /\(PRelu\).*slope of shape \[4\]/, "PRelu slope [4] (broadcasts along W, not C)");
  throwsCode(t, () => parseOnnx(withNode("Resize", { mode: { s: "nearest" }, coordinate_transformation_mode: { s: "align_corners" } }, (b) => [b.init("roi", [0], []), b.init("sc", [4], [1, 1, 3, 3])])), "E_UNSUPPORTED_LAYER", /align_corners/, "align_corners nearest");
  throwsCode(t, () => parseOnnx(withNode("Resize", { mode: { s: "nearest" } }, (b) => [b.init("roi", [0], []), b.init("sc", [4], [1, 1, 1.5, 1.5])])), "E_UNSUPPORTED_LAYER", /integer factors/, "×1.5 Resize");
  throwsCode(t, () => parseOnnx(withNode("Reshape", {}, (b) => [b.init("shape", [4], [1, 4, -1, 1], DT.INT64)])), "E_UNSUPPORTED_LAYER", /opset ≥ 11/, "Reshape (old PixelShuffle)");
  throwsCode(t, () => parseOnnx(withNode("Clip", {}, (b) => [b.scalar(-1), b.scalar(1)])), "E_UNSUPPORTED_LAYER", /\(Clip\).*inside the network/, "Clip(−1, 1) mid-network");
  throwsCode(t, () => parseOnnx(withNode("Mul", {}, (b, x) => [b.op("Relu", [x])])), "E_UNSUPPORTED_LAYER", /\(Mul\).*two computed/, "x·relu(x)");
  throwsCode(t, () => parseOnnx(withNode("Add", {}, (b) => [b.init("c", [1, 4, 1, 3], Array(12).fill(1))])), "E_UNSUPPORTED_LAYER", /per channel/, "constant varying along W");
  throwsCode(t, () => parseOnnx(withNode("Concat", { axis: { i: 2 } }, (b, x) => [x])), "E_UNSUPPORTED_LAYER", /axis=2/, "concat on H");
  throwsCode(t, () => parseOnnx(withNode("DepthToSpace", { blocksize: { i: 2 }, mode: { s: "XYZ" } })), "E_UNSUPPORTED_LAYER", /mode=XYZ/, "unknown DepthToSpace mode");
  throwsCode(t, () => parseOnnx(withNode("Relu", {}, () => [], 5)), "E_UNSUPPORTED_LAYER", /opset 5/, "opset 5");
  const custom = new OnnxBuilder(new Rng(1), 13);
  custom.nodes.push({ opType: "FusedConv", domain: "com.microsoft", inputs: ["x"], outputs: ["y"], name: "fc" });
  throwsCode(t, () => parseOnnx(custom.finish("y")), "E_UNSUPPORTED_LAYER", /'fc'.*com\.microsoft/, "custom domain");
  t.end();
});

test("importOnnx: malformed models (wrong counts, external data, shapes) → LowbitError", (t) => {
  const b = new OnnxBuilder(new Rng(1), 13);
  const y = b.conv("x", 3, 3, 3);
  b.inits[0] = { ...b.inits[0], dims: [3, 3, 3, 4] };
  throwsCode(t, () => parseOnnx(b.finish(y)), "E_MODEL_FORMAT", /raw_data has 324 bytes.*need 432/, "weight bytes ≠ dims");
  const c = new OnnxBuilder(new Rng(1), 13);
  const y2 = c.conv("x", 4, 3, 3);
  throwsCode(t, () => parseOnnx(c.finish(y2)), "E_SHAPE", /4 input channels, its input has 3/, "cin mismatch");
  const d = new OnnxBuilder(new Rng(1), 13);
  d.op("Relu", ["nope"]);
  throwsCode(t, () => parseOnnx(d.finish("relu_0")), "E_MODEL_FORMAT", /'nope'/, "undefined value");
  // external data: TensorProto.data_location = EXTERNAL (14) with external_data entries (13)
  const ext = encodeModel({ graphName: "e", opset: 13, nodes: [{ opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attrs: { pads: { ints: [0, 0, 0, 0] } } }], initializers: [],
    inputs: [{ name: "x", elemType: DT.FLOAT, shape: [1, 3, "h", "w"] }], outputs: [{ name: "y", elemType: DT.FLOAT, shape: null }] });
  // splice an initializer with data_location = 1 into the graph by hand
  const tensor = new ProtoWriter().packedInt64(1, [3, 3, 1, 1]).int64(2, DT.FLOAT).string(8, "w").int64(14, 1).finish();
  const extBytes = new Uint8Array([...ext, ...new ProtoWriter().bytes(7, new ProtoWriter().string(2, "g2").finish()).finish()]);
  throwsCode(t, () => parseOnnx(extBytes), "E_MODEL_FORMAT", /several graphs/, "two graph fields");
  const model2 = new ProtoWriter().int64(1, 8).bytes(7, new ProtoWriter().bytes(5, tensor).finish()).bytes(8, new ProtoWriter().string(1, "").int64(2, 13).finish()).finish();
  throwsCode(t, () => parseOnnx(model2), "E_UNSUPPORTED_LAYER", /external data/, "external data");
  const f16 = new ProtoWriter().packedInt64(1, [1]).int64(2, DT.STRING).string(8, "s").finish();
  throwsCode(t, () => parseOnnx(new ProtoWriter().int64(1, 8).bytes(7, new ProtoWriter().bytes(5, f16).finish()).finish()), "E_UNSUPPORTED_LAYER", /STRING/, "string tensor");
  throwsCode(t, () => parseOnnx(new TextEncoder().encode('{"modelTopology": 1}')), "E_MODEL_FORMAT", null, "a JSON file");
  throwsCode(t, () => parseOnnx(new Uint8Array(0)), "E_MODEL_FORMAT", /no graph/, "empty file");
  t.end();
});

test("importOnnx: every truncation and 400 random corruptions of a model → a graph or a LowbitError, never another error", (t) => {
  const bytes = rdn(3).bytes;
  const rng = new Rng(99);
  const other: string[] = [];
  let lowbit = 0, parsed = 0;
  const tryParse = (b: Uint8Array) => {
    try {
      parseOnnx(b);
      parsed++;
    } catch (e) {
      if (e instanceof LowbitError) lowbit++;
      else if (other.length < 5) other.push(`${(e as Error).name}: ${(e as Error).message}`);
      else other.push("");
    }
  };
  const cuts = new Set<number>();
  for (let i = 0; i < 300; i++) cuts.add(rng.int(0, bytes.length - 1));
  for (let i = 0; i < 64; i++) cuts.add(i);
  for (const c of cuts) tryParse(bytes.subarray(0, c));
  for (let i = 0; i < 400; i++) {
    const b = bytes.slice();
    const n = rng.int(1, 4);
    for (let k = 0; k < n; k++) b[rng.int(0, b.length - 1)] = rng.int(0, 255);
    tryParse(b);
  }
  t.deepEqual(other.filter(Boolean), [], `${cuts.size} truncations + 400 corruptions: ${lowbit} LowbitErrors, ${parsed} still-valid models, ${other.length} other errors`);
  t.end();
});

test("importOnnx of lowbit's QDQ export: weights are the int8 codes × scales; activation QDQ pairs are kept as annotations", async (t) => {
  const g = await loadModel("esrgan-slim-x2");
  const cal = await calibrate(g, [evalCrop("lr_x2", "aero1", 20, 20, 40, 40)], { runtime: await testRuntime() });
  const qm = quantizeModel(cal, "w8a8");
  const r = importOnnxDetailed(exportOnnx(qm));
  const convs = qm.graph.nodes.filter((n) => n.op === "conv2d");
  let same = 0;
  for (const c of convs) {
    const wq = r.weightQuant.get(c.name), q = qm.weights[c.id]!;
    if (wq && wq.codes.every((v, i) => v === q.codes[i]) && wq.scales.every((v, i) => v === q.scales[i])) same++;
  }
  t.equal(same, convs.length, `${same}/${convs.length} convs carry exactly lowbit's int8 codes and per-channel scales`);
  t.ok(r.actQuant.size >= convs.length, `${r.actQuant.size} activation grids read from QuantizeLinear/DequantizeLinear pairs`);
  const x = testInput(new Rng(2), 12, 9, [0, 255]);
  const f = await lowbitRun(r.graph, x, 12, 9), ref = await lowbitRun(g, x, 12, 9);
  const d = maxAbsDiff(f, ref);
  t.ok(d > 0 && d < 12, `the dequantized graph runs in FP32 close to the original (weights carry W8 error only): max diff ${d.toFixed(2)} levels`);
  t.end();
});

test("importOnnx: path and URL sources, size limit", async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const { pathToFileURL } = await import("node:url");
  const dir = mkdtempSync(join(tmpdir(), "lowbit-onnx-"));
  try {
    const p = join(dir, "m.onnx");
    const { bytes } = oddOps(5);
    writeFileSync(p, bytes);
    const a = await importOnnx(p), b = await importOnnx(pathToFileURL(p));
    t.ok(a.nodes.length === b.nodes.length && a.meta.scale === 3, `read by path and by file: URL (${a.nodes.length} nodes)`);
    try {
      await importOnnx(join(dir, "missing.onnx"));
      t.fail("missing file should throw");
    } catch (e) {
      t.ok(e instanceof LowbitError && e.code === "E_IO", `missing file: ${(e as Error).message}`);
    }
    try {
      await importOnnx(p, { maxModelBytes: 100 });
      t.fail("size limit should throw");
    } catch (e) {
      t.ok(e instanceof LowbitError && e.code === "E_MEMORY", `size limit: ${(e as Error).message}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});

test("onnxToModel: lowbit's QDQ export loads back as a QuantizedModel with bit-identical outputs", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(12);
  for (const [name, bits] of [["esrgan-slim-x2", "w8a8"], ["psnr-small-x2", "w8a8"], ["esrgan-slim-x4", "w4a8"], ["esrgan-slim-x2", "w8a6"], ["esrgan-slim-x2", "w4a4"]] as const) {
    const g = await loadModel(name);
    const cal = await calibrate(g, [evalCrop(`lr_x${g.meta.scale}`, "aero1", 20, 20, 40, 40)], { runtime: rt });
    const qm = quantizeModel(cal, bits);
    const back = onnxToModel(exportOnnx(qm));
    t.ok(back instanceof QuantizedModel, `${name} ${bits}: a QuantizedModel (${back.config})`);
    const q = back as QuantizedModel;
    const same = qm.tensors.every((u, i) => u.domain === q.tensors[i].domain);
    const x = testInput(rng, 14, 9, g.meta.inputRange);
    const a = await lowbitRun(qm, x, 14, 9), b = await lowbitRun(back, x, 14, 9);
    t.ok(same && maxAbsDiff(a, b) === 0, `${name} ${bits}: same domains for ${qm.tensors.length} tensors, outputs identical (max diff ${maxAbsDiff(a, b)})`);
  }
  const fp = onnxToModel(exportOnnx(await loadModel("esrgan-slim-x2")));
  t.equal(fp.config, "fp32", "a float ONNX model loads as fp32Model");
  t.end();
});

/** A QDQ model as onnxruntime's quantizer writes it: uint8 input, int8 activations (zero point −128), per-channel int8 weights, int32 bias, CRD pixel shuffle. */
function handQdq(seed: number): { bytes: Uint8Array; outGrid: [number, number] } {
  const rng = new Rng(seed);
  const b = new OnnxBuilder(rng, 13);
  const qdq = (x: string, s: number, z: number, signed: boolean) => {
    const sc = b.init("s", [], [s]), zp = b.init("z", [], [z], signed ? DT.INT8 : DT.UINT8);
    return b.op("DequantizeLinear", [b.op("QuantizeLinear", [x, sc, zp]), sc, zp]);
  };
  const qconv = (x: string, sx: number, cin: number, cout: number, k: number) => {
    const codes = Array.from({ length: cout * cin * k * k }, () => rng.int(-127, 127));
    const ws = Array.from({ length: cout }, () => (0.5 + rng.next()) / (127 * Math.sqrt(cin * k * k)));
    const w = b.op("DequantizeLinear", [b.init("wq", [cout, cin, k, k], codes, DT.INT8), b.init("ws", [cout], ws), b.init("wz", [cout], new Array(cout).fill(0), DT.INT8)], { axis: { i: 0 } });
    const bs = ws.map((v) => Math.fround(sx * v));
    const bias = b.op("DequantizeLinear", [b.init("bq", [cout], Array.from({ length: cout }, () => rng.int(-3000, 3000)), DT.INT32), b.init("bs", [cout], bs), b.init("bz", [cout], new Array(cout).fill(0), DT.INT32)], { axis: { i: 0 } });
    const p = (k - 1) / 2;
    return b.op("Conv", [x, w, bias], { kernel_shape: { ints: [k, k] }, pads: { ints: [p, p, p, p] } });
  };
  const x0 = qdq("x", 1 / 255, 0, false);
  const h = qdq(b.op("Relu", [qconv(x0, 1 / 255, 3, 16, 3)]), 2 / 255, -128, true);
  const m = qdq(qconv(h, 2 / 255, 16, 16, 3), 4 / 255, 0, true);
  const y = qdq(qconv(m, 4 / 255, 16, 12, 3), 3 / 255, 100, false);
  return { bytes: b.finish(b.op("DepthToSpace", [y], { blocksize: { i: 2 }, mode: { s: "CRD" } })), outGrid: [3 / 255, 100] };
}

test("onnxToModel: a hand-built QDQ graph (int8 activations, CRD) runs on lowbit's int8 kernels like onnxruntime-web", async (t) => {
  const rng = new Rng(4);
  for (const seed of [1, 2]) {
    const { bytes, outGrid } = handQdq(seed);
    const m = onnxToModel(bytes);
    t.ok(m instanceof QuantizedModel && (m as QuantizedModel).tensors.filter((x) => x.domain === "q8").length >= 4, `seed ${seed}: QuantizedModel, ${(m as QuantizedModel).tensors.filter((x) => x.domain === "q8").length} tensors on codes`);
    const W = 12, H = 9;
    const x = Float32Array.from(testInput(rng, W, H, [0, 1]), (v) => Math.round(v * 255) / 255);
    const o = await ortRun(bytes, x, W, H, 2);
    const l = await lowbitRunMapped(m.graph, x, W, H);
    const lq = await lowbitRun(m, x.map((v) => m.graph.meta.inputRange[0] + v * (m.graph.meta.inputRange[1] - m.graph.meta.inputRange[0])), W, H);
    let maxLsb = 0;
    for (let i = 0; i < o.length; i++) maxLsb = Math.max(maxLsb, Math.round(Math.abs(o[i] - lq[i]) / outGrid[0]));
    t.ok(maxLsb === 0, `seed ${seed}: lowbit int8 plan vs onnxruntime QDQ: max ${maxLsb} LSB`);
    t.ok(maxAbsDiff(o, l) < 0.1, `seed ${seed}: the FP32 (dequantized) import is close too (max ${maxAbsDiff(o, l).toFixed(3)})`);
  }
  t.end();
});

test("loadAnyModel: .onnx paths and ONNX bytes", async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const { loadAnyModel } = await import("../src/io/load-any.ts");
  const dir = mkdtempSync(join(tmpdir(), "lowbit-onnx-"));
  try {
    const p = join(dir, "q.onnx");
    writeFileSync(p, handQdq(1).bytes);
    const a = await loadAnyModel(p), b = await loadAnyModel(handQdq(1).bytes), c = await loadAnyModel(edsr(1).bytes);
    t.ok(a instanceof QuantizedModel && b instanceof QuantizedModel && c.config === "fp32", `path → ${a.config}; QDQ bytes → ${b.config}; float bytes → ${c.config}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});
