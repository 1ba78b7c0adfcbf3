/**
 * MSight's registry in JetStream key-value buckets, for a NATS-only deployment (no Redis): `MSIGHT_NODES` and
 * `MSIGHT_TOPICS`, keyed by the (escaped) node and topic names, values the same JSON as in Redis' `MSIGHT:NODES` /
 * `MSIGHT:TOPICS` hashes. With Redis configured the registry stays there, as MSight keeps it (`select.ts`). On a
 * cluster the buckets have replicas (`replicas.ts`).
 *
 * @module
 */

import type { NatsConnection } from "@nats-io/transport-node";
import { type KV, Kvm } from "@nats-io/kv";
import type { Logger } from "../../runtime/log.ts";
import type { NodeEntry, TopicEntry } from "../registry.ts";
import type { RegistryStore } from "../types.ts";
import { escapeName } from "./names.ts";
import { withReplicas } from "./replicas.ts";

/** The bucket of registered nodes. */
export const NODES_BUCKET = "MSIGHT_NODES";
/** The bucket of registered topics. */
export const TOPICS_BUCKET = "MSIGHT_TOPICS";

/** The registry in JetStream KV; see the module doc. */
export class NatsKvRegistry implements RegistryStore {
  readonly #kvm: Kvm;
  #nodes?: KV;
  #topics?: KV;

  constructor(readonly nc: NatsConnection, readonly display: string, readonly log?: Logger) {
    this.#kvm = new Kvm(nc);
  }

  #create(name: string): Promise<KV> {
    return withReplicas(
      this.nc,
      `JetStream KV bucket ${name}`,
      (replicas) => this.#kvm.create(name, { history: 1, replicas }),
      this.log,
    );
  }

  async #bucket(which: "nodes" | "topics"): Promise<KV> {
    if (which === "nodes") return (this.#nodes ??= await this.#create(NODES_BUCKET));
    return (this.#topics ??= await this.#create(TOPICS_BUCKET));
  }

  async getNode(name: string): Promise<NodeEntry | null> {
    const e = await (await this.#bucket("nodes")).get(escapeName(name));
    if (!e || e.operation !== "PUT") return null;
    try {
      return e.json<NodeEntry>();
    } catch {
      return null; // Not ours (or corrupt): treated as absent, overwritten at registration.
    }
  }

  async putNode(entry: NodeEntry): Promise<void> {
    await (await this.#bucket("nodes")).put(escapeName(entry.name), JSON.stringify(entry));
  }

  async deleteNode(name: string): Promise<void> {
    await (await this.#bucket("nodes")).delete(escapeName(name));
  }

  async registerTopic(entry: TopicEntry): Promise<void> {
    try {
      await (await this.#bucket("topics")).create(escapeName(entry.name), JSON.stringify(entry));
    } catch (err) {
      // `create` refuses an existing key: the first registration stays, as in MSight.
      if (!/wrong last sequence|exists/i.test(String(err))) throw err;
    }
  }

  readNodes(): Promise<NodeEntry[]> {
    return this.#readAll<NodeEntry>("nodes");
  }

  readTopics(): Promise<TopicEntry[]> {
    return this.#readAll<TopicEntry>("topics");
  }

  async #readAll<T>(which: "nodes" | "topics"): Promise<T[]> {
    const kv = await this.#bucket(which);
    // A Set: `keys()` reads the bucket's stream through a consumer, which also delivers the puts made while it
    // reads (every node's heartbeat), so a key can come twice.
    const keys = new Set<string>();
    for await (const key of await kv.keys()) keys.add(key);
    const out: T[] = [];
    for (const key of keys) {
      const e = await kv.get(key);
      if (!e || e.operation !== "PUT") continue;
      try {
        out.push(e.json<T>());
      } catch {
        // Someone else's garbage in the bucket: not ours to fail on.
      }
    }
    return out;
  }
}
