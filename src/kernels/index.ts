/** Typed-array kernel wrappers (validation → WASM), for users who want single ops. */
export * from "./f32-conv.ts";
export * from "./qs8-conv.ts";
export * from "./requant.ts";
export * from "./quantize.ts";
export * from "./requant-add.ts";
export * from "./concat.ts";
export * from "./depth-to-space.ts";
export * from "./upsample.ts";
export * from "./f32-elementwise.ts";
export * from "./channel-stats.ts";
export * from "./histogram.ts";
export * from "./qlut-conv.ts";
export * from "./act-codes.ts";
export * from "./qs16-conv-pcs.ts";
export * from "./grad-conv.ts";
export * from "./grad-elementwise.ts";
export * from "./prelu.ts";
