/**
 * How the aggregator puts a VideoData segment on a topic: on pub/sub (as MSight does) and, unless `stream` is off,
 * on the topic's durable stream for our sinks (see `stream.ts`). Counterpart of `segment_reader.ts`.
 *
 * `bus` is the node's standalone Redis (the stream is then `stream.ts`'s, announced again after each Redis restart)
 * or any back end through the {@linkcode Bus} interface (the stream is the back end's durable segment stream).
 *
 * A segment is held through a short Redis outage (`outageWaitMs`) rather than lost at once; one that still cannot be
 * delivered is a {@linkcode SegmentError} (`redis_unavailable`) for the caller to count.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "./redis.ts";
 * import type { Logger } from "../runtime/log.ts";
 * import type { OutgoingMessage } from "./wire.ts";
 * import { SegmentWriter } from "./segment_writer.ts";
 * declare const bus: RedisBus, log: Logger, videoData: OutgoingMessage;
 * const writer = new SegmentWriter({ bus, log, topic: "aggregated_video", stream: { maxLen: 100, maxAgeS: 3600 } });
 * await writer.start();
 * await writer.write(videoData);
 * writer.close();
 * ```
 * @module
 */

import { delay } from "../runtime/async.ts";
import { errorMessage, SegmentError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { RedisBus } from "./redis.ts";
import { type StreamCaps, StreamProducer } from "./stream.ts";
import type { Bus, BusPayload } from "./types.ts";
import { encodeMessagePieces, type OutgoingMessage } from "./wire.ts";

/** Options of a {@linkcode SegmentWriter}. */
export interface SegmentWriterOptions {
  /** A standalone Redis, or any back end through the bus interface. */
  bus: RedisBus | Bus;
  log: Logger;
  topic: string;
  /** The durable stream's caps; absent: pub/sub only. */
  stream?: StreamCaps;
  /** How long a segment waits for Redis to come back before it is given up, ms (15000). */
  outageWaitMs?: number;
}

/** Writes segments to one topic; see the module doc. */
export class SegmentWriter {
  readonly #opts: SegmentWriterOptions;
  readonly #stream?: {
    announce(): Promise<void>;
    append(pieces: BusPayload): Promise<string>;
    reannounce?(): void;
  };
  #stopReannounce?: () => void;

  constructor(opts: SegmentWriterOptions) {
    this.#opts = opts;
    const { bus, stream, topic } = opts;
    if (!stream) return;
    if ("segments" in bus) {
      this.#stream = {
        announce: () => bus.segments.announce(topic, stream),
        append: (pieces) => bus.segments.append(topic, pieces, stream),
      };
    } else this.#stream = new StreamProducer(bus.client, topic, stream, (args) => bus.command(args));
  }

  /** True when segments also go to the durable stream. */
  get durable(): boolean {
    return this.#stream !== undefined;
  }

  /** Announces the durable stream, and again after each Redis restart (which empties `MSIGHT:STREAMS`). */
  async start(): Promise<void> {
    if (!this.#stream) return;
    const stream = this.#stream;
    await stream.announce();
    // Announce again with the next segment, so sinks started later in `--transport auto` still find the durable
    // stream (else they would fall back to lossy pub/sub).
    const bus = this.#opts.bus;
    if (!("segments" in bus)) this.#stopReannounce = bus.onReconnect(() => stream.reannounce?.());
  }

  /**
   * Publishes one segment; resolves once it is on pub/sub or the stream (a stream failure after pub/sub delivery is
   * logged, not thrown), with true when it is in the durable stream (or there is none: pub/sub was all there is).
   * Throws {@linkcode SegmentError} when Redis stayed unreachable.
   */
  async write(seg: OutgoingMessage): Promise<boolean> {
    const { bus, topic, log } = this.#opts;
    // In pieces around the MP4's own pages: a segment of 1000 frames is ~30 MB, held once.
    const pieces = encodeMessagePieces(seg);
    const deadline = Date.now() + (this.#opts.outageWaitMs ?? 15_000);
    while (!bus.ready && Date.now() < deadline) await delay(200);
    let delivered = false, stored = !this.#stream;
    try {
      delivered = (await bus.publish(topic, pieces)) >= 0;
      if (this.#stream) {
        await this.#stream.append(pieces);
        delivered = stored = true;
      }
    } catch (err) {
      if (!delivered) throw new SegmentError(errorMessage(err), "redis_unavailable");
      log.warn(`segment published on pub/sub but not added to the durable stream: ${errorMessage(err)}`);
    }
    if (!delivered) throw new SegmentError("the bus is unreachable", "redis_unavailable");
    return stored;
  }

  /** Stops re-announcing; the bus itself belongs to the caller. */
  close(): void {
    this.#stopReannounce?.();
    this.#stopReannounce = undefined;
  }
}
