import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { upsampleNearest } from "../../src/kernels/upsample.ts";
import { upsampleNearestRef } from "../../src/kernels/ref/upsample.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";

test("upsample nearest: hand example", async (t) => {
  const rt = await testRuntime();
  const y = new Float32Array(8);
  upsampleNearest(y, Float32Array.of(1, 2), { height: 1, width: 2, channels: 1 }, 2, rt);
  t.deepEqual([...y], [1, 1, 2, 2, 1, 1, 2, 2], "1×2 → 2×4");
});

test("upsample nearest: WASM = reference (u8/i8/f32, factors 1..8, strides, odd channels)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(606);
  let bad = 0, cases = 0;
  for (let k = 0; k < 250; k++) {
    const f = rng.pick([1, 2, 2, 3, 4, 8]);
    const c = rng.pick(CHANNELS);
    const h = rng.int(1, 6), w = rng.int(1, 7);
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0), ys = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0);
    const kind = rng.pick(["u8", "i8", "f32"] as const);
    const T = kind === "u8" ? Uint8Array : kind === "i8" ? Int8Array : Float32Array;
    const x = new T((h * w - 1) * xs + c);
    for (let i = 0; i < x.length; i++) x[i] = kind === "f32" ? rng.normal() : rng.int(kind === "i8" ? -128 : 0, kind === "i8" ? 127 : 255);
    const yl = (h * w * f * f - 1) * ys + c;
    const got = new T(yl).fill(9), want = new T(yl).fill(9);
    upsampleNearest(got, x, { height: h, width: w, channels: c, inStride: xs, outStride: ys }, f, rt);
    upsampleNearestRef(want, x, h, w, c, f, xs, ys);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} ${kind} f=${f} c=${c} ${h}x${w} xs=${xs} ys=${ys}: at ${d}`);
  }
  t.equal(bad, 0, `${cases} cases exact`);
});

test("upsample nearest: bad arguments throw LowbitError", async (t) => {
  const rt = await testRuntime();
  throwsCode(t, () => upsampleNearest(new Uint8Array(16), new Uint8Array(4), { height: 2, width: 2, channels: 1 }, 17, rt), "E_ARGUMENT", "factor 17");
  throwsCode(t, () => upsampleNearest(new Uint8Array(15), new Uint8Array(4), { height: 2, width: 2, channels: 1 }, 2, rt), "E_SHAPE", "short output");
  throwsCode(t, () => upsampleNearest(new Uint8Array(16), new Uint8Array(4), { height: 2, width: 2.5, channels: 1 }, 2, rt), "E_SHAPE", "fractional width");
  throwsCode(t, () => upsampleNearest(new Float32Array(16), new Int8Array(4) as unknown as Float32Array, { height: 2, width: 2, channels: 1 }, 2, rt), "E_ARGUMENT", "mixed types");
});
