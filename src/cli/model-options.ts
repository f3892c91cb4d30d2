/**
 * The one seam between the command line and model configurations: `--bits`, `--method` and
 * `--calib` are validated here into ModelOptions, and `buildModel(graph, options)` turns a
 * loaded FP32 graph into the CompilableModel the engine runs. Every command (upscale, eval)
 * goes through it, so a new quantization method plugs in by extending `buildModel` alone.
 */
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { Graph } from "../graph/ir.ts";
import { fp32Model, type CompilableModel } from "../engine/upscaler-api.ts";
import { LowbitError } from "../runtime/errors.ts";
import { UsageError } from "./args.ts";

/** Weight / activation bit widths, or full precision. */
export type Bits = { kind: "fp32" } | { kind: "int"; w: number; a: number };

/**
 * Quantization methods the CLI accepts (shared/methods/*.md and DESIGN.md's quant/ list):
 * uniform PTQ observers (minmax, percentile, mse) and the SR-specific methods.
 */
export const METHODS = ["minmax", "percentile", "mse", "daq", "dfsq", "odm", "adabm", "cadyq", "fqsr"] as const;
export type Method = (typeof METHODS)[number];

/** Bits the kernels can hold: int8 down to int2 codes for weights and activations. */
export const MIN_BITS = 2;
export const MAX_BITS = 8;

export interface ModelOptions {
  bits: Bits;
  /** Set iff bits is integer (default "minmax"). */
  method?: Method;
  /** Calibration image directory (absolute path), when given. */
  calib?: string;
}

/** `fp32` or `wXaY` (X, Y in 2..8), case-insensitive. */
export function parseBits(s: string, command = ""): Bits {
  const v = s.trim().toLowerCase();
  if (v === "fp32" || v === "f32" || v === "float32") return { kind: "fp32" };
  const m = /^w(\d+)a(\d+)$/.exec(v);
  if (!m) throw new UsageError(`--bits must be fp32 or wXaY (e.g. w8a8, w4a8), got '${s}'`, command, "E_BITS");
  const w = Number(m[1]);
  const a = Number(m[2]);
  for (const [n, what] of [[w, "weight"], [a, "activation"]] as const) {
    if (n < MIN_BITS || n > MAX_BITS) {
      throw new UsageError(`--bits ${s}: ${what} bits must be in ${MIN_BITS}..${MAX_BITS}, got ${n}`, command, "E_BITS");
    }
  }
  return { kind: "int", w, a };
}

export function bitsName(b: Bits): string {
  return b.kind === "fp32" ? "fp32" : `w${b.w}a${b.a}`;
}

/** What JSON/table output calls a configuration: "fp32", or e.g. "w8a8 minmax". */
export function configName(o: ModelOptions): string {
  return o.bits.kind === "fp32" ? "fp32" : `${bitsName(o.bits)} ${o.method}`;
}

/**
 * Validates the raw option strings. Usage errors (exit 2): malformed bits, unknown method,
 * --method/--calib without integer bits. E_IO (exit 1): --calib is not a readable directory.
 */
export function parseModelOptions(raw: { bits?: string; method?: string; calib?: string }, command = ""): ModelOptions {
  const bits = raw.bits === undefined ? ({ kind: "fp32" } as Bits) : parseBits(raw.bits, command);
  if (bits.kind === "fp32") {
    if (raw.method !== undefined) throw new UsageError(`--method ${raw.method} needs quantized --bits (e.g. --bits w8a8); fp32 has no method`, command);
    if (raw.calib !== undefined) throw new UsageError("--calib needs quantized --bits (e.g. --bits w8a8); fp32 is not calibrated", command);
    return { bits };
  }
  const method = (raw.method ?? "minmax").toLowerCase();
  if (!(METHODS as readonly string[]).includes(method)) {
    throw new UsageError(`unknown --method '${raw.method}'; known: ${METHODS.join(", ")}`, command);
  }
  let calib: string | undefined;
  if (raw.calib !== undefined) {
    calib = resolve(raw.calib);
    if (!existsSync(calib) || !statSync(calib).isDirectory()) {
      throw new LowbitError("E_IO", `--calib ${raw.calib}: not a directory`);
    }
  }
  return { bits, method: method as Method, calib };
}

/**
 * The model a configuration runs. FP32 is the graph as imported; quantized configurations
 * arrive with the quantized-inference work (this body is where they plug in). Async because
 * calibration reads images and runs the FP32 model.
 */
export async function buildModel(graph: Graph, options: ModelOptions): Promise<CompilableModel> {
  if (options.bits.kind === "fp32") return fp32Model(graph);
  throw new LowbitError(
    "E_ARGUMENT",
    `quantized configurations arrive with the quantized-inference work: ${configName(options)} is not available in this build; use --bits fp32`,
  );
}
