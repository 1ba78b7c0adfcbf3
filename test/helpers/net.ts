/**
 * Small helpers for tests that start real servers: a free loopback port and a bounded wait.
 *
 * @example
 * ```ts
 * import { freePort, waitFor } from "./net.ts";
 * const port = freePort();
 * await waitFor(() => true, 1000, "something");
 * ```
 * @module
 */

import { delay } from "../../src/runtime/async.ts";

export { freePort } from "../../src/runtime/net.ts";

/** `n` different free loopback ports: all held open at once while picked, so none is picked twice. */
export function distinctFreePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** Polls `check` every 50 ms until it returns true; throws naming `what` after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await delay(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
