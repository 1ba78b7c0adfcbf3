import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisBus } from "../../src/bus/redis.ts";
import { SegmentWriter } from "../../src/bus/segment_writer.ts";
import { streamKey, STREAMS_KEY } from "../../src/bus/stream.ts";
import { VIDEO_DATA_TYPE } from "../../src/bus/message.ts";
import { decodeMessage, type OutgoingMessage } from "../../src/bus/wire.ts";
import { redisSettingsFromUrl } from "../../src/runtime/env.ts";
import { SegmentError } from "../../src/runtime/errors.ts";
import { Logger } from "../../src/runtime/log.ts";
import { waitFor } from "../helpers/net.ts";
import { startRedis } from "../helpers/redis_server.ts";

const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });

const segment = (n: number): OutgoingMessage => ({
  dataType: VIDEO_DATA_TYPE,
  sensorName: "cam",
  captureTimestamp: 1769272125.5 + n,
  creationTimestamp: 1769272126 + n,
  frameId: BigInt(n),
  deviceName: "edge-1",
  video: [new Uint8Array([0, 0, 0, 8]), new Uint8Array([0x66, 0x74, 0x79, n])],
  detectionResults: null,
  frameIds: [BigInt(n)],
  captureTimestamps: [1769272125.5 + n],
});

Deno.test("segment writer: a segment goes on pub/sub and the durable stream; the stream is announced again after a Redis restart", async () => {
  const redis = await startRedis();
  const bus = await RedisBus.connect(redisSettingsFromUrl(redis.url), log, {
    name: "writer",
    publisher: true,
  });
  const watcher = await RedisBus.connect(redisSettingsFromUrl(redis.url), log, { name: "watcher" });
  const writer = new SegmentWriter({
    bus,
    log,
    topic: "aggregated_video",
    stream: { maxLen: 10, maxAgeS: 0 },
  });
  try {
    assert.equal(writer.durable, true);
    await writer.start();
    const got: bigint[] = [];
    await watcher.subscribe("aggregated_video", (b) => got.push(decodeMessage(b).frameId));
    await writer.write(segment(1));
    await waitFor(() => Promise.resolve(got.length === 1), 5_000, "the pub/sub copy");
    assert.deepEqual(got, [1n]);
    const r = new Redis({ host: "127.0.0.1", port: redis.port });
    try {
      const entries = await r.xrangeBuffer(streamKey("aggregated_video"), "-", "+");
      assert.equal(entries.length, 1);
      assert.equal(decodeMessage(new Uint8Array(entries[0][1][1])).frameId, 1n);
      assert.ok(await r.hexists(STREAMS_KEY, "aggregated_video"));
    } finally {
      r.disconnect();
    }

    // A restart empties Redis, MSIGHT:STREAMS included: the next segment announces the stream again.
    await redis.restart();
    await waitFor(() => Promise.resolve(bus.ready), 10_000, "the bus to reconnect");
    await writer.write(segment(2));
    const r2 = new Redis({ host: "127.0.0.1", port: redis.port });
    try {
      assert.ok(await r2.hexists(STREAMS_KEY, "aggregated_video"), "announced again");
      assert.equal(await r2.xlen(streamKey("aggregated_video")), 1);
    } finally {
      r2.disconnect();
    }
  } finally {
    writer.close();
    await watcher.close();
    await bus.close();
    await redis.stop();
  }
});

Deno.test("segment writer: Redis down past the outage wait is a SegmentError (redis_unavailable), not a crash", async () => {
  const redis = await startRedis();
  const bus = await RedisBus.connect(redisSettingsFromUrl(redis.url), log, {
    name: "writer-down",
    publisher: true,
  });
  const writer = new SegmentWriter({ bus, log, topic: "v", outageWaitMs: 300 });
  try {
    assert.equal(writer.durable, false);
    await writer.start();
    await redis.stop();
    await waitFor(() => Promise.resolve(!bus.ready), 5_000, "the bus to notice");
    await assert.rejects(writer.write(segment(1)), (err) => {
      assert.ok(err instanceof SegmentError, String(err));
      assert.equal(err.reason, "redis_unavailable");
      return true;
    });
  } finally {
    writer.close();
    await bus.close();
  }
});
