// Conv gradients: f32_conv_backward_weights_nhwc and the input gradient through the
// forward conv with packF32ConvBackwardInput, vs the float64 references
// (src/kernels/ref/grad-conv.ts) and vs central finite differences of the forward conv.
//
// Tolerance (as in test/kernels/f32-conv.test.ts): a WASM gradient element is an f32
// sum of m products (+ the previous dw for the accumulating weight gradient), one
// rounding per product and per add (mul+add, simd build) or per FMA (relaxed), so
// |got − ref| ≤ (m + 3)·2^-24·(Σ|terms| + |dw₀|) with m the number of summed products
// (Higham §4.2, first order). A lost or doubled term (~Σ/m) breaks the bound for the
// sizes used here (m·m·2^-24 ≪ 1).
import test from "tape";
import { LowbitError } from "../../src/runtime/errors.ts";
import {
  conv2dF32Backward, f32ConvBackwardInput, f32ConvBackwardInputHwio, f32ConvBackwardInputScratchBytes, f32ConvBackwardWeights,
  f32ConvBackwardWeightsScratchBytes, packF32ConvBackwardInput,
} from "../../src/kernels/grad-conv.ts";
import { f32ConvBackwardInputRef, f32ConvBackwardWeightsRef } from "../../src/kernels/ref/grad-conv.ts";
import type { Runtime } from "../../src/runtime/runtime.ts";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";

const U = 2 ** -24;

interface Geo { h: number; w: number; cin: number; cout: number; k: number; xStride: number; dyStride: number; dxStride: number }

function describe(g: Geo): string {
  return `${g.h}x${g.w} ${g.cin}->${g.cout} k${g.k} strides x${g.xStride} dy${g.dyStride} dx${g.dxStride}`;
}

const spanOf = (n: number, c: number, s: number): number => (n - 1) * s + c;

/** Puts a random strided tensor into the arena; returns [offset, host copy]. Gaps hold random junk too. */
function putRandom(rt: Runtime, rng: Rng, pixels: number, stride: number, c: number): [number, Float32Array] {
  const a = rng.fillF32(new Float32Array(spanOf(pixels, c, stride)), -1, 1);
  return [rt.arena.put(a), a];
}

/** Weight gradient of one random case vs the reference; returns the first violation or null. */
function runWeights(rt: Runtime, rng: Rng, g: Geo, withDb: boolean): string | null {
  const { h, w, cin, cout, k } = g;
  const a = rt.arena;
  const m = a.mark();
  try {
    const [px, x] = putRandom(rt, rng, h * w, g.xStride, cin);
    const [pdy, dy] = putRandom(rt, rng, h * w, g.dyStride, cout);
    const dw0 = rng.fillF32(new Float32Array(k * k * cin * cout), -0.5, 0.5);
    const db0 = rng.fillF32(new Float32Array(cout), -0.5, 0.5);
    const pdw = a.put(dw0), pdb = withDb ? a.put(db0) : null;
    const guard = a.put(Float32Array.of(7.25)); // a sentinel right after the buffers
    const ps = a.alloc(f32ConvBackwardWeightsScratchBytes(w, cin, cout, k));
    f32ConvBackwardWeights(rt, { x: px, xStride: g.xStride, dy: pdy, dyStride: g.dyStride, h, w, cin, cout, k, dw: pdw, db: pdb, scratch: ps });
    const got = new Float32Array(dw0.length);
    a.read(pdw, got);
    const want = new Float64Array(dw0), mag = new Float64Array(dw0.length);
    const wantB = new Float64Array(db0), magB = new Float64Array(cout);
    f32ConvBackwardWeightsRef({
      x: { data: x, stride: g.xStride }, dy: { data: dy, stride: g.dyStride }, h, w, cin, cout, k,
      dw: want as unknown as Float32Array, db: wantB as unknown as Float32Array, mag, magB,
    });
    const tol = (h * w + 3) * U;
    for (let i = 0; i < got.length; i++) {
      const err = Math.abs(got[i] - want[i]);
      if (!(err <= tol * mag[i])) return `dw[${i}]: got ${got[i]}, want ${want[i]} (|err| ${err.toExponential(2)} > ${(tol * mag[i]).toExponential(2)})`;
    }
    if (pdb !== null) {
      const gotB = new Float32Array(cout);
      a.read(pdb, gotB);
      for (let o = 0; o < cout; o++) {
        const err = Math.abs(gotB[o] - wantB[o]);
        if (!(err <= tol * magB[o])) return `db[${o}]: got ${gotB[o]}, want ${wantB[o]}`;
      }
    }
    if (a.f32[guard >> 2] !== 7.25) return "wrote past the end of dw/db";
    return null;
  } finally {
    a.release(m);
  }
}

/** Input gradient of one random case vs the reference (strided dx: the gaps must survive). */
function runInput(rt: Runtime, rng: Rng, g: Geo): string | null {
  const { h, w, cin, cout, k } = g;
  const a = rt.arena;
  const m = a.mark();
  try {
    const weights = rng.fillF32(new Float32Array(k * k * cin * cout), -1, 1);
    const [pdy, dy] = putRandom(rt, rng, h * w, g.dyStride, cout);
    const dxLen = spanOf(h * w, cin, g.dxStride);
    const sentinel = -3.5;
    const pdx = a.put(new Float32Array(dxLen).fill(sentinel));
    const pW = a.put(packF32ConvBackwardInput(weights, k, cin, cout));
    const ps = a.alloc(f32ConvBackwardInputScratchBytes(w, cout, k));
    f32ConvBackwardInput(rt, { dy: pdy, dyStride: g.dyStride, dx: pdx, dxStride: g.dxStride, h, w, cin, cout, k, packed: pW, scratch: ps });
    const got = new Float32Array(dxLen);
    a.read(pdx, got);
    const want = new Float64Array(dxLen).fill(sentinel);
    const mag = new Float64Array(h * w * cin);
    f32ConvBackwardInputRef({
      dy: { data: dy, stride: g.dyStride }, dx: { data: want as unknown as Float32Array, stride: g.dxStride },
      h, w, cin, cout, k, weights, mag,
    });
    const p = (k - 1) / 2;
    for (let i = 0; i < dxLen; i++) {
      const pix = Math.floor(i / g.dxStride), c = i - pix * g.dxStride;
      if (c >= cin) {
        if (got[i] !== sentinel) return `gap element ${i} changed to ${got[i]}`;
        continue;
      }
      const y = Math.floor(pix / w), x = pix % w;
      const rows = Math.min(h - 1, y + p) - Math.max(0, y - p) + 1, cols = Math.min(w - 1, x + p) - Math.max(0, x - p) + 1;
      const tol = (rows * cols * cout + 3) * U * mag[pix * cin + c];
      const err = Math.abs(got[i] - want[i]);
      if (!(err <= tol)) return `dx (${y},${x}) ch ${c}: got ${got[i]}, want ${want[i]} (|err| ${err.toExponential(2)} > ${tol.toExponential(2)})`;
    }
    return null;
  } finally {
    a.release(m);
  }
}

const CH = [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 24, 33, 48];

function randomGeo(rng: Rng): Geo {
  const cin = rng.pick(CH), cout = rng.pick(CH);
  return {
    h: rng.pick([1, 1, 2, 3, 4, 5, 6, 7, 9, 11]),
    w: rng.pick([1, 2, 3, 4, 5, 7, 8, 9, 13]),
    cin, cout,
    k: rng.pick([1, 1, 3, 3, 3, 5, 7]),
    xStride: cin + (rng.next() < 0.35 ? rng.int(1, 9) : 0),
    dyStride: cout + (rng.next() < 0.35 ? rng.int(1, 9) : 0),
    dxStride: cin + (rng.next() < 0.35 ? rng.int(1, 9) : 0),
  };
}

test("grad conv: backward-weights vs float64 reference (random shapes, 1×1 images, odd channels, strides, accumulate)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0x6a7d1);
  let bad = 0;
  const n = 300;
  for (let i = 0; i < n; i++) {
    const g = randomGeo(rng);
    const err = runWeights(rt, rng, g, rng.next() < 0.7);
    if (err && ++bad <= 5) t.fail(`${describe(g)}: ${err}`);
  }
  t.equal(bad, 0, `${n} random cases within (h·w+3)·2^-24·Σ|x·dy|`);
});

test("grad conv: backward-weights on layer shapes (3/12/48/64 channels, bands, borders)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0xbeef);
  const shapes: Array<[number, number, number, number, number]> = [
    [9, 10, 64, 64, 3], [6, 7, 3, 64, 3], [7, 5, 64, 3, 3], [5, 9, 48, 12, 3], [8, 6, 12, 48, 5], [4, 11, 64, 64, 1],
    [13, 3, 5, 5, 3], [1, 17, 12, 12, 3], [17, 1, 12, 3, 5], [2, 2, 3, 3, 7],
  ];
  for (const [h, w, cin, cout, k] of shapes) {
    const g: Geo = { h, w, cin, cout, k, xStride: cin, dyStride: cout, dxStride: cin };
    t.equal(runWeights(rt, rng, g, true), null, describe(g));
    const gs: Geo = { ...g, xStride: cin + 5, dyStride: cout + 3 };
    t.equal(runWeights(rt, rng, gs, false), null, `${describe(gs)} (channel slices, no db)`);
  }
});

test("grad conv: backward-input (flipped/transposed forward conv) vs float64 reference", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0x1d9);
  let bad = 0;
  const n = 200;
  for (let i = 0; i < n; i++) {
    const g = randomGeo(rng);
    const err = runInput(rt, rng, g);
    if (err && ++bad <= 5) t.fail(`${describe(g)}: ${err}`);
  }
  t.equal(bad, 0, `${n} random cases within (m+3)·2^-24·Σ|dy·W|`);
});

test("grad conv: f32ConvBackwardInputHwio layout (flip + transpose)", (t) => {
  // k = 3, cin = 2, cout = 3: W[ky][kx][ci][o] = 100·ky + 10·kx + ci + 0.1·o (identifiable).
  const k = 3, cin = 2, cout = 3;
  const w = new Float32Array(k * k * cin * cout);
  for (let ky = 0; ky < k; ky++) for (let kx = 0; kx < k; kx++) for (let ci = 0; ci < cin; ci++) for (let o = 0; o < cout; o++)
    w[((ky * k + kx) * cin + ci) * cout + o] = 100 * ky + 10 * kx + ci + 0.1 * o;
  const tr = f32ConvBackwardInputHwio(w, k, cin, cout);
  let ok = true;
  for (let ky = 0; ky < k; ky++) for (let kx = 0; kx < k; kx++) for (let o = 0; o < cout; o++) for (let ci = 0; ci < cin; ci++) {
    const v = tr[((ky * k + kx) * cout + o) * cin + ci];
    if (v !== Math.fround(100 * (2 - ky) + 10 * (2 - kx) + ci + 0.1 * o)) ok = false;
  }
  t.ok(ok, "W'[ky][kx][o][ci] = W[k-1-ky][k-1-kx][ci][o]");
  t.end();
});

/** f64 forward conv 'same': out[y,x,o] = b[o] + Σ x[y+ky-p, x+kx-p, ci]·W (dense tensors). */
function conv64(x: Float64Array, W: Float64Array, b: Float64Array, h: number, w: number, cin: number, cout: number, k: number): Float64Array {
  const p = (k - 1) / 2;
  const out = new Float64Array(h * w * cout);
  for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) for (let o = 0; o < cout; o++) {
    let s = b[o];
    for (let ky = 0; ky < k; ky++) {
      const iy = y + ky - p;
      if (iy < 0 || iy >= h) continue;
      for (let kx = 0; kx < k; kx++) {
        const ix = xx + kx - p;
        if (ix < 0 || ix >= w) continue;
        for (let ci = 0; ci < cin; ci++) s += x[(iy * w + ix) * cin + ci] * W[((ky * k + kx) * cin + ci) * cout + o];
      }
    }
    out[(y * w + xx) * cout + o] = s;
  }
  return out;
}

test("grad conv: WASM gradients vs central finite differences of the forward conv (L = Σ g·conv(x, W, b))", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0xfd);
  const cases: Array<[number, number, number, number, number]> = [[4, 5, 3, 5, 3], [1, 1, 3, 12, 3], [3, 2, 5, 4, 5], [5, 4, 12, 3, 1], [2, 7, 4, 9, 3]];
  for (const [h, w, cin, cout, k] of cases) {
    const x = rng.fillF32(new Float32Array(h * w * cin), -1, 1);
    const W = rng.fillF32(new Float32Array(k * k * cin * cout), -1, 1);
    const b = rng.fillF32(new Float32Array(cout), -1, 1);
    const g = rng.fillF32(new Float32Array(h * w * cout), -1, 1); // dL/dout
    const x64 = Float64Array.from(x), W64 = Float64Array.from(W), b64 = Float64Array.from(b);
    const L = (): number => conv64(x64, W64, b64, h, w, cin, cout, k).reduce((s, v, i) => s + v * g[i], 0);
    const eps = 1e-3;
    const fd = (arr: Float64Array, i: number): number => {
      const v = arr[i];
      arr[i] = v + eps; const lp = L();
      arr[i] = v - eps; const lm = L();
      arr[i] = v;
      return (lp - lm) / (2 * eps);
    };
    // WASM gradients.
    const a = rt.arena;
    const m = a.mark();
    const px = a.put(x), pg = a.put(g);
    const pdw = a.put(new Float32Array(W.length)), pdb = a.put(new Float32Array(cout));
    f32ConvBackwardWeights(rt, { x: px, xStride: cin, dy: pg, dyStride: cout, h, w, cin, cout, k, dw: pdw, db: pdb,
      scratch: a.alloc(f32ConvBackwardWeightsScratchBytes(w, cin, cout, k)) });
    const pdx = a.alloc(4 * h * w * cin);
    f32ConvBackwardInput(rt, { dy: pg, dyStride: cout, dx: pdx, dxStride: cin, h, w, cin, cout, k,
      packed: a.put(packF32ConvBackwardInput(W, k, cin, cout)), scratch: a.alloc(f32ConvBackwardInputScratchBytes(w, cout, k)) });
    const dw = new Float32Array(W.length), db = new Float32Array(cout), dx = new Float32Array(x.length);
    a.read(pdw, dw); a.read(pdb, db); a.read(pdx, dx);
    a.release(m);
    // L is linear in each parameter, so the f64 central difference is exact up to ~1e-12; the
    // WASM side carries f32 rounding of sums of ≤ h·w·k²·max(cin,cout) unit-scale terms.
    const tol = (n: number): number => (n + 3) * U * n + 1e-9;
    let worst = 0, ok = true;
    const checkAll = (name: string, got: Float32Array, arr: Float64Array, n: number): void => {
      for (let i = 0; i < got.length; i++) {
        const want = fd(arr, i);
        const err = Math.abs(got[i] - want);
        worst = Math.max(worst, err);
        if (!(err <= tol(n))) {
          if (ok) t.fail(`${h}x${w} ${cin}->${cout} k${k} ${name}[${i}]: got ${got[i]}, fd ${want}`);
          ok = false;
        }
      }
    };
    checkAll("dw", dw, W64, h * w);
    checkAll("db", db, b64, h * w);
    checkAll("dx", dx, x64, k * k * cout);
    t.ok(ok, `${h}x${w} ${cin}->${cout} k${k}: dw, db, dx match finite differences (worst |err| ${worst.toExponential(1)})`);
  }
});

test("grad conv: known values (1-channel 3×3, all-ones dy)", async (t) => {
  const rt = await testRuntime();
  // x = [[1,2],[3,4]], dy = 1 everywhere, k = 3: dw[ky][kx] = Σ of x over the pixels (y+ky-1, x+kx-1) in the image.
  const a = rt.arena;
  const m = a.mark();
  const px = a.put(Float32Array.of(1, 2, 3, 4)), pdy = a.put(Float32Array.of(1, 1, 1, 1));
  const pdw = a.put(new Float32Array(9)), pdb = a.put(Float32Array.of(0.5));
  f32ConvBackwardWeights(rt, { x: px, xStride: 1, dy: pdy, dyStride: 1, h: 2, w: 2, cin: 1, cout: 1, k: 3, dw: pdw, db: pdb,
    scratch: a.alloc(f32ConvBackwardWeightsScratchBytes(2, 1, 1, 3)) });
  const dw = new Float32Array(9), db = new Float32Array(1);
  a.read(pdw, dw); a.read(pdb, db);
  a.release(m);
  // ky=0 (rows above): only y=1 reads row 0 → kx=0: x[0][0]=1 (x=1); kx=1: 1+2; kx=2: 2.
  t.deepEqual(Array.from(dw), [1, 3, 2, 4, 10, 6, 3, 7, 4]);
  t.deepEqual(Array.from(db), [4.5], "db accumulates onto 0.5");
});

test("grad conv: scratch size matches the kernel's own computation", async (t) => {
  const rt = await testRuntime();
  const k = rt.kernels<{ f32_conv_backward_weights_scratch_bytes(w: number, cin: number, cout: number, k: number): number }>();
  for (const [w, cin, cout, kk] of [[1, 1, 1, 1], [48, 64, 64, 3], [7, 3, 5, 5], [13, 12, 3, 7], [2, 48, 12, 1]]) {
    t.equal(f32ConvBackwardWeightsScratchBytes(w, cin, cout, kk), k.f32_conv_backward_weights_scratch_bytes(w, cin, cout, kk), `w${w} ${cin}->${cout} k${kk}`);
  }
});

test("grad conv: bad arguments throw LowbitError before any WASM call", async (t) => {
  const rt = await testRuntime();
  const code = (f: () => unknown): string => {
    try { f(); return "no error"; } catch (e) { return e instanceof LowbitError ? e.code : `not a LowbitError: ${String(e)}`; }
  };
  const a = rt.arena;
  const m = a.mark();
  const h = 4, w = 5, cin = 3, cout = 5, k = 3;
  const px = a.alloc(4 * h * w * cin), pdy = a.alloc(4 * h * w * cout), pdw = a.alloc(4 * k * k * cin * cout), pdb = a.alloc(4 * cout);
  const ps = a.alloc(f32ConvBackwardWeightsScratchBytes(w, cin, cout, k));
  const call = { x: px, xStride: cin, dy: pdy, dyStride: cout, h, w, cin, cout, k, dw: pdw, db: pdb, scratch: ps };
  t.equal(code(() => f32ConvBackwardWeights(rt, call)), "no error", "valid call");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, db: null })), "no error", "no db");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, k: 2 })), "E_ARGUMENT", "even k");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, k: 0 })), "E_ARGUMENT", "k = 0");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, cin: 0 })), "E_SHAPE", "cin = 0");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, h: 0 })), "E_SHAPE", "h = 0");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, w: 1.5 })), "E_SHAPE", "fractional w");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, xStride: 2 })), "E_SHAPE", "xStride < cin");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, dyStride: 4 })), "E_SHAPE", "dyStride < cout");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, x: px + 2 })), "E_SHAPE", "unaligned x");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, scratch: a.capacity - 64 })), "E_SHAPE", "scratch past memory end");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, dw: px })), "E_ARGUMENT", "dw overlaps x");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, db: pdw })), "E_ARGUMENT", "db overlaps dw");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, scratch: pdy })), "E_ARGUMENT", "scratch overlaps dy");
  t.equal(code(() => f32ConvBackwardWeights(rt, { ...call, dy: 0 })), "E_SHAPE", "null dy");
  t.equal(code(() => f32ConvBackwardWeightsScratchBytes(0, 3, 5, 3)), "E_SHAPE", "scratch: w = 0");
  t.equal(code(() => packF32ConvBackwardInput(new Float32Array(10), 3, cin, cout)), "E_SHAPE", "pack: weight length");
  t.equal(code(() => packF32ConvBackwardInput(new Float32Array(4 * cin * cout), 2, cin, cout)), "E_ARGUMENT", "pack: even k");
  const nanW = new Float32Array(k * k * cin * cout); nanW[3] = NaN;
  t.equal(code(() => packF32ConvBackwardInput(nanW, k, cin, cout)), "E_RANGE", "pack: NaN weight");
  const pW = a.put(packF32ConvBackwardInput(new Float32Array(k * k * cin * cout), k, cin, cout));
  const pdx = a.alloc(4 * h * w * cin), ps2 = a.alloc(f32ConvBackwardInputScratchBytes(w, cout, k));
  const icall = { dy: pdy, dyStride: cout, dx: pdx, dxStride: cin, h, w, cin, cout, k, packed: pW, scratch: ps2 };
  t.equal(code(() => f32ConvBackwardInput(rt, icall)), "no error", "valid input-gradient call");
  t.equal(code(() => f32ConvBackwardInput(rt, { ...icall, dx: pdy })), "E_ARGUMENT", "dx overlaps dy");
  t.equal(code(() => f32ConvBackwardInput(rt, { ...icall, dxStride: 2 })), "E_SHAPE", "dxStride < cin");
  a.release(m);
});

test("grad conv: conv2dF32Backward (typed arrays) matches the references; argument checks", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(0xc2b);
  const h = 5, w = 6, cin = 5, cout = 12, k = 3;
  const x = rng.fillF32(new Float32Array(h * w * cin), -1, 1);
  const dy = rng.fillF32(new Float32Array(h * w * cout), -1, 1);
  const weights = rng.fillF32(new Float32Array(k * k * cin * cout), -1, 1);
  const r = conv2dF32Backward(x, dy, { h, w, cin, cout, k, weights, runtime: rt });
  const dw = new Float64Array(weights.length), db = new Float64Array(cout), dx = new Float64Array(x.length);
  const mag = new Float64Array(weights.length), magB = new Float64Array(cout), magX = new Float64Array(x.length);
  f32ConvBackwardWeightsRef({ x: { data: x, stride: cin }, dy: { data: dy, stride: cout }, h, w, cin, cout, k,
    dw: dw as unknown as Float32Array, db: db as unknown as Float32Array, mag, magB });
  f32ConvBackwardInputRef({ dy: { data: dy, stride: cout }, dx: { data: dx as unknown as Float32Array, stride: cin }, h, w, cin, cout, k, weights, mag: magX });
  const within = (got: Float32Array | null, want: Float64Array, m: Float64Array, n: number): boolean =>
    got !== null && got.every((v, i) => Math.abs(v - want[i]) <= (n + 3) * U * m[i]);
  t.ok(within(r.dw, dw, mag, h * w), "dw");
  t.ok(within(r.db, db, magB, h * w), "db");
  t.ok(within(r.dx, dx, magX, k * k * cout), "dx");
  const only = conv2dF32Backward(x, dy, { h, w, cin, cout, k, want: { dx: false, dw: false }, runtime: rt });
  t.ok(only.dx === null && only.dw === null && within(only.db, db, magB, h * w), "db only (no weights needed)");
  const code = (f: () => unknown): string => {
    try { f(); return "no error"; } catch (e) { return e instanceof LowbitError ? e.code : `not a LowbitError: ${String(e)}`; }
  };
  t.equal(code(() => conv2dF32Backward(x, dy, { h, w, cin, cout, k, runtime: rt })), "E_ARGUMENT", "dx without weights");
  t.equal(code(() => conv2dF32Backward(x.subarray(1), dy, { h, w, cin, cout, k, weights, runtime: rt })), "E_SHAPE", "x length");
  t.equal(code(() => conv2dF32Backward(x, dy, { h, w, cin, cout: 11, k, weights, runtime: rt })), "E_SHAPE", "dy length");
  t.equal(code(() => conv2dF32Backward(x, dy, { h, w, cin, cout, k: 4, weights, runtime: rt })), "E_ARGUMENT", "even k");
});
