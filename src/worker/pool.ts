/**
 * Upscaling off the main thread: `UpscalerWorker` (one worker) and `createWorkerPool` (several,
 * splitting one image's tiles across them). The same code runs on Node `worker_threads` and
 * browser Web Workers; each worker owns its WASM instance and memory (no SharedArrayBuffer or
 * COOP/COEP headers needed; where SharedArrayBuffer exists it speeds up splits, see below). Pixels move with transfer lists: the caller's input is copied (or moved
 * with `transfer: true`), results come back moved. Progress events and AbortSignal cross the
 * boundary; errors come back as LowbitError with the worker's `code`.
 *
 *   const pool = await createWorkerPool({ model: "esrgan-medium-x2", size: 2 });
 *   const out = await pool.upscale(imageData, { onProgress, signal });   // = Upscaler.upscale, bit for bit
 *   pool.dispose();
 *
 * Why the pool's output is bit-identical to one worker and to the in-process Upscaler: it cuts
 * the image with the same tile planner, each worker runs exactly the in-process loop body on its
 * tiles (serve.ts), and the main thread only copies cores into place. When the model tiles
 * exactly (margin ≥ receptive radius, no per-tile decisions) the pool chooses its own balanced
 * grid (one tile per worker when memory allows), which changes no output byte; adaptive-bit and
 * per-image-statistics models keep the in-process grid tile for tile.
 *
 * When the image fits one full-width strip per worker, and the platform has SharedArrayBuffer
 * (Node; browsers when cross-origin isolated), the strips swap halo rows after every layer
 * (halo.ts) instead of each recomputing its margin: all strips then run at once on distinct
 * workers (a gang: dispatched together, never interleaved with other work). Otherwise margins
 * are recomputed, with each layer trimmed to the rows the core needs (row-windows.ts).
 */
import { LowbitError, throwIfAborted } from "../runtime/errors.ts";
import { DEFAULT_MAX_PIXELS, limitOption } from "../runtime/limits.ts";
import { imageChannels, type ImageLike } from "../engine/image.ts";
import { planTiles, type Tile, type TileGrid } from "../tiling/tiles.ts";
import { bitMapOf, type BitMap, type BitMapTile, type TileBits } from "../adaptive/context.ts";
import type { UpscaledImage, UpscaleProgress } from "../engine/upscaler.ts";
import { deserializeError, type FromWorker, type ToWorker, type WorkerInfo, type WorkerModelOptions } from "./protocol.ts";
import { abortHalo, haloBufferBytes } from "./halo.ts";

/** A Node `worker_threads` Worker or a browser `Worker` (anything with these members). */
export type WorkerLike =
  | { postMessage(m: unknown, transfer?: readonly Transferable[] | Transferable[]): void; terminate(): unknown; on(ev: string, h: (...a: never[]) => void): unknown }
  | { postMessage(m: unknown, transfer: Transferable[]): void; terminate(): void; addEventListener(ev: string, h: (e: never) => void): void };

/** Options of `createUpscalerWorker` / `UpscalerWorker.create`: the model (WorkerModelOptions) and how to start the worker. */
export interface WorkerOptions extends WorkerModelOptions {
  /**
   * Starts one worker running lowbit's worker entry. Default: Node → `worker_threads` on the
   * package's `worker-entry.js`; browsers → `new Worker(workerUrl, { type: "module" })`.
   */
  createWorker?: () => WorkerLike | Promise<WorkerLike>;
  /** Browsers: the URL of lowbit's worker script (a bundle of `lowbit/worker`). */
  workerUrl?: string | URL;
  /** Model download progress (bytes so far; total from Content-Length, null if unknown). */
  onLoadProgress?: (loaded: number, total: number | null) => void;
  /** Cancels loading (the workers are terminated). */
  signal?: AbortSignal;
}

/** Options of one worker / pool `upscale` call (as Upscaler.upscale's, plus `transfer`). */
export interface WorkerRunOptions {
  onProgress?: (p: UpscaleProgress) => void;
  signal?: AbortSignal;
  /** Tile core size (default: as the in-process upscaler; the pool may split exact models further). */
  tile?: number;
  margin?: number;
  /** Move the input's buffer to the worker instead of copying it (the caller's array is detached). UpscalerWorker only. */
  transfer?: boolean;
  /**
   * Pool only: let strips swap halo rows instead of recomputing margins when possible (default true;
   * false forces margin tiles — for comparisons; the output is the same either way).
   */
  haloExchange?: boolean;
}

type Pending = {
  resolve: (m: Extract<FromWorker, { type: "result" | "ready" }>) => void;
  reject: (e: unknown) => void;
  onProgress?: (p: UpscaleProgress) => void;
};

const isNode = (): boolean => {
  const g = globalThis as { process?: { versions?: { node?: string } }; window?: unknown; WorkerGlobalScope?: unknown };
  return typeof g.process?.versions?.node === "string" && g.window === undefined && g.WorkerGlobalScope === undefined;
};

/** Browser-relative model URLs are resolved against the page, not the worker script. */
function absolutize(o: WorkerModelOptions): WorkerModelOptions {
  const loc = (globalThis as { location?: { href: string } }).location;
  if (!loc || isNode()) return o;
  const abs = (s: string) => new URL(s, loc.href).href;
  const looksRelativeUrl = (s: string) => /^(\.{0,2}\/|[^:]*\.(json|lowbit)$)/i.test(s) && !/^[a-z][a-z0-9+.-]*:/i.test(s);
  const out: WorkerModelOptions = { ...o };
  if (typeof o.model === "string" && looksRelativeUrl(o.model)) out.model = abs(o.model);
  if (o.load?.modelBaseUrl !== undefined) out.load = { ...o.load, modelBaseUrl: abs(String(o.load.modelBaseUrl)) };
  if (o.wasm?.url !== undefined) out.wasm = { ...o.wasm, url: abs(String(o.wasm.url)) };
  return out;
}

async function defaultWorker(workerUrl?: string | URL): Promise<WorkerLike> {
  if (isNode()) {
    const { Worker } = await import("node:worker_threads");
    if (workerUrl !== undefined) return new Worker(new URL(String(workerUrl)));
    if (import.meta.url.endsWith(".ts")) {
      // Running lowbit's TypeScript sources (tsx): the worker registers tsx's loader first, then
      // imports the .ts entry (execArgv --import is not honoured by every Node version's workers).
      const tsx = import.meta.resolve("tsx/esm/api");
      const entry = new URL("./worker-entry.ts", import.meta.url).href;
      // Both are URL hrefs: quotes and backslashes are percent-encoded, so plain quoting is safe.
      const code = `import { register } from "${tsx}"; register(); await import("${entry}");`;
      return new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`));
    }
    return new Worker(new URL("./worker-entry.js", import.meta.url));
  }
  const W = (globalThis as { Worker?: new (u: string | URL, o: { type: "module" }) => WorkerLike }).Worker;
  if (!W) throw new LowbitError("E_WORKER", "this environment has no Worker");
  return workerUrl !== undefined ? new W(workerUrl, { type: "module" }) : new W(new URL("./worker-entry.js", import.meta.url), { type: "module" });
}

/**
 * One worker with one model: `upscale()` sends the whole image and the worker runs the
 * in-process Upscaler on it. Also the unit a WorkerPool is made of.
 */
export class UpscalerWorker {
  /** Set once the worker has loaded its model. */
  info!: WorkerInfo;
  private readonly w: WorkerLike;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: LowbitError | null = null;
  private disposed = false;
  /** Called once when the worker dies (crash, failed start, terminate from outside). */
  onCrash: ((e: LowbitError) => void) | null = null;

  private constructor(w: WorkerLike) {
    this.w = w;
    const onMsg = (m: FromWorker) => this.receive(m);
    const onErr = (why: string, cause?: unknown) => this.crash(why, cause);
    if ("on" in w && typeof w.on === "function") {
      w.on("message", onMsg as never);
      w.on("error", ((e: Error) => onErr(`the worker threw ${e.name}: ${e.message}`, e)) as never);
      w.on("messageerror", ((e: Error) => onErr(`a message could not be deserialized: ${e.message}`, e)) as never);
      w.on("exit", ((code: number) => onErr(`the worker exited (code ${code})`)) as never);
    } else {
      const bw = w as Extract<WorkerLike, { addEventListener: unknown }>;
      bw.addEventListener("message", ((e: MessageEvent) => onMsg(e.data as FromWorker)) as never);
      bw.addEventListener("error", ((e: ErrorEvent) => {
        e.preventDefault?.();
        onErr(`the worker failed: ${e.message || "could not load the worker script (check workerUrl)"}`, e.error);
      }) as never);
      bw.addEventListener("messageerror", (() => onErr("a message could not be deserialized")) as never);
    }
  }

  /** Starts a worker and loads the model in it; resolves when the worker is ready. */
  static async create(o: WorkerOptions): Promise<UpscalerWorker> {
    throwIfAborted(o.signal);
    const { createWorker, workerUrl, onLoadProgress, signal, ...model } = o;
    let raw: WorkerLike;
    try {
      raw = await (createWorker ? createWorker() : defaultWorker(workerUrl));
    } catch (e) {
      throw e instanceof LowbitError ? e : new LowbitError("E_WORKER", `could not start a worker: ${(e as Error).message}`, { cause: e });
    }
    const uw = new UpscalerWorker(raw);
    const stop = () => uw.dispose();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      const id = uw.nextId++;
      const ready = uw.request(id, { type: "init", id, options: absolutize(model) }, [], undefined, onLoadProgress);
      const r = await ready;
      uw.info = (r as Extract<FromWorker, { type: "ready" }>).info;
    } catch (e) {
      uw.dispose();
      throwIfAborted(signal);
      throw e;
    } finally {
      signal?.removeEventListener("abort", stop);
    }
    return uw;
  }

  get alive(): boolean {
    return !this.dead && !this.disposed;
  }

  get scale(): number {
    return this.info.scale;
  }

  private loadProgress = new Map<number, (l: number, t: number | null) => void>();

  private receive(m: FromWorker): void {
    if (m.type === "load-progress") {
      this.loadProgress.get(m.id)?.(m.loaded, m.total);
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return; // a job abandoned by the caller (aborted) finishing late
    if (m.type === "progress") {
      p.onProgress?.(m.progress);
      return;
    }
    this.pending.delete(m.id);
    this.loadProgress.delete(m.id);
    if (m.type === "error") p.reject(deserializeError(m.error));
    else p.resolve(m);
  }

  private crash(why: string, cause?: unknown): void {
    if (this.dead || this.disposed) return;
    this.dead = new LowbitError("E_WORKER", `lowbit worker crashed: ${why}`, { cause });
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
    try {
      this.w.terminate();
    } catch {
      /* already gone */
    }
    this.onCrash?.(this.dead);
  }

  /** Posts a request; resolves with the worker's result (or rejects with its LowbitError). */
  request(
    id: number, msg: ToWorker, transfer: Transferable[], onProgress?: (p: UpscaleProgress) => void,
    onLoad?: (l: number, t: number | null) => void,
  ): Promise<Extract<FromWorker, { type: "result" | "ready" }>> {
    if (this.disposed) return Promise.reject(new LowbitError("E_NOT_INITIALIZED", "the worker was disposed"));
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      if (onLoad) this.loadProgress.set(id, onLoad);
      try {
        this.w.postMessage(msg, transfer);
      } catch (e) {
        this.pending.delete(id);
        reject(new LowbitError("E_ARGUMENT", `cannot send to the worker: ${(e as Error).message}`, { cause: e }));
      }
    });
  }

  /** A fresh request id (ids are per worker). */
  newId(): number {
    return this.nextId++;
  }

  /** Asks the worker to stop job `id` (it rejects with E_ABORTED at its next yield). */
  abort(id: number, reason?: unknown): void {
    if (!this.alive) return;
    try {
      this.w.postMessage({ type: "abort", id, reason: String(reason ?? "aborted") } satisfies ToWorker, []);
    } catch {
      /* worker gone */
    }
  }

  /**
   * Upscales an 8-bit RGB/RGBA image in the worker (same options and result as
   * Upscaler.upscale). The main thread only posts and receives messages.
   */
  async upscale(img: ImageLike, o: WorkerRunOptions = {}): Promise<UpscaledImage> {
    imageChannels(img, DEFAULT_MAX_PIXELS);
    throwIfAborted(o.signal);
    const id = this.newId();
    const data = o.transfer ? img.data : img.data.slice();
    const msg: ToWorker = { type: "upscale", id, image: { data, width: img.width, height: img.height, channels: img.channels }, tile: o.tile, margin: o.margin };
    const onAbort = () => this.abort(id, o.signal?.reason);
    o.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const r = await raceAbort(this.request(id, msg, [data.buffer as ArrayBuffer], o.onProgress), o.signal);
      const m = r as Extract<FromWorker, { type: "result" }>;
      const out: UpscaledImage = { data: m.data, width: m.width, height: m.height, channels: m.channels as 3 | 4 };
      if (m.bitMap) out.bitMap = m.bitMap as BitMap;
      return out;
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Terminates the worker; pending calls reject with E_NOT_INITIALIZED. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const e = new LowbitError("E_NOT_INITIALIZED", "the worker was disposed");
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    try {
      this.w.terminate();
    } catch {
      /* gone */
    }
  }
}

/** Rejects with E_ABORTED as soon as the signal fires (the worker is told separately). */
function raceAbort<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      try {
        throwIfAborted(signal);
      } catch (e) {
        reject(e);
      }
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Starts a worker and loads `model` in it. */
export function createUpscalerWorker(o: WorkerOptions): Promise<UpscalerWorker> {
  return UpscalerWorker.create(o);
}

/** Options of `createWorkerPool`: WorkerOptions plus the number of workers. */
export interface WorkerPoolOptions extends WorkerOptions {
  /** Number of workers (default: hardware concurrency, at least 1). */
  size?: number;
}

interface Task {
  job: Job;
  index: number;
  /** First task of a gang of `gang` consecutive tasks that must start together on distinct workers. */
  gang?: number;
  make: (id: number) => { msg: ToWorker; transfer: Transferable[] };
  onResult: (m: Extract<FromWorker, { type: "result" }>) => void;
  work: number;
}

interface Job {
  done: boolean;
  fail: (e: unknown) => void;
  running: Map<Task, { w: UpscalerWorker; id: number }>;
  progress: (task: Task, fraction: number) => void;
}

/**
 * Balanced grid for models that tile exactly: at least one tile per worker, cores at most
 * `tile` per side, cut along the longer side first (fewer, squarer tiles waste less margin).
 */
export function planPoolTiles(W: number, H: number, tile: number, margin: number, workers: number): TileGrid {
  let nx = Math.ceil(W / tile);
  let ny = Math.ceil(H / tile);
  while (nx * ny < workers && (nx < W || ny < H)) {
    if ((H / ny >= W / nx && ny < H) || nx >= W) ny++;
    else nx++;
  }
  return gridOf(W, H, nx, ny, margin);
}

/** `strips` full-width strips of near-equal height (halo exchange, halo.ts), regions grown by `margin` rows. */
export function planPoolStrips(W: number, H: number, margin: number, strips: number): TileGrid {
  return gridOf(W, H, 1, Math.min(strips, H), margin);
}

/** nx × ny near-equal cores (planTiles with the tile that yields exactly nx×ny would need equal sides). */
function gridOf(W: number, H: number, nx: number, ny: number, margin: number): TileGrid {
  const split = (len: number, n: number): [number, number][] => {
    const out: [number, number][] = [];
    let s = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.round(((i + 1) * len) / n);
      out.push([s, e - s]);
      s = e;
    }
    return out;
  };
  const tiles: Tile[] = [];
  let maxW = 0, maxH = 0;
  for (const [y, h] of split(H, ny)) {
    for (const [x, w] of split(W, nx)) {
      const rx = Math.max(0, x - margin), ry = Math.max(0, y - margin);
      const rw = Math.min(W, x + w + margin) - rx, rh = Math.min(H, y + h + margin) - ry;
      tiles.push({ x, y, w, h, rx, ry, rw, rh });
      maxW = Math.max(maxW, rw);
      maxH = Math.max(maxH, rh);
    }
  }
  return { tiles, maxW, maxH };
}

/**
 * Several workers with the same model; `upscale()` deals the tiles of each image to whichever
 * worker is free. Calls may overlap (their tiles queue in order). A crashed worker fails the
 * calls that had tiles on it with E_WORKER and is replaced, so the pool stays usable.
 */
export class WorkerPool {
  readonly size: number;
  /** The first worker's report (model, scale, backend, default tile and margin). */
  info!: WorkerInfo;
  private workers: UpscalerWorker[] = [];
  private idle: UpscalerWorker[] = [];
  private queue: Task[] = [];
  private readonly opts: WorkerPoolOptions;
  private disposed = false;
  private readonly maxPixels: number;
  /** Workers replaced after a crash so far. */
  restarts = 0;
  /** Workers being restarted after a crash (a gang may wait for them). */
  private restarting = 0;

  private constructor(o: WorkerPoolOptions, size: number) {
    this.opts = o;
    this.size = size;
    this.maxPixels = limitOption(o.maxPixels, DEFAULT_MAX_PIXELS, "maxPixels");
  }

  static async create(o: WorkerPoolOptions): Promise<WorkerPool> {
    const hc = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
    const size = o.size ?? Math.max(1, hc ?? 1);
    if (!Number.isInteger(size) || size < 1 || size > 256) throw new LowbitError("E_ARGUMENT", `pool size must be an integer in [1, 256], got ${size}`);
    const pool = new WorkerPool(o, size);
    // Only the first worker reports download progress (every worker downloads the same files).
    const started = await Promise.allSettled(Array.from({ length: size }, (_, i) => UpscalerWorker.create({ ...o, onLoadProgress: i === 0 ? o.onLoadProgress : undefined })));
    const bad = started.find((s) => s.status === "rejected") as PromiseRejectedResult | undefined;
    if (bad) {
      for (const s of started) if (s.status === "fulfilled") s.value.dispose();
      throw bad.reason;
    }
    for (const s of started) pool.adopt((s as PromiseFulfilledResult<UpscalerWorker>).value);
    pool.info = pool.workers[0].info;
    return pool;
  }

  get scale(): number {
    return this.info.scale;
  }

  /** Workers currently alive. */
  get alive(): number {
    return this.workers.length;
  }

  private adopt(w: UpscalerWorker): void {
    w.onCrash = () => this.replace(w);
    this.workers.push(w);
    this.idle.push(w);
    this.pump();
  }

  private replace(w: UpscalerWorker): void {
    this.workers = this.workers.filter((x) => x !== w);
    this.idle = this.idle.filter((x) => x !== w);
    if (this.disposed) return;
    this.restarts++;
    this.restarting++;
    UpscalerWorker.create({ ...this.opts, onLoadProgress: undefined, signal: undefined }).then(
      (nw) => {
        this.restarting--;
        if (this.disposed) nw.dispose();
        else this.adopt(nw);
      },
      (e) => {
        this.restarting--;
        // Could not restart: with no worker left, queued work cannot run (a gang needing more than are left fails in pump).
        if (this.workers.length === 0) for (const t of this.queue.splice(0)) t.job.fail(e);
        else this.pump();
      },
    );
  }

  private pump(): void {
    while (this.idle.length && this.queue.length) {
      const n = this.queue[0].gang ?? 1;
      if (this.queue[0].job.done) {
        this.queue.splice(0, n);
        continue;
      }
      if (n > this.workers.length && !this.restarting) {
        const e = new LowbitError("E_WORKER", `${n} strips need ${n} workers; ${this.workers.length} are alive`);
        this.queue.splice(0, n)[0].job.fail(e);
        continue;
      }
      if (n > this.idle.length) return; // a gang waits for all its workers; nothing overtakes it
      for (const t of this.queue.splice(0, n)) this.dispatch(t, this.idle.shift()!);
    }
  }

  private dispatch(t: Task, w: UpscalerWorker): void {
    const id = w.newId();
    const { msg, transfer } = t.make(id);
    t.job.running.set(t, { w, id });
    w.request(id, msg, transfer, (p) => t.job.progress(t, p.fraction)).then(
      (m) => {
        t.job.running.delete(t);
        if (!t.job.done) t.onResult(m as Extract<FromWorker, { type: "result" }>);
      },
      (e) => {
        t.job.running.delete(t);
        t.job.fail(e);
      },
    ).finally(() => {
      if (w.alive && !this.idle.includes(w)) this.idle.push(w);
      this.pump();
    });
  }

  /**
   * Upscales an 8-bit RGB/RGBA image across the workers: bit-identical to Upscaler.upscale with
   * the same model and options. Progress and abort as Upscaler.upscale.
   */
  async upscale(img: ImageLike, o: WorkerRunOptions = {}): Promise<UpscaledImage> {
    if (this.disposed) throw new LowbitError("E_NOT_INITIALIZED", "the pool was disposed");
    const C = imageChannels(img, this.maxPixels);
    throwIfAborted(o.signal);
    const { width: W, height: H } = img;
    const margin = o.margin ?? this.info.margin;
    // A border-pad model (waifu2x) tiles as in-process (regions reach past the image and read the
    // replicated edge); the balanced pool grid is for the others.
    const pad = this.info.borderPad ?? 0;
    const free = o.tile === undefined && this.info.exactTiling && pad === 0 && (o.margin === undefined || o.margin >= this.info.margin);
    let grid = free ? planPoolTiles(W, H, this.info.tile, margin, this.size) : planTiles(W, H, o.tile ?? this.info.tile, margin, pad, this.info.tileAlign ?? 1);
    // Halo exchange: a single column of one strip per worker, each core tall enough for its halos.
    const halo = this.info.halo;
    let haloBuf: { buffer: SharedArrayBuffer; slotBytes: number } | null = null;
    // Halo exchange: one full-width strip per worker when each strip fits the memory of an in-process tile region
    // and its core is tall enough for the halos; else the margin grid above (rows trimmed).
    // Strips with exchanged halos compute exactly the untiled output: fine when any grid is (exact tiling), or when
    // the in-process run takes the whole image as one tile (models that do not tile exactly, e.g. thick's 16-px margin).
    const whole = grid.tiles.length === 1 && grid.tiles[0].rw === W && grid.tiles[0].rh === H && grid.tiles[0].rx === 0 && grid.tiles[0].ry === 0;
    if ((free || whole) && halo && o.haloExchange !== false && this.size > 1 && canShareMemory()) {
      const strips = planPoolStrips(W, H, Math.min(margin, halo.margin), this.size);
      const budget = (this.info.tile + 2 * margin) ** 2;
      if (strips.tiles.length === this.size && strips.maxW * strips.maxH <= budget && strips.tiles.every((t) => t.h >= Math.max(1, halo.margin))) {
        grid = strips;
        const slotBytes = Math.ceil((W * halo.bytesPerColumn) / 8) * 8;
        haloBuf = { buffer: new SharedArrayBuffer(haloBufferBytes(this.size, slotBytes)), slotBytes };
      }
    }
    const s = this.info.scale;
    const out = new Uint8Array(W * s * H * s * C);
    const work = grid.tiles.reduce((a, t) => a + t.rw * t.rh, 0);
    const bitTiles: (BitMapTile | null)[] = new Array(grid.tiles.length).fill(null);
    let bitLayers: { layers: string[]; counted: boolean[] } | undefined;
    let doneWork = 0, doneTiles = 0;
    const partial = new Map<Task, number>();

    return new Promise<UpscaledImage>((resolve, reject) => {
      const job: Job = {
        done: false,
        running: new Map(),
        fail: (e) => {
          if (job.done) return;
          job.done = true;
          if (haloBuf) abortHalo(haloBuf.buffer, grid.tiles.length);
          for (const [, r] of job.running) r.w.abort(r.id, "another tile of this image failed");
          o.signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
        progress: (task, f) => {
          partial.set(task, f * task.work);
          let p = doneWork;
          for (const v of partial.values()) p += v;
          o.onProgress?.({ fraction: p / work, tile: doneTiles, tiles: grid.tiles.length });
        },
      };
      const onAbort = () => {
        if (job.done) return;
        for (const [, r] of job.running) r.w.abort(r.id, o.signal?.reason);
        try {
          throwIfAborted(o.signal);
        } catch (e) {
          job.fail(e);
        }
      };
      o.signal?.addEventListener("abort", onAbort, { once: true });

      let remaining = grid.tiles.length + (C === 4 ? 1 : 0);
      const finish = () => {
        if (--remaining > 0 || job.done) return;
        job.done = true;
        o.signal?.removeEventListener("abort", onAbort);
        const r: UpscaledImage = { data: out, width: W * s, height: H * s, channels: C };
        if (bitLayers && bitTiles.every((b) => b)) r.bitMap = bitMapOf(bitLayers.layers, bitLayers.counted, bitTiles as BitMapTile[]);
        resolve(r);
      };

      grid.tiles.forEach((t, index) => {
        const task: Task = {
          job, index, work: t.rw * t.rh, gang: haloBuf && index === 0 ? grid.tiles.length : undefined,
          make: (id) => {
            const region = cropRgb(img.data, W, H, C, t);
            const h = haloBuf ? { buffer: haloBuf.buffer, index, strips: grid.tiles.length, slotBytes: haloBuf.slotBytes } : undefined;
            return {
              msg: { type: "tile", id, region: { data: region, width: t.rw, height: t.rh, channels: 3 }, core: { x: t.x - t.rx, y: t.y - t.ry, w: t.w, h: t.h }, maxW: grid.maxW, maxH: grid.maxH, halo: h },
              transfer: [region.buffer],
            };
          },
          onResult: (m) => {
            pasteCore(out, W * s, C, m.data, t, s);
            if (m.bits) {
              bitTiles[index] = { ...(m.bits as TileBits), x: t.x, y: t.y, w: t.w, h: t.h };
              bitLayers ??= m.bitLayers;
            }
            partial.delete(task);
            doneWork += task.work;
            doneTiles++;
            o.onProgress?.({ fraction: doneWork / work, tile: doneTiles, tiles: grid.tiles.length });
            finish();
          },
        };
        this.queue.push(task);
      });
      if (C === 4) {
        const alpha = new Uint8Array(W * H);
        for (let i = 0; i < W * H; i++) alpha[i] = img.data[i * 4 + 3];
        this.queue.push({
          job, index: -1, work: 0,
          make: (id) => ({ msg: { type: "alpha", id, data: alpha, width: W, height: H, scale: s }, transfer: [alpha.buffer] }),
          onResult: (m) => {
            for (let i = 0; i < m.data.length; i++) out[i * 4 + 3] = m.data[i];
            finish();
          },
        });
      }
      this.pump();
    });
  }

  /** Terminates every worker; pending calls reject. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const e = new LowbitError("E_NOT_INITIALIZED", "the pool was disposed");
    for (const t of this.queue.splice(0)) t.job.fail(e);
    for (const w of this.workers) w.dispose();
    this.workers = [];
    this.idle = [];
  }
}

/** Whether SharedArrayBuffer can be shared with workers here (Node; browsers only when cross-origin isolated). */
function canShareMemory(): boolean {
  if (typeof SharedArrayBuffer !== "function" || typeof Atomics !== "object") return false;
  const iso = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated;
  return iso !== false;
}

/** Starts `size` workers with the same model (see WorkerPool). */
export function createWorkerPool(o: WorkerPoolOptions): Promise<WorkerPool> {
  return WorkerPool.create(o);
}

/** The tile's region as packed RGB (the network sees RGB only); outside the image, the nearest edge pixel. */
function cropRgb(src: ArrayLike<number>, W: number, H: number, C: number, t: Tile): Uint8Array {
  const r = new Uint8Array(t.rw * t.rh * 3);
  let d = 0;
  for (let y = t.ry; y < t.ry + t.rh; y++) {
    const yy = y < 0 ? 0 : y >= H ? H - 1 : y;
    for (let x = t.rx; x < t.rx + t.rw; x++) {
      const i = (yy * W + (x < 0 ? 0 : x >= W ? W - 1 : x)) * C;
      r[d++] = src[i];
      r[d++] = src[i + 1];
      r[d++] = src[i + 2];
    }
  }
  return r;
}

/** A tile's upscaled core (RGB) into the output (C channels). */
function pasteCore(out: Uint8Array, OW: number, C: number, core: Uint8Array, t: Tile, s: number): void {
  const cw = t.w * s;
  for (let y = 0; y < t.h * s; y++) {
    let di = ((t.y * s + y) * OW + t.x * s) * C;
    let si = y * cw * 3;
    if (C === 3) {
      out.set(core.subarray(si, si + cw * 3), di);
      continue;
    }
    for (let x = 0; x < cw; x++, si += 3, di += 4) {
      out[di] = core[si];
      out[di + 1] = core[si + 1];
      out[di + 2] = core[si + 2];
    }
  }
}
