/**
 * DAQ weight quantizer (spec daq.md §4, DAQ-pytorch `Conv2d_Q.forward`): per tensor, μ = 0,
 * σ_W = unbiased std over all weights (about their mean, as torch.std), Δ_W = G[w−1]·σ_W,
 * midrise with half-even rounding, clip to ±(2^(w−1) − ½)·Δ_W:
 *
 *     r = round(w/Δ_W + ½),  ŵ = clamp((r − ½)·Δ_W, ±T)  =  (Δ_W/2)·m,  m = 2r − 1 clamped to ±(2^w − 1)
 *
 * so m is odd and |m| ≤ 2^w − 1 (w = 8 → ±255, hence Int16). The engine multiplies by the f32
 * wscale = fround(Δ_W/2), so the oracle's dequantized weights are fround(wscale·m) (a single
 * rounding: wscale·m is exact in f64). σ_W = 0 (constant tensor, or one weight where torch's
 * std is NaN) → the code's mask gives ŵ = 0: wscale = 0, codes = +1 (any odd code decodes to 0).
 */
import { check, checkInt } from "../../runtime/errors.ts";
import { type DaqStepTable, checkDaqBits, checkStepTable, daqStepMultiplier, roundHalfEven } from "./step-table.ts";

export interface DaqWeightOptions {
  /** Weight bits 1..8. */
  bits: number;
  stepTable?: DaqStepTable;
  finetune?: boolean;
}

export interface DaqConvShape {
  /** Square kernel size (graph convs are k×k). */
  k: number;
  cin: number;
  cout: number;
}

export interface DaqQuantizedWeights {
  /** OHWI odd codes: codes[((o·k + kh)·k + kw)·cin + c] ∈ ±{1, 3, …, 2^w − 1}. */
  codes: Int16Array;
  /** Real weight = wscale·m (f32 value; the same for every output channel). */
  wscale: number;
  /** Δ_W = G·σ_W (f64). */
  step: number;
  /** σ_W, unbiased (f64). */
  sigma: number;
  /** Dequantized weights in the input's HWIO layout: fround(wscale·m). For oracle path C. */
  dequantHWIO: Float32Array;
  /** max_o Σ|m| over the output channel's taps (the ISSUE5 overflow bound's weight factor). */
  maxAbsSum: number;
}

/** Quantizes HWIO float weights [k][k][cin][cout]. E_SHAPE on a length mismatch, E_RANGE on NaN/Inf. */
export function daqQuantizeWeights(weightsHWIO: Float32Array, shape: DaqConvShape, opts: DaqWeightOptions): DaqQuantizedWeights {
  check(weightsHWIO instanceof Float32Array, "E_ARGUMENT", "weights must be a Float32Array");
  const { k, cin, cout } = shape;
  checkInt(k, 1, 64, "kernel size", "E_SHAPE");
  checkInt(cin, 1, 1 << 16, "cin", "E_SHAPE");
  checkInt(cout, 1, 1 << 16, "cout", "E_SHAPE");
  const n = k * k * cin * cout;
  check(weightsHWIO.length === n, "E_SHAPE", `weights have ${weightsHWIO.length} elements, HWIO ${k}×${k}×${cin}×${cout} needs ${n}`);
  checkDaqBits(opts.bits, "weight bits");
  const table = opts.stepTable ?? "code";
  checkStepTable(table);
  const g = daqStepMultiplier(opts.bits, table, opts.finetune ?? false);

  let s = 0;
  for (let i = 0; i < n; i++) {
    const w = weightsHWIO[i];
    check(Number.isFinite(w), "E_RANGE", () => `weight ${i} = ${w} is not finite`);
    s += w;
  }
  const mean = s / n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (weightsHWIO[i] - mean) ** 2;
  const sigma = n > 1 ? Math.sqrt(v / (n - 1)) : 0;
  const step = g * sigma;
  const mmax = 2 ** opts.bits - 1;
  const wscale = step > 0 ? Math.fround(step / 2) : 0;

  const codes = new Int16Array(n);
  const dequantHWIO = new Float32Array(n);
  const absSum = new Float64Array(cout);
  for (let kh = 0, i = 0; kh < k; kh++) {
    for (let kw = 0; kw < k; kw++) {
      for (let c = 0; c < cin; c++) {
        for (let o = 0; o < cout; o++, i++) {
          let m = 1;
          if (step > 0) {
            m = 2 * roundHalfEven(weightsHWIO[i] / step + 0.5) - 1;
            m = Math.max(-mmax, Math.min(mmax, m));
          }
          codes[((o * k + kh) * k + kw) * cin + c] = m;
          dequantHWIO[i] = wscale * m;
          absSum[o] += Math.abs(m);
        }
      }
    }
  }
  let maxAbsSum = 0;
  for (let o = 0; o < cout; o++) maxAbsSum = Math.max(maxAbsSum, absSum[o]);
  return { codes, wscale, step, sigma, dequantHWIO, maxAbsSum };
}
