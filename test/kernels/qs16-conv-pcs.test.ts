import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import {
  packQs16ConvPcs, qs16ConvPcs, qs16ConvPcsRun, qs16ConvPcsScratchBytes, qs16PcsTapPairs,
  type PackedQs16ConvPcs,
} from "../../src/kernels/qs16-conv-pcs.ts";
import { qs16ConvPcsOracle, qs16ConvPcsRef, type Qs16PcsRefArgs } from "../../src/kernels/ref/qs16-conv-pcs.ts";

interface Case {
  H: number; W: number; cin: number; cout: number; k: number;
  inStride: number; outStride: number;
  input: Int16Array; weights: Int16Array;
  chScale: Float32Array; chMean: Float32Array; wscale: Float32Array; bias: Float32Array | null;
  outMin: number; outMax: number;
  kind: string;
  layer: PackedQs16ConvPcs;
}

/**
 * Activation integers of the producers named in issue 5: DAQ odd codes v = 2j − (2^b − 1), post-ReLU codes
 * j ∈ [0, 2^b − 1], DFSQ codebook integers u (|u| ≤ 2048 in 1/1024 units), or the full int16 range.
 */
function randomInput(r: Rng, n: number): { g: Int16Array; kind: string; maxAbs: number } {
  const g = new Int16Array(n);
  const kind = r.pick(["daq-odd", "daq-relu", "dfsq", "int16", "extreme"]);
  const b = r.int(2, 8), K = 2 ** b - 1;
  let maxAbs = 0;
  for (let i = 0; i < n; i++) {
    let v: number;
    if (kind === "daq-odd") v = 2 * r.int(0, K) - K;
    else if (kind === "daq-relu") v = r.int(0, K);
    else if (kind === "dfsq") v = r.int(-2048, 2048);
    else if (kind === "int16") v = r.int(-32768, 32767);
    else v = r.next() < 0.5 ? -32768 : 32767;
    g[i] = v;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  return { g, kind: kind === "daq-odd" || kind === "daq-relu" ? `${kind}${b}` : kind, maxAbs };
}

/** Weights as large as the int32 bound allows for this input (so the overflow margin is exercised). */
function randomWeights(r: Rng, n: number, k: number, maxAbsG: number): Int16Array {
  const cap = Math.min(32767, Math.floor((2 ** 31 - 1) / Math.max(1, maxAbsG) / (k * k)));
  const wmax = r.next() < 0.3 ? cap : Math.max(1, Math.min(cap, r.pick([1, 7, 127, 255, 2047, 32767])));
  const w = new Int16Array(n);
  const allMax = r.next() < 0.15;
  for (let i = 0; i < n; i++) w[i] = allMax ? (r.next() < 0.5 ? -wmax : wmax) : r.int(-wmax, wmax);
  return w;
}

function randomCase(r: Rng, o: Partial<Pick<Case, "H" | "W" | "cin" | "cout" | "k" | "inStride" | "outStride">> = {}): Case {
  const H = o.H ?? r.pick([1, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const W = o.W ?? r.pick([1, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const cin = o.cin ?? r.pick([1, 2, 3, 3, 5, 5, 8, 9, 16, 67]);
  const cout = o.cout ?? r.pick([1, 3, 5, 7, 8, 9, 12, 16, 17]);
  const k = o.k ?? r.pick([1, 3, 3, 5]);
  const inStride = o.inStride ?? cin + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const outStride = o.outStride ?? cout + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const { g: input, kind, maxAbs } = randomInput(r, (H * W - 1) * inStride + cin);
  const weights = randomWeights(r, cout * k * k * cin, k, maxAbs);
  // a_c per image: spread over decades, occasionally 0 (DAQ m = 0); μ_c ≠ 0 so the border term matters.
  const chScale = Float32Array.from({ length: cin }, () => (r.next() < 0.05 ? 0 : 2 ** r.uniform(-14, 1)));
  const chMean = Float32Array.from({ length: cin }, () => (r.next() < 0.1 ? 0 : r.uniform(-2, 2) * 2 ** r.int(-4, 4)));
  const wscale = Float32Array.from({ length: cout }, () => 2 ** r.uniform(-16, -2));
  const bias = r.next() < 0.2 ? null : Float32Array.from({ length: cout }, () => r.uniform(-1, 1));
  const clamp = r.int(0, 3);
  const outMin = clamp === 0 ? 0 : clamp === 1 ? r.uniform(-1, 0) : -Infinity;
  const outMax = clamp === 1 ? r.uniform(0, 1) : clamp === 2 ? 6 : Infinity;
  const layer = packQs16ConvPcs(weights, { cout, k, cin });
  return { H, W, cin, cout, k, inStride, outStride, input, weights, chScale, chMean, wscale, bias, outMin, outMax, kind, layer };
}

function refArgs(c: Case): Qs16PcsRefArgs {
  return { H: c.H, W: c.W, Cin: c.cin, Cout: c.cout, k: c.k, input: c.input, inStride: c.inStride,
    chScale: c.chScale, chMean: c.chMean, weights: c.weights, wscale: c.wscale, bias: c.bias, outMin: c.outMin, outMax: c.outMax };
}

function runKernel(rt: Awaited<ReturnType<typeof testRuntime>>, c: Case, out: Float32Array): Float32Array {
  return qs16ConvPcs(rt, out, c.input, c.layer, { H: c.H, W: c.W, inStride: c.inStride, chScale: c.chScale, chMean: c.chMean,
    wscale: c.wscale, bias: c.bias, outStride: c.outStride, outMin: c.outMin, outMax: c.outMax });
}

/** Bit-level comparison (distinguishes −0 from +0). */
function firstBitDiff(a: Float32Array, b: Float32Array): string {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) return `first diff at ${i}: got ${a[i]}, want ${b[i]}`;
  return a.length === b.length ? "equal" : "length differs";
}

function describe(c: Case): string {
  return `${c.H}×${c.W} ${c.cin}→${c.cout} k${c.k} ${c.kind} strides ${c.inStride}/${c.outStride} clamp [${c.outMin}, ${c.outMax}]`;
}

/**
 * Oracle check: |kernel − f64 conv of x̂ with ŵ| ≤ (2·cin + 8)·2^−24·M per output, M = |b| + Σ|ŵ|(|a·g| + |μ|).
 * (Recursive f32 summation of cin terms costs ≤ (cin−1)·u·Σ|terms|, each term ≤ 2u relative for the int→f32
 * conversion and the product, twice over (the a·P and μ·Z sums), + 3 combine ops; u = 2^−24.)
 */
function oracleViolations(c: Case, got: Float32Array): { bad: number; worst: number; msg: string } {
  const { y, mag } = qs16ConvPcsOracle(refArgs(c));
  const tolFactor = (2 * c.cin + 8) * 2 ** -24;
  let bad = 0, worst = 0, msg = "";
  for (let p = 0; p < c.H * c.W; p++) {
    for (let o = 0; o < c.cout; o++) {
      const i = p * c.cout + o;
      const err = Math.abs(got[p * c.outStride + o] - y[i]);
      const tol = tolFactor * mag[i] + 1e-30;
      worst = Math.max(worst, err / tol);
      if (err > tol && bad++ === 0) msg = `pixel ${p} o ${o}: got ${got[p * c.outStride + o]}, oracle ${y[i]}, tol ${tol}`;
    }
  }
  return { bad, worst, msg };
}

test("qs16 pcs conv: tap pairs cover every tap exactly once, ⌈k²/2⌉ pairs", async (t) => {
  for (const k of [1, 3, 5, 7, 9]) {
    const pairs = qs16PcsTapPairs(k);
    const seen = new Array(k * k).fill(0);
    for (const [a, b] of pairs) {
      seen[a]++;
      if (b >= 0) seen[b]++;
    }
    t.ok(seen.every((v) => v === 1) && pairs.length === (k * k + 1) >> 1, `k = ${k}: ${pairs.length} pairs`);
    t.deepEqual(pairs.filter(([, b]) => b < 0).map(([a]) => a), [k * k - 1], `k = ${k}: only the last tap is unpaired`);
  }
});

test("qs16 pcs conv: bit-exact vs the TS reference and within tolerance of the f64 oracle (random shapes)", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(20250105);
  const N = 500;
  let bad = 0, oracleBad = 0, worst = 0;
  const kinds = new Map<string, number>();
  for (let i = 0; i < N; i++) {
    const c = randomCase(r);
    const len = (c.H * c.W - 1) * c.outStride + c.cout;
    const got = new Float32Array(len).fill(-77.5), want = new Float32Array(len).fill(-77.5); // slice neighbours stay
    runKernel(rt, c, got);
    qs16ConvPcsRef(want, c.outStride, refArgs(c));
    const d = firstBitDiff(got, want);
    if (d !== "equal" && bad++ < 5) t.fail(`${describe(c)}: ${d}`);
    const o = oracleViolations(c, got);
    worst = Math.max(worst, o.worst);
    if (o.bad && oracleBad++ < 5) t.fail(`${describe(c)} vs oracle: ${o.msg}`);
    const kk = c.kind.startsWith("daq") ? c.kind.replace(/\d+$/, "") : c.kind;
    kinds.set(kk, (kinds.get(kk) ?? 0) + 1);
  }
  t.equal(bad, 0, `${N} random cases bit-exact vs the reference (${JSON.stringify(Object.fromEntries(kinds))})`);
  t.equal(oracleBad, 0, `${N} random cases within (2·cin + 8)·2^−24·M of the f64 oracle (worst ${worst.toFixed(3)} of the tolerance)`);
});

test("qs16 pcs conv: x̂ is zero-padded (not μ): constant image, border term exact", async (t) => {
  const rt = await testRuntime();
  for (const [H, W, k] of [[5, 6, 3], [1, 1, 3], [2, 3, 5], [7, 7, 5], [4, 9, 1], [3, 2, 7]] as const) {
    const cin = 3, cout = 9, p = (k - 1) >> 1;
    const layer = packQs16ConvPcs(new Int16Array(cout * k * k * cin).fill(1), { cout, k, cin });
    // g = 0, a = 1, μ = 1: x̂ = 1 inside, 0 outside → y = #in-bounds taps · cin (small integers: exact in f32).
    const out = qs16ConvPcs(rt, new Float32Array(H * W * cout), new Int16Array(H * W * cin), layer, {
      H, W, chScale: new Float32Array(cin).fill(1), chMean: new Float32Array(cin).fill(1), wscale: new Float32Array(cout).fill(1),
    });
    let ok = true;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const nh = Math.min(H - 1, y + p) - Math.max(0, y - p) + 1, nw = Math.min(W - 1, x + p) - Math.max(0, x - p) + 1;
        for (let o = 0; o < cout; o++) ok &&= out[(y * W + x) * cout + o] === nh * nw * cin;
      }
    }
    t.ok(ok, `${H}×${W} k${k}: y = #in-bounds taps · cin at every pixel (corner ${out[0]})`);
  }
});

test("qs16 pcs conv: real layer shapes (several bands, cout tails, 1×N / N×1 images)", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(77);
  const shapes: Array<[number, number, number, number, number]> = [
    // H, W, cin, cout, k
    [50, 128, 64, 64, 3], // several bands
    [9, 100, 67, 13, 5],
    [6, 33, 200, 17, 1],
    [12, 17, 3, 64, 3],
    [1, 40, 64, 64, 3],
    [40, 1, 64, 64, 5],
    [3, 129, 5, 5, 5],
    [30, 70, 96, 9, 3], // bands of a few rows
  ];
  for (const [H, W, cin, cout, k] of shapes) {
    const c = randomCase(r, { H, W, cin, cout, k, inStride: cin + 1, outStride: cout + 2 });
    const len = (H * W - 1) * c.outStride + cout;
    const got = runKernel(rt, c, new Float32Array(len)), want = qs16ConvPcsRef(new Float32Array(len), c.outStride, refArgs(c));
    t.equal(firstBitDiff(got, want), "equal", `${describe(c)} bit-exact`);
    const o = oracleViolations(c, got);
    t.equal(o.bad, 0, `${describe(c)} within the oracle tolerance (worst ${o.worst.toFixed(3)}) ${o.msg}`);
  }
});

test("qs16 pcs conv: worst-case int32 partial sums (pair sums at 2·32768·32767, totals near 2^31) are exact", async (t) => {
  const rt = await testRuntime();
  const H = 3, W = 5, cin = 5, cout = 9;
  const cases: Array<{ k: number; g: number; w: (t: number) => number; what: string }> = [
    { k: 1, g: -32768, w: () => 32767, what: "k1 g = −32768, w = 32767" },
    { k: 3, g: -32768, w: (t) => (t === 0 || t === 1 ? -32767 : 0), what: "k3: one pair at 2·32768·32767" },
    { k: 3, g: 7281, w: () => 32767, what: "k3 all taps 32767 × 7281 (≈ 2^31 − 2.5e5)" },
    { k: 5, g: -2621, w: (t) => (t % 2 ? 32767 : -32767), what: "k5 ±32767 × −2621" },
  ];
  for (const { k, g, w, what } of cases) {
    const weights = new Int16Array(cout * k * k * cin);
    for (let o = 0; o < cout; o++) for (let tt = 0; tt < k * k; tt++) for (let c = 0; c < cin; c++) weights[(o * k * k + tt) * cin + c] = w(tt);
    const layer = packQs16ConvPcs(weights, { cout, k, cin });
    const input = new Int16Array(H * W * cin).fill(g);
    const c: Case = { H, W, cin, cout, k, inStride: cin, outStride: cout, input, weights, layer, kind: what,
      chScale: Float32Array.from({ length: cin }, (_, i) => 2 ** -(20 + i)), chMean: Float32Array.from({ length: cin }, (_, i) => i - 2),
      wscale: new Float32Array(cout).fill(1), bias: null, outMin: -Infinity, outMax: Infinity };
    const got = runKernel(rt, c, new Float32Array(H * W * cout)), want = qs16ConvPcsRef(new Float32Array(H * W * cout), cout, refArgs(c));
    t.equal(firstBitDiff(got, want), "equal", what);
    t.equal(oracleViolations(c, got).bad, 0, `${what}: oracle`);
  }
});

test("qs16 pcs conv: low-level call on arena offsets equals the typed-array wrapper", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(8);
  const c = randomCase(r, { H: 7, W: 9, cin: 20, cout: 11, k: 3, inStride: 24, outStride: 16 });
  const want = runKernel(rt, c, new Float32Array(7 * 9 * 16));
  const ar = rt.arena, m = ar.mark();
  const pad = (v: Float32Array | null) => Float32Array.from({ length: c.layer.coutPadded }, (_, i) => (v && i < 11 ? v[i] : 0));
  const call = {
    layer: c.layer, packed: ar.put(c.layer.bytes), H: 7, W: 9, input: ar.put(c.input), inStride: 24, maxAbsInput: 32768,
    chScale: ar.put(c.chScale), chMean: ar.put(c.chMean), wscale: ar.put(pad(c.wscale)), bias: ar.put(pad(c.bias)),
    output: ar.alloc(7 * 9 * 16 * 4), outStride: 16, outMin: c.outMin, outMax: c.outMax, scratch: ar.alloc(qs16ConvPcsScratchBytes(7, 9, 20, 11, 3)),
  };
  ar.f32.fill(0, call.output / 4, call.output / 4 + 7 * 9 * 16);
  if (c.layer.maxTapAbsSum * 32768 < 2 ** 31) {
    qs16ConvPcsRun(rt, call);
  } else {
    qs16ConvPcsRun(rt, { ...call, maxAbsInput: Math.floor((2 ** 31 - 1) / c.layer.maxTapAbsSum) });
  }
  const got = ar.f32.slice(call.output / 4, call.output / 4 + 7 * 9 * 16);
  ar.release(m);
  t.equal(firstBitDiff(got, want), "equal", "same bits");
});

test("qs16 pcs conv: bad arguments throw LowbitError codes before any WASM call", async (t) => {
  const rt = await testRuntime();
  const cin = 4, cout = 8, k = 3, H = 4, W = 4;
  const layer = packQs16ConvPcs(new Int16Array(cout * k * k * cin).fill(3), { cout, k, cin });
  const input = new Int16Array(H * W * cin).fill(5);
  const a = { H, W, chScale: new Float32Array(cin).fill(0.1), chMean: new Float32Array(cin), wscale: new Float32Array(cout).fill(0.01) };
  const out = new Float32Array(H * W * cout);
  const code = (f: () => unknown, want: string, what: string) => {
    try {
      f();
      t.fail(`${what}: did not throw`);
    } catch (e) {
      t.ok(e instanceof LowbitError && e.code === want, `${what} → ${want} (${(e as Error).message})`);
    }
  };
  const w = new Int16Array(cout * k * k * cin);
  code(() => packQs16ConvPcs(w, { cout, k: 2, cin }), "E_ARGUMENT", "even k");
  code(() => packQs16ConvPcs(w, { cout, k: 33, cin }), "E_ARGUMENT", "k > 31");
  code(() => packQs16ConvPcs(w, { cout, k, cin: 5 }), "E_SHAPE", "weights length");
  code(() => packQs16ConvPcs(w, { cout: 0, k, cin }), "E_SHAPE", "cout 0");
  code(() => packQs16ConvPcs(new Int8Array(w.length) as unknown as Int16Array, { cout, k, cin }), "E_ARGUMENT", "Int8Array weights");
  code(() => packQs16ConvPcs(new Int16Array(w.length).fill(-32768), { cout, k, cin }), "E_RANGE", "weight −32768");
  code(() => qs16ConvPcs(rt, out.subarray(1), input, layer, a), "E_SHAPE", "output too short");
  code(() => qs16ConvPcs(rt, out, input.subarray(1), layer, a), "E_SHAPE", "input too short");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, inStride: 3 }), "E_SHAPE", "inStride < cin");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, outStride: 7 }), "E_SHAPE", "outStride < cout");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, H: 0 }), "E_SHAPE", "H = 0");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, W: 1.5 }), "E_SHAPE", "W not an integer");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, chScale: new Float32Array(3) }), "E_SHAPE", "chScale length");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, chMean: new Float32Array(cin).fill(NaN) }), "E_RANGE", "NaN mean");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, chScale: new Float32Array(cin).fill(Infinity) }), "E_RANGE", "infinite scale");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, wscale: new Float32Array(7) }), "E_SHAPE", "wscale length");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, bias: new Float32Array(cout).fill(-Infinity) }), "E_RANGE", "infinite bias");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, outMin: 1, outMax: 0 }), "E_RANGE", "outMin > outMax");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, outMin: NaN }), "E_RANGE", "NaN clamp");
  code(() => qs16ConvPcs(rt, out, input, layer, { ...a, maxAbsInput: 4 }), "E_RANGE", "data above the declared maxAbsInput");
  code(() => qs16ConvPcs(rt, new Float64Array(out.length) as unknown as Float32Array, input, layer, a), "E_ARGUMENT", "Float64Array output");
  code(() => qs16ConvPcs(rt, out, new Uint16Array(input.length) as unknown as Int16Array, layer, a), "E_ARGUMENT", "Uint16Array input");
  code(() => qs16ConvPcs(rt, out, input, { ...layer, bytes: null } as unknown as PackedQs16ConvPcs, a), "E_ARGUMENT", "not a packed layer");
  // Overflow proof: 9 taps of 32767 with |g| ≤ 7282 is the limit (7282·9·32767 = 2^31 − 2; 7283 overflows).
  const big = packQs16ConvPcs(new Int16Array(1 * 9 * 1).fill(32767), { cout: 1, k: 3, cin: 1 });
  const one = { H: 2, W: 2, chScale: new Float32Array(1).fill(1), chMean: new Float32Array(1), wscale: new Float32Array(1).fill(1) };
  code(() => qs16ConvPcs(rt, new Float32Array(4), new Int16Array(4).fill(7283), big, one), "E_RANGE", "int32 partial sum overflow (data)");
  code(() => qs16ConvPcs(rt, new Float32Array(4), new Int16Array(4), big, { ...one, maxAbsInput: 7283 }), "E_RANGE", "int32 partial sum overflow (declared bound)");
  t.doesNotThrow(() => qs16ConvPcs(rt, new Float32Array(4), new Int16Array(4).fill(-7282), big, one), "7282 is provably safe");
  const base = { layer, packed: 0, H, W, input: 0, inStride: cin, maxAbsInput: 5, chScale: 0, chMean: 0, wscale: 0, bias: 0, output: 0, outStride: cout, scratch: 0 };
  code(() => qs16ConvPcsRun(rt, { ...base, maxAbsInput: 40000 }), "E_RANGE", "Run: maxAbsInput > 32768");
  code(() => qs16ConvPcsRun(rt, { ...base, scratch: -16 }), "E_ARGUMENT", "Run: negative offset");
  code(() => qs16ConvPcsRun(rt, { ...base, outStride: 4 }), "E_SHAPE", "Run: outStride < cout");
});
