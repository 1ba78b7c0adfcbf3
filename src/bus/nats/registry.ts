/**
 * MSight's registry in JetStream key-value buckets, for a NATS-only deployment (no Redis): `MSIGHT_NODES` and
 * `MSIGHT_TOPICS`, keyed by the (escaped) node and topic names, values the same JSON as in Redis' `MSIGHT:NODES` /
 * `MSIGHT:TOPICS` hashes. With Redis configured the registry stays there, as MSight keeps it (`select.ts`). On a
 * cluster the buckets have replicas (`replicas.ts`).
 *
 * @module
 */

import type { NatsConnection } from "@nats-io/transport-node";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
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
  #jsm?: JetStreamManager;

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
    // The keys from one snapshot of the bucket stream's subjects. `kv.keys()` reads the stream through a consumer
    // and, while heartbeats rewrite entries, listed a key twice or missed one (its old message gone, the new one
    // after the consumer thought it was done): 13 of 30 nodes in one read under load.
    const bucket = which === "nodes" ? NODES_BUCKET : TOPICS_BUCKET;
    const prefix = `$KV.${bucket}.`;
    this.#jsm ??= await jetstreamManager(this.nc);
    const info = await this.#jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` });
    const keys = Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
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
