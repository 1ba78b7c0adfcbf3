/**
 * Real VideoData segments for sink tests: small but valid MP4 files made by the system ffmpeg from the real
 * camera frames, wrapped the way an aggregator publishes them.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { makeSegment, segmentFeed } from "./segments.ts";
 * const seg = await makeSegment("cam", 1769272125.649586, 3);
 * // Segments of camera "cam" on the durable stream of "video", and on pub/sub.
 * const feed = segmentFeed(new Redis({ port: 6379 }), "video", { pubsub: true });
 * await feed.publish(0);
 * ```
 * @module
 */

import type { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { VIDEO_DATA_TYPE, type VideoData } from "../../src/bus/message.ts";
import { Snowflake } from "../../src/bus/snowflake.ts";
import { StreamProducer } from "../../src/bus/stream.ts";
import { encodeMessage } from "../../src/bus/wire.ts";

const FRAMES = new URL("../fixtures/mcity-gs-ne/frames/", import.meta.url).pathname;
const ids = new Snowflake(1001);
let cached: Uint8Array | undefined;

/** A 5-frame 320x240 H.264 MP4 from the real frames (made once per process). */
export async function smallMp4(): Promise<Uint8Array> {
  if (cached) return cached;
  const out = await Deno.makeTempFile({ suffix: ".mp4" });
  const r = await new Deno.Command("ffmpeg", {
    args: [
      "-v",
      "error",
      "-y",
      "-framerate",
      "10",
      "-i",
      `${FRAMES}%04d.jpg`,
      "-frames:v",
      "5",
      "-vf",
      "scale=320:240",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-pix_fmt",
      "yuv420p",
      "-movflags",
      "+faststart",
      out,
    ],
  }).output();
  if (!r.success) throw new Error(`ffmpeg failed: ${new TextDecoder().decode(r.stderr)}`);
  cached = await Deno.readFile(out);
  await Deno.remove(out);
  return cached;
}

/** A VideoData segment of `frames` frames starting at `start` (epoch s), with unique ids. */
export async function makeSegment(sensor: string, start: number, frames = 5): Promise<VideoData> {
  const frameIds = Array.from({ length: frames }, () => ids.next());
  return {
    dataType: VIDEO_DATA_TYPE,
    sensorName: sensor,
    captureTimestamp: start,
    creationTimestamp: start + 1,
    frameId: ids.next(),
    deviceName: "test-device",
    video: await smallMp4(),
    detectionResults: null,
    frameIds,
    captureTimestamps: frameIds.map((_, i) => start + i * 0.1),
  };
}

/** Segments sent by {@linkcode segmentFeed}, and how to send the next. */
export interface SegmentFeed {
  /** Every segment sent so far, in order. */
  sent: VideoData[];
  /** Sends segment `i` of camera `cam`, captured at 1769272000 + 10 i. */
  publish(i: number): Promise<void>;
}

/**
 * Sends segments on `topic` as our aggregator does: appended to its durable stream (at most 1000 kept), and with
 * `pubsub` also published on the plain channel.
 */
export function segmentFeed(redis: Redis, topic: string, opts: { pubsub: boolean }): SegmentFeed {
  const producer = new StreamProducer(redis, topic, { maxLen: 1000, maxAgeS: 0 });
  const sent: VideoData[] = [];
  return {
    sent,
    async publish(i) {
      const seg = await makeSegment("cam", 1769272000 + i * 10);
      sent.push(seg);
      const bytes = encodeMessage(seg);
      await producer.append(bytes);
      if (opts.pubsub) await redis.publish(topic, Buffer.from(bytes));
    },
  };
}
