// Activation code quantizers of the dynamically quantized convs (assembly/elementwise/act-codes.ts):
//   daqCodes        DAQ midrise (signed) / post-ReLU 'int' mode codes with per-channel μ, 1/Δ and bits
//   subsetCodes     DFSQ threshold quantizer: code = index of the nearest point of the channel's sorted unique
//                   codebook (ties → lower), through a per-channel count table built once per layer
//   countPositive   per-channel #(x > 0) (DAQ post-ReLU n_c), accumulating over tiles
// Arithmetic, NaN / Δ = 0 conventions and the table proof: the kernel file's header. References: ./ref/act-codes.ts.
import type { Runtime } from "../runtime/runtime.ts";
import { LowbitError, check, checkInt } from "../runtime/errors.ts";
import { checkArray, checkDims, checkF32, checkPtr, rtOr, spanOf, strideOf, withScratch } from "./elementwise-common.ts";

interface Kernels {
  f32_daq_codes_nhwc(x: number, n: number, c: number, xs: number, mu: number, invDelta: number, half: number, kmax: number,
    postRelu: number, out: number, os: number): void;
  f32_subset_codes_nhwc(x: number, n: number, c: number, xs: number, mu: number, invM: number, table: number, tableStride: number,
    out: number, os: number): void;
  f32_subset_codes_cmp_nhwc(x: number, n: number, c: number, xs: number, mu: number, invM: number, thr: number, nThr: number,
    out: number, os: number): void;
  f32_count_positive_nhwc(x: number, n: number, c: number, xs: number, out: number): void;
}

/** Minimum (and default) bytes per channel of a subset count table: indices −2048..2049 (+2048). */
export const SUBSET_TABLE_STRIDE = 4098;

/** Largest per-call / total count countPositive keeps exact (f32 integers). */
export const COUNT_EXACT_LIMIT = 2 ** 24;

function checkVec(rt: Runtime, p: number, c: number, what: string): void {
  checkPtr(rt, p, 4 * c, what, 4);
}

function checkIo(rt: Runtime, x: number, n: number, c: number, xs: number, out: number, os: number): void {
  check(spanOf(n, c, xs) * 4 <= 2 ** 31 - 1 && spanOf(n, c, os) <= 2 ** 31 - 1, "E_MEMORY", "tensor too large for 32-bit offsets");
  checkPtr(rt, x, 4 * spanOf(n, c, xs), "input", 4);
  checkPtr(rt, out, spanOf(n, c, os), "codes output");
}

/** A per-channel f32 vector of a typed-array call: a Float32Array of ≥ c finite values (≥ 0 when nonNegative). */
function checkChannelVec(v: unknown, c: number, what: string, nonNegative = false): asserts v is Float32Array {
  checkF32(v, what);
  checkArray(v, c, what);
  for (let i = 0; i < c; i++) {
    const ok = Number.isFinite(v[i]) && (!nonNegative || v[i] >= 0);
    if (!ok) throw new LowbitError("E_RANGE", `${what}[${i}] = ${v[i]} must be finite${nonNegative ? " and ≥ 0" : ""}`);
  }
}

/** Tensor layout of a quantizer call: pixels × channels, pixel strides in elements (default: dense). */
interface CodesLayout {
  pixels: number;
  channels: number;
  xStride?: number;
  outStride?: number;
}

/**
 * Arena-offset form: the f32 input at x, the u8 codes at out and the f32[channels] vectors `vecs` (name → offset)
 * lie in memory. Returns the pixel strides [xs, os].
 */
function checkCodesAt(rt: Runtime, a: CodesLayout & { x: number; out: number }, vecs: Record<string, number>): [number, number] {
  checkDims(a.pixels, a.channels);
  const xs = strideOf(a.xStride, a.channels, "input");
  const os = strideOf(a.outStride, a.channels, "output");
  checkIo(rt, a.x, a.pixels, a.channels, xs, a.out, os);
  for (const [what, p] of Object.entries(vecs)) checkVec(rt, p, a.channels, what);
  return [xs, os];
}

/** Typed-array form: out is a Uint8Array and x a Float32Array spanning the layout. Returns n, c and the strides. */
function checkCodesIo(out: Uint8Array, x: Float32Array, o: CodesLayout): { n: number; c: number; xs: number; os: number } {
  check(out instanceof Uint8Array, "E_ARGUMENT", "out must be a Uint8Array");
  checkF32(x, "x");
  const { pixels: n, channels: c } = o;
  checkDims(n, c);
  const xs = strideOf(o.xStride, c, "input");
  const os = strideOf(o.outStride, c, "output");
  checkArray(x, spanOf(n, c, xs), "x");
  checkArray(out, spanOf(n, c, os), "out");
  return { n, c, xs, os };
}

// ------------------------------------------------ DAQ ----------------------------------------------------

/** Arena-offset form: mu, invDelta f32[c]; half, kmax i32[c] (daqCodeParams). */
export interface DaqCodesAt {
  x: number; pixels: number; channels: number; xStride?: number;
  mu: number; invDelta: number; half: number; kmax: number;
  postRelu: boolean;
  out: number; outStride?: number;
}

/**
 * half[c] = 2^(b_c − 1), kmax[c] = 2^(b_c) − 1 for per-channel bit-widths b_c ∈ 1..8 (a number: all channels).
 * Writes into `half`/`kmax` (length ≥ channels).
 */
export function daqCodeParams(half: Int32Array, kmax: Int32Array, bits: number | ArrayLike<number>, channels: number): void {
  check(half instanceof Int32Array && kmax instanceof Int32Array, "E_ARGUMENT", "half and kmax must be Int32Arrays");
  checkArray(half, channels, "half");
  checkArray(kmax, channels, "kmax");
  for (let c = 0; c < channels; c++) {
    const b = typeof bits === "number" ? bits : bits[c];
    checkInt(b, 1, 8, `bits[${c}]`, "E_BITS");
    half[c] = 2 ** (b - 1);
    kmax[c] = 2 ** b - 1;
  }
}

/**
 * DAQ codes on arena offsets. The per-channel vectors are the caller's (the engine computes them per image);
 * they are not re-validated here beyond their bounds — use daqCodes for a checked call.
 */
export function daqCodesAt(rt: Runtime, a: DaqCodesAt): void {
  const [xs, os] = checkCodesAt(rt, a, { mu: a.mu, invDelta: a.invDelta, half: a.half, kmax: a.kmax });
  rt.kernels<Kernels>().f32_daq_codes_nhwc(a.x, a.pixels, a.channels, xs, a.mu, a.invDelta, a.half, a.kmax,
    a.postRelu ? 1 : 0, a.out, os);
}

export interface DaqCodesOptions extends CodesLayout {
  /** Per-channel mean (signed branch; ignored for post-ReLU, may be omitted there). */
  mu?: Float32Array | null;
  /** Per-channel f32(1/Δ_c), finite ≥ 0 (0 for a constant channel: middle code / 0). */
  invDelta: Float32Array;
  /** Bit-width 1..8, for all channels or per channel. */
  bits: number | ArrayLike<number>;
  postRelu: boolean;
}

/**
 * out (u8 codes) = DAQ codes of x: signed k = clamp(⌊(x − μ)·invΔ⌋ + 2^(b−1), 0, 2^b − 1), post-ReLU
 * k = clamp(round_half_even(x·invΔ), 0, 2^b − 1) (the spec's 'int' mode). NaN → the code of x = μ.
 */
export function daqCodes(out: Uint8Array, x: Float32Array, o: DaqCodesOptions, rt?: Runtime): Uint8Array {
  const { n, c, xs, os } = checkCodesIo(out, x, o);
  checkChannelVec(o.invDelta, c, "invDelta", true);
  const mu = o.mu ?? (o.postRelu ? new Float32Array(c) : null);
  check(mu instanceof Float32Array, "E_ARGUMENT", "mu must be a Float32Array (signed branch)");
  checkChannelVec(mu, c, "mu");
  const half = new Int32Array(c), kmax = new Int32Array(c);
  daqCodeParams(half, kmax, o.bits, c);
  if (n === 0) return out;
  const r = rtOr(rt);
  withScratch(r, (s) => {
    daqCodesAt(r, {
      x: s.put(x, spanOf(n, c, xs)), pixels: n, channels: c, xStride: xs,
      mu: s.put(mu.subarray(0, c)), invDelta: s.put(o.invDelta.subarray(0, c)), half: s.put(half), kmax: s.put(kmax),
      postRelu: o.postRelu, out: s.out(out, spanOf(n, c, os), os !== c), outStride: os,
    });
  });
  return out;
}

// ------------------------------------------------ DFSQ ---------------------------------------------------

/**
 * The sorted, de-duplicated codebook of one channel (integers in [−1024, 1024], units of 1/1024 of m_c). Codes of
 * subsetCodes index this list; duplicates of the calibrated codebook collapse (DFSQ §4 keeps them).
 */
export function subsetSortedUnique(codebook: ArrayLike<number>): Int32Array {
  check(codebook && codebook.length >= 1 && codebook.length <= 256, "E_SHAPE", `a codebook needs 1..256 points, got ${codebook?.length}`);
  for (let i = 0; i < codebook.length; i++) checkInt(codebook[i], -1024, 1024, `codebook point [${i}] (1/1024 units)`, "E_RANGE");
  return Int32Array.from(new Set(Array.from(codebook))).sort();
}

/**
 * Builds the per-channel count tables of f32_subset_codes_nhwc into out (u8 [channels][tableStride]):
 * cnt_c[i] = #{j : T'_j < i − 2048}, T'_j = u_j + u_{j+1} over channel c's sorted unique codebook `sorted[c]`
 * (strictly increasing integers in [−1024, 1024], at most 256). Once per layer.
 */
export function subsetCodeTable(out: Uint8Array, sorted: ReadonlyArray<ArrayLike<number>>, tableStride = SUBSET_TABLE_STRIDE): Uint8Array {
  check(out instanceof Uint8Array, "E_ARGUMENT", "out must be a Uint8Array");
  checkSortedBooks(sorted);
  checkInt(tableStride, SUBSET_TABLE_STRIDE, 1 << 20, "tableStride", "E_SHAPE");
  checkArray(out, sorted.length * tableStride, "table");
  for (let c = 0; c < sorted.length; c++) {
    const u = sorted[c];
    const row = out.subarray(c * tableStride, (c + 1) * tableStride);
    // cnt[i] counts thresholds T' ≤ i − 2049, i.e. < i − 2048: sweep i upward over the sorted thresholds.
    let j = 0;
    for (let i = 0; i < tableStride; i++) {
      while (j + 1 < u.length && u[j] + u[j + 1] < i - 2048) j++;
      row[i] = j;
    }
  }
  return out;
}

/** Arena-offset form: mu, invM f32[c]; table u8 [c][tableStride]. */
export interface SubsetCodesAt {
  x: number; pixels: number; channels: number; xStride?: number;
  mu: number; invM: number;
  table: number; tableStride?: number;
  out: number; outStride?: number;
}

export function subsetCodesAt(rt: Runtime, a: SubsetCodesAt): void {
  const [xs, os] = checkCodesAt(rt, a, { mu: a.mu, invM: a.invM });
  const ts = a.tableStride ?? SUBSET_TABLE_STRIDE;
  checkInt(ts, SUBSET_TABLE_STRIDE, 1 << 20, "tableStride", "E_SHAPE");
  check(a.channels * ts <= 2 ** 31 - 1, "E_MEMORY", "table too large");
  checkPtr(rt, a.table, a.channels * ts, "table");
  rt.kernels<Kernels>().f32_subset_codes_nhwc(a.x, a.pixels, a.channels, xs, a.mu, a.invM, a.table, ts, a.out, os);
}

export interface SubsetCodesOptions extends CodesLayout {
  /** Per-channel centre (0 for post-ReLU inputs). */
  mu: Float32Array;
  /** Per-channel f32(1/(m_c + 1e-8)), finite ≥ 0. */
  invM: Float32Array;
  /** subsetCodeTable output for these channels. */
  table: Uint8Array;
  tableStride?: number;
}

/** out (u8) = DFSQ threshold codes of x: #{j : T'_j < f32(f32(x − μ)·invM)·2048}. NaN → the code of x = μ. */
export function subsetCodes(out: Uint8Array, x: Float32Array, o: SubsetCodesOptions, rt?: Runtime): Uint8Array {
  const { n, c, xs, os } = checkCodesIo(out, x, o);
  const ts = o.tableStride ?? SUBSET_TABLE_STRIDE;
  checkInt(ts, SUBSET_TABLE_STRIDE, 1 << 20, "tableStride", "E_SHAPE");
  checkChannelVec(o.mu, c, "mu");
  checkChannelVec(o.invM, c, "invM", true);
  check(o.table instanceof Uint8Array, "E_ARGUMENT", "table must be a Uint8Array (subsetCodeTable)");
  checkArray(o.table, c * ts, "table");
  if (n === 0) return out;
  const r = rtOr(rt);
  withScratch(r, (s) => {
    subsetCodesAt(r, {
      x: s.put(x, spanOf(n, c, xs)), pixels: n, channels: c, xStride: xs,
      mu: s.put(o.mu.subarray(0, c)), invM: s.put(o.invM.subarray(0, c)), table: s.put(o.table, c * ts), tableStride: ts,
      out: s.out(out, spanOf(n, c, os), os !== c), outStride: os,
    });
  });
  return out;
}

/**
 * Codebooks of at most this many points are faster with the compare-count kernel (subsetCodesCmp); from 8 points
 * on the count table (subsetCodes) is as fast or faster (bench/RESULTS.md, 64 channels: 4 points 34 vs 60 ms/MP,
 * 8 points 62 vs 60, 16 points 101 vs 60).
 */
export const SUBSET_CMP_MAX_POINTS = 4;

/** i16 elements of a compare-count threshold layout for c channels and nThr thresholds per channel. */
export function subsetThresholdsLength(channels: number, nThr: number): number {
  return ((channels + 7) >> 3) * nThr * 8;
}

function checkSortedBooks(sorted: ReadonlyArray<ArrayLike<number>>): void {
  check(Array.isArray(sorted) && sorted.length >= 1, "E_SHAPE", "one sorted codebook per channel needed");
  for (let c = 0; c < sorted.length; c++) {
    const u = sorted[c];
    check(u && u.length >= 1 && u.length <= 256, "E_SHAPE", `codebook ${c} needs 1..256 points`);
    for (let j = 0; j < u.length; j++) {
      checkInt(u[j], -1024, 1024, `codebook ${c} point [${j}] (1/1024 units)`, "E_RANGE");
      if (j > 0 && !(u[j] > u[j - 1])) throw new LowbitError("E_ARGUMENT", `codebook ${c} is not strictly increasing at [${j}] (use subsetSortedUnique)`);
    }
  }
}

/**
 * The compare-count form of the same quantizer (f32_subset_codes_cmp_nhwc): thresholds T'_j = u_j + u_{j+1} as
 * i16 [⌈c/8⌉][nThr][8] (pad 32767), nThr = max_c (n_c − 1). Returns the layout and nThr; once per layer.
 */
export function subsetThresholds(sorted: ReadonlyArray<ArrayLike<number>>): { thresholds: Int16Array; nThr: number } {
  checkSortedBooks(sorted);
  const c = sorted.length;
  let nThr = 0;
  for (const u of sorted) nThr = Math.max(nThr, u.length - 1);
  const thresholds = new Int16Array(subsetThresholdsLength(c, nThr)).fill(32767);
  for (let ch = 0; ch < c; ch++) {
    const u = sorted[ch];
    for (let j = 0; j + 1 < u.length; j++) thresholds[((ch >> 3) * nThr + j) * 8 + (ch & 7)] = u[j] + u[j + 1];
  }
  return { thresholds, nThr };
}

/** Arena-offset form of the compare-count quantizer: thr i16 [⌈c/8⌉][nThr][8] (subsetThresholds). */
export interface SubsetCodesCmpAt {
  x: number; pixels: number; channels: number; xStride?: number;
  mu: number; invM: number;
  thresholds: number; nThr: number;
  out: number; outStride?: number;
}

export function subsetCodesCmpAt(rt: Runtime, a: SubsetCodesCmpAt): void {
  const [xs, os] = checkCodesAt(rt, a, { mu: a.mu, invM: a.invM });
  checkInt(a.nThr, 0, 255, "nThr", "E_SHAPE");
  checkPtr(rt, a.thresholds, 2 * subsetThresholdsLength(a.channels, a.nThr), "thresholds", 2);
  rt.kernels<Kernels>().f32_subset_codes_cmp_nhwc(a.x, a.pixels, a.channels, xs, a.mu, a.invM, a.thresholds, a.nThr, a.out, os);
}

export interface SubsetCodesCmpOptions extends CodesLayout {
  mu: Float32Array;
  invM: Float32Array;
  /** subsetThresholds output for these channels. */
  thresholds: Int16Array;
  nThr: number;
}

/** Same codes as subsetCodes, by the compare-count kernel (the faster choice for ≤ SUBSET_CMP_MAX_POINTS points). */
export function subsetCodesCmp(out: Uint8Array, x: Float32Array, o: SubsetCodesCmpOptions, rt?: Runtime): Uint8Array {
  const { n, c, xs, os } = checkCodesIo(out, x, o);
  checkChannelVec(o.mu, c, "mu");
  checkChannelVec(o.invM, c, "invM", true);
  checkInt(o.nThr, 0, 255, "nThr", "E_SHAPE");
  check(o.thresholds instanceof Int16Array, "E_ARGUMENT", "thresholds must be an Int16Array (subsetThresholds)");
  checkArray(o.thresholds, subsetThresholdsLength(c, o.nThr), "thresholds");
  if (n === 0) return out;
  const r = rtOr(rt);
  withScratch(r, (s) => {
    subsetCodesCmpAt(r, {
      x: s.put(x, spanOf(n, c, xs)), pixels: n, channels: c, xStride: xs,
      mu: s.put(o.mu.subarray(0, c)), invM: s.put(o.invM.subarray(0, c)),
      thresholds: s.put(o.thresholds, subsetThresholdsLength(c, o.nThr)), nThr: o.nThr,
      out: s.out(out, spanOf(n, c, os), os !== c), outStride: os,
    });
  });
  return out;
}

// ------------------------------------------------ stats --------------------------------------------------

export interface CountPositiveAt {
  x: number; pixels: number; channels: number; xStride?: number;
  /** Offset of f32[channels] the counts are added into. */
  out: number;
}

/** out[c] += #(x > 0) on arena offsets; pixels ≤ 2^24 per call (totals stay exact while ≤ 2^24). */
export function countPositiveAt(rt: Runtime, a: CountPositiveAt): void {
  checkDims(a.pixels, a.channels);
  checkInt(a.pixels, 0, COUNT_EXACT_LIMIT, "pixels per call", "E_SHAPE");
  const xs = strideOf(a.xStride, a.channels, "input");
  check(spanOf(a.pixels, a.channels, xs) * 4 <= 2 ** 31 - 1, "E_MEMORY", "tensor too large for 32-bit offsets");
  checkPtr(rt, a.x, 4 * spanOf(a.pixels, a.channels, xs), "input", 4);
  checkVec(rt, a.out, a.channels, "counts");
  rt.kernels<Kernels>().f32_count_positive_nhwc(a.x, a.pixels, a.channels, xs, a.out);
}

/** out[c] += #{pixels : x > 0} (out length ≥ channels; E_RANGE when a total would pass 2^24 and lose exactness). */
export function countPositive(out: Float32Array, x: Float32Array, layout: { pixels: number; channels: number; xStride?: number }, rt?: Runtime): Float32Array {
  checkF32(out, "out");
  checkF32(x, "x");
  const { pixels: n, channels: c } = layout;
  checkDims(n, c);
  const xs = strideOf(layout.xStride, c, "input");
  checkArray(x, spanOf(n, c, xs), "x");
  checkArray(out, c, "out");
  for (let i = 0; i < c; i++) {
    check(Number.isInteger(out[i]) && out[i] >= 0 && out[i] + n <= COUNT_EXACT_LIMIT, "E_RANGE",
      () => `count [${i}] = ${out[i]} + ${n} pixels would not stay an exact count ≤ 2^24`);
  }
  if (n === 0) return out;
  const r = rtOr(rt);
  withScratch(r, (s) => {
    countPositiveAt(r, { x: s.put(x, spanOf(n, c, xs)), pixels: n, channels: c, xStride: xs, out: s.out(out, c, true) });
  });
  return out;
}
