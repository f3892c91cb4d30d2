/**
 * Graph rewrites run before planning. Each returns a new Graph (inputs are
 * never mutated, weight arrays are copied when changed) and keeps node names,
 * so errors and plans still point at the source model's layers.
 *
 * - fuseActivations: conv → activation (sole consumer) becomes one conv with a
 *   fused activation (saves a pass over memory; the int8 kernels clamp in the
 *   requantization epilogue).
 * - subpixelTail: upsample ×s → conv becomes conv (s²·cout at LR) → depth-to-space.
 * - foldBatchNorm: an imported BatchNormalization (1×1 diagonal conv) folds into its producing conv.
 * - foldScales: y = β·conv(x) folds into the conv (W·β, b·β) when the conv has
 *   no other consumer; y = a + β·b folds into the add's coefficients. These
 *   are RRDN's MultiplyBeta layers (β = 0.2, models.md §4). Folding changes
 *   float rounding by ~1 ulp per weight, far inside the parity tolerance.
 */
import type { Graph, Node } from "./ir.ts";
import { receptiveRadius } from "./validate.ts";

function consumersOf(g: Graph): number[][] {
  const c: number[][] = g.nodes.map(() => []);
  for (const n of g.nodes) for (const i of n.inputs) c[i].push(n.id);
  return c;
}

/**
 * Rebuilds a graph without the nodes in `drop`, where each dropped node's uses
 * are redirected to `redirect.get(id)`. Node ids are renumbered densely.
 */
function compact(g: Graph, replace: Map<number, Node>, drop: Set<number>, redirect: Map<number, number>): Graph {
  const resolve = (id: number): number => {
    while (drop.has(id)) {
      const r = redirect.get(id);
      if (r === undefined) throw new Error(`internal: dropped node ${id} has no redirect`);
      id = r;
    }
    return id;
  };
  const newId = new Map<number, number>();
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    if (drop.has(n.id)) continue;
    const src = replace.get(n.id) ?? n;
    const id = nodes.length;
    newId.set(n.id, id);
    nodes.push({ ...src, id, inputs: src.inputs.map((i) => newId.get(resolve(i))!) } as Node);
  }
  return { ...g, nodes, input: newId.get(resolve(g.input))!, output: newId.get(resolve(g.output))! };
}

export function fuseActivations(g: Graph): Graph {
  const cons = consumersOf(g);
  const replace = new Map<number, Node>();
  const drop = new Set<number>();
  const redirect = new Map<number, number>();
  for (const n of g.nodes) {
    if (n.op !== "activation" || n.activation.kind === "linear") continue;
    const p = g.nodes[n.inputs[0]];
    if (p.op !== "conv2d" || p.activation.kind !== "linear" || cons[p.id].length !== 1 || p.id === g.output) continue;
    if (replace.has(p.id)) continue;
    replace.set(p.id, { ...p, activation: { ...n.activation }, name: p.name });
    drop.add(n.id);
    redirect.set(n.id, p.id);
  }
  // A linear activation node is the identity.
  for (const n of g.nodes) {
    if (n.op === "activation" && n.activation.kind === "linear" && n.id !== g.input) {
      drop.add(n.id);
      redirect.set(n.id, n.inputs[0]);
    }
  }
  return drop.size ? compact(g, replace, drop, redirect) : g;
}

export function foldScales(g: Graph): Graph {
  const cons = consumersOf(g);
  const replace = new Map<number, Node>();
  const drop = new Set<number>();
  const redirect = new Map<number, number>();
  for (const n of g.nodes) {
    if (n.op !== "scale") continue;
    const p = g.nodes[n.inputs[0]];
    const beta = n.factor;
    // (1) into the producing conv, if nothing else reads the unscaled value and the
    //     activation commutes with a positive scale (linear or relu).
    if (p.op === "conv2d" && cons[p.id].length === 1 && p.id !== g.output && !replace.has(p.id) && beta > 0 &&
        (p.activation.kind === "linear" || p.activation.kind === "relu")) {
      const w = new Float32Array(p.weights.length);
      for (let i = 0; i < w.length; i++) w[i] = p.weights[i] * beta;
      let b: Float32Array | null = null;
      if (p.bias) {
        b = new Float32Array(p.bias.length);
        for (let i = 0; i < b.length; i++) b[i] = p.bias[i] * beta;
      }
      replace.set(p.id, { ...p, weights: w, bias: b });
      drop.add(n.id);
      redirect.set(n.id, p.id);
      continue;
    }
    // (2) into every consuming add, when all consumers are adds.
    const cs = cons[n.id];
    if (cs.length > 0 && n.id !== g.output && cs.every((c) => g.nodes[c].op === "add")) {
      for (const c of cs) {
        const a = (replace.get(c) ?? g.nodes[c]) as Extract<Node, { op: "add" }>;
        const coeffs = a.coeffs ? [...a.coeffs] : a.inputs.map(() => 1);
        a.inputs.forEach((inp, k) => {
          if (inp === n.id) coeffs[k] *= beta;
        });
        replace.set(c, { ...a, coeffs, inputs: a.inputs.map((i) => (i === n.id ? p.id : i)) });
      }
      drop.add(n.id);
      redirect.set(n.id, p.id);
    }
  }
  return drop.size ? compact(g, replace, drop, redirect) : g;
}

/**
 * Sub-pixel rewrite of "nearest upsample ×s, then a k×k conv" (the RDN tail: UpSampling2D then
 * the SR conv at HR resolution) into "k'×k' conv at LR resolution with s²·cout outputs, then
 * depth-to-space ×s". Same MACs; the conv runs on s² fewer pixels with s² more output channels,
 * which the kernels block far better (a 3-output-channel conv wastes most SIMD lanes).
 *
 * Derivation [derived]: HR output (sY+i, sX+j) reads HR input (sY+i+dy, sX+j+dx), |dy|,|dx| ≤ p,
 * p = (k−1)/2, which is the LR pixel (Y + ⌊(i+dy)/s⌋, X + ⌊(j+dx)/s⌋). So phase (i, j) is an LR
 * conv whose tap (a, b) sums the HR taps with ⌊(i+dy)/s⌋ = a, ⌊(j+dx)/s⌋ = b; a ranges over
 * [−⌈p/s⌉, ⌈p/s⌉], so k' = 2⌈p/s⌉ + 1. Zero padding matches: an HR tap outside the image lands on
 * an LR pixel outside it. Output channel (i·s + j)·cout + c is phase (i, j), channel c — TF's DCR
 * order, which depth_to_space undoes. Pointwise activations apply per output either way.
 */
export function subpixelTail(g: Graph): Graph {
  const cons = consumersOf(g);
  const replace = new Map<number, Node>();
  for (const u of g.nodes) {
    if (u.op !== "upsample_nearest" || u.id === g.output || cons[u.id].length !== 1) continue;
    const c = g.nodes[cons[u.id][0]];
    if (c.op !== "conv2d") continue;
    const s = u.factor, k = c.k, p = (k - 1) >> 1, cin = c.cin, cout = c.cout;
    const q = Math.ceil(p / s), k2 = 2 * q + 1, cout2 = s * s * cout;
    const w2 = subpixelMerge(new Float32Array(k2 * k2 * cin * cout2), c.weights, k, s, cin, cout);
    let b2: Float32Array | null = null;
    if (c.bias) {
      b2 = new Float32Array(cout2);
      for (let ph = 0; ph < s * s; ph++) b2.set(c.bias, ph * cout);
    }
    // The upsample node becomes the LR conv; the conv node becomes the depth-to-space.
    replace.set(u.id, { id: u.id, name: `${c.name}/subpixel`, op: "conv2d", k: k2, cin, cout: cout2, weights: w2, bias: b2,
      activation: { ...c.activation }, inputs: [...u.inputs], channels: cout2, spatial: g.nodes[u.inputs[0]].spatial,
      subpixelOf: { weights: c.weights, k, block: s } } as Node);
    replace.set(c.id, { id: c.id, name: c.name, op: "depth_to_space", block: s, inputs: [u.id], channels: cout, spatial: c.spatial } as Node);
  }
  if (!replace.size) return g;
  const out = compact(g, replace, new Set(), new Map());
  // The LR conv's support is whole LR pixels: the structural radius can grow by < 1 (9.5 → 10 for
  // slim ×2). The exact margin ⌈r⌉ is unchanged; meta follows the structure so files stay consistent.
  return { ...out, meta: { ...out.meta, receptiveRadius: receptiveRadius(out) } };
}

/**
 * The sub-pixel kernel of a k×k HWIO kernel for upsampling factor s (see subpixelTail): `out` is the
 * k'×k'×cin×(s²·cout) kernel, `w` the k×k×cin×cout one. Generic over the element type so that
 * quantized codes merge exactly as the floats do.
 */
export function subpixelMerge<T extends Float32Array | Int8Array | Int16Array>(out: T, w: ArrayLike<number>, k: number, s: number, cin: number, cout: number): T {
  const p = (k - 1) >> 1, q = Math.ceil(p / s), k2 = 2 * q + 1, cout2 = s * s * cout;
  out.fill(0);
  for (let i = 0; i < s; i++) for (let j = 0; j < s; j++) {
    const ph = (i * s + j) * cout;
    for (let dy = -p; dy <= p; dy++) for (let dx = -p; dx <= p; dx++) {
      const a = Math.floor((i + dy) / s) + q, b = Math.floor((j + dx) / s) + q;
      const src = ((dy + p) * k + (dx + p)) * cin * cout;
      const dst = (a * k2 + b) * cin * cout2;
      for (let ci = 0; ci < cin; ci++) for (let co = 0; co < cout; co++) {
        out[dst + ci * cout2 + ph + co] += w[src + ci * cout + co];
      }
    }
  }
  return out;
}

/**
 * Folds an imported BatchNormalization (a 1×1 conv with a diagonal kernel tagged `batchNorm`,
 * io/tfjs/layers.ts) into the conv that produces its input, when that conv has a linear
 * activation, no other consumer and no N:M sparsity: with the BN's y_o = s_o·x_o + t_o,
 * W'[…, o] = s_o·W[…, o] and b'_o = s_o·b_o + t_o. The folded conv takes the BN's activation and
 * keeps the `batchNorm` tag (its pre-activation output is now the BN output N(β, γ²) — what the
 * BN filter criterion scores) and the BN node's uses. Other BNs stay 1×1 convs (correct, slower).
 */
export function foldBatchNorm(g: Graph): Graph {
  const cons = consumersOf(g);
  const replace = new Map<number, Node>();
  const drop = new Set<number>();
  const redirect = new Map<number, number>();
  for (const n of g.nodes) {
    if (n.op !== "conv2d" || !n.batchNorm || n.k !== 1 || n.cin !== n.cout) continue;
    const C = n.cout;
    let diagonal = true;
    for (let i = 0; i < C && diagonal; i++) for (let j = 0; j < C; j++) if (i !== j && n.weights[i * C + j] !== 0) {
      diagonal = false;
      break;
    }
    if (!diagonal) continue;
    const p = g.nodes[n.inputs[0]];
    if (p.op !== "conv2d" || p.activation.kind !== "linear" || cons[p.id].length !== 1 || p.id === g.output || p.sparsity || p.subpixelOf || replace.has(p.id)) continue;
    const w = new Float32Array(p.weights.length), b = new Float32Array(C);
    for (let i = 0; i < w.length; i += C) for (let o = 0; o < C; o++) w[i + o] = p.weights[i + o] * n.weights[o * C + o];
    for (let o = 0; o < C; o++) b[o] = (p.bias ? p.bias[o] : 0) * n.weights[o * C + o] + (n.bias ? n.bias[o] : 0);
    const { sourceQuant: _q, ...rest } = p;
    replace.set(p.id, { ...rest, weights: w, bias: b, activation: { ...n.activation }, batchNorm: { gamma: Float32Array.from(n.batchNorm.gamma), beta: Float32Array.from(n.batchNorm.beta) } } as Node);
    drop.add(n.id);
    redirect.set(n.id, p.id);
  }
  if (!drop.size) return g;
  // The folded conv takes the BN's place in the order (its consumers come after the BN).
  return compact(g, replace, drop, redirect);
}

/** The standard pipeline before planning a plan. */
export function optimizeGraph(g: Graph): Graph {
  return subpixelTail(fuseActivations(foldScales(foldBatchNorm(g))));
}
