/**
 * Segments a run has opened and not yet published, noted in Redis (`MSIGHT:AGGREGATOR:<name>:IN_PROGRESS`, one
 * field per segment). A segment in progress lives only in this process, so a run killed outright loses it; the
 * next run finds the notes, reports each lost segment, and starts clean. Best effort: a note that cannot be
 * written (Redis down) is skipped, and a Redis restart forgets them.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "../bus/redis.ts";
 * import { InProgressMarks } from "./in_progress.ts";
 * declare const bus: RedisBus;
 * const marks = new InProgressMarks(bus, "image-aggregator");
 * for (const lost of await marks.takeLeftovers()) console.log(lost.sensor, lost.openedAt);
 * marks.opened("cam\u00000", "cam");
 * marks.done("cam\u00000");
 * ```
 * @module
 */

import type { RedisBus } from "../bus/redis.ts";
import { isRedisPermissionError } from "../runtime/errors.ts";

/** A segment the previous run opened and never published. */
export interface LostSegment {
  sensor: string;
  /** When it was opened, epoch seconds. */
  openedAt: number;
}

/** The Redis hash of an aggregator's open segments. */
export function inProgressKey(name: string): string {
  return `MSIGHT:AGGREGATOR:${name}:IN_PROGRESS`;
}

/** One aggregator's notes; see the module doc. */
export class InProgressMarks {
  readonly key: string;

  /** `name`: the aggregator's `--name`, so two aggregators on one Redis keep apart. */
  constructor(readonly bus: RedisBus, name: string) {
    this.key = inProgressKey(name);
  }

  /** The previous run's notes (its lost segments), removed from Redis. */
  async takeLeftovers(): Promise<LostSegment[]> {
    // Best effort (see the module doc): with Redis unreachable there is nothing to report.
    const notes = await this.bus.readHash(this.key).catch((err) => {
      if (isRedisPermissionError(err)) throw err; // the node's ACL lacks its own key: stop with one line
      return {} as Record<string, string>;
    });
    await this.bus.deleteKey(this.key).catch(() => {/* best effort, as above */});
    return Object.values(notes).flatMap((v) => {
      try {
        const n = JSON.parse(v) as { sensor?: unknown; openedAt?: unknown };
        return typeof n.sensor === "string" && typeof n.openedAt === "number"
          ? [{ sensor: n.sensor, openedAt: n.openedAt }]
          : [];
      } catch {
        return []; // not a note of ours: nothing to report
      }
    });
  }

  /** Notes that segment `field` of `sensor` is open (now). */
  opened(field: string, sensor: string): void {
    if (!this.bus.ready) return;
    this.bus.setField(this.key, field, JSON.stringify({ sensor, openedAt: Date.now() / 1000 })).catch(
      () => {/* best effort: the segment is simply not reported if this run dies */},
    );
  }

  /** Removes the note of segment `field` (published or dropped: either way, reported). */
  done(field: string): void {
    if (!this.bus.ready) return;
    this.bus.deleteField(this.key, field).catch(
      () => {/* best effort: the next run may report it as lost */},
    );
  }
}
