/**
 * Per-layer bit configuration: what the user asks for ("w4a8", keep head/tail in FP32, one
 * layer at 8 bits) resolved against a graph into bits per conv layer.
 *
 * A "layer" here is a conv2d node (the only op with weights). Its `actBits` are the bits of the
 * activation the conv consumes (its input), `weightBits` those of its kernel. "fp32" means the
 * conv runs in float (its input is dequantized before it, if needed).
 *
 * `perLayer` keys are conv layer names or roles ("head", "tail", "upsampler": e.g. keep them at
 * w8a8 in a w4a8 model — measured: esrgan-medium ×2 W4A8 fidelity 30.9 → 47.1 dB on messi5).
 * Precedence, most specific first: `perLayer[name]` > `keepFp32` (roles or names) > `perLayer[role]` > the
 * defaults `weightBits` / `actBits`.
 */
import type { Graph, Node } from "../graph/ir.ts";
import { LowbitError } from "../runtime/errors.ts";
import { MAX_ACT_BITS, MAX_WEIGHT_BITS, MIN_ACT_BITS, MIN_WEIGHT_BITS } from "./params.ts";
import type { RangeMethod } from "./range.ts";

export interface BitPair {
  weightBits: number;
  actBits: number;
}

/** Bits of one layer, or "fp32" to leave it in float. */
export type LayerBits = BitPair | "fp32";

/**
 * SR-net roles a user can address in `keepFp32`:
 * - `head`: a conv with no conv among its ancestors (the first conv, fed by the image);
 * - `tail`: a conv on a path to the output with no conv after it (the last conv);
 * - `upsampler`: a conv running at spatial factor > 1, or whose output feeds a depth_to_space /
 *   upsample_nearest directly or through activation / scale nodes only (the sub-pixel conv).
 */
export type LayerRole = "head" | "tail" | "upsampler";
export const LAYER_ROLES: readonly LayerRole[] = ["head", "tail", "upsampler"];

export const RANGE_METHODS: readonly RangeMethod[] = ["minmax", "percentile", "mse"];

function checkBitsValue(v: unknown, lo: number, hi: number, what: string): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new LowbitError("E_ARGUMENT", `${what} must be an integer, got ${String(v)}`);
  if (v < lo || v > hi) throw new LowbitError("E_BITS", `${what} must be in ${lo}..${hi}, got ${v}`);
  return v;
}

/**
 * Parses a bit spec: "w<W>a<A>" or "a<A>w<W>" (case-insensitive, e.g. "w8a8", "W4A8", "a4w4"),
 * or "fp32" / "f32" / "float32" / "float". Bits outside 2..8 → E_BITS; anything else →
 * E_ARGUMENT.
 */
export function parseBits(spec: string): LayerBits {
  if (typeof spec !== "string") throw new LowbitError("E_ARGUMENT", `bit spec must be a string, got ${typeof spec}`);
  const s = spec.trim().toLowerCase();
  if (s === "fp32" || s === "f32" || s === "float32" || s === "float") return "fp32";
  const m = /^(?:w(\d{1,3})a(\d{1,3})|a(\d{1,3})w(\d{1,3}))$/.exec(s);
  if (!m) {
    throw new LowbitError("E_ARGUMENT", `bit spec '${spec}' not understood (expected e.g. "w8a8", "w4a8", "w4a4", "w2a2" or "fp32")`);
  }
  const w = Number(m[1] ?? m[4]);
  const a = Number(m[2] ?? m[3]);
  return {
    weightBits: checkBitsValue(w, MIN_WEIGHT_BITS, MAX_WEIGHT_BITS, `weight bits in '${spec}'`),
    actBits: checkBitsValue(a, MIN_ACT_BITS, MAX_ACT_BITS, `activation bits in '${spec}'`),
  };
}

/** Formats bits back to the canonical spec ("w4a8", "fp32"). */
export function formatBits(b: LayerBits): string {
  return b === "fp32" ? "fp32" : `w${b.weightBits}a${b.actBits}`;
}

/** A per-layer override: a spec string, "fp32", or some of the two bit-widths. */
export type LayerOverride = string | Partial<BitPair>;

export interface QuantConfig {
  weightBits: number;
  actBits: number;
  /** Activation range method. */
  method: RangeMethod;
  /** Upper percentile for method "percentile" (lower = 100 − upper). Default 99.99. */
  percentile?: number;
  /** Weight clipping: per-channel max|w| or MSE-optimal. Default "minmax". */
  weightMethod?: "minmax" | "mse";
  /** Overrides by conv layer name. */
  perLayer?: Record<string, LayerOverride>;
  /** Roles ("head", "tail", "upsampler") or conv layer names to keep in FP32. */
  keepFp32?: string[];
  /**
   * Empirical bias correction (default true): each quantized conv's bias absorbs the expected
   * output shift of its weight rounding, −ΔW·E[x], with E[x] the calibration mean of each input
   * channel (Nagel et al., "Data-Free Quantization…", ICCV 2019, §4.2, empirical variant).
   */
  biasCorrection?: boolean;
  /**
   * Concat inputs that would otherwise be rounded twice (read only by the concat, or a concat
   * nested in a concat) share the concat's grid (default true; see joinConcatGrids in
   * quantize-model.ts).
   */
  joinGrids?: boolean;
  /**
   * The ranges were trained rather than chosen by `method` (e.g. "fqsr": quantization-aware training,
   * src/methods/fqsr). Informational: the file and the config string say so.
   */
  trained?: "fqsr";
  /**
   * Bits of the residual stream (default 8): with 16, every integer add whose readers are all integer ops stores
   * its sum as 16-bit codes; the next add reads them as they are, and a conv (or any other op) reads an 8-bit copy
   * on the tensor's own calibrated grid (quantize-model.ts, "Residual stream").
   */
  residualBits?: 8 | 16;
}

export type QuantConfigInput = Partial<Omit<QuantConfig, "weightBits" | "actBits">> & {
  /** A spec string ("w4a8") for both defaults; weightBits/actBits override it. */
  bits?: string;
  weightBits?: number;
  actBits?: number;
};

/**
 * Builds a validated QuantConfig from a spec string ("w4a8") or an options object. Defaults:
 * method "minmax", weightMethod "minmax", bits w8a8 when neither `bits` nor the widths are given.
 * A top-level "fp32" is E_ARGUMENT (nothing to quantize — skip quantization instead).
 */
export function quantConfig(input: string | QuantConfigInput): QuantConfig {
  const o: QuantConfigInput = typeof input === "string" ? { bits: input } : input;
  if (o === null || typeof o !== "object") throw new LowbitError("E_ARGUMENT", "quant config must be a spec string or an object");
  let base: BitPair = { weightBits: 8, actBits: 8 };
  if (o.bits !== undefined) {
    const b = parseBits(o.bits);
    if (b === "fp32") throw new LowbitError("E_ARGUMENT", `quant config '${o.bits}' quantizes nothing; run the float plan instead`);
    base = b;
  }
  const weightBits = checkBitsValue(o.weightBits ?? base.weightBits, MIN_WEIGHT_BITS, MAX_WEIGHT_BITS, "weightBits");
  const actBits = checkBitsValue(o.actBits ?? base.actBits, MIN_ACT_BITS, MAX_ACT_BITS, "actBits");
  const method = o.method ?? "minmax";
  if (!RANGE_METHODS.includes(method)) throw new LowbitError("E_ARGUMENT", `unknown range method '${method}' (minmax | percentile | mse)`);
  if (o.percentile !== undefined && !(typeof o.percentile === "number" && o.percentile > 50 && o.percentile <= 100)) {
    throw new LowbitError("E_ARGUMENT", `percentile must be in (50, 100], got ${o.percentile}`);
  }
  const weightMethod = o.weightMethod ?? "minmax";
  if (weightMethod !== "minmax" && weightMethod !== "mse") throw new LowbitError("E_ARGUMENT", `unknown weight method '${weightMethod}' (minmax | mse)`);
  const perLayer: Record<string, LayerOverride> = {};
  if (o.perLayer !== undefined) {
    if (o.perLayer === null || typeof o.perLayer !== "object") throw new LowbitError("E_ARGUMENT", "perLayer must be an object");
    for (const [name, v] of Object.entries(o.perLayer)) {
      resolveOverride(v, { weightBits, actBits }, name); // validate now
      perLayer[name] = typeof v === "string" ? v : { ...v };
    }
  }
  const keepFp32 = o.keepFp32 ?? [];
  if (!Array.isArray(keepFp32) || keepFp32.some((k) => typeof k !== "string")) {
    throw new LowbitError("E_ARGUMENT", "keepFp32 must be an array of role or layer names");
  }
  if (o.biasCorrection !== undefined && typeof o.biasCorrection !== "boolean") throw new LowbitError("E_ARGUMENT", "biasCorrection must be a boolean");
  if (o.joinGrids !== undefined && typeof o.joinGrids !== "boolean") throw new LowbitError("E_ARGUMENT", "joinGrids must be a boolean");
  if (o.residualBits !== undefined && o.residualBits !== 8 && o.residualBits !== 16) {
    throw new LowbitError("E_BITS", `residualBits must be 8 or 16, got ${String(o.residualBits)}`);
  }
  if (o.trained !== undefined && o.trained !== "fqsr") throw new LowbitError("E_ARGUMENT", `unknown training method '${String(o.trained)}' (fqsr)`);
  const cfg: QuantConfig = {
    weightBits, actBits, method, weightMethod, perLayer, keepFp32: [...keepFp32], biasCorrection: o.biasCorrection ?? true, joinGrids: o.joinGrids ?? true,
    ...(o.trained ? { trained: o.trained } : {}),
    ...(o.residualBits === 16 ? { residualBits: 16 as const } : {}),
  };
  if (o.percentile !== undefined) cfg.percentile = o.percentile;
  return cfg;
}

function resolveOverride(v: LayerOverride, base: BitPair, name: string): LayerBits {
  if (typeof v === "string") {
    try {
      return parseBits(v);
    } catch (e) {
      if (e instanceof LowbitError) throw new LowbitError(e.code, `perLayer '${name}': ${e.message}`, { cause: e });
      throw e;
    }
  }
  if (v === null || typeof v !== "object") throw new LowbitError("E_ARGUMENT", `perLayer '${name}': expected a bit spec or {weightBits?, actBits?}`);
  for (const k of Object.keys(v)) {
    if (k !== "weightBits" && k !== "actBits") throw new LowbitError("E_ARGUMENT", `perLayer '${name}': unknown key '${k}'`);
  }
  return {
    weightBits: checkBitsValue(v.weightBits ?? base.weightBits, MIN_WEIGHT_BITS, MAX_WEIGHT_BITS, `perLayer '${name}' weightBits`),
    actBits: checkBitsValue(v.actBits ?? base.actBits, MIN_ACT_BITS, MAX_ACT_BITS, `perLayer '${name}' actBits`),
  };
}

/** Roles of every conv node, by node id (convs without a role map to an empty set). */
export function layerRoles(g: Graph): Map<number, Set<LayerRole>> {
  const n = g.nodes.length;
  const isConv = (id: number) => g.nodes[id].op === "conv2d";
  // convAbove[i]: some strict ancestor of i is a conv.
  const convAbove = new Uint8Array(n);
  for (const node of g.nodes) for (const p of node.inputs) if (isConv(p) || convAbove[p]) convAbove[node.id] = 1;
  // live[i]: i reaches the output; convBelow[i]: some strict descendant on a live path is a conv.
  const users: number[][] = g.nodes.map(() => []);
  for (const node of g.nodes) for (const p of node.inputs) users[p].push(node.id);
  const live = new Uint8Array(n);
  const convBelow = new Uint8Array(n);
  live[g.output] = 1;
  for (let i = n - 1; i >= 0; i--) {
    for (const u of users[i]) {
      if (!live[u]) continue;
      live[i] = 1;
      if (isConv(u) || convBelow[u]) convBelow[i] = 1;
    }
  }
  const roles = new Map<number, Set<LayerRole>>();
  for (const node of g.nodes) if (node.op === "conv2d") roles.set(node.id, new Set());
  for (const node of g.nodes) {
    if (node.op !== "conv2d") continue;
    const r = roles.get(node.id)!;
    if (!convAbove[node.id]) r.add("head");
    if (live[node.id] && !convBelow[node.id]) r.add("tail");
    if (node.spatial > 1) r.add("upsampler");
  }
  // Walk back from each upsampling op through activation / scale nodes to the producing conv.
  for (const node of g.nodes) {
    if (node.op !== "depth_to_space" && node.op !== "upsample_nearest") continue;
    let cur: Node = g.nodes[node.inputs[0]];
    while (cur.op === "activation" || cur.op === "scale") cur = g.nodes[cur.inputs[0]];
    if (cur.op === "conv2d") roles.get(cur.id)!.add("upsampler");
  }
  return roles;
}

/** One conv layer with its roles and resolved bits. */
export interface ResolvedLayer {
  id: number;
  name: string;
  roles: LayerRole[];
  bits: LayerBits;
}

/**
 * Resolves cfg against g: one entry per conv node, in node order. perLayer keys and keepFp32
 * names must name conv layers of g (E_ARGUMENT otherwise, listing the convs); keepFp32 entries
 * equal to a role name ("head", "tail", "upsampler") always mean the role.
 */
export function resolveLayers(cfg: QuantConfig, g: Graph): ResolvedLayer[] {
  const convs = g.nodes.filter((n) => n.op === "conv2d");
  const byName = new Map(convs.map((n) => [n.name, n]));
  const known = () => [...byName.keys()].slice(0, 20).join(", ") + (byName.size > 20 ? ", …" : "");
  const roles = layerRoles(g);
  const keepRoles = new Set<LayerRole>();
  const keepNames = new Set<string>();
  for (const k of cfg.keepFp32 ?? []) {
    if ((LAYER_ROLES as readonly string[]).includes(k)) keepRoles.add(k as LayerRole);
    else if (byName.has(k)) keepNames.add(k);
    else throw new LowbitError("E_ARGUMENT", `keepFp32: '${k}' is neither a role (${LAYER_ROLES.join(", ")}) nor a conv layer (${known()})`);
  }
  const per = cfg.perLayer ?? {};
  const isRole = (k: string) => (LAYER_ROLES as readonly string[]).includes(k);
  for (const name of Object.keys(per)) {
    if (!byName.has(name) && !isRole(name)) {
      throw new LowbitError("E_ARGUMENT", `perLayer: '${name}' is neither a role (${LAYER_ROLES.join(", ")}) nor a conv layer of '${g.meta.name}' (${known()})`);
    }
  }
  const base: BitPair = { weightBits: cfg.weightBits, actBits: cfg.actBits };
  return convs.map((n) => {
    const r = [...roles.get(n.id)!];
    let bits: LayerBits;
    const role = r.find((x) => Object.prototype.hasOwnProperty.call(per, x) && !byName.has(x));
    if (Object.prototype.hasOwnProperty.call(per, n.name)) bits = resolveOverride(per[n.name], base, n.name);
    else if (keepNames.has(n.name) || r.some((x) => keepRoles.has(x))) bits = "fp32";
    else if (role) bits = resolveOverride(per[role], base, role);
    else bits = { ...base };
    return { id: n.id, name: n.name, roles: r, bits };
  });
}

/** Bits of one conv layer by name (E_ARGUMENT if g has no such conv). */
export function layerBits(cfg: QuantConfig, g: Graph, name: string): LayerBits {
  const l = resolveLayers(cfg, g).find((x) => x.name === name);
  if (!l) throw new LowbitError("E_ARGUMENT", `'${name}' is not a conv layer of '${g.meta.name}'`);
  return l.bits;
}
