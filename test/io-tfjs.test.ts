import test from "tape";
import { evalGraph } from "./util/eval-graph.ts";
import * as tf from "@tensorflow/tfjs";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Graph, Node } from "../src/graph/ir.ts";
import { GraphBuilder } from "../src/graph/builder.ts";
import { receptiveRadius, validateGraph } from "../src/graph/validate.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import {
  checkShardPath, float16ToNumber, loadTfjsModel, readTfjsArtifacts, type TfjsModelBuffers,
} from "../src/io/tfjs/index.ts";
import { getModelInfo, listModels, loadModel, resolveModelPath } from "../src/models/registry.ts";
import { loadTfjsReference, useBackend } from "./util/tfjs-reference.ts";
import { Rng } from "./util/rng.ts";

// ---------------------------------------------------------------------------------------------
// helpers

async function rejects(t: test.Test, p: Promise<unknown> | (() => unknown), code: string, re: RegExp | null, label: string): Promise<void> {
  try {
    await (typeof p === "function" ? p() : p);
    t.fail(`${label}: should throw ${code}`);
  } catch (e) {
    const ok = e instanceof LowbitError && e.code === code && (re === null || re.test(e.message));
    t.ok(ok, `${label}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function counts(g: Graph): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of g.nodes) {
    const k = n.op === "activation" ? `act:${n.activation.kind}` : n.op;
    c[k] = (c[k] ?? 0) + 1;
  }
  return c;
}

function convs(g: Graph): Extract<Node, { op: "conv2d" }>[] {
  return g.nodes.filter((n): n is Extract<Node, { op: "conv2d" }> => n.op === "conv2d");
}

/** A tiny Keras-2-format functional model.json + weights, written by hand. */
interface SynthTensor { name: string; shape: number[]; values: Float32Array }
type L = Record<string, unknown>;
const inb = (...names: string[]) => [names.map((n) => [n, 0, 0, {}])];
const inputL = (name = "in", c = 3): L => ({ class_name: "InputLayer", name, config: { batch_input_shape: [null, null, null, c], dtype: "float32", name }, inbound_nodes: [] });
const convL = (name: string, from: string, filters: number, k: number, extra: L = {}): L => ({
  class_name: "Conv2D", name, inbound_nodes: inb(from),
  config: { name, filters, kernel_size: [k, k], strides: [1, 1], padding: "same", data_format: "channels_last", dilation_rate: [1, 1], groups: 1, activation: "linear", use_bias: true, ...extra },
});
const simpleL = (cls: string, name: string, from: string[], config: L = {}): L => ({ class_name: cls, name, config: { name, ...config }, inbound_nodes: inb(...from) });

function synth(layers: L[], tensors: SynthTensor[], out: string, input = "in", extra: L = {}): { modelJson: L; weights: ArrayBuffer } {
  const total = tensors.reduce((n, t) => n + t.values.length * 4, 0);
  const buf = new Uint8Array(total);
  let o = 0;
  for (const t of tensors) {
    buf.set(new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength), o);
    o += t.values.byteLength;
  }
  return {
    modelJson: {
      format: "layers-model", generatedBy: "test", convertedBy: "test",
      modelTopology: { keras_version: "2.10.0", backend: "tensorflow", model_config: { class_name: "Functional", config: { name: "synth", layers, input_layers: [[input, 0, 0]], output_layers: [[out, 0, 0]] } } },
      weightsManifest: [{ paths: ["group1-shard1of1.bin"], weights: tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: "float32" })) }],
      ...extra,
    },
    weights: buf.buffer,
  };
}

function rand(rng: Rng, shape: number[], a = 0.3): Float32Array {
  return rng.fillF32(new Float32Array(shape.reduce((x, y) => x * y, 1)), -a, a);
}

/** in(3) → c1 3×3 (3→8, relu) → c2 1×1 'valid' (8→12) → PixelShuffle2x → out 3×3 (3→3) */
function tinyModel(seed = 1): { modelJson: L; weights: ArrayBuffer; tensors: SynthTensor[] } {
  const rng = new Rng(seed);
  const tensors: SynthTensor[] = [
    { name: "c1/kernel", shape: [3, 3, 3, 8], values: rand(rng, [3, 3, 3, 8]) },
    { name: "c1/bias", shape: [8], values: rand(rng, [8]) },
    { name: "c2/kernel", shape: [1, 1, 8, 12], values: rand(rng, [1, 1, 8, 12]) },
    { name: "c2/bias", shape: [12], values: rand(rng, [12]) },
    { name: "out/kernel", shape: [3, 3, 3, 3], values: rand(rng, [3, 3, 3, 3]) },
    { name: "out/bias", shape: [3], values: rand(rng, [3]) },
  ];
  const layers = [
    inputL(),
    convL("c1", "in", 8, 3, { activation: "relu" }),
    convL("c2", "c1", 12, 1, { padding: "valid" }),
    simpleL("PixelShuffle2x", "ps", ["c2"], { scale: 2 }),
    convL("out", "ps", 3, 3),
  ];
  return { ...synth(layers, tensors, "out"), tensors };
}

function clone<T>(x: T): T {
  return JSON.parse(JSON.stringify(x));
}


// ---------------------------------------------------------------------------------------------
// bundled models

/** models.md "Inventory" and "Layer counts". */
const FAMILY: Record<string, { conv: number; relu: number; concat: number; add: number; beta: number; kernels: Record<number, number> }> = {
  slim: { conv: 12, relu: 4, concat: 3, add: 3, beta: 0, kernels: { 3: 8, 1: 3, 5: 1 } },
  medium: { conv: 28, relu: 12, concat: 11, add: 11, beta: 0, kernels: { 3: 16, 1: 11, 5: 1 } },
  legacy: { conv: 48, relu: 32, concat: 31, add: 11, beta: 0, kernels: { 3: 36, 1: 11, 5: 1 } },
  rrdn: { conv: 154, relu: 120, concat: 120, add: 41, beta: 40, kernels: { 3: 154 } },
};
const PARAMS: Record<string, number> = {
  "esrgan-slim-x2": 222075, "esrgan-slim-x3": 226815, "esrgan-slim-x4": 233451, "esrgan-slim-x8": 278955,
  "esrgan-medium-x2": 693235, "esrgan-medium-x3": 697975, "esrgan-medium-x4": 704611, "esrgan-medium-x8": 750115,
  "esrgan-thick-x2": 7239968, "esrgan-thick-x3": 7248623, "esrgan-thick-x4": 7260740, "esrgan-thick-x8": 7343828,
  "default-model": 222075, "legacy-div2k-x2": 2619635, "legacy-div2k-x3": 2624375, "legacy-div2k-x4": 2631011,
  "psnr-small-x2": 2619635, "legacy-gans-x4": 4176100,
};
const MACS: Record<string, number> = {
  "esrgan-slim-x2": 222544, "esrgan-slim-x3": 232129, "esrgan-slim-x4": 252352, "esrgan-slim-x8": 604864,
  "esrgan-medium-x2": 692560, "esrgan-medium-x3": 702145, "esrgan-medium-x4": 722368, "esrgan-medium-x8": 1074880,
  "esrgan-thick-x2": 7234308, "esrgan-thick-x3": 7243353, "esrgan-thick-x4": 7256016, "esrgan-thick-x8": 7342848,
  "default-model": 222544, "legacy-div2k-x2": 2617680, "legacy-div2k-x3": 2627265, "legacy-div2k-x4": 2647488,
  "psnr-small-x2": 2617680, "legacy-gans-x4": 4172400,
};
/** models.md §6: 9 / 17 / 37 / 153 + 1/s. */
const RADIUS_BASE: Record<string, number> = { slim: 9, medium: 17, legacy: 37, rrdn: 153 };

function family(name: string): string {
  if (name.startsWith("esrgan-slim") || name === "default-model") return "slim";
  if (name.startsWith("esrgan-medium")) return "medium";
  if (name.startsWith("esrgan-thick") || name === "legacy-gans-x4") return "rrdn";
  return "legacy";
}

test("registry: names, packages and meta per models.md", (t) => {
  const names = listModels().map((m) => m.name).sort();
  const want = [
    ...[2, 3, 4, 8].flatMap((s) => [`esrgan-slim-x${s}`, `esrgan-medium-x${s}`, `esrgan-thick-x${s}`]),
    "default-model", "legacy-div2k-x2", "legacy-div2k-x3", "legacy-div2k-x4", "psnr-small-x2", "legacy-gans-x4",
  ].sort();
  t.deepEqual(names, want, "18 short names");
  t.deepEqual(getModelInfo("psnr-small-x2")!.inputRange, [0, 1], "psnr-small defaults to 0–1 input");
  t.deepEqual(getModelInfo("psnr-small-x2")!.declaredRange, [0, 255], "…while the package declares 0–255");
  t.deepEqual(getModelInfo("esrgan-thick-x4")!.outputRange, [0, 1], "rrdn 0–1");
  t.deepEqual(getModelInfo("legacy-div2k-x3")!.inputRange, [0, 255], "rdn 0–255");
  const m = getModelInfo("esrgan-slim-x2")!;
  m.inputRange[0] = 99;
  t.equal(getModelInfo("esrgan-slim-x2")!.inputRange[0], 0, "returned entries are copies");
  t.equal(getModelInfo("nope"), undefined);
  t.end();
});

test("registry: every bundled model loads with the documented structure", async (t) => {
  for (const info of listModels()) {
    const g = await loadModel(info.name);
    const f = FAMILY[family(info.name)];
    const c = counts(g);
    t.deepEqual(
      [c.conv2d, c["act:relu"], c.concat, c.add, c.scale ?? 0],
      [f.conv, f.relu, f.concat, f.add, f.beta],
      `${info.name}: conv/relu/concat/add/multiplybeta = ${f.conv}/${f.relu}/${f.concat}/${f.add}/${f.beta}`,
    );
    const ks: Record<number, number> = {};
    for (const n of convs(g)) ks[n.k] = (ks[n.k] ?? 0) + 1;
    t.deepEqual(ks, f.kernels, `${info.name}: kernel sizes`);
    t.equal(c[info.arch === "rdn" ? "upsample_nearest" : "depth_to_space"], 1, `${info.name}: one ${info.arch === "rdn" ? "UpSampling2D" : "PixelShuffle"}`);
    t.equal(g.meta.scale, info.scale, `${info.name}: scale ×${info.scale}`);
    t.equal(g.nodes[g.input].channels, 3);
    t.equal(g.nodes[g.output].channels, 3);
    t.equal(g.nodes[g.output].spatial, info.scale);
    const params = convs(g).reduce((s, n) => s + n.weights.length + (n.bias?.length ?? 0), 0);
    t.equal(params, PARAMS[info.name], `${info.name}: ${PARAMS[info.name]} parameters`);
    const macs = convs(g).reduce((s, n) => s + n.weights.length * n.spatial * n.spatial, 0);
    t.equal(macs, MACS[info.name], `${info.name}: ${MACS[info.name]} MACs per LR pixel`);
    const r = RADIUS_BASE[family(info.name)] + 1 / info.scale;
    t.ok(Math.abs(g.meta.receptiveRadius! - r) < 1e-12, `${info.name}: receptive radius ${g.meta.receptiveRadius} = ${r}`);
    t.ok(Math.abs(info.receptiveRadius - r) < 1e-12, `${info.name}: registry radius`);
    t.deepEqual([g.meta.inputRange, g.meta.outputRange, g.meta.arch, g.meta.name], [info.inputRange, info.outputRange, info.arch, info.name], `${info.name}: meta`);
    const allConv = convs(g);
    t.ok(allConv.every((n) => n.bias && n.activation.kind === "linear"), `${info.name}: convs have bias, linear activation`);
    if (info.weights === "uint8") {
      t.ok(allConv.every((n) => n.sourceQuant?.kernel?.dtype === "uint8" && n.sourceQuant.bias?.q.length === n.cout), `${info.name}: uint8 codes kept`);
    } else {
      t.ok(allConv.every((n) => n.sourceQuant === undefined), `${info.name}: float file has no codes`);
    }
  }
});

test("registry: default-model is byte-identical to esrgan-slim-x2", async (t) => {
  const [a, b] = await Promise.all([loadModel("default-model"), loadModel("esrgan-slim-x2")]);
  const ca = convs(a), cb = convs(b);
  t.equal(ca.length, cb.length);
  t.ok(ca.every((n, i) => n.name === cb[i].name && Buffer.compare(Buffer.from(n.weights.buffer), Buffer.from(cb[i].weights.buffer)) === 0), "same weights");
});

test("uint8 decode: bit-identical to tfjs io.decodeWeights on every legacy model", async (t) => {
  await useBackend("cpu");
  let tensors = 0, nullZp = 0;
  for (const name of ["legacy-div2k-x2", "legacy-div2k-x3", "legacy-div2k-x4", "psnr-small-x2", "legacy-gans-x4"]) {
    const path = await resolveModelPath(name);
    const g = await loadModel(name);
    const doc = JSON.parse(readFileSync(path, "utf8"));
    const bin = readFileSync(path.replace(/model\.json$/, doc.weightsManifest[0].paths[0]));
    const ref = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), doc.weightsManifest[0].weights);
    let mismatches = 0;
    let zeroOk = true;
    for (const n of convs(g)) {
      for (const [suffix, arr, q] of [["kernel", n.weights, n.sourceQuant?.kernel], ["bias", n.bias!, n.sourceQuant?.bias]] as const) {
        const r = ref[`${n.name}/${suffix}`].dataSync() as Float32Array;
        const a = new Uint32Array(arr.buffer, arr.byteOffset, arr.length);
        const b = new Uint32Array(r.buffer, r.byteOffset, r.length);
        if (a.length !== b.length) mismatches++;
        for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) mismatches++;
        tensors++;
        if (q!.zeroPoint === null) nullZp++;
        else if (Math.abs(q!.zeroPoint * q!.scale + q!.min) > 1e-15) zeroOk = false;
        for (let i = 0; i < q!.q.length; i += 997) if (Math.fround(q!.q[i] * q!.scale + q!.min) !== arr[i]) zeroOk = false;
      }
    }
    tf.dispose(Object.values(ref));
    t.equal(mismatches, 0, `${name}: every decoded float has tfjs's exact bits`);
    t.ok(zeroOk, `${name}: codes and zero points reproduce the floats`);
  }
  t.equal(tensors, 692, "692 legacy tensors");
  t.equal(nullZp, 70, "70 all-one-sign tensors have no integer zero point (models.md §5)");
});

test("uint16 and float16 quantization: implemented, bit-identical to tfjs", async (t) => {
  await useBackend("cpu");
  const rng = new Rng(7);
  const n = 4096;
  const u16 = new Uint16Array(n).map(() => rng.int(0, 65535));
  const f16 = new Uint16Array(n).map(() => {
    const v = rng.int(0, 65535);
    return ((v >> 10) & 0x1f) === 31 ? v & 0xfbff : v; // no Inf/NaN
  });
  f16.set([0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x7bff, 0xfbff, 0x3c00], 0);
  const specs = [
    { name: "a/kernel", shape: [1, 1, 64, 64], dtype: "float32" as const, quantization: { dtype: "uint16" as const, scale: 3.0517578125e-5 * 1.37, min: -0.987654321 } },
    { name: "b/kernel", shape: [1, 1, 64, 64], dtype: "float32" as const, quantization: { dtype: "float16" as const } },
  ];
  const bytes = new Uint8Array(4 * n);
  bytes.set(new Uint8Array(u16.buffer), 0);
  bytes.set(new Uint8Array(f16.buffer), 2 * n);
  const ref = tf.io.decodeWeights(bytes.slice().buffer, specs);
  const { decodeGroups } = await import("../src/io/tfjs/weights.ts");
  const mine = decodeGroups([{ paths: ["x.bin"], weights: specs }], [[bytes]]);
  for (const s of specs) {
    const a = new Uint32Array(mine.get(s.name)!.values.buffer);
    const b = new Uint32Array((ref[s.name].dataSync() as Float32Array).slice().buffer);
    t.ok(a.length === n && a.every((v, i) => v === b[i]), `${s.quantization.dtype}: all ${n} values bit-identical`);
  }
  tf.dispose(Object.values(ref));
  t.equal(float16ToNumber(0x3c00), 1);
  t.equal(float16ToNumber(0x0001), 2 ** -24, "smallest subnormal");
  t.equal(float16ToNumber(0x7bff), 65504, "largest finite");
  t.ok(Object.is(float16ToNumber(0x8000), -0), "-0");
  t.equal(mine.get("a/kernel")!.quant?.dtype, "uint16", "uint16 keeps codes");
  t.equal(mine.get("b/kernel")!.quant, undefined, "float16 has no affine codes");
});

// ---------------------------------------------------------------------------------------------
// synthetic models: semantics and error paths

test("synthetic model: loads from memory, file and URL into the same graph", async (t) => {
  const m = tinyModel();
  const g = await loadTfjsModel({ modelJson: m.modelJson, weights: m.weights });
  t.deepEqual(g.nodes.map((n) => [n.name, n.op, n.channels, n.spatial]), [
    ["in", "input", 3, 1], ["c1", "conv2d", 8, 1], ["c2", "conv2d", 12, 1], ["ps", "depth_to_space", 3, 2], ["out", "conv2d", 3, 2],
  ]);
  t.equal(g.meta.scale, 2);
  t.equal(g.meta.receptiveRadius, 1 + 0 + 0.5, "radius 1 (3×3 LR) + 1/2 (3×3 HR)");
  const c1 = g.nodes[1] as Extract<Node, { op: "conv2d" }>;
  t.equal(c1.activation.kind, "relu");
  t.deepEqual(Array.from(c1.weights), Array.from(m.tensors[0].values), "kernel HWIO bytes kept as is");
  // Weight buffers may also come split per shard, as text or bytes for model.json.
  const text = JSON.stringify(m.modelJson);
  const g2 = await loadTfjsModel({ modelJson: new TextEncoder().encode(text), weights: [new Uint8Array(m.weights)] });
  t.deepEqual(Array.from((g2.nodes[4] as Extract<Node, { op: "conv2d" }>).weights), Array.from(m.tensors[4].values), "from bytes");
  // file
  const dir = mkdtempSync(join(tmpdir(), "lowbit-tfjs-"));
  writeFileSync(join(dir, "model.json"), text);
  writeFileSync(join(dir, "group1-shard1of1.bin"), new Uint8Array(m.weights));
  const g3 = await loadTfjsModel(dir);
  t.equal(g3.nodes.length, 5, "folder path → model.json");
  const g4 = await loadTfjsModel(new URL(`file://${dir}/model.json`));
  t.equal(g4.nodes.length, 5, "file: URL");
  // URL with a stub fetch: shards are resolved against the model URL.
  const seen: string[] = [];
  const fetchStub = (async (u: URL | string) => {
    const href = String(u);
    seen.push(href);
    if (href === "https://models.test/a/b/model.json?sig=1") return new Response(text);
    if (href === "https://models.test/a/b/group1-shard1of1.bin") return new Response(new Uint8Array(m.weights));
    return new Response("nope", { status: 404 });
  }) as typeof fetch;
  const g5 = await loadTfjsModel("https://models.test/a/b/model.json?sig=1", { fetch: fetchStub });
  t.equal(g5.nodes.length, 5, "https URL");
  t.deepEqual(seen, ["https://models.test/a/b/model.json?sig=1", "https://models.test/a/b/group1-shard1of1.bin"], "shard URL relative to model.json");
});

test("synthetic model: IR semantics match tfjs (incl. DCR pixel shuffle, 1×1 'valid')", async (t) => {
  const m = tinyModel(3);
  const g = await loadTfjsModel({ modelJson: m.modelJson, weights: m.weights });
  const ref = await loadTfjsReference({ modelJson: clone(m.modelJson), weights: m.weights }, { backend: "cpu" });
  const rng = new Rng(5);
  const x = rng.fillF32(new Float32Array(5 * 7 * 3), 0, 1);
  const a = evalGraph(g, x, 5, 7);
  const b = ref.predict(x, 5, 7);
  ref.dispose();
  t.deepEqual(b.shape, [1, 10, 14, 3]);
  let err = 0;
  for (let i = 0; i < a.data.length; i++) err = Math.max(err, Math.abs(a.data[i] - b.data[i]));
  t.ok(err < 1e-5, `max |lowbit IR − tfjs| = ${err.toExponential(2)}`);
});

test("synthetic model: Keras 3 inbound format and Sequential models", async (t) => {
  const m = tinyModel();
  const k3 = clone(m.modelJson) as any;
  for (const l of k3.modelTopology.model_config.config.layers) {
    if (l.inbound_nodes.length) {
      const refs = l.inbound_nodes[0].map((r: unknown[]) => ({ class_name: "__keras_tensor__", config: { shape: [null, null, null, 3], dtype: "float32", keras_history: [r[0], 0, 0] } }));
      l.inbound_nodes = [{ args: refs.length === 1 ? refs : [refs], kwargs: {} }];
    }
  }
  k3.modelTopology.model_config.config.input_layers = ["in", 0, 0];
  k3.modelTopology.model_config.config.output_layers = ["out", 0, 0];
  const g = await loadTfjsModel({ modelJson: k3, weights: m.weights });
  t.deepEqual(g.nodes.map((n) => n.name), ["in", "c1", "c2", "ps", "out"], "Keras 3 functional");

  const seq = clone(m.modelJson) as any;
  const layers = seq.modelTopology.model_config.config.layers.slice(1).map((l: any) => ({ class_name: l.class_name, config: l.config }));
  layers[0].config.batch_input_shape = [null, null, null, 3];
  seq.modelTopology.model_config = { class_name: "Sequential", config: { name: "seq", layers } };
  const g2 = await loadTfjsModel({ modelJson: seq, weights: m.weights });
  t.deepEqual(g2.nodes.map((n) => [n.name, n.op]), [["input", "input"], ["c1", "conv2d"], ["c2", "conv2d"], ["ps", "depth_to_space"], ["out", "conv2d"]], "Sequential");
});

test("synthetic model: layer order is topological even when the file's is not; dead layers dropped", async (t) => {
  const m = tinyModel();
  const j = clone(m.modelJson) as any;
  const ls = j.modelTopology.model_config.config.layers;
  ls.reverse();
  ls.push(simpleL("Activation", "dead", ["c1"], { activation: "relu" }));
  const g = await loadTfjsModel({ modelJson: j, weights: m.weights });
  t.deepEqual(g.nodes.map((n) => n.name), ["in", "c1", "c2", "ps", "out"]);
  validateGraph(g);
  t.pass("validates");
});

test("errors: weight bytes (truncated, extra, missing shard/tensor, unused tensor, NaN)", async (t) => {
  const m = tinyModel();
  const bytes = new Uint8Array(m.weights);
  await rejects(t, loadTfjsModel({ modelJson: m.modelJson, weights: bytes.slice(0, bytes.length - 4) }), "E_MODEL_FORMAT", /'out\/bias'.*truncated/, "truncated shard");
  await rejects(t, loadTfjsModel({ modelJson: m.modelJson, weights: bytes.slice(0, 100) }), "E_MODEL_FORMAT", /'c1\/kernel'/, "truncated early names the first tensor cut");
  const longer = new Uint8Array(bytes.length + 3);
  longer.set(bytes);
  await rejects(t, loadTfjsModel({ modelJson: m.modelJson, weights: longer }), "E_MODEL_FORMAT", /3 extra bytes.*group1-shard1of1\.bin/, "extra bytes");
  await rejects(t, loadTfjsModel({ modelJson: m.modelJson, weights: [bytes, bytes] }), "E_MODEL_FORMAT", /1 shard\(s\) but 2/, "shard count");

  // a tensor missing from the manifest (bytes removed too)
  const j = clone(m.modelJson) as any;
  j.weightsManifest[0].weights = j.weightsManifest[0].weights.filter((w: any) => w.name !== "c2/bias");
  const noBias = new Uint8Array(bytes.length - 48);
  noBias.set(bytes.subarray(0, 4 * (216 + 8 + 96)));
  noBias.set(bytes.subarray(4 * (216 + 8 + 96 + 12)), 4 * (216 + 8 + 96));
  await rejects(t, loadTfjsModel({ modelJson: j, weights: noBias }), "E_MODEL_FORMAT", /'c2'.*'c2\/bias' is missing/, "missing tensor");

  // a tensor no layer uses
  const j2 = clone(m.modelJson) as any;
  j2.weightsManifest[0].weights.push({ name: "ghost/kernel", shape: [2], dtype: "float32" });
  const plus = new Uint8Array(bytes.length + 8);
  plus.set(bytes);
  await rejects(t, loadTfjsModel({ modelJson: j2, weights: plus }), "E_MODEL_FORMAT", /'ghost\/kernel' matches no layer/, "unused tensor");
  const j3 = clone(m.modelJson) as any;
  j3.weightsManifest[0].weights.push({ name: "c1/kernel", shape: [2], dtype: "float32" });
  await rejects(t, loadTfjsModel({ modelJson: j3, weights: plus }), "E_MODEL_FORMAT", /appears twice/, "duplicate tensor");
  const j4 = clone(m.modelJson) as any;
  j4.weightsManifest[0].weights[0].shape = [3, 3, 3, 9];
  await rejects(t, loadTfjsModel({ modelJson: j4, weights: new Uint8Array(bytes.length + 108) }), "E_MODEL_FORMAT", /'c1\/kernel' has shape \[3,3,3,9\]/, "kernel shape vs filters");

  // NaN / Inf
  for (const bad of [NaN, Infinity]) {
    const w = new Float32Array(m.weights.slice(0));
    w[216 + 8 + 5] = bad; // inside c2/kernel
    await rejects(t, loadTfjsModel({ modelJson: m.modelJson, weights: w }), "E_MODEL_FORMAT", new RegExp(`layer 'c2'.*${bad}`), `${bad} weight names the layer`);
  }
  const jq = clone(m.modelJson) as any;
  jq.weightsManifest[0].weights[0].quantization = { dtype: "uint8", scale: null, min: 0 };
  await rejects(t, loadTfjsModel({ modelJson: jq, weights: bytes }), "E_MODEL_FORMAT", /'c1\/kernel': uint8 quantization needs finite/, "bad quantization params");
  jq.weightsManifest[0].weights[0].quantization = { dtype: "int4" };
  await rejects(t, loadTfjsModel({ modelJson: jq, weights: bytes }), "E_MODEL_FORMAT", /'int4' is not supported/, "unknown quantization dtype");

  // missing shard / model files on disk
  const dir = mkdtempSync(join(tmpdir(), "lowbit-tfjs-"));
  writeFileSync(join(dir, "model.json"), JSON.stringify(m.modelJson));
  await rejects(t, loadTfjsModel(join(dir, "model.json")), "E_MODEL_FORMAT", /shard 'group1-shard1of1\.bin'.*missing/, "missing shard file");
  await rejects(t, loadTfjsModel(join(dir, "nope.json")), "E_IO", /nope\.json/, "missing model.json");
  const fetch404 = (async (u: URL | string) => (String(u).endsWith("model.json") ? new Response(JSON.stringify(m.modelJson)) : new Response("", { status: 404 }))) as typeof fetch;
  await rejects(t, loadTfjsModel("https://x.test/m/model.json", { fetch: fetch404 }), "E_MODEL_FORMAT", /weight shard 'group1-shard1of1\.bin'.*404/, "shard 404");
  const fetchDown = (async () => { throw new TypeError("network down"); }) as typeof fetch;
  await rejects(t, loadTfjsModel("https://x.test/m/model.json", { fetch: fetchDown }), "E_IO", /network down/, "network error");
  await rejects(t, loadTfjsModel({ modelJson: "{not json", weights: bytes }), "E_MODEL_FORMAT", /not valid JSON/, "bad JSON");
});

test("errors: unsupported layers and options name the layer, class and option", async (t) => {
  const m = tinyModel();
  const variant = (edit: (layers: any[]) => void) => {
    const j = clone(m.modelJson) as any;
    edit(j.modelTopology.model_config.config.layers);
    return loadTfjsModel({ modelJson: j, weights: m.weights });
  };
  const cases: [string, (ls: any[]) => void, RegExp][] = [
    ["Conv2DTranspose", (ls) => (ls[1].class_name = "Conv2DTranspose"), /'c1' \(Conv2DTranspose\).*not supported/],
    ["strides 2", (ls) => (ls[1].config.strides = [2, 2]), /'c1' \(Conv2D\): strides \[2,2\]/],
    ["dilation 2", (ls) => (ls[1].config.dilation_rate = 2), /'c1' \(Conv2D\): dilation_rate \[2,2\]/],
    ["groups", (ls) => (ls[1].config.groups = 3), /'c1' \(Conv2D\): groups 3/],
    ["valid 3×3", (ls) => (ls[1].config.padding = "valid"), /'c1' \(Conv2D\): padding 'valid' with kernel 3/],
    ["channels_first", (ls) => (ls[1].config.data_format = "channels_first"), /'c1' \(Conv2D\): data_format 'channels_first'/],
    ["non-square", (ls) => (ls[1].config.kernel_size = [3, 1]), /'c1' \(Conv2D\): kernel_size \[3, 1\]/],
    ["even kernel", (ls) => (ls[1].config.kernel_size = [2, 2]), /'c1' \(Conv2D\): kernel_size 2/],
    ["softmax", (ls) => (ls[1].config.activation = "softmax"), /'c1' \(Conv2D\): activation 'softmax'/],
    ["gelu layer", (ls) => ls.splice(2, 0, simpleL("Activation", "g", ["c1"], { activation: "gelu" })) && (ls[3].inbound_nodes = inb("g")), /'g' \(Activation\): activation 'gelu'/],
    ["bicubic", (ls) => (ls[3] = simpleL("UpSampling2D", "ps", ["c2"], { size: [2, 2], interpolation: "bicubic" })), /'ps' \(UpSampling2D\): interpolation 'bicubic'/],
    ["Lambda", (ls) => (ls[3].class_name = "Lambda"), /'ps' \(Lambda\): Lambda layers/],
    ["shuffle scale mismatch", (ls) => (ls[3].config.scale = 3), /'ps' \(PixelShuffle2x\): config scale 3/],
    ["MultiplyBeta beta", (ls) => ls.splice(2, 0, simpleL("MultiplyBeta", "mb", ["c1"], { beta: 0.5 })) && (ls[3].inbound_nodes = inb("mb")), /'mb' \(MultiplyBeta\): beta 0\.5/],
    ["shared layer", (ls) => ls[2].inbound_nodes.push(ls[2].inbound_nodes[0]), /'c2' is called 2 times/],
  ];
  for (const [label, edit, re] of cases) await rejects(t, variant(edit), "E_UNSUPPORTED_LAYER", re, label);
  const concatAxis = () => variant((ls) => {
    ls.splice(3, 0, simpleL("Concatenate", "cat", ["c2", "c2"], { axis: 1 }));
    ls[4].inbound_nodes = inb("cat");
  });
  await rejects(t, concatAxis, "E_UNSUPPORTED_LAYER", /'cat' \(Concatenate\): axis 1/, "concat axis");
  const gm = { modelJson: { format: "graph-model", modelTopology: { node: [] }, weightsManifest: [] }, weights: new ArrayBuffer(0) };
  await rejects(t, loadTfjsModel(gm), "E_UNSUPPORTED_LAYER", /graph model/, "graph model");
});

test("errors: graph structure (cycle, dangling, shapes)", async (t) => {
  const m = tinyModel();
  const variant = (edit: (layers: any[]) => void) => {
    const j = clone(m.modelJson) as any;
    edit(j.modelTopology.model_config.config.layers);
    return loadTfjsModel({ modelJson: j, weights: m.weights });
  };
  await rejects(t, variant((ls) => (ls[1].inbound_nodes = inb("c2"))), "E_MODEL_FORMAT", /cycle: c1 ← c2 ← c1|cycle: c2 ← c1 ← c2/, "cycle");
  await rejects(t, variant((ls) => (ls[2].inbound_nodes = inb("ghost"))), "E_MODEL_FORMAT", /'c2' takes its input from 'ghost'/, "dangling reference");
  await rejects(t, variant((ls) => ls.push(clone(ls[1]))), "E_MODEL_FORMAT", /two layers are named 'c1'/, "duplicate layer name");
  // Add of 8 and 12 channels
  await rejects(t, variant((ls) => {
    ls.splice(3, 0, simpleL("Add", "sum", ["c1", "c2"]));
    ls[4].inbound_nodes = inb("sum");
  }), "E_SHAPE", /'sum' \(add\).*'c1' has 8 ch.*'c2' has 12 ch/, "add channel mismatch");
  // c2 kernel expects 8 input channels; feed it the 3-channel input
  await rejects(t, variant((ls) => (ls[2].inbound_nodes = inb("in"))), "E_SHAPE", /'c2' \(conv2d\): kernel expects cin=8 but its input 'in' has 3/, "kernel cin");
  // pixel shuffle of 8 channels by 2 (needs a multiple of 4 → 8 is fine) by 3 is not
  await rejects(t, variant((ls) => { ls[3].class_name = "PixelShuffle3x"; ls[3].config.scale = 3; }), "E_SHAPE", /12 input channels are not divisible by block² = 9/, "shuffle channels");
  // config filters contradict the stored kernel
  await rejects(t, variant((ls) => ls[4].config.filters = 4), "E_MODEL_FORMAT", /out\/kernel' has shape/, "filters vs kernel");
});

test("security: manifest paths cannot leave the model folder", async (t) => {
  for (const p of ["../secret.bin", "a/../../secret.bin", "/etc/passwd", "%2e%2e/secret.bin", "a/%2E%2E/%2e%2e/x.bin", ".%2e/x.bin",
    "C:\\x.bin", "c:/x.bin", "sub\\..\\x.bin", "//evil.test/x.bin", "https://evil.test/x.bin", "file:///etc/passwd", "x\u0000.bin", "%2fetc/passwd"]) {
    await rejects(t, () => checkShardPath(p), "E_MODEL_FORMAT", /shard path/, `rejects '${p.replace("\u0000", "\\0")}'`);
  }
  t.deepEqual(checkShardPath("group1-shard1of1.bin"), ["group1-shard1of1.bin"]);
  t.deepEqual(checkShardPath("sub/./w.bin"), ["sub", ".", "w.bin"], "inner folders are fine");

  // end to end on disk: a real file outside the folder must never be read
  const m = tinyModel();
  const root = mkdtempSync(join(tmpdir(), "lowbit-tfjs-"));
  mkdirSync(join(root, "model"));
  writeFileSync(join(root, "secret.bin"), new Uint8Array(m.weights));
  const j = clone(m.modelJson) as any;
  j.weightsManifest[0].paths = ["../secret.bin"];
  writeFileSync(join(root, "model", "model.json"), JSON.stringify(j));
  await rejects(t, loadTfjsModel(join(root, "model")), "E_MODEL_FORMAT", /'\.\.\/secret\.bin'/, "file: ../ escape");
  // URL: other host / protocol-relative
  const seen: string[] = [];
  const fetchStub = (async (u: URL | string) => {
    seen.push(String(u));
    return new Response(JSON.stringify(j2));
  }) as typeof fetch;
  const j2 = clone(m.modelJson) as any;
  j2.weightsManifest[0].paths = ["//evil.test/w.bin"];
  await rejects(t, loadTfjsModel("https://models.test/m/model.json", { fetch: fetchStub }), "E_MODEL_FORMAT", /evil\.test/, "URL: other host");
  t.deepEqual(seen, ["https://models.test/m/model.json"], "nothing fetched from the other host");
});

test("security: prototype-pollution keys are ignored, never evaluated", async (t) => {
  const m = tinyModel();
  const text = JSON.stringify(m.modelJson)
    .replace('"format":"layers-model"', '"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":2}},"format":"layers-model"')
    // a conv whose only 'padding' hides in __proto__ must be treated as having none ('valid')
    .replace('"padding":"same","data_format":"channels_last","dilation_rate":[1,1],"groups":1,"activation":"relu"', '"__proto__":{"padding":"same"},"data_format":"channels_last","dilation_rate":[1,1],"groups":1,"activation":"relu"');
  t.ok(text.includes('"__proto__":{"padding"'), "fixture edited");
  await rejects(t, loadTfjsModel({ modelJson: text, weights: m.weights }), "E_UNSUPPORTED_LAYER", /'c1' \(Conv2D\): padding 'valid'/, "__proto__ values do not leak into configs");
  t.equal(({} as any).polluted, undefined, "Object.prototype untouched");
  const ok = JSON.stringify(m.modelJson).replace('"format":"layers-model"', '"__proto__":{"polluted":1},"prototype":{"x":1},"format":"layers-model"');
  const g = await loadTfjsModel({ modelJson: JSON.parse(ok), weights: m.weights });
  t.equal(g.nodes.length, 5, "object input with a __proto__ own key loads");
  t.equal(({} as any).polluted, undefined, "Object.prototype still untouched");
  // layer names that collide with Object.prototype members are just names
  const j = clone(m.modelJson) as any;
  const ls = j.modelTopology.model_config.config.layers;
  ls[1].name = ls[1].config.name = "constructor";
  ls[2].inbound_nodes = inb("constructor");
  j.weightsManifest[0].weights[0].name = "constructor/kernel";
  j.weightsManifest[0].weights[1].name = "constructor/bias";
  const g2 = await loadTfjsModel({ modelJson: j, weights: m.weights });
  t.equal(g2.nodes[1].name, "constructor", "a layer named 'constructor' works");
});

// ---------------------------------------------------------------------------------------------
// registry API

test("loadModel: ranges, overrides, resolution errors, mirrors", async (t) => {
  const p = await loadModel("psnr-small-x2");
  t.deepEqual([p.meta.inputRange, p.meta.outputRange], [[0, 1], [0, 1]], "psnr-small 0–1 by default");
  const p2 = await loadModel("psnr-small-x2", { inputRange: [0, 255] });
  t.deepEqual([p2.meta.inputRange, p2.meta.outputRange], [[0, 255], [0, 255]], "inputRange override carries to output");
  await rejects(t, loadModel("esrgan-slim-x2", { inputRange: [1, 0] as [number, number] }), "E_ARGUMENT", /inputRange/, "bad range");
  await rejects(t, loadModel("esrgan-huge-x2"), "E_ARGUMENT", /unknown model 'esrgan-huge-x2'.*esrgan-slim-x2/, "unknown name lists known ones");
  const far = mkdtempSync(join(tmpdir(), "lowbit-nomods-"));
  await rejects(t, loadModel("esrgan-thick-x2", { resolveFrom: join(far, "x.js") }), "E_IO", /npm i @upscalerjs\/esrgan-thick/, "package not installed");
  // a bundled file loaded by path gets the registry's meta; any other file gets arch-based defaults
  const path = await resolveModelPath("legacy-gans-x4");
  const byPath = await loadModel(path);
  t.deepEqual([byPath.meta.name, byPath.meta.arch, byPath.meta.inputRange], ["legacy-gans-x4", "rrdn", [0, 1]], "by path → registry entry");
  const m = tinyModel();
  const anon = await loadModel({ modelJson: m.modelJson, weights: m.weights });
  t.deepEqual([anon.meta.arch, anon.meta.inputRange], [undefined, [0, 255]], "unknown model: 0–255, no arch");
  // explicit mirror URL instead of node_modules
  const slimPath = await resolveModelPath("esrgan-slim-x2");
  const seen: string[] = [];
  const fetchStub = (async (u: URL | string) => {
    const href = String(u);
    seen.push(href);
    const rel = href.replace("https://mirror.test/npm/@upscalerjs/esrgan-slim/", "");
    return new Response(readFileSync(join(slimPath, "..", "..", "..", rel)));
  }) as typeof fetch;
  const g = await loadModel("esrgan-slim-x2", { modelBaseUrl: "https://mirror.test/npm/", fetch: fetchStub });
  t.equal(g.meta.scale, 2);
  t.deepEqual(seen, ["https://mirror.test/npm/@upscalerjs/esrgan-slim/models/x2/model.json", "https://mirror.test/npm/@upscalerjs/esrgan-slim/models/x2/group1-shard1of1.bin"], "mirror URLs");
  const ac = new AbortController();
  ac.abort("stop");
  await rejects(t, loadModel("esrgan-slim-x2", { signal: ac.signal }), "E_ABORTED", /stop/, "abort signal");
});

// ---------------------------------------------------------------------------------------------
// graph builder / validation

test("builder: shapes, radius, errors", (t) => {
  const b = new GraphBuilder({ seed: 3 });
  const x = b.input();
  const f = b.conv2d(x, 8, 3, { activation: "relu" });
  const g1 = b.conv2d(f, 8, 5);
  const s = b.add(b.scale(g1, 0.2), f);
  const cat = b.concat(s, x);
  t.equal(b.channels(cat), 11);
  const up = b.conv2d(cat, 12, 1);
  const d = b.depthToSpace(up, 2);
  const u = b.upsampleNearest(b.conv2d(d, 3, 3), 2);
  const g = b.build(b.conv2d(u, 3, 3), { name: "toy" });
  t.equal(g.meta.scale, 4);
  t.equal(receptiveRadius(g), 1 + 2 + 0 + 1 / 2 + 1 / 4, "radius: 3×3 + 5×5 on the longest path, then HR convs at 1/2 and 1/4");
  t.equal(g.meta.receptiveRadius, receptiveRadius(g));
  validateGraph(g);
  t.pass("builder output validates");
  t.throws(() => b.add(f, x), /E_SHAPE.*'f?.*8 ch/, "add of 8 and 3 channels");
  t.throws(() => b.concat(d, x), /E_SHAPE.*different resolutions/, "concat across resolutions");
  t.throws(() => b.depthToSpace(f, 3), /E_SHAPE.*not divisible/, "d2s channels");
  t.throws(() => b.conv2d(x, 4, 2), /E_SHAPE.*odd/, "even kernel");
  t.throws(() => b.conv2d(x, 4, 3, { weights: new Float32Array(5) }), /E_SHAPE.*108 values/, "weight length");
  t.throws(() => b.conv2d(99, 4, 3), /E_ARGUMENT/, "unknown tensor");
  t.throws(() => b.input(), /E_ARGUMENT/, "second input");
  t.throws(() => b.build(f), /E_SHAPE.*8 channels/, "output must be RGB");
  const nan = b.conv2d(x, 3, 1, { weights: new Float32Array(9).fill(NaN) });
  t.throws(() => b.build(nan), /E_RANGE.*not finite/, "NaN weights");
  // validate catches hand-edited graphs
  const bad = { ...g, nodes: g.nodes.map((n) => ({ ...n })) } as Graph;
  bad.nodes[2] = { ...bad.nodes[2], inputs: [5] };
  t.throws(() => validateGraph(bad), /E_MODEL_FORMAT.*not an earlier node/, "forward reference");
  t.end();
});

// ---------------------------------------------------------------------------------------------
// tfjs reference helper (for the executor's parity tests) and IR semantics on real models

test("tfjs reference: esrgan-slim-x2 and rrdn models run; the imported IR computes the same thing", async (t) => {
  const rng = new Rng(11);
  // Relative tolerances: the IR is evaluated in f64 here, tfjs sums in f32 (observed ~1e-6 relative).
  // The f64 evaluation of an rrdn is slow in plain JS, so it compares a 4×4 input there.
  for (const [name, backend, cmp] of [["esrgan-slim-x2", "wasm", 8], ["esrgan-thick-x2", "wasm", 4], ["legacy-gans-x4", "cpu", 4]] as const) {
    const t0 = performance.now();
    const info = getModelInfo(name)!;
    const s = info.scale;
    const ref = await loadTfjsReference(name, { backend });
    const x8 = rng.fillF32(new Float32Array(8 * 8 * 3), info.inputRange[0], info.inputRange[1]);
    const y8 = ref.predict(x8, 8, 8);
    t.deepEqual(y8.shape, [1, 8 * s, 8 * s, 3], `${name} (${backend}): 8×8 → ${8 * s}×${8 * s}×3`);
    t.ok(y8.data.every(Number.isFinite), `${name}: finite`);
    const x = cmp === 8 ? x8 : rng.fillF32(new Float32Array(cmp * cmp * 3), info.inputRange[0], info.inputRange[1]);
    const y = cmp === 8 ? y8 : ref.predict(x, cmp, cmp);
    ref.dispose();
    const a = evalGraph(await loadModel(name), x, cmp, cmp);
    let err = 0, mag = 0;
    for (let i = 0; i < a.data.length; i++) {
      err = Math.max(err, Math.abs(a.data[i] - y.data[i]));
      mag = Math.max(mag, Math.abs(a.data[i]));
    }
    t.ok(err < 2e-5 * info.outputRange[1] && mag > 0.1 * info.outputRange[1],
      `${name}: ${cmp}×${cmp}: max |IR(f64) − tfjs| = ${err.toExponential(2)} (out max ${mag.toFixed(3)}), ${(performance.now() - t0).toFixed(0)} ms`);
  }
});
