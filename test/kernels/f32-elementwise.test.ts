import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { add, scale, clamp, activation, ACTIVATION_CODES, EXACT_ACTIVATIONS, ACTIVATION_TOLERANCE, activationAlpha } from "../../src/kernels/f32-elementwise.ts";
import { addRef, scaleRef, clampRef, activationRef } from "../../src/kernels/ref/f32-elementwise.ts";
import type { ActivationKind } from "../../src/graph/ir.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";

function stridedF32(rng: Rng, n: number, c: number, s: number, lo = -10, hi = 10): Float32Array {
  const x = new Float32Array((n - 1) * s + c);
  for (let i = 0; i < x.length; i++) {
    const r = rng.next();
    x[i] = r < 0.05 ? rng.pick([0, -0, 1e-30, -1e-30, 3e38, -3e38, 6, -6]) : rng.uniform(lo, hi);
  }
  return x;
}

test("f32 add / scale / clamp: WASM = reference bit for bit", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(11);
  let bad = 0;
  for (let k = 0; k < 200; k++) {
    const c = rng.pick(CHANNELS), n = rng.pick([1, 2, 9, 50]);
    const as = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0), bs = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0), ys = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0);
    const a = stridedF32(rng, n, c, as), b = stridedF32(rng, n, c, bs);
    const beta = rng.pick([1, 0.2, -3.7, rng.uniform(-2, 2)]);
    const got = new Float32Array((n - 1) * ys + c).fill(1.5), want = new Float32Array(got.length).fill(1.5);
    add(got, a, b, { pixels: n, channels: c, aStride: as, bStride: bs, outStride: ys }, beta, rt);
    addRef(want, a, b, n, c, as, bs, ys, beta);
    if (firstDiff(got, want) >= 0 && ++bad < 4) t.fail(`add case ${k}`);
    scale(got, a, { pixels: n, channels: c, inStride: as, outStride: ys }, beta, rt);
    scaleRef(want, a, n, c, as, ys, beta);
    if (firstDiff(got, want) >= 0 && ++bad < 4) t.fail(`scale case ${k}`);
    const lo = rng.uniform(-5, 0), hi = rng.uniform(0, 5);
    clamp(got, a, { pixels: n, channels: c, inStride: as, outStride: ys }, lo, hi, rt);
    clampRef(want, a, n, c, as, ys, Math.fround(lo), Math.fround(hi));
    if (firstDiff(got, want) >= 0 && ++bad < 4) t.fail(`clamp case ${k}`);
  }
  t.equal(bad, 0, "200 × (add, scale, clamp) bit-exact");
  const y = new Float32Array(2);
  clamp(y, Float32Array.of(NaN, -0), { pixels: 1, channels: 2 }, -0, 1, rt);
  t.ok(Number.isNaN(y[0]), "f32 clamp propagates NaN");
});

test("8-bit clamp: WASM = reference (u8/i8, strides, saturating bounds)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(12);
  let bad = 0;
  for (let k = 0; k < 300; k++) {
    const c = rng.pick(CHANNELS), n = rng.pick([1, 3, 20, 64]);
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0), ys = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0);
    const signed = rng.next() < 0.5;
    const T = signed ? Int8Array : Uint8Array;
    const tl = signed ? -128 : 0, th = signed ? 127 : 255;
    const x = rng.fillInt8(new T((n - 1) * xs + c) as Int8Array, tl, th);
    const lo = rng.next() < 0.2 ? tl : rng.int(tl, th), hi = rng.next() < 0.2 ? th : rng.int(lo, th);
    const got = new T((n - 1) * ys + c).fill(3), want = new T(got.length).fill(3);
    clamp<Uint8Array | Int8Array>(got, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, lo, hi, rt);
    clampRef<Uint8Array | Int8Array>(want, x, n, c, xs, ys, lo, hi);
    if (firstDiff(got, want) >= 0 && ++bad < 4) t.fail(`case ${k} signed=${signed} [${lo}, ${hi}]`);
  }
  t.equal(bad, 0, "300 cases bit-exact");
});

test("activations: exact kinds bit-identical, transcendental within the stated tolerance", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(13);
  const kinds = Object.keys(ACTIVATION_CODES) as ActivationKind[];
  for (const kind of kinds) {
    let bad = 0, worstUlpRel = 0;
    for (let k = 0; k < 30; k++) {
      const c = rng.pick(CHANNELS), n = rng.pick([1, 5, 40]);
      const xs = c + (rng.next() < 0.3 ? rng.int(1, 3) : 0), ys = c + (rng.next() < 0.3 ? rng.int(1, 3) : 0);
      const x = stridedF32(rng, n, c, xs, kind === "exponential" ? -80 : -30, kind === "exponential" ? 80 : 30);
      if (kind === "exponential") for (let i = 0; i < x.length; i++) if (Math.abs(x[i]) > 88) x[i] = rng.uniform(-88, 88);
      const act = { kind, alpha: rng.next() < 0.5 ? undefined : rng.uniform(0.05, 2) };
      const got = new Float32Array((n - 1) * ys + c).fill(2), want = new Float32Array(got.length).fill(2);
      activation(got, x, { pixels: n, channels: c, inStride: xs, outStride: ys }, act, rt);
      activationRef(want, x, n, c, xs, ys, kind, activationAlpha(act));
      for (let i = 0; i < got.length; i++) {
        if (EXACT_ACTIVATIONS.has(kind)) {
          if (!Object.is(got[i], want[i])) bad++;
        } else {
          const err = Math.abs(got[i] - want[i]);
          const tol = ACTIVATION_TOLERANCE.rel * Math.abs(want[i]) + ACTIVATION_TOLERANCE.abs;
          if (!(err <= tol) && !(got[i] === want[i])) bad++;
          if (want[i] !== 0 && Number.isFinite(want[i])) worstUlpRel = Math.max(worstUlpRel, err / Math.abs(want[i]));
        }
      }
    }
    t.equal(bad, 0, EXACT_ACTIVATIONS.has(kind) ? `${kind}: bit-exact` : `${kind}: within tolerance (worst relative error ${worstUlpRel.toExponential(2)})`);
  }
  const y = new Float32Array(4);
  activation(y, Float32Array.of(-1, 0, 2, 8), { pixels: 1, channels: 4 }, { kind: "relu6" }, rt);
  t.deepEqual([...y], [0, 0, 2, 6], "relu6 hand values");
  activation(y, Float32Array.of(-10, -1, 0, 1), { pixels: 4, channels: 1 }, { kind: "leaky_relu" }, rt);
  t.deepEqual([...y], [Math.fround(-3), Math.fround(-0.3), 0, 1], "leaky_relu default alpha 0.3");
  activation(y, Float32Array.of(-3, 0, 2.5, 3), { pixels: 2, channels: 2, inStride: 2 }, { kind: "hard_sigmoid" }, rt);
  t.deepEqual([...y], [0, 0.5, 1, 1], "hard_sigmoid = clip(0.2x + 0.5)");
  activation(y, Float32Array.of(-100, 0, 100, 1), { pixels: 4, channels: 1 }, { kind: "sigmoid" }, rt);
  t.ok(y[0] >= 0 && y[0] < 1e-40 && y[1] === 0.5 && y[2] === 1, "sigmoid saturates without NaN");
  activation(y, Float32Array.of(-100, 0, 100, 1), { pixels: 4, channels: 1 }, { kind: "softplus" }, rt);
  t.ok(y[0] < 1e-40 && Math.abs(y[1] - Math.LN2) < 1e-7 && y[2] === 100, "softplus stable at ±100");
  const inplace = Float32Array.of(-2, -1, 0, 3);
  activation(inplace, inplace, { pixels: 1, channels: 4 }, { kind: "relu" }, rt);
  t.deepEqual([...inplace], [0, 0, 0, 3], "in place through the typed wrapper");
});

test("f32 elementwise: bad arguments throw LowbitError", async (t) => {
  const rt = await testRuntime();
  const x = new Float32Array(6), y = new Float32Array(6);
  const L = { pixels: 2, channels: 3 };
  throwsCode(t, () => activation(y, x, L, { kind: "gelu" as ActivationKind }, rt), "E_UNSUPPORTED_LAYER", "unknown activation");
  throwsCode(t, () => activation(y, x, L, { kind: "leaky_relu", alpha: NaN }, rt), "E_RANGE", "NaN alpha");
  throwsCode(t, () => add(y, x, new Float32Array(5), L, 1, rt), "E_SHAPE", "short b");
  throwsCode(t, () => add(y, x, x, L, Infinity, rt), "E_RANGE", "infinite beta");
  throwsCode(t, () => scale(y, x, { ...L, inStride: 2 }, 1, rt), "E_SHAPE", "stride < channels");
  throwsCode(t, () => clamp(y, x, L, 2, 1, rt), "E_RANGE", "lo > hi");
  throwsCode(t, () => clamp(new Uint8Array(6), new Uint8Array(6), L, 0, 256, rt), "E_RANGE", "u8 bound 256");
  throwsCode(t, () => clamp(new Uint8Array(6), new Int8Array(6) as unknown as Uint8Array, L, 0, 10, rt), "E_ARGUMENT", "mixed code types");
});
