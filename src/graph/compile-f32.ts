/**
 * FP32 plan compiler: graph → a flat list of kernel calls over one arena.
 *
 * Everything that can be decided before seeing pixels is decided here, once:
 * graph rewrites (fused activations, folded MultiplyBeta), packed weights,
 * buffer offsets (memory-plan.ts: concat by channel slices, liveness reuse),
 * the scratch size, and one closure per node that calls a WASM export with
 * constant pointers. Running a tile is then a loop over closures with the
 * tile's width and height: no allocation, no validation, no lookups.
 *
 * Arena layout: [packed weights | tensor buffers | conv scratch].
 */
import type { ActivationKind, Graph, Node } from "./ir.ts";
import { optimizeGraph } from "./passes.ts";
import { planMemory, type MemoryPlan } from "./memory-plan.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { LowbitError } from "../runtime/errors.ts";
import { f32ConvScratchBytes, packF32Conv } from "../kernels/f32-conv.ts";
import { ACTIVATION_CODES } from "../kernels/f32-elementwise.ts";
import { BILINEAR_MODES } from "../kernels/ref/upsample.ts";
import type { ChannelGateExports } from "../kernels/channel-gate.ts";
import { spatialAlign } from "./validate.ts";
import { checkNmSparsity, f32NmConvScratchBytes, nmConvBandRows, nmKernelPays, packF32NmConv, type NmExports } from "../kernels/nm-conv.ts";

export interface F32Exports extends Pick<NmExports, "f32_nm_conv_nhwc">, ChannelGateExports {
  f32_conv_nhwc(input: number, inStride: number, output: number, outStride: number, h: number, w: number,
    cin: number, cout: number, k: number, packed: number, outMin: number, outMax: number, scratch: number): void;
  f32_add_nhwc(a: number, b: number, n: number, c: number, aStride: number, bStride: number, y: number, yStride: number, beta: number): void;
  f32_scale_nhwc(x: number, n: number, c: number, xStride: number, y: number, yStride: number, beta: number): void;
  f32_activation_nhwc(x: number, n: number, c: number, xStride: number, y: number, yStride: number, kind: number, alpha: number): void;
  x32_copy_nhwc(x: number, n: number, c: number, xStride: number, y: number, yStride: number): void;
  x32_upsample_nearest_nhwc(x: number, h: number, w: number, c: number, factor: number, xStride: number, y: number, yStride: number): void;
  f32_upsample_bilinear_nhwc(x: number, h: number, w: number, c: number, factor: number, mode: number, xStride: number, y: number, yStride: number): void;
  x32_depth_to_space_nhwc(x: number, h: number, w: number, c: number, block: number, xStride: number, y: number, yStride: number): void;
  f32_prelu_nhwc(x: number, n: number, c: number, xStride: number, y: number, yStride: number, slopes: number): void;
}

/** Activations a conv applies as its output clamp (no extra pass). */
function clampOf(kind: ActivationKind): [number, number] | null {
  if (kind === "linear") return [-Infinity, Infinity];
  if (kind === "relu") return [0, Infinity];
  if (kind === "relu6") return [0, 6];
  return null;
}

export type { Step } from "./step-plan.ts";
import { StepPlan, windowed, type Step } from "./step-plan.ts";

export interface F32PlanInfo {
  /** The optimized graph the plan runs. */
  graph: Graph;
  memory: MemoryPlan;
  /** Bytes of packed weights, of tensor buffers, of scratch. */
  weightBytes: number;
  tensorBytes: number;
  scratchBytes: number;
  /** MACs per LR pixel (convs only). */
  macsPerPixel: number;
  /** Ids (in `graph`) of the convs that run the N:M-sparse kernel. */
  nmConvs: number[];
}

export class F32Plan extends StepPlan {
  readonly info: F32PlanInfo;
  /** Per node of info.graph: its steps [from, to) (empty for inputs and free concats). */
  readonly nodeSteps: [number, number][];
  private readonly tensorPtr: number[];

  /** `noConcatAlias`: every concat gets its own buffer and copies its inputs (inspection: operands stay apart). */
  constructor(rt: Runtime, graph: Graph, maxW: number, maxH: number, opts: { noConcatAlias?: boolean } = {}) {
    const g = optimizeGraph(graph);
    super(rt, g.nodes[g.output].spatial, maxW, maxH, spatialAlign(g));
    maxW = this.maxW;
    maxH = this.maxH;
    if (g.nodes[g.input].channels !== 3 || g.nodes[g.output].channels !== 3) {
      throw new LowbitError("E_SHAPE", `an upscaling model maps RGB to RGB; this one maps ${g.nodes[g.input].channels} to ${g.nodes[g.output].channels} channels`);
    }
    const mem = planMemory(g, { tileW: maxW, tileH: maxH, elemBytes: () => 4, pinned: new Set([g.input, g.output]), noConcatAlias: opts.noConcatAlias });
    const k = rt.kernels<F32Exports>();
    const seAt = new Map<number, SeBuffers>();

    // 1. Packed weights (persistent for the plan's lifetime).
    const packedAt = new Map<number, number>();
    const sparseAt = new Map<number, number>();
    let weightBytes = 0;
    let macsPerPixel = 0;
    let scratchBytes = 0;
    for (const n of g.nodes) {
      if (n.op === "prelu") {
        packedAt.set(n.id, this.region.put(n.slopes));
        weightBytes += n.slopes.byteLength;
      }
      if (n.op === "squeeze_excite") seAt.set(n.id, allocSe(this.region, n.channels));
      if (n.op !== "conv2d") continue;
      if (useNmF32(n)) {
        const L = packF32NmConv(n.weights, n.k, n.cin, n.cout, n.sparsity!, n.bias);
        sparseAt.set(n.id, this.region.put(L.bytes));
        weightBytes += L.bytes.byteLength;
        macsPerPixel += n.k * n.k * n.cin * n.cout * n.spatial * n.spatial;
        scratchBytes = Math.max(scratchBytes, f32NmConvScratchBytes(maxW * n.spatial, n.cin, n.cout, n.k, n.sparsity!));
        continue;
      }
      const packed = packF32Conv(n.weights, n.k, n.cin, n.cout, n.bias);
      packedAt.set(n.id, this.region.put(packed));
      weightBytes += packed.byteLength;
      macsPerPixel += n.k * n.k * n.cin * n.cout * n.spatial * n.spatial;
      scratchBytes = Math.max(scratchBytes, f32ConvScratchBytes(maxW * n.spatial, n.cin, n.k));
    }
    // 2. Tensor buffers, then scratch: reserved in one growth.
    const tensorBase = this.region.alloc(mem.totalBytes);
    const scratch = this.region.alloc(scratchBytes);
    const ptr = (id: number): number => tensorBase + mem.buffers[mem.placement[id].buffer].offset + 4 * mem.placement[id].channelOffset;
    const stride = (id: number): number => mem.placement[id].pixelStride;

    // 3. One closure per node.
    const steps: Step[] = [];
    const nodeSteps: [number, number][] = [];
    this.useRowWindows(g);
    for (const n of g.nodes) {
      const firstStep = steps.length;
      lowerF32Node({ g, k, ptr, stride, scratch, packedAt, sparseAt, steps, concatCopies: mem.concatCopies, rt, seAt, rows: this.rows }, n);
      const hs = this.haloStep(n.id, ptr(n.id), stride(n.id), n.channels, 4, n.spatial);
      if (hs) steps.push(hs);
      nodeSteps.push([firstStep, steps.length]);
    }
    this.nodeSteps = nodeSteps;
    this.tensorPtr = g.nodes.map((n) => ptr(n.id));
    this.steps = steps;
    this.inPtr = ptr(g.input);
    this.outPtr = ptr(g.output);
    if (stride(g.input) !== 3 || stride(g.output) !== 3) throw new LowbitError("E_SHAPE", "internal: graph input/output must be dense");
    this.info = { graph: g, memory: mem, weightBytes, tensorBytes: mem.totalBytes, scratchBytes, macsPerPixel, nmConvs: [...sparseAt.keys()] };
  }

  /**
   * Node `id`'s output (of info.graph) after its steps ran on a w×h tile, as a
   * strided view into the arena: element (p, c) = data[offset + p·stride + c].
   * Valid until the buffer is reused by a later node (calibration observes it
   * right after the node's steps).
   */
  tensorView(id: number, w: number, h: number): { data: Float32Array; offset: number; stride: number; pixels: number; channels: number } {
    this.checkSize(w, h);
    const n = this.info.graph.nodes[id];
    const s = n.spatial;
    return {
      data: this.rt.arena.f32,
      offset: this.tensorPtr[id] / 4,
      stride: this.info.memory.placement[id].pixelStride,
      pixels: w * s * h * s,
      channels: n.channels,
    };
  }
}

/**
 * A conv runs on the N:M kernel when it declares `sparsity`, its weights really follow the pattern, and the
 * pattern is sparse enough for the kernel to be faster than the dense one (nmKernelPays).
 */
export function useNmF32(n: Extract<Node, { op: "conv2d" }>): boolean {
  if (!n.sparsity || !nmKernelPays(n.k, n.cin, n.sparsity, "f32")) return false;
  return checkNmSparsity(n.weights, n.k, n.cin, n.cout, n.sparsity.n, n.sparsity.m);
}

export function defaultAlpha(kind: ActivationKind): number {
  return kind === "leaky_relu" ? 0.3 : 1;
}

/** What lowering one FP32 node needs: pointers and strides of every tensor, packed weights, scratch. */
export interface F32LowerContext {
  g: Graph;
  k: F32Exports;
  ptr: (id: number) => number;
  stride: (id: number) => number;
  scratch: number;
  /** Packed conv weights, and the slope table of each prelu node, by node id. */
  packedAt: Map<number, number>;
  /** Convs lowered to the N:M kernel: node id → offset of packF32NmConv's bytes (absent: all dense). */
  sparseAt?: Map<number, number>;
  steps: Step[];
  concatCopies: Map<number, number[]>;
  /** The plan's row windows (StepPlan.rows; absent: every step walks the whole tile). */
  rows?: Int32Array;
  /** squeeze_excite nodes: their sum / gate buffers (allocSe), and the runtime whose arena holds them. */
  rt?: Runtime;
  seAt?: Map<number, SeBuffers>;
}

/** Arena buffers of one squeeze_excite node: C f64 channel sums (8-aligned) and C f32 gates. */
export interface SeBuffers { sum: number; gate: number }

export function allocSe(region: { alloc(bytes: number): number }, c: number): SeBuffers {
  const sum = (region.alloc(8 * c + 8) + 7) & ~7;
  return { sum, gate: region.alloc(4 * c) };
}

/**
 * The gate of a squeeze_excite node from its channel sums: g = fc[n−1](…fc[0](sums / count)), in f64,
 * stored as f32. `tmp` = two Float64Arrays of ≥ max width (allocation-free per tile).
 */
export function seGate(n: Extract<Node, { op: "squeeze_excite" }>, sums: Float64Array, count: number, out: Float32Array, tmp: [Float64Array, Float64Array]): void {
  let a = tmp[0], b = tmp[1];
  for (let c = 0; c < n.channels; c++) a[c] = sums[c] / count;
  for (const l of n.fc) {
    for (let o = 0; o < l.cout; o++) {
      let s = l.bias ? l.bias[o] : 0;
      const row = o * l.cin;
      for (let i = 0; i < l.cin; i++) s += l.weights[row + i] * a[i];
      b[o] = l.activation === "relu" ? (s > 0 ? s : 0) : l.activation === "sigmoid" ? 1 / (1 + Math.exp(-s)) : s;
    }
    [a, b] = [b, a];
  }
  for (let c = 0; c < n.channels; c++) out[c] = a[c];
}

/** Appends the kernel calls of one node computed in FP32 (shared with the quantized compiler's FP32 islands). */
export function lowerF32Node(cx: F32LowerContext, n: Node): void {
  const { g, k, ptr, stride, scratch, packedAt, steps } = cx;
  const R = cx.rows, id = n.id;
  const s = n.spatial;
  const y = ptr(n.id);
  const ys = stride(n.id);
  const c = n.channels;
  switch (n.op) {
    case "input":
      break;
    case "conv2d": {
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x), wp = packedAt.get(n.id) ?? -1;
      const clamp = clampOf(n.activation.kind);
      const [lo, hi] = clamp ?? [-Infinity, Infinity];
      const { cin, cout, k: kk } = n;
      const sp = cx.sparseAt?.get(n.id);
      if (sp !== undefined) {
        const { n: nn, m } = n.sparsity!;
        steps.push(windowed(R, id, s, (a, H, W) => k.f32_nm_conv_nhwc(xp + 4 * a * W * xs, xs, y + 4 * a * W * ys, ys, H, W, cin, cout, kk, nn, m, sp, lo, hi, scratch,
          nmConvBandRows(H, W, cin, kk, "f32"))));
      } else {
        steps.push(windowed(R, id, s, (a, H, W) => k.f32_conv_nhwc(xp + 4 * a * W * xs, xs, y + 4 * a * W * ys, ys, H, W, cin, cout, kk, wp, lo, hi, scratch)));
      }
      if (!clamp) {
        const code = ACTIVATION_CODES[n.activation.kind];
        const alpha = n.activation.alpha ?? defaultAlpha(n.activation.kind);
        steps.push(windowed(R, id, s, (a, H, W) => k.f32_activation_nhwc(y + 4 * a * W * ys, H * W, c, ys, y + 4 * a * W * ys, ys, code, alpha)));
      }
      break;
    }
    case "activation": {
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x);
      const code = ACTIVATION_CODES[n.activation.kind];
      const alpha = n.activation.alpha ?? defaultAlpha(n.activation.kind);
      steps.push(windowed(R, id, s, (a, H, W) => k.f32_activation_nhwc(xp + 4 * a * W * xs, H * W, c, xs, y + 4 * a * W * ys, ys, code, alpha)));
      break;
    }
    case "add": {
      const coeffs = n.coeffs ?? n.inputs.map(() => 1);
      const [a0, ...rest] = n.inputs;
      const a0p = ptr(a0), a0s = stride(a0);
      // y = c0·x0 + c1·x1 + …, as a chain of fused y = a + β·b passes.
      if (coeffs[0] === 1) {
        const b = rest[0], bp = ptr(b), bs = stride(b), beta = coeffs[1];
        steps.push(windowed(R, id, s, (a, H, W) => k.f32_add_nhwc(a0p + 4 * a * W * a0s, bp + 4 * a * W * bs, H * W, c, a0s, bs, y + 4 * a * W * ys, ys, beta)));
        rest.slice(1).forEach((b2, j) => {
          const bp2 = ptr(b2), bs2 = stride(b2), beta2 = coeffs[j + 2];
          steps.push(windowed(R, id, s, (a, H, W) => k.f32_add_nhwc(y + 4 * a * W * ys, bp2 + 4 * a * W * bs2, H * W, c, ys, bs2, y + 4 * a * W * ys, ys, beta2)));
        });
      } else {
        const c0 = coeffs[0];
        steps.push(windowed(R, id, s, (a, H, W) => k.f32_scale_nhwc(a0p + 4 * a * W * a0s, H * W, c, a0s, y + 4 * a * W * ys, ys, c0)));
        rest.forEach((b2, j) => {
          const bp2 = ptr(b2), bs2 = stride(b2), beta2 = coeffs[j + 1];
          steps.push(windowed(R, id, s, (a, H, W) => k.f32_add_nhwc(y + 4 * a * W * ys, bp2 + 4 * a * W * bs2, H * W, c, ys, bs2, y + 4 * a * W * ys, ys, beta2)));
        });
      }
      break;
    }
    case "concat": {
      const copies = new Set(cx.concatCopies.get(n.id) ?? []);
      let off = 0;
      for (const i of n.inputs) {
        const ci = g.nodes[i].channels;
        if (copies.has(off)) {
          const xp = ptr(i), xs = stride(i), dst = y + 4 * off;
          steps.push(windowed(R, id, s, (a, H, W) => k.x32_copy_nhwc(xp + 4 * a * W * xs, H * W, ci, xs, dst + 4 * a * W * ys, ys)));
        }
        off += ci;
      }
      break;
    }
    case "scale": {
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x), beta = n.factor;
      steps.push(windowed(R, id, s, (a, H, W) => k.f32_scale_nhwc(xp + 4 * a * W * xs, H * W, c, xs, y + 4 * a * W * ys, ys, beta)));
      break;
    }
    case "upsample_nearest": {
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x), f = n.factor, si = g.nodes[x].spatial;
      steps.push(windowed(R, id, si, (a, H, W) => k.x32_upsample_nearest_nhwc(xp + 4 * a * W * xs, H, W, c, f, xs, y + 4 * a * f * W * f * ys, ys)));
      break;
    }
    case "upsample_bilinear": {
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x), f = n.factor, si = g.nodes[x].spatial, mode = BILINEAR_MODES.indexOf(n.mode);
      steps.push(windowed(R, id, si, (a, H, W) => k.f32_upsample_bilinear_nhwc(xp + 4 * a * W * xs, H, W, c, f, mode, xs, y + 4 * a * f * W * f * ys, ys)));
      break;
    }
    case "depth_to_space": {
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x), b = n.block, si = g.nodes[x].spatial;
      steps.push(windowed(R, id, si, (a, H, W) => k.x32_depth_to_space_nhwc(xp + 4 * a * W * xs, H, W, c, b, xs, y + 4 * a * b * W * b * ys, ys)));
      break;
    }
    case "prelu": {
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x), sp = packedAt.get(n.id);
      if (sp === undefined) throw new LowbitError("E_UNSUPPORTED_LAYER", `layer '${n.name}': op 'prelu' is not supported by this execution path (only the FP32 and static quantized plans place its slopes)`);
      steps.push(windowed(R, id, s, (a, H, W) => k.f32_prelu_nhwc(xp + 4 * a * W * xs, H * W, c, xs, y + 4 * a * W * ys, ys, sp)));
      break;
    }
    case "space_to_depth": {
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x), b = n.block, ci = g.nodes[x].channels, ph = n.phase ?? 0;
      steps.push((w, h) => k.x32_space_to_depth_phased_nhwc(xp, h * s, w * s, ci, b, ph, xs, y, ys));
      break;
    }
    case "shift": {
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x), by = n.by;
      steps.push((w, h) => k.x32_shift_nhwc(xp, h * s, w * s, c, by, xs, y, ys));
      break;
    }
    case "squeeze_excite": {
      const x = n.inputs[0];
      const xp = ptr(x), xs = stride(x), buf = cx.seAt?.get(n.id), rt = cx.rt;
      if (!buf || !rt) throw new LowbitError("E_UNSUPPORTED_LAYER", `layer '${n.name}': op 'squeeze_excite' is not supported by this execution path (only the FP32 and static quantized plans)`);
      const width = Math.max(c, ...n.fc.map((l) => l.cout));
      const tmp: [Float64Array, Float64Array] = [new Float64Array(width), new Float64Array(width)];
      const sums = new Float64Array(c), gate = new Float32Array(c), [i0, i1] = n.inset;
      steps.push((w, h) => {
        const W = w * s, H = h * s;
        if (W <= i0 + i1 || H <= i0 + i1) {
          throw new LowbitError("E_SHAPE", `layer '${n.name}': a ${w}×${h} tile leaves no pixels in its global pooling window (insets ${i0}, ${i1} at ×${s}); use larger tiles`);
        }
        k.f32_channel_window_sum_nhwc(xp, W, c, xs, i0, H - i1, i0, W - i1, buf.sum);
        rt.arena.read(buf.sum, sums);
        seGate(n, sums, (W - i0 - i1) * (H - i0 - i1), gate, tmp);
        rt.arena.f32.set(gate, buf.gate / 4);
        k.f32_scale_channels_nhwc(xp, W * H, c, xs, y, ys, buf.gate);
      });
      break;
    }
    default:
      throw new LowbitError("E_UNSUPPORTED_LAYER", `layer '${(n as Node).name}': op '${(n as Node).op}' has no FP32 lowering`);
  }
}
