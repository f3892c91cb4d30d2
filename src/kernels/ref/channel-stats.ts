// Reference of assembly/stats/channel-stats.ts: the same shifted f64 sums in
// the same (pixel) order per channel, so outputs are bit-identical.
type Codes = Uint8Array | Int8Array;

/**
 * Planar [5][c] f32: min, max, mean, std (population), max|x − mean|, in units
 * scale·(v − zp) (1 and 0 for f32 data).
 */
export function channelStatsRef(out: Float32Array, x: Float32Array | Codes, n: number, c: number, xStride: number,
  scale = 1, zp = 0): void {
  const s = Math.fround(scale);
  for (let ch = 0; ch < c; ch++) {
    const h = x[ch];
    let mn = Infinity, mx = -Infinity, s1 = 0, s2 = 0;
    for (let p = 0; p < n; p++) {
      const v = x[p * xStride + ch];
      mn = Math.min(mn, v);
      mx = Math.max(mx, v);
      const d = v - h;
      s1 += d;
      s2 += d * d;
    }
    const mean = h + s1 / n;
    let vr = (s2 - (s1 * s1) / n) / n;
    if (!(vr > 0)) vr = 0;
    const dev = Math.max(mx - mean, mean - mn);
    out[ch] = s * (mn - zp);
    out[c + ch] = s * (mx - zp);
    out[2 * c + ch] = s * (mean - zp);
    out[3 * c + ch] = s * Math.sqrt(vr);
    out[4 * c + ch] = s * dev;
  }
}
