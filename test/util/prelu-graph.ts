import { GraphBuilder } from "../../src/graph/builder.ts";
import type { Graph, Node } from "../../src/graph/ir.ts";
import { validateGraph } from "../../src/graph/validate.ts";

/**
 * A small ×2 net with both prelu flavours (GraphBuilder has no prelu method, so the placeholders
 * are swapped in after building): conv 3→8 → per-channel prelu (negative, zero, >1 slopes) →
 * conv 8→8 → uniform prelu 0.1 (a lowered leaky ReLU) → conv 8→12 → depth_to_space 2.
 * `borderPad` sets meta.borderPad when given.
 */
export function preluGraph(opts: { seed?: number; borderPad?: number; inputRange?: [number, number] } = {}): Graph {
  const b = new GraphBuilder({ seed: opts.seed ?? 7 });
  const x = b.input();
  const c1 = b.conv2d(x, 8, 3, { name: "conv1" });
  const p1 = b.activation(c1, "linear", "prelu1");
  const c2 = b.conv2d(p1, 8, 3, { name: "conv2" });
  const p2 = b.activation(c2, "linear", "prelu2");
  const c3 = b.conv2d(p2, 12, 3, { name: "conv3" });
  const y = b.depthToSpace(c3, 2, "d2s");
  const g = b.build(y, { name: "prelu-test-x2", inputRange: opts.inputRange ?? [0, 1] });
  const slopes: Record<string, Float32Array> = {
    prelu1: Float32Array.from([0.25, -0.5, 0, 1.5, 0.01, 0.3, -0.1, 0.75]),
    prelu2: new Float32Array(8).fill(0.1),
  };
  g.nodes = g.nodes.map((n) => (n.name in slopes ? ({ op: "prelu", slopes: slopes[n.name], id: n.id, name: n.name, inputs: n.inputs, channels: n.channels, spatial: n.spatial } as Node) : n));
  if (opts.borderPad !== undefined) g.meta.borderPad = opts.borderPad;
  validateGraph(g);
  return g;
}
