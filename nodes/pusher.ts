/**
 * The AWS video pusher: uploads each VideoData segment of `--subscribe-topic` to S3 as
 * `<prefix>/<device>/<sensor>/<YYYY-MM-DD>/<HH>/<stem>.mp4` and `.json`. Every segment goes to an outbox on disk
 * first (`--spool-dir`) and is acknowledged then; uploads retry with backoff while S3 is down, so a network outage
 * or a restart loses nothing. Same command as MSight's tutorial:
 *
 * ```sh
 * deno task pusher -st aggregated_video --name video_pusher --bucket-name SOME_BUCKET_NAME --prefix msight_tutorial
 * ```
 * @module
 */

import { VIDEO_DATA_TYPE } from "../src/bus/message.ts";
import { delay } from "../src/runtime/async.ts";
import { readSegments } from "../src/bus/segment_reader.ts";
import { runAnyBusNode } from "../src/node/run_node.ts";
import { sinkReaderOptions } from "../src/sinks/transport_flag.ts";
import { Outbox } from "../src/sinks/outbox.ts";
import { S3Uploader } from "../src/sinks/s3_uploader.ts";
import { checkPusherFlags, PUSHER_FLAGS } from "../src/node/pusher_flags.ts";

if (import.meta.main) {
  await runAnyBusNode({
    command: "pusher",
    type: "AWSVideoPusherSinkNode", // MSight's class name, so both status tools show the same kind
    description:
      "Upload each video segment of a topic to S3 (.mp4 + .json), through a durable outbox on disk.",
    flags: PUSHER_FLAGS,
    subscribeDataType: VIDEO_DATA_TYPE,
    validate: checkPusherFlags,
    async run(ctx) {
      const f = ctx.flags;
      if (f.wait > 0) {
        ctx.log.info(`waiting ${f.wait} s before starting (--wait)`);
        await delay(f.wait * 1000, ctx.signal);
        if (ctx.signal.aborted) return;
      }
      const uploader = new S3Uploader({
        bucket: f.bucketName,
        region: f.awsRegion,
        dualstack: f.useDualstackEndpoint,
        endpointUrl: f.endpointUrl,
        forcePathStyle: f.forcePathStyle || f.endpointUrl !== undefined,
      }, ctx.log);
      const check = await uploader.check(ctx.signal);
      if (check.ok) ctx.log.info(`bucket ${uploader.target} is reachable`);
      else ctx.log.warn(`${check.message}: segments are kept in the outbox until it is reachable`);

      const outbox = await Outbox.open({
        spoolDir: f.spoolDir ?? `./.msight-spool/${f.name.replace(/[^A-Za-z0-9._-]/g, "_")}`,
        spoolMaxBytes: f.spoolMaxBytes,
        prefix: f.prefix,
        uploader,
        log: ctx.log,
        metrics: ctx.metrics,
      });
      ctx.setReadiness(() => ({ ok: true }));
      try {
        await readSegments(sinkReaderOptions(ctx), async (seg) => {
          const r = await outbox.enqueue(seg);
          if (r.status === "queued") {
            ctx.log.info(`queued ${r.videoKey} for upload (${outbox.depth} in the outbox)`);
          }
        });
        if (f.drainTimeout > 0 && outbox.depth > 0) {
          ctx.log.info(
            `uploading the ${outbox.depth} segment(s) in the outbox for up to ${f.drainTimeout} s`,
          );
          const empty = await outbox.drain(f.drainTimeout * 1000);
          if (!empty) {
            ctx.log.warn(
              `${outbox.depth} segment(s) stay in the outbox; they are uploaded at the next start`,
            );
          }
        }
      } finally {
        await outbox.close();
        uploader.close();
      }
    },
  });
}
