// Dynamic-quantization kernels (DAQ / DFSQ fast path) at 64→64 3×3 @128², single thread, operands already in
// the arena (the engine's calls):
//   LUT conv (u8 codes, K = 16, per-channel int16 LUT at the overflow bound × int16 weights of int8 range)
//   vs the int8 conv (qs8_qc8w, uint8 activations) and the f32 conv on the same shape, in the same process;
//   the per-image front end: count-positive stats, DAQ codes (signed / post-ReLU), DFSQ threshold codes
//   (16-point codebooks) and the plain LUT decode, in ms per megapixel of 64 channels.
// Standalone: `node --import tsx bench/kernels/qlut-conv.bench.ts [--relaxed]`.
import { pathToFileURL } from "node:url";
import { createRuntime, type Runtime } from "../../src/runtime/runtime.ts";
import { packQlutConv, qlutConvRun, qlutConvScratchBytes, qlutLutLimit, qlutDecodeAt } from "../../src/kernels/qlut-conv.ts";
import { packQs8Qc8wConv, qs8ConvPath, qs8ConvRun, qs8ConvScratchBytes } from "../../src/kernels/qs8-conv.ts";
import { f32ConvNhwc, f32ConvScratchBytes, packF32Conv } from "../../src/kernels/f32-conv.ts";
import {
  SUBSET_TABLE_STRIDE, countPositiveAt, daqCodeParams, daqCodesAt, subsetCodeTable, subsetCodesAt, subsetCodesCmpAt, subsetSortedUnique,
  subsetThresholds,
} from "../../src/kernels/act-codes.ts";
import { fmt, gmacs, measurePeak, time, type Peak, type Timing } from "../util.ts";
import { Rng } from "../../test/util/rng.ts";

export async function run(rt: Runtime, peak: Peak): Promise<void> {
  const r = new Rng(9);
  const cin = 64, cout = 64, k = 3, S = 128, K = 16;
  const px = S * S, macs = px * k * k * cin * cout;
  const a = rt.arena, m = a.mark();
  const line = (name: string, t: Timing, ceiling: number, what: string) =>
    console.log(`${name} conv3x3 ${cin}->${cout} ${S}x${S}: ${fmt(gmacs(macs, t))} GMAC/s (${fmt((100 * gmacs(macs, t)) / ceiling, 0)}% of ${what} peak) [${fmt(t.mean * 1e3, 2)} ms ±${fmt(t.rme, 0)}%]`);

  // LUT conv: weights of int8 range (DAQ odd grid m ≤ 127 / DFSQ n at W8), LUT at the limit the layer allows.
  const w8 = r.fillInt8(new Int8Array(cout * k * k * cin), -127, 127);
  const layer = packQlutConv(Int16Array.from(w8), { cout, k, cin });
  const L = qlutLutLimit(layer.maxAbsWeightSum);
  const codes = a.put(r.fillUint8(new Uint8Array(px * cin), 0, K - 1));
  const lut = a.put(Int16Array.from({ length: cin * K }, () => r.int(-L, L)));
  const qcall = {
    layer, packed: a.put(layer.bytes), H: S, W: S, codes, inStride: cin, lut, K,
    mult: a.put(new Float32Array(layer.coutPadded).fill(1e-6)), bias: a.put(new Float32Array(layer.coutPadded)),
    output: a.alloc(px * cout * 4), outStride: cout, outMin: 0, scratch: a.alloc(qlutConvScratchBytes(S, cin, k)),
  };
  const tLut = time("qlut conv", () => qlutConvRun(rt, qcall));

  // int8 conv, same weights, 8-bit activations.
  const q8 = packQs8Qc8wConv(w8, { cout, k, cin });
  const icall = {
    layer: q8, packed: a.put(q8.bytes), H: S, W: S, input: a.put(r.fillUint8(new Uint8Array(px * cin))), inStride: cin,
    act: { bits: 8, signed: false, zeroPoint: 128 }, output: a.alloc(px * cout), outStride: cout,
    scratch: a.alloc(qs8ConvScratchBytes(S, S, cin, k)), multipliers: a.put(new Float32Array(q8.coutPadded).fill(1 / 4096)),
    out: { signed: false, zeroPoint: 0, qmin: 0, qmax: 255 },
  };
  const tI8 = time("qs8 conv", () => qs8ConvRun(rt, icall));

  // f32 conv.
  const xF = a.alloc(px * cin * 4);
  r.fillF32(a.f32.subarray(xF >> 2, (xF >> 2) + px * cin), -1, 1);
  const fcall = {
    input: xF, inStride: cin, output: a.alloc(px * cout * 4), outStride: cout, h: S, w: S, cin, cout, k,
    packed: a.put(packF32Conv(r.fillF32(new Float32Array(k * k * cin * cout), -0.1, 0.1), k, cin, cout, null)),
    outMin: 0, outMax: Infinity, scratch: a.alloc(f32ConvScratchBytes(S, cin, k)),
  };
  const tF = time("f32 conv", () => f32ConvNhwc(rt, fcall));

  line(`qlut K${K} i16`, tLut, peak.dotI16, "i16-dot");
  const i8Relaxed = qs8ConvPath(rt, q8, icall.act) !== "i16" && peak.relaxedDot !== null;
  line("int8 qs8_qc8w", tI8, i8Relaxed ? peak.relaxedDot! : peak.dotI16, i8Relaxed ? "relaxed-dot" : "i16-dot");
  line("fp32", tF, peak.f32, "f32");
  console.log(`qlut / int8 time: ${fmt(tLut.mean / tI8.mean, 2)}×, qlut / fp32 time: ${fmt(tLut.mean / tF.mean, 2)}×`);

  // Front end, on the f32 input above (Gaussian-ish data in [−1, 1]).
  const mp = px / 1e6;
  const vec = (f: (c: number) => number) => a.put(Float32Array.from({ length: cin }, (_, c) => f(c)));
  const half = new Int32Array(cin), kmax = new Int32Array(cin);
  daqCodeParams(half, kmax, 4, cin);
  const mu = vec(() => 0.01), invD = vec(() => 1 / (0.586 * 0.577)), pHalf = a.put(half), pKmax = a.put(kmax);
  const codesOut = a.alloc(px * cin);
  const counts = a.alloc(cin * 4);
  const books = Array.from({ length: cin }, () => subsetSortedUnique([-528, -352, -256, -180, -129, -88, -52, -26, 0, 32, 67, 105, 161, 225, 323, 480]));
  const table = a.put(subsetCodeTable(new Uint8Array(cin * SUBSET_TABLE_STRIDE), books));
  const invM = vec(() => 1);
  // Compare-count at 4 / 8 / 16 points (2/3/4-bit codebooks: the first n of the 4-bit example, sorted).
  const cmp = [4, 8, 16].map((n) => {
    const th = subsetThresholds(books.map((b) => b.subarray(8 - n / 2, 8 + n / 2)));
    return { n, nThr: th.nThr, thr: a.put(th.thresholds) };
  });
  const decoded = a.alloc(px * cin * 2);
  const front: Array<[string, () => void]> = [
    ["count positive (DAQ post-ReLU n_c)", () => countPositiveAt(rt, { x: xF, pixels: px, channels: cin, out: counts })],
    ["DAQ codes signed (4-bit)", () => daqCodesAt(rt, { x: xF, pixels: px, channels: cin, mu, invDelta: invD, half: pHalf, kmax: pKmax, postRelu: false, out: codesOut })],
    ["DAQ codes post-ReLU (4-bit)", () => daqCodesAt(rt, { x: xF, pixels: px, channels: cin, mu, invDelta: invD, half: pHalf, kmax: pKmax, postRelu: true, out: codesOut })],
    ["DFSQ subset codes, count table (16 points)", () => subsetCodesAt(rt, { x: xF, pixels: px, channels: cin, mu, invM, table, out: codesOut })],
    ...cmp.map(({ n, nThr, thr }): [string, () => void] => [`DFSQ subset codes, SIMD compare-count (${n} points)`,
      () => subsetCodesCmpAt(rt, { x: xF, pixels: px, channels: cin, mu, invM, thresholds: thr, nThr, out: codesOut })]),
    ["LUT decode u8 → i16 (exact path input)", () => qlutDecodeAt(rt, { codes, pixels: px, channels: cin, lut, K, out: decoded })],
  ];
  for (const [name, fn] of front) {
    const t = time(name, fn);
    console.log(`${name} ${S}x${S}x${cin}: ${fmt((t.mean * 1e3) / mp, 2)} ms/MP (${fmt(t.mean * 1e3, 3)} ms ±${fmt(t.rme, 0)}%; ${fmt((px * cin) / t.mean / 1e9, 2)} Gelem/s)`);
  }
  a.release(m);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rt = await createRuntime({ backend: process.argv.includes("--relaxed") ? "relaxed" : "simd" });
  console.log(`# qlut / act-codes benchmarks — backend ${rt.info.backend}, Node ${process.versions.node}, single thread`);
  const peak = measurePeak(rt);
  console.log(`peak i32x4.dot_i16x8_s: ${fmt(peak.dotI16)} GMAC/s, f32x4 mul+add: ${fmt(peak.f32)} GMAC/s${peak.relaxedDot ? `, relaxed dot: ${fmt(peak.relaxedDot)} GMAC/s` : ""}`);
  await run(rt, peak);
}
