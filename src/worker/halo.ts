/**
 * Halo exchange between the workers of a pool that split one image into horizontal strips.
 *
 * Why: two strips cut with the exact receptive-field margin each recompute that margin — at 256²
 * on esrgan-medium ×2 that is 18 of every 146 rows (≈ 9 after row trimming), which caps two
 * workers at ~1.75× (~1.86× trimmed). Exchanging instead, each worker computes only its own rows
 * of every layer and, after each layer, swaps with its neighbours the r rows their next conv reads
 * across the boundary (row-windows.ts: haloRows / computeHaloWindows). The values are the same
 * numbers an untiled run computes — integer or float, bit for bit — since every needed row is
 * computed by exactly the same kernel on the same inputs, only on another worker.
 *
 * Transport: one SharedArrayBuffer per image (the pool allocates it; workers' WASM memories stay
 * private). Layout:
 *   Int32 header (64 bytes per slot of flags, rounded): [0] abort, then per boundary b between
 *   strips b and b + 1: flag[down b], flag[up b] = sequence number of the last rows published.
 *   Slots: per boundary, direction (down, up) and parity (sequence & 1), `slotBytes` each.
 * A strip publishes rows by copying them into its slot, then storing the sequence number in the
 * flag and notifying; its neighbour waits (Atomics.wait) for that number, copies the rows out.
 * Parity double-buffering is enough: a strip can reach exchange k + 2 (and overwrite slot k & 1)
 * only after its neighbour has published k + 1, i.e. after the neighbour finished reading k.
 *
 * Without SharedArrayBuffer (browsers without cross-origin isolation) the pool falls back to
 * margin tiles with trimmed rows; nothing here is then used.
 */
import { LowbitError } from "../runtime/errors.ts";
import type { HaloExchange } from "../graph/step-plan.ts";

const HEADER_INTS = 16;

/** SharedArrayBuffer bytes for `strips` strips exchanging up to `slotBytes` per swap and direction. */
export function haloBufferBytes(strips: number, slotBytes: number): number {
  const boundaries = Math.max(0, strips - 1);
  return headerBytes(strips) + boundaries * 4 * slotBytes;
}

function headerBytes(strips: number): number {
  return Math.ceil((HEADER_INTS + 2 * strips) * 4 / 64) * 64;
}

/** Sets the abort word: every strip waiting on this buffer throws E_ABORTED at once. */
export function abortHalo(buffer: SharedArrayBuffer, strips: number): void {
  const f = new Int32Array(buffer, 0, headerBytes(strips) >> 2);
  Atomics.store(f, 0, 1);
  for (let i = HEADER_INTS; i < f.length; i++) Atomics.notify(f, i);
}

/**
 * Copies `n` rows starting at row `y0` of a strided tensor into `dst` (packed pixels), or back when
 * `unpack`: rows of W pixels, `pixelBytes` each at `strideBytes` intervals, from byte `ptr` of `mem`.
 */
export function copyRows(mem: Uint8Array, ptr: number, W: number, pixelBytes: number, strideBytes: number, y0: number, n: number,
  packed: Uint8Array, unpack: boolean): void {
  const start = ptr + y0 * W * strideBytes;
  if (pixelBytes === strideBytes) {
    const len = n * W * pixelBytes;
    if (unpack) mem.set(packed.subarray(0, len), start);
    else packed.set(mem.subarray(start, start + len));
    return;
  }
  let o = 0;
  for (let p = 0, q = start; p < n * W; p++, q += strideBytes, o += pixelBytes) {
    if (unpack) mem.set(packed.subarray(o, o + pixelBytes), q);
    else packed.set(mem.subarray(q, q + pixelBytes), o);
  }
}

/** One strip's end of the exchange (used by the worker that runs strip `index` of `strips`). */
export class SabRowExchange implements HaloExchange {
  private readonly flags: Int32Array;
  private readonly buffer: SharedArrayBuffer;
  private seq = 0;

  constructor(buffer: SharedArrayBuffer, readonly index: number, readonly strips: number, readonly slotBytes: number) {
    if (!(Number.isInteger(index) && Number.isInteger(strips) && index >= 0 && index < strips)) {
      throw new LowbitError("E_ARGUMENT", `strip ${index} of ${strips} is not a valid strip`);
    }
    if (!Number.isInteger(slotBytes) || slotBytes < 0 || buffer.byteLength < haloBufferBytes(strips, slotBytes)) {
      throw new LowbitError("E_ARGUMENT", `halo buffer of ${buffer.byteLength} bytes is too small for ${strips} strips of ${slotBytes}-byte slots`);
    }
    this.buffer = buffer;
    this.flags = new Int32Array(buffer, 0, headerBytes(strips) >> 2);
  }

  /** Flag index of (boundary b, direction d: 0 down, 1 up). */
  private flag(b: number, d: number): number {
    return HEADER_INTS + 2 * b + d;
  }

  private slot(b: number, d: number, parity: number, len: number): Uint8Array {
    if (len > this.slotBytes) throw new LowbitError("E_SHAPE", `halo rows of ${len} bytes exceed the ${this.slotBytes}-byte slot`);
    return new Uint8Array(this.buffer, headerBytes(this.strips) + ((b * 2 + d) * 2 + parity) * this.slotBytes, len);
  }

  private wait(i: number, seq: number): void {
    const f = this.flags;
    for (;;) {
      if (Atomics.load(f, 0) !== 0) throw new LowbitError("E_ABORTED", "the image was aborted (a neighbouring strip failed or the caller aborted)");
      const v = Atomics.load(f, i);
      if (v >= seq) return;
      Atomics.wait(f, i, v, 1000);
    }
  }

  swap(mem: Uint8Array, ptr: number, W: number, pixelBytes: number, strideBytes: number, c0: number, c1: number, R: number): void {
    const seq = ++this.seq, parity = seq & 1, len = R * W * pixelBytes;
    const above = this.index > 0, below = this.index < this.strips - 1;
    if (above) { // my top rows go up across boundary index − 1
      copyRows(mem, ptr, W, pixelBytes, strideBytes, c0, R, this.slot(this.index - 1, 1, parity, len), false);
      Atomics.store(this.flags, this.flag(this.index - 1, 1), seq);
      Atomics.notify(this.flags, this.flag(this.index - 1, 1));
    }
    if (below) { // my bottom rows go down across boundary index
      copyRows(mem, ptr, W, pixelBytes, strideBytes, c1 - R, R, this.slot(this.index, 0, parity, len), false);
      Atomics.store(this.flags, this.flag(this.index, 0), seq);
      Atomics.notify(this.flags, this.flag(this.index, 0));
    }
    if (above) {
      this.wait(this.flag(this.index - 1, 0), seq);
      copyRows(mem, ptr, W, pixelBytes, strideBytes, c0 - R, R, this.slot(this.index - 1, 0, parity, len), true);
    }
    if (below) {
      this.wait(this.flag(this.index, 1), seq);
      copyRows(mem, ptr, W, pixelBytes, strideBytes, c1, R, this.slot(this.index, 1, parity, len), true);
    }
  }
}
