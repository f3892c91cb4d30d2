/**
 * Test-only reference: runs a model in @tensorflow/tfjs (the runtime UpscalerJS uses) so lowbit's
 * executor can be compared against it. Loads the *same bytes* lowbit reads (through lowbit's own
 * artifact reader, so path/URL/registry resolution is identical) into `tf.loadLayersModel` via
 * `tf.io.fromMemory`, with the two rrdn custom layers registered as models.md §4 describes:
 *   MultiplyBeta: y = 0.2·x;  PixelShuffle{s}x: tf.depthToSpace(x, s, "NHWC") (DCR).
 *
 *   const ref = await loadTfjsReference("esrgan-slim-x2");      // backend "wasm" by default
 *   const { data, shape } = ref.predict(inputNHWC, h, w);        // input in the model's range
 *   ref.dispose();
 */
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { createRequire } from "node:module";
import path from "node:path";
import { readTfjsArtifacts, type TfjsModelSource } from "../../src/io/tfjs/index.ts";
import { getModelInfo, resolveModelPath } from "../../src/models/registry.ts";

export type ReferenceBackend = "cpu" | "wasm";

let registered = false;

/** Registers MultiplyBeta and PixelShuffle{2,3,4,8}x with tfjs serialization (once per process). */
export function registerCustomLayers(): void {
  if (registered) return;
  registered = true;
  const base = (config: { name?: string; trainable?: boolean } | undefined) => ({ name: config?.name, trainable: config?.trainable });

  class MultiplyBeta extends tf.layers.Layer {
    static className = "MultiplyBeta";
    constructor(config?: { name?: string; trainable?: boolean }) {
      super(base(config));
    }
    override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return tf.mul(x, 0.2);
    }
  }
  tf.serialization.registerClass(MultiplyBeta);

  for (const s of [2, 3, 4, 8]) {
    const cls = class extends tf.layers.Layer {
      static className = `PixelShuffle${s}x`;
      constructor(config?: { name?: string; trainable?: boolean }) {
        super(base(config));
      }
      override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
        const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
        return tf.depthToSpace(x, s, "NHWC");
      }
      override computeOutputShape(shape: tf.Shape | tf.Shape[]): tf.Shape {
        const sh = (Array.isArray(shape[0]) ? shape[0] : shape) as tf.Shape;
        const m = (d: number | null) => (d === null ? null : d * s);
        const c = sh[3];
        return [sh[0], m(sh[1]), m(sh[2]), c === null ? null : c / (s * s)];
      }
    };
    tf.serialization.registerClass(cls);
  }
}

let wasmReady: Promise<void> | null = null;

/** Makes `backend` current (the wasm binaries are served from the installed package folder). */
export async function useBackend(backend: ReferenceBackend): Promise<void> {
  // PROD silences tfjs's "install tfjs-node" console banner (and skips debug-only checks).
  tf.env().set("PROD", true);
  if (backend === "wasm") {
    wasmReady ??= (async () => {
      const require = createRequire(import.meta.url);
      setWasmPaths(path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm")) + path.sep);
    })();
    await wasmReady;
  }
  if (tf.getBackend() !== backend) {
    const ok = await tf.setBackend(backend);
    if (!ok) throw new Error(`tfjs backend '${backend}' failed to initialize`);
  }
  await tf.ready();
}

export interface TfjsReference {
  model: tf.LayersModel;
  backend: ReferenceBackend;
  /** Runs the model on one NHWC float32 image (values in the model's input range). */
  predict(input: Float32Array, h: number, w: number, c?: number): { data: Float32Array; shape: number[] };
  dispose(): void;
}

/**
 * Loads a registered model name, a model.json path/URL or in-memory buffers into tfjs.
 * Returns a handle whose `predict` gives the raw (unclipped) float32 output.
 */
export async function loadTfjsReference(model: string | TfjsModelSource, opts: { backend?: ReferenceBackend } = {}): Promise<TfjsReference> {
  const backend = opts.backend ?? "wasm";
  registerCustomLayers();
  await useBackend(backend);
  const src = typeof model === "string" && getModelInfo(model) ? await resolveModelPath(model) : model;
  const a = await readTfjsArtifacts(src);
  // tfjs wants ordinary objects; the sanitized document is null-prototype.
  const doc = JSON.parse(JSON.stringify(a.doc));
  const total = a.shards.flat().reduce((n, s) => n + s.byteLength, 0);
  const weightData = new Uint8Array(total);
  let o = 0;
  for (const s of a.shards.flat()) {
    weightData.set(s, o);
    o += s.byteLength;
  }
  const weightSpecs = (doc.weightsManifest as { weights: tf.io.WeightsManifestEntry[] }[]).flatMap((g) => g.weights);
  const m = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: doc.modelTopology, weightSpecs, weightData: weightData.buffer, format: doc.format }),
  );
  return {
    model: m,
    backend,
    predict(input, h, w, c = 3) {
      if (input.length !== h * w * c) throw new Error(`input has ${input.length} values, expected ${h}·${w}·${c}`);
      return tf.tidy(() => {
        const y = m.predict(tf.tensor4d(input, [1, h, w, c])) as tf.Tensor;
        return { data: new Float32Array(y.dataSync() as Float32Array), shape: [...y.shape] };
      });
    },
    dispose() {
      m.dispose();
    },
  };
}

/** One-shot convenience: load, predict once, dispose. */
export async function tfjsPredict(
  model: string | TfjsModelSource, input: Float32Array, h: number, w: number, opts: { backend?: ReferenceBackend } = {},
): Promise<{ data: Float32Array; shape: number[] }> {
  const ref = await loadTfjsReference(model, opts);
  try {
    return ref.predict(input, h, w);
  } finally {
    ref.dispose();
  }
}
