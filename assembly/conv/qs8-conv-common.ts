// Shared core of the quantized NHWC convolutions (qs8/qu8 activations × qc8w/qc4w weights).
//
// Arithmetic (gemmlowp notation). A quantized tensor holds codes q with real value r = s·(q − z).
// For one output pixel and output channel o of a k×k 'same' conv:
//
//   r_y[o] = Σ_taps r_x·r_w[o] + r_b[o]
//          = s_x·s_w[o] · ( Σ_taps (x − z_x)·w[o]  +  bias_q[o] )        (weights symmetric: z_w = 0,
//                                                                        bias_q = round(r_b / (s_x·s_w[o])))
//   acc[o] = Σ_taps (x − z_x)·w[o] + bias_q[o]                           (exact int32: the wrapper proves
//                                                                        max|x − z_x|·Σ|w[o]| + |bias_q[o]| < 2^31)
//   y[o]   = clamp(round_half_even(f32(acc[o]) · M[o]) + z_y, qmin, qmax),  M[o] = s_x·s_w[o]/s_y  (one f32)
//
// 'same' padding pads the *real* tensor with 0, i.e. with the code z_x, whose (x − z_x) is 0: taps that fall
// outside the image contribute nothing, so the border needs no special case once the input is padded.
//
// Pipeline (gemmlowp / ruy style, each stage a separate function):
//   1. pack (TS, once per layer): weights → the block layouts below, bias and Σw per output channel.
//   2. prepare a band of input rows into scratch, padded with a ring of "zero" (and to an even / multiple-of-4
//      channel count):
//        simd path:    i16 (x − z_x)            — the subtraction is folded in once, not per MAC
//        relaxed path: u8  x' = x (+2^(b−1) if signed) — raw codes 0..2^b−1 ≤ 127 for the i7 operand, ring = z_x'
//   3. int32 accumulate: output channels across lanes, register block 4 pixels × 8 output channels
//      (8 v128 accumulators: V8 keeps ~8 in registers; more spill).
//        simd:    i32x4.dot_i16x8_s( splat(x[c], x[c+1]) , [w(o0..o3; c, c+1)] )            8 MAC / op
//        relaxed: i32x4.relaxed_dot_i8x16_i7x16_add_s( [w(o0..o3; c..c+3)], splat(x'[c..c+3]), acc )  16 MAC / op
//        relaxed, small products: i16x8.relaxed_dot_i8x16_i7x16_s summed in i16 for a bounded number of steps,
//                 then widened (DOT_U7_ACC16) — half the multiply-unit work of the other two
//      For one kernel row kh the taps (kw, c) are contiguous in both the padded input row and the packed
//      weights, so the inner loop is a single run of k·Cin' values with no index arithmetic.
//   4. requantize from registers (or store the raw int32 accumulators: the acc32 variants; or the f32 epilogue
//      of the LUT conv, OUT_F32).
//
// The relaxed path computes Σ x'·w over all taps (ring padded with z_x' = z_x + shift), then adds the
// per-channel constant −z_x'·Σw[o]:  Σ (x' − z_x')·w = Σ x'·w − z_x'·Σ_all-taps w.  The partial sums may wrap
// in int32, but i32 addition is exact modulo 2^32 and the true final value is proven to lie in int32, so the
// result is exact and bit-identical to the simd path. (The i8×i7 pair sums, ≤ 2·128·127 = 32512, never hit
// the i16 saturation of x86's pmaddubsw lowering.)

import { clampF, inFlip, roundMagic, widen0, widen1, widen2, widen3 } from "../elementwise/common";

/** Output modes: requantize to uint8 / int8 codes, store the raw int32 accumulators, or an f32 epilogue. */
export const OUT_U8: i32 = 0;
export const OUT_S8: i32 = 1;
export const OUT_I32: i32 = 2;
/** f32 output clamp(f32(acc)·mult[o] + bias[o], lo, hi) (the LUT conv of ./qlut-qc16w-conv-nhwc.ts). */
export const OUT_F32: i32 = 3;
/** Requantized codes, then a residual add fused into the store (qs8ConvFusedNhwc): the add's output codes. */
export const OUT_ADD: i32 = 4;

/** 1.5·2^23: adding it to |v| < 2^22 leaves round_half_even(v) in the low mantissa bits. */
const MAGIC: f32 = 12582912.0;
export const MAGIC_BITS: i32 = 0x4b400000;

/** Total packed weight bytes up to which accumulateDirect keeps all of them in L1 (pixel blocks outer). */
const SMALL_WEIGHTS: usize = 20 << 10;

/** 32 bytes of static data for partial (channel-tail) stores. */
const TAIL: usize = memory.data(32, 16);
/** 16 bytes of static data for partial (channel-tail) residual loads of OUT_ADD. */
const RES_TAIL: usize = memory.data(16, 16);

// ---------------------------------------------------------------------------------------------------------
// Packed weight blob (built by packQs8Conv in src/kernels/qs8-conv.ts). CoutP = Cout rounded up to 8,
// Cin2 = Cin rounded up to 2, Cin4 = Cin rounded up to 4; all padding weights are 0.
//   [0, 4·CoutP)          bias_q[o]           int32
//   [4·CoutP, 8·CoutP)    Σ_taps w[o]         int32 (relaxed-path zero-point correction)
//   w16 section           per block of 8 output channels, per kh, per kw, per input-channel pair c:
//                         32 bytes = i16 [w(o0,c) w(o0,c+1) w(o1,c) w(o1,c+1) w(o2,c) … w(o3,c+1)]
//                                        [w(o4,c) w(o4,c+1) …                        w(o7,c+1)]
//   w8 section            per block of 8, per kh, per kw, per input-channel quad c:
//                         32 bytes = i8  [w(o0,c..c+3) w(o1,c..c+3) w(o2,…) w(o3,…)] [w(o4,…) … w(o7,…)]
//   wino section (k = 3, 5) per block of 8, per Winograd component j = 0..3, per kh, per input-channel pair
//                         (k = 5, j < 3: first the pairs of group A, then of group B; j = 3: group B only):
//                         32 bytes as the w16 section, of U_j(o, kh, c) (see the Winograd section below)
//   wino2d section (k = 3 only) per block of 8, per 2-D Winograd component j = 4a + b (0..15), per input-channel
//                         pair: 32 bytes as the w16 section, of U[a][b](o, c) = (G' g G'ᵀ)[a][b]
//                         (./qs8-qc8w-conv3x3-winograd2d-nhwc.ts)
// ---------------------------------------------------------------------------------------------------------

@inline export function w16Offset(CoutP: i32): usize {
  return <usize>CoutP << 3;
}

@inline export function w16BlockBytes(k: i32, Cin2: i32): usize {
  return <usize>(k * k * Cin2) << 4; // k·k·(Cin2/2) pairs × 32 bytes
}

@inline export function w8BlockBytes(k: i32, Cin4: i32): usize {
  return <usize>(k * k * Cin4) << 3; // k·k·(Cin4/4) quads × 32 bytes
}

@inline export function winoBlockBytes(k: i32, Cin2: i32): usize {
  // k = 3: 4 components × 3 rows; k = 5: (3 components × 2 groups + 1) × 5 rows; × (Cin2/2) pairs × 32 bytes
  return <usize>((k == 3 ? 12 : 35) * Cin2) << 4;
}

// ------------------------------------------- stage 2: prepare ---------------------------------------------

/**
 * The ring of one padded band row at d for image row y (rows of p + Wc + p pixels of pxBytes, ring bytes `ring`):
 * all ring when y is outside the image (returns false), else the p pixels before and the Wc − W + p after the
 * image pixels (returns true: the caller writes pixels p … p + W − 1).
 */
@inline export function ringRow(d: usize, y: i32, H: i32, W: i32, p: i32, Wc: i32, pxBytes: usize, ring: u8): bool {
  if (y < 0 || y >= H) {
    memory.fill(d, ring, <usize>(Wc + 2 * p) * pxBytes);
    return false;
  }
  memory.fill(d, ring, <usize>p * pxBytes);
  memory.fill(d + <usize>(p + W) * pxBytes, ring, <usize>(Wc - W + p) * pxBytes);
  return true;
}

/**
 * Writes padded input rows y0−p … y0−p+nRows−1 as i16 (x − z) into dst: each row is p ring pixels, Wc image
 * pixels (Wc ≥ W; columns W..Wc−1 are ring too, so a 4-pixel block always has data to read), p ring pixels;
 * each pixel Cin2 i16 with the channel padding 0. Rows outside the image are all ring.
 */
export function prepareI16(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, zp: i32, signed: bool,
  y0: i32, nRows: i32, p: i32, Wc: i32, Cin2: i32, dst: usize): void {
  const pxBytes = <usize>Cin2 << 1;
  const rowBytes = <usize>(Wc + 2 * p) * pxBytes;
  const zpv = i16x8.splat(<i16>zp);
  for (let r = 0; r < nRows; r++) {
    const y = y0 - p + r;
    const d = dst + <usize>r * rowBytes;
    if (!ringRow(d, y, H, W, p, Wc, pxBytes, 0)) continue;
    let s = input + <usize>y * <usize>W * <usize>inStride;
    let q = d + <usize>p * pxBytes;
    for (let x = 0; x < W; x++) {
      let c = 0;
      if (signed) {
        for (; c + 8 <= Cin; c += 8) v128.store(q + (<usize>c << 1), i16x8.sub(v128.load8x8_s(s + c), zpv));
        for (; c < Cin; c++) store<i16>(q + (<usize>c << 1), <i16>(<i32>load<i8>(s + c) - zp));
      } else {
        for (; c + 8 <= Cin; c += 8) v128.store(q + (<usize>c << 1), i16x8.sub(v128.load8x8_u(s + c), zpv));
        for (; c < Cin; c++) store<i16>(q + (<usize>c << 1), <i16>(<i32>load<u8>(s + c) - zp));
      }
      if (c < Cin2) store<i16>(q + (<usize>c << 1), 0);
      s += <usize>inStride;
      q += pxBytes;
    }
  }
}

/**
 * Relaxed-path preparation: padded rows of u8 codes x' = x + shift (0..127), Cin4 channels per pixel
 * (padding channels 0: their weights are 0), ring = z' = z + shift.
 */
function prepareU7(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, shift: i32, zpShifted: i32,
  y0: i32, nRows: i32, p: i32, Wc: i32, Cin4: i32, dst: usize): void {
  const pxBytes = <usize>Cin4;
  const rowBytes = <usize>(Wc + 2 * p) * pxBytes;
  const sv = i8x16.splat(<i8>shift);
  for (let r = 0; r < nRows; r++) {
    const y = y0 - p + r;
    const d = dst + <usize>r * rowBytes;
    if (!ringRow(d, y, H, W, p, Wc, pxBytes, <u8>zpShifted)) continue;
    let s = input + <usize>y * <usize>W * <usize>inStride;
    let q = d + <usize>p * pxBytes;
    for (let x = 0; x < W; x++) {
      let c = 0;
      for (; c + 16 <= Cin; c += 16) v128.store(q + c, i8x16.add(v128.load(s + c), sv));
      for (; c < Cin; c++) store<u8>(q + c, <u8>(<i32>load<u8>(s + c) + shift));
      for (; c < Cin4; c++) store<u8>(q + c, 0);
      s += <usize>inStride;
      q += pxBytes;
    }
  }
}

// ------------------------------------------- stage 2': gathered preparation --------------------------------
//
// A concat whose only consumer is this conv need not exist in memory (qs8ConvFusedNhwc): the preparation reads
// each input segment j from its own tensor and requantizes it onto the concat's grid (z, [qmin, qmax]) on the fly,
// with the arithmetic of q8_requantize_nhwc (../elementwise/concat.ts):
//   x_cat − z = round_half_even(clamp(f32(m_j·f32(x_j − z_j)), qmin − z, qmax − z)),   m_j = fround(s_j/s_cat)
//   (identity segments — the concat's own grid — are plain copies: x_cat − z = x_j − z)
// The i16 rows then equal prepareI16 of the materialized concat and the u8 rows prepareU7's, bit for bit: the
// concat's copy pass (a read and a write of every code) is gone, the requantization is paid once either way.

/** Segment records of the gathered input: GATHER_WORDS i32 words each. */
export const GATHER_WORDS: i32 = 6;
// [0] tile base ptr   [1] pixel stride (bytes)   [2] channels   [3] z_j   [4] m_j (f32 bits)   [5] identity (≠ 0)

/**
 * prepareI16 (u7 = false: i16 x_cat − z, padding channels 0, ring 0) or prepareU7 (u7 = true: u8 x_cat + shift,
 * ring z + shift) of the concat of the nSeg segments at `segs` (see above); CinP = Cin↑2 (i16) or Cin↑4 (u8).
 */
function prepareGather(segs: usize, nSeg: i32, signed: bool, H: i32, W: i32, z: i32, lo: f32, hi: f32,
  y0: i32, nRows: i32, p: i32, Wc: i32, CinP: i32, u7: bool, shift: i32, dst: usize): void {
  const es: usize = u7 ? 0 : 1;
  const pxBytes = <usize>CinP << es;
  const rowBytes = <usize>(Wc + 2 * p) * pxBytes;
  const flip = inFlip(signed ? 1 : 0);
  const vin = i8x16.splat(<i8>flip), vlo = f32x4.splat(lo), vhi = f32x4.splat(hi), vmagic = f32x4.splat(MAGIC);
  // Rounded value − MAGIC_BITS (i16 rows: x_cat − z), or + z + shift as well (u8 rows: x_cat + shift).
  const vsub = i32x4.splat(u7 ? MAGIC_BITS - z - shift : MAGIC_BITS);
  const vshift = i8x16.splat(<i8>shift);
  for (let r = 0; r < nRows; r++) {
    const y = y0 - p + r;
    const d = dst + <usize>r * rowBytes;
    if (!ringRow(d, y, H, W, p, Wc, pxBytes, u7 ? <u8>(z + shift) : 0)) continue;
    const q0 = d + <usize>p * pxBytes;
    let off = 0;
    for (let j = 0; j < nSeg; j++) {
      const rec = segs + <usize>(j * GATHER_WORDS) * 4;
      const st = <usize>load<i32>(rec, 4), ch = load<i32>(rec, 8), zj = load<i32>(rec, 12), m = load<f32>(rec, 16);
      let s = <usize>load<u32>(rec) + <usize>y * <usize>W * st;
      let q = q0 + (<usize>off << es);
      if (load<i32>(rec, 20) != 0) {
        // Identity: the codes already lie on the concat's grid.
        const zv = i16x8.splat(<i16>z);
        for (let x = 0; x < W; x++) {
          let c = 0;
          if (u7) {
            for (; c + 16 <= ch; c += 16) v128.store(q + c, i8x16.add(v128.load(s + c), vshift));
            for (; c < ch; c++) store<u8>(q + c, <u8>((signed ? <i32>load<i8>(s + c) : <i32>load<u8>(s + c)) + shift));
          } else {
            if (signed) for (; c + 8 <= ch; c += 8) v128.store(q + (<usize>c << 1), i16x8.sub(v128.load8x8_s(s + c), zv));
            else for (; c + 8 <= ch; c += 8) v128.store(q + (<usize>c << 1), i16x8.sub(v128.load8x8_u(s + c), zv));
            for (; c < ch; c++) store<i16>(q + (<usize>c << 1), <i16>((signed ? <i32>load<i8>(s + c) : <i32>load<u8>(s + c)) - z));
          }
          s += st;
          q += pxBytes;
        }
      } else {
        const vz = i32x4.splat(zj - flip), vm = f32x4.splat(m);
        for (let x = 0; x < W; x++) {
          let c = 0;
          for (; c + 16 <= ch; c += 16) {
            const b = v128.xor(v128.load(s + c), vin);
            const r0 = i32x4.sub(f32x4.add(f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen0(b), vz)), vm))), vmagic), vsub);
            const r1 = i32x4.sub(f32x4.add(f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen1(b), vz)), vm))), vmagic), vsub);
            const r2 = i32x4.sub(f32x4.add(f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen2(b), vz)), vm))), vmagic), vsub);
            const r3 = i32x4.sub(f32x4.add(f32x4.pmin(vhi, f32x4.pmax(vlo, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(widen3(b), vz)), vm))), vmagic), vsub);
            const h0 = i16x8.narrow_i32x4_s(r0, r1), h1 = i16x8.narrow_i32x4_s(r2, r3);
            if (u7) {
              v128.store(q + c, i8x16.narrow_i16x8_u(h0, h1));
            } else {
              v128.store(q + (<usize>c << 1), h0);
              v128.store(q + (<usize>c << 1), h1, 16);
            }
          }
          for (; c < ch; c++) {
            const v = roundMagic(clampF(<f32>((signed ? <i32>load<i8>(s + c) : <i32>load<u8>(s + c)) - zj) * m, lo, hi));
            if (u7) store<u8>(q + c, <u8>(v + z + shift));
            else store<i16>(q + (<usize>c << 1), <i16>v);
          }
          s += st;
          q += pxBytes;
        }
      }
      off += ch;
    }
    if (off < CinP) {
      let q = q0 + (<usize>off << es);
      for (let x = 0; x < W; x++) {
        memory.fill(q, 0, <usize>(CinP - off) << es);
        q += pxBytes;
      }
    }
  }
}

// ------------------------------------------- stage 4: requantize / store ----------------------------------

/** Bytes per output element of a mode: 1 for codes, 4 for int32 / f32. */
@inline export function outElemShift(mode: i32): i32 {
  return mode == OUT_I32 || mode == OUT_F32 ? 2 : 0;
}

/** f32(acc)·M → clamp to [qmin−z, qmax−z] → round half to even (+MAGIC) → bits − (MAGIC_BITS − z) = code. */
@inline function requant(acc: v128, m: v128, lo: v128, hi: v128, magicMinusZp: v128): v128 {
  let f = f32x4.mul(f32x4.convert_i32x4_s(acc), m);
  f = f32x4.pmin(f32x4.pmax(f, lo), hi);
  return i32x4.sub(f32x4.add(f, f32x4.splat(MAGIC)), magicMinusZp);
}

/**
 * OUT_F32: clamp(f32(f32(f32(acc)·m) + b), lo, hi). No FMA: two separately rounded f32 ops, so a TS reference
 * with Math.fround matches bit for bit; the clamp is f32x4.max/min (Math.max/min semantics, −0 < +0).
 */
@inline function epilogueF32(acc: v128, m: v128, b: v128, lo: v128, hi: v128): v128 {
  const v = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(acc), m), b);
  return f32x4.min(f32x4.max(v, lo), hi);
}

// Fused residual add (OUT_ADD), as q8_add_nhwc (../elementwise/requant-add.ts) applied to the conv's codes l and
// the residual codes r at the same pixel (r sits at dst + addDelta: the residual has the output's pixel stride):
//   l − z_l = round_half_even(clamp(f32(acc)·M[o], qmin − z_l, qmax − z_l))        (the conv's own requantization,
//                                                                                    without materializing l)
//   t       = f32(m_l·f32(l − z_l)) + f32(m_r·f32(r − z_r))                          (m = fround(s_in/s_out))
//   y       = round_half_even(clamp(t, qmin_y − z_y, qmax_y − z_y)) + z_y
// The same f32 operations in the same order as the two unfused kernels, so y is bit-identical to conv → add.
// Set once per call by qs8ConvFusedNhwc: the residual's address offset and signedness in globals, the splatted
// constants in a static block that storeAdd reads per store (x64 V8 folds those loads into the vector ops; wasm
// globals read and splatted per store cost ~14 extra vector instructions per 8 outputs).
let addDelta: isize = 0;
let addSigned: bool = false;
/** [m_l, m_r (f32x4), z_r (i32x4), lo, hi, MAGIC (f32x4), MAGIC_BITS − z_y (i32x4)], 16 bytes each. */
const ADD_K: usize = memory.data(112, 16);

/** Fills ADD_K (see above). */
function setAddConstants(ml: f32, mr: f32, zr: i32, lo: f32, hi: f32, zo: i32): void {
  v128.store(ADD_K, f32x4.splat(ml), 0);
  v128.store(ADD_K, f32x4.splat(mr), 16);
  v128.store(ADD_K, i32x4.splat(zr), 32);
  v128.store(ADD_K, f32x4.splat(lo), 48);
  v128.store(ADD_K, f32x4.splat(hi), 64);
  v128.store(ADD_K, f32x4.splat(MAGIC), 80);
  v128.store(ADD_K, i32x4.splat(MAGIC_BITS - zo), 96);
}

/**
 * round_half_even(clamp(f32(acc)·m, lo, hi)) as exact f32 lanes: requant() without the zero point, and with the
 * magic constant taken off again in f32 ((v + MAGIC) − MAGIC is exact for |v| < 2^22), i.e. f32(l − z_l).
 */
@inline function requantCentered(acc: v128, m: v128, lo: v128, hi: v128): v128 {
  let f = f32x4.mul(f32x4.convert_i32x4_s(acc), m);
  f = f32x4.pmin(f32x4.pmax(f, lo), hi);
  const magic = v128.load(ADD_K, 80);
  return f32x4.sub(f32x4.add(f, magic), magic);
}

/** f32(m_l·(l − z_l)) + f32(m_r·f32(r − z_r)), clamped as q8_add_nhwc, rounded, + z_y (4 lanes; l: f32 lanes). */
@inline function addLanes(l: v128, r: v128): v128 {
  const t = f32x4.add(f32x4.mul(l, v128.load(ADD_K, 0)),
    f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(r, v128.load(ADD_K, 32))), v128.load(ADD_K, 16)));
  const c = f32x4.pmin(v128.load(ADD_K, 64), f32x4.pmax(v128.load(ADD_K, 48), t));
  return i32x4.sub(f32x4.add(c, v128.load(ADD_K, 80)), v128.load(ADD_K, 96));
}

/** OUT_ADD store of one pixel's 8 channels (nValid ≤ 8): see the fused-add derivation above. */
@inline function storeAdd(a: v128, b: v128, dst: usize, nValid: i32, m0: v128, m1: v128, lo: v128, hi: v128): void {
  const src = <usize>(<isize>dst + addDelta);
  let r: v128;
  if (nValid == 8) {
    r = v128.load64_zero(src);
  } else {
    v128.store(RES_TAIL, i32x4.splat(0), 0);
    for (let i = 0; i < nValid; i++) store<u8>(RES_TAIL + i, load<u8>(src + i));
    r = v128.load64_zero(RES_TAIL);
  }
  const r16 = addSigned ? i16x8.extend_low_i8x16_s(r) : i16x8.extend_low_i8x16_u(r);
  const y0 = addLanes(requantCentered(a, m0, lo, hi), i32x4.extend_low_i16x8_s(r16));
  const y1 = addLanes(requantCentered(b, m1, lo, hi), i32x4.extend_high_i16x8_s(r16));
  // Codes lie in [qmin_y, qmax_y] ⊂ [−128, 255]: the saturating narrows only repack.
  const h = i16x8.narrow_i32x4_s(y0, y1);
  const v = addSigned ? i8x16.narrow_i16x8_s(h, h) : i8x16.narrow_i16x8_u(h, h);
  if (nValid == 8) {
    v128.store64_lane(dst, v, 0);
  } else {
    v128.store(TAIL, v);
    for (let i = 0; i < nValid; i++) store<u8>(dst + i, load<u8>(TAIL + i));
  }
}

/** Stores 8 32-bit lanes (a = lanes 0..3, b = 4..7) to dst, the first nValid ≤ 8 of them. */
@inline export function store8x32(dst: usize, a: v128, b: v128, nValid: i32): void {
  if (nValid == 8) {
    v128.store(dst, a);
    v128.store(dst, b, 16);
  } else {
    v128.store(TAIL, a);
    v128.store(TAIL, b, 16);
    for (let i = 0; i < nValid; i++) store<u32>(dst + (<usize>i << 2), load<u32>(TAIL + (<usize>i << 2)));
  }
}

/**
 * Stores one pixel's 8 channels (accumulators a = o0..3, b = o4..7), nValid ≤ 8 of them. m0, m1: the
 * multipliers of the 8 channels; lo, hi, mz: the requantization constants (OUT_U8 / OUT_S8) or the f32 clamp
 * bounds (OUT_F32); fb: the 8 f32 biases (OUT_F32 only).
 */
@inline export function storePixel(a: v128, b: v128, dst: usize, nValid: i32, mode: i32,
  m0: v128, m1: v128, lo: v128, hi: v128, mz: v128, fb: usize): void {
  if (mode == OUT_I32) {
    store8x32(dst, a, b, nValid);
    return;
  }
  if (mode == OUT_F32) {
    store8x32(dst, epilogueF32(a, m0, v128.load(fb), lo, hi), epilogueF32(b, m1, v128.load(fb, 16), lo, hi), nValid);
    return;
  }
  if (mode == OUT_ADD) {
    storeAdd(a, b, dst, nValid, m0, m1, lo, hi);
    return;
  }
  // Codes already lie in [qmin, qmax] ⊂ [−128, 255]: the saturating narrows only repack.
  const h = i16x8.narrow_i32x4_s(requant(a, m0, lo, hi, mz), requant(b, m1, lo, hi, mz));
  const v = mode == OUT_U8 ? i8x16.narrow_i16x8_u(h, h) : i8x16.narrow_i16x8_s(h, h);
  if (nValid == 8) {
    v128.store64_lane(dst, v, 0);
  } else {
    v128.store(TAIL, v);
    for (let i = 0; i < nValid; i++) store<u8>(dst + i, load<u8>(TAIL + i));
  }
}

// ------------------------------------------- stage 3: accumulate ------------------------------------------

/** The inner loops of the register block (a compile-time argument: every caller gets its own copy). */
export const DOT_I16: i32 = 0;      // i32x4.dot_i16x8_s on i16 pairs
const DOT_U7: i32 = 1;       // i32x4.relaxed_dot_i8x16_i7x16_add_s on u8 quads (relaxed build only)
const DOT_U7_ACC16: i32 = 2; // i16x8.relaxed_dot_i8x16_i7x16_s summed in i16 over chunkBytes, then widened

/** acc + the products of one step (activations a, weights w) in the loop of kind `dot` (i16 lanes for DOT_U7_ACC16). */
@inline function dotStep(dot: i32, acc: v128, a: v128, w: v128): v128 {
  if (dot == DOT_I16) return i32x4.add(acc, i32x4.dot_i16x8_s(a, w));
  if (ASC_FEATURE_RELAXED_SIMD) {
    if (dot == DOT_U7) return i32x4.relaxed_dot_i8x16_i7x16_add_s(w, a, acc);
    return i16x8.add(acc, i16x8.relaxed_dot_i8x16_i7x16_s(w, a));
  }
  return acc;
}

/** The int32 accumulator after a run of dotStep results h: c + widened h (DOT_U7_ACC16), else h itself. */
@inline function widen(dot: i32, c: v128, h: v128): v128 {
  return dot == DOT_U7_ACC16 ? i32x4.add(c, i32x4.extadd_pairwise_i16x8_s(h)) : h;
}

/**
 * One register block of 4 pixels × 8 output channels (8 v128 accumulators, started at b0 = o0..3, b1 = o4..7).
 * For each kernel row kh the taps are one contiguous run of `run` bytes from pi + kh·rowStep — 4 bytes per step
 * (an i16 input-channel pair, or a u8 quad) against one 32-byte weight record from pw on; pixel j reads at
 * + j·pxBytes. The 4 results go through storePixel to d + j·outPx (the first nPix ≤ 4). Returns pw past the
 * weights read.
 *
 * DOT_U7_ACC16 (small products: low-bit activations and/or int4 weights): `i16x8.relaxed_dot_i8x16_i7x16_s`
 * (one pmaddubsw on x86) sums pairs into i16 lanes; chunkBytes/4 steps of those are added in i16 before one
 * `i32x4.extadd_pairwise_i16x8_s` widens them into the int32 accumulators. The wrapper picks
 * chunk = ⌊32767 / (2·max x'·max|w|)⌋ ≥ 2, so no i16 partial sum can leave int16 (and none saturates).
 * Per 16 MACs this costs one multiply-unit op instead of two (the i32 dot is pmaddubsw + pmaddwd without
 * AVX-VNNI), which is what limits both other paths.
 */
@inline export function dotBlock(dot: i32, pi: usize, pxBytes: usize, run: usize, rowStep: usize, k: i32, pw: usize,
  chunkBytes: usize, b0: v128, b1: v128, d: usize, outPx: usize, nPix: i32, nValid: i32, mode: i32,
  m0: v128, m1: v128, lo: v128, hi: v128, mz: v128, fb: usize): usize {
  const px2 = pxBytes << 1;
  const px3 = px2 + pxBytes;
  const zero = i32x4.splat(0);
  let c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1, c30 = b0, c31 = b1;
  for (let kh = 0; kh < k; kh++) {
    let pa = pi;
    const end = pa + run;
    do {
      // DOT_U7_ACC16 sums at most chunkBytes/4 steps in i16 lanes, then widens; the others run to `end` at once.
      const acc16 = dot == DOT_U7_ACC16;
      const stop = acc16 && pa + chunkBytes < end ? pa + chunkBytes : end;
      let h00 = acc16 ? zero : c00, h01 = acc16 ? zero : c01, h10 = acc16 ? zero : c10, h11 = acc16 ? zero : c11;
      let h20 = acc16 ? zero : c20, h21 = acc16 ? zero : c21, h30 = acc16 ? zero : c30, h31 = acc16 ? zero : c31;
      do {
        const w0 = v128.load(pw);
        const w1 = v128.load(pw, 16);
        const a0 = v128.load32_splat(pa);
        const a1 = v128.load32_splat(pa + pxBytes);
        const a2 = v128.load32_splat(pa + px2);
        const a3 = v128.load32_splat(pa + px3);
        h00 = dotStep(dot, h00, a0, w0);
        h01 = dotStep(dot, h01, a0, w1);
        h10 = dotStep(dot, h10, a1, w0);
        h11 = dotStep(dot, h11, a1, w1);
        h20 = dotStep(dot, h20, a2, w0);
        h21 = dotStep(dot, h21, a2, w1);
        h30 = dotStep(dot, h30, a3, w0);
        h31 = dotStep(dot, h31, a3, w1);
        pa += 4;
        pw += 32;
      } while (pa < stop);
      c00 = widen(dot, c00, h00);
      c01 = widen(dot, c01, h01);
      c10 = widen(dot, c10, h10);
      c11 = widen(dot, c11, h11);
      c20 = widen(dot, c20, h20);
      c21 = widen(dot, c21, h21);
      c30 = widen(dot, c30, h30);
      c31 = widen(dot, c31, h31);
    } while (pa < end);
    pi += rowStep;
  }
  storePixel(c00, c01, d, nValid, mode, m0, m1, lo, hi, mz, fb);
  if (nPix > 1) storePixel(c10, c11, d + outPx, nValid, mode, m0, m1, lo, hi, mz, fb);
  if (nPix > 2) storePixel(c20, c21, d + 2 * outPx, nValid, mode, m0, m1, lo, hi, mz, fb);
  if (nPix > 3) storePixel(c30, c31, d + 3 * outPx, nValid, mode, m0, m1, lo, hi, mz, fb);
  return pw;
}

/**
 * Output rows for one band of directly prepared rows (pxBytes per padded pixel, weights from w in blocks of
 * wBlock bytes): for each row, for each block of 8 output channels (its weights stay in L1 across the row), for
 * each block of 4 pixels (the last block overlaps the previous one when W % 4 ≠ 0: recomputing a few pixels
 * is cheaper than a tail kernel). The relaxed loops start at bias − z'·Σw (see the header): exact modulo 2^32.
 * lo, hi: [qmin − z_y, qmax − z_y] (OUT_U8 / OUT_S8) or the clamp bounds (OUT_F32).
 */
@inline function accumulateDirect(dot: i32, src: usize, W: i32, Wc: i32, p: i32, pxBytes: usize, k: i32,
  nRows: i32, packed: usize, w: usize, wBlock: usize, zpShifted: i32, chunk: i32, Cout: i32, mult: usize,
  bias: usize, out: usize, outStride: i32, mode: i32, outZp: i32, lo: f32, hi: f32): void {
  const CoutP = (Cout + 7) & ~7;
  const rowBytes = <usize>(Wc + 2 * p) * pxBytes;
  const runBytes = <usize>k * pxBytes;
  const chunkBytes = <usize>chunk << 2;
  const es = outElemShift(mode);
  const outPx: usize = <usize>outStride << es;
  const nPix = W < 4 ? W : 4;
  const lastX = W < 4 ? 0 : W - 4;
  const lov = f32x4.splat(lo);
  const hiv = f32x4.splat(hi);
  const mz = i32x4.splat(MAGIC_BITS - outZp);
  const zv = i32x4.splat(zpShifted);
  // All weight blocks small enough for L1 (e.g. a 1×1 128→64 layer: 16 KiB of i16 weights): pixel blocks outer,
  // output-channel blocks inner, so a block's 4 input pixels stay in L1 across all of them (the other order re-reads
  // the whole prepared row from L2 once per 8 output channels — about 1.04× slower on a 1×1 128→64 layer).
  if (<usize>(CoutP >> 3) * wBlock <= SMALL_WEIGHTS) {
    for (let r = 0; r < nRows; r++) {
      const rowIn = src + <usize>r * rowBytes;
      const rowOut = out + <usize>r * <usize>W * outPx;
      for (let x = 0; x < W; x += 4) {
        const xs = x > lastX ? lastX : x;
        for (let ob = 0; ob < CoutP; ob += 8) {
          let b0 = v128.load(packed + (<usize>ob << 2));
          let b1 = v128.load(packed + (<usize>ob << 2), 16);
          if (dot != DOT_I16) {
            b0 = i32x4.sub(b0, i32x4.mul(zv, v128.load(packed + (<usize>(CoutP + ob) << 2))));
            b1 = i32x4.sub(b1, i32x4.mul(zv, v128.load(packed + (<usize>(CoutP + ob) << 2), 16)));
          }
          dotBlock(dot, rowIn + <usize>xs * pxBytes, pxBytes, runBytes, rowBytes, k, w + <usize>(ob >> 3) * wBlock, chunkBytes, b0, b1,
            rowOut + (<usize>ob << es) + <usize>xs * outPx, outPx, nPix, min(8, Cout - ob), mode,
            v128.load(mult + (<usize>ob << 2)), v128.load(mult + (<usize>ob << 2), 16), lov, hiv, mz, bias + (<usize>ob << 2));
        }
      }
    }
    return;
  }
  for (let r = 0; r < nRows; r++) {
    const rowIn = src + <usize>r * rowBytes;
    const rowOut = out + <usize>r * <usize>W * outPx;
    for (let ob = 0; ob < CoutP; ob += 8) {
      let b0 = v128.load(packed + (<usize>ob << 2));
      let b1 = v128.load(packed + (<usize>ob << 2), 16);
      if (dot != DOT_I16) {
        b0 = i32x4.sub(b0, i32x4.mul(zv, v128.load(packed + (<usize>(CoutP + ob) << 2))));
        b1 = i32x4.sub(b1, i32x4.mul(zv, v128.load(packed + (<usize>(CoutP + ob) << 2), 16)));
      }
      const m0 = v128.load(mult + (<usize>ob << 2));
      const m1 = v128.load(mult + (<usize>ob << 2), 16);
      const fb = bias + (<usize>ob << 2);
      const wb = w + <usize>(ob >> 3) * wBlock;
      const nValid = min(8, Cout - ob);
      const d = rowOut + (<usize>ob << es);
      for (let x = 0; x < W; x += 4) {
        const xs = x > lastX ? lastX : x;
        dotBlock(dot, rowIn + <usize>xs * pxBytes, pxBytes, runBytes, rowBytes, k, wb, chunkBytes, b0, b1,
          d + <usize>xs * outPx, outPx, nPix, nValid, mode, m0, m1, lov, hiv, mz, fb);
      }
    }
  }
}

/**
 * The i16 direct path on rows from prepareI16 (or any i16 rows of that geometry, e.g. the LUT-decoded rows of
 * ./qlut-qc16w-conv-nhwc.ts): `packed` in the qs8 layout (int32 accumulator start at 0, the w16 section at
 * 8·CoutP). `bias`: f32 biases for OUT_F32 (else unused).
 */
export function accumulateI16(src: usize, W: i32, Wc: i32, p: i32, Cin2: i32, k: i32, nRows: i32,
  packed: usize, Cout: i32, mult: usize, bias: usize, out: usize, outStride: i32, mode: i32,
  outZp: i32, lo: f32, hi: f32): void {
  const CoutP = (Cout + 7) & ~7;
  accumulateDirect(DOT_I16, src, W, Wc, p, <usize>Cin2 << 1, k, nRows, packed, packed + w16Offset(CoutP),
    w16BlockBytes(k, Cin2), 0, 0, Cout, mult, bias, out, outStride, mode, outZp, lo, hi);
}

/**
 * Relaxed-SIMD twin of accumulateI16 on u8 codes 0..127 (compiled only into the relaxed build): chunk ≥ 2 →
 * DOT_U7_ACC16 with chunk steps per i16 partial sum, else DOT_U7.
 */
function accumulateU7(src: usize, W: i32, Wc: i32, p: i32, Cin4: i32, k: i32, nRows: i32, zpShifted: i32,
  packed: usize, w8: usize, Cout: i32, mult: usize, out: usize, outStride: i32, mode: i32,
  outZp: i32, lo: f32, hi: f32, chunk: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    if (chunk >= 2) {
      accumulateDirect(DOT_U7_ACC16, src, W, Wc, p, <usize>Cin4, k, nRows, packed, w8, w8BlockBytes(k, Cin4),
        zpShifted, chunk, Cout, mult, 0, out, outStride, mode, outZp, lo, hi);
    } else {
      accumulateDirect(DOT_U7, src, W, Wc, p, <usize>Cin4, k, nRows, packed, w8, w8BlockBytes(k, Cin4),
        zpShifted, 0, Cout, mult, 0, out, outStride, mode, outZp, lo, hi);
    }
  }
}

// ------------------------------------------- Winograd F(2,3) along x (k = 3) -----------------------------
//
// For one kernel row kh and one channel, two neighbouring outputs of a 3-tap correlation over the padded
// inputs d0..d3 (d_i = x − z at padded column 2t + i of tile t) are, with the weights g0..g2 of that row
// (Lavin & Gray's F(2,3), scaled by 2 so that every value is an integer):
//
//   V0 = d0 − d2   V1 = d1 + d2   V2 = d2 − d1   V3 = d1 − d3                (input transform, |V| ≤ 2·max|d|)
//   U0 = 2·g0      U1 = g0+g1+g2  U2 = g0−g1+g2  U3 = 2·g2                   (weight transform, |U| ≤ 3·max|g|)
//   M_j = Σ_{kh,c} U_j·V_j                                                    (4 independent int32 GEMMs)
//   2·y0 = M0 + M1 + M2,   2·y1 = M1 − M2 − M3
//
// (check: M0+M1+M2 = 2(d0g0 + d1g1 + d2g2), M1−M2−M3 = 2(d1g0 + d2g1 + d3g2)). 4 multiplies per 2 outputs
// instead of 6 — 1.5× less multiply work, the resource that bounds the direct i16 loop. |V| ≤ 510 and
// |U| ≤ 384 fit i16, so the same i32x4.dot_i16x8_s loop runs the GEMMs. The M_j may wrap in int32; the
// wrapper only picks this path when 2·max|x − z|·Σ|w[o]| < 2^31, so 2·y (exact modulo 2^32) is the true
// value and the arithmetic shift halves it exactly: the accumulator equals the direct path's, bit for bit.
//
// k = 5 splits each kernel row into group A = taps (0, 1) as the 3-tap filter (g0, g1, 0) on tile t and group
// B = taps (2, 3, 4) on tile t + 1 (its inputs start 2 columns later): U^A = [2g0, g0+g1, g0−g1, 0] (M3 gets
// nothing from A), U^B = [2g2, g2+g3+g4, g2−g3+g4, 2g4]. Both groups read the same transformed rows and add
// into the same M_j: 7 multiplies per 2 outputs and kernel row instead of 10 (1.43×).
//
// Prepared band rows: per padded input row, [component j][tile t][Cin2] i16 with Tc = max(⌈W/2⌉, 4) tiles
// (+1 for k = 5; tiles past the image read ring columns, their outputs are never stored). Within a component,
// tiles t and t + 1 are adjacent, so group A then group B of one kernel row is a single run of 2·Cin2 values.

/** 4 tiles × 8 output channels × 4 components of int32 M_j for one block (static: no stack traffic in AS). */
const WINO_M: usize = memory.data(512, 16);

/**
 * Writes the Winograd-transformed rows y0−p … y0−p+nRows−1 into dst (see above); `line` receives one padded
 * i16 row (2·Tc + 2 pixels) first.
 */
function prepareWino(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, zp: i32, signed: bool,
  y0: i32, nRows: i32, p: i32, Tc: i32, Cin2: i32, line: usize, dst: usize): void {
  const pxBytes = <usize>Cin2 << 1;
  const compBytes = <usize>Tc * pxBytes;
  const rowBytes = compBytes << 2;
  for (let r = 0; r < nRows; r++) {
    const y = y0 - p + r;
    const d = dst + <usize>r * rowBytes;
    if (y < 0 || y >= H) {
      memory.fill(d, 0, rowBytes);
      continue;
    }
    prepareI16(input, inStride, H, W, Cin, zp, signed, y + p, 1, p, 2 * Tc + 2 - 2 * p, Cin2, line);
    let s = line;
    let q = d;
    for (let t = 0; t < Tc; t++) {
      let c: usize = 0;
      for (; c + 16 <= pxBytes; c += 16) {
        const d0 = v128.load(s + c);
        const d1 = v128.load(s + pxBytes + c);
        const d2 = v128.load(s + (pxBytes << 1) + c);
        const d3 = v128.load(s + pxBytes * 3 + c);
        v128.store(q + c, i16x8.sub(d0, d2));
        v128.store(q + compBytes + c, i16x8.add(d1, d2));
        v128.store(q + (compBytes << 1) + c, i16x8.sub(d2, d1));
        v128.store(q + compBytes * 3 + c, i16x8.sub(d1, d3));
      }
      for (; c < pxBytes; c += 2) {
        const d0 = <i32>load<i16>(s + c);
        const d1 = <i32>load<i16>(s + pxBytes + c);
        const d2 = <i32>load<i16>(s + (pxBytes << 1) + c);
        const d3 = <i32>load<i16>(s + pxBytes * 3 + c);
        store<i16>(q + c, <i16>(d0 - d2));
        store<i16>(q + compBytes + c, <i16>(d1 + d2));
        store<i16>(q + (compBytes << 1) + c, <i16>(d2 - d1));
        store<i16>(q + compBytes * 3 + c, <i16>(d1 - d3));
      }
      s += pxBytes << 1;
      q += pxBytes;
    }
  }
}

/**
 * Output rows of a k = 3 or 5 conv from Winograd-prepared rows: per row, per block of 8 output channels, per
 * block of 4 tiles (8 output pixels; the last block overlaps the previous one): the 4 GEMMs M_j into WINO_M
 * with the register block of the direct path (dotBlock), then the output transform, bias, and requantize/store.
 */
function accumulateWino(src: usize, W: i32, k: i32, Tc: i32, Cin2: i32, nRows: i32,
  packed: usize, wino: usize, Cout: i32, mult: usize, out: usize, outStride: i32, mode: i32,
  outZp: i32, lo: f32, hi: f32): void {
  const CoutP = (Cout + 7) & ~7;
  const pxBytes = <usize>Cin2 << 1;
  const compBytes = <usize>Tc * pxBytes;
  const rowBytes = compBytes << 2;
  const wBlock = winoBlockBytes(k, Cin2);
  const es = outElemShift(mode);
  const outPx: usize = <usize>outStride << es;
  const nT = (W + 1) >> 1;
  const lastT = (nT < 4 ? 4 : nT) - 4;
  // k = 5: components 0..2 run over groups A and B (tiles t, t + 1), component 3 over B only.
  const runAll: usize = k == 5 ? pxBytes << 1 : pxBytes;
  const skip3: usize = k == 5 ? pxBytes : 0;
  const lov = f32x4.splat(lo);
  const hiv = f32x4.splat(hi);
  const mz = i32x4.splat(MAGIC_BITS - outZp);
  const zero = i32x4.splat(0);
  for (let r = 0; r < nRows; r++) {
    const rowIn = src + <usize>r * rowBytes;
    const rowOut = out + <usize>r * <usize>W * outPx;
    for (let ob = 0; ob < CoutP; ob += 8) {
      const b0 = v128.load(packed + (<usize>ob << 2));
      const b1 = v128.load(packed + (<usize>ob << 2), 16);
      const m0 = v128.load(mult + (<usize>ob << 2));
      const m1 = v128.load(mult + (<usize>ob << 2), 16);
      const wb = wino + <usize>(ob >> 3) * wBlock;
      const nValid = min(8, Cout - ob);
      for (let t = 0; t < nT; t += 4) {
        const ts = t > lastT ? lastT : t;
        let pw = wb;
        // WINO_M layout: [tile i][component j][half h] v128, i.e. pixel i of the block at WINO_M + 128·i.
        for (let j = 0; j < 4; j++) {
          pw = dotBlock(DOT_I16, rowIn + <usize>j * compBytes + <usize>ts * pxBytes + (j == 3 ? skip3 : 0), pxBytes,
            j == 3 ? pxBytes : runAll, rowBytes, k, pw, 0, zero, zero, WINO_M + (<usize>j << 5), 128, 4, 8, OUT_I32,
            zero, zero, zero, zero, zero, 0);
        }
        for (let i = 0; i < 4; i++) {
          const x = (ts + i) << 1;
          if (x >= W) break;
          const mi = WINO_M + (<usize>i << 7);
          const p0 = v128.load(mi, 0), p1 = v128.load(mi, 32), p2 = v128.load(mi, 64), p3 = v128.load(mi, 96);
          const q0 = v128.load(mi, 16), q1 = v128.load(mi, 48), q2 = v128.load(mi, 80), q3 = v128.load(mi, 112);
          const d = rowOut + <usize>x * outPx + (<usize>ob << es);
          storePixel(i32x4.add(i32x4.shr_s(i32x4.add(i32x4.add(p0, p1), p2), 1), b0),
            i32x4.add(i32x4.shr_s(i32x4.add(i32x4.add(q0, q1), q2), 1), b1), d, nValid, mode, m0, m1, lov, hiv, mz, 0);
          if (x + 1 < W) {
            storePixel(i32x4.add(i32x4.shr_s(i32x4.sub(i32x4.sub(p1, p2), p3), 1), b0),
              i32x4.add(i32x4.shr_s(i32x4.sub(i32x4.sub(q1, q2), q3), 1), b1), d + outPx, nValid, mode, m0, m1, lov, hiv, mz, 0);
          }
        }
      }
    }
  }
}

// ------------------------------------------- driver -------------------------------------------------------

/**
 * The whole conv: in bands of `bandRows` output rows, prepare the band's padded input rows into `scratch`
 * (see qs8ConvScratchBytes in the wrapper), then accumulate + requantize them. `relaxed` ≥ 1 selects the
 * relaxed ≤7-bit path (the caller guarantees codes 0..2^b−1 unsigned or −2^(b−1)..2^(b−1)−1 signed, b = `inBits`):
 * 1 → i32 relaxed dot, ≥ 2 → i16 partial sums over `relaxed` quads (DOT_U7_ACC16). The simd build ignores
 * it. `relaxed` = −1 selects the Winograd F(2,3) i16 path (k = 3 or 5; the wrapper checks its range condition).
 * `inSigned` ≠ 0: the input bytes are int8 codes, else uint8.
 */
export function qs8ConvNhwc(input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: i32,
  k: i32, packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32, mode: i32,
  scratch: usize, bandRows: i32, relaxed: i32, inBits: i32): void {
  const p = (k - 1) >> 1;
  const Wc = W < 4 ? 4 : W;
  const outPx: usize = <usize>outStride << outElemShift(mode);
  const CoutP = (Cout + 7) & ~7;
  const Cin2 = (Cin + 1) & ~1;
  const Cin4 = (Cin + 3) & ~3;
  const lo = <f32>(qmin - outZp);
  const hi = <f32>(qmax - outZp);
  if (relaxed < 0 && (k == 3 || k == 5)) {
    const nT = (W + 1) >> 1;
    const Tc = (nT < 4 ? 4 : nT) + (k == 5 ? 1 : 0);
    const wino = packed + w16Offset(CoutP) + <usize>(CoutP >> 3) * (w16BlockBytes(k, Cin2) + w8BlockBytes(k, Cin4));
    const line = scratch + <usize>(bandRows + 2 * p) * (<usize>(Tc * Cin2) << 3);
    for (let y0 = 0; y0 < H; y0 += bandRows) {
      const n = min(bandRows, H - y0);
      prepareWino(input, inStride, H, W, Cin, inZp, inSigned != 0, y0, n + 2 * p, p, Tc, Cin2, line, scratch);
      accumulateWino(scratch, W, k, Tc, Cin2, n, packed, wino, Cout, mult, output + <usize>y0 * <usize>W * outPx,
        outStride, mode, outZp, lo, hi);
    }
    return;
  }
  for (let y0 = 0; y0 < H; y0 += bandRows) {
    const n = min(bandRows, H - y0);
    const dst = output + <usize>y0 * <usize>W * outPx;
    if (ASC_FEATURE_RELAXED_SIMD && relaxed > 0) {
      // Signed b-bit codes −2^(b−1)..2^(b−1)−1 move to 0..2^b−1 (x − z is unchanged when both shift).
      const shift = inSigned != 0 ? 1 << (inBits - 1) : 0;
      prepareU7(input, inStride, H, W, Cin, shift, inZp + shift, y0, n + 2 * p, p, Wc, Cin4, scratch);
      const w8 = packed + w16Offset(CoutP) + <usize>(CoutP >> 3) * w16BlockBytes(k, Cin2);
      accumulateU7(scratch, W, Wc, p, Cin4, k, n, inZp + shift, packed, w8, Cout, mult, dst, outStride, mode, outZp, lo, hi, relaxed);
    } else {
      prepareI16(input, inStride, H, W, Cin, inZp, inSigned != 0, y0, n + 2 * p, p, Wc, Cin2, scratch);
      accumulateI16(scratch, W, Wc, p, Cin2, k, n, packed, Cout, mult, 0, dst, outStride, mode, outZp, lo, hi);
    }
  }
}

/**
 * The direct conv with its neighbours fused in (the plan's "concat in, residual add out"; export:
 * ./qs8-qc8w-conv-fused-nhwc.ts). Input: the concat of the nSeg segments at `segs` on the grid (inZp, [inQmin,
 * inQmax]), prepared by prepareGather — a plain input is one identity segment. Output: the conv's codes
 * (res = 0; grid outZp, [qmin, qmax], `signed` codes), or with res ≠ 0 the codes of add(conv, residual) (OUT_ADD:
 * the residual at res has the output's pixel stride; the conv's own grid is outZp, [qmin, qmax], the add's
 * addZp, [addQmin, addQmax], residual and output `signed` alike). Bit-identical to requantize-copies → conv →
 * q8_add_nhwc. Direct loops only (i16; relaxed ≥ 1 as qs8ConvNhwc): the Winograd paths prepare differently.
 */
export function qs8ConvFusedNhwc(segs: usize, nSeg: i32, inSigned: i32, H: i32, W: i32, Cin: i32,
  inZp: i32, inQmin: i32, inQmax: i32, k: i32, packed: usize, Cout: i32, mult: usize,
  output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32,
  res: usize, resZp: i32, mConv: f32, mRes: f32, addZp: i32, addQmin: i32, addQmax: i32, signed: i32,
  scratch: usize, bandRows: i32, relaxed: i32, inBits: i32): void {
  const p = (k - 1) >> 1;
  const Wc = W < 4 ? 4 : W;
  const CoutP = (Cout + 7) & ~7;
  const Cin2 = (Cin + 1) & ~1;
  const Cin4 = (Cin + 3) & ~3;
  const lo = <f32>(qmin - outZp);
  const hi = <f32>(qmax - outZp);
  const gLo = <f32>(inQmin - inZp);
  const gHi = <f32>(inQmax - inZp);
  let mode = signed != 0 ? OUT_S8 : OUT_U8;
  if (res != 0) {
    mode = OUT_ADD;
    addDelta = <isize>res - <isize>output;
    addSigned = signed != 0;
    setAddConstants(mConv, mRes, resZp, <f32>(addQmin - addZp), <f32>(addQmax - addZp), addZp);
  }
  for (let y0 = 0; y0 < H; y0 += bandRows) {
    const n = min(bandRows, H - y0);
    const dst = output + <usize>y0 * <usize>W * <usize>outStride;
    if (ASC_FEATURE_RELAXED_SIMD && relaxed > 0) {
      const shift = inSigned != 0 ? 1 << (inBits - 1) : 0;
      prepareGather(segs, nSeg, inSigned != 0, H, W, inZp, gLo, gHi, y0, n + 2 * p, p, Wc, Cin4, true, shift, scratch);
      const w8 = packed + w16Offset(CoutP) + <usize>(CoutP >> 3) * w16BlockBytes(k, Cin2);
      accumulateU7(scratch, W, Wc, p, Cin4, k, n, inZp + shift, packed, w8, Cout, mult, dst, outStride, mode, outZp, lo, hi, relaxed);
    } else {
      prepareGather(segs, nSeg, inSigned != 0, H, W, inZp, gLo, gHi, y0, n + 2 * p, p, Wc, Cin2, false, 0, scratch);
      accumulateI16(scratch, W, Wc, p, Cin2, k, n, packed, Cout, mult, 0, dst, outStride, mode, outZp, lo, hi);
    }
  }
}
