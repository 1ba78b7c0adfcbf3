/**
 * A free loopback port, for servers this process starts (a pipeline's private Redis, test and bench servers).
 *
 * @example
 * ```ts
 * import { freePort } from "./net.ts";
 * const port = freePort(); // e.g. 40213
 * ```
 * @module
 */

/**
 * A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it; another process may take it before the
 * caller binds it, which the caller's start-up check reports).
 *
 * @example
 * ```ts
 * import { freePort } from "./net.ts";
 * const args = ["--port", String(freePort()), "--bind", "127.0.0.1"];
 * ```
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
