// Elementwise gradient kernels (assembly/grad/f32-grad-elementwise.ts) vs the references
// (src/kernels/ref/grad-elementwise.ts): per-element outputs bit for bit (Object.is), the
// reductions within 40·2^-24·Σ|terms| (per-lane f32 partials of ≤ 32 terms, then f64),
// plus finite-difference checks of the fake-quant / affine / loss gradients.
import test from "tape";
import {
  f32ChannelAffine, f32ChannelAffineBackward, f32FakeQuant, f32FakeQuantBackward, f32FakeQuantPerChannel, f32FakeQuantPerChannelBackward, f32L1Loss, f32MseLoss, f32ReluBackward,
  f32SpaceToDepth, f32UpsampleNearestBackward, fakeQuantStep,
} from "../../src/kernels/grad-elementwise.ts";
import { depthToSpaceAt } from "../../src/kernels/depth-to-space.ts";
import { upsampleNearestAt } from "../../src/kernels/upsample.ts";
import {
  channelAffineBackwardRef, channelAffineRef, fakeQuantBackwardRef, fakeQuantPerChannelBackwardRef, fakeQuantPerChannelRef, fakeQuantRef, l1LossRef, mseLossRef, reluBackwardRef,
  spaceToDepthRef, upsampleNearestBackwardRef, type Flat,
} from "../../src/kernels/ref/grad-elementwise.ts";
import type { Runtime } from "../../src/runtime/runtime.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";

const U = 2 ** -24;
const TOL = 40 * U;
const span = (n: number, c: number, s: number): number => (n === 0 ? 0 : (n - 1) * s + c);

/** A strided random tensor in the arena and on the host. */
interface T { p: number; host: Float32Array; stride: number }
function rand(rt: Runtime, rng: Rng, n: number, c: number, stride: number, lo = -1, hi = 1): T {
  const host = rng.fillF32(new Float32Array(Math.max(1, span(n, c, stride))), lo, hi);
  return { p: rt.arena.put(host), host, stride };
}
function readBack(rt: Runtime, t: T): Float32Array {
  const out = new Float32Array(t.host.length);
  rt.arena.read(t.p, out);
  return out;
}
const flat = (t: T, data = t.host): Flat => ({ data, stride: t.stride });
const strideFor = (rng: Rng, c: number): number => c + (rng.next() < 0.35 ? rng.int(1, 7) : 0);
const PIXELS = [1, 2, 3, 5, 8, 17, 40, 64, 129];

function withMark<R>(rt: Runtime, f: () => R): R {
  const m = rt.arena.mark();
  try { return f(); } finally { rt.arena.release(m); }
}

test("grad elementwise: relu backward bit-exact (strides, in place, zeros/negatives)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0x7e1);
  let bad = 0;
  for (let it = 0; it < 150; it++) {
    const n = rng.pick(PIXELS), c = rng.pick(CHANNELS);
    const inPlace = rng.next() < 0.3;
    withMark(rt, () => {
      const dy = rand(rt, rng, n, c, strideFor(rng, c));
      const y = rand(rt, rng, n, c, strideFor(rng, c));
      for (let i = 0; i < y.host.length; i += 3) y.host[i] = 0; // exact zeros: gradient blocked (y > 0 is false)
      rt.arena.write(y.p, y.host);
      const dx = inPlace ? dy : rand(rt, rng, n, c, strideFor(rng, c));
      const want = dx.host.slice();
      reluBackwardRef(flat(dy), flat(y), flat(dx, want), n, c);
      f32ReluBackward(rt, { dy: dy.p, dyStride: dy.stride, y: y.p, yStride: y.stride, dx: dx.p, dxStride: dx.stride, pixels: n, channels: c });
      const d = firstDiff(readBack(rt, dx), want);
      if (d >= 0 && ++bad <= 3) t.fail(`n${n} c${c}${inPlace ? " in place" : ""}: first difference at ${d}`);
    });
  }
  t.equal(bad, 0, "150 random cases bit-exact");
});

test("grad elementwise: fake quant forward bit-exact, on the grid, ties away from zero", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0xfa4e);
  let bad = 0;
  for (let it = 0; it < 150; it++) {
    const n = rng.pick(PIXELS), c = rng.pick(CHANNELS);
    const levels = rng.pick([2, 4, 16, 256, 65536]);
    const l = rng.uniform(-2, 0.5), u = l + rng.uniform(0.01, 3);
    withMark(rt, () => {
      const x = rand(rt, rng, n, c, strideFor(rng, c), l - 1, u + 1);
      const y = rng.next() < 0.3 ? x : rand(rt, rng, n, c, strideFor(rng, c));
      const want = y.host.slice();
      fakeQuantRef(flat(x), flat(y, want), n, c, l, u, levels);
      f32FakeQuant(rt, { x: x.p, xStride: x.stride, y: y.p, yStride: y.stride, pixels: n, channels: c, l, u, levels });
      const d = firstDiff(readBack(rt, y), want);
      if (d >= 0 && ++bad <= 3) t.fail(`n${n} c${c} levels ${levels} [${l}, ${u}]: first difference at ${d}`);
    });
  }
  t.equal(bad, 0, "150 random cases bit-exact");
  // Known values: 4 levels on [0, 3] (s = 1): 0.5 → 1, 1.49 → 1, 1.5 → 2, −7 → 0, 9 → 3, 2.5 → 3.
  withMark(rt, () => {
    const xs = Float32Array.of(0.5, 1.49, 1.5, -7, 9, 2.5, 3, 0);
    const p = rt.arena.put(xs);
    f32FakeQuant(rt, { x: p, y: p, pixels: 1, channels: xs.length, l: 0, u: 3, levels: 4 });
    const got = new Float32Array(xs.length);
    rt.arena.read(p, got);
    t.deepEqual(Array.from(got), [1, 1, 2, 0, 3, 3, 3, 0], "half away from zero; clipped to [l, u]");
  });
});

test("grad elementwise: fake quant backward (STE dx bit-exact; dl/du vs f64 and vs finite differences)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0xfa4eb);
  let bad = 0;
  for (let it = 0; it < 150; it++) {
    const n = rng.pick(PIXELS), c = rng.pick(CHANNELS);
    const levels = rng.pick([2, 4, 16, 256]);
    const l = rng.uniform(-2, 0.5), u = l + rng.uniform(0.01, 3);
    const mode = rng.pick(["dx", "inplace", "none"] as const);
    withMark(rt, () => {
      const x = rand(rt, rng, n, c, strideFor(rng, c), l - 0.5, u + 0.5);
      const dy = rand(rt, rng, n, c, strideFor(rng, c));
      const dx = mode === "dx" ? rand(rt, rng, n, c, strideFor(rng, c)) : mode === "inplace" ? dy : null;
      const want = dx ? dx.host.slice() : null;
      const ref = fakeQuantBackwardRef(flat(x), flat(dy), dx ? flat(dx, want!) : null, n, c, l, u, levels);
      const got = f32FakeQuantBackward(rt, { x: x.p, xStride: x.stride, dy: dy.p, dyStride: dy.stride, dx: dx?.p ?? null, dxStride: dx?.stride, pixels: n, channels: c, l, u, levels });
      let err = "";
      if (dx) {
        const d = firstDiff(readBack(rt, dx), want!);
        if (d >= 0) err += `dx differs at ${d}; `;
      }
      if (!(Math.abs(got.dl - ref.dl) <= TOL * ref.mag)) err += `dl ${got.dl} vs ${ref.dl}; `;
      if (!(Math.abs(got.du - ref.du) <= TOL * ref.mag)) err += `du ${got.du} vs ${ref.du}; `;
      if (err && ++bad <= 3) t.fail(`n${n} c${c} levels ${levels} ${mode}: ${err}`);
    });
  }
  t.equal(bad, 0, "150 random cases");

  // Finite differences of the LSQ surrogate. LSQ differentiates q = r·s + l with round's STE
  // inside the chain through t but r's value kept: that is the exact derivative of
  //   q̃(l, u) = (t(l, u) + c)·s(l, u) + l = x + c·(u − l)/n   (inside, c = r − t frozen at (l, u)),
  //   q̃ = l (x < l), q̃ = u (x > u),
  // so central differences of L̃ = Σ dy·q̃ check dl/du, their signs, the 1/n and the clip branches.
  let fdBad = 0;
  for (let it = 0; it < 20; it++) {
    const n = 16, c = 5, levels = rng.pick([4, 16]);
    const l = rng.uniform(-1, 0), u = l + rng.uniform(0.5, 2);
    const s = fakeQuantStep(l, u, levels);
    const xh = new Float64Array(n * c), dyh = new Float64Array(n * c), frozen = new Float64Array(n * c);
    for (let i = 0; i < xh.length; i++) {
      let v: number;
      do { v = Math.fround(rng.uniform(l - 0.6, u + 0.6)); } while (Math.abs(v - l) < 0.02 || Math.abs(v - u) < 0.02);
      xh[i] = v;
      dyh[i] = Math.fround(rng.uniform(-1, 1));
      const tt = Math.fround(Math.fround(v - Math.fround(l)) / s);
      const r = Math.trunc(tt) + (tt - Math.trunc(tt) >= 0.5 ? 1 : 0);
      frozen[i] = r - tt;
    }
    const loss = (L: number, Uu: number): number => xh.reduce((acc, v, i) =>
      acc + dyh[i] * (v < l ? L : v > u ? Uu : v + frozen[i] * (Uu - L) / (levels - 1)), 0);
    const eps = 1e-6;
    const fdl = (loss(l + eps, u) - loss(l - eps, u)) / (2 * eps);
    const fdu = (loss(l, u + eps) - loss(l, u - eps)) / (2 * eps);
    const got = withMark(rt, () => {
      const px = rt.arena.put(Float32Array.from(xh)), pdy = rt.arena.put(Float32Array.from(dyh));
      return f32FakeQuantBackward(rt, { x: px, dy: pdy, pixels: n, channels: c, l, u, levels });
    });
    // L̃ is linear in (l, u): the differences are exact up to f64 rounding; the kernel adds f32 rounding.
    const tol = 1e-5;
    if (!(Math.abs(got.dl - fdl) <= tol && Math.abs(got.du - fdu) <= tol) && ++fdBad <= 3) {
      t.fail(`levels ${levels} [${l}, ${u}]: dl ${got.dl} vs fd ${fdl}, du ${got.du} vs fd ${fdu}`);
    }
  }
  t.equal(fdBad, 0, "20 finite-difference checks of dl, du");
});

test("grad elementwise: per-channel fake quant forward bit-exact, backward vs f64 (accumulating dl/du)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0xfa4ec);
  let bad = 0;
  for (let it = 0; it < 150; it++) {
    const n = rng.pick(PIXELS), c = rng.pick(CHANNELS);
    const levels = rng.pick([2, 4, 16, 256]);
    const mode = rng.pick(["dx", "inplace", "none"] as const);
    withMark(rt, () => {
      const l = new Float32Array(c), u = new Float32Array(c);
      for (let i = 0; i < c; i++) { l[i] = rng.uniform(-2, 0.5); u[i] = l[i] + rng.uniform(0.01, 3); }
      const pl = rt.arena.put(l), pu = rt.arena.put(u);
      const x = rand(rt, rng, n, c, strideFor(rng, c), -2.5, 3.5);
      const y = rand(rt, rng, n, c, strideFor(rng, c));
      const wantY = y.host.slice();
      fakeQuantPerChannelRef(flat(x), flat(y, wantY), n, c, l, u, levels);
      f32FakeQuantPerChannel(rt, { x: x.p, xStride: x.stride, y: y.p, yStride: y.stride, pixels: n, channels: c, l: pl, u: pu, levels });
      let err = firstDiff(readBack(rt, y), wantY) >= 0 ? "forward differs; " : "";
      const dy = rand(rt, rng, n, c, strideFor(rng, c));
      const dx = mode === "dx" ? rand(rt, rng, n, c, strideFor(rng, c)) : mode === "inplace" ? dy : null;
      const wantDx = dx ? dx.host.slice() : null;
      const dl0 = rng.fillF32(new Float32Array(c), -1, 1), du0 = rng.fillF32(new Float32Array(c), -1, 1);
      const pdl = rt.arena.put(dl0), pdu = rt.arena.put(du0);
      const dl = Float64Array.from(dl0), du = Float64Array.from(du0), mag = new Float64Array(c);
      fakeQuantPerChannelBackwardRef(flat(x), flat(dy), dx ? flat(dx, wantDx!) : null, n, c, l, u, levels, dl, du, mag);
      f32FakeQuantPerChannelBackward(rt, { x: x.p, xStride: x.stride, dy: dy.p, dyStride: dy.stride, dx: dx?.p ?? null, dxStride: dx?.stride,
        pixels: n, channels: c, l: pl, u: pu, levels, dl: pdl, du: pdu });
      if (dx && firstDiff(readBack(rt, dx), wantDx!) >= 0) err += "dx differs; ";
      const gl = new Float32Array(c), gu = new Float32Array(c);
      rt.arena.read(pdl, gl); rt.arena.read(pdu, gu);
      for (let i = 0; i < c; i++) {
        if (!(Math.abs(gl[i] - dl[i]) <= TOL * mag[i])) { err += `dl[${i}] ${gl[i]} vs ${dl[i]}; `; break; }
        if (!(Math.abs(gu[i] - du[i]) <= TOL * mag[i])) { err += `du[${i}] ${gu[i]} vs ${du[i]}; `; break; }
      }
      if (err && ++bad <= 3) t.fail(`n${n} c${c} levels ${levels} ${mode}: ${err}`);
    });
  }
  t.equal(bad, 0, "150 random cases");
  // One channel per-channel = per tensor (same grid, same gradients).
  withMark(rt, () => {
    const n = 33, c = 1;
    const x = rand(rt, rng, n, c, c, -1.5, 1.5), dy = rand(rt, rng, n, c, c);
    const pl = rt.arena.put(Float32Array.of(-0.7)), pu = rt.arena.put(Float32Array.of(0.9)), pdl = rt.arena.put(new Float32Array(1)), pdu = rt.arena.put(new Float32Array(1));
    const y1 = rand(rt, rng, n, c, c), y2 = rand(rt, rng, n, c, c);
    f32FakeQuant(rt, { x: x.p, y: y1.p, pixels: n, channels: c, l: -0.7, u: 0.9, levels: 8 });
    f32FakeQuantPerChannel(rt, { x: x.p, y: y2.p, pixels: n, channels: c, l: pl, u: pu, levels: 8 });
    t.equal(firstDiff(readBack(rt, y1), readBack(rt, y2)), -1, "per-channel with 1 channel = per tensor (forward)");
    const g = f32FakeQuantBackward(rt, { x: x.p, dy: dy.p, pixels: n, channels: c, l: -0.7, u: 0.9, levels: 8 });
    f32FakeQuantPerChannelBackward(rt, { x: x.p, dy: dy.p, pixels: n, channels: c, l: pl, u: pu, levels: 8, dl: pdl, du: pdu });
    const gl = new Float32Array(1), gu = new Float32Array(1);
    rt.arena.read(pdl, gl); rt.arena.read(pdu, gu);
    t.ok(Math.abs(gl[0] - g.dl) <= 1e-6 * (1 + Math.abs(g.dl)) && Math.abs(gu[0] - g.du) <= 1e-6 * (1 + Math.abs(g.du)), `dl/du agree (${gl[0]} vs ${g.dl}, ${gu[0]} vs ${g.du})`);
    // Bad ranges are read from the arena and rejected before the kernel runs.
    rt.arena.f32[pu >> 2] = -0.7;
    throwsCode(t, () => f32FakeQuantPerChannel(rt, { x: x.p, y: y2.p, pixels: n, channels: c, l: pl, u: pu, levels: 8 }), "E_RANGE", "per channel: l = u");
    rt.arena.f32[pu >> 2] = NaN;
    throwsCode(t, () => f32FakeQuantPerChannelBackward(rt, { x: x.p, dy: dy.p, pixels: n, channels: c, l: pl, u: pu, levels: 8 }), "E_RANGE", "per channel: NaN u");
    rt.arena.f32[pu >> 2] = 0.9;
    throwsCode(t, () => f32FakeQuantPerChannel(rt, { x: x.p, y: y2.p, pixels: n, channels: c, l: pl, u: pu, levels: 1 }), "E_BITS", "per channel: 1 level");
  });
});

test("grad elementwise: channel affine forward bit-exact, backward vs f64 and in place", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0xaff);
  let bad = 0;
  for (let it = 0; it < 150; it++) {
    const n = rng.pick(PIXELS), c = rng.pick(CHANNELS);
    withMark(rt, () => {
      const a = rng.fillF32(new Float32Array(c), -2, 2), b = rng.fillF32(new Float32Array(c), -1, 1);
      const pa = rt.arena.put(a), pb = rt.arena.put(b);
      const x = rand(rt, rng, n, c, strideFor(rng, c));
      const y = rand(rt, rng, n, c, strideFor(rng, c));
      const wantY = y.host.slice();
      channelAffineRef(flat(x), flat(y, wantY), n, c, a, b);
      f32ChannelAffine(rt, { x: x.p, xStride: x.stride, y: y.p, yStride: y.stride, pixels: n, channels: c, a: pa, b: pb });
      let err = firstDiff(readBack(rt, y), wantY) >= 0 ? "forward differs; " : "";

      const dy = rand(rt, rng, n, c, strideFor(rng, c));
      const inPlace = rng.next() < 0.3;
      const dx = inPlace ? dy : rand(rt, rng, n, c, strideFor(rng, c));
      const da0 = rng.fillF32(new Float32Array(c), -1, 1), db0 = rng.fillF32(new Float32Array(c), -1, 1);
      const pda = rt.arena.put(da0), pdb = rt.arena.put(db0);
      const wantDx = dx.host.slice(), wantDa = Float64Array.from(da0), wantDb = Float64Array.from(db0);
      const magA = new Float64Array(c), magB = new Float64Array(c);
      channelAffineBackwardRef(flat(x), flat(dy), flat(dx, wantDx), n, c, a, wantDa, wantDb, magA, magB);
      f32ChannelAffineBackward(rt, { x: x.p, xStride: x.stride, dy: dy.p, dyStride: dy.stride, dx: dx.p, dxStride: dx.stride, pixels: n, channels: c, a: pa, da: pda, db: pdb });
      if (firstDiff(readBack(rt, dx), wantDx) >= 0) err += "dx differs; ";
      const da = new Float32Array(c), db = new Float32Array(c);
      rt.arena.read(pda, da); rt.arena.read(pdb, db);
      for (let i = 0; i < c; i++) {
        if (!(Math.abs(da[i] - wantDa[i]) <= TOL * magA[i])) { err += `da[${i}] ${da[i]} vs ${wantDa[i]}; `; break; }
        if (!(Math.abs(db[i] - wantDb[i]) <= TOL * magB[i])) { err += `db[${i}] ${db[i]} vs ${wantDb[i]}; `; break; }
      }
      if (err && ++bad <= 3) t.fail(`n${n} c${c}${inPlace ? " in place" : ""}: ${err}`);
    });
  }
  t.equal(bad, 0, "150 random cases");
  // Optional outputs: only db requested leaves da / dx alone.
  withMark(rt, () => {
    const c = 3, n = 2;
    const x = rt.arena.put(Float32Array.of(1, 2, 3, 4, 5, 6)), dy = rt.arena.put(Float32Array.of(1, 1, 1, 2, 2, 2));
    const pa = rt.arena.put(Float32Array.of(1, 1, 1)), pdb = rt.arena.put(new Float32Array(c));
    f32ChannelAffineBackward(rt, { x, dy, pixels: n, channels: c, a: pa, db: pdb });
    const db = new Float32Array(c);
    rt.arena.read(pdb, db);
    t.deepEqual(Array.from(db), [3, 3, 3], "db only");
  });
});

test("grad elementwise: space-to-depth inverts depth-to-space; upsample backward bit-exact", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0x52d);
  let bad = 0;
  for (let it = 0; it < 120; it++) {
    const h = rng.int(1, 5), w = rng.int(1, 6), c = rng.pick(CHANNELS.slice(0, 9)), b = rng.pick([1, 2, 3, 4]);
    withMark(rt, () => {
      const nBig = h * w * b * b, nSmall = h * w, cy = c * b * b;
      const x = rand(rt, rng, nBig, c, strideFor(rng, c));
      const y = rand(rt, rng, nSmall, cy, strideFor(rng, cy));
      const want = y.host.slice();
      spaceToDepthRef(flat(x), flat(y, want), h, w, c, b);
      f32SpaceToDepth(rt, { x: x.p, xStride: x.stride, y: y.p, yStride: y.stride, height: h, width: w, channels: c, block: b });
      let err = firstDiff(readBack(rt, y), want) >= 0 ? "space-to-depth differs from ref; " : "";
      // Round trip: depth_to_space(space_to_depth(x)) = x on the channel slice.
      const z = rand(rt, rng, nBig, c, x.stride);
      depthToSpaceAt(rt, { x: y.p, y: z.p, height: h, width: w, channels: c, block: b, xStride: y.stride, yStride: x.stride, elemBytes: 4 });
      const zz = readBack(rt, z);
      for (let i = 0; i < nBig && !err; i++) for (let ch = 0; ch < c; ch++) if (!Object.is(zz[i * x.stride + ch], x.host[i * x.stride + ch])) { err += "round trip differs; "; break; }

      const f = b + 1;
      const dy = rand(rt, rng, h * w * f * f, c, strideFor(rng, c));
      const dx = rand(rt, rng, nSmall, c, strideFor(rng, c));
      const wantDx = dx.host.slice();
      upsampleNearestBackwardRef(flat(dy), flat(dx, wantDx), h, w, c, f);
      f32UpsampleNearestBackward(rt, { dy: dy.p, dyStride: dy.stride, dx: dx.p, dxStride: dx.stride, height: h, width: w, channels: c, factor: f });
      if (firstDiff(readBack(rt, dx), wantDx) >= 0) err += "upsample backward differs; ";
      // Adjoint identity: <up(v), dy> = <v, up_backward(dy)> (f64, within rounding).
      const v = rand(rt, rng, nSmall, c, c);
      const up = rand(rt, rng, h * w * f * f, c, dy.stride);
      upsampleNearestAt(rt, { x: v.p, y: up.p, height: h, width: w, channels: c, factor: f, xStride: c, yStride: dy.stride, elemBytes: 4 });
      const uph = readBack(rt, up), dxh = readBack(rt, dx);
      let lhs = 0, rhs = 0, mag = 0;
      for (let i = 0; i < h * w * f * f; i++) for (let ch = 0; ch < c; ch++) { lhs += uph[i * dy.stride + ch] * dy.host[i * dy.stride + ch]; mag += Math.abs(dy.host[i * dy.stride + ch]); }
      for (let i = 0; i < nSmall; i++) for (let ch = 0; ch < c; ch++) rhs += v.host[i * c + ch] * dxh[i * dx.stride + ch];
      if (!(Math.abs(lhs - rhs) <= f * f * U * mag)) err += `adjoint ${lhs} vs ${rhs}; `;
      if (err && ++bad <= 3) t.fail(`${h}x${w} c${c} b${b}: ${err}`);
    });
  }
  t.equal(bad, 0, "120 random cases (ref, round trip, adjoint)");
});

test("grad elementwise: L1 / MSE loss values and gradients", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0x1055);
  let bad = 0;
  for (let it = 0; it < 150; it++) {
    const n = rng.pick(PIXELS), c = rng.pick(CHANNELS);
    const scale = rng.pick([1, 1, 0.5, 3]);
    const kind = rng.pick(["l1", "mse"] as const);
    withMark(rt, () => {
      const p = rand(rt, rng, n, c, strideFor(rng, c));
      const tg = rand(rt, rng, n, c, strideFor(rng, c));
      // Some exact ties: sign(0) = 0.
      for (let i = 0; i < n; i += 2) tg.host[i * tg.stride] = p.host[i * p.stride];
      rt.arena.write(tg.p, tg.host);
      const withGrad = rng.next() < 0.8;
      const g = withGrad ? rand(rt, rng, n, c, strideFor(rng, c)) : null;
      const want = g ? g.host.slice() : null;
      const refFn = kind === "l1" ? l1LossRef : mseLossRef;
      const wasm = kind === "l1" ? f32L1Loss : f32MseLoss;
      const ref = refFn(flat(p), flat(tg), g ? flat(g, want!) : null, n, c, scale);
      const got = wasm(rt, { pred: p.p, predStride: p.stride, target: tg.p, targetStride: tg.stride, grad: g?.p ?? null, gradStride: g?.stride, pixels: n, channels: c, scale });
      let err = "";
      if (!(Math.abs(got.loss - ref) <= TOL * Math.abs(ref) + 1e-300)) err += `loss ${got.loss} vs ${ref}; `;
      if (g && firstDiff(readBack(rt, g), want!) >= 0) err += "grad differs; ";
      if (err && ++bad <= 3) t.fail(`${kind} n${n} c${c} scale ${scale}: ${err}`);
    });
  }
  t.equal(bad, 0, "150 random cases");
  // Known values: pred (1, 2, 3, 4), target (1, 0, 5, 4): L1 = (0 + 2 + 2 + 0)/4 = 1, MSE = (4 + 4)/4 = 2.
  withMark(rt, () => {
    const p = rt.arena.put(Float32Array.of(1, 2, 3, 4)), tg = rt.arena.put(Float32Array.of(1, 0, 5, 4)), g = rt.arena.alloc(16);
    const l1 = f32L1Loss(rt, { pred: p, target: tg, grad: g, pixels: 2, channels: 2 });
    const gl = new Float32Array(4); rt.arena.read(g, gl);
    t.equal(l1.loss, 1, "L1 loss");
    t.deepEqual(Array.from(gl), [0, 0.25, -0.25, 0], "L1 grad sign(d)/N, sign(0) = 0");
    const mse = f32MseLoss(rt, { pred: p, target: tg, grad: g, pixels: 2, channels: 2 });
    rt.arena.read(g, gl);
    t.equal(mse.loss, 2, "MSE loss");
    t.deepEqual(Array.from(gl), [0, 1, -1, 0], "MSE grad 2d/N");
  });
});

test("grad elementwise: bad arguments throw LowbitError before any WASM call", async (t) => {
  const rt = await testRuntime();
  withMark(rt, () => {
    const p = rt.arena.alloc(4 * 64), q = rt.arena.alloc(4 * 64), r = rt.arena.alloc(4 * 64);
    const cap = rt.arena.capacity;
    throwsCode(t, () => f32ReluBackward(rt, { dy: p, y: q, dx: r, pixels: 4, channels: 0 }), "E_SHAPE", "relu: channels 0");
    throwsCode(t, () => f32ReluBackward(rt, { dy: p, y: q, dx: r, pixels: 4, channels: 4, yStride: 3 }), "E_SHAPE", "relu: stride < channels");
    throwsCode(t, () => f32ReluBackward(rt, { dy: p + 2, y: q, dx: r, pixels: 4, channels: 4 }), "E_ARGUMENT", "relu: unaligned");
    throwsCode(t, () => f32ReluBackward(rt, { dy: p, y: q, dx: cap - 8, pixels: 4, channels: 4 }), "E_ARGUMENT", "relu: past memory end");
    const fq = { x: p, y: q, pixels: 4, channels: 4, l: 0, u: 1, levels: 16 };
    throwsCode(t, () => f32FakeQuant(rt, { ...fq, levels: 1 }), "E_BITS", "fq: 1 level");
    throwsCode(t, () => f32FakeQuant(rt, { ...fq, levels: 2.5 }), "E_BITS", "fq: fractional levels");
    throwsCode(t, () => f32FakeQuant(rt, { ...fq, l: 1 }), "E_RANGE", "fq: l = u");
    throwsCode(t, () => f32FakeQuant(rt, { ...fq, l: 2 }), "E_RANGE", "fq: l > u");
    throwsCode(t, () => f32FakeQuant(rt, { ...fq, u: NaN }), "E_RANGE", "fq: NaN u");
    throwsCode(t, () => f32FakeQuant(rt, { ...fq, u: Infinity }), "E_RANGE", "fq: Inf u");
    throwsCode(t, () => f32FakeQuant(rt, { ...fq, l: 1, u: 1 + 1e-9 }), "E_RANGE", "fq: l = u as f32");
    throwsCode(t, () => f32FakeQuantBackward(rt, { x: p, dy: q, dx: cap, pixels: 4, channels: 4, l: 0, u: 1, levels: 4 }), "E_ARGUMENT", "fq backward: dx out of memory");
    throwsCode(t, () => f32ChannelAffine(rt, { x: p, y: q, pixels: 4, channels: 4, a: r, b: cap - 4 }), "E_ARGUMENT", "affine: b out of memory");
    throwsCode(t, () => f32ChannelAffineBackward(rt, { x: p, dy: q, pixels: 4, channels: 4, a: r, da: 3 }), "E_ARGUMENT", "affine backward: unaligned da");
    throwsCode(t, () => f32SpaceToDepth(rt, { x: p, y: q, height: 2, width: 2, channels: 4, block: 0 }), "E_ARGUMENT", "s2d: block 0");
    throwsCode(t, () => f32SpaceToDepth(rt, { x: p, y: p + 16, height: 1, width: 1, channels: 4, block: 2 }), "E_ARGUMENT", "s2d: overlap");
    throwsCode(t, () => f32SpaceToDepth(rt, { x: p, y: q, height: 4, width: 4, channels: 4, block: 2 }), "E_ARGUMENT", "s2d: x past memory? (span > buffer is only caught at memory end)");
    throwsCode(t, () => f32UpsampleNearestBackward(rt, { dy: p, dx: q, height: 1, width: 1, channels: 4, factor: 17 }), "E_ARGUMENT", "upsample backward: factor 17");
    throwsCode(t, () => f32UpsampleNearestBackward(rt, { dy: p, dx: p, height: 1, width: 1, channels: 4, factor: 2 }), "E_ARGUMENT", "upsample backward: overlap");
    throwsCode(t, () => f32L1Loss(rt, { pred: p, target: q, pixels: 0, channels: 4 }), "E_SHAPE", "l1: no elements");
    throwsCode(t, () => f32MseLoss(rt, { pred: p, target: q, pixels: 4, channels: 4, scale: NaN }), "E_RANGE", "mse: NaN scale");
    throwsCode(t, () => f32MseLoss(rt, { pred: p, target: q, pixels: 4, channels: 4, predStride: 2 }), "E_SHAPE", "mse: stride < channels");
  });
});
