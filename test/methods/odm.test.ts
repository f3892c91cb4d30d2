// ODM (src/methods/odm): grids (odm.md §5.1), the integer conv with its border term against an f64
// oracle written from the definition (§5.2), tiled = untiled given the receptive-field margin (§5.3),
// P1/P99 calibration percentiles (§5.4), channel offsets (fold, mismatch), .lowbit round trip, errors.
import test from "tape";
import { optimizeGraph } from "../../src/graph/passes.ts";
import { F32Plan } from "../../src/graph/compile-f32.ts";
import { DynamicPlan } from "../../src/graph/compile-dynamic.ts";
import { DynamicQuantizedModel } from "../../src/methods/dynamic/model.ts";
import { loadLowbit, saveLowbit } from "../../src/io/lowbit-file.ts";
import { createUpscaler } from "../../src/engine/upscaler-api.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import {
  ChannelOffsets, OdmActQuantizer, buildOdmModel, calibrateOdm, channelMismatch, foldChannelOffsetsF32, odmActGrid, odmFakeQuant,
  odmInitPtq, odmQuantizeWeights, percentileInPlace, quantileSelect, type OdmLayerParams,
} from "../../src/methods/odm/index.ts";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { randomImage, smallNet } from "../util/small-net.ts";
import type { Node } from "../../src/graph/ir.ts";

type Conv = Extract<Node, { op: "conv2d" }>;

function throwsCode(t: test.Test, f: () => unknown, code: string, what: string): void {
  try {
    f();
    t.fail(`${what}: no error`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${what}: ${e instanceof LowbitError ? e.code : String(e)}`);
  }
}

/** A small SR net: head, a residual body with a ReLU, a concat, a sub-pixel tail (×2). */
test("odm/grid: activation grids — 2^b levels at l + kΔ, nudging, degenerate ranges", (t) => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 200; trial++) {
    const bits = rng.int(2, 8);
    const lo = (rng.next() - 0.7) * 10, hi = lo + rng.next() * 20 + 1e-3;
    const g = odmActGrid(lo, hi, bits);
    const n = 2 ** bits - 1;
    const levels = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const x = lo - 5 + rng.next() * (hi - lo + 10);
      const q = odmFakeQuant(x, g.lo, g.hi, bits);
      const k = Math.round((q - lo) / g.step);
      levels.add(k);
      if (!(Math.abs(q - (lo + k * g.step)) < 1e-9 && k >= 0 && k <= n)) { t.fail(`level ${q} not on the grid`); return; }
      // Nearest level (clip first), ties excepted.
      const v = Math.min(hi, Math.max(lo, x));
      const dist = Math.abs(v - q);
      if (dist > g.step / 2 + 1e-9) { t.fail(`x=${x} → ${q}: not the nearest level`); return; }
    }
    if (!(levels.size <= n + 1)) { t.fail("too many levels"); return; }
  }
  t.pass("200 random grids: q(x) is the nearest of the 2^b levels l + kΔ of the clipped x");
  const g4 = odmActGrid(-1, 2, 4);
  t.equal(odmFakeQuant(-5, g4.lo, g4.hi, 4), -1, "below l → l");
  t.equal(odmFakeQuant(7, g4.lo, g4.hi, 4), 2, "above u → u");
  t.ok(Math.abs(g4.step - 0.2) < 1e-15, "Δ = (u − l)/15");
  const ok = [-0.3, 0.9];
  const nz = odmActGrid(ok[0], ok[1], 4, { nudge: true });
  const z = -nz.lo / nz.step;
  t.ok(nz.nudged && Math.abs(z - Math.round(z)) < 1e-9, `nudged: 0 is a level (zero point ${z.toFixed(6)})`);
  t.ok(Math.abs(nz.hi - nz.lo - (ok[1] - ok[0])) < 1e-12, "nudged: the range width is kept");
  const pos = odmActGrid(0.5, 3, 3, { nudge: true });
  t.equal(pos.lo, 0, "nudged positive range starts at 0");
  const plain = odmActGrid(0.5, 3, 3);
  t.equal(plain.lo, 0.5, "default: l is not nudged (0 need not be a level)");
  const flat = odmActGrid(2, 2, 4);
  t.equal(flat.step, 0, "u = l: Δ = 0");
  t.equal(odmFakeQuant(-3, 2, 2, 4), 2, "u = l: everything maps to l");
  throwsCode(t, () => odmActGrid(1, 0, 4), "E_RANGE", "u < l");
  throwsCode(t, () => odmActGrid(0, Infinity, 4), "E_RANGE", "infinite range");
  throwsCode(t, () => odmActGrid(0, 1, 9), "E_BITS", "9 bits");
  throwsCode(t, () => odmActGrid(0, 1, 1), "E_BITS", "1 bit");
  t.end();
});

test("odm/grid: weights — odd symmetric grid without 0, u_w = P99(|W|)·γ, W8 needs int16, P99 = 0", (t) => {
  const rng = new Rng(12);
  for (const bits of [2, 3, 4, 8]) {
    const k = 3, cin = 5, cout = 7, N = k * k * cin * cout;
    const w = new Float32Array(N).map(() => (rng.next() - 0.5) * 0.4);
    const gamma = bits === 3 ? 0.7 : 1;
    const q = odmQuantizeWeights(w, { k, cin, cout }, { bits, gamma });
    const n = 2 ** bits - 1;
    const abs = Float64Array.from(w, Math.abs).sort();
    const p99 = abs[Math.floor(0.99 * (N - 1))] + (0.99 * (N - 1) - Math.floor(0.99 * (N - 1))) * (abs[Math.floor(0.99 * (N - 1)) + 1] - abs[Math.floor(0.99 * (N - 1))]);
    t.ok(Math.abs(q.f - p99) < 1e-7, `w${bits}: f = P99(|W|) (${q.f.toFixed(5)})`);
    t.ok(Math.abs(q.wscale - Math.fround((p99 * gamma) / n)) < 1e-9, `w${bits}: Δ_w = u_w/(2^w − 1), γ = ${gamma}`);
    let bad = 0, maxAbs = 0;
    const seen = new Set<number>();
    for (let kh = 0, i = 0; kh < k; kh++) {
      for (let kw = 0; kw < k; kw++) {
        for (let c = 0; c < cin; c++) {
          for (let o = 0; o < cout; o++, i++) {
            const m = q.codes[((o * k + kh) * k + kw) * cin + c];
            seen.add(m);
            maxAbs = Math.max(maxAbs, Math.abs(m));
            if (m % 2 === 0 || Math.abs(m) > n) bad++;
            // Nearest odd level of the clipped weight.
            const v = Math.min(q.uw, Math.max(-q.uw, w[i]));
            if (Math.abs(v - q.wscale * m) > q.wscale + 1e-7) bad++;
            if (q.dequantHWIO[i] !== Math.fround(q.wscale * m)) bad++;
          }
        }
      }
    }
    t.equal(bad, 0, `w${bits}: every code odd, |m| ≤ ${n}, nearest level, dequant = Δ_w·m`);
    t.ok(!seen.has(0), `w${bits}: 0 is not a level`);
    t.ok(maxAbs === n && seen.has(-n), `w${bits}: both ends ±${n} reached (clipped weights)`);
    if (bits === 8) t.ok(maxAbs > 127, "w8: codes beyond int8 (stored as int16)");
  }
  // Symmetry: q(−w) = −q(w) away from ties.
  const w = Float32Array.from({ length: 9 * 4 }, (_, i) => Math.sin((i + 1) * 1.7) * 0.3); // no exact tie (0 ties up to +1)
  const neg = w.map((v) => -v);
  const a = odmQuantizeWeights(w, { k: 3, cin: 2, cout: 2 }, { bits: 4 }), b = odmQuantizeWeights(neg, { k: 3, cin: 2, cout: 2 }, { bits: 4 });
  t.ok(a.codes.every((m, i) => m === -b.codes[i]), "grid symmetric away from ties: codes of −W are −codes of W");
  // P99 = 0: mostly-zero kernel falls back to max|W|; an all-zero one decodes to 0.
  const sparse = new Float32Array(300);
  sparse[7] = 0.5;
  const s = odmQuantizeWeights(sparse, { k: 1, cin: 3, cout: 100 }, { bits: 4 });
  t.equal(s.f, 0.5, "P99(|W|) = 0 → f = max|W|");
  t.equal(s.codes[7 * 1 + 0] !== undefined, true);
  const zero = odmQuantizeWeights(new Float32Array(18), { k: 3, cin: 1, cout: 2 }, { bits: 4 });
  t.ok(zero.wscale === 0 && zero.dequantHWIO.every((v) => v === 0), "all-zero kernel: Δ_w = 0, every weight decodes to 0");
  throwsCode(t, () => odmQuantizeWeights(new Float32Array(5), { k: 3, cin: 1, cout: 1 }, { bits: 4 }), "E_SHAPE", "length mismatch");
  throwsCode(t, () => odmQuantizeWeights(Float32Array.of(NaN), { k: 1, cin: 1, cout: 1 }, { bits: 4 }), "E_RANGE", "NaN weight");
  throwsCode(t, () => odmQuantizeWeights(new Float32Array(1), { k: 1, cin: 1, cout: 1 }, { bits: 4, gamma: 0 }), "E_RANGE", "γ = 0");
  t.end();
});

test("odm/percentiles: selection = sort; calibration averages per-patch P1/P99 (§5.4)", async (t) => {
  const rng = new Rng(13);
  let bad = 0;
  for (let trial = 0; trial < 300; trial++) {
    const n = rng.int(1, 2000);
    const v = new Float32Array(n).map(() => (rng.next() < 0.3 ? rng.int(-3, 3) : (rng.next() - 0.5) * 100));
    const q = rng.next();
    const ref = percentileInPlace(Float32Array.from(v), q);
    if (quantileSelect(Float32Array.from(v), q) !== ref) bad++;
  }
  t.equal(bad, 0, "300 random sets with ties: quickselect quantile equals the sorted one");
  t.equal(percentileInPlace(Float64Array.of(4, 1, 3, 2), 0.5), 2.5, "median of 1..4 = 2.5 (linear interpolation)");
  const rt = await testRuntime();
  const g = optimizeGraph(smallNet());
  const imgs = [randomImage(rng, 13, 11), randomImage(rng, 13, 11), randomImage(rng, 13, 11)];
  const head = g.nodes.find((n) => n.name === "head")!;
  const c = await calibrateOdm(rt, g, [g.input, head.id], imgs);
  // The graph input: pixel/255 (inputRange [0, 1]) — percentiles by hand.
  let lo = 0, hi = 0;
  for (const im of imgs) {
    const v = Float64Array.from(im.data, (x) => Math.fround(x * Math.fround(1 / 255)));
    const s = Float64Array.from(v).sort();
    const q = (p: number) => { const pos = p * (s.length - 1), i = Math.floor(pos); return s[i] + (pos - i) * ((s[i + 1] ?? s[i]) - s[i]); };
    lo += q(0.01) / imgs.length;
    hi += q(0.99) / imgs.length;
  }
  const ci = c.get(g.input)!;
  t.ok(Math.abs(ci.lo - lo) < 1e-6 && Math.abs(ci.hi - hi) < 1e-6, `input P1/P99 averaged over patches: [${ci.lo.toFixed(5)}, ${ci.hi.toFixed(5)}] vs [${lo.toFixed(5)}, ${hi.toFixed(5)}]`);
  let m0 = 0;
  for (let i = 1; i < imgs[0].data.length; i += 3) m0 += imgs[0].data[i] / 255 / (13 * 11);
  t.ok(Math.abs(ci.stats.mean[1] - m0) < 1e-5, "per-patch channel mean recorded");
  // A conv output: against the FP32 plan's tensor.
  const plan = new F32Plan(rt, g, 13, 11);
  let hlo = 0, hhi = 0;
  for (const im of imgs) {
    const x = plan.inputView(13, 11);
    for (let i = 0; i < im.data.length; i++) x[i] = Math.fround(im.data[i] * Math.fround(1 / 255));
    plan.runSteps(13, 11, 0, plan.nodeSteps[head.id][1]);
    const v = plan.tensorView(head.id, 13, 11);
    const vals: number[] = [];
    for (let p = 0; p < v.pixels; p++) for (let ch = 0; ch < v.channels; ch++) vals.push(v.data[v.offset + p * v.stride + ch]);
    vals.sort((a, b) => a - b);
    const q = (p: number) => { const pos = p * (vals.length - 1), i = Math.floor(pos); return vals[i] + (pos - i) * ((vals[i + 1] ?? vals[i]) - vals[i]); };
    hlo += q(0.01) / imgs.length;
    hhi += q(0.99) / imgs.length;
  }
  plan.dispose();
  const ch = c.get(head.id)!;
  t.ok(Math.abs(ch.lo - hlo) < 1e-5 && Math.abs(ch.hi - hhi) < 1e-5, `conv output P1/P99: [${ch.lo.toFixed(4)}, ${ch.hi.toFixed(4)}] vs FP32 plan [${hlo.toFixed(4)}, ${hhi.toFixed(4)}]`);
  try {
    await calibrateOdm(rt, g, [head.id], imgs, { low: 50, high: 10 });
    t.fail("low ≥ high accepted");
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === "E_ARGUMENT", "low ≥ high: E_ARGUMENT");
  }
});

/** The f64 oracle of one quantized conv from the definitions (odm.md §4): y = b + Σ_in-bounds ŵ·x̂. */
function convOracle(n: Conv, layer: { weights: Int16Array; wscale: Float32Array }, xhat: Float64Array, h: number, w: number): Float64Array {
  const { k, cin, cout } = n, r = (k - 1) >> 1;
  const y = new Float64Array(h * w * cout);
  for (let yy = 0; yy < h; yy++) {
    for (let xx = 0; xx < w; xx++) {
      for (let o = 0; o < cout; o++) {
        let s = n.bias ? n.bias[o] : 0;
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const sy = yy + ky - r, sx = xx + kx - r;
            if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
            for (let c = 0; c < cin; c++) s += layer.wscale[o] * layer.weights[((o * k + ky) * k + kx) * cin + c] * xhat[(sy * w + sx) * cin + c];
          }
        }
        if (n.activation.kind === "relu") s = Math.max(0, s);
        y[(yy * w + xx) * cout + o] = s;
      }
    }
  }
  return y;
}

test("odm/engine: integer conv (exact and LUT paths, offsets folded or not) = f64 oracle incl. borders (§5.2); no statistics pass", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(14);
  const g0 = smallNet(3);
  const imgs = Array.from({ length: 4 }, () => randomImage(rng, 16, 16));
  for (const fold of [true, false]) {
    const r = await odmInitPtq(g0, imgs, { weightBits: 4, actBits: 4, scope: "full", offsets: 1, fold, patches: 6, patchSize: 12, runtime: rt });
    const qm = r.model;
    t.equal(qm.layers.size, 4, "scope full: 4 convs");
    t.ok([...qm.layers.values()].every((l) => l.act.kind === "odm" && l.act.scale && l.act.shift), "offsets on every layer (offsets=1)");
    const img = randomImage(rng, 9, 7);
    for (const path of ["exact", "lut", "oracle"] as const) {
      qm.path = path;
      const plan = new DynamicPlan(rt, qm, img.width, img.height);
      if (path === "exact") t.ok(!plan.info.stepOps.includes("stats") && !plan.info.stepOps.includes("params"), `plan steps: ${[...new Set(plan.info.stepOps)].join(", ")} (no statistics pass)`);
      const xin = plan.inputView(img.width, img.height);
      for (let i = 0; i < img.data.length; i++) xin[i] = Math.fround(img.data[i] * Math.fround(1 / 255));
      let worst = 0, codeFlips = 0, total = 0;
      for (const id of plan.info.quantized) {
        const n = qm.graph.nodes[id] as Conv;
        plan.runSteps(img.width, img.height, 0, plan.nodeSteps[id][0]);
        const xv = plan.tensorView(n.inputs[0], img.width, img.height);
        const q = plan.quantizers.get(id) as OdmActQuantizer;
        const act = qm.layers.get(id)!.act;
        if (act.kind !== "odm") throw new Error("kind");
        // x̂ from the definition: (q(x·a + b) − b)/a, folded: q(x·a + b) − b.
        const s = (act.hi - act.lo) / (2 ** act.bits - 1);
        const xhat = new Float64Array(xv.pixels * n.cin);
        for (let p = 0; p < xv.pixels; p++) {
          for (let c = 0; c < n.cin; c++) {
            const x = xv.data[xv.offset + p * xv.stride + c];
            const xp = x * act.scale![c] + act.shift![c];
            const tt = (Math.min(act.hi, Math.max(act.lo, xp)) - act.lo) / s;
            let kk = Math.floor(tt + 0.5);
            if (Math.abs(tt + 0.5 - Math.round(tt + 0.5)) < 1e-4) {
              // Near a tie the f32 kernel may round the other way: take the kernel's own rule.
              const mu = new Float32Array(n.cin), inv = new Float32Array(n.cin);
              q.prepare(null as never, mu, inv);
              kk = Math.min(2 ** act.bits - 1, Math.max(0, Math.floor(Math.fround(Math.fround(x - mu[c]) * inv[c]))));
              codeFlips++;
            }
            total++;
            const lvl = act.lo + kk * s - act.shift![c];
            xhat[p * n.cin + c] = act.scaleFolded ? lvl : lvl / act.scale![c];
          }
        }
        const ref = convOracle(n, qm.layers.get(id)!, xhat, img.height * n.spatial, img.width * n.spatial);
        plan.runSteps(img.width, img.height, plan.nodeSteps[id][0], plan.nodeSteps[id][1]);
        const yv = plan.tensorView(id, img.width, img.height);
        let maxRef = 0, err = 0;
        for (let p = 0; p < yv.pixels; p++) {
          for (let o = 0; o < n.cout; o++) {
            maxRef = Math.max(maxRef, Math.abs(ref[p * n.cout + o]));
            err = Math.max(err, Math.abs(yv.data[yv.offset + p * yv.stride + o] - ref[p * n.cout + o]));
          }
        }
        worst = Math.max(worst, err / Math.max(maxRef, 1e-6));
      }
      const tol = path === "lut" ? 2e-4 : 2e-5;
      t.ok(worst <= tol, `fold=${fold} ${path}: every layer within ${tol} × max|y| of the f64 oracle, borders included (worst ${worst.toExponential(2)}; ${codeFlips}/${total} near-tie codes)`);
      plan.dispose();
    }
  }
});

test("odm/engine: tiled = untiled with a receptive-field margin (§5.3); .lowbit round trip", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(15);
  const g = smallNet(5);
  const imgs = Array.from({ length: 3 }, () => randomImage(rng, 20, 20));
  const { model } = await odmInitPtq(g, imgs, { weightBits: 4, actBits: 4, scope: "full", offsets: 0.5, patches: 4, patchSize: 16, runtime: rt });
  t.equal(model.wholeImage, false, "static quantizers: the engine may tile");
  const img = randomImage(rng, 37, 29);
  const R = model.graph.meta.receptiveRadius!;
  const whole = await createUpscaler(model, { runtime: rt, tile: 64, margin: R });
  const a = await whole.upscale(img);
  whole.dispose();
  const tiled = await createUpscaler(model, { runtime: rt, tile: 8, margin: R });
  const b = await tiled.upscale(img);
  tiled.dispose();
  let diff = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) diff++;
  t.equal(diff, 0, `8×8 tiles with margin ${R} = one tile, byte for byte (${a.data.length} values)`);
  const small = await createUpscaler(model, { runtime: rt, tile: 8, margin: 0 });
  const c = await small.upscale(img);
  small.dispose();
  let diff0 = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== c.data[i]) diff0++;
  t.ok(diff0 > 0, `without a margin the tiles differ (${diff0} values): the test can fail`);
  const bytes = saveLowbit(model);
  const back = loadLowbit(bytes) as DynamicQuantizedModel;
  t.ok(back instanceof DynamicQuantizedModel && back.info.method === "odm", `loaded: ${back.config}`);
  const up = await createUpscaler(back, { runtime: rt, tile: 64, margin: R });
  const d = await up.upscale(img);
  up.dispose();
  t.ok(d.data.every((v, i) => v === a.data[i]), "reloaded model: identical output");
  const la = [...back.layers.values()].map((l) => l.act);
  t.ok(la.some((x) => x.kind === "odm" && x.shift && x.scale && x.scaleFolded), "offsets and the fold flag survive the round trip");
});

test("odm/offsets: folded = unfolded (float, border term exact); initial offsets remove the channel mismatch", async (t) => {
  const rng = new Rng(16);
  for (const k of [1, 3, 5]) {
    const cin = 5, cout = 4, h = 7, w = 6;
    const W = new Float32Array(k * k * cin * cout).map(() => rng.next() - 0.5);
    const bias = new Float32Array(cout).map(() => rng.next() - 0.5);
    const off = new ChannelOffsets(0, "x", new Float32Array(cin).map(() => (rng.next() - 0.5) * 4), new Float32Array(cin).map(() => 0.25 + rng.next() * 3));
    const xq = new Float64Array(h * w * cin).map(() => rng.int(0, 15) * 0.3 - 1); // q(x·a + b): any values
    const r = (k - 1) >> 1;
    const conv = (Wt: ArrayLike<number>, bs: ArrayLike<number>, x: (p: number, c: number) => number) => {
      const y = new Float64Array(h * w * cout);
      for (let yy = 0; yy < h; yy++) for (let xx = 0; xx < w; xx++) for (let o = 0; o < cout; o++) {
        let s = bs[o];
        for (let ky = 0; ky < k; ky++) for (let kx = 0; kx < k; kx++) {
          const sy = yy + ky - r, sx = xx + kx - r;
          if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
          for (let c = 0; c < cin; c++) s += Wt[((ky * k + kx) * cin + c) * cout + o] * x(sy * w + sx, c);
        }
        y[(yy * w + xx) * cout + o] = s;
      }
      return y;
    };
    const unfolded = conv(W, bias, (p, c) => (xq[p * cin + c] - off.shift[c]) / off.scale[c]);
    const f = foldChannelOffsetsF32({ weights: W, bias, k, cin, cout }, off);
    const folded = conv(f.weights, f.bias, (p, c) => xq[p * cin + c]);
    const border = f.border(new Float32Array(h * w * cout), h, w);
    let err = 0, interiorBorder = 0;
    for (let i = 0; i < folded.length; i++) err = Math.max(err, Math.abs(folded[i] + border[i] - unfolded[i]));
    for (let y = r; y < h - r; y++) for (let x = r; x < w - r; x++) for (let o = 0; o < cout; o++) interiorBorder += Math.abs(border[(y * w + x) * cout + o]);
    t.ok(err < 1e-5, `k=${k}: conv_{W/a}(q) + bias' + border = conv_W((q − b)/a), max |Δ| ${err.toExponential(2)}`);
    t.equal(interiorBorder, 0, `k=${k}: the border term is 0 in the interior`);
    if (k === 3) {
      let berr = 0;
      for (let i = 0; i < folded.length; i++) berr = Math.max(berr, Math.abs(folded[i] - unfolded[i]));
      t.ok(berr > 1e-3, "without the border term the border ring is wrong (the test can fail)");
    }
  }
  // Mismatch measures and initial offsets.
  const I = 6, C = 5;
  const st = { images: I, channels: C, mean: new Float64Array(I * C), std: new Float64Array(I * C) };
  for (let i = 0; i < I; i++) for (let c = 0; c < C; c++) {
    st.mean[i * C + c] = c * 2 - 3 + 0.1 * rng.next();
    st.std[i * C + c] = (0.5 + c) * (1 + 0.05 * rng.next());
  }
  const before = channelMismatch(st);
  const off = ChannelOffsets.fromStats(3, "t", st, "both");
  const after = channelMismatch(off.transformStats(st));
  t.ok(before.channelMean > 0.5 && after.channelMean < 1e-6, `channel-mean mismatch ${before.channelMean.toFixed(3)} → ${after.channelMean.toExponential(1)}`);
  // σ̄_c' = σ̄ for every channel; the tensor std itself moves a little (inter-image mean variation), hence not 0.
  t.ok(before.channelStd > 0.3 && after.channelStd < 0.01 * before.channelStd, `channel-std mismatch ${before.channelStd.toFixed(3)} → ${after.channelStd.toExponential(1)}`);
  t.ok(Math.abs(after.tensorMean - before.tensorMean) < 1e-5, "the tensor mean is kept");
  const sh = ChannelOffsets.fromStats(3, "t", st, "shift");
  t.ok(sh.scale.every((v) => v === 1) && channelMismatch(sh.transformStats(st)).channelMean < 1e-6, "shift only: a = 1, means aligned");
  throwsCode(t, () => new ChannelOffsets(0, "bad", new Float32Array(2), Float32Array.of(1, 0)), "E_RANGE", "scale 0");
  throwsCode(t, () => new OdmActQuantizer({ kind: "odm", postRelu: false, bits: 4, lo: 0, hi: 1, scale: Float32Array.of(1) }, 2), "E_SHAPE", "offsets for the wrong channel count");
  throwsCode(t, () => new OdmActQuantizer({ kind: "odm", postRelu: false, bits: 4, lo: 1, hi: 0 }, 2), "E_RANGE", "empty range");
  t.end();
});

test("odm/model: buildOdmModel validates; u = l layer runs (constant input); report rows", async (t) => {
  const rt = await testRuntime();
  const g = optimizeGraph(smallNet(7));
  const convs = g.nodes.filter((n) => n.op === "conv2d");
  const params = new Map<number, OdmLayerParams>(convs.map((n) => [n.id, { lo: -1, hi: 1, gamma: 1 }]));
  params.set(convs[1].id, { lo: 0.25, hi: 0.25, gamma: 1 });
  const qm = buildOdmModel(g, params, { weightBits: 8, actBits: 8, scope: "full", path: "exact" });
  const plan = new DynamicPlan(rt, qm, 5, 5);
  plan.inputView(5, 5).fill(0.5);
  plan.runSteps(5, 5, 0, plan.stepCount);
  t.ok(plan.outputView(5, 5).every(Number.isFinite), "a layer with u = l runs (its input is the constant l)");
  plan.dispose();
  throwsCode(t, () => buildOdmModel(g, new Map([[g.input, { lo: 0, hi: 1, gamma: 1 }]]), { weightBits: 4, actBits: 4, scope: "full" }), "E_ARGUMENT", "parameters for a non-conv");
  throwsCode(t, () => buildOdmModel(g, params, { weightBits: 4, actBits: 1, scope: "full" }), "E_BITS", "a1");
  const bad = new Map(params);
  bad.set(convs[0].id, { lo: 0, hi: 1, gamma: 1, offsets: ChannelOffsets.identity(0, "x", 7) });
  throwsCode(t, () => buildOdmModel(g, bad, { weightBits: 4, actBits: 4, scope: "full" }), "E_SHAPE", "offsets of the wrong width");
  const rng = new Rng(17);
  const r = await odmInitPtq(smallNet(7), [randomImage(rng, 16, 16), randomImage(rng, 16, 16)], { weightBits: 4, actBits: 4, scope: "full", offsets: 0.5, report: true, patches: 4, patchSize: 12, runtime: rt });
  t.equal(r.report.length, 4, "one report row per quantized conv");
  const withOff = r.report.filter((x) => x.offsets);
  t.equal(withOff.length, 2, "offsets on half of the input tensors (the largest mismatch)");
  t.ok(withOff.every((x) => x.after.channelMean <= x.before.channelMean + 1e-9), "offsets never raise the channel-mean mismatch");
  t.ok(r.report.every((x) => Number.isFinite(x.relErrorBefore) && Number.isFinite(x.relErrorAfter)), "quantization error measured before/after");
  t.ok(r.model.config.includes("variant=init-ptq"), `labelled as the init PTQ: ${r.model.config}`);
});

test("odm/model: a sub-pixel tail is quantized as its HR kernel and the codes merged (scope full); .lowbit keeps them", async (t) => {
  const rt = await testRuntime();
  const { loadModel } = await import("../../src/models/registry.ts");
  const { subpixelMerge } = await import("../../src/graph/passes.ts");
  const g = optimizeGraph(await loadModel("esrgan-slim-x2"));
  const tail = g.nodes.find((n) => n.op === "conv2d" && n.subpixelOf) as Conv | undefined;
  t.ok(tail, `the optimized graph has a sub-pixel tail (${tail?.name})`);
  if (!tail) return;
  const params = new Map<number, OdmLayerParams>([[tail.id, { lo: -1, hi: 1, gamma: 1 }]]);
  const qm = buildOdmModel(g, params, { weightBits: 4, actBits: 4, scope: "full" });
  const l = qm.layers.get(tail.id)!;
  const sp = tail.subpixelOf!;
  const hr = odmQuantizeWeights(sp.weights, { k: sp.k, cin: tail.cin, cout: tail.cout / (sp.block * sp.block) }, { bits: 4 });
  const merged = subpixelMerge(new Float32Array(tail.weights.length), hr.dequantHWIO, sp.k, sp.block, tail.cin, tail.cout / (sp.block * sp.block));
  let err = 0, maxCode = 0;
  for (let o = 0; o < tail.cout; o++) for (let tp = 0; tp < tail.k * tail.k; tp++) for (let c = 0; c < tail.cin; c++) {
    const m = l.weights[(o * tail.k * tail.k + tp) * tail.cin + c];
    maxCode = Math.max(maxCode, Math.abs(m));
    err = Math.max(err, Math.abs(l.wscale[o] * m - merged[(tp * tail.cin + c) * tail.cout + o]));
  }
  t.ok(err < 1e-6, `merged integer codes × Δ_w = merged dequantized HR kernel (max |Δ| ${err.toExponential(1)})`);
  t.ok(maxCode > 15, `merged codes exceed the 4-bit range (max ${maxCode}): sums of HR codes`);
  const back = loadLowbit(saveLowbit(qm)) as DynamicQuantizedModel;
  t.ok(back.layers.get(tail.id)!.weights.every((v, i) => v === l.weights[i]), ".lowbit round trip keeps the merged codes");
  // The file declares the wider code range (codeBound); without it the same codes are out of range.
  const bytes = saveLowbit(qm);
  const hn = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hn)));
  const doc = JSON.parse(header.__metadata__.lowbit);
  const lj = doc.dynamic.layers.find((x: { node: number }) => x.node === tail.id);
  t.equal(lj.codeBound, maxCode, `the tail's layer entry says codeBound = ${maxCode}`);
  delete lj.codeBound;
  const h2 = new TextEncoder().encode(JSON.stringify({ ...header, __metadata__: { ...header.__metadata__, lowbit: JSON.stringify(doc) } }));
  const bad = new Uint8Array(8 + h2.length + bytes.length - 8 - hn);
  new DataView(bad.buffer).setBigUint64(0, BigInt(h2.length), true);
  bad.set(h2, 8);
  bad.set(bytes.subarray(8 + hn), 8 + h2.length);
  try {
    loadLowbit(bad);
    t.fail("merged codes without codeBound were accepted");
  } catch (e) {
    t.equal((e as { code?: string }).code, "E_RANGE", `without codeBound: ${(e as Error).message.slice(0, 90)}`);
  }
  void rt;
});

test("odm/finetune: trains (every component on), exports a static model that matches the engine's fake-quantized forward", async (t) => {
  const rt = await testRuntime();
  const { odmFinetune } = await import("../../src/methods/odm/finetune.ts");
  const { Trainer, buildTrainGraph, loadState } = await import("../../src/train/index.ts");
  const rng = new Rng(21);
  const graph = smallNet(9);
  const lr = Array.from({ length: 3 }, () => randomImage(rng, 20, 20));
  const r = await odmFinetune(graph, { lr }, {
    weightBits: 4, actBits: 4, scope: "full", steps: 6, batch: 2, patch: 12, calibrationPatches: 4,
    mismatch: true, variance: true, offsets: 0.5, runtime: rt,
  });
  t.equal(r.losses.length, 6, "6 steps");
  t.ok(r.losses.every(Number.isFinite), `finite losses ${r.losses[0].toFixed(4)} … ${r.losses[5].toFixed(4)}`);
  t.ok(r.model.config.includes("variant=finetuned") && r.init.model.config.includes("variant=init-ptq"), `labels: ${r.model.config}`);
  const withOff = r.state.layers.filter((l) => l.offsets);
  t.equal(withOff.length, 2, "offsets learned on 2 of 4 layers");
  t.ok(withOff.some((l) => l.offsets!.scale.some((v) => v !== 1)), "offsets initialised from statistics (not identity)");
  t.ok(r.state.layers.some((l) => l.weight && l.weight.gamma !== 1), "WCC: γ moved");
  // The deployed integer model against the training engine's fake-quantized forward on a fresh image.
  const names = r.state.layers.filter((l) => l.act).map((l) => l.name);
  const tr = new Trainer(rt, buildTrainGraph(graph, { weightBits: 4, actBits: 4, layers: names, offsets: withOff.map((l) => l.name) }), { maxW: 16, maxH: 16 });
  loadState(tr, r.state);
  const img = randomImage(rng, 16, 16);
  const x = Float32Array.from(img.data, (v) => Math.fround(v * Math.fround(1 / 255)));
  tr.forward(x, 16, 16);
  const ref = tr.read(tr.output());
  tr.dispose();
  r.model.path = "exact";
  const plan = new DynamicPlan(rt, r.model, 16, 16);
  plan.inputView(16, 16).set(x);
  plan.runSteps(16, 16, 0, plan.stepCount);
  const out = plan.outputView(16, 16).slice();
  plan.dispose();
  let e = 0, close = 0;
  for (let i = 0; i < out.length; i++) {
    e += (out[i] - ref[i]) ** 2;
    if (Math.abs(out[i] - ref[i]) < 1e-4) close++;
  }
  const psnr = 10 * Math.log10(1 / (e / out.length));
  t.ok(psnr > 45 && close / out.length > 0.9, `deployed vs fake-quant forward: ${psnr.toFixed(1)} dB, ${(100 * close / out.length).toFixed(1)} % of outputs within 1e-4 (the rest: codes at rounding ties)`);
  const frozen = await odmFinetune(graph, { lr }, { weightBits: 4, actBits: 4, scope: "full", steps: 2, batch: 1, patch: 12, calibrationPatches: 2, wcc: false, runtime: rt });
  t.ok(frozen.state.layers.every((l) => !l.weight || l.weight.gamma === 1), "wcc: false keeps γ = 1");
});

test("odm/cli: lowbit finetune writes a .lowbit that lowbit eval runs; usage errors", async (t) => {
  const { run } = await import("../../src/cli/main.ts");
  const { join } = await import("node:path");
  const { findEvalDir } = await import("../util/eval-data.ts");
  const { cliIo: io, pngFolder } = await import("../util/cli.ts");
  const rng = new Rng(22);
  const { root: dir, dir: data } = pngFolder("odm-ft-", "lr", [randomImage(rng, 24, 24), randomImage(rng, 24, 24)]);
  const out = join(dir, "m.lowbit");
  const a = io();
  const code = await run(["finetune", "--model", "esrgan-slim-x2", "--method", "odm", "--bits", "w4a4", "--data", data, "--steps", "2", "--batch", "1", "--patch", "12", "-o", out, "--method-options", "mr=cos,wcc=1,offsets=0.25"], a);
  t.equal(code, 0, `finetune exit 0: ${a.stdout.text.trim().slice(0, 160)}${a.stderr.text.includes("lowbit:") ? a.stderr.text : ""}`);
  const b = io();
  const evalDir = findEvalDir();
  const code2 = await run(["eval", "--model", out, "--data", evalDir ?? "missing", "--images", "butterfly"], b);
  t.ok(code2 === 0 && /butterfly/.test(b.stdout.text), "lowbit eval --model m.lowbit runs it");
  const c = io();
  t.equal(await run(["finetune", "--model", "esrgan-slim-x2", "--bits", "w4a4", "-o", out], c), 2, "no --data: usage error (exit 2)");
  t.equal(await run(["finetune", "--model", "esrgan-slim-x2", "--bits", "w4a4", "--data", data, "--method", "daq", "-o", out], io()), 2, "--method daq: usage error");
  t.equal(await run(["finetune", "--model", "esrgan-slim-x2", "--bits", "w4a4", "--data", data, "--method-options", "bogus=1", "-o", out], io()), 2, "unknown method option: usage error");
  t.equal(await run(["finetune", "--model", "esrgan-slim-x2", "--bits", "w4a4", "--data", data, "--scale", "4", "-o", out], io()), 2, "--scale mismatch: usage error");
  t.equal(await run(["finetune", "--model", "esrgan-slim-x2", "--bits", "w4a4", "--data", join(dir, "nope"), "-o", out], io()), 1, "missing data dir: E_IO (exit 1)");
});
