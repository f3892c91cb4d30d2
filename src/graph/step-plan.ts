/**
 * The part every compiled plan shares: a list of kernel closures over one
 * arena region, an f32 input and an f32 output buffer, size checks, and
 * disposal. FP32 and quantized compilers fill in `steps` and the pointers.
 */
import { LowbitError } from "../runtime/errors.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { ArenaRegion } from "../runtime/arena.ts";
import type { ExecutablePlan } from "../engine/upscaler.ts";
import type { Graph } from "./ir.ts";
import { computeHaloWindows, computeRowWindows, haloRows, rowWindowsSupported } from "./row-windows.ts";

/** One kernel call (or a few) for a w×h LR tile (rows: the plan's current row windows). */
export type Step = (w: number, h: number) => void;

/**
 * Swaps rows of one tensor with the strips above and below (a worker pool's halo exchange,
 * src/worker/halo.ts): sends core rows [c0, c0 + R) up and [c1 − R, c1) down, and receives the
 * neighbours' rows into [c0 − R, c0) and [c1, c1 + R). Rows are W pixels of `pixelBytes` bytes at
 * `strideBytes` intervals, from byte `ptr` of `mem`. Blocks until the neighbours' rows arrive.
 */
export interface HaloExchange {
  swap(mem: Uint8Array, ptr: number, W: number, pixelBytes: number, strideBytes: number, c0: number, c1: number, R: number): void;
}

/**
 * A step over node `id`'s row window: `body(a, n, W)` walks rows [a, a + n) of a W-pixel-wide buffer
 * (W = w·spatial, spatial = the factor of the rows the kernel walks). Without `rows` (plans that do
 * not trim) the window is every row; an empty window skips the call.
 */
export function windowed(rows: Int32Array | undefined, id: number, spatial: number, body: (a: number, n: number, W: number) => void): Step {
  if (!rows) return (w, h) => body(0, h * spatial, w * spatial);
  return (w) => {
    const a = rows[2 * id], n = rows[2 * id + 1] - a;
    if (n > 0) body(a, n, w * spatial);
  };
}

export abstract class StepPlan implements ExecutablePlan {
  readonly scale: number;
  readonly maxW: number;
  readonly maxH: number;
  /** Tile sides must be multiples of this (GraphMeta.tileAlign: models with space_to_depth). */
  readonly align: number;
  protected readonly rt: Runtime;
  protected steps: Step[] = [];
  protected inPtr = 0;
  protected outPtr = 0;
  /** The plan's memory: weights, tensor buffers, scratch (freed by dispose, in any order). */
  protected readonly region: ArenaRegion;
  /**
   * Row window of every node for the current run (row-windows.ts): node id's steps walk rows
   * [rows[2·id], rows[2·id + 1]). Subclasses create it with `useRowWindows` and read it in their steps.
   */
  protected rows = new Int32Array(0);
  private rowGraph: Graph | null = null;
  private rowTrim = false;
  private rowNeed = new Int32Array(0);
  private trimTop = 0;
  private trimBottom = 0;
  /** (w, h, top, bottom, halo) the windows were computed for; w = −1: stale. */
  private rowKey = [-1, 0, 0, 0, 0];
  private halo: HaloExchange | null = null;
  private haloR: Int32Array = new Int32Array(0);

  /** `align` > 1: maxW/maxH are rounded up to multiples of it, and every tile must be a multiple. */
  constructor(rt: Runtime, scale: number, maxW: number, maxH: number, align = 1) {
    if (!Number.isInteger(maxW) || !Number.isInteger(maxH) || maxW < 1 || maxH < 1) {
      throw new LowbitError("E_ARGUMENT", `plan size must be positive integers, got ${maxW}×${maxH}`);
    }
    this.rt = rt;
    this.scale = scale;
    this.align = align;
    this.maxW = Math.ceil(maxW / align) * align;
    this.maxH = Math.ceil(maxH / align) * align;
    this.region = new ArenaRegion(rt.arena);
  }

  get stepCount(): number {
    return this.steps.length;
  }

  protected checkSize(w: number, h: number): void {
    if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || w > this.maxW || h > this.maxH) {
      throw new LowbitError("E_SHAPE", `tile ${w}×${h} does not fit the plan (max ${this.maxW}×${this.maxH})`);
    }
    if (w % this.align !== 0 || h % this.align !== 0) {
      throw new LowbitError("E_SHAPE", `tile ${w}×${h}: this model downsamples internally (space_to_depth), tile sides must be multiples of ${this.align}`);
    }
  }

  inputView(w: number, h: number): Float32Array {
    this.checkSize(w, h);
    return this.rt.arena.f32.subarray(this.inPtr / 4, this.inPtr / 4 + w * h * 3);
  }

  outputView(w: number, h: number): Float32Array {
    this.checkSize(w, h);
    const n = w * this.scale * h * this.scale * 3;
    return this.rt.arena.f32.subarray(this.outPtr / 4, this.outPtr / 4 + n);
  }

  /**
   * Sets up `rows` for graph `g` (the graph whose node ids the steps use). Trimming is enabled
   * when every op's row dependence is known; otherwise every window is the whole region.
   */
  protected useRowWindows(g: Graph): void {
    this.rowGraph = g;
    this.rowTrim = rowWindowsSupported(g);
    this.rows = new Int32Array(2 * g.nodes.length);
    this.rowNeed = new Int32Array(2 * g.nodes.length);
    this.haloR = this.rowTrim ? haloRows(g) : new Int32Array(g.nodes.length);
    this.rowKey[0] = -1;
  }

  /**
   * The exchange step of node `id` (call right after the node's own steps): swaps its halo rows
   * when the plan runs as a strip (setHalo). null when no consumer reads across the core's edge.
   * `ptr`/`stride`: the tensor's byte offset and pixel stride in elements of `elemBytes`.
   */
  protected haloStep(id: number, ptr: number, stride: number, channels: number, elemBytes: number, spatial: number): Step | null {
    const R = this.haloR[id];
    if (!R) return null;
    return (w, h) => {
      const ex = this.halo;
      if (ex) ex.swap(this.rt.arena.u8, ptr, w * spatial, channels * elemBytes, stride * elemBytes, this.trimTop * spatial, (h - this.trimBottom) * spatial, R);
    };
  }

  /**
   * Runs the next tiles as one strip of a halo-exchanging split (null: back to normal runs): the
   * region's first `top` and last `bottom` rows are margin; every layer is computed on the core
   * only (convs: ± their radius) and the rows consumers read across the core's edges come from the
   * neighbouring strips through `ex`. Needs a trimmable graph (trimsRows).
   */
  setHalo(ex: HaloExchange | null, top = 0, bottom = 0): void {
    if (ex && !this.rowTrim) throw new LowbitError("E_UNSUPPORTED_LAYER", "this plan's graph has ops whose rows cannot be exchanged between strips");
    this.trimRows(top, bottom);
    this.halo = ex;
  }

  /** Whether `trimRows` can skip work on this plan's graph. */
  get trimsRows(): boolean {
    return this.rowTrim;
  }

  /** The row windows a w×h run with the current trim uses (a copy; inspection and tests). */
  rowWindows(w: number, h: number): Int32Array {
    this.checkSize(w, h);
    if (this.rowGraph) this.updateRows(w, h);
    return this.rows.slice();
  }

  /**
   * The next runs need the output of the region's rows [top, h − bottom) only (LR rows; the rest
   * is margin context): plans whose graph allows it compute each layer only on the rows that
   * output depends on (row-windows.ts). Needed rows are bit-identical to an untrimmed run; the
   * other output rows are undefined. Stays in force until changed; `run` resets it to (0, 0).
   */
  trimRows(top: number, bottom: number): void {
    if (!Number.isInteger(top) || !Number.isInteger(bottom) || top < 0 || bottom < 0) {
      throw new LowbitError("E_ARGUMENT", `trimmed rows must be integers ≥ 0, got ${top} and ${bottom}`);
    }
    this.trimTop = top;
    this.trimBottom = bottom;
  }

  runSteps(w: number, h: number, from: number, to: number): void {
    this.checkSize(w, h);
    if (this.rowGraph) this.updateRows(w, h);
    for (let i = from; i < to; i++) this.steps[i](w, h);
  }

  private updateRows(w: number, h: number): void {
    const key = this.rowKey;
    const top = this.rowTrim ? this.trimTop : 0, bottom = this.rowTrim ? this.trimBottom : 0, halo = this.halo ? 1 : 0;
    if (key[0] === w && key[1] === h && key[2] === top && key[3] === bottom && key[4] === halo) return;
    if (top + bottom >= h) throw new LowbitError("E_ARGUMENT", `trimming ${top} + ${bottom} rows leaves nothing of a ${h}-row region`);
    const g = this.rowGraph!;
    if (halo) computeHaloWindows(this.rows, g, h, top, bottom);
    else if (this.rowTrim) computeRowWindows(this.rows, this.rowNeed, g, h, top, bottom);
    else {
      for (const n of g.nodes) {
        const walk = n.op === "upsample_nearest" || n.op === "upsample_bilinear" || n.op === "depth_to_space" ? g.nodes[n.inputs[0]].spatial : n.spatial;
        this.rows[2 * n.id] = 0;
        this.rows[2 * n.id + 1] = h * walk;
      }
    }
    key[0] = w;
    key[1] = h;
    key[2] = top;
    key[3] = bottom;
    key[4] = halo;
  }

  /** Runs the whole plan on a w×h input (NHWC RGB in the model's range); returns a copy of the output. */
  run(input: Float32Array, w: number, h: number): Float32Array {
    this.setHalo(null);
    this.inputView(w, h).set(input.subarray(0, w * h * 3));
    this.runSteps(w, h, 0, this.steps.length);
    return this.outputView(w, h).slice();
  }

  /** Returns the plan's arena space. */
  dispose(): void {
    this.region.free();
  }
}
