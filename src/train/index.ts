/**
 * The training engine: fake-quantized training graphs, reverse-mode gradients in WASM, Adam,
 * losses, finetune().
 *
 *   // The loop: LR (+ HR) images, W4A4 on the body convs, 500 steps of batch 4 at 48×48.
 *   const r = await finetune(graph, { lr, hr }, { quant: { weightBits: 4, actBits: 4, layers: "body" } });
 *   r.state;   // per layer: float weights/bias, act [l, u], weight clip f·γ, offsets
 *
 *   // The step-level API (several backward passes per forward, per-tensor combination):
 *   const tr = new Trainer(rt, buildTrainGraph(graph, spec), { maxW: 48, maxH: 48 });
 *   tr.calibrateActRanges(samples);               // P1/P99 of the FP32 activations
 *   const gR = tr.createGrads(), gM = tr.createGrads();
 *   tr.forward(x, 48, 48);
 *   tr.backward(l1Loss(tr, hr).seeds, gR);        // ∂L_R
 *   tr.backward([{ at: "F_0", grad }], gM);        // ∂(regularizer), seeded at a tensor
 *   const a = tr.gradients(gR), b = tr.gradients(gM);   // by parameter name
 *   tr.step(combine(a, b));                        // Adam (groups, schedule), constraints, repack
 */
export { buildTrainGraph, weightScaleOf, paramName, PARAM_KINDS } from "./graph.ts";
export type { TrainGraph, TrainQuantSpec, TrainQuantLayer, TrainConvLayer, ParamKind, TensorQuantSpec, TrainTensorQuant } from "./graph.ts";
export { Trainer, GradBuffers } from "./trainer.ts";
export type { TensorRef, Seed, SeedTarget, TrainerOptions, ActQuantHook } from "./trainer.ts";
export { Adam } from "./adam.ts";
export type { AdamOptions, Param, ParamGroup } from "./adam.ts";
export { l1Loss, featureLoss, mismatchLoss } from "./losses.ts";
export type { LossResult } from "./losses.ts";
export { PatchSampler, checkTrainData } from "./data.ts";
export type { TrainData, Sample, SamplerOptions } from "./data.ts";
export { trainState, applyState } from "./state.ts";
export type { TrainState, TrainLayerState } from "./state.ts";
export { finetune, loadState } from "./finetune.ts";
export type { FinetuneOptions, FinetuneResult, FinetuneProgress, FinetuneLosses, FinetuneStepContext } from "./finetune.ts";
export { percentile, fakeQuantWeightsOdd, fakeQuantWeightsOddBackward, oddGridCodes } from "./quant-math.ts";
