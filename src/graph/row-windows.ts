/**
 * Row windows: compute each layer only on the rows the rest of the network needs.
 *
 * A tile region is its core plus a margin of context rows (tiling/tiles.ts). Run naively, every
 * layer computes the whole region, although the output is kept only for the core: after a 3×3
 * conv the rows one step further out are already unneeded. Going backwards from the output,
 * the rows node n must get exactly right ("need") grow by each conv's radius r = (k − 1)/2:
 *
 *   need(output)  = core rows (× the output's spatial factor)
 *   conv k:       computes need ± r (its input rows, same 'same'-padded kernel), so the input's need ∪= need ± r
 *   pointwise:    computes need; each input's need ∪= need   (add, activation, scale, prelu, concat, (de)quantize)
 *   upsample ×f:  computes input rows ⌊a/f⌋ … ⌈b/f⌉ (bilinear: one more on each side); input's need ∪= those
 *
 * all clipped to the region. A conv run on rows [a, b) of its buffers (pointers moved down a rows,
 * height b − a) zero-pads at a − 1 and b: the first and last r rows it writes are wrong, and are
 * exactly the rows its consumers do not need. At the region's own edges the window is not
 * shrunk (a = 0 / b = H), so the zero padding there is the network's own, as in an untrimmed run.
 * Every needed row therefore gets the same value as in the untrimmed run, bit for bit — only
 * rows that no output depends on are skipped. Each tile becomes a trapezoid: the margin costs about
 * half as much. esrgan-medium ×2, 256² cut in two 128-row strips with its 18-row exact margin: one
 * strip took 1/1.75 of the whole image's time untrimmed and 1/1.86 trimmed (FP32 and W8A8 alike, quiet machine;
 * the `ceiling` lines of `npm run bench:pool`) — the bound on what two workers can reach.
 *
 * Only rows are trimmed: an NHWC row is contiguous, so a window of rows is a pointer offset and a
 * height. Graphs with an op outside the list above (space_to_depth, shift, squeeze_excite: global
 * or misaligned row maps) are not trimmed.
 */
import type { Graph, Node } from "./ir.ts";

/** Ops whose row dependence this module knows (the q8 compiler's domain conversions included). */
const TRIMMABLE = new Set<string>([
  "input", "conv2d", "activation", "add", "concat", "scale", "prelu",
  "upsample_nearest", "upsample_bilinear", "depth_to_space", "quantize", "dequantize",
]);

/** Whether every node of `g` (ids in topological order) has a known row dependence. */
export function rowWindowsSupported(g: Graph): boolean {
  return g.nodes.every((n, i) => TRIMMABLE.has(n.op) && n.id === i && n.inputs.every((x) => x < i));
}

/**
 * out[2·id], out[2·id + 1] = the rows [a, b) node `id`'s steps compute for an h-row region whose
 * first `top` and last `bottom` LR rows are context only. Rows are in the coordinates the node's
 * kernel walks: its output rows, except upsample / depth_to_space nodes, which walk their input
 * rows. An empty window is [0, 0). `need` is scratch of 2·nodes entries.
 */
export function computeRowWindows(out: Int32Array, need: Int32Array, g: Graph, h: number, top: number, bottom: number): Int32Array {
  const N = g.nodes.length;
  for (let i = 0; i < N; i++) {
    need[2 * i] = 0x7fffffff;
    need[2 * i + 1] = -1;
  }
  const so = g.nodes[g.output].spatial;
  need[2 * g.output] = top * so;
  need[2 * g.output + 1] = (h - bottom) * so;
  const grow = (id: number, a: number, b: number) => {
    if (a < need[2 * id]) need[2 * id] = a;
    if (b > need[2 * id + 1]) need[2 * id + 1] = b;
  };
  for (let i = N - 1; i >= 0; i--) {
    const n = g.nodes[i] as Node | (Omit<Node, "op"> & { op: "quantize" | "dequantize" });
    let a = need[2 * i], b = need[2 * i + 1];
    if (b <= a) {
      out[2 * i] = 0;
      out[2 * i + 1] = 0;
      continue;
    }
    if (n.op === "conv2d") {
      const r = ((n as Extract<Node, { op: "conv2d" }>).k - 1) >> 1;
      const H = h * n.spatial;
      a = Math.max(0, a - r);
      b = Math.min(H, b + r);
    } else if (n.op === "upsample_nearest" || n.op === "upsample_bilinear" || n.op === "depth_to_space") {
      const f = n.op === "depth_to_space" ? (n as Extract<Node, { op: "depth_to_space" }>).block : (n as { factor: number }).factor;
      const Hi = h * g.nodes[n.inputs[0]].spatial;
      const e = n.op === "upsample_bilinear" ? 1 : 0;
      a = Math.max(0, Math.floor(a / f) - e);
      b = Math.min(Hi, Math.ceil(b / f) + e);
    }
    out[2 * i] = a;
    out[2 * i + 1] = b;
    for (const x of n.inputs) grow(x, a, b);
  }
  return out;
}

// ── Halo exchange ────────────────────────────────────────────────────────────────────────────
// Workers that split an image into horizontal strips can skip the margin altogether: each computes
// only its core rows of every layer and, after each node, swaps with its neighbours the few rows
// their consumers read across the boundary (src/worker/halo.ts). A conv of radius r then runs on
// core ± r of its input (its first and last r output rows are wrong, and get overwritten by the
// neighbour's exact rows when a consumer needs them); everything else runs on the core.

type AnyNode = Node | (Omit<Node, "op"> & { op: "quantize" | "dequantize" });

/** How many rows beyond the core a consumer reads of its input (in the input's rows). */
function readsBeyond(n: AnyNode): number {
  if (n.op === "conv2d") return ((n as Extract<Node, { op: "conv2d" }>).k - 1) >> 1;
  return n.op === "upsample_bilinear" ? 1 : 0;
}

/**
 * out[id] = rows node id's output must hold beyond its core, on each side, for its consumers: the
 * rows a halo exchange swaps after the node (0: no exchange). The input node is 0 (every worker
 * has the image rows of its whole region).
 */
export function haloRows(g: Graph): Int32Array {
  const out = new Int32Array(g.nodes.length);
  for (const n of g.nodes as AnyNode[]) {
    const r = readsBeyond(n);
    for (const x of n.inputs) if (x !== g.input && r > out[x]) out[x] = r;
  }
  return out;
}

/**
 * Row windows of a strip that exchanges halos: core = region rows [top, h − bottom) (LR). Convs walk
 * core ± r, bilinear upsamplers their input core ± 1, the rest the core (upsamplers: their input's).
 */
export function computeHaloWindows(out: Int32Array, g: Graph, h: number, top: number, bottom: number): Int32Array {
  for (const n of g.nodes as AnyNode[]) {
    const resample = n.op === "upsample_nearest" || n.op === "upsample_bilinear" || n.op === "depth_to_space";
    const s = resample ? g.nodes[n.inputs[0]].spatial : n.spatial;
    const e = n.op === "input" ? 0 : resample ? readsBeyond(n) : n.op === "conv2d" ? readsBeyond(n) : 0;
    out[2 * n.id] = n.op === "input" ? 0 : Math.max(0, top * s - e);
    out[2 * n.id + 1] = n.op === "input" ? h * s : Math.min(h * s, (h - bottom) * s + e);
  }
  return out;
}

/**
 * Bytes one LR column of the largest halo takes (elements of `elemBytes`): the slot a strip needs
 * per column of image width. 0 when nothing is exchanged.
 */
export function haloBytesPerColumn(g: Graph, elemBytes = 4): number {
  const R = haloRows(g);
  let m = 0;
  for (const n of g.nodes) m = Math.max(m, R[n.id] * n.spatial * n.channels * elemBytes);
  return m;
}

/** LR rows of region a strip needs beyond its core so every halo fits its buffers: max ⌈R/spatial⌉. */
export function haloMarginLR(g: Graph): number {
  const R = haloRows(g);
  let m = 0;
  for (const n of g.nodes as AnyNode[]) {
    m = Math.max(m, Math.ceil(R[n.id] / n.spatial));
    if (n.op !== "input") for (const x of n.inputs) if (x === g.input) m = Math.max(m, readsBeyond(n)); // image rows the first layers read
  }
  return m;
}
