/**
 * Process measurements for benchmarks, read from `/proc` (Linux): CPU seconds, peak RSS and PSS of a process and its
 * children, sampled while they run.
 *
 * @example
 * ```ts
 * import { cpuSeconds, childPids } from "./proc.ts";
 * const own = cpuSeconds(Deno.pid);
 * ```
 * @module
 */

const TICKS = 100; // USER_HZ on Linux

/**
 * CPU seconds of one live process: its own utime + stime plus cutime + cstime, the CPU of the children it has
 * already reaped (an encoder subprocess that finished its segment), in seconds (0 when it is gone).
 */
export function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / TICKS;
  } catch {
    // The process has exited.
    return 0;
  }
}

/** Peak resident set size (VmHWM) of a live process, in bytes. */
export function peakRssBytes(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    // The process has exited.
    return 0;
  }
}

/**
 * Proportional set size of a live process now, bytes (`/proc/PID/smaps_rollup`): its private pages plus its share of
 * each page it shares (the deno binary, ffmpeg's libraries, mapped by many processes). Summed over processes, PSS
 * counts shared code once where RSS counts it once per process. `anon` and `file` split it (0s when it is gone).
 */
export function pssBytes(pid: number): { pss: number; anon: number; file: number } {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0) * 1024;
    return { pss: kb("Pss"), anon: kb("Pss_Anon"), file: kb("Pss_File") };
  } catch {
    // The process has exited.
    return { pss: 0, anon: 0, file: 0 };
  }
}

/** Direct children of a process. */
export function childPids(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/).filter(Boolean).map(
      Number,
    );
  } catch {
    // The process has exited: no children.
    return [];
  }
}

/** A process and all its descendants. */
export function treePids(pid: number): number[] {
  const out = [pid];
  for (const c of childPids(pid)) out.push(...treePids(c));
  return out;
}

/** CPU seconds of a process tree, summed. */
export function treeCpuSeconds(pid: number): number {
  return treePids(pid).reduce((s, p) => s + cpuSeconds(p), 0);
}
