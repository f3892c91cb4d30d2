// Histograms of f32 activations for calibration (percentile / MSE clipping).
// Counts are u32 and *added* to `hist`, so a calibration set is one call per
// image (clear the buffer once). Bin of x in [lo, hi] with B bins:
//   k = f32(B) / f32(hi − lo)   (f32 ops),   t = f32(f32(x − lo) · k)
//   bin = t < 0 → 0, t ≥ B → B − 1, else trunc(t)
// so x = hi lands in the last bin, values outside the range clamp to the edge
// bins (their mass is kept, as percentile search needs), NaN is not counted.
// Scalar: a scatter-increment has no useful SIMD form in wasm.

@inline function binOf(v: f32, lo: f32, k: f32, bins: i32): i32 {
  const t = (v - lo) * k;
  if (t < 0) return 0;
  if (t >= <f32>bins) return bins - 1;
  return <i32>t;
}

/** Per-tensor histogram: hist u32[bins] over all n·c values. */
export function f32_histogram_nhwc(x: usize, n: i32, c: i32, xStride: i32, lo: f32, hi: f32, bins: i32, hist: usize): void {
  const k = <f32>bins / (hi - lo);
  for (let p = 0; p < n; p++) {
    const xp = x + (<usize>p * <usize>xStride << 2);
    for (let i = 0; i < c; i++) {
      const v = load<f32>(xp + (<usize>i << 2));
      if (v != v) continue;
      const h = hist + (<usize>binOf(v, lo, k, bins) << 2);
      store<u32>(h, load<u32>(h) + 1);
    }
  }
}

/** Per-channel histogram: ranges los/his f32[c], hist u32[c][bins] (channel-major). */
export function f32_histogram_pc_nhwc(x: usize, n: i32, c: i32, xStride: i32, los: usize, his: usize, bins: i32, hist: usize): void {
  for (let i = 0; i < c; i++) {
    const lo = load<f32>(los + (<usize>i << 2));
    const k = <f32>bins / (load<f32>(his + (<usize>i << 2)) - lo);
    const hp = hist + (<usize>i * <usize>bins << 2);
    let xp = x + (<usize>i << 2);
    const pitch = <usize>xStride << 2;
    for (let p = 0; p < n; p++, xp += pitch) {
      const v = load<f32>(xp);
      if (v != v) continue;
      const h = hp + (<usize>binOf(v, lo, k, bins) << 2);
      store<u32>(h, load<u32>(h) + 1);
    }
  }
}
