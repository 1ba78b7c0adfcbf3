/**
 * How many copies JetStream keeps of what we create (segment streams and their consumers, object store buckets,
 * the registry's KV buckets): 1 on a single server; on a cluster (the server's INFO names one) 3, so a server
 * lost mid-run loses nothing and its streams elect a new leader. A cluster with fewer than 3 JetStream servers
 * up refuses 3 replicas: the asset is then created with fewer (min(3, servers up)), said in one line. The count
 * is fixed at creation: an existing stream keeps the replicas it has.
 *
 * @module
 */

import type { NatsConnection } from "@nats-io/transport-node";
import { JetStreamApiError } from "@nats-io/jetstream";
import { errorMessage } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";

/** Replicas on a cluster of 3 or more servers: a majority (2) survives one server lost. */
export const CLUSTER_REPLICAS = 3;

/** 1 on a single server, {@linkcode CLUSTER_REPLICAS} when the connected server is in a cluster. */
export function preferredReplicas(nc: NatsConnection): number {
  return nc.info?.cluster ? CLUSTER_REPLICAS : 1;
}

/**
 * True when JetStream refused a replica count it has too few servers for: "insufficient resources" (10023) or,
 * from 2.9 on, "no suitable peers for placement" (10005).
 */
export function isInsufficientResources(err: unknown): boolean {
  return (err instanceof JetStreamApiError && (err.code === 10023 || err.code === 10005)) ||
    /insufficient resources|no suitable peers/i.test(errorMessage(err));
}

/**
 * Runs `create` with the preferred replica count and, while the cluster has too few servers for it, with one
 * fewer; says so in one line naming `what` when fewer than preferred were used.
 */
export async function withReplicas<T>(
  nc: NatsConnection,
  what: string,
  create: (replicas: number) => Promise<T>,
  log?: Logger,
): Promise<T> {
  const preferred = preferredReplicas(nc);
  for (let r = preferred;; r--) {
    try {
      const made = await create(r);
      if (r < preferred) {
        log?.warn(
          `${what} created with ${r} replica(s), not ${preferred}: the NATS cluster has too few servers up`,
        );
      }
      return made;
    } catch (err) {
      if (r <= 1 || !isInsufficientResources(err)) throw err;
    }
  }
}
