/**
 * The Deno permissions of each node, in one place: the `deno task` lines, the launcher and the compiled
 * binaries all take them from here (a test checks `deno.json` against this table). Each node gets only what
 * it needs; the table is in the README ("Permissions"), the reasons in docs/design.md ("Launcher and
 * binaries").
 *
 * @example
 * ```ts
 * import { permissionFlags } from "./permissions.ts";
 * permissionFlags("dumper", { saveDir: "./received_videos" });
 * // ["--allow-net", "--allow-env", "--allow-read", "--allow-sys=hostname,statfs", "--allow-write=./received_videos"]
 * ```
 * @module
 */

/** The nodes and tools that run with scoped permissions. */
export const NODE_NAMES = ["rtsp", "aggregator", "dumper", "pusher", "status", "echo", "web"] as const;
/** One of {@linkcode NODE_NAMES}. */
export type NodeName = typeof NODE_NAMES[number];

/** Where a node writes, when it writes at all. */
export interface WritePaths {
  saveDir?: string;
  spoolDir?: string;
}

const BASE = ["--allow-net", "--allow-env", "--allow-read"];

/** The `deno run` permission flags of a node. */
export function permissionFlags(node: NodeName, paths: WritePaths = {}): string[] {
  switch (node) {
    case "rtsp":
      return [...BASE, "--allow-sys=hostname", "--allow-run=ffmpeg"];
    case "aggregator":
      return [...BASE, "--allow-sys=hostname", "--allow-run=ffmpeg"];
    case "dumper":
      return [
        ...BASE,
        "--allow-sys=hostname,statfs",
        `--allow-write=${paths.saveDir ?? "./received_videos"}`,
      ];
    case "pusher":
      return [
        ...BASE,
        "--allow-sys=hostname,osRelease",
        `--allow-write=${paths.spoolDir ?? "./.msight-spool"}`,
      ];
    case "status":
    case "echo":
      return [...BASE, "--allow-sys=hostname"];
    case "web":
      return [...BASE, "--allow-sys=hostname,osRelease"];
  }
}

/** The nodes whose V8 young generation is capped (see {@linkcode runtimeFlags}). */
const SMALL_YOUNG_GENERATION: ReadonlySet<NodeName> = new Set<NodeName>(["rtsp", "aggregator", "dumper"]);

/**
 * The Deno flags of a node other than its permissions (V8 settings), given wherever the node is started the way a
 * user starts it: `bin/msight-launch`, `up`, the compiled binaries.
 *
 * The RTSP node's, the aggregator's and the dumper's young generation is capped at 1 MiB per semi-space (V8's
 * default lets it grow to 16). Their per-frame garbage is small and short-lived (frames and segments are
 * ArrayBuffers, outside the V8 heap), so the more frequent scavenges cost nothing measurable. Measured RSS
 * (`deno task bench rtsp-memory`, `bench capacity` at one camera; docs/design.md "Capture"): RTSP node 83 → 73 MiB,
 * aggregator 222 → 173 MiB, dumper 87-90 → 85 MiB. The pusher keeps V8's defaults (not measured).
 *
 * @example
 * ```ts
 * runtimeFlags("rtsp"); // ["--v8-flags=--max-semi-space-size=1"]
 * runtimeFlags("pusher"); // []
 * ```
 */
export function runtimeFlags(node: NodeName): string[] {
  return SMALL_YOUNG_GENERATION.has(node) ? ["--v8-flags=--max-semi-space-size=1"] : [];
}

/** The entry script of a node, relative to the project root. */
export function nodeScript(node: NodeName): string {
  return `nodes/${node}.ts`;
}
