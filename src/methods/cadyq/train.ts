/**
 * CADyQ training (cadyq.md §5) on lowbit's gradient engine: every selected conv input gets a bit
 * selector as a Trainer activation hook (CadyqTrainLayer), the rest of the network runs on the
 * engine's forward/backward kernels.
 *
 * Forward (per sample, as the reference's batch element): e = [g, σ] (g of the sample, σ the
 * unbiased per-channel std of the layer input, both detached), z = A·e + a, p = softmax(z),
 * k* = argmax z; the conv sees x̂ = Q_{k*}(x; α_{k*}) (the hard one-hot mixture).
 * Backward: the gradient of the soft mixture Σ_k p_k·Q_k(x; α_k) (out_hard.detach() − out_soft.detach()
 * + out_soft in cadyq.py), with PAMS's straight-through rounding:
 *
 *   ∂Q_k/∂x = [|x| ≤ α_k],   ∂Q_k/∂α_k = (r − t)/m_k inside (t = x/s_k, r = round t), ±1 above/below,
 *   ∂L/∂p_k = Σ ∂L/∂x̂·Q_k(x),   ∂L/∂z_j = p_j(∂L/∂p_j − Σ_k p_k ∂L/∂p_k),   ∂L/∂A_j = ∂L/∂z_j·e, ∂L/∂a_j = ∂L/∂z_j.
 *
 * Bit loss: L_bit = λ_b·Σ_l b̃_l/E_p[b_l] with b̃ = b_hard + (Σ p_k b_k − detached) (value: the hard bit;
 * gradient: ∂b̃/∂p_k = b_k) and E_p[b] = Σ p_k b_k detached.
 *
 * The loop (trainCadyq): α initialised from the FP32 model (mean over calibration patches of the
 * per-sample max|x|, the fixed point of the reference's epoch-1 EMA, see quantize.ts), then `steps`
 * Adam steps of `batch` patches: L1 to HR when given, else to the FP32 teacher (no ground truth),
 * plus L_bit. Separate Adam learning rates as in the reference: α 1e-2, selector 1e-4, weights 1e-4
 * (or frozen). Weights, when trained, keep an FP32 master copy; the forward uses the 8-bit per-tensor
 * weights q = round(W·127/max|W|) with the straight-through gradient (max|W| detached, quant_weight).
 */
import type { Graph } from "../../graph/ir.ts";
import { gradientFeature } from "../../adaptive/gradient-feature.ts";
import type { Runtime } from "../../runtime/runtime.ts";
import { LowbitError, check } from "../../runtime/errors.ts";
import { buildTrainGraph } from "../../train/graph.ts";
import { Trainer, type ActQuantHook } from "../../train/trainer.ts";
import { l1Loss } from "../../train/losses.ts";
import { PatchSampler, type TrainData } from "../../train/data.ts";
import { argmaxFirst, checkCadyqParams, initialSelector, pamsHalfRange, selectorLogits, softmax } from "./selector.ts";

/** One layer's selector and clips during training, with gradient accumulators (f64). */
export class CadyqTrainLayer implements ActQuantHook {
  readonly name: string;
  readonly channels: number;
  readonly candidates: Int32Array;
  readonly alpha: Float32Array;
  readonly A: Float32Array;
  readonly a: Float32Array;
  readonly gAlpha: Float64Array;
  readonly gA: Float64Array;
  readonly ga: Float64Array;
  /** The current sample's gradient feature (set by the loop before each forward). */
  readonly feature = new Float64Array(2);
  /** Last forward: embedding [g, σ], softmax p, chosen index. */
  readonly emb: Float64Array;
  readonly p: Float64Array;
  readonly logits: Float64Array;
  selected = 0;
  private readonly rt: Runtime;

  constructor(rt: Runtime, name: string, channels: number, candidates: ArrayLike<number>, alpha: ArrayLike<number>, sel?: { A: ArrayLike<number>; a: ArrayLike<number> }) {
    const K = candidates.length;
    const s = sel ?? initialSelector(K, channels);
    checkCadyqParams(candidates, alpha, s.A, s.a, channels);
    this.rt = rt;
    this.name = name;
    this.channels = channels;
    this.candidates = Int32Array.from(candidates);
    this.alpha = Float32Array.from(alpha);
    this.A = Float32Array.from(s.A);
    this.a = Float32Array.from(s.a);
    this.gAlpha = new Float64Array(K);
    this.gA = new Float64Array(this.A.length);
    this.ga = new Float64Array(K);
    this.emb = new Float64Array(channels + 2);
    this.p = new Float64Array(K);
    this.logits = new Float64Array(K);
  }

  zeroGrad(): void {
    this.gAlpha.fill(0);
    this.gA.fill(0);
    this.ga.fill(0);
  }

  /** Hard bit of the last forward and E_p[b]. */
  bits(): { hard: number; expected: number } {
    let e = 0;
    for (let k = 0; k < this.p.length; k++) e += this.p[k] * this.candidates[k];
    return { hard: this.candidates[this.selected], expected: e };
  }

  forward(x: number, xs: number, out: number, P: number, C: number): void {
    const f = this.rt.arena.f32, xb = x >> 2, ob = out >> 2;
    // σ_c: unbiased std over the sample (shifted sums in f64).
    const e = this.emb;
    e[0] = this.feature[0];
    e[1] = this.feature[1];
    for (let c = 0; c < C; c++) {
      const x0 = f[xb + c];
      let s1 = 0, s2 = 0;
      for (let p = 0; p < P; p++) {
        const d = f[xb + p * xs + c] - x0;
        s1 += d;
        s2 += d * d;
      }
      const v = P > 1 ? (s2 - (s1 * s1) / P) / (P - 1) : 0;
      e[2 + c] = v > 0 && Number.isFinite(v) ? Math.sqrt(v) : 0;
    }
    selectorLogits(this.logits, this.A, this.a, this.feature, e.subarray(2));
    softmax(this.p, this.logits);
    const k = (this.selected = argmaxFirst(this.logits));
    const al = Math.abs(this.alpha[k]), m = pamsHalfRange(this.candidates[k]), s = al / m;
    for (let p = 0; p < P; p++) {
      for (let c = 0; c < C; c++) {
        const v = f[xb + p * xs + c];
        let q = 0;
        if (s > 0) q = Number.isNaN(v) ? -al : Math.min(m, Math.max(-m, Math.floor(Math.min(al, Math.max(-al, v)) / s + 0.5))) * s;
        f[ob + p * C + c] = q;
      }
    }
  }

  backward(x: number, xs: number, dOut: number, dx: number, dxs: number, P: number, C: number): void {
    const f = this.rt.arena.f32, xb = x >> 2, gb = dOut >> 2, db = dx >> 2;
    const K = this.candidates.length, p = this.p;
    const al = new Float64Array(K), st = new Float64Array(K), mm = new Float64Array(K), sg = new Float64Array(K);
    for (let k = 0; k < K; k++) {
      al[k] = Math.abs(this.alpha[k]);
      mm[k] = pamsHalfRange(this.candidates[k]);
      st[k] = al[k] / mm[k];
      sg[k] = this.alpha[k] < 0 ? -1 : 1; // ∂|α|/∂α
    }
    const dp = new Float64Array(K), dal = new Float64Array(K);
    for (let i = 0; i < P; i++) {
      for (let c = 0; c < C; c++) {
        const v = f[xb + i * xs + c], g = f[gb + i * C + c];
        let d = 0;
        if (g !== 0) {
          for (let k = 0; k < K; k++) {
            const a = al[k], s = st[k];
            if (!(s > 0)) continue;
            let q: number;
            if (v > a) {
              q = a;
              dal[k] += p[k] * g;
            } else if (v < -a) {
              q = -a;
              dal[k] -= p[k] * g;
            } else {
              const t = v / s, r = Math.min(mm[k], Math.max(-mm[k], Math.floor(t + 0.5)));
              q = r * s;
              dal[k] += (p[k] * g * (r - t)) / mm[k];
              d += p[k] * g;
            }
            dp[k] += g * q;
          }
        }
        if (dx) f[db + i * dxs + c] = d;
      }
    }
    for (let k = 0; k < K; k++) this.gAlpha[k] += sg[k] * dal[k];
    this.logitBackward(dp);
  }

  /** Adds λ·b̃/E_p[b] (value: λ·b_hard/E) and its gradient (∂/∂p_k = λ·b_k/E). Returns the loss value. */
  addBitLoss(lambda: number): number {
    const { hard, expected } = this.bits();
    if (!(lambda !== 0 && expected > 0)) return 0;
    const dp = Float64Array.from(this.candidates, (b) => (lambda * b) / expected);
    this.logitBackward(dp);
    return (lambda * hard) / expected;
  }

  /** Softmax backward of ∂L/∂p into the selector's gradients. */
  private logitBackward(dp: Float64Array): void {
    const K = dp.length, p = this.p, e = this.emb, D = e.length;
    let dot = 0;
    for (let k = 0; k < K; k++) dot += p[k] * dp[k];
    for (let j = 0; j < K; j++) {
      const dz = p[j] * (dp[j] - dot);
      this.ga[j] += dz;
      for (let d = 0; d < D; d++) this.gA[j * D + d] += dz * e[d];
    }
  }
}

/** Adam on one tensor (PyTorch form, bias-corrected). */
class AdamTensor {
  private readonly m: Float64Array;
  private readonly v: Float64Array;
  private t = 0;
  constructor(readonly value: Float32Array, readonly lr: number) {
    this.m = new Float64Array(value.length);
    this.v = new Float64Array(value.length);
  }
  step(g: ArrayLike<number>, scale: number): void {
    if (this.lr === 0) return;
    this.t++;
    const b1 = 0.9, b2 = 0.999, c1 = 1 - b1 ** this.t, c2 = 1 - b2 ** this.t;
    for (let i = 0; i < this.value.length; i++) {
      const gi = g[i] * scale;
      this.m[i] = b1 * this.m[i] + (1 - b1) * gi;
      this.v[i] = b2 * this.v[i] + (1 - b2) * gi * gi;
      this.value[i] -= (this.lr * (this.m[i] / c1)) / (Math.sqrt(this.v[i] / c2) + 1e-8);
    }
  }
}

/** 8-bit per-tensor weights (quant_weight): ŵ = round(W·127/max|W|)·max|W|/127 (round half away from zero). */
export function fakeQuantWeights8(out: Float32Array, w: ArrayLike<number>): Float32Array {
  let mx = 0;
  for (let i = 0; i < w.length; i++) mx = Math.max(mx, Math.abs(w[i]));
  const k = mx > 0 ? 127 / mx : 0, s = mx / 127;
  for (let i = 0; i < w.length; i++) out[i] = Math.sign(w[i]) * Math.floor(Math.abs(w[i]) * k + 0.5) * s;
  return out;
}

export interface CadyqTrainOptions {
  /** Conv names with a bit selector (their input is quantized). */
  layers: readonly string[];
  candidates: readonly number[];
  /** Optimizer steps (0: calibration only), samples per step, LR patch side. */
  steps: number;
  batch: number;
  patch: number;
  /** λ_b of the bit loss (lowbit's L1 is in output-range units: see quantize.ts for the default). */
  lambdaBit: number;
  lrAlpha: number;
  lrSelector: number;
  /** 0 = frozen weights. */
  lrWeights: number;
  /** Calibration patches for the α initialisation. */
  calibPatches: number;
  seed: number;
  runtime: Runtime;
  signal?: AbortSignal;
  onProgress?: (p: { step: number; steps: number; loss: number; fab: number }) => void;
}

export interface CadyqTrainResult {
  /** Per selected layer: clips, selector. */
  layers: Map<string, { alpha: Float32Array; A: Float32Array; a: Float32Array }>;
  /** Trained float weights/biases by conv name (only when weights were trained). */
  weights: Map<string, { weights: Float32Array; bias: Float32Array | null }> | null;
  /** α after calibration (before training), by layer. */
  initAlpha: Map<string, number>;
  /** Per step: mean loss (L1 + L_bit) and the mean hard FAB of the batch. */
  losses: number[];
  fab: number[];
  ms: number;
}

/** Calibration and training of CADyQ's clips and selectors (and optionally the weights) on `graph` (un-optimized). */
export async function trainCadyq(graph: Graph, data: TrainData, o: CadyqTrainOptions): Promise<CadyqTrainResult> {
  const rt = o.runtime;
  const t0 = Date.now();
  const tg = buildTrainGraph(graph, null);
  for (const name of o.layers) check(tg.byName.has(name), "E_ARGUMENT", `CADyQ: no conv named '${name}' in the training graph`);
  const [ilo, ihi] = graph.meta.inputRange;
  const patch = o.patch;
  const teacher = new Trainer(rt, tg, { maxW: patch, maxH: patch, forwardOnly: true });
  const sampler = new PatchSampler(data, { patch, scale: graph.meta.scale, inputRange: graph.meta.inputRange, outputRange: graph.meta.outputRange, seed: o.seed });
  const layerIds = o.layers.map((name) => tg.byName.get(name)!);
  let student: Trainer | null = null;
  try {
    // 1. α: mean over calibration patches of max|x| of each layer input (FP32 model).
    const sums = new Float64Array(o.layers.length);
    const calib = new PatchSampler(data, { patch, scale: graph.meta.scale, inputRange: graph.meta.inputRange, outputRange: graph.meta.outputRange, seed: o.seed + 7919 });
    for (let i = 0; i < o.calibPatches; i++) {
      if (o.signal?.aborted) throw new LowbitError("E_ABORTED", "CADyQ calibration aborted");
      const s = calib.next();
      teacher.forward(s.lr, s.w, s.h, { fp: true });
      layerIds.forEach((l, j) => {
        const t = teacher.tensor(tg.graph.nodes[l.id].inputs[0]);
        const f = rt.arena.f32, b = t.ptr >> 2;
        let mx = 0;
        for (let p = 0; p < t.pixels; p++) for (let c = 0; c < t.channels; c++) mx = Math.max(mx, Math.abs(f[b + p * t.stride + c]));
        sums[j] += mx;
      });
    }
    const initAlpha = new Map<string, number>();
    const hooks = new Map<string, CadyqTrainLayer>();
    o.layers.forEach((name, j) => {
      const a0 = o.calibPatches > 0 ? sums[j] / o.calibPatches : 1;
      const alpha = a0 > 0 ? a0 : 1;
      initAlpha.set(name, alpha);
      hooks.set(name, new CadyqTrainLayer(rt, name, tg.byName.get(name)!.cin, o.candidates, o.candidates.map(() => alpha)));
    });
    const losses: number[] = [], fabs: number[] = [];
    const trainW = o.lrWeights > 0;
    student = new Trainer(rt, tg, { maxW: patch, maxH: patch, trainWeights: trainW, actHooks: hooks });
    // Weights: FP32 master copies; the student runs the 8-bit per-tensor weights on the selected layers.
    const master = new Map<string, Float32Array>();
    const qset = new Set(o.layers);
    for (const l of tg.convs.values()) master.set(l.name, Float32Array.from(student.param(`${l.name}/weight`).value));
    const pushWeights = (): void => {
      const upd = new Map<string, Float32Array>();
      for (const name of qset) upd.set(`${name}/weight`, fakeQuantWeights8(new Float32Array(master.get(name)!.length), master.get(name)!));
      if (trainW) for (const [name, w] of master) if (!qset.has(name)) upd.set(`${name}/weight`, w);
      student!.setParams(upd);
    };
    pushWeights();
    const adamW = new Map<string, AdamTensor>();
    if (trainW) {
      for (const [name, w] of master) adamW.set(`${name}/weight`, new AdamTensor(w, o.lrWeights));
      for (const l of tg.convs.values()) if (l.hasBias) adamW.set(`${l.name}/bias`, new AdamTensor(Float32Array.from(student.param(`${l.name}/bias`).value), o.lrWeights));
    }
    const adamQ = [...hooks.values()].map((h) => ({ h, al: new AdamTensor(h.alpha, o.lrAlpha), A: new AdamTensor(h.A, o.lrSelector), a: new AdamTensor(h.a, o.lrSelector) }));
    const gb = student.createGrads();
    const feat = new Float64Array(2);
    for (let step = 0; step < o.steps; step++) {
      if (o.signal?.aborted) throw new LowbitError("E_ABORTED", "CADyQ training aborted");
      gb.zero();
      for (const h of hooks.values()) h.zeroGrad();
      let lossSum = 0, fabSum = 0;
      for (let b = 0; b < o.batch; b++) {
        const s = sampler.next();
        if (!s.hr) teacher.forward(s.lr, s.w, s.h, { fp: true });
        gradientFeature(feat, s.lr, s.w, s.h, 3, ilo, ihi);
        for (const h of hooks.values()) h.feature.set(feat);
        student.forward(s.lr, s.w, s.h);
        const r = l1Loss(student, s.hr ?? teacher.output());
        let fab = 0;
        for (const h of hooks.values()) {
          lossSum += h.addBitLoss(o.lambdaBit);
          fab += h.bits().hard;
        }
        fabSum += fab / hooks.size;
        lossSum += r.loss;
        student.backward(r.seeds, gb);
      }
      const B = o.batch;
      for (const q of adamQ) {
        q.al.step(q.h.gAlpha, 1 / B);
        q.A.step(q.h.gA, 1 / B);
        q.a.step(q.h.ga, 1 / B);
        // PAMS keeps α positive in practice; a tiny floor keeps the grid defined.
        for (let k = 0; k < q.h.alpha.length; k++) if (!(Math.abs(q.h.alpha[k]) >= 1e-6)) q.h.alpha[k] = 1e-6;
      }
      if (trainW) {
        const g = student.gradients(gb, 1 / B);
        for (const [name, ad] of adamW) {
          const gr = g.get(name);
          if (gr) ad.step(gr, 1);
        }
        const biasUpd = new Map<string, Float32Array>();
        for (const [name, ad] of adamW) if (name.endsWith("/bias")) biasUpd.set(name, ad.value);
        student.setParams(biasUpd);
        pushWeights();
      }
      losses.push(lossSum / B);
      fabs.push(fabSum / B);
      o.onProgress?.({ step: step + 1, steps: o.steps, loss: lossSum / B, fab: fabSum / B });
      if ((step & 7) === 7) await new Promise((r) => setTimeout(r, 0));
    }
    gb.dispose();
    const layers = new Map<string, { alpha: Float32Array; A: Float32Array; a: Float32Array }>();
    for (const h of hooks.values()) layers.set(h.name, { alpha: Float32Array.from(h.alpha, Math.abs), A: Float32Array.from(h.A), a: Float32Array.from(h.a) });
    let weights: CadyqTrainResult["weights"] = null;
    if (trainW) {
      weights = new Map();
      for (const [name, w] of master) weights.set(name, { weights: w, bias: adamW.get(`${name}/bias`)?.value ?? null });
    }
    return { layers, weights, initAlpha, losses, fab: fabs, ms: Date.now() - t0 };
  } finally {
    teacher.dispose();
    student?.dispose();
  }
}
