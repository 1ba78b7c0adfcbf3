/**
 * The arguments of a private `redis-server`: loopback only, nothing written to disk, so it lives and dies with the
 * pipeline, demo or test that started it.
 *
 * @example
 * ```ts
 * import { privateRedisArgs } from "./private_redis.ts";
 * new Deno.Command("redis-server", { args: privateRedisArgs(6390) });
 * ```
 * @module
 */

/** `redis-server` arguments for a private instance on 127.0.0.1:`port`. */
export function privateRedisArgs(port: number): string[] {
  return [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--loglevel",
    "warning",
  ];
}
