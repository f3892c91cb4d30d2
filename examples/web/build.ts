// Builds the demo page into examples/web/dist/:
//   - app.js (the page) and worker.js (lowbit's worker entry), bundled by esbuild for browsers;
//   - models/<model>-<precision>.lowbit, quantized once with `lowbit quantize` on the calibration
//     images in data/calib (never the eval images): w8a8 percentile, w4a4 mse, adaptive = AdaBM
//     W4A4 base with AdaBM-calib (no fine-tuning); FP32 is read straight from @upscalerjs;
//   - samples/ + samples.json: eval images (LR ×2/×4 and HR, for PSNR) copied from the eval set.
// Usage: node --import tsx examples/web/build.ts [--models esrgan-slim-x2,…] [--precisions w8a8,…]
//                                                 [--eval DIR] [--no-models]
// Then `node --import tsx examples/web/serve.ts` and open http://localhost:8080/.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { quantizeCommand } from "../../src/cli/quantize.ts";
import { processIO } from "../../src/cli/common.ts";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
export const DIST = join(here, "dist");
export const MODELS = join(here, "models");

export const ALL_MODELS = ["esrgan-slim-x2", "esrgan-slim-x4", "esrgan-medium-x2", "esrgan-medium-x4"];
export const ALL_PRECISIONS = ["w8a8", "w4a4", "adaptive"];
const SAMPLES = ["messi5", "butterfly"];

const QUANT_ARGS: Record<string, string[]> = {
  w8a8: ["--bits", "w8a8", "--method", "percentile"],
  w4a4: ["--bits", "w4a4", "--method", "mse"],
  adaptive: ["--bits", "w4a4", "--method", "adabm", "--method-options", "steps=0"],
};

/** Copies bytes (not modes: the eval set is read-only, rebuilds must overwrite). */
const copyFileSync = (a: string, b: string) => writeFileSync(b, readFileSync(a));

/** The eval set: $LOWBIT_EVAL_DIR, else shared/data/eval beside the checkout or an ancestor. */
export function findEvalDir(explicit?: string): string | null {
  const cands = [explicit, process.env.LOWBIT_EVAL_DIR].filter(Boolean) as string[];
  for (let d = dirname(root); ; d = dirname(d)) {
    cands.push(join(d, "shared", "data", "eval"));
    if (dirname(d) === d) break;
  }
  cands.push(join(root, "data", "eval"));
  return cands.find((c) => existsSync(join(c, "hr"))) ?? null;
}

/** Bundles the page and the worker (esbuild, browser platform, ES modules). */
export async function bundle(): Promise<void> {
  mkdirSync(DIST, { recursive: true });
  await build({
    entryPoints: { app: join(here, "app.ts"), worker: join(root, "src/worker/worker-entry.ts") },
    bundle: true, format: "esm", platform: "browser", target: "es2022", outdir: DIST, logLevel: "warning", sourcemap: false,
  });
  copyFileSync(join(here, "index.html"), join(DIST, "index.html"));
}

/** Quantizes the missing `.lowbit` files. */
export async function makeModels(models: string[], precisions: string[], log: (s: string) => void = (s) => process.stderr.write(s + "\n")): Promise<void> {
  mkdirSync(MODELS, { recursive: true });
  const calib = join(root, "data", "calib");
  if (!existsSync(join(calib, "lr_x2"))) {
    // A fresh clone has no data/ (gitignored): build the calibration photos (opencv-doc from Debian,
    // disjoint from the eval set) once, as `npm run calib-data` does.
    log(`calibration images not found at ${calib}: building them (scripts/make-calib.ts)`);
    execFileSync(process.execPath, ["--import", "tsx", join(root, "scripts", "make-calib.ts"), calib], { stdio: "inherit", cwd: root });
  }
  for (const m of models) {
    for (const p of precisions) {
      const out = join(MODELS, `${m}-${p}.lowbit`);
      if (existsSync(out)) continue;
      log(`quantizing ${m} ${p} → ${out}`);
      const t0 = performance.now();
      const code = await quantizeCommand(["--model", m, ...QUANT_ARGS[p], "--calib", calib, "-o", out, "--quiet"], processIO());
      if (code !== 0) throw new Error(`lowbit quantize failed for ${m} ${p} (exit ${code})`);
      log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  }
}

/** Copies the demo's sample images (LR ×2, ×4 and HR) and writes samples.json. */
export function copySamples(evalDir: string | null): void {
  const dir = join(DIST, "samples");
  mkdirSync(dir, { recursive: true });
  const list: { name: string; lr: Record<string, string>; hr: string | null }[] = [];
  if (evalDir) {
    for (const s of SAMPLES) {
      const lr: Record<string, string> = {};
      for (const k of ["2", "4"]) {
        const src = join(evalDir, `lr_x${k}`, `${s}.png`);
        if (!existsSync(src)) continue;
        copyFileSync(src, join(dir, `${s}_x${k}.png`));
        lr[k] = `samples/${s}_x${k}.png`;
      }
      const hr = join(evalDir, "hr", `${s}.png`);
      if (existsSync(hr)) copyFileSync(hr, join(dir, `${s}_hr.png`));
      if (Object.keys(lr).length) list.push({ name: s, lr, hr: existsSync(hr) ? `samples/${s}_hr.png` : null });
    }
  }
  writeFileSync(join(DIST, "samples.json"), JSON.stringify(list, null, 1));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { models: { type: "string" }, precisions: { type: "string" }, eval: { type: "string" }, "no-models": { type: "boolean" } },
  });
  const t0 = performance.now();
  await bundle();
  copySamples(findEvalDir(values.eval));
  if (!values["no-models"]) {
    await makeModels(values.models?.split(",") ?? ALL_MODELS, values.precisions?.split(",") ?? ALL_PRECISIONS);
  }
  console.log(`demo built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${DIST} (models in ${MODELS})`);
}
