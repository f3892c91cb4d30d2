// Differential fuzz cases of the statistics and elementwise kernels: channel statistics (f32 and 8-bit,
// one pass or accumulated over random tiles), histograms, concat / requantize, f32 add / scale / clamp, the
// 8-bit clamp and the Keras activations. Everything is bit-exact against its reference except the
// transcendental activations, which must stay within ACTIVATION_TOLERANCE (rel 2.5e-7·|ref| + 1e-37, the
// bound test/kernels/f32-elementwise.test.ts uses) of the f64 reference.
import {
  channelStats, channelStatsAccBytes, channelStatsAccumulateAt, channelStatsFinalizeAt, channelStatsResetAt,
} from "../../src/kernels/channel-stats.ts";
import { channelStatsRef } from "../../src/kernels/ref/channel-stats.ts";
import { histogram } from "../../src/kernels/histogram.ts";
import { histogramRef } from "../../src/kernels/ref/histogram.ts";
import { concat, concatF32 } from "../../src/kernels/concat.ts";
import { concatRef, copyRef, type ConcatInputRef } from "../../src/kernels/ref/concat.ts";
import {
  ACTIVATION_CODES, ACTIVATION_TOLERANCE, EXACT_ACTIVATIONS, activation, activationAlpha, activationAt, add, addAt, clamp, clampAt, scale, scaleAt,
} from "../../src/kernels/f32-elementwise.ts";
import { activationRef, addRef, clampRef, scaleRef } from "../../src/kernels/ref/f32-elementwise.ts";
import type { ActivationKind } from "../../src/graph/ir.ts";
import type { Runtime } from "../../src/runtime/runtime.ts";
import type { Rng } from "../util/rng.ts";
import { CH, F32_SPECIALS, type Case, diffMsg, fillCodes, fillF32, inArena, readF32, span, strideFor } from "./fuzz-kernels-common.ts";

const CHX = [...CH, 64, 67];
const PX = [1, 1, 2, 3, 5, 9, 31, 32, 33, 100];

/** Random tile boundaries 0 = b0 < b1 < … < bk = n (1..4 tiles). */
function tiles(r: Rng, n: number): number[] {
  const cuts = new Set<number>([0, n]);
  for (let i = r.int(0, 3); i > 0; i--) cuts.add(r.int(1, Math.max(1, n - 1)));
  return [...cuts].sort((a, b) => a - b);
}

/** The one-shot statistics exports (no TS wrapper: compile-dynamic.ts and the calibrators call them directly). */
interface OneShotStats {
  f32_channel_stats_nhwc(x: number, n: number, c: number, xStride: number, acc: number, out: number): void;
  q8_channel_stats_nhwc(x: number, n: number, c: number, xStride: number, signed: number, scale: number, zp: number, acc: number, out: number): void;
}

/**
 * Channel statistics: f32 (offsets up to 10⁶ over tiny spreads, magnitudes 2^±12, 20 % of cases with
 * NaN/±∞/f32-max values) or 8-bit codes in real units, through the typed wrapper, the one-shot export, or
 * accumulated over random tiles (reset, accumulate per tile, finalize): all equal the one-pass reference
 * bit for bit.
 */
function channelStatsCase(input: "f32" | "q8"): Case {
  return (rt, r) => {
    const c = r.pick(CHX), n = r.pick([1, 2, 5, 31, 32, 33, 100, 500]), xs = strideFor(r, c);
    let x: Float32Array | Int8Array | Uint8Array;
    let q: { scale: number; zeroPoint: number } | undefined;
    let desc: string;
    if (input === "f32") {
      const special = r.next() < 0.2 ? 0.03 : 0;
      const offset = r.pick([0, 0, 1e4, -3e5, 1e6]), spread = 2 ** r.uniform(-12, 12);
      x = new Float32Array(span(n, c, xs));
      for (let i = 0; i < x.length; i++) x[i] = r.next() < special ? r.pick(F32_SPECIALS) : offset + spread * r.normal();
      desc = `f32 offset ${offset} spread ${spread.toPrecision(3)} specials ${special > 0}`;
    } else {
      const signed = r.next() < 0.5;
      const lo = signed ? -128 : 0, hi = signed ? 127 : 255;
      x = signed ? new Int8Array(span(n, c, xs)) : new Uint8Array(span(n, c, xs));
      if (r.next() < 0.3) for (let i = 0; i < x.length; i++) x[i] = r.int(hi - 3, hi);
      else fillCodes(r, x, lo, hi);
      q = r.next() < 0.2 ? undefined : { scale: Math.fround(2 ** r.uniform(-16, 4)), zeroPoint: r.int(lo, hi) };
      desc = `${signed ? "i8" : "u8"} scale ${q?.scale} zp ${q?.zeroPoint}`;
    }
    const want = new Float32Array(5 * c);
    channelStatsRef(want, x, n, c, xs, q?.scale ?? 1, q?.zeroPoint ?? 0);
    const mode = r.pick(["wrapper", "wrapper", "tiled", "one-shot"] as const);
    const tiled = mode === "tiled";
    let got: Float32Array;
    let cuts: number[] = [];
    if (mode === "wrapper") {
      got = new Float32Array(5 * c);
      channelStats(got, x, { pixels: n, channels: c, inStride: xs }, q, rt);
    } else if (mode === "one-shot") {
      // The engine's and the calibrators' direct call: reset + accumulate + finalize in one export.
      got = inArena(rt, () => {
        const a = rt.arena, px = a.put(x), acc = a.alloc(channelStatsAccBytes(c)), po = a.alloc(20 * c);
        const k = rt.kernels<OneShotStats>();
        if (x instanceof Float32Array) k.f32_channel_stats_nhwc(px, n, c, xs, acc, po);
        else k.q8_channel_stats_nhwc(px, n, c, xs, x instanceof Int8Array ? 1 : 0, q?.scale ?? 1, q?.zeroPoint ?? 0, acc, po);
        return readF32(rt, po, 5 * c);
      });
    } else {
      cuts = tiles(r, n);
      got = inArena(rt, () => {
        const a = rt.arena, es = x instanceof Float32Array ? 4 : 1;
        const px = a.put(x), acc = a.alloc(channelStatsAccBytes(c)), po = a.alloc(20 * c);
        const kind = x instanceof Float32Array ? "f32" : x instanceof Int8Array ? "i8" : "u8";
        channelStatsResetAt(rt, acc, c);
        for (let t = 0; t + 1 < cuts.length; t++) {
          channelStatsAccumulateAt(rt, { x: px + cuts[t] * xs * es, pixels: cuts[t + 1] - cuts[t], channels: c, xStride: xs, acc, input: kind });
        }
        channelStatsFinalizeAt(rt, { acc, channels: c, out: po, scale: q?.scale ?? 1, zeroPoint: q?.zeroPoint ?? 0 });
        return readF32(rt, po, 5 * c);
      });
    }
    const d = diffMsg(got, want);
    return d && `channel stats ${desc} ${n}×${c} stride ${xs} ${mode}${tiled ? ` ${cuts.join(",")}` : ""}: ${d} (row ${Math.floor(Number(d.split(" ")[1]) / c)})`;
  };
}

/** Histograms per tensor or per channel: ranges over 2^±20, 1..65536 bins, out-of-range, ±∞, NaN (skipped), nonzero start counts, two calls. */
const histogramCase: Case = (rt, r) => {
  const c = r.pick(CHX), n = r.pick([1, 3, 50, 300]), xs = strideFor(r, c);
  const bins = r.pick([1, 2, 7, 64, 255, 256, 2048, 65536]);
  const mag = 2 ** r.uniform(-20, 20);
  const x = new Float32Array(span(n, c, xs));
  for (let i = 0; i < x.length; i++) x[i] = r.next() < 0.05 ? r.pick(F32_SPECIALS) : r.uniform(-3, 3) * mag;
  const pc = r.next() < 0.5 && c * bins <= 1 << 17;
  const lo1 = () => r.uniform(-2, 0) * mag, hi1 = () => (r.next() < 0.1 ? 0.001 : r.uniform(0.1, 2)) * mag;
  const lo = pc ? Float32Array.from({ length: c }, lo1) : Math.fround(lo1());
  const hi = pc ? Float32Array.from({ length: c }, hi1) : Math.fround(hi1());
  if (pc) for (let i = 0; i < c; i++) if (!((hi as Float32Array)[i] > (lo as Float32Array)[i])) (hi as Float32Array)[i] = (lo as Float32Array)[i] + mag;
  const len = pc ? c * bins : bins;
  const got = new Uint32Array(len);
  for (let i = r.int(0, 8); i > 0; i--) got[r.int(0, len - 1)] = r.int(0, 1e6);
  const want = got.slice();
  for (let rep = 0; rep < 2; rep++) {
    histogram(got, x, { pixels: n, channels: c, inStride: xs }, lo, hi, bins, rt);
    histogramRef(want, x, n, c, xs, lo, hi, bins);
  }
  const d = diffMsg(got, want, "bin ");
  return d && `histogram ${pc ? "per channel" : `[${lo}, ${hi}]`} ${n}×${c} stride ${xs} bins ${bins}: ${d}`;
};

/**
 * 8-bit concat: 1..4 inputs of either code type into an output of either type, sub-range outputs (e.g. a
 * 4-bit ReLU slice [zo, qmax]), scale ratios over 2^±12 (saturation), inputs sharing the output's
 * (scale, zero point) (the copy path) and output stride gaps.
 */
const concatQ8Case: Case = (rt, r) => {
  const n = r.pick([1, 1, 4, 25, 70]);
  const so8 = r.next() < 0.5;
  const [tlo, thi] = so8 ? [-128, 127] : [0, 255];
  let qmin = tlo, qmax = thi;
  if (r.next() < 0.3) {
    const a = r.int(tlo, thi), b = r.int(tlo, thi);
    [qmin, qmax] = [Math.min(a, b), Math.max(a, b)];
    if (qmin === qmax) qmax === thi ? qmin-- : qmax++;
  }
  const zo = r.int(qmin, qmax);
  const sc = () => Math.fround(2 ** r.uniform(r.next() < 0.2 ? -12 : -5, r.next() < 0.2 ? 12 : 0));
  const so = sc();
  const inputs: ConcatInputRef[] = [];
  let copies = 0;
  for (let j = r.int(1, 4); j > 0; j--) {
    const ch = r.pick(CHX), st = strideFor(r, ch);
    const same = r.next() < 0.35;
    // A shared zero point must be a valid code of the input type too.
    const si = same ? (zo < 0 ? true : zo > 127 ? false : r.next() < 0.5) : r.next() < 0.5;
    const [ilo, ihi] = si ? [-128, 127] : [0, 255];
    const data = si ? new Int8Array(span(n, ch, st)) : new Uint8Array(span(n, ch, st));
    fillCodes(r, data, ilo, ihi);
    if (same) copies++;
    inputs.push({ data, channels: ch, stride: st, scale: same ? so : sc(), zeroPoint: same ? zo : r.int(ilo, ihi) });
  }
  const ct = inputs.reduce((s, i) => s + i.channels, 0);
  const ys = strideFor(r, ct);
  const len = span(n, ct, ys);
  const got = so8 ? new Int8Array(len).fill(5) : new Uint8Array(len).fill(5);
  const want = got.slice();
  concat(got, inputs, n, { scale: so, zeroPoint: zo, qmin, qmax, stride: ys }, rt);
  concatRef(want, inputs, n, ys, so, zo, qmin, qmax);
  const d = diffMsg(got, want);
  return d && `concat → ${so8 ? "i8" : "u8"} [${qmin}, ${qmax}] zp ${zo} scale ${so}, inputs ${inputs.map((i) => `${i.data instanceof Int8Array ? "i8" : "u8"}×${i.channels} s${i.scale} z${i.zeroPoint}`).join(" + ")} ` +
    `(${copies} sharing the output's parameters) ${n} px stride ${ys}: ${d}`;
};

/** f32 concat (x32 copies): 1..4 strided inputs with specials (NaN payloads copied as values) into a strided output. */
const concatF32Case: Case = (rt, r) => {
  const n = r.pick([1, 1, 9, 40]);
  const parts = Array.from({ length: r.int(1, 4) }, () => {
    const ch = r.pick(CHX), st = strideFor(r, ch);
    return { data: fillF32(r, new Float32Array(span(n, ch, st)), 0.05), channels: ch, stride: st };
  });
  const ct = parts.reduce((s, p) => s + p.channels, 0);
  const ys = strideFor(r, ct);
  const got = new Float32Array(span(n, ct, ys)).fill(1.25), want = got.slice();
  concatF32(got, parts, n, ys, rt);
  let off = 0;
  for (const p of parts) {
    copyRef(want.subarray(off), p.data, n, p.channels, p.stride, ys);
    off += p.channels;
  }
  const d = diffMsg(got, want);
  return d && `concat f32 ${parts.map((p) => p.channels).join("+")} ${n} px stride ${ys}: ${d}`;
};

/** Operands of the unary/binary f32 ops: n pixels of c channels, strides, 5 % specials, magnitudes 2^±12. */
function unaryShape(r: Rng) {
  const c = r.pick(CHX), n = r.pick(PX);
  return { c, n, xs: strideFor(r, c), ys: strideFor(r, c), inPlace: r.next() < 0.2 };
}

/**
 * Runs a unary arena op in place (x = y, same stride): the input is written at y, then the op reads and
 * writes there. Returns y's span.
 */
function inPlace(rt: Runtime, x: Float32Array, n: number, c: number, s: number, run: (p: number) => void): Float32Array {
  return inArena(rt, () => {
    const p = rt.arena.put(x.slice(0, span(n, c, s)));
    run(p);
    return readF32(rt, p, span(n, c, s));
  });
}

const BETAS = [1, 0.2, -3.7, 0, -0, 1e-30, 3e30];

/** f32_add_nhwc: y = a + β·b, specials in a and b, β ∈ {1, 0.2, −3.7, ±0, 10^±30, random}; 20 % in place (y = a). */
const addCase: Case = (rt, r) => {
  const { c, n, xs, ys, inPlace: ip } = unaryShape(r);
  const bs = strideFor(r, c);
  const a = fillF32(r, new Float32Array(span(n, c, xs)), 0.05), b = fillF32(r, new Float32Array(span(n, c, bs)), 0.05);
  const beta = r.next() < 0.5 ? r.pick(BETAS) : r.uniform(-4, 4);
  let got: Float32Array, want: Float32Array;
  if (ip) {
    want = a.slice();
    addRef(want, a, b, n, c, xs, bs, xs, beta);
    got = inArena(rt, () => {
      const pa = rt.arena.put(a), pb = rt.arena.put(b);
      addAt(rt, { a: pa, b: pb, y: pa, pixels: n, channels: c, aStride: xs, bStride: bs, yStride: xs, beta });
      return readF32(rt, pa, a.length);
    });
  } else {
    got = new Float32Array(span(n, c, ys)).fill(1.5);
    want = got.slice();
    add(got, a, b, { pixels: n, channels: c, aStride: xs, bStride: bs, outStride: ys }, beta, rt);
    addRef(want, a, b, n, c, xs, bs, ys, beta);
  }
  const d = diffMsg(got, want);
  return d && `f32 add ${n}×${c} strides ${xs}/${bs}/${ys} β ${beta}${ip ? " in place" : ""}: ${d}`;
};

/** f32_scale_nhwc: y = β·x with specials; 20 % in place. */
const scaleCase: Case = (rt, r) => {
  const { c, n, xs, ys, inPlace: ip } = unaryShape(r);
  const x = fillF32(r, new Float32Array(span(n, c, xs)), 0.05);
  const beta = r.next() < 0.5 ? r.pick(BETAS) : r.uniform(-4, 4);
  const os = ip ? xs : ys;
  const want = (ip ? x.slice() : new Float32Array(span(n, c, ys)).fill(1.5));
  const got = ip ? inPlace(rt, x, n, c, xs, (p) => scaleAt(rt, { x: p, y: p, pixels: n, channels: c, xStride: xs, yStride: xs, beta }))
    : (() => { const g = want.slice(); scale(g, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, beta, rt); return g; })();
  scaleRef(want, x, n, c, xs, os, beta);
  const d = diffMsg(got, want);
  return d && `f32 scale ${n}×${c} strides ${xs}/${os} β ${beta}${ip ? " in place" : ""}: ${d}`;
};

/** f32_clamp_nhwc: bounds incl. ±0 and ±∞, lo = hi; NaN inputs propagate; 20 % in place. */
const clampF32Case: Case = (rt, r) => {
  const { c, n, xs, ys, inPlace: ip } = unaryShape(r);
  const x = fillF32(r, new Float32Array(span(n, c, xs)), 0.05, 3);
  const b1 = () => (r.next() < 0.3 ? r.pick([0, -0, Infinity, -Infinity, 1e-45]) : r.uniform(-5, 5));
  let lo = Math.fround(b1()), hi = Math.fround(r.next() < 0.05 ? lo : b1());
  if (lo > hi) [lo, hi] = [hi, lo];
  const os = ip ? xs : ys;
  const want = ip ? x.slice() : new Float32Array(span(n, c, ys)).fill(1.5);
  const got = ip ? inPlace(rt, x, n, c, xs, (p) => clampAt(rt, { x: p, y: p, pixels: n, channels: c, xStride: xs, yStride: xs, lo, hi }))
    : (() => { const g = want.slice(); clamp(g, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, lo, hi, rt); return g; })();
  clampRef(want, x, n, c, xs, os, lo, hi);
  const d = diffMsg(got, want);
  return d && `f32 clamp [${Object.is(lo, -0) ? "-0" : lo}, ${Object.is(hi, -0) ? "-0" : hi}] ${n}×${c} strides ${xs}/${os}${ip ? " in place" : ""}: ${d}`;
};

/** q8_clamp_nhwc: u8/i8 codes, bounds at the type edges or random, lo = hi. */
const clampQ8Case: Case = (rt, r) => {
  const c = r.pick(CHX), n = r.pick([1, 3, 20, 64, 100]), xs = strideFor(r, c), ys = strideFor(r, c);
  const signed = r.next() < 0.5;
  const tl = signed ? -128 : 0, th = signed ? 127 : 255;
  const x = signed ? new Int8Array(span(n, c, xs)) : new Uint8Array(span(n, c, xs));
  fillCodes(r, x, tl, th);
  const lo = r.next() < 0.2 ? tl : r.int(tl, th), hi = r.next() < 0.2 ? th : r.next() < 0.1 ? lo : r.int(lo, th);
  const got = signed ? new Int8Array(span(n, c, ys)).fill(3) : new Uint8Array(span(n, c, ys)).fill(3), want = got.slice();
  clamp<Uint8Array | Int8Array>(got, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, lo, hi, rt);
  clampRef<Uint8Array | Int8Array>(want, x, n, c, xs, ys, lo, hi);
  const d = diffMsg(got, want);
  return d && `q8 clamp ${signed ? "i8" : "u8"} [${lo}, ${hi}] ${n}×${c} strides ${xs}/${ys}: ${d}`;
};

const KINDS = Object.keys(ACTIVATION_CODES) as ActivationKind[];
const EXACT_KINDS = KINDS.filter((k) => EXACT_ACTIVATIONS.has(k));
const LIBM_KINDS = KINDS.filter((k) => !EXACT_ACTIVATIONS.has(k));

/**
 * f32_activation_nhwc. Exact kinds (linear, relu, relu6, leaky_relu, hard_sigmoid, softsign): bit for bit,
 * inputs over 2^±20 with specials. Transcendental kinds (elu, selu, sigmoid, tanh, softplus, swish,
 * exponential): |got − ref| ≤ 2.5e-7·|ref| + 1e-37 on inputs up to ±200 (past the f32 overflow / underflow
 * of e^x) and the specials, equal values (±∞, ±0) and NaN = NaN accepted. Alpha: the Keras default or 0.05..2; 20 % in place.
 */
function activationCase(exact: boolean): Case {
  return (rt, r) => {
    const kind = r.pick(exact ? EXACT_KINDS : LIBM_KINDS);
    const { c, n, xs, ys, inPlace: ip } = unaryShape(r);
    const x = new Float32Array(span(n, c, xs));
    const lim = exact ? 2 ** r.uniform(-20, 20) : r.pick([1, 10, 30, 100, 200]);
    for (let i = 0; i < x.length; i++) {
      const u = r.next();
      x[i] = u < 0.05 ? r.pick(F32_SPECIALS) : u < 0.1 ? r.int(-8, 8) / 2 : r.uniform(-lim, lim);
    }
    const act = { kind, alpha: r.next() < 0.5 ? undefined : r.uniform(0.05, 2) };
    const alpha = activationAlpha(act);
    const os = ip ? xs : ys;
    const want = ip ? x.slice() : new Float32Array(span(n, c, ys)).fill(2);
    const got = ip ? inPlace(rt, x, n, c, xs, (p) => activationAt(rt, { x: p, y: p, pixels: n, channels: c, xStride: xs, yStride: xs, activation: act }))
      : (() => { const g = want.slice(); activation(g, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, act, rt); return g; })();
    activationRef(want, x, n, c, xs, os, kind, alpha);
    const what = `activation ${kind} α ${alpha} ${n}×${c} strides ${xs}/${os}${ip ? " in place" : ""}`;
    if (exact) {
      const d = diffMsg(got, want);
      return d && `${what}: ${d}`;
    }
    for (let i = 0; i < got.length; i++) {
      if (Object.is(got[i], want[i])) continue;
      const tol = ACTIVATION_TOLERANCE.rel * Math.abs(want[i]) + ACTIVATION_TOLERANCE.abs;
      if (!(Math.abs(got[i] - want[i]) <= tol)) {
        const p = Math.floor(i / os), ch = i - p * os;
        return `${what}: at ${i} (x = ${ch < c ? x[p * xs + ch] : "gap"}) got ${got[i]} want ${want[i]} tol ${tol}`;
      }
    }
    return null;
  };
}

export const ELEM_VARIANTS: Record<string, Case> = {
  "channel-stats-f32": channelStatsCase("f32"),
  "channel-stats-q8": channelStatsCase("q8"),
  histogram: histogramCase,
  "concat-q8": concatQ8Case,
  "concat-f32": concatF32Case,
  "f32-add": addCase,
  "f32-scale": scaleCase,
  "f32-clamp": clampF32Case,
  "q8-clamp": clampQ8Case,
  "activation-exact": activationCase(true),
  "activation-libm": activationCase(false),
};
