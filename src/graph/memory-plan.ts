/**
 * Arena planning for a compiled graph: every tensor gets a byte offset, decided
 * once per plan, so running a tile allocates nothing.
 *
 * Two ideas, both from inference runtimes (TFLite's arena planner, XNNPACK's
 * concat-by-slices):
 * 1. **Concat without copies.** A concat's inputs are written straight into
 *    their channel slice of the concat's buffer; consumers read them with a
 *    pixel stride equal to the concat's width. Nested concats (dense blocks:
 *    concat(concat(x, y1), y2)) alias transitively. A tensor can live in only
 *    one buffer: an input already aliased into a later concat (RDN's block
 *    outputs live in the global-fusion concat), the graph input, or a
 *    duplicate input is copied into its slice instead.
 * 2. **Buffer reuse by liveness.** Root buffers (not views) get first-fit
 *    offsets in order of decreasing size; two buffers may overlap in memory
 *    only if their live ranges [first producer step, last consumer step] are
 *    disjoint.
 */
import type { Graph } from "./ir.ts";

/** Where a tensor lives: a root buffer, plus its channel offset and the pixel stride of that buffer. */
export interface TensorPlacement {
  /** Root buffer index. */
  buffer: number;
  /** First channel of this tensor inside the root buffer. */
  channelOffset: number;
  /** Elements between consecutive pixels (the root buffer's channel count). */
  pixelStride: number;
}

export interface BufferInfo {
  /** Channel count (pixel stride) of the buffer. */
  channels: number;
  /** Spatial factor relative to the tile. */
  spatial: number;
  /** Bytes per element. */
  elemBytes: number;
  /** Live range in node order (inclusive). */
  first: number;
  last: number;
  /** Byte offset relative to the plan base (filled by assignOffsets). */
  offset: number;
  /** Byte size for the tile size the plan was made for. */
  bytes: number;
}

export interface MemoryPlan {
  placement: TensorPlacement[];
  buffers: BufferInfo[];
  /**
   * Per concat node: the channel offsets (in the concat) of the inputs that could
   * not be written in place and must be copied; empty = the concat is free.
   */
  concatCopies: Map<number, number[]>;
  /** Total arena bytes for the planned tile size. */
  totalBytes: number;
}

export interface MemoryPlanOptions {
  /** Max tile height/width (LR pixels) the plan must hold. */
  tileH: number;
  tileW: number;
  /** Bytes per element of node i's output (4 for f32, 1 for 8-bit codes…). */
  elemBytes: (nodeId: number) => number;
  /** Nodes whose output must keep its own buffer (e.g. the graph output). */
  pinned?: Set<number>;
  /** Disable concat aliasing (for tests / kernels without stride support). */
  noConcatAlias?: boolean;
  /** Whether node i's producer kernel can write into a channel slice (default: yes). */
  canWriteStrided?: (nodeId: number) => boolean;
  /**
   * Nodes with no storage: their kernel is fused into a neighbour's (a concat read by its consumer conv, a conv
   * whose store performs the following add). They get a 0-byte buffer, nothing aliases into them, and a
   * consumer of a virtual node counts as a consumer of the virtual node's inputs (they stay live until it runs).
   */
  virtual?: ReadonlySet<number>;
  /** Node → an earlier node whose (fused) step already writes it: its buffer is live from that node on. */
  liveFrom?: ReadonlyMap<number, number>;
}

export function planMemory(g: Graph, opts: MemoryPlanOptions): MemoryPlan {
  const n = g.nodes.length;
  // parent[i] = concat node whose buffer tensor i is written into (or -1).
  const parent = new Int32Array(n).fill(-1);
  const offsetInParent = new Int32Array(n);
  const concatCopies = new Map<number, number[]>();
  const consumers: number[][] = g.nodes.map(() => []);
  for (const node of g.nodes) for (const i of node.inputs) consumers[i].push(node.id);

  for (let id = n - 1; id >= 0; id--) {
    const node = g.nodes[id];
    if (node.op !== "concat") continue;
    if (opts.virtual?.has(id)) {
      concatCopies.set(id, []);
      continue;
    }
    const eb = opts.elemBytes(id);
    const copies: number[] = [];
    const seen = new Set<number>();
    let c = 0;
    for (const i of node.inputs) {
      const aliasable =
        !opts.noConcatAlias &&
        !seen.has(i) &&
        parent[i] === -1 &&
        i !== g.input &&
        !opts.pinned?.has(i) &&
        !opts.virtual?.has(i) &&
        opts.elemBytes(i) === eb &&
        g.nodes[i].spatial === node.spatial &&
        (opts.canWriteStrided?.(i) ?? true);
      seen.add(i);
      if (aliasable) {
        parent[i] = id;
        offsetInParent[i] = c;
      } else {
        copies.push(c);
      }
      c += g.nodes[i].channels;
    }
    concatCopies.set(id, copies);
  }

  // Resolve each tensor to its root buffer.
  const rootOf = new Int32Array(n);
  const chanOff = new Int32Array(n);
  for (let id = 0; id < n; id++) {
    let r = id;
    let off = 0;
    while (parent[r] !== -1) {
      off += offsetInParent[r];
      r = parent[r];
    }
    rootOf[id] = r;
    chanOff[id] = off;
  }

  // Last step that reads node id's tensor: a virtual consumer reads it when its own consumers run.
  const lastRead = (id: number): number => {
    let last = id;
    for (const c of consumers[id]) last = Math.max(last, opts.virtual?.has(c) ? lastRead(c) : c);
    return last;
  };
  const bufferIndex = new Map<number, number>();
  const buffers: BufferInfo[] = [];
  const placement: TensorPlacement[] = [];
  for (let id = 0; id < n; id++) {
    const r = rootOf[id];
    let b = bufferIndex.get(r);
    if (b === undefined) {
      const rn = g.nodes[r];
      const eb = opts.elemBytes(r);
      const hw = opts.tileH * rn.spatial * opts.tileW * rn.spatial;
      b = buffers.length;
      bufferIndex.set(r, b);
      const bytes = opts.virtual?.has(r) ? 0 : alignUp(hw * rn.channels * eb, 64);
      buffers.push({ channels: rn.channels, spatial: rn.spatial, elemBytes: eb, first: id, last: id, offset: 0, bytes });
    }
    const buf = buffers[b];
    buf.first = Math.min(buf.first, id, opts.liveFrom?.get(id) ?? id);
    buf.last = Math.max(buf.last, lastRead(id));
    if (id === g.output || opts.pinned?.has(id)) buf.last = n; // outlives the run
    placement.push({ buffer: b, channelOffset: chanOff[id], pixelStride: g.nodes[r].channels });
  }

  const totalBytes = assignOffsets(buffers);
  return { placement, buffers, concatCopies, totalBytes };
}

/** Greedy by size, first-fit among buffers whose live ranges overlap. Returns the arena size. */
export function assignOffsets(buffers: BufferInfo[]): number {
  const order = buffers.map((_, i) => i).sort((a, b) => buffers[b].bytes - buffers[a].bytes || a - b);
  const placed: number[] = [];
  let total = 0;
  for (const i of order) {
    const bi = buffers[i];
    const conflicts = placed
      .filter((j) => buffers[j].bytes > 0 && !(buffers[j].last < bi.first || bi.last < buffers[j].first))
      .map((j) => buffers[j])
      .sort((a, b) => a.offset - b.offset);
    let off = 0;
    for (const c of conflicts) {
      if (off + bi.bytes <= c.offset) break;
      off = Math.max(off, c.offset + c.bytes);
    }
    bi.offset = off;
    placed.push(i);
    total = Math.max(total, off + bi.bytes);
  }
  return total;
}

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}
