/**
 * ODM's static activation quantizer in the engine (odm.md §2, §4): per tensor [l, u] with 2^b
 * levels, optionally with channel offsets (v1): x' = x·a_c + b_c is quantized and the offset is
 * undone, x̂ = (q(x') − b_c)/a_c.
 *
 * Codes, on DAQ's signed code kernel with half = 0 (src/kernels/act-codes.ts):
 *
 *   k = clamp(⌊(x − μ_c)·inv_c⌋, 0, 2^b − 1)
 *     = clamp(⌊((x·a_c + b_c) − l)/s + ½⌋, 0, 2^b − 1)       with μ_c = (l − s/2 − b_c)/a_c, inv_c = a_c/s
 *
 * (a_c > 0, so clipping x' to [l, u] is clamping k). Levels, integer form g = k:
 *
 *   unfolded:  x̂_c(k) = (l + k·s − b_c)/a_c = (s/a_c)·k + (l − b_c)/a_c
 *   folded:    x̂_c(k) = l + k·s − b_c        = s·k + (l − b_c)
 *
 * "Folded" means a_c was moved into the conv's input-channel weights (W/a_c, before weight
 * quantization; offsets.ts foldChannelOffsets). In both forms the shift b_c lives in the per-channel
 * μ of the integer form, which the exact path's border-aware μ term and the LUT path's zero padding
 * handle exactly — the offsets cost nothing at inference. The quantizer is image independent
 * (`isStatic`): the plan sets its parameters once and runs no statistics pass.
 */
import type { ChannelStatsView, DynamicActQuantizer } from "../dynamic/act-quantizer.ts";
import type { OdmActSpec } from "../dynamic/model.ts";
import { check, LowbitError } from "../../runtime/errors.ts";
import { checkOdmBits } from "./grid.ts";

export class OdmActQuantizer implements DynamicActQuantizer {
  readonly method = "odm" as const;
  readonly isStatic = true;
  readonly codeKernel = "daq" as const;
  /** The code kernel's signed branch (half = 0) serves every ODM tensor. */
  readonly postRelu = false;
  readonly needsCountPositive = false;
  readonly channels: number;
  readonly levels: number;
  readonly half: Int32Array;
  readonly kmax: Int32Array;
  readonly spec: OdmActSpec;
  private readonly step: number;
  private readonly a: Float64Array;
  private readonly b: Float64Array;

  constructor(spec: OdmActSpec, channels: number) {
    checkOdmBits(spec.bits, "activation");
    check(Number.isFinite(spec.lo) && Number.isFinite(spec.hi) && spec.hi >= spec.lo, "E_RANGE", `ODM activation range [${spec.lo}, ${spec.hi}] is empty or not finite`);
    if (spec.shift && spec.shift.length !== channels) throw new LowbitError("E_SHAPE", `ODM shift covers ${spec.shift.length} channels, the conv reads ${channels}`);
    if (spec.scale && spec.scale.length !== channels) throw new LowbitError("E_SHAPE", `ODM scale covers ${spec.scale.length} channels, the conv reads ${channels}`);
    this.spec = spec;
    this.channels = channels;
    this.levels = 1 << spec.bits;
    this.half = new Int32Array(channels);
    this.kmax = new Int32Array(channels).fill(this.levels - 1);
    this.step = (spec.hi - spec.lo) / (this.levels - 1);
    this.a = new Float64Array(channels).fill(1);
    this.b = new Float64Array(channels);
    for (let c = 0; c < channels; c++) {
      if (spec.scale) {
        const v = spec.scale[c];
        check(Number.isFinite(v) && v > 0, "E_RANGE", () => `ODM channel scale ${v} of channel ${c} is not positive and finite`);
        this.a[c] = v;
      }
      if (spec.shift) {
        const v = spec.shift[c];
        check(Number.isFinite(v), "E_RANGE", () => `ODM channel shift ${v} of channel ${c} is not finite`);
        this.b[c] = v;
      }
    }
  }

  prepare(_stats: ChannelStatsView, mu: Float32Array, inv: Float32Array): void {
    const s = this.step, l = this.spec.lo;
    for (let c = 0; c < this.channels; c++) {
      const a = this.a[c];
      mu[c] = (l - s / 2 - this.b[c]) / a;
      // s = 0 (u = l): inv 0 makes every t = 0 → code 0 → level l.
      inv[c] = s > 0 ? a / s : 0;
    }
  }

  /** The real value x̂_c(k) the conv sees (see the file comment for folded / unfolded). */
  level(c: number, k: number): number {
    const kk = Math.min(Math.max(k, 0), this.levels - 1);
    const v = this.spec.lo + kk * this.step - this.b[c];
    return this.spec.scaleFolded ? v : v / this.a[c];
  }

  intLevel(_c: number, k: number): number {
    return Math.min(Math.max(k, 0), this.levels - 1);
  }

  intAffine(a: Float32Array, mu: Float32Array): void {
    for (let c = 0; c < this.channels; c++) {
      a[c] = this.spec.scaleFolded ? this.step : this.step / this.a[c];
      mu[c] = this.level(c, 0);
    }
  }

  /** f64 oracle: x̂ = (q(x·a + b) − b)/a (folded: q(x·a + b) − b). */
  reference(out: Float32Array, data: Float32Array, offset: number, stride: number, pixels: number): void {
    const C = this.channels, l = this.spec.lo, u = this.spec.hi, s = this.step, n = this.levels - 1;
    for (let p = 0; p < pixels; p++) {
      for (let c = 0; c < C; c++) {
        let x = data[offset + p * stride + c] * this.a[c] + this.b[c];
        if (Number.isNaN(x)) x = l;
        const k = s > 0 ? Math.min(n, Math.floor((Math.min(u, Math.max(l, x)) - l) / s + 0.5)) : 0;
        out[p * C + c] = this.level(c, k);
      }
    }
  }

  describe(): string {
    return `odm a${this.spec.bits} [${this.spec.lo.toPrecision(4)}, ${this.spec.hi.toPrecision(4)}]${this.spec.shift || this.spec.scale ? " offsets" : ""}`;
  }
}
