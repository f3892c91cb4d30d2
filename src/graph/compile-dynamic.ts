/**
 * Dynamic-quantization plan compiler (DAQ, DFSQ): the FP32 plan, with every
 * conv of the method's scope replaced by a per-image quantized conv.
 *
 * For a quantized conv with input x (f32, the whole image — the methods'
 * statistics are per image, so the engine runs such models layer-major on
 * the whole image whenever it fits the memory budget):
 *   1. statistics: one WASM pass over x → min, max, mean, std, max|x − μ| per
 *      channel (+ #(x > 0) when the quantizer needs it);
 *   2. per-image parameters (TypeScript, C numbers): the quantizer's μ_c and
 *      1/scale_c, and its levels x̂_c(k);
 *   3. codes: WASM maps x → b-bit codes (DAQ midrise / post-ReLU rounding, or
 *      DFSQ's threshold quantizer);
 *   Static quantizers (ODM, `isStatic`) skip 1–2: their codes and levels are fixed, set once
 *   when the plan is compiled, so the model tiles like any static one.
 *   4. conv, on one of three paths (DynamicPath):
 *      - "lut" (default; daq.md §6 path B, dfsq.md §7 (a)): per image an int16
 *        table lut_c[k] = round(x̂_c(k)/S), the codes decoded through it in the
 *        kernel's pack stage, int16 × int16 dot, int32 accumulators, epilogue
 *        y = f32(acc)·(S·wscale[o]) + b[o]. S is the smallest step with
 *        max|lut|·max_o Σ|w_o| < 2^31 (so the int32 sum is exact); the only
 *        error vs the oracle is ≤ S/2 per activation (S ≈ max|x̂| / 2^15 for
 *        4-bit weights). Integer 0 pads exactly (the references zero-pad the
 *        dequantized tensor).
 *      - "exact" (daq.md §6 path A, dfsq.md §7 (b)): codes decoded to the
 *        integer form g_c(k), int32 partial sums per input channel, combined
 *        in f32 with a_c and the border-aware μ_c term.
 *      - "oracle" (path C): the method's f64 reference quantizer in TypeScript,
 *        then the f32 conv with dequantized weights. Also the only path for
 *        DAQ's "reference" mode, whose post-ReLU codes are unbounded.
 * Everything else (adds, concats, upsampling, FP32 layers) runs as in F32Plan:
 * the residual stream stays f32, as both references keep it.
 */
import type { Graph, Node } from "./ir.ts";
import { planMemory, type MemoryPlan } from "./memory-plan.ts";
import { lowerF32Node, type F32Exports } from "./compile-f32.ts";
import { StepPlan, type Step } from "./step-plan.ts";
import { f32ConvScratchBytes, packF32Conv } from "../kernels/f32-conv.ts";
import { packQlutConv, qlutConvBandRows, qlutConvScratchBytes, qlutLutLimit } from "../kernels/qlut-conv.ts";
import { checkQs16PcsRange, packQs16ConvPcs, qs16ConvPcsBandRows, qs16ConvPcsScratchBytes } from "../kernels/qs16-conv-pcs.ts";
import { LowbitError } from "../runtime/errors.ts";
import type { Runtime } from "../runtime/runtime.ts";
import type { ChannelStatsView, DynamicActQuantizer } from "../methods/dynamic/act-quantizer.ts";
import { createAdaptiveContext, imageBitDelta, type AdaptiveContext, type ImageBitThresholds, type TileBits } from "../adaptive/context.ts";
import { gradientFeature, type FeatureRect } from "../adaptive/gradient-feature.ts";

export type DynamicPath = "lut" | "exact" | "oracle";
export const DYNAMIC_PATHS: readonly DynamicPath[] = ["lut", "exact", "oracle"];

/** What the plan needs of one quantized conv. */
export interface DynamicConvSpec {
  /** Integer weights, OHWI (w[((o·k + kh)·k + kw)·cin + c]). */
  weights: Int16Array;
  /** Real weight = wscale[o]·w. */
  wscale: Float32Array;
  /** Creates the layer's activation quantizer (one per compiled plan: it holds per-image state). */
  createQuantizer(): DynamicActQuantizer;
  /**
   * Per-image bias correction (optional): ΔW[o·cin + c] = Σ_taps (ŵ − w). Each image's bias becomes
   * b[o] − Σ_c ΔW[o, c]·mean_c with the image's channel means (src/methods/dynamic/weight-tools.ts).
   */
  weightError?: Float32Array;
  /** Weight bits (for BitOPs reports; default 8). */
  weightBits?: number;
}

/** The model side of a dynamic plan (DynamicQuantizedModel implements it). */
export interface DynamicPlanSource {
  /** The optimized graph (node ids index `layers`). */
  readonly graph: Graph;
  readonly layers: ReadonlyMap<number, DynamicConvSpec>;
  readonly path: DynamicPath;
  /** AdaBM's image-to-bit thresholds on the tile's gradient feature (adaptive models only). */
  readonly imageBits?: ImageBitThresholds | null;
}

interface DynExports extends F32Exports {
  channel_stats_acc_bytes(c: number): number;
  f32_channel_stats_nhwc(x: number, n: number, c: number, xStride: number, acc: number, out: number): void;
  f32_count_positive_nhwc(x: number, n: number, c: number, xStride: number, out: number): void;
  f32_daq_codes_nhwc(x: number, n: number, c: number, xStride: number, mu: number, invDelta: number, half: number, kmax: number, postRelu: number, out: number, outStride: number): void;
  f32_subset_codes_nhwc(x: number, n: number, c: number, xStride: number, mu: number, invM: number, table: number, tableStride: number, out: number, outStride: number): void;
  qlut_decode_nhwc(codes: number, n: number, c: number, inStride: number, lut: number, K: number, out: number, outStride: number): void;
  qlut_qc16w_conv_nhwc_f32(codes: number, inStride: number, H: number, W: number, Cin: number, lut: number, K: number, k: number, packed: number, Cout: number,
    mult: number, bias: number, output: number, outStride: number, outMin: number, outMax: number, scratch: number, bandRows: number): void;
  qs16_qc16w_conv_nhwc_pcs_f32(input: number, inStride: number, H: number, W: number, Cin: number, chScale: number, chMean: number, k: number, packed: number, Cout: number,
    wscale: number, bias: number, output: number, outStride: number, outMin: number, outMax: number, scratch: number, bandRows: number): void;
}

export interface DynamicPlanInfo {
  graph: Graph;
  memory: MemoryPlan;
  weightBytes: number;
  tensorBytes: number;
  scratchBytes: number;
  macsPerPixel: number;
  /** Node ids of the dynamically quantized convs. */
  quantized: number[];
  /** Op name per step ("stats", "codes", "conv lut", …). */
  stepOps: string[];
}

function clampOf(n: Node & { op: "conv2d" }): [number, number] {
  const kind = n.activation.kind;
  if (kind === "relu") return [0, Infinity];
  if (kind === "relu6") return [0, 6];
  if (kind === "linear") return [-Infinity, Infinity];
  throw new LowbitError("E_UNSUPPORTED_LAYER", `layer '${n.name}': activation '${kind}' cannot be fused into a dynamically quantized conv`);
}

/** Real (dequantized) HWIO weights of a spec. */
function dequantizedHwio(spec: DynamicConvSpec, k: number, cin: number, cout: number): Float32Array {
  const out = new Float32Array(k * k * cin * cout);
  for (let o = 0; o < cout; o++) {
    for (let t = 0; t < k * k; t++) {
      for (let c = 0; c < cin; c++) out[(t * cin + c) * cout + o] = spec.wscale[o] * spec.weights[(o * k * k + t) * cin + c];
    }
  }
  return out;
}

export class DynamicPlan extends StepPlan {
  private tensorPtr: number[] = [];
  readonly info: DynamicPlanInfo;
  readonly nodeSteps: [number, number][];
  /** The per-layer quantizers (their per-image state reflects the last run). */
  readonly quantizers: Map<number, DynamicActQuantizer>;
  /** Shared with the adaptive quantizers: the current tile's feature and image bit offset. */
  readonly adaptive: AdaptiveContext | null;
  /** Core of the next tile inside its region (consumed by the feature step; null = whole region). */
  private core: FeatureRect | null = null;
  /** Per quantized layer (plan order): MACs per LR pixel, weight bits; FP32 layers' MACs. */
  private readonly bitLayers: { q: DynamicActQuantizer; macs: number; wbits: number }[] = [];
  private fp32Macs = 0;

  constructor(rt: Runtime, src: DynamicPlanSource, maxW: number, maxH: number) {
    const g = src.graph;
    super(rt, g.nodes[g.output].spatial, maxW, maxH);
    if (g.nodes[g.input].channels !== 3 || g.nodes[g.output].channels !== 3) {
      throw new LowbitError("E_SHAPE", `an upscaling model maps RGB to RGB; this one maps ${g.nodes[g.input].channels} to ${g.nodes[g.output].channels} channels`);
    }
    const path = src.path;
    const mem = planMemory(g, { tileW: maxW, tileH: maxH, elemBytes: () => 4, pinned: new Set([g.input, g.output]) });
    const k = rt.kernels<DynExports>();
    const quantizers = new Map<number, DynamicActQuantizer>();
    let adaptive: AdaptiveContext | null = null;

    // 1. Weights: f32 packs for FP32 layers (and the oracle path), integer packs for the others.
    const f32Packed = new Map<number, number>();
    const intPacked = new Map<number, { ptr: number; maxAbsWeightSum: number }>();
    let weightBytes = 0, macsPerPixel = 0, scratchBytes = 0;
    let maxCodes = 0, maxDecoded = 0, maxC = 0;
    for (const n of g.nodes) {
      if (n.op !== "conv2d") continue;
      macsPerPixel += n.k * n.k * n.cin * n.cout * n.spatial * n.spatial;
      const W = maxW * n.spatial, H = maxH * n.spatial;
      const spec = src.layers.get(n.id);
      if (!spec) {
        const p = packF32Conv(n.weights, n.k, n.cin, n.cout, n.bias);
        f32Packed.set(n.id, this.region.put(p));
        weightBytes += p.byteLength;
        scratchBytes = Math.max(scratchBytes, f32ConvScratchBytes(W, n.cin, n.k));
        continue;
      }
      if (spec.weights.length !== n.k * n.k * n.cin * n.cout || spec.wscale.length !== n.cout) {
        throw new LowbitError("E_SHAPE", `layer '${n.name}': quantized weights do not match the conv (${n.k}×${n.k}, ${n.cin}→${n.cout})`);
      }
      const q = spec.createQuantizer();
      if (q.channels !== n.cin) throw new LowbitError("E_SHAPE", `layer '${n.name}': activation quantizer has ${q.channels} channels, the conv reads ${n.cin}`);
      quantizers.set(n.id, q);
      if (q.bind) q.bind(adaptive ??= createAdaptiveContext());
      if (!q.isStatic && q.needsStats !== false) maxC = Math.max(maxC, n.cin); // statistics buffers: quantizers that read them
      if (path === "oracle") {
        const p = packF32Conv(dequantizedHwio(spec, n.k, n.cin, n.cout), n.k, n.cin, n.cout, n.bias);
        f32Packed.set(n.id, this.region.put(p));
        weightBytes += p.byteLength;
        scratchBytes = Math.max(scratchBytes, f32ConvScratchBytes(W, n.cin, n.k));
        maxDecoded = Math.max(maxDecoded, 4 * W * H * n.cin);
      } else if (path === "lut") {
        const p = packQlutConv(spec.weights, { cout: n.cout, k: n.k, cin: n.cin });
        intPacked.set(n.id, { ptr: this.region.put(p.bytes), maxAbsWeightSum: p.maxAbsWeightSum });
        weightBytes += p.bytes.byteLength;
        // Band rows are chosen per call for the tile's width; the slack covers narrower tiles' rounding.
        scratchBytes = Math.max(scratchBytes, qlutConvScratchBytes(W, n.cin, n.k) + (1 << 20));
        maxCodes = Math.max(maxCodes, W * H * n.cin);
      } else {
        const p = packQs16ConvPcs(spec.weights, { cout: n.cout, k: n.k, cin: n.cin });
        let maxG = 0;
        for (let c = 0; c < n.cin; c++) for (let j = 0; j < q.levels; j++) maxG = Math.max(maxG, Math.abs(q.intLevel(c, j)));
        checkQs16PcsRange(p, maxG); // the int32 partial sums are exact for every code
        intPacked.set(n.id, { ptr: this.region.put(p.bytes), maxAbsWeightSum: 0 });
        weightBytes += p.bytes.byteLength;
        // The band depends on the tile; the bound at the plan size covers smaller tiles up to the
        // band's fixed 512 KiB budget (qs16ConvPcsBandRows), hence the slack.
        scratchBytes = Math.max(scratchBytes, qs16ConvPcsScratchBytes(H, W, n.cin, n.cout, n.k) + (1 << 20));
        maxCodes = Math.max(maxCodes, W * H * n.cin);
        maxDecoded = Math.max(maxDecoded, 2 * W * H * n.cin);
      }
    }

    // 2. Tensor buffers, scratch, the per-layer parameter blocks.
    const tensorBase = this.region.alloc(mem.totalBytes);
    const scratch = this.region.alloc(scratchBytes);
    const codesBuf = maxCodes ? this.region.alloc(maxCodes) : 0;
    const decodedBuf = maxDecoded ? this.region.alloc(maxDecoded) : 0;
    const statsAcc = maxC ? this.region.alloc(k.channel_stats_acc_bytes(maxC)) : 0;
    const statsOut = maxC ? this.region.alloc(6 * 4 * maxC) : 0;
    const ptr = (id: number): number => tensorBase + mem.buffers[mem.placement[id].buffer].offset + 4 * mem.placement[id].channelOffset;
    const stride = (id: number): number => mem.placement[id].pixelStride;

    const steps: Step[] = [];
    const stepOps: string[] = [];
    const nodeSteps: [number, number][] = [];
    const f32cx = { g, k, ptr, stride, scratch, packedAt: f32Packed, steps, concatCopies: mem.concatCopies };
    const rtArena = rt.arena;
    if (adaptive) {
      // 0. the tile's gradient feature (adabm.md §2, cadyq.md §2) and AdaBM's image bit offset.
      const ctx = adaptive, thr = src.imageBits ?? null;
      const [ilo, ihi] = g.meta.inputRange, inP = ptr(g.input);
      steps.push((w, h) => {
        const core = this.core;
        this.core = null;
        const rect = core && core.x + core.w <= w && core.y + core.h <= h ? core : undefined;
        const f = rt.arena.f32.subarray(inP / 4, inP / 4 + w * h * 3);
        gradientFeature(ctx.feature, f, w, h, 3, ilo, ihi, rect);
        ctx.g = (ctx.feature[0] + ctx.feature[1]) / 2;
        ctx.imageDelta = thr ? imageBitDelta(ctx.g, thr) : 0;
      });
      stepOps.push("feature");
    }
    for (const n of g.nodes) {
      const first = steps.length;
      const q = quantizers.get(n.id);
      if (n.op === "conv2d") {
        const macs = n.k * n.k * n.cin * n.cout * n.spatial * n.spatial;
        if (q) this.bitLayers.push({ q, macs, wbits: src.layers.get(n.id)!.weightBits ?? 8 });
        else this.fp32Macs += macs;
      }
      if (n.op !== "conv2d" || !q) {
        lowerF32Node(f32cx, n);
        while (stepOps.length < steps.length) stepOps.push(n.op === "conv2d" ? "conv f32" : n.op);
        nodeSteps.push([first, steps.length]);
        continue;
      }
      const spec = src.layers.get(n.id)!;
      const s = n.spatial;
      const { cin, cout, k: kk } = n;
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x), y = ptr(n.id), ys = stride(n.id);
      const [lo, hi] = clampOf(n);
      const K = q.levels;
      // Per-layer parameter block: mu, inv, aux (f32 C each), half, kmax (i32 C), mult, bias (f32 cout↑8), lut (i16 C·K), count table.
      const coutP = (cout + 7) & ~7;
      const pMu = this.region.alloc(4 * cin), pInv = this.region.alloc(4 * cin);
      const pHalf = this.region.alloc(4 * cin), pKmax = this.region.alloc(4 * cin);
      const pMult = this.region.alloc(4 * coutP), pBias = this.region.alloc(4 * coutP);
      const pLut = this.region.alloc(2 * cin * K);
      const pA = this.region.alloc(4 * cin), pM2 = this.region.alloc(4 * cin);
      let pTable = 0;
      if (q.codeKernel === "subset") pTable = this.region.put(q.countTable!);
      else {
        rtArena.i32.set(q.half!, pHalf / 4);
        rtArena.i32.set(q.kmax!, pKmax / 4);
      }
      const bias = new Float32Array(coutP);
      if (n.bias) bias.set(n.bias);
      rtArena.f32.set(bias, pBias / 4);
      const dW = spec.weightError ?? null;
      if (dW && dW.length !== cout * cin) throw new LowbitError("E_SHAPE", `layer '${n.name}': weight error has ${dW.length} values, cout·cin = ${cout * cin}`);
      const biasEff = new Float32Array(coutP);
      // Oracle path: the bias lives in the packed f32 weights, block b at float b·(8 + 8·k·k·cin).
      const oracleBias = (o2: number) => (f32Packed.get(n.id)! / 4) + (o2 >> 3) * (8 + 8 * kk * kk * cin) + (o2 & 7);
      const mu = new Float32Array(cin), inv = new Float32Array(cin);
      const a = new Float32Array(cin), m2 = new Float32Array(cin);
      const lut = new Int16Array(cin * K);
      const mult = new Float32Array(coutP);
      const stats: ChannelStatsView = {
        pixels: 0, min: new Float32Array(0), max: new Float32Array(0), mean: new Float32Array(0), std: new Float32Array(0),
        maxAbsDev: new Float32Array(0), countPositive: null,
      };
      const lutLimit = path === "lut" ? qlutLutLimit(intPacked.get(n.id)!.maxAbsWeightSum) : 0;

      // 1. statistics
      const statStep: Step = (w, h) => {
        const npx = w * s * h * s;
        k.f32_channel_stats_nhwc(xp, npx, cin, xs, statsAcc, statsOut);
        if (q.needsCountPositive) {
          rt.arena.f32.fill(0, statsOut / 4 + 5 * cin, statsOut / 4 + 6 * cin);
          k.f32_count_positive_nhwc(xp, npx, cin, xs, statsOut + 5 * 4 * cin);
        }
      };
      // 2. per-image parameters (static quantizers: once, here)
      const paramStep: Step = (w, h) => {
        const f = rt.arena.f32, o = statsOut / 4;
        stats.pixels = w * s * h * s;
        stats.min = f.subarray(o, o + cin);
        stats.max = f.subarray(o + cin, o + 2 * cin);
        stats.mean = f.subarray(o + 2 * cin, o + 3 * cin);
        stats.std = f.subarray(o + 3 * cin, o + 4 * cin);
        stats.maxAbsDev = f.subarray(o + 4 * cin, o + 5 * cin);
        stats.countPositive = q.needsCountPositive ? f.subarray(o + 5 * cin, o + 6 * cin) : null;
        fillParams();
      };
      const fillParams = (): void => {
        q.prepare(stats, mu, inv);
        // Adaptive quantizers change their code range with the bits.
        if (q.bind && q.codeKernel === "daq") {
          rt.arena.i32.set(q.half!, pHalf / 4);
          rt.arena.i32.set(q.kmax!, pKmax / 4);
        }
        if (dW) {
          for (let o2 = 0; o2 < cout; o2++) {
            let s2 = n.bias ? n.bias[o2] : 0;
            for (let c = 0; c < cin; c++) s2 -= dW[o2 * cin + c] * stats.mean[c];
            biasEff[o2] = s2;
          }
          if (path === "oracle") for (let o2 = 0; o2 < cout; o2++) rt.arena.f32[oracleBias(o2)] = biasEff[o2];
          else rt.arena.f32.set(biasEff, pBias / 4);
        }
        if (path === "lut") {
          let maxAbs = 0;
          for (let c = 0; c < cin; c++) for (let j = 0; j < K; j++) maxAbs = Math.max(maxAbs, Math.abs(q.level(c, j)));
          // S: the finest step whose table stays inside the proven int32 bound (and int16).
          const S = maxAbs > 0 ? maxAbs / lutLimit : 1;
          for (let c = 0; c < cin; c++) {
            for (let j = 0; j < K; j++) {
              const v = Math.round(q.level(c, j) / S);
              lut[c * K + j] = Math.max(-lutLimit, Math.min(lutLimit, v));
            }
          }
          for (let o2 = 0; o2 < cout; o2++) mult[o2] = Math.fround(S * spec.wscale[o2]);
          rt.arena.i16.set(lut, pLut / 2);
          rt.arena.f32.set(mult, pMult / 4);
        } else if (path === "exact") {
          q.intAffine(a, m2);
          rt.arena.f32.set(a, pA / 4);
          rt.arena.f32.set(m2, pM2 / 4);
        }
        if (path !== "oracle") {
          rt.arena.f32.set(mu, pMu / 4);
          rt.arena.f32.set(inv, pInv / 4);
        }
      };
      if (q.isStatic) {
        // Image-independent codes and levels: no statistics pass, no per-image work.
        if (dW) throw new LowbitError("E_ARGUMENT", `layer '${n.name}': per-image bias correction needs a dynamic quantizer`);
        fillParams();
      } else {
        if (q.needsStats !== false) {
          steps.push(statStep);
          stepOps.push("stats");
        }
        steps.push(paramStep);
        stepOps.push("params");
      }
      if (path === "oracle") {
        const fp = f32Packed.get(n.id)!;
        steps.push((w, h) => {
          const npx = w * s * h * s;
          const out = rt.arena.f32.subarray(decodedBuf / 4, decodedBuf / 4 + npx * cin);
          q.reference(out, rt.arena.f32, xp / 4, xs, npx);
        });
        stepOps.push("quantize reference");
        steps.push((w, h) => k.f32_conv_nhwc(decodedBuf, cin, y, ys, h * s, w * s, cin, cout, kk, fp, lo, hi, scratch));
        stepOps.push("conv oracle");
      } else {
        // 3. codes
        if (q.codeKernel === "daq") {
          const pr = q.postRelu ? 1 : 0;
          steps.push((w, h) => k.f32_daq_codes_nhwc(xp, w * s * h * s, cin, xs, pMu, pInv, pHalf, pKmax, pr, codesBuf, cin));
        } else {
          const ts = q.countTableStride!;
          steps.push((w, h) => k.f32_subset_codes_nhwc(xp, w * s * h * s, cin, xs, pMu, pInv, pTable, ts, codesBuf, cin));
        }
        stepOps.push("codes");
        const packed = intPacked.get(n.id)!.ptr;
        if (path === "lut") {
          steps.push((w, h) => k.qlut_qc16w_conv_nhwc_f32(codesBuf, cin, h * s, w * s, cin, pLut, K, kk, packed, cout, pMult, pBias, y, ys, lo, hi, scratch,
            qlutConvBandRows(w * s, cin, kk)));
          stepOps.push("conv lut");
        } else {
          // Integer form table g_c(k): image independent.
          const g16 = new Int16Array(cin * K);
          for (let c = 0; c < cin; c++) for (let j = 0; j < K; j++) g16[c * K + j] = q.intLevel(c, j);
          const pG = this.region.put(g16);
          const pWs = this.region.put(Float32Array.from({ length: coutP }, (_, o2) => (o2 < cout ? spec.wscale[o2] : 0)));
          steps.push((w, h) => k.qlut_decode_nhwc(codesBuf, w * s * h * s, cin, cin, pG, K, decodedBuf, cin));
          stepOps.push("decode");
          steps.push((w, h) => k.qs16_qc16w_conv_nhwc_pcs_f32(decodedBuf, cin, h * s, w * s, cin, pA, pM2, kk, packed, cout, pWs, pBias, y, ys, lo, hi, scratch,
            qs16ConvPcsBandRows(h * s, w * s, cin, kk)));
          stepOps.push("conv exact");
        }
      }
      nodeSteps.push([first, steps.length]);
    }
    this.steps = steps;
    this.tensorPtr = g.nodes.map((n) => ptr(n.id));
    this.nodeSteps = nodeSteps;
    this.quantizers = quantizers;
    this.adaptive = adaptive;
    this.inPtr = ptr(g.input);
    this.outPtr = ptr(g.output);
    if (stride(g.input) !== 3 || stride(g.output) !== 3) throw new LowbitError("E_SHAPE", "internal: graph input/output must be dense");
    this.info = {
      graph: g, memory: mem, weightBytes, tensorBytes: mem.totalBytes, scratchBytes, macsPerPixel,
      quantized: [...quantizers.keys()], stepOps,
    };
  }

  /** Sets the core of the next tile inside its region: the gradient feature is taken over it (adabm.md §7 "quality mode"). */
  setCore(x: number, y: number, w: number, h: number): void {
    this.core = { x, y, w, h };
  }

  /** What the last tile ran with (null for a model without adaptive layers). */
  tileBits(): TileBits | null {
    const ctx = this.adaptive;
    if (!ctx) return null;
    const L = this.bitLayers.length;
    const bits = new Uint8Array(L), wb = new Uint8Array(L);
    let fab = 0, nf = 0, bitops = 32 * 32 * this.fp32Macs, fp = bitops;
    this.bitLayers.forEach((l, i) => {
      const b = l.q.activeBits ? l.q.activeBits() : l.q.levels > 1 ? Math.ceil(Math.log2(l.q.levels)) : 1;
      bits[i] = b;
      wb[i] = l.wbits;
      if (l.q.countsForFab !== false) {
        fab += b;
        nf++;
      }
      bitops += l.macs * l.wbits * b;
      fp += l.macs * 32 * 32;
    });
    return { bits, weightBits: wb, fab: nf ? fab / nf : NaN, bitopsPerPixel: bitops, fp32BitopsPerPixel: fp, feature: [ctx.feature[0], ctx.feature[1]], imageDelta: ctx.imageDelta };
  }

  /** Names of the quantized layers in TileBits order, and whether each counts for FAB. */
  bitLayerNames(): { layers: string[]; counted: boolean[] } {
    const names = new Map<DynamicActQuantizer, string>();
    for (const [id, q] of this.quantizers) names.set(q, this.info.graph.nodes[id].name);
    return { layers: this.bitLayers.map((l) => names.get(l.q)!), counted: this.bitLayers.map((l) => l.q.countsForFab !== false) };
  }

  /** Node `id`'s f32 output after its steps ran on a w×h tile (a strided arena view, as F32Plan.tensorView). */
  tensorView(id: number, w: number, h: number): { data: Float32Array; offset: number; stride: number; pixels: number; channels: number } {
    this.checkSize(w, h);
    const n = this.info.graph.nodes[id];
    return {
      data: this.rt.arena.f32, offset: this.tensorPtr[id] / 4, stride: this.info.memory.placement[id].pixelStride,
      pixels: w * n.spatial * h * n.spatial, channels: n.channels,
    };
  }
}
