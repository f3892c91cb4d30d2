// qs8_qc8w_conv_fused_nhwc: the direct quantized conv (./qs8-qc8w-conv-nhwc.ts) with its graph neighbours fused in —
// a concat of requantized 8-bit inputs read in place of a materialized concat ("gathered" input), and a residual
// add applied in the store. Both are bit-identical to the unfused kernel sequence; arithmetic, segment records and
// the derivations: qs8ConvFusedNhwc and prepareGather in ./qs8-conv-common.ts. Wrapper: src/kernels/qs8-conv-fused.ts.
// int4 layers use it too: packQs8Qc4wConv writes the same widened block layouts.
import { qs8ConvFusedNhwc } from "./qs8-conv-common";

/**
 * y = [add(residual,] conv(concat(segments))[)] on 8-bit codes. `segs` → nSeg records of GATHER_WORDS i32
 * (tile base, pixel stride in bytes, channels, zero point, f32 multiplier s_j/s_cat, identity flag); the concat's
 * grid is inZp, [inQmin, inQmax]. res = 0: no add. `relaxed` ≥ 1 (relaxed build only): ≤7-bit input codes, as
 * qs8_qc8w_conv_nhwc.
 */
export function qs8_qc8w_conv_fused_nhwc(segs: usize, nSeg: i32, inSigned: i32, H: i32, W: i32, Cin: i32,
  inZp: i32, inQmin: i32, inQmax: i32, k: i32, packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32,
  res: usize, resZp: i32, mConv: f32, mRes: f32, addZp: i32, addQmin: i32, addQmax: i32, signed: i32,
  scratch: usize, bandRows: i32, relaxed: i32, inBits: i32): void {
  qs8ConvFusedNhwc(segs, nSeg, inSigned, H, W, Cin, inZp, inQmin, inQmax, k, packed, Cout, mult,
    output, outStride, outZp, qmin, qmax, res, resZp, mConv, mRes, addZp, addQmin, addQmax, signed,
    scratch, bandRows, relaxed, inBits);
}
