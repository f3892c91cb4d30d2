import { LowbitError, check } from "./errors.ts";

const PAGE = 65536;

/**
 * The one region of WASM linear memory the TS side hands to kernels.
 *
 * Plans (compiled models) compute every buffer offset ahead of time and call
 * `reserve(bytes)` once, so memory grows at most once per plan, never per
 * call. Scratch users (the typed-array kernel wrappers) take a `mark()`,
 * `alloc()` what they need and `release(mark)` afterwards: the high-water
 * mark grows, then stays.
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
  private buf: ArrayBuffer | null = null;
  private _u8!: Uint8Array;
  private _i8!: Int8Array;
  private _i16!: Int16Array;
  private _u16!: Uint16Array;
  private _i32!: Int32Array;
  private _f32!: Float32Array;

  constructor(memory: WebAssembly.Memory, base: number, maxBytes = 2 ** 31) {
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
    try {
      this.memory.grow(Math.ceil((need - have) / PAGE));
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
    this.top = mark;
  }

  /** Frees everything handed out (memory stays grown). */
  reset(): void {
    this.top = this.base;
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

export function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

export function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
