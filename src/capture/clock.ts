/**
 * Turns (stream timestamp, wall-clock arrival time) pairs into capture times that are monotonic, never later
 * than the arrival, and free of the jitter that pipes, ffmpeg's queues and the event loop add to arrival
 * times. The method (a slowly rising lower envelope of arrival − pts) and why it re-anchors slowly:
 * docs/design.md, "Capture".
 *
 * @example
 * ```ts
 * import { FrameClock } from "./clock.ts";
 * const clock = new FrameClock();
 * const t0 = clock.stamp(0.0, 1700000000.120); // 1700000000.120
 * const t1 = clock.stamp(0.1, 1700000000.260); // 1700000000.220: 40 ms of jitter removed
 * ```
 * @module
 */

/** Tuning of {@linkcode FrameClock}. */
export interface FrameClockOptions {
  /** How fast (seconds per second of stream) the delay estimate may grow to follow clock drift (0.001). */
  maxDriftPerS?: number;
  /** A lag (arrival − capture time) above this many seconds, sustained for `settleS`, re-anchors the clock (2.0). */
  maxLagS?: number;
  /** Seconds of stream the lag must stay above `maxLagS` before re-anchoring (10). */
  settleS?: number;
}

/**
 * Stream-timestamp-following capture clock; one per capture, {@linkcode FrameClock.reset} per ffmpeg session.
 *
 * @example
 * ```ts
 * declare const ptsSeconds: number;
 * const clock = new FrameClock({ maxLagS: 0.5 });
 * const captureTime = clock.stamp(ptsSeconds, Date.now() / 1000);
 * ```
 */
export class FrameClock {
  #maxDrift: number;
  #maxLag: number;
  #settle: number;
  #offset: number | undefined;
  #lastPts = 0;
  /** Stream time at which the lag first exceeded maxLag (undefined while under it). */
  #lagSince: number | undefined;
  #lastOut = -Infinity;
  /** Times the clock was re-anchored to an arrival time (not counting the first frame of a session). */
  reanchors = 0;

  constructor(opts: FrameClockOptions = {}) {
    this.#maxDrift = opts.maxDriftPerS ?? 0.001;
    this.#maxLag = opts.maxLagS ?? 2.0;
    this.#settle = opts.settleS ?? 10;
  }

  /**
   * Forgets the stream's timeline (a new ffmpeg session restarts pts), keeping outputs monotonic.
   *
   * @example
   * ```ts
   * declare const clock: FrameClock;
   * clock.reset();
   * ```
   */
  reset(): void {
    this.#offset = undefined;
    this.#lagSince = undefined;
  }

  /**
   * The capture time (epoch seconds) of a frame with stream time `pts` (seconds; NaN if unknown) that arrived at
   * wall-clock `arrival` (epoch seconds).
   *
   * @example
   * ```ts
   * declare const clock: FrameClock;
   * const t = clock.stamp(12.48, Date.now() / 1000);
   * ```
   */
  stamp(pts: number, arrival: number): number {
    let t: number;
    if (!Number.isFinite(pts)) {
      t = arrival;
    } else if (this.#offset === undefined || pts < this.#lastPts) {
      if (this.#offset !== undefined) this.reanchors++;
      this.#anchor(pts, arrival);
      t = arrival;
    } else {
      const observed = arrival - pts;
      const allowed = this.#offset + this.#maxDrift * (pts - this.#lastPts);
      this.#offset = Math.min(observed, allowed);
      this.#lastPts = pts;
      t = pts + this.#offset;
      if (arrival - t > this.#maxLag) {
        this.#lagSince ??= pts;
        if (pts - this.#lagSince >= this.#settle) {
          this.reanchors++;
          this.#anchor(pts, arrival);
          t = arrival;
        }
      } else {
        this.#lagSince = undefined;
      }
    }
    if (t <= this.#lastOut) t = this.#lastOut + 1e-6;
    this.#lastOut = t;
    return t;
  }

  #anchor(pts: number, arrival: number): void {
    this.#offset = arrival - pts;
    this.#lastPts = pts;
    this.#lagSince = undefined;
  }
}
