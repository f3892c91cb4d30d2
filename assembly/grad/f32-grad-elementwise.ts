// Elementwise pieces of the gradient engine, f32 NHWC with pixel strides:
// ReLU backward, per-tensor fake quantization (forward + STE/LSQ backward),
// per-channel affine (forward + backward), space-to-depth (the backward of
// depth-to-space), the backward of nearest upsampling, and the L1 / MSE losses.
// References: src/kernels/ref/grad-elementwise.ts. Every per-element result is
// computed with the same f32 operations in the same order as the reference
// (no FMA, also in the relaxed build), so outputs are bit-identical; only the
// reductions (range gradients, affine parameter gradients, loss values) sum in
// a different order and are compared within a stated tolerance.
//
// Reductions: per-lane f32 partials over at most FLUSH vectors, then added
// into f64 — so a sum of N terms carries the f32 error of a FLUSH-term sum,
// not of an N-term one.

// @ts-ignore: decorator
@inline const FLUSH: i32 = 32;

// @ts-ignore: decorator
@inline function hsum(v: v128): f64 {
  return (<f64>f32x4.extract_lane(v, 0) + <f64>f32x4.extract_lane(v, 1)) + (<f64>f32x4.extract_lane(v, 2) + <f64>f32x4.extract_lane(v, 3));
}

// ---------------------------------------------------------------------------
// ReLU backward: dx = y > 0 ? dy : 0 (y is the ReLU output; NaN y → 0).

export function f32_relu_backward_nhwc(dy: usize, dyStride: i32, y: usize, yStride: i32, dx: usize, dxStride: i32,
  pixels: i32, channels: i32): void {
  const c4 = channels & ~3;
  const zero = f32x4.splat(0);
  const dys = <usize>dyStride << 2, ys = <usize>yStride << 2, dxs = <usize>dxStride << 2;
  for (let i = 0; i < pixels; i++) {
    let c = 0;
    for (; c < c4; c += 4) {
      const o = <usize>c << 2;
      v128.store(dx + o, v128.and(v128.load(dy + o), f32x4.gt(v128.load(y + o), zero)));
    }
    for (; c < channels; c++) {
      const o = <usize>c << 2;
      store<f32>(dx + o, load<f32>(y + o) > 0 ? load<f32>(dy + o) : 0);
    }
    dy += dys; y += ys; dx += dxs;
  }
}

// ---------------------------------------------------------------------------
// Fake quantization on the uniform grid l + r·s, r = 0..n, s = (u − l)/n (the
// wrapper passes s = fround(fround(u − l)/n)):
//   c = clip(x, l, u) (pmax/pmin order, see clampP); t = (c − l)/s; r = round half away from zero (t ≥ 0: trunc(t) + [t − trunc(t) ≥ 0.5]);
//   q = r·s + l   (each step one f32 rounding).

/**
 * clip(v, l, u) with the pmax/pmin rule of the vector path (f32x4.pmin(f32x4.pmax(v, l), u)): one
 * maxps/minps each instead of the ~8-instruction NaN/−0-exact f32x4.max/min (measured 2× on the
 * fake-quant forward). NaN still propagates (NaN < l is false → v); a −0 input on l = +0 stays −0,
 * which gives the same q (r = 0, q = l) and the same gradients.
 */
// @ts-ignore: decorator
@inline function clampP(v: f32, l: f32, u: f32): f32 {
  v = v < l ? l : v;
  return u < v ? u : v;
}

// @ts-ignore: decorator
@inline function roundHalfUp(t: v128, one: v128, half: v128): v128 {
  const r = f32x4.trunc(t);
  return f32x4.add(r, v128.and(one, f32x4.ge(f32x4.sub(t, r), half)));
}

// @ts-ignore: decorator
@inline function roundHalfUpS(t: f32): f32 {
  const r = Mathf.trunc(t);
  return t - r >= 0.5 ? r + 1 : r;
}

export function f32_fake_quant_nhwc(x: usize, xStride: i32, y: usize, yStride: i32, pixels: i32, channels: i32,
  l: f32, u: f32, s: f32): void {
  const c4 = channels & ~3;
  const vl = f32x4.splat(l), vu = f32x4.splat(u), vs = f32x4.splat(s), one = f32x4.splat(1), half = f32x4.splat(0.5);
  const xs = <usize>xStride << 2, ys = <usize>yStride << 2;
  for (let i = 0; i < pixels; i++) {
    let c = 0;
    for (; c < c4; c += 4) {
      const o = <usize>c << 2;
      const cl = f32x4.pmin(f32x4.pmax(v128.load(x + o), vl), vu);
      const r = roundHalfUp(f32x4.div(f32x4.sub(cl, vl), vs), one, half);
      // Clamped again: n·s + l can exceed u by an ulp, and a level above u would read as clipped to
      // a second quantizer on the same grid (a shared clip), blocking its straight-through gradient.
      v128.store(y + o, f32x4.pmin(f32x4.pmax(f32x4.add(f32x4.mul(r, vs), vl), vl), vu));
    }
    for (; c < channels; c++) {
      const o = <usize>c << 2;
      const cl = clampP(load<f32>(x + o), l, u);
      const r = roundHalfUpS((cl - l) / s);
      store<f32>(y + o, clampP(r * s + l, l, u));
    }
    x += xs; y += ys;
  }
}

/** Σ_{x<l} dy and Σ_{x>u} dy of the last f32_fake_quant_backward_nhwc call. */
let fqBelow: f64 = 0, fqAbove: f64 = 0;
export function f32_fake_quant_below(): f64 {
  return fqBelow;
}
export function f32_fake_quant_above(): f64 {
  return fqAbove;
}

/**
 * STE input gradient and the sums behind the LSQ range gradients (derived at f32FakeQuantBackward in
 * src/kernels/grad-elementwise.ts): dx = dy·[l ≤ x ≤ u] (dx may be 0: not written; dx == dy in place
 * is fine); returns A = Σ_inside dy·(r − t) and leaves B = Σ_{x<l} dy, C = Σ_{x>u} dy for
 * f32_fake_quant_below/above(). The wrapper forms dl = B − A/n, du = C + A/n.
 */
export function f32_fake_quant_backward_nhwc(x: usize, xStride: i32, dy: usize, dyStride: i32, dx: usize, dxStride: i32,
  pixels: i32, channels: i32, l: f32, u: f32, s: f32): f64 {
  const c4 = channels & ~3;
  const vl = f32x4.splat(l), vu = f32x4.splat(u), vs = f32x4.splat(s), one = f32x4.splat(1), half = f32x4.splat(0.5);
  const zero = f32x4.splat(0);
  const xs = <usize>xStride << 2, dys = <usize>dyStride << 2, dxs = <usize>dxStride << 2;
  let sa: f64 = 0, sb: f64 = 0, sc: f64 = 0;
  let pa = zero, pb = zero, pc = zero;
  let nvec = 0;
  for (let i = 0; i < pixels; i++) {
    let c = 0;
    for (; c < c4; c += 4) {
      const o = <usize>c << 2;
      const xv = v128.load(x + o), g = v128.load(dy + o);
      const below = f32x4.lt(xv, vl), above = f32x4.gt(xv, vu);
      const inside = v128.not(v128.or(below, above)); // NaN x counts as inside (and yields NaN)
      const cl = f32x4.pmin(f32x4.pmax(xv, vl), vu);
      const t = f32x4.div(f32x4.sub(cl, vl), vs);
      const e = f32x4.sub(roundHalfUp(t, one, half), t);
      pa = f32x4.add(pa, v128.and(f32x4.mul(g, e), inside));
      pb = f32x4.add(pb, v128.and(g, below));
      pc = f32x4.add(pc, v128.and(g, above));
      if (dx != 0) v128.store(dx + o, v128.and(g, inside));
      if (++nvec == FLUSH) {
        sa += hsum(pa); sb += hsum(pb); sc += hsum(pc);
        pa = zero; pb = zero; pc = zero;
        nvec = 0;
      }
    }
    for (; c < channels; c++) {
      const o = <usize>c << 2;
      const xv = load<f32>(x + o), g = load<f32>(dy + o);
      if (xv < l) {
        sb += <f64>g;
        if (dx != 0) store<f32>(dx + o, 0);
      } else if (xv > u) {
        sc += <f64>g;
        if (dx != 0) store<f32>(dx + o, 0);
      } else {
        const cl = clampP(xv, l, u);
        const t = (cl - l) / s;
        sa += <f64>(g * (roundHalfUpS(t) - t));
        if (dx != 0) store<f32>(dx + o, g);
      }
    }
    x += xs; dy += dys; dx += dx != 0 ? dxs : 0;
  }
  sa += hsum(pa); sb += hsum(pb); sc += hsum(pc);
  fqBelow = sb;
  fqAbove = sc;
  return sa;
}

// Per-channel fake quantization: channel c uses [l[c], u[c]] and s[c] = (u[c] − l[c])/n computed here in
// f32 (n ≤ 65535 is exact in f32, so this is fround(fround(u − l)/n), as the per-tensor wrapper does).
// l, u: byte offsets of `channels` f32 each.

export function f32_fake_quant_pc_nhwc(x: usize, xStride: i32, y: usize, yStride: i32, pixels: i32, channels: i32,
  l: usize, u: usize, n: f32): void {
  const c4 = channels & ~3;
  const one = f32x4.splat(1), half = f32x4.splat(0.5), vn = f32x4.splat(n);
  const xs = <usize>xStride << 2, ys = <usize>yStride << 2;
  for (let i = 0; i < pixels; i++) {
    let c = 0;
    for (; c < c4; c += 4) {
      const o = <usize>c << 2;
      const vl = v128.load(l + o), vu = v128.load(u + o);
      const vs = f32x4.div(f32x4.sub(vu, vl), vn);
      const cl = f32x4.pmin(f32x4.pmax(v128.load(x + o), vl), vu);
      const r = roundHalfUp(f32x4.div(f32x4.sub(cl, vl), vs), one, half);
      v128.store(y + o, f32x4.add(f32x4.mul(r, vs), vl));
    }
    for (; c < channels; c++) {
      const o = <usize>c << 2;
      const lc = load<f32>(l + o), uc = load<f32>(u + o);
      const sc = (uc - lc) / n;
      const cl = clampP(load<f32>(x + o), lc, uc);
      store<f32>(y + o, roundHalfUpS((cl - lc) / sc) * sc + lc);
    }
    x += xs; y += ys;
  }
}

/**
 * Per-channel STE / LSQ backward: dx = dy·[l[c] ≤ x ≤ u[c]] (dx may be 0; in place fine), and
 * dl[c] += Σ_{x<l} dy − A_c/n, du[c] += Σ_{x>u} dy + A_c/n with A_c = Σ_inside dy·(r − t)
 * (dl, du: f32 arrays accumulated into; each may be 0). Channel blocks of 4 outer, pixels inner,
 * f32 partials of ≤ FLUSH pixels added in f64, one rounding into dl/du.
 */
export function f32_fake_quant_pc_backward_nhwc(x: usize, xStride: i32, dy: usize, dyStride: i32, dx: usize, dxStride: i32,
  pixels: i32, channels: i32, l: usize, u: usize, n: f32, dl: usize, du: usize): void {
  const xs = <usize>xStride << 2, dys = <usize>dyStride << 2, dxs = <usize>dxStride << 2;
  const one = f32x4.splat(1), half = f32x4.splat(0.5), vn = f32x4.splat(n), zero = f32x4.splat(0);
  const nd = <f64>n;
  const c4 = channels & ~3;
  let c = 0;
  for (; c < c4; c += 4) {
    const o = <usize>c << 2;
    const vl = v128.load(l + o), vu = v128.load(u + o);
    const vs = f32x4.div(f32x4.sub(vu, vl), vn);
    let px = x + o, pd = dy + o, pg = dx + o;
    let a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0;
    let b0: f64 = 0, b1: f64 = 0, b2: f64 = 0, b3: f64 = 0;
    let e0: f64 = 0, e1: f64 = 0, e2: f64 = 0, e3: f64 = 0;
    let i = 0;
    while (i < pixels) {
      const cnt = min(pixels - i, FLUSH);
      let pa = zero, pb = zero, pc = zero;
      for (let j = 0; j < cnt; j++) {
        const xv = v128.load(px), g = v128.load(pd);
        const below = f32x4.lt(xv, vl), above = f32x4.gt(xv, vu);
        const inside = v128.not(v128.or(below, above));
        const cl = f32x4.pmin(f32x4.pmax(xv, vl), vu);
        const t = f32x4.div(f32x4.sub(cl, vl), vs);
        const e = f32x4.sub(roundHalfUp(t, one, half), t);
        pa = f32x4.add(pa, v128.and(f32x4.mul(g, e), inside));
        pb = f32x4.add(pb, v128.and(g, below));
        pc = f32x4.add(pc, v128.and(g, above));
        if (dx != 0) {
          v128.store(pg, v128.and(g, inside));
          pg += dxs;
        }
        px += xs; pd += dys;
      }
      a0 += <f64>f32x4.extract_lane(pa, 0); a1 += <f64>f32x4.extract_lane(pa, 1);
      a2 += <f64>f32x4.extract_lane(pa, 2); a3 += <f64>f32x4.extract_lane(pa, 3);
      b0 += <f64>f32x4.extract_lane(pb, 0); b1 += <f64>f32x4.extract_lane(pb, 1);
      b2 += <f64>f32x4.extract_lane(pb, 2); b3 += <f64>f32x4.extract_lane(pb, 3);
      e0 += <f64>f32x4.extract_lane(pc, 0); e1 += <f64>f32x4.extract_lane(pc, 1);
      e2 += <f64>f32x4.extract_lane(pc, 2); e3 += <f64>f32x4.extract_lane(pc, 3);
      i += cnt;
    }
    if (dl != 0) {
      store<f32>(dl + o, <f32>(<f64>load<f32>(dl + o) + (b0 - a0 / nd)));
      store<f32>(dl + o, <f32>(<f64>load<f32>(dl + o, 4) + (b1 - a1 / nd)), 4);
      store<f32>(dl + o, <f32>(<f64>load<f32>(dl + o, 8) + (b2 - a2 / nd)), 8);
      store<f32>(dl + o, <f32>(<f64>load<f32>(dl + o, 12) + (b3 - a3 / nd)), 12);
    }
    if (du != 0) {
      store<f32>(du + o, <f32>(<f64>load<f32>(du + o) + (e0 + a0 / nd)));
      store<f32>(du + o, <f32>(<f64>load<f32>(du + o, 4) + (e1 + a1 / nd)), 4);
      store<f32>(du + o, <f32>(<f64>load<f32>(du + o, 8) + (e2 + a2 / nd)), 8);
      store<f32>(du + o, <f32>(<f64>load<f32>(du + o, 12) + (e3 + a3 / nd)), 12);
    }
  }
  for (; c < channels; c++) {
    const o = <usize>c << 2;
    const lc = load<f32>(l + o), uc = load<f32>(u + o);
    const sc = (uc - lc) / n;
    let px = x + o, pd = dy + o, pg = dx + o;
    let sa: f64 = 0, sb: f64 = 0, se: f64 = 0;
    for (let i = 0; i < pixels; i++) {
      const xv = load<f32>(px), g = load<f32>(pd);
      let pass: f32 = 0;
      if (xv < lc) sb += <f64>g;
      else if (xv > uc) se += <f64>g;
      else {
        const t = (clampP(xv, lc, uc) - lc) / sc;
        sa += <f64>(g * (roundHalfUpS(t) - t));
        pass = g;
      }
      if (dx != 0) {
        store<f32>(pg, pass);
        pg += dxs;
      }
      px += xs; pd += dys;
    }
    if (dl != 0) store<f32>(dl + o, <f32>(<f64>load<f32>(dl + o) + (sb - sa / nd)));
    if (du != 0) store<f32>(du + o, <f32>(<f64>load<f32>(du + o) + (se + sa / nd)));
  }
}

// ---------------------------------------------------------------------------
// Per-channel affine y = x·a[c] + b[c] (mul, then add: two roundings, both builds).

export function f32_channel_affine_nhwc(x: usize, xStride: i32, y: usize, yStride: i32, pixels: i32, channels: i32,
  a: usize, b: usize): void {
  const c4 = channels & ~3;
  const xs = <usize>xStride << 2, ys = <usize>yStride << 2;
  for (let i = 0; i < pixels; i++) {
    let c = 0;
    for (; c < c4; c += 4) {
      const o = <usize>c << 2;
      v128.store(y + o, f32x4.add(f32x4.mul(v128.load(x + o), v128.load(a + o)), v128.load(b + o)));
    }
    for (; c < channels; c++) {
      const o = <usize>c << 2;
      store<f32>(y + o, load<f32>(x + o) * load<f32>(a + o) + load<f32>(b + o));
    }
    x += xs; y += ys;
  }
}

/**
 * da[c] += Σ dy·x, db[c] += Σ dy (either may be 0: skipped), then dx = dy·a[c] (dx may be 0: not
 * written; dx == dy in place is fine, the sums read dy first). Sums: channel blocks of 4 outer,
 * pixels inner, per-lane f32 partials of FLUSH pixels added into f64, then once into da/db.
 */
export function f32_channel_affine_backward_nhwc(x: usize, xStride: i32, dy: usize, dyStride: i32, dx: usize, dxStride: i32,
  pixels: i32, channels: i32, a: usize, da: usize, db: usize): void {
  if (da != 0 || db != 0) affineSums(x, xStride, dy, dyStride, pixels, channels, da, db);
  if (dx == 0) return;
  const dys = <usize>dyStride << 2, dxs = <usize>dxStride << 2;
  const c4 = channels & ~3;
  for (let i = 0; i < pixels; i++) {
    let c = 0;
    for (; c < c4; c += 4) {
      const o = <usize>c << 2;
      v128.store(dx + o, f32x4.mul(v128.load(dy + o), v128.load(a + o)));
    }
    for (; c < channels; c++) {
      const o = <usize>c << 2;
      store<f32>(dx + o, load<f32>(dy + o) * load<f32>(a + o));
    }
    dy += dys; dx += dxs;
  }
}

function affineSums(x: usize, xStride: i32, dy: usize, dyStride: i32, pixels: i32, channels: i32, da: usize, db: usize): void {
  const xs = <usize>xStride << 2, dys = <usize>dyStride << 2;
  const zero = f32x4.splat(0);
  const c4 = channels & ~3;
  let c = 0;
  for (; c < c4; c += 4) {
    const o = <usize>c << 2;
    let px = x + o, pd = dy + o;
    let a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0, b0: f64 = 0, b1: f64 = 0, b2: f64 = 0, b3: f64 = 0;
    let i = 0;
    while (i < pixels) {
      const n = min(pixels - i, FLUSH);
      let pa = zero, pb = zero;
      for (let j = 0; j < n; j++) {
        const g = v128.load(pd);
        pa = f32x4.add(pa, f32x4.mul(g, v128.load(px)));
        pb = f32x4.add(pb, g);
        px += xs; pd += dys;
      }
      a0 += <f64>f32x4.extract_lane(pa, 0); a1 += <f64>f32x4.extract_lane(pa, 1);
      a2 += <f64>f32x4.extract_lane(pa, 2); a3 += <f64>f32x4.extract_lane(pa, 3);
      b0 += <f64>f32x4.extract_lane(pb, 0); b1 += <f64>f32x4.extract_lane(pb, 1);
      b2 += <f64>f32x4.extract_lane(pb, 2); b3 += <f64>f32x4.extract_lane(pb, 3);
      i += n;
    }
    if (da != 0) {
      store<f32>(da + o, <f32>(<f64>load<f32>(da + o) + a0));
      store<f32>(da + o, <f32>(<f64>load<f32>(da + o, 4) + a1), 4);
      store<f32>(da + o, <f32>(<f64>load<f32>(da + o, 8) + a2), 8);
      store<f32>(da + o, <f32>(<f64>load<f32>(da + o, 12) + a3), 12);
    }
    if (db != 0) {
      store<f32>(db + o, <f32>(<f64>load<f32>(db + o) + b0));
      store<f32>(db + o, <f32>(<f64>load<f32>(db + o, 4) + b1), 4);
      store<f32>(db + o, <f32>(<f64>load<f32>(db + o, 8) + b2), 8);
      store<f32>(db + o, <f32>(<f64>load<f32>(db + o, 12) + b3), 12);
    }
  }
  for (; c < channels; c++) {
    const o = <usize>c << 2;
    let px = x + o, pd = dy + o;
    let sa: f64 = 0, sb: f64 = 0;
    for (let i = 0; i < pixels; i++) {
      const g = load<f32>(pd);
      sa += <f64>(g * load<f32>(px));
      sb += <f64>g;
      px += xs; pd += dys;
    }
    if (da != 0) store<f32>(da + o, <f32>(<f64>load<f32>(da + o) + sa));
    if (db != 0) store<f32>(db + o, <f32>(<f64>load<f32>(db + o) + sb));
  }
}

// ---------------------------------------------------------------------------
// Space-to-depth, TF DCR order (inverse of assembly/elementwise/depth-to-space.ts):
//   y[h, w, (i·b + j)·C + ch] = x[h·b + i, w·b + j, ch],  x: [H·b, W·b, C] → y: [H, W, C·b²].
// The input gradient of depth_to_space is exactly this permutation of dy.

export function x32_space_to_depth_nhwc(x: usize, h: i32, w: i32, c: i32, b: i32, xStride: i32, y: usize, yStride: i32): void {
  const run = <usize>c << 2;
  const xPix = <usize>xStride << 2, yPix = <usize>yStride << 2;
  const wi = <usize>w * <usize>b; // input width
  for (let hh = 0; hh < h; hh++) {
    for (let i = 0; i < b; i++) {
      const srcRow = x + <usize>(hh * b + i) * wi * xPix;
      for (let ww = 0; ww < w; ww++) {
        const dst0 = y + (<usize>hh * <usize>w + <usize>ww) * yPix + <usize>(i * b) * run;
        const src0 = srcRow + <usize>(ww * b) * xPix;
        for (let j = 0; j < b; j++) copy32(dst0 + <usize>j * run, src0 + <usize>j * xPix, c);
      }
    }
  }
}

// @ts-ignore: decorator
@inline function copy32(d: usize, s: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(d + (<usize>i << 2), v128.load(s + (<usize>i << 2)));
  for (; i < n; i++) store<f32>(d + (<usize>i << 2), load<f32>(s + (<usize>i << 2)));
}

// ---------------------------------------------------------------------------
// Backward of nearest upsampling by f: dx[h, w, ch] = Σ_{i<f} Σ_{j<f} dy[h·f + i, w·f + j, ch],
// summed in the order i, then j (the reference uses the same order: bit-identical).

export function f32_upsample_nearest_backward_nhwc(dy: usize, h: i32, w: i32, c: i32, f: i32, dyStride: i32,
  dx: usize, dxStride: i32): void {
  const dyPix = <usize>dyStride << 2, dxPix = <usize>dxStride << 2;
  const wo = <usize>w * <usize>f;
  const rowPitch = wo * dyPix;
  const c4 = c & ~3;
  for (let hh = 0; hh < h; hh++) {
    const src0 = dy + <usize>(hh * f) * rowPitch;
    for (let ww = 0; ww < w; ww++) {
      const src = src0 + <usize>(ww * f) * dyPix;
      const dst = dx + (<usize>hh * <usize>w + <usize>ww) * dxPix;
      let ch = 0;
      for (; ch < c4; ch += 4) {
        const o = <usize>ch << 2;
        let s = v128.load(src + o);
        for (let i = 0; i < f; i++) {
          const r = src + <usize>i * rowPitch + o;
          for (let j = i == 0 ? 1 : 0; j < f; j++) s = f32x4.add(s, v128.load(r + <usize>j * dyPix));
        }
        v128.store(dst + o, s);
      }
      for (; ch < c; ch++) {
        const o = <usize>ch << 2;
        let s = load<f32>(src + o);
        for (let i = 0; i < f; i++) {
          const r = src + <usize>i * rowPitch + o;
          for (let j = i == 0 ? 1 : 0; j < f; j++) s += load<f32>(r + <usize>j * dyPix);
        }
        store<f32>(dst + o, s);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Losses over pixels × channels (N elements), d = fround(p − t):
//   L1:  returns Σ|d| (f64 of f32 terms);  grad = sign(d)·k  (k = fround(1/N) from the wrapper; sign(0) = 0)
//   MSE: returns Σ d² (f64 of f32 squares); grad = d·k       (k = fround(2/N))
// grad may be 0 (loss only). The wrapper divides the sum by N.

const LOSS_L1: i32 = 0;
const LOSS_MSE: i32 = 1;

/** One loss loop; `kind` is a compile-time constant at both call sites (each gets its own specialised copy). */
@inline function lossNhwc(kind: i32, p: usize, pStride: i32, t: usize, tStride: i32, g: usize, gStride: i32,
  pixels: i32, channels: i32, k: f32): f64 {
  const c4 = channels & ~3;
  const ps = <usize>pStride << 2, ts = <usize>tStride << 2, gs = <usize>gStride << 2;
  const zero = f32x4.splat(0), vk = f32x4.splat(k), nk = f32x4.splat(-k);
  let sum: f64 = 0;
  let part = zero;
  let nvec = 0;
  for (let i = 0; i < pixels; i++) {
    let c = 0;
    for (; c < c4; c += 4) {
      const o = <usize>c << 2;
      const d = f32x4.sub(v128.load(p + o), v128.load(t + o));
      if (kind == LOSS_L1) {
        part = f32x4.add(part, f32x4.abs(d));
        if (g != 0) v128.store(g + o, v128.or(v128.and(vk, f32x4.gt(d, zero)), v128.and(nk, f32x4.lt(d, zero))));
      } else {
        part = f32x4.add(part, f32x4.mul(d, d));
        if (g != 0) v128.store(g + o, f32x4.mul(d, vk));
      }
      if (++nvec == FLUSH) {
        sum += hsum(part);
        part = zero;
        nvec = 0;
      }
    }
    for (; c < channels; c++) {
      const o = <usize>c << 2;
      const d = load<f32>(p + o) - load<f32>(t + o);
      if (kind == LOSS_L1) {
        sum += <f64>Mathf.abs(d);
        if (g != 0) store<f32>(g + o, d > 0 ? k : d < 0 ? -k : 0);
      } else {
        sum += <f64>(d * d);
        if (g != 0) store<f32>(g + o, d * k);
      }
    }
    p += ps; t += ts; g += g != 0 ? gs : 0;
  }
  return sum + hsum(part);
}

export function f32_l1_loss_nhwc(p: usize, pStride: i32, t: usize, tStride: i32, g: usize, gStride: i32,
  pixels: i32, channels: i32, k: f32): f64 {
  return lossNhwc(LOSS_L1, p, pStride, t, tStride, g, gStride, pixels, channels, k);
}

export function f32_mse_loss_nhwc(p: usize, pStride: i32, t: usize, tStride: i32, g: usize, gStride: i32,
  pixels: i32, channels: i32, k: f32): f64 {
  return lossNhwc(LOSS_MSE, p, pStride, t, tStride, g, gStride, pixels, channels, k);
}
