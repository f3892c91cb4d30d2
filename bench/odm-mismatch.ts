// Per-layer distribution mismatch of a model's quantized conv inputs (inter-image / per-channel mean
// and std mismatch, and the static quantizer's relative error), before and after ODM v1 channel
// offsets (statistics-based initial offsets on the given fraction of layers), on calibration patches.
//
//   node --import tsx bench/odm-mismatch.ts [--model esrgan-slim-x4] [--bits w4a4] [--offsets 0.25]
//        [--calib /work/main/data/calib] [--patches 32] [--patch 48] [--scope body]
import { parseArgs } from "node:util";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { loadCalibImages } from "../src/cli/model-options.ts";
import { formatMismatchReport, odmInitPtq } from "../src/methods/odm/index.ts";
import { parseBits } from "../src/quant/config.ts";
import type { LayerScope } from "../src/methods/scope.ts";

async function main(): Promise<void> {
  const { values: a } = parseArgs({ options: {
    model: { type: "string", default: "esrgan-slim-x4" }, bits: { type: "string", default: "w4a4" }, offsets: { type: "string", default: "0.25" },
    calib: { type: "string", default: "/work/main/data/calib" }, patches: { type: "string", default: "32" }, patch: { type: "string", default: "48" }, scope: { type: "string", default: "body" },
  } });
  const rt = await createRuntime({ backend: "simd" });
  const g = await loadModel(a.model!);
  const bits = parseBits(a.bits!);
  if (bits === "fp32") throw new Error("integer bits");
  const imgs = await loadCalibImages(a.calib!, g.meta.scale, 512);
  const r = await odmInitPtq(g, imgs, {
    weightBits: bits.weightBits, actBits: bits.actBits, offsets: Number(a.offsets), report: true, runtime: rt,
    patches: Number(a.patches), patchSize: Number(a.patch), scope: a.scope as LayerScope,
  });
  console.log(`${a.model} ${a.bits} · ${r.model.config} · ${a.patches} patches of ${a.patch}² from ${a.calib}`);
  console.log("chMean/chStd: channel mismatch (offsets can remove); imgMean/imgStd: inter-image mismatch (static: cannot); relErr: Σ(x − x̂)²/Σx² of the quantizer");
  console.log(formatMismatchReport(r.report));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
