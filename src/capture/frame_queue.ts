/**
 * A bounded single-consumer async queue for live frames: when the consumer falls behind, the oldest frames are
 * dropped (and counted) rather than stopping to read ffmpeg's pipe, which would back up into the camera connection
 * and look like a stall.
 *
 * @example
 * ```ts
 * import { DropOldestQueue } from "./frame_queue.ts";
 * const q = new DropOldestQueue<number>(8);
 * q.push(1);
 * q.close();
 * for await (const n of q) console.log(n); // 1
 * ```
 * @module
 */

/**
 * Producer pushes, one consumer iterates; `close()` ends the iteration after the queued items, `fail(err)` makes it
 * throw once they are consumed.
 *
 * @example
 * ```ts
 * const q = new DropOldestQueue<string>(2);
 * q.push("a"); q.push("b"); q.push("c"); // "a" dropped
 * q.dropped; // 1
 * ```
 */
export class DropOldestQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #capacity: number;
  #waiter: ((r: IteratorResult<T>) => void) | undefined;
  #failWaiter: ((err: unknown) => void) | undefined;
  #closed = false;
  #error: unknown = undefined;
  /** Items discarded because the queue was full. */
  dropped = 0;

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  /** Items waiting. */
  get length(): number {
    return this.#items.length;
  }

  /**
   * Enqueues `item` (ignored after close), dropping the oldest when full.
   *
   * @example
   * ```ts
   * declare const q: DropOldestQueue<Uint8Array>, frame: Uint8Array;
   * q.push(frame);
   * ```
   */
  push(item: T): void {
    if (this.#closed) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = this.#failWaiter = undefined;
      w({ value: item, done: false });
      return;
    }
    if (this.#items.length >= this.#capacity) {
      this.#items.shift();
      this.dropped++;
    }
    this.#items.push(item);
  }

  /**
   * Ends the iteration once the queued items are consumed (at once with `discard`).
   *
   * @example
   * ```ts
   * declare const q: DropOldestQueue<Uint8Array>;
   * q.close({ discard: true });
   * ```
   */
  close(opts: { discard?: boolean } = {}): void {
    if (opts.discard) this.#items = [];
    if (this.#closed) return;
    this.#closed = true;
    if (this.#waiter) {
      const w = this.#waiter;
      const f = this.#failWaiter;
      this.#waiter = this.#failWaiter = undefined;
      if (this.#error !== undefined && f) f(this.#error);
      else w({ value: undefined, done: true });
    }
  }

  /**
   * Closes the queue so that the consumer gets `err` after the queued items.
   *
   * @example
   * ```ts
   * declare const q: DropOldestQueue<Uint8Array>;
   * q.fail(new Error("ffmpeg vanished"));
   * ```
   */
  fail(err: unknown): void {
    if (this.#closed) return;
    this.#error = err ?? new Error("queue failed");
    this.close();
  }

  /**
   * The next item, or `undefined` once closed and drained (throws the error given to `fail`).
   *
   * @example
   * ```ts
   * declare const q: DropOldestQueue<Uint8Array>;
   * const item = await q.next();
   * ```
   */
  async next(): Promise<T | undefined> {
    const r = await this.#next();
    return r.done ? undefined : r.value;
  }

  #next(): Promise<IteratorResult<T>> {
    if (this.#items.length > 0) return Promise.resolve({ value: this.#items.shift() as T, done: false });
    if (this.#closed) {
      if (this.#error !== undefined) {
        const err = this.#error;
        this.#error = undefined;
        return Promise.reject(err);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    if (this.#waiter) return Promise.reject(new Error("DropOldestQueue has a single consumer"));
    return new Promise((resolve, reject) => {
      this.#waiter = resolve;
      this.#failWaiter = reject;
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => this.#next(),
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }
}
