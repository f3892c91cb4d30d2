import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { prelu, preluQ8, preluQ8At } from "../../src/kernels/prelu.ts";
import { preluRef, preluQ8Ref } from "../../src/kernels/ref/prelu.ts";
import { preluMultipliers } from "../../src/kernels/prelu.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";

test("prelu f32: WASM = reference bit for bit (strides, in place, −0, NaN, ±∞, odd channel counts)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(71);
  let bad = 0, cases = 0;
  for (let k = 0; k < 300; k++) {
    const n = rng.pick([1, 1, 3, 25, 70]);
    const c = rng.pick(CHANNELS);
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0), ys = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0);
    const x = rng.fillF32(new Float32Array((n - 1) * xs + c), -50, 50);
    if (k % 7 === 0) for (const v of [-0, 0, NaN, Infinity, -Infinity, 1e-45, -1e-45, -3.4e38]) x[rng.int(0, x.length - 1)] = v;
    const slopes = rng.fillF32(new Float32Array(c), -1.5, 1.5);
    if (k % 5 === 0) slopes.fill(0.1);
    const got = new Float32Array((n - 1) * ys + c).fill(7), want = new Float32Array(got.length).fill(7);
    prelu(got, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, slopes, rt);
    preluRef(want, x, n, c, xs, ys, slopes);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} (n ${n} c ${c}): at ${d} got ${got[d]} want ${want[d]}`);
  }
  t.equal(bad, 0, `${cases} f32 PReLU cases bit-exact`);
});

test("prelu q8: WASM = reference bit for bit (u8/i8 in, u8/i8 and sub-range out, saturation, per-channel slopes)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(72);
  let bad = 0, cases = 0, saturated = 0;
  for (let k = 0; k < 400; k++) {
    const n = rng.pick([1, 1, 2, 9, 40]);
    const c = rng.pick(CHANNELS);
    const sIn = rng.next() < 0.5, sOut = rng.next() < 0.3;
    const Ci = sIn ? Int8Array : Uint8Array, Co = sOut ? Int8Array : Uint8Array;
    const ilo = sIn ? -128 : 0, ihi = sIn ? 127 : 255;
    const bits = rng.pick([8, 8, 6, 4]);
    const qmin = sOut ? -(1 << (bits - 1)) : 0, qmax = sOut ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0), ys = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0);
    const x = rng.fillInt8(new Ci((n - 1) * xs + c) as Int8Array, ilo, ihi);
    const slopes = rng.fillF32(new Float32Array(c), -0.5, 1.2);
    const p = {
      inScale: Math.fround(Math.exp(rng.uniform(-6, 0))), inZeroPoint: rng.int(ilo, ihi),
      outScale: Math.fround(Math.exp(rng.uniform(-6, 0))), outZeroPoint: rng.int(qmin, qmax), qmin, qmax,
    };
    const got = new Co((n - 1) * ys + c).fill(3), want = new Co(got.length).fill(3);
    preluQ8(got, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, slopes, p, rt);
    const mNeg = new Float32Array(c);
    const mPos = preluMultipliers(mNeg, slopes, p.inScale, p.outScale);
    preluQ8Ref(want, x, n, c, xs, ys, p.inZeroPoint, mPos, mNeg, p.outZeroPoint, qmin, qmax);
    for (let i = 0; i < want.length; i++) if (want[i] === qmin || want[i] === qmax) saturated++;
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} (n ${n} c ${c}): at ${d} got ${got[d]} want ${want[d]}`);
  }
  t.equal(bad, 0, `${cases} 8-bit PReLU cases bit-exact`);
  t.ok(saturated > 100, `saturation exercised (${saturated} clamped codes)`);
});

test("prelu q8: codes are the rounded real PReLU (exact-grid check)", async (t) => {
  const rt = await testRuntime();
  // sx = 0.05, zx = 128; sy = 0.025, zy = 64: positive side ×2, slope 0.25 → ×0.5 on the negative side.
  const x = Uint8Array.from([128, 129, 127, 138, 118, 255, 0, 100]);
  const out = new Uint8Array(8);
  preluQ8(out, x, { pixels: 8, channels: 1 }, Float32Array.of(0.25), { inScale: 0.05, inZeroPoint: 128, outScale: 0.025, outZeroPoint: 64, qmin: 0, qmax: 255 }, rt);
  t.deepEqual([...out], [64, 66, 64 /* −0.5 → even 0 */, 84, 59, 255, 0, 50], "hand-computed codes");
});

test("prelu: bad arguments throw LowbitError codes", async (t) => {
  const rt = await testRuntime();
  const x = new Float32Array(12), y = new Float32Array(12);
  throwsCode(t, () => prelu(y, x, { pixels: 4, channels: 3 }, new Float32Array(2), rt), "E_SHAPE", "slopes length ≠ channels");
  throwsCode(t, () => prelu(y, x, { pixels: 4, channels: 3 }, Float32Array.of(1, NaN, 1), rt), "E_RANGE", "NaN slope");
  throwsCode(t, () => prelu(y, x, { pixels: 5, channels: 3 }, new Float32Array(3), rt), "E_SHAPE", "x too short");
  throwsCode(t, () => prelu(y, new Uint8Array(12) as unknown as Float32Array, { pixels: 4, channels: 3 }, new Float32Array(3), rt), "E_ARGUMENT", "x not f32");
  const q = new Uint8Array(12);
  const p = { inScale: 0.1, inZeroPoint: 0, outScale: 0.1, outZeroPoint: 0, qmin: 0, qmax: 255 };
  throwsCode(t, () => preluQ8(q, q, { pixels: 4, channels: 3 }, new Float32Array(3), { ...p, outScale: 0 }, rt), "E_RANGE", "zero scale");
  throwsCode(t, () => preluQ8(q, q, { pixels: 4, channels: 3 }, new Float32Array(3), { ...p, outZeroPoint: 300 }, rt), "E_RANGE", "zero point outside range");
  throwsCode(t, () => preluQ8(q, q, { pixels: 4, channels: 3 }, new Float32Array(3), { ...p, qmin: -128, qmax: 127, outZeroPoint: 0 }, rt), "E_ARGUMENT", "u8 out with signed range");
  throwsCode(t, () => preluQ8At(rt, { x: 3, y: 64, pixels: 4, channels: 3, signed: false, zx: 0, mPos: 1, mNeg: 2, zy: 0, qmin: 0, qmax: 255 }), "E_ARGUMENT", "misaligned mNeg");
});
