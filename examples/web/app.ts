// The demo page: pick an image (or a bundled sample), a model and a precision; lowbit upscales it
// in a pool of Web Workers with a progress bar and a cancel button, and shows input and output
// with a draggable divider, the time taken and, for samples, PSNR-Y against the HR image.
// Bundled by examples/web/build.ts with esbuild; `window.__demo` exposes the state for the test.
import {
  createRuntime, createWorkerPool, drawToCanvas, imageDataFrom, psnrY, toRgb, LowbitError,
  type WorkerPool, type WorkerPoolOptions, type RgbaImage, type UpscaledImage,
} from "../../src/index.ts";

interface Sample { name: string; lr: Record<string, string>; hr: string | null }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const sampleSel = $<HTMLSelectElement>("sample");
const fileIn = $<HTMLInputElement>("file");
const modelSel = $<HTMLSelectElement>("model");
const precSel = $<HTMLSelectElement>("precision");
const workersSel = $<HTMLSelectElement>("workers");
const runBtn = $<HTMLButtonElement>("run");
const cancelBtn = $<HTMLButtonElement>("cancel");
const bar = $<HTMLProgressElement>("progress");
const status = $<HTMLDivElement>("status");
const errorBox = $<HTMLDivElement>("error");
const compare = $<HTMLDivElement>("compare");
const before = $<HTMLCanvasElement>("before");
const after = $<HTMLCanvasElement>("after");
const handle = $<HTMLDivElement>("handle");
const facts = $<HTMLTableElement>("facts");

/** What the browser test reads. */
const demo = {
  state: "starting" as string,
  errorCode: null as string | null,
  error: null as string | null,
  runs: 0,
  result: null as null | { sha256: string; width: number; height: number; channels: number; ms: number; psnr: number | null; config: string; backend: string; workers: number },
  inputBase64: null as string | null,
  inputSize: null as null | { width: number; height: number },
};
(window as unknown as { __demo: typeof demo }).__demo = demo;

let samples: Sample[] = [];
let pool: WorkerPool | null = null;
let poolKey = "";
let running: AbortController | null = null;
let userImage: RgbaImage | null = null;

function setState(s: string): void {
  demo.state = s;
  document.body.dataset.state = s;
}

function showError(e: unknown): void {
  const code = e instanceof LowbitError ? e.code : null;
  demo.errorCode = code;
  demo.error = (e as Error)?.message ?? String(e);
  errorBox.textContent = code === "E_WASM_UNSUPPORTED"
    ? `This browser cannot run lowbit: it has no WebAssembly SIMD.\n${demo.error}`
    : demo.error;
}

function modelSource(model: string, precision: string): Pick<WorkerPoolOptions, "model" | "load"> {
  if (precision === "fp32") return { model, load: { modelBaseUrl: new URL("./node_modules/", location.href).href } };
  return { model: new URL(`./models/${model}-${precision}.lowbit`, location.href).href };
}

async function getPool(): Promise<WorkerPool> {
  const key = `${modelSel.value}|${precSel.value}|${workersSel.value}`;
  if (pool && poolKey === key) return pool;
  pool?.dispose();
  pool = null;
  status.textContent = `loading ${modelSel.value} (${precSel.value}) in ${workersSel.value} worker(s)…`;
  bar.removeAttribute("value");
  const p = await createWorkerPool({
    ...modelSource(modelSel.value, precSel.value),
    size: Number(workersSel.value),
    workerUrl: new URL("./worker.js", location.href),
    signal: running?.signal,
    onLoadProgress: (loaded, total) => {
      if (total) bar.value = loaded / total;
      status.textContent = `loading model: ${(loaded / 1024).toFixed(0)} KiB${total ? ` of ${(total / 1024).toFixed(0)} KiB` : ""}`;
    },
  });
  pool = p;
  poolKey = key;
  return p;
}

async function fetchImage(url: string): Promise<RgbaImage> {
  const res = await fetch(url);
  if (!res.ok) throw new LowbitError("E_IO", `cannot fetch ${url}: HTTP ${res.status}`);
  return imageDataFrom(await res.blob());
}

function scaleOf(model: string): number {
  return Number(/x(\d+)$/.exec(model)![1]);
}

async function bytesToBase64(b: Uint8ClampedArray): Promise<string> {
  const url: string = await new Promise((res) => {
    const r = new FileReader();
    r.onload = () => res(r.result as string);
    r.readAsDataURL(new Blob([b as Uint8ClampedArray<ArrayBuffer>]));
  });
  return url.slice(url.indexOf(",") + 1);
}

async function sha256(d: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", d as Uint8Array<ArrayBuffer>));
  return Array.from(h, (x) => x.toString(16).padStart(2, "0")).join("");
}

function setDivider(f: number): void {
  const pct = Math.max(0, Math.min(1, f)) * 100;
  before.style.clipPath = `inset(0 ${100 - pct}% 0 0)`;
  handle.style.left = `${pct}%`;
}

async function run(): Promise<void> {
  if (running) return;
  errorBox.textContent = "";
  demo.errorCode = demo.error = null;
  running = new AbortController();
  const signal = running.signal;
  runBtn.disabled = true;
  cancelBtn.disabled = false;
  setState("loading");
  try {
    const model = modelSel.value;
    const s = scaleOf(model);
    const sample = samples.find((x) => x.name === sampleSel.value);
    const input = userImage ?? (sample ? await fetchImage(sample.lr[String(s)] ?? sample.lr["2"]) : null);
    if (!input) throw new LowbitError("E_ARGUMENT", "pick an image first");
    demo.inputBase64 = await bytesToBase64(input.data);
    demo.inputSize = { width: input.width, height: input.height };
    const p = await getPool();
    signal.throwIfAborted?.();
    setState("running");
    bar.value = 0;
    status.textContent = `upscaling ${input.width}×${input.height} ×${p.scale} on ${p.alive} worker(s) (${p.info.config}, ${p.info.backend.backend})…`;
    const t0 = performance.now();
    const out: UpscaledImage = await p.upscale(input, {
      signal,
      onProgress: (q) => {
        bar.value = q.fraction;
      },
    });
    const ms = performance.now() - t0;
    drawToCanvas(after, out);
    drawToCanvas(before, input);
    compare.hidden = false;
    setDivider(0.5);
    let psnr: number | null = null;
    if (!userImage && sample?.hr) {
      const hr = await fetchImage(sample.hr);
      if (hr.width === out.width && hr.height === out.height) psnr = psnrY(toRgb(out), toRgb(hr), s);
    }
    demo.result = {
      sha256: await sha256(out.data), width: out.width, height: out.height, channels: out.channels, ms, psnr,
      config: p.info.config, backend: p.info.backend.backend, workers: p.alive,
    };
    demo.runs++;
    bar.value = 1;
    status.textContent = `done in ${ms.toFixed(0)} ms — ${out.width}×${out.height}` + (psnr !== null ? `, PSNR-Y vs HR ${psnr.toFixed(2)} dB` : "");
    facts.innerHTML = "";
    for (const [k, v] of [["model", `${model} (${p.info.config})`], ["backend", p.info.backend.backend], ["workers", String(p.alive)], ["time", `${ms.toFixed(0)} ms`], ["PSNR-Y vs HR", psnr === null ? "—" : `${psnr.toFixed(2)} dB`]]) {
      const tr = facts.insertRow();
      tr.insertCell().textContent = k;
      tr.insertCell().textContent = v;
    }
    setState("done");
  } catch (e) {
    if (e instanceof LowbitError && e.code === "E_ABORTED") {
      status.textContent = "cancelled";
      bar.value = 0;
      setState("cancelled");
    } else {
      showError(e);
      setState("error");
    }
  } finally {
    running = null;
    runBtn.disabled = false;
    cancelBtn.disabled = true;
  }
}

cancelBtn.addEventListener("click", () => running?.abort(new Error("cancelled by the user")));
runBtn.addEventListener("click", () => void run());
fileIn.addEventListener("change", async () => {
  const f = fileIn.files?.[0];
  userImage = f ? await imageDataFrom(f).catch((e) => (showError(e), null)) : null;
});
sampleSel.addEventListener("change", () => {
  userImage = null;
  fileIn.value = "";
});

// Draggable comparison: pointer position → divider.
let dragging = false;
const move = (e: PointerEvent) => {
  const r = compare.getBoundingClientRect();
  setDivider((e.clientX - r.left) / r.width);
};
compare.addEventListener("pointerdown", (e) => {
  dragging = true;
  compare.setPointerCapture(e.pointerId);
  move(e);
});
compare.addEventListener("pointermove", (e) => dragging && move(e));
compare.addEventListener("pointerup", () => (dragging = false));

async function start(): Promise<void> {
  const n = Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
  for (let i = 1; i <= n; i++) workersSel.add(new Option(String(i), String(i), i === Math.min(2, n), i === Math.min(2, n)));
  try {
    // Feature check on the main thread: a clear message on a browser without WASM SIMD.
    (await createRuntime({ backend: "simd" })).dispose();
  } catch (e) {
    showError(e);
    runBtn.disabled = true;
    setState("unsupported");
    return;
  }
  try {
    samples = await (await fetch("./samples.json")).json();
  } catch {
    samples = [];
  }
  for (const s of samples) sampleSel.add(new Option(s.name, s.name));
  if (!samples.length) sampleSel.add(new Option("(no bundled samples: choose a file)", ""));
  setState("idle");
}
void start();
