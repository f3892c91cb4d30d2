// Safe loading and resource limits: model files are data (no eval, no prototype pollution), sizes
// claimed by untrusted headers fail fast before allocation, manifest paths stay in their folder,
// and every caller-settable limit (maxModelBytes, maxPixels, maxMemoryBytes, memoryBudget) gives a
// typed error — never an out-of-memory crash — and leaves the engine usable.
import test from "tape";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LowbitError } from "../../src/runtime/errors.ts";
import { createRuntime } from "../../src/runtime/runtime.ts";
import {
  DEFAULT_LIMITS, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_MODEL_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_MEMORY_BUDGET,
} from "../../src/index.ts";
import { loadTfjsModel } from "../../src/io/tfjs/index.ts";
import { loadAnyModel } from "../../src/io/load-any.ts";
import { loadLowbit, saveLowbit } from "../../src/io/lowbit-file.ts";
import { decodeImage, encodePng, readImageHeader } from "../../src/io/image.ts";
import { createUpscaler, fp32Model } from "../../src/engine/upscaler-api.ts";
import { loadModel } from "../../src/models/registry.ts";
import { testBackend, testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { crc32, makeTfjsModel, pngWithHeader, smallImage, jpegWithSize } from "./fixtures.ts";

async function code(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === "function" ? p() : p);
    return "ok";
  } catch (e) {
    return e instanceof LowbitError ? e.code : `non-LowbitError ${String(e)}`;
  }
}

/**
 * Bytes of ArrayBuffers allocated since `m0` (a fail-fast check must not allocate what a header
 * claims; a memory measure, not a timing, so the check holds on a loaded machine).
 */
const abBytes = () => process.memoryUsage().arrayBuffers;
const grown = (m0: number) => Math.max(0, abBytes() - m0);
const NOTHING = 16 * 2 ** 20;
const mib = (b: number) => (b / 2 ** 20).toFixed(1);

test("limits: defaults are documented constants, exported from the package entry", (t) => {
  t.deepEqual(DEFAULT_LIMITS, { maxPixels: 2 ** 26, maxModelBytes: 2 ** 30, maxMemoryBytes: 2 ** 31, memoryBudget: 512 * 2 ** 20 });
  t.equal(DEFAULT_MAX_PIXELS, DEFAULT_LIMITS.maxPixels);
  t.equal(DEFAULT_MAX_MODEL_BYTES, DEFAULT_LIMITS.maxModelBytes);
  t.equal(DEFAULT_MAX_MEMORY_BYTES, DEFAULT_LIMITS.maxMemoryBytes);
  t.equal(DEFAULT_MEMORY_BUDGET, DEFAULT_LIMITS.memoryBudget);
  t.ok(Object.isFrozen(DEFAULT_LIMITS), "frozen");
  t.end();
});

test("safe loading: no eval / Function / dynamic code anywhere in the library source", (t) => {
  const root = join(fileURLToPath(import.meta.url), "..", "..", "..", "src");
  const files: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith(".ts")) files.push(p);
    }
  };
  walk(root);
  const bad: string[] = [];
  for (const f of files) {
    if (f.endsWith("wasm-bytes.generated.ts")) continue;
    // strip comments and string literals' contents crudely: code only
    const src = readFileSync(f, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    if (/(^|[^.\w])eval\s*\(|new\s+Function\s*\(|(^|[^.\w])Function\s*\(|setTimeout\s*\(\s*["'`]|import\s*\(\s*[^"'`\s]/m.test(src)) bad.push(f.slice(root.length + 1));
  }
  t.ok(files.length > 50, `${files.length} source files scanned`);
  t.deepEqual(bad, [], "no eval, Function constructor, string timers or computed dynamic imports");
  t.end();
});

test("maxModelBytes: TF.js models from memory, disk and URL; claims are checked before any shard is read", async (t) => {
  const m = makeTfjsModel(new Rng(5));
  const size = (m.weights as ArrayBuffer).byteLength;
  t.equal(await code(loadTfjsModel(m)), "ok", "fits the default");
  t.equal(await code(loadTfjsModel(m, { maxModelBytes: size - 1 })), "E_MEMORY", "in memory: weights above the limit");
  t.equal(await code(loadTfjsModel(m, { maxModelBytes: Number.NaN })), "E_ARGUMENT", "NaN limit is rejected, not ignored");
  t.equal(await code(loadTfjsModel(m, { maxModelBytes: 0 })), "E_ARGUMENT", "0 is rejected");
  t.equal(await code(loadTfjsModel({ modelJson: JSON.stringify(m.modelJson), weights: m.weights }, { maxModelBytes: 100 })), "E_MEMORY", "model.json text above the limit");

  // A manifest claiming 2^30 elements × 1000 tensors (4 TB) with a tiny shard: fails on the claim.
  const huge = JSON.parse(JSON.stringify(m.modelJson));
  huge.weightsManifest[0].weights.push(...Array.from({ length: 1000 }, (_, i) => ({ name: `ghost${i}/kernel`, shape: [1024, 1024, 1024], dtype: "float32" })));
  let m0 = abBytes();
  t.equal(await code(loadTfjsModel({ modelJson: huge, weights: m.weights })), "E_MEMORY", "4 TB claimed by the manifest → E_MEMORY");
  t.ok(grown(m0) < NOTHING, `…nothing allocated (${mib(grown(m0))} MiB of ArrayBuffers)`);
  const one = JSON.parse(JSON.stringify(m.modelJson));
  one.weightsManifest[0].weights[0].shape = [1e6, 1e6, 1, 1];
  m0 = abBytes();
  t.equal(await code(loadTfjsModel({ modelJson: one, weights: m.weights })), "E_MODEL_FORMAT", "one tensor claiming 10^12 elements → E_MODEL_FORMAT");
  t.ok(grown(m0) < NOTHING, `…nothing allocated (${mib(grown(m0))} MiB of ArrayBuffers)`);

  // On disk: a manifest listing one shard 200 times is stopped by the size check before the reads.
  const dir = mkdtempSync(join(tmpdir(), "lowbit-limits-"));
  try {
    const rep = JSON.parse(JSON.stringify(m.modelJson));
    rep.weightsManifest[0].paths = Array.from({ length: 200 }, () => "group1-shard1of1.bin");
    writeFileSync(join(dir, "model.json"), JSON.stringify(rep));
    writeFileSync(join(dir, "group1-shard1of1.bin"), new Uint8Array(m.weights as ArrayBuffer));
    t.equal(await code(loadTfjsModel(dir, { maxModelBytes: 20 * size })), "E_MEMORY", "same shard listed 200× → E_MEMORY before reading them all");
    writeFileSync(join(dir, "model.json"), JSON.stringify(m.modelJson));
    t.equal(await code(loadTfjsModel(dir)), "ok", "the honest model loads from disk");
    t.equal(await code(loadTfjsModel(dir, { maxModelBytes: size })), "E_MEMORY", "disk: json + shard above the limit");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // URL: a server that streams more than it should (no Content-Length) is cut off; a lying
  // Content-Length is refused before the body is read.
  const json = JSON.stringify(m.modelJson);
  let pulled = 0;
  const endless = () => new ReadableStream<Uint8Array>({
    pull(c) {
      pulled += 65536;
      c.enqueue(new Uint8Array(65536));
    },
  });
  const stub = (mode: "endless" | "declared") => (async (u: URL | string) => {
    if (String(u).endsWith("model.json")) return new Response(json);
    if (mode === "declared") return new Response(new Uint8Array(16), { headers: { "content-length": String(2 ** 40) } });
    return new Response(endless());
  }) as typeof fetch;
  t.equal(await code(loadTfjsModel("https://models.test/m/model.json", { fetch: stub("endless"), maxModelBytes: 2 ** 20 })), "E_MEMORY", "endless shard stream → E_MEMORY");
  t.ok(pulled <= 2 ** 20 + 3 * 65536, `…after reading ${pulled} bytes (limit 1 MiB)`);
  t.equal(await code(loadTfjsModel("https://models.test/m/model.json", { fetch: stub("declared") })), "E_MEMORY", "Content-Length 1 TiB → E_MEMORY");
});

test("maxModelBytes: .lowbit bytes, files and URLs through loadAnyModel", async (t) => {
  const g = fp32Model((await import("./fixtures.ts")).smallGraph(3)).graph;
  const bytes = saveLowbit(g);
  t.equal(await code(loadAnyModel(bytes)), "ok");
  t.equal(await code(loadAnyModel(bytes, { maxModelBytes: bytes.length - 1 })), "E_MEMORY", "bytes above the limit");
  const dir = mkdtempSync(join(tmpdir(), "lowbit-limits-"));
  try {
    const p = join(dir, "m.lowbit");
    writeFileSync(p, bytes);
    t.equal(await code(loadAnyModel(p, { maxModelBytes: bytes.length })), "ok", "exactly at the limit loads");
    t.equal(await code(loadAnyModel(p, { maxModelBytes: bytes.length - 1 })), "E_MEMORY", "file above the limit (checked by size before reading)");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (async () => new Response(bytes as Uint8Array<ArrayBuffer>)) as unknown as typeof fetch;
  t.equal(await code(loadAnyModel("https://m.test/x.lowbit", { fetch: f })), "ok", "URL loads");
  t.equal(await code(loadAnyModel("https://m.test/x.lowbit", { fetch: f, maxModelBytes: 1000 })), "E_MEMORY", "URL body above the limit");
  // A safetensors header claiming a 10^12-element tensor fails fast (parse before allocation).
  const text = `{"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}`;
  const b = new Uint8Array(8 + text.length);
  new DataView(b.buffer).setUint32(0, text.length, true);
  b.set(new TextEncoder().encode(text), 8);
  const m0 = abBytes();
  t.equal(await code(() => loadLowbit(b)), "E_MODEL_FORMAT", ".lowbit tensor claiming 4 TB → E_MODEL_FORMAT");
  t.ok(grown(m0) < NOTHING, `…nothing allocated (${mib(grown(m0))} MiB of ArrayBuffers)`);
  const polluted = new TextEncoder().encode(`{"__proto__":{"x":1}}`);
  const pb = new Uint8Array(8 + polluted.length);
  new DataView(pb.buffer).setUint32(0, polluted.length, true);
  pb.set(polluted, 8);
  t.equal(await code(() => loadLowbit(pb)), "E_MODEL_FORMAT", ".lowbit header with a __proto__ key → E_MODEL_FORMAT");
  t.equal(({} as Record<string, unknown>).x, undefined, "Object.prototype untouched");
});

test("maxPixels: image headers claiming huge sizes fail before decoding, in the decoder and the engine", async (t) => {
  const png = pngWithHeader(100000, 100000);
  t.deepEqual([readImageHeader(png).width, readImageHeader(png).height], [100000, 100000], "header read without decoding");
  let m0 = abBytes();
  t.equal(await code(() => decodeImage(png)), "E_MEMORY", "PNG 10^10 px → E_MEMORY");
  t.ok(grown(m0) < NOTHING, `…nothing allocated (${mib(grown(m0))} MiB of ArrayBuffers)`);
  const jpg = jpegWithSize(65000, 65000);
  m0 = abBytes();
  t.equal(await code(() => decodeImage(jpg)), "E_MEMORY", "JPEG 4.2·10^9 px → E_MEMORY");
  t.ok(grown(m0) < NOTHING, `…nothing allocated (${mib(grown(m0))} MiB of ArrayBuffers)`);
  t.equal(await code(() => decodeImage(encodePng(smallImage(new Rng(1), 20, 10, 3)), { maxPixels: 199 })), "E_MEMORY", "caller limit 199 px vs 200 px image");
  t.equal(await code(() => decodeImage(encodePng(smallImage(new Rng(1), 20, 10, 3)), { maxPixels: 200 })), "ok", "exactly at the limit decodes");
  t.equal(crc32(new TextEncoder().encode("IEND")), 0xae426082, "fixture CRC is the PNG CRC");
  const rt = await testRuntime();
  t.equal(await code(createUpscaler((await import("./fixtures.ts")).smallGraph(1), { runtime: rt, maxPixels: Number.NaN })), "E_ARGUMENT", "engine: NaN maxPixels rejected");
  t.equal(await code(createUpscaler((await import("./fixtures.ts")).smallGraph(1), { runtime: rt, memoryBudget: -1 })), "E_ARGUMENT", "engine: negative memoryBudget rejected");
});

test("maxMemoryBytes: a plan too large for the arena is E_MEMORY, leaks nothing, and the engine keeps working", async (t) => {
  t.equal(await code(createRuntime({ backend: testBackend(), maxMemoryBytes: Number.NaN })), "E_ARGUMENT", "NaN cap rejected (it would disable the cap)");
  const g = await loadModel("esrgan-slim-x2");
  const bpp = fp32Model(g).bytesPerPixel!();
  const cap = 16 * 2 ** 20;
  const rt = await createRuntime({ backend: testBackend(), maxMemoryBytes: cap });
  const img = smallImage(new Rng(9), 128, 112, 3);
  const up = await createUpscaler(g, { runtime: rt, tile: 128 });
  const blocks = rt.arena.liveBlocks;
  t.ok(128 * 112 * bpp > cap, `a 128×112 tile needs ${(128 * 112 * bpp / 2 ** 20).toFixed(1)} MiB of activations, cap ${cap / 2 ** 20} MiB`);
  t.equal(await code(up.upscale(img)), "E_MEMORY", "upscale with a tile over the cap → E_MEMORY");
  t.equal(await code(up.upscale(img)), "E_MEMORY", "again (no state left behind by the first failure)");
  t.equal(rt.arena.liveBlocks, blocks, `no arena blocks leaked by the failed compiles (${rt.arena.liveBlocks} live)`);
  t.ok(rt.arena.capacity <= cap, `WASM memory stayed within the cap (${(rt.arena.capacity / 2 ** 20).toFixed(1)} MiB)`);
  const ok = await up.upscale(img, { tile: 24 });
  const fresh = await createUpscaler(g, { runtime: await testRuntime(), tile: 24 });
  const want = await fresh.upscale(img);
  t.deepEqual(ok.data, want.data, "same upscaler, smaller tile: output identical to a fresh engine's");
  // The automatic tile follows memoryBudget, so a small budget runs under the small cap.
  const auto = await createUpscaler(g, { runtime: rt, memoryBudget: 8 * 2 ** 20 });
  t.ok(auto.tile < 112, `memoryBudget 8 MiB picks tile ${auto.tile}`);
  t.equal((await auto.upscale(img)).width, 256, "and runs under the 16 MiB cap");
  up.dispose();
  auto.dispose();
  fresh.dispose();
  rt.dispose();
});
