// Differential fuzz cases of the training kernels (src/kernels/grad-conv.ts, grad-elementwise.ts) against
// src/kernels/ref/grad-*.ts, with the tolerances of test/kernels/grad-conv.test.ts and
// grad-elementwise.test.ts:
//  - conv gradients: an element summing m products (+ the accumulated dw₀) is within (m + 3)·2⁻²⁴·Σ|terms|
//    (one rounding per product and add, or per FMA on the relaxed build; Higham §4.2, first order);
//  - per-element outputs (ReLU backward, fake quant forward and dx, channel affine forward and dx,
//    space-to-depth, upsample backward, loss gradients): bit for bit, specials included;
//  - reductions (fake-quant range sums, affine da/db, loss values): within 40·2⁻²⁴·Σ|terms| (per-lane f32
//    partials of ≤ 32 terms, then f64). Their inputs stay finite (a NaN sum has no tolerance).
// Everything runs on arena offsets, as the training engine calls them, with strided operands whose gaps
// hold junk that must survive.
import {
  f32ConvBackwardInput, f32ConvBackwardInputScratchBytes, f32ConvBackwardWeights, f32ConvBackwardWeightsScratchBytes, packF32ConvBackwardInput,
} from "../../src/kernels/grad-conv.ts";
import { f32ConvBackwardInputRef, f32ConvBackwardWeightsRef } from "../../src/kernels/ref/grad-conv.ts";
import {
  f32ChannelAffine, f32ChannelAffineBackward, f32FakeQuant, f32FakeQuantBackward, f32FakeQuantPerChannel, f32FakeQuantPerChannelBackward,
  f32L1Loss, f32MseLoss, f32ReluBackward, f32SpaceToDepth, f32UpsampleNearestBackward, fakeQuantStep,
} from "../../src/kernels/grad-elementwise.ts";
import {
  channelAffineBackwardRef, channelAffineRef, fakeQuantBackwardRef, fakeQuantPerChannelBackwardRef, fakeQuantPerChannelRef, fakeQuantRef,
  l1LossRef, mseLossRef, reluBackwardRef, spaceToDepthRef, upsampleNearestBackwardRef, type Flat,
} from "../../src/kernels/ref/grad-elementwise.ts";
import type { Runtime } from "../../src/runtime/runtime.ts";
import type { Rng } from "../util/rng.ts";
import { CH, F32_SPECIALS, type Case, diffMsg, fillF32, inArena, readF32, span, strideFor } from "./fuzz-kernels-common.ts";

const U = 2 ** -24;
const TOL = 40 * U;
const PIXELS = [1, 2, 3, 5, 8, 17, 40, 64, 129];
const CONV_CH = [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 24, 33, 48];

/** A strided tensor in the arena (p) and on the host. */
interface T { p: number; host: Float32Array; stride: number }

function put(rt: Runtime, host: Float32Array, stride: number): T {
  return { p: rt.arena.put(host), host, stride };
}

/** Random strided tensor: `special` of the values from F32_SPECIALS, magnitude 2^±mag. */
function rand(rt: Runtime, r: Rng, n: number, c: number, stride: number, special = 0, mag = 12): T {
  return put(rt, fillF32(r, new Float32Array(Math.max(1, span(n, c, stride))), special, mag), stride);
}

const back = (rt: Runtime, t: T): Float32Array => readF32(rt, t.p, t.host.length);
const flat = (t: T, data = t.host): Flat => ({ data, stride: t.stride });

// ------------------------------------------------ conv ---------------------------------------------------

function convGeo(r: Rng) {
  const cin = r.pick(CONV_CH), cout = r.pick(CONV_CH);
  return {
    h: r.pick([1, 1, 2, 3, 4, 5, 6, 7, 9, 11]), w: r.pick([1, 2, 3, 4, 5, 7, 8, 9, 13]), cin, cout, k: r.pick([1, 1, 3, 3, 3, 5, 7]),
    xStride: strideFor(r, cin), dyStride: strideFor(r, cout), dxStride: strideFor(r, cin),
  };
}

/** f32_conv_backward_weights_nhwc: dw (HWIO) and db accumulated onto random dw₀/db₀, magnitudes 2^±8 each; a sentinel after db. */
const convBackwardWeightsCase: Case = (rt, r) => {
  const g = convGeo(r);
  const { h, w, cin, cout, k } = g;
  const withDb = r.next() < 0.7;
  return inArena(rt, () => {
    const x = rand(rt, r, h * w, cin, g.xStride, 0, 8);
    const dy = rand(rt, r, h * w, cout, g.dyStride, 0, 8);
    const dw0 = fillF32(r, new Float32Array(k * k * cin * cout), 0, 8), db0 = fillF32(r, new Float32Array(cout), 0, 8);
    const pdw = rt.arena.put(dw0), pdb = withDb ? rt.arena.put(db0) : null;
    const guard = rt.arena.put(Float32Array.of(7.25));
    f32ConvBackwardWeights(rt, { x: x.p, xStride: g.xStride, dy: dy.p, dyStride: g.dyStride, h, w, cin, cout, k, dw: pdw, db: pdb,
      scratch: rt.arena.alloc(f32ConvBackwardWeightsScratchBytes(w, cin, cout, k)) });
    const got = readF32(rt, pdw, dw0.length);
    const want = new Float64Array(dw0), mag = new Float64Array(dw0.length), wantB = new Float64Array(db0), magB = new Float64Array(cout);
    f32ConvBackwardWeightsRef({ x: flat(x), dy: flat(dy), h, w, cin, cout, k, dw: want as unknown as Float32Array,
      db: wantB as unknown as Float32Array, mag, magB });
    const what = `conv backward-weights ${h}×${w} ${cin}→${cout} k${k} strides x${g.xStride} dy${g.dyStride}${withDb ? " +db" : ""}`;
    const tol = (h * w + 3) * U;
    for (let i = 0; i < got.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= tol * mag[i])) return `${what}: dw[${i}] got ${got[i]} want ${want[i]} tol ${tol * mag[i]}`;
    }
    if (pdb !== null) {
      const gotB = readF32(rt, pdb, cout);
      for (let o = 0; o < cout; o++) if (!(Math.abs(gotB[o] - wantB[o]) <= tol * magB[o])) return `${what}: db[${o}] got ${gotB[o]} want ${wantB[o]}`;
    }
    return rt.arena.f32[guard >> 2] === 7.25 ? null : `${what}: wrote past dw/db`;
  });
};

/** Input gradient (the flipped, transposed forward conv): strided dx whose gaps must survive; weights and dy 2^±8. */
const convBackwardInputCase: Case = (rt, r) => {
  const g = convGeo(r);
  const { h, w, cin, cout, k } = g;
  return inArena(rt, () => {
    const weights = fillF32(r, new Float32Array(k * k * cin * cout), 0, 8);
    const dy = rand(rt, r, h * w, cout, g.dyStride, 0, 8);
    const dxLen = span(h * w, cin, g.dxStride);
    const pdx = rt.arena.put(new Float32Array(dxLen).fill(-3.5));
    f32ConvBackwardInput(rt, { dy: dy.p, dyStride: g.dyStride, dx: pdx, dxStride: g.dxStride, h, w, cin, cout, k,
      packed: rt.arena.put(packF32ConvBackwardInput(weights, k, cin, cout)), scratch: rt.arena.alloc(f32ConvBackwardInputScratchBytes(w, cout, k)) });
    const got = readF32(rt, pdx, dxLen);
    const want = new Float64Array(dxLen).fill(-3.5), mag = new Float64Array(h * w * cin);
    f32ConvBackwardInputRef({ dy: flat(dy), dx: { data: want as unknown as Float32Array, stride: g.dxStride }, h, w, cin, cout, k, weights, mag });
    const p = (k - 1) / 2;
    const what = `conv backward-input ${h}×${w} ${cin}→${cout} k${k} strides dy${g.dyStride} dx${g.dxStride}`;
    for (let i = 0; i < dxLen; i++) {
      const pix = Math.floor(i / g.dxStride), c = i - pix * g.dxStride;
      if (c >= cin) {
        if (got[i] !== -3.5) return `${what}: gap element ${i} changed to ${got[i]}`;
        continue;
      }
      const y = Math.floor(pix / w), x = pix % w;
      const m = (Math.min(h - 1, y + p) - Math.max(0, y - p) + 1) * (Math.min(w - 1, x + p) - Math.max(0, x - p) + 1) * cout;
      const tol = (m + 3) * U * mag[pix * cin + c];
      if (!(Math.abs(got[i] - want[i]) <= tol)) return `${what}: dx (${y},${x}) ch ${c} got ${got[i]} want ${want[i]} tol ${tol}`;
    }
    return null;
  });
};

// ------------------------------------------------ elementwise --------------------------------------------

/** f32_relu_backward_nhwc: dx = dy·[y > 0]; y with ±0, NaN, subnormals, ±∞; 30 % in place (dx = dy). */
const reluBackwardCase: Case = (rt, r) => {
  const n = r.pick(PIXELS), c = r.pick(CH), ip = r.next() < 0.3;
  return inArena(rt, () => {
    const dy = rand(rt, r, n, c, strideFor(r, c), 0.05);
    const y = rand(rt, r, n, c, strideFor(r, c), 0.1);
    for (let i = 0; i < y.host.length; i += 3) y.host[i] = r.pick([0, -0]);
    rt.arena.write(y.p, y.host);
    const dx = ip ? dy : rand(rt, r, n, c, strideFor(r, c));
    const want = dx.host.slice();
    reluBackwardRef(flat(dy), flat(y), flat(dx, want), n, c);
    f32ReluBackward(rt, { dy: dy.p, dyStride: dy.stride, y: y.p, yStride: y.stride, dx: dx.p, dxStride: dx.stride, pixels: n, channels: c });
    const d = diffMsg(back(rt, dx), want);
    return d && `relu backward ${n}×${c} strides dy${dy.stride} y${y.stride} dx${dx.stride}${ip ? " in place" : ""}: ${d}`;
  });
};

/** Grid points 2..65536 (the usual 2^b, 3, 255 and random counts). */
function fqLevels(r: Rng): number {
  return r.next() < 0.8 ? r.pick([2, 3, 4, 16, 255, 256, 65536]) : r.int(2, 65536);
}

/** A fake-quant range at magnitude 2^±10 (l = 0 at times): l < u as f32 with a positive f32 step. */
function fqRange(r: Rng, levels: number): { l: number; u: number } {
  for (;;) {
    const m = 2 ** r.int(-10, 10);
    const l = Math.fround(r.next() < 0.15 ? 0 : r.uniform(-2, 0.5) * m), u = Math.fround(l + r.uniform(0.01, 3) * m);
    if (l < u && Math.fround(Math.fround(u - l) / (levels - 1)) > 0) return { l, u };
  }
}

/** x around [l, u]: exact grid points and midpoints (ties), the ends, outside values, ±∞ (and NaN when allowed). */
function fqInput(r: Rng, len: number, l: number, u: number, s: number, nan: boolean): Float32Array {
  const x = new Float32Array(len);
  const w = u - l;
  for (let i = 0; i < len; i++) {
    const v = r.next();
    const j = r.int(0, Math.max(0, Math.round(w / s)));
    x[i] = v < 0.04 ? (nan ? r.pick(F32_SPECIALS) : r.pick([Infinity, -Infinity, 0, -0, 1e-45, 3.4e38, -3.4e38]))
      : v < 0.1 ? r.pick([l, u]) : v < 0.25 ? l + j * s : v < 0.4 ? l + (j + 0.5) * s : r.uniform(l - 0.5 * w, u + 0.5 * w);
  }
  return x;
}

/** f32_fake_quant_nhwc (per tensor, or per channel on arena-held ranges): bit for bit, NaN propagates; 30 % in place. */
function fakeQuantCase(perChannel: boolean): Case {
  return (rt, r) => {
    const n = r.pick(PIXELS), c = r.pick(CH), ip = r.next() < 0.3;
    const levels = fqLevels(r);
    const ranges = Array.from({ length: perChannel ? c : 1 }, () => fqRange(r, levels));
    return inArena(rt, () => {
      const xs = strideFor(r, c);
      const xh = new Float32Array(span(n, c, xs));
      for (let ch = 0; ch < c; ch++) {
        const q = ranges[perChannel ? ch : 0];
        const col = fqInput(r, n, q.l, q.u, fakeQuantStep(q.l, q.u, levels), true);
        for (let p = 0; p < n; p++) xh[p * xs + ch] = col[p];
      }
      const x = put(rt, xh, xs);
      const y = ip ? x : rand(rt, r, n, c, strideFor(r, c));
      const want = y.host.slice();
      let what: string;
      if (perChannel) {
        const l = Float32Array.from(ranges, (q) => q.l), u = Float32Array.from(ranges, (q) => q.u);
        fakeQuantPerChannelRef(flat(x), flat(y, want), n, c, l, u, levels);
        f32FakeQuantPerChannel(rt, { x: x.p, xStride: x.stride, y: y.p, yStride: y.stride, pixels: n, channels: c,
          l: rt.arena.put(l), u: rt.arena.put(u), levels });
        what = `fake quant per channel levels ${levels}`;
      } else {
        const { l, u } = ranges[0];
        fakeQuantRef(flat(x), flat(y, want), n, c, l, u, levels);
        f32FakeQuant(rt, { x: x.p, xStride: x.stride, y: y.p, yStride: y.stride, pixels: n, channels: c, l, u, levels });
        what = `fake quant [${l}, ${u}] levels ${levels}`;
      }
      const d = diffMsg(back(rt, y), want);
      return d && `${what} ${n}×${c} strides ${x.stride}/${y.stride}${ip ? " in place" : ""}: ${d}`;
    });
  };
}

/**
 * f32_fake_quant_backward_nhwc and its per-channel form: dx = dy·[l ≤ x ≤ u] bit for bit (dx separate, in
 * place over dy, or absent), the range gradients {dl, du} (per channel: accumulated onto dl₀/du₀) within
 * 40·2⁻²⁴·(Σ|dy| + |dl₀| + |du₀|). x includes the ends, grid points, ties and ±∞; dy is finite.
 */
function fakeQuantBackwardCase(perChannel: boolean): Case {
  return (rt, r) => {
    const n = r.pick(PIXELS), c = r.pick(CH);
    const mode = r.pick(["dx", "inplace", "none"] as const);
    const levels = fqLevels(r);
    const ranges = Array.from({ length: perChannel ? c : 1 }, () => fqRange(r, levels));
    return inArena(rt, () => {
      const xs = strideFor(r, c);
      const xh = new Float32Array(span(n, c, xs));
      for (let ch = 0; ch < c; ch++) {
        const q = ranges[perChannel ? ch : 0];
        const col = fqInput(r, n, q.l, q.u, fakeQuantStep(q.l, q.u, levels), false);
        for (let p = 0; p < n; p++) xh[p * xs + ch] = col[p];
      }
      const x = put(rt, xh, xs);
      const dy = rand(rt, r, n, c, strideFor(r, c), 0, 10);
      const dx = mode === "dx" ? rand(rt, r, n, c, strideFor(r, c), 0.05) : mode === "inplace" ? dy : null;
      const wantDx = dx ? dx.host.slice() : null;
      const base = { x: x.p, xStride: x.stride, dy: dy.p, dyStride: dy.stride, dx: dx?.p ?? null, dxStride: dx?.stride, pixels: n, channels: c, levels };
      let what: string, err: string | null = null;
      if (perChannel) {
        const l = Float32Array.from(ranges, (q) => q.l), u = Float32Array.from(ranges, (q) => q.u);
        const dl0 = fillF32(r, new Float32Array(c), 0, 4), du0 = fillF32(r, new Float32Array(c), 0, 4);
        const pdl = rt.arena.put(dl0), pdu = rt.arena.put(du0);
        const dl = Float64Array.from(dl0), du = Float64Array.from(du0), mag = new Float64Array(c);
        fakeQuantPerChannelBackwardRef(flat(x), flat(dy), dx ? flat(dx, wantDx!) : null, n, c, l, u, levels, dl, du, mag);
        f32FakeQuantPerChannelBackward(rt, { ...base, l: rt.arena.put(l), u: rt.arena.put(u), dl: pdl, du: pdu });
        const gl = readF32(rt, pdl, c), gu = readF32(rt, pdu, c);
        for (let i = 0; i < c && !err; i++) {
          if (!(Math.abs(gl[i] - dl[i]) <= TOL * mag[i])) err = `dl[${i}] got ${gl[i]} want ${dl[i]} tol ${TOL * mag[i]}`;
          else if (!(Math.abs(gu[i] - du[i]) <= TOL * mag[i])) err = `du[${i}] got ${gu[i]} want ${du[i]} tol ${TOL * mag[i]}`;
        }
        what = `fake quant per channel backward levels ${levels}`;
      } else {
        const { l, u } = ranges[0];
        const ref = fakeQuantBackwardRef(flat(x), flat(dy), dx ? flat(dx, wantDx!) : null, n, c, l, u, levels);
        const got = f32FakeQuantBackward(rt, { ...base, l, u });
        if (!(Math.abs(got.dl - ref.dl) <= TOL * ref.mag)) err = `dl got ${got.dl} want ${ref.dl} tol ${TOL * ref.mag}`;
        else if (!(Math.abs(got.du - ref.du) <= TOL * ref.mag)) err = `du got ${got.du} want ${ref.du} tol ${TOL * ref.mag}`;
        what = `fake quant backward [${l}, ${u}] levels ${levels}`;
      }
      if (!err && dx) err = diffMsg(back(rt, dx), wantDx!, "dx ");
      return err && `${what} ${n}×${c} ${mode} strides x${x.stride} dy${dy.stride}${dx ? ` dx${dx.stride}` : ""}: ${err}`;
    });
  };
}

/** f32_channel_affine_nhwc: y = fround(fround(x·a) + b) bit for bit, specials in x, a and b; 30 % in place. */
const channelAffineCase: Case = (rt, r) => {
  const n = r.pick(PIXELS), c = r.pick(CH), ip = r.next() < 0.3;
  return inArena(rt, () => {
    const a = fillF32(r, new Float32Array(c), 0.05, 4), b = fillF32(r, new Float32Array(c), 0.05, 8);
    const x = rand(rt, r, n, c, strideFor(r, c), 0.05);
    const y = ip ? x : rand(rt, r, n, c, strideFor(r, c));
    const want = y.host.slice();
    channelAffineRef(flat(x), flat(y, want), n, c, a, b);
    f32ChannelAffine(rt, { x: x.p, xStride: x.stride, y: y.p, yStride: y.stride, pixels: n, channels: c, a: rt.arena.put(a), b: rt.arena.put(b) });
    const d = diffMsg(back(rt, y), want);
    return d && `channel affine ${n}×${c} strides ${x.stride}/${y.stride}${ip ? " in place" : ""}: ${d}`;
  });
};

/** f32_channel_affine_backward_nhwc: dx = dy·a bit for bit; da += Σdy·x, db += Σdy within 40·2⁻²⁴·Σ|terms|; any of dx/da/db absent. */
const channelAffineBackwardCase: Case = (rt, r) => {
  const n = r.pick(PIXELS), c = r.pick(CH);
  const mode = r.pick(["dx", "inplace", "none"] as const);
  const wantA = r.next() < 0.8, wantB = r.next() < 0.8;
  return inArena(rt, () => {
    const a = fillF32(r, new Float32Array(c), 0, 4);
    const x = rand(rt, r, n, c, strideFor(r, c), 0, 10);
    const dy = rand(rt, r, n, c, strideFor(r, c), 0, 10);
    const dx = mode === "dx" ? rand(rt, r, n, c, strideFor(r, c), 0.05) : mode === "inplace" ? dy : null;
    const da0 = fillF32(r, new Float32Array(c), 0, 4), db0 = fillF32(r, new Float32Array(c), 0, 4);
    const pda = wantA ? rt.arena.put(da0) : null, pdb = wantB ? rt.arena.put(db0) : null;
    const wantDx = dx ? dx.host.slice() : null;
    const da = wantA ? Float64Array.from(da0) : null, db = wantB ? Float64Array.from(db0) : null;
    const magA = new Float64Array(c), magB = new Float64Array(c);
    channelAffineBackwardRef(flat(x), flat(dy), dx ? flat(dx, wantDx!) : null, n, c, a, da, db, magA, magB);
    f32ChannelAffineBackward(rt, { x: x.p, xStride: x.stride, dy: dy.p, dyStride: dy.stride, dx: dx?.p ?? null, dxStride: dx?.stride,
      pixels: n, channels: c, a: rt.arena.put(a), da: pda, db: pdb });
    let err: string | null = dx ? diffMsg(back(rt, dx), wantDx!, "dx ") : null;
    const gA = pda !== null ? readF32(rt, pda, c) : null, gB = pdb !== null ? readF32(rt, pdb, c) : null;
    for (let i = 0; i < c && !err; i++) {
      if (gA && !(Math.abs(gA[i] - da![i]) <= TOL * magA[i])) err = `da[${i}] got ${gA[i]} want ${da![i]} tol ${TOL * magA[i]}`;
      else if (gB && !(Math.abs(gB[i] - db![i]) <= TOL * magB[i])) err = `db[${i}] got ${gB[i]} want ${db![i]} tol ${TOL * magB[i]}`;
    }
    return err && `channel affine backward ${n}×${c} ${mode}${wantA ? " +da" : ""}${wantB ? " +db" : ""}: ${err}`;
  });
};

/** x32_space_to_depth_nhwc: blocks 1..8 on strided tensors with specials, bit for bit (gaps untouched). */
const spaceToDepthCase: Case = (rt, r) => {
  const h = r.int(1, 5), w = r.int(1, 6), c = r.pick(CH.slice(0, 9)), b = r.pick([1, 2, 2, 3, 4, 8]);
  return inArena(rt, () => {
    const nBig = h * w * b * b, cy = c * b * b;
    const x = rand(rt, r, nBig, c, strideFor(r, c), 0.05);
    const y = rand(rt, r, h * w, cy, strideFor(r, cy));
    const want = y.host.slice();
    spaceToDepthRef(flat(x), flat(y, want), h, w, c, b);
    f32SpaceToDepth(rt, { x: x.p, xStride: x.stride, y: y.p, yStride: y.stride, height: h, width: w, channels: c, block: b });
    const d = diffMsg(back(rt, y), want);
    return d && `space to depth ${h}×${w}×${c} block ${b} strides ${x.stride}/${y.stride}: ${d}`;
  });
};

/** f32_upsample_nearest_backward_nhwc: factors 1..8, f32 sums in the reference's order bit for bit, specials included. */
const upsampleBackwardCase: Case = (rt, r) => {
  const h = r.int(1, 5), w = r.int(1, 6), c = r.pick(CH), f = r.pick([1, 2, 2, 3, 4, 5, 8]);
  return inArena(rt, () => {
    const dy = rand(rt, r, h * w * f * f, c, strideFor(r, c), 0.02);
    const dx = rand(rt, r, h * w, c, strideFor(r, c));
    const want = dx.host.slice();
    upsampleNearestBackwardRef(flat(dy), flat(dx, want), h, w, c, f);
    f32UpsampleNearestBackward(rt, { dy: dy.p, dyStride: dy.stride, dx: dx.p, dxStride: dx.stride, height: h, width: w, channels: c, factor: f });
    const d = diffMsg(back(rt, dx), want);
    return d && `upsample backward ${h}×${w}×${c} factor ${f} strides ${dy.stride}/${dx.stride}: ${d}`;
  });
};

/** L1 / MSE: gradient bit for bit (sign(0) = 0 at exact ties), loss within 40·2⁻²⁴·|loss|; magnitudes 2^±20, scales of either sign. */
function lossCase(kind: "l1" | "mse"): Case {
  return (rt, r) => {
    const n = r.pick(PIXELS), c = r.pick(CH);
    const scale = r.next() < 0.6 ? r.pick([1, 1, 0.5, 3]) : r.uniform(-4, 4);
    return inArena(rt, () => {
      const p = rand(rt, r, n, c, strideFor(r, c), 0, 20);
      const t = rand(rt, r, n, c, strideFor(r, c), 0, 20);
      const tie = r.next();
      for (let i = 0; i < n; i++) for (let ch = 0; ch < c; ch++) if (r.next() < tie * 0.5) t.host[i * t.stride + ch] = p.host[i * p.stride + ch];
      rt.arena.write(t.p, t.host);
      const g = r.next() < 0.8 ? rand(rt, r, n, c, strideFor(r, c)) : null;
      const want = g ? g.host.slice() : null;
      const ref = (kind === "l1" ? l1LossRef : mseLossRef)(flat(p), flat(t), g ? flat(g, want!) : null, n, c, scale);
      const got = (kind === "l1" ? f32L1Loss : f32MseLoss)(rt, { pred: p.p, predStride: p.stride, target: t.p, targetStride: t.stride,
        grad: g?.p ?? null, gradStride: g?.stride, pixels: n, channels: c, scale });
      let err: string | null = Math.abs(got.loss - ref) <= TOL * Math.abs(ref) + 1e-300 ? null : `loss got ${got.loss} want ${ref}`;
      if (!err && g) err = diffMsg(back(rt, g), want!, "grad ");
      return err && `${kind} loss ${n}×${c} scale ${scale} strides ${p.stride}/${t.stride}${g ? `/${g.stride}` : ""}: ${err}`;
    });
  };
}

export const GRAD_VARIANTS: Record<string, Case> = {
  "conv-backward-weights": convBackwardWeightsCase,
  "conv-backward-input": convBackwardInputCase,
  "relu-backward": reluBackwardCase,
  "fake-quant": fakeQuantCase(false),
  "fake-quant-backward": fakeQuantBackwardCase(false),
  "fake-quant-pc": fakeQuantCase(true),
  "fake-quant-pc-backward": fakeQuantBackwardCase(true),
  "channel-affine": channelAffineCase,
  "channel-affine-backward": channelAffineBackwardCase,
  "space-to-depth": spaceToDepthCase,
  "upsample-backward": upsampleBackwardCase,
  "l1-loss": lossCase("l1"),
  "mse-loss": lossCase("mse"),
};
