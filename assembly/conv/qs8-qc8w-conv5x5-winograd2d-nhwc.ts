// qs8_qc8w_conv5x5_winograd2d_nhwc: the int8 5×5 conv (stride 1, 'same') as four nested exact integer
// F(2×2, 3×3) sub-convolutions — 49 i16-dot multiplies per 2×2 output tile and input channel instead of 70 (1-D
// F(2,3) nesting, ./qs8-conv-common.ts) or 100 (direct). Arithmetic, range condition (4·max|x − z|·Σ|w[o]| < 2^31,
// with the 5×5 Σ|w|) and the sub-filter split: ./qs8-conv-winograd2d-common.ts. Wrapper: src/kernels/qs8-conv.ts.
import { OUT_I32, OUT_S8, OUT_U8 } from "./qs8-conv-common";
import { convWinograd2d } from "./qs8-conv-winograd2d-common";

/** Requantized output; arguments as qs8_qc8w_conv3x3_winograd2d_nhwc, `packed` the blob of a 5×5 layer. */
export function qs8_qc8w_conv5x5_winograd2d_nhwc(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32, outSigned: i32, scratch: usize): void {
  if (outSigned != 0) {
    convWinograd2d(5, input, inStride, H, W, Cin, inZp, inSigned != 0, packed, Cout, mult, output, outStride, outZp, qmin, qmax, OUT_S8, scratch);
  } else {
    convWinograd2d(5, input, inStride, H, W, Cin, inZp, inSigned != 0, packed, Cout, mult, output, outStride, outZp, qmin, qmax, OUT_U8, scratch);
  }
}

/** Raw int32 accumulators Σ(x − z_x)·w + bias_q; `outStride` in int32 elements. */
export function qs8_qc8w_conv5x5_winograd2d_nhwc_acc32(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  packed: usize, Cout: i32, output: usize, outStride: i32, scratch: usize): void {
  convWinograd2d(5, input, inStride, H, W, Cin, inZp, inSigned != 0, packed, Cout, 0, output, outStride, 0, 0, 0, OUT_I32, scratch);
}
