import test from "tape";
import { deflateSync } from "node:zlib";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import jpeg from "jpeg-js";
import { LowbitError } from "../src/runtime/errors.ts";
import { decodeImage, encodePng, readImage, readImageHeader, writePng, DEFAULT_MAX_PIXELS } from "../src/io/image.ts";
import { Rng } from "./util/rng.ts";
import { findEvalDir } from "./util/eval-data.ts";

// A minimal independent PNG writer, so the decoder is tested on files pngjs did not produce:
// any colour type / bit depth, optional PLTE/tRNS, and headers that lie about the size.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const v of b) c = CRC_TABLE[(c ^ v) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}
function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
/** rows: already-packed scanline bytes (without the filter byte). */
function makePng(w: number, h: number, depth: number, colorType: number, rows: Uint8Array[], extra: Uint8Array[] = [], interlace = 0): Uint8Array {
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, w);
  dv.setUint32(4, h);
  ihdr[8] = depth;
  ihdr[9] = colorType;
  ihdr[12] = interlace;
  const raw = concat(rows.flatMap((r) => [new Uint8Array([0]), r]));
  return concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    ...extra,
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof LowbitError ? e.code : `non-LowbitError: ${String(e)}`;
  }
  return "no error";
}
async function codeAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return e instanceof LowbitError ? e.code : `non-LowbitError: ${String(e)}`;
  }
  return "no error";
}

test("image io: PNG round trip for 1–4 channels; gray expands to RGB, alpha kept", (t) => {
  const rng = new Rng(1);
  for (const c of [1, 2, 3, 4]) {
    const w = rng.int(1, 9), h = rng.int(1, 9);
    const data = rng.fillUint8(new Uint8Array(w * h * c));
    const bytes = encodePng({ data, width: w, height: h, channels: c });
    const hdr = readImageHeader(bytes);
    t.deepEqual([hdr.format, hdr.width, hdr.height, hdr.hasAlpha], ["png", w, h, c === 2 || c === 4], `${c} ch: header`);
    const back = decodeImage(bytes);
    const outC = c === 2 || c === 4 ? 4 : 3;
    t.equal(back.channels, outC, `${c} ch → ${outC} channels`);
    let ok = back.width === w && back.height === h && back.data.length === w * h * outC;
    for (let i = 0; ok && i < w * h; i++) {
      const src = data.subarray(i * c, i * c + c);
      const rgb = c >= 3 ? [src[0], src[1], src[2]] : [src[0], src[0], src[0]];
      const alpha = c === 2 ? src[1] : c === 4 ? src[3] : 255;
      const got = back.data.subarray(i * outC, i * outC + outC);
      if (got[0] !== rgb[0] || got[1] !== rgb[1] || got[2] !== rgb[2] || (outC === 4 && got[3] !== alpha)) ok = false;
    }
    t.ok(ok, `${c} ch: pixels survive`);
    const forced3 = decodeImage(bytes, { channels: 3 });
    const forced4 = decodeImage(bytes, { channels: 4 });
    t.ok(forced3.channels === 3 && forced4.channels === 4, `${c} ch: channels option`);
    t.ok(forced4.data.every((v, i) => i % 4 !== 3 || outC === 4 || v === 255), "added alpha is opaque");
  }
  t.end();
});

test("image io: 16-bit PNG reduced as round(v/257); palette, tRNS, 1-bit gray expanded", (t) => {
  // 16-bit RGB, values chosen where round(v/257) and the high byte disagree.
  const vals = [0, 128, 129, 0x80ff, 0x8080, 65535, 257 * 7 + 128, 257 * 7 + 129, 1000];
  const row = new Uint8Array(vals.length * 2);
  vals.forEach((v, i) => {
    row[2 * i] = v >> 8;
    row[2 * i + 1] = v & 255;
  });
  const p16 = makePng(3, 1, 16, 2, [row]);
  t.equal(readImageHeader(p16).bitDepth, 16);
  const d16 = decodeImage(p16);
  t.deepEqual(Array.from(d16.data), vals.map((v) => Math.round(v / 257)), "RGB16 → round(v·255/65535)");
  t.notDeepEqual(Array.from(d16.data), vals.map((v) => v >> 8), "not the high byte");
  // 16-bit gray + alpha.
  const ga = makePng(1, 1, 16, 4, [new Uint8Array([0x07, 0x88, 0x00, 0x81])]); // 1928 → 8 (high byte 7), 129 → 1
  t.deepEqual(Array.from(decodeImage(ga).data), [8, 8, 8, 1], "GA16 → RGBA");
  // 2-bit palette, no tRNS → RGB.
  const plte = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7]);
  const pal = makePng(4, 1, 2, 3, [new Uint8Array([0b00011011])], [chunk("PLTE", plte)]);
  t.deepEqual(Array.from(decodeImage(pal).data), [255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7], "palette expanded");
  // 8-bit palette with tRNS → RGBA.
  const palT = makePng(2, 1, 8, 3, [new Uint8Array([1, 0])], [chunk("PLTE", plte), chunk("tRNS", new Uint8Array([10]))]);
  const dT = decodeImage(palT);
  t.equal(dT.channels, 4, "tRNS → alpha channel");
  t.deepEqual(Array.from(dT.data), [0, 255, 0, 255, 255, 0, 0, 10], "palette alpha from tRNS");
  // 1-bit gray.
  const g1 = makePng(3, 1, 1, 0, [new Uint8Array([0b10100000])]);
  t.deepEqual(Array.from(decodeImage(g1).data), [255, 255, 255, 0, 0, 0, 255, 255, 255], "1-bit gray → 0/255 RGB");
  // Adam7-interlaced 8-bit RGB, odd size (some passes empty in one direction).
  {
    const w = 5, h = 3;
    const px = new Uint8Array(w * h * 3).map((_, i) => (i * 37) & 255);
    const rows: Uint8Array[] = [];
    for (const [x0, y0, dx, dy] of [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]]) {
      for (let y = y0; y < h; y += dy) {
        const r: number[] = [];
        for (let x = x0; x < w; x += dx) r.push(px[(y * w + x) * 3], px[(y * w + x) * 3 + 1], px[(y * w + x) * 3 + 2]);
        if (r.length) rows.push(Uint8Array.from(r));
      }
    }
    const il = makePng(w, h, 8, 2, rows, [], 1);
    t.deepEqual(Array.from(decodeImage(il).data), Array.from(px), "Adam7 interlaced RGB");
    t.equal(code(() => decodeImage(makePng(w, h, 8, 2, rows.slice(0, -1), [], 1))), "E_IO", "interlaced, last row missing → E_IO");
  }
  // Trailing bytes after IEND are ignored.
  t.deepEqual(Array.from(decodeImage(concat([g1, new Uint8Array([1, 2, 3])])).data), Array.from(decodeImage(g1).data), "trailing bytes after IEND ignored");
  t.end();
});

test("image io: truncated, corrupt and foreign files are typed errors", (t) => {
  const rng = new Rng(2);
  const good = encodePng({ data: rng.fillUint8(new Uint8Array(5 * 4 * 3)), width: 5, height: 4, channels: 3 });
  const codes = new Map<string, number>();
  for (let n = 0; n < good.length; n++) {
    const c = code(() => decodeImage(good.subarray(0, n)));
    codes.set(c, (codes.get(c) ?? 0) + 1);
  }
  t.deepEqual([...codes.entries()], [["E_IO", good.length]], `every truncation (0..${good.length - 1} bytes) → E_IO`);
  // Bit flips inside IDAT data: CRC mismatch → E_IO.
  // pngjs writes signature (8) + IHDR (25) + IDAT + IEND (12): IDAT data and CRC are bytes 41 .. length−13.
  t.equal(String.fromCharCode(...good.subarray(37, 41)), "IDAT", "layout");
  let flips = 0;
  for (let i = 41; i < good.length - 12; i++) {
    const bad = good.slice();
    bad[i] ^= 0x10;
    if (code(() => decodeImage(bad)) === "E_IO") flips++;
  }
  t.equal(flips, good.length - 12 - 41, "every IDAT data/CRC byte flip → E_IO");
  // A valid CRC over a broken zlib stream → E_IO too.
  // Valid chunks and CRCs around image data that is too short, cut, or too long → E_IO.
  const row = new Uint8Array(6);
  t.equal(decodeImage(makePng(2, 2, 8, 2, [row, row])).width, 2, "control: 2×2 RGB decodes");
  t.equal(code(() => decodeImage(makePng(2, 2, 8, 2, []))), "E_IO", "empty image data → E_IO");
  t.equal(code(() => decodeImage(makePng(2, 2, 8, 2, [row]))), "E_IO", "one of two rows → E_IO");
  t.equal(code(() => decodeImage(makePng(2, 2, 8, 2, [row, row, row]))), "E_IO", "three of two rows → E_IO");
  const full = makePng(2, 2, 8, 2, [row, row]);
  const z = deflateSync(new Uint8Array(14));
  const cut = concat([full.subarray(0, 33), chunk("IDAT", z.subarray(0, z.length - 5)), chunk("IEND", new Uint8Array(0))]);
  t.equal(code(() => decodeImage(cut)), "E_IO", "zlib stream cut short (CRC valid) → E_IO");
  const gif = new TextEncoder().encode("GIF89a\x01\x00\x01\x00");
  t.equal(code(() => decodeImage(gif)), "E_ARGUMENT", "GIF signature → E_ARGUMENT");
  t.equal(code(() => decodeImage(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0b, 1, 2, 3]))), "E_ARGUMENT", "near-miss PNG signature → E_ARGUMENT");
  t.equal(code(() => decodeImage(new Uint8Array(0))), "E_IO", "empty file → E_IO");
  t.equal(code(() => decodeImage("x.png" as unknown as Uint8Array)), "E_ARGUMENT", "string bytes → E_ARGUMENT");
  t.equal(code(() => decodeImage(makePng(1, 1, 3, 2, [new Uint8Array(3)]))), "E_ARGUMENT", "invalid depth for colour type → E_ARGUMENT");
  t.equal(code(() => decodeImage(good, { channels: 2 as 3 })), "E_ARGUMENT", "channels 2 → E_ARGUMENT");
  t.equal(code(() => decodeImage(good, { maxPixels: 0 })), "E_ARGUMENT", "maxPixels 0 → E_ARGUMENT");
  t.end();
});

test("image io: pixel limit from the header, before decoding", (t) => {
  const rng = new Rng(3);
  const png = encodePng({ data: rng.fillUint8(new Uint8Array(5 * 4 * 3)), width: 5, height: 4, channels: 3 });
  t.equal(code(() => decodeImage(png, { maxPixels: 19 })), "E_MEMORY", "20 px > 19 → E_MEMORY");
  t.equal(decodeImage(png, { maxPixels: 20 }).width, 5, "20 px ≤ 20 decodes");
  // The header claims 100000×100000 over a tiny IDAT: the limit must fire, not the decoder.
  const liar = makePng(100000, 100000, 8, 2, [new Uint8Array(3)]);
  t.equal(code(() => decodeImage(liar)), "E_MEMORY", `1e10 px PNG header → E_MEMORY (default limit ${DEFAULT_MAX_PIXELS})`);
  const jpg = jpeg.encode({ data: rng.fillUint8(new Uint8Array(16 * 8 * 4)), width: 16, height: 8 }, 90).data;
  const big = new Uint8Array(jpg);
  // Patch the SOF0 size to 60000×60000.
  for (let p = 2; p < big.length; ) {
    const m = big[p + 1];
    const len = (big[p + 2] << 8) | big[p + 3];
    if (m === 0xc0) {
      big[p + 5] = 60000 >> 8;
      big[p + 6] = 60000 & 255;
      big[p + 7] = 60000 >> 8;
      big[p + 8] = 60000 & 255;
      break;
    }
    p += 2 + len;
  }
  t.equal(readImageHeader(big).width, 60000, "patched JPEG header");
  t.equal(code(() => decodeImage(big)), "E_MEMORY", "3.6e9 px JPEG header → E_MEMORY");
  t.equal(code(() => decodeImage(new Uint8Array(jpg), { maxPixels: 127 })), "E_MEMORY", "JPEG 128 px > 127 → E_MEMORY");
  t.end();
});

test("image io: JPEG decode (RGB / RGBA), truncation → E_IO", (t) => {
  const w = 32, h = 16;
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = (y * w + x) * 4;
    rgba[i] = x * 8;
    rgba[i + 1] = y * 16;
    rgba[i + 2] = 128;
    rgba[i + 3] = 255;
  }
  const jpg = new Uint8Array(jpeg.encode({ data: rgba, width: w, height: h }, 100).data);
  const hdr = readImageHeader(jpg);
  t.deepEqual([hdr.format, hdr.width, hdr.height, hdr.hasAlpha, hdr.colorType], ["jpeg", w, h, false, 3], "JPEG header");
  const rgb = decodeImage(jpg);
  t.equal(rgb.channels, 3, "RGB by default");
  let maxErr = 0;
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) maxErr = Math.max(maxErr, Math.abs(rgb.data[i * 3 + c] - rgba[i * 4 + c]));
  t.ok(maxErr <= 8, `q100 gradient decodes within ±8 (max ${maxErr})`);
  const four = decodeImage(jpg, { channels: 4 });
  t.ok(four.channels === 4 && four.data.every((v, i) => i % 4 !== 3 || v === 255), "RGBA on request, opaque");
  for (const n of [1, 2, 3, 10, 100, jpg.length >> 1, jpg.length - 2, jpg.length - 1]) {
    t.equal(code(() => decodeImage(jpg.subarray(0, n))), "E_IO", `JPEG cut to ${n} bytes → E_IO`);
  }
  const garbled = jpg.slice();
  garbled[jpg.length >> 1] = 0xff;
  garbled[(jpg.length >> 1) + 1] = 0x99; // an invalid marker inside the scan
  const gc = code(() => decodeImage(garbled));
  t.ok(gc === "E_IO" || gc === "no error", `marker garbage in the scan: ${gc} (never a raw Error)`);
  t.end();
});

test("image io: files — readImage / writePng, unreadable paths are E_IO", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "lowbit-img-"));
  try {
    const rng = new Rng(4);
    const img = { data: rng.fillUint8(new Uint8Array(7 * 5 * 3)), width: 7, height: 5, channels: 3 };
    const p = join(dir, "a.png");
    await writePng(p, img);
    const back = await readImage(p);
    t.deepEqual([back.width, back.height, back.channels], [7, 5, 3], "size");
    t.deepEqual(Array.from(back.data), Array.from(img.data), "pixels");
    t.deepEqual(Array.from((await readImage(new URL(`file://${p}`))).data), Array.from(img.data), "file URL");
    t.equal(await codeAsync(() => readImage(join(dir, "missing.png"))), "E_IO", "missing file → E_IO");
    t.equal(await codeAsync(() => readImage(dir)), "E_IO", "directory → E_IO");
    t.equal(await codeAsync(() => writePng(join(dir, "no", "such", "dir.png"), img)), "E_IO", "unwritable path → E_IO");
    writeFileSync(join(dir, "cut.png"), encodePng(img).subarray(0, 40));
    let msg = "";
    try {
      await readImage(join(dir, "cut.png"));
    } catch (e) {
      msg = `${(e as LowbitError).code} ${(e as Error).message}`;
    }
    t.ok(msg.startsWith("E_IO") && msg.includes("cut.png") && msg.includes("truncated"), `message names the file: ${msg}`);
    t.equal(await codeAsync(() => readImage(123 as unknown as string)), "E_ARGUMENT", "number → E_ARGUMENT");
    t.equal(code(() => encodePng({ ...img, channels: 5 })), "E_ARGUMENT", "5 channels → E_ARGUMENT");
    t.equal(code(() => encodePng({ ...img, width: 8 })), "E_SHAPE", "length mismatch → E_SHAPE");
    const evalDir = findEvalDir();
    if (evalDir) {
      const hr = await readImage(join(evalDir, "hr", "butterfly.png"));
      t.deepEqual([hr.width, hr.height, hr.channels], [480, 336, 3], "eval HR PNG: 480×336 RGB");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});
