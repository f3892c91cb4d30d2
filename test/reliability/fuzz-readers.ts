// Structure-aware fuzzers for every reader lowbit exposes to untrusted bytes:
//   tfjs   — TF.js layers model: model.json (structure + manifest) and weight shards, in memory and
//            through the URL loader (a fetch stub records every request: nothing outside the
//            model's directory may be fetched);
//   lowbit — .lowbit files: the safetensors header, lowbit's JSON metadata (graph, quant, dynamic),
//            tensor data (NaN/Inf, out-of-range codes) and raw bytes;
//   image  — PNG and JPEG input to the CLI's decoder: chunk/segment-aware edits (with valid CRCs,
//            so the edit reaches the decoder), header fields, truncation, bit flips.
// Every case must end in success (and then the model compiles and runs on a 4×4 tile, or the
// image has the size its header says) or a LowbitError, within a time bound. A case is reproducible
// from (reader, seed, index). Used by fuzz-readers.test.ts (CI size) and scripts/fuzz.ts (long runs).
import jpeg from "jpeg-js";
import { LowbitError } from "../../src/runtime/errors.ts";
import type { Runtime } from "../../src/runtime/runtime.ts";
import { loadTfjsModel } from "../../src/io/tfjs/index.ts";
import { loadLowbit, saveLowbit } from "../../src/io/lowbit-file.ts";
import { decodeImage, encodePng } from "../../src/io/image.ts";
import { fp32Model, type CompilableModel } from "../../src/engine/upscaler-api.ts";
import { calibrate } from "../../src/quant/calibrate.ts";
import { quantizeModel } from "../../src/quant/quantize-model.ts";
import { quantizeDaq } from "../../src/methods/daq/quantize.ts";
import type { Graph } from "../../src/graph/ir.ts";
import { Rng } from "../util/rng.ts";
import { makeTfjsModel, pngChunk, smallGraph, smallImage } from "./fixtures.ts";

export type ReaderName = "tfjs" | "lowbit" | "image";
export const READERS: readonly ReaderName[] = ["tfjs", "lowbit", "image"];

export interface FuzzStats {
  reader: ReaderName;
  cases: number;
  /** Outcome → count: "ok", "ok+run", "E_MODEL_FORMAT", … */
  outcomes: Record<string, number>;
  /** Mutation kind → count. */
  kinds: Record<string, number>;
  maxMs: number;
  slowest: string;
  ms: number;
  /** Failures (non-LowbitError throws, over-time cases, escaped fetches), capped. */
  failures: string[];
  failureCount: number;
}

const bump = (o: Record<string, number>, k: string) => (o[k] = (o[k] ?? 0) + 1);

// ---------------------------------------------------------------------------------------------
// generic mutators

/** Values that break assumptions: wrong types, huge / negative / fractional numbers, nesting. */
function evilValue(r: Rng): unknown {
  switch (r.int(0, 17)) {
    case 0: return null;
    case 1: return r.next() < 0.5;
    case 2: return -1;
    case 3: return 0;
    case 4: return 1e12;
    case 5: return 2 ** 31;
    case 6: return -(2 ** 53);
    case 7: return 1.5;
    case 8: return "";
    case 9: return "NaN";
    case 10: return [];
    case 11: return {};
    case 12: return [1e6, 1e6, 1e6];
    case 13: return r.int(-3, 70000);
    case 14: return "x".repeat(r.int(1, 300));
    case 15: return { __proto__x: 1, constructor: { prototype: { polluted: 1 } } };
    case 16: return [[[[[[[[[[[]]]]]]]]]]];
    default: return 1e308 * 10; // Infinity → null in JSON
  }
}

interface Slot { parent: Record<string, unknown> | unknown[]; key: string | number; depth: number }

/** Every (parent, key) position in a JSON value. */
function slots(v: unknown, out: Slot[] = [], depth = 0): Slot[] {
  if (Array.isArray(v)) v.forEach((x, i) => { out.push({ parent: v, key: i, depth }); slots(x, out, depth + 1); });
  else if (v && typeof v === "object") for (const k of Object.keys(v)) { out.push({ parent: v as Record<string, unknown>, key: k, depth }); slots((v as Record<string, unknown>)[k], out, depth + 1); }
  return out;
}

/** One random structural edit of a JSON value (in place). Returns its kind. */
export function mutateJson(r: Rng, root: unknown): string {
  const all = slots(root);
  if (all.length === 0) return "empty";
  const s = r.pick(all);
  const p = s.parent as Record<string | number, unknown>;
  const cur = p[s.key];
  switch (r.int(0, 9)) {
    case 0:
      if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
      else delete p[s.key];
      return "json:delete";
    case 1:
    case 2:
      p[s.key] = evilValue(r);
      return "json:wrong-value";
    case 3:
      if (typeof cur === "number") p[s.key] = r.pick([cur + 1, cur - 1, cur * 2, -cur, cur * 1e6, cur + 0.5, 0]);
      else p[s.key] = evilValue(r);
      return "json:number";
    case 4:
      if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 0, JSON.parse(JSON.stringify(cur ?? null)));
      else p[`${s.key}_dup`] = cur;
      return "json:duplicate";
    case 5:
      if (Array.isArray(cur) && cur.length > 1) {
        const i = r.int(0, cur.length - 1), j = r.int(0, cur.length - 1);
        [cur[i], cur[j]] = [cur[j], cur[i]];
        return "json:swap";
      }
      p[s.key] = evilValue(r);
      return "json:wrong-value";
    case 6: {
      // Forbidden keys as own properties (JSON.parse creates them that way).
      const target = cur && typeof cur === "object" && !Array.isArray(cur) ? cur as Record<string, unknown> : p as Record<string, unknown>;
      Object.defineProperty(target, r.pick(["__proto__", "constructor", "prototype"]), { value: { polluted: 1, padding: "same" }, enumerable: true, configurable: true, writable: true });
      return "json:proto-key";
    }
    case 7:
      if (typeof cur === "string" && r.next() < 0.7) p[s.key] = r.pick([cur + "x", cur.slice(1), "", cur.toUpperCase(), "../" + cur, "__proto__"]);
      else p[s.key] = evilValue(r);
      return "json:string";
    case 8: {
      // Move a value to another slot (types/shapes from elsewhere in the document).
      const o = r.pick(all);
      p[s.key] = JSON.parse(JSON.stringify((o.parent as Record<string | number, unknown>)[o.key] ?? null));
      return "json:transplant";
    }
    default:
      if (Array.isArray(cur)) {
        cur.length = r.int(0, cur.length + 2);
        for (let i = 0; i < cur.length; i++) if (cur[i] === undefined) cur[i] = evilValue(r);
        return "json:resize";
      }
      p[s.key] = evilValue(r);
      return "json:wrong-value";
  }
}

/** One random byte-level edit. */
export function mutateBytes(r: Rng, b: Uint8Array, lo = 0, hi = b.length): { bytes: Uint8Array; kind: string } {
  if (hi <= lo) return { bytes: b, kind: "bytes:none" };
  switch (r.int(0, 5)) {
    case 0: return { bytes: b.slice(0, r.int(0, b.length - 1)), kind: "bytes:truncate" };
    case 1: {
      const c = b.slice();
      for (let k = r.int(1, 8); k > 0; k--) c[r.int(lo, hi - 1)] ^= 1 << r.int(0, 7);
      return { bytes: c, kind: "bytes:bitflip" };
    }
    case 2: {
      const c = b.slice();
      const at = r.int(lo, hi - 1);
      c.fill(r.pick([0, 0xff, 0x7f, 0x80]), at, Math.min(hi, at + r.int(1, 16)));
      return { bytes: c, kind: "bytes:fill" };
    }
    case 3: {
      const at = r.int(lo, hi), n = r.int(1, 64);
      const c = new Uint8Array(b.length + n);
      c.set(b.subarray(0, at));
      for (let i = 0; i < n; i++) c[at + i] = r.int(0, 255);
      c.set(b.subarray(at), at + n);
      return { bytes: c, kind: "bytes:insert" };
    }
    case 4: {
      const at = r.int(lo, hi - 1), n = Math.min(r.int(1, 64), b.length - at);
      const c = new Uint8Array(b.length - n);
      c.set(b.subarray(0, at));
      c.set(b.subarray(at + n), at);
      return { bytes: c, kind: "bytes:delete" };
    }
    default: {
      const c = new Uint8Array(b.length + r.int(1, 100));
      c.set(b);
      return { bytes: c, kind: "bytes:append" };
    }
  }
}

/** Writes NaN, ±Inf or huge f32 values at a few 4-aligned offsets of [lo, hi). */
function poisonF32(r: Rng, b: Uint8Array, lo: number, hi: number): Uint8Array {
  const c = b.slice();
  const dv = new DataView(c.buffer);
  const first = Math.ceil(lo / 4) * 4;
  if (hi - first < 4) return c;
  for (let k = r.int(1, 3); k > 0; k--) {
    const at = first + 4 * r.int(0, Math.floor((hi - first) / 4) - 1);
    dv.setFloat32(at, r.pick([NaN, Infinity, -Infinity, 3.4e38, -3.4e38, 1e-45]), true);
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// running cases

function outcomeOf(e: unknown): string {
  return e instanceof LowbitError ? e.code : "";
}

/** Compiles a loaded model for a 4×4 tile and runs it once; returns the outcome label. */
function compileAndRun(rt: Runtime, m: CompilableModel): string {
  // Compile inside Arena.atomic like the engine does, so failed compiles leave nothing behind.
  const plan = rt.arena.atomic(() => m.compile(rt, 4, 4));
  try {
    plan.inputView(4, 4).set(new Float32Array(48).map((_, i) => (i * 37) % 256));
    plan.runSteps(4, 4, 0, plan.stepCount);
    const s = m.graph.meta.scale;
    if (plan.outputView(4, 4).length !== 48 * s * s) throw new Error(`output has ${plan.outputView(4, 4).length} values for scale ${s}`);
  } finally {
    plan.dispose();
  }
  return "ok+run";
}

interface Runner {
  /** Runs case i; resolves to { kind, outcome } or throws a non-typed error (a finding). */
  run(i: number, r: Rng): Promise<{ kind: string; outcome: string }>;
}

/** Per-case time bound (ms): generous, the point is "no hang, no pathological blow-up". */
export const CASE_MS = 5000;

async function drive(reader: ReaderName, runner: Runner, cases: number, seed: number, onCase?: (i: number) => void): Promise<FuzzStats> {
  const st: FuzzStats = { reader, cases: 0, outcomes: {}, kinds: {}, maxMs: 0, slowest: "", ms: 0, failures: [], failureCount: 0 };
  const t0 = performance.now();
  const fail = (m: string) => {
    st.failureCount++;
    if (st.failures.length < 10) st.failures.push(m);
  };
  for (let i = 0; i < cases; i++) {
    const r = new Rng((seed * 0x9e3779b1 + i * 0x85ebca6b) >>> 0);
    const c0 = performance.now();
    let kind = "?";
    try {
      const res = await runner.run(i, r);
      kind = res.kind;
      bump(st.outcomes, res.outcome);
    } catch (e) {
      const code = outcomeOf(e);
      kind = (e as { fuzzKind?: string }).fuzzKind ?? kind;
      if (code) bump(st.outcomes, code);
      else fail(`${reader} seed ${seed} case ${i}: ${e instanceof Error ? e.stack?.split("\n").slice(0, 4).join(" | ") : String(e)}`);
    }
    bump(st.kinds, kind);
    const dt = performance.now() - c0;
    if (dt > st.maxMs) {
      st.maxMs = dt;
      st.slowest = `case ${i} (${kind})`;
    }
    if (dt > CASE_MS) fail(`${reader} seed ${seed} case ${i} (${kind}) took ${dt.toFixed(0)} ms`);
    st.cases++;
    onCase?.(i);
  }
  st.ms = performance.now() - t0;
  if ((Object.prototype as Record<string, unknown>).polluted !== undefined || ({} as Record<string, unknown>).padding !== undefined) {
    fail(`${reader}: Object.prototype was polluted`);
  }
  return st;
}

/** Tags an error with the mutation kind (for the stats), then rethrows it. */
function tagged<T>(kind: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e && typeof e === "object") (e as { fuzzKind?: string }).fuzzKind = kind;
    throw e;
  }
}
async function taggedAsync<T>(kind: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e && typeof e === "object") (e as { fuzzKind?: string }).fuzzKind = kind;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// TF.js

function tfjsRunner(rt: Runtime): Runner {
  return {
    async run(i, r) {
      const base = makeTfjsModel(new Rng(r.int(0, 2 ** 30)));
      const doc = base.modelJson as Record<string, any>;
      let weights: Uint8Array = new Uint8Array(base.weights);
      const kinds: string[] = [];
      const layers = () => doc.modelTopology.model_config.config.layers as any[];
      for (let k = r.int(1, 3); k > 0; k--) {
        const what = r.int(0, 11);
        // A structural edit may find the structure an earlier edit destroyed: then it is skipped
        // (errors inside the mutator are harness errors, not findings).
        try {
          if (what <= 2) kinds.push(mutateJson(r, doc));
          else if (what === 3) {
            // cycles and dangling refs: rewire a layer to a later one or to nowhere
            const ls = layers();
            const a = r.int(1, ls.length - 1);
            const target = r.next() < 0.8 ? ls[r.int(a, ls.length - 1)].name : r.pick(["ghost", "", "in"]);
            ls[a].inbound_nodes = r.next() < 0.3 ? [[[target, 0, 0, {}]], [[target, 0, 0, {}]]] : [[[target, r.int(0, 2), r.int(0, 2), {}]]];
            kinds.push("tfjs:rewire");
          } else if (what === 4) {
            const w = r.pick(doc.weightsManifest[0].weights as any[]);
            w.shape = r.pick([[1e6, 1e6], [2 ** 30, 2], [-1], [w.shape[0] + 1, ...w.shape.slice(1)], w.shape.slice(1), [], [0, ...w.shape], [1.5]]);
            kinds.push("tfjs:shape");
          } else if (what === 5) {
            const w = r.pick(doc.weightsManifest[0].weights as any[]);
            if (r.next() < 0.5) w.dtype = r.pick(["int32", "float16", "string", "bool", "complex64", 1]);
            else w.quantization = r.pick([{ dtype: "uint8" }, { dtype: "uint8", scale: NaN, min: 0 }, { dtype: "uint16", scale: 1e38, min: -1e38 }, { dtype: "float16" }, { dtype: "int8", scale: 1, min: 0 }, "uint8", null]);
            kinds.push("tfjs:dtype");
          } else if (what === 6) {
            weights = mutateBytes(r, weights).bytes;
            kinds.push("tfjs:shard-bytes");
          } else if (what === 7) {
            weights = poisonF32(r, weights, 0, weights.length);
            kinds.push("tfjs:shard-nan");
          } else if (what === 8) {
            const ls = layers();
            const l = r.pick(ls.slice(1));
            l.class_name = r.pick(["Conv2D", "Add", "Concatenate", "Lambda", "Dense", "PixelShuffle0x", "PixelShuffle99x", "UpSampling2D", "MultiplyBeta", "InputLayer", "Functional"]);
            kinds.push("tfjs:class");
          } else if (what === 9) {
            const l = r.pick(layers().filter((x) => x.class_name === "Conv2D"));
            if (l) {
              const key = r.pick(["kernel_size", "filters", "strides", "padding", "dilation_rate", "activation", "groups", "use_bias", "data_format"]);
              l.config[key] = r.pick([evilValue(r), [3, 5], [2, 2], 1e9, "causal", "gelu", 0, false]);
            }
            kinds.push("tfjs:conv-config");
          } else if (what === 10) {
            doc.weightsManifest[0].paths = [r.pick(["../w.bin", "/etc/passwd", "//evil.test/w.bin", "https://evil.test/w.bin", "%2e%2e/w.bin", "a/../../w.bin", "sub/w.bin", "w.bin?x=1", "C:\\w.bin", "..%2fw.bin", "group1-shard1of1.bin"])];
            kinds.push("tfjs:path");
          } else {
            // the whole document as text, then byte edits (invalid JSON, truncation)
            kinds.push("tfjs:json-text");
          }
        } catch {
          kinds.push("skip");
        }
      }
      const kind = kinds.join("+");
      const useUrl = kinds.includes("tfjs:path") || r.next() < 0.15;
      let modelJson: object | string = doc;
      if (kinds.includes("tfjs:json-text")) {
        const text = new TextEncoder().encode(JSON.stringify(doc));
        modelJson = new TextDecoder().decode(mutateBytes(r, text).bytes);
      }
      const g = await taggedAsync(kind, async () => {
        if (!useUrl) return loadTfjsModel({ modelJson, weights });
        const fetched: string[] = [];
        const text = typeof modelJson === "string" ? modelJson : JSON.stringify(modelJson);
        const f = (async (u: URL | string) => {
          const href = String(u);
          fetched.push(href);
          if (href === "https://models.test/m/model.json") return new Response(text);
          if (href.startsWith("https://models.test/m/")) return new Response(weights as Uint8Array<ArrayBuffer>);
          return new Response("", { status: 404 });
        }) as typeof fetch;
        try {
          return await loadTfjsModel("https://models.test/m/model.json", { fetch: f });
        } finally {
          const out = fetched.filter((h) => !h.startsWith("https://models.test/m/"));
          if (out.length) throw new Error(`fetched outside the model directory: ${out.join(", ")}`);
        }
      });
      return { kind, outcome: tagged(kind, () => compileAndRun(rt, fp32Model(g))) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// .lowbit

interface LowbitBase { name: string; bytes: Uint8Array }

/** Base files: FP32, static W8A8 (8- and 16-bit residual sums) and W4A4 (mixed, keep-fp32 head), dynamic DAQ. */
export async function lowbitBases(rt: Runtime): Promise<LowbitBase[]> {
  const out: LowbitBase[] = [];
  for (const seed of [1, 2]) {
    const g: Graph = smallGraph(seed);
    out.push({ name: `fp32-${seed}`, bytes: saveLowbit(g) });
    const calib = await calibrate(g, [smallImage(new Rng(seed), 12, 10, 3)], { runtime: rt });
    out.push({ name: `w8a8-${seed}`, bytes: saveLowbit(quantizeModel(calib, "w8a8")) });
    out.push({ name: `w8a8-r16-${seed}`, bytes: saveLowbit(quantizeModel(calib, { bits: "w8a8", residualBits: 16 })) });
    out.push({ name: `w4a4-${seed}`, bytes: saveLowbit(quantizeModel(calib, { bits: "w4a4", method: "mse", keepFp32: ["head"] })) });
    out.push({ name: `daq-${seed}`, bytes: saveLowbit(await quantizeDaq(g, { weightBits: 4, actBits: 4 })) });
  }
  return out;
}

function splitContainer(b: Uint8Array): { header: Record<string, any>; doc: Record<string, any>; data: Uint8Array; n: number } {
  const n = new DataView(b.buffer, b.byteOffset).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
  return { header, doc: JSON.parse(header.__metadata__.lowbit), data: b.subarray(8 + n), n };
}

function joinContainer(header: Record<string, any>, doc: unknown, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify({ ...header, __metadata__: { ...header.__metadata__, lowbit: JSON.stringify(doc) } }));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function lowbitRunner(rt: Runtime, bases: LowbitBase[]): Runner {
  return {
    async run(i, r) {
      const base = bases[i % bases.length];
      const { header, doc, data, n } = splitContainer(base.bytes);
      let bytes: Uint8Array;
      const kinds: string[] = [base.name.replace(/-\d+$/, "")];
      let h = header, d = doc, dat = data;
      let raw: ((b: Uint8Array) => Uint8Array) | null = null;
      for (let k = r.int(1, 2); k > 0; k--) {
        const what = r.int(0, 8);
        try {
          if (what <= 2) {
            // lowbit metadata: graph nodes, meta, quant, dynamic
            const part = r.pick(["graph", "graph", "meta", "quant", "dynamic", "*"]);
            kinds.push(`meta-${part}:` + mutateJson(r, part === "*" || d[part] === undefined ? d : d[part]));
          } else if (what === 3) {
            // safetensors entries: shapes, dtypes, offsets
            const names = Object.keys(h).filter((x) => x !== "__metadata__");
            const e = h[r.pick(names)];
            const key = r.pick(["shape", "dtype", "data_offsets"]);
            e[key] = key === "shape" ? r.pick([[1e6, 1e6], [2 ** 53], [-1], [...e.shape, 1], e.shape.slice(1), [0]])
              : key === "dtype" ? r.pick(["F16", "F64", "I64", "BOOL", "U8", "I8", "F32", 7])
              : r.pick([[0, 2 ** 53], [e.data_offsets[1], e.data_offsets[0]], [e.data_offsets[0] + 1, e.data_offsets[1] + 1], [0, 0], [-4, e.data_offsets[1]]]);
            kinds.push(`st:${key}`);
          } else if (what === 4) {
            kinds.push("st:" + mutateJson(r, h));
          } else if (what === 5) {
            // NaN/Inf in an F32 tensor
            const f32 = Object.keys(h).filter((x) => x !== "__metadata__" && h[x].dtype === "F32");
            if (f32.length) {
              const e = h[r.pick(f32)];
              dat = poisonF32(r, dat, e.data_offsets[0], e.data_offsets[1]);
            }
            kinds.push("data:nan");
          } else if (what === 6) {
            // random integer codes (out-of-range int4/int8 codes, nibbles)
            const ints = Object.keys(h).filter((x) => x !== "__metadata__" && (h[x].dtype === "I8" || h[x].dtype === "U8" || h[x].dtype === "I16"));
            dat = dat.slice();
            if (ints.length) {
              const e = h[r.pick(ints)];
              for (let q = r.int(1, 6); q > 0 && e.data_offsets[1] > e.data_offsets[0]; q--) dat[r.int(e.data_offsets[0], e.data_offsets[1] - 1)] = r.int(0, 255);
            }
            kinds.push("data:codes");
          } else if (what === 7) {
            raw = (b) => mutateBytes(r, b, 0, 8 + n).bytes;
            kinds.push("raw:header");
          } else {
            raw = (b) => mutateBytes(r, b).bytes;
            kinds.push("raw:any");
          }
        } catch {
          kinds.push("skip");
        }
      }
      const kind = kinds.join("+");
      bytes = tagged(kind, () => joinContainer(h, d, dat));
      if (raw) bytes = raw(bytes);
      const m = tagged(kind, () => loadLowbit(bytes));
      const cm: CompilableModel = "compile" in m ? m : fp32Model(m);
      return { kind, outcome: tagged(kind, () => compileAndRun(rt, cm)) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// PNG / JPEG

interface Chunk { type: string; data: Uint8Array }

function pngChunks(b: Uint8Array): Chunk[] {
  const out: Chunk[] = [];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let p = 8; p + 12 <= b.length;) {
    const len = dv.getUint32(p);
    out.push({ type: String.fromCharCode(...b.subarray(p + 4, p + 8)), data: b.slice(p + 8, p + 8 + len) });
    p += 12 + len;
  }
  return out;
}

function pngJoin(chunks: Chunk[]): Uint8Array {
  const parts = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ...chunks.map((c) => pngChunk(c.type, c.data))];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** JPEG segments up to SOS: [offset, marker, length]. */
function jpegSegments(b: Uint8Array): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let p = 2; p + 4 <= b.length;) {
    const m = b[p + 1];
    const len = (b[p + 2] << 8) | b[p + 3];
    out.push([p, m, len]);
    if (m === 0xda) break;
    p += 2 + len;
  }
  return out;
}

/** Limits for the image fuzz: small enough that a header edit cannot make a case slow. */
export const IMAGE_FUZZ_MAX_PIXELS = 2 ** 20;

function imageRunner(): Runner {
  return {
    async run(i, r) {
      const w = r.int(1, 40), h = r.int(1, 40);
      const isPng = r.next() < 0.6;
      const img = smallImage(r, w, h, 4);
      let bytes: Uint8Array;
      const kinds: string[] = [isPng ? "png" : "jpeg"];
      if (isPng) {
        const ch = r.pick([1, 2, 3, 4] as const);
        const data = new Uint8Array(w * h * ch);
        for (let p = 0; p < w * h; p++) for (let c = 0; c < ch; c++) data[p * ch + c] = img.data[p * 4 + c];
        const chunks = pngChunks(encodePng({ data, width: w, height: h, channels: ch }));
        for (let k = r.int(1, 2); k > 0; k--) {
          const what = r.int(0, 7);
          if (what <= 1 && chunks[0].data.length >= 13) {
            const ih = chunks[0].data;
            const dv = new DataView(ih.buffer, ih.byteOffset);
            const f = r.int(0, 5);
            if (f === 0) dv.setUint32(0, r.pick([0, 1, w + 1, 65535, 2 ** 31 - 1, 2 ** 32 - 1, r.int(1, 5000)]));
            else if (f === 1) dv.setUint32(4, r.pick([0, 1, h + 1, 65535, 2 ** 31 - 1, r.int(1, 5000)]));
            else if (f === 2) ih[8] = r.pick([1, 2, 4, 8, 16, 3, 0, 32]);
            else if (f === 3) ih[9] = r.pick([0, 2, 3, 4, 6, 1, 7]);
            else if (f === 4) ih[12] = r.pick([0, 1, 2]);
            else ih[r.int(10, 11)] = r.int(0, 2);
            kinds.push("png:ihdr");
          } else if (what === 2) {
            const c = r.pick(chunks);
            c.data = mutateBytes(r, c.data).bytes;
            kinds.push(`png:${c.type}-data`);
          } else if (what === 3) {
            // add ancillary/critical chunks: PLTE, tRNS, duplicate IHDR/IDAT, unknown critical
            const extra = r.pick([
              { type: "PLTE", data: new Uint8Array(r.int(0, 800)).map(() => r.int(0, 255)) },
              { type: "tRNS", data: new Uint8Array(r.int(0, 300)).map(() => r.int(0, 255)) },
              { type: "IHDR", data: chunks[0].data.slice() },
              { type: "IDAT", data: new Uint8Array(r.int(0, 50)).map(() => r.int(0, 255)) },
              { type: "ABCD", data: new Uint8Array(4) },
              { type: "tEXt", data: new TextEncoder().encode("Comment\0__proto__") },
            ]);
            chunks.splice(r.int(0, chunks.length), 0, extra);
            kinds.push(`png:add-${extra.type}`);
          } else if (what === 4) {
            chunks.splice(r.int(0, chunks.length - 1), 1);
            kinds.push("png:drop-chunk");
          } else if (what === 5) {
            const j = r.int(0, chunks.length - 1), k2 = r.int(0, chunks.length - 1);
            [chunks[j], chunks[k2]] = [chunks[k2], chunks[j]];
            kinds.push("png:reorder");
          } else kinds.push("png:raw");
        }
        bytes = pngJoin(chunks);
        if (kinds.includes("png:raw") || r.next() < 0.2) bytes = mutateBytes(r, bytes).bytes;
      } else {
        bytes = new Uint8Array(jpeg.encode({ data: img.data, width: w, height: h }, r.int(5, 100)).data);
        for (let k = r.int(1, 2); k > 0; k--) {
          const segs = jpegSegments(bytes);
          const what = r.int(0, 5);
          if (what <= 1) {
            const sof = segs.find((s) => s[1] >= 0xc0 && s[1] <= 0xc2);
            if (sof) {
              const p = sof[0];
              const f = r.int(0, 3);
              bytes = bytes.slice();
              if (f === 0) { const v = r.pick([0, 1, 65535, r.int(1, 3000)]); bytes[p + 5] = v >> 8; bytes[p + 6] = v & 255; }
              else if (f === 1) { const v = r.pick([0, 1, 65535, r.int(1, 3000)]); bytes[p + 7] = v >> 8; bytes[p + 8] = v & 255; }
              else if (f === 2) bytes[p + 9] = r.pick([0, 1, 2, 3, 4, 5, 255]);
              else bytes[p + 1] = r.pick([0xc0, 0xc1, 0xc2, 0xc3, 0xc9]);
            }
            kinds.push("jpeg:sof");
          } else if (what === 2 && segs.length > 0) {
            const s = r.pick(segs);
            bytes = bytes.slice();
            const v = r.pick([0, 1, 2, 0xffff, s[2] + 1, s[2] - 1]);
            bytes[s[0] + 2] = v >> 8;
            bytes[s[0] + 3] = v & 255;
            kinds.push("jpeg:seg-length");
          } else if (what === 3 && segs.length > 0) {
            const s = r.pick(segs);
            bytes = mutateBytes(r, bytes, s[0] + 4, Math.min(bytes.length, s[0] + 2 + s[2])).bytes;
            kinds.push(`jpeg:seg-${s[1].toString(16)}`);
          } else if (what === 4 && segs.length > 0) {
            const sos = segs.at(-1)!;
            bytes = mutateBytes(r, bytes, sos[0] + 2 + sos[2], bytes.length - 2).bytes;
            kinds.push("jpeg:scan");
          } else {
            bytes = mutateBytes(r, bytes).bytes;
            kinds.push("jpeg:raw");
          }
        }
      }
      const kind = kinds.join("+");
      const out = tagged(kind, () => decodeImage(bytes, { maxPixels: IMAGE_FUZZ_MAX_PIXELS }));
      if (out.data.length !== out.width * out.height * out.channels || out.width < 1 || out.height < 1) {
        throw new Error(`decoded image is inconsistent: ${out.width}×${out.height}×${out.channels}, ${out.data.length} bytes`);
      }
      return { kind, outcome: "ok" };
    },
  };
}

// ---------------------------------------------------------------------------------------------

/** Runs `cases` fuzz cases of one reader with `seed`. */
export async function fuzzReader(reader: ReaderName, rt: Runtime, cases: number, seed: number, onCase?: (i: number) => void): Promise<FuzzStats> {
  const runner = reader === "tfjs" ? tfjsRunner(rt) : reader === "lowbit" ? lowbitRunner(rt, await lowbitBases(rt)) : imageRunner();
  return drive(reader, runner, cases, seed, onCase);
}

/** One line: cases, outcomes, slowest case. */
export function describeStats(s: FuzzStats): string {
  const o = Object.entries(s.outcomes).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  return `${s.reader}: ${s.cases} cases in ${(s.ms / 1000).toFixed(1)} s (${o}); slowest ${s.maxMs.toFixed(0)} ms, ${s.slowest}`;
}
