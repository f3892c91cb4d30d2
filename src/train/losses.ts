/**
 * Losses of the training engine. Each evaluates on the trainer's last forward and returns the loss
 * value with the backward seeds (∂L/∂tensor in the trainer's arena), so several losses combine by
 * concatenating their seeds — or run as separate backward passes into separate GradBuffers.
 *
 * - l1Loss: mean |ŷ − y| over the HR output, in units of the model's output range span (a 0–255
 *   model and a 0–1 model report the same number for the same image error); the target is HR
 *   ground truth or the FP32 teacher's output (no ground truth needed).
 * - featureLoss: mean (f − f_T)² at a node (feature distillation, FP32 teacher at the same node),
 *   in model units.
 * Kernels: f32_l1_loss_nhwc (grad sign(d)·k, sign(0) = 0) and f32_mse_loss_nhwc (grad d·k).
 */
import { check } from "../runtime/errors.ts";
import type { Seed, SeedTarget, TensorRef, Trainer } from "./trainer.ts";
import type { TrainExports } from "./kernels.ts";

export interface LossResult {
  loss: number;
  seeds: Seed[];
}

function asTensor(tr: Trainer, key: string, t: Float32Array | TensorRef, like: TensorRef): { ptr: number; stride: number } {
  if (t instanceof Float32Array) {
    const n = like.pixels * like.channels;
    check(t.length === n, "E_SHAPE", `${key}: target has ${t.length} values, the tensor ${like.w}×${like.h}×${like.channels} = ${n}`);
    for (let i = 0; i < n; i++) check(Number.isFinite(t[i]), "E_RANGE", () => `${key}: target value ${i} is ${t[i]}`);
    const p = tr.buffer(`${key}:target`, 4 * n);
    tr.rt.arena.f32.set(t, p >> 2);
    return { ptr: p, stride: like.channels };
  }
  check(t.pixels === like.pixels && t.channels === like.channels, "E_SHAPE",
    `${key}: target tensor ${t.w}×${t.h}×${t.channels} does not match ${like.w}×${like.h}×${like.channels}`);
  return { ptr: t.ptr, stride: t.stride };
}

/**
 * L1 between the output and `target` (dense HR RGB in the output range, or an arena tensor such
 * as a teacher's output), divided by the output range span. `weight` scales loss and seed.
 */
export function l1Loss(tr: Trainer, target: Float32Array | TensorRef, o: { weight?: number; key?: string } = {}): LossResult {
  const out = tr.output();
  const key = o.key ?? "l1";
  const t = asTensor(tr, key, target, out);
  const [lo, hi] = tr.graph.meta.outputRange;
  const span = hi - lo > 0 ? hi - lo : 1;
  const N = out.pixels * out.channels;
  const g = tr.buffer(`${key}:grad`, 4 * N);
  const k = tr.rt.kernels<TrainExports>();
  const sum = k.f32_l1_loss_nhwc(out.ptr, out.stride, t.ptr, t.stride, g, out.channels, out.pixels, out.channels, 1 / (N * span));
  const weight = o.weight ?? 1;
  return { loss: (weight * sum) / (N * span), seeds: [{ at: tr.graph.output, grad: { ptr: g, stride: out.channels }, weight }] };
}

/** Mean squared difference between the student's tensor `at` and `target` (e.g. the teacher's same tensor). */
export function featureLoss(tr: Trainer, at: SeedTarget, target: Float32Array | TensorRef, o: { weight?: number; key?: string } = {}): LossResult {
  const f = tr.tensor(at);
  const key = o.key ?? `feat:${typeof at === "object" ? `q:${at.quantized}` : String(at)}`;
  const t = asTensor(tr, key, target, f);
  const N = f.pixels * f.channels;
  const g = tr.buffer(`${key}:grad`, 4 * N);
  const k = tr.rt.kernels<TrainExports>();
  const sum = k.f32_mse_loss_nhwc(f.ptr, f.stride, t.ptr, t.stride, g, f.channels, f.pixels, f.channels, 2 / N);
  const weight = o.weight ?? 1;
  return { loss: (weight * sum) / N, seeds: [{ at, grad: { ptr: g, stride: f.channels }, weight }] };
}

/**
 * ODM v2's quantization mismatch of one activation-quantized conv: M = ‖X − X̂‖₂ over the sample,
 * X the conv's input tensor and X̂ what the conv actually sees (fake-quantized, offsets undone).
 * Seeds: ∂M/∂X = (X − X̂)/M at X's node and −(X − X̂)/M at the quantized input, so the backward
 * reaches the range [l, u] (LSQ terms), the offsets and, through X, every upstream parameter
 * (inside the range the straight-through terms cancel: X̂ moves with X). Computed in the arena
 * (two passes of the MSE kernel: Σd², then d/M). M = 0 gives no seeds. `weight` scales both.
 */
export function mismatchLoss(tr: Trainer, layer: string, o: { weight?: number } = {}): LossResult {
  const l = tr.tg.byName.get(layer);
  check(l?.quant && l.quant.actLevels > 0, "E_ARGUMENT", `mismatchLoss: '${layer}' is not a conv with an activation quantizer`);
  const xNode = tr.graph.nodes[l.id].inputs[0];
  const x = tr.tensor(xNode), xq = tr.tensor({ quantized: layer });
  const k = tr.rt.kernels<TrainExports>();
  const sum = k.f32_mse_loss_nhwc(x.ptr, x.stride, xq.ptr, xq.stride, 0, 0, x.pixels, x.channels, 0);
  const norm = Math.sqrt(sum);
  const weight = o.weight ?? 1;
  if (!(norm > 0)) return { loss: 0, seeds: [] };
  const g = tr.buffer(`mismatch:${layer}:grad`, 4 * x.pixels * x.channels);
  k.f32_mse_loss_nhwc(x.ptr, x.stride, xq.ptr, xq.stride, g, x.channels, x.pixels, x.channels, 1 / norm);
  const grad = { ptr: g, stride: x.channels };
  const seeds: Seed[] = [{ at: { quantized: layer }, grad, weight: -weight }];
  if (xNode !== tr.graph.input) seeds.unshift({ at: xNode, grad, weight });
  return { loss: weight * norm, seeds };
}
