// `npm run bench:nm`: N:M-sparse conv kernels vs the dense kernels on the same layer, single thread, one run
// (ratios are measured in the same process, dense and sparse alternating in rounds). Default layer: 3×3
// 64→64 @128² (esrgan-medium's body conv), random weights with exactly N nonzeros per group.
//
// Two clocks, because the machine is shared: benchmark.js wall time (fastest sample over the rounds), and
// the process's CPU time per call (process.cpuUsage around 2 calls, the minimum over the rounds) — CPU time
// does not count the time slices other processes take, so its ratios stay stable under load.
// Per pattern: ms (CPU), effective GMAC/s (dense MACs / CPU time), actual GMAC/s (stored-entry MACs / CPU
// time), % of the in-process peak probe (actual), and the speed-up vs the dense kernel on both clocks. int8
// is compared with the three dense paths: the engine's choice (2-D Winograd F(2×2,3×3) for 3×3/5×5 with
// ≥ 16 input channels), Winograd F(2,3) along x (1.5× fewer multiplies) and the direct i16 loop (what 1×1
// layers and other shapes run). For even N the int8 rows include the pair-structured pattern "N:Mp" (the
// pair kernel, qs8_qc8w_nm2_conv_nhwc, on random pair-structured weights) in the same rounds.
//
//   node --import tsx bench/nm-conv.bench.ts [--relaxed] [--k 3 --cin 64 --cout 64 --size 128] [--rounds 3]
//        [--patterns 8:32,4:32] [--int8-only]
import { createRuntime, type Runtime } from "../src/runtime/runtime.ts";
import { f32ConvNhwc, f32ConvScratchBytes, packF32Conv } from "../src/kernels/f32-conv.ts";
import { packQs8Qc8wConv, qs8ConvPath, qs8ConvRun, qs8ConvScratchBytes, type QActivation } from "../src/kernels/qs8-conv.ts";
import {
  f32NmConvRun, f32NmConvScratchBytes, nmDensity, packF32NmConv, packQs8NmConv, qs8NmConvRun, qs8NmConvScratchBytes,
} from "../src/kernels/nm-conv.ts";
import { time, fmt } from "./util.ts";
import { Rng } from "../test/util/rng.ts";

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const backend = process.argv.includes("--relaxed") ? "relaxed" : "simd";
const K = arg("k", 3), CIN = arg("cin", 64), COUT = arg("cout", 64), S = arg("size", 128), ROUNDS = arg("rounds", 3);
const patternsArg = process.argv.indexOf("--patterns");
const PATTERNS: Array<[number, number]> = patternsArg >= 0
  ? process.argv[patternsArg + 1].split(",").map((s) => s.split(":").map(Number) as [number, number])
  : [[32, 32], [16, 32], [8, 32], [4, 32], [2, 32], [2, 4], [4, 8], [1, 32]];
const INT8_ONLY = process.argv.includes("--int8-only");

/**
 * Random HWIO weights with exactly min(n, len) nonzeros at random positions in every group (u = 2: in
 * min(n/2, ⌈len/2⌉) random aligned channel pairs, both channels nonzero — the pair pattern).
 */
function randomNmHwio(r: Rng, k: number, cin: number, cout: number, n: number, m: number, u = 1): Float32Array {
  const w = new Float32Array(k * k * cin * cout);
  const perm = new Int32Array(m);
  for (let t = 0; t < k * k; t++) {
    for (let o = 0; o < cout; o++) {
      for (let g = 0; g < cin; g += m) {
        const units = Math.ceil(Math.min(m, cin - g) / u);
        for (let i = 0; i < units; i++) perm[i] = i;
        for (let i = 0; i < Math.min(n / u, units); i++) {
          const j = i + Math.floor(r.next() * (units - i));
          const tmp = perm[i]; perm[i] = perm[j]; perm[j] = tmp;
          for (let c = g + perm[i] * u; c < Math.min(cin, g + perm[i] * u + u); c++) {
            let v = r.uniform(-1, 1);
            if (v === 0) v = 0.5;
            w[(t * cin + c) * cout + o] = v;
          }
        }
      }
    }
  }
  return w;
}

/** Symmetric per-output-channel int8 codes of HWIO weights, OHWI (zeros stay 0). */
function int8Codes(hwio: Float32Array): Int8Array {
  const ohwi = new Int8Array(COUT * K * K * CIN);
  for (let o = 0; o < COUT; o++) {
    let mx = 0;
    for (let t = 0; t < K * K * CIN; t++) mx = Math.max(mx, Math.abs(hwio[t * COUT + o]));
    for (let t = 0; t < K * K * CIN; t++) ohwi[o * K * K * CIN + t] = Math.round((127 * hwio[t * COUT + o]) / (mx || 1));
  }
  return ohwi;
}

/**
 * The SIMD ceilings of the peak probes (assembly/probe/peak.ts; MACs per call as bench/util.ts counts them),
 * on CPU time like the kernels: f32x4 mul+add and i32x4.dot_i16x8_s + add, GMAC/s.
 */
function cpuPeak(rt: Runtime): { f32: number; dotI16: number } {
  const k = rt.kernels<{ peak_dot_i16x8(src: number, iters: number): number; peak_f32x4_muladd(src: number, iters: number): number }>();
  const m = rt.arena.mark();
  const src = rt.arena.alloc(32);
  for (let i = 0; i < 8; i++) rt.arena.f32[src / 4 + i] = 1 + i * 1e-7;
  const iters = 2_000_000;
  let f = Infinity, d = Infinity;
  for (let r = 0; r < 8; r++) {
    let c0 = process.cpuUsage();
    k.peak_f32x4_muladd(src, iters);
    let c = process.cpuUsage(c0);
    f = Math.min(f, (c.user + c.system) / 1e6);
    c0 = process.cpuUsage();
    k.peak_dot_i16x8(src, iters);
    c = process.cpuUsage(c0);
    d = Math.min(d, (c.user + c.system) / 1e6);
  }
  rt.arena.release(m);
  return { f32: (48 * iters) / f / 1e9, dotI16: (96 * iters) / d / 1e9 };
}

/** Fastest wall sample (benchmark.js) and least CPU time per call, over ROUNDS alternating rounds of every fn. */
function measure(fns: Record<string, () => void>): Record<string, { wall: number; cpu: number }> {
  const out: Record<string, { wall: number; cpu: number }> = {};
  for (const k of Object.keys(fns)) out[k] = { wall: Infinity, cpu: Infinity };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, f] of Object.entries(fns)) {
      out[k].wall = Math.min(out[k].wall, time(k, f, 0.4).min);
      for (let i = 0; i < 4; i++) {
        const c0 = process.cpuUsage();
        f();
        f();
        const c = process.cpuUsage(c0);
        out[k].cpu = Math.min(out[k].cpu, (c.user + c.system) / 2e6);
      }
    }
  }
  return out;
}

async function main(): Promise<void> {
  const rt: Runtime = await createRuntime({ backend });
  console.log(`# N:M sparse conv — backend ${rt.info.backend}, Node ${process.versions.node}, single thread, conv${K}x${K} ${CIN}->${COUT} @${S}x${S}, ${ROUNDS} rounds`);
  const peak = cpuPeak(rt);
  console.log(`peak (CPU time) f32x4 mul+add: ${fmt(peak.f32)} GMAC/s; i32x4.dot_i16x8_s + add: ${fmt(peak.dotI16)} GMAC/s`);
  const r = new Rng(7);
  const dense = K * K * CIN * COUT * S * S;
  const ar = rt.arena;
  const inF = r.fillF32(new Float32Array(S * S * CIN), -1, 1);
  const inQ = r.fillUint8(new Uint8Array(S * S * CIN));
  const act: QActivation = { bits: 8, signed: false, zeroPoint: 128 };
  const out = { signed: false, zeroPoint: 0, qmin: 0, qmax: 255 };

  const rows: string[] = [];
  rows.push("| precision | pattern | density | dense ms (CPU) | sparse ms (CPU) | effective GMAC/s | actual GMAC/s | % of peak (actual) | speed-up (CPU) | speed-up (wall) |");
  rows.push("|---|---|---|---|---|---|---|---|---|---|");
  let printed = 2;
  for (const [n, m] of PATTERNS) {
    const hwio = randomNmHwio(r, K, CIN, COUT, n, m);
    const bias = r.fillF32(new Float32Array(COUT), -0.1, 0.1);
    const dens = nmDensity(K, CIN, n, m);
    // ---- fp32 ----
    if (!INT8_ONLY) {
      const mk = ar.mark();
      const pd = ar.put(packF32Conv(hwio, K, CIN, COUT, bias));
      const L = packF32NmConv(hwio, K, CIN, COUT, { n, m }, bias);
      const ps = ar.put(L.bytes);
      const input = ar.put(inF);
      const o1 = ar.alloc(S * S * COUT * 4), o2 = ar.alloc(S * S * COUT * 4);
      const sd = ar.alloc(f32ConvScratchBytes(S, CIN, K));
      const ss = ar.alloc(f32NmConvScratchBytes(S, CIN, COUT, K, L));
      const denseCall = { input, inStride: CIN, output: o1, outStride: COUT, h: S, w: S, cin: CIN, cout: COUT, k: K, packed: pd, outMin: -Infinity, outMax: Infinity, scratch: sd };
      const sparseCall = { layer: L, packed: ps, h: S, w: S, input, inStride: CIN, output: o2, outStride: COUT, outMin: -Infinity, outMax: Infinity, scratch: ss };
      const t = measure({ dense: () => f32ConvNhwc(rt, denseCall), sparse: () => f32NmConvRun(rt, sparseCall) });
      const d = t.dense.cpu, sp = t.sparse.cpu;
      rows.push(`| fp32 | ${n}:${m} | ${fmt(dens, 3)} | ${fmt(d * 1e3, 2)} | ${fmt(sp * 1e3, 2)} | ${fmt(dense / sp / 1e9)} | ${fmt((dense * dens) / sp / 1e9)} | ${fmt((100 * dense * dens) / sp / 1e9 / peak.f32, 0)} % | **${fmt(d / sp, 2)}×** | ${fmt(t.dense.wall / t.sparse.wall, 2)}× |`);
      ar.release(mk);
    }
    // ---- int8 ----
    {
      const mk = ar.mark();
      const ohwi = int8Codes(hwio);
      const biasQ = Int32Array.from({ length: COUT }, () => r.int(-1000, 1000));
      const Ld = packQs8Qc8wConv(ohwi, { cout: COUT, k: K, cin: CIN, bias: biasQ });
      const Ls = packQs8NmConv(ohwi, { cout: COUT, k: K, cin: CIN, bias: biasQ, n, m });
      // The pair pattern (even n, m): its own weights, the pair kernel.
      const pairs = n % 2 === 0 && m % 2 === 0 && n < m;
      const ohwiP = pairs ? int8Codes(randomNmHwio(r, K, CIN, COUT, n, m, 2)) : null;
      const Lp = ohwiP ? packQs8NmConv(ohwiP, { cout: COUT, k: K, cin: CIN, bias: biasQ, n, m, pairs: true }) : null;
      const LdP = ohwiP ? packQs8Qc8wConv(ohwiP, { cout: COUT, k: K, cin: CIN, bias: biasQ }) : null;
      const pd = ar.put(Ld.bytes), ps = ar.put(Ls.bytes);
      const mult = ar.put(new Float32Array(Ld.coutPadded).fill(1 / 4096));
      const input = ar.put(inQ);
      const o1 = ar.alloc(S * S * COUT), o2 = ar.alloc(S * S * COUT);
      const sd = ar.alloc(qs8ConvScratchBytes(S, S, CIN, K));
      const ss = ar.alloc(Math.max(qs8NmConvScratchBytes(S, CIN, COUT, K, Ls), Lp ? qs8NmConvScratchBytes(S, CIN, COUT, K, Lp) : 0));
      const denseCall = { layer: Ld, packed: pd, H: S, W: S, input, inStride: CIN, act, output: o1, outStride: COUT, scratch: sd, multipliers: mult, out };
      const sparseCall = { layer: Ls, packed: ps, H: S, W: S, input, inStride: CIN, act, output: o2, outStride: COUT, scratch: ss, multipliers: mult, out };
      const pairCall = Lp ? { ...sparseCall, layer: Lp, packed: ar.put(Lp.bytes) } : null;
      // The direct i16 path of the dense kernel (what the engine runs for 1×1 and when Winograd does not apply).
      const kx = rt.kernels<{ qs8_qc8w_conv_nhwc: (...a: number[]) => void }>();
      const p = (K - 1) >> 1;
      const band = Math.max(1, Math.min(S, Math.floor((384 * 1024) / ((Math.max(S, 4) + 2 * p) * ((CIN + 1) & ~1) * 2)) - 2 * p));
      const direct = () => kx.qs8_qc8w_conv_nhwc(input, CIN, S, S, CIN, 128, 0, K, pd, COUT, mult, o1, COUT, 0, 0, 255, 0, sd, band, 0, 8);
      const fns: Record<string, () => void> = {
        wino2d: () => qs8ConvRun(rt, denseCall), wino: () => qs8ConvRun(rt, { ...denseCall, paths: { winograd2d: false } }), direct,
        sparse: () => qs8NmConvRun(rt, sparseCall),
      };
      if (pairCall) fns.pairs = () => qs8NmConvRun(rt, pairCall);
      const t = measure(fns);
      // Same bytes as the dense kernel on the masked weights (the bench's own sanity check).
      const sameAsDense = (dense: typeof Ld, sparse: () => void, what: string) => {
        qs8ConvRun(rt, { ...denseCall, layer: dense, packed: ar.put(dense.bytes) });
        sparse();
        const a = ar.u8.subarray(o1, o1 + S * S * COUT), b = ar.u8.subarray(o2, o2 + S * S * COUT);
        for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) throw new Error(`int8 ${what}: sparse output differs from the dense kernel`);
      };
      sameAsDense(Ld, fns.sparse, `${n}:${m}`);
      if (LdP) sameAsDense(LdP, fns.pairs, `${n}:${m}p`);
      const path = qs8ConvPath(rt, Ld, act), path1 = qs8ConvPath(rt, Ld, act, { winograd2d: false });
      const w2 = t.wino2d.cpu, w1 = t.wino.cpu, dd = t.direct.cpu;
      const row = (name: string, sp: number, wall: number, dens: number) =>
        `| int8 | ${name} | ${fmt(dens, 3)} | ${fmt(w2 * 1e3, 2)} [${path}], ${fmt(w1 * 1e3, 2)} [${path1}], ${fmt(dd * 1e3, 2)} [i16] | ${fmt(sp * 1e3, 2)} | ${fmt(dense / sp / 1e9)} | ` +
        `${fmt((dense * dens) / sp / 1e9)} | ${fmt((100 * dense * dens) / sp / 1e9 / peak.dotI16, 0)} % | **${fmt(dd / sp, 2)}× vs i16**, ${fmt(w1 / sp, 2)}× vs ${path1}, ` +
        `${fmt(w2 / sp, 2)}× vs ${path} | ${fmt(t.direct.wall / wall, 2)}×, ${fmt(t.wino.wall / wall, 2)}×, ${fmt(t.wino2d.wall / wall, 2)}× |`;
      rows.push(row(`${n}:${m}`, t.sparse.cpu, t.sparse.wall, dens));
      if (Lp) rows.push(row(`${n}:${m}p`, t.pairs.cpu, t.pairs.wall, nmDensity(K, CIN, n, m, true)));
      ar.release(mk);
    }
    for (const line of rows.slice(printed)) console.log(line);
    printed = rows.length;
  }
  console.log("\n" + rows.join("\n"));
}

await main();
