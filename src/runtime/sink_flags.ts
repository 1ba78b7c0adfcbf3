/**
 * The flag both sinks (dumper, pusher) share: where their segments come from.
 *
 * @example
 * ```ts
 * import { TRANSPORT_FLAG } from "./sink_flags.ts";
 * const flags = { ...TRANSPORT_FLAG };
 * ```
 * @module
 */

import { TRANSPORTS } from "../bus/segment_reader.ts";

/** `--transport auto|stream|pubsub`. */
export const TRANSPORT_FLAG = {
  transport: {
    long: "transport",
    type: "string",
    choices: TRANSPORTS,
    default: "auto",
    help:
      "stream: the topic's durable Redis Stream (nothing lost while this node is down); pubsub: plain pub/sub as " +
      "MSight; auto: stream when a producer announced one for the topic, else pubsub",
  },
} as const;
