// lowbit WASM kernel core — exports only.
//
// Conventions for every kernel (see README "Kernel ABI"):
// - Arguments are byte offsets into linear memory plus sizes; kernels never
//   allocate and never grow memory. The TS side owns the arena.
// - Tensors are NHWC, densely packed, batch 1 (batches are separate calls).
// - Every export has a plain TS reference in src/kernels/ref/ with the same
//   contract; integer kernels match it bit for bit.
export * from "./probe/relaxed-selftest";
export * from "./probe/peak";
export * from "./conv/f32-conv-nhwc";

/** First byte the TS arena may use (after static data), rounded up to 64 by the caller. */
export function heap_base(): usize {
  return __heap_base;
}
export * from "./elementwise/quantize";
export * from "./elementwise/requant-add";
export * from "./elementwise/requant-wide";
export * from "./elementwise/concat";
export * from "./elementwise/depth-to-space";
export * from "./elementwise/upsample";
export * from "./elementwise/upsample-bilinear";
export * from "./elementwise/f32-elementwise";
export * from "./stats/channel-stats";
export * from "./stats/histogram";
export * from "./conv/qs8-qc8w-conv-nhwc";
export * from "./conv/qs8-qc4w-conv-nhwc";
export * from "./conv/qs8-qc8w-conv-fused-nhwc";
export * from "./conv/qs8-qc8w-conv3x3-winograd2d-nhwc";
export * from "./conv/qs8-qc8w-conv5x5-winograd2d-nhwc";
export * from "./conv/qs16-qc16w-conv-nhwc-pcs";
export * from "./conv/qlut-qc16w-conv-nhwc";
export * from "./elementwise/act-codes";
export * from "./grad/f32-conv-backward";
export * from "./grad/f32-grad-elementwise";
export * from "./conv/f32-nm-conv-nhwc";
export * from "./conv/qs8-nm-conv-nhwc";
export * from "./elementwise/prelu";
export * from "./elementwise/channel-gate";
