/**
 * f64 reference of DFSQ's online activation quantizer (spec dfsq.md §3) over a whole NHWC tensor —
 * the oracle for the integer paths and the lead's fake-quant model.
 *
 * Per sample n and channel c over its H×W pixels:
 *   signed:    μ = mean x,  m = max|x − μ|,  x_n = (x − μ)/(m + 1e-8)
 *   post-ReLU: μ = 0,       m = max|x|,      x_n = x/(m + 1e-8)
 * code q = argmin_j |x_n − u_j/1024| (first index on a tie; SubsetLUT.encode), x̂ = u_q/1024·(m + 1e-8) + μ.
 * m = 0 (a constant channel) gives x_n = 0 → the point nearest 0 → x̂ = μ when 0 is in the codebook.
 */
import { LowbitError, checkInt } from "../../runtime/errors.ts";
import { SubsetLUT, SUBSET_EPS } from "../../quant/subset-lut.ts";

export interface NhwcShape {
  batch?: number;
  height: number;
  width: number;
  channels: number;
  /** Elements between consecutive pixels (≥ channels). Default channels. */
  pixelStride?: number;
}

export interface DfsqStats {
  /** [N][C] μ (0 for post-ReLU). */
  mean: Float64Array;
  /** [N][C] m. */
  maxDev: Float64Array;
}

function resolve(shape: NhwcShape, len: number, what: string): { N: number; P: number; C: number; S: number } {
  const N = shape.batch ?? 1;
  checkInt(N, 1, 1 << 16, "batch", "E_SHAPE");
  checkInt(shape.height, 1, 1 << 16, "height", "E_SHAPE");
  checkInt(shape.width, 1, 1 << 16, "width", "E_SHAPE");
  checkInt(shape.channels, 1, 1 << 16, "channels", "E_SHAPE");
  const S = shape.pixelStride ?? shape.channels;
  checkInt(S, shape.channels, 1 << 20, "pixelStride", "E_SHAPE");
  const P = shape.height * shape.width;
  const need = (N * P - 1) * S + shape.channels;
  if (len < need) throw new LowbitError("E_SHAPE", `${what} has ${len} elements, shape needs ${need}`);
  return { N, P, C: shape.channels, S };
}

/** Per-(sample, channel) μ and m in f64 (two passes: mean, then max deviation). */
export function dfsqStats(x: Float32Array | Float64Array, shape: NhwcShape, postRelu: boolean): DfsqStats {
  const { N, P, C, S } = resolve(shape, x.length, "x");
  const mean = new Float64Array(N * C), maxDev = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      let mu = 0;
      if (!postRelu) {
        let s = 0;
        for (let p = 0; p < P; p++) s += x[(n * P + p) * S + c];
        mu = s / P;
      }
      let m = 0;
      for (let p = 0; p < P; p++) {
        const v = x[(n * P + p) * S + c];
        if (!Number.isFinite(v)) throw new LowbitError("E_RANGE", `x at sample ${n}, pixel ${p}, channel ${c} is ${v}`);
        const d = Math.abs(v - mu);
        if (d > m) m = d;
      }
      mean[n * C + c] = mu;
      maxDev[n * C + c] = m;
    }
  }
  return { mean, maxDev };
}

export interface DfsqReferenceOptions {
  /** Also write each element's codebook index (SubsetLUT.encode) here; same indexing as x. */
  codes?: Uint8Array;
  /** Use the threshold encoder (levels) instead of the argmin (identical except at exact midpoints). */
  threshold?: boolean;
}

/**
 * Quantizes and dequantizes x into out (same shape/stride; elements between pixels are left alone).
 * Returns the statistics used. lut.channels must equal shape.channels.
 */
export function dfsqQuantizeReference(
  out: Float32Array | Float64Array, x: Float32Array | Float64Array, shape: NhwcShape, lut: SubsetLUT,
  opts: DfsqReferenceOptions = {},
): DfsqStats {
  if (!(lut instanceof SubsetLUT)) throw new LowbitError("E_ARGUMENT", "lut must be a SubsetLUT");
  const { N, P, C, S } = resolve(shape, x.length, "x");
  if (lut.channels !== C) throw new LowbitError("E_SHAPE", `lut has ${lut.channels} channels, x has ${C}`);
  resolve(shape, out.length, "out");
  if (opts.codes !== undefined) resolve(shape, opts.codes.length, "codes");
  const stats = dfsqStats(x, shape, lut.postRelu);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const mu = stats.mean[n * C + c];
      const d = stats.maxDev[n * C + c] + SUBSET_EPS;
      for (let p = 0; p < P; p++) {
        const i = (n * P + p) * S + c;
        const xn = (x[i] - mu) / d;
        let v: number;
        if (opts.threshold) {
          const l = lut.encodeLevel(c, xn);
          v = lut.decodeLevel(c, l);
          if (opts.codes) opts.codes[i] = l;
        } else {
          const q = lut.encode(c, xn);
          v = lut.decode(c, q);
          if (opts.codes) opts.codes[i] = q;
        }
        out[i] = v * d + mu;
      }
    }
  }
  return stats;
}
