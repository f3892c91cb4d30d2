/**
 * ODM-init PTQ from `--method-options` key=value strings (CLI `--method odm`, bench configs such as
 * `w4a4-odm-offsets=0.25`): scope, path, patches, patch, seed, nudge, offsets (fraction of layers),
 * kind (both | shift | scale), fold, wp (weight percentile), low, high (activation percentiles).
 */
import type { Graph } from "../../graph/ir.ts";
import type { ImageLike } from "../../engine/image.ts";
import type { Runtime } from "../../runtime/runtime.ts";
import { LowbitError } from "../../runtime/errors.ts";
import type { DynamicPath } from "../../graph/compile-dynamic.ts";
import type { LayerScope } from "../scope.ts";
import type { DynamicQuantizedModel } from "../dynamic/model.ts";
import { quantizeOdmInit } from "./quantize.ts";
import { boolOption as bool, checkOptionKeys, numberOption as num } from "../options.ts";
import type { OffsetKind } from "./offsets.ts";

export const ODM_OPTION_KEYS = ["scope", "path", "patches", "patch", "seed", "nudge", "offsets", "kind", "fold", "wp", "low", "high"] as const;

export async function odmInitFromOptions(graph: Graph, images: readonly ImageLike[], bits: { w: number; a: number }, mo: Record<string, string>,
  ctx: { runtime?: Runtime; signal?: AbortSignal; onProgress?: (f: number) => void } = {}): Promise<DynamicQuantizedModel> {
  checkOptionKeys(mo, ODM_OPTION_KEYS, "ODM");
  const kind = mo.kind;
  if (kind !== undefined && kind !== "both" && kind !== "shift" && kind !== "scale") throw new LowbitError("E_ARGUMENT", `ODM offset kind must be both | shift | scale, got '${kind}'`);
  return quantizeOdmInit(graph, images, {
    weightBits: bits.w, actBits: bits.a, scope: mo.scope as LayerScope | undefined, path: mo.path as DynamicPath | undefined,
    patches: num(mo, "patches"), patchSize: num(mo, "patch"), seed: num(mo, "seed"), nudge: bool(mo, "nudge"), offsets: num(mo, "offsets"),
    offsetKind: kind as OffsetKind | undefined, fold: bool(mo, "fold"), weightPercentile: num(mo, "wp"), low: num(mo, "low"), high: num(mo, "high"),
    ...ctx,
  });
}
