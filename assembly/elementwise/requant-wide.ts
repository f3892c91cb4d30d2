// Requantized add and requantize for a 16-bit integer residual stream: the
// 8-bit kernels of requant-add.ts (q8_add_nhwc) and concat.ts
// (q8_requantize_nhwc), unsigned only, with each operand (and the output)
// either u8 or u16 codes (asymmetric, zero point z, output range [qmin, qmax]
// ⊂ [0, 65535]). Every pointer is a byte address; every stride is in ELEMENTS
// (codes): element (p, ch) of a is at a + (p·aStride + ch)·(aWide ? 2 : 1).
// u16 codes are little-endian (WASM memory order).
//
// q16_add_nhwc — real values a_r = sa·(a - za), b_r = sb·(b - zb); the output code is
//   out = clamp(round(ma·(a - za) + mb·(b - zb)) + zo),  ma = fround(sa/so), mb = fround(sb/so)
// (multipliers computed once by the wrapper). Per element, the exact f32 sequence of q8_add_nhwc:
//   t = f32(ma·f32(a - za)) + f32(mb·f32(b - zb))      two f32 products, one f32 add (no FMA,
//                                                     so both builds give the same bits)
//   t = clamp(t, qmin - zo, qmax - zo); out = roundHalfEven(t) + zo   (ABI epilogue)
// q16_requantize_nhwc — the sequence of q8_requantize_nhwc:
//   t = clamp(f32(m·f32(x - zx)), qmin - zy, qmax - zy); y = roundHalfEven(t) + zy,  m = fround(sx/sy)
//
// Exactness. a - za, b - zb, x - zx are integers with |·| ≤ 65535 < 2^24, so the i32 → f32
// conversions are exact and the only errors are the roundings of the f32 ops: with P = ma·(a - za),
// Q = mb·(b - zb) (exact reals), the add's computed t is within 2^-24·(|P| + |Q| + |P + Q|)·(1 + 2^-23)
// of P + Q — when |P|, |Q| < 2^16 three half-ulps of at most 2^-9, 2^-9, 2^-8, i.e. ≤ 2^-7 absolute
// (the 8-bit kernels: ≤ 2^-14 at |t| ≤ 2^9). The requantize has one rounding: ≤ 2^-9 for |m·(x - zx)|
// < 2^16 (larger values clamp). So a code can differ from the exact-arithmetic result (given the f32
// multipliers) only when the true value is within that distance of a .5 tie; NaN (∞ - ∞ from absurd
// multipliers, rejected by the wrapper) clamps to qmin. The kernels are *defined* by the f32 sequence;
// the TS reference (src/kernels/ref/requant-wide.ts) repeats it with Math.fround, bit for bit.
// Rounding: after the clamp |t| ≤ 65535 < 2^22, so t + MAGIC (1.5·2^23) lies in [2^23, 2^24) where the
// f32 ulp is 1: the add rounds t half to even and bits(t + MAGIC) - MAGIC_BITS = round(t).
// Packing: round(t) + zo ∈ [qmin, qmax] ⊂ [0, 65535], so the unsigned saturating narrows
// i32 → u16 (i16x8.narrow_i32x4_u) and, for u8 outputs (qmax ≤ 255, checked by the wrapper),
// u16 → u8 (i8x16.narrow_i16x8_u) are exact — no bias trick is needed (unsigned only).
//
// SIMD: 16 elements per iteration (u8 rows: 8 codes per v128.load8x8_u; u16 rows: one v128.load of
// 8 codes; then i32x4.extend_low/high_i16x8_u), scalar tail; dense tensors (all strides == c) run as
// one row of n·c elements. Each width combination is its own instantiation (generic over u8 / u16,
// the width branches fold at compile time). In place: y may be a (or b) with the same pointer,
// stride and width — every 16-element block is loaded before it is stored, the tail goes element by
// element. (Chains of adds of more than two inputs accumulate into y = a.)
import { MAGIC, MAGIC_BITS, clampF, roundMagic } from "./common";

/** 8 codes i..i+7 of a u8 (T = u8) or u16 (T = u16) row, zero-extended to i16x8 lanes. */
@inline function load8<T>(p: usize, i: i32): v128 {
  if (sizeof<T>() == 1) return v128.load8x8_u(p + <usize>i);
  return v128.load(p + (<usize>i << 1));
}

/** One code of a u8 / u16 row as i32. */
@inline function loadOne<T>(p: usize, i: i32): i32 {
  if (sizeof<T>() == 1) return <i32>load<u8>(p + <usize>i);
  return <i32>load<u16>(p + (<usize>i << 1));
}

/** Stores one code (in [0, 255] for u8 rows, [0, 65535] for u16 rows). */
@inline function storeOne<T>(p: usize, i: i32, q: i32): void {
  if (sizeof<T>() == 1) store<u8>(p + <usize>i, <u8>q);
  else store<u16>(p + (<usize>i << 1), <u16>q);
}

/**
 * The 16 clamped f32 lanes v0..v3 → codes i..i+15: round half to even and add zp (vsub =
 * MAGIC_BITS - zp), narrow unsigned (exact: every code lies in [qmin, qmax] of the row type).
 */
@inline function packStore16<T>(p: usize, i: i32, v0: v128, v1: v128, v2: v128, v3: v128, vmagic: v128, vsub: v128): void {
  const q0 = i32x4.sub(f32x4.add(v0, vmagic), vsub);
  const q1 = i32x4.sub(f32x4.add(v1, vmagic), vsub);
  const q2 = i32x4.sub(f32x4.add(v2, vmagic), vsub);
  const q3 = i32x4.sub(f32x4.add(v3, vmagic), vsub);
  const w0 = i16x8.narrow_i32x4_u(q0, q1), w1 = i16x8.narrow_i32x4_u(q2, q3);
  if (sizeof<T>() == 1) {
    v128.store(p + <usize>i, i8x16.narrow_i16x8_u(w0, w1));
  } else {
    const o = p + (<usize>i << 1);
    v128.store(o, w0);
    v128.store(o + 16, w1);
  }
}

/** f32(m·f32(w - z)) for 4 zero-extended codes w (i32x4). */
@inline function scaled(w: v128, vz: v128, vm: v128): v128 {
  return f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(w, vz)), vm);
}

function addRows<A, B, Y>(
  a: usize, b: usize, n: i32, c: i32, aStride: i32, bStride: i32, y: usize, yStride: i32,
  za: i32, zb: i32, ma: f32, mb: f32, zo: i32, qmin: i32, qmax: i32
): void {
  let runs = n, len = c;
  if (aStride == c && bStride == c && yStride == c) { runs = 1; len = n * c; }
  const lo = <f32>(qmin - zo), hi = <f32>(qmax - zo);
  const vza = i32x4.splat(za), vzb = i32x4.splat(zb);
  const vma = f32x4.splat(ma), vmb = f32x4.splat(mb), vlo = f32x4.splat(lo), vhi = f32x4.splat(hi);
  const vmagic = f32x4.splat(MAGIC), vsub = i32x4.splat(MAGIC_BITS - zo);
  for (let p = 0; p < runs; p++) {
    const ap = a + <usize>p * <usize>aStride * sizeof<A>();
    const bp = b + <usize>p * <usize>bStride * sizeof<B>();
    const yp = y + <usize>p * <usize>yStride * sizeof<Y>();
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const xa0 = load8<A>(ap, i), xa1 = load8<A>(ap, i + 8);
      const xb0 = load8<B>(bp, i), xb1 = load8<B>(bp, i + 8);
      const t0 = f32x4.add(scaled(i32x4.extend_low_i16x8_u(xa0), vza, vma), scaled(i32x4.extend_low_i16x8_u(xb0), vzb, vmb));
      const t1 = f32x4.add(scaled(i32x4.extend_high_i16x8_u(xa0), vza, vma), scaled(i32x4.extend_high_i16x8_u(xb0), vzb, vmb));
      const t2 = f32x4.add(scaled(i32x4.extend_low_i16x8_u(xa1), vza, vma), scaled(i32x4.extend_low_i16x8_u(xb1), vzb, vmb));
      const t3 = f32x4.add(scaled(i32x4.extend_high_i16x8_u(xa1), vza, vma), scaled(i32x4.extend_high_i16x8_u(xb1), vzb, vmb));
      packStore16<Y>(yp, i,
        f32x4.pmin(vhi, f32x4.pmax(vlo, t0)), f32x4.pmin(vhi, f32x4.pmax(vlo, t1)),
        f32x4.pmin(vhi, f32x4.pmax(vlo, t2)), f32x4.pmin(vhi, f32x4.pmax(vlo, t3)),
        vmagic, vsub);
    }
    for (; i < len; i++) {
      const ta = <f32>(loadOne<A>(ap, i) - za) * ma;
      const tb = <f32>(loadOne<B>(bp, i) - zb) * mb;
      storeOne<Y>(yp, i, roundMagic(clampF(ta + tb, lo, hi)) + zo);
    }
  }
}

/**
 * y = requantized a + b. a, b, y: unsigned codes, u16 when the matching *Wide flag is set, else u8;
 * byte pointers, pixel strides in elements; the output range is [qmin, qmax] (⊂ [0, 255] when y is u8).
 * ma = fround(sa/so), mb = fround(sb/so). y may alias a or b exactly (same pointer, stride and width).
 */
export function q16_add_nhwc(
  a: usize, b: usize, n: i32, c: i32, aStride: i32, bStride: i32, y: usize, yStride: i32,
  za: i32, zb: i32, ma: f32, mb: f32, zo: i32, qmin: i32, qmax: i32, aWide: i32, bWide: i32, yWide: i32
): void {
  // A u8 a with a u16 b runs as b + a: f32 addition is commutative (bit for bit), so the
  // result is the same and three input-width instantiations cover all four combinations.
  if (!aWide && bWide) {
    if (yWide) addRows<u16, u8, u16>(b, a, n, c, bStride, aStride, y, yStride, zb, za, mb, ma, zo, qmin, qmax);
    else addRows<u16, u8, u8>(b, a, n, c, bStride, aStride, y, yStride, zb, za, mb, ma, zo, qmin, qmax);
  } else if (aWide && bWide) {
    if (yWide) addRows<u16, u16, u16>(a, b, n, c, aStride, bStride, y, yStride, za, zb, ma, mb, zo, qmin, qmax);
    else addRows<u16, u16, u8>(a, b, n, c, aStride, bStride, y, yStride, za, zb, ma, mb, zo, qmin, qmax);
  } else if (aWide) {
    if (yWide) addRows<u16, u8, u16>(a, b, n, c, aStride, bStride, y, yStride, za, zb, ma, mb, zo, qmin, qmax);
    else addRows<u16, u8, u8>(a, b, n, c, aStride, bStride, y, yStride, za, zb, ma, mb, zo, qmin, qmax);
  } else {
    if (yWide) addRows<u8, u8, u16>(a, b, n, c, aStride, bStride, y, yStride, za, zb, ma, mb, zo, qmin, qmax);
    else addRows<u8, u8, u8>(a, b, n, c, aStride, bStride, y, yStride, za, zb, ma, mb, zo, qmin, qmax);
  }
}

function requantizeRows<X, Y>(
  x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32,
  zx: i32, m: f32, zy: i32, qmin: i32, qmax: i32
): void {
  let runs = n, len = c;
  if (xStride == c && yStride == c) { runs = 1; len = n * c; }
  const lo = <f32>(qmin - zy), hi = <f32>(qmax - zy);
  const vzx = i32x4.splat(zx), vm = f32x4.splat(m), vlo = f32x4.splat(lo), vhi = f32x4.splat(hi);
  const vmagic = f32x4.splat(MAGIC), vsub = i32x4.splat(MAGIC_BITS - zy);
  for (let p = 0; p < runs; p++) {
    const xp = x + <usize>p * <usize>xStride * sizeof<X>();
    const yp = y + <usize>p * <usize>yStride * sizeof<Y>();
    let i = 0;
    for (; i + 16 <= len; i += 16) {
      const x0 = load8<X>(xp, i), x1 = load8<X>(xp, i + 8);
      const t0 = f32x4.pmin(vhi, f32x4.pmax(vlo, scaled(i32x4.extend_low_i16x8_u(x0), vzx, vm)));
      const t1 = f32x4.pmin(vhi, f32x4.pmax(vlo, scaled(i32x4.extend_high_i16x8_u(x0), vzx, vm)));
      const t2 = f32x4.pmin(vhi, f32x4.pmax(vlo, scaled(i32x4.extend_low_i16x8_u(x1), vzx, vm)));
      const t3 = f32x4.pmin(vhi, f32x4.pmax(vlo, scaled(i32x4.extend_high_i16x8_u(x1), vzx, vm)));
      packStore16<Y>(yp, i, t0, t1, t2, t3, vmagic, vsub);
    }
    for (; i < len; i++) {
      const t = clampF(<f32>(loadOne<X>(xp, i) - zx) * m, lo, hi);
      storeOne<Y>(yp, i, roundMagic(t) + zy);
    }
  }
}

/**
 * Requantizes unsigned codes x (u16 if xWide, else u8) of scale sx, zero point zx to the output's
 * (sy, zy): m = fround(sx/sy). y: u16 if yWide, else u8; range [qmin, qmax]. Strides in elements.
 */
export function q16_requantize_nhwc(
  x: usize, n: i32, c: i32, xStride: i32, y: usize, yStride: i32,
  zx: i32, m: f32, zy: i32, qmin: i32, qmax: i32, xWide: i32, yWide: i32
): void {
  if (xWide) {
    if (yWide) requantizeRows<u16, u16>(x, n, c, xStride, y, yStride, zx, m, zy, qmin, qmax);
    else requantizeRows<u16, u8>(x, n, c, xStride, y, yStride, zx, m, zy, qmin, qmax);
  } else {
    if (yWide) requantizeRows<u8, u16>(x, n, c, xStride, y, yStride, zx, m, zy, qmin, qmax);
    else requantizeRows<u8, u8>(x, n, c, xStride, y, yStride, zx, m, zy, qmin, qmax);
  }
}
