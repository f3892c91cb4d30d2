/**
 * A minimal protobuf wire-format reader and writer: exactly what ONNX files need, no dependency.
 *
 * Wire types (protobuf encoding spec): 0 varint, 1 fixed64, 2 length-delimited (bytes, strings,
 * sub-messages, packed repeated scalars), 5 fixed32. Groups (3, 4) are obsolete and never used by
 * onnx.proto; meeting one is a format error. Every read is bounds-checked against the slice the
 * enclosing message claims, so a truncated or corrupt file is a LowbitError E_MODEL_FORMAT naming
 * the field path, never a RangeError from a DataView or an allocation sized by a forged length.
 *
 * Varints are decoded into JS numbers: values above 2^53 (only possible for int64 fields such as
 * dims or int64_data, where no sane model has them) are rejected instead of silently rounded.
 * Negative int64 values are ten-byte two's complement varints; `int64()` maps them back.
 */
import { LowbitError } from "../../runtime/errors.ts";

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

const utf8 = new TextDecoder("utf-8", { fatal: false });
const utf8enc = new TextEncoder();

function fmt(msg: string): LowbitError {
  return new LowbitError("E_MODEL_FORMAT", msg);
}

/** One field as read: its number, wire type, and either a scalar (varint / fixed) or a byte range. */
export interface Field {
  no: number;
  wire: number;
  /** Varint / fixed32 / fixed64 value (as a JS number; fixed64 as its low+high composition). */
  value: number;
  /** For WIRE_LEN: start and end (exclusive) offsets into the reader's buffer. */
  start: number;
  end: number;
  /** For WIRE_VARINT: the exact low / high 32-bit words. */
  lo?: number;
  hi?: number;
}

/** Reads the fields of one message occupying buf[start, end). */
export class ProtoReader {
  readonly buf: Uint8Array;
  private readonly dv: DataView;
  pos: number;
  readonly end: number;
  /** Human-readable location for error messages ("ModelProto.graph.node[3]"). */
  readonly where: string;

  constructor(buf: Uint8Array, start = 0, end = buf.length, where = "message") {
    if (start < 0 || end > buf.length || start > end) throw fmt(`${where}: slice [${start}, ${end}) outside a ${buf.length}-byte buffer`);
    this.buf = buf;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
    this.end = end;
    this.where = where;
  }

  /** A reader over a length-delimited field's bytes. */
  sub(f: Field, where: string): ProtoReader {
    if (f.wire !== WIRE_LEN) throw fmt(`${where}: expected a length-delimited field (wire type 2), got wire type ${f.wire}`);
    return new ProtoReader(this.buf, f.start, f.end, where);
  }

  /** Last varint's low and high 32-bit words (exact, for signed int64 decoding). */
  private lo = 0;
  private hi = 0;

  /** Raw varint: sets lo/hi (exact 64 bits) and returns hi·2^32 + lo (exact up to 2^53). */
  private varint(): number {
    let lo = 0, hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw fmt(`${this.where}: truncated varint at byte ${this.pos}`);
      const b = this.buf[this.pos++];
      const v = b & 0x7f;
      if (i < 4) lo |= v << (7 * i);
      else if (i === 4) {
        lo |= v << 28;
        hi |= v >>> 4;
      } else hi |= v << (7 * i - 32);
      if ((b & 0x80) === 0) {
        if (i === 9 && b > 1) throw fmt(`${this.where}: varint overflows 64 bits at byte ${this.pos - 1}`);
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return this.hi * 4294967296 + this.lo;
      }
    }
    throw fmt(`${this.where}: varint longer than 10 bytes at byte ${this.pos}`);
  }

  /** The last varint as a signed 64-bit integer (two's complement), exact or rejected. */
  private signed(what: string): number {
    const { lo, hi } = this;
    if (hi < 0x80000000) {
      const v = hi * 4294967296 + lo;
      if (v > Number.MAX_SAFE_INTEGER) throw fmt(`${this.where}.${what}: integer ${v} exceeds 2^53`);
      return v;
    }
    const nlo = (~lo + 1) >>> 0;
    const nhi = (~hi + (nlo === 0 ? 1 : 0)) >>> 0;
    const m = nhi * 4294967296 + nlo;
    if (m > Number.MAX_SAFE_INTEGER) throw fmt(`${this.where}.${what}: integer below −2^53`);
    return -m;
  }

  /** Next field, or null at the end of the message. */
  next(): Field | null {
    if (this.pos >= this.end) return null;
    const at = this.pos;
    const key = this.varint();
    const no = Math.floor(key / 8), wire = key % 8;
    if (no < 1 || no > 536870911) throw fmt(`${this.where}: invalid field number ${no} at byte ${at}`);
    switch (wire) {
      case WIRE_VARINT: {
        const value = this.varint();
        return { no, wire, value, start: 0, end: 0, lo: this.lo, hi: this.hi };
      }
      case WIRE_I64: {
        this.need(8, no);
        const lo = this.dv.getUint32(this.pos, true), hi = this.dv.getUint32(this.pos + 4, true);
        const start = this.pos;
        this.pos += 8;
        return { no, wire, value: hi * 4294967296 + lo, start, end: this.pos };
      }
      case WIRE_LEN: {
        const len = this.varint();
        this.need(len, no);
        const start = this.pos;
        this.pos += len;
        return { no, wire, value: len, start, end: this.pos };
      }
      case WIRE_I32: {
        this.need(4, no);
        const start = this.pos;
        const v = this.dv.getUint32(this.pos, true);
        this.pos += 4;
        return { no, wire, value: v, start, end: this.pos };
      }
      default:
        throw fmt(`${this.where}: unsupported wire type ${wire} (field ${no}) at byte ${at}`);
    }
  }

  private need(n: number, no: number): void {
    if (!(n <= this.end - this.pos)) {
      throw fmt(`${this.where}: field ${no} claims ${n} bytes but only ${this.end - this.pos} remain (truncated or corrupt file)`);
    }
  }

  /** Bytes of a length-delimited field (a view, not a copy). */
  bytes(f: Field, what: string): Uint8Array {
    if (f.wire !== WIRE_LEN) throw fmt(`${this.where}.${what}: expected bytes (wire type 2), got wire type ${f.wire}`);
    return this.buf.subarray(f.start, f.end);
  }

  string(f: Field, what: string): string {
    return utf8.decode(this.bytes(f, what));
  }

  /** An int64/int32 field (varint; negative values are 64-bit two's complement). */
  int64(f: Field, what: string): number {
    if (f.wire !== WIRE_VARINT) throw fmt(`${this.where}.${what}: expected a varint, got wire type ${f.wire}`);
    this.lo = f.lo!;
    this.hi = f.hi!;
    return this.signed(what);
  }

  /** A float field (fixed32). */
  float(f: Field, what: string): number {
    if (f.wire !== WIRE_I32) throw fmt(`${this.where}.${what}: expected a float (wire type 5), got wire type ${f.wire}`);
    return this.dv.getFloat32(f.start, true);
  }

  /** A double (fixed64). */
  double(f: Field, what: string): number {
    if (f.wire !== WIRE_I64) throw fmt(`${this.where}.${what}: expected a double (wire type 1), got wire type ${f.wire}`);
    return this.dv.getFloat64(f.start, true);
  }

  /**
   * Repeated int64/int32 values: packed (one WIRE_LEN field) or not (one varint), appended to out.
   * `limit` bounds the count (a packed field of n bytes holds at most n values anyway).
   */
  int64s(f: Field, out: number[], what: string, limit = Infinity): void {
    if (f.wire === WIRE_VARINT) {
      out.push(this.int64(f, what));
    } else if (f.wire === WIRE_LEN) {
      const r = new ProtoReader(this.buf, f.start, f.end, `${this.where}.${what}`);
      while (r.pos < r.end) {
        r.varint();
        out.push(r.signed(what));
      }
    } else {
      throw fmt(`${this.where}.${what}: expected varints, got wire type ${f.wire}`);
    }
    if (out.length > limit) throw fmt(`${this.where}.${what}: more than ${limit} values`);
  }

  /** Repeated floats: packed (WIRE_LEN, multiple of 4 bytes) or one fixed32. */
  floats(f: Field, out: number[], what: string): void {
    if (f.wire === WIRE_I32) {
      out.push(this.float(f, what));
    } else if (f.wire === WIRE_LEN) {
      if ((f.end - f.start) % 4 !== 0) throw fmt(`${this.where}.${what}: packed floats of ${f.end - f.start} bytes (not a multiple of 4)`);
      for (let p = f.start; p < f.end; p += 4) out.push(this.dv.getFloat32(p, true));
    } else {
      throw fmt(`${this.where}.${what}: expected floats, got wire type ${f.wire}`);
    }
  }

  /** Repeated doubles: packed or one fixed64. */
  doubles(f: Field, out: number[], what: string): void {
    if (f.wire === WIRE_I64) {
      out.push(this.double(f, what));
    } else if (f.wire === WIRE_LEN) {
      if ((f.end - f.start) % 8 !== 0) throw fmt(`${this.where}.${what}: packed doubles of ${f.end - f.start} bytes (not a multiple of 8)`);
      for (let p = f.start; p < f.end; p += 8) out.push(this.dv.getFloat64(p, true));
    } else {
      throw fmt(`${this.where}.${what}: expected doubles, got wire type ${f.wire}`);
    }
  }
}

/**
 * Protobuf writer. Messages are built bottom-up: `msg.bytes(no, child.finish())` embeds a child.
 * Chunks are kept in a list and concatenated once (no quadratic copying for large initializers).
 */
export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(256);
  private n = 0;
  private total = 0;

  private ensure(k: number): void {
    if (this.n + k <= this.cur.length) return;
    this.flush();
    if (k > this.cur.length) this.cur = new Uint8Array(Math.max(k, 256));
  }

  private flush(): void {
    if (this.n) {
      this.chunks.push(this.cur.slice(0, this.n));
      this.total += this.n;
      this.n = 0;
    }
  }

  private rawVarint(v: number): void {
    // v is a non-negative integer ≤ 2^64 − 1 (negatives are converted by the caller).
    this.ensure(10);
    while (v >= 128) {
      this.cur[this.n++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.cur[this.n++] = v;
  }

  private key(no: number, wire: number): void {
    this.rawVarint(no * 8 + wire);
  }

  /** int64/int32/enum/bool field. Negative values encode as 10-byte two's complement. */
  int64(no: number, v: number): this {
    if (!Number.isSafeInteger(v)) throw new LowbitError("E_ARGUMENT", `protobuf int64 field ${no}: ${v} is not a safe integer`);
    this.key(no, WIRE_VARINT);
    if (v >= 0) this.rawVarint(v);
    else this.negVarint(v);
    return this;
  }

  private negVarint(v: number): void {
    // Two's complement of a negative safe integer over 64 bits: split into low/high 32-bit words.
    const lo = v % 4294967296 === 0 ? 0 : (v % 4294967296) + 4294967296;
    let hi = Math.floor(v / 4294967296) + 4294967296; // high word, two's complement
    let low = lo >>> 0;
    this.ensure(10);
    for (let i = 0; i < 9; i++) {
      // 7 bits at a time across the 64-bit (hi:low) value
      const b = low & 0x7f;
      low = (low >>> 7) | ((hi & 0x7f) << 25);
      hi = hi >>> 7;
      this.cur[this.n++] = b | 0x80;
    }
    this.cur[this.n++] = low & 0x01;
  }

  float(no: number, v: number): this {
    this.key(no, WIRE_I32);
    this.ensure(4);
    new DataView(this.cur.buffer).setFloat32(this.n, v, true);
    this.n += 4;
    return this;
  }

  bytes(no: number, b: Uint8Array): this {
    this.key(no, WIRE_LEN);
    this.rawVarint(b.length);
    if (b.length > 4096) {
      this.flush();
      this.chunks.push(b);
      this.total += b.length;
    } else {
      this.ensure(b.length);
      this.cur.set(b, this.n);
      this.n += b.length;
    }
    return this;
  }

  string(no: number, s: string): this {
    return this.bytes(no, utf8enc.encode(s));
  }

  /** Packed repeated int64. */
  packedInt64(no: number, vs: ArrayLike<number>): this {
    const w = new ProtoWriter();
    for (let i = 0; i < vs.length; i++) {
      const v = vs[i];
      if (!Number.isSafeInteger(v)) throw new LowbitError("E_ARGUMENT", `protobuf int64 field ${no}: ${v} is not a safe integer`);
      if (v >= 0) w.rawVarint(v);
      else w.negVarint(v);
    }
    return this.bytes(no, w.finish());
  }

  /** Packed repeated float. */
  packedFloat(no: number, vs: ArrayLike<number>): this {
    const b = new Uint8Array(vs.length * 4);
    const dv = new DataView(b.buffer);
    for (let i = 0; i < vs.length; i++) dv.setFloat32(i * 4, vs[i], true);
    return this.bytes(no, b);
  }

  finish(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0];
    const out = new Uint8Array(this.total);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}
