// Plain-TS ground truth for the conv gradients (stride 1, 'same' zero padding,
// odd k, NHWC with pixel strides, HWIO weights W[ky][kx][ci][o]). Written from
// the definition, for readability: float64 sums, one f32 rounding per stored
// element. The WASM kernels are compared to these within stated rounding
// bounds (test/kernels/grad-conv.test.ts), and these in turn to central finite
// differences of the forward conv.

/** A strided NHWC f32 tensor: pixel (y, x) channel c at offset + (y·w + x)·stride + c. */
export interface StridedRef {
  data: Float32Array;
  offset?: number;
  stride: number;
}

function at(t: StridedRef, w: number, y: number, x: number): number {
  return (t.offset ?? 0) + (y * w + x) * t.stride;
}

/**
 * dw[ky][kx][ci][o] += Σ_{y,x} x[y+ky−p, x+kx−p, ci]·dy[y, x, o] and db[o] += Σ dy[y, x, o]
 * (accumulating: dw/db keep their contents; the sum is f64 and the add rounds once). When `mag` is
 * given it receives Σ|x·dy| per weight (and `magB` Σ|dy| per bias): the scale of f32 rounding error.
 */
export function f32ConvBackwardWeightsRef(a: {
  x: StridedRef; dy: StridedRef; h: number; w: number; cin: number; cout: number; k: number;
  dw: Float32Array; db?: Float32Array | null; mag?: Float64Array; magB?: Float64Array;
}): void {
  const { x, dy, h, w, cin, cout, k, dw } = a;
  const p = (k - 1) / 2;
  for (let ky = 0; ky < k; ky++) {
    for (let kx = 0; kx < k; kx++) {
      for (let ci = 0; ci < cin; ci++) {
        for (let o = 0; o < cout; o++) {
          let s = 0, m = 0;
          for (let y = 0; y < h; y++) {
            const iy = y + ky - p;
            if (iy < 0 || iy >= h) continue;
            for (let xx = 0; xx < w; xx++) {
              const ix = xx + kx - p;
              if (ix < 0 || ix >= w) continue;
              const v = x.data[at(x, w, iy, ix) + ci] * dy.data[at(dy, w, y, xx) + o];
              s += v;
              m += Math.abs(v);
            }
          }
          const i = ((ky * k + kx) * cin + ci) * cout + o;
          if (a.mag) a.mag[i] = m + Math.abs(dw[i]);
          dw[i] = dw[i] + s;
        }
      }
    }
  }
  if (a.db) {
    for (let o = 0; o < cout; o++) {
      let s = 0, m = 0;
      for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) {
        const v = dy.data[at(dy, w, y, xx) + o];
        s += v;
        m += Math.abs(v);
      }
      if (a.magB) a.magB[o] = m + Math.abs(a.db[o]);
      a.db[o] = a.db[o] + s;
    }
  }
}

/**
 * The input gradient from its definition: dx[y, x, ci] = Σ_{ky,kx,o} dy[y−ky+p, x−kx+p, o]·W[ky][kx][ci][o]
 * (dy zero outside the image). Writes dx (other elements untouched); `mag` gets Σ|dy·W| per element.
 */
export function f32ConvBackwardInputRef(a: {
  dy: StridedRef; dx: StridedRef; h: number; w: number; cin: number; cout: number; k: number;
  weights: Float32Array; mag?: Float64Array;
}): void {
  const { dy, dx, h, w, cin, cout, k, weights } = a;
  const p = (k - 1) / 2;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ci = 0; ci < cin; ci++) {
        let s = 0, m = 0;
        for (let ky = 0; ky < k; ky++) {
          const oy = y - ky + p;
          if (oy < 0 || oy >= h) continue;
          for (let kx = 0; kx < k; kx++) {
            const ox = x - kx + p;
            if (ox < 0 || ox >= w) continue;
            const gp = at(dy, w, oy, ox);
            const wp = ((ky * k + kx) * cin + ci) * cout;
            for (let o = 0; o < cout; o++) {
              const v = dy.data[gp + o] * weights[wp + o];
              s += v;
              m += Math.abs(v);
            }
          }
        }
        dx.data[at(dx, w, y, x) + ci] = s;
        if (a.mag) a.mag[(y * w + x) * cin + ci] = m;
      }
    }
  }
}
