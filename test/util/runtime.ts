import { createRuntime, type Backend, type Runtime } from "../../src/runtime/runtime.ts";

/** The backend this test process exercises: `--backend relaxed` (Node >= 22) or simd (default). */
export function testBackend(): Backend {
  const i = process.argv.indexOf("--backend");
  return i >= 0 && process.argv[i + 1] === "relaxed" ? "relaxed" : "simd";
}

let shared: Promise<Runtime> | null = null;

/** One runtime per test process, forced to the backend under test (no silent fallback). */
export function testRuntime(): Promise<Runtime> {
  return (shared ??= createRuntime({ backend: testBackend() }));
}
