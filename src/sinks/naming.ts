/**
 * Names of a segment's files and S3 objects, shared by the local dumper and the S3 pusher so both sinks agree.
 *
 * The stem is MSight's `<sensor>_<YYYYMMDD>_<HHMMSS>_<ffffff>` taken from the first frame's capture time (the best one
 * the message carries: {@linkcode firstFrameTime}; MSight stamps a VideoData itself when it packs it). Sensor and
 * device names come off the bus, so they are untrusted: {@linkcode safeName} turns any string into one path
 * component that cannot climb out of a directory and stays distinct from every other name's result.
 *
 * @example
 * ```ts
 * import { s3Keys, segmentStem } from "./naming.ts";
 * segmentStem("cam", 1769272125.649586); // "cam_20260124_162845_649586"
 * s3Keys({ sensorName: "cam", deviceName: "edge-1", captureTimestamp: 1769272125.649586 }, "tutorial").video;
 * // "tutorial/edge-1/cam/2026-01-24/16/cam_20260124_162845_649586.mp4"
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { Snowflake } from "../bus/snowflake.ts";

/** Which clock the file stem is written in: UTC (the default) or the host's local time zone. */
export type TimeZoneMode = "utc" | "local";

/**
 * Longest a sanitised name may be. A file name is at most 255 bytes on common file systems; the stem adds 23
 * characters, extensions and temporary suffixes add about 30, so 160 leaves room.
 */
export const MAX_SAFE_NAME_LENGTH = 160;

/** What an empty name becomes: a lone `%` is never produced by percent-encoding, so it collides with nothing. */
const EMPTY_NAME = "%";

const encoder = new TextEncoder();

/**
 * Turns an untrusted name into one safe path component (file name or S3 key segment).
 *
 * Letters, digits, `-`, `_` and `.` (except as the first character, which rules out `.`, `..` and hidden files)
 * are kept; every other UTF-8 byte, `%` included, becomes `%XX`. Percent-encoding is reversible, so distinct names
 * stay distinct. Results longer than {@linkcode MAX_SAFE_NAME_LENGTH} are cut and given `~` plus 16 hex digits of
 * the SHA-256 of the original name (`~` is never kept by the encoding, so a cut name cannot equal an uncut one).
 *
 * @example
 * ```ts
 * import { safeName } from "./naming.ts";
 * safeName("../../x"); // "%2E.%2F..%2Fx"
 * safeName("cam/1"); // "cam%2F1"
 * ```
 */
export function safeName(name: string): string {
  if (name.length === 0) return EMPTY_NAME;
  let out = "";
  let first = true;
  for (const byte of encoder.encode(name)) {
    const c = String.fromCharCode(byte);
    const keep = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) ||
      (byte >= 0x61 && byte <= 0x7a) ||
      c === "-" || c === "_" || (c === "." && !first);
    out += keep ? c : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
    first = false;
  }
  if (out.length <= MAX_SAFE_NAME_LENGTH) return out;
  const hash = createHash("sha256").update(name, "utf8").digest("hex").slice(0, 16);
  let cut = out.slice(0, MAX_SAFE_NAME_LENGTH - 17);
  // Never leave half an escape: a dangling `%` or `%X` would decode differently.
  const pct = cut.lastIndexOf("%");
  if (pct >= 0 && pct > cut.length - 3) cut = cut.slice(0, pct);
  return `${cut}~${hash}`;
}

/** The calendar parts of an instant, to microseconds. */
interface TimeParts {
  year: string;
  month: string;
  day: string;
  hour: string;
  minute: string;
  second: string;
  micros: string;
}

function timeParts(epochS: number, tz: TimeZoneMode): TimeParts {
  if (!Number.isFinite(epochS)) throw new RangeError(`capture timestamp ${epochS} is not a finite number`);
  // Round once to whole microseconds, as Python's datetime.fromtimestamp does, then split.
  const totalUs = Math.round(epochS * 1e6);
  const wholeS = Math.floor(totalUs / 1e6);
  const us = totalUs - wholeS * 1e6;
  const d = new Date(wholeS * 1000);
  if (Number.isNaN(d.getTime())) throw new RangeError(`capture timestamp ${epochS} is out of range`);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const utc = tz === "utc";
  return {
    year: p(utc ? d.getUTCFullYear() : d.getFullYear(), 4),
    month: p((utc ? d.getUTCMonth() : d.getMonth()) + 1),
    day: p(utc ? d.getUTCDate() : d.getDate()),
    hour: p(utc ? d.getUTCHours() : d.getHours()),
    minute: p(utc ? d.getUTCMinutes() : d.getMinutes()),
    second: p(utc ? d.getUTCSeconds() : d.getSeconds()),
    micros: p(us, 6),
  };
}

/**
 * The file stem of a segment: `<safe sensor>_<YYYYMMDD>_<HHMMSS>_<ffffff>` from the first frame's capture time.
 *
 * @example
 * ```ts
 * import { segmentStem } from "./naming.ts";
 * segmentStem("cam", 1769272125.649586); // "cam_20260124_162845_649586"
 * segmentStem("cam", 1769272125.649586, "local"); // same instant in the host's time zone
 * ```
 */
export function segmentStem(sensorName: string, captureTimestamp: number, tz: TimeZoneMode = "utc"): string {
  const t = timeParts(captureTimestamp, tz);
  return `${safeName(sensorName)}_${t.year}${t.month}${t.day}_${t.hour}${t.minute}${t.second}_${t.micros}`;
}

/** Matches a stem made by {@linkcode segmentStem}, with an optional `_<frame id>` disambiguator. */
export const STEM_PATTERN = /^[A-Za-z0-9_%~-][A-Za-z0-9._%~-]*_\d{8}_\d{6}_\d{6}(?:_\d+)?$/;

/** The fields of a segment that its names depend on. */
export interface NamedSegment {
  sensorName: string;
  deviceName: string;
  captureTimestamp: number;
  captureTimestamps?: number[];
  frameIds?: bigint[];
}

/** Where a segment's first-frame time came from (the `.json`'s `start_source`). */
export type StartSource = "capture_timestamps" | "frame_id" | "capture_timestamp";

/** Snowflake times outside 2000-2200 are not times: ids from some other scheme. */
const PLAUSIBLE_MS = [946_684_800_000, 7_258_118_400_000];

/**
 * The best first-frame time a segment carries, in this order: `capture_timestamps[0]` (ours and MSight's
 * aggregators copy each frame's capture time there); else the millisecond time in the first frame id (MSight's and
 * our ids are Snowflakes with a Unix-epoch millisecond time, `id >> 22`); else the message's own
 * `capture_timestamp`, which MSight's aggregator sets when it packs the video, seconds to minutes after the first
 * frame.
 *
 * @example
 * ```ts
 * import { firstFrameTime } from "./naming.ts";
 * firstFrameTime({ sensorName: "c", deviceName: "d", captureTimestamp: 1800, frameIds: [7421057263124512769n] });
 * // { epochS: 1769308617.234, source: "frame_id" }
 * ```
 */
export function firstFrameTime(seg: NamedSegment): { epochS: number; source: StartSource } {
  const t0 = seg.captureTimestamps?.[0];
  if (typeof t0 === "number" && Number.isFinite(t0) && t0 > 0) {
    return { epochS: t0, source: "capture_timestamps" };
  }
  const id0 = seg.frameIds?.[0];
  if (id0 !== undefined) {
    const ms = Snowflake.timestampMs(id0);
    if (ms >= PLAUSIBLE_MS[0] && ms <= PLAUSIBLE_MS[1]) return { epochS: ms / 1000, source: "frame_id" };
  }
  return { epochS: seg.captureTimestamp, source: "capture_timestamp" };
}

/** The S3 keys of a segment's two objects. */
export interface SegmentKeys {
  /** Key of the `.mp4`. */
  video: string;
  /** Key of the `.json`. */
  metadata: string;
  /** The stem both keys end in. */
  stem: string;
}

/**
 * Normalises a user-given key prefix: surrounding slashes dropped, empty segments removed. Each segment is kept
 * as typed (the operator chose it), except `.`/`..`, which are refused since some S3 tools resolve them.
 *
 * @example
 * ```ts
 * import { normalizePrefix } from "./naming.ts";
 * normalizePrefix("/msight_tutorial/"); // "msight_tutorial"
 * ```
 */
export function normalizePrefix(prefix: string): string {
  const parts = prefix.split("/").filter((p) => p.length > 0);
  for (const p of parts) {
    if (p === "." || p === "..") {
      throw new RangeError(`S3 prefix "${prefix}" must not contain "." or ".." segments`);
    }
  }
  return parts.join("/");
}

/**
 * S3 keys `<prefix>/<device>/<sensor>/<YYYY-MM-DD>/<HH>/<stem>.mp4|.json` (UTC date and hour of the first frame,
 * {@linkcode firstFrameTime});
 * an empty prefix gives keys without a leading slash. The stem is always in UTC here, whatever the dumper uses.
 *
 * @example
 * ```ts
 * import { s3Keys } from "./naming.ts";
 * s3Keys({ sensorName: "cam", deviceName: "edge-1", captureTimestamp: 1769272125.649586 }, "").metadata;
 * // "edge-1/cam/2026-01-24/16/cam_20260124_162845_649586.json"
 * ```
 */
export function s3Keys(seg: NamedSegment, prefix: string): SegmentKeys {
  const start = firstFrameTime(seg).epochS;
  const t = timeParts(start, "utc");
  const stem = segmentStem(seg.sensorName, start, "utc");
  const dir = [
    normalizePrefix(prefix),
    safeName(seg.deviceName),
    safeName(seg.sensorName),
    `${t.year}-${t.month}-${t.day}`,
    t.hour,
  ]
    .filter((p) => p.length > 0).join("/");
  return { video: `${dir}/${stem}.mp4`, metadata: `${dir}/${stem}.json`, stem };
}
