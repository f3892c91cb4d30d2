// tfjs-wasm's multi-threaded XNNPACK build, made to run in Node for the peers benchmark only.
//
// tfjs turns threads off in Node (WASM_HAS_MULTITHREAD_SUPPORT is false there: tensorflow/tfjs#3830),
// and its Emscripten pthread set-up assumes a browser: the pthread worker script and the main script
// both become `blob:` URLs, which Node's Worker and the worker's importScripts (fs.readFileSync) cannot
// open. Here, in a dedicated worker thread (so nothing else in the process is affected):
//   1. `Blob` is wrapped to remember its string parts (the main script is written to a temporary file
//      when its Blob is made), and `URL.createObjectURL` writes the pthread worker script there too and
//      returns its path; the worker script is rewritten to import the main script from that file
//      instead of from the Blob posted to it;
//   2. the flag is forced on, and `os.cpus()` reports 2× the real count, because the C side caps the
//      thread pool at half the logical cores (1 on this 2-vCPU machine) — the pool then gets exactly the
//      `threads` asked for (checked with getThreadsCount()).
// Output is compared with the 1-thread build in the benchmark like every other contender.
import os from "node:os";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import path from "node:path";

export async function initTfjsWasmThreaded(threads: number): Promise<string> {
  const dir = mkdtempSync(join(os.tmpdir(), "lowbit-tfjs-mt-"));
  const mainPath = join(dir, "tfjs-backend-wasm-threaded-simd.main.js");
  const workerPath = join(dir, "tfjs-backend-wasm-threaded-simd.worker.js");
  const RealBlob = globalThis.Blob;
  class TextBlob extends RealBlob {
    readonly text_: string | null;
    constructor(parts?: BlobPart[], opts?: BlobPropertyBag) {
      super(parts, opts);
      this.text_ = parts && parts.every((p) => typeof p === "string") ? (parts as string[]).join("") : null;
      // The main script is posted to each pthread as this Blob, never passed to createObjectURL here.
      // Its source comes from tfjs's rollup bundle, whose Node built-ins are renamed require$$N.
      if (this.text_?.startsWith("var WasmBackendModuleThreadedSimd")) {
        const prelude = 'var require$$0 = require("fs"), require$$1 = require("path"), require$$3 = require("perf_hooks"), require$$4 = require("os"), commonjsGlobal = globalThis;\n';
        writeFileSync(mainPath, prelude + this.text_);
      }
    }
  }
  globalThis.Blob = TextBlob as typeof Blob;
  const realCreate = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (b: Blob): string => {
    const text = (b as TextBlob).text_;
    if (text === null || text === undefined) return realCreate(b);
    if (text.includes("WasmBackendModuleThreadedSimd(Module)")) {
      const patched = text.replace(/if\(typeof e\.data\.urlOrBlob=="string"\)\{importScripts\(e\.data\.urlOrBlob\)\}else\{[^}]*\}/,
        `importScripts(${JSON.stringify(mainPath)});`);
      if (patched === text) throw new Error("tfjs threaded worker script changed: cannot patch its importScripts");
      writeFileSync(workerPath, patched);
      return workerPath;
    }
    return realCreate(b);
  };
  const n = os.cpus().length;
  const realCpus = os.cpus;
  os.cpus = () => {
    const c = realCpus();
    return [...c, ...c].slice(0, 2 * n);
  };

  const tf = await import("@tensorflow/tfjs");
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  tf.env().set("PROD", true);
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  const pkg = path.dirname(createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm")) + path.sep;
  wasm.setWasmPaths(pkg);
  wasm.setThreadsCount(threads);
  if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm (threaded) failed to initialize");
  await tf.ready();
  const got = wasm.getThreadsCount();
  if (got !== threads) throw new Error(`tfjs-wasm threaded: asked for ${threads} threads, got ${got}`);
  return `tfjs ${tf.version.tfjs}, backend wasm, binary tfjs-backend-wasm-threaded-simd.wasm (Node-patched), XNNPACK threads=${got}`;
}
