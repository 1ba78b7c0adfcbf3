/**
 * Cuts a byte stream of concatenated JPEG images (ffmpeg's `-f image2pipe -c:v mjpeg`) into whole images,
 * whatever the chunking of the pipe.
 *
 * It walks the JPEG marker structure instead of searching for the bytes FF D9: marker segments (APPn, COM, DQT,
 * DHT...) are skipped by their length, so an embedded thumbnail or a table byte pair FF D9 cannot end an image early;
 * in entropy-coded data FF is always followed by 00 (stuffing), D0-D7 (restart) or a real marker. Bytes that are not
 * JPEG are skipped up to the next start-of-image marker and counted.
 *
 * @example
 * ```ts
 * import { JpegSplitter } from "./jpeg_splitter.ts";
 * declare const child: Deno.ChildProcess;
 * const splitter = new JpegSplitter();
 * for await (const chunk of child.stdout) {
 *   for (const jpeg of splitter.push(chunk)) console.log(jpeg.length);
 * }
 * ```
 * @module
 */

const enum State {
  /** Looking for FF D8. */
  SeekSoi,
  /** At a marker (FF xx) between segments. */
  Marker,
  /** Inside entropy-coded data after an SOS header. */
  Entropy,
}

/** Options of {@linkcode JpegSplitter}. */
export interface JpegSplitterOptions {
  /** An image growing past this many bytes is dropped as corrupt and the splitter resynchronises (64 MiB). */
  maxFrameBytes?: number;
}

/**
 * Incremental JPEG stream splitter: {@linkcode JpegSplitter.push} bytes in, complete images out, in order.
 *
 * @example
 * ```ts
 * declare const a: Uint8Array, b: Uint8Array;
 * const s = new JpegSplitter();
 * const images = [...s.push(a), ...s.push(b)]; // each a whole FF D8 ... FF D9 image
 * ```
 */
export class JpegSplitter {
  #buf = new Uint8Array(1 << 16);
  #len = 0;
  /** Start of the image being assembled (or of unparsed bytes while seeking). */
  #start = 0;
  /** Next byte to examine. */
  #pos = 0;
  #state: State = State.SeekSoi;
  #maxFrameBytes: number;
  /** Bytes discarded because they were not part of a well-formed image. */
  skippedBytes = 0;
  /** Images abandoned because they were malformed or too large. */
  corruptFrames = 0;

  constructor(opts: JpegSplitterOptions = {}) {
    this.#maxFrameBytes = opts.maxFrameBytes ?? 64 * 1024 * 1024;
  }

  /** Bytes held for an image not yet complete. */
  get pendingBytes(): number {
    return this.#len - this.#start;
  }

  /**
   * Appends `chunk` and returns every image completed by it (each a fresh copy, safe to keep).
   *
   * @example
   * ```ts
   * declare const bytes: Uint8Array;
   * declare function handle(jpeg: Uint8Array): void;
   * for (const jpeg of new JpegSplitter().push(bytes)) handle(jpeg);
   * ```
   */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#append(chunk);
    const out: Uint8Array[] = [];
    this.#parse(out);
    if (this.#state !== State.SeekSoi && this.#len - this.#start > this.#maxFrameBytes) {
      this.corruptFrames++;
      this.#resync(this.#start + 2);
      this.#parse(out);
    }
    return out;
  }

  #append(chunk: Uint8Array): void {
    const need = this.#len + chunk.length;
    if (need > this.#buf.length) {
      // Compact before growing: the consumed prefix is dead. Compacting only here keeps pushes of tiny chunks
      // linear overall (no copy of the partial image per push).
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#len);
        this.#len -= this.#start;
        this.#pos -= this.#start;
        this.#start = 0;
      }
      if (this.#len + chunk.length > this.#buf.length) {
        let cap = this.#buf.length;
        while (cap < this.#len + chunk.length) cap *= 2;
        const grown = new Uint8Array(cap);
        grown.set(this.#buf.subarray(0, this.#len));
        this.#buf = grown;
      }
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.length;
  }

  /** Drops the partial image and searches for the next SOI from `from`. */
  #resync(from: number): void {
    this.skippedBytes += from - this.#start;
    this.#start = from;
    this.#pos = from;
    this.#state = State.SeekSoi;
  }

  #parse(out: Uint8Array[]): void {
    // A view bounded by #len: bytes past it are stale capacity and must never match a search.
    const b = this.#buf.subarray(0, this.#len);
    const len = b.length;
    for (;;) {
      if (this.#state === State.SeekSoi) {
        const soi = findSoi(b, this.#pos);
        if (soi < 0) {
          // Keep a trailing FF: it may be the first half of the next SOI.
          const keepFrom = len > 0 && b[len - 1] === 0xff ? len - 1 : len;
          if (keepFrom > this.#start) {
            this.skippedBytes += keepFrom - this.#start;
            this.#start = keepFrom;
          }
          this.#pos = this.#start;
          return;
        }
        this.skippedBytes += soi - this.#start;
        this.#start = soi;
        this.#pos = soi + 2;
        this.#state = State.Marker;
        continue;
      }
      if (this.#state === State.Marker) {
        let p = this.#pos;
        if (p >= len) return;
        if (b[p] !== 0xff) {
          this.corruptFrames++;
          this.#resync(this.#start + 2);
          continue;
        }
        // Fill bytes: any number of FF may precede a marker code.
        while (p < len && b[p] === 0xff) p++;
        if (p >= len) return;
        const m = b[p];
        const markerAt = p - 1;
        if (m === 0xd9) {
          const end = p + 1;
          out.push(b.slice(this.#start, end));
          this.#start = end;
          this.#pos = end;
          this.#state = State.SeekSoi;
          continue;
        }
        if (m === 0xd8) {
          // A new image began before this one ended: the previous one was truncated.
          this.corruptFrames++;
          this.#resync(markerAt);
          continue;
        }
        if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) {
          this.#pos = p + 1;
          continue;
        }
        if (m === 0x00) {
          this.corruptFrames++;
          this.#resync(this.#start + 2);
          continue;
        }
        if (p + 2 >= len) return; // need the 2-byte segment length
        const segLen = (b[p + 1] << 8) | b[p + 2];
        if (segLen < 2) {
          this.corruptFrames++;
          this.#resync(this.#start + 2);
          continue;
        }
        const segEnd = p + 1 + segLen;
        if (segEnd > len) return;
        this.#pos = segEnd;
        if (m === 0xda) this.#state = State.Entropy;
        continue;
      }
      // Entropy-coded data: find FF followed by something other than 00 / RSTn.
      let i = this.#pos;
      for (;;) {
        const ff = b.indexOf(0xff, i);
        if (ff < 0) {
          this.#pos = len;
          return;
        }
        if (ff + 1 >= len) {
          this.#pos = ff;
          return;
        }
        const n = b[ff + 1];
        if (n === 0x00 || (n >= 0xd0 && n <= 0xd7)) {
          i = ff + 2;
          continue;
        }
        if (n === 0xff) {
          i = ff + 1; // fill byte before a marker
          continue;
        }
        this.#pos = ff;
        this.#state = State.Marker;
        break;
      }
    }
  }
}

function findSoi(b: Uint8Array, from: number): number {
  let i = from;
  for (;;) {
    const ff = b.indexOf(0xff, i);
    if (ff < 0 || ff + 1 >= b.length) return -1;
    if (b[ff + 1] === 0xd8) return ff;
    i = ff + 1;
  }
}
