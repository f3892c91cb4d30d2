/**
 * One entry point for every model source lowbit reads: `.lowbit` files (quantized or FP32) and
 * TF.js layers models / registry short names.
 *
 * Sniffing, in order:
 * - bytes (Uint8Array / ArrayBuffer / typed array): a `.lowbit` file (TF.js models are a JSON
 *   document plus shards, never one buffer), or an ONNX model (protobuf; first byte 0x08 =
 *   ModelProto.ir_version) when it is not a safetensors header;
 * - a path or URL ending in `.onnx`: importOnnx (QDQ files load as quantized models);
 * - a URL (object or http(s)/file string) whose path ends in `.lowbit`: fetched (file: read);
 * - a registry short name: loadModel;
 * - a path ending in `.lowbit`, or a regular file whose first bytes are a safetensors header
 *   (8-byte length, then '{'): read and parsed with loadLowbit (which names the problem when it
 *   is safetensors but not lowbit);
 * - anything else (model.json path or folder, an ncnn `.param` path or short name, other URLs,
 *   `{ modelJson, weights }`): loadModel (which sends `.param` files to the ncnn importer).
 */
import type { Graph } from "../graph/ir.ts";
import { fp32Model, type CompilableModel } from "../engine/upscaler-api.ts";
import { getModelInfo, loadModel, type LoadModelOptions } from "../models/registry.ts";
import { LowbitError, throwIfAborted } from "../runtime/errors.ts";
import type { QuantizedModel } from "../quant/quantize-model.ts";
import { readBodyLimited, type TfjsModelBuffers } from "./tfjs/source.ts";
import { checkModelBytes, DEFAULT_MAX_MODEL_BYTES, limitOption } from "../runtime/limits.ts";
import { loadLowbit, looksLikeSafetensors, readLowbitFile } from "./lowbit-file.ts";
import type { DynamicQuantizedModel } from "../methods/dynamic/model.ts";
import { loadOnnxModel, onnxToModel } from "./onnx/quantized.ts";

export type AnyModelSource = string | URL | Uint8Array | ArrayBuffer | ArrayBufferView | TfjsModelBuffers;

function compilable(m: QuantizedModel | DynamicQuantizedModel | Graph): CompilableModel {
  return "compile" in m ? m : fp32Model(m);
}

const isLowbitName = (p: string) => /\.lowbit$/i.test(p);
const isOnnxName = (p: string) => /\.onnx$/i.test(p);

/** ONNX bytes (not a safetensors header; protobuf field 1 = ir_version varint first). */
function looksLikeOnnx(b: Uint8Array): boolean {
  return b.length > 1 && b[0] === 0x08 && !looksLikeSafetensors(b.subarray(0, 9), b.length);
}

async function fetchOnnx(u: URL, opts: LoadModelOptions): Promise<CompilableModel> {
  const limit = limitOption(opts.maxModelBytes, DEFAULT_MAX_MODEL_BYTES, "maxModelBytes");
  if (u.protocol === "file:") {
    const { fileURLToPath } = await import("node:url");
    return loadOnnxModel(fileURLToPath(u), { maxModelBytes: limit });
  }
  const f = opts.fetch ?? globalThis.fetch;
  if (typeof f !== "function") throw new LowbitError("E_IO", "no fetch() available to load a model from a URL");
  let res: Response;
  try {
    res = await f(u, opts.signal ? { signal: opts.signal } : undefined);
  } catch (e) {
    throwIfAborted(opts.signal);
    throw new LowbitError("E_IO", `cannot fetch '${u.href}': ${(e as Error).message}`, { cause: e });
  }
  if (!res.ok) throw new LowbitError("E_IO", `fetching '${u.href}' failed: HTTP ${res.status}`);
  const bytes = await readBodyLimited(res, limit, `model '${u.href}'`);
  throwIfAborted(opts.signal);
  return onnxToModel(bytes);
}

/** Reads a `.lowbit` file after checking its size against the model-size limit (E_MEMORY). */
async function readLowbitLimited(path: string, limit: number): Promise<CompilableModel> {
  let size = -1;
  try {
    size = (await import("node:fs/promises").then((fs) => fs.stat(path))).size;
  } catch {
    // readLowbitFile reports the missing/unreadable path as E_IO
  }
  if (size >= 0) checkModelBytes(size, limit, `model file '${path}'`);
  return compilable(await readLowbitFile(path));
}

async function fetchLowbit(u: URL, opts: LoadModelOptions): Promise<CompilableModel> {
  const limit = limitOption(opts.maxModelBytes, DEFAULT_MAX_MODEL_BYTES, "maxModelBytes");
  if (u.protocol === "file:") {
    const { fileURLToPath } = await import("node:url");
    return readLowbitLimited(fileURLToPath(u), limit);
  }
  const f = opts.fetch ?? globalThis.fetch;
  if (typeof f !== "function") throw new LowbitError("E_IO", "no fetch() available to load a model from a URL");
  let res: Response;
  try {
    res = await f(u, opts.signal ? { signal: opts.signal } : undefined);
  } catch (e) {
    throwIfAborted(opts.signal);
    throw new LowbitError("E_IO", `cannot fetch '${u.href}': ${(e as Error).message}`, { cause: e });
  }
  if (!res.ok) throw new LowbitError("E_IO", `fetching '${u.href}' failed: HTTP ${res.status}`);
  const bytes = await readBodyLimited(res, limit, `model '${u.href}'`);
  throwIfAborted(opts.signal);
  return compilable(loadLowbit(bytes));
}

/** Whether the regular file at `path` starts with a safetensors header (false if unreadable / a folder). */
async function fileLooksLikeSafetensors(path: string): Promise<boolean> {
  let fs: typeof import("node:fs/promises");
  try {
    fs = await import("node:fs/promises");
  } catch {
    return false;
  }
  let h: import("node:fs/promises").FileHandle | undefined;
  try {
    h = await fs.open(path, "r");
    const st = await h.stat();
    if (!st.isFile()) return false;
    const head = new Uint8Array(9);
    const { bytesRead } = await h.read(head, 0, 9, 0);
    return looksLikeSafetensors(head.subarray(0, bytesRead), st.size);
  } catch {
    return false; // loadModel reports the missing/unreadable path
  } finally {
    await h?.close();
  }
}

/**
 * Loads a model from any source lowbit understands (see the file comment) as something
 * `createUpscaler` compiles: a QuantizedModel for quantized `.lowbit` files, `fp32Model(graph)`
 * otherwise. `opts` are loadModel's (signal, fetch, ranges, …); ranges apply to TF.js models
 * only (a `.lowbit` file carries its own).
 */
export async function loadAnyModel(src: AnyModelSource, opts: LoadModelOptions = {}): Promise<CompilableModel> {
  throwIfAborted(opts.signal);
  const limit = limitOption(opts.maxModelBytes, DEFAULT_MAX_MODEL_BYTES, "maxModelBytes");
  if (src instanceof ArrayBuffer || ArrayBuffer.isView(src)) {
    const b = ArrayBuffer.isView(src) ? new Uint8Array(src.buffer, src.byteOffset, src.byteLength) : src;
    checkModelBytes(b.byteLength, limit, "model bytes");
    const u8 = b instanceof Uint8Array ? b : new Uint8Array(b);
    if (looksLikeOnnx(u8)) return onnxToModel(u8, { maxModelBytes: limit });
    return compilable(loadLowbit(b));
  }
  if (src instanceof URL) {
    if (isOnnxName(src.pathname)) return fetchOnnx(src, opts);
    return isLowbitName(src.pathname) ? fetchLowbit(src, opts) : fp32Model(await loadModel(src, opts));
  }
  if (typeof src === "string") {
    if (/^(https?|file):/i.test(src)) {
      let u: URL;
      try {
        u = new URL(src);
      } catch (e) {
        throw new LowbitError("E_ARGUMENT", `invalid model URL '${src}'`, { cause: e });
      }
      if (isLowbitName(u.pathname)) return fetchLowbit(u, opts);
      if (isOnnxName(u.pathname)) return fetchOnnx(u, opts);
    } else if (getModelInfo(src) === undefined && isOnnxName(src)) {
        return loadOnnxModel(src, { maxModelBytes: limit });
    } else if (getModelInfo(src) === undefined && (isLowbitName(src) || (await fileLooksLikeSafetensors(src)))) {
      return readLowbitLimited(src, limit);
    }
  }
  return fp32Model(await loadModel(src as string | URL | TfjsModelBuffers, opts));
}
