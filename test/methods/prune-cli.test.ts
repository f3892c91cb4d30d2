// BatchNormalization import (vs @tensorflow/tfjs on a BN model written here), its folding pass,
// BN-based filter pruning, and the `lowbit prune` command composed with quantize and eval.
import test from "tape";
import { mkdtempSync, mkdirSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../util/rng.ts";
import { evalGraph } from "../util/eval-graph.ts";
import { loadTfjsReference } from "../util/tfjs-reference.ts";
import { loadTfjsModel } from "../../src/io/tfjs/index.ts";
import { foldBatchNorm, optimizeGraph } from "../../src/graph/passes.ts";
import type { Graph, Node } from "../../src/graph/ir.ts";
import { filterPrune } from "../../src/methods/prune/filter.ts";
import { graphMacs } from "../../src/methods/prune/nm-mask.ts";
import { run } from "../../src/cli/main.ts";
import type { CliIO } from "../../src/cli/common.ts";
import { readLowbitFile } from "../../src/io/lowbit-file.ts";
import { QuantizedModel } from "../../src/quant/quantize-model.ts";
import { writePng } from "../../src/io/image.ts";
import { evalDir } from "../util/eval-data.ts";

type Conv = Extract<Node, { op: "conv2d" }>;
const convs = (g: Graph) => g.nodes.filter((n): n is Conv => n.op === "conv2d");
type L = Record<string, unknown>;
const inb = (...names: string[]) => [names.map((n) => [n, 0, 0, {}])];
const layer = (cls: string, name: string, from: string[], config: L = {}): L => ({ class_name: cls, name, config: { name, ...config }, inbound_nodes: from.length ? inb(...from) : [] });
const conv = (name: string, from: string, filters: number, k: number, extra: L = {}): L => layer("Conv2D", name, [from], {
  filters, kernel_size: [k, k], strides: [1, 1], padding: "same", data_format: "channels_last", dilation_rate: [1, 1], groups: 1, activation: "linear", use_bias: true, ...extra,
});
const bn = (name: string, from: string, extra: L = {}): L => layer("BatchNormalization", name, [from], { axis: -1, momentum: 0.99, epsilon: 1e-3, center: true, scale: true, ...extra });

/**
 * in(3) → bn0 (on the input: not foldable) → c1 3×3 (3→C) → bn1 → ReLU → c2 3×3 (C→C, no bias) → bn2 → ReLU
 * → add(·, relu1) → c3 3×3 (C→12) → PixelShuffle2x → out 3×3 (3→3). BN parameters are drawn so that
 * some channels are almost always off after the ReLU (β ≪ 0).
 */
function bnModel(seed: number, C: number): { modelJson: L; weights: ArrayBuffer; dead: number[] } {
  const rng = new Rng(seed);
  const tensors: { name: string; shape: number[]; values: Float32Array }[] = [];
  const put = (name: string, shape: number[], f: (i: number) => number) => tensors.push({ name, shape, values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i)) });
  const w = (name: string, shape: number[], a: number) => put(name, shape, () => rng.uniform(-a, a));
  const dead: number[] = [];
  const bnW = (name: string, c: number, deadOnes: boolean) => {
    put(`${name}/gamma`, [c], () => rng.uniform(0.5, 1.5) * (rng.next() < 0.3 ? -1 : 1));
    put(`${name}/beta`, [c], (i) => (deadOnes && i % 4 === 1 ? (dead.push(i), -6) : rng.uniform(-0.5, 1)));
    put(`${name}/moving_mean`, [c], () => rng.uniform(-0.3, 0.3));
    put(`${name}/moving_variance`, [c], () => rng.uniform(0.2, 2));
  };
  bnW("bn0", 3, false);
  w("c1/kernel", [3, 3, 3, C], 0.4);
  w("c1/bias", [C], 0.1);
  bnW("bn1", C, true);
  w("c2/kernel", [3, 3, C, C], 0.2);
  bnW("bn2", C, true); // the same channels: the add ties c1 and c2 channel by channel
  w("c3/kernel", [3, 3, C, 12], 0.2);
  w("c3/bias", [12], 0.1);
  w("out/kernel", [3, 3, 3, 3], 0.3);
  w("out/bias", [3], 0.1);
  const layers = [
    layer("InputLayer", "in", [], { batch_input_shape: [null, null, null, 3], dtype: "float32" }),
    bn("bn0", "in"),
    conv("c1", "bn0", C, 3),
    bn("bn1", "c1"),
    layer("ReLU", "r1", ["bn1"]),
    conv("c2", "r1", C, 3, { use_bias: false }),
    bn("bn2", "c2"),
    layer("Activation", "r2", ["bn2"], { activation: "relu" }),
    layer("Add", "add", ["r2", "r1"]),
    conv("c3", "add", 12, 3),
    layer("PixelShuffle2x", "ps", ["c3"], { scale: 2 }),
    conv("out", "ps", 3, 3),
  ];
  const bytes = new Uint8Array(tensors.reduce((n, t) => n + 4 * t.values.length, 0));
  let o = 0;
  for (const t of tensors) {
    bytes.set(new Uint8Array(t.values.buffer), o);
    o += 4 * t.values.length;
  }
  const modelJson = {
    format: "layers-model", generatedBy: "test", convertedBy: "test",
    modelTopology: { keras_version: "2.10.0", backend: "tensorflow", model_config: { class_name: "Functional", config: { name: "bnsynth", layers, input_layers: [["in", 0, 0]], output_layers: [["out", 0, 0]] } } },
    weightsManifest: [{ paths: ["group1-shard1of1.bin"], weights: tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: "float32" })) }],
  };
  return { modelJson, weights: bytes.buffer, dead };
}

test("BatchNormalization: imported as a 1×1 diagonal conv, matches tfjs; folding into the conv keeps the function", async (t) => {
  const m = bnModel(3, 8);
  const g = await loadTfjsModel({ modelJson: JSON.parse(JSON.stringify(m.modelJson)), weights: m.weights });
  t.equal(convs(g).filter((n) => n.batchNorm).length, 3, "three BN nodes (1×1 convs tagged with γ, β)");
  const ref = await loadTfjsReference({ modelJson: JSON.parse(JSON.stringify(m.modelJson)), weights: m.weights }, { backend: "cpu" });
  const rng = new Rng(9);
  const x = rng.fillF32(new Float32Array(6 * 7 * 3), 0, 1);
  const want = ref.predict(x, 6, 7);
  ref.dispose();
  const cmp = (gr: Graph) => {
    const y = evalGraph(gr, x, 6, 7);
    let e = 0;
    for (let i = 0; i < y.data.length; i++) e = Math.max(e, Math.abs(y.data[i] - want.data[i]));
    return e;
  };
  t.ok(cmp(g) < 1e-4, `imported IR vs tfjs: ${cmp(g).toExponential(2)}`);
  const f = foldBatchNorm(g);
  t.equal(convs(f).length, convs(g).length - 2, "bn1 and bn2 fold into c1 and c2; bn0 (after the input) stays");
  t.ok(convs(f).find((n) => n.name === "c1")!.batchNorm && convs(f).find((n) => n.name === "c2")!.bias, "the folded conv keeps γ, β and gains a bias");
  t.ok(cmp(f) < 1e-4, `folded IR vs tfjs: ${cmp(f).toExponential(2)}`);
  t.ok(cmp(optimizeGraph(g)) < 1e-4, "optimizeGraph (fold + fuse + …) vs tfjs");
  // Unsupported BN configurations are named.
  const bad = JSON.parse(JSON.stringify(m.modelJson));
  bad.modelTopology.model_config.config.layers[3].config.axis = 1;
  try {
    await loadTfjsModel({ modelJson: bad, weights: m.weights });
    t.fail("axis 1 accepted");
  } catch (e) {
    t.ok((e as { code?: string }).code === "E_UNSUPPORTED_LAYER" && /bn1/.test((e as Error).message), `axis 1: ${(e as Error).message}`);
  }
});

test("filter-bn: channels with β ≪ 0 (always off after the ReLU) are pruned first; the pruned model matches", async (t) => {
  const m = bnModel(4, 16);
  const g = await loadTfjsModel({ modelJson: m.modelJson, weights: m.weights });
  const dead = new Set(m.dead);
  // c1's channels are tied to c2's through the add: they form one class set. Keep 75 % of them.
  for (const score of ["mean", "prob", "var"] as const) {
    const r = filterPrune(g, { criterion: "bn", budget: 0.8, bnScore: score });
    const c1 = convs(r.graph).find((n) => n.name === "c1")!;
    t.ok(c1.cout < 16 && c1.cout >= 16 - dead.size, `${score}: c1 keeps ${c1.cout} of 16 (${dead.size} dead)`);
    const deadKept = [...c1.batchNorm!.beta].filter((b) => b === -6).length;
    if (score !== "var") t.equal(deadKept, dead.size - (16 - c1.cout), `${score}: every removed channel is a dead one (β = −6)`);
    // Dead channels (β = −6 in bn1) contribute ~0 through the ReLU, so removing them changes little.
    if (score === "mean") {
      const x = new Rng(2).fillF32(new Float32Array(5 * 5 * 3), 0, 1);
      const a = evalGraph(g, x, 5, 5), b = evalGraph(r.graph, x, 5, 5);
      let e = 0;
      for (let i = 0; i < a.data.length; i++) e = Math.max(e, Math.abs(a.data[i] - b.data[i]));
      t.ok(e < 1e-3, `removing the dead channels: max change ${e.toExponential(2)}`);
    }
  }
});

function memIO(): CliIO & { out: () => string; err: () => string } {
  let o = "", e = "";
  return {
    stdout: { write: (s: string) => { o += s; return true; } } as CliIO["stdout"],
    stderr: { write: (s: string) => { e += s; return true; } } as CliIO["stderr"],
    env: {},
    out: () => o,
    err: () => e,
  };
}

test("lowbit prune: nm / sls / filter-* → FP32 .lowbit; quantize reads it; eval reports mean.gmacs", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "lowbit-prune-"));
  const m = bnModel(5, 32);
  writeFileSync(join(dir, "model.json"), JSON.stringify(m.modelJson));
  writeFileSync(join(dir, "group1-shard1of1.bin"), new Uint8Array(m.weights));
  const data = join(dir, "calib");
  mkdirSync(data);
  const rng = new Rng(6);
  for (let i = 0; i < 3; i++) {
    await writePng(join(data, `im${i}.png`), { data: Uint8Array.from({ length: 24 * 20 * 3 }, (_, j) => ((j * 7) % 200) + rng.int(0, 55)), width: 24, height: 20, channels: 3 });
  }
  const model = join(dir, "model.json");
  const g = await loadTfjsModel(model);
  const dense = graphMacs(g).effective;
  const cli = async (args: string[]) => {
    const io = memIO();
    const code = await run(args, io);
    return { code, out: io.out(), err: io.err() };
  };

  let r = await cli(["prune", "--model", model, "--method", "nm", "--pattern", "8:32", "-o", join(dir, "nm.lowbit"), "-q"]);
  t.equal(r.code, 0, `nm one-shot ${r.err}`);
  const nm = (await readLowbitFile(join(dir, "nm.lowbit"))) as Graph;
  t.ok(convs(nm).some((n) => n.sparsity?.n === 8 && n.sparsity.m === 32), "nm: the file keeps 8:32");
  r = await cli(["prune", "--model", model, "--method", "nm", "--pattern", "8:32p", "-o", join(dir, "nmp.lowbit"), "-q"]);
  t.equal(r.code, 0, `nm one-shot 8:32p ${r.err}`);
  const nmp = (await readLowbitFile(join(dir, "nmp.lowbit"))) as Graph;
  t.ok(convs(nmp).some((n) => n.sparsity?.n === 8 && n.sparsity.pairs === true), "nm: the file keeps 8:32p (pairs)");
  t.equal((await cli(["prune", "--model", model, "--method", "nm", "--pattern", "7:32p", "-o", join(dir, "x.lowbit")])).code, 2, "--pattern 7:32p (odd N with pairs) is a usage error");

  r = await cli(["prune", "--model", model, "--method", "sls", "--budget", "0.5", "--data", data, "--steps", "6", "--batch", "1", "--patch", "12", "--method-options", "lambda=5,scorelr=0.05,search=4,epoch=2", "-o", join(dir, "sls.lowbit")]);
  t.equal(r.code, 0, `sls ${r.err.split("\n").slice(-3).join(" ")}`);
  const sls = (await readLowbitFile(join(dir, "sls.lowbit"))) as Graph;
  t.ok(graphMacs(sls).effective <= 0.5 * dense + 1e-6, `sls: ${(100 * graphMacs(sls).effective / dense).toFixed(1)} % of dense MACs`);
  t.ok(/MACs/.test(r.out), `summary: ${r.out.trim()}`);
  r = await cli(["prune", "--model", model, "--method", "sls", "--budget", "0.5", "--data", data, "--steps", "6", "--batch", "1", "--patch", "12", "--method-options", "lambda=5,scorelr=0.05,search=4,epoch=2,pairs=1", "-o", join(dir, "slsp.lowbit"), "-q"]);
  t.equal(r.code, 0, `sls pairs=1 ${r.err.split("\n").slice(-3).join(" ")}`);
  const slsp = convs((await readLowbitFile(join(dir, "slsp.lowbit"))) as Graph).filter((n) => n.sparsity);
  t.ok(slsp.length > 0 && slsp.every((n) => n.sparsity!.pairs === true && n.sparsity!.n % 2 === 0), `sls pairs=1: ${slsp.length} convs N:Mp with even N (${slsp.map((n) => n.sparsity!.n).join(",")})`);
  t.equal((await cli(["prune", "--model", model, "--method", "sls", "--data", data, "--method-options", "pairs=2", "-o", join(dir, "x.lowbit")])).code, 2, "sls pairs=2 is a usage error");

  for (const method of ["filter-bn", "filter-data", "filter-l1"]) {
    r = await cli(["prune", "--model", model, "--method", method, "--budget", "0.6", "--data", data, "--steps", method === "filter-l1" ? "2" : "0", "--batch", "1", "--patch", "12", "-o", join(dir, `${method}.lowbit`), "-q"]);
    t.equal(r.code, 0, `${method} ${r.err}`);
    const p = (await readLowbitFile(join(dir, `${method}.lowbit`))) as Graph;
    t.ok(graphMacs(p).effective <= 0.6 * dense + 1e-6 && convs(p).some((n) => n.cout < 32), `${method}: thinner convs, ${(100 * graphMacs(p).effective / dense).toFixed(1)} % MACs`);
  }

  // Composes with quantize: the N:M file quantized to W8A8 keeps its pattern.
  r = await cli(["quantize", "--model", join(dir, "nm.lowbit"), "--bits", "w8a8", "--calib", data, "-o", join(dir, "nm-w8a8.lowbit"), "-q"]);
  t.equal(r.code, 0, `quantize a pruned .lowbit ${r.err}`);
  const q = await readLowbitFile(join(dir, "nm-w8a8.lowbit"));
  t.ok(q instanceof QuantizedModel && convs(q.graph).some((n) => n.sparsity?.n === 8), "the quantized file keeps the sparsity");

  // eval --json: mean.gmacs = effective MACs per LR pixel × LR pixels.
  const ev = evalDir();
  r = await cli(["eval", "--model", join(dir, "nm.lowbit"), "--data", ev, "--images", "butterfly", "--json"]);
  t.equal(r.code, 0, `eval ${r.err}`);
  const j = JSON.parse(r.out);
  const lrPx = (j.images[0].width / 2) * (j.images[0].height / 2);
  t.ok(Math.abs(j.mean.gmacs - (graphMacs(nm).effective * lrPx) / 1e9) < 1e-9, `mean.gmacs ${j.mean.gmacs}`);

  // Usage errors and bad input.
  t.equal((await cli(["prune", "--model", model, "--method", "sls", "--pattern", "2:4", "-o", join(dir, "x.lowbit")])).code, 2, "--pattern with sls");
  t.equal((await cli(["prune", "--model", model, "--method", "filter-data", "-o", join(dir, "x.lowbit")])).code, 2, "filter-data without --data");
  t.equal((await cli(["prune", "--model", model, "--method", "filter-l1", "--budget", "0", "-o", join(dir, "x.lowbit")])).code, 2, "--budget 0");
  t.equal((await cli(["prune", "--model", model, "--method", "nope", "-o", join(dir, "x.lowbit")])).code, 2, "unknown method");
  r = await cli(["prune", "--model", "esrgan-slim-x2", "--method", "filter-bn", "-o", join(dir, "x.lowbit")]);
  t.ok(r.code === 1 && /BatchNormalization/.test(r.err), `filter-bn on a BN-free model: ${r.err.trim()}`);
  t.notOk(existsSync(join(dir, "x.lowbit")), "no file written on failure");
});
