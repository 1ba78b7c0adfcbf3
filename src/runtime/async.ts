/**
 * Waiting: one abortable {@linkcode delay}, and one {@linkcode Backoff} (exponential, with jitter) for every retry
 * loop (camera reconnects, S3 uploads, restarts of a pipeline's nodes).
 *
 * @example
 * ```ts
 * import { Backoff, delay } from "./async.ts";
 * const backoff = new Backoff({ initial: 0.5, max: 30 });
 * await delay(backoff.next() * 1000, AbortSignal.timeout(60_000));
 * ```
 * @module
 */

/**
 * Resolves after `ms`, or at once when `signal` aborts (never rejects: the caller looks at `signal.aborted`). The
 * timer and the abort listener are both removed when it resolves, so nothing outlives the wait.
 *
 * @example
 * ```ts
 * import { delay } from "./async.ts";
 * const stop = new AbortController();
 * await delay(500, stop.signal);
 * if (stop.signal.aborted) console.log("stopping");
 * ```
 */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Tuning of {@linkcode Backoff}; delays are in the caller's unit (seconds or milliseconds). */
export interface BackoffOptions {
  /** First delay. */
  initial: number;
  /** Largest delay (jitter never goes above it). */
  max: number;
  /** Growth per failure (2). */
  factor?: number;
  /** Relative spread of each delay, 0..1 (0.2 = ±20 %), so many clients behind one fault do not retry in step. */
  jitter?: number;
  /** Source of randomness in [0, 1) (Math.random); injectable for tests. */
  random?: () => number;
}

/**
 * Delays for successive failed attempts: initial, initial×factor, … capped at max, each spread by ±jitter.
 *
 * @example
 * ```ts
 * import { Backoff } from "./async.ts";
 * const b = new Backoff({ initial: 0.5, max: 30, jitter: 0 });
 * [b.next(), b.next(), b.next()]; // [0.5, 1, 2]
 * b.reset(); // once the connection has proved healthy
 * ```
 */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #factor: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #failures = 0;

  constructor(opts: BackoffOptions) {
    this.#initial = opts.initial;
    this.#max = opts.max;
    this.#factor = opts.factor ?? 2;
    this.#jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.2));
    this.#random = opts.random ?? Math.random;
  }

  /** Failures since the last reset. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * The delay before the next attempt; each call counts one more failure.
   *
   * @example
   * ```ts
   * import { Backoff, delay } from "./async.ts";
   * const backoff = new Backoff({ initial: 1000, max: 60_000 });
   * await delay(backoff.next());
   * ```
   */
  next(): number {
    return this.#spread(Math.min(this.#max, this.#initial * this.#factor ** this.#failures++));
  }

  /**
   * The largest delay, jittered; counts a failure. For faults that will not clear soon (a misconfiguration).
   *
   * @example
   * ```ts
   * import { Backoff } from "./async.ts";
   * new Backoff({ initial: 1, max: 60 }).atCap(); // 48..60
   * ```
   */
  atCap(): number {
    this.#failures++;
    return this.#spread(this.#max);
  }

  /**
   * Back to the first delay.
   *
   * @example
   * ```ts
   * import { Backoff } from "./async.ts";
   * const b = new Backoff({ initial: 1, max: 30 });
   * b.reset();
   * ```
   */
  reset(): void {
    this.#failures = 0;
  }

  #spread(base: number): number {
    return Math.min(this.#max, base * (1 + this.#jitter * (2 * this.#random() - 1)));
  }
}
