/**
 * Small helpers for tests that start real servers: a free loopback port and a bounded wait.
 *
 * @example
 * ```ts
 * import { freePort, waitFor } from "./net.ts";
 * const port = await freePort();
 * await waitFor(() => true, 1000, "something");
 * ```
 * @module
 */

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return Promise.resolve(port);
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
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
