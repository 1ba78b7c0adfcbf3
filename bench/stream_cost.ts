/**
 * The durable frame stream's own cost, alone (issue 15): the real camera frames (~85 KB JPEG ImageData) published
 * through a node's bus as fast as it goes, on pub/sub only and on pub/sub + the frame stream (`FrameStreamProducer`),
 * alternately, on a private Redis. CPU seconds per frame of this Deno process and of redis-server, from `/proc`: CPU
 * time, not wall time, so a busy machine disturbs it far less than `deno task bench source` (which measures the
 * whole RTSP node beside bare ffmpeg, and needs a quiet machine). The extra is compared with the RTSP node's CPU per
 * frame measured by `bench source` (`SOURCE_NODE_MS`, default 7.04 ms: its last recorded run).
 *
 * @example
 * ```sh
 * deno task bench stream-cost
 * ```
 * @module
 */

import { FrameStreamProducer } from "../src/bus/frame_stream.ts";
import { IMAGE_DATA_TYPE, type ImageData } from "../src/bus/message.ts";
import { RedisBus } from "../src/bus/redis.ts";
import { Snowflake } from "../src/bus/snowflake.ts";
import { encodeMessagePieces } from "../src/bus/wire.ts";
import { redisSettingsFromUrl } from "../src/runtime/env.ts";
import { Logger } from "../src/runtime/log.ts";
import { startRedis } from "../test/helpers/redis_server.ts";
import { redisPid } from "./capacity.ts";
import { cpuSeconds } from "./proc.ts";
import type { BenchRow } from "./table.ts";

const FRAMES = new URL("../test/fixtures/mcity-gs-ne/frames/", import.meta.url).pathname;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Runs it: `rounds` alternations of `frames` frames each way; medians. */
export async function streamCostBench(frames = 2000, rounds = 5): Promise<BenchRow[]> {
  const redis = await startRedis();
  const log = new Logger({ device: "bench", node: "bench", level: "CRITICAL" });
  const bus = await RedisBus.connect(redisSettingsFromUrl(redis.url), log, { name: "cost", publisher: true });
  const jpegs = await Promise.all(
    Array.from({ length: 20 }, (_, i) => Deno.readFile(`${FRAMES}${String(i).padStart(4, "0")}.jpg`)),
  );
  const ids = new Snowflake(5);
  const producer = new FrameStreamProducer(bus, "cost", "cam", { maxAgeS: 30, maxBytes: 128 * 2 ** 20 }, log);
  const pid = redisPid(redis.port) ?? -1;
  const msg = (i: number): ImageData => ({
    dataType: IMAGE_DATA_TYPE,
    sensorName: "cam",
    captureTimestamp: Date.now() / 1000,
    creationTimestamp: Date.now() / 1000,
    frameId: ids.next(),
    deviceName: "bench",
    image: jpegs[i % jpegs.length],
    isEncoded: true,
    detectionResults: null,
    size: [960, 1280, 3],
  });
  const run = async (stream: boolean) => {
    const d0 = cpuSeconds(Deno.pid), r0 = cpuSeconds(pid);
    for (let i = 0; i < frames; i++) {
      const pieces = encodeMessagePieces(msg(i));
      if (stream) await producer.publish(pieces);
      else await bus.publish("cost", pieces);
    }
    await bus.client.ping(); // Redis has read everything written before
    return { deno: (cpuSeconds(Deno.pid) - d0) / frames, redis: (cpuSeconds(pid) - r0) / frames };
  };
  const plain = { deno: [] as number[], redis: [] as number[] },
    durable = { deno: [] as number[], redis: [] as number[] };
  try {
    await producer.start();
    await run(true), await run(false); // warm-up: V8's tiers, the stream filled to its cap
    for (let r = 0; r < rounds; r++) {
      const a = await run(false), b = await run(true);
      plain.deno.push(a.deno),
        plain.redis.push(a.redis),
        durable.deno.push(b.deno),
        durable.redis.push(b.redis);
    }
  } finally {
    producer.close();
    await bus.close();
    await redis.stop();
  }
  const ms = (x: number) => x * 1000;
  const extraDeno = median(durable.deno) - median(plain.deno),
    extraRedis = median(durable.redis) - median(plain.redis);
  const nodeMs = Number(Deno.env.get("SOURCE_NODE_MS") ?? 7.04);
  const share = ms(extraDeno + extraRedis) / nodeMs;
  const list = (xs: number[]) => xs.map((x) => ms(x).toFixed(3)).join(", ");
  return [
    {
      bench: "stream-cost",
      metric: "publishing process CPU ms/frame, pub/sub only → + frame stream, median",
      value: ms(median(durable.deno)),
      unit: "ms",
      note: `pub/sub only ${ms(median(plain.deno)).toFixed(3)} ms (${list(plain.deno)}); with the stream ${
        list(durable.deno)
      }`,
    },
    {
      bench: "stream-cost",
      metric: "redis-server CPU ms/frame, pub/sub only → + frame stream, median",
      value: ms(median(durable.redis)),
      unit: "ms",
      note: `pub/sub only ${ms(median(plain.redis)).toFixed(3)} ms (${list(plain.redis)}); with the stream ${
        list(durable.redis)
      }`,
    },
    {
      bench: "stream-cost",
      metric: "extra CPU per frame (publisher + Redis) ÷ the RTSP node's CPU per frame",
      value: share * 100,
      unit: "%",
      goal: "≤ 5%",
      pass: share <= 0.05,
      note:
        `+${ms(extraDeno).toFixed(3)} ms publisher, +${
          ms(extraRedis).toFixed(3)
        } ms Redis, over ${nodeMs} ms ` +
        `(node + ffmpeg, bench source); ${frames} frames × ${rounds} rounds each way`,
    },
  ];
}
