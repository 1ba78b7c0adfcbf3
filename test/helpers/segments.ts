/**
 * Real VideoData segments for sink tests: small but valid MP4 files made by the system ffmpeg from the real
 * camera frames, wrapped the way an aggregator publishes them.
 *
 * @example
 * ```ts
 * import { makeSegment } from "./segments.ts";
 * const seg = await makeSegment("cam", 1769272125.649586, 3);
 * ```
 * @module
 */

import { VIDEO_DATA_TYPE, type VideoData } from "../../src/bus/message.ts";
import { Snowflake } from "../../src/bus/snowflake.ts";

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
