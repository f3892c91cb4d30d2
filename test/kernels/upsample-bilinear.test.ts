import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { upsampleBilinear } from "../../src/kernels/upsample.ts";
import { upsampleBilinearRef } from "../../src/kernels/ref/upsample.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";

type Mode = "half_pixel" | "asymmetric";

/** Independent f64 oracle written from the ONNX Resize (linear) definition, not from the kernel's fractions. */
function oracle(x: ArrayLike<number>, h: number, w: number, c: number, f: number, mode: Mode, xs: number): Float64Array {
  const out = new Float64Array(h * f * w * f * c);
  const src = (o: number, n: number) => {
    let s = mode === "half_pixel" ? (o + 0.5) / f - 0.5 : o / f;
    s = Math.min(Math.max(s, 0), n - 1);
    const i0 = Math.floor(s);
    return [i0, Math.min(i0 + 1, n - 1), s - i0];
  };
  for (let oy = 0; oy < h * f; oy++) {
    const [y0, y1, ty] = src(oy, h);
    for (let ox = 0; ox < w * f; ox++) {
      const [x0, x1, tx] = src(ox, w);
      for (let ch = 0; ch < c; ch++) {
        const v = (yy: number, xx: number) => x[(yy * w + xx) * xs + ch];
        out[(oy * w * f + ox) * c + ch] = (1 - ty) * ((1 - tx) * v(y0, x0) + tx * v(y0, x1)) + ty * ((1 - tx) * v(y1, x0) + tx * v(y1, x1));
      }
    }
  }
  return out;
}

test("upsample bilinear: hand examples (half_pixel and asymmetric)", async (t) => {
  const rt = await testRuntime();
  const y = new Float32Array(8);
  upsampleBilinear(y, Float32Array.of(0, 4), { height: 1, width: 2, channels: 1 }, 2, "half_pixel", rt);
  t.deepEqual([...y.subarray(0, 4)], [0, 1, 3, 4], "half_pixel 1×2 → first row 0 1 3 4 (edges clamp)");
  const y8 = new Uint8Array(16);
  upsampleBilinear(y8, Uint8Array.of(0, 4), { height: 1, width: 2, channels: 1 }, 2, "asymmetric", rt);
  t.deepEqual([...y8.subarray(0, 4)], [0, 2, 4, 4], "asymmetric 1×2 → 0 2 4 4");
});

test("upsample bilinear: WASM = reference bit for bit, and within rounding of an f64 oracle (u8/f32, factors 1..8, both modes, strides)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(2026);
  let bad = 0, cases = 0, worstF = 0, worstQ = 0;
  for (let k = 0; k < 300; k++) {
    const f = rng.pick([1, 2, 2, 3, 4, 8]);
    const mode = rng.pick(["half_pixel", "asymmetric"] as const);
    const c = rng.pick(CHANNELS);
    const h = rng.int(1, 6), w = rng.int(1, 7);
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0), ys = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0);
    const f32 = rng.next() < 0.5;
    const T = f32 ? Float32Array : Uint8Array;
    const x = new T((h * w - 1) * xs + c);
    for (let i = 0; i < x.length; i++) x[i] = f32 ? rng.normal() * 10 : rng.next() < 0.1 ? rng.pick([0, 255]) : rng.int(0, 255);
    const yl = (h * w * f * f - 1) * ys + c;
    const got = new T(yl).fill(7), want = new T(yl).fill(7);
    upsampleBilinear(got, x, { height: h, width: w, channels: c, inStride: xs, outStride: ys }, f, mode, rt);
    upsampleBilinearRef(want, x, h, w, c, f, mode === "half_pixel" ? 0 : 1, xs, ys);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} ${f32 ? "f32" : "u8"} ${mode} f=${f} c=${c} ${h}x${w} xs=${xs} ys=${ys}: at ${d}`);
    const o = oracle(x, h, w, c, f, mode, xs);
    for (let p = 0; p < h * f * w * f; p++) {
      for (let ch = 0; ch < c; ch++) {
        const e = Math.abs(got[p * ys + ch] - o[p * c + ch]);
        if (f32) worstF = Math.max(worstF, e / (1 + Math.abs(o[p * c + ch])));
        else worstQ = Math.max(worstQ, e);
      }
    }
    // Padding between strided output pixels is untouched.
    if (ys > c && got[c] !== 7 && !(f32 && Number.isNaN(got[c]))) { if (++bad < 4) t.fail(`case ${k}: wrote into the stride gap`); }
  }
  t.equal(bad, 0, `${cases} cases bit-exact vs the reference`);
  t.ok(worstF < 4e-6, `f32 within 4e-6 (relative) of the f64 oracle (worst ${worstF.toExponential(2)})`);
  t.ok(worstQ <= 0.5 + 1 / 256, `8-bit codes within rounding of the f64 oracle (worst ${worstQ.toFixed(4)})`);
});

test("upsample bilinear: translation-equivariant for integer factors (a crop with a 1-pixel margin stitches exactly)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(77);
  let bad = 0;
  for (let k = 0; k < 60; k++) {
    const f = rng.pick([2, 3, 4]), mode = rng.pick(["half_pixel", "asymmetric"] as const), c = rng.pick([1, 3, 8]);
    const h = rng.int(6, 12), w = rng.int(3, 6);
    const x = new Float32Array(h * w * c).map(() => rng.normal());
    const full = new Float32Array(h * f * w * f * c);
    upsampleBilinear(full, x, { height: h, width: w, channels: c }, f, mode, rt);
    const r0 = rng.int(1, 3), r1 = h - rng.int(1, 3);
    const crop = x.slice(r0 * w * c, r1 * w * c);
    const part = new Float32Array((r1 - r0) * f * w * f * c);
    upsampleBilinear(part, crop, { height: r1 - r0, width: w, channels: c }, f, mode, rt);
    // Rows of the crop's output away from its cut edges (one input row of margin) equal the full output.
    const rowLen = w * f * c;
    for (let oy = f; oy < (r1 - r0 - 1) * f; oy++) {
      const a = part.subarray(oy * rowLen, (oy + 1) * rowLen), b = full.subarray((oy + r0 * f) * rowLen, (oy + r0 * f + 1) * rowLen);
      if (firstDiff(a, b) >= 0) bad++;
    }
  }
  t.equal(bad, 0, "interior rows of 60 crops identical to the whole image's");
});

test("upsample bilinear: bad arguments throw LowbitError", async (t) => {
  const rt = await testRuntime();
  throwsCode(t, () => upsampleBilinear(new Uint8Array(16), new Uint8Array(4), { height: 2, width: 2, channels: 1 }, 17, "half_pixel", rt), "E_ARGUMENT", "factor 17");
  throwsCode(t, () => upsampleBilinear(new Uint8Array(15), new Uint8Array(4), { height: 2, width: 2, channels: 1 }, 2, "half_pixel", rt), "E_SHAPE", "short output");
  throwsCode(t, () => upsampleBilinear(new Uint8Array(16), new Uint8Array(4), { height: 2, width: 2, channels: 1 }, 2, "align_corners" as "half_pixel", rt), "E_ARGUMENT", "align_corners mode");
  throwsCode(t, () => upsampleBilinear(new Int8Array(16) as unknown as Uint8Array, new Int8Array(4) as unknown as Uint8Array, { height: 2, width: 2, channels: 1 }, 2, "half_pixel", rt), "E_ARGUMENT", "signed codes");
});
