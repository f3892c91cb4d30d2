// qs8_qc8w_conv3x3_winograd2d_nhwc: the int8 3×3 conv (stride 1, 'same') by an exact integer 2-D Winograd
// F(2×2, 3×3): 16 i16-dot multiplies per 2×2 output tile and input channel instead of 36 (direct) or 24 (1-D F(2,3)).
// Arithmetic, the range condition 4·max|x − z|·Σ|w[o]| < 2^31 and the dataflow: ./qs8-conv-winograd2d-common.ts.
// Wrapper: src/kernels/qs8-conv.ts (selects it; falls back to the 1-D / direct kernels when the condition fails).
import { OUT_I32, OUT_S8, OUT_U8 } from "./qs8-conv-common";
import { convWinograd2d } from "./qs8-conv-winograd2d-common";

/**
 * Requantized output (`outSigned` 0 → uint8, 1 → int8 codes, clamped to [qmin, qmax]); arguments as
 * qs8_qc8w_conv_nhwc without k (3), bandRows, relaxed, inBits. Also runs int4-weight layers (packQs8Qc4wConv
 * writes the same layout). The caller guarantees the range condition of the header.
 */
export function qs8_qc8w_conv3x3_winograd2d_nhwc(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32, outSigned: i32, scratch: usize): void {
  // One copy per output mode (a compile-time constant inside): no mode branches in the epilogue.
  if (outSigned != 0) {
    convWinograd2d(3, input, inStride, H, W, Cin, inZp, inSigned != 0, packed, Cout, mult, output, outStride, outZp, qmin, qmax, OUT_S8, scratch);
  } else {
    convWinograd2d(3, input, inStride, H, W, Cin, inZp, inSigned != 0, packed, Cout, mult, output, outStride, outZp, qmin, qmax, OUT_U8, scratch);
  }
}

/** Raw int32 accumulators Σ(x − z_x)·w + bias_q; `outStride` in int32 elements. */
export function qs8_qc8w_conv3x3_winograd2d_nhwc_acc32(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  packed: usize, Cout: i32, output: usize, outStride: i32, scratch: usize): void {
  convWinograd2d(3, input, inStride, H, W, Cin, inZp, inSigned != 0, packed, Cout, 0, output, outStride, 0, 0, 0, OUT_I32, scratch);
}
