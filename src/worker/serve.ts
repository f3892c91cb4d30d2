/**
 * The worker side of the protocol (protocol.ts): one runtime (its own WASM instance and memory)
 * and one Upscaler per worker, jobs run one at a time in arrival order. `abort` messages are
 * handled at once: the tile loop yields to the event loop between plan steps (every ~30 ms), so
 * an abort posted by the client lands inside a long tile.
 *
 * A `tile` job runs exactly what the in-process tile loop runs for that tile (same plan size,
 * same core for adaptive bit decisions, the same fillInput / writeCore arithmetic), which is
 * why a pool's stitched output is bit-identical to `Upscaler.upscale`.
 */
import { LowbitError, throwIfAborted } from "../runtime/errors.ts";
import { createRuntime, type Runtime } from "../runtime/runtime.ts";
import { Upscaler, type CompilableModel } from "../engine/upscaler-api.ts";
import { fillInput, writeCore, type UpscaleProgress } from "../engine/upscaler.ts";
import { loadAnyModel } from "../io/load-any.ts";
import { imresize } from "../metrics/bicubic.ts";
import { progressFetch } from "../engine/browser.ts";
import { serializeError, type FromWorker, type ToWorker, type WorkerInfo, type WorkerModelOptions } from "./protocol.ts";
import { SabRowExchange } from "./halo.ts";
import { QuantizedModel } from "../quant/quantize-model.ts";
import { optimizeGraph } from "../graph/passes.ts";
import { haloBytesPerColumn, haloMarginLR, rowWindowsSupported } from "../graph/row-windows.ts";

/** The two calls a worker needs from its host (Node parentPort or a Web Worker's global scope). */
export interface WorkerPort {
  postMessage(msg: FromWorker, transfer?: Transferable[]): void;
  onMessage(handler: (msg: ToWorker) => void): void;
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

/** Whether the output depends on nothing but the pixels (no per-tile decisions or statistics). */
function pixelsOnly(m: CompilableModel): boolean {
  if (m.graph.meta.globalContext) return false; // squeeze-excite: means over the tile
  if (m.defaultTile !== undefined) return false; // adaptive bits: the tile is the bit-decision unit
  return !(m as { wholeImage?: boolean }).wholeImage; // DAQ / DFSQ: per-tile statistics
}

/** Whether any tile grid gives the in-process output (see WorkerInfo.exactTiling). */
function tilesFreely(m: CompilableModel, margin: number): boolean {
  const r = m.graph.meta.receptiveRadius;
  return r !== undefined && margin >= Math.ceil(r) && pixelsOnly(m);
}

/**
 * Halo sizes of a model whose plan can run as exchanging strips: the graph its plan walks (FP32:
 * the optimized graph; static quantized: its graph, conversions add no rows), elements counted
 * as 4 bytes (an upper bound for 8-bit codes). Undefined for other models.
 */
function haloInfo(m: CompilableModel): WorkerInfo["halo"] {
  const g = m instanceof QuantizedModel ? m.graph : m.config === "fp32" ? optimizeGraph(m.graph) : null;
  if (!g || !rowWindowsSupported(g)) return undefined;
  return { bytesPerColumn: haloBytesPerColumn(g, 4), margin: haloMarginLR(g) };
}

/** Serves upscale jobs on `port` until the host terminates the worker. */
export function serveUpscaler(port: WorkerPort): void {
  let rt: Runtime | null = null;
  let up: Upscaler | null = null;
  const running = new Map<number, AbortController>();
  let queue: Promise<void> = Promise.resolve();

  const post = (m: FromWorker, transfer?: Transferable[]) => port.postMessage(m, transfer);
  const fail = (id: number, e: unknown) => post({ type: "error", id, error: serializeError(e) });

  async function init(id: number, o: WorkerModelOptions): Promise<void> {
    const w = o.wasm ?? {};
    rt = await createRuntime({ module: w.module, bytes: w.bytes as BufferSource | undefined, url: w.url, backend: o.backend, maxMemoryBytes: o.maxMemoryBytes });
    const f = typeof fetch === "function" ? progressFetch((loaded, total) => post({ type: "load-progress", id, loaded, total })) : undefined;
    const model = await loadAnyModel(o.model, { ...o.load, fetch: f });
    up = new Upscaler(model, rt, { tile: o.tile, margin: o.margin, memoryBudget: o.memoryBudget, maxPixels: o.maxPixels });
    const g = model.graph.meta;
    const exactTiling = tilesFreely(model, up.margin);
    const info: WorkerInfo = {
      backend: rt.info, scale: g.scale, tile: up.tile, margin: up.margin, config: model.config, modelName: g.name ?? "",
      inputRange: [...g.inputRange], outputRange: [...g.outputRange], exactTiling,
      borderPad: g.borderPad ?? 0, tileAlign: g.tileAlign ?? 1, halo: pixelsOnly(model) && !g.borderPad ? haloInfo(model) : undefined,
    };
    post({ type: "ready", id, info });
  }

  function need(): Upscaler {
    if (!up) throw new LowbitError("E_NOT_INITIALIZED", "the worker has no model yet (send init first)");
    return up;
  }

  async function upscale(id: number, m: Extract<ToWorker, { type: "upscale" }>, signal: AbortSignal): Promise<void> {
    const onProgress = (progress: UpscaleProgress) => post({ type: "progress", id, progress });
    const r = await need().upscale(m.image, { tile: m.tile, margin: m.margin, signal, onProgress });
    post({ type: "result", id, data: r.data, width: r.width, height: r.height, channels: r.channels, bitMap: r.bitMap }, [r.data.buffer as ArrayBuffer]);
  }

  /** One tile of a pool's grid: the body of upscaleTiled's loop for that tile. */
  async function tile(id: number, m: Extract<ToWorker, { type: "tile" }>, signal: AbortSignal): Promise<void> {
    const u = need();
    const { region, core } = m;
    const rw = region.width, rh = region.height;
    if (!(region.data instanceof Uint8Array || region.data instanceof Uint8ClampedArray) || region.data.length !== rw * rh * 3) {
      throw new LowbitError("E_SHAPE", `tile region must be ${rw}×${rh} RGB bytes`);
    }
    if (core.x < 0 || core.y < 0 || core.w < 1 || core.h < 1 || core.x + core.w > rw || core.y + core.h > rh) {
      throw new LowbitError("E_SHAPE", `tile core ${JSON.stringify(core)} is not inside its ${rw}×${rh} region`);
    }
    const meta = u.model.graph.meta;
    const [ilo, ihi] = meta.inputRange;
    const [olo, ohi] = meta.outputRange;
    const p = u.planFor(Math.max(m.maxW, rw), Math.max(m.maxH, rh));
    const s = p.scale;
    fillInput(p.inputView(rw, rh), region.data, rw, rh, 3, { x: 0, y: 0, w: rw, h: rh, rx: 0, ry: 0, rw, rh }, ilo, (ihi - ilo) / 255);
    p.setCore?.(core.x, core.y, core.w, core.h);
    if (m.halo) {
      if (!p.setHalo) throw new LowbitError("E_UNSUPPORTED_LAYER", "this model's plan cannot run as exchanging strips");
      const { buffer, index, strips, slotBytes } = m.halo;
      p.setHalo(new SabRowExchange(buffer, index, strips, slotBytes), core.y, rh - core.y - core.h);
    } else p.trimRows?.(core.y, rh - core.y - core.h);
    let last = Date.now();
    try {
      for (let step = 0; step < p.stepCount; step++) {
        p.runSteps(rw, rh, step, step + 1);
        if (Date.now() - last >= 30) {
          await tick();
          last = Date.now();
          throwIfAborted(signal);
          post({ type: "progress", id, progress: { fraction: (step + 1) / p.stepCount, tile: 0, tiles: 1 } });
        }
      }
    } finally {
      if (m.halo) p.setHalo?.(null);
      p.trimRows?.(0, 0);
    }
    const out = new Uint8Array(core.w * s * core.h * s * 3);
    // writeCore reads the region's output at (x − rx)·s and writes at x·s: a core-sized output
    // is the tile { x: 0, rx: −core.x }.
    writeCore(out, core.w * s, 3, p.outputView(rw, rh), { x: 0, y: 0, w: core.w, h: core.h, rx: -core.x, ry: -core.y, rw, rh }, s, olo, ohi, 255 / (ohi - olo));
    const bits = p.tileBits?.() ?? null;
    post({
      type: "result", id, data: out, width: core.w * s, height: core.h * s, channels: 3, bits,
      bitLayers: bits ? p.bitLayerNames?.() : undefined,
    }, [out.buffer]);
  }

  function alpha(id: number, m: Extract<ToWorker, { type: "alpha" }>): void {
    // The same call as Upscaler.upscale's alpha path.
    const a = imresize({ data: m.data, width: m.width, height: m.height, channels: 1 }, { scale: m.scale }).data as Uint8Array;
    post({ type: "result", id, data: a, width: m.width * m.scale, height: m.height * m.scale, channels: 1 }, [a.buffer as ArrayBuffer]);
  }

  port.onMessage((m) => {
    if (m.type === "abort") {
      running.get(m.id)?.abort(m.reason ?? "aborted by the caller");
      return;
    }
    const ac = new AbortController();
    running.set(m.id, ac);
    queue = queue.then(async () => {
      try {
        throwIfAborted(ac.signal);
        if (m.type === "init") await init(m.id, m.options);
        else if (m.type === "upscale") await upscale(m.id, m, ac.signal);
        else if (m.type === "tile") await tile(m.id, m, ac.signal);
        else if (m.type === "alpha") alpha(m.id, m);
        else throw new LowbitError("E_ARGUMENT", `unknown worker message type '${(m as { type: string }).type}'`);
      } catch (e) {
        fail(m.id, e);
      } finally {
        running.delete(m.id);
      }
    });
  });
}
