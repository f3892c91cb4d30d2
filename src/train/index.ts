/** The training engine: fake-quantized training graphs, reverse-mode gradients in WASM, Adam, losses, finetune(). */
export { buildTrainGraph, weightScaleOf, paramName, PARAM_KINDS } from "./graph.ts";
export type { TrainGraph, TrainQuantSpec, TrainQuantLayer, TrainConvLayer, ParamKind } from "./graph.ts";
export { Trainer, GradBuffers } from "./trainer.ts";
export type { TensorRef, Seed, SeedTarget, TrainerOptions } from "./trainer.ts";
export { Adam } from "./adam.ts";
export type { AdamOptions, Param, ParamGroup } from "./adam.ts";
export { l1Loss, featureLoss } from "./losses.ts";
export type { LossResult } from "./losses.ts";
export { PatchSampler, checkTrainData } from "./data.ts";
export type { TrainData, Sample, SamplerOptions } from "./data.ts";
export { trainState, applyState } from "./state.ts";
export type { TrainState, TrainLayerState } from "./state.ts";
export { finetune, loadState } from "./finetune.ts";
export type { FinetuneOptions, FinetuneResult, FinetuneProgress, FinetuneLosses, FinetuneStepContext } from "./finetune.ts";
export { percentile, fakeQuantWeightsOdd, fakeQuantWeightsOddBackward, oddGridCodes } from "./quant-math.ts";
