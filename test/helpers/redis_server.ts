/**
 * A private `redis-server` on a free loopback port for one test file: no persistence, killed on stop, restartable
 * on the same port (to test reconnects).
 *
 * @example
 * ```ts
 * import { startRedis } from "./redis_server.ts";
 * const redis = await startRedis();
 * // ... REDIS_URL=redis.url ...
 * await redis.stop();
 * ```
 * @module
 */

import { freePort, waitFor } from "./net.ts";
import { privateRedisArgs } from "../../src/launcher/private_redis.ts";

/** A running test Redis. */
export interface TestRedis {
  port: number;
  url: string;
  /** Environment for a node process pointed at this Redis. */
  env: Record<string, string>;
  stop(): Promise<void>;
  /** Stops it, waits `downMs`, and starts it again on the same port (empty, as after a real restart). */
  restart(downMs?: number): Promise<void>;
}

async function launch(port: number): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("redis-server", {
    args: privateRedisArgs(port),
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitFor(
    async () => {
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        await c.write(new TextEncoder().encode("PING\r\n"));
        const buf = new Uint8Array(16);
        const n = await c.read(buf);
        c.close();
        return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
      } catch {
        return false;
      }
    },
    10_000,
    `redis-server on port ${port}`,
  );
  return child;
}

/** Starts a private redis-server; throws a clear error when the binary is missing. */
export async function startRedis(): Promise<TestRedis> {
  const port = freePort();
  let child: Deno.ChildProcess;
  try {
    child = await launch(port);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error("redis-server is not installed (run ./edge setup)");
    }
    throw err;
  }
  const stopChild = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    env: { REDIS_URL: `redis://127.0.0.1:${port}/0`, MSIGHT_EDGE_DEVICE_NAME: "test-device" },
    stop: stopChild,
    async restart(downMs = 500) {
      await stopChild();
      await new Promise((r) => setTimeout(r, downMs));
      child = await launch(port);
    },
  };
}
