// `npm run bench:grad` (add `-- --relaxed` on Node 22 for the relaxed build): the fp32 conv
// gradients of the training engine, single thread, operands in the arena (the engine's calls).
// For a 3×3 64→64 and a 1×1 64→64 conv at 48×48 (a training patch): forward (f32_conv_nhwc),
// backward-input (the forward kernel on the flipped/transposed weights), backward-weights
// (f32_conv_backward_weights_nhwc, dw and db) and the three together (fwd+bwd = 3× the MACs).
// Each line: `<op> <shape>: X GMAC/s (Y% of peak[, Z% of FMA peak])`, peak = the in-process f32
// mul+add probe (bench/util.ts), then the backward-weights/forward ratio. Then the elementwise
// gradient kernels in G elements/s.
import { createRuntime, type Runtime } from "../src/runtime/runtime.ts";
import { f32ConvNhwc, f32ConvScratchBytes, packF32Conv } from "../src/kernels/f32-conv.ts";
import {
  f32ConvBackwardInput, f32ConvBackwardInputScratchBytes, f32ConvBackwardWeights, f32ConvBackwardWeightsScratchBytes,
  packF32ConvBackwardInput,
} from "../src/kernels/grad-conv.ts";
import { f32FakeQuant, f32FakeQuantBackward, f32ReluBackward, f32ChannelAffineBackward, f32L1Loss } from "../src/kernels/grad-elementwise.ts";
import { fmt, measurePeak, pool, time, type Timing } from "./util.ts";
import { Rng } from "../test/util/rng.ts";

const backend = process.argv.includes("--relaxed") ? "relaxed" : "simd";
const rt = await createRuntime({ backend });
console.log(`# lowbit gradient kernels — backend ${rt.info.backend}, Node ${process.versions.node}, single thread`);
const peak = measurePeak(rt);
// (peak: mean of the probe's samples, as bench/kernels.bench.ts; on a loaded machine compare best samples too)
console.log(`peak f32x4 mul+add: ${fmt(peak.f32)} GMAC/s`);
const fma = relaxedMaddPeak(rt);
if (fma !== null) console.log(`peak f32x4 relaxed_madd: ${fmt(fma)} GMAC/s`);

function relaxedMaddPeak(r: Runtime): number | null {
  if (r.info.backend !== "relaxed") return null;
  const k = r.kernels<{ peak_f32x4_relaxed_madd(src: number, iters: number): number }>();
  const m = r.arena.mark();
  const src = r.arena.alloc(32);
  for (let i = 0; i < 8; i++) r.arena.f32[src / 4 + i] = 1 + i * 1e-7;
  const iters = 1_000_000;
  const t = time("peak f32x4 relaxed_madd", () => k.peak_f32x4_relaxed_madd(src, iters));
  r.arena.release(m);
  return (40 * iters) / t.mean / 1e9;
}

/** Prints mean GMAC/s (% of the peaks) and the best sample's GMAC/s (the least disturbed on a shared CPU). */
function line(name: string, macs: number, t: Timing): [mean: number, best: number] {
  const g = macs / t.mean / 1e9, b = macs / t.min / 1e9;
  const rel = fma !== null ? `, ${fmt((100 * g) / fma, 0)}% of FMA peak` : "";
  console.log(`${name}: ${fmt(g)} GMAC/s (${fmt((100 * g) / peak.f32, 0)}% of peak${rel}) ±${fmt(t.rme, 0)}%, best sample ${fmt(b)}`);
  return [g, b];
}

const ROUNDS = 4;
const rng = new Rng(7);
for (const [cin, cout, k, hw] of [[64, 64, 3, 48], [64, 64, 1, 48]] as const) {
  const a = rt.arena;
  const m = a.mark();
  const h = hw, w = hw;
  const weights = rng.fillF32(new Float32Array(k * k * cin * cout), -0.1, 0.1);
  const px = a.alloc(4 * h * w * cin), py = a.alloc(4 * h * w * cout), pdy = a.alloc(4 * h * w * cout), pdx = a.alloc(4 * h * w * cin);
  rng.fillF32(a.f32.subarray(px >> 2, (px >> 2) + h * w * cin), -1, 1);
  rng.fillF32(a.f32.subarray(pdy >> 2, (pdy >> 2) + h * w * cout), -1, 1);
  const pW = a.put(packF32Conv(weights, k, cin, cout, null));
  const pWt = a.put(packF32ConvBackwardInput(weights, k, cin, cout));
  const pdw = a.alloc(4 * k * k * cin * cout), pdb = a.alloc(4 * cout);
  const sF = a.alloc(f32ConvScratchBytes(w, cin, k));
  const sI = a.alloc(f32ConvBackwardInputScratchBytes(w, cout, k));
  const sW = a.alloc(f32ConvBackwardWeightsScratchBytes(w, cin, cout, k));
  const fwd = (): void => f32ConvNhwc(rt, { input: px, inStride: cin, output: py, outStride: cout, h, w, cin, cout, k, packed: pW, outMin: -Infinity, outMax: Infinity, scratch: sF });
  const bwdIn = (): void => f32ConvBackwardInput(rt, { dy: pdy, dyStride: cout, dx: pdx, dxStride: cin, h, w, cin, cout, k, packed: pWt, scratch: sI });
  const bwdW = (): void => f32ConvBackwardWeights(rt, { x: px, xStride: cin, dy: pdy, dyStride: cout, h, w, cin, cout, k, dw: pdw, db: pdb, scratch: sW });
  const macs = h * w * cin * cout * k * k;
  const shape = `conv${k}x${k} ${cin}->${cout} ${h}x${w}`;
  // Interleaved rounds, samples pooled: load changes on a shared machine hit all four alike.
  const fns: Array<() => void> = [fwd, bwdIn, bwdW, () => { fwd(); bwdIn(); bwdW(); }];
  const runs: Timing[][] = fns.map(() => []);
  for (let r = 0; r < ROUNDS; r++) fns.forEach((f, i) => runs[i].push(time(`op${i}`, f, 0.5)));
  const [tf, ti, tw, tb] = runs.map(pool);
  const gf = line(`forward          ${shape}`, macs, tf);
  line(`backward-input   ${shape}`, macs, ti);
  const gw = line(`backward-weights ${shape}`, macs, tw);
  line(`fwd+bwd          ${shape}`, 3 * macs, tb);
  console.log(`backward-weights / forward ${shape}: ${fmt((100 * gw[0]) / gf[0], 0)}% (mean), ${fmt((100 * gw[1]) / gf[1], 0)}% (best samples)`);
  a.release(m);
}

// Elementwise gradient kernels on a 48×48×64 tensor: G elements/s.
{
  const a = rt.arena;
  const m = a.mark();
  const n = 48 * 48, c = 64;
  const px = a.alloc(4 * n * c), pdy = a.alloc(4 * n * c), pdx = a.alloc(4 * n * c), pv = a.alloc(4 * c * 3);
  rng.fillF32(a.f32.subarray(px >> 2, (px >> 2) + n * c), -1, 1);
  rng.fillF32(a.f32.subarray(pdy >> 2, (pdy >> 2) + n * c), -1, 1);
  a.f32.fill(1, pv >> 2, (pv >> 2) + c);
  const ops: Array<[string, () => void]> = [
    ["relu backward", () => f32ReluBackward(rt, { dy: pdy, y: px, dx: pdx, pixels: n, channels: c })],
    ["fake quant 4-bit", () => f32FakeQuant(rt, { x: px, y: pdx, pixels: n, channels: c, l: -0.8, u: 0.9, levels: 16 })],
    ["fake quant backward", () => { f32FakeQuantBackward(rt, { x: px, dy: pdy, dx: pdx, pixels: n, channels: c, l: -0.8, u: 0.9, levels: 16 }); }],
    ["channel affine backward", () => f32ChannelAffineBackward(rt, { x: px, dy: pdy, dx: pdx, pixels: n, channels: c, a: pv, da: pv + 4 * c, db: pv + 8 * c })],
    ["l1 loss + grad", () => { f32L1Loss(rt, { pred: px, target: pdy, grad: pdx, pixels: n, channels: c }); }],
  ];
  for (const [name, fn] of ops) {
    const t = time(name, fn);
    console.log(`${name} 48x48x64: ${fmt((n * c) / t.mean / 1e9, 2)} Gelem/s ±${fmt(t.rme, 0)}%`);
  }
  a.release(m);
}
