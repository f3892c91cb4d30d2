import test from "tape";
import { createRuntime, relaxedSelfTest } from "../src/runtime/runtime.ts";
import { LowbitError } from "../src/runtime/errors.ts";
import { Arena } from "../src/runtime/arena.ts";
import { testBackend, testRuntime } from "./util/runtime.ts";

test("runtime: the backend under test is the one that runs", async (t) => {
  const rt = await testRuntime();
  t.equal(rt.info.backend, testBackend(), `backend is ${testBackend()} (${rt.info.relaxedReason})`);
  t.ok(rt.info.buildId.length === 16, "build id present");
});

test("runtime: auto picks relaxed only when its self-test passes", async (t) => {
  const rt = await createRuntime();
  const major = Number(process.versions.node.split(".")[0]);
  if (major >= 22) t.equal(rt.info.backend, "relaxed", `Node ${major}: relaxed validated and self-tested`);
  else t.equal(rt.info.backend, "simd", `Node ${major}: relaxed not used (${rt.info.relaxedReason})`);
  t.equal(rt.info.relaxedAvailable, rt.info.backend === "relaxed");
});

test("runtime: forcing simd never runs relaxed; self-test rejects the simd build", async (t) => {
  const rt = await createRuntime({ backend: "simd" });
  t.equal(rt.info.backend, "simd");
  // The simd build's probe is the exact fallback, but it must not count as evidence for relaxed.
  const simdInstance = { exports: rt.exports } as unknown as WebAssembly.Instance;
  t.equal(relaxedSelfTest(simdInstance), "module is not the relaxed build");
});

test("runtime: relaxed forced where it cannot run throws E_WASM_UNSUPPORTED", async (t) => {
  const major = Number(process.versions.node.split(".")[0]);
  if (major >= 22) {
    const rt = await createRuntime({ backend: "relaxed" });
    t.equal(rt.info.backend, "relaxed");
    return;
  }
  try {
    await createRuntime({ backend: "relaxed" });
    t.fail("should throw");
  } catch (e) {
    t.ok(e instanceof LowbitError && e.code === "E_WASM_UNSUPPORTED", (e as Error).message);
  }
});

test("runtime: explicit bytes and module sources", async (t) => {
  const { readFileSync } = await import("node:fs");
  const bytes = readFileSync(new URL("../build/lowbit-simd.wasm", import.meta.url));
  const a = await createRuntime({ bytes, backend: "simd" });
  t.equal(a.info.backend, "simd");
  const b = await createRuntime({ module: await WebAssembly.compile(bytes), backend: "simd" });
  t.equal(b.info.backend, "simd");
  try {
    await createRuntime({ url: "http://127.0.0.1:9/nope.wasm", backend: "simd" });
    t.fail("should throw");
  } catch (e) {
    t.equal((e as LowbitError).code, "E_IO", "unreachable url → E_IO");
  }
});

test("arena: grows once, views refresh, limits are typed errors", async (t) => {
  const rt = await createRuntime({ backend: "simd", maxMemoryBytes: 64 * 2 ** 20 });
  const a = rt.arena;
  const before = a.f32;
  const m = a.mark();
  const p = a.alloc(8 * 2 ** 20);
  t.equal(p % 64, 0, "64-byte aligned");
  t.notEqual(a.f32.buffer, before.buffer, "views rebuilt after growth");
  const cap = a.capacity;
  a.release(m);
  a.alloc(4 * 2 ** 20);
  t.equal(a.capacity, cap, "no growth when reusing the high-water mark");
  try {
    a.alloc(128 * 2 ** 20);
    t.fail("should throw");
  } catch (e) {
    t.equal((e as LowbitError).code, "E_MEMORY", (e as Error).message);
  }
  t.throws(() => a.release(-5), /E_ARGUMENT/);
  const mem = new WebAssembly.Memory({ initial: 1 });
  const small = new Arena(mem, 100);
  t.equal(small.base, 128, "base rounded up to 64");
});
