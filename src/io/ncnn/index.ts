/**
 * ncnn model import: `.param` (text) + `.bin` → lowbit graph IR.
 *
 *   const { graph, prepad } = importNcnn(paramText, binBytes, { name: "realesr-animevideov3-x2" });
 *   const graph = await loadNcnnModel("data/ncnn/real-esrgan/models/realesr-animevideov3-x2.param");
 *
 * Pipeline: parse the .param into typed layer records (param.ts: every param id checked against the
 * layer type's schema) → read the .bin in ncnn's load order (bin.ts: fp32 / fp16 / table storage) →
 * lower to IR with offset tracking for valid convs, crops and deconvolutions (lower.ts) → validate.
 * Models are assumed to take and return RGB in [0, 1] (the Real-ESRGAN / waifu2x / Real-CUGAN ncnn
 * convention: pixels / 255).
 */
import type { Graph } from "../../graph/ir.ts";
import { LowbitError } from "../../runtime/errors.ts";
import { readNcnnWeights } from "./bin.ts";
import { lowerNcnn, type NcnnLowered, type NcnnLowerOptions } from "./lower.ts";
import { parseNcnnParam } from "./param.ts";

export type NcnnImportOptions = NcnnLowerOptions;

function bytesOf(b: Uint8Array | ArrayBuffer | ArrayBufferView, what: string): Uint8Array {
  if (b instanceof Uint8Array) return b;
  if (b instanceof ArrayBuffer) return new Uint8Array(b);
  if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  throw new LowbitError("E_ARGUMENT", `ncnn ${what} must be bytes (Uint8Array / ArrayBuffer)`);
}

/** Imports an ncnn model from its .param text (or bytes) and .bin bytes. */
export function importNcnn(param: string | Uint8Array, bin: Uint8Array | ArrayBuffer | ArrayBufferView, opts: NcnnImportOptions = {}): NcnnLowered {
  const p = parseNcnnParam(typeof param === "string" ? param : bytesOf(param, ".param"));
  readNcnnWeights(p.layers, bytesOf(bin, ".bin"));
  return lowerNcnn(p.layers, opts);
}

/** Reads `<path>.param` and the `.bin` beside it (Node) and imports them; meta.name defaults to the file's base name. */
export async function loadNcnnModelFiles(paramPath: string, opts: NcnnImportOptions & { binPath?: string } = {}): Promise<NcnnLowered> {
  if (!/\.param$/i.test(paramPath)) throw new LowbitError("E_ARGUMENT", `ncnn: expected a .param path, got '${paramPath}'`);
  const binPath = opts.binPath ?? paramPath.replace(/\.param$/i, ".bin");
  const fs = await import("node:fs/promises");
  const read = async (f: string) => {
    try {
      return new Uint8Array(await fs.readFile(f));
    } catch (e) {
      throw new LowbitError("E_IO", `cannot read '${f}': ${(e as Error).message}`, { cause: e });
    }
  };
  const [param, bin] = await Promise.all([read(paramPath), read(binPath)]);
  const base = paramPath.replace(/^.*[\\/]/, "").replace(/\.param$/i, "");
  return importNcnn(param, bin, { ...opts, name: opts.name ?? base });
}

/** loadNcnnModelFiles, returning the graph only. */
export async function loadNcnnModel(paramPath: string, opts: NcnnImportOptions & { binPath?: string } = {}): Promise<Graph> {
  return (await loadNcnnModelFiles(paramPath, opts)).graph;
}

export { parseNcnnParam, NCNN_LAYER_TYPES, NCNN_PARAM_MAGIC } from "./param.ts";
export type { NcnnLayer, NcnnParam, RawLayer, ParamValue } from "./param.ts";
export { readNcnnWeights, NcnnBinReader, halfToFloat, TAG_FP16, TAG_INT8 } from "./bin.ts";
export { lowerNcnn, deconvToSubpixel, oihwToHwio } from "./lower.ts";
export type { NcnnLowered, NcnnLowerOptions } from "./lower.ts";
