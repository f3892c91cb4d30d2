// Known-answer probe of the relaxed-SIMD integer dot product.
//
// Why: `i32x4.relaxed_dot_i8x16_i7x16_add_s` is implementation-defined when the
// second operand has its top bit set, and V8 on Node 20 (behind
// --experimental-wasm-relaxed-simd) returns wrong sums — it ignores the
// accumulator. The runtime calls this on vectors it chooses and compares the
// result against a scalar computation in JS before it trusts the relaxed build.
// In the simd build this compiles to a plain extmul fallback and is never used
// as evidence (the runtime only probes the relaxed module).

/** out[0..3] = relaxed_dot(a[0..15] i8, b[0..15] i7) + acc[0..3], one call. */
export function probe_relaxed_dot_i8x16_i7x16_add(a: usize, b: usize, acc: usize, out: usize): void {
  const va = v128.load(a);
  const vb = v128.load(b);
  const vc = v128.load(acc);
  if (ASC_FEATURE_RELAXED_SIMD) {
    v128.store(out, i32x4.relaxed_dot_i8x16_i7x16_add_s(va, vb, vc));
  } else {
    // Exact reference semantics: widen, multiply, pairwise add twice.
    const lo = i16x8.extmul_low_i8x16_s(va, vb);
    const hi = i16x8.extmul_high_i8x16_s(va, vb);
    const plo = i32x4.extadd_pairwise_i16x8_s(lo); // groups (0,1),(2,3),(4,5),(6,7)
    const phi = i32x4.extadd_pairwise_i16x8_s(hi); // groups (8,9)...(14,15)
    const g = i32x4.add(
      v128.shuffle<i32>(plo, phi, 0, 2, 4, 6),
      v128.shuffle<i32>(plo, phi, 1, 3, 5, 7)
    );
    v128.store(out, i32x4.add(g, vc));

  }
}

/** out[0..3] = relaxed_madd(a, b, c) for f32x4 (fused or unfused: both are accepted within tolerance). */
export function probe_relaxed_madd_f32x4(a: usize, b: usize, c: usize, out: usize): void {
  const va = v128.load(a);
  const vb = v128.load(b);
  const vc = v128.load(c);
  if (ASC_FEATURE_RELAXED_SIMD) {
    v128.store(out, f32x4.relaxed_madd(va, vb, vc));
  } else {
    v128.store(out, f32x4.add(f32x4.mul(va, vb), vc));
  }
}

/** 1 when this module was compiled with relaxed SIMD. */
export function build_is_relaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
