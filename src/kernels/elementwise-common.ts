// Validation and arena plumbing shared by the elementwise / data-movement /
// statistics wrappers. Everything here runs before a kernel call, so a bad
// argument is a LowbitError, never a wasm trap or a silent out-of-bounds write.
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import { runtime, type Runtime } from "../runtime/runtime.ts";

export type Codes = Uint8Array | Int8Array;
export type Tensor = Uint8Array | Int8Array | Float32Array;

/** Largest value a size / count argument may take (kernels index with i32). */
export const MAX_I32 = 0x7fffffff;

export function rtOr(rt: Runtime | undefined): Runtime {
  return rt ?? runtime();
}

/** Pixel count ≥ min and channel count ≥ 1, integers. */
export function checkDims(pixels: number, channels: number, minPixels = 0): void {
  checkInt(pixels, minPixels, MAX_I32, "pixels", "E_SHAPE");
  checkInt(channels, 1, MAX_I32, "channels", "E_SHAPE");
}

/** A pixel stride (elements) ≥ channels; undefined → channels (dense). */
export function strideOf(stride: number | undefined, channels: number, what: string): number {
  const s = stride ?? channels;
  checkInt(s, channels, MAX_I32, `${what} pixel stride (elements, ≥ channels ${channels})`, "E_SHAPE");
  return s;
}

/** Elements a strided [pixels × channels] tensor spans. */
export function spanOf(pixels: number, channels: number, stride: number): number {
  return pixels === 0 ? 0 : (pixels - 1) * stride + channels;
}

/** A typed array long enough for the strided tensor. */
export function checkArray(a: ArrayBufferView & { length: number }, span: number, what: string): void {
  check(a.length >= span, "E_SHAPE", () => `${what} has ${a.length} elements, needs ${span}`);
}

/** An arena offset whose [ptr, ptr + bytes) lies in linear memory. */
/**
 * The validated geometry of a binary elementwise op (out = f(a, b)): dims, pixel strides (default channels) and
 * array spans of a, b and out (shared by the requantized, wide and f32 adds).
 */
export function binaryLayout(layout: { pixels: number; channels: number; aStride?: number; bStride?: number; outStride?: number },
  a: ArrayBufferView & { length: number }, b: ArrayBufferView & { length: number }, out: ArrayBufferView & { length: number }):
  { n: number; c: number; as: number; bs: number; ys: number } {
  const { pixels: n, channels: c } = layout;
  checkDims(n, c);
  const as = strideOf(layout.aStride, c, "a"), bs = strideOf(layout.bStride, c, "b"), ys = strideOf(layout.outStride, c, "output");
  checkArray(a, spanOf(n, c, as), "a");
  checkArray(b, spanOf(n, c, bs), "b");
  checkArray(out, spanOf(n, c, ys), "out");
  return { n, c, as, bs, ys };
}

export function checkPtr(rt: Runtime, ptr: number, bytes: number, what: string, align = 1): void {
  checkInt(ptr, 0, MAX_I32, `${what} offset`, "E_ARGUMENT");
  check(ptr % align === 0, "E_ARGUMENT", () => `${what} offset ${ptr} is not ${align}-byte aligned`);
  const cap = rt.arena.capacity;
  check(ptr + bytes <= cap, "E_ARGUMENT", () => `${what} [${ptr}, ${ptr + bytes}) is outside WASM memory (${cap} bytes)`);
}

/** A finite f32-representable number > 0 (scales, multipliers). */
export function checkPositive(v: number, what: string): void {
  const r = Math.fround(v);
  check(Number.isFinite(r) && r > 0, "E_RANGE", () => `${what} must be a finite number > 0 as f32, got ${v}`);
}

export function checkFinite(v: number, what: string): void {
  check(Number.isFinite(Math.fround(v)), "E_RANGE", () => `${what} must be finite as f32, got ${v}`);
}

/** [qmin, qmax] for a bit-width 2..8 (unsigned 0..2^b−1, signed −2^(b−1)..2^(b−1)−1). */
export function quantRange(bits: number, signed: boolean): [number, number] {
  checkInt(bits, 2, 8, "bit-width", "E_BITS");
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

/**
 * An 8-bit output range: integers qmin < qmax inside i8 (signed) or u8. When
 * `signed` is undefined either fits (the kernels store the low byte).
 */
export function checkQRange(qmin: number, qmax: number, signed?: boolean): void {
  const lo = signed === false ? 0 : -128, hi = signed === true ? 127 : 255;
  checkInt(qmin, lo, hi, "qmin", "E_RANGE");
  checkInt(qmax, lo, hi, "qmax", "E_RANGE");
  check(qmin < qmax, "E_RANGE", `qmin ${qmin} must be < qmax ${qmax}`);
  check(qmin >= 0 || qmax <= 127, "E_RANGE", `[${qmin}, ${qmax}] is neither a u8 nor an i8 range`);
}

/** A zero point inside [qmin, qmax]. */
export function checkZeroPoint(zp: number, qmin: number, qmax: number, what = "zero point"): void {
  checkInt(zp, qmin, qmax, what, "E_RANGE");
}

/** A zero point of an 8-bit input code type. */
export function checkInputZeroPoint(zp: number, signed: boolean, what: string): void {
  checkInt(zp, signed ? -128 : 0, signed ? 127 : 255, what, "E_RANGE");
}

export function isSigned(a: Codes): boolean {
  return a instanceof Int8Array;
}

export function checkCodes(a: unknown, what: string): asserts a is Codes {
  check(a instanceof Uint8Array || a instanceof Int8Array, "E_ARGUMENT", `${what} must be a Uint8Array or Int8Array`);
}

export function checkF32(a: unknown, what: string): asserts a is Float32Array {
  check(a instanceof Float32Array, "E_ARGUMENT", `${what} must be a Float32Array`);
}

/**
 * Runs `body` with arena scratch: `put` copies a typed array in (first `span`
 * elements), `out` reserves an output (copying the caller's current contents in
 * when `keep`, so strided gaps survive) and the reads back happen after body.
 */
export function withScratch(rt: Runtime, body: (s: Scratch) => void): void {
  const a = rt.arena;
  const m = a.mark();
  const s = new Scratch(rt);
  try {
    body(s);
    for (const [p, arr] of s.outs) a.read(p, arr);
  } finally {
    a.release(m);
  }
}

export class Scratch {
  readonly outs: Array<[number, ArrayBufferView]> = [];
  constructor(private readonly rt: Runtime) {}
  put(src: ArrayBufferView & { length: number; subarray(a: number, b?: number): ArrayBufferView }, span = src.length): number {
    return this.rt.arena.put(src.subarray(0, span));
  }
  alloc(bytes: number): number {
    return this.rt.arena.alloc(Math.max(bytes, 1));
  }
  /** Output region for dst[0, span): pre-filled from dst when keep (strided gaps). */
  out(dst: ArrayBufferView & { length: number; subarray(a: number, b?: number): ArrayBufferView }, span: number, keep: boolean): number {
    const view = dst.subarray(0, span);
    const p = keep ? this.rt.arena.put(view) : this.rt.arena.alloc(Math.max(view.byteLength, 1));
    this.outs.push([p, view]);
    return p;
  }
}

export { LowbitError };
