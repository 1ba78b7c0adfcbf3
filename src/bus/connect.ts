/**
 * Opens the bus a {@linkcode BusSelection} names: standalone Redis, Redis Cluster, or NATS (with the registry in
 * Redis when one is configured).
 *
 * @example
 * ```ts
 * import { connectBus } from "./connect.ts";
 * import { selectBus } from "./select.ts";
 * import type { Logger } from "../runtime/log.ts";
 * declare const flags: { busUrl?: string }, log: Logger;
 * const bus = await connectBus(selectBus({ busUrl: flags.busUrl }), log, { name: "video_dumper" });
 * await bus.close();
 * ```
 * @module
 */

import type { Logger } from "../runtime/log.ts";
import { connectNats } from "./nats/connect.ts";
import { NatsBackend } from "./nats/mod.ts";
import { RedisBus } from "./redis.ts";
import { RedisBackend, RedisRegistry } from "./redis_backend/mod.ts";
import { RedisClusterBackend } from "./redis_cluster/mod.ts";
import type { BusSelection } from "./select.ts";
import type { Bus } from "./types.ts";

/** Options of {@linkcode connectBus}. */
export interface ConnectBusOptions {
  /** The connection name the servers show (the node's `--name`). */
  name?: string;
  /** How long to wait for the servers at startup before a fatal line. */
  connectTimeoutS?: number;
  /** The node publishes (Redis: open PUBLISH's own connection). */
  publisher?: boolean;
}

/** Connects to the selected back end; an unreachable server at startup is a `FatalError`. */
export async function connectBus(sel: BusSelection, log: Logger, opts: ConnectBusOptions = {}): Promise<Bus> {
  switch (sel.backend) {
    case "redis":
      log.addSecret(sel.redis.password);
      return new RedisBackend(await RedisBus.connect(sel.redis, log, opts));
    case "nats": {
      const link = await connectNats(sel.nats, log, opts);
      if (sel.registry === "nats") return new NatsBackend(link, sel.nats.display, log);
      log.addSecret(sel.registry.redis.password);
      let redis: RedisBus;
      try {
        redis = await RedisBus.connect(sel.registry.redis, log, { ...opts, publisher: false });
      } catch (err) {
        await link.conn.close();
        throw err;
      }
      return new NatsBackend(link, sel.nats.display, log, {
        registry: new RedisRegistry(redis.client, redis.settings.display),
        onClose: () => redis.close(),
      });
    }
    case "redis-cluster":
      return await RedisClusterBackend.connect(sel.cluster, log, opts);
  }
}
