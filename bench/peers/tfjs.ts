// tfjs-wasm set-up shared by the benchmarks: the SIMD binary, a verified thread count.
import * as tf from "@tensorflow/tfjs";
import { getThreadsCount, setThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { createRequire } from "node:module";
import path, { join } from "node:path";

/**
 * Initializes tfjs's wasm backend so that only the single-threaded SIMD binary can load: the file map
 * points the plain and threaded-SIMD binaries at a path that does not exist, so if tfjs picked either,
 * initialization would fail here instead of silently benchmarking the wrong build. The XNNPACK thread
 * pool is set to 1 and read back after init (the threaded build: peers/tfjs-threaded.ts). Returns a
 * description line.
 */
export async function initTfjsWasm(): Promise<string> {
  tf.env().set("PROD", true);
  const dir = path.dirname(createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm")) + path.sep;
  const refused = join(dir, "__not-the-simd-binary__") + path.sep;
  setWasmPaths({
    "tfjs-backend-wasm.wasm": refused + "tfjs-backend-wasm.wasm",
    "tfjs-backend-wasm-simd.wasm": dir + "tfjs-backend-wasm-simd.wasm",
    "tfjs-backend-wasm-threaded-simd.wasm": refused + "tfjs-backend-wasm-threaded-simd.wasm",
  });
  setThreadsCount(1);
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  const mt = await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT");
  if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend failed to initialize (the SIMD binary did not load)");
  await tf.ready();
  const threads = getThreadsCount();
  if (!simd || mt || threads !== 1) throw new Error(`tfjs-wasm is not SIMD single-thread: simd=${simd} multithread=${mt} threads=${threads}`);
  return `tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}, binary tfjs-backend-wasm-simd.wasm (others refused), ` +
    `WASM_HAS_SIMD_SUPPORT=${simd}, WASM_HAS_MULTITHREAD_SUPPORT=${mt}, XNNPACK threads=${threads}`;
}
