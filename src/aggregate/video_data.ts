/**
 * The VideoData message of a finished segment: MSight's fields (the MP4, its frame ids and capture times) and our
 * {@linkcode SegmentInfo} after them.
 *
 * @example
 * ```ts
 * import type { BuiltSegment } from "./segment_builder.ts";
 * import type { Snowflake } from "../bus/snowflake.ts";
 * import { videoDataOf } from "./video_data.ts";
 * declare const built: BuiltSegment, ids: Snowflake;
 * const msg = videoDataOf(built, { sensor: "cam", fps: 10, reason: "full", overlapFrames: 0, frameId: ids.next(),
 *   device: "edge-1" });
 * ```
 * @module
 */

import { isoMicros } from "../bus/describe.ts";
import { VIDEO_DATA_TYPE } from "../bus/message.ts";
import type { SegmentInfo } from "../bus/message.ts";
import type { OutgoingMessage } from "../bus/wire.ts";
import type { BuiltSegment } from "./segment_builder.ts";
import type { FlushReason } from "./segmenter.ts";

/** A VideoData ready for the wire, its MP4 still in pages. */
export type OutgoingVideoData = Extract<OutgoingMessage, { dataType: typeof VIDEO_DATA_TYPE }> & {
  info: SegmentInfo;
};

/** What the segment itself does not know. */
export interface VideoDataMeta {
  sensor: string;
  /** The segment's target frame rate (`--fps`). */
  fps: number;
  reason: FlushReason;
  /** How many of its first frames repeat the previous segment's last ones. */
  overlapFrames: number;
  frameId: bigint;
  device: string;
  /** Epoch seconds of the message (now). */
  creationTimestamp?: number;
}

/** The VideoData of `seg`, which holds at least one frame. */
export function videoDataOf(seg: BuiltSegment, meta: VideoDataMeta): OutgoingVideoData {
  const first = seg.captureTimestamps[0], last = seg.captureTimestamps.at(-1)!;
  return {
    dataType: VIDEO_DATA_TYPE,
    sensorName: meta.sensor,
    captureTimestamp: first,
    creationTimestamp: meta.creationTimestamp ?? Date.now() / 1000,
    frameId: meta.frameId,
    deviceName: meta.device,
    video: seg.mp4,
    detectionResults: null,
    frameIds: seg.frameIds,
    captureTimestamps: seg.captureTimestamps,
    info: {
      codec: seg.codec,
      width: seg.width,
      height: seg.height,
      fps: meta.fps,
      frameCount: seg.frameIds.length,
      durationS: last - first + 1 / meta.fps,
      start: isoMicros(first),
      end: isoMicros(last),
      encoder: seg.encoder,
      flushReason: meta.reason,
      overlapFrames: meta.overlapFrames,
    },
  };
}
