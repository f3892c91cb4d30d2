// ODM inference cost: an ODM-init W4A4 model (static quantizers) on the dynamic plan's integer paths
// (lut, exact), the same model forced through the per-image statistics pass (what skipping it saves),
// DAQ on the same layers (per-image statistics), and FP32 — ms per image, same runtime, same tiles.
//
//   node --import tsx bench/odm-inference.ts [--model esrgan-slim-x4] [--bits w4a4] [--reps 5] [--size 128]
import { parseArgs } from "node:util";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { Upscaler, fp32Model, type CompilableModel } from "../src/engine/upscaler-api.ts";
import { DynamicQuantizedModel, type DynamicLayer } from "../src/methods/dynamic/model.ts";
import { quantizeDaq } from "../src/methods/daq/quantize.ts";
import { quantizeOdmInit } from "../src/methods/odm/index.ts";
import { loadCalibImages } from "../src/cli/model-options.ts";
import { parseBits } from "../src/quant/config.ts";

async function main(): Promise<void> {
  const { values: a } = parseArgs({ options: { model: { type: "string", default: "esrgan-slim-x4" }, bits: { type: "string", default: "w4a4" }, reps: { type: "string", default: "5" }, size: { type: "string", default: "128" }, calib: { type: "string", default: "/work/main/data/calib" } } });
  const rt = await createRuntime({ backend: "simd" });
  const g = await loadModel(a.model!);
  const bits = parseBits(a.bits!);
  if (bits === "fp32") throw new Error("integer bits");
  const side = Number(a.size), reps = Number(a.reps);
  const imgs = await loadCalibImages(a.calib!, g.meta.scale, 512);
  const odm = await quantizeOdmInit(g, imgs, { weightBits: bits.weightBits, actBits: bits.actBits, runtime: rt });
  // The same layers and parameters, but the plan treats the quantizers as dynamic (statistics pass each image).
  const forced = new Map<number, DynamicLayer>();
  for (const [id, l] of odm.layers) {
    forced.set(id, { ...l, createQuantizer: () => new Proxy(l.createQuantizer(), { get: (t, k) => (k === "isStatic" ? false : Reflect.get(t, k)) }) });
  }
  const withStats = new DynamicQuantizedModel(odm.graph, forced, odm.info, "lut");
  const daq = await quantizeDaq(g, { weightBits: bits.weightBits, actBits: bits.actBits, scope: "body", runtime: rt });
  const img = { data: new Uint8Array(side * side * 3).map((_, i) => (i * 37) % 251), width: side, height: side, channels: 3 };
  const time = async (name: string, m: CompilableModel, path?: "lut" | "exact") => {
    if (path && m instanceof DynamicQuantizedModel) m.path = path;
    const up = new Upscaler(m, rt, { tile: side });
    await up.upscale(img);
    const ts: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      await up.upscale(img);
      ts.push(performance.now() - t);
    }
    up.dispose();
    ts.sort((x, y) => x - y);
    console.log(`${name.padEnd(34)} median ${ts[reps >> 1].toFixed(1)} ms  min ${ts[0].toFixed(1)} ms  (${side}² LR, ${reps} reps)`);
  };
  console.log(`${a.model} ${a.bits} · ${odm.config}`);
  await time("FP32", fp32Model(g));
  await time("ODM lut (static, no stats pass)", odm, "lut");
  await time("ODM exact (static, no stats pass)", odm, "exact");
  await time("ODM lut, forced statistics pass", withStats, "lut");
  await time(`DAQ lut body (per-image stats)`, daq, "lut");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
