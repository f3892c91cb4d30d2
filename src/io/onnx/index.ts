/**
 * ONNX interchange: exportOnnx (lowbit FP32 graphs and static quantized models → ONNX, QDQ form
 * for onnxruntime's QLinearConv) and importOnnx (ONNX SR models → lowbit graph IR). See
 * docs/ONNX.md for the I/O contract and how to export a PyTorch model.
 */
export { exportOnnx, quantizedGrids, hwioToOihw } from "./export.ts";
export type { ExportOnnxOptions } from "./export.ts";
export { importOnnx, parseOnnx, importOnnxDetailed, nearestIsFloor } from "./import.ts";
export type { ImportOnnxOptions, OnnxImport, OnnxActQuant, OnnxWeightQuant } from "./import.ts";
export { decodeModel, encodeModel, DT } from "./onnx-schema.ts";
export type { OnnxModel, OnnxGraph, OnnxNode, OnnxTensor, ModelInit, NodeInit, TensorInit } from "./onnx-schema.ts";
export { onnxToModel, loadOnnxModel, qdqToQuantizedModel } from "./quantized.ts";
