/**
 * FQSR (fqsr.md; Wang et al., "Fully Quantized Image Super-Resolution Networks", ACM MM 2021):
 * quantization-aware training of the *fully* quantized network — every conv input ("fm"), every
 * conv output ("ot") and every skip-add operand on a learnable clip — exported to lowbit's static
 * integer model (src/quant/quantize-model.ts), so the trained network runs on the same plan as
 * post-training W8A8 (no float tensor between the input quantize and the output dequantize).
 *
 * What is trained, per fqsr.md §2:
 * - one learnable clip α per quantized tensor, full range [−α, α] (signed tensors) or half range
 *   [0, α] (tensors that are non-negative by construction: ReLU outputs and concats of them), 2^b
 *   levels, LSQ-style gradient through clamp/div/mul with straight-through rounding, no gradient
 *   scaling (Trainer tensor quantizers, src/train/trainer.ts);
 * - the calibration loss 0.3·mean|x − x̂| per quantizer, added to L1(SR, HR) (or L1 to the FP32
 *   teacher when the data has no HR);
 * - the conv weights and biases (bias stays FP), Adam at lr 1e-4 (the EDSR config), batch and steps
 *   as given (the paper trains 300 epochs of DIV2K; lowbit's budget is minutes on a few images);
 * - warm-up: α starts at the mean max|x| of the FP32 model over 20 patches (`init: "warmup"`).
 *
 * How lowbit maps FQSR onto its static plan [choices]:
 * - **One grid per tensor.** The quantized tensors are exactly the static plan's integer tensors
 *   (planTensors): each gets one clip. A conv's fm and the ot of the conv that produced the tensor
 *   are therefore one quantizer (FQSR quantizes a tensor read by two convs twice; lowbit stores it
 *   once). Tensors that share one buffer grid in the plan (a dense block's conv outputs and their
 *   concats, quantize-model.ts concatGridGroups) share one clip.
 * - **Add operands keep their own clips.** FQSR ties both operands of an add to one α because its
 *   integer add sums odd codes exactly; lowbit's integer add rescales each operand with its own
 *   multiplier, and since the trunk tensor is also an add operand of the next block, tying would
 *   chain every trunk tensor and every block output into one grid.
 * - **Deployment grid.** The trained clip becomes the tensor's range ([−α, α] or [0, α]), and lowbit's
 *   asymmetric codes nudge the zero point to an integer (affineParams). By default the fake quant
 *   trains on exactly that nudged grid (`deployedGrid`, TensorQuantSpec.nudge), so what is trained
 *   is what runs: the full grid then has a zero level (FQSR's has none: its levels sit half a step
 *   away) and padding carries an exact 0. `deployedGrid: false` trains FQSR's own grid and deploys it
 *   nudged (levels move by < half a step). `grid: "asymmetric"` trains a free [l, u] per tensor
 *   instead (lowbit's extension, not FQSR's).
 * - **Weights** use the static model's grid while training (`weightGrid: "channel"`: symmetric per
 *   output channel, min-max scale, no learned clip), so the exported codes are the trained ones;
 *   FQSR's configs use a learned per-tensor clip. The input image (8-bit codes, lossless) and the
 *   output chain (8-bit on the output range) are not trained, as in FQSR (fm disabled on the image,
 *   ot disabled on the upsampler/tail outputs).
 * - `init`: "warmup" as FQSR, or a post-training range method ("percentile", "mse", "minmax") of
 *   `calibrate()` on the training LR images — a better start when the step budget is short.
 */
import type { Graph, Node } from "../../graph/ir.ts";
import { foldBatchNorm, foldScales, fuseActivations, subpixelTail } from "../../graph/passes.ts";
import { centreCrop } from "../../engine/image.ts";
import { LowbitError, check, checkInt } from "../../runtime/errors.ts";
import { init as initRuntime, type Runtime } from "../../runtime/runtime.ts";
import { calibrate, type Calibration } from "../../quant/calibrate.ts";
import { quantConfig, type QuantConfig } from "../../quant/config.ts";
import { isGridPreserving, planTensors, quantizeModel, type QuantizedModel } from "../../quant/quantize-model.ts";
import type { RangeMethod, ValueRange } from "../../quant/range.ts";
import { finetune, type FinetuneProgress, type TensorQuantSpec, type TrainData, type TrainQuantSpec, type TrainState } from "../../train/index.ts";

export interface FqsrOptions {
  weightBits: number;
  actBits: number;
  /** Optimizer steps (default 300), samples per step (default 4), LR patch side (default 48). */
  steps?: number;
  batch?: number;
  patch?: number;
  /** Adam learning rate (default 1e-4, FQSR's EDSR config) for weights, biases and clips. */
  lr?: number;
  /** Multiplier of `lr` for the clips (default 1: FQSR trains α at the base rate). */
  clipLrMult?: number;
  /** Halve the learning rate every N steps (default: never). */
  halveEvery?: number;
  /** Weight λ of the calibration loss λ·Σ mean|x − x̂| (default 0.3). */
  quantLoss?: number;
  /** Clip start: "warmup" (default, FQSR) or a post-training range method on the training LR images. */
  init?: "warmup" | RangeMethod;
  /** Warm-up patches (default 20). */
  warmup?: number;
  /** "fqsr" (default: full/half α grids) or "asymmetric" (a learnable [l, u] per tensor). */
  grid?: "fqsr" | "asymmetric";
  /** Fake-quantize on the integer model's nudged grid (default true; false: FQSR's exact grid). */
  deployedGrid?: boolean;
  /** Weight of L1 to the FP32 teacher (default 0 with HR data, 1 without). */
  teacher?: number;
  seed?: number;
  runtime?: Runtime;
  signal?: AbortSignal;
  onProgress?: (p: FinetuneProgress) => void;
}

export interface FqsrResult {
  /** The trained, fully quantized static model. */
  model: QuantizedModel;
  /** The post-training model the clips started from (`init` a range method), else null. */
  ptq: QuantizedModel | null;
  /** The tensor quantizers as trained: nodes, grid and final [l, u]. */
  quantizers: Array<{ nodes: string[]; grid: TensorQuantSpec["grid"]; bits: number; range: [number, number] }>;
  state: TrainState;
  /**
   * What was trained, to rebuild the fake-quantized model (buildTrainGraph(trained.graph, trained.quant)
   * + loadState(state)): the graph before the sub-pixel rewrite, and the spec with the trained clips.
   */
  trained: { graph: Graph; quant: TrainQuantSpec };
  /** Mean loss per step (reconstruction + calibration loss). */
  losses: number[];
  /** Training wall time (without the initial calibration). */
  ms: number;
}

/**
 * Whether a node's output is non-negative by construction (half-range grid): ReLU outputs, and data
 * movement or concats of such tensors.
 */
function nonNegative(g: Graph): boolean[] {
  const out: boolean[] = new Array(g.nodes.length).fill(false);
  for (const n of g.nodes) {
    switch (n.op) {
      case "input":
        out[n.id] = g.meta.inputRange[0] >= 0;
        break;
      case "conv2d":
      case "activation":
        out[n.id] = n.activation.kind === "relu" || n.activation.kind === "relu6" || (n.op === "activation" && n.activation.kind === "linear" && out[n.inputs[0]]);
        break;
      case "concat":
        out[n.id] = n.inputs.every((i) => out[i]);
        break;
      default:
        out[n.id] = isGridPreserving(n) && out[n.inputs[0]];
    }
  }
  return out;
}

/** The graph FQSR trains: the static plan's graph before the sub-pixel tail rewrite (same node ids). */
function trainableGraph(graph: Graph): { pre: Graph; plan: Graph } {
  const pre = fuseActivations(foldScales(foldBatchNorm(graph)));
  const plan = subpixelTail(pre);
  if (plan.nodes.length !== pre.nodes.length) throw new LowbitError("E_ARGUMENT", "internal: the sub-pixel rewrite changed the node count");
  return { pre, plan };
}

export async function fqsrFinetune(graph: Graph, data: TrainData, o: FqsrOptions): Promise<FqsrResult> {
  const rt = o.runtime ?? (await initRuntime());
  check(data && Array.isArray(data.lr) && data.lr.length > 0, "E_ARGUMENT", "FQSR fine-tuning needs at least one LR image");
  const grid = o.grid ?? "fqsr";
  check(grid === "fqsr" || grid === "asymmetric", "E_ARGUMENT", `grid must be "fqsr" or "asymmetric", got '${String(grid)}'`);
  const initMode = o.init ?? "warmup";
  check(initMode === "warmup" || initMode === "minmax" || initMode === "percentile" || initMode === "mse", "E_ARGUMENT", `init must be warmup, minmax, percentile or mse, got '${String(initMode)}'`);
  const lam = o.quantLoss ?? 0.3;
  check(Number.isFinite(lam) && lam >= 0, "E_ARGUMENT", `quantLoss must be a non-negative number, got ${o.quantLoss}`);
  check(o.deployedGrid === undefined || typeof o.deployedGrid === "boolean", "E_ARGUMENT", "deployedGrid must be a boolean");
  const clipMult = o.clipLrMult ?? 1;
  check(Number.isFinite(clipMult) && clipMult >= 0, "E_ARGUMENT", `clipLrMult must be a non-negative number, got ${o.clipLrMult}`);
  if (o.halveEvery !== undefined) checkInt(o.halveEvery, 1, 1e9, "halveEvery");
  const cfg: QuantConfig = {
    ...quantConfig({ weightBits: o.weightBits, actBits: o.actBits, method: initMode === "warmup" ? "minmax" : initMode, biasCorrection: false }),
    trained: "fqsr",
  };
  const { pre, plan: planGraph } = trainableGraph(graph);
  const tp = planTensors(planGraph, cfg);
  const nonneg = nonNegative(pre);

  // One quantizer per grid group of the static plan's integer tensors (input and output chain excluded).
  const groups = new Map<number, number[]>();
  for (const n of planGraph.nodes) {
    if (tp.domain[n.id] !== "q8" || n.op === "input" || tp.pinned.has(n.id) || isGridPreserving(n)) continue;
    const r = tp.root[n.id];
    if (!groups.has(r)) groups.set(r, []);
    groups.get(r)!.push(n.id);
  }
  let ptq: QuantizedModel | null = null;
  if (initMode !== "warmup") {
    // The post-training protocol's calibration set: the centre 128×128 of each LR image.
    const cal = await calibrate(graph, data.lr.map((im) => centreCrop(im, 128)), { runtime: rt, signal: o.signal });
    ptq = quantizeModel(cal, { ...cfg, trained: undefined, biasCorrection: true });
  }
  const specs: TensorQuantSpec[] = [...groups.values()].map((ids) => {
    const g: TensorQuantSpec["grid"] = grid === "asymmetric" ? "asymmetric" : ids.every((id) => nonneg[id]) ? "half" : "full";
    const spec: TensorQuantSpec = { nodes: ids.map((id) => pre.nodes[id].name), bits: tp.bits[ids[0]], grid: g, nudge: o.deployedGrid ?? true };
    if (ptq) {
      const [lo, hi] = ptq.tensors[ids[0]].range;
      const span = Math.max(hi - lo, 1e-6);
      spec.init = g === "asymmetric" ? [lo, lo < hi ? hi : lo + span] : [Math.max(g === "full" ? Math.max(-lo, hi) : hi, 1e-6)];
    }
    return spec;
  });
  const names = new Set<string>();
  for (const n of pre.nodes) {
    check(!names.has(n.name), "E_ARGUMENT", `FQSR needs unique node names; '${n.name}' appears twice`);
    names.add(n.name);
  }

  const t0 = Date.now();
  const quant: TrainQuantSpec = { weightBits: o.weightBits, actBits: null, layers: "full", weightGrid: "channel", tensors: specs };
  const res = await finetune(pre, data, {
    quant,
    steps: o.steps ?? 300, batch: o.batch, patch: o.patch, seed: o.seed, warmup: o.warmup, quantLoss: lam,
    losses: o.teacher !== undefined ? { teacher: o.teacher, hr: data.hr ? 1 : 0 } : undefined,
    optimizer: { lr: o.lr ?? 1e-4, lrMult: { act_clip: clipMult }, ...(o.halveEvery ? { schedule: { every: o.halveEvery, factor: 0.5 } } : {}) },
    signal: o.signal, onProgress: o.onProgress, runtime: rt,
  });
  const ms = Date.now() - t0;

  // Export: trained weights → the static plan's graph; each tensor's range = its trained clip.
  const trained = subpixelTail(res.graph);
  const ranges = new Map<number, ValueRange>();
  const quantizers: FqsrResult["quantizers"] = [];
  const trainedSpecs: TensorQuantSpec[] = [];
  for (const s of specs) {
    const r = res.clips.get(`${s.nodes[0]}/act_clip`);
    if (!r) throw new LowbitError("E_ARGUMENT", `internal: no trained clip for '${s.nodes[0]}'`);
    for (const name of s.nodes) ranges.set(trained.nodes.find((n: Node) => n.name === name)!.id, r);
    quantizers.push({ nodes: [...s.nodes], grid: s.grid, bits: s.bits, range: [r[0], r[1]] });
    trainedSpecs.push({ ...s, nodes: [...s.nodes], init: s.grid === "asymmetric" ? [r[0], r[1]] : [r[1]] });
  }
  const calib: Calibration = { graph: trained, tensors: [], images: 0, pixels: 0 };
  const model = quantizeModel(calib, cfg, { ranges });
  return { model, ptq, quantizers, state: res.state, trained: { graph: pre, quant: { ...quant, tensors: trainedSpecs } }, losses: res.losses, ms };
}
