// Plain-TS ground truth for the N:M-sparse convolutions (../nm-conv.ts): it reads the sparse storage format
// entry by entry — the format's definition — and runs the sum over the stored entries only.
//
// Format (both precisions): bias[cout↑4] (f32 or int32), values[cout][T] (f32 or int8), index[cout][T] (u8);
// the entries of output channel o come in the order (kh, kw, group g, j), each group g of input channels
// [g·m, min(cin, (g+1)·m)) holding min(n, its length) entries; entry j of a group is input channel
// g·m + index. T = k²·Σ_g min(n, len_g).
// Pair format (int8, `pairs`): values[cout][T][2], index[cout][T]; a group holds min(n/2, ⌈len/2⌉) entries, entry
// = channel pair g·m + 2·index (first value) and g·m + 2·index + 1 (second value; ignored past cin).
//
// f32: sums in float64 and rounds once at the store (at least as accurate as any f32 kernel); the WASM kernel
// matches within a stated rounding tolerance. int8: exact integers, requantized by requantizeRef — the WASM
// kernel matches bit for bit.
import { requantizeRef } from "./qs8-conv.ts";

/** A packed N:M layer as the kernels' wrappers produce it. */
export interface NmLayerRef {
  k: number;
  cin: number;
  cout: number;
  n: number;
  m: number;
  /** The int8 pair format. */
  pairs?: boolean;
  bytes: Uint8Array;
}

/** Calls visit(o, kh, kw, c, entry) for every stored entry of the layer, in storage order. */
function forEachStored(L: NmLayerRef, visit: (o: number, kh: number, kw: number, c: number, e: number) => void): number {
  const { k, cin, cout, n, m } = L;
  const u = L.pairs ? 2 : 1;
  let e = 0;
  for (let o = 0; o < cout; o++) {
    for (let kh = 0; kh < k; kh++) {
      for (let kw = 0; kw < k; kw++) {
        for (let g = 0; g < cin; g += m) {
          const ng = Math.min(n / u, Math.ceil(Math.min(m, cin - g) / u));
          for (let j = 0; j < ng; j++) visit(o, kh, kw, g, e++);
        }
      }
    }
  }
  return e / cout;
}

/** Entries per output channel (pairs: channel-pair entries). */
function tapsOf(L: NmLayerRef): number {
  return forEachStored({ ...L, cout: 1 }, () => {});
}

/**
 * Every weight an int8 layer stores, as visit(o, kh, kw, c, w) in storage order (pairs: both channels of each
 * entry, a phantom channel past cin skipped).
 */
function forEachQWeight(L: NmLayerRef, visit: (o: number, kh: number, kw: number, c: number, w: number) => void): void {
  const coutP = (L.cout + 3) & ~3, u = L.pairs ? 2 : 1;
  const dv = new DataView(L.bytes.buffer, L.bytes.byteOffset, L.bytes.byteLength);
  const vals0 = 4 * coutP, idx0 = vals0 + L.cout * tapsOf(L) * u;
  forEachStored(L, (o, kh, kw, g, e) => {
    const c = g + u * L.bytes[idx0 + e];
    for (let i = 0; i < u && c + i < L.cin; i++) visit(o, kh, kw, c + i, dv.getInt8(vals0 + e * u + i));
  });
}

/** The dense HWIO weights and bias an f32 layer stores (zeros where nothing is stored). */
export function unpackF32NmRef(L: NmLayerRef): { hwio: Float32Array; bias: Float32Array } {
  const coutP = (L.cout + 3) & ~3, T = tapsOf(L);
  const dv = new DataView(L.bytes.buffer, L.bytes.byteOffset, L.bytes.byteLength);
  const idx0 = 4 * (coutP + L.cout * T);
  const hwio = new Float32Array(L.k * L.k * L.cin * L.cout);
  const bias = new Float32Array(L.cout);
  for (let o = 0; o < L.cout; o++) bias[o] = dv.getFloat32(4 * o, true);
  forEachStored(L, (o, kh, kw, g, e) => {
    const c = g + L.bytes[idx0 + e];
    hwio[((kh * L.k + kw) * L.cin + c) * L.cout + o] += dv.getFloat32(4 * (coutP + e), true);
  });
  return { hwio, bias };
}

/** The dense OHWI integer weights and int32 bias an int8 layer stores. */
export function unpackQs8NmRef(L: NmLayerRef): { ohwi: Int8Array; bias: Int32Array } {
  const dv = new DataView(L.bytes.buffer, L.bytes.byteOffset, L.bytes.byteLength);
  const ohwi = new Int8Array(L.cout * L.k * L.k * L.cin);
  const bias = new Int32Array(L.cout);
  for (let o = 0; o < L.cout; o++) bias[o] = dv.getInt32(4 * o, true);
  forEachQWeight(L, (o, kh, kw, c, w) => { ohwi[((o * L.k + kh) * L.k + kw) * L.cin + c] += w; });
  return { ohwi, bias };
}

export interface NmConvRefImage {
  H: number;
  W: number;
  /** Pixel p's channels at p·inStride. */
  inStride: number;
}

/**
 * out[p·outStride + o] = clamp(bias[o] + Σ_{stored entries} w·x, outMin, outMax), summed in float64 over the
 * stored entries, 'same' zero padding (taps outside the image contribute nothing).
 */
export function f32NmConvRef(out: Float32Array, outStride: number, L: NmLayerRef, input: Float32Array, img: NmConvRefImage,
  outMin = -Infinity, outMax = Infinity): Float32Array {
  const coutP = (L.cout + 3) & ~3, T = tapsOf(L);
  const dv = new DataView(L.bytes.buffer, L.bytes.byteOffset, L.bytes.byteLength);
  const idx0 = 4 * (coutP + L.cout * T);
  const acc = sparseSum(L, img, Float64Array.from(input), f32Entries(L, (e) => dv.getFloat32(4 * (coutP + e), true), idx0),
    (o) => dv.getFloat32(4 * o, true));
  for (let p = 0; p < img.H * img.W; p++) {
    for (let o = 0; o < L.cout; o++) out[p * outStride + o] = Math.min(Math.max(acc[p * L.cout + o], outMin), outMax);
  }
  return out;
}

/** Σ|bias| + Σ|w·x| per output element (index p·cout + o): the scale of the f32 rounding error. */
export function f32NmConvAbsSum(L: NmLayerRef, input: Float32Array, img: NmConvRefImage): Float64Array {
  const coutP = (L.cout + 3) & ~3, T = tapsOf(L);
  const dv = new DataView(L.bytes.buffer, L.bytes.byteOffset, L.bytes.byteLength);
  const idx0 = 4 * (coutP + L.cout * T);
  return sparseSum(L, img, Float64Array.from(input, Math.abs), f32Entries(L, (e) => Math.abs(dv.getFloat32(4 * (coutP + e), true)), idx0),
    (o) => Math.abs(dv.getFloat32(4 * o, true)));
}

/** acc[p·cout + o] = Σ (x − z_x)·w + bias_q as exact integers over the stored entries. */
export function qs8NmConvAccRef(L: NmLayerRef, input: Uint8Array | Int8Array, inZp: number, img: NmConvRefImage): Float64Array {
  const dv = new DataView(L.bytes.buffer, L.bytes.byteOffset, L.bytes.byteLength);
  const ent: Entry[][] = Array.from({ length: L.cout }, () => []);
  forEachQWeight(L, (o, kh, kw, c, w) => ent[o].push([kh, kw, c, w]));
  return sparseSum(L, img, Float64Array.from(input, (v) => v - inZp), ent, (o) => dv.getInt32(4 * o, true));
}

/** Requantized codes out[p·outStride + o] (requantizeRef of the exact accumulator). */
export function qs8NmConvRef(out: Uint8Array | Int8Array, outStride: number, L: NmLayerRef, input: Uint8Array | Int8Array,
  inZp: number, img: NmConvRefImage, multipliers: ArrayLike<number>, outZp: number, qmin: number, qmax: number): Uint8Array | Int8Array {
  const acc = qs8NmConvAccRef(L, input, inZp, img);
  for (let p = 0; p < img.H * img.W; p++) {
    for (let o = 0; o < L.cout; o++) out[p * outStride + o] = requantizeRef(acc[p * L.cout + o], multipliers[o], outZp, qmin, qmax);
  }
  return out;
}

/** A decoded stored weight: (kh, kw, input channel, value). */
type Entry = [number, number, number, number];

/** An f32 layer's entries per output channel, decoded once. */
function f32Entries(L: NmLayerRef, val: (e: number) => number, idx0: number): Entry[][] {
  const ent: Entry[][] = Array.from({ length: L.cout }, () => []);
  forEachStored(L, (o, kh, kw, g, e) => ent[o].push([kh, kw, g + L.bytes[idx0 + e], val(e)]));
  return ent;
}

/**
 * acc[p·cout + o] = bias(o) + Σ act[pixel·inStride + c]·w over the entries of o whose tap lands inside the image
 * (zero padding). `act` is the input already mapped to the summed value (x, |x| or x − z_x), and the entries are
 * flattened into typed arrays first: the plain loop below is the whole reference, kept monomorphic so the test
 * suites' random layers run in seconds.
 */
function sparseSum(L: NmLayerRef, img: NmConvRefImage, act: Float64Array, ent: Entry[][], bias: (o: number) => number): Float64Array {
  const { H, W, inStride } = img;
  const p = (L.k - 1) >> 1;
  const start = new Int32Array(L.cout + 1);
  for (let o = 0; o < L.cout; o++) start[o + 1] = start[o] + ent[o].length;
  const dy = new Int32Array(start[L.cout]), dx = new Int32Array(start[L.cout]), ch = new Int32Array(start[L.cout]);
  const wv = new Float64Array(start[L.cout]);
  for (let o = 0; o < L.cout; o++) {
    ent[o].forEach(([kh, kw, c, w], i) => {
      dy[start[o] + i] = kh - p;
      dx[start[o] + i] = kw - p;
      ch[start[o] + i] = c;
      wv[start[o] + i] = w;
    });
  }
  // Entry-major: every accumulator still receives bias(o), then its entries in stored order (the same f64 sums
  // as a pixel-major loop), with the zero-padding bounds hoisted out of the pixel loops.
  const acc = new Float64Array(H * W * L.cout);
  for (let o = 0; o < L.cout; o++) {
    const b = bias(o);
    for (let q = o; q < acc.length; q += L.cout) acc[q] = b;
    for (let e = start[o]; e < start[o + 1]; e++) {
      const y0 = Math.max(0, -dy[e]), y1 = Math.min(H, H - dy[e]), x0 = Math.max(0, -dx[e]), x1 = Math.min(W, W - dx[e]);
      const w = wv[e], off = (dy[e] * W + dx[e]) * inStride + ch[e];
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) acc[(y * W + x) * L.cout + o] += act[(y * W + x) * inStride + off] * w;
      }
    }
  }
  return acc;
}
