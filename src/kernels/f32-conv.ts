// fp32 convolution (NHWC, stride 1, 'same' padding, odd k) on the WASM kernel
// f32_conv_nhwc: weight packing, validation, the arena-offset call the engine
// uses, and a typed-array convenience wrapper.
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import { runtime, type Runtime } from "../runtime/runtime.ts";

interface F32ConvExports {
  f32_conv_nhwc(input: number, inStride: number, output: number, outStride: number, h: number, w: number,
    cin: number, cout: number, k: number, packed: number, outMin: number, outMax: number, scratch: number): void;
}

/** Largest kernel size (the kernel's row table holds 63 rows). */
export const F32_CONV_MAX_K = 63;

function checkGeometry(k: number, cin: number, cout: number): void {
  checkInt(k, 1, F32_CONV_MAX_K, "f32 conv: kernel size k");
  check(k % 2 === 1, "E_ARGUMENT", `f32 conv: kernel size must be odd ('same' padding), got ${k}`);
  checkInt(cin, 1, 1 << 20, "f32 conv: input channels", "E_SHAPE");
  checkInt(cout, 1, 1 << 20, "f32 conv: output channels", "E_SHAPE");
}

function checkFinite(a: ArrayLike<number>, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new LowbitError("E_RANGE", `f32 conv: ${what}[${i}] is ${a[i]} (must be finite)`);
  }
}

/** Floats in packF32Conv's output: per 8-channel block 8 bias + 8·k·k·cin weights (last block 4 wide if ≤ 4 channels). */
export function f32ConvPackedLength(k: number, cin: number, cout: number): number {
  checkGeometry(k, cin, cout);
  const full = cout >> 3;
  const rem = cout & 7;
  const last = rem === 0 ? 0 : rem <= 4 ? 4 : 8;
  return (full * 8 + last) * (1 + k * k * cin);
}

/**
 * Packs HWIO weights W[ky][kx][ci][o] (index ((ky·k + kx)·cin + ci)·cout + o,
 * the TF/Keras layout) and an optional bias into f32_conv_nhwc's layout:
 * output channels in blocks of nb = 8 (the last block nb = 4 when ≤ 4 channels
 * remain, so cout = 3 or 12 wastes no work on a half-empty 8-block); per block
 * nb bias floats, then [ky][kx][ci][lane] with nb lanes; channels past cout
 * are zero. Block b starts at float b·(8 + 8·k·k·cin).
 */
export function packF32Conv(hwio: Float32Array, k: number, cin: number, cout: number, bias?: Float32Array | null): Float32Array {
  checkGeometry(k, cin, cout);
  check(hwio.length === k * k * cin * cout, "E_SHAPE",
    () => `f32 conv: weights have ${hwio.length} floats, expected k·k·cin·cout = ${k}·${k}·${cin}·${cout} = ${k * k * cin * cout}`);
  checkFinite(hwio, "weights");
  if (bias) {
    check(bias.length === cout, "E_SHAPE", () => `f32 conv: bias has ${bias.length} floats, expected cout = ${cout}`);
    checkFinite(bias, "bias");
  }
  const packed = new Float32Array(f32ConvPackedLength(k, cin, cout));
  const taps = k * k * cin; // (ky, kx, ci) triples, in HWIO order
  let q = 0;
  for (let oc0 = 0; oc0 < cout; oc0 += 8) {
    const rem = cout - oc0;
    const nb = rem <= 4 ? 4 : 8;
    const nv = Math.min(nb, rem);
    for (let l = 0; l < nv; l++) packed[q + l] = bias ? bias[oc0 + l] : 0;
    q += nb;
    for (let t = 0; t < taps; t++) {
      for (let l = 0; l < nv; l++) packed[q + l] = hwio[t * cout + oc0 + l];
      q += nb;
    }
  }
  return packed;
}

/** Scratch bytes f32_conv_nhwc needs: a row table, plus for k > 1 a ring of k zero-padded input rows. */
export function f32ConvScratchBytes(w: number, cin: number, k: number): number {
  checkInt(w, 1, 1 << 24, "f32 conv: width", "E_SHAPE");
  checkGeometry(k, cin, 1);
  return 512 + (k > 1 ? k * (w + k - 1) * cin * 4 : 0);
}

export interface F32ConvCall {
  /** Byte offset of input pixel (0,0) channel 0; pixel (y,x) at input + 4·(y·w + x)·inStride. */
  input: number;
  inStride: number;
  output: number;
  outStride: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  k: number;
  /** Byte offset of packF32Conv's buffer. */
  packed: number;
  outMin: number;
  outMax: number;
  /** Byte offset of f32ConvScratchBytes(w, cin, k) bytes. */
  scratch: number;
}

function checkCall(rt: Runtime, c: F32ConvCall): void {
  checkGeometry(c.k, c.cin, c.cout);
  checkInt(c.h, 1, 1 << 24, "f32 conv: height", "E_SHAPE");
  checkInt(c.w, 1, 1 << 24, "f32 conv: width", "E_SHAPE");
  checkInt(c.inStride, c.cin, 1 << 24, `f32 conv: inStride (≥ cin = ${c.cin})`, "E_SHAPE");
  checkInt(c.outStride, c.cout, 1 << 24, `f32 conv: outStride (≥ cout = ${c.cout})`, "E_SHAPE");
  check(!Number.isNaN(c.outMin) && !Number.isNaN(c.outMax) && c.outMin <= c.outMax, "E_ARGUMENT",
    () => `f32 conv: output clamp [${c.outMin}, ${c.outMax}] is not an interval`);
  const mem = rt.arena.capacity;
  const span = (base: number, stride: number, ch: number): number => base + 4 * ((c.h * c.w - 1) * stride + ch);
  const inEnd = span(c.input, c.inStride, c.cin);
  const outEnd = span(c.output, c.outStride, c.cout);
  const regions: Array<[string, number, number]> = [
    ["input", c.input, inEnd],
    ["output", c.output, outEnd],
    ["packed weights", c.packed, c.packed + 4 * f32ConvPackedLength(c.k, c.cin, c.cout)],
    ["scratch", c.scratch, c.scratch + f32ConvScratchBytes(c.w, c.cin, c.k)],
  ];
  for (const [name, a, b] of regions) {
    check(Number.isInteger(a) && a >= 0 && a % 4 === 0 && b <= mem, "E_SHAPE",
      () => `f32 conv: ${name} [${a}, ${b}) is not 4-aligned inside WASM memory (${mem} bytes)`);
  }
  check(outEnd <= c.input || inEnd <= c.output, "E_ARGUMENT", "f32 conv: output overlaps input");
}

/**
 * The engine's call: every operand already lives in the arena (byte offsets).
 * Validates geometry and bounds (cheap), then runs the kernel.
 */
export function f32ConvNhwc(rt: Runtime, c: F32ConvCall): void {
  checkCall(rt, c);
  rt.kernels<F32ConvExports>().f32_conv_nhwc(c.input, c.inStride, c.output, c.outStride, c.h, c.w,
    c.cin, c.cout, c.k, c.packed, c.outMin, c.outMax, c.scratch);
}

export interface Conv2dF32Options {
  h: number;
  w: number;
  cin: number;
  cout: number;
  /** Odd kernel size. */
  k: number;
  /** HWIO weights (packed on each call), or … */
  weights?: Float32Array;
  bias?: Float32Array | null;
  /** … packF32Conv's output (reuse across calls). */
  packed?: Float32Array;
  /** Fused ReLU: clamp below at 0 (combines with outMin/outMax, e.g. relu6 = {relu, outMax: 6}). */
  relu?: boolean;
  outMin?: number;
  outMax?: number;
  /** Elements between pixels of `input` (default cin) and first element used (default 0). */
  inStride?: number;
  inOffset?: number;
  /** Elements between pixels of `out` (default cout) and first element written (default 0); other channels are kept. */
  outStride?: number;
  outOffset?: number;
  runtime?: Runtime;
}

/**
 * out = clamp(bias + conv_k×k(input, W)) on typed arrays (copies through arena scratch).
 * Throws LowbitError before any WASM call on bad shapes/values.
 */
export function conv2dF32(out: Float32Array, input: Float32Array, o: Conv2dF32Options): Float32Array {
  const { h, w, cin, cout, k } = o;
  checkGeometry(k, cin, cout);
  checkInt(h, 1, 1 << 24, "f32 conv: height", "E_SHAPE");
  checkInt(w, 1, 1 << 24, "f32 conv: width", "E_SHAPE");
  const inStride = o.inStride ?? cin;
  const outStride = o.outStride ?? cout;
  const inOffset = o.inOffset ?? 0;
  const outOffset = o.outOffset ?? 0;
  checkInt(inStride, cin, 1 << 24, `f32 conv: inStride (≥ cin = ${cin})`, "E_SHAPE");
  checkInt(outStride, cout, 1 << 24, `f32 conv: outStride (≥ cout = ${cout})`, "E_SHAPE");
  checkInt(inOffset, 0, 2 ** 31, "f32 conv: inOffset", "E_SHAPE");
  checkInt(outOffset, 0, 2 ** 31, "f32 conv: outOffset", "E_SHAPE");
  const inLen = (h * w - 1) * inStride + cin;
  const outLen = (h * w - 1) * outStride + cout;
  check(input.length >= inOffset + inLen, "E_SHAPE",
    () => `f32 conv: input has ${input.length} floats, needs ${inOffset + inLen} for ${h}×${w}×${cin} (stride ${inStride}, offset ${inOffset})`);
  check(out.length >= outOffset + outLen, "E_SHAPE",
    () => `f32 conv: out has ${out.length} floats, needs ${outOffset + outLen} for ${h}×${w}×${cout} (stride ${outStride}, offset ${outOffset})`);
  let outMin = o.outMin ?? -Infinity;
  const outMax = o.outMax ?? Infinity;
  if (o.relu) outMin = Math.max(outMin, 0);
  check(!Number.isNaN(outMin) && !Number.isNaN(outMax) && outMin <= outMax, "E_ARGUMENT",
    () => `f32 conv: output clamp [${outMin}, ${outMax}] is not an interval`);
  let packed: Float32Array;
  if (o.packed) {
    check(!o.weights && !o.bias, "E_ARGUMENT", "f32 conv: pass either packed or weights/bias, not both");
    check(o.packed.length === f32ConvPackedLength(k, cin, cout), "E_SHAPE",
      () => `f32 conv: packed weights have ${o.packed!.length} floats, expected ${f32ConvPackedLength(k, cin, cout)}`);
    checkFinite(o.packed, "packed weights");
    packed = o.packed;
  } else {
    check(o.weights !== undefined, "E_ARGUMENT", "f32 conv: weights (HWIO) or packed is required");
    packed = packF32Conv(o.weights!, k, cin, cout, o.bias);
  }

  const rt = o.runtime ?? runtime();
  const a = rt.arena;
  const m = a.mark();
  try {
    const pIn = a.alloc(inLen * 4);
    const pOut = a.alloc(outLen * 4);
    const pW = a.alloc(packed.byteLength);
    const pS = a.alloc(f32ConvScratchBytes(w, cin, k));
    const f = a.f32;
    f.set(input.subarray(inOffset, inOffset + inLen), pIn >> 2);
    // A strided output slice keeps the channels between our slices: start from out's contents.
    if (outStride !== cout) f.set(out.subarray(outOffset, outOffset + outLen), pOut >> 2);
    f.set(packed, pW >> 2);
    f32ConvNhwc(rt, { input: pIn, inStride, output: pOut, outStride, h, w, cin, cout, k, packed: pW, outMin, outMax, scratch: pS });
    out.set(a.f32.subarray(pOut >> 2, (pOut >> 2) + outLen), outOffset);
  } finally {
    a.release(m);
  }
  return out;
}
