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
  private readonly p: { mu: Float32Array; delta: Float32Array };

  /** `bits`: one width, or one per input channel. */
  constructor(channels: number, postRelu: boolean, options: DaqActivationOptions) {
    this.channels = channels;
    this.postRelu = postRelu;
    this.needsCountPositive = postRelu;
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
  }

  prepare(st: ChannelStatsView, mu: Float32Array, inv: Float32Array): void {
    daqActivationParams(this.p, { pixels: st.pixels, mean: st.mean, std: st.std, countPositive: st.countPositive ?? undefined }, this.options);
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
    daqQuantizeReference(out, data.subarray(offset), pixels, this.channels, this.options, undefined, stride);
  }

  describe(): string {
    return `daq a${typeof this.options.bits === "number" ? this.options.bits : "mixed"}${this.postRelu ? " post-relu" : ""}`;
  }
}
