/**
 * The flags every node takes (MSight's common flags plus ours), and the topic/sensor flags that nodes opt into.
 * Defaults follow MSight where it has one; heartbeat intervals are seconds here (MSight counts loop iterations).
 *
 * @example
 * ```ts
 * import { COMMON_FLAGS, PUBLISH_TOPIC } from "./common_flags.ts";
 * const specs = { ...COMMON_FLAGS, ...PUBLISH_TOPIC };
 * ```
 * @module
 */

import { LOG_LEVELS } from "../runtime/log.ts";

/** Flags of every node. */
export const COMMON_FLAGS = {
  name: { long: "name", short: "n", type: "string", required: true, help: "node name, unique on this Redis" },
  config: {
    long: "config",
    type: "string",
    metavar: "FILE.yaml",
    help: "read flags from a YAML file (the command line wins)",
  },
  loggingLevel: {
    long: "logging-level",
    type: "string",
    choices: LOG_LEVELS,
    default: "INFO",
    help: "log level",
  },
  logFormat: {
    long: "log-format",
    type: "string",
    choices: ["text", "json"] as const,
    default: "text",
    help: "text is MSight's line format; json writes one JSON object per line",
  },
  heartbeatUpdateInterval: {
    long: "heartbeat-update-interval",
    type: "number",
    default: 10,
    min: 0,
    minExclusive: true,
    metavar: "SECONDS",
    help: "how often the node refreshes its MSIGHT:NODES entry",
  },
  heartbeatTolerance: {
    long: "heartbeat-tolerance",
    type: "number",
    default: 15,
    metavar: "SECONDS",
    help:
      "accepted for MSight compatibility; our heartbeat is a timer, and `status --stale-after` judges staleness",
  },
  heartbeatCheckingDuration: {
    long: "heartbeat-checking-duration",
    type: "number",
    default: 15,
    min: 0,
    minExclusive: true,
    metavar: "SECONDS",
    help:
      "accepted for MSight compatibility: each heartbeat rewrites the whole entry, so one lost in a Redis restart returns within one --heartbeat-update-interval",
  },
  actionOnError: {
    long: "action-on-error",
    type: "string",
    choices: ["continue", "stop"] as const,
    default: "stop",
    help:
      "on an unexpected internal error: stop the node (exit 1) or log it and continue; a bad message never stops it",
  },
  gap: { long: "gap", type: "int", default: 0, min: 0, help: "process every (gap+1)-th message" },
  groupId: {
    long: "group-id",
    type: "string",
    help:
      "consumer group (MSight: the NATS queue group / Kafka consumer group): our sinks read the durable stream in this " +
      "group (default: --name), so sinks sharing it share the work; sources and the aggregator accept it and, like " +
      "MSight's on Redis, do not use it",
  },
  metricsPort: {
    long: "metrics-port",
    type: "int",
    default: 0,
    min: 0,
    max: 65535,
    help: "serve /metrics, /healthz and /readyz on this port (0: off)",
  },
  metricsHost: {
    long: "metrics-host",
    type: "string",
    default: "127.0.0.1",
    help: "address for --metrics-port",
  },
  redisUrl: {
    long: "redis-url",
    type: "string",
    env: "REDIS_URL",
    help: "redis://[user:pass@]host:port/db (default: the MSIGHT_REDIS_MESSAGE_BROKER_* variables)",
  },
  busUrl: {
    long: "bus-url",
    type: "string",
    // MSIGHT_BUS_URL is read by src/bus/select.ts, so a bad value is named as the variable, not the flag.
    help: "the bus by URL: redis://, rediss://, redis+cluster://h1:p1,h2:p2 or nats://h1:4222,h2:4222 " +
      "(default: MSIGHT_BUS_URL, else MSIGHT_PUBSUB_BACKEND, redis unless set)",
  },
  redisConnectTimeout: {
    long: "redis-connect-timeout",
    type: "number",
    default: 10,
    min: 0,
    minExclusive: true,
    metavar: "SECONDS",
    help: "how long to wait for Redis at startup before exiting",
  },
  shutdownGrace: {
    long: "shutdown-grace",
    type: "number",
    default: 20,
    min: 0,
    metavar: "SECONDS",
    help: "on SIGINT/SIGTERM, how long to flush before exiting anyway",
  },
} as const;

/**
 * `-g/--gap`, as MSight's common parser has it, for every node but the RTSP one (where `-g` is the GPU index, as
 * our tutorials say; `--gap` is the gap there).
 */
export const GAP_WITH_SHORT = { gap: { ...COMMON_FLAGS.gap, short: "g" } } as const;

/** `-pt/--publish-topic`, for nodes that publish. */
export const PUBLISH_TOPIC = {
  publishTopic: {
    long: "publish-topic",
    short: "pt",
    type: "string",
    required: true,
    help: "topic to publish on",
  },
} as const;

/** `-st/--subscribe-topic`, for nodes that subscribe. */
export const SUBSCRIBE_TOPIC = {
  subscribeTopic: {
    long: "subscribe-topic",
    short: "st",
    type: "string",
    required: true,
    help: "topic to subscribe to",
  },
} as const;

/**
 * `-sn/--sensor-name` as MSight's processing nodes take it: optional, and unused (MSight's aggregator groups frames
 * by each message's own sensor name and never reads it); accepted so MSight's commands run unchanged.
 */
export const PROCESSING_SENSOR_NAME = {
  sensorName: {
    long: "sensor-name",
    short: "sn",
    type: "string",
    help:
      "accepted as MSight's processing nodes do, and unused: frames are grouped by each message's sensor_name",
  },
} as const;

/** `-sn/--sensor-name`, for source nodes. */
export const SENSOR_NAME = {
  sensorName: {
    long: "sensor-name",
    short: "sn",
    type: "string",
    required: true,
    help: "sensor name stamped on each frame",
  },
} as const;
