import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { concat, concatF32, requantizeAt, copyAt } from "../../src/kernels/concat.ts";
import { concatRef, copyRef, type ConcatInputRef } from "../../src/kernels/ref/concat.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";

test("concat: WASM = reference bit for bit (copy and requantize paths, strides, u8/i8)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(31);
  let bad = 0, cases = 0, copies = 0;
  for (let k = 0; k < 300; k++) {
    const n = rng.pick([1, 1, 4, 25, 70]);
    const signed = rng.next() < 0.5;
    const C = signed ? Int8Array : Uint8Array;
    const lo = signed ? -128 : 0, hi = signed ? 127 : 255;
    const so = Math.fround(Math.exp(rng.uniform(-5, 0))), zo = rng.int(lo, hi);
    const inputs: ConcatInputRef[] = [];
    for (let j = rng.int(1, 4); j > 0; j--) {
      const ch = rng.pick(CHANNELS), st = ch + (rng.next() < 0.3 ? rng.int(1, 7) : 0);
      const same = rng.next() < 0.35;
      if (same) copies++;
      inputs.push({
        data: rng.fillInt8(new C((n - 1) * st + ch) as Int8Array, lo, hi), channels: ch, stride: st,
        scale: same ? so : Math.fround(Math.exp(rng.uniform(-5, 0))), zeroPoint: same ? zo : rng.int(lo, hi),
      });
    }
    const ct = inputs.reduce((s, i) => s + i.channels, 0);
    const ys = ct + (rng.next() < 0.3 ? rng.int(1, 5) : 0);
    const got = new C((n - 1) * ys + ct).fill(5), want = new C(got.length).fill(5);
    concat(got, inputs, n, { scale: so, zeroPoint: zo, stride: ys }, rt);
    concatRef(want, inputs, n, ys, so, zo, lo, hi);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k}: at ${d} got ${got[d]} want ${want[d]}`);
  }
  t.equal(bad, 0, `${cases} concats bit-exact (${copies} inputs on the copy path)`);
});

test("concat: requantize to a sub-range output and signed → unsigned; f32 concat; copies at arena offsets", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(8);
  const a = rt.arena, m = a.mark();
  const n = 37, c = 21;
  const x = rng.fillInt8(new Int8Array(n * c));
  const px = a.put(x), py = a.alloc(n * 24);
  a.u8.fill(0xee, py, py + n * 24);
  requantizeAt(rt, { x: px, y: py, pixels: n, channels: c, yStride: 24, signed: true, inScale: 0.05, inZeroPoint: -3, outScale: 0.1, outZeroPoint: 7, qmin: 0, qmax: 15 });
  const want = new Uint8Array(n * 24).fill(0xee);
  const f = Math.fround;
  const { roundMagic, clampNanLo } = await import("../../src/kernels/ref/quantize.ts");
  for (let p = 0; p < n; p++) for (let i = 0; i < c; i++) want[p * 24 + i] = roundMagic(clampNanLo(f(f(x[p * c + i] + 3) * f(f(0.05) / f(0.1))), -7, 8)) + 7;
  t.equal(firstDiff(a.u8.subarray(py, py + (n - 1) * 24 + c), want.subarray(0, (n - 1) * 24 + c)), -1, "i8 → 4-bit u8 slice, gaps untouched");
  // copy path at offsets, 4-byte elements
  const xf = rng.fillF32(new Float32Array(n * 3), -9, 9);
  const pf = a.put(xf), pg = a.alloc(n * 8 * 4);
  copyAt(rt, { x: pf, y: pg + 4 * 5, pixels: n, channels: 3, yStride: 8, elemBytes: 4 });
  const back = new Float32Array(a.memory.buffer, pg, n * 8);
  let ok = true;
  for (let p = 0; p < n; p++) for (let i = 0; i < 3; i++) ok &&= back[p * 8 + 5 + i] === xf[p * 3 + i];
  t.ok(ok, "x32 copy into channel slice 5..7 of an 8-channel tensor");
  a.release(m);
  // f32 concat vs reference
  let bad = 0;
  for (let k = 0; k < 60; k++) {
    const np = rng.pick([1, 9, 40]);
    const parts = Array.from({ length: rng.int(1, 4) }, () => {
      const ch = rng.pick(CHANNELS), st = ch + rng.int(0, 3);
      return { data: rng.fillF32(new Float32Array((np - 1) * st + ch), -100, 100), channels: ch, stride: st };
    });
    const ct = parts.reduce((s, p) => s + p.channels, 0);
    const got = new Float32Array(np * ct), want = new Float32Array(np * ct);
    concatF32(got, parts, np, undefined, rt);
    let off = 0;
    for (const p of parts) { copyRef(want.subarray(off), p.data, np, p.channels, p.stride, ct); off += p.channels; }
    if (firstDiff(got, want) >= 0) bad++;
  }
  t.equal(bad, 0, "60 f32 concats exact");
});

test("concat: bad arguments throw LowbitError", async (t) => {
  const rt = await testRuntime();
  const out = new Uint8Array(10);
  const inp = { data: new Uint8Array(4), channels: 2, scale: 1, zeroPoint: 0 };
  throwsCode(t, () => concat(out, [], 2, { scale: 1, zeroPoint: 0 }, rt), "E_ARGUMENT", "no inputs");
  throwsCode(t, () => concat(out, [inp, { ...inp, channels: 0 }], 2, { scale: 1, zeroPoint: 0 }, rt), "E_SHAPE", "zero-channel input");
  throwsCode(t, () => concat(out, [inp, inp], 3, { scale: 1, zeroPoint: 0 }, rt), "E_SHAPE", "inputs too short");
  throwsCode(t, () => concat(out, [inp], 2, { scale: 1, zeroPoint: 0, stride: 1 }, rt), "E_SHAPE", "output stride < total channels");
  throwsCode(t, () => concat(out, [{ ...inp, scale: -1 }], 2, { scale: 1, zeroPoint: 0 }, rt), "E_RANGE", "negative input scale");
  throwsCode(t, () => concat(out, [{ ...inp, zeroPoint: 256 }], 2, { scale: 1, zeroPoint: 0 }, rt), "E_RANGE", "input zero point 256");
  throwsCode(t, () => concat(new Int8Array(10), [inp], 2, { scale: 1, zeroPoint: 200 }, rt), "E_RANGE", "i8 output zero point 200");
  throwsCode(t, () => concatF32(new Float32Array(4), [{ data: new Float32Array(4), channels: 2 }, { data: new Float32Array(4), channels: 2 }], 2, undefined, rt), "E_SHAPE", "f32 out too short");
  throwsCode(t, () => copyAt(rt, { x: 0, y: 0, pixels: 1, channels: 1, elemBytes: 2 as 1 }), "E_ARGUMENT", "elemBytes 2");
});
