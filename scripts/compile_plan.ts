/**
 * What `deno task compile` builds: one `deno compile` command per binary, named like MSight's launchers, each
 * with its node's permissions from `src/launcher/permissions.ts` baked in, the dumper's and pusher's write
 * grants chosen at build time (`--save-dir`, `--spool-dir`; why: docs/design.md, "Launcher and binaries").
 * Pure (no I/O) so a test can check the plan where `denort` is missing and the commands cannot run.
 *
 * @example
 * ```ts
 * import { compilePlan } from "./compile_plan.ts";
 * for (const job of compilePlan({ outDir: "dist", saveDir: "/var/lib/msight/videos" })) {
 *   console.log(job.binary, job.args.join(" "));
 * }
 * ```
 * @module
 */

import { type NodeName, nodeScript, permissionFlags, runtimeFlags } from "../src/launcher/permissions.ts";

/** The binaries, by MSight's launcher names, and the node each runs. */
export const BINARIES: Readonly<Record<string, NodeName>> = {
  msight_launch_rtsp: "rtsp",
  msight_launch_image_to_video_aggregator: "aggregator",
  msight_launch_video_local_dumper: "dumper",
  msight_launch_aws_video_pusher: "pusher",
  msight_status: "status",
  msight_echo: "echo",
  msight_launch_web: "web",
};

/** The build-time choices of {@linkcode compilePlan}. */
export interface CompileOptions {
  /** Where the binaries go (default `dist`). */
  outDir?: string;
  /** The dumper's write grant (default `./received_videos`, resolved at run time). */
  saveDir?: string;
  /** The pusher's write grant (default `./.msight-spool`, which holds the pusher's default `<name>` outbox). */
  spoolDir?: string;
  /** A `deno compile --target` (e.g. `aarch64-unknown-linux-gnu` for Jetson boards); default: this machine. */
  target?: string;
  /** Only these binaries (default all). */
  only?: string[];
  /**
   * `node_modules/...` paths of ffmpeg.wasm's core (62 MB), left out of every binary but the aggregator's, the
   * one node that can load it. The caller lists them (the plan does no I/O).
   */
  wasmCorePaths?: string[];
}

/** One `deno compile` run. */
export interface CompileJob {
  binary: string;
  node: NodeName;
  /** Where the binary is written. */
  output: string;
  /** The arguments after `deno`. */
  args: string[];
}

/**
 * ffmpeg.wasm (the aggregator's encoder when it may not run ffmpeg) is loaded by a computed dynamic `import()`
 * and runs its core in a Web Worker: neither is in the static module graph, so `deno compile` embeds them only
 * when named with `--include`.
 */
const AGGREGATOR_INCLUDES = [
  "node_modules/@ffmpeg/ffmpeg/dist/esm/index.js",
  "node_modules/@ffmpeg/ffmpeg/dist/esm/worker.js",
  "node_modules/@ffmpeg/core/dist/esm/ffmpeg-core.js",
  "node_modules/@ffmpeg/core/dist/esm/ffmpeg-core.wasm",
];

/**
 * The `deno compile` commands, in a stable order. `--no-check`: the compile script type-checks every node once
 * before compiling (`deno check`), instead of six times over the same graph.
 *
 * @example
 * ```ts
 * import { compilePlan } from "./compile_plan.ts";
 * const [rtsp] = compilePlan({ only: ["msight_launch_rtsp"] });
 * // rtsp.args: ["compile", "--no-check", "--no-prompt", "--allow-net", ..., "--allow-run=ffmpeg",
 * //             "--output", "dist/msight_launch_rtsp", "nodes/rtsp.ts"]
 * ```
 */
export function compilePlan(opts: CompileOptions = {}): CompileJob[] {
  const outDir = (opts.outDir ?? "dist").replace(/\/+$/, "") || ".";
  const saveDir = opts.saveDir ?? "./received_videos";
  const spoolDir = opts.spoolDir ?? "./.msight-spool";
  const names = opts.only ?? Object.keys(BINARIES);
  return names.map((binary) => {
    const node = BINARIES[binary];
    if (!node) {
      throw new Error(`unknown binary ${binary}: expected one of ${Object.keys(BINARIES).join(", ")}`);
    }
    const output = `${outDir}/${binary}`;
    const extra = node === "aggregator"
      ? AGGREGATOR_INCLUDES.flatMap((p) => ["--include", p])
      : (opts.wasmCorePaths ?? []).flatMap((p) => ["--exclude", p]);
    return {
      binary,
      node,
      output,
      args: [
        "compile",
        "--no-check",
        // A compiled binary on a terminal would otherwise stop and ask for a missing permission.
        "--no-prompt",
        ...runtimeFlags(node),
        ...permissionFlags(node, { saveDir, spoolDir }),
        ...(opts.target ? ["--target", opts.target] : []),
        ...extra,
        "--output",
        output,
        nodeScript(node),
      ],
    };
  });
}
