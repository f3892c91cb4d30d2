/**
 * AdaBM's activation quantizer in the engine (adabm.md §4, §7): one asymmetric per-tensor range
 * [l, u], shared by every bit-width, and a bit-width chosen per tile,
 *
 *   b = clamp(b_base + Δb_img + Δb_layer, 2, 8),      x̂ = l + round((clip(x, l, u) − l)/Δ_a(b))·Δ_a(b),
 *   Δ_a(b) = (u − l)/(2^b − 1),
 *
 * Δb_img ∈ {−1, 0, +1} comes from the tile's gradient feature (the plan's AdaptiveContext),
 * Δb_layer ∈ {−1, 0, +1} is fixed per layer. For a given b this is exactly ODM's un-nudged grid
 * (src/methods/odm/act-quantizer.ts, the same code kernel, levels and integer form g = k), so the
 * quantizer keeps one OdmActQuantizer per reachable bit-width and switches between them: weights
 * never re-pack, and the LUT row length is 2^(largest reachable b).
 *
 * Choices [documented]: b is clamped to [2, 8] — the kernels' activation range — where the spec
 * only says "clamp it" (b < 1 when b_base ≤ 2); rounding is half up, as ODM's grid (the reference
 * uses torch.round, half-even). Layers fixed at b_base (RDN's LFF, adabm.md §5) ignore Δb_img.
 */
import type { ChannelStatsView, DynamicActQuantizer } from "../dynamic/act-quantizer.ts";
import type { AdabmActSpec } from "../dynamic/model.ts";
import type { AdaptiveContext } from "../../adaptive/context.ts";
import { OdmActQuantizer } from "../odm/act-quantizer.ts";
import { check, checkInt } from "../../runtime/errors.ts";

export const ADABM_MIN_BITS = 2;
export const ADABM_MAX_BITS = 8;

/** The bit-width rule of adabm.md §1 with the clamp above. */
export function adabmBits(base: number, imageDelta: number, layerDelta: number): number {
  return Math.min(ADABM_MAX_BITS, Math.max(ADABM_MIN_BITS, base + imageDelta + layerDelta));
}

export function checkAdabmSpec(spec: AdabmActSpec): void {
  checkInt(spec.baseBits, ADABM_MIN_BITS, ADABM_MAX_BITS, "AdaBM base activation bits", "E_BITS");
  check(spec.layerDelta === -1 || spec.layerDelta === 0 || spec.layerDelta === 1, "E_ARGUMENT", `AdaBM layer bit offset must be −1, 0 or +1, got ${spec.layerDelta}`);
  check(Number.isFinite(spec.lo) && Number.isFinite(spec.hi) && spec.hi >= spec.lo, "E_RANGE", `AdaBM activation range [${spec.lo}, ${spec.hi}] is empty or not finite`);
}

export class AdabmActQuantizer implements DynamicActQuantizer {
  readonly method = "adabm" as const;
  readonly codeKernel = "daq" as const;
  readonly postRelu = false;
  readonly needsCountPositive = false;
  readonly needsStats = false;
  readonly countsForFab: boolean;
  readonly channels: number;
  readonly levels: number;
  readonly spec: AdabmActSpec;
  half: Int32Array;
  kmax: Int32Array;
  private readonly grids = new Map<number, OdmActQuantizer>();
  private cur!: OdmActQuantizer;
  private bits: number;
  private ctx: AdaptiveContext | null = null;

  constructor(spec: AdabmActSpec, channels: number) {
    checkAdabmSpec(spec);
    this.spec = { ...spec };
    this.channels = channels;
    this.countsForFab = spec.counted !== false;
    const hi = adabmBits(spec.baseBits, spec.imageAdaptive ? 1 : 0, spec.layerDelta);
    this.levels = 1 << hi;
    this.setRange(spec.lo, spec.hi);
    this.bits = adabmBits(spec.baseBits, 0, spec.layerDelta);
    this.cur = this.grids.get(this.bits)!;
    this.half = this.cur.half;
    this.kmax = this.cur.kmax;
  }

  /** Replaces the shared range [l, u] (calibration: BaC); takes effect at the next prepare(). */
  setRange(lo: number, hi: number): void {
    const s = this.spec;
    checkAdabmSpec({ ...s, lo, hi });
    s.lo = lo;
    s.hi = hi;
    const b0 = adabmBits(s.baseBits, s.imageAdaptive ? -1 : 0, s.layerDelta), b1 = adabmBits(s.baseBits, s.imageAdaptive ? 1 : 0, s.layerDelta);
    for (let b = b0; b <= b1; b++) this.grids.set(b, new OdmActQuantizer({ kind: "odm", postRelu: s.postRelu, bits: b, lo, hi }, this.channels));
    if (this.cur) this.select(this.lastImageDelta);
  }
  private lastImageDelta = 0;

  bind(ctx: AdaptiveContext): void {
    this.ctx = ctx;
  }

  activeBits(): number {
    return this.bits;
  }

  /** Sets b from the tile's context (no statistics are read) and the grid's code-kernel parameters. */
  prepare(stats: ChannelStatsView, mu: Float32Array, inv: Float32Array): void {
    this.select(this.spec.imageAdaptive && this.ctx ? this.ctx.imageDelta : 0);
    this.cur.prepare(stats, mu, inv);
  }

  /** Switches to the grid of image offset `imageDelta` (prepare does this from the context). */
  select(imageDelta: number): void {
    this.lastImageDelta = imageDelta;
    this.bits = adabmBits(this.spec.baseBits, imageDelta, this.spec.layerDelta);
    this.cur = this.grids.get(this.bits)!;
    this.half = this.cur.half;
    this.kmax = this.cur.kmax;
  }

  level(c: number, k: number): number {
    return this.cur.level(c, k);
  }

  intLevel(c: number, k: number): number {
    return Math.min(Math.max(k, 0), this.levels - 1);
  }

  intAffine(a: Float32Array, mu: Float32Array): void {
    this.cur.intAffine(a, mu);
  }

  reference(out: Float32Array, data: Float32Array, offset: number, stride: number, pixels: number): void {
    if (this.ctx) this.select(this.spec.imageAdaptive ? this.ctx.imageDelta : 0);
    this.cur.reference(out, data, offset, stride, pixels);
  }

  describe(): string {
    const d = this.spec.layerDelta;
    return `adabm a${this.spec.baseBits}${d ? (d > 0 ? "+1" : "−1") : ""}${this.spec.imageAdaptive ? "±img" : ""} [${this.spec.lo.toPrecision(4)}, ${this.spec.hi.toPrecision(4)}]`;
  }
}
