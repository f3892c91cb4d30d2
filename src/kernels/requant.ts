// Quantization parameters of the int8/int4 kernels: fp32 requantization multipliers, int32 biases and
// the int4 nibble format, each validated (LowbitError) before anything reaches WASM.
//
// With r = s·(q − z) for every tensor and symmetric weights (z_w = 0):
//   r_y = Σ r_x·r_w + r_b = s_x·s_w[o]·(Σ (x − z_x)·w + r_b/(s_x·s_w[o]))
//   ⇒ bias_q[o] = round(r_b[o] / (s_x·s_w[o]))   (so the bias joins the int32 accumulator)
//   ⇒ y = round(acc · s_x·s_w[o]/s_y) + z_y      (M[o] = f32(s_x·s_w[o]/s_y), the fp32 scheme of ABI.md)
import { LowbitError, check } from "../runtime/errors.ts";

const I32_MAX = 2147483647;

function checkScale(s: number, what: string): void {
  check(typeof s === "number" && Number.isFinite(s) && s > 0, "E_RANGE", () => `${what} must be a finite positive number, got ${s}`);
}

/**
 * out[o] = f32(inScale·weightScales[o]/outScale), computed in float64 and rounded once to f32.
 * Throws E_RANGE for a non-finite or non-positive scale, or a multiplier that is 0 or ∞ in f32.
 */
export function requantMultipliers(out: Float32Array, inScale: number, weightScales: ArrayLike<number>, outScale: number): Float32Array {
  check(out.length >= weightScales.length, "E_SHAPE", `multiplier array holds ${out.length}, needs ${weightScales.length}`);
  checkScale(inScale, "input scale");
  checkScale(outScale, "output scale");
  for (let o = 0; o < weightScales.length; o++) {
    checkScale(weightScales[o], `weight scale [${o}]`);
    const m = Math.fround((inScale * weightScales[o]) / outScale);
    check(m > 0 && Number.isFinite(m), "E_RANGE", () => `requantization multiplier [${o}] = ${(inScale * weightScales[o]) / outScale} is not representable in f32`);
    out[o] = m;
  }
  return out;
}

/** Round half to even (banker's rounding), the rounding of the requantization. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * out[o] = round_half_even(bias[o] / (s_x · s_w[o])) in f64 (the bias in accumulator units);
 * bias null → zeros. |b_q| > 2^31 − 1 → E_RANGE naming the channel (the weight scale of that
 * channel is degenerate relative to the bias: raise it or keep the layer in float).
 */
export function quantizeBias(out: Int32Array, bias: ArrayLike<number> | null, inScale: number, weightScales: ArrayLike<number>): Int32Array {
  const cout = weightScales.length;
  check(out.length === cout, "E_SHAPE", () => `bias output has ${out.length} entries, cout is ${cout}`);
  check(bias === null || bias.length === cout, "E_SHAPE", () => `bias has ${bias!.length} entries, cout is ${cout}`);
  checkScale(inScale, "input scale");
  for (let o = 0; o < cout; o++) {
    checkScale(weightScales[o], `weight scale [${o}]`);
    if (bias === null) {
      out[o] = 0;
      continue;
    }
    check(Number.isFinite(bias[o]), "E_RANGE", () => `bias [${o}] is not finite (${bias[o]})`);
    const q = roundHalfEven(bias[o] / (inScale * weightScales[o]));
    if (!(Math.abs(q) <= I32_MAX)) {
      throw new LowbitError("E_RANGE", `bias [${o}] = ${bias[o]} is ${q} in accumulator units (s_x = ${inScale}, s_w = ${weightScales[o]}): does not fit int32`);
    }
    out[o] = q;
  }
  return out;
}

/** Bytes of n int4 codes packed two per byte. */
export function int4PackedBytes(n: number): number {
  return (n + 1) >> 1;
}

/**
 * The public int4 storage format: two signed nibbles per byte, element 2i in the low nibble,
 * an odd count leaves the last high nibble 0. `out` must be exactly int4PackedBytes(n) long.
 */
export function packInt4(out: Uint8Array, values: ArrayLike<number>): Uint8Array {
  const n = values.length;
  check(out.length === int4PackedBytes(n), "E_SHAPE", () => `int4 output holds ${out.length} bytes, needs exactly ${int4PackedBytes(n)}`);
  for (let i = 0; i < n; i += 2) {
    const a = values[i];
    const b = i + 1 < n ? values[i + 1] : 0;
    check(Number.isInteger(a) && a >= -8 && a <= 7 && Number.isInteger(b) && b >= -8 && b <= 7, "E_RANGE",
      () => `int4 code at ${i} (${a}, ${b}) is outside [−8, 7]`);
    out[i >> 1] = (a & 15) | ((b & 15) << 4);
  }
  return out;
}

/** Inverse of packInt4 (sign-extends each nibble); `packed` must be exactly int4PackedBytes(out.length). */
export function unpackInt4(out: Int8Array, packed: Uint8Array): Int8Array {
  check(packed.length === int4PackedBytes(out.length), "E_SHAPE", () => `${packed.length} bytes cannot hold exactly ${out.length} int4 codes`);
  for (let i = 0; i < out.length; i++) out[i] = (((packed[i >> 1] >> ((i & 1) << 2)) & 15) << 28) >> 28;
  return out;
}
