import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import type { Runtime } from "../../src/runtime/runtime.ts";
import {
  checkNmSparsity, conv2dF32Nm, nmDensity, nmPairTaps, nmPatternName, nmTaps, packF32NmConv, packQs8NmConv, qs8NmConv, qs8NmConvAcc32,
  qs8NmConvRun, qs8NmConvScratchBytes, f32NmConvRun, f32NmConvScratchBytes, type NmExports, type NmPattern,
} from "../../src/kernels/nm-conv.ts";
import { conv2dF32 } from "../../src/kernels/f32-conv.ts";
import { packQs8Qc8wConv, qs8Conv, qs8ConvAcc32, type QActivation, type QOutput } from "../../src/kernels/qs8-conv.ts";
import {
  f32NmConvAbsSum, f32NmConvRef, qs8NmConvAccRef, qs8NmConvRef, unpackF32NmRef, unpackQs8NmRef,
} from "../../src/kernels/ref/nm-conv.ts";

const PATTERNS: NmPattern[] = [
  { n: 1, m: 32 }, { n: 2, m: 32 }, { n: 4, m: 32 }, { n: 8, m: 32 }, { n: 16, m: 32 }, { n: 32, m: 32 },
  { n: 2, m: 4 }, { n: 4, m: 8 }, { n: 1, m: 1 }, { n: 3, m: 5 }, { n: 1, m: 4 },
];

/** Pair-structured patterns ("N:Mp"). */
const PAIR_PATTERNS: NmPattern[] = [
  { n: 2, m: 32 }, { n: 4, m: 32 }, { n: 8, m: 32 }, { n: 16, m: 32 }, { n: 32, m: 32 }, { n: 2, m: 4 }, { n: 4, m: 8 },
  { n: 2, m: 2 }, { n: 2, m: 6 }, { n: 6, m: 8 }, { n: 8, m: 16 },
].map((p) => ({ ...p, pairs: true }));

/**
 * Weights (index via `at(o, kh, kw, c)` → flat index) with ≤ n nonzeros per group: each group gets a random
 * count in [0, n] (usually exactly n) at random positions; values from `draw` (never 0). Pairs: ≤ n/2 random
 * aligned channel pairs per group, each channel of a chosen pair nonzero with probability 0.85.
 */
function fillNm(r: Rng, out: { [i: number]: number }, k: number, cin: number, cout: number, p: NmPattern,
  at: (o: number, kh: number, kw: number, c: number) => number, draw: () => number): void {
  const u = p.pairs ? 2 : 1;
  for (let o = 0; o < cout; o++) {
    for (let kh = 0; kh < k; kh++) {
      for (let kw = 0; kw < k; kw++) {
        for (let g = 0; g < cin; g += p.m) {
          const len = Math.min(p.m, cin - g), units = Math.ceil(len / u);
          const perm = Array.from({ length: units }, (_, i) => i);
          const cnt = Math.min(units, r.next() < 0.8 ? p.n / u : r.int(0, p.n / u));
          for (let i = 0; i < cnt; i++) {
            const j = i + Math.floor(r.next() * (units - i));
            [perm[i], perm[j]] = [perm[j], perm[i]];
            for (let c = perm[i] * u; c < Math.min(len, perm[i] * u + u); c++) {
              if (u === 1 || r.next() < 0.85) out[at(o, kh, kw, g + c)] = draw();
            }
          }
        }
      }
    }
  }
}

const hwioIdx = (k: number, cin: number, cout: number) => (o: number, kh: number, kw: number, c: number) => ((kh * k + kw) * cin + c) * cout + o;
const ohwiIdx = (k: number, cin: number) => (o: number, kh: number, kw: number, c: number) => ((o * k + kh) * k + kw) * cin + c;

interface Shape { H: number; W: number; cin: number; cout: number; k: number; p: NmPattern; inStride: number; outStride: number }

function randomShape(r: Rng, big = false, patterns = PATTERNS): Shape {
  const p = r.pick(patterns);
  const cin = big ? r.pick([33, 48, 64, 70]) : r.pick([1, 2, 3, 4, 5, 7, 8, 12, 16, 17, 31, 32, 33, 40, 48, 64, 65]);
  const cout = big ? r.pick([5, 16, 33]) : r.pick([1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17]);
  const k = r.pick([1, 3, 3, 5]);
  const H = big ? r.int(20, 45) : r.pick([1, 1, 2, 3, 4, 5, 7, 9]);
  const W = big ? r.int(23, 90) : r.pick([1, 2, 3, 4, 5, 8, 11, 23, 24, 25, 26, 31, 33, 49]);
  const inStride = cin + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const outStride = cout + (r.next() < 0.3 ? r.int(1, 5) : 0);
  return { H, W, cin, cout, k, p, inStride, outStride };
}

function describe(s: Shape): string {
  return `${s.H}×${s.W} ${s.cin}→${s.cout} k${s.k} ${nmPatternName(s.p)} strides ${s.inStride}/${s.outStride}`;
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): string {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `first diff at ${i}: got ${a[i]}, want ${b[i]}`;
  return a.length === b.length ? "equal" : "length differs";
}

function throwsCode(t: test.Test, fn: () => unknown, code: string, what: string): void {
  try {
    fn();
    t.fail(`${what}: did not throw`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${what} → ${code}${e instanceof LowbitError ? "" : ` (got ${String(e)})`}`);
  }
}

test("nm conv: checkNmSparsity, nmTaps, and the pattern/weight validation", async (t) => {
  // 1 output channel, 3×3, cin = 40 → groups [0, 32) and [32, 40) (the short last group).
  const k = 3, cin = 40, cout = 2;
  const w = new Float32Array(k * k * cin * cout);
  const I = hwioIdx(k, cin, cout);
  for (let c = 0; c < 8; c++) w[I(1, 2, 1, c * 4)] = 1; // 8 nonzeros in group 0 at tap (2, 1)
  w[I(0, 0, 0, 35)] = -2; // one in group 1
  t.ok(checkNmSparsity(w, k, cin, cout, 8, 32), "8 per group of 32 → 8:32");
  t.notOk(checkNmSparsity(w, k, cin, cout, 7, 32), "8 in one group → not 7:32");
  t.ok(checkNmSparsity(w, k, cin, cout, 2, 8), "every group of 8 has ≤ 2 (channels 0, 4 | 8, 12 | …)");
  t.notOk(checkNmSparsity(w, k, cin, cout, 1, 8), "2 in a group of 8 → not 1:8");
  w[I(1, 2, 1, 1)] = -0; // −0 is a zero
  t.ok(checkNmSparsity(w, k, cin, cout, 8, 32), "−0 counts as zero");
  w[I(1, 2, 1, 1)] = NaN;
  t.notOk(checkNmSparsity(w, k, cin, cout, 8, 32), "NaN counts as a nonzero");
  t.equal(nmTaps(3, 64, 8, 32), 9 * 16, "64 channels, 8:32 → 16 entries per tap");
  t.equal(nmTaps(3, 48, 8, 32), 9 * 16, "48 channels: groups 32 + 16 → 8 + 8");
  t.equal(nmTaps(3, 40, 16, 32), 9 * 24, "40 channels, 16:32: groups 32 + 8 → 16 + 8 (short group keeps all)");
  t.equal(nmTaps(1, 3, 8, 32), 3, "3 channels: one group of 3");
  t.equal(nmDensity(3, 64, 8, 32), 0.25);

  throwsCode(t, () => checkNmSparsity(w, k, cin, cout, 33, 32), "E_ARGUMENT", "n > m");
  throwsCode(t, () => checkNmSparsity(w, k, cin, cout, 0, 32), "E_ARGUMENT", "n < 1");
  throwsCode(t, () => checkNmSparsity(w, k, cin, cout, 1.5, 32), "E_ARGUMENT", "non-integer n");
  throwsCode(t, () => checkNmSparsity(w, k, cin, cout, 2, 257), "E_ARGUMENT", "m > 256 (one byte per index)");
  throwsCode(t, () => checkNmSparsity(w.subarray(1), k, cin, cout, 2, 32), "E_SHAPE", "weights of the wrong length");
  throwsCode(t, () => checkNmSparsity(w, 2, cin, cout, 2, 32), "E_ARGUMENT", "even k");

  const dense = new Float32Array(k * k * cin * cout).fill(0.5);
  throwsCode(t, () => packF32NmConv(dense, k, cin, cout, { n: 8, m: 32 }), "E_ARGUMENT", "f32 pack: dense weights are not 8:32");
  throwsCode(t, () => packF32NmConv(new Float32Array(k * k * cin * cout).fill(NaN), k, cin, cout, { n: 32, m: 32 }), "E_RANGE", "f32 pack: NaN weights");
  throwsCode(t, () => packF32NmConv(new Float32Array(9 * cin * cout), k, cin, cout, { n: 9, m: 8 }), "E_ARGUMENT", "f32 pack: n > m");
  throwsCode(t, () => packF32NmConv(new Float32Array(9 * cin * cout), k, cin, cout, { n: 1, m: 8 }, new Float32Array(3)), "E_SHAPE", "f32 pack: bias length");
  const q = new Int8Array(cout * k * k * cin).fill(1);
  throwsCode(t, () => packQs8NmConv(q, { cout, k, cin, n: 4, m: 8 }), "E_ARGUMENT", "int8 pack: dense codes are not 4:8");
  throwsCode(t, () => packQs8NmConv(q, { cout, k, cin, n: 0, m: 8 }), "E_ARGUMENT", "int8 pack: n < 1");
  throwsCode(t, () => packQs8NmConv(q.subarray(2), { cout, k, cin, n: 8, m: 8 }), "E_SHAPE", "int8 pack: wrong length");
  throwsCode(t, () => packQs8NmConv(new Uint8Array(q.length) as unknown as Int8Array, { cout, k, cin, n: 8, m: 8 }), "E_ARGUMENT", "int8 pack: not an Int8Array");
});

test("nm conv: pair-structured N:Mp — checks, entry counts, packing and its errors", async (t) => {
  const k = 3, cin = 37, cout = 2; // groups [0, 32) and [32, 37): the short last group ends on an odd channel
  const w = new Float32Array(k * k * cin * cout);
  const I = hwioIdx(k, cin, cout);
  for (const c of [0, 1, 6, 7, 10, 20, 21, 30]) w[I(1, 0, 2, c)] = 1; // pairs 0, 3, 5, 10, 15: 8 nonzeros in 5 pairs
  w[I(0, 2, 2, 36)] = -3; // the last channel: pair (36, phantom 37)
  t.ok(checkNmSparsity(w, k, cin, cout, 8, 32), "8 nonzeros per group → 8:32");
  t.notOk(checkNmSparsity(w, k, cin, cout, 8, 32, true), "but they lie in 5 pairs → not 8:32p");
  t.ok(checkNmSparsity(w, k, cin, cout, 10, 32, true), "5 pairs → 10:32p");
  t.notOk(checkNmSparsity(w, k, cin, cout, 2, 8, true), "channels 0,1 and 6,7 are 2 pairs in group [0, 8) → not 2:8p");
  t.ok(checkNmSparsity(w, k, cin, cout, 4, 8, true), "≤ 2 pairs per group of 8 → 4:8p");
  t.ok(checkNmSparsity(w, k, cin, cout, 2, 4, true), "one pair per group of 4 → 2:4p");
  t.equal(nmPairTaps(3, 64, 8, 32), 9 * 8, "64 channels, 8:32p → 8 pairs per tap");
  t.equal(nmPairTaps(3, 37, 8, 32), 9 * (4 + 3), "37 channels: groups 32 + 5 → 4 + ⌈5/2⌉ = 3 pairs");
  t.equal(nmPairTaps(1, 3, 8, 32), 2, "3 channels: pairs (0,1) and (2, phantom)");
  t.equal(nmDensity(3, 64, 8, 32, true), 0.25);
  t.equal(nmDensity(1, 3, 8, 32, true), 4 / 3, "the phantom channel's MACs count");
  t.equal(nmPatternName({ n: 8, m: 32, pairs: true }), "8:32p");
  throwsCode(t, () => checkNmSparsity(w, k, cin, cout, 7, 32, true), "E_ARGUMENT", "odd n with pairs");
  throwsCode(t, () => checkNmSparsity(w, k, cin, cout, 2, 5, true), "E_ARGUMENT", "odd m with pairs");
  const q = new Int8Array(cout * k * k * cin);
  const J = ohwiIdx(k, cin);
  for (const c of [0, 2, 4, 6]) q[J(1, 1, 1, c)] = 5; // 4 nonzeros in 4 pairs of group 0
  packQs8NmConv(q, { cout, k, cin, n: 4, m: 32 });
  t.pass("4 nonzeros are 4:32");
  try {
    packQs8NmConv(q, { cout, k, cin, n: 4, m: 32, pairs: true });
    t.fail("4 nonzeros in 4 pairs packed as 4:32p");
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === "E_ARGUMENT" && /4:32p.*output channel 1, tap \(1, 1\), input channels 0\.\.31 hold 4 nonzero channel pairs/.test(e.message),
      `a violation names the group (${e instanceof Error ? e.message : e})`);
  }
  throwsCode(t, () => packQs8NmConv(q, { cout, k, cin, n: 3, m: 32, pairs: true }), "E_ARGUMENT", "int8 pack: odd n with pairs");
  const L = packQs8NmConv(q, { cout, k, cin, n: 8, m: 32, pairs: true });
  t.ok(L.pairs && L.taps === nmPairTaps(k, cin, 8, 32) && L.bytes.length === 16 + cout * L.taps * 3, "pair layer: taps and bytes");
  t.equal(firstDiff(unpackQs8NmRef(L).ohwi, q), "equal", "the pair format round-trips");
});

test("nm conv: packing round-trips through the storage format (f32 and int8)", async (t) => {
  const r = new Rng(5);
  let bad = 0;
  const N = 150;
  for (let i = 0; i < N; i++) {
    const s = randomShape(r);
    const w = new Float32Array(s.k * s.k * s.cin * s.cout);
    fillNm(r, w, s.k, s.cin, s.cout, s.p, hwioIdx(s.k, s.cin, s.cout), () => r.uniform(0.01, 1) * (r.next() < 0.5 ? -1 : 1));
    const bias = r.fillF32(new Float32Array(s.cout));
    const L = packF32NmConv(w, s.k, s.cin, s.cout, s.p, bias);
    const u = unpackF32NmRef(L);
    const q = new Int8Array(s.cout * s.k * s.k * s.cin);
    fillNm(r, q, s.k, s.cin, s.cout, s.p, ohwiIdx(s.k, s.cin), () => r.pick([-128, 127, r.int(1, 127), -r.int(1, 128)]));
    const bq = Int32Array.from({ length: s.cout }, () => r.int(-1e6, 1e6));
    const Lq = packQs8NmConv(q, { cout: s.cout, k: s.k, cin: s.cin, bias: bq, ...s.p });
    const uq = unpackQs8NmRef(Lq);
    let abs = 0;
    for (let o = 0; o < s.cout; o++) for (let j = 0; j < s.k * s.k * s.cin; j++) abs += Math.abs(q[o * s.k * s.k * s.cin + j]);
    const absOk = Math.abs(Lq.absWeightSum.reduce((a, b) => a + b, 0) - abs) === 0;
    const ok = firstDiff(u.hwio, w) === "equal" && firstDiff(u.bias, bias) === "equal" && firstDiff(uq.ohwi, q) === "equal" &&
      firstDiff(uq.bias, bq) === "equal" && L.taps === nmTaps(s.k, s.cin, s.p.n, s.p.m) && absOk;
    if (!ok && bad++ < 5) t.fail(`${describe(s)}: round trip differs`);
  }
  t.equal(bad, 0, `${N} layers: unpack(pack(w)) = w, bias kept, Σ|w| recorded`);
});

test("nm conv: f32 kernel = reference over the stored entries (tolerance) and = dense kernel on the masked weights", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(31337);
  let bad = 0, worst = 0, worstDense = 0;
  const N = 260;
  for (let i = 0; i < N; i++) {
    const s = randomShape(r, i % 8 === 7);
    const w = new Float32Array(s.k * s.k * s.cin * s.cout);
    fillNm(r, w, s.k, s.cin, s.cout, s.p, hwioIdx(s.k, s.cin, s.cout), () => r.uniform(-1, 1) || 0.5);
    const bias = r.next() < 0.8 ? r.fillF32(new Float32Array(s.cout)) : null;
    const L = packF32NmConv(w, s.k, s.cin, s.cout, s.p, bias);
    const px = s.H * s.W;
    const input = r.fillF32(new Float32Array((px - 1) * s.inStride + s.cin), -2, 2);
    const relu = r.next() < 0.3;
    const len = (px - 1) * s.outStride + s.cout;
    const got = new Float32Array(len).fill(77), want = new Float32Array(len).fill(77), dense = new Float32Array(len).fill(77);
    conv2dF32Nm(got, input, L, { h: s.H, w: s.W, inStride: s.inStride, outStride: s.outStride, relu, runtime: rt });
    f32NmConvRef(want, s.outStride, L, input, { H: s.H, W: s.W, inStride: s.inStride }, relu ? 0 : -Infinity);
    conv2dF32(dense, input, { h: s.H, w: s.W, cin: s.cin, cout: s.cout, k: s.k, weights: w, bias, relu, inStride: s.inStride, outStride: s.outStride, runtime: rt });
    const mag = f32NmConvAbsSum(L, input, { H: s.H, W: s.W, inStride: s.inStride });
    // Tolerance: an f32 sum of T products errs by ≤ T·2^−24·Σ|terms| (plus FMA/ordering differences): use
    // 4·2^−24·(T + 1)·Σ|w·x| + 1e-30.
    const T = L.taps;
    let caseBad = false, why = "";
    for (let p = 0; p < px; p++) {
      for (let c = 0; c < s.outStride; c++) {
        const j = p * s.outStride + c;
        if (j >= len) break;
        if (c >= s.cout) {
          if (got[j] !== 77 && !caseBad) { caseBad = true; why = `pixel ${p} channel ${c} beyond cout overwritten (${got[j]})`; }
          continue;
        }
        const tol = 4 * 2 ** -24 * (T + 1) * mag[p * s.cout + c] + 1e-30;
        const e = Math.abs(got[j] - want[j]), ed = Math.abs(got[j] - dense[j]);
        worst = Math.max(worst, e / tol);
        worstDense = Math.max(worstDense, ed / (2 * tol));
        if ((!(e <= tol) || !(ed <= 2 * tol)) && !caseBad) { caseBad = true; why = `pixel ${p} channel ${c}: got ${got[j]}, ref ${want[j]}, dense ${dense[j]}, tol ${tol}`; }
      }
    }
    if (caseBad && bad++ < 5) t.fail(`${describe(s)}: ${why}`);
  }
  t.equal(bad, 0, `${N} random layers within 4·2^−24·(T+1)·Σ|w·x| of the reference (worst ${worst.toFixed(3)} of the bound; vs dense ${worstDense.toFixed(3)})`);
});

interface QCase { s: Shape; q: Int8Array; bias: Int32Array; act: QActivation; input: Uint8Array | Int8Array }

function randomQCase(r: Rng, big = false, patterns = PATTERNS): QCase {
  const s = randomShape(r, big, patterns);
  const q = new Int8Array(s.cout * s.k * s.k * s.cin);
  const extreme = r.next() < 0.25;
  fillNm(r, q, s.k, s.cin, s.cout, s.p, ohwiIdx(s.k, s.cin), () => (extreme ? r.pick([-128, 127]) : (r.int(1, 127) * (r.next() < 0.5 ? -1 : 1))));
  const signed = r.next() < 0.4;
  const bits = r.pick([8, 8, 8, 7, 4]);
  const lo = signed ? -(2 ** (bits - 1)) : 0, hi = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  const zeroPoint = r.pick([lo, hi, signed ? 0 : 2 ** (bits - 1), r.int(lo, hi)]);
  const act = { bits, signed, zeroPoint };
  const maxDx = Math.max(zeroPoint - lo, hi - zeroPoint);
  const bias = new Int32Array(s.cout);
  for (let o = 0; o < s.cout; o++) {
    let abs = 0;
    for (let j = o * s.k * s.k * s.cin; j < (o + 1) * s.k * s.k * s.cin; j++) abs += Math.abs(q[j]);
    const room = Math.min(2 ** 31 - 1 - maxDx * abs, 1e9);
    bias[o] = r.next() < 0.2 ? (r.next() < 0.5 ? -room : room) : r.int(-Math.min(room, 5000), Math.min(room, 5000));
  }
  const px = s.H * s.W;
  const input = signed ? new Int8Array((px - 1) * s.inStride + s.cin) : new Uint8Array((px - 1) * s.inStride + s.cin);
  const allExtreme = r.next() < 0.2;
  for (let j = 0; j < input.length; j++) input[j] = allExtreme ? (r.next() < 0.5 ? lo : hi) : r.int(lo, hi);
  return { s, q, bias, act, input };
}

function randomOutput(r: Rng): QOutput {
  const signed = r.next() < 0.5;
  const lo = signed ? -128 : 0, hi = signed ? 127 : 255;
  const zeroPoint = r.pick([lo, hi, signed ? 0 : 128, r.int(lo, hi)]);
  const kind = r.int(0, 2);
  if (kind === 0) return { signed, zeroPoint, qmin: zeroPoint, qmax: hi };
  if (kind === 1) {
    const a = r.int(lo, hi), b = r.int(lo, hi);
    return { signed, zeroPoint, qmin: Math.min(a, b), qmax: Math.max(a, b) };
  }
  return { signed, zeroPoint, qmin: lo, qmax: hi };
}

/** `N` random int8 layers of `patterns`: the N:M kernel bit-exact vs the reference and vs the dense int8 kernel. */
async function int8RandomCases(t: test.Test, seed: number, N: number, patterns: NmPattern[]): Promise<void> {
  const rt = await testRuntime();
  const r = new Rng(seed);
  let bad = 0, badAcc = 0;
  for (let i = 0; i < N; i++) {
    const c = randomQCase(r, i % 10 === 9, patterns);
    const { s } = c;
    const L = packQs8NmConv(c.q, { cout: s.cout, k: s.k, cin: s.cin, bias: c.bias, ...s.p });
    const Ld = packQs8Qc8wConv(c.q, { cout: s.cout, k: s.k, cin: s.cin, bias: c.bias });
    const out = randomOutput(r);
    const mult = new Float32Array(s.cout);
    const center = r.uniform(-14, 2);
    for (let o = 0; o < s.cout; o++) mult[o] = 2 ** (center + r.uniform(-2, 2));
    const px = s.H * s.W, len = (px - 1) * s.outStride + s.cout;
    const mk = () => (out.signed ? new Int8Array(len) : new Uint8Array(len)).fill(77);
    const got = mk(), want = mk(), dense = mk();
    const a = { H: s.H, W: s.W, input: c.input, inStride: s.inStride, act: c.act, outStride: s.outStride };
    qs8NmConv(rt, got, L, a, mult, out);
    qs8NmConvRef(want, s.outStride, L, c.input, c.act.zeroPoint, { H: s.H, W: s.W, inStride: s.inStride }, mult, out.zeroPoint, out.qmin, out.qmax);
    qs8Conv(rt, dense, Ld, a, mult, out);
    const d1 = firstDiff(got, want), d2 = firstDiff(got, dense);
    if ((d1 !== "equal" || d2 !== "equal") && bad++ < 5) t.fail(`${describe(s)} act ${JSON.stringify(c.act)}: vs ref ${d1}; vs dense ${d2}`);
    if (i % 2 === 0) {
      const g32 = new Int32Array(len).fill(-7), d32 = new Int32Array(len).fill(-7);
      qs8NmConvAcc32(rt, g32, L, a);
      qs8ConvAcc32(rt, d32, Ld, a);
      const ref = qs8NmConvAccRef(L, c.input, c.act.zeroPoint, { H: s.H, W: s.W, inStride: s.inStride });
      let ok = firstDiff(g32, d32) === "equal";
      for (let p = 0; p < px && ok; p++) for (let o = 0; o < s.cout; o++) if (g32[p * s.outStride + o] !== ref[p * s.cout + o]) ok = false;
      if (!ok && badAcc++ < 5) t.fail(`${describe(s)}: int32 accumulators differ`);
    }
  }
  t.equal(bad, 0, `${N} random layers: requantized codes identical to the reference and to the dense kernel`);
  t.equal(badAcc, 0, `${N / 2} random layers: int32 accumulators identical to the reference and to the dense acc32 kernel`);
}

test("nm conv: int8 kernel is bit-exact vs the reference and vs the dense int8 kernel on the masked weights", async (t) => {
  await int8RandomCases(t, 20261123, 400, PATTERNS);
});

test("nm conv: int8 pair kernel (N:Mp) is bit-exact vs the reference and vs the dense int8 kernel (odd cin, phantom channel)", async (t) => {
  await int8RandomCases(t, 20261124, 400, PAIR_PATTERNS);
});

interface RawGeometry { k: number; cin: number; cout: number; H: number; W: number; inStride: number; outStride: number; bandRows: number }

/**
 * One int8 layer of pattern `pat` through the raw exports (the pair kernel for pat.pairs) with a forced band
 * height: int32 accumulators and requantized codes vs the reference. "" when bit-exact, else the first difference.
 */
function rawInt8Case(rt: Runtime, r: Rng, pat: NmPattern, g: RawGeometry): string {
  const { k, cin, cout, H, W, inStride, outStride, bandRows } = g;
  const kx = rt.kernels<NmExports>(), ar = rt.arena;
  const px = H * W, outLen = (px - 1) * outStride + cout;
  const qw = new Int8Array(cout * k * k * cin);
  fillNm(r, qw, k, cin, cout, pat, ohwiIdx(k, cin), () => r.pick([-128, 127, r.int(-127, 127) || 1]));
  const Lq = packQs8NmConv(qw, { cout, k, cin, bias: Int32Array.from({ length: cout }, () => r.int(-50000, 50000)), ...pat });
  const signed = r.next() < 0.5;
  const zp = signed ? r.int(-128, 127) : r.int(0, 255);
  const inQ = signed ? r.fillInt8(new Int8Array((px - 1) * inStride + cin)) : r.fillUint8(new Uint8Array((px - 1) * inStride + cin));
  const accWant = qs8NmConvAccRef(Lq, inQ, zp, { H, W, inStride });
  const mult = Float32Array.from({ length: (cout + 3) & ~3 }, () => 2 ** r.uniform(-16, -8));
  const oq = { zeroPoint: r.int(0, 255), qmin: 0, qmax: 255 };
  const codesWant = qs8NmConvRef(new Uint8Array(outLen), outStride, Lq, inQ, zp, { H, W, inStride }, mult, oq.zeroPoint, oq.qmin, oq.qmax);
  const acc32 = pat.pairs ? kx.qs8_qc8w_nm2_conv_nhwc_acc32 : kx.qs8_qc8w_nm_conv_nhwc_acc32;
  const requant = pat.pairs ? kx.qs8_qc8w_nm2_conv_nhwc : kx.qs8_qc8w_nm_conv_nhwc;
  const mk2 = ar.mark();
  try {
    const packed = ar.put(Lq.bytes), input = ar.put(inQ), multP = ar.put(mult);
    const acc = ar.put(new Int32Array(outLen).fill(77)), codes = ar.put(new Uint8Array(outLen).fill(77));
    const scratch = ar.alloc(qs8NmConvScratchBytes(W, cin, cout, k, pat));
    acc32(input, inStride, H, W, cin, zp, signed ? 1 : 0, k, pat.n, pat.m, packed, cout, acc, outStride, scratch, bandRows);
    requant(input, inStride, H, W, cin, zp, signed ? 1 : 0, k, pat.n, pat.m, packed, cout, multP, codes, outStride,
      oq.zeroPoint, oq.qmin, oq.qmax, 0, scratch, bandRows);
    const gotAcc = new Int32Array(outLen), gotCodes = new Uint8Array(outLen);
    ar.read(acc, gotAcc);
    ar.read(codes, gotCodes);
    for (let q = 0; q < px; q++) {
      for (let o = 0; o < cout; o++) {
        const j = q * outStride + o;
        if (gotAcc[j] !== accWant[q * cout + o]) return `zp ${zp}: pixel ${q} channel ${o}: acc ${gotAcc[j]}, want ${accWant[q * cout + o]}`;
        if (gotCodes[j] !== codesWant[j]) return `zp ${zp}: pixel ${q} channel ${o}: code ${gotCodes[j]}, want ${codesWant[j]}`;
      }
      for (let o = cout; o < outStride; o++) {
        const j = q * outStride + o;
        if (j < outLen && (gotAcc[j] !== 77 || gotCodes[j] !== 77)) return `pixel ${q} channel ${o} beyond cout written`;
      }
    }
    return "";
  } finally {
    ar.release(mk2);
  }
}

/**
 * The kernels' band rolls over the image in bands of `bandRows` output rows (the next band's first 2p rows are
 * copied from the previous one) and walks the input channels in L1-sized chunks of whole M-groups. The
 * wrappers pick bandRows from the image size (a small image is one band), so this calls the exports directly
 * with forced small band heights, on channel counts around the chunk and group boundaries of every k and M.
 */
test("nm conv: raw kernels with forced band heights (rolling band), chunk/group boundaries, every N at M = 32", async (t) => {
  const rt = await testRuntime();
  const kx = rt.kernels<NmExports>();
  const r = new Rng(8_2026);
  const patterns: NmPattern[] = [
    ...Array.from({ length: 32 }, (_, i) => ({ n: i + 1, m: 32 })),
    { n: 2, m: 4 }, { n: 4, m: 8 }, { n: 1, m: 4 }, { n: 3, m: 8 }, { n: 1, m: 2 }, { n: 5, m: 16 },
  ];
  let badF = 0, badQ = 0, cases = 0, worst = 0;
  const ar = rt.arena;
  for (let i = 0; i < 2 * patterns.length; i++) {
    const pat = patterns[i % patterns.length];
    const k = r.pick([1, 3, 3, 3, 5]);
    const p = (k - 1) >> 1;
    // Channel counts around the chunk boundaries (k = 3: 32 (M = 32), 24/28 (M = 8/4); k = 5: 12 …; k = 1: 64 …).
    const cin = r.pick([1, 5, 12, 13, 24, 25, 28, 29, 31, 32, 33, 56, 63, 64, 65, 84, 85, 96, 100]);
    const cout = r.pick([1, 3, 4, 5, 8, 9]);
    const H = r.int(1, 9), W = r.pick([1, 2, 7, 31, 32, 33, 45, 63, 64]);
    const pitch = Math.ceil((Math.max(W, 32) + 2 * p) / 16) * 16;
    const rowSetBound = cin * pitch * 4 + 4096;
    const bandRows = r.pick([1, 1, 2, 3, 4].filter((b) => (b + 2 * p) * rowSetBound <= 256 * 1024));
    const inStride = cin + r.int(0, 2), outStride = cout + r.int(0, 2);
    const px = H * W;
    cases++;
    // ---- f32 ----
    const w = new Float32Array(k * k * cin * cout);
    fillNm(r, w, k, cin, cout, pat, hwioIdx(k, cin, cout), () => r.uniform(-1, 1) || 0.5);
    const Lf = packF32NmConv(w, k, cin, cout, pat, r.fillF32(new Float32Array(cout)));
    const inF = r.fillF32(new Float32Array((px - 1) * inStride + cin), -2, 2);
    const outLen = (px - 1) * outStride + cout;
    const want = f32NmConvRef(new Float32Array(outLen), outStride, Lf, inF, { H, W, inStride });
    const mag = f32NmConvAbsSum(Lf, inF, { H, W, inStride });
    const mk = ar.mark();
    try {
      const packed = ar.put(Lf.bytes), input = ar.put(inF), output = ar.put(new Float32Array(outLen).fill(77));
      const scratch = ar.alloc(f32NmConvScratchBytes(W, cin, cout, k, pat));
      kx.f32_nm_conv_nhwc(input, inStride, output, outStride, H, W, cin, cout, k, pat.n, pat.m, packed, -Infinity, Infinity, scratch, bandRows);
      const got = new Float32Array(outLen);
      ar.read(output, got);
      for (let q = 0; q < px && badF < 5; q++) {
        for (let o = 0; o < outStride; o++) {
          const j = q * outStride + o;
          if (j >= outLen) break;
          if (o >= cout) {
            if (got[j] !== 77) { badF++; t.fail(`f32 ${H}×${W} ${cin}→${cout} k${k} ${pat.n}:${pat.m} bandRows ${bandRows}: channel ${o} beyond cout written`); }
            continue;
          }
          const tol = 4 * 2 ** -24 * (Lf.taps + 1) * mag[q * cout + o] + 1e-30;
          worst = Math.max(worst, Math.abs(got[j] - want[j]) / tol);
          if (!(Math.abs(got[j] - want[j]) <= tol)) {
            badF++;
            t.fail(`f32 ${H}×${W} ${cin}→${cout} k${k} ${pat.n}:${pat.m} bandRows ${bandRows}: pixel ${q} channel ${o} got ${got[j]} want ${want[j]}`);
            break;
          }
        }
      }
    } finally {
      ar.release(mk);
    }
    // ---- int8: raw int32 accumulators and requantized codes, bit-exact ----
    const why = rawInt8Case(rt, r, pat, { k, cin, cout, H, W, inStride, outStride, bandRows });
    if (why && badQ++ < 5) t.fail(`int8 ${H}×${W} ${cin}→${cout} k${k} ${pat.n}:${pat.m} bandRows ${bandRows}: ${why}`);
  }
  t.equal(badF, 0, `f32: ${cases} layers with forced band heights within 4·2^−24·(T+1)·Σ|w·x| of the reference (worst ${worst.toFixed(3)} of the bound)`);
  t.equal(badQ, 0, `int8: ${cases} layers with forced band heights bit-exact (int32 accumulators and requantized codes)`);
});

test("nm conv: raw pair kernel (N:Mp) with forced band heights, odd channel counts and chunk/group boundaries", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(8_2027);
  const patterns: NmPattern[] = [
    ...Array.from({ length: 16 }, (_, i) => ({ n: 2 * i + 2, m: 32, pairs: true })),
    { n: 2, m: 4, pairs: true }, { n: 4, m: 8, pairs: true }, { n: 2, m: 2, pairs: true }, { n: 6, m: 16, pairs: true }, { n: 2, m: 6, pairs: true },
  ];
  let bad = 0, cases = 0;
  for (let i = 0; i < 4 * patterns.length; i++) {
    const pat = patterns[i % patterns.length];
    const k = r.pick([1, 3, 3, 3, 5]);
    const p = (k - 1) >> 1;
    const cin = r.pick([1, 2, 3, 5, 12, 13, 24, 25, 31, 32, 33, 63, 64, 65, 85, 96, 101]);
    const cout = r.pick([1, 3, 4, 5, 8, 9]);
    const H = r.int(1, 9), W = r.pick([1, 2, 7, 31, 32, 33, 45, 63, 64]);
    const rowSetBound = (cin + 1) * Math.ceil((Math.max(W, 32) + 2 * p) / 32) * 32 * 2 + 4096;
    const bandRows = r.pick([1, 1, 2, 3, 4].filter((b) => (b + 2 * p) * rowSetBound <= 256 * 1024));
    const inStride = cin + r.int(0, 2), outStride = cout + r.int(0, 2);
    cases++;
    const why = rawInt8Case(rt, r, pat, { k, cin, cout, H, W, inStride, outStride, bandRows });
    if (why && bad++ < 5) t.fail(`pairs ${H}×${W} ${cin}→${cout} k${k} ${nmPatternName(pat)} bandRows ${bandRows}: ${why}`);
  }
  t.equal(bad, 0, `${cases} pair layers with forced band heights bit-exact (int32 accumulators and requantized codes)`);
});

test("nm conv: engine calls validate before any WASM call", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(3);
  const k = 3, cin = 16, cout = 8, p = { n: 2, m: 8 };
  const q = new Int8Array(cout * k * k * cin);
  fillNm(r, q, k, cin, cout, p, ohwiIdx(k, cin), () => 127);
  const L = packQs8NmConv(q, { cout, k, cin, ...p });
  const ar = rt.arena, mk = ar.mark();
  try {
    const packed = ar.put(L.bytes), input = ar.alloc(8 * 8 * cin), output = ar.alloc(8 * 8 * cout);
    const scratch = ar.alloc(qs8NmConvScratchBytes(8, cin, cout, k, p));
    const mult = ar.put(new Float32Array(8).fill(0.01));
    const base = { layer: L, packed, H: 8, W: 8, input, inStride: cin, act: { bits: 8, signed: false, zeroPoint: 128 }, output, outStride: cout, scratch, multipliers: mult, out: { signed: false, zeroPoint: 0, qmin: 0, qmax: 255 } };
    qs8NmConvRun(rt, base);
    t.pass("a valid call runs");
    throwsCode(t, () => qs8NmConvRun(rt, { ...base, W: 0 }), "E_SHAPE", "W = 0");
    throwsCode(t, () => qs8NmConvRun(rt, { ...base, inStride: cin - 1 }), "E_SHAPE", "inStride < cin");
    throwsCode(t, () => qs8NmConvRun(rt, { ...base, act: { bits: 9, signed: false, zeroPoint: 0 } }), "E_BITS", "9-bit activations");
    throwsCode(t, () => qs8NmConvRun(rt, { ...base, out: { signed: false, zeroPoint: 0, qmin: 10, qmax: 5 } }), "E_RANGE", "qmax < qmin");
    throwsCode(t, () => qs8NmConvRun(rt, { ...base, scratch: rt.arena.capacity - 16 }), "E_SHAPE", "scratch outside memory");
    throwsCode(t, () => qs8NmConvRun(rt, { ...base, layer: { ...L, n: 3 } }), "E_SHAPE", "layer metadata inconsistent with its bytes");
    const big = packQs8NmConv(new Int8Array(cout * k * k * cin).fill(127), { cout, k, cin, n: 8, m: 8, bias: new Int32Array(cout).fill(2 ** 31 - 1) });
    throwsCode(t, () => qs8NmConvRun(rt, { ...base, layer: big }), "E_RANGE", "int32 accumulator may overflow");
    const w = new Float32Array(k * k * cin * cout);
    fillNm(r, w, k, cin, cout, p, hwioIdx(k, cin, cout), () => 1);
    const Lf = packF32NmConv(w, k, cin, cout, p);
    const fbase = { layer: Lf, packed: ar.put(Lf.bytes), h: 8, w: 8, input: ar.alloc(8 * 8 * cin * 4), inStride: cin, output: ar.alloc(8 * 8 * cout * 4), outStride: cout, outMin: -Infinity, outMax: Infinity, scratch: ar.alloc(f32NmConvScratchBytes(8, cin, cout, k, p)) };
    f32NmConvRun(rt, fbase);
    t.pass("a valid f32 call runs");
    throwsCode(t, () => f32NmConvRun(rt, { ...fbase, outMin: 1, outMax: 0 }), "E_ARGUMENT", "f32: empty clamp");
    throwsCode(t, () => f32NmConvRun(rt, { ...fbase, output: fbase.input }), "E_ARGUMENT", "f32: output overlaps input");
    throwsCode(t, () => f32NmConvRun(rt, { ...fbase, packed: fbase.packed + 2 }), "E_SHAPE", "f32: misaligned packed weights");
  } finally {
    ar.release(mk);
  }
});

// ------------------------------------------------ engine -------------------------------------------------

/**
 * One-shot magnitude N:M mask, in place on HWIO weights: per (o, kh, kw, group) keep the n largest |w| (ties:
 * the lower channel), zero the rest. (A test helper; the pruning methods live in src/methods.)
 */
function maskNmMagnitude(w: Float32Array, k: number, cin: number, cout: number, n: number, m: number): Float32Array {
  const idx: number[] = [];
  for (let t = 0; t < k * k; t++) {
    for (let o = 0; o < cout; o++) {
      for (let g = 0; g < cin; g += m) {
        idx.length = 0;
        for (let c = g; c < Math.min(cin, g + m); c++) idx.push(c);
        idx.sort((a, b) => Math.abs(w[(t * cin + b) * cout + o]) - Math.abs(w[(t * cin + a) * cout + o]) || a - b);
        for (let j = n; j < idx.length; j++) w[(t * cin + idx[j]) * cout + o] = 0;
      }
    }
  }
  return w;
}

/**
 * A seeded graph whose body convs are masked to `patterns` by magnitude (plain: maskNmMagnitude; pairs: the
 * pruning module's nmMask) runs the sparse kernels and gives the dense plans' output; `falseClaim` (a tighter
 * pattern for body3) must be refused by the .lowbit reader.
 */
async function sparseGraphCase(t: test.Test, patterns: Record<string, NmPattern>, falseClaim: NmPattern): Promise<void> {
  const rt = await testRuntime();
  const { nmMask } = await import("../../src/methods/prune/nm-mask.ts");
  const { GraphBuilder } = await import("../../src/graph/builder.ts");
  const { F32Plan } = await import("../../src/graph/compile-f32.ts");
  const { Q8Plan } = await import("../../src/graph/compile-q8.ts");
  const { createUpscaler } = await import("../../src/engine/upscaler-api.ts");
  const { calibrate } = await import("../../src/quant/calibrate.ts");
  const { quantizeModel } = await import("../../src/quant/quantize-model.ts");
  const build = (sparse: boolean) => {
    const b = new GraphBuilder({ seed: 42 });
    const x = b.input(3);
    const h = b.conv2d(x, 40, 3, { activation: "relu", name: "head" });
    const a = b.conv2d(h, 40, 3, { activation: "relu", name: "body3" });
    const c = b.conv2d(a, 40, 1, { name: "body1" });
    const s = b.add(c, h);
    const f = b.conv2d(s, 40, 5, { activation: "relu", name: "body5" });
    const g = b.build(b.depthToSpace(b.conv2d(f, 12, 3, { name: "tail" }), 2), { scale: 2 });
    for (const node of g.nodes) {
      if (node.op !== "conv2d" || !patterns[node.name]) continue;
      const p = patterns[node.name];
      if (p.pairs) {
        const keep = nmMask(new Uint8Array(node.weights.length), node.weights, node.k, node.cin, node.cout, p);
        for (let i = 0; i < keep.length; i++) if (!keep[i]) node.weights[i] = 0;
      } else {
        maskNmMagnitude(node.weights, node.k, node.cin, node.cout, p.n, p.m);
      }
      if (sparse) node.sparsity = { ...p };
    }
    return g;
  };
  const gs = build(true), gd = build(false);
  const r = new Rng(8);
  const img = { data: r.fillUint8(new Uint8Array(37 * 29 * 3)), width: 37, height: 29, channels: 3 as const };

  const plan = new F32Plan(rt, gs, 16, 16);
  const names = plan.info.nmConvs.map((id) => plan.info.graph.nodes[id].name).sort();
  t.deepEqual(names, ["body1", "body3", "body5", "tail"], `FP32 plan: the 4 sparse convs run the N:M kernel (${names.join(", ")})`);
  plan.dispose();
  const dense = new F32Plan(rt, gd, 16, 16);
  t.deepEqual(dense.info.nmConvs, [], "FP32 plan without the field: all dense");
  dense.dispose();

  const fs = await (await createUpscaler(gs, { runtime: rt })).upscale(img, { tile: 16 });
  const fd = await (await createUpscaler(gd, { runtime: rt })).upscale(img, { tile: 16 });
  let maxDiff = 0, diffs = 0;
  for (let i = 0; i < fd.data.length; i++) {
    const d = Math.abs(fs.data[i] - fd.data[i]);
    maxDiff = Math.max(maxDiff, d);
    if (d) diffs++;
  }
  t.ok(fs.width === 74 && fs.height === 58 && maxDiff <= 1 && diffs <= fd.data.length / 200,
    `FP32: sparse vs dense image differ by ≤ 1 level (max ${maxDiff}) in ≤ 0.5 % of the values (${diffs} of ${fd.data.length}; f32 summation order differs)`);

  const calib = [{ data: r.fillUint8(new Uint8Array(24 * 20 * 3)), width: 24, height: 20, channels: 3 as const }];
  for (const bits of ["w8a8", "w4a8"]) {
    // One calibration for both, so both models get the same scales and only the kernels differ: calibrating
    // the sparse graph on its own runs the FP32 N:M kernel, whose last-bit differences (another summation
    // order; FMA in the relaxed build) can move a percentile range by a histogram bin.
    const cal = await calibrate(gd, calib, { runtime: rt });
    const calS = {
      ...cal,
      graph: { ...cal.graph, nodes: cal.graph.nodes.map((n) => (n.op === "conv2d" && patterns[n.name] ? { ...n, sparsity: { ...patterns[n.name] } } : n)) },
    };
    const qs = quantizeModel(calS, bits);
    const qd = quantizeModel(cal, bits);
    const qp = new Q8Plan(rt, qs, 16, 16);
    const qn = qp.info.nmConvs.map((id) => qp.info.nodes[id].name).sort();
    t.deepEqual(qn, ["body1", "body3", "body5", "tail"], `${bits} plan: the 4 sparse convs run the int8 N:M kernel`);
    const kinds = [...new Set(qp.info.nmConvs.map((id) => qp.info.convKernels[id]))];
    const wantKind = Object.values(patterns)[0].pairs ? "nm-pairs" : "nm";
    t.deepEqual(kinds, [wantKind], `${bits} plan: ${wantKind === "nm" ? "the unpaired" : "the pair"} kernel (${kinds.join(", ")})`);
    qp.dispose();
    const a = await (await createUpscaler(qs, { runtime: rt })).upscale(img, { tile: 16 });
    const b = await (await createUpscaler(qd, { runtime: rt })).upscale(img, { tile: 16 });
    t.equal(firstDiff(a.data, b.data), "equal", `${bits}: sparse and dense plans give identical bytes (${a.data.length} values)`);
    if (bits === "w8a8") {
      // The .lowbit round trip keeps the pattern, so a reloaded model runs the sparse kernels too.
      const { saveLowbit, loadLowbit } = await import("../../src/io/lowbit-file.ts");
      const back = loadLowbit(saveLowbit(qs)) as typeof qs;
      const declared = back.graph.nodes.filter((n) => n.op === "conv2d" && n.sparsity).map((n) => n.name).sort();
      t.deepEqual(declared, ["body1", "body3", "body5", "tail"], ".lowbit round trip keeps the sparsity field");
      const c = await (await createUpscaler(back, { runtime: rt })).upscale(img, { tile: 16 });
      t.equal(firstDiff(c.data, a.data), "equal", "the reloaded model gives the same bytes");
      const bad = build(false);
      const body3 = bad.nodes.find((n) => n.name === "body3")!;
      if (body3.op === "conv2d") body3.sparsity = { ...falseClaim }; // masked at 4:32(p), so the claim is false
      try {
        loadLowbit(saveLowbit(bad));
        t.fail("a model whose weights break the declared pattern is stored");
      } catch (e) {
        // saveLowbit re-reads what it wrote: the reader's pattern check refuses the file.
        t.ok(e instanceof LowbitError && e.message.includes(`declares ${nmPatternName(falseClaim)} sparsity`), `a false sparsity claim is refused (${e instanceof LowbitError ? e.code : e})`);
      }
    }
  }
}

test("nm conv: graphs whose convs declare sparsity run the sparse kernels and give the dense plans' output (FP32 tolerance, W8A8 identical bytes)", async (t) => {
  await sparseGraphCase(t, { body3: { n: 4, m: 32 }, body1: { n: 2, m: 8 }, body5: { n: 1, m: 4 }, tail: { n: 2, m: 32 } }, { n: 1, m: 32 });
});

test("nm conv: pair-pruned graphs (N:Mp) run the pair kernel in W8A8 with the dense plan's bytes", async (t) => {
  await sparseGraphCase(t, { body3: { n: 4, m: 32, pairs: true }, body1: { n: 2, m: 8, pairs: true }, body5: { n: 2, m: 8, pairs: true },
    tail: { n: 2, m: 32, pairs: true } }, { n: 2, m: 32, pairs: true });
});

test("nm conv: a declared pattern the weights break, or a dense-enough pattern, falls back to the dense kernel", async (t) => {
  const rt = await testRuntime();
  const { GraphBuilder } = await import("../../src/graph/builder.ts");
  const { F32Plan } = await import("../../src/graph/compile-f32.ts");
  const b = new GraphBuilder({ seed: 3 });
  const x = b.input(3);
  const h = b.conv2d(x, 32, 3, { name: "head" });
  const g = b.build(b.depthToSpace(b.conv2d(b.conv2d(h, 32, 3, { name: "dense24" }), 12, 3, { name: "broken" }), 2), { scale: 2 });
  for (const node of g.nodes) {
    if (node.op !== "conv2d") continue;
    if (node.name === "dense24") { maskNmMagnitude(node.weights, node.k, node.cin, node.cout, 24, 32); node.sparsity = { n: 24, m: 32 }; }
    if (node.name === "broken") node.sparsity = { n: 2, m: 32 }; // weights left dense: the claim is false
  }
  const plan = new F32Plan(rt, g, 8, 8);
  t.deepEqual(plan.info.nmConvs, [], "24:32 (density 0.75, slower than dense) and a false 2:32 claim both run dense");
  plan.dispose();
});
