// Shared core of the exact integer 2-D Winograd int8 convs (./qs8-qc8w-conv3x3-winograd2d-nhwc.ts, and
// ./qs8-qc8w-conv5x5-winograd2d-nhwc.ts, which nests four F(2×2,3×3) — see convWinograd2d). The 3×3 conv by
// F(2×2, 3×3) does 16 multiplies per 2×2 output tile and input channel instead of 36 (direct) or 24 (the 1-D
// F(2,3) of ./qs8-conv-common.ts). The multiply unit (i32x4.dot_i16x8_s) is what bounds the int8 convs on CPUs
// without VNNI, so fewer multiplies is the only lever left. Same activations/weights/requantization contract as
// qs8_qc8w_conv_nhwc (int4 weights too: packing widens them into the same i16 layout); wrapper: src/kernels/qs8-conv.ts.
//
// Arithmetic (Lavin & Gray, scaled to integers). For one input channel, a 4×4 tile d of padded inputs
// d[r][c] = x − z_x at padded row 2·ty + r, column 2·tx + c (r, c = 0..3; the ring is 0), and the 3×3 filter g:
//
//        ⎡1  0 −1  0⎤          ⎡2  0  0⎤          ⎡1  1  1  0⎤
//   Bᵀ = ⎢0  1  1  0⎥    G' =  ⎢1  1  1⎥    Aᵀ =  ⎣0  1 −1 −1⎦
//        ⎢0 −1  1  0⎥          ⎢1 −1  1⎥
//        ⎣0  1  0 −1⎦          ⎣0  0  2⎦
//
//   V = Bᵀ d B                    (input transform: sums/differences of 4 entries, |V| ≤ 4·max|d| ≤ 1020)
//   U = G' g G'ᵀ = 4·G g Gᵀ        (weight transform, at pack time; |U| ≤ 3·3·128 = 1152: integers, fit i16)
//   M[a][b] = Σ_c U[a][b]·V[a][b]  (16 independent GEMMs over the input channels, i32x4.dot_i16x8_s)
//   Y = Aᵀ M A = 4·y               (y = the 2×2 outputs Σ_{c,kh,kw} d[r+kh][col+kw]·g[kh][kw], r, col = 0..1)
//
// Why 4·y: G' = 2·G with Lavin's G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]], and Aᵀ[(Gg Gᵀ) ⊙ (Bᵀ d B)]A is the exact
// 2×2 correlation for each channel (it nests the 1-D F(2,3): 2·y0 = M0+M1+M2, 2·y1 = M1−M2−M3, once along x,
// once along y). Everything is linear with integer coefficients, so Y = 4·Σ_c y_c exactly in Z.
//
// Overflow. |U·V| pair sums ≤ 2·1152·1020 < 2^22, but M (a sum over Cin channels) and the 16-term output
// combination may leave int32. Two's-complement addition is exact modulo 2^32, so the computed Y ≡ 4·y (mod 2^32);
// when the true 4·y lies in int32 the computed value *is* 4·y, and the arithmetic shift Y >> 2 is y exactly (4·y is
// a multiple of 4, no rounding). The wrapper (wino2dOk in src/kernels/qs8-conv.ts) takes this kernel only when
// 4·max|x − z_x|·Σ_taps|w[o]| < 2^31 for every output channel (|y| ≤ max|x − z|·Σ|w|); e.g. 8-bit codes and
// |w| ≤ 128: every 3×3 layer with Cin ≤ 1827 qualifies (5×5: Cin ≤ 657). Otherwise it falls back to the 1-D /
// direct kernels. The bias is added after the shift, so acc = y + bias_q is the direct kernel's accumulator bit for
// bit (and requantizes identically).
//
// Dataflow per pair of output rows (one tile row):
//   1. prepareI16 (shared): the 4 padded input rows as i16 (x − z), 2·Tc + 2 pixels each, Tc = max(⌈W/2⌉, 4)
//      tiles (tiles past the image read ring columns; their outputs are never stored).
//   2. transformRow: V for every tile into [tile][component j = 4a + b][Cin2] i16 — for component j, tile t's
//      operand row is at (16·t + j)·Cin2: a GEMM operand with a pixel stride of 16·Cin2.
//   3. per block of 8 output channels (its 16 U matrices, 16·Cin2·16 bytes, stay in L1 across the tile row), per
//      block of 4 tiles (the last block overlaps the previous one): the 16 GEMMs with the direct path's register
//      block (dotBlock: 4 tiles × 8 channels, i16 pairs × 32-byte weight records) into WINO2_M, then the
//      output transform, the shift, the bias, and the shared requantize/store epilogue (storePixel).
import {
  DOT_I16, MAGIC_BITS, OUT_I32, dotBlock, outElemShift, prepareI16, storePixel,
  w16BlockBytes, w16Offset, w8BlockBytes, winoBlockBytes,
} from "./qs8-conv-common";

/** M for one block: [tile i 0..3][component j 0..15][8 int32] (static: no stack traffic in AS). */
const WINO2_M: usize = memory.data(4 * 16 * 32, 16);

/**
 * Bytes of the wino2d weights of one block of 8 output channels: (16 components, k = 3; 49 component runs, k = 5)
 * × Cin2/2 pairs × 32 bytes.
 */
@inline function wino2dBlockBytes(k: i32, Cin2: i32): usize {
  return <usize>((k == 3 ? 16 : 49) * Cin2) << 4;
}

/** Offset of the wino2d section in the packed blob (after bias, Σw, w16, w8 and the 1-D Winograd sections). */
@inline function wino2dOffset(k: i32, CoutP: i32, Cin2: i32, Cin4: i32): usize {
  return w16Offset(CoutP) + <usize>(CoutP >> 3) * (w16BlockBytes(k, Cin2) + w8BlockBytes(k, Cin4) + winoBlockBytes(k, Cin2));
}

/** The 16 outputs of Bᵀ d B for 8 channels (rows r0..r3 of d at column offsets 0, px, 2px, 3px) → q + j·comp. */
@inline function transformLanes(r0: usize, rs: usize, px: usize, q: usize, comp: usize): void {
  const r1 = r0 + rs, r2 = r1 + rs, r3 = r2 + rs;
  const p2 = px << 1, p3 = p2 + px;
  // Bᵀ d: per column col, a_i = (d0 − d2, d1 + d2, d2 − d1, d1 − d3)[i].
  let d0 = v128.load(r0), d1 = v128.load(r1), d2 = v128.load(r2), d3 = v128.load(r3);
  const a00 = i16x8.sub(d0, d2), a10 = i16x8.add(d1, d2), a20 = i16x8.sub(d2, d1), a30 = i16x8.sub(d1, d3);
  d0 = v128.load(r0 + px); d1 = v128.load(r1 + px); d2 = v128.load(r2 + px); d3 = v128.load(r3 + px);
  const a01 = i16x8.sub(d0, d2), a11 = i16x8.add(d1, d2), a21 = i16x8.sub(d2, d1), a31 = i16x8.sub(d1, d3);
  d0 = v128.load(r0 + p2); d1 = v128.load(r1 + p2); d2 = v128.load(r2 + p2); d3 = v128.load(r3 + p2);
  const a02 = i16x8.sub(d0, d2), a12 = i16x8.add(d1, d2), a22 = i16x8.sub(d2, d1), a32 = i16x8.sub(d1, d3);
  d0 = v128.load(r0 + p3); d1 = v128.load(r1 + p3); d2 = v128.load(r2 + p3); d3 = v128.load(r3 + p3);
  const a03 = i16x8.sub(d0, d2), a13 = i16x8.add(d1, d2), a23 = i16x8.sub(d2, d1), a33 = i16x8.sub(d1, d3);
  // (Bᵀ d) B: per row i, V[i][·] = (a_i0 − a_i2, a_i1 + a_i2, a_i2 − a_i1, a_i1 − a_i3); component j = 4i + b.
  const c2 = comp << 1, c3 = c2 + comp, c4 = comp << 2;
  let o = q;
  v128.store(o, i16x8.sub(a00, a02)); v128.store(o + comp, i16x8.add(a01, a02));
  v128.store(o + c2, i16x8.sub(a02, a01)); v128.store(o + c3, i16x8.sub(a01, a03));
  o += c4;
  v128.store(o, i16x8.sub(a10, a12)); v128.store(o + comp, i16x8.add(a11, a12));
  v128.store(o + c2, i16x8.sub(a12, a11)); v128.store(o + c3, i16x8.sub(a11, a13));
  o += c4;
  v128.store(o, i16x8.sub(a20, a22)); v128.store(o + comp, i16x8.add(a21, a22));
  v128.store(o + c2, i16x8.sub(a22, a21)); v128.store(o + c3, i16x8.sub(a21, a23));
  o += c4;
  v128.store(o, i16x8.sub(a30, a32)); v128.store(o + comp, i16x8.add(a31, a32));
  v128.store(o + c2, i16x8.sub(a32, a31)); v128.store(o + c3, i16x8.sub(a31, a33));
}

/** Scalar twin of transformLanes for one channel (channel counts below 8). */
function transformScalar(r0: usize, rs: usize, px: usize, q: usize, comp: usize): void {
  for (let i = 0; i < 4; i++) {
    // Row i of Bᵀ d: column col of it is a(i, col).
    const ra = r0 + <usize>(i == 0 ? 0 : i == 1 ? 1 : i == 2 ? 2 : 1) * rs;
    const rb = r0 + <usize>(i == 0 ? 2 : i == 1 ? 2 : i == 2 ? 1 : 3) * rs;
    const sg: i32 = i == 1 ? 1 : -1; // a = d[ra] + sg·d[rb]
    const a0 = <i32>load<i16>(ra) + sg * <i32>load<i16>(rb);
    const a1 = <i32>load<i16>(ra + px) + sg * <i32>load<i16>(rb + px);
    const a2 = <i32>load<i16>(ra + 2 * px) + sg * <i32>load<i16>(rb + 2 * px);
    const a3 = <i32>load<i16>(ra + 3 * px) + sg * <i32>load<i16>(rb + 3 * px);
    const o = q + <usize>(4 * i) * comp;
    store<i16>(o, <i16>(a0 - a2));
    store<i16>(o + comp, <i16>(a1 + a2));
    store<i16>(o + 2 * comp, <i16>(a2 - a1));
    store<i16>(o + 3 * comp, <i16>(a1 - a3));
  }
}

/**
 * V of every tile of one tile row: `line` holds 4 padded i16 rows of `rs` bytes (tile t starts at column 2t),
 * dst gets [t][j][Cin2] (a block of 4 tiles is one contiguous 64·Cin2-byte run, not 16 streams 4 KiB-aliased in L1).
 * Channels go 8 at a time; a channel count that is not a multiple of 8 (but ≥ 8) redoes the last 8 (same values),
 * below 8 the scalar loop runs.
 */
function transformRow(line: usize, rs: usize, Tc: i32, pxBytes: usize, dst: usize, tileStride: usize): void {
  const comp = pxBytes;
  for (let t = 0; t < Tc; t++) {
    const s = line + (<usize>t << 1) * pxBytes;
    const q = dst + <usize>t * tileStride;
    if (pxBytes >= 16) {
      let c: usize = 0;
      for (; c + 16 <= pxBytes; c += 16) transformLanes(s + c, rs, pxBytes, q + c, comp);
      if (c < pxBytes) transformLanes(s + pxBytes - 16, rs, pxBytes, q + pxBytes - 16, comp);
    } else {
      for (let c: usize = 0; c < pxBytes; c += 2) transformScalar(s + c, rs, pxBytes, q + c, comp);
    }
  }
}

/** Σ_a∈{0,1,2} M[a][b] (row 0 of Aᵀ) of one half (4 channels) at p = WINO2_M + 512·tile + 16·half. */
@inline function colSum(p: usize, b: i32): v128 {
  const q = p + (<usize>b << 5);
  return i32x4.add(i32x4.add(v128.load(q), v128.load(q, 128)), v128.load(q, 256));
}

/** M[1][b] − M[2][b] − M[3][b] (row 1 of Aᵀ). */
@inline function colDiff(p: usize, b: i32): v128 {
  const q = p + (<usize>b << 5);
  return i32x4.sub(i32x4.sub(v128.load(q, 128), v128.load(q, 256)), v128.load(q, 384));
}

/** y = (Σ ± s) >> 2 + bias: the output transform's last step (s0 + s1 + s2, or s1 − s2 − s3), shifted, biased. */
@inline function outSum(s0: v128, s1: v128, s2: v128, bias: v128): v128 {
  return i32x4.add(i32x4.shr_s(i32x4.add(i32x4.add(s0, s1), s2), 2), bias);
}
@inline function outDiff(s1: v128, s2: v128, s3: v128, bias: v128): v128 {
  return i32x4.add(i32x4.shr_s(i32x4.sub(i32x4.sub(s1, s2), s3), 2), bias);
}

/**
 * The whole conv (k = 3 or 5, a compile-time constant). Arguments as qs8ConvNhwc (./qs8-conv-common.ts); `packed`
 * is the qs8 blob of the layer (it carries the wino2d section), `scratch` ≥ the wrapper's wino2dScratchBytes.
 *
 * k = 5 nests F(2×2,3×3) the way the 1-D kernel nests F(2,3): each axis splits into group A = taps (0, 1) as the
 * 3-tap filter (g0, g1, 0) and group B = taps (2, 3, 4), read 2 padded pixels (one tile) later. The four sub-filters
 * AA, BA, AB, BB are 3×3 filters on the tiles (ty, tx), (ty + 1, tx), (ty, tx + 1), (ty + 1, tx + 1), all adding
 * into the same M. An A-group's zero third tap zeroes row / column 3 of its U (G'[3] = [0, 0, 2]), so the runs per
 * component j = 4a + b are AA, BA, AB, BB without the zero ones: 9·4 + 3·2 + 3·2 + 1 = 49 multiplies per tile and
 * channel instead of 70 (1-D F(2,3)) or 100 (direct). The transformed tiles of tile rows ty and ty + 1 are stored
 * interleaved, [tx][dy][j][Cin2]: then (ty, tx), (ty + 1, tx), (ty, tx + 1), (ty + 1, tx + 1) are 0, S, 2S, 3S
 * apart (S = 16·Cin2 i16), so each component's runs are one dotBlock with a uniform row step (S, or 2S when only
 * BA and BB remain).
 */
@inline export function convWinograd2d(k: i32, input: usize, inStride: i32, H: i32, W: i32, Cin: i32, inZp: i32, inSigned: bool,
  packed: usize, Cout: i32, mult: usize, output: usize, outStride: i32, outZp: i32, qmin: i32, qmax: i32,
  mode: i32, scratch: usize): void {
  const p = (k - 1) >> 1;
  const CoutP = (Cout + 7) & ~7;
  const Cin2 = (Cin + 1) & ~1;
  const Cin4 = (Cin + 3) & ~3;
  const nT = (W + 1) >> 1;
  const Tc = (nT < 4 ? 4 : nT) + (k == 5 ? 1 : 0); // k = 5: group B reads tile tx + 1
  const lastT = (nT < 4 ? 4 : nT) - 4;
  const pxBytes = <usize>Cin2 << 1;
  const S = pxBytes << 4; // one tile's 16 components
  const tileStride = k == 5 ? S << 1 : S;
  const lineRow = <usize>(2 * Tc + 2) * pxBytes;
  const vrow = scratch;
  const line = scratch + <usize>Tc * tileStride;
  const w2 = packed + wino2dOffset(k, CoutP, Cin2, Cin4);
  const wBlock = wino2dBlockBytes(k, Cin2);
  const es = outElemShift(mode);
  const outPx: usize = <usize>outStride << es;
  const outRow: usize = <usize>W * outPx;
  const lov = f32x4.splat(<f32>(qmin - outZp));
  const hiv = f32x4.splat(<f32>(qmax - outZp));
  const mz = i32x4.splat(MAGIC_BITS - outZp);
  const zero = i32x4.splat(0);
  for (let y = 0; y < H; y += 2) {
    // Padded rows y − p … y + p + 1 (ring outside the image; 2·Tc + 2 pixels), then their Winograd transform
    // (k = 5: tile rows ty and ty + 1, interleaved).
    prepareI16(input, inStride, H, W, Cin, inZp, inSigned, y, 2 * p + 2, p, 2 * Tc + 2 - 2 * p, Cin2, line);
    transformRow(line, lineRow, Tc, pxBytes, vrow, tileStride);
    if (k == 5) transformRow(line + (lineRow << 1), lineRow, Tc, pxBytes, vrow + S, tileStride);
    const two = y + 1 < H;
    const row0 = output + <usize>y * outRow;
    for (let ob = 0; ob < CoutP; ob += 8) {
      const b0 = v128.load(packed + (<usize>ob << 2));
      const b1 = v128.load(packed + (<usize>ob << 2), 16);
      const m0 = v128.load(mult + (<usize>ob << 2));
      const m1 = v128.load(mult + (<usize>ob << 2), 16);
      const wb = w2 + <usize>(ob >> 3) * wBlock;
      const nValid = min(8, Cout - ob);
      const d0 = row0 + (<usize>ob << es);
      for (let t = 0; t < nT; t += 4) {
        const ts = t > lastT ? lastT : t;
        // The GEMMs: component j, tiles ts..ts+3 → WINO2_M[i][j] (record 32·j + 512·i).
        let pw = wb;
        const pa = vrow + <usize>ts * tileStride;
        for (let j = 0; j < 16; j++) {
          const pj = pa + <usize>j * pxBytes;
          if (k == 3) {
            pw = dotBlock(DOT_I16, pj, tileStride, pxBytes, 0, 1, pw, 0, zero, zero, WINO2_M + (<usize>j << 5), 512, 4, 8, OUT_I32,
              zero, zero, zero, zero, zero, 0);
          } else {
            // Runs (start, count, step): a, b < 3: AA BA AB BB (0, 4, S); a = 3: BA BB (S, 2, 2S); b = 3: AB BB (2S, 2, S);
            // a = b = 3: BB (3S, 1).
            const a3 = j >= 12, b3 = (j & 3) == 3;
            const start: usize = a3 ? (b3 ? 3 * S : S) : (b3 ? S << 1 : 0);
            const runs = a3 ? (b3 ? 1 : 2) : (b3 ? 2 : 4);
            const step: usize = a3 && !b3 ? S << 1 : S;
            pw = dotBlock(DOT_I16, pj + start, tileStride, pxBytes, step, runs, pw, 0, zero, zero, WINO2_M + (<usize>j << 5), 512, 4, 8,
              OUT_I32, zero, zero, zero, zero, zero, 0);
          }
        }
        for (let i = 0; i < 4; i++) {
          const x = (ts + i) << 1;
          if (x >= W) break;
          const two2 = x + 1 < W;
          const p0 = WINO2_M + (<usize>i << 9);
          const p1 = p0 + 16;
          const d = d0 + <usize>x * outPx;
          // Row 0 of Y: s_b = M[0][b] + M[1][b] + M[2][b]; y00 = s0 + s1 + s2, y01 = s1 − s2 − s3.
          let s0 = colSum(p0, 0), s1 = colSum(p0, 1), s2 = colSum(p0, 2), s3 = colSum(p0, 3);
          let u0 = colSum(p1, 0), u1 = colSum(p1, 1), u2 = colSum(p1, 2), u3 = colSum(p1, 3);
          storePixel(outSum(s0, s1, s2, b0), outSum(u0, u1, u2, b1), d, nValid, mode, m0, m1, lov, hiv, mz, 0);
          if (two2) storePixel(outDiff(s1, s2, s3, b0), outDiff(u1, u2, u3, b1), d + outPx, nValid, mode, m0, m1, lov, hiv, mz, 0);
          if (two) {
            // Row 1: t_b = M[1][b] − M[2][b] − M[3][b].
            s0 = colDiff(p0, 0); s1 = colDiff(p0, 1); s2 = colDiff(p0, 2); s3 = colDiff(p0, 3);
            u0 = colDiff(p1, 0); u1 = colDiff(p1, 1); u2 = colDiff(p1, 2); u3 = colDiff(p1, 3);
            storePixel(outSum(s0, s1, s2, b0), outSum(u0, u1, u2, b1), d + outRow, nValid, mode, m0, m1, lov, hiv, mz, 0);
            if (two2) storePixel(outDiff(s1, s2, s3, b0), outDiff(u1, u2, u3, b1), d + outRow + outPx, nValid, mode, m0, m1, lov, hiv, mz, 0);
          }
        }
      }
    }
  }
}

