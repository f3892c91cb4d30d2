import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Locates the shared eval set (hr/ + lr_x{2,3,4}/ + BASELINE.md) for tests: $LOWBIT_EVAL_DIR if
 * set, else `shared/data/eval` beside the repository (the repo is /work/main with /work/shared
 * next to it), else the same under any further ancestor (git worktrees live deeper, e.g.
 * /work/wt/<name>). Returns null when nothing is found — callers must then FAIL, not skip:
 * the reproduction tests are the proof that the metrics match the protocol.
 */
export function findEvalDir(): string | null {
  const env = process.env.LOWBIT_EVAL_DIR;
  if (env) return existsSync(join(env, "hr")) ? resolve(env) : null;
  const repo = fileURLToPath(new URL("../../", import.meta.url));
  for (let d = dirname(resolve(repo)); ; d = dirname(d)) {
    const cand = join(d, "shared", "data", "eval");
    if (existsSync(join(cand, "hr"))) return cand;
    if (dirname(d) === d) return null;
  }
}

/** Like {@link findEvalDir} but throws with instructions when the data is missing. */
export function evalDir(): string {
  const d = findEvalDir();
  if (d === null) {
    const env = process.env.LOWBIT_EVAL_DIR;
    throw new Error(
      env
        ? `LOWBIT_EVAL_DIR=${env} has no hr/ directory`
        : "eval data not found: expected shared/data/eval (with hr/, lr_x2..4/, BASELINE.md) beside the repository " +
            "or in an ancestor directory; set LOWBIT_EVAL_DIR to its path",
    );
  }
  return d;
}

/** All 8 images × 3 scales unless LOWBIT_EVAL_SUBSET=1 (kept as an escape hatch for slow machines). */
export function evalFull(): boolean {
  return process.env.LOWBIT_EVAL_SUBSET !== "1";
}
