/**
 * A small fluent builder for graphs written in code (tests, synthetic models, hand-made nets).
 * It produces exactly the IR the TF.js importer produces and runs the same shape inference at
 * every step, so a mistake (wrong cin, mismatched add) throws where it is made.
 *
 *   const b = new GraphBuilder({ seed: 1 });
 *   const x = b.input();
 *   const f = b.conv2d(x, 16, 3, { activation: "relu" });
 *   const y = b.conv2d(b.add(b.conv2d(f, 16, 3), f), 12, 3);
 *   const g = b.build(b.depthToSpace(y, 2));   // ×2, 3 channels
 *
 * Unspecified conv weights are drawn from a seeded uniform ±√(3/fan_in) (variance-preserving),
 * biases from ±0.1, so random models have activations of sensible magnitude at any depth.
 */
import { LowbitError } from "../runtime/errors.ts";
import type { Activation, ActivationKind, Graph, GraphMeta, Node, NodeOp } from "./ir.ts";
import { inferNodeShape, receptiveRadius, validateGraph, type ValidateOptions } from "./validate.ts";
import { Mulberry32 } from "../util/rng.ts";

/** A built tensor: the producing node's id. */
export type TensorRef = number;

export interface Conv2dOptions {
  /** HWIO [k, k, cin, cout]. Default: seeded random. */
  weights?: Float32Array;
  /** [cout], or null for no bias. Default: seeded random. */
  bias?: Float32Array | null;
  activation?: ActivationKind | Activation;
  name?: string;
}

function act(a: ActivationKind | Activation | undefined): Activation {
  if (a === undefined) return { kind: "linear" };
  return typeof a === "string" ? { kind: a } : { ...a };
}

export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly names = new Set<string>();
  private inputId = -1;
  private readonly rng: Mulberry32;

  constructor(opts: { seed?: number } = {}) {
    this.rng = new Mulberry32(opts.seed ?? 1);
  }

  private rand(): number {
    return this.rng.next();
  }

  private uniform(n: number, a: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (2 * this.rand() - 1) * a;
    return out;
  }

  private push(op: NodeOp, inputs: TensorRef[], name: string | undefined, channels?: number): TensorRef {
    for (const p of inputs) {
      if (!Number.isInteger(p) || p < 0 || p >= this.nodes.length) {
        throw new LowbitError("E_ARGUMENT", `unknown tensor ${p} (use values returned by this builder)`);
      }
    }
    const id = this.nodes.length;
    const nm = name ?? `${op.op}_${id}`;
    if (this.names.has(nm)) throw new LowbitError("E_ARGUMENT", `duplicate layer name '${nm}'`);
    const proto = { ...op, name: nm, channels } as NodeOp & { name: string; channels?: number };
    const shape = inferNodeShape(proto, inputs.map((p) => this.nodes[p]));
    this.nodes.push({ ...op, id, name: nm, inputs: [...inputs], ...shape } as Node);
    this.names.add(nm);
    return id;
  }

  /** Channel count of a built tensor. */
  channels(t: TensorRef): number {
    return this.nodes[t].channels;
  }

  /** Spatial factor of a built tensor. */
  spatial(t: TensorRef): number {
    return this.nodes[t].spatial;
  }

  input(channels = 3, name = "input"): TensorRef {
    if (this.inputId >= 0) throw new LowbitError("E_ARGUMENT", "a graph has exactly one input");
    this.inputId = this.push({ op: "input" }, [], name, channels);
    return this.inputId;
  }

  conv2d(x: TensorRef, cout: number, k: number, opts: Conv2dOptions = {}): TensorRef {
    const cin = this.nodes[x]?.channels;
    const n = k * k * (cin ?? 0) * cout;
    const weights = opts.weights ?? this.uniform(Number.isInteger(n) && n > 0 ? n : 0, Math.sqrt(3 / Math.max(1, k * k * (cin ?? 1))));
    const bias = opts.bias === undefined ? this.uniform(Number.isInteger(cout) && cout > 0 ? cout : 0, 0.1) : opts.bias;
    return this.push({ op: "conv2d", k, cin, cout, weights, bias, activation: act(opts.activation) }, [x], opts.name);
  }

  activation(x: TensorRef, a: ActivationKind | Activation, name?: string): TensorRef {
    return this.push({ op: "activation", activation: act(a) }, [x], name);
  }

  relu(x: TensorRef, name?: string): TensorRef {
    return this.activation(x, "relu", name);
  }

  add(...xs: TensorRef[]): TensorRef {
    return this.push({ op: "add" }, xs, undefined);
  }

  concat(...xs: TensorRef[]): TensorRef {
    return this.push({ op: "concat" }, xs, undefined);
  }

  scale(x: TensorRef, factor: number, name?: string): TensorRef {
    return this.push({ op: "scale", factor }, [x], name);
  }

  upsampleNearest(x: TensorRef, factor: number, name?: string): TensorRef {
    return this.push({ op: "upsample_nearest", factor }, [x], name);
  }

  depthToSpace(x: TensorRef, block: number, name?: string): TensorRef {
    return this.push({ op: "depth_to_space", block }, [x], name);
  }

  /**
   * Finishes the graph with `output` as its result. Meta defaults: name "built", ranges 0–255,
   * scale and receptive radius from the graph. The builder can be used again only for a new
   * graph sharing the same nodes (nodes are copied, weights are shared).
   */
  build(output: TensorRef, meta: Partial<GraphMeta> = {}, opts: ValidateOptions = {}): Graph {
    if (this.inputId < 0) throw new LowbitError("E_ARGUMENT", "graph has no input (call input() first)");
    if (!Number.isInteger(output) || output < 0 || output >= this.nodes.length) {
      throw new LowbitError("E_ARGUMENT", `unknown output tensor ${output}`);
    }
    const g: Graph = {
      nodes: this.nodes.map((n) => ({ ...n, inputs: [...n.inputs] })),
      input: this.inputId,
      output,
      meta: {
        name: meta.name ?? "built",
        scale: this.nodes[output].spatial,
        inputRange: meta.inputRange ?? [0, 255],
        outputRange: meta.outputRange ?? meta.inputRange ?? [0, 255],
        ...(meta.arch !== undefined ? { arch: meta.arch } : {}),
      },
    };
    validateGraph(g, opts);
    g.meta.receptiveRadius = meta.receptiveRadius ?? receptiveRadius(g);
    return g;
  }
}
