/**
 * The one path by which a subscribing node takes messages off a topic: decode, drop and count malformed messages
 * (logged once per kind, then every 1000th), apply `--gap`, and hand good messages to the node in arrival order.
 * A bad message never reaches the node's code and never stops it.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "./redis.ts";
 * import type { Logger } from "../runtime/log.ts";
 * import type { Metrics } from "../runtime/metrics.ts";
 * import { Intake } from "./intake.ts";
 * declare const bus: RedisBus, log: Logger, metrics: Metrics;
 * const intake = new Intake({ topic: "rtsp_topic", log, metrics, gap: 0 });
 * await bus.subscribe("rtsp_topic", (bytes) => intake.push(bytes, (msg) => console.log(msg.sensorName)));
 * ```
 * @module
 */

import type { Logger } from "../runtime/log.ts";
import type { Metrics } from "../runtime/metrics.ts";
import type { BusMessage } from "./message.ts";
import { decodeMessage, MalformedMessageError } from "./wire.ts";

/** Options of an {@linkcode Intake}. */
export interface IntakeOptions {
  topic: string;
  log: Logger;
  metrics: Metrics;
  /** Pass every (gap+1)-th good message. */
  gap?: number;
  /** Accepted `data_type`s; others are counted as `unexpected_data_type`. */
  accept?: readonly string[];
}

/** Decodes and filters one topic's messages. */
export class Intake {
  #seen = new Map<string, number>();
  #count = 0;
  readonly received;
  readonly malformed;

  constructor(readonly opts: IntakeOptions) {
    this.received = opts.metrics.counter("messages_received_total", "Messages received from the bus");
    this.malformed = opts.metrics.counter(
      "messages_malformed_total",
      "Messages dropped because they could not be decoded or used, by kind",
    );
  }

  /** Decodes `bytes`; returns the message, or undefined when it was malformed or skipped by `--gap`. */
  decode(bytes: Uint8Array): BusMessage | undefined {
    this.received.inc(1, { topic: this.opts.topic });
    let msg: BusMessage;
    try {
      msg = decodeMessage(bytes);
    } catch (err) {
      if (!(err instanceof MalformedMessageError)) throw err;
      this.#reject(err.kind, err.message, bytes.length);
      return undefined;
    }
    if (this.opts.accept && !this.opts.accept.includes(msg.dataType)) {
      this.#reject(
        "unexpected_data_type",
        `data_type ${msg.dataType} is not one this node takes`,
        bytes.length,
      );
      return undefined;
    }
    const gap = this.opts.gap ?? 0;
    if (gap > 0 && this.#count++ % (gap + 1) !== 0) return undefined;
    return msg;
  }

  /** Decodes `bytes` and calls `handler` with a good message. */
  push(bytes: Uint8Array, handler: (msg: BusMessage) => void): void {
    const msg = this.decode(bytes);
    if (msg) handler(msg);
  }

  #reject(kind: string, message: string, size: number): void {
    this.malformed.inc(1, { topic: this.opts.topic, kind });
    const n = (this.#seen.get(kind) ?? 0) + 1;
    this.#seen.set(kind, n);
    if (n === 1 || n % 1000 === 0) {
      this.opts.log.warn(
        `dropped a malformed message on ${this.opts.topic} (${size} bytes): ${message}` +
          (n > 1
            ? ` [${n} of this kind so far]`
            : " [further ones of this kind are counted, logged every 1000th]"),
      );
    }
  }
}
