import assert from "node:assert/strict";
import { videoDataOf } from "../../src/aggregate/video_data.ts";
import type { BuiltSegment } from "../../src/aggregate/segment_builder.ts";
import { VIDEO_DATA_TYPE } from "../../src/bus/message.ts";
import { decodeMessage, encodeMessagePieces } from "../../src/bus/wire.ts";
import { joinBytes } from "../../src/runtime/bytes.ts";

const built: BuiltSegment = {
  mp4: [new Uint8Array([0, 0, 0, 8]), new Uint8Array([0x66, 0x74, 0x79, 0x70])],
  mp4Bytes: 8,
  frameIds: [11n, 12n, 13n],
  captureTimestamps: [1769272125.5, 1769272125.6, 1769272125.7],
  width: 1280,
  height: 960,
  codec: "h264",
  encoder: "ffmpeg:libx264",
};

Deno.test("video data: MSight's fields from the segment, our info after them", () => {
  const msg = videoDataOf(built, {
    sensor: "cam",
    fps: 10,
    reason: "shutdown",
    overlapFrames: 1,
    frameId: 99n,
    device: "edge-1",
    creationTimestamp: 1769272126,
  });
  assert.equal(msg.dataType, VIDEO_DATA_TYPE);
  assert.equal(msg.sensorName, "cam");
  assert.equal(msg.captureTimestamp, 1769272125.5, "the first frame's capture time");
  assert.equal(msg.creationTimestamp, 1769272126);
  assert.equal(msg.frameId, 99n);
  assert.equal(msg.deviceName, "edge-1");
  assert.equal(msg.video, built.mp4, "the MP4 pages, not joined");
  assert.deepEqual(msg.frameIds, [11n, 12n, 13n]);
  const { durationS, ...info } = msg.info;
  // Three frames at 10 fps: 0.2 s between the first and last capture, plus the last frame's own 0.1 s.
  assert.ok(Math.abs(durationS - 0.3) < 1e-6, `durationS ${durationS}`);
  assert.deepEqual(info, {
    codec: "h264",
    width: 1280,
    height: 960,
    fps: 10,
    frameCount: 3,
    start: "2026-01-24T16:28:45.500000Z",
    end: "2026-01-24T16:28:45.700000Z",
    encoder: "ffmpeg:libx264",
    flushReason: "shutdown",
    overlapFrames: 1,
  });

  // On the wire it is one MSight VideoData with the MP4 joined.
  const back = decodeMessage(joinBytes(encodeMessagePieces(msg)));
  assert.equal(back.dataType, VIDEO_DATA_TYPE);
  if (back.dataType !== VIDEO_DATA_TYPE) return;
  assert.deepEqual(back.video, joinBytes(built.mp4));
  assert.deepEqual(back.captureTimestamps, built.captureTimestamps);
  assert.equal(back.info?.flushReason, "shutdown");
});
