// Plain scalar reference of qs16_qc16w_conv_nhwc_pcs_f32 (the exact per-input-channel-scale conv). This is the
// ground truth the WASM kernel must match bit for bit; it reads like the math (see the kernel header in
// assembly/conv/qs16-qc16w-conv-nhwc-pcs.ts):
//
//   P[o,c,p] = Σ_{t in-bounds} w[o,t,c]·g[p+t,c]      exact integer
//   Z[o,c,p] = Σ_{t in-bounds} w[o,t,c]                exact integer
//   acc = +0;  for c ascending:  acc = f32(acc + f32(f32(P)·a_c))
//   T   = +0;  for c ascending:  T   = f32(T + f32(μ_c·f32(Z)))
//   v   = f32(f32(f32(acc + T)·s_o) + b_o);  v = v < outMin ? outMin : v;  v = outMax < v ? outMax : v
//
// Every f32 step goes through Math.fround (a double sum/product of two f32 values rounded once to f32 equals
// the f32 operation), so the result is the one WASM's f32x4 ops produce. Also: an f64 oracle on x̂ and ŵ.

import type { ConvRefShape } from "./qs8-conv.ts";

const fr = Math.fround;

export interface Qs16PcsRefArgs extends ConvRefShape {
  /** Integer activations g, pixel p channel c at p·inStride + c. */
  input: ArrayLike<number>;
  inStride: number;
  /** Per-input-channel scale a_c and mean μ_c (f32 values). */
  chScale: ArrayLike<number>;
  chMean: ArrayLike<number>;
  /** Integer weights, OHWI: w[((o·k + kh)·k + kw)·Cin + c]. */
  weights: ArrayLike<number>;
  /** Per-output-channel weight scale s_o and bias b_o (f32 values; bias null = 0). */
  wscale: ArrayLike<number>;
  bias: ArrayLike<number> | null;
  outMin: number;
  outMax: number;
}

/** The kernel's result: out[p·outStride + o] (other elements untouched). Throws if a partial sum leaves int32. */
export function qs16ConvPcsRef(out: Float32Array, outStride: number, a: Qs16PcsRefArgs): Float32Array {
  const { H, W, Cin, Cout, k, input, inStride, chScale, chMean, weights, wscale, bias } = a;
  const p = (k - 1) >> 1;
  const lo = fr(a.outMin), hi = fr(a.outMax);
  for (let y = 0; y < H; y++) {
    const kh0 = Math.max(0, p - y), kh1 = Math.min(k - 1, p + H - 1 - y);
    for (let x = 0; x < W; x++) {
      const kw0 = Math.max(0, p - x), kw1 = Math.min(k - 1, p + W - 1 - x);
      for (let o = 0; o < Cout; o++) {
        let acc = 0, T = 0;
        for (let c = 0; c < Cin; c++) {
          let P = 0, Z = 0;
          for (let kh = kh0; kh <= kh1; kh++) {
            for (let kw = kw0; kw <= kw1; kw++) {
              const w = weights[((o * k + kh) * k + kw) * Cin + c];
              P += w * input[((y + kh - p) * W + (x + kw - p)) * inStride + c];
              Z += w;
            }
          }
          if (P !== (P | 0)) throw new RangeError(`partial sum ${P} (o ${o}, c ${c}) leaves int32`);
          acc = fr(acc + fr(fr(P) * chScale[c]));
          T = fr(T + fr(chMean[c] * fr(Z)));
        }
        let v = fr(fr(fr(acc + T) * wscale[o]) + (bias ? bias[o] : 0));
        v = v < lo ? lo : v;
        v = hi < v ? hi : v;
        out[(y * W + x) * outStride + o] = v;
      }
    }
  }
  return out;
}

/**
 * f64 oracle: conv of the real tensors x̂ = a_c·g + μ_c (zero outside the image) and ŵ = s_o·w, + b_o,
 * clamped. Also returns, per output, the magnitude M = |b_o| + Σ|ŵ|·(|a_c·g| + |μ_c|) that bounds the
 * rounding error of the kernel's f32 combine (which sums the a_c·P and μ_c·Z parts separately).
 */
export function qs16ConvPcsOracle(a: Qs16PcsRefArgs): { y: Float64Array; mag: Float64Array } {
  const { H, W, Cin, Cout, k, input, inStride, chScale, chMean, weights, wscale, bias } = a;
  const p = (k - 1) >> 1;
  const y = new Float64Array(H * W * Cout), mag = new Float64Array(H * W * Cout);
  for (let yy = 0; yy < H; yy++) {
    for (let x = 0; x < W; x++) {
      for (let o = 0; o < Cout; o++) {
        const b = bias ? bias[o] : 0;
        let s = b, m = Math.abs(b);
        for (let kh = 0; kh < k; kh++) {
          const iy = yy + kh - p;
          if (iy < 0 || iy >= H) continue;
          for (let kw = 0; kw < k; kw++) {
            const ix = x + kw - p;
            if (ix < 0 || ix >= W) continue;
            for (let c = 0; c < Cin; c++) {
              const ag = chScale[c] * input[(iy * W + ix) * inStride + c];
              const wh = wscale[o] * weights[((o * k + kh) * k + kw) * Cin + c];
              s += wh * (ag + chMean[c]);
              m += Math.abs(wh) * (Math.abs(ag) + Math.abs(chMean[c]));
            }
          }
        }
        const i = (yy * W + x) * Cout + o;
        y[i] = Math.min(Math.max(s, a.outMin), a.outMax);
        mag[i] = m;
      }
    }
  }
  return { y, mag };
}
