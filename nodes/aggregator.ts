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
 * Data path: bus → {@linkcode Intake} (decode, count bad messages) → {@linkcode Segmenter} (which frames, which
 * segment) → {@linkcode SegmentBuilder} (encoder → muxer) → VideoData → bus. Segments are published in the order they
 * close.
 * @module
 */

import { Intake } from "../src/bus/intake.ts";
import { IMAGE_DATA_TYPE, type ImageData, VIDEO_DATA_TYPE } from "../src/bus/message.ts";
import type { RedisBus } from "../src/bus/redis.ts";
import { StreamProducer } from "../src/bus/stream.ts";
import { encodeMessagePieces, type OutgoingMessage } from "../src/bus/wire.ts";
import { isoMicros } from "../src/bus/describe.ts";
import { detectEncoderKind } from "../src/encode/mod.ts";
import type { EncoderCodec, EncoderKind } from "../src/encode/types.ts";
import { jpegSize } from "../src/codec/jpeg.ts";
import { type BuiltSegment, SegmentBuilder } from "../src/aggregate/segment_builder.ts";
import {
  type FlushReason,
  Segmenter,
  type SegmentEvent,
  type SegmentFrame,
} from "../src/aggregate/segmenter.ts";
import { errorMessage, isRedisPermissionError } from "../src/runtime/errors.ts";
import { runNode } from "../src/node/run_node.ts";
import { AGGREGATOR_FLAGS, checkAggregatorFlags } from "../src/node/aggregator_flags.ts";

/**
 * Segments this run has opened and not yet published, noted in Redis (`MSIGHT:AGGREGATOR:<name>:IN_PROGRESS`, one
 * field per segment). A segment in progress lives only in this process, so a run killed outright loses it; the
 * next run finds the notes, reports each lost segment, and starts clean. Best effort: a note that cannot be
 * written (Redis down) is skipped, and a Redis restart forgets them.
 */
class InProgressMarks {
  readonly key: string;
  constructor(readonly bus: RedisBus, name: string) {
    this.key = `MSIGHT:AGGREGATOR:${name}:IN_PROGRESS`;
  }

  /** The previous run's notes (its lost segments), removed from Redis. */
  async takeLeftovers(): Promise<{ sensor: string; openedAt: number }[]> {
    const notes = await this.bus.client.hgetall(this.key).catch((err) => {
      if (isRedisPermissionError(err)) throw err; // the node's ACL lacks its own key: stop with one line
      return {} as Record<string, string>;
    });
    await this.bus.client.del(this.key).catch(() => {});
    return Object.values(notes).flatMap((v) => {
      try {
        const n = JSON.parse(v) as { sensor?: unknown; openedAt?: unknown };
        return typeof n.sensor === "string" && typeof n.openedAt === "number"
          ? [{ sensor: n.sensor, openedAt: n.openedAt }]
          : [];
      } catch {
        return [];
      }
    });
  }

  opened(field: string, sensor: string): void {
    if (!this.bus.ready) return;
    this.bus.client.hset(this.key, field, JSON.stringify({ sensor, openedAt: Date.now() / 1000 })).catch(
      () => {},
    );
  }

  done(field: string): void {
    if (!this.bus.ready) return;
    this.bus.client.hdel(this.key, field).catch(() => {});
  }
}

/** Where an open segment is: its builder and when its last frame arrived. */
interface OpenSegment {
  builder: SegmentBuilder;
  overlap: number;
  lastArrival: number;
}

if (import.meta.main) {
  await runNode({
    command: "aggregator",
    type: "ImageToVideoAggregatorNode",
    description: "Aggregate ImageData frames into MP4 segments and publish them as MSight VideoData.",
    flags: AGGREGATOR_FLAGS,
    publishDataType: VIDEO_DATA_TYPE,
    subscribeDataType: IMAGE_DATA_TYPE,
    validate: checkAggregatorFlags,
    async run(ctx) {
      const f = ctx.flags;
      const m = ctx.metrics;
      const kind: EncoderKind = f.encoder === "auto" ? await detectEncoderKind(f.ffmpeg) : f.encoder;
      ctx.log.info(
        `encoding ${f.codec} with the ${kind === "ffmpeg" ? "system ffmpeg" : "ffmpeg.wasm"} backend` +
          (f.encoder === "auto" && kind === "wasm" ? " (no permission to run ffmpeg)" : ""),
      );
      const framesUsed = m.counter("frames_used_total", "Frames put into segments");
      const framesDropped = m.counter(
        "frames_dropped_total",
        "Frames not used, by reason (thinned, duplicate, late, unsupported)",
      );
      const segPublished = m.counter("segments_published_total", "Segments published, by flush reason");
      const segDropped = m.counter("segments_dropped_total", "Segments lost, by reason");
      const latency = m.histogram(
        "segment_publish_latency_seconds",
        "From a segment's last frame arriving to its VideoData on the bus",
      );
      const encodeSeconds = m.histogram(
        "segment_finish_seconds",
        "Time to flush the encoder and write the MP4",
      );
      m.gauge("open_segments", "Segments being filled", () => open.size);

      const segmenter = new Segmenter({
        fps: f.fps,
        bufferSize: f.bufferSize,
        overlapSize: f.overlapSize,
        maxIdleS: f.maxIdle,
        gapS: f.gapThreshold,
      });
      const stream = f.streamMaxlen > 0
        ? new StreamProducer(ctx.bus.client, f.publishTopic, {
          maxLen: f.streamMaxlen,
          maxAgeS: f.streamMaxAge,
        }, (args) => ctx.bus.command(args))
        : undefined;
      const open = new Map<string, OpenSegment>();
      // Ready once subscribed: frames published before that reach nobody, and the previous run's lost segments
      // (below) have been reported by then.
      let subscribed = false;
      ctx.setReadiness(() =>
        subscribed ? { ok: true } : { ok: false, reason: `not yet subscribed to ${f.subscribeTopic}` }
      );
      const inProgress = new InProgressMarks(ctx.bus, f.name);
      for (const lost of await inProgress.takeLeftovers()) {
        // The previous run died (SIGKILL, OOM, power) with this segment unpublished: its frames are gone.
        segDropped.inc(1, { reason: "crash" });
        ctx.log.warn(
          `the previous run stopped without publishing the segment of ${lost.sensor} opened at ` +
            `${isoMicros(lost.openedAt)}: lost (segments_dropped_total{reason="crash"})`,
        );
      }
      let warnedFallback = false;
      let publishChain: Promise<void> = Promise.resolve();

      const publish = async (seg: OutgoingMessage, lastArrival: number): Promise<void> => {
        // In pieces around the MP4's own pages: a segment of 1000 frames is ~30 MB, held once.
        const pieces = encodeMessagePieces(seg);
        // Hold the segment through a short Redis outage rather than lose it at once.
        const deadline = Date.now() + 15_000;
        while (!ctx.bus.ready && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
        let delivered = false;
        try {
          delivered = (await ctx.bus.publish(f.publishTopic, pieces)) >= 0;
          if (stream) {
            await stream.append(pieces);
            delivered = true;
          }
        } catch (err) {
          if (!delivered) throw err;
          ctx.log.warn(
            `segment published on pub/sub but not added to the durable stream: ${errorMessage(err)}`,
          );
        }
        if (!delivered) throw new Error("Redis is unreachable");
        latency.observe((Date.now() - lastArrival) / 1000);
      };

      const finishSegment = (key: string, o: OpenSegment, sensor: string, reason: FlushReason) => {
        open.delete(key);
        const t0 = performance.now();
        const built = o.builder.finish();
        // Publishing is chained, so segments go out in the order they closed whatever their encode times.
        publishChain = publishChain.then(async () => {
          let b: BuiltSegment;
          try {
            b = await built;
          } catch (err) {
            segDropped.inc(1, { reason: "encoder_error" });
            ctx.log.error(
              `segment of ${sensor} (${o.builder.frames} frames) dropped: encoder failed: ${
                errorMessage(err)
              }`,
            );
            return;
          }
          encodeSeconds.observe((performance.now() - t0) / 1000);
          const first = b.captureTimestamps[0], last = b.captureTimestamps.at(-1)!;
          const msg: OutgoingMessage & { dataType: typeof VIDEO_DATA_TYPE } = {
            dataType: VIDEO_DATA_TYPE,
            sensorName: sensor,
            captureTimestamp: first,
            creationTimestamp: Date.now() / 1000,
            frameId: ctx.ids.next(),
            deviceName: ctx.device,
            video: b.mp4,
            detectionResults: null,
            frameIds: b.frameIds,
            captureTimestamps: b.captureTimestamps,
            info: {
              codec: b.codec,
              width: b.width,
              height: b.height,
              fps: f.fps,
              frameCount: b.frameIds.length,
              durationS: last - first + 1 / f.fps,
              start: isoMicros(first),
              end: isoMicros(last),
              encoder: b.encoder,
              flushReason: reason,
              overlapFrames: o.overlap,
            },
          };
          try {
            await publish(msg, o.lastArrival);
            segPublished.inc(1, { reason });
            ctx.log.info(
              `published segment of ${sensor}: ${b.frameIds.length} frames, ${
                msg.info!.durationS.toFixed(2)
              } s, ` +
                `${b.mp4Bytes} bytes, ${b.width}x${b.height} ${b.encoder} (closed: ${reason})`,
            );
          } catch (err) {
            segDropped.inc(1, { reason: "redis_unavailable" });
            ctx.log.error(`segment of ${sensor} (${b.frameIds.length} frames) dropped: ${errorMessage(err)}`);
          }
        }).finally(() => inProgress.done(key));
      };

      const handle = (events: SegmentEvent[]) => {
        for (const ev of events) {
          const key = `${ev.sensor}\u0000${"seq" in ev ? ev.seq : ""}`;
          if (ev.kind === "open") {
            const builder = new SegmentBuilder({
              kind,
              config: {
                codec: f.codec as EncoderCodec,
                width: ev.width,
                height: ev.height,
                framerate: f.fps,
                quality: f.quality,
                preset: f.preset,
              },
              ffmpegPath: f.ffmpeg,
              maxFrames: f.bufferSize,
              onFallback: (info) => {
                if (warnedFallback) return;
                warnedFallback = true;
                ctx.log.warn(
                  `${info.requested} cannot be used (${info.reason}): encoding with ${info.used} instead`,
                );
              },
            });
            open.set(key, { builder, overlap: 0, lastArrival: Date.now() });
            inProgress.opened(key, ev.sensor);
          } else if (ev.kind === "frame") {
            const o = open.get(key)!;
            o.builder.add(ev.frame);
            o.lastArrival = Date.now();
            if (ev.overlap) o.overlap++;
            else framesUsed.inc();
          } else if (ev.kind === "close") {
            const o = open.get(key);
            if (o) finishSegment(key, o, ev.sensor, ev.reason);
            if (ev.reason !== "full") {
              ctx.log.info(`closing the segment of ${ev.sensor} early (${ev.reason}, ${ev.frames} frames)`);
            }
          } else {
            framesDropped.inc(1, { reason: ev.reason });
            if (ev.reason !== "thinned") {
              ctx.log.debug(`dropped a ${ev.reason} frame of ${ev.sensor} (frame_id ${ev.frame.frameId})`);
            }
          }
        }
      };

      const toFrame = (img: ImageData): SegmentFrame | undefined => {
        let [height, width, channels] = img.size;
        if (img.isEncoded) {
          if (width === 0 || height === 0) {
            ({ width, height } = jpegSize(img.image) ?? { width: 0, height: 0 });
          }
          if (width === 0 || height === 0) return undefined;
        } else if (channels !== 3) return undefined;
        return {
          sensor: img.sensorName,
          frameId: img.frameId,
          captureTs: img.captureTimestamp,
          width,
          height,
          format: img.isEncoded ? "jpeg" : "bgr24",
          data: img.image,
        };
      };

      const intake = new Intake({
        topic: f.subscribeTopic,
        log: ctx.log,
        metrics: m,
        gap: f.gap,
        accept: [IMAGE_DATA_TYPE],
      });
      const onMessage = (bytes: Uint8Array) => {
        const msg = intake.decode(bytes);
        if (!msg || msg.dataType !== IMAGE_DATA_TYPE || ctx.signal.aborted) return;
        const frame = toFrame(msg);
        if (!frame) {
          framesDropped.inc(1, { reason: "unsupported" });
          return;
        }
        try {
          handle(segmenter.push(frame));
        } catch (err) {
          ctx.reportError(err, `frame of ${msg.sensorName}`);
        }
      };
      await stream?.announce();
      // A Redis restart empties MSIGHT:STREAMS too: announce again with the next segment, so sinks started later in
      // `--transport auto` still find the durable stream (else they would fall back to lossy pub/sub).
      ctx.bus.client.on("ready", () => stream?.reannounce());
      await ctx.bus.subscribe(f.subscribeTopic, onMessage);
      subscribed = true;
      ctx.log.info(
        `aggregating ${f.subscribeTopic} → ${f.publishTopic}: ${f.bufferSize} frames at ${f.fps} fps per segment, ` +
          `overlap ${f.overlapSize}${stream ? `, durable stream of ${f.streamMaxlen}` : ", pub/sub only"}`,
      );
      const ticker = setInterval(() => handle(segmenter.tick()), 500);
      await new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r(), { once: true }));

      // Shutdown: stop taking frames, close every partial segment, publish them all.
      clearInterval(ticker);
      await ctx.bus.unsubscribe(f.subscribeTopic, onMessage).catch(() => {});
      const pending = segmenter.openSensors.length;
      if (pending > 0) ctx.log.info(`flushing ${pending} partial segment(s)`);
      handle(segmenter.closeAll("shutdown"));
      await publishChain;
    },
  });
}
