/**
 * A private Redis Cluster for one test file: 3 masters and 3 replicas of the Debian `redis-server`
 * (`--cluster-enabled yes`, no persistence) on free loopback ports, joined with
 * `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`, ready once every replica has synced. Any node can be killed (failover tests);
 * `stop` kills them all and removes their folder.
 *
 * @example
 * ```ts
 * import { startRedisCluster } from "./redis_cluster.ts";
 * const cluster = await startRedisCluster();
 * // ... MSIGHT_BUS_URL=cluster.url ...
 * await cluster.stop();
 * ```
 * @module
 */

import { distinctFreePorts, waitFor } from "./net.ts";

/** A running test cluster. */
export interface TestRedisCluster {
  ports: number[];
  /** `redis+cluster://127.0.0.1:p1,...`. */
  url: string;
  /** Environment for a node process pointed at the cluster (`MSIGHT_BUS_URL`). */
  env: Record<string, string>;
  /** Kills the node on `port` (SIGKILL). */
  kill(port: number): Promise<void>;
  /** Runs `redis-cli -p port args...` and returns its output. */
  cli(port: number, ...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", { args: ["-h", "127.0.0.1", "-p", String(port), ...args] })
    .output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

/** Starts the cluster and waits until every node reports `cluster_state:ok`. */
export async function startRedisCluster(): Promise<TestRedisCluster> {
  const dir = await Deno.makeTempDir({ prefix: "msight-redis-cluster-" });
  const ports: number[] = [];
  const children = new Map<number, Deno.ChildProcess>();
  const stop = async () => {
    for (const child of children.values()) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone (killed by a test).
      }
      await child.status;
    }
    children.clear();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    const free = distinctFreePorts(12);
    for (let i = 0; i < 6; i++) {
      const port = free[2 * i], busPort = free[2 * i + 1];
      ports.push(port);
      // A folder each: replicas receive their master's snapshot as dump.rdb in their own folder.
      await Deno.mkdir(`${dir}/${port}`);
      const child = new Deno.Command("redis-server", {
        args: [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--cluster-enabled",
          "yes",
          "--cluster-port",
          String(busPort),
          "--cluster-config-file",
          `${dir}/${port}/nodes.conf`,
          "--cluster-node-timeout",
          "2000",
          "--save",
          "",
          "--appendonly",
          "no",
          "--dir",
          `${dir}/${port}`,
          "--loglevel",
          "warning",
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      children.set(port, child);
    }
    for (const p of ports) {
      await waitFor(async () => (await cli(p, "PING")).includes("PONG"), 10_000, `redis-server on port ${p}`);
    }
    const created = await cli(
      ports[0],
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "1",
      "--cluster-yes",
    );
    if (!created.includes("All 16384 slots covered")) {
      throw new Error(`redis-cli --cluster create: ${created}`);
    }
    for (const p of ports) {
      await waitFor(
        async () => (await cli(p, "CLUSTER", "INFO")).includes("cluster_state:ok"),
        20_000,
        `node ${p}`,
      );
      // A replica can take over only once it has synced with its master.
      await waitFor(
        async () => {
          const info = await cli(p, "INFO", "replication");
          return info.includes("role:master") || info.includes("master_link_status:up");
        },
        20_000,
        `replica ${p} in sync`,
      );
    }
  } catch (err) {
    await stop();
    if (err instanceof Deno.errors.NotFound) {
      throw new Error("redis-server is not installed (run ./edge setup)");
    }
    throw err;
  }
  const url = `redis+cluster://${ports.slice(0, 3).map((p) => `127.0.0.1:${p}`).join(",")}`;
  return {
    ports,
    url,
    env: { MSIGHT_BUS_URL: url, MSIGHT_EDGE_DEVICE_NAME: "test-device" },
    cli,
    async kill(port) {
      const child = children.get(port);
      if (!child) return;
      children.delete(port);
      child.kill("SIGKILL");
      await child.status;
    },
    stop,
  };
}
