// Shared inline helpers of the elementwise / data-movement kernels. Not
// re-exported from assembly/index.ts: nothing here becomes a WASM export.

/** 1.5·2^23: adding it to an f32 |v| < 2^22 leaves round-half-even(v) in the low mantissa bits. */
export const MAGIC: f32 = 12582912.0;
/** Bit pattern of MAGIC as i32; bits(v + MAGIC) - MAGIC_BITS = round(v). */
export const MAGIC_BITS: i32 = 0x4b400000;

/**
 * Byte packing without a signedness branch. A code q in [qmin, qmax] ⊂ [-128, 255]
 * (a u8 range when qmin >= 0, an i8 range otherwise) is stored as its low byte.
 * With `outBias` = 128 when qmin >= 0, else 0, q - outBias lies in [-128, 127],
 * so a signed saturating narrow is exact, and xor 0x80 (resp. 0) restores the
 * low byte of q. The bias is folded into the rounding constant, so packing
 * costs one xor per 16 outputs.
 */
@inline export function outBias(qmin: i32): i32 {
  return qmin >= 0 ? 128 : 0;
}

/**
 * The mirror trick on loads: an unsigned byte xor 0x80, read as i8, is x - 128,
 * so every 8-bit load is one xor + signed extend, and the -128 is folded into
 * the zero point (inFlip = 0x80, zp' = zp - 128 for u8; 0 and zp for i8).
 */
@inline export function inFlip(signed: i32): i32 {
  return signed ? 0 : 0x80;
}

/** Loads one 8-bit code (u8 or i8 by `signed`) as i32. */
@inline export function loadCode(p: usize, signed: i32): i32 {
  return signed ? <i32>load<i8>(p) : <i32>load<u8>(p);
}

/** f32 clamp with NaN → lo (pmax/pmin semantics, matched by the TS references). */
@inline export function clampF(v: f32, lo: f32, hi: f32): f32 {
  v = lo < v ? v : lo;
  return v < hi ? v : hi;
}

/** Rounds an f32 |v| < 2^22 half to even (magic number; same bits as Math.fround in TS). */
@inline export function roundMagic(v: f32): i32 {
  return reinterpret<i32>(v + MAGIC) - MAGIC_BITS;
}

/**
 * The 16 f32 lanes v0..v3 (already clamped to [qmin-zp, qmax-zp]) → 16 bytes:
 * round half to even, add zp, subtract the packing bias (all in `sub` =
 * MAGIC_BITS - zp + bias), narrow, restore the low byte with `flip`.
 */
@inline export function packRound16(v0: v128, v1: v128, v2: v128, v3: v128, vmagic: v128, vsub: v128, vflip: v128): v128 {
  const q0 = i32x4.sub(f32x4.add(v0, vmagic), vsub);
  const q1 = i32x4.sub(f32x4.add(v1, vmagic), vsub);
  const q2 = i32x4.sub(f32x4.add(v2, vmagic), vsub);
  const q3 = i32x4.sub(f32x4.add(v3, vmagic), vsub);
  const w0 = i16x8.narrow_i32x4_s(q0, q1);
  const w1 = i16x8.narrow_i32x4_s(q2, q3);
  return v128.xor(i8x16.narrow_i16x8_s(w0, w1), vflip);
}

/**
 * Copies n bytes (non-overlapping). Long runs go to memory.copy (a host
 * memmove); short runs — a pixel of a few channels — are v128/u64/u32/u8
 * moves, cheaper than the memory.copy call.
 */
@inline export function copyBytes(d: usize, s: usize, n: usize): void {
  if (n >= 256) {
    memory.copy(d, s, n);
    return;
  }
  let i: usize = 0;
  for (; i + 16 <= n; i += 16) v128.store(d + i, v128.load(s + i));
  if (i + 8 <= n) {
    store<u64>(d + i, load<u64>(s + i));
    i += 8;
  }
  if (i + 4 <= n) {
    store<u32>(d + i, load<u32>(s + i));
    i += 4;
  }
  for (; i < n; i++) store<u8>(d + i, load<u8>(s + i));
}

/** 16 codes (already xor-flipped to i8) → four i32x4 (lanes 0-3, 4-7, 8-11, 12-15). */
@inline export function widen0(b: v128): v128 { return i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(b)); }
@inline export function widen1(b: v128): v128 { return i32x4.extend_high_i16x8_s(i16x8.extend_low_i8x16_s(b)); }
@inline export function widen2(b: v128): v128 { return i32x4.extend_low_i16x8_s(i16x8.extend_high_i8x16_s(b)); }
@inline export function widen3(b: v128): v128 { return i32x4.extend_high_i16x8_s(i16x8.extend_high_i8x16_s(b)); }

