// Where lowbit's FP32 time goes (bench-only; the engine is used through its public API only).
//
//   "$(which node)" --import tsx bench/profile-f32.ts [--model esrgan-medium-x2] [--side 256] [--reps 5]
//       [--sweep esrgan-medium-x2@384,esrgan-slim-x4@384] [--no-sweep | --sweep-only]
//
// 1. Per step: compiles an F32Plan for side×side and times every plan step on its own
//    (runSteps(w, h, i, i+1), median of --reps full passes). Step → node mapping mirrors the lowering in
//    src/graph/compile-f32.ts (one step per conv, +1 for a non-clamp activation, n−1 adds per n-input add,
//    one copy per concat slice the memory plan could not alias, …) and is checked against plan.stepCount.
//    Prints the split by op type and per conv shape, with in-plan GMAC/s next to the same conv run
//    isolated on dense buffers (the kernel benchmark's method), and GB/s for the data-movement steps.
// 2. The HR tail: `upsample_nearest ×s → conv3×3 12→3 @HR` against its sub-pixel equivalent
//    `conv3×3 12→3s² @LR → depth_to_space(s)` (same MACs; weights folded from the model's own SR conv),
//    timed on the same data and checked to agree.
// 3. Tile size: upscale() (8-bit in/out, default margin) with tile 64/96/128/192/whole on larger images.
import { performance } from "node:perf_hooks";
import { createRuntime, type Runtime } from "../src/runtime/runtime.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import { fp32Model, Upscaler } from "../src/engine/upscaler-api.ts";
import { getModelInfo, loadModel } from "../src/models/registry.ts";
import { planTiles } from "../src/tiling/tiles.ts";
import { f32ConvNhwc, f32ConvScratchBytes, packF32Conv } from "../src/kernels/f32-conv.ts";
import type { Graph, Node } from "../src/graph/ir.ts";
import { optimizeGraph } from "../src/graph/passes.ts";
import { evalCentreCrop } from "../test/util/eval-data.ts";
import { Rng } from "../test/util/rng.ts";
import { fmt, measurePeak, time } from "./util.ts";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const MODEL = arg("model", "esrgan-medium-x2");
const SIDE = Number(arg("side", "256"));
const REPS = Number(arg("reps", "5"));
const SWEEP = process.argv.includes("--no-sweep") ? [] : arg("sweep", "esrgan-medium-x2@384,esrgan-slim-x4@384").split(",");

const median = (a: number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** A side×side RGB crop from the centre of an eval-set HR photo (real content, not noise). */
const crop = (side: number): Uint8Array => evalCentreCrop("hr", "baboon", side);

// ---------------------------------------------------------------------------------------------------------
// 1. Step mapping and per-step timing.

interface StepInfo {
  /** Op group for the split. */
  kind: string;
  /** Finer key: conv shape, or op + channels + resolution. */
  key: string;
  node: Node;
  macs: number;
  /** Bytes read + written (data-movement steps). */
  bytes: number;
}

const CLAMP_KINDS = new Set(["linear", "relu", "relu6"]);

/** The plan's steps in order, derived from the optimized graph exactly as compile-f32.ts lowers it. */
function mapSteps(plan: F32Plan, w: number, h: number): StepInfo[] {
  const g = plan.info.graph;
  const mem = plan.info.memory;
  const out: StepInfo[] = [];
  const px = (n: Node) => w * h * n.spatial * n.spatial;
  const res = (n: Node) => `@${w * n.spatial}x${h * n.spatial}`;
  for (const n of g.nodes) {
    const P = px(n);
    switch (n.op) {
      case "input":
        break;
      case "conv2d": {
        const inStride = mem.placement[n.inputs[0]].pixelStride;
        const strided = inStride !== n.cin ? ` (in stride ${inStride})` : "";
        out.push({ kind: `conv${n.k}x${n.k}`, key: `conv${n.k}x${n.k} ${n.cin}->${n.cout} ${res(n)}${strided}`, node: n,
          macs: P * n.k * n.k * n.cin * n.cout, bytes: 0 });
        if (!CLAMP_KINDS.has(n.activation.kind)) {
          out.push({ kind: "activation", key: `${n.activation.kind} c=${n.cout} ${res(n)}`, node: n, macs: 0, bytes: 8 * P * n.cout });
        }
        break;
      }
      case "activation":
        out.push({ kind: "activation", key: `${n.activation.kind} c=${n.channels} ${res(n)}`, node: n, macs: 0, bytes: 8 * P * n.channels });
        break;
      case "add": {
        const coeffs = n.coeffs ?? n.inputs.map(() => 1);
        const passes = coeffs[0] === 1 ? n.inputs.length - 1 : n.inputs.length;
        for (let i = 0; i < passes; i++) {
          const scalePass = coeffs[0] !== 1 && i === 0;
          out.push({ kind: scalePass ? "scale" : "add", key: `${scalePass ? "scale" : "add"} c=${n.channels} ${res(n)}`, node: n, macs: 0,
            bytes: (scalePass ? 8 : 12) * P * n.channels });
        }
        break;
      }
      case "concat": {
        const copies = new Set(mem.concatCopies.get(n.id) ?? []);
        let off = 0;
        for (const i of n.inputs) {
          const ci = g.nodes[i].channels;
          if (copies.has(off)) out.push({ kind: "concat copy", key: `copy c=${ci} ${res(n)}`, node: n, macs: 0, bytes: 8 * P * ci });
          off += ci;
        }
        break;
      }
      case "scale":
        out.push({ kind: "scale", key: `scale c=${n.channels} ${res(n)}`, node: n, macs: 0, bytes: 8 * P * n.channels });
        break;
      case "upsample_nearest":
        out.push({ kind: "upsample", key: `upsample x${n.factor} c=${n.channels} ->${res(n)}`, node: n, macs: 0,
          bytes: 4 * P * n.channels * (1 + 1 / (n.factor * n.factor)) });
        break;
      case "depth_to_space":
        out.push({ kind: "depth_to_space", key: `d2s x${n.block} c=${n.channels} ->${res(n)}`, node: n, macs: 0, bytes: 8 * P * n.channels });
        break;
      default:
        throw new Error(`profile: no mapping for op ${(n as Node).op}`);
    }
  }
  if (out.length !== plan.stepCount) throw new Error(`profile: mapped ${out.length} steps, plan has ${plan.stepCount} — compile-f32 lowering changed`);
  return out;
}

function profilePlan(rt: Runtime, graph: Graph, name: string, side: number, f32Peak: number): void {
  const info = getModelInfo(name)!;
  const plan = new F32Plan(rt, graph, side, side);
  const steps = mapSteps(plan, side, side);
  const [lo, hi] = info.inputRange;
  const u8 = crop(side);
  const x = plan.inputView(side, side);
  for (let i = 0; i < u8.length; i++) x[i] = lo + (u8[i] * (hi - lo)) / 255;
  const n = plan.stepCount;

  // Whole-plan time (no per-step timers), then per-step timings.
  plan.runSteps(side, side, 0, n); // warm-up
  const whole: number[] = [];
  for (let r = 0; r < Math.min(REPS, 3); r++) {
    const t0 = performance.now();
    plan.runSteps(side, side, 0, n);
    whole.push(performance.now() - t0);
  }
  const per: number[][] = steps.map(() => []);
  for (let r = 0; r < REPS; r++) {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      plan.runSteps(side, side, i, i + 1);
      per[i].push(performance.now() - t0);
    }
  }
  // Min over passes: the compute is deterministic, so the fastest pass is the least disturbed by other processes.
  const stepMs = per.map((a) => Math.min(...a));
  const total = stepMs.reduce((a, b) => a + b, 0);
  const macs = plan.info.macsPerPixel * side * side;
  console.log(`\n## ${name}@${side}: ${n} steps, ${fmt(macs / 1e9, 2)} GMAC; whole plan ${fmt(Math.min(...whole), 0)} ms (min of ${whole.length}) ` +
    `(${fmt(macs / Math.min(...whole) / 1e6, 2)} GMAC/s), sum of per-step minima ${fmt(total, 0)} ms (min over ${REPS} passes)`);

  // Split by op kind.
  const byKind = new Map<string, { ms: number; n: number; macs: number }>();
  steps.forEach((s, i) => {
    const e = byKind.get(s.kind) ?? { ms: 0, n: 0, macs: 0 };
    e.ms += stepMs[i]; e.n++; e.macs += s.macs;
    byKind.set(s.kind, e);
  });
  console.log("\n| op | steps | ms | % of time | % of MACs | GMAC/s |");
  console.log("|---|---|---|---|---|---|");
  for (const [k, e] of [...byKind].sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(`| ${k} | ${e.n} | ${fmt(e.ms, 1)} | ${fmt((100 * e.ms) / total, 1)} | ${fmt((100 * e.macs) / macs, 2)} | ` +
      `${e.macs ? fmt(e.macs / e.ms / 1e6, 2) : "–"} |`);
  }

  // Per shape / key, with the isolated-kernel comparison for convs.
  const byKey = new Map<string, { ms: number; n: number; macs: number; bytes: number; node: Node }>();
  steps.forEach((s, i) => {
    const e = byKey.get(s.key) ?? { ms: 0, n: 0, macs: 0, bytes: 0, node: s.node };
    e.ms += stepMs[i]; e.n++; e.macs += s.macs; e.bytes += s.bytes;
    byKey.set(s.key, e);
  });
  plan.dispose(); // frees the arena for the isolated runs
  console.log(`\n| step (shape) | count | ms total | % of time | in-plan GMAC/s or GB/s | isolated dense kernel GMAC/s | % of f32 peak (${fmt(f32Peak)}) in plan |`);
  console.log("|---|---|---|---|---|---|---|");
  const rng = new Rng(7);
  for (const [key, e] of [...byKey].sort((a, b) => b[1].ms - a[1].ms)) {
    const pct = fmt((100 * e.ms) / total, 1);
    if (e.macs) {
      const nd = e.node as Extract<Node, { op: "conv2d" }>;
      const hw = side * nd.spatial;
      const iso = isolatedConv(rt, rng, nd.k, nd.cin, nd.cout, hw);
      const g = e.macs / e.ms / 1e6;
      console.log(`| ${key} | ${e.n} | ${fmt(e.ms, 1)} | ${pct} | ${fmt(g, 2)} GMAC/s | ${fmt(iso, 2)} | ${fmt((100 * g) / f32Peak, 0)}% |`);
    } else {
      console.log(`| ${key} | ${e.n} | ${fmt(e.ms, 1)} | ${pct} | ${fmt(e.bytes / e.ms / 1e6, 1)} GB/s | – | – |`);
    }
  }
}

/** GMAC/s of f32_conv_nhwc on dense random buffers (the kernel benchmark's method), ReLU clamp. */
function isolatedConv(rt: Runtime, rng: Rng, k: number, cin: number, cout: number, hw: number): number {
  const a = rt.arena;
  const m = a.mark();
  const pIn = a.alloc(hw * hw * cin * 4);
  const pOut = a.alloc(hw * hw * cout * 4);
  const pW = a.put(packF32Conv(rng.fillF32(new Float32Array(k * k * cin * cout), -0.1, 0.1), k, cin, cout,
    rng.fillF32(new Float32Array(cout), -0.1, 0.1)));
  const pS = a.alloc(f32ConvScratchBytes(hw, cin, k));
  rng.fillF32(a.f32.subarray(pIn >> 2, (pIn >> 2) + hw * hw * cin), -1, 1);
  const call = { input: pIn, inStride: cin, output: pOut, outStride: cout, h: hw, w: hw, cin, cout, k, packed: pW, outMin: 0, outMax: Infinity, scratch: pS };
  const t = time(`iso conv ${cin}->${cout} k${k} ${hw}`, () => f32ConvNhwc(rt, call), 0.3, 3);
  a.release(m);
  return (hw * hw * k * k * cin * cout) / t.min / 1e9;
}

// ---------------------------------------------------------------------------------------------------------
// 2. The HR tail: upsample + conv at HR vs sub-pixel conv at LR + depth_to_space.

interface RawExports {
  f32_conv_nhwc(input: number, inStride: number, output: number, outStride: number, h: number, w: number,
    cin: number, cout: number, k: number, packed: number, outMin: number, outMax: number, scratch: number): void;
  x32_upsample_nearest_nhwc(x: number, h: number, w: number, c: number, factor: number, xStride: number, y: number, yStride: number): void;
  x32_depth_to_space_nhwc(x: number, h: number, w: number, c: number, block: number, xStride: number, y: number, yStride: number): void;
}

/**
 * Folds "nearest ×s upsample, then k=3 'same' conv W (HWIO, cin→cout)" into one k=3 conv at LR with
 * s²·cout outputs, channel (py·s + px)·cout + o (TF depth_to_space DCR order). HR pixel Y = s·y + py
 * with tap dy ∈ {−1,0,1} reads LR row y + ⌊(py + dy)/s⌋ ∈ {y−1, y, y+1}, and HR zero padding is LR
 * zero padding (⌊−1/s⌋ = −1, ⌊(sH)/s⌋ = H), so W'[ey][ex][c][(py·s+px)·cout+o] = Σ W[dy][dx][c][o] over the
 * taps with ⌊(py+dy)/s⌋ = ey, ⌊(px+dx)/s⌋ = ex. Same MAC count as the HR conv (s²·9·cin·cout per LR pixel).
 */
function foldSubPixel(w: Float32Array, bias: Float32Array | null, cin: number, cout: number, s: number): { w: Float32Array; b: Float32Array } {
  const co = s * s * cout;
  const W2 = new Float32Array(9 * cin * co);
  const b2 = new Float32Array(co);
  for (let py = 0; py < s; py++) for (let px = 0; px < s; px++) {
    const ph = (py * s + px) * cout;
    for (let o = 0; o < cout; o++) b2[ph + o] = bias ? bias[o] : 0;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      const ey = Math.floor((py + dy) / s), ex = Math.floor((px + dx) / s);
      for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) {
        W2[(((ey + 1) * 3 + (ex + 1)) * cin + c) * co + ph + o] += w[(((dy + 1) * 3 + (dx + 1)) * cin + c) * cout + o];
      }
    }
  }
  return { w: W2, b: b2 };
}

function hrTail(rt: Runtime, graph: Graph, name: string, side: number): void {
  const opt = optimizeGraph(graph);
  const up = opt.nodes.find((n) => n.op === "upsample_nearest");
  const conv = up && opt.nodes.find((n) => n.op === "conv2d" && n.inputs[0] === up.id);
  if (!up || up.op !== "upsample_nearest" || !conv || conv.op !== "conv2d" || conv.k !== 3) {
    console.log(`\n## HR tail of ${name}: no upsample_nearest → 3×3 conv pair, skipped`);
    return;
  }
  const s = up.factor, cin = conv.cin, cout = conv.cout, H = side * s;
  const k = rt.kernels<RawExports>();
  const a = rt.arena;
  const m = a.mark();
  const rng = new Rng(3);
  const pLR = a.alloc(side * side * cin * 4);
  const pUp = a.alloc(H * H * cin * 4);
  const pHR = a.alloc(H * H * cout * 4);
  const pMid = a.alloc(side * side * s * s * cout * 4);
  const pHR2 = a.alloc(H * H * cout * 4);
  const pW = a.put(packF32Conv(conv.weights, 3, cin, cout, conv.bias));
  const f = foldSubPixel(conv.weights, conv.bias, cin, cout, s);
  const pW2 = a.put(packF32Conv(f.w, 3, cin, s * s * cout, f.b));
  const pS = a.alloc(Math.max(f32ConvScratchBytes(H, cin, 3), f32ConvScratchBytes(side, cin, 3)));
  // LR features of the size the real UPN3 output has in a 0–255 model (tens), not noise-scale.
  rng.fillF32(a.f32.subarray(pLR >> 2, (pLR >> 2) + side * side * cin), -40, 40);
  const [lo, hi] = [-Infinity, Infinity];
  const hrPath = () => {
    k.x32_upsample_nearest_nhwc(pLR, side, side, cin, s, cin, pUp, cin);
    k.f32_conv_nhwc(pUp, cin, pHR, cout, H, H, cin, cout, 3, pW, lo, hi, pS);
  };
  const lrPath = () => {
    k.f32_conv_nhwc(pLR, cin, pMid, s * s * cout, side, side, cin, s * s * cout, 3, pW2, lo, hi, pS);
    k.x32_depth_to_space_nhwc(pMid, side, side, cout, s, s * s * cout, pHR2, cout);
  };
  hrPath();
  lrPath();
  const A = a.f32.subarray(pHR >> 2, (pHR >> 2) + H * H * cout), B = a.f32.subarray(pHR2 >> 2, (pHR2 >> 2) + H * H * cout);
  let d = 0, mag = 0;
  for (let i = 0; i < A.length; i++) {
    d = Math.max(d, Math.abs(A[i] - B[i]));
    mag = Math.max(mag, Math.abs(A[i]));
  }
  const tUp = time("upsample", () => k.x32_upsample_nearest_nhwc(pLR, side, side, cin, s, cin, pUp, cin), 0.3, 3);
  const tHr = time("hr conv", () => k.f32_conv_nhwc(pUp, cin, pHR, cout, H, H, cin, cout, 3, pW, lo, hi, pS), 0.3, 3);
  const tLr = time("lr conv", () => k.f32_conv_nhwc(pLR, cin, pMid, s * s * cout, side, side, cin, s * s * cout, 3, pW2, lo, hi, pS), 0.3, 3);
  const tD = time("d2s", () => k.x32_depth_to_space_nhwc(pMid, side, side, cout, s, s * s * cout, pHR2, cout), 0.3, 3);
  a.release(m);
  const macs = side * side * s * s * 9 * cin * cout;
  const msA = (tUp.min + tHr.min) * 1e3, msB = (tLr.min + tD.min) * 1e3;
  console.log(`\n## HR tail of ${name}@${side} (${fmt(macs / 1e6, 0)} MMAC): upsample ×${s} ${cin}ch + conv3x3 ${cin}->${cout} @${H}² ` +
    `vs conv3x3 ${cin}->${s * s * cout} @${side}² + depth_to_space`);
  console.log(`now (HR):     upsample ${fmt(tUp.min * 1e3, 1)} ms + conv ${fmt(tHr.min * 1e3, 1)} ms (${fmt(macs / tHr.min / 1e9, 2)} GMAC/s) = ${fmt(msA, 1)} ms`);
  console.log(`sub-pixel LR: conv ${fmt(tLr.min * 1e3, 1)} ms (${fmt(macs / tLr.min / 1e9, 2)} GMAC/s) + d2s ${fmt(tD.min * 1e3, 1)} ms = ${fmt(msB, 1)} ms` +
    ` → saves ${fmt(msA - msB, 1)} ms (${fmt(msA / msB, 2)}× faster); max |Δ| ${d.toExponential(2)} on outputs up to ${fmt(mag, 0)}`);
}

// ---------------------------------------------------------------------------------------------------------
// 3. Tile size sweep through upscale().

async function tileSweep(rt: Runtime, graph: Graph, name: string, side: number): Promise<void> {
  const img = { data: crop(side), width: side, height: side, channels: 3 };
  const model = fp32Model(graph);
  const probe = new Upscaler(model, rt);
  const margin = probe.margin;
  const macsPx = (probe.planFor(1, 1) as F32Plan).info.macsPerPixel;
  probe.dispose();
  const ROUNDS = 3;
  // One runtime (own memory) per tile size, all compiled and warmed first; then rounds that run every
  // tile size once each, so a burst of load from other processes does not land on one size only.
  const cands: Array<{ tile: number; up: Upscaler; rt: Runtime; work: number; grid: ReturnType<typeof planTiles>; ts: number[] }> = [];
  for (const tile of [64, 96, 128, 192, side]) {
    const r2 = await createRuntime({ backend: rt.info.backend });
    const up = new Upscaler(model, r2, { tile });
    const grid = planTiles(side, side, tile, margin);
    await up.upscale(img); // compiles + warms
    cands.push({ tile, up, rt: r2, grid, work: grid.tiles.reduce((acc, t) => acc + t.rw * t.rh, 0), ts: [] });
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const c of cands) {
      const t0 = performance.now();
      await c.up.upscale(img);
      c.ts.push(performance.now() - t0);
    }
  }
  console.log(`\n## tile sweep: ${name} on ${side}×${side} (upscale(), 8-bit in/out, margin ${margin}; min of ${ROUNDS} interleaved rounds after a warm-up)`);
  console.log("| tile | tiles | region | work ×image | ms (min) | ms (median) | effective GMAC/s (image MACs, min) | computed GMAC/s (region MACs, min) | plan arena MiB |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const c of cands) {
    const pl = c.up.planFor(c.grid.maxW, c.grid.maxH) as F32Plan;
    const arena = (pl.info.weightBytes + pl.info.tensorBytes + pl.info.scratchBytes) / 2 ** 20;
    const t = Math.min(...c.ts);
    console.log(`| ${c.tile === side ? `${c.tile} (whole)` : c.tile} | ${c.grid.tiles.length} | ${c.grid.maxW}×${c.grid.maxH} | ` +
      `${fmt(c.work / (side * side), 2)} | ${fmt(t, 0)} | ${fmt(median(c.ts), 0)} | ${fmt((macsPx * side * side) / t / 1e6, 2)} | ` +
      `${fmt((macsPx * c.work) / t / 1e6, 2)} | ${fmt(arena, 0)} |`);
    c.up.dispose();
    c.rt.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------

const rt = await createRuntime({ backend: process.argv.includes("--relaxed") ? "relaxed" : "simd" });
console.log(`# lowbit FP32 profile — backend ${rt.info.backend}, Node ${process.versions.node}, ${new Date().toISOString()}, single thread`);
const peak = measurePeak(rt, "min");
console.log(`peak f32x4 mul+add: ${fmt(peak.f32)} GMAC/s (fastest sample)`);
if (!process.argv.includes("--sweep-only")) {
  const graph = await loadModel(MODEL);
  profilePlan(rt, graph, MODEL, SIDE, peak.f32);
  hrTail(rt, graph, MODEL, SIDE);
  for (const other of ["esrgan-slim-x4"]) if (other !== MODEL) hrTail(rt, await loadModel(other), other, SIDE);
}
for (const spec of SWEEP) {
  const [name, s] = spec.split("@");
  await tileSweep(rt, await loadModel(name), name, Number(s));
}
