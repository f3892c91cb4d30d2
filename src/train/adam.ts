/**
 * Adam (Kingma & Ba; PyTorch's form, bias-corrected, ε outside the square root) with parameter
 * groups and a step learning-rate schedule.
 *
 * Groups: every parameter tensor has a kind (weight, bias, act_range, gamma, offset_scale,
 * offset_shift, act_clip) and a layer. Its learning rate is base·lrMult[kind] (default: act_range 10×,
 * odm.md §2 "learn the range at 10× the base learning rate"; everything else 1×), unless a
 * `groups` entry matches it first (by kind and/or layer), whose lr or lrMult then applies.
 * A multiplier of 0 freezes the tensor (its Adam state is not touched).
 *
 * Schedule: lr_t = lr·factor^⌊t/every⌋ for step t = 0, 1, … (EDSR/ODM: halve every 15K).
 */
import { LowbitError, check } from "../runtime/errors.ts";
import { PARAM_KINDS, type ParamKind } from "./graph.ts";

/** A trainable tensor (values are updated in place). */
export interface Param {
  name: string;
  layer: string;
  kind: ParamKind;
  value: Float32Array;
}

export interface ParamGroup {
  /** Kinds this group covers (default all). */
  kinds?: readonly ParamKind[];
  /** Layers this group covers: names or a pattern (default all). */
  layers?: readonly string[] | RegExp;
  /** Absolute learning rate for the group, or … */
  lr?: number;
  /** … a multiple of the base rate. */
  lrMult?: number;
}

export interface AdamOptions {
  /** Base learning rate (default 1e-4, ODM/EDSR). */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Per-kind multipliers of the base rate (default { act_range: 10 }, others 1). */
  lrMult?: Partial<Record<ParamKind, number>>;
  /** Explicit groups, first match wins (override lrMult). */
  groups?: readonly ParamGroup[];
  /** Step decay: multiply by `factor` (default 0.5) every `every` steps. */
  schedule?: { every: number; factor?: number };
}

function finitePos(v: number, what: string, allowZero = false): void {
  check(Number.isFinite(v) && (allowZero ? v >= 0 : v > 0), "E_ARGUMENT", `${what} must be a ${allowZero ? "non-negative" : "positive"} finite number, got ${v}`);
}

export class Adam {
  readonly params: readonly Param[];
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Steps taken. */
  t = 0;
  private readonly mult: Float64Array;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private readonly every: number;
  private readonly factor: number;
  private readonly index: Map<string, number>;

  constructor(params: readonly Param[], o: AdamOptions = {}) {
    this.params = params;
    this.lr = o.lr ?? 1e-4;
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
    finitePos(this.lr, "lr", true);
    check(this.beta1 >= 0 && this.beta1 < 1 && this.beta2 >= 0 && this.beta2 < 1, "E_ARGUMENT", `Adam betas must be in [0, 1), got ${this.beta1}, ${this.beta2}`);
    finitePos(this.eps, "eps");
    const kindMult: Record<ParamKind, number> = { weight: 1, bias: 1, act_range: 10, gamma: 1, offset_scale: 1, offset_shift: 1, act_clip: 1 };
    for (const [k, v] of Object.entries(o.lrMult ?? {})) {
      check(PARAM_KINDS.includes(k as ParamKind), "E_ARGUMENT", `lrMult: unknown parameter kind '${k}' (${PARAM_KINDS.join(", ")})`);
      finitePos(v!, `lrMult.${k}`, true);
      kindMult[k as ParamKind] = v!;
    }
    for (const gr of o.groups ?? []) {
      for (const k of gr.kinds ?? []) check(PARAM_KINDS.includes(k), "E_ARGUMENT", `groups: unknown parameter kind '${k}'`);
      check(gr.lr === undefined || gr.lrMult === undefined, "E_ARGUMENT", "a parameter group sets lr or lrMult, not both");
      if (gr.lr !== undefined) finitePos(gr.lr, "group lr", true);
      if (gr.lrMult !== undefined) finitePos(gr.lrMult, "group lrMult", true);
    }
    this.mult = Float64Array.from(params, (p) => {
      const gr = (o.groups ?? []).find((gg) =>
        (!gg.kinds || gg.kinds.includes(p.kind)) &&
        (!gg.layers || (gg.layers instanceof RegExp ? gg.layers.test(p.layer) : gg.layers.includes(p.layer))));
      if (gr?.lr !== undefined) return this.lr > 0 ? gr.lr / this.lr : gr.lr === 0 ? 0 : NaN;
      if (gr?.lrMult !== undefined) return gr.lrMult;
      return kindMult[p.kind];
    });
    if (this.lr === 0 && (o.groups ?? []).some((gg) => (gg.lr ?? 0) > 0)) {
      throw new LowbitError("E_ARGUMENT", "a group lr needs a positive base lr (groups scale with the schedule)");
    }
    this.m = params.map((p) => new Float32Array(p.value.length));
    this.v = params.map((p) => new Float32Array(p.value.length));
    this.index = new Map(params.map((p, i) => [p.name, i]));
    this.every = o.schedule?.every ?? 0;
    this.factor = o.schedule?.factor ?? 0.5;
    if (o.schedule) {
      check(Number.isInteger(this.every) && this.every >= 1, "E_ARGUMENT", `schedule.every must be a positive integer, got ${o.schedule.every}`);
      finitePos(this.factor, "schedule.factor");
    }
  }

  /** Base learning rate at step t (default: the next step). */
  lrAt(t = this.t): number {
    return this.every > 0 ? this.lr * this.factor ** Math.floor(t / this.every) : this.lr;
  }

  /** Learning rate of parameter `name` at the next step. */
  paramLr(name: string): number {
    const i = this.index.get(name);
    check(i !== undefined, "E_ARGUMENT", `no parameter '${name}'`);
    return this.lrAt() * this.mult[i];
  }

  /**
   * One update with gradients by parameter name (missing = no gradient this step: the tensor
   * and its moments stay as they are). Gradient lengths must match.
   */
  step(grads: ReadonlyMap<string, ArrayLike<number>>): void {
    const t = this.t + 1;
    const lr = this.lrAt(this.t);
    const b1 = this.beta1, b2 = this.beta2, eps = this.eps;
    const c1 = 1 - b1 ** t, c2 = 1 - b2 ** t;
    for (const [name] of grads) check(this.index.has(name), "E_ARGUMENT", `gradient for unknown parameter '${name}'`);
    this.params.forEach((p, i) => {
      const g = grads.get(p.name);
      const a = lr * this.mult[i];
      if (!g || a === 0) return;
      check(g.length === p.value.length, "E_SHAPE", `gradient of '${p.name}' has ${g.length} values, the parameter ${p.value.length}`);
      const m = this.m[i], v = this.v[i], x = p.value;
      for (let j = 0; j < x.length; j++) {
        const gj = g[j];
        if (!Number.isFinite(gj)) throw new LowbitError("E_RANGE", `gradient of '${p.name}'[${j}] is ${gj}`);
        const mj = (m[j] = b1 * m[j] + (1 - b1) * gj);
        const vj = (v[j] = b2 * v[j] + (1 - b2) * gj * gj);
        x[j] -= (a * (mj / c1)) / (Math.sqrt(vj / c2) + eps);
      }
    });
    this.t = t;
  }
}
