/**
 * onnxToModel: an ONNX model → something createUpscaler compiles. QDQ graphs (int8 conv weights
 * behind DequantizeLinear, QuantizeLinear → DequantizeLinear on activations) become a lowbit
 * QuantizedModel that runs on lowbit's int8 kernels with the file's own scales and zero points;
 * float graphs become fp32Model(graph).
 *
 * Mapping (QDQ → QuantizedModel, over optimizeGraph(graph), the graph Q8Plan lowers):
 * - a tensor's grid (s, z) becomes its range [(qmin − z)·s, (qmax − z)·s] at 8 bits; affineParams
 *   recovers exactly s and z from it (scale = range/255, zero point = −lo/s). int8 activation
 *   grids are the same reals on uint8 codes (z + 128), lowbit's unsigned form.
 * - a conv runs on codes when its weights are int8 with zero point 0 (per-channel or per-tensor
 *   scales), its input and output carry grids and its fused activation is linear / ReLU / ReLU6;
 *   the int32 bias is the file's (lowbit re-derives round(b/(s_x·s_w)) from the dequantized
 *   float, which gives back the stored integer). A conv that absorbed an affine fold (BN, a
 *   constant Mul) no longer has codes and is re-quantized from its float weights (per-channel
 *   min-max, 8 bits).
 * - a fused activation uses the grid of the activation's output (Conv → Relu → Q), else the conv's;
 *   a sub-pixel-rewritten tail conv gets its original conv's grid and merged codes.
 * - add / concat / scale run on codes when their output and every input carry grids; data movement
 *   (upsample, pixel shuffle, ReLU nodes) follows its input. Everything else stays FP32 (an FP32
 *   island), exactly as quantizeModel's keep-fp32 layers.
 * Tensors without a grid in the file therefore never become quantized by guesswork.
 */
import type { Node } from "../../graph/ir.ts";
import { optimizeGraph, subpixelMerge } from "../../graph/passes.ts";
import { fp32Model, type CompilableModel } from "../../engine/upscaler-api.ts";
import { QuantizedModel, type QuantConvWeights, type QuantTensor } from "../../quant/quantize-model.ts";
import { quantConfig } from "../../quant/config.ts";
import { quantizeWeights } from "../../quant/weights.ts";
import { importOnnxDetailed, readOnnxBytes, type ImportOnnxOptions, type OnnxActQuant, type OnnxImport } from "./import.ts";

const PWL = new Set(["linear", "relu", "relu6"]);

function gridRange(q: OnnxActQuant): [number, number] {
  const [qmin, qmax] = q.signed ? [-128, 127] : [0, q.bits && q.bits < 8 ? (1 << q.bits) - 1 : 255];
  return [(qmin - q.zeroPoint) * q.scale, (qmax - q.zeroPoint) * q.scale];
}

/** Builds a QuantizedModel from an import with QDQ annotations, or null when the file has none. */
export function qdqToQuantizedModel(imp: OnnxImport): QuantizedModel | null {
  if (imp.weightQuant.size === 0 || imp.actQuant.size === 0) return null;
  const g0 = imp.graph;
  const g = optimizeGraph(g0);
  // Name → grid, looking through what the passes changed: a fused activation's grid is that of the
  // dropped activation node (the conv's sole consumer in g0); a sub-pixel conv has its original's.
  const byName0 = new Map(g0.nodes.map((n) => [n.name, n]));
  const users0 = g0.nodes.map(() => [] as number[]);
  for (const n of g0.nodes) for (const i of n.inputs) users0[i].push(n.id);
  const gridOf = (n: Node): OnnxActQuant | undefined => {
    let name = n.name;
    if (n.op === "conv2d" && n.subpixelOf) name = name.replace(/\/subpixel$/, "");
    const n0 = byName0.get(name);
    if (n0 && n.op === "conv2d" && n.activation.kind !== "linear") {
      const u = users0[n0.id];
      if (n0.op === "conv2d" && n0.activation.kind === "linear" && u.length === 1 && g0.nodes[u[0]].op === "activation") {
        const a = imp.actQuant.get(g0.nodes[u[0]].name);
        if (a) return a;
      }
    }
    return imp.actQuant.get(name);
  };
  const tensors: QuantTensor[] = g.nodes.map(() => ({ domain: "f32", bits: 8, range: [0, 0] }));
  const has = new Array<boolean>(g.nodes.length).fill(false);
  const weights: (QuantConvWeights | null)[] = g.nodes.map(() => null);
  for (const n of g.nodes) {
    const t = tensors[n.id];
    const q = n.op === "input" ? undefined : gridOf(n);
    if (n.op === "input") {
      t.range = [...g.meta.inputRange];
      has[n.id] = true;
      continue;
    }
    if (q) {
      t.range = gridRange(q);
      t.bits = q.bits ?? 8;
      has[n.id] = true;
    }
    switch (n.op) {
      case "conv2d": {
        if (!q || !has[n.inputs[0]] || !PWL.has(n.activation.kind)) break;
        const w = convCodes(n, imp);
        if (!w) break;
        weights[n.id] = w;
        t.domain = "q8";
        break;
      }
      case "activation":
      case "upsample_nearest":
      case "upsample_bilinear":
      case "depth_to_space": {
        const x = tensors[n.inputs[0]];
        if (x.domain === "q8" && (n.op !== "activation" || PWL.has(n.activation.kind))) {
          t.domain = "q8";
          t.range = [...x.range];
          t.bits = x.bits;
          has[n.id] = true;
        }
        break;
      }
      case "add":
      case "concat":
      case "scale":
      case "prelu": // DQ → PRelu → Q: the int8 prelu kernel requantizes onto the Q grid
        if (q && n.inputs.every((i) => has[i])) t.domain = "q8";
        break;
    }
  }
  if (!weights.some(Boolean)) return null;
  const wb = weights.every((w) => !w || w.bits === 4) ? 4 : 8;
  const ab = Math.min(...tensors.filter((t) => t.domain === "q8").map((t) => t.bits));
  const qm = new QuantizedModel(g, tensors, weights, quantConfig(`w${wb}a${ab}`));
  // The ranges come from the file, not from a calibration method: say so in the description.
  (qm as { config: string }).config = `w${wb}a${ab} onnx-qdq`;
  return qm;
}

/** int8 codes of a conv of the optimized graph, from the file (merged for sub-pixel convs), or re-quantized. */
function convCodes(n: Extract<Node, { op: "conv2d" }>, imp: OnnxImport): QuantConvWeights | null {
  const sp = n.subpixelOf;
  const orig = imp.weightQuant.get(sp ? n.name.replace(/\/subpixel$/, "") : n.name);
  // Codes that fit int4 ([−8, 7]) run on lowbit's int4 kernels (a lowbit W4 export round-trips as W4).
  if (orig && !sp) return { bits: orig.codes.every((v) => v >= -8 && v <= 7) ? 4 : 8, codes: orig.codes, scales: orig.scales };
  if (orig && sp) {
    const cout0 = n.cout / (sp.block * sp.block);
    const sums = subpixelMerge(new Int16Array(n.weights.length), orig.codes, sp.k, sp.block, n.cin, cout0);
    if (sums.every((v) => v >= -127 && v <= 127)) {
      const scales = new Float32Array(n.cout);
      for (let ph = 0; ph < sp.block * sp.block; ph++) scales.set(orig.scales, ph * cout0);
      return { bits: 8, codes: Int8Array.from(sums), scales };
    }
  }
  if (!orig && !imp.foldedConvs.has(n.name.replace(/\/subpixel$/, ""))) return null;
  // Folded (BN / constant scale) or an unmergeable sub-pixel kernel: 8-bit per-channel codes of the floats.
  const q = quantizeWeights(n.weights, n.cout, 8);
  return { bits: 8, codes: q.codes, scales: q.params.scale };
}

/**
 * Loads an ONNX model (bytes, path or file: URL) as a compilable model: a QuantizedModel for QDQ
 * graphs (see the file comment), fp32Model(graph) otherwise. `quantized: false` forces FP32
 * (QDQ weights dequantized, activation fake-quantization dropped).
 */
export async function loadOnnxModel(src: Uint8Array | ArrayBuffer | ArrayBufferView | string | URL, opts: ImportOnnxOptions & { quantized?: boolean } = {}): Promise<CompilableModel> {
  return onnxToModel(await readOnnxBytes(src, opts), opts);
}

/** Sync form of loadOnnxModel for bytes. */
export function onnxToModel(bytes: Uint8Array | ArrayBuffer | ArrayBufferView, opts: ImportOnnxOptions & { quantized?: boolean } = {}): CompilableModel {
  const imp = importOnnxDetailed(bytes, opts);
  const qm = opts.quantized === false ? null : qdqToQuantizedModel(imp);
  return qm ?? fp32Model(imp.graph);
}
