/**
 * Prints, one per line, the Deno flags of a node ({@linkcode runtimeFlags}, then the permissions it needs for the
 * given command line): `bin/msight-launch`
 * calls it, then `exec`s `deno run <flags> nodes/<node>.ts <args>`, so the node's write permission is exactly its
 * `--save-dir` or `--spool-dir` (read with the node's own parser, `--config` files and prefixes included). When the
 * command line is bad it prints the default permissions and leaves the error to the node, which reports it in one
 * line.
 *
 * @example
 * ```sh
 * deno run --allow-read --allow-env src/launcher/permissions_cli.ts dumper -n d -st v --save-dir /data/videos
 * # --allow-net ... --allow-write=/data/videos
 * ```
 * @module
 */

import { COMMON_FLAGS } from "../node/common_flags.ts";
import { findConfigPath, loadConfigFile } from "../runtime/config.ts";
import { parseFlags } from "../runtime/flags.ts";
import { NODE_NAMES, type NodeName, permissionFlags, runtimeFlags, type WritePaths } from "./permissions.ts";
import { DUMPER_FLAGS } from "../node/dumper_flags.ts";
import { PUSHER_FLAGS } from "../node/pusher_flags.ts";

/** The write paths a dumper or pusher command line asks for (undefined fields when the line is bad). */
export async function writePathsOf(node: NodeName, argv: string[]): Promise<WritePaths> {
  try {
    if (node === "dumper") {
      const specs = { ...COMMON_FLAGS, ...DUMPER_FLAGS };
      const cfg = findConfigPath(argv);
      const v = parseFlags(specs, argv, node, cfg ? await loadConfigFile(cfg, specs) : {});
      return { saveDir: v.saveDir };
    }
    if (node === "pusher") {
      const specs = { ...COMMON_FLAGS, ...PUSHER_FLAGS };
      const cfg = findConfigPath(argv);
      const v = parseFlags(specs, argv, node, cfg ? await loadConfigFile(cfg, specs) : {});
      return { spoolDir: v.spoolDir ?? "./.msight-spool" };
    }
  } catch {
    // The node itself reports the bad flag.
  }
  return {};
}

if (import.meta.main) {
  const [node, ...args] = Deno.args;
  if (!(NODE_NAMES as readonly string[]).includes(node)) {
    console.error(`msight-launch: unknown node ${node}: expected one of ${NODE_NAMES.join(", ")}`);
    Deno.exit(2);
  }
  const flags = [
    ...runtimeFlags(node as NodeName),
    ...permissionFlags(node as NodeName, await writePathsOf(node as NodeName, args)),
  ];
  console.log(flags.join("\n"));
}
