/**
 * Our nodes mixed with MSight_Core 2.0.2's own Python nodes (test/peers/msight_core, Debian's Python 3 and the
 * stand-ins there) through one real Redis and the real RTSP test camera (the Mcity frames, 1280×960 at 10 fps):
 *
 * 1. MSight rtsp → our aggregator → our dumper
 * 2. our rtsp → MSight aggregator → MSight dumper
 * 3. our rtsp → our aggregator → MSight dumper
 * 4. MSight rtsp → MSight aggregator (its default libx265) → our dumper and our pusher (radosgw)
 *
 * Each asserts frames in = frames in segments (the camera is not faster than --fps; MSight's aggregator loses its
 * partial last segment at stop, which is MSight's own behaviour, so only its full segments are counted), every
 * frame id byte-exact, every segment playing with no ffmpeg warning, and the `.json` fields. Directions 1 and 3
 * also check status both ways: MSight's status lists ours and ours lists MSight's, all RUNNING.
 *
 * MSight's RTSP node prints a traceback when stopped; that is its behaviour, not asserted on.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { isoMicros } from "../../src/bus/describe.ts";
import { startRedis, type TestRedis } from "../helpers/redis_server.ts";
import { type RtspServer, startRtspServer } from "../helpers/rtsp_server.ts";
import { waitFor } from "../helpers/net.ts";
import { s3ServerMissing, type S3TestServer, startS3Server } from "../helpers/s3_server.ts";
import { msightAvailable } from "./msight.ts";
import { assertSameIds, ffmpegWarnings, frameIds, type Saved, saved, tapRedis } from "./interop_util.ts";
import { BUFFER, type InteropPlane, InteropRun, msightRtspToOurs, ourRtspToMsight } from "./interop_run.ts";

const BUCKET = "msight-interop";

const missing = await msightAvailable();
if (missing) console.log(`MSight interop tests not run: Debian's Python lacks MSight's imports (${missing})`);
const s3Missing = s3ServerMissing();

Deno.test({
  name: "interop: our nodes and MSight 2.0.2's Python nodes in one pipeline, in all four directions",
  ignore: missing !== null,
  async fn(t) {
    let redis: TestRedis | undefined;
    let cam: RtspServer | undefined;
    let s3: S3TestServer | undefined;
    let run: InteropRun | undefined;
    const root = await Deno.makeTempDir({ prefix: "interop-" });
    const s3Start = s3Missing ? undefined : startS3Server();
    try {
      redis = await startRedis();
      cam = await startRtspServer({ source: "mcity", path: "/interop.stream" });
      const rd = redis;
      const plane: InteropPlane = {
        env: rd.env,
        msightEnv: {
          ...rd.env,
          MSIGHT_REDIS_MESSAGE_BROKER_HOST: "127.0.0.1",
          MSIGHT_REDIS_MESSAGE_BROKER_PORT: String(rd.port),
        },
        tap: (topic) => tapRedis(rd.port, topic),
        async subscribers(topic) {
          const r = new Redis({ host: "127.0.0.1", port: rd.port });
          try {
            return Number(((await r.pubsub("NUMSUB", topic)) as (string | number)[])[1]);
          } finally {
            r.disconnect();
          }
        },
      };
      const r = run = new InteropRun(plane, root, cam.url);

      await t.step(
        "MSight rtsp → our aggregator → our dumper (+ status both ways)",
        () => msightRtspToOurs(r, { tag: "d1", aggFps: 10, aggArgs: ["-sn", "ignored", "--group-id", "g1"] }),
      );
      await t.step("our rtsp → MSight aggregator → MSight dumper", () => ourRtspToMsight(r, { tag: "d2" }));

      await t.step("our rtsp → our aggregator → MSight dumper (+ status both ways)", async () => {
        const dir = `${root}/d3`;
        const dumper = r.msight("launch_video_local_dumper", [
          "-n",
          "ms_dumper3",
          "-st",
          "d3_video",
          "-sd",
          dir,
        ]);
        const agg = r.ours("nodes/aggregator.ts", [
          ...["-n", "our_agg3", "-st", "d3_images", "-pt", "d3_video"],
          ...["--fps", "10", "--buffer-size", String(BUFFER), "--overlap-size", "0", "--max-idle", "2"],
        ]);
        await r.subscribed(["d3_images", "d3_video"], "our aggregator and MSight's dumper subscribed");
        const frames = await r.runSource(
          "d3_images",
          () =>
            r.ours("nodes/rtsp.ts", [
              "-n",
              "our_rtsp3",
              "-pt",
              "d3_images",
              "-sn",
              "our_cam3",
              "-u",
              r.camUrl,
            ]),
          "SIGTERM",
          () => r.statusBothWays(["our_rtsp3", "our_agg3", "ms_dumper3"]),
        );
        const want = frames.map((f) => f.id);
        let segs: Saved[] = [];
        await waitFor(
          async () => {
            segs = await saved(dir, "_metadata.json");
            return segs.flatMap((s) => s.ids).length >= want.length;
          },
          30_000,
          "every frame in a segment MSight's dumper saved",
        );
        assertSameIds(segs.flatMap((s) => s.ids), want, "ours → MSight's dumper");
        for (const s of segs) {
          assert.equal(await ffmpegWarnings(s.mp4), "", s.mp4);
          assert.equal(s.meta.data_type, "msight_core.data.video.VideoData");
          assert.equal(s.meta.sensor_name, "our_cam3");
        }
        await r.stopped(agg, "SIGTERM");
        await r.stopped(dumper, "SIGTERM");
      });

      await t.step({
        name: "MSight rtsp → MSight aggregator (libx265) → our dumper and our pusher (radosgw)",
        ignore: s3Missing !== null,
        fn: async () => {
          s3 = await s3Start!;
          const gw = s3;
          const c = new S3Client({
            endpoint: gw.endpoint,
            region: gw.region,
            forcePathStyle: true,
            credentials: { accessKeyId: gw.accessKeyId, secretAccessKey: gw.secretAccessKey },
          });
          try {
            await c.send(new CreateBucketCommand({ Bucket: BUCKET }));
            const dir = `${root}/d4`;
            const dumper = r.ours("nodes/dumper.ts", ["-n", "our_dumper4", "-st", "d4_video", "-sd", dir]);
            const pusher = r.ours(
              "nodes/pusher.ts",
              [
                ...["-n", "our_pusher4", "-st", "d4_video", "--bucket-name", BUCKET, "--prefix", "interop"],
                ...["--endpoint-url", gw.endpoint, "--spool-dir", `${root}/spool4`],
              ],
              {
                AWS_ACCESS_KEY_ID: gw.accessKeyId,
                AWS_SECRET_ACCESS_KEY: gw.secretAccessKey,
                AWS_REGION: gw.region,
                AWS_EC2_METADATA_DISABLED: "true",
              },
            );
            const agg = r.msight("launch_image_to_video_aggregator", [
              ...["-n", "ms_agg4", "-st", "d4_images", "-pt", "d4_video"],
              ...["--fps", "10", "--buffer-size", String(BUFFER), "--overlap-size", "0"],
            ]);
            await Promise.all([
              dumper.waitForLine(/reading d4_video/),
              pusher.waitForLine(/reading d4_video/),
            ]);
            await r.subscribed(["d4_images"], "MSight's aggregator subscribed");
            const frames = await r.runSource(
              "d4_images",
              () =>
                r.msight("launch_rtsp", [
                  "-n",
                  "ms_rtsp4",
                  "-pt",
                  "d4_images",
                  "--sensor-name",
                  "ms_cam4",
                  "-u",
                  r.camUrl,
                ]),
              "SIGINT",
            );
            const full = Math.floor(frames.length / BUFFER);
            const want = frames.slice(0, full * BUFFER);
            let segs: Saved[] = [];
            // MSight's libx265 thread per segment is slow on 2 cores.
            await waitFor(
              async () => {
                segs = await saved(dir, ".json");
                return segs.length >= full;
              },
              90_000,
              `${full} segments of MSight's aggregator saved by our dumper`,
            );
            assertSameIds(segs.flatMap((s) => s.ids), want.map((f) => f.id), "MSight → our dumper");
            for (const [i, s] of segs.entries()) {
              const first = want[i * BUFFER];
              assert.equal(await ffmpegWarnings(s.mp4), "", s.mp4);
              // Named and started from the first frame, not MSight's pack time; media read from the MP4 itself.
              assert.equal(s.meta.start_source, "capture_timestamps");
              assert.equal(s.meta.start, isoMicros(first.t));
              assert.ok(s.mp4.includes(isoMicros(first.t).slice(0, 10).replace(/-/g, "")), s.mp4);
              assert.deepEqual([s.meta.codec, s.meta.width, s.meta.height, s.meta.fps, s.meta.frame_count], [
                "hevc",
                1280,
                960,
                10,
                BUFFER,
              ]);
              assert.equal(s.meta.duration, BUFFER / 10);
            }
            // The pusher: the same segments in S3, each .mp4 and .json.
            const listed = async () => {
              const out = await c.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "interop/" }));
              return (out.Contents ?? []).map((o) => o.Key!).sort();
            };
            await waitFor(async () => (await listed()).length >= 2 * full, 30_000, "segments in S3");
            const keys = await listed();
            assert.equal(keys.length, 2 * full, keys.join("\n"));
            const s3Ids: bigint[] = [];
            for (const k of keys.filter((k) => k.endsWith(".json"))) {
              const body = await (await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: k }))).Body!
                .transformToString();
              assert.equal(JSON.parse(body).codec, "hevc");
              s3Ids.push(...frameIds(body));
            }
            assertSameIds(s3Ids, want.map((f) => f.id), "MSight → our pusher");
            await r.stopped(agg, "SIGTERM");
            await r.stopped(pusher, "SIGTERM");
            await r.stopped(dumper, "SIGTERM");
          } finally {
            c.destroy();
          }
        },
      });
    } finally {
      await run?.stopAll();
      await cam?.stop();
      await redis?.stop();
      await (s3 ?? (await s3Start?.catch(() => undefined)))?.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});
