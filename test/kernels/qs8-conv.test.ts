import test from "tape";
import { testRuntime, testBackend } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import {
  packQs8Qc8wConv, packQs8Qc4wConv, qs8Conv, qs8ConvAcc32, qs8ConvPath, qs8ConvRun, qs8ConvScratchBytes,
  type PackedQs8Conv, type QActivation, type QOutput,
} from "../../src/kernels/qs8-conv.ts";
import { qconvRef, qconvAcc32Ref, requantizeRef, unpackInt4Ref, type QConvRefArgs } from "../../src/kernels/ref/qs8-conv.ts";
import { packInt4, quantizeBias, requantMultipliers, roundHalfEven, unpackInt4 } from "../../src/kernels/requant.ts";

interface Case {
  H: number; W: number; cin: number; cout: number; k: number;
  wf: "qc8w" | "qc4w";
  act: QActivation;
  inStride: number; outStride: number;
  weights: Int8Array; bias: Int32Array;
  input: Uint8Array | Int8Array;
  layer: PackedQs8Conv;
}

function codeRange(bits: number, signed: boolean): [number, number] {
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

/** A random layer + input; weights and bias as large as the int32 bound allows (so overflow margins are tested). */
function randomCase(r: Rng, o: Partial<Case> & { bits?: number; signed?: boolean } = {}): Case {
  const H = o.H ?? r.pick([1, 1, 2, 3, 4, 5, 7, 9]);
  const W = o.W ?? r.pick([1, 2, 3, 4, 5, 6, 8, 11, 13]);
  const cin = o.cin ?? r.pick([1, 2, 3, 4, 5, 7, 8, 12, 16, 17, 32, 33]);
  const cout = o.cout ?? r.pick([1, 3, 4, 5, 8, 9, 12, 16, 17, 24]);
  const k = o.k ?? r.pick([1, 3, 3, 5]);
  const wf = o.wf ?? (r.next() < 0.5 ? "qc8w" : "qc4w");
  const bits = o.bits ?? (wf === "qc8w" ? r.pick([8, 8, 7, 6, 4]) : r.int(2, 8));
  const signed = o.signed ?? r.next() < 0.4;
  const [lo, hi] = codeRange(bits, signed);
  const zpKind = r.int(0, 3);
  const zeroPoint = zpKind === 0 ? lo : zpKind === 1 ? hi : zpKind === 2 ? (signed ? 0 : 2 ** (bits - 1)) : r.int(lo, hi);
  const act = { bits, signed, zeroPoint };
  const inStride = o.inStride ?? cin + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const outStride = o.outStride ?? cout + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const n = cout * k * k * cin;
  const weights = new Int8Array(n);
  const [wlo, whi] = wf === "qc8w" ? [-128, 127] : [-8, 7];
  const wKind = r.int(0, 3);
  for (let i = 0; i < n; i++) weights[i] = wKind === 0 ? (r.next() < 0.5 ? wlo : whi) : r.int(wlo, whi);
  const bias = new Int32Array(cout);
  const maxDx = Math.max(zeroPoint - lo, hi - zeroPoint);
  for (let c = 0; c < cout; c++) {
    let abs = 0;
    for (let i = c * k * k * cin; i < (c + 1) * k * k * cin; i++) abs += Math.abs(weights[i]);
    const room = Math.min(2 ** 31 - 1 - maxDx * abs, 1e9);
    bias[c] = r.next() < 0.2 ? (r.next() < 0.5 ? -room : room) : r.int(-Math.min(room, 5000), Math.min(room, 5000));
  }
  const px = H * W;
  const input = signed ? new Int8Array((px - 1) * inStride + cin) : new Uint8Array((px - 1) * inStride + cin);
  const iKind = r.int(0, 4);
  for (let i = 0; i < input.length; i++) input[i] = iKind === 0 ? (r.next() < 0.5 ? lo : hi) : r.int(lo, hi);
  const args = { cout, k, cin, bias };
  const layer = wf === "qc8w"
    ? packQs8Qc8wConv(weights, args)
    : packQs8Qc4wConv(packInt4(new Uint8Array((n + 1) >> 1), weights), args);
  return { H, W, cin, cout, k, wf, act, inStride, outStride, weights, bias, input, layer };
}

function refArgs(c: Case): QConvRefArgs {
  return { H: c.H, W: c.W, Cin: c.cin, Cout: c.cout, k: c.k, input: c.input, inStride: c.inStride,
    inZp: c.act.zeroPoint, weights: c.weights, bias: c.bias };
}

function randomOutput(r: Rng): QOutput {
  const signed = r.next() < 0.5;
  const [lo, hi] = codeRange(8, signed);
  const zeroPoint = r.pick([lo, hi, signed ? 0 : 128, r.int(lo, hi)]);
  const kind = r.int(0, 3);
  if (kind === 0) return { signed, zeroPoint, qmin: zeroPoint, qmax: hi }; // ReLU
  if (kind === 1) {
    const a = r.int(lo, hi), b = r.int(lo, hi);
    return { signed, zeroPoint, qmin: Math.min(a, b), qmax: Math.max(a, b) };
  }
  return { signed, zeroPoint, qmin: lo, qmax: hi };
}

/** Multipliers spanning "everything saturates" to "everything rounds to the zero point". */
function randomMultipliers(r: Rng, cout: number): Float32Array {
  const m = new Float32Array(cout);
  const center = r.uniform(-14, 2);
  for (let o = 0; o < cout; o++) m[o] = 2 ** (center + r.uniform(-2, 2));
  return m;
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): string {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `first diff at ${i}: got ${a[i]}, want ${b[i]}`;
  return a.length === b.length ? "equal" : "length differs";
}

function describe(c: Case): string {
  return `${c.wf} ${c.H}×${c.W} ${c.cin}→${c.cout} k${c.k} act ${c.act.bits}b ${c.act.signed ? "s" : "u"} zp ${c.act.zeroPoint} strides ${c.inStride}/${c.outStride}`;
}

test("qs8 conv: requantizeRef equals an exact BigInt round-half-even of f32(f32(acc)·M)", async (t) => {
  const r = new Rng(7);
  // Exact value of an f32 x as (numerator BigInt, 2^shift): then round half to even by integer arithmetic.
  const f32buf = new Float32Array(1), u32 = new Uint32Array(f32buf.buffer);
  function bigRound(x: number): number {
    f32buf[0] = x;
    const bits = u32[0];
    const sign = bits >>> 31 ? -1n : 1n;
    const e = (bits >>> 23) & 255;
    const mant = BigInt(e === 0 ? (bits & 0x7fffff) * 2 : (bits & 0x7fffff) | 0x800000);
    const shift = BigInt(150 - Math.max(e, 1)); // value = mant · 2^(e−150)
    if (shift <= 0n) return Number(sign * (mant << -shift));
    const q = mant >> shift, rem = mant - (q << shift), half = 1n << (shift - 1n);
    const up = rem > half || (rem === half && (q & 1n) === 1n);
    return Number(sign * (up ? q + 1n : q));
  }
  let n = 0, bad = 0;
  for (let i = 0; i < 20000; i++) {
    const acc = i < 200 ? (i - 100) * 3 : r.int(-(2 ** 31), 2 ** 31 - 1) >> r.int(0, 30);
    const m = i < 200 ? 0.5 / 3 * (i % 2 ? 1 : 3) : Math.fround(2 ** r.uniform(-20, 1));
    const signed = r.next() < 0.5;
    const [lo, hi] = codeRange(8, signed);
    const zp = r.int(lo, hi);
    const qmin = r.int(lo, hi), qmax = r.int(qmin, hi);
    const v = Math.fround(Math.fround(acc) * m); // f32 product (double product of two f32 is exact)
    const want = Math.min(Math.max(bigRound(v) + zp, qmin), qmax);
    const got = requantizeRef(acc, m, zp, qmin, qmax);
    n++;
    if (got !== want) bad++;
  }
  t.equal(bad, 0, `${n} requantizations agree with the BigInt rounding`);
  t.equal(roundHalfEven(2.5), 2, "half to even (2.5 → 2)");
  t.equal(roundHalfEven(-3.5), -4, "half to even (−3.5 → −4)");
  t.equal(requantizeRef(5, 0.5, 0, -128, 127), 2, "2.5 → 2");
  t.equal(requantizeRef(7, 0.5, 0, -128, 127), 4, "3.5 → 4");
  t.equal(requantizeRef(-5, 0.5, 10, -128, 127), 8, "−2.5 → −2, + zp");
});

test("qs8 conv: int4 packing round-trips; qc4w packs exactly like qc8w of the same values", async (t) => {
  const r = new Rng(11);
  const vals = new Int8Array(37);
  r.fillInt8(vals, -8, 7);
  const nib = packInt4(new Uint8Array(19), vals);
  t.deepEqual(Array.from(unpackInt4(new Int8Array(37), nib)), Array.from(vals), "unpackInt4 ∘ packInt4 = id");
  t.deepEqual(Array.from(unpackInt4Ref(nib, 37)), Array.from(vals), "reference unpack agrees");
  t.equal(packInt4(new Uint8Array(1), [-8, 7])[0], 0x78, "low nibble first: [−8, 7] → 0x78");
  t.equal(nib[18] >> 4, 0, "odd count: last high nibble is 0");
  const w = new Int8Array(5 * 3 * 3 * 7);
  r.fillInt8(w, -8, 7);
  const bias = Int32Array.from({ length: 5 }, () => r.int(-1000, 1000));
  const a = packQs8Qc8wConv(w, { cout: 5, k: 3, cin: 7, bias });
  const b = packQs8Qc4wConv(packInt4(new Uint8Array((w.length + 1) >> 1), w), { cout: 5, k: 3, cin: 7, bias });
  t.deepEqual(Array.from(b.bytes), Array.from(a.bytes), "same kernel bytes");
  t.equal(b.weightFormat, "qc4w");
});

test("qs8 conv: requantized output is bit-exact vs the reference (random shapes, formats, strides)", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(20240601);
  const paths = { i16: 0, "i16-wino": 0, "i16-wino2d": 0, "relaxed-i7": 0, "relaxed-i7-acc16": 0 };
  let bad = 0;
  const N = 400;
  for (let i = 0; i < N; i++) {
    const c = randomCase(r);
    const q = randomOutput(r);
    const mult = randomMultipliers(r, c.cout);
    const len = (c.H * c.W - 1) * c.outStride + c.cout;
    const mk = () => (q.signed ? new Int8Array(len) : new Uint8Array(len));
    const got = mk(), want = mk();
    got.fill(77); want.fill(77); // channels between slices must stay untouched
    qs8Conv(rt, got, c.layer, { H: c.H, W: c.W, input: c.input, inStride: c.inStride, act: c.act, outStride: c.outStride }, mult, q);
    qconvRef(want, c.outStride, refArgs(c), mult, q.zeroPoint, q.qmin, q.qmax);
    paths[qs8ConvPath(rt, c.layer, c.act)]++;
    const d = firstDiff(got, want);
    if (d !== "equal") {
      if (bad++ < 5) t.fail(`${describe(c)} out ${q.signed ? "s8" : "u8"} zp ${q.zeroPoint} [${q.qmin}, ${q.qmax}]: ${d}`);
    }
  }
  t.equal(bad, 0, `${N} random cases bit-exact (paths: ${JSON.stringify(paths)})`);
  if (testBackend() === "relaxed") {
    t.ok(paths["relaxed-i7"] > 30, `relaxed build: the i32 i8×i7 dot path ran (${paths["relaxed-i7"]} cases)`);
    t.ok(paths["relaxed-i7-acc16"] > 100, `relaxed build: the i16-accumulating i8×i7 path ran (${paths["relaxed-i7-acc16"]} cases)`);
  } else t.equal(paths.i16 + paths["i16-wino"] + paths["i16-wino2d"], N, "simd build: only the i16 paths");
  // (F(2,3) along x now runs only where F(2×2,3×3)'s range condition fails; the path-option runs below and
  // test/kernels/qs8-conv-winograd2d.test.ts cover it on every shape.)
  t.ok(paths["i16-wino2d"] > 20, `the Winograd F(2×2,3×3) path ran (${paths["i16-wino2d"]} cases)`);
});

test("qs8 conv: int32-output variant is bit-exact vs the reference", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(99);
  let bad = 0;
  const N = 200;
  for (let i = 0; i < N; i++) {
    const c = randomCase(r);
    const len = (c.H * c.W - 1) * c.outStride + c.cout;
    const got = new Int32Array(len).fill(-7), want = new Int32Array(len).fill(-7);
    qs8ConvAcc32(rt, got, c.layer, { H: c.H, W: c.W, input: c.input, inStride: c.inStride, act: c.act, outStride: c.outStride });
    qconvAcc32Ref(want, c.outStride, refArgs(c));
    const d = firstDiff(got, want);
    if (d !== "equal" && bad++ < 5) t.fail(`${describe(c)}: ${d}`);
  }
  t.equal(bad, 0, `${N} random int32-output cases bit-exact`);
});

test("qs8 conv: every activation bit-width 2..8 with int4 weights, both signednesses, both outputs", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(4242);
  let bad = 0, n = 0;
  for (let bits = 2; bits <= 8; bits++) {
    for (const signed of [false, true]) {
      for (let rep = 0; rep < 6; rep++) {
        const c = randomCase(r, { wf: "qc4w", bits, signed });
        const q = randomOutput(r);
        const mult = randomMultipliers(r, c.cout);
        const len = (c.H * c.W - 1) * c.outStride + c.cout;
        const got = q.signed ? new Int8Array(len) : new Uint8Array(len);
        const want = q.signed ? new Int8Array(len) : new Uint8Array(len);
        qs8Conv(rt, got, c.layer, { H: c.H, W: c.W, input: c.input, inStride: c.inStride, act: c.act, outStride: c.outStride }, mult, q);
        qconvRef(want, c.outStride, refArgs(c), mult, q.zeroPoint, q.qmin, q.qmax);
        const g32 = new Int32Array(len), w32 = new Int32Array(len);
        qs8ConvAcc32(rt, g32, c.layer, { H: c.H, W: c.W, input: c.input, inStride: c.inStride, act: c.act, outStride: c.outStride });
        qconvAcc32Ref(w32, c.outStride, refArgs(c));
        n++;
        const d = firstDiff(got, want), d32 = firstDiff(g32, w32);
        if ((d !== "equal" || d32 !== "equal") && bad++ < 5) t.fail(`${describe(c)}: ${d} / acc32 ${d32}`);
      }
    }
  }
  t.equal(bad, 0, `${n} cases over bits 2..8 bit-exact`);
});

test("qs8 conv: real layer shapes (several bands, 1×1/3×3/5×5, 64/128/640 channels, tails)", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(5);
  const shapes: Array<[number, number, number, number, number]> = [
    // H, W, cin, cout, k
    [50, 128, 64, 64, 3], // 3 bands of the prepared input
    [9, 100, 200, 13, 5], // 2 bands, cout tail of 5
    [6, 33, 640, 64, 1],
    [12, 17, 3, 64, 3],
    [10, 20, 32, 12, 3],
    [8, 24, 12, 3, 3],
    [7, 9, 48, 192, 3],
    [3, 129, 5, 5, 5],
    [1, 40, 64, 64, 3], // a 1×N image
    [40, 1, 64, 64, 5], // an N×1 image
  ];
  for (const [H, W, cin, cout, k] of shapes) {
    for (const [wf, bits, signed] of [["qc8w", 8, false], ["qc8w", 8, true], ["qc4w", 7, false], ["qc4w", 4, true]] as const) {
      const c = randomCase(r, { H, W, cin, cout, k, wf, bits, signed, inStride: cin, outStride: cout + 3 });
      const q = randomOutput(r);
      const mult = randomMultipliers(r, cout);
      const len = (H * W - 1) * c.outStride + cout;
      const got = q.signed ? new Int8Array(len) : new Uint8Array(len);
      const want = q.signed ? new Int8Array(len) : new Uint8Array(len);
      qs8Conv(rt, got, c.layer, { H, W, input: c.input, act: c.act, outStride: c.outStride }, mult, q);
      qconvRef(want, c.outStride, refArgs(c), mult, q.zeroPoint, q.qmin, q.qmax);
      t.equal(firstDiff(got, want), "equal", `${describe(c)} (${qs8ConvPath(rt, c.layer, c.act)})`);
    }
  }
});

test("qs8 conv: worst-case partial sums (all weights ±max, all codes max) stay exact on every path", async (t) => {
  const rt = await testRuntime();
  for (const wf of ["qc8w", "qc4w"] as const) {
    for (const bits of [2, 3, 4, 5, 6, 7, 8]) {
      for (const wv of wf === "qc8w" ? [-128, 127] : [-8, 7]) {
        for (const signed of [false, true]) {
          const [lo, hi] = codeRange(bits, signed);
          const cin = 37, cout = 9, k = 3, H = 3, W = 6;
          const weights = new Int8Array(cout * k * k * cin).fill(wv);
          const args = { cout, k, cin, bias: new Int32Array(cout) };
          const layer = wf === "qc8w" ? packQs8Qc8wConv(weights, args) : packQs8Qc4wConv(packInt4(new Uint8Array((weights.length + 1) >> 1), weights), args);
          for (const zeroPoint of [lo, hi]) {
            const act = { bits, signed, zeroPoint };
            const input = signed ? new Int8Array(H * W * cin).fill(zeroPoint === lo ? hi : lo) : new Uint8Array(H * W * cin).fill(zeroPoint === lo ? hi : lo);
            const c: Case = { H, W, cin, cout, k, wf, act, inStride: cin, outStride: cout, weights, bias: args.bias, input, layer };
            const got = qs8ConvAcc32(rt, new Int32Array(H * W * cout), layer, { H, W, input, act });
            const want = qconvAcc32Ref(new Int32Array(H * W * cout), cout, refArgs(c));
            t.equal(firstDiff(got, want), "equal", `${describe(c)} w=${wv} [${qs8ConvPath(rt, layer, act)}]`);
          }
        }
      }
    }
  }
});

test("qs8 conv: Winograd paths (3×3, 5×5; 2-D and 1-D) at every small width, extreme values, and the int32 fallbacks", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(2024);
  let bad = 0, n = 0, wino = 0;
  for (const k of [3, 5]) {
    for (let W = 1; W <= 19; W++) {
      for (const [bits, paths] of [[8, {}], [8, { winograd2d: false }], [4, {}], [4, { winograd2d: false }]] as const) {
        const c = randomCase(r, { k, W, H: r.int(1, 4), cin: r.pick([8, 9, 16, 21]), wf: bits === 8 ? "qc8w" : "qc4w", bits });
        const q = randomOutput(r);
        const mult = randomMultipliers(r, c.cout);
        const len = (c.H * c.W - 1) * c.outStride + c.cout;
        const got = q.signed ? new Int8Array(len) : new Uint8Array(len);
        const want = q.signed ? new Int8Array(len) : new Uint8Array(len);
        got.fill(-3); want.fill(-3);
        const a = { H: c.H, W: c.W, input: c.input, inStride: c.inStride, act: c.act, outStride: c.outStride, paths };
        qs8Conv(rt, got, c.layer, a, mult, q);
        qconvRef(want, c.outStride, refArgs(c), mult, q.zeroPoint, q.qmin, q.qmax);
        const g32 = qs8ConvAcc32(rt, new Int32Array(len).fill(5), c.layer, a);
        const w32 = qconvAcc32Ref(new Int32Array(len).fill(5), c.outStride, refArgs(c));
        n++;
        if (qs8ConvPath(rt, c.layer, c.act, paths).startsWith("i16-wino")) wino++;
        const d = firstDiff(got, want), d32 = firstDiff(g32, w32);
        if ((d !== "equal" || d32 !== "equal") && bad++ < 5) t.fail(`${describe(c)}: ${d} / acc32 ${d32}`);
      }
    }
  }
  t.equal(bad, 0, `${n} cases W = 1..19 bit-exact (requantized and int32)`);
  if (testBackend() !== "relaxed") t.ok(wino > 0.6 * n, `simd build: ${wino} of them on the Winograd path`);
  // 5×5, 1400 channels, all weights −128, codes 255 at zp 0: the bound 255·128·35000 fits int32 but its double
  // (the Winograd accumulator 2·y) does not — the direct path must take it, still exact.
  const cin = 1400, H = 3, W = 4, cout = 2, k = 5;
  const weights = new Int8Array(cout * k * k * cin).fill(-128);
  const layer = packQs8Qc8wConv(weights, { cout, k, cin });
  const act = { bits: 8, signed: false, zeroPoint: 0 };
  const input = new Uint8Array(H * W * cin).fill(255);
  t.equal(qs8ConvPath(rt, layer, act), "i16", "2·bound ≥ 2^31 → direct i16 path");
  const got = qs8ConvAcc32(rt, new Int32Array(H * W * cout), layer, { H, W, input, act });
  const want = qconvAcc32Ref(new Int32Array(H * W * cout), cout, { H, W, Cin: cin, Cout: cout, k, input, inStride: cin, inZp: 0, weights, bias: null });
  t.equal(firstDiff(got, want), "equal", "…and exact there (accumulators near −2^31)");
  const mid = packQs8Qc8wConv(weights.subarray(0, cout * k * k * 1000), { cout, k, cin: 1000 });
  t.equal(qs8ConvPath(rt, mid, act), "i16-wino", "1000 channels: 2·bound < 2^31 ≤ 4·bound → Winograd F(2,3)");
  const narrow = packQs8Qc8wConv(weights.subarray(0, cout * k * k * 600), { cout, k, cin: 600 });
  t.equal(qs8ConvPath(rt, narrow, act), "i16-wino2d", "600 channels: 4·bound < 2^31 → Winograd F(2×2,3×3)");
});

test("qs8 conv: saturation at both ends and the ReLU clamp", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(31);
  const c = randomCase(r, { H: 5, W: 6, cin: 9, cout: 10, k: 3, wf: "qc8w", bits: 8, signed: false });
  const len = 5 * 6 * 10;
  const big = new Float32Array(10).fill(1000);
  const u = qs8Conv(rt, new Uint8Array(len), c.layer, { H: 5, W: 6, input: c.input, act: c.act }, big,
    { signed: false, zeroPoint: 128, qmin: 0, qmax: 255 });
  const acc = qconvAcc32Ref(new Int32Array(len), 10, refArgs(c));
  let ok = true;
  for (let i = 0; i < len; i++) ok &&= u[i] === (acc[i] > 0 ? 255 : acc[i] < 0 ? 0 : 128);
  t.ok(ok, "huge multiplier saturates to 0 / 255 by sign of the accumulator");
  const relu = qs8Conv(rt, new Int8Array(len), c.layer, { H: 5, W: 6, input: c.input, act: c.act }, big,
    { signed: true, zeroPoint: -20, qmin: -20, qmax: 100 });
  ok = true;
  for (let i = 0; i < len; i++) ok &&= relu[i] === (acc[i] > 0 ? 100 : -20);
  t.ok(ok, "ReLU (qmin = zp) with a clamp at 100");
});

test("qs8 conv: low-level call on arena offsets equals the typed-array wrapper", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(8);
  const c = randomCase(r, { H: 7, W: 9, cin: 20, cout: 11, k: 3, wf: "qc8w", bits: 8, signed: false, inStride: 24, outStride: 16 });
  const mult = randomMultipliers(r, 11);
  const q: QOutput = { signed: false, zeroPoint: 3, qmin: 0, qmax: 255 };
  const want = qs8Conv(rt, new Uint8Array(7 * 9 * 16), c.layer, { H: 7, W: 9, input: c.input, inStride: 24, act: c.act, outStride: 16 }, mult, q);
  const ar = rt.arena, m = ar.mark();
  const packed = ar.put(c.layer.bytes);
  const mp = ar.put(Float32Array.from({ length: c.layer.coutPadded }, (_, i) => (i < 11 ? mult[i] : 0)));
  const input = ar.put(c.input);
  const output = ar.alloc(7 * 9 * 16);
  ar.u8.fill(0, output, output + 7 * 9 * 16);
  const scratch = ar.alloc(qs8ConvScratchBytes(7, 9, 20, 3));
  qs8ConvRun(rt, { layer: c.layer, packed, H: 7, W: 9, input, inStride: 24, act: c.act, output, outStride: 16, scratch, multipliers: mp, out: q });
  const got = ar.u8.slice(output, output + 7 * 9 * 16);
  ar.release(m);
  t.equal(firstDiff(got, want), "equal", "same bytes");
});

test("qs8 conv: bad arguments throw LowbitError codes before any WASM call", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(3);
  const c = randomCase(r, { H: 4, W: 4, cin: 8, cout: 8, k: 3, wf: "qc8w", bits: 8, signed: false, inStride: 8, outStride: 8 });
  const mult = new Float32Array(8).fill(0.01);
  const q: QOutput = { signed: false, zeroPoint: 0, qmin: 0, qmax: 255 };
  const a = { H: 4, W: 4, input: c.input, act: c.act };
  const code = (f: () => unknown, want: string, what: string) => {
    try {
      f();
      t.fail(`${what}: did not throw`);
    } catch (e) {
      t.ok(e instanceof LowbitError && e.code === want, `${what} → ${want} (${(e as Error).message})`);
    }
  };
  const w = new Int8Array(8 * 9 * 8);
  code(() => packQs8Qc8wConv(w, { cout: 8, k: 2, cin: 8 }), "E_ARGUMENT", "even k");
  code(() => packQs8Qc8wConv(w, { cout: 8, k: 0, cin: 8 }), "E_ARGUMENT", "k = 0");
  code(() => packQs8Qc8wConv(w, { cout: 8, k: 3, cin: 7 }), "E_SHAPE", "weights length");
  code(() => packQs8Qc8wConv(w, { cout: 8, k: 3, cin: 8, bias: new Int32Array(7) }), "E_SHAPE", "bias length");
  code(() => packQs8Qc4wConv(new Uint8Array(10), { cout: 8, k: 3, cin: 8 }), "E_SHAPE", "int4 byte count");
  code(() => qs8Conv(rt, new Uint8Array(127), c.layer, a, mult, q), "E_SHAPE", "output too short");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, { ...a, input: c.input.subarray(1) }, mult, q), "E_SHAPE", "input too short");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, { ...a, inStride: 7 }, mult, q), "E_SHAPE", "inStride < cin");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, { ...a, H: 0 }, mult, q), "E_SHAPE", "H = 0");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, { ...a, act: { bits: 9, signed: false, zeroPoint: 0 } }, mult, q), "E_BITS", "9-bit activations");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, { ...a, act: { bits: 1, signed: false, zeroPoint: 0 } }, mult, q), "E_BITS", "1-bit activations");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, { ...a, act: { bits: 8, signed: false, zeroPoint: 256 } }, mult, q), "E_RANGE", "input zp 256");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, { ...a, act: { bits: 4, signed: false, zeroPoint: 16 } }, mult, q), "E_RANGE", "4-bit zp 16");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, { ...a, act: { bits: 4, signed: false, zeroPoint: 3 } }, mult, q), "E_RANGE", "codes above 4 bits in the input");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, { ...a, act: { bits: 8, signed: true, zeroPoint: 0 } }, mult, q), "E_ARGUMENT", "signed format with a Uint8Array");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, a, mult, { ...q, zeroPoint: -1 }), "E_RANGE", "output zp −1 for uint8");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, a, mult, { ...q, qmin: 10, qmax: 5 }), "E_RANGE", "qmin > qmax");
  code(() => qs8Conv(rt, new Int8Array(128), c.layer, a, mult, q), "E_ARGUMENT", "Int8Array for unsigned output");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, a, new Float32Array(8).fill(NaN), q), "E_RANGE", "NaN multiplier");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, a, new Float32Array(8), q), "E_RANGE", "zero multiplier");
  code(() => qs8Conv(rt, new Uint8Array(128), c.layer, a, new Float32Array(7).fill(1), q), "E_SHAPE", "multiplier count");
  code(() => requantMultipliers(new Float32Array(2), 0.1, [0.1, -1], 0.5), "E_RANGE", "negative weight scale");
  code(() => requantMultipliers(new Float32Array(1), Infinity, [0.1], 0.5), "E_RANGE", "infinite input scale");
  code(() => requantMultipliers(new Float32Array(1), 1e-30, [1e-30], 1e30), "E_RANGE", "multiplier underflows f32");
  code(() => quantizeBias(new Int32Array(1), [1], 1e-6, [1e-6]), "E_RANGE", "bias beyond int32");
  code(() => packInt4(new Uint8Array(1), [8, 0]), "E_RANGE", "int4 value 8");
  // Overflow proof: 640 channels × 11×11 taps of −128 with 8-bit codes at zp 0: 255·128·77440 > 2^31.
  const wide = packQs8Qc8wConv(new Int8Array(1 * 121 * 640).fill(-128), { cout: 1, k: 11, cin: 640 });
  code(() => qs8ConvAcc32(rt, new Int32Array(4), wide, { H: 2, W: 2, input: new Uint8Array(4 * 640), act: { bits: 8, signed: false, zeroPoint: 0 } }),
    "E_RANGE", "int32 accumulator overflow");
  // …which the same layer at 4-bit activations does not (15·128·77440 < 2^31).
  t.doesNotThrow(() => qs8ConvAcc32(rt, new Int32Array(4), wide, { H: 2, W: 2, input: new Uint8Array(4 * 640), act: { bits: 4, signed: false, zeroPoint: 0 } }),
    "the same layer at 4-bit activations is provably safe");
  const biasBig = packQs8Qc8wConv(new Int8Array(9).fill(1), { cout: 1, k: 3, cin: 1, bias: Int32Array.of(2 ** 31 - 100) });
  code(() => qs8ConvAcc32(rt, new Int32Array(1), biasBig, { H: 1, W: 1, input: new Uint8Array(1), act: { bits: 8, signed: false, zeroPoint: 0 } }),
    "E_RANGE", "bias pushes the bound past 2^31");
});

test("qs8 conv: requant helpers", async (t) => {
  const m = requantMultipliers(new Float32Array(2), 0.02, [0.003, 0.5], 0.1);
  t.equal(m[0], Math.fround(0.02 * 0.003 / 0.1));
  t.equal(m[1], Math.fround(0.02 * 0.5 / 0.1));
  const b = quantizeBias(new Int32Array(3), [0.5, -0.25, 1e-3], 0.5, [1, 0.1, 0.002]);
  t.deepEqual(Array.from(b), [1, -5, 1], "round(b / (s_x·s_w))");
  t.equal(quantizeBias(new Int32Array(1), [1.25], 0.5, [1])[0], 2, "2.5 → 2 (half to even)");
});
