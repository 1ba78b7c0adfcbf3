/**
 * Durable segment topics on JetStream. A topic has a stream (`MSIGHT_SEG_<topic>`, limits retention: capped by
 * count and age, every consumer group sees every entry) and each sink group a durable pull consumer named after
 * the group, explicit acknowledgement: an entry is acknowledged (and the server confirms it) only once the sink
 * stored it; one left unacknowledged for `claimIdleMs` (its member died) is redelivered to another member.
 *
 * A segment larger than the server's `max_payload` (1 MB by default; a 100-frame 1280×960 segment is ~3 MB) goes
 * into the topic's object store bucket (`MSIGHT_SEGOBJ_<topic>`, chunked there by JetStream) and the stream entry
 * carries only its name in the header `Msight-Object`. The producer deletes the objects whose entries the stream's
 * count cap has dropped; the bucket's age limit (the topic's `maxAgeS`) removes the rest. Chunking by hand inside
 * the topic's stream was not chosen: the chunks of one segment would be shared out among a group's members.
 *
 * On a cluster the stream, its consumers and the bucket have replicas (`replicas.ts`). Losing a server (a leader
 * election, a client reconnecting elsewhere) shows as timeouts and "no responders": an append keeps trying for
 * `appendRetryMs`, each entry with its own `Nats-Msg-Id`, so one that reached the stream before its answer was lost
 * is not stored twice (JetStream drops a repeated id within the stream's 2-minute duplicate window). A try that
 * finds no stream answering checks the stream (created again if a server lost its store) before the next.
 *
 * Throughput (`deno task bench bus`): overlapping appends are sent back to back (a bounded window, confirmed in
 * order) instead of one round trip each; a member pulls up to a batch of entries per request, handed out as they
 * arrive.
 *
 * @module
 */

import { headers, type MsgHdrs, type NatsConnection, nuid } from "@nats-io/transport-node";
import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  type JsMsg,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { type ObjectStore, Objm } from "@nats-io/obj";
import { Backoff, delay } from "../../runtime/async.ts";
import { joinBytes } from "../../runtime/bytes.ts";
import { errorMessage } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type {
  BusPayload,
  DurableConsumer,
  DurableConsumerOptions,
  DurableEntry,
  SegmentCaps,
  SegmentStreams,
} from "../types.ts";
import { InFlightWindow } from "../in_flight.ts";
import { escapeName, segmentBucketName, segmentStreamName, segmentSubject } from "./names.ts";
import { withReplicas } from "./replicas.ts";

/** The header naming the object that holds an entry's message. */
export const OBJECT_HEADER = "Msight-Object";
/** Room kept under `max_payload` for the headers and protocol of an inline entry. */
const HEADROOM = 8 * 1024;
/** A read hands out entries up to about this many bytes (at least one entry): a batch of segments is not held whole. */
const READ_BYTES = 8 * 1024 * 1024;
/** Chunk size inside the object store (JetStream clamps it to what a stream accepts). */
const CHUNK = 512 * 1024;

/**
 * Appends in flight at once when callers do not await each one (`bench/RESULTS.md`, `bus`): enough to hide the
 * round trip of an acknowledged append of a ~100 KB frame; segments are sent one by one in practice.
 */
export const APPEND_WINDOW = 32;

const nanos = (ms: number) => ms * 1_000_000;

function isNotFound(err: unknown): boolean {
  return /not found|10059|10014/i.test(errorMessage(err));
}

/** Options of {@linkcode NatsSegments}. */
export interface NatsSegmentsOptions {
  /** Told of appends retried through a fault, and of assets created with fewer replicas than wanted. */
  log?: Logger;
  /** How long an announce or append keeps trying through a lost server or a leader election, ms (60000). */
  appendRetryMs?: number;
}

/** Durable topics on JetStream; see the module doc. */
export class NatsSegments implements SegmentStreams {
  readonly #js: JetStreamClient;
  readonly #objm: Objm;
  #jsm?: JetStreamManager;
  /** Per topic: the caps announced (JSON) and the announcement, done or under way. */
  readonly #announced = new Map<string, { caps: string; done: Promise<void> }>();
  readonly #window = new InFlightWindow(APPEND_WINDOW);
  readonly #buckets = new Map<string, ObjectStore>();
  /** Objects this producer stored, oldest first, with the stream sequence of their entry. */
  readonly #objects = new Map<string, { seq: number; name: string }[]>();
  readonly #opts: NatsSegmentsOptions;

  constructor(
    readonly nc: NatsConnection,
    readonly maxPayload: () => number,
    opts: NatsSegmentsOptions = {},
  ) {
    this.#js = jetstream(nc);
    this.#objm = new Objm(nc);
    this.#opts = opts;
  }

  /**
   * Runs `fn` until it succeeds, the connection is closed, the server refuses the request itself (400), or
   * `appendRetryMs` has passed; see the module doc.
   */
  async #retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + (this.#opts.appendRetryMs ?? 60_000);
    const backoff = new Backoff({ initial: 200, max: 2000 });
    for (;;) {
      try {
        const done = await fn();
        if (backoff.failures > 0) this.#opts.log?.info(`${what}: done after ${backoff.failures} retries`);
        return done;
      } catch (err) {
        const permanent = this.nc.isClosed() || this.nc.isDraining() ||
          (err instanceof JetStreamApiError && err.status === 400);
        if (permanent || Date.now() >= deadline) throw err;
        const log = this.#opts.log;
        const line = `${what} failed (${errorMessage(err)}): trying again`;
        if (backoff.failures === 0) log?.warn(line);
        else log?.debug(line);
        await delay(backoff.next());
      }
    }
  }

  async #manager(): Promise<JetStreamManager> {
    this.#jsm ??= await jetstreamManager(this.nc);
    return this.#jsm;
  }

  /** Creates the topic's stream when absent (no caps: a producer's `announce` sets them). */
  ensureStream(topic: string, caps?: SegmentCaps): Promise<void> {
    return this.#ensureStream(topic, caps, false);
  }

  async #ensureStream(topic: string, caps: SegmentCaps | undefined, retried: boolean): Promise<void> {
    const jsm = await this.#manager();
    const name = segmentStreamName(topic);
    const limits = caps
      ? { max_msgs: caps.maxLen, max_age: caps.maxAgeS > 0 ? nanos(caps.maxAgeS * 1000) : 0 }
      : {};
    try {
      const info = await jsm.streams.info(name);
      if (caps && (info.config.max_msgs !== limits.max_msgs || info.config.max_age !== limits.max_age)) {
        await jsm.streams.update(name, { ...info.config, ...limits });
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await withReplicas(
          this.nc,
          `JetStream stream ${name}`,
          (num_replicas) =>
            jsm.streams.add({
              name,
              subjects: [segmentSubject(topic)],
              retention: RetentionPolicy.Limits,
              discard: DiscardPolicy.Old,
              storage: StorageType.File,
              num_replicas,
              ...limits,
            }),
          this.#opts.log,
        );
      } catch (addErr) {
        // A server restarting on its store reports the stream missing, then has it back (with its caps) by the
        // time we add it: take the stream that is there, once.
        if (retried || !/already in use/.test(String(addErr))) throw addErr;
        await this.#ensureStream(topic, caps, true);
      }
    }
  }

  async #bucket(topic: string, caps?: SegmentCaps): Promise<ObjectStore> {
    let b = this.#buckets.get(topic);
    if (!b) {
      const name = segmentBucketName(topic);
      b = await withReplicas(
        this.nc,
        `JetStream object store ${name}`,
        (replicas) =>
          this.#objm.create(name, {
            ttl: caps && caps.maxAgeS > 0 ? nanos(caps.maxAgeS * 1000) : 0,
            storage: StorageType.File,
            replicas,
          }),
        this.#opts.log,
      );
      this.#buckets.set(topic, b);
    }
    return b;
  }

  async announce(topic: string, caps: SegmentCaps): Promise<void> {
    await this.#retrying(`announcing ${topic} on JetStream`, () => this.ensureStream(topic, caps));
    this.#announced.set(topic, { caps: JSON.stringify(caps), done: Promise.resolve() });
  }

  async isAnnounced(topic: string): Promise<boolean> {
    try {
      await (await this.#manager()).streams.info(segmentStreamName(topic));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Resolves once the server confirmed the entry (its sequence). Calls may overlap: up to {@linkcode APPEND_WINDOW}
   * entries are sent back to back and confirmed in order, each call resolving with its own outcome; one that goes
   * through the object store waits for those before it and holds the ones after, so entries keep the call order.
   */
  async append(topic: string, message: BusPayload, caps: SegmentCaps): Promise<string> {
    await this.#announceOnce(topic, caps);
    const key = JSON.stringify(caps);
    const bytes = message instanceof Uint8Array ? message : joinBytes(message);
    const subject = segmentSubject(topic);
    // One id for every try of this entry: a try whose answer was lost is not stored again.
    const msgID = nuid.next();
    const publish = async (data: Uint8Array, h?: MsgHdrs) => {
      // The stream went missing (a server that lost its store): create it again with this try.
      if (this.#announced.get(topic)?.caps !== key) {
        await this.ensureStream(topic, caps);
        this.#announced.set(topic, { caps: key, done: Promise.resolve() });
      }
      try {
        return (await this.#js.publish(subject, data, { msgID, headers: h })).seq;
      } catch (err) {
        // No stream answers (the client says "jetstream is not enabled"): missing, or electing a leader.
        if (/no responders|not enabled/i.test(errorMessage(err))) this.#announced.delete(topic);
        throw err;
      }
    };
    if (bytes.byteLength <= this.maxPayload() - HEADROOM) {
      return await this.#window.run(async () =>
        String(await this.#retrying(`appending to ${topic} on JetStream`, () => publish(bytes)))
      );
    }
    return await this.#window.run(() => this.#appendObject(topic, bytes, caps, msgID, publish), true);
  }

  /** Announces `topic` with `caps` unless done already; overlapping appends share one announcement. */
  #announceOnce(topic: string, caps: SegmentCaps): Promise<void> {
    const key = JSON.stringify(caps);
    const known = this.#announced.get(topic);
    if (known?.caps === key) return known.done;
    const done = this.announce(topic, caps);
    this.#announced.set(topic, { caps: key, done });
    // A failed announcement is tried again by the next append (this one throws it).
    done.catch(() => {
      if (this.#announced.get(topic)?.done === done) this.#announced.delete(topic);
    });
    return done;
  }

  /** A segment larger than a message: the bytes in the object store (named `name`), the stream entry naming it. */
  async #appendObject(
    topic: string,
    bytes: Uint8Array,
    caps: SegmentCaps,
    name: string,
    publish: (data: Uint8Array, h?: MsgHdrs) => Promise<number>,
  ): Promise<string> {
    const bucket = await this.#retrying(`opening ${topic}'s object store`, () => this.#bucket(topic, caps));
    const h = headers();
    h.set(OBJECT_HEADER, name);
    let seq: number;
    try {
      seq = await this.#retrying(`appending to ${topic} on JetStream (object store)`, async () => {
        // Again on every try: a put cut short by a lost server is replaced whole.
        await bucket.putBlob({ name, options: { max_chunk_size: CHUNK } }, bytes);
        return await publish(new Uint8Array(0), h);
      });
    } catch (err) {
      await bucket.delete(name).catch(() => {/* the bucket's age limit removes it */});
      throw err;
    }
    // Objects whose entries the count cap has dropped are unreachable: delete them.
    const mine = this.#objects.get(topic) ?? [];
    mine.push({ seq, name });
    this.#objects.set(topic, mine);
    while (mine.length > 0 && mine[0].seq <= seq - caps.maxLen) {
      const old = mine.shift()!;
      await bucket.delete(old.name).catch(() => {/* already gone (age limit) */});
    }
    return String(seq);
  }

  consumer(topic: string, opts: DurableConsumerOptions): DurableConsumer {
    return new NatsDurableConsumer(this, this.#js, this.#objm, topic, opts);
  }

  /** For the consumer: the manager. */
  manager(): Promise<JetStreamManager> {
    return this.#manager();
  }
}

/** One pull request of a member: ended or not, how it failed, and who waits for its next message. */
interface Pull {
  done: boolean;
  error?: unknown;
  wake?: () => void;
}

/** A member of a sink group: a pull consumer bound to the group's durable consumer. */
export class NatsDurableConsumer implements DurableConsumer {
  #ready = false;
  #bucket?: ObjectStore;
  #consumer?: Consumer;
  /** Messages handed out by `read` and not yet acknowledged, by entry id. */
  readonly #inHand = new Map<string, JsMsg>();
  /** Messages delivered to this member and not yet handed out, in order. */
  #queued: JsMsg[] = [];
  /** The pull under way, if any (see `#fill`). */
  #pull?: Pull;
  #closed = false;
  claimed = 0;

  constructor(
    readonly segments: NatsSegments,
    readonly js: JetStreamClient,
    readonly objm: Objm,
    readonly topic: string,
    readonly opts: DurableConsumerOptions,
  ) {}

  get #durable(): string {
    return escapeName(this.opts.group);
  }

  async #ensure(): Promise<void> {
    if (this.#ready) return;
    await this.segments.ensureStream(this.topic);
    const jsm = await this.segments.manager();
    const stream = segmentStreamName(this.topic);
    try {
      await jsm.consumers.info(stream, this.#durable);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // Its replicas are the stream's (num_replicas 0).
      await jsm.consumers.add(stream, {
        durable_name: this.#durable,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(this.opts.claimIdleMs ?? 60_000),
        deliver_policy: this.opts.start === "new" ? DeliverPolicy.New : DeliverPolicy.All,
        max_deliver: -1,
      });
      this.opts.log.info(`created consumer group ${this.opts.group} on JetStream stream ${stream}`);
    }
    this.#ready = true;
  }

  async read(max: number, blockMs: number): Promise<DurableEntry[]> {
    if (this.#inHand.size > 0) {
      // What the last read handed out and was not acknowledged failed: give it back now rather than after the wait,
      // with what was fetched behind it, so it comes again before them.
      for (const m of [...this.#inHand.values(), ...this.#queued]) m.nak();
      this.#inHand.clear();
      this.#queued = [];
    }
    try {
      await this.#fill(max, blockMs);
      // Handed out in order, up to `max` entries and READ_BYTES (an entry from the object store may be 30 MB).
      const out: DurableEntry[] = [];
      let bytes = 0;
      while (this.#queued.length > 0 && out.length < max && (out.length === 0 || bytes < READ_BYTES)) {
        const m = this.#queued.shift()!;
        if (m.redelivered) this.claimed++;
        const id = String(m.seq);
        this.#inHand.set(id, m);
        const object = m.headers?.get(OBJECT_HEADER);
        let data = m.data;
        if (object) {
          this.#bucket ??= await this.objm.open(segmentBucketName(this.topic));
          // Null: the object is gone (the topic's caps dropped it before this group read it): an empty entry.
          data = (await this.#bucket.getBlob(object)) ?? new Uint8Array(0);
        }
        out.push({ id, bytes: data });
        bytes += data.byteLength;
      }
      return out;
    } catch (err) {
      // The stream or the group is gone (a server that lost its store): create them again.
      if (isNotFound(err)) {
        this.#ready = false;
        this.#consumer = undefined;
        this.#queued = [];
      }
      throw err;
    }
  }

  /**
   * Waits up to `blockMs` for the queue to hold an entry. Entries come from one pull of up to `max` at a time, read
   * in the background as they arrive (not when the whole batch is there), so a lone segment is handed out at once
   * and a busy topic costs one request per batch instead of one per entry; the next pull starts when it ends.
   */
  async #fill(max: number, blockMs: number): Promise<void> {
    if (this.#queued.length > 0) return;
    await this.#ensure();
    // Looked up once (an API request): reads then go straight to the consumer.
    this.#consumer ??= await this.js.consumers.get(segmentStreamName(this.topic), this.#durable);
    const deadline = Date.now() + Math.max(1000, blockMs);
    let started = false;
    while (this.#queued.length === 0) {
      const pull = this.#pull;
      if (pull?.done && pull.error !== undefined) {
        this.#pull = undefined;
        throw pull.error;
      }
      if (!pull || pull.done) {
        if (started) return; // it ended with nothing
        this.#startPull(this.#consumer, max, blockMs);
        started = true;
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) return;
      await new Promise<void>((wake) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          wake();
        }
        pull.wake = done;
      });
    }
  }

  #startPull(c: Consumer, max: number, blockMs: number): void {
    const pull: Pull = { done: false };
    this.#pull = pull;
    const arrived = () => {
      const wake = pull.wake;
      pull.wake = undefined;
      wake?.();
    };
    (async () => {
      try {
        for await (const m of await c.fetch({ max_messages: max, expires: Math.max(1000, blockMs) })) {
          // Closed meanwhile: given back at once, for another member.
          if (this.#closed) m.nak();
          else this.#queued.push(m);
          arrived();
        }
      } catch (err) {
        pull.error = err;
      } finally {
        pull.done = true;
        arrived();
      }
    })();
  }

  async ack(entry: DurableEntry): Promise<void> {
    const m = this.#inHand.get(entry.id);
    if (!m) return;
    // Confirmed by the server: an acknowledgement lost on the way would have the segment stored twice.
    if (!await m.ackAck()) throw new Error(`acknowledgement of entry ${entry.id} was not confirmed`);
    this.#inHand.delete(entry.id);
  }

  /** JetStream redelivers an entry left unacknowledged past the group's ack wait by itself (through `read`). */
  claim(): Promise<DurableEntry[]> {
    return Promise.resolve([]);
  }

  /** Also for what waits behind it in this member's hands (their ack wait runs as well). */
  touch(_entry: DurableEntry): Promise<void> {
    for (const m of [...this.#inHand.values(), ...this.#queued]) m.working();
    return Promise.resolve();
  }

  /** Gives back what is in hand or fetched, so another member gets it at once. */
  close(): Promise<void> {
    this.#closed = true;
    for (const m of [...this.#inHand.values(), ...this.#queued]) m.nak();
    this.#inHand.clear();
    this.#queued = [];
    return Promise.resolve();
  }
}
