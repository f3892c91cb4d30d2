// Reference of assembly/stats/histogram.ts (same f32 bin arithmetic).
const f = Math.fround;

export function binOf(v: number, lo: number, hi: number, bins: number): number {
  const k = f(f(bins) / f(f(hi) - f(lo)));
  const t = f(f(v - f(lo)) * k);
  if (t < 0) return 0;
  if (t >= bins) return bins - 1;
  return Math.trunc(t);
}

/** Adds counts: per tensor (lo, hi numbers → hist[bins]) or per channel (arrays → hist[c][bins]). */
export function histogramRef(hist: Uint32Array, x: Float32Array, n: number, c: number, xStride: number,
  lo: number | Float32Array, hi: number | Float32Array, bins: number): void {
  for (let p = 0; p < n; p++) for (let i = 0; i < c; i++) {
    const v = x[p * xStride + i];
    if (Number.isNaN(v)) continue;
    if (typeof lo === "number") hist[binOf(v, lo, hi as number, bins)]++;
    else hist[i * bins + binOf(v, lo[i], (hi as Float32Array)[i], bins)]++;
  }
}
