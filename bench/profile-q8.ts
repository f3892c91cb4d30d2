// Where lowbit's fully quantized (W8A8) time goes, per plan step (bench-only).
//
//   "$(which node)" --import tsx bench/profile-q8.ts [--model esrgan-medium-x2] [--side 256] [--reps 5] [--bits w8a8] [--relaxed]
//
// Calibrates on a centre crop of an eval photo (as bench/models.bench.ts), compiles the Q8Plan for side×side,
// times the whole plan, then every step on its own (min over --reps passes: the compute is deterministic, so
// the fastest pass is the least disturbed), and prints the split by step op and per conv shape with in-plan GMAC/s.
import { performance } from "node:perf_hooks";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel, getModelInfo } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import type { Q8Plan } from "../src/graph/compile-q8.ts";
import type { Node } from "../src/graph/ir.ts";
import { evalCentreCrop } from "../test/util/eval-data.ts";
import { fmt } from "./util.ts";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const MODEL = arg("model", "esrgan-medium-x2");
const SIDE = Number(arg("side", "256"));
const REPS = Number(arg("reps", "5"));
const BITS = arg("bits", "w8a8");

const rt = await createRuntime({ backend: process.argv.includes("--relaxed") ? "relaxed" : "simd" });
console.log(`# lowbit ${BITS} profile — ${MODEL}@${SIDE}, backend ${rt.info.backend}, Node ${process.versions.node}`);
const graph = await loadModel(MODEL);
const img = { data: evalCentreCrop("hr", "baboon", SIDE), width: SIDE, height: SIDE, channels: 3 };
const cal = await calibrate(graph, [img], { runtime: rt });
const qm = quantizeModel(cal, { bits: BITS as "w8a8", method: BITS === "w8a8" ? "percentile" : "mse" });
const plan = qm.compile(rt, SIDE, SIDE) as Q8Plan;
const [lo, hi] = getModelInfo(MODEL)!.inputRange;
const x = plan.inputView(SIDE, SIDE);
for (let i = 0; i < img.data.length; i++) x[i] = lo + (img.data[i] * (hi - lo)) / 255;
const n = plan.stepCount;
plan.runSteps(SIDE, SIDE, 0, n);
const whole: number[] = [];
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  plan.runSteps(SIDE, SIDE, 0, n);
  whole.push(performance.now() - t0);
}
const per: number[][] = Array.from({ length: n }, () => []);
for (let r = 0; r < REPS; r++) {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    plan.runSteps(SIDE, SIDE, i, i + 1);
    per[i].push(performance.now() - t0);
  }
}
const ms = per.map((a) => Math.min(...a));
const total = ms.reduce((a, b) => a + b, 0);
// Step → lowered node, and its MACs / key.
const keyOf: string[] = [], macsOf: number[] = [];
plan.nodeSteps.forEach(([a, b], id) => {
  const ln = plan.info.nodes[id] as unknown as Node;
  const px = SIDE * SIDE * ln.spatial * ln.spatial;
  for (let i = a; i < b; i++) {
    if (ln.op === "conv2d") {
      keyOf[i] = `conv${ln.k}x${ln.k} ${ln.cin}->${ln.cout} @${SIDE * ln.spatial}`;
      macsOf[i] = px * ln.k * ln.k * ln.cin * ln.cout;
    } else {
      keyOf[i] = `${plan.info.stepOps[i]} c=${ln.channels} @${SIDE * ln.spatial}`;
      macsOf[i] = 0;
    }
  }
});
const macs = macsOf.reduce((a, b) => a + b, 0);
console.log(`${n} steps, ${fmt(macs / 1e9, 2)} GMAC; whole plan ${fmt(Math.min(...whole), 0)} ms (min of 3, ${fmt(macs / Math.min(...whole) / 1e6, 2)} GMAC/s); ` +
  `sum of per-step minima ${fmt(total, 0)} ms`);
const group = (keyFn: (i: number) => string) => {
  const m = new Map<string, { ms: number; n: number; macs: number }>();
  for (let i = 0; i < n; i++) {
    const k = keyFn(i);
    const e = m.get(k) ?? { ms: 0, n: 0, macs: 0 };
    e.ms += ms[i]; e.n++; e.macs += macsOf[i];
    m.set(k, e);
  }
  console.log("\n| op | steps | ms | % of time | GMAC/s |\n|---|---|---|---|---|");
  for (const [k, e] of [...m].sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(`| ${k} | ${e.n} | ${fmt(e.ms, 1)} | ${fmt((100 * e.ms) / total, 1)} | ${e.macs ? fmt(e.macs / e.ms / 1e6, 2) : "–"} |`);
  }
};
group((i) => plan.info.stepOps[i]);
group((i) => keyOf[i]);
plan.dispose();
