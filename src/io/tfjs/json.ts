/**
 * Prototype-pollution-safe JSON handling for untrusted model files.
 *
 * JSON.parse itself never assigns prototypes (a "__proto__" key becomes an own property), but
 * any later spread/merge/`obj[key]` walk over such a value can. So the importer only ever sees
 * *sanitized* data: plain null-prototype objects and arrays, with every `__proto__`,
 * `constructor` and `prototype` key dropped at every depth. In-memory model objects go through
 * the same copy (which also detaches them from the caller: later mutation cannot change a loaded
 * graph). Nothing is ever evaluated.
 */
import { LowbitError } from "../../runtime/errors.ts";

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);
const MAX_DEPTH = 64;

/** Deep copy of a JSON-like value into null-prototype objects, dropping forbidden keys. */
export function sanitizeJson(v: unknown, where = "model.json", depth = 0): Json {
  if (depth > MAX_DEPTH) throw new LowbitError("E_MODEL_FORMAT", `${where}: nested deeper than ${MAX_DEPTH} levels`);
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number") return v;
  if (Array.isArray(v)) return v.map((x) => sanitizeJson(x, where, depth + 1));
  if (typeof v === "object") {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      throw new LowbitError("E_MODEL_FORMAT", `${where}: expected plain JSON data, found a ${proto?.constructor?.name ?? "foreign"} object`);
    }
    const out = Object.create(null) as JsonObject;
    for (const k of Object.keys(v)) {
      if (FORBIDDEN.has(k)) continue;
      out[k] = sanitizeJson((v as Record<string, unknown>)[k], where, depth + 1);
    }
    return out;
  }
  throw new LowbitError("E_MODEL_FORMAT", `${where}: unexpected ${typeof v} value in JSON data`);
}

/** JSON.parse + sanitize; syntax errors → E_MODEL_FORMAT. */
export function parseJson(text: string, where = "model.json"): Json {
  let raw: unknown;
  try {
    raw = JSON.parse(text, (k, val) => (FORBIDDEN.has(k) ? undefined : val));
  } catch (e) {
    throw new LowbitError("E_MODEL_FORMAT", `${where} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return sanitizeJson(raw, where);
}

export function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Own-property read (objects are null-prototype, but be explicit). */
export function get(o: JsonObject | undefined, key: string): Json | undefined {
  return o !== undefined && Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}
