// The .lowbit file: safetensors container conformance, bit-exact round trips, typed errors for
// every malformed-file class, a seeded corruption fuzz, and loadAnyModel's sniffing.
import test from "tape";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadModel } from "../src/models/registry.ts";
import { calibrate, type Calibration } from "../src/quant/calibrate.ts";
import { quantizeModel, QuantizedModel } from "../src/quant/quantize-model.ts";
import { createUpscaler, fp32Model, type CompilableModel } from "../src/engine/upscaler-api.ts";
import { decodeImage } from "../src/io/image.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import { LOWBIT_VERSION, loadLowbit, readLowbitFile, saveLowbit, writeLowbitFile } from "../src/io/lowbit-file.ts";
import { loadAnyModel } from "../src/io/load-any.ts";
import type { Graph } from "../src/graph/ir.ts";
import { evalDir } from "./util/eval-data.ts";
import { testRuntime } from "./util/runtime.ts";
import { Rng } from "./util/rng.ts";

function crop(name: string, x0: number, y0: number, w: number, h: number) {
  const img = decodeImage(readFileSync(join(evalDir(), "lr_x2", `${name}.png`)));
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    data[(y * w + x) * 3 + c] = img.data[((y0 + y) * img.width + x0 + x) * img.channels + c];
  }
  return { data, width: w, height: h, channels: 3 as const };
}

let calib: Promise<Calibration> | null = null;
/** One calibration (esrgan-slim-x2, one 32×32 crop) shared by every test here. */
function calibration(): Promise<Calibration> {
  return (calib ??= (async () => calibrate(await loadModel("esrgan-slim-x2"), [crop("aero1", 20, 20, 32, 32)], { runtime: await testRuntime() }))());
}

const MIXED = { bits: "w4a8", method: "mse" as const, keepFp32: ["head", "tail"], perLayer: { F_0: "w8a8" } };

async function upscaleWith(m: CompilableModel | Graph): Promise<Uint8Array> {
  const up = await createUpscaler(m, { runtime: await testRuntime() });
  const out = await up.upscale(crop("butterfly", 30, 20, 28, 22));
  up.dispose();
  return out.data as Uint8Array;
}

// --- a minimal, independent safetensors reader/writer for the tests ---------------------------

interface Parsed {
  header: Record<string, any>;
  data: Uint8Array;
  doc: Record<string, any>;
  n: number;
}

function parse(bytes: Uint8Array): Parsed {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  return { header, data: bytes.slice(8 + n), doc: JSON.parse(header.__metadata__.lowbit), n };
}

/** Re-serializes (header object, data bytes); `doc` (if given) replaces __metadata__.lowbit. */
function build(header: Record<string, any>, data: Uint8Array, doc?: unknown, rawHeader?: string): Uint8Array {
  if (doc !== undefined) header = { ...header, __metadata__: { ...header.__metadata__, lowbit: JSON.stringify(doc) } };
  const h = new TextEncoder().encode(rawHeader ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function clone<T>(x: T): T {
  return JSON.parse(JSON.stringify(x));
}

function sameBytes(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}

function f32Identical(a: Float32Array, b: Float32Array): boolean {
  return sameBytes(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
}

// -------------------------------------------------------------------------------------------

test("lowbit file: a conforming safetensors container (contiguous data, aligned tensors, string metadata)", async (t) => {
  const qm = quantizeModel(await calibration(), MIXED);
  const bytes = saveLowbit(qm);
  const { header, data, doc, n } = parse(bytes);
  t.equal((8 + n) % 8, 0, `header padded: data starts at byte ${8 + n} (8-aligned)`);
  t.equal(bytes[8], 0x7b, "header starts with '{'");
  const md = header.__metadata__;
  t.ok(Object.values(md).every((v) => typeof v === "string"), "__metadata__ is string → string");
  t.equal(doc.format, "lowbit");
  t.equal(doc.formatVersion, 1);
  t.equal(doc.lowbitVersion, LOWBIT_VERSION);
  t.equal(doc.model, "quantized");
  const entries = Object.entries(header).filter(([k]) => k !== "__metadata__") as [string, any][];
  entries.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  let at = 0;
  let aligned = true, sized = true;
  const item: Record<string, number> = { F32: 4, I8: 1, U8: 1 };
  const dtypes = new Set<string>();
  for (const [, e] of entries) {
    if (e.data_offsets[0] !== at) break;
    const count = e.shape.reduce((a: number, d: number) => a * d, 1);
    sized &&= e.data_offsets[1] - e.data_offsets[0] === count * item[e.dtype];
    aligned &&= (8 + n + e.data_offsets[0]) % item[e.dtype] === 0;
    dtypes.add(e.dtype);
    at = e.data_offsets[1];
  }
  t.equal(at, data.length, `${entries.length} tensors cover the ${data.length} data bytes exactly, no holes`);
  t.ok(sized, "every tensor's byte span = dtype size × shape");
  t.ok(aligned, "every tensor starts at a file offset that is a multiple of its element size");
  t.deepEqual([...dtypes].sort(), ["F32", "I8", "U8"], "mixed model stores int4 (U8), int8 (I8) and f32 tensors");
  const convs = doc.graph.nodes.filter((x: any) => x.op === "conv2d");
  const byStorage = (s: string) => convs.filter((c: any) => c.weight.storage === s).map((c: any) => c.name);
  t.deepEqual(byStorage("int8"), ["F_0"], "perLayer w8a8 conv is int8");
  t.equal(byStorage("f32").length, 2, `keepFp32 head/tail convs are f32: ${byStorage("f32").join(", ")}`);
  t.equal(byStorage("int4").length, convs.length - 3, "the rest are packed int4");
  const c4 = convs.find((c: any) => c.weight.storage === "int4");
  const nCodes = c4.k * c4.k * c4.cin * c4.cout;
  t.deepEqual(header[`${c4.name}.weight`].shape, [Math.ceil(nCodes / 2)], "int4 codes: U8 [ceil(n/2)] with the logical HWIO shape in the JSON");
  t.deepEqual(c4.weight.shape, [c4.k, c4.k, c4.cin, c4.cout]);
});

test("lowbit file: round trips are bit-exact (w8a8, w4a4, mixed keep-fp32 head/tail, FP32 graph)", async (t) => {
  const cal = await calibration();
  for (const [label, cfg] of [["w8a8", "w8a8"], ["w4a4", { bits: "w4a4", method: "mse" }], ["mixed", MIXED]] as const) {
    const qm = quantizeModel(cal, cfg);
    const back = loadLowbit(saveLowbit(qm));
    t.ok(back instanceof QuantizedModel, `${label}: loads as a QuantizedModel`);
    const q = back as QuantizedModel;
    t.equal(q.config, qm.config, `${label}: config '${q.config}'`);
    t.deepEqual({ ...q.quantConfig }, { ...qm.quantConfig }, `${label}: quantization config restored`);
    t.deepEqual(q.tensors, qm.tensors, `${label}: per-tensor domain/bits/range restored`);
    let exact = true;
    for (let i = 0; i < qm.weights.length; i++) {
      const a = qm.weights[i], b = q.weights[i];
      if (a === null || b === null) exact &&= a === b;
      else exact &&= a.bits === b.bits && sameBytes(a.codes, b.codes) && f32Identical(a.scales, b.scales);
      const na = qm.graph.nodes[i], nb = q.graph.nodes[i];
      if (na.op === "conv2d" && nb.op === "conv2d") {
        // The effective bias: a quantized conv's corrected bias, else the node's.
        const ba = a?.bias ?? na.bias, bb = b?.bias ?? nb.bias;
        exact &&= (ba === null ? bb === null : bb !== null && f32Identical(ba, bb));
        if (a === null) exact &&= f32Identical(na.weights, nb.weights);
      }
    }
    t.ok(exact, `${label}: codes, scales, biases and f32 kernels bit-identical`);
    t.equal(q.weightBytes, qm.weightBytes, `${label}: weightBytes ${q.weightBytes}`);
    t.deepEqual(await upscaleWith(q), await upscaleWith(qm), `${label}: upscaled output bit-identical to the original model's`);
  }
  const g = await loadModel("esrgan-slim-x2");
  const gb = loadLowbit(saveLowbit(g));
  t.notOk("compile" in gb, "an FP32 file loads as a Graph");
  const gg = gb as Graph;
  t.deepEqual(gg.meta, g.meta, "meta (name, scale, ranges, arch, receptive radius) restored");
  t.ok(gg.nodes.every((n, i) => n.op === g.nodes[i].op && n.name === g.nodes[i].name && n.channels === g.nodes[i].channels), "topology restored");
  t.deepEqual(await upscaleWith(gg), await upscaleWith(g), "FP32: upscaled output bit-identical");
  t.deepEqual(await upscaleWith(loadLowbit(saveLowbit(fp32Model(g))) as Graph), await upscaleWith(g), "saveLowbit(fp32Model(g)) = saveLowbit(g)");
});

test("lowbit file: loaded quantized graphs hold dequantized weights (codes·scale), usable for FP32 simulation", async (t) => {
  const qm = quantizeModel(await calibration(), "w4a4");
  const q = loadLowbit(saveLowbit(qm)) as QuantizedModel;
  const n = q.graph.nodes.find((x) => x.op === "conv2d" && q.weights[x.id] !== null)! as Extract<Graph["nodes"][number], { op: "conv2d" }>;
  const w = q.weights[n.id]!;
  let ok = true;
  for (let i = 0; i < n.weights.length; i++) ok &&= n.weights[i] === Math.fround(w.codes[i] * w.scales[i % n.cout]);
  t.ok(ok, `conv '${n.name}': weights[i] = codes[i]·scale[o]`);
  const out = await upscaleWith(q.graph);
  t.equal(out.length, 56 * 44 * 3, "the graph runs as an FP32 model");
});

test("lowbit file: w4 files are about half the size of w8 files", async (t) => {
  const cal = await calibration();
  const w8 = saveLowbit(quantizeModel(cal, "w8a8"));
  const w4 = saveLowbit(quantizeModel(cal, "w4a8"));
  const f32 = saveLowbit((await calibration()).graph);
  const p8 = parse(w8), p4 = parse(w4);
  // The sub-pixel tail conv holds merged (summed) 4-bit codes, stored as int8 (quantize-model.ts).
  const convs = p4.doc.graph.nodes.filter((n: any) => n.op === "conv2d");
  const codes = convs.reduce((a: number, n: any) => a + n.k * n.k * n.cin * n.cout, 0);
  const packed = convs.reduce((a: number, n: any) => a + (n.weight.storage === "int4" ? Math.ceil((n.k * n.k * n.cin * n.cout) / 2) : n.k * n.k * n.cin * n.cout), 0);
  t.ok(convs.filter((n: any) => n.weight.storage === "int8").length === 1, "one int8 conv in the w4 file: the merged sub-pixel tail");
  t.equal(p8.data.length - p4.data.length, codes - packed, `data sections differ by exactly the packed nibbles (${codes} → ${packed} code bytes)`);
  const r = w4.length / w8.length;
  t.ok(r > 0.45 && r < 0.6, `w4 ${w4.length} B / w8 ${w8.length} B = ${r.toFixed(3)} (≈ 1/2; scales, biases and header are the rest)`);
  t.ok(w8.length < 0.3 * f32.length, `w8 ${w8.length} B vs fp32 ${f32.length} B`);
});

test("lowbit file: LOWBIT_VERSION tracks package.json", (t) => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  t.equal(LOWBIT_VERSION, pkg.version);
  t.end();
});

// --- malformed files ------------------------------------------------------------------------

function expectErr(t: test.Test, f: () => unknown, code: string, re: RegExp, msg: string): void {
  try {
    f();
    t.fail(`${msg}: loaded, expected ${code}`);
  } catch (e) {
    const ok = e instanceof LowbitError && e.code === code && re.test(e.message);
    t.ok(ok, `${msg} → ${e instanceof LowbitError ? e.message : String(e)}`);
  }
}

test("lowbit file: every malformed-file class is a typed error naming the tensor or field", async (t) => {
  const qm = quantizeModel(await calibration(), MIXED);
  const good = saveLowbit(qm);
  const P = parse(good);
  const H = () => clone(P.header);
  const D = () => P.data.slice();
  const doc = () => clone(P.doc);
  const L = (b: Uint8Array) => () => loadLowbit(b);
  const F = "E_MODEL_FORMAT";
  const convs = P.doc.graph.nodes.filter((n: any) => n.op === "conv2d");
  const c4 = convs.find((c: any) => c.weight.storage === "int4"), c8 = convs.find((c: any) => c.weight.storage === "int8"), cf = convs.find((c: any) => c.weight.storage === "f32");

  t.ok(loadLowbit(build(H(), D())) instanceof QuantizedModel, "the test re-serializer itself produces a loadable file");
  // Container level.
  expectErr(t, L(new Uint8Array(5)), F, /5 bytes/, "5-byte file");
  expectErr(t, L(good.subarray(0, 8 + P.n - 1)), F, /beyond the file/, "header cut short");
  const big = good.slice();
  new DataView(big.buffer).setBigUint64(0, 10n ** 12n, true);
  expectErr(t, L(big), F, /exceeds the 104857600-byte limit/, "header length 10^12");
  const over = good.slice();
  new DataView(over.buffer).setBigUint64(0, BigInt(good.length), true);
  expectErr(t, L(over), F, /beyond the file/, "header length = file length");
  expectErr(t, L(good.subarray(0, good.length - 3)), F, /past the end of the data|trailing/, "truncated data");
  expectErr(t, L(build(H(), new Uint8Array([...D(), 0, 0, 0, 0]))), F, /4 trailing data bytes/, "trailing bytes");
  expectErr(t, L(build(H(), D(), undefined, "[1, 2]")), F, /does not start with '\{'/, "header is a JSON array");
  expectErr(t, L(build(H(), D(), undefined, " {}")), F, /start with '\{'/, "header with leading space");
  expectErr(t, L(build(H(), D(), undefined, '{"a": 1')), F, /not valid JSON/, "header JSON cut");
  const badUtf = build(H(), D());
  badUtf[12] = 0xff;
  expectErr(t, L(badUtf), F, /UTF-8/, "invalid UTF-8 in the header");
  {
    const h = H();
    delete h.__metadata__;
    expectErr(t, L(build(h, D())), F, /without lowbit metadata/, "plain safetensors file (no lowbit metadata)");
  }
  {
    const h = H();
    h.__metadata__.other = 3;
    expectErr(t, L(build(h, D())), F, /__metadata__\['other'\] is not a string/, "non-string metadata value");
  }
  const tname = `${c4.name}.bias`;
  const mut = (f: (h: any) => void, data = D()) => {
    const h = H();
    f(h);
    return build(h, data);
  };
  expectErr(t, L(mut((h) => (h[tname].dtype = "F16"))), F, new RegExp(`'${tname}'.*unsupported dtype 'F16'`), "unknown dtype");
  expectErr(t, L(mut((h) => (h[tname].shape = [h[tname].shape[0] + 1]))), F, new RegExp(`'${tname}'.*bytes but data_offsets`), "shape vs byte count");
  expectErr(t, L(mut((h) => (h[tname].dtype = "I8"))), F, new RegExp(`'${tname}'.*bytes but data_offsets`), "dtype vs byte count");
  expectErr(t, L(mut((h) => (h[tname].shape = [1000000, 1000000]))), F, /claims 1000000000000 F32 elements/, "a tensor claiming 10^12 elements");
  expectErr(t, L(mut((h) => (h[tname].shape = [-4]))), F, /non-negative integers/, "negative dimension");
  expectErr(t, L(mut((h) => (h[tname].data_offsets = [h[tname].data_offsets[1], h[tname].data_offsets[0]]))), F, /reversed/, "begin > end");
  expectErr(t, L(mut((h) => (h[tname].data_offsets = [P.data.length, P.data.length + h[tname].data_offsets[1] - h[tname].data_offsets[0]]))), F, /past the end/, "offsets out of bounds");
  {
    // Two tensors of equal size swapped in the header only: contiguous; swap one to overlap.
    const e = Object.entries(P.header).filter(([k]) => k !== "__metadata__") as [string, any][];
    const [an, a] = e[0];
    const bEntry = e.find(([, x]) => x.data_offsets[0] === a.data_offsets[1])!;
    expectErr(t, L(mut((h) => (h[bEntry[0]].data_offsets = [a.data_offsets[0] + 4, a.data_offsets[0] + 4 + bEntry[1].data_offsets[1] - bEntry[1].data_offsets[0]]))), F, /overlaps/, `overlapping offsets ('${bEntry[0]}' inside '${an}')`);
  }
  {
    // A gap: shift the last tensor by 4 bytes and append 4 bytes.
    const e = Object.entries(P.header).filter(([k]) => k !== "__metadata__") as [string, any][];
    const [ln, last] = e.reduce((m, x) => (x[1].data_offsets[0] > m[1].data_offsets[0] ? x : m));
    const d = new Uint8Array(P.data.length + 4);
    d.set(P.data.subarray(0, last.data_offsets[0]));
    d.set(P.data.subarray(last.data_offsets[0]), last.data_offsets[0] + 4);
    expectErr(t, L(mut((h) => (h[ln].data_offsets = [last.data_offsets[0] + 4, last.data_offsets[1] + 4]), d)), F, new RegExp(`gap of 4 bytes before tensor '${ln}'`), "gap between tensors");
  }
  {
    // Missing tensor: drop the int4 conv's bias bytes (they are the last F32 tensor? not needed: rebuild offsets).
    const h = H();
    const [b0, b1] = h[tname].data_offsets;
    delete h[tname];
    for (const [k, v] of Object.entries(h) as [string, any][]) if (k !== "__metadata__" && v.data_offsets[0] >= b1) v.data_offsets = [v.data_offsets[0] - (b1 - b0), v.data_offsets[1] - (b1 - b0)];
    const d = new Uint8Array(P.data.length - (b1 - b0));
    d.set(P.data.subarray(0, b0));
    d.set(P.data.subarray(b1), b0);
    expectErr(t, L(build(h, d)), F, new RegExp(`tensor '${tname}' \\(bias of conv '${c4.name}'\\) is missing`), "missing tensor");
    const h2 = H();
    h2["stowaway"] = { dtype: "U8", shape: [3], data_offsets: [P.data.length, P.data.length + 3] };
    expectErr(t, L(build(h2, new Uint8Array([...D(), 1, 2, 3]))), F, /unexpected tensor 'stowaway'/, "extra tensor");
  }
  // Float payloads.
  const poke = (name: string, index: number, v: number) => {
    const d = D();
    new DataView(d.buffer).setFloat32(P.header[name].data_offsets[0] + 4 * index, v, true);
    return build(H(), d);
  };
  expectErr(t, L(poke(`${c4.name}.weight_scale`, 2, NaN)), "E_RANGE", new RegExp(`'${c4.name}.weight_scale'.*element 2 is NaN`), "NaN scale");
  expectErr(t, L(poke(`${c4.name}.weight_scale`, 1, -0.5)), "E_RANGE", /channel 1 is not positive/, "negative scale");
  expectErr(t, L(poke(`${c8.name}.bias`, 0, Infinity)), "E_RANGE", new RegExp(`'${c8.name}.bias'.*Infinity`), "Inf bias");
  expectErr(t, L(poke(`${cf.name}.weight`, 7, -Infinity)), "E_RANGE", new RegExp(`'${cf.name}.weight'.*element 7`), "-Inf f32 kernel");
  // Codes.
  {
    const d = D();
    d[P.header[`${c8.name}.weight`].data_offsets[0]] = 0x80; // -128: fits int8 …
    t.ok(loadLowbit(build(H(), d)) instanceof QuantizedModel, "code −128 is inside the 8-bit range");
    const x = doc();
    x.graph.nodes.find((n: any) => n.name === c8.name).weight.bits = 7; // … but not the 7-bit one
    expectErr(t, L(build(H(), d, x)), "E_RANGE", new RegExp(`'${c8.name}.weight': code -128 at 0 is outside the 7-bit range \\[-64, 63\\]`), "code outside the bit range");
    const y = doc();
    y.graph.nodes.find((n: any) => n.name === c4.name).weight.bits = 2;
    expectErr(t, L(build(H(), D(), y)), "E_RANGE", /outside the 2-bit range \[-2, 1\]/, "int4 codes outside a 2-bit range");
    const z = doc();
    z.graph.nodes.find((n: any) => n.name === c4.name).weight.bits = 6;
    expectErr(t, L(build(H(), D(), z)), "E_BITS", /int4 storage cannot hold 6-bit codes/, "int4 storage with 6 bits");
    const w = doc();
    w.graph.nodes.find((n: any) => n.name === c8.name).weight.bits = 9;
    expectErr(t, L(build(H(), D(), w)), "E_BITS", new RegExp(`node '${c8.name}'.weight.bits`), "weight bits 9");
    const a = doc();
    a.quant.tensors[3].bits = 1;
    expectErr(t, L(build(H(), D(), a)), "E_BITS", /quant.tensors\[3\].*bits/, "activation bits 1");
  }
  // The lowbit JSON.
  const withDoc = (f: (d: any) => void) => {
    const d = doc();
    f(d);
    return build(H(), D(), d);
  };
  expectErr(t, L(withDoc((d) => (d.formatVersion = 4))), F, /format version 4.*upgrade lowbit/, "newer format version");
  expectErr(t, L(withDoc((d) => (d.formatVersion = 0))), F, /not a valid .lowbit format version/, "format version 0");
  expectErr(t, L(withDoc((d) => (d.format = "onnx"))), F, /format is "onnx", expected "lowbit"/, "unknown format name");
  expectErr(t, L(build(H(), D(), 42)), F, /not a JSON object/, "lowbit JSON is a number");
  expectErr(t, L(build(H(), D(), undefined, JSON.stringify({ ...P.header, __metadata__: { lowbit: "{oops" } }))), F, /__metadata__.lowbit is not valid JSON/, "lowbit JSON syntax error");
  expectErr(t, L(withDoc((d) => (d.model = "int3"))), F, /model kind "int3"/, "unknown model kind");
  expectErr(t, L(withDoc((d) => (d.graph.nodes[2].op = "conv3d"))), "E_UNSUPPORTED_LAYER", /op 'conv3d'.*written by lowbit/, "unknown op");
  expectErr(t, L(withDoc((d) => (d.graph.nodes[1].k = 5))), F, /weight.shape .* is not \[k, k, cin, cout\]/, "kernel size vs stored shape");
  expectErr(t, L(withDoc((d) => (d.graph.nodes[1].channels = 65))), F, /stores 65 channels/, "stored channel count vs inference");
  expectErr(t, L(withDoc((d) => (d.graph.nodes[2].inputs = [5]))), F, /not an earlier node/, "forward reference (cycle)");
  expectErr(t, L(withDoc((d) => (d.graph.nodes[2].inputs = "0"))), F, /inputs must be an array/, "inputs not an array");
  expectErr(t, L(withDoc((d) => (d.meta.inputRange = [1, 1]))), F, /meta.inputRange.*lo < hi/, "empty input range");
  expectErr(t, L(withDoc((d) => (d.meta.scale = 4))), F, /meta.scale 4/, "meta.scale vs graph");
  expectErr(t, L(withDoc((d) => (d.meta.receptiveRadius = 3))), F, /receptiveRadius 3 differs/, "receptive radius vs graph");
  expectErr(t, L(withDoc((d) => (d.quant.tensors[4].range = [2, 1]))), F, /range = \[2, 1\] must have lo ≤ hi/, "reversed tensor range");
  expectErr(t, L(withDoc((d) => (d.quant.tensors[4].range = [0, 1e39]))), "E_RANGE", /float32 range/, "tensor range beyond float32");
  expectErr(t, L(withDoc((d) => d.quant.tensors.pop())), F, /entries for \d+ nodes/, "tensor table length");
  expectErr(t, L(withDoc((d) => (d.quant.tensors[0].domain = "q8"))), F, /input image must be in the f32 domain/, "q8 input");
  expectErr(t, L(withDoc((d) => (d.quant.tensors[P.doc.graph.nodes.findIndex((n: any) => n.name === cf.name)].domain = "q8"))), F, new RegExp(`'${cf.name}' is in the q8 domain but stores f32 weights`), "domain vs storage");
  expectErr(t, L(withDoc((d) => (d.quant.config.method = "magic"))), F, /quant.config: .*unknown range method/, "bad config");
  expectErr(t, L(withDoc((d) => (d.quant.config.keepFp32 = ["nope"]))), F, /quant.config: .*'nope'/, "config naming a missing layer");
  expectErr(t, L(withDoc((d) => delete d.quant)), F, /quant must be an object/, "quantized model without quant section");
  // Prototype pollution keys are refused, wherever they are.
  expectErr(t, L(build(H(), D(), undefined, JSON.stringify(P.header).replace(/^\{/, '{"__proto__":{"polluted":1},'))), F, /forbidden key '__proto__'/, "__proto__ in the header");
  expectErr(t, L(withDoc((d) => (d.graph.nodes[3].constructor = { prototype: { x: 1 } }))), F, /forbidden key 'constructor' at \.graph\.nodes\[3\]/, "constructor in the lowbit JSON");
  expectErr(t, L(withDoc((d) => (d.quant.config.perLayer = [["__proto__", "w8a8"]]))), F, /forbidden layer name/, "__proto__ as a perLayer name");
  t.equal(({} as Record<string, unknown>).polluted, undefined, "Object.prototype untouched");
  t.throws(() => loadLowbit("nope" as unknown as Uint8Array), /E_ARGUMENT/, "non-bytes argument → E_ARGUMENT");
});

test("lowbit file: saveLowbit refuses inconsistent models", async (t) => {
  const qm = quantizeModel(await calibration(), "w8a8");
  t.throws(() => saveLowbit({} as Graph), /E_ARGUMENT/, "not a model");
  const i = qm.weights.findIndex((w) => w !== null);
  const w = qm.weights[i]!;
  const bad = new QuantizedModel(qm.graph, qm.tensors, qm.weights.map((x, j) => (j === i ? { ...w, bits: 3 } : x)), qm.quantConfig);
  t.throws(() => saveLowbit(bad), (e: unknown) => e instanceof LowbitError && e.code === "E_RANGE" && /code .* outside/.test(e.message), "8-bit codes declared 3-bit → E_RANGE");
  const short = new QuantizedModel(qm.graph, qm.tensors, qm.weights.map((x, j) => (j === i ? { ...w, codes: w.codes.subarray(1) } : x)), qm.quantConfig);
  t.throws(() => saveLowbit(short), /E_ARGUMENT/, "codes of the wrong length → E_ARGUMENT");
  const noW = new QuantizedModel(qm.graph, qm.tensors, qm.weights.map((x, j) => (j === i ? null : x)), qm.quantConfig);
  t.throws(() => saveLowbit(noW), (e: unknown) => e instanceof LowbitError && e.code === "E_ARGUMENT" && /q8 domain but stores f32/.test(e.message), "q8 conv without codes → E_ARGUMENT");
});

// --- corruption fuzz ------------------------------------------------------------------------

test("lowbit file: seeded corruption fuzz: every case loads and runs, or throws a LowbitError", async (t) => {
  const rt = await testRuntime();
  const good = saveLowbit(quantizeModel(await calibration(), MIXED));
  const n = new DataView(good.buffer).getUint32(0, true);
  const hdr = [8, 8 + n] as const;
  const digits: number[] = [];
  for (let i = hdr[0]; i < hdr[1]; i++) if (good[i] >= 0x30 && good[i] <= 0x39) digits.push(i);
  const rng = new Rng(0x10b17);
  const input = new Float32Array(4 * 4 * 3).map((_, i) => (i * 53) % 256);
  const kinds = ["truncate", "header-flip", "data-flip", "digit", "length"] as const;
  const stats: Record<string, number> = {};
  const bump = (k: string) => (stats[k] = (stats[k] ?? 0) + 1);
  let bad = 0;
  const t0 = performance.now();
  const CASES = 300;
  for (let c = 0; c < CASES; c++) {
    const kind = kinds[c % kinds.length];
    let b: Uint8Array;
    switch (kind) {
      case "truncate":
        b = good.subarray(0, rng.next() < 0.3 ? rng.int(0, hdr[1]) : rng.int(hdr[1], good.length - 1));
        break;
      case "header-flip":
      case "data-flip": {
        b = good.slice();
        const [lo, hi] = kind === "header-flip" ? hdr : [hdr[1], good.length];
        for (let k = rng.int(1, 4); k > 0; k--) b[rng.int(lo, hi - 1)] ^= 1 << rng.int(0, 7);
        break;
      }
      case "digit": {
        b = good.slice();
        for (let k = rng.int(1, 2); k > 0; k--) b[rng.pick(digits)] = 0x30 + rng.int(0, 9);
        break;
      }
      default:
        b = good.slice();
        b[rng.int(0, 7)] ^= 1 << rng.int(0, 7);
    }
    let m: ReturnType<typeof loadLowbit>;
    try {
      m = loadLowbit(b);
    } catch (e) {
      if (e instanceof LowbitError) bump(`${kind}: ${e.code}`);
      else {
        bad++;
        t.fail(`case ${c} (${kind}): ${String(e)}`);
      }
      continue;
    }
    try {
      const cm = "compile" in m ? m : fp32Model(m);
      const plan = cm.compile(rt, 4, 4);
      plan.inputView(4, 4).set(input);
      plan.runSteps(4, 4, 0, plan.stepCount);
      const out = plan.outputView(4, 4).length;
      plan.dispose();
      bump(`${kind}: loads and runs`);
      if (out !== 4 * 4 * 3 * cm.graph.meta.scale ** 2) t.fail(`case ${c}: output has ${out} values`);
    } catch (e) {
      if (e instanceof LowbitError) bump(`${kind}: loads, compile ${e.code}`);
      else {
        bad++;
        t.fail(`case ${c} (${kind}) loaded but compile/run threw ${String(e)}`);
      }
    }
  }
  const ms = performance.now() - t0;
  t.equal(bad, 0, `${CASES} corrupted files in ${ms.toFixed(0)} ms: ${Object.entries(stats).sort().map(([k, v]) => `${k} ×${v}`).join("; ")}`);
  t.ok(Object.keys(stats).some((k) => k.endsWith("loads and runs")) && Object.keys(stats).some((k) => k.includes("E_MODEL_FORMAT")), "the fuzz reaches both outcomes");
});

// --- loadAnyModel ---------------------------------------------------------------------------

test("loadAnyModel: bytes, .lowbit paths, sniffed files, file URLs, short names", async (t) => {
  const qm = quantizeModel(await calibration(), "w8a8");
  const dir = mkdtempSync(join(tmpdir(), "lowbit-file-"));
  try {
    const bytes = saveLowbit(qm);
    const a = await loadAnyModel(bytes);
    t.ok(a instanceof QuantizedModel && a.config === qm.config, `Uint8Array → QuantizedModel (${a.config})`);
    const ab = await loadAnyModel(bytes.slice().buffer);
    t.ok(ab instanceof QuantizedModel, "ArrayBuffer → QuantizedModel");
    const p = join(dir, "slim.lowbit");
    await writeLowbitFile(p, qm);
    t.deepEqual(readFileSync(p), Buffer.from(bytes), "writeLowbitFile writes saveLowbit's bytes");
    const b = await loadAnyModel(p);
    t.ok(b instanceof QuantizedModel, "path ending in .lowbit");
    const disguised = join(dir, "model.bin");
    writeFileSync(disguised, bytes);
    t.ok((await loadAnyModel(disguised)) instanceof QuantizedModel, "a .lowbit file under another name is sniffed by its header");
    t.ok((await loadAnyModel(pathToFileURL(p))) instanceof QuantizedModel, "file: URL to a .lowbit file");
    t.deepEqual(await upscaleWith(b), await upscaleWith(qm), "loaded from disk: output bit-identical");
    const fp = join(dir, "slim-fp32.lowbit");
    await writeLowbitFile(fp, qm.graph);
    const f = await loadAnyModel(fp);
    t.equal(f.config, "fp32", "an FP32 .lowbit file → fp32Model");
    t.ok(!(f instanceof QuantizedModel) && typeof f.compile === "function", "compilable");
    const s = await loadAnyModel("esrgan-slim-x2");
    t.equal(s.config, "fp32", "a registry short name → the TF.js model in FP32");
    t.equal(s.graph.meta.name, "esrgan-slim-x2");
    const foreign = join(dir, "weights.safetensors");
    const P = parse(bytes);
    delete P.header.__metadata__;
    writeFileSync(foreign, build(P.header, P.data));
    await loadAnyModel(foreign).then(() => t.fail("foreign safetensors"), (e) => t.ok(e instanceof LowbitError && e.code === "E_MODEL_FORMAT" && /without lowbit metadata/.test(e.message), `a non-lowbit safetensors file: ${e.message}`));
    await readLowbitFile(join(dir, "missing.lowbit")).then(() => t.fail("missing"), (e) => t.equal(e.code, "E_IO", "readLowbitFile on a missing file → E_IO"));
    await loadAnyModel(join(dir, "missing.lowbit")).then(() => t.fail("missing"), (e) => t.equal(e.code, "E_IO", "loadAnyModel on a missing .lowbit → E_IO"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
