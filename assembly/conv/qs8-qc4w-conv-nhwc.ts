// qs8_qc4w_conv_nhwc: uint8/int8 activations of any bit-width 2..8 × signed int4 weights (−8..7, per-output-channel
// scale). The public weight format is two nibbles per byte (see packQs8Qc4wConv in src/kernels/qs8-conv.ts);
// packing widens them once into the same block layouts as the int8-weight kernel (./qs8-conv-common.ts), because
// the inner loop's operand is i16 (simd) or i8 (relaxed) either way: decoding nibbles per MAC would only add work.
// What int4 buys inside the kernel is the small product bound |w| ≤ 8: in the relaxed build, ≤7-bit activations
// then take the i16-accumulating path (DOT_U7_ACC16 in qs8-conv-common.ts, 16–136 quads per i16 chunk), about 1.8× the i16 path.
import { qs8ConvNhwc, OUT_I32, OUT_S8, OUT_U8 } from "./qs8-conv-common";

/** Requantized output; arguments as qs8_qc8w_conv_nhwc, `packed` from packQs8Qc4wConv. */
export function qs8_qc4w_conv_nhwc(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32, outSigned: i32,
  scratch: usize, bandRows: i32, relaxed: i32, inBits: i32): void {
  qs8ConvNhwc(input, inStride, H, W, Cin, inZp, inSigned, k, packed, Cout, mult,
    output, outStride, outZp, qmin, qmax, outSigned != 0 ? OUT_S8 : OUT_U8, scratch, bandRows, relaxed, inBits);
}

/** Raw int32 accumulators; arguments as qs8_qc8w_conv_nhwc_acc32. */
export function qs8_qc4w_conv_nhwc_acc32(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, packed: usize, Cout: i32,
  output: usize, outStride: i32, scratch: usize, bandRows: i32, relaxed: i32, inBits: i32): void {
  qs8ConvNhwc(input, inStride, H, W, Cin, inZp, inSigned, k, packed, Cout, 0,
    output, outStride, 0, 0, 0, OUT_I32, scratch, bandRows, relaxed, inBits);
}
