import { Arena } from "./arena.ts";
import { LowbitError } from "./errors.ts";
import { DEFAULT_MAX_MEMORY_BYTES, limitOption } from "./limits.ts";
import { RELAXED_WASM_BASE64, SIMD_WASM_BASE64, WASM_BUILD_ID } from "./wasm-bytes.generated.ts";

/** Which of the two builds runs. */
export type Backend = "simd" | "relaxed";

export interface BackendInfo {
  backend: Backend;
  /** True when the host validated the relaxed build and its dot-product self-test passed. */
  relaxedAvailable: boolean;
  /** Why relaxed is or is not in use (diagnostics). */
  relaxedReason: string;
  buildId: string;
}

/** Where the wasm comes from. Default: the bytes embedded in the package. */
export interface WasmSource {
  module?: WebAssembly.Module;
  bytes?: BufferSource;
  url?: string | URL;
}

export interface InitOptions extends WasmSource {
  /** An explicit relaxed build (else the embedded one; ignored when backend is 'simd'). */
  relaxed?: WasmSource;
  /** 'auto' (default): relaxed only when it validates and passes its self-test. */
  backend?: "auto" | Backend;
  /**
   * Hard cap on WASM linear memory for this runtime, bytes (default 2 GiB, at most 4 GiB): an
   * allocation beyond it (a plan for a too-large tile, a huge kernel call) is E_MEMORY.
   */
  maxMemoryBytes?: number;
}

/** Raw exports: kernels are typed by their wrappers in src/kernels. */
export interface WasmExports {
  memory: WebAssembly.Memory;
  heap_base(): number;
  [name: string]: unknown;
}

/**
 * One instance of the kernel core with its own memory arena. Engines, worker
 * threads and tests each may own one; `init()` creates the process default.
 */
export class Runtime {
  readonly exports: WasmExports;
  readonly arena: Arena;
  readonly info: BackendInfo;
  private disposed = false;

  constructor(instance: WebAssembly.Instance, info: BackendInfo, maxMemoryBytes?: number) {
    this.exports = instance.exports as unknown as WasmExports;
    this.arena = new Arena(this.exports.memory, this.exports.heap_base(), maxMemoryBytes);
    this.info = info;
  }

  /** Typed access to kernel exports (each wrapper declares the signatures it uses). */
  kernels<T>(): T {
    if (this.disposed) throw new LowbitError("E_NOT_INITIALIZED", "runtime was disposed");
    return this.exports as unknown as T;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Drops references so the instance and its memory can be collected. */
  dispose(): void {
    this.disposed = true;
    this.arena.reset();
    if (defaultRuntime === this) defaultRuntime = null;
  }
}

let defaultRuntime: Runtime | null = null;
let simdModuleCache: WebAssembly.Module | null = null;
let relaxedModuleCache: { module: WebAssembly.Module | null; reason: string } | null = null;

function base64ToBytes(b64: string): Uint8Array {
  const B = (globalThis as { Buffer?: { from(s: string, e: string): Uint8Array } }).Buffer;
  if (B) return new Uint8Array(B.from(b64, "base64"));
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function loadSource(src: WasmSource, fallbackB64: string): Promise<WebAssembly.Module> {
  if (src.module) return src.module;
  if (src.bytes) return WebAssembly.compile(src.bytes);
  if (src.url) {
    let res: Response;
    try {
      res = await fetch(src.url);
    } catch (e) {
      throw new LowbitError("E_IO", `could not fetch wasm from ${String(src.url)}`, { cause: e });
    }
    if (!res.ok) throw new LowbitError("E_IO", `fetching wasm from ${String(src.url)}: HTTP ${res.status}`);
    return WebAssembly.compile(await res.arrayBuffer());
  }
  return WebAssembly.compile(base64ToBytes(fallbackB64) as BufferSource);
}

function hasWasmSimd(): boolean {
  // (module (func (result v128) v128.const i32x4 0 0 0 0))
  const probe = new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 11,
  ]);
  return typeof WebAssembly === "object" && WebAssembly.validate(probe);
}

/** Deterministic xorshift so the self-test vectors are the same on every host. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

/**
 * Known-answer test of relaxed_dot_i8x16_i7x16_add_s on this host: the i8
 * operand spans -128..127, the i7 operand 0..127 (the contract lowbit's
 * kernels keep), the accumulator is non-zero. Any mismatch → not trusted.
 */
export function relaxedSelfTest(instance: WebAssembly.Instance): string | null {
  const ex = instance.exports as unknown as WasmExports & {
    probe_relaxed_dot_i8x16_i7x16_add(a: number, b: number, c: number, o: number): void;
    build_is_relaxed(): number;
  };
  if (ex.build_is_relaxed() !== 1) return "module is not the relaxed build";
  const base = (ex.heap_base() + 63) & ~63;
  const mem = ex.memory;
  if (mem.buffer.byteLength < base + 64) mem.grow(1);
  const rnd = xorshift(0x1badb002);
  for (let t = 0; t < 64; t++) {
    const a = new Int8Array(mem.buffer, base, 16);
    const b = new Int8Array(mem.buffer, base + 16, 16);
    const c = new Int32Array(mem.buffer, base + 32, 4);
    for (let i = 0; i < 16; i++) {
      a[i] = t === 0 ? -128 : t === 1 ? 127 : (rnd() & 0xff) - 128;
      b[i] = t < 2 ? 127 : rnd() & 0x7f;
    }
    for (let i = 0; i < 4; i++) c[i] = t === 2 ? 0 : (rnd() % 200001) - 100000;
    const want = new Int32Array(4);
    for (let l = 0; l < 4; l++) {
      let s = c[l];
      for (let k = 0; k < 4; k++) s += a[4 * l + k] * b[4 * l + k];
      want[l] = s;
    }
    ex.probe_relaxed_dot_i8x16_i7x16_add(base, base + 16, base + 32, base + 48);
    const got = new Int32Array(mem.buffer, base + 48, 4);
    for (let l = 0; l < 4; l++) {
      if (got[l] !== want[l]) return `dot self-test failed (case ${t}, lane ${l}: got ${got[l]}, want ${want[l]})`;
    }
  }
  return null;
}

async function relaxedModule(src: WasmSource | undefined): Promise<{ module: WebAssembly.Module | null; reason: string }> {
  if (!src && relaxedModuleCache) return relaxedModuleCache;
  let result: { module: WebAssembly.Module | null; reason: string };
  try {
    const module = await loadSource(src ?? {}, RELAXED_WASM_BASE64);
    const inst = await WebAssembly.instantiate(module, {});
    const fail = relaxedSelfTest(inst);
    result = fail ? { module: null, reason: fail } : { module, reason: "validated; dot self-test passed" };
  } catch (e) {
    result = { module: null, reason: `relaxed build rejected by this host (${(e as Error).message.split("\n")[0]})` };
  }
  if (!src) relaxedModuleCache = result;
  return result;
}

/**
 * Creates a new Runtime (its own instance and memory). Use it for workers or
 * for several independent engines; `init()` creates and remembers the default.
 */
export async function createRuntime(opts: InitOptions = {}): Promise<Runtime> {
  const maxMemoryBytes = limitOption(opts.maxMemoryBytes, DEFAULT_MAX_MEMORY_BYTES, "maxMemoryBytes");
  if (!hasWasmSimd()) {
    throw new LowbitError("E_WASM_UNSUPPORTED", "this host has no WebAssembly SIMD (needs Node >= 16.4, Chrome >= 91, Firefox >= 89, Safari >= 16.4)");
  }
  const want = opts.backend ?? "auto";
  let relaxed: { module: WebAssembly.Module | null; reason: string } = { module: null, reason: "not requested (backend 'simd')" };
  if (want !== "simd") relaxed = await relaxedModule(opts.relaxed);
  if (want === "relaxed" && !relaxed.module) {
    throw new LowbitError("E_WASM_UNSUPPORTED", `backend 'relaxed' requested but ${relaxed.reason}`);
  }
  let module: WebAssembly.Module;
  let backend: Backend;
  if (relaxed.module) {
    module = relaxed.module;
    backend = "relaxed";
  } else {
    const explicit = opts.module || opts.bytes || opts.url;
    module = explicit ? await loadSource(opts, SIMD_WASM_BASE64) : (simdModuleCache ??= await loadSource({}, SIMD_WASM_BASE64));
    backend = "simd";
  }
  const instance = await WebAssembly.instantiate(module, {});
  const info: BackendInfo = { backend, relaxedAvailable: relaxed.module !== null, relaxedReason: relaxed.reason, buildId: WASM_BUILD_ID };
  return new Runtime(instance, info, maxMemoryBytes);
}

/** Initializes (once) and returns the default runtime. Calling again with options replaces it. */
export async function init(opts?: InitOptions): Promise<Runtime> {
  if (defaultRuntime && !opts) return defaultRuntime;
  defaultRuntime = await createRuntime(opts);
  return defaultRuntime;
}

/** The default runtime; throws E_NOT_INITIALIZED before `await init()`. */
export function runtime(): Runtime {
  if (!defaultRuntime) throw new LowbitError("E_NOT_INITIALIZED", "call `await init()` before using lowbit kernels");
  return defaultRuntime;
}

/** Which build runs in the default runtime, and why. */
export function backendInfo(): BackendInfo {
  return runtime().info;
}
