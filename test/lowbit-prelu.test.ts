// .lowbit files of graphs with the prelu op (ncnn PReLU / leaky ReLU, ONNX PRelu) and meta.borderPad:
// FP32 and W8A8 round trips give bit-identical upscales, slopes are validated on load, and a real
// ncnn model (when data/ncnn holds it) survives quantize → save → load.
import test from "tape";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { calibrate } from "../src/quant/calibrate.ts";
import { quantizeModel, QuantizedModel } from "../src/quant/quantize-model.ts";
import { createUpscaler, type CompilableModel } from "../src/engine/upscaler-api.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import { loadLowbit, saveLowbit } from "../src/io/lowbit-file.ts";
import type { Graph } from "../src/graph/ir.ts";
import { decodeImage } from "../src/io/image.ts";
import { evalDir } from "./util/eval-data.ts";
import { testRuntime } from "./util/runtime.ts";
import { Rng } from "./util/rng.ts";
import { preluGraph } from "./util/prelu-graph.ts";

function noise(w: number, h: number, seed: number) {
  const r = new Rng(seed), data = new Uint8Array(w * h * 3);
  for (let i = 0; i < data.length; i++) data[i] = r.int(0, 255);
  return { data, width: w, height: h, channels: 3 as const };
}

async function upscaleWith(m: CompilableModel | Graph, img = noise(19, 13, 5)): Promise<Uint8Array> {
  const up = await createUpscaler(m, { runtime: await testRuntime() });
  const out = await up.upscale(img);
  up.dispose?.();
  return out.data;
}

/** Header JSON and data of a .lowbit file, and a re-serializer for corrupted variants. */
function parse(b: Uint8Array) {
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
  return { header, doc: JSON.parse(header.__metadata__.lowbit), data: b.slice(8 + n) };
}
function build(header: any, data: Uint8Array): Uint8Array {
  let h = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - ((8 + h.length) % 8)) % 8;
  h = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(pad));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}
function expectErr(t: test.Test, f: () => unknown, code: string, re: RegExp, msg: string): void {
  try {
    f();
    t.fail(`${msg}: loaded, expected ${code}`);
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === code && re.test(e.message), `${msg} → ${e instanceof LowbitError ? `${e.code} ${e.message}` : String(e)}`);
  }
}

test("lowbit file (prelu): FP32 and W8A8 round trips are bit-exact; slopes and borderPad restored", async (t) => {
  const g = preluGraph({ borderPad: 3 });
  const bytes = saveLowbit(g);
  const P = parse(bytes);
  t.ok(P.header["prelu1.slopes"] && P.header["prelu2.slopes"], "one F32 tensor per prelu node");
  t.deepEqual(P.header["prelu1.slopes"].shape, [8], "slopes shape [channels]");
  t.equal(P.doc.meta.borderPad, 3, "meta.borderPad written");
  const back = loadLowbit(bytes) as Graph;
  t.notOk("compile" in back, "an FP32 file loads as a Graph");
  t.deepEqual(back.meta, g.meta, "meta (incl. borderPad) restored");
  for (const name of ["prelu1", "prelu2"]) {
    const a = g.nodes.find((n) => n.name === name)!, b = back.nodes.find((n) => n.name === name)!;
    t.ok(a.op === "prelu" && b.op === "prelu" && Buffer.compare(Buffer.from(a.slopes.buffer), Buffer.from(b.slopes.buffer)) === 0, `${name}: slopes bit-identical`);
  }
  t.deepEqual(await upscaleWith(back), await upscaleWith(g), "FP32: upscaled output bit-identical");
  const noPad = loadLowbit(saveLowbit(preluGraph())) as Graph;
  t.equal(noPad.meta.borderPad, undefined, "no borderPad → none after loading");

  const cal = await calibrate(g, [noise(24, 24, 1), noise(17, 20, 2)], { runtime: await testRuntime() });
  const qm = quantizeModel(cal, "w8a8");
  const qb = saveLowbit(qm);
  const q = loadLowbit(qb);
  t.ok(q instanceof QuantizedModel, "W8A8 loads as a QuantizedModel");
  const qq = q as QuantizedModel;
  t.deepEqual(qq.tensors, qm.tensors, "W8A8: per-tensor domain/bits/range restored");
  t.ok(qq.graph.nodes.filter((n) => n.op === "prelu").length === 2, "W8A8: both prelu nodes kept");
  t.equal(qq.graph.meta.borderPad, 3, "W8A8: borderPad restored");
  t.deepEqual(await upscaleWith(qq), await upscaleWith(qm), "W8A8: upscaled output bit-identical to the original model's");
  t.deepEqual(saveLowbit(qq), qb, "W8A8: save(load(file)) = file");
});

test("lowbit file (prelu): corrupted slopes and borderPad are typed errors", async (t) => {
  const good = saveLowbit(preluGraph({ borderPad: 2 }));
  const P = parse(good);
  const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));
  const F = "E_MODEL_FORMAT";
  {
    // NaN in a slope (the data bytes of prelu1.slopes).
    const d = P.data.slice();
    const [b0] = P.header["prelu1.slopes"].data_offsets;
    new DataView(d.buffer).setFloat32(b0 + 4, NaN, true);
    expectErr(t, () => loadLowbit(build(P.header, d)), "E_RANGE", /prelu1\.slopes.*element 1 is NaN/, "NaN slope");
    new DataView(d.buffer).setFloat32(b0 + 4, Infinity, true);
    expectErr(t, () => loadLowbit(build(P.header, d)), "E_RANGE", /prelu1\.slopes.*Infinity/, "infinite slope");
  }
  {
    // Wrong length: 7 slopes (4 bytes moved into... nothing: drop the last slope's bytes from the data).
    const h = clone(P.header);
    const [b0, e0] = h["prelu1.slopes"].data_offsets;
    h["prelu1.slopes"].shape = [7];
    h["prelu1.slopes"].data_offsets = [b0, e0 - 4];
    const d = new Uint8Array([...P.data.subarray(0, e0 - 4), ...P.data.subarray(e0)]);
    for (const k of Object.keys(h)) if (k !== "__metadata__" && h[k].data_offsets[0] >= e0) h[k].data_offsets = h[k].data_offsets.map((o: number) => o - 4);
    expectErr(t, () => loadLowbit(build(h, d)), F, /prelu1\.slopes.*F32 \[7\], expected F32 \[8\]/, "7 slopes for 8 channels");
  }
  {
    // The tensor and its bytes removed (the rest of the data section stays contiguous).
    const h = clone(P.header);
    const [b0, e0] = h["prelu2.slopes"].data_offsets;
    delete h["prelu2.slopes"];
    const d = new Uint8Array([...P.data.subarray(0, b0), ...P.data.subarray(e0)]);
    for (const k of Object.keys(h)) if (k !== "__metadata__" && h[k].data_offsets[0] >= e0) h[k].data_offsets = h[k].data_offsets.map((o: number) => o - (e0 - b0));
    expectErr(t, () => loadLowbit(build(h, d)), F, /'prelu2\.slopes' \(slopes of prelu 'prelu2'\) is missing/, "missing slopes tensor");
  }
  {
    // Stored channels disagreeing with the input: the slopes match the claim, the graph does not.
    const h = clone(P.header), doc = clone(P.doc);
    const n = doc.graph.nodes.find((x: any) => x.name === "prelu1");
    n.channels = 4;
    h["prelu1.slopes"].shape = [4];
    const [b0, e0] = h["prelu1.slopes"].data_offsets;
    h["prelu1.slopes"].data_offsets = [b0, e0 - 16];
    const d = new Uint8Array([...P.data.subarray(0, e0 - 16), ...P.data.subarray(e0)]);
    for (const k of Object.keys(h)) if (k !== "__metadata__" && h[k].data_offsets[0] >= e0) h[k].data_offsets = h[k].data_offsets.map((o: number) => o - 16);
    h.__metadata__.lowbit = JSON.stringify(doc);
    expectErr(t, () => loadLowbit(build(h, d)), F, /prelu1.*slopes must be .* 8 values/, "4 slopes on an 8-channel input");
  }
  for (const [bp, re] of [[-1, /borderPad/], [1.5, /borderPad/], ["7", /borderPad/], [1e9, /borderPad/]] as const) {
    const h = clone(P.header), doc = clone(P.doc);
    doc.meta.borderPad = bp;
    h.__metadata__.lowbit = JSON.stringify(doc);
    expectErr(t, () => loadLowbit(build(h, P.data)), F, re, `meta.borderPad ${JSON.stringify(bp)}`);
  }
});

test("lowbit file (prelu): old files (no prelu, no borderPad) still load", async (t) => {
  // A file as the previous writer produced it: an FP32 graph without the new fields.
  const g = preluGraph();
  g.nodes = g.nodes.map((n) => (n.op === "prelu" ? ({ op: "activation", activation: { kind: "relu" }, id: n.id, name: n.name, inputs: n.inputs, channels: n.channels, spatial: n.spatial } as Graph["nodes"][number]) : n));
  const bytes = saveLowbit(g);
  const P = parse(bytes);
  t.equal(P.doc.meta.borderPad, undefined, "no borderPad field written when absent");
  t.equal(P.doc.formatVersion, 1, "still format version 1");
  const back = loadLowbit(bytes) as Graph;
  t.deepEqual(await upscaleWith(back), await upscaleWith(g), "loads and runs bit-identically");
});

const NCNN = join(process.cwd(), "data", "ncnn");
test("lowbit file (prelu): a real ncnn model (realesr-animevideov3-x2) W8A8 round trip", { skip: !existsSync(join(NCNN, "real-esrgan", "models", "realesr-animevideov3-x2.param")) }, async (t) => {
  const { loadModel } = await import("../src/models/registry.ts");
  const g = await loadModel("realesr-animevideov3-x2" as never);
  t.ok(g.nodes.some((n) => n.op === "prelu"), "the imported graph has prelu nodes");
  const img = decodeImage(readFileSync(join(evalDir(), "lr_x2", "butterfly.png")));
  const crop = (x0: number, y0: number, w: number, h: number) => {
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = img.data[((y0 + y) * img.width + x0 + x) * img.channels + c];
    return { data, width: w, height: h, channels: 3 as const };
  };
  const fb = loadLowbit(saveLowbit(g)) as Graph;
  t.deepEqual(await upscaleWith(fb, crop(10, 10, 24, 20)), await upscaleWith(g, crop(10, 10, 24, 20)), "FP32: bit-identical output");
  const cal = await calibrate(g, [crop(30, 30, 32, 32)], { runtime: await testRuntime() });
  const qm = quantizeModel(cal, "w8a8");
  const q = loadLowbit(saveLowbit(qm)) as QuantizedModel;
  t.deepEqual(q.graph.meta, qm.graph.meta, "meta restored");
  t.deepEqual(await upscaleWith(q, crop(10, 10, 24, 20)), await upscaleWith(qm, crop(10, 10, 24, 20)), "W8A8: bit-identical output");
});
