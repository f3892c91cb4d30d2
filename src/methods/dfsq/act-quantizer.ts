/**
 * DFSQ's activation quantizer in the engine (dfsq.md §3, §7): per image and
 * input channel, μ_c (0 after a ReLU) and m_c = max|x − μ_c|; codes from the
 * threshold quantizer on x_n = (x − μ_c)/(m_c + 1e-8) against the channel's
 * sorted, de-duplicated codebook; x̂ = u·(m_c + 1e-8)/1024 + μ_c.
 */
import type { ChannelStatsView, DynamicActQuantizer } from "../dynamic/act-quantizer.ts";
import type { SubsetLUT } from "../../quant/subset-lut.ts";
import { subsetCodeTable, SUBSET_TABLE_STRIDE } from "../../kernels/act-codes.ts";
import { dfsqQuantizeReference } from "./reference.ts";

export class DfsqActQuantizer implements DynamicActQuantizer {
  readonly method = "dfsq" as const;
  readonly codeKernel = "subset" as const;
  readonly channels: number;
  readonly levels: number;
  readonly postRelu: boolean;
  readonly needsCountPositive = false;
  readonly countTable: Uint8Array;
  readonly countTableStride = SUBSET_TABLE_STRIDE;
  readonly lut: SubsetLUT;
  /** Sorted unique points per channel, padded with the last one to `levels`. */
  private readonly points: Int16Array;
  private readonly mu: Float64Array;
  private readonly m: Float64Array;

  constructor(lut: SubsetLUT) {
    this.lut = lut;
    this.channels = lut.channels;
    this.levels = 1 << lut.bits;
    this.postRelu = lut.postRelu;
    // Codes are levels: the sorted distinct points, rows padded with the last one (SubsetLUT.levelTable).
    this.points = lut.levelTable;
    const sorted = Array.from({ length: this.channels }, (_, c) => lut.sortedUnique(c));
    this.countTable = subsetCodeTable(new Uint8Array(this.channels * SUBSET_TABLE_STRIDE), sorted);
    this.mu = new Float64Array(this.channels);
    this.m = new Float64Array(this.channels);
  }

  prepare(st: ChannelStatsView, mu: Float32Array, inv: Float32Array): void {
    for (let c = 0; c < this.channels; c++) {
      const m0 = this.postRelu ? Math.max(Math.abs(st.min[c]), Math.abs(st.max[c])) : st.maxAbsDev[c];
      const den = Math.fround(m0 + 1e-8);
      this.mu[c] = this.postRelu ? 0 : st.mean[c];
      this.m[c] = den;
      mu[c] = this.mu[c];
      inv[c] = Math.fround(1 / den);
    }
  }

  level(c: number, k: number): number {
    return (this.points[c * this.levels + k] * this.m[c]) / 1024 + this.mu[c];
  }

  intLevel(c: number, k: number): number {
    return this.points[c * this.levels + k];
  }

  intAffine(a: Float32Array, mu: Float32Array): void {
    for (let c = 0; c < this.channels; c++) {
      a[c] = this.m[c] / 1024;
      mu[c] = this.mu[c];
    }
  }

  reference(out: Float32Array, data: Float32Array, offset: number, stride: number, pixels: number): void {
    const C = this.channels;
    const x = new Float32Array(pixels * C);
    for (let p = 0; p < pixels; p++) for (let c = 0; c < C; c++) x[p * C + c] = data[offset + p * stride + c];
    dfsqQuantizeReference(out.subarray(0, pixels * C), x, { height: 1, width: pixels, channels: C }, this.lut);
  }

  describe(): string {
    return `dfsq a${this.lut.bits}${this.postRelu ? " post-relu" : ""}`;
  }
}
