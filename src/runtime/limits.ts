/**
 * The resource limits lowbit enforces on untrusted input, in one place, with their defaults.
 *
 * lowbit runs inside other people's apps on files downloaded from anywhere, so every quantity an
 * input *claims* (image size in a PNG header, tensor sizes in a manifest, bytes a server sends) is
 * checked against a limit before anything that size is allocated or read. Exceeding a limit is a
 * LowbitError E_MEMORY ("too large for the configured limit"), never an out-of-memory crash.
 *
 * | limit            | default  | where it is set                                         |
 * |------------------|----------|---------------------------------------------------------|
 * | maxPixels        | 2^26 px  | UpscalerOptions.maxPixels, ReadImageOptions.maxPixels   |
 * | maxModelBytes    | 1 GiB    | LoadModelOptions / ReadOptions.maxModelBytes (files, URLs, buffers) |
 * | maxMemoryBytes   | 2 GiB    | InitOptions.maxMemoryBytes (WASM linear memory of a runtime: hard cap) |
 * | memoryBudget     | 512 MiB  | UpscalerOptions.memoryBudget (activations of a plan: picks the tile) |
 *
 * The defaults cover every bundled model by far (the largest, esrgan-thick, is 29 MB of weights)
 * and 8K images (33 Mpx); an app that takes uploads from strangers should lower them.
 */
import { LowbitError } from "./errors.ts";

/** 64 Mpx: an RGBA decode of that size is 256 MB. */
export const DEFAULT_MAX_PIXELS = 2 ** 26;
/** Total bytes of one model: model.json + all weight shards, or one `.lowbit` file. */
export const DEFAULT_MAX_MODEL_BYTES = 2 ** 30;
/** WASM linear memory of one runtime (the arena's hard cap; wasm32 allows at most 4 GiB). */
export const DEFAULT_MAX_MEMORY_BYTES = 2 ** 31;
/** Activation memory of one compiled plan when the upscaler picks the tile size. */
export const DEFAULT_MEMORY_BUDGET = 512 * 2 ** 20;

/** The defaults, for documentation and diagnostics. */
export const DEFAULT_LIMITS = Object.freeze({
  maxPixels: DEFAULT_MAX_PIXELS,
  maxModelBytes: DEFAULT_MAX_MODEL_BYTES,
  maxMemoryBytes: DEFAULT_MAX_MEMORY_BYTES,
  memoryBudget: DEFAULT_MEMORY_BUDGET,
});

/**
 * Validates a caller-set limit: `undefined` → the default; otherwise a number ≥ 1 (Infinity is
 * allowed: "no limit"). Anything else (NaN, 0, negative, a string) is E_ARGUMENT — a NaN limit
 * would silently disable every `x > limit` check.
 */
export function limitOption(v: unknown, dflt: number, what: string): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || Number.isNaN(v) || v < 1) {
    throw new LowbitError("E_ARGUMENT", `${what} must be a number ≥ 1 (or Infinity), got ${String(v)}`);
  }
  return v;
}

/** E_MEMORY when `bytes` (claimed or read so far) exceed the model-size limit. */
export function checkModelBytes(bytes: number, limit: number, what: string): void {
  if (!(bytes <= limit)) {
    throw new LowbitError("E_MEMORY", `${what}: ${bytes} bytes, above the model size limit of ${limit} bytes (option maxModelBytes)`);
  }
}
