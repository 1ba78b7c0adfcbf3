/**
 * The bus as the nodes see it, whichever engine carries it: plain publish/subscribe of MSight messages, the durable
 * segment stream (append, consume as a group, acknowledge, take over a dead member's entries) and MSight's node and
 * topic registry. Each back end is a folder (`redis_backend/`, `nats/`) implementing {@linkcode Bus};
 * `select.ts` picks one from the flags and environment. Types only: importing this module runs nothing.
 *
 * @module
 */

import type { Logger } from "../runtime/log.ts";
import type { NodeEntry, TopicEntry } from "./registry.ts";

/** Called with each message's raw bytes, in arrival order. */
export type BusMessageHandler = (bytes: Uint8Array, topic: string) => void;

/** A message whole, or in pieces to be sent back to back (a segment, without joining it first). */
export type BusPayload = Uint8Array | readonly Uint8Array[];

/** How a subscription shares messages. */
export interface SubscribeOptions {
  /**
   * A group (MSight's `group_id`): members of one group share the messages instead of each getting all of them.
   * NATS: the queue group. Redis pub/sub has no groups (MSight ignores it there too): every subscriber gets all.
   */
  group?: string;
}

/** Caps of a durable topic. */
export interface SegmentCaps {
  /** Keep about this many entries. */
  maxLen: number;
  /** Drop entries older than this many seconds (0: no age limit). */
  maxAgeS: number;
}

/** One entry of a durable topic, handed to one member of a group. */
export interface DurableEntry {
  /** The back end's id of the entry (Redis: the stream id; NATS: the stream sequence). */
  id: string;
  bytes: Uint8Array;
}

/** Options of a group member reading a durable topic. */
export interface DurableConsumerOptions {
  /** The consumer group (a sink's `--group-id`, default its `--name`): each group gets every entry once. */
  group: string;
  /** This member's name within the group; a stable name resumes its own pending entries after a restart. */
  consumer: string;
  log: Logger;
  /** Where a new group starts: everything the topic still holds (`all`) or only new entries (`new`). */
  start?: "all" | "new";
  /**
   * How long an entry may stay unacknowledged before another member may take it over (default 60 s). JetStream
   * fixes it when the group is created (its ack wait); Redis applies it at each claim.
   */
  claimIdleMs?: number;
}

/**
 * One member of a group on a durable topic. Delivery is at least once: an entry not acknowledged (the member died,
 * or its handler failed) is delivered again, to this member or, after `claim`'s idle time, to another.
 */
export interface DurableConsumer {
  /**
   * Entries for this member, at most `max`: its own unacknowledged ones first (after a restart), then new ones;
   * waits up to `blockMs` when there are none. Throws when the back end is unreachable.
   */
  read(max: number, blockMs: number): Promise<DurableEntry[]>;
  /** Acknowledges an entry (it is safe): the group will not see it again. */
  ack(entry: DurableEntry): Promise<void>;
  /**
   * Takes over entries another member has held unacknowledged for `idleMs` (it probably died). Back ends that
   * redeliver such entries by themselves (JetStream's ack wait) return none here and deliver them through `read`.
   */
  claim(idleMs: number, max: number): Promise<DurableEntry[]>;
  /** Tells the back end an entry is still being worked on, so it is not handed to another member meanwhile. */
  touch(entry: DurableEntry): Promise<void>;
  /** Entries handed over from another member so far. */
  readonly claimed: number;
  close(): Promise<void>;
}

/** The durable segment topics of a back end. */
export interface SegmentStreams {
  /** Marks `topic` as durable (with its caps), so sinks started from now on read it durably. */
  announce(topic: string, caps: SegmentCaps): Promise<void>;
  /** True when some producer has announced `topic` as durable. */
  isAnnounced(topic: string): Promise<boolean>;
  /**
   * Appends one message (announcing the topic first if needed); resolves with its entry id once the back end has
   * stored it, throws when not stored. Calls may overlap; JetStream then keeps a bounded number awaiting
   * confirmation at once, stored in call order (`in_flight.ts`); the Redis back ends send them on one connection.
   */
  append(topic: string, message: BusPayload, caps: SegmentCaps): Promise<string>;
  /** A member of a consumer group on `topic`; the caller closes it. */
  consumer(topic: string, opts: DurableConsumerOptions): DurableConsumer;
}

/** MSight's registry: `MSIGHT:NODES` and `MSIGHT:TOPICS`, wherever they are kept. */
export interface RegistryStore {
  /** Where the registry lives, for log lines (no secrets). */
  readonly display: string;
  getNode(name: string): Promise<NodeEntry | null>;
  putNode(entry: NodeEntry): Promise<void>;
  deleteNode(name: string): Promise<void>;
  /** Registers a topic unless it is already there (MSight keeps the first registration). */
  registerTopic(entry: TopicEntry): Promise<void>;
  readNodes(): Promise<NodeEntry[]>;
  readTopics(): Promise<TopicEntry[]>;
}

/** The back ends {@linkcode Bus.kind} names. */
export type BusKind = "redis" | "redis-cluster" | "nats";

/** A node's connection to the bus. */
export interface Bus {
  readonly kind: BusKind;
  /** Where it connects, for log lines (no secrets). */
  readonly display: string;
  /** True while the bus is usable (for `/readyz`). */
  readonly ready: boolean;
  /**
   * Publishes a message on the topic's plain channel (Redis channel / NATS subject = topic name), as MSight does.
   * Returns the number of receivers where the back end knows it (Redis), 0 where it does not (NATS), or -1 when
   * the message was not sent (bus down, or larger than the server accepts: logged, and the caller counts it).
   * Calls may overlap (a publisher need not await one before sending the next): messages go out in call order,
   * and a back end whose publish waits for a reply keeps a bounded number in flight (`in_flight.ts`).
   */
  publish(topic: string, message: BusPayload): Promise<number>;
  /** Subscribes `handler` to the topic; resubscribes by itself after reconnects. */
  subscribe(topic: string, handler: BusMessageHandler, opts?: SubscribeOptions): Promise<void>;
  /** Removes a handler added by `subscribe`. */
  unsubscribe(topic: string, handler: BusMessageHandler): Promise<void>;
  readonly segments: SegmentStreams;
  readonly registry: RegistryStore;
  /** Closes every connection (pending publishes are flushed first when possible). */
  close(): Promise<void>;
}
