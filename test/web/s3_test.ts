/**
 * The console browsing what the pusher uploaded, against a real S3 (radosgw): the segment under `--prefix` is
 * listed with its `.json` facts, served with Range (206, 416) through the console, and keys outside the prefix or
 * not segments are 404.
 */
import assert from "node:assert/strict";
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { s3ServerMissing, type S3TestServer, startS3Server } from "../helpers/s3_server.ts";
import { startRedis, type TestRedis } from "../helpers/redis_server.ts";
import { type NodeProcess, startNode } from "../helpers/process.ts";
import { freePort } from "../helpers/net.ts";
import { smallMp4 } from "../helpers/segments.ts";
import { permissionFlags } from "../../src/launcher/permissions.ts";

const BUCKET = "console-videos";
const DIR = "tutorial/edge-1/cam/2026-01-24/16";
const STEM = "cam_20260124_162845_649586";

Deno.test("web S3: the pusher's segments listed with their facts, streamed with Range; other keys 404", async () => {
  assert.equal(s3ServerMissing(), null);
  let s3: S3TestServer | undefined;
  let redis: TestRedis | undefined;
  let node: NodeProcess | undefined;
  let client: S3Client | undefined;
  try {
    [s3, redis] = await Promise.all([startS3Server(), startRedis()]);
    client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const mp4 = await smallMp4();
    const put = (Key: string, Body: Uint8Array | string) =>
      client!.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body }));
    await put(`${DIR}/${STEM}.mp4`, mp4);
    await put(
      `${DIR}/${STEM}.json`,
      JSON.stringify({
        sensor_name: "cam",
        codec: "h264",
        start: "2026-01-24T16:28:45.649586Z",
        end: "2026-01-24T16:28:46.049586Z",
      }),
    );
    await put(`elsewhere/${STEM}.mp4`, mp4);
    await put(`tutorial/notes.txt`, "not a segment");
    const port = freePort();
    node = startNode(
      "nodes/web.ts",
      [
        "-n",
        "console",
        "--port",
        `${port}`,
        "--s3-bucket",
        BUCKET,
        "--prefix",
        "tutorial",
        "--endpoint-url",
        s3.endpoint,
      ],
      {
        ...redis.env,
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        AWS_REGION: s3.region,
        AWS_EC2_METADATA_DISABLED: "true",
      },
      ["--no-prompt", ...permissionFlags("web")],
    );
    await node.waitForLine(/browsing recordings in s3:\/\/console-videos\/tutorial/, 20_000);
    const base = `http://127.0.0.1:${port}`;
    const list = await (await fetch(`${base}/api/recordings`)).json();
    assert.equal(list.s3Error, null);
    assert.equal(list.segments.length, 1);
    const seg = list.segments[0];
    assert.equal(seg.sensor, "cam");
    assert.equal(seg.codec, "h264");
    assert.ok(Math.abs(seg.end - 1769272126.049586) < 1e-6);
    assert.equal(seg.video, `/s3/${DIR}/${STEM}.mp4`);

    const whole = await fetch(base + seg.video);
    assert.equal(whole.status, 200);
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), mp4);
    const part = await fetch(base + seg.video, { headers: { range: "bytes=100-199" } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 100-199/${mp4.length}`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), mp4.subarray(100, 200));
    const past = await fetch(base + seg.video, { headers: { range: `bytes=${mp4.length}-` } });
    await past.body?.cancel();
    assert.equal(past.status, 416);
    assert.match(await (await fetch(base + seg.meta)).text(), /"sensor_name":"cam"/);
    for (
      const path of [
        `/s3/elsewhere/${STEM}.mp4`,
        "/s3/tutorial/notes.txt",
        `/s3/tutorial/%2e%2e/elsewhere/${STEM}.mp4`,
      ]
    ) {
      const r = await fetch(base + path);
      await r.body?.cancel();
      assert.equal(r.status, 404, path);
    }
    node.kill("SIGTERM");
    assert.equal(await node.exit, 0);
  } finally {
    client?.destroy();
    await node?.stop();
    await redis?.stop();
    await s3?.stop();
  }
});
