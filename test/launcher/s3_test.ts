/**
 * `deno task up` with the S3 tutorial's shape: a real RTSP camera → aggregator → pusher into a real S3 (Ceph
 * radosgw on loopback), the bucket, endpoint and keys coming into the file through `${ENV}`. Stopped the way a
 * terminal's Ctrl-C stops it: SIGINT to the launcher's whole process group. The nodes, in their own sessions, do
 * not get it; the launcher stops them in order, and the last partial segment still reaches the bucket.
 */
import assert from "node:assert/strict";
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { waitFor } from "../helpers/net.ts";
import { DENO, type NodeProcess, startProcess } from "../helpers/process.ts";
import { startRtspServer } from "../helpers/rtsp_server.ts";
import { s3ServerMissing, type S3TestServer, startS3Server } from "../helpers/s3_server.ts";
import { descendants, midSegment, pipelineYaml, running } from "../helpers/launcher.ts";

const BUCKET = "msight-up-test";
const missing = s3ServerMissing();

Deno.test({
  name: "up: rtsp → aggregator → pusher to radosgw, secrets from ${ENV}; Ctrl-C to the group flushes to S3",
  ignore: missing !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const t0 = Date.now();
    const dir = await Deno.makeTempDir({ prefix: "msight-up-s3-" });
    let s3: S3TestServer | undefined;
    let up: NodeProcess | undefined;
    const camera = await startRtspServer({ source: "mcity", path: `/up-${crypto.randomUUID().slice(0, 8)}` });
    try {
      s3 = await startS3Server();
      const gw = s3;
      console.log(`radosgw started in ${gw.startMs} ms`);
      const client = new S3Client({
        endpoint: gw.endpoint,
        region: gw.region,
        forcePathStyle: true,
        credentials: { accessKeyId: gw.accessKeyId, secretAccessKey: gw.secretAccessKey },
      });
      await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
      const jsonKeys = async (): Promise<string[]> => {
        const out = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "up_test/" }));
        return (out.Contents ?? []).map((o) => o.Key!).filter((k) => k.endsWith(".json")).sort();
      };

      const file = `${dir}/pipeline.yaml`;
      await Deno.writeTextFile(
        file,
        pipelineYaml({
          camera: camera.url,
          env: `env:
  AWS_ACCESS_KEY_ID: \${TEST_KEY_ID}
  AWS_SECRET_ACCESS_KEY: \${TEST_SECRET}
  AWS_REGION: \${TEST_REGION:-us-east-1}`,
          sink: `
  - name: video_pusher
    node: pusher
    flags:
      subscribe-topic: aggregated_video
      bucket-name: \${TEST_BUCKET}
      prefix: up_test
      endpoint-url: \${TEST_ENDPOINT}
      spool-dir: ${dir}/spool`,
        }),
      );
      // `setsid`: the launcher leads its own process group, like a shell's foreground job.
      up = startProcess("setsid", [DENO, "run", "-A", "src/launcher/up.ts", file], {
        TEST_KEY_ID: gw.accessKeyId,
        TEST_SECRET: gw.secretAccessKey,
        TEST_BUCKET: BUCKET,
        TEST_ENDPOINT: gw.endpoint,
        // Nothing but the file configures the SDK.
        AWS_PROFILE: "",
        AWS_SESSION_TOKEN: "",
        AWS_ENDPOINT_URL_S3: "",
        AWS_EC2_METADATA_DISABLED: "true",
      });
      const u = up;
      await u.waitForLine(
        new RegExp(`^video_pusher +\\| .*bucket s3://${BUCKET} at ${gw.endpoint} is reachable`),
        30_000,
      );
      await waitFor(async () => (await jsonKeys()).length >= 2, 60_000, "two segments in the bucket");
      const keys = await jsonKeys();
      assert.match(
        keys[0],
        /^up_test\/up-test-device\/rtsp_sensor\/\d{4}-\d\d-\d\d\/\d\d\/rtsp_sensor_\d{8}_\d{6}_\d{6}\.json$/,
      );
      console.log(`two segments in the bucket after ${Date.now() - t0} ms`);
      // The secret reached the node through its environment, not its command line.
      const procs = await descendants(u.child.pid);
      assert.ok(!procs.some((p) => p.cmd.includes(gw.secretAccessKey)));

      // Stop mid-segment, so there is a partial segment to flush.
      await midSegment(u);

      // Ctrl-C: SIGINT to the whole group. Only the launcher is in it.
      const stopAt = Date.now();
      Deno.kill(-u.child.pid, "SIGINT");
      assert.equal(await u.exit, 0);
      console.log(`stopped in ${Date.now() - stopAt} ms`);
      const out = u.stdout;
      const at = (re: RegExp) => out.findIndex((l) => re.test(l));
      // Each node stopped because the launcher asked it to (SIGTERM), in order, not because of the terminal.
      assert.ok(at(/^up +\| stopping \(received SIGINT\) in pipeline order/) >= 0, out.slice(-20).join("\n"));
      assert.equal(at(/\| .* received SIGINT/), -1, "no node got the terminal's SIGINT");
      // Pipeline order: the source is told to stop before the aggregator (whether the aggregator then has a partial
      // segment to close depends on where the stop falls).
      const rtspStop = at(/^rtsp_node +\| .*received SIGTERM/);
      assert.ok(
        rtspStop >= 0 && rtspStop < at(/^image-aggregator \| .*received SIGTERM/),
        out.slice(-30).join("\n"),
      );
      const early = out.find((l) =>
        /^image-aggregator \| .*closing the segment of rtsp_sensor early \(shutdown/.test(l)
      );
      assert.ok(early, out.slice(-30).join("\n"));
      const heldFrames = Number(early.match(/shutdown, (\d+) frames/)![1]);
      assert.ok(at(/\(closed: shutdown\)/) < at(/^video_pusher +\| .*received SIGTERM/));
      // The partial segment reached the bucket.
      const metas = await Promise.all((await jsonKeys()).map(async (k) => {
        const obj = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: k }));
        return JSON.parse(await obj.Body!.transformToString());
      }));
      assert.ok(
        metas.some((m) => m.flush_reason === "shutdown" && m.frame_count === heldFrames && heldFrames < 20),
        `a segment flushed at shutdown in the bucket: ${metas.map((m) => m.flush_reason).join(", ")}`,
      );
      await waitFor(async () => (await running(procs)).length === 0, 5_000, "no process left");
      console.log(`whole test ${Date.now() - t0} ms`);
    } finally {
      await up?.stop();
      await camera.stop();
      await s3?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
