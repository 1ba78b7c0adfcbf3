/**
 * Durable topics on Redis Streams, beside plain pub/sub: {@linkcode StreamProducer} appends a topic's
 * messages to `MSIGHT:STREAM:<topic>` (capped by length and age) and announces it in `MSIGHT:STREAMS`. The sinks
 * read them in a consumer group through the bus interface (`redis_backend/`). Design notes: docs/design.md, "Bus".
 *
 * @example
 * ```ts
 * import type { RedisBus } from "./redis.ts";
 * import { StreamProducer } from "./stream.ts";
 * declare const bus: RedisBus, bytes: Uint8Array;
 * const producer = new StreamProducer(bus.client, "aggregated_video", { maxLen: 100, maxAgeS: 3600 });
 * await producer.append(bytes);
 * ```
 * @module
 */

import type { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { joinBytes } from "../runtime/bytes.ts";
import type { CommandArg } from "./publisher.ts";

/** The hash whose fields name the topics that have a durable stream (value: JSON of the producer's caps). */
export const STREAMS_KEY = "MSIGHT:STREAMS";

/** The Redis key of a topic's stream. */
export function streamKey(topic: string): string {
  return `MSIGHT:STREAM:${topic}`;
}

/** Caps of a durable topic. */
export interface StreamCaps {
  /** Keep about this many entries (trimmed approximately, as Redis does efficiently). */
  maxLen: number;
  /** Drop entries older than this many seconds (0: no age limit). */
  maxAgeS: number;
}

/**
 * Sends a command whose binary arguments may be in pieces (a node's {@linkcode RedisBus.command}), so that a segment
 * is added to the stream without being joined into one buffer first.
 */
export type PiecewiseCommand = (args: readonly CommandArg[]) => Promise<string | null>;

/** Appends messages to a topic's stream. */
export class StreamProducer {
  #lastTrim = 0;
  #announced = false;

  /**
   * `send`, when given, carries the XADD (see {@linkcode PiecewiseCommand}); without it, ioredis does, which joins
   * the message into one more buffer.
   */
  constructor(
    readonly redis: Redis,
    readonly topic: string,
    readonly caps: StreamCaps,
    readonly send?: PiecewiseCommand,
  ) {}

  /** Marks the topic as durable in `MSIGHT:STREAMS`, so sinks started from now on read the stream. */
  async announce(): Promise<void> {
    await this.redis.hset(
      STREAMS_KEY,
      this.topic,
      JSON.stringify({ key: streamKey(this.topic), ...this.caps }),
    );
    this.#announced = true;
  }

  /**
   * Adds one message (in pieces, see `encodeMessagePieces`, or one buffer); returns its entry id. Throws when Redis is
   * unreachable (the caller counts it).
   */
  async append(message: Uint8Array | readonly Uint8Array[]): Promise<string> {
    if (!this.#announced) await this.announce();
    const key = streamKey(this.topic), maxLen = String(this.caps.maxLen);
    let id: string | null;
    if (this.send) id = await this.send(["XADD", key, "MAXLEN", "~", maxLen, "*", "d", message]);
    else {
      const bytes = message instanceof Uint8Array ? message : joinBytes(message);
      const d = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      id = await this.redis.xadd(key, "MAXLEN", "~", maxLen, "*", "d", d);
    }
    const now = Date.now();
    if (this.caps.maxAgeS > 0 && now - this.#lastTrim > 10_000) {
      this.#lastTrim = now;
      await this.redis.xtrim(streamKey(this.topic), "MINID", "~", String(now - this.caps.maxAgeS * 1000));
    }
    if (id === null) throw new Error(`XADD to ${streamKey(this.topic)} added nothing`);
    return id;
  }

  /** Forget that the topic was announced (after a Redis restart emptied it). */
  reannounce(): void {
    this.#announced = false;
  }
}

/** True when some producer has announced a durable stream for `topic`. */
export async function hasStream(redis: Redis, topic: string): Promise<boolean> {
  return (await redis.hexists(STREAMS_KEY, topic)) === 1;
}
