// Register-resident throughput probes: the SIMD ceiling of the machine that runs
// them, measured in the same process as the kernels so benchmarks can report
// "% of peak" instead of absolute times (which vary ±20 % run to run here).
//
// Each loop keeps 12 independent accumulators (enough to hide the latency of
// the dot/mul+add chains on current x86 and ARM cores) and performs
// MACS_PER_ITER multiply-accumulates per iteration. Operands are loaded from
// memory once so Binaryen cannot constant-fold the loop away.

/** 12 × i32x4.dot_i16x8_s per iteration = 96 MACs. Returns a checksum. */
export function peak_dot_i16x8(src: usize, iters: i32): i32 {
  const a = v128.load(src);
  const b = v128.load(src, 16);
  let c0 = i32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  let c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  const b1 = i16x8.add(b, a), b2 = i16x8.sub(b, a), b3 = i16x8.add(b1, a);
  for (let i = 0; i < iters; i++) {
    c0 = i32x4.add(c0, i32x4.dot_i16x8_s(a, b));
    c1 = i32x4.add(c1, i32x4.dot_i16x8_s(a, b1));
    c2 = i32x4.add(c2, i32x4.dot_i16x8_s(a, b2));
    c3 = i32x4.add(c3, i32x4.dot_i16x8_s(a, b3));
    c4 = i32x4.add(c4, i32x4.dot_i16x8_s(b, b));
    c5 = i32x4.add(c5, i32x4.dot_i16x8_s(b, b1));
    c6 = i32x4.add(c6, i32x4.dot_i16x8_s(b, b2));
    c7 = i32x4.add(c7, i32x4.dot_i16x8_s(b, b3));
    c8 = i32x4.add(c8, i32x4.dot_i16x8_s(b1, b1));
    c9 = i32x4.add(c9, i32x4.dot_i16x8_s(b1, b2));
    c10 = i32x4.add(c10, i32x4.dot_i16x8_s(b1, b3));
    c11 = i32x4.add(c11, i32x4.dot_i16x8_s(b2, b3));
  }
  const s = i32x4.add(i32x4.add(i32x4.add(c0, c1), i32x4.add(c2, c3)),
    i32x4.add(i32x4.add(i32x4.add(c4, c5), i32x4.add(c6, c7)), i32x4.add(i32x4.add(c8, c9), i32x4.add(c10, c11))));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 3);
}

/** 12 × (f32x4.mul + f32x4.add) per iteration = 48 MACs. Returns a checksum. */
export function peak_f32x4_muladd(src: usize, iters: i32): f32 {
  const a = v128.load(src);
  const b = v128.load(src, 16);
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  let c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  const b1 = f32x4.add(b, a), b2 = f32x4.sub(b, a), b3 = f32x4.mul(b1, a);
  for (let i = 0; i < iters; i++) {
    c0 = f32x4.add(c0, f32x4.mul(a, b));
    c1 = f32x4.add(c1, f32x4.mul(a, b1));
    c2 = f32x4.add(c2, f32x4.mul(a, b2));
    c3 = f32x4.add(c3, f32x4.mul(a, b3));
    c4 = f32x4.add(c4, f32x4.mul(b, b));
    c5 = f32x4.add(c5, f32x4.mul(b, b1));
    c6 = f32x4.add(c6, f32x4.mul(b, b2));
    c7 = f32x4.add(c7, f32x4.mul(b, b3));
    c8 = f32x4.add(c8, f32x4.mul(b1, b1));
    c9 = f32x4.add(c9, f32x4.mul(b1, b2));
    c10 = f32x4.add(c10, f32x4.mul(b1, b3));
    c11 = f32x4.add(c11, f32x4.mul(b2, b3));
  }
  const s = f32x4.add(f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)),
    f32x4.add(f32x4.add(f32x4.add(c4, c5), f32x4.add(c6, c7)), f32x4.add(f32x4.add(c8, c9), f32x4.add(c10, c11))));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 3);
}

/**
 * 12 × i32x4.relaxed_dot_i8x16_i7x16_add_s per iteration = 192 MACs (relaxed build);
 * the simd build returns -1 without running (no such instruction there).
 */
export function peak_relaxed_dot_i8i7(src: usize, iters: i32): i32 {
  if (!ASC_FEATURE_RELAXED_SIMD) return -1;
  const a = v128.load(src);
  const b = v128.and(v128.load(src, 16), i8x16.splat(0x7f));
  let c0 = i32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  let c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  const a1 = i8x16.add(a, b), a2 = i8x16.sub(a, b), a3 = i8x16.add(a1, b);
  for (let i = 0; i < iters; i++) {
    c0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c0);
    c1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a1, b, c1);
    c2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a2, b, c2);
    c3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a3, b, c3);
    c4 = i32x4.relaxed_dot_i8x16_i7x16_add_s(b, b, c4);
    c5 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a, a, c5);
    c6 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a1, a, c6);
    c7 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a2, a, c7);
    c8 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a3, a, c8);
    c9 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a1, a1, c9);
    c10 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a2, a2, c10);
    c11 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a3, a3, c11);
  }
  const s = i32x4.add(i32x4.add(i32x4.add(c0, c1), i32x4.add(c2, c3)),
    i32x4.add(i32x4.add(i32x4.add(c4, c5), i32x4.add(c6, c7)), i32x4.add(i32x4.add(c8, c9), i32x4.add(c10, c11))));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 3);
}
