/**
 * A bounded window of requests in flight on one connection, for the back ends whose every publish or append has a
 * reply (Redis Cluster's PUBLISH, JetStream's acknowledged append). Callers may start requests without awaiting
 * the one before: up to `size` are sent back to back and their replies awaited together, instead of one round
 * trip each; a request beyond that waits its turn (backpressure). Requests are sent in call order, so a
 * connection that answers in order (both do) completes them in order. Each caller gets its own request's outcome.
 *
 * @example
 * ```ts
 * import { InFlightWindow } from "./in_flight.ts";
 * declare function send(i: number): Promise<string>;
 * const window = new InFlightWindow(32);
 * const replies = await Promise.all([...Array(100).keys()].map((i) => window.run(() => send(i))));
 * ```
 * @module
 */

/** See the module doc. */
export class InFlightWindow {
  #used = 0;
  /** Requests waiting for room, in call order; `start` sends one at once (synchronously). */
  readonly #queue: { weight: number; start: () => void }[] = [];

  /** `size`: how many requests may be in flight at once (at least 1). */
  constructor(readonly size: number) {
    if (!(size >= 1)) throw new RangeError(`window size ${size}: expected at least 1`);
  }

  /** Requests in flight now. */
  get inFlight(): number {
    return this.#used;
  }

  /** Requests waiting for room now. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Sends `send()` when there is room, after every request started before it; resolves or rejects as it does.
   * `exclusive`: the request takes the whole window (it waits for every earlier one to complete, and later ones
   * wait for it), for a request that is not one write and so could otherwise be overtaken.
   */
  run<T>(send: () => Promise<T>, exclusive = false): Promise<T> {
    const weight = exclusive ? this.size : 1;
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.#used += weight;
        let p: Promise<T>;
        try {
          p = send();
        } catch (err) {
          p = Promise.reject(err);
        }
        p.then(resolve, reject).finally(() => {
          this.#used -= weight;
          this.#next();
        });
      };
      // Started here and now when there is room and nobody is ahead: the request goes out in call order.
      if (this.#queue.length === 0 && this.#used + weight <= this.size) start();
      else this.#queue.push({ weight, start });
    });
  }

  /** Starts the waiting requests that now fit, in order, synchronously (so no newcomer slips in between). */
  #next(): void {
    while (this.#queue.length > 0 && this.#used + this.#queue[0].weight <= this.size) {
      this.#queue.shift()!.start();
    }
  }
}
