/**
 * Exponential backoff with jitter for reconnecting to a camera: 0.5 s, 1 s, 2 s ... capped at 30 s, each delay
 * spread by ±20 % so that many nodes behind one failed switch do not reconnect in lockstep.
 *
 * @example
 * ```ts
 * import { Backoff } from "./backoff.ts";
 * const backoff = new Backoff({ initialS: 0.5, maxS: 30 });
 * const delay = backoff.next(); // about 0.5, then about 1, 2, 4 ...
 * backoff.reset(); // after frames flowed for a while
 * ```
 * @module
 */

/** Tuning of {@linkcode Backoff}. */
export interface BackoffOptions {
  /** First delay in seconds (0.5). */
  initialS?: number;
  /** Largest delay in seconds (30). */
  maxS?: number;
  /** Growth factor per failure (2). */
  factor?: number;
  /** Relative spread of each delay, 0..1 (0.2 = ±20 %). */
  jitter?: number;
  /** Source of randomness in [0, 1) (Math.random); injectable for tests. */
  random?: () => number;
}

/**
 * Delays for successive failed attempts.
 *
 * @example
 * ```ts
 * const b = new Backoff({ jitter: 0 });
 * [b.next(), b.next(), b.next()]; // [0.5, 1, 2]
 * ```
 */
export class Backoff {
  #initial: number;
  #max: number;
  #factor: number;
  #jitter: number;
  #random: () => number;
  #failures = 0;

  constructor(opts: BackoffOptions = {}) {
    this.#initial = opts.initialS ?? 0.5;
    this.#max = opts.maxS ?? 30;
    this.#factor = opts.factor ?? 2;
    this.#jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.2));
    this.#random = opts.random ?? Math.random;
  }

  /** Failures since the last reset. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * The delay in seconds before the next attempt; each call counts one more failure.
   *
   * @example
   * ```ts
   * const backoff = new Backoff();
   * const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
   * await sleep(backoff.next() * 1000);
   * ```
   */
  next(): number {
    const base = Math.min(this.#max, this.#initial * this.#factor ** this.#failures);
    this.#failures++;
    const spread = 1 + this.#jitter * (2 * this.#random() - 1);
    return Math.min(this.#max, base * spread);
  }

  /**
   * Back to the first delay (call once the connection has proved healthy).
   *
   * @example
   * ```ts
   * const backoff = new Backoff();
   * backoff.reset();
   * ```
   */
  reset(): void {
    this.#failures = 0;
  }
}
