/**
 * The `.json` written beside each segment's `.mp4`: MSight's VideoData keys in MSight's order (with `video` null),
 * then ours (codec, size, rate, frame count, duration, start/end and where the start came from, byte size and SHA-256
 * of the `.mp4`). The media fields are read from the `.mp4` itself (mp4_probe.ts), for MSight's segments as for ours.
 *
 * Frame ids are 64-bit Snowflakes above 2^53. They are written as JSON **numbers with every digit** (as Python's
 * `json.dump` writes MSight's ints), not as strings, so MSight's readers get the same types. `JSON.stringify`
 * cannot do that for `bigint`, so the text is built by {@linkcode toJsonText}. Readers in JavaScript must parse it
 * with a bigint-aware parser (or read `frame_ids` as text); `JSON.parse` would round them.
 *
 * @example
 * ```ts
 * import { segmentMetadataJson, sha256Hex } from "./metadata.ts";
 * declare const seg: import("../bus/message.ts").VideoData;
 * const text = segmentMetadataJson(seg, { byteSize: seg.video.byteLength, sha256: sha256Hex(seg.video) });
 * ```
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { isoMicros } from "../bus/describe.ts";
import type { VideoData } from "../bus/message.ts";
import { type Mp4Facts, probeMp4 } from "../mux/mp4_probe.ts";
import type { Logger } from "../runtime/log.ts";
import { errorMessage } from "../runtime/errors.ts";
import { firstFrameTime } from "./naming.ts";

/** Facts about the `.mp4` as written, which the `.json` records. */
export interface VideoFacts {
  byteSize: number;
  /** Lower-case hex SHA-256 of the `.mp4` bytes. */
  sha256: string;
  /** What the MP4 itself says ({@linkcode mediaFacts}); null when it could not be read (the fields are then null). */
  media?: Mp4Facts | null;
}

/**
 * Reads a segment's MP4 for the `.json`'s media fields; a file Mediabunny cannot read is logged and gives null
 * (the segment is still stored: the bytes are what the aggregator sent).
 *
 * @example
 * ```ts
 * import { mediaFacts } from "./metadata.ts";
 * declare const seg: import("../bus/message.ts").VideoData;
 * const media = await mediaFacts(seg); // { codec: "h264", width: 1280, ... } or null
 * ```
 */
export async function mediaFacts(seg: VideoData, log?: Logger): Promise<Mp4Facts | null> {
  try {
    return await probeMp4(seg.video);
  } catch (err) {
    log?.warn(
      `the MP4 of segment ${seg.frameId} could not be read (${errorMessage(err)}); its media fields are null`,
    );
    return null;
  }
}

/**
 * Lower-case hex SHA-256 of some bytes.
 *
 * @example
 * ```ts
 * import { sha256Hex } from "./metadata.ts";
 * sha256Hex(new Uint8Array()); // "e3b0c442...b855"
 * ```
 */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * JSON text of any value, like `JSON.stringify(value, null, indent)` except that a `bigint` is written as a number
 * with all its digits, a `Map` as an object, a `Uint8Array` as base64 text (there is no JSON bytes type), and
 * `undefined`/functions/symbols as `null`.
 *
 * @example
 * ```ts
 * import { toJsonText } from "./metadata.ts";
 * toJsonText({ id: 7421057263124512769n }); // '{"id":7421057263124512769}'
 * ```
 */
export function toJsonText(value: unknown, indent = 0): string {
  return write(value, indent, "", new Set());
}

function write(v: unknown, indent: number, pad: string, seen: Set<object>): string {
  switch (typeof v) {
    case "bigint":
      return v.toString();
    case "number":
      return Number.isFinite(v) ? JSON.stringify(v) : "null";
    case "string":
    case "boolean":
      return JSON.stringify(v);
    case "object":
      break;
    default:
      return "null";
  }
  if (v === null) return "null";
  if (v instanceof Uint8Array) {
    return JSON.stringify(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64"));
  }
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  if (seen.has(v)) throw new TypeError("cannot write a cyclic value as JSON");
  seen.add(v);
  const inner = pad + " ".repeat(indent);
  const nl = indent > 0 ? "\n" : "";
  const sep = indent > 0 ? ": " : ":";
  let out: string;
  if (Array.isArray(v)) {
    const items = v.map((x) => inner + write(x, indent, inner, seen));
    out = items.length === 0 ? "[]" : `[${nl}${items.join("," + nl)}${nl}${pad}]`;
  } else {
    const entries: [string, unknown][] = v instanceof Map
      ? [...v.entries()].map(([k, x]) => [String(k), x])
      : Object.entries(v);
    const items = entries.map(([k, x]) => inner + JSON.stringify(k) + sep + write(x, indent, inner, seen));
    out = items.length === 0 ? "{}" : `{${nl}${items.join("," + nl)}${nl}${pad}}`;
  }
  seen.delete(v);
  return out;
}

/**
 * The ordered fields of a segment's `.json`. `video` is always null (the bytes are in the `.mp4`). `codec`, `width`,
 * `height`, `fps` and `duration` are what the MP4 says (`facts.media`); `start` is the first frame's time by
 * {@linkcode firstFrameTime}, with `start_source` naming where it came from; `end` is the last capture time.
 * `flush_reason`, `encoder` and `overlap_frames` come only from our aggregator's `info`.
 *
 * @example
 * ```ts
 * import { segmentMetadata, toJsonText } from "./metadata.ts";
 * declare const seg: import("../bus/message.ts").VideoData;
 * toJsonText(segmentMetadata(seg, { byteSize: 10, sha256: "ab", media: null }), 2);
 * ```
 */
export function segmentMetadata(seg: VideoData, facts: VideoFacts): Record<string, unknown> {
  const info = seg.info;
  const media = facts.media ?? null;
  const ts = seg.captureTimestamps;
  const start = firstFrameTime(seg);
  const lastTs = ts.length > 0 ? ts[ts.length - 1] : start.epochS;
  const out: Record<string, unknown> = {
    data_type: seg.dataType,
    sensor_name: seg.sensorName,
    capture_timestamp: seg.captureTimestamp,
    creation_timestamp: seg.creationTimestamp,
    frame_id: seg.frameId,
    device_name: seg.deviceName,
    video: null,
    detection_results: seg.detectionResults ?? null,
    frame_ids: seg.frameIds,
    capture_timestamps: seg.captureTimestamps,
    codec: media?.codec ?? null,
    width: media?.width ?? null,
    height: media?.height ?? null,
    fps: media?.fps ?? null,
    frame_count: media?.frames ?? info?.frameCount ?? seg.frameIds.length,
    duration: media?.duration ?? null,
    start: Number.isFinite(start.epochS) ? isoMicros(start.epochS) : null,
    start_source: start.source,
    end: Number.isFinite(lastTs) ? isoMicros(lastTs) : null,
    byte_size: facts.byteSize,
    sha256: facts.sha256,
  };
  if (info) {
    out.flush_reason = info.flushReason;
    out.encoder = info.encoder;
    out.overlap_frames = info.overlapFrames;
  }
  return out;
}

/**
 * The whole `.json` text of a segment (2-space indent, trailing newline), bigint ids with every digit.
 *
 * @example
 * ```ts
 * import { segmentMetadataJson, sha256Hex } from "./metadata.ts";
 * declare const seg: import("../bus/message.ts").VideoData;
 * const json = segmentMetadataJson(seg, { byteSize: seg.video.byteLength, sha256: sha256Hex(seg.video) });
 * ```
 */
export function segmentMetadataJson(seg: VideoData, facts: VideoFacts): string {
  return toJsonText(segmentMetadata(seg, facts), 2) + "\n";
}

/**
 * Reads `frame_id` from a segment `.json` as a bigint, without rounding (`JSON.parse` would); null if absent.
 *
 * @example
 * ```ts
 * import { readFrameId } from "./metadata.ts";
 * readFrameId('{"frame_id": 7421057266765168641}'); // 7421057266765168641n
 * ```
 */
export function readFrameId(jsonText: string): bigint | null {
  const m = /"frame_id"\s*:\s*(\d+)/.exec(jsonText);
  return m ? BigInt(m[1]) : null;
}
