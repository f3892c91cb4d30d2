// Scalar model of the exact integer Winograd F(2×2,3×3) int8 conv (assembly/conv/qs8-qc8w-conv3x3-winograd2d-nhwc.ts),
// step by step with the kernel's int32 wraparound: it documents the transforms and lets the tests check the
// algebra (and the overflow argument) against the direct reference ./qs8-conv.ts independently of the WASM.
//
//   V = Bᵀ d B,  U = G' g G'ᵀ,  M[a][b] = Σ_c U[a][b]·V[a][b]  (int32, wrapping),  Y = Aᵀ M A (wrapping) = 4·y,
//   acc = (Y >> 2) + bias_q
//
// with d the 4×4 tile of (x − z_x) at padded rows/columns 2·ty … 2·ty + 3 / 2·tx … 2·tx + 3 (the ring is 0).
import type { QConvRefArgs } from "./qs8-conv.ts";

const BT = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]];
const G2 = [[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]];
const AT = [[1, 1, 1, 0], [0, 1, -1, -1]];

/** U = G' g G'ᵀ for output channel o, input channel c of an OHWI 3×3 weight array: 16 integers, |U| ≤ 9·max|g|. */
export function winograd2dWeightRef(weights: ArrayLike<number>, Cin: number, o: number, c: number): number[] {
  const g = (kh: number, kw: number) => weights[((o * 3 + kh) * 3 + kw) * Cin + c];
  const U: number[] = [];
  for (let a = 0; a < 4; a++) {
    for (let b = 0; b < 4; b++) {
      let u = 0;
      for (let kh = 0; kh < 3; kh++) for (let kw = 0; kw < 3; kw++) u += G2[a][kh] * g(kh, kw) * G2[b][kw];
      U.push(u);
    }
  }
  return U;
}

/** V = Bᵀ d B of one 4×4 tile d (row-major, 16 entries): 16 integers, |V| ≤ 4·max|d|. */
export function winograd2dInputRef(d: ArrayLike<number>): number[] {
  const V: number[] = [];
  for (let a = 0; a < 4; a++) {
    for (let b = 0; b < 4; b++) {
      let v = 0;
      for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) v += BT[a][r] * d[r * 4 + c] * BT[b][c];
      V.push(v);
    }
  }
  return V;
}

/**
 * int32 accumulators of a 3×3 'same' conv computed the Winograd way (k must be 3), out[p·outStride + o].
 * Every sum wraps to int32 as the kernel's i32x4 lanes do; the result equals qconvAcc32Ref exactly whenever
 * 4·max|x − z|·Σ|w[o]| < 2^31 (see the kernel header), and is garbage otherwise — which the tests also show.
 */
export function winograd2dAcc32Ref(out: Int32Array, outStride: number, a: QConvRefArgs): Int32Array {
  const { H, W, Cin, Cout, input, inStride, inZp, weights, bias } = a;
  if (a.k !== 3) throw new RangeError("winograd2dAcc32Ref: k must be 3");
  const U = Array.from({ length: Cout * Cin }, (_, i) => winograd2dWeightRef(weights, Cin, Math.floor(i / Cin), i % Cin));
  const d = new Array<number>(16);
  const M = new Int32Array(16);
  for (let ty = 0; ty < H; ty += 2) {
    for (let tx = 0; tx < W; tx += 2) {
      const V: number[][] = [];
      for (let c = 0; c < Cin; c++) {
        for (let r = 0; r < 4; r++) {
          for (let s = 0; s < 4; s++) {
            const y = ty - 1 + r, x = tx - 1 + s;
            d[r * 4 + s] = y >= 0 && y < H && x >= 0 && x < W ? input[(y * W + x) * inStride + c] - inZp : 0;
          }
        }
        V.push(winograd2dInputRef(d));
      }
      for (let o = 0; o < Cout; o++) {
        M.fill(0);
        for (let c = 0; c < Cin; c++) {
          const u = U[o * Cin + c], v = V[c];
          for (let j = 0; j < 16; j++) M[j] = (M[j] + u[j] * v[j]) | 0; // |u·v| < 2^21: exact before the wrap
        }
        for (let r = 0; r < 2; r++) {
          for (let s = 0; s < 2; s++) {
            if (ty + r >= H || tx + s >= W) continue;
            let Y = 0;
            for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) Y = (Y + AT[r][i] * AT[s][j] * M[i * 4 + j]) | 0;
            out[((ty + r) * W + tx + s) * outStride + o] = ((Y >> 2) + (bias ? bias[o] : 0)) | 0;
          }
        }
      }
    }
  }
  return out;
}
