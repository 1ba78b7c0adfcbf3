/**
 * Several nodes of one kind in one process: `rtsp -n cam1 -u rtsp://a ... --next -n cam2 -u rtsp://b ...`. Each
 * part of the command line between `--next` separators is one node exactly as if it ran alone (its own flags,
 * name, sensor, topic, ffmpeg, bus connection, registration and `/metrics` port); they share only the Deno
 * process, whose ~70 MiB of runtime a camera then no longer pays on its own (docs/design.md, "Capacity"). The
 * launcher groups its RTSP nodes this way (`cameras_per_process`).
 *
 * @example
 * ```ts
 * import { checkGroup, splitGroup } from "./node_group.ts";
 * const parts = splitGroup(["-n", "a", "-u", "rtsp://h/1", "--next", "-n", "b", "-u", "rtsp://h/2"]);
 * parts.length; // 2
 * checkGroup([{ name: "a", metricsPort: 0 }, { name: "a", metricsPort: 0 }]); // throws: two nodes named a
 * ```
 * @module
 */

import { UsageError } from "../runtime/errors.ts";

/** The token between two nodes' flags on one command line. */
export const GROUP_SEPARATOR = "--next";

/**
 * The command line of each node in a group, in order (one part without a separator). An empty part, as in
 * `--next --next` or a trailing `--next`, is a usage error.
 */
export function splitGroup(argv: readonly string[]): string[][] {
  const parts: string[][] = [[]];
  for (const arg of argv) {
    if (arg === GROUP_SEPARATOR) parts.push([]);
    else parts[parts.length - 1].push(arg);
  }
  if (parts.length > 1) {
    const empty = parts.findIndex((p) => p.length === 0);
    if (empty >= 0) {
      throw new UsageError(
        `node ${empty + 1} of ${parts.length} has no flags: ${GROUP_SEPARATOR} goes between two nodes' flags`,
      );
    }
  }
  return parts;
}

/** What must differ between the nodes of one process. */
export interface GroupMember {
  name: string;
  /** 0: no metrics server. */
  metricsPort: number;
}

/** Throws a {@linkcode UsageError} when two nodes of a group share a name or a metrics port. */
export function checkGroup(members: readonly GroupMember[]): void {
  const names = new Set<string>();
  const ports = new Map<number, string>();
  for (const m of members) {
    if (names.has(m.name)) {
      throw new UsageError(
        `two nodes named ${m.name} in one process: each needs its own -n/--name (its key in MSIGHT:NODES)`,
      );
    }
    names.add(m.name);
    const other = ports.get(m.metricsPort);
    if (m.metricsPort > 0 && other !== undefined) {
      throw new UsageError(
        `--metrics-port ${m.metricsPort} is given to both ${other} and ${m.name}: each node of a process ` +
          `needs its own port (or 0 for none)`,
      );
    }
    ports.set(m.metricsPort, m.name);
  }
}
