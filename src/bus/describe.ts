/**
 * One human line per bus message, for `echo` and logs.
 *
 * @example
 * ```ts
 * import type { BusMessage } from "./message.ts";
 * import { describeMessage } from "./describe.ts";
 * declare const msg: BusMessage;
 * console.log(describeMessage(msg, 82586));
 * // ImageData sensor=test_camera time=2026-01-24T16:28:45.649586Z size=82586 frame_id=7421057263124512769 jpeg 960x1280x3
 * ```
 * @module
 */

import { type BusMessage, IMAGE_DATA_TYPE } from "./message.ts";

/**
 * ISO 8601 UTC of an epoch-seconds instant, to the microsecond (`2026-01-24T16:28:45.649586Z`): the time format of
 * log lines and of a segment's `.json`.
 *
 * @example
 * ```ts
 * import { isoMicros } from "./describe.ts";
 * isoMicros(1769272125.649586); // "2026-01-24T16:28:45.649586Z"
 * ```
 */
export function isoMicros(epochS: number): string {
  const totalUs = Math.round(epochS * 1e6);
  const wholeS = Math.floor(totalUs / 1e6);
  const us = String(totalUs - wholeS * 1e6).padStart(6, "0");
  return new Date(wholeS * 1000).toISOString().replace(/\.\d{3}Z$/, `.${us}Z`);
}

/** `<type> sensor=... time=... size=<bytes> frame_id=...` plus a type-specific tail. */
export function describeMessage(msg: BusMessage, size: number): string {
  const head =
    `${msg.dataType.split(".").pop()} sensor=${msg.sensorName} time=${isoMicros(msg.captureTimestamp)} ` +
    `size=${size} frame_id=${msg.frameId}`;
  if (msg.dataType === IMAGE_DATA_TYPE) {
    return `${head} ${msg.isEncoded ? "jpeg" : "raw"} ${msg.size.join("x")}`;
  }
  const info = msg.info
    ? ` ${msg.info.codec} ${msg.info.width}x${msg.info.height} ${msg.info.durationS.toFixed(2)}s`
    : "";
  return `${head} frames=${msg.frameIds.length}${info}`;
}

/**
 * Formats epoch seconds as Python's `datetime.fromtimestamp(t).isoformat()` does: local time, microseconds, no
 * zone (the format of MSight's per-frame log line).
 */
export function localIsoMicros(epochS: number): string {
  const us = Math.round(epochS * 1e6);
  const d = new Date(Math.floor(us / 1000));
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${
    p(d.getMinutes())
  }:` +
    `${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}${p(us % 1000, 3)}`;
}
