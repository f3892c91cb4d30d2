/**
 * Which convs a post-training method quantizes ("layer scope").
 *
 * - "reference": the layers the method's released code quantizes, mapped onto
 *   the ISR RDN / RRDN graphs of the npm models (by their Keras layer names):
 *   - DAQ (daq.md §5): the RDB convs only (RDN `F_d_c`, RRDN `F_t_d_c`); LFF,
 *     GFF, SFENet, UPNet stay FP32. RRDN is not in DAQ's code; its dense convs
 *     are the analogue (our choice).
 *   - DFSQ (dfsq.md §6): RDN "every RDB conv, LFF, both GFF"; ESRGAN/RRDB "the
 *     5 convs of each dense block" = RRDN's 4 dense convs + its 3×3 LFF.
 *   A graph without ISR names falls back to "body" (reported in `resolved`).
 * - "body": every conv that is not head, tail or upsampler (src/quant/config.ts
 *   roles) — a name-free scope for other models.
 * - "full": every conv, lowbit's full-quantization scope (the residual stream
 *   itself stays f32 in DAQ/DFSQ: both references add the unquantized input).
 */
import type { Graph } from "../graph/ir.ts";
import { LowbitError } from "../runtime/errors.ts";
import { layerRoles } from "../quant/config.ts";

export type LayerScope = "reference" | "body" | "full";
export const LAYER_SCOPES: readonly LayerScope[] = ["reference", "body", "full"];

const DENSE = /^F_\d+_\d+(_\d+)?$/;
const LFF = /^LFF_\d+(_\d+)?$/;
const GFF = /^GFF_\d+$/;

export interface ScopeResult {
  /** Node ids of the convs to quantize. */
  ids: Set<number>;
  /** The scope actually applied ("reference" may fall back to "body"). */
  resolved: LayerScope;
}

/** Convs of `g` a method quantizes under `scope`. */
export function selectLayers(g: Graph, method: "daq" | "dfsq", scope: LayerScope = "reference"): ScopeResult {
  if (!LAYER_SCOPES.includes(scope)) throw new LowbitError("E_ARGUMENT", `unknown layer scope '${String(scope)}' (${LAYER_SCOPES.join(" | ")})`);
  const convs = g.nodes.filter((n) => n.op === "conv2d");
  if (scope === "full") return { ids: new Set(convs.map((n) => n.id)), resolved: "full" };
  if (scope === "reference") {
    const rrdn = convs.some((n) => /^F_\d+_\d+_\d+$/.test(n.name));
    const pick = convs.filter((n) => DENSE.test(n.name) || (method === "dfsq" && (LFF.test(n.name) || (!rrdn && GFF.test(n.name)))));
    if (pick.length > 0) return { ids: new Set(pick.map((n) => n.id)), resolved: "reference" };
  }
  const roles = layerRoles(g);
  return { ids: new Set(convs.filter((n) => roles.get(n.id)!.size === 0).map((n) => n.id)), resolved: "body" };
}

/**
 * Whether tensor `id` comes straight out of a ReLU (a conv with a fused ReLU/ReLU6, or a ReLU
 * node): the static form of the references' post-ReLU branch (daq.md §3 "the engine may choose
 * the branch statically"; dfsq.md §3 `postReLU`). A concat of ReLU outputs and other tensors is
 * not (the RDN dense-block concat takes the signed branch in both references).
 */
export function isPostRelu(g: Graph, id: number): boolean {
  const n = g.nodes[id];
  if (n.op !== "conv2d" && n.op !== "activation") return false;
  return n.activation.kind === "relu" || n.activation.kind === "relu6";
}

/**
 * Per channel of tensor `id`: 1 where the channel comes straight out of a ReLU (through nested
 * concats), else 0 — the per-channel form of isPostRelu (an RDN dense-block concat holds the
 * signed block input and the dense convs' ReLU outputs).
 */
export function reluChannelMask(g: Graph, id: number): Uint8Array {
  const n = g.nodes[id];
  const out = new Uint8Array(n.channels);
  if (isPostRelu(g, id)) out.fill(1);
  else if (n.op === "concat") {
    let off = 0;
    for (const i of n.inputs) {
      out.set(reluChannelMask(g, i), off);
      off += g.nodes[i].channels;
    }
  }
  return out;
}
