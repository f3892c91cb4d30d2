import type { ActivationKind, Graph } from "../../src/graph/ir.ts";
import { activationOne } from "../../src/kernels/ref/f32-elementwise.ts";

const defaultAlpha = (k: ActivationKind): number => (k === "leaky_relu" ? 0.3 : 1);

/** A dense f64 NHWC tensor (batch 1). */
export interface F64Tensor { data: Float64Array; h: number; w: number; c: number }

type ConvNode = Extract<Graph["nodes"][number], { op: "conv2d" }>;

/** f64 'same' convolution with HWIO weights, optional bias, then act per output value. */
export function convF64(x: F64Tensor, weights: ArrayLike<number>, bias: ArrayLike<number> | null, k: number, cout: number,
  act: (v: number) => number): F64Tensor {
  const p = (k - 1) / 2, cin = x.c;
  const out = new Float64Array(x.h * x.w * cout);
  for (let y = 0; y < x.h; y++) for (let xx = 0; xx < x.w; xx++) {
    const o = (y * x.w + xx) * cout;
    for (let co = 0; co < cout; co++) out[o + co] = bias ? bias[co] : 0;
    for (let ky = 0; ky < k; ky++) {
      const iy = y + ky - p;
      if (iy < 0 || iy >= x.h) continue;
      for (let kx = 0; kx < k; kx++) {
        const ix = xx + kx - p;
        if (ix < 0 || ix >= x.w) continue;
        const ib = (iy * x.w + ix) * cin;
        const wb = (ky * k + kx) * cin * cout;
        for (let ci = 0; ci < cin; ci++) {
          const v = x.data[ib + ci];
          const wr = wb + ci * cout;
          for (let co = 0; co < cout; co++) out[o + co] += v * weights[wr + co];
        }
      }
    }
    for (let co = 0; co < cout; co++) out[o + co] = act(out[o + co]);
  }
  return { data: out, h: x.h, w: x.w, c: cout };
}

/**
 * Plain f64 evaluation of a graph (the semantics the IR promises), NHWC, batch 1: every node's value.
 * `conv` replaces the conv2d evaluation (the training tests' fake-quantized surrogate); `post`
 * may replace any node's value after it is computed (tensor fake-quant).
 */
export function evalGraphNodes(g: Graph, x: Float32Array, h: number, w: number,
  conv?: (n: ConvNode, a: F64Tensor) => F64Tensor, post?: (n: Graph["nodes"][number], r: F64Tensor, ins: F64Tensor[]) => F64Tensor): F64Tensor[] {
  const vals: F64Tensor[] = [];
  for (const n of g.nodes) {
    const ins = n.inputs.map((i) => vals[i]);
    const a = ins[0];
    let r: F64Tensor;
    switch (n.op) {
      case "input":
        r = { data: Float64Array.from(x), h, w, c: n.channels };
        break;
      case "conv2d": {
        const act = n.activation;
        r = conv ? conv(n, a) : convF64(a, n.weights, n.bias, n.k, n.cout, (v) => activationOne(act.kind, v, act.alpha ?? defaultAlpha(act.kind)));
        break;
      }
      case "activation":
        r = { ...a, data: a.data.map((v) => activationOne(n.activation.kind, v, n.activation.alpha ?? defaultAlpha(n.activation.kind))) };
        break;
      case "add": {
        const out = new Float64Array(a.data.length);
        ins.forEach((b, j) => {
          const k = n.coeffs ? n.coeffs[j] : 1;
          for (let i = 0; i < out.length; i++) out[i] += k * b.data[i];
        });
        r = { ...a, data: out };
        break;
      }
      case "scale":
        r = { ...a, data: a.data.map((v) => v * n.factor) };
        break;
      case "prelu": {
        const out = new Float64Array(a.data.length);
        for (let i = 0; i < out.length; i++) {
          const v = a.data[i];
          out[i] = v >= 0 ? v : n.slopes[i % a.c] * v;
        }
        r = { ...a, data: out };
        break;
      }
      case "concat": {
        const c = ins.reduce((s, b) => s + b.c, 0);
        const out = new Float64Array(a.h * a.w * c);
        for (let i = 0; i < a.h * a.w; i++) {
          let o = i * c;
          for (const b of ins) for (let j = 0; j < b.c; j++) out[o++] = b.data[i * b.c + j];
        }
        r = { data: out, h: a.h, w: a.w, c };
        break;
      }
      case "upsample_nearest":
      case "depth_to_space": {
        const s = n.op === "upsample_nearest" ? n.factor : n.block;
        const c = n.op === "upsample_nearest" ? a.c : a.c / (s * s);
        const H = a.h * s, W = a.w * s;
        const out = new Float64Array(H * W * c);
        for (let Y = 0; Y < H; Y++) for (let X = 0; X < W; X++) for (let ch = 0; ch < c; ch++) {
          const y = Math.floor(Y / s), xx = Math.floor(X / s), i = Y % s, j = X % s;
          const src = n.op === "upsample_nearest" ? ch : (i * s + j) * c + ch;
          out[(Y * W + X) * c + ch] = a.data[(y * a.w + xx) * a.c + src];
        }
        r = { data: out, h: H, w: W, c };
        break;
      }
    }
    vals.push(post ? post(n, r!, ins) : r!);
  }
  return vals;
}

/** The output node's value (evalGraphNodes). */
export function evalGraph(g: Graph, x: Float32Array, h: number, w: number): F64Tensor {
  return evalGraphNodes(g, x, h, w)[g.output];
}
