import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { startRedis } from "../helpers/redis_server.ts";
import { waitFor } from "../helpers/net.ts";
import { hasStream, StreamConsumer, streamKey, StreamProducer } from "../../src/bus/stream.ts";
import { Logger } from "../../src/runtime/log.ts";
import { RedisBus } from "../../src/bus/redis.ts";
import { redisSettingsFromUrl } from "../../src/runtime/env.ts";
import { joinBytes } from "../../src/runtime/bytes.ts";

const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });
const enc = (n: number) => new Uint8Array([0xff, n, 0x00]); // binary on purpose: bytes must survive as-is

Deno.test("stream: a consumer that dies before acknowledging gets its entries again on restart; others are not repeated", async () => {
  const redis = await startRedis();
  const r = new Redis({ host: "127.0.0.1", port: redis.port });
  try {
    const producer = new StreamProducer(r, "aggregated_video", { maxLen: 1000, maxAgeS: 3600 });
    assert.equal(await hasStream(r, "aggregated_video"), false);
    for (let i = 0; i < 10; i++) await producer.append(enc(i));
    assert.equal(await hasStream(r, "aggregated_video"), true);

    // First run: handles 0..3, then "crashes" while handling 4 (never resolves, never acks).
    const seen1: number[] = [];
    const ctl1 = new AbortController();
    const c1 = new StreamConsumer(r, "aggregated_video", { group: "dumper", consumer: "dumper", log });
    const crashed = Promise.withResolvers<void>();
    const run1 = c1.run(async (b) => {
      seen1.push(b[1]);
      assert.deepEqual([b[0], b[2]], [0xff, 0x00]);
      if (b[1] === 4) {
        crashed.resolve();
        await new Promise(() => {}); // hangs like a process killed mid-write
      }
    }, ctl1.signal);
    await crashed.promise;
    c1.close();
    ctl1.abort();
    void run1.catch(() => {});
    assert.deepEqual(seen1, [0, 1, 2, 3, 4]);

    // Restart with the same consumer name: entry 4 comes back first, then 5..9 and a new one; nothing repeats.
    const seen2: number[] = [];
    const ctl2 = new AbortController();
    const c2 = new StreamConsumer(r, "aggregated_video", {
      group: "dumper",
      consumer: "dumper",
      log,
      blockMs: 200,
    });
    const run2 = c2.run((b) => Promise.resolve(void seen2.push(b[1])), ctl2.signal);
    await producer.append(enc(10));
    await waitFor(() => seen2.length >= 7, 5000, "entries after restart");
    ctl2.abort();
    await run2;
    c2.close();
    assert.deepEqual(seen2, [4, 5, 6, 7, 8, 9, 10]);
    const pending = await r.xpending(streamKey("aggregated_video"), "dumper") as [number, ...unknown[]];
    assert.equal(pending[0], 0);

    // A second group (another sink) sees everything from the start, independently.
    const seen3: number[] = [];
    const ctl3 = new AbortController();
    const c3 = new StreamConsumer(r, "aggregated_video", {
      group: "pusher",
      consumer: "pusher",
      log,
      blockMs: 200,
    });
    const run3 = c3.run((b) => Promise.resolve(void seen3.push(b[1])), ctl3.signal);
    await waitFor(() => seen3.length === 11, 5000, "second group");
    ctl3.abort();
    await run3;
    c3.close();
  } finally {
    r.disconnect();
    await redis.stop();
  }
});

Deno.test("stream: entries held by a crashed consumer of the group are claimed by another", async () => {
  const redis = await startRedis();
  const r = new Redis({ host: "127.0.0.1", port: redis.port });
  try {
    const producer = new StreamProducer(r, "v", { maxLen: 100, maxAgeS: 0 });
    for (let i = 0; i < 3; i++) await producer.append(enc(i));
    // Consumer "a" takes all three and dies without acknowledging.
    await r.xgroup("CREATE", streamKey("v"), "pusher", "0", "MKSTREAM");
    await r.xreadgroup("GROUP", "pusher", "a", "COUNT", 10, "STREAMS", streamKey("v"), ">");
    const seen: number[] = [];
    const ctl = new AbortController();
    const b = new StreamConsumer(r, "v", {
      group: "pusher",
      consumer: "b",
      log,
      claimIdleMs: 300,
      blockMs: 100,
    });
    const run = b.run((x) => Promise.resolve(void seen.push(x[1])), ctl.signal);
    await waitFor(() => seen.length === 3, 5000, "claimed entries");
    ctl.abort();
    await run;
    b.close();
    assert.deepEqual(seen, [0, 1, 2]);
    assert.equal(b.claimed, 3);
  } finally {
    r.disconnect();
    await redis.stop();
  }
});

Deno.test("stream: the consumer rides out a Redis restart and reads new entries after it", async () => {
  const redis = await startRedis();
  const r = new Redis({ host: "127.0.0.1", port: redis.port, retryStrategy: () => 100 });
  r.on("error", () => {});
  try {
    const producer = new StreamProducer(r, "v", { maxLen: 100, maxAgeS: 0 });
    const seen: number[] = [];
    const errors: unknown[] = [];
    const ctl = new AbortController();
    const c = new StreamConsumer(r, "v", { group: "g", consumer: "g", log, blockMs: 200 });
    const run = c.run((x) => Promise.resolve(void seen.push(x[1])), ctl.signal, (e) => errors.push(e), 200);
    await producer.append(enc(1));
    await waitFor(() => seen.length === 1, 5000, "first entry");
    await redis.restart(500);
    producer.reannounce();
    await waitFor(
      async () => {
        try {
          await producer.append(enc(2));
          return true;
        } catch {
          return false;
        }
      },
      10_000,
      "append after restart",
    );
    await waitFor(() => seen.includes(2), 10_000, "entry after restart");
    ctl.abort();
    await run;
    c.close();
    assert.ok(errors.length >= 1, "the outage was reported");
  } finally {
    r.disconnect();
    await redis.stop();
  }
});

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
