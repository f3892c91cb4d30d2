/**
 * AdaBM fine-tuning (adabm.md §6 "Epochs 1–10", on lowbit's gradient engine): after calibration
 * (quantize.ts adabmCalibrate: epoch 0, OMSE, Δb_layer, BaC) the network weights stay frozen and
 * three groups of quantization parameters are trained round-robin, one group per epoch:
 *   u_w (weight clips) → (l_a, u_a) (activation ranges) → (m_l, l_img, u_img) (the bit measures)
 * each with its own Adam (β = 0.9, 0.999; lr 0.01, 0.01, and 0.01 for m_l / 0.1 for the image
 * thresholds) and StepLR(γ = 0.9) per epoch of that group, on LR patches only, with the FP32
 * model as the teacher:
 *   L_pix = L1(SR_q, SR_fp)                         on the 0–255 scale, as the reference (rgb_range 255)
 *   L_skt = 10·Σ_blocks ‖f̄_q − f̄_fp‖₂ /(B·#blocks),  f̄ = block output / its L2 norm (per sample)
 *   L_bit = 50·max(avg_bit − b_base, 0)              in the measure epochs only
 *
 * Bits per sample and layer: b = b_base + Δb_img + Δb_layer (hard in the forward pass), with
 * Δb_layer = round(clamp(m_l, ±1)) whose backward is tanh(m_l), and Δb_img whose backward is
 * tanh((g − (u_img + l_img)/2)·2/(u_img − l_img)) (adabm.md §2–§3). ∂L/∂b of each layer comes from the
 * trainer's fake-quant backward (the gradient through the level count n = 2^b − 1; trainer.ts).
 *
 * Choices [documented]:
 * - u_w is learned as γ in u_w = f·γ (f = the OMSE clip, γ = 1 at the start) with lr 0.01/f per
 *   layer, which makes Adam's steps in u_w those of lr 0.01 on u_w itself.
 * - L_skt: the spec's form (per-sample L2 normalisation). The reference code additionally divides
 *   f̄ by C·H·W, which makes the term ~10⁻⁶ of L_pix; `skt: 0` switches it off.
 * - Blocks are the RDB / RRDB outputs (the Add after each LFF); graphs without LFF have no L_skt.
 * - Fixed 8-bit layers of the `full` scope are not fine-tuned (they keep their calibrated ranges;
 *   the training graph runs them in FP32).
 * - The schedule (epochs × steps × batch 2 × patch) is lowbit's, chosen for time: the spec's
 *   10 × 50 × 2 at LR 96 costs ~25 min for esrgan-medium on this machine (see the README table).
 *   The bit measures act only through a rounding (Δb_layer = round(clamp(m_l))): with 8 steps at
 *   lr 0.01 m_l cannot cross a rounding boundary, so Δb_layer keeps its P30/P70 value unless
 *   `measureLrScale` (e.g. 50/steps, the reference's reach per epoch) is raised — measured both ways.
 */
import type { Graph, Node } from "../../graph/ir.ts";
import type { ImageLike } from "../../engine/image.ts";
import { check, checkInt, throwIfAborted } from "../../runtime/errors.ts";
import { init } from "../../runtime/runtime.ts";
import { buildTrainGraph } from "../../train/graph.ts";
import { Trainer, type Seed } from "../../train/trainer.ts";
import { Adam, type Param } from "../../train/adam.ts";
import { l1Loss } from "../../train/losses.ts";
import { PatchSampler } from "../../train/data.ts";
import { gradientFeature } from "../../adaptive/gradient-feature.ts";
import { adabmBits } from "./act-quantizer.ts";
import { adabmCalibrate, buildAdabmModel, type AdabmOptions, type AdabmResult } from "./quantize.ts";

export interface AdabmFinetuneOptions extends AdabmOptions {
  /** Epochs after calibration (default 10, round-robin u_w → ranges → measures). */
  epochs?: number;
  /** Optimizer steps per epoch (spec 50; lowbit default 8, for time). */
  stepsPerEpoch?: number;
  /** Patches per step (default 2). */
  trainBatch?: number;
  /** LR side of the fine-tuning patches (default 32). */
  finetunePatch?: number;
  /** Loss weights (defaults 10 and 50). */
  skt?: number;
  bitLoss?: number;
  /**
   * Multiplier of the measure group's learning rates (default 1, the spec's rates; 50/stepsPerEpoch
   * lets each short measure epoch move m_l and the thresholds as far as the reference's 50 steps).
   */
  measureLrScale?: number;
  /**
   * Adam learning rate of the activation ranges (l_a, u_a); default the spec's 0.01 whatever the
   * model's data range. Translating it to 0–1 models (0.01/255, the reference's rgb_range 255 in their
   * units) was measured and not adopted: psnr-small ×2 W4 −5.060 → −5.975 dB, esrgan-thick ×4 −1.140
   * → −1.154 (README, AdaBM table).
   */
  rangeLr?: number;
  /**
   * Adam learning rate of the weight clips u_w, in u_w's units (default the spec's 0.01). It is not
   * scale-free: on esrgan-thick, whose clips are 0.03–0.13, 0.01 per step moves them 2–4× (README).
   */
  weightClipLr?: number;
  onStep?: (p: { epoch: number; step: number; group: "w" | "a" | "measure"; loss: number; avgBits: number }) => void;
}

export interface AdabmFinetuneResult extends AdabmResult {
  /** Calibration and fine-tuning wall times (ms). */
  calibrationMs: number;
  finetuneMs: number;
  /** Mean loss per step and mean bits per step. */
  losses: number[];
  avgBits: number[];
}

const GROUPS = ["w", "a", "measure"] as const;

/** The Add nodes that close each RDB / RRDB (their input includes an LFF conv, possibly scaled). */
function blockOutputs(g: Graph): Node[] {
  const isLff = (id: number): boolean => {
    const n = g.nodes[id];
    if (n.op === "conv2d") return /^LFF_\d+(_\d+)?$/.test(n.name);
    if (n.op === "scale") return isLff(n.inputs[0]);
    return false;
  };
  return g.nodes.filter((n) => n.op === "add" && n.inputs.some(isLff));
}

/**
 * ∂/∂f of ‖f/‖f‖ − t‖₂ (t already normalised) into `out`; returns the loss term. A zero feature
 * gives a zero gradient.
 */
function normalizedDistance(out: Float32Array, f: Float32Array, t: Float32Array): number {
  let nf = 0, nt = 0;
  for (let i = 0; i < f.length; i++) {
    nf += f[i] * f[i];
    nt += t[i] * t[i];
  }
  nf = Math.sqrt(nf);
  nt = Math.sqrt(nt);
  if (!(nf > 0) || !(nt > 0)) {
    out.fill(0);
    return 0;
  }
  let rr = 0, ar = 0;
  for (let i = 0; i < f.length; i++) {
    const a = f[i] / nf, r = a - t[i] / nt;
    rr += r * r;
    ar += a * r;
  }
  const d = Math.sqrt(rr);
  if (!(d > 0)) {
    out.fill(0);
    return 0;
  }
  // ∂‖r‖/∂f = (r/‖r‖ − a·(aᵀr)/‖r‖)/‖f‖
  for (let i = 0; i < f.length; i++) {
    const a = f[i] / nf, r = a - t[i] / nt;
    out[i] = (r - a * ar) / (d * nf);
  }
  return d;
}

/** AdaBM: calibration, then the round-robin fine-tuning above. */
export async function adabmFinetune(graph: Graph, images: readonly ImageLike[], o: AdabmFinetuneOptions): Promise<AdabmFinetuneResult> {
  const epochs = o.epochs ?? 10, spe = o.stepsPerEpoch ?? 8, B = o.trainBatch ?? 2, patch = o.finetunePatch ?? 32;
  checkInt(epochs, 0, 1000, "AdaBM epochs");
  checkInt(spe, 0, 1e6, "AdaBM steps per epoch");
  checkInt(B, 1, 1024, "AdaBM fine-tuning batch");
  checkInt(patch, 4, 1024, "AdaBM fine-tuning patch");
  const wSkt = o.skt ?? 10, wBit = o.bitLoss ?? 50;
  check(Number.isFinite(wSkt) && wSkt >= 0 && Number.isFinite(wBit) && wBit >= 0, "E_ARGUMENT", "AdaBM loss weights must be non-negative numbers");
  const rt = o.runtime ?? (await init());
  const t0 = performance.now();
  const cal = await adabmCalibrate(graph, images, { ...o, runtime: rt, onProgress: (f) => o.onProgress?.(0.2 * f) });
  const calibrationMs = performance.now() - t0;
  if (epochs === 0 || spe === 0) return { ...cal, calibrationMs, finetuneMs: 0, losses: [], avgBits: [] };

  const g = cal.graph;
  // Layers trained: adaptive and fixed-at-base ones, by name in the (unoptimized) training graph.
  const trained = [...cal.params].filter(([, p]) => p.role !== "w8a8").map(([id, p]) => ({ id, name: g.nodes[id].name, p }));
  const tg = buildTrainGraph(graph, {
    weightBits: o.weightBits, actBits: o.actBits, layers: trained.map((t) => t.name),
    actRanges: Object.fromEntries(trained.map((t) => [t.name, [t.p.lo, t.p.hi] as [number, number]])),
    weightClip: Object.fromEntries(trained.filter((t) => t.p.uw > 0).map((t) => [t.name, t.p.uw])),
  });
  const side = Math.min(patch, ...images.map((im) => Math.min(im.width, im.height)));
  const { trainer, teacher, gb } = rt.arena.atomic(() => {
    const trainer = new Trainer(rt, tg, { maxW: side, maxH: side, trainWeights: false });
    const teacher = new Trainer(rt, buildTrainGraph(graph, null), { maxW: side, maxH: side, forwardOnly: true });
    return { trainer, teacher, gb: trainer.createGrads() };
  });
  const blocks = wSkt > 0 ? blockOutputs(tg.graph) : [];
  const meta = graph.meta;
  const sampler = new PatchSampler({ lr: [...images] }, { patch: side, scale: meta.scale, inputRange: meta.inputRange, outputRange: meta.outputRange, seed: (o.seed ?? 1) + 1 });
  // l1Loss is on the [0, 1] scale of the output range; the reference's L1 is on 0–255.
  const pixScale = 255;

  // Parameters and their optimizers.
  const byName = (n: string) => trainer.param(n);
  const gammaParams = trained.filter((t) => tg.byName.get(t.name)!.quant!.weightLevels > 0).map((t) => byName(`${t.name}/gamma`));
  const rangeParams = trained.map((t) => byName(`${t.name}/act_range`));
  const adaptive = trained.filter((t) => t.p.role === "adaptive");
  const measureL: Param[] = adaptive.map((t) => ({ name: `${t.name}/measure`, layer: t.name, kind: "bias", value: Float32Array.of(t.p.layerDelta) }));
  const img: Param = { name: "image/thresholds", layer: "image", kind: "bias", value: Float32Array.of(cal.imageBits?.lower ?? 0, cal.imageBits?.upper ?? 0) };
  const imageAdaptive = cal.imageBits !== null;
  const sched = { every: spe, factor: 0.9 };
  const clipLr = o.weightClipLr ?? 0.01;
  check(Number.isFinite(clipLr) && clipLr > 0, "E_ARGUMENT", `weight-clip learning rate must be positive, got ${clipLr}`);
  const optW = new Adam(gammaParams, { lr: clipLr, groups: gammaParams.map((p) => ({ layers: [p.layer], lr: clipLr / tg.byName.get(p.layer)!.quant!.weightF })), schedule: sched });
  const rangeLr = o.rangeLr ?? 0.01;
  check(Number.isFinite(rangeLr) && rangeLr > 0, "E_ARGUMENT", `activation-range learning rate must be positive, got ${rangeLr}`);
  const optA = new Adam(rangeParams, { lr: rangeLr, lrMult: { act_range: 1 }, schedule: sched });
  const mls = o.measureLrScale ?? 1;
  check(Number.isFinite(mls) && mls > 0, "E_ARGUMENT", `measure learning-rate scale must be positive, got ${mls}`);
  const optM = new Adam([...measureL, ...(imageAdaptive ? [img] : [])], { lr: 0.01 * mls, groups: [{ layers: ["image"], lr: 0.1 * mls }], schedule: sched });
  const layerAdaptive = o.layerAdaptive !== false;

  const losses: number[] = [], avgBitsHist: number[] = [];
  const counted = trained.length;
  const t1 = performance.now();
  let lastYield = Date.now();
  try {
    for (let ep = 1; ep <= epochs; ep++) {
      const group = GROUPS[(ep - 1) % 3];
      trainer.weightGrads = group === "w";
      for (let st = 0; st < spe; st++) {
        gb.zero();
        const dM = new Float64Array(measureL.length);
        let dL = 0, dU = 0, stepLoss = 0, bitsSum = 0;
        const perSampleBits: number[][] = [];
        const samples = Array.from({ length: B }, () => sampler.next());
        // Bits of each sample (hard) — needed before the bit loss (it depends on the batch mean).
        const feats = samples.map((s) => {
          const f = gradientFeature(new Float64Array(2), s.lr, s.w, s.h, 3, meta.inputRange[0], meta.inputRange[1]);
          return (f[0] + f[1]) / 2;
        });
        const [lI, uI] = img.value;
        const dImg = feats.map((gv) => (imageAdaptive ? (gv < lI ? -1 : gv > uI ? 1 : 0) : 0));
        const mHard = measureL.map((m) => (layerAdaptive ? Math.round(Math.min(1, Math.max(-1, m.value[0]))) : 0));
        for (let si = 0; si < B; si++) {
          const bits = trained.map((t) => {
            const ai = adaptive.indexOf(t);
            return ai >= 0 ? adabmBits(o.actBits, dImg[si], mHard[ai]) : adabmBits(o.actBits, 0, 0);
          });
          perSampleBits.push(bits);
          for (const b of bits) bitsSum += b;
        }
        const avgBits = bitsSum / (B * counted);
        const bitActive = group === "measure" && avgBits > o.actBits && wBit > 0;
        for (let si = 0; si < B; si++) {
          throwIfAborted(o.signal);
          const s = samples[si];
          trained.forEach((t, i) => trainer.setActBits(t.name, perSampleBits[si][i]));
          teacher.forward(s.lr, s.w, s.h, { fp: true });
          trainer.forward(s.lr, s.w, s.h);
          const before = group === "measure" ? adaptive.map((t) => trainer.bitGradient(gb, t.name)) : [];
          const pix = l1Loss(trainer, teacher.output(), { weight: pixScale / B, key: "teacher" });
          let loss = pix.loss;
          const seeds: Seed[] = [...pix.seeds];
          for (const bn of blocks) {
            const fq = trainer.read(bn.id), ft = teacher.read(bn.id);
            const gr = new Float32Array(fq.length);
            const d = normalizedDistance(gr, fq, ft);
            const wgt = wSkt / (B * blocks.length);
            loss += wgt * d;
            seeds.push({ at: bn.id, grad: gr, weight: wgt });
          }
          trainer.backward(seeds, gb);
          stepLoss += loss;
          if (group === "measure") {
            // Σ_l ∂L/∂b_{l,s} (+ the bit loss) → m_l through tanh', thresholds through the image surrogate.
            let dImgSum = 0;
            adaptive.forEach((t, ai) => {
              let db = trainer.bitGradient(gb, t.name) - before[ai];
              if (bitActive) db += wBit / (B * counted);
              const th = Math.tanh(measureL[ai].value[0]);
              if (layerAdaptive) dM[ai] += db * (1 - th * th);
              dImgSum += db;
            });
            if (imageAdaptive && uI > lI) {
              const z = ((2 * feats[si] - uI - lI) / (uI - lI));
              const th = Math.tanh(z), dz = dImgSum * (1 - th * th), w2 = (uI - lI) ** 2;
              dL += dz * (2 * feats[si] - 2 * uI) / w2;
              dU += dz * (2 * lI - 2 * feats[si]) / w2;
            }
          }
          if (Date.now() - lastYield > 50) {
            await new Promise((r) => setTimeout(r, 0));
            lastYield = Date.now();
          }
        }
        if (bitActive) stepLoss += wBit * (avgBits - o.actBits);
        const grads = trainer.gradients(gb, 1);
        if (group === "w") {
          optW.step(new Map(gammaParams.map((p) => [p.name, grads.get(p.name) ?? new Float32Array(1)])));
        } else if (group === "a") {
          optA.step(new Map(rangeParams.map((p) => [p.name, grads.get(p.name)!])));
        } else {
          const gm = new Map<string, ArrayLike<number>>(measureL.map((m, i) => [m.name, Float32Array.of(dM[i])]));
          if (imageAdaptive) gm.set(img.name, Float32Array.of(dL, dU));
          optM.step(gm);
          if (img.value[1] < img.value[0]) img.value[0] = img.value[1] = (img.value[0] + img.value[1]) / 2;
        }
        trainer.constrain();
        trainer.invalidate();
        losses.push(stepLoss);
        avgBitsHist.push(avgBits);
        o.onStep?.({ epoch: ep, step: st, group, loss: stepLoss, avgBits });
        o.onProgress?.(0.2 + (0.8 * ((ep - 1) * spe + st + 1)) / (epochs * spe));
      }
    }
    // The deployable model from the trained parameters.
    for (const t of trained) {
      const r = byName(`${t.name}/act_range`).value;
      t.p.lo = r[0];
      t.p.hi = r[1];
      if (t.p.uw > 0) t.p.uw = trainer.weightClip(t.name);
    }
    adaptive.forEach((t, i) => { t.p.layerDelta = layerAdaptive ? Math.round(Math.min(1, Math.max(-1, measureL[i].value[0]))) : 0; });
    const imageBits = imageAdaptive ? { lower: img.value[0], upper: img.value[1] } : null;
    const options: Record<string, string | number | boolean> = { ...cal.model.info.options, variant: "finetuned", epochs, steps: spe, ftpatch: side };
    const model = buildAdabmModel(g, cal.params, { weightBits: o.weightBits, actBits: o.actBits, scope: cal.model.info.scope, imageBits, path: o.path, options });
    return { ...cal, model, imageBits, calibrationMs, finetuneMs: performance.now() - t1, losses, avgBits: avgBitsHist, ms: performance.now() - t0 };
  } finally {
    gb.dispose();
    trainer.dispose();
    teacher.dispose();
  }
}
