// Plain scalar reference of the quantized NHWC convolutions (qs8_qc8w / qs8_qc4w, requantized or int32 out).
// This is the ground truth the WASM kernels must match bit for bit; it reads like the math:
//
//   real value of a code:   r = s·(q − z)                       (weights: z_w = 0, one scale per output channel)
//   accumulator:            acc[o] = Σ_{kh,kw,c} (x − z_x)·w[o,kh,kw,c] + bias_q[o]
//                           taps outside the image read the code z_x ('same' padding of the real value 0)
//   requantization (fp32):  v = f32(f32(acc)·M[o]),  M[o] = f32(s_x·s_w[o]/s_y)
//                           v = min(max(v, qmin − z_y), qmax − z_y)
//                           y = round_half_even(v) + z_y, computed as f32(v + 1.5·2^23) − 1.5·2^23
//
// Every f32 step goes through Math.fround so the result is the one WASM's f32x4 ops produce.

/** 1.5·2^23: for |v| < 2^22, f32(v + MAGIC) − MAGIC = v rounded half to even. */
export const REQUANT_MAGIC = 12582912;

/** fp32 requantization of one accumulator (see the header). */
export function requantizeRef(acc: number, multiplier: number, outZp: number, qmin: number, qmax: number): number {
  let v = Math.fround(Math.fround(acc) * Math.fround(multiplier));
  v = Math.min(Math.max(v, qmin - outZp), qmax - outZp);
  return Math.fround(v + REQUANT_MAGIC) - REQUANT_MAGIC + outZp;
}

/** Shape of a stride-1 'same' NHWC conv (shared by the integer conv references). */
export interface ConvRefShape {
  H: number;
  W: number;
  Cin: number;
  Cout: number;
  /** Odd kernel size. */
  k: number;
}

export interface QConvRefArgs extends ConvRefShape {
  /** Activation codes (uint8 or int8), pixel p channel c at p·inStride + c. */
  input: Uint8Array | Int8Array;
  inStride: number;
  inZp: number;
  /** Weights, OHWI: w[((o·k + kh)·k + kw)·Cin + c], integer values (int8 or int4 range). */
  weights: ArrayLike<number>;
  /** bias_q per output channel, or null for 0. */
  bias: ArrayLike<number> | null;
}

/**
 * acc[(y·W + x)·Cout + o] = start[o] + Σ_{kh,kw,c in-bounds} act(ib, c)·w[o,kh,kw,c] as exact integers (float64
 * holds them: |acc| < 2^53 for any sane layer), ib = the tap pixel's index × inStride. Taps outside the image
 * contribute nothing (the conv's 'same' padding of the real value 0). Weights OHWI: w[((o·k + kh)·k + kw)·Cin + c].
 */
export function convAccRef(a: ConvRefShape & { inStride: number; weights: ArrayLike<number> },
  act: (ib: number, c: number) => number, start: ArrayLike<number> | null): Float64Array {
  const { H, W, Cin, Cout, k, inStride, weights } = a;
  const p = (k - 1) >> 1;
  const acc = new Float64Array(H * W * Cout);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let o = 0; o < Cout; o++) {
        let s = start ? start[o] : 0;
        for (let kh = 0; kh < k; kh++) {
          const iy = y + kh - p;
          if (iy < 0 || iy >= H) continue;
          for (let kw = 0; kw < k; kw++) {
            const ix = x + kw - p;
            if (ix < 0 || ix >= W) continue;
            const ib = (iy * W + ix) * inStride;
            const wb = ((o * k + kh) * k + kw) * Cin;
            for (let c = 0; c < Cin; c++) s += act(ib, c) * weights[wb + c];
          }
        }
        acc[(y * W + x) * Cout + o] = s;
      }
    }
  }
  return acc;
}

/** acc[(y·W + x)·Cout + o] = Σ (x − z_x)·w + bias_q as exact integers (taps outside the image: (z_x − z_x)·w = 0). */
export function qconvAccRef(a: QConvRefArgs): Float64Array {
  const { input, inZp } = a;
  return convAccRef(a, (ib, c) => input[ib + c] - inZp, a.bias);
}

/** Raw int32 output (the acc32 kernels): out[p·outStride + o] = acc. Throws if an accumulator leaves int32. */
export function qconvAcc32Ref(out: Int32Array, outStride: number, a: QConvRefArgs): Int32Array {
  const acc = qconvAccRef(a);
  for (let i = 0; i < a.H * a.W; i++) {
    for (let o = 0; o < a.Cout; o++) {
      const v = acc[i * a.Cout + o];
      if (v !== (v | 0)) throw new RangeError(`accumulator ${v} leaves int32`);
      out[i * outStride + o] = v;
    }
  }
  return out;
}

/** Requantized output codes: out[p·outStride + o] = requantizeRef(acc, multipliers[o], …). */
export function qconvRef(out: Uint8Array | Int8Array, outStride: number, a: QConvRefArgs,
  multipliers: ArrayLike<number>, outZp: number, qmin: number, qmax: number): Uint8Array | Int8Array {
  const acc = qconvAccRef(a);
  for (let i = 0; i < a.H * a.W; i++) {
    for (let o = 0; o < a.Cout; o++) {
      out[i * outStride + o] = requantizeRef(acc[i * a.Cout + o], multipliers[o], outZp, qmin, qmax);
    }
  }
  return out;
}

/** Signed int4 nibbles (two per byte, element 2i in the low nibble) → one integer per element. */
export function unpackInt4Ref(packed: Uint8Array, count: number): Int8Array {
  const out = new Int8Array(count);
  for (let i = 0; i < count; i++) {
    const nib = (packed[i >> 1] >> ((i & 1) * 4)) & 15;
    out[i] = nib >= 8 ? nib - 16 : nib;
  }
  return out;
}
