/**
 * Graph rewrites run before planning. Each returns a new Graph (inputs are
 * never mutated, weight arrays are copied when changed) and keeps node names,
 * so errors and plans still point at the source model's layers.
 *
 * - fuseActivations: conv → activation (sole consumer) becomes one conv with a
 *   fused activation (saves a pass over memory; the int8 kernels clamp in the
 *   requantization epilogue).
 * - foldScales: y = β·conv(x) folds into the conv (W·β, b·β) when the conv has
 *   no other consumer; y = a + β·b folds into the add's coefficients. These
 *   are RRDN's MultiplyBeta layers (β = 0.2, models.md §4). Folding changes
 *   float rounding by ~1 ulp per weight, far inside the parity tolerance.
 */
import type { Graph, Node } from "./ir.ts";

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

/** The standard pipeline before planning an FP32 plan. */
export function optimizeGraph(g: Graph): Graph {
  return fuseActivations(foldScales(g));
}
