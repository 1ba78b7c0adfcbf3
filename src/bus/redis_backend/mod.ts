/**
 * The standalone Redis back end of {@linkcode Bus}: the node's {@linkcode RedisBus} (pub/sub on channels named after
 * topics, as MSight's `RedisPubSub`), the durable topics on Redis Streams (`stream.ts`: `MSIGHT:STREAM:<topic>`,
 * consumer groups) and the registry in the hashes `MSIGHT:NODES` / `MSIGHT:TOPICS` (`registry.ts`).
 *
 * @example
 * ```ts
 * import { RedisBackend } from "./mod.ts";
 * import { RedisBus } from "../redis.ts";
 * import type { RedisSettings } from "../../runtime/env.ts";
 * import type { Logger } from "../../runtime/log.ts";
 * declare const settings: RedisSettings, log: Logger, bytes: Uint8Array;
 * const bus = new RedisBackend(await RedisBus.connect(settings, log, { publisher: true }));
 * await bus.publish("rtsp_topic", bytes);
 * await bus.close();
 * ```
 * @module
 */

import type { Cluster, Redis } from "ioredis";
import { Buffer } from "node:buffer";
import type { RedisBus } from "../redis.ts";
import { type NodeEntry, NODES_KEY, type TopicEntry, TOPICS_KEY } from "../registry.ts";
import { hasStream, streamKey, StreamProducer } from "../stream.ts";
import { errorMessage } from "../../runtime/errors.ts";
import type {
  Bus,
  BusMessageHandler,
  BusPayload,
  DurableConsumer,
  DurableConsumerOptions,
  DurableEntry,
  RegistryStore,
  SegmentCaps,
  SegmentStreams,
  SubscribeOptions,
} from "../types.ts";

/** `MSIGHT:NODES` / `MSIGHT:TOPICS` in Redis hashes, as MSight keeps them (standalone or cluster). */
export class RedisRegistry implements RegistryStore {
  constructor(readonly redis: Redis | Cluster, readonly display: string) {}

  async getNode(name: string): Promise<NodeEntry | null> {
    const text = await this.redis.hget(NODES_KEY, name);
    return text ? parseJson<NodeEntry>(text) : null;
  }

  async putNode(entry: NodeEntry): Promise<void> {
    await this.redis.hset(NODES_KEY, entry.name, JSON.stringify(entry));
  }

  async deleteNode(name: string): Promise<void> {
    await this.redis.hdel(NODES_KEY, name);
  }

  async registerTopic(entry: TopicEntry): Promise<void> {
    await this.redis.hsetnx(TOPICS_KEY, entry.name, JSON.stringify(entry));
  }

  async readNodes(): Promise<NodeEntry[]> {
    return parseAll<NodeEntry>(await this.redis.hgetall(NODES_KEY));
  }

  async readTopics(): Promise<TopicEntry[]> {
    return parseAll<TopicEntry>(await this.redis.hgetall(TOPICS_KEY));
  }
}

function parseJson<T>(text: string): T | null {
  try {
    return JSON.parse(text) as T;
  } catch {
    return null; // Someone else's garbage (or a corrupt entry): treated as absent.
  }
}

function parseAll<T>(hash: Record<string, string>): T[] {
  return Object.values(hash).map((v) => parseJson<T>(v)).filter((v): v is T => v !== null);
}

type XEntry = [Buffer, Buffer[] | null];

/**
 * A member of a consumer group on one Redis Stream key. `conn` is the member's own connection (blocking reads tie
 * it up), standalone or cluster; the member closes it. Every command names the one key, so on a cluster each
 * stays on the key's slot.
 */
export class RedisDurableConsumer implements DurableConsumer {
  #groupReady = false;
  claimed = 0;

  constructor(readonly conn: Redis | Cluster, readonly key: string, readonly opts: DurableConsumerOptions) {
    conn.on("error", () => {/* reported by the node's main connection */});
  }

  async #ensureGroup(): Promise<void> {
    if (this.#groupReady) return;
    try {
      await this.conn.call(
        "XGROUP",
        "CREATE",
        this.key,
        this.opts.group,
        this.opts.start === "new" ? "$" : "0",
        "MKSTREAM",
      );
      this.opts.log.info(`created consumer group ${this.opts.group} on ${this.key}`);
    } catch (err) {
      if (!/BUSYGROUP/.test(errorMessage(err))) throw err;
    }
    this.#groupReady = true;
  }

  #entries(raw: XEntry[]): DurableEntry[] {
    const out: DurableEntry[] = [];
    for (const [idBuf, fields] of raw) {
      let data: Buffer | undefined;
      for (let i = 0; fields && i + 1 < fields.length; i += 2) {
        if (fields[i].toString() === "d") data = fields[i + 1];
      }
      // An entry trimmed away while pending comes back without fields: empty, acknowledged by the loop.
      out.push({
        id: idBuf.toString(),
        bytes: data ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(0),
      });
    }
    return out;
  }

  async #xread(id: string, max: number, blockMs: number): Promise<DurableEntry[]> {
    // ioredis types no Buffer variant of XREADGROUP: call it raw, so payloads stay binary.
    const res = await this.conn.callBuffer(
      "XREADGROUP",
      "GROUP",
      this.opts.group,
      this.opts.consumer,
      "COUNT",
      String(max),
      ...(id === ">" ? ["BLOCK", String(blockMs)] : []),
      "STREAMS",
      this.key,
      id,
    ) as [Buffer, XEntry[]][] | null;
    return this.#entries(res?.[0]?.[1] ?? []);
  }

  async read(max: number, blockMs: number): Promise<DurableEntry[]> {
    try {
      await this.#ensureGroup();
      // Our own pending entries first: delivered before a crash, or whose handler failed.
      const mine = await this.#xread("0", max, 0);
      return mine.length > 0 ? mine : await this.#xread(">", max, blockMs);
    } catch (err) {
      // After a Redis restart (or a failover that lost it) the stream and its group are gone: create them again.
      if (/NOGROUP/.test(errorMessage(err))) this.#groupReady = false;
      throw err;
    }
  }

  async ack(entry: DurableEntry): Promise<void> {
    await this.conn.call("XACK", this.key, this.opts.group, entry.id);
  }

  async claim(idleMs: number, max: number): Promise<DurableEntry[]> {
    await this.#ensureGroup();
    const res = await this.conn.callBuffer(
      "XAUTOCLAIM",
      this.key,
      this.opts.group,
      this.opts.consumer,
      String(idleMs),
      "0",
      "COUNT",
      String(max),
    ) as [Buffer, (XEntry | null)[]];
    const got = this.#entries((res?.[1] ?? []).filter((e): e is XEntry => e !== null));
    this.claimed += got.length;
    return got;
  }

  async touch(entry: DurableEntry): Promise<void> {
    // Claiming it to ourselves with no idle time resets its idle clock.
    await this.conn.call("XCLAIM", this.key, this.opts.group, this.opts.consumer, "0", entry.id, "JUSTID");
  }

  close(): Promise<void> {
    this.conn.disconnect();
    return Promise.resolve();
  }
}

/** Durable topics on Redis Streams. */
export class RedisSegments implements SegmentStreams {
  readonly #producers = new Map<string, StreamProducer>();

  constructor(readonly bus: RedisBus) {}

  #producer(topic: string, caps: SegmentCaps): StreamProducer {
    let p = this.#producers.get(topic);
    if (!p || p.caps.maxLen !== caps.maxLen || p.caps.maxAgeS !== caps.maxAgeS) {
      p = new StreamProducer(this.bus.client, topic, caps, (args) => this.bus.command(args));
      this.#producers.set(topic, p);
    }
    return p;
  }

  announce(topic: string, caps: SegmentCaps): Promise<void> {
    return this.#producer(topic, caps).announce();
  }

  isAnnounced(topic: string): Promise<boolean> {
    return hasStream(this.bus.client, topic);
  }

  append(topic: string, message: BusPayload, caps: SegmentCaps): Promise<string> {
    return this.#producer(topic, caps).append(message);
  }

  consumer(topic: string, opts: DurableConsumerOptions): DurableConsumer {
    const conn = this.bus.client.duplicate({
      connectionName: `${opts.consumer}:stream`.replace(/[^A-Za-z0-9_.:-]/g, "_"),
    });
    return new RedisDurableConsumer(conn, streamKey(topic), opts);
  }
}

/** {@linkcode Bus} over one standalone Redis. */
export class RedisBackend implements Bus {
  readonly kind = "redis" as const;
  readonly segments: RedisSegments;
  readonly registry: RedisRegistry;

  constructor(readonly redis: RedisBus) {
    this.segments = new RedisSegments(redis);
    this.registry = new RedisRegistry(redis.client, redis.settings.display);
  }

  get display(): string {
    return this.redis.settings.display;
  }

  get ready(): boolean {
    return this.redis.ready;
  }

  publish(topic: string, message: BusPayload): Promise<number> {
    return this.redis.publish(topic, message);
  }

  /** Redis pub/sub has no groups (MSight's `RedisPubSub` ignores `group_id` too): every subscriber gets all. */
  subscribe(topic: string, handler: BusMessageHandler, _opts?: SubscribeOptions): Promise<void> {
    return this.redis.subscribe(topic, handler);
  }

  unsubscribe(topic: string, handler: BusMessageHandler): Promise<void> {
    return this.redis.unsubscribe(topic, handler);
  }

  close(): Promise<void> {
    return this.redis.close();
  }
}
