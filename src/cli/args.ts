/**
 * Argument handling shared by the commands: node:util parseArgs in strict mode, with its
 * TypeErrors turned into UsageError (exit 2), and typed validators for option values.
 */
import { parseArgs } from "node:util";
import { LowbitError, type LowbitErrorCode } from "../runtime/errors.ts";

/**
 * A command line that cannot be right whatever the files contain: unknown option, missing or
 * extra argument, malformed value. The CLI exits 2 for these (1 for every other failure) and
 * points at `--help`. It is a LowbitError so library callers of the command functions see the
 * usual `code`.
 */
export class UsageError extends LowbitError {
  /** The command whose `--help` explains the usage ("" for the top level). */
  readonly command: string;
  constructor(message: string, command = "", code: LowbitErrorCode = "E_ARGUMENT") {
    super(code, message);
    this.name = "UsageError";
    this.command = command;
  }
}

export type OptionSpecs = Record<string, { type: "string" | "boolean"; short?: string; multiple?: false }>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Strict parse: unknown options, missing values and `--flag=value` on booleans are usage errors. */
export function parseCommand(argv: string[], options: OptionSpecs, command: string): Parsed {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
    return { values: r.values as Parsed["values"], positionals: r.positionals };
  } catch (e) {
    const err = e as Error & { code?: string };
    if (typeof err.code === "string" && err.code.startsWith("ERR_PARSE_ARGS")) {
      // Node's messages are long and mention `args`; keep the useful first sentence.
      let msg = err.message.split(/\. (?=To specify|Did you)/)[0].replace(/^Unknown option/, "unknown option");
      msg = msg.replace(/^Option '(-[^' ]+)(?: <value>)?' argument missing$/, "option '$1' needs a value");
      msg = msg.replace(/^Option '(-[^' ]+)' does not take an argument$/, "option '$1' does not take a value");
      throw new UsageError(msg, command);
    }
    throw e;
  }
}

/** A string option's value, or undefined; `--x=` (empty) is a usage error. */
export function str(p: Parsed, name: string, command: string): string | undefined {
  const v = p.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} needs a non-empty value`, command);
  return v;
}

/** An integer option in [lo, hi], or undefined. Accepts decimal digits only ("1e3", "12px" are errors). */
export function int(p: Parsed, name: string, lo: number, hi: number, command: string): number | undefined {
  const v = str(p, name, command);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new UsageError(`--${name} must be an integer, got '${v}'`, command);
  const n = Number(v);
  if (n < lo || n > hi) throw new UsageError(`--${name} must be in [${lo}, ${hi}], got ${n}`, command);
  return n;
}

/** One of a fixed set of words, or undefined. */
export function oneOf<T extends string>(p: Parsed, name: string, allowed: readonly T[], command: string): T | undefined {
  const v = str(p, name, command);
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${allowed.join(", ")}; got '${v}'`, command);
  return v as T;
}

export function flag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

/** Exactly `n` positionals named by `names` (for the message). */
export function positionals(p: Parsed, names: string[], command: string): string[] {
  if (p.positionals.length < names.length) {
    throw new UsageError(`missing ${names.slice(p.positionals.length).map((n) => `<${n}>`).join(" ")}`, command);
  }
  if (p.positionals.length > names.length) {
    throw new UsageError(`unexpected argument '${p.positionals[names.length]}'`, command);
  }
  return p.positionals;
}

export const BACKENDS = ["auto", "simd", "relaxed"] as const;
export type BackendChoice = (typeof BACKENDS)[number];
