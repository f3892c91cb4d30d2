/**
 * CADyQ's activation quantizer in the engine (cadyq.md §2, §3, §7): per tile, the layer's bit
 * selector reads the tile's gradient feature g (the plan's AdaptiveContext) and the unbiased std σ_c
 * of every input channel (the plan's statistics pass gives the population std over the tile's
 * region; ×√(N/(N−1))), picks b = candidates[argmax(A·[g, σ] + a)] (first maximum on ties), and
 * quantizes the input on that candidate's PAMS grid (symmetric, 2^b − 1 levels on [−α_b, α_b];
 * derivation in selector.ts). Weights never change: only the code kernel's μ, 1/s and code range
 * and the LUT (C × (2^b_max − 1) int16) are rebuilt per tile.
 *
 * Cost per tile and layer: the statistics pass (one read of the input, WASM), C + 2 → K matvec and
 * the grid (negligible); measured in the report with the per-tile feature.
 *
 * Post-ReLU inputs keep the symmetric grid (rel_shift = False in the reference), so they use codes
 * m … 2m only; the code kernel's signed branch serves every layer (`postRelu` false for the kernel,
 * the spec records the tensor's real kind).
 */
import type { ChannelStatsView, DynamicActQuantizer } from "../dynamic/act-quantizer.ts";
import type { CadyqActSpec } from "../dynamic/model.ts";
import type { AdaptiveContext } from "../../adaptive/context.ts";
import { argmaxFirst, checkCadyqParams, pamsHalfRange, selectorLogits, unbiasedStd } from "./selector.ts";

export class CadyqActQuantizer implements DynamicActQuantizer {
  readonly method = "cadyq" as const;
  readonly codeKernel = "daq" as const;
  readonly postRelu = false;
  readonly needsCountPositive = false;
  readonly countsForFab = true;
  readonly channels: number;
  /** Codes of the widest candidate: 2^b_max − 1. */
  readonly levels: number;
  readonly spec: CadyqActSpec;
  readonly half: Int32Array;
  readonly kmax: Int32Array;
  /** Selector state of the last prepare(): embedding's σ part, logits, chosen candidate. */
  readonly sigma: Float64Array;
  readonly logits: Float64Array;
  selected: number;
  private bits: number;
  private step = 0;
  private m = 0;
  private ctx: AdaptiveContext | null = null;

  constructor(spec: CadyqActSpec, channels: number) {
    checkCadyqParams(spec.candidates, spec.alpha, spec.selectorWeight, spec.selectorBias, channels);
    this.spec = spec;
    this.channels = channels;
    const K = spec.candidates.length;
    let bmax = 0;
    for (let k = 0; k < K; k++) bmax = Math.max(bmax, spec.candidates[k]);
    this.levels = (1 << bmax) - 1;
    this.half = new Int32Array(channels);
    this.kmax = new Int32Array(channels);
    this.sigma = new Float64Array(channels);
    this.logits = new Float64Array(K);
    // Before the first tile (and unbound): the last candidate, which the reference init favours.
    this.selected = K - 1;
    this.bits = spec.candidates[K - 1];
    this.setGrid();
  }

  bind(ctx: AdaptiveContext): void {
    this.ctx = ctx;
  }

  activeBits(): number {
    return this.bits;
  }

  /** Runs the selector on the tile's feature and statistics, then sets the chosen grid's code parameters. */
  prepare(stats: ChannelStatsView, mu: Float32Array, inv: Float32Array): void {
    const C = this.channels;
    for (let c = 0; c < C; c++) this.sigma[c] = unbiasedStd(stats.std[c], stats.pixels);
    const f = this.ctx ? this.ctx.feature : [0, 0];
    selectorLogits(this.logits, this.spec.selectorWeight, this.spec.selectorBias, f, this.sigma);
    this.select(argmaxFirst(this.logits));
    const s = this.step, a = this.m * s;
    for (let c = 0; c < C; c++) {
      mu[c] = -a - s / 2;
      // s = 0 (α = 0): inv 0 sends every x to code 0, whose level is 0.
      inv[c] = s > 0 ? 1 / s : 0;
    }
  }

  /** Switches to candidate `k` (prepare does this from the selector). */
  select(k: number): void {
    this.selected = k;
    this.bits = this.spec.candidates[k];
    this.setGrid();
  }

  private setGrid(): void {
    this.m = pamsHalfRange(this.bits);
    this.step = Math.abs(this.spec.alpha[this.selected]) / this.m;
    this.kmax.fill(2 * this.m);
  }

  level(_c: number, k: number): number {
    return (Math.min(Math.max(k, 0), 2 * this.m) - this.m) * this.step;
  }

  intLevel(_c: number, k: number): number {
    return Math.min(Math.max(k, 0), this.levels - 1);
  }

  intAffine(a: Float32Array, mu: Float32Array): void {
    a.fill(this.step);
    mu.fill(-this.m * this.step);
  }

  /** f64 oracle on the selected grid: x̂ = clamp(⌊(clamp(x, ±α) + α)/s + ½⌋, 0, 2m)·s − α (NaN → code 0). */
  reference(out: Float32Array, data: Float32Array, offset: number, stride: number, pixels: number): void {
    const C = this.channels, s = this.step, m = this.m, a = m * s;
    for (let p = 0; p < pixels; p++) {
      for (let c = 0; c < C; c++) {
        const x = data[offset + p * stride + c];
        let k = 0;
        if (s > 0 && !Number.isNaN(x)) k = Math.min(2 * m, Math.max(0, Math.floor((Math.min(a, Math.max(-a, x)) + a) / s + 0.5)));
        out[p * C + c] = (k - m) * s;
      }
    }
  }

  describe(): string {
    const al = Array.from(this.spec.alpha, (v) => Math.abs(v).toPrecision(4)).join("/");
    return `cadyq a{${Array.from(this.spec.candidates).join(",")}} α ${al}`;
  }
}
