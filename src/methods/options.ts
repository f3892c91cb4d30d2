/**
 * Parsing of `--method-options` key=value strings shared by the methods that take them
 * (CLI `--method-options`, bench config names such as `w4a4-adabm-bac=0`).
 */
import { LowbitError } from "../runtime/errors.ts";

/** A finite number, or undefined when the key is absent. */
export function numberOption(o: Readonly<Record<string, string>>, key: string): number | undefined {
  if (o[key] === undefined) return undefined;
  const v = Number(o[key]);
  if (!Number.isFinite(v)) throw new LowbitError("E_ARGUMENT", `--method-options ${key}=${o[key]}: not a number`);
  return v;
}

/** 1/true/on or 0/false/off, or undefined when the key is absent. */
export function boolOption(o: Readonly<Record<string, string>>, key: string): boolean | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (v === "1" || v === "true" || v === "on") return true;
  if (v === "0" || v === "false" || v === "off") return false;
  throw new LowbitError("E_ARGUMENT", `--method-options ${key}=${v}: expected 1 or 0`);
}

/** Rejects keys a method does not know. */
export function checkOptionKeys(o: Readonly<Record<string, string>>, keys: readonly string[], method: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new LowbitError("E_ARGUMENT", `'${k}' is not an ${method} option (${keys.join(", ")})`);
}
