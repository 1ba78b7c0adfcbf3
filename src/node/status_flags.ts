/**
 * The `status` node's own flags (the common ones are added by `run_node.ts`), shared by the node, the launcher
 * and the reference YAML test.
 * @module
 */

export const STATUS_FLAGS = {
  json: { long: "json", type: "bool", default: false, help: "print JSON instead of tables" },
  staleAfter: {
    long: "stale-after",
    type: "number",
    default: 15,
    min: 0,
    metavar: "SECONDS",
    help:
      "mark one of our nodes STALE when its heartbeat is older than this (or 1.5 periods), an MSight source past " +
      "this or 60 s; MSight's aggregators and sinks beat per message and are shown as MSight shows them",
  },
  redisUrl: {
    long: "redis-url",
    type: "string",
    env: "REDIS_URL",
    help: "redis://host:port/db (default: MSIGHT_REDIS_MESSAGE_BROKER_*)",
  },
  busUrl: {
    long: "bus-url",
    type: "string",
    help: "the bus whose registry to read: redis://, redis+cluster://h1:p1,h2:p2 or nats://h1:4222 " +
      "(default: MSIGHT_BUS_URL, else MSIGHT_PUBSUB_BACKEND, redis unless set)",
  },
} as const;
