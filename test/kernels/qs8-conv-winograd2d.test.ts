// The exact integer Winograd F(2×2,3×3) int8 convs (assembly/conv/qs8-qc8w-conv{3x3,5x5}-winograd2d-nhwc.ts): bit-exact
// against the direct reference on random shapes, odd sizes (tile tails), 1×1 images, wide channel counts, extreme
// codes at the int32 boundary of its range condition, the fallback beyond it, and whole-model plans.
import test from "tape";
import { testRuntime, testBackend } from "../util/runtime.ts";
import { Rng } from "../util/rng.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import {
  packQs8Qc8wConv, packQs8Qc4wConv, qs8Conv, qs8ConvAcc32, qs8ConvPath, WINO2D_MIN_CIN,
  type PackedQs8Conv, type QActivation, type QConvPathOptions, type QOutput,
} from "../../src/kernels/qs8-conv.ts";
import { qconvAcc32Ref, qconvRef, type QConvRefArgs } from "../../src/kernels/ref/qs8-conv.ts";
import { winograd2dAcc32Ref, winograd2dInputRef, winograd2dWeightRef } from "../../src/kernels/ref/qs8-conv-winograd2d.ts";
import { packInt4 } from "../../src/kernels/requant.ts";
import { loadModel } from "../../src/models/registry.ts";
import { calibrate } from "../../src/quant/calibrate.ts";
import { quantizeModel } from "../../src/quant/quantize-model.ts";
import { Q8Plan } from "../../src/graph/compile-q8.ts";
import { evalCrop } from "../util/eval-data.ts";

interface Case {
  H: number; W: number; cin: number; cout: number; k: number;
  act: QActivation; inStride: number; outStride: number;
  weights: Int8Array; bias: Int32Array; input: Uint8Array | Int8Array; layer: PackedQs8Conv; wf: "qc8w" | "qc4w";
}

function codeRange(bits: number, signed: boolean): [number, number] {
  return signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

/** A random 3×3 (or `k`) layer + input; `extreme` puts every code and weight at the far ends (largest |x − z|·|w|). */
function randomCase(r: Rng, o: { H?: number; W?: number; cin?: number; cout?: number; k?: number; wf?: "qc8w" | "qc4w"; bits?: number; extreme?: boolean } = {}): Case {
  const k = o.k ?? 3;
  const H = o.H ?? r.pick([1, 1, 2, 3, 4, 5, 6, 7, 9, 12]);
  const W = o.W ?? r.pick([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 16, 17]);
  const cin = o.cin ?? r.pick([8, 9, 12, 16, 17, 24, 33, 48, 64]);
  const cout = o.cout ?? r.pick([1, 3, 5, 8, 12, 17, 48, 64]);
  const wf = o.wf ?? (r.next() < 0.7 ? "qc8w" : "qc4w");
  const bits = o.bits ?? 8;
  const signed = r.next() < 0.4;
  const [lo, hi] = codeRange(bits, signed);
  const zeroPoint = o.extreme ? (r.next() < 0.5 ? lo : hi) : r.pick([lo, hi, signed ? 0 : 2 ** (bits - 1), r.int(lo, hi)]);
  const act = { bits, signed, zeroPoint };
  const inStride = cin + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const outStride = cout + (r.next() < 0.3 ? r.int(1, 5) : 0);
  const [wlo, whi] = wf === "qc8w" ? [-128, 127] : [-8, 7];
  const weights = new Int8Array(cout * k * k * cin);
  for (let i = 0; i < weights.length; i++) weights[i] = o.extreme ? (r.next() < 0.5 ? wlo : whi) : r.int(wlo, whi);
  const maxDx = Math.max(zeroPoint - lo, hi - zeroPoint);
  const bias = new Int32Array(cout);
  for (let c = 0; c < cout; c++) {
    let abs = 0;
    for (let i = c * k * k * cin; i < (c + 1) * k * k * cin; i++) abs += Math.abs(weights[i]);
    const room = Math.min(2 ** 31 - 1 - maxDx * abs, 1e9);
    bias[c] = r.next() < 0.2 ? (r.next() < 0.5 ? -room : room) : r.int(-5000, 5000);
  }
  const n = (H * W - 1) * inStride + cin;
  const input = signed ? new Int8Array(n) : new Uint8Array(n);
  const far = zeroPoint - lo > hi - zeroPoint ? lo : hi;
  for (let i = 0; i < n; i++) input[i] = o.extreme ? (r.next() < 0.9 ? far : r.int(lo, hi)) : r.int(lo, hi);
  const args = { cout, k, cin, bias };
  const layer = wf === "qc8w" ? packQs8Qc8wConv(weights, args) : packQs8Qc4wConv(packInt4(new Uint8Array((weights.length + 1) >> 1), weights), args);
  return { H, W, cin, cout, k, act, inStride, outStride, weights, bias, input, layer, wf };
}

const refArgs = (c: Case): QConvRefArgs => ({ H: c.H, W: c.W, Cin: c.cin, Cout: c.cout, k: c.k, input: c.input, inStride: c.inStride,
  inZp: c.act.zeroPoint, weights: c.weights, bias: c.bias });

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): string {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `first diff at ${i}: got ${a[i]}, want ${b[i]}`;
  return a.length === b.length ? "equal" : "length differs";
}

const describe = (c: Case) => `${c.wf} k${c.k} ${c.H}×${c.W} ${c.cin}→${c.cout} act ${c.act.bits}b ${c.act.signed ? "s" : "u"} zp ${c.act.zeroPoint} strides ${c.inStride}/${c.outStride}`;

function randomOutput(r: Rng): QOutput {
  const signed = r.next() < 0.5;
  const [lo, hi] = codeRange(8, signed);
  const zeroPoint = r.pick([lo, hi, signed ? 0 : 128, r.int(lo, hi)]);
  return r.next() < 0.4 ? { signed, zeroPoint, qmin: zeroPoint, qmax: hi } : { signed, zeroPoint, qmin: lo, qmax: hi };
}

const PATHS: Array<[string, QConvPathOptions]> = [["2-D", {}], ["1-D", { winograd2d: false }], ["direct", { winograd: false }]];

test("qs8 conv F(2×2,3×3): 3×3 and 5×5 bit-exact vs the reference and vs the 1-D / direct paths (random shapes, tails, formats)", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(31337);
  let bad = 0, wino2d = 0;
  const N = 240;
  for (let i = 0; i < N; i++) {
    // Mostly 8-bit activations (the path W8A8 takes on both builds); every 5th case 4–7-bit codes (relaxed: i7 path).
    const c = randomCase(r, { k: i % 3 === 2 ? 5 : 3, bits: i % 5 === 4 ? r.int(4, 7) : 8, extreme: i % 7 === 3 });
    const q = randomOutput(r);
    const mult = new Float32Array(c.cout).map(() => 2 ** r.uniform(-14, 0));
    const len = (c.H * c.W - 1) * c.outStride + c.cout;
    const want = qconvRef(q.signed ? new Int8Array(len).fill(-9) : new Uint8Array(len).fill(9), c.outStride, refArgs(c), mult, q.zeroPoint, q.qmin, q.qmax);
    const want32 = qconvAcc32Ref(new Int32Array(len).fill(-9), c.outStride, refArgs(c));
    if (qs8ConvPath(rt, c.layer, c.act) === "i16-wino2d") wino2d++;
    for (const [name, paths] of PATHS) {
      const a = { H: c.H, W: c.W, input: c.input, inStride: c.inStride, act: c.act, outStride: c.outStride, paths };
      const got = qs8Conv(rt, q.signed ? new Int8Array(len).fill(-9) : new Uint8Array(len).fill(9), c.layer, a, mult, q);
      const got32 = qs8ConvAcc32(rt, new Int32Array(len).fill(-9), c.layer, a);
      const d = firstDiff(got, want), d32 = firstDiff(got32, want32);
      if ((d !== "equal" || d32 !== "equal") && bad++ < 5) t.fail(`${describe(c)} [${name}: ${qs8ConvPath(rt, c.layer, c.act, paths)}]: ${d} / acc32 ${d32}`);
    }
  }
  t.equal(bad, 0, `${N} cases × 3 path settings, requantized and int32, bit-exact`);
  t.ok(wino2d >= (testBackend() === "relaxed" ? 0.7 : 0.95) * N, `${wino2d} of ${N} on the F(2×2,3×3) path by default`);
});

test("qs8 conv F(2×2,3×3): every small image (1..9 × 1..19), channel counts 3..192, 3×3 and 5×5", async (t) => {
  const rt = await testRuntime();
  const r = new Rng(77);
  let bad = 0, n = 0;
  for (let H = 1; H <= 9; H += r.int(1, 2)) {
    for (let W = 1; W <= 19; W++) {
      const c = randomCase(r, { H, W, k: (H + W) % 2 ? 5 : 3, cin: r.pick([8, 12, 48, 64, 192]), cout: r.pick([3, 5, 12, 48, 64, 192]) });
      const len = (H * W - 1) * c.outStride + c.cout;
      const a = { H, W, input: c.input, inStride: c.inStride, act: c.act, outStride: c.outStride };
      const got = qs8ConvAcc32(rt, new Int32Array(len).fill(3), c.layer, a);
      const want = qconvAcc32Ref(new Int32Array(len).fill(3), c.outStride, refArgs(c));
      n++;
      const d = firstDiff(got, want);
      if ((d !== "equal" || qs8ConvPath(rt, c.layer, c.act) !== "i16-wino2d") && bad++ < 5) t.fail(`${describe(c)} [${qs8ConvPath(rt, c.layer, c.act)}]: ${d}`);
    }
  }
  t.equal(bad, 0, `${n} images, all on the F(2×2,3×3) path, bit-exact`);
});

test("qs8 conv F(2×2,3×3): the kernel itself also handles < 8 input channels (scalar transform)", async (t) => {
  // The wrapper sends such layers to the direct loop (WINO2D_MIN_CIN, a speed choice); the export is still exact.
  const rt = await testRuntime();
  const r = new Rng(5);
  type Fn = (i: number, is: number, H: number, W: number, C: number, zp: number, s: number, p: number, Co: number, o: number, os: number, sc: number) => void;
  type K = { qs8_qc8w_conv3x3_winograd2d_nhwc_acc32: Fn; qs8_qc8w_conv5x5_winograd2d_nhwc_acc32: Fn };
  const k = rt.kernels<K>();
  let bad = 0;
  for (const cin of [1, 2, 3, 5, 6, 7]) {
    for (const [H, W] of [[1, 1], [3, 5], [4, 9], [7, 2]]) {
      const c = randomCase(r, { H, W, cin, k: cin % 2 ? 3 : 5, cout: r.pick([3, 8, 13]), wf: "qc8w" });
      t.equal(qs8ConvPath(rt, c.layer, c.act) === "i16-wino2d", cin >= WINO2D_MIN_CIN, `cin ${cin}: not selected below WINO2D_MIN_CIN`);
      const ar = rt.arena, m = ar.mark();
      const packed = ar.put(c.layer.bytes), input = ar.put(c.input);
      const len = (H * W - 1) * c.outStride + c.cout;
      const output = ar.put(new Int32Array(len).fill(11));
      const Tc = Math.max((W + 1) >> 1, 4) + 1, px = ((cin + 1) & ~1) * 2;
      const scratch = ar.alloc(32 * Tc * px + 6 * (2 * Tc + 2) * px);
      (c.k === 3 ? k.qs8_qc8w_conv3x3_winograd2d_nhwc_acc32 : k.qs8_qc8w_conv5x5_winograd2d_nhwc_acc32)(input, c.inStride, H, W, cin, c.act.zeroPoint, c.act.signed ? 1 : 0, packed, c.cout, output, c.outStride, scratch);
      const got = new Int32Array(len);
      ar.read(output, got);
      ar.release(m);
      const d = firstDiff(got, qconvAcc32Ref(new Int32Array(len).fill(11), c.outStride, refArgs(c)));
      if (d !== "equal" && bad++ < 5) t.fail(`${describe(c)}: ${d}`);
    }
  }
  t.equal(bad, 0, "cin 1..7 exact through the export");
});

test("qs8 conv F(2×2,3×3): the 4·y range condition at its int32 boundary, and the fallback beyond it", async (t) => {
  const rt = await testRuntime();
  // All weights −128, codes 255 at zero point 0: |y| = 255·128·9·cin. 4·|y| < 2^31 up to cin = 1827.
  const act = { bits: 8, signed: false, zeroPoint: 0 };
  // 5×5: |y| = 255·128·25·cin, 4·|y| < 2^31 up to cin = 657.
  for (const [k, cin, path] of [[3, 1827, "i16-wino2d"], [3, 1828, "i16-wino"], [3, 3656, "i16"], [5, 657, "i16-wino2d"], [5, 658, "i16-wino"]] as const) {
    const cout = 9, H = 3, W = 5, kk = k * k;
    const weights = new Int8Array(cout * kk * cin).fill(-128);
    for (let o = 1; o < cout; o += 2) weights.fill(127, o * kk * cin, (o + 1) * kk * cin); // odd channels: +127 (max positive)
    const layer = packQs8Qc8wConv(weights, { cout, k, cin });
    const input = new Uint8Array(H * W * cin).fill(255);
    t.equal(qs8ConvPath(rt, layer, act), path, `${k}×${k}, cin ${cin}: ${path}`);
    const a: QConvRefArgs = { H, W, Cin: cin, Cout: cout, k, input, inStride: cin, inZp: 0, weights, bias: null };
    const got = qs8ConvAcc32(rt, new Int32Array(H * W * cout), layer, { H, W, input, act });
    const want = qconvAcc32Ref(new Int32Array(H * W * cout), cout, a);
    t.equal(firstDiff(got, want), "equal", `${k}×${k}, cin ${cin}: exact (centre accumulator ${want[(1 * W + 2) * cout]})`);
    if (cin === 1827) t.equal(firstDiff(winograd2dAcc32Ref(new Int32Array(H * W * cout), cout, a), want), "equal", "the TS model of the wrapping arithmetic agrees at the boundary");
    if (cin === 1828) t.notEqual(firstDiff(winograd2dAcc32Ref(new Int32Array(H * W * cout), cout, a), want), "equal", "…and one channel beyond it 4·y wraps: the condition is needed");
  }
});

test("qs8 conv F(2×2,3×3): the TS model of the transforms equals the direct reference", async (t) => {
  const r = new Rng(404);
  // Transform identities on random integers: Aᵀ[(U ⊙ V)]A = 4·(2×2 correlation of d with g).
  let bad = 0;
  for (let i = 0; i < 200; i++) {
    const d = Array.from({ length: 16 }, () => r.int(-255, 255));
    const g = Array.from({ length: 9 }, () => r.int(-128, 127));
    const U = winograd2dWeightRef(g, 1, 0, 0), V = winograd2dInputRef(d);
    if (!U.every((u) => Math.abs(u) <= 9 * 128) || !V.every((v) => Math.abs(v) <= 4 * 255)) bad++;
    const M = U.map((u, j) => u * V[j]);
    const AT = [[1, 1, 1, 0], [0, 1, -1, -1]];
    for (let y = 0; y < 2; y++) {
      for (let x = 0; x < 2; x++) {
        let Y = 0, direct = 0;
        for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) Y += AT[y][a] * AT[x][b] * M[a * 4 + b];
        for (let kh = 0; kh < 3; kh++) for (let kw = 0; kw < 3; kw++) direct += d[(y + kh) * 4 + x + kw] * g[kh * 3 + kw];
        if (Y !== 4 * direct) bad++;
      }
    }
  }
  t.equal(bad, 0, "200 random tiles: |U| ≤ 9·128, |V| ≤ 4·255, Aᵀ(U⊙V)A = 4·y");
  let badConv = 0;
  for (let i = 0; i < 40; i++) {
    const c = randomCase(r, { cin: r.pick([1, 3, 8, 12]), cout: r.pick([1, 3, 5]), extreme: i % 4 === 0 });
    const len = (c.H * c.W - 1) * c.outStride + c.cout;
    const d = firstDiff(winograd2dAcc32Ref(new Int32Array(len), c.outStride, refArgs(c)), qconvAcc32Ref(new Int32Array(len), c.outStride, refArgs(c)));
    if (d !== "equal" && badConv++ < 3) t.fail(`${describe(c)}: ${d}`);
  }
  t.equal(badConv, 0, "40 random layers: the wrapping Winograd model equals the direct sums");
});

test("qs8 conv: bad path options throw E_ARGUMENT", async (t) => {
  const rt = await testRuntime();
  const c = randomCase(new Rng(1), { H: 2, W: 2, cin: 8, cout: 3 });
  const a = { H: 2, W: 2, input: c.input, inStride: c.inStride, act: c.act };
  for (const paths of [null, 5, { winograd: "yes" }, { winograd2d: 1 }]) {
    try {
      qs8ConvAcc32(rt, new Int32Array(4 * c.outStride), c.layer, { ...a, outStride: c.outStride, paths: paths as unknown as QConvPathOptions });
      t.fail(`paths ${JSON.stringify(paths)} accepted`);
    } catch (e) {
      t.ok(e instanceof LowbitError && e.code === "E_ARGUMENT", `paths ${JSON.stringify(paths)} → E_ARGUMENT`);
    }
  }
});

test("qs8 conv F(2×2,3×3): a W8A8 esrgan-medium-x2 plan gives the same output on every conv path", async (t) => {
  const rt = await testRuntime();
  const g = await loadModel("esrgan-medium-x2");
  const crop = (name: string, x0: number, y0: number, w: number, h: number) => evalCrop("lr_x2", name, x0, y0, w, h);
  const cal = await calibrate(g, [crop("aero1", 20, 20, 48, 48), crop("building", 100, 60, 48, 48)], { runtime: rt });
  const qm = quantizeModel(cal, { bits: "w8a8", method: "percentile" });
  const img = crop("butterfly", 30, 20, 37, 29); // odd sizes: tile tails in both directions
  const outputs: Float32Array[] = [];
  for (const [name, convPaths] of PATHS) {
    const plan = new Q8Plan(rt, qm, img.width, img.height, { convPaths });
    const kernels = Object.values(plan.info.convKernels);
    const n2d = kernels.filter((k) => k === "i16-wino2d").length;
    if (name === "2-D") t.ok(n2d >= 13, `default plan: ${n2d} of ${kernels.length} convs on F(2×2,3×3) (${[...new Set(kernels)].join(", ")})`);
    else t.equal(n2d, 0, `${name} plan: none on F(2×2,3×3)`);
    const x = plan.inputView(img.width, img.height);
    for (let i = 0; i < img.data.length; i++) x[i] = img.data[i] / 255;
    plan.runSteps(img.width, img.height, 0, plan.stepCount);
    outputs.push(plan.outputView(img.width, img.height).slice());
    plan.dispose();
  }
  t.equal(firstDiff(outputs[0], outputs[1]), "equal", "2-D Winograd plan output = 1-D Winograd plan output, bit for bit");
  t.equal(firstDiff(outputs[0], outputs[2]), "equal", "2-D Winograd plan output = direct-kernel plan output, bit for bit");
});
