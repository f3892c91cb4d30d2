// The exact per-input-channel-scale conv (qs16_qc16w_conv_nhwc_pcs_f32: DAQ path A / DFSQ (b)) against the
// int8 conv (qs8_qc8w, a static per-tensor quantizer) on the same shape in the same run: the extra cost of
// keeping one int32 partial sum per input channel and scaling it in f32. GMAC/s counts the conv's useful
// MACs (H·W·k²·cin·cout) for both, "% of peak" is against the in-process i32x4.dot_i16x8_s ceiling.
import type { Runtime } from "../../src/runtime/runtime.ts";
import { packQs16ConvPcs, qs16ConvPcsRun, qs16ConvPcsScratchBytes } from "../../src/kernels/qs16-conv-pcs.ts";
import { packQs8Qc8wConv, qs8ConvRun, qs8ConvScratchBytes } from "../../src/kernels/qs8-conv.ts";
import { time, gmacs, fmt, type Peak } from "../util.ts";
import { Rng } from "../../test/util/rng.ts";

const SHAPES: Array<[number, number, number, number]> = [
  // cin, cout, k, size
  [64, 64, 3, 128],
  [64, 64, 1, 128],
  [64, 64, 5, 128],
];

export async function run(rt: Runtime, peak: Peak): Promise<void> {
  const r = new Rng(2);
  for (const [cin, cout, k, S] of SHAPES) {
    const macs = S * S * k * k * cin * cout;
    const ar = rt.arena, m = ar.mark();
    // int8 baseline: uint8 codes at zp 128 × int8 weights, requantized to uint8.
    const w8 = r.fillInt8(new Int8Array(cout * k * k * cin), -127, 127);
    const l8 = packQs8Qc8wConv(w8, { cout, k, cin, bias: new Int32Array(cout) });
    const in8 = ar.put(r.fillUint8(new Uint8Array(S * S * cin)));
    const call8 = { layer: l8, packed: ar.put(l8.bytes), H: S, W: S, input: in8, inStride: cin,
      act: { bits: 8, signed: false, zeroPoint: 128 }, output: ar.alloc(S * S * cout), outStride: cout,
      scratch: ar.alloc(qs8ConvScratchBytes(S, S, cin, k)), multipliers: ar.put(new Float32Array(l8.coutPadded).fill(1 / 4096)),
      out: { signed: false, zeroPoint: 0, qmin: 0, qmax: 255 } };
    // pcs: 8-bit odd DAQ codes as int16 (|g| ≤ 255) × 8-bit odd weights, f32 output.
    const w16 = Int16Array.from({ length: cout * k * k * cin }, () => 2 * r.int(0, 255) - 255);
    const l16 = packQs16ConvPcs(w16, { cout, k, cin });
    const in16 = ar.put(Int16Array.from({ length: S * S * cin }, () => 2 * r.int(0, 255) - 255));
    const call16 = { layer: l16, packed: ar.put(l16.bytes), H: S, W: S, input: in16, inStride: cin, maxAbsInput: 255,
      chScale: ar.put(Float32Array.from({ length: cin }, () => r.uniform(0.001, 0.01))),
      chMean: ar.put(Float32Array.from({ length: cin }, () => r.uniform(-0.5, 0.5))),
      wscale: ar.put(new Float32Array(l16.coutPadded).fill(1 / 512)), bias: ar.put(new Float32Array(l16.coutPadded)),
      output: ar.alloc(S * S * cout * 4), outStride: cout, outMin: 0, scratch: ar.alloc(qs16ConvPcsScratchBytes(S, S, cin, cout, k)) };
    const t8 = time(`int8 ${cin}->${cout} k${k}`, () => qs8ConvRun(rt, call8));
    const t16 = time(`pcs ${cin}->${cout} k${k}`, () => qs16ConvPcsRun(rt, call16));
    ar.release(m);
    const g8 = gmacs(macs, t8), g16 = gmacs(macs, t16);
    console.log(`int8 (qs8_qc8w) conv${k}x${k} ${cin}->${cout} ${S}x${S}: ${fmt(g8)} GMAC/s (${fmt((100 * g8) / peak.dotI16, 0)}% of i16-dot peak) [${fmt(t8.mean * 1e3, 2)} ms ±${fmt(t8.rme, 0)}%]`);
    console.log(`pcs exact (qs16_qc16w_pcs_f32) conv${k}x${k} ${cin}->${cout} ${S}x${S}: ${fmt(g16)} GMAC/s (${fmt((100 * g16) / peak.dotI16, 0)}% of i16-dot peak) [${fmt(t16.mean * 1e3, 2)} ms ±${fmt(t16.rme, 0)}%] — ${fmt(t16.mean / t8.mean, 2)}× the int8 time (fastest samples: ${fmt(t16.min / t8.min, 2)}×)`);
  }
}
