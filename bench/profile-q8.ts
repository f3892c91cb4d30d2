// Where lowbit's fully quantized (W8A8) time goes, per plan step (bench-only).
//
//   "$(which node)" --import tsx bench/profile-q8.ts [--model esrgan-medium-x2] [--side 256] [--reps 5] [--bits w8a8] [--relaxed]
//                                                     [--compare] [--wall] [--fusion]
//
// Calibrates on a centre crop of an eval photo (as bench/models.bench.ts), compiles the Q8Plan for side×side,
// times the whole plan, then every step on its own (min over --reps passes: the compute is deterministic, so
// the fastest pass is the least disturbed), and prints the split by step op and per conv shape with in-plan GMAC/s
// (for the Winograd paths: effective, i.e. the direct conv's MACs over the time) and the conv kernel each runs.
// Step times are CPU time of this process (process.cpuUsage: robust when other jobs share the cores), --wall for
// wall-clock time. --compare also compiles the plan with F(2×2,3×3) off ("1-D": F(2,3) along x for 3×3/5×5) and with
// every Winograd path off ("direct") and times the three plans' steps interleaved, pass by pass, in this process.
// --fusion also compiles the plan with { fuse: false } (every concat copied, every add its own pass) and times both
// whole plans interleaved (their steps differ, so no per-step table for it).
import { performance } from "node:perf_hooks";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel, getModelInfo } from "../src/models/registry.ts";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { Q8Plan, type Q8PlanOptions } from "../src/graph/compile-q8.ts";
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
const COMPARE = process.argv.includes("--compare");
const WALL = process.argv.includes("--wall");
const FUSION = process.argv.includes("--fusion");

const rt = await createRuntime({ backend: process.argv.includes("--relaxed") ? "relaxed" : "simd" });
console.log(`# lowbit ${BITS} profile — ${MODEL}@${SIDE}, backend ${rt.info.backend}, Node ${process.versions.node}, step times: ${WALL ? "wall clock" : "CPU time"}`);
const graph = await loadModel(MODEL);
const img = { data: evalCentreCrop("hr", "baboon", SIDE), width: SIDE, height: SIDE, channels: 3 };
const cal = await calibrate(graph, [img], { runtime: rt });
const qm = quantizeModel(cal, { bits: BITS as "w8a8", method: BITS === "w8a8" ? "percentile" : "mse" });
const [lo, hi] = getModelInfo(MODEL)!.inputRange;

const variants: Array<[string, Q8PlanOptions]> = [["default", {}]];
if (COMPARE) variants.push(["1-D", { convPaths: { winograd2d: false } }], ["direct", { convPaths: { winograd: false } }]);
const plans = variants.map(([, o]) => new Q8Plan(rt, qm, SIDE, SIDE, o));
const outputs: Float32Array[] = [];
for (const plan of plans) {
  const x = plan.inputView(SIDE, SIDE);
  for (let i = 0; i < img.data.length; i++) x[i] = lo + (img.data[i] * (hi - lo)) / 255;
  plan.runSteps(SIDE, SIDE, 0, plan.stepCount);
  outputs.push(plan.outputView(SIDE, SIDE).slice());
}
for (let v = 1; v < plans.length; v++) {
  const same = outputs[v].every((y, i) => Object.is(y, outputs[0][i]));
  console.log(`output of the ${variants[v][0]} plan ${same ? "bit-identical to" : "DIFFERS from"} the default plan's`);
}
const plan = plans[0];
const n = plan.stepCount;
const clock = (): number => {
  if (WALL) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const whole = plans.map(() => [] as number[]);
for (let r = 0; r < 3; r++) {
  plans.forEach((p, v) => {
    const t0 = clock();
    p.runSteps(SIDE, SIDE, 0, n);
    whole[v].push(clock() - t0);
  });
}
// Per step: min over REPS passes, the plans interleaved step by step (same disturbance for all).
const ms = plans.map(() => new Array<number>(n).fill(Infinity));
for (let r = 0; r < REPS; r++) {
  for (let i = 0; i < n; i++) {
    plans.forEach((p, v) => {
      const t0 = clock();
      p.runSteps(SIDE, SIDE, i, i + 1);
      ms[v][i] = Math.min(ms[v][i], clock() - t0);
    });
  }
}
// Step → lowered node, and its MACs / key (all plans have the same steps: only the conv kernels differ).
const keyOf: string[] = [], macsOf: number[] = [];
const kernelOf = plans.map(() => [] as string[]);
plan.nodeSteps.forEach(([a, b], id) => {
  const ln = plan.info.nodes[id] as unknown as Node;
  const px = SIDE * SIDE * ln.spatial * ln.spatial;
  for (let i = a; i < b; i++) {
    if (ln.op === "conv2d") {
      keyOf[i] = `conv${ln.k}x${ln.k} ${ln.cin}->${ln.cout} @${SIDE * ln.spatial}`;
      macsOf[i] = i === a ? px * ln.k * ln.k * ln.cin * ln.cout : 0; // later steps of a node: its halo exchange
      plans.forEach((p, v) => (kernelOf[v][i] = p.info.convKernels[id] ?? "f32"));
    } else {
      keyOf[i] = `${plan.info.stepOps[i]} c=${ln.channels} @${SIDE * ln.spatial}`;
      macsOf[i] = 0;
    }
  }
});
const macs = macsOf.reduce((a, b) => a + b, 0);
const totals = ms.map((m) => m.reduce((a, b) => a + b, 0));
console.log(`${n} steps, ${fmt(macs / 1e9, 2)} GMAC`);
plans.forEach((_, v) => {
  const w = Math.min(...whole[v]);
  console.log(`${variants[v][0]} plan: whole ${fmt(w, 0)} ms (min of 3, ${fmt(macs / w / 1e6, 2)} GMAC/s); sum of per-step minima ${fmt(totals[v], 0)} ms`);
});
const group = (keyFn: (i: number) => string, withKernel: boolean) => {
  const m = new Map<string, { ms: number[]; n: number; macs: number; kernels: Set<string>[] }>();
  for (let i = 0; i < n; i++) {
    const k = keyFn(i);
    const e = m.get(k) ?? { ms: plans.map(() => 0), n: 0, macs: 0, kernels: plans.map(() => new Set<string>()) };
    plans.forEach((_, v) => {
      e.ms[v] += ms[v][i];
      if (kernelOf[v][i]) e.kernels[v].add(kernelOf[v][i]);
    });
    e.n++; e.macs += macsOf[i];
    m.set(k, e);
  }
  const cols = variants.map(([name]) => ` ${name}: ms | % | GMAC/s |${withKernel ? " kernel |" : ""}`).join("");
  console.log(`\n| op | steps |${cols}\n|---|---|${variants.map(() => `---|---|---|${withKernel ? "---|" : ""}`).join("")}`);
  for (const [k, e] of [...m].sort((a, b) => b[1].ms[0] - a[1].ms[0])) {
    const cells = plans.map((_, v) => ` ${fmt(e.ms[v], 1)} | ${fmt((100 * e.ms[v]) / totals[v], 1)} | ${e.macs ? fmt(e.macs / e.ms[v] / 1e6, 2) : "–"} |` +
      (withKernel ? ` ${[...e.kernels[v]].join(", ") || "–"} |` : "")).join("");
    console.log(`| ${k} | ${e.n} |${cells}`);
  }
};
group((i) => plan.info.stepOps[i], false);
group((i) => keyOf[i], true);
if (FUSION) {
  // The default (fused) plan against { fuse: false }: same codes, whole-plan CPU time interleaved round by round.
  const unfused = new Q8Plan(rt, qm, SIDE, SIDE, { fuse: false });
  const x = unfused.inputView(SIDE, SIDE);
  for (let i = 0; i < img.data.length; i++) x[i] = lo + (img.data[i] * (hi - lo)) / 255;
  unfused.runSteps(SIDE, SIDE, 0, unfused.stepCount);
  const same = unfused.outputView(SIDE, SIDE).every((y, i) => Object.is(y, outputs[0][i]));
  const t: number[][] = [[], []];
  for (let r = 0; r < 7; r++) {
    [plan, unfused].forEach((p, v) => {
      const t0 = clock();
      p.runSteps(SIDE, SIDE, 0, p.stepCount);
      t[v].push(clock() - t0);
    });
  }
  const med = (a: number[]) => [...a].sort((u, v) => u - v)[a.length >> 1];
  const f = plan.info.fused;
  console.log(`\nfusion: ${f.gathered.size} concats read in place, ${f.adds.size} adds in a conv store; steps ${unfused.stepCount} → ${n}; ` +
    `tensor memory ${fmt(unfused.info.tensorBytes / 2 ** 20, 1)} → ${fmt(plan.info.tensorBytes / 2 ** 20, 1)} MiB; output ${same ? "bit-identical" : "DIFFERS"}`);
  console.log(`whole plan, 7 interleaved rounds: unfused min ${fmt(Math.min(...t[1]), 0)} / median ${fmt(med(t[1]), 0)} ms, ` +
    `fused min ${fmt(Math.min(...t[0]), 0)} / median ${fmt(med(t[0]), 0)} ms (${fmt(Math.min(...t[1]) / Math.min(...t[0]), 3)}× by minima)`);
  unfused.dispose();
}
for (const p of plans) p.dispose();
