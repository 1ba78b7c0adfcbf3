/**
 * The RTSP source node: pulls a camera stream with an ffmpeg subprocess and publishes each frame as MSight
 * ImageData (JPEG by default, or raw BGR) on `--publish-topic`. Same command as MSight's tutorial:
 *
 * ```sh
 * deno task rtsp -n rtsp_node -pt rtsp_topic --sensor-name rtsp_sensor -u rtsp://localhost:8554/live.stream -g 0 --rtsp-transport tcp
 * ```
 *
 * Several cameras in one process, each its own node (name, sensor, topic, ffmpeg, `/metrics` port), sharing the
 * ~70 MiB of the Deno runtime (`src/node/node_group.ts`):
 *
 * ```sh
 * deno task rtsp -n cam1 -pt frames --sensor-name cam1 -u rtsp://10.0.0.11/live --next -n cam2 -pt frames --sensor-name cam2 -u rtsp://10.0.0.12/live
 * ```
 *
 * The loop itself is {@linkcode FramePublisher} (`src/capture/frame_publisher.ts`).
 * @module
 */

import { IMAGE_DATA_TYPE } from "../src/bus/message.ts";
import { FramePublisher } from "../src/capture/frame_publisher.ts";
import { RedisBackend } from "../src/bus/redis_backend/mod.ts";
import { runAnyBusNode } from "../src/node/run_node.ts";
import { checkRtspFlags, RTSP_FLAGS } from "../src/node/rtsp_flags.ts";

if (import.meta.main) {
  await runAnyBusNode({
    command: "rtsp",
    type: "RTSPSourceNode",
    description:
      "Pull an RTSP camera stream with ffmpeg and publish its frames as MSight ImageData. Several " +
      "cameras can share one process: separate their flags with --next (each is its own node).",
    groupable: true,
    flags: RTSP_FLAGS,
    publishDataType: IMAGE_DATA_TYPE,
    validate: checkRtspFlags,
    async run(ctx) {
      const f = ctx.flags;
      // The durable frame stream is Redis Streams beside PUBLISH: on a standalone Redis only.
      const redis = ctx.bus instanceof RedisBackend ? ctx.bus.redis : undefined;
      if (!redis && f.frameStreamMaxAge > 0) {
        ctx.log.info(`frames go on plain pub/sub only: the durable frame stream needs a standalone Redis`);
      }
      const publisher = new FramePublisher({
        bus: ctx.bus,
        redis,
        log: ctx.log,
        metrics: ctx.metrics,
        ids: ctx.ids,
        device: ctx.device,
        topic: f.publishTopic,
        sensorName: f.sensorName,
        gap: f.gap,
        frameLogEvery: f.frameLogEvery,
        frameStream: f.frameStreamMaxAge > 0
          ? { maxAgeS: f.frameStreamMaxAge, maxBytes: f.frameStreamMaxBytes }
          : undefined,
        capture: {
          url: f.url,
          transport: f.rtspTransport,
          gpu: f.gpu,
          resizeRatio: f.resizeRatio,
          maxFps: f.maxFps,
          decoderThreads: f.decoderThreads,
          format: f.imageEncoding === "raw" ? "bgr24" : "jpeg",
          jpegQuality: f.jpegQuality,
          stallTimeoutS: f.stallTimeout,
          timeoutS: f.openTimeout,
          ffmpegPath: f.ffmpeg,
        },
      });
      ctx.setReadiness(() => publisher.readiness());
      await publisher.run(ctx.signal);
    },
  });
}
