/**
 * The image-to-video aggregator: takes ImageData frames (JPEG or raw, from our RTSP node or MSight's) off
 * `--subscribe-topic`, groups them per sensor into segments of `--buffer-size` frames at a real `--fps`, encodes
 * them as they arrive (system ffmpeg, ffmpeg.wasm, or NVENC), muxes MP4 in process, and publishes one VideoData per
 * segment on `--publish-topic` (pub/sub, as MSight) and on the topic's durable stream (for our sinks). Same command
 * as MSight's tutorial:
 *
 * ```sh
 * deno task aggregator -n image-aggregator -st rtsp_topic -pt aggregated_video --fps 10 --buffer-size 100 --overlap-size 0
 * ```
 *
 * The loop itself is {@linkcode Aggregator} (`src/aggregate/aggregator.ts`).
 * @module
 */

import { IMAGE_DATA_TYPE, VIDEO_DATA_TYPE } from "../src/bus/message.ts";
import { detectEncoderKind } from "../src/encode/mod.ts";
import type { EncoderCodec, EncoderKind } from "../src/encode/types.ts";
import { Aggregator } from "../src/aggregate/aggregator.ts";
import { RedisBackend } from "../src/bus/redis_backend/mod.ts";
import { runAnyBusNode } from "../src/node/run_node.ts";
import { AGGREGATOR_FLAGS, checkAggregatorFlags } from "../src/node/aggregator_flags.ts";

if (import.meta.main) {
  await runAnyBusNode({
    command: "aggregator",
    type: "ImageToVideoAggregatorNode",
    description: "Aggregate ImageData frames into MP4 segments and publish them as MSight VideoData.",
    flags: AGGREGATOR_FLAGS,
    publishDataType: VIDEO_DATA_TYPE,
    subscribeDataType: IMAGE_DATA_TYPE,
    validate: checkAggregatorFlags,
    async run(ctx) {
      const f = ctx.flags;
      const kind: EncoderKind = f.encoder === "auto" ? await detectEncoderKind(f.ffmpeg) : f.encoder;
      ctx.log.info(
        `encoding ${f.codec} with the ${kind === "ffmpeg" ? "system ffmpeg" : "ffmpeg.wasm"} backend` +
          (f.encoder === "auto" && kind === "wasm" ? " (no permission to run ffmpeg)" : ""),
      );
      // The frame stream and the in-progress marks are Redis features: elsewhere frames come over pub/sub only.
      const redis = ctx.bus instanceof RedisBackend ? ctx.bus.redis : undefined;
      if (!redis && f.transport !== "pubsub") {
        ctx.log.info(`frames come over plain pub/sub: the durable frame stream needs a standalone Redis`);
      }
      const aggregator = new Aggregator({
        bus: ctx.bus,
        redis,
        log: ctx.log,
        metrics: ctx.metrics,
        ids: ctx.ids,
        device: ctx.device,
        name: f.name,
        subscribeTopic: f.subscribeTopic,
        publishTopic: f.publishTopic,
        fps: f.fps,
        bufferSize: f.bufferSize,
        overlapSize: f.overlapSize,
        maxIdleS: f.maxIdle,
        gapS: f.gapThreshold,
        gap: f.gap,
        encoder: {
          kind,
          codec: f.codec as EncoderCodec,
          quality: f.quality,
          preset: f.preset,
          ffmpegPath: f.ffmpeg,
        },
        stream: f.streamMaxlen > 0 ? { maxLen: f.streamMaxlen, maxAgeS: f.streamMaxAge } : undefined,
        transport: f.transport,
        onError: ctx.reportError,
      });
      ctx.setReadiness(() => aggregator.readiness());
      await aggregator.start();
      await new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r(), { once: true }));
      // Stop taking frames, close every partial segment, publish them all.
      await aggregator.stop();
    },
  });
}
