// fp32 direct convolution, NHWC, stride 1, 'same' zero padding, odd k.
//
// Strategy (XNNPACK-style "output channels across lanes"): the packed weights
// hold blocks of 8 output channels (the last block 4 or 8 wide, zero-padded);
// a micro-kernel keeps a register block of 4 pixels × 8 channels (8 f32x4
// accumulators) or 6 pixels × 4 channels (6 accumulators) and, per input
// element, splats one activation per pixel and multiplies it by the channel
// vector(s) of weights. 8 accumulators + 2 weight vectors + 4 splats = 14 of
// the 16 xmm registers V8 has on x64, so nothing spills — also after V8
// unrolls the inner loop 2× (it does; each copy loads its operands after the
// previous copy's exit branch, so the copies do not compete for registers).
// Unlike the peak probes (assembly/probe/peak.ts) no anti-unrolling guard is
// needed: measured, the guard's extra stack check and branch cost more here.
//
// Borders: for k > 1 the input rows are copied (once each) into a ring of k
// rows in scratch with (k-1)/2 zero pixels on each side and a dense pixel
// stride of cin. For a fixed kernel row, the k·cin inputs under a pixel's
// window are then contiguous, exactly like the weights [ky][kx][ci][lane], so
// the inner loop is one flat run of k·cin steps (9 steps for a 3-channel input
// instead of 9 short loops of 3). Rows above/below the image are skipped by
// clipping the ky range (no zero rows stored, no MACs wasted on them). A 1×1
// conv needs no padding: it reads the input in place (a GEMM with pixel
// stride inStride).
//
// Packed layout (see packF32Conv in src/kernels/f32-conv.ts): for block b
// (output channels 8b .. 8b+nb-1, nb = 8, or 4 for a last block of ≤ 4
// channels): nb bias floats, then k·k·cin·nb weights ordered [ky][kx][ci][lane].
// Full blocks are 8 + 8·k·k·cin floats apart.
//
// Scratch (f32ConvScratchBytes): 64 bytes of row table (k entries of
// {row address, ky·k·cin}), then for k > 1 the ring: k rows × (w + k - 1)
// pixels × cin floats.
//
// The output must not overlap the input (rows are read after earlier output
// rows were written).

// @ts-ignore: decorator
@inline const TABLE_BYTES: i32 = 64 * 8; // room for k ≤ 63 entries of 8 bytes

/** acc + x·w: FMA in the relaxed build (one rounding), mul then add otherwise. */
// @ts-ignore: decorator
@inline function madd(acc: v128, x: v128, w: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(x, w, acc);
  return f32x4.add(acc, f32x4.mul(x, w));
}

// @ts-ignore: decorator
@inline function clamp(v: v128, lo: v128, hi: v128): v128 {
  // pmax/pmin are one maxps/minps each (max/min cost ~8 instructions for their
  // NaN/-0 rules); operand order keeps a NaN (v < lo and hi < v are false).
  return f32x4.pmin(f32x4.pmax(v, lo), hi);
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

/** Stores 8 channels (nvalid of them) of one pixel. */
// @ts-ignore: decorator
@inline function store8(p: usize, v0: v128, v1: v128, nvalid: i32): void {
  if (nvalid >= 8) {
    v128.store(p, v0);
    v128.store(p, v1, 16);
  } else if (nvalid > 4) {
    v128.store(p, v0);
    storeN(p + 16, v1, nvalid - 4);
  } else {
    storeN(p, v0, nvalid);
  }
}

/**
 * 4 pixels × 8 channels. `table`: nrows entries {row base address, e = ky·k·cin};
 * the pixel window of row r starts at base + xoff, pixels `ps` bytes apart;
 * each row contributes n = k·cin steps.
 */
function mk8x4(table: usize, nrows: i32, xoff: usize, ps: usize, n: i32, blk: usize,
  out: usize, ops: usize, lo: v128, hi: v128, nvalid: i32): void {
  let a0 = v128.load(blk), a1 = v128.load(blk, 16);
  let b0 = a0, b1 = a1, c0 = a0, c1 = a1, d0 = a0, d1 = a1;
  const wblk = blk + 32;
  const ps2 = ps << 1, ps3 = ps * 3;
  for (let r = 0; r < nrows; r++) {
    let xp = <usize>load<u32>(table + (<usize>r << 3)) + xoff;
    let wp = wblk + (<usize>load<u32>(table + (<usize>r << 3), 4) << 5);
    const end = xp + (<usize>n << 2);
    do {
      const w0 = v128.load(wp), w1 = v128.load(wp, 16);
      let x = v128.load32_splat(xp);
      a0 = madd(a0, x, w0); a1 = madd(a1, x, w1);
      x = v128.load32_splat(xp + ps);
      b0 = madd(b0, x, w0); b1 = madd(b1, x, w1);
      x = v128.load32_splat(xp + ps2);
      c0 = madd(c0, x, w0); c1 = madd(c1, x, w1);
      x = v128.load32_splat(xp + ps3);
      d0 = madd(d0, x, w0); d1 = madd(d1, x, w1);
      xp += 4;
      wp += 32;
    } while (xp < end);
  }
  store8(out, clamp(a0, lo, hi), clamp(a1, lo, hi), nvalid);
  store8(out + ops, clamp(b0, lo, hi), clamp(b1, lo, hi), nvalid);
  store8(out + (ops << 1), clamp(c0, lo, hi), clamp(c1, lo, hi), nvalid);
  store8(out + ops * 3, clamp(d0, lo, hi), clamp(d1, lo, hi), nvalid);
}

/** 1 pixel × 8 channels (images narrower than 4 pixels). */
function mk8x1(table: usize, nrows: i32, xoff: usize, n: i32, blk: usize,
  out: usize, lo: v128, hi: v128, nvalid: i32): void {
  let a0 = v128.load(blk), a1 = v128.load(blk, 16);
  const wblk = blk + 32;
  for (let r = 0; r < nrows; r++) {
    let xp = <usize>load<u32>(table + (<usize>r << 3)) + xoff;
    let wp = wblk + (<usize>load<u32>(table + (<usize>r << 3), 4) << 5);
    const end = xp + (<usize>n << 2);
    do {
      const x = v128.load32_splat(xp);
      a0 = madd(a0, x, v128.load(wp));
      a1 = madd(a1, x, v128.load(wp, 16));
      xp += 4;
      wp += 32;
    } while (xp < end);
  }
  store8(out, clamp(a0, lo, hi), clamp(a1, lo, hi), nvalid);
}

/** 6 pixels × 4 channels: the last block when ≤ 4 output channels remain (cout 3, 12, …). */
function mk4x6(table: usize, nrows: i32, xoff: usize, ps: usize, n: i32, blk: usize,
  out: usize, ops: usize, lo: v128, hi: v128, nvalid: i32): void {
  let a = v128.load(blk);
  let b = a, c = a, d = a, e = a, f = a;
  const wblk = blk + 16;
  const ps2 = ps << 1, ps3 = ps * 3, ps4 = ps << 2, ps5 = ps * 5;
  for (let r = 0; r < nrows; r++) {
    let xp = <usize>load<u32>(table + (<usize>r << 3)) + xoff;
    let wp = wblk + (<usize>load<u32>(table + (<usize>r << 3), 4) << 4);
    const end = xp + (<usize>n << 2);
    do {
      const w = v128.load(wp);
      a = madd(a, v128.load32_splat(xp), w);
      b = madd(b, v128.load32_splat(xp + ps), w);
      c = madd(c, v128.load32_splat(xp + ps2), w);
      d = madd(d, v128.load32_splat(xp + ps3), w);
      e = madd(e, v128.load32_splat(xp + ps4), w);
      f = madd(f, v128.load32_splat(xp + ps5), w);
      xp += 4;
      wp += 16;
    } while (xp < end);
  }
  storeN(out, clamp(a, lo, hi), nvalid);
  storeN(out + ops, clamp(b, lo, hi), nvalid);
  storeN(out + (ops << 1), clamp(c, lo, hi), nvalid);
  storeN(out + ops * 3, clamp(d, lo, hi), nvalid);
  storeN(out + (ops << 2), clamp(e, lo, hi), nvalid);
  storeN(out + ops * 5, clamp(f, lo, hi), nvalid);
}

/** 1 pixel × 4 channels. */
function mk4x1(table: usize, nrows: i32, xoff: usize, n: i32, blk: usize,
  out: usize, lo: v128, hi: v128, nvalid: i32): void {
  let a = v128.load(blk);
  const wblk = blk + 16;
  for (let r = 0; r < nrows; r++) {
    let xp = <usize>load<u32>(table + (<usize>r << 3)) + xoff;
    let wp = wblk + (<usize>load<u32>(table + (<usize>r << 3), 4) << 4);
    const end = xp + (<usize>n << 2);
    do {
      a = madd(a, v128.load32_splat(xp), v128.load(wp));
      xp += 4;
      wp += 16;
    } while (xp < end);
  }
  storeN(out, clamp(a, lo, hi), nvalid);
}

/** Copies w pixels of cin floats (source pixel stride inStride floats) to a dense row. */
function copyRow(dst: usize, src: usize, w: i32, cin: i32, inStride: i32): void {
  if (inStride == cin) {
    memory.copy(dst, src, <usize>(w * cin) << 2);
    return;
  }
  const sps = <usize>inStride << 2;
  const n4 = cin & ~3;
  for (let x = 0; x < w; x++) {
    let c = 0;
    for (; c < n4; c += 4) v128.store(dst + (<usize>c << 2), v128.load(src + (<usize>c << 2)));
    for (; c < cin; c++) store<f32>(dst + (<usize>c << 2), load<f32>(src + (<usize>c << 2)));
    dst += <usize>cin << 2;
    src += sps;
  }
}

/**
 * out[y, x, o] = clamp(bias[o] + Σ_{ky,kx,ci} in[y+ky-p, x+kx-p, ci] · W[ky,kx,ci,o], outMin, outMax),
 * p = (k-1)/2, out-of-image inputs are 0. `input`/`output` are byte offsets of
 * pixel (0,0) channel 0; inStride/outStride are floats between pixels.
 * `packed` is packF32Conv's buffer, `scratch` has f32ConvScratchBytes(w, cin, k) bytes.
 */
export function f32_conv_nhwc(input: usize, inStride: i32, output: usize, outStride: i32,
  h: i32, w: i32, cin: i32, cout: i32, k: i32, packed: usize, outMin: f32, outMax: f32, scratch: usize): void {
  const p = (k - 1) >> 1;
  const lo = f32x4.splat(outMin), hi = f32x4.splat(outMax);
  const table = scratch;
  const n = k * cin; // steps per kernel row
  const ops = <usize>outStride << 2;
  const full = 8 + 8 * k * k * cin; // floats per full block
  const nblocks = (cout + 7) >> 3;

  // k > 1: ring of k padded rows; slot s holds input row iy with iy % k == s.
  const ring = scratch + TABLE_BYTES;
  const slotPix = w + 2 * p;
  const slotBytes = <usize>(slotPix * cin) << 2;
  let ps: usize;
  if (k > 1) {
    ps = <usize>cin << 2;
    const padBytes = <usize>(p * cin) << 2;
    for (let s = 0; s < k; s++) {
      const slot = ring + <usize>s * slotBytes;
      memory.fill(slot, 0, padBytes);
      memory.fill(slot + slotBytes - padBytes, 0, padBytes);
    }
  } else {
    ps = <usize>inStride << 2;
  }
  const inRowBytes = <usize>(w * inStride) << 2;
  let loaded = 0; // input rows [0, loaded) have been copied into the ring

  for (let y = 0; y < h; y++) {
    const ky0 = max(0, p - y);
    const ky1 = min(k - 1, h - 1 - y + p);
    if (k > 1) {
      const need = min(h, y + p + 1);
      while (loaded < need) {
        copyRow(ring + <usize>(loaded % k) * slotBytes + (<usize>(p * cin) << 2),
          input + <usize>loaded * inRowBytes, w, cin, inStride);
        loaded++;
      }
    }
    let nrows = 0;
    for (let ky = ky0; ky <= ky1; ky++) {
      const iy = y - p + ky;
      const row = k > 1 ? ring + <usize>(iy % k) * slotBytes : input + <usize>iy * inRowBytes;
      store<u32>(table + (<usize>nrows << 3), <u32>row);
      store<u32>(table + (<usize>nrows << 3), <u32>(ky * n), 4);
      nrows++;
    }
    const outRow = output + <usize>(y * w) * ops;
    // Blocks of 8 channels: pixel blocks outer, channel blocks inner, so the
    // 4-pixel input window (k rows × (k+3) pixels × cin) stays in L1 while the
    // weights stream through it once per pixel block.
    const nfull = (cout - (nblocks - 1 << 3)) > 4 ? nblocks : nblocks - 1;
    if (nfull > 0) {
      if (w >= 4) {
        let x = 0;
        while (true) {
          const xoff = <usize>x * ps, outx = outRow + <usize>x * ops;
          for (let b = 0; b < nfull; b++) {
            mk8x4(table, nrows, xoff, ps, n, packed + (<usize>(b * full) << 2), outx + (<usize>b << 5), ops, lo, hi, min(cout - (b << 3), 8));
          }
          if (x + 4 == w) break;
          x = min(x + 4, w - 4); // the last block overlaps the previous one (same values rewritten)
        }
      } else {
        for (let x = 0; x < w; x++) {
          for (let b = 0; b < nfull; b++) {
            mk8x1(table, nrows, <usize>x * ps, n, packed + (<usize>(b * full) << 2), outRow + <usize>x * ops + (<usize>b << 5), lo, hi, min(cout - (b << 3), 8));
          }
        }
      }
    }
    // A last block of ≤ 4 channels: 6 pixels × 4 channels.
    if (nfull < nblocks) {
      const rem = cout - (nfull << 3);
      const blk = packed + (<usize>(nfull * full) << 2);
      const out0 = outRow + (<usize>nfull << 5);
      if (w >= 6) {
        let x = 0;
        while (true) {
          mk4x6(table, nrows, <usize>x * ps, ps, n, blk, out0 + <usize>x * ops, ops, lo, hi, rem);
          if (x + 6 == w) break;
          x = min(x + 6, w - 6);
        }
      } else {
        for (let x = 0; x < w; x++) mk4x1(table, nrows, <usize>x * ps, n, blk, out0 + <usize>x * ops, lo, hi, rem);
      }
    }
  }
}
