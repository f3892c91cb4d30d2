// qs16_qc16w_conv_nhwc_pcs_f32: the *exact* integer conv for per-image, per-input-channel activation scales
// (DAQ §6 path A, DFSQ §7 (b), methods README building block 2). Stride 1, 'same' zero padding, odd k, NHWC
// with pixel strides. Wrapper: src/kernels/qs16-conv-pcs.ts. Reference: src/kernels/ref/qs16-conv-pcs.ts.
//
// Arithmetic. The activations arrive as int16 integers g with a per-input-channel affine map (a_c, μ_c) that
// changes per image; the weights are int16 w with one scale per output channel:
//
//   x̂[p,c] = a_c·g[p,c] + μ_c   inside the image,   x̂ = 0 outside (the reference zero-pads x̂, not g)
//   ŵ[o,t,c] = s_o·w[o,t,c]                          (s_o = wscale[o], t = tap (kh, kw))
//
//   y[o,p] = b_o + Σ_c Σ_{t in-bounds} ŵ·x̂
//          = b_o + s_o · Σ_c ( a_c·P[o,c,p] + μ_c·Z[o,c,p] )
//     P[o,c,p] = Σ_{t in-bounds} w[o,t,c]·g[p+t,c]     exact int32 (padding g = 0 drops out-of-image taps)
//     Z[o,c,p] = Σ_{t in-bounds} w[o,t,c]              the border term: a per-(o,c) constant in the interior
//
// a_c differs per input channel, so it cannot move into a per-output requantizer: the int32 sums are kept
// per input channel and each is scaled once in f32 (about +1/k² work over an int8 conv that sums over c too).
//
// f32 combine order (fixed; the TS reference repeats it op by op with Math.fround, so results are bit-identical):
//   acc = +0;  for c = 0 … Cin−1:  acc = f32(acc + f32(f32(P[o,c,p]) · a_c))
//   T   = +0;  for c = 0 … Cin−1:  T   = f32(T + f32(μ_c · f32(Z[o,c,p])))
//   v   = f32(f32(f32(acc + T) · s_o) + b_o);   y = min(max(v, outMin), outMax)   (pmax/pmin semantics:
//         v < outMin ? outMin : v, then outMax < v ? outMax : v)
// T depends on p only through the window of in-bounds taps, i.e. through the row class (top p rows, interior,
// bottom p rows) and the column class. Once per call the kernel fills a table T[row class][column class][o]
// (≤ (2p+1)² windows; the interior one is the per-layer constant) and the epilogue looks it up per pixel.
//
// Overflow. A dot_i16x8 pair sum is ≤ 2·32768·32767 < 2^31 (the wrapper requires |w| ≤ 32767), and the sum over
// all taps of one (o, c) is |P| ≤ max|g| · Σ_t |w[o,t,c]|, which the wrapper proves < 2^31 before the call.
// Intermediate pair-sum additions may wrap, but int32 addition is exact modulo 2^32 and the final P is in
// range, so P is exact. |Z| ≤ k²·32767 < 2^31 for every k the wrapper accepts.
//
// SIMD design (output channels across lanes, as qs8-conv-common.ts): register block 4 pixels × 8 output
// channels. For one input channel c the k² taps are consumed two at a time with
//   i32x4.dot_i16x8_s( splat(g[t0], g[t1]) , [w(o0,t0) w(o0,t1) w(o1,t0) … w(o3,t1)] )
// so the activation pair of two taps must be one 32-bit load. The prepared band stores every (row, channel)
// as a planar record:
//   A: WpA i16 g values of the padded row (p ring zeros, W image values, zeros)   — two taps (kh, kw), (kh, kw+1)
//                                                                                   are adjacent: one load32
//   B: WpB i32 pairs (A[r][x+k−1], A[r+1][x])                                     — the pair that crosses from
//                                                                                   the end of kernel row kh to
//                                                                                   the start of row kh+1
// Taps are paired in flattened order t = kh·k + kw: rows with even kh pair (0,1),(2,3),…,(k−3,k−2) then cross
// (k−1 | next row's 0); odd rows pair (1,2),…,(k−2,k−1); the last tap (k−1,k−1) pairs with a zero weight.
// That is ⌈k²/2⌉ dots per 8 MAC lanes (k = 3: 5 dots for 9 taps, 90 % useful). After the taps of c, the 8 int32
// accumulators are converted and multiply-added into 8 f32 accumulators with a_c.

import { store8x32 } from "./qs8-conv-common";

// ---------------------------------------------------------------------------------------------------------
// Packed weights (packQs16ConvPcs in the wrapper). CoutP = Cout↑8, NP = (k²+1)/2 tap pairs in the order above:
//   per block of 8 output channels, per input channel c, per tap pair j: 32 bytes
//     i16 [w(o0,t0) w(o0,t1) w(o1,t0) w(o1,t1) w(o2,t0) … w(o3,t1)] [w(o4,t0) … w(o7,t1)]
//   (t1 of the last pair and every padding output channel hold 0).
// Scratch (sizes: qs16ConvPcsScratchBytes in the wrapper):
//   pair table  NP × 16 bytes: i32 offset in the band relative to record (row, c) at x = 0, i32 pixel stride
//               (2 for A, 4 for B), i32 tap t0, i32 tap t1 (−1: none)
//   T table     ny·nx·CoutP f32 (ny = min(H, 2p+1), nx = min(W, 2p+1))
//   band        (bandRows + 2p) rows × Cin records of R = 2·WpA + 4·WpB bytes
// ---------------------------------------------------------------------------------------------------------

@inline function alignUp16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}

/** Planar record geometry: WpA (i16 elements), WpB (i32 pairs), R (bytes). Wc = max(W, 4) output columns. */
@inline function wpA(Wc: i32, p: i32): i32 {
  return (Wc + 2 * p + 8) & ~7;
}
@inline function wpB(Wc: i32, k: i32): i32 {
  return k > 1 ? (Wc + 7) & ~7 : 0;
}

/** Writes the NP pair descriptors (see the layout above). */
function buildPairTable(tab: usize, k: i32, Cin: i32, R: i32, WpA: i32): i32 {
  const rowStep = Cin * R;
  let j = 0;
  for (let kh = 0; kh < k; kh++) {
    let kw = kh & 1;
    for (; kw + 1 < k; kw += 2) {
      const e = tab + (<usize>j << 4);
      store<i32>(e, kh * rowStep + kw * 2);
      store<i32>(e, 2, 4);
      store<i32>(e, kh * k + kw, 8);
      store<i32>(e, kh * k + kw + 1, 12);
      j++;
    }
    if (kw == k - 1) {
      const e = tab + (<usize>j << 4);
      if (kh < k - 1) { // cross pair: (kh, k−1) with (kh+1, 0), from the B plane of row kh
        store<i32>(e, kh * rowStep + WpA * 2);
        store<i32>(e, 4, 4);
        store<i32>(e, kh * k + kw, 8);
        store<i32>(e, (kh + 1) * k, 12);
      } else { // the last tap alone; its partner weight is 0
        store<i32>(e, kh * rowStep + kw * 2);
        store<i32>(e, 2, 4);
        store<i32>(e, kh * k + kw, 8);
        store<i32>(e, -1, 12);
      }
      j++;
    }
  }
  return j;
}

/** Row / column class of output coordinate y in an axis of length H (see the header). */
@inline function axisClass(y: i32, H: i32, p: i32, n: i32): i32 {
  return y < p ? y : y >= H - p ? n - (H - y) : p;
}

/** The representative coordinate of class j: j for the leading p (or all, when H ≤ 2p), else from the end. */
@inline function axisRep(j: i32, H: i32, p: i32, n: i32): i32 {
  return j <= p ? j : H - n + j;
}

/**
 * T[jy][jx][o] = Σ_c f32(μ_c · f32(Z[o,c,window])) in c order, Z from the packed weights: a dot of the pair
 * weights with the 0/1 "tap in window" mask pair gives Σ_{window} w for 8 output channels at once.
 */
function borderTable(packed: usize, tab: usize, np: i32, Cin: i32, Cout: i32, k: i32, p: i32, H: i32, W: i32,
  ny: i32, nx: i32, chMean: usize, T: usize): void {
  const CoutP = (Cout + 7) & ~7;
  const wBlock = <usize>Cin * <usize>np << 5;
  for (let jy = 0; jy < ny; jy++) {
    const yr = axisRep(jy, H, p, ny);
    const kh0 = max(0, p - yr), kh1 = min(k - 1, p + H - 1 - yr);
    for (let jx = 0; jx < nx; jx++) {
      const xr = axisRep(jx, W, p, nx);
      const kw0 = max(0, p - xr), kw1 = min(k - 1, p + W - 1 - xr);
      const dst = T + (<usize>((jy * nx + jx) * CoutP) << 2);
      for (let ob = 0; ob < CoutP; ob += 8) {
        let t0 = f32x4.splat(0), t1 = f32x4.splat(0);
        let pw = packed + <usize>(ob >> 3) * wBlock;
        for (let c = 0; c < Cin; c++) {
          let z0 = i32x4.splat(0), z1 = i32x4.splat(0);
          for (let j = 0; j < np; j++) {
            const e = tab + (<usize>j << 4);
            const ta = load<i32>(e, 8), tb = load<i32>(e, 12);
            let m = 0;
            const ha = ta / k, wa = ta % k;
            if (ha >= kh0 && ha <= kh1 && wa >= kw0 && wa <= kw1) m = 1;
            if (tb >= 0) {
              const hb = tb / k, wb = tb % k;
              if (hb >= kh0 && hb <= kh1 && wb >= kw0 && wb <= kw1) m |= 1 << 16;
            }
            const mv = i32x4.splat(m);
            z0 = i32x4.add(z0, i32x4.dot_i16x8_s(mv, v128.load(pw)));
            z1 = i32x4.add(z1, i32x4.dot_i16x8_s(mv, v128.load(pw, 16)));
            pw += 32;
          }
          const mu = f32x4.splat(load<f32>(chMean + (<usize>c << 2)));
          t0 = f32x4.add(t0, f32x4.mul(mu, f32x4.convert_i32x4_s(z0)));
          t1 = f32x4.add(t1, f32x4.mul(mu, f32x4.convert_i32x4_s(z1)));
        }
        v128.store(dst + (<usize>ob << 2), t0);
        v128.store(dst + (<usize>ob << 2), t1, 16);
      }
    }
  }
}

/**
 * Prepares band rows y0−p … y0−p+nRows−1 as planar records (A then B, see the header). Rows outside the image
 * are all zero (x̂ is zero-padded, so g = 0 there and the μ term leaves them out via Z).
 */
function prepareBand(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, k: i32, p: i32,
  y0: i32, nRows: i32, WpA: i32, WpB: i32, R: i32, band: usize): void {
  const recRow = <usize>Cin * <usize>R;
  const pxIn = <usize>inStride << 1;
  for (let r = 0; r < nRows; r++) {
    const y = y0 - p + r;
    const row = band + <usize>r * recRow;
    if (y < 0 || y >= H) {
      for (let c = 0; c < Cin; c++) memory.fill(row + <usize>c * <usize>R, 0, <usize>WpA << 1);
      continue;
    }
    for (let c = 0; c < Cin; c++) {
      const a = row + <usize>c * <usize>R;
      memory.fill(a, 0, <usize>p << 1);
      memory.fill(a + (<usize>(p + W) << 1), 0, <usize>(WpA - p - W) << 1);
    }
    // NHWC → planar: 8 channels at a time scattered into 8 records, the channel tail one by one.
    let s = input + <usize>y * <usize>W * pxIn;
    const a0 = row + (<usize>p << 1);
    const R8 = <usize>R << 3;
    for (let x = 0; x < W; x++) {
      let q = a0 + (<usize>x << 1);
      let c = 0;
      for (; c + 8 <= Cin; c += 8) {
        const v = v128.load(s + (<usize>c << 1));
        v128.store16_lane(q, v, 0);
        v128.store16_lane(q + <usize>R, v, 1);
        v128.store16_lane(q + <usize>R * 2, v, 2);
        v128.store16_lane(q + <usize>R * 3, v, 3);
        v128.store16_lane(q + <usize>R * 4, v, 4);
        v128.store16_lane(q + <usize>R * 5, v, 5);
        v128.store16_lane(q + <usize>R * 6, v, 6);
        v128.store16_lane(q + <usize>R * 7, v, 7);
        q += R8;
      }
      for (; c < Cin; c++) {
        store<i16>(q, load<i16>(s + (<usize>c << 1)));
        q += <usize>R;
      }
      s += pxIn;
    }
  }
  if (k == 1) return;
  // B planes of rows 0 … nRows−3 (the cross pairs of kernel rows kh ≤ k−3 of every output row of the band).
  const off = <usize>(k - 1) << 1;
  for (let r = 0; r < nRows - 2; r++) {
    for (let c = 0; c < Cin; c++) {
      const a = band + <usize>r * recRow + <usize>c * <usize>R;
      const an = a + recRow;
      const b = a + (<usize>WpA << 1);
      for (let x = 0; x < WpB; x += 8) {
        // Reads past WpA land in the same record's B plane (x ≥ Wc entries are never used).
        const lo = v128.load(a + off + (<usize>x << 1));
        const hi = v128.load(an + (<usize>x << 1));
        v128.store(b + (<usize>x << 2), i16x8.shuffle(lo, hi, 0, 8, 1, 9, 2, 10, 3, 11));
        v128.store(b + (<usize>x << 2), i16x8.shuffle(lo, hi, 4, 12, 5, 13, 6, 14, 7, 15), 16);
      }
    }
  }
}

/** Epilogue of one pixel: (acc + T)·s + b, clamped; stores nValid ≤ 8 f32. */
@inline function storePixel(f0: v128, f1: v128, t: usize, ws0: v128, ws1: v128, b0: v128, b1: v128,
  lo: v128, hi: v128, dst: usize, nValid: i32): void {
  const v0 = f32x4.add(f32x4.mul(f32x4.add(f0, v128.load(t)), ws0), b0);
  const v1 = f32x4.add(f32x4.mul(f32x4.add(f1, v128.load(t, 16)), ws1), b1);
  store8x32(dst, f32x4.pmin(f32x4.pmax(v0, lo), hi), f32x4.pmin(f32x4.pmax(v1, lo), hi), nValid);
}

/**
 * Output rows y0 … y0+n−1 from a prepared band: per row, per block of 8 output channels, per block of 4 pixels
 * (the last one overlaps when W % 4 ≠ 0), per input channel c: ⌈k²/2⌉ pair dots into 8 int32 accumulators,
 * then f32 multiply-add with a_c.
 */
function accumulate(band: usize, tab: usize, np: i32, H: i32, W: i32, p: i32, Cin: i32, R: i32, y0: i32, n: i32,
  ny: i32, nx: i32, T: usize, packed: usize, Cout: i32, chScale: usize, wscale: usize, bias: usize,
  out: usize, outStride: i32, outMin: f32, outMax: f32): void {
  const CoutP = (Cout + 7) & ~7;
  const recRow = <usize>Cin * <usize>R;
  const wBlock = <usize>Cin * <usize>np << 5;
  const outPx = <usize>outStride << 2;
  const nPix = W < 4 ? W : 4;
  const lastX = W < 4 ? 0 : W - 4;
  const lo = f32x4.splat(outMin);
  const hi = f32x4.splat(outMax);
  const zero = i32x4.splat(0);
  const fzero = f32x4.splat(0);
  const tabEnd = tab + (<usize>np << 4);
  for (let i = 0; i < n; i++) {
    const y = y0 + i;
    const Trow = T + (<usize>(axisClass(y, H, p, ny) * nx * CoutP) << 2);
    const rowOut = out + <usize>y * <usize>W * outPx;
    const rec0 = band + <usize>i * recRow;
    for (let ob = 0; ob < CoutP; ob += 8) {
      const obb = <usize>ob << 2;
      const ws0 = v128.load(wscale + obb), ws1 = v128.load(wscale + obb, 16);
      const b0 = v128.load(bias + obb), b1 = v128.load(bias + obb, 16);
      const wb = packed + <usize>(ob >> 3) * wBlock;
      const nValid = min(8, Cout - ob);
      for (let x = 0; x < W; x += 4) {
        const xs = x > lastX ? lastX : x;
        let f00 = fzero, f01 = fzero, f10 = fzero, f11 = fzero, f20 = fzero, f21 = fzero, f30 = fzero, f31 = fzero;
        let pw = wb;
        let rec = rec0;
        for (let c = 0; c < Cin; c++) {
          let c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero, c30 = zero, c31 = zero;
          let e = tab;
          do {
            const st = <usize>load<i32>(e, 4);
            const pa = rec + <usize>load<i32>(e) + <usize>xs * st;
            const w0 = v128.load(pw);
            const w1 = v128.load(pw, 16);
            const a0 = v128.load32_splat(pa);
            const a1 = v128.load32_splat(pa + st);
            const a2 = v128.load32_splat(pa + 2 * st);
            const a3 = v128.load32_splat(pa + 3 * st);
            c00 = i32x4.add(c00, i32x4.dot_i16x8_s(a0, w0));
            c01 = i32x4.add(c01, i32x4.dot_i16x8_s(a0, w1));
            c10 = i32x4.add(c10, i32x4.dot_i16x8_s(a1, w0));
            c11 = i32x4.add(c11, i32x4.dot_i16x8_s(a1, w1));
            c20 = i32x4.add(c20, i32x4.dot_i16x8_s(a2, w0));
            c21 = i32x4.add(c21, i32x4.dot_i16x8_s(a2, w1));
            c30 = i32x4.add(c30, i32x4.dot_i16x8_s(a3, w0));
            c31 = i32x4.add(c31, i32x4.dot_i16x8_s(a3, w1));
            pw += 32;
            e += 16;
          } while (e < tabEnd);
          const sc = v128.load32_splat(chScale + (<usize>c << 2));
          f00 = f32x4.add(f00, f32x4.mul(f32x4.convert_i32x4_s(c00), sc));
          f01 = f32x4.add(f01, f32x4.mul(f32x4.convert_i32x4_s(c01), sc));
          f10 = f32x4.add(f10, f32x4.mul(f32x4.convert_i32x4_s(c10), sc));
          f11 = f32x4.add(f11, f32x4.mul(f32x4.convert_i32x4_s(c11), sc));
          f20 = f32x4.add(f20, f32x4.mul(f32x4.convert_i32x4_s(c20), sc));
          f21 = f32x4.add(f21, f32x4.mul(f32x4.convert_i32x4_s(c21), sc));
          f30 = f32x4.add(f30, f32x4.mul(f32x4.convert_i32x4_s(c30), sc));
          f31 = f32x4.add(f31, f32x4.mul(f32x4.convert_i32x4_s(c31), sc));
          rec += <usize>R;
        }
        const d = rowOut + <usize>xs * outPx + obb;
        storePixel(f00, f01, Trow + (<usize>(axisClass(xs, W, p, nx) * CoutP) << 2) + obb, ws0, ws1, b0, b1, lo, hi, d, nValid);
        if (nPix > 1) storePixel(f10, f11, Trow + (<usize>(axisClass(xs + 1, W, p, nx) * CoutP) << 2) + obb, ws0, ws1, b0, b1, lo, hi, d + outPx, nValid);
        if (nPix > 2) storePixel(f20, f21, Trow + (<usize>(axisClass(xs + 2, W, p, nx) * CoutP) << 2) + obb, ws0, ws1, b0, b1, lo, hi, d + 2 * outPx, nValid);
        if (nPix > 3) storePixel(f30, f31, Trow + (<usize>(axisClass(xs + 3, W, p, nx) * CoutP) << 2) + obb, ws0, ws1, b0, b1, lo, hi, d + 3 * outPx, nValid);
      }
    }
  }
}

/**
 * y = clamp(bias + wscale·Σ_c (a_c·P + μ_c·Z), outMin, outMax) as f32 NHWC (`outStride` f32 elements per pixel).
 *   input    int16 g, pixel p channel c at input + 2·(p·inStride + c)
 *   chScale  Cin f32 a_c;  chMean  Cin f32 μ_c
 *   packed   packQs16ConvPcs blob;  wscale, bias  CoutP f32 each (entries past Cout are read, not used)
 *   scratch  qs16ConvPcsScratchBytes(H, W, Cin, Cout, k, bandRows) bytes, 16-aligned
 * The wrapper has validated every scalar and proven max|g|·Σ_t|w[o,t,c]| < 2^31.
 */
export function qs16_qc16w_conv_nhwc_pcs_f32(input: usize, inStride: i32, H: i32, W: i32, Cin: i32,
  chScale: usize, chMean: usize, k: i32, packed: usize, Cout: i32, wscale: usize, bias: usize,
  output: usize, outStride: i32, outMin: f32, outMax: f32, scratch: usize, bandRows: i32): void {
  const p = (k - 1) >> 1;
  const Wc = W < 4 ? 4 : W;
  const WpA = wpA(Wc, p), WpB = wpB(Wc, k);
  const R = 2 * WpA + 4 * WpB;
  const CoutP = (Cout + 7) & ~7;
  const np = (k * k + 1) >> 1;
  const ny = min(H, 2 * p + 1), nx = min(W, 2 * p + 1);
  const tab = scratch;
  const T = tab + alignUp16(<usize>np << 4);
  const band = T + alignUp16(<usize>(ny * nx * CoutP) << 2);
  buildPairTable(tab, k, Cin, R, WpA);
  borderTable(packed, tab, np, Cin, Cout, k, p, H, W, ny, nx, chMean, T);
  for (let y0 = 0; y0 < H; y0 += bandRows) {
    const n = min(bandRows, H - y0);
    prepareBand(input, inStride, H, W, Cin, k, p, y0, n + 2 * p, WpA, WpB, R, band);
    accumulate(band, tab, np, H, W, p, Cin, R, y0, n, ny, nx, T, packed, Cout, chScale, wscale, bias,
      output, outStride, outMin, outMax);
  }
}
