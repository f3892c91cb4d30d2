// `npm run test:browser`: lowbit in real headless Chromium (playwright-core driving Debian's
// /usr/bin/chromium), served from a tiny node:http server on 127.0.0.1.
//   1. A small app importing "lowbit" by package name, bundled by esbuild, and the same calls as
//      plain ES modules from dist/ (no bundler): init() with the embedded wasm and with
//      init({ url }), init({ bytes }), init({ module }); every way gives the bytes Node gives.
//   2. The demo page (examples/web): upscale a bundled sample with an integer model (esrgan-slim
//      ×2 W8A8 .lowbit) in a 2-worker pool; the output equals Node's bit for bit; PSNR shown.
//   3. Cancel on a second (long) run: the page says cancelled and the next run is correct; W4A4 and
//      adaptive (AdaBM) .lowbit models run as well.
//   4. A browser without WASM SIMD (WebAssembly.validate stubbed before the page loads: V8 has
//      no flag to turn SIMD off): the page shows the clear E_WASM_UNSUPPORTED message.
// Screenshots go to test/browser/out/ (gitignored). The whole run is bounded (TIME_LIMIT_MS).
import test from "tape";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PNG } from "pngjs";
import { bundle, copySamples, findEvalDir, makeModels, MODELS } from "../../examples/web/build.ts";
import { serve } from "../../examples/web/serve.ts";
import { createRuntime } from "../../src/runtime/runtime.ts";
import { createUpscaler } from "../../src/engine/upscaler-api.ts";
import { loadAnyModel } from "../../src/io/load-any.ts";

/** Bounds the whole run, including the one-time set-up on a fresh clone (calibration photos, 3 quantized models). */
const TIME_LIMIT_MS = 300_000;
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const OUT = join(here, "out");
const CHROMIUM = process.env.LOWBIT_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const killer = setTimeout(() => {
  console.error(`# browser test exceeded ${TIME_LIMIT_MS / 1000} s: stopping`);
  process.exit(1);
}, TIME_LIMIT_MS);
killer.unref();

const sha = (d: Uint8Array) => createHash("sha256").update(d).digest("hex");

function newestMtime(dir: string): number {
  let m = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    m = Math.max(m, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return m;
}

/** dist/ (the compiled library) up to date with src/, built with tsc when not. */
function ensureDist(): void {
  const idx = join(root, "dist/src/index.js");
  if (existsSync(idx) && statSync(idx).mtimeMs >= newestMtime(join(root, "src"))) return;
  console.log("# compiling the library (tsc -p tsconfig.build.json)");
  execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], { stdio: "inherit", cwd: root });
}

/** A deterministic 37×29 RGBA test image (alpha varies, so the alpha path runs too). */
const APP_IMAGE = `(() => { const w = 37, h = 29, d = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) { const i = (y * w + x) * 4;
    d[i] = (x * 7 + y * 3) & 255; d[i + 1] = (x * x + y * 5) & 255; d[i + 2] = (128 + 100 * Math.sin(x / 4 + y / 7)) | 0; d[i + 3] = (x * 11 + y * 13) & 255; }
  return { data: d, width: w, height: h }; })()`;

/** The app both pages run: every way of initializing, each upscaling the test image in FP32 on the simd build. */
const APP_BODY = `
const img = ${APP_IMAGE};
const hex = async (d) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", d)), (x) => x.toString(16).padStart(2, "0")).join("");
const load = { modelBaseUrl: new URL("/node_modules/", location.href).href };
const out = { ways: {}, backendAuto: null, relaxedReason: null, noSimd: null };
const run = async (rt) => { const up = await lowbit.createUpscaler("esrgan-slim-x2", { runtime: rt, load }); const r = await up.upscale(img); up.dispose(); return hex(r.data); };
try {
  const auto = await lowbit.init();
  out.backendAuto = lowbit.backendInfo().backend; out.relaxedReason = lowbit.backendInfo().relaxedReason;
  out.ways.embedded = await run(await lowbit.createRuntime({ backend: "simd" }));
  const url = new URL("/build/lowbit-simd.wasm", location.href);
  out.ways.url = await run(await lowbit.init({ url, backend: "simd" }));
  const bytes = await (await fetch(url)).arrayBuffer();
  out.ways.bytes = await run(await lowbit.init({ bytes, backend: "simd" }));
  const module = await WebAssembly.compile(bytes);
  out.ways.module = await run(await lowbit.init({ module, backend: "simd" }));
  const v = WebAssembly.validate;
  WebAssembly.validate = () => false;
  try { await lowbit.createRuntime(); out.noSimd = "no error"; } catch (e) { out.noSimd = e.code; } finally { WebAssembly.validate = v; }
} catch (e) { out.error = String(e && e.stack || e); }
window.__app = out;
`;

function writeApps(): string {
  const dir = join(OUT, "app");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "node_modules"), { recursive: true });
  // "lowbit" resolves like in an app that installed it: node_modules/lowbit → this package.
  symlinkSync(root, join(dir, "node_modules", "lowbit"), "dir");
  writeFileSync(join(dir, "main.js"), `import * as lowbit from "lowbit";\n${APP_BODY}`);
  writeFileSync(join(dir, "bundled.html"), `<!doctype html><meta charset="utf-8"><script type="module" src="./app.js"></script>`);
  writeFileSync(join(dir, "esm.html"), `<!doctype html><meta charset="utf-8"><script type="module">\nimport * as lowbit from "/dist/src/index.js";\n${APP_BODY}</script>`);
  return dir;
}

async function nodeAppHash(): Promise<string> {
  const img = new Function(`return ${APP_IMAGE}`)() as { data: Uint8Array; width: number; height: number };
  const up = await createUpscaler("esrgan-slim-x2", { runtime: await createRuntime({ backend: "simd" }) });
  return sha((await up.upscale(img)).data);
}

let browser: Browser;
let base: string;
let stopServer: () => void;

test("setup: library build, demo bundle + slim ×2 W8A8/W4A4/adaptive models, esbuild app, server, Chromium", async (t) => {
  const t0 = performance.now();
  t.ok(existsSync(CHROMIUM), `Chromium at ${CHROMIUM}`);
  ensureDist();
  await bundle();
  copySamples(findEvalDir());
  await makeModels(["esrgan-slim-x2"], ["w8a8", "w4a4", "adaptive"], (s) => console.log(`# ${s}`));
  const appDir = writeApps();
  const r = await build({ entryPoints: [join(appDir, "main.js")], bundle: true, format: "esm", platform: "browser", outfile: join(appDir, "app.js"), logLevel: "error" });
  t.equal(r.errors.length, 0, "esbuild bundled an app importing \"lowbit\" for the browser (no plugins, no externals)");
  const s = await serve(0, { "/app/": appDir });
  base = s.url;
  stopServer = () => s.server.close();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  t.pass(`ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${base}, Chromium ${browser.version()}`);
});

async function openPage(path: string, init?: string): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  if (init) await ctx.addInitScript(init);
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.log(`# page error: ${e.message}`));
  await page.goto(base + path);
  return page;
}

for (const [name, path] of [["esbuild bundle", "app/bundled.html"], ["plain ES modules from dist/ (no bundler)", "app/esm.html"]]) {
  test(`${name}: init() embedded, init({ url }), init({ bytes }), init({ module }) all give Node's bytes; no SIMD → E_WASM_UNSUPPORTED`, async (t) => {
    const page = await openPage(path);
    await page.waitForFunction(() => (window as unknown as { __app?: unknown }).__app !== undefined, null, { timeout: 60_000 });
    const app = await page.evaluate(() => (window as unknown as { __app: { ways: Record<string, string>; backendAuto: string; relaxedReason: string; noSimd: string; error?: string } }).__app);
    t.notOk(app.error, app.error ?? "no exception in the page");
    const want = await nodeAppHash();
    for (const w of ["embedded", "url", "bytes", "module"]) t.equal(app.ways[w], want, `${w}: esrgan-slim-x2 FP32 (simd) on a 37×29 RGBA image = Node's output, bit for bit`);
    t.ok(app.backendAuto === "simd" || app.backendAuto === "relaxed", `default backend in Chromium: ${app.backendAuto} (${app.relaxedReason})`);
    t.equal(app.noSimd, "E_WASM_UNSUPPORTED", "WebAssembly.validate → false: createRuntime rejects with E_WASM_UNSUPPORTED");
    await page.context().close();
  });
}

test("Node: `import … from \"lowbit\"` in an app (the same package entry, dist/), a 2-worker pool = in-process", (t) => {
  const dir = join(OUT, "app");
  writeFileSync(join(dir, "node-main.mjs"), `import { createWorkerPool, createUpscaler } from "lowbit";
const img = { data: new Uint8Array(30 * 20 * 3).map((_, i) => (i * 37) & 255), width: 30, height: 20 };
const pool = await createWorkerPool({ model: "esrgan-slim-x2", size: 2, backend: "simd" });
const a = await pool.upscale(img);
const b = await (await createUpscaler("esrgan-slim-x2")).upscale(img);
pool.dispose();
console.log(JSON.stringify({ same: a.data.length === b.data.length && a.data.every((v, i) => v === b.data[i]), node: process.version }));`);
  const r = JSON.parse(execFileSync(process.execPath, [join(dir, "node-main.mjs")], { cwd: dir, encoding: "utf8", timeout: 60_000 }).trim());
  t.ok(r.same, `Node ${r.node}: the package's worker pool (worker_threads on dist/src/worker/worker-entry.js) = in-process, bit for bit`);
  t.end();
});

interface DemoState {
  state: string; errorCode: string | null; error: string | null; runs: number;
  result: null | { sha256: string; width: number; height: number; channels: number; ms: number; psnr: number | null; config: string; backend: string; workers: number };
  inputBase64: string | null; inputSize: { width: number; height: number } | null;
}
const demoState = (p: Page) => p.evaluate(() => (window as unknown as { __demo: DemoState }).__demo);
const waitState = (p: Page, states: string[], timeout = 90_000) =>
  p.waitForFunction((s) => s.includes((window as unknown as { __demo?: { state: string } }).__demo?.state ?? ""), states, { timeout });

test("demo: W8A8 esrgan-slim-x2 on a sample in 2 workers = Node's output bit for bit; cancel; still usable; screenshot", async (t) => {
  const page = await openPage("");
  await waitState(page, ["idle"], 30_000);
  await page.selectOption("#sample", "messi5");
  await page.selectOption("#model", "esrgan-slim-x2");
  await page.selectOption("#precision", "w8a8");
  await page.selectOption("#workers", "2");
  await page.click("#run");
  await waitState(page, ["done", "error"]);
  let s = await demoState(page);
  t.equal(s.state, "done", `first run finished${s.error ? `: ${s.error}` : ""}`);
  const r = s.result!;
  t.equal(r.workers, 2, `ran on ${r.workers} workers (${r.config}, ${r.backend} build) in ${r.ms.toFixed(0)} ms`);
  // The same input pixels (as the page decoded them) through Node, in-process, from the same .lowbit file.
  const input = new Uint8Array(Buffer.from(s.inputBase64!, "base64"));
  const { width, height } = s.inputSize!;
  const png = PNG.sync.read(readFileSync(join(root, "examples/web/dist/samples/messi5_x2.png")));
  let decodedSame = png.width === width && png.height === height;
  for (let i = 0; decodedSame && i < width * height; i++) {
    for (let c = 0; c < 3; c++) if (png.data[i * 4 + c] !== input[i * 4 + c]) decodedSame = false;
  }
  t.ok(decodedSame, `the page decoded the sample PNG (${width}×${height}) to the same pixels as pngjs`);
  const model = await loadAnyModel(readFileSync(join(MODELS, "esrgan-slim-x2-w8a8.lowbit")));
  const up = await createUpscaler(model, { runtime: await createRuntime({ backend: "simd" }) });
  const nodeOut = await up.upscale({ data: input, width, height, channels: 4 });
  t.equal(r.sha256, sha(nodeOut.data), `browser output (${r.width}×${r.height} RGBA) = Node's in-process output, bit for bit (sha256 ${r.sha256.slice(0, 16)}…)`);
  t.ok(r.psnr !== null && r.psnr > 25, `PSNR-Y vs HR shown: ${r.psnr?.toFixed(2)} dB`);
  const first = r.sha256;

  // A long run, cancelled from the button once it is under way.
  await page.selectOption("#model", "esrgan-medium-x2");
  await page.selectOption("#precision", "fp32");
  await page.click("#run");
  await waitState(page, ["running", "done", "error"]);
  await page.waitForFunction(() => (document.getElementById("progress") as HTMLProgressElement).value > 0.05, null, { timeout: 60_000 }).catch(() => undefined);
  const frac = await page.evaluate(() => (document.getElementById("progress") as HTMLProgressElement).value);
  await page.click("#cancel");
  await waitState(page, ["cancelled", "done", "error"]);
  s = await demoState(page);
  t.equal(s.state, "cancelled", `cancel clicked at ${(frac * 100).toFixed(0)} % → the page says "${await page.textContent("#status")}"`);
  t.ok(await page.isEnabled("#run"), "the Upscale button is enabled again");

  // Usable after the cancel: the first configuration again gives the same bytes.
  await page.selectOption("#model", "esrgan-slim-x2");
  await page.selectOption("#precision", "w8a8");
  await page.click("#run");
  await waitState(page, ["done", "error"]);
  s = await demoState(page);
  t.equal(s.result?.sha256, first, `after the cancel: a new run gives the same bytes (${s.runs} completed runs)`);
  // The other integer precisions run too (4-bit static and AdaBM adaptive bits).
  for (const prec of ["w4a4", "adaptive"]) {
    await page.selectOption("#precision", prec);
    await page.click("#run");
    await waitState(page, ["done", "error"]);
    s = await demoState(page);
    t.ok(s.state === "done" && s.result!.psnr! > 25, `${prec}: ${s.result?.config} in ${s.result?.ms.toFixed(0)} ms, PSNR-Y ${s.result?.psnr?.toFixed(2)} dB${s.error ? ` (${s.error})` : ""}`);
  }
  // Drag the comparison divider, then keep a screenshot.
  const box = (await page.locator("#compare").boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  const clip = await page.evaluate(() => (document.getElementById("before") as HTMLCanvasElement).style.clipPath);
  t.match(clip, /inset\(0(px)? 7\d(\.\d+)?% 0(px)? 0(px)?\)/, `dragging moves the divider (${clip})`);
  mkdirSync(OUT, { recursive: true });
  const shot = join(OUT, "demo.png");
  await page.screenshot({ path: shot, fullPage: true });
  t.ok(statSync(shot).size > 10_000, `screenshot saved: ${shot}`);
  await page.context().close();
});

test("demo without WASM SIMD (WebAssembly.validate stubbed before load): a clear message, Upscale disabled", async (t) => {
  const page = await openPage("", "WebAssembly.validate = () => false;");
  await waitState(page, ["unsupported", "idle"], 30_000);
  const s = await demoState(page);
  t.equal(s.errorCode, "E_WASM_UNSUPPORTED", `state ${s.state}, error code ${s.errorCode}`);
  t.match((await page.textContent("#error")) ?? "", /no WebAssembly SIMD/, "the page says the browser has no WebAssembly SIMD");
  t.notOk(await page.isEnabled("#run"), "Upscale is disabled");
  await page.screenshot({ path: join(OUT, "demo-no-simd.png") });
  await page.context().close();
});

test("teardown", async (t) => {
  await browser?.close();
  stopServer?.();
  t.pass("browser closed, server stopped");
});
