// N:M-sparse convolutions (stride 1, 'same' padding, odd k, NHWC): fp32 (f32_nm_conv_nhwc) and int8
// (qs8_qc8w_nm_conv_nhwc) kernels whose time falls with N/M. Pattern checks, packing into the sparse storage
// format, validation, the arena-offset calls the engine uses, and typed-array conveniences.
//
// The pattern (the IR's conv `sparsity: {n, m}`): for each output channel o and tap (kh, kw), the input
// channels split into groups of M consecutive channels from 0 (the last group may be shorter); each group
// holds at most N nonzero weights. The pair-structured pattern (`{n, m, pairs: true}`, written "N:Mp"; N and
// M even) adds: a group's nonzeros lie in at most N/2 aligned channel pairs (2j, 2j+1) — still N:M, and the
// int8 kernel then dots each kept pair straight from a pair-interleaved band (qs8_qc8w_nm2_conv_nhwc, ~1.6×
// the unpaired kernel's speed). Kernel design and byte layouts: assembly/conv/f32-nm-conv-nhwc.ts and
// assembly/conv/qs8-nm-conv-nhwc.ts. References: ./ref/nm-conv.ts.
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import { runtime, type Runtime } from "../runtime/runtime.ts";
import { checkActivation, checkConvGeometry, checkConvShape, type PackedConvLayer, type QActivation, type QConvArrays, type QOutput } from "./qs8-conv.ts";

type F32NmFn = (input: number, inStride: number, output: number, outStride: number, h: number, w: number,
  cin: number, cout: number, k: number, n: number, m: number, packed: number, outMin: number, outMax: number,
  scratch: number, bandRows: number) => void;
type Qs8NmFn = (input: number, inStride: number, H: number, W: number, Cin: number, inZp: number, inSigned: number,
  k: number, n: number, m: number, packed: number, Cout: number, mult: number,
  output: number, outStride: number, outZp: number, qmin: number, qmax: number, outSigned: number,
  scratch: number, bandRows: number) => void;
type Qs8NmAcc32Fn = (input: number, inStride: number, H: number, W: number, Cin: number, inZp: number, inSigned: number,
  k: number, n: number, m: number, packed: number, Cout: number, output: number, outStride: number,
  scratch: number, bandRows: number) => void;

export interface NmExports {
  f32_nm_conv_nhwc: F32NmFn;
  qs8_qc8w_nm_conv_nhwc: Qs8NmFn;
  qs8_qc8w_nm_conv_nhwc_acc32: Qs8NmAcc32Fn;
  qs8_qc8w_nm2_conv_nhwc: Qs8NmFn;
  qs8_qc8w_nm2_conv_nhwc_acc32: Qs8NmAcc32Fn;
}

/**
 * An N:M pattern: ≤ n nonzeros in every group of m consecutive input channels. `pairs`: moreover the
 * nonzeros of a group lie in ≤ n/2 aligned channel pairs (2j, 2j+1) (n, m even) — "N:Mp".
 */
export interface NmPattern {
  n: number;
  m: number;
  pairs?: boolean;
}

/** Largest M: the storage format keeps one byte per in-group index. */
export const NM_MAX_M = 256;

/** Pixels per register block of both kernels (8 accumulators × 4 pixels). */
const BLOCK = 32;

/** Bytes of planar input band the kernels prepare at once (L2-resident). */
const BAND_BUDGET = 256 * 1024;

const I32_MAX = 2147483647;

/** E_ARGUMENT unless 1 ≤ n ≤ m ≤ NM_MAX_M (integers), and for pairs n and m even. */
export function checkNmPattern(p: NmPattern): void {
  check(p && typeof p === "object", "E_ARGUMENT", "N:M pattern {n, m} missing");
  checkInt(p.m, 1, NM_MAX_M, "N:M sparsity: m");
  checkInt(p.n, 1, p.m, `N:M sparsity: n (1 ≤ n ≤ m = ${p.m})`);
  check(p.pairs === undefined || typeof p.pairs === "boolean", "E_ARGUMENT", "N:M sparsity: pairs must be a boolean");
  check(!p.pairs || (p.n % 2 === 0 && p.m % 2 === 0), "E_ARGUMENT",
    () => `pair-structured N:M sparsity needs even n and m, got ${p.n}:${p.m}`);
}

/** "N:M", or "N:Mp" for the pair-structured pattern (the CLI's spelling). */
export function nmPatternName(p: NmPattern): string {
  return `${p.n}:${p.m}${p.pairs ? "p" : ""}`;
}

/** Entries the format stores per output channel: k²·Σ_g min(n, len_g) over the ⌈cin/m⌉ groups. */
export function nmTaps(k: number, cin: number, n: number, m: number): number {
  let t = 0;
  for (let g = 0; g < cin; g += m) t += Math.min(n, m, cin - g);
  return k * k * t;
}

/**
 * Channel-pair entries the pair format stores per output channel: k²·Σ_g min(n/2, ⌈len_g/2⌉) (an odd short last
 * group's last channel pairs with a zero phantom channel).
 */
export function nmPairTaps(k: number, cin: number, n: number, m: number): number {
  let t = 0;
  for (let g = 0; g < cin; g += m) t += Math.min(n >> 1, Math.ceil(Math.min(m, cin - g) / 2));
  return k * k * t;
}

/**
 * Fraction of the dense MACs the sparse kernel performs: nmTaps / (k²·cin) (≥ n/m; more when a short last
 * group keeps all of its < n channels); pairs: 2·nmPairTaps / (k²·cin) (a phantom channel's MACs count).
 */
export function nmDensity(k: number, cin: number, n: number, m: number, pairs = false): number {
  return (pairs ? 2 * nmPairTaps(k, cin, n, m) : nmTaps(k, cin, n, m)) / (k * k * cin);
}

/**
 * The first group violating the pattern, or null. `at(o, kh, kw, c)` reads a weight; a nonzero is any value
 * other than 0 / −0 (NaN counts as nonzero). `pairs`: counts the aligned channel pairs holding a nonzero
 * against n/2 (count is then in pairs).
 */
function findViolation(at: (o: number, kh: number, kw: number, c: number) => number, k: number, cin: number,
  cout: number, n: number, m: number, pairs = false): { o: number; kh: number; kw: number; g: number; count: number } | null {
  const u = pairs ? 2 : 1;
  for (let o = 0; o < cout; o++) {
    for (let kh = 0; kh < k; kh++) {
      for (let kw = 0; kw < k; kw++) {
        for (let g = 0; g < cin; g += m) {
          let count = 0;
          for (let c = g, e = Math.min(cin, g + m); c < e; c += u) {
            if (at(o, kh, kw, c) !== 0 || (u === 2 && c + 1 < e && at(o, kh, kw, c + 1) !== 0)) count++;
          }
          if (count > n / u) return { o, kh, kw, g: g / m, count };
        }
      }
    }
  }
  return null;
}

const hwioAt = (w: ArrayLike<number>, k: number, cin: number, cout: number) =>
  (o: number, kh: number, kw: number, c: number): number => w[((kh * k + kw) * cin + c) * cout + o];
const ohwiAt = (w: ArrayLike<number>, k: number, cin: number) =>
  (o: number, kh: number, kw: number, c: number): number => w[((o * k + kh) * k + kw) * cin + c];

function checkWeightShape(weights: ArrayLike<number>, k: number, cin: number, cout: number): void {
  checkConvShape({ cout, k, cin });
  check(weights && typeof weights.length === "number", "E_ARGUMENT", "weights must be a typed array");
  check(weights.length === k * k * cin * cout, "E_SHAPE",
    () => `weights have ${weights.length} values, k·k·cin·cout = ${k * k * cin * cout}`);
}

/**
 * True when HWIO weights W[kh][kw][c][o] (index ((kh·k + kw)·cin + c)·cout + o, the IR layout) follow the n:m
 * pattern: for every (o, kh, kw), each group of m consecutive input channels has ≤ n nonzeros (`pairs`: they lie
 * in ≤ n/2 aligned channel pairs). Bad shapes or patterns throw (E_SHAPE / E_ARGUMENT); a violation returns false.
 */
export function checkNmSparsity(weights: ArrayLike<number>, k: number, cin: number, cout: number, n: number, m: number,
  pairs = false): boolean {
  checkNmPattern({ n, m, pairs });
  checkWeightShape(weights, k, cin, cout);
  return findViolation(hwioAt(weights, k, cin, cout), k, cin, cout, n, m, pairs) === null;
}

function throwIfViolated(at: (o: number, kh: number, kw: number, c: number) => number, k: number, cin: number, cout: number,
  n: number, m: number, pairs = false): void {
  const v = findViolation(at, k, cin, cout, n, m, pairs);
  if (v) {
    throw new LowbitError("E_ARGUMENT", `weights are not ${nmPatternName({ n, m, pairs })} sparse: output channel ${v.o}, ` +
      `tap (${v.kh}, ${v.kw}), input channels ${v.g * m}..${Math.min(cin, (v.g + 1) * m) - 1} hold ${v.count} nonzero` +
      `${pairs ? ` channel pairs (at most ${n / 2})` : "s"}`);
  }
}

/**
 * Writes the sparse entries of every (o, kh, kw, group) in the format's order: for each group the indices of
 * its nonzeros ascending, padded to min(n, len) entries with the lowest unused indices (value 0). `emit(o, j,
 * c, idx, v, v2)` receives entry j of output channel o (c = its input channel, idx = c − group start).
 * `pairs`: an entry is an aligned channel pair (c, c + 1), idx = the pair within the group, v2 = the weight of
 * c + 1 (0 past cin); min(n/2, ⌈len/2⌉) entries per group.
 */
function forEachEntry(at: (o: number, kh: number, kw: number, c: number) => number, k: number, cin: number, cout: number,
  n: number, m: number, emit: (o: number, j: number, c: number, idx: number, v: number, v2: number) => void, pairs = false): void {
  const u = pairs ? 2 : 1;
  const used = new Uint8Array(m);
  for (let o = 0; o < cout; o++) {
    let j = 0;
    for (let kh = 0; kh < k; kh++) {
      for (let kw = 0; kw < k; kw++) {
        for (let g = 0; g < cin; g += m) {
          const len = Math.min(m, cin - g), units = Math.ceil(len / u);
          const ng = Math.min(n / u, units);
          const w1 = (i: number) => (u === 2 && i * 2 + 1 < len ? at(o, kh, kw, g + i * 2 + 1) : 0);
          used.fill(0);
          let cnt = 0;
          for (let i = 0; i < units; i++) if (at(o, kh, kw, g + i * u) !== 0 || w1(i) !== 0) { used[i] = 1; cnt++; }
          for (let i = 0; i < units && cnt < ng; i++) if (!used[i]) { used[i] = 2; cnt++; }
          for (let i = 0; i < units; i++) {
            if (used[i]) emit(o, j++, g + i * u, i, used[i] === 1 ? at(o, kh, kw, g + i * u) : 0, used[i] === 1 ? w1(i) : 0);
          }
        }
      }
    }
  }
}

// ------------------------------------------------ fp32 ----------------------------------------------------

/** A layer packed for f32_nm_conv_nhwc. */
export interface PackedF32NmConv extends PackedConvLayer {
  readonly n: number;
  readonly m: number;
  /** Entries per output channel (nmTaps). */
  readonly taps: number;
  /**
   * f32 bias[CoutP] | f32 values[cout][taps] | u8 index[cout][taps] (CoutP = cout↑4; entries per output
   * channel in the order kh, kw, group, ascending channel; index = channel − group·m). See the kernel header.
   */
  readonly bytes: Uint8Array;
}

function checkFiniteArray(a: ArrayLike<number>, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new LowbitError("E_RANGE", `${what}[${i}] is ${a[i]} (must be finite)`);
  }
}

/** Bytes of packF32NmConv's blob. */
export function packedF32NmConvBytes(k: number, cin: number, cout: number, n: number, m: number): number {
  return ((cout + 3) & ~3) * 4 + cout * nmTaps(k, cin, n, m) * 5;
}

/**
 * Packs N:M-sparse HWIO weights (the IR layout) and an optional bias into the sparse format. E_ARGUMENT if
 * the weights violate the pattern, E_RANGE for non-finite values.
 */
export function packF32NmConv(hwio: Float32Array, k: number, cin: number, cout: number, pattern: NmPattern,
  bias?: Float32Array | null): PackedF32NmConv {
  checkNmPattern(pattern);
  check(hwio instanceof Float32Array, "E_ARGUMENT", "f32 N:M conv: weights must be a Float32Array (HWIO)");
  checkWeightShape(hwio, k, cin, cout);
  checkFiniteArray(hwio, "f32 N:M conv: weights");
  if (bias) {
    check(bias instanceof Float32Array && bias.length === cout, "E_SHAPE", `f32 N:M conv: bias must be a Float32Array of ${cout}`);
    checkFiniteArray(bias, "f32 N:M conv: bias");
  }
  const { n, m } = pattern;
  const at = hwioAt(hwio, k, cin, cout);
  throwIfViolated(at, k, cin, cout, n, m);
  const T = nmTaps(k, cin, n, m);
  const coutP = (cout + 3) & ~3;
  const bytes = new Uint8Array(packedF32NmConvBytes(k, cin, cout, n, m));
  const f = new Float32Array(bytes.buffer, 0, coutP + cout * T);
  const idx = bytes.subarray(4 * (coutP + cout * T));
  if (bias) f.set(bias);
  forEachEntry(at, k, cin, cout, n, m, (o, j, _c, i, v) => {
    f[coutP + o * T + j] = v;
    idx[o * T + j] = i;
  });
  return { k, cin, cout, coutPadded: coutP, n, m, taps: T, bytes };
}

/**
 * Largest density (nmDensity: stored entries / dense taps) at which the sparse kernel beats the dense one, per
 * dense path. Measured with bench/nm-conv.bench.ts (3×3 64→64 @128², Zen 4, single thread, CPU time; sparse
 * time ∝ density): fp32 is 1.46–1.50× faster at 16:32 and 0.75× at 32:32 (break-even ≈ 0.7); int8 against the
 * direct i16 loop 1.12–1.17× at density 0.5 and 0.62× at 1 (break-even ≈ 0.58), against Winograd F(2,3) (1.5×
 * fewer multiplies) 0.85–0.90× at 0.5 and 1.57–1.63× at 0.25 (break-even ≈ 0.45). The relaxed i16-accumulating
 * path (≤ 7-bit activations with small products) does half the multiply work of the i16 loop, hence about half
 * the threshold. Against the 2-D Winograd F(2×2,3×3) (bench/qs8-conv-paths.ts: 79.9 vs 57.0 effective GMAC/s
 * for F(2,3) on the same layer, 1.40× faster) the sparse kernel is ≈ 1.60/1.40 ≈ 1.14× faster at 0.25
 * (break-even ≈ 0.29): 8:32 still pays, 12:32 does not. Each threshold keeps a margin below its break-even.
 */
export const NM_MAX_DENSITY: Readonly<Record<"f32" | "i16" | "i16-wino" | "i16-wino2d" | "relaxed-i7" | "relaxed-i7-acc16", number>> = {
  f32: 0.6, i16: 0.5, "i16-wino": 0.4, "i16-wino2d": 0.26, "relaxed-i7": 0.5, "relaxed-i7-acc16": 0.25,
};

/**
 * NM_MAX_DENSITY for the int8 pair kernel (qs8_qc8w_nm2_conv_nhwc, pattern "N:Mp"; density by nmDensity with
 * pairs). Measured with bench/nm-conv.bench.ts on the same layer (3×3 64→64 @128², CPU time, same run): the
 * pair kernel takes ≈ 0.76 ms + 16.6 ms × density (16:32p 9.04 ms, 24:32p 13.18 ms) against 13.9 ms for the
 * direct i16 loop, 10.6 ms for F(2,3) and 7.5 ms for F(2×2,3×3): break-even at density ≈ 0.79, 0.59 and 0.41
 * (16:32p is 1.54× / 1.17× / 0.83×). The relaxed paths are set by the same rule as NM_MAX_DENSITY's (relaxed-i7
 * ≈ the i16 loop's speed, the i16-accumulating one ≈ twice it). Each threshold keeps a margin below its
 * break-even.
 */
export const NM2_MAX_DENSITY: Readonly<Record<"i16" | "i16-wino" | "i16-wino2d" | "relaxed-i7" | "relaxed-i7-acc16", number>> = {
  i16: 0.7, "i16-wino": 0.5, "i16-wino2d": 0.375, "relaxed-i7": 0.7, "relaxed-i7-acc16": 0.33,
};

/**
 * Whether the N:M kernel is expected to be faster than the dense kernel running `densePath` on this layer.
 * A pair-structured pattern on an int8 path is judged for the pair kernel (NM2_MAX_DENSITY); fp32 runs it as
 * plain N:M.
 */
export function nmKernelPays(k: number, cin: number, pattern: NmPattern, densePath: keyof typeof NM_MAX_DENSITY): boolean {
  checkNmPattern(pattern);
  if (pattern.pairs && densePath !== "f32") return nmDensity(k, cin, pattern.n, pattern.m, true) <= NM2_MAX_DENSITY[densePath];
  return nmDensity(k, cin, pattern.n, pattern.m) <= NM_MAX_DENSITY[densePath];
}

/** The `bandRows` argument the kernels take for an H×W image (what f32NmConvRun / qs8NmConvRun pass). */
export function nmConvBandRows(H: number, W: number, cin: number, k: number, precision: "f32" | "int8"): number {
  return bandRowsOf(H, W, cin, k, precision === "f32" ? 4 : 2);
}

/** Elements per channel row of a band: max(W, 32) + 2p rounded up to whole 64-byte lines (as the kernels). */
function bandPitch(W: number, p: number, elemBytes: number): number {
  const perLine = 64 / elemBytes;
  return Math.ceil((Math.max(W, BLOCK) + 2 * p) / perLine) * perLine;
}

/** Bytes per band row of all channels, padded to start 21 cache-line sets after the previous (as the kernels). */
function bandRowSet(W: number, cin: number, p: number, elemBytes: number): number {
  const b = cin * bandPitch(W, p, elemBytes) * elemBytes;
  return b + (((21 - (b >> 6)) & 63) << 6);
}

function bandRowsOf(H: number, W: number, cin: number, k: number, elemBytes: number): number {
  const p = (k - 1) >> 1;
  const rowSet = bandRowSet(W, cin, p, elemBytes);
  return Math.max(1, Math.min(H, Math.floor(BAND_BUDGET / rowSet) - 2 * p));
}

/** Band bytes for any image of width ≤ W (at most max(BAND_BUDGET, one band of 1 + 2p rows)). */
function bandBytesMax(W: number, cin: number, k: number, elemBytes: number): number {
  const p = (k - 1) >> 1;
  // The row padding (< 4 KB) is not monotone in W: bound it for every narrower image.
  const rowSetBound = cin * bandPitch(W, p, elemBytes) * elemBytes + 4096;
  return Math.max(BAND_BUDGET, (1 + 2 * p) * rowSetBound) + 64; // + 64: the kernels align the band to a cache line
}

/** Scratch bytes f32_nm_conv_nhwc needs for any image of width ≤ W (any height). */
export function f32NmConvScratchBytes(W: number, cin: number, cout: number, k: number, pattern: NmPattern): number {
  checkNmPattern(pattern);
  checkConvShape({ cout, k, cin });
  checkInt(W, 1, 1 << 16, "width", "E_SHAPE");
  const table = cout * nmTaps(k, cin, pattern.n, pattern.m) * 8;
  return table + 16 + ((cout + 3) & ~3) * BLOCK * 4 + bandBytesMax(W, cin, k, 4);
}

/** The engine's f32 call: every operand is an arena byte offset. */
export interface F32NmConvCall {
  layer: PackedF32NmConv;
  /** Offset of layer.bytes (4-aligned). */
  packed: number;
  h: number;
  w: number;
  input: number;
  inStride: number;
  output: number;
  outStride: number;
  outMin: number;
  outMax: number;
  /** Offset of ≥ f32NmConvScratchBytes(w, …) bytes. */
  scratch: number;
}

function checkPackedLayer(L: PackedConvLayer & { n: number; m: number; taps: number; pairs?: boolean }, bytes: number, what: string): void {
  check(L && L.bytes instanceof Uint8Array, "E_ARGUMENT", `layer must come from ${what}`);
  checkNmPattern(L);
  checkConvShape(L);
  const taps = L.pairs ? nmPairTaps(L.k, L.cin, L.n, L.m) : nmTaps(L.k, L.cin, L.n, L.m);
  check(L.taps === taps && L.bytes.length === bytes, "E_SHAPE", `layer metadata does not match its bytes (${what})`);
}

function checkOffsets(rt: Runtime, regions: Array<[string, number, number]>): void {
  const mem = rt.arena.capacity;
  for (const [name, a, len] of regions) {
    check(Number.isInteger(a) && a >= 0 && a % 4 === 0 && a + len <= mem, "E_SHAPE",
      () => `${name} [${a}, ${a + len}) is not 4-aligned inside WASM memory (${mem} bytes)`);
  }
}

/** Runs f32_nm_conv_nhwc on arena offsets after validating every scalar and the regions' bounds. */
export function f32NmConvRun(rt: Runtime, c: F32NmConvCall): void {
  const L = c.layer;
  checkPackedLayer(L, packedF32NmConvBytes(L.k, L.cin, L.cout, L.n, L.m), "packF32NmConv");
  checkConvGeometry(L, c.h, c.w, c.inStride, c.outStride);
  check(!Number.isNaN(c.outMin) && !Number.isNaN(c.outMax) && c.outMin <= c.outMax, "E_ARGUMENT",
    () => `f32 N:M conv: output clamp [${c.outMin}, ${c.outMax}] is not an interval`);
  const px = c.h * c.w;
  const inLen = 4 * ((px - 1) * c.inStride + L.cin), outLen = 4 * ((px - 1) * c.outStride + L.cout);
  checkOffsets(rt, [["input", c.input, inLen], ["output", c.output, outLen], ["packed weights", c.packed, L.bytes.length],
    ["scratch", c.scratch, f32NmConvScratchBytes(c.w, L.cin, L.cout, L.k, L)]]);
  check(c.output + outLen <= c.input || c.input + inLen <= c.output, "E_ARGUMENT", "f32 N:M conv: output overlaps input");
  rt.kernels<NmExports>().f32_nm_conv_nhwc(c.input, c.inStride, c.output, c.outStride, c.h, c.w, L.cin, L.cout, L.k,
    L.n, L.m, c.packed, c.outMin, c.outMax, c.scratch, bandRowsOf(c.h, c.w, L.cin, L.k, 4));
}

export interface F32NmConvOptions {
  h: number;
  w: number;
  /** Elements between pixels of input (default cin) / of out (default cout; other channels are kept). */
  inStride?: number;
  outStride?: number;
  /** Fused ReLU (clamp below at 0), combined with outMin/outMax. */
  relu?: boolean;
  outMin?: number;
  outMax?: number;
  runtime?: Runtime;
}

/** out = clamp(bias + conv(input, sparse W)) on typed arrays (copied through the arena). */
export function conv2dF32Nm(out: Float32Array, input: Float32Array, layer: PackedF32NmConv, o: F32NmConvOptions): Float32Array {
  checkPackedLayer(layer, packedF32NmConvBytes(layer.k, layer.cin, layer.cout, layer.n, layer.m), "packF32NmConv");
  const { h, w } = o;
  const inStride = o.inStride ?? layer.cin, outStride = o.outStride ?? layer.cout;
  checkConvGeometry(layer, h, w, inStride, outStride);
  check(input instanceof Float32Array && out instanceof Float32Array, "E_ARGUMENT", "f32 N:M conv: input and out must be Float32Array");
  const inLen = (h * w - 1) * inStride + layer.cin, outLen = (h * w - 1) * outStride + layer.cout;
  check(input.length >= inLen, "E_SHAPE", () => `f32 N:M conv: input has ${input.length} floats, needs ${inLen}`);
  check(out.length >= outLen, "E_SHAPE", () => `f32 N:M conv: out has ${out.length} floats, needs ${outLen}`);
  let outMin = o.outMin ?? -Infinity;
  const outMax = o.outMax ?? Infinity;
  if (o.relu) outMin = Math.max(outMin, 0);
  const rt = o.runtime ?? runtime();
  const a = rt.arena, mk = a.mark();
  try {
    const packed = a.put(layer.bytes);
    const pIn = a.put(input.subarray(0, inLen));
    const pOut = a.put(out.subarray(0, outLen));
    const scratch = a.alloc(f32NmConvScratchBytes(w, layer.cin, layer.cout, layer.k, layer));
    f32NmConvRun(rt, { layer, packed, h, w, input: pIn, inStride, output: pOut, outStride, outMin, outMax, scratch });
    a.read(pOut, out.subarray(0, outLen));
  } finally {
    a.release(mk);
  }
  return out;
}

// ------------------------------------------------ int8 ----------------------------------------------------

/** A layer packed for qs8_qc8w_nm_conv_nhwc (or, `pairs`, qs8_qc8w_nm2_conv_nhwc). */
export interface PackedQs8NmConv extends PackedConvLayer {
  readonly n: number;
  readonly m: number;
  /** The pair-structured format and kernel. */
  readonly pairs: boolean;
  /** Entries per output channel (nmTaps; pairs: nmPairTaps). */
  readonly taps: number;
  /**
   * i32 bias_q[CoutP] | i8 values[cout][taps] | u8 index[cout][taps] (CoutP = cout↑4, entry order as the
   * f32 format). Pairs: i8 values[cout][taps][2] (even channel, odd channel) | u8 pair index[cout][taps]
   * (pair j of group g = channels g·m + 2j, g·m + 2j + 1). See the kernel header.
   */
  readonly bytes: Uint8Array;
  /** Σ_taps |w[o]| and |bias_q[o]| per output channel (the int32 overflow proof). */
  readonly absWeightSum: Float64Array;
  readonly absBias: Float64Array;
}

export interface Qs8NmPackArgs extends NmPattern {
  cout: number;
  k: number;
  cin: number;
  /** int32 quantized bias per output channel (quantizeBias in ./requant.ts), or null/absent for 0. */
  bias?: Int32Array | null;
}

/** Bytes of packQs8NmConv's blob. */
export function packedQs8NmConvBytes(k: number, cin: number, cout: number, n: number, m: number, pairs = false): number {
  return ((cout + 3) & ~3) * 4 + cout * (pairs ? nmPairTaps(k, cin, n, m) * 3 : nmTaps(k, cin, n, m) * 2);
}

/**
 * Packs N:M-sparse integer weights (int8, or int4 codes −8..7 held in an Int8Array), OHWI like the dense qs8
 * packers (`weights[((o·k + kh)·k + kw)·cin + c]`), and the int32 bias into the sparse format (`a.pairs`: the
 * pair format). E_ARGUMENT if the weights violate the pattern.
 */
export function packQs8NmConv(weights: Int8Array, a: Qs8NmPackArgs): PackedQs8NmConv {
  checkNmPattern(a);
  checkConvShape(a);
  const { k, cin, cout, n, m } = a;
  const pairs = a.pairs === true;
  check(weights instanceof Int8Array, "E_ARGUMENT", "N:M int8 conv: weights must be an Int8Array (OHWI)");
  check(weights.length === cout * k * k * cin, "E_SHAPE", `weights have ${weights.length} values, cout·k·k·cin = ${cout * k * k * cin}`);
  if (a.bias) check(a.bias instanceof Int32Array && a.bias.length === cout, "E_SHAPE", `bias must be an Int32Array of ${cout}`);
  const at = ohwiAt(weights, k, cin);
  throwIfViolated(at, k, cin, cout, n, m, pairs);
  const u = pairs ? 2 : 1;
  const T = pairs ? nmPairTaps(k, cin, n, m) : nmTaps(k, cin, n, m);
  const coutP = (cout + 3) & ~3;
  const bytes = new Uint8Array(packedQs8NmConvBytes(k, cin, cout, n, m, pairs));
  const b32 = new Int32Array(bytes.buffer, 0, coutP);
  const vals = new Int8Array(bytes.buffer, 4 * coutP, cout * T * u);
  const idx = bytes.subarray(4 * coutP + cout * T * u);
  const absWeightSum = new Float64Array(cout), absBias = new Float64Array(cout);
  for (let o = 0; o < cout; o++) {
    b32[o] = a.bias ? a.bias[o] : 0;
    absBias[o] = Math.abs(b32[o]);
  }
  forEachEntry(at, k, cin, cout, n, m, (o, j, _c, i, v, v2) => {
    vals[(o * T + j) * u] = v;
    if (pairs) vals[(o * T + j) * 2 + 1] = v2;
    idx[o * T + j] = i;
    absWeightSum[o] += Math.abs(v) + Math.abs(v2);
  }, pairs);
  return { k, cin, cout, coutPadded: coutP, n, m, pairs, taps: T, bytes, absWeightSum, absBias };
}

/** Scratch bytes qs8_qc8w_nm_conv_nhwc (pattern.pairs: qs8_qc8w_nm2_conv_nhwc) needs for any image of width ≤ W (any height). */
export function qs8NmConvScratchBytes(W: number, cin: number, cout: number, k: number, pattern: NmPattern): number {
  checkNmPattern(pattern);
  checkConvShape({ cout, k, cin });
  checkInt(W, 1, 1 << 16, "width", "E_SHAPE");
  const tail = 16 + ((cout + 3) & ~3) * BLOCK * 4;
  // Pair format: one 8-byte record per entry, each (chunk, output channel) list rounded up to an even count
  // (≤ one extra per group); the band holds cin rounded up to even channels.
  if (pattern.pairs) {
    return cout * (nmPairTaps(k, cin, pattern.n, pattern.m) + Math.ceil(cin / pattern.m)) * 8 + tail + bandBytesMax(W, cin + (cin & 1), k, 2);
  }
  // Two-tap records: each (chunk of whole groups, output channel) list rounds up to whole pairs (≤ one per group).
  const table = cout * ((nmTaps(k, cin, pattern.n, pattern.m) >> 1) + Math.ceil(cin / pattern.m)) * 12;
  return table + tail + bandBytesMax(W, cin, k, 2);
}

function codeRange(bits: number, signed: boolean): [number, number] {
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

/** E_RANGE unless max|x − z_x|·Σ|w[o]| + |bias_q[o]| < 2^31 for every output channel (exact int32 accumulators). */
export function checkNmAccumulatorRange(layer: PackedQs8NmConv, act: QActivation): void {
  const [lo, hi] = codeRange(act.bits, act.signed);
  const maxDx = Math.max(act.zeroPoint - lo, hi - act.zeroPoint);
  for (let o = 0; o < layer.cout; o++) {
    const bound = maxDx * layer.absWeightSum[o] + layer.absBias[o];
    if (bound > I32_MAX) {
      throw new LowbitError("E_RANGE", `int32 accumulator may overflow at output channel ${o}: ` +
        `max|x−z|·Σ|w| + |bias| = ${maxDx}·${layer.absWeightSum[o]} + ${layer.absBias[o]} ≥ 2^31`);
    }
  }
}

/** One int8 N:M conv on arena offsets (the engine's entry). */
export interface Qs8NmConvCall {
  layer: PackedQs8NmConv;
  /** Offset of layer.bytes (4-aligned). */
  packed: number;
  H: number;
  W: number;
  /** Offset of the input codes; pixel p's channels at input + p·inStride. */
  input: number;
  inStride: number;
  act: QActivation;
  /** Offset of the output; elements (bytes, or int32 for acc32) between pixels. */
  output: number;
  outStride: number;
  /** Offset of ≥ qs8NmConvScratchBytes(W, …) bytes. */
  scratch: number;
}

export interface Qs8NmConvRequantCall extends Qs8NmConvCall {
  /** Offset of ≥ cout↑4 f32 multipliers s_x·s_w[o]/s_y (entries past cout are read, not used). */
  multipliers: number;
  out: QOutput;
}

function checkQOutput(q: QOutput): void {
  check(q && typeof q === "object", "E_ARGUMENT", "output format missing");
  const [lo, hi] = codeRange(8, q.signed);
  checkInt(q.zeroPoint, lo, hi, "output zero point", "E_RANGE");
  checkInt(q.qmin, lo, hi, "qmin", "E_RANGE");
  checkInt(q.qmax, q.qmin, hi, "qmax (≥ qmin)", "E_RANGE");
}

function checkQCall(rt: Runtime, c: Qs8NmConvCall, outElem: number): void {
  const L = c.layer;
  checkPackedLayer(L, packedQs8NmConvBytes(L.k, L.cin, L.cout, L.n, L.m, L.pairs), "packQs8NmConv");
  check(L.absWeightSum instanceof Float64Array && L.absWeightSum.length === L.cout, "E_ARGUMENT", "layer must come from packQs8NmConv");
  checkConvGeometry(L, c.H, c.W, c.inStride, c.outStride);
  checkActivation(c.act);
  checkNmAccumulatorRange(L, c.act);
  const px = c.H * c.W;
  const inLen = (px - 1) * c.inStride + L.cin, outLen = outElem * ((px - 1) * c.outStride + L.cout);
  check(Number.isInteger(c.input) && c.input >= 0 && c.input + inLen <= rt.arena.capacity, "E_SHAPE", "input outside WASM memory");
  check(Number.isInteger(c.output) && c.output >= 0 && c.output + outLen <= rt.arena.capacity && (outElem === 1 || c.output % 4 === 0),
    "E_SHAPE", "output outside WASM memory (or int32 output not 4-aligned)");
  checkOffsets(rt, [["packed weights", c.packed, L.bytes.length], ["scratch", c.scratch, qs8NmConvScratchBytes(c.W, L.cin, L.cout, L.k, L)]]);
}

/**
 * Requantized int8 N:M conv on arena offsets. Validates every scalar and the int32 overflow bound; the
 * caller guarantees the input codes lie in the declared `act.bits` range.
 */
export function qs8NmConvRun(rt: Runtime, c: Qs8NmConvRequantCall): void {
  checkQCall(rt, c, 1);
  checkQOutput(c.out);
  checkOffsets(rt, [["multipliers", c.multipliers, 4 * ((c.layer.cout + 3) & ~3)]]);
  const L = c.layer, K = rt.kernels<NmExports>();
  (L.pairs ? K.qs8_qc8w_nm2_conv_nhwc : K.qs8_qc8w_nm_conv_nhwc)(c.input, c.inStride, c.H, c.W, L.cin, c.act.zeroPoint,
    c.act.signed ? 1 : 0, L.k, L.n, L.m, c.packed, L.cout, c.multipliers, c.output, c.outStride, c.out.zeroPoint, c.out.qmin,
    c.out.qmax, c.out.signed ? 1 : 0, c.scratch, qBandRows(L, c.H, c.W));
}

/** bandRows of an int8 layer's kernel (the pair band holds cin rounded up to even channels). */
function qBandRows(L: PackedQs8NmConv, H: number, W: number): number {
  return bandRowsOf(H, W, L.pairs ? L.cin + (L.cin & 1) : L.cin, L.k, 2);
}

/** int32-output int8 N:M conv on arena offsets: out = Σ(x − z_x)·w + bias_q. */
export function qs8NmConvAcc32Run(rt: Runtime, c: Qs8NmConvCall): void {
  checkQCall(rt, c, 4);
  const L = c.layer, K = rt.kernels<NmExports>();
  (L.pairs ? K.qs8_qc8w_nm2_conv_nhwc_acc32 : K.qs8_qc8w_nm_conv_nhwc_acc32)(c.input, c.inStride, c.H, c.W, L.cin,
    c.act.zeroPoint, c.act.signed ? 1 : 0, L.k, L.n, L.m, c.packed, L.cout, c.output, c.outStride, c.scratch, qBandRows(L, c.H, c.W));
}

function checkQArrays(layer: PackedQs8NmConv, a: QConvArrays, out: ArrayBufferView & { length: number }): [number, number] {
  check(layer && layer.bytes instanceof Uint8Array, "E_ARGUMENT", "layer must come from packQs8NmConv");
  checkActivation(a.act);
  check(a.act.signed ? a.input instanceof Int8Array : a.input instanceof Uint8Array, "E_ARGUMENT",
    `${a.act.signed ? "signed" : "unsigned"} activations need an ${a.act.signed ? "Int8Array" : "Uint8Array"}`);
  const inStride = a.inStride ?? layer.cin, outStride = a.outStride ?? layer.cout;
  checkConvGeometry(layer, a.H, a.W, inStride, outStride);
  const px = a.H * a.W;
  const needIn = (px - 1) * inStride + layer.cin, needOut = (px - 1) * outStride + layer.cout;
  check(a.input.length >= needIn, "E_SHAPE", `input holds ${a.input.length} codes, needs ${needIn}`);
  check(out.length >= needOut, "E_SHAPE", `output holds ${out.length} elements, needs ${needOut}`);
  const [lo, hi] = codeRange(a.act.bits, a.act.signed);
  if (a.act.bits < 8) {
    for (let p = 0; p < px; p++) {
      for (let c = p * inStride, e = c + layer.cin; c < e; c++) {
        const v = a.input[c];
        if (v < lo || v > hi) throw new LowbitError("E_RANGE", `input code ${v} at pixel ${p} outside the ${a.act.bits}-bit range [${lo}, ${hi}]`);
      }
    }
  }
  return [inStride, outStride];
}

function stageQ(rt: Runtime, layer: PackedQs8NmConv, a: QConvArrays, out: ArrayBufferView, multipliers: Float32Array | null) {
  const ar = rt.arena;
  const packed = ar.put(layer.bytes);
  const input = ar.put(a.input);
  let mult = 0;
  if (multipliers) {
    const mm = new Float32Array(layer.coutPadded);
    mm.set(multipliers.subarray(0, layer.cout));
    mult = ar.put(mm);
  }
  const output = ar.put(out);
  const scratch = ar.alloc(qs8NmConvScratchBytes(a.W, layer.cin, layer.cout, layer.k, layer));
  return { packed, input, mult, output, scratch };
}

/** out = requantized N:M conv(input) on typed arrays (as qs8Conv in ./qs8-conv.ts). */
export function qs8NmConv(rt: Runtime, out: Uint8Array | Int8Array, layer: PackedQs8NmConv, a: QConvArrays,
  multipliers: Float32Array, q: QOutput): Uint8Array | Int8Array {
  const [inStride, outStride] = checkQArrays(layer, a, out);
  checkQOutput(q);
  check(q.signed ? out instanceof Int8Array : out instanceof Uint8Array, "E_ARGUMENT",
    `${q.signed ? "signed" : "unsigned"} output needs an ${q.signed ? "Int8Array" : "Uint8Array"}`);
  check(multipliers instanceof Float32Array && multipliers.length === layer.cout, "E_SHAPE", `multipliers must be a Float32Array of ${layer.cout}`);
  for (let o = 0; o < layer.cout; o++) {
    check(Number.isFinite(multipliers[o]) && multipliers[o] > 0, "E_RANGE", () => `multiplier [${o}] = ${multipliers[o]} must be finite and > 0`);
  }
  checkNmAccumulatorRange(layer, a.act);
  const mk = rt.arena.mark();
  try {
    const s = stageQ(rt, layer, a, out, multipliers);
    qs8NmConvRun(rt, { layer, packed: s.packed, H: a.H, W: a.W, input: s.input, inStride, act: a.act,
      output: s.output, outStride, scratch: s.scratch, multipliers: s.mult, out: q });
    rt.arena.read(s.output, out);
  } finally {
    rt.arena.release(mk);
  }
  return out;
}

/** out = Σ(x − z_x)·w + bias_q as int32 (no requantization), typed arrays. */
export function qs8NmConvAcc32(rt: Runtime, out: Int32Array, layer: PackedQs8NmConv, a: QConvArrays): Int32Array {
  const [inStride, outStride] = checkQArrays(layer, a, out);
  check(out instanceof Int32Array, "E_ARGUMENT", "int32 output needs an Int32Array");
  checkNmAccumulatorRange(layer, a.act);
  const mk = rt.arena.mark();
  try {
    const s = stageQ(rt, layer, a, out, null);
    qs8NmConvAcc32Run(rt, { layer, packed: s.packed, H: a.H, W: a.W, input: s.input, inStride, act: a.act,
      output: s.output, outStride, scratch: s.scratch });
    rt.arena.read(s.output, out);
  } finally {
    rt.arena.release(mk);
  }
  return out;
}
