/**
 * Durable topics on Redis Streams, beside plain pub/sub: {@linkcode StreamProducer} appends a topic's
 * messages to `MSIGHT:STREAM:<topic>` (capped by length and age) and announces it in `MSIGHT:STREAMS`;
 * {@linkcode StreamConsumer} reads them in a consumer group named after the sink and acknowledges an entry
 * only after its handler resolved (at least once). Design notes: docs/design.md, "Bus".
 *
 * @example
 * ```ts
 * import type { RedisBus } from "./redis.ts";
 * import type { Logger } from "../runtime/log.ts";
 * import { StreamConsumer, StreamProducer } from "./stream.ts";
 * declare const bus: RedisBus, log: Logger, bytes: Uint8Array, signal: AbortSignal;
 * declare function save(bytes: Uint8Array): Promise<void>;
 * const producer = new StreamProducer(bus.client, "aggregated_video", { maxLen: 100, maxAgeS: 3600 });
 * await producer.append(bytes);
 * const consumer = new StreamConsumer(bus.client, "aggregated_video", { group: "video_dumper", consumer: "video_dumper", log });
 * await consumer.run(async (bytes, id) => { await save(bytes); }, signal);
 * ```
 * @module
 */

import type { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { delay } from "../runtime/async.ts";
import { joinBytes } from "../runtime/bytes.ts";
import type { CommandArg } from "./publisher.ts";
import { errorMessage, isRedisPermissionError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";

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

/** Options of a {@linkcode StreamConsumer}. */
export interface StreamConsumerOptions {
  /** The consumer group: the sink's `--name`, so each sink keeps its own position. */
  group: string;
  /** This consumer's name within the group; a stable name resumes its own pending entries after a restart. */
  consumer: string;
  log: Logger;
  /** Where a new group starts: `0` (everything the stream still holds) or `$` (only new entries). */
  startId?: "0" | "$";
  /** Claim entries that another consumer has held unacknowledged for this long (it probably crashed). */
  claimIdleMs?: number;
  /** Entries read per call. */
  batch?: number;
  /** How long one blocking read waits, so shutdown is noticed promptly. */
  blockMs?: number;
}

/** Handles one entry; resolve only once the message is safe (it is then acknowledged). */
export type EntryHandler = (bytes: Uint8Array, id: string) => Promise<void>;

type XEntry = [Buffer, Buffer[]];

/** Reads a topic's stream in a consumer group; see the module doc. */
export class StreamConsumer {
  readonly #conn: Redis;
  #groupReady = false;
  #lastClaim = 0;
  /** Entries handled and acknowledged. */
  acked = 0;
  /** Entries taken over from another consumer. */
  claimed = 0;

  constructor(redis: Redis, readonly topic: string, readonly opts: StreamConsumerOptions) {
    // Blocking reads tie up a connection: give them their own.
    this.#conn = redis.duplicate({
      connectionName: `${opts.consumer}:stream`.replace(/[^A-Za-z0-9_.:-]/g, "_"),
    });
    this.#conn.on("error", () => {/* reported by the node's main connection */});
  }

  async #ensureGroup(): Promise<void> {
    if (this.#groupReady) return;
    try {
      await this.#conn.xgroup(
        "CREATE",
        streamKey(this.topic),
        this.opts.group,
        this.opts.startId ?? "0",
        "MKSTREAM",
      );
      this.opts.log.info(`created consumer group ${this.opts.group} on ${streamKey(this.topic)}`);
    } catch (err) {
      if (!/BUSYGROUP/.test(errorMessage(err))) throw err;
    }
    this.#groupReady = true;
  }

  async #read(id: string): Promise<XEntry[]> {
    // ioredis types no Buffer variant of XREADGROUP: call it raw, so payloads stay binary.
    const res = await this.#conn.callBuffer(
      "XREADGROUP",
      "GROUP",
      this.opts.group,
      this.opts.consumer,
      "COUNT",
      String(this.opts.batch ?? 8),
      ...(id === ">" ? ["BLOCK", String(this.opts.blockMs ?? 1000)] : []),
      "STREAMS",
      streamKey(this.topic),
      id,
    ) as [Buffer, XEntry[]][] | null;
    return res?.[0]?.[1] ?? [];
  }

  async #handle(entries: XEntry[], handler: EntryHandler, signal: AbortSignal): Promise<void> {
    for (const [idBuf, fields] of entries) {
      if (signal.aborted) return;
      const id = idBuf.toString();
      // An entry trimmed away while pending comes back with no fields: nothing to do but acknowledge it.
      let data: Buffer | undefined;
      for (let i = 0; fields && i + 1 < fields.length; i += 2) {
        if (fields[i].toString() === "d") data = fields[i + 1];
      }
      if (data) await handler(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), id);
      await this.#conn.xack(streamKey(this.topic), this.opts.group, id);
      this.acked++;
    }
  }

  async #claim(handler: EntryHandler, signal: AbortSignal): Promise<void> {
    const idle = this.opts.claimIdleMs ?? 60_000;
    if (Date.now() - this.#lastClaim < Math.min(idle, 10_000)) return;
    this.#lastClaim = Date.now();
    const res = await this.#conn.callBuffer(
      "XAUTOCLAIM",
      streamKey(this.topic),
      this.opts.group,
      this.opts.consumer,
      String(idle),
      "0",
      "COUNT",
      String(this.opts.batch ?? 8),
    ) as [Buffer, XEntry[]];
    const entries = (res?.[1] ?? []).filter((e) => e !== null);
    if (entries.length > 0) {
      this.claimed += entries.length;
      this.opts.log.warn(
        `took over ${entries.length} segment(s) left unacknowledged by another consumer of ${this.opts.group}`,
      );
      await this.#handle(entries, handler, signal);
    }
  }

  /**
   * Runs until `signal` aborts: own pending entries first, then new ones. A handler error leaves the entry
   * unacknowledged (it is retried after `retryMs`) and is passed to `onError`. Redis outages are waited out.
   */
  async run(
    handler: EntryHandler,
    signal: AbortSignal,
    onError: (err: unknown, id?: string) => void = () => {},
    retryMs = 2000,
  ): Promise<void> {
    let backlog = true;
    while (!signal.aborted) {
      try {
        await this.#ensureGroup();
        if (backlog) {
          // Our own pending entries (delivered before a crash, never acknowledged).
          const mine = await this.#read("0");
          if (mine.length === 0) backlog = false;
          else {
            await this.#handle(mine, handler, signal);
            continue;
          }
        }
        await this.#claim(handler, signal);
        const fresh = await this.#read(">");
        await this.#handle(fresh, handler, signal);
      } catch (err) {
        if (signal.aborted) break;
        // A missing ACL permission does not heal by retrying: the node stops with it.
        if (isRedisPermissionError(err)) throw err;
        const msg = errorMessage(err);
        // After a Redis restart the stream and group are gone: create them again and re-read from the start.
        if (/NOGROUP/.test(msg)) this.#groupReady = false;
        backlog = true;
        onError(err);
        await delay(retryMs, signal);
      }
    }
  }

  /** Closes the consumer's connection. */
  close(): void {
    this.#conn.disconnect();
  }
}
