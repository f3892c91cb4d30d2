/**
 * What the commands share: the streams they write to, the package root (version, default eval
 * data), runtime creation for `--backend`, and model loading with a short summary.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Graph } from "../graph/ir.ts";
import { UsageError } from "./args.ts";
import { loadModel } from "../models/registry.ts";
import { createRuntime, type Runtime } from "../runtime/runtime.ts";
import type { ProgressSink } from "./progress.ts";
import type { BackendChoice } from "./args.ts";

/** Streams and environment a command runs with (process's by default; tests may substitute). */
export interface CliIO {
  stdout: ProgressSink;
  stderr: ProgressSink;
  env: Record<string, string | undefined>;
  /** Aborted on Ctrl-C. */
  signal?: AbortSignal;
}

export function processIO(signal?: AbortSignal): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, signal };
}

let rootCache: string | null | undefined;

/** The package root: the nearest ancestor of this module with a package.json named "lowbit". */
export function packageRoot(): string | null {
  if (rootCache !== undefined) return rootCache;
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(d, "package.json");
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, "utf8")).name === "lowbit") return (rootCache = d);
      } catch {
        /* keep walking */
      }
    }
    if (dirname(d) === d) return (rootCache = null);
    d = dirname(d);
  }
}

export function packageVersion(): string {
  const root = packageRoot();
  if (!root) return "unknown";
  try {
    return String(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version);
  } catch {
    return "unknown";
  }
}

/**
 * The eval set used when `--data` is absent: $LOWBIT_EVAL_DIR, else `../shared/data/eval`
 * relative to the repository root (the development layout); null when neither has `hr/`.
 */
export function defaultEvalDir(env: Record<string, string | undefined>): string | null {
  const fromEnv = env.LOWBIT_EVAL_DIR;
  if (fromEnv) return existsSync(join(fromEnv, "hr")) ? resolve(fromEnv) : null;
  const root = packageRoot();
  if (!root) return null;
  const cand = resolve(root, "..", "shared", "data", "eval");
  return existsSync(join(cand, "hr")) ? cand : null;
}

/** A fresh runtime for the chosen backend (`auto`: relaxed when this host runs it correctly). */
export function runtimeFor(backend: BackendChoice | undefined): Promise<Runtime> {
  return createRuntime({ backend: backend ?? "auto" });
}

/** A registered name, a model.json path, or a directory holding model.json. */
export async function loadModelArg(arg: string, signal?: AbortSignal, inputRange?: [number, number]): Promise<Graph> {
  let src = arg;
  if (existsSync(arg) && !arg.endsWith(".json") && existsSync(join(arg, "model.json"))) src = join(arg, "model.json");
  return loadModel(src, inputRange ? { signal, inputRange } : { signal });
}

/** `--input-range lo,hi` (or lo-hi, lo:hi): the value range pixels 0..255 are mapped to. */
export function parseRange(s: string | undefined, command: string): [number, number] | undefined {
  if (s === undefined) return undefined;
  const m = /^\s*(-?[0-9.]+)\s*[,:]\s*(-?[0-9.]+)\s*$/.exec(s) ?? /^\s*(-?[0-9.]+)\s*-\s*([0-9.]+)\s*$/.exec(s);
  const lo = m ? Number(m[1]) : NaN, hi = m ? Number(m[2]) : NaN;
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(lo < hi)) {
    throw new UsageError(`--input-range takes lo,hi with lo < hi (e.g. 0,255 or 0,1), got '${s}'`, command);
  }
  return [lo, hi];
}

/** "0–255" / "0–1" */
export function rangeText(r: readonly [number, number]): string {
  return `${r[0]}–${r[1]}`;
}

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(1)} s`;
}
