// Quantized conv kernels on the layer shapes of @upscalerjs/esrgan-medium (128×128 LR; the last conv at
// 256×256), single thread, through the engine's low-level call (arena offsets, no copies).
// int8: uint8 activations × int8 weights; int4w: 8-bit activations × int4 weights; in the relaxed build also
// 7-bit and 4-bit activations (the relaxed i8×i7 dot path). "% of peak" is against the in-process
// i32x4.dot_i16x8_s ceiling (and the relaxed-dot ceiling for the relaxed path). 3×3 and 5×5 layers also run
// on the older paths in the same process (Winograd F(2,3) along x with F(2×2,3×3) off, and the direct i16 loop),
// so the speed-up of each Winograd variant is a same-run ratio.
import type { Runtime } from "../../src/runtime/runtime.ts";
import { packQs8Qc8wConv, packQs8Qc4wConv, qs8ConvPath, qs8ConvRun, qs8ConvScratchBytes, type QActivation, type QConvPathOptions } from "../../src/kernels/qs8-conv.ts";
import { packInt4 } from "../../src/kernels/requant.ts";
import { time, gmacs, fmt, type Peak } from "../util.ts";
import { Rng } from "../../test/util/rng.ts";

const SHAPES: Array<[number, number, number, number]> = [
  // cin, cout, k, size
  [3, 64, 3, 128],
  [64, 64, 3, 128],
  [128, 64, 1, 128],
  [640, 64, 1, 128],
  [64, 64, 5, 128],
  [64, 32, 3, 128],
  [32, 12, 3, 128],
  [12, 3, 3, 256],
];

export async function run(rt: Runtime, peak: Peak): Promise<void> {
  const r = new Rng(1);
  const variants: Array<{ name: string; wf: "qc8w" | "qc4w"; act: QActivation }> = [
    { name: "int8", wf: "qc8w", act: { bits: 8, signed: false, zeroPoint: 128 } },
    { name: "int4w a8", wf: "qc4w", act: { bits: 8, signed: false, zeroPoint: 128 } },
  ];
  if (rt.info.backend === "relaxed") {
    variants.push({ name: "int8 a7", wf: "qc8w", act: { bits: 7, signed: false, zeroPoint: 64 } });
    variants.push({ name: "int4w a4", wf: "qc4w", act: { bits: 4, signed: false, zeroPoint: 8 } });
  }
  for (const v of variants) {
    for (const [cin, cout, k, S] of SHAPES) {
      const n = cout * k * k * cin;
      const w = new Int8Array(n);
      if (v.wf === "qc8w") r.fillInt8(w, -127, 127); else r.fillInt8(w, -8, 7);
      const args = { cout, k, cin, bias: Int32Array.from({ length: cout }, () => r.int(-1000, 1000)) };
      const layer = v.wf === "qc8w" ? packQs8Qc8wConv(w, args) : packQs8Qc4wConv(packInt4(new Uint8Array((n + 1) >> 1), w), args);
      const ar = rt.arena, m = ar.mark();
      const packed = ar.put(layer.bytes);
      const mult = ar.put(new Float32Array(layer.coutPadded).fill(1 / 4096));
      const input = ar.put(r.fillUint8(new Uint8Array(S * S * cin), 0, 2 ** v.act.bits - 1));
      const output = ar.alloc(S * S * cout);
      const scratch = ar.alloc(qs8ConvScratchBytes(S, S, cin, k));
      // The default (fastest) path, then each older path it replaces, in the same process.
      const options: QConvPathOptions[] = [{}];
      const best = qs8ConvPath(rt, layer, v.act);
      if (best === "i16-wino2d") options.push({ winograd2d: false });
      if (best.startsWith("i16-wino")) options.push({ winograd: false });
      for (const paths of options) {
        const call = { layer, packed, H: S, W: S, input, inStride: cin, act: v.act, output, outStride: cout, scratch,
          multipliers: mult, out: { signed: false, zeroPoint: 0, qmin: 0, qmax: 255 }, paths };
        const path = qs8ConvPath(rt, layer, v.act, paths);
        const t = time(`${v.name} ${cin}->${cout} k${k} ${path}`, () => qs8ConvRun(rt, call));
        const g = gmacs(S * S * k * k * cin * cout, t);
        // GMAC/s counts the direct conv's MACs; the Winograd paths do fewer multiplies, so they can pass 100 %.
        const i16 = path.startsWith("i16");
        const ceiling = !i16 && peak.relaxedDot ? peak.relaxedDot : peak.dotI16;
        console.log(`${v.name} conv${k}x${k} ${cin}->${cout} ${S}x${S}: ${fmt(g)} ${path.startsWith("i16-wino") ? "effective " : ""}GMAC/s (${fmt((100 * g) / ceiling, 0)}% of ${i16 ? "i16-dot" : "relaxed-dot"} peak) [${path}, ${fmt(t.mean * 1e3, 2)} ms ±${fmt(t.rme, 0)}%]`);
      }
      ar.release(m);
    }
  }
}
