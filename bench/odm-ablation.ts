// ODM ablation: fine-tune on images that are NOT in the test set, report PSNR-Y / SSIM-Y on the
// held-out eval set for ODM-init PTQ and ODM with each component, plus fine-tuning time.
//
//   node --import tsx bench/odm-ablation.ts [--model esrgan-slim-x4] [--bits w4a4] [--steps 100]
//        [--batch 4] [--patch 48] [--train /work/main/data/calib] [--data ../shared/data/eval]
//        [--rows init,base,wcc,mr,mr-naive,v2,vr,vr-naive,offsets,v1,all] [--images a,b] [--json out.json]
//        [--scope body|reference|full]   (layers quantized; "reference" = DAQ's, the rest FP32)
//
// Training data: --train, a directory with hr/ + lr_x<S>/ (L1 to HR) or LR images only (FP32
// teacher). The default is the package's calibration photos (data/calib, `npm run calib-data`),
// disjoint from the eval set. Protocol as `lowbit eval`: PSNR-Y / SSIM-Y, shave = scale, on the
// uint8 output; the same seed for every row, so rows differ only by the component switched.
import { writeFileSync, existsSync, readdirSync } from "node:fs";
import { resolve, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { Upscaler, fp32Model, type CompilableModel } from "../src/engine/upscaler-api.ts";
import { listEvalSet, loadEvalPair } from "../src/metrics/evalset.ts";
import { scoreSR } from "../src/metrics/score.ts";
import { loadTrainData } from "../src/cli/finetune.ts";
import { odmFinetune, odmInitPtq, type OdmFinetuneOptions } from "../src/methods/odm/index.ts";
import { parseBits } from "../src/quant/config.ts";
import { LAYER_SCOPES, type LayerScope } from "../src/methods/scope.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Rows: a name and the components switched on (everything else off). */
const ROWS: Record<string, { label: string; o: Partial<OdmFinetuneOptions> | null }> = {
  init: { label: "ODM-init PTQ (P1/P99, γ=1, no training)", o: null },
  base: { label: "QAT: L_R only (ranges + weights), γ frozen", o: { wcc: false } },
  wcc: { label: "+ WCC (v2)", o: { wcc: true } },
  mr: { label: "+ cooperative MR (v2, (cos+1)/2)", o: { wcc: false, mismatch: true } },
  "mr-naive": { label: "+ naive MR (v2, sim = 1)", o: { wcc: false, mismatch: { cooperative: false } } },
  v2: { label: "v2 full: WCC + cooperative MR", o: { wcc: true, mismatch: true } },
  vr: { label: "+ variance reg. with sign rule (v1)", o: { wcc: false, variance: true } },
  "vr-naive": { label: "+ variance reg., no sign rule (v1)", o: { wcc: false, variance: { cooperative: false } } },
  offsets: { label: "+ offsets on 25 % of layers (v1)", o: { wcc: false, offsets: 0.25 } },
  v1: { label: "v1 full: variance reg. (sign) + offsets", o: { wcc: false, variance: true, offsets: 0.25 } },
  all: { label: "v1 + v2: WCC + MR + VR + offsets", o: { wcc: true, mismatch: true, variance: true, offsets: 0.25 } },
};

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      model: { type: "string", default: "esrgan-slim-x4" }, bits: { type: "string", default: "w4a4" },
      steps: { type: "string", default: "100" }, batch: { type: "string", default: "4" }, patch: { type: "string", default: "48" },
      lr: { type: "string" }, train: { type: "string" }, data: { type: "string" }, rows: { type: "string" }, images: { type: "string" },
      json: { type: "string" }, seed: { type: "string", default: "1" }, scope: { type: "string", default: "body" },
    },
  });
  const rt = await createRuntime({ backend: "simd" });
  const graph = await loadModel(a.model!);
  const scale = graph.meta.scale;
  const bits = parseBits(a.bits!);
  if (bits === "fp32") throw new Error("--bits must be integer bits");
  const trainDir = a.train ?? (existsSync(join(ROOT, "data", "calib")) ? join(ROOT, "data", "calib") : "/work/main/data/calib");
  const evalDir = a.data ?? (existsSync(resolve(ROOT, "..", "shared", "data", "eval")) ? resolve(ROOT, "..", "shared", "data", "eval") : "/work/shared/data/eval");
  const train = await loadTrainData(trainDir, scale);
  let pairs = await listEvalSet(evalDir, scale);
  if (a.images) pairs = pairs.filter((p) => a.images!.split(",").includes(p.name));
  const test = await Promise.all(pairs.map((p) => loadEvalPair(p, { channels: 3 })));
  // Never report accuracy on trained images: file names of the training set vs the test set.
  const trainNames = new Set<string>();
  for (const d of [trainDir, join(trainDir, "hr"), join(trainDir, `lr_x${scale}`)]) {
    if (existsSync(d)) for (const f of readdirSync(d)) trainNames.add(f.replace(/\.(png|jpe?g)$/i, ""));
  }
  const overlap = pairs.filter((p) => trainNames.has(p.name));
  if (overlap.length) throw new Error(`train and test overlap: ${overlap.map((p) => p.name).join(", ")}`);
  const rows = (a.rows ?? Object.keys(ROWS).join(",")).split(",");
  for (const r of rows) if (!ROWS[r]) throw new Error(`unknown row '${r}' (${Object.keys(ROWS).join(", ")})`);
  const scope = a.scope as LayerScope;
  if (!LAYER_SCOPES.includes(scope)) throw new Error(`--scope must be one of ${LAYER_SCOPES.join(", ")}`);
  const steps = Number(a.steps), batch = Number(a.batch), patch = Number(a.patch), seed = Number(a.seed);
  const log = (s: string) => console.error(`${new Date().toISOString().slice(11, 19)} ${s}`);
  log(`${a.model} ${a.bits} scope ${scope} · train ${trainDir} (${train.lr.length} ${train.hr ? "LR/HR pairs" : "LR images"}) · test ${evalDir} (${test.map((t) => t.name).join(", ")}) · ${steps} steps × batch ${batch} @ ${patch}²`);

  const score = async (m: CompilableModel) => {
    const up = new Upscaler(m, rt, { tile: 128 });
    const out: { name: string; psnr: number; ssim: number }[] = [];
    try {
      for (const t of test) {
        const s = scoreSR(await up.upscale(t.lr), t.hr, scale);
        out.push({ name: t.name, psnr: s.psnrY, ssim: s.ssimY });
      }
    } finally {
      up.dispose();
    }
    return { images: out, psnr: out.reduce((s, x) => s + x.psnr, 0) / out.length, ssim: out.reduce((s, x) => s + x.ssim, 0) / out.length };
  };
  const fp = await score(fp32Model(graph));
  log(`FP32: ${fp.psnr.toFixed(4)} / ${fp.ssim.toFixed(4)}`);
  const results: unknown[] = [];
  const save = () => {
    if (a.json) writeFileSync(a.json, JSON.stringify({ tool: "bench/odm-ablation.ts", model: a.model, bits: a.bits, scope, steps, batch, patch, seed, train: trainDir, test: test.map((t) => t.name), fp32: fp, rows: results }, null, 1));
  };
  for (const r of rows) {
    const row = ROWS[r];
    const t0 = performance.now();
    let model, ms = 0, lossFirst = NaN, lossLast = NaN;
    if (!row.o) {
      model = (await odmInitPtq(graph, train.lr, { weightBits: bits.weightBits, actBits: bits.actBits, patchSize: patch, seed, runtime: rt, scope })).model;
      ms = performance.now() - t0;
    } else {
      const res = await odmFinetune(graph, train, { weightBits: bits.weightBits, actBits: bits.actBits, steps, batch, patch, seed, lr: a.lr ? Number(a.lr) : undefined, runtime: rt, scope, ...row.o });
      model = res.model;
      ms = res.ms;
      lossFirst = res.losses[0];
      lossLast = res.losses.slice(-10).reduce((s, x) => s + x, 0) / Math.min(10, res.losses.length);
    }
    const s = await score(model);
    results.push({ row: r, label: row.label, config: model.config, ms, lossFirst, lossLast, ...s });
    log(`${r.padEnd(9)} ${s.psnr.toFixed(4)} / ${s.ssim.toFixed(4)} (Δ ${(s.psnr - fp.psnr).toFixed(3)} dB) · ${(ms / 1000).toFixed(1)} s · loss ${lossFirst.toFixed(4)} → ${lossLast.toFixed(4)} · ${row.label}`);
    save();
  }
  console.log(`| row | PSNR-Y | SSIM-Y | Δ vs FP32 | time |`);
  console.log(`|---|---|---|---|---|`);
  console.log(`| FP32 | ${fp.psnr.toFixed(2)} | ${fp.ssim.toFixed(4)} | – | – |`);
  for (const x of results as { label: string; psnr: number; ssim: number; ms: number }[]) {
    console.log(`| ${x.label} | ${x.psnr.toFixed(2)} | ${x.ssim.toFixed(4)} | ${(x.psnr - fp.psnr).toFixed(2)} | ${(x.ms / 1000).toFixed(0)} s |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
