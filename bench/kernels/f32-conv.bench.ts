// fp32 conv (f32_conv_nhwc) on the layer shapes of @upscalerjs/esrgan-medium,
// operands already in the arena (the engine's call, no copies), single thread.
// Prints `fp32 conv<k>x<k> <cin>-><cout> <h>x<w>: X GMAC/s (Y% of peak)`; peak
// is the f32 mul+add ceiling from measurePeak (bench/util.ts). On the relaxed
// build the FMA ceiling (peak_f32x4_relaxed_madd) is printed alongside.
import type { Runtime } from "../../src/runtime/runtime.ts";
import { f32ConvNhwc, f32ConvScratchBytes, packF32Conv } from "../../src/kernels/f32-conv.ts";
import { fmt, gmacs, time, type Peak } from "../util.ts";
import { Rng } from "../../test/util/rng.ts";

const SHAPES: Array<[cin: number, cout: number, k: number, hw: number]> = [
  [3, 64, 3, 128], [64, 64, 3, 128], [128, 64, 1, 128], [640, 64, 1, 128],
  [64, 64, 5, 128], [64, 32, 3, 128], [32, 12, 3, 128], [12, 3, 3, 256],
];

interface RelaxedPeakExports {
  peak_f32x4_relaxed_madd(src: number, iters: number): number;
}

/** GMAC/s of the register-resident relaxed FMA loop (40 MACs per iteration), or null on the simd build. */
function relaxedMaddPeak(rt: Runtime): number | null {
  if (rt.info.backend !== "relaxed") return null;
  const k = rt.kernels<RelaxedPeakExports>();
  const m = rt.arena.mark();
  const src = rt.arena.alloc(32);
  for (let i = 0; i < 8; i++) rt.arena.f32[src / 4 + i] = 1 + i * 1e-7;
  const iters = 1_000_000;
  const t = time("peak f32x4 relaxed_madd", () => k.peak_f32x4_relaxed_madd(src, iters));
  rt.arena.release(m);
  return (40 * iters) / t.mean / 1e9;
}

export async function run(rt: Runtime, peak: Peak): Promise<void> {
  const fma = relaxedMaddPeak(rt);
  if (fma !== null) console.log(`peak f32x4 relaxed_madd: ${fmt(fma)} GMAC/s`);
  const rng = new Rng(1);
  for (const [cin, cout, k, hw] of SHAPES) {
    const a = rt.arena;
    const m = a.mark();
    const h = hw, w = hw;
    const weights = rng.fillF32(new Float32Array(k * k * cin * cout), -0.1, 0.1);
    const bias = rng.fillF32(new Float32Array(cout), -0.1, 0.1);
    const pIn = a.alloc(h * w * cin * 4);
    const pOut = a.alloc(h * w * cout * 4);
    const pW = a.put(packF32Conv(weights, k, cin, cout, bias));
    const pS = a.alloc(f32ConvScratchBytes(w, cin, k));
    rng.fillF32(a.f32.subarray(pIn >> 2, (pIn >> 2) + h * w * cin), -1, 1);
    const call = { input: pIn, inStride: cin, output: pOut, outStride: cout, h, w, cin, cout, k, packed: pW, outMin: 0, outMax: Infinity, scratch: pS };
    const t = time(`f32 conv ${cin}->${cout} k${k}`, () => f32ConvNhwc(rt, call));
    const g = gmacs(h * w * cin * cout * k * k, t);
    const rel = fma !== null ? `, ${fmt((100 * g) / fma, 0)}% of FMA peak` : "";
    console.log(`fp32 conv${k}x${k} ${cin}->${cout} ${h}x${w}: ${fmt(g)} GMAC/s (${fmt((100 * g) / peak.f32, 0)}% of peak${rel})`);
    a.release(m);
  }
}
