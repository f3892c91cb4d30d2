import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { firstDiff, throwsCode } from "./_elem-helpers.ts";
import { quantize, dequantize, quantRange, quantizeAt } from "../../src/kernels/quantize.ts";
import { quantizeRef, dequantizeRef, quantizeOne } from "../../src/kernels/ref/quantize.ts";

const CH = [1, 3, 5, 12, 16, 17, 31, 48, 64];

test("quantize: reference rounds half to even and clamps (hand cases)", (t) => {
  t.equal(quantizeOne(2.5, 1, 0, 0, 255), 2, "2.5 → 2");
  t.equal(quantizeOne(3.5, 1, 0, 0, 255), 4, "3.5 → 4");
  t.equal(quantizeOne(-2.5, 1, 0, -128, 127), -2, "-2.5 → -2");
  t.equal(quantizeOne(1e30, 1, 3, 0, 15), 15, "huge → qmax");
  t.equal(quantizeOne(-Infinity, 1, 3, 0, 15), 0, "-inf → qmin");
  t.equal(quantizeOne(NaN, 1, 3, 0, 15), 0, "NaN → qmin");
  t.equal(quantizeOne(0.26, 10, 100, 0, 255), 103, "0.26·10 + 100 → 103 (2.6 rounds to 3)");
  t.end();
});

test("quantize/dequantize: WASM = reference bit for bit (random shapes, strides, bit-widths, per tensor and per channel)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(1234);
  let bad = 0, cases = 0;
  for (let k = 0; k < 400; k++) {
    const c = rng.pick(CH);
    const n = rng.pick([1, 1, 2, 7, 33, 100]);
    const xs = c + (rng.next() < 0.4 ? rng.int(1, 9) : 0);
    const ys = c + (rng.next() < 0.4 ? rng.int(1, 9) : 0);
    const signed = rng.next() < 0.5;
    const bits = rng.int(2, 8);
    let [qmin, qmax] = quantRange(bits, signed);
    if (rng.next() < 0.2) qmin = Math.min(qmax - 1, qmin + rng.int(0, 3)); // e.g. fused ReLU
    const pc = rng.next() < 0.4;
    const scaleOf = () => Math.fround(Math.exp(rng.uniform(-6, 1)));
    const zpOf = () => rng.int(qmin, qmax);
    const scale = pc ? Float32Array.from({ length: c }, scaleOf) : scaleOf();
    const zp = pc ? Int32Array.from({ length: c }, zpOf) : zpOf();
    const x = new Float32Array((n - 1) * xs + c);
    const range = (qmax - qmin) * (typeof scale === "number" ? scale : 0.01);
    for (let i = 0; i < x.length; i++) {
      const r = rng.next();
      // exact ties (code ± .5 steps), extreme values, and plain random values
      x[i] = r < 0.15 ? (rng.int(-300, 300) + 0.5) * (typeof scale === "number" ? scale : scale[i % c]) : r < 0.2 ? rng.pick([1e30, -1e30, Infinity, -Infinity, NaN, 0, -0]) : rng.uniform(-1.5 * range, 1.5 * range);
    }
    const Out = signed ? Int8Array : Uint8Array;
    const got = new Out((n - 1) * ys + c).fill(77), want = new Out(got.length).fill(77);
    quantize(got, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, { scale, zeroPoint: zp, qmin, qmax }, rt);
    const inv = typeof scale === "number" ? Math.fround(1 / scale) : scale.map((s) => 1 / s);
    quantizeRef(want, x, n, c, xs, ys, inv, zp, qmin, qmax);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0) {
      bad++;
      if (bad < 4) t.fail(`quantize case ${k} c=${c} n=${n} xs=${xs} ys=${ys} bits=${bits} signed=${signed} pc=${pc}: at ${d} got ${got[d]} want ${want[d]} (x=${x[Math.floor(d / ys) * xs + (d % ys)]})`);
    }
    // dequantize the produced codes back
    const back = new Float32Array((n - 1) * xs + c).fill(-5), backRef = new Float32Array(back.length).fill(-5);
    dequantize(back, got, { pixels: n, channels: c, inStride: ys, outStride: xs }, { scale, zeroPoint: zp }, rt);
    dequantizeRef(backRef, got, n, c, ys, xs, scale, zp);
    const d2 = firstDiff(back, backRef);
    if (d2 >= 0) {
      bad++;
      if (bad < 4) t.fail(`dequantize case ${k}: at ${d2} got ${back[d2]} want ${backRef[d2]}`);
    }
  }
  t.equal(bad, 0, `${cases} quantize + dequantize cases bit-exact`);
});

test("quantize: round trip error ≤ scale/2 inside the range; strided gaps untouched", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(99);
  const n = 50, c = 5, ys = 8, scale = 0.02, zp = 128;
  const x = rng.fillF32(new Float32Array(n * c), -2.5, 2.5);
  const q = new Uint8Array(n * ys).fill(9);
  quantize(q, x, { pixels: n, channels: c, outStride: ys }, { scale, zeroPoint: zp, qmin: 0, qmax: 255 }, rt);
  let gapsOk = true;
  for (let p = 0; p < n; p++) for (let i = c; i < ys && p * ys + i < q.length; i++) gapsOk &&= q[p * ys + i] === 9;
  t.ok(gapsOk, "bytes between pixels keep their values");
  const y = new Float32Array(n * c);
  dequantize(y, q, { pixels: n, channels: c, inStride: ys }, { scale, zeroPoint: zp }, rt);
  let maxErr = 0;
  for (let i = 0; i < x.length; i++) maxErr = Math.max(maxErr, Math.abs(x[i] - y[i]));
  t.ok(maxErr <= scale / 2 + 1e-6, `max round-trip error ${maxErr} ≤ ${scale / 2}`);
});

test("quantize: bad arguments throw LowbitError before any WASM call", async (t) => {
  const rt = await testRuntime();
  const x = new Float32Array(12), q = new Uint8Array(12);
  const L = { pixels: 4, channels: 3 };
  const Q = { scale: 0.1, zeroPoint: 0, qmin: 0, qmax: 255 };
  throwsCode(t, () => quantRange(9, false), "E_BITS", "bits 9");
  throwsCode(t, () => quantRange(1, true), "E_BITS", "bits 1");
  throwsCode(t, () => quantize(q, x, { pixels: 5, channels: 3 }, Q, rt), "E_SHAPE", "x too short");
  throwsCode(t, () => quantize(q, x, { pixels: 4, channels: 3, outStride: 2 }, Q, rt), "E_SHAPE", "stride < channels");
  throwsCode(t, () => quantize(q, x, { pixels: 4, channels: 0 }, Q, rt), "E_SHAPE", "zero channels");
  throwsCode(t, () => quantize(q, x, L, { ...Q, scale: 0 }, rt), "E_RANGE", "scale 0");
  throwsCode(t, () => quantize(q, x, L, { ...Q, scale: NaN }, rt), "E_RANGE", "scale NaN");
  throwsCode(t, () => quantize(q, x, L, { ...Q, zeroPoint: 300 }, rt), "E_RANGE", "zp outside range");
  throwsCode(t, () => quantize(q, x, L, { ...Q, qmin: -1 }, rt), "E_RANGE", "negative qmin into Uint8Array");
  throwsCode(t, () => quantize(new Int8Array(12), x, L, Q, rt), "E_RANGE", "u8 range into Int8Array");
  throwsCode(t, () => quantize(q, x, L, { ...Q, qmin: 10, qmax: 10 }, rt), "E_RANGE", "empty range");
  throwsCode(t, () => quantize(q, x, L, { ...Q, scale: new Float32Array(2), zeroPoint: new Int32Array(3) }, rt), "E_SHAPE", "per-channel length");
  throwsCode(t, () => quantize(q, x, L, { ...Q, scale: new Float32Array(3).fill(1) }, rt), "E_ARGUMENT", "mixed per-channel/per-tensor");
  throwsCode(t, () => quantize(q as unknown as Uint8Array, new Float64Array(12) as unknown as Float32Array, L, Q, rt), "E_ARGUMENT", "Float64Array input");
  throwsCode(t, () => dequantize(x, new Int8Array(12), L, { scale: 1, zeroPoint: 200 }, rt), "E_RANGE", "i8 zero point 200");
  throwsCode(t, () => quantizeAt(rt, { x: rt.arena.capacity - 8, y: 0, pixels: 4, channels: 3, invScale: 1, zeroPoint: 0, qmin: 0, qmax: 255 }), "E_ARGUMENT", "offset past memory");
  throwsCode(t, () => quantizeAt(rt, { x: 2, y: 0, pixels: 4, channels: 3, invScale: 1, zeroPoint: 0, qmin: 0, qmax: 255 }), "E_ARGUMENT", "misaligned f32 offset");
});
