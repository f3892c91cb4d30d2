// f32_conv_nhwc vs the float64 reference (src/kernels/ref/f32-conv.ts).
//
// Tolerance: the kernel sums m = (#in-image taps)·cin products plus the bias
// in f32, in some order, with a mul+add (simd build) or a fused multiply-add
// (relaxed build). Recursive summation of m+1 terms with one rounding per
// product and per addition is off by at most (m+1)·u·Σ|terms| (u = 2^-24,
// first order; Higham, "Accuracy and Stability", §4.2); the final f32 rounding
// of the reference adds u·|s| ≤ u·Σ|terms|. So each output must satisfy
//   |got − ref| ≤ (m + 3) · 2^-24 · (|bias| + Σ|w·x|),
// for both builds (clamping is 1-Lipschitz, so relu/clamp keep the bound);
// the simd and relaxed builds therefore differ by at most twice that. The
// shapes below keep m·(m·u) well under 1, so a lost or doubled term (~Σ/m)
// fails the bound.
import test from "tape";
import { LowbitError } from "../../src/runtime/errors.ts";
import { conv2dF32, f32ConvNhwc, f32ConvPackedLength, f32ConvScratchBytes, packF32Conv } from "../../src/kernels/f32-conv.ts";
import { f32ConvAbsSum, f32ConvRef, type F32ConvRefArgs } from "../../src/kernels/ref/f32-conv.ts";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";

const U = 2 ** -24;

interface Case {
  h: number; w: number; cin: number; cout: number; k: number;
  inStride: number; outStride: number; inOffset: number; outOffset: number;
  bias: boolean; outMin: number; outMax: number; relu: boolean;
}

function describe(c: Case): string {
  return `${c.h}x${c.w} ${c.cin}->${c.cout} k${c.k} strides ${c.inStride}/${c.outStride} offs ${c.inOffset}/${c.outOffset}` +
    `${c.bias ? " bias" : ""}${c.relu ? " relu" : ""} clamp[${c.outMin},${c.outMax}]`;
}

/** Runs one case through conv2dF32 and the reference; returns the first violation, or null. */
async function runCase(rng: Rng, c: Case): Promise<string | null> {
  const rt = await testRuntime();
  const taps = c.k * c.k * c.cin * c.cout;
  const weights = rng.fillF32(new Float32Array(taps), -1, 1);
  const bias = c.bias ? rng.fillF32(new Float32Array(c.cout), -2, 2) : null;
  const inLen = c.inOffset + (c.h * c.w - 1) * c.inStride + c.cin;
  const input = rng.fillF32(new Float32Array(inLen + rng.int(0, 3)), -1, 1);
  const outLen = c.outOffset + (c.h * c.w - 1) * c.outStride + c.cout;
  const sentinel = 12345.5;
  const out = new Float32Array(outLen + rng.int(0, 3)).fill(sentinel);
  const want = new Float32Array(out.length).fill(sentinel);
  const lo = c.relu ? Math.max(0, c.outMin) : c.outMin;
  const args: F32ConvRefArgs = {
    input, inOffset: c.inOffset, inStride: c.inStride, h: c.h, w: c.w, cin: c.cin, cout: c.cout, k: c.k,
    weights, bias, outMin: lo, outMax: c.outMax, out: want, outOffset: c.outOffset, outStride: c.outStride,
  };
  f32ConvRef(args);
  const mag = new Float64Array(c.h * c.w * c.cout);
  f32ConvAbsSum(args, mag);
  const usePacked = rng.next() < 0.5;
  conv2dF32(out, input, {
    h: c.h, w: c.w, cin: c.cin, cout: c.cout, k: c.k,
    ...(usePacked ? { packed: packF32Conv(weights, c.k, c.cin, c.cout, bias) } : { weights, bias }),
    relu: c.relu, outMin: c.outMin, outMax: c.outMax,
    inStride: c.inStride, outStride: c.outStride, inOffset: c.inOffset, outOffset: c.outOffset, runtime: rt,
  });
  const p = (c.k - 1) / 2;
  for (let i = 0; i < out.length; i++) {
    const rel = i - c.outOffset;
    const pix = Math.floor(rel / c.outStride);
    const o = rel - pix * c.outStride;
    const inside = rel >= 0 && pix < c.h * c.w && o < c.cout;
    if (!inside) {
      if (out[i] !== sentinel) return `element ${i} outside the output slice changed to ${out[i]}`;
      continue;
    }
    const y = Math.floor(pix / c.w), x = pix % c.w;
    const rows = Math.min(c.h - 1, y + p) - Math.max(0, y - p) + 1;
    const cols = Math.min(c.w - 1, x + p) - Math.max(0, x - p) + 1;
    const m = rows * cols * c.cin;
    const tol = (m + 3) * U * mag[pix * c.cout + o];
    const err = Math.abs(out[i] - want[i]);
    if (!(err <= tol)) return `pixel (${y},${x}) channel ${o}: got ${out[i]}, want ${want[i]} (|err| ${err.toExponential(2)} > tol ${tol.toExponential(2)})`;
  }
  return null;
}

test("f32 conv: random shapes vs float64 reference (tails, slices, k 1/3/5/7, relu/clamp)", async (t) => {
  const rng = new Rng(0xf32c0);
  const chans = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 24, 32, 48];
  let bad = 0;
  const n = 360;
  for (let i = 0; i < n; i++) {
    const k = rng.pick([1, 1, 3, 3, 3, 5, 5, 7]);
    const c: Case = {
      h: rng.pick([1, 1, 2, 3, 4, 5, 7, 8, 9, 13]),
      w: rng.pick([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 16, 19]),
      cin: rng.pick(chans),
      cout: rng.pick(chans),
      k,
      inStride: 0, outStride: 0,
      inOffset: rng.next() < 0.3 ? rng.int(1, 9) : 0,
      outOffset: rng.next() < 0.3 ? rng.int(1, 9) : 0,
      bias: rng.next() < 0.7,
      relu: rng.next() < 0.3,
      outMin: rng.next() < 0.2 ? rng.uniform(-1, 0.5) : -Infinity,
      outMax: rng.next() < 0.2 ? rng.uniform(0.5, 3) : Infinity,
    };
    c.inStride = c.cin + (rng.next() < 0.35 ? rng.int(1, 9) : 0);
    c.outStride = c.cout + (rng.next() < 0.35 ? rng.int(1, 9) : 0);
    const err = await runCase(rng, c);
    if (err) {
      bad++;
      if (bad <= 5) t.fail(`${describe(c)}: ${err}`);
    }
  }
  t.equal(bad, 0, `${n} random cases within (m+3)·2^-24·Σ|w·x|`);
});

test("f32 conv: layer shapes of esrgan-medium (reduced spatial size)", async (t) => {
  const rng = new Rng(0x5eed);
  const shapes: Array<[number, number, number, number, number]> = [
    // h, w, cin, cout, k
    [12, 13, 3, 64, 3], [10, 11, 64, 64, 3], [6, 9, 128, 64, 1], [5, 7, 640, 64, 1],
    [9, 10, 64, 64, 5], [8, 8, 64, 32, 3], [8, 9, 32, 12, 3], [16, 17, 12, 3, 3], [1, 33, 64, 64, 3], [33, 1, 48, 20, 5],
  ];
  for (const [h, w, cin, cout, k] of shapes) {
    for (const relu of [false, true]) {
      const c: Case = { h, w, cin, cout, k, inStride: cin, outStride: cout, inOffset: 0, outOffset: 0, bias: true, relu, outMin: -Infinity, outMax: Infinity };
      const err = await runCase(rng, c);
      t.equal(err, null, describe(c));
    }
  }
});

test("f32 conv: dense-block style slices (read a prefix, write into a wider buffer)", async (t) => {
  const rng = new Rng(77);
  // Input: first 24 of 40 channels; output: channels 24..39 of the same-width buffer layout (a separate array).
  const c: Case = { h: 7, w: 9, cin: 24, cout: 16, k: 3, inStride: 40, outStride: 40, inOffset: 0, outOffset: 24, bias: true, relu: true, outMin: -Infinity, outMax: Infinity };
  t.equal(await runCase(rng, c), null, describe(c));
  const c6: Case = { ...c, relu: false, outMin: 0, outMax: 6 };
  t.equal(await runCase(rng, c6), null, `relu6 ${describe(c6)}`);
});

test("f32 conv: known values (3x3 box filter on a 1-channel ramp, bias, relu)", async (t) => {
  const rt = await testRuntime();
  const h = 3, w = 4;
  const input = Float32Array.from({ length: h * w }, (_, i) => i + 1);
  const weights = new Float32Array(9).fill(1);
  const out = new Float32Array(h * w);
  conv2dF32(out, input, { h, w, cin: 1, cout: 1, k: 3, weights, bias: Float32Array.of(-20), relu: true, runtime: rt });
  // Window sums of [[1..4],[5..8],[9..12]] minus 20, then relu.
  const sums = [14, 24, 30, 22, 33, 54, 63, 45, 30, 48, 54, 38];
  t.deepEqual(Array.from(out), sums.map((s) => Math.max(0, s - 20)));
});

test("f32 conv: packF32Conv layout", (t) => {
  // k=1, cin=2, cout=5: one 8-wide block (5 > 4); HWIO index ci·5 + o.
  const hwio = Float32Array.from({ length: 10 }, (_, i) => i + 1);
  const bias = Float32Array.of(-1, -2, -3, -4, -5);
  const p = packF32Conv(hwio, 1, 2, 5, bias);
  t.equal(p.length, f32ConvPackedLength(1, 2, 5));
  t.deepEqual(Array.from(p), [-1, -2, -3, -4, -5, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0, 6, 7, 8, 9, 10, 0, 0, 0]);
  // cout=11: a full block of 8, then a 4-wide block holding channels 8..10.
  const q = packF32Conv(new Float32Array(11).fill(1), 1, 1, 11);
  t.equal(q.length, (8 + 4) * 2);
  t.deepEqual(Array.from(q.subarray(16)), [0, 0, 0, 0, 1, 1, 1, 0]);
  t.end();
});

test("f32 conv: bad arguments throw LowbitError before any WASM call", async (t) => {
  const rt = await testRuntime();
  const code = (f: () => unknown): string => {
    try {
      f();
      return "no error";
    } catch (e) {
      return e instanceof LowbitError ? e.code : `not a LowbitError: ${String(e)}`;
    }
  };
  const w9 = new Float32Array(9 * 2 * 3);
  const base = { h: 4, w: 4, cin: 2, cout: 3, k: 3, weights: w9, runtime: rt };
  const input = new Float32Array(4 * 4 * 2);
  const out = new Float32Array(4 * 4 * 3);
  t.equal(code(() => conv2dF32(out, input, base)), "no error", "valid call");
  t.equal(code(() => conv2dF32(out, input, { ...base, k: 2, weights: new Float32Array(4 * 6) })), "E_ARGUMENT", "even k");
  t.equal(code(() => conv2dF32(out, input, { ...base, k: 0 })), "E_ARGUMENT", "k = 0");
  t.equal(code(() => conv2dF32(out, input, { ...base, k: 65 })), "E_ARGUMENT", "k too large");
  t.equal(code(() => conv2dF32(out, input, { ...base, weights: new Float32Array(10) })), "E_SHAPE", "weights length");
  t.equal(code(() => conv2dF32(out, input.subarray(1), base)), "E_SHAPE", "input too short");
  t.equal(code(() => conv2dF32(out.subarray(1), input, base)), "E_SHAPE", "output too short");
  t.equal(code(() => conv2dF32(out, input, { ...base, inStride: 1 })), "E_SHAPE", "inStride < cin");
  t.equal(code(() => conv2dF32(out, input, { ...base, outStride: 2 })), "E_SHAPE", "outStride < cout");
  t.equal(code(() => conv2dF32(out, input, { ...base, h: 0 })), "E_SHAPE", "h = 0");
  t.equal(code(() => conv2dF32(out, input, { ...base, cin: 0 })), "E_SHAPE", "cin = 0");
  t.equal(code(() => conv2dF32(out, input, { ...base, w: 2.5 })), "E_SHAPE", "fractional width");
  const nanW = w9.slice(); nanW[7] = NaN;
  t.equal(code(() => conv2dF32(out, input, { ...base, weights: nanW })), "E_RANGE", "NaN weight");
  const infW = w9.slice(); infW[0] = -Infinity;
  t.equal(code(() => conv2dF32(out, input, { ...base, weights: infW })), "E_RANGE", "Inf weight");
  t.equal(code(() => conv2dF32(out, input, { ...base, bias: Float32Array.of(0, Infinity, 0) })), "E_RANGE", "Inf bias");
  t.equal(code(() => conv2dF32(out, input, { ...base, bias: Float32Array.of(0, 0) })), "E_SHAPE", "bias length");
  t.equal(code(() => conv2dF32(out, input, { ...base, outMin: 1, outMax: 0 })), "E_ARGUMENT", "clamp min > max");
  t.equal(code(() => conv2dF32(out, input, { ...base, outMax: NaN })), "E_ARGUMENT", "NaN clamp");
  t.equal(code(() => conv2dF32(out, input, { ...base, weights: undefined })), "E_ARGUMENT", "no weights");
  t.equal(code(() => conv2dF32(out, input, { ...base, weights: undefined, packed: new Float32Array(5) })), "E_SHAPE", "packed length");
  const packed = packF32Conv(w9, 3, 2, 3);
  packed[packed.length - 1] = NaN;
  t.equal(code(() => conv2dF32(out, input, { ...base, weights: undefined, packed })), "E_RANGE", "NaN in packed");
  t.equal(code(() => packF32Conv(w9, 3, 2, 4)), "E_SHAPE", "pack: length mismatch");
  t.equal(code(() => f32ConvScratchBytes(4, 2, 4)), "E_ARGUMENT", "scratch: even k");

  // The arena-offset call checks bounds and aliasing too.
  const a = rt.arena;
  const m = a.mark();
  const pIn = a.alloc(input.byteLength), pOut = a.alloc(out.byteLength);
  const pW = a.put(packF32Conv(w9, 3, 2, 3)), pS = a.alloc(f32ConvScratchBytes(4, 2, 3));
  const call = { input: pIn, inStride: 2, output: pOut, outStride: 3, h: 4, w: 4, cin: 2, cout: 3, k: 3, packed: pW, outMin: -Infinity, outMax: Infinity, scratch: pS };
  t.equal(code(() => f32ConvNhwc(rt, call)), "no error", "arena call");
  t.equal(code(() => f32ConvNhwc(rt, { ...call, output: pIn })), "E_ARGUMENT", "output overlapping input");
  t.equal(code(() => f32ConvNhwc(rt, { ...call, scratch: a.capacity - 8 })), "E_SHAPE", "scratch past memory end");
  t.equal(code(() => f32ConvNhwc(rt, { ...call, input: pIn + 2 })), "E_SHAPE", "unaligned input");
  t.equal(code(() => f32ConvNhwc(rt, { ...call, outStride: 2 })), "E_SHAPE", "arena call outStride < cout");
  a.release(m);
});
