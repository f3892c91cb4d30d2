/**
 * `lowbit prune`: N:M sparsity (magnitude one-shot or SLS's learned per-layer N) or structural
 * filter pruning of an FP32 model, optionally fine-tuned, saved as an FP32 `.lowbit` file that
 * `lowbit eval` (MACs in mean.gmacs), `lowbit upscale` and `lowbit quantize --model x.lowbit` read.
 */
import { statSync } from "node:fs";
import { UsageError, flag, int, parseCommand, positionals, str } from "./args.ts";
import { loadModelArg, parseRange, seconds, type CliIO } from "./common.ts";
import { isLowbitPath } from "./model-options.ts";
import { loadTrainData } from "./finetune.ts";
import { readLowbitFile, writeLowbitFile } from "../io/lowbit-file.ts";
import type { Graph } from "../graph/ir.ts";
import { LowbitError } from "../runtime/errors.ts";
import { init } from "../runtime/runtime.ts";
import { finetune } from "../train/finetune.ts";
import { graphMacs, oneShotNm, parsePattern, type NMPattern } from "../methods/prune/nm-mask.ts";
import { nmPatternName } from "../kernels/nm-conv.ts";
import { slsPrune } from "../methods/prune/sls.ts";
import { filterPrune, type FilterCriterion } from "../methods/prune/filter.ts";
import { BN_SCORES, convInputStats, type BnScore } from "../methods/prune/criteria.ts";

export const PRUNE_METHODS = ["nm", "sls", "filter-bn", "filter-data", "filter-l1"] as const;
export type PruneMethod = (typeof PRUNE_METHODS)[number];

export const PRUNE_USAGE = `usage: lowbit prune --model <name|model.json|fp32.lowbit> --method nm|sls|filter-bn|filter-data|filter-l1
                   [--pattern N:M] [--budget F] [--data <dir>] [--scale S] [--steps N] -o <out.lowbit>

Prunes an FP32 model and writes an FP32 .lowbit file (quantize it with \`lowbit quantize --model out.lowbit\`).

  --method nm          magnitude one-shot N:M on every conv but head and tail (cin ≥ M); --steps > 0
                       fine-tunes with N fixed (masks re-ranked every 10 steps)
  --method sls         SLS: learns N per layer (M = 32) down to --budget of the dense MACs, then
                       fine-tunes with N fixed (--steps in total, default 300; needs --data)
  --method filter-bn   removes output filters by the BN closed form E[ReLU(N(β, γ²))] (models with
                       BatchNormalization only; --method-options score=mean|prob|var)
  --method filter-data removes filters by calibration statistics: Var[x_c]·‖W_c‖² at the consumers,
                       channel means folded into the consumers' biases (needs --data)
  --method filter-l1   removes filters with the smallest L1 norm (data-free baseline)
  --pattern <N:M>      nm pattern (default 8:32; e.g. 2:4, 4:8; N:Mp = pair-structured: the nonzeros of a
                       group in ≤ N/2 aligned channel pairs, N and M even — the faster int8 kernel)
  --budget <F>         fraction of the dense conv MACs to keep, in (0, 1] (sls, filter-*; default 0.25 / 0.5)
  --data <dir>         training/calibration images: LR images (FP32 teacher), or hr/ + lr_x<S>/ (L1 to HR);
                       never the images you evaluate on
  --scale <S>          the model's scale (checked; selects lr_x<S>/)
  --steps <N>          optimizer steps (sls: total, default 300; others: fine-tuning, default 0)
  --batch <B>          samples per step (default 4)
  --patch <P>          LR patch side (default 48)
  --lr <x>             weight learning rate (default 1e-4)
  --seed <n>           sampling seed (default 1)
  --target teacher|hr  loss: L1 to the FP32 model or to HR (default hr when --data has hr/)
  --method-options <k=v,…>  sls: lambda=<0.1>, search=<steps, default steps/2>, scorelr=<2e-3>, epoch=<10>,
                       pairs=1 (pair-structured masks, N learned in steps of 2: the faster int8 kernel);
                       filter-bn: score=mean|prob|var; filter-data: compensate=1|0
  --input-range <lo,hi> value range pixels 0..255 map to (default: the model's)
  -o, --output <f>     the .lowbit file to write
  -q, --quiet          no progress
  -h, --help           this help
`;

const OPTIONS = {
  model: { type: "string" },
  method: { type: "string" },
  pattern: { type: "string" },
  budget: { type: "string" },
  data: { type: "string" },
  scale: { type: "string" },
  steps: { type: "string" },
  batch: { type: "string" },
  patch: { type: "string" },
  lr: { type: "string" },
  seed: { type: "string" },
  target: { type: "string" },
  "method-options": { type: "string" },
  "input-range": { type: "string" },
  output: { type: "string", short: "o" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const;

function numOpt(s: string | undefined, what: string, cmd: string, lo: number, hi: number, openLo = false): number | undefined {
  if (s === undefined) return undefined;
  const v = Number(s);
  if (!Number.isFinite(v) || v < lo || v > hi || (openLo && v === lo)) throw new UsageError(`${what} must be a number in ${openLo ? "(" : "["}${lo}, ${hi}], got '${s}'`, cmd);
  return v;
}

function methodOptions(s: string | undefined, allowed: readonly string[], cmd: string): Record<string, string> {
  const o: Record<string, string> = {};
  if (s === undefined) return o;
  for (const part of s.split(",")) {
    const m = /^\s*([a-z]+)\s*=\s*(\S+)\s*$/.exec(part);
    if (!m) throw new UsageError(`--method-options takes key=value pairs, got '${part}'`, cmd);
    if (!allowed.includes(m[1])) throw new UsageError(`--method-options: '${m[1]}' is not an option of this method (${allowed.join(", ") || "none"})`, cmd);
    o[m[1]] = m[2];
  }
  return o;
}

export async function pruneCommand(argv: string[], io: CliIO): Promise<number> {
  const cmd = "prune";
  const p = parseCommand(argv, OPTIONS, cmd);
  if (flag(p, "help")) {
    io.stdout.write(PRUNE_USAGE);
    return 0;
  }
  positionals(p, [], cmd);
  const modelArg = str(p, "model", cmd), output = str(p, "output", cmd), methodArg = str(p, "method", cmd);
  if (!modelArg) throw new UsageError("--model is required", cmd);
  if (!output) throw new UsageError("-o <out.lowbit> is required", cmd);
  if (!methodArg) throw new UsageError(`--method is required (${PRUNE_METHODS.join(", ")})`, cmd);
  if (!(PRUNE_METHODS as readonly string[]).includes(methodArg)) throw new UsageError(`--method must be one of ${PRUNE_METHODS.join(", ")}; got '${methodArg}'`, cmd);
  const method = methodArg as PruneMethod;
  const patternArg = str(p, "pattern", cmd);
  if (patternArg !== undefined && method !== "nm") throw new UsageError("--pattern applies to --method nm", cmd);
  let pattern: NMPattern = { n: 8, m: 32 };
  if (patternArg !== undefined) {
    try {
      pattern = parsePattern(patternArg);
    } catch (e) {
      throw new UsageError((e as Error).message.replace(/^E_[A-Z_]+: /, ""), cmd);
    }
  }
  const budgetArg = numOpt(str(p, "budget", cmd), "--budget", cmd, 0, 1, true);
  if (budgetArg !== undefined && method === "nm") throw new UsageError("--budget does not apply to --method nm (its pattern fixes the MACs)", cmd);
  const budget = budgetArg ?? (method === "sls" ? 0.25 : 0.5);
  const steps = int(p, "steps", 0, 1e7, cmd) ?? (method === "sls" ? 300 : 0);
  const batch = int(p, "batch", 1, 4096, cmd), patch = int(p, "patch", 4, 1024, cmd), seed = int(p, "seed", 0, 2 ** 31, cmd);
  const lr = numOpt(str(p, "lr", cmd), "--lr", cmd, 0, 1);
  const target = str(p, "target", cmd);
  if (target !== undefined && target !== "teacher" && target !== "hr") throw new UsageError(`--target must be teacher or hr, got '${target}'`, cmd);
  const mo = methodOptions(str(p, "method-options", cmd),
    method === "sls" ? ["lambda", "search", "scorelr", "epoch", "pairs"] : method === "filter-bn" ? ["score"] : method === "filter-data" ? ["compensate"] : method === "nm" ? ["epoch"] : [], cmd);
  const dataDir = str(p, "data", cmd);
  const needsData = method === "sls" || method === "filter-data" || steps > 0;
  if (needsData && !dataDir) throw new UsageError(`--data <dir> is required for --method ${method}${steps > 0 && method !== "sls" ? " with --steps" : ""}`, cmd);
  const inputRange = parseRange(str(p, "input-range", cmd), cmd);

  let graph: Graph;
  if (isLowbitPath(modelArg)) {
    if (inputRange) throw new UsageError(`${modelArg}: a .lowbit file fixes its input range`, cmd);
    const m = await readLowbitFile(modelArg);
    if (!("nodes" in m)) throw new UsageError(`${modelArg} is a quantized model; prune an FP32 model, then quantize`, cmd);
    graph = m;
  } else {
    graph = await loadModelArg(modelArg, io.signal, inputRange);
  }
  const scale = int(p, "scale", 1, 16, cmd) ?? graph.meta.scale;
  if (scale !== graph.meta.scale) throw new UsageError(`--scale ${scale} does not match the model's ×${graph.meta.scale}`, cmd);
  const data = dataDir ? await loadTrainData(dataDir, scale) : null;
  if (data && target === "hr" && !data.hr) throw new UsageError(`--target hr needs hr/ and lr_x${scale}/ in --data`, cmd);
  const quiet = flag(p, "quiet");
  const runtime = await init();
  const t0 = performance.now();
  let last = 0;
  const say = (s: string, force = false) => {
    if (quiet) return;
    const now = performance.now();
    if (!force && now - last < 1000) return;
    last = now;
    io.stderr.write(`prune: ${s}\n`);
  };
  const epochOpt = mo.epoch !== undefined ? numOpt(mo.epoch, "epoch", cmd, 1, 1e6) : undefined;
  const common = { batch, patch, seed, lr, signal: io.signal, runtime, target: target as "teacher" | "hr" | undefined, epochSteps: epochOpt };
  let out: Graph;
  let note = "";
  if (method === "nm") {
    if (steps > 0) {
      const r = await slsPrune(graph, data!, { ...common, m: pattern.m, fixedN: pattern.n, pairs: pattern.pairs, steps, searchSteps: 0, budget: 1,
        onProgress: (pr) => say(`step ${pr.step}/${pr.steps} loss ${pr.loss.toExponential(3)} · ${seconds(pr.elapsedMs)}`, pr.step === pr.steps) });
      out = r.graph;
      note = `${nmPatternName(pattern)} fine-tuned ${steps} steps`;
    } else {
      out = oneShotNm(graph, pattern);
      note = `${nmPatternName(pattern)} one-shot`;
    }
  } else if (method === "sls") {
    const lambda = numOpt(mo.lambda, "lambda", cmd, 0, 1e9), scoreLr = numOpt(mo.scorelr, "scorelr", cmd, 0, 1);
    const search = mo.search !== undefined ? numOpt(mo.search, "search", cmd, 0, steps) : undefined;
    if (search !== undefined && !Number.isInteger(search)) throw new UsageError("search must be an integer number of steps", cmd);
    if (mo.pairs !== undefined && mo.pairs !== "1" && mo.pairs !== "0") throw new UsageError("pairs must be 1 or 0", cmd);
    const r = await slsPrune(graph, data!, { ...common, budget, steps, searchSteps: search, lambda, scoreLr, pairs: mo.pairs === "1",
      onProgress: (pr) => say(`step ${pr.step}/${pr.steps} ${pr.phase} loss ${pr.loss.toExponential(3)} MACs ${(100 * pr.ratio).toFixed(1)} % · ${seconds(pr.elapsedMs)}`, pr.step === pr.steps) });
    out = r.graph;
    note = `SLS${mo.pairs === "1" ? " (channel pairs)" : ""} ${r.reachedAt >= 0 ? `budget reached at step ${r.reachedAt}` : "budget completed greedily"}; N: ${[...r.n.values()].join(",")}`;
  } else {
    const criterion: FilterCriterion = method === "filter-bn" ? "bn" : method === "filter-data" ? "data" : "l1";
    const score = mo.score ?? "mean";
    if (!(BN_SCORES as readonly string[]).includes(score)) throw new UsageError(`score must be one of ${BN_SCORES.join(", ")}`, cmd);
    const compensate = mo.compensate === undefined ? undefined : mo.compensate === "1" ? true : mo.compensate === "0" ? false : (() => {
      throw new UsageError("compensate must be 1 or 0", cmd);
    })();
    const stats = criterion === "data" ? convInputStats(graph, { lr: data!.lr }, { signal: io.signal, runtime }) : undefined;
    const r = filterPrune(graph, { criterion, budget, stats, compensate, bnScore: score as BnScore });
    out = r.graph;
    note = `${method} keeps ${(100 * r.ratio).toFixed(1)} % of each prunable channel group`;
    if (steps > 0) {
      const ft = await finetune(out, data!, { quant: null, steps, batch, patch, seed, optimizer: { lr: lr ?? 1e-4 }, signal: io.signal, runtime,
        losses: target === "teacher" || (!data!.hr && target === undefined) ? { teacher: 1, hr: 0 } : { hr: 1, teacher: 0 },
        onProgress: (pr) => say(`finetune step ${pr.step}/${pr.steps} loss ${pr.loss.toExponential(3)} · ${seconds(pr.elapsedMs)}`, pr.step === pr.steps) });
      out = ft.graph;
      note += `, fine-tuned ${steps} steps`;
    }
  }
  if (out.nodes.length === 0) throw new LowbitError("E_ARGUMENT", "internal: empty graph");
  await writeLowbitFile(output, out);
  const dm = graphMacs(graph), pm = graphMacs(out);
  if (!quiet) {
    io.stdout.write(`${output}: ${graph.meta.name} ${method} · MACs ${(100 * pm.effective / dm.effective).toFixed(1)} % of dense (${(pm.effective / 1e3).toFixed(1)}K / ${(dm.effective / 1e3).toFixed(1)}K per LR pixel) · ${note} · ${statSync(output).size} bytes · ${seconds(performance.now() - t0)}\n`);
  }
  return 0;
}
