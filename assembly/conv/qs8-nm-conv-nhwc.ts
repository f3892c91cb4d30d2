// qs8_qc8w_nm_conv_nhwc: uint8/int8 activations (per-tensor zero point) × N:M-sparse int8 weights (per-output-
// channel scale, zero point 0), int32 accumulation, fp32 requantization — stride 1, 'same' padding, odd k,
// NHWC with channel strides. qs8_qc8w_nm2_conv_nhwc: the same for the pair-structured pattern "N:Mp" (below).
// Same arithmetic as the dense ./qs8-qc8w-conv-nhwc.ts (see ./qs8-conv-common.ts):
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
// per dot, no wasted lane. Per pair and 32-pixel register block (8 accumulators): 8 loads, 8 shuffles, 8 dots,
// 8 adds + the record (3 loads, 2 address adds) + loop control with V8's stack check = 43 instructions per
// 64 MACs (checked with --print-wasm-code); the dense kernel needs ~2 per 8 MACs (dot + add, its activations
// come from splat loads). Both run near Zen 4's 6-wide dispatch, so per stored MAC the sparse loop runs at
// ~60 % of the dense one's rate: 8:32 is ~2.2× faster than the direct dense loop, ~1.65× than Winograd.
// What does not help (measured): a fixed channel pairing (interleaving channel pairs once in the band) with
// unconstrained masks would avoid the shuffle but waste a lane whenever only one channel of a pair is kept —
// magnitude masks of esrgan-medium keep the partner of a kept channel 22.5 % of the time (random: (N−1)/(M−1) =
// 22.6 % at 8:32); the fix is in the pattern, not the kernel: see "Pair-structured N:M" below; two pairs per
// loop iteration (as the f32 kernel does with taps) — each loaded vector feeds two shuffles, and V8 then issues
// all loads of the iteration first and spills 3–5 accumulators (−10 %); a channel loop around the pair loop
// inside one function — V8 unrolls the then-nested pair loop with the same effect (−30 %); two output rows per
// call (halves the calls; no change); one flat loop over all channels' pairs with the channel switch as a
// branch inside (no calls) — V8 then also issues the pair's loads first and spills (−25 %).
// The band, chunks and fixed-cost measures are those of ./f32-nm-conv-nhwc.ts (i16 elements).
//
// Pair-structured N:M ("N:Mp", N and M even; qs8_qc8w_nm2_conv_nhwc): the masks keep, per group, ≤ N/2 aligned
// channel pairs (2j, 2j+1) (src/methods/prune/nm-mask.ts) — still N:M, so the unpaired kernel and the dense one
// run it too. The band then stores channel pairs pre-interleaved once per call ([c0 px0, c1 px0, c0 px1, …],
// an 8×4 i32 transpose per 8 pixels × 8 channels), and a kept pair is one load + one dot with the splat weight
// pair [w_even, w_odd] + one add per 4 pixels: no shuffle and no wasted lane. An odd cin's last channel pairs
// with a phantom channel that stays zero in the band (weight 0). Two records per loop iteration (lists padded
// to an even count with a zero-weight record): V8 keeps the 8 accumulators, both weight splats and one
// loaded vector per record in registers (no spill, checked), 61 instructions per 128 MACs against 43 per 64
// unpaired — per stored MAC ~1.3× the unpaired rate: 8:32p is 2.8–2.9× faster than the direct dense loop,
// 2.1–2.2× than F(2,3), 1.5–1.55× than the 2-D Winograd path (bench/RESULTS.md, N:M section).
//
// Packed layout (packQs8NmConv in src/kernels/nm-conv.ts), the sparse storage format:
//   i32 bias_q[CoutP]                (CoutP = cout rounded up to 4; padding 0)
//   i8  values[cout][T]              kept weights of output channel o, in the order (kh, kw, group g, j)
//   u8  index[cout][T]               the kept weight's input channel within its group (c = g·M + index)
// T = k·k·Σ_g min(N, len_g) as in the f32 format. Expanded per call, chunk by chunk (for each chunk of
// input-channel groups, every output channel's entries of that chunk), into pair records (an odd count: the
// last record repeats the last tap with weight 0): {i32 (w1 & 0xffff) | w2 << 16, i32 offset1, i32 offset2}.
// Pair format (N:Mp): i32 bias_q[CoutP] | i8 values[cout][P][2] (w_even, w_odd) | u8 pair index[cout][P] (pair j
// of group g = channels g·M + 2j, g·M + 2j + 1), P = k·k·Σ_g min(N/2, ⌈len_g/2⌉); records {i32 (w_even & 0xffff) |
// w_odd << 16, i32 offset}, each (chunk, channel) list padded to an even count with {0, 0}.
//
// Scratch (qs8NmConvScratchBytes in the wrapper), in this order:
//   table  cout·(⌊T/2⌋ + ⌈cin/M⌉) × 12 bytes (each (chunk, channel) list rounds up to whole pairs);
//          pairs: cout·(P + ⌈cin/M⌉) × 8 bytes
//   tile   CoutP × 32 int32 (one 32-pixel block of every output channel, channel-planar)
//   band   (bandRows + 2p) rows × rowSet bytes of i16 (x − z_x), 64-byte aligned: row = cin channel rows of
//          Pitch = max(W, 32) + 2p rounded up to 32 elements, rowSet = cin·Pitch·2 + the set-staggering pad;
//          zero ring, zero rows outside the image. Offset of (c, kh, kw): kh·rowSet + c·Pitch·2 + kw·2.
//          Pairs: row = ⌈cin/2⌉ pair rows of 2·Pitch elements (rowSet as for cin rounded up to even);
//          offset of (pair q, kh, kw): kh·rowSet + q·Pitch·4 + kw·4.

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

/** L1 bytes of band lines one chunk of input channels may occupy (see chunkGroups). */
// @ts-ignore: decorator
@inline const CHUNK_BYTES: i32 = 16384;

/** 1.5·2^23: adding it to |v| < 2^22 leaves round_half_even(v) in the low mantissa bits. */
// @ts-ignore: decorator
@inline const MAGIC: f32 = 12582912.0;
// @ts-ignore: decorator
@inline const MAGIC_BITS: i32 = 0x4b400000;

/** 16 bytes of static data for partial (channel-tail) stores. */
const TAIL: usize = memory.data(16, 16);

/**
 * Entries per output channel: k²·Σ_g min(nu, ⌈len_g/u⌉) — u = 1: single taps (nu = n); u = 2: channel pairs
 * (nu = n/2; an odd short last group's last channel pairs with the zero phantom channel).
 */
function tapsPerChannel(k: i32, cin: i32, nu: i32, m: i32, u: i32): i32 {
  let t = 0;
  for (let g = 0; g < cin; g += m) t += min(nu, (min(m, cin - g) + u - 1) / u);
  return k * k * t;
}

/** Elements per channel row of the band: Wc + 2p rounded up to whole 64-byte lines. */
// @ts-ignore: decorator
@inline function bandPitch(wc: i32, p: i32): i32 {
  return (wc + 2 * p + 31) & ~31;
}

/** Bytes per band row of all channels, padded as in ./f32-nm-conv-nhwc.ts (rows 21 L1 sets apart). */
// @ts-ignore: decorator
@inline function bandRowSet(bytes: i32): i32 {
  return bytes + ((((21 - (bytes >> 6)) & 63)) << 6);
}

/**
 * Groups of M input channels per chunk (as ./f32-nm-conv-nhwc.ts, 2-byte elements; u = 2: the lines of a pair
 * row of 4-byte pixels, per two channels).
 */
// @ts-ignore: decorator
@inline function chunkGroups(k: i32, p: i32, m: i32, u: i32): i32 {
  const lines = ((((BLOCK + 2 * p) << u) + 63) >> 6) + 1;
  return max(1, (CHUNK_BYTES * u) / (k * lines * 64 * m));
}

/** Entries per output channel in a chunk of len input channels (whole groups; only the last may be short). */
// @ts-ignore: decorator
@inline function chunkTaps(len: i32, k2: i32, nu: i32, m: i32, u: i32): i32 {
  return k2 * ((len / m) * nu + (len % m != 0 ? min(nu, (len % m + u - 1) / u) : 0));
}

/** Records per output channel in a chunk: single taps go two to a record (rounded up), pairs one each. */
// @ts-ignore: decorator
@inline function chunkRecords(len: i32, k2: i32, nu: i32, m: i32, u: i32): i32 {
  const e = chunkTaps(len, k2, nu, m, u);
  return u == 2 ? (e + 1) & ~1 : (e + 1) >> 1;
}

/**
 * Expands the stored lists into records, chunk by chunk: each output channel's entries of the chunk in storage
 * order. u = 1 (single taps): two entries per record {w1 | w2 << 16, off1, off2} (odd count: the last record
 * pairs the last entry with itself at weight 0), off = c·pitchBytes + kh·rowSet + kw·2. u = 2 (channel pairs,
 * i8 values [w_even, w_odd] per entry, index = pair within the group): one record {w_even | w_odd << 16, off}
 * per entry, off = (c_even/2)·2·pitchBytes + kh·rowSet + kw·4 (the pair band, see prepareRows).
 */
function expandRecords(table: usize, vals: usize, idx: usize, cout: i32, k: i32, cin: i32, nu: i32, m: i32, u: i32,
  cg: i32, pitchBytes: i32, rowSet: i32): void {
  const T = tapsPerChannel(k, cin, nu, m, u);
  const S = T / (k * k);
  const unitBytes = pitchBytes * u;
  let q = table;
  for (let g0 = 0; g0 < cin; g0 += cg * m) {
    const g1 = min(cin, g0 + cg * m);
    const pre = (g0 / m) * nu;
    for (let o = 0; o < cout; o++) {
      let half = false;
      let lastOff = 0;
      for (let t = 0; t < k * k; t++) {
        const tapOff = (t / k) * rowSet + (t % k) * (u << 1);
        let e = o * T + t * S + pre;
        for (let g = g0; g < g1; g += m) {
          const ng = min(nu, (min(m, cin - g) + u - 1) / u);
          for (let j = 0; j < ng; j++) {
            const off = (g / u + <i32>load<u8>(idx + <usize>e)) * unitBytes + tapOff;
            if (u == 2) {
              const v = vals + (<usize>e << 1);
              store<i32>(q, (<i32>load<i8>(v) & 0xffff) | (<i32>load<i8>(v, 1) << 16));
              store<i32>(q, off, 4);
              q += 8;
              e++;
              continue;
            }
            const wt = <i32>load<i8>(vals + <usize>e);
            if (!half) {
              store<i32>(q, wt & 0xffff);
              store<i32>(q, off, 4);
            } else {
              store<i32>(q, load<i32>(q) | (wt << 16));
              store<i32>(q, off, 8);
              q += 12;
            }
            half = !half;
            lastOff = off;
            e++;
          }
        }
      }
      if (half) {
        store<i32>(q, lastOff, 8); // odd count: the partner of the last tap has weight 0
        q += 12;
      }
      if (u == 2 && ((q - table) & 15) != 0) {
        store<i64>(q, 0); // pairs go two to a loop iteration: an odd list ends with a zero-weight record
        q += 8;
      }
    }
  }
}

/** Stores the 4×4 i32 transpose of rows r0..r3 (4 pixels × 4 channel pairs) as 4 pixel runs, `step` bytes apart. */
// @ts-ignore: decorator
@inline function storePairs4(d: usize, step: usize, r0: v128, r1: v128, r2: v128, r3: v128): void {
  const t0 = v128.shuffle<i32>(r0, r1, 0, 4, 1, 5);
  const t1 = v128.shuffle<i32>(r2, r3, 0, 4, 1, 5);
  const t2 = v128.shuffle<i32>(r0, r1, 2, 6, 3, 7);
  const t3 = v128.shuffle<i32>(r2, r3, 2, 6, 3, 7);
  v128.store(d, v128.shuffle<i64>(t0, t1, 0, 2));
  v128.store(d + step, v128.shuffle<i64>(t0, t1, 1, 3));
  v128.store(d + 2 * step, v128.shuffle<i64>(t2, t3, 0, 2));
  v128.store(d + 3 * step, v128.shuffle<i64>(t2, t3, 1, 3));
}

/** Byte offset of (channel c, pixel x) in a band row: planar, or channel pairs interleaved ([c0 x0, c1 x0, c0 x1, …]). */
// @ts-ignore: decorator
@inline function bandAt(c: i32, x: i32, pb: usize, pairs: bool): usize {
  return pairs ? <usize>(c >> 1) * (pb << 1) + (<usize>x << 2) + (<usize>(c & 1) << 1) : <usize>c * pb + (<usize>x << 1);
}

/**
 * Writes image rows yFirst … yFirst + nRows − 1 as i16 (x − z) into band positions pos0 … (layout
 * [row][channel][pixel], p zero pixels before each channel row; rows outside the image all zero; `pairs`:
 * [row][channel pair][pixel][2], rows of 2·pitch elements, see bandAt). Ring columns — and, for pairs, the
 * phantom channel after an odd last one — are never written: they stay zero from the fill at the start of the
 * call. 8 pixels × 8 channels at a time through an 8×8 i16 (planar) or 8×4 i32 (pairs) transpose in registers.
 */
function prepareRows(input: usize, inStride: i32, h: i32, w: i32, cin: i32, zp: i32, signed: bool,
  yFirst: i32, nRows: i32, pos0: i32, p: i32, pitchBytes: i32, rowSet: i32, band: usize, pairs: bool): void {
  const pb = <usize>pitchBytes;
  const zv = i16x8.splat(<i16>zp);
  const ps = <usize>inStride;
  for (let i = 0; i < nRows; i++) {
    const y = yFirst + i;
    const rowBase = band + <usize>(pos0 + i) * <usize>rowSet;
    if (y < 0 || y >= h) {
      memory.fill(rowBase, 0, <usize>rowSet);
      continue;
    }
    const src = input + <usize>y * <usize>w * ps;
    const dst0 = rowBase + bandAt(0, p, pb, pairs);
    let x = 0;
    for (; x + 8 <= w; x += 8) {
      const s = src + <usize>x * ps;
      const d = dst0 + bandAt(0, x, pb, pairs);
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
        if (pairs) {
          // Two 4×4 i32 transposes: pixels × channel pairs → channel pairs × pixels (8 pixels = 32 bytes per pair).
          const dc = d + bandAt(c, 0, pb, true);
          storePairs4(dc, pb << 1, r0, r1, r2, r3);
          storePairs4(dc + 16, pb << 1, r4, r5, r6, r7);
          continue;
        }
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
        for (let i = 0; i < 8; i++) {
          const v = signed ? <i32>load<i8>(s + <usize>i * ps + <usize>c) : <i32>load<u8>(s + <usize>i * ps + <usize>c);
          store<i16>(d + bandAt(c, i, pb, pairs), <i16>(v - zp));
        }
      }
    }
    for (; x < w; x++) {
      const s = src + <usize>x * ps;
      const d = dst0 + bandAt(0, x, pb, pairs);
      for (let c = 0; c < cin; c++) {
        const v = signed ? <i32>load<i8>(s + <usize>c) : <i32>load<u8>(s + <usize>c);
        store<i16>(d + bandAt(c, 0, pb, pairs), <i16>(v - zp));
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

/**
 * One output channel over 32 pixels: acc = init + Σ_records, np records from tab; init: the bias at `bias`
 * (first chunk) or the partial sums at dst. Raw int32 to dst. Kept in a function of its own with a single
 * loop: V8 unrolls an inner loop nested in another (a channel loop here) and then issues all 8 loads of a pair
 * ahead of the arithmetic, spilling accumulators (measured 30 % slower). `pairs` (a constant at each call
 * site): the records are channel pairs of the pair band, whose 32 pixels are 8 consecutive vectors already
 * interleaved for the dot — 8 loads, 8 dots, 8 adds per record, no shuffle.
 */
// @ts-ignore: decorator
@inline function blockPass(base: usize, tab: usize, np: i32, bias: usize, dst: usize, accumulate: bool, pairs: bool): void {
  let a0: v128, a1: v128, a2: v128, a3: v128, a4: v128, a5: v128, a6: v128, a7: v128;
  if (accumulate) {
    a0 = v128.load(dst); a1 = v128.load(dst, 16); a2 = v128.load(dst, 32); a3 = v128.load(dst, 48);
    a4 = v128.load(dst, 64); a5 = v128.load(dst, 80); a6 = v128.load(dst, 96); a7 = v128.load(dst, 112);
  } else {
    a0 = v128.load32_splat(bias);
    a1 = a0; a2 = a0; a3 = a0; a4 = a0; a5 = a0; a6 = a0; a7 = a0;
  }
  if (pairs) {
    const end = tab + (<usize>np << 3);
    while (tab < end) {
      const wv = v128.load32_splat(tab);
      const wu = v128.load32_splat(tab, 8);
      const q = base + <usize>load<i32>(tab, 4);
      const r = base + <usize>load<i32>(tab, 12);
      a0 = i32x4.add(i32x4.add(a0, i32x4.dot_i16x8_s(v128.load(q), wv)), i32x4.dot_i16x8_s(v128.load(r), wu));
      a1 = i32x4.add(i32x4.add(a1, i32x4.dot_i16x8_s(v128.load(q, 16), wv)), i32x4.dot_i16x8_s(v128.load(r, 16), wu));
      a2 = i32x4.add(i32x4.add(a2, i32x4.dot_i16x8_s(v128.load(q, 32), wv)), i32x4.dot_i16x8_s(v128.load(r, 32), wu));
      a3 = i32x4.add(i32x4.add(a3, i32x4.dot_i16x8_s(v128.load(q, 48), wv)), i32x4.dot_i16x8_s(v128.load(r, 48), wu));
      a4 = i32x4.add(i32x4.add(a4, i32x4.dot_i16x8_s(v128.load(q, 64), wv)), i32x4.dot_i16x8_s(v128.load(r, 64), wu));
      a5 = i32x4.add(i32x4.add(a5, i32x4.dot_i16x8_s(v128.load(q, 80), wv)), i32x4.dot_i16x8_s(v128.load(r, 80), wu));
      a6 = i32x4.add(i32x4.add(a6, i32x4.dot_i16x8_s(v128.load(q, 96), wv)), i32x4.dot_i16x8_s(v128.load(r, 96), wu));
      a7 = i32x4.add(i32x4.add(a7, i32x4.dot_i16x8_s(v128.load(q, 112), wv)), i32x4.dot_i16x8_s(v128.load(r, 112), wu));
      tab += 16;
    }
  } else {
    const end = tab + <usize>np * 12;
    while (tab < end) {
      const wv = v128.load32_splat(tab);
      const p1 = base + <usize>load<i32>(tab, 4);
      const p2 = base + <usize>load<i32>(tab, 8);
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

/** blockPass as a function of its own (called from two sites, so Binaryen keeps it out of line). */
function channelBlock(base: usize, tab: usize, np: i32, bias: usize, dst: usize, accumulate: bool): void {
  blockPass(base, tab, np, bias, dst, accumulate, false);
}

/** The pair-record blockPass, likewise out of line. */
function pairBlock(base: usize, tab: usize, np: i32, bias: usize, dst: usize, accumulate: bool): void {
  blockPass(base, tab, np, bias, dst, accumulate, true);
}

/** channelBlock or pairBlock. */
// @ts-ignore: decorator
@inline function recordBlock(base: usize, tab: usize, np: i32, bias: usize, dst: usize, accumulate: bool, pairs: bool): void {
  if (pairs) pairBlock(base, tab, np, bias, dst, accumulate);
  else channelBlock(base, tab, np, bias, dst, accumulate);
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

/** Requantized codes (as i32 lanes) of 4 accumulators with the multiplier(s) mv. */
// @ts-ignore: decorator
@inline function requant4(acc: v128, mv: v128, lo: v128, hi: v128, mz: v128): v128 {
  let f = f32x4.mul(f32x4.convert_i32x4_s(acc), mv);
  f = f32x4.pmin(f32x4.pmax(f, lo), hi);
  return i32x4.sub(f32x4.add(f, f32x4.splat(MAGIC)), mz);
}

/**
 * Writes the planar int32 tile as NHWC pixels out … out + (nPix−1)·ops. MODE_I32: 4×4 transposes of the raw
 * accumulators. Requantized modes: each channel row is requantized first (4 pixels × its own splat multiplier),
 * the 4 rows of a channel quad narrow together to 16 bytes [c0 p0..p3, c1 p0..p3, …], and one byte shuffle makes
 * them pixel-major: 4 loads, 4 requantizations, 3 narrows, 1 shuffle, 4 stores per 4 pixels × 4 channels
 * (12 shuffles and 8 narrows fewer than transposing the int32 first). Tile rows past cout hold stale data; their
 * lanes are never stored.
 */
function storeTile(tile: usize, cout: i32, out: usize, ops: usize, es: i32, nPix: i32, mode: i32, mult: usize,
  lo: v128, hi: v128, mz: v128): void {
  const rowB: usize = BLOCK << 2;
  for (let o = 0; o < cout; o += 4) {
    const nv = min(4, cout - o);
    const dO = out + (<usize>o << es);
    const s0 = tile + <usize>o * rowB;
    if (mode == MODE_I32) {
      for (let x = 0; x < nPix; x += 4) {
        const s = s0 + (<usize>x << 2);
        const v0 = v128.load(s), v1 = v128.load(s + rowB), v2 = v128.load(s + 2 * rowB), v3 = v128.load(s + 3 * rowB);
        const t0 = v128.shuffle<i32>(v0, v1, 0, 4, 1, 5);
        const t1 = v128.shuffle<i32>(v2, v3, 0, 4, 1, 5);
        const t2 = v128.shuffle<i32>(v0, v1, 2, 6, 3, 7);
        const t3 = v128.shuffle<i32>(v2, v3, 2, 6, 3, 7);
        const np = nPix - x;
        const d = dO + <usize>x * ops;
        store4x32(d, v128.shuffle<i64>(t0, t1, 0, 2), nv);
        if (np > 1) store4x32(d + ops, v128.shuffle<i64>(t0, t1, 1, 3), nv);
        if (np > 2) store4x32(d + 2 * ops, v128.shuffle<i64>(t2, t3, 0, 2), nv);
        if (np > 3) store4x32(d + 3 * ops, v128.shuffle<i64>(t2, t3, 1, 3), nv);
      }
      continue;
    }
    const mp = mult + (<usize>o << 2);
    const m0 = v128.load32_splat(mp), m1 = v128.load32_splat(mp, 4), m2 = v128.load32_splat(mp, 8), m3 = v128.load32_splat(mp, 12);
    for (let x = 0; x < nPix; x += 4) {
      const s = s0 + (<usize>x << 2);
      // Codes already lie in [qmin, qmax] ⊂ [−128, 255]: the saturating narrows only repack.
      const h01 = i16x8.narrow_i32x4_s(requant4(v128.load(s), m0, lo, hi, mz), requant4(v128.load(s + rowB), m1, lo, hi, mz));
      const h23 = i16x8.narrow_i32x4_s(requant4(v128.load(s + 2 * rowB), m2, lo, hi, mz), requant4(v128.load(s + 3 * rowB), m3, lo, hi, mz));
      const b = mode == MODE_U8 ? i8x16.narrow_i16x8_u(h01, h23) : i8x16.narrow_i16x8_s(h01, h23);
      const q = v128.shuffle<u8>(b, b, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
      const np = nPix - x;
      const d = dO + <usize>x * ops;
      if (nv == 4 && np >= 4) {
        v128.store32_lane(d, q, 0);
        v128.store32_lane(d + ops, q, 1);
        v128.store32_lane(d + 2 * ops, q, 2);
        v128.store32_lane(d + 3 * ops, q, 3);
      } else {
        v128.store(TAIL, q);
        for (let i = 0; i < min(4, np); i++) {
          for (let c = 0; c < nv; c++) store<u8>(d + <usize>i * ops + c, load<u8>(TAIL + (i << 2) + c));
        }
      }
    }
  }
}

function nmConv(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, n: i32, m: i32, packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32, mode: i32, scratch: usize, bandRows: i32,
  pairs: bool): void {
  const p = (k - 1) >> 1;
  const u = pairs ? 2 : 1;
  const nu = n / u;
  const T = tapsPerChannel(k, Cin, nu, m, u);
  const coutP = (Cout + 3) & ~3;
  const wc = W < BLOCK ? BLOCK : W;
  const pitchBytes = bandPitch(wc, p) << 1;
  // Pairs: the band holds an even number of channels (a zero phantom channel after an odd last one).
  const rowSet = bandRowSet(((Cin + u - 1) & -u) * pitchBytes);
  const cg = chunkGroups(k, p, m, u);
  const k2 = k * k;
  const recBytes = pairs ? 8 : 12;
  let nRec = 0;
  for (let g0 = 0; g0 < Cin; g0 += cg * m) nRec += chunkRecords(min(cg * m, Cin - g0), k2, nu, m, u);
  const table = scratch;
  const tile = (table + <usize>(Cout * nRec * recBytes) + 15) & ~(<usize>15);
  const band = (tile + (<usize>(coutP * BLOCK) << 2) + 63) & ~(<usize>63);
  const vals = packed + (<usize>coutP << 2);
  const idx = vals + <usize>(Cout * T * u);
  expandRecords(table, vals, idx, Cout, k, Cin, nu, m, u, cg, pitchBytes, rowSet);
  const es = mode == MODE_I32 ? 2 : 0;
  const ops = <usize>outStride << es;
  const lo = f32x4.splat(<f32>(qmin - outZp));
  const hi = f32x4.splat(<f32>(qmax - outZp));
  const mz = i32x4.splat(MAGIC_BITS - outZp);
  const lastX = wc - BLOCK;
  const np0 = chunkRecords(min(cg * m, Cin), k2, nu, m, u);
  const nb0 = min(bandRows, H);
  // Zero the band once: ring columns are never written afterwards (rows outside the image are re-zeroed).
  memory.fill(band, 0, <usize>(nb0 + 2 * p) * <usize>rowSet);
  for (let y0 = 0; y0 < H; y0 += bandRows) {
    const nb = min(bandRows, H - y0);
    if (y0 == 0) {
      prepareRows(input, inStride, H, W, Cin, inZp, inSigned != 0, -p, nb + 2 * p, 0, p, pitchBytes, rowSet, band, pairs);
    } else {
      // Rolling band: the previous band's last 2p rows are this band's first 2p rows.
      memory.copy(band, band + <usize>bandRows * <usize>rowSet, <usize>(2 * p) * <usize>rowSet);
      prepareRows(input, inStride, H, W, Cin, inZp, inSigned != 0, y0 + p, nb, 2 * p, p, pitchBytes, rowSet, band, pairs);
    }
    for (let r = 0; r < nb; r++) {
      const outRow = output + <usize>(y0 + r) * <usize>W * ops;
      let x = 0;
      while (true) {
        const base = band + <usize>r * <usize>rowSet + (<usize>x << (pairs ? 2 : 1));
        // Chunk by chunk (L1-sized sets of input channels), every output channel's partial sums in the tile.
        // Output channel 0, then the others: two call sites keep the block functions out of line.
        recordBlock(base, table, np0, packed, tile, false, pairs);
        let tab = table + <usize>(np0 * recBytes);
        for (let o = 1; o < Cout; o++) {
          recordBlock(base, tab, np0, packed + (<usize>o << 2), tile + (<usize>o << 7), false, pairs);
          tab += <usize>(np0 * recBytes);
        }
        for (let g0 = cg * m; g0 < Cin; g0 += cg * m) {
          const npq = chunkRecords(min(cg * m, Cin - g0), k2, nu, m, u);
          for (let o = 0; o < Cout; o++) {
            recordBlock(base, tab, npq, 0, tile + (<usize>o << 7), true, pairs);
            tab += <usize>(npq * recBytes);
          }
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
    outSigned != 0 ? MODE_S8 : MODE_U8, scratch, bandRows, false);
}

/** Raw int32 accumulators Σ(x − z_x)·w + bias_q (no requantization); `outStride` in int32 elements. */
export function qs8_qc8w_nm_conv_nhwc_acc32(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, n: i32, m: i32, packed: usize, Cout: i32, output: usize, outStride: i32, scratch: usize, bandRows: i32): void {
  nmConv(input, inStride, H, W, Cin, inZp, inSigned, k, n, m, packed, Cout, 0, output, outStride, 0, 0, 0, MODE_I32,
    scratch, bandRows, false);
}

/**
 * The pair-structured pattern (n, m even; every group's nonzeros in ≤ n/2 aligned channel pairs), pair
 * records (see the header); arguments as qs8_qc8w_nm_conv_nhwc. `scratch`: qs8NmConvScratchBytes(…, pairs).
 */
export function qs8_qc8w_nm2_conv_nhwc(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, n: i32, m: i32, packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32, outSigned: i32, scratch: usize, bandRows: i32): void {
  nmConv(input, inStride, H, W, Cin, inZp, inSigned, k, n, m, packed, Cout, mult, output, outStride, outZp, qmin, qmax,
    outSigned != 0 ? MODE_S8 : MODE_U8, scratch, bandRows, true);
}

/** Raw int32 accumulators of the pair-structured kernel (as qs8_qc8w_nm_conv_nhwc_acc32). */
export function qs8_qc8w_nm2_conv_nhwc_acc32(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, n: i32, m: i32, packed: usize, Cout: i32, output: usize, outStride: i32, scratch: usize, bandRows: i32): void {
  nmConv(input, inStride, H, W, Cin, inZp, inSigned, k, n, m, packed, Cout, 0, output, outStride, 0, 0, 0, MODE_I32,
    scratch, bandRows, true);
}
