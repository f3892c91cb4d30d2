// Differential fuzz cases of the dynamically quantized path (DAQ / DFSQ): the LUT-decoded int16 conv and
// its plain decode, the per-channel-scale int16 conv, the DAQ / subset activation-code quantizers and the
// positive counts. Every output is compared bit for bit (f32 outputs as values with −0 ≠ +0): the
// references repeat the kernels' f32 steps (src/kernels/ref/qlut-conv.ts, qs16-conv-pcs.ts, act-codes.ts).
import {
  packQlutConv, qlutConv, qlutConvRun, qlutConvScratchBytes, qlutDecode, qlutLutLimit,
} from "../../src/kernels/qlut-conv.ts";
import { qlutConvRef, qlutDecodeRef } from "../../src/kernels/ref/qlut-conv.ts";
import { packQs16ConvPcs, qs16ConvPcs } from "../../src/kernels/qs16-conv-pcs.ts";
import { qs16ConvPcsRef } from "../../src/kernels/ref/qs16-conv-pcs.ts";
import {
  SUBSET_TABLE_STRIDE, countPositive, daqCodes, subsetCodeTable, subsetCodes, subsetCodesCmp, subsetSortedUnique, subsetThresholds,
} from "../../src/kernels/act-codes.ts";
import { countPositiveRef, daqCodesRef, subsetCodesRef } from "../../src/kernels/ref/act-codes.ts";
import type { Rng } from "../util/rng.ts";
import { CH, F32_SPECIALS, type Case, diffMsg, inArena, readF32, span, strideFor } from "./fuzz-kernels-common.ts";

const HS = [1, 1, 2, 3, 4, 5, 7, 9], WS = [1, 2, 3, 4, 5, 6, 8, 11, 13, 17];

/**
 * qlut_qc16w_conv_nhwc_f32: int16 weights up to ±32767 (all-extreme, sparse or small), the LUT at the
 * overflow bound qlutLutLimit (the largest accumulators the contract allows), every K, junk codes in the
 * stride gaps, multipliers from 2⁻³⁶ to 4 of both signs, −0 biases, clamps. 30 % go through the engine
 * call with a random band height (band splits must not change a bit).
 */
const qlutConvCase: Case = (rt, r) => {
  const H = r.pick(HS), W = r.pick(WS), cin = r.pick([...CH, 67]), cout = r.pick(CH), k = r.pick([1, 3, 3, 5]);
  const K = r.pick([1, 2, 4, 5, 16, 16, 64, 100, 256]);
  const inStride = strideFor(r, cin), outStride = strideFor(r, cout);
  const weights = new Int16Array(cout * k * k * cin);
  const wmax = r.pick([32767, 32767, 127, 15, 1]), wKind = r.int(0, 3);
  for (let i = 0; i < weights.length; i++) weights[i] = wKind === 0 ? (r.next() < 0.5 ? -wmax : wmax) : wKind === 1 && r.next() < 0.3 ? 0 : r.int(-wmax, wmax);
  const layer = packQlutConv(weights, { cout, k, cin });
  const L = qlutLutLimit(layer.maxAbsWeightSum);
  const lut = new Int16Array(cin * K);
  const lKind = r.int(0, 3);
  for (let i = 0; i < lut.length; i++) lut[i] = lKind === 0 ? (r.next() < 0.5 ? -L : L) : lKind === 1 ? r.int(-L, L) : r.int(-Math.min(L, 300), Math.min(L, 300));
  const px = H * W;
  const codes = new Uint8Array(span(px, cin, inStride));
  const cKind = r.int(0, 3);
  for (let p = 0; p < px; p++) {
    for (let i = p * inStride; i < Math.min((p + 1) * inStride, codes.length); i++) {
      codes[i] = i - p * inStride >= cin ? r.int(0, 255) : cKind === 0 ? (r.next() < 0.5 ? 0 : K - 1) : r.int(0, K - 1);
    }
  }
  const center = r.uniform(-34, 0);
  const mult = Float32Array.from({ length: cout }, () => (r.next() < 0.2 ? -1 : 1) * 2 ** (center + r.uniform(-2, 2)));
  const bias = r.next() < 0.2 ? null : Float32Array.from({ length: cout }, () => (r.next() < 0.1 ? -0 : r.normal() * 2 ** r.int(-10, 4)));
  const cl = r.int(0, 3);
  const [outMin, outMax] = cl === 0 ? [-Infinity, Infinity] : cl === 1 ? [0, Infinity] : cl === 2 ? [-0.5, 0.5] : [r.uniform(-1, 0), r.uniform(0, 1)];
  const len = span(px, cout, outStride);
  const want = qlutConvRef(new Float32Array(len).fill(77), outStride, { H, W, Cin: cin, Cout: cout, k, codes, inStride, lut, K, weights },
    mult, bias, outMin, outMax);
  const engine = r.next() < 0.3;
  const band = r.int(1, H);
  let got: Float32Array;
  if (!engine) {
    got = qlutConv(rt, new Float32Array(len).fill(77), layer, { H, W, K, codes, lut, mult, bias, inStride, outStride, outMin, outMax });
  } else {
    got = inArena(rt, () => {
      const a = rt.arena;
      const m = new Float32Array(layer.coutPadded), b = new Float32Array(layer.coutPadded);
      m.set(mult);
      if (bias) b.set(bias);
      const out = a.put(new Float32Array(len).fill(77));
      qlutConvRun(rt, { layer, packed: a.put(layer.bytes), H, W, codes: a.put(codes), inStride, lut: a.put(lut), K,
        mult: a.put(m), bias: a.put(b), output: out, outStride, outMin, outMax,
        scratch: a.alloc(qlutConvScratchBytes(W, cin, k, band)), bandRows: band });
      return readF32(rt, out, len);
    });
  }
  const d = diffMsg(got, want);
  return d && `qlut conv ${H}×${W} ${cin}→${cout} k${k} K${K} strides ${inStride}/${outStride} max Σ|w| ${layer.maxAbsWeightSum} L ${L} ` +
    `clamp [${outMin}, ${outMax}]${engine ? ` band ${band}` : ""}: ${d}`;
};

/** qlut_decode_nhwc: full-range int16 tables, every K, strided codes and outputs (gaps untouched). */
const qlutDecodeCase: Case = (rt, r) => {
  const pixels = r.pick([1, 1, 2, 3, 7, 16, 33, 100]), c = r.pick([...CH, 64, 67]), K = r.pick([1, 2, 4, 13, 16, 64, 256]);
  const is = strideFor(r, c), os = strideFor(r, c);
  const codes = new Uint8Array(span(pixels, c, is));
  for (let p = 0; p < pixels; p++) for (let j = 0; j < c; j++) codes[p * is + j] = r.next() < 0.2 ? K - 1 : r.int(0, K - 1);
  const lut = Int16Array.from({ length: c * K }, () => (r.next() < 0.2 ? r.pick([-32768, 32767, 0]) : r.int(-32768, 32767)));
  const got = new Int16Array(span(pixels, c, os)).fill(-5), want = got.slice();
  qlutDecode(got, codes, lut, { pixels, channels: c, K, inStride: is, outStride: os }, rt);
  qlutDecodeRef(want, codes, pixels, c, is, lut, K, os);
  const d = diffMsg(got, want);
  return d && `qlut decode ${pixels}×${c} K${K} strides ${is}/${os}: ${d}`;
};

/**
 * qs16_qc16w_conv_nhwc_pcs_f32: activations of every producer (DAQ odd / post-ReLU codes of 2..8 bits, DFSQ
 * integers, full int16, all ±32767/−32768), weights as large as the int32 partial-sum bound allows, channel
 * scales over 2⁻⁴⁰..2⁸ (some 0), means up to ±2¹², clamps.
 */
const qs16PcsCase: Case = (rt, r) => {
  const H = r.pick(HS), W = r.pick(WS), cin = r.pick([...CH, 67]), cout = r.pick(CH), k = r.pick([1, 3, 3, 5]);
  const inStride = strideFor(r, cin), outStride = strideFor(r, cout);
  const n = span(H * W, cin, inStride);
  const input = new Int16Array(n);
  const kind = r.pick(["daq-odd", "daq-relu", "dfsq", "int16", "extreme"]);
  const b = r.int(2, 8), Kq = 2 ** b - 1;
  let maxAbs = 0;
  for (let i = 0; i < n; i++) {
    const v = kind === "daq-odd" ? 2 * r.int(0, Kq) - Kq : kind === "daq-relu" ? r.int(0, Kq) : kind === "dfsq" ? r.int(-2048, 2048)
      : kind === "int16" ? r.int(-32768, 32767) : r.next() < 0.5 ? -32768 : 32767;
    input[i] = v;
    if ((i % inStride) < cin) maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const cap = Math.min(32767, Math.floor((2 ** 31 - 1) / Math.max(1, maxAbs) / (k * k)));
  const wmax = r.next() < 0.3 ? cap : Math.max(1, Math.min(cap, r.pick([1, 7, 127, 255, 2047, 32767])));
  const allMax = r.next() < 0.15;
  const weights = Int16Array.from({ length: cout * k * k * cin }, () => (allMax ? (r.next() < 0.5 ? -wmax : wmax) : r.int(-wmax, wmax)));
  const wide = r.next() < 0.2;
  const chScale = Float32Array.from({ length: cin }, () => (r.next() < 0.05 ? 0 : 2 ** (wide ? r.uniform(-40, 8) : r.uniform(-14, 1))));
  const chMean = Float32Array.from({ length: cin }, () => (r.next() < 0.1 ? 0 : r.uniform(-2, 2) * 2 ** r.int(-4, wide ? 12 : 4)));
  const wscale = Float32Array.from({ length: cout }, () => 2 ** r.uniform(-16, -2));
  const bias = r.next() < 0.2 ? null : Float32Array.from({ length: cout }, () => (r.next() < 0.1 ? -0 : r.uniform(-1, 1)));
  const cl = r.int(0, 3);
  const outMin = cl === 0 ? 0 : cl === 1 ? r.uniform(-1, 0) : -Infinity;
  const outMax = cl === 1 ? r.uniform(0, 1) : cl === 2 ? 6 : Infinity;
  const layer = packQs16ConvPcs(weights, { cout, k, cin });
  const len = span(H * W, cout, outStride);
  const got = new Float32Array(len).fill(-77.5), want = new Float32Array(len).fill(-77.5);
  qs16ConvPcs(rt, got, input, layer, { H, W, inStride, chScale, chMean, wscale, bias, outStride, outMin, outMax });
  qs16ConvPcsRef(want, outStride, { H, W, Cin: cin, Cout: cout, k, input, inStride, chScale, chMean, weights, wscale, bias, outMin, outMax });
  const d = diffMsg(got, want);
  return d && `qs16 pcs conv ${H}×${W} ${cin}→${cout} k${k} ${kind}${kind.startsWith("daq") ? b : ""} wmax ${wmax} strides ${inStride}/${outStride} ` +
    `clamp [${outMin}, ${outMax}]: ${d}`;
};

/** x for channel j: half-step grid points around μ (exact boundaries and ties), Gaussians over decades, specials. */
function fillActs(r: Rng, x: Float32Array, pixels: number, c: number, xs: number, mu: Float32Array, step: (j: number) => number): void {
  const kind = r.int(0, 3);
  for (let p = 0; p < pixels; p++) {
    for (let j = 0; j < c; j++) {
      const u = r.next();
      x[p * xs + j] = u < 0.04 ? r.pick(F32_SPECIALS) : kind === 0 || u < 0.3 ? mu[j] + (step(j) * r.int(-600, 600)) / 2
        : mu[j] + step(j) * r.normal() * 2 ** r.int(-1, 9);
    }
  }
}

/** f32_daq_codes_nhwc: signed midrise and post-ReLU codes, per-channel bits 1..8, invΔ = 0 channels, grid values, NaN/±∞. */
const daqCase: Case = (rt, r) => {
  const pixels = r.pick([1, 1, 2, 3, 5, 16, 31, 64]), c = r.pick([...CH, 64, 67]);
  const xs = strideFor(r, c), os = strideFor(r, c);
  const postRelu = r.next() < 0.4;
  const oneBits = r.next() < 0.3 ? r.int(1, 8) : 0;
  const bits = Uint8Array.from({ length: c }, () => oneBits || (r.next() < 0.5 ? r.pick([1, 2, 4, 8]) : r.int(1, 8)));
  const mu = Float32Array.from({ length: c }, () => (postRelu || r.next() < 0.2 ? 0 : r.normal() * 2 ** r.int(-6, 12)));
  const invDelta = Float32Array.from({ length: c }, () => {
    const u = r.next();
    return u < 0.1 ? 0 : u < 0.5 ? 2 ** r.int(-8, 12) : 2 ** r.uniform(-20, 20);
  });
  const x = new Float32Array(span(pixels, c, xs));
  fillActs(r, x, pixels, c, xs, mu, (j) => (invDelta[j] > 0 ? 1 / invDelta[j] : 1));
  const got = new Uint8Array(span(pixels, c, os)).fill(201), want = got.slice();
  daqCodes(got, x, { pixels, channels: c, xStride: xs, outStride: os, mu, invDelta, bits: oneBits || bits, postRelu }, rt);
  daqCodesRef(want, x, pixels, c, xs, mu, invDelta, oneBits ? new Uint8Array(c).fill(oneBits) : bits, postRelu, os);
  const d = diffMsg(got, want);
  return d && `daq codes ${pixels}×${c} strides ${xs}/${os} ${postRelu ? "post-ReLU" : "signed"} bits ${oneBits || "per channel"}: ${d}`;
};

/** A strictly increasing codebook in [−1024, 1024]: 1..maxN points, often ±1024, 0 and neighbours. */
function randomCodebook(r: Rng, maxN: number, postRelu: boolean): Int32Array {
  const n = r.int(1, maxN);
  const pts = new Set<number>();
  if (r.next() < 0.5) pts.add(0);
  if (r.next() < 0.3) pts.add(1024);
  if (!postRelu && r.next() < 0.3) pts.add(-1024);
  const dense = n <= 60 && r.next() < 0.3;
  while (pts.size < n) {
    const v = dense ? r.int(-40, 40) : r.int(postRelu ? 0 : -1024, 1024);
    pts.add(v);
    if (r.next() < 0.2 && pts.size < n && v < 1024) pts.add(v + 1);
  }
  return subsetSortedUnique([...pts]);
}

/**
 * DFSQ subset codes, by the count-table kernel (f32_subset_codes_nhwc) or the compare-count kernel
 * (f32_subset_codes_cmp_nhwc), vs the direct threshold count: exact midpoints and ±1 ulp, NaN/±∞, 1/m = 0.
 */
function subsetCase(cmp: boolean): Case {
  return (rt, r) => {
    const pixels = r.pick([1, 1, 2, 3, 7, 20, 40]), c = r.pick([...CH, 64, 67]);
    const xs = strideFor(r, c), os = strideFor(r, c);
    const postRelu = r.next() < 0.3;
    const maxN = r.pick(cmp ? [1, 2, 3, 4, 5, 16, 64, 256] : [1, 2, 4, 16, 64, 256]);
    const books = Array.from({ length: c }, () => randomCodebook(r, maxN, postRelu));
    const mu = Float32Array.from({ length: c }, () => (postRelu || r.next() < 0.3 ? 0 : r.normal() * 2 ** r.int(-4, 8)));
    const invM = Float32Array.from({ length: c }, () => (r.next() < 0.05 ? 0 : r.next() < 0.6 ? 2 ** r.int(-8, 10) : 2 ** r.uniform(-12, 12)));
    const f = new Float32Array(1), u32 = new Uint32Array(f.buffer);
    const nudge = (v: number, dd: number): number => {
      f[0] = v;
      if (v !== 0 && Number.isFinite(v)) u32[0] += dd;
      return f[0];
    };
    const x = new Float32Array(span(pixels, c, xs));
    for (let p = 0; p < pixels; p++) {
      for (let j = 0; j < c; j++) {
        const u = books[j], m = invM[j] > 0 ? 1 / invM[j] : 1;
        const w = r.next();
        let v: number;
        if (w < 0.04) v = r.pick(F32_SPECIALS);
        else if (w < 0.45 && u.length > 1) {
          const jj = r.int(0, u.length - 2);
          v = Math.fround(mu[j] + ((u[jj] + u[jj + 1]) / 2048) * m);
          if (r.next() < 0.5) v = nudge(v, r.pick([-1, 1]));
        } else if (w < 0.6) v = Math.fround(mu[j] + (r.int(-1030, 1030) / 1024) * m);
        else v = mu[j] + r.uniform(-1.2, 1.2) * m * (r.next() < 0.1 ? 2 ** r.int(2, 30) : 1);
        x[p * xs + j] = v;
      }
    }
    const got = new Uint8Array(span(pixels, c, os)).fill(250), want = got.slice();
    let nThr = -1;
    if (cmp) {
      const th = subsetThresholds(books);
      nThr = th.nThr;
      subsetCodesCmp(got, x, { pixels, channels: c, xStride: xs, outStride: os, mu, invM, thresholds: th.thresholds, nThr }, rt);
    } else {
      const table = subsetCodeTable(new Uint8Array(c * SUBSET_TABLE_STRIDE), books);
      subsetCodes(got, x, { pixels, channels: c, xStride: xs, outStride: os, mu, invM, table }, rt);
    }
    subsetCodesRef(want, x, pixels, c, xs, mu, invM, books, os);
    const d = diffMsg(got, want);
    return d && `subset codes${cmp ? ` (compare-count, nThr ${nThr})` : " (count table)"} ${pixels}×${c} ≤${maxN} points strides ${xs}/${os}: ${d}`;
  };
}

/** f32_count_positive_nhwc: accumulates into running counts over two calls; ±0, NaN, subnormals are not > 0. */
const countPositiveCase: Case = (rt, r) => {
  const pixels = r.pick([1, 2, 3, 9, 40, 129, 300]), c = r.pick([...CH, 64, 67]);
  const xs = strideFor(r, c);
  const x = Float32Array.from({ length: span(pixels, c, xs) }, () => (r.next() < 0.1 ? r.pick(F32_SPECIALS) : r.next() < 0.3 ? 0 : r.normal()));
  const start = Float32Array.from({ length: c }, () => (r.next() < 0.1 ? 2 ** 24 - 2 * pixels : r.int(0, 100000)));
  const got = countPositive(start.slice(), x, { pixels, channels: c, xStride: xs }, rt);
  countPositive(got, x, { pixels, channels: c, xStride: xs }, rt);
  const want = countPositiveRef(countPositiveRef(start.slice(), x, pixels, c, xs), x, pixels, c, xs);
  const d = diffMsg(got, want);
  return d && `count positive ${pixels}×${c} stride ${xs}: ${d}`;
};

export const DYNQ_VARIANTS: Record<string, Case> = {
  "qlut-conv": qlutConvCase,
  "qlut-decode": qlutDecodeCase,
  "qs16-conv-pcs": qs16PcsCase,
  "daq-codes": daqCase,
  "subset-codes": subsetCase(false),
  "subset-codes-cmp": subsetCase(true),
  "count-positive": countPositiveCase,
};
