/**
 * MSight's node and topic registries, so `msight_status` (and our `status`) list our nodes: `MSIGHT:NODES` maps a
 * node name to `{"name","device","publish_topic","subscribe_topic","type","last_heartbeat","status"}`, and
 * `MSIGHT:TOPICS` a topic name to `{"name","description","data_type"}`, both as JSON text in Redis hashes.
 *
 * Each heartbeat rewrites the whole entry (MSight reads, edits and writes it back), so after a Redis restart that
 * lost the hash our node reappears by itself at the next heartbeat.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "./redis.ts";
 * import type { Logger } from "../runtime/log.ts";
 * import { NodeRegistration } from "./registry.ts";
 * declare const bus: RedisBus, log: Logger;
 * const reg = new NodeRegistration(bus, { name: "rtsp_node", device: "edge-1", type: "RTSPSourceNode",
 *   publishTopic: "rtsp_topic", subscribeTopic: null }, log);
 * await reg.register();
 * reg.startHeartbeat(10);
 * await reg.unregister();
 * ```
 * @module
 */

import type { Logger } from "../runtime/log.ts";
import { errorMessage } from "../runtime/errors.ts";
import type { RedisBus } from "./redis.ts";

/** The hash of registered nodes. */
export const NODES_KEY = "MSIGHT:NODES";
/** The hash of registered topics. */
export const TOPICS_KEY = "MSIGHT:TOPICS";

/** A node's entry in `MSIGHT:NODES`, as MSight writes it. */
export interface NodeEntry {
  name: string;
  device: string;
  publish_topic: string | string[] | null;
  subscribe_topic: string | null;
  type: string;
  last_heartbeat: number;
  status: "REGISTERED" | "RUNNING" | "STOPPED" | "ERROR";
}

/** A topic's entry in `MSIGHT:TOPICS`. */
export interface TopicEntry {
  name: string;
  description: string | null;
  data_type: string;
}

/** What a node says about itself when it registers. */
export interface NodeIdentity {
  name: string;
  device: string;
  type: string;
  publishTopic: string | null;
  subscribeTopic: string | null;
}

/** Registers a topic unless it is already there (MSight keeps the first registration). */
export async function registerTopic(bus: RedisBus, topic: TopicEntry): Promise<void> {
  await bus.client.hsetnx(TOPICS_KEY, topic.name, JSON.stringify(topic));
}

/** Reads every registered node (entries that are not valid JSON are skipped). */
export async function readNodes(bus: RedisBus): Promise<NodeEntry[]> {
  return parseHash<NodeEntry>(await bus.readHash(NODES_KEY));
}

/** Reads every registered topic. */
export async function readTopics(bus: RedisBus): Promise<TopicEntry[]> {
  return parseHash<TopicEntry>(await bus.readHash(TOPICS_KEY));
}

function parseHash<T>(h: Record<string, string>): T[] {
  const out: T[] = [];
  for (const v of Object.values(h)) {
    try {
      out.push(JSON.parse(v) as T);
    } catch {
      // Someone else's garbage in the hash: not ours to fail on.
    }
  }
  return out;
}

/** One node's registration and heartbeat; the owner calls {@linkcode NodeRegistration.unregister} on stop. */
export class NodeRegistration {
  #timer?: ReturnType<typeof setInterval>;
  #status: NodeEntry["status"] = "REGISTERED";

  readonly #redis: RedisBus["client"];

  constructor(bus: RedisBus, readonly id: NodeIdentity, readonly log: Logger) {
    this.#redis = bus.client;
  }

  #entry(): NodeEntry {
    return {
      name: this.id.name,
      device: this.id.device,
      publish_topic: this.id.publishTopic,
      subscribe_topic: this.id.subscribeTopic,
      type: this.id.type,
      last_heartbeat: Date.now() / 1000,
      status: this.#status,
    };
  }

  /** Writes the entry; warns when a live node of the same name is already registered. */
  async register(): Promise<void> {
    const existing = await this.#redis.hget(NODES_KEY, this.id.name);
    if (existing) {
      try {
        const e = JSON.parse(existing) as NodeEntry;
        const age = Date.now() / 1000 - e.last_heartbeat;
        this.log.warn(
          `a node named ${this.id.name} is already registered (heartbeat ${
            age.toFixed(0)
          } s ago on ${e.device}): ` +
            `a previous run did not stop cleanly, or two nodes share this name`,
        );
      } catch {
        // Unparseable entry: overwrite it.
      }
    }
    await this.#redis.hset(NODES_KEY, this.id.name, JSON.stringify(this.#entry()));
  }

  /** Sets the status and rewrites the entry now. */
  async setStatus(status: NodeEntry["status"]): Promise<void> {
    this.#status = status;
    await this.#beat();
  }

  async #beat(): Promise<void> {
    if (this.#redis.status !== "ready") return;
    try {
      await this.#redis.hset(NODES_KEY, this.id.name, JSON.stringify(this.#entry()));
    } catch (err) {
      this.log.debug(`heartbeat failed: ${errorMessage(err)}`);
    }
  }

  /** Rewrites the entry every `intervalS` seconds until unregistered. */
  startHeartbeat(intervalS: number): void {
    clearInterval(this.#timer);
    this.#timer = setInterval(() => void this.#beat(), Math.max(0.1, intervalS) * 1000);
  }

  /** Stops the heartbeat and removes the entry (on a graceful stop). */
  async unregister(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#redis.status !== "ready") return;
    try {
      await this.#redis.hdel(NODES_KEY, this.id.name);
    } catch (err) {
      this.log.warn(`could not unregister: ${errorMessage(err)}`);
    }
  }
}
