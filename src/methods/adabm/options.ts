/**
 * AdaBM from `--method-options` key=value strings (CLI `--method adabm`, bench configs such as
 * `w4a4-adabm-steps=0`): scope, path, patches, patch, seed, batch, image (image-to-bit on/off),
 * layer (layer-to-bit on/off), bac, and the fine-tuning schedule: steps per epoch (0 = AdaBM-calib),
 * epochs, ftpatch (LR side of the fine-tuning patches), mlr (measure learning-rate scale).
 */
import type { Graph } from "../../graph/ir.ts";
import type { ImageLike } from "../../engine/image.ts";
import type { Runtime } from "../../runtime/runtime.ts";
import type { DynamicPath } from "../../graph/compile-dynamic.ts";
import type { LayerScope } from "../scope.ts";
import type { DynamicQuantizedModel } from "../dynamic/model.ts";
import { boolOption, checkOptionKeys, numberOption } from "../options.ts";
import { adabmCalibrate, type AdabmOptions } from "./quantize.ts";
import { adabmFinetune } from "./finetune.ts";

export const ADABM_OPTION_KEYS = ["scope", "path", "patches", "patch", "seed", "batch", "image", "layer", "bac", "steps", "epochs", "ftpatch", "mlr", "alr", "wlr"] as const;

export async function adabmFromOptions(graph: Graph, images: readonly ImageLike[], bits: { w: number; a: number }, mo: Record<string, string>,
  ctx: { runtime?: Runtime; signal?: AbortSignal; onProgress?: (f: number) => void } = {}): Promise<DynamicQuantizedModel> {
  checkOptionKeys(mo, ADABM_OPTION_KEYS, "AdaBM");
  const o: AdabmOptions = {
    weightBits: bits.w, actBits: bits.a, scope: mo.scope as LayerScope | undefined, path: mo.path as DynamicPath | undefined,
    patches: numberOption(mo, "patches"), patchSize: numberOption(mo, "patch"), seed: numberOption(mo, "seed"), batch: numberOption(mo, "batch"),
    imageAdaptive: boolOption(mo, "image"), layerAdaptive: boolOption(mo, "layer"), bac: boolOption(mo, "bac"), ...ctx,
  };
  const steps = numberOption(mo, "steps");
  if (steps === 0) return (await adabmCalibrate(graph, images, o)).model;
  return (await adabmFinetune(graph, images, { ...o, stepsPerEpoch: steps, epochs: numberOption(mo, "epochs"), finetunePatch: numberOption(mo, "ftpatch"), measureLrScale: numberOption(mo, "mlr"), rangeLr: numberOption(mo, "alr"), weightClipLr: numberOption(mo, "wlr") })).model;
}
