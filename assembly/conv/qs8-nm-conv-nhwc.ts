// qs8_qc8w_nm_conv_nhwc: uint8/int8 activations (per-tensor zero point) × N:M-sparse int8 weights (per-output-
// channel scale, zero point 0), int32 accumulation, fp32 requantization — stride 1, 'same' padding, odd k,
// NHWC with channel strides. Same arithmetic as the dense ./qs8-qc8w-conv-nhwc.ts (see ./qs8-conv-common.ts):
//
//   acc[o] = Σ_{kept taps} (x − z_x)·w[o] + bias_q[o]        exact int32 (the wrapper proves no overflow)
//   y[o]   = clamp(round_half_even(f32(acc[o])·M[o]) + z_y, qmin, qmax)
//
// Pruned weights are 0, so the sum over the kept taps *is* the dense sum: the result is bit-identical to the
// dense kernel on the masked weights (integer addition is exact in any order).
//
// Sparsity contract: as ./f32-nm-conv-nhwc.ts (per output channel and tap, ≤ N nonzeros in each group of M
// consecutive input channels). Why weight-stationary spatial vectorization: see that file. The int8 twist:
// the multiply unit is the wall (i32x4.dot_i16x8_s does 8 MACs per op), and dot_i16x8_s sums *pairs* of
// lanes, so each output channel's kept taps are taken two at a time, (t1, t2): the 8 pixels of t1 and of t2
// (i16 (x − z), one load each from the planar band) are interleaved into [t1 px0, t2 px0, t1 px1, …] (two
// i16x8 shuffles → punpcklwd/punpckhwd) and dotted with the splat weight pair [w1, w2]: 4 outputs × 2 MACs
// per dot, no wasted lane. Per pair and 32-pixel register block (8 accumulators; channelBlock stays out of
// line, see the f32 kernel): 8 loads, 8 shuffles, 8 dots, 8 adds — 3 vector ALU ops per 8 MACs where the dense kernel needs 2
// (its activations come from free splat loads), so per stored MAC the sparse loop runs at ~2/3 of the dense
// one's rate. A fixed channel pairing (interleaving channel pairs once in the band) would avoid the shuffle
// but waste a lane whenever only one channel of a pair is kept; magnitude masks of esrgan-medium keep the
// partner of a kept channel 22.5 % of the time (random: (N−1)/(M−1) = 22.6 % at 8:32), so it loses.
//
// Packed layout (packQs8NmConv in src/kernels/nm-conv.ts), the sparse storage format:
//   i32 bias_q[CoutP]                (CoutP = cout rounded up to 4; padding 0)
//   i8  values[cout][T]              kept weights of output channel o, in the order (kh, kw, group g, j)
//   u8  index[cout][T]               the kept weight's input channel within its group (c = g·M + index)
// T = k·k·Σ_g min(N, len_g) as in the f32 format. Expanded per call into pair records (odd T: the last pair
// repeats the last tap with weight 0): {i32 offset1, i32 offset2, i32 (w1 & 0xffff) | w2 << 16}.
//
// Scratch (qs8NmConvScratchBytes in the wrapper), in this order:
//   table  cout·⌈T/2⌉ × 12 bytes
//   tile   CoutP × 32 int32 (one 32-pixel block of every output channel, channel-planar)
//   band   cin × (bandRows + 2p) × Wp i16 (x − z_x), planar, Wp = max(W, 32) + 2p, zero ring / rows outside.

/** Output modes (as ./qs8-conv-common.ts). */
// @ts-ignore: decorator
@inline const MODE_U8: i32 = 0;
// @ts-ignore: decorator
@inline const MODE_S8: i32 = 1;
// @ts-ignore: decorator
@inline const MODE_I32: i32 = 2;

/** Pixels per register block (8 i32x4 accumulators). */
// @ts-ignore: decorator
@inline const BLOCK: i32 = 32;

/** 1.5·2^23: adding it to |v| < 2^22 leaves round_half_even(v) in the low mantissa bits. */
// @ts-ignore: decorator
@inline const MAGIC: f32 = 12582912.0;
// @ts-ignore: decorator
@inline const MAGIC_BITS: i32 = 0x4b400000;

/** 16 bytes of static data for partial (channel-tail) stores. */
const TAIL: usize = memory.data(16, 16);

/** Taps per output channel: k²·Σ_g min(n, len_g). */
function tapsPerChannel(k: i32, cin: i32, n: i32, m: i32): i32 {
  let t = 0;
  for (let g = 0; g < cin; g += m) t += min(n, min(m, cin - g));
  return k * k * t;
}

/** Expands (value, index) lists into pair records {off1, off2, w1 | w2 << 16} (see the header). */
function expandPairs(table: usize, vals: usize, idx: usize, cout: i32, k: i32, cin: i32, n: i32, m: i32,
  planeBytes: i32, rowBytes: i32): void {
  let q = table;
  for (let o = 0; o < cout; o++) {
    let half = false;
    let lastOff = 0;
    for (let kh = 0; kh < k; kh++) {
      for (let kw = 0; kw < k; kw++) {
        const tapOff = kh * rowBytes + (kw << 1);
        for (let g = 0; g < cin; g += m) {
          const ng = min(n, min(m, cin - g));
          for (let j = 0; j < ng; j++) {
            const off = (g + <i32>load<u8>(idx)) * planeBytes + tapOff;
            const wt = <i32>load<i8>(vals);
            if (!half) {
              store<i32>(q, off);
              store<i32>(q, wt & 0xffff, 8);
            } else {
              store<i32>(q, off, 4);
              store<i32>(q, load<i32>(q, 8) | (wt << 16), 8);
              q += 12;
            }
            half = !half;
            lastOff = off;
            idx++;
            vals++;
          }
        }
      }
    }
    if (half) {
      store<i32>(q, lastOff, 4); // odd count: the partner of the last tap has weight 0
      q += 12;
    }
  }
}

/**
 * Writes input rows y0−p … y0−p+nRows−1 as planar i16 (x − z) into band (zero ring, zero rows outside the
 * image). 8 pixels × 8 channels at a time through an 8×8 i16 transpose in registers.
 */
function prepareBand(input: usize, inStride: i32, h: i32, w: i32, cin: i32, zp: i32, signed: bool,
  y0: i32, nRows: i32, p: i32, wp: i32, planeBytes: i32, band: usize): void {
  const rowBytes = <usize>wp << 1;
  const pb = <usize>planeBytes;
  const zv = i16x8.splat(<i16>zp);
  const ps = <usize>inStride;
  for (let r = 0; r < nRows; r++) {
    const y = y0 - p + r;
    const rowBase = band + <usize>r * rowBytes;
    if (y < 0 || y >= h) {
      for (let c = 0; c < cin; c++) memory.fill(rowBase + <usize>c * pb, 0, rowBytes);
      continue;
    }
    for (let c = 0; c < cin; c++) {
      const d = rowBase + <usize>c * pb;
      memory.fill(d, 0, <usize>p << 1);
      memory.fill(d + (<usize>(p + w) << 1), 0, <usize>(wp - p - w) << 1);
    }
    const src = input + <usize>y * <usize>w * ps;
    const dst0 = rowBase + (<usize>p << 1);
    let x = 0;
    for (; x + 8 <= w; x += 8) {
      const s = src + <usize>x * ps;
      const d = dst0 + (<usize>x << 1);
      let c = 0;
      for (; c + 8 <= cin; c += 8) {
        const sc = s + <usize>c;
        let r0: v128, r1: v128, r2: v128, r3: v128, r4: v128, r5: v128, r6: v128, r7: v128;
        if (signed) {
          r0 = v128.load8x8_s(sc); r1 = v128.load8x8_s(sc + ps); r2 = v128.load8x8_s(sc + 2 * ps); r3 = v128.load8x8_s(sc + 3 * ps);
          r4 = v128.load8x8_s(sc + 4 * ps); r5 = v128.load8x8_s(sc + 5 * ps); r6 = v128.load8x8_s(sc + 6 * ps); r7 = v128.load8x8_s(sc + 7 * ps);
        } else {
          r0 = v128.load8x8_u(sc); r1 = v128.load8x8_u(sc + ps); r2 = v128.load8x8_u(sc + 2 * ps); r3 = v128.load8x8_u(sc + 3 * ps);
          r4 = v128.load8x8_u(sc + 4 * ps); r5 = v128.load8x8_u(sc + 5 * ps); r6 = v128.load8x8_u(sc + 6 * ps); r7 = v128.load8x8_u(sc + 7 * ps);
        }
        r0 = i16x8.sub(r0, zv); r1 = i16x8.sub(r1, zv); r2 = i16x8.sub(r2, zv); r3 = i16x8.sub(r3, zv);
        r4 = i16x8.sub(r4, zv); r5 = i16x8.sub(r5, zv); r6 = i16x8.sub(r6, zv); r7 = i16x8.sub(r7, zv);
        // 8×8 transpose: pixels × channels → channels × pixels.
        const t0 = v128.shuffle<i16>(r0, r1, 0, 8, 1, 9, 2, 10, 3, 11);
        const t1 = v128.shuffle<i16>(r0, r1, 4, 12, 5, 13, 6, 14, 7, 15);
        const t2 = v128.shuffle<i16>(r2, r3, 0, 8, 1, 9, 2, 10, 3, 11);
        const t3 = v128.shuffle<i16>(r2, r3, 4, 12, 5, 13, 6, 14, 7, 15);
        const t4 = v128.shuffle<i16>(r4, r5, 0, 8, 1, 9, 2, 10, 3, 11);
        const t5 = v128.shuffle<i16>(r4, r5, 4, 12, 5, 13, 6, 14, 7, 15);
        const t6 = v128.shuffle<i16>(r6, r7, 0, 8, 1, 9, 2, 10, 3, 11);
        const t7 = v128.shuffle<i16>(r6, r7, 4, 12, 5, 13, 6, 14, 7, 15);
        const u0 = v128.shuffle<i32>(t0, t2, 0, 4, 1, 5);
        const u1 = v128.shuffle<i32>(t0, t2, 2, 6, 3, 7);
        const u2 = v128.shuffle<i32>(t1, t3, 0, 4, 1, 5);
        const u3 = v128.shuffle<i32>(t1, t3, 2, 6, 3, 7);
        const u4 = v128.shuffle<i32>(t4, t6, 0, 4, 1, 5);
        const u5 = v128.shuffle<i32>(t4, t6, 2, 6, 3, 7);
        const u6 = v128.shuffle<i32>(t5, t7, 0, 4, 1, 5);
        const u7 = v128.shuffle<i32>(t5, t7, 2, 6, 3, 7);
        const dc = d + <usize>c * pb;
        v128.store(dc, v128.shuffle<i64>(u0, u4, 0, 2));
        v128.store(dc + pb, v128.shuffle<i64>(u0, u4, 1, 3));
        v128.store(dc + 2 * pb, v128.shuffle<i64>(u1, u5, 0, 2));
        v128.store(dc + 3 * pb, v128.shuffle<i64>(u1, u5, 1, 3));
        v128.store(dc + 4 * pb, v128.shuffle<i64>(u2, u6, 0, 2));
        v128.store(dc + 5 * pb, v128.shuffle<i64>(u2, u6, 1, 3));
        v128.store(dc + 6 * pb, v128.shuffle<i64>(u3, u7, 0, 2));
        v128.store(dc + 7 * pb, v128.shuffle<i64>(u3, u7, 1, 3));
      }
      for (; c < cin; c++) {
        const dc = d + <usize>c * pb;
        for (let i = 0; i < 8; i++) {
          const v = signed ? <i32>load<i8>(s + <usize>i * ps + <usize>c) : <i32>load<u8>(s + <usize>i * ps + <usize>c);
          store<i16>(dc + (<usize>i << 1), <i16>(v - zp));
        }
      }
    }
    for (; x < w; x++) {
      const s = src + <usize>x * ps;
      const d = dst0 + (<usize>x << 1);
      for (let c = 0; c < cin; c++) {
        const v = signed ? <i32>load<i8>(s + <usize>c) : <i32>load<u8>(s + <usize>c);
        store<i16>(d + <usize>c * pb, <i16>(v - zp));
      }
    }
  }
}

/** acc + dot of the interleaved pixels of taps a, b (low or high 4 pixels) with the weight pair. */
// @ts-ignore: decorator
@inline function dotLo(acc: v128, a: v128, b: v128, wv: v128): v128 {
  return i32x4.add(acc, i32x4.dot_i16x8_s(v128.shuffle<i16>(a, b, 0, 8, 1, 9, 2, 10, 3, 11), wv));
}
// @ts-ignore: decorator
@inline function dotHi(acc: v128, a: v128, b: v128, wv: v128): v128 {
  return i32x4.add(acc, i32x4.dot_i16x8_s(v128.shuffle<i16>(a, b, 4, 12, 5, 13, 6, 14, 7, 15), wv));
}

/** One output channel over 32 pixels: acc = bias + Σ_pairs, pair records from tab (np of them); raw int32 to dst. */
function channelBlock(base: usize, tab: usize, np: i32, bias: v128, dst: usize): void {
  let a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias;
  const end = tab + <usize>np * 12;
  while (tab < end) {
    const p1 = base + <usize>load<i32>(tab);
    const p2 = base + <usize>load<i32>(tab, 4);
    const wv = v128.load32_splat(tab, 8);
    let x = v128.load(p1), y = v128.load(p2);
    a0 = dotLo(a0, x, y, wv);
    a1 = dotHi(a1, x, y, wv);
    x = v128.load(p1, 16); y = v128.load(p2, 16);
    a2 = dotLo(a2, x, y, wv);
    a3 = dotHi(a3, x, y, wv);
    x = v128.load(p1, 32); y = v128.load(p2, 32);
    a4 = dotLo(a4, x, y, wv);
    a5 = dotHi(a5, x, y, wv);
    x = v128.load(p1, 48); y = v128.load(p2, 48);
    a6 = dotLo(a6, x, y, wv);
    a7 = dotHi(a7, x, y, wv);
    tab += 12;
  }
  v128.store(dst, a0);
  v128.store(dst, a1, 16);
  v128.store(dst, a2, 32);
  v128.store(dst, a3, 48);
  v128.store(dst, a4, 64);
  v128.store(dst, a5, 80);
  v128.store(dst, a6, 96);
  v128.store(dst, a7, 112);
}

/** Stores the first nv (1..4) 32-bit lanes of v at d. */
// @ts-ignore: decorator
@inline function store4x32(d: usize, v: v128, nv: i32): void {
  if (nv == 4) {
    v128.store(d, v);
  } else {
    v128.store(TAIL, v);
    for (let i = 0; i < nv; i++) store<u32>(d + (<usize>i << 2), load<u32>(TAIL + (<usize>i << 2)));
  }
}

/** Requantizes 4 accumulators (one pixel, 4 channels) and stores nv codes (or the raw int32 in MODE_I32). */
// @ts-ignore: decorator
@inline function storePixel(d: usize, acc: v128, nv: i32, mode: i32, mv: v128, lo: v128, hi: v128, mz: v128): void {
  if (mode == MODE_I32) {
    store4x32(d, acc, nv);
    return;
  }
  let f = f32x4.mul(f32x4.convert_i32x4_s(acc), mv);
  f = f32x4.pmin(f32x4.pmax(f, lo), hi);
  const q = i32x4.sub(f32x4.add(f, f32x4.splat(MAGIC)), mz);
  // Codes already lie in [qmin, qmax] ⊂ [−128, 255]: the saturating narrows only repack.
  const h = i16x8.narrow_i32x4_s(q, q);
  const b = mode == MODE_U8 ? i8x16.narrow_i16x8_u(h, h) : i8x16.narrow_i16x8_s(h, h);
  if (nv == 4) {
    v128.store32_lane(d, b, 0);
  } else {
    v128.store(TAIL, b);
    for (let i = 0; i < nv; i++) store<u8>(d + i, load<u8>(TAIL + i));
  }
}

/** Transposes the planar int32 tile into NHWC pixels out … out + (nPix−1)·ops, requantizing on the way. */
function storeTile(tile: usize, cout: i32, out: usize, ops: usize, es: i32, nPix: i32, mode: i32, mult: usize,
  lo: v128, hi: v128, mz: v128): void {
  const rowB: usize = BLOCK << 2;
  for (let o = 0; o < cout; o += 4) {
    const nv = min(4, cout - o);
    const mv = mode == MODE_I32 ? i32x4.splat(0) : v128.load(mult + (<usize>o << 2));
    const dO = out + (<usize>o << es);
    for (let x = 0; x < nPix; x += 4) {
      const s = tile + <usize>o * rowB + (<usize>x << 2);
      const v0 = v128.load(s), v1 = v128.load(s + rowB), v2 = v128.load(s + 2 * rowB), v3 = v128.load(s + 3 * rowB);
      const t0 = v128.shuffle<i32>(v0, v1, 0, 4, 1, 5);
      const t1 = v128.shuffle<i32>(v2, v3, 0, 4, 1, 5);
      const t2 = v128.shuffle<i32>(v0, v1, 2, 6, 3, 7);
      const t3 = v128.shuffle<i32>(v2, v3, 2, 6, 3, 7);
      const np = nPix - x;
      const d = dO + <usize>x * ops;
      storePixel(d, v128.shuffle<i64>(t0, t1, 0, 2), nv, mode, mv, lo, hi, mz);
      if (np > 1) storePixel(d + ops, v128.shuffle<i64>(t0, t1, 1, 3), nv, mode, mv, lo, hi, mz);
      if (np > 2) storePixel(d + 2 * ops, v128.shuffle<i64>(t2, t3, 0, 2), nv, mode, mv, lo, hi, mz);
      if (np > 3) storePixel(d + 3 * ops, v128.shuffle<i64>(t2, t3, 1, 3), nv, mode, mv, lo, hi, mz);
    }
  }
}

function nmConv(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, n: i32, m: i32, packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32, mode: i32, scratch: usize, bandRows: i32): void {
  const p = (k - 1) >> 1;
  const T = tapsPerChannel(k, Cin, n, m);
  const NP = (T + 1) >> 1;
  const coutP = (Cout + 3) & ~3;
  const wc = W < BLOCK ? BLOCK : W;
  const wp = wc + 2 * p;
  const rowBytes = wp << 1;
  const planeBytes = (bandRows + 2 * p) * rowBytes;
  const table = scratch;
  const tile = (table + <usize>(Cout * NP) * 12 + 15) & ~(<usize>15);
  const band = tile + (<usize>(coutP * BLOCK) << 2);
  const vals = packed + (<usize>coutP << 2);
  const idx = vals + <usize>(Cout * T);
  expandPairs(table, vals, idx, Cout, k, Cin, n, m, planeBytes, rowBytes);
  const es = mode == MODE_I32 ? 2 : 0;
  const ops = <usize>outStride << es;
  const lo = f32x4.splat(<f32>(qmin - outZp));
  const hi = f32x4.splat(<f32>(qmax - outZp));
  const mz = i32x4.splat(MAGIC_BITS - outZp);
  const lastX = wc - BLOCK;
  const tabBytes = <usize>NP * 12;
  for (let y0 = 0; y0 < H; y0 += bandRows) {
    const nb = min(bandRows, H - y0);
    prepareBand(input, inStride, H, W, Cin, inZp, inSigned != 0, y0, nb + 2 * p, p, wp, planeBytes, band);
    for (let r = 0; r < nb; r++) {
      const outRow = output + <usize>(y0 + r) * <usize>W * ops;
      let x = 0;
      while (true) {
        const base = band + <usize>r * <usize>rowBytes + (<usize>x << 1);
        // Output channel 0, then the others: two call sites keep channelBlock out of line (see the f32 kernel).
        channelBlock(base, table, NP, v128.load32_splat(packed), tile);
        let tab = table + tabBytes;
        for (let o = 1; o < Cout; o++) {
          channelBlock(base, tab, NP, v128.load32_splat(packed + (<usize>o << 2)), tile + (<usize>o * BLOCK << 2));
          tab += tabBytes;
        }
        storeTile(tile, Cout, outRow + <usize>x * ops, ops, es, min(BLOCK, W - x), mode, mult, lo, hi, mz);
        if (x >= lastX) break;
        x = min(x + BLOCK, lastX);
      }
    }
  }
}

/**
 * Requantized output: `outSigned` 0 → uint8 codes, 1 → int8 codes, clamped to [qmin, qmax] (ReLU: qmin = outZp).
 * `mult` → CoutP f32 multipliers s_x·s_w[o]/s_y. `scratch`: qs8NmConvScratchBytes(…, bandRows) bytes.
 */
export function qs8_qc8w_nm_conv_nhwc(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, n: i32, m: i32, packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32, outSigned: i32, scratch: usize, bandRows: i32): void {
  nmConv(input, inStride, H, W, Cin, inZp, inSigned, k, n, m, packed, Cout, mult, output, outStride, outZp, qmin, qmax,
    outSigned != 0 ? MODE_S8 : MODE_U8, scratch, bandRows);
}

/** Raw int32 accumulators Σ(x − z_x)·w + bias_q (no requantization); `outStride` in int32 elements. */
export function qs8_qc8w_nm_conv_nhwc_acc32(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, n: i32, m: i32, packed: usize, Cout: i32, output: usize, outStride: i32, scratch: usize, bandRows: i32): void {
  nmConv(input, inStride, H, W, Cin, inZp, inSigned, k, n, m, packed, Cout, 0, output, outStride, 0, 0, 0, MODE_I32,
    scratch, bandRows);
}
