/**
 * Independent reference interpreter for ncnn models, for tests: runs the parsed layers (param.ts +
 * bin.ts records) directly, f64, NCHW, with ncnn's own semantics and output sizes — valid/'same'
 * padding, strides and dilations, the scatter-form Deconvolution with its pad crop, CRD/DCR pixel
 * shuffle, Interp (nearest / bilinear / bicubic with ncnn's half-pixel coordinates and edge clamping),
 * Crop (also to a reference blob's size), BinaryOp (with ncnn's per-channel broadcast of a 1-D blob),
 * Eltwise, global average Pooling, InnerProduct, Scale from a second blob, … It shares nothing with lowbit's IR lowering or executor, so a lowering
 * mistake (weight layout, offsets, channel orders, sub-pixel deconvolution) shows up as a mismatch.
 */
import type { NcnnLayer } from "../../src/io/ncnn/param.ts";

export interface Chw { data: Float64Array; c: number; h: number; w: number }

const chw = (c: number, h: number, w: number): Chw => ({ data: new Float64Array(c * h * w), c, h, w });

function activate(v: number, type: number, ap: number[]): number {
  switch (type) {
    case 0: return v;
    case 1: return Math.max(v, 0);
    case 2: return v > 0 ? v : v * ap[0];
    case 3: return Math.min(Math.max(v, ap[0]), ap[1]);
    case 4: return 1 / (1 + Math.exp(-v));
    default: throw new Error(`ref: activation ${type}`);
  }
}

function conv(x: Chw, l: NcnnLayer): Chw {
  const p = l.p;
  const kw = p.kernelW, kh = p.kernelH, dw = p.dilationW, dh = p.dilationH, sw = p.strideW, sh = p.strideH;
  const ew = dw * (kw - 1) + 1, eh = dh * (kh - 1) + 1;
  let [pl, pr, pt, pb] = [p.padLeft, p.padRight, p.padTop, p.padBottom];
  if (pl === -233 || pl === -234) {
    const tw = ew - 1, th = eh - 1; // stride 1 'same'
    [pl, pr] = pl === -233 ? [tw >> 1, tw - (tw >> 1)] : [tw - (tw >> 1), tw >> 1];
    [pt, pb] = p.padLeft === -233 ? [th >> 1, th - (th >> 1)] : [th - (th >> 1), th >> 1];
  }
  const W = x.w + pl + pr, H = x.h + pt + pb;
  const ow = Math.floor((W - ew) / sw) + 1, oh = Math.floor((H - eh) / sh) + 1;
  const cout = p.numOutput, cin = x.c;
  const out = chw(cout, oh, ow);
  const wt = l.weights.weight, b = l.weights.bias;
  // Padded input plane per channel, then out[o] += w·shifted plane (loop order for speed).
  const pad = new Float64Array(cin * H * W).fill(p.padValue);
  for (let i = 0; i < cin; i++) for (let y = 0; y < x.h; y++) for (let xx = 0; xx < x.w; xx++) pad[(i * H + y + pt) * W + xx + pl] = x.data[(i * x.h + y) * x.w + xx];
  const acc = new Float64Array(oh * ow);
  for (let o = 0; o < cout; o++) {
    acc.fill(b ? b[o] : 0);
    for (let i = 0; i < cin; i++) for (let ky = 0; ky < kh; ky++) for (let kx = 0; kx < kw; kx++) {
      const wv = wt[((o * cin + i) * kh + ky) * kw + kx];
      for (let y = 0; y < oh; y++) {
        const row = (i * H + y * sh + ky * dh) * W + kx * dw;
        const ar = y * ow;
        for (let xx = 0; xx < ow; xx++) acc[ar + xx] += pad[row + xx * sw] * wv;
      }
    }
    const ap = p.activationParams ?? [];
    for (let j = 0; j < oh * ow; j++) out.data[o * oh * ow + j] = activate(acc[j], p.activationType, ap);
  }
  return out;
}

function deconv(x: Chw, l: NcnnLayer): Chw {
  const p = l.p;
  const kw = p.kernelW, kh = p.kernelH, dw = p.dilationW, dh = p.dilationH, sw = p.strideW, sh = p.strideH;
  const fw = (x.w - 1) * sw + dw * (kw - 1) + 1 + p.outputPadRight, fh = (x.h - 1) * sh + dh * (kh - 1) + 1 + p.outputPadBottom;
  const cout = p.numOutput, cin = x.c;
  const full = chw(cout, fh, fw);
  const wt = l.weights.weight, b = l.weights.bias;
  for (let o = 0; o < cout; o++) {
    full.data.fill(b ? b[o] : 0, o * fh * fw, (o + 1) * fh * fw);
    for (let i = 0; i < cin; i++) for (let y = 0; y < x.h; y++) for (let xx = 0; xx < x.w; xx++) {
      const v = x.data[(i * x.h + y) * x.w + xx];
      for (let ky = 0; ky < kh; ky++) for (let kx = 0; kx < kw; kx++) {
        full.data[(o * fh + y * sh + ky * dh) * fw + xx * sw + kx * dw] += v * wt[((o * cin + i) * kh + ky) * kw + kx];
      }
    }
  }
  const ow = fw - p.padLeft - p.padRight, oh = fh - p.padTop - p.padBottom;
  const out = chw(cout, oh, ow);
  for (let o = 0; o < cout; o++) for (let y = 0; y < oh; y++) for (let xx = 0; xx < ow; xx++) {
    out.data[(o * oh + y) * ow + xx] = activate(full.data[(o * fh + y + p.padTop) * fw + xx + p.padLeft], p.activationType, p.activationParams ?? []);
  }
  return out;
}

function cubic(t: number): number[] {
  const A = -0.75;
  const c0 = ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A;
  const c1 = ((A + 2) * t - (A + 3)) * t * t + 1;
  const c2 = ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1;
  return [c0, c1, c2, 1 - c0 - c1 - c2];
}

/** Per output coordinate: source indices and weights (ncnn Interp, no align_corner). */
function interpTaps(n: number, on: number, type: number, scale: number): { idx: number[]; w: number[] }[] {
  const taps: { idx: number[]; w: number[] }[] = [];
  const clamp = (i: number) => Math.min(Math.max(i, 0), n - 1);
  for (let d = 0; d < on; d++) {
    if (type === 1) {
      taps.push({ idx: [Math.min(Math.floor(Math.fround(d * Math.fround(1 / scale))), n - 1)], w: [1] });
      continue;
    }
    const fx = Math.fround((d + 0.5) * (n / on) - 0.5);
    let s = Math.floor(fx), t = fx - s;
    if (type === 2) {
      if (s < 0) { s = 0; t = 0; }
      if (s >= n - 1) { s = n - 2; t = 1; }
      taps.push({ idx: [clamp(s), clamp(s + 1)], w: [1 - t, t] });
    } else {
      taps.push({ idx: [s - 1, s, s + 1, s + 2].map(clamp), w: cubic(t) });
    }
  }
  return taps;
}

function interp(x: Chw, l: NcnnLayer): Chw {
  const p = l.p;
  const oh = Math.floor(x.h * p.heightScale), ow = Math.floor(x.w * p.widthScale);
  const ty = interpTaps(x.h, oh, p.resizeType, p.heightScale), tx = interpTaps(x.w, ow, p.resizeType, p.widthScale);
  const out = chw(x.c, oh, ow);
  for (let c = 0; c < x.c; c++) for (let y = 0; y < oh; y++) for (let xx = 0; xx < ow; xx++) {
    let s = 0;
    ty[y].idx.forEach((iy, a) => tx[xx].idx.forEach((ix, b) => (s += ty[y].w[a] * tx[xx].w[b] * x.data[(c * x.h + iy) * x.w + ix])));
    out.data[(c * oh + y) * ow + xx] = s;
  }
  return out;
}

function pixelShuffle(x: Chw, r: number, mode: number): Chw {
  const oc = x.c / (r * r), out = chw(oc, x.h * r, x.w * r);
  for (let c = 0; c < oc; c++) for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) {
    const q = mode === 0 ? c * r * r + i * r + j : (i * r + j) * oc + c;
    for (let y = 0; y < x.h; y++) for (let xx = 0; xx < x.w; xx++) out.data[(c * out.h + y * r + i) * out.w + xx * r + j] = x.data[(q * x.h + y) * x.w + xx];
  }
  return out;
}

function crop(x: Chw, l: NcnnLayer, ref?: Chw): Chw {
  const p = l.p;
  let [y0, y1, x0, x1] = [0, x.h, 0, x.w];
  if ((p.axes ?? []).length) {
    p.axes!.forEach((ax, i) => {
      const n = ax === 1 || ax === -2 ? x.h : x.w;
      const st = p.starts![i] < 0 ? n + p.starts![i] : p.starts![i];
      const en = p.ends![i] < 0 ? n + p.ends![i] : Math.min(p.ends![i], n);
      if (ax === 1 || ax === -2) [y0, y1] = [st, en];
      else [x0, x1] = [st, en];
    });
  } else {
    [y0, x0] = [p.hoffset, p.woffset];
    y1 = ref ? y0 + ref.h : p.outh ? y0 + p.outh : x.h - p.hoffset2;
    x1 = ref ? x0 + ref.w : p.outw ? x0 + p.outw : x.w - p.woffset2;
  }
  const out = chw(x.c, y1 - y0, x1 - x0);
  for (let c = 0; c < x.c; c++) for (let y = 0; y < out.h; y++) for (let xx = 0; xx < out.w; xx++) out.data[(c * out.h + y) * out.w + xx] = x.data[(c * x.h + y + y0) * x.w + xx + x0];
  return out;
}

const map = (x: Chw, f: (v: number, c: number) => number): Chw => {
  const out = chw(x.c, x.h, x.w), hw = x.h * x.w;
  for (let i = 0; i < out.data.length; i++) out.data[i] = f(x.data[i], Math.floor(i / hw));
  return out;
};

/** Runs the net on `input` (CHW f64) and returns the blob `output` (default: the last layer's first top). */
export function runNcnnRef(layers: NcnnLayer[], input: Chw, output?: string): Chw {
  const blobs = new Map<string, Chw>();
  for (const l of layers) {
    const xs = l.bottoms.map((b) => {
      const v = blobs.get(b);
      if (!v) throw new Error(`ref: blob ${b} missing`);
      return v;
    });
    const x = xs[0], p = l.p;
    let y: Chw;
    switch (l.type) {
      case "Input": y = input; break;
      case "Split": case "Noop": for (const t of l.tops) blobs.set(t, x); continue;
      case "Convolution": y = conv(x, l); break;
      case "Deconvolution": y = deconv(x, l); break;
      case "PReLU": { const s = l.weights.slope; y = map(x, (v, c) => (v < 0 ? v * s[s.length === 1 ? 0 : c] : v)); break; }
      case "ReLU": y = map(x, (v) => (v < 0 ? v * p.slope : v)); break;
      case "Sigmoid": y = map(x, (v) => 1 / (1 + Math.exp(-v))); break;
      case "Clip": y = map(x, (v) => Math.min(Math.max(v, p.min), p.max)); break;
      case "Scale": {
        // scale_data_size -233: the scale is the second blob (1-D, one value per channel).
        const s = p.scaleDataSize === -233 ? xs[1].data : l.weights.scale, b = l.weights.bias;
        if (p.scaleDataSize === -233 && xs[1].data.length !== x.c) throw new Error(`ref: ${l.name} scale blob size`);
        y = map(x, (v, c) => v * s[s.length === 1 ? 0 : c] + (b ? b[c] : 0));
        break;
      }
      case "Pooling": {
        // Global average pooling → a 1-D blob (c values, stored as c×1×1).
        if (!p.globalPooling || p.poolingType !== 1) throw new Error("ref: only global average pooling");
        y = chw(x.c, 1, 1);
        const hw = x.h * x.w;
        for (let c = 0; c < x.c; c++) {
          let sum = 0;
          for (let i = 0; i < hw; i++) sum += x.data[c * hw + i];
          y.data[c] = sum / hw;
        }
        break;
      }
      case "InnerProduct": {
        const n = x.data.length, o = p.numOutput, wt = l.weights.weight, b = l.weights.bias;
        y = chw(o, 1, 1);
        for (let j = 0; j < o; j++) {
          let sum = b ? b[j] : 0;
          for (let i = 0; i < n; i++) sum += wt[j * n + i] * x.data[i];
          y.data[j] = activate(sum, p.activationType, p.activationParams ?? []);
        }
        break;
      }
      case "BinaryOp": {
        const f = [(a: number, b: number) => a + b, (a: number, b: number) => a - b, (a: number, b: number) => a * b, (a: number, b: number) => a / b,
          Math.max, Math.min, Math.pow, (a: number, b: number) => b - a, (a: number, b: number) => b / a][p.opType];
        if (p.withScalar) y = map(x, (v) => f(v, p.b));
        else if (xs[1].h === 1 && xs[1].w === 1 && xs[1].c === x.c && (x.h > 1 || x.w > 1)) {
          // ncnn broadcast of a 1-D blob of c values over a c×h×w blob: per channel.
          const b = xs[1];
          y = map(x, (v, c) => f(v, b.data[c]));
        } else {
          const b = xs[1];
          if (b.c !== x.c || b.h !== x.h || b.w !== x.w) throw new Error(`ref: ${l.name} shapes differ`);
          y = map(x, (v) => v);
          for (let i = 0; i < y.data.length; i++) y.data[i] = f(x.data[i], b.data[i]);
        }
        break;
      }
      case "Eltwise": {
        if (p.opType !== 1) throw new Error("ref: eltwise op");
        y = chw(x.c, x.h, x.w);
        xs.forEach((b, j) => { const k = p.coeffs?.length ? p.coeffs[j] : 1; for (let i = 0; i < y.data.length; i++) y.data[i] += k * b.data[i]; });
        break;
      }
      case "Concat": {
        y = chw(xs.reduce((s, b) => s + b.c, 0), x.h, x.w);
        let o = 0;
        for (const b of xs) { y.data.set(b.data, o); o += b.data.length; }
        break;
      }
      case "Crop": y = crop(x, l, xs[1]); break;
      case "PixelShuffle": y = pixelShuffle(x, p.upscaleFactor, p.mode); break;
      case "Interp": y = interp(x, l); break;
      default: throw new Error(`ref: layer type ${l.type}`);
    }
    blobs.set(l.tops[0], y);
  }
  const name = output ?? layers[layers.length - 1].tops[0];
  return blobs.get(name)!;
}

/** HWC f32 (lowbit's layout, RGB) → CHW f64. */
export function hwcToChw(x: ArrayLike<number>, h: number, w: number, c = 3): Chw {
  const out = chw(c, h, w);
  for (let i = 0; i < h * w; i++) for (let k = 0; k < c; k++) out.data[k * h * w + i] = x[i * c + k];
  return out;
}

/** Replicate-pads a CHW tensor by `p` pixels on every side (waifu2x's pre-padding). */
export function padReplicate(x: Chw, p: number): Chw {
  const out = chw(x.c, x.h + 2 * p, x.w + 2 * p);
  for (let c = 0; c < x.c; c++) for (let y = 0; y < out.h; y++) for (let xx = 0; xx < out.w; xx++) {
    const sy = Math.min(Math.max(y - p, 0), x.h - 1), sx = Math.min(Math.max(xx - p, 0), x.w - 1);
    out.data[(c * out.h + y) * out.w + xx] = x.data[(c * x.h + sy) * x.w + sx];
  }
  return out;
}
