/**
 * A MessagePack writer that makes the exact byte choices of Python's `msgpack` (as MSight uses it): ints in their
 * smallest form (unsigned forms for non-negative values), floats always as float64 (even `1.0`), strings as
 * fixstr/str8/16/32, bytes as bin8/16/32. A generic encoder cannot do this because JavaScript's `1` and `1.0` are
 * the same number: the caller says which fields are floats.
 *
 * @example
 * ```ts
 * import { MsgpackWriter } from "./msgpack_writer.ts";
 * const w = new MsgpackWriter();
 * w.mapHeader(1); w.str("t"); w.f64(1.0);
 * const bytes = w.finish(); // 81 a1 74 cb 3f f0 00 00 00 00 00 00
 * ```
 * @module
 */

const textEncoder = new TextEncoder();

/** Appends MessagePack values to a growing buffer. */
export class MsgpackWriter {
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;

  constructor(initialCapacity = 256) {
    this.#buf = new Uint8Array(initialCapacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  #u8(v: number): void {
    this.#ensure(1);
    this.#buf[this.#pos++] = v;
  }

  #bytes(b: Uint8Array): void {
    this.#ensure(b.length);
    this.#buf.set(b, this.#pos);
    this.#pos += b.length;
  }

  nil(): void {
    this.#u8(0xc0);
  }

  bool(v: boolean): void {
    this.#u8(v ? 0xc3 : 0xc2);
  }

  /** A float64, always (Python floats are doubles). */
  f64(v: number): void {
    this.#ensure(9);
    this.#buf[this.#pos] = 0xcb;
    this.#view.setFloat64(this.#pos + 1, v);
    this.#pos += 9;
  }

  /** An integer (number or bigint) in the smallest form Python's msgpack would choose. */
  int(v: number | bigint): void {
    const b = typeof v === "bigint" ? v : BigInt(v);
    if (b >= 0n) {
      if (b < 128n) return this.#u8(Number(b));
      if (b < 0x100n) return this.#fixed(0xcc, 1, b);
      if (b < 0x10000n) return this.#fixed(0xcd, 2, b);
      if (b < 0x100000000n) return this.#fixed(0xce, 4, b);
      if (b < 0x10000000000000000n) return this.#fixed(0xcf, 8, b);
      throw new RangeError(`integer ${b} does not fit in 64 bits`);
    }
    if (b >= -32n) return this.#u8(Number(b) & 0xff);
    if (b >= -0x80n) return this.#fixed(0xd0, 1, b);
    if (b >= -0x8000n) return this.#fixed(0xd1, 2, b);
    if (b >= -0x80000000n) return this.#fixed(0xd2, 4, b);
    if (b >= -0x8000000000000000n) return this.#fixed(0xd3, 8, b);
    throw new RangeError(`integer ${b} does not fit in 64 bits`);
  }

  #fixed(tag: number, size: 1 | 2 | 4 | 8, v: bigint): void {
    this.#ensure(1 + size);
    this.#buf[this.#pos] = tag;
    const at = this.#pos + 1;
    const signed = tag >= 0xd0;
    if (size === 1) signed ? this.#view.setInt8(at, Number(v)) : this.#view.setUint8(at, Number(v));
    else if (size === 2) signed ? this.#view.setInt16(at, Number(v)) : this.#view.setUint16(at, Number(v));
    else if (size === 4) signed ? this.#view.setInt32(at, Number(v)) : this.#view.setUint32(at, Number(v));
    else signed ? this.#view.setBigInt64(at, v) : this.#view.setBigUint64(at, v);
    this.#pos += 1 + size;
  }

  str(s: string): void {
    // Short ASCII (every key, and nearly every value, of a bus message) is written here directly: TextEncoder is a
    // call into the runtime, and a message has a dozen strings.
    if (s.length < 32 && this.#ascii(s)) return;
    const b = textEncoder.encode(s);
    const n = b.length;
    if (n < 32) this.#u8(0xa0 | n);
    else if (n < 0x100) this.#header(0xd9, 1, n);
    else if (n < 0x10000) this.#header(0xda, 2, n);
    else this.#header(0xdb, 4, n);
    this.#bytes(b);
  }

  /** Writes `s` (under 32 characters) as a fixstr if it is all ASCII; false, writing nothing, if it is not. */
  #ascii(s: string): boolean {
    const n = s.length;
    for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) return false;
    this.#ensure(1 + n);
    const buf = this.#buf;
    let at = this.#pos;
    buf[at++] = 0xa0 | n;
    for (let i = 0; i < n; i++) buf[at++] = s.charCodeAt(i);
    this.#pos = at;
    return true;
  }

  bin(b: Uint8Array): void {
    this.binHeader(b.length);
    this.#bytes(b);
  }

  /** The head of a bin of `n` bytes, for a caller that sends the bytes themselves separately (see `take`). */
  binHeader(n: number): void {
    if (n < 0x100) this.#header(0xc4, 1, n);
    else if (n < 0x10000) this.#header(0xc5, 2, n);
    else if (n < 0x100000000) this.#header(0xc6, 4, n);
    else throw new RangeError(`${n} bytes do not fit in a MessagePack bin (at most 4 GiB)`);
  }

  arrayHeader(n: number): void {
    if (n < 16) this.#u8(0x90 | n);
    else if (n < 0x10000) this.#header(0xdc, 2, n);
    else this.#header(0xdd, 4, n);
  }

  mapHeader(n: number): void {
    if (n < 16) this.#u8(0x80 | n);
    else if (n < 0x10000) this.#header(0xde, 2, n);
    else this.#header(0xdf, 4, n);
  }

  #header(tag: number, size: 1 | 2 | 4, n: number): void {
    this.#ensure(1 + size);
    this.#buf[this.#pos] = tag;
    if (size === 1) this.#view.setUint8(this.#pos + 1, n);
    else if (size === 2) this.#view.setUint16(this.#pos + 1, n);
    else this.#view.setUint32(this.#pos + 1, n);
    this.#pos += 1 + size;
  }

  /**
   * Any JSON-like value (detection results from a detector): integral numbers as ints, others as float64, bigint
   * as int, Uint8Array as bin, arrays, and plain objects or Maps as maps.
   */
  value(v: unknown): void {
    if (v === null || v === undefined) return this.nil();
    switch (typeof v) {
      case "boolean":
        return this.bool(v);
      case "bigint":
        return this.int(v);
      case "number":
        return Number.isSafeInteger(v) ? this.int(v) : this.f64(v);
      case "string":
        return this.str(v);
    }
    if (v instanceof Uint8Array) return this.bin(v);
    if (Array.isArray(v)) {
      this.arrayHeader(v.length);
      for (const x of v) this.value(x);
      return;
    }
    if (v instanceof Map) {
      this.mapHeader(v.size);
      for (const [k, x] of v) {
        this.value(k);
        this.value(x);
      }
      return;
    }
    if (typeof v === "object") {
      const entries = Object.entries(v as Record<string, unknown>);
      this.mapHeader(entries.length);
      for (const [k, x] of entries) {
        this.str(k);
        this.value(x);
      }
      return;
    }
    throw new TypeError(`cannot encode a ${typeof v} as MessagePack`);
  }

  /** The bytes written so far (a view, not a copy). */
  finish(): Uint8Array {
    return this.#buf.subarray(0, this.#pos);
  }

  /**
   * The bytes written so far, after which the writer starts over on a fresh buffer: a message is then made of the
   * pieces taken, with bytes sent separately between them (after a `binHeader`).
   *
   * @example
   * ```ts
   * import { MsgpackWriter } from "./msgpack_writer.ts";
   * const w = new MsgpackWriter();
   * w.binHeader(3);
   * const message = [w.take(), new Uint8Array([1, 2, 3])]; // c4 03, then the three bytes
   * ```
   */
  take(): Uint8Array {
    const out = this.finish();
    this.#buf = new Uint8Array(Math.max(64, this.#buf.length - this.#pos));
    this.#view = new DataView(this.#buf.buffer);
    this.#pos = 0;
    return out;
  }
}
