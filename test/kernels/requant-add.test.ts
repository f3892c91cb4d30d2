import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { requantAdd, addMultipliers } from "../../src/kernels/requant-add.ts";
import { requantAddRef, addSameScaleRef } from "../../src/kernels/ref/requant-add.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";

test("requant add: WASM = reference bit for bit (u8/i8, mixed output type, strides, ReLU, sub-ranges, shared scale)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(77);
  let bad = 0, cases = 0, sameScale = 0;
  for (let k = 0; k < 600; k++) {
    const c = rng.pick(CHANNELS), n = rng.pick([1, 1, 3, 10, 40]);
    const as = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0), bs = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0), ys = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0);
    const sIn = rng.next() < 0.5, sOut = rng.next() < 0.5 ? sIn : !sIn;
    const In = sIn ? Int8Array : Uint8Array, Out = sOut ? Int8Array : Uint8Array;
    const inLo = sIn ? -128 : 0, inHi = sIn ? 127 : 255;
    const a = rng.fillInt8(new In((n - 1) * as + c) as Int8Array, inLo, inHi), b = rng.fillInt8(new In((n - 1) * bs + c) as Int8Array, inLo, inHi);
    if (rng.next() < 0.2) { a.fill(inHi); b.fill(inHi); } // saturation
    let qmin = sOut ? -128 : 0, qmax = sOut ? 127 : 255;
    if (rng.next() < 0.3) { const bits = rng.int(2, 7); qmax = qmin + 2 ** bits - 1; }
    const scaleOf = () => Math.fround(Math.exp(rng.uniform(-5, 0)));
    const shared = rng.next() < 0.25;
    const sa = scaleOf(), sb = shared ? sa : scaleOf(), so = shared ? sa : rng.next() < 0.2 ? sa : scaleOf();
    const za = rng.int(inLo, inHi), zb = rng.int(inLo, inHi), zo = rng.int(qmin, qmax);
    const relu = rng.next() < 0.25;
    const lo = relu ? Math.max(qmin, zo) : qmin;
    if (lo >= qmax) continue;
    const got = new Out((n - 1) * ys + c).fill(33), want = new Out(got.length).fill(33);
    requantAdd(got, a, b, { pixels: n, channels: c, aStride: as, bStride: bs, outStride: ys },
      { a: { scale: sa, zeroPoint: za }, b: { scale: sb, zeroPoint: zb }, out: { scale: so, zeroPoint: zo }, qmin, qmax, relu }, rt);
    const [ma, mb] = addMultipliers(sa, sb, so);
    requantAddRef(want, a, b, n, c, as, bs, ys, za, zb, ma, mb, zo, lo, qmax);
    cases++;
    if (ma === 1 && mb === 1) {
      sameScale++;
      const w2 = new Out(got.length).fill(33);
      addSameScaleRef(w2, a, b, n, c, as, bs, ys, zo - za - zb, lo, qmax);
      if (firstDiff(w2, want) >= 0) { bad++; t.fail(`case ${k}: integer add ≠ requant add at equal scales`); }
    }
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} c=${c} n=${n} sIn=${sIn} sOut=${sOut} relu=${relu}: at ${d} got ${got[d]} want ${want[d]}`);
  }
  t.equal(bad, 0, `${cases} cases bit-exact (${sameScale} through the shared-scale integer kernel)`);
  t.ok(sameScale > 50, "the integer path was exercised");
});

test("requant add: matches exact real arithmetic away from ties; hand cases", async (t) => {
  const rt = await testRuntime();
  // a_r = 0.5·(200 − 128) = 36, b_r = 0.25·(10 − 0) = 2.5, out scale 0.5 zp 10 → 38.5/0.5 + 10 = 87
  const out = new Uint8Array(1);
  requantAdd(out, Uint8Array.of(200), Uint8Array.of(10), { pixels: 1, channels: 1 },
    { a: { scale: 0.5, zeroPoint: 128 }, b: { scale: 0.25, zeroPoint: 0 }, out: { scale: 0.5, zeroPoint: 10 } }, rt);
  t.equal(out[0], 87, "36 + 2.5 → code 87");
  // tie: 0.5 + 0 = 0.5 (in output steps) → rounds to even 0
  requantAdd(out, Uint8Array.of(1), Uint8Array.of(0), { pixels: 1, channels: 1 },
    { a: { scale: 0.5, zeroPoint: 0 }, b: { scale: 1, zeroPoint: 0 }, out: { scale: 1, zeroPoint: 0 } }, rt);
  t.equal(out[0], 0, "0.5 rounds half to even → 0");
  const o8 = new Int8Array(1);
  requantAdd(o8, Int8Array.of(127), Int8Array.of(127), { pixels: 1, channels: 1 },
    { a: { scale: 1, zeroPoint: 0 }, b: { scale: 1, zeroPoint: 0 }, out: { scale: 1, zeroPoint: 0 } }, rt);
  t.equal(o8[0], 127, "i8 saturates at 127");
  requantAdd(o8, Int8Array.of(-100), Int8Array.of(50), { pixels: 1, channels: 1 },
    { a: { scale: 1, zeroPoint: 0 }, b: { scale: 1, zeroPoint: 0 }, out: { scale: 1, zeroPoint: -3 }, relu: true }, rt);
  t.equal(o8[0], -3, "fused ReLU clamps at the zero point");
  // real-arithmetic check on random data (skip values within 1e-3 of a tie)
  const rng = new Rng(5);
  let mism = 0, checked = 0;
  for (let k = 0; k < 200; k++) {
    const n = 64, a = rng.fillUint8(new Uint8Array(n)), b = rng.fillUint8(new Uint8Array(n)), y = new Uint8Array(n);
    const sa = Math.fround(rng.uniform(0.001, 0.1)), sb = Math.fround(rng.uniform(0.001, 0.1)), so = Math.fround(rng.uniform(0.002, 0.2));
    const za = rng.int(0, 255), zb = rng.int(0, 255), zo = rng.int(0, 255);
    requantAdd(y, a, b, { pixels: n, channels: 1 }, { a: { scale: sa, zeroPoint: za }, b: { scale: sb, zeroPoint: zb }, out: { scale: so, zeroPoint: zo } }, rt);
    for (let i = 0; i < n; i++) {
      const v = (sa * (a[i] - za) + sb * (b[i] - zb)) / so;
      if (Math.abs(v - Math.floor(v) - 0.5) < 1e-3) continue;
      checked++;
      if (y[i] !== Math.min(255, Math.max(0, Math.round(v) + zo))) mism++;
    }
  }
  t.equal(mism, 0, `${checked} codes equal the exactly computed requantized sum`);
});

test("requant add: bad arguments throw LowbitError", async (t) => {
  const rt = await testRuntime();
  const a = new Uint8Array(6), b = new Uint8Array(6), y = new Uint8Array(6);
  const Q = { a: { scale: 1, zeroPoint: 0 }, b: { scale: 1, zeroPoint: 0 }, out: { scale: 1, zeroPoint: 0 } };
  const L = { pixels: 2, channels: 3 };
  throwsCode(t, () => requantAdd(y, a, new Int8Array(6), L, Q, rt), "E_ARGUMENT", "mixed input types");
  throwsCode(t, () => requantAdd(y, a, b, { pixels: 3, channels: 3 }, Q, rt), "E_SHAPE", "short inputs");
  throwsCode(t, () => requantAdd(y, a, b, { ...L, aStride: 2 }, Q, rt), "E_SHAPE", "stride < channels");
  throwsCode(t, () => requantAdd(y, a, b, L, { ...Q, out: { scale: 0, zeroPoint: 0 } }, rt), "E_RANGE", "zero output scale");
  throwsCode(t, () => requantAdd(y, a, b, L, { ...Q, a: { scale: Infinity, zeroPoint: 0 } }, rt), "E_RANGE", "infinite scale");
  throwsCode(t, () => requantAdd(y, a, b, L, { ...Q, a: { scale: 1e30, zeroPoint: 0 }, out: { scale: 1e-30, zeroPoint: 0 } }, rt), "E_RANGE", "ratio overflows f32");
  throwsCode(t, () => requantAdd(y, a, b, L, { ...Q, a: { scale: 1, zeroPoint: -1 } }, rt), "E_RANGE", "u8 zero point −1");
  throwsCode(t, () => requantAdd(y, a, b, L, { ...Q, qmin: -5 }, rt), "E_RANGE", "negative qmin for Uint8Array out");
  throwsCode(t, () => requantAdd(y, a, b, L, { ...Q, out: { scale: 1, zeroPoint: 255 }, relu: true }, rt), "E_RANGE", "ReLU leaves empty range");
});
