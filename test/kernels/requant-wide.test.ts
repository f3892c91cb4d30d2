// 16-bit residual stream kernels (assembly/elementwise/requant-wide.ts): q16_add_nhwc and
// q16_requantize_nhwc on every u8/u16 width combination, against the Math.fround reference bit for bit.
import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { q16Add, q16AddAt, q16Requantize, q16RequantizeAt, type Codes16, type CodeBits } from "../../src/kernels/requant-wide.ts";
import { q16AddRef, q16RequantizeRef } from "../../src/kernels/ref/requant-wide.ts";
import { requantAdd, addMultipliers } from "../../src/kernels/requant-add.ts";
import { concat } from "../../src/kernels/concat.ts";
import { firstDiff, throwsCode } from "./_elem-helpers.ts";

const f = Math.fround;
const maxOf = (bits: CodeBits) => (bits === 16 ? 65535 : 255);
const make = (bits: CodeBits, len: number): Codes16 => (bits === 16 ? new Uint16Array(len) : new Uint8Array(len));

/** Random pixel count: mostly small, sometimes a few hundred (the dense path then runs long rows). */
function pixelsOf(rng: Rng): number {
  return rng.pick([1, 1, 2, 3, 5, 9, 17, 40, 97, 150, 300]);
}

/** A pixel stride: c, or (30%) c + 1..6 — a channel slice of a wider buffer. */
function strideOf(rng: Rng, c: number): number {
  return c + (rng.next() < 0.3 ? rng.int(1, 6) : 0);
}

/** Output range: the full type range, or (40%) a random sub-range with qmin > 0 and/or qmax < max. */
function rangeOf(rng: Rng, bits: CodeBits): [number, number] {
  const hi = maxOf(bits);
  if (rng.next() < 0.6) return [0, hi];
  const qmin = rng.next() < 0.7 ? rng.int(1, hi >> 1) : 0;
  const qmax = rng.next() < 0.7 || qmin === 0 ? rng.int(qmin + 1, hi - 1) : hi;
  return [qmin, qmax];
}

/** Codes of a type: uniform over [0, max], or (50%) around the zero point with a spread that maps to ~ the output range. */
function fillCodes(rng: Rng, x: Codes16, bits: CodeBits, zp: number, spread: number): Codes16 {
  const hi = maxOf(bits);
  if (rng.next() < 0.5) {
    for (let i = 0; i < x.length; i++) x[i] = rng.int(0, hi);
  } else {
    const s = Math.max(1, Math.min(hi, spread));
    for (let i = 0; i < x.length; i++) x[i] = Math.min(hi, Math.max(0, zp + Math.round(rng.normal() * s)));
  }
  if (rng.next() < 0.1) x.fill(rng.next() < 0.5 ? hi : 0); // saturation
  return x;
}

/** A scale ratio (input scale / output scale): log-uniform over 1e-3..1e3, or (20%) a power-of-two-ish one with exact ties. */
function ratioOf(rng: Rng): number {
  if (rng.next() < 0.2) return rng.pick([0.25, 0.5, 1, 1.5, 2, 0.125, 3]);
  return 10 ** rng.uniform(-3, 3);
}

const WIDTHS3: Array<[CodeBits, CodeBits, CodeBits]> = [];
for (const a of [8, 16] as CodeBits[]) for (const b of [8, 16] as CodeBits[]) for (const y of [8, 16] as CodeBits[]) WIDTHS3.push([a, b, y]);

test("q16 add: WASM = reference bit for bit (8 width combinations, strides, channel tails, sub-ranges, ReLU, in place)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(1601);
  const perCombo = new Map<string, number>();
  let bad = 0, cases = 0, inPlace = 0, dense = 0;
  for (let k = 0; k < 960; k++) {
    const [wa, wb, wy] = WIDTHS3[k % 8];
    const c = rng.int(1, 40), n = pixelsOf(rng);
    let as = strideOf(rng, c), bs = strideOf(rng, c), ys = strideOf(rng, c);
    const place = wy === wa && rng.next() < 0.2;
    if (place) ys = as;
    if (rng.next() < 0.25) as = bs = ys = c;
    if (as === c && bs === c && ys === c) dense++;
    const [qmin, qmax] = rangeOf(rng, wy);
    const zo = rng.int(qmin, qmax), za = rng.int(0, maxOf(wa)), zb = rng.int(0, maxOf(wb));
    const so = f(Math.exp(rng.uniform(-6, 1)));
    const ra = ratioOf(rng), rb = ratioOf(rng);
    const sa = f(so * ra), sb = f(so * rb);
    const relu = rng.next() < 0.15 && zo < qmax;
    const a = fillCodes(rng, make(wa, (n - 1) * as + c), wa, za, (qmax - qmin) / 4 / ra);
    const b = fillCodes(rng, make(wb, (n - 1) * bs + c), wb, zb, (qmax - qmin) / 4 / rb);
    const [ma, mb] = addMultipliers(sa, sb, so);
    const lo = relu ? Math.max(qmin, zo) : qmin;
    const q = { a: { scale: sa, zeroPoint: za }, b: { scale: sb, zeroPoint: zb }, out: { scale: so, zeroPoint: zo }, qmin, qmax, relu };
    const L = { pixels: n, channels: c, aStride: as, bStride: bs, outStride: ys };
    let got: Codes16, want: Codes16;
    if (place) {
      want = a.slice();
      q16AddRef(want, a, b, n, c, za, zb, ma, mb, zo, lo, qmax, as, bs, ys);
      got = a; // y = a: the wrapper runs the kernel in place in the arena
      q16Add(rt, got, got, b, q, L);
      inPlace++;
    } else {
      got = make(wy, (n - 1) * ys + c).fill(77);
      want = make(wy, got.length).fill(77);
      q16Add(rt, got, a, b, q, L);
      q16AddRef(want, a, b, n, c, za, zb, ma, mb, zo, lo, qmax, as, bs, ys);
    }
    cases++;
    const key = `u${wa}+u${wb}→u${wy}`;
    perCombo.set(key, (perCombo.get(key) ?? 0) + 1);
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} ${key} c=${c} n=${n} strides=${as}/${bs}/${ys} place=${place}: at ${d} got ${got[d]} want ${want[d]}`);
  }
  t.equal(bad, 0, `${cases} adds bit-exact (${inPlace} in place, ${dense} dense)`);
  t.equal(perCombo.size, 8, `all 8 width combinations: ${[...perCombo].map(([k, v]) => `${k} ×${v}`).join(", ")}`);
});

test("q16 requantize: WASM = reference bit for bit (4 width combinations, strides, sub-ranges, in place)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(1602);
  let bad = 0, cases = 0, inPlace = 0;
  for (let k = 0; k < 480; k++) {
    const wx: CodeBits = k & 2 ? 16 : 8, wy: CodeBits = k & 1 ? 16 : 8;
    const c = rng.int(1, 40), n = pixelsOf(rng);
    let xs = strideOf(rng, c), ys = strideOf(rng, c);
    const place = wx === wy && rng.next() < 0.2;
    if (place) ys = xs;
    if (rng.next() < 0.25) xs = ys = c;
    const [qmin, qmax] = rangeOf(rng, wy);
    const zy = rng.int(qmin, qmax), zx = rng.int(0, maxOf(wx));
    const sy = f(Math.exp(rng.uniform(-6, 1))), r = ratioOf(rng), sx = f(sy * r);
    const m = f(f(sx) / f(sy));
    const x = fillCodes(rng, make(wx, (n - 1) * xs + c), wx, zx, (qmax - qmin) / 4 / r);
    const q = { x: { scale: sx, zeroPoint: zx }, out: { scale: sy, zeroPoint: zy }, qmin, qmax };
    const L = { pixels: n, channels: c, xStride: xs, outStride: ys };
    let got: Codes16, want: Codes16;
    if (place) {
      want = x.slice();
      q16RequantizeRef(want, x, n, c, zx, m, zy, qmin, qmax, xs, ys);
      got = x;
      q16Requantize(rt, got, got, q, L);
      inPlace++;
    } else {
      got = make(wy, (n - 1) * ys + c).fill(77);
      want = make(wy, got.length).fill(77);
      q16Requantize(rt, got, x, q, L);
      q16RequantizeRef(want, x, n, c, zx, m, zy, qmin, qmax, xs, ys);
    }
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} u${wx}→u${wy} c=${c} n=${n} strides=${xs}/${ys} place=${place}: at ${d} got ${got[d]} want ${want[d]}`);
  }
  t.equal(bad, 0, `${cases} requantizations bit-exact (${inPlace} in place)`);
});

test("q16 kernels on u8 codes = the 8-bit kernels (q8_add_nhwc / q8_requantize_nhwc) exactly", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(1603);
  let badAdd = 0, badReq = 0;
  const N = 200;
  for (let k = 0; k < N; k++) {
    const c = rng.int(1, 40), n = pixelsOf(rng);
    const as = strideOf(rng, c), bs = strideOf(rng, c), ys = strideOf(rng, c);
    const [qmin, qmax] = rangeOf(rng, 8);
    const zo = rng.int(qmin, qmax), za = rng.int(0, 255), zb = rng.int(0, 255);
    const so = f(Math.exp(rng.uniform(-5, 0))), sa = f(so * ratioOf(rng)), sb = f(so * ratioOf(rng));
    const a = rng.fillUint8(new Uint8Array((n - 1) * as + c)), b = rng.fillUint8(new Uint8Array((n - 1) * bs + c));
    const q = { a: { scale: sa, zeroPoint: za }, b: { scale: sb, zeroPoint: zb }, out: { scale: so, zeroPoint: zo }, qmin, qmax };
    const L = { pixels: n, channels: c, aStride: as, bStride: bs, outStride: ys };
    const y16 = new Uint8Array((n - 1) * ys + c).fill(9), y8 = y16.slice();
    q16Add(rt, y16, a, b, q, L);
    requantAdd(y8, a, b, L, q, rt);
    if (firstDiff(y16, y8) >= 0) badAdd++;
    // requantize = a one-input concat (q8_requantize_nhwc, or its copy when the requantization is the identity)
    const x16 = new Uint8Array((n - 1) * ys + c).fill(9), x8 = x16.slice();
    q16Requantize(rt, x16, a, { x: q.a, out: q.out, qmin, qmax }, { pixels: n, channels: c, xStride: as, outStride: ys });
    concat(x8, [{ data: a, channels: c, stride: as, scale: sa, zeroPoint: za }], n, { scale: so, zeroPoint: zo, qmin, qmax, stride: ys }, rt);
    if (firstDiff(x16, x8) >= 0) badReq++;
  }
  t.equal(badAdd, 0, `${N} u8 adds: q16_add_nhwc = q8_add_nhwc`);
  t.equal(badReq, 0, `${N} u8 requantizations: q16_requantize_nhwc = q8_requantize_nhwc`);
});

test("q16 add: in place on arena offsets (y = a, y = b), chained three-input sum; hand cases", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(1604);
  const ar = rt.arena, mk = ar.mark();
  try {
    // Chain: s = x0 + x1 into a u16 buffer, then s = s + x2 in place (y = a), then x3 + s in place (y = b).
    const n = 123, c = 19, st = 24;
    const xs = [0, 1, 2, 3].map(() => rng.fillUint8(new Uint8Array((n - 1) * st + c)));
    const zs = [100, 3, 250, 128], sc = [0.02, 0.05, 0.011, 0.3].map(f), so = f(0.004), zo = 30000;
    const span = (n - 1) * st + c;
    const p = xs.map((x) => ar.put(x));
    const ps = ar.alloc(2 * span, 64);
    const T = (i: number) => ({ ptr: p[i], stride: st, scale: sc[i], zeroPoint: zs[i], bits: 8 as const });
    const S = { ptr: ps, stride: st, scale: so, zeroPoint: zo, bits: 16 as const };
    q16AddAt(rt, { a: T(0), b: T(1), out: S, pixels: n, channels: c, qmin: 0, qmax: 65535 });
    q16AddAt(rt, { a: S, b: T(2), out: S, pixels: n, channels: c, qmin: 0, qmax: 65535 });
    q16AddAt(rt, { a: T(3), b: S, out: S, pixels: n, channels: c, qmin: 0, qmax: 65535 });
    const got = new Uint16Array(ar.memory.buffer, ps, span).slice();
    const want = new Uint16Array(span);
    const [m0, m1] = addMultipliers(sc[0], sc[1], so), [, m2] = addMultipliers(so, sc[2], so), [m3] = addMultipliers(sc[3], so, so);
    q16AddRef(want, xs[0], xs[1], n, c, zs[0], zs[1], m0, m1, zo, 0, 65535, st, st, st);
    q16AddRef(want, want, xs[2], n, c, zo, zs[2], 1, m2, zo, 0, 65535, st, st, st);
    q16AddRef(want, xs[3], want, n, c, zs[3], zo, m3, 1, zo, 0, 65535, st, st, st);
    let ok = true;
    for (let q = 0; q < n; q++) for (let i = 0; i < c; i++) ok &&= got[q * st + i] === want[q * st + i];
    t.ok(ok, "x0 + x1 → u16, += x2 (y = a), x3 + (y = b): equal to the reference chain");
    // Dense in place, long rows (16-lane blocks + tail), u16 + u16 → u16.
    const len = 16 * 37 + 5;
    const a16 = new Uint16Array(len).map(() => rng.int(0, 65535)), b16 = new Uint16Array(len).map(() => rng.int(0, 65535));
    const pa = ar.put(a16), pb = ar.put(b16);
    const A = { ptr: pa, scale: f(0.001), zeroPoint: 32768, bits: 16 as const };
    q16AddAt(rt, { a: A, b: { ptr: pb, scale: f(0.0007), zeroPoint: 1000, bits: 16 }, out: A, pixels: len, channels: 1, qmin: 0, qmax: 65535 });
    const w16 = new Uint16Array(len);
    const [ma, mb] = addMultipliers(0.001, 0.0007, 0.001);
    q16AddRef(w16, a16, b16, len, 1, 32768, 1000, ma, mb, 32768, 0, 65535);
    t.equal(firstDiff(new Uint16Array(ar.memory.buffer, pa, len), w16), -1, "dense u16 add in place (y = a)");
  } finally {
    ar.release(mk);
  }
  // Hand cases: round half to even on u16 values, zero points, saturation.
  const y = new Uint16Array(4);
  q16Add(rt, y, Uint16Array.of(1000, 1001, 1003, 60000), Uint8Array.of(0, 0, 0, 255),
    { a: { scale: 0.5, zeroPoint: 0 }, b: { scale: 1, zeroPoint: 0 }, out: { scale: 1, zeroPoint: 0 } }, { pixels: 1, channels: 4 });
  t.deepEqual([...y], [500, 500, 502, 30255], "0.5·1000, 0.5·1001 = 500.5 → 500 (even), 501.5 → 502, 30000 + 255");
  const y8 = new Uint8Array(3);
  q16Add(rt, y8, Uint16Array.of(40000, 0, 20000), Uint16Array.of(40000, 0, 20001),
    { a: { scale: 1, zeroPoint: 20000 }, b: { scale: 1, zeroPoint: 20000 }, out: { scale: 64, zeroPoint: 128 } }, { pixels: 1, channels: 3 });
  t.deepEqual([...y8], [128 + 625, 128 - 625, 128].map((v) => Math.min(255, Math.max(0, v))), "u16 + u16 → u8 saturates at 0 / 255; 1/64 rounds to 0");
  const r16 = new Uint16Array(3);
  q16Requantize(rt, r16, Uint8Array.of(255, 0, 129), { x: { scale: 200, zeroPoint: 128 }, out: { scale: 1, zeroPoint: 32768 } }, { pixels: 1, channels: 3 });
  t.deepEqual([...r16], [32768 + 127 * 200, 32768 - 128 * 200, 32768 + 200], "u8 → u16 widening with scale ratio 200");
  q16Requantize(rt, r16, Uint8Array.of(255, 0, 129), { x: { scale: 200, zeroPoint: 128 }, out: { scale: 1, zeroPoint: 32768 }, qmin: 10000, qmax: 50000 }, { pixels: 1, channels: 3 });
  t.deepEqual([...r16], [50000, 10000, 32968], "clamped to the sub-range [10000, 50000]");
  q16Requantize(rt, r16, Uint16Array.of(65535, 0, 32769), { x: { scale: 1, zeroPoint: 32768 }, out: { scale: 2, zeroPoint: 32768 } }, { pixels: 1, channels: 3 });
  t.deepEqual([...r16], [32768 + 16384, 32768 - 16384, 32768], "u16 → u16 halving: 32767/2 = 16383.5 → 16384 (even), 0.5 → 0");
});

test("q16 add: equals exact real arithmetic away from ties (error ≤ 2^-7 as derived)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(1605);
  let mism = 0, checked = 0;
  for (let k = 0; k < 60; k++) {
    const n = 256, wa: CodeBits = k & 1 ? 16 : 8, wb: CodeBits = k & 2 ? 16 : 8;
    const a = make(wa, n).map(() => rng.int(0, maxOf(wa))), b = make(wb, n).map(() => rng.int(0, maxOf(wb)));
    const za = rng.int(0, maxOf(wa)), zb = rng.int(0, maxOf(wb)), zo = rng.int(0, 65535);
    const so = f(rng.uniform(0.001, 0.01)), sa = f(so * 10 ** rng.uniform(-2, 0.5)), sb = f(so * 10 ** rng.uniform(-2, 0.5));
    const y = new Uint16Array(n);
    q16Add(rt, y, a, b, { a: { scale: sa, zeroPoint: za }, b: { scale: sb, zeroPoint: zb }, out: { scale: so, zeroPoint: zo } }, { pixels: n, channels: 1 });
    const [ma, mb] = addMultipliers(sa, sb, so);
    for (let i = 0; i < n; i++) {
      const v = ma * (a[i] - za) + mb * (b[i] - zb); // exact in f64 (24-bit × 17-bit products)
      if (Math.abs(v - Math.floor(v) - 0.5) < 2 ** -6) continue;
      checked++;
      if (y[i] !== Math.min(65535, Math.max(0, Math.round(v) + zo))) mism++;
    }
  }
  t.equal(mism, 0, `${checked} u16 codes equal the exactly computed requantized sum`);
});

test("q16 add / requantize: bad arguments throw LowbitError", async (t) => {
  const rt = await testRuntime();
  const a = new Uint16Array(6), b = new Uint8Array(6), y = new Uint16Array(6);
  const Q = { a: { scale: 1, zeroPoint: 0 }, b: { scale: 1, zeroPoint: 0 }, out: { scale: 1, zeroPoint: 0 } };
  const L = { pixels: 2, channels: 3 };
  throwsCode(t, () => q16Add(rt, y, new Int8Array(6) as unknown as Uint8Array, b, Q, L), "E_ARGUMENT", "Int8Array input");
  throwsCode(t, () => q16Add(rt, new Int16Array(6) as unknown as Uint16Array, a, b, Q, L), "E_ARGUMENT", "Int16Array output");
  throwsCode(t, () => q16Add(rt, y, new Float32Array(6) as unknown as Uint16Array, b, Q, L), "E_ARGUMENT", "Float32Array input");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, a: { scale: 1, zeroPoint: 0, bits: 8 } }, L), "E_ARGUMENT", "Uint16Array declared 8-bit");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, b: { scale: 1, zeroPoint: 0, bits: 16 } }, L), "E_ARGUMENT", "Uint8Array declared 16-bit");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, out: { scale: 1, zeroPoint: 0, bits: 12 as CodeBits } }, L), "E_BITS", "bits 12");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, b: { scale: 1, zeroPoint: 256 } }, L), "E_RANGE", "u8 zero point 256");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, a: { scale: 1, zeroPoint: 65536 } }, L), "E_RANGE", "u16 zero point 65536");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, a: { scale: 1, zeroPoint: -1 } }, L), "E_RANGE", "zero point −1");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, a: { scale: 1, zeroPoint: 1.5 } }, L), "E_RANGE", "non-integer zero point");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, out: { scale: 1, zeroPoint: 70 }, qmin: 0, qmax: 60 }, L), "E_RANGE", "output zero point outside [qmin, qmax]");
  throwsCode(t, () => q16Add(rt, new Uint8Array(6), a, b, { ...Q, qmax: 256 }, L), "E_RANGE", "qmax 256 for a u8 output");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, qmax: 65536 }, L), "E_RANGE", "qmax 65536 for a u16 output");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, qmin: -1 }, L), "E_RANGE", "negative qmin");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, qmin: 9, qmax: 9 }, L), "E_RANGE", "qmin = qmax");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, out: { scale: 1, zeroPoint: 65535 }, relu: true }, L), "E_RANGE", "ReLU leaves an empty range");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, a: { scale: NaN, zeroPoint: 0 } }, L), "E_RANGE", "NaN scale");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, b: { scale: Infinity, zeroPoint: 0 } }, L), "E_RANGE", "infinite scale");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, out: { scale: 0, zeroPoint: 0 } }, L), "E_RANGE", "zero output scale");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, a: { scale: -2, zeroPoint: 0 } }, L), "E_RANGE", "negative scale");
  throwsCode(t, () => q16Add(rt, y, a, b, { ...Q, a: { scale: 1e30, zeroPoint: 0 }, out: { scale: 1e-30, zeroPoint: 0 } }, L), "E_RANGE", "scale ratio overflows f32");
  throwsCode(t, () => q16Add(rt, y, a, b, Q, { pixels: 3, channels: 3 }), "E_SHAPE", "short arrays");
  throwsCode(t, () => q16Add(rt, y, a, b, Q, { ...L, bStride: 2 }), "E_SHAPE", "stride < channels");
  throwsCode(t, () => q16Add(rt, y, a, b, Q, { pixels: 2, channels: 0 }), "E_SHAPE", "zero channels");
  const R = { x: { scale: 1, zeroPoint: 0 }, out: { scale: 1, zeroPoint: 0 } };
  throwsCode(t, () => q16Requantize(rt, y, new Int8Array(6) as unknown as Uint8Array, R, L), "E_ARGUMENT", "requantize: Int8Array input");
  throwsCode(t, () => q16Requantize(rt, y, b, { ...R, out: { scale: 1, zeroPoint: 0, bits: 8 } }, L), "E_ARGUMENT", "requantize: Uint16Array out declared 8-bit");
  throwsCode(t, () => q16Requantize(rt, y, b, { ...R, x: { scale: 1, zeroPoint: 300 } }, L), "E_RANGE", "requantize: u8 zero point 300");
  throwsCode(t, () => q16Requantize(rt, b, a, { ...R, qmax: 300 }, L), "E_RANGE", "requantize: qmax 300 for a u8 output");
  throwsCode(t, () => q16Requantize(rt, y, a, { ...R, x: { scale: Infinity, zeroPoint: 0 } }, L), "E_RANGE", "requantize: infinite scale");
  throwsCode(t, () => q16Requantize(rt, y, a, { ...R, out: { scale: NaN, zeroPoint: 0 } }, L), "E_RANGE", "requantize: NaN output scale");
  throwsCode(t, () => q16Requantize(rt, y, a, R, { ...L, outStride: 1 }), "E_SHAPE", "requantize: stride < channels");
  // Arena-offset forms: widths are explicit; u16 tensors must be 2-byte aligned and inside memory.
  const T = { ptr: 64, scale: 1, zeroPoint: 0, bits: 16 as CodeBits };
  throwsCode(t, () => q16AddAt(rt, { a: { ...T, bits: 4 as CodeBits }, b: T, out: T, pixels: 2, channels: 3, qmin: 0, qmax: 65535 }), "E_BITS", "At: bits 4");
  throwsCode(t, () => q16AddAt(rt, { a: { ...T, ptr: 65 }, b: T, out: T, pixels: 2, channels: 3, qmin: 0, qmax: 65535 }), "E_ARGUMENT", "At: odd u16 offset");
  throwsCode(t, () => q16AddAt(rt, { a: T, b: T, out: { ...T, bits: 8 }, pixels: 2, channels: 3, qmin: 0, qmax: 65535 }), "E_RANGE", "At: u8 output with qmax 65535");
  throwsCode(t, () => q16RequantizeAt(rt, { x: { ...T, ptr: rt.arena.capacity - 4 }, out: T, pixels: 2, channels: 3, qmin: 0, qmax: 65535 }), "E_ARGUMENT", "At: input past the end of memory");
});
