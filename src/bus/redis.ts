/**
 * The Redis connection of one node: a command connection (publish, registry, streams) and, on demand, a subscriber
 * connection. ioredis reconnects by itself after a Redis restart and resubscribes; this module turns its events
 * into one log line per state change and a `ready` flag for `/readyz`.
 *
 * Publishing fails fast while Redis is down (the message is counted as dropped) instead of piling frames up in
 * ioredis' offline queue, which would grow without bound and replay stale frames later.
 *
 * @example
 * ```ts
 * import { RedisBus } from "./redis.ts";
 * import { redisSettingsFromEnv } from "../runtime/env.ts";
 * import { Logger } from "../runtime/log.ts";
 * const bus = await RedisBus.connect(redisSettingsFromEnv(), new Logger({ device: "d", node: "n" }));
 * await bus.publish("rtsp_topic", new Uint8Array([1, 2, 3]));
 * await bus.close();
 * ```
 * @module
 */

import { Redis, type RedisOptions } from "ioredis";
import { Buffer } from "node:buffer";
import { REDIS_ENV_PREFIX, type RedisSettings } from "../runtime/env.ts";
import { FatalError, isRedisPermissionError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { type CommandArg, Publisher } from "./publisher.ts";
import { joinBytes } from "../runtime/bytes.ts";
import { delay } from "../runtime/async.ts";

/** Called with each message's raw bytes, in arrival order. */
export type MessageHandler = (bytes: Uint8Array, topic: string) => void;

function ioredisOptions(s: RedisSettings, name: string): RedisOptions {
  const opts: RedisOptions = {
    lazyConnect: true,
    connectionName: name.replace(/[^A-Za-z0-9_.:-]/g, "_"),
    db: s.db,
    username: s.username,
    password: s.password,
    // Keep retrying forever, backing off to 2 s: an edge box outlives many Redis restarts.
    retryStrategy: (times) => Math.min(100 * times, 2000),
    maxRetriesPerRequest: 3,
    enableReadyCheck: true,
    // No CLIENT SETINFO (Redis ≥ 7.2 only): one command fewer for each node's ACL user to allow.
    disableClientInfo: true,
  };
  if (s.path) opts.path = s.path;
  else {
    opts.host = s.host;
    opts.port = s.port;
  }
  if (s.tls) {
    const t = readTlsFiles(s);
    opts.tls = { cert: t.cert, key: t.key, ca: t.ca };
  }
  return opts;
}

/** The TLS files' PEM text; a missing or unreadable one is a one-line error naming its variable. */
function readTlsFiles(s: RedisSettings): { cert?: string; key?: string; ca?: string } {
  const read = (path: string | undefined, variable: string) => {
    if (!path) return undefined;
    try {
      return Deno.readTextFileSync(path);
    } catch (err) {
      throw new FatalError(
        `${REDIS_ENV_PREFIX}${variable}=${path}: cannot read it (${(err as Error).message.split(" (os")[0]})`,
        2,
      );
    }
  };
  return {
    cert: read(s.tls?.certFile, "TLS_CERT_FILE"),
    key: read(s.tls?.keyFile, "TLS_KEY_FILE"),
    ca: read(s.tls?.caFile, "TLS_CA_CERT_FILE"),
  };
}

/**
 * Over TLS, one handshake and PING before ioredis connects: a certificate problem (a server signed by another CA,
 * a client certificate required but not given) becomes one line at once, instead of endless reconnects or a stack
 * trace from deep inside the TLS socket. A Redis that is not up yet is left to the usual wait.
 */
async function checkTls(s: RedisSettings, timeoutMs: number): Promise<void> {
  if (!s.tls || s.path) return;
  const files = readTlsFiles(s);
  const caVar = `${REDIS_ENV_PREFIX}TLS_CA_CERT_FILE`;
  let conn: Deno.TlsConn;
  try {
    conn = await Deno.connectTls({
      hostname: s.host,
      port: s.port,
      caCerts: files.ca ? [files.ca] : undefined,
      cert: files.cert,
      key: files.key,
    });
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionRefused || err instanceof Deno.errors.TimedOut) return;
    throw tlsFailure(s, err, caVar);
  }
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    await conn.handshake();
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const n = await conn.read(new Uint8Array(64));
    if (n === null) {
      throw new FatalError(
        `Redis at ${s.display} closed the TLS connection after the handshake: it requires a client certificate ` +
          `(set ${REDIS_ENV_PREFIX}TLS_CERT_FILE and ${REDIS_ENV_PREFIX}TLS_KEY_FILE to one signed by its CA)`,
      );
    }
  } catch (err) {
    throw err instanceof FatalError ? err : tlsFailure(s, err, caVar);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timer already.
    }
  }
}

function tlsFailure(s: RedisSettings, err: unknown, caVar: string): FatalError {
  const why = (err as Error).message.split("\n")[0];
  if (/CertificateRequired|BadCertificate|UnknownCA/i.test(why)) {
    return new FatalError(
      `Redis at ${s.display}: the server refused our TLS client certificate (${why}): set ` +
        `${REDIS_ENV_PREFIX}TLS_CERT_FILE and ${REDIS_ENV_PREFIX}TLS_KEY_FILE to one signed by its CA`,
    );
  }
  if (/certificate|UnknownIssuer|BadSignature|NotValidForName|Expired/i.test(why)) {
    return new FatalError(
      `Redis at ${s.display}: TLS refused the server's certificate (${why}): ` +
        (s.tls?.caFile
          ? `${caVar}=${s.tls.caFile} must hold the CA that signed it`
          : `set ${caVar} to the CA that signed it`),
    );
  }
  return new FatalError(`Redis at ${s.display}: TLS connection failed (${why})`);
}

/** Waits for `ready`, or rejects with the last connection error after `timeoutMs`. */
function waitReady(client: Redis, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let lastError = "no answer";
    const onError = (e: Error) => (lastError = (e as NodeJS.ErrnoException).code ?? e.message);
    const done = (err?: Error) => {
      clearTimeout(timer);
      client.off("ready", onReady);
      client.off("error", onError);
      err ? reject(err) : resolve();
    };
    const onReady = () => done();
    const timer = setTimeout(() => done(new Error(lastError)), timeoutMs);
    client.on("error", onError);
    client.once("ready", onReady);
    client.connect().catch(() => {/* retried by ioredis; reported by the timer */});
  });
}

/** A node's connections to Redis. */
export class RedisBus {
  #sub?: Redis;
  /** PUBLISH's own connection (publisher.ts), for nodes that publish, except over TLS. */
  #pub?: Publisher;
  #handlers = new Map<string, MessageHandler[]>();
  #closed = false;

  private constructor(
    /**
     * The command connection, for the modules of `src/bus` that need more than the methods below (registry,
     * streams). The rest of the project goes through those methods: the bus module owns Redis.
     */
    readonly client: Redis,
    readonly settings: RedisSettings,
    readonly log: Logger,
    readonly name: string,
  ) {
    this.#watch(client, "Redis");
  }

  /**
   * Connects, waiting up to `connectTimeoutS` for Redis at startup: an unreachable Redis at startup is a one-line
   * fatal error (exit 1); once running, outages are ridden out by reconnecting.
   */
  static async connect(
    settings: RedisSettings,
    log: Logger,
    opts: {
      name?: string;
      connectTimeoutS?: number;
      /** Open PUBLISH's dedicated connection now (nodes with a publish topic). */
      publisher?: boolean;
    } = {},
  ): Promise<RedisBus> {
    const name = opts.name ?? "msight-node";
    await checkTls(settings, (opts.connectTimeoutS ?? 10) * 1000);
    const client = new Redis(ioredisOptions(settings, name));
    client.on("error", () => {/* reported through state changes, once */});
    try {
      await waitReady(client, (opts.connectTimeoutS ?? 10) * 1000);
    } catch (err) {
      client.disconnect();
      throw new FatalError(
        `cannot reach Redis at ${settings.display} (${(err as Error).message}): start redis-server or set ` +
          `MSIGHT_REDIS_MESSAGE_BROKER_HOST/PORT or REDIS_URL`,
      );
    }
    const bus = new RedisBus(client, settings, log, name);
    if (opts.publisher && !settings.tls) {
      let down = false;
      try {
        bus.#pub = await Publisher.connect(settings, {
          name: `${client.options.connectionName}:pub`,
          connectTimeoutMs: (opts.connectTimeoutS ?? 10) * 1000,
          onEvent: (e) => {
            if (bus.#closed) return;
            if (e.type === "lost" && !down) {
              log.warn(`Redis publisher connection lost (${e.reason}): reconnecting`);
            }
            if (e.type === "restored" && down) log.info("Redis publisher connection restored");
            down = e.type === "lost";
          },
        });
      } catch (err) {
        client.disconnect();
        throw new FatalError(`cannot publish on Redis at ${settings.display} (${(err as Error).message})`);
      }
    }
    return bus;
  }

  #watch(conn: Redis, label: string): void {
    let down = false;
    conn.on("error", (e: Error) => {
      if (!down && !this.#closed) {
        down = true;
        this.log.warn(
          `${label} connection lost (${(e as NodeJS.ErrnoException).code ?? e.message}): reconnecting`,
        );
      }
    });
    conn.on("close", () => {
      if (!down && !this.#closed) {
        down = true;
        this.log.warn(`${label} connection closed: reconnecting`);
      }
    });
    conn.on("ready", () => {
      if (down && !this.#closed) this.log.info(`${label} connection restored`);
      down = false;
    });
  }

  /** True while the command connection (and the subscriber, if any) is usable. */
  get ready(): boolean {
    return this.client.status === "ready" && (this.#sub === undefined || this.#sub.status === "ready") &&
      (this.#pub === undefined || this.#pub.ready);
  }

  /**
   * Publishes on pub/sub (channel = topic name). Returns the number of subscribers that got it, or -1 when Redis
   * is not connected (the message is dropped: the caller counts it). A message in pieces is sent without being
   * joined, except over TLS (ioredis needs one buffer).
   */
  async publish(topic: string, message: Uint8Array | readonly Uint8Array[]): Promise<number> {
    return await this.#refusals(async () => {
      if (this.#pub) return await this.#pub.publish(topic, message);
      if (this.client.status !== "ready") return -1;
      const bytes = message instanceof Uint8Array ? message : joinBytes(message);
      // A bare Uint8Array would be sent as the text "1,2,3": ioredis needs a Buffer for binary.
      return await this.client.publish(topic, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    });
  }

  /**
   * Called once with the first ACL refusal (`NOPERM`) met by publish, command or subscribe: a missing permission
   * does not heal by retrying, so the node stops with that one line (run_node sets this).
   */
  onRefused: ((err: unknown) => void) | undefined;
  #refused = false;

  async #refusals<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isRedisPermissionError(err) && !this.#refused) {
        this.#refused = true;
        this.onRefused?.(err);
      }
      throw err;
    }
  }

  /**
   * Publishes on pub/sub and appends the same message to a durable stream (`XADD key MAXLEN ~ maxLen`), in one write
   * on the publishing connection. Resolves as {@linkcode publish}: -1 when Redis is not connected (the message is
   * on neither).
   */
  async publishAndAppend(
    topic: string,
    stream: { key: string; maxLen: number },
    message: Uint8Array | readonly Uint8Array[],
  ): Promise<number> {
    return await this.#refusals(async () => {
      if (this.#pub) return await this.#pub.publishAndAppend(topic, stream, message);
      if (this.client.status !== "ready") return -1;
      const bytes = message instanceof Uint8Array ? message : joinBytes(message);
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      // A pipeline, not MULTI: the ACL lines give nodes no MULTI/EXEC, and the two need not be atomic.
      const res = await this.client.pipeline().publish(topic, buf)
        .xadd(stream.key, "MAXLEN", "~", String(stream.maxLen), "*", "d", buf).exec();
      for (const [err] of res ?? []) if (err) throw err;
      return Number(res?.[0]?.[1] ?? -1);
    });
  }

  /**
   * Sends one command whose binary arguments may be in pieces, on the publishing connection where there is one, so
   * a large message (a segment) is written where it lies instead of joined; resolves with its string/integer/nil
   * reply. Without that connection (TLS, or a node that does not publish) the pieces are joined for ioredis.
   *
   * @example
   * ```ts
   * declare const bus: RedisBus, messagePieces: Uint8Array[];
   * const id = await bus.command(["XADD", "MSIGHT:STREAM:aggregated_video", "*", "d", messagePieces]);
   * ```
   */
  command(args: readonly CommandArg[]): Promise<string | null> {
    return this.#refusals(async () => {
      if (this.#pub) return await this.#pub.command(args);
      const [name, ...rest] = args.map((a) => {
        if (typeof a === "string") return a;
        const b = a instanceof Uint8Array ? a : joinBytes(a);
        return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
      });
      const reply = await this.client.call(String(name), ...rest);
      return reply === null ? null : String(reply);
    });
  }

  /**
   * Calls `fn` each time the command connection is ready again after an outage: a Redis restart may have emptied
   * what the node wrote (registrations, announcements). Returns the function that stops calling it.
   */
  onReconnect(fn: () => void): () => void {
    this.client.on("ready", fn);
    return () => void this.client.off("ready", fn);
  }

  /** Every field of the hash at `key` (empty when there is none). */
  async readHash(key: string): Promise<Record<string, string>> {
    return await this.client.hgetall(key);
  }

  /** Sets one field of the hash at `key`. */
  async setField(key: string, field: string, value: string): Promise<void> {
    await this.client.hset(key, field, value);
  }

  /** Removes one field of the hash at `key`. */
  async deleteField(key: string, field: string): Promise<void> {
    await this.client.hdel(key, field);
  }

  /** Removes `key`. */
  async deleteKey(key: string): Promise<void> {
    await this.client.del(key);
  }

  /** Subscribes to a topic; `handler` gets every message's bytes. Resubscribes by itself after reconnects. */
  async subscribe(topic: string, handler: MessageHandler): Promise<void> {
    if (!this.#sub) {
      const sub = this.client.duplicate({ connectionName: `${this.client.options.connectionName}:sub` });
      sub.on("error", () => {});
      this.#watch(sub, "Redis subscriber");
      sub.on("messageBuffer", (channel: Buffer, message: Buffer) => {
        const t = channel.toString();
        const bytes = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
        for (const h of this.#handlers.get(t) ?? []) h(bytes, t);
      });
      await waitReady(sub, 10_000).catch((e) => {
        sub.disconnect();
        throw new FatalError(`cannot subscribe on Redis at ${this.settings.display} (${e.message})`);
      });
      this.#sub = sub;
    }
    const list = this.#handlers.get(topic) ?? [];
    list.push(handler);
    this.#handlers.set(topic, list);
    const sub = this.#sub;
    if (list.length === 1) await this.#refusals(() => sub.subscribe(topic));
  }

  /** Removes a handler; the topic is unsubscribed when it has none left. */
  async unsubscribe(topic: string, handler: MessageHandler): Promise<void> {
    const list = (this.#handlers.get(topic) ?? []).filter((h) => h !== handler);
    if (list.length > 0) return void this.#handlers.set(topic, list);
    this.#handlers.delete(topic);
    await this.#sub?.unsubscribe(topic);
  }

  /** Closes both connections (pending commands are flushed first when possible). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const quit = async (c: Redis) => {
      try {
        if (c.status === "ready") {
          // At most 1 s for the flush; the timer ends with it, so a closed bus leaves none behind.
          const flushed = new AbortController();
          await Promise.race([c.quit().finally(() => flushed.abort()), delay(1000, flushed.signal)]);
        }
      } catch {
        // Already gone: nothing to flush.
      }
      c.disconnect();
    };
    if (this.#sub) await quit(this.#sub);
    await this.#pub?.close();
    await quit(this.client);
  }
}
