export * from "./act-quantizer.ts";
export * from "./calibrate.ts";
export * from "./quantize.ts";
export * from "./finetune.ts";
export * from "./options.ts";
export * from "./mapping.ts";
