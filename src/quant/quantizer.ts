/**
 * The Quantizer seam (DESIGN.md): calibration feeds statistics in with `observe`, the plan
 * compiler asks for `params(bits)`. Static methods (uniform min-max / percentile / MSE here;
 * ODM, AdaBM's shared ranges later) compile those params to constants. A `dynamic` quantizer
 * (DAQ, DFSQ) tells the compiler to insert a per-image statistics step before the layer; its
 * `params` then describe only the static part (e.g. bits / code grid), and the method's own
 * module supplies the per-image derivation.
 *
 * `params(bits)` may be called for several bit-widths on one calibrated quantizer (AdaBM shares
 * one range across bit-widths; MSE re-searches the clip per bit-width).
 */
import { LowbitError } from "../runtime/errors.ts";
import { HistogramObserver, MinMaxObserver, PerChannelMinMaxObserver, isTensorSample, type ObserveInput } from "./observers.ts";
import { affineParams, affineParamsPerChannel, checkBits, type AffineOptions, type ChannelQuantParams, type QuantParams } from "./params.ts";
import { minmaxRange, mseRange, percentileRange, type PercentileOptions, type RangeMethod, type ValueRange } from "./range.ts";

export interface Quantizer {
  /** Method name ("minmax", "percentile", "mse", "daq", …) for plans and error messages. */
  readonly method: string;
  /** True when parameters depend on each input image/tile (compiler inserts a stats step). */
  readonly dynamic: boolean;
  /** Per-tensor or per-channel (last NHWC axis) parameters. */
  readonly granularity: "tensor" | "channel";
  /** Fold one image/tile (a strided NHWC view) or precomputed per-channel ranges into the statistics. */
  observe(stats: ObserveInput): void;
  /** Parameters for `bits`-bit codes from everything observed so far. */
  params(bits: number): QuantParams | ChannelQuantParams;
  /** Forget all statistics. */
  reset(): void;
}

export interface UniformQuantizerOptions extends AffineOptions {
  method?: RangeMethod;
  /** Percentile settings for method "percentile". */
  percentile?: PercentileOptions;
  /** Histogram bins for "percentile" / "mse" (even, default 2048). */
  bins?: number;
  /** MSE search grid (see mseRange). */
  mseSteps?: number;
  /** Per-channel parameters (method "minmax" only). */
  perChannel?: boolean;
}

/**
 * Uniform affine quantizer, static: min-max (per tensor or per channel), percentile or MSE
 * (per tensor, over a histogram). Percentile / MSE need the values, so they accept only
 * TensorSample inputs; min-max also takes precomputed per-channel ranges (the WASM stats fast
 * path).
 */
export class UniformQuantizer implements Quantizer {
  readonly method: RangeMethod;
  readonly dynamic = false;
  readonly granularity: "tensor" | "channel";
  private readonly opts: UniformQuantizerOptions;
  private readonly aff: AffineOptions;
  private mm: MinMaxObserver | null = null;
  private pc: PerChannelMinMaxObserver | null = null;
  private hist: HistogramObserver | null = null;

  constructor(opts: UniformQuantizerOptions = {}) {
    const method = opts.method ?? "minmax";
    if (method !== "minmax" && method !== "percentile" && method !== "mse") {
      throw new LowbitError("E_ARGUMENT", `unknown range method '${String(method)}' (minmax | percentile | mse)`);
    }
    if (opts.perChannel && method !== "minmax") {
      throw new LowbitError("E_ARGUMENT", `per-channel activation ranges are supported with method "minmax" only, got "${method}"`);
    }
    this.method = method;
    this.opts = { ...opts };
    this.aff = { symmetric: opts.symmetric, signed: opts.signed, narrowRange: opts.narrowRange };
    this.granularity = opts.perChannel ? "channel" : "tensor";
    if (method === "minmax" && !opts.perChannel) this.mm = new MinMaxObserver();
    if (method !== "minmax") this.hist = new HistogramObserver(opts.bins ?? 2048);
  }

  observe(stats: ObserveInput): void {
    if (isTensorSample(stats)) {
      const { data, pixels, channels, stride, offset } = stats;
      if (this.granularity === "channel") {
        this.pc ??= new PerChannelMinMaxObserver(channels);
        this.pc.observe(data, pixels, channels, stride, offset);
      } else if (this.mm) this.mm.observe(data, pixels, channels, stride, offset);
      else this.hist!.observe(data, pixels, channels, stride, offset);
      return;
    }
    if (this.hist) {
      throw new LowbitError("E_ARGUMENT", `method "${this.method}" needs the tensor values (a histogram), not per-channel ranges`);
    }
    if (this.granularity === "channel") {
      this.pc ??= new PerChannelMinMaxObserver(stats.min.length);
      this.pc.observeChannelRanges(stats.min, stats.max);
    } else this.mm!.observeChannelRanges(stats.min, stats.max);
  }

  /** The clipping range for `bits` (per-tensor methods only). */
  range(bits: number): ValueRange {
    checkBits(bits);
    if (this.granularity === "channel") throw new LowbitError("E_ARGUMENT", "range() is per-tensor; use params() for per-channel quantizers");
    if (this.mm) return minmaxRange(this.mm);
    if (this.method === "percentile") return percentileRange(this.hist!, this.opts.percentile);
    return mseRange(this.hist!, bits, { ...this.aff, steps: this.opts.mseSteps });
  }

  params(bits: number): QuantParams | ChannelQuantParams {
    checkBits(bits);
    if (this.granularity === "channel") {
      if (!this.pc || this.pc.count === 0) throw new LowbitError("E_ARGUMENT", "params() before any observe()");
      return affineParamsPerChannel(this.pc.min, this.pc.max, bits, this.aff, 3);
    }
    const [lo, hi] = this.range(bits);
    return affineParams(lo, hi, bits, this.aff);
  }

  reset(): void {
    this.mm?.reset();
    this.pc = null;
    this.hist?.reset();
  }

  /** The histogram (percentile / mse) for inspection; null for min-max. */
  histogram(): HistogramObserver | null {
    return this.hist;
  }
}

/** Shorthand: a static uniform quantizer for `method`. */
export function uniformQuantizer(method: RangeMethod, opts: Omit<UniformQuantizerOptions, "method"> = {}): UniformQuantizer {
  return new UniformQuantizer({ ...opts, method });
}
