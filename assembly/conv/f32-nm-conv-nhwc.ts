// f32_nm_conv_nhwc: fp32 convolution with N:M-sparse weights (stride 1, 'same' zero padding, odd k), NHWC in
// and out, whose time falls with N/M.
//
// Sparsity contract (src/graph/ir.ts `sparsity`): for each output channel o and tap (kh, kw), the input
// channels split into groups of M consecutive channels starting at 0 (the last group may be shorter); each
// group holds at most N nonzero weights.
//
// Why weight-stationary spatial vectorization. The dense kernel (./f32-conv-nhwc.ts) puts output channels
// across lanes and walks every input channel; an N:M pattern differs per output channel, so a 4- or 8-wide
// output-channel block would have to run the *union* of its channels' kept taps (≈ 68 % of all taps for 8:32
// and 4 random channels) — little gain. Instead each output channel runs its own list of kept taps over a
// register block of 32 output pixels of one row: per tap one splat weight × 8 vectors of 4 consecutive
// pixels of one input channel. That needs the input channel-planar (CHW), so each band of input rows is
// transposed once into scratch with zero padding. Every multiply does useful work, every output channel has
// the same number of taps (no load imbalance), and per tap the work is 8 loads + 8 mul/add (the dense
// kernel's block: 6 loads per 8 mul/add) — the time is ∝ N/M.
//
// Where the time goes, and what this version does about it (3×3 64→64 @128², Zen 4; bench/nm-conv.bench.ts):
// - Instructions per tap: 8 loads + 8 mul + 8 add + 1 broadcast + the record's offset load/add and the loop
//   control (V8 adds a stack check per iteration). channelRun takes two taps per iteration — 61 instructions
//   per 64 MACs instead of 2 × 33 — and keeps all 8 accumulators in registers (checked with
//   --print-wasm-code). The second tap runs its accumulators in reverse order on purpose: Binaryen then fuses
//   each accumulator's two updates into one expression with its loads inline, which V8 schedules load →
//   mul → add; written in the same order, V8 issues all 16 loads first and spills. The two-tap body is large
//   enough that V8 does not unroll it inside the channel loop (a one-tap body is, with the same spilling: see
//   ./qs8-nm-conv-nhwc.ts); the one-tap remainder loop for an odd count runs at most once per channel.
// - L1 misses: one 32-pixel block reads k rows × cin channels × 3 cache lines of band (36 KB for 64 channels
//   — more than the 32 KB L1) while the tap records stream past. The band is laid out [row][channel][pixel]
//   with 64-byte-aligned channel rows, consecutive band rows padded to start 21 L1 sets apart (a multiple of
//   4 KB would put the k rows a block reads into the same sets), and the output channels run over the input
//   channels chunk by chunk (whole groups of M, ≤ 16 KB of band lines per chunk), the partial sums parked in
//   the tile between chunks.
// - Fixed costs (the band transpose, the tile transpose + clamp + NHWC stores: ~10 % at 8:32): the band is
//   zeroed once per call and rolls — the next band's first 2p rows are copied, not transposed again — and no
//   small memory.fill per channel row remains (they cost ~30 ns each, ~0.7 ms per call before).
// Steps at 8:32 (separate runs, ±3 %): 12.5 ms → 11.0 (band, chunks, fills) → 10.5 (row staggering) → 9.9 (two
// taps per iteration, channel loop inside channelRun); the dense kernel takes ~27 ms.
//
// Packed layout (packF32NmConv in src/kernels/nm-conv.ts), the sparse storage format:
//   f32 bias[CoutP]                  (CoutP = cout rounded up to 4; padding 0)
//   f32 values[cout][T]              the kept weights of output channel o, in the order (kh, kw, group g, j)
//   u8  index[cout][T]               the kept weight's input channel within its group (c = g·M + index)
// with T = k·k·Σ_g n_g taps per output channel, n_g = min(N, len_g) entries per group (len_g = the group's
// channel count; groups with fewer nonzeros are padded with zero-valued entries at unused indices). The
// kernel expands (index, value) once per call into records {weight, byte offset into the band}, chunk by
// chunk: for each chunk of input-channel groups, every output channel's entries of that chunk.
//
// Scratch (f32NmConvScratchBytes in the wrapper), in this order:
//   table  cout·T × 8 bytes:   {f32 weight, i32 offset}
//   tile   CoutP × 32 f32:     one 32-pixel block of every output channel, channel-planar (16-byte aligned)
//   band   (bandRows + 2p) rows × rowSet bytes, 64-byte aligned: row = cin channel rows of Pitch f32, Pitch =
//          max(W, 32) + 2p rounded up to 16 (p zero pixels on the left, zeros right of the image);
//          rowSet = cin·Pitch·4 + the set-staggering pad (< 4 KB); rows outside the image are zero.
//          Offset of (channel c, tap kh, kw) from an output pixel's band position: kh·rowSet + c·Pitch·4 + kw·4.
// Pixel blocks of a row start at 0, 32, …; the last one overlaps its predecessor (recomputing a few pixels is
// cheaper than a tail kernel), and W < 32 computes ring pixels that are not stored.
// The output must not overlap the input.

/** Pixels per register block (8 f32x4 accumulators). */
// @ts-ignore: decorator
@inline const BLOCK: i32 = 32;

/** L1 bytes of band lines one chunk of input channels may occupy (see chunkGroups). */
// @ts-ignore: decorator
@inline const CHUNK_BYTES: i32 = 16384;

/** acc + x·w: FMA in the relaxed build (one rounding), mul then add otherwise. */
// @ts-ignore: decorator
@inline function madd(acc: v128, x: v128, w: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(x, w, acc);
  return f32x4.add(acc, f32x4.mul(x, w));
}

/** Stores the first n (1..4) lanes of v at p. */
// @ts-ignore: decorator
@inline function storeN(p: usize, v: v128, n: i32): void {
  if (n >= 4) {
    v128.store(p, v);
  } else {
    store<f32>(p, f32x4.extract_lane(v, 0));
    if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
    if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
  }
}

/** Taps per output channel: k²·Σ_g min(n, len_g). */
function nmTapsPerChannel(k: i32, cin: i32, n: i32, m: i32): i32 {
  let t = 0;
  for (let g = 0; g < cin; g += m) t += min(n, min(m, cin - g));
  return k * k * t;
}

/** Elements per channel row of the band: Wc + 2p rounded up to a whole number of 64-byte lines. */
// @ts-ignore: decorator
@inline function bandPitch(wc: i32, p: i32, elemBytes: i32): i32 {
  const perLine = 64 / elemBytes;
  return (wc + 2 * p + perLine - 1) & ~(perLine - 1);
}

/**
 * Bytes per band row (all channels): cin·pitch padded so that consecutive rows start ~1/3 of the L1 set range
 * apart — a multiple of 4 KB would put the k rows a block reads into the same L1 sets (8 ways).
 */
// @ts-ignore: decorator
@inline function bandRowSet(bytes: i32): i32 {
  return bytes + ((((21 - (bytes >> 6)) & 63)) << 6);
}

/**
 * Groups of M input channels per chunk: the band lines one 32-pixel block reads for a chunk (k rows ×
 * ⌈(32 + 2p)·elem/64⌉ + 1 lines per channel) should fit in ~16 KB of the 32 KB L1 next to the streamed table.
 */
// @ts-ignore: decorator
@inline function chunkGroups(k: i32, p: i32, m: i32, elemBytes: i32): i32 {
  const lines = (((BLOCK + 2 * p) * elemBytes + 63) >> 6) + 1;
  return max(1, CHUNK_BYTES / (k * lines * 64 * m));
}

/** Entries per output channel in a chunk of len input channels (whole groups; only the last may be short). */
// @ts-ignore: decorator
@inline function chunkTaps(len: i32, k2: i32, n: i32, m: i32): i32 {
  return k2 * ((len / m) * n + (len % m != 0 ? min(n, len % m) : 0));
}

/**
 * Expands the packed (value, index) lists into {weight, byte offset} records, ordered chunk by chunk (all
 * output channels' entries of the chunk's groups, in storage order): offset of input channel c at (kh, kw) =
 * kh·rowSet + c·pitchBytes + kw·4 relative to the band position of the output pixel.
 */
function expandTable(table: usize, vals: usize, idx: usize, cout: i32, k: i32, cin: i32, n: i32, m: i32, cg: i32,
  pitchBytes: i32, rowSet: i32): void {
  const T = nmTapsPerChannel(k, cin, n, m);
  const S = T / (k * k); // entries per (o, kh, kw)
  let q = table;
  for (let g0 = 0; g0 < cin; g0 += cg * m) {
    const g1 = min(cin, g0 + cg * m);
    const pre = (g0 / m) * n; // entries of the (full) groups before g0 within one (o, kh, kw)
    for (let o = 0; o < cout; o++) {
      for (let t = 0; t < k * k; t++) {
        const tapOff = (t / k) * rowSet + ((t % k) << 2);
        let e = o * T + t * S + pre;
        for (let g = g0; g < g1; g += m) {
          const ng = min(n, min(m, cin - g));
          for (let j = 0; j < ng; j++) {
            store<f32>(q, load<f32>(vals + (<usize>e << 2)));
            store<i32>(q, (g + <i32>load<u8>(idx + <usize>e)) * pitchBytes + tapOff, 4);
            e++;
            q += 8;
          }
        }
      }
    }
  }
}

/**
 * Writes image rows yFirst … yFirst + nRows − 1 into band positions pos0 … (layout [row][channel][pixel],
 * p zero pixels before each channel row; rows outside the image all zero). The ring columns are never written
 * here: they stay zero from the fill at the start of the call.
 */
function prepareRows(input: usize, inStride: i32, h: i32, w: i32, cin: i32, yFirst: i32, nRows: i32, pos0: i32,
  p: i32, pitchBytes: i32, rowSet: i32, band: usize): void {
  const pb = <usize>pitchBytes;
  for (let i = 0; i < nRows; i++) {
    const y = yFirst + i;
    const rowBase = band + <usize>(pos0 + i) * <usize>rowSet;
    if (y < 0 || y >= h) {
      memory.fill(rowBase, 0, <usize>rowSet);
      continue;
    }
    const src = input + (<usize>y * <usize>w * <usize>inStride << 2);
    const dst0 = rowBase + (<usize>p << 2);
    const ps = <usize>inStride << 2;
    // 4 pixels × 4 channels at a time: a 4×4 transpose in registers.
    let x = 0;
    for (; x + 4 <= w; x += 4) {
      const s = src + <usize>x * ps;
      const d = dst0 + (<usize>x << 2);
      let c = 0;
      for (; c + 4 <= cin; c += 4) {
        const cb = <usize>c << 2;
        const v0 = v128.load(s + cb), v1 = v128.load(s + ps + cb), v2 = v128.load(s + 2 * ps + cb), v3 = v128.load(s + 3 * ps + cb);
        const t0 = v128.shuffle<i32>(v0, v1, 0, 4, 1, 5);
        const t1 = v128.shuffle<i32>(v2, v3, 0, 4, 1, 5);
        const t2 = v128.shuffle<i32>(v0, v1, 2, 6, 3, 7);
        const t3 = v128.shuffle<i32>(v2, v3, 2, 6, 3, 7);
        const dc = d + <usize>c * pb;
        v128.store(dc, v128.shuffle<i64>(t0, t1, 0, 2));
        v128.store(dc + pb, v128.shuffle<i64>(t0, t1, 1, 3));
        v128.store(dc + 2 * pb, v128.shuffle<i64>(t2, t3, 0, 2));
        v128.store(dc + 3 * pb, v128.shuffle<i64>(t2, t3, 1, 3));
      }
      for (; c < cin; c++) {
        const dc = d + <usize>c * pb;
        const sc = s + (<usize>c << 2);
        store<f32>(dc, load<f32>(sc));
        store<f32>(dc, load<f32>(sc + ps), 4);
        store<f32>(dc, load<f32>(sc + 2 * ps), 8);
        store<f32>(dc, load<f32>(sc + 3 * ps), 12);
      }
    }
    for (; x < w; x++) {
      const s = src + <usize>x * ps;
      const d = dst0 + (<usize>x << 2);
      for (let c = 0; c < cin; c++) store<f32>(d + <usize>c * pb, load<f32>(s + (<usize>c << 2)));
    }
  }
}

/**
 * Output channels 0..cout−1 over 32 pixels, one after the other: acc = init + Σ_taps w·in[tap + pixel], nt
 * records {w, offset} per channel from tab, pixels from base (4 bytes apart); init: the bias (first chunk) or
 * the partial sums at dst. Stores the sums to dst (32 floats per channel). The channel loop lives here, not in
 * the caller: one call per chunk instead of one per channel.
 */
function channelRun(base: usize, tab: usize, nt: i32, cout: i32, bias: usize, dst: usize, accumulate: bool): void {
  const step = <usize>nt << 3;
  const dEnd = dst + (<usize>cout << 7);
  while (dst < dEnd) {
    let a0: v128, a1: v128, a2: v128, a3: v128, a4: v128, a5: v128, a6: v128, a7: v128;
    if (accumulate) {
      a0 = v128.load(dst); a1 = v128.load(dst, 16); a2 = v128.load(dst, 32); a3 = v128.load(dst, 48);
      a4 = v128.load(dst, 64); a5 = v128.load(dst, 80); a6 = v128.load(dst, 96); a7 = v128.load(dst, 112);
    } else {
      a0 = v128.load32_splat(bias);
      a1 = a0; a2 = a0; a3 = a0; a4 = a0; a5 = a0; a6 = a0; a7 = a0;
    }
    const end = tab + step;
    const end2 = end - 8;
    while (tab < end2) {
      const p = base + <usize>load<i32>(tab, 4);
      const wv = v128.load32_splat(tab);
      a0 = madd(a0, v128.load(p), wv);
      a1 = madd(a1, v128.load(p, 16), wv);
      a2 = madd(a2, v128.load(p, 32), wv);
      a3 = madd(a3, v128.load(p, 48), wv);
      a4 = madd(a4, v128.load(p, 64), wv);
      a5 = madd(a5, v128.load(p, 80), wv);
      a6 = madd(a6, v128.load(p, 96), wv);
      a7 = madd(a7, v128.load(p, 112), wv);
      const q = base + <usize>load<i32>(tab, 12);
      const wq = v128.load32_splat(tab, 8);
      a7 = madd(a7, v128.load(q, 112), wq);
      a6 = madd(a6, v128.load(q, 96), wq);
      a5 = madd(a5, v128.load(q, 80), wq);
      a4 = madd(a4, v128.load(q, 64), wq);
      a3 = madd(a3, v128.load(q, 48), wq);
      a2 = madd(a2, v128.load(q, 32), wq);
      a1 = madd(a1, v128.load(q, 16), wq);
      a0 = madd(a0, v128.load(q), wq);
      tab += 16;
    }
    while (tab < end) {
      const p = base + <usize>load<i32>(tab, 4);
      const wv = v128.load32_splat(tab);
      a0 = madd(a0, v128.load(p), wv);
      a1 = madd(a1, v128.load(p, 16), wv);
      a2 = madd(a2, v128.load(p, 32), wv);
      a3 = madd(a3, v128.load(p, 48), wv);
      a4 = madd(a4, v128.load(p, 64), wv);
      a5 = madd(a5, v128.load(p, 80), wv);
      a6 = madd(a6, v128.load(p, 96), wv);
      a7 = madd(a7, v128.load(p, 112), wv);
      tab += 8;
    }
    v128.store(dst, a0);
    v128.store(dst, a1, 16);
    v128.store(dst, a2, 32);
    v128.store(dst, a3, 48);
    v128.store(dst, a4, 64);
    v128.store(dst, a5, 80);
    v128.store(dst, a6, 96);
    v128.store(dst, a7, 112);
    dst += 128;
    bias += 4;
  }
}

/**
 * Transposes the planar tile (CoutP rows of 32 pixels) into NHWC: nPix pixels from out, channels 0..cout−1,
 * clamped to [lo, hi].
 */
function storeTile(tile: usize, cout: i32, out: usize, ops: usize, nPix: i32, lo: v128, hi: v128): void {
  const rowB: usize = BLOCK << 2;
  for (let x = 0; x < nPix; x += 4) {
    const np = min(4, nPix - x);
    for (let o = 0; o < cout; o += 4) {
      const s = tile + <usize>o * rowB + (<usize>x << 2);
      const v0 = v128.load(s), v1 = v128.load(s + rowB), v2 = v128.load(s + 2 * rowB), v3 = v128.load(s + 3 * rowB);
      const t0 = v128.shuffle<i32>(v0, v1, 0, 4, 1, 5);
      const t1 = v128.shuffle<i32>(v2, v3, 0, 4, 1, 5);
      const t2 = v128.shuffle<i32>(v0, v1, 2, 6, 3, 7);
      const t3 = v128.shuffle<i32>(v2, v3, 2, 6, 3, 7);
      const nv = min(4, cout - o);
      const d = out + <usize>x * ops + (<usize>o << 2);
      storeN(d, f32x4.pmin(f32x4.pmax(v128.shuffle<i64>(t0, t1, 0, 2), lo), hi), nv);
      if (np > 1) storeN(d + ops, f32x4.pmin(f32x4.pmax(v128.shuffle<i64>(t0, t1, 1, 3), lo), hi), nv);
      if (np > 2) storeN(d + 2 * ops, f32x4.pmin(f32x4.pmax(v128.shuffle<i64>(t2, t3, 0, 2), lo), hi), nv);
      if (np > 3) storeN(d + 3 * ops, f32x4.pmin(f32x4.pmax(v128.shuffle<i64>(t2, t3, 1, 3), lo), hi), nv);
    }
  }
}

/**
 * out[y, x, o] = clamp(bias[o] + Σ_{kept taps} in[y+kh−p, x+kw−p, c]·W[kh,kw,c,o], outMin, outMax).
 * `input`/`output`: byte offsets of pixel (0,0); inStride/outStride: floats between pixels. `packed`: the
 * layout above for this (k, cin, cout, n, m); `scratch`: f32NmConvScratchBytes(w, cin, cout, k, n, m,
 * bandRows) bytes; bandRows ≥ 1 output rows per prepared band.
 */
export function f32_nm_conv_nhwc(input: usize, inStride: i32, output: usize, outStride: i32, h: i32, w: i32,
  cin: i32, cout: i32, k: i32, n: i32, m: i32, packed: usize, outMin: f32, outMax: f32, scratch: usize, bandRows: i32): void {
  const p = (k - 1) >> 1;
  const T = nmTapsPerChannel(k, cin, n, m);
  const coutP = (cout + 3) & ~3;
  const wc = w < BLOCK ? BLOCK : w;
  const pitchBytes = bandPitch(wc, p, 4) << 2;
  const rowSet = bandRowSet(cin * pitchBytes);
  const cg = chunkGroups(k, p, m, 4);
  const table = scratch;
  const tile = (table + (<usize>(cout * T) << 3) + 15) & ~(<usize>15);
  const band = (tile + (<usize>(coutP * BLOCK) << 2) + 63) & ~(<usize>63);
  const vals = packed + (<usize>coutP << 2);
  const idx = vals + (<usize>(cout * T) << 2);
  expandTable(table, vals, idx, cout, k, cin, n, m, cg, pitchBytes, rowSet);
  const lo = f32x4.splat(outMin), hi = f32x4.splat(outMax);
  const ops = <usize>outStride << 2;
  const lastX = wc - BLOCK;
  const nb0 = min(bandRows, h);
  // Zero the band once: ring columns are never written afterwards (rows outside the image are re-zeroed).
  memory.fill(band, 0, <usize>(nb0 + 2 * p) * <usize>rowSet);
  const k2 = k * k;
  const n0 = chunkTaps(min(cg * m, cin), k2, n, m);
  for (let y0 = 0; y0 < h; y0 += bandRows) {
    const nb = min(bandRows, h - y0);
    if (y0 == 0) {
      prepareRows(input, inStride, h, w, cin, -p, nb + 2 * p, 0, p, pitchBytes, rowSet, band);
    } else {
      // Rolling band: the previous band's last 2p rows are this band's first 2p rows.
      memory.copy(band, band + <usize>bandRows * <usize>rowSet, <usize>(2 * p) * <usize>rowSet);
      prepareRows(input, inStride, h, w, cin, y0 + p, nb, 2 * p, p, pitchBytes, rowSet, band);
    }
    for (let r = 0; r < nb; r++) {
      const outRow = output + <usize>(y0 + r) * <usize>w * ops;
      let x = 0;
      while (true) {
        const base = band + <usize>r * <usize>rowSet + (<usize>x << 2);
        // Chunk by chunk (L1-sized sets of input channels), every output channel's partial sums in the tile.
        channelRun(base, table, n0, cout, packed, tile, false);
        let tab = table + (<usize>(cout * n0) << 3);
        for (let g0 = cg * m; g0 < cin; g0 += cg * m) {
          const nq = chunkTaps(min(cg * m, cin - g0), k2, n, m);
          channelRun(base, tab, nq, cout, 0, tile, true);
          tab += <usize>(cout * nq) << 3;
        }
        storeTile(tile, cout, outRow + <usize>x * ops, ops, min(BLOCK, w - x), lo, hi);
        if (x >= lastX) break;
        x = min(x + BLOCK, lastX); // the last block overlaps the previous one (same values rewritten)
      }
    }
  }
}
