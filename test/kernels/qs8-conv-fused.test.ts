// The fused conv (concat in, residual add out) against its reference — the unfused sequence — bit for bit, on random
// shapes, channel tails, strides, grids and both weight formats; and its argument checks.
import test from "tape";
import { testRuntime, testBackend } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import { packQs8Qc4wConv, packQs8Qc8wConv, qs8ConvPath, type QOutput } from "../../src/kernels/qs8-conv.ts";
import { qs8ConvFused, type QConcatGrid, type QSegmentArray } from "../../src/kernels/qs8-conv-fused.ts";
import { qs8ConvFusedRef } from "../../src/kernels/ref/qs8-conv-fused.ts";
import { packInt4 } from "../../src/kernels/requant.ts";

function codeRange(bits: number, signed: boolean): [number, number] {
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

function grid8(r: Rng, signed: boolean, relu = false): QOutput {
  const [lo, hi] = codeRange(8, signed);
  const zeroPoint = r.pick([lo, hi, signed ? 0 : 128, r.int(lo, hi), r.int(lo, hi)]);
  if (relu) return { signed, zeroPoint, qmin: zeroPoint, qmax: hi };
  if (r.next() < 0.3) {
    const a = r.int(lo, zeroPoint), b = r.int(zeroPoint, hi);
    return { signed, zeroPoint, qmin: a, qmax: b };
  }
  return { signed, zeroPoint, qmin: lo, qmax: hi };
}

function randomCase(r: Rng, opts: { bits?: number; add?: boolean } = {}) {
  const H = r.pick([1, 2, 3, 4, 5, 7]);
  const W = r.pick([1, 2, 3, 4, 5, 6, 9, 13]);
  const k = r.pick([1, 1, 1, 3, 5]);
  const nSeg = r.int(1, 4);
  const chans = Array.from({ length: nSeg }, () => r.pick([1, 2, 3, 5, 8, 15, 16, 17, 24, 33]));
  const cin = chans.reduce((a, b) => a + b, 0);
  const cout = r.pick([1, 3, 5, 8, 9, 16, 17, 24]);
  const wf = r.next() < 0.7 ? "qc8w" : "qc4w";
  const bits = opts.bits ?? r.pick([8, 8, 8, 7, 6, 4]);
  const signed = r.next() < 0.3;
  const [lo, hi] = codeRange(bits, signed);
  const zCat = r.pick([lo, hi, r.int(lo, hi), r.int(lo, hi)]);
  const narrow = r.next() < 0.3;
  const act: QConcatGrid = { bits, signed, zeroPoint: zCat, qmin: narrow ? r.int(lo, zCat) : lo, qmax: narrow ? r.int(zCat, hi) : hi };
  const px = H * W;
  const segments: QSegmentArray[] = chans.map((channels) => {
    const identity = r.next() < 0.25;
    const stride = channels + (r.next() < 0.3 ? r.int(1, 9) : 0);
    const data = signed ? new Int8Array((px - 1) * stride + channels) : new Uint8Array((px - 1) * stride + channels);
    // Identity segments already hold concat codes; the others any 8-bit code of their own grid.
    const [slo, shi] = identity ? [act.qmin, act.qmax] : codeRange(8, signed);
    for (let i = 0; i < data.length; i++) data[i] = r.int(slo, shi);
    const zeroPoint = r.int(...codeRange(8, signed));
    // m around 1 and far from it (clamping and coarse requantization); some exact halves to hit ties.
    const multiplier = Math.fround(r.next() < 0.2 ? r.pick([0.5, 0.25, 1.5]) : 2 ** r.uniform(-6, 3));
    return { data, stride, channels, zeroPoint, multiplier, identity };
  });
  const n = cout * k * k * cin;
  const weights = new Int8Array(n);
  const [wlo, whi] = wf === "qc8w" ? [-128, 127] : [-8, 7];
  for (let i = 0; i < n; i++) weights[i] = r.int(wlo, whi);
  const bias = new Int32Array(cout);
  for (let o = 0; o < cout; o++) bias[o] = r.int(-20000, 20000);
  const args = { cout, k, cin, bias };
  const layer = wf === "qc8w" ? packQs8Qc8wConv(weights, args) : packQs8Qc4wConv(packInt4(new Uint8Array((n + 1) >> 1), weights), args);
  const mult = new Float32Array(cout);
  const center = -Math.log2(Math.max(1, (hi - lo) * (wf === "qc8w" ? 64 : 4) * Math.sqrt(k * k * cin))) + 7;
  for (let o = 0; o < cout; o++) mult[o] = 2 ** (center + r.uniform(-2, 2));
  const outSigned = r.next() < 0.4;
  const q = grid8(r, outSigned, r.next() < 0.4);
  let add: { residual: Uint8Array | Int8Array; zeroPoint: number; mConv: number; mRes: number; out: QOutput } | undefined;
  if (opts.add ?? r.next() < 0.6) {
    const [rlo, rhi] = codeRange(8, outSigned);
    const residual = outSigned ? new Int8Array(px * cout) : new Uint8Array(px * cout);
    for (let i = 0; i < residual.length; i++) residual[i] = r.int(rlo, rhi);
    add = { residual, zeroPoint: r.int(rlo, rhi), mConv: Math.fround(r.pick([1, 0.5, -1]) * 2 ** r.uniform(-3, 1)),
      mRes: Math.fround(2 ** r.uniform(-3, 1)), out: grid8(r, outSigned, r.next() < 0.3) };
  }
  return { H, W, k, cin, cout, wf, act, segments, weights, bias, layer, mult, q, add };
}

type Case = ReturnType<typeof randomCase>;

function describe(c: Case): string {
  return `${c.wf} ${c.H}×${c.W} k${c.k} [${c.segments.map((s) => `${s.channels}${s.identity ? "=" : ""}/${s.stride}`).join(",")}]→${c.cout} ` +
    `${c.act.bits}b ${c.act.signed ? "s" : "u"}${c.add ? " +add" : ""}`;
}

function check(rt: Awaited<ReturnType<typeof testRuntime>>, c: Case): string | null {
  const Out = c.q.signed ? Int8Array : Uint8Array;
  const got = qs8ConvFused(rt, new Out(c.H * c.W * c.cout), c.layer, c, c.mult, c.q, c.add);
  const want = qs8ConvFusedRef(new Out(c.H * c.W * c.cout), { H: c.H, W: c.W, Cin: c.cin, Cout: c.cout, k: c.k, weights: c.weights, bias: c.bias },
    c.segments.map((s) => ({ ...s, stride: s.stride ?? s.channels })), c.act, c.mult, c.q, c.add);
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return `${describe(c)}: first diff at ${i}: got ${got[i]}, want ${want[i]}`;
  return null;
}

test(`qs8 fused conv (${testBackend()}): concat-in / add-out equals requantize-copies → conv → add, bit for bit`, async (t) => {
  const rt = await testRuntime();
  const r = new Rng(2026);
  let n = 0, adds = 0, relaxed = 0;
  const fails: string[] = [];
  for (let i = 0; i < 400; i++) {
    const c = randomCase(r);
    if (qs8ConvPath(rt, c.layer, c.act, { winograd: false }) !== "i16") relaxed++;
    const e = check(rt, c);
    if (e) fails.push(e);
    n++;
    if (c.add) adds++;
  }
  t.deepEqual(fails.slice(0, 3), [], `${n} random cases (${adds} with the residual add, ${relaxed} on a relaxed loop)`);
  if (testBackend() === "relaxed") t.ok(relaxed > 0, "the relaxed ≤7-bit loops were exercised");
});

test(`qs8 fused conv (${testBackend()}): wide 64-channel segments and 1×1 layers (the RDN shapes), with and without add`, async (t) => {
  const rt = await testRuntime();
  const r = new Rng(64);
  const fails: string[] = [];
  for (let i = 0; i < 12; i++) {
    // Grids from a random case; the layer and segments are the wide ones: 2 or 10 segments of 64 channels, 1×1.
    const c = randomCase(r, { bits: i % 3 === 2 ? 4 : 8, add: i % 2 === 0 });
    const nSeg = i % 4 === 3 ? 10 : 2;
    const px = 6 * 11;
    const segments = Array.from({ length: nSeg }, (_, j) => {
      const data = c.act.signed ? new Int8Array(px * 64) : new Uint8Array(px * 64);
      const [lo, hi] = j === 0 ? [c.act.qmin, c.act.qmax] : codeRange(8, c.act.signed);
      for (let q = 0; q < data.length; q++) data[q] = r.int(lo, hi);
      return { data, stride: 64, channels: 64, zeroPoint: r.int(...codeRange(8, c.act.signed)), multiplier: Math.fround(2 ** r.uniform(-3, 1)), identity: j === 0 };
    });
    const cout = 64, cin = 64 * nSeg;
    const weights = new Int8Array(cout * cin);
    for (let q = 0; q < weights.length; q++) weights[q] = r.int(-128, 127);
    const bias = new Int32Array(cout).map(() => r.int(-9999, 9999));
    const layer = packQs8Qc8wConv(weights, { cout, k: 1, cin, bias });
    const mult = new Float32Array(cout).map(() => 2 ** r.uniform(-14, -9));
    let add = c.add;
    if (add) {
      const residual = c.q.signed ? new Int8Array(px * cout) : new Uint8Array(px * cout);
      for (let q = 0; q < residual.length; q++) residual[q] = r.int(...codeRange(8, c.q.signed));
      add = { ...add, residual };
    }
    const e = check(rt, { ...c, H: 6, W: 11, k: 1, cin, cout, wf: "qc8w", segments, weights, bias, layer, mult, add });
    if (e) fails.push(e);
  }
  t.deepEqual(fails, [], "12 wide cases");
});

test(`qs8 fused conv (${testBackend()}): bad arguments throw LowbitError before any kernel call`, async (t) => {
  const rt = await testRuntime();
  const r = new Rng(5);
  const c = randomCase(r, { bits: 8, add: true });
  const Out = c.q.signed ? Int8Array : Uint8Array;
  const out = () => new Out(c.H * c.W * c.cout);
  const code = (f: () => unknown): string => {
    try {
      f();
      return "no error";
    } catch (e) {
      return e instanceof LowbitError ? e.code : `not a LowbitError: ${e}`;
    }
  };
  t.equal(code(() => qs8ConvFused(rt, out(), c.layer, { ...c, segments: c.segments.slice(1).concat([{ ...c.segments[0], channels: c.segments[0].channels + 1 }]) }, c.mult, c.q, c.add)),
    "E_SHAPE", "segment channels that do not sum to cin");
  t.equal(code(() => qs8ConvFused(rt, out(), c.layer, { ...c, segments: [{ ...c.segments[0], identity: false, multiplier: NaN }, ...c.segments.slice(1)] }, c.mult, c.q, c.add)),
    "E_RANGE", "a NaN segment multiplier");
  t.equal(code(() => qs8ConvFused(rt, out(), c.layer, { ...c, segments: [{ ...c.segments[0], data: c.segments[0].data.subarray(1) }, ...c.segments.slice(1)] }, c.mult, c.q, c.add)),
    "E_SHAPE", "a truncated segment");
  t.equal(code(() => qs8ConvFused(rt, out(), c.layer, { ...c, act: { ...c.act, qmin: c.act.zeroPoint + 1, qmax: c.act.zeroPoint + 1 } }, c.mult, c.q, c.add)),
    "E_RANGE", "a concat zero point outside its [qmin, qmax]");
  t.equal(code(() => qs8ConvFused(rt, out(), c.layer, c, c.mult, c.q, { ...c.add!, out: { ...c.add!.out, signed: !c.q.signed } })),
    "E_ARGUMENT", "an add whose output signedness differs from the conv's");
  t.equal(code(() => qs8ConvFused(rt, out(), c.layer, c, c.mult, c.q, { ...c.add!, mRes: Infinity })), "E_RANGE", "an infinite add multiplier");
  t.equal(code(() => qs8ConvFused(rt, out(), c.layer, c, c.mult, c.q, { ...c.add!, residual: c.add!.residual.subarray(1) })), "E_SHAPE", "a short residual");
});
