/**
 * The Redis Cluster back end of {@linkcode Bus}, through ioredis' `Cluster` (MSight uses redis-py's `RedisCluster`).
 * Frames go out with classic PUBLISH/SUBSCRIBE, which a cluster forwards to every node, so MSight's nodes on the
 * same cluster receive them wherever they subscribed; overlapping publishes are pipelined on one node's connection
 * (`in_flight.ts`). Durable segments are Redis Streams as on a standalone Redis,
 * under the hash-tagged key `MSIGHT:STREAM:{<topic>}`: every key of a topic lands on one slot, so each command (and
 * any multi-key command on a topic's keys) stays on one node. An append returns once one replica has the entry
 * (`WAIT 1`, up to 0.5 s), so a master killed right after does not take a stored segment with it. The registry is
 * in the hashes `MSIGHT:NODES` / `MSIGHT:TOPICS`, where MSight's `RedisCluster` client looks for it.
 *
 * @example
 * ```ts
 * import { RedisClusterBackend } from "./mod.ts";
 * import type { RedisClusterSettings } from "../select.ts";
 * import type { Logger } from "../../runtime/log.ts";
 * declare const settings: RedisClusterSettings, log: Logger, bytes: Uint8Array;
 * const bus = await RedisClusterBackend.connect(settings, log, { name: "video_dumper" });
 * await bus.publish("rtsp_topic", bytes);
 * await bus.close();
 * ```
 * @module
 */

import { Cluster, type ClusterOptions } from "ioredis";
import { Buffer } from "node:buffer";
import { joinBytes } from "../../runtime/bytes.ts";
import { errorMessage, FatalError } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { InFlightWindow } from "../in_flight.ts";
import { RedisDurableConsumer, RedisRegistry } from "../redis_backend/mod.ts";
import type { RedisClusterSettings } from "../select.ts";
import { STREAMS_KEY } from "../stream.ts";
import type {
  Bus,
  BusMessageHandler,
  BusPayload,
  DurableConsumer,
  DurableConsumerOptions,
  SegmentCaps,
  SegmentStreams,
} from "../types.ts";

/** How long an append waits for a replica to confirm it. */
const WAIT_MS = 500;

/**
 * PUBLISHes in flight at once when callers do not await each one. Small on purpose: the cluster copies each
 * PUBLISH to every node, and with 32 frames of 80 KB in flight that copying made the whole slower than one at a time
 * (3 rounds of 400 frames, 2 cores under load); 1 to 8 measured alike within the noise.
 */
export const PUBLISH_WINDOW = 4;

/** The cluster key of a topic's stream: hash-tagged on the topic, so a topic's keys share one slot. */
export function clusterStreamKey(topic: string): string {
  return `MSIGHT:STREAM:{${topic}}`;
}

const toBuffer = (m: BusPayload) => {
  const b = m instanceof Uint8Array ? m : joinBytes(m);
  // A bare Uint8Array would be sent as the text "1,2,3": ioredis needs a Buffer for binary.
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
};

function clusterOptions(s: RedisClusterSettings, name: string): ClusterOptions {
  const read = (p?: string) => (p ? Deno.readTextFileSync(p) : undefined);
  return {
    lazyConnect: true,
    enableReadyCheck: true,
    // Keep retrying forever, backing off to 2 s, as the standalone connection does.
    clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    // A failover takes the cluster node timeout or so: keep re-trying a command across it.
    retryDelayOnClusterDown: 300,
    retryDelayOnFailover: 300,
    redisOptions: {
      connectionName: name.replace(/[^A-Za-z0-9_.:-]/g, "_"),
      username: s.username,
      password: s.password,
      tls: s.tls
        ? { cert: read(s.tls.certFile), key: read(s.tls.keyFile), ca: read(s.tls.caFile) }
        : undefined,
      maxRetriesPerRequest: 3,
      // A command sent to a master just killed can wait forever on its dead connection (seen with pipelines):
      // give up after 5 s, so the caller retries on the promoted replica. Longer than any blocking read.
      commandTimeout: 5000,
    },
  };
}

async function connectCluster(c: Cluster, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      c.connect(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("no answer")), timeoutMs))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * ioredis' cluster subscriber forwards "message" as well as "messageBuffer" from its node connection, and a
 * connection with a "message" listener decodes every payload into a string as well: ~1 ms of CPU per 80 KB frame
 * (`bench/RESULTS.md`, `bus`), more than all the rest of a frame's way. Nobody here wants strings, so those
 * listeners go (checked at each message: ioredis attaches them again when it moves to another node). Internals
 * of ioredis 5.9; should they change, this finds nothing to remove and frames only cost more.
 */
function dropStringCopies(c: Cluster): void {
  type Emitter = { listenerCount(e: string): number; removeAllListeners(e: string): void };
  const node = (c as unknown as { subscriber?: { getInstance?(): Emitter | null } }).subscriber
    ?.getInstance?.();
  if (node && node.listenerCount("message") > 0) node.removeAllListeners("message");
}

/** Durable topics on a cluster's Redis Streams; see the module doc. */
export class ClusterSegments implements SegmentStreams {
  readonly #announced = new Map<string, string>();
  readonly #lastTrim = new Map<string, number>();
  /** Topics whose master had no replica lately: appends skip `WAIT` until then. */
  readonly #noReplicaUntil = new Map<string, number>();

  constructor(readonly cluster: Cluster, readonly log: Logger) {}

  async announce(topic: string, caps: SegmentCaps): Promise<void> {
    await this.cluster.hset(STREAMS_KEY, topic, JSON.stringify({ key: clusterStreamKey(topic), ...caps }));
    this.#announced.set(topic, JSON.stringify(caps));
  }

  async isAnnounced(topic: string): Promise<boolean> {
    return (await this.cluster.hexists(STREAMS_KEY, topic)) === 1;
  }

  async append(topic: string, message: BusPayload, caps: SegmentCaps): Promise<string> {
    if (this.#announced.get(topic) !== JSON.stringify(caps)) await this.announce(topic, caps);
    const key = clusterStreamKey(topic);
    const wait = Date.now() >= (this.#noReplicaUntil.get(topic) ?? 0);
    // XADD then WAIT in one pipeline, so both go to the key's master: resolved once a replica has the entry.
    const p = this.cluster.pipeline().xadd(
      key,
      "MAXLEN",
      "~",
      String(caps.maxLen),
      "*",
      "d",
      toBuffer(message),
    );
    if (wait) p.call("WAIT", "1", String(WAIT_MS));
    const res = await p.exec();
    const [addErr, id] = res?.[0] ?? [new Error("no reply"), null];
    if (addErr) {
      // ioredis re-routes single commands after a failover, not pipelines: ask the cluster where the slot is now.
      this.cluster.refreshSlotsCache();
      throw addErr;
    }
    if (typeof id !== "string") throw new Error(`XADD to ${key} added nothing`);
    if (wait && Number(res?.[1]?.[1] ?? 0) < 1) {
      // No replica answered (a master left alone after a failover): don't stall every append, look again later.
      this.#noReplicaUntil.set(topic, Date.now() + 30_000);
      this.log.warn(
        `no replica confirmed segment ${id} on ${key} within ${WAIT_MS} ms: it is on one node only`,
      );
    }
    const now = Date.now();
    if (caps.maxAgeS > 0 && now - (this.#lastTrim.get(topic) ?? 0) > 10_000) {
      this.#lastTrim.set(topic, now);
      await this.cluster.xtrim(key, "MINID", "~", String(now - caps.maxAgeS * 1000));
    }
    return id;
  }

  consumer(topic: string, opts: DurableConsumerOptions): DurableConsumer {
    // Blocking reads tie up connections: the member gets its own cluster client.
    return new RedisDurableConsumer(this.cluster.duplicate(), clusterStreamKey(topic), opts);
  }
}

/** {@linkcode Bus} over a Redis Cluster; see the module doc. */
export class RedisClusterBackend implements Bus {
  readonly kind = "redis-cluster" as const;
  readonly segments: ClusterSegments;
  readonly registry: RedisRegistry;
  #sub?: Cluster;
  readonly #handlers = new Map<string, BusMessageHandler[]>();
  readonly #window = new InFlightWindow(PUBLISH_WINDOW);
  #failed = 0;
  #failedLogged = 0;
  #closed = false;

  private constructor(
    readonly cluster: Cluster,
    readonly settings: RedisClusterSettings,
    readonly log: Logger,
  ) {
    this.segments = new ClusterSegments(cluster, log);
    this.registry = new RedisRegistry(cluster, settings.display);
    this.#watch(cluster, "Redis Cluster");
  }

  /** Connects, waiting up to `connectTimeoutS`; an unreachable cluster at startup is one fatal line. */
  static async connect(
    settings: RedisClusterSettings,
    log: Logger,
    opts: { name?: string; connectTimeoutS?: number } = {},
  ): Promise<RedisClusterBackend> {
    log.addSecret(settings.password);
    const cluster = new Cluster(settings.nodes, clusterOptions(settings, opts.name ?? "msight-node"));
    cluster.on("error", () => {/* reported through state changes, once */});
    try {
      await connectCluster(cluster, (opts.connectTimeoutS ?? 10) * 1000);
    } catch (err) {
      cluster.disconnect();
      throw new FatalError(
        `cannot reach the Redis Cluster at ${settings.display} (${errorMessage(err)}): check ` +
          `MSIGHT_REDIS_MESSAGE_BROKER_CLUSTER_NODES or --bus-url`,
      );
    }
    return new RedisClusterBackend(cluster, settings, log);
  }

  #watch(c: Cluster, label: string): void {
    let down = false;
    c.on("node error", (e: Error, node: string) => {
      if (!this.#closed) this.log.debug(`${label} node ${node}: ${errorMessage(e)}`);
    });
    c.on("close", () => {
      if (!down && !this.#closed) this.log.warn(`${label} connection closed: reconnecting`);
      down = true;
    });
    c.on("ready", () => {
      if (down && !this.#closed) this.log.info(`${label} connection restored`);
      down = false;
    });
  }

  get display(): string {
    return this.settings.display;
  }

  get ready(): boolean {
    return this.cluster.status === "ready" && (this.#sub === undefined || this.#sub.status === "ready");
  }

  /**
   * Calls may overlap (see `InFlightWindow`): up to {@linkcode PUBLISH_WINDOW} PUBLISHes are sent back to back on
   * one node's connection and answered in order; each call resolves with its own reply, or -1 (logged).
   */
  publish(topic: string, message: BusPayload): Promise<number> {
    // Fail fast while the cluster is unreachable: frames queued now would be stale when sent.
    if (this.cluster.status !== "ready") return Promise.resolve(-1);
    const bytes = toBuffer(message);
    return this.#window.run(async () => {
      // One node for every frame: ioredis sends a keyless command to any node, and two nodes forward out of order.
      // Chosen when sent, so frames waiting for room go to a node that is up then.
      const node = this.cluster.nodes("all").find((n) => n.status === "ready");
      if (!node) return -1;
      try {
        return await node.publish(topic, bytes);
      } catch (err) {
        this.#reportFailed(topic, err);
        return -1;
      }
    });
  }

  /** One line for the first failed PUBLISH, then at most one a minute with the count (the caller counts each). */
  #reportFailed(topic: string, err: unknown): void {
    this.#failed++;
    if (Date.now() - this.#failedLogged < 60_000) return;
    this.#failedLogged = Date.now();
    this.log.warn(`publish on ${topic} failed (${this.#failed} so far): ${errorMessage(err)}`);
  }

  /** Cluster pub/sub has no groups (as on a standalone Redis): every subscriber gets all. */
  async subscribe(topic: string, handler: BusMessageHandler): Promise<void> {
    if (!this.#sub) {
      const sub = this.cluster.duplicate();
      sub.on("error", () => {/* reported through state changes */});
      this.#watch(sub, "Redis Cluster subscriber");
      sub.on("messageBuffer", (channel: Buffer, message: Buffer) => {
        dropStringCopies(sub);
        const t = channel.toString();
        const bytes = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
        for (const h of this.#handlers.get(t) ?? []) h(bytes, t);
      });
      try {
        await connectCluster(sub, 10_000);
      } catch (err) {
        sub.disconnect();
        throw new FatalError(
          `cannot subscribe on the Redis Cluster at ${this.display} (${errorMessage(err)})`,
        );
      }
      this.#sub = sub;
    }
    const list = this.#handlers.get(topic) ?? [];
    list.push(handler);
    this.#handlers.set(topic, list);
    if (list.length === 1) await this.#sub.subscribe(topic);
  }

  async unsubscribe(topic: string, handler: BusMessageHandler): Promise<void> {
    const list = (this.#handlers.get(topic) ?? []).filter((h) => h !== handler);
    if (list.length > 0) return void this.#handlers.set(topic, list);
    this.#handlers.delete(topic);
    await this.#sub?.unsubscribe(topic);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of [this.#sub, this.cluster]) {
      if (!c) continue;
      if (c.status === "ready") {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          c.quit().catch((e) => this.log.debug(`quit: ${errorMessage(e)}`)),
          new Promise((r) => (timer = setTimeout(r, 1000))),
        ]);
        clearTimeout(timer);
      }
      c.disconnect();
    }
  }
}
