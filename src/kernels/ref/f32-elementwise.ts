// References of assembly/elementwise/f32-elementwise.ts. Add / scale / clamp
// and the piecewise-linear activations repeat the kernel's f32 steps (bit
// exact); the transcendental activations are computed in f64 and rounded once
// (the kernel's single-precision Mathf results are within a few ulp of these).
import type { ActivationKind } from "../../graph/ir.ts";

const f = Math.fround;
type Codes = Uint8Array | Int8Array;

export function addRef(out: Float32Array, a: Float32Array, b: Float32Array, n: number, c: number,
  aStride: number, bStride: number, yStride: number, beta: number): void {
  const fb = f(beta);
  for (let p = 0; p < n; p++) for (let i = 0; i < c; i++)
    out[p * yStride + i] = f(a[p * aStride + i] + f(fb * b[p * bStride + i]));
}

export function scaleRef(out: Float32Array, x: Float32Array, n: number, c: number, xStride: number, yStride: number, beta: number): void {
  const fb = f(beta);
  for (let p = 0; p < n; p++) for (let i = 0; i < c; i++) out[p * yStride + i] = f(fb * x[p * xStride + i]);
}

export function clampRef<T extends Float32Array | Codes>(out: T, x: T, n: number, c: number, xStride: number, yStride: number, lo: number, hi: number): void {
  for (let p = 0; p < n; p++) for (let i = 0; i < c; i++) out[p * yStride + i] = Math.min(Math.max(x[p * xStride + i], lo), hi);
}

const SELU_ALPHA = 1.6732632423543772;
const SELU_SCALE = 1.0507009873554805;

/** act(x) for one element; alpha = leaky slope / elu alpha. */
export function activationOne(kind: ActivationKind, x: number, alpha: number): number {
  const a = f(alpha);
  switch (kind) {
    case "linear": return x;
    case "relu": return Math.max(x, 0);
    case "relu6": return Math.min(Math.max(x, 0), 6);
    case "leaky_relu": return x < 0 ? f(a * x) : x;
    case "elu": return x > 0 ? x : f(a * Math.expm1(x));
    case "selu": return f(SELU_SCALE * (x > 0 ? x : SELU_ALPHA * Math.expm1(x)));
    case "sigmoid": return f(1 / (1 + Math.exp(-x)));
    case "hard_sigmoid": return Math.min(Math.max(f(f(f(0.2) * x) + 0.5), 0), 1);
    case "tanh": return f(Math.tanh(x));
    case "softplus": return f(Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))));
    case "softsign": return f(x / f(1 + Math.abs(x)));
    case "swish": return f(x / (1 + Math.exp(-x)));
    case "exponential": return f(Math.exp(x));
  }
}

export function activationRef(out: Float32Array, x: Float32Array, n: number, c: number, xStride: number, yStride: number,
  kind: ActivationKind, alpha: number): void {
  for (let p = 0; p < n; p++) for (let i = 0; i < c; i++) out[p * yStride + i] = activationOne(kind, x[p * xStride + i], alpha);
}
