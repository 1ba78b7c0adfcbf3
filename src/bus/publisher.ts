/**
 * The publishing connection of a node: PUBLISH written as RESP straight onto a Deno socket, with Redis'
 * replies off by default (`countReceivers: true` keeps them). Plain TCP and unix sockets only (TLS publishes
 * through ioredis). It reconnects forever and fails fast while down: `publish` resolves -1 at once rather
 * than queueing stale frames. Why not ioredis, and what replies off costs: docs/design.md, "Bus".
 *
 * @example
 * ```ts
 * import { Publisher } from "./publisher.ts";
 * import { redisSettingsFromEnv } from "../runtime/env.ts";
 * const pub = await Publisher.connect(redisSettingsFromEnv(), { name: "cam1" });
 * const receivers = await pub.publish("rtsp_topic", new Uint8Array([1, 2, 3])); // -1 while Redis is down
 * await pub.close();
 * ```
 * @module
 */

import type { RedisSettings } from "../runtime/env.ts";
import { byteLengthOf, joinBytes } from "../runtime/bytes.ts";

/** Connection state changes, for one log line each. */
export type PublisherEvent = { type: "lost"; reason: string } | { type: "restored" };

/** Options of {@linkcode Publisher.connect}. */
export interface PublisherOptions {
  /** CLIENT SETNAME (shown by `CLIENT LIST`). */
  name?: string;
  /** How long the first connection may take before connect() rejects (10 s). */
  connectTimeoutMs?: number;
  /** Read each PUBLISH's reply, so `publish` resolves the number of subscribers (false: replies off, resolves 0). */
  countReceivers?: boolean;
  onEvent?: (e: PublisherEvent) => void;
}

const enc = new TextEncoder();
const CRLF = enc.encode("\r\n");

/** `*n` then each argument as a bulk string: the RESP request, ready to write. */
function command(args: string[]): Uint8Array {
  return enc.encode(
    `*${args.length}\r\n` + args.map((a) => `$${enc.encode(a).byteLength}\r\n${a}\r\n`).join(""),
  );
}

/** An argument of {@linkcode Publisher.command}: text, bytes, or bytes in pieces (sent as one argument). */
export type CommandArg = string | Uint8Array | readonly Uint8Array[];

/**
 * The RESP request for `args` as pieces: the text around the binary arguments joined, each large binary argument
 * referenced where it lies (not copied).
 */
function commandPieces(args: readonly CommandArg[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let text = `*${args.length}\r\n`;
  for (const a of args) {
    if (typeof a === "string") {
      text += `$${enc.encode(a).byteLength}\r\n${a}\r\n`;
      continue;
    }
    const pieces = a instanceof Uint8Array ? [a] : a;
    const size = byteLengthOf(pieces);
    text += `$${size}\r\n`;
    if (size > COPY_LIMIT) out.push(enc.encode(text), ...pieces);
    else out.push(joinBytes([enc.encode(text), ...pieces]));
    text = "\r\n";
  }
  out.push(enc.encode(text));
  return out;
}

const REPLY_ON = command(["CLIENT", "REPLY", "ON"]);
const REPLY_OFF = command(["CLIENT", "REPLY", "OFF"]);

// Above this, a payload is written from where it lies instead of being copied behind the command head: a segment
// of 1000 frames is ~30 MB, and every copy of it shows in the node's peak memory.
const COPY_LIMIT = 256 * 1024;

/**
 * PUBLISH topic payload: the request head for the topic (cached) + payload + CRLF, as one buffer (one write for a
 * frame), or, for a large payload, the head then the payload's own pieces (no copy of it). `into`, when given and
 * large enough, is where the one buffer is built (a buffer reused from frame to frame); else a new one is made.
 */
function publishCommand(
  head: Uint8Array,
  payload: Uint8Array | readonly Uint8Array[],
  into?: Uint8Array,
): Uint8Array[] {
  const pieces = payload instanceof Uint8Array ? [payload] : payload;
  const size = byteLengthOf(pieces);
  const len = enc.encode(`$${size}\r\n`);
  if (size > COPY_LIMIT) {
    const start = new Uint8Array(head.byteLength + len.byteLength);
    start.set(head, 0);
    start.set(len, head.byteLength);
    return [start, ...pieces, CRLF];
  }
  const total = head.byteLength + len.byteLength + size + 2;
  // Room to spare when a new buffer is made, so that the next, slightly larger frame still fits.
  const out = (into && into.byteLength >= total ? into : new Uint8Array(Math.ceil(total * 1.25))).subarray(
    0,
    total,
  );
  let at = 0;
  for (const p of [head, len, ...pieces, CRLF]) {
    out.set(p, at);
    at += p.byteLength;
  }
  return [out];
}

/**
 * A reply of the commands this connection sends: an integer, a simple or bulk string (null for a nil bulk), or an
 * error.
 */
type Reply = { ok: true; value: string | null } | { ok: false; error: string };

/**
 * Parses the replies of the commands this connection sends (PUBLISH, XADD, AUTH, SELECT, CLIENT: `:n`, `+OK`,
 * `$n` bulk strings such as an XADD's entry id, `-ERR ...`), whatever the chunking. Bulk strings are read as text:
 * these commands answer in ASCII. An array reply means the connection is not what we think: `push` throws.
 */
export class ReplyParser {
  #text = "";
  #dec = new TextDecoder();

  /**
   * Adds bytes read from the socket; returns the replies they complete, in order.
   *
   * @example
   * ```ts
   * new ReplyParser().push(new TextEncoder().encode(":1\r\n+OK\r\n")); // [{ ok: true, value: "1" }, { ok: true, value: "OK" }]
   * ```
   */
  push(bytes: Uint8Array): Reply[] {
    this.#text += this.#dec.decode(bytes, { stream: true });
    const out: Reply[] = [];
    for (;;) {
      const end = this.#text.indexOf("\r\n");
      if (end < 0) break;
      const line = this.#text.slice(0, end);
      const kind = line[0], rest = line.slice(1);
      if (kind === "$") {
        const n = Number(rest);
        if (!Number.isInteger(n) || n < -1) {
          throw new Error(`bad bulk reply from Redis: ${JSON.stringify(line)}`);
        }
        if (n === -1) {
          out.push({ ok: true, value: null });
          this.#text = this.#text.slice(end + 2);
          continue;
        }
        // The whole string and its CRLF must have arrived.
        if (this.#text.length < end + 2 + n + 2) break;
        out.push({ ok: true, value: this.#text.slice(end + 2, end + 2 + n) });
        this.#text = this.#text.slice(end + 2 + n + 2);
        continue;
      }
      this.#text = this.#text.slice(end + 2);
      if (kind === ":" || kind === "+") out.push({ ok: true, value: rest });
      else if (kind === "-") out.push({ ok: false, error: rest });
      else throw new Error(`unexpected reply from Redis: ${JSON.stringify(line.slice(0, 40))}`);
    }
    if (this.#text.length > 4096) throw new Error("reply line too long");
    return out;
  }
}

interface Pending {
  resolve(r: Reply | undefined): void;
}

/** One socket and its in-flight requests; replaced on every reconnect. */
class Link {
  readonly #conn: Deno.Conn;
  readonly #pending: Pending[] = [];
  readonly #parser = new ReplyParser();
  #closed = false;
  /** Resolves with the reason when the socket ends or fails. */
  readonly ended: Promise<string>;
  /** Serialises writes: a message must reach the socket whole before the next one starts. */
  #writing: Promise<void> = Promise.resolve();

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.ended = this.#read();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends a request (one buffer, or pieces written back to back); resolves with its reply, or undefined if the
   * link died before it came. */
  send(request: Uint8Array | Uint8Array[]): Promise<Reply | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    const reply = new Promise<Reply | undefined>((resolve) => this.#pending.push({ resolve }));
    void this.write(request);
    return reply;
  }

  /** Writes a request whose reply is off; resolves whether it reached the socket whole. */
  write(request: Uint8Array | Uint8Array[]): Promise<boolean> {
    const pieces = Array.isArray(request) ? request : [request];
    const done = this.#writing.then(async () => {
      if (this.#closed) return false;
      try {
        for (const piece of pieces) {
          let off = 0;
          while (off < piece.byteLength) off += await this.#conn.write(piece.subarray(off));
        }
        return true;
      } catch {
        // The socket is gone: the caller sees false and counts the message; close() lets the owner reconnect.
        this.close();
        return false;
      }
    });
    this.#writing = done.then(() => {});
    return done;
  }

  async #read(): Promise<string> {
    const buf = new Uint8Array(16 * 1024);
    let reason = "connection closed";
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        for (const r of this.#parser.push(buf.subarray(0, n))) this.#pending.shift()?.resolve(r);
      }
    } catch (e) {
      reason = (e as Error).name === "BadResource" ? "connection closed" : (e as Error).message;
    }
    this.close();
    return reason;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer.
    }
    for (const p of this.#pending.splice(0)) p.resolve(undefined);
  }
}

/** Redis' error text; for an ACL refusal, with the command and its key or channel (Redis' own text names neither). */
function refusal(args: readonly CommandArg[], error: string): string {
  if (!/^NOPERM\b/.test(error)) return error;
  return `Redis refused ${String(args[0]).toUpperCase()} ${
    typeof args[1] === "string" ? args[1] : ""
  }: ${error}`;
}

async function open(settings: RedisSettings, name: string | undefined, replies: boolean): Promise<Link> {
  const conn = settings.path
    ? await Deno.connect({ transport: "unix", path: settings.path })
    : await Deno.connect({ hostname: settings.host, port: settings.port });
  if ("setNoDelay" in conn) conn.setNoDelay(true);
  const link = new Link(conn);
  const setup: string[][] = [];
  if (settings.password !== undefined) {
    setup.push(
      settings.username ? ["AUTH", settings.username, settings.password] : ["AUTH", settings.password],
    );
  }
  if (settings.db !== 0) setup.push(["SELECT", String(settings.db)]);
  if (name) setup.push(["CLIENT", "SETNAME", name]);
  for (const args of setup) {
    const r = await link.send(command(args));
    if (!r || !r.ok) {
      link.close();
      throw new Error(r ? r.error : "connection closed during set-up");
    }
  }
  // Nothing answers this one (a Redis older than 3.2 answers an error, which nobody waits for: the read loop
  // drops replies that no request awaits).
  if (!replies) await link.write(REPLY_OFF);
  return link;
}

/**
 * A publishing connection to Redis that reconnects by itself.
 *
 * @example
 * ```ts
 * import type { RedisSettings } from "../runtime/env.ts";
 * declare const settings: RedisSettings, bytes: Uint8Array;
 * const pub = await Publisher.connect(settings, { onEvent: (e) => console.log(e.type) });
 * await pub.publish("topic", bytes);
 * ```
 */
export class Publisher {
  #link: Link | undefined;
  #closed = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #attempts = 0;
  /** Replies on: PUBLISH's subscriber count is read back. */
  readonly #replies: boolean;
  /** A request buffer free for reuse (its last write has completed); see `publish`. */
  #spare: Uint8Array | undefined;
  /** `*3 $7 PUBLISH $n topic` per topic: a node publishes on one or two topics. */
  readonly #heads = new Map<string, Uint8Array>();
  /** Topics whose first PUBLISH on the current connection was answered OK (see `publish`). */
  #allowed = new Set<string>();
  /** That first PUBLISH per topic while in flight: the messages behind it wait for it, keeping their order. */
  #checking = new Map<string, Promise<unknown>>();

  private constructor(
    readonly settings: RedisSettings,
    readonly opts: PublisherOptions,
    link: Link,
  ) {
    this.#replies = opts.countReceivers ?? false;
    this.#adopt(link);
  }

  /**
   * Opens the connection (AUTH, SELECT and CLIENT SETNAME as configured); rejects with the reason when Redis cannot
   * be reached within `connectTimeoutMs`.
   *
   * @example
   * ```ts
   * const pub = await Publisher.connect({ host: "127.0.0.1", port: 6379, db: 0, display: "127.0.0.1:6379" });
   * ```
   */
  static async connect(settings: RedisSettings, opts: PublisherOptions = {}): Promise<Publisher> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("timed out")), opts.connectTimeoutMs ?? 10_000);
    });
    let timedOut = false;
    const opening = open(settings, opts.name, opts.countReceivers ?? false);
    // A connection that completes after the timeout must not stay open behind the caller's back.
    opening.then((link) => timedOut && link.close(), () => {});
    try {
      return new Publisher(settings, opts, await Promise.race([opening, timeout]));
    } catch (e) {
      timedOut = true;
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** True while connected. */
  get ready(): boolean {
    return this.#link !== undefined && !this.#link.closed;
  }

  /**
   * PUBLISH: resolves with the number of subscribers that received the message (0 when replies are off), or -1
   * when Redis is not connected or the connection dropped before the message was sent (the caller counts the
   * message as not published). A message in pieces (see `encodeMessagePieces`) is sent as the pieces joined.
   *
   * @example
   * ```ts
   * declare const pub: Publisher, jpegMessage: Uint8Array;
   * let dropped = 0;
   * if ((await pub.publish("frames", jpegMessage)) < 0) dropped++;
   * ```
   */
  async publish(topic: string, bytes: Uint8Array | readonly Uint8Array[]): Promise<number> {
    const first = this.#checking.get(topic);
    if (first && !this.#allowed.has(topic)) await first;
    const link = this.#link;
    if (!link || link.closed) return -1;
    let head = this.#heads.get(topic);
    if (!head) {
      const t = enc.encode(topic);
      head = enc.encode(`*3\r\n$7\r\nPUBLISH\r\n$${t.byteLength}\r\n${topic}\r\n`);
      this.#heads.set(topic, head);
    }
    // A frame's request is built in a buffer kept from the last frame whenever that one has reached the socket:
    // allocating (and later collecting) ~100 KB per frame cost the RTSP node measurable CPU.
    const reuse = this.#spare;
    this.#spare = undefined;
    const request = publishCommand(head, bytes, reuse);
    // One piece is a request built here (a large payload goes out as its own pieces, never kept).
    const built = request.length === 1 ? new Uint8Array(request[0].buffer) : undefined;
    if (!this.#replies && this.#allowed.has(topic)) {
      const ok = await link.write(request);
      this.#spare = built ?? this.#spare;
      return ok ? 0 : -1;
    }
    // Replies on: always, or for the first message on a topic of each connection, so that a refusal (an ACL user
    // without this channel) is seen once rather than every message silently dropped.
    let reply: Promise<Reply | undefined>;
    if (this.#replies) reply = link.send(request);
    else {
      void link.send(REPLY_ON);
      reply = link.send(request);
      void link.write(REPLY_OFF);
    }
    const settled = Promise.withResolvers<void>();
    if (!this.#replies) this.#checking.set(topic, settled.promise);
    try {
      const r = await reply;
      this.#spare = built ?? this.#spare;
      if (!r) return -1;
      if (!r.ok) throw new Error(refusal(["PUBLISH", topic], r.error));
      this.#allowed.add(topic);
      return this.#replies ? Number(r.value) : 0;
    } finally {
      // After `allowed` is set, so the messages waiting behind this one take the fast path, in order.
      if (this.#checking.get(topic) === settled.promise) this.#checking.delete(topic);
      settled.resolve();
    }
  }

  /**
   * Sends one command whose arguments may be large binaries in pieces (written where they lie, never joined) and
   * resolves with its reply: a string, a number as text, or null. Rejects with Redis' error, or when the connection
   * is down or drops before the reply. With replies off on this connection they are turned on for this command
   * alone (`CLIENT REPLY ON`, the command, `CLIENT REPLY OFF`, written back to back so no PUBLISH falls between).
   *
   * @example
   * ```ts
   * declare const pub: Publisher, messagePieces: Uint8Array[];
   * const id = await pub.command(["XADD", "MSIGHT:STREAM:aggregated_video", "*", "d", messagePieces]);
   * ```
   */
  async command(args: readonly CommandArg[]): Promise<string | null> {
    const link = this.#link;
    if (!link || link.closed) throw new Error("the publishing connection to Redis is down");
    const request = commandPieces(args);
    let reply: Promise<Reply | undefined>;
    if (this.#replies) reply = link.send(request);
    else {
      void link.send(REPLY_ON);
      reply = link.send(request);
      void link.write(REPLY_OFF);
    }
    const r = await reply;
    if (!r) throw new Error("the publishing connection to Redis dropped before the reply");
    if (!r.ok) throw new Error(refusal(args, r.error));
    return r.value;
  }

  /** Closes the connection and stops reconnecting. */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#link?.close();
    this.#link = undefined;
    return Promise.resolve();
  }

  #adopt(link: Link): void {
    this.#link = link;
    this.#allowed = new Set();
    this.#attempts = 0;
    link.ended.then((reason) => {
      if (this.#closed || this.#link !== link) return;
      this.#link = undefined;
      this.opts.onEvent?.({ type: "lost", reason });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#attempts++;
    this.#retry = setTimeout(async () => {
      try {
        const link = await open(this.settings, this.opts.name, this.#replies);
        if (this.#closed) return link.close();
        this.#adopt(link);
        this.opts.onEvent?.({ type: "restored" });
      } catch {
        // Redis still down: the outage was reported once ("lost"); try again later.
        this.#schedule();
      }
    }, Math.min(100 * this.#attempts, 2000));
  }
}
