import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import {
  packQlutConv, qlutConv, qlutConvRun, qlutConvScratchBytes, qlutConvBandRows, qlutLutLimit, qlutDecode, qlutDecodeAt,
  type PackedQlutConv,
} from "../../src/kernels/qlut-conv.ts";
import { qlutConvRef, qlutConvAccRef, qlutDecodeRef, type QlutConvRefArgs } from "../../src/kernels/ref/qlut-conv.ts";
import { packQs8Qc8wConv, qs8ConvAcc32 } from "../../src/kernels/qs8-conv.ts";

function throwsCode(t: test.Test, fn: () => unknown, code: string, msg: string): void {
  try {
    fn();
    t.fail(`${msg}: did not throw`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${msg} → ${code}${e instanceof LowbitError ? "" : ` (got ${String(e)})`}`);
  }
}

/** First differing element compared as f32 bit patterns (−0 ≠ +0, NaN payloads count). */
function firstBitDiff(a: Float32Array, b: Float32Array): string {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) return `first diff at ${i}: got ${a[i]}, want ${b[i]}`;
  return a.length === b.length ? "equal" : "length differs";
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): string {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `first diff at ${i}: got ${a[i]}, want ${b[i]}`;
  return a.length === b.length ? "equal" : "length differs";
}

interface Case {
  H: number; W: number; cin: number; cout: number; k: number; K: number;
  inStride: number; outStride: number;
  weights: Int16Array; layer: PackedQlutConv;
  codes: Uint8Array; lut: Int16Array;
  mult: Float32Array; bias: Float32Array | null;
  outMin: number; outMax: number;
}

/** A random layer with its LUT filled up to the overflow bound (qlutLutLimit), often at the extremes. */
function randomCase(r: Rng, o: Partial<Case> = {}): Case {
  const H = o.H ?? r.pick([1, 1, 2, 3, 4, 5, 7, 9]);
  const W = o.W ?? r.pick([1, 2, 3, 4, 5, 6, 8, 11, 13]);
  const cin = o.cin ?? r.pick([1, 2, 3, 5, 7, 8, 12, 16, 17, 33, 67]);
  const cout = o.cout ?? r.pick([1, 3, 4, 5, 8, 9, 12, 16, 17, 24]);
  const k = o.k ?? r.pick([1, 3, 3, 5]);
  const K = o.K ?? r.pick([4, 16, 16, 64, 256, 1, 2, 5, 100]);
  const inStride = o.inStride ?? cin + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const outStride = o.outStride ?? cout + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const n = cout * k * k * cin;
  const weights = new Int16Array(n);
  const wmax = r.pick([32767, 32767, 127, 15, 1]);
  const wKind = r.int(0, 3);
  for (let i = 0; i < n; i++) weights[i] = wKind === 0 ? (r.next() < 0.5 ? -wmax : wmax) : wKind === 1 && r.next() < 0.3 ? 0 : r.int(-wmax, wmax);
  const layer = packQlutConv(weights, { cout, k, cin });
  const L = qlutLutLimit(layer.maxAbsWeightSum);
  const lut = new Int16Array(cin * K);
  const lKind = r.int(0, 3);
  for (let i = 0; i < lut.length; i++) {
    lut[i] = lKind === 0 ? (r.next() < 0.5 ? -L : L) : lKind === 1 ? r.int(-L, L) : r.int(-Math.min(L, 300), Math.min(L, 300));
  }
  const px = H * W;
  const codes = new Uint8Array((px - 1) * inStride + cin);
  const cKind = r.int(0, 3);
  for (let i = 0; i < codes.length; i++) codes[i] = cKind === 0 ? (r.next() < 0.5 ? 0 : K - 1) : r.int(0, K - 1);
  // Codes outside the channel slice (stride padding) may hold anything: the kernel must not read them.
  for (let p = 0; p < px - 1; p++) for (let i = p * inStride + cin; i < (p + 1) * inStride; i++) codes[i] = r.int(0, 255);
  const mult = new Float32Array(cout);
  const center = r.uniform(-34, 0);
  for (let i = 0; i < cout; i++) mult[i] = (r.next() < 0.2 ? -1 : 1) * 2 ** (center + r.uniform(-2, 2));
  const bias = r.next() < 0.2 ? null : Float32Array.from({ length: cout }, () => r.next() < 0.1 ? -0 : r.normal() * 2 ** r.int(-10, 4));
  const cl = r.int(0, 3);
  const [outMin, outMax] = cl === 0 ? [-Infinity, Infinity] : cl === 1 ? [0, Infinity] : cl === 2 ? [-0.5, 0.5] : [r.uniform(-1, 0), r.uniform(0, 1)];
  return { H, W, cin, cout, k, K, inStride, outStride, weights, layer, codes, lut, mult, bias, outMin, outMax };
}

function refArgs(c: Case): QlutConvRefArgs {
  return { H: c.H, W: c.W, Cin: c.cin, Cout: c.cout, k: c.k, codes: c.codes, inStride: c.inStride, lut: c.lut, K: c.K, weights: c.weights };
}

function describe(c: Case): string {
  return `${c.H}×${c.W} ${c.cin}→${c.cout} k${c.k} K${c.K} strides ${c.inStride}/${c.outStride} max Σ|w| ${c.layer.maxAbsWeightSum} clamp [${c.outMin}, ${c.outMax}]`;
}

test("qlut conv: packing is the qs8 layout up to its w16 section (zero accumulator start); Σ|w| and the LUT limit", async (t) => {
  const r = new Rng(5);
  for (const [cout, k, cin] of [[5, 3, 7], [8, 1, 1], [17, 5, 3], [3, 3, 16]]) {
    const w8 = r.fillInt8(new Int8Array(cout * k * k * cin), -128, 127);
    const q = packQs8Qc8wConv(w8, { cout, k, cin });
    const p = packQlutConv(Int16Array.from(w8), { cout, k, cin });
    const off = q.coutPadded * 8;
    t.ok(p.bytes.subarray(0, off).every((b) => b === 0), `${cout}×${k}×${k}×${cin}: 8·coutP zero header bytes`);
    t.deepEqual(Array.from(p.bytes.subarray(off)), Array.from(q.bytes.subarray(off, p.bytes.length)), `${cout}×${k}×${k}×${cin}: same bytes as the qs8 w16 section`);
    t.deepEqual(Array.from(p.absWeightSum), Array.from(q.absWeightSum), "same Σ|w|");
    t.equal(p.maxAbsWeightSum, Math.max(...q.absWeightSum), "max Σ|w|");
  }
  for (const s of [1, 2, 3, 7, 576, 65535, 65536, 65537, 4608 * 127, 2 ** 31 - 1, 2 ** 31, 2 ** 32]) {
    const L = qlutLutLimit(s);
    const ok = L * s < 2 ** 31 && (L === 32767 || (L + 1) * s >= 2 ** 31);
    t.ok(ok && Number.isInteger(L) && L >= 0, `qlutLutLimit(${s}) = ${L}: largest L ≤ 32767 with L·${s} < 2^31`);
  }
  t.equal(qlutLutLimit(0), 32767, "no weights: full int16");
  t.equal(qlutLutLimit(576 * 127), 29356, "3×3×64 taps of |n| = 127: 29356 (29357·73152 ≥ 2^31)");
  t.equal(qlutLutLimit(516 * 127), 32767, "516 taps of |n| = 127 still take the full int16 LUT (spec §7: overflow beyond 516)");
  t.equal(qlutLutLimit(517 * 127), 32706, "517 taps do not");
});

test("qlut conv: bit-exact vs the reference (random shapes, K, strides, LUT at the overflow bound)", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(20250105);
  let bad = 0;
  const N = 400;
  for (let i = 0; i < N; i++) {
    const c = randomCase(r);
    const len = (c.H * c.W - 1) * c.outStride + c.cout;
    const got = new Float32Array(len).fill(77), want = new Float32Array(len).fill(77);
    qlutConv(rt, got, c.layer, { H: c.H, W: c.W, K: c.K, codes: c.codes, lut: c.lut, mult: c.mult, bias: c.bias,
      inStride: c.inStride, outStride: c.outStride, outMin: c.outMin, outMax: c.outMax });
    qlutConvRef(want, c.outStride, refArgs(c), c.mult, c.bias, c.outMin, c.outMax);
    const d = firstBitDiff(got, want);
    if (d !== "equal" && bad++ < 5) t.fail(`${describe(c)}: ${d}`);
  }
  t.equal(bad, 0, `${N} random cases bit-exact (f32 bit patterns, untouched stride gaps)`);
});

test("qlut conv: every band split gives the same result (engine call, arena offsets)", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(77);
  let bad = 0, n = 0;
  for (let i = 0; i < 60; i++) {
    const c = randomCase(r, { H: r.int(1, 12), W: r.int(1, 9), cin: r.pick([1, 3, 5, 8]), cout: r.pick([1, 8, 9]) });
    const want = qlutConvRef(new Float32Array((c.H * c.W - 1) * c.outStride + c.cout), c.outStride, refArgs(c), c.mult, c.bias, c.outMin, c.outMax);
    for (const band of [1, 2, 3, c.H, r.int(1, c.H)]) {
      const a = rt.arena, m = a.mark();
      const mult = new Float32Array(c.layer.coutPadded); mult.set(c.mult);
      const bias = new Float32Array(c.layer.coutPadded); if (c.bias) bias.set(c.bias);
      const out = a.alloc(want.byteLength);
      qlutConvRun(rt, { layer: c.layer, packed: a.put(c.layer.bytes), H: c.H, W: c.W, codes: a.put(c.codes), inStride: c.inStride,
        lut: a.put(c.lut), K: c.K, mult: a.put(mult), bias: a.put(bias), output: out, outStride: c.outStride,
        outMin: c.outMin, outMax: c.outMax, scratch: a.alloc(qlutConvScratchBytes(c.W, c.cin, c.k, band)), bandRows: band });
      const got = a.f32.slice(out >> 2, (out >> 2) + want.length);
      a.release(m);
      // Stride gaps of the output were never written (alloc is uninitialised): compare the channel slices.
      const slice = (x: Float32Array) => Float32Array.from({ length: c.H * c.W * c.cout }, (_, j) => x[Math.floor(j / c.cout) * c.outStride + (j % c.cout)]);
      const d = firstBitDiff(slice(got), slice(want));
      n++;
      if (d !== "equal" && bad++ < 5) t.fail(`${describe(c)} band ${band}: ${d}`);
    }
  }
  t.equal(bad, 0, `${n} (case, band) pairs bit-exact`);
});

test("qlut conv: an affine LUT reproduces the int8 kernel's int32 accumulators", async (t) => {
  // lut_c[code] = code − z is the qu8 path's (x − z): acc must equal qs8ConvAcc32 exactly (|acc| < 2^24, so f32(acc)
  // with mult 1 and bias 0 is the integer itself).
  const rt = await testRuntime();
  const r = new Rng(3);
  let bad = 0;
  for (let i = 0; i < 40; i++) {
    const H = r.int(1, 6), W = r.int(1, 7), cin = r.pick([1, 3, 8, 13]), cout = r.pick([1, 5, 8, 12]), k = r.pick([1, 3, 5]);
    const z = r.int(0, 255);
    const w8 = r.fillInt8(new Int8Array(cout * k * k * cin), -20, 20);
    const codes = r.fillUint8(new Uint8Array(H * W * cin));
    const q = packQs8Qc8wConv(w8, { cout, k, cin });
    const want = qs8ConvAcc32(rt, new Int32Array(H * W * cout), q, { H, W, input: codes, act: { bits: 8, signed: false, zeroPoint: z } });
    const lut = new Int16Array(cin * 256);
    for (let c = 0; c < cin; c++) for (let j = 0; j < 256; j++) lut[c * 256 + j] = j - z;
    const got = qlutConv(rt, new Float32Array(H * W * cout), packQlutConv(Int16Array.from(w8), { cout, k, cin }),
      { H, W, K: 256, codes, lut, mult: new Float32Array(cout).fill(1) });
    const d = firstDiff(got, want);
    if (d !== "equal" && bad++ < 3) t.fail(`${H}×${W} ${cin}→${cout} k${k} z${z}: ${d}`);
  }
  t.equal(bad, 0, "40 cases: LUT path = qs8 acc32 path");
});

test("qlut conv: accumulators at the int32 edge stay exact", async (t) => {
  const rt = await testRuntime();
  // One output channel of Σ|w| = 9·cin·32767 and every tap at ±L: acc = ±L·Σ|w|, the largest the contract allows.
  for (const [cin, sign] of [[1, 1], [2, -1], [7, 1], [7, -1]] as const) {
    const k = 3, cout = 9, H = 3, W = 3, K = 2;
    const w = new Int16Array(cout * k * k * cin).fill(32767 * sign);
    const layer = packQlutConv(w, { cout, k, cin });
    const L = qlutLutLimit(layer.maxAbsWeightSum);
    const lut = new Int16Array(cin * K);
    for (let c = 0; c < cin; c++) { lut[c * K] = L; lut[c * K + 1] = -L; }
    const codes = new Uint8Array(H * W * cin); // all code 0 → +L
    const args = { H, W, Cin: cin, Cout: cout, k, codes, inStride: cin, lut, K, weights: w };
    const acc = qlutConvAccRef(args);
    const centre = acc[4 * cout];
    t.equal(centre, sign * L * layer.maxAbsWeightSum, `cin ${cin}: centre accumulator ${centre} = ±L·Σ|w|`);
    t.ok(Math.abs(centre) > 2 ** 31 - layer.maxAbsWeightSum - 1, `cin ${cin}: within one LUT step of 2^31`);
    const mult = new Float32Array(cout).fill(1);
    const got = qlutConv(rt, new Float32Array(H * W * cout), layer, { H, W, K, codes, lut, mult });
    t.equal(firstBitDiff(got, qlutConvRef(new Float32Array(H * W * cout), cout, args, mult, null)), "equal", `cin ${cin}: bit-exact at the edge`);
    // One more LUT unit crosses the contract.
    const lut2 = lut.slice(); lut2[0] = L + 1;
    if (L < 32767) throwsCode(t, () => qlutConv(rt, new Float32Array(H * W * cout), layer, { H, W, K, codes, lut: lut2, mult }), "E_RANGE", `cin ${cin}: |lut| = L + 1`);
  }
});

test("qlut decode: bit-exact vs the reference (random, strided)", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(12);
  let bad = 0;
  const N = 200;
  for (let i = 0; i < N; i++) {
    const pixels = r.pick([1, 2, 3, 7, 16, 33]), c = r.pick([1, 2, 3, 5, 16, 17, 64, 67]), K = r.pick([1, 4, 16, 64, 256, 13]);
    const is = c + (r.next() < 0.3 ? r.int(1, 4) : 0), os = c + (r.next() < 0.3 ? r.int(1, 4) : 0);
    const codes = new Uint8Array((pixels - 1) * is + c);
    for (let p = 0; p < pixels; p++) for (let j = 0; j < c; j++) codes[p * is + j] = r.int(0, K - 1);
    const lut = Int16Array.from({ length: c * K }, () => r.int(-32768, 32767));
    const got = new Int16Array((pixels - 1) * os + c).fill(-5), want = got.slice();
    qlutDecode(got, codes, lut, { pixels, channels: c, K, inStride: is, outStride: os }, rt);
    qlutDecodeRef(want, codes, pixels, c, is, lut, K, os);
    const d = firstDiff(got, want);
    if (d !== "equal" && bad++ < 5) t.fail(`${pixels}×${c} K${K} strides ${is}/${os}: ${d}`);
  }
  t.equal(bad, 0, `${N} random decodes bit-exact`);
});

test("qlut conv / decode: bad arguments throw before any WASM call", async (t) => {
  const rt = await testRuntime();
  const w = new Int16Array(4 * 9 * 3).fill(1);
  const layer = packQlutConv(w, { cout: 4, k: 3, cin: 3 });
  const codes = new Uint8Array(2 * 2 * 3), lut = new Int16Array(3 * 16), mult = new Float32Array(4).fill(1);
  const ok = { H: 2, W: 2, K: 16, codes, lut, mult };
  const out = () => new Float32Array(16);
  t.equal(qlutConv(rt, out(), layer, ok).length, 16, "valid call runs");
  throwsCode(t, () => packQlutConv(new Int16Array(4 * 9 * 3).fill(-32768), { cout: 4, k: 3, cin: 3 }), "E_RANGE", "weight −32768");
  throwsCode(t, () => packQlutConv(new Int16Array(4 * 4 * 3), { cout: 4, k: 2, cin: 3 }), "E_ARGUMENT", "even k");
  throwsCode(t, () => packQlutConv(new Int16Array(5), { cout: 4, k: 3, cin: 3 }), "E_SHAPE", "weights length");
  throwsCode(t, () => packQlutConv(new Int8Array(4 * 9 * 3) as unknown as Int16Array, { cout: 4, k: 3, cin: 3 }), "E_ARGUMENT", "Int8Array weights");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, codes: Uint8Array.from(codes, (_, i) => (i === 5 ? 16 : 0)) }), "E_RANGE", "code ≥ K");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, lut: new Int16Array(3 * 16 - 1) }), "E_SHAPE", "lut length");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, K: 257, lut: new Int16Array(3 * 257) }), "E_BITS", "K = 257");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, K: 0 }), "E_BITS", "K = 0");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, mult: new Float32Array(3) }), "E_SHAPE", "mult length");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, mult: Float32Array.of(1, NaN, 1, 1) }), "E_RANGE", "NaN multiplier");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, bias: Float32Array.of(0, 0, Infinity, 0) }), "E_RANGE", "infinite bias");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, outMin: 1, outMax: 0 }), "E_RANGE", "outMin > outMax");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, outMin: NaN }), "E_RANGE", "NaN clamp");
  throwsCode(t, () => qlutConv(rt, new Float32Array(15), layer, ok), "E_SHAPE", "short output");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, codes: new Uint8Array(11) }), "E_SHAPE", "short codes");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, inStride: 2 }), "E_SHAPE", "inStride < cin");
  throwsCode(t, () => qlutConv(rt, out(), layer, { ...ok, H: 0 }), "E_SHAPE", "H = 0");
  const big = packQlutConv(new Int16Array(4 * 9 * 3).fill(32767), { cout: 4, k: 3, cin: 3 });
  t.equal(qlutConv(rt, out(), big, { ...ok, lut: new Int16Array(48).fill(qlutLutLimit(big.maxAbsWeightSum)) }).length, 16, "LUT at the bound runs");
  throwsCode(t, () => qlutConv(rt, out(), big, { ...ok, lut: new Int16Array(48).fill(-qlutLutLimit(big.maxAbsWeightSum) - 1) }), "E_RANGE", "LUT over the overflow bound");
  // Engine call: pointers outside memory, misaligned, missing scratch.
  const a = rt.arena, m = a.mark();
  try {
    const call = { layer, packed: a.put(layer.bytes), H: 2, W: 2, codes: a.put(codes), inStride: 3, lut: a.put(lut), K: 16,
      mult: a.put(new Float32Array(8).fill(1)), bias: a.put(new Float32Array(8)), output: a.alloc(64), outStride: 4,
      scratch: a.alloc(qlutConvScratchBytes(2, 3, 3)) };
    qlutConvRun(rt, call);
    t.pass("engine call runs");
    throwsCode(t, () => qlutConvRun(rt, { ...call, scratch: a.capacity - 8 }), "E_ARGUMENT", "scratch past the end of memory");
    throwsCode(t, () => qlutConvRun(rt, { ...call, lut: call.lut + 1 }), "E_ARGUMENT", "misaligned lut");
    throwsCode(t, () => qlutConvRun(rt, { ...call, bandRows: 0 }), "E_ARGUMENT", "bandRows 0");
    throwsCode(t, () => qlutConvRun(rt, { ...call, outStride: 3 }), "E_SHAPE", "outStride < cout");
    throwsCode(t, () => qlutConvRun(rt, { ...call, layer: { ...layer, bytes: null } as unknown as PackedQlutConv }), "E_ARGUMENT", "not a packed layer");
    throwsCode(t, () => qlutDecodeAt(rt, { codes: call.codes, pixels: 4, channels: 3, lut: call.lut, K: 16, out: a.capacity - 4 }), "E_ARGUMENT", "decode output past memory");
  } finally {
    a.release(m);
  }
  throwsCode(t, () => qlutDecode(new Int16Array(12), Uint8Array.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 4), new Int16Array(3 * 4), { pixels: 4, channels: 3, K: 4 }, rt), "E_RANGE", "decode: code ≥ K");
  throwsCode(t, () => qlutDecode(new Int16Array(11), new Uint8Array(12), new Int16Array(12), { pixels: 4, channels: 3, K: 4 }, rt), "E_SHAPE", "decode: short output");
  throwsCode(t, () => qlutDecode(new Int16Array(12), new Uint8Array(12), new Int16Array(11), { pixels: 4, channels: 3, K: 4 }, rt), "E_SHAPE", "decode: lut length");
  t.equal(qlutConvBandRows(128, 64, 3) >= 1, true, "band rows ≥ 1");
});
