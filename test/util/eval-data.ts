import { readFileSync } from "node:fs";
import { decodeImage } from "../../src/io/image.ts";
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

/** A w×h RGB crop at (x0, y0) of an eval-set image (`lr_x2/butterfly` style path under the eval dir). */
export function evalCrop(sub: string, name: string, x0: number, y0: number, w: number, h: number): { data: Uint8Array; width: number; height: number; channels: 3 } {
  // Lazy imports keep this helper usable from tests that never read images.
  const img = decodePng(join(evalDir(), sub, `${name}.png`));
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    data[(y * w + x) * 3 + c] = img.data[((y0 + y) * img.width + x0 + x) * img.channels + c];
  }
  return { data, width: w, height: h, channels: 3 };
}

function decodePng(path: string) {
  return decodeImage(readFileSync(path));
}

/** The centred side×side RGB crop of an eval-set image. */
export function evalCentreCrop(sub: string, name: string, side: number): Uint8Array {
  const img = decodePng(join(evalDir(), sub, `${name}.png`));
  if (img.width < side || img.height < side) throw new Error(`${sub}/${name}.png is ${img.width}×${img.height}, need ${side}`);
  return evalCrop(sub, name, (img.width - side) >> 1, (img.height - side) >> 1, side, side).data;
}
