/**
 * DAQ's activation quantizer in the engine (daq.md §3, §6): per image and
 * input channel μ_c and Δ_c = G·σ_c (activation.ts), midrise codes
 *   signed:    k = clamp(⌊(x − μ_c)/Δ_c⌋ + 2^(b−1), 0, 2^b − 1),  x̂ = μ_c + (k − (2^b − 1)/2)·Δ_c
 *   post-ReLU: k = clamp(round(x/Δ_c), 0, 2^b − 1),               x̂ = k·Δ_c   ("int" mode)
 * and their integer forms (odd v = 2k − (2^b − 1) with a_c = Δ_c/2, or k with a_c = Δ_c).
 * Channels may carry different bit-widths (channel-sensitivity mixed precision).
 * "reference" mode (unclamped post-ReLU codes, the σ' ≤ 0 guard values of the
 * released code) has no finite code table: it runs on the oracle path only.
 */
import type { ChannelStatsView, DynamicActQuantizer } from "../dynamic/act-quantizer.ts";
import { daqActivationParams, daqInvDelta, type DaqActivationOptions } from "./activation.ts";
import { daqQuantizeReference } from "./reference.ts";

export class DaqActQuantizer implements DynamicActQuantizer {
  readonly method = "daq" as const;
  readonly codeKernel = "daq" as const;
  readonly channels: number;
  readonly levels: number;
  readonly postRelu: boolean;
  readonly needsCountPositive: boolean;
  readonly half: Int32Array;
  readonly kmax: Int32Array;
  readonly options: DaqActivationOptions;
  /** Per-channel branch (lowbit option): channels of a signed tensor that come out of a ReLU. */
  readonly reluMask: Uint8Array | null;
  private readonly p: { mu: Float32Array; delta: Float32Array };
  private readonly pr: { mu: Float32Array; delta: Float32Array };

  /**
   * `bits`: one width, or one per input channel. `reluMask` (signed tensors only): channels that take
   * the post-ReLU branch. They run on the signed code rule with μ' = (2^b − 1)/2·Δ, which is exactly
   * the post-ReLU quantizer: ⌊(x − μ')/Δ⌋ + 2^(b−1) = ⌊x/Δ + ½⌋ = round(x/Δ) (ties up) and
   * μ' + (k − (2^b − 1)/2)·Δ = k·Δ, clamped to [0, 2^b − 1] — so one kernel serves both branches.
   */
  constructor(channels: number, postRelu: boolean, options: DaqActivationOptions, reluMask: Uint8Array | null = null) {
    this.channels = channels;
    this.postRelu = postRelu;
    this.reluMask = !postRelu && reluMask && reluMask.some((v) => v !== 0) ? reluMask : null;
    this.needsCountPositive = postRelu || this.reluMask !== null;
    this.options = { ...options, postRelu };
    const bits = options.bits;
    const bitsOf = (c: number) => (typeof bits === "number" ? bits : bits[c]);
    this.half = new Int32Array(channels);
    this.kmax = new Int32Array(channels);
    let maxB = 0;
    for (let c = 0; c < channels; c++) {
      const b = bitsOf(c);
      this.half[c] = 1 << (b - 1);
      this.kmax[c] = (1 << b) - 1;
      maxB = Math.max(maxB, b);
    }
    this.levels = 1 << maxB;
    this.p = { mu: new Float32Array(channels), delta: new Float32Array(channels) };
    this.pr = { mu: new Float32Array(channels), delta: new Float32Array(channels) };
  }

  prepare(st: ChannelStatsView, mu: Float32Array, inv: Float32Array): void {
    const stats = { pixels: st.pixels, mean: st.mean, std: st.std, countPositive: st.countPositive ?? undefined };
    daqActivationParams(this.p, stats, this.options);
    const m = this.reluMask;
    if (m) {
      daqActivationParams(this.pr, stats, { ...this.options, postRelu: true });
      for (let c = 0; c < this.channels; c++) {
        if (!m[c]) continue;
        const d = this.pr.delta[c];
        this.p.delta[c] = d;
        this.p.mu[c] = d > 0 ? Math.fround((this.kmax[c] / 2) * d) : this.pr.mu[c];
      }
    }
    daqInvDelta(inv, this.p.delta);
    mu.set(this.p.mu);
  }

  level(c: number, k: number): number {
    const kk = Math.min(k, this.kmax[c]), d = this.p.delta[c];
    // p.mu is the dequantization offset: μ_c (signed), 0 (post-ReLU), or a constant channel's value (Δ = 0).
    return this.p.mu[c] + (this.postRelu ? kk : kk - this.kmax[c] / 2) * d;
  }

  intLevel(c: number, k: number): number {
    const kk = Math.min(k, this.kmax[c]);
    return this.postRelu ? kk : 2 * kk - this.kmax[c];
  }

  intAffine(a: Float32Array, mu: Float32Array): void {
    for (let c = 0; c < this.channels; c++) {
      a[c] = this.postRelu ? this.p.delta[c] : this.p.delta[c] / 2;
      mu[c] = this.p.mu[c];
    }
  }

  reference(out: Float32Array, data: Float32Array, offset: number, stride: number, pixels: number): void {
    if (!this.reluMask && !this.options.stepScale) {
      daqQuantizeReference(out, data.subarray(offset), pixels, this.channels, this.options, undefined, stride);
      return;
    }
    // Per-channel branches and calibrated steps have no released-code counterpart: the oracle is the
    // int-mode rule in f64 (post-ReLU tensors round x/Δ; signed ones, incl. masked channels, are midrise).
    const C = this.channels;
    for (let p = 0; p < pixels; p++) {
      for (let c = 0; c < C; c++) {
        const x = data[offset + p * stride + c], d = this.p.delta[c], mu = this.p.mu[c];
        let k: number;
        if (this.postRelu) k = d > 0 ? Math.min(this.kmax[c], Math.max(0, Math.round(x / d))) : 0;
        else k = d > 0 ? Math.min(this.kmax[c], Math.max(0, Math.floor((x - mu) / d) + this.half[c])) : this.half[c];
        out[p * C + c] = this.level(c, k);
      }
    }
  }

  describe(): string {
    return `daq a${typeof this.options.bits === "number" ? this.options.bits : "mixed"}${this.postRelu ? " post-relu" : ""}`;
  }
}
