/**
 * The `demo` tool's flags, shared by `nodes/demo.ts` and `src/launcher/demo.ts`.
 * @module
 */

import type { FlagValues } from "../runtime/flags.ts";

/** The demo's flags. */
export const DEMO_FLAGS = {
  saveDir: {
    long: "save-dir",
    short: "sd",
    type: "string",
    default: "./received_videos",
    help: "where segments are written",
  },
  video: {
    long: "video",
    type: "string",
    help: "serve this video file (looped) instead of the built-in camera frames",
  },
  fps: { long: "fps", type: "number", default: 10, min: 0, minExclusive: true, help: "aggregator --fps" },
  bufferSize: {
    long: "buffer-size",
    type: "int",
    default: 100,
    min: 1,
    help: "aggregator --buffer-size (100 frames at 10 fps: 10 s segments)",
  },
  duration: {
    long: "duration",
    type: "number",
    default: 0,
    min: 0,
    metavar: "SECONDS",
    help: "stop after this long (0: until Ctrl-C)",
  },
  webPort: {
    long: "web-port",
    type: "int",
    default: 8080,
    min: 1,
    max: 65535,
    help: "port of the web console (on 127.0.0.1)",
  },
  quiet: {
    long: "quiet",
    type: "bool",
    default: false,
    help: "print only the pipeline's own notes and saved segments",
  },
} as const;

/** The demo's flag values. */
export type DemoFlags = FlagValues<typeof DEMO_FLAGS>;
