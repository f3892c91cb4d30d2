/**
 * lowbit — image super-resolution at int8/int4 in WebAssembly SIMD.
 *
 *   import { createUpscaler } from "lowbit";
 *   const up = await createUpscaler("esrgan-slim-x4");
 *   const out = await up.upscale({ data, width, height });   // RGB or RGBA, 8-bit
 *
 * Node-only helpers (image files, eval-set reader) live in the CLI, not here,
 * so this entry stays usable in browsers and bundlers.
 */
export { init, createRuntime, runtime, backendInfo, Runtime, relaxedSelfTest } from "./runtime/runtime.ts";
export type { Backend, BackendInfo, InitOptions, WasmSource } from "./runtime/runtime.ts";
export { LowbitError } from "./runtime/errors.ts";
export type { LowbitErrorCode } from "./runtime/errors.ts";
export { Arena } from "./runtime/arena.ts";
export {
  DEFAULT_LIMITS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_MODEL_BYTES, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MEMORY_BUDGET,
} from "./runtime/limits.ts";

export { createUpscaler, Upscaler, fp32Model, defaultMargin } from "./engine/upscaler-api.ts";
export type { CompilableModel, UpscalerOptions, RunOptions } from "./engine/upscaler-api.ts";
export type { ExecutablePlan, UpscaleOptions, UpscaleProgress } from "./engine/upscaler.ts";
export type { ImageLike, RgbImage } from "./engine/image.ts";
export type { UpscaledImage } from "./engine/upscaler.ts";

export type * from "./graph/ir.ts";
export { GraphBuilder } from "./graph/builder.ts";
export { validateGraph, receptiveRadius } from "./graph/validate.ts";
export { optimizeGraph, fuseActivations, foldScales } from "./graph/passes.ts";
export { F32Plan } from "./graph/compile-f32.ts";
export { planMemory } from "./graph/memory-plan.ts";
export { planTiles } from "./tiling/tiles.ts";
export type { Tile, TileGrid } from "./tiling/tiles.ts";

export { loadModel, listModels, getModelInfo, resolveModelPath, listNcnnModels, getNcnnModelInfo, resolveNcnnModelPath } from "./models/registry.ts";
export type { ModelInfo, LoadModelOptions, NcnnModelInfo } from "./models/registry.ts";
export { loadTfjsModel } from "./io/tfjs/index.ts";
export type { TfjsModelSource, TfjsModelBuffers } from "./io/tfjs/index.ts";
export { importNcnn, loadNcnnModel, loadNcnnModelFiles, parseNcnnParam, NCNN_LAYER_TYPES } from "./io/ncnn/index.ts";
export type { NcnnImportOptions, NcnnLowered } from "./io/ncnn/index.ts";
export { saveLowbit, loadLowbit, writeLowbitFile, readLowbitFile, LOWBIT_VERSION, LOWBIT_FORMAT_VERSION } from "./io/lowbit-file.ts";
export type { LowbitSavable } from "./io/lowbit-file.ts";
export { loadAnyModel } from "./io/load-any.ts";
export { exportOnnx, importOnnx, parseOnnx, importOnnxDetailed, onnxToModel, loadOnnxModel, qdqToQuantizedModel } from "./io/onnx/index.ts";
export type { ExportOnnxOptions, ImportOnnxOptions, OnnxImport, OnnxActQuant, OnnxWeightQuant } from "./io/onnx/index.ts";
export type { AnyModelSource } from "./io/load-any.ts";

export * from "./metrics/index.ts";
export * as kernels from "./kernels/index.ts";

export { calibrate } from "./quant/calibrate.ts";
export type { Calibration, CalibrationOptions } from "./quant/calibrate.ts";
export { quantizeModel, QuantizedModel } from "./quant/quantize-model.ts";
export type { QuantTensor, QuantConvWeights } from "./quant/quantize-model.ts";
export { Q8Plan } from "./graph/compile-q8.ts";
export { quantConfig, parseBits, resolveLayers } from "./quant/config.ts";
export type { QuantConfig, QuantConfigInput } from "./quant/config.ts";
export * as quant from "./quant/index.ts";

// Distribution-aware post-training quantization (per-image statistics): DAQ and DFSQ.
export { quantizeDaq } from "./methods/daq/quantize.ts";
export type { DaqOptions } from "./methods/daq/quantize.ts";
export { quantizeDfsq } from "./methods/dfsq/quantize.ts";
export type { DfsqOptions } from "./methods/dfsq/quantize.ts";
export { DynamicQuantizedModel } from "./methods/dynamic/model.ts";
export type { DynamicLayer, DynamicActSpec, DynamicModelInfo } from "./methods/dynamic/model.ts";
export type { DynamicActQuantizer, ChannelStatsView } from "./methods/dynamic/act-quantizer.ts";
export { DynamicPlan, DYNAMIC_PATHS } from "./graph/compile-dynamic.ts";
export type { DynamicPath } from "./graph/compile-dynamic.ts";
export { selectLayers, LAYER_SCOPES } from "./methods/scope.ts";
export type { LayerScope } from "./methods/scope.ts";
export * as daq from "./methods/daq/index.ts";
export * as dfsq from "./methods/dfsq/index.ts";

// Training engine: fake-quantized training graphs, WASM gradients, Adam, losses, finetune().
export { finetune, buildTrainGraph, Trainer, GradBuffers, trainState, applyState } from "./train/index.ts";
export type { FinetuneOptions, FinetuneResult, FinetuneProgress, TrainQuantSpec, TrainState, TrainLayerState, TrainData } from "./train/index.ts";
export * as train from "./train/index.ts";

// ODM (static quantization fine-tuned on the gradient engine; ODM-init PTQ without training).
export { odmFinetune, quantizeOdmInit, odmInitPtq, ChannelOffsets } from "./methods/odm/index.ts";
export type { OdmFinetuneOptions, OdmFinetuneResult } from "./methods/odm/index.ts";
export * as odm from "./methods/odm/index.ts";
export { fqsrFinetune } from "./methods/fqsr/index.ts";
export type { FqsrOptions, FqsrResult } from "./methods/fqsr/index.ts";
export * as fqsr from "./methods/fqsr/index.ts";

// Adaptive bit-widths: the tile gradient feature, bit maps (FAB, BitOPs) and their heat map; AdaBM.
export { gradientFeature, imageComplexity } from "./adaptive/gradient-feature.ts";
export { imageBitDelta } from "./adaptive/context.ts";
export type { AdaptiveContext, BitMap, BitMapTile, TileBits, ImageBitThresholds } from "./adaptive/context.ts";
export { renderBitMap } from "./adaptive/heatmap.ts";
export { adabmCalibrate, adabmFinetune, quantizeAdabm, buildAdabmModel, AdabmBitMapping } from "./methods/adabm/index.ts";
export type { AdabmOptions, AdabmFinetuneOptions, AdabmResult, AdabmFinetuneResult } from "./methods/adabm/index.ts";
export * as adabm from "./methods/adabm/index.ts";

// CADyQ (content-aware per-tile, per-layer activation bits: trained bit selectors, PAMS grids).
export { quantizeCadyq, quantizeCadyqDetailed, buildCadyqModel } from "./methods/cadyq/index.ts";
export type { CadyqOptions, CadyqResult } from "./methods/cadyq/index.ts";
export * as cadyq from "./methods/cadyq/index.ts";

// Browsers, workers and bundlers: ImageData/canvas helpers, fetch progress, the worker pool.
export { toImageData, toRgb, imageDataFrom, drawToCanvas, toImageBitmap, progressFetch } from "./engine/browser.ts";
export type { RgbaImage, ImageSourceLike } from "./engine/browser.ts";
export { createWorkerPool, createUpscalerWorker, UpscalerWorker, WorkerPool, planPoolTiles } from "./worker/pool.ts";
export type { WorkerOptions, WorkerPoolOptions, WorkerRunOptions, WorkerLike } from "./worker/pool.ts";
export { serveUpscaler } from "./worker/serve.ts";
export type { WorkerPort } from "./worker/serve.ts";
export type { WorkerInfo, WorkerModelOptions, WorkerModelSource, ToWorker, FromWorker, SerializedError } from "./worker/protocol.ts";
export { oneShotNm, sparsifyGraph, graphMacs, slsPrune, filterPrune, convInputStats } from "./methods/prune/index.ts";
export { foldBatchNorm } from "./graph/passes.ts";
export type { NMPattern, GraphMacs, SlsOptions, SlsResult, FilterPruneOptions, FilterPruneResult, FilterCriterion } from "./methods/prune/index.ts";
export * as prune from "./methods/prune/index.ts";
