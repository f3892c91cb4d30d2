// End-to-end speed of an N:M-pruned model: @upscalerjs esrgan-medium-x2 with one-shot magnitude N:M masks
// (default 8:32: per output channel, tap and group of 32 input channels, the 8 largest |w| are kept) on every
// conv with ≥ 32 input channels (the 3→64 entry conv stays dense), run by lowbit with and without the convs'
// `sparsity` field — the same weights, so the same output; only the kernels differ. FP32 and W8A8 (percentile
// ranges, calibrated on the input), untiled, single thread, interleaved rounds in one process; each row: the
// process CPU time per image (minimum over the rounds: other processes' time slices are not counted, so the
// ratio is stable on this shared machine), the fastest wall sample (benchmark.js), and sparse/dense ratios.
// The masks are not fine-tuned: this measures speed, not quality. `--pattern 8:32p`: pair-structured masks
// (nm-mask.ts: the N/2 aligned channel pairs of largest Σ w²), run by the int8 pair kernel in W8A8.
//
// `--model-file f.lowbit`: an already pruned FP32 model instead (e.g. SLS's learned per-layer N, saved by
// bench/prune-accuracy.ts --save or `lowbit prune`): its declared sparsity against the same weights run dense.
//
//   node --import tsx bench/nm-model.ts [--model esrgan-medium-x2] [--side 128] [--pattern 8:32|8:32p] [--rounds 3] [--relaxed]
//   node --import tsx bench/nm-model.ts --model-file pruned.lowbit [--side 128] [--rounds 3] [--relaxed]
import { createRuntime } from "../src/runtime/runtime.ts";
import { fp32Model, Upscaler, type CompilableModel } from "../src/engine/upscaler-api.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { Q8Plan } from "../src/graph/compile-q8.ts";
import { loadModel } from "../src/models/registry.ts";
import type { Graph, Node } from "../src/graph/ir.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { nmDensity, nmPatternName } from "../src/kernels/nm-conv.ts";
import { applyNm, parsePattern, patternField } from "../src/methods/prune/nm-mask.ts";
import { evalCentreCrop } from "../test/util/eval-data.ts";
import { readLowbitFile } from "../src/io/lowbit-file.ts";
import { fmt, time, type Timing } from "./util.ts";

const argv = process.argv;
const opt = (name: string, def: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const FILE = opt("model-file", "");
const MODEL = FILE || opt("model", "esrgan-medium-x2");
const SIDE = Number(opt("side", "128"));
const PATTERN = parsePattern(opt("pattern", "8:32"));
const ROUNDS = Number(opt("rounds", "3"));

/** A copy of g with masked weights on convs of ≥ 32 input channels; `declare` sets their sparsity field. */
function masked(g: Graph, declare: boolean): Graph {
  const nodes = g.nodes.map((n): Node => {
    if (n.op !== "conv2d" || n.cin < 32) return { ...n };
    // Magnitude masks (nm-mask.ts): the n largest |w| per group (ties: lower channel), or the best pairs.
    const weights = applyNm(new Float32Array(n.weights.length), n.weights, n.k, n.cin, n.cout, PATTERN);
    return declare ? { ...n, weights, sparsity: patternField(PATTERN) } : { ...n, weights };
  });
  return { ...g, nodes, meta: { ...g.meta } };
}

function best(ts: Timing[]): number {
  return Math.min(...ts.map((t) => t.min));
}
/** CPU seconds of one call of fn (user + system of this process). */
function cpu(fn: () => unknown): number {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

const rt = await createRuntime({ backend: argv.includes("--relaxed") ? "relaxed" : "simd" });
let g: Graph, gd: Graph, gs: Graph;
if (FILE) {
  const m = await readLowbitFile(FILE);
  if (!("nodes" in m)) throw new Error(`${FILE} is a quantized model; --model-file takes an FP32 (pruned) .lowbit`);
  g = gs = m;
  gd = { ...m, nodes: m.nodes.map((n): Node => (n.op === "conv2d" && n.sparsity ? (({ sparsity: _s, ...rest }) => rest as Node)(n) : n)) };
} else {
  g = await loadModel(MODEL);
  gd = masked(g, false);
  gs = masked(g, true);
}
/** The sparsity the sparse model declares for a conv (by name: the calibrated graph is the optimized one). */
const declared = new Map(gs.nodes.flatMap((n) => (n.op === "conv2d" && n.sparsity ? [[n.name, n.sparsity] as const] : [])));
let dense = 0, sparse = 0;
for (const n of gs.nodes) {
  if (n.op !== "conv2d") continue;
  const macs = n.k * n.k * n.cin * n.cout * n.spatial * n.spatial;
  dense += macs;
  sparse += n.sparsity ? macs * nmDensity(n.k, n.cin, n.sparsity.n, n.sparsity.m, n.sparsity.pairs) : macs;
}
const px = SIDE * SIDE;
console.log(`# ${MODEL} @${SIDE}², ${FILE ? "the file's declared N:M per conv" : `one-shot magnitude ${nmPatternName(PATTERN)} on convs with cin ≥ 32`} — backend ${rt.info.backend}, Node ${process.versions.node}, single thread, ${ROUNDS} rounds`);
console.log(`MACs: dense ${fmt((dense * px) / 1e9, 2)} G, stored-entry MACs ${fmt((sparse * px) / 1e9, 2)} G (${fmt((100 * sparse) / dense, 1)} % of dense)`);

const u8 = evalCentreCrop("hr", "baboon", SIDE);
const [lo, hi] = g.meta.inputRange;
const x = Float32Array.from(u8, (v) => lo + (v * (hi - lo)) / 255);
const img = { data: u8, width: SIDE, height: SIDE, channels: 3 as const };

const contenders: Array<{ label: string; dense: CompilableModel; sparse: CompilableModel }> = [
  { label: "fp32", dense: fp32Model(gd), sparse: fp32Model(gs) },
];
// One calibration (of the dense run) for both W8A8 models, so their scales are identical and only the kernels
// differ: calibrating the sparse graph separately observes FP32 activations that differ in the last bits (another
// summation order), which can move a percentile range by a bin and the output by a code.
const calD = await calibrate(gd, [img], { runtime: rt });
const calS = {
  ...calD,
  graph: {
    ...calD.graph,
    nodes: calD.graph.nodes.map((n): Node => {
      if (n.op !== "conv2d") return n;
      const sp = FILE ? declared.get(n.name) : n.cin >= 32 ? patternField(PATTERN) : undefined;
      return sp ? { ...n, sparsity: sp } : n;
    }),
  },
};
contenders.push({ label: "w8a8", dense: quantizeModel(calD, { bits: "w8a8", method: "percentile" }), sparse: quantizeModel(calS, { bits: "w8a8", method: "percentile" }) });

const rows: string[] = [
  "| precision | sparse convs | dense ms (CPU / wall) | sparse ms (CPU / wall) | speed-up (CPU / wall) | output |",
  "|---|---|---|---|---|---|",
];
for (const c of contenders) {
  const ud = new Upscaler(c.dense, rt), us = new Upscaler(c.sparse, rt);
  ud.planFor(SIDE, SIDE);
  const ps = us.planFor(SIDE, SIDE);
  const nSparse = ps instanceof F32Plan || ps instanceof Q8Plan ? ps.info.nmConvs.length : -1;
  const od = ud.runFloat(x, SIDE, SIDE), os = us.runFloat(x, SIDE, SIDE);
  let maxd = 0;
  for (let i = 0; i < od.length; i++) maxd = Math.max(maxd, Math.abs(od[i] - os[i]));
  const td: Timing[] = [], ts: Timing[] = [];
  let cd = Infinity, cs = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    td.push(time(`${c.label} dense`, () => ud.runFloat(x, SIDE, SIDE), 0.05, 2));
    ts.push(time(`${c.label} sparse`, () => us.runFloat(x, SIDE, SIDE), 0.05, 2));
    cd = Math.min(cd, cpu(() => ud.runFloat(x, SIDE, SIDE)), cpu(() => ud.runFloat(x, SIDE, SIDE)));
    cs = Math.min(cs, cpu(() => us.runFloat(x, SIDE, SIDE)), cpu(() => us.runFloat(x, SIDE, SIDE)));
  }
  const agree = c.label === "fp32" ? `max |Δ| ${maxd.toExponential(1)}` : maxd === 0 ? "identical" : `DIFFERS (max |Δ| ${maxd})`;
  rows.push(`| ${c.label} | ${nSparse} | ${fmt(cd * 1e3, 0)} / ${fmt(best(td) * 1e3, 0)} | ${fmt(cs * 1e3, 0)} / ${fmt(best(ts) * 1e3, 0)} | **${fmt(cd / cs, 2)}×** / ${fmt(best(td) / best(ts), 2)}× | ${agree} |`);
  console.log(rows[rows.length - 1]);
  ud.dispose();
  us.dispose();
}
console.log("\n" + rows.join("\n"));
