/**
 * A seeded random source for tests, so a failing random draw (a split, a jitter) can be replayed.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./random.ts";
 * const random = seededRandom(7);
 * random(); // the same sequence on every run
 * ```
 * @module
 */

/** A linear congruential generator: numbers in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
