/**
 * ncnn layers (parsed .param + .bin) → lowbit graph IR.
 *
 * Layouts: ncnn blobs are CHW, conv weights [cout][cin][kh][kw]; the IR is NHWC with HWIO weights.
 *
 * Alignment ("offsets"). IR convs are stride-1 'same' convs, so every IR tensor covers the whole
 * frame of its resolution. ncnn nets may use 'valid' convs (pad 0) and crops, whose outputs are
 * smaller and start further in. Each blob therefore carries an offset b: ncnn pixel j of the blob
 * is IR pixel j + b (at the blob's resolution; rows and columns alike). The rules:
 * - conv k×k, pad p:        b' = b + (k−1)/2 − p   (IR 'same' out[J] = Σ in[J + t − (k−1)/2]; ncnn out[j] = Σ in[j + t − p])
 * - crop start s:           b' = b + s             (identity on the IR tensor)
 * - nearest ×s / shuffle s: b' = s·b               (IR out[J] = in[⌊J/s⌋], ncnn out[j] = in[⌊j/s⌋])
 * - deconvolution:          see deconvToSubpixel
 * - add / concat need equal offsets (else E_UNSUPPORTED_LAYER naming the layer).
 * Interior pixels (those whose receptive field does not reach the border) are then exactly ncnn's;
 * at the image border the IR's zero padding replaces whatever ncnn's valid-conv net saw there.
 *
 * The net's input is given offset −P (P = "prepad", in LR pixels), chosen so that the output offset
 * is 0: offsets are linear in the input's (a tensor at factor s has b = s·X + const), so one pass with
 * X = 0 gives the output's constant F, and P = F / scale. For waifu2x upconv_7 (six valid 3×3 convs
 * and a 4×4/2 deconvolution with pad 3) P = 7 — exactly the 7-pixel padding waifu2x's own pipeline
 * adds around the image before running the net. So lowbit's output (sW×sH) is pixel-aligned with the
 * image and identical to ncnn in the interior; P is stored as meta.borderPad, and the engine computes
 * border tiles on replicate-padded regions, which makes the whole output equal waifu2x's pipeline
 * (docs/NCNN.md). A bare plan on an unpadded tile sees zero padding in that border band instead.
 */
import type { Activation, Graph, Node, NodeOp, SeLayer } from "../../graph/ir.ts";
import { receptiveRadius, spatialAlign, validateGraph } from "../../graph/validate.ts";
import { LowbitError } from "../../runtime/errors.ts";
import type { NcnnLayer } from "./param.ts";

export interface NcnnLowerOptions {
  /** meta.name (default "ncnn-model"). */
  name?: string;
  /** Name of the output blob (default: the one blob produced and never consumed). */
  output?: string;
  /**
   * Add the nearest-neighbour ×scale upsample of the input to the net's output: the post-processing
   * realcugan-ncnn-vulkan applies to Real-CUGAN ×4 (whose net predicts a residual; PyTorch UpCunet4x
   * `x += F.interpolate(x00, scale_factor=4, mode='nearest')`). Aligned in the frame: both sit at P·s.
   */
  addNearestInput?: boolean;
}

export interface NcnnLowered {
  graph: Graph;
  /** LR pixels of border the ncnn net expects around the image (0 for 'same' nets, 7 for waifu2x upconv_7). */
  prepad: number;
}

interface Blob {
  /** −1 for a vector blob (`vec`). */
  node: number;
  /** Offset constant b (see the file comment), at the node's resolution. */
  off: number;
  /**
   * The same at the far (right / bottom) edge: the ncnn blob ends `end` pixels before the IR frame does
   * (frame sides being multiples of GraphMeta.tileAlign, the blob's size is then frame − off − end).
   * Only the global pooling window depends on it; adds and concats check it like `off`.
   */
  end: number;
  /**
   * A 1-D blob of an SE gate in the making: the global average pool of tensor `src` (whose ncnn blob
   * starts at offset `off`), followed by the fully connected layers `fc`. It only becomes IR when it
   * multiplies `src` per channel (a squeeze_excite node).
   */
  vec?: { src: number; fc: SeLayer[]; len: number };
}

const FLT_MAX = 3.4028234663852886e38;
const INT_MAX = 2147483647;

function unsupported(l: NcnnLayer, msg: string): LowbitError {
  return new LowbitError("E_UNSUPPORTED_LAYER", `ncnn layer '${l.name}' (${l.type}): ${msg}`);
}

function formatErr(l: NcnnLayer, msg: string): LowbitError {
  return new LowbitError("E_MODEL_FORMAT", `ncnn layer '${l.name}' (${l.type}): ${msg}`);
}

/** ncnn [cout][cin][kh][kw] → HWIO [kh][kw][cin][cout]. */
export function oihwToHwio(w: Float32Array, cout: number, cin: number, k: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) for (let y = 0; y < k; y++) for (let x = 0; x < k; x++) {
    out[((y * k + x) * cin + i) * cout + o] = w[((o * cin + i) * k + y) * k + x];
  }
  return out;
}

/**
 * ncnn Deconvolution (scatter form: full[i·S + t·D] += x[i]·w[t], output o = full index − pad) as a
 * k'×k' stride-1 conv with S²·cout outputs followed by depth_to_space(S) (DCR).
 *
 * Derivation [derived]: with IR LR pixel I = i + b_in and IR HR pixel O = o + b_out = S·Y + a
 * (a ∈ [0, S)), ncnn's o = i·S + t·D − pad gives S·(I − Y) = a + c0 − t·D with c0 = pad − b_out + S·b_in.
 * So phase a of LR pixel Y receives tap t from LR pixel Y + δ, δ = (a + c0 − t·D)/S, whenever that is
 * an integer. Any integer c0 gives an exact rewrite (it only moves b_out = pad + S·b_in − c0); we pick
 * the c0 whose δ range [⌈(c0 − (K−1)D)/S⌉, ⌊(S − 1 + c0)/S⌋] is smallest around 0: k' = 2q + 1 with
 * q = max|δ|. Output channel (a·S + b)·cout + co is phase (a, b), channel co (TF DCR, which
 * depth_to_space undoes). For waifu2x's 4×4/2, pad 3: c0 = 1, δ ∈ {−1, 0, 1}, a 3×3 conv.
 */
export function deconvToSubpixel(w: Float32Array, cout: number, cin: number, K: number, S: number, D: number, fixedC0?: number): { weights: Float32Array; k: number; c0: number } {
  // Smallest q, then the most centred δ range, then the smallest |c0| (deterministic). A caller
  // that needs b_out = 0 (ONNX ConvTranspose: out = S·in, no crop) fixes c0 = pad instead.
  let best = { q: Infinity, skew: Infinity, c0: 0 };
  for (let c0 = fixedC0 ?? -(K * D + S); c0 <= (fixedC0 ?? K * D + S); c0++) {
    const lo = Math.ceil((c0 - (K - 1) * D) / S), hi = Math.floor((S - 1 + c0) / S);
    const q = Math.max(-lo, hi, 0), skew = Math.abs(lo + hi);
    if (q < best.q || (q === best.q && (skew < best.skew || (skew === best.skew && Math.abs(c0) < Math.abs(best.c0))))) best = { q, skew, c0 };
  }
  const { q, c0 } = best;
  const k = 2 * q + 1, cout2 = S * S * cout;
  const out = new Float32Array(k * k * cin * cout2);
  for (let a = 0; a < S; a++) for (let ty = 0; ty < K; ty++) {
    const ny = a + c0 - ty * D;
    if (((ny % S) + S) % S !== 0) continue;
    const dy = ny / S + q;
    for (let b = 0; b < S; b++) for (let tx = 0; tx < K; tx++) {
      const nx = b + c0 - tx * D;
      if (((nx % S) + S) % S !== 0) continue;
      const dx = nx / S + q;
      const ph = (a * S + b) * cout;
      for (let ci = 0; ci < cin; ci++) for (let co = 0; co < cout; co++) {
        out[((dy * k + dx) * cin + ci) * cout2 + ph + co] += w[((co * cin + ci) * K + ty) * K + tx];
      }
    }
  }
  return { weights: out, k, c0 };
}

/** Fused activation of Convolution/Deconvolution (param 9, params in 10). */
function fusedActivation(l: NcnnLayer): { act: Activation; leaky?: number } {
  const t = l.p.activationType, ap = l.p.activationParams ?? [];
  switch (t) {
    case 0: return { act: { kind: "linear" } };
    case 1: return { act: { kind: "relu" } };
    case 2: {
      const slope = ap[0] ?? 0;
      if (!Number.isFinite(slope)) throw formatErr(l, `leaky ReLU slope (param 10) must be finite, got ${slope}`);
      return slope === 0 ? { act: { kind: "relu" } } : { act: { kind: "linear" }, leaky: slope };
    }
    case 3: {
      const [lo, hi] = [ap[0] ?? -FLT_MAX, ap[1] ?? FLT_MAX];
      if (lo === 0 && hi === 6) return { act: { kind: "relu6" } };
      if (lo === 0 && hi >= FLT_MAX) return { act: { kind: "relu" } };
      throw unsupported(l, `fused clip activation (param 9 = 3) to [${lo}, ${hi}] is not supported (only [0, 6] and [0, ∞))`);
    }
    case 4: return { act: { kind: "sigmoid" } };
    case 5: throw unsupported(l, "fused mish activation (param 9 = 5) is not supported");
    case 6: throw unsupported(l, "fused hardswish activation (param 9 = 6) is not supported");
    default: throw unsupported(l, `fused activation type ${t} (param 9) is not supported`);
  }
}

/** Lowers parsed layers (weights read) to a validated graph. */
export function lowerNcnn(layers: NcnnLayer[], opts: NcnnLowerOptions = {}): NcnnLowered {
  const nodes: Node[] = [];
  const blobs = new Map<string, Blob>();
  const consumed = new Set<string>();
  const produced: string[] = [];
  // How many layers read each blob (a CRD pixel shuffle may only reorder a conv nothing else reads).
  const readers = new Map<string, number>();
  for (const l of layers) for (const b of l.bottoms) readers.set(b, (readers.get(b) ?? 0) + 1);
  const topOf = new Map<number, string>();
  const cropOf = new Map<string, string>(); // crop's top → its bottom
  let input = -1;

  const push = (op: NodeOp, name: string, inputs: number[], channels = 0, spatial = 1): number => {
    const id = nodes.length;
    nodes.push({ ...op, id, name, inputs, channels, spatial } as Node);
    return id;
  };
  const shapeOf = (id: number) => ({ channels: nodes[id].channels, spatial: nodes[id].spatial });
  const get = (l: NcnnLayer, name: string): Blob => {
    const b = blobs.get(name);
    if (!b) throw formatErr(l, `bottom blob '${name}' is not produced by an earlier layer`);
    if (b.vec && !["Split", "Noop", "InnerProduct", "BinaryOp", "Scale"].includes(l.type)) {
      throw unsupported(l, `reads the 1-D blob '${name}' (a global pooling result); lowbit maps it only through InnerProduct layers into a per-channel multiply of the pooled tensor (an SE block)`);
    }
    consumed.add(name);
    return b;
  };
  /**
   * Operands of an add/concat on one grid: ncnn adds blobs of equal size, which in the common frame may
   * start at different offsets (Real-CUGAN's and cunet's inner UNet levels are one pixel apart). The
   * operands are shifted (IR `shift`, either sign) onto the one that starts furthest in, provided the
   * sizes agree. Furthest-in, because a UNet's skip path (a plain crop of the input side) is the one the
   * front-ends' pre-padding is computed for: it makes the output offset exactly their padding (cunet
   * 18, Real-CUGAN 18 / 14 / 19), i.e. lowbit's output pixel grid is theirs.
   */
  const alignAll = (l: NcnnLayer, xs: Blob[]): Blob[] => {
    const off = Math.max(...xs.map((x) => x.off));
    const ref = xs.find((x) => x.off === off)!;
    return xs.map((x, i) => {
      const d = x.off - off;
      if (x.end + d !== ref.end || !Number.isInteger(d) || Math.abs(d) > 1024 || nodes[x.node].spatial !== nodes[ref.node].spatial) {
        throw unsupported(l, `operands are not aligned (offsets ${ref.off}/${ref.end} and ${x.off}/${x.end} pixels): a crop is missing`);
      }
      if (d === 0) return x;
      const id = push({ op: "shift", by: d }, `${l.name}/shift${i}`, [x.node]);
      same(id, x.node);
      return { node: id, off: off, end: ref.end };
    });
  };
  /** A per-channel multiply of tensor `x` by the SE vector `v` pooled from the same tensor → squeeze_excite. */
  const seMultiply = (l: NcnnLayer, x: Blob, v: Blob): Blob => {
    const vec = v.vec!;
    if (x.vec) throw unsupported(l, "multiplies two 1-D blobs");
    if (vec.src !== x.node || v.off !== x.off || v.end !== x.end) {
      throw unsupported(l, "multiplies a tensor by a gate pooled from a different tensor (only SE blocks, x · gate(mean(x)), map to the IR)");
    }
    const c = nodes[x.node].channels;
    if (vec.len !== c || vec.fc.length === 0) throw unsupported(l, `gate of ${vec.len} values${vec.fc.length ? "" : " (no fully connected layer)"} for ${c} channels`);
    if (!Number.isInteger(x.off) || x.off < 0 || !Number.isInteger(x.end) || x.end < 0) {
      throw unsupported(l, `the pooled blob extends beyond the frame (offsets ${x.off}/${x.end}); its mean is not computable from the tile`);
    }
    const id = push({ op: "squeeze_excite", inset: [x.off, x.end], fc: vec.fc }, l.name, [x.node]);
    same(id, x.node);
    return { node: id, off: x.off, end: x.end };
  };
  const put = (l: NcnnLayer, name: string, b: Blob) => {
    if (blobs.has(name)) throw formatErr(l, `top blob '${name}' is produced twice`);
    if (!topOf.has(b.node)) topOf.set(b.node, name);
    blobs.set(name, b);
    produced.push(name);
  };
  const arity = (l: NcnnLayer, nb: number, nt: number) => {
    if ((nb >= 0 && l.bottoms.length !== nb) || l.tops.length !== nt) {
      throw formatErr(l, `expects ${nb >= 0 ? nb : "≥ 2"} input(s) and ${nt} output(s), has ${l.bottoms.length} and ${l.tops.length}`);
    }
  };
  /** Sets channels/spatial of a new node from its inputs (validateGraph re-checks everything at the end). */
  const same = (id: number, from: number, c?: number, s?: number) => {
    nodes[id].channels = c ?? nodes[from].channels;
    nodes[id].spatial = s ?? nodes[from].spatial;
  };
  const leakyAfter = (l: NcnnLayer, conv: number, slope: number): number => {
    const c = nodes[conv].channels;
    const id = push({ op: "prelu", slopes: new Float32Array(c).fill(slope) }, `${l.name}/leaky_relu`, [conv]);
    same(id, conv);
    return id;
  };

  /**
   * A bilinear/bicubic downscale (half-pixel centres, ncnn Interp 2/3) of a tensor that is a pixel
   * shuffle or nearest upsample of a lower-resolution tensor z (or a weighted sum of such), as a fixed
   * stride-1 conv on z with B'²·C outputs + depth_to_space(B'). Realesr-animevideov3 x2/x3 are the ×4
   * net followed by a bicubic ×0.5 / ×0.75.
   * Derivation [derived]: let h = the input at factor sIn = sz·B (h[B·Y + i] = z[Y] channel ch(i), ch(i)
   * = i·B + j… for DCR, = c for nearest), output at sOut = sz·B'. Output pixel B'·Y + a samples h at
   * fx = (B'·Y + a + 0.5)·B/B' − 0.5 = B·Y + φ_a, φ_a = (a + 0.5)·B/B' − 0.5: the same fractional taps
   * for every Y. Tap r = ⌊φ_a⌋ − 1 + j (cubic; ⌊φ_a⌋ + j linear) is z pixel Y + ⌊r/B⌋, phase r mod B.
   * Exact in the interior; at the image border ncnn clamps taps to the edge where the conv zero-pads.
   */
  const resampleDown = (l: NcnnLayer, id: number, sOut: number, kind: "cubic" | "linear"): number => {
    const branches: { node: number; coeff: number }[] = [];
    const collect = (nid: number, coeff: number) => {
      const n = nodes[nid];
      if (n.op === "add") n.inputs.forEach((i, j) => collect(i, coeff * (n.coeffs ? n.coeffs[j] : 1)));
      else if (n.op === "scale") collect(n.inputs[0], coeff * n.factor);
      else if (n.op === "depth_to_space" || n.op === "upsample_nearest") branches.push({ node: nid, coeff });
      else throw unsupported(l, `a downscale must follow a pixel shuffle or nearest upsample (or a sum of them); found '${n.name}' (${n.op})`);
    };
    collect(id, 1);
    const sz = nodes[nodes[branches[0].node].inputs[0]].spatial;
    if (sOut % sz !== 0 || branches.some((b) => nodes[nodes[b.node].inputs[0]].spatial !== sz)) {
      throw unsupported(l, `downscale to ×${sOut} from branches at different base resolutions`);
    }
    const Bp = sOut / sz, C = nodes[id].channels;
    const convs: number[] = [];
    branches.forEach(({ node: bid, coeff }, bi) => {
      const n = nodes[bid] as Extract<Node, { op: "depth_to_space" | "upsample_nearest" }>;
      const B = n.op === "depth_to_space" ? n.block : n.factor;
      const z = n.inputs[0], cz = nodes[z].channels;
      const ch = (i: number, j: number, c: number) => (n.op === "depth_to_space" ? (i * B + j) * C + c : c);
      const taps: { r: number; w: number }[][] = [];
      for (let a = 0; a < Bp; a++) {
        const phi = ((a + 0.5) * B) / Bp - 0.5, f = Math.floor(phi), t = phi - f;
        taps.push(kind === "cubic" ? cubicWeights(t).map((w, j) => ({ r: f - 1 + j, w })) : [{ r: f, w: 1 - t }, { r: f + 1, w: t }]);
      }
      let q = 0;
      for (const ph of taps) for (const { r } of ph) q = Math.max(q, Math.abs(Math.floor(r / B)));
      const k = 2 * q + 1, cout = Bp * Bp * C;
      const w = new Float32Array(k * k * cz * cout);
      for (let a = 0; a < Bp; a++) for (const ty of taps[a]) for (let b = 0; b < Bp; b++) for (const tx of taps[b]) {
        const dy = Math.floor(ty.r / B) + q, dx = Math.floor(tx.r / B) + q;
        const i = ty.r - B * Math.floor(ty.r / B), j = tx.r - B * Math.floor(tx.r / B);
        for (let c = 0; c < C; c++) w[((dy * k + dx) * cz + ch(i, j, c)) * cout + (a * Bp + b) * C + c] += coeff * ty.w * tx.w;
      }
      const cid = push({ op: "conv2d", k, cin: cz, cout, weights: w, bias: null, activation: { kind: "linear" } }, `${l.name}/resample${bi}`, [z]);
      same(cid, z, cout);
      convs.push(cid);
    });
    let sum = convs[0];
    if (convs.length > 1) {
      sum = push({ op: "add" }, `${l.name}/sum`, convs);
      same(sum, convs[0]);
    }
    const d = push({ op: "depth_to_space", block: Bp }, l.name, [sum]);
    same(d, sum, C, sOut);
    return d;
  };

  for (const l of layers) {
    const p = l.p;
    switch (l.type) {
      case "Input": {
        arity(l, 0, 1);
        if (input >= 0) throw unsupported(l, "a second Input layer (lowbit models have one image input)");
        const c = p.c || 3;
        if (c !== 3) throw unsupported(l, `input has ${c} channels (param 2); lowbit runs RGB models (3)`);
        input = push({ op: "input" }, l.name, [], 3, 1);
        put(l, l.tops[0], { node: input, off: 0, end: 0 });
        break;
      }
      case "Split":
      case "Noop": {
        if (l.bottoms.length !== 1) throw formatErr(l, `expects 1 input, has ${l.bottoms.length}`);
        const b = get(l, l.bottoms[0]);
        for (const t of l.tops) put(l, t, { ...b });
        break;
      }
      case "Convolution": {
        arity(l, 1, 1);
        const x = get(l, l.bottoms[0]);
        const cin = nodes[x.node].channels, cout = p.numOutput, k = p.kernelW;
        if (p.kernelH !== k) throw unsupported(l, `non-square kernel ${p.kernelW}×${p.kernelH} (params 1, 11)`);
        if (k > 1 && p.strideW === k && p.strideH === k) {
          // k×k stride-k (Real-CUGAN / cunet 2×2/2): space_to_depth(k) + a 1×1 conv over the k² phases.
          // ncnn out[j] = Σ_t in[k·j + t]; IR pixel J of the block tensor holds IR pixels k·J + t, so with
          // the input's offset b: J = j + b/k, exact when b is a multiple of k (the blocks line up).
          if (p.dilationW !== 1 || p.dilationH !== 1) throw unsupported(l, `dilation ${p.dilationW}×${p.dilationH} with stride ${k}`);
          if (p.padLeft !== 0 || p.padTop !== 0 || p.padRight !== 0 || p.padBottom !== 0) throw unsupported(l, `padding (params 4, 14, 15, 16) on a ${k}×${k} stride-${k} convolution`);
          if (cout < 1 || p.weightDataSize !== cout * cin * k * k) {
            throw formatErr(l, `weight_data_size ${p.weightDataSize} (param 6) ≠ num_output ${cout} · ${cin} input channels · ${k}·${k}`);
          }
          // Blocks start at IR pixel ph (mod k) so that they line up with ncnn's, which start at the blob.
          if (!Number.isInteger(x.off)) throw unsupported(l, `input offset ${x.off} is not a whole pixel`);
          const ph = ((x.off % k) + k) % k;
          const s2d = push(ph ? { op: "space_to_depth", block: k, phase: ph } : { op: "space_to_depth", block: k }, `${l.name}/space_to_depth`, [x.node]);
          same(s2d, x.node, cin * k * k, nodes[x.node].spatial / k);
          // 1×1 HWIO weights: input channel (i·k + j)·cin + ci (DCR, as space_to_depth writes) ← w[o][ci][i][j].
          const w = new Float32Array(k * k * cin * cout), src = l.weights.weight;
          for (let o = 0; o < cout; o++) for (let ci = 0; ci < cin; ci++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) {
            w[((i * k + j) * cin + ci) * cout + o] = src[((o * cin + ci) * k + i) * k + j];
          }
          const { act, leaky } = fusedActivation(l);
          let id = push({ op: "conv2d", k: 1, cin: cin * k * k, cout, weights: w, bias: l.weights.bias ?? null, activation: act },
            leaky === undefined ? l.name : `${l.name}/conv`, [s2d]);
          same(id, s2d, cout);
          if (leaky !== undefined) id = leakyAfter(l, id, leaky);
          put(l, l.tops[0], { node: id, off: (x.off - ph) / k, end: Math.ceil((x.end + ph) / k) });
          break;
        }
        if (p.strideW !== 1 || p.strideH !== 1) throw unsupported(l, `stride ${p.strideW}×${p.strideH} (params 3, 13); lowbit's IR runs stride-1 convs (and k×k stride-k ones as space_to_depth + 1×1)`);
        if (k % 2 === 0) throw unsupported(l, `even kernel size ${k} (param 1); lowbit's convs have odd kernels (and k×k stride-k downsampling)`);
        if (p.dilationW !== 1 || p.dilationH !== 1) throw unsupported(l, `dilation ${p.dilationW}×${p.dilationH} (params 2, 12)`);
        let pad = p.padLeft;
        if (pad === -233 || pad === -234) pad = (k - 1) / 2; // SAME_UPPER / SAME_LOWER: symmetric for odd k
        if (pad < 0 || p.padTop !== p.padLeft) throw unsupported(l, `padding left ${p.padLeft} / top ${p.padTop} (params 4, 14) must be equal and ≥ 0`);
        if (pad > 0 && p.padValue !== 0) throw unsupported(l, `pad value ${p.padValue} (param 18); only zero padding`);
        const padRight = p.padRight === -233 || p.padRight === -234 ? (k - 1) / 2 : p.padRight;
        const padBottom = p.padBottom === -233 || p.padBottom === -234 ? (k - 1) / 2 : p.padBottom;
        if (padRight < 0 || padBottom !== padRight) throw unsupported(l, `padding right ${p.padRight} / bottom ${p.padBottom} (params 15, 16) must be equal and ≥ 0`);
        if (cout < 1 || p.weightDataSize !== cout * cin * k * k) {
          throw formatErr(l, `weight_data_size ${p.weightDataSize} (param 6) ≠ num_output ${cout} · ${cin} input channels · ${k}·${k}`);
        }
        const { act, leaky } = fusedActivation(l);
        let id = push({ op: "conv2d", k, cin, cout, weights: oihwToHwio(l.weights.weight, cout, cin, k), bias: l.weights.bias ?? null, activation: act },
          leaky === undefined ? l.name : `${l.name}/conv`, [x.node]);
        same(id, x.node, cout);
        if (leaky !== undefined) id = leakyAfter(l, id, leaky);
        put(l, l.tops[0], { node: id, off: x.off + (k - 1) / 2 - pad, end: x.end + (k - 1) / 2 - padRight });
        break;
      }
      case "Deconvolution": {
        arity(l, 1, 1);
        const x = get(l, l.bottoms[0]);
        const cin = nodes[x.node].channels, cout = p.numOutput, K = p.kernelW, S = p.strideW, D = p.dilationW;
        if (p.kernelH !== K || p.strideH !== S || p.dilationH !== D) {
          throw unsupported(l, `non-square kernel/stride/dilation (${p.kernelW}×${p.kernelH}, ${p.strideW}×${p.strideH}, ${p.dilationW}×${p.dilationH})`);
        }
        if (S < 1 || D < 1 || K < 1) throw formatErr(l, `kernel ${K}, stride ${S}, dilation ${D} must be ≥ 1`);
        if (p.padLeft < 0 || p.padTop !== p.padLeft) throw unsupported(l, `padding left ${p.padLeft} / top ${p.padTop} (params 4, 14) must be equal and ≥ 0`);
        if (cout < 1 || p.weightDataSize !== cout * cin * K * K) {
          throw formatErr(l, `weight_data_size ${p.weightDataSize} (param 6) ≠ num_output ${cout} · ${cin} input channels · ${K}·${K}`);
        }
        const { act, leaky } = fusedActivation(l);
        const sp = deconvToSubpixel(l.weights.weight, cout, cin, K, S, D);
        let bias: Float32Array | null = null;
        if (l.weights.bias) {
          bias = new Float32Array(S * S * cout);
          for (let ph = 0; ph < S * S; ph++) bias.set(l.weights.bias, ph * cout);
        }
        const sx = nodes[x.node].spatial;
        let id: number;
        if (S === 1) {
          id = push({ op: "conv2d", k: sp.k, cin, cout, weights: sp.weights, bias, activation: act }, leaky === undefined ? l.name : `${l.name}/conv`, [x.node]);
          same(id, x.node, cout);
        } else {
          const conv = push({ op: "conv2d", k: sp.k, cin, cout: S * S * cout, weights: sp.weights, bias, activation: act }, `${l.name}/subpixel`, [x.node]);
          same(conv, x.node, S * S * cout);
          id = push({ op: "depth_to_space", block: S }, leaky === undefined ? l.name : `${l.name}/shuffle`, [conv]);
          same(id, conv, cout, sx * S);
        }
        if (leaky !== undefined) id = leakyAfter(l, id, leaky);
        put(l, l.tops[0], { node: id, off: p.padLeft + S * x.off - sp.c0,
          end: S * x.end + S + p.padRight + sp.c0 - (K - 1) * D - 1 - (p.outputPadRight ?? 0) });
        break;
      }
      case "PReLU": {
        arity(l, 1, 1);
        const x = get(l, l.bottoms[0]);
        const c = nodes[x.node].channels, s = l.weights.slope;
        if (s.length !== 1 && s.length !== c) throw formatErr(l, `num_slope ${s.length} (param 0) must be 1 or the ${c} input channels`);
        const slopes = s.length === c ? Float32Array.from(s) : new Float32Array(c).fill(s[0]);
        const id = push({ op: "prelu", slopes }, l.name, [x.node]);
        same(id, x.node);
        put(l, l.tops[0], { node: id, off: x.off, end: x.end });
        break;
      }
      case "ReLU":
      case "Sigmoid":
      case "Clip": {
        arity(l, 1, 1);
        const x = get(l, l.bottoms[0]);
        let op: NodeOp;
        if (l.type === "ReLU") {
          if (!Number.isFinite(p.slope)) throw formatErr(l, `slope (param 0) must be finite, got ${p.slope}`);
          op = p.slope === 0 ? { op: "activation", activation: { kind: "relu" } } : { op: "prelu", slopes: new Float32Array(nodes[x.node].channels).fill(p.slope) };
        } else if (l.type === "Sigmoid") op = { op: "activation", activation: { kind: "sigmoid" } };
        else if (p.min === 0 && p.max === 6) op = { op: "activation", activation: { kind: "relu6" } };
        else if (p.min === 0 && p.max >= FLT_MAX) op = { op: "activation", activation: { kind: "relu" } };
        else throw unsupported(l, `clip to [${p.min}, ${p.max}] (params 0, 1) is not supported (only [0, 6] and [0, ∞))`);
        const id = push(op, l.name, [x.node]);
        same(id, x.node);
        put(l, l.tops[0], { node: id, off: x.off, end: x.end });
        break;
      }
      case "BinaryOp": {
        const ops = ["add", "sub", "mul", "div", "max", "min", "pow", "rsub", "rdiv"];
        const opName = ops[p.opType] ?? `#${p.opType}`;
        if (p.withScalar) {
          arity(l, 1, 1);
          const x = get(l, l.bottoms[0]);
          let factor: number | null = null;
          if (p.opType === 2) factor = p.b;
          else if (p.opType === 3 && p.b !== 0) factor = 1 / p.b;
          else if ((p.opType === 0 || p.opType === 1) && p.b === 0) factor = 1;
          if (factor === null || !Number.isFinite(factor)) throw unsupported(l, `${opName} with scalar ${p.b} (params 0, 1, 2) is not supported (only ×, ÷ by a scalar)`);
          if (factor === 1) {
            put(l, l.tops[0], { ...x });
            break;
          }
          const id = push({ op: "scale", factor }, l.name, [x.node]);
          same(id, x.node);
          put(l, l.tops[0], { node: id, off: x.off, end: x.end });
          break;
        }
        arity(l, 2, 1);
        let a = get(l, l.bottoms[0]), b = get(l, l.bottoms[1]);
        if (a.vec || b.vec) {
          if (p.opType !== 2) throw unsupported(l, `${opName} with a 1-D blob (only the per-channel multiply of an SE block)`);
          put(l, l.tops[0], b.vec ? seMultiply(l, a, b) : seMultiply(l, b, a));
          break;
        }
        let coeffs: number[];
        if (p.opType === 0) coeffs = [1, 1];
        else if (p.opType === 1) coeffs = [1, -1];
        else if (p.opType === 7) coeffs = [-1, 1];
        else throw unsupported(l, `elementwise ${opName} of two blobs (param 0 = ${p.opType}) is not supported (only add, sub, rsub)`);
        const [sa, sb] = [shapeOf(a.node), shapeOf(b.node)];
        if (sa.channels !== sb.channels || sa.spatial !== sb.spatial) {
          throw unsupported(l, `operands differ in shape (${sa.channels} ch ×${sa.spatial} vs ${sb.channels} ch ×${sb.spatial}); broadcasting is not supported`);
        }
        [a, b] = alignAll(l, [a, b]);
        const id = push(coeffs[0] === 1 && coeffs[1] === 1 ? { op: "add" } : { op: "add", coeffs }, l.name, [a.node, b.node]);
        same(id, a.node);
        put(l, l.tops[0], { node: id, off: a.off, end: a.end });
        break;
      }
      case "Eltwise": {
        if (p.opType !== 1) throw unsupported(l, `operation ${["prod", "sum", "max"][p.opType] ?? p.opType} (param 0) is not supported (only sum)`);
        if (l.bottoms.length < 2 || l.tops.length !== 1) throw formatErr(l, `expects ≥ 2 inputs and 1 output, has ${l.bottoms.length} and ${l.tops.length}`);
        let xs = l.bottoms.map((b) => get(l, b));
        const c = p.coeffs ?? [];
        if (c.length !== 0 && c.length !== xs.length) throw formatErr(l, `${c.length} coefficients (param 1) for ${xs.length} inputs`);
        for (const x of xs) {
          const s0 = shapeOf(xs[0].node), s1 = shapeOf(x.node);
          if (s0.channels !== s1.channels || s0.spatial !== s1.spatial) throw unsupported(l, "inputs differ in shape");
        }
        xs = alignAll(l, xs);
        const coeffs = c.length && c.some((v) => v !== 1) ? c.map((v) => {
          if (!Number.isFinite(v)) throw formatErr(l, `coefficient ${v} is not finite`);
          return v;
        }) : undefined;
        const id = push(coeffs ? { op: "add", coeffs } : { op: "add" }, l.name, xs.map((x) => x.node));
        same(id, xs[0].node);
        put(l, l.tops[0], { node: id, off: xs[0].off, end: xs[0].end });
        break;
      }
      case "Concat": {
        if (l.tops.length !== 1 || l.bottoms.length < 1) arity(l, -1, 1);
        if (p.axis !== 0 && p.axis !== -3) throw unsupported(l, `concat axis ${p.axis} (param 0); only the channel axis (0)`);
        const xs = alignAll(l, l.bottoms.map((b) => get(l, b)));
        const id = push({ op: "concat" }, l.name, xs.map((x) => x.node));
        same(id, xs[0].node, xs.reduce((s, x) => s + nodes[x.node].channels, 0));
        put(l, l.tops[0], { node: id, off: xs[0].off, end: xs[0].end });
        break;
      }
      case "Crop": {
        // A second bottom is ncnn's size reference (cunet): its shape follows from the offsets here.
        if (l.bottoms.length === 2) {
          if (l.tops.length !== 1) arity(l, 2, 1);
          get(l, l.bottoms[1]);
        } else arity(l, 1, 1);
        const x = get(l, l.bottoms[0]);
        let sh: number, sw: number;
        let eh = 0, ew = 0; // crop at the far edge
        if ((p.starts ?? []).length || (p.axes ?? []).length) {
          const axes = p.axes ?? [], starts = p.starts ?? [], ends = p.ends ?? [];
          if (axes.length !== starts.length || (ends.length && ends.length !== axes.length)) throw formatErr(l, "starts (param 9), ends (param 10) and axes (param 11) differ in length");
          sh = 0;
          sw = 0;
          axes.forEach((ax, i) => {
            const e = ends.length ? ends[i] : INT_MAX;
            // ncnn: a negative end counts from the far edge; a huge one means "to the end".
            if (e >= 0 && e < INT_MAX / 2) throw unsupported(l, `absolute crop end ${e} (param 10) depends on the image size; only ends ≤ 0 (from the far edge)`);
            const fromEnd = e < 0 ? -e : 0;
            if (ax === 1 || ax === -2) [sh, eh] = [starts[i], fromEnd];
            else if (ax === 2 || ax === -1) [sw, ew] = [starts[i], fromEnd];
            else throw unsupported(l, `crop on axis ${ax} (param 11); only height and width`);
          });
        } else {
          if (p.coffset || p.outc) throw unsupported(l, "channel crops (params 2, 5)");
          sh = p.hoffset;
          sw = p.woffset;
          if (l.bottoms.length === 2) {
            // Cropped to the reference's size: it ends where ref.off + ref.end says (same frame).
            const ref = blobs.get(l.bottoms[1])!;
            if (ref.vec || nodes[ref.node].spatial !== nodes[x.node].spatial) throw unsupported(l, "the size reference is not an image tensor at the same resolution");
            eh = ew = ref.off + ref.end - x.off - sh - x.end;
          } else {
            if (p.outw || p.outh) throw unsupported(l, `absolute crop sizes outw ${p.outw} / outh ${p.outh} (params 3, 4) depend on the image size`);
            eh = p.hoffset2;
            ew = p.woffset2;
          }
        }
        if (sh !== sw || sh < 0 || eh !== ew || eh < 0) throw unsupported(l, `crop offsets h ${sh}/${eh}, w ${sw}/${ew} (start/end) must be equal for h and w and ≥ 0`);
        put(l, l.tops[0], { node: x.node, off: x.off + sh, end: x.end + eh });
        cropOf.set(l.tops[0], l.bottoms[0]);
        break;
      }
      case "PixelShuffle": {
        arity(l, 1, 1);
        const x = get(l, l.bottoms[0]);
        const r = p.upscaleFactor, c = nodes[x.node].channels;
        if (r < 1 || c % (r * r) !== 0) throw formatErr(l, `${c} channels not divisible by upscale_factor² = ${r * r} (param 0)`);
        if (p.mode !== 0 && p.mode !== 1) throw unsupported(l, `mode ${p.mode} (param 1)`);
        const id = push({ op: "depth_to_space", block: r }, l.name, [x.node]);
        same(id, x.node, c / (r * r), nodes[x.node].spatial * r);
        if (p.mode === 0) {
          // PyTorch's CRD order (channel c·r² + i·r + j → out (c, i, j)); the IR's depth_to_space is DCR.
          // Reorder the producing conv's output channels, which only this layer may read.
          const n = nodes[x.node];
          // Through crops (Real-CUGAN up4x crops the conv's output by 1 px before the shuffle): every blob
          // from the conv's own to the shuffle's input must have this chain as its only reader.
          let src = l.bottoms[0], only = readers.get(src) === 1;
          while (cropOf.has(src)) {
            src = cropOf.get(src)!;
            only &&= readers.get(src) === 1;
          }
          if (n.op !== "conv2d" || topOf.get(x.node) !== src || !only) {
            throw unsupported(l, "CRD pixel shuffle (mode 0) must be the only reader of a Convolution's output");
          }
          crdToDcr(n, r);
        }
        put(l, l.tops[0], { node: id, off: r * x.off, end: r * x.end });
        break;
      }
      case "Interp": {
        arity(l, 1, 1);
        const x = get(l, l.bottoms[0]);
        if (p.outputWidth || p.outputHeight || p.dynamicTargetSize) throw unsupported(l, "fixed or dynamic output sizes (params 3, 4, 5); only scale factors");
        if (p.resizeType === 2 && !p.alignCorner && p.heightScale === p.widthScale && Number.isInteger(p.widthScale) && p.widthScale >= 1) {
          // Bilinear upscale by an integer factor: ncnn's linear_coeffs with align_corner 0 are the
          // half-pixel rule with edge clamping (the IR's upsample_bilinear). ncnn clamps at its own
          // blob's edge, so the blob must not be offset inside a larger IR tensor.
          if (x.off !== 0 || x.end !== 0) throw unsupported(l, `bilinear upscale of a tensor offset by ${x.off} / ${x.end} pixels`);
          const s = p.widthScale;
          const id = push({ op: "upsample_bilinear", factor: s, mode: "half_pixel" }, l.name, [x.node]);
          same(id, x.node, undefined, nodes[x.node].spatial * s);
          put(l, l.tops[0], { node: id, off: 0, end: 0 });
          break;
        }
        if (p.resizeType === 2 || p.resizeType === 3) {
          if (p.alignCorner) throw unsupported(l, "align_corner (param 6)");
          const sIn = nodes[x.node].spatial, sOut = sIn * p.widthScale;
          if (p.heightScale !== p.widthScale || !(p.widthScale < 1) || Math.abs(sOut - Math.round(sOut)) > 1e-6 || Math.round(sOut) < 1) {
            throw unsupported(l, `${p.resizeType === 2 ? "bilinear" : "bicubic"} resize by ${p.heightScale}×${p.widthScale} (params 1, 2): only a downscale of an upsampled tensor to a whole factor of the input (e.g. ×4 → ×2) or a bilinear upscale by an integer factor maps to the IR`);
          }
          if (x.off !== 0 || x.end !== 0) throw unsupported(l, `resampling a tensor offset by ${x.off}/${x.end} pixels`);
          const id = resampleDown(l, x.node, Math.round(sOut), p.resizeType === 3 ? "cubic" : "linear");
          put(l, l.tops[0], { node: id, off: 0, end: 0 });
          break;
        }
        if (p.resizeType !== 1) throw unsupported(l, `resize type ${p.resizeType} (param 0); only nearest (1), and bilinear/bicubic downscales`);
        const s = p.widthScale;
        if (p.heightScale !== s || !Number.isInteger(s) || s < 1) throw unsupported(l, `scales ${p.heightScale}×${p.widthScale} (params 1, 2) must be equal integers`);
        const id = push({ op: "upsample_nearest", factor: s }, l.name, [x.node]);
        same(id, x.node, undefined, nodes[x.node].spatial * s);
        put(l, l.tops[0], { node: id, off: s * x.off, end: s * x.end });
        break;
      }
      case "Scale": {
        if (p.scaleDataSize === -233) {
          // Scale by a second blob (cunet's SE blocks): x · gate[c].
          arity(l, 2, 1);
          if (p.biasTerm) throw unsupported(l, "bias with a scale from a second blob");
          const x = get(l, l.bottoms[0]), v = get(l, l.bottoms[1]);
          if (!v.vec) throw unsupported(l, "scale from a second blob that is not an SE gate (global pooling → InnerProduct)");
          put(l, l.tops[0], seMultiply(l, x, v));
          break;
        }
        arity(l, 1, 1);
        const x = get(l, l.bottoms[0]);
        const sc = l.weights.scale;
        if (l.weights.bias || sc.some((v) => v !== sc[0])) throw unsupported(l, "per-channel scale or bias (only a uniform scale maps to the IR)");
        const id = push({ op: "scale", factor: sc[0] }, l.name, [x.node]);
        same(id, x.node);
        put(l, l.tops[0], { node: id, off: x.off, end: x.end });
        break;
      }
      case "Pooling": {
        arity(l, 1, 1);
        const x = get(l, l.bottoms[0]);
        if (!p.globalPooling || p.poolingType !== 1 || p.adaptivePooling) {
          throw unsupported(l, `${p.adaptivePooling ? "adaptive " : ""}${p.globalPooling ? "global " : ""}${p.poolingType === 1 ? "average" : "max"} pooling; only global average pooling (SE blocks)`);
        }
        if (x.vec) throw unsupported(l, "pooling a 1-D blob");
        put(l, l.tops[0], { node: -1, off: x.off, end: x.end, vec: { src: x.node, fc: [], len: nodes[x.node].channels } });
        break;
      }
      case "InnerProduct": {
        arity(l, 1, 1);
        const x = get(l, l.bottoms[0]);
        if (!x.vec) throw unsupported(l, "fully connected layer on an image tensor (only on a global pooling result, inside an SE block)");
        const cin = x.vec.len, cout = p.numOutput;
        if (cout < 1 || p.weightDataSize !== cin * cout) throw formatErr(l, `weight_data_size ${p.weightDataSize} (param 2) ≠ num_output ${cout} · ${cin} inputs`);
        const t = p.activationType;
        if (t !== 0 && t !== 1 && t !== 4) throw unsupported(l, `activation type ${t} (param 9); only none, ReLU and sigmoid in an SE gate`);
        const fc: SeLayer = { cin, cout, weights: Float32Array.from(l.weights.weight), bias: l.weights.bias ? Float32Array.from(l.weights.bias) : null,
          activation: t === 1 ? "relu" : t === 4 ? "sigmoid" : "linear" };
        put(l, l.tops[0], { node: -1, off: x.off, end: x.end, vec: { src: x.vec.src, fc: [...x.vec.fc, fc], len: cout } });
        break;
      }
      default:
        throw unsupported(l, "no lowering");
    }
  }
  if (input < 0) throw new LowbitError("E_MODEL_FORMAT", "ncnn .param: no Input layer");

  // Output blob: named, or the single produced-and-unconsumed one.
  let outName = opts.output;
  if (outName === undefined) {
    const leaves = produced.filter((b) => !consumed.has(b));
    if (leaves.length !== 1) throw new LowbitError("E_MODEL_FORMAT", `ncnn .param: ${leaves.length} unconsumed blobs (${leaves.slice(0, 5).join(", ")}); pass options.output`);
    outName = leaves[0];
  }
  const out = blobs.get(outName);
  if (!out) throw new LowbitError("E_ARGUMENT", `ncnn: output blob '${outName}' does not exist`);
  if (out.vec) throw new LowbitError("E_UNSUPPORTED_LAYER", `ncnn: the output blob '${outName}' is a 1-D pooling result, not an image`);

  const S = nodes[out.node].spatial;
  if (out.off % S !== 0) {
    throw new LowbitError("E_UNSUPPORTED_LAYER", `ncnn: the output is offset by ${out.off} HR pixels, not a whole number of LR pixels at ×${S}; cannot align it with the image`);
  }
  const prepad = out.off / S;
  if (prepad < 0) throw new LowbitError("E_UNSUPPORTED_LAYER", `ncnn: the output extends ${-prepad} LR pixels beyond the input; cannot align it with the image`);
  let output = out.node;
  if (opts.addNearestInput) {
    // The upsampled image pixel j sits at frame HR pixel j + P·S — the net output's offset: aligned.
    const up = push({ op: "upsample_nearest", factor: S }, "postprocess/input_nearest", [input]);
    same(up, input, 3, S);
    output = push({ op: "add" }, "postprocess/add_input", [out.node, up]);
    same(output, out.node);
  }
  const g: Graph = prune({
    nodes, input, output,
    meta: { name: opts.name ?? "ncnn-model", scale: S, inputRange: [0, 1], outputRange: [0, 1], arch: "ncnn" },
  });
  validateGraph(g, { skipFiniteCheck: true });
  g.meta.receptiveRadius = receptiveRadius(g);
  if (prepad > 0) g.meta.borderPad = prepad;
  const align = spatialAlign(g);
  if (align > 1) g.meta.tileAlign = align;
  if (g.nodes.some((n) => n.op === "squeeze_excite")) g.meta.globalContext = true;
  return { graph: g, prepad };
}

/** Keys cubic convolution weights (A = −0.75, ncnn/OpenCV/PyTorch) of the 4 taps ⌊x⌋−1 … ⌊x⌋+2 at fraction t. */
export function cubicWeights(t: number): [number, number, number, number] {
  const A = -0.75;
  const w0 = ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A;
  const w1 = ((A + 2) * t - (A + 3)) * t * t + 1;
  const w2 = ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1;
  return [w0, w1, w2, 1 - w0 - w1 - w2];
}

/** PyTorch CRD channel order (c·r² + i·r + j) → DCR ((i·r + j)·C + c) on a conv's outputs, in place. */
function crdToDcr(n: Extract<Node, { op: "conv2d" }>, r: number): void {
  const C = n.cout / (r * r);
  const perm = new Int32Array(n.cout); // new DCR channel → old CRD channel
  for (let c = 0; c < C; c++) for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) perm[(i * r + j) * C + c] = c * r * r + i * r + j;
  const w = new Float32Array(n.weights.length);
  for (let t = 0; t < w.length; t += n.cout) for (let o = 0; o < n.cout; o++) w[t + o] = n.weights[t + perm[o]];
  n.weights = w;
  if (n.bias) {
    const b = n.bias;
    n.bias = Float32Array.from(perm, (o) => b[o]);
  }
}

/** Drops nodes the output does not depend on (a downscale leaves its pixel shuffle unused), renumbering ids. */
function prune(g: Graph): Graph {
  const live = new Uint8Array(g.nodes.length);
  live[g.output] = 1;
  live[g.input] = 1;
  for (let i = g.nodes.length - 1; i >= 0; i--) if (live[i]) for (const p of g.nodes[i].inputs) live[p] = 1;
  const map = new Int32Array(g.nodes.length).fill(-1);
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    if (!live[n.id]) continue;
    map[n.id] = nodes.length;
    nodes.push({ ...n, id: nodes.length, inputs: n.inputs.map((i) => map[i]) } as Node);
  }
  return { ...g, nodes, input: map[g.input], output: map[g.output] };
}
