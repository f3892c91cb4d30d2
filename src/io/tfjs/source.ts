/**
 * Reading TF.js layers-model artifacts (model.json + shards) from a file path, a URL or memory.
 *
 * Security: a model file is untrusted input. Shard paths from the manifest must stay inside the
 * model's folder (file) or under the model's directory on the same origin (URL): absolute paths,
 * `..` segments (also percent-encoded: the URL parser treats `%2e%2e` as `..`), schemes, drive
 * letters, protocol-relative `//host` and backslashes are rejected with E_MODEL_FORMAT before
 * anything is read. Node built-ins are imported lazily so browser bundles of lowbit never pull
 * them in.
 */
import { LowbitError, throwIfAborted } from "../../runtime/errors.ts";
import { get as jget, isObject, parseJson, sanitizeJson, type JsonObject } from "./json.ts";
import { parseManifest, groupByteSize, type WeightGroup } from "./weights.ts";
import { checkModelBytes, DEFAULT_MAX_MODEL_BYTES, limitOption } from "../../runtime/limits.ts";

/** Bytes of one weight shard. */
export type BufferLike = ArrayBuffer | ArrayBufferView;

/** An in-memory model: model.json content plus the weight bytes. */
export interface TfjsModelBuffers {
  /** The model.json document: parsed object, JSON text or its UTF-8 bytes. */
  modelJson: object | string | BufferLike;
  /**
   * Either one buffer per shard path, in manifest order across all groups, or a single buffer
   * holding all shards concatenated (all groups, in order).
   */
  weights: BufferLike | BufferLike[];
}

export type TfjsModelSource = string | URL | TfjsModelBuffers;

export interface ReadOptions {
  signal?: AbortSignal;
  /** fetch implementation for URLs (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /**
   * Largest model accepted, bytes: model.json plus all weight shards (default 1 GiB). Checked
   * against the manifest's claims before any shard is read, against file sizes before reading,
   * and while a response streams in; above it → E_MEMORY.
   */
  maxModelBytes?: number;
}

/**
 * Reads a response body, failing with E_MEMORY as soon as it exceeds `limit` bytes (a declared
 * Content-Length is checked first; a server that lies or streams without one is cut off).
 */
export async function readBodyLimited(res: Response, limit: number, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers?.get?.("content-length") ?? NaN);
  if (Number.isFinite(declared)) checkModelBytes(declared, limit, `${what} (Content-Length)`);
  const body = res.body;
  if (!body || typeof body.getReader !== "function") {
    const b = new Uint8Array(await res.arrayBuffer());
    checkModelBytes(b.byteLength, limit, what);
    return b;
  }
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > limit) {
      await reader.cancel().catch(() => undefined);
      checkModelBytes(n, limit, what);
    }
    parts.push(value);
  }
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Total weight bytes the manifest claims (its tensors' sizes), checked before reading shards. */
function checkClaims(groups: WeightGroup[], jsonBytes: number, limit: number): void {
  let claim = jsonBytes;
  for (const g of groups) claim += groupByteSize(g);
  checkModelBytes(claim, limit, "the weights manifest claims");
}

/** The raw artifacts: sanitized model.json, parsed manifest, shard bytes per group. */
export interface TfjsArtifacts {
  doc: JsonObject;
  groups: WeightGroup[];
  shards: Uint8Array[][];
  /** Where the model came from (path or URL), for messages and meta. */
  origin: string;
}

function bytesOf(b: BufferLike, what: string): Uint8Array {
  if (b instanceof ArrayBuffer) return new Uint8Array(b);
  if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (typeof SharedArrayBuffer !== "undefined" && (b as unknown) instanceof SharedArrayBuffer) return new Uint8Array(b as ArrayBufferLike);
  throw new LowbitError("E_ARGUMENT", `${what} must be an ArrayBuffer or typed array`);
}

/**
 * Syntactic check of a manifest shard path. Returns the path split into segments.
 * Rejects anything that could address a file outside the model folder.
 */
export function checkShardPath(p: string): string[] {
  const bad = (why: string) => new LowbitError("E_MODEL_FORMAT", `weight shard path '${p}' ${why}; shards must be relative paths inside the model folder`);
  if (p.length === 0 || p.length > 1024) throw bad("has an invalid length");
  if (/[\u0000-\u001f\\]/.test(p)) throw bad("contains a backslash or control character");
  if (p.startsWith("/")) throw bad("is absolute");
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(p)) throw bad("has a scheme or drive letter");
  let decoded: string;
  try {
    decoded = decodeURIComponent(p);
  } catch {
    throw bad("has invalid percent-encoding");
  }
  if (/[\\\u0000]/.test(decoded) || decoded.startsWith("/")) throw bad("decodes to an absolute path");
  const segs = p.split("/");
  for (const s of [...segs, ...decoded.split("/")]) {
    if (s === ".." || s.toLowerCase() === "%2e%2e" || s === ".%2e" || s === "%2e.") throw bad("leaves the model folder ('..')");
  }
  return segs;
}

/** Flattens the manifest's shard paths and splits caller-provided weight buffers into groups. */
function splitWeights(groups: WeightGroup[], w: BufferLike | BufferLike[]): Uint8Array[][] {
  const nPaths = groups.reduce((a, g) => a + g.paths.length, 0);
  if (Array.isArray(w)) {
    if (w.length !== nPaths) {
      throw new LowbitError("E_MODEL_FORMAT", `the manifest lists ${nPaths} shard(s) but ${w.length} weight buffer(s) were given`);
    }
    let k = 0;
    return groups.map((g) => g.paths.map((p) => bytesOf(w[k++], `weights[${k - 1}] (${p})`)));
  }
  const all = bytesOf(w, "weights");
  // One buffer for everything: each group takes its own byte size, the last one the rest (so
  // surplus or shortfall is reported by the decoder against the right group).
  let off = 0;
  return groups.map((g, i) => {
    const n = i === groups.length - 1 ? all.byteLength - off : Math.min(groupByteSize(g), all.byteLength - off);
    const part = all.subarray(off, off + n);
    off += n;
    return g.paths.map((_, j) => (j === 0 ? part : new Uint8Array(0)));
  });
}

function docOf(v: object | string | BufferLike, limit = Infinity): JsonObject {
  let doc;
  if (typeof v === "string") {
    checkModelBytes(v.length, limit, "model.json");
    doc = parseJson(v);
  } else if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    const b = bytesOf(v, "modelJson");
    checkModelBytes(b.byteLength, limit, "model.json");
    doc = parseJson(new TextDecoder("utf-8", { fatal: false }).decode(b));
  } else doc = sanitizeJson(v);
  if (!isObject(doc)) throw new LowbitError("E_MODEL_FORMAT", "model.json is not a JSON object");
  return doc;
}

function isUrlString(s: string): boolean {
  return /^(https?|file|data|blob):/i.test(s);
}

async function readFromFile(path: string, opts: ReadOptions): Promise<TfjsArtifacts> {
  const fs = await import("node:fs/promises");
  const nodePath = await import("node:path");
  const limit = limitOption(opts.maxModelBytes, DEFAULT_MAX_MODEL_BYTES, "maxModelBytes");
  let file = nodePath.resolve(path);
  let size: number;
  try {
    let st = await fs.stat(file);
    if (st.isDirectory()) {
      file = nodePath.join(file, "model.json");
      st = await fs.stat(file);
    }
    size = st.size;
  } catch (e) {
    throw new LowbitError("E_IO", `cannot read model '${path}': ${(e as Error).message}`, { cause: e });
  }
  checkModelBytes(size, limit, `model file '${file}'`);
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (e) {
    throw new LowbitError("E_IO", `cannot read model file '${file}': ${(e as Error).message}`, { cause: e });
  }
  const doc = docOf(text);
  const groups = parseManifest(jget(doc, "weightsManifest"));
  checkClaims(groups, size, limit);
  let total = size;
  const dir = nodePath.dirname(file);
  const shards: Uint8Array[][] = [];
  for (const g of groups) {
    const parts: Uint8Array[] = [];
    for (const p of g.paths) {
      throwIfAborted(opts.signal);
      checkShardPath(p);
      const full = nodePath.resolve(dir, p);
      const rel = nodePath.relative(dir, full);
      if (rel === "" || rel.startsWith("..") || nodePath.isAbsolute(rel)) {
        throw new LowbitError("E_MODEL_FORMAT", `weight shard path '${p}' resolves outside the model folder '${dir}'`);
      }
      try {
        // Size before reading: a manifest may list one huge file many times.
        total += (await fs.stat(full)).size;
        checkModelBytes(total, limit, `weight shard '${p}' brings the model to`);
        parts.push(new Uint8Array(await fs.readFile(full)));
      } catch (e) {
        if (e instanceof LowbitError) throw e;
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "EISDIR") {
          throw new LowbitError("E_MODEL_FORMAT", `weight shard '${p}' listed in the manifest is missing (${full})`, { cause: e });
        }
        throw new LowbitError("E_IO", `cannot read weight shard '${full}': ${(e as Error).message}`, { cause: e });
      }
    }
    shards.push(parts);
  }
  return { doc, groups, shards, origin: file };
}

async function readFromUrl(url: URL, opts: ReadOptions): Promise<TfjsArtifacts> {
  if (url.protocol === "file:") {
    const { fileURLToPath } = await import("node:url");
    return readFromFile(fileURLToPath(url), opts);
  }
  const f = opts.fetch ?? globalThis.fetch;
  if (typeof f !== "function") throw new LowbitError("E_IO", "no fetch() available to load a model from a URL");
  const get = async (u: URL, what: string, missingCode: "E_IO" | "E_MODEL_FORMAT"): Promise<Response> => {
    throwIfAborted(opts.signal);
    let res: Response;
    try {
      res = await f(u, opts.signal ? { signal: opts.signal } : undefined);
    } catch (e) {
      throwIfAborted(opts.signal);
      throw new LowbitError("E_IO", `cannot fetch ${what} '${u.href}': ${(e as Error).message}`, { cause: e });
    }
    if (!res.ok) {
      throw new LowbitError(res.status === 404 || res.status === 410 ? missingCode : "E_IO", `fetching ${what} '${u.href}' failed: HTTP ${res.status}`);
    }
    return res;
  };
  const limit = limitOption(opts.maxModelBytes, DEFAULT_MAX_MODEL_BYTES, "maxModelBytes");
  const jsonBytes = await readBodyLimited(await get(url, "model.json", "E_IO"), limit, `model.json '${url.href}'`);
  let total = jsonBytes.byteLength;
  const doc = docOf(jsonBytes);
  const groups = parseManifest(jget(doc, "weightsManifest"));
  checkClaims(groups, total, limit);
  const baseDir = new URL(".", url);
  const shards: Uint8Array[][] = [];
  for (const g of groups) {
    const parts: Uint8Array[] = [];
    for (const p of g.paths) {
      checkShardPath(p);
      let u: URL;
      try {
        u = new URL(p, url);
      } catch (e) {
        throw new LowbitError("E_MODEL_FORMAT", `weight shard path '${p}' cannot be resolved against '${url.href}'`, { cause: e });
      }
      if (u.origin !== baseDir.origin || u.protocol !== baseDir.protocol || !u.pathname.startsWith(baseDir.pathname)) {
        throw new LowbitError("E_MODEL_FORMAT", `weight shard path '${p}' resolves to '${u.href}', outside the model's directory '${baseDir.href}'`);
      }
      const res = await get(u, `weight shard '${p}'`, "E_MODEL_FORMAT");
      const b = await readBodyLimited(res, limit - total, `weight shard '${u.href}' (after ${total} bytes of the model)`);
      total += b.byteLength;
      parts.push(b);
    }
    shards.push(parts);
  }
  return { doc, groups, shards, origin: url.href };
}

/** Reads model.json and all shards (no decoding beyond the manifest structure). */
export async function readTfjsArtifacts(src: TfjsModelSource, opts: ReadOptions = {}): Promise<TfjsArtifacts> {
  throwIfAborted(opts.signal);
  if (src instanceof URL) return readFromUrl(src, opts);
  if (typeof src === "string") {
    if (isUrlString(src)) {
      let u: URL;
      try {
        u = new URL(src);
      } catch (e) {
        throw new LowbitError("E_ARGUMENT", `invalid model URL '${src}'`, { cause: e });
      }
      return readFromUrl(u, opts);
    }
    return readFromFile(src, opts);
  }
  if (typeof src === "object" && src !== null && "modelJson" in src && "weights" in src) {
    const limit = limitOption(opts.maxModelBytes, DEFAULT_MAX_MODEL_BYTES, "maxModelBytes");
    const doc = docOf(src.modelJson, limit);
    const groups = parseManifest(jget(doc, "weightsManifest"));
    checkClaims(groups, 0, limit);
    const shards = splitWeights(groups, src.weights);
    checkModelBytes(shards.flat().reduce((a, b) => a + b.byteLength, 0), limit, "the weight buffers");
    return { doc, groups, shards, origin: "memory" };
  }
  throw new LowbitError("E_ARGUMENT", "model source must be a path, a URL, or { modelJson, weights }");
}
