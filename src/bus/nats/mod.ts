/**
 * The NATS back end of {@linkcode Bus}, wire-compatible with MSight's `NATSPubSub`: core NATS subjects are the topic
 * names, payloads the same MessagePack bytes, and a subscription's group is a NATS queue group (MSight's
 * `group_id`). Durable segments go through JetStream (`segments.ts`); the registry is in Redis when one is
 * configured, else in JetStream KV (`registry.ts`).
 *
 * Core NATS refuses a message larger than the server's `max_payload`: such a message is not sent, and the log says
 * so in one line naming the setting (first time, then at most once a minute with the count), never silently.
 *
 * @example
 * ```ts
 * import { NatsBackend } from "./mod.ts";
 * import { connectNats } from "./connect.ts";
 * import type { NatsSettings } from "../select.ts";
 * import type { Logger } from "../../runtime/log.ts";
 * declare const settings: NatsSettings, log: Logger, bytes: Uint8Array;
 * const link = await connectNats(settings, log);
 * const bus = new NatsBackend(link, settings.display, log);
 * await bus.publish("rtsp_topic", bytes);
 * await bus.close();
 * ```
 * @module
 */

import type { Subscription } from "@nats-io/transport-node";
import { joinBytes } from "../../runtime/bytes.ts";
import { errorMessage } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type { Bus, BusMessageHandler, BusPayload, RegistryStore, SubscribeOptions } from "../types.ts";
import type { NatsLink } from "./connect.ts";
import { NatsKvRegistry } from "./registry.ts";
import { NatsSegments } from "./segments.ts";

/** {@linkcode Bus} over NATS; see the module doc. */
export class NatsBackend implements Bus {
  readonly kind = "nats" as const;
  readonly segments: NatsSegments;
  readonly registry: RegistryStore;
  readonly #subs = new Map<string, Map<BusMessageHandler, Subscription>>();
  readonly #tooLarge = new Map<string, { count: number; lastLog: number }>();
  readonly #onClose?: () => Promise<void>;
  #closed = false;

  /**
   * `registry`: where the registry lives when not in JetStream KV (Redis); `onClose` closes what it needs.
   */
  constructor(
    readonly link: NatsLink,
    readonly display: string,
    readonly log: Logger,
    opts: { registry?: RegistryStore; onClose?: () => Promise<void> } = {},
  ) {
    this.segments = new NatsSegments(link.conn, () => link.maxPayload, { log });
    this.registry = opts.registry ?? new NatsKvRegistry(link.conn, display, log);
    this.#onClose = opts.onClose;
  }

  get ready(): boolean {
    return this.link.ready;
  }

  publish(topic: string, message: BusPayload): Promise<number> {
    // While reconnecting the client would buffer frames and send them stale later: drop (the caller counts it).
    if (!this.link.ready) return Promise.resolve(-1);
    const bytes = message instanceof Uint8Array ? message : joinBytes(message);
    const max = this.link.maxPayload;
    if (bytes.byteLength > max) {
      this.#reportTooLarge(topic, bytes.byteLength, max);
      return Promise.resolve(-1);
    }
    try {
      this.link.conn.publish(topic, bytes);
    } catch (err) {
      this.log.warn(`NATS publish on ${topic} failed: ${errorMessage(err)}`);
      return Promise.resolve(-1);
    }
    // Core NATS does not say how many received it.
    return Promise.resolve(0);
  }

  #reportTooLarge(topic: string, size: number, max: number): void {
    const s = this.#tooLarge.get(topic) ?? { count: 0, lastLog: 0 };
    s.count++;
    this.#tooLarge.set(topic, s);
    if (Date.now() - s.lastLog < 60_000) return;
    s.lastLog = Date.now();
    this.log.error(
      `not sent: a ${size}-byte message on ${topic} is larger than the NATS server's max_payload (${max} bytes; ` +
        `${s.count} so far): raise max_payload in the server's configuration, or send smaller messages`,
    );
  }

  subscribe(topic: string, handler: BusMessageHandler, opts: SubscribeOptions = {}): Promise<void> {
    const byHandler = this.#subs.get(topic) ?? new Map<BusMessageHandler, Subscription>();
    if (byHandler.has(handler)) return Promise.resolve();
    const sub = this.link.conn.subscribe(topic, {
      queue: opts.group,
      callback: (err, msg) => {
        if (err) return void this.log.warn(`NATS subscription to ${topic}: ${errorMessage(err)}`);
        try {
          handler(msg.data, topic);
        } catch (e) {
          this.log.error(`handling a message on ${topic} failed: ${errorMessage(e)}`);
        }
      },
    });
    byHandler.set(handler, sub);
    this.#subs.set(topic, byHandler);
    // Resolves once the server has the subscription, so a publish right after is not missed.
    return this.link.conn.flush();
  }

  unsubscribe(topic: string, handler: BusMessageHandler): Promise<void> {
    const byHandler = this.#subs.get(topic);
    byHandler?.get(handler)?.unsubscribe();
    byHandler?.delete(handler);
    return Promise.resolve();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const conn = this.link.conn;
    if (!conn.isClosed()) {
      // Drain flushes what was published; bounded, as a dead server would make it wait forever.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        conn.drain().catch((err) => this.log.debug(`NATS drain: ${errorMessage(err)}`)),
        new Promise((r) => (timer = setTimeout(r, 2000))),
      ]);
      clearTimeout(timer);
      await conn.close().catch((err) => this.log.debug(`NATS close: ${errorMessage(err)}`));
    }
    await this.#onClose?.();
  }
}
