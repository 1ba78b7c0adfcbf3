/**
 * The `echo` node's own flags (the common ones are added by `run_node.ts`), shared by the node, the launcher
 * and the reference YAML test.
 * @module
 */

import { SUBSCRIBE_TOPIC } from "./common_flags.ts";

export const ECHO_FLAGS = {
  ...SUBSCRIBE_TOPIC,
  name: { long: "name", short: "n", type: "string", default: `echo-${Deno.pid}`, help: "node name" },
  rate: {
    long: "rate",
    type: "bool",
    default: false,
    help: "print message rate and bandwidth every second instead",
  },
  count: {
    long: "count",
    type: "int",
    default: 0,
    min: 0,
    help: "exit after this many messages (0: run until stopped)",
  },
} as const;
