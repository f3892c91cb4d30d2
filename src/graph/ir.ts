/**
 * lowbit's graph IR: what an importer produces and the compiler lowers to a plan.
 *
 * Spatial sizes are dynamic (an SR net accepts any H×W), so a tensor's shape is
 * its channel count plus its *spatial factor* relative to the graph input: LR
 * tensors have factor 1, tensors after a ×s upsample have factor s. All convs
 * are stride 1 with 'same' padding, so only upsample / depth-to-space change
 * the factor. Nodes are kept in topological order (inputs before users).
 */

/** Elementwise activations a Keras Conv2D/Activation layer can carry. */
export type ActivationKind =
  | "linear"
  | "relu"
  | "relu6"
  | "leaky_relu" // alpha in `alpha`
  | "elu"
  | "selu"
  | "sigmoid"
  | "hard_sigmoid"
  | "tanh"
  | "softplus"
  | "softsign"
  | "swish"
  | "exponential";

export interface Activation {
  kind: ActivationKind;
  /** leaky_relu slope (Keras LeakyReLU default 0.3) or elu alpha (default 1). */
  alpha?: number;
}

/**
 * A tensor stored as unsigned integer codes q with a per-tensor affine map w = q·scale + min
 * (TF.js weight quantization). `zeroPoint` = −min/scale when that is an exact integer inside
 * the code range (the converter nudges min so 0 is representable when the range spans 0),
 * else null (all-one-sign tensors keep their raw min).
 */
export interface AffineQuantized {
  dtype: "uint8" | "uint16";
  scale: number;
  min: number;
  zeroPoint: number | null;
  q: Uint8Array | Uint16Array;
}

export type NodeOp =
  | { op: "input" }
  | {
      op: "conv2d";
      /** Odd kernel size (square). */
      k: number;
      cin: number;
      cout: number;
      /** HWIO float32 weights [k, k, cin, cout]. */
      weights: Float32Array;
      /** [cout] or null. */
      bias: Float32Array | null;
      /** Fused activation (Keras `activation` on the conv). */
      activation: Activation;
      /**
       * Set by the sub-pixel pass: this conv is the LR form of a k×k conv that ran after a nearest
       * ×block upsample, whose HWIO weights are kept so quantizers can quantize the original kernel
       * and merge its integer codes exactly (passes.ts subpixelMerge).
       */
      subpixelOf?: { weights: Float32Array; k: number; block: number };
      /**
       * The stored integer codes when the source file was affine-quantized (esrgan-legacy's
       * uint8). `weights`/`bias` are always the decoded float32 values (bit-identical to tfjs);
       * this keeps the exact codes so an integer path can run the shipped model without a
       * second rounding (w = scale·(q − zp), zp = −min/scale). Absent for float files.
       */
      sourceQuant?: { kernel?: AffineQuantized; bias?: AffineQuantized };
      /**
       * N:M structured sparsity of `weights`: for each output channel and tap (kh, kw), every group of m
       * consecutive input channels (from channel 0; the last group may be shorter) has at most n nonzeros
       * (pruned weights are stored as 0). The compilers may then run a sparse kernel (src/kernels/nm-conv.ts).
       * `pairs` (n, m even; "N:Mp"): moreover a group's nonzeros lie in ≤ n/2 aligned channel pairs (2j, 2j+1),
       * which the int8 pair kernel runs without shuffles.
       */
      sparsity?: { n: number; m: number; pairs?: boolean };
      /**
       * Set when a BatchNormalization was folded into this conv (passes foldBatchNorm): the
       * per-output-channel BN affine z = γ·x̂ + β of the pre-activation output, kept for
       * BN-based filter pruning (its channels are modelled as N(β, γ²)).
       */
      batchNorm?: { gamma: Float32Array; beta: Float32Array };
    }
  | { op: "activation"; activation: Activation }
  /**
   * Elementwise sum of all inputs (same shape), optionally weighted:
   * y = Σ coeffs[i]·x_i (coeffs absent = all 1). Weights come from folding a
   * `scale` node (RRDN's MultiplyBeta before a residual add) into the add.
   */
  | { op: "add"; coeffs?: number[] }
  /** Channel concat (last axis) of all inputs, in input order. */
  | { op: "concat" }
  /** y = factor · x (MultiplyBeta, factor 0.2). */
  | { op: "scale"; factor: number }
  /** Nearest-neighbour upsampling by an integer factor (UpSampling2D, 'nearest'). */
  | { op: "upsample_nearest"; factor: number }
  /**
   * Bilinear upsampling by an integer factor; `mode` is the source-coordinate rule: "half_pixel"
   * ((o + ½)/f − ½: ONNX Resize linear, PyTorch align_corners=False, ncnn Interp) or "asymmetric"
   * (o/f: TF1 / tfjs-layers UpSampling2D 'bilinear'). Edges clamp. align_corners is not
   * translation-equivariant (tiles would not stitch) and is not representable.
   */
  | { op: "upsample_bilinear"; factor: number; mode: "half_pixel" | "asymmetric" }
  /** TF depthToSpace, NHWC, DCR order: out[h·b+i, w·b+j, c] = in[h, w, (i·b+j)·C + c]. */
  | { op: "depth_to_space"; block: number }
  /**
   * Per-channel PReLU: y = x ≥ 0 ? x : slopes[c]·x (ncnn PReLU, ONNX PRelu; a leaky ReLU that
   * should run on integer codes is the uniform-slope case). A separate op rather than a fused conv
   * activation: the int8 path requantizes it onto its own grid (8-bit codes in and out).
   */
  | { op: "prelu"; slopes: Float32Array }
  /**
   * Inverse of depth_to_space (TF DCR order): out[h, w, (i·b+j)·C + c] = in[h·b+i, w·b+j, c]. The
   * spatial factor divides by `block` (a fraction, e.g. ½ or ¾ of the input), so tiles must have sides
   * that are multiples of the graph's spatialAlign (validate.ts). A k×k stride-k conv (Real-CUGAN's
   * and cunet's 2×2/2 downsampling) is space_to_depth(k) + a 1×1 conv. `phase` p ∈ [0, block) shifts
   * the blocks: out[h, w, (i·b+j)·C + c] = in[h·b+i+p, w·b+j+p, c], zero beyond the frame (the last
   * block row/column, in the border band whose values the IR's zero padding already makes approximate).
   */
  | { op: "space_to_depth"; block: number; phase?: number }
  /**
   * Squeeze-and-excitation (ncnn global average Pooling → InnerProduct… → BinaryOp mul / Scale from a
   * second blob): m[c] = mean of x[·, ·, c] over the window that excludes inset[0] pixels at the top and
   * left and inset[1] at the bottom and right of the tile's tensor (the part of the frame an ncnn net
   * built from valid convs actually has), then
   * g = fc[n−1](… fc[0](m)), y = x · g[c]. Makes every output pixel depend on the whole tile
   * (GraphMeta.globalContext): tiled ≠ untiled.
   */
  | { op: "squeeze_excite"; inset: [number, number]; fc: SeLayer[] }
  /**
   * out[h, w, c] = in[h + by, w + by, c], 0 outside the frame (by ≠ 0, either sign). UNets from ncnn
   * (Real-CUGAN, cunet) add tensors whose valid regions lie 1–2 pixels apart in the common frame; this
   * realigns one operand.
   */
  | { op: "shift"; by: number };

/** A fully connected layer of a squeeze_excite gate: out = act(weights·in + bias), weights [cout][cin] row-major. */
export interface SeLayer {
  cin: number;
  cout: number;
  weights: Float32Array;
  bias: Float32Array | null;
  activation: "linear" | "relu" | "sigmoid";
}

export type Node = NodeOp & {
  /** Index in Graph.nodes. */
  id: number;
  /** Layer name from the source model (unique), used in error messages. */
  name: string;
  /** Producer node ids. */
  inputs: number[];
  /** Output channel count (shape inference). */
  channels: number;
  /** Output spatial factor relative to the graph input (shape inference). */
  spatial: number;
};

/** Numeric range the model expects at its input and produces at its output. */
export type ValueRange = [number, number];

export interface GraphMeta {
  /** Human-readable model name (e.g. "esrgan-medium-x2"). */
  name: string;
  /** Upscale factor = spatial factor of the output node. */
  scale: number;
  /** Input value range the network was trained on (pixels are mapped 0..255 → this). */
  inputRange: ValueRange;
  /** Output value range (clip to it, then map to 0..255). */
  outputRange: ValueRange;
  /** Architecture tag when known ("rdn", "rrdn"), for tiling defaults. */
  arch?: string;
  /** Receptive-field radius in LR pixels (exact tiling margin = ceil). */
  receptiveRadius?: number;
  /**
   * LR pixels of replicated border the network expects around the image (ncnn nets built from valid
   * convs: waifu2x upconv_7 = 7). The engine then computes tiles that touch the image border on
   * replicate-padded regions (up to the tiling margin) instead of stopping at the border, which is
   * where such a net's zero-padded IR form would otherwise darken the edges.
   */
  borderPad?: number;
  /**
   * Tile sides must be multiples of this (space_to_depth halves the resolution: 2 or 4 for the UNets of
   * Real-CUGAN / cunet); absent = 1. The tiler extends regions right/bottom (replicating the edge).
   */
  tileAlign?: number;
  /**
   * Some op (squeeze_excite's global pooling) reads the whole tile, so the output depends on the tiling:
   * no margin makes tiles exact. receptiveRadius is then the radius of the local (conv) part only.
   */
  globalContext?: boolean;
}

export interface Graph {
  nodes: Node[];
  /** Id of the single input node (3 channels, RGB). */
  input: number;
  /** Id of the output node. */
  output: number;
  meta: GraphMeta;
}
