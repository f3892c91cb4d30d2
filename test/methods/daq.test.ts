import test from "tape";
import { Rng } from "../util/rng.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import {
  DAQ_GAUSSIAN_STEPS, DaqSensitivityAccumulator, daqActivationParams, daqChannelBits, daqChannelSensitivity, daqClipThreshold,
  daqDistortion, daqInt16Lut, daqIntegerCodes, daqInvDelta, daqLevelValue, daqLutScale, daqMaxAbsLevel, daqQuantizeCodes,
  daqQuantizeReference, daqQuantizeWeights, daqSigmaStepMultiplier, daqStepMultiplier, daqWeightEnergy, roundHalfEven,
  type DaqActivationParams, type DaqReferenceInfo,
} from "../../src/methods/daq/index.ts";

function throwsCode(t: test.Test, fn: () => unknown, code: string, what: string): void {
  try {
    fn();
    t.fail(`${what}: did not throw`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${what} → ${code}${e instanceof LowbitError ? "" : ` (got ${String(e)})`}`);
  }
}

/** Exact f64 per-channel stats (mean, population std, #x>0) of an NHWC image. */
function stats(x: ArrayLike<number>, n: number, c: number) {
  const mean = new Float64Array(c), std = new Float64Array(c), countPositive = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let p = 0; p < n; p++) s += x[p * c + ch];
    const m = s / n;
    let v = 0;
    for (let p = 0; p < n; p++) {
      v += (x[p * c + ch] - m) ** 2;
      if (x[p * c + ch] > 0) countPositive[ch]++;
    }
    mean[ch] = m;
    std[ch] = Math.sqrt(v / n);
  }
  return { pixels: n, mean, std, countPositive };
}

/** Random NHWC image, per-channel mean/scale; postRelu → max(0, ·) with a chosen zero share. */
function image(rng: Rng, n: number, c: number, postRelu: boolean, outliers = false): Float32Array {
  const x = new Float32Array(n * c);
  for (let ch = 0; ch < c; ch++) {
    const mu = rng.uniform(-2, 2), sd = rng.pick([1e-3, 0.1, 1, 10]);
    const constant = rng.next() < 0.06;
    for (let p = 0; p < n; p++) {
      let v = constant ? mu : mu + sd * rng.normal();
      if (outliers && rng.next() < 0.02) v += sd * rng.pick([-25, 25]);
      x[p * c + ch] = postRelu ? Math.max(0, v) : v;
    }
  }
  return x;
}

function distinct(a: ArrayLike<number>): number {
  return new Set(Array.from(a)).size;
}

test("daq step table: G[b−1] indexing, clip thresholds, mse table, finetune overrides, bad bits", async (t) => {
  t.equal(daqStepMultiplier(2), 1.596, "b = 2 → 1.596");
  t.ok(Math.abs(daqClipThreshold(2) - 2.394) < 1e-12, "b = 2 → T = 2.394σ");
  t.equal(daqStepMultiplier(4), 0.586, "b = 4 → 0.586");
  t.ok(Math.abs(daqClipThreshold(4) - 4.395) < 1e-12, "b = 4 → T = 4.395σ");
  const coded: Record<number, number> = { 2: 2.394, 3: 3.486, 4: 4.395, 5: 5.192, 6: 5.922, 8: 7.268 };
  const mse: Record<number, number> = { 2: 1.494, 3: 2.051, 4: 2.513, 5: 2.914, 6: 3.276, 8: 3.953 };
  for (const b of [2, 3, 4, 5, 6, 8]) {
    t.ok(Math.abs(daqClipThreshold(b, "code") - coded[b]) < 6e-4, `coded T_${b} = ${coded[b]}σ`);
    t.ok(Math.abs(daqClipThreshold(b, "mse") - mse[b]) < 6e-4, `MSE-optimal T_${b} = ${mse[b]}σ`);
  }
  for (let b = 1; b <= 8; b++) {
    t.equal(daqStepMultiplier(b, "code"), DAQ_GAUSSIAN_STEPS[b - 1], `code b=${b}`);
    t.equal(daqStepMultiplier(b, "mse"), DAQ_GAUSSIAN_STEPS[b], `mse b=${b}`);
    t.equal(daqStepMultiplier(b, "code", true), 1.596, `finetune step b=${b}`);
    t.equal(daqSigmaStepMultiplier(b, "code", true), 0.057, `finetune σ step qq=${b}`);
    t.equal(daqSigmaStepMultiplier(b, "code"), DAQ_GAUSSIAN_STEPS[b - 1], `σ step qq=${b}`);
  }
  t.ok(Math.abs(daqClipThreshold(4, "code", true) - 7.5 * 1.596) < 1e-12, "finetune T_4 = 7.5·1.596");
  for (const b of [0, 9, 2.5, NaN]) throwsCode(t, () => daqStepMultiplier(b), "E_BITS", `bits ${b}`);
  throwsCode(t, () => daqStepMultiplier(4, "x" as "code"), "E_ARGUMENT", "unknown table");
  t.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6].map(roundHalfEven), [0, 2, 2, -0, -2, -2, 2, -3], "half to even");
});

test("daq reference (signed): ≤ 2^b levels at μ + (j+½)Δ, ±T clamp, nearest level, σ = 0 → μ, HW = 1", async (t) => {
  const rng = new Rng(501);
  let cases = 0, badLevel = 0, badCount = 0, badClamp = 0, badNearest = 0, badConst = 0;
  for (let it = 0; it < 200; it++) {
    const c = rng.pick([1, 3, 5, 12, 48]), n = rng.pick([2, 3, 16, 100, 400]);
    const bits = rng.int(1, 8), qq = rng.pick([32, 32, 4, 8]);
    const x = image(rng, n, c, false, true);
    const out = new Float64Array(n * c);
    const info: DaqReferenceInfo = { mean: new Float64Array(c), step: new Float64Array(c), sigmaQ: new Float64Array(c), sigma: new Float64Array(c) };
    const pr = daqQuantizeReference(out, x, n, c, { bits, qq, mode: "int", postRelu: false }, info);
    if (pr !== false) t.fail("static signed branch reported post-ReLU");
    cases++;
    for (let ch = 0; ch < c; ch++) {
      const mu = info.mean![ch], D = info.step![ch], T = (2 ** (bits - 1) - 0.5) * D;
      const col = Array.from({ length: n }, (_, p) => out[p * c + ch]);
      if (D === 0) {
        if (col.some((v) => v !== mu)) badConst++;
        continue;
      }
      if (distinct(col) > 2 ** bits) badCount++;
      for (let p = 0; p < n; p++) {
        const j = (col[p] - mu) / D - 0.5;
        if (Math.abs(j - Math.round(j)) > 1e-6 || Math.abs(col[p] - mu) > T * (1 + 1e-12)) badLevel++;
        const d = x[p * c + ch] - mu;
        if (d > T && Math.abs(col[p] - (mu + T)) > 1e-9 * (Math.abs(mu) + T)) badClamp++;
        if (d < -T && Math.abs(col[p] - (mu - T)) > 1e-9 * (Math.abs(mu) + T)) badClamp++;
        if (Math.abs(d) <= T && Math.abs(x[p * c + ch] - col[p]) > D / 2 * (1 + 1e-9)) badNearest++;
      }
    }
  }
  t.equal(badLevel, 0, `${cases} images: every output at μ + (j + ½)Δ within ±T`);
  t.equal(badCount, 0, "at most 2^b distinct levels per channel");
  t.equal(badClamp, 0, "beyond ±T → μ ± T");
  t.equal(badNearest, 0, "inside ±T: the nearest level (|x − x̂| ≤ Δ/2)");
  t.equal(badConst, 0, "σ = 0 / Δ = 0 channel → μ");
  // Constant channel and a 1×1 image (σ = 0 where torch would give NaN).
  const out = new Float64Array(3);
  daqQuantizeReference(out, Float32Array.of(0.25, -3, 7), 1, 3, { bits: 4, qq: 32, mode: "reference", postRelu: false });
  t.deepEqual([...out], [0.25, -3, 7], "HW = 1 → σ = 0 → x̂ = μ = x");
  const o2 = new Float64Array(4);
  daqQuantizeReference(o2, Float32Array.of(1.5, 1.5, 1.5, 1.5), 4, 1, { bits: 2, qq: 32, mode: "reference", postRelu: false });
  t.deepEqual([...o2], [1.5, 1.5, 1.5, 1.5], "constant channel → μ");
  // Hand example: x = [−3, −1, 1, 3], μ = 0, σ = sqrt(20/3), b = 2, Δ = 1.596σ: levels ±Δ/2, ±3Δ/2, T = 1.5Δ.
  const o3 = new Float64Array(4);
  daqQuantizeReference(o3, Float32Array.of(-3, -1, 1, 3), 4, 1, { bits: 2, qq: 32, mode: "reference", postRelu: false });
  const D = 1.596 * Math.sqrt(20 / 3);
  t.ok([-D / 2, -D / 2, D / 2, D / 2].every((v, i) => Math.abs(o3[i] - v) < 1e-12), `hand example (Δ = ${D.toFixed(3)} > 3 → ±Δ/2)`);
  // Exact boundary: x − μ = 0 (n = 0, even) goes one level lower under half-even; n = 1 (odd) goes up.
  const o4 = new Float64Array(3), info4: DaqReferenceInfo = { codes: new Int32Array(3), step: new Float64Array(1) };
  daqQuantizeReference(o4, Float32Array.of(-1, 0, 1), 3, 1, { bits: 3, qq: 32, mode: "reference", postRelu: false }, info4);
  t.equal(info4.codes![1], 3, "t = 0 exactly (even n): code 2^(b−1) − 1 (half-even), not 2^(b−1)");
  t.ok(o4[1] < 0, "… so x = μ maps to μ − Δ/2");
});

test("daq reference (post-ReLU): unclamped in reference mode, clamped in int mode, 0 stays 0, auto branch", async (t) => {
  const rng = new Rng(502);
  let badZero = 0, badRef = 0, badInt = 0, exceeded = 0, clamped = 0, cases = 0;
  for (let it = 0; it < 150; it++) {
    const c = rng.pick([1, 3, 5, 12]), n = rng.pick([4, 33, 200]);
    const bits = rng.int(1, 6);
    const x = image(rng, n, c, true, true);
    const ref = new Float64Array(n * c), int = new Float64Array(n * c);
    const ir: DaqReferenceInfo = { step: new Float64Array(c), codes: new Int32Array(n * c) };
    const ii: DaqReferenceInfo = { step: new Float64Array(c), codes: new Int32Array(n * c) };
    daqQuantizeReference(ref, x, n, c, { bits, qq: 32, mode: "reference", postRelu: true }, ir);
    daqQuantizeReference(int, x, n, c, { bits, qq: 32, mode: "int", postRelu: true }, ii);
    cases++;
    const K = 2 ** bits;
    for (let ch = 0; ch < c; ch++) {
      const D = ir.step![ch];
      for (let p = 0; p < n; p++) {
        const i = p * c + ch, v = x[i];
        if (v === 0 && (ref[i] !== 0 || int[i] !== 0)) badZero++;
        if (D <= 0) continue;
        const k = Math.round(v / D); // off only at exact ties
        if (Math.abs(ref[i] - k * D) > 1e-9 * (k * D + D)) badRef++;
        if (Math.abs(int[i] - Math.min(k, K - 1) * D) > 1e-9 * (k * D + D)) badInt++;
        if (ir.codes![i] > K - 1) exceeded++;
        if (ii.codes![i] > K - 1) badInt++;
        if (k > K - 1) clamped++;
      }
    }
  }
  t.equal(badZero, 0, `${cases} images: x = 0 → 0 in both modes`);
  t.equal(badRef, 0, "reference mode: x̂ = round(x/Δ)·Δ, no upper clamp");
  t.equal(badInt, 0, "int mode: codes clamped to 2^b − 1");
  t.ok(exceeded > 0 && clamped === exceeded, `reference codes above 2^b − 1 occur (${exceeded}) exactly where int mode clamps`);
  const z = new Float64Array(4);
  t.equal(daqQuantizeReference(z, Float32Array.of(0, 1, 2, 3), 4, 1, { bits: 2, qq: 32, mode: "int", postRelu: "auto" }), true, "auto: min = 0 → post-ReLU");
  t.equal(daqQuantizeReference(z, Float32Array.of(0.5, 1, 2, 3), 4, 1, { bits: 2, qq: 32, mode: "int", postRelu: "auto" }), false, "auto: min > 0 → signed");
  t.equal(daqQuantizeReference(z, Float32Array.of(-1, 0, 2, 3), 4, 1, { bits: 2, qq: 32, mode: "int", postRelu: "auto" }), false, "auto: min < 0 → signed");
  daqQuantizeReference(z, new Float32Array(4), 4, 1, { bits: 3, qq: 32, mode: "reference", postRelu: true });
  t.deepEqual([...z], [0, 0, 0, 0], "all-zero channel → 0");
});

test("daq σ codebook: ≤ 2^qq values, d_σ = 0 → m_σ, reference = params", async (t) => {
  const rng = new Rng(503);
  let bad = 0, badMatch = 0, cases = 0;
  for (let it = 0; it < 120; it++) {
    const c = rng.pick([8, 17, 64]), n = rng.pick([16, 64]);
    const qq = rng.int(1, 6), post = rng.next() < 0.4, bits = rng.int(2, 8);
    const x = image(rng, n, c, post);
    const out = new Float64Array(n * c), info: DaqReferenceInfo = { sigmaQ: new Float64Array(c) };
    daqQuantizeReference(out, x, n, c, { bits, qq, mode: "reference", postRelu: post }, info);
    if (distinct(info.sigmaQ!) > 2 ** qq) bad++;
    const p: DaqActivationParams = { mu: new Float32Array(c), delta: new Float32Array(c), sigma: new Float64Array(c) };
    daqActivationParams(p, stats(x, n, c), { bits, qq, mode: "reference", postRelu: post });
    if (distinct(p.sigma!) > 2 ** qq) bad++;
    for (let ch = 0; ch < c; ch++) if (Math.abs(p.sigma![ch] - info.sigmaQ![ch]) > 1e-9 * (1 + Math.abs(info.sigmaQ![ch]))) badMatch++;
    cases++;
  }
  t.equal(bad, 0, `${cases} images: at most 2^qq distinct σ' per image (reference and params)`);
  t.equal(badMatch, 0, "params-from-stats σ' = reference σ'");
  // All channels with the same σ: d_σ = 0 → σ' = m_σ; C = 1 → σ' = σ.
  const x = new Float32Array(8 * 3);
  for (let p = 0; p < 8; p++) for (let ch = 0; ch < 3; ch++) x[p * 3 + ch] = (p % 2 ? 1 : -1) + ch;
  const info: DaqReferenceInfo = { sigma: new Float64Array(3), sigmaQ: new Float64Array(3) };
  daqQuantizeReference(new Float64Array(24), x, 8, 3, { bits: 4, qq: 4, mode: "reference", postRelu: false }, info);
  t.deepEqual([...info.sigmaQ!], [...info.sigma!], "d_σ = 0 → σ' = m_σ (= every σ)");
  const info1: DaqReferenceInfo = { sigma: new Float64Array(1), sigmaQ: new Float64Array(1) };
  daqQuantizeReference(new Float64Array(4), Float32Array.of(1, 2, 4, 8), 4, 1, { bits: 4, qq: 4, mode: "reference", postRelu: false }, info1);
  t.equal(info1.sigmaQ![0], info1.sigma![0], "C = 1 → σ' = σ (torch: NaN)");
});

test("daq σ' ≤ 0 guard: reference mode → μ + |T| / T, int mode → μ / 0; params agree", async (t) => {
  // 15 channels with σ ≈ 0.01 and one with σ ≈ 100: at qq = 4 the small ones snap to σ' ≈ −1 < 0.
  const rng = new Rng(504);
  const c = 16, n = 64, bits = 3;
  for (const post of [false, true]) {
    const x = new Float32Array(n * c);
    const mus = Array.from({ length: c }, () => rng.uniform(1, 3));
    for (let p = 0; p < n; p++) for (let ch = 0; ch < c; ch++) {
      const v = mus[ch] + (ch === c - 1 ? 100 : 0.01) * rng.normal();
      x[p * c + ch] = post ? Math.max(0, v) : v;
    }
    for (const mode of ["reference", "int"] as const) {
      const out = new Float64Array(n * c), info: DaqReferenceInfo = { sigmaQ: new Float64Array(c), mean: new Float64Array(c) };
      daqQuantizeReference(out, x, n, c, { bits, qq: 4, mode, postRelu: post }, info);
      const negs = [...info.sigmaQ!.keys()].filter((ch) => info.sigmaQ![ch] < 0);
      t.ok(negs.length >= 10, `${post ? "post-ReLU" : "signed"}/${mode}: ${negs.length} channels with σ' < 0`);
      const p: DaqActivationParams = { mu: new Float32Array(c), delta: new Float32Array(c), constant: new Uint8Array(c) };
      daqActivationParams(p, stats(x, n, c), { bits, qq: 4, mode, postRelu: post });
      let bad = 0, badP = 0;
      for (const ch of negs) {
        const T = (2 ** (bits - 1) - 0.5) * daqStepMultiplier(bits) * info.sigmaQ![ch]; // < 0
        const want = mode === "int" ? (post ? 0 : info.mean![ch]) : post ? T : info.mean![ch] + Math.abs(T);
        for (let q = 0; q < n; q++) if (Math.abs(out[q * c + ch] - want) > 1e-12 * (1 + Math.abs(want))) bad++;
        if (p.delta[ch] !== 0 || p.constant![ch] !== 1 || Math.abs(p.mu[ch] - want) > 1e-6 * (1 + Math.abs(want))) badP++;
      }
      t.equal(bad, 0, `${post ? "post-ReLU" : "signed"}/${mode}: reference output = ${mode === "int" ? (post ? "0" : "μ") : post ? "T" : "μ + |T|"}`);
      t.equal(badP, 0, "params: delta = 0, constant = 1, mu = that value");
    }
  }
});

test("daq params + code rule + LUT / integer codes reproduce the reference x̂ (except at exact boundaries)", async (t) => {
  const rng = new Rng(505);
  let cases = 0, checked = 0, skipped = 0, ties = 0, badCode = 0, badInt = 0, badLut = 0, badLevel = 0, badWidth = 0;
  for (let it = 0; it < 300; it++) {
    const c = rng.pick([1, 3, 5, 12, 48]), n = rng.pick([1, 2, 9, 64, 300]);
    const post = rng.next() < 0.5;
    const mixed = rng.next() < 0.3;
    const bits: number | Int32Array = mixed ? Int32Array.from({ length: c }, () => rng.int(1, 8)) : rng.int(1, 8);
    const qq = rng.pick([32, 4, 8]);
    const x = image(rng, n, c, post, true);
    const ref = new Float64Array(n * c), info: DaqReferenceInfo = { codes: new Int32Array(n * c) };
    daqQuantizeReference(ref, x, n, c, { bits, qq, mode: "int", postRelu: post }, info);
    const p: DaqActivationParams = { mu: new Float32Array(c), delta: new Float32Array(c) };
    daqActivationParams(p, stats(x, n, c), { bits, qq, mode: "int", postRelu: post });
    const inv = daqInvDelta(new Float32Array(c), p.delta);
    const codes = daqQuantizeCodes(new Uint8Array(n * c), x, n, c, { mu: p.mu, invDelta: inv }, bits, post);
    const bmax = typeof bits === "number" ? bits : Math.max(...bits), K = 2 ** bmax;
    const S = daqLutScale(daqMaxAbsLevel(p, bits, post));
    const lut = daqInt16Lut(new Int16Array(c * K), p, bits, S, post);
    const ic = daqIntegerCodes({ g: new Int16Array(c * K), a: new Float32Array(c) }, p, bits, post);
    cases++;
    for (let ch = 0; ch < c; ch++) {
      const b = typeof bits === "number" ? bits : bits[ch];
      for (let k = 2 ** b; k < K; k++) if (lut[ch * K + k] !== lut[ch * K + 2 ** b - 1] || ic.g[ch * K + k] !== ic.g[ch * K + 2 ** b - 1]) badWidth++;
      const D = p.delta[ch];
      for (let q = 0; q < n; q++) {
        const i = q * c + ch, v = x[i];
        if (D > 0) {
          const tt = post ? v / D + 0.5 : (v - p.mu[ch]) / D;
          if (tt === Math.round(tt)) { ties++; continue; } // exactly on a boundary (e.g. x = μ): half-even differs by design
          // Within f32 rounding of a boundary: μ, Δ, x − μ and 1/Δ each carry ≤ 2^−24 relative error.
          const tolT = 1e-6 * ((Math.abs(v) + Math.abs(p.mu[ch])) / D + Math.abs(tt)) + 1e-9;
          if (Math.abs(tt - Math.round(tt)) < tolT) { skipped++; continue; }
        }
        checked++;
        const k = codes[i];
        if (D > 0 && k !== info.codes![i]) badCode++;
        const want = ref[i], tol = 1e-5 * (Math.abs(want) + (2 ** b) * D) + 1e-30;
        if (Math.abs(p.mu[ch] + ic.a[ch] * ic.g[ch * K + k] - want) > tol) badInt++;
        if (Math.abs(daqLevelValue(p.mu[ch], p.delta[ch], k, b, post) - want) > tol) badLevel++;
        if (Math.abs(lut[ch * K + k] * S - want) > S / 2 + tol) badLut++;
      }
    }
  }
  t.ok(skipped < checked * 5e-3, `${cases} images, ${checked} elements checked, ${skipped} within f32 rounding of a boundary (mostly x ≈ μ in near-constant channels) and ${ties} exact ties skipped`);
  t.equal(badCode, 0, "code rule (f32 floor / half-even) = reference codes");
  t.equal(badInt, 0, "integer form mu + a·g(k) = reference x̂ (f32 params)");
  t.equal(badLevel, 0, "daqLevelValue = reference x̂");
  t.equal(badLut, 0, "LUT·S within S/2 of reference x̂");
  t.equal(badWidth, 0, "mixed precision: LUT and g rows padded with their last value");
  // Signed integer codes are odd; LUT scale honours the overflow contract.
  const p: DaqActivationParams = { mu: Float32Array.of(0.5, -2), delta: Float32Array.of(0.25, 3) };
  const ic = daqIntegerCodes({ g: new Int16Array(32), a: new Float32Array(2) }, p, 4, false);
  t.ok([...ic.g].every((g) => g % 2 !== 0 && Math.abs(g) <= 15), "signed g odd in ±15");
  t.deepEqual([...ic.a], [0.125, 1.5], "a = Δ/2");
  const W = 4608 * 15, S = daqLutScale(daqMaxAbsLevel(p, 4, false), W);
  const lut = daqInt16Lut(new Int16Array(32), p, 4, S, false);
  const m = Math.max(...[...lut].map(Math.abs));
  t.ok(m * W < 2 ** 31 && m >= 0.9 * Math.floor((2 ** 31 - 1) / W), `max|lut| (${m}) · Σ|w| (${W}) < 2^31, range used`);
  throwsCode(t, () => daqInt16Lut(new Int16Array(32), p, 4, S / 1000, false), "E_RANGE", "LUT value beyond int16");
  throwsCode(t, () => daqInt16Lut(new Int16Array(32), p, 4, 0, false), "E_RANGE", "S = 0");
  throwsCode(t, () => daqInt16Lut(new Int16Array(31), p, 4, S, false), "E_SHAPE", "short LUT");
  throwsCode(t, () => daqLutScale(1, 2 ** 32), "E_RANGE", "weight |sum| ≥ 2^31");
});

test("daq params: argument checks", async (t) => {
  const p: DaqActivationParams = { mu: new Float32Array(2), delta: new Float32Array(2) };
  const s = { pixels: 4, mean: [0, 1], std: [1, 1], countPositive: [2, 3] };
  const o = { bits: 4, qq: 32, mode: "int" as const, postRelu: false };
  daqActivationParams(p, s, o);
  t.ok(Math.abs(p.delta[0] - 0.586 * Math.sqrt(4 / 3)) < 1e-6, "signed σ is unbiased: σ_pop·sqrt(N/(N−1))");
  throwsCode(t, () => daqActivationParams(p, s, { ...o, bits: 9 }), "E_BITS", "bits 9");
  throwsCode(t, () => daqActivationParams(p, s, { ...o, bits: Int32Array.of(4, 0) }), "E_BITS", "per-channel bits 0");
  throwsCode(t, () => daqActivationParams(p, s, { ...o, bits: Int32Array.of(4) }), "E_SHAPE", "per-channel bits too short");
  throwsCode(t, () => daqActivationParams(p, s, { ...o, qq: 9 }), "E_BITS", "qq 9");
  throwsCode(t, () => daqActivationParams(p, s, { ...o, mode: "fast" as "int" }), "E_ARGUMENT", "mode");
  throwsCode(t, () => daqActivationParams(p, { ...s, std: [NaN, 1] }, o), "E_RANGE", "NaN std");
  throwsCode(t, () => daqActivationParams(p, { ...s, std: [-1, 1] }, o), "E_RANGE", "negative std");
  throwsCode(t, () => daqActivationParams(p, { ...s, pixels: 0 }, o), "E_SHAPE", "0 pixels");
  throwsCode(t, () => daqActivationParams(p, { pixels: 4, mean: [0, 1], std: [1, 1] }, { ...o, postRelu: true }), "E_ARGUMENT", "post-ReLU without countPositive");
  throwsCode(t, () => daqActivationParams(p, { ...s, countPositive: [5, 0] }, { ...o, postRelu: true }), "E_RANGE", "countPositive > pixels");
  throwsCode(t, () => daqActivationParams({ mu: new Float32Array(1), delta: new Float32Array(2) }, s, o), "E_SHAPE", "short out.mu");
  throwsCode(t, () => daqQuantizeReference(new Float64Array(2), [NaN, 1], 1, 2, { bits: 4, qq: 32, mode: "int", postRelu: false }), "E_RANGE", "NaN input");
  throwsCode(t, () => daqQuantizeReference(new Float64Array(2), [0, 1], 2, 2, { bits: 4, qq: 32, mode: "int", postRelu: false }), "E_SHAPE", "x too short");
  // Post-ReLU σ from mean/std: x = [0, 0, 2, 4] → n = 3, μ = 2, Σx²/n = 20/3, σ = sqrt(8/3).
  const q: DaqActivationParams = { mu: new Float32Array(1), delta: new Float32Array(1), sigma: new Float64Array(1) };
  const st = stats([0, 0, 2, 4], 4, 1);
  daqActivationParams(q, st, { bits: 2, qq: 32, mode: "int", postRelu: true });
  t.ok(Math.abs(q.sigma![0] - Math.sqrt(8 / 3)) < 1e-12 && q.mu[0] === 0, "post-ReLU σ = sqrt(Σx²/n − (Σx/n)²), n = #(x>0) + 1; mu offset 0");
  daqActivationParams(q, { ...st, sum: [6], sumSq: [20] }, { bits: 2, qq: 32, mode: "int", postRelu: true });
  t.ok(Math.abs(q.sigma![0] - Math.sqrt(8 / 3)) < 1e-12, "explicit Σx, Σx² give the same σ");
});

test("daq weights: odd codes in range, OHWI layout, dequant = independent port, σ_W = 0 guard", async (t) => {
  const rng = new Rng(506);
  let bad = 0, badOdd = 0, badDq = 0, badSum = 0, cases = 0;
  for (let it = 0; it < 120; it++) {
    const k = rng.pick([1, 3, 5]), cin = rng.pick([1, 3, 5, 12]), cout = rng.pick([1, 2, 7, 16]), bits = rng.int(1, 8);
    const table = rng.pick(["code", "mse"] as const);
    const w = new Float32Array(k * k * cin * cout);
    const sc = rng.pick([1e-3, 0.05, 1]);
    for (let i = 0; i < w.length; i++) w[i] = sc * rng.normal() + (rng.next() < 0.01 ? 20 * sc : 0);
    const q = daqQuantizeWeights(w, { k, cin, cout }, { bits, stepTable: table });
    cases++;
    // Independent port of Conv2d_Q.forward (f64).
    let s = 0;
    for (const v of w) s += v;
    const m = s / w.length;
    let vv = 0;
    for (const v of w) vv += (v - m) ** 2;
    const sigma = w.length > 1 ? Math.sqrt(vv / (w.length - 1)) : 0;
    const step = daqStepMultiplier(bits, table) * sigma, thr = (2 ** bits / 2 - 0.5) * step;
    if (Math.abs(q.sigma - sigma) > 1e-12 * sigma) bad++;
    const sums = new Float64Array(cout);
    for (let kh = 0, i = 0; kh < k; kh++) for (let kw = 0; kw < k; kw++) for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++, i++) {
      const code = q.codes[((o * k + kh) * k + kw) * cin + c];
      if (code % 2 === 0 || Math.abs(code) > 2 ** bits - 1) badOdd++;
      sums[o] += Math.abs(code);
      let y = (roundHalfEven(w[i] / step + 0.5) - 0.5) * step;
      y = Math.max(-thr, Math.min(thr, y));
      if (Math.abs(q.dequantHWIO[i] - y) > 2 ** -22 * Math.abs(y) || Math.abs(q.wscale * code - q.dequantHWIO[i]) > 2 ** -23 * Math.abs(y)) badDq++;
    }
    if (q.maxAbsSum !== Math.max(...sums)) badSum++;
  }
  t.equal(badOdd, 0, `${cases} tensors: codes odd, |m| ≤ 2^w − 1`);
  t.equal(badDq, 0, "OHWI codes·wscale = HWIO dequant = (round(w/Δ + ½) − ½)·Δ clamped to ±T (f32)");
  t.equal(bad, 0, "σ_W = unbiased std");
  t.equal(badSum, 0, "maxAbsSum = max_o Σ|m|");
  const w4 = daqQuantizeWeights(Float32Array.of(-1, -0.1, 0.1, 1), { k: 1, cin: 2, cout: 2 }, { bits: 4 });
  const D = 0.586 * Math.sqrt((2 * 1 + 2 * 0.01) / 3);
  t.deepEqual([...w4.codes], [-1 * 2 * Math.floor(1 / D) - 1, 2 * Math.floor(0.1 / D) + 1, -(2 * Math.floor(0.1 / D) + 1), 2 * Math.floor(1 / D) + 1],
    "hand example: m = 2⌊w/Δ⌋ + 1, OHWI = [o][c] for 1×1");
  const c0 = daqQuantizeWeights(new Float32Array(18).fill(0.3), { k: 3, cin: 2, cout: 1 }, { bits: 4 });
  t.ok(c0.wscale === 0 && c0.dequantHWIO.every((v) => v === 0) && c0.codes.every((v) => v === 1), "constant tensor (σ_W = 0) → ŵ = 0");
  const one = daqQuantizeWeights(Float32Array.of(0.7), { k: 1, cin: 1, cout: 1 }, { bits: 2 });
  t.ok(one.sigma === 0 && one.dequantHWIO[0] === 0, "single weight → σ_W = 0 → 0");
  const w8 = daqQuantizeWeights(Float32Array.of(-100, 1, -1, 100, 0, 0.5, 2, 3, 4), { k: 3, cin: 1, cout: 1 }, { bits: 8 });
  t.ok(Math.max(...w8.codes.map(Math.abs)) <= 255, "8-bit codes within ±255 (int16)");
  throwsCode(t, () => daqQuantizeWeights(new Float32Array(5), { k: 1, cin: 2, cout: 2 }, { bits: 4 }), "E_SHAPE", "length mismatch");
  throwsCode(t, () => daqQuantizeWeights(Float32Array.of(1, NaN, 0, 1), { k: 1, cin: 2, cout: 2 }, { bits: 4 }), "E_RANGE", "NaN weight");
  throwsCode(t, () => daqQuantizeWeights(new Float32Array(4), { k: 1, cin: 2, cout: 2 }, { bits: 0 }), "E_BITS", "bits 0");
});

test("daq sensitivity: Gaussian distortion, ranking, budget, determinism", async (t) => {
  t.ok(Math.abs(daqDistortion(1, false, "mse") - (1 - 2 / Math.PI)) < 1e-7, "D(1, mse) = 1 − 2/π");
  t.ok(Math.abs(daqDistortion(2, false, "mse") - 0.1188) < 3e-4, "D(2, mse) = 0.1188 (Max 1960, 4-level uniform)");
  let mono = true;
  for (let b = 1; b < 8; b++) mono &&= daqDistortion(b + 1, false) < daqDistortion(b, false);
  t.ok(mono, "D decreasing in b (code table)");
  t.ok(Math.abs(daqDistortion(3, true) - 0.996 ** 2 / 12) < 1e-15, "post-ReLU D = G²/12");

  const rng = new Rng(507);
  const cin = 16, cout = 8, k = 3, n = 64;
  const w = new Float32Array(k * k * cin * cout);
  const wScale = Array.from({ length: cin }, (_, c) => (c === 5 ? 3 : c === 9 ? 0.01 : 0.5 + rng.next()));
  const xScale = Array.from({ length: cin }, (_, c) => (c === 5 ? 10 : c === 9 ? 0.01 : 0.5 + rng.next()));
  for (let i = 0; i < w.length; i++) w[i] = wScale[Math.floor(i / cout) % cin] * rng.normal();
  const acc = new DaqSensitivityAccumulator(cin, false);
  for (let img = 0; img < 3; img++) {
    const x = new Float32Array(n * cin);
    for (let p = 0; p < n; p++) for (let c = 0; c < cin; c++) x[p * cin + c] = rng.uniform(-1, 1) + xScale[c] * rng.normal();
    acc.add(stats(x, n, cin));
  }
  const ls = acc.result();
  t.equal(ls.images, 3, "3 calibration images");
  const s = daqChannelSensitivity(new Float64Array(cin), ls, w, { k, cin, cout });
  const e = daqWeightEnergy(new Float64Array(cin), w, { k, cin, cout });
  t.ok(s.every((v, c) => Math.abs(v - ls.power[c] * e[c]) <= 1e-12 * v), "s_c = P_c·E_c");
  t.ok([...s].every((v, c) => c === 5 || v < s[5]) && [...s].every((v, c) => c === 9 || v > s[9]), "large σ & weights ranks first, tiny last");
  const shape = { k, cin, cout };
  const b1 = daqChannelBits(ls, w, shape, { bits: 4, extraBits: 2, budget: { fraction: 0.25 } });
  const b2 = daqChannelBits(ls, w, shape, { bits: 4, extraBits: 2, budget: { fraction: 0.25 } });
  t.deepEqual([...b1], [...b2], "deterministic");
  t.equal(b1.filter((b) => b === 6).length, 4, "fraction 0.25 of 16 → 4 promoted");
  t.equal(b1[5], 6, "sensitive channel promoted");
  t.equal(b1[9], 4, "insensitive channel not promoted");
  const order = [...s.keys()].sort((i, j) => s[j] - s[i]);
  t.deepEqual(order.slice(0, 4).sort((a, b) => a - b), [...b1.keys()].filter((c) => b1[c] === 6), "the promoted set is the top-4 score");
  for (const A of [4, 4.3, 4.5, 5, 6]) {
    const bb = daqChannelBits(ls, w, shape, { bits: 4, extraBits: 1, budget: { averageBits: A } });
    const avg = bb.reduce((a, b) => a + b, 0) / cin;
    const reach = Math.min(A, 5);
    t.ok(avg <= A + 1e-12 && avg > reach - 1 / cin, `averageBits ${A}: average ${avg} ≤ budget, within one channel of min(A, bits + extra)`);
  }
  const bd = daqChannelBits(ls, w, shape, { bits: 4, extraBits: 1, budget: { averageBits: 4 }, demote: true });
  const avgD = bd.reduce((a, b) => a + b, 0) / cin;
  t.ok(avgD <= 4 && bd[5] === 5 && bd[9] === 3, `demote at average 4: ${[...bd].join(",")} (avg ${avgD})`);
  const obj = (bb: Int32Array) => bb.reduce((a, b, c) => a + s[c] * daqDistortion(b, false), 0);
  t.ok(obj(bd) < obj(new Int32Array(cin).fill(4)), "exchange lowers the modelled output error at equal average");
  const bl = daqChannelBits(ls, w, shape, { bits: 4, extraBits: 1, budget: { averageBits: 3.5 }, demote: true });
  t.ok(bl.reduce((a, b) => a + b, 0) / cin <= 3.5, "budget below base bits: demotions keep the average");
  t.deepEqual([...daqChannelBits(ls, w, shape, { bits: 4, extraBits: 1, budget: { fraction: 0 } })], new Array(cin).fill(4), "fraction 0 → uniform");
  throwsCode(t, () => daqChannelBits(ls, w, shape, { bits: 8, extraBits: 1, budget: { fraction: 0.5 } }), "E_BITS", "8 + 1 bits");
  throwsCode(t, () => daqChannelBits(ls, w, shape, { bits: 4, extraBits: 1, budget: { averageBits: 3 } }), "E_ARGUMENT", "budget below bits without demote");
  throwsCode(t, () => daqChannelBits(ls, w, shape, { bits: 4, extraBits: 3 as 1, budget: { fraction: 0.5 } }), "E_ARGUMENT", "extraBits 3");
  throwsCode(t, () => daqChannelBits(ls, w, { k, cin: 15, cout }, { bits: 4, extraBits: 1, budget: { fraction: 0.5 } }), "E_SHAPE", "cin mismatch");
  // Post-ReLU power uses the positive fraction.
  const pa = new DaqSensitivityAccumulator(1, true).add(stats([0, 0, 2, 4], 4, 1)).result();
  t.ok(Math.abs(pa.power[0] - 0.5 * (8 / 3)) < 1e-12, "post-ReLU P = p·σ²");
});
