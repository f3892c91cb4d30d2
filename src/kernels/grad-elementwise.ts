// Elementwise kernels of the training engine (assembly/grad/f32-grad-elementwise.ts):
// ReLU backward, per-tensor fake quantization (forward, STE + LSQ backward),
// per-channel affine (forward, backward), space-to-depth (= backward of
// depth_to_space), backward of nearest upsampling, L1 / MSE losses with their
// gradient. Arena-offset calls (byte offsets, pixel strides in elements ≥
// channels, default dense); everything is validated before the WASM call.
// Add / scale backward reuse addAt / scaleAt (src/kernels/f32-elementwise.ts).
import { check, checkInt } from "../runtime/errors.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { MAX_I32, checkDims, checkFinite, checkPtr, spanOf, strideOf } from "./elementwise-common.ts";
import { checkSpatialGeometry } from "./depth-to-space.ts";

interface Kernels {
  f32_relu_backward_nhwc(dy: number, dys: number, y: number, ys: number, dx: number, dxs: number, n: number, c: number): void;
  f32_fake_quant_nhwc(x: number, xs: number, y: number, ys: number, n: number, c: number, l: number, u: number, s: number): void;
  f32_fake_quant_backward_nhwc(x: number, xs: number, dy: number, dys: number, dx: number, dxs: number, n: number, c: number,
    l: number, u: number, s: number): number;
  f32_fake_quant_below(): number;
  f32_fake_quant_above(): number;
  f32_fake_quant_pc_nhwc(x: number, xs: number, y: number, ys: number, n: number, c: number, l: number, u: number, nf: number): void;
  f32_fake_quant_pc_backward_nhwc(x: number, xs: number, dy: number, dys: number, dx: number, dxs: number, n: number, c: number,
    l: number, u: number, nf: number, dl: number, du: number): void;
  f32_channel_affine_nhwc(x: number, xs: number, y: number, ys: number, n: number, c: number, a: number, b: number): void;
  f32_channel_affine_backward_nhwc(x: number, xs: number, dy: number, dys: number, dx: number, dxs: number, n: number, c: number,
    a: number, da: number, db: number): void;
  x32_space_to_depth_nhwc(x: number, h: number, w: number, c: number, b: number, xs: number, y: number, ys: number): void;
  f32_upsample_nearest_backward_nhwc(dy: number, h: number, w: number, c: number, f: number, dys: number, dx: number, dxs: number): void;
  f32_l1_loss_nhwc(p: number, ps: number, t: number, ts: number, g: number, gs: number, n: number, c: number, k: number): number;
  f32_mse_loss_nhwc(p: number, ps: number, t: number, ts: number, g: number, gs: number, n: number, c: number, k: number): number;
}

const k = (rt: Runtime): Kernels => rt.kernels<Kernels>();

/** A strided f32 tensor operand [pixels × channels]: checks stride and bounds, returns the stride. */
function operand(rt: Runtime, ptr: number, stride: number | undefined, pixels: number, channels: number, what: string): number {
  const s = strideOf(stride, channels, what);
  checkPtr(rt, ptr, 4 * spanOf(pixels, channels, s), what, 4);
  check(ptr > 0, "E_ARGUMENT", `${what} offset must be > 0`);
  return s;
}

/** An optional operand: 0 (the kernels' "absent") when null/undefined. */
function optional(rt: Runtime, ptr: number | null | undefined, stride: number | undefined, pixels: number, channels: number, what: string): [number, number] {
  if (ptr === null || ptr === undefined) return [0, channels];
  return [ptr, operand(rt, ptr, stride, pixels, channels, what)];
}

// ---------------------------------------------------------------------------

export interface ReluBackwardCall {
  /** Gradient of the ReLU output. */
  dy: number; dyStride?: number;
  /** The ReLU output y (y > 0 ⇔ x > 0). */
  y: number; yStride?: number;
  /** Input gradient (written; may be dy itself, same stride). */
  dx: number; dxStride?: number;
  pixels: number; channels: number;
}

/** dx = dy·[y > 0] (bit-exact; NaN y passes 0). */
export function f32ReluBackward(rt: Runtime, c: ReluBackwardCall): void {
  checkDims(c.pixels, c.channels);
  const dys = operand(rt, c.dy, c.dyStride, c.pixels, c.channels, "relu backward: dy");
  const ys = operand(rt, c.y, c.yStride, c.pixels, c.channels, "relu backward: y");
  const dxs = operand(rt, c.dx, c.dxStride, c.pixels, c.channels, "relu backward: dx");
  k(rt).f32_relu_backward_nhwc(c.dy, dys, c.y, ys, c.dx, dxs, c.pixels, c.channels);
}

// ---------------------------------------------------------------------------
// Fake quantization (odm.md §2), per tensor, `levels` = 2^b grid points on [l, u]:
//   q(x) = round((clip(x, l, u) − l)/s)·s + l,   s = (u − l)/n,  n = levels − 1,
// computed in f32 with s = fround(fround(u − l)/n); `round` is half away from zero
// (t ≥ 0 here, so: half up), the tie rule of PyTorch-free QAT code (torch.round
// rounds half to even; the difference only moves exact ties).
//
// Gradients (STE for round inside the range, LSQ-style for the range):
//  - inside l ≤ x ≤ u, with t = (x − l)/s and r = round(t), q = r·s + l. STE through
//    round: ∂q/∂x = 1. For the range, treat r as the rounded t (∂r/∂t = 1, LSQ):
//      q = r·s + l,  ∂q/∂s = r + s·∂t/∂s = r − t  (∂t/∂s = −t/s),
//      ∂q/∂l|direct = s·∂t/∂l + 1 = −1 + 1 = 0,
//    and with s = (u − l)/n: ∂s/∂u = 1/n, ∂s/∂l = −1/n, so
//      ∂q/∂u = (r − t)/n,   ∂q/∂l = (t − r)/n.
//  - below l: q = l → ∂q/∂x = 0, ∂q/∂l = 1, ∂q/∂u = 0.
//  - above u: q = n·s + l = u → ∂q/∂x = 0, ∂q/∂u = 1, ∂q/∂l = 0.
// So dx = dy·[l ≤ x ≤ u], dl = Σ_{x<l} dy + Σ_in dy·(t − r)/n, du = Σ_{x>u} dy + Σ_in dy·(r − t)/n.

/** Largest number of levels (2^16: 16-bit grids). */
export const FAKE_QUANT_MAX_LEVELS = 1 << 16;

/** The f32 grid step s = fround(fround(u − l)/(levels − 1)) after validating l < u and levels. */
export function fakeQuantStep(l: number, u: number, levels: number): number {
  checkInt(levels, 2, FAKE_QUANT_MAX_LEVELS, "fake quant: levels (2^bits)", "E_BITS");
  checkFinite(l, "fake quant: l");
  checkFinite(u, "fake quant: u");
  const fl = Math.fround(l), fu = Math.fround(u);
  check(fl < fu, "E_RANGE", `fake quant: range [${l}, ${u}] must have l < u (as f32); keep the learned range ordered`);
  const s = Math.fround(Math.fround(fu - fl) / (levels - 1));
  check(Number.isFinite(s) && s > 0, "E_RANGE", `fake quant: step (u − l)/${levels - 1} is ${s} as f32`);
  return s;
}

export interface FakeQuantCall {
  x: number; xStride?: number;
  /** Output (may be x itself, same stride). */
  y: number; yStride?: number;
  pixels: number; channels: number;
  /** Range [l, u], l < u (finite, as f32). */
  l: number; u: number;
  /** Grid points, 2^bits (2..65536). */
  levels: number;
}

/** y = q(x) (bit-identical to the reference; both builds). */
export function f32FakeQuant(rt: Runtime, c: FakeQuantCall): void {
  checkDims(c.pixels, c.channels);
  const s = fakeQuantStep(c.l, c.u, c.levels);
  const xs = operand(rt, c.x, c.xStride, c.pixels, c.channels, "fake quant: x");
  const ys = operand(rt, c.y, c.yStride, c.pixels, c.channels, "fake quant: y");
  k(rt).f32_fake_quant_nhwc(c.x, xs, c.y, ys, c.pixels, c.channels, c.l, c.u, s);
}

export interface FakeQuantBackwardCall {
  /** The fake-quant input x (forward). */
  x: number; xStride?: number;
  /** Gradient of q(x). */
  dy: number; dyStride?: number;
  /** Input gradient (written; may be dy, same stride); null: range gradients only. */
  dx?: number | null; dxStride?: number;
  pixels: number; channels: number;
  l: number; u: number; levels: number;
}

/**
 * dx = dy·[l ≤ x ≤ u] (bit-exact) and the range gradients {dl, du} of this call (derivation above;
 * the caller adds them to its parameter gradients). Sums: per-lane f32 partials of ≤ 32 elements, then
 * f64, so |error| ≲ 34·2^-24·Σ|dy|.
 */
export function f32FakeQuantBackward(rt: Runtime, c: FakeQuantBackwardCall): { dl: number; du: number } {
  checkDims(c.pixels, c.channels);
  const s = fakeQuantStep(c.l, c.u, c.levels);
  const xs = operand(rt, c.x, c.xStride, c.pixels, c.channels, "fake quant backward: x");
  const dys = operand(rt, c.dy, c.dyStride, c.pixels, c.channels, "fake quant backward: dy");
  const [dx, dxs] = optional(rt, c.dx, c.dxStride, c.pixels, c.channels, "fake quant backward: dx");
  const kk = k(rt);
  const a = kk.f32_fake_quant_backward_nhwc(c.x, xs, c.dy, dys, dx, dxs, c.pixels, c.channels, c.l, c.u, s);
  const n = c.levels - 1;
  return { dl: kk.f32_fake_quant_below() - a / n, du: kk.f32_fake_quant_above() + a / n };
}

// Per-channel fake quantization: channel c on its own grid [l[c], u[c]] (same formulas per channel;
// e.g. per-output-channel weight quantization of HWIO weights viewed as [k·k·cin pixels × cout channels]).

/** Reads `channels` ranges from the arena and checks l[c] < u[c] (finite, as f32) and a positive step. */
function checkChannelRanges(rt: Runtime, l: number, u: number, channels: number, levels: number, what: string): void {
  checkInt(levels, 2, FAKE_QUANT_MAX_LEVELS, `${what}: levels (2^bits)`, "E_BITS");
  operand(rt, l, channels, 1, channels, `${what}: l`);
  operand(rt, u, channels, 1, channels, `${what}: u`);
  const f = rt.arena.f32;
  for (let c = 0; c < channels; c++) {
    const lc = f[(l >> 2) + c], uc = f[(u >> 2) + c];
    check(Number.isFinite(lc) && Number.isFinite(uc) && lc < uc, "E_RANGE",
      () => `${what}: channel ${c} range [${lc}, ${uc}] must be finite with l < u`);
    const s = Math.fround(Math.fround(uc - lc) / (levels - 1));
    check(Number.isFinite(s) && s > 0, "E_RANGE", () => `${what}: channel ${c} step is ${s} as f32`);
  }
}

export interface FakeQuantPerChannelCall {
  x: number; xStride?: number;
  /** Output (may be x, same stride). */
  y: number; yStride?: number;
  pixels: number; channels: number;
  /** Byte offsets of `channels` f32 lower / upper bounds. */
  l: number; u: number;
  levels: number;
}

/** y = q_c(x) per channel (bit-identical to the reference). */
export function f32FakeQuantPerChannel(rt: Runtime, c: FakeQuantPerChannelCall): void {
  checkDims(c.pixels, c.channels);
  checkChannelRanges(rt, c.l, c.u, c.channels, c.levels, "fake quant per channel");
  const xs = operand(rt, c.x, c.xStride, c.pixels, c.channels, "fake quant per channel: x");
  const ys = operand(rt, c.y, c.yStride, c.pixels, c.channels, "fake quant per channel: y");
  k(rt).f32_fake_quant_pc_nhwc(c.x, xs, c.y, ys, c.pixels, c.channels, c.l, c.u, c.levels - 1);
}

export interface FakeQuantPerChannelBackwardCall {
  x: number; xStride?: number;
  dy: number; dyStride?: number;
  /** Input gradient (written; may be dy); null: range gradients only. */
  dx?: number | null; dxStride?: number;
  pixels: number; channels: number;
  l: number; u: number; levels: number;
  /** Range gradients, `channels` f32 each, accumulated into (+=); null: skipped. */
  dl?: number | null; du?: number | null;
}

/**
 * Per-channel STE / LSQ backward: dx = dy·[l[c] ≤ x ≤ u[c]] (bit-exact), dl[c] += Σ_{x<l} dy + Σ_in dy·(t − r)/n,
 * du[c] += Σ_{x>u} dy + Σ_in dy·(r − t)/n (f32 partials of ≤ 32 pixels, f64 sums, one rounding).
 */
export function f32FakeQuantPerChannelBackward(rt: Runtime, c: FakeQuantPerChannelBackwardCall): void {
  checkDims(c.pixels, c.channels);
  const what = "fake quant per channel backward";
  checkChannelRanges(rt, c.l, c.u, c.channels, c.levels, what);
  const xs = operand(rt, c.x, c.xStride, c.pixels, c.channels, `${what}: x`);
  const dys = operand(rt, c.dy, c.dyStride, c.pixels, c.channels, `${what}: dy`);
  const [dx, dxs] = optional(rt, c.dx, c.dxStride, c.pixels, c.channels, `${what}: dx`);
  const [dl] = optional(rt, c.dl, c.channels, 1, c.channels, `${what}: dl`);
  const [du] = optional(rt, c.du, c.channels, 1, c.channels, `${what}: du`);
  k(rt).f32_fake_quant_pc_backward_nhwc(c.x, xs, c.dy, dys, dx, dxs, c.pixels, c.channels, c.l, c.u, c.levels - 1, dl, du);
}

// ---------------------------------------------------------------------------
// Per-channel affine (ODM v1 offsets): y = x·a[c] + b[c].

export interface ChannelAffineCall {
  x: number; xStride?: number;
  /** Output (may be x, same stride). */
  y: number; yStride?: number;
  pixels: number; channels: number;
  /** Byte offsets of `channels` f32 scales a and shifts b. */
  a: number; b: number;
}

/** y = fround(fround(x·a[c]) + b[c]) (mul, then add, in both builds: bit-exact). */
export function f32ChannelAffine(rt: Runtime, c: ChannelAffineCall): void {
  checkDims(c.pixels, c.channels);
  const xs = operand(rt, c.x, c.xStride, c.pixels, c.channels, "channel affine: x");
  const ys = operand(rt, c.y, c.yStride, c.pixels, c.channels, "channel affine: y");
  operand(rt, c.a, c.channels, 1, c.channels, "channel affine: a");
  operand(rt, c.b, c.channels, 1, c.channels, "channel affine: b");
  k(rt).f32_channel_affine_nhwc(c.x, xs, c.y, ys, c.pixels, c.channels, c.a, c.b);
}

export interface ChannelAffineBackwardCall {
  /** Forward input x. */
  x: number; xStride?: number;
  dy: number; dyStride?: number;
  /** Input gradient dy·a (written; may be dy, same stride); null: not computed. */
  dx?: number | null; dxStride?: number;
  pixels: number; channels: number;
  /** Forward scales (channels f32). */
  a: number;
  /** Parameter gradients (channels f32 each), accumulated into; null: skipped. */
  da?: number | null;
  db?: number | null;
}

/**
 * dx = dy·a[c]; da[c] += Σ dy·x; db[c] += Σ dy. Sums are per-lane f32 partials of ≤ 32 pixels added in
 * f64, rounded once into da/db: |error| ≲ 34·2^-24·(Σ|dy·x| + |da₀|).
 */
export function f32ChannelAffineBackward(rt: Runtime, c: ChannelAffineBackwardCall): void {
  checkDims(c.pixels, c.channels);
  const xs = operand(rt, c.x, c.xStride, c.pixels, c.channels, "channel affine backward: x");
  const dys = operand(rt, c.dy, c.dyStride, c.pixels, c.channels, "channel affine backward: dy");
  const [dx, dxs] = optional(rt, c.dx, c.dxStride, c.pixels, c.channels, "channel affine backward: dx");
  operand(rt, c.a, c.channels, 1, c.channels, "channel affine backward: a");
  const [da] = optional(rt, c.da, c.channels, 1, c.channels, "channel affine backward: da");
  const [db] = optional(rt, c.db, c.channels, 1, c.channels, "channel affine backward: db");
  k(rt).f32_channel_affine_backward_nhwc(c.x, xs, c.dy, dys, dx, dxs, c.pixels, c.channels, c.a, da, db);
}

// ---------------------------------------------------------------------------
// Data movement and upsampling backward. Geometry as in depthToSpaceAt / upsampleNearestAt:
// height × width is the small grid.

export interface SpaceToDepthCall {
  /** [height·block, width·block, channels] (e.g. the gradient of a depth_to_space output). */
  x: number; xStride?: number;
  /** [height, width, channels·block²] (written). */
  y: number; yStride?: number;
  height: number; width: number;
  /** C: channels of the large tensor. */
  channels: number;
  block: number;
}

/**
 * y[h, w, (i·b + j)·C + ch] = x[h·b + i, w·b + j, ch] (TF DCR order; inverse of depth_to_space, so the
 * input gradient of depth_to_space is f32SpaceToDepth of its output gradient). x and y must not overlap.
 */
export function f32SpaceToDepth(rt: Runtime, c: SpaceToDepthCall): void {
  checkSpatialGeometry(c.height, c.width, c.channels, c.block, "block");
  const cy = c.channels * c.block * c.block;
  const nSmall = c.height * c.width, nBig = nSmall * c.block * c.block;
  if (nSmall === 0) return;
  const xs = operand(rt, c.x, c.xStride, nBig, c.channels, "space to depth: x");
  const ys = operand(rt, c.y, c.yStride, nSmall, cy, "space to depth: y");
  noOverlap(c.x, 4 * spanOf(nBig, c.channels, xs), c.y, 4 * spanOf(nSmall, cy, ys), "space to depth: x and y overlap");
  k(rt).x32_space_to_depth_nhwc(c.x, c.height, c.width, c.channels, c.block, xs, c.y, ys);
}

export interface UpsampleNearestBackwardCall {
  /** Gradient of the upsampled tensor [height·factor, width·factor, channels]. */
  dy: number; dyStride?: number;
  /** Input gradient [height, width, channels] (written). */
  dx: number; dxStride?: number;
  height: number; width: number; channels: number;
  factor: number;
}

/** dx[h, w, ch] = Σ_{i,j<f} dy[h·f + i, w·f + j, ch] (f32 adds in the order i, then j; bit-exact). dx, dy must not overlap. */
export function f32UpsampleNearestBackward(rt: Runtime, c: UpsampleNearestBackwardCall): void {
  checkSpatialGeometry(c.height, c.width, c.channels, c.factor, "factor");
  const nSmall = c.height * c.width, nBig = nSmall * c.factor * c.factor;
  if (nSmall === 0) return;
  const dys = operand(rt, c.dy, c.dyStride, nBig, c.channels, "upsample backward: dy");
  const dxs = operand(rt, c.dx, c.dxStride, nSmall, c.channels, "upsample backward: dx");
  noOverlap(c.dy, 4 * spanOf(nBig, c.channels, dys), c.dx, 4 * spanOf(nSmall, c.channels, dxs), "upsample backward: dx and dy overlap");
  k(rt).f32_upsample_nearest_backward_nhwc(c.dy, c.height, c.width, c.channels, c.factor, dys, c.dx, dxs);
}

function noOverlap(a: number, aBytes: number, b: number, bBytes: number, msg: string): void {
  check(a + aBytes <= b || b + bBytes <= a, "E_ARGUMENT", msg);
}

// ---------------------------------------------------------------------------
// Losses over N = pixels·channels elements, d = fround(pred − target):
//   L1:  loss = scale·Σ|d|/N, grad = scale·sign(d)/N, sign(0) = 0 (the subgradient 0 at a tie);
//   MSE: loss = scale·Σd²/N,  grad = 2·scale·d/N.
// grad is fround(sign(d)·fround(scale/N)) resp. fround(d·fround(2·scale/N)): bit-exact. The loss sums
// per-lane f32 partials of ≤ 32 elements in f64: relative error ≲ 34·2^-24.

export interface LossCall {
  pred: number; predStride?: number;
  target: number; targetStride?: number;
  /** Gradient w.r.t. pred (written); null: loss only. */
  grad?: number | null; gradStride?: number;
  pixels: number; channels: number;
  /** Loss weight (default 1), applied to loss and grad. */
  scale?: number;
}

function lossCall(rt: Runtime, c: LossCall, name: string, gradFactor: number,
  run: (kk: Kernels, ps: number, ts: number, g: number, gs: number, kf: number) => number): { loss: number; grad: boolean } {
  checkDims(c.pixels, c.channels, 1);
  const n = c.pixels * c.channels;
  check(n <= MAX_I32, "E_SHAPE", `${name}: too many elements`);
  const scale = c.scale ?? 1;
  checkFinite(scale, `${name}: scale`);
  const ps = operand(rt, c.pred, c.predStride, c.pixels, c.channels, `${name}: pred`);
  const ts = operand(rt, c.target, c.targetStride, c.pixels, c.channels, `${name}: target`);
  const [g, gs] = optional(rt, c.grad, c.gradStride, c.pixels, c.channels, `${name}: grad`);
  const sum = run(k(rt), ps, ts, g, gs, Math.fround((gradFactor * scale) / n));
  return { loss: (scale * sum) / n, grad: g !== 0 };
}

/** Mean absolute error and its gradient. Returns the loss (f64). */
export function f32L1Loss(rt: Runtime, c: LossCall): { loss: number } {
  const r = lossCall(rt, c, "l1 loss", 1, (kk, ps, ts, g, gs, kf) => kk.f32_l1_loss_nhwc(c.pred, ps, c.target, ts, g, gs, c.pixels, c.channels, kf));
  return { loss: r.loss };
}

/** Mean squared error and its gradient. Returns the loss (f64). */
export function f32MseLoss(rt: Runtime, c: LossCall): { loss: number } {
  const r = lossCall(rt, c, "mse loss", 2, (kk, ps, ts, g, gs, kf) => kk.f32_mse_loss_nhwc(c.pred, ps, c.target, ts, g, gs, c.pixels, c.channels, kf));
  return { loss: r.loss };
}
