/**
 * The two message types of MSight's bus, as TypeScript values. `frame_id`s are Snowflake ids above 2^53, so they
 * are `bigint` everywhere and never pass through `number`. {@linkcode encodeMessage}/{@linkcode decodeMessage} in
 * `wire.ts` turn these into MSight's exact MessagePack bytes.
 *
 * @example
 * ```ts
 * import { IMAGE_DATA_TYPE, type ImageData } from "./message.ts";
 * const msg: ImageData = {
 *   dataType: IMAGE_DATA_TYPE, sensorName: "cam", captureTimestamp: 1769272125.6, creationTimestamp: 1769272125.7,
 *   frameId: 7421057263124512769n, deviceName: "edge-1", image: new Uint8Array(), isEncoded: true,
 *   detectionResults: null, size: [960, 1280, 3],
 * };
 * ```
 * @module
 */

/** `data_type` of MSight's ImageData. */
export const IMAGE_DATA_TYPE = "msight_core.data.image.ImageData";
/** `data_type` of MSight's VideoData. */
export const VIDEO_DATA_TYPE = "msight_core.data.video.VideoData";

/** One camera frame: a JPEG (`isEncoded`) or raw BGR pixels, H×W×C row-major. */
export interface ImageData {
  dataType: typeof IMAGE_DATA_TYPE;
  sensorName: string;
  /** Epoch seconds at which the frame was captured. */
  captureTimestamp: number;
  /** Epoch seconds at which this message was made. */
  creationTimestamp: number;
  frameId: bigint;
  deviceName: string;
  image: Uint8Array;
  isEncoded: boolean;
  /** `null`, or a nested map from a detector; passed through untouched. */
  detectionResults: unknown;
  /** `[height, width, channels]`. */
  size: [number, number, number];
}

/** What our aggregator knows of a segment, sent after MSight's keys (MSight readers ignore them). */
export interface SegmentInfo {
  /** Codec of the samples: `h264` or `hevc`. */
  codec: string;
  width: number;
  height: number;
  /** Target frame rate of the segment (`--fps`). */
  fps: number;
  frameCount: number;
  /** Seconds from the first sample's start to the last one's end. */
  durationS: number;
  /** ISO 8601 UTC of the first frame's capture. */
  start: string;
  /** ISO 8601 UTC of the last frame's capture. */
  end: string;
  /** Encoder backend and codec that ran, e.g. `ffmpeg:libx264`, `wasm:libx264`. */
  encoder: string;
  /** Why the segment was closed: `full`, `idle`, `gap`, `resolution`, `shutdown`. */
  flushReason: string;
  /** How many of the first frames repeat the previous segment's last ones. */
  overlapFrames: number;
}

/** One video segment: the whole MP4 file and the frames in it. */
export interface VideoData {
  dataType: typeof VIDEO_DATA_TYPE;
  sensorName: string;
  /** Capture time of the first frame, epoch seconds. */
  captureTimestamp: number;
  creationTimestamp: number;
  frameId: bigint;
  deviceName: string;
  /** The whole MP4 file. */
  video: Uint8Array;
  detectionResults: unknown;
  frameIds: bigint[];
  captureTimestamps: number[];
  /** Present when the segment came from our aggregator. */
  info?: SegmentInfo;
}

/** Any message the bus carries. */
export type BusMessage = ImageData | VideoData;
