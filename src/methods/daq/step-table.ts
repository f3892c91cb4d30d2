/**
 * DAQ step table (spec daq.md §2, released code `gaussian_steps`).
 *
 * G[k] is the MSE-optimal uniform step, in units of σ, for a unit Gaussian quantized to 2^k
 * levels (G[0] = 2 is the code's convention for "one level"). The released code quantizes a
 * b-bit tensor (2^b levels) with Δ = G[b−1]·σ — one entry *coarser* than MSE-optimal, so the
 * clip T_b = (2^(b−1) − ½)·Δ is wider (b = 4: 4.395σ instead of 2.513σ). The checkpoints were
 * trained with that rule, so "code" is the default; "mse" (Δ = G[b]·σ) is offered for
 * training-free use. The same indexing applies to weights, activations and the σ codebook.
 *
 * `--finetune` (2-bit EDSR-full in the code) replaces every value/weight step by 1.596 and the
 * σ step by 0.057, whatever the bit-widths.
 */
import { LowbitError, checkInt } from "../../runtime/errors.ts";

/** G[0..8]: MSE-optimal step / σ of a unit Gaussian with 2^k uniform levels (code's constants). */
export const DAQ_GAUSSIAN_STEPS: readonly number[] = Object.freeze([2.0, 1.596, 0.996, 0.586, 0.335, 0.188, 0.104, 0.057, 0.031]);

/** `--finetune` overrides (released code, 2-bit EDSR-full). */
export const DAQ_FINETUNE_STEP = 1.596;
export const DAQ_FINETUNE_SIGMA_STEP = 0.057;

/** "code": Δ = G[b−1]·σ (released code, default). "mse": Δ = G[b]·σ (MSE-optimal for 2^b levels). */
export type DaqStepTable = "code" | "mse";

/** Smallest / largest supported bit-width of a DAQ quantizer (activations, weights, σ codebook). */
export const DAQ_MIN_BITS = 1;
export const DAQ_MAX_BITS = 8;
/** qq value that disables σ quantization (as in the code's `qq_bit != 32`). */
export const DAQ_QQ_OFF = 32;

/** Throws E_BITS unless bits is an integer in 1..8. */
export function checkDaqBits(bits: number, what = "bits"): void {
  checkInt(bits, DAQ_MIN_BITS, DAQ_MAX_BITS, what, "E_BITS");
}

/** Throws E_ARGUMENT unless table is "code" or "mse". */
export function checkStepTable(table: unknown): asserts table is DaqStepTable {
  if (table !== "code" && table !== "mse") throw new LowbitError("E_ARGUMENT", `step table must be 'code' or 'mse', got ${String(table)}`);
}

/**
 * Step / σ of a b-bit DAQ value quantizer (activations and weights): G[b−1] ("code") or G[b]
 * ("mse"); 1.596 when finetune. b in 1..8, else E_BITS.
 */
export function daqStepMultiplier(bits: number, table: DaqStepTable = "code", finetune = false): number {
  checkDaqBits(bits);
  checkStepTable(table);
  if (finetune) return DAQ_FINETUNE_STEP;
  return DAQ_GAUSSIAN_STEPS[table === "code" ? bits - 1 : bits];
}

/** Step / d_σ of the qq-bit σ codebook (same indexing; 0.057 when finetune). qq in 1..8. */
export function daqSigmaStepMultiplier(qq: number, table: DaqStepTable = "code", finetune = false): number {
  checkDaqBits(qq, "qq (σ bits)");
  checkStepTable(table);
  if (finetune) return DAQ_FINETUNE_SIGMA_STEP;
  return DAQ_GAUSSIAN_STEPS[table === "code" ? qq - 1 : qq];
}

/**
 * Clip threshold T_b / σ = (2^(b−1) − ½)·step: the outermost midrise level. "code": b = 2 → 2.394,
 * b = 4 → 4.395; "mse": b = 2 → 1.494, b = 4 → 2.513.
 */
export function daqClipThreshold(bits: number, table: DaqStepTable = "code", finetune = false): number {
  return (2 ** (bits - 1) - 0.5) * daqStepMultiplier(bits, table, finetune);
}

/**
 * Round half to even in f64 (torch.round). Math.round rounds ties toward +∞; at an exact tie
 * (r − v = ½, exact for |v| < 2^52) step back to the even neighbour.
 */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
