export { CadyqActQuantizer } from "./act-quantizer.ts";
export { buildCadyqModel, cadyqLayers, cadyqQuantizeWeights, quantizeCadyq, quantizeCadyqDetailed, CADYQ_DEFAULT_CANDIDATES, CADYQ_DEFAULT_LAMBDA } from "./quantize.ts";
export type { CadyqOptions, CadyqResult, CadyqLayerParams, CadyqBuildOptions } from "./quantize.ts";
export { trainCadyq, CadyqTrainLayer, fakeQuantWeights8 } from "./train.ts";
export type { CadyqTrainOptions, CadyqTrainResult } from "./train.ts";
export { pamsHalfRange, pamsStep, pamsLevels, pamsQuantize, unbiasedStd, selectorLogits, argmaxFirst, softmax, checkCandidates, initialSelector } from "./selector.ts";
export { cadyqFromOptions, CADYQ_OPTION_KEYS } from "./options.ts";
