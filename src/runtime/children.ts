/**
 * The owner of every child process of a program. Each child is started here in its own session and process group
 * (`setsid`), so a signal sent to the program's group (Ctrl-C in a terminal, `kill -- -PGID`, systemd) reaches only
 * the program, which then stops its children in order (an encoder flushes the last segment before it is closed).
 * Whatever way the program ends (graceful stop, repeated signal, fatal error), {@linkcode stopAllChildren} or
 * {@linkcode killAllChildren} ends what is left, so no child outlives it. (A SIGKILLed program cannot: its children
 * then end on their own when their pipes to it close.)
 *
 * @example
 * ```ts
 * import { killAllChildren, spawnChild } from "./children.ts";
 * const child = spawnChild("sleep", { args: ["60"] });
 * killAllChildren("SIGKILL");
 * await child.status;
 * ```
 * @module
 */

/** Each live child, and whether it leads its own process group (then the whole group is signalled). */
const live = new Map<Deno.ChildProcess, boolean>();

/** Starts `path` in its own process group (options as `Deno.Command`'s) and tracks it until it exits. */
export function spawnChild(path: string | URL, options: Deno.CommandOptions = {}): Deno.ChildProcess {
  const child = new Deno.Command(path, { ...options, detached: true }).spawn();
  trackChild(child, true);
  return child;
}

/** Runs `path` to the end as {@linkcode spawnChild} does and collects its output (`stdout`/`stderr` default piped). */
export function outputChild(
  path: string | URL,
  options: Deno.CommandOptions = {},
): Promise<Deno.CommandOutput> {
  return spawnChild(path, { stdout: "piped", stderr: "piped", ...options }).output();
}

/** Tracks an already spawned child until it exits; `ownGroup`: it was started `detached` (leads its group). */
export function trackChild(child: Deno.ChildProcess, ownGroup = false): void {
  live.set(child, ownGroup);
  child.status.finally(() => live.delete(child));
}

/** How many tracked children are still running. */
export function liveChildren(): number {
  return live.size;
}

/** Sends `signal` to every tracked child that is still running (to its whole group when it leads one). */
export function killAllChildren(signal: Deno.Signal = "SIGKILL"): void {
  for (const [child, ownGroup] of live) {
    try {
      if (ownGroup) Deno.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      // Already exited between the check and the kill.
    }
  }
}

/**
 * SIGTERM to every child still running, SIGKILL to those left after `graceMs`; resolves once all have exited.
 * Returns how many there were (a node's own modules stop their children in order first: any left is a leak).
 */
export async function stopAllChildren(graceMs = 2000): Promise<number> {
  const left = [...live.keys()];
  if (left.length === 0) return 0;
  killAllChildren("SIGTERM");
  const all = Promise.all(left.map((c) => c.status));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), graceMs)));
  if (await Promise.race([all, late]) === "late") killAllChildren("SIGKILL");
  clearTimeout(timer);
  await all;
  return left.length;
}
