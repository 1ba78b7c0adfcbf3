/**
 * How a sink takes VideoData segments off a topic, durably where it can, on any back end (through {@linkcode Bus}):
 * `stream` (the topic's durable stream: a Redis Stream, or a JetStream stream on NATS, in the sink's consumer
 * group), `pubsub` (as MSight), or `auto` (stream once a producer announced one). Members of one group share the
 * segments; one a dead member left unacknowledged is taken over by another. Handlers must be idempotent: delivery
 * is at least once. Details: docs/design.md, "Bus".
 *
 * @example
 * ```ts
 * import type { Bus } from "./types.ts";
 * import type { Logger } from "../runtime/log.ts";
 * import type { Metrics } from "../runtime/metrics.ts";
 * import type { VideoData } from "./message.ts";
 * import { readSegments } from "./segment_reader.ts";
 * declare const bus: Bus, log: Logger, metrics: Metrics, signal: AbortSignal;
 * declare const store: { write(seg: VideoData): Promise<void> };
 * await readSegments({ bus, log, metrics, topic: "aggregated_video", group: "video_dumper", consumer: "video_dumper",
 *   transport: "auto", signal }, async (seg) => { await store.write(seg); });
 * ```
 * @module
 */

import type { Logger } from "../runtime/log.ts";
import type { Metrics } from "../runtime/metrics.ts";
import { delay } from "../runtime/async.ts";
import { errorMessage, isRedisPermissionError } from "../runtime/errors.ts";
import { consumeDurable } from "./durable_loop.ts";
import { Intake } from "./intake.ts";
import { VIDEO_DATA_TYPE, type VideoData } from "./message.ts";
import type { Bus } from "./types.ts";

/** Where segments are read from; see the module doc. */
export type Transport = "auto" | "stream" | "pubsub";

/** The transports, for flag choices. */
export const TRANSPORTS = ["auto", "stream", "pubsub"] as const;

/** Options of {@linkcode readSegments}. */
export interface SegmentReaderOptions {
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  topic: string;
  /** The durable stream's consumer group (the sink's `--group-id`, default its `--name`). */
  group: string;
  /** This member's name in the group (the sink's `--name`): a restart resumes its own unacknowledged segments. */
  consumer: string;
  /** On plain pub/sub, the NATS queue group (`--group-id` when given, as MSight); Redis pub/sub has none. */
  queueGroup?: string;
  /** How long a segment may stay unacknowledged with one member before another takes it over (default 60 s). */
  claimIdleMs?: number;
  transport: Transport;
  signal: AbortSignal;
  gap?: number;
  /** Segments held in memory while the handler is busy on pub/sub, before the oldest is dropped. */
  maxQueued?: number;
  /** How often `auto` checks whether a stream was announced. */
  pollMs?: number;
}

/** Makes a segment safe; throws to leave it unacknowledged (stream: retried later). */
export type SegmentHandler = (seg: VideoData) => Promise<void>;

/** Reads segments until `signal` aborts; returns after the segment in hand is handled. */
export async function readSegments(opts: SegmentReaderOptions, handler: SegmentHandler): Promise<void> {
  const { bus, log, metrics, topic, signal } = opts;
  const intake = new Intake({ topic, log, metrics, gap: opts.gap, accept: [VIDEO_DATA_TYPE] });
  const failed = metrics.counter("segments_failed_total", "Segments whose handling failed, by transport");
  const dropped = metrics.counter("segments_dropped_total", "Segments dropped before handling, by reason");
  metrics.gauge(
    "transport_stream",
    "1 when reading the durable stream, 0 on plain pub/sub",
    () => (mode === "stream" ? 1 : 0),
  );

  let mode: "stream" | "pubsub" = opts.transport === "pubsub" ? "pubsub" : "stream";
  if (opts.transport === "auto") mode = (await bus.segments.isAnnounced(topic)) ? "stream" : "pubsub";

  // --- pub/sub: a bounded queue drained by one loop, so segments are handled one at a time, in order ---
  const queue: VideoData[] = [];
  // The idle wait ends early when a segment arrives (or the reader stops); renewed once used.
  let nap = new AbortController();
  const stopNap = () => nap.abort();
  const onMessage = (bytes: Uint8Array) => {
    const msg = intake.decode(bytes);
    if (!msg || msg.dataType !== VIDEO_DATA_TYPE) return;
    queue.push(msg);
    if (queue.length > (opts.maxQueued ?? 16)) {
      const lost = queue.shift()!;
      dropped.inc(1, { reason: "queue_full" });
      log.error(
        `dropped segment ${lost.sensorName} frame_id ${lost.frameId}: the sink fell behind (pub/sub queue full)`,
      );
    }
    nap.abort();
  };

  if (mode === "pubsub") {
    await bus.subscribe(topic, onMessage, opts.queueGroup ? { group: opts.queueGroup } : {});
    signal.addEventListener("abort", stopNap, { once: true });
    log.info(
      `reading ${topic} over plain pub/sub${
        opts.transport === "auto" ? " (no durable stream announced yet)" : ""
      }: ` +
        "segments published while this node is down are lost",
    );
    let lastPoll = Date.now();
    while (!signal.aborted && mode === "pubsub") {
      const seg = queue.shift();
      if (seg) {
        try {
          await handler(seg);
        } catch (err) {
          failed.inc(1, { transport: "pubsub" });
          log.error(`segment ${seg.sensorName} frame_id ${seg.frameId} dropped: ${errorMessage(err)}`);
        }
        continue;
      }
      if (opts.transport === "auto" && Date.now() - lastPoll > (opts.pollMs ?? 5000)) {
        lastPoll = Date.now();
        // Redis unreachable for this poll: stay on pub/sub and ask again at the next one. A missing ACL
        // permission is not transient: the node stops with it.
        const found = await bus.segments.isAnnounced(topic).catch((err) => {
          if (isRedisPermissionError(err)) throw err;
          return false;
        });
        if (found) mode = "stream";
        continue;
      }
      if (nap.signal.aborted) nap = new AbortController();
      await delay(500, nap.signal);
    }
    signal.removeEventListener("abort", stopNap);
    // A connection that is down holds no subscription to drop.
    await bus.unsubscribe(topic, onMessage).catch(() => {});
    // Finish what already arrived before switching or stopping: it is in memory only.
    while (queue.length > 0) {
      const seg = queue.shift()!;
      await handler(seg).catch((err) => {
        failed.inc(1, { transport: "pubsub" });
        log.error(`segment ${seg.sensorName} frame_id ${seg.frameId} dropped: ${errorMessage(err)}`);
      });
    }
    if (signal.aborted) return;
  }

  const member = opts.consumer === opts.group ? "" : ` (member ${opts.consumer})`;
  log.info(
    `reading ${topic} from its durable stream as consumer group ${opts.group}${member}: ` +
      "resuming unacknowledged segments",
  );
  const consumer = bus.segments.consumer(topic, {
    group: opts.group,
    consumer: opts.consumer,
    log,
    claimIdleMs: opts.claimIdleMs,
  });
  // A missing ACL permission does not heal by retrying: the reader stops and the node with it.
  const stop = new AbortController();
  const abort = () => stop.abort();
  signal.addEventListener("abort", abort, { once: true });
  let refused: unknown;
  let lastError = "";
  try {
    await consumeDurable(consumer, async (entry) => {
      const msg = intake.decode(entry.bytes);
      if (!msg || msg.dataType !== VIDEO_DATA_TYPE) return; // counted by the intake; acknowledged so it is not retried
      try {
        await handler(msg);
        lastError = "";
      } catch (err) {
        failed.inc(1, { transport: "stream" });
        const text = errorMessage(err);
        if (text !== lastError) {
          log.error(`segment ${msg.sensorName} (entry ${entry.id}) not saved yet, will retry: ${text}`);
        }
        lastError = text;
        throw err;
      }
    }, {
      signal: stop.signal,
      log,
      claimIdleMs: opts.claimIdleMs,
      onError: (err, entry) => {
        if (entry) return; // the handler's failure, logged above
        if (isRedisPermissionError(err)) {
          refused = err;
          stop.abort();
        } else log.debug(`stream read: ${errorMessage(err)}`);
      },
    });
  } finally {
    signal.removeEventListener("abort", abort);
    await consumer.close();
  }
  if (refused !== undefined) throw refused;
}
