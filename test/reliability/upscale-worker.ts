// Worker for the concurrency test: upscales the images it is sent on its own runtime and posts the
// bytes back. Started with `--import tsx` so it runs the TypeScript sources directly.
import { parentPort, workerData } from "node:worker_threads";
import { createRuntime } from "../../src/runtime/runtime.ts";
import { createUpscaler } from "../../src/engine/upscaler-api.ts";

const { model, backend, tile } = workerData as { model: string; backend: "simd" | "relaxed"; tile: number };
const rt = await createRuntime({ backend });
const up = await createUpscaler(model, { runtime: rt, tile });
// One engine runs one image at a time: requests are queued in arrival order.
let queue: Promise<void> = Promise.resolve();
parentPort!.on("message", (m: { id: number; img: { data: Uint8Array; width: number; height: number } | null }) => {
  queue = queue.then(async () => {
    if (m.img === null) {
      up.dispose();
      rt.dispose();
      parentPort!.close();
      return;
    }
    const out = await up.upscale(m.img);
    parentPort!.postMessage({ id: m.id, data: out.data }, [out.data.buffer as ArrayBuffer]);
  });
});
parentPort!.postMessage({ ready: true });
