// `npm run bench:kernels`: the SIMD ceiling probe, then every conv kernel on the
// real layer shapes of @upscalerjs/esrgan-medium at 128×128, single thread.
// Each line: `<precision> <kernel> <shape>: X GMAC/s (Y% of peak)`.
import { createRuntime } from "../src/runtime/runtime.ts";
import { measurePeak, fmt } from "./util.ts";
import { run as runF32Conv } from "./kernels/f32-conv.bench.ts";

const backend = process.argv.includes("--relaxed") ? "relaxed" : "simd";
const rt = await createRuntime({ backend });
console.log(`# lowbit kernel benchmarks — backend ${rt.info.backend}, Node ${process.versions.node}, single thread`);
const peak = measurePeak(rt);
console.log(`peak i32x4.dot_i16x8_s: ${fmt(peak.dotI16)} GMAC/s`);
console.log(`peak f32x4 mul+add: ${fmt(peak.f32)} GMAC/s`);
if (peak.relaxedDot !== null) console.log(`peak relaxed dot i8x16.i7x16: ${fmt(peak.relaxedDot)} GMAC/s`);
await runF32Conv(rt, peak);
await (await import("./kernels/qs8-conv.bench.ts")).run(rt, peak);
await (await import("./kernels/qs16-conv-pcs.bench.ts")).run(rt, peak);
await (await import("./kernels/qlut-conv.bench.ts")).run(rt, peak);
