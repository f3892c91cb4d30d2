/**
 * SubsetLUT: one layer's per-input-channel codebooks for subset (codebook) quantization of
 * activations — DFSQ (spec dfsq.md §3, §7) — and everything derived from them that the engine needs.
 *
 * A codebook row holds K = 2^b points u (integers, units of 1/1024, |u| ≤ 1024) in "codebook order";
 * duplicates are allowed. Online, with per-image per-channel statistics μ_c (0 after ReLU) and
 * m_c = max|x − μ_c|, an activation is normalised to x_n = (x − μ_c)/(m_c + 1e-8) and
 *
 *     reference code   q = argmin_j |x_n − u_j/1024|   (first index in codebook order on a tie)
 *     dequantized      x̂ = u_q/1024 · (m_c + 1e-8) + μ_c.
 *
 * Kernels use "levels" instead of codebook indices: the row's sorted distinct points v_0 < … < v_{L−1}
 * (L ≤ K) and the L − 1 midpoints. In units of 1/2048 the midpoints are integers,
 * T'_j = v_j + v_{j+1}, and the threshold encoder is
 *
 *     level = #{ j : T'_j < 2048·x_n }          (exact: 2048·x_n is a power-of-two scaling)
 *
 * which picks the nearest point, the lower one at an exact midpoint — equal to the argmin quantizer
 * except at exact midpoints of an unsorted row. Per-image int16 LUT (spec §7.3 (a)):
 *
 *     lut[c·K + level] = round((v_level · (m_c + 1e-8)/1024 + μ_c) / S)   (half to even)
 *
 * rows with L < K padded with their last value, so any code 0..K−1 decodes to a valid level.
 */
import { LowbitError, checkInt } from "../runtime/errors.ts";

/** Extra ε in the normaliser (m + 1e-8), as in the reference. */
export const SUBSET_EPS = 1e-8;

export interface SubsetLUTJSON {
  type: "subset-lut";
  version: 1;
  bits: number;
  channels: number;
  postRelu: boolean;
  /** channels × 2^bits integers, 1/1024 units, codebook order. */
  codebooks: number[];
}

/** Round half to even (torch.round) in f64. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export class SubsetLUT {
  readonly bits: number;
  /** 2^bits codes per channel. */
  readonly K: number;
  readonly channels: number;
  readonly postRelu: boolean;
  /** [C][K], 1/1024 units, codebook order (as given). */
  readonly codebooks: Int16Array;
  /** [C][K] sorted distinct points, each row padded with its last value. */
  readonly levelTable: Int16Array;
  /** Distinct points per channel (L_c ≤ K). */
  readonly levelCount: Uint16Array;
  /** [C][K − 1] midpoints T'_j = v_j + v_{j+1} in 1/2048 units; entries j ≥ L_c − 1 hold 4097 (above 2048·1). */
  readonly midpoints: Int32Array;
  /** [C][K] level of each codebook index. */
  readonly codeToLevel: Uint8Array;

  /**
   * @param codebooks Int16Array [C][2^bits], 1/1024 units; integers in [−1024, 1024] ([0, 1024] when postRelu).
   */
  constructor(codebooks: Int16Array, bits: number, postRelu = false) {
    checkInt(bits, 1, 8, "bits", "E_BITS");
    if (!(codebooks instanceof Int16Array)) throw new LowbitError("E_ARGUMENT", "codebooks must be an Int16Array");
    if (typeof postRelu !== "boolean") throw new LowbitError("E_ARGUMENT", "postRelu must be a boolean");
    const K = 1 << bits;
    if (codebooks.length === 0 || codebooks.length % K !== 0) {
      throw new LowbitError("E_SHAPE", `codebooks length ${codebooks.length} is not a positive multiple of 2^bits = ${K}`);
    }
    const C = codebooks.length / K;
    for (let i = 0; i < codebooks.length; i++) {
      const u = codebooks[i];
      if (u < (postRelu ? 0 : -1024) || u > 1024) {
        throw new LowbitError("E_RANGE", `codebook point ${u} (channel ${Math.floor(i / K)}) outside [${postRelu ? 0 : -1024}, 1024]`);
      }
    }
    this.bits = bits;
    this.K = K;
    this.channels = C;
    this.postRelu = postRelu;
    this.codebooks = codebooks.slice();
    this.levelTable = new Int16Array(C * K);
    this.levelCount = new Uint16Array(C);
    this.midpoints = new Int32Array(C * (K - 1)).fill(4097);
    this.codeToLevel = new Uint8Array(C * K);
    const row = new Int16Array(K);
    for (let c = 0; c < C; c++) {
      row.set(this.codebooks.subarray(c * K, c * K + K));
      row.sort();
      let L = 0;
      for (let j = 0; j < K; j++) if (j === 0 || row[j] !== row[j - 1]) this.levelTable[c * K + L++] = row[j];
      for (let j = L; j < K; j++) this.levelTable[c * K + j] = this.levelTable[c * K + L - 1];
      this.levelCount[c] = L;
      for (let j = 0; j + 1 < L; j++) this.midpoints[c * (K - 1) + j] = this.levelTable[c * K + j] + this.levelTable[c * K + j + 1];
      for (let j = 0; j < K; j++) {
        const u = this.codebooks[c * K + j];
        let l = 0;
        while (this.levelTable[c * K + l] !== u) l++;
        this.codeToLevel[c * K + j] = l;
      }
    }
  }

  private checkChannel(c: number): void {
    checkInt(c, 0, this.channels - 1, "channel");
  }

  private static checkX(xn: number): void {
    if (typeof xn !== "number" || Number.isNaN(xn)) throw new LowbitError("E_RANGE", `normalised value ${xn} is NaN`);
  }

  /** Reference encoder (spec §3): codebook index argmin_j |x_n − u_j/1024|, first index on a tie. */
  encode(c: number, xn: number): number {
    this.checkChannel(c);
    SubsetLUT.checkX(xn);
    const K = this.K, cb = this.codebooks, base = c * K;
    // |1024·x_n − u_j| ranks like |x_n − u_j/1024| (1024 is a power of two: the scaling is exact).
    const t = 1024 * xn;
    let best = 0, bestD = Math.abs(t - cb[base]);
    for (let j = 1; j < K; j++) {
      const d = Math.abs(t - cb[base + j]);
      if (d < bestD) { bestD = d; best = j; }
    }
    return best;
  }

  /** Real value of codebook index `code` in normalised units (u/1024). */
  decode(c: number, code: number): number {
    this.checkChannel(c);
    checkInt(code, 0, this.K - 1, "code");
    return this.codebooks[c * this.K + code] / 1024;
  }

  /** Threshold encoder: level = #{j : T'_j < 2048·x_n} over the sorted distinct points (ties → lower point). */
  encodeLevel(c: number, xn: number): number {
    this.checkChannel(c);
    SubsetLUT.checkX(xn);
    const t = 2048 * xn;
    const mp = this.midpoints, base = c * (this.K - 1);
    let lo = 0, hi = this.levelCount[c] - 1; // count of midpoints < t, in [0, L − 1]
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (mp[base + mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Real value of `level` (any 0..K−1: padded levels decode to the largest point) in normalised units. */
  decodeLevel(c: number, level: number): number {
    this.checkChannel(c);
    checkInt(level, 0, this.K - 1, "level");
    return this.levelTable[c * this.K + level] / 1024;
  }

  /** Channel c's sorted distinct points (1/1024 units), a copy. */
  sortedUnique(c: number): Int16Array {
    this.checkChannel(c);
    return this.levelTable.slice(c * this.K, c * this.K + this.levelCount[c]);
  }

  private checkStats(mean: Float32Array | Float64Array | null, maxDev: Float32Array | Float64Array): void {
    const C = this.channels;
    if (!(maxDev instanceof Float32Array || maxDev instanceof Float64Array) || maxDev.length !== C) {
      throw new LowbitError("E_SHAPE", `maxDev must be a Float32Array/Float64Array of ${C} channels`);
    }
    if (!this.postRelu) {
      if (!(mean instanceof Float32Array || mean instanceof Float64Array) || mean.length !== C) {
        throw new LowbitError("E_SHAPE", `mean must be a Float32Array/Float64Array of ${C} channels`);
      }
    }
    for (let c = 0; c < C; c++) {
      const m = maxDev[c];
      if (!Number.isFinite(m) || m < 0) throw new LowbitError("E_RANGE", `maxDev[${c}] = ${m} must be finite and ≥ 0`);
      if (!this.postRelu && !Number.isFinite(mean![c])) throw new LowbitError("E_RANGE", `mean[${c}] = ${mean![c]} is not finite`);
    }
  }

  /** Dequantized real value of `level` for statistics (μ, m): v/1024·(m + 1e-8) + μ (μ = 0 post-ReLU). */
  levelValue(c: number, level: number, mean: number, maxDev: number): number {
    const v = this.levelTable[c * this.K + level];
    return (v * (maxDev + SUBSET_EPS)) / 1024 + (this.postRelu ? 0 : mean);
  }

  /**
   * max over channels and levels of |x̂| for these statistics — size S from it (e.g. S = max/32767,
   * or larger to respect the accumulator bound max|lut|·max_o Σ|w| < 2^31). x̂ is monotone in the
   * point, so only each row's extreme points matter. mean may be null when postRelu.
   */
  maxAbsValue(mean: Float32Array | Float64Array | null, maxDev: Float32Array | Float64Array): number {
    this.checkStats(mean, maxDev);
    let mx = 0;
    for (let c = 0; c < this.channels; c++) {
      const mu = this.postRelu ? 0 : mean![c];
      const lo = Math.abs(this.levelValue(c, 0, mu, maxDev[c]));
      const hi = Math.abs(this.levelValue(c, this.levelCount[c] - 1, mu, maxDev[c]));
      mx = Math.max(mx, lo, hi);
    }
    return mx;
  }

  /**
   * Per-image int16 LUT in level order: out[c·K + l] = round((v_l·(m_c + 1e-8)/1024 + μ_c)/S), half to
   * even, f64 arithmetic; padded levels repeat the last. E_RANGE when an entry leaves int16.
   */
  int16Table(out: Int16Array, mean: Float32Array | Float64Array | null, maxDev: Float32Array | Float64Array, S: number): Int16Array {
    if (!(out instanceof Int16Array) || out.length !== this.channels * this.K) {
      throw new LowbitError("E_SHAPE", `out must be an Int16Array of ${this.channels}·${this.K} entries`);
    }
    if (!(S > 0) || !Number.isFinite(S)) throw new LowbitError("E_RANGE", `S must be finite and > 0, got ${S}`);
    this.checkStats(mean, maxDev);
    const K = this.K;
    for (let c = 0; c < this.channels; c++) {
      const mu = this.postRelu ? 0 : mean![c];
      for (let l = 0; l < K; l++) {
        const q = roundHalfEven(this.levelValue(c, l, mu, maxDev[c]) / S);
        if (q < -32768 || q > 32767) {
          throw new LowbitError("E_RANGE", `LUT entry ${q} (channel ${c}, level ${l}) outside int16: S = ${S} too small`);
        }
        out[c * K + l] = q;
      }
    }
    return out;
  }

  /**
   * Per-image f32 thresholds for a compare-count quantizer on raw x (spec §7.2):
   * out[c·(K−1) + j] = f32(f32(T'_j/2048 · f32(m_c + 1e-8)) + μ_c), +Infinity for j ≥ L_c − 1, so
   * level = #{j : T_j < x}. (Rounding can move a threshold by an ulp relative to the normalised
   * encoder; the kernel and its TS reference must both use this table.)
   */
  thresholdTable(out: Float32Array, mean: Float32Array | Float64Array | null, maxDev: Float32Array | Float64Array): Float32Array {
    const K1 = this.K - 1;
    if (!(out instanceof Float32Array) || out.length !== this.channels * K1) {
      throw new LowbitError("E_SHAPE", `out must be a Float32Array of ${this.channels}·${K1} entries`);
    }
    this.checkStats(mean, maxDev);
    for (let c = 0; c < this.channels; c++) {
      const scale = Math.fround(maxDev[c] + SUBSET_EPS);
      const mu = this.postRelu ? 0 : Math.fround(mean![c]);
      const L = this.levelCount[c];
      for (let j = 0; j < K1; j++) {
        out[c * K1 + j] = j < L - 1 ? Math.fround(Math.fround((this.midpoints[c * K1 + j] / 2048) * scale) + mu) : Infinity;
      }
    }
    return out;
  }

  toJSON(): SubsetLUTJSON {
    return {
      type: "subset-lut", version: 1, bits: this.bits, channels: this.channels, postRelu: this.postRelu,
      codebooks: Array.from(this.codebooks),
    };
  }

  static fromJSON(j: unknown): SubsetLUT {
    const o = j as Partial<SubsetLUTJSON> | null;
    if (o === null || typeof o !== "object" || o.type !== "subset-lut") throw new LowbitError("E_MODEL_FORMAT", "not a subset-lut object");
    if (o.version !== 1) throw new LowbitError("E_MODEL_FORMAT", `subset-lut version ${String(o.version)} unsupported`);
    if (typeof o.bits !== "number" || !Number.isInteger(o.bits) || o.bits < 1 || o.bits > 8) {
      throw new LowbitError("E_MODEL_FORMAT", `subset-lut bits ${String(o.bits)} invalid`);
    }
    if (typeof o.channels !== "number" || !Number.isInteger(o.channels) || o.channels < 1) {
      throw new LowbitError("E_MODEL_FORMAT", `subset-lut channels ${String(o.channels)} invalid`);
    }
    if (typeof o.postRelu !== "boolean") throw new LowbitError("E_MODEL_FORMAT", "subset-lut postRelu must be a boolean");
    const cb = o.codebooks;
    if (!Array.isArray(cb) || cb.length !== o.channels << o.bits) {
      throw new LowbitError("E_MODEL_FORMAT", `subset-lut codebooks must hold channels·2^bits = ${o.channels << o.bits} integers`);
    }
    for (const u of cb) {
      if (typeof u !== "number" || !Number.isInteger(u) || u < -1024 || u > 1024) {
        throw new LowbitError("E_MODEL_FORMAT", `subset-lut codebook entry ${String(u)} is not an integer in [−1024, 1024]`);
      }
    }
    try {
      return new SubsetLUT(Int16Array.from(cb as number[]), o.bits, o.postRelu);
    } catch (e) {
      throw new LowbitError("E_MODEL_FORMAT", `subset-lut: ${(e as Error).message}`, { cause: e });
    }
  }
}
