import { LowbitError, check } from "./errors.ts";
import { DEFAULT_MAX_MEMORY_BYTES } from "./limits.ts";

const PAGE = 65536;

/**
 * The one region of WASM linear memory the TS side hands to kernels.
 *
 * Two ways to take memory:
 * - Long-lived blocks (`ArenaRegion`, used by compiled plans): first-fit in
 *   the gaps freed by earlier regions, else at the top. Each region frees only
 *   its own blocks, so plans can be created and disposed in any order.
 * - Scratch (the typed-array kernel wrappers): `mark()`, `alloc()` at the top,
 *   `release(mark)`. Synchronous and strictly nested; the high-water mark
 *   grows, then stays.
 * Plans size everything ahead of time, so memory grows at most once per plan,
 * never per call.
 *
 * Typed-array views are rebuilt lazily when `memory.buffer` changes (growth
 * detaches the old ArrayBuffer).
 */
export class Arena {
  readonly memory: WebAssembly.Memory;
  /** First usable byte (64-aligned, after the module's static data). */
  readonly base: number;
  /** Upper bound on linear memory this arena may grow to, in bytes. */
  readonly maxBytes: number;
  private top: number;
  /** Live long-lived blocks [start, end), sorted by start. */
  private blocks: Array<[number, number]> = [];
  private buf: ArrayBuffer | null = null;
  private _u8!: Uint8Array;
  private _i8!: Int8Array;
  private _i16!: Int16Array;
  private _u16!: Uint16Array;
  private _i32!: Int32Array;
  private _f32!: Float32Array;

  constructor(memory: WebAssembly.Memory, base: number, maxBytes = DEFAULT_MAX_MEMORY_BYTES) {
    check(typeof maxBytes === "number" && maxBytes >= 1, "E_ARGUMENT", `arena memory limit must be a number ≥ 1, got ${maxBytes}`);
    this.memory = memory;
    this.base = alignUp(base, 64);
    this.top = this.base;
    this.maxBytes = Math.min(maxBytes, 65536 * PAGE);
  }

  /** Bytes currently handed out (from base). */
  get used(): number {
    return this.top - this.base;
  }

  /** Current size of linear memory in bytes. */
  get capacity(): number {
    return this.memory.buffer.byteLength;
  }

  /** Ensures linear memory covers [0, base + bytes); grows in one step. */
  reserve(bytes: number): void {
    const need = this.base + bytes;
    const have = this.memory.buffer.byteLength;
    if (need <= have) return;
    if (!Number.isFinite(need) || need > this.maxBytes) {
      throw new LowbitError("E_MEMORY", `needs ${fmtBytes(need)} of WASM memory, over the limit of ${fmtBytes(this.maxBytes)}`);
    }
    // Grow geometrically (×1.5, within the limit) so a plan compiling block by block grows a few times, not per block.
    const target = Math.min(this.maxBytes, Math.max(need, Math.floor(have * 1.5)));
    try {
      this.memory.grow(Math.ceil((target - have) / PAGE));
    } catch (e) {
      throw new LowbitError("E_MEMORY", `could not grow WASM memory to ${fmtBytes(need)}`, { cause: e });
    }
  }

  /** Bump-allocates `bytes` (aligned) and returns the byte offset. */
  alloc(bytes: number, align = 64): number {
    check(Number.isInteger(bytes) && bytes >= 0, "E_ARGUMENT", `alloc of ${bytes} bytes`);
    const p = alignUp(this.top, align);
    this.reserve(p + bytes - this.base);
    this.top = p + bytes;
    return p;
  }

  mark(): number {
    return this.top;
  }

  release(mark: number): void {
    check(mark >= this.base && mark <= this.top, "E_ARGUMENT", "arena release of a mark that is not live");
    this.top = Math.max(mark, this.blocksEnd());
  }

  /** Frees everything handed out (memory stays grown). */
  reset(): void {
    this.top = this.base;
    this.blocks = [];
  }

  private blocksEnd(): number {
    let e = this.base;
    for (const b of this.blocks) e = Math.max(e, b[1]);
    return e;
  }

  /**
   * Runs `fn` (synchronous) and, if it throws, frees every long-lived block it allocated and
   * restores the scratch top, then rethrows: a plan constructor that fails half-way (E_MEMORY for
   * its tensor buffers after its weights were packed) leaves the arena exactly as it found it.
   */
  atomic<T>(fn: () => T): T {
    const before = new Set(this.blocks.map((b) => b[0]));
    const top = this.top;
    try {
      return fn();
    } catch (e) {
      this.blocks = this.blocks.filter((b) => before.has(b[0]));
      this.top = Math.max(top, this.blocksEnd());
      throw e;
    }
  }

  /** Number of live long-lived blocks (diagnostics and leak tests). */
  get liveBlocks(): number {
    return this.blocks.length;
  }

  /** A long-lived block: first fit in a gap between live blocks, else at the top. */
  allocBlock(bytes: number, align = 64): number {
    check(Number.isInteger(bytes) && bytes >= 0, "E_ARGUMENT", `alloc of ${bytes} bytes`);
    let prev = this.base;
    let at = -1;
    let idx = this.blocks.length;
    for (let i = 0; i < this.blocks.length; i++) {
      const p = alignUp(prev, align);
      if (p + bytes <= this.blocks[i][0]) {
        at = p;
        idx = i;
        break;
      }
      prev = this.blocks[i][1];
    }
    if (at < 0) {
      at = alignUp(Math.max(this.top, prev), align);
      this.reserve(at + bytes - this.base);
      this.top = at + bytes;
    }
    this.blocks.splice(idx, 0, [at, at + bytes]);
    return at;
  }

  /** Frees a block from allocBlock. */
  freeBlock(p: number): void {
    const i = this.blocks.findIndex((b) => b[0] === p);
    check(i >= 0, "E_ARGUMENT", `arena free of ${p}, which is not a live block`);
    this.blocks.splice(i, 1);
  }

  private refresh(): void {
    const b = this.memory.buffer as ArrayBuffer;
    if (b === this.buf) return;
    this.buf = b;
    this._u8 = new Uint8Array(b);
    this._i8 = new Int8Array(b);
    this._i16 = new Int16Array(b);
    this._u16 = new Uint16Array(b);
    this._i32 = new Int32Array(b);
    this._f32 = new Float32Array(b);
  }

  get u8(): Uint8Array { this.refresh(); return this._u8; }
  get i8(): Int8Array { this.refresh(); return this._i8; }
  get i16(): Int16Array { this.refresh(); return this._i16; }
  get u16(): Uint16Array { this.refresh(); return this._u16; }
  get i32(): Int32Array { this.refresh(); return this._i32; }
  get f32(): Float32Array { this.refresh(); return this._f32; }

  /** Copies a typed array into memory at byte offset p. */
  write(p: number, src: ArrayBufferView): void {
    this.u8.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), p);
  }

  /** Copies `out.byteLength` bytes at byte offset p into out. */
  read(p: number, out: ArrayBufferView): void {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(this.u8.subarray(p, p + out.byteLength));
  }

  /** Allocates and fills; returns the offset. */
  put(src: ArrayBufferView, align = 64): number {
    const p = this.alloc(src.byteLength, align);
    this.write(p, src);
    return p;
  }
}

/**
 * A set of long-lived blocks freed together: a compiled plan's weights, tensor
 * buffers and scratch. Independent of other regions' lifetimes.
 */
export class ArenaRegion {
  readonly arena: Arena;
  private readonly owned: number[] = [];

  constructor(arena: Arena) {
    this.arena = arena;
  }

  alloc(bytes: number, align = 64): number {
    const p = this.arena.allocBlock(bytes, align);
    this.owned.push(p);
    return p;
  }

  /** Allocates and fills; returns the offset. */
  put(src: ArrayBufferView, align = 64): number {
    const p = this.alloc(src.byteLength, align);
    this.arena.write(p, src);
    return p;
  }

  free(): void {
    for (const p of this.owned.splice(0)) this.arena.freeBlock(p);
  }
}

export function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

export function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
