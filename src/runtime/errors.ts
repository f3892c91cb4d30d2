/**
 * The one error class lowbit throws. `code` is stable and machine-readable;
 * `message` says what was wrong and where (layer name, tensor, argument).
 * Every check happens at the API boundary, before any WASM call, so a bad
 * argument never turns into a trap or a silent wrong answer inside a kernel.
 */
export type LowbitErrorCode =
  | "E_ARGUMENT" // a bad argument value or type
  | "E_SHAPE" // shapes or buffer lengths that do not fit together
  | "E_BITS" // a bit-width outside the supported range
  | "E_RANGE" // a value outside what the kernel can represent (overflow, NaN/Inf)
  | "E_MODEL_FORMAT" // malformed, truncated or inconsistent model file
  | "E_UNSUPPORTED_LAYER" // a layer type or layer option lowbit does not implement
  | "E_MEMORY" // a buffer or image too large for the arena / configured limit
  | "E_ABORTED" // an AbortSignal fired
  | "E_WASM_UNSUPPORTED" // the host lacks WebAssembly SIMD
  | "E_NOT_INITIALIZED" // a call that needs init() before it
  | "E_WORKER" // a worker thread / Web Worker crashed or could not start
  | "E_IO"; // file/network read failures

export class LowbitError extends Error {
  readonly code: LowbitErrorCode;
  constructor(code: LowbitErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = "LowbitError";
    this.code = code;
  }
}

/** Throws LowbitError(code, message) unless cond holds. */
export function check(cond: unknown, code: LowbitErrorCode, message: string | (() => string)): asserts cond {
  if (!cond) throw new LowbitError(code, typeof message === "function" ? message() : message);
}

/** An integer in [lo, hi], else E_ARGUMENT (or the given code). */
export function checkInt(v: number, lo: number, hi: number, what: string, code: LowbitErrorCode = "E_ARGUMENT"): void {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new LowbitError(code, `${what} must be an integer in [${lo}, ${hi}], got ${v}`);
  }
}

/** Rejects with E_ABORTED (carrying signal.reason as cause) when the signal fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new LowbitError("E_ABORTED", `aborted: ${String(signal.reason ?? "AbortSignal")}`, { cause: signal.reason });
  }
}
