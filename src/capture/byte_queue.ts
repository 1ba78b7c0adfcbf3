/**
 * A FIFO of bytes from which exact-size records are taken: the splitter for raw video frames (`-f rawvideo`), where
 * every frame is width × height × 3 bytes and the pipe's chunking is arbitrary.
 *
 * @example
 * ```ts
 * import { ByteQueue } from "./byte_queue.ts";
 * declare const chunk: Uint8Array;
 * const q = new ByteQueue();
 * q.push(chunk);
 * const frame = q.take(1280 * 960 * 3); // undefined until that many bytes are queued
 * ```
 * @module
 */

/**
 * Bytes in, exact-size copies out, in order; chunks are kept by reference and copied once, when taken.
 *
 * @example
 * ```ts
 * const q = new ByteQueue();
 * q.push(new Uint8Array([1, 2, 3]));
 * q.take(2); // Uint8Array [1, 2]
 * ```
 */
export class ByteQueue {
  #chunks: Uint8Array[] = [];
  /** Bytes of #chunks[0] already taken. */
  #head = 0;
  #size = 0;

  /** Bytes queued. */
  get size(): number {
    return this.#size;
  }

  /**
   * Queues `chunk` (not copied: the caller must not reuse it).
   *
   * @example
   * ```ts
   * declare const q: ByteQueue, chunk: Uint8Array;
   * q.push(chunk);
   * ```
   */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /**
   * Removes and returns the next `n` bytes as a fresh array, or `undefined` (taking nothing) when fewer are queued.
   *
   * @example
   * ```ts
   * declare const q: ByteQueue, w: number, h: number;
   * const frame = q.take(w * h * 3);
   * ```
   */
  take(n: number): Uint8Array | undefined {
    if (n > this.#size) return undefined;
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0];
      const avail = c.length - this.#head;
      const want = Math.min(avail, n - filled);
      out.set(c.subarray(this.#head, this.#head + want), filled);
      filled += want;
      this.#head += want;
      if (this.#head === c.length) {
        this.#chunks.shift();
        this.#head = 0;
      }
    }
    this.#size -= n;
    return out;
  }

  /**
   * Drops everything queued.
   *
   * @example
   * ```ts
   * declare const q: ByteQueue;
   * q.clear();
   * ```
   */
  clear(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#size = 0;
  }
}
