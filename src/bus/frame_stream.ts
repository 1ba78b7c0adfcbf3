/**
 * Durable frames between our nodes: the RTSP node puts each frame on pub/sub (for MSight's nodes, unchanged) and, in
 * the same write, on the topic's Redis Stream `MSIGHT:STREAM:<topic>`, capped by age and bytes. The aggregator reads
 * that stream in a consumer group named after its `--name` and acknowledges a frame only once the segment holding it
 * is safe, so a killed aggregator rebuilds its segments in progress from its own unacknowledged entries (its PEL).
 *
 * - {@linkcode FrameStreamProducer}: announces the stream (`MSIGHT:STREAMS`, as the aggregator does for segments, and
 *   the sensor in `MSIGHT:STREAM_SENSORS:<topic>`), appends frames, trims by age every few seconds.
 * - {@linkcode FrameStreamReader}: creates the group, replays its own pending entries (id `0`), then reads new ones;
 *   acknowledgements are the caller's ({@linkcode FrameStreamReader.ack}).
 *
 * @example
 * ```ts
 * import { FrameStreamProducer, FrameStreamReader } from "./frame_stream.ts";
 * import type { RedisBus } from "./redis.ts";
 * import type { Logger } from "../runtime/log.ts";
 * declare const bus: RedisBus, log: Logger, messagePieces: Uint8Array[], signal: AbortSignal;
 * const producer = new FrameStreamProducer(bus, "rtsp_topic", "cam1", { maxAgeS: 30, maxBytes: 64 << 20 }, log);
 * await producer.start();
 * await producer.publish(messagePieces);
 * const reader = new FrameStreamReader(bus, { topic: "rtsp_topic", group: "image-aggregator", log });
 * await reader.run(async (entries) => await reader.ack(entries.map((e) => e.id)), signal);
 * ```
 * @module
 */

import type { Redis } from "ioredis";
import type { Buffer } from "node:buffer";
import { delay } from "../runtime/async.ts";
import { byteLengthOf } from "../runtime/bytes.ts";
import { errorMessage } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { RedisBus } from "./redis.ts";
import { streamKey, STREAMS_KEY } from "./stream.ts";

/** Caps of a topic's frame stream. */
export interface FrameStreamCaps {
  /** Entries older than this many seconds are trimmed (0: no durable stream, pub/sub only). */
  maxAgeS: number;
  /** The stream is trimmed to about this many bytes of frames (its entry count follows the frames' mean size). */
  maxBytes: number;
}

/** The set of sensors whose frames a topic's stream carries (so the aggregator ignores their pub/sub copies). */
export function streamSensorsKey(topic: string): string {
  return `MSIGHT:STREAM_SENSORS:${topic}`;
}

/** How often the stream is trimmed by age, ms. */
const TRIM_EVERY_MS = 5000;

/** Puts one sensor's frames on a topic's pub/sub channel and durable stream; see the module doc. */
export class FrameStreamProducer {
  readonly key: string;
  #meanBytes = 0;
  #lastTrim = 0;
  #stopReannounce?: () => void;

  constructor(
    readonly bus: RedisBus,
    readonly topic: string,
    readonly sensor: string,
    readonly caps: FrameStreamCaps,
    readonly log: Logger,
  ) {
    this.key = streamKey(topic);
  }

  /** Announces the stream, and again after every reconnect (a restarted Redis has forgotten it). */
  async start(): Promise<void> {
    await this.#announce();
    this.#stopReannounce = this.bus.onReconnect(() => {
      this.#announce().catch((err) => this.log.warn(`cannot announce ${this.key}: ${errorMessage(err)}`));
    });
  }

  async #announce(): Promise<void> {
    const c = this.bus.client;
    await c.hset(STREAMS_KEY, this.topic, JSON.stringify({ key: this.key, kind: "frames", ...this.caps }));
    await c.sadd(streamSensorsKey(this.topic), this.sensor);
  }

  /** The MAXLEN that keeps about `maxBytes` of frames of the size seen so far. */
  get maxLen(): number {
    return Math.max(100, Math.ceil(this.caps.maxBytes / Math.max(this.#meanBytes, 1)));
  }

  /** Publishes one frame message on pub/sub and the stream; resolves as {@linkcode RedisBus.publish}. */
  async publish(message: Uint8Array | readonly Uint8Array[]): Promise<number> {
    const size = message instanceof Uint8Array ? message.byteLength : byteLengthOf(message);
    this.#meanBytes = this.#meanBytes === 0 ? size : this.#meanBytes * 0.98 + size * 0.02;
    const n = await this.bus.publishAndAppend(this.topic, { key: this.key, maxLen: this.maxLen }, message);
    const now = Date.now();
    if (n >= 0 && now - this.#lastTrim > TRIM_EVERY_MS) {
      this.#lastTrim = now;
      this.bus.client.xtrim(this.key, "MINID", "~", String(now - this.caps.maxAgeS * 1000)).catch((err) =>
        this.log.debug(`trimming ${this.key} by age: ${errorMessage(err)}`)
      );
    }
    return n;
  }

  /** Stops re-announcing (the bus belongs to the caller). */
  close(): void {
    this.#stopReannounce?.();
  }
}

/** Options of a {@linkcode FrameStreamReader}. */
export interface FrameStreamReaderOptions {
  topic: string;
  /** Consumer group and consumer name: the aggregator's `--name`, stable across restarts. */
  group: string;
  log: Logger;
  /** Entries per read (100). */
  batch?: number;
  /** How long one blocking read waits, ms, so a stop is noticed promptly (500). */
  blockMs?: number;
}

/** One stream entry; `bytes` undefined: it was trimmed away while pending (its frame is lost). */
export interface FrameEntry {
  id: string;
  bytes?: Uint8Array;
}

type XEntry = [Buffer, Buffer[] | null];

/** Orders stream ids (`ms-seq`) as Redis does. */
function compareIds(a: string, b: string): number {
  const [am, as] = a.split("-").map(BigInt), [bm, bs] = b.split("-").map(BigInt);
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}

/** Reads a topic's frame stream in a consumer group; see the module doc. Owns its blocking connection. */
export class FrameStreamReader {
  readonly key: string;
  readonly #conn: Redis;
  readonly #bus: RedisBus;
  readonly #o: FrameStreamReaderOptions;
  #groupReady = false;
  #fresh = true;

  constructor(bus: RedisBus, opts: FrameStreamReaderOptions) {
    this.#bus = bus;
    this.#o = opts;
    this.key = streamKey(opts.topic);
    // Blocking reads tie up a connection: they get their own.
    this.#conn = bus.client.duplicate({
      connectionName: `${opts.group}:frames`.replace(/[^A-Za-z0-9_.:-]/g, "_"),
    });
    this.#conn.on("error", () => {/* reported by the node's main connection */});
  }

  /** Creates the consumer group if there is none (a new one takes frames from now on). */
  async open(): Promise<void> {
    await this.#ensureGroup();
  }

  async #ensureGroup(): Promise<void> {
    if (this.#groupReady) return;
    try {
      // A new group takes frames from now on (what came before was pub/sub's); a group lost with a Redis restart is
      // made again from the start of the (new, empty then) stream so nothing published since is missed.
      await this.#conn.xgroup("CREATE", this.key, this.#o.group, this.#fresh ? "$" : "0", "MKSTREAM");
      this.#o.log.info(`created consumer group ${this.#o.group} on ${this.key}`);
    } catch (err) {
      if (!/BUSYGROUP/.test(errorMessage(err))) throw err;
    }
    this.#groupReady = true;
  }

  async #read(id: string): Promise<FrameEntry[]> {
    // Raw, so payloads stay binary (ioredis types no Buffer variant of XREADGROUP).
    const res = await this.#conn.callBuffer(
      "XREADGROUP",
      "GROUP",
      this.#o.group,
      this.#o.group,
      "COUNT",
      String(this.#o.batch ?? 100),
      ...(id === ">" ? ["BLOCK", String(this.#o.blockMs ?? 500)] : []),
      "STREAMS",
      this.key,
      id,
    ) as [Buffer, XEntry[]][] | null;
    return (res?.[0]?.[1] ?? []).map(([idBuf, fields]) => {
      let data: Buffer | undefined;
      for (let i = 0; fields && i + 1 < fields.length; i += 2) {
        if (fields[i].toString() === "d") data = fields[i + 1];
      }
      return {
        id: idBuf.toString(),
        bytes: data ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : undefined,
      };
    });
  }

  /**
   * Until `signal` aborts: this consumer's pending entries first (delivered to a run that died before acknowledging
   * them), handed over with `replay` true and all at once so the caller can sort them out, then new entries as
   * they come. Redis outages are waited out; a group lost with a Redis restart is made again.
   */
  async run(
    onEntries: (entries: FrameEntry[], replay: boolean) => void | Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    let backlog = true;
    let lastError = "";
    while (!signal.aborted) {
      try {
        await this.#ensureGroup();
        if (backlog) {
          const pending: FrameEntry[] = [];
          for (let from = "0";;) {
            const page = await this.#read(from);
            if (page.length === 0) break;
            pending.push(...page);
            from = page.at(-1)!.id;
          }
          // Entries trimmed while pending are not read back (Redis 7.0 skips them) but stay in the list: found here.
          const read = new Set(pending.map((e) => e.id));
          for (const id of await this.#pendingIds()) if (!read.has(id)) pending.push({ id });
          pending.sort((a, b) => compareIds(a.id, b.id));
          backlog = false;
          if (pending.length > 0) await onEntries(pending, true);
          continue;
        }
        const fresh = await this.#read(">");
        if (fresh.length > 0) await onEntries(fresh, false);
        lastError = "";
      } catch (err) {
        if (signal.aborted) break;
        const msg = errorMessage(err);
        if (/NOGROUP/.test(msg)) {
          this.#groupReady = false;
          this.#fresh = false;
        }
        backlog = true;
        if (msg !== lastError) this.#o.log.warn(`reading ${this.key}: ${msg} (retrying)`);
        lastError = msg;
        await delay(500, signal);
      }
    }
  }

  /** Ids of this consumer's pending entries (all of them: a crashed run holds a few segments' worth). */
  async #pendingIds(): Promise<string[]> {
    const out: string[] = [];
    for (let from = "-";;) {
      const page = await this.#conn.xpending(this.key, this.#o.group, from, "+", 1000, this.#o.group) as [
        string,
        string,
        number,
        number,
      ][];
      out.push(...page.map((p) => p[0]));
      if (page.length < 1000) return out;
      from = `(${page.at(-1)![0]}`;
    }
  }

  /** Acknowledges entries (their frames are in a segment that is safe, or counted as dropped). */
  async ack(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    try {
      await this.#bus.client.xack(this.key, this.#o.group, ...ids);
    } catch (err) {
      // Left pending: a later run replays them, and they are recognised as already in a segment (see the aggregator).
      this.#o.log.warn(`cannot acknowledge ${ids.length} frame(s) on ${this.key}: ${errorMessage(err)}`);
    }
  }

  /** Closes the blocking connection (ends a read in progress). */
  close(): void {
    this.#conn.disconnect();
  }
}
