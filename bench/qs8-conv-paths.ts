// The int8 conv paths side by side on one layer shape (bench-only): Winograd F(2×2,3×3) (default for 3×3/5×5),
// F(2,3) along x (paths {winograd2d: false}) and the direct i16 loop ({winograd: false}), interleaved round by
// round in one process; each figure is the minimum over 15 rounds × 3 calls of the call's *CPU time*
// (process.cpuUsage), which stays meaningful when other jobs share the cores (wall-clock minima do not).
//
//   "$(which node)" --import tsx bench/qs8-conv-paths.ts [k] ["cin,cout,H[,W];…"]      (default: k 3, esrgan-medium shapes)
//
// Prints effective GMAC/s (the direct conv's MACs over the time), 8-bit uint8 activations × int8 weights.
import { createRuntime } from "../src/runtime/runtime.ts";
import { packQs8Qc8wConv, qs8ConvPath, qs8ConvRun, qs8ConvScratchBytes, type QConvPathOptions } from "../src/kernels/qs8-conv.ts";
import { fmt } from "./util.ts";
import { Rng } from "../test/util/rng.ts";

const k = Number(process.argv[2] ?? 3);
const shapes = (process.argv[3] ?? "64,64,128;64,64,256;64,32,128;32,12,128;12,12,256").split(";").map((s) => s.split(",").map(Number));
const rt = await createRuntime({ backend: process.argv.includes("--relaxed") ? "relaxed" : "simd" });
console.log(`# int8 conv${k}x${k} paths, CPU-time minima — backend ${rt.info.backend}, Node ${process.versions.node}`);
const r = new Rng(1);
const variants: Array<[string, QConvPathOptions]> = [["default", {}], ["1-D (winograd2d off)", { winograd2d: false }], ["direct (winograd off)", { winograd: false }]];
for (const [cin, cout, H, Wo] of shapes) {
  const W = Wo ?? H;
  const w = new Int8Array(cout * k * k * cin);
  r.fillInt8(w, -127, 127);
  const layer = packQs8Qc8wConv(w, { cout, k, cin, bias: new Int32Array(cout) });
  const ar = rt.arena, m = ar.mark();
  const packed = ar.put(layer.bytes), mult = ar.put(new Float32Array(layer.coutPadded).fill(1 / 4096));
  const input = ar.put(r.fillUint8(new Uint8Array(H * W * cin), 0, 255));
  const output = ar.alloc(H * W * cout), scratch = ar.alloc(qs8ConvScratchBytes(H, W, cin, k));
  const act = { bits: 8, signed: false, zeroPoint: 128 };
  const best = variants.map(() => Infinity);
  for (let round = 0; round < 15; round++) {
    variants.forEach(([, paths], i) => {
      const call = { layer, packed, H, W, input, inStride: cin, act, output, outStride: cout, scratch, multipliers: mult,
        out: { signed: false, zeroPoint: 0, qmin: 0, qmax: 255 }, paths };
      for (let rep = 0; rep < 3; rep++) {
        const c0 = process.cpuUsage();
        qs8ConvRun(rt, call);
        const c = process.cpuUsage(c0);
        best[i] = Math.min(best[i], (c.user + c.system) / 1000);
      }
    });
  }
  ar.release(m);
  const macs = H * W * k * k * cin * cout;
  console.log(`int8 conv${k}x${k} ${cin}->${cout} ${H}x${W}: ` +
    variants.map(([name, paths], i) => `${name} [${qs8ConvPath(rt, layer, act, paths)}] ${fmt(macs / best[i] / 1e6)}`).join(" | ") + " effective GMAC/s");
}
