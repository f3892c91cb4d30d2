// One contender of the peers benchmark, in its own worker thread: its own WASM instance / runtime
// configuration (onnxruntime-web's thread count is global per instance, tfjs's backend is global), and
// no interference with the orchestrator's heap. Protocol (all replies carry `id`):
//   {cmd:"setup", x, u8}      load + compile + one warm-up run on x (NHWC, model input range; u8 = the
//                             same image as 8-bit pixels, for the 8-bit user path of the worker pool);
//                             → {out: NHWC float output in the model's output range, setupMs, info}
//   {cmd:"time", maxTime, minSamples}  benchmark.js samples of one run on the same x → {timing}
//   {cmd:"once"}              one timed run (for the very slow tfjs cpu backend) → {timing}
import { parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { time, timeAsync, type Timing } from "../util.ts";
import { nchwToNhwc, nhwcToNchw } from "./input.ts";

export type ContenderSpec =
  | { kind: "lowbit"; backend: "simd" | "relaxed"; lowbit: Uint8Array; side: number }
  | { kind: "lowbit-pool"; backend: "simd" | "relaxed"; lowbit: Uint8Array; side: number; workers: number }
  | { kind: "tfjs-wasm"; model: string; side: number; threads: number }
  | { kind: "tfjs-cpu"; model: string; side: number }
  | { kind: "ort-web" | "ort-node"; onnx: Uint8Array; threads: number; side: number };

interface Runner {
  /** One inference on the prepared input; returns the NHWC output (model output range). */
  run(): Promise<Float32Array> | Float32Array;
  sync: boolean;
  info: string;
}

const spec = workerData as ContenderSpec;

async function makeRunner(x: Float32Array, u8: Uint8Array): Promise<Runner> {
  const side = spec.side;
  switch (spec.kind) {
    case "lowbit": {
      const { createRuntime } = await import("../../src/runtime/runtime.ts");
      const { loadLowbit } = await import("../../src/io/lowbit-file.ts");
      const { Upscaler, fp32Model } = await import("../../src/engine/upscaler-api.ts");
      const rt = await createRuntime({ backend: spec.backend });
      const m = loadLowbit(spec.lowbit);
      const model = "nodes" in m ? fp32Model(m) : m;
      const up = new Upscaler(model, rt);
      up.planFor(side, side);
      return { run: () => up.runFloat(x, side, side), sync: true, info: `lowbit build ${rt.info.buildId} ${rt.info.backend}` };
    }
    case "lowbit-pool": {
      // The user path on all cores: 8-bit image in, 8-bit out, tiles dealt to `workers` workers
      // (each its own WASM instance); output bit-identical to one in-process Upscaler.upscale().
      const { createWorkerPool } = await import("../../src/worker/pool.ts");
      const { loadLowbit } = await import("../../src/io/lowbit-file.ts");
      const m = loadLowbit(spec.lowbit);
      const [lo, hi] = ("nodes" in m ? m : m.graph).meta.outputRange;
      const pool = await createWorkerPool({ model: spec.lowbit, size: spec.workers, backend: spec.backend });
      const img = { data: u8, width: side, height: side, channels: 3 as const };
      const k = (hi - lo) / 255;
      return {
        run: async () => {
          const r = await pool.upscale(img);
          const out = new Float32Array(r.data.length);
          for (let i = 0; i < out.length; i++) out[i] = lo + r.data[i] * k;
          return out;
        },
        sync: false,
        info: `lowbit pool of ${spec.workers} workers, ${spec.backend}`,
      };
    }
    case "tfjs-wasm":
    case "tfjs-cpu": {
      const tf = await import("@tensorflow/tfjs");
      const { loadTfjsReference } = await import("../../test/util/tfjs-reference.ts");
      let info = "tfjs cpu backend";
      if (spec.kind === "tfjs-wasm") {
        info = spec.threads > 1
          ? await (await import("./tfjs-threaded.ts")).initTfjsWasmThreaded(spec.threads)
          : await (await import("./tfjs.ts")).initTfjsWasm();
      }
      const ref = await loadTfjsReference(spec.model, { backend: spec.kind === "tfjs-wasm" ? "wasm" : "cpu" });
      return {
        run: () => tf.tidy(() => {
          const y = ref.model.predict(tf.tensor4d(x, [1, side, side, 3])) as import("@tensorflow/tfjs").Tensor;
          return y.dataSync() as Float32Array;
        }),
        sync: true,
        info,
      };
    }
    case "ort-web":
    case "ort-node": {
      const ort = spec.kind === "ort-web" ? await import("onnxruntime-web") : await import("onnxruntime-node");
      let opts: Record<string, unknown>;
      if (spec.kind === "ort-web") {
        (ort.env as { wasm: { numThreads: number; proxy: boolean } }).wasm.numThreads = spec.threads;
        opts = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
      } else {
        opts = { executionProviders: ["cpu"], intraOpNumThreads: spec.threads, interOpNumThreads: 1, graphOptimizationLevel: "all" };
      }
      const session = await ort.InferenceSession.create(spec.onnx, opts);
      const xin = new ort.Tensor("float32", nhwcToNchw(x, side, side, 3), [1, 3, side, side]);
      const feeds = { [session.inputNames[0]]: xin };
      const outName = session.outputNames[0];
      return {
        run: async () => {
          const r = await session.run(feeds);
          const y = r[outName];
          const [, c, h, w] = y.dims as number[];
          const out = nchwToNhwc(y.data as Float32Array, h, w, c);
          y.dispose?.();
          return out;
        },
        sync: false,
        info: `onnxruntime ${spec.kind === "ort-web" ? "web (wasm)" : "node (native cpu)"} ${ort.env.versions?.common ?? ""}, ${spec.threads} thread(s)`,
      };
    }
    default:
      throw new Error(`contender kind ${(spec as { kind: string }).kind} not available`);
  }
}

let runner: Runner | null = null;
parentPort!.on("message", async (m: { id: number; cmd: string; x?: Float32Array; u8?: Uint8Array; maxTime?: number; minSamples?: number }) => {
  try {
    if (m.cmd === "setup") {
      const t0 = performance.now();
      runner = await makeRunner(m.x!, m.u8!);
      const out = await runner.run();
      const setupMs = performance.now() - t0;
      parentPort!.postMessage({ id: m.id, out, setupMs, info: runner.info });
    } else if (m.cmd === "time") {
      const r = runner!;
      const timing: Timing = r.sync
        ? time("contender", () => r.run(), m.maxTime, m.minSamples)
        : await timeAsync("contender", async () => r.run(), m.maxTime, m.minSamples);
      parentPort!.postMessage({ id: m.id, timing });
    } else if (m.cmd === "once") {
      const t0 = performance.now();
      await runner!.run();
      const s = (performance.now() - t0) / 1e3;
      parentPort!.postMessage({ id: m.id, timing: { mean: s, rme: NaN, samples: 1, min: s, sample: [s] } satisfies Timing });
    }
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
});
parentPort!.postMessage({ ready: true });
