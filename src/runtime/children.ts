/**
 * The owner of every child process of a node. Modules that spawn (ffmpeg, the RTSP demo server) register their
 * child here, so that however the node ends (graceful stop, second signal, fatal error) no child outlives it.
 *
 * @example
 * ```ts
 * import { spawnTracked, killAllChildren } from "./children.ts";
 * const child = spawnTracked(new Deno.Command("sleep", { args: ["60"] }));
 * killAllChildren("SIGKILL");
 * await child.status;
 * ```
 * @module
 */

const live = new Set<Deno.ChildProcess>();

/** Starts `cmd` and tracks the child until it exits. */
export function spawnTracked(cmd: Deno.Command): Deno.ChildProcess {
  const child = cmd.spawn();
  trackChild(child);
  return child;
}

/** Tracks an already spawned child until it exits. */
export function trackChild(child: Deno.ChildProcess): void {
  live.add(child);
  child.status.finally(() => live.delete(child));
}

/** How many tracked children are still running. */
export function liveChildren(): number {
  return live.size;
}

/** Sends `signal` to every tracked child that is still running. */
export function killAllChildren(signal: Deno.Signal = "SIGKILL"): void {
  for (const child of live) {
    try {
      child.kill(signal);
    } catch {
      // Already exited between the check and the kill.
    }
  }
}
