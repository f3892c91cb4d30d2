// Activation code quantizers of the dynamically quantized convs (f32 NHWC with pixel stride → u8 codes) and
// the post-ReLU count statistic. Wrappers: src/kernels/act-codes.ts; references: src/kernels/ref/act-codes.ts.
// Every f32 step is one IEEE op (no FMA), so the TS references with Math.fround match bit for bit. Channel
// tails run the same vector code on splatted lanes, so there is one arithmetic, not two.
//
// DAQ (spec daq.md §3), per channel c with the wrapper's f32 constants μ_c, invΔ_c = f32(1/Δ_c),
// half_c = 2^(b_c−1), kmax_c = 2^(b_c) − 1:
//   signed (midrise):  t = f32(f32(x − μ_c)·invΔ_c);  k = clamp(⌊t⌋ + half_c, 0, kmax_c)
//   post-ReLU ('int'): t = f32(x·invΔ_c);             k = clamp(round_half_even(t), 0, kmax_c)
// ⌊t⌋ / round are exact in f32, then a saturating f32 → i32 convert; the clamp happens on ⌊t⌋ against
// [−half_c, kmax_c − half_c] *before* adding half_c, so a saturated 2^31 − 1 cannot wrap.
// Defined corner cases: invΔ_c = 0 (Δ = 0 or σ' ≤ 0 clamped) gives t = ±0 → the middle code half_c (its
// dequantized value is μ_c) / code 0 (post-ReLU); NaN input (and ±∞·0) → t = NaN → the saturating convert
// gives 0 → the same codes half_c / 0, i.e. NaN is quantized like x = μ_c. ±∞ with invΔ > 0 → 0 or kmax_c.
//
// DFSQ threshold quantizer (dfsq.md §3, §7.2): per channel a sorted, de-duplicated codebook u_0 < … < u_{n−1}
// (integers in [−1024, 1024], units of 1/1024 of m_c), and
//   v = f32(f32(x − μ_c)·invM_c)·2048           (exact: a power-of-two scaling; overflow → ±∞ clamps alike)
//   code = #{j : T'_j < v},  T'_j = u_j + u_{j+1}  (the midpoints, in units of 1/2048; ties → the lower point)
// Table form (proof). Every T'_j is an integer, and for an integer T and a real v:
//   T < v  ⟺  T < ⌈v⌉        (⇒: T < v ≤ ⌈v⌉;  ⇐: T ≤ ⌈v⌉ − 1 < v, as ⌈v⌉ − 1 < v by definition of ⌈·⌉)
// so code = #{j : T'_j < ⌈v⌉} depends on the integer ⌈v⌉ only. Since −2047 ≤ T'_j ≤ 2047 (two distinct
// points of [−1024, 1024]), every ⌈v⌉ ≤ −2048 counts 0 thresholds and every ⌈v⌉ ≥ 2048 counts all of them, so
// clamping ⌈v⌉ to [−2048, 2049] changes nothing, and
//   code = cnt_c[clamp(⌈v⌉, −2048, 2049) + 2048],   cnt_c[i] = #{j : T'_j < i − 2048}   (4098 u8 entries)
// (subsetCodeTable builds cnt once per layer). NaN → saturating convert 0 → cnt_c[2048], the code of x = μ_c.

/** Writes the 4 low bytes of 4 i32 lanes (each 0..255) to dst. */
@inline function store4(dst: usize, k: v128): void {
  const h = i16x8.narrow_i32x4_s(k, k);
  v128.store32_lane(dst, i8x16.narrow_i16x8_u(h, h), 0);
}

@inline function daqSigned(x: v128, mu: v128, inv: v128, half: v128, lo: v128, hi: v128): v128 {
  const t = f32x4.mul(f32x4.sub(x, mu), inv);
  const f = i32x4.trunc_sat_f32x4_s(f32x4.floor(t));
  return i32x4.add(i32x4.min_s(i32x4.max_s(f, lo), hi), half);
}

@inline function daqRelu(x: v128, inv: v128, kmax: v128, zero: v128): v128 {
  const r = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(x, inv)));
  return i32x4.min_s(i32x4.max_s(r, zero), kmax);
}

/**
 * DAQ codes. x: f32 [n pixels × c], pixel stride xStride elements; mu, invDelta: f32[c]; half, kmax: i32[c]
 * (half = 2^(b−1), kmax = 2^b − 1, b ≤ 8); postRelu ≠ 0: the post-ReLU branch (mu unused, half unused);
 * out: u8 codes, pixel stride outStride bytes.
 */
export function f32_daq_codes_nhwc(x: usize, n: i32, c: i32, xStride: i32, mu: usize, invDelta: usize,
  half: usize, kmax: usize, postRelu: i32, out: usize, outStride: i32): void {
  const zero = i32x4.splat(0);
  for (let p = 0; p < n; p++) {
    const xp = x + (<usize>p * <usize>xStride << 2);
    const op = out + <usize>p * <usize>outStride;
    let j = 0;
    if (postRelu != 0) {
      for (; j + 4 <= c; j += 4) {
        const o = <usize>j << 2;
        store4(op + j, daqRelu(v128.load(xp + o), v128.load(invDelta + o), v128.load(kmax + o), zero));
      }
      for (; j < c; j++) {
        const o = <usize>j << 2;
        const k = daqRelu(f32x4.splat(load<f32>(xp + o)), f32x4.splat(load<f32>(invDelta + o)), i32x4.splat(load<i32>(kmax + o)), zero);
        store<u8>(op + j, <u8>i32x4.extract_lane(k, 0));
      }
    } else {
      for (; j + 4 <= c; j += 4) {
        const o = <usize>j << 2;
        const h = v128.load(half + o);
        const k = daqSigned(v128.load(xp + o), v128.load(mu + o), v128.load(invDelta + o), h,
          i32x4.sub(zero, h), i32x4.sub(v128.load(kmax + o), h));
        store4(op + j, k);
      }
      for (; j < c; j++) {
        const o = <usize>j << 2;
        const hs = load<i32>(half + o);
        const k = daqSigned(f32x4.splat(load<f32>(xp + o)), f32x4.splat(load<f32>(mu + o)), f32x4.splat(load<f32>(invDelta + o)),
          i32x4.splat(hs), i32x4.splat(-hs), i32x4.splat(load<i32>(kmax + o) - hs));
        store<u8>(op + j, <u8>i32x4.extract_lane(k, 0));
      }
    }
  }
}

/** Table index (⌈v⌉ clamped, + 2048) for 4 lanes, see the header. */
@inline function subsetIndex(x: v128, mu: v128, inv: v128, lo: v128, hi: v128, off: v128): v128 {
  const v = f32x4.mul(f32x4.mul(f32x4.sub(x, mu), inv), f32x4.splat(2048.0));
  const i = i32x4.trunc_sat_f32x4_s(f32x4.ceil(v));
  return i32x4.add(i32x4.min_s(i32x4.max_s(i, lo), hi), off);
}

/**
 * DFSQ threshold codes. x: f32 [n × c] (stride xStride elements); mu, invM: f32[c]; table: u8 [c][tableStride]
 * (tableStride ≥ 4098) count tables cnt_c; out: u8 codes, stride outStride bytes.
 */
export function f32_subset_codes_nhwc(x: usize, n: i32, c: i32, xStride: i32, mu: usize, invM: usize,
  table: usize, tableStride: i32, out: usize, outStride: i32): void {
  const lo = i32x4.splat(-2048), hi = i32x4.splat(2049);
  const ts = <usize>tableStride;
  // Lane l of a 4-channel block starts at table + (j + l)·tableStride; + 2048 centres the index.
  const laneOff = i32x4.add(i32x4.mul(i32x4(0, 1, 2, 3), i32x4.splat(tableStride)), i32x4.splat(2048));
  for (let p = 0; p < n; p++) {
    const xp = x + (<usize>p * <usize>xStride << 2);
    const op = out + <usize>p * <usize>outStride;
    let j = 0;
    for (; j + 4 <= c; j += 4) {
      const o = <usize>j << 2;
      const idx = subsetIndex(v128.load(xp + o), v128.load(mu + o), v128.load(invM + o), lo, hi, laneOff);
      const t = table + <usize>j * ts;
      const k0 = <u32>load<u8>(t + <usize>i32x4.extract_lane(idx, 0));
      const k1 = <u32>load<u8>(t + <usize>i32x4.extract_lane(idx, 1));
      const k2 = <u32>load<u8>(t + <usize>i32x4.extract_lane(idx, 2));
      const k3 = <u32>load<u8>(t + <usize>i32x4.extract_lane(idx, 3));
      store<u32>(op + j, k0 | (k1 << 8) | (k2 << 16) | (k3 << 24));
    }
    for (; j < c; j++) {
      const o = <usize>j << 2;
      const idx = subsetIndex(f32x4.splat(load<f32>(xp + o)), f32x4.splat(load<f32>(mu + o)), f32x4.splat(load<f32>(invM + o)),
        lo, hi, i32x4.splat(2048));
      store<u8>(op + j, load<u8>(table + <usize>j * ts + <usize>i32x4.extract_lane(idx, 0)));
    }
  }
}

/**
 * out[ch] += #{pixels : x > 0} (NaN is not > 0), n pixels × c channels, stride xStride elements. Adds into out so
 * tiles accumulate; exact while every total stays ≤ 2^24 (f32). Channel blocks of 16 keep their counters in
 * registers across all pixels (one 64-byte line per pixel and block, so the image is read once overall).
 */
export function f32_count_positive_nhwc(x: usize, n: i32, c: i32, xStride: i32, out: usize): void {
  const pitch = <usize>xStride << 2;
  const zf = f32x4.splat(0);
  let j = 0;
  for (; j + 16 <= c; j += 16) {
    let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let ptr = x + (<usize>j << 2);
    for (let p = 0; p < n; p++, ptr += pitch) {
      a0 = i32x4.sub(a0, f32x4.gt(v128.load(ptr), zf));
      a1 = i32x4.sub(a1, f32x4.gt(v128.load(ptr, 16), zf));
      a2 = i32x4.sub(a2, f32x4.gt(v128.load(ptr, 32), zf));
      a3 = i32x4.sub(a3, f32x4.gt(v128.load(ptr, 48), zf));
    }
    const o = out + (<usize>j << 2);
    v128.store(o, f32x4.add(v128.load(o), f32x4.convert_i32x4_s(a0)));
    v128.store(o, f32x4.add(v128.load(o, 16), f32x4.convert_i32x4_s(a1)), 16);
    v128.store(o, f32x4.add(v128.load(o, 32), f32x4.convert_i32x4_s(a2)), 32);
    v128.store(o, f32x4.add(v128.load(o, 48), f32x4.convert_i32x4_s(a3)), 48);
  }
  for (; j + 4 <= c; j += 4) {
    let a = i32x4.splat(0);
    let ptr = x + (<usize>j << 2);
    for (let p = 0; p < n; p++, ptr += pitch) a = i32x4.sub(a, f32x4.gt(v128.load(ptr), zf));
    const o = out + (<usize>j << 2);
    v128.store(o, f32x4.add(v128.load(o), f32x4.convert_i32x4_s(a)));
  }
  for (; j < c; j++) {
    let a = 0;
    let ptr = x + (<usize>j << 2);
    for (let p = 0; p < n; p++, ptr += pitch) a += <i32>(load<f32>(ptr) > 0);
    const o = out + (<usize>j << 2);
    store<f32>(o, load<f32>(o) + <f32>a);
  }
}

/**
 * DFSQ threshold codes by SIMD compare-count (same semantics and result as f32_subset_codes_nhwc; cost ∝ nThr:
 * faster than the count table for ≤ 4 points, even at 8, slower at 16 — see bench/RESULTS.md). The clamped ⌈v⌉ ∈ [−2048, 2049] fits i16, so 8 channels go per vector and
 * code = Σ_t (⌈v⌉ > T'_t) over the channel's thresholds (T' < v ⟺ T' < ⌈v⌉ ⟺ ⌈v⌉ > T', see the header).
 * thr: i16 [⌈c/8⌉ blocks][nThr][8 lanes] = T'_t of channel 8·block + lane, padded with 32767 (never counted)
 * for channels with fewer thresholds.
 */
export function f32_subset_codes_cmp_nhwc(x: usize, n: i32, c: i32, xStride: i32, mu: usize, invM: usize,
  thr: usize, nThr: i32, out: usize, outStride: i32): void {
  const lo = i32x4.splat(-2048), hi = i32x4.splat(2049), zero = i32x4.splat(0);
  const blockBytes = <usize>nThr << 4;
  for (let p = 0; p < n; p++) {
    const xp = x + (<usize>p * <usize>xStride << 2);
    const op = out + <usize>p * <usize>outStride;
    let j = 0;
    for (; j + 8 <= c; j += 8) {
      const o = <usize>j << 2;
      const i0 = subsetIndex(v128.load(xp + o), v128.load(mu + o), v128.load(invM + o), lo, hi, zero);
      const i1 = subsetIndex(v128.load(xp + o, 16), v128.load(mu + o, 16), v128.load(invM + o, 16), lo, hi, zero);
      const h = i16x8.narrow_i32x4_s(i0, i1);
      let tp = thr + <usize>(j >> 3) * blockBytes;
      const end = tp + blockBytes;
      let cnt = zero;
      for (; tp < end; tp += 16) cnt = i16x8.sub(cnt, i16x8.gt_s(h, v128.load(tp)));
      v128.store64_lane(op + j, i8x16.narrow_i16x8_u(cnt, cnt), 0);
    }
    for (; j < c; j++) {
      const o = <usize>j << 2;
      const idx = i32x4.extract_lane(subsetIndex(f32x4.splat(load<f32>(xp + o)), f32x4.splat(load<f32>(mu + o)),
        f32x4.splat(load<f32>(invM + o)), lo, hi, zero), 0);
      let tp = thr + <usize>(j >> 3) * blockBytes + (<usize>(j & 7) << 1);
      let cnt = 0;
      for (let t = 0; t < nThr; t++, tp += 16) cnt += <i32>(<i32>load<i16>(tp) < idx);
      store<u8>(op + j, <u8>cnt);
    }
  }
}
