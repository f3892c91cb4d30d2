/**
 * The message protocol between a client (UpscalerWorker, WorkerPool) and lowbit's worker entry.
 * The same messages travel over Node `worker_threads` and browser Web Workers: plain objects,
 * typed arrays moved with transfer lists, one request id per job. A SharedArrayBuffer appears only
 * in a strip `tile` job's halo (when the platform has it; halo.ts), never otherwise.
 *
 * client → worker: init · upscale (a whole image) · tile (one region of a pool's grid) · alpha · abort
 * worker → client: ready · load-progress · progress · result · error
 *
 * Errors cross as `{ code, message, stack }` and are re-thrown on the client as LowbitError with
 * the same `code`; anything that is not a LowbitError inside the worker arrives as E_WORKER.
 */
import { LowbitError, type LowbitErrorCode } from "../runtime/errors.ts";
import type { Backend, BackendInfo } from "../runtime/runtime.ts";
import type { TfjsModelBuffers } from "../io/tfjs/source.ts";
import type { ValueRange } from "../graph/ir.ts";
import type { TileBits } from "../adaptive/context.ts";
import type { UpscaleProgress } from "../engine/upscaler.ts";

/**
 * A model the worker can load (structured-cloneable): a registry short name, an absolute
 * http(s)/file URL of a model.json or `.lowbit` file, `.lowbit` bytes, or TF.js buffers.
 */
export type WorkerModelSource = string | Uint8Array | ArrayBuffer | TfjsModelBuffers;

/** What a worker loads and how it runs (everything here is cloned into the worker). */
export interface WorkerModelOptions {
  model: WorkerModelSource;
  /** Loading options for names/URLs: `modelBaseUrl` (short names in browsers), ranges, size limit. */
  load?: { modelBaseUrl?: string; inputRange?: ValueRange; outputRange?: ValueRange; maxModelBytes?: number };
  /** Where the worker's wasm comes from (default: the bytes embedded in lowbit). */
  wasm?: { url?: string; bytes?: ArrayBuffer | Uint8Array; module?: WebAssembly.Module };
  backend?: "auto" | Backend;
  maxMemoryBytes?: number;
  /** Upscaler options (as createUpscaler's). */
  tile?: number;
  margin?: number;
  memoryBudget?: number;
  maxPixels?: number;
}

/** What a worker reports once its model is compiled-ready. */
export interface WorkerInfo {
  backend: BackendInfo;
  scale: number;
  /** The upscaler's default tile and margin (as the in-process Upscaler would use). */
  tile: number;
  margin: number;
  config: string;
  modelName: string;
  inputRange: ValueRange;
  outputRange: ValueRange;
  /**
   * True when any tile grid gives the same output (margin ≥ the exact receptive radius, and no
   * per-tile decisions: not adaptive-bit, not per-image statistics). The pool then splits the
   * image across workers freely; otherwise it uses the in-process grid, tile for tile.
   */
  exactTiling: boolean;
  /** Replicated border the model expects (GraphMeta.borderPad, e.g. waifu2x's 7 px); 0 for most. */
  borderPad: number;
  /** Region sides must be multiples of this (GraphMeta.tileAlign); 1 for most. */
  tileAlign?: number;
  /**
   * Models whose output depends on the pixels only (no per-tile decisions) and whose every layer's
   * rows are known (row-windows.ts): strips of one image can swap halo rows instead of recomputing
   * margins (halo.ts), which reproduces the untiled output exactly — so also for models that do not
   * tile exactly, when the in-process run would take the image as one tile. `bytesPerColumn`: the
   * largest swap per LR column of width; `margin`: the LR rows a strip's region needs beyond its core.
   */
  halo?: { bytesPerColumn: number; margin: number };
}

/** An image inside a message (the data is transferred). */
export interface ImageMsg {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels?: number;
}

/** Messages a lowbit worker accepts (client → worker). */
export type ToWorker =
  | { type: "init"; id: number; options: WorkerModelOptions }
  | { type: "upscale"; id: number; image: ImageMsg; tile?: number; margin?: number }
  | {
    type: "tile"; id: number;
    /** The tile's region, RGB. */
    region: ImageMsg;
    /** The core inside the region. */
    core: { x: number; y: number; w: number; h: number };
    /** The grid's largest region (the plan is compiled for it, as in-process). */
    maxW: number;
    maxH: number;
    /** Run as strip `index` of `strips`, swapping halo rows through `buffer` (halo.ts) instead of computing the margin. */
    halo?: { buffer: SharedArrayBuffer; index: number; strips: number; slotBytes: number };
  }
  | { type: "alpha"; id: number; data: Uint8Array; width: number; height: number; scale: number }
  | { type: "abort"; id: number; reason?: string };

/** A LowbitError as it crosses postMessage. */
export interface SerializedError {
  code: LowbitErrorCode;
  message: string;
  stack?: string;
}

/** Messages a lowbit worker posts (worker → client). */
export type FromWorker =
  | { type: "ready"; id: number; info: WorkerInfo }
  | { type: "load-progress"; id: number; loaded: number; total: number | null }
  | { type: "progress"; id: number; progress: UpscaleProgress }
  | {
    type: "result"; id: number; data: Uint8Array; width: number; height: number; channels: number;
    bitMap?: unknown;
    bits?: TileBits | null;
    bitLayers?: { layers: string[]; counted: boolean[] };
  }
  | { type: "error"; id: number; error: SerializedError };

/** Error → plain object for postMessage. */
export function serializeError(e: unknown): SerializedError {
  if (e instanceof LowbitError) {
    const prefix = `${e.code}: `;
    return { code: e.code, message: e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message, stack: e.stack };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { code: "E_WORKER", message: `inside the worker: ${err.name}: ${err.message}`, stack: err.stack };
}

/** The client side of serializeError: a LowbitError with the worker's code and its stack as cause. */
export function deserializeError(s: SerializedError): LowbitError {
  const cause = new Error(s.message);
  if (s.stack) cause.stack = s.stack;
  return new LowbitError(s.code, s.message, { cause });
}
