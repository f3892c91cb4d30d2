// DAQ (WACV 2022): channel-wise distribution-aware quantization — TS side (spec daq.md).
export * from "./step-table.ts";
export * from "./activation.ts";
export * from "./reference.ts";
export * from "./weights.ts";
export * from "./sensitivity.ts";
