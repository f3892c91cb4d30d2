// A lowbit worker that dies (process.exit in its thread) when sent a tile region 13 pixels wide:
// the pool's crash handling is tested with a real thread death, not a simulated event. The extra
// listener is attached after the worker entry's own (a listener starts the port's message flow).
import { register } from "tsx/esm/api";
import { parentPort } from "node:worker_threads";
register();
await import("../src/worker/worker-entry.ts");
parentPort.on("message", (m) => {
  if (m && m.type === "tile" && m.region.width === 13) process.exit(7);
});
