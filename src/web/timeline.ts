/**
 * The timeline: per sensor, the recorded spans of the last 24 hours, with the gaps between them (an outage of the
 * camera or of the pipeline). Segments closer than `joinS` are one span, so the small gaps between consecutive
 * segments (a frame interval) do not show as outages.
 *
 * @example
 * ```ts
 * import { buildTimeline } from "./timeline.ts";
 * declare const segments: import("./recordings.ts").Segment[];
 * const t = buildTimeline(segments, Date.now() / 1000, { windowS: 86_400, joinS: 2 });
 * ```
 * @module
 */

import type { Segment } from "./recordings.ts";

/** A recorded stretch: its bounds (epoch s) and the segments in it, oldest first. */
export interface Span {
  start: number;
  end: number;
  segments: { id: string; start: number; end: number }[];
}

/** One sensor's row. */
export interface TimelineRow {
  sensor: string;
  spans: Span[];
  /** The holes between consecutive spans, oldest first (the window's edges are not gaps). */
  gaps: { start: number; end: number }[];
}

/** The whole timeline. */
export interface Timeline {
  from: number;
  to: number;
  rows: TimelineRow[];
}

/** Builds the rows for `[now - windowS, now]`; a hole longer than `joinS` seconds is a gap. */
export function buildTimeline(
  segments: readonly Pick<Segment, "id" | "sensor" | "start" | "end">[],
  now: number,
  opts: { windowS?: number; joinS?: number } = {},
): Timeline {
  const windowS = opts.windowS ?? 86_400;
  const joinS = opts.joinS ?? 2;
  const from = now - windowS;
  const bySensor = new Map<string, Pick<Segment, "id" | "sensor" | "start" | "end">[]>();
  for (const s of segments) {
    if (s.end < from || s.start > now) continue;
    const list = bySensor.get(s.sensor) ?? [];
    list.push(s);
    bySensor.set(s.sensor, list);
  }
  const rows: TimelineRow[] = [];
  for (const [sensor, list] of bySensor) {
    list.sort((a, b) => a.start - b.start);
    const spans: Span[] = [];
    for (const s of list) {
      const end = Math.max(s.end, s.start);
      const last = spans[spans.length - 1];
      if (last && s.start - last.end <= joinS) {
        last.end = Math.max(last.end, end);
        last.segments.push({ id: s.id, start: s.start, end });
      } else spans.push({ start: s.start, end, segments: [{ id: s.id, start: s.start, end }] });
    }
    const gaps = spans.slice(1).map((s, i) => ({ start: spans[i].end, end: s.start }));
    rows.push({ sensor, spans, gaps });
  }
  rows.sort((a, b) => a.sensor.localeCompare(b.sensor));
  return { from, to: now, rows };
}
