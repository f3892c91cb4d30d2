/**
 * AdaBM's bit-mapping modules as one API object (adabm.md §1): the image-to-bit thresholds and the
 * per-layer offsets Δb_layer of a quantized model — inspect them, ask which bits an image would get,
 * serialize them (JSON), and apply them to another AdaBM model of the same network (e.g. a mapping
 * learned at W4 reused at W8, or hand-edited thresholds). The .lowbit file stores the same data.
 */
import { LowbitError, check } from "../../runtime/errors.ts";
import { DynamicQuantizedModel, type AdabmActSpec, type DynamicLayer } from "../dynamic/model.ts";
import { actQuantizerFactory } from "../dynamic/factory.ts";
import { imageBitDelta, type ImageBitThresholds } from "../../adaptive/context.ts";
import { imageComplexity } from "../../adaptive/gradient-feature.ts";
import { adabmBits } from "./act-quantizer.ts";

export interface AdabmLayerMapping {
  name: string;
  /** Δb_layer ∈ {−1, 0, +1}. */
  delta: number;
  /** Follows Δb_img (false: fixed at b_base, or a W8A8 layer). */
  imageAdaptive: boolean;
  baseBits: number;
}

export class AdabmBitMapping {
  readonly image: ImageBitThresholds | null;
  readonly layers: readonly AdabmLayerMapping[];

  constructor(image: ImageBitThresholds | null, layers: readonly AdabmLayerMapping[]) {
    if (image) check(Number.isFinite(image.lower) && Number.isFinite(image.upper) && image.upper >= image.lower, "E_RANGE", `image thresholds [${image.lower}, ${image.upper}] are not finite with lower ≤ upper`);
    for (const l of layers) check(l.delta === -1 || l.delta === 0 || l.delta === 1, "E_ARGUMENT", `layer '${l.name}': Δb_layer must be −1, 0 or +1, got ${l.delta}`);
    this.image = image ? { ...image } : null;
    this.layers = layers.map((l) => ({ ...l }));
  }

  /** The mapping of an AdaBM model. */
  static of(model: DynamicQuantizedModel): AdabmBitMapping {
    check(model.info.method === "adabm", "E_ARGUMENT", `a bit mapping needs an AdaBM model, got ${model.info.method}`);
    const layers: AdabmLayerMapping[] = [];
    for (const l of model.layers.values()) {
      const a = l.act as AdabmActSpec;
      layers.push({ name: l.name, delta: a.layerDelta, imageAdaptive: a.imageAdaptive, baseBits: a.baseBits });
    }
    return new AdabmBitMapping(model.imageBits, layers);
  }

  static fromJSON(j: unknown): AdabmBitMapping {
    const o = j as { image?: ImageBitThresholds | null; layers?: AdabmLayerMapping[] };
    check(typeof o === "object" && o !== null && Array.isArray(o.layers), "E_ARGUMENT", "bit mapping JSON needs { image, layers: [...] }");
    return new AdabmBitMapping(o.image ?? null, o.layers!);
  }

  toJSON(): { image: ImageBitThresholds | null; layers: AdabmLayerMapping[] } {
    return { image: this.image ? { ...this.image } : null, layers: this.layers.map((l) => ({ ...l })) };
  }

  /** Δb_img for the gradient feature g (0 without thresholds). */
  imageDelta(g: number): number {
    return this.image ? imageBitDelta(g, this.image) : 0;
  }

  /** Activation bits per layer for an 8-bit RGB(A) image (or patch) seen as one tile. */
  bitsFor(img: { data: ArrayLike<number>; width: number; height: number; channels?: number }): Map<string, number> {
    const d = this.imageDelta(imageComplexity(img));
    return new Map(this.layers.map((l) => [l.name, adabmBits(l.baseBits, l.imageAdaptive ? d : 0, l.delta)]));
  }

  /** A copy of `model` with this mapping's thresholds and layer offsets (layers matched by name). */
  apply(model: DynamicQuantizedModel): DynamicQuantizedModel {
    check(model.info.method === "adabm", "E_ARGUMENT", `a bit mapping applies to AdaBM models, got ${model.info.method}`);
    const byName = new Map(this.layers.map((l) => [l.name, l]));
    const layers = new Map<number, DynamicLayer>();
    for (const [id, l] of model.layers) {
      const m = byName.get(l.name);
      if (!m) throw new LowbitError("E_ARGUMENT", `bit mapping has no layer '${l.name}'`);
      const a = l.act as AdabmActSpec;
      const act: AdabmActSpec = { ...a, layerDelta: a.imageAdaptive ? m.delta : 0 };
      const n = model.graph.nodes[id];
      if (n.op !== "conv2d") throw new LowbitError("E_ARGUMENT", `node ${id} is not a conv`);
      layers.set(id, { ...l, act, createQuantizer: actQuantizerFactory(act, n.cin) });
    }
    return new DynamicQuantizedModel(model.graph, layers, { ...model.info, options: { ...model.info.options } }, model.path, this.image);
  }
}
