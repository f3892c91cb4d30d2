/** DFSQ (distribution-flexible subset quantization, arXiv 2305.05888): universal set, codebook selection, weights, f64 reference. */
export * from "./universal-set.ts";
export * from "./codebook.ts";
export * from "./weights.ts";
export * from "./reference.ts";
export { Mulberry32 } from "../../util/rng.ts";
export { radixSortF64 } from "./radix-sort.ts";
