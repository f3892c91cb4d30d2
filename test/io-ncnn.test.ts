// ncnn import: parser and .bin reader (formats, storage tags, malformed input), and the IR lowering of
// every supported layer against the independent f64 reference interpreter (test/util/ncnn-ref.ts) on
// synthetic nets with seeded random weights: 'same' nets, valid-conv + crop + deconvolution nets (the
// waifu2x contract: replicate-pad, run, crop), and downscale-after-shuffle nets (realesr-animevideov3 x2/x3).
import test from "tape";
import { Rng } from "./util/rng.ts";
import { testRuntime } from "./util/runtime.ts";
import { importNcnn, parseNcnnParam, readNcnnWeights, halfToFloat, deconvToSubpixel } from "../src/io/ncnn/index.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import { runNcnnRef, hwcToChw, padReplicate, type Chw } from "./util/ncnn-ref.ts";

// ---------------------------------------------------------------- a tiny .param/.bin writer

type Storage = "fp32" | "fp16" | "table" | "raw";
interface W { data: Float32Array; storage: Storage }
interface L { type: string; name: string; bottoms: string[]; tops: string[]; params?: string; weights?: W[] }

/** binary16 bits of v (round to nearest even; v in the normal/zero range of the tests). */
function toHalf(v: number): number {
  const f = new Float32Array([v]), u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000, e = ((u >>> 23) & 0xff) - 127 + 15, m = u & 0x7fffff;
  if (e <= 0) return sign; // flush tiny to ±0 (tests never need subnormals)
  let h = (e << 10) | (m >>> 13);
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return sign | h;
}

function build(layers: L[]): { param: string; bin: Uint8Array } {
  const blobs = new Set<string>();
  for (const l of layers) for (const b of [...l.bottoms, ...l.tops]) blobs.add(b);
  const lines = ["7767517", `${layers.length} ${blobs.size}`];
  const parts: number[] = [];
  const u32 = (v: number) => parts.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  const f32 = (v: number) => u32(new Uint32Array(new Float32Array([v]).buffer)[0]);
  for (const l of layers) {
    lines.push([l.type, l.name, l.bottoms.length, l.tops.length, ...l.bottoms, ...l.tops, l.params ?? ""].join(" ").trim());
    for (const w of l.weights ?? []) {
      if (w.storage === "raw") w.data.forEach(f32);
      else if (w.storage === "fp32") { u32(0); w.data.forEach(f32); }
      else if (w.storage === "fp16") {
        u32(0x01306b47);
        w.data.forEach((v) => { const h = toHalf(v); parts.push(h & 0xff, h >> 8); });
        if (w.data.length % 2) parts.push(0, 0);
      } else {
        // quantize-table storage: 256 levels, indices
        parts.push(1, 0, 0, 0);
        const table = new Float32Array(256).map((_, i) => (i - 128) / 256);
        table.forEach(f32);
        w.data.forEach((v) => parts.push(Math.max(0, Math.min(255, Math.round(v * 256) + 128))));
        for (let i = w.data.length; i % 4; i++) parts.push(0);
      }
    }
  }
  return { param: lines.join("\n") + "\n", bin: Uint8Array.from(parts) };
}

const rng = new Rng(1101);
/** Random weights exactly representable in the storage (so the reference sees the same values). */
function wts(n: number, storage: Storage, scale = 0.3): W {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = rng.uniform(-scale, scale);
    data[i] = storage === "fp16" ? halfToFloat(toHalf(v)) : storage === "table" ? (Math.round(v * 256)) / 256 : v;
  }
  return { data, storage };
}

function throwsCode(t: test.Test, fn: () => unknown, code: string, re: RegExp, what: string): void {
  try {
    fn();
    t.fail(`${what}: should throw ${code}`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code && re.test(e.message), `${what} → ${code} (${(e as Error).message})`);
  }
}

function image(w: number, h: number, seed: number): Float32Array {
  const r = new Rng(seed), x = new Float32Array(w * h * 3);
  // smooth-ish content with noise, 0..1
  for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) for (let c = 0; c < 3; c++) {
    x[(y * w + xx) * 3 + c] = Math.min(1, Math.max(0, 0.5 + 0.3 * Math.sin(xx * 0.4 + c) * Math.cos(y * 0.3) + r.uniform(-0.15, 0.15)));
  }
  return x;
}

/** max |lowbit − ref| over output pixels [b, size − b) (lowbit HWC, ref CHW), lowbit shifted by `off` HR pixels. */
function maxDiff(low: Float32Array, lowW: number, ref: Chw, off = 0, b = 0): number {
  let m = 0;
  for (let y = b; y < ref.h - b; y++) for (let x = b; x < ref.w - b; x++) for (let c = 0; c < ref.c; c++) {
    m = Math.max(m, Math.abs(low[((y + off) * lowW + x + off) * 3 + c] - ref.data[(c * ref.h + y) * ref.w + x]));
  }
  return m;
}

// ---------------------------------------------------------------- parser / reader

test("ncnn param: parses layers, blobs, scalars, arrays and schema defaults", (t) => {
  const p = parseNcnnParam([
    "7767517", "3 3",
    "Input            in   0 1 data 0=8 1=8 2=3",
    "Convolution      c1   1 1 data a 0=4 1=3 4=1 5=1 6=108 9=2 -23310=1,1.000000e-01",
    "Deconvolution    d1   1 1 a out 0=3 1=4 3=2 4=3 6=192",
  ].join("\n"));
  t.equal(p.layers.length, 3);
  t.equal(p.blobCount, 3);
  const c = p.layers[1];
  t.deepEqual([c.p.numOutput, c.p.kernelW, c.p.kernelH, c.p.padLeft, c.p.padTop, c.p.padRight, c.p.strideH, c.p.activationType], [4, 3, 3, 1, 1, 1, 1, 2], "conv params + dependent defaults");
  t.ok(Math.abs(c.p.activationParams![0] - 0.1) < 1e-9, "array param −23310 → activation params");
  const d = p.layers[2];
  t.deepEqual([d.p.kernelH, d.p.strideH, d.p.padTop, d.p.padBottom, d.p.biasTerm], [4, 2, 3, 3, 0], "deconv defaults");
  t.deepEqual([...new TextEncoder().encode("x")].length, 1);
  t.end();
});

test("ncnn param: malformed or unsupported text → LowbitError naming line, layer and param", (t) => {
  const ok = ["7767517", "2 2", "Input in 0 1 data", "Convolution c1 1 1 data out 0=3 1=3 4=1 6=81"];
  const mk = (i: number, line: string) => ok.map((l, j) => (j === i ? line : l)).join("\n");
  throwsCode(t, () => parseNcnnParam(""), "E_MODEL_FORMAT", /magic/, "empty file");
  throwsCode(t, () => parseNcnnParam(mk(0, "7767518")), "E_MODEL_FORMAT", /magic 7767517/, "bad magic");
  throwsCode(t, () => parseNcnnParam(mk(1, "2")), "E_MODEL_FORMAT", /layer count/, "bad count line");
  throwsCode(t, () => parseNcnnParam(ok.slice(0, 3).join("\n")), "E_MODEL_FORMAT", /truncated: declares 2 layers, found 1/, "truncated layer list");
  throwsCode(t, () => parseNcnnParam(mk(3, "Convolution c1 1 1 data")), "E_MODEL_FORMAT", /c1.*declares 1 bottoms and 1 tops/, "missing top name");
  throwsCode(t, () => parseNcnnParam(mk(3, "Softmax c1 1 1 data out")), "E_UNSUPPORTED_LAYER", /'c1' \(Softmax.*layer type 'Softmax' is not supported/, "unknown layer type");
  throwsCode(t, () => parseNcnnParam(mk(3, "Convolution c1 1 1 data out 0=3 1=3 7=2 6=81")), "E_UNSUPPORTED_LAYER", /'c1'.*param 7 is not supported for Convolution/, "unknown param id");
  throwsCode(t, () => parseNcnnParam(mk(3, "Convolution c1 1 1 data out 0=3.5 1=3 6=81")), "E_MODEL_FORMAT", /'c1'.*param 0 \(numOutput\) must be an integer/, "float for an int param");
  throwsCode(t, () => parseNcnnParam(mk(3, "Convolution c1 1 1 data out 0=3 1=3 6=81 9=2 -23310=3,0.1")), "E_MODEL_FORMAT", /param -23310: array must be/, "array length mismatch");
  throwsCode(t, () => parseNcnnParam(mk(3, "Convolution c1 1 1 data out 0=abc")), "E_MODEL_FORMAT", /'abc' is not a number/, "non-numeric value");
  throwsCode(t, () => parseNcnnParam(mk(3, "Convolution c1 1 1 data out 0:3")), "E_MODEL_FORMAT", /'0:3' is not 'id=value'/, "malformed pair");
  throwsCode(t, () => parseNcnnParam(mk(3, "Convolution in 1 1 data out 0=3")), "E_MODEL_FORMAT", /duplicate layer name 'in'/, "duplicate layer name");
  throwsCode(t, () => parseNcnnParam(mk(3, "Convolution c1 1 1 data out -23300=2,3,3 1=3")), "E_MODEL_FORMAT", /param 0 \(numOutput\) must be a scalar/, "array given for a scalar param");
  throwsCode(t, () => parseNcnnParam(mk(3, "Convolution c1 1 1 data out 0=3 1=3 6=81 10=1")), "E_MODEL_FORMAT", /param 10 \(activationParams\) must be an array/, "scalar given for an array param");
  t.end();
});

test("ncnn bin: fp32 / fp16 / quantize-table / raw storage decode exactly; truncated, trailing, int8, NaN → errors", (t) => {
  t.deepEqual([0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0xfc00, 0x8000, 0x3555].map(halfToFloat),
    [1, -2, 2 ** -24, 65504, Infinity, -Infinity, -0, 0.333251953125], "binary16 decode (normal, subnormal, max, ±∞, −0)");
  t.ok(Number.isNaN(halfToFloat(0x7e00)), "binary16 NaN");
  const mkNet = (storage: Storage, extra = 0) => {
    const w = wts(3 * 3 * 9, storage), b = wts(3, "raw");
    const net = build([
      { type: "Input", name: "in", bottoms: [], tops: ["data"] },
      { type: "Convolution", name: "c1", bottoms: ["data"], tops: ["out"], params: "0=3 1=3 4=1 5=1 6=81", weights: [w, b] },
    ]);
    return { ...net, w, b, bin: extra ? Uint8Array.from([...net.bin, ...new Array(extra).fill(0)]) : net.bin };
  };
  for (const s of ["fp32", "fp16", "table"] as Storage[]) {
    const n = mkNet(s);
    const p = parseNcnnParam(n.param);
    readNcnnWeights(p.layers, n.bin);
    t.deepEqual([...p.layers[1].weights.weight], [...n.w.data], `${s} weights decoded exactly`);
    t.deepEqual([...p.layers[1].weights.bias], [...n.b.data], `${s}: raw bias after the weights`);
  }
  const n = mkNet("fp16");
  throwsCode(t, () => importNcnn(n.param, n.bin.subarray(0, n.bin.length - 1)), "E_MODEL_FORMAT", /truncated at layer 'c1' \(Convolution\) bias/, "bin one byte short");
  throwsCode(t, () => importNcnn(n.param, n.bin.subarray(0, 2)), "E_MODEL_FORMAT", /truncated at layer 'c1' \(Convolution\) weight \(storage tag\)/, "bin cut inside the tag");
  throwsCode(t, () => importNcnn(n.param, mkNet("fp16", 8).bin), "E_MODEL_FORMAT", /8 trailing bytes/, "trailing bytes (bin/param mismatch)");
  const int8 = n.bin.slice();
  new DataView(int8.buffer).setUint32(0, 0x000d4b38, true);
  throwsCode(t, () => importNcnn(n.param, int8), "E_UNSUPPORTED_LAYER", /int8-stored weights/, "int8 storage tag");
  const f = mkNet("fp32");
  const nan = f.bin.slice();
  new DataView(nan.buffer).setFloat32(4 + 4 * 5, NaN, true);
  throwsCode(t, () => importNcnn(f.param, nan), "E_MODEL_FORMAT", /'c1' \(Convolution\) weight\[5\] = NaN is not finite/, "NaN weight named with its index");
  throwsCode(t, () => importNcnn(f.param.replace("6=81", "6=80"), f.bin.subarray(0, f.bin.length - 4)), "E_MODEL_FORMAT", /weight_data_size 80 \(param 6\)/, "weight_data_size inconsistent with the shapes");
  throwsCode(t, () => importNcnn(f.param, "nope" as unknown as Uint8Array), "E_ARGUMENT", /bytes/, "bin not bytes");
  t.end();
});

// ---------------------------------------------------------------- lowering vs the reference interpreter

async function runLowbit(graph: import("../src/graph/ir.ts").Graph, x: Float32Array, w: number, h: number): Promise<Float32Array> {
  const rt = await testRuntime();
  const plan = new F32Plan(rt, graph, w, h);
  try {
    return plan.run(x, w, h);
  } finally {
    plan.dispose();
  }
}

test("ncnn lowering: 'same' net with every mapped layer = reference (fp16/fp32/table weights, CRD shuffle, sub, stride-1 deconv)", async (t) => {
  const net = build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"], params: "0=0 1=0 2=3" },
    { type: "Split", name: "sp", bottoms: ["data"], tops: ["d0", "d1"] },
    { type: "Convolution", name: "c1", bottoms: ["d0"], tops: ["a"], params: "0=8 1=3 4=1 5=1 6=216 9=2 -23310=1,1.000000e-01", weights: [wts(216, "fp16"), wts(8, "raw")] },
    { type: "Split", name: "sp2", bottoms: ["a"], tops: ["a0", "a1"] },
    { type: "PReLU", name: "pr", bottoms: ["a0"], tops: ["b"], params: "0=8", weights: [wts(8, "raw", 0.5)] },
    { type: "Convolution", name: "c2", bottoms: ["b"], tops: ["c"], params: "0=8 1=3 4=1 5=1 6=576 9=1", weights: [wts(576, "fp32", 0.2), wts(8, "raw")] },
    { type: "Eltwise", name: "el", bottoms: ["c", "a1"], tops: ["e"], params: "0=1 -23301=2,2.000000e-01,1.000000e+00" },
    { type: "ReLU", name: "lr", bottoms: ["e"], tops: ["f"], params: "0=5.000000e-02" },
    { type: "BinaryOp", name: "half", bottoms: ["f"], tops: ["g"], params: "0=2 1=1 2=5.000000e-01" },
    { type: "Split", name: "sp3", bottoms: ["g"], tops: ["g0", "g1"] },
    { type: "Convolution", name: "c3", bottoms: ["g0"], tops: ["h"], params: "0=8 1=3 4=-233 6=576 9=3 -23310=2,0.0,6.0", weights: [wts(576, "table", 0.2)] },
    { type: "Concat", name: "cat", bottoms: ["h", "g1"], tops: ["i"], params: "0=0" },
    { type: "Convolution", name: "c4", bottoms: ["i"], tops: ["j"], params: "0=12 1=1 5=1 6=192", weights: [wts(192, "fp16"), wts(12, "raw")] },
    { type: "PixelShuffle", name: "ps", bottoms: ["j"], tops: ["k"], params: "0=2" },
    { type: "Interp", name: "up", bottoms: ["d1"], tops: ["u"], params: "0=1 1=2.000000e+00 2=2.000000e+00" },
    { type: "BinaryOp", name: "sub", bottoms: ["k", "u"], tops: ["v"], params: "0=1" },
    { type: "Deconvolution", name: "dc", bottoms: ["v"], tops: ["out"], params: "0=3 1=3 4=1 5=1 6=81", weights: [wts(81, "fp16"), wts(3, "raw")] },
  ]);
  const { graph, prepad } = importNcnn(net.param, net.bin, { name: "synthetic-same" });
  t.equal(prepad, 0, "no prepad for a 'same' net");
  t.equal(graph.meta.scale, 2, "×2");
  t.ok(graph.nodes.some((n) => n.op === "prelu"), "PReLU → prelu op (and leaky ReLU too)");
  const P = parseNcnnParam(net.param);
  readNcnnWeights(P.layers, net.bin);
  for (const [w, h] of [[13, 9], [1, 1], [20, 17]]) {
    const x = image(w, h, w * 31 + h);
    const low = await runLowbit(graph, x, w, h);
    const ref = runNcnnRef(P.layers, hwcToChw(x, h, w));
    t.equal(low.length, ref.data.length, `${w}×${h}: output size ${ref.w}×${ref.h}`);
    const d = maxDiff(low, ref.w, ref);
    t.ok(d < 2e-5, `${w}×${h}: max |lowbit − ref| = ${d.toExponential(2)} (everywhere: same padding in both)`);
  }
});

test("ncnn lowering: valid convs + crop + 4×4/2 deconvolution (waifu2x form): prepad, replicate-pad → run → crop = reference exactly", async (t) => {
  const net = build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"] },
    { type: "Split", name: "s", bottoms: ["data"], tops: ["x0", "x1"] },
    { type: "Convolution", name: "c1", bottoms: ["x0"], tops: ["a"], params: "0=4 1=3 5=1 6=108 9=2 -23310=1,1.000000e-01", weights: [wts(108, "fp16"), wts(4, "raw")] },
    { type: "Crop", name: "cr", bottoms: ["x1"], tops: ["xc"], params: "-23309=2,1,1 -23310=2,-1,-1 -23311=2,1,2" },
    { type: "Convolution", name: "c1b", bottoms: ["xc"], tops: ["ab"], params: "0=4 1=1 6=12", weights: [wts(12, "fp32")] },
    { type: "BinaryOp", name: "add", bottoms: ["a", "ab"], tops: ["b"], params: "0=0" },
    { type: "Convolution", name: "c2", bottoms: ["b"], tops: ["c"], params: "0=4 1=3 5=1 6=144 9=2 -23310=1,1.000000e-01", weights: [wts(144, "fp16"), wts(4, "raw")] },
    { type: "Deconvolution", name: "dc", bottoms: ["c"], tops: ["out"], params: "0=3 1=4 3=2 4=3 5=1 6=192", weights: [wts(192, "fp16"), wts(3, "raw")] },
  ]);
  const { graph, prepad } = importNcnn(net.param, net.bin);
  t.equal(prepad, 3, "prepad: two valid 3×3 convs (2) + deconv pad 3 − its centring (1) = 3 LR px");
  const dcs = graph.nodes.filter((n) => n.op === "conv2d" && n.name === "dc/subpixel");
  t.ok(dcs.length === 1 && dcs[0].op === "conv2d" && dcs[0].k === 3 && dcs[0].cout === 12, "deconv → 3×3 conv with 4·3 outputs + depth_to_space(2)");
  const P = parseNcnnParam(net.param);
  readNcnnWeights(P.layers, net.bin);
  for (const [w, h] of [[9, 7], [16, 16]]) {
    const x = image(w, h, w + 7 * h);
    const pad = padReplicate(hwcToChw(x, h, w), prepad);
    const W = w + 2 * prepad, H = h + 2 * prepad;
    const xp = new Float32Array(W * H * 3);
    for (let i = 0; i < W * H; i++) for (let c = 0; c < 3; c++) xp[i * 3 + c] = pad.data[c * W * H + i];
    const ref = runNcnnRef(P.layers, pad);
    t.deepEqual([ref.w, ref.h], [2 * w, 2 * h], `${w}×${h}: ncnn on the padded input gives exactly 2W×2H`);
    const low = await runLowbit(graph, xp, W, H);
    const d = maxDiff(low, 2 * W, ref, 2 * prepad);
    t.ok(d < 2e-5, `${w}×${h}: lowbit on the padded input, cropped by ${2 * prepad} HR px = ncnn (max diff ${d.toExponential(2)})`);
    const direct = await runLowbit(graph, x, w, h);
    const inner = maxDiff(direct, 2 * w, ref, 0, 2 * (prepad + 3));
    t.ok(inner < 2e-5, `${w}×${h}: on the unpadded image the output is pixel-aligned and exact away from the border (${inner.toExponential(2)})`);
  }
});

test("ncnn lowering: bicubic ×0.5 / bilinear ×0.75 downscale after shuffle + nearest residual (animevideov3 x2/x3 form)", async (t) => {
  for (const [type, scale, out] of [[3, 0.5, 2], [2, 0.75, 3], [3, 0.75, 3]] as const) {
    const net = build([
      { type: "Input", name: "in", bottoms: [], tops: ["data"] },
      { type: "Split", name: "s", bottoms: ["data"], tops: ["x0", "x1"] },
      { type: "Convolution", name: "c", bottoms: ["x0"], tops: ["a"], params: "0=48 1=3 4=1 5=1 6=1296", weights: [wts(1296, "fp16", 0.1), wts(48, "raw", 0.1)] },
      { type: "PixelShuffle", name: "ps", bottoms: ["a"], tops: ["b"], params: "0=4" },
      { type: "Interp", name: "up", bottoms: ["x1"], tops: ["u"], params: "0=1 1=4.000000e+00 2=4.000000e+00" },
      { type: "BinaryOp", name: "add", bottoms: ["b", "u"], tops: ["v"], params: "0=0" },
      { type: "Interp", name: "down", bottoms: ["v"], tops: ["out"], params: `0=${type} 1=${scale} 2=${scale}` },
    ]);
    const { graph } = importNcnn(net.param, net.bin);
    t.equal(graph.meta.scale, out, `${type === 3 ? "bicubic" : "bilinear"} ×${scale} of ×4 → ×${out} graph`);
    t.notOk(graph.nodes.some((n) => n.op === "upsample_nearest"), "the ×4 tensors are gone (folded into the resampling convs)");
    const P = parseNcnnParam(net.param);
    readNcnnWeights(P.layers, net.bin);
    const w = 11, h = 8;
    const x = image(w, h, 5 + type);
    const low = await runLowbit(graph, x, w, h);
    const ref = runNcnnRef(P.layers, hwcToChw(x, h, w));
    t.deepEqual([ref.w, ref.h], [out * w, out * h], "sizes agree");
    const inner = maxDiff(low, ref.w, ref, 0, 1);
    t.ok(inner < 1e-4, `interior (all but the outermost HR pixel ring) = ncnn: ${inner.toExponential(2)}`);
    const all = maxDiff(low, ref.w, ref);
    if (type === 2) t.ok(all < 1e-4, `bilinear: exact on the border too (${all.toExponential(2)})`);
    else t.comment(`bicubic: outermost ring differs by ≤ ${all.toFixed(3)} (ncnn clamps taps at the edge; the conv zero-pads)`);
  }
});

test("ncnn lowering: bilinear Interp upscale (×2, ×3) = the f64 ncnn interpreter, border included", async (t) => {
  for (const s of [2, 3]) {
    const net = build([
      { type: "Input", name: "in", bottoms: [], tops: ["data"] },
      { type: "Convolution", name: "c", bottoms: ["data"], tops: ["a"], params: "0=8 1=3 4=1 5=1 6=216", weights: [wts(216, "fp16", 0.2), wts(8, "raw", 0.1)] },
      { type: "Interp", name: "up", bottoms: ["a"], tops: ["u"], params: `0=2 1=${s}.000000e+00 2=${s}.000000e+00` },
      { type: "Convolution", name: "c2", bottoms: ["u"], tops: ["out"], params: "0=3 1=3 4=1 5=1 6=216", weights: [wts(216, "fp16", 0.2), wts(3, "raw", 0.1)] },
    ]);
    const { graph } = importNcnn(net.param, net.bin);
    t.ok(graph.meta.scale === s && graph.nodes.some((n) => n.op === "upsample_bilinear" && n.mode === "half_pixel"), `×${s}: one half-pixel upsample_bilinear`);
    const P = parseNcnnParam(net.param);
    readNcnnWeights(P.layers, net.bin);
    const w = 9, h = 7;
    const x = image(w, h, 40 + s);
    const low = await runLowbit(graph, x, w, h);
    const ref = runNcnnRef(P.layers, hwcToChw(x, h, w));
    const all = maxDiff(low, ref.w, ref);
    t.ok(all < 1e-4, `×${s}: lowbit = ncnn reference everywhere (${all.toExponential(2)})`);
  }
});

test("ncnn lowering: W8A8 of a PReLU/leaky net tracks FP32 (static int8 path incl. the int8 PReLU)", async (t) => {
  const net = build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"] },
    { type: "Convolution", name: "c1", bottoms: ["data"], tops: ["a"], params: "0=16 1=3 4=1 5=1 6=432", weights: [wts(432, "fp16"), wts(16, "raw", 0.05)] },
    { type: "PReLU", name: "p1", bottoms: ["a"], tops: ["b"], params: "0=16", weights: [wts(16, "raw", 0.4)] },
    { type: "Convolution", name: "c2", bottoms: ["b"], tops: ["c"], params: "0=16 1=3 4=1 5=1 6=2304 9=2 -23310=1,2.000000e-01", weights: [wts(2304, "fp16", 0.1), wts(16, "raw", 0.05)] },
    { type: "Convolution", name: "c3", bottoms: ["c"], tops: ["out"], params: "0=3 1=3 4=1 5=1 6=432", weights: [wts(432, "fp16", 0.1), wts(3, "raw", 0.05)] },
  ]);
  const { graph } = importNcnn(net.param, net.bin);
  const rt = await testRuntime();
  const calibImgs = [0, 1, 2].map((s) => {
    const f = image(24, 24, 100 + s);
    return { width: 24, height: 24, channels: 3, data: Uint8Array.from(f, (v) => Math.round(v * 255)) };
  });
  const cal = await calibrate(graph, calibImgs, { runtime: rt });
  const qm = quantizeModel(cal, "w8a8");
  t.ok(qm.tensors.every((tt, i) => tt.domain === "q8" || qm.graph.nodes[i].op === "input"), "every tensor on int8 codes (PReLU and leaky ReLU included)");
  const x = image(20, 20, 77);
  const plan = qm.compile(rt, 20, 20);
  const ops = new Set(plan.info.stepOps);
  t.ok(ops.has("prelu q8"), `int8 PReLU steps in the plan (${[...ops].join(", ")})`);
  const q = plan.run(x, 20, 20);
  plan.dispose();
  const f = await runLowbit(graph, x, 20, 20);
  let se = 0;
  const clip = (v: number) => Math.min(1, Math.max(0, v));
  for (let i = 0; i < q.length; i++) se += (clip(q[i]) - clip(f[i])) ** 2;
  const psnr = 10 * Math.log10(1 / (se / q.length));
  t.ok(psnr > 35, `W8A8 vs FP32 (both clipped to the output range): ${psnr.toFixed(1)} dB`);
});

test("ncnn lowering: unsupported constructs fail naming the layer and the param", (t) => {
  const base = (line: string, extra: L[] = []) => build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"] },
    ...extra,
    { type: line.split(" ")[0], name: "bad", bottoms: [extra.length ? "y" : "data"], tops: ["out"], params: line.split(" ").slice(1).join(" "),
      weights: line.startsWith("Convolution") ? [wts(Number(/6=(\d+)/.exec(line)![1]), "fp32")] : [] },
  ]);
  const cases: [string, RegExp, string][] = [
    ["Convolution 0=3 1=3 3=2 4=1 6=81", /'bad' \(Convolution\): stride 2×2 \(params 3, 13\)/, "strided conv"],
    ["Convolution 0=3 1=3 2=2 4=2 6=81", /dilation 2×2/, "dilated conv"],
    ["Convolution 0=3 1=2 6=36", /even kernel size 2 \(param 1\)/, "even kernel"],
    ["Convolution 0=3 1=3 4=1 6=81 9=5", /mish/, "mish activation"],
    ["Convolution 0=3 1=3 4=1 6=81 9=3 -23310=2,-1.0,1.0", /clip activation/, "clip to [−1, 1]"],
    ["Convolution 0=3 1=3 4=1 14=0 6=81", /padding left 1 \/ top 0/, "asymmetric padding"],
    ["Interp 0=3 1=2.0 2=2.0", /'bad' \(Interp\): .*bicubic resize by 2×2/, "bicubic upscale"],
    ["Interp 0=2 1=2.0 2=2.0 6=1", /align_corner/, "bilinear align_corner"],
    ["Interp 0=1 1=1.5 2=1.5", /scales 1.5×1.5/, "fractional nearest"],
    ["Pooling 0=0 4=1", /'bad' \(Pooling\): global max pooling; only global average pooling/, "global max pooling"],
    ["Pooling 0=1 1=2 2=2", /'bad' \(Pooling\): average pooling; only global average/, "windowed pooling"],
    ["Convolution 0=3 1=4 3=2 6=144", /stride 2×2 \(params 3, 13\)/, "4×4 stride-2 conv (only k×k stride k)"],
    ["Convolution 0=3 1=2 3=2 4=1 6=36", /padding \(params 4, 14, 15, 16\) on a 2×2 stride-2/, "padded 2×2/2 conv"],
    ["BinaryOp 0=0 1=1 2=0.5", /add with scalar 0.5/, "add a scalar"],
    ["Clip 0=-1.0 1=1.0", /clip to \[-1, 1\]/, "Clip layer"],
    ["Eltwise 0=2", /operation max/, "eltwise max"],
  ];
  for (const [line, re, what] of cases) {
    const n = base(line);
    throwsCode(t, () => importNcnn(n.param, n.bin), "E_UNSUPPORTED_LAYER", re, what);
  }
  const mis = build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"] },
    { type: "Split", name: "s", bottoms: ["data"], tops: ["a", "b"] },
    { type: "Convolution", name: "valid", bottoms: ["a"], tops: ["c"], params: "0=3 1=3 6=81", weights: [wts(81, "fp32")] },
    { type: "BinaryOp", name: "skip", bottoms: ["c", "b"], tops: ["out"], params: "0=0" },
  ]);
  throwsCode(t, () => importNcnn(mis.param, mis.bin), "E_UNSUPPORTED_LAYER", /'skip' \(BinaryOp\): operands are not aligned \(offsets 1\/1 and 0\/0 pixels\)/, "valid conv + skip without crop");
  const shared = build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"] },
    { type: "Convolution", name: "c", bottoms: ["data"], tops: ["a"], params: "0=12 1=3 4=1 6=324", weights: [wts(324, "fp32")] },
    { type: "Split", name: "s", bottoms: ["a"], tops: ["a0", "a1"] },
    { type: "PixelShuffle", name: "ps", bottoms: ["a0"], tops: ["out"], params: "0=2" },
  ]);
  throwsCode(t, () => importNcnn(shared.param, shared.bin), "E_UNSUPPORTED_LAYER", /'ps' \(PixelShuffle\): CRD pixel shuffle \(mode 0\) must be the only reader/, "CRD shuffle of a shared conv");
  const ipImage = build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"] },
    { type: "InnerProduct", name: "fc", bottoms: ["data"], tops: ["out"], params: "0=3 2=9", weights: [wts(9, "fp32")] },
  ]);
  throwsCode(t, () => importNcnn(ipImage.param, ipImage.bin), "E_UNSUPPORTED_LAYER", /'fc' \(InnerProduct\): fully connected layer on an image tensor/, "InnerProduct on an image");
  const otherGate = build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"] },
    { type: "Split", name: "s", bottoms: ["data"], tops: ["a", "b"] },
    { type: "Convolution", name: "c", bottoms: ["a"], tops: ["c"], params: "0=3 1=3 4=1 6=81", weights: [wts(81, "fp32")] },
    { type: "Pooling", name: "gap", bottoms: ["c"], tops: ["p"], params: "0=1 4=1" },
    { type: "InnerProduct", name: "fc", bottoms: ["p"], tops: ["g"], params: "0=3 2=9 9=4", weights: [wts(9, "fp32")] },
    { type: "BinaryOp", name: "mul", bottoms: ["b", "g"], tops: ["out"], params: "0=2" },
  ]);
  throwsCode(t, () => importNcnn(otherGate.param, otherGate.bin), "E_UNSUPPORTED_LAYER", /'mul' \(BinaryOp\): multiplies a tensor by a gate pooled from a different tensor/, "gate from another tensor");
  const gateAdd = build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"] },
    { type: "Split", name: "s", bottoms: ["data"], tops: ["a", "b"] },
    { type: "Pooling", name: "gap", bottoms: ["a"], tops: ["p"], params: "0=1 4=1" },
    { type: "BinaryOp", name: "add", bottoms: ["b", "p"], tops: ["out"], params: "0=0" },
  ]);
  throwsCode(t, () => importNcnn(gateAdd.param, gateAdd.bin), "E_UNSUPPORTED_LAYER", /'add' \(BinaryOp\): add with a 1-D blob/, "broadcast add of a pooled blob");
  const noInput = build([{ type: "Split", name: "s", bottoms: ["x"], tops: ["y"] }]);
  throwsCode(t, () => importNcnn(noInput.param, noInput.bin), "E_MODEL_FORMAT", /bottom blob 'x' is not produced/, "undefined bottom blob");
  const gray = build([{ type: "Input", name: "in", bottoms: [], tops: ["data"], params: "2=1" }]);
  throwsCode(t, () => importNcnn(gray.param, gray.bin), "E_UNSUPPORTED_LAYER", /input has 1 channels/, "grey input");
  t.end();
});

test("ncnn deconvolution → sub-pixel: stride/kernel/dilation sweep equals the scatter definition", (t) => {
  // Direct check of the weight rearrangement on 1-D impulses, independent of the plan: for each
  // (K, S, D), the sub-pixel conv applied to a random signal equals ncnn's scatter form up to the shift c0.
  let bad = 0, cases = 0;
  for (const K of [1, 2, 3, 4, 5]) for (const S of [1, 2, 3]) for (const D of [1, 2]) {
    const cin = 2, cout = 2, n = 9;
    const w = Float32Array.from({ length: cout * cin * K * K }, () => rng.uniform(-1, 1));
    const { weights, k, c0 } = deconvToSubpixel(w, cout, cin, K, S, D);
    const x = Array.from({ length: cin * n * n }, () => rng.uniform(-1, 1));
    // scatter: full[o][i·S + t·D] (2-D)
    const F = (n - 1) * S + D * (K - 1) + 1;
    const full = new Float64Array(cout * F * F);
    for (let o = 0; o < cout; o++) for (let c = 0; c < cin; c++) for (let y = 0; y < n; y++) for (let xx = 0; xx < n; xx++) for (let ty = 0; ty < K; ty++) for (let tx = 0; tx < K; tx++) {
      full[(o * F + y * S + ty * D) * F + xx * S + tx * D] += x[(c * n + y) * n + xx] * w[((o * cin + c) * K + ty) * K + tx];
    }
    // sub-pixel: HR O = S·Y + a reads LR Y + δ; HR index O ↔ full index O + c0 (pad 0, offsets 0)
    const q = (k - 1) / 2, cout2 = S * S * cout;
    for (let Y = 0; Y < n; Y++) for (let X = 0; X < n; X++) for (let a = 0; a < S; a++) for (let b = 0; b < S; b++) for (let o = 0; o < cout; o++) {
      let s = 0;
      for (let dy = -q; dy <= q; dy++) for (let dx = -q; dx <= q; dx++) {
        const yy = Y + dy, xx = X + dx;
        if (yy < 0 || yy >= n || xx < 0 || xx >= n) continue;
        for (let c = 0; c < cin; c++) s += x[(c * n + yy) * n + xx] * weights[(((dy + q) * k + dx + q) * cin + c) * cout2 + (a * S + b) * cout + o];
      }
      const fy = S * Y + a + c0, fx = S * X + b + c0;
      const want = fy >= 0 && fy < F && fx >= 0 && fx < F ? full[(o * F + fy) * F + fx] : NaN;
      if (!Number.isNaN(want)) {
        cases++;
        if (Math.abs(s - want) > 1e-5 && ++bad < 4) t.fail(`K${K} S${S} D${D}: (${Y},${X},${a},${b},${o}) ${s} vs ${want}`);
      }
    }
  }
  t.equal(bad, 0, `${cases} output values of 30 (K, S, D) configurations match the scatter form`);
  t.end();
});

test("ncnn import: fuzzed .param text and .bin bytes only ever throw LowbitError", (t) => {
  const net = build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"] },
    { type: "Convolution", name: "c1", bottoms: ["data"], tops: ["a"], params: "0=4 1=3 4=1 5=1 6=108 9=2 -23310=1,1.000000e-01", weights: [wts(108, "fp16"), wts(4, "raw")] },
    { type: "PReLU", name: "p", bottoms: ["a"], tops: ["b"], params: "0=4", weights: [wts(4, "raw")] },
    { type: "Deconvolution", name: "dc", bottoms: ["b"], tops: ["out"], params: "0=3 1=4 3=2 4=1 5=1 6=192", weights: [wts(192, "fp32"), wts(3, "raw")] },
  ]);
  const r = new Rng(4242);
  const alphabet = " \n=,-.0123456789e+abcXYZ";
  let ok = 0, lowbitErrors = 0, other = 0;
  for (let k = 0; k < 600; k++) {
    let param = net.param, bin = net.bin;
    if (k % 2 === 0) {
      const chars = [...param];
      for (let m = r.int(1, 4); m > 0; m--) {
        const i = r.int(0, chars.length - 1);
        const op = r.int(0, 2);
        if (op === 0) chars[i] = alphabet[r.int(0, alphabet.length - 1)];
        else if (op === 1) chars.splice(i, 1);
        else chars.splice(i, 0, alphabet[r.int(0, alphabet.length - 1)]);
      }
      param = chars.join("");
    } else {
      bin = bin.slice(0, r.next() < 0.3 ? r.int(0, bin.length) : bin.length);
      for (let m = r.int(1, 6); m > 0 && bin.length; m--) bin[r.int(0, bin.length - 1)] = r.int(0, 255);
    }
    try {
      importNcnn(param, bin);
      ok++;
    } catch (e) {
      if (e instanceof LowbitError) lowbitErrors++;
      else if (++other < 4) t.fail(`case ${k}: ${(e as Error).stack}`);
    }
  }
  t.equal(other, 0, `600 mutations: ${ok} still import, ${lowbitErrors} LowbitErrors, 0 other exceptions`);
  t.end();
});

// ---------------------------------------------------------------- UNet + SE nets (Real-CUGAN / cunet form)

/**
 * A small Real-CUGAN-shaped net: valid conv, 2×2/2 conv (space_to_depth with phase 1), valid conv, SE block
 * (global average Pooling → InnerProduct ReLU → InnerProduct sigmoid → multiply), 2×2/2 deconvolution, a
 * skip crop one pixel off the deconvolution's grid (a shift), add, 4×4/2 deconvolution (×2 output).
 * `cunet`: the gate as Scale from a second blob and the skip as a Crop to a reference blob.
 */
function unetNet(cunet: boolean) {
  return build([
    { type: "Input", name: "in", bottoms: [], tops: ["data"] },
    { type: "Convolution", name: "c1", bottoms: ["data"], tops: ["a"], params: "0=8 1=3 5=1 6=216 9=2 -23310=1,1.000000e-01", weights: [wts(216, "fp16"), wts(8, "raw", 0.1)] },
    { type: "Split", name: "s1", bottoms: ["a"], tops: ["a0", "a1"] },
    { type: "Convolution", name: "down", bottoms: ["a1"], tops: ["d"], params: "0=8 1=2 3=2 5=1 6=256 9=2 -23310=1,1.000000e-01", weights: [wts(256, "fp16"), wts(8, "raw", 0.1)] },
    { type: "Convolution", name: "c2", bottoms: ["d"], tops: ["e"], params: "0=8 1=3 5=1 6=576 9=2 -23310=1,1.000000e-01", weights: [wts(576, "fp16", 0.2), wts(8, "raw", 0.1)] },
    { type: "Split", name: "s2", bottoms: ["e"], tops: ["e0", "e1"] },
    { type: "Pooling", name: "gap", bottoms: ["e1"], tops: ["p"], params: "0=1 4=1" },
    { type: "InnerProduct", name: "fc1", bottoms: ["p"], tops: ["f1"], params: "0=4 1=1 2=32 9=1", weights: [wts(32, "fp32", 1), wts(4, "raw", 0.2)] },
    { type: "InnerProduct", name: "fc2", bottoms: ["f1"], tops: ["f2"], params: "0=8 1=1 2=32 9=4", weights: [wts(32, "fp32", 1.5), wts(8, "raw", 0.5)] },
    cunet
      ? { type: "Scale", name: "gate", bottoms: ["e0", "f2"], tops: ["g"], params: "0=-233" }
      : { type: "BinaryOp", name: "gate", bottoms: ["e0", "f2"], tops: ["g"], params: "0=2" },
    { type: "Deconvolution", name: "up", bottoms: ["g"], tops: ["u"], params: "0=8 1=2 3=2 5=1 6=256 9=2 -23310=1,1.000000e-01", weights: [wts(256, "fp16"), wts(8, "raw", 0.1)] },
    { type: "Split", name: "s3", bottoms: ["u"], tops: cunet ? ["u0", "u1"] : ["u0"] },
    cunet
      ? { type: "Crop", name: "skip", bottoms: ["a0", "u1"], tops: ["k"], params: "0=2 1=2" }
      : { type: "Crop", name: "skip", bottoms: ["a0"], tops: ["k"], params: "-23309=2,2,2 -23310=2,-2,-2 -23311=2,-2,-1" },
    { type: cunet ? "Eltwise" : "BinaryOp", name: "add", bottoms: ["k", "u0"], tops: ["v"], params: cunet ? "0=1" : "0=0" },
    { type: "Deconvolution", name: "out", bottoms: ["v"], tops: ["out"], params: "0=3 1=4 3=2 4=3 5=1 6=384", weights: [wts(384, "fp16", 0.2), wts(3, "raw", 0.1)] },
  ]);
}

/** NHWC of a CHW tensor. */
function toHwc(x: Chw): Float32Array {
  const o = new Float32Array(x.h * x.w * x.c);
  for (let i = 0; i < x.h * x.w; i++) for (let c = 0; c < x.c; c++) o[i * x.c + c] = x.data[c * x.h * x.w + i];
  return o;
}

test("ncnn lowering: UNet with 2×2/2 convs, SE blocks, skip crops and shifts (Real-CUGAN / cunet form) = reference", async (t) => {
  for (const cunet of [false, true]) {
    const net = unetNet(cunet);
    const { graph, prepad } = importNcnn(net.param, net.bin);
    const ops = graph.nodes.map((n) => n.op);
    t.ok(ops.includes("space_to_depth") && ops.includes("squeeze_excite") && ops.includes("shift"), `${cunet ? "cunet" : "cugan"} form: space_to_depth, squeeze_excite and shift nodes (${prepad} px prepad)`);
    t.ok(graph.meta.tileAlign === 2 && graph.meta.globalContext === true && graph.meta.borderPad === prepad, "meta: tileAlign 2, globalContext, borderPad = prepad");
    const s2d = graph.nodes.find((n) => n.op === "space_to_depth");
    t.ok(s2d && s2d.op === "space_to_depth" && s2d.phase === 1, "the 2×2/2 conv after a valid conv: blocks at phase 1");
    const P = parseNcnnParam(net.param);
    readNcnnWeights(P.layers, net.bin);
    for (const [w, h] of [[10, 8], [14, 12]]) {
      const x = image(w, h, 3 * w + h);
      const pad = padReplicate(hwcToChw(x, h, w), prepad);
      const W = w + 2 * prepad, H = h + 2 * prepad;
      const ref = runNcnnRef(P.layers, pad);
      t.deepEqual([ref.w, ref.h], [2 * w, 2 * h], `${w}×${h}: ncnn on the padded input gives 2W×2H`);
      const low = await runLowbit(graph, toHwc(pad), W, H);
      const d = maxDiff(low, 2 * W, ref, 2 * prepad);
      t.ok(d < 2e-5, `${w}×${h}: lowbit on the padded frame, cropped by ${2 * prepad} HR px = ncnn incl. the SE gate (max diff ${d.toExponential(2)})`);
    }
  }
  // Odd frame sides do not fit a plan of a model with tileAlign 2.
  const { graph } = importNcnn(unetNet(false).param, unetNet(false).bin);
  const rt = await testRuntime();
  const plan = new F32Plan(rt, graph, 21, 20);
  t.deepEqual([plan.maxW, plan.maxH], [22, 20], "plan size rounded up to the alignment");
  try {
    plan.run(new Float32Array(21 * 20 * 3), 21, 20);
    t.fail("odd tile should throw");
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === "E_SHAPE" && /multiples of 2/.test(e.message), `odd tile side → E_SHAPE (${(e as Error).message})`);
  }
  plan.dispose();
});

test("ncnn lowering: SE nets through the engine — tiles = ncnn per tile (the front-ends' tiling), tiled ≠ untiled, untiled = ncnn on the padded image", async (t) => {
  const net = unetNet(false);
  const { graph, prepad } = importNcnn(net.param, net.bin);
  const P = parseNcnnParam(net.param);
  readNcnnWeights(P.layers, net.bin);
  const rt = await testRuntime();
  const w = 19, h = 13;
  const f = image(w, h, 909);
  const img = { data: Uint8Array.from(f, (v) => Math.round(v * 255)), width: w, height: h, channels: 3 as const };
  const x = Float32Array.from(img.data, (v) => v / 255);
  const u8 = (v: number) => Math.floor(Math.min(1, Math.max(0, v)) * 255 + 0.5);
  const { defaultMargin } = await import("../src/engine/upscaler-api.ts");
  t.equal(defaultMargin(graph), prepad, "default margin of an SE model = its border pad (front-end tiling)");
  // Whole image: the region is the image replicate-padded by `prepad` (+ alignment), i.e. ncnn's input.
  const whole = await (await import("../src/engine/upscaler-api.ts")).createUpscaler(graph, { runtime: rt });
  const outWhole = await whole.upscale(img);
  whole.dispose();
  const { planTiles } = await import("../src/tiling/tiles.ts");
  const check = (out: Uint8Array, tile: number): number => {
    let worst = 0;
    for (const tt of planTiles(w, h, tile, prepad, prepad, 2).tiles) {
      // The front-end's input for this tile: the region (replicated beyond the image).
      const reg = new Float32Array(tt.rw * tt.rh * 3);
      for (let y = 0; y < tt.rh; y++) for (let xx = 0; xx < tt.rw; xx++) for (let c = 0; c < 3; c++) {
        const sy = Math.min(h - 1, Math.max(0, tt.ry + y)), sx = Math.min(w - 1, Math.max(0, tt.rx + xx));
        reg[(y * tt.rw + xx) * 3 + c] = x[(sy * w + sx) * 3 + c];
      }
      const ref = runNcnnRef(P.layers, hwcToChw(reg, tt.rh, tt.rw));
      // ncnn output pixel j ↔ region LR pixel j/2 + prepad … the core starts at (tt.x − tt.rx − prepad)·2.
      for (let y = 0; y < tt.h * 2; y++) for (let xx = 0; xx < tt.w * 2; xx++) for (let c = 0; c < 3; c++) {
        const ry = (tt.y - tt.ry - prepad) * 2 + y, rx = (tt.x - tt.rx - prepad) * 2 + xx;
        const want = u8(ref.data[(c * ref.h + ry) * ref.w + rx]);
        worst = Math.max(worst, Math.abs(out[((tt.y * 2 + y) * w * 2 + tt.x * 2 + xx) * 3 + c] - want));
      }
    }
    return worst;
  };
  t.ok(check(outWhole.data, 1e9) <= 1, `whole image = ncnn on the image replicate-padded by ${prepad} (every 8-bit pixel within 1 level)`);
  const up = await (await import("../src/engine/upscaler-api.ts")).createUpscaler(graph, { runtime: rt, tile: 8 });
  const outTiled = await up.upscale(img);
  up.dispose();
  t.ok(check(outTiled.data, 8) <= 1, `tile 8 (${planTiles(w, h, 8, prepad, prepad, 2).tiles.length} tiles): each core = ncnn on that tile's padded region (SE pooled per tile, as waifu2x/realcugan-ncnn-vulkan)`);
  let differ = 0;
  for (let i = 0; i < outTiled.data.length; i++) if (outTiled.data[i] !== outWhole.data[i]) differ++;
  t.ok(differ > 0, `tiled ≠ untiled: ${differ} of ${outTiled.data.length} values differ (global pooling per tile; no margin makes SE tiles exact)`);
});

test("ncnn lowering: W8A8 of a UNet/SE net — space_to_depth and shift on int8 codes, the SE gate as an FP32 island", async (t) => {
  const net = unetNet(false);
  const { graph, prepad } = importNcnn(net.param, net.bin);
  const rt = await testRuntime();
  const calibImgs = [0, 1, 2].map((s) => {
    const f = image(24, 24, 200 + s);
    return { width: 24, height: 24, channels: 3, data: Uint8Array.from(f, (v) => Math.round(v * 255)) };
  });
  const qm = quantizeModel(await calibrate(graph, calibImgs, { runtime: rt }), "w8a8");
  const S = 20 + 2 * prepad;
  const x = toHwc(padReplicate(hwcToChw(image(20, 20, 78), 20, 20), prepad));
  const plan = qm.compile(rt, S, S);
  const ops = new Set(plan.info.stepOps);
  t.ok(ops.has("space_to_depth q8") && ops.has("shift q8") && ops.has("squeeze_excite f32"), `int8 space_to_depth / shift, FP32 SE gate (${[...ops].join(", ")})`);
  const q = plan.run(x, S, S);
  plan.dispose();
  const f = await runLowbit(graph, x, S, S);
  let se = 0, n = 0;
  const clip = (v: number) => Math.min(1, Math.max(0, v));
  for (let y = 2 * prepad; y < 2 * (S - prepad); y++) for (let xx = 2 * prepad; xx < 2 * (S - prepad); xx++) for (let c = 0; c < 3; c++) {
    const i = (y * 2 * S + xx) * 3 + c;
    se += (clip(q[i]) - clip(f[i])) ** 2;
    n++;
  }
  const psnr = 10 * Math.log10(1 / (se / n));
  t.ok(psnr > 35, `W8A8 vs FP32 on the output region: ${psnr.toFixed(1)} dB`);
});

test("ncnn UNet/SE graphs: .lowbit round trip (FP32 and W8A8 run bit-identically after reload), corrupted files rejected; ONNX export refuses", async (t) => {
  const { saveLowbit, loadLowbit } = await import("../src/io/lowbit-file.ts");
  const { exportOnnx } = await import("../src/io/onnx/export.ts");
  const { QuantizedModel } = await import("../src/quant/quantize-model.ts");
  const { graph, prepad } = importNcnn(unetNet(true).param, unetNet(true).bin);
  const rt = await testRuntime();
  const S = 12 + 2 * prepad;
  const x = toHwc(padReplicate(hwcToChw(image(12, 12, 31), 12, 12), prepad));
  const bytes = saveLowbit(graph);
  const g2 = loadLowbit(bytes) as import("../src/graph/ir.ts").Graph;
  t.ok(g2.meta.tileAlign === 2 && g2.meta.globalContext === true && g2.nodes.some((n) => n.op === "space_to_depth" && n.spatial === 0.5),
    `FP32 .lowbit (${bytes.length} B): meta and fractional spatial factors survive`);
  const a = await runLowbit(graph, x, S, S), b = await runLowbit(g2, x, S, S);
  t.equal(firstMismatch(a, b), -1, "FP32 output after reload is bit-identical");
  const calibImgs = [0, 1].map((s) => ({ width: 24, height: 24, channels: 3, data: Uint8Array.from(image(24, 24, 300 + s), (v) => Math.round(v * 255)) }));
  const qm = quantizeModel(await calibrate(graph, calibImgs, { runtime: rt }), "w8a8");
  const qb = saveLowbit(qm);
  const q2 = loadLowbit(qb);
  t.ok(q2 instanceof QuantizedModel, "W8A8 model reloads as a QuantizedModel");
  const p1 = qm.compile(rt, S, S), y1 = p1.run(x, S, S);
  p1.dispose();
  const p2 = (q2 as InstanceType<typeof QuantizedModel>).compile(rt, S, S), y2 = p2.run(x, S, S);
  p2.dispose();
  t.equal(firstMismatch(y1, y2), -1, "W8A8 output after reload is bit-identical");
  // Corruptions: a missing SE tensor, a loosened tile alignment.
  const text = new TextDecoder().decode(bytes);
  const edit = (from: string, to: string): Uint8Array => {
    const i = text.indexOf(from);
    if (i < 0) throw new Error(`no '${from}' in the header`);
    const out = bytes.slice();
    out.set(new TextEncoder().encode(to.padEnd(from.length, " ")), i);
    return out;
  };
  throwsCode(t, () => loadLowbit(edit('\\"tileAlign\\":2', '\\"tileAlign\\":1')), "E_MODEL_FORMAT", /meta\.tileAlign 1 differs from the graph's 2/, "tileAlign edited to 1");
  throwsCode(t, () => loadLowbit(edit('"gate.fc1.weight"', '"gate.fc9.weight"')), "E_MODEL_FORMAT", /gate\.fc1\.weight/, "SE tensor renamed");
  throwsCode(t, () => exportOnnx(graph), "E_UNSUPPORTED_LAYER", /'down\/space_to_depth'.*space_to_depth/, "exportOnnx");
});

test("ncnn UNet/SE model in a 2-worker pool (.lowbit bytes): aligned regions, SE per tile, = in-process tile for tile", async (t) => {
  const { saveLowbit } = await import("../src/io/lowbit-file.ts");
  const { createWorkerPool } = await import("../src/worker/pool.ts");
  const { createUpscaler } = await import("../src/engine/upscaler-api.ts");
  const { testBackend } = await import("./util/runtime.ts");
  const { graph } = importNcnn(unetNet(false).param, unetNet(false).bin);
  const bytes = saveLowbit(graph);
  const w = 23, h = 17;
  const img = { data: Uint8Array.from(image(w, h, 4242), (v) => Math.round(v * 255)), width: w, height: h, channels: 3 as const };
  const rt = await testRuntime();
  const pool = await createWorkerPool({ model: bytes, size: 2, backend: testBackend() });
  t.equal(pool.info.tileAlign, 2, "workers report the model's tile alignment");
  for (const tile of [undefined, 9]) {
    const up = await createUpscaler(graph, { runtime: rt, ...(tile ? { tile } : {}) });
    const want = await up.upscale(img);
    up.dispose();
    const got = await pool.upscale(img, tile ? { tile } : {});
    let diff = 0;
    for (let i = 0; i < want.data.length; i++) if (got.data[i] !== want.data[i]) diff++;
    t.equal(diff, 0, `${tile ? `tile ${tile}` : "default tile"}: pool output = in-process (${want.width}×${want.height})`);
  }
  pool.dispose();
});

function firstMismatch(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}
