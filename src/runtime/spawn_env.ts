/**
 * The environment of the subprocesses a node spawns (ffmpeg, ffprobe), under Deno's scoped `--allow-run`.
 *
 * Deno (2.x) refuses to spawn any subprocess whose environment holds a non-empty `LD_*` or `DYLD_*` variable unless
 * the run permission is whole (`--allow-run`), since `LD_PRELOAD` would let a script run any code. CUDA machines and
 * NVIDIA's images set `LD_LIBRARY_PATH`, so a node with `--allow-run=ffmpeg` could not start ffmpeg at all. Deno
 * accepts those variables empty, and an empty `LD_LIBRARY_PATH` or `LD_PRELOAD` is ignored by the loader: children
 * get them blanked, and find the CUDA libraries through ld.so.cache. `bin/msight-launch` hands the operator's values
 * to ffmpeg itself (through wrappers it makes, see there), so CUDA loads wherever a plain `ffmpeg -hwaccel cuda`
 * does.
 *
 * @example
 * ```ts
 * import { childEnv } from "./spawn_env.ts";
 * new Deno.Command("ffmpeg", { args: ["-version"], ...childEnv() }).spawn();
 * ```
 * @module
 */

/** A variable Deno will not pass to a child under a scoped run permission (its own rule: prefix, any case). */
export function isLoaderVar(name: string): boolean {
  return /^\s*(LD_|DYLD_)/i.test(name);
}

/** Whether Deno's run permission is whole (`--allow-run`, `-A`): then children may inherit anything. */
function runAll(): boolean {
  return Deno.permissions.querySync({ name: "run" }).state === "granted";
}

/**
 * The loader variables that children of this process get blanked: those set (non-empty) here, when the run
 * permission is scoped; none when it is whole or the environment cannot be read.
 *
 * @example
 * ```ts
 * blankedLoaderVars(); // ["LD_LIBRARY_PATH"] on a CUDA machine, under --allow-run=ffmpeg
 * ```
 */
export function blankedLoaderVars(env?: Record<string, string>): string[] {
  if (runAll()) return [];
  let vars: Record<string, string>;
  try {
    vars = env ?? Deno.env.toObject();
  } catch (err) {
    // No --allow-env: Deno then passes nothing it cannot see either; a refused spawn names its own reason.
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) return [];
    throw err;
  }
  return Object.keys(vars).filter((k) => isLoaderVar(k) && vars[k].trim() !== "").sort();
}

/**
 * Options to spread into a `Deno.Command`'s: the loader variables Deno would refuse, blanked.
 *
 * @example
 * ```ts
 * const args = ["-version"];
 * new Deno.Command("ffmpeg", { args, stdout: "piped", ...childEnv() });
 * ```
 */
export function childEnv(): { env?: Record<string, string> } {
  const names = blankedLoaderVars();
  if (names.length === 0) return {};
  return { env: Object.fromEntries(names.map((n) => [n, ""])) };
}

/**
 * One line for a spawn that Deno refused (`NotCapable`), with Deno's own reason: the program is not in the
 * node's `--allow-run` list, or the environment holds a variable it will not pass.
 *
 * @example
 * ```ts
 * declare const err: Deno.errors.NotCapable;
 * spawnRefusal("/bin/sh", err);
 * // '"/bin/sh" is not allowed to run: Deno refused it: Requires run access to "/bin/sh", run again with ...'
 * ```
 */
export function spawnRefusal(program: string, err: unknown): string {
  const why = (err instanceof Error ? err.message : String(err)).split("\n")[0];
  return `${JSON.stringify(program)} is not allowed to run: Deno refused it: ${why}`;
}

/**
 * The warning a node that may run `program` logs once at start when children get loader variables blanked, or
 * undefined.
 *
 * @example
 * ```ts
 * import type { Logger } from "./log.ts";
 * declare const log: Logger;
 * const w = loaderVarsWarning("ffmpeg");
 * if (w) log.warn(w);
 * ```
 */
export function loaderVarsWarning(program: string): string | undefined {
  const mayRun = Deno.permissions.querySync({ name: "run", command: program }).state === "granted";
  const names = mayRun ? blankedLoaderVars() : [];
  if (names.length === 0) return undefined;
  return `${names.join(", ")} ${
    names.length > 1 ? "are" : "is"
  } set but not passed to ${program}: Deno refuses ` +
    `to spawn a subprocess with ${
      names.length > 1 ? "them" : "it"
    } under this node's scoped --allow-run, so ` +
    `${program} finds its libraries (CUDA's libcuda, libnvcuvid) through ld.so.cache only; start the node with ` +
    `bin/msight-launch, which hands ${names.length > 1 ? "them" : "it"} to ${program}`;
}
