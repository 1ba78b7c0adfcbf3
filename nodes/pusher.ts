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
import { readSegments } from "../src/bus/segment_reader.ts";
import { SUBSCRIBE_TOPIC } from "../src/runtime/common_flags.ts";
import { runNode } from "../src/runtime/node.ts";
import { sinkReaderOptions, TRANSPORT_FLAG } from "../src/runtime/sink_flags.ts";
import { Outbox } from "../src/sinks/outbox.ts";
import { S3Uploader } from "../src/sinks/s3_uploader.ts";
import { normalizePrefix } from "../src/sinks/naming.ts";
import { errorMessage, UsageError } from "../src/runtime/errors.ts";

/** The pusher's own flags. */
export const PUSHER_FLAGS = {
  ...SUBSCRIBE_TOPIC,
  bucketName: { long: "bucket-name", type: "string", required: true, help: "S3 bucket" },
  prefix: { long: "prefix", type: "string", default: "", help: "key prefix (MSight's layout below it)" },
  awsRegion: {
    long: "aws-region",
    type: "string",
    help: "AWS region (default: AWS_REGION or the profile's region, else us-east-1 as MSight)",
  },
  useDualstackEndpoint: {
    long: "use-dualstack-endpoint",
    type: "bool",
    default: false,
    help: "use AWS's IPv6-capable endpoints",
  },
  wait: {
    long: "wait",
    short: "w",
    type: "number",
    default: 0,
    min: 0,
    metavar: "SECONDS",
    help: "wait this long before starting (as MSight)",
  },
  endpointUrl: {
    long: "endpoint-url",
    type: "string",
    env: "AWS_ENDPOINT_URL_S3",
    help: "S3-compatible endpoint (MinIO, Ceph, R2); AWS when unset",
  },
  forcePathStyle: {
    long: "force-path-style",
    type: "bool",
    default: false,
    help: "path-style addressing (implied by --endpoint-url)",
  },
  spoolDir: { long: "spool-dir", type: "string", help: "outbox directory (default: ./.msight-spool/<name>)" },
  spoolMaxBytes: {
    long: "spool-max-bytes",
    type: "number",
    default: 2 * 1024 ** 3,
    min: 1,
    metavar: "BYTES",
    help: "outbox bound; when full the oldest segment is dropped (logged, counted)",
  },
  drainTimeout: {
    long: "drain-timeout",
    type: "number",
    default: 10,
    min: 0,
    metavar: "SECONDS",
    help: "on stop, keep uploading this long; the rest stays spooled for the next start",
  },
  ...TRANSPORT_FLAG,
} as const;

/** Cross-flag checks of the pusher (the launcher runs them too, before anything starts). */
export function checkPusherFlags(f: { prefix: string }): void {
  try {
    normalizePrefix(f.prefix);
  } catch (err) {
    throw new UsageError(`--prefix ${JSON.stringify(f.prefix)} is invalid: ${errorMessage(err)}`);
  }
}

if (import.meta.main) {
  await runNode({
    command: "pusher",
    type: "AWSVideoPusherNode",
    description:
      "Upload each video segment of a topic to S3 (.mp4 + .json), through a durable outbox on disk.",
    flags: PUSHER_FLAGS,
    subscribeDataType: VIDEO_DATA_TYPE,
    validate: checkPusherFlags,
    async run(ctx) {
      const f = ctx.flags;
      if (f.wait > 0) {
        ctx.log.info(`waiting ${f.wait} s before starting (--wait)`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, f.wait * 1000);
          ctx.signal.addEventListener("abort", () => (clearTimeout(t), r()), { once: true });
        });
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
