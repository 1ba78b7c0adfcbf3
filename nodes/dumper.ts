/**
 * The video local dumper: writes each VideoData segment of `--subscribe-topic` as `<stem>.mp4` + `<stem>.json` in
 * `--save-dir`, crash-safe (temporary file, fsync, rename; the `.json` last, marking a complete segment), with
 * retention. Same command as MSight's tutorial:
 *
 * ```sh
 * deno task dumper -n video_dumper -st aggregated_video --save-dir ./received_videos
 * ```
 * @module
 */

import { VIDEO_DATA_TYPE } from "../src/bus/message.ts";
import { readSegments } from "../src/bus/segment_reader.ts";
import { SUBSCRIBE_TOPIC } from "../src/runtime/common_flags.ts";
import { runNode } from "../src/runtime/node.ts";
import { sinkReaderOptions, TRANSPORT_FLAG } from "../src/runtime/sink_flags.ts";
import { LocalStore } from "../src/sinks/local_store.ts";

/** The dumper's own flags. */
export const DUMPER_FLAGS = {
  ...SUBSCRIBE_TOPIC,
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

if (import.meta.main) {
  await runNode({
    command: "dumper",
    type: "VideoLocalDumperNode",
    description: "Write each video segment of a topic as .mp4 + .json files.",
    flags: DUMPER_FLAGS,
    subscribeDataType: VIDEO_DATA_TYPE,
    async run(ctx) {
      const f = ctx.flags;
      const store = await LocalStore.open({
        saveDir: f.saveDir,
        log: ctx.log,
        timezone: f.timezone,
        maxAgeS: f.maxAge || undefined,
        maxBytes: f.maxBytes || undefined,
        minFreeBytes: f.minFreeBytes || undefined,
        metrics: ctx.metrics,
      });
      ctx.log.info(`saving segments of ${f.subscribeTopic} into ${store.saveDir}`);
      await readSegments(sinkReaderOptions(ctx), async (seg) => {
        const r = await store.write(seg);
        if (r.status === "written") {
          ctx.log.info(`saved ${r.stem}.mp4 (${seg.video.byteLength} bytes, ${seg.frameIds.length} frames)`);
        } else ctx.log.info(`segment ${r.stem} already saved (delivered again): unchanged`);
        for (const d of r.deleted) ctx.log.info(`retention deleted ${d}`);
      });
    },
  });
}
