/**
 * The flag both sinks (dumper, pusher) share: where their segments come from.
 *
 * @example
 * ```ts
 * import { TRANSPORT_FLAG } from "./transport_flag.ts";
 * const flags = { ...TRANSPORT_FLAG };
 * ```
 * @module
 */

import { type SegmentReaderOptions, type Transport, TRANSPORTS } from "../bus/segment_reader.ts";

/** `--transport auto|stream|pubsub` and `--claim-idle`. */
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
  claimIdle: {
    long: "claim-idle",
    type: "number",
    default: 60,
    min: 0,
    minExclusive: true,
    metavar: "SECONDS",
    help:
      "on the durable stream, a segment another member of the --group-id held this long unacknowledged (it " +
      "probably died) is taken over (on NATS: fixed when the group is created)",
  },
} as const;

/** What {@linkcode sinkReaderOptions} needs of a sink node's context. */
export interface SinkContext {
  bus: SegmentReaderOptions["bus"];
  log: SegmentReaderOptions["log"];
  metrics: SegmentReaderOptions["metrics"];
  signal: AbortSignal;
  flags: {
    subscribeTopic: string;
    name: string;
    groupId?: string;
    transport: string;
    gap: number;
    claimIdle: number;
  };
}

/**
 * The segment-reader options of a sink: its topic, its `--group-id` (default: its `--name`) as the stream's consumer
 * group with its `--name` as the member, `--transport`, `--claim-idle` and `--gap`.
 */
export function sinkReaderOptions(ctx: SinkContext): SegmentReaderOptions {
  return {
    bus: ctx.bus,
    log: ctx.log,
    metrics: ctx.metrics,
    topic: ctx.flags.subscribeTopic,
    group: ctx.flags.groupId ?? ctx.flags.name,
    consumer: ctx.flags.name,
    queueGroup: ctx.flags.groupId,
    claimIdleMs: ctx.flags.claimIdle * 1000,
    transport: ctx.flags.transport as Transport,
    signal: ctx.signal,
    gap: ctx.flags.gap,
  };
}
