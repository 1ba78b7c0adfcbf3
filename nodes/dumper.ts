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
import { runAnyBusNode } from "../src/node/run_node.ts";
import { sinkReaderOptions } from "../src/sinks/transport_flag.ts";
import { LocalStore } from "../src/sinks/local_store.ts";
import { DUMPER_FLAGS } from "../src/node/dumper_flags.ts";

if (import.meta.main) {
  await runAnyBusNode({
    command: "dumper",
    type: "VideoLocalDumperSinkNode", // MSight's class name, so both status tools show the same kind
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
