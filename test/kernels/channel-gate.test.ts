import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { channelWindowSum, scaleChannels, shift, spaceToDepth } from "../../src/kernels/channel-gate.ts";
import { channelWindowSumRef, scaleChannelsRef, shiftRef, spaceToDepthRef } from "../../src/kernels/ref/channel-gate.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";

test("space_to_depth: WASM = reference bit for bit (u8/i8/f32, blocks 1–4, phases, strides, fill)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(81);
  let bad = 0, cases = 0;
  for (let k = 0; k < 400; k++) {
    const b = rng.pick([1, 2, 2, 3, 4]), ph = rng.int(0, b - 1);
    const h = rng.pick([1, 1, 2, 3, 5]), w = rng.pick([1, 2, 3, 4, 7]);
    const c = rng.pick(CHANNELS), cout = c * b * b;
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0), ys = cout + (rng.next() < 0.3 ? rng.int(1, 4) : 0);
    const kind = rng.pick(["u8", "i8", "f32"] as const);
    const nIn = h * b * w * b, nOut = h * w;
    const make = (n: number) => (kind === "f32" ? new Float32Array(n) : kind === "i8" ? new Int8Array(n) : new Uint8Array(n));
    const x = make((nIn - 1) * xs + c);
    for (let i = 0; i < x.length; i++) x[i] = kind === "f32" ? rng.next() * 200 - 100 : rng.int(kind === "i8" ? -128 : 0, kind === "i8" ? 127 : 255);
    const fill = kind === "f32" ? 0 : kind === "i8" ? rng.int(-128, 127) : rng.int(0, 255);
    const got = make((nOut - 1) * ys + cout).fill(7), want = make(got.length).fill(7);
    spaceToDepth(got, x, { height: h, width: w, channels: c, inStride: xs, outStride: ys }, b, { phase: ph, fill }, rt);
    spaceToDepthRef(want, x, h, w, c, b, ph, xs, ys, fill);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} (${kind} h ${h} w ${w} c ${c} b ${b} ph ${ph}): at ${d} got ${got[d]} want ${want[d]}`);
  }
  t.equal(bad, 0, `${cases} space-to-depth cases bit-exact`);
  throwsCode(t, () => spaceToDepth(new Float32Array(16), new Float32Array(16), { height: 1, width: 1, channels: 4 }, 2, { phase: 2 }, rt), "E_ARGUMENT", "phase ≥ block");
  throwsCode(t, () => spaceToDepth(new Float32Array(16), new Float32Array(16), { height: 1, width: 1, channels: 4 }, 2, { fill: 3 }, rt), "E_ARGUMENT", "f32 fill ≠ 0");
  throwsCode(t, () => spaceToDepth(new Float32Array(15), new Float32Array(16), { height: 1, width: 1, channels: 4 }, 2, {}, rt), "E_SHAPE", "short output");
  throwsCode(t, () => spaceToDepth(new Float32Array(16), new Uint8Array(16) as unknown as Float32Array, { height: 1, width: 1, channels: 4 }, 2, {}, rt), "E_ARGUMENT", "mixed types");
});

test("shift: WASM = reference bit for bit (both signs, u8/i8/f32, strides, fill)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(82);
  let bad = 0, cases = 0;
  for (let k = 0; k < 300; k++) {
    const h = rng.pick([1, 2, 3, 6]), w = rng.pick([1, 2, 5, 8]), c = rng.pick(CHANNELS);
    const by = rng.pick([-3, -2, -1, 1, 2, 3, 7]);
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0), ys = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0);
    const kind = rng.pick(["u8", "i8", "f32"] as const);
    const make = (n: number) => (kind === "f32" ? new Float32Array(n) : kind === "i8" ? new Int8Array(n) : new Uint8Array(n));
    const x = make((h * w - 1) * xs + c);
    for (let i = 0; i < x.length; i++) x[i] = kind === "f32" ? rng.next() * 200 - 100 : rng.int(kind === "i8" ? -128 : 0, kind === "i8" ? 127 : 255);
    const fill = kind === "f32" ? 0 : kind === "i8" ? rng.int(-128, 127) : rng.int(0, 255);
    const got = make((h * w - 1) * ys + c).fill(7), want = make(got.length).fill(7);
    shift(got, x, { height: h, width: w, channels: c, inStride: xs, outStride: ys }, by, { fill }, rt);
    shiftRef(want, x, h, w, c, by, xs, ys, fill);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} (${kind} ${h}×${w} c ${c} by ${by}): at ${d} got ${got[d]} want ${want[d]}`);
  }
  t.equal(bad, 0, `${cases} shift cases bit-exact`);
  throwsCode(t, () => shift(new Float32Array(4), new Float32Array(4), { height: 1, width: 1, channels: 4 }, 0, {}, rt), "E_ARGUMENT", "shift by 0");
});

test("channel window sum (f64) and channel scaling: WASM = reference bit for bit", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(83);
  let bad = 0, cases = 0;
  for (let k = 0; k < 300; k++) {
    const h = rng.pick([1, 2, 5, 9]), w = rng.pick([1, 3, 8, 13]), c = rng.pick(CHANNELS);
    const xs = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0);
    const x = rng.fillF32(new Float32Array((h * w - 1) * xs + c), -1e3, 1e3);
    if (k % 9 === 0) for (const v of [1e30, -1e30, 1e-40, -0]) x[rng.int(0, x.length - 1)] = v;
    const y0 = rng.int(0, h - 1), y1 = rng.int(y0, h), x0 = rng.int(0, w - 1), x1 = rng.int(x0, w);
    const got = new Float64Array(c).fill(5), want = new Float64Array(c);
    channelWindowSum(got, x, { width: w, height: h, channels: c, inStride: xs, y0, y1, x0, x1 }, rt);
    channelWindowSumRef(want, x, w, c, xs, y0, y1, x0, x1);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`sum case ${k}: at ${d} got ${got[d]} want ${want[d]}`);
    const g = rng.fillF32(new Float32Array(c), 0, 1);
    const ys = c + (rng.next() < 0.3 ? rng.int(1, 4) : 0);
    const so = new Float32Array((h * w - 1) * ys + c).fill(3), sw = new Float32Array(so.length).fill(3);
    scaleChannels(so, x, { pixels: h * w, channels: c, inStride: xs, outStride: ys }, g, rt);
    scaleChannelsRef(sw, x, h * w, c, xs, ys, g);
    const e = firstDiff(so, sw);
    if (e >= 0 && ++bad < 4) t.fail(`scale case ${k}: at ${e} got ${so[e]} want ${sw[e]}`);
  }
  t.equal(bad, 0, `${cases} window sums and ${cases} channel scalings bit-exact`);
  throwsCode(t, () => channelWindowSum(new Float64Array(4), new Float32Array(16), { width: 2, height: 2, channels: 4, y0: 1, y1: 3, x0: 0, x1: 2 }, rt), "E_ARGUMENT", "window beyond the tensor");
  throwsCode(t, () => scaleChannels(new Float32Array(8), new Float32Array(8), { pixels: 2, channels: 4 }, new Float32Array(3), rt), "E_SHAPE", "gate length ≠ channels");
});
