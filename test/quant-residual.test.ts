// 16-bit residual stream (QuantConfig.residualBits = 16): integer adds store u16 sums, convs read 8-bit copies.
import test from "tape";
import { createRuntime } from "../src/runtime/runtime.ts";
import { loadModel } from "../src/models/registry.ts";
import { calibrate, type Calibration } from "../src/quant/calibrate.ts";
import { quantizeModel } from "../src/quant/quantize-model.ts";
import { quantConfig } from "../src/quant/config.ts";
import { Q8Plan } from "../src/graph/compile-q8.ts";
import { createUpscaler } from "../src/engine/upscaler-api.ts";
import { psnrY } from "../src/metrics/psnr.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import { saveLowbit, loadLowbit } from "../src/io/lowbit-file.ts";
import { exportOnnx } from "../src/io/onnx/export.ts";
import { q16AddRef, q16RequantizeRef } from "../src/kernels/ref/requant-wide.ts";
import type { Node } from "../src/graph/ir.ts";
import { evalCrop } from "./util/eval-data.ts";
import { testRuntime } from "./util/runtime.ts";

const crop = (name: string, x0: number, y0: number, w: number, h: number) => evalCrop("lr_x2", name, x0, y0, w, h);
const calibImages = () => [crop("aero1", 20, 20, 64, 64), crop("building", 100, 60, 64, 64)];
const testImage = () => crop("butterfly", 30, 20, 56, 44);

let cached: Promise<Calibration> | null = null;
const slimCalibration = async () => (cached ??= (async () => calibrate(await loadModel("esrgan-slim-x2"), calibImages(), { runtime: await testRuntime() }))());

test("residual 16: every add is a 16-bit tensor, convs read 8-bit copies, and nothing in between is float", async (t) => {
  const rt = await testRuntime();
  const cal = await slimCalibration();
  const qm = quantizeModel(cal, { bits: "w8a8", method: "percentile", residualBits: 16 });
  const g = cal.graph;
  const adds = g.nodes.filter((n) => n.op === "add");
  t.ok(adds.length > 0 && adds.every((n) => qm.tensors[n.id].bits === 16 && qm.tensors[n.id].narrow?.bits === 8), `${adds.length} adds hold 16-bit codes with an 8-bit copy`);
  t.ok(g.nodes.every((n) => n.op === "add" || qm.tensors[n.id].bits <= 8), "no other tensor is 16-bit");
  t.match(qm.config, /residual:16/, `config '${qm.config}'`);
  const plan = new Q8Plan(rt, qm, 24, 24);
  const ops = plan.info.stepOps;
  t.equal(ops[0], "quantize q8", "first step quantizes the image");
  t.equal(ops.at(-1), "dequantize f32", "last step dequantizes the output");
  t.deepEqual(ops.slice(1, -1).filter((o) => o.endsWith("f32")), [], "no float step in between");
  const L = plan.info.nodes;
  t.ok(L.filter((n) => n.op === "add").every((n) => n.domain === "q16"), "the lowered adds are q16");
  for (const n of L) {
    if (n.op !== "conv2d") continue;
    t.equal(L[n.inputs[0]].domain, "q8", `conv '${n.name}' reads 8-bit codes`);
  }
  t.ok(L.some((n) => n.op === "narrow"), `${L.filter((n) => n.op === "narrow").length} narrow steps (the 8-bit copies)`);
  t.ok(plan.info.grids.every((p, i) => !p || L[i].domain !== "q16" || (p.qmax === 65535 && p.bits === 16)), "16-bit grids span 0..65535");
  plan.dispose();
});

test("residual 16: the plan's adds, copies and concats equal the scalar references bit for bit", async (t) => {
  const rt = await testRuntime();
  const cal = await slimCalibration();
  const qm = quantizeModel(cal, { bits: "w8a8", method: "mse", residualBits: 16 });
  const W = 23, H = 17; // odd sizes: channel runs and row tails
  const plan = new Q8Plan(rt, qm, W, H, { fuse: false });
  const img = crop("fruits", 40, 30, W, H);
  const [lo, hi] = cal.graph.meta.inputRange;
  const x = plan.inputView(W, H);
  for (let i = 0; i < W * H * 3; i++) x[i] = lo + (img.data[i] * (hi - lo)) / 255;
  const L = plan.info.nodes, G = plan.info.grids;
  const codes = (id: number): Uint8Array | Uint16Array => {
    const { ptr, stride } = plan.tensorAt(id), c = L[id].channels, n = W * L[id].spatial * H * L[id].spatial;
    const wide = L[id].domain === "q16", out = wide ? new Uint16Array(n * c) : new Uint8Array(n * c);
    const u8 = rt.arena.u8;
    for (let p = 0; p < n; p++) for (let ch = 0; ch < c; ch++) {
      const j = ptr + (p * stride + ch) * (wide ? 2 : 1);
      out[p * c + ch] = wide ? u8[j] | (u8[j + 1] << 8) : u8[j];
    }
    return out;
  };
  let checked = 0;
  for (let id = 0; id < L.length; id++) {
    plan.runSteps(W, H, plan.nodeSteps[id][0], plan.nodeSteps[id][1]);
    const n = L[id], gy = G[id];
    const wideIn = n.inputs.some((i) => L[i].domain === "q16");
    if (!gy || !(n.domain === "q16" || n.op === "narrow" || (n.op === "concat" && wideIn))) continue;
    const got = codes(id), c = n.channels, px = got.length / c;
    const want = n.domain === "q16" ? new Uint16Array(got.length) : new Uint8Array(got.length);
    if (n.op === "add") {
      const [a, b] = n.inputs, coeffs = (n as Extract<Node, { op: "add" }>).coeffs ?? [1, 1];
      const ma = Math.fround((coeffs[0] * G[a]!.scale) / gy.scale), mb = Math.fround((coeffs[1] * G[b]!.scale) / gy.scale);
      q16AddRef(want, codes(a), codes(b), px, c, G[a]!.zeroPoint, G[b]!.zeroPoint, ma, mb, gy.zeroPoint, gy.qmin, gy.qmax);
    } else if (n.op === "narrow") {
      const s = n.inputs[0];
      q16RequantizeRef(want, codes(s), px, c, G[s]!.zeroPoint, Math.fround(G[s]!.scale / gy.scale), gy.zeroPoint, gy.qmin, gy.qmax);
    } else {
      let off = 0;
      for (const i of n.inputs) {
        const ci = L[i].channels, part = L[i].domain === "q16" ? new Uint8Array(px * ci) : null;
        if (part) {
          q16RequantizeRef(part, codes(i), px, ci, G[i]!.zeroPoint, Math.fround(G[i]!.scale / gy.scale), gy.zeroPoint, gy.qmin, gy.qmax);
          for (let p = 0; p < px; p++) for (let ch = 0; ch < ci; ch++) want[p * c + off + ch] = part[p * ci + ch];
        } else for (let p = 0; p < px; p++) for (let ch = 0; ch < ci; ch++) want[p * c + off + ch] = got[p * c + off + ch];
        off += ci;
      }
    }
    t.deepEqual(got, want, `${n.op} '${n.name}' (${n.domain}) = reference`);
    checked++;
  }
  t.ok(checked >= 3, `${checked} wide steps checked`);
  plan.dispose();
});

test("residual 16: tiled = untiled, save/load keeps the bytes, fidelity not below the 8-bit stream", async (t) => {
  const rt = await testRuntime();
  const cal = await slimCalibration();
  const g = cal.graph;
  const img = testImage();
  const q16 = quantizeModel(cal, { bits: "w8a8", method: "percentile", residualBits: 16 });
  const up = await createUpscaler(q16, { runtime: rt });
  const a = await up.upscale(img, { tile: 256 }), b = await up.upscale(img, { tile: 20 });
  t.deepEqual(b.data, a.data, `20-px tiles (margin ${up.margin}) = whole image, byte for byte`);
  up.dispose();
  const bytes = saveLowbit(q16);
  const headerBytes = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const doc = JSON.parse(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerBytes))).__metadata__.lowbit);
  t.equal(doc.formatVersion, 3, "written as format version 3 (older readers say 'upgrade')");
  const back = loadLowbit(bytes);
  t.equal((back as { config: string }).config, q16.config, "config survives");
  const c = await (await createUpscaler(back as never, { runtime: rt })).upscale(img);
  t.deepEqual(c.data, a.data, "a saved and reloaded 16-bit-residual model gives the same bytes");
  const fp = await (await createUpscaler(g, { runtime: rt })).upscale(img);
  const q8 = await (await createUpscaler(quantizeModel(cal, { bits: "w8a8", method: "percentile" }), { runtime: rt })).upscale(img);
  const f16 = psnrY(a, fp, 2), f8 = psnrY(q8, fp, 2);
  t.ok(f16 >= 40 && f16 > f8 - 0.5, `fidelity ${f8.toFixed(2)} dB (8-bit sums) → ${f16.toFixed(2)} dB (16-bit sums)`);
});

test("residual 16: simd and relaxed builds give identical bytes (where relaxed runs)", async (t) => {
  const major = Number(process.versions.node.split(".")[0]);
  if (major < 22) {
    t.pass(`Node ${major}: relaxed SIMD is not trusted here; this comparison runs in the Node 22 pass`);
    return;
  }
  const simd = await createRuntime({ backend: "simd" }), relaxed = await createRuntime({ backend: "relaxed" });
  const qm = quantizeModel(await slimCalibration(), { bits: "w8a8", method: "mse", residualBits: 16 });
  const img = testImage();
  const a = await (await createUpscaler(qm, { runtime: simd })).upscale(img);
  const b = await (await createUpscaler(qm, { runtime: relaxed })).upscale(img);
  t.deepEqual(b.data, a.data, "relaxed build output = simd build output");
});

test("residual 16: bad settings and inconsistent files are typed errors", async (t) => {
  const code = (c: string) => (e: unknown) => e instanceof LowbitError && e.code === c;
  t.throws(() => quantConfig({ bits: "w8a8", residualBits: 12 as never }), code("E_BITS"), "residualBits 12 → E_BITS");
  const cal = await slimCalibration();
  const qm = quantizeModel(cal, { bits: "w8a8", residualBits: 16 });
  t.throws(() => exportOnnx(qm), code("E_UNSUPPORTED_LAYER"), "ONNX export of 16-bit sums → E_UNSUPPORTED_LAYER");
  const bytes = saveLowbit(qm);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const edit = (f: (doc: { quant: { config: Record<string, unknown>; tensors: Record<string, unknown>[] } }) => void): Uint8Array => {
    const h = structuredClone(header), doc = JSON.parse(h.__metadata__.lowbit);
    f(doc);
    h.__metadata__.lowbit = JSON.stringify(doc);
    let text = JSON.stringify(h);
    while ((8 + text.length) % 8) text += " ";
    const enc = new TextEncoder().encode(text), out = new Uint8Array(8 + enc.length + bytes.length - 8 - n);
    new DataView(out.buffer).setBigUint64(0, BigInt(enc.length), true);
    out.set(enc, 8);
    out.set(bytes.subarray(8 + n), 8 + enc.length);
    return out;
  };
  const conv = cal.graph.nodes.find((x) => x.op === "conv2d")!.id, add = cal.graph.nodes.find((x) => x.op === "add")!.id;
  t.throws(() => loadLowbit(edit((d) => delete d.quant.config.residualBits)), code("E_BITS"), "16-bit tensor without residualBits 16 → E_BITS");
  t.throws(() => loadLowbit(edit((d) => (d.quant.tensors[conv] = { ...d.quant.tensors[add] }))), code("E_MODEL_FORMAT"), "16-bit tensor on a conv → E_MODEL_FORMAT");
  t.throws(() => loadLowbit(edit((d) => ((d.quant.tensors[add] as { bits: number }).bits = 12))), code("E_BITS"), "narrow tensor with bits 12 → E_BITS");
  t.throws(() => loadLowbit(edit((d) => (d.quant.config.residualBits = 9))), code("E_BITS"), "config residualBits 9 → E_BITS");
});

test("residual 16: CLI option parsing", async (t) => {
  const { parseModelOptions, configName } = await import("../src/cli/model-options.ts");
  const o = parseModelOptions({ bits: "w8a8", method: "percentile", residualBits: "16" }, "eval");
  t.equal(o.residualBits, 16, "--residual-bits 16 parsed");
  t.equal(configName(o), "w8a8 percentile residual:16", "and named in the JSON config");
  t.equal(parseModelOptions({ bits: "w8a8", residualBits: "8" }, "eval").residualBits, undefined, "--residual-bits 8 is the default stream");
  t.throws(() => parseModelOptions({ bits: "w8a8", residualBits: "12" }, "eval"), /--residual-bits must be 8 or 16/, "--residual-bits 12 → usage error");
  t.throws(() => parseModelOptions({ bits: "w4a4", method: "daq", residualBits: "16" }, "eval"), /applies to static quantization/, "with --method daq → usage error");
  t.throws(() => parseModelOptions({ residualBits: "16" }, "eval"), /applies to static quantization/, "with fp32 → usage error");
});
