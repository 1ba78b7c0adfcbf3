/**
 * The image-to-video aggregator's loop: bus → {@linkcode Intake} (decode, count bad messages) →
 * {@linkcode Segmenter} (which frames, which segment) → {@linkcode SegmentBuilder} (encoder → muxer) → VideoData →
 * {@linkcode SegmentWriter} (pub/sub and the durable stream). Segments are published in the order they close; one
 * that fails is a {@linkcode SegmentError}, counted and logged, and the loop goes on.
 *
 * Frames come from the topic's durable frame stream when our RTSP node announced one (`frame_stream.ts`), else from
 * pub/sub. From the stream, a frame is acknowledged only once the segment holding it is in the durable segment stream
 * (a frame dropped by the segmenter rides with the segment open at the time), so a run killed outright leaves its
 * frames pending and the next run rebuilds the segments from them, skipping frames already in a published segment.
 * Every frame taken is counted once in `frames_accounted_total{sensor,outcome}`.
 *
 * The frame stream and the in-progress marks are Redis features: with `redis` absent (NATS, Redis Cluster) frames
 * come from pub/sub only and segments go out through the bus interface (plain publish, then the back end's durable
 * segment stream).
 *
 * @example
 * ```ts
 * import type { Bus } from "../bus/types.ts";
 * import type { Logger } from "../runtime/log.ts";
 * import type { Metrics } from "../runtime/metrics.ts";
 * import type { Snowflake } from "../bus/snowflake.ts";
 * import { Aggregator } from "./aggregator.ts";
 * declare const bus: Bus, log: Logger, metrics: Metrics, ids: Snowflake;
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
import { IMAGE_DATA_TYPE, type ImageData, type VideoData } from "../bus/message.ts";
import { type FrameEntry, FrameStreamReader, streamSensorsKey } from "../bus/frame_stream.ts";
import type { Transport } from "../bus/segment_reader.ts";
import { hasStream, streamKey } from "../bus/stream.ts";
import { decodeMessage } from "../bus/wire.ts";
import type { RedisBus } from "../bus/redis.ts";
import type { Bus } from "../bus/types.ts";
import { SegmentWriter } from "../bus/segment_writer.ts";
import type { Snowflake } from "../bus/snowflake.ts";
import type { StreamCaps } from "../bus/stream.ts";
import { EncoderLine, lineKeeps } from "../encode/encoder_line.ts";
import type { EncoderCodec, EncoderKind } from "../encode/types.ts";
import { errorMessage, SegmentError } from "../runtime/errors.ts";
import type { Readiness } from "../runtime/health_server.ts";
import type { Logger } from "../runtime/log.ts";
import type { Metrics } from "../runtime/metrics.ts";
import { segmentFrameOf } from "./image_frame.ts";
import { InProgressMarks } from "./in_progress.ts";
import { type BuiltSegment, SegmentBuilder } from "./segment_builder.ts";
import { type FlushReason, Segmenter, type SegmentEvent, type SegmentFrame } from "./segmenter.ts";
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
  /** Frames in, segments out: any back end. */
  bus: Bus;
  /** The standalone Redis under `bus`, when it is one: the frame stream and the in-progress marks need it. */
  redis?: RedisBus;
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
  /**
   * Where frames come from (`--transport`): `stream`, the topic's durable frame stream; `pubsub`, as MSight; `auto`,
   * the stream once a source announced one, pub/sub until then. Pub/sub stays on for sensors that publish no stream.
   */
  transport?: Transport;
  /** An unexpected error (not one bad frame or one lost segment): the node decides whether to stop. */
  onError(err: unknown, what: string): void;
}

/** Where an open segment is: its builder and when its last frame arrived. */
interface OpenSegment {
  builder: SegmentBuilder;
  overlap: number;
  lastArrival: number;
  /** Stream entries acknowledged once the segment is safe: its frames, and frames dropped while it was open. */
  ids: string[];
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
    encoderStarts: m.counter(
      "encoder_processes_started_total",
      "ffmpeg processes started by the sensors' long-lived encoders (one is kept across full segments)",
    ),
    accounted: m.counter(
      "frames_accounted_total",
      "Every frame taken, once, by sensor and outcome: segment (in a published segment, overlap copies aside), " +
        "thinned, duplicate, late, skipped (--gap), unsupported, crash (lost with a killed run), or why its " +
        "segment was lost",
    ),
  };
}

/** How often idle segments are looked for, ms. */
const TICK_MS = 500;
/** How often `auto` looks for an announced frame stream, and the streamed sensors are re-read, ms. */
const POLL_MS = 5000;

/** The aggregator's loop; see the module doc. Owns its subscription, ticker and writer; {@linkcode stop} ends them. */
export class Aggregator {
  readonly #o: AggregatorOptions;
  readonly #segmenter: Segmenter;
  readonly #writer: SegmentWriter;
  readonly #marks?: InProgressMarks;
  readonly #intake: Intake;
  readonly #open = new Map<string, OpenSegment>();
  readonly #m: ReturnType<typeof aggregatorMetrics>;
  #subscribed = false;
  #stopping = false;
  #warnedFallback = false;
  #publishChain: Promise<void> = Promise.resolve();
  #ticker?: ReturnType<typeof setInterval>;
  #poller?: ReturnType<typeof setInterval>;
  #reader?: FrameStreamReader;
  #readerStop = new AbortController();
  #readerDone: Promise<void> = Promise.resolve();
  /** The stream entry each frame taken from the stream came in. */
  readonly #entryOf = new WeakMap<SegmentFrame, string>();
  /** Sensors whose frames come on the stream: their pub/sub copies are ignored. */
  readonly #streamed = new Set<string>();
  /** Sensors known to publish on pub/sub only (MSight's sources), while the stream is read. */
  readonly #pubsubOnly = new Set<string>();
  /** Pub/sub messages of a sensor not yet known either way, held (in order) while Redis is asked. */
  readonly #held = new Map<string, Uint8Array[]>();
  /** Each sensor's open segment. */
  readonly #openOf = new Map<string, string>();
  /** Entries to acknowledge at once (frames that no segment will hold). */
  #ackNow: string[] = [];
  /** Each sensor's long-lived encoder (ffmpeg backend, x264/x265), kept across its full segments. */
  readonly #lines = new Map<string, EncoderLine>();

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
      bus: opts.redis ?? opts.bus,
      log: opts.log,
      topic: opts.publishTopic,
      stream: opts.stream,
    });
    this.#marks = opts.redis ? new InProgressMarks(opts.redis, opts.name) : undefined;
    this.#intake = new Intake({
      topic: opts.subscribeTopic,
      log: opts.log,
      metrics: m,
      gap: opts.gap,
      accept: [IMAGE_DATA_TYPE],
    });
  }

  /** The standalone Redis, on the paths that only run with one (the frame stream is read only from Redis). */
  get #redis(): RedisBus {
    if (!this.#o.redis) throw new Error("the durable frame stream needs a standalone Redis");
    return this.#o.redis;
  }

  /** Ready once subscribed: frames published before that reach nobody. */
  readiness(): Readiness {
    return this.#subscribed
      ? { ok: true }
      : { ok: false, reason: `not yet subscribed to ${this.#o.subscribeTopic}` };
  }

  /**
   * Reports the previous run's lost segments, announces the segment stream, subscribes (and reads the frame stream,
   * replaying the previous run's unacknowledged frames first) and starts the idle ticker.
   */
  async start(): Promise<void> {
    const o = this.#o;
    const transport = o.transport ?? "auto";
    const durable = o.redis !== undefined && (transport === "stream" ||
      (transport === "auto" && await hasStream(o.redis.client, o.subscribeTopic)));
    for (const lost of await this.#marks?.takeLeftovers() ?? []) {
      if (durable) {
        o.log.info(
          `the previous run stopped without publishing the segment of ${lost.sensor} opened at ` +
            `${isoMicros(lost.openedAt)}: rebuilding it from its unacknowledged frames`,
        );
        continue;
      }
      // The previous run died (SIGKILL, OOM, power) with this segment unpublished: its frames are gone.
      this.#m.segDropped.inc(1, { reason: "crash" });
      o.log.warn(
        `the previous run stopped without publishing the segment of ${lost.sensor} opened at ` +
          `${isoMicros(lost.openedAt)}: lost (segments_dropped_total{reason="crash"})`,
      );
    }
    await this.#writer.start();
    // Known before subscribing, so no pub/sub copy of a streamed frame is taken.
    if (durable) await this.#refreshStreamed();
    await o.bus.subscribe(o.subscribeTopic, this.#onMessage);
    this.#subscribed = true;
    o.log.info(
      `aggregating ${o.subscribeTopic} → ${o.publishTopic}: ${o.bufferSize} frames at ${o.fps} fps per segment, ` +
        `overlap ${o.overlapSize}${o.stream ? `, durable stream of ${o.stream.maxLen}` : ", pub/sub only"}`,
    );
    if (durable) await this.#startReader();
    else if (transport === "auto") {
      o.log.info(`no durable frame stream announced on ${o.subscribeTopic} yet: taking frames over pub/sub`);
    }
    this.#poller = setInterval(() => void this.#poll(), POLL_MS);
    this.#ticker = setInterval(() => this.#handle(this.#segmenter.tick()), TICK_MS);
  }

  /** Starts reading the frame stream (the previous run's pending frames first). */
  async #startReader(): Promise<void> {
    const o = this.#o;
    await this.#refreshStreamed();
    const reader = new FrameStreamReader(this.#redis, { topic: o.subscribeTopic, group: o.name, log: o.log });
    await reader.open();
    this.#reader = reader;
    o.log.info(
      `taking frames from the durable stream ${reader.key} as consumer group ${o.name} ` +
        "(acknowledged once their segment is in the segment stream)",
    );
    this.#readerDone = reader.run(
      (entries, replay) => replay ? this.#replay(entries) : this.#onEntries(entries),
      this.#readerStop.signal,
    ).catch((err) => o.onError(err, "reading the frame stream"));
  }

  /** `auto`: switch to the stream once announced; re-reads the streamed sensors. */
  async #poll(): Promise<void> {
    const o = this.#o;
    try {
      if (this.#reader) await this.#refreshStreamed();
      else if (
        o.redis && (o.transport ?? "auto") === "auto" && await hasStream(o.redis.client, o.subscribeTopic)
      ) {
        o.log.info(`a durable frame stream was announced on ${o.subscribeTopic}: switching to it`);
        await this.#startReader();
      }
    } catch (err) {
      o.log.debug(`looking for the frame stream: ${errorMessage(err)}`); // Redis down: the next poll retries
    }
  }

  async #refreshStreamed(): Promise<void> {
    for (const s of await this.#redis.client.smembers(streamSensorsKey(this.#o.subscribeTopic))) {
      this.#streamed.add(s);
      this.#pubsubOnly.delete(s);
    }
  }

  /** Stops taking frames, closes every partial segment and resolves once all are published (or dropped). */
  async stop(): Promise<void> {
    if (this.#stopping) return await this.#publishChain;
    this.#stopping = true;
    clearInterval(this.#ticker);
    clearInterval(this.#poller);
    this.#readerStop.abort();
    this.#reader?.close();
    await this.#readerDone;
    // Redis down at shutdown: there is no subscription left to remove.
    await this.#o.bus.unsubscribe(this.#o.subscribeTopic, this.#onMessage).catch(() => {});
    const pending = this.#segmenter.openSensors.length;
    if (pending > 0) this.#o.log.info(`flushing ${pending} partial segment(s)`);
    this.#handle(this.#segmenter.closeAll("shutdown"));
    await this.#publishChain;
    await Promise.all([...this.#lines.values()].map((line) => line.close()));
    this.#writer.close();
  }

  /** The sensor's encoder line, made on its first segment; none for the wasm backend and NVENC. */
  #lineOf(sensor: string): EncoderLine | undefined {
    const { kind, codec, ffmpegPath } = this.#o.encoder;
    if (kind !== "ffmpeg" || !lineKeeps(codec)) return undefined;
    let line = this.#lines.get(sensor);
    if (!line) {
      // A kept process unused for --max-idle is ended: the sensor has stopped (its next frame starts a fresh one).
      const idleMs = Math.max(1000, this.#o.maxIdleS * 1000);
      const onStart = () => this.#m.encoderStarts.inc(1, { sensor });
      line = new EncoderLine({ ffmpegPath, segmentFrames: this.#o.bufferSize, idleMs, onStart });
      this.#lines.set(sensor, line);
    }
    return line;
  }

  #onMessage = (bytes: Uint8Array): void => {
    if (this.#stopping) return;
    if (this.#reader) {
      let sensor: string | undefined;
      try {
        sensor = decodeMessage(bytes).sensorName;
      } catch {
        sensor = undefined; // malformed: the intake counts and reports it below
      }
      if (sensor !== undefined && !this.#pubsubOnly.has(sensor)) {
        // A copy of a frame read from the stream; or a sensor not known yet, asked about first.
        if (!this.#streamed.has(sensor)) this.#hold(sensor, bytes);
        return;
      }
    }
    this.#takePubSub(bytes);
  };

  #takePubSub(bytes: Uint8Array): void {
    const msg = this.#intake.decode(bytes);
    if (!msg) return this.#countSkipped(bytes);
    if (msg.dataType !== IMAGE_DATA_TYPE) return;
    this.#take(msg);
  }

  /** A message the intake passed over: a good frame skipped by `--gap` is accounted (a malformed one is counted there). */
  #countSkipped(bytes: Uint8Array): void {
    try {
      const msg = decodeMessage(bytes);
      if (msg.dataType === IMAGE_DATA_TYPE) {
        this.#m.accounted.inc(1, { sensor: msg.sensorName, outcome: "skipped" });
      }
    } catch {
      // Malformed: the intake counted and reported it.
    }
  }

  /**
   * Holds a pub/sub message of a sensor not known to be streamed or not, until Redis says: a source of ours names its
   * sensor in the stream's sensor set before its first frame, so a copy is never taken twice.
   */
  #hold(sensor: string, bytes: Uint8Array): void {
    const held = this.#held.get(sensor);
    if (held) return void held.push(bytes);
    this.#held.set(sensor, [bytes]);
    this.#redis.client.sismember(streamSensorsKey(this.#o.subscribeTopic), sensor).catch((err) => {
      this.#o.log.warn(
        `cannot tell whether ${sensor} has a frame stream: ${errorMessage(err)} (taking pub/sub)`,
      );
      return 0;
    }).then((member) => {
      const list = this.#held.get(sensor) ?? [];
      this.#held.delete(sensor);
      if (member === 1) return void this.#streamed.add(sensor);
      this.#pubsubOnly.add(sensor);
      this.#o.log.info(
        `sensor ${sensor} publishes no frame stream on ${this.#o.subscribeTopic}: taking it from pub/sub`,
      );
      for (const b of list) if (!this.#stopping) this.#takePubSub(b);
    });
  }

  /** Frames read from the stream, in order. */
  #onEntries(entries: FrameEntry[]): void {
    for (const e of entries) {
      if (this.#stopping) break; // left pending: the next run takes them
      const msg = e.bytes ? this.#intake.decode(e.bytes) : undefined;
      if (!msg || msg.dataType !== IMAGE_DATA_TYPE) {
        // Skipped by --gap, malformed (counted by the intake), or trimmed away while pending: no segment will hold it.
        if (!e.bytes) this.#m.accounted.inc(1, { sensor: "", outcome: "crash" });
        else if (!msg) this.#countSkipped(e.bytes);
        this.#ackNow.push(e.id);
        continue;
      }
      this.#streamed.add(msg.sensorName);
      this.#take(msg, e.id);
    }
    this.#flushAcks();
  }

  /**
   * The previous run's unacknowledged frames: those already in a published segment (killed between publishing and
   * acknowledging) are acknowledged; the rest are segmented again; those trimmed away meanwhile are lost (counted).
   */
  async #replay(entries: FrameEntry[]): Promise<void> {
    const o = this.#o;
    const done = await this.#framesInSegmentStream(entries[0].id);
    let again = 0, already = 0, trimmed = 0;
    const fresh: FrameEntry[] = [];
    for (const e of entries) {
      let msg: ImageData | undefined;
      try {
        msg = e.bytes ? decodeMessage(e.bytes) as ImageData : undefined;
      } catch {
        msg = undefined; // malformed: the intake counts it below
      }
      if (!e.bytes) trimmed++;
      if (msg && done.has(msg.frameId)) {
        already++;
        this.#ackNow.push(e.id);
        continue;
      }
      if (e.bytes) again++;
      fresh.push(e);
    }
    o.log.info(
      `the previous run left ${entries.length} frame(s) unacknowledged: ${again} segmented again, ${already} ` +
        `already in published segments, ${trimmed} trimmed from the stream meanwhile (lost)`,
    );
    if (trimmed > 0) {
      o.log.warn(
        `${trimmed} frame(s) of the previous run were trimmed from ${
          streamKey(o.subscribeTopic)
        } before this run ` +
          `started: lost (frames_accounted_total{outcome="crash"}); raise the RTSP nodes' --frame-stream-max-age`,
      );
    }
    this.#onEntries(fresh);
  }

  /** Frame ids of the segments in the durable segment stream added after entry `fromId` of the frame stream. */
  async #framesInSegmentStream(fromId: string): Promise<Set<bigint>> {
    const ids = new Set<bigint>();
    if (!this.#writer.durable) return ids;
    const key = streamKey(this.#o.publishTopic);
    for (let from = fromId;;) {
      const page = await this.#redis.client.xrangeBuffer(key, from, "+", "COUNT", 10);
      for (const [, fields] of page) {
        for (let i = 0; i + 1 < fields.length; i += 2) {
          if (fields[i].toString() !== "d") continue;
          try {
            const seg = decodeMessage(fields[i + 1]) as VideoData;
            for (const f of seg.frameIds ?? []) ids.add(f);
          } catch {
            // Not a segment of ours (a bad producer on the topic): it holds none of our frames.
          }
        }
      }
      if (page.length < 10) break;
      from = `(${page.at(-1)![0].toString()}`;
    }
    return ids;
  }

  /** One good ImageData message, from pub/sub or from stream entry `entry`. */
  #take(msg: ImageData, entry?: string): void {
    const frame = segmentFrameOf(msg);
    if (!frame) {
      this.#m.framesDropped.inc(1, { reason: "unsupported" });
      this.#m.accounted.inc(1, { sensor: msg.sensorName, outcome: "unsupported" });
      if (entry) this.#ackNow.push(entry);
      return;
    }
    if (entry) this.#entryOf.set(frame, entry);
    try {
      this.#handle(this.#segmenter.push(frame));
    } catch (err) {
      this.#o.onError(err, `frame of ${msg.sensorName}`);
    }
  }

  #flushAcks(): void {
    if (this.#ackNow.length === 0 || !this.#reader) return;
    void this.#reader.ack(this.#ackNow);
    this.#ackNow = [];
  }

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
          line: this.#lineOf(ev.sensor),
          onFallback: (info) => {
            if (this.#warnedFallback) return;
            this.#warnedFallback = true;
            o.log.warn(
              `${info.requested} cannot be used (${info.reason}): encoding with ${info.used} instead`,
            );
          },
        });
        this.#open.set(key, { builder, overlap: 0, lastArrival: Date.now(), ids: [] });
        this.#openOf.set(ev.sensor, key);
        this.#marks?.opened(key, ev.sensor);
      } else if (ev.kind === "frame") {
        const seg = this.#open.get(key)!;
        seg.builder.add(ev.frame);
        seg.lastArrival = Date.now();
        if (ev.overlap) seg.overlap++;
        else {
          this.#m.framesUsed.inc();
          const entry = this.#entryOf.get(ev.frame);
          if (entry) seg.ids.push(entry);
        }
      } else if (ev.kind === "close") {
        const seg = this.#open.get(key);
        if (this.#openOf.get(ev.sensor) === key) this.#openOf.delete(ev.sensor);
        if (seg) this.#finish(key, seg, ev.sensor, ev.reason);
        if (ev.reason !== "full") {
          o.log.info(`closing the segment of ${ev.sensor} early (${ev.reason}, ${ev.frames} frames)`);
        }
      } else {
        this.#m.framesDropped.inc(1, { reason: ev.reason });
        this.#m.accounted.inc(1, { sensor: ev.sensor, outcome: ev.reason });
        const entry = this.#entryOf.get(ev.frame);
        if (entry) {
          // Acknowledged with the segment open now, so a killed run's replay meets (and drops) it again.
          const open = this.#open.get(this.#openOf.get(ev.sensor) ?? "");
          if (open) open.ids.push(entry);
          else this.#ackNow.push(entry);
        }
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
        const reason = err instanceof SegmentError ? err.reason : "internal_error";
        this.#m.segDropped.inc(1, { reason });
        this.#m.accounted.inc(seg.builder.frames - seg.overlap, { sensor, outcome: reason });
        // Counted as lost: a replay would not make it again.
        void this.#reader?.ack(seg.ids);
        if (err instanceof SegmentError) this.#o.log.error(`${what} dropped: ${err.message}`);
        // A bug, not a Redis or encoder fault: counted as lost too, and reported as unexpected.
        else this.#o.onError(err, `${what} dropped`);
      })
      .finally(() => this.#marks?.done(key));
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
    const stored = await this.#writer.write(msg);
    this.#m.latency.observe((Date.now() - seg.lastArrival) / 1000);
    this.#m.segPublished.inc(1, { reason });
    this.#m.accounted.inc(b.frameIds.length - seg.overlap, { sensor, outcome: "segment" });
    // Only a segment in the durable stream frees its frames; else a later run makes it again from them.
    if (stored) await this.#reader?.ack(seg.ids);
    else if (seg.ids.length > 0) {
      o.log.warn(`the ${seg.ids.length} frame(s) of this segment stay unacknowledged on the frame stream`);
    }
    o.log.info(
      `published segment of ${sensor}: ${b.frameIds.length} frames, ${msg.info.durationS.toFixed(2)} s, ` +
        `${b.mp4Bytes} bytes, ${b.width}x${b.height} ${b.encoder} (closed: ${reason})`,
    );
  }
}
