/**
 * FQSR from `--method-options` key=value strings (CLI `finetune --method fqsr`, and `quantize` / `eval`
 * / `upscale --method fqsr`, which train on --calib): init (warmup | percentile | mse | minmax), grid
 * (fqsr | asymmetric), lq (calibration-loss weight λ), clr (clip lr multiplier), halve (halve the lr
 * every N steps), and for the commands without their own flags steps, batch, patch, lr, seed.
 */
import { LowbitError } from "../../runtime/errors.ts";
import type { FqsrOptions } from "./finetune.ts";

export const FQSR_OPTION_KEYS = ["init", "grid", "lq", "clr", "halve", "steps", "batch", "patch", "lr", "seed"] as const;

function num(o: Record<string, string>, k: string, lo: number, hi: number, integer = false): number | undefined {
  if (o[k] === undefined) return undefined;
  const v = Number(o[k]);
  if (!Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
    throw new LowbitError("E_ARGUMENT", `--method-options ${k}=${o[k]}: expected ${integer ? "an integer" : "a number"} in [${lo}, ${hi}]`);
  }
  return v;
}

/** FqsrOptions fields from the option strings (E_ARGUMENT on unknown keys or bad values). */
export function fqsrOptionsFrom(mo: Readonly<Record<string, string>>): Partial<FqsrOptions> {
  for (const k of Object.keys(mo)) if (!(FQSR_OPTION_KEYS as readonly string[]).includes(k)) throw new LowbitError("E_ARGUMENT", `'${k}' is not an FQSR option (${FQSR_OPTION_KEYS.join(", ")})`);
  const o = { ...mo };
  if (o.init !== undefined && !["warmup", "percentile", "mse", "minmax"].includes(o.init)) throw new LowbitError("E_ARGUMENT", `--method-options init=${o.init}: expected warmup, percentile, mse or minmax`);
  if (o.grid !== undefined && o.grid !== "fqsr" && o.grid !== "asymmetric") throw new LowbitError("E_ARGUMENT", `--method-options grid=${o.grid}: expected fqsr or asymmetric`);
  const out: Partial<FqsrOptions> = {
    ...(o.init ? { init: o.init as FqsrOptions["init"] } : {}), ...(o.grid ? { grid: o.grid as FqsrOptions["grid"] } : {}),
    quantLoss: num(o, "lq", 0, 1e6), clipLrMult: num(o, "clr", 0, 1e6), halveEvery: num(o, "halve", 1, 1e9, true),
    steps: num(o, "steps", 0, 1e7, true), batch: num(o, "batch", 1, 4096, true), patch: num(o, "patch", 4, 1024, true),
    lr: num(o, "lr", 0, 1), seed: num(o, "seed", 0, 2 ** 31, true),
  };
  for (const k of Object.keys(out) as (keyof FqsrOptions)[]) if (out[k] === undefined) delete out[k];
  return out;
}
