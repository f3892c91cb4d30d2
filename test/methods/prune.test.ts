// Pruning methods: N:M masks and MAC counting, SLS scores/gradients and a short SLS run, filter
// surgery through add/concat joins (pruned = zeroed original), BN closed forms, .lowbit sparsity.
import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { evalGraph } from "../util/eval-graph.ts";
import { GraphBuilder } from "../../src/graph/builder.ts";
import type { Graph, Node } from "../../src/graph/ir.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import {
  applyNm, graphMacs, groupRanks, keptPerColumn, nmEligible, nmMask, oneShotNm, pairGroupRanks, parsePattern, satisfiesNm, sparsifyGraph,
} from "../../src/methods/prune/nm-mask.ts";
import { slsN, slsProbs, slsPrune, slsScoreGrad } from "../../src/methods/prune/sls.ts";
import { analyzeChannels, filterPrune, pruneChannels } from "../../src/methods/prune/filter.ts";
import { bnChannelScore, convInputStats, normCdf, reluMoments } from "../../src/methods/prune/criteria.ts";
import { loadLowbit, saveLowbit } from "../../src/io/lowbit-file.ts";

type Conv = Extract<Node, { op: "conv2d" }>;
const convs = (g: Graph) => g.nodes.filter((n): n is Conv => n.op === "conv2d");

function throwsCode(t: test.Test, f: () => unknown, code: string, msg: string): void {
  try {
    f();
    t.fail(`${msg}: did not throw`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code, `${msg}: ${(e as Error).message}`);
  }
}

/** Brute-force reference: per group, sort (|w| desc, channel asc), keep the first N. */
function refMask(w: Float32Array, k: number, cin: number, cout: number, n: number, m: number): Uint8Array {
  const out = new Uint8Array(w.length);
  for (let t = 0; t < k * k; t++) for (let o = 0; o < cout; o++) for (let c0 = 0; c0 < cin; c0 += m) {
    const chans = [];
    for (let c = c0; c < Math.min(cin, c0 + m); c++) chans.push(c);
    chans.sort((a, b) => Math.abs(w[(t * cin + b) * cout + o]) - Math.abs(w[(t * cin + a) * cout + o]) || a - b);
    for (const c of chans.slice(0, n)) out[(t * cin + c) * cout + o] = 1;
  }
  return out;
}

test("N:M masks: groups of M consecutive input channels, ties to the lower channel, short last group", async (t) => {
  const rng = new Rng(81);
  let cases = 0, bad = 0;
  for (let it = 0; it < 200; it++) {
    const k = rng.pick([1, 3, 5]), cin = rng.pick([1, 3, 4, 5, 12, 32, 33, 48, 64, 70]), cout = rng.int(1, 9);
    const m = rng.pick([4, 8, 32]), n = rng.int(1, m);
    const w = new Float32Array(k * k * cin * cout);
    // Coarse values: many exact ties (and zeros) so the tie rule is exercised.
    for (let i = 0; i < w.length; i++) w[i] = rng.int(-4, 4) * 0.25;
    const a = nmMask(new Uint8Array(w.length), w, k, cin, cout, { n, m });
    const b = refMask(w, k, cin, cout, n, m);
    cases++;
    if (a.some((v, i) => v !== b[i])) bad++;
    const masked = applyNm(new Float32Array(w.length), w, k, cin, cout, { n, m });
    if (!satisfiesNm(masked, k, cin, cout, { n, m })) bad++;
    // Kept count per (t, o) = Σ min(N, chunk length).
    let kept = 0;
    for (const v of a) kept += v;
    if (kept !== k * k * cout * keptPerColumn(cin, { n, m })) bad++;
  }
  t.equal(bad, 0, `${cases} random layers match the brute-force reference`);
  // Cin = 64 → 2 groups per (o, kh, kw); Cin = 48 → the second group has 16 channels.
  t.equal(keptPerColumn(64, { n: 8, m: 32 }), 16, "cin 64, 8:32: two groups of 8");
  t.equal(keptPerColumn(48, { n: 20, m: 32 }), 36, "cin 48, 20:32: 20 + min(20, 16)");
  const r = groupRanks(new Uint8Array(4), Float32Array.of(1, -3, 3, 0.5), 1, 4, 1, 4);
  t.deepEqual([...r], [2, 0, 1, 3], "ranks: |−3| ties |3| → lower channel first");
  t.notOk(satisfiesNm(Float32Array.of(1, 1, 1, 0), 1, 4, 1, { n: 2, m: 4 }), "3 nonzeros violate 2:4");
  t.deepEqual(parsePattern("8:32"), { n: 8, m: 32 });
  throwsCode(t, () => parsePattern("9:8"), "E_ARGUMENT", "N > M");
  throwsCode(t, () => parsePattern("x"), "E_ARGUMENT", "malformed pattern");
  throwsCode(t, () => nmMask(new Uint8Array(3), new Float32Array(4), 1, 4, 1, { n: 1, m: 4 }), "E_SHAPE", "mask length");
});

/** Brute-force pair reference: per group, sort aligned pairs (Σ w² desc, pair asc), keep the first N/2. */
function refPairMask(w: Float32Array, k: number, cin: number, cout: number, n: number, m: number): Uint8Array {
  const out = new Uint8Array(w.length);
  const at = (t: number, c: number, o: number) => (c < cin ? w[(t * cin + c) * cout + o] : 0);
  for (let t = 0; t < k * k; t++) for (let o = 0; o < cout; o++) for (let c0 = 0; c0 < cin; c0 += m) {
    const pairs = [];
    for (let c = c0; c < Math.min(cin, c0 + m); c += 2) pairs.push(c);
    const e = (c: number) => at(t, c, o) ** 2 + (c + 1 < Math.min(cin, c0 + m) ? at(t, c + 1, o) ** 2 : 0);
    pairs.sort((a, b) => e(b) - e(a) || a - b);
    for (const c of pairs.slice(0, n / 2)) for (const cc of [c, c + 1]) if (cc < cin) out[(t * cin + cc) * cout + o] = 1;
  }
  return out;
}

test("pair-structured N:M masks (N:Mp): top N/2 aligned pairs by Σ w², ties to the lower pair, odd cin", async (t) => {
  const rng = new Rng(82);
  let cases = 0, bad = 0;
  for (let it = 0; it < 200; it++) {
    const k = rng.pick([1, 3, 5]), cin = rng.pick([1, 2, 3, 5, 12, 31, 32, 33, 48, 64, 71]), cout = rng.int(1, 9);
    const m = rng.pick([2, 4, 8, 32]), n = 2 * rng.int(1, m / 2);
    const w = new Float32Array(k * k * cin * cout);
    for (let i = 0; i < w.length; i++) w[i] = rng.int(-4, 4) * 0.25; // coarse: ties and zeros
    const p = { n, m, pairs: true };
    const a = nmMask(new Uint8Array(w.length), w, k, cin, cout, p);
    cases++;
    const want = refPairMask(w, k, cin, cout, n, m);
    if (a.some((v, i) => v !== want[i])) bad++;
    const masked = applyNm(new Float32Array(w.length), w, k, cin, cout, p);
    if (!satisfiesNm(masked, k, cin, cout, p) || !satisfiesNm(masked, k, cin, cout, { n, m })) bad++;
  }
  t.equal(bad, 0, `${cases} random layers match the brute-force pair reference and satisfy N:Mp (hence N:M)`);
  // Pairs (0,1): 1 + 0 = 1, (2,3): 0.25 + 0.25 = 0.5, (4,5): 0 + 1 = 1 (ties pair 0 → pair 0 first), (6,7): 0.
  const r = pairGroupRanks(new Uint8Array(8), Float32Array.of(1, 0, 0.5, -0.5, 0, -1, 0, 0), 1, 8, 1, 8);
  t.deepEqual([...r], [0, 1, 4, 5, 2, 3, 6, 7], "pair ranks 2r + parity: Σ w² desc, ties → lower pair");
  t.deepEqual([...nmMask(new Uint8Array(8), Float32Array.of(1, 0, 0.9, 0.9, 0, 0, 0, 0), 1, 8, 1, { n: 2, m: 8, pairs: true })],
    [0, 0, 1, 1, 0, 0, 0, 0], "Σ w² prefers (0.9, 0.9) over (1, 0) — more energy kept");
  t.notOk(satisfiesNm(Float32Array.of(1, 0, 1, 0), 1, 4, 1, { n: 2, m: 4, pairs: true }), "2 nonzeros in 2 pairs violate 2:4p");
  t.ok(satisfiesNm(Float32Array.of(0, 0, 1, 1), 1, 4, 1, { n: 2, m: 4, pairs: true }), "one full pair is 2:4p");
  t.deepEqual(parsePattern("8:32p"), { n: 8, m: 32, pairs: true });
  t.deepEqual(parsePattern(" 2 : 4 p "), { n: 2, m: 4, pairs: true });
  throwsCode(t, () => parsePattern("7:32p"), "E_ARGUMENT", "odd N with pairs");
  throwsCode(t, () => parsePattern("2:5p"), "E_ARGUMENT", "odd M with pairs");
  throwsCode(t, () => parsePattern("8:32q"), "E_ARGUMENT", "unknown suffix");
  throwsCode(t, () => pairGroupRanks(new Uint8Array(5), new Float32Array(5), 1, 5, 1, 5), "E_ARGUMENT", "pair ranks with odd M");
  const g = toyRdn(4);
  const s = oneShotNm(g, { n: 2, m: 4, pairs: true });
  const sp = convs(s).filter((c) => c.sparsity);
  t.ok(sp.length > 0 && sp.every((c) => c.sparsity!.pairs === true && satisfiesNm(c.weights, c.k, c.cin, c.cout, c.sparsity!)), `oneShotNm 2:4p: ${sp.length} convs carry {n: 2, m: 4, pairs: true} and satisfy it`);
  t.ok(graphMacs(s).layers.some((l) => l.sparsity?.pairs === true), "graphMacs reports the pair pattern");
  const back = loadLowbit(saveLowbit(s)) as Graph;
  t.deepEqual(convs(back).filter((c) => c.sparsity).map((c) => c.sparsity), sp.map((c) => c.sparsity), ".lowbit keeps pairs: true");
  const plain = oneShotNm(g, { n: 2, m: 4 });
  const broken = { ...plain, nodes: plain.nodes.map((n) => (n.op === "conv2d" && n.sparsity ? { ...n, sparsity: { ...n.sparsity, pairs: true } } : n)) };
  throwsCode(t, () => loadLowbit(saveLowbit(broken)), "E_ARGUMENT", "a plain 2:4 mask declared as 2:4p is refused");
  const rt = await testRuntime();
  const f = await slsPrune(g, images(new Rng(3), 2, 16, 16, 2), { m: 4, fixedN: 2, pairs: true, steps: 2, budget: 1, batch: 1, patch: 12, runtime: rt });
  const fs = convs(f.graph).filter((c) => c.sparsity);
  t.ok(fs.length > 0 && fs.every((c) => c.sparsity!.pairs === true && satisfiesNm(c.weights, c.k, c.cin, c.cout, c.sparsity!)), "SLS fixed-N fine-tune with pairs keeps 2:4p");
  try {
    await slsPrune(g, images(new Rng(3), 2, 16, 16, 2), { m: 4, fixedN: 1, pairs: true, steps: 1, budget: 1, batch: 1, patch: 12, runtime: rt });
    t.fail("odd fixedN with pairs accepted");
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === "E_ARGUMENT", "SLS pairs with odd N → E_ARGUMENT");
  }
});

/** A small RDN-like graph: head → dense block (relu conv, concat, 1×1 LFF, residual add) ×2 → GFF concat → tail → ×2. */
function toyRdn(seed: number, C = 8, G = 6): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input(3);
  const head = b.conv2d(x, C, 3, { name: "F_m1" });
  let s = head;
  const outs = [];
  for (let i = 1; i <= 2; i++) {
    const d = b.conv2d(s, G, 3, { activation: "relu", name: `F_${i}_1` });
    const cat = b.concat(s, d);
    const lff = b.conv2d(cat, C, 1, { name: `LFF_${i}` });
    s = b.add(lff, s);
    outs.push(s);
  }
  const gff = b.conv2d(b.concat(...outs), C, 1, { name: "GFF_1" });
  const up1 = b.conv2d(b.add(gff, head), 12, 3, { activation: "relu", name: "UPN" });
  const ps = b.depthToSpace(b.conv2d(up1, 12, 3, { name: "UPS" }), 2);
  return b.build(b.conv2d(ps, 3, 3, { name: "SR" }), { name: "toy", scale: 2 });
}

test("MAC counting: dense, N:M effective, eligibility (head/tail dense, cin < M dense)", async (t) => {
  const g = toyRdn(3);
  const m = graphMacs(g);
  let dense = 0;
  for (const n of convs(g)) dense += n.k * n.k * n.cin * n.cout * n.spatial * n.spatial;
  t.equal(m.dense, dense, "dense MACs per LR pixel");
  const el = nmEligible(g, { m: 4 });
  const names = convs(g).filter((n) => el.has(n.id)).map((n) => n.name);
  t.notOk(names.includes("F_m1") || names.includes("SR"), `head and tail stay dense (eligible: ${names.join(",")})`);
  const s = oneShotNm(g, { n: 2, m: 4 });
  let eff = 0;
  for (const n of convs(s)) {
    const sp = n.sparsity;
    eff += sp ? n.k * n.k * n.cout * keptPerColumn(n.cin, sp) * n.spatial ** 2 : n.k * n.k * n.cin * n.cout * n.spatial ** 2;
    if (sp && !satisfiesNm(n.weights, n.k, n.cin, n.cout, sp)) t.fail(`${n.name} violates its pattern`);
  }
  t.equal(graphMacs(s).effective, eff, "effective MACs");
  t.ok(graphMacs(s).ratio < 0.6 && graphMacs(s).ratio > 0.5, `2:4 ratio ${graphMacs(s).ratio.toFixed(3)}`);
  t.equal(g.nodes.filter((n) => n.op === "conv2d" && n.sparsity).length, 0, "input graph untouched");
  throwsCode(t, () => sparsifyGraph(g, new Map([["F_m1", { n: 1, m: 4 }]])), "E_ARGUMENT", "cin 3 < M 4");
  throwsCode(t, () => sparsifyGraph(g, new Map([["nope", { n: 1, m: 4 }]])), "E_ARGUMENT", "unknown conv");
});

test("SLS scores: N = 1 + #{p_j > 0.5}, ∂L/∂k through the clamped cumulative product (finite differences)", async (t) => {
  t.equal(slsN([1, 1, 1]), 4, "all ones → N = M");
  t.equal(slsN([0.9, 0.5, 1]), 2, "p = 0.9, 0.45, … → N = 2");
  t.equal(slsN([0.4, 1.03, 1]), 1, "p_1 ≤ 0.5 → N = 1");
  t.equal(slsN([1.2, 0.45, 1]), 2, "clamp to 1.03: p_2 = 0.4635 → N = 2");
  const rng = new Rng(5);
  let worst = 0, cases = 0;
  for (let it = 0; it < 100; it++) {
    const M1 = rng.int(1, 31);
    const k = Float64Array.from({ length: M1 }, () => rng.pick([rng.uniform(-0.2, 1.2), rng.uniform(0.5, 1.02), 0, 1]));
    const dp = Float64Array.from({ length: M1 }, () => rng.uniform(-1, 1));
    const f = (kk: Float64Array) => slsProbs(kk).reduce((a, p, j) => a + dp[j] * p, 0);
    const g = slsScoreGrad(new Float64Array(M1), k, dp);
    for (let i = 0; i < M1; i++) {
      // Central differences away from the clamp kinks (the STE gradient is one-sided there).
      if (Math.abs(k[i]) < 1e-3 || Math.abs(k[i] - 1.03) < 1e-3) continue;
      const h = 1e-6, kp = Float64Array.from(k), km = Float64Array.from(k);
      kp[i] += h;
      km[i] -= h;
      const num = (f(kp) - f(km)) / (2 * h);
      worst = Math.max(worst, Math.abs(num - g[i]) / Math.max(1e-6, Math.abs(num)));
      cases++;
    }
  }
  t.ok(worst < 1e-5, `${cases} partials, worst relative error ${worst.toExponential(2)}`);
  // k_i = 0 exactly: ∂p_j/∂k_i = Π of the others (not p_j/k_i = 0/0).
  const g0 = slsScoreGrad(new Float64Array(3), [0.8, 0, 0.9], [1, 1, 1]);
  t.ok(Math.abs(g0[1] - (0.8 + 0.8 * 0.9)) < 1e-12, `k = 0: ∂/∂k_2 = ${g0[1]}`);
});

function images(rng: Rng, n: number, w: number, h: number, scale: number) {
  const mk = (W: number, H: number) => ({ data: Uint8Array.from({ length: W * H * 3 }, (_, i) => (i % 7) * 20 + rng.int(0, 100)), width: W, height: H, channels: 3 as const });
  const lr = Array.from({ length: n }, () => mk(w, h));
  const hr = Array.from({ length: n }, () => mk(w * scale, h * scale));
  return { lr, hr };
}

test("SLS: reaches the MAC budget, every sparse layer satisfies its N:M, fine-tuning keeps N", async (t) => {
  const rt = await testRuntime();
  const g = toyRdn(11, 8, 8);
  const data = images(new Rng(2), 3, 20, 20, 2);
  const r = await slsPrune(g, data, { budget: 0.6, m: 4, steps: 24, searchSteps: 16, epochSteps: 4, lambda: 1, scoreLr: 0.02, batch: 1, patch: 12, runtime: rt });
  t.ok(r.ratio <= 0.6 + 1e-9, `ratio ${r.ratio.toFixed(3)} ≤ budget (reached at step ${r.reachedAt}, forced ${r.forced})`);
  t.ok(Math.abs(graphMacs(r.graph).ratio - r.ratio) < 1e-12, "graphMacs of the result = the reported ratio");
  for (const n of convs(r.graph)) {
    const N = r.n.get(n.name);
    if (N === undefined) {
      t.notOk(n.sparsity, `${n.name} is not sparse`);
      continue;
    }
    if (N < 4) t.ok(n.sparsity?.n === N && n.sparsity.m === 4 && satisfiesNm(n.weights, n.k, n.cin, n.cout, n.sparsity), `${n.name}: ${N}:4 and the weights satisfy it`);
    else t.notOk(n.sparsity, `${n.name}: N = M stays dense`);
  }
  t.equal(r.losses.length, 24, "one loss per step");
  // Pair-structured search: N learned in steps of 2 (units = aligned channel pairs), by the scores and greedily.
  for (const searchSteps of [16, 0]) {
    const p = await slsPrune(g, data, { budget: 0.6, m: 4, pairs: true, steps: 20, searchSteps, epochSteps: 4, lambda: 1, scoreLr: 0.02, batch: 1, patch: 12, runtime: rt });
    const how = searchSteps ? "search" : "greedy completion";
    t.ok(p.ratio <= 0.6 + 1e-9 && (searchSteps > 0 || p.forced), `pairs (${how}): ratio ${p.ratio.toFixed(3)} ≤ budget`);
    t.ok([...p.n.values()].every((v) => v % 2 === 0 && v >= 2 && v <= 4), `pairs (${how}): every N even (${[...p.n.values()].join(",")})`);
    const sp = convs(p.graph).filter((c) => c.sparsity);
    t.ok(sp.length > 0 && sp.every((c) => c.sparsity!.pairs === true && c.sparsity!.n === 2 && satisfiesNm(c.weights, c.k, c.cin, c.cout, c.sparsity!)),
      `pairs (${how}): ${sp.length} sparse convs are 2:4p and satisfy it`);
    t.ok(Math.abs(graphMacs(p.graph).ratio - p.ratio) < 1e-12, `pairs (${how}): graphMacs = the reported ratio`);
  }
  // M = 8 (4 pairs per group, 3 scores): N moves in steps of 2 through 2, 4, 6.
  const p8 = await slsPrune(g, data, { budget: 0.45, m: 8, pairs: true, steps: 12, searchSteps: 8, epochSteps: 4, lambda: 1, scoreLr: 0.05, batch: 1, patch: 12, runtime: rt });
  const n8 = [...p8.n.values()];
  t.ok(p8.ratio <= 0.45 + 1e-9 && n8.every((v) => v % 2 === 0 && v >= 2 && v <= 8) && n8.some((v) => v < 8),
    `pairs, M = 8: N ∈ {2, 4, 6, 8} (${n8.join(",")}), ratio ${p8.ratio.toFixed(3)} ≤ 0.45`);
  t.ok(convs(p8.graph).filter((c) => c.sparsity).every((c) => c.sparsity!.pairs === true && c.sparsity!.m === 8 && satisfiesNm(c.weights, c.k, c.cin, c.cout, c.sparsity!)),
    "pairs, M = 8: every sparse conv satisfies its N:8p");
  // Fixed-N fine-tuning (the one-shot + fine-tune baseline).
  const f = await slsPrune(g, data, { m: 4, fixedN: 2, steps: 3, budget: 1, batch: 1, patch: 12, runtime: rt });
  t.ok([...f.n.values()].every((v) => v === 2), "fixedN: N = 2 everywhere");
  try {
    await slsPrune(g, data, { budget: 0, runtime: rt });
    t.fail("budget 0 accepted");
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === "E_ARGUMENT", "budget 0 → E_ARGUMENT");
  }
});

test("filter surgery: channel classes through add/concat; pruned graph = original with the channels zeroed", async (t) => {
  const g = toyRdn(21);
  const a = analyzeChannels(g);
  const keys = a.groups.map((gr) => gr.key).sort();
  // The residual stream starts at the head here, so head, both LFFs and GFF (global add) are one group.
  t.ok(keys.includes("F_m1+GFF_1+LFF_1+LFF_2"), `head, LFFs and GFF tied through the adds (${keys.join(" | ")})`);
  t.ok(keys.includes("F_1_1") && keys.includes("F_2_1") && keys.includes("UPN"), "the dense convs and the upsampler's first conv are free");
  t.notOk(keys.some((k) => k.includes("UPS")), "the conv before depth-to-space is fixed");
  const rng = new Rng(4);
  let worst = 0;
  for (let it = 0; it < 12; it++) {
    const removed = new Uint8Array(a.classes.length);
    for (const gr of a.groups) {
      const pick = gr.classes.filter(() => rng.next() < 0.4);
      if (pick.length === gr.classes.length) pick.pop();
      for (const c of pick) removed[c] = 1;
    }
    const p = pruneChannels(g, a, removed, null);
    // Zero the removed classes' producer filters (weights and bias) in the original.
    const z: Graph = { ...g, nodes: g.nodes.map((n) => {
      if (n.op !== "conv2d") return n;
      const w = Float32Array.from(n.weights), b = n.bias ? Float32Array.from(n.bias) : null;
      for (let o = 0; o < n.cout; o++) {
        if (!removed[a.classOf[n.id][o]]) continue;
        for (let i = o; i < w.length; i += n.cout) w[i] = 0;
        if (b) b[o] = 0;
      }
      return { ...n, weights: w, bias: b } as Node;
    }) };
    const x = rng.fillF32(new Float32Array(6 * 5 * 3), 0, 1);
    const ya = evalGraph(p, x, 6, 5), yb = evalGraph(z, x, 6, 5);
    for (let i = 0; i < ya.data.length; i++) worst = Math.max(worst, Math.abs(ya.data[i] - yb.data[i]));
    if (convs(p).some((n) => n.name.startsWith("LFF") && n.cout !== convs(p).find((m) => m.name === "LFF_1")!.cout)) t.fail("tied LFF outputs differ in width");
  }
  t.ok(worst < 1e-4, `12 random prunings: max |pruned − zeroed| = ${worst.toExponential(2)}`);
  // Pruning only one side of an add is what the classes prevent: zeroing LFF_1's channel alone
  // (not LFF_2 / F_m1… in its class) changes the output differently from removing the class.
  const rt = await testRuntime();
  const data = images(new Rng(3), 2, 16, 16, 2);
  const stats = convInputStats(g, data, { samples: 4, patch: 16, runtime: rt });
  for (const criterion of ["l1", "data", "absmean"] as const) {
    const r = filterPrune(g, { criterion, budget: 0.5, stats });
    t.ok(r.macs.pruned <= 0.5 * r.macs.dense + 1e-9, `${criterion}: MACs ${(r.macs.pruned / r.macs.dense).toFixed(3)} ≤ 0.5`);
    const y = evalGraph(r.graph, new Float32Array(4 * 4 * 3).fill(0.5), 4, 4);
    t.ok(y.data.every(Number.isFinite), `${criterion}: pruned graph runs`);
  }
  // Bias compensation: the mean of a removed channel moves into the consumers' bias. On a
  // constant input (every channel equals its mean) interior pixels are then unchanged.
  const one = filterPrune(g, { criterion: "data", budget: 0.7, stats, compensate: true });
  t.ok(one.graph.nodes.length === g.nodes.length, "same node count");
  throwsCode(t, () => filterPrune(g, { criterion: "bn", budget: 0.5 }), "E_ARGUMENT", "filter-bn without BatchNormalization");
  throwsCode(t, () => filterPrune(g, { criterion: "data", budget: 0.5 }), "E_ARGUMENT", "filter-data without statistics");
  throwsCode(t, () => filterPrune(g, { criterion: "l1", budget: 1.5 }), "E_ARGUMENT", "budget > 1");
  throwsCode(t, () => filterPrune(oneShotNm(g, { n: 2, m: 4 }), { criterion: "l1", budget: 0.5 }), "E_ARGUMENT", "N:M graph");
});

test("filter-data compensation is exact on constant inputs (interior pixels)", async (t) => {
  const rt = await testRuntime();
  const b = new GraphBuilder({ seed: 9 });
  const x = b.input(3);
  const c1 = b.conv2d(x, 6, 1, { activation: "relu", name: "c1" });
  const c2 = b.conv2d(c1, 6, 1, { activation: "relu", name: "c2" });
  const g = b.build(b.conv2d(c2, 3, 1, { name: "out" }), { name: "t", scale: 1 });
  const flat = { lr: [{ data: new Uint8Array(8 * 8 * 3).fill(128), width: 8, height: 8, channels: 3 as const }] };
  const stats = convInputStats(g, flat, { samples: 2, patch: 8, runtime: rt });
  const r = filterPrune(g, { criterion: "data", budget: 0.5, stats, compensate: true });
  t.ok(convs(r.graph).some((n) => n.cout < 6), "something was pruned");
  const v = (128 / 255) * (g.meta.inputRange[1] - g.meta.inputRange[0]) + g.meta.inputRange[0];
  const inp = new Float32Array(4 * 4 * 3).fill(v);
  const ya = evalGraph(g, inp, 4, 4), yb = evalGraph(r.graph, inp, 4, 4);
  let err = 0;
  for (let i = 0; i < ya.data.length; i++) err = Math.max(err, Math.abs(ya.data[i] - yb.data[i]));
  t.ok(err < 1e-4, `constant input: |dense − pruned| = ${err.toExponential(2)}`);
});

test("BN criterion: closed forms vs Monte Carlo, γ = 0 and γ < 0, the spec's ordering", async (t) => {
  const rng = new Rng(17);
  let bad = 0, cases = 0;
  for (const gamma of [0, 0.5, -0.5, 1, -2, 3]) {
    for (const beta of [-4, -1, -0.2, 0, 0.7, 2]) {
      const N = 40000;
      let s = 0, s2 = 0, s4 = 0, pos = 0;
      for (let i = 0; i < N; i++) {
        const a = Math.max(0, beta + gamma * rng.normal());
        s += a;
        s2 += a * a;
        s4 += a ** 4;
        if (a > 0) pos++;
      }
      const mean = s / N, ms = s2 / N, variance = Math.max(0, ms - mean * mean), prob = pos / N;
      const seSq = Math.sqrt(Math.max(0, s4 / N - ms * ms) / N) + 1e-12;
      const m = reluMoments(gamma, beta);
      const seMean = Math.sqrt(variance / N) + 1e-12, seProb = Math.sqrt(prob * (1 - prob) / N) + 1e-12;
      cases++;
      const ok = Math.abs(m.mean - mean) <= 3 * seMean + 1e-9 && Math.abs(m.prob - prob) <= 3 * seProb + 1e-9 && Math.abs(m.meanSq - ms) <= 3 * seSq + 1e-9;
      if (!ok) {
        bad++;
        t.comment(`γ ${gamma} β ${beta}: mean ${m.mean} vs ${mean} (se ${seMean}), prob ${m.prob} vs ${prob}, E[a²] ${m.meanSq} vs ${ms} (se ${seSq})`);
      }
    }
  }
  t.equal(bad, 0, `${cases} (γ, β) pairs: E[a], P(a > 0), E[a²] within 3 standard errors (Var = E[a²] − E[a]²)`);
  t.ok(Math.abs(normCdf(0) - 0.5) < 1e-7 && Math.abs(normCdf(1.96) - 0.9750021) < 1e-6, "Φ");
  t.ok(bnChannelScore(1, -4, true) < bnChannelScore(0.5, 0.5, true), "(|γ| 1, β −4) scores below (|γ| 0.5, β 0.5)");
  t.ok(bnChannelScore(-1, -4, true, "prob") < bnChannelScore(0.5, 0.5, true, "prob"), "same with P(a > 0)");
  t.equal(bnChannelScore(2, 1, false), 5, "no ReLU: E[z²] = β² + γ²");
});

test(".lowbit keeps N:M sparsity (and rejects weights that break it)", async (t) => {
  const g = oneShotNm(toyRdn(5), { n: 1, m: 4 });
  const back = loadLowbit(saveLowbit(g)) as Graph;
  const sp = convs(back).filter((n) => n.sparsity).map((n) => `${n.name}:${n.sparsity!.n}:${n.sparsity!.m}`);
  t.deepEqual(sp, convs(g).filter((n) => n.sparsity).map((n) => `${n.name}:${n.sparsity!.n}:${n.sparsity!.m}`), `round trip (${sp.length} sparse convs)`);
  t.ok(sp.length > 0, "some convs are sparse");
  const broken: Graph = { ...g, nodes: g.nodes.map((n) => (n.op === "conv2d" && n.sparsity ? { ...n, weights: Float32Array.from(n.weights, () => 0.1) } : n)) as Node[] };
  throwsCode(t, () => saveLowbit(broken), "E_ARGUMENT", "saving weights that violate the declared pattern");
  // A file whose header declares a pattern its weights break: rewrite a dense file's header.
  const dense = saveLowbit(toyRdn(5));
  const n = Number(new DataView(dense.buffer, dense.byteOffset).getBigUint64(0, true));
  const head = JSON.parse(new TextDecoder().decode(dense.subarray(8, 8 + n)));
  const doc = JSON.parse(head.__metadata__.lowbit);
  doc.graph.nodes.find((x: { name: string }) => x.name === "F_1_1").sparsity = { n: 1, m: 4 };
  head.__metadata__.lowbit = JSON.stringify(doc);
  let text = JSON.stringify(head);
  while ((8 + text.length) % 8) text += " ";
  const hb = new TextEncoder().encode(text);
  const file = new Uint8Array(8 + hb.length + dense.length - 8 - n);
  new DataView(file.buffer).setBigUint64(0, BigInt(hb.length), true);
  file.set(hb, 8);
  file.set(dense.subarray(8 + n), 8 + hb.length);
  throwsCode(t, () => loadLowbit(file), "E_MODEL_FORMAT", "loading a conv that breaks its declared N:M");
  doc.graph.nodes.find((x: { name: string }) => x.name === "F_1_1").sparsity = { n: 5, m: 4 };
});
