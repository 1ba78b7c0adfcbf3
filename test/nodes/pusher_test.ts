/**
 * The S3 pusher as users run it: a real process, a real Redis, a real S3 (Ceph radosgw on loopback), checked through
 * `@aws-sdk/client-s3`. One radosgw and one Redis for the whole file (the gateway takes about 12 s to start); each
 * step uses its own topic, node name, key prefix and spool, and every wait is bounded.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { Redis } from "ioredis";
import { startRedis, type TestRedis } from "../helpers/redis_server.ts";
import { startNats } from "../helpers/nats_server.ts";
import { connectBus } from "../../src/bus/connect.ts";
import { selectBus } from "../../src/bus/select.ts";
import { Logger } from "../../src/runtime/log.ts";
import { DENO, type NodeProcess, startNode, stopsCleanly } from "../helpers/process.ts";
import { freePort, waitFor } from "../helpers/net.ts";
import { makeSegment, segmentFeed } from "../helpers/segments.ts";
import { s3ServerMissing, type S3TestServer, startS3Server } from "../helpers/s3_server.ts";
import { encodeMessage } from "../../src/bus/wire.ts";
import { streamKey, StreamProducer } from "../../src/bus/stream.ts";
import { VIDEO_DATA_TYPE, type VideoData } from "../../src/bus/message.ts";
import { s3Keys } from "../../src/sinks/naming.ts";

const BUCKET = "msight-pusher-test";
const MiB = 1024 * 1024;

/** What the node needs: the network, env, OS facts for the SDK's user agent, reading, and writing its spool. */
const PERMS = (spool: string) => [
  "--allow-net",
  "--allow-env",
  "--allow-sys=hostname,osRelease",
  "--allow-read",
  `--allow-write=${spool}`,
];

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

/** Files of the spool that are segments waiting (its `failed/` folder aside). */
async function spooled(dir: string): Promise<string[]> {
  return (await listDir(dir)).filter((n) => n !== "failed");
}

async function metric(port: number, re: RegExp): Promise<number | null> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await res.text();
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (m) return Number(line.trim().split(/\s+/).pop());
  }
  return null;
}

/** Deno's cache of this run: a node started with another HOME must still find it (else it would go online). */
async function denoDir(): Promise<string> {
  const out = await new Deno.Command(DENO, { args: ["info", "--json"], stdout: "piped", stderr: "null" })
    .output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

const missing = s3ServerMissing();

Deno.test({
  name: "pusher node against a real radosgw and Redis",
  ignore: missing !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    let s3: S3TestServer | null = null;
    let redis: TestRedis | null = null;
    let client: S3Client | null = null;
    let r: Redis | null = null;
    const nodes: NodeProcess[] = [];
    const root = await Deno.makeTempDir({ prefix: "msight-pusher-test-" });
    // HOME without ~/.aws, so nothing but what a step passes configures the SDK.
    const home = `${root}/home`;
    await Deno.mkdir(home);
    try {
      const t0 = Date.now();
      let cacheDir: string;
      [s3, redis, cacheDir] = await Promise.all([startS3Server(), startRedis(), denoDir()]);
      console.log(`radosgw started in ${s3.startMs} ms at ${s3.endpoint}`);
      const gw = s3;
      const rd = redis;
      const c = client = new S3Client({
        endpoint: gw.endpoint,
        region: gw.region,
        forcePathStyle: true,
        credentials: { accessKeyId: gw.accessKeyId, secretAccessKey: gw.secretAccessKey },
      });
      await c.send(new CreateBucketCommand({ Bucket: BUCKET }));
      const bus = r = new Redis({ host: "127.0.0.1", port: rd.port });

      /** Environment of a node: Redis, the test keys, a bare HOME, no region, no instance metadata lookups. */
      const nodeEnv = (over: Record<string, string> = {}): Record<string, string> => ({
        ...rd.env,
        HOME: home,
        DENO_DIR: cacheDir,
        AWS_ACCESS_KEY_ID: gw.accessKeyId,
        AWS_SECRET_ACCESS_KEY: gw.secretAccessKey,
        AWS_SESSION_TOKEN: "",
        AWS_PROFILE: "",
        AWS_REGION: "",
        AWS_DEFAULT_REGION: "",
        AWS_ENDPOINT_URL_S3: "",
        AWS_EC2_METADATA_DISABLED: "true",
        ...over,
      });
      const pusher = (args: string[], spool: string, env = nodeEnv()): NodeProcess => {
        const p = startNode(
          "nodes/pusher.ts",
          [...args, "--endpoint-url", gw.endpoint, "--spool-dir", spool],
          env,
          PERMS(spool),
        );
        nodes.push(p);
        return p;
      };
      const listKeys = async (prefix: string): Promise<string[]> => {
        const keys: string[] = [];
        let token: string | undefined;
        do {
          const out = await c.send(
            new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }),
          );
          for (const o of out.Contents ?? []) keys.push(o.Key!);
          token = out.IsTruncated ? out.NextContinuationToken : undefined;
        } while (token);
        return keys.sort();
      };
      const getBytes = async (key: string): Promise<Uint8Array> => {
        const out = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
        return await out.Body!.transformToByteArray();
      };
      const getText = async (key: string) => new TextDecoder().decode(await getBytes(key));
      const countJson = async (prefix: string) =>
        (await listKeys(prefix)).filter((k) => k.endsWith(".json")).length;
      /** Every `.mp4` under `prefix` has its `.json`, and its bytes hash to the `.json`'s and the object's sha256. */
      const checkIntact = async (prefix: string): Promise<Map<string, string>> => {
        const keys = await listKeys(prefix);
        const mp4 = keys.filter((k) => k.endsWith(".mp4"));
        const json = keys.filter((k) => k.endsWith(".json"));
        assert.equal(keys.length, mp4.length + json.length, keys.join("\n"));
        assert.deepEqual(json.map((k) => k.replace(/\.json$/, "")), mp4.map((k) => k.replace(/\.mp4$/, "")));
        const frameIdByStem = new Map<string, string>();
        for (const k of mp4) {
          const bytes = await getBytes(k);
          const metaText = await getText(k.replace(/\.mp4$/, ".json"));
          const meta = JSON.parse(metaText);
          assert.equal(sha256(bytes), meta.sha256, `${k} is intact`);
          assert.equal(bytes.byteLength, meta.byte_size);
          const head = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: k }));
          assert.equal(head.Metadata?.sha256, meta.sha256);
          frameIdByStem.set(
            k.replace(/^.*\//, "").replace(/\.mp4$/, ""),
            /"frame_id": (\d+)/.exec(metaText)![1],
          );
        }
        return frameIdByStem;
      };
      /** The keys each of `sent` has in S3 under `prefix`: its .mp4 and its .json, sorted. */
      const expectedKeys = (sent: VideoData[], prefix: string): string[] =>
        sent.flatMap((s) => {
          const k = s3Keys(s, prefix);
          return [k.video, k.metadata];
        }).sort();
      /** Multipart uploads begun and not finished under `prefix` (the whole bucket without one). */
      const openUploads = async (prefix?: string) =>
        (await c.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }))).Uploads ?? [];
      /** Messages of `topic`'s durable stream delivered to consumer group `group` and not acknowledged. */
      const unacked = async (topic: string, group: string): Promise<number> =>
        ((await bus.xpending(streamKey(topic), group)) as [number])[0];
      const spoolDrained = (spool: string, timeoutMs: number) =>
        waitFor(async () => (await spooled(spool)).length === 0, timeoutMs, "spool drained");
      /** A pusher's arguments for reading `topic` as consumer group `name`, writing under `prefix` in the bucket. */
      const pusherArgs = (topic: string, name: string, prefix: string, ...more: string[]): string[] => [
        "-st",
        topic,
        "-n",
        name,
        "--bucket-name",
        BUCKET,
        "--prefix",
        prefix,
        ...more,
      ];
      console.log(`servers ready in ${Date.now() - t0} ms`);

      await t.step(
        "the tutorial command: MSight pub/sub segments, then the durable stream, land as <prefix>/<device>/<sensor>/<date>/<hour>/<stem>.mp4 + .json",
        async () => {
          const spool = `${root}/tutorial-spool`;
          // Verbatim from MSight's tutorial, plus the endpoint and spool; no --aws-region and no AWS_REGION: the
          // region falls back to us-east-1.
          const node = pusher(
            [
              "-st",
              "aggregated_video",
              "--name",
              "video_pusher",
              "--bucket-name",
              BUCKET,
              "--prefix",
              "msight_tutorial",
            ],
            spool,
          );
          await node.waitForLine(new RegExp(`bucket s3://${BUCKET} at ${gw.endpoint} is reachable`), 20_000);
          await node.waitForLine(/reading aggregated_video over plain pub\/sub/);
          // An MSight-style publisher: pub/sub only. One of ours, and one encoded by MSight itself.
          const seg = await makeSegment("test_camera", 1769272125.649586);
          await bus.publish("aggregated_video", Buffer.from(encodeMessage(seg)));
          await bus.publish("aggregated_video", Buffer.from([0xde, 0xad])); // malformed: counted, not fatal
          const fixture = await Deno.readFile("test/fixtures/msight-wire/video.msgpack");
          await bus.publish("aggregated_video", Buffer.from(fixture));
          await waitFor(
            async () => (await countJson("msight_tutorial/")) === 2,
            15_000,
            "two segments in S3",
          );

          // Our aggregator: appends to the durable stream and publishes. The node switches to the stream.
          const producer = new StreamProducer(bus, "aggregated_video", { maxLen: 1000, maxAgeS: 0 });
          const viaStream = await makeSegment("test_camera", 1769275725.000001); // the next hour
          const bytes = encodeMessage(viaStream);
          await producer.append(bytes);
          await bus.publish("aggregated_video", Buffer.from(bytes));
          await node.waitForLine(/from its durable stream as consumer group video_pusher/, 10_000);
          await waitFor(
            async () => (await countJson("msight_tutorial/")) === 3,
            15_000,
            "three segments in S3",
          );

          const base =
            "msight_tutorial/test-device/test_camera/2026-01-24/16/test_camera_20260124_162845_649586";
          // MSight's fixture is named from its first frame (16:28:45.649586), not its capture_timestamp (46.512345).
          const mswBase =
            "msight_tutorial/testing/test_camera/2026-01-24/16/test_camera_20260124_162845_649586";
          const nextBase =
            "msight_tutorial/test-device/test_camera/2026-01-24/17/test_camera_20260124_172845_000001";
          assert.deepEqual(
            await listKeys("msight_tutorial/"),
            [
              `${mswBase}.json`,
              `${mswBase}.mp4`,
              `${base}.json`,
              `${base}.mp4`,
              `${nextBase}.json`,
              `${nextBase}.mp4`,
            ].sort(),
          );
          for (const b of [base, mswBase, nextBase]) {
            const v = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${b}.mp4` }));
            assert.equal(v.ContentType, "video/mp4");
            const j = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${b}.json` }));
            assert.equal(j.ContentType, "application/json");
          }
          assert.deepEqual(await getBytes(`${base}.mp4`), seg.video);
          assert.deepEqual(await getBytes(`${nextBase}.mp4`), viaStream.video);
          const expected = JSON.parse(
            await Deno.readTextFile("test/fixtures/msight-wire/video.expected.json"),
          );
          const mswVideo = await getBytes(`${mswBase}.mp4`);
          assert.equal(mswVideo.byteLength, expected.fields.video.bytes);
          assert.equal(sha256(mswVideo), expected.fields.video.sha256);

          // The .json: MSight's keys, every digit of the 64-bit ids.
          const mswText = await getText(`${mswBase}.json`);
          assert.match(mswText, /"frame_id": 7421057266765168641,/);
          const mswMeta = JSON.parse(mswText);
          assert.equal(mswMeta.start_source, "capture_timestamps");
          assert.deepEqual([mswMeta.codec, mswMeta.width, mswMeta.height, mswMeta.fps, mswMeta.duration], [
            "h264",
            320,
            240,
            10,
            0.5,
          ]);
          for (const id of expected.fields.frame_ids as string[]) assert.ok(mswText.includes(id), id);
          const ourText = await getText(`${base}.json`);
          assert.match(ourText, new RegExp(`"frame_id": ${seg.frameId},`));
          for (const id of seg.frameIds) assert.ok(ourText.includes(String(id)), String(id));
          const meta = JSON.parse(ourText);
          assert.equal(meta.data_type, VIDEO_DATA_TYPE);
          assert.equal(meta.sensor_name, "test_camera");
          assert.equal(meta.device_name, "test-device");
          assert.equal(meta.video, null);
          assert.equal(meta.sha256, sha256(seg.video));
          assert.equal(meta.byte_size, seg.video.byteLength);
          assert.ok(node.stderr.some((l) => /dropped a malformed message on aggregated_video/.test(l)));

          await spoolDrained(spool, 5000);
          await stopsCleanly(node);
        },
      );

      await t.step(
        "SIGKILL while segments keep coming on the durable stream: after a restart every segment is in S3 exactly once, intact",
        async () => {
          const topic = "kill_video";
          const prefix = "killed";
          const spool = `${root}/kill-spool`;
          const { sent, publish } = segmentFeed(bus, topic, { pubsub: true });
          await publish(0); // announces the stream, so --transport auto picks it
          const args = pusherArgs(topic, "kill_pusher", prefix, "--aws-region", "us-east-1");
          let node = pusher(args, spool);
          await node.waitForLine(/from its durable stream as consumer group kill_pusher/, 20_000);
          for (let i = 1; i < 10; i++) await publish(i);
          await waitFor(async () => (await countJson(`${prefix}/`)) >= 3, 15_000, "some segments uploaded");
          // More are arriving and being spooled/uploaded right now.
          const more = (async () => {
            for (let i = 10; i < 20; i++) await publish(i), await sleep(20);
          })();
          await sleep(60);
          node.kill("SIGKILL");
          assert.equal(await node.exit, 137);
          const atKill = {
            uploaded: await countJson(`${prefix}/`),
            spooled: (await spooled(spool)).filter((n) => n.endsWith(".entry.json")).length,
            unacked: await unacked(topic, "kill_pusher"),
            published: sent.length,
          };
          console.log(`at the SIGKILL: ${JSON.stringify(atKill)}`);
          await more; // the rest arrive while the pusher is down
          node = pusher(args, spool);
          for (let i = 20; i < 25; i++) await publish(i);
          await waitFor(async () => (await countJson(`${prefix}/`)) === 25, 30_000, "all 25 segments in S3");

          const keys = await listKeys(`${prefix}/`);
          assert.equal(keys.length, 50, keys.join("\n"));
          assert.deepEqual(
            keys,
            expectedKeys(sent, prefix),
            "each segment once, under its own name, nothing else",
          );
          const ids = await checkIntact(`${prefix}/`);
          for (const s of sent) assert.equal(ids.get(s3Keys(s, prefix).stem), String(s.frameId));
          await spoolDrained(spool, 10_000);
          await waitFor(async () => (await unacked(topic, "kill_pusher")) === 0, 5000, "all acknowledged");
          await stopsCleanly(node);
        },
      );

      await t.step(
        "S3 down for a while: the node keeps spooling (and says so), never exits, and uploads everything once S3 is back",
        async () => {
          const topic = "outage_video";
          const prefix = "outage";
          const spool = `${root}/outage-spool`;
          const { sent, publish } = segmentFeed(bus, topic, { pubsub: false });
          await publish(0);
          const node = pusher(
            pusherArgs(topic, "outage_pusher", prefix),
            spool,
            nodeEnv({ AWS_REGION: "us-east-1" }),
          );
          await node.waitForLine(/from its durable stream as consumer group outage_pusher/, 20_000);
          await waitFor(async () => (await countJson(`${prefix}/`)) === 1, 10_000, "first segment uploaded");

          await gw.pauseGateway();
          const down = Date.now();
          for (let i = 1; i < 7; i++) await publish(i), await sleep(100);
          await node.waitForLine(/upload of outage\/\S+ failed; retrying in/, 15_000);
          await waitFor(
            async () => (await spooled(spool)).filter((n) => n.endsWith(".entry.json")).length === 6,
            10_000,
            "six segments in the spool",
          );
          assert.ok(node.stderr.some((l) => /queued outage\/\S+ for upload \(\d+ in the outbox\)/.test(l)));
          await sleep(Math.max(0, 3000 - (Date.now() - down)));
          await gw.restartGateway();
          console.log(`gateway was down ${Date.now() - down} ms`);
          await waitFor(async () => (await countJson(`${prefix}/`)) === 7, 40_000, "all 7 segments in S3");
          await node.waitForLine(/uploads resumed after \d+ failed attempt/, 5000);
          assert.deepEqual(await listKeys(`${prefix}/`), expectedKeys(sent, prefix));
          await checkIntact(`${prefix}/`);
          await spoolDrained(spool, 5000);
          assert.ok(!node.stderr.some((l) => / - CRITICAL :: /.test(l)), node.stderr.join("\n"));
          await stopsCleanly(node, "it was still running, and stops cleanly");
        },
      );

      await t.step(
        "outbox full while S3 is down: the oldest segments are dropped, logged and counted in /metrics",
        async () => {
          const topic = "full_video";
          const prefix = "full";
          const spool = `${root}/full-spool`;
          const metricsPort = freePort();
          const { sent, publish } = segmentFeed(bus, topic, { pubsub: false });
          const segBytes = (await makeSegment("cam", 0)).video.byteLength;
          await gw.pauseGateway(); // down from the start: not fatal either
          const node = pusher(
            pusherArgs(
              topic,
              "full_pusher",
              prefix,
              "--transport",
              "stream",
              "--metrics-port",
              String(metricsPort),
              // Room for two segments (each is the .mp4 plus a small entry file), not three.
              "--spool-max-bytes",
              String(Math.floor(segBytes * 2.5)),
            ),
            spool,
          );
          await node.waitForLine(
            /unreachable.*segments are kept in the outbox until it is reachable/,
            20_000,
          );
          await node.waitForLine(/from its durable stream as consumer group full_pusher/);
          for (let i = 0; i < 6; i++) await publish(i), await sleep(50);
          const dropped = /^msight_outbox_segments_dropped_total\{[^}]*reason="spool_full"[^}]*\}/;
          await waitFor(
            async () => (await metric(metricsPort, /^msight_outbox_segments_queued_total\b/)) === 6,
            10_000,
            "all six received and spooled",
          );
          await waitFor(
            async () => (await unacked(topic, "full_pusher")) === 0,
            5000,
            "all six acknowledged (spooled or dropped)",
          );
          const nDropped = (await metric(metricsPort, dropped))!;
          console.log(
            `segment ${segBytes} bytes, spool bound ${Math.floor(segBytes * 2.5)}: dropped ${nDropped}`,
          );
          // Room for two: four of the six dropped, each logged once with its key.
          assert.equal(nDropped, 4);
          const droppedKeys = node.stderr.flatMap((l) => {
            const m = /outbox full: dropped oldest segment (full\/\S+\.mp4)/.exec(l);
            return m ? [m[1]] : [];
          });
          assert.equal(droppedKeys.length, nDropped, node.stderr.join("\n"));
          assert.equal(await metric(metricsPort, /^msight_outbox_depth\b/), 2);
          assert.equal((await spooled(spool)).filter((n) => n.endsWith(".mp4")).length, 2);

          await gw.restartGateway();
          await waitFor(async () => (await countJson(`${prefix}/`)) === 2, 40_000, "the two kept segments");
          // The oldest went (the one being uploaded at that moment is never dropped, hence no fixed list), the
          // newest stayed, and what is in S3 is exactly what was not dropped.
          const videoKeys = sent.map((s) => s3Keys(s, prefix).video);
          assert.ok(droppedKeys.includes(videoKeys[0]), "the oldest was dropped");
          const kept = videoKeys.filter((k) => !droppedKeys.includes(k));
          assert.ok(kept.includes(videoKeys[5]), "the newest was kept");
          assert.deepEqual(
            await listKeys(`${prefix}/`),
            kept.flatMap((k) => [k, k.replace(/\.mp4$/, ".json")]).sort(),
          );
          await checkIntact(`${prefix}/`);
          await waitFor(
            async () => (await metric(metricsPort, /^msight_outbox_segments_uploaded_total\b/)) === 2,
            5000,
            "uploads counted",
          );
          await stopsCleanly(node);
        },
      );

      await t.step(
        "a segment above the multipart threshold, SIGKILLed mid-upload: uploaded in parts after a restart, no upload leaked",
        async () => {
          const topic = "big_video";
          const prefix = "big";
          const spool = `${root}/big-spool`;
          const producer = new StreamProducer(bus, topic, { maxLen: 10, maxAgeS: 0 });
          const small = await makeSegment("cam", 1769272000);
          // 40 MiB: five 8 MiB parts. The pusher does not parse the video, so a real MP4 padded with a free box.
          const video = new Uint8Array(40 * MiB);
          video.set(small.video);
          const pad = video.byteLength - small.video.byteLength;
          new DataView(video.buffer).setUint32(small.video.byteLength, pad);
          video.set(new TextEncoder().encode("free"), small.video.byteLength + 4);
          for (let i = small.video.byteLength + 8; i < video.byteLength; i += 4096) video[i] = i & 0xff;
          const seg: VideoData = { ...small, video };
          const args = pusherArgs(topic, "big_pusher", prefix);
          await producer.append(encodeMessage(seg));
          let node = pusher(args, spool);
          await node.waitForLine(/from its durable stream as consumer group big_pusher/, 20_000);
          let sawUpload = false;
          await waitFor(
            async () => {
              sawUpload = (await openUploads(`${prefix}/`)).length > 0;
              return sawUpload || (await countJson(`${prefix}/`)) === 1;
            },
            20_000,
            "a multipart upload in progress",
            5,
          );
          node.kill("SIGKILL");
          await node.exit;
          console.log(`killed ${sawUpload ? "during" : "after"} the multipart upload`);
          if (sawUpload) {
            assert.equal(
              (await openUploads(`${prefix}/`)).length,
              1,
              "the killed upload is left on the server, for now",
            );
          }
          node = pusher(args, spool);
          await waitFor(async () => (await countJson(`${prefix}/`)) === 1, 30_000, "the big segment in S3");
          const k = s3Keys(seg, prefix);
          const head = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: k.video }));
          assert.equal(head.ContentType, "video/mp4");
          assert.match(head.ETag ?? "", /-5"?$/, "uploaded in 5 parts");
          assert.equal(head.ContentLength, video.byteLength);
          await checkIntact(`${prefix}/`);
          if (sawUpload) await node.waitForLine(/aborted 1 unfinished multipart upload/, 5000);
          await spoolDrained(spool, 5000);
          await stopsCleanly(node);
        },
      );

      await t.step(
        "startup errors are one clear line: wrong bucket (exit 1), no credentials (exit 1), --prefix ../x (exit 2)",
        async () => {
          const spool = `${root}/bad-spool`;
          const oneLine = (p: NodeProcess, re: RegExp) => {
            const errs = p.stderr.filter((l) => / - (CRITICAL|ERROR) :: |: error: /.test(l));
            assert.equal(errs.length, 1, p.stderr.join("\n"));
            assert.match(errs[0], re);
            assert.ok(!p.stderr.some((l) => /^\s+at /.test(l)), "no stack trace");
          };
          const wrong = pusher(
            ["-st", "v", "-n", "wrong_bucket", "--bucket-name", "no-such-bucket-xyz"],
            spool,
          );
          assert.equal(await wrong.exit, 1);
          oneLine(wrong, /bucket "no-such-bucket-xyz" does not exist/);

          // No keys anywhere: env empty, HOME has no ~/.aws. (Instance metadata lookups are off, as nodeEnv does.)
          const t1 = Date.now();
          const noCreds = pusher(
            ["-st", "v", "-n", "no_creds", "--bucket-name", BUCKET],
            spool,
            nodeEnv({ AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" }),
          );
          assert.equal(await noCreds.exit, 1);
          console.log(`missing credentials reported in ${Date.now() - t1} ms`);
          oneLine(noCreds, /no AWS credentials found/);

          const badPrefix = pusher(
            ["-st", "v", "-n", "bad_prefix", "--bucket-name", BUCKET, "--prefix", "../x"],
            spool,
          );
          assert.equal(await badPrefix.exit, 2);
          oneLine(badPrefix, /--prefix "\.\.\/x" is invalid/);
        },
      );

      await t.step(
        "on NATS (JetStream): two pushers sharing a --group-id put every segment in S3 exactly once, intact",
        async () => {
          const nats = await startNats();
          const quiet = new Logger({ device: "t", node: "t", level: "CRITICAL", sink: () => {} });
          const nbus = await connectBus(selectBus({ busUrl: nats.url, env: () => undefined }), quiet, {
            name: "t",
          });
          try {
            const segs: VideoData[] = [];
            for (let i = 0; i < 8; i++) segs.push(await makeSegment("nats_cam", 1769300000 + i * 10));
            // NATS carries the data; the registry stays in the Redis of nodeEnv, as MSight keeps it.
            const env = nodeEnv(nats.env);
            const members = ["pusher_a", "pusher_b"].map((name) =>
              pusher(
                [
                  ..."-st nats_video --bucket-name".split(" "),
                  BUCKET,
                  ..."--prefix nats --group-id nats_pushers --transport stream --name".split(" "),
                  name,
                ],
                `${root}/spool-${name}`,
                env,
              )
            );
            for (const m of members) {
              await m.waitForLine(
                /from its durable stream as consumer group nats_pushers \(member pusher_/,
                30_000,
              );
            }
            for (const seg of segs) {
              await nbus.segments.append("nats_video", encodeMessage(seg), { maxLen: 1000, maxAgeS: 0 });
            }
            await waitFor(async () => (await countJson("nats/")) >= 8, 60_000, "8 segments in S3");
            await sleep(1000);
            const ids = await checkIntact("nats/");
            assert.equal(ids.size, 8);
            assert.deepEqual(new Set(ids.values()), new Set(segs.map((x) => String(x.frameId))));
            for (const m of members) m.kill("SIGTERM");
            for (const m of members) assert.equal(await m.exit, 0);
          } finally {
            await nbus.close();
            await nats.stop();
          }
        },
      );

      await t.step(
        "no multipart upload is left in the bucket; no node went online for its code",
        async () => {
          assert.deepEqual(await openUploads(), []);
          for (const n of nodes) {
            assert.ok(!n.stderr.some((l) => /Download https?:/.test(l)), n.stderr.join("\n"));
          }
        },
      );
      console.log(`whole file: ${Date.now() - t0} ms`);
    } finally {
      for (const n of nodes) await n.stop();
      r?.disconnect();
      client?.destroy();
      await redis?.stop();
      await s3?.stop();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
