/**
 * `deno task demo` (`./edge demo`): the tutorial pipeline on embedded defaults, with nothing configured: a demo
 * camera over RTSP, a private Redis, and the tutorial's rtsp → aggregator → dumper nodes, until Ctrl-C or
 * `--duration`. The demo itself is {@linkcode runDemo} (`src/launcher/demo.ts`).
 *
 * ```sh
 * deno task demo --duration 60 --save-dir ./received_videos
 * ```
 * @module
 */

import { runDemo } from "../src/launcher/demo.ts";
import { DEMO_FLAGS } from "../src/node/demo_flags.ts";
import { runTool } from "../src/node/run_tool.ts";
import { parseFlags } from "../src/runtime/flags.ts";

if (import.meta.main) {
  await runTool(
    "demo",
    () =>
      runDemo(
        parseFlags(DEMO_FLAGS, Deno.args, "demo", {}, "Run the tutorial pipeline on embedded defaults."),
      ),
  );
}
