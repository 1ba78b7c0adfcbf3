/**
 * The `rtsp` node's own flags (the common ones are added by `run_node.ts`), shared by the node, the launcher
 * and the reference YAML test.
 * @module
 */

import { validateRtspUrl } from "../capture/ffmpeg_args.ts";
import { PUBLISH_TOPIC, SENSOR_NAME } from "./common_flags.ts";

/** The RTSP node's own flags (the common ones are added by the runtime). */
export const RTSP_FLAGS = {
  ...PUBLISH_TOPIC,
  ...SENSOR_NAME,
  url: {
    long: "url",
    short: "u",
    type: "string",
    required: true,
    help: "camera URL, rtsp:// or rtsps:// (credentials are masked in logs)",
  },
  gpu: {
    long: "gpu",
    short: "g",
    type: "int",
    default: -1,
    min: -1,
    help:
      "CUDA device for decoding; -1 decodes on the CPU (falls back to the CPU, with one warning, when CUDA cannot start)",
  },
  rtspTransport: {
    long: "rtsp-transport",
    type: "string",
    choices: ["tcp", "udp"] as const,
    default: "tcp",
    help: "RTSP transport, kept on every reconnect",
  },
  resizeRatio: {
    long: "resize-ratio",
    short: "r",
    type: "number",
    default: 1,
    min: 0,
    minExclusive: true,
    max: 4,
    help: "scale frames by this factor (in ffmpeg)",
  },
  // No default value: unset, a standalone node publishes every frame (as MSight), and `deno task up` sets the --fps
  // of the aggregators reading the topic (src/launcher/pipeline_config.ts); an explicit value wins over both.
  maxFps: {
    long: "max-fps",
    type: "number",
    min: 0,
    help:
      "publish at most this many frames per second, dropped in ffmpeg before JPEG encoding, so a 25 fps camera " +
      "feeding an aggregator at --fps 10 costs ~40% less (0 or unset: every frame, as MSight; under `deno task up` " +
      "unset means the --fps of the aggregators reading the topic)",
  },
  decoderThreads: {
    long: "decoder-threads",
    type: "int",
    default: 1,
    min: 0,
    max: 64,
    help:
      "threads ffmpeg decodes the camera with (0: one per core, ffmpeg's default); 1 costs the least memory and CPU " +
      "with several cameras, raise it only for a single camera too big for one core (e.g. 4K H.265)",
  },
  imageEncoding: {
    long: "image-encoding",
    type: "string",
    choices: ["jpeg", "raw"] as const,
    default: "jpeg",
    help: "jpeg publishes JPEG (is_encoded true); raw publishes BGR pixels, H×W×3 (is_encoded false)",
  },
  jpegQuality: {
    long: "jpeg-quality",
    type: "int",
    default: 50,
    min: 1,
    max: 100,
    help: "JPEG quality, as OpenCV's (MSight uses 50)",
  },
  stallTimeout: {
    long: "stall-timeout",
    type: "number",
    default: 10,
    min: 0,
    minExclusive: true,
    metavar: "SECONDS",
    help: "restart ffmpeg when no frame arrived for this long",
  },
  openTimeout: {
    long: "open-timeout",
    type: "number",
    default: 5,
    min: 0,
    minExclusive: true,
    metavar: "SECONDS",
    help: "socket open/read timeout given to ffmpeg",
  },
  frameLogEvery: {
    long: "frame-log-every",
    type: "int",
    default: 1,
    min: 0,
    help: "print MSight's 'Got image from ...' INFO line every N published frames (0: never)",
  },
  frameStreamMaxAge: {
    long: "frame-stream-max-age",
    type: "number",
    default: 30,
    min: 0,
    metavar: "SECONDS",
    help:
      "also put each frame on the topic's durable Redis Stream, kept this long, so our aggregator loses no frame " +
      "when it is killed (MSight's nodes still get pub/sub); enough for the longest segment plus a restart. " +
      "0: pub/sub only, as MSight",
  },
  frameStreamMaxBytes: {
    long: "frame-stream-max-bytes",
    type: "int",
    default: 128 * 2 ** 20,
    min: 1,
    metavar: "BYTES",
    help:
      "trim the topic's frame stream to about this many bytes (the whole stream: with several cameras on one " +
      "topic, give each node the total)",
  },
  ffmpeg: { long: "ffmpeg", type: "string", default: "ffmpeg", help: "ffmpeg binary" },
} as const;

/** Checks of the RTSP node's flags beyond their types (the launcher runs them too, before anything starts). */
export function checkRtspFlags(f: { url: string }): void {
  validateRtspUrl(f.url);
}
