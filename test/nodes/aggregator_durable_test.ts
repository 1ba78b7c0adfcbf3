/**
 * Durable frames (issue 15, item 2) through a real redis-server and a real aggregator process: frames published as
 * our RTSP node publishes them (pub/sub + the topic's frame stream, `FrameStreamProducer`), the aggregator SIGKILLed
 * mid-segment and restarted: every frame that reached Redis is in exactly one segment. A sensor published on pub/sub
 * only (as MSight's RTSP node does) on the same topic is still aggregated, and a plain pub/sub subscriber (as
 * MSight's aggregator) still gets every frame once.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Redis } from "ioredis";
import { FrameStreamProducer } from "../../src/bus/frame_stream.ts";
import { IMAGE_DATA_TYPE, type ImageData, type VideoData } from "../../src/bus/message.ts";
import { RedisBus } from "../../src/bus/redis.ts";
import { Snowflake } from "../../src/bus/snowflake.ts";
import { streamKey } from "../../src/bus/stream.ts";
import { decodeMessage, encodeMessage, encodeMessagePieces } from "../../src/bus/wire.ts";
import { redisSettingsFromUrl } from "../../src/runtime/env.ts";
import { Logger } from "../../src/runtime/log.ts";
import { waitFor } from "../helpers/net.ts";
import { startNode } from "../helpers/process.ts";
import { startRedis } from "../helpers/redis_server.ts";

const FIX = new URL("../fixtures/mcity-gs-ne/frames/", import.meta.url).pathname;
const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });
const ids = new Snowflake(91);

function image(sensor: string, t: number, jpeg: Uint8Array): ImageData {
  return {
    dataType: IMAGE_DATA_TYPE,
    sensorName: sensor,
    captureTimestamp: t,
    creationTimestamp: t + 0.01,
    frameId: ids.next(),
    deviceName: "cam-box",
    image: jpeg,
    isEncoded: true,
    detectionResults: null,
    size: [960, 1280, 3],
  };
}

/** Every segment in the durable segment stream, in order. */
async function segments(redis: Redis): Promise<VideoData[]> {
  const entries = await redis.xrangeBuffer(streamKey("video"), "-", "+");
  return entries.map(([, f]) => decodeMessage(new Uint8Array(f[1])) as VideoData);
}

Deno.test({
  name: "aggregator: SIGKILLed mid-segment and restarted, it loses no frame that reached the frame stream",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    const jpegs = await Promise.all([0, 1, 2, 3, 4].map((i) => Deno.readFile(`${FIX}000${i}.jpg`)));
    const bus = await RedisBus.connect(redisSettingsFromUrl(redis.url), log, {
      name: "cam",
      publisher: true,
    });
    const client = new Redis({ host: "127.0.0.1", port: redis.port });
    const msight = new Redis({ host: "127.0.0.1", port: redis.port });
    const onPubSub: bigint[] = [];
    msight.on(
      "messageBuffer",
      (_c: Buffer, m: Buffer) => onPubSub.push(decodeMessage(new Uint8Array(m)).frameId),
    );
    await msight.subscribe("frames");
    const producer = new FrameStreamProducer(bus, "frames", "cam", { maxAgeS: 300, maxBytes: 2 ** 30 }, log);
    await producer.start();
    const args = ["-n", "agg", "-st", "frames", "-pt", "video", "--fps", "10", "--buffer-size", "20"];
    const start = async () => {
      const node = startNode(
        "nodes/aggregator.ts",
        [...args, "--overlap-size", "0", "--max-idle", "60"],
        redis.env,
      );
      await node.waitForLine(/taking frames from the durable stream/, 30_000);
      return node;
    };
    const published: bigint[] = [];
    const msightIds: bigint[] = [];
    const t0 = 1769272125;
    let k = 0;
    const send = async (n: number) => {
      for (let i = 0; i < n; i++, k++) {
        const img = image("cam", t0 + k * 0.1, jpegs[k % 5]);
        published.push(img.frameId);
        assert.ok((await producer.publish(encodeMessagePieces(img))) >= 0);
        // MSight's RTSP node on the same topic: pub/sub only.
        const other = image("msight_cam", t0 + k * 0.1, jpegs[(k + 2) % 5]);
        msightIds.push(other.frameId);
        await client.publish("frames", Buffer.from(encodeMessage(other)));
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    let node = await start();
    try {
      // A sensor's first 6 s of frames wait for the frame choice's verdict (the probe): 65 frames (6.5 s) make
      // segments come out.
      await send(65);
      await waitFor(
        async () => (await segments(client)).filter((s) => s.sensorName === "cam").length >= 2,
        60_000,
        "two segments of cam",
      );
      await send(5);
      node.kill("SIGKILL"); // mid-segment: frames taken, not yet in a published segment
      await node.exit;
      await send(12); // while it is down: these wait on the stream
      node = await start();
      const left = await node.waitForLine(/left \d+ frame\(s\) unacknowledged/, 10_000);
      assert.match(left, /left [1-9]\d* frame\(s\) unacknowledged: [1-9]\d* segmented again/);
      await send(18); // 100 in all
      // Every frame read before the stop (one not yet read would wait in the stream for the next run).
      await waitFor(
        async () => {
          const groups = await client.xinfo("GROUPS", streamKey("frames")) as unknown[][];
          const g = groups[0];
          return g[g.indexOf("lag") + 1] === 0 && g[g.indexOf("entries-read") + 1] === published.length;
        },
        30_000,
        "every frame read",
      );
      node.kill("SIGTERM"); // flushes what is open (cam's rebuilt frames, msight_cam's partial segment)
      assert.equal(await node.exit, 0);
      const segs = await segments(client);
      const cam = segs.filter((s) => s.sensorName === "cam").flatMap((s) => s.frameIds);
      assert.deepEqual(
        cam.toSorted((a, b) => (a < b ? -1 : 1)),
        published,
        "each frame in exactly one segment",
      );
      // Nothing left pending once every segment is in the segment stream.
      const pending = await client.xpending(streamKey("frames"), "agg") as [number, ...unknown[]];
      assert.equal(pending[0], 0, "no frame left unacknowledged");
      // The pub/sub-only sensor was aggregated too: every frame sent after the restart (pub/sub keeps nothing for a
      // node that is down, so what was in progress or sent meanwhile is lost, as with MSight).
      const other = new Set(segs.filter((s) => s.sensorName === "msight_cam").flatMap((s) => s.frameIds));
      assert.ok(
        msightIds.slice(-18).every((id) => other.has(id)),
        `msight_cam frames in segments: ${other.size}`,
      );
      // A plain pub/sub subscriber got each streamed frame once, as before.
      await waitFor(() => onPubSub.length >= published.length * 2, 5000, "pub/sub copies");
      const mine = new Set(published.map(String));
      assert.equal(onPubSub.filter((id) => mine.has(String(id))).length, published.length);
    } catch (err) {
      console.error(node.stderr.slice(-40).join("\n"));
      throw err;
    } finally {
      node.kill("SIGKILL");
      await node.stop();
      producer.close();
      await bus.close();
      client.disconnect();
      msight.disconnect();
      await redis.stop();
    }
  },
});
