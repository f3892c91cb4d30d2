// Reference of the fused conv (assembly/conv/qs8-qc8w-conv-fused-nhwc.ts): literally the unfused sequence it
// replaces — requantize-copy every segment into a materialized concat (./concat.ts), the quantized conv
// (./qs8-conv.ts), then the requantized add (./requant-add.ts). The kernel must match it bit for bit.
import { copyRef, requantizeRef } from "./concat.ts";
import { qconvRef, type ConvRefShape } from "./qs8-conv.ts";
import { requantAddRef } from "./requant-add.ts";

type Codes = Uint8Array | Int8Array;

export interface FusedSegmentRef {
  data: Codes;
  stride: number;
  channels: number;
  zeroPoint: number;
  multiplier: number;
  identity?: boolean;
}

export interface FusedGridRef {
  zeroPoint: number;
  qmin: number;
  qmax: number;
}

/** out (stride Cout) = [add(residual,] conv(concat(segments))[)]. */
export function qs8ConvFusedRef(out: Codes, a: ConvRefShape & { weights: ArrayLike<number>; bias: ArrayLike<number> | null },
  segments: readonly FusedSegmentRef[], grid: FusedGridRef, multipliers: ArrayLike<number>, q: FusedGridRef,
  add?: { residual: Codes; zeroPoint: number; mConv: number; mRes: number; out: FusedGridRef }): Codes {
  const n = a.H * a.W;
  const Ctor = out instanceof Int8Array ? Int8Array : Uint8Array;
  const cat = new (segments[0].data instanceof Int8Array ? Int8Array : Uint8Array)(n * a.Cin);
  let off = 0;
  for (const s of segments) {
    const dst = cat.subarray(off);
    if (s.identity) copyRef(dst, s.data, n, s.channels, s.stride, a.Cin);
    else requantizeRef(dst, s.data, n, s.channels, s.stride, a.Cin, s.zeroPoint, s.multiplier, grid.zeroPoint, grid.qmin, grid.qmax);
    off += s.channels;
  }
  const conv = add ? new Ctor(n * a.Cout) : out;
  qconvRef(conv, a.Cout, { ...a, input: cat, inStride: a.Cin, inZp: grid.zeroPoint }, multipliers, q.zeroPoint, q.qmin, q.qmax);
  if (add) {
    requantAddRef(out, conv, add.residual, n, a.Cout, a.Cout, a.Cout, a.Cout, q.zeroPoint, add.zeroPoint, add.mConv, add.mRes,
      add.out.zeroPoint, add.out.qmin, add.out.qmax);
  }
  return out;
}
