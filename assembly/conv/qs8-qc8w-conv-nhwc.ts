// qs8_qc8w_conv_nhwc: uint8/int8 activations (per-tensor zero point) × int8 weights (per-output-channel scale,
// zero point 0), int32 accumulation, fp32 requantization — stride 1, 'same' padding, odd k, NHWC with channel
// strides. Arithmetic, pipeline and packed layout: ./qs8-conv-common.ts. Wrapper: src/kernels/qs8-conv.ts.
import { qs8ConvNhwc, OUT_I32, OUT_S8, OUT_U8 } from "./qs8-conv-common";

/**
 * Requantized output: `outSigned` 0 → uint8 codes, 1 → int8 codes, clamped to [qmin, qmax] (ReLU: qmin = outZp).
 * `mult` → CoutP f32 multipliers s_x·s_w[o]/s_y. `relaxed` ≥ 1 (relaxed build only): ≤7-bit activation codes, see qs8ConvNhwc.
 */
export function qs8_qc8w_conv_nhwc(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32, outSigned: i32,
  scratch: usize, bandRows: i32, relaxed: i32, inBits: i32): void {
  qs8ConvNhwc(input, inStride, H, W, Cin, inZp, inSigned, k, packed, Cout, mult,
    output, outStride, outZp, qmin, qmax, outSigned != 0 ? OUT_S8 : OUT_U8, scratch, bandRows, relaxed, inBits);
}

/** Raw int32 accumulators Σ(x − z_x)·w + bias_q (no requantization); `outStride` in int32 elements. */
export function qs8_qc8w_conv_nhwc_acc32(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, packed: usize, Cout: i32,
  output: usize, outStride: i32, scratch: usize, bandRows: i32, relaxed: i32, inBits: i32): void {
  qs8ConvNhwc(input, inStride, H, W, Cin, inZp, inSigned, k, packed, Cout, 0,
    output, outStride, 0, 0, 0, OUT_I32, scratch, bandRows, relaxed, inBits);
}
