export * from "./grid.ts";
export * from "./act-quantizer.ts";
export * from "./offsets.ts";
export * from "./calibrate.ts";
export * from "./quantize.ts";
export * from "./options.ts";
export * from "./finetune.ts";
