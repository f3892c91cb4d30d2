// Plain scalar references of the activation code quantizers (assembly/elementwise/act-codes.ts), written from
// the definitions rather than from the kernels' tricks:
//   DAQ signed:     k = clamp(⌊f32(f32(x − μ)·invΔ)⌋ + 2^(b−1), 0, 2^b − 1)
//   DAQ post-ReLU:  k = clamp(round_half_even(f32(x·invΔ)), 0, 2^b − 1)
//   DFSQ subset:    code = #{j : T'_j < v}, T'_j = u_j + u_{j+1} over the sorted unique codebook (a direct
//                   count, no table), v = f32(f32(x − μ)·invM)·2048
//   NaN (also ∞·0) is quantized like x = μ: it takes the code of t = 0 / v = 0 (the kernels' defined choice).
import { roundHalfEven } from "../requant.ts";

/** Per-channel DAQ codes; bits[c] ∈ 1..8. out[p·outStride + c]. */
export function daqCodesRef(out: Uint8Array, x: Float32Array, pixels: number, channels: number, xStride: number,
  mu: ArrayLike<number>, invDelta: ArrayLike<number>, bits: ArrayLike<number>, postRelu: boolean, outStride: number): Uint8Array {
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < channels; c++) {
      const xv = x[p * xStride + c];
      const half = 2 ** (bits[c] - 1), kmax = 2 ** bits[c] - 1;
      let k: number;
      if (postRelu) {
        let t = Math.fround(xv * Math.fround(invDelta[c]));
        if (Number.isNaN(t)) t = 0;
        k = Math.min(Math.max(roundHalfEven(t), 0), kmax);
      } else {
        let t = Math.fround(Math.fround(xv - Math.fround(mu[c])) * Math.fround(invDelta[c]));
        if (Number.isNaN(t)) t = 0;
        k = Math.min(Math.max(Math.floor(t) + half, 0), kmax);
      }
      out[p * outStride + c] = k;
    }
  }
  return out;
}

/** DFSQ threshold codes by direct comparison; sorted[c] = the sorted unique codebook of channel c (1/1024 units). */
export function subsetCodesRef(out: Uint8Array, x: Float32Array, pixels: number, channels: number, xStride: number,
  mu: ArrayLike<number>, invM: ArrayLike<number>, sorted: ReadonlyArray<ArrayLike<number>>, outStride: number): Uint8Array {
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < channels; c++) {
      let v = Math.fround(Math.fround(x[p * xStride + c] - Math.fround(mu[c])) * Math.fround(invM[c])) * 2048;
      if (Number.isNaN(v)) v = 0;
      const u = sorted[c];
      let code = 0;
      for (let j = 0; j + 1 < u.length; j++) if (u[j] + u[j + 1] < v) code++;
      out[p * outStride + c] = code;
    }
  }
  return out;
}

/**
 * Nearest-point form of the same code: argmin_j |v − 2·u_j| (v in 1/2048 units, as in subsetCodesRef), ties to the
 * lower point — the spec's argmin over a sorted unique codebook. An independent check of the threshold count.
 */
export function subsetNearestRef(v: number, sorted: ArrayLike<number>): number {
  // Every 2u_j lies in [−2048, 2048]: clamping v to ±4096 keeps the argmin and makes |v − 2u_j| exact (∞ − ∞ aside).
  v = Math.min(Math.max(v, -4096), 4096);
  let best = 0;
  for (let j = 1; j < sorted.length; j++) if (Math.abs(v - 2 * sorted[j]) < Math.abs(v - 2 * sorted[best])) best = j;
  return best;
}

/** out[c] += #{p : x[p·xStride + c] > 0}. */
export function countPositiveRef(out: Float32Array, x: Float32Array, pixels: number, channels: number, xStride: number): Float32Array {
  for (let c = 0; c < channels; c++) {
    let n = 0;
    for (let p = 0; p < pixels; p++) if (x[p * xStride + c] > 0) n++;
    out[c] = Math.fround(out[c] + n);
  }
  return out;
}
