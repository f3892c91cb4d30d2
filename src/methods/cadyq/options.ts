/**
 * CADyQ from `--method-options` key=value strings (CLI `--method cadyq`): cand (candidate bits joined
 * by ':'), scope, path, steps, batch, patch, lambda (λ_b), lrw / lra / lrs (Adam learning rates of the
 * weights — 0 keeps them frozen —, the clips α and the selectors), seed. `--bits w8aB`: weights are
 * 8-bit (the method's), B must be the largest candidate.
 */
import type { Graph } from "../../graph/ir.ts";
import type { ImageLike } from "../../engine/image.ts";
import type { Runtime } from "../../runtime/runtime.ts";
import { LowbitError } from "../../runtime/errors.ts";
import type { DynamicPath } from "../../graph/compile-dynamic.ts";
import type { LayerScope } from "../scope.ts";
import type { DynamicQuantizedModel } from "../dynamic/model.ts";
import { quantizeCadyq, CADYQ_DEFAULT_CANDIDATES } from "./quantize.ts";

export const CADYQ_OPTION_KEYS = ["cand", "scope", "path", "steps", "batch", "patch", "lambda", "lrw", "lra", "lrs", "seed"] as const;

function num(o: Record<string, string>, k: string): number | undefined {
  if (o[k] === undefined) return undefined;
  const v = Number(o[k]);
  if (!Number.isFinite(v)) throw new LowbitError("E_ARGUMENT", `--method-options ${k}=${o[k]}: not a number`);
  return v;
}

export async function cadyqFromOptions(graph: Graph, images: readonly ImageLike[], bits: { w: number; a: number }, mo: Record<string, string>,
  ctx: { runtime?: Runtime; signal?: AbortSignal; onProgress?: (f: number) => void } = {}): Promise<DynamicQuantizedModel> {
  for (const k of Object.keys(mo)) if (!(CADYQ_OPTION_KEYS as readonly string[]).includes(k)) throw new LowbitError("E_ARGUMENT", `'${k}' is not a CADyQ option (${CADYQ_OPTION_KEYS.join(", ")})`);
  if (bits.w !== 8) throw new LowbitError("E_BITS", `CADyQ keeps 8-bit weights (cadyq.md §1): use --bits w8a${bits.a}`);
  const candidates = mo.cand !== undefined ? mo.cand.split(":").map((v) => {
    const b = Number(v);
    if (!Number.isInteger(b)) throw new LowbitError("E_BITS", `--method-options cand=${mo.cand}: '${v}' is not an integer bit-width`);
    return b;
  }) : [...CADYQ_DEFAULT_CANDIDATES];
  if (Math.max(...candidates) !== bits.a) {
    throw new LowbitError("E_BITS", `--bits w8a${bits.a}: the activation bits name the largest CADyQ candidate, here ${Math.max(...candidates)} (cand=${candidates.join(":")})`);
  }
  return quantizeCadyq(graph, images, {
    candidates, scope: mo.scope as LayerScope | undefined, path: mo.path as DynamicPath | undefined, steps: num(mo, "steps"), batch: num(mo, "batch"),
    patch: num(mo, "patch"), lambdaBit: num(mo, "lambda"), lrWeights: num(mo, "lrw"), lrAlpha: num(mo, "lra"), lrSelector: num(mo, "lrs"), seed: num(mo, "seed"),
    ...ctx,
  });
}
