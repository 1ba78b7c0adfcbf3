/**
 * The image-to-video aggregator's loop: bus → {@linkcode Intake} (decode, count bad messages) →
 * {@linkcode Segmenter} (which frames, which segment) → {@linkcode SegmentBuilder} (encoder → muxer) → VideoData →
 * {@linkcode SegmentWriter} (pub/sub and the durable stream). Segments are published in the order they close; one
 * that fails is a {@linkcode SegmentError}, counted and logged, and the loop goes on.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "../bus/redis.ts";
 * import type { Logger } from "../runtime/log.ts";
 * import type { Metrics } from "../runtime/metrics.ts";
 * import type { Snowflake } from "../bus/snowflake.ts";
 * import { Aggregator } from "./aggregator.ts";
 * declare const bus: RedisBus, log: Logger, metrics: Metrics, ids: Snowflake;
 * const agg = new Aggregator({ bus, log, metrics, ids, device: "edge-1", name: "image-aggregator",
 *   subscribeTopic: "rtsp_topic", publishTopic: "aggregated_video", fps: 10, bufferSize: 100, overlapSize: 0,
 *   maxIdleS: 5, gapS: 3, gap: 0, encoder: { kind: "ffmpeg", codec: "libx264" }, onError: console.error });
 * await agg.start();
 * // ... until SIGTERM ...
 * await agg.stop(); // flushes and publishes every partial segment
 * ```
 * @module
 */

import { isoMicros } from "../bus/describe.ts";
import { Intake } from "../bus/intake.ts";
import { IMAGE_DATA_TYPE } from "../bus/message.ts";
import type { RedisBus } from "../bus/redis.ts";
import { SegmentWriter } from "../bus/segment_writer.ts";
import type { Snowflake } from "../bus/snowflake.ts";
import type { StreamCaps } from "../bus/stream.ts";
import type { EncoderCodec, EncoderKind } from "../encode/types.ts";
import { errorMessage, SegmentError } from "../runtime/errors.ts";
import type { Readiness } from "../runtime/health_server.ts";
import type { Logger } from "../runtime/log.ts";
import type { Metrics } from "../runtime/metrics.ts";
import { segmentFrameOf } from "./image_frame.ts";
import { InProgressMarks } from "./in_progress.ts";
import { type BuiltSegment, SegmentBuilder } from "./segment_builder.ts";
import { type FlushReason, Segmenter, type SegmentEvent } from "./segmenter.ts";
import { videoDataOf } from "./video_data.ts";

/** How segments are encoded (the aggregator's encoder flags). */
export interface AggregatorEncoding {
  kind: EncoderKind;
  codec: EncoderCodec;
  /** CRF or CQ; the codec's default when absent. */
  quality?: number;
  /** Encoder preset; the codec's default when absent. */
  preset?: string;
  /** ffmpeg binary of the ffmpeg backend. */
  ffmpegPath?: string;
}

/** Options of an {@linkcode Aggregator} (the aggregator node's flags, and what the node runtime gives it). */
export interface AggregatorOptions {
  bus: RedisBus;
  log: Logger;
  metrics: Metrics;
  ids: Snowflake;
  /** The device name put in each VideoData. */
  device: string;
  /** The node's `--name`: keys its in-progress marks. */
  name: string;
  subscribeTopic: string;
  publishTopic: string;
  fps: number;
  bufferSize: number;
  overlapSize: number;
  maxIdleS: number;
  gapS: number;
  /** `--gap`: messages skipped between two taken (see {@linkcode Intake}). */
  gap: number;
  encoder: AggregatorEncoding;
  /** The durable stream's caps; absent: pub/sub only. */
  stream?: StreamCaps;
  /** An unexpected error (not one bad frame or one lost segment): the node decides whether to stop. */
  onError(err: unknown, what: string): void;
}

/** Where an open segment is: its builder and when its last frame arrived. */
interface OpenSegment {
  builder: SegmentBuilder;
  overlap: number;
  lastArrival: number;
}

/** The aggregator's counters and histograms (the `open_segments` gauge is registered by the aggregator). */
function aggregatorMetrics(m: Metrics) {
  return {
    framesUsed: m.counter("frames_used_total", "Frames put into segments"),
    framesDropped: m.counter(
      "frames_dropped_total",
      "Frames not used, by reason (thinned, duplicate, late, unsupported)",
    ),
    segPublished: m.counter("segments_published_total", "Segments published, by flush reason"),
    segDropped: m.counter("segments_dropped_total", "Segments lost, by reason"),
    latency: m.histogram(
      "segment_publish_latency_seconds",
      "From a segment's last frame arriving to its VideoData on the bus",
    ),
    encodeSeconds: m.histogram("segment_finish_seconds", "Time to flush the encoder and write the MP4"),
  };
}

/** How often idle segments are looked for, ms. */
const TICK_MS = 500;

/** The aggregator's loop; see the module doc. Owns its subscription, ticker and writer; {@linkcode stop} ends them. */
export class Aggregator {
  readonly #o: AggregatorOptions;
  readonly #segmenter: Segmenter;
  readonly #writer: SegmentWriter;
  readonly #marks: InProgressMarks;
  readonly #intake: Intake;
  readonly #open = new Map<string, OpenSegment>();
  readonly #m: ReturnType<typeof aggregatorMetrics>;
  #subscribed = false;
  #stopping = false;
  #warnedFallback = false;
  #publishChain: Promise<void> = Promise.resolve();
  #ticker?: ReturnType<typeof setInterval>;

  constructor(opts: AggregatorOptions) {
    this.#o = opts;
    const m = opts.metrics;
    this.#m = aggregatorMetrics(m);
    m.gauge("open_segments", "Segments being filled", () => this.#open.size);
    this.#segmenter = new Segmenter({
      fps: opts.fps,
      bufferSize: opts.bufferSize,
      overlapSize: opts.overlapSize,
      maxIdleS: opts.maxIdleS,
      gapS: opts.gapS,
    });
    this.#writer = new SegmentWriter({
      bus: opts.bus,
      log: opts.log,
      topic: opts.publishTopic,
      stream: opts.stream,
    });
    this.#marks = new InProgressMarks(opts.bus, opts.name);
    this.#intake = new Intake({
      topic: opts.subscribeTopic,
      log: opts.log,
      metrics: m,
      gap: opts.gap,
      accept: [IMAGE_DATA_TYPE],
    });
  }

  /** Ready once subscribed: frames published before that reach nobody. */
  readiness(): Readiness {
    return this.#subscribed
      ? { ok: true }
      : { ok: false, reason: `not yet subscribed to ${this.#o.subscribeTopic}` };
  }

  /** Reports the previous run's lost segments, announces the stream, subscribes and starts the idle ticker. */
  async start(): Promise<void> {
    const o = this.#o;
    for (const lost of await this.#marks.takeLeftovers()) {
      // The previous run died (SIGKILL, OOM, power) with this segment unpublished: its frames are gone.
      this.#m.segDropped.inc(1, { reason: "crash" });
      o.log.warn(
        `the previous run stopped without publishing the segment of ${lost.sensor} opened at ` +
          `${isoMicros(lost.openedAt)}: lost (segments_dropped_total{reason="crash"})`,
      );
    }
    await this.#writer.start();
    await o.bus.subscribe(o.subscribeTopic, this.#onMessage);
    this.#subscribed = true;
    o.log.info(
      `aggregating ${o.subscribeTopic} → ${o.publishTopic}: ${o.bufferSize} frames at ${o.fps} fps per segment, ` +
        `overlap ${o.overlapSize}${o.stream ? `, durable stream of ${o.stream.maxLen}` : ", pub/sub only"}`,
    );
    this.#ticker = setInterval(() => this.#handle(this.#segmenter.tick()), TICK_MS);
  }

  /** Stops taking frames, closes every partial segment and resolves once all are published (or dropped). */
  async stop(): Promise<void> {
    if (this.#stopping) return await this.#publishChain;
    this.#stopping = true;
    clearInterval(this.#ticker);
    // Redis down at shutdown: there is no subscription left to remove.
    await this.#o.bus.unsubscribe(this.#o.subscribeTopic, this.#onMessage).catch(() => {});
    const pending = this.#segmenter.openSensors.length;
    if (pending > 0) this.#o.log.info(`flushing ${pending} partial segment(s)`);
    this.#handle(this.#segmenter.closeAll("shutdown"));
    await this.#publishChain;
    this.#writer.close();
  }

  #onMessage = (bytes: Uint8Array): void => {
    const msg = this.#intake.decode(bytes);
    if (!msg || msg.dataType !== IMAGE_DATA_TYPE || this.#stopping) return;
    const frame = segmentFrameOf(msg);
    if (!frame) {
      this.#m.framesDropped.inc(1, { reason: "unsupported" });
      return;
    }
    try {
      this.#handle(this.#segmenter.push(frame));
    } catch (err) {
      this.#o.onError(err, `frame of ${msg.sensorName}`);
    }
  };

  #handle(events: SegmentEvent[]): void {
    const o = this.#o;
    for (const ev of events) {
      const key = `${ev.sensor}\u0000${"seq" in ev ? ev.seq : ""}`;
      if (ev.kind === "open") {
        const builder = new SegmentBuilder({
          kind: o.encoder.kind,
          config: {
            codec: o.encoder.codec,
            width: ev.width,
            height: ev.height,
            framerate: o.fps,
            quality: o.encoder.quality,
            preset: o.encoder.preset,
          },
          ffmpegPath: o.encoder.ffmpegPath,
          maxFrames: o.bufferSize,
          onFallback: (info) => {
            if (this.#warnedFallback) return;
            this.#warnedFallback = true;
            o.log.warn(
              `${info.requested} cannot be used (${info.reason}): encoding with ${info.used} instead`,
            );
          },
        });
        this.#open.set(key, { builder, overlap: 0, lastArrival: Date.now() });
        this.#marks.opened(key, ev.sensor);
      } else if (ev.kind === "frame") {
        const seg = this.#open.get(key)!;
        seg.builder.add(ev.frame);
        seg.lastArrival = Date.now();
        if (ev.overlap) seg.overlap++;
        else this.#m.framesUsed.inc();
      } else if (ev.kind === "close") {
        const seg = this.#open.get(key);
        if (seg) this.#finish(key, seg, ev.sensor, ev.reason);
        if (ev.reason !== "full") {
          o.log.info(`closing the segment of ${ev.sensor} early (${ev.reason}, ${ev.frames} frames)`);
        }
      } else {
        this.#m.framesDropped.inc(1, { reason: ev.reason });
        if (ev.reason !== "thinned") {
          o.log.debug(`dropped a ${ev.reason} frame of ${ev.sensor} (frame_id ${ev.frame.frameId})`);
        }
      }
    }
  }

  #finish(key: string, seg: OpenSegment, sensor: string, reason: FlushReason): void {
    this.#open.delete(key);
    const t0 = performance.now();
    const built = seg.builder.finish();
    // Chained, so segments go out in the order they closed whatever their encode times.
    this.#publishChain = this.#publishChain
      .then(() => this.#publish(built, t0, seg, sensor, reason))
      .catch((err) => {
        const what = `segment of ${sensor} (${seg.builder.frames} frames)`;
        if (err instanceof SegmentError) {
          this.#m.segDropped.inc(1, { reason: err.reason });
          this.#o.log.error(`${what} dropped: ${err.message}`);
        } else {
          // A bug, not a Redis or encoder fault: counted as lost too, and reported as unexpected.
          this.#m.segDropped.inc(1, { reason: "internal_error" });
          this.#o.onError(err, `${what} dropped`);
        }
      })
      .finally(() => this.#marks.done(key));
  }

  async #publish(
    built: Promise<BuiltSegment>,
    t0: number,
    seg: OpenSegment,
    sensor: string,
    reason: FlushReason,
  ): Promise<void> {
    const o = this.#o;
    let b: BuiltSegment;
    try {
      b = await built;
    } catch (err) {
      throw new SegmentError(`encoder failed: ${errorMessage(err)}`, "encoder_error");
    }
    this.#m.encodeSeconds.observe((performance.now() - t0) / 1000);
    const msg = videoDataOf(b, {
      sensor,
      fps: o.fps,
      reason,
      overlapFrames: seg.overlap,
      frameId: o.ids.next(),
      device: o.device,
    });
    await this.#writer.write(msg);
    this.#m.latency.observe((Date.now() - seg.lastArrival) / 1000);
    this.#m.segPublished.inc(1, { reason });
    o.log.info(
      `published segment of ${sensor}: ${b.frameIds.length} frames, ${msg.info.durationS.toFixed(2)} s, ` +
        `${b.mp4Bytes} bytes, ${b.width}x${b.height} ${b.encoder} (closed: ${reason})`,
    );
  }
}
