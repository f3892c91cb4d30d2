/**
 * TF.js layers-model `model.json` topology parsing: which layers exist, their class and config,
 * and which layer outputs feed them.
 *
 * Formats handled (all checked against real files):
 * - Keras 2.x functional (`class_name` "Functional" from Keras 2.10 / tfjs-converter 1.2.6, "Model"
 *   from Keras 2.3–2.4 / converter 2.0.1): `inbound_nodes: [[[layer, nodeIdx, tensorIdx, kwargs], …]]`.
 * - Keras 3 functional: `inbound_nodes: [{ args: [...keras tensors...], kwargs }]` where each
 *   keras tensor carries `config.keras_history = [layer, nodeIdx, tensorIdx]`.
 * - Sequential (a plain chain; the input comes from the first layer's batch_input_shape).
 * `input_layers` / `output_layers` may be a list of refs or a single ref.
 */
import { LowbitError } from "../../runtime/errors.ts";
import { get, isObject, type Json, type JsonObject } from "./json.ts";

export interface LayerRef {
  layer: string;
  nodeIndex: number;
  tensorIndex: number;
}

export interface LayerDesc {
  /** Position in config.layers (stable order for node numbering). */
  index: number;
  name: string;
  className: string;
  config: JsonObject;
  /** Producers of this layer's (single) call, in argument order. */
  inbound: LayerRef[];
}

export interface ModelTopology {
  format?: string;
  generatedBy?: string;
  convertedBy?: string;
  modelName?: string;
  layers: LayerDesc[];
  inputs: LayerRef[];
  outputs: LayerRef[];
  /** Sequential models: the input shape taken from the first layer. */
  sequentialInputShape?: (number | null)[];
}

function fmt(m: string): LowbitError {
  return new LowbitError("E_MODEL_FORMAT", m);
}

function parseRef(r: Json, where: string): LayerRef {
  // Keras 2: [name, nodeIndex, tensorIndex(, kwargs)]
  if (Array.isArray(r) && typeof r[0] === "string") {
    const [layer, nodeIndex = 0, tensorIndex = 0] = r as [string, number?, number?];
    if (!Number.isInteger(nodeIndex) || !Number.isInteger(tensorIndex)) throw fmt(`${where}: bad reference ${JSON.stringify(r)}`);
    return { layer, nodeIndex: nodeIndex as number, tensorIndex: tensorIndex as number };
  }
  // Keras 3: { class_name: "__keras_tensor__", config: { keras_history: [name, node, tensor] } }
  if (isObject(r)) {
    const cfg = get(r, "config");
    const h = isObject(cfg) ? get(cfg, "keras_history") : undefined;
    if (Array.isArray(h)) return parseRef(h, where);
  }
  throw fmt(`${where}: cannot read layer reference ${JSON.stringify(r)?.slice(0, 200)}`);
}

/** Collects every keras tensor reference inside Keras 3 call args (nested lists allowed). */
function collectKeras3Refs(a: Json, where: string, out: LayerRef[]): void {
  if (Array.isArray(a)) for (const x of a) collectKeras3Refs(x, where, out);
  else if (isObject(a) && get(a, "class_name") === "__keras_tensor__") out.push(parseRef(a, where));
}

function parseInbound(l: JsonObject, name: string): LayerRef[] {
  const nodes = get(l, "inbound_nodes");
  if (nodes === undefined || nodes === null) return [];
  if (!Array.isArray(nodes)) throw fmt(`layer '${name}': inbound_nodes is not a list`);
  if (nodes.length === 0) return [];
  if (nodes.length > 1) {
    throw new LowbitError(
      "E_UNSUPPORTED_LAYER",
      `layer '${name}' is called ${nodes.length} times (shared layers are not supported)`,
    );
  }
  const node = nodes[0];
  const where = `layer '${name}' inbound_nodes`;
  if (Array.isArray(node)) return node.map((r) => parseRef(r, where));
  if (isObject(node)) {
    const refs: LayerRef[] = [];
    collectKeras3Refs(get(node, "args") ?? [], where, refs);
    return refs;
  }
  throw fmt(`${where}: unrecognized node format`);
}

function parseRefList(v: Json | undefined, what: string): LayerRef[] {
  if (!Array.isArray(v) || v.length === 0) throw fmt(`model config has no ${what}`);
  if (typeof v[0] === "string") return [parseRef(v, what)];
  return v.map((r) => parseRef(r, what));
}

function str(o: JsonObject, k: string): string | undefined {
  const v = get(o, k);
  return typeof v === "string" ? v : undefined;
}

/** Parses the `modelTopology` of a layers-model artifact (the whole model.json object). */
export function parseTopology(doc: JsonObject): ModelTopology {
  const format = str(doc, "format");
  const topo = get(doc, "modelTopology");
  if (format === "graph-model" || (isObject(topo) && Array.isArray(get(topo, "node")))) {
    throw new LowbitError(
      "E_UNSUPPORTED_LAYER",
      "this is a TF.js graph model (converted SavedModel/frozen graph); lowbit imports Keras layers models (format 'layers-model')",
    );
  }
  if (!isObject(topo)) throw fmt("model.json has no modelTopology object");
  const mc = get(topo, "model_config") ?? topo;
  if (!isObject(mc)) throw fmt("modelTopology.model_config is not an object");
  const cls = str(mc, "class_name");
  const cfg = get(mc, "config");
  const base = { format, generatedBy: str(doc, "generatedBy"), convertedBy: str(doc, "convertedBy") };

  const readLayers = (list: Json | undefined): { l: JsonObject; name: string; className: string; config: JsonObject }[] => {
    if (!Array.isArray(list)) throw fmt("model config has no layers list");
    return list.map((l, i) => {
      if (!isObject(l)) throw fmt(`layers[${i}] is not an object`);
      const className = str(l, "class_name");
      const config = get(l, "config");
      if (!className) throw fmt(`layers[${i}] has no class_name`);
      if (!isObject(config)) throw fmt(`layers[${i}] (${className}) has no config object`);
      const name = str(l, "name") ?? str(config, "name");
      if (!name) throw fmt(`layers[${i}] (${className}) has no name`);
      return { l, name, className, config };
    });
  };

  if (cls === "Sequential") {
    const raw = readLayers(Array.isArray(cfg) ? cfg : isObject(cfg) ? get(cfg, "layers") : undefined);
    if (raw.length === 0) throw fmt("Sequential model has no layers");
    const layers: LayerDesc[] = [];
    let prev: string | null = null;
    let shape: (number | null)[] | undefined;
    const inName = "input";
    raw.forEach((r, i) => {
      if (r.className === "InputLayer") {
        if (i !== 0) throw fmt(`Sequential model: InputLayer '${r.name}' is not first`);
        layers.push({ index: i, name: r.name, className: r.className, config: r.config, inbound: [] });
        prev = r.name;
        return;
      }
      if (prev === null) {
        const s = get(r.config, "batch_input_shape") ?? get(r.config, "batch_shape");
        if (!Array.isArray(s)) throw fmt(`Sequential model: first layer '${r.name}' declares no batch_input_shape`);
        shape = s as (number | null)[];
        prev = inName;
      }
      layers.push({ index: i, name: r.name, className: r.className, config: r.config, inbound: [{ layer: prev, nodeIndex: 0, tensorIndex: 0 }] });
      prev = r.name;
    });
    return {
      ...base,
      modelName: isObject(cfg) ? str(cfg, "name") : undefined,
      layers,
      inputs: [{ layer: shape ? inName : layers[0].name, nodeIndex: 0, tensorIndex: 0 }],
      outputs: [{ layer: prev!, nodeIndex: 0, tensorIndex: 0 }],
      ...(shape ? { sequentialInputShape: shape } : {}),
    };
  }

  if (cls !== "Functional" && cls !== "Model") {
    throw new LowbitError("E_UNSUPPORTED_LAYER", `model class '${cls}' is not supported (Functional, Model or Sequential)`);
  }
  if (!isObject(cfg)) throw fmt("functional model has no config object");
  const layers = readLayers(get(cfg, "layers")).map(
    (r, i): LayerDesc => ({ index: i, name: r.name, className: r.className, config: r.config, inbound: parseInbound(r.l, r.name) }),
  );
  return {
    ...base,
    modelName: str(cfg, "name"),
    layers,
    inputs: parseRefList(get(cfg, "input_layers"), "input_layers"),
    outputs: parseRefList(get(cfg, "output_layers"), "output_layers"),
  };
}
