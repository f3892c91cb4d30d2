import { LowbitError, checkInt } from "../runtime/errors.ts";
import { checkImage, type ImageU8, type ImageView } from "./color.ts";

/**
 * MATLAB `imresize(A, scale, 'bicubic')` reproduced sample for sample (protocol.md §2) — the
 * resizer that makes every SR benchmark's LR inputs and its "Bicubic" row. What makes it
 * MATLAB's and not Pillow's / OpenCV's / PyTorch's:
 *
 * - Keys cubic with a = −0.5 (OpenCV and PyTorch use −0.75).
 * - Shrinking antialiases: the kernel is stretched to h(x) = s·f(s·x), support 4/s input pixels
 *   (16 at ×¼); enlarging uses f itself (4 taps).
 * - Output pixel x (1-based) samples input u = x/s + ½(1 − 1/s); taps idx = floor(u − width/2)
 *   + 0..P−1 with P = ceil(width) + 2; weights h(u − idx) divided by their sum; weight columns
 *   that are zero for every output are dropped (they never change a sum, but dropping them keeps
 *   the summation order — and therefore every float64 bit — MATLAB's).
 * - Out-of-range taps mirror with the edge repeated: idx ← aux[(idx − 1) mod 2n], aux = [1..n, n..1].
 * - Separable: the dimension with the smaller scale first (cheaper, and MATLAB's order); on a tie
 *   rows (the vertical pass, MATLAB's dimension 1) first.
 * - float64 through both passes, then one rounding half away from zero saturated to 0..255
 *   (= `im2uint8(imresize(im2double(A), …))`). Rounding between passes, as `imresize` on a uint8
 *   array does, moves 10–15 % of samples by ±1.
 */

/** Keys cubic convolution kernel, a = −0.5 (MATLAB `cubic`). */
export function cubic(x: number): number {
  const ax = Math.abs(x);
  const ax2 = ax * ax;
  const ax3 = ax2 * ax;
  if (ax <= 1) return 1.5 * ax3 - 2.5 * ax2 + 1;
  if (ax <= 2) return -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2;
  return 0;
}

/**
 * The 1-D resampling matrix in MATLAB's sparse form: output i reads input
 * `indices[i·taps + k]` (0-based, already mirrored) with weight `weights[i·taps + k]`, k = 0..taps−1.
 */
export interface Contributions {
  inLength: number;
  outLength: number;
  taps: number;
  weights: Float64Array;
  indices: Int32Array;
}

/**
 * MATLAB `contributions(in_length, out_length, scale, @cubic, 4, antialiasing)`.
 * `scale` = out/in as MATLAB holds it (the user's factor, or outLength/inLength when a size was given).
 */
export function contributions(inLength: number, outLength: number, scale: number, antialias = true): Contributions {
  checkInt(inLength, 1, 1 << 24, "inLength");
  checkInt(outLength, 1, 1 << 24, "outLength");
  if (!(scale > 0 && Number.isFinite(scale))) throw new LowbitError("E_ARGUMENT", `scale must be a positive finite number, got ${scale}`);
  const shrink = scale < 1 && antialias;
  const kernelWidth = shrink ? 4 / scale : 4;
  const h = shrink ? (x: number) => scale * cubic(scale * x) : cubic;
  const P = Math.ceil(kernelWidth) + 2;
  const w = new Float64Array(outLength * P);
  const idx = new Float64Array(outLength * P); // 1-based, before mirroring (as MATLAB)
  for (let i = 0; i < outLength; i++) {
    const x = i + 1;
    const u = x / scale + 0.5 * (1 - 1 / scale);
    const left = Math.floor(u - kernelWidth / 2);
    let sum = 0;
    for (let k = 0; k < P; k++) {
      const v = h(u - (left + k));
      w[i * P + k] = v;
      idx[i * P + k] = left + k;
      sum += v;
    }
    for (let k = 0; k < P; k++) w[i * P + k] /= sum;
  }
  // Keep only the weight columns that are nonzero for some output (MATLAB `any(weights, 1)`).
  const keep: number[] = [];
  for (let k = 0; k < P; k++) {
    for (let i = 0; i < outLength; i++) {
      if (w[i * P + k] !== 0) {
        keep.push(k);
        break;
      }
    }
  }
  const taps = keep.length;
  const weights = new Float64Array(outLength * taps);
  const indices = new Int32Array(outLength * taps);
  const period = 2 * inLength;
  for (let i = 0; i < outLength; i++) {
    for (let t = 0; t < taps; t++) {
      const k = keep[t];
      weights[i * taps + t] = w[i * P + k];
      // aux(mod(idx − 1, 2n) + 1) with aux = [1..n, n..1], converted to 0-based.
      const m = (((idx[i * P + k] - 1) % period) + period) % period;
      indices[i * taps + t] = m < inLength ? m : period - 1 - m;
    }
  }
  return { inLength, outLength, taps, weights, indices };
}

/**
 * Target size: either `scale` (MATLAB's scalar factor: out = ceil(scale·in) per side, both
 * dimensions resampled with that same factor) or explicit `width` and `height` (each
 * dimension's factor is out/in, as `imresize(A, [rows cols])`).
 */
export interface ResizeSpec {
  scale?: number;
  width?: number;
  height?: number;
  /** Antialias when shrinking (MATLAB default true). */
  antialias?: boolean;
}

interface Plan {
  outWidth: number;
  outHeight: number;
  rows: Contributions; // vertical pass (MATLAB dim 1)
  cols: Contributions; // horizontal pass (MATLAB dim 2)
  rowsFirst: boolean;
}

function plan(width: number, height: number, spec: ResizeSpec): Plan {
  if (spec === null || typeof spec !== "object") throw new LowbitError("E_ARGUMENT", "resize spec must be an object");
  let outWidth: number, outHeight: number, sx: number, sy: number;
  if (spec.scale !== undefined) {
    if (spec.width !== undefined || spec.height !== undefined) {
      throw new LowbitError("E_ARGUMENT", "give either scale or width/height, not both");
    }
    const s = spec.scale;
    if (typeof s !== "number" || !(s > 0) || !Number.isFinite(s)) {
      throw new LowbitError("E_ARGUMENT", `scale must be a positive finite number, got ${s}`);
    }
    outWidth = Math.ceil(s * width);
    outHeight = Math.ceil(s * height);
    sx = sy = s;
  } else {
    if (spec.width === undefined || spec.height === undefined) {
      throw new LowbitError("E_ARGUMENT", "resize spec needs scale, or both width and height");
    }
    outWidth = spec.width;
    outHeight = spec.height;
    checkInt(outWidth, 1, 1 << 20, "width");
    checkInt(outHeight, 1, 1 << 20, "height");
    sx = outWidth / width;
    sy = outHeight / height;
  }
  checkInt(outWidth, 1, 1 << 20, "output width", "E_MEMORY");
  checkInt(outHeight, 1, 1 << 20, "output height", "E_MEMORY");
  const aa = spec.antialias ?? true;
  return {
    outWidth,
    outHeight,
    rows: contributions(height, outHeight, sy, aa),
    cols: contributions(width, outWidth, sx, aa),
    // MATLAB: [~, order] = sort(scale) — stable, so a tie keeps dimension 1 (rows) first.
    rowsFirst: sy <= sx,
  };
}

/** Vertical pass: dst (outH × width × c) from src (inH × width × c). Sums taps in order from 0. */
function passRows(dst: Float64Array, src: Float64Array, rowLen: number, ct: Contributions): void {
  const { outLength, taps, weights, indices } = ct;
  for (let i = 0; i < outLength; i++) {
    const o = i * rowLen;
    const wi = i * taps;
    // First tap assigns (0 + w·v would be the same value; assigning skips a fill).
    const w0 = weights[wi];
    const s0 = indices[wi] * rowLen;
    for (let j = 0; j < rowLen; j++) dst[o + j] = w0 * src[s0 + j];
    for (let k = 1; k < taps; k++) {
      const wk = weights[wi + k];
      const sk = indices[wi + k] * rowLen;
      for (let j = 0; j < rowLen; j++) dst[o + j] += wk * src[sk + j];
    }
  }
}

/** Horizontal pass: dst (rows × outW × c) from src (rows × inW × c). */
function passCols(dst: Float64Array, src: Float64Array, rows: number, c: number, ct: Contributions): void {
  const { inLength, outLength, taps, weights, indices } = ct;
  const inRow = inLength * c;
  const outRow = outLength * c;
  for (let r = 0; r < rows; r++) {
    const si = r * inRow;
    const so = r * outRow;
    if (c === 3) {
      // The common case, with the three sums in registers (same per-sample order as below).
      for (let i = 0; i < outLength; i++) {
        const wi = i * taps;
        let a0 = 0, a1 = 0, a2 = 0;
        for (let k = 0; k < taps; k++) {
          const w = weights[wi + k];
          const p = si + indices[wi + k] * 3;
          a0 += w * src[p];
          a1 += w * src[p + 1];
          a2 += w * src[p + 2];
        }
        const o = so + i * 3;
        dst[o] = a0;
        dst[o + 1] = a1;
        dst[o + 2] = a2;
      }
      continue;
    }
    for (let i = 0; i < outLength; i++) {
      const wi = i * taps;
      const o = so + i * c;
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let k = 0; k < taps; k++) acc += weights[wi + k] * src[si + indices[wi + k] * c + ch];
        dst[o + ch] = acc;
      }
    }
  }
}

/** Output of {@link imresizeFloat}: interleaved float64 samples, not rounded. */
export interface ImageF64 extends ImageView {
  data: Float64Array;
}

/**
 * MATLAB-bicubic resize of an interleaved image (any channel count; u8 or float on any scale),
 * returning the float64 result before rounding — e.g. to resize float planes, or to inspect ties.
 */
export function imresizeFloat(img: ImageView, spec: ResizeSpec): ImageF64 {
  checkImage(img);
  const { width, height, channels: c } = img;
  // One element type through both passes keeps the loops monomorphic (u8 and f32 convert exactly).
  const data = img.data instanceof Float64Array ? img.data : Float64Array.from(img.data);
  const p = plan(width, height, spec);
  const { outWidth, outHeight } = p;
  const out = new Float64Array(outWidth * outHeight * c);
  if (p.rowsFirst) {
    const tmp = new Float64Array(outHeight * width * c);
    passRows(tmp, data, width * c, p.rows);
    passCols(out, tmp, outHeight, c, p.cols);
  } else {
    const tmp = new Float64Array(height * outWidth * c);
    passCols(tmp, data, height, c, p.cols);
    passRows(out, tmp, outWidth * c, p.rows);
  }
  return { data: out, width: outWidth, height: outHeight, channels: c };
}

/**
 * `im2uint8(imresize(im2double(img), …, 'bicubic'))`: MATLAB-bicubic resize with float64 passes
 * and one rounding (half away from zero, saturated). Input: interleaved, any channel count; u8
 * codes or floats on the 0..255 scale.
 */
export function imresize(img: ImageView, spec: ResizeSpec): ImageU8 {
  const f = imresizeFloat(img, spec);
  const out = new Uint8Array(f.data.length);
  const d = f.data;
  // roundU8 inlined with an integer result (a double stored to a Uint8Array takes a slow path):
  // for 0.5 ≤ v < 254.5, (v + 0.5) | 0 = floor(v + 0.5) = round-half-up(v) exactly: if v + 0.5 stays
  // in v's binade the add is exact (0.5 is a multiple of v's ulp); if it crosses into the next
  // binade it is ≥ that power of two, which rounding cannot undercut.
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    out[i] = v >= 0.5 ? (v >= 254.5 ? 255 : (v + 0.5) | 0) : 0;
  }
  return { data: out, width: f.width, height: f.height, channels: f.channels };
}

/** LR for an SR benchmark: `imresize(HR, 1/factor, 'bicubic')` rounded once. */
export function bicubicDown(img: ImageView, factor: number): ImageU8 {
  checkFactor(factor);
  return imresize(img, { scale: 1 / factor });
}

/** The "Bicubic" SR baseline: `imresize(LR, factor, 'bicubic')` rounded once. */
export function bicubicUp(img: ImageView, factor: number): ImageU8 {
  checkFactor(factor);
  return imresize(img, { scale: factor });
}

function checkFactor(factor: number): void {
  checkInt(factor, 1, 64, "factor");
}

/**
 * Resize one float plane (width × height, row-major) with MATLAB bicubic; float64 result, no
 * rounding. `out` may be null.
 */
export function imresizePlane(
  out: Float64Array | null,
  src: Float32Array | Float64Array | Uint8Array,
  width: number,
  height: number,
  spec: ResizeSpec,
): ImageF64 {
  const r = imresizeFloat({ data: src, width, height, channels: 1 }, spec);
  if (out === null) return r;
  if (out.length !== r.data.length) {
    throw new LowbitError("E_SHAPE", `imresizePlane: out has ${out.length} values, expected ${r.width}×${r.height}`);
  }
  out.set(r.data);
  return { data: out, width: r.width, height: r.height, channels: 1 };
}
