/**
 * Calibration observers: accumulate statistics of one tensor over many images / tiles.
 *
 * Input layout is the engine's buffer layout: NHWC, batch 1, a tensor possibly a channel slice
 * of a wider buffer. `observe(data, pixels, channels, stride, offset)` reads element
 * (p, c) at data[offset + p·stride + c] for p < pixels, c < channels (stride ≥ channels).
 *
 * Observers are plain accumulators (no allocation per call, no WASM): the WASM statistics
 * kernel can do the heavy pass instead and hand its per-channel [min, max] to
 * `observeChannelRanges` (the fast path), which min/max observers accept. Histograms need the
 * values themselves.
 *
 * Histogram range growth: **exact re-binning by doubling** (one pass, no interpolation). The
 * bin count N (even) is fixed. When a value falls outside [lo, hi), the range doubles — up
 * ([lo, lo + 2w·N)) or down ([hi − 2w·N, hi)) — and every new bin is the union of exactly two
 * adjacent old bins, so counts move without any approximation and old bin edges remain bin
 * edges. (PyTorch's HistogramObserver instead up-samples and linearly interpolates to a new
 * range; doubling loses at most a factor 2 of resolution but never smears mass.) Callers that
 * know the final range up front (a first pass of the WASM stats kernel) can call
 * `reserve(lo, hi)` to fix it and skip re-binning entirely — the two-pass variant.
 */
import { LowbitError, checkInt } from "../runtime/errors.ts";

/** A strided NHWC tensor view: element (p, c) is data[offset + p·stride + c]. */
export interface TensorSample {
  data: Float32Array;
  pixels: number;
  channels: number;
  /** Elements between consecutive pixels (≥ channels). Default: channels. */
  stride?: number;
  /** Index of element (0, 0). Default 0. */
  offset?: number;
}

/** Per-channel [min, max] precomputed elsewhere (e.g. by the WASM statistics kernel). */
export interface ChannelRanges {
  min: ArrayLike<number>;
  max: ArrayLike<number>;
}

/** What `Quantizer.observe` accepts. */
export type ObserveInput = TensorSample | ChannelRanges;

export function isTensorSample(s: ObserveInput): s is TensorSample {
  return (s as TensorSample).data !== undefined;
}

/** Validates a strided view; returns [stride, offset]. E_SHAPE on any inconsistency. */
export function checkView(data: Float32Array, pixels: number, channels: number, stride?: number, offset?: number): [number, number] {
  if (!(data instanceof Float32Array)) throw new LowbitError("E_ARGUMENT", "observer data must be a Float32Array");
  checkInt(pixels, 0, 2 ** 31, "pixels", "E_SHAPE");
  checkInt(channels, 1, 1 << 16, "channels", "E_SHAPE");
  const s = stride ?? channels;
  const o = offset ?? 0;
  checkInt(s, channels, 2 ** 31, "stride (≥ channels)", "E_SHAPE");
  checkInt(o, 0, 2 ** 31, "offset", "E_SHAPE");
  if (pixels > 0 && o + (pixels - 1) * s + channels > data.length) {
    throw new LowbitError(
      "E_SHAPE",
      `tensor view (offset ${o}, ${pixels} pixels × ${channels} channels, stride ${s}) needs ${o + (pixels - 1) * s + channels} elements, buffer has ${data.length}`,
    );
  }
  return [s, o];
}

function nonFinite(where: string): LowbitError {
  return new LowbitError("E_RANGE", `${where}: tensor contains NaN or ±Inf`);
}

/** Common shape of every observer. */
export interface Observer {
  /** Number of values (or ranges) seen. */
  readonly count: number;
  observe(data: Float32Array, pixels: number, channels: number, stride?: number, offset?: number): void;
  reset(): void;
}

/** Smallest/largest value over everything observed (per tensor). */
export class MinMaxObserver implements Observer {
  min = Infinity;
  max = -Infinity;
  count = 0;

  observe(data: Float32Array, pixels: number, channels: number, stride?: number, offset?: number): void {
    const [s, o] = checkView(data, pixels, channels, stride, offset);
    let mn = this.min, mx = this.max, bad = false;
    for (let p = 0, row = o; p < pixels; p++, row += s) {
      for (let i = row, end = row + channels; i < end; i++) {
        const x = data[i];
        if (x < mn) mn = x;
        if (x > mx) mx = x;
        bad ||= x !== x;
      }
    }
    // ±Inf shows up in min/max, NaN only in `bad`.
    if (bad || mn === -Infinity || mx === Infinity) throw nonFinite("MinMaxObserver");
    this.min = mn;
    this.max = mx;
    this.count += pixels * channels;
  }

  /** Fast path: fold in per-channel [min, max] computed elsewhere (one "count" per channel). */
  observeChannelRanges(min: ArrayLike<number>, max: ArrayLike<number>): void {
    checkRanges(min, max);
    let mn = this.min, mx = this.max;
    for (let c = 0; c < min.length; c++) {
      if (min[c] < mn) mn = min[c];
      if (max[c] > mx) mx = max[c];
    }
    this.min = mn;
    this.max = mx;
    this.count += min.length;
  }

  reset(): void {
    this.min = Infinity;
    this.max = -Infinity;
    this.count = 0;
  }

  /** Fold another observer of the same tensor into this one (parallel calibration). */
  merge(o: MinMaxObserver): void {
    this.min = Math.min(this.min, o.min);
    this.max = Math.max(this.max, o.max);
    this.count += o.count;
  }
}

function checkRanges(min: ArrayLike<number>, max: ArrayLike<number>): void {
  if (min.length !== max.length || min.length < 1) {
    throw new LowbitError("E_SHAPE", `channel ranges need equal non-empty min/max arrays, got ${min.length} and ${max.length}`);
  }
  for (let c = 0; c < min.length; c++) {
    if (!Number.isFinite(min[c]) || !Number.isFinite(max[c])) throw nonFinite(`channel range ${c}`);
    if (min[c] > max[c]) throw new LowbitError("E_ARGUMENT", `channel range ${c}: min ${min[c]} > max ${max[c]}`);
  }
}

/** Per-channel min/max (channel = last axis of the NHWC view). */
export class PerChannelMinMaxObserver implements Observer {
  readonly min: Float64Array;
  readonly max: Float64Array;
  /** Pixels observed (tensor pass) plus range sets observed (fast path); 0 = nothing seen. */
  count = 0;

  constructor(readonly channels: number) {
    checkInt(channels, 1, 1 << 16, "channels", "E_SHAPE");
    this.min = new Float64Array(channels).fill(Infinity);
    this.max = new Float64Array(channels).fill(-Infinity);
  }

  observe(data: Float32Array, pixels: number, channels: number, stride?: number, offset?: number): void {
    if (channels !== this.channels) {
      throw new LowbitError("E_SHAPE", `PerChannelMinMaxObserver has ${this.channels} channels, got ${channels}`);
    }
    const [s, o] = checkView(data, pixels, channels, stride, offset);
    const mn = this.min, mx = this.max;
    let bad = false;
    for (let p = 0, row = o; p < pixels; p++, row += s) {
      for (let c = 0; c < channels; c++) {
        const x = data[row + c];
        if (x < mn[c]) mn[c] = x;
        if (x > mx[c]) mx[c] = x;
        bad ||= x !== x || x === Infinity || x === -Infinity;
      }
    }
    if (bad) throw nonFinite("PerChannelMinMaxObserver");
    this.count += pixels;
  }

  /** Fast path: per-channel [min, max] of one more image/tile from the WASM stats kernel. */
  observeChannelRanges(min: ArrayLike<number>, max: ArrayLike<number>): void {
    checkRanges(min, max);
    if (min.length !== this.channels) {
      throw new LowbitError("E_SHAPE", `PerChannelMinMaxObserver has ${this.channels} channels, got ranges for ${min.length}`);
    }
    for (let c = 0; c < this.channels; c++) {
      if (min[c] < this.min[c]) this.min[c] = min[c];
      if (max[c] > this.max[c]) this.max[c] = max[c];
    }
    this.count += 1;
  }

  reset(): void {
    this.min.fill(Infinity);
    this.max.fill(-Infinity);
    this.count = 0;
  }
}

/**
 * Per-tensor histogram of observed values over a growable range [lo, hi) with a fixed, even
 * number of bins (default 2048, as TensorRT's and PyTorch's calibrators use). The exact min and
 * max seen are tracked separately (range selection clips to them, not to the bin range).
 *
 * The bin range always contains 0 — every quantization range does — and is first set from the
 * first batch with a non-zero value ([min(0, mn), max(0, mx)]); exact zeros seen before that are
 * held in `pendingZeros` and added to the bin of 0 then. Values exactly equal to `hi` go to the
 * last bin. Bin i covers [lo + i·w, lo + (i+1)·w), w = (hi − lo)/N.
 */
export class HistogramObserver implements Observer {
  readonly bins: number;
  readonly counts: Float64Array;
  lo = 0;
  hi = 0;
  /** Exact extremes of everything observed (±Infinity before any value). */
  min = Infinity;
  max = -Infinity;
  count = 0;
  /** How many times the range doubled (diagnostics). */
  regrows = 0;
  private pendingZeros = 0;

  constructor(bins = 2048) {
    checkInt(bins, 2, 1 << 20, "histogram bins");
    if (bins % 2 !== 0) throw new LowbitError("E_ARGUMENT", `histogram bins must be even (range doubling merges bin pairs), got ${bins}`);
    this.bins = bins;
    this.counts = new Float64Array(bins);
  }

  /** True once the bin range is set (some non-zero value seen, or reserve() called). */
  get hasRange(): boolean {
    return this.hi > this.lo;
  }

  /** Bin width. */
  get width(): number {
    return (this.hi - this.lo) / this.bins;
  }

  /**
   * Makes the bin range cover [lo, hi] (widened to include 0). Before any data this fixes the
   * range exactly (two-pass use: feed it the final min/max first and no re-binning happens);
   * afterwards it grows the range by exact doubling as needed.
   */
  reserve(lo: number, hi: number): void {
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw nonFinite("HistogramObserver.reserve");
    if (lo > hi) throw new LowbitError("E_ARGUMENT", `reserve: lo ${lo} > hi ${hi}`);
    this.cover(Math.min(lo, 0), Math.max(hi, 0));
  }

  private cover(mn: number, mx: number): void {
    if (!this.hasRange) {
      if (mn === mx) return; // still all zeros
      this.lo = mn;
      this.hi = mx;
      if (this.pendingZeros > 0) {
        this.counts[this.binOf(0)] += this.pendingZeros;
        this.pendingZeros = 0;
      }
      return;
    }
    // Values equal to hi are accepted (last bin), so grow only when strictly outside.
    while (mn < this.lo || mx > this.hi) {
      if (mn < this.lo) this.growDown();
      else this.growUp();
    }
  }

  /** New range [lo, lo + 2(hi − lo)): new bin j = old bins 2j, 2j+1. */
  private growUp(): void {
    const c = this.counts, n = this.bins, h = n / 2;
    for (let j = 0; j < h; j++) c[j] = c[2 * j] + c[2 * j + 1];
    c.fill(0, h);
    this.hi = this.lo + 2 * (this.hi - this.lo);
    this.regrows++;
  }

  /** New range [hi − 2(hi − lo), hi): new bin h + j = old bins 2j, 2j+1. */
  private growDown(): void {
    const c = this.counts, n = this.bins, h = n / 2;
    for (let j = h - 1; j >= 0; j--) c[h + j] = c[2 * j] + c[2 * j + 1];
    c.fill(0, 0, h);
    this.lo = this.hi - 2 * (this.hi - this.lo);
    this.regrows++;
  }

  /** Bin index of a value inside [lo, hi] (the same f64 arithmetic observe() uses). */
  binOf(x: number): number {
    const i = Math.floor((x - this.lo) * (this.bins / (this.hi - this.lo)));
    return i < 0 ? 0 : i >= this.bins ? this.bins - 1 : i;
  }

  observe(data: Float32Array, pixels: number, channels: number, stride?: number, offset?: number): void {
    const [s, o] = checkView(data, pixels, channels, stride, offset);
    if (pixels === 0) return;
    // Pass 1: extremes of this batch (and NaN/Inf check), so the range grows once per batch.
    let mn = Infinity, mx = -Infinity, bad = false;
    for (let p = 0, row = o; p < pixels; p++, row += s) {
      for (let i = row, end = row + channels; i < end; i++) {
        const x = data[i];
        if (x < mn) mn = x;
        if (x > mx) mx = x;
        bad ||= x !== x;
      }
    }
    if (bad || mn === -Infinity || mx === Infinity) throw nonFinite("HistogramObserver");
    this.cover(Math.min(mn, 0), Math.max(mx, 0));
    if (mn < this.min) this.min = mn;
    if (mx > this.max) this.max = mx;
    this.count += pixels * channels;
    if (!this.hasRange) {
      this.pendingZeros += pixels * channels;
      return;
    }
    // Pass 2: binning. k = N/(hi − lo) in f64; x == hi lands in the last bin.
    const c = this.counts, n = this.bins, lo = this.lo, k = n / (this.hi - this.lo);
    for (let p = 0, row = o; p < pixels; p++, row += s) {
      for (let i = row, end = row + channels; i < end; i++) {
        let b = Math.floor((data[i] - lo) * k);
        if (b >= n) b = n - 1;
        else if (b < 0) b = 0;
        c[b]++;
      }
    }
  }

  reset(): void {
    this.counts.fill(0);
    this.lo = this.hi = 0;
    this.min = Infinity;
    this.max = -Infinity;
    this.count = 0;
    this.regrows = 0;
    this.pendingZeros = 0;
  }

  /** Sum of all bin counts (= count once a range is set). */
  total(): number {
    let t = this.pendingZeros;
    for (let i = 0; i < this.bins; i++) t += this.counts[i];
    return t;
  }
}
