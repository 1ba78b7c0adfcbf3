/**
 * The `aggregator` node's own flags (the common ones are added by `run_node.ts`), shared by the node, the launcher
 * and the reference YAML test.
 * @module
 */

import { ENCODER_CODECS } from "../encode/config.ts";
import { GAP_WITH_SHORT, PROCESSING_SENSOR_NAME, PUBLISH_TOPIC, SUBSCRIBE_TOPIC } from "./common_flags.ts";
import { UsageError } from "../runtime/errors.ts";
import { TRANSPORTS } from "../bus/segment_reader.ts";

/** The aggregator's own flags. */
export const AGGREGATOR_FLAGS = {
  ...SUBSCRIBE_TOPIC,
  ...PUBLISH_TOPIC,
  ...PROCESSING_SENSOR_NAME,
  ...GAP_WITH_SHORT,
  fps: {
    long: "fps",
    type: "number",
    default: 10,
    min: 0,
    minExclusive: true,
    max: 240,
    help:
      "real output frame rate: a source at or below it keeps every frame, a faster one is thinned to it (by capture time)",
  },
  bufferSize: {
    long: "buffer-size",
    type: "int",
    required: true,
    min: 1,
    help: "frames per segment (100 at --fps 10: about 10 s)",
  },
  overlapSize: {
    long: "overlap-size",
    type: "int",
    required: true,
    min: 0,
    help: "last frames of a segment repeated at the start of the next (< --buffer-size)",
  },
  codec: {
    long: "codec",
    type: "string",
    choices: ENCODER_CODECS,
    default: "libx264",
    help:
      "libx264, libx265 (tagged hvc1), h264_nvenc or hevc_nvenc (fall back to libx264/libx265 without a GPU)",
  },
  encoder: {
    long: "encoder",
    type: "string",
    choices: ["auto", "ffmpeg", "wasm"] as const,
    default: "auto",
    help:
      "ffmpeg: the system ffmpeg in a subprocess; wasm: ffmpeg.wasm in process; auto: ffmpeg if this node may run it, else wasm",
  },
  quality: {
    long: "quality",
    type: "number",
    min: 0,
    max: 51,
    help: "CRF (x264/x265) or CQ (NVENC), lower is better (default 23 for H.264, 28 for HEVC)",
  },
  preset: {
    long: "preset",
    type: "string",
    help: "encoder preset (default superfast for x264, veryfast for x265, p4 for NVENC)",
  },
  maxIdle: {
    long: "max-idle",
    type: "number",
    default: 5,
    min: 0,
    minExclusive: true,
    metavar: "SECONDS",
    help: "close a sensor's segment after this long without frames",
  },
  gapThreshold: {
    long: "gap-threshold",
    type: "number",
    default: 3,
    min: 0,
    minExclusive: true,
    metavar: "SECONDS",
    help: "close the segment when capture times jump by more than this (a segment never spans an outage)",
  },
  streamMaxlen: {
    long: "stream-maxlen",
    type: "int",
    default: 100,
    min: 0,
    help: "segments kept in the topic's durable stream for sinks that restart (0: pub/sub only)",
  },
  streamMaxAge: {
    long: "stream-max-age",
    type: "number",
    default: 3600,
    min: 0,
    metavar: "SECONDS",
    help: "drop stream entries older than this (0: no age limit)",
  },
  transport: {
    long: "transport",
    type: "string",
    choices: TRANSPORTS,
    default: "auto",
    help:
      "where frames come from. stream: the topic's durable frame stream (our RTSP node's), as consumer group " +
      "--name, each frame acknowledged once its segment is in the segment stream, so a killed aggregator loses " +
      "none; pubsub: plain pub/sub, as MSight; auto: stream once a source announced one, else pubsub. Sensors " +
      "without a stream (MSight's sources) are always taken from pub/sub",
  },
  ffmpeg: { long: "ffmpeg", type: "string", default: "ffmpeg", help: "ffmpeg binary for the ffmpeg backend" },
} as const;

/** Cross-flag checks of the aggregator (the launcher runs them too, before anything starts). */
export function checkAggregatorFlags(f: { bufferSize: number; overlapSize: number }): void {
  if (f.overlapSize > f.bufferSize) {
    throw new UsageError(
      `--overlap-size ${f.overlapSize} is invalid: expected fewer than --buffer-size ${f.bufferSize} frames, ` +
        "so each segment adds new frames",
    );
  }
  if (f.overlapSize === f.bufferSize) {
    // MSight accepts it: its buffer then never empties, and every new frame publishes a video of the last
    // buffer + 1 frames (one full encode per frame). We refuse rather than re-encode a sliding window.
    throw new UsageError(
      `--overlap-size ${f.overlapSize} equal to --buffer-size is refused: MSight then publishes a video of the ` +
        `last ${f.bufferSize + 1} frames for every new frame (a sliding window); use --overlap-size ${
          f.bufferSize - 1
        } at most`,
    );
  }
}
