// Per-channel statistics over H×W, one streaming pass, NHWC with pixel stride:
// min, max, mean, population std and max|x − mean| (DAQ's μ/σ, DFSQ's mean and
// max deviation, CADyQ's σ).
//
// Numerics. Sums are shifted: d = x − x₀ with x₀ the channel's first value,
// so S1 = Σd, S2 = Σd² stay small when the data sit far from 0 (no catastrophic
// cancellation in S2 − S1²/n, e.g. mean 1e4, std 1e−2), and accumulate in f64
// (53-bit: n·2^-53 relative error, negligible for any image). 8-bit codes use
// exact integer partial sums (i32 over ≤ 32-pixel blocks, |d| ≤ 255) flushed
// into f64, where integers < 2^53 add exactly. Each channel is one SIMD lane
// summing in pixel order, so the f64 results are bit-identical to the TS
// reference's sequential loop.
//
// Work layout: pixel blocks of 32; inside a block, channel groups (4 f32 / 8
// 8-bit lanes) keep their accumulators in registers across the block's pixels
// while the block (32 px × c) stays in L1.
//
// Accumulator `acc` (scratch, channel_stats_acc_bytes(c) = 32 + 34·c bytes,
// 8-aligned), so a tiled image can be accumulated over several calls:
//   f64 count | f64 shift[c] | f64 S1[c] | f64 S2[c] | f32 min[c] | f32 max[c] | i16 shift8[c]
// (min/max/shift in code units for 8-bit input). Output `out`: planar f32
// [5][c] = min[c], max[c], mean[c], std[c], maxAbsDev[c] — each row is a
// ready per-channel vector for the next kernel.

const PB = 32;

@inline function offShift(c: i32): usize { return 16; }
@inline function offS1(c: i32): usize { return 16 + (<usize>c << 3); }
@inline function offS2(c: i32): usize { return 16 + (<usize>c << 4); }
@inline function offMin(c: i32): usize { return 16 + <usize>c * 24; }
@inline function offMax(c: i32): usize { return 16 + <usize>c * 28; }
@inline function offSh8(c: i32): usize { return 16 + (<usize>c << 5); }

/** Bytes of the accumulator for c channels. */
export function channel_stats_acc_bytes(c: i32): i32 {
  return 32 + 34 * c;
}

/** Clears the accumulator (count 0, min +∞, max −∞, sums 0). */
export function channel_stats_reset(acc: usize, c: i32): void {
  store<f64>(acc, 0);
  memory.fill(acc + offS1(c), 0, <usize>c << 4);
  for (let i = 0; i < c; i++) {
    store<f32>(acc + offMin(c) + (<usize>i << 2), Infinity);
    store<f32>(acc + offMax(c) + (<usize>i << 2), -Infinity);
  }
}

/** Adds n f32 pixels (pixel stride xStride elements) to the accumulator. */
export function f32_channel_stats_accumulate_nhwc(x: usize, n: i32, c: i32, xStride: i32, acc: usize): void {
  if (n <= 0) return;
  const pitch = <usize>xStride << 2;
  const cnt = load<f64>(acc);
  if (cnt == 0) for (let i = 0; i < c; i++) store<f64>(acc + offShift(c) + (<usize>i << 3), <f64>load<f32>(x + (<usize>i << 2)));
  store<f64>(acc, cnt + <f64>n);
  const sh = acc + offShift(c), s1 = acc + offS1(c), s2 = acc + offS2(c), mnp = acc + offMin(c), mxp = acc + offMax(c);
  for (let p0 = 0; p0 < n; p0 += PB) {
    const pb = min(PB, n - p0);
    const base = x + <usize>p0 * pitch;
    let ch = 0;
    for (; ch + 4 <= c; ch += 4) {
      const o8 = <usize>ch << 3, o4 = <usize>ch << 2;
      let mn = v128.load(mnp + o4), mx = v128.load(mxp + o4);
      let a0 = v128.load(s1 + o8), a1 = v128.load(s1 + o8, 16);
      let q0 = v128.load(s2 + o8), q1 = v128.load(s2 + o8, 16);
      const h0 = v128.load(sh + o8), h1 = v128.load(sh + o8, 16);
      let ptr = base + o4;
      for (let q = 0; q < pb; q++, ptr += pitch) {
        const v = v128.load(ptr);
        mn = f32x4.min(mn, v);
        mx = f32x4.max(mx, v);
        const d0 = f64x2.sub(f64x2.promote_low_f32x4(v), h0);
        const d1 = f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3)), h1);
        a0 = f64x2.add(a0, d0);
        a1 = f64x2.add(a1, d1);
        q0 = f64x2.add(q0, f64x2.mul(d0, d0));
        q1 = f64x2.add(q1, f64x2.mul(d1, d1));
      }
      v128.store(mnp + o4, mn);
      v128.store(mxp + o4, mx);
      v128.store(s1 + o8, a0); v128.store(s1 + o8, a1, 16);
      v128.store(s2 + o8, q0); v128.store(s2 + o8, q1, 16);
    }
    for (; ch < c; ch++) {
      const o8 = <usize>ch << 3, o4 = <usize>ch << 2;
      let mn = load<f32>(mnp + o4), mx = load<f32>(mxp + o4);
      let a = load<f64>(s1 + o8), sq = load<f64>(s2 + o8);
      const h = load<f64>(sh + o8);
      let ptr = base + o4;
      for (let q = 0; q < pb; q++, ptr += pitch) {
        const v = load<f32>(ptr);
        mn = min<f32>(mn, v);
        mx = max<f32>(mx, v);
        const d = <f64>v - h;
        a += d;
        sq += d * d;
      }
      store<f32>(mnp + o4, mn); store<f32>(mxp + o4, mx);
      store<f64>(s1 + o8, a); store<f64>(s2 + o8, sq);
    }
  }
}

/**
 * Adds n 8-bit pixels (signed != 0: i8 codes, else u8; stride in bytes).
 * Statistics stay in code units until channel_stats_finalize applies (scale, zp).
 */
export function q8_channel_stats_accumulate_nhwc(x: usize, n: i32, c: i32, xStride: i32, signed: i32, acc: usize): void {
  if (n <= 0) return;
  const pitch = <usize>xStride;
  const flip = signed ? 0 : 0x80;
  const cnt = load<f64>(acc);
  const sh = acc + offShift(c), sh8 = acc + offSh8(c);
  if (cnt == 0) {
    for (let i = 0; i < c; i++) {
      const v = signed ? <i32>load<i8>(x + i) : <i32>load<u8>(x + i);
      store<f64>(sh + (<usize>i << 3), <f64>v);
      store<i16>(sh8 + (<usize>i << 1), <i16>(v - flip)); // shift in the xor-flipped (i8) domain
    }
  }
  store<f64>(acc, cnt + <f64>n);
  const s1 = acc + offS1(c), s2 = acc + offS2(c), mnp = acc + offMin(c), mxp = acc + offMax(c);
  const vflip = i8x16.splat(<i8>flip);
  for (let p0 = 0; p0 < n; p0 += PB) {
    const pb = min(PB, n - p0);
    const base = x + <usize>p0 * pitch;
    let ch = 0;
    for (; ch + 8 <= c; ch += 8) {
      const h = v128.load(sh8 + (<usize>ch << 1)); // i16x8 shifts
      let dmn = i16x8.splat(32767), dmx = i16x8.splat(-32768);
      let a0 = i32x4.splat(0), a1 = i32x4.splat(0), q0 = i32x4.splat(0), q1 = i32x4.splat(0);
      let ptr = base + <usize>ch;
      // |d| ≤ 255: a block of 32 gives |Σd| ≤ 8160, Σd² ≤ 2.1e6 — no i32 overflow.
      for (let q = 0; q < pb; q++, ptr += pitch) {
        const d = i16x8.sub(i16x8.extend_low_i8x16_s(v128.xor(v128.load64_zero(ptr), vflip)), h);
        dmn = i16x8.min_s(dmn, d);
        dmx = i16x8.max_s(dmx, d);
        a0 = i32x4.add(a0, i32x4.extend_low_i16x8_s(d));
        a1 = i32x4.add(a1, i32x4.extend_high_i16x8_s(d));
        q0 = i32x4.add(q0, i32x4.extmul_low_i16x8_s(d, d));
        q1 = i32x4.add(q1, i32x4.extmul_high_i16x8_s(d, d));
      }
      // Flush: integer partials into the f64 sums (exact), code min/max into f32 (exact).
      const o8 = s1 + (<usize>ch << 3), p8 = s2 + (<usize>ch << 3);
      v128.store(o8, f64x2.add(v128.load(o8), f64x2.convert_low_i32x4_s(a0)));
      v128.store(o8, f64x2.add(v128.load(o8, 16), f64x2.convert_low_i32x4_s(v128.shuffle<i32>(a0, a0, 2, 3, 2, 3))), 16);
      v128.store(o8, f64x2.add(v128.load(o8, 32), f64x2.convert_low_i32x4_s(a1)), 32);
      v128.store(o8, f64x2.add(v128.load(o8, 48), f64x2.convert_low_i32x4_s(v128.shuffle<i32>(a1, a1, 2, 3, 2, 3))), 48);
      v128.store(p8, f64x2.add(v128.load(p8), f64x2.convert_low_i32x4_s(q0)));
      v128.store(p8, f64x2.add(v128.load(p8, 16), f64x2.convert_low_i32x4_s(v128.shuffle<i32>(q0, q0, 2, 3, 2, 3))), 16);
      v128.store(p8, f64x2.add(v128.load(p8, 32), f64x2.convert_low_i32x4_s(q1)), 32);
      v128.store(p8, f64x2.add(v128.load(p8, 48), f64x2.convert_low_i32x4_s(v128.shuffle<i32>(q1, q1, 2, 3, 2, 3))), 48);
      // code = d + shift' + flip
      const hf = i16x8.add(h, i16x8.splat(<i16>flip));
      const cmn = i16x8.add(dmn, hf), cmx = i16x8.add(dmx, hf);
      const m4 = mnp + (<usize>ch << 2), x4 = mxp + (<usize>ch << 2);
      v128.store(m4, f32x4.min(v128.load(m4), f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(cmn))));
      v128.store(m4, f32x4.min(v128.load(m4, 16), f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(cmn))), 16);
      v128.store(x4, f32x4.max(v128.load(x4), f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(cmx))));
      v128.store(x4, f32x4.max(v128.load(x4, 16), f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(cmx))), 16);
    }
    for (; ch < c; ch++) {
      const h = <i32>load<i16>(sh8 + (<usize>ch << 1)) + flip;
      let mn = 255, mx = -128, a = 0, sq = 0;
      let ptr = base + <usize>ch;
      for (let q = 0; q < pb; q++, ptr += pitch) {
        const v = signed ? <i32>load<i8>(ptr) : <i32>load<u8>(ptr);
        mn = min(mn, v);
        mx = max(mx, v);
        const d = v - h;
        a += d;
        sq += d * d;
      }
      const o8 = <usize>ch << 3, o4 = <usize>ch << 2;
      store<f64>(s1 + o8, load<f64>(s1 + o8) + <f64>a);
      store<f64>(s2 + o8, load<f64>(s2 + o8) + <f64>sq);
      store<f32>(mnp + o4, min<f32>(load<f32>(mnp + o4), <f32>mn));
      store<f32>(mxp + o4, max<f32>(load<f32>(mxp + o4), <f32>mx));
    }
  }
}

/**
 * Writes planar [5][c] f32 stats from the accumulator. Values are mapped
 * v ↦ scale·(v − zp) (scale > 0; 1 and 0 for f32 input, where it is exact):
 *   mean = shift + S1/n, var = max(0, (S2 − S1²/n)/n), std = √var,
 *   maxAbsDev = max(max − mean, mean − min) — all in f64, one final rounding.
 */
export function channel_stats_finalize(acc: usize, c: i32, scale: f32, zp: i32, out: usize): void {
  const n = load<f64>(acc);
  const s = <f64>scale, z = <f64>zp;
  const cs = <usize>c << 2;
  for (let i = 0; i < c; i++) {
    const o8 = <usize>i << 3, o4 = <usize>i << 2;
    const a = load<f64>(acc + offS1(c) + o8), q = load<f64>(acc + offS2(c) + o8);
    const mean = load<f64>(acc + offShift(c) + o8) + a / n;
    let v = (q - a * a / n) / n;
    if (!(v > 0)) v = 0;
    const mn = <f64>load<f32>(acc + offMin(c) + o4), mx = <f64>load<f32>(acc + offMax(c) + o4);
    const dev = max<f64>(mx - mean, mean - mn);
    store<f32>(out + o4, <f32>(s * (mn - z)));
    store<f32>(out + cs + o4, <f32>(s * (mx - z)));
    store<f32>(out + 2 * cs + o4, <f32>(s * (mean - z)));
    store<f32>(out + 3 * cs + o4, <f32>(s * Math.sqrt(v)));
    store<f32>(out + 4 * cs + o4, <f32>(s * dev));
  }
}

/** One-shot f32 statistics: reset + accumulate + finalize. acc: channel_stats_acc_bytes(c). */
export function f32_channel_stats_nhwc(x: usize, n: i32, c: i32, xStride: i32, acc: usize, out: usize): void {
  channel_stats_reset(acc, c);
  f32_channel_stats_accumulate_nhwc(x, n, c, xStride, acc);
  channel_stats_finalize(acc, c, 1, 0, out);
}

/** One-shot 8-bit statistics in real units scale·(code − zp). */
export function q8_channel_stats_nhwc(x: usize, n: i32, c: i32, xStride: i32, signed: i32, scale: f32, zp: i32, acc: usize, out: usize): void {
  channel_stats_reset(acc, c);
  q8_channel_stats_accumulate_nhwc(x, n, c, xStride, signed, acc);
  channel_stats_finalize(acc, c, scale, zp, out);
}
