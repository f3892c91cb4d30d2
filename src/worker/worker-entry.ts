/**
 * lowbit's worker script: start it as a Node `worker_threads` Worker or a browser module Web
 * Worker (`new Worker(url, { type: "module" })`) and talk to it with UpscalerWorker /
 * createWorkerPool (protocol.ts). Bundlers: build this file as its own entry (it is the
 * package export `lowbit/worker`), e.g.
 *   esbuild node_modules/lowbit/dist/src/worker/worker-entry.js --bundle --format=esm --outfile=lowbit-worker.js
 */
import { serveUpscaler, type WorkerPort } from "./serve.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

interface WebWorkerScope {
  postMessage(m: unknown, transfer?: Transferable[]): void;
  addEventListener(type: "message", h: (e: MessageEvent) => void): void;
}

async function hostPort(): Promise<WorkerPort> {
  const g = globalThis as unknown as { WorkerGlobalScope?: unknown; process?: { versions?: { node?: string } } };
  if (g.WorkerGlobalScope === undefined && typeof g.process?.versions?.node === "string") {
    const { parentPort } = await import("node:worker_threads");
    if (!parentPort) throw new Error("lowbit's worker entry must run inside a worker thread");
    return {
      postMessage: (m: FromWorker, t?: Transferable[]) => parentPort.postMessage(m, t as never),
      onMessage: (h) => parentPort.on("message", (m: ToWorker) => h(m)),
    };
  }
  const self = globalThis as unknown as WebWorkerScope;
  return {
    postMessage: (m, t) => self.postMessage(m, t ?? []),
    onMessage: (h) => self.addEventListener("message", (e) => h(e.data as ToWorker)),
  };
}

serveUpscaler(await hostPort());
