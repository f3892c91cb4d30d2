/**
 * finetune(): the generic training loop over the engine — seeded patch sampling, activation-range
 * calibration, teacher, losses, batches as gradient accumulation, Adam, progress and abort.
 *
 * Each step draws `batch` samples; for each, forward + backward accumulate into one GradBuffers
 * (memory stays one sample); the mean gradient then takes one optimizer step. Losses:
 * - `hr`: L1 to the HR patch (needs data.hr; default weight 1 when HR is given);
 * - `teacher`: L1 to the FP32 model's output on the same LR patch (default 1 without HR);
 * - `features`: MSE to the FP32 model's tensor at chosen nodes (feature distillation).
 * A custom `stepFn` replaces the per-step loss/backward logic (ODM runs two backward passes and
 * combines per tensor); sampling, batching, progress, abort and the optimizer stay here.
 *
 * Determinism: everything derives from `seed` (patch order, crops, augmentation); kernels are
 * single-threaded and summation orders fixed, so the same seed gives bit-identical weights.
 */
import type { Graph } from "../graph/ir.ts";
import { runtime as defaultRuntime, type Runtime } from "../runtime/runtime.ts";
import { check, checkInt, throwIfAborted } from "../runtime/errors.ts";
import { buildTrainGraph, type TrainGraph, type TrainQuantSpec } from "./graph.ts";
import { Trainer, type GradBuffers, type Seed, type SeedTarget } from "./trainer.ts";
import type { AdamOptions } from "./adam.ts";
import { featureLoss, l1Loss } from "./losses.ts";
import { PatchSampler, type Sample, type TrainData } from "./data.ts";
import { applyState, trainState, type TrainState } from "./state.ts";

export interface FinetuneLosses {
  /** Weight of L1 to HR (default 1 when data.hr is given, else 0). */
  hr?: number;
  /** Weight of L1 to the FP32 teacher's output (default 0 with HR, 1 without). */
  teacher?: number;
  /** Feature distillation: MSE to the teacher's tensor at each target, times weight. */
  features?: ReadonlyArray<{ at: SeedTarget; weight: number }>;
}

export interface FinetuneProgress {
  /** Steps done (1-based after the first step). */
  step: number;
  steps: number;
  /** Mean loss of the step's batch. */
  loss: number;
  /** Base learning rate used by the step. */
  lr: number;
  elapsedMs: number;
}

/** What a custom step function gets. */
export interface FinetuneStepContext {
  trainer: Trainer;
  /** FP32 forward-only model (null when no loss needs it). */
  teacher: Trainer | null;
  batch: readonly Sample[];
  /** Step index (0-based). */
  step: number;
  /** Zeroed accumulators for the default losses (the function may create more). */
  grads: GradBuffers;
  /** The configured losses on the trainer's (and teacher's) last forward of `sample`. */
  losses(sample: Sample): { loss: number; seeds: Seed[] };
  signal?: AbortSignal;
}

export interface FinetuneOptions {
  /** Fake-quantization (null = FP32 fine-tuning). */
  quant: TrainQuantSpec | null;
  /** Optimizer steps (default 500). */
  steps?: number;
  /** Samples per step (default 4). */
  batch?: number;
  /** LR patch side (default 48). */
  patch?: number;
  /** Adam options (default lr 1e-4; act ranges at 10×). */
  optimizer?: AdamOptions;
  losses?: FinetuneLosses;
  /** Seed of sampling and augmentation (default 1). */
  seed?: number;
  augment?: boolean;
  /** Activation-range init: P_low/P_high of the FP32 activations over `samples` patches (default 1/99 over 8). */
  calibration?: { samples?: number; low?: number; high?: number };
  /**
   * Tensor-quantizer clips still unset (quant.tensors without init) start from the FP32 model's
   * max|x| averaged over this many patches (Trainer.warmupClips; FQSR's warm-up, default 20).
   */
  warmup?: number;
  /** Weight of the tensor quantizers' calibration loss λ·Σ mean|x − x̂| (TrainerOptions.quantLoss; default 0). */
  quantLoss?: number;
  /** Train conv weights/biases (default true); false trains only quantizer parameters. */
  trainWeights?: boolean;
  /** Start from a previous state (weights and quantizer parameters). */
  init?: TrainState;
  /** Replaces the default per-step losses/backward; returns the step's loss and parameter gradients. */
  stepFn?: (ctx: FinetuneStepContext) => { loss: number; grads: ReadonlyMap<string, ArrayLike<number>> };
  signal?: AbortSignal;
  onProgress?: (p: FinetuneProgress) => void;
  runtime?: Runtime;
}

export interface FinetuneResult {
  state: TrainState;
  /** The input graph with the trained FP32 weights. */
  graph: Graph;
  trainGraph: TrainGraph;
  /** Mean loss per step. */
  losses: number[];
  /** Activation ranges set by calibration (layer → [l, u]). */
  calibrated: Map<string, [number, number]>;
  /** Trained tensor-quantizer grids [l, u] by clip parameter name (quant.tensors). */
  clips: Map<string, [number, number]>;
  ms: number;
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

/** Fine-tunes `model` on `data` (LR patches or images, with or without HR). */
export async function finetune(model: Graph, data: TrainData, o: FinetuneOptions): Promise<FinetuneResult> {
  const t0 = Date.now();
  const steps = o.steps ?? 500, batch = o.batch ?? 4, patch = o.patch ?? 48;
  checkInt(steps, 0, 1e9, "steps");
  checkInt(batch, 1, 1 << 16, "batch");
  checkInt(patch, 1, 4096, "patch");
  const hasHr = data?.hr !== undefined;
  const wHr = o.losses?.hr ?? (hasHr ? 1 : 0);
  const wT = o.losses?.teacher ?? (hasHr ? 0 : 1);
  const feats = o.losses?.features ?? [];
  check(Number.isFinite(wHr) && wHr >= 0 && Number.isFinite(wT) && wT >= 0, "E_ARGUMENT", "loss weights must be non-negative numbers");
  check(wHr === 0 || hasHr, "E_ARGUMENT", "an HR loss needs data.hr");
  check(o.stepFn !== undefined || wHr > 0 || wT > 0 || feats.length > 0, "E_ARGUMENT", "no loss: set losses.hr, losses.teacher or losses.features");
  for (const f of feats) check(Number.isFinite(f.weight) && f.weight >= 0, "E_ARGUMENT", `feature loss weight must be a non-negative number, got ${f.weight}`);
  throwIfAborted(o.signal);

  const rt = o.runtime ?? defaultRuntime();
  const tg = buildTrainGraph(model, o.quant);
  const sampler = new PatchSampler(data, {
    patch, scale: model.meta.scale, inputRange: model.meta.inputRange, outputRange: model.meta.outputRange, seed: o.seed ?? 1, augment: o.augment,
  });
  const maxSide = Math.min(patch, Math.max(...data.lr.map((im) => Math.min(im.width, im.height))));
  const needTeacher = wT > 0 || feats.length > 0 || o.stepFn !== undefined;
  // All or nothing: an E_MEMORY while setting up leaves no blocks behind (Arena.atomic).
  const { trainer, teacher, gb } = rt.arena.atomic(() => {
    const trainer = new Trainer(rt, tg, { maxW: maxSide, maxH: maxSide, optimizer: o.optimizer, trainWeights: o.trainWeights, quantLoss: o.quantLoss });
    const teacher = needTeacher ? new Trainer(rt, buildTrainGraph(model, null), { maxW: maxSide, maxH: maxSide, forwardOnly: true }) : null;
    return { trainer, teacher, gb: trainer.createGrads() };
  });
  try {
    if (o.init) loadState(trainer, o.init);
    // Range calibration on its own sample stream (the training stream stays the same with or without it).
    let calibrated = new Map<string, [number, number]>();
    if (trainer.params.some((p) => p.kind === "act_range" && !(p.value[0] < p.value[1]))) {
      const n = o.calibration?.samples ?? 8;
      checkInt(n, 1, 1 << 16, "calibration samples");
      const cs = new PatchSampler(data, {
        patch, scale: model.meta.scale, inputRange: model.meta.inputRange, outputRange: model.meta.outputRange, seed: ((o.seed ?? 1) ^ 0x5bd1e995) >>> 0, augment: o.augment,
      });
      const samples = Array.from({ length: n }, () => {
        const s = cs.next();
        return { data: s.lr, w: s.w, h: s.h };
      });
      calibrated = trainer.calibrateActRanges(samples, { low: o.calibration?.low, high: o.calibration?.high });
    }
    if (trainer.params.some((p) => p.kind === "act_clip" && Number.isNaN(p.value[0]))) {
      const n = o.warmup ?? 20;
      checkInt(n, 1, 1 << 16, "warm-up patches");
      const ws = new PatchSampler(data, {
        patch, scale: model.meta.scale, inputRange: model.meta.inputRange, outputRange: model.meta.outputRange, seed: ((o.seed ?? 1) ^ 0x2545f491) >>> 0, augment: o.augment,
      });
      trainer.warmupClips(Array.from({ length: n }, () => {
        const s = ws.next();
        return { data: s.lr, w: s.w, h: s.h };
      }));
    }

    const losses = (s: Sample): { loss: number; seeds: Seed[] } => {
      let loss = 0;
      const seeds: Seed[] = [];
      const add = (r: { loss: number; seeds: Seed[] }): void => {
        loss += r.loss;
        seeds.push(...r.seeds);
      };
      if (wHr > 0) add(l1Loss(trainer, s.hr!, { weight: wHr, key: "hr" }));
      if (wT > 0) add(l1Loss(trainer, teacher!.output(), { weight: wT, key: "teacher" }));
      for (const f of feats) {
        const at = f.at;
        const tAt = typeof at === "object" ? trainer.graph.nodes[trainer.tg.byName.get(at.quantized)!.id].inputs[0] : at;
        add(featureLoss(trainer, at, teacher!.tensor(tAt), { weight: f.weight }));
      }
      return { loss, seeds };
    };

    const history: number[] = [];
    let lastYield = Date.now();
    for (let step = 0; step < steps; step++) {
      const batchSamples = Array.from({ length: batch }, () => sampler.next());
      const lr = trainer.optimizer!.lrAt();
      gb.zero();
      let stepLoss: number;
      let grads: ReadonlyMap<string, ArrayLike<number>>;
      if (o.stepFn) {
        const r = o.stepFn({ trainer, teacher, batch: batchSamples, step, grads: gb, losses: (s) => losses(s), signal: o.signal });
        stepLoss = r.loss;
        grads = r.grads;
      } else {
        let sum = 0;
        for (const s of batchSamples) {
          throwIfAborted(o.signal);
          teacher?.forward(s.lr, s.w, s.h, { fp: true });
          trainer.forward(s.lr, s.w, s.h);
          const r = losses(s);
          sum += r.loss;
          trainer.backward(r.seeds, gb);
          if (Date.now() - lastYield > 50) {
            await tick();
            lastYield = Date.now();
          }
        }
        stepLoss = (sum + gb.quantLoss) / batch;
        grads = trainer.gradients(gb, 1 / batch);
      }
      throwIfAborted(o.signal);
      trainer.step(grads);
      history.push(stepLoss);
      o.onProgress?.({ step: step + 1, steps, loss: stepLoss, lr, elapsedMs: Date.now() - t0 });
      if (Date.now() - lastYield > 50) {
        await tick();
        lastYield = Date.now();
      }
      throwIfAborted(o.signal);
    }
    const state = trainState(trainer);
    return { state, graph: applyState(model, state), trainGraph: tg, losses: history, calibrated, clips: trainer.clips(), ms: Date.now() - t0 };
  } finally {
    gb.dispose();
    trainer.dispose();
    teacher?.dispose();
  }
}

/** Loads a TrainState's weights and quantizer parameters into a trainer (layers by name). */
export function loadState(tr: Trainer, s: TrainState): void {
  const vals = new Map<string, Float32Array>();
  for (const l of s.layers) {
    const layer = tr.tg.byName.get(l.name);
    check(layer !== undefined, "E_ARGUMENT", `state layer '${l.name}' is not in the model`);
    vals.set(`${l.name}/weight`, l.weights);
    if (l.bias && layer.hasBias) vals.set(`${l.name}/bias`, l.bias);
    const q = layer.quant;
    if (l.act && q && q.actLevels > 0) vals.set(`${l.name}/act_range`, Float32Array.of(l.act.l, l.act.u));
    if (l.weight && q && q.weightLevels > 0) vals.set(`${l.name}/gamma`, Float32Array.of(l.weight.u / q.weightF));
    if (l.offsets && q?.offsets) {
      vals.set(`${l.name}/offset_scale`, l.offsets.scale);
      vals.set(`${l.name}/offset_shift`, l.offsets.shift);
    }
  }
  tr.setParams(vals);
}
