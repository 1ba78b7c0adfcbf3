/**
 * The RTSP node's loop: camera → ffmpeg (decode, scale, JPEG) → {@linkcode RtspCapture} (frames + capture times) →
 * ImageData → bus. Frames are published one at a time, in order; if Redis is slower than the camera the capture
 * queue drops the oldest frames and counts them. While the bus is unreachable frames are counted as not published.
 * With `frameStream` (the default between our nodes, on a standalone Redis) each frame also goes, in the same write,
 * to the topic's durable stream (`frame_stream.ts`), from which our aggregator rebuilds what a crash interrupted.
 * On other back ends frames go through the bus interface's plain publish only (core NATS, cluster PUBLISH).
 *
 * @example
 * ```ts
 * import type { Bus } from "../bus/types.ts";
 * import type { Logger } from "../runtime/log.ts";
 * import type { Metrics } from "../runtime/metrics.ts";
 * import type { Snowflake } from "../bus/snowflake.ts";
 * import { FramePublisher } from "./frame_publisher.ts";
 * declare const bus: Bus, log: Logger, metrics: Metrics, ids: Snowflake, signal: AbortSignal;
 * const pub = new FramePublisher({ bus, log, metrics, ids, device: "edge-1", topic: "rtsp_topic",
 *   sensorName: "rtsp_sensor", gap: 0, frameLogEvery: 0, capture: { url: "rtsp://127.0.0.1:8554/live.stream" } });
 * await pub.run(signal); // until signal aborts
 * ```
 * @module
 */

import { localIsoMicros } from "../bus/describe.ts";
import { IMAGE_DATA_TYPE, type ImageData } from "../bus/message.ts";
import type { RedisBus } from "../bus/redis.ts";
import type { BusPayload } from "../bus/types.ts";
import type { Snowflake } from "../bus/snowflake.ts";
import { encodeMessagePieces } from "../bus/wire.ts";
import { type FrameStreamCaps, FrameStreamProducer } from "../bus/frame_stream.ts";
import type { Readiness } from "../runtime/health_server.ts";
import type { Logger } from "../runtime/log.ts";
import type { Counter, Histogram, Metrics } from "../runtime/metrics.ts";
import { type CaptureOptions, describeCaptureEvent, RtspCapture } from "./rtsp_capture.ts";

/** Options of a {@linkcode FramePublisher} (the RTSP node's flags, and what the node runtime gives it). */
export interface FramePublisherOptions {
  /** Where frames are published: the bus, any back end (a receiver count, or -1 when not sent). */
  bus: { publish(topic: string, message: BusPayload): Promise<number> };
  /** The standalone Redis under `bus`, when it is one: the durable frame stream needs it. */
  redis?: RedisBus;
  log: Logger;
  metrics: Metrics;
  ids: Snowflake;
  /** The device name put in each ImageData. */
  device: string;
  /** Where frames are published (`--publish-topic`). */
  topic: string;
  sensorName: string;
  /** Frames skipped between two published (`--gap`). */
  gap: number;
  /** Log one line every this many published frames (0: never). */
  frameLogEvery: number;
  /** Caps of the topic's durable frame stream (see `frame_stream.ts`, needs `redis`); absent: pub/sub only. */
  frameStream?: FrameStreamCaps;
  /** The camera; its events and ffmpeg's lines go to `log`. */
  capture: Omit<CaptureOptions, "onEvent" | "onFfmpegLine">;
}

/** Publish times, s: a JPEG frame takes a few ms, a raw one more. */
const PUBLISH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

/** One camera's frames onto the bus; see the module doc. Owns its capture: {@linkcode run} stops it. */
export class FramePublisher {
  readonly #o: FramePublisherOptions;
  readonly #capture: RtspCapture;
  readonly #stallTimeoutS: number;
  readonly #m: {
    published: Counter;
    notPublished: Counter;
    skipped: Counter;
    publishSeconds: Histogram;
  };

  constructor(opts: FramePublisherOptions) {
    this.#o = opts;
    const log = opts.log;
    const m = opts.metrics;
    this.#m = {
      published: m.counter("frames_published_total", "Frames published on the bus"),
      notPublished: m.counter("frames_not_published_total", "Frames lost because Redis was unreachable"),
      skipped: m.counter("frames_skipped_total", "Frames skipped by --gap"),
      publishSeconds: m.histogram("publish_seconds", "Time to encode and publish one frame", PUBLISH_BUCKETS),
    };
    this.#stallTimeoutS = opts.capture.stallTimeoutS ?? 10;
    this.#capture = new RtspCapture({
      ...opts.capture,
      onEvent: (e) => {
        const line = describeCaptureEvent(e);
        if (e.type === "cuda-unavailable" || e.type === "stalled" || e.type === "retrying") log.warn(line);
        else log.info(line);
      },
      onFfmpegLine: (l) => log.debug(`ffmpeg: ${"text" in l ? l.text : JSON.stringify(l)}`),
    });
    const stats = () => this.#capture.stats();
    m.gauge("frames_received_total", "Frames received from the camera", () => stats().framesReceived);
    m.gauge(
      "frames_dropped_total",
      "Frames dropped because publishing fell behind the camera",
      () => stats().framesDropped,
    );
    m.gauge("reconnects_total", "Reconnections to the camera", () => stats().reconnects);
    m.gauge("stalls_total", "Times the camera went silent for --stall-timeout", () => stats().stalls);
    m.gauge("decode_errors_total", "Decoder errors reported by ffmpeg", () => stats().decodeErrors);
    m.gauge(
      "unpaired_frames_total",
      "Frames and ffmpeg frame reports that did not pair (frames then carry their read time)",
      () => stats().unpaired,
    );
    m.gauge("fps", "Frames per second received, smoothed", () => stats().fps);
    m.gauge("last_frame_age_seconds", "Seconds since the last frame (-1 before the first)", () => {
      const t = stats().lastFrameAt;
      return t === undefined ? -1 : Date.now() / 1000 - t;
    });
    m.gauge("cuda_decode", "1 while decoding with CUDA", () => (stats().cuda ? 1 : 0));
  }

  /** Ready while the camera streams and its last frame is younger than the stall timeout. */
  readiness(): Readiness {
    const s = this.#capture.stats();
    if (s.state !== "streaming") return { ok: false, reason: `camera ${s.state}` };
    const age = s.lastFrameAt === undefined ? Infinity : Date.now() / 1000 - s.lastFrameAt;
    return age < this.#stallTimeoutS
      ? { ok: true }
      : { ok: false, reason: `no frame for ${age.toFixed(1)} s` };
  }

  /** Starts the camera and publishes its frames until `signal` aborts; the camera is stopped on return. */
  async run(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const { published, notPublished, skipped, publishSeconds } = this.#m;
    const capture = this.#capture;
    const stream = o.frameStream && o.redis
      ? new FrameStreamProducer(o.redis, o.topic, o.sensorName, o.frameStream, o.log)
      : undefined;
    if (stream) {
      await stream.start();
      o.log.info(
        `frames also go to the durable stream ${stream.key} (kept ${o.frameStream!.maxAgeS} s, ` +
          `≤ ${(o.frameStream!.maxBytes / 2 ** 20).toFixed(0)} MiB)`,
      );
    }
    await capture.start();
    const stop = () => void capture.stop();
    // A stop that came during start() has already fired: stop now, or an unreachable camera would be waited for.
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
    let n = 0;
    let lostWhileDown = 0;
    for await (const frame of capture) {
      if (signal.aborted) break;
      if (o.gap > 0 && n++ % (o.gap + 1) !== 0) {
        skipped.inc();
        continue;
      }
      const t0 = performance.now();
      const msg: ImageData = {
        dataType: IMAGE_DATA_TYPE,
        sensorName: o.sensorName,
        captureTimestamp: frame.captureTime,
        creationTimestamp: Date.now() / 1000,
        frameId: o.ids.next(),
        deviceName: o.device,
        image: frame.data,
        isEncoded: frame.format === "jpeg",
        detectionResults: null,
        size: [frame.height, frame.width, 3],
      };
      let receivers: number;
      try {
        // In pieces around the JPEG: the publisher copies them once, into a request buffer it reuses.
        const pieces = encodeMessagePieces(msg);
        receivers = stream ? await stream.publish(pieces) : await o.bus.publish(o.topic, pieces);
      } catch {
        receivers = -1; // counted and reported below, as for a Redis that is down
      }
      publishSeconds.observe((performance.now() - t0) / 1000);
      if (receivers < 0) {
        notPublished.inc();
        if (signal.aborted) continue; // stopping (an ACL refusal stops the node: already said)
        if (lostWhileDown++ === 0) {
          o.log.warn("the bus is unreachable: frames are not published until it is back");
        }
        continue;
      }
      if (lostWhileDown > 0) {
        o.log.info(`publishing again after ${lostWhileDown} frame(s) lost while the bus was unreachable`);
        lostWhileDown = 0;
      }
      published.inc();
      if (o.frameLogEvery > 0 && published.get() % o.frameLogEvery === 0) {
        o.log.info(
          `Got image from ${o.sensorName}, the image shape is (${frame.height}, ${frame.width}, 3), time: ${
            localIsoMicros(frame.captureTime)
          }`,
        );
      }
    }
    signal.removeEventListener("abort", stop);
    await capture.stop();
    stream?.close();
  }
}
