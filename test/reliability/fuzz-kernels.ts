// Differential fuzzing of the WASM kernels against their TS references (src/kernels/ref/): random
// shapes (1×1 images, odd channel counts, lane-boundary sizes), bit-widths, zero points, scales,
// strides and extreme values. Integer kernels must be bit-exact; the f32 conv must stay within the
// bound test/kernels/f32-conv.test.ts states ((m + 3)·2⁻²⁴·Σ|terms|). Each case is reproducible
// from (variant, seed, index). Used by fuzz-kernels.test.ts (CI size) and scripts/fuzz.ts (long).
// This file holds the driver, the registry and the int8 / data-movement / f32 conv cases; the
// dynamic-quantization kernels are in fuzz-kernels-dynq.ts, statistics and elementwise ops in
// fuzz-kernels-elem.ts, the training kernels in fuzz-kernels-grad.ts (each states its bounds).
import type { Runtime } from "../../src/runtime/runtime.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import { packQs8Qc8wConv, packQs8Qc4wConv, qs8Conv, qs8ConvAcc32, qs8ConvPath, type QActivation, type QOutput } from "../../src/kernels/qs8-conv.ts";
import { qconvRef, qconvAcc32Ref, type QConvRefArgs } from "../../src/kernels/ref/qs8-conv.ts";
import { packInt4 } from "../../src/kernels/requant.ts";
import { quantize, dequantize, quantRange } from "../../src/kernels/quantize.ts";
import { quantizeRef, dequantizeRef } from "../../src/kernels/ref/quantize.ts";
import { requantAdd, addMultipliers } from "../../src/kernels/requant-add.ts";
import { requantAddRef } from "../../src/kernels/ref/requant-add.ts";
import { q16Add, q16Requantize } from "../../src/kernels/requant-wide.ts";
import { q16AddRef, q16RequantizeRef } from "../../src/kernels/ref/requant-wide.ts";
import { depthToSpace } from "../../src/kernels/depth-to-space.ts";
import { depthToSpaceRef } from "../../src/kernels/ref/depth-to-space.ts";
import { upsampleBilinear, upsampleNearest } from "../../src/kernels/upsample.ts";
import { upsampleBilinearRef, upsampleNearestRef } from "../../src/kernels/ref/upsample.ts";
import { conv2dF32 } from "../../src/kernels/f32-conv.ts";
import { f32ConvAbsSum, f32ConvRef } from "../../src/kernels/ref/f32-conv.ts";
import { Rng } from "../util/rng.ts";
import { CH, type Case, fillCodes, firstDiff } from "./fuzz-kernels-common.ts";
import { DYNQ_VARIANTS } from "./fuzz-kernels-dynq.ts";
import { ELEM_VARIANTS } from "./fuzz-kernels-elem.ts";
import { GRAD_VARIANTS } from "./fuzz-kernels-grad.ts";

function convCase(wf: "qc8w" | "qc4w", acc32: boolean): Case {
  return (rt, r) => {
    const H = r.pick([1, 1, 2, 3, 4, 5, 7, 9]), W = r.pick([1, 2, 3, 4, 5, 6, 8, 11, 13, 17]);
    const cin = r.pick(CH), cout = r.pick(CH), k = r.pick([1, 3, 3, 5]);
    const bits = wf === "qc8w" ? r.pick([8, 8, 7, 6, 5, 4, 3, 2]) : r.int(2, 8);
    const signed = r.next() < 0.4;
    const [lo, hi] = quantRange(bits, signed);
    const zeroPoint = r.pick([lo, hi, signed ? 0 : 2 ** (bits - 1), r.int(lo, hi)]);
    const act: QActivation = { bits, signed, zeroPoint };
    const inStride = cin + (r.next() < 0.3 ? r.int(1, 5) : 0), outStride = cout + (r.next() < 0.3 ? r.int(1, 5) : 0);
    const n = cout * k * k * cin;
    const weights = new Int8Array(n);
    fillCodes(r, weights, wf === "qc8w" ? -128 : -8, wf === "qc8w" ? 127 : 7);
    // Bias as large as the int32 accumulator bound allows (the overflow margin is tested).
    const bias = new Int32Array(cout);
    const maxDx = Math.max(zeroPoint - lo, hi - zeroPoint);
    for (let o = 0; o < cout; o++) {
      let abs = 0;
      for (let i = o * k * k * cin; i < (o + 1) * k * k * cin; i++) abs += Math.abs(weights[i]);
      const room = Math.min(2 ** 31 - 1 - maxDx * abs, 1e9);
      bias[o] = r.next() < 0.2 ? (r.next() < 0.5 ? -room : room) : r.int(-Math.min(room, 5000), Math.min(room, 5000));
    }
    const input = signed ? new Int8Array((H * W - 1) * inStride + cin) : new Uint8Array((H * W - 1) * inStride + cin);
    fillCodes(r, input, lo, hi);
    const layer = wf === "qc8w" ? packQs8Qc8wConv(weights, { cout, k, cin, bias }) : packQs8Qc4wConv(packInt4(new Uint8Array((n + 1) >> 1), weights), { cout, k, cin, bias });
    const ref: QConvRefArgs = { H, W, Cin: cin, Cout: cout, k, input, inStride, inZp: zeroPoint, weights, bias };
    const len = (H * W - 1) * outStride + cout;
    const what = () => `${wf} ${H}×${W} ${cin}→${cout} k${k} in ${bits}b ${signed ? "s" : "u"} zp ${zeroPoint} strides ${inStride}/${outStride} path ${qs8ConvPath(rt, layer, act)}`;
    if (acc32) {
      const got = new Int32Array(len).fill(-7), want = new Int32Array(len).fill(-7);
      qs8ConvAcc32(rt, got, layer, { H, W, input, inStride, act, outStride });
      qconvAcc32Ref(want, outStride, ref);
      const d = firstDiff(got, want);
      return d < 0 ? null : `${what()}: acc32 at ${d} got ${got[d]} want ${want[d]}`;
    }
    const oSigned = r.next() < 0.5;
    const [olo, ohi] = quantRange(8, oSigned);
    const ozp = r.pick([olo, ohi, oSigned ? 0 : 128, r.int(olo, ohi)]);
    const a = r.int(olo, ohi), b = r.int(olo, ohi);
    const q: QOutput = r.next() < 0.3 ? { signed: oSigned, zeroPoint: ozp, qmin: ozp, qmax: ohi }
      : r.next() < 0.5 ? { signed: oSigned, zeroPoint: ozp, qmin: Math.min(a, b), qmax: Math.max(a, b) }
      : { signed: oSigned, zeroPoint: ozp, qmin: olo, qmax: ohi };
    const mult = new Float32Array(cout);
    const center = r.uniform(-16, 2);
    for (let o = 0; o < cout; o++) mult[o] = 2 ** (center + r.uniform(-2, 2));
    const mk = () => (oSigned ? new Int8Array(len) : new Uint8Array(len)).fill(77);
    const got = mk(), want = mk();
    qs8Conv(rt, got, layer, { H, W, input, inStride, act, outStride }, mult, q);
    qconvRef(want, outStride, ref, mult, q.zeroPoint, q.qmin, q.qmax);
    const d = firstDiff(got, want);
    return d < 0 ? null : `${what()} out zp ${q.zeroPoint} [${q.qmin}, ${q.qmax}]: at ${d} got ${got[d]} want ${want[d]}`;
  };
}

const quantizeCase: Case = (rt, r) => {
  const c = r.pick(CH), n = r.pick([1, 1, 2, 7, 33, 100]);
  const xs = c + (r.next() < 0.4 ? r.int(1, 9) : 0), ys = c + (r.next() < 0.4 ? r.int(1, 9) : 0);
  const signed = r.next() < 0.5, bits = r.int(2, 8);
  let [qmin, qmax] = quantRange(bits, signed);
  if (r.next() < 0.2) qmin = Math.min(qmax - 1, qmin + r.int(0, 3));
  const pc = r.next() < 0.4;
  const scaleOf = () => Math.fround(Math.exp(r.uniform(-12, 4)));
  const scale = pc ? Float32Array.from({ length: c }, scaleOf) : scaleOf();
  const zp = pc ? Int32Array.from({ length: c }, () => r.int(qmin, qmax)) : r.int(qmin, qmax);
  const sAt = (i: number) => (typeof scale === "number" ? scale : scale[i % c]);
  const x = new Float32Array((n - 1) * xs + c);
  for (let i = 0; i < x.length; i++) {
    const u = r.next();
    x[i] = u < 0.2 ? (r.int(-300, 300) + 0.5) * sAt(i) : u < 0.3 ? r.pick([1e30, -1e30, Infinity, -Infinity, NaN, 0, -0, 3.4e38, 1e-45]) : r.uniform(-2, 2) * (qmax - qmin) * sAt(i);
  }
  const Out = signed ? Int8Array : Uint8Array;
  const got = new Out((n - 1) * ys + c).fill(77), want = new Out(got.length).fill(77);
  quantize(got, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, { scale, zeroPoint: zp, qmin, qmax }, rt);
  quantizeRef(want, x, n, c, xs, ys, typeof scale === "number" ? Math.fround(1 / scale) : scale.map((s) => 1 / s), zp, qmin, qmax);
  const d = firstDiff(got, want);
  return d < 0 ? null : `quantize c=${c} n=${n} strides ${xs}/${ys} ${bits}b ${signed ? "s" : "u"} pc=${pc}: at ${d} got ${got[d]} want ${want[d]}`;
};

const dequantizeCase: Case = (rt, r) => {
  const c = r.pick(CH), n = r.pick([1, 1, 2, 7, 33, 100]);
  const xs = c + (r.next() < 0.4 ? r.int(1, 9) : 0), ys = c + (r.next() < 0.4 ? r.int(1, 9) : 0);
  const signed = r.next() < 0.5;
  const [lo, hi] = quantRange(8, signed);
  const pc = r.next() < 0.4;
  const scaleOf = () => Math.fround(Math.exp(r.uniform(-20, 20)));
  const scale = pc ? Float32Array.from({ length: c }, scaleOf) : scaleOf();
  const zp = pc ? Int32Array.from({ length: c }, () => r.int(lo, hi)) : r.int(lo, hi);
  const x = signed ? new Int8Array((n - 1) * xs + c) : new Uint8Array((n - 1) * xs + c);
  fillCodes(r, x, lo, hi);
  const got = new Float32Array((n - 1) * ys + c).fill(-5), want = new Float32Array(got.length).fill(-5);
  dequantize(got, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, { scale, zeroPoint: zp }, rt);
  dequantizeRef(want, x, n, c, xs, ys, scale, zp);
  const d = firstDiff(got, want);
  return d < 0 ? null : `dequantize c=${c} n=${n} pc=${pc}: at ${d} got ${got[d]} want ${want[d]}`;
};

const requantAddCase: Case = (rt, r) => {
  const c = r.pick(CH), n = r.pick([1, 1, 3, 10, 40]);
  const as = c + (r.next() < 0.3 ? r.int(1, 5) : 0), bs = c + (r.next() < 0.3 ? r.int(1, 5) : 0), ys = c + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const sIn = r.next() < 0.5, sOut = r.next() < 0.5 ? sIn : !sIn;
  const [inLo, inHi] = quantRange(8, sIn);
  const a = sIn ? new Int8Array((n - 1) * as + c) : new Uint8Array((n - 1) * as + c);
  const b = sIn ? new Int8Array((n - 1) * bs + c) : new Uint8Array((n - 1) * bs + c);
  fillCodes(r, a, inLo, inHi);
  fillCodes(r, b, inLo, inHi);
  let [qmin, qmax] = quantRange(8, sOut);
  if (r.next() < 0.3) qmax = qmin + 2 ** r.int(2, 7) - 1;
  const scaleOf = () => Math.fround(Math.exp(r.uniform(-8, 2)));
  const shared = r.next() < 0.25;
  const sa = scaleOf(), sb = shared ? sa : scaleOf(), so = shared ? sa : scaleOf();
  const za = r.int(inLo, inHi), zb = r.int(inLo, inHi), zo = r.int(qmin, qmax);
  const relu = r.next() < 0.25;
  const lo = relu ? Math.max(qmin, zo) : qmin;
  if (lo >= qmax) return null;
  const Out = sOut ? Int8Array : Uint8Array;
  const got = new Out((n - 1) * ys + c).fill(33), want = new Out(got.length).fill(33);
  requantAdd(got, a, b, { pixels: n, channels: c, aStride: as, bStride: bs, outStride: ys },
    { a: { scale: sa, zeroPoint: za }, b: { scale: sb, zeroPoint: zb }, out: { scale: so, zeroPoint: zo }, qmin, qmax, relu }, rt);
  const [ma, mb] = addMultipliers(sa, sb, so);
  requantAddRef(want, a, b, n, c, as, bs, ys, za, zb, ma, mb, zo, lo, qmax);
  const d = firstDiff(got, want);
  return d < 0 ? null : `requant-add c=${c} n=${n} sIn=${sIn} sOut=${sOut} relu=${relu}: at ${d} got ${got[d]} want ${want[d]}`;
};

/** The 16-bit residual-stream kernels: every operand u8 or u16, random strides, scales, zero points, sub-ranges. */
const wideCase = (op: "add" | "requantize"): Case => (rt, r) => {
  const c = r.pick(CH), n = r.pick([1, 1, 3, 10, 40]);
  const stride = () => c + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const codes = (wide: boolean, s: number) => {
    const x = wide ? new Uint16Array((n - 1) * s + c) : new Uint8Array((n - 1) * s + c);
    fillCodes(r, x, 0, wide ? 65535 : 255);
    return x;
  };
  const wa = r.next() < 0.5, wb = r.next() < 0.5, wy = r.next() < 0.5;
  const as = stride(), bs = stride(), ys = stride();
  const a = codes(wa, as), b = codes(wb, bs);
  const top = wy ? 65535 : 255;
  const qmin = r.next() < 0.3 ? r.int(0, top >> 2) : 0, qmax = r.next() < 0.3 ? r.int(top >> 1, top) : top;
  const scaleOf = () => Math.fround(Math.exp(r.uniform(-8, 2)));
  const sa = scaleOf(), sb = scaleOf(), so = scaleOf();
  const za = r.int(0, wa ? 65535 : 255), zb = r.int(0, wb ? 65535 : 255), zo = r.int(qmin, qmax);
  const Out = wy ? Uint16Array : Uint8Array;
  const got = new Out((n - 1) * ys + c).fill(33), want = new Out(got.length).fill(33);
  const bits = (w: boolean) => (w ? 16 : 8) as 8 | 16;
  if (op === "add") {
    q16Add(rt, got, a, b, { a: { scale: sa, zeroPoint: za, bits: bits(wa) }, b: { scale: sb, zeroPoint: zb, bits: bits(wb) }, out: { scale: so, zeroPoint: zo, bits: bits(wy) }, qmin, qmax },
      { pixels: n, channels: c, aStride: as, bStride: bs, outStride: ys });
    q16AddRef(want, a, b, n, c, za, zb, Math.fround(sa / so), Math.fround(sb / so), zo, qmin, qmax, as, bs, ys);
  } else {
    q16Requantize(rt, got, a, { x: { scale: sa, zeroPoint: za, bits: bits(wa) }, out: { scale: so, zeroPoint: zo, bits: bits(wy) }, qmin, qmax },
      { pixels: n, channels: c, xStride: as, outStride: ys });
    q16RequantizeRef(want, a, n, c, za, Math.fround(sa / so), zo, qmin, qmax, as, ys);
  }
  const d = firstDiff(got, want);
  return d < 0 ? null : `${op}-wide c=${c} n=${n} widths a${bits(wa)} b${bits(wb)} y${bits(wy)}: at ${d} got ${got[d]} want ${want[d]}`;
};

function spatialCase(op: "d2s" | "up" | "bilinear", elem: "u8" | "i8" | "f32"): Case {
  return (rt, r) => {
    const h = r.int(1, 9), w = r.int(1, 11), c = r.pick(CH), f = r.pick([1, 2, 2, 3, 4, 8]);
    const cin = op === "d2s" ? c * f * f : c;
    const xs = cin + (r.next() < 0.3 ? r.int(1, 5) : 0), ys = c + (r.next() < 0.3 ? r.int(1, 5) : 0);
    const outPx = h * w * f * f;
    const T = elem === "u8" ? Uint8Array : elem === "i8" ? Int8Array : Float32Array;
    const x = new T((h * w - 1) * xs + cin);
    for (let i = 0; i < x.length; i++) x[i] = elem === "f32" ? r.pick([NaN, -0, Infinity, r.uniform(-1e6, 1e6)]) : r.int(-128, 255);
    const got = new T((outPx - 1) * ys + c).fill(5), want = new T(got.length).fill(5);
    const layout = { height: h, width: w, channels: c, inStride: xs, outStride: ys };
    if (op === "d2s") {
      depthToSpace(got, x, layout, f, rt);
      depthToSpaceRef(want, x, h, w, c, f, xs, ys);
    } else if (op === "up") {
      upsampleNearest(got, x, layout, f, rt);
      upsampleNearestRef(want, x, h, w, c, f, xs, ys);
    } else {
      const mode = r.pick(["half_pixel", "asymmetric"] as const);
      upsampleBilinear(got as Uint8Array | Float32Array, x as Uint8Array | Float32Array, layout, f, mode, rt);
      upsampleBilinearRef(want as Uint8Array | Float32Array, x as Uint8Array | Float32Array, h, w, c, f, mode === "half_pixel" ? 0 : 1, xs, ys);
    }
    const d = firstDiff(got, want);
    return d < 0 ? null : `${op} ${elem} ${h}×${w}×${c} f${f} strides ${xs}/${ys}: at ${d} got ${got[d]} want ${want[d]}`;
  };
}

const U = 2 ** -24;
const f32ConvCase: Case = (rt, r) => {
  const h = r.int(1, 7), w = r.int(1, 11), cin = r.pick(CH), cout = r.pick(CH), k = r.pick([1, 3, 3, 5]);
  const inStride = cin + (r.next() < 0.3 ? r.int(1, 5) : 0), outStride = cout + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const inOffset = r.next() < 0.3 ? r.int(1, 9) : 0, outOffset = r.next() < 0.3 ? r.int(1, 9) : 0;
  const mag = Math.exp(r.uniform(-10, 10));
  const input = r.fillF32(new Float32Array(inOffset + (h * w - 1) * inStride + cin), -mag, mag);
  const weights = r.fillF32(new Float32Array(k * k * cin * cout), -1, 1);
  const bias = r.next() < 0.7 ? r.fillF32(new Float32Array(cout), -mag, mag) : null;
  const relu = r.next() < 0.3;
  const outMin = r.next() < 0.2 ? r.uniform(-mag, 0) : undefined, outMax = r.next() < 0.2 ? r.uniform(0, mag) : undefined;
  const len = outOffset + (h * w - 1) * outStride + cout;
  const out = new Float32Array(len).fill(1234.5), want = new Float32Array(len).fill(1234.5);
  const lo = Math.max(relu ? 0 : -Infinity, outMin ?? -Infinity);
  const args = { input, h, w, cin, cout, k, weights, bias, out: want, inOffset, inStride, outOffset, outStride, outMin: lo, outMax };
  f32ConvRef(args);
  const absSum = new Float64Array(h * w * cout);
  f32ConvAbsSum(args, absSum);
  conv2dF32(out, input, { h, w, cin, cout, k, weights, bias, relu, outMin, outMax, inStride, inOffset, outStride, outOffset, runtime: rt });
  const p = (k - 1) / 2;
  for (let i = 0; i < len; i++) {
    const rel = i - outOffset, pix = Math.floor(rel / outStride), o = rel - pix * outStride;
    if (!(rel >= 0 && pix < h * w && o < cout)) {
      if (out[i] !== 1234.5) return `f32 conv: element ${i} outside the output slice changed`;
      continue;
    }
    const y = Math.floor(pix / w), x = pix % w;
    const m = (Math.min(h - 1, y + p) - Math.max(0, y - p) + 1) * (Math.min(w - 1, x + p) - Math.max(0, x - p) + 1) * cin;
    const tol = (m + 3) * U * absSum[pix * cout + o];
    if (!(Math.abs(out[i] - want[i]) <= tol)) return `f32 conv ${h}×${w} ${cin}→${cout} k${k}: (${y},${x},${o}) got ${out[i]} want ${want[i]} tol ${tol}`;
  }
  return null;
};

/** Every fuzzed kernel variant. */
export const KERNEL_VARIANTS: Record<string, Case> = {
  "qs8-conv-qc8w": convCase("qc8w", false),
  "qs8-conv-qc4w": convCase("qc4w", false),
  "qs8-conv-acc32-qc8w": convCase("qc8w", true),
  "qs8-conv-acc32-qc4w": convCase("qc4w", true),
  quantize: quantizeCase,
  dequantize: dequantizeCase,
  "requant-add": requantAddCase,
  "requant-add-wide": wideCase("add"),
  "requantize-wide": wideCase("requantize"),
  "depth-to-space-u8": spatialCase("d2s", "u8"),
  "depth-to-space-i8": spatialCase("d2s", "i8"),
  "depth-to-space-f32": spatialCase("d2s", "f32"),
  "upsample-u8": spatialCase("up", "u8"),
  "upsample-f32": spatialCase("up", "f32"),
  "upsample-bilinear-u8": spatialCase("bilinear", "u8"),
  "upsample-bilinear-f32": spatialCase("bilinear", "f32"),
  "f32-conv": f32ConvCase,
  ...DYNQ_VARIANTS,
  ...ELEM_VARIANTS,
  ...GRAD_VARIANTS,
};

export interface KernelFuzzStats {
  variant: string;
  backend: string;
  cases: number;
  mismatches: number;
  errors: number;
  ms: number;
  failures: string[];
}

/** Runs `cases` random cases of one kernel variant; every result is compared with the reference. */
export function fuzzKernel(variant: string, rt: Runtime, cases: number, seed: number, onCase?: (i: number) => void): KernelFuzzStats {
  const run = KERNEL_VARIANTS[variant];
  if (!run) throw new Error(`unknown kernel variant '${variant}'`);
  const st: KernelFuzzStats = { variant, backend: rt.info.backend, cases: 0, mismatches: 0, errors: 0, ms: 0, failures: [] };
  const t0 = performance.now();
  const mark = rt.arena.mark();
  for (let i = 0; i < cases; i++) {
    const r = new Rng((seed * 0x9e3779b1 + i * 0x85ebca6b) >>> 0);
    try {
      const d = run(rt, r);
      if (d !== null) {
        st.mismatches++;
        if (st.failures.length < 5) st.failures.push(`${variant} seed ${seed} case ${i}: ${d}`);
      }
    } catch (e) {
      // Generated arguments are valid: any throw (typed or not) is a finding.
      st.errors++;
      if (st.failures.length < 5) st.failures.push(`${variant} seed ${seed} case ${i}: threw ${e instanceof LowbitError ? e.message : String(e)}`);
    }
    st.cases++;
    onCase?.(i);
  }
  if (rt.arena.mark() !== mark) st.failures.push(`${variant}: the arena scratch top moved from ${mark} to ${rt.arena.mark()} (a wrapper leaked scratch)`);
  st.ms = performance.now() - t0;
  return st;
}
