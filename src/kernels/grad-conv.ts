// Gradients of the fp32 'same' convolution (stride 1, odd k, NHWC, HWIO weights)
// for the training engine. Every operand lives in the WASM arena (byte offsets,
// pixel strides ≥ channels so channel slices of a concat buffer work).
//
// Input gradient: out[y, x, o] = Σ in[y+ky−p, x+kx−p, ci]·W[ky][kx][ci][o] gives
//   dx[y, x, ci] = Σ_{ky,kx,o} dy[y−ky+p, x−kx+p, o]·W[ky][kx][ci][o];
// substituting ky' = k−1−ky, kx' = k−1−kx:
//   dx[y, x, ci] = Σ_{ky',kx',o} dy[y+ky'−p, x+kx'−p, o]·W[k−1−ky'][k−1−kx'][ci][o],
// a forward 'same' conv of dy (cin' = cout, cout' = cin) with the HWIO kernel
// W'[ky'][kx'][o][ci] = W[k−1−ky'][k−1−kx'][ci][o] and zero bias — the
// (already fast) forward kernel f32_conv_nhwc, weights packed by
// packF32ConvBackwardInput. The zero padding lines up exactly: dy outside the
// image is 0 in both forms.
//
// Weight/bias gradient: assembly/grad/f32-conv-backward.ts.
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import { runtime, type Runtime } from "../runtime/runtime.ts";
import { F32_CONV_MAX_K, f32ConvNhwc, f32ConvPackedLength, f32ConvScratchBytes, packF32Conv } from "./f32-conv.ts";

interface GradConvExports {
  f32_conv_backward_weights_nhwc(x: number, xStride: number, dy: number, dyStride: number, h: number, w: number,
    cin: number, cout: number, k: number, dw: number, db: number, scratch: number): void;
}

const MAX_DIM = 1 << 24;

function checkGeometry(k: number, cin: number, cout: number, what: string): void {
  checkInt(k, 1, F32_CONV_MAX_K, `${what}: kernel size k`);
  check(k % 2 === 1, "E_ARGUMENT", `${what}: kernel size must be odd ('same' padding), got ${k}`);
  checkInt(cin, 1, 1 << 20, `${what}: input channels`, "E_SHAPE");
  checkInt(cout, 1, 1 << 20, `${what}: output channels`, "E_SHAPE");
}

/**
 * HWIO kernel of the input-gradient conv: W'[ky][kx][o][ci] = W[k−1−ky][k−1−kx][ci][o]
 * (k·k·cout·cin floats; a conv with cout inputs and cin outputs).
 */
export function f32ConvBackwardInputHwio(hwio: Float32Array, k: number, cin: number, cout: number): Float32Array {
  checkGeometry(k, cin, cout, "conv backward-input");
  check(hwio.length === k * k * cin * cout, "E_SHAPE",
    () => `conv backward-input: weights have ${hwio.length} floats, expected k·k·cin·cout = ${k * k * cin * cout}`);
  const t = new Float32Array(hwio.length);
  for (let ky = 0; ky < k; ky++) {
    for (let kx = 0; kx < k; kx++) {
      const src = ((k - 1 - ky) * k + (k - 1 - kx)) * cin * cout;
      const dst = (ky * k + kx) * cout * cin;
      for (let ci = 0; ci < cin; ci++) {
        for (let o = 0; o < cout; o++) t[dst + o * cin + ci] = hwio[src + ci * cout + o];
      }
    }
  }
  return t;
}

/**
 * Packs HWIO weights W (k·k·cin·cout, of a conv cin → cout) for the input gradient: the
 * f32_conv_nhwc layout (packF32Conv) of the flipped, transposed kernel with zero bias. Run it with
 * f32ConvBackwardInput, or f32ConvNhwc with cin/cout swapped, input = dy, output = dx, no clamp.
 */
export function packF32ConvBackwardInput(hwio: Float32Array, k: number, cin: number, cout: number): Float32Array {
  return packF32Conv(f32ConvBackwardInputHwio(hwio, k, cin, cout), k, cout, cin, null);
}

/** Floats in packF32ConvBackwardInput's output. */
export function f32ConvBackwardInputPackedLength(k: number, cin: number, cout: number): number {
  return f32ConvPackedLength(k, cout, cin);
}

/** Scratch bytes f32ConvBackwardInput needs (the forward conv's, reading dy with cout channels). */
export function f32ConvBackwardInputScratchBytes(w: number, cout: number, k: number): number {
  return f32ConvScratchBytes(w, cout, k);
}

export interface F32ConvBackwardInputCall {
  /** Output gradient dy [h, w, cout], pixel stride dyStride ≥ cout. */
  dy: number;
  dyStride: number;
  /** Input gradient dx [h, w, cin] (written, not accumulated), pixel stride dxStride ≥ cin; must not overlap dy. */
  dx: number;
  dxStride: number;
  h: number;
  w: number;
  /** Channels of the forward conv: cin → cout. */
  cin: number;
  cout: number;
  k: number;
  /** packF32ConvBackwardInput's buffer. */
  packed: number;
  /** f32ConvBackwardInputScratchBytes(w, cout, k) bytes. */
  scratch: number;
}

/** dx = ∂L/∂x of a conv cin → cout given dy = ∂L/∂out (written; the caller sums multiple consumers). */
export function f32ConvBackwardInput(rt: Runtime, c: F32ConvBackwardInputCall): void {
  f32ConvNhwc(rt, {
    input: c.dy, inStride: c.dyStride, output: c.dx, outStride: c.dxStride, h: c.h, w: c.w, cin: c.cout, cout: c.cin,
    k: c.k, packed: c.packed, outMin: -Infinity, outMax: Infinity, scratch: c.scratch,
  });
}

/** Rows of a band in the weight-gradient kernel (BAND in assembly/grad/f32-conv-backward.ts). */
const BAND = 4;

const align64 = (n: number): number => Math.ceil(n / 64) * 64;

/**
 * Scratch bytes f32ConvBackwardWeights needs: a padded f32 copy of dw ([k][k][ciP][coutP], channels
 * rounded up to 4) and db, a ring of BAND + k − 1 zero-padded input rows and BAND dy rows (both
 * re-laid out in channel blocks). For 3×3 64→64 at width 48: ≈ 0.25 MB.
 */
export function f32ConvBackwardWeightsScratchBytes(w: number, cin: number, cout: number, k: number): number {
  checkInt(w, 1, MAX_DIM, "conv backward-weights: width", "E_SHAPE");
  checkGeometry(k, cin, cout, "conv backward-weights");
  const ciP = Math.ceil(cin / 4) * 4, coutP = Math.ceil(cout / 4) * 4;
  return 64 + align64(4 * k * k * ciP * coutP) + align64(4 * coutP) + align64(4 * (BAND + k - 1) * (w + k - 1) * ciP)
    + align64(4 * BAND * w * coutP);
}

export interface F32ConvBackwardWeightsCall {
  /** Forward input x [h, w, cin], pixel stride xStride ≥ cin. */
  x: number;
  xStride: number;
  /** Output gradient dy [h, w, cout], pixel stride dyStride ≥ cout. */
  dy: number;
  dyStride: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  k: number;
  /** HWIO f32 [k][k][cin][cout], accumulated into (+=). */
  dw: number;
  /** cout f32, accumulated into (+=); null/undefined: no bias gradient. */
  db?: number | null;
  /** f32ConvBackwardWeightsScratchBytes(w, cin, cout, k) bytes. */
  scratch: number;
}

/**
 * dw[ky][kx][ci][o] += Σ_{y,x} x[y+ky−p, x+kx−p, ci]·dy[y, x, o] (zero outside the image),
 * db[o] += Σ_{y,x} dy[y, x, o]. Accumulates, so a batch is a loop over samples into the same
 * buffers (the caller zeroes them). Validates everything, then one WASM call.
 */
export function f32ConvBackwardWeights(rt: Runtime, c: F32ConvBackwardWeightsCall): void {
  const what = "conv backward-weights";
  checkGeometry(c.k, c.cin, c.cout, what);
  checkInt(c.h, 1, MAX_DIM, `${what}: height`, "E_SHAPE");
  checkInt(c.w, 1, MAX_DIM, `${what}: width`, "E_SHAPE");
  checkInt(c.xStride, c.cin, MAX_DIM, `${what}: xStride (≥ cin = ${c.cin})`, "E_SHAPE");
  checkInt(c.dyStride, c.cout, MAX_DIM, `${what}: dyStride (≥ cout = ${c.cout})`, "E_SHAPE");
  const mem = rt.arena.capacity;
  const span = (base: number, stride: number, ch: number): number => base + 4 * ((c.h * c.w - 1) * stride + ch);
  const hasDb = c.db !== undefined && c.db !== null;
  const regions: Array<[string, number, number]> = [
    ["x", c.x, span(c.x, c.xStride, c.cin)],
    ["dy", c.dy, span(c.dy, c.dyStride, c.cout)],
    ["dw", c.dw, c.dw + 4 * c.k * c.k * c.cin * c.cout],
    ["scratch", c.scratch, c.scratch + f32ConvBackwardWeightsScratchBytes(c.w, c.cin, c.cout, c.k)],
  ];
  if (hasDb) regions.push(["db", c.db!, c.db! + 4 * c.cout]);
  for (const [name, a, b] of regions) {
    check(Number.isInteger(a) && a > 0 && a % 4 === 0 && b <= mem, "E_SHAPE",
      () => `${what}: ${name} [${a}, ${b}) is not 4-aligned inside WASM memory (${mem} bytes)`);
  }
  // Written regions (dw, db, scratch) must not overlap anything else (x and dy may overlap each other).
  for (let i = 2; i < regions.length; i++) {
    for (let j = 0; j < regions.length; j++) {
      if (i === j) continue;
      const [ni, ai, bi] = regions[i], [nj, aj, bj] = regions[j];
      if (ai < bj && aj < bi) throw new LowbitError("E_ARGUMENT", `${what}: ${ni} overlaps ${nj}`);
    }
  }
  rt.kernels<GradConvExports>().f32_conv_backward_weights_nhwc(c.x, c.xStride, c.dy, c.dyStride, c.h, c.w,
    c.cin, c.cout, c.k, c.dw, hasDb ? c.db! : 0, c.scratch);
}

export interface Conv2dF32BackwardOptions {
  h: number;
  w: number;
  cin: number;
  cout: number;
  /** Odd kernel size. */
  k: number;
  /** HWIO weights of the forward conv (needed for dx). */
  weights?: Float32Array;
  /** Which gradients to compute (default: all three; dx needs weights). */
  want?: { dx?: boolean; dw?: boolean; db?: boolean };
  runtime?: Runtime;
}

/**
 * Typed-array convenience: the gradients of out = conv_k(x, W) + b for a dense x [h, w, cin] and
 * dy = ∂L/∂out [h, w, cout]: { dx [h, w, cin], dw HWIO, db [cout] } (fresh arrays; copies through
 * arena scratch). The engine uses the arena calls above instead.
 */
export function conv2dF32Backward(x: Float32Array, dy: Float32Array, o: Conv2dF32BackwardOptions):
  { dx: Float32Array | null; dw: Float32Array | null; db: Float32Array | null } {
  const { h, w, cin, cout, k } = o;
  checkGeometry(k, cin, cout, "conv backward");
  checkInt(h, 1, MAX_DIM, "conv backward: height", "E_SHAPE");
  checkInt(w, 1, MAX_DIM, "conv backward: width", "E_SHAPE");
  check(x instanceof Float32Array && x.length === h * w * cin, "E_SHAPE",
    () => `conv backward: x must be a Float32Array of h·w·cin = ${h * w * cin} floats, got ${x?.length}`);
  check(dy instanceof Float32Array && dy.length === h * w * cout, "E_SHAPE",
    () => `conv backward: dy must be a Float32Array of h·w·cout = ${h * w * cout} floats, got ${dy?.length}`);
  const wantDx = o.want?.dx ?? true, wantDw = o.want?.dw ?? true, wantDb = o.want?.db ?? true;
  const packed = wantDx ? (check(o.weights !== undefined, "E_ARGUMENT", "conv backward: weights are required for dx"),
    packF32ConvBackwardInput(o.weights!, k, cin, cout)) : null;
  const rt = o.runtime ?? runtime();
  const a = rt.arena;
  const m = a.mark();
  try {
    const px = a.put(x), pdy = a.put(dy);
    const res = { dx: null as Float32Array | null, dw: null as Float32Array | null, db: null as Float32Array | null };
    if (packed) {
      const pdx = a.alloc(4 * h * w * cin);
      f32ConvBackwardInput(rt, { dy: pdy, dyStride: cout, dx: pdx, dxStride: cin, h, w, cin, cout, k, packed: a.put(packed),
        scratch: a.alloc(f32ConvBackwardInputScratchBytes(w, cout, k)) });
      a.read(pdx, (res.dx = new Float32Array(h * w * cin)));
    }
    if (wantDw || wantDb) {
      // dw is always accumulated by the kernel; a zeroed scratch buffer stands in when only db is wanted.
      const pdw = a.put(new Float32Array(k * k * cin * cout));
      const pdb = wantDb ? a.put(new Float32Array(cout)) : null;
      f32ConvBackwardWeights(rt, { x: px, xStride: cin, dy: pdy, dyStride: cout, h, w, cin, cout, k, dw: pdw, db: pdb,
        scratch: a.alloc(f32ConvBackwardWeightsScratchBytes(w, cin, cout, k)) });
      if (wantDw) a.read(pdw, (res.dw = new Float32Array(k * k * cin * cout)));
      if (pdb !== null) a.read(pdb, (res.db = new Float32Array(cout)));
    }
    return res;
  } finally {
    a.release(m);
  }
}
