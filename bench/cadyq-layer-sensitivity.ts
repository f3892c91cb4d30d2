// Can any per-layer bit allocation beat uniform bits on this network? An upper-bound check for
// CADyQ's target ("adaptive beats fixed by ≥ 0.1 dB at equal FAB"), independent of how well the
// selectors train.
//
//   node --import tsx bench/cadyq-layer-sensitivity.ts --model esrgan-medium-x2 [--low 4] [--high 6]
//        [--fixed 4,5,6] [--fab 5,4.5] [--steps 150] [--crop 128] [--modes patch,whole] [--json out.json]
//        [--save DIR | --load DIR] [--parts layers,tiles]
//
// 1. Trains single-candidate CADyQ models (the README's "fixed" rows: same PAMS layers, grid and
//    training) for every --fixed width, on data/calib.
// 2. Sensitivity, measured on data/calib only (never the eval set): starting from all layers at
//    --high, each selector layer in turn drops to --low (its α from the --low model); the score is the
//    increase of the float output's MSE against the FP32 model on the centre crop of every calib photo.
// 3. For each --fab target, the n = round(L·(high − fab)/(high − low)) least sensitive layers run at
//    --low, the rest at --high (selectors forced: A = 0, one-hot bias), and the n MOST sensitive as the
//    contrast. Both allocations and the fixed rows are scored on the held-out eval set (PSNR-Y / SSIM-Y,
//    patch mode = 96×96 regions as bench/cadyq-accuracy.ts, or whole image).
// 4. --parts tiles: the same question per tile (CADyQ's content-adaptive part). Every fixed model runs the
//    eval set in patch mode; since each 96×96 region is computed on its own, stitching tile cores from
//    different models is exactly what a per-tile bit choice would output. An oracle then picks each
//    tile's bits (greedy, largest mean-PSNR per bit saved) to reach each --fab: "HR oracle" scores
//    tiles against HR (an upper bound no deployable selector can beat), "fidelity oracle" minimises the
//    summed squared error against the FP32 output (no HR; the objective of a selector trained to the
//    FP32 teacher). The chosen tiles' mean gradient feature g per bit-width shows whether the
//    choice follows the content.
// This is an oracle-style allocation (HAWQ-like, from measured per-layer sensitivity), not CADyQ: it
// tells whether the per-layer part of CADyQ's decision has anything to gain on this model.
import { writeFileSync, readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { evalDir } from "../test/util/eval-data.ts";
import { loadModel } from "../src/models/registry.ts";
import { Upscaler, fp32Model } from "../src/engine/upscaler-api.ts";
import { listEvalSet, loadEvalPair } from "../src/metrics/evalset.ts";
import { scoreSR } from "../src/metrics/score.ts";
import { init } from "../src/runtime/runtime.ts";
import { loadCalibImages } from "../src/cli/model-options.ts";
import { centreCrop, type ImageLike } from "../src/engine/image.ts";
import { buildCadyqModel, quantizeCadyqDetailed, type CadyqLayerParams } from "../src/methods/cadyq/quantize.ts";
import { DynamicQuantizedModel } from "../src/methods/dynamic/model.ts";
import { loadLowbit, saveLowbit } from "../src/io/lowbit-file.ts";
import { rgbToY } from "../src/metrics/color.ts";
import type { BitMapTile } from "../src/adaptive/context.ts";
import type { CompilableModel } from "../src/engine/upscaler-api.ts";

const { values: a } = parseArgs({
  options: {
    model: { type: "string", default: "esrgan-medium-x2" }, low: { type: "string", default: "4" }, high: { type: "string", default: "6" },
    fixed: { type: "string", default: "4,5,6" }, fab: { type: "string", default: "5,4.5" }, steps: { type: "string", default: "150" },
    crop: { type: "string", default: "128" }, modes: { type: "string", default: "patch,whole" }, json: { type: "string" },
    data: { type: "string" }, calib: { type: "string" }, images: { type: "string" },
    save: { type: "string" }, load: { type: "string" }, parts: { type: "string", default: "layers" },
  },
});
a.data ??= evalDir();
a.calib ??= fileURLToPath(new URL("../data/calib", import.meta.url));
const low = Number(a.low), high = Number(a.high);
const fixedBits = [...new Set([...a.fixed!.split(",").map(Number), low, high])].sort((x, y) => x - y);
const rt = await init();
const graph = await loadModel(a.model!);
const scale = graph.meta.scale;
const calib = await loadCalibImages(a.calib!, scale, 512);
const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

// 1. Fixed single-candidate models.
const fixed = new Map<number, DynamicQuantizedModel>();
for (const b of fixedBits) {
  const file = (dir: string) => join(dir, `${a.model}-w8a${b}-steps${a.steps}.lowbit`);
  if (a.load) {
    const m = loadLowbit(readFileSync(file(a.load)));
    if (!(m instanceof DynamicQuantizedModel)) throw new Error(`${file(a.load)} is not a CADyQ model`);
    fixed.set(b, m);
    continue;
  }
  const t0 = performance.now();
  fixed.set(b, (await quantizeCadyqDetailed(graph, calib, { candidates: [b], steps: Number(a.steps), runtime: rt })).model);
  log(`fixed W8A${b}: trained in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (a.save) {
    mkdirSync(a.save, { recursive: true });
    writeFileSync(file(a.save), saveLowbit(fixed.get(b)!));
  }
}
const mLow = fixed.get(low)!, mHigh = fixed.get(high)!;
const ids = [...mHigh.layers.keys()];
const names = ids.map((id) => mHigh.layers.get(id)!.name);

/** Candidates {low, high} with the selector forced: layers in `lowSet` always pick low. */
function forced(lowSet: ReadonlySet<number>): DynamicQuantizedModel {
  const params = new Map<number, CadyqLayerParams>();
  for (const id of ids) {
    const C = graphCin(id);
    const al = (m: DynamicQuantizedModel) => { const s = m.layers.get(id)!.act; if (s.kind !== "cadyq") throw new Error("not cadyq"); return s.alpha[0]; };
    params.set(id, { alpha: [al(mLow), al(mHigh)], A: new Float32Array(2 * (C + 2)), a: lowSet.has(id) ? [1, 0] : [0, 1] });
  }
  return buildCadyqModel(mHigh.graph, params, { candidates: [low, high], scope: "reference", options: { forced: 1 } });
}
function graphCin(id: number): number {
  const n = mHigh.graph.nodes[id];
  if (n.op !== "conv2d") throw new Error("not a conv");
  return n.cin;
}

// 2. Sensitivity on the calib crops (float outputs against FP32's).
function layerSensitivity(): { id: number; name: string; d: number }[] {
  const side = Number(a.crop);
  const crops = calib.map((img) => centreCrop(img, side));
  const toFloat = (img: ImageLike): Float32Array => {
    const [lo, hi] = graph.meta.inputRange, k = (hi - lo) / 255;
    return Float32Array.from(img.data, (v) => lo + v * k);
  };
  const outputs = (model: CompilableModel): Float32Array[] => {
    const up = new Upscaler(model, rt, { tile: side, margin: 0 });
    try { return crops.map((c) => up.runFloat(toFloat(c), c.width, c.height)); } finally { up.dispose(); }
  };
  const ref = outputs(fp32Model(graph));
  const mse = (model: CompilableModel): number => {
    const o = outputs(model);
    let s = 0, n = 0;
    for (let i = 0; i < o.length; i++) for (let j = 0; j < o[i].length; j++) { const d = o[i][j] - ref[i][j]; s += d * d; n++; }
    return s / n;
  };
  const base = mse(forced(new Set()));
  const baseLow = mse(forced(new Set(ids)));
  log(`calib MSE vs FP32: all A${high} ${base.toExponential(3)}, all A${low} ${baseLow.toExponential(3)}`);
  const sens = ids.map((id, i) => {
    const d = mse(forced(new Set([id]))) - base;
    log(`  ${names[i].padEnd(8)} A${high}→A${low}: ΔMSE ${d.toExponential(3)}`);
    return { id, name: names[i], d };
  });
  const sumD = sens.reduce((s, x) => s + x.d, 0);
  log(`sum of single-layer ΔMSE ${sumD.toExponential(3)} vs all-low ΔMSE ${(baseLow - base).toExponential(3)} (additivity check)`);
  return sens;
}

// 3. Allocations on the eval set.
let pairs = await listEvalSet(a.data!, scale);
if (a.images) pairs = pairs.filter((p) => a.images!.split(",").includes(p.name));
const evalImgs = await Promise.all(pairs.map((p) => loadEvalPair(p, { channels: 3 })));
const maxLr = Math.max(...evalImgs.map((e) => Math.max(e.lr.width, e.lr.height)));
const PATCH = { tile: 90, margin: 3 };
const rows: Record<string, unknown>[] = [];
async function score(label: string, model: DynamicQuantizedModel, lowLayers: string[] | null): Promise<void> {
  for (const mode of a.modes!.split(",")) {
    const up = new Upscaler(model, rt, mode === "whole" ? { tile: maxLr, margin: 0 } : PATCH);
    const per: { name: string; psnr: number; ssim: number; fab: number }[] = [];
    for (const e of evalImgs) {
      const sr = await up.upscale(e.lr);
      const s = scoreSR(sr, e.hr, scale);
      per.push({ name: e.name, psnr: s.psnrY, ssim: s.ssimY, fab: sr.bitMap!.fab });
    }
    up.dispose();
    const m = (f: (r: (typeof per)[number]) => number) => per.reduce((s, r) => s + f(r), 0) / per.length;
    log(`${label.padEnd(26)} ${mode.padEnd(5)} PSNR-Y ${m((r) => r.psnr).toFixed(4)} SSIM-Y ${m((r) => r.ssim).toFixed(4)} FAB ${m((r) => r.fab).toFixed(3)}`);
    rows.push({ label, mode, psnr: m((r) => r.psnr), ssim: m((r) => r.ssim), fab: m((r) => r.fab), lowLayers, images: per });
  }
}

async function layerAllocations(): Promise<{ id: number; name: string; d: number }[]> {
  const sens = layerSensitivity();
  const byD = [...sens].sort((x, y) => x.d - y.d);
  for (const b of fixedBits) await score(`fixed W8A${b}`, fixed.get(b)!, null);
  for (const fab of fabs) {
    const n = Math.round((ids.length * (high - fab)) / (high - low));
    const least = byD.slice(0, n), most = byD.slice(byD.length - n);
    log(`FAB ${fab}: ${n} of ${ids.length} layers at A${low}; least sensitive: ${least.map((x) => x.name).join(" ")}`);
    await score(`least-sensitive@${fab}`, forced(new Set(least.map((x) => x.id))), least.map((x) => x.name));
    await score(`most-sensitive@${fab}`, forced(new Set(most.map((x) => x.id))), most.map((x) => x.name));
  }
  return sens;
}

// 4. Per-tile oracle.
interface TileCell { img: number; core: BitMapTile; g: number; sseHr: number[]; sseFid: number[] }
/** Σ (Y_a − Y_b)² over the tile's HR core, inside the protocol's shave border. */
function tileSse(ya: Float64Array, yb: Float64Array, W: number, H: number, t: BitMapTile): number {
  let s = 0;
  const x0 = Math.max(t.x * scale, scale), x1 = Math.min((t.x + t.w) * scale, W - scale);
  const y0 = Math.max(t.y * scale, scale), y1 = Math.min((t.y + t.h) * scale, H - scale);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) { const d = ya[y * W + x] - yb[y * W + x]; s += d * d; }
  return s;
}
async function tileOracle(): Promise<void> {
  const bits = fixedBits;
  const outs: ImageLike[][] = []; // [bits index][image]
  const upsOf = (m: CompilableModel) => new Upscaler(m, rt, PATCH);
  const fpUp = upsOf(fp32Model(graph));
  const fpOut: ImageLike[] = [];
  for (const e of evalImgs) fpOut.push(await fpUp.upscale(e.lr));
  fpUp.dispose();
  let grid: BitMapTile[][] = [];
  for (const b of bits) {
    const up = upsOf(fixed.get(b)!);
    const o: ImageLike[] = [];
    for (const e of evalImgs) o.push(await up.upscale(e.lr));
    up.dispose();
    grid = o.map((x) => (x as { bitMap?: { tiles: BitMapTile[] } }).bitMap!.tiles);
    outs.push(o);
  }
  const cells: TileCell[] = [];
  const pix: number[] = []; // shaved HR pixels per image
  evalImgs.forEach((e, i) => {
    const W = e.hr.width, H = e.hr.height;
    pix.push((W - 2 * scale) * (H - 2 * scale));
    const yHr = rgbToY(null, e.hr), yFp = rgbToY(null, fpOut[i] as never);
    const yq = outs.map((o) => rgbToY(null, o[i] as never));
    for (const t of grid[i]) {
      cells.push({ img: i, core: t, g: (t.feature[0] + t.feature[1]) / 2, sseHr: yq.map((y) => tileSse(y, yHr, W, H, t)), sseFid: yq.map((y) => tileSse(y, yFp, W, H, t)) });
    }
  });
  const nImg = evalImgs.length;
  const tilesOf = evalImgs.map((_, i) => cells.filter((c) => c.img === i).length);
  const psnrOf = (sse: number, n: number) => 10 * Math.log10((255 * 255 * n) / sse);
  for (const target of fabs) {
    for (const which of ["sseHr", "sseFid"] as const) {
      // Greedy from every tile at the top width: lower the tile whose next step loses the least mean PSNR
      // (of the criterion) per bit of set FAB saved, until the set FAB reaches the target.
      const at = cells.map(() => bits.length - 1);
      const sse = evalImgs.map((_, i) => cells.reduce((s, c) => s + (c.img === i ? c[which][bits.length - 1] : 0), 0));
      let fab = bits[bits.length - 1];
      while (fab > target + 1e-9) {
        let best = -1, bestRatio = -Infinity;
        cells.forEach((c, j) => {
          if (at[j] === 0) return;
          const i = c.img, nsse = sse[i] - c[which][at[j]] + c[which][at[j] - 1];
          // HR: the mean PSNR itself; fidelity: the summed squared error against FP32 (what a selector
          // trained on L1/L2 to the FP32 teacher minimises — per-image PSNR needs HR).
          const dPsnr = which === "sseHr" ? (psnrOf(nsse, pix[i]) - psnrOf(sse[i], pix[i])) / nImg : sse[i] - nsse;
          const dFab = (bits[at[j]] - bits[at[j] - 1]) / (tilesOf[i] * nImg);
          if (dPsnr / dFab > bestRatio) { bestRatio = dPsnr / dFab; best = j; }
        });
        if (best < 0) break;
        const c = cells[best], i = c.img;
        sse[i] += c[which][at[best] - 1] - c[which][at[best]];
        fab -= (bits[at[best]] - bits[at[best] - 1]) / (tilesOf[i] * nImg);
        at[best]--;
      }
      // Stitch the chosen tiles and score them with the protocol (also checks the SSE bookkeeping).
      const per = evalImgs.map((e, i) => {
        const W = e.hr.width, out = new Uint8Array(outs[0][i].data.length);
        cells.forEach((c, j) => {
          if (c.img !== i) return;
          const src = outs[at[j]][i].data, t = c.core;
          for (let y = t.y * scale; y < (t.y + t.h) * scale; y++) {
            const o = (y * W + t.x * scale) * 3;
            out.set(src.subarray(o, o + t.w * scale * 3), o);
          }
        });
        const s = scoreSR({ data: out, width: W, height: e.hr.height, channels: 3 }, e.hr, scale);
        const f = cells.filter((c) => c.img === i).reduce((acc, c) => acc + bits[at[cells.indexOf(c)]], 0) / tilesOf[i];
        return { name: e.name, psnr: s.psnrY, ssim: s.ssimY, fab: f };
      });
      const m = (f: (r: (typeof per)[number]) => number) => per.reduce((s, r) => s + f(r), 0) / per.length;
      const label = `${which === "sseHr" ? "HR" : "fidelity"} oracle@${target}`;
      const gBy = bits.map((b, k) => { const cs = cells.filter((_, j) => at[j] === k); return `A${b}: ${cs.length} tiles, mean g ${cs.length ? (cs.reduce((s, c) => s + c.g, 0) / cs.length).toFixed(1) : "–"}`; });
      log(`${label.padEnd(26)} patch PSNR-Y ${m((r) => r.psnr).toFixed(4)} SSIM-Y ${m((r) => r.ssim).toFixed(4)} FAB ${m((r) => r.fab).toFixed(3)}  (${gBy.join("; ")})`);
      log("        " + per.map((r) => `${r.name} ${r.psnr.toFixed(3)}/${r.fab.toFixed(2)}`).join("  "));
      rows.push({ label, mode: "patch", psnr: m((r) => r.psnr), ssim: m((r) => r.ssim), fab: m((r) => r.fab), images: per });
    }
  }
  // The fixed rows from the same outputs.
  bits.forEach((b, k) => {
    const per = evalImgs.map((e, i) => scoreSR(outs[k][i] as never, e.hr, scale).psnrY);
    log(`fixed W8A${b} (same outputs)  patch PSNR-Y ${(per.reduce((s, x) => s + x, 0) / per.length).toFixed(4)}`);
  });
}

const fabs = a.fab!.split(",").map(Number);
const parts = new Set(a.parts!.split(","));
const sensitivity = parts.has("layers") ? await layerAllocations() : null;
if (parts.has("tiles")) await tileOracle();
if (a.json) writeFileSync(a.json, JSON.stringify({ model: a.model, low, high, steps: Number(a.steps), sensitivity, rows }, null, 1));
