// The `lowbit` command line, spawned as users run it (bin/lowbit.js → dist, built by `npm test`
// before the suite), on the host Node with the backend under test. Small images only: the suite
// runs twice. Plus the evaluate() harness in process (fidelity) and the option validators.
import test from "tape";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import jpeg from "jpeg-js";
import { createUpscaler, fp32Model, type CompilableModel } from "../src/engine/upscaler-api.ts";
import { F32Plan } from "../src/graph/compile-f32.ts";
import type { Graph } from "../src/graph/ir.ts";
import { listModels, listNcnnModels, loadModel, resolveModelPath } from "../src/models/registry.ts";
import { decodeImage, readImage, writePng } from "../src/io/image.ts";
import { bicubicDown, imresize } from "../src/metrics/bicubic.ts";
import { psnrY } from "../src/metrics/psnr.ts";
import { scoreSR } from "../src/metrics/score.ts";
import type { ImageU8 } from "../src/metrics/color.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import { createRuntime } from "../src/runtime/runtime.ts";
import { evaluate } from "../src/cli/eval.ts";
import { buildModel, parseBits, parseModelOptions } from "../src/cli/model-options.ts";
import { evalDir } from "./util/eval-data.ts";
import { testBackend, testRuntime } from "./util/runtime.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const BIN = join(ROOT, "bin", "lowbit.js");
const BUILT = existsSync(join(ROOT, "dist", "src", "cli", "main.js"));
const TMP = mkdtempSync(join(tmpdir(), "lowbit-cli-"));
const BACKEND = testBackend();

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: "utf8",
    env: { ...process.env, LOWBIT_DEBUG: "", ...env },
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Fails (never skips) when the CLI was not built: `npm test` builds it first. */
function needBuilt(t: test.Test): boolean {
  if (!BUILT) t.fail("dist/src/cli/main.js missing: run `npm run build` before the CLI tests");
  return BUILT;
}

function crop(img: ImageU8, x0: number, y0: number, w: number, h: number): ImageU8 {
  const c = img.channels;
  const out = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) out.set(img.data.subarray(((y0 + y) * img.width + x0) * c, ((y0 + y) * img.width + x0 + w) * c), y * w * c);
  return { data: out, width: w, height: h, channels: c };
}

let sample: ImageU8 | null = null;
/** 24×20 RGB crop of a real LR image (textured: baboon). */
async function smallImage(): Promise<ImageU8> {
  return (sample ??= crop(await readImage(join(evalDir(), "lr_x2", "baboon.png")), 100, 60, 24, 20));
}

function sameBytes(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return -1;
  let d = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) d++;
  return d;
}

async function library(img: ImageU8, o: { tile?: number } = {}): Promise<ImageU8> {
  const up = await createUpscaler("default-model", { runtime: await testRuntime(), ...o });
  try {
    return await up.upscale(img);
  } finally {
    up.dispose();
  }
}

test("cli: --help, --version, usage errors exit 2, no command", (t) => {
  if (!needBuilt(t)) return t.end();
  const v = cli(["--version"]);
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  t.equal(v.status, 0, "--version exits 0");
  t.equal(v.stdout.trim(), `lowbit ${pkg.version}`, "--version prints the package version");
  const h = cli(["--help"]);
  t.ok(h.status === 0 && /upscale/.test(h.stdout) && /eval/.test(h.stdout) && /models/.test(h.stdout), "--help lists the commands");
  for (const c of ["upscale", "eval", "models"]) {
    const r = cli([c, "--help"]);
    t.ok(r.status === 0 && r.stdout.startsWith(`Usage: lowbit ${c}`), `${c} --help`);
  }
  const none = cli([]);
  t.ok(none.status === 2 && /Usage: lowbit/.test(none.stderr), "no command: usage on stderr, exit 2");
  const bad = cli(["frobnicate"]);
  t.ok(bad.status === 2 && /unknown command 'frobnicate'/.test(bad.stderr), "unknown command: exit 2");
  const opt = cli(["upscale", "a.png", "b.png", "--frob"]);
  t.equal(opt.status, 2, "unknown option: exit 2");
  t.ok(/^lowbit: E_ARGUMENT: unknown option '--frob'/m.test(opt.stderr) && /lowbit upscale --help/.test(opt.stderr), `message: ${opt.stderr.trim()}`);
  t.equal(cli(["upscale", "only-one.png"]).status, 2, "missing positional: exit 2");
  t.equal(cli(["upscale", "a.png", "b.jpg"]).status, 2, "non-PNG output name: exit 2");
  t.equal(cli(["upscale", "a.png", "b.png", "--tile", "12px"]).status, 2, "non-integer --tile: exit 2");
  t.equal(cli(["upscale", "a.png", "b.png", "--backend", "gpu"]).status, 2, "bad --backend: exit 2");
  t.equal(cli(["eval", "--data", TMP]).status, 2, "eval without --model: exit 2");
  t.end();
});

test("cli: upscale PNG equals createUpscaler().upscale() bit for bit (one tile and many)", async (t) => {
  if (!needBuilt(t)) return t.end();
  const img = await smallImage();
  const inPath = join(TMP, "in.png");
  await writePng(inPath, img);
  for (const tile of [undefined, 8]) {
    const outPath = join(TMP, `out-${tile ?? "dflt"}.png`);
    const r = cli(["upscale", inPath, outPath, "--backend", BACKEND, ...(tile ? ["--tile", String(tile)] : [])]);
    t.equal(r.status, 0, `exit 0 (tile ${tile ?? "default"}) ${r.stderr}`);
    const out = await readImage(outPath);
    t.deepEqual([out.width, out.height, out.channels], [48, 40, 3], "48×40 RGB");
    const want = await library(img, tile ? { tile } : {});
    t.equal(sameBytes(out.data, want.data), 0, "pixels equal the library's");
    t.ok(/48×40 RGB/.test(r.stdout) && new RegExp(`backend ${BACKEND}`).test(r.stdout) && / s /.test(r.stdout), `summary: ${r.stdout.trim()}`);
    t.ok(/upscale: 100%/.test(r.stderr), "non-TTY progress lines on stderr");
    if (tile) t.ok(/\(9 tiles\)/.test(r.stdout), "tile 8 on 24×20 → 3×3 tiles");
  }
  const q = cli(["upscale", inPath, join(TMP, "q.png"), "--backend", BACKEND, "--quiet"]);
  t.ok(q.status === 0 && q.stdout === "" && q.stderr === "", "--quiet prints nothing");
  const dflt = await readImage(join(TMP, "out-dflt.png"));
  const modelDir = dirname(await resolveModelPath("default-model"));
  for (const m of [modelDir, join(modelDir, "model.json")]) {
    const r = cli(["upscale", inPath, join(TMP, "bypath.png"), "--backend", BACKEND, "-q", "--model", m]);
    t.ok(r.status === 0 && sameBytes((await readImage(join(TMP, "bypath.png"))).data, dflt.data) === 0, `--model ${m.endsWith(".json") ? "model.json path" : "directory"} = default-model`);
  }
  t.end();
});

test("cli: quantize → .lowbit → upscale/eval; upscale --bits self-calibrates; the file equals the library's model", async (t) => {
  if (!needBuilt(t)) return t.end();
  const img = await smallImage();
  const inPath = join(TMP, "qin.png");
  await writePng(inPath, img);
  const calib = mkdtempSync(join(tmpdir(), "lowbit-qcal-"));
  await writePng(join(calib, "c.png"), img);
  const file = join(TMP, "m.lowbit");
  const q = cli(["quantize", "--model", "default-model", "--bits", "w4a8", "--method", "mse", "--calib", calib, "-o", file, "--quiet"]);
  t.equal(q.status, 0, `quantize exit 0 ${q.stderr}`);
  t.ok(existsSync(file) && readFileSync(file).length < 200_000, `.lowbit written (${existsSync(file) ? readFileSync(file).length : 0} bytes; FP32 weights are 888,300)`);
  const outPath = join(TMP, "qout.png");
  const u = cli(["upscale", inPath, outPath, "--model", file, "--backend", BACKEND]);
  t.ok(u.status === 0 && /w4a8 mse/.test(u.stdout), `upscale --model m.lowbit: ${u.stdout.trim()}`);
  // The same configuration built by the library from the same calibration image gives the same bytes.
  const { loadCalibImages, buildModel, parseModelOptions: pmo } = await import("../src/cli/model-options.ts");
  const graph = await loadModel("default-model");
  const rt = await createRuntime({ backend: BACKEND });
  const model = await buildModel(graph, pmo({ bits: "w4a8", method: "mse", calib }), { runtime: rt });
  t.ok((await loadCalibImages(calib, 2)).length === 1, "one calibration image");
  const want = await (await createUpscaler(model, { runtime: rt })).upscale(img);
  const got = await readImage(outPath);
  t.equal(sameBytes(got.data, want.data), 0, "CLI output from the .lowbit file = library output of the same configuration");
  const both = cli(["upscale", inPath, outPath, "--model", file, "--bits", "w8a8"]);
  t.ok(both.status === 2 && /already quantized/.test(both.stderr), ".lowbit plus --bits: usage error, exit 2");
  const self = cli(["upscale", inPath, join(TMP, "self.png"), "--bits", "w8a8", "--backend", BACKEND]);
  t.ok(self.status === 0 && /w8a8 minmax/.test(self.stdout), `upscale --bits w8a8 self-calibrates on the input: ${self.stdout.trim()}`);
  const noBits = cli(["quantize", "--model", "default-model", "-o", file]);
  t.ok(noBits.status === 2 && /--bits/.test(noBits.stderr), "quantize without --bits: exit 2");
  // The dynamic methods: DFSQ (calibrated codebooks) and DAQ (data-free) through the same commands.
  for (const [method, opts] of [["dfsq", "patches=4,patch=24"], ["daq", "qq=4,scope=full"]] as const) {
    const dfile = join(TMP, `${method}.lowbit`);
    const dq = cli(["quantize", "--model", "default-model", "--bits", "w4a4", "--method", method, "--method-options", opts, "--calib", calib, "-o", dfile, "--quiet"]);
    t.equal(dq.status, 0, `quantize --method ${method}: exit 0 ${dq.stderr}`);
    const ev = cli(["eval", "--model", dfile, "--data", evalDir(), "--images", "messi5", "--json", "--quiet", "--backend", BACKEND]);
    const j = ev.status === 0 ? JSON.parse(ev.stdout) : null;
    t.ok(j && j.config.startsWith(`w4a4 ${method}`) && j.tiling.tile === "whole" && j.mean.fidelity > 20,
      `eval --model ${method}.lowbit: config '${j?.config}', tiling ${j?.tiling?.tile}, fidelity ${j?.mean?.fidelity?.toFixed?.(2)} dB ${ev.stderr.split("\n")[0]}`);
  }
  t.end();
});

test("cli: JPEG input; RGBA PNG keeps its (bicubic-upscaled) alpha", async (t) => {
  if (!needBuilt(t)) return t.end();
  const img = await smallImage();
  const rgba = new Uint8Array(24 * 20 * 4);
  for (let i = 0; i < 24 * 20; i++) {
    rgba.set(img.data.subarray(i * 3, i * 3 + 3), i * 4);
    rgba[i * 4 + 3] = (i * 53) % 256;
  }
  const jpg = jpeg.encode({ data: Buffer.from(rgba.map((v, i) => (i % 4 === 3 ? 255 : v))), width: 24, height: 20 }, 90).data;
  const jpgPath = join(TMP, "in.jpg");
  writeFileSync(jpgPath, jpg);
  const r = cli(["upscale", jpgPath, join(TMP, "jpg-out.png"), "--backend", BACKEND, "-q"]);
  t.equal(r.status, 0, `JPEG: exit 0 ${r.stderr}`);
  const out = await readImage(join(TMP, "jpg-out.png"));
  const want = await library(decodeImage(new Uint8Array(jpg)));
  t.deepEqual([out.width, out.height, out.channels], [48, 40, 3], "JPEG → 48×40 RGB PNG");
  t.equal(sameBytes(out.data, want.data), 0, "JPEG: pixels equal the library's on the decoded JPEG");

  const rgbaImg: ImageU8 = { data: rgba, width: 24, height: 20, channels: 4 };
  const pngPath = join(TMP, "rgba.png");
  await writePng(pngPath, rgbaImg);
  const r2 = cli(["upscale", pngPath, join(TMP, "rgba-out.png"), "--backend", BACKEND, "-q"]);
  t.equal(r2.status, 0, `RGBA: exit 0 ${r2.stderr}`);
  const o2 = await readImage(join(TMP, "rgba-out.png"));
  t.deepEqual([o2.width, o2.height, o2.channels], [48, 40, 4], "RGBA in → 48×40 RGBA out");
  t.equal(sameBytes(o2.data, (await library(rgbaImg)).data), 0, "RGBA: pixels equal the library's");
  const alpha = new Uint8Array(24 * 20).map((_, i) => rgba[i * 4 + 3]);
  const wantA = imresize({ data: alpha, width: 24, height: 20, channels: 1 }, { scale: 2 }).data;
  t.equal(sameBytes(o2.data.filter((_, i) => i % 4 === 3), wantA), 0, "alpha = MATLAB bicubic ×2 of the input alpha");
  t.equal(sameBytes(o2.data.filter((_, i) => i % 4 !== 3), (await library(img)).data), 0, "RGB of RGBA output = RGB-only output");
  t.end();
});

type BaselineJson = Record<string, Record<string, { psnrY: number; ssimY: number }>>;
function baseline(dir: string): BaselineJson {
  const m = /```json\n([\s\S]*?)```/.exec(readFileSync(join(dir, "BASELINE.md"), "utf8"));
  if (!m) throw new Error("BASELINE.md has no ```json block");
  return JSON.parse(m[1]) as BaselineJson;
}

test("cli: eval --json on 2 images ×2 — schema, bicubic = BASELINE.md, model PSNR = library", async (t) => {
  if (!needBuilt(t)) return t.end();
  const dir = evalDir();
  const names = ["butterfly", "messi5"];
  const r = cli(["eval", "--model", "default-model", "--data", dir, "--scale", "2", "--images", names.join(","), "--json", "--backend", BACKEND]);
  t.equal(r.status, 0, `exit 0 ${r.stderr}`);
  let j: Record<string, unknown> & {
    images: { name: string; psnr: number; ssim: number; ms: number; bicubic: { psnr: number; ssim: number }; fidelity?: unknown }[];
    mean: { psnr: number; ssim: number; fidelity?: unknown };
    bicubic: { psnr: number; ssim: number };
  };
  try {
    j = JSON.parse(r.stdout);
  } catch (e) {
    t.fail(`stdout is not one JSON object: ${(e as Error).message}: ${r.stdout.slice(0, 200)}`);
    return t.end();
  }
  for (const k of ["model", "scale", "config", "images", "mean", "bicubic"]) t.ok(k in j, `has ${k}`);
  t.equal(j.model, "default-model");
  t.equal(j.scale, 2);
  t.equal(j.config, "fp32");
  t.deepEqual(j.tiling, { tile: 128, margin: 10 }, "tiling stated");
  t.deepEqual(j.images.map((x) => x.name), names, "the two images, in order");
  t.ok(j.images.every((x) => ["psnr", "ssim", "ms"].every((k) => typeof (x as Record<string, unknown>)[k] === "number") && x.ms > 0), "psnr, ssim, ms are numbers");
  t.ok(!("fidelity" in j.mean) && j.images.every((x) => !("fidelity" in x)), "FP32: no fidelity");
  const base = baseline(dir);
  for (const x of j.images) {
    const b = base[x.name].x2;
    t.ok(Math.abs(x.bicubic.psnr - b.psnrY) <= 5e-5, `${x.name}: bicubic PSNR-Y ${x.bicubic.psnr.toFixed(5)} = BASELINE ${b.psnrY}`);
    t.ok(Math.abs(x.bicubic.ssim - b.ssimY) <= 5e-6, `${x.name}: bicubic SSIM-Y ${x.bicubic.ssim.toFixed(6)} = BASELINE ${b.ssimY}`);
    const hr = await readImage(join(dir, "hr", `${x.name}.png`));
    const lr = await readImage(join(dir, "lr_x2", `${x.name}.png`));
    const s = scoreSR(await library(lr), hr, 2);
    t.ok(Math.abs(x.psnr - s.psnrY) < 1e-9 && Math.abs(x.ssim - s.ssimY) < 1e-12, `${x.name}: model PSNR-Y ${x.psnr.toFixed(4)} = library ${s.psnrY.toFixed(4)}`);
  }
  const mean = (f: (x: (typeof j.images)[number]) => number) => j.images.reduce((a, x) => a + f(x), 0) / j.images.length;
  t.ok(Math.abs(j.mean.psnr - mean((x) => x.psnr)) < 1e-12 && Math.abs(j.bicubic.psnr - mean((x) => x.bicubic.psnr)) < 1e-12, "means are per-image means");
  t.equal(r.stdout.trim().split("\n").length, 1, "exactly one line of JSON on stdout");

  const tab = cli(["eval", "--model", "default-model", "--data", dir, "--images", "messi5", "--backend", BACKEND, "-q"]);
  const row = tab.stdout.split("\n").find((l) => l.startsWith("messi5")) ?? "";
  t.ok(tab.status === 0 && row.includes(j.images[1].psnr.toFixed(4)) && row.includes(base.messi5.x2.psnrY.toFixed(4)) && /^mean /m.test(tab.stdout), `table row: ${row}`);
  t.end();
});

test("cli: errors — missing file E_IO, unknown model, bad --bits, quantized not yet, calib on eval data", async (t) => {
  if (!needBuilt(t)) return t.end();
  const img = await smallImage();
  const inPath = join(TMP, "err-in.png");
  await writePng(inPath, img);
  const miss = cli(["upscale", join(TMP, "nope.png"), join(TMP, "x.png")]);
  t.equal(miss.status, 1, "missing input: exit 1");
  t.ok(/^lowbit: E_IO: cannot read image .*nope\.png/.test(miss.stderr), `E_IO message: ${miss.stderr.trim()}`);
  t.notOk(/\n\s+at /.test(miss.stderr), "no stack trace");
  const dbg = cli(["upscale", join(TMP, "nope.png"), join(TMP, "x.png")], { LOWBIT_DEBUG: "1" });
  t.ok(dbg.status === 1 && /\n\s+at /.test(dbg.stderr), "LOWBIT_DEBUG=1 prints the stack");
  const outDir = cli(["upscale", inPath, join(TMP, "no-such-dir", "x.png"), "-q", "--backend", BACKEND]);
  t.ok(outDir.status === 1 && /^lowbit: E_IO: cannot write/.test(outDir.stderr), "unwritable output: E_IO, exit 1");
  const junk = join(TMP, "junk.png");
  writeFileSync(junk, "not an image at all");
  const j = cli(["upscale", junk, join(TMP, "x.png")]);
  t.ok(j.status === 1 && /^lowbit: E_ARGUMENT: .*not a PNG or JPEG/.test(j.stderr), `non-image: ${j.stderr.trim()}`);
  const um = cli(["upscale", inPath, join(TMP, "x.png"), "--model", "no-such-model"]);
  t.ok(um.status === 1 && /^lowbit: E_ARGUMENT: unknown model 'no-such-model'; known: .*default-model/.test(um.stderr), `unknown model: ${um.stderr.trim()}`);
  const dir = evalDir();
  for (const bits of ["w9a8", "w8", "int8", "w4a1"]) {
    const b = cli(["eval", "--model", "default-model", "--data", dir, "--bits", bits]);
    t.ok(b.status === 2 && /^lowbit: E_BITS: --bits/.test(b.stderr), `--bits ${bits}: exit 2, ${b.stderr.split("\n")[0]}`);
  }
  const meth = cli(["eval", "--model", "default-model", "--data", dir, "--bits", "w8a8", "--method", "magic"]);
  t.ok(meth.status === 2 && /unknown --method 'magic'; known: minmax/.test(meth.stderr), "unknown method: exit 2");
  const fpm = cli(["eval", "--model", "default-model", "--data", dir, "--method", "minmax"]);
  t.ok(fpm.status === 2 && /needs quantized --bits/.test(fpm.stderr), "--method with fp32: exit 2");
  const fq = cli(["eval", "--model", "default-model", "--data", dir, "--bits", "w4a4", "--method", "fqsr", "--images", "messi5", "--method-options", "init=kl"]);
  t.ok(fq.status === 1 && /^lowbit: E_ARGUMENT: --method-options init=kl: expected warmup/.test(fq.stderr), `fqsr with a bad option value: exit 1 before training (${fq.stderr.split("\n")[0]})`);
  const mo = cli(["eval", "--model", "default-model", "--data", dir, "--bits", "w4a4", "--method", "daq", "--method-options", "speed=9"]);
  t.ok(mo.status === 2 && /'speed' is not an option of daq/.test(mo.stderr), `unknown --method-options key: exit 2 (${mo.stderr.split("\n")[0]})`);
  const mo2 = cli(["eval", "--model", "default-model", "--data", dir, "--bits", "w4a4", "--method", "minmax", "--method-options", "qq=4"]);
  t.ok(mo2.status === 2 && /applies to --method daq \| dfsq/.test(mo2.stderr), "--method-options with a static method: exit 2");
  const mo3 = cli(["eval", "--model", "default-model", "--data", dir, "--bits", "w4a4", "--method", "daq", "--method-options", "qq=1", "--images", "messi5"]);
  t.ok(mo3.status === 1 && /E_BITS: DAQ σ-quantization bits/.test(mo3.stderr), `bad qq: E_BITS (${mo3.stderr.split("\n")[0]})`);
  // Quantized eval with calibration images that are not eval images (synthetic gradients + texture).
  const calib = mkdtempSync(join(tmpdir(), "lowbit-calib-"));
  for (let k = 0; k < 2; k++) {
    const w = 48, h = 40, data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
      data[(y * w + x) * 3 + c] = (x * (5 + c) + y * (3 + k) + ((x * 7919 + y * 104729 + c) % 37) * k) & 255;
    }
    await writePng(join(calib, `synthetic${k}.png`), { data, width: w, height: h, channels: 3 });
  }
  const q = cli(["eval", "--model", "default-model", "--data", dir, "--bits", "w8a8", "--calib", calib, "--images", "messi5", "--json"]);
  const qj = q.status === 0 ? JSON.parse(q.stdout) : null;
  t.ok(qj && qj.config === "w8a8 minmax" && qj.mean.fidelity > 35 && qj.images[0].fidelity === qj.mean.fidelity,
    `w8a8 eval calibrated on --calib runs: config '${qj?.config}', fidelity ${qj?.mean?.fidelity?.toFixed?.(2)} dB ${q.stderr.split("\n")[0]}`);
  const cal = cli(["eval", "--model", "default-model", "--data", dir, "--bits", "w8a8", "--calib", join(dir, "hr")]);
  t.ok(cal.status === 1 && /never calibrate on the eval images/.test(cal.stderr), "calib inside the eval data refused");
  const noimg = cli(["eval", "--model", "default-model", "--data", dir, "--images", "messi5,nosuch"]);
  t.ok(noimg.status === 1 && /no image 'nosuch'/.test(noimg.stderr), "unknown --images name: exit 1");
  const sc = cli(["eval", "--model", "default-model", "--data", dir, "--scale", "3"]);
  t.ok(sc.status === 1 && /upscales ×2, not ×3/.test(sc.stderr), "--scale mismatch: exit 1");
  t.end();
});

test("cli: models lists names, scale, arch, range, params, installed", (t) => {
  if (!needBuilt(t)) return t.end();
  const r = cli(["models", "--json"]);
  t.equal(r.status, 0, "exit 0");
  const rows = JSON.parse(r.stdout) as { name: string; scale: number; arch: string; inputRange: number[]; params: number | null; macsPerPixel: number | null; installed: boolean }[];
  const dm = rows.find((x) => x.name === "default-model");
  t.deepEqual(dm && [dm.scale, dm.arch, dm.inputRange, dm.installed, dm.params, dm.macsPerPixel], [2, "rdn", [0, 255], true, 222075, 222544], "default-model row (models.md counts)");
  const ps = rows.find((x) => x.name === "psnr-small-x2");
  t.deepEqual(ps?.inputRange, [0, 1], "psnr-small runs on 0–1");
  const thick = rows.find((x) => x.name === "esrgan-thick-x4");
  t.deepEqual(thick && [thick.arch, thick.params, thick.macsPerPixel], ["rrdn", 7260740, 7256016], "thick ×4 counts");
  t.deepEqual(rows.filter((x: any) => x.format === "tfjs").map((x) => x.name), listModels().map((m) => m.name), "the TF.js models first, as listModels()");
  const nc = rows.filter((x: any) => x.format === "ncnn");
  t.deepEqual(nc.map((x) => x.name), listNcnnModels().map((m) => m.name), "then the ncnn models, as listNcnnModels()");
  const rx = nc.find((x) => x.name === "realesr-animevideov3-x2")!;
  const present = existsSync(join(ROOT, "data", "ncnn", "real-esrgan", "models", "realesr-animevideov3-x2.param"));
  t.ok(!present || (rx.installed && rx.params !== null && rx.params > 0), `realesr-animevideov3-x2: installed ${rx.installed}, ${rx.params} params`);
  const tab = cli(["models"]);
  t.ok(tab.status === 0 && /^default-model\s+×2\s+rdn\s+0–255\s+222,075/m.test(tab.stdout), "table row");
  t.ok(/^waifu2x-upconv7-x2\s+×2\s.*(yes|no: npm run models:ncnn)$/m.test(tab.stdout), "ncnn rows in the table, with the fetch command when missing");
  t.end();
});

// ---------------------------------------------------------------- in process: harness and options

/** A tiny eval set (2 images, ×2) made from HR crops with MATLAB bicubic, in a temp dir. */
async function tinySet(): Promise<string> {
  const dir = join(TMP, "tiny");
  if (existsSync(join(dir, "hr"))) return dir;
  mkdirSync(join(dir, "hr"), { recursive: true });
  mkdirSync(join(dir, "lr_x2"), { recursive: true });
  for (const [name, x, y] of [["a", 120, 200], ["b", 300, 40]] as const) {
    const hr = crop(await readImage(join(evalDir(), "hr", "baboon.png")), x, y, 48, 40);
    await writePng(join(dir, "hr", `${name}.png`), hr);
    await writePng(join(dir, "lr_x2", `${name}.png`), bicubicDown(hr, 2));
  }
  return dir;
}

/** The graph with one conv's bias nudged: a stand-in for a quantized model of `g`. */
function perturbed(g: Graph): Graph {
  const nodes = g.nodes.map((n) => ({ ...n }));
  const i = nodes.findIndex((n) => n.op === "conv2d" && n.bias !== null);
  const n = nodes[i];
  if (n.op !== "conv2d" || !n.bias) throw new Error("no biased conv");
  nodes[i] = { ...n, bias: n.bias.map((v, c) => v + (c % 2 ? 0.5 : -0.5)) };
  return { ...g, nodes };
}

test("evaluate(): fidelity vs FP32 for non-FP32 configs (finite, exact; null when identical)", async (t) => {
  const rt = await testRuntime();
  const data = await tinySet();
  const g = await loadModel("default-model");
  const fp = await evaluate({ model: g, data, runtime: rt });
  t.equal(fp.config, "fp32");
  t.ok(fp.images.every((x) => x.fidelity === undefined), "fp32: no fidelity");
  t.deepEqual(fp.tiling, { tile: 128, margin: 10 }, "tiling reported");

  const pg = perturbed(g);
  const fake: CompilableModel = { graph: g, config: "test-perturbed", compile: (r, w, h) => new F32Plan(r, pg, w, h) };
  const res = await evaluate({ model: fake, data, runtime: rt, tile: 0 });
  t.equal(res.config, "test-perturbed");
  t.equal(res.tiling.tile, "whole", "tile 0 = whole image");
  const up = await createUpscaler(g, { runtime: rt });
  const upP = await createUpscaler(pg, { runtime: await createRuntime({ backend: BACKEND }) });
  for (const x of res.images) {
    const lr = await readImage(join(data, "lr_x2", `${x.name}.png`));
    const ref = await up.upscale(lr, { tile: 64 });
    const out = await upP.upscale(lr, { tile: 64 });
    const want = psnrY(out, ref, 2);
    t.ok(typeof x.fidelity === "number" && Number.isFinite(want) && Math.abs(x.fidelity - want) < 1e-9, `${x.name}: fidelity ${Number(x.fidelity).toFixed(3)} dB = psnrY(out, fp32 out) ${want.toFixed(3)}`);
    t.ok(x.psnr !== fp.images.find((y) => y.name === x.name)!.psnr, `${x.name}: the perturbed model scores differently`);
  }
  t.ok(typeof res.mean.fidelity === "number" && Math.abs(res.mean.fidelity - (res.images[0].fidelity! as number + (res.images[1].fidelity as number)) / 2) < 1e-12, "mean fidelity = mean of per-image");
  up.dispose();
  upP.dispose();

  const same: CompilableModel = { graph: g, config: "fp32-copy", compile: (r, w, h) => new F32Plan(r, g, w, h) };
  const id = await evaluate({ model: same, data, runtime: rt, images: ["b"] });
  t.ok(id.images.length === 1 && id.images[0].fidelity === null && id.mean.fidelity === null, "bit-identical output: fidelity null (infinite PSNR)");
  t.equal(JSON.parse(JSON.stringify(id)).images[0].fidelity, null, "and survives JSON");
  t.equal(id.images[0].psnr, fp.images[1].psnr, "same model, same score");

  const codeOf = async (f: () => Promise<unknown>) => f().then(() => "ok", (e) => (e instanceof LowbitError ? e.code : String(e)));
  t.equal(await codeOf(() => evaluate({ model: g, data, runtime: rt, scale: 4 })), "E_ARGUMENT", "scale mismatch");
  t.equal(await codeOf(() => evaluate({ model: g, data: join(TMP, "nowhere"), runtime: rt })), "E_IO", "missing data dir");
  t.equal(await codeOf(() => evaluate({ model: fake, data, runtime: rt, bits: "w8a8" })), "E_ARGUMENT", "bits with a ready model");
  t.end();
});

test("model options: --bits / --method / --calib validation, buildModel", async (t) => {
  t.deepEqual(parseBits("fp32"), { kind: "fp32" });
  t.deepEqual(parseBits("W4A8"), { kind: "int", w: 4, a: 8 });
  t.deepEqual(parseBits("w2a2"), { kind: "int", w: 2, a: 2 });
  for (const bad of ["", "w8", "a8", "w1a8", "w8a9", "w16a16", "w8a8x", "8", "int8", "w-1a8"]) {
    let code = "ok";
    try {
      parseBits(bad);
    } catch (e) {
      code = e instanceof LowbitError ? e.code : "other";
    }
    t.equal(code, "E_BITS", `'${bad}' rejected`);
  }
  t.deepEqual(parseModelOptions({}), { bits: { kind: "fp32" } }, "default fp32");
  t.deepEqual(parseModelOptions({ bits: "w8a8" }), { bits: { kind: "int", w: 8, a: 8 }, method: "minmax", calib: undefined }, "default method minmax");
  t.equal(parseModelOptions({ bits: "w4a8", method: "DAQ" }).method, "daq", "method case-insensitive");
  t.equal(parseModelOptions({ bits: "w4a8", calib: TMP }).calib, TMP, "calib resolved");
  const code = (f: () => unknown) => {
    try {
      f();
      return "ok";
    } catch (e) {
      return e instanceof LowbitError ? e.code : "other";
    }
  };
  t.equal(code(() => parseModelOptions({ bits: "w4a8", calib: join(TMP, "nope") })), "E_IO", "missing calib dir");
  t.equal(code(() => parseModelOptions({ method: "minmax" })), "E_ARGUMENT", "method with fp32");
  t.equal(code(() => parseModelOptions({ calib: TMP })), "E_ARGUMENT", "calib with fp32");
  t.equal(code(() => parseModelOptions({ bits: "w8a8", method: "nope" })), "E_ARGUMENT", "unknown method");
  const g = await loadModel("default-model");
  const m = await buildModel(g, { bits: { kind: "fp32" } });
  t.ok(m.config === "fp32" && m.graph === g, "fp32 → the graph as imported");
  t.deepEqual(Object.keys(m), Object.keys(fp32Model(g)), "same shape as fp32Model");
  let q = "ok";
  await buildModel(g, { bits: { kind: "int", w: 8, a: 8 }, method: "minmax" }).catch((e) => (q = e instanceof LowbitError ? e.code : "other"));
  t.equal(q, "E_ARGUMENT", "quantized: E_ARGUMENT until the quantized-inference work lands");
  t.end();
});

test("cli: --input-range overrides the model's range (psnr-small trained on 0–1), and is validated", async (t) => {
  if (!needBuilt(t)) return t.end();
  const dir = evalDir();
  const a = cli(["eval", "--model", "default-model", "--data", dir, "--images", "messi5", "--json"]);
  const b = cli(["eval", "--model", "default-model", "--data", dir, "--images", "messi5", "--json", "--input-range", "0,1"]);
  const ja = JSON.parse(a.stdout), jb = JSON.parse(b.stdout);
  t.deepEqual([ja.inputRange, jb.inputRange], [[0, 255], [0, 1]], "JSON reports the range used");
  t.notEqual(ja.mean.psnr, jb.mean.psnr, `a different range gives a different result (${ja.mean.psnr.toFixed(3)} vs ${jb.mean.psnr.toFixed(3)} dB)`);
  const bad = cli(["eval", "--model", "default-model", "--data", dir, "--input-range", "1,0"]);
  t.ok(bad.status === 2 && /--input-range takes lo,hi/.test(bad.stderr), "lo ≥ hi: usage error");
  t.end();
});
