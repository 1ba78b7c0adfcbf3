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
 * import type { Bus } from "./types.ts";
 * import type { Logger } from "../runtime/log.ts";
 * import { NodeRegistration } from "./registry.ts";
 * declare const bus: Bus, log: Logger;
 * const reg = new NodeRegistration(bus.registry, () => bus.ready, { name: "rtsp_node", device: "edge-1",
 *   type: "RTSPSourceNode", publishTopic: "rtsp_topic", subscribeTopic: null }, log);
 * await reg.register();
 * reg.startHeartbeat(10);
 * await reg.unregister();
 * ```
 * @module
 */

import type { Logger } from "../runtime/log.ts";
import { errorMessage } from "../runtime/errors.ts";

/** The hash of registered nodes. */
export const NODES_KEY = "MSIGHT:NODES";
/** The hash of registered topics. */
export const TOPICS_KEY = "MSIGHT:TOPICS";

/** A node's entry in `MSIGHT:NODES`, as MSight writes it, plus two keys of ours (MSight ignores unknown keys). */
export interface NodeEntry {
  name: string;
  device: string;
  publish_topic: string | string[] | null;
  subscribe_topic: string | null;
  /** The node's class name; ours use MSight's (`RTSPSourceNode`, `VideoLocalDumperSinkNode`, ...). */
  type: string;
  last_heartbeat: number;
  status: "REGISTERED" | "RUNNING" | "STOPPED" | "ERROR";
  /** `msight-edge` on our entries: how `status` tells ours from MSight's of the same class. */
  impl?: string;
  /** Our heartbeat period in seconds (a timer; MSight's counts loop iterations). */
  heartbeat_interval_s?: number;
}

/** The `impl` of our entries. */
export const OUR_IMPL = "msight-edge";
/** MSight's SourceNode default `heartbeat_tolerance` (s): past it, MSight's own monitor marks a source ERROR. */
export const MSIGHT_SOURCE_TOLERANCE_S = 60;

/** How `status` judges an entry: the status to show and the rule of that kind of node. */
export interface NodeJudgement {
  status: NodeEntry["status"] | "STALE";
  rule: string;
}

/**
 * Judges an entry by the rules of the node that wrote it. Ours beat on a timer: STALE when the heartbeat is older
 * than max(`staleAfterS`, 1.5 periods). MSight's sources beat every 10 frames: STALE past max(`staleAfterS`, 60 s,
 * MSight's own tolerance for sources). MSight's aggregators and sinks beat every `--heartbeat-update-interval`
 * *messages* (none at all while their topic is quiet; every ~50 s for a sink at buffer 50), and MSight never judges
 * them by age: their status is shown as MSight writes it, as MSight's own status does.
 *
 * @example
 * ```ts
 * import { judgeNode } from "./registry.ts";
 * judgeNode({ name: "d", device: "x", publish_topic: null, subscribe_topic: "v", type: "VideoLocalDumperSinkNode",
 *   last_heartbeat: 0, status: "RUNNING" }, 50, 15).status; // => "RUNNING" (MSight sink: counts messages)
 * ```
 */
export function judgeNode(e: NodeEntry, nowS: number, staleAfterS: number): NodeJudgement {
  const age = nowS - e.last_heartbeat;
  if (e.impl === OUR_IMPL) {
    const period = e.heartbeat_interval_s ?? 10;
    const limit = Math.max(staleAfterS, 1.5 * period);
    return {
      status: e.status === "RUNNING" && age > limit ? "STALE" : e.status,
      rule: `ours: beats every ${period} s, stale after ${limit} s`,
    };
  }
  const source = e.publish_topic !== null && !e.subscribe_topic;
  if (source) {
    const limit = Math.max(staleAfterS, MSIGHT_SOURCE_TOLERANCE_S);
    return {
      status: e.status === "RUNNING" && age > limit ? "STALE" : e.status,
      rule: `MSight source: beats every 10 frames, stale after ${limit} s`,
    };
  }
  return {
    status: e.status,
    rule: "MSight processor/sink: beats per messages, not judged by age (as MSight)",
  };
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
  /** The heartbeat period written into the entry (`heartbeat_interval_s`). */
  heartbeatIntervalS?: number;
}

/** Where {@linkcode NodeRegistration} keeps its entry: a back end's registry (`RegistryStore` in `types.ts`). */
export interface NodeStore {
  getNode(name: string): Promise<NodeEntry | null>;
  putNode(entry: NodeEntry): Promise<void>;
  deleteNode(name: string): Promise<void>;
}

/**
 * One node's registration and heartbeat, in the bus's registry (`MSIGHT:NODES`, wherever the back end keeps it); the
 * owner calls {@linkcode NodeRegistration.unregister} on stop. `ready` says whether the registry is reachable now
 * (a heartbeat is skipped while it is not).
 */
export class NodeRegistration {
  #timer?: ReturnType<typeof setInterval>;
  #status: NodeEntry["status"] = "REGISTERED";

  constructor(
    readonly store: NodeStore,
    readonly ready: () => boolean,
    readonly id: NodeIdentity,
    readonly log: Logger,
  ) {}

  #entry(): NodeEntry {
    return {
      name: this.id.name,
      device: this.id.device,
      publish_topic: this.id.publishTopic,
      subscribe_topic: this.id.subscribeTopic,
      type: this.id.type,
      last_heartbeat: Date.now() / 1000,
      status: this.#status,
      impl: OUR_IMPL,
      ...(this.id.heartbeatIntervalS !== undefined
        ? { heartbeat_interval_s: this.id.heartbeatIntervalS }
        : {}),
    };
  }

  /** Writes the entry; warns when a live node of the same name is already registered. */
  async register(): Promise<void> {
    // An unparseable entry reads as none: it is overwritten.
    const e = await this.store.getNode(this.id.name);
    if (e) {
      const age = Date.now() / 1000 - e.last_heartbeat;
      this.log.warn(
        `a node named ${this.id.name} is already registered (heartbeat ${
          age.toFixed(0)
        } s ago on ${e.device}): ` +
          `a previous run did not stop cleanly, or two nodes share this name`,
      );
    }
    await this.store.putNode(this.#entry());
  }

  /** Sets the status and rewrites the entry now. */
  async setStatus(status: NodeEntry["status"]): Promise<void> {
    this.#status = status;
    await this.#beat();
  }

  async #beat(): Promise<void> {
    if (!this.ready()) return;
    try {
      await this.store.putNode(this.#entry());
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
    if (!this.ready()) return;
    try {
      await this.store.deleteNode(this.id.name);
    } catch (err) {
      this.log.warn(`could not unregister: ${errorMessage(err)}`);
    }
  }
}
