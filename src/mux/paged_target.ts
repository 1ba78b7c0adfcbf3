/**
 * Where the muxer writes a segment: fixed-size pages in memory, so the file is held exactly once and handed
 * on as the list of its pages ({@linkcode PagedTarget.pieces}), never joined. Writes may land anywhere (the
 * sample table is written last, at the start); a write past the end fills the gap with zeros. Why pages:
 * docs/design.md, "Mux".
 *
 * @example
 * ```ts
 * import { PagedTarget } from "./paged_target.ts";
 * const t = new PagedTarget(4);
 * t.write(new Uint8Array([1, 2, 3, 4, 5, 6]), 0);
 * t.write(new Uint8Array([9]), 1);
 * t.pieces(); // [Uint8Array [1, 9, 3, 4], Uint8Array [5, 6]]
 * ```
 * @module
 */

/** 1 MiB: large enough that a 30 MB segment is 30 socket writes, small enough that the last page wastes little. */
export const DEFAULT_PAGE_SIZE = 1 << 20;

/** A byte sequence written at arbitrary positions into fixed-size pages. */
export class PagedTarget {
  readonly #pages: Uint8Array[] = [];
  #length = 0;

  constructor(readonly pageSize: number = DEFAULT_PAGE_SIZE) {
    if (!Number.isInteger(pageSize) || pageSize < 1) {
      throw new RangeError(`page size ${pageSize} is invalid: expected a positive integer`);
    }
  }

  /** Bytes written so far: the highest position written + 1. */
  get byteLength(): number {
    return this.#length;
  }

  /** Copies `data` to `position`, over what was there; the target grows as needed. */
  write(data: Uint8Array, position: number): void {
    if (!Number.isSafeInteger(position) || position < 0) {
      throw new RangeError(`write position ${position} is invalid: expected a non-negative integer`);
    }
    let at = position, from = 0;
    while (from < data.byteLength) {
      const index = Math.floor(at / this.pageSize), offset = at % this.pageSize;
      // Pages are zeroed when made, which is the gap filling.
      while (this.#pages.length <= index) this.#pages.push(new Uint8Array(this.pageSize));
      const n = Math.min(this.pageSize - offset, data.byteLength - from);
      this.#pages[index].set(data.subarray(from, from + n), offset);
      from += n;
      at += n;
    }
    this.#length = Math.max(this.#length, at);
  }

  /** The bytes in order, as views of the pages (not copies); the last one is cut to the length written. */
  pieces(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = 0, left = this.#length; left > 0; i++, left -= this.pageSize) {
      out.push(left >= this.pageSize ? this.#pages[i] : this.#pages[i].subarray(0, left));
    }
    return out;
  }
}
