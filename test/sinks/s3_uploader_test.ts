/**
 * The S3 pusher's layer against a real Ceph radosgw (signatures, Content-MD5 and multipart checked by the server).
 * One cluster for the whole file (about 12 s to start); every wait is bounded.
 */
import assert from "node:assert/strict";
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { VIDEO_DATA_TYPE, type VideoData } from "../../src/bus/message.ts";
import { FatalError } from "../../src/runtime/errors.ts";
import { Logger } from "../../src/runtime/log.ts";
import { Metrics } from "../../src/runtime/metrics.ts";
import { sha256Hex } from "../../src/sinks/metadata.ts";
import { s3Keys } from "../../src/sinks/naming.ts";
import { Outbox } from "../../src/sinks/outbox.ts";
import { classifyS3Error, S3Uploader, type S3UploaderConfig } from "../../src/sinks/s3_uploader.ts";
import { s3ServerMissing, type S3TestServer, startS3Server } from "../helpers/s3_server.ts";
import { freePort } from "../helpers/net.ts";

const BUCKET = "msight-test";
const MiB = 1024 * 1024;
const FRAME0 = 7421057263124512769n;

function segment(i: number, bytes = 2000, sensor = "cam"): VideoData {
  const ts = 1769272125.649586 + i * 10;
  const video = new Uint8Array(bytes).map((_, j) => (i * 131 + j * 7) & 0xff);
  const frameIds = [0n, 1n, 2n].map((k) => FRAME0 + BigInt(i) * 1000n + k);
  return {
    dataType: VIDEO_DATA_TYPE,
    sensorName: sensor,
    captureTimestamp: ts,
    creationTimestamp: ts + 10,
    frameId: frameIds[0],
    deviceName: "edge-1",
    video,
    detectionResults: null,
    frameIds,
    captureTimestamps: [ts, ts + 0.1, ts + 0.2],
  };
}

function logger(lines: string[]): Logger {
  return new Logger({ device: "edge-1", node: "video_pusher", level: "DEBUG", sink: (l) => lines.push(l) });
}

async function bodyBytes(client: S3Client, key: string): Promise<Uint8Array> {
  const out = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return await out.Body!.transformToByteArray();
}

async function listKeys(client: S3Client, prefix: string): Promise<string[]> {
  const out = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const missing = s3ServerMissing();

Deno.test({
  name: "S3 sinks against a real radosgw",
  ignore: missing !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    let server: S3TestServer | null = null;
    let client: S3Client | null = null;
    const toClose: S3Uploader[] = [];
    try {
      server = await startS3Server();
      console.log(`radosgw started in ${server.startMs} ms at ${server.endpoint}`);
      const s3 = server;
      const creds = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
      client = new S3Client({
        endpoint: s3.endpoint,
        region: s3.region,
        forcePathStyle: true,
        credentials: creds,
      });
      const c = client;
      await c.send(new CreateBucketCommand({ Bucket: BUCKET }));
      const uploader = (lines: string[], over: Partial<S3UploaderConfig> = {}) => {
        const u = new S3Uploader({
          bucket: BUCKET,
          region: s3.region,
          endpointUrl: s3.endpoint,
          forcePathStyle: true,
          credentials: creds,
          connectTimeoutMs: 1000,
          requestTimeoutMs: 10_000,
          ...over,
        }, logger(lines));
        toClose.push(u);
        return u;
      };
      const spoolRoot = await Deno.makeTempDir({ prefix: "msight-spool-" });
      let spoolN = 0;
      const newSpool = () => `${spoolRoot}/s${spoolN++}`;

      await t.step(
        "startup check: ok, wrong bucket, bad credentials, missing credentials, network down",
        async () => {
          assert.deepEqual(await uploader([]).check(), { ok: true });
          const wrong = await uploader([], { bucket: "no-such-bucket" }).check().then(() => null, (e) => e);
          assert.ok(wrong instanceof FatalError, String(wrong));
          assert.match(wrong.message, /bucket "no-such-bucket" does not exist/);
          const bad = await uploader([], {
            credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: "wrong" },
          })
            .check().then(() => null, (e) => e);
          assert.ok(bad instanceof FatalError, String(bad));
          assert.match(bad.message, /denied.*credentials/);
          assert.ok(!bad.message.includes("\n"));
          // No keys anywhere: the standard chain finds none (instance metadata disabled so it fails fast).
          const saved = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "AWS_EC2_METADATA_DISABLED",
            "HOME",
          ]
            .map((k) => [k, Deno.env.get(k)] as const);
          try {
            for (const [k] of saved) Deno.env.delete(k);
            Deno.env.set("AWS_EC2_METADATA_DISABLED", "true");
            Deno.env.set("HOME", spoolRoot);
            const none = await uploader([], { credentials: undefined }).check().then(() => null, (e) => e);
            assert.ok(none instanceof FatalError, String(none));
            assert.match(none.message, /no AWS credentials found/);
          } finally {
            for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
          }
          const closed = freePort(); // nothing listens there once freePort returns
          const down = await uploader([], { endpointUrl: `http://127.0.0.1:${closed}` }).check();
          assert.equal(down.ok, false);
        },
      );

      await t.step("server verifies Content-MD5 (integrity); BadDigest is retryable", async () => {
        const err = await c.send(
          new PutObjectCommand({
            Bucket: BUCKET,
            Key: "x",
            Body: new Uint8Array([1]),
            ContentMD5: "AAAAAAAAAAAAAAAAAAAAAA==",
          }),
        ).then(() => null, (e) => e);
        assert.ok(err, "a wrong Content-MD5 must be rejected");
        assert.equal(classifyS3Error(err).kind, "retryable");
      });

      await t.step("outbox uploads .mp4 then .json with keys, content types and checksums", async () => {
        const lines: string[] = [];
        const metrics = new Metrics();
        const ob = await Outbox.open({
          spoolDir: newSpool(),
          spoolMaxBytes: 10 * MiB,
          prefix: "msight_tutorial",
          uploader: uploader(lines),
          log: logger(lines),
          metrics,
        });
        try {
          const seg = segment(0);
          assert.equal((await ob.enqueue(seg)).status, "queued");
          assert.ok(await ob.drain(20_000), lines.join("\n"));
          const keys = s3Keys(seg, "msight_tutorial");
          assert.equal(keys.video, "msight_tutorial/edge-1/cam/2026-01-24/16/cam_20260124_162845_649586.mp4");
          const headV = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: keys.video }));
          const headJ = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: keys.metadata }));
          assert.equal(headV.ContentType, "video/mp4");
          assert.equal(headJ.ContentType, "application/json");
          assert.equal(headV.Metadata?.sha256, sha256Hex(seg.video));
          assert.ok(headJ.LastModified! >= headV.LastModified!);
          assert.deepEqual(await bodyBytes(c, keys.video), seg.video);
          const json = new TextDecoder().decode(await bodyBytes(c, keys.metadata));
          assert.match(json, new RegExp(`"frame_ids": \\[\\n    ${FRAME0},\\n    ${FRAME0 + 1n},`));
          assert.match(json, new RegExp(`"sha256": "${sha256Hex(seg.video)}"`));
          assert.equal(metrics.counter("outbox_segments_uploaded_total", "").get(), 1);
          assert.equal(metrics.histogram("outbox_upload_seconds", "").count, 1);
          assert.match(metrics.render(), /msight_outbox_depth 0/);
          // Same segment again after upload: same keys, no other object.
          await ob.enqueue(seg);
          assert.ok(await ob.drain(20_000));
          assert.deepEqual(await listKeys(c, "msight_tutorial/"), [keys.metadata, keys.video].sort());
        } finally {
          await ob.close();
        }
      });

      await t.step("multipart for a >5 MiB body: ETag -N, stale uploads aborted, none leaked", async () => {
        const lines: string[] = [];
        const up = uploader(lines, { multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB });
        const seg = segment(1, 6 * MiB + 123);
        const keys = s3Keys(seg, "mp");
        // A leftover of an earlier crashed attempt on the same key.
        await c.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: keys.video }));
        const ob = await Outbox.open({
          spoolDir: newSpool(),
          spoolMaxBytes: 64 * MiB,
          prefix: "mp",
          uploader: up,
          log: logger(lines),
        });
        try {
          await ob.enqueue(seg);
          assert.ok(await ob.drain(30_000), lines.join("\n"));
        } finally {
          await ob.close();
        }
        const head = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: keys.video }));
        assert.match(head.ETag ?? "", /-2"?$/);
        assert.equal(head.ContentLength, seg.video.byteLength);
        assert.equal(head.ContentType, "video/mp4");
        assert.equal(sha256Hex(await bodyBytes(c, keys.video)), sha256Hex(seg.video));
        assert.ok(lines.some((l) => l.includes("aborted 1 unfinished multipart upload")), lines.join("\n"));
        // An upload cancelled mid-way is aborted on the server too.
        const big = `${spoolRoot}/big.bin`;
        await Deno.writeFile(big, new Uint8Array(20 * MiB));
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 100);
        await up.uploadFile(big, "mp/cancelled.bin", "application/octet-stream", "00", ac.signal).catch(
          () => {},
        );
        const left = await c.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
        assert.deepEqual(left.Uploads ?? [], []);
      });

      await t.step("S3 down for a while, then back: everything in the outbox is uploaded", async () => {
        const lines: string[] = [];
        const metrics = new Metrics();
        const ob = await Outbox.open({
          spoolDir: newSpool(),
          spoolMaxBytes: 10 * MiB,
          prefix: "outage",
          uploader: uploader(lines, { maxAttempts: 1 }),
          log: logger(lines),
          metrics,
          initialBackoffMs: 100,
          maxBackoffMs: 400,
        });
        try {
          await s3.pauseGateway();
          const segs = [2, 3, 4].map((i) => segment(i));
          for (const s of segs) assert.equal((await ob.enqueue(s)).status, "queued");
          const retried = metrics.counter("outbox_upload_retries_total", "");
          await waitFor(() => retried.get() >= 2, 10_000, "retries while S3 is down");
          assert.equal(ob.depth, 3);
          assert.ok(ob.oldestAgeS > 0);
          await s3.restartGateway();
          assert.ok(await ob.drain(30_000), lines.slice(-5).join("\n"));
          const keys = await listKeys(c, "outage/");
          assert.deepEqual(
            keys,
            segs.flatMap((s) => [s3Keys(s, "outage").metadata, s3Keys(s, "outage").video]).sort(),
          );
          assert.equal(metrics.counter("outbox_segments_uploaded_total", "").get(), 3);
          assert.ok(lines.some((l) => l.includes("uploads resumed")));
        } finally {
          await ob.close();
          await s3.restartGateway();
        }
      });

      await t.step(
        "outbox full drops oldest (counted); a new instance on the same spool uploads the rest",
        async () => {
          const lines: string[] = [];
          const metrics = new Metrics();
          const spool = newSpool();
          const opts = {
            spoolDir: spool,
            spoolMaxBytes: 3 * 2000 + 3 * 1500, // room for three segments of 2000 bytes (+ their entry files)
            prefix: "full",
            uploader: uploader(lines),
            log: logger(lines),
            initialBackoffMs: 100,
            maxBackoffMs: 400,
          };
          // No worker: as if S3 were unreachable the whole time.
          const first = await Outbox.open({ ...opts, metrics, startWorker: false });
          const segs = [10, 11, 12, 13, 14].map((i) => segment(i));
          for (const s of segs) await first.enqueue(s);
          const dropped = metrics.counter("outbox_segments_dropped_total", "");
          assert.equal(dropped.get({ reason: "spool_full" }), 2);
          assert.equal(first.depth, 3);
          assert.deepEqual(first.pendingKeys(), segs.slice(2).map((s) => s3Keys(s, "full").video));
          assert.ok(lines.some((l) => l.includes("outbox full: dropped oldest segment")));
          await first.close();
          // Restart: the entries are on disk and resume in order.
          const second = await Outbox.open({ ...opts, metrics: new Metrics() });
          try {
            assert.equal(second.depth, 3);
            assert.ok(await second.drain(30_000), lines.slice(-5).join("\n"));
          } finally {
            await second.close();
          }
          const keys = await listKeys(c, "full/");
          assert.deepEqual(
            keys,
            segs.slice(2).flatMap((s) => [s3Keys(s, "full").metadata, s3Keys(s, "full").video]).sort(),
          );
          const spoolLeft: string[] = [];
          for await (const e of Deno.readDir(spool)) spoolLeft.push(e.name);
          assert.deepEqual(spoolLeft, ["failed"]);
        },
      );

      await t.step("no multipart upload leaked anywhere in the bucket", async () => {
        const left = await c.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
        assert.deepEqual(left.Uploads ?? [], []);
      });
      await Deno.remove(spoolRoot, { recursive: true });
    } finally {
      for (const u of toClose) u.close();
      client?.destroy();
      await server?.stop();
    }
  },
});

if (missing) console.warn(`S3 tests skipped: ${missing}`);
