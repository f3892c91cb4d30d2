/**
 * TF.js layers-model import: `loadTfjsModel(source)` → lowbit graph IR.
 *
 * Pipeline: read artifacts (file / URL / memory) → sanitize JSON → parse manifest → check byte
 * counts and decode weights (float32, uint8/uint16 affine, float16; bit-identical to tfjs) →
 * parse topology → convert layers in topological order with shape inference → validate.
 */
import type { Graph } from "../../graph/ir.ts";
import { topologyToGraph } from "./layers.ts";
import { parseTopology } from "./model-json.ts";
import { readTfjsArtifacts, type ReadOptions, type TfjsArtifacts, type TfjsModelSource } from "./source.ts";
import { decodeGroups } from "./weights.ts";

export interface LoadTfjsOptions extends ReadOptions {
  /** meta.name (default: the Keras model name). */
  name?: string;
}

/** Converts already-read artifacts (sync). */
export function tfjsArtifactsToGraph(a: TfjsArtifacts, opts: { name?: string } = {}): Graph {
  const topology = parseTopology(a.doc);
  const tensors = decodeGroups(a.groups, a.shards);
  return topologyToGraph(topology, tensors, opts);
}

/**
 * Loads a TF.js layers model into a validated graph. `source`: a path to model.json (or to its
 * folder), an http(s)/file URL, or `{ modelJson, weights }`. meta gets the model name, scale
 * and receptive radius; ranges default to 0–255 (use `loadModel` for the bundled models'
 * declared ranges).
 */
export async function loadTfjsModel(source: TfjsModelSource, opts: LoadTfjsOptions = {}): Promise<Graph> {
  const a = await readTfjsArtifacts(source, opts);
  return tfjsArtifactsToGraph(a, opts);
}

export { readTfjsArtifacts, checkShardPath } from "./source.ts";
export type { TfjsModelSource, TfjsModelBuffers, TfjsArtifacts, ReadOptions, BufferLike } from "./source.ts";
export { parseManifest, decodeGroups, decodeTensor, float16ToNumber, affineZeroPoint } from "./weights.ts";
export type { WeightGroup, WeightSpec, DecodedTensor, QuantDtype } from "./weights.ts";
export { parseTopology } from "./model-json.ts";
export type { ModelTopology, LayerDesc, LayerRef } from "./model-json.ts";
export { topologyToGraph, MULTIPLY_BETA, SUPPORTED_KERAS_ACTIVATIONS } from "./layers.ts";
export { parseJson, sanitizeJson } from "./json.ts";
