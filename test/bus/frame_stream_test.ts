import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Redis } from "ioredis";
import {
  type FrameEntry,
  FrameStreamProducer,
  FrameStreamReader,
  streamSensorsKey,
} from "../../src/bus/frame_stream.ts";
import { RedisBus } from "../../src/bus/redis.ts";
import { streamKey, STREAMS_KEY } from "../../src/bus/stream.ts";
import { redisSettingsFromUrl } from "../../src/runtime/env.ts";
import { Logger } from "../../src/runtime/log.ts";
import { waitFor } from "../helpers/net.ts";
import { startRedis } from "../helpers/redis_server.ts";

const log = new Logger({ device: "t", node: "t", level: "CRITICAL" });
const frame = (n: number) => [new Uint8Array([1, 2]), new Uint8Array(1000).fill(n % 256)];

for (const publisher of [true, false]) {
  Deno.test(`frame stream: each frame on pub/sub and the stream, announced, trimmed by bytes (${publisher ? "RESP publisher" : "ioredis, as over TLS"})`, async () => {
    const redis = await startRedis();
    const bus = await RedisBus.connect(redisSettingsFromUrl(redis.url), log, { name: "cam", publisher });
    const sub = new Redis({ host: "127.0.0.1", port: redis.port });
    const c = new Redis({ host: "127.0.0.1", port: redis.port });
    const got: Uint8Array[] = [];
    sub.on("messageBuffer", (_t: Buffer, m: Buffer) => got.push(new Uint8Array(m)));
    await sub.subscribe("frames");
    // ~1 KB frames, 150 KB: about 150 entries kept (MAXLEN ~ trims whole nodes of 100).
    const p = new FrameStreamProducer(bus, "frames", "cam1", { maxAgeS: 60, maxBytes: 150_000 }, log);
    try {
      await p.start();
      assert.equal(JSON.parse((await c.hget(STREAMS_KEY, "frames"))!).kind, "frames");
      assert.deepEqual(await c.smembers(streamSensorsKey("frames")), ["cam1"]);
      for (let i = 0; i < 600; i++) assert.ok((await p.publish(frame(i))) >= 0);
      await waitFor(() => got.length === 600, 5000, "600 frames on pub/sub");
      assert.deepEqual(got[599], new Uint8Array([1, 2, ...new Uint8Array(1000).fill(599 % 256)]));
      const len = await c.xlen(streamKey("frames"));
      assert.ok(len >= 148 && len <= 300, `stream trimmed to about 150 entries: ${len}`);
      const [[, fields]] = await c.xrevrangeBuffer(streamKey("frames"), "+", "-", "COUNT", 1);
      assert.deepEqual(new Uint8Array(fields[1]), got[599], "the stream holds the same bytes");
    } finally {
      p.close();
      await bus.close();
      sub.disconnect();
      c.disconnect();
      await redis.stop();
    }
  });
}

Deno.test("frame stream reader: a new group starts at now; a run that dies unacknowledged gets its frames back first, trimmed ones without bytes", async () => {
  const redis = await startRedis();
  const bus = await RedisBus.connect(redisSettingsFromUrl(redis.url), log, { name: "agg" });
  const c = new Redis({ host: "127.0.0.1", port: redis.port });
  const key = streamKey("frames");
  try {
    await c.xadd(key, "*", "d", "before the group");
    const read = async (ack: (r: FrameStreamReader, e: FrameEntry[]) => Promise<void>, until: number) => {
      const r = new FrameStreamReader(bus, { topic: "frames", group: "agg", log, blockMs: 100 });
      await r.open();
      const seen: { entries: FrameEntry[]; replay: boolean }[] = [];
      const stop = new AbortController();
      const done = r.run(async (entries, replay) => {
        seen.push({ entries, replay });
        await ack(r, entries);
      }, stop.signal);
      return {
        seen,
        async end() {
          await waitFor(() => seen.flatMap((s) => s.entries).length >= until, 5000, `${until} entries`);
          stop.abort();
          r.close();
          await done;
        },
      };
    };
    // First run: takes three frames, acknowledges only the first, dies.
    const first = await read(
      async (r, e) =>
        await r.ack(e.filter((x) => new TextDecoder().decode(x.bytes) === "a").map((x) => x.id)),
      3,
    );
    for (const d of ["a", "b", "c"]) await c.xadd(key, "*", "d", d);
    await first.end();
    assert.deepEqual(first.seen.flatMap((s) => s.entries.map((e) => new TextDecoder().decode(e.bytes))), [
      "a",
      "b",
      "c",
    ]);
    // "c" is trimmed away while pending; "d" comes while no run reads.
    const ids = first.seen.flatMap((s) => s.entries.map((e) => e.id));
    await c.xdel(key, ids[2]);
    await c.xadd(key, "*", "d", "d");
    const second = await read(async (r, e) => await r.ack(e.map((x) => x.id)), 3);
    await second.end();
    assert.equal(second.seen[0].replay, true);
    assert.deepEqual(
      second.seen[0].entries.map((e) => [e.id, e.bytes && new TextDecoder().decode(e.bytes)]),
      [
        [ids[1], "b"],
        [ids[2], undefined],
      ],
    );
    assert.equal(second.seen[1].replay, false);
    assert.equal(new TextDecoder().decode(second.seen[1].entries[0].bytes), "d");
    const pending = await c.xpending(key, "agg") as [number];
    assert.equal(pending[0], 0);
  } finally {
    await bus.close();
    c.disconnect();
    await redis.stop();
  }
});
