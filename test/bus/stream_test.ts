import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { startRedis } from "../helpers/redis_server.ts";
import { streamKey, StreamProducer } from "../../src/bus/stream.ts";
import { Logger } from "../../src/runtime/log.ts";
import { RedisBus } from "../../src/bus/redis.ts";
import { redisSettingsFromUrl } from "../../src/runtime/env.ts";
import { joinBytes } from "../../src/runtime/bytes.ts";

const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });

Deno.test("stream: a message in pieces is appended whole, through the node's publishing connection or through ioredis", async () => {
  const redis = await startRedis();
  const r = new Redis({ host: "127.0.0.1", port: redis.port });
  const settings = redisSettingsFromUrl(redis.url);
  // 3 MB in pieces, as the aggregator sends a segment (msgpack head, MP4 pages, tail).
  const pieces = [
    new Uint8Array([0x8a, 1]),
    new Uint8Array(1 << 20).fill(7),
    new Uint8Array(2_000_000).fill(9),
  ];
  const whole = joinBytes(pieces);
  try {
    // With `publisher` the XADD goes out on the raw RESP connection (replies off there); without, ioredis carries it
    // (the TLS case), joined.
    for (const publisher of [true, false]) {
      const bus = await RedisBus.connect(settings, log, { name: `p${publisher}`, publisher });
      try {
        const topic = `video_${publisher}`;
        const producer = new StreamProducer(
          bus.client,
          topic,
          { maxLen: 10, maxAgeS: 0 },
          (a) => bus.command(a),
        );
        const id = await producer.append(pieces);
        const entries = await r.xrangeBuffer(streamKey(topic), "-", "+");
        assert.deepEqual(entries.map(([i]) => i.toString()), [id]);
        assert.deepEqual(new Uint8Array(entries[0][1][1]), whole, `publisher ${publisher}`);
        // PUBLISH still works on the same connection after the command.
        assert.ok(await bus.publish("after", new Uint8Array([1])) >= 0);
      } finally {
        await bus.close();
      }
    }
  } finally {
    r.disconnect();
    await redis.stop();
  }
});
