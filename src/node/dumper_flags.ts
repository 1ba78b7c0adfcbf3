/**
 * The `dumper` node's own flags (the common ones are added by `run_node.ts`), shared by the node, the launcher
 * and the reference YAML test.
 * @module
 */

import { GAP_WITH_SHORT, SUBSCRIBE_TOPIC } from "./common_flags.ts";
import { TRANSPORT_FLAG } from "../sinks/transport_flag.ts";

/** The dumper's own flags. */
export const DUMPER_FLAGS = {
  ...SUBSCRIBE_TOPIC,
  ...GAP_WITH_SHORT,
  saveDir: {
    long: "save-dir",
    short: "sd",
    type: "string",
    required: true,
    help: "directory for the .mp4 and .json files (created if missing)",
  },
  timezone: {
    long: "timezone",
    type: "string",
    choices: ["utc", "local"] as const,
    default: "utc",
    help: "clock of the file names (<sensor>_<YYYYMMDD>_<HHMMSS>_<ffffff>)",
  },
  maxAge: {
    long: "max-age",
    type: "number",
    default: 0,
    min: 0,
    metavar: "SECONDS",
    help: "delete segments older than this (0: keep)",
  },
  maxBytes: {
    long: "max-bytes",
    type: "number",
    default: 0,
    min: 0,
    metavar: "BYTES",
    help: "keep the saved segments under this total size, oldest deleted first (0: no limit)",
  },
  minFreeBytes: {
    long: "min-free-bytes",
    type: "number",
    default: 0,
    min: 0,
    metavar: "BYTES",
    help: "delete the oldest segments while the disk has less free space than this (0: off)",
  },
  ...TRANSPORT_FLAG,
} as const;
