// References of assembly/grad/f32-grad-elementwise.ts. Per-element outputs repeat
// the kernels' f32 steps (Math.fround after each operation: bit-identical);
// reductions are summed in float64 (the kernels' f32-partial/f64 sums are
// compared within a stated tolerance).
const f = Math.fround;

/** A strided [pixels × channels] f32 tensor: element (i, c) at offset + i·stride + c. */
export interface Flat {
  data: Float32Array;
  offset?: number;
  stride: number;
}
const ix = (t: Flat, i: number, c: number): number => (t.offset ?? 0) + i * t.stride + c;

/** dx = y > 0 ? dy : 0. */
export function reluBackwardRef(dy: Flat, y: Flat, dx: Flat, pixels: number, channels: number): void {
  for (let i = 0; i < pixels; i++) for (let c = 0; c < channels; c++) dx.data[ix(dx, i, c)] = y.data[ix(y, i, c)] > 0 ? dy.data[ix(dy, i, c)] : 0;
}

/** s = fround(fround(u − l)/n), n = levels − 1: the grid step both sides use. */
export function fakeQuantStepRef(l: number, u: number, levels: number): number {
  return f(f(f(u) - f(l)) / (levels - 1));
}

/** Round half away from zero of t ≥ 0 (exact: t − trunc(t) is exact in f32). */
function roundHalfUp(t: number): number {
  const r = Math.trunc(t);
  return t - r >= 0.5 ? r + 1 : r;
}

/** t = (clip(x, l, u) − l)/s and r = round(t) for one element (f32 steps). */
export function fakeQuantT(x: number, l: number, u: number, s: number): [t: number, r: number] {
  // pmax / pmin order as the kernel: NaN propagates, −0 is kept (same q and gradients as min/max).
  let c = x < f(l) ? f(l) : x;
  c = f(u) < c ? f(u) : c;
  const t = f(f(c - f(l)) / s);
  return [t, roundHalfUp(t)];
}

/** y = clip(round((clip(x, l, u) − l)/s)·s + l, l, u). */
export function fakeQuantRef(x: Flat, y: Flat, pixels: number, channels: number, l: number, u: number, levels: number): void {
  const s = fakeQuantStepRef(l, u, levels);
  for (let i = 0; i < pixels; i++) for (let c = 0; c < channels; c++) {
    const [, r] = fakeQuantT(x.data[ix(x, i, c)], l, u, s);
    // Clamped to [l, u] like the kernel (n·s + l can exceed u by an ulp).
    let v = f(f(r * s) + f(l));
    v = v < f(l) ? f(l) : v;
    y.data[ix(y, i, c)] = f(u) < v ? f(u) : v;
  }
}

/**
 * dx = dy·[l ≤ x ≤ u]; dl = Σ_{x<l} dy + Σ_in dy·(t − r)/n, du = Σ_{x>u} dy + Σ_in dy·(r − t)/n (f64 sums).
 * `mag` = Σ|dy| (+ Σ|dy·(r − t)|): the scale of the kernel's rounding error.
 */
export function fakeQuantBackwardRef(x: Flat, dy: Flat, dx: Flat | null, pixels: number, channels: number,
  l: number, u: number, levels: number): { dl: number; du: number; mag: number } {
  const s = fakeQuantStepRef(l, u, levels);
  const n = levels - 1;
  let a = 0, below = 0, above = 0, mag = 0;
  for (let i = 0; i < pixels; i++) for (let c = 0; c < channels; c++) {
    const xv = x.data[ix(x, i, c)], g = dy.data[ix(dy, i, c)];
    mag += Math.abs(g);
    let pass = 0;
    if (xv < f(l)) below += g;
    else if (xv > f(u)) above += g;
    else {
      const [t, r] = fakeQuantT(xv, l, u, s);
      a += g * (r - t);
      pass = g;
    }
    if (dx) dx.data[ix(dx, i, c)] = pass;
  }
  return { dl: below - a / n, du: above + a / n, mag };
}

/** y = fround(fround(x·a[c]) + b[c]). */
export function channelAffineRef(x: Flat, y: Flat, pixels: number, channels: number, a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < pixels; i++) for (let c = 0; c < channels; c++) y.data[ix(y, i, c)] = f(f(x.data[ix(x, i, c)] * a[c]) + b[c]);
}

/** dx = fround(dy·a[c]); da[c] += Σ dy·x, db[c] += Σ dy (f64 sums, one rounding); magA/magB = Σ|dy·x|, Σ|dy|. */
export function channelAffineBackwardRef(x: Flat, dy: Flat, dx: Flat | null, pixels: number, channels: number,
  a: Float32Array, da: Float64Array | null, db: Float64Array | null, magA?: Float64Array, magB?: Float64Array): void {
  for (let c = 0; c < channels; c++) {
    let sa = 0, sb = 0, ma = 0, mb = 0;
    for (let i = 0; i < pixels; i++) {
      const g = dy.data[ix(dy, i, c)], v = g * x.data[ix(x, i, c)];
      sa += v; sb += g; ma += Math.abs(v); mb += Math.abs(g);
    }
    if (da) { if (magA) magA[c] = ma + Math.abs(da[c]); da[c] += sa; }
    if (db) { if (magB) magB[c] = mb + Math.abs(db[c]); db[c] += sb; }
  }
  if (dx) for (let i = 0; i < pixels; i++) for (let c = 0; c < channels; c++) dx.data[ix(dx, i, c)] = f(dy.data[ix(dy, i, c)] * a[c]);
}

/** y[h, w, (i·b + j)·C + ch] = x[h·b + i, w·b + j, ch]; h, w: the small grid, c = C. */
export function spaceToDepthRef(x: Flat, y: Flat, h: number, w: number, c: number, b: number): void {
  for (let hh = 0; hh < h; hh++) for (let ww = 0; ww < w; ww++) for (let i = 0; i < b; i++) for (let j = 0; j < b; j++) for (let ch = 0; ch < c; ch++)
    y.data[ix(y, hh * w + ww, (i * b + j) * c + ch)] = x.data[ix(x, (hh * b + i) * (w * b) + ww * b + j, ch)];
}

/** dx[h, w, ch] = Σ_i Σ_j dy[h·f + i, w·f + j, ch], f32 adds in the order i, then j. */
export function upsampleNearestBackwardRef(dy: Flat, dx: Flat, h: number, w: number, c: number, fac: number): void {
  for (let hh = 0; hh < h; hh++) for (let ww = 0; ww < w; ww++) for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let i = 0; i < fac; i++) for (let j = 0; j < fac; j++) {
      const v = dy.data[ix(dy, (hh * fac + i) * (w * fac) + ww * fac + j, ch)];
      s = i === 0 && j === 0 ? v : f(s + v);
    }
    dx.data[ix(dx, hh * w + ww, ch)] = s;
  }
}

/** L1: loss = scale·Σ|d|/N (f64), grad = sign(d)·fround(scale/N), d = fround(p − t), sign(0) = 0. */
export function l1LossRef(p: Flat, t: Flat, g: Flat | null, pixels: number, channels: number, scale = 1): number {
  const n = pixels * channels, k = f(scale / n);
  let s = 0;
  for (let i = 0; i < pixels; i++) for (let c = 0; c < channels; c++) {
    const d = f(p.data[ix(p, i, c)] - t.data[ix(t, i, c)]);
    s += Math.abs(d);
    if (g) g.data[ix(g, i, c)] = d > 0 ? k : d < 0 ? -k : 0;
  }
  return (scale * s) / n;
}

/** MSE: loss = scale·Σd²/N (f64 of exact squares), grad = fround(d·fround(2·scale/N)). */
export function mseLossRef(p: Flat, t: Flat, g: Flat | null, pixels: number, channels: number, scale = 1): number {
  const n = pixels * channels, k = f((2 * scale) / n);
  let s = 0;
  for (let i = 0; i < pixels; i++) for (let c = 0; c < channels; c++) {
    const d = f(p.data[ix(p, i, c)] - t.data[ix(t, i, c)]);
    s += d * d;
    if (g) g.data[ix(g, i, c)] = f(d * k);
  }
  return (scale * s) / n;
}

/** Per-channel fake quantization: channel c on [l[c], u[c]]. */
export function fakeQuantPerChannelRef(x: Flat, y: Flat, pixels: number, channels: number, l: Float32Array, u: Float32Array, levels: number): void {
  for (let c = 0; c < channels; c++) {
    const s = fakeQuantStepRef(l[c], u[c], levels);
    for (let i = 0; i < pixels; i++) {
      const [, r] = fakeQuantT(x.data[ix(x, i, c)], l[c], u[c], s);
      y.data[ix(y, i, c)] = f(f(r * s) + l[c]);
    }
  }
}

/** Per-channel STE / LSQ backward: dx as per tensor; dl[c] += …, du[c] += … (f64); mag[c] = Σ|dy| + |dl₀| + |du₀|. */
export function fakeQuantPerChannelBackwardRef(x: Flat, dy: Flat, dx: Flat | null, pixels: number, channels: number,
  l: Float32Array, u: Float32Array, levels: number, dl: Float64Array, du: Float64Array, mag: Float64Array): void {
  const n = levels - 1;
  for (let c = 0; c < channels; c++) {
    const s = fakeQuantStepRef(l[c], u[c], levels);
    let a = 0, below = 0, above = 0, m = 0;
    for (let i = 0; i < pixels; i++) {
      const xv = x.data[ix(x, i, c)], g = dy.data[ix(dy, i, c)];
      m += Math.abs(g);
      let pass = 0;
      if (xv < l[c]) below += g;
      else if (xv > u[c]) above += g;
      else {
        const [t, r] = fakeQuantT(xv, l[c], u[c], s);
        a += g * (r - t);
        pass = g;
      }
      if (dx) dx.data[ix(dx, i, c)] = pass;
    }
    mag[c] = m + Math.abs(dl[c]) + Math.abs(du[c]);
    dl[c] += below - a / n;
    du[c] += above + a / n;
  }
}
