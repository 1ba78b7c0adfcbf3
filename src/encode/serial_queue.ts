/**
 * Runs an encoder's steps one after another (configure, encode, flush), so a subprocess or worker sees them in
 * call order. A step that throws hands its error to `onError` and later steps still run, unless the owner is closed
 * by then (they are skipped).
 *
 * @example
 * ```ts
 * import { SerialQueue } from "./serial_queue.ts";
 * let closed = false;
 * const q = new SerialQueue(() => closed, (e) => console.error(e.message));
 * await q.enqueue(async () => {});
 * ```
 * @module
 */

/** A chain of steps; see the module doc. */
export class SerialQueue {
  #tail: Promise<void> = Promise.resolve();

  constructor(readonly isClosed: () => boolean, readonly onError: (e: Error) => void) {}

  /** Queues `step`; resolves once it ran (or was skipped), never rejects. */
  enqueue(step: () => Promise<void> | void): Promise<void> {
    const run = this.#tail.then(async () => {
      if (this.isClosed()) return;
      try {
        await step();
      } catch (e) {
        this.onError(e instanceof Error ? e : new Error(String(e)));
      }
    });
    this.#tail = run;
    return run;
  }
}
