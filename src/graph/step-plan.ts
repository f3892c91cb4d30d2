/**
 * The part every compiled plan shares: a list of kernel closures over one
 * arena region, an f32 input and an f32 output buffer, size checks, and
 * disposal. FP32 and quantized compilers fill in `steps` and the pointers.
 */
import { LowbitError } from "../runtime/errors.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { ArenaRegion } from "../runtime/arena.ts";
import type { ExecutablePlan } from "../engine/upscaler.ts";

/** One kernel call (or a few) for a w×h LR tile. */
export type Step = (w: number, h: number) => void;

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

  runSteps(w: number, h: number, from: number, to: number): void {
    this.checkSize(w, h);
    for (let i = from; i < to; i++) this.steps[i](w, h);
  }

  /** Runs the whole plan on a w×h input (NHWC RGB in the model's range); returns a copy of the output. */
  run(input: Float32Array, w: number, h: number): Float32Array {
    this.inputView(w, h).set(input.subarray(0, w * h * 3));
    this.runSteps(w, h, 0, this.steps.length);
    return this.outputView(w, h).slice();
  }

  /** Returns the plan's arena space. */
  dispose(): void {
    this.region.free();
  }
}
