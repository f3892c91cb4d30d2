/**
 * Quantized plan compiler: a QuantizedModel → kernel calls on 8-bit codes.
 *
 * Lowering, in order:
 * 1. Domains. Each tensor is 8-bit codes ("q8") or f32 (FP32 islands: layers
 *    kept in full precision, and the f32 image at the input). Where a
 *    consumer needs the other domain, a `quantize` or `dequantize` node is
 *    inserted (one per producer and direction). A fully quantized model thus
 *    has exactly one quantize (the image) and one dequantize (the output).
 *    With a 16-bit residual stream (QuantConfig.residualBits) the adds' sums
 *    are u16 codes ("q16"): adds and concats read them directly, any other
 *    reader gets one `narrow` node (u16 → u8 on the tensor's 8-bit grid).
 * 2. Memory. The same planner as FP32 (liveness reuse) with 1-byte codes
 *    (2-byte for q16; those are never aliased into a concat).
 *    By default each concat input keeps its own grid and is requantized into
 *    the concat (Q8PlanOptions.concatGrids); with "shared", inputs are written
 *    in place into the concat's slices, and every buffer's members then share
 *    one grid: the union of their ranges at the largest bit-width. Ops that
 *    cannot change the grid (pixel shuffle, upsample, ReLU clamp) are never
 *    aliased into a concat.
 * 3. Grids. (scale, zero-point) from each tensor's range and bits
 *    (affineParams: zero exactly representable), shared per buffer; grid-
 *    preserving ops inherit their input's grid.
 * 3'. Fusion (Q8PlanOptions.fuse, per-tensor concat grids): a concat whose only
 *    consumer is a 1×1 conv is never materialized — the conv requantizes its
 *    inputs while preparing its rows — and an add that directly follows its
 *    only-consumed 1×1 conv runs in that conv's store
 *    (kernels/qs8-conv-fused.ts); both bit-identical to the unfused steps.
 * 4. Steps. conv: int8/int4 weights, int32 accumulators, per-channel f32
 *    requantization multipliers s_x·s_w[o]/s_y, int32 bias round(b/(s_x·s_w)),
 *    fused ReLU as the clamp qmin = z_y (ReLU6: qmax = z_y + round(6/s_y));
 *    add: y = z_y + round(Σ c_i·(s_i/s_y)·(x_i − z_i)) (MultiplyBeta folded
 *    into c_i); concat copies: requantize m = s_x/s_y (a plain copy when the
 *    grids match); scale: requantize with m = β·s_x/s_y.
 */
import type { Graph, Node } from "./ir.ts";
import { planMemory, type MemoryPlan } from "./memory-plan.ts";
import { allocSe, lowerF32Node, type F32Exports, type SeBuffers } from "./compile-f32.ts";
import { spatialAlign } from "./validate.ts";
import { StepPlan, windowed, type Step } from "./step-plan.ts";
import { packF32Conv, f32ConvScratchBytes } from "../kernels/f32-conv.ts";
import { packQs8Qc4wConv, packQs8Qc8wConv, qs8ConvPath, qs8ConvRun, qs8ConvScratchBytes, checkAccumulatorRange, type PackedQs8Conv, type QConvPath, type QConvPathOptions } from "../kernels/qs8-conv.ts";
import { GATHER_WORDS, qs8ConvFusedRun } from "../kernels/qs8-conv-fused.ts";
import { checkNmAccumulatorRange, nmKernelPays, packQs8NmConv, qs8NmConvRun, qs8NmConvScratchBytes, type PackedQs8NmConv } from "../kernels/nm-conv.ts";
import { packInt4, quantizeBias, requantMultipliers } from "../kernels/requant.ts";
import { preluMultipliers } from "../kernels/prelu.ts";
import { BILINEAR_MODES } from "../kernels/ref/upsample.ts";
import { affineParams, type QuantParams } from "../quant/params.ts";
import type { QuantizedModel } from "../quant/quantize-model.ts";
import { isGridPreserving } from "../quant/quantize-model.ts";
import { LowbitError } from "../runtime/errors.ts";
import type { Runtime } from "../runtime/runtime.ts";

interface Q8Exports extends F32Exports {
  f32_q8_quantize_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, invScale: number, zp: number, qmin: number, qmax: number): void;
  q8_f32_dequantize_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, scale: number, zp: number, signed: number): void;
  q8_add_nhwc(a: number, b: number, n: number, c: number, as: number, bs: number, y: number, ys: number, za: number, zb: number, ma: number, mb: number, zo: number, qmin: number, qmax: number, signed: number): void;
  q8_requantize_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, zx: number, m: number, zy: number, qmin: number, qmax: number, signed: number): void;
  x8_copy_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number): void;
  x8_upsample_nearest_nhwc(x: number, h: number, w: number, c: number, factor: number, xs: number, y: number, ys: number): void;
  x8_upsample_bilinear_nhwc(x: number, h: number, w: number, c: number, factor: number, mode: number, xs: number, y: number, ys: number): void;
  x8_depth_to_space_nhwc(x: number, h: number, w: number, c: number, block: number, xs: number, y: number, ys: number): void;
  q8_clamp_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, lo: number, hi: number, signed: number): void;
  q8_prelu_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, zx: number, mPos: number, mNeg: number, zy: number, qmin: number, qmax: number, signed: number): void;
  x8_space_to_depth_phased_nhwc(x: number, h: number, w: number, c: number, block: number, phase: number, xs: number, y: number, ys: number, fill: number): void;
  x8_shift_nhwc(x: number, h: number, w: number, c: number, by: number, xs: number, y: number, ys: number, fill: number): void;
  q16_add_nhwc(a: number, b: number, n: number, c: number, as: number, bs: number, y: number, ys: number, za: number, zb: number, ma: number, mb: number,
    zo: number, qmin: number, qmax: number, aWide: number, bWide: number, yWide: number): void;
  q16_requantize_nhwc(x: number, n: number, c: number, xs: number, y: number, ys: number, zx: number, m: number, zy: number, qmin: number, qmax: number,
    xWide: number, yWide: number): void;
}

/** A lowered node: an IR node, or a domain conversion. `src` = id in the model graph (−1 for conversions). */
export type LNode = (Node | (Omit<Node, "op"> & { op: "quantize" | "dequantize" | "narrow" })) & { src: number; domain: "q8" | "q16" | "f32" };

export interface Q8PlanInfo {
  nodes: LNode[];
  memory: MemoryPlan;
  /** Grid of every q8 tensor (null for f32). */
  grids: (QuantParams | null)[];
  /** Op name per step, for inspection ("conv q8", "quantize"…). */
  stepOps: string[];
  weightBytes: number;
  tensorBytes: number;
  scratchBytes: number;
  /** Lowered node ids of the quantized convs that run the N:M-sparse kernel. */
  nmConvs: number[];
  /** Lowered node id → the inner loop of each quantized conv ("nm": the N:M-sparse kernel; "nm-pairs": its pair kernel). */
  convKernels: Record<number, QConvPath | "nm" | "nm-pairs">;
  /** Fused neighbours (lowered ids): conv → the concat it reads in place; conv → the add its store performs. */
  fused: { gathered: Map<number, number>; adds: Map<number, number> };
}

const f = Math.fround;

export interface Q8PlanOptions {
  /**
   * "per-tensor" (default): every tensor keeps the grid of its own calibrated range and a concat
   * requantizes its inputs into its grid (a 1-byte copy per input). "shared": inputs are written
   * in place into the concat's buffer, so they share its grid (the union of their ranges) — no
   * copies, but a wider step for inputs with small ranges. Measured on esrgan-medium ×2 W8A8
   * percentile (3 eval images): ΔPSNR −0.044 dB per-tensor vs −0.057 dB shared, fidelity 52.3 vs
   * 51.3 dB, and no measurable speed difference (the copies are 1 byte per element).
   */
  concatGrids?: "per-tensor" | "shared";
  /**
   * Which Winograd paths the int8 convs may take (default: all; each conv runs the fastest exact path that applies
   * to its shape and activation range — 3×3: F(2×2,3×3), else F(2,3) along x, else direct; 5×5: F(2,3), else
   * direct). Every path gives bit-identical codes; turning them off is for benchmarks and cross-checks.
   */
  convPaths?: QConvPathOptions;
  /**
   * Fuse neighbours into 1×1 convs (default true; per-tensor concat grids only): a concat read only by a 1×1 conv
   * is requantized by that conv as it prepares its input rows (no concat buffer, no copy pass), and an add right
   * after a 1×1 conv that nothing else reads is done in the conv's store (no conv tensor, no add pass). The codes
   * are bit-identical either way; the fused nodes' tensors do not exist, so per-layer inspection
   * (bench/quant-accuracy.ts --layers) turns it off. On esrgan-medium-x2 that removes all 30 concat copies and
   * 10 of the 11 adds.
   */
  fuse?: boolean | { concat?: boolean; add?: boolean };
}

export class Q8Plan extends StepPlan {
  readonly info: Q8PlanInfo;
  /** Byte offset and pixel stride of lowered node `id`'s tensor (inspection and tests). */
  readonly tensorAt: (id: number) => { ptr: number; stride: number };
  /** Per lowered node: its steps [from, to). */
  readonly nodeSteps: [number, number][];
  /**
   * Byte offset of the int32 bias (cout entries, accumulator units) of lowered dense integer conv `id`, else null.
   * Writing it changes the conv's next run: sequential bias correction (src/quant/bias-correction.ts) patches it.
   */
  readonly convBiasAt: (id: number) => number | null;

  constructor(rt: Runtime, qm: QuantizedModel, maxW: number, maxH: number, opts: Q8PlanOptions = {}) {
    super(rt, qm.graph.nodes[qm.graph.output].spatial, maxW, maxH, spatialAlign(qm.graph));
    maxW = this.maxW;
    maxH = this.maxH;
    const g = qm.graph;

    // 1. Lowered graph with domain conversions.
    const nodes: LNode[] = [];
    const mapped = new Array<number>(g.nodes.length);
    const conv = new Map<string, number>(); // `${src}:${domain}` → lowered id
    const want = (src: number, d: "q8" | "f32"): number => {
      const id = mapped[src];
      if (nodes[id].domain === d) return id;
      const key = `${src}:${d}`;
      let c = conv.get(key);
      if (c === undefined) {
        const s = nodes[id];
        if (s.domain === "q16" && d === "f32") throw new LowbitError("E_ARGUMENT", `internal: 16-bit tensor '${s.name}' has a float reader`);
        const op = s.domain === "q16" ? "narrow" : d === "q8" ? "quantize" : "dequantize";
        c = nodes.length;
        nodes.push({ id: c, name: `${s.name}/${op}`, op, inputs: [id], channels: s.channels, spatial: s.spatial, src: -1, domain: d } as LNode);
        conv.set(key, c);
      }
      return c;
    };
    for (const n of g.nodes) {
      const t = qm.tensors[n.id];
      const d = t.domain === "q8" && t.bits > 8 ? "q16" : t.domain;
      // Adds and concats read 16-bit codes as they are; every other integer reader gets the 8-bit copy ("narrow").
      const wide = (i: number) => nodes[mapped[i]].domain === "q16" && d !== "f32" && (n.op === "add" || n.op === "concat");
      const inputs = n.inputs.map((i) => (wide(i) ? mapped[i] : want(i, d === "q16" ? "q8" : d)));
      const id = nodes.length;
      nodes.push({ ...n, id, inputs, src: n.id, domain: d } as LNode);
      mapped[n.id] = id;
    }
    const outId = want(g.output, "f32");
    const inId = mapped[g.input];
    const lg = { ...g, nodes: nodes as unknown as Node[], input: inId, output: outId } as Graph;

    // 1'. Fusion candidates (see the header); tensors of fused-away nodes are virtual in the memory plan.
    const perTensor = (opts.concatGrids ?? "per-tensor") === "per-tensor";
    const consumers: number[][] = nodes.map(() => []);
    for (const ln of nodes) for (const i of ln.inputs) consumers[i].push(ln.id);
    const gathered = new Map<number, number>(), fusedAdd = new Map<number, number>();
    const virtual = new Set<number>(), liveFrom = new Map<number, number>();
    const fuseConcat = perTensor && opts.fuse !== false && (typeof opts.fuse !== "object" || opts.fuse.concat !== false);
    const fuseAdd = perTensor && opts.fuse !== false && (typeof opts.fuse !== "object" || opts.fuse.add !== false);
    if (fuseConcat || fuseAdd) {
      for (const ln of nodes) {
        if (ln.op !== "conv2d" || ln.domain !== "q8") continue;
        const n = ln as Extract<Node, { op: "conv2d" }>;
        if (n.k !== 1 || n.sparsity) continue;
        const x = nodes[n.inputs[0]];
        if (fuseConcat && x.op === "concat" && x.domain === "q8" && consumers[x.id].length === 1 && x.inputs.every((i) => nodes[i].domain === "q8" && nodes[i].spatial === x.spatial)) {
          gathered.set(ln.id, x.id);
          virtual.add(x.id);
        }
        // The add must come right after the conv: its step then runs where the conv's did, after the residual exists.
        const a = nodes[ln.id + 1];
        if (fuseAdd && consumers[ln.id].length === 1 && a && consumers[ln.id][0] === a.id && a.op === "add" && a.domain === "q8" && a.inputs.length === 2 && a.inputs.every((i) => nodes[i].domain === "q8") &&
          a.inputs[0] !== a.inputs[1] && nodes[a.inputs[0]].spatial === a.spatial && nodes[a.inputs[1]].spatial === a.spatial) {
          fusedAdd.set(ln.id, a.id);
          virtual.add(ln.id);
          liveFrom.set(a.id, ln.id);
        }
      }
    }

    // 2. Memory (codes are 1 byte; grid-fixed ops and the input never alias into a concat).
    const bytes = (id: number) => (nodes[id].domain === "q8" ? 1 : nodes[id].domain === "q16" ? 2 : 4);
    const mem = planMemory(lg, {
      tileW: maxW, tileH: maxH, elemBytes: bytes, pinned: new Set([inId, outId]), noConcatAlias: perTensor,
      canWriteStrided: (id) => !(nodes[id].domain === "q8" && isGridPreserving(nodes[id] as Node)) && nodes[id].domain !== "q16", virtual, liveFrom,
    });

    // 3. Grids: range of the model tensor (a quantize node: of its producer), shared per buffer.
    const rangeOf = (ln: LNode): [number, number, number] => {
      const t = qm.tensors[ln.src >= 0 ? ln.src : nodes[ln.inputs[0]].src];
      if (ln.op === "narrow") return [t.narrow!.range[0], t.narrow!.range[1], t.narrow!.bits];
      return [t.range[0], t.range[1], t.bits];
    };
    const grids: (QuantParams | null)[] = nodes.map(() => null);
    const byBuffer = new Map<number, number[]>();
    nodes.forEach((ln) => {
      if (ln.domain === "f32") return;
      const b = mem.placement[ln.id].buffer;
      if (!byBuffer.has(b)) byBuffer.set(b, []);
      byBuffer.get(b)!.push(ln.id);
    });
    for (const ids of byBuffer.values()) {
      let lo = 0, hi = 0, bits = 2;
      for (const id of ids) {
        const [a, b, nb] = rangeOf(nodes[id]);
        lo = Math.min(lo, a);
        hi = Math.max(hi, b);
        bits = Math.max(bits, nb);
      }
      const p = affineParams(lo, hi, bits, { signed: false });
      for (const id of ids) grids[id] = p;
    }
    // The image quantize is exact: 8-bit grid of the input range.
    for (const ln of nodes) if (ln.op === "quantize" && ln.inputs[0] === inId) grids[ln.id] = affineParams(g.meta.inputRange[0], g.meta.inputRange[1], 8, { signed: false });
    for (const ln of nodes) if (ln.domain === "q8" && isGridPreserving(ln as Node)) grids[ln.id] = grids[ln.inputs[0]];

    // 4. Weights, then buffers, then scratch.
    const k = rt.kernels<Q8Exports>();
    const f32Packed = new Map<number, number>();
    const qLayers = new Map<number, { layer: PackedQs8Conv; packed: number; mult: number }>();
    const nmLayers = new Map<number, { layer: PackedQs8NmConv; packed: number; mult: number }>();
    let weightBytes = 0, scratchBytes = 0;
    const convKernels: Record<number, QConvPath | "nm" | "nm-pairs"> = {};
    const preluMult = new Map<number, { mPos: number; mNeg: number }>();
    // squeeze_excite runs in FP32 (quantize-model.ts puts it in the f32 domain): its pooled mean, two tiny
    // FC layers and the per-channel gate are negligible work next to the convs around it.
    const seAt = new Map<number, SeBuffers>();
    for (const ln of nodes) {
      if (ln.op === "squeeze_excite") seAt.set(ln.id, allocSe(this.region, ln.channels));
      if (ln.op === "prelu") {
        const n = ln as Extract<Node, { op: "prelu" }>;
        if (ln.domain === "f32") f32Packed.set(ln.id, this.region.put(n.slopes));
        else {
          // Codes: y = zy + round((x − zx)·m), m = sx/sy (x ≥ zx) or slope[c]·sx/sy (kernels/prelu.ts).
          const mNeg = new Float32Array(n.channels);
          const mPos = preluMultipliers(mNeg, n.slopes, grids[ln.inputs[0]]!.scale, grids[ln.id]!.scale);
          preluMult.set(ln.id, { mPos, mNeg: this.region.put(mNeg) });
        }
        weightBytes += n.slopes.byteLength;
        continue;
      }
      if (ln.op !== "conv2d") continue;
      const n = ln as Extract<Node, { op: "conv2d" }>;
      const W = maxW * n.spatial, H = maxH * n.spatial;
      if (ln.domain === "f32") {
        const p = packF32Conv(n.weights, n.k, n.cin, n.cout, n.bias);
        f32Packed.set(ln.id, this.region.put(p));
        weightBytes += p.byteLength;
        scratchBytes = Math.max(scratchBytes, f32ConvScratchBytes(W, n.cin, n.k));
        continue;
      }
      const qw = qm.weights[ln.src];
      if (!qw) throw new LowbitError("E_ARGUMENT", `internal: quantized conv '${n.name}' has no weights`);
      const gx = grids[ln.inputs[0]]!, gy = grids[ln.id]!;
      const biasQ = quantizeBias(new Int32Array(n.cout), qw.bias ?? n.bias ?? null, gx.scale, qw.scales);
      const ohwi = hwioToOhwi(qw.codes, n.k, n.cin, n.cout);
      const args = { cout: n.cout, k: n.k, cin: n.cin, bias: biasQ };
      const layer = qw.bits <= 4 ? packQs8Qc4wConv(packInt4(new Uint8Array((ohwi.length + 1) >> 1), ohwi), args) : packQs8Qc8wConv(ohwi, args);
      const act = { bits: gx.bits, signed: false, zeroPoint: gx.zeroPoint };
      // N:M conv: the sparse kernel when the *codes* keep the pattern (a grid without a zero level may not)
      // and it is faster than the dense path this layer would take.
      const dense = qs8ConvPath(rt, layer, act, opts.convPaths);
      if (n.sparsity && nmKernelPays(n.k, n.cin, n.sparsity, dense) && ohwiKeepsNm(ohwi, n.k, n.cin, n.cout, n.sparsity)) {
        const L = packQs8NmConv(ohwi, { ...args, ...n.sparsity });
        checkNmAccumulatorRange(L, act);
        const mult = requantMultipliers(new Float32Array(L.coutPadded), gx.scale, qw.scales, gy.scale);
        nmLayers.set(ln.id, { layer: L, packed: this.region.put(L.bytes), mult: this.region.put(mult) });
        convKernels[ln.id] = L.pairs ? "nm-pairs" : "nm";
        weightBytes += L.bytes.byteLength;
        scratchBytes = Math.max(scratchBytes, qs8NmConvScratchBytes(W, n.cin, n.cout, n.k, n.sparsity));
        continue;
      }
      checkAccumulatorRange(layer, act);
      const mult = requantMultipliers(new Float32Array(layer.coutPadded), gx.scale, qw.scales, gy.scale);
      const packed = this.region.put(layer.bytes);
      qLayers.set(ln.id, { layer, packed, mult: this.region.put(mult) });
      convKernels[ln.id] = dense;
      weightBytes += layer.bytes.byteLength;
      scratchBytes = Math.max(scratchBytes, qs8ConvScratchBytes(H, W, n.cin, n.k));
    }
    const base = this.region.alloc(mem.totalBytes);
    const scratch = this.region.alloc(scratchBytes);
    const ptr = (id: number) => base + mem.buffers[mem.placement[id].buffer].offset + bytes(id) * mem.placement[id].channelOffset;
    const stride = (id: number) => mem.placement[id].pixelStride;

    // 5. Steps.
    const convPaths = opts.convPaths;
    const steps: Step[] = [];
    const stepOps: string[] = [];
    const nodeSteps: [number, number][] = [];
    this.useRowWindows(lg);
    const R = this.rows;
    const f32cx = { g: lg, k, ptr, stride, scratch, packedAt: f32Packed, steps, concatCopies: mem.concatCopies, rt, seAt, rows: R };
    for (const ln of nodes) {
      const before = steps.length;
      const s = ln.spatial, c = ln.channels, y = ptr(ln.id), ys = stride(ln.id), id = ln.id;
      /** A step over the node's row window (row-windows.ts): body(first row, rows, row width). */
      const rowsOf = (body: (a: number, H: number, W: number) => void) => windowed(R, id, s, body);
      if (ln.domain === "f32" && ln.op !== "dequantize") {
        lowerF32Node(f32cx, ln as Node);
      } else if (ln.op === "dequantize") {
        const x = ln.inputs[0], gx = grids[x]!, xp = ptr(x), xs = stride(x);
        steps.push(rowsOf((a, H, W) => k.q8_f32_dequantize_nhwc(xp + a * W * xs, H * W, c, xs, y + 4 * a * W * ys, ys, gx.scale, gx.zeroPoint, 0)));
      } else {
        const gy = grids[ln.id]!;
        switch (ln.op) {
          case "quantize": {
            const x = ln.inputs[0], xp = ptr(x), xs = stride(x), inv = f(1 / gy.scale);
            steps.push(rowsOf((a, H, W) => k.f32_q8_quantize_nhwc(xp + 4 * a * W * xs, H * W, c, xs, y + a * W * ys, ys, inv, gy.zeroPoint, gy.qmin, gy.qmax)));
            break;
          }
          case "conv2d": {
            const n = ln as Extract<Node, { op: "conv2d" }>;
            const x = n.inputs[0], gx = grids[x]!, L = qLayers.get(ln.id), S = nmLayers.get(ln.id);
            let qmin = gy.qmin, qmax = gy.qmax;
            if (n.activation.kind === "relu" || n.activation.kind === "relu6") qmin = Math.max(qmin, gy.zeroPoint);
            if (n.activation.kind === "relu6") qmax = Math.min(qmax, gy.zeroPoint + Math.round(6 / gy.scale));
            const act = { bits: gx.bits, signed: false, zeroPoint: gx.zeroPoint };
            const out = { signed: false, zeroPoint: gy.zeroPoint, qmin, qmax };
            const xp = ptr(x), xs = stride(x);
            const cat = gathered.get(ln.id), addId = fusedAdd.get(ln.id);
            if (cat !== undefined || addId !== undefined) {
              steps.push(fusedConvStep(rt, L!, cat !== undefined ? nodes[cat].inputs : [x], (i) => ({ ptr: ptr(i), stride: stride(i), channels: nodes[i].channels }),
                grids, gx, out, addId === undefined ? null : nodes[addId] as Extract<Node, { op: "add" }>, ln.id, y, ys, scratch, this.region, R, s,
                addId === undefined ? null : { ptr: ptr(addId), stride: stride(addId), grid: grids[addId]! }));
            } else if (S) {
              steps.push(rowsOf((a, H, W) => qs8NmConvRun(rt, { layer: S.layer, packed: S.packed, H, W, input: xp + a * W * xs, inStride: xs, act,
                output: y + a * W * ys, outStride: ys, scratch, multipliers: S.mult, out })));
            } else {
              const D = L!;
              steps.push(rowsOf((a, H, W) => qs8ConvRun(rt, { layer: D.layer, packed: D.packed, H, W, input: xp + a * W * xs, inStride: xs, act,
                output: y + a * W * ys, outStride: ys, scratch, multipliers: D.mult, out, paths: convPaths })));
            }
            break;
          }
          case "add": {
            if (liveFrom.has(ln.id)) break; // done in the store of the conv before it
            const n = ln as Extract<Node, { op: "add" }>;
            const coeffs = n.coeffs ?? n.inputs.map(() => 1);
            const [a, b, ...rest] = n.inputs;
            if (b === undefined) throw new LowbitError("E_SHAPE", `add '${n.name}' needs at least two inputs`);
            const ga = grids[a]!, gb = grids[b]!;
            const ap = ptr(a), as = stride(a), bp = ptr(b), bs = stride(b);
            const ma = f((coeffs[0] * ga.scale) / gy.scale), mb = f((coeffs[1] * gb.scale) / gy.scale);
            if (n.inputs.some((i) => nodes[i].domain === "q16") || ln.domain === "q16") {
              // 16-bit residual stream: u8/u16 codes in, u8/u16 out (assembly/elementwise/requant-wide.ts).
              const wa = bytes(a), wb = bytes(b), wy = bytes(ln.id);
              steps.push(rowsOf((o, H, W) => k.q16_add_nhwc(ap + o * W * as * wa, bp + o * W * bs * wb, H * W, c, as, bs, y + o * W * ys * wy, ys,
                ga.zeroPoint, gb.zeroPoint, ma, mb, gy.zeroPoint, gy.qmin, gy.qmax, wa - 1, wb - 1, wy - 1)));
              rest.forEach((r, j) => {
                const gr = grids[r]!, rp = ptr(r), rs = stride(r), mr = f((coeffs[j + 2] * gr.scale) / gy.scale), wr = bytes(r);
                steps.push(rowsOf((o, H, W) => k.q16_add_nhwc(y + o * W * ys * wy, rp + o * W * rs * wr, H * W, c, ys, rs, y + o * W * ys * wy, ys,
                  gy.zeroPoint, gr.zeroPoint, 1, mr, gy.zeroPoint, gy.qmin, gy.qmax, wy - 1, wr - 1, wy - 1)));
              });
              break;
            }
            steps.push(rowsOf((o, H, W) => k.q8_add_nhwc(ap + o * W * as, bp + o * W * bs, H * W, c, as, bs, y + o * W * ys, ys, ga.zeroPoint, gb.zeroPoint, ma, mb, gy.zeroPoint, gy.qmin, gy.qmax, 0)));
            rest.forEach((r, j) => {
              const gr = grids[r]!, rp = ptr(r), rs = stride(r), mr = f((coeffs[j + 2] * gr.scale) / gy.scale);
              steps.push(rowsOf((o, H, W) => k.q8_add_nhwc(y + o * W * ys, rp + o * W * rs, H * W, c, ys, rs, y + o * W * ys, ys, gy.zeroPoint, gr.zeroPoint, 1, mr, gy.zeroPoint, gy.qmin, gy.qmax, 0)));
            });
            break;
          }
          case "narrow": {
            // The 8-bit copy of a 16-bit residual tensor: y = z_y + round((s_x/s_y)·(x − z_x)).
            const x = ln.inputs[0], gx = grids[x]!, xp = ptr(x), xs = stride(x), m = f(gx.scale / gy.scale);
            steps.push(rowsOf((a, H, W) => k.q16_requantize_nhwc(xp + 2 * a * W * xs, H * W, c, xs, y + a * W * ys, ys, gx.zeroPoint, m, gy.zeroPoint, gy.qmin, gy.qmax, 1, 0)));
            break;
          }
          case "concat": {
            if (virtual.has(ln.id)) break; // read in place by its conv
            const copies = new Set(mem.concatCopies.get(ln.id) ?? []);
            let off = 0;
            for (const i of ln.inputs) {
              const ci = nodes[i].channels;
              if (copies.has(off) && nodes[i].domain === "q16") {
                const gi = grids[i]!, ip = ptr(i), is = stride(i), m = f(gi.scale / gy.scale), yo = y + off;
                steps.push(rowsOf((a, H, W) => k.q16_requantize_nhwc(ip + 2 * a * W * is, H * W, ci, is, yo + a * W * ys, ys, gi.zeroPoint, m, gy.zeroPoint, gy.qmin, gy.qmax, 1, 0)));
              } else if (copies.has(off)) steps.push(rowsOf(requantStep(k, ptr(i), stride(i), grids[i]!, y + off, ys, gy, ci, 1)));
              off += ci;
            }
            break;
          }
          case "scale": {
            const n = ln as Extract<Node, { op: "scale" }>;
            steps.push(rowsOf(requantStep(k, ptr(n.inputs[0]), stride(n.inputs[0]), grids[n.inputs[0]]!, y, ys, gy, c, n.factor)));
            break;
          }
          case "upsample_nearest": {
            const n = ln as Extract<Node, { op: "upsample_nearest" }>;
            const x = n.inputs[0], si = nodes[x].spatial, xp = ptr(x), xs = stride(x);
            const fa = n.factor;
            steps.push(windowed(R, id, si, (a, H, W) => k.x8_upsample_nearest_nhwc(xp + a * W * xs, H, W, c, fa, xs, y + a * fa * W * fa * ys, ys)));
            break;
          }
          case "upsample_bilinear": {
            // Codes keep their grid: the weights sum to 1 (assembly/elementwise/upsample-bilinear.ts).
            const n = ln as Extract<Node, { op: "upsample_bilinear" }>;
            const x = n.inputs[0], si = nodes[x].spatial, xp = ptr(x), xs = stride(x), mode = BILINEAR_MODES.indexOf(n.mode);
            const fa = n.factor;
            steps.push(windowed(R, id, si, (a, H, W) => k.x8_upsample_bilinear_nhwc(xp + a * W * xs, H, W, c, fa, mode, xs, y + a * fa * W * fa * ys, ys)));
            break;
          }
          case "depth_to_space": {
            const n = ln as Extract<Node, { op: "depth_to_space" }>;
            const x = n.inputs[0], si = nodes[x].spatial, xp = ptr(x), xs = stride(x);
            const b = n.block;
            steps.push(windowed(R, id, si, (a, H, W) => k.x8_depth_to_space_nhwc(xp + a * W * xs, H, W, c, b, xs, y + a * b * W * b * ys, ys)));
            break;
          }
          case "activation": {
            const n = ln as Extract<Node, { op: "activation" }>;
            const x = n.inputs[0], xp = ptr(x), xs = stride(x);
            const lo = n.activation.kind === "linear" ? gy.qmin : gy.zeroPoint;
            const hi = n.activation.kind === "relu6" ? Math.min(gy.qmax, gy.zeroPoint + Math.round(6 / gy.scale)) : gy.qmax;
            steps.push(rowsOf((a, H, W) => k.q8_clamp_nhwc(xp + a * W * xs, H * W, c, xs, y + a * W * ys, ys, lo, hi, 0)));
            break;
          }
          case "space_to_depth": {
            const n = ln as Extract<Node, { op: "space_to_depth" }>;
            // Blocks reaching beyond the frame (phase > 0) read the code of real 0: the zero point.
            const x = n.inputs[0], ci = nodes[x].channels, xp = ptr(x), xs = stride(x), ph = n.phase ?? 0, zp = grids[x]!.zeroPoint;
            steps.push((w, h) => k.x8_space_to_depth_phased_nhwc(xp, h * s, w * s, ci, n.block, ph, xs, y, ys, zp));
            break;
          }
          case "shift": {
            const n = ln as Extract<Node, { op: "shift" }>;
            const x = n.inputs[0], xp = ptr(x), xs = stride(x), zp = grids[x]!.zeroPoint;
            steps.push((w, h) => k.x8_shift_nhwc(xp, h * s, w * s, c, n.by, xs, y, ys, zp));
            break;
          }
          case "prelu": {
            const x = ln.inputs[0], gx = grids[x]!, xp = ptr(x), xs = stride(x), M = preluMult.get(ln.id)!;
            steps.push(rowsOf((a, H, W) => k.q8_prelu_nhwc(xp + a * W * xs, H * W, c, xs, y + a * W * ys, ys, gx.zeroPoint, M.mPos, M.mNeg, gy.zeroPoint, gy.qmin, gy.qmax, 0)));
            break;
          }
          default:
            throw new LowbitError("E_UNSUPPORTED_LAYER", `layer '${ln.name}': no integer lowering for '${ln.op}'`);
        }
      }
      const hs = this.haloStep(id, y, ys, c, bytes(id), s);
      if (hs && virtual.has(id)) throw new LowbitError("E_ARGUMENT", `internal: fused node '${ln.name}' has rows to exchange`);
      if (hs) steps.push(hs);
      for (let i = before; i < steps.length; i++) stepOps.push(`${ln.op} ${ln.domain}`);
      nodeSteps.push([before, steps.length]);
    }
    this.steps = steps;
    this.inPtr = ptr(inId);
    this.outPtr = ptr(outId);
    this.info = { nodes, memory: mem, grids, stepOps, weightBytes, tensorBytes: mem.totalBytes, scratchBytes, nmConvs: [...nmLayers.keys()], convKernels,
      fused: { gathered, adds: fusedAdd } };
    this.tensorAt = (id: number) => ({ ptr: ptr(id), stride: stride(id) });
    this.convBiasAt = (id: number) => qLayers.get(id)?.packed ?? null;
    this.nodeSteps = nodeSteps;
  }
}

/**
 * The step of a 1×1 conv with fused neighbours (kernels/qs8-conv-fused.ts): `inputs` are the gathered concat's
 * inputs (or the conv's own input), each requantized onto the conv's input grid gx exactly as requantStep would
 * copy it; with `add`, the step writes the add's output (grid and place in `addOut`) instead of the conv's.
 * Runs over the row window of the node whose tensor it writes.
 */
function fusedConvStep(rt: Runtime, L: { layer: PackedQs8Conv; packed: number; mult: number }, inputs: readonly number[],
  at: (id: number) => { ptr: number; stride: number; channels: number }, grids: (QuantParams | null)[], gx: QuantParams,
  out: { signed: boolean; zeroPoint: number; qmin: number; qmax: number }, add: Extract<Node, { op: "add" }> | null, convId: number,
  y: number, ys: number, scratch: number, region: { alloc(bytes: number): number }, R: Int32Array, spatial: number,
  addOut: { ptr: number; stride: number; grid: QuantParams } | null): Step {
  const segs = inputs.map((i) => {
    const g = grids[i]!, t = at(i);
    const identity = g.scale === gx.scale && g.zeroPoint === gx.zeroPoint && g.qmin === gx.qmin && g.qmax === gx.qmax;
    return { base: t.ptr, input: t.ptr, stride: t.stride, channels: t.channels, zeroPoint: g.zeroPoint, multiplier: f(g.scale / gx.scale), identity };
  });
  const segTable = region.alloc(GATHER_WORDS * 4 * segs.length);
  const act = { bits: gx.bits, signed: false, zeroPoint: gx.zeroPoint, qmin: gx.qmin, qmax: gx.qmax };
  let res: { base: number; stride: number } | null = null, residual = null as null | { input: number; zeroPoint: number; mConv: number; mRes: number; out: typeof out };
  let id = convId, yp = y, yst = ys;
  if (add && addOut) {
    // y = z + round(c_l·(s_l/s_y)·(l − z_l) + c_r·(s_r/s_y)·(r − z_r)): the add's multipliers by input position.
    const j = add.inputs[0] === convId ? 0 : 1, r = add.inputs[1 - j], coeffs = add.coeffs ?? [1, 1];
    const gl = grids[convId]!, gr = grids[r]!, gy = addOut.grid;
    const t = at(r);
    if (t.stride !== addOut.stride) throw new LowbitError("E_ARGUMENT", `internal: fused add '${add.name}' needs its residual at the output's stride`);
    res = { base: t.ptr, stride: t.stride };
    residual = { input: t.ptr, zeroPoint: gr.zeroPoint, mConv: f((coeffs[j] * gl.scale) / gy.scale), mRes: f((coeffs[1 - j] * gr.scale) / gy.scale),
      out: { signed: false, zeroPoint: gy.zeroPoint, qmin: gy.qmin, qmax: gy.qmax } };
    id = add.id;
    yp = addOut.ptr;
    yst = addOut.stride;
  }
  const call = { layer: L.layer, packed: L.packed, H: 0, W: 0, segments: segs, segTable, act, output: 0, outStride: yst, scratch,
    multipliers: L.mult, out, add: residual ?? undefined };
  return windowed(R, id, spatial, (a, H, W) => {
    for (const sg of segs) sg.input = sg.base + a * W * sg.stride;
    if (res && residual) residual.input = res.base + a * W * res.stride;
    call.H = H;
    call.W = W;
    call.output = yp + a * W * yst;
    qs8ConvFusedRun(rt, call);
  });
}

/** y = requantize(β·x) on rows [a, a + H) of W-pixel rows (a plain copy when the grids match and β = 1). */
function requantStep(k: Q8Exports, xp: number, xs: number, gx: QuantParams, y: number, ys: number, gy: QuantParams, c: number,
  beta: number): (a: number, H: number, W: number) => void {
  if (beta === 1 && gx.scale === gy.scale && gx.zeroPoint === gy.zeroPoint && gx.qmin === gy.qmin && gx.qmax === gy.qmax) {
    return (a, H, W) => k.x8_copy_nhwc(xp + a * W * xs, H * W, c, xs, y + a * W * ys, ys);
  }
  const m = f((beta * gx.scale) / gy.scale);
  return (a, H, W) => k.q8_requantize_nhwc(xp + a * W * xs, H * W, c, xs, y + a * W * ys, ys, gx.zeroPoint, m, gy.zeroPoint, gy.qmin, gy.qmax, 0);
}

/**
 * Whether OHWI codes keep the n:m pattern (≤ n nonzeros per group of m input channels, per output channel and
 * tap; pairs: ≤ n/2 aligned channel pairs holding a nonzero).
 */
function ohwiKeepsNm(w: Int8Array, k: number, cin: number, cout: number, p: { n: number; m: number; pairs?: boolean }): boolean {
  const u = p.pairs ? 2 : 1;
  for (let base = 0; base < cout * k * k * cin; base += cin) {
    for (let g = 0; g < cin; g += p.m) {
      let c = 0;
      for (let i = base + g, e = base + Math.min(cin, g + p.m); i < e; i += u) if (w[i] !== 0 || (u === 2 && i + 1 < e && w[i + 1] !== 0)) c++;
      if (c > p.n / u) return false;
    }
  }
  return true;
}

/** HWIO codes → OHWI (the qs8 packers' input order). */
export function hwioToOhwi(w: Int8Array, k: number, cin: number, cout: number): Int8Array {
  const out = new Int8Array(w.length);
  for (let t = 0; t < k * k; t++) for (let i = 0; i < cin; i++) for (let o = 0; o < cout; o++) {
    out[(o * k * k + t) * cin + i] = w[(t * cin + i) * cout + o];
  }
  return out;
}
