// Register-resident throughput probes: the SIMD ceiling of the machine that runs
// them, measured in the same process as the kernels so benchmarks can report
// "% of peak" instead of absolute times (which vary ±20 % run to run here).
//
// Each loop keeps 12 independent accumulators (enough to hide the latency of
// the dot/mul+add chains on current x86 and ARM cores) and performs
// MACS_PER_ITER multiply-accumulates per iteration. Operands are loaded from
// memory once so Binaryen cannot constant-fold the loop away.

/**
 * 12 × (i32x4.dot_i16x8_s + i32x4.add) per iteration into 8 accumulators = 96 MACs.
 * Same construction as peak_f32x4_muladd below (independent loaded operands,
 * 8 accumulators, keepLoop against V8's unrolling); the earlier 12-accumulator
 * version with derived operands spilled and under-read the ceiling by ~25 %.
 */
export function peak_dot_i16x8(src: usize, iters: i32): i32 {
  const a = v128.load(src), b = v128.load(src, 4), c = v128.load(src, 8), d = v128.load(src, 12);
  let c0 = i32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
  const never = iters < 0;
  for (let i = 0; i < iters; i++) {
    c0 = i32x4.add(c0, i32x4.dot_i16x8_s(a, a));
    c1 = i32x4.add(c1, i32x4.dot_i16x8_s(a, b));
    c2 = i32x4.add(c2, i32x4.dot_i16x8_s(a, c));
    c3 = i32x4.add(c3, i32x4.dot_i16x8_s(a, d));
    c4 = i32x4.add(c4, i32x4.dot_i16x8_s(b, b));
    c5 = i32x4.add(c5, i32x4.dot_i16x8_s(b, c));
    c6 = i32x4.add(c6, i32x4.dot_i16x8_s(b, d));
    c7 = i32x4.add(c7, i32x4.dot_i16x8_s(c, c));
    c0 = i32x4.add(c0, i32x4.dot_i16x8_s(c, d));
    c1 = i32x4.add(c1, i32x4.dot_i16x8_s(d, d));
    c2 = i32x4.add(c2, i32x4.dot_i16x8_s(d, a));
    c3 = i32x4.add(c3, i32x4.dot_i16x8_s(d, b));
    c7 = keepLoopI(c7, never, iters);
  }
  const s = i32x4.add(i32x4.add(i32x4.add(c0, c1), i32x4.add(c2, c3)), i32x4.add(i32x4.add(c4, c5), i32x4.add(c6, c7)));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 3);
}

// The f32 probes differ from the integer ones on purpose. Measured on Zen 4 /
// V8 11.3 (Node 20) and 12.4 (Node 22), the earlier 12-accumulator form of
// peak_f32x4_muladd ran at ~14 GMAC/s instead of ~28 because
//  1. its extra operands were pure expressions of the two loaded vectors
//     (b + a, b - a, (b + a)·a); V8's scheduler sinks such values into the
//     loop, so every iteration recomputed them (3 more FP ops) and needed
//     5 operand registers + 12 accumulators + 1 product > 16 xmm: V8 spilled
//     three accumulators, and the one carried through a stack slot put a
//     store→load round trip on its add chain;
//  2. V8 unrolls small innermost loops (Node 20 also peels them); the
//     unrolled 8-accumulator loop spills even without (1).
// So: every operand is its own load (V8 cannot sink loads), 8 accumulators
// (enough to cover the 3-cycle add latency on 2 add pipes, leaving registers
// for 4 operands and the product), and a never-taken branch holding a nested
// loop (keepLoop), which makes V8 treat the loop as non-innermost and leave it
// alone. `--no-wasm-loop-unrolling --no-wasm-loop-peeling` gives the same
// figure without the guard, which is how the cause was confirmed.

/** A never-taken branch holding a `loop` opcode: V8 does not unroll/peel loops that contain one. */
// @ts-ignore: decorator
@inline function keepLoop(acc: v128, never: bool, n: i32): v128 {
  if (never) {
    for (let j = 0; j < n; j++) acc = f32x4.add(acc, acc);
  }
  return acc;
}

/** keepLoop for integer accumulators. */
// @ts-ignore: decorator
@inline function keepLoopI(acc: v128, never: bool, n: i32): v128 {
  if (never) {
    for (let j = 0; j < n; j++) acc = i32x4.add(acc, acc);
  }
  return acc;
}

/** 12 × (f32x4.mul + f32x4.add) per iteration into 8 accumulators = 48 MACs. Returns a checksum. */
export function peak_f32x4_muladd(src: usize, iters: i32): f32 {
  const a = v128.load(src), b = v128.load(src, 4), c = v128.load(src, 8), d = v128.load(src, 12);
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
  const never = iters < 0;
  for (let i = 0; i < iters; i++) {
    c0 = f32x4.add(c0, f32x4.mul(a, a));
    c1 = f32x4.add(c1, f32x4.mul(a, b));
    c2 = f32x4.add(c2, f32x4.mul(a, c));
    c3 = f32x4.add(c3, f32x4.mul(a, d));
    c4 = f32x4.add(c4, f32x4.mul(b, b));
    c5 = f32x4.add(c5, f32x4.mul(b, c));
    c6 = f32x4.add(c6, f32x4.mul(b, d));
    c7 = f32x4.add(c7, f32x4.mul(c, c));
    c0 = f32x4.add(c0, f32x4.mul(c, d));
    c1 = f32x4.add(c1, f32x4.mul(d, d));
    c2 = f32x4.add(c2, f32x4.mul(d, a));
    c3 = f32x4.add(c3, f32x4.mul(d, b));
    c7 = keepLoop(c7, never, iters);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)), f32x4.add(f32x4.add(c4, c5), f32x4.add(c6, c7)));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 3);
}

/**
 * 10 × f32x4.relaxed_madd per iteration into 10 accumulators = 40 MACs (relaxed
 * build; FMA latency 4 × 2 pipes needs ≥ 8 independent chains). 12
 * accumulators + 4 operands would be all 16 xmm registers, and V8 then spills
 * (measured ~13 GMAC/s instead of ~27). The simd build returns -1.
 */
export function peak_f32x4_relaxed_madd(src: usize, iters: i32): f32 {
  if (!ASC_FEATURE_RELAXED_SIMD) return -1;
  const a = v128.load(src), b = v128.load(src, 4), c = v128.load(src, 8), d = v128.load(src, 12);
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
  let c8 = c0, c9 = c0;
  const never = iters < 0;
  for (let i = 0; i < iters; i++) {
    c0 = f32x4.relaxed_madd(a, a, c0);
    c1 = f32x4.relaxed_madd(a, b, c1);
    c2 = f32x4.relaxed_madd(a, c, c2);
    c3 = f32x4.relaxed_madd(a, d, c3);
    c4 = f32x4.relaxed_madd(b, b, c4);
    c5 = f32x4.relaxed_madd(b, c, c5);
    c6 = f32x4.relaxed_madd(b, d, c6);
    c7 = f32x4.relaxed_madd(c, c, c7);
    c8 = f32x4.relaxed_madd(c, d, c8);
    c9 = f32x4.relaxed_madd(d, d, c9);
    c9 = keepLoop(c9, never, iters);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)), f32x4.add(f32x4.add(c4, c5), f32x4.add(c6, c7))),
    f32x4.add(c8, c9));
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
