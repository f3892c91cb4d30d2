import { readFile, writeFile } from "node:fs/promises";
import { inflateSync } from "node:zlib";
import pngjs from "pngjs";
import jpeg from "jpeg-js";
import { LowbitError } from "../runtime/errors.ts";
import { DEFAULT_MAX_PIXELS } from "../runtime/limits.ts";
import type { ImageU8 } from "../metrics/color.ts";

/**
 * PNG / JPEG file I/O for the CLI and the eval tools (Node only — the core library works on
 * pixel buffers and never imports this). Decoding is delegated to pngjs and jpeg-js; this module
 * owns what they do loosely: format sniffing, a structural check that catches truncated files
 * with a clear message, the pixel-count limit (checked from the header, before any pixel data is
 * inflated or decoded), and the channel layout.
 *
 * Errors (all LowbitError):
 * - E_IO       the file cannot be read, or its data is truncated / corrupt (bad CRC, bad zlib
 *              stream, broken JPEG entropy data)
 * - E_ARGUMENT not a PNG or JPEG (signature), a PNG/JPEG variant the decoders do not support,
 *              or a bad option
 * - E_MEMORY   width × height above `maxPixels`
 */

export type ImageFormat = "png" | "jpeg";

/** What the header says, read without decoding pixel data. */
export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  /** PNG: alpha channel or a tRNS chunk. JPEG: never. */
  hasAlpha: boolean;
  /** Bits per sample (PNG 1, 2, 4, 8, 16; JPEG 8 or 12). */
  bitDepth: number;
  /** PNG colour type (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA) or JPEG component count. */
  colorType: number;
}

export interface ReadImageOptions {
  /** Reject images with more than this many pixels (E_MEMORY). Default {@link DEFAULT_MAX_PIXELS}. */
  maxPixels?: number;
  /**
   * Output channels: 3 (RGB, alpha dropped) or 4 (RGBA, opaque alpha added). Default: 4 when the
   * file has alpha (PNG alpha channel or tRNS), else 3.
   */
  channels?: 3 | 4;
}

/** 64 Mpx: an RGBA decode of that size is 256 MB (the library-wide default, runtime/limits.ts). */
export { DEFAULT_MAX_PIXELS };

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function u32be(b: Uint8Array, p: number): number {
  return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
}
function u16be(b: Uint8Array, p: number): number {
  return (b[p] << 8) | b[p + 1];
}

/** Sniffs the format from the first bytes; E_ARGUMENT when it is neither PNG nor JPEG. */
export function sniffFormat(bytes: Uint8Array): ImageFormat {
  if (bytes.length === 0) throw new LowbitError("E_IO", "image file is empty");
  if (bytes.length >= 8 && PNG_SIGNATURE.every((v, i) => bytes[i] === v)) return "png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  if (bytes.length < 8 && (isPrefix(bytes, PNG_SIGNATURE) || isPrefix(bytes, [0xff, 0xd8, 0xff]))) {
    throw new LowbitError("E_IO", `image file truncated: only ${bytes.length} bytes`);
  }
  const head = Array.from(bytes.subarray(0, 8), (v) => v.toString(16).padStart(2, "0")).join(" ");
  throw new LowbitError("E_ARGUMENT", `not a PNG or JPEG file (first bytes: ${head || "none"})`);
}

function isPrefix(bytes: Uint8Array, sig: number[]): boolean {
  return bytes.length > 0 && bytes.length < sig.length && Array.from(bytes).every((v, i) => v === sig[i]);
}

const PNG_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

/**
 * Walks the PNG chunk list: IHDR first, every chunk complete, an IEND present. Returns the
 * header and the byte length up to the end of IEND (pngjs rejects trailing bytes, which some
 * writers append; they are ignored here).
 */
function pngStructure(b: Uint8Array): { header: ImageHeader & { interlaced: boolean }; end: number; idat: Uint8Array[] } {
  if (b.length < 33) throw new LowbitError("E_IO", `PNG truncated: ${b.length} bytes, the header alone needs 33`);
  if (u32be(b, 8) !== 13 || String.fromCharCode(b[12], b[13], b[14], b[15]) !== "IHDR") {
    throw new LowbitError("E_IO", "PNG corrupt: the first chunk is not a 13-byte IHDR");
  }
  const width = u32be(b, 16);
  const height = u32be(b, 20);
  const bitDepth = b[24];
  const colorType = b[25];
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new LowbitError("E_IO", `PNG corrupt: size ${width}×${height}`);
  }
  if (!(colorType in PNG_DEPTHS) || !PNG_DEPTHS[colorType].includes(bitDepth)) {
    throw new LowbitError("E_ARGUMENT", `PNG colour type ${colorType} with bit depth ${bitDepth} is not valid`);
  }
  if (b[26] !== 0 || b[27] !== 0 || b[28] > 1) {
    throw new LowbitError("E_ARGUMENT", `PNG compression/filter/interlace method ${b[26]}/${b[27]}/${b[28]} not supported`);
  }
  let hasAlpha = colorType === 4 || colorType === 6;
  let p = 8;
  let sawIdat = false;
  const idat: Uint8Array[] = [];
  for (;;) {
    if (p + 12 > b.length) throw new LowbitError("E_IO", `PNG truncated at byte ${p} of ${b.length} (no IEND chunk)`);
    const len = u32be(b, p);
    const type = String.fromCharCode(b[p + 4], b[p + 5], b[p + 6], b[p + 7]);
    if (len > 0x7fffffff) throw new LowbitError("E_IO", `PNG corrupt: chunk ${JSON.stringify(type)} length ${len}`);
    const next = p + 12 + len;
    if (next > b.length) {
      throw new LowbitError("E_IO", `PNG truncated: chunk ${JSON.stringify(type)} at byte ${p} needs ${len + 12} bytes, ${b.length - p} left`);
    }
    if (type === "tRNS") hasAlpha = true;
    if (type === "IDAT") {
      sawIdat = true;
      idat.push(b.subarray(p + 8, p + 8 + len));
    }
    p = next;
    if (type === "IEND") break;
  }
  if (!sawIdat) throw new LowbitError("E_IO", "PNG corrupt: no IDAT chunk");
  return { header: { format: "png", width, height, hasAlpha, bitDepth, colorType, interlaced: b[28] === 1 }, end: p, idat };
}

const PNG_SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
// Adam7 passes: x0, y0, dx, dy.
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

/** Bytes the zlib stream must inflate to: per (pass and) row one filter byte plus the packed samples. */
function pngRawBytes(h: ImageHeader & { interlaced: boolean }): number {
  const bpp = PNG_SAMPLES[h.colorType] * h.bitDepth;
  const rowBytes = (cols: number) => 1 + Math.ceil((cols * bpp) / 8);
  if (!h.interlaced) return h.height * rowBytes(h.width);
  let n = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const cols = h.width > x0 ? Math.ceil((h.width - x0) / dx) : 0;
    const rows = h.height > y0 ? Math.ceil((h.height - y0) / dy) : 0;
    if (cols > 0 && rows > 0) n += rows * rowBytes(cols);
  }
  return n;
}

/**
 * Inflates the IDAT stream once to check it holds exactly the image's bytes: pngjs pads a short
 * stream with zeros instead of failing, which would turn a cut-off file into a black image.
 */
function checkPngData(h: ImageHeader & { interlaced: boolean }, idat: Uint8Array[]): void {
  const want = pngRawBytes(h);
  let got: number;
  try {
    got = inflateSync(Buffer.concat(idat), { maxOutputLength: want + 1 }).length;
  } catch (e) {
    const msg = (e as Error).message;
    if (/unexpected end/i.test(msg)) throw new LowbitError("E_IO", "PNG truncated: the image data stream ends early", { cause: e });
    if (e instanceof RangeError) throw new LowbitError("E_IO", `PNG corrupt: image data exceeds the ${want} bytes of a ${h.width}×${h.height} image`, { cause: e });
    throw new LowbitError("E_IO", `PNG corrupt: image data: ${msg}`, { cause: e });
  }
  if (got !== want) {
    throw new LowbitError("E_IO", `PNG ${got < want ? "truncated" : "corrupt"}: image data inflates to ${got} bytes, a ${h.width}×${h.height} image needs ${want}`);
  }
}

/**
 * Walks the JPEG marker segments up to the first SOS. Returns the frame header; E_IO when a
 * segment runs past the end or no EOI follows the scan data (a cut-off download).
 */
function jpegStructure(b: Uint8Array): ImageHeader {
  let p = 2;
  let header: ImageHeader | null = null;
  for (;;) {
    // Skip fill bytes between segments.
    while (p < b.length && b[p] === 0xff && b[p + 1] === 0xff) p++;
    if (p + 4 > b.length) throw new LowbitError("E_IO", `JPEG truncated at byte ${p} of ${b.length} (no scan)`);
    if (b[p] !== 0xff) throw new LowbitError("E_IO", `JPEG corrupt: expected a marker at byte ${p}`);
    const m = b[p + 1];
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      p += 2;
      continue;
    }
    if (m === 0xd9) throw new LowbitError("E_IO", "JPEG corrupt: EOI before any scan");
    const len = u16be(b, p + 2);
    if (len < 2 || p + 2 + len > b.length) {
      throw new LowbitError("E_IO", `JPEG truncated: segment 0xFF${m.toString(16).toUpperCase()} at byte ${p} runs past the end`);
    }
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (len < 8) throw new LowbitError("E_IO", "JPEG corrupt: short frame header");
      if (m > 0xc2) throw new LowbitError("E_ARGUMENT", `JPEG process SOF${m - 0xc0} (lossless/arithmetic/hierarchical) not supported`);
      const bitDepth = b[p + 4];
      const height = u16be(b, p + 5);
      const width = u16be(b, p + 7);
      const comps = b[p + 9];
      if (bitDepth !== 8) throw new LowbitError("E_ARGUMENT", `JPEG with ${bitDepth}-bit samples not supported`);
      if (width === 0 || height === 0) throw new LowbitError("E_ARGUMENT", `JPEG size ${width}×${height} (DNL-defined height) not supported`);
      if (comps !== 1 && comps !== 3 && comps !== 4) throw new LowbitError("E_ARGUMENT", `JPEG with ${comps} components not supported`);
      header = { format: "jpeg", width, height, hasAlpha: false, bitDepth, colorType: comps };
    }
    if (m === 0xda) {
      if (header === null) throw new LowbitError("E_IO", "JPEG corrupt: scan before the frame header");
      // Entropy-coded data stuffs 0xFF as FF 00, so FF D9 after the first SOS is the real EOI.
      let q = p + 2 + len;
      let eoi = false;
      for (; q + 1 < b.length; q++) {
        if (b[q] === 0xff && b[q + 1] === 0xd9) {
          eoi = true;
          break;
        }
      }
      if (!eoi) throw new LowbitError("E_IO", "JPEG truncated: no EOI marker after the scan data");
      return header;
    }
    p += 2 + len;
  }
}

/** Header of a PNG or JPEG held in memory: format, size, alpha, depth — no pixel decoding. */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  if (!(bytes instanceof Uint8Array)) throw new LowbitError("E_ARGUMENT", "image bytes must be a Uint8Array");
  if (sniffFormat(bytes) === "jpeg") return jpegStructure(bytes);
  const { format, width, height, hasAlpha, bitDepth, colorType } = pngStructure(bytes).header;
  return { format, width, height, hasAlpha, bitDepth, colorType };
}

function checkOptions(opts: ReadImageOptions): { maxPixels: number; channels: 3 | 4 | undefined } {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (typeof maxPixels !== "number" || !(maxPixels >= 1)) {
    throw new LowbitError("E_ARGUMENT", `maxPixels must be a number >= 1, got ${String(maxPixels)}`);
  }
  if (opts.channels !== undefined && opts.channels !== 3 && opts.channels !== 4) {
    throw new LowbitError("E_ARGUMENT", `channels must be 3 or 4, got ${String(opts.channels)}`);
  }
  return { maxPixels, channels: opts.channels };
}

function checkSize(h: ImageHeader, maxPixels: number): void {
  if (h.width * h.height > maxPixels) {
    throw new LowbitError(
      "E_MEMORY",
      `image is ${h.width}×${h.height} = ${h.width * h.height} pixels, above the limit of ${maxPixels} (option maxPixels)`,
    );
  }
}

/** RGBA (4 samples per pixel) → the requested channel count. */
function fromRgba(rgba: Uint8Array, width: number, height: number, channels: 3 | 4): ImageU8 {
  const n = width * height;
  if (channels === 4) return { data: new Uint8Array(rgba.buffer, rgba.byteOffset, n * 4).slice(), width, height, channels };
  const out = new Uint8Array(n * 3);
  for (let i = 0, j = 0, k = 0; i < n; i++, j += 4, k += 3) {
    out[k] = rgba[j];
    out[k + 1] = rgba[j + 1];
    out[k + 2] = rgba[j + 2];
  }
  return { data: out, width, height, channels };
}

/**
 * Decodes a PNG or JPEG held in memory to 8-bit interleaved RGB or RGBA.
 * PNG: palette, gray and gray+alpha are expanded; 1/2/4-bit samples are scaled to 0..255
 * (v·255/(2^d−1)); 16-bit samples are reduced as round(v·255/65535) = round(v/257) (MATLAB
 * `im2uint8`), not by taking the high byte. JPEG: baseline/progressive 8-bit, gray → RGB,
 * CMYK/YCCK → RGB (jpeg-js); EXIF orientation is not applied.
 */
export function decodeImage(bytes: Uint8Array, opts: ReadImageOptions = {}): ImageU8 {
  const o = checkOptions(opts);
  if (!(bytes instanceof Uint8Array)) throw new LowbitError("E_ARGUMENT", "image bytes must be a Uint8Array");
  const format = sniffFormat(bytes);
  if (format === "png") {
    const { header, end, idat } = pngStructure(bytes);
    checkSize(header, o.maxPixels);
    checkPngData(header, idat);
    let png: { width: number; height: number; data: Uint8Array; alpha?: boolean };
    try {
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, end);
      png = pngjs.PNG.sync.read(buf) as unknown as typeof png;
    } catch (e) {
      throw new LowbitError("E_IO", `PNG corrupt: ${(e as Error).message}`, { cause: e });
    }
    if (png.width !== header.width || png.height !== header.height || png.data.length !== png.width * png.height * 4) {
      throw new LowbitError("E_IO", "PNG corrupt: decoded data does not match the header");
    }
    return fromRgba(png.data, png.width, png.height, o.channels ?? (header.hasAlpha ? 4 : 3));
  }
  const header = jpegStructure(bytes);
  checkSize(header, o.maxPixels);
  const channels = o.channels ?? 3;
  let jpg: { width: number; height: number; data: Uint8Array };
  try {
    jpg = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: channels === 4,
      tolerantDecoding: false,
      maxResolutionInMP: Math.max(o.maxPixels / 1e6, 1e-6),
      // Decoder working set (component planes + output) stays within a few × the RGBA image.
      maxMemoryUsageInMB: Math.max(512, Math.ceil((header.width * header.height * 16) / 2 ** 20)),
    });
  } catch (e) {
    throw new LowbitError("E_IO", `JPEG corrupt: ${(e as Error).message}`, { cause: e });
  }
  if (jpg.width !== header.width || jpg.height !== header.height || jpg.data.length !== jpg.width * jpg.height * channels) {
    throw new LowbitError("E_IO", "JPEG corrupt: decoded data does not match the header");
  }
  return { data: jpg.data, width: jpg.width, height: jpg.height, channels };
}

/** Reads a PNG or JPEG from a path / file URL (or decodes bytes) → 8-bit RGB or RGBA. */
export async function readImage(src: string | URL | Uint8Array, opts: ReadImageOptions = {}): Promise<ImageU8> {
  checkOptions(opts);
  if (src instanceof Uint8Array) return decodeImage(src, opts);
  if (typeof src !== "string" && !(src instanceof URL)) {
    throw new LowbitError("E_ARGUMENT", "readImage takes a path, a file URL or a Uint8Array");
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(src);
  } catch (e) {
    throw new LowbitError("E_IO", `cannot read image ${String(src)}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return decodeImage(bytes, opts);
  } catch (e) {
    if (e instanceof LowbitError) throw new LowbitError(e.code, `${String(src)}: ${e.message.replace(/^E_\w+: /, "")}`, { cause: e });
    throw e;
  }
}

/** Encodes an 8-bit image (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA channels) as PNG. */
export function encodePng(img: ImageU8): Uint8Array {
  if (img === null || typeof img !== "object" || !(img.data instanceof Uint8Array)) {
    throw new LowbitError("E_ARGUMENT", "encodePng needs { data: Uint8Array, width, height, channels }");
  }
  const { width, height, channels } = img;
  for (const [k, v] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 0x7fffffff) throw new LowbitError("E_ARGUMENT", `${k} must be a positive integer, got ${v}`);
  }
  const colorType = ({ 1: 0, 2: 4, 3: 2, 4: 6 } as Record<number, number>)[channels];
  if (colorType === undefined) throw new LowbitError("E_ARGUMENT", `PNG takes 1–4 channels, got ${channels}`);
  if (img.data.length !== width * height * channels) {
    throw new LowbitError("E_SHAPE", `image data has ${img.data.length} bytes, expected ${width}×${height}×${channels}`);
  }
  const data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length);
  const out = pngjs.PNG.sync.write({ width, height, data } as unknown as pngjs.PNG, {
    colorType: colorType as 0 | 2 | 4 | 6,
    inputColorType: colorType as 0 | 2 | 4 | 6,
    inputHasAlpha: channels === 2 || channels === 4,
    bitDepth: 8,
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Writes an 8-bit image as PNG. E_IO when the file cannot be written. */
export async function writePng(path: string | URL, img: ImageU8): Promise<void> {
  const bytes = encodePng(img);
  try {
    await writeFile(path, bytes);
  } catch (e) {
    throw new LowbitError("E_IO", `cannot write ${String(path)}: ${(e as Error).message}`, { cause: e });
  }
}
