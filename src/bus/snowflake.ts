/**
 * Snowflake ids as MSight makes them: `(unix_ms << 22) | (worker << 12) | sequence`. Unlike MSight, which builds a
 * new generator per frame (so ids collide within a millisecond), one generator per process hands out strictly
 * increasing ids: up to 4096 per millisecond, borrowing from the next millisecond beyond that, and never going
 * back when the wall clock does.
 *
 * @example
 * ```ts
 * import { Snowflake } from "./snowflake.ts";
 * const ids = new Snowflake(7);
 * const a = ids.next(), b = ids.next();
 * console.log(b > a, Snowflake.timestampMs(a) <= Date.now()); // true true
 * ```
 * @module
 */

const WORKER_BITS = 10n;
const SEQUENCE_BITS = 12n;
const MAX_SEQUENCE = (1n << SEQUENCE_BITS) - 1n;
const MAX_WORKER = (1 << Number(WORKER_BITS)) - 1;

/** A per-process generator of unique, increasing 64-bit ids. */
export class Snowflake {
  #worker: bigint;
  #lastMs = -1;
  #sequence = 0n;

  /** `worker` (0-1023) separates processes; {@linkcode Snowflake.workerFor} derives one from a node name. */
  constructor(worker: number, readonly now: () => number = Date.now) {
    if (!Number.isInteger(worker) || worker < 0 || worker > MAX_WORKER) {
      throw new RangeError(`worker id ${worker} is out of range 0-${MAX_WORKER}`);
    }
    this.#worker = BigInt(worker);
  }

  /** A worker id from a string (node name and pid), so two nodes on one Redis rarely share one. */
  static workerFor(key: string): number {
    let h = 2166136261;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
    return h % (MAX_WORKER + 1);
  }

  /** The epoch milliseconds encoded in an id. */
  static timestampMs(id: bigint): number {
    return Number(id >> (WORKER_BITS + SEQUENCE_BITS));
  }

  /** The next id. */
  next(): bigint {
    let ms = Math.floor(this.now());
    if (ms <= this.#lastMs) {
      // Same millisecond, or the clock went back: stay on the last millisecond and count up.
      ms = this.#lastMs;
      this.#sequence++;
      if (this.#sequence > MAX_SEQUENCE) {
        ms = this.#lastMs + 1;
        this.#sequence = 0n;
      }
    } else {
      this.#sequence = 0n;
    }
    this.#lastMs = ms;
    return (BigInt(ms) << (WORKER_BITS + SEQUENCE_BITS)) | (this.#worker << SEQUENCE_BITS) | this.#sequence;
  }
}
