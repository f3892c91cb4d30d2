/** lowbit quantization building blocks: parameters, observers, range selection, weights, config, the Quantizer seam. */
export * from "./params.ts";
export * from "./observers.ts";
export * from "./range.ts";
export * from "./weights.ts";
export * from "./config.ts";
export * from "./quantizer.ts";
export * from "./subset-lut.ts";
