import test from "tape";
import { readFileSync } from "node:fs";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LowbitError } from "../src/runtime/errors.ts";
import {
  bicubicDown,
  bicubicUp,
  contributions,
  cubic,
  gaussianWindow1d,
  imresize,
  imresizeFloat,
  imresizePlane,
  meanScores,
  msePlane,
  psnrPlane,
  psnrRgb,
  psnrY,
  rgbToY,
  roundU8,
  scoreSR,
  ssimPlane,
  ssimY,
  toUint8,
  type ImageU8,
  type ImageView,
  type ResizeSpec,
  type SrScores,
} from "../src/metrics/index.ts";
import { evalScales, listEvalSet, loadEvalPair } from "../src/metrics/evalset.ts";
import { encodePng, readImage } from "../src/io/image.ts";
import { Rng } from "./util/rng.ts";
import { evalDir, evalFull } from "./util/eval-data.ts";

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

function img(data: ArrayLike<number>, width: number, height: number, channels: number, float = false): ImageView {
  return { data: float ? Float64Array.from(data) : Uint8Array.from(data), width, height, channels };
}

function randomImage(rng: Rng, w: number, h: number, c: number): ImageView {
  return { data: rng.fillUint8(new Uint8Array(w * h * c)), width: w, height: h, channels: c };
}

// ---------------------------------------------------------------- colour

test("metrics: rgbToY is BT.601 studio swing (MATLAB rgb2ycbcr on doubles), unrounded", (t) => {
  const rgb = img([0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30], 6, 1, 3);
  const y = rgbToY(null, rgb);
  t.equal(y[0], 16, "black → 16");
  t.ok(Math.abs(y[1] - 235) < 1e-12, `white → 235 (${y[1]})`);
  t.ok(Math.abs(y[2] - 81.481) < 1e-12, "red → 16 + 65.481");
  t.ok(Math.abs(y[3] - 144.553) < 1e-12, "green → 16 + 128.553");
  t.ok(Math.abs(y[4] - 40.966) < 1e-12, "blue → 16 + 24.966");
  t.ok(Math.abs(y[5] - (16 + (654.81 + 2571.06 + 748.98) / 255)) < 1e-12, "(10,20,30) by hand");
  t.notEqual(y[5], Math.round(y[5]), "Y is not rounded");
  const rgba = img([10, 20, 30, 0, 10, 20, 30, 255], 2, 1, 4);
  const ya = rgbToY(new Float64Array(2), rgba);
  t.equal(ya[0], y[5], "RGBA: alpha ignored");
  t.equal(ya[1], y[5], "RGBA: alpha ignored (opaque)");
  t.deepEqual(Array.from(rgbToY(null, img(rgb.data, 6, 1, 3, true))), Array.from(y), "float input on 0..255 gives the same Y");
  t.equal(code(() => rgbToY(null, img([1, 2], 2, 1, 1))), "E_ARGUMENT", "1 channel → E_ARGUMENT");
  t.equal(code(() => rgbToY(null, img([1, 2, 3], 2, 1, 3))), "E_SHAPE", "short data → E_SHAPE");
  t.equal(code(() => rgbToY(new Float64Array(5), rgb)), "E_SHAPE", "wrong out length → E_SHAPE");
  t.equal(code(() => rgbToY(null, { data: [1, 2, 3] as unknown as Uint8Array, width: 1, height: 1, channels: 3 })), "E_ARGUMENT", "plain array → E_ARGUMENT");
  t.end();
});

test("metrics: toUint8 rounds half away from zero and saturates", (t) => {
  const cases: [number, number][] = [
    [0.5, 1], [1.5, 2], [2.5, 3], [127.5, 128], [254.5, 255], [253.5, 254], [-0.5, 0], [-0.49, 0], [-300, 0],
    [0.49999999999999994, 0], [2.4999999999999996, 2], [254.49999999999997, 254], [255.49, 255], [1e9, 255],
    [NaN, 0], [Infinity, 255], [-Infinity, 0], [3.0000000000000004, 3],
  ];
  const out = toUint8(null, cases.map((c) => c[0]));
  for (const [i, [v, want]] of cases.entries()) t.equal(out[i], want, `${v} → ${want}`);
  t.equal(code(() => toUint8(new Uint8Array(1), [1, 2])), "E_SHAPE");
  t.end();
});

// ---------------------------------------------------------------- PSNR

test("metrics: PSNR identities and hand-computed cases", (t) => {
  const rng = new Rng(11);
  const a = randomImage(rng, 13, 9, 3);
  t.equal(psnrY(a, a, 0), Infinity, "identical → +Infinity");
  t.equal(psnrRgb(a, a, 2), Infinity, "identical RGB → +Infinity");
  // One of four samples off by 255: MSE = 255²/4 → 10·log10(4).
  t.ok(Math.abs(psnrPlane([0, 0, 0, 0], [0, 0, 0, 255], 2, 2) - 10 * Math.log10(4)) < 1e-12, "2×2 plane by hand");
  t.equal(msePlane([1, 2, 3], [1, 2, 5], 3, 1), 4 / 3, "mse by hand");
  // Differences only on the 1-px border vanish with shave 1.
  const p = new Float64Array(16);
  const q = new Float64Array(16);
  for (let i = 0; i < 16; i++) {
    const x = i % 4, y = Math.floor(i / 4);
    if (x === 0 || y === 0 || x === 3 || y === 3) q[i] = 100;
  }
  t.equal(psnrPlane(p, q, 4, 4, 1), Infinity, "border-only difference shaved away");
  t.ok(Number.isFinite(psnrPlane(p, q, 4, 4, 0)), "…and seen without shave");
  // Every channel +1: ΔY = 219/255 exactly, ΔRGB = 1.
  const b = { ...a, data: a.data.map((v) => Math.min(v, 254)) as Uint8Array };
  const c = { ...b, data: b.data.map((v) => v + 1) as Uint8Array };
  t.ok(Math.abs(psnrY(b, c, 1) - 20 * Math.log10((255 * 255) / 219)) < 1e-9, "uniform +1 → 20·log10(255²/219)");
  t.ok(Math.abs(psnrRgb(b, c, 1) - 20 * Math.log10(255)) < 1e-9, "uniform +1 RGB → 48.13 dB");
  // RGBA: alpha differences do not count.
  const rgba = randomImage(rng, 5, 5, 4);
  const rgba2 = { ...rgba, data: rgba.data.map((v, i) => (i % 4 === 3 ? 255 - v : v)) as Uint8Array };
  t.equal(psnrY(rgba, rgba2), Infinity, "alpha ignored by PSNR-Y");
  t.equal(psnrRgb(rgba, rgba2), Infinity, "alpha ignored by PSNR-RGB");
  t.equal(code(() => psnrY(a, randomImage(rng, 13, 8, 3))), "E_SHAPE", "size mismatch → E_SHAPE");
  t.equal(code(() => psnrY(a, a, 5)), "E_SHAPE", "shave leaving nothing → E_SHAPE");
  t.equal(code(() => psnrY(a, a, -1)), "E_ARGUMENT", "negative shave → E_ARGUMENT");
  t.equal(code(() => psnrY(a, a, 1.5)), "E_ARGUMENT", "fractional shave → E_ARGUMENT");
  t.end();
});

// ---------------------------------------------------------------- SSIM

/** Wang's ssim_index written the slow, obvious way: 2-D 121-tap filter2 'valid'. */
function ssimNaive(a: ArrayLike<number>, b: ArrayLike<number>, w: number, h: number): number {
  const g = gaussianWindow1d();
  const C1 = (0.01 * 255) ** 2, C2 = (0.03 * 255) ** 2;
  let total = 0;
  for (let y = 0; y + 11 <= h; y++) {
    for (let x = 0; x + 11 <= w; x++) {
      let mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
      for (let i = 0; i < 11; i++) {
        for (let j = 0; j < 11; j++) {
          const wt = g[i] * g[j];
          const p = a[(y + i) * w + x + j], q = b[(y + i) * w + x + j];
          mx += wt * p; my += wt * q; sxx += wt * p * p; syy += wt * q * q; sxy += wt * p * q;
        }
      }
      const vx = sxx - mx * mx, vy = syy - my * my, cxy = sxy - mx * my;
      total += ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
    }
  }
  return total / ((w - 10) * (h - 10));
}

test("metrics: SSIM window is cv2.getGaussianKernel(11, 1.5)", (t) => {
  const g = gaussianWindow1d();
  const want = [0.00102838, 0.00759876, 0.03600077, 0.10936069, 0.21300554, 0.26601172];
  for (let i = 0; i < 6; i++) {
    t.ok(Math.abs(g[i] - want[i]) < 5e-9, `g[${i}] = ${g[i]}`);
    t.equal(g[i], g[10 - i], `symmetric at ${i}`);
  }
  t.ok(Math.abs(g.reduce((s, v) => s + v, 0) - 1) < 1e-15, "sums to 1");
  t.end();
});

test("metrics: SSIM identities, constant images, and the 2-D reference", (t) => {
  const rng = new Rng(5);
  const a = randomImage(rng, 31, 24, 3);
  t.equal(ssimY(a, a, 3), 1, "identical → exactly 1");
  // Constant planes: σ = 0, so SSIM = (2·c1·c2 + C1) / (c1² + c2² + C1).
  const C1 = 6.5025;
  const c1 = 100, c2 = 120;
  const s = ssimPlane(new Float64Array(400).fill(c1), new Float64Array(400).fill(c2), 20, 20);
  t.ok(Math.abs(s - (2 * c1 * c2 + C1) / (c1 * c1 + c2 * c2 + C1)) < 1e-12, `constant planes by hand (${s})`);
  // Negated contrast around a mean: structure term −1 when both have the same variance.
  for (let trial = 0; trial < 20; trial++) {
    const w = rng.int(11, 40), h = rng.int(11, 40);
    const x = Float64Array.from({ length: w * h }, () => rng.uniform(0, 255));
    const y = Float64Array.from({ length: w * h }, (_, i) => (rng.next() < 0.5 ? x[i] + rng.normal() * 10 : rng.uniform(0, 255)));
    const fast = ssimPlane(x, y, w, h);
    const slow = ssimNaive(x, y, w, h);
    t.ok(Math.abs(fast - slow) < 1e-12, `${w}×${h}: separable ${fast} vs 2-D ${slow}`);
    t.ok(Math.abs(fast - ssimPlane(y, x, w, h)) < 1e-12, "symmetric");
  }
  // Shave = the same computation on the cropped planes; the map option returns the map.
  const w = 30, h = 27, sh = 3;
  const x = Float64Array.from({ length: w * h }, () => rng.uniform(0, 255));
  const y = Float64Array.from({ length: w * h }, () => rng.uniform(0, 255));
  const crop = (p: Float64Array) => {
    const o: number[] = [];
    for (let r = sh; r < h - sh; r++) for (let c = sh; c < w - sh; c++) o.push(p[r * w + c]);
    return o;
  };
  const map = new Float64Array((w - 2 * sh - 10) * (h - 2 * sh - 10));
  const s1 = ssimPlane(x, y, w, h, sh, map);
  t.equal(s1, ssimPlane(crop(x), crop(y), w - 2 * sh, h - 2 * sh), "shave = crop");
  t.ok(Math.abs(map.reduce((u, v) => u + v, 0) / map.length - s1) < 1e-15, "mean of the map");
  t.equal(code(() => ssimY(a, a, 7)), "E_SHAPE", "shaved image below 11×11 → E_SHAPE");
  t.equal(code(() => ssimPlane(x, y, w, h, 0, new Float64Array(3))), "E_SHAPE", "wrong map size → E_SHAPE");
  t.equal(code(() => ssimY(a, randomImage(rng, 31, 24, 4))), "E_SHAPE", "channel mismatch → E_SHAPE");
  t.end();
});

// ---------------------------------------------------------------- bicubic

test("bicubic: Keys kernel a = −0.5 and the protocol's test vectors", (t) => {
  t.equal(cubic(0), 1);
  t.equal(cubic(1), 0);
  t.equal(cubic(-2), 0);
  t.equal(cubic(2.5), 0);
  t.equal(cubic(0.5), 0.5625);
  t.equal(cubic(-1.5), -0.0625);
  const half = contributions(480, 240, 0.5);
  const want = [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875];
  t.equal(half.taps, 8, "×½: 8 taps after dropping zero columns");
  for (const i of [5, 100, 234]) t.deepEqual(Array.from(half.weights.subarray(i * 8, i * 8 + 8)), want, `×½ weights, output ${i}`);
  t.deepEqual(Array.from(half.indices.subarray(0, 8)), [2, 1, 0, 0, 1, 2, 3, 4], "×½ left border mirrors with the edge repeated");
  t.deepEqual(Array.from(half.indices.subarray(239 * 8)), [475, 476, 477, 478, 479, 479, 478, 477], "×½ right border");
  const up = contributions(240, 480, 2);
  t.equal(up.taps, 4, "×2: 4 taps");
  t.deepEqual(Array.from(up.weights.subarray(4, 8)), [-0.0703125, 0.8671875, 0.2265625, -0.0234375], "×2 phase 0.25");
  t.deepEqual(Array.from(up.weights.subarray(0, 4)), [-0.0234375, 0.2265625, 0.8671875, -0.0703125], "×2 phase 0.75");
  for (const [n, s] of [[480, 1 / 3], [480, 0.25], [7, 3], [5, 1 / 3], [1, 4], [3, 0.5]] as const) {
    const ct = contributions(n, Math.ceil(n * s), s);
    let ok = true;
    for (let i = 0; i < ct.outLength; i++) {
      let sum = 0;
      for (let k = 0; k < ct.taps; k++) {
        sum += ct.weights[i * ct.taps + k];
        const ix = ct.indices[i * ct.taps + k];
        if (ix < 0 || ix >= n) ok = false;
      }
      if (Math.abs(sum - 1) > 1e-14) ok = false;
    }
    t.ok(ok, `n=${n} scale=${s.toFixed(3)}: ${ct.taps} taps, rows sum to 1, indices in range`);
  }
  t.ok(contributions(480, 120, 0.25).taps <= 18, "×¼: at most ceil(16)+2 taps");
  t.end();
});

/** imresize from the protocol text, written independently: no dropped columns, aux-array mirror, plain arrays. */
function refResize(src: ImageView, outW: number, outH: number, sx: number, sy: number, aa = true): Float64Array {
  const { width: W, height: H, channels: C } = src;
  const weightsFor = (n: number, m: number, s: number) => {
    const kw = s < 1 && aa ? 4 / s : 4;
    const f = (x: number) => (s < 1 && aa ? s * cubic(s * x) : cubic(x));
    const P = Math.ceil(kw) + 2;
    const aux: number[] = [];
    for (let i = 1; i <= n; i++) aux.push(i);
    for (let i = n; i >= 1; i--) aux.push(i);
    const rows: { w: number[]; ix: number[] }[] = [];
    for (let x = 1; x <= m; x++) {
      const u = x / s + 0.5 * (1 - 1 / s);
      const left = Math.floor(u - kw / 2);
      const w: number[] = [], ix: number[] = [];
      for (let k = 0; k < P; k++) {
        w.push(f(u - (left + k)));
        const j = left + k;
        ix.push(aux[((j - 1) % (2 * n) + 2 * n) % (2 * n)] - 1);
      }
      const sum = w.reduce((p, q) => p + q, 0);
      rows.push({ w: w.map((v) => v / sum), ix });
    }
    return rows;
  };
  const wr = weightsFor(H, outH, sy), wc = weightsFor(W, outW, sx);
  const get = (d: ArrayLike<number>, w: number, x: number, y: number, c: number) => d[(y * w + x) * C + c];
  let out: Float64Array;
  if (sy <= sx) {
    const tmp = new Float64Array(outH * W * C);
    for (let y = 0; y < outH; y++) for (let x = 0; x < W; x++) for (let c = 0; c < C; c++) {
      let acc = 0;
      wr[y].w.forEach((w, k) => (acc += w * get(src.data, W, x, wr[y].ix[k], c)));
      tmp[(y * W + x) * C + c] = acc;
    }
    out = new Float64Array(outH * outW * C);
    for (let y = 0; y < outH; y++) for (let x = 0; x < outW; x++) for (let c = 0; c < C; c++) {
      let acc = 0;
      wc[x].w.forEach((w, k) => (acc += w * get(tmp, W, wc[x].ix[k], y, c)));
      out[(y * outW + x) * C + c] = acc;
    }
  } else {
    const tmp = new Float64Array(H * outW * C);
    for (let y = 0; y < H; y++) for (let x = 0; x < outW; x++) for (let c = 0; c < C; c++) {
      let acc = 0;
      wc[x].w.forEach((w, k) => (acc += w * get(src.data, W, wc[x].ix[k], y, c)));
      tmp[(y * outW + x) * C + c] = acc;
    }
    out = new Float64Array(outH * outW * C);
    for (let y = 0; y < outH; y++) for (let x = 0; x < outW; x++) for (let c = 0; c < C; c++) {
      let acc = 0;
      wr[y].w.forEach((w, k) => (acc += w * get(tmp, outW, x, wr[y].ix[k], c)));
      out[(y * outW + x) * C + c] = acc;
    }
  }
  return out;
}

test("bicubic: matches an independent protocol implementation bit for bit (random sizes, channels, scales)", (t) => {
  const rng = new Rng(2024);
  let cases = 0, bad = 0;
  for (let trial = 0; trial < 160; trial++) {
    const w = rng.int(1, 23), h = rng.int(1, 23), c = rng.pick([1, 2, 3, 4, 5]);
    const src = rng.next() < 0.3 ? { ...randomImage(rng, w, h, c), data: Float32Array.from({ length: w * h * c }, () => rng.uniform(-20, 280)) } : randomImage(rng, w, h, c);
    const aa = rng.next() < 0.85;
    let outW: number, outH: number, sx: number, sy: number;
    let spec: ResizeSpec;
    if (rng.next() < 0.5) {
      const s = rng.pick([1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.7, 1.3, 1]);
      outW = Math.ceil(s * w); outH = Math.ceil(s * h); sx = sy = s;
      spec = { scale: s, antialias: aa };
    } else {
      outW = rng.int(1, 30); outH = rng.int(1, 30); sx = outW / w; sy = outH / h;
      spec = { width: outW, height: outH, antialias: aa };
    }
    const res = imresizeFloat(src, spec);
    const ref = refResize(src, outW, outH, sx, sy, aa);
    cases++;
    const same = res.width === outW && res.height === outH && res.data.length === ref.length && res.data.every((v, i) => v === ref[i]);
    if (!same) {
      bad++;
      t.fail(`${w}×${h}×${c} → ${outW}×${outH} (aa ${aa}) differs from the reference`);
    }
    const u8 = imresize(src, spec);
    if (!u8.data.every((v, i) => v === roundU8(ref[i]))) {
      bad++;
      t.fail(`${w}×${h}×${c} → ${outW}×${outH}: uint8 output is not roundU8 of the float result`);
    }
  }
  t.equal(bad, 0, `${cases} random resizes identical to the reference (float64 and uint8)`);
  t.end();
});

test("bicubic: order rule, constants, identity, rounding path, errors", (t) => {
  const rng = new Rng(77);
  // A tie (square scale) runs rows first; a wider-than-tall shrink runs the smaller-scale columns first.
  // Both pass orders give the same values up to rounding; the reference above pins which one is used.
  const src = randomImage(rng, 17, 11, 3);
  const a = imresizeFloat(src, { width: 5, height: 9 }); // sx = 5/17 < sy = 9/11 → columns first
  const ref = refResize(src, 5, 9, 5 / 17, 9 / 11);
  t.ok(a.data.every((v, i) => v === ref[i]), "smaller scale first");
  // Constant image stays constant (weights normalised) through shrink and enlarge.
  const k = { data: new Uint8Array(24 * 18 * 3).fill(200), width: 24, height: 18, channels: 3 };
  t.ok(bicubicDown(k, 3).data.every((v) => v === 200), "constant ×⅓ stays 200");
  t.ok(bicubicUp(k, 4).data.every((v) => v === 200), "constant ×4 stays 200");
  // Scale 1 is the identity (one weight 1 per output), so it exposes the rounding path directly.
  const ties = [0.5, 1.5, 2.5, 127.5, 254.5, -0.5, 0.49999999999999994, 2.4999999999999996, 254.49999999999997, 300, -7, 99.2];
  const tf = { data: Float64Array.from(ties), width: ties.length, height: 1, channels: 1 };
  t.deepEqual(Array.from(imresizeFloat(tf, { scale: 1 }).data), ties, "scale 1 is the identity in float64");
  t.deepEqual(Array.from(imresize(tf, { scale: 1 }).data), ties.map(roundU8), "uint8 output rounds like roundU8 (ties, near-ties, saturation)");
  let mism = 0;
  const many = Float64Array.from({ length: 20000 }, (_, i) => (i % 2 ? rng.int(-3, 258) + 0.5 : rng.uniform(-2, 257)));
  const r = imresize({ data: many, width: many.length, height: 1, channels: 1 }, { scale: 1 }).data;
  for (let i = 0; i < many.length; i++) if (r[i] !== roundU8(many[i])) mism++;
  t.equal(mism, 0, "20000 random values and ties: fast rounding = roundU8");
  // Plane API.
  const plane = Float32Array.from({ length: 12 * 8 }, () => rng.uniform(0, 1));
  const out = new Float64Array(6 * 4);
  const pr = imresizePlane(out, plane, 12, 8, { scale: 0.5 });
  t.equal(pr.data, out, "plane written into out");
  t.deepEqual(Array.from(out), Array.from(refResize({ data: plane, width: 12, height: 8, channels: 1 }, 6, 4, 0.5, 0.5)), "plane = reference");
  t.equal(code(() => imresizePlane(new Float64Array(3), plane, 12, 8, { scale: 0.5 })), "E_SHAPE", "plane out wrong size");
  // Errors.
  t.equal(code(() => imresize(src, { scale: 0 })), "E_ARGUMENT", "scale 0");
  t.equal(code(() => imresize(src, { scale: NaN })), "E_ARGUMENT", "scale NaN");
  t.equal(code(() => imresize(src, { scale: -2 })), "E_ARGUMENT", "scale < 0");
  t.equal(code(() => imresize(src, { scale: 2, width: 3 })), "E_ARGUMENT", "scale and width");
  t.equal(code(() => imresize(src, { width: 3 })), "E_ARGUMENT", "width without height");
  t.equal(code(() => imresize(src, { width: 0, height: 3 })), "E_ARGUMENT", "zero width");
  t.equal(code(() => imresize(src, { scale: 1e7 })), "E_MEMORY", "absurd output size");
  t.equal(code(() => imresize({ ...src, channels: 0 }, { scale: 2 })), "E_ARGUMENT", "0 channels");
  t.equal(code(() => imresize({ ...src, width: 16 }, { scale: 2 })), "E_SHAPE", "data length mismatch");
  t.equal(code(() => bicubicDown(src, 1.5)), "E_ARGUMENT", "non-integer factor");
  t.end();
});

// ---------------------------------------------------------------- the shared eval set

const NAMES = ["aero1", "baboon", "board", "building", "butterfly", "fruits", "home", "messi5"];

type BaselineJson = Record<string, Record<string, { psnrY: number; ssimY: number }>>;

/** BASELINE.md: the JSON block and the secondary table (PSNR-Y shave s+6, PSNR-RGB shave s). */
function readBaseline(dir: string): { json: BaselineJson; secondary: Map<string, number[]> } {
  const md = readFileSync(join(dir, "BASELINE.md"), "utf8");
  const m = /```json\n([\s\S]*?)```/.exec(md);
  if (!m) throw new Error("BASELINE.md has no ```json block");
  const json = JSON.parse(m[1]) as BaselineJson;
  const sec = md.slice(md.indexOf("## Secondary numbers"));
  const secondary = new Map<string, number[]>();
  for (const line of sec.split("\n")) {
    const cells = line.split("|").map((s) => s.trim().replace(/\*/g, ""));
    if (cells.length === 9 && /^\d/.test(cells[2])) secondary.set(cells[1] === "mean" ? "_mean" : cells[1], cells.slice(2, 8).map(Number));
  }
  return { json, secondary };
}

test("eval set: layout, sorted pairs, scales", async (t) => {
  let dir: string;
  try {
    dir = evalDir();
  } catch (e) {
    t.fail(`shared eval data missing — the reproduction tests cannot run: ${(e as Error).message}`);
    t.end();
    return;
  }
  t.deepEqual(await evalScales(dir), [2, 3, 4], "lr_x2, lr_x3, lr_x4");
  const pairs = await listEvalSet(dir, 3);
  t.deepEqual(pairs.map((p) => p.name), NAMES, "8 pairs in code-point order");
  t.deepEqual(pairs.map((p) => `${p.width}x${p.height}`), ["480x480", "480x480", "480x480", "480x480", "480x336", "480x480", "480x384", "480x336"], "HR sizes from the headers");
  t.equal(await codeAsync(() => listEvalSet(dir, 8)), "E_IO", "no lr_x8 → E_IO");
  t.end();
});

test("eval set: LR = MATLAB bicubic of HR bit for bit; bicubic baseline = BASELINE.md", async (t) => {
  let dir: string;
  try {
    dir = evalDir();
  } catch (e) {
    t.fail(`shared eval data missing — the reproduction tests cannot run: ${(e as Error).message}`);
    t.end();
    return;
  }
  const { json, secondary } = readBaseline(dir);
  const full = evalFull();
  const t0 = performance.now();
  const hrCache = new Map<string, ImageU8>();
  for (const s of [2, 3, 4]) {
    const pairs = await listEvalSet(dir, s);
    const chosen = full ? pairs : pairs.filter((p) => p.name === "baboon" || p.name === "butterfly");
    const scores: SrScores[] = [];
    const edsr: number[] = [];
    let diff = 0, samples = 0;
    for (const pair of chosen) {
      // HR is shared by the three scales: decode it once.
      let hr = hrCache.get(pair.hr);
      if (hr === undefined) hrCache.set(pair.hr, (hr = await readImage(pair.hr)));
      const lr = await readImage(pair.lr);
      const mine = bicubicDown(hr, s);
      t.ok(mine.width === lr.width && mine.height === lr.height && mine.channels === lr.channels, `×${s} ${pair.name}: LR size`);
      let d = 0;
      for (let i = 0; i < lr.data.length; i++) if (mine.data[i] !== lr.data[i]) d++;
      diff += d;
      samples += lr.data.length;
      t.equal(d, 0, `×${s} ${pair.name}: LR identical (${d} of ${lr.data.length} samples differ)`);
      const sr = bicubicUp(lr, s);
      const sc = scoreSR(sr, hr, s);
      scores.push(sc);
      const want = json[pair.name][`x${s}`];
      t.ok(Math.abs(sc.psnrY - want.psnrY) <= 5e-5, `×${s} ${pair.name}: PSNR-Y ${sc.psnrY.toFixed(6)} ≈ ${want.psnrY}`);
      t.ok(Math.abs(sc.ssimY - want.ssimY) <= 5e-6, `×${s} ${pair.name}: SSIM-Y ${sc.ssimY.toFixed(7)} ≈ ${want.ssimY}`);
      const sec = secondary.get(pair.name)!;
      const e = psnrY(sr, hr, s + 6);
      edsr.push(e);
      const col = (s - 2) * 2;
      t.ok(Math.abs(e - sec[col]) <= 0.005, `×${s} ${pair.name}: PSNR-Y shave ${s + 6} ${e.toFixed(3)} ≈ ${sec[col]}`);
      t.ok(Math.abs(sc.psnrRgb - sec[col + 1]) <= 0.005, `×${s} ${pair.name}: PSNR-RGB ${sc.psnrRgb.toFixed(3)} ≈ ${sec[col + 1]}`);
    }
    t.equal(diff, 0, `×${s}: ${diff} of ${samples} LR samples differ`);
    if (full) {
      const m = meanScores(scores);
      const want = json._mean[`x${s}`];
      t.ok(Math.abs(m.psnrY - want.psnrY) <= 5e-5, `×${s} mean PSNR-Y ${m.psnrY.toFixed(6)} ≈ ${want.psnrY}`);
      t.ok(Math.abs(m.ssimY - want.ssimY) <= 5e-6, `×${s} mean SSIM-Y ${m.ssimY.toFixed(7)} ≈ ${want.ssimY}`);
      const sec = secondary.get("_mean")!;
      const me = edsr.reduce((a, b) => a + b, 0) / edsr.length;
      t.ok(Math.abs(me - sec[(s - 2) * 2]) <= 0.005, `×${s} mean PSNR-Y shave ${s + 6} ${me.toFixed(3)}`);
      t.ok(Math.abs(m.psnrRgb - sec[(s - 2) * 2 + 1]) <= 0.005, `×${s} mean PSNR-RGB ${m.psnrRgb.toFixed(3)}`);
    }
  }
  t.comment(`eval reproduction (${full ? "8 images × 3 scales" : "subset"}): ${(performance.now() - t0).toFixed(0)} ms`);
  t.end();
});

test("eval set: missing pairs and wrong sizes are clear errors", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "lowbit-evalset-"));
  try {
    const rng = new Rng(3);
    const png = (w: number, h: number) => encodePng({ data: rng.fillUint8(new Uint8Array(w * h * 3)), width: w, height: h, channels: 3 });
    mkdirSync(join(root, "hr"));
    mkdirSync(join(root, "lr_x2"));
    writeFileSync(join(root, "hr", "b.png"), png(8, 6));
    writeFileSync(join(root, "hr", "a.png"), png(12, 4));
    writeFileSync(join(root, "hr", "notes.txt"), "not an image");
    writeFileSync(join(root, "lr_x2", "a.png"), png(6, 2));
    const err = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
        return "no error";
      } catch (e) {
        return e instanceof LowbitError ? `${e.code} ${e.message}` : String(e);
      }
    };
    let m = await err(() => listEvalSet(root, 2));
    t.ok(m.startsWith("E_IO") && m.includes("b.png") && m.includes("no LR counterpart"), `HR without LR: ${m}`);
    writeFileSync(join(root, "lr_x2", "b.png"), png(4, 4));
    m = await err(() => listEvalSet(root, 2));
    t.ok(m.startsWith("E_SHAPE") && m.includes("b:"), `wrong LR size: ${m}`);
    writeFileSync(join(root, "lr_x2", "b.png"), png(4, 3));
    const pairs = await listEvalSet(root, 2);
    t.deepEqual(pairs.map((p) => p.name), ["a", "b"], "sorted; non-images ignored");
    const loaded = await loadEvalPair(pairs[1]);
    t.equal(loaded.hr.width, 8, "loadEvalPair decodes");
    writeFileSync(join(root, "lr_x2", "c.png"), png(2, 2));
    m = await err(() => listEvalSet(root, 2));
    t.ok(m.startsWith("E_IO") && m.includes("c.png") && m.includes("no HR counterpart"), `LR without HR: ${m}`);
    m = await err(() => listEvalSet(root, 3));
    t.ok(m.startsWith("E_IO") && m.includes("lr_x3"), `missing lr_x3: ${m}`);
    m = await err(() => listEvalSet(join(root, "nope"), 2));
    t.ok(m.startsWith("E_IO"), `missing dir: ${m}`);
    t.equal(await codeAsync(() => listEvalSet(root, 0)), "E_ARGUMENT", "scale 0");
    writeFileSync(join(root, "hr", "a.jpg"), "x");
    m = await err(() => listEvalSet(root, 2));
    t.ok(m.startsWith("E_ARGUMENT") && m.includes("a.jpg"), `duplicate stem: ${m}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  t.end();
});
