import { createRuntime } from "../src/runtime/runtime.ts";
import { packQs8NmConv, qs8NmConvRun, qs8NmConvScratchBytes, packF32NmConv, f32NmConvRun, f32NmConvScratchBytes } from "../src/kernels/nm-conv.ts";
import { packQs8Qc8wConv, qs8ConvRun, qs8ConvScratchBytes } from "../src/kernels/qs8-conv.ts";
import { f32ConvNhwc, f32ConvScratchBytes, packF32Conv } from "../src/kernels/f32-conv.ts";
import { Rng } from "../test/util/rng.ts";
const rt = await createRuntime({ backend: "simd" });
const r = new Rng(1); const S = 128, K = 3, C = 64; const n = Number(process.argv[2] ?? 8), m = 32;
const q = new Int8Array(C * 9 * C); const hw = new Float32Array(9 * C * C);
for (let o = 0; o < C; o++) for (let t = 0; t < 9; t++) for (let g = 0; g < C; g += m) { const p = Array.from({ length: m }, (_, i) => i); for (let i = 0; i < n; i++) { const j = i + Math.floor(r.next() * (m - i)); [p[i], p[j]] = [p[j], p[i]]; q[(o * 9 + t) * C + g + p[i]] = r.int(1, 100); hw[(t * C + g + p[i]) * C + o] = r.uniform(0.1, 1); } }
const ar = rt.arena;
const Ld = packQs8Qc8wConv(q, { cout: C, k: K, cin: C }), Ls = packQs8NmConv(q, { cout: C, k: K, cin: C, n, m });
const pd = ar.put(Ld.bytes), ps = ar.put(Ls.bytes), mult = ar.put(new Float32Array(64).fill(1e-3));
const inQ = ar.put(new Uint8Array(S * S * C).fill(100)), o1 = ar.alloc(S * S * C * 4);
const sd = ar.alloc(qs8ConvScratchBytes(S, S, C, K)), ss = ar.alloc(Math.max(qs8NmConvScratchBytes(S, C, C, K, { n, m }), f32NmConvScratchBytes(S, C, C, K, { n, m })));
const act = { bits: 8, signed: false, zeroPoint: 128 }, out = { signed: false, zeroPoint: 0, qmin: 0, qmax: 255 };
const Fd = ar.put(packF32Conv(hw, K, C, C, null)); const Fs = packF32NmConv(hw, K, C, C, { n, m }); const fs = ar.put(Fs.bytes);
const inF = ar.put(new Float32Array(S * S * C).fill(0.5)); const fsd = ar.alloc(f32ConvScratchBytes(S, C, K));
const kx = rt.kernels<{ qs8_qc8w_conv_nhwc: (...a: number[]) => void }>();
const fns: Record<string, () => void> = {
  wino: () => qs8ConvRun(rt, { layer: Ld, packed: pd, H: S, W: S, input: inQ, inStride: C, act, output: o1, outStride: C, scratch: sd, multipliers: mult, out }),
  direct: () => kx.qs8_qc8w_conv_nhwc(inQ, C, S, S, C, 128, 0, K, pd, C, mult, o1, C, 0, 0, 255, 0, sd, 16, 0, 8),
  sparse: () => qs8NmConvRun(rt, { layer: Ls, packed: ps, H: S, W: S, input: inQ, inStride: C, act, output: o1, outStride: C, scratch: ss, multipliers: mult, out }),
  f32d: () => f32ConvNhwc(rt, { input: inF, inStride: C, output: o1, outStride: C, h: S, w: S, cin: C, cout: C, k: K, packed: Fd, outMin: -Infinity, outMax: Infinity, scratch: fsd }),
  f32s: () => f32NmConvRun(rt, { layer: Fs, packed: fs, h: S, w: S, input: inF, inStride: C, output: o1, outStride: C, outMin: -Infinity, outMax: Infinity, scratch: ss }),
};
const best: Record<string, number> = {};
for (const f of Object.values(fns)) for (let i = 0; i < 3; i++) f();
for (let rep = 0; rep < 12; rep++) for (const [k, f] of Object.entries(fns)) {
  const c0 = process.cpuUsage(); f(); f(); const c = process.cpuUsage(c0);
  const ms = (c.user + c.system) / 2e3; best[k] = Math.min(best[k] ?? Infinity, ms);
}
const b = best;
console.log(`${n}:32 cpu-ms: wino ${b.wino.toFixed(2)} direct ${b.direct.toFixed(2)} sparse ${b.sparse.toFixed(2)} → ${(b.wino / b.sparse).toFixed(2)}× vs wino, ${(b.direct / b.sparse).toFixed(2)}× vs direct | f32 dense ${b.f32d.toFixed(2)} sparse ${b.f32s.toFixed(2)} → ${(b.f32d / b.f32s).toFixed(2)}×`);
